"""Configurations proposed again: what reusing a completed trial's outcome saves.

For each case (a family on a dataset, one objective, ``n_trials`` trials, one worker, the
spec's default sampler and pruner), the same spec runs twice in this process, in alternation
(the order flips from case to case): as tuneops runs it (a configuration completed before takes
its outcome, and the run stops once the last 20 finished trials were all repeats) and with
every trial fitted (``Repeats.earlier`` returning nothing: tuneops before ``repeats.py``).

Reported per case: trials run, repeats, distinct configurations, the best value of each run,
whether the first run's trials are the same (state, parameters, values) as the second's up to
where the first stopped, the fit CPU seconds the study recorded, and the process CPU seconds of
each run with their ratio (CPU seconds: a busy machine does not inflate them).

    nice -n 10 python benchmarks/bench_repeats.py [--trials 100] [--cases knn_wdbc ...] [--no-doc]

Needs ``TUNEOPS_PMLB_DIR`` for the PMLB cases.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import command_line, render_table, stamp, write_doc_block

SECTION = "## Pruning (issue 3)"
CASES: dict[str, tuple[str, str]] = {  # name -> (data source, family)
    "knn_wdbc": ("pmlb:wdbc", "knn"),
    "knn_vehicle": ("pmlb:vehicle", "knn"),
    "knn_pima": ("pmlb:pima", "knn"),
    "rf_breast_cancer": ("sklearn:breast_cancer", "random_forest"),
    "svm_wdbc": ("pmlb:wdbc", "svm"),
    "linear_german": ("pmlb:german", "linear"),
}


def _run(name: str, source: str, family: str, n_trials: int, reuse: bool) -> dict[str, Any]:
    import optuna

    import tuneops
    from tuneops import _study
    from tuneops.pruning import trial_compute
    from tuneops.repeats import Repeats
    from tuneops.storage import get_storage

    earlier = Repeats.earlier
    if not reuse:
        Repeats.earlier = lambda self, trial: None  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            storage = f"{tmp}/study.journal"
            spec = {
                "study": name,
                "data": {"source": source},
                "model": {"family": family},
                "objectives": ["accuracy"],
                "storage": storage,
                "output_dir": str(Path(tmp) / "out"),
                "search": {"n_trials": n_trials, "n_workers": 1, "cv_folds": 3, "seed": 0},
            }
            start = time.process_time()
            result = tuneops.run(spec)
            cpu = time.process_time() - start
            trials = optuna.load_study(study_name=name, storage=get_storage(storage)).trials
    finally:
        Repeats.earlier = earlier  # type: ignore[method-assign]
    fit_cpu = sum(
        trial_compute(t.user_attrs[_study.FIDELITY], "fit_cpu_s")
        for t in trials
        if _study.FIDELITY in t.user_attrs
    )
    return {
        "trials": [(t.state.name, t.params, t.values) for t in trials],
        "n": len(trials),
        "repeats": sum(_study.REPEAT_OF in t.user_attrs for t in trials),
        "distinct": len({tuple(sorted(t.params.items())) for t in trials}),
        "best": result.choice.selected.values[0],
        "fit_cpu_s": fit_cpu,
        "cpu_s": cpu,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--no-doc", action="store_true", help="print only; leave the doc")
    args = parser.parse_args(argv)
    if not os.environ.get("TUNEOPS_PMLB_DIR"):
        sys.exit("set TUNEOPS_PMLB_DIR to the PMLB datasets' directory")
    with contextlib.redirect_stdout(sys.stderr):  # imports, data readers: paid before timing
        _run("warm-up", "sklearn:iris", "knn", 3, True)
    load = [os.getloadavg()[0]]
    rows = []
    for i, case in enumerate(args.cases):
        source, family = CASES[case]
        runs: dict[bool, dict[str, Any]] = {}
        for reuse in (True, False) if i % 2 == 0 else (False, True):
            with contextlib.redirect_stdout(sys.stderr):
                runs[reuse] = _run(f"{case}-{reuse}", source, family, args.trials, reuse)
            load.append(os.getloadavg()[0])
        new, old = runs[True], runs[False]
        same = new["trials"] == old["trials"][: new["n"]]
        rows.append(
            [
                case,
                f"{new['n']} / {old['n']}",
                new["repeats"],
                f"{new['n'] - new['repeats']} / {old['n']}",
                f"{new['distinct']} / {old['distinct']}",
                f"{new['best']:.4f} / {old['best']:.4f}",
                "yes" if same else "no",
                f"{new['fit_cpu_s']:.2f} / {old['fit_cpu_s']:.2f}",
                f"{new['cpu_s']:.1f} / {old['cpu_s']:.1f}",
                f"{new['cpu_s'] / old['cpu_s']:.2f}",
            ]
        )
        print(rows[-1], file=sys.stderr)
    table = render_table(
        [
            "case",
            "trials run (reuse / every trial fitted)",
            "repeats",
            "trials fitted",
            "distinct configurations",
            "best accuracy",
            "same trials up to the stop",
            "fit CPU s",
            "process CPU s",
            "CPU ratio",
        ],
        rows,
    )
    body = (
        "### Configurations proposed again (repeats)\n\n"
        f"Command: `{command_line()}` ({stamp()}, load {min(load):.1f}-{max(load):.1f})\n\n"
        f"{table}\n\n"
        f"{args.trials} trials of one objective (accuracy), one worker, 3 CV folds, seed 0, the "
        "default sampler and pruner; each case run as tuneops runs it (a configuration completed "
        "before takes its outcome; the run stops after 20 repeats in a row) and with every "
        "trial fitted, in alternation in one process. Process CPU s: the whole run (data, "
        "search, refit), in CPU seconds."
    )
    print(body)
    if not args.no_doc:
        write_doc_block("bench_repeats", body, SECTION)


if __name__ == "__main__":
    main()
