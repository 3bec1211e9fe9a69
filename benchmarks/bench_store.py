"""The embedded store under several local worker processes: journal file vs SQLite.

Each configuration runs trivial trials (``x ** 2``; random sampler, so the time is the
storage's and the runner's, not the sampler's) with 2, 4 and 8 local processes:

* ``journal`` (tuneops' default): ``tuneops.tune`` with ``n_workers`` forked workers on a
  journal file, exactly ``n_workers * per_worker`` trials;
* ``sqlite, tuneops``: the same through tuneops' runner on ``sqlite:///`` (tuneops sets a
  30 s SQLite busy timeout);
* ``sqlite, plain optuna``: what a team writes without tuneops: ``n_workers`` processes each
  calling ``study.optimize(objective, n_trials=1)`` ``per_worker`` times on the plain
  ``sqlite:///`` URL (SQLAlchemy's default 5 s busy timeout), each call in a ``try`` so an
  error is counted and the worker goes on instead of dying.

Counted: trials completed, trials failed, trials retired unrun (tuneops: a worker that opened
a trial as the last place of the budget was taken gives it up, FAIL with the reason
"retired"; not a failure), trials lost (budget minus complete minus failed),
storage errors (exceptions and tracebacks; "database is locked" separately), wall time and
per-trial overhead (worker-milliseconds per completed trial). Every configuration runs in
its own child process and temporary directory.

    python benchmarks/bench_store.py            # 2/4/8 workers x 40 trials each
    python benchmarks/bench_store.py --quick    # 2/4 workers x 10 trials each
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import child_env, command_line, render_table, write_doc_block  # noqa: E402

STORES = ("journal", "sqlite, tuneops", "sqlite, plain optuna")


def trivial(trial: Any) -> float:
    x = trial.suggest_float("x", -10.0, 10.0)
    return x * x


# -- children ---------------------------------------------------------------------------------
def run_tuneops(store: str, n_workers: int, per_worker: int, workdir: Path) -> dict[str, Any]:
    import optuna

    import tuneops

    url = str(workdir / "store.journal") if store == "journal" else f"sqlite:///{workdir / 'store.db'}"
    start = time.perf_counter()
    result = tuneops.tune(
        trivial, objectives=["value"], directions=["minimize"], n_trials=n_workers * per_worker,
        n_workers=n_workers, storage=url, study="store", sampler="random",
        output_dir=workdir / "out",
    )
    wall = time.perf_counter() - start
    from tuneops._study import is_retired

    trials = result.study.get_trials(deepcopy=False)
    # a worker that opened a trial as the last place of the budget was taken retires it unrun
    # (FAIL, tuneops:abandoned "retired ..."): budget bookkeeping, not a failure
    retired = sum(is_retired(t) for t in trials)
    states = [t.state for t in trials]
    return {
        "wall_s": wall,
        "complete": states.count(optuna.trial.TrialState.COMPLETE),
        "failed": states.count(optuna.trial.TrialState.FAIL) - retired,
        "retired": retired,
        "errors": [],
    }


def _plain_worker(url: str, per_worker: int, out: str) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    errors: list[str] = []
    try:
        study = optuna.load_study(study_name="store", storage=url, sampler=optuna.samplers.RandomSampler())
    except Exception as exc:  # noqa: BLE001 - counting what breaks is the point
        Path(out).write_text(json.dumps([f"load_study: {type(exc).__name__}: {exc}"] * per_worker))
        return
    for _ in range(per_worker):
        try:
            study.optimize(trivial, n_trials=1)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    Path(out).write_text(json.dumps(errors))


def run_plain_sqlite(n_workers: int, per_worker: int, workdir: Path) -> dict[str, Any]:
    import multiprocessing

    import optuna

    url = f"sqlite:///{workdir / 'store.db'}"
    optuna.create_study(study_name="store", storage=url, direction="minimize")
    ctx = multiprocessing.get_context("fork")
    outs = [str(workdir / f"errors-{i}.json") for i in range(n_workers)]
    start = time.perf_counter()
    procs = [ctx.Process(target=_plain_worker, args=(url, per_worker, out)) for out in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    wall = time.perf_counter() - start
    errors = [e for out in outs if Path(out).exists() for e in json.loads(Path(out).read_text())]
    study = optuna.load_study(study_name="store", storage=url)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {
        "wall_s": wall,
        "complete": states.count(optuna.trial.TrialState.COMPLETE),
        "failed": states.count(optuna.trial.TrialState.FAIL),
        "errors": errors,
        "dead_workers": sum(p.exitcode != 0 for p in procs),
    }


def child(store: str, n_workers: int, per_worker: int, out: Path) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    workdir = out.parent
    try:
        if store == "sqlite, plain optuna":
            result = run_plain_sqlite(n_workers, per_worker, workdir)
        else:
            result = run_tuneops(store, n_workers, per_worker, workdir)
    except Exception as exc:  # noqa: BLE001 - the run itself failing is a result too
        result = {"wall_s": float("nan"), "complete": 0, "failed": 0,
                  "errors": [f"run: {type(exc).__name__}: {exc}"], "crashed": traceback.format_exc()}
    out.write_text(json.dumps(result))


# -- the parent -------------------------------------------------------------------------------
def count_stderr_errors(stderr: str) -> tuple[int, int]:
    """(tracebacks, 'database is locked' mentions) in a child's stderr."""
    return stderr.count("Traceback (most recent call last)"), stderr.lower().count("database is locked")


