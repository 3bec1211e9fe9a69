"""The staged strategy's refine phase: the GP ``auto`` runs vs Optuna's default GPSampler.

    OMP_NUM_THREADS=1 taskset -c 1 nice -n 10 python benchmarks/bench_refine.py \
        [--problems hartmann6 mixed_model rosenbrock10] [--seeds 5] [--trials 100]

``strategy: staged`` builds its refine phase's GP with :func:`tuneops.samplers.build_gp`, the
GP of ``auto``'s GP stage (with one objective its acquisition searched from
``GP_LOCAL_SEARCH`` starting points); before, it built ``GPSampler(seed=seed)``, Optuna's 10
points. Each seed runs one study of ``--trials`` trials per side, one objective (the
one-objective problems of ``bench_samplers.py``); the two sides differ only in the refine
phase's GP (the other side's is swapped in by replacing ``strategy.build_gp``). Reported per
side: the best value as a share of the way from the median random point to the optimum
(``bench_samplers.py``'s one-objective score), and the sampler's CPU seconds in the refine
phase (thread CPU inside the sampler's methods: robust to load). Needs PyTorch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import optuna  # noqa: E402
from _common import command_line, render_table  # noqa: E402
from bench_samplers import PROBLEMS, Timed, _warm_up_gp  # noqa: E402

from tuneops import samplers, strategy  # noqa: E402


def _optuna_default_gp(seed: int | None, n_objectives: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed)


SIDES = {
    f"auto's GP ({samplers.GP_LOCAL_SEARCH} points)": samplers.build_gp,
    "Optuna's default GP (10 points)": _optuna_default_gp,
}


def run_one(name: str, seed: int, n_trials: int) -> tuple[float, float]:
    """(share of the way to the optimum, refine-phase sampler CPU seconds) of one study."""
    problem = PROBLEMS[name]
    timed = Timed(strategy.StagedSampler(seed=seed, n_trials=n_trials, n_objectives=1))
    study = optuna.create_study(sampler=timed, pruner=optuna.pruners.NopPruner())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(problem.objective_factory(), n_trials=n_trials)
    refine = strategy.staged_phases(n_trials, gp=True)[-1]
    cpu = sum(timed.by_trial.get(i, 0.0) for i in range(refine.start, n_trials))
    assert problem.reference is not None and problem.ideal_hv is not None
    share = (problem.reference[0] - study.best_value) / problem.ideal_hv
    return share, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--problems", nargs="+", default=["hartmann6", "mixed_model", "rosenbrock10"]
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    if not samplers.gp_available():
        sys.exit("bench_refine: GPSampler needs PyTorch (pip install torch)")
    print("OMP_NUM_THREADS=1 taskset -c 1 " + command_line(), flush=True)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _warm_up_gp()
    rows: list[list[Any]] = []
    for name in args.problems:
        results = {}
        for label, build in SIDES.items():
            strategy.build_gp = build  # the refine phase's GP, this side's
            results[label] = [run_one(name, seed, args.trials) for seed in range(args.seeds)]
        mine, default = results.values()
        diff = [a[0] - b[0] for a, b in zip(mine, default, strict=True)]
        for label, runs in results.items():
            shares, cpus = [r[0] for r in runs], [r[1] for r in runs]
            rows.append(
                [
                    name,
                    label,
                    f"{statistics.fmean(shares):.4f} ± {statistics.stdev(shares):.4f}",
                    f"{min(shares):.4f}-{max(shares):.4f}",
                    statistics.fmean(cpus),
                    statistics.fmean(cpus) / statistics.fmean(r[1] for r in default),
                    f"{statistics.fmean(diff):+.4f} ± {statistics.stdev(diff):.4f}"
                    if runs is mine
                    else "",
                ]
            )
        print(f"{name}: done ({args.seeds} seeds per side)", flush=True)
    print(
        render_table(
            [
                "problem",
                "refine phase's GP",
                "share of the way to the optimum",
                "min-max",
                "refine sampler CPU s",
                "CPU / Optuna's default",
                "difference (paired by seed)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
