"""Where the quickstart's time goes: CPU seconds per component of a tuneops run.

Runs ``tuneops.run(examples/quickstart.yaml, n_workers=1)`` in this process (one worker, so
``time.process_time`` sees all of it and other users' load does not stretch the figures) with
timers wrapped around the components of a trial: the CV fits, quality scoring, latency
measurement, the sampler, the storage, and the end of the run (selection, refit, outputs).
Time is charged to the innermost component (storage reads inside the sampler count as
storage). The same seed recipe trial components are timed for comparison.

    python benchmarks/profile_quickstart.py            # 50 trials
    python benchmarks/profile_quickstart.py --quick    # 12 trials
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

START_CPU = time.process_time()

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, command_line, render_table, stamp, write_doc_block  # noqa: E402


class Ledger:
    """Exclusive CPU seconds per component: a call's time minus its timed callees'."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[Any]] = []

    def wrap(self, owner: Any, attr: str, component: str) -> None:
        original = getattr(owner, attr)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            frame = [component, time.process_time(), 0.0]
            self._stack.append(frame)
            try:
                return original(*args, **kwargs)
            finally:
                self._stack.pop()
                spent = time.process_time() - frame[1]
                self.seconds[component] += spent - frame[2]
                self.calls[component] += 1
                if self._stack:
                    self._stack[-1][2] += spent

        setattr(owner, attr, timed)


def instrument(ledger: Ledger) -> None:
    import optuna
    import sklearn.pipeline
    from optuna.storages.journal import JournalStorage

    import tuneops.data
    import tuneops.objective
    import tuneops.tuning
    from tuneops.families import FAMILIES
    from tuneops.families._base import Family

    ledger.wrap(sklearn.pipeline.Pipeline, "fit", "fit (CV folds + final refit)")
    # With a pruner, trials train step by step through Family.advance (Family.fit_steps).
    classes = {Family, *(f if isinstance(f, type) else type(f) for f in FAMILIES.values())}
    for cls in classes:
        if "advance" in vars(cls):
            ledger.wrap(cls, "advance", "fit (CV folds + final refit)")
    # a fold's preprocessing, fitted once per worker and kept (SpecObjective.prepared)
    ledger.wrap(tuneops.objective.SpecObjective, "prepared", "fit (CV folds + final refit)")
    ledger.wrap(tuneops.objective, "score", "quality scoring (predict on the fold)")
    ledger.wrap(tuneops.objective, "measure_serving", "latency measurement")
    for name in ("sample_relative", "sample_independent", "infer_relative_search_space",
                 "before_trial", "after_trial"):
        ledger.wrap(optuna.samplers.TPESampler, name, "sampler (TPE)")
    for name in dir(JournalStorage):
        if not name.startswith("_") and callable(getattr(JournalStorage, name)):
            ledger.wrap(JournalStorage, name, "storage (journal file)")
    ledger.wrap(tuneops.data, "load_dataset", "data load")
    ledger.wrap(tuneops.tuning, "_finish", "end: selection, results, save")


def profile(n_trials: int) -> tuple[dict[str, float], dict[str, int], float, float, float]:
    ledger = Ledger()
    import tuneops.tuning  # noqa: F401 - imports are timed separately, before the run

    imports_cpu = time.process_time() - START_CPU
    instrument(ledger)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="profile-quickstart-") as tmp:
        os.chdir(tmp)
        try:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            tuneops.tuning.run(ROOT / "examples" / "quickstart.yaml", n_trials=n_trials, n_workers=1)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        finally:
            os.chdir(cwd)
    return dict(ledger.seconds), dict(ledger.calls), cpu, wall, imports_cpu


def recipe_components(n_trials: int, seed: int = 0) -> dict[str, float]:
    """CPU seconds of the seed recipe's trial components (3 CV fits + scoring, full fit, one
    timing), run sequentially; ``n_jobs=-1`` threads' CPU is included by process_time."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import cross_val_score

    from tuneops.families import get_family

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    space = get_family("random_forest").default_space("classification")
    rng = np.random.default_rng(seed)
    out: dict[str, float] = defaultdict(float)
    for _ in range(n_trials):
        params = {}
        for p in space.values():
            if p.kind == "int":
                lo, hi = np.log(p.low), np.log(p.high + 1)
                params[p.name] = int(np.exp(rng.uniform(lo, hi))) if p.log else int(rng.integers(p.low, p.high + 1))
            else:
                params[p.name] = float(rng.uniform(p.low, p.high))
        model = RandomForestClassifier(**params, n_jobs=-1, random_state=seed)
        t = time.process_time()
        cross_val_score(model, X, y, cv=3)
        out["3-fold cross_val_score (fits + scoring)"] += time.process_time() - t
        t = time.process_time()
        model.fit(X, y)
        out["full fit for the latency timing"] += time.process_time() - t
        t = time.process_time()
        model.predict(X.iloc[:100])
        out["one predict of 100 rows"] += time.process_time() - t
    return dict(out)


def report(seconds: dict[str, float], calls: dict[str, int], cpu: float, wall: float, imports: float,
           recipe: dict[str, float], n_trials: int, command: str) -> str:
    seconds = dict(seconds)
    seconds["other (glue: runner, objective, Optuna study API, progress)"] = cpu - sum(seconds.values())
    rows = [[name, s, s / n_trials * 1e3, s / cpu, calls.get(name, "")]
            for name, s in sorted(seconds.items(), key=lambda kv: -kv[1])]
    rows.append(["total run (one worker)", cpu, cpu / n_trials * 1e3, 1.0, ""])
    rows.append(["import tuneops.tuning before the run (not in the total)", imports, "", "", ""])
    recipe_total = sum(recipe.values())
    recipe_rows = [[name, s, s / n_trials * 1e3, s / recipe_total]
                   for name, s in sorted(recipe.items(), key=lambda kv: -kv[1])]
    recipe_rows.append(["total (trial components only)", recipe_total, recipe_total / n_trials * 1e3, 1.0])
    return "\n".join([
        f"### Where a quickstart trial's time goes ({n_trials} trials, one worker, CPU seconds)",
        "",
        f"Command: `{command}` ({stamp()}; load average {os.getloadavg()[0]:.1f} at the end)",
        "",
        render_table(["tuneops component", "CPU s", "CPU ms per trial", "share", "calls"], rows),
        "",
        f"Wall time of the run: {wall:.1f} s for {cpu:.1f} CPU s. The seed recipe's trial "
        "components on random configurations of the same space (same process, sequential):",
        "",
        render_table(["seed recipe component", "CPU s", "CPU ms per trial", "share"], recipe_rows),
    ])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 trials")
    parser.add_argument("--n-trials", type=int, default=None)
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    n_trials = args.n_trials or (12 if args.quick else 50)
    command = command_line()
    print(f"reproduce with: {command}", flush=True)
    seconds, calls, cpu, wall, imports = profile(n_trials)
    recipe = recipe_components(n_trials)
    text = report(seconds, calls, cpu, wall, imports, recipe, n_trials, command)
    print(text)
    if not args.no_doc:
        write_doc_block("profile_quickstart", text)


if __name__ == "__main__":
    main()