def measure(store: str, n_workers: int, per_worker: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.run(
            [sys.executable, __file__, "--child", store, str(n_workers), str(per_worker), str(out)],
            cwd=tmp, env=child_env(), capture_output=True, text=True,
        )
        result = json.loads(out.read_text()) if out.exists() else {
            "wall_s": float("nan"), "complete": 0, "failed": 0, "errors": ["child produced no result"]}
    tracebacks, locked_in_stderr = count_stderr_errors(proc.stderr)
    budget = n_workers * per_worker
    errors = result["errors"]
    return {
        "store": store,
        "n_workers": n_workers,
        "budget": budget,
        "complete": result["complete"],
        "failed": result["failed"],
        "retired": result.get("retired", 0),
        "lost": budget - result["complete"] - result["failed"],
        "errors": len(errors) + tracebacks,
        "locked": sum("locked" in e.lower() for e in errors) + locked_in_stderr,
        "dead_workers": result.get("dead_workers", 0),
        "wall_s": result["wall_s"],
        "ms_per_trial": 1e3 * result["wall_s"] * n_workers / max(result["complete"], 1),
        "sample_error": (errors or [""])[0] or _first_error_line(proc.stderr),
    }


def _first_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "Error" in line or "locked" in line]
    return lines[-1][:200] if lines else ""


def report(rows: Sequence[dict[str, Any]], per_worker: int, command: str) -> str:
    journal = {r["n_workers"]: r for r in rows if r["store"] == "journal"}
    table = []
    for r in rows:
        base = journal.get(r["n_workers"])
        table.append([
            r["store"], r["n_workers"], f"{r['complete']}/{r['budget']}", r["failed"],
            r.get("retired", 0), r["lost"],
            r["errors"], r["locked"], r["wall_s"], r["ms_per_trial"],
            r["ms_per_trial"] / base["ms_per_trial"] if base else float("nan"),
        ])
    header = [
        "store", "workers", "complete/budget", "failed", "retired unrun", "lost", "errors",
        "'database is locked'",
        "wall s", "worker-ms per trial", "overhead ratio vs journal",
    ]
    samples = sorted({r["sample_error"] for r in rows if r["sample_error"]})
    lines = [
        f"### Embedded store under concurrent local workers ({per_worker} trivial trials per worker)",
        "",
        f"Command: `{command}`",
        "",
        render_table(header, table),
        "",
        "Worker-ms per trial = wall time x workers / completed trials (the objective is trivial, "
        "so this is storage, sampler (random) and runner overhead; on 2 cores, more than 2 "
        "workers share CPUs). Errors: exceptions raised to the worker plus tracebacks in its "
        "stderr; retired unrun: trials a tuneops worker opened as the budget filled and gave up "
        "unrun (not failures); lost: budget minus complete minus failed.",
    ]
    if samples:
        lines += ["", "Errors seen: " + "; ".join(f"`{s}`" for s in samples[:4])]
    lines += ["", *interpret(rows)]
    return "\n".join(lines)


def interpret(rows: Sequence[dict[str, Any]]) -> list[str]:
    """What the counts say, in words (generated from the rows, so it cannot go stale)."""
    out = []
    journal = [r for r in rows if r["store"] == "journal"]
    sqlite = [r for r in rows if r["store"] != "journal"]
    j_errors = sum(r["errors"] + r["lost"] for r in journal)
    out.append(
        f"Journal file: {j_errors} errors or lost trials over "
        f"{sum(r['budget'] for r in journal)} trials with up to {max(r['n_workers'] for r in rows)} workers."
    )
    locked = sum(r["locked"] for r in sqlite)
    if locked == 0:
        out.append(
            "'database is locked' did not occur on SQLite in this run (trivial trials, "
            "short transactions; SQLAlchemy's 5 s and tuneops' 30 s busy timeouts sufficed), so "
            "this run does not show SQLite failing on locking; it shows SQLite's per-trial cost."
        )
    else:
        out.append(f"SQLite raised 'database is locked' {locked} times.")
    if any("already finished" in r["sample_error"] or "Cannot tell" in r["sample_error"] for r in sqlite):
        out.append(
            "The `sqlite, tuneops` errors are two workers claiming the same WAITING trial: "
            "`runner.next_trial` relies on Optuna's `set_trial_state_values(RUNNING)` returning "
            "False for a trial already claimed, which RDBStorage checks after `SELECT ... FOR "
            "UPDATE`; SQLite ignores `FOR UPDATE`, so two workers can both read WAITING and both "
            "claim it. The second runs it again and fails when it writes to the trial the first "
            "finished (`UpdateFinishedTrialError`, 'Cannot tell a COMPLETE trial'); the trial "
            "is counted once and the second run's work is wasted. The journal file's claim is atomic: a worker owns a trial only if its own "
            "RUNNING record comes first in the log."
        )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2/4 workers x 10 trials each")
    parser.add_argument("--workers", type=int, nargs="+", default=None)
    parser.add_argument("--per-worker", type=int, default=None)
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--child", nargs=4, metavar=("STORE", "N", "PER", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        store, n, per, out = args.child
        child(store, int(n), int(per), Path(out))
        return
    workers = args.workers or ([2, 4] if args.quick else [2, 4, 8])
    per_worker = args.per_worker or (10 if args.quick else 40)
    command = command_line()
    print(f"reproduce with: {command}", flush=True)
    rows = []
    for n in workers:
        for store in STORES:
            rows.append(measure(store, n, per_worker))
            r = rows[-1]
            print(f"  {store:22s} x{n}: {r['complete']}/{r['budget']} complete, {r['errors']} errors, "
                  f"{r['wall_s']:.1f} s", flush=True)
    text = report(rows, per_worker, command)
    print(text)
    if not args.no_doc:
        write_doc_block("bench_store", text)


if __name__ == "__main__":
    main()
