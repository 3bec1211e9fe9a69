"""Threaded fits on a busy machine: what OpenMP's wait policy does to fit CPU and wall time.

A trial's fit uses ``search.resources.cpu`` threads (by default the cores per worker), and
``fit_time_s`` is the fit's CPU seconds, because a busy machine does not inflate them (issue 16)
- unless the threads spin. GNU OpenMP (scikit-learn's histogram gradient boosting, LightGBM,
XGBoost) lets a thread that waits at a barrier spin for a while before it sleeps: on a machine
whose cores are taken by other processes, the thread it waits for is not running, and the spin
burns the waiter's CPU. ``OMP_WAIT_POLICY=PASSIVE`` makes waiting threads sleep at once;
tuneops sets it on import unless the environment already does. The other policy measured is
the variable unset, as the libraries run without tuneops (GNU OpenMP spins ``GOMP_SPINCOUNT``
times, then sleeps).

For each condition - the machine as it is ("idle": no load of ours), then with 2 busy processes
per core - and each policy, in alternation, a child process fits each family with 1 and with 2
threads (the best of 2 fits each) and reports CPU seconds of the process and wall seconds.
Printed: per family, rows and condition, the 2-thread / 1-thread ratios of CPU and of wall.

    nice -n 10 python benchmarks/bench_fit_threads.py [--repeats 2] [--no-doc]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from _common import child_env, command_line, render_table, stamp, write_doc_block

SECTION = "## Latency: serving cost that measures the model (issue 16)"
FAMILIES = {
    "hist_gradient_boosting": {"max_iter": 100},
    "lightgbm": {"n_estimators": 100},
    "xgboost": {"n_estimators": 100, "max_depth": 6},
}
ROWS = (1000, 20000)
#: "default": the variable unset (GNU OpenMP spins a while, GOMP_SPINCOUNT, before it sleeps);
#: what the libraries do without tuneops.
POLICIES = ("default", "PASSIVE")
# A busy process that ends when its parent does (a killed benchmark leaves no load behind).
HOG = "import os\nppid = os.getppid()\nwhile os.getppid() == ppid:\n    for _ in range(10**6): pass"


def child(policy: str) -> None:
    """Fit every family at every size with 1 and 2 threads; print JSON rows."""
    import tuneops  # noqa: F401 - it sets OMP_WAIT_POLICY unless set; nothing of OpenMP yet

    if policy == "default":  # what the libraries do without tuneops: the variable unset
        os.environ.pop("OMP_WAIT_POLICY", None)
    else:
        os.environ["OMP_WAIT_POLICY"] = policy
    import pandas as pd
    from sklearn.datasets import make_classification

    from tuneops.families import build_pipeline, get_family
    from tuneops.measure import FitClock

    rows = []
    for n in ROWS:
        X, y = make_classification(n_samples=n, n_features=20, random_state=0)
        frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
        for name, params in FAMILIES.items():
            family = get_family(name)
            best: dict[int, tuple[float, float]] = {}
            for _ in range(2):
                for threads in (1, 2):
                    model = build_pipeline(
                        family, params, "classification", 0, numeric=tuple(frame), categorical=()
                    )
                    with FitClock(threads) as clock:
                        family.fit(model, frame, y, seed=0, threads=threads)
                    cpu, wall = best.get(threads, (float("inf"), float("inf")))
                    best[threads] = (min(cpu, clock.cpu_s), min(wall, clock.wall_s))
            rows.append({"family": name, "rows": n, "cpu": {t: best[t][0] for t in best},
                         "wall": {t: best[t][1] for t in best}})
    print(json.dumps(rows))


def run_child(policy: str) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, __file__, "--child", policy], env=child_env(), check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="alternations per condition")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    results: list[dict[str, Any]] = []
    started = stamp()
    print(command_line(), flush=True)
    loads = []
    n_hogs = 2 * (os.cpu_count() or 1)
    for condition in ("idle", "busy"):
        hogs = []
        if condition == "busy":
            hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(n_hogs)]
            time.sleep(2)
        try:
            loads.append((condition, os.getloadavg()[0]))
            for rep in range(args.repeats):
                for policy in POLICIES if rep % 2 == 0 else POLICIES[::-1]:
                    for row in run_child(policy):
                        results.append({**row, "condition": condition, "policy": policy})
                    print(f"{condition} {policy} done (load {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            for h in hogs:
                h.send_signal(signal.SIGTERM)
                h.wait()
    table = []
    for condition in ("idle", "busy"):
        for n in ROWS:
            for name in FAMILIES:
                cells: list[Any] = [name, n, condition]
                for policy in POLICIES:
                    mine = [r for r in results if (r["condition"], r["rows"], r["family"],
                                                   r["policy"]) == (condition, n, name, policy)]
                    cpu = sorted(r["cpu"]["2"] / r["cpu"]["1"] for r in mine)
                    wall = sorted(r["wall"]["2"] / r["wall"]["1"] for r in mine)
                    cells += [f"{cpu[0]:.2f}-{cpu[-1]:.2f}", f"{wall[0]:.2f}-{wall[-1]:.2f}"]
                table.append(cells)
    header = ["family", "rows", "machine", "CPU 2t/1t, unset (spins)", "wall 2t/1t, unset",
              "CPU 2t/1t, PASSIVE (tuneops)", "wall 2t/1t, PASSIVE"]
    load_text = ", ".join(f"{c} {v:.1f}" for c, v in loads)
    text = (
        f"`{command_line()}` ({started}; load average at the start of each condition: {load_text}; busy ="
        f" {n_hogs} busy processes on {os.cpu_count()} cores; ranges over {args.repeats} "
        "alternations, each the best of 2 fits)\n\n"
        + render_table(header, table)
    )
    print(text)
    if not args.no_doc:
        write_doc_block("bench_fit_threads", text, SECTION)


if __name__ == "__main__":
    main()
