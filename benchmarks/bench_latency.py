"""How stable is a latency measurement? tuneops' method against the seed recipe's.

The same fitted model is measured many times, interleaved, both ways:

* the seed recipe: the estimator with ``n_jobs=-1``, one timing of ``predict`` on 100 rows;
* tuneops: ``tuneops.measure.measure_latency`` on the tuneops pipeline of the same
  configuration (identical trees: same parameters and seed), single-threaded, warmed up,
  repeated: p50 and p95 of one-row predicts, p50 of 256-row batches.

Stability is the coefficient of variation (std / mean) over the repetitions; the ratio is
recipe CV / tuneops CV (how many times steadier tuneops' figure is).

    python benchmarks/bench_latency.py            # 30 repetitions, 3 models
    python benchmarks/bench_latency.py --quick    # 8 repetitions, 2 models
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, cv, render_table, write_doc_block  # noqa: E402

MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "small random forest": ("random_forest", {"n_estimators": 20, "max_depth": 6, "min_samples_leaf": 2, "max_features": 0.3}),
    "large random forest": ("random_forest", {"n_estimators": 300, "max_depth": 24, "min_samples_leaf": 1, "max_features": 0.5}),
    "hist gradient boosting": ("hist_gradient_boosting", {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31, "min_samples_leaf": 20, "l2_regularization": 1e-3}),
}
TUNEOPS_KEYS = ("latency_p50_ms", "latency_p95_ms", "batch_latency_p50_ms")


class _CPUClock:
    """Stands in for the ``time`` module inside tuneops.measure: perf_counter -> process_time.

    A proposal measured alongside, not tuneops' method: CPU time leaves out the time the
    process waits while other processes hold the cores, which wall time on a shared machine
    includes.
    """

    perf_counter = staticmethod(time.process_time)


def measure_latency_cpu_clock(model: Any, X: Any) -> dict[str, float]:
    import tuneops.measure as measure

    real = measure.time
    measure.time = _CPUClock  # type: ignore[assignment]
    try:
        return measure.measure_latency(model, X)
    finally:
        measure.time = real


def fit_models(names: Sequence[str], seed: int = 0) -> tuple[dict[str, tuple[Any, Any]], Any]:
    """(``name -> (recipe estimator with n_jobs=-1, tuneops pipeline)``, X); same trees."""
    from tuneops.data import load_dataset
    from tuneops.families import build_pipeline, get_family

    data = load_dataset("sklearn:breast_cancer")
    fitted = {}
    for name in names:
        family_name, params = MODELS[name]
        family = get_family(family_name)
        pipeline = build_pipeline(family, params, data.task, seed, numeric=data.numeric, categorical=data.categorical)
        pipeline.fit(data.X, data.y)
        estimator = family.estimator(params, data.task, seed)
        if "n_jobs" in estimator.get_params():
            estimator.set_params(n_jobs=-1)  # the recipe's setting; HGB uses all OpenMP threads by default
        estimator.fit(data.X, data.y)
        fitted[name] = (estimator, pipeline)
    return fitted, data.X


def recipe_latency_ms(estimator: Any, X: Any) -> float:
    """The seed recipe's measurement: one timing of ``predict`` on 100 rows."""
    start = time.perf_counter()
    estimator.predict(X.iloc[:100])
    return (time.perf_counter() - start) * 1e3


def measure(names: Sequence[str], repetitions: int) -> list[dict[str, Any]]:
    from tuneops.measure import measure_latency

    fitted, X = fit_models(names)
    samples: dict[str, dict[str, list[float]]] = {
        n: {"recipe": [], "cpu_clock_p95": [], **{k: [] for k in TUNEOPS_KEYS}} for n in names
    }
    cost: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(repetitions):
        for name in names:  # interleaved: noise hits every model and both methods alike
            estimator, pipeline = fitted[name]
            samples[name]["recipe"].append(recipe_latency_ms(estimator, X))
            start = time.perf_counter()
            out = measure_latency(pipeline, X)
            cost[name].append(time.perf_counter() - start)
            for key in TUNEOPS_KEYS:
                samples[name][key].append(out[key])
            samples[name]["cpu_clock_p95"].append(measure_latency_cpu_clock(pipeline, X)["latency_p95_ms"])
    rows = []
    for name in names:
        s = samples[name]
        rows.append({
            "model": name,
            "cv": {k: cv(v) for k, v in s.items()},
            "median_ms": {k: float(np.median(v)) for k, v in s.items()},
            "measure_cost_s": float(np.median(cost[name])),
        })
    return rows


def report(rows: Sequence[dict[str, Any]], repetitions: int, command: str) -> str:
    table = []
    for r in rows:
        c = r["cv"]
        table.append([
            r["model"], c["recipe"], c["latency_p50_ms"], c["latency_p95_ms"], c["batch_latency_p50_ms"],
            c["recipe"] / c["latency_p50_ms"], c["recipe"] / c["latency_p95_ms"],
            c["recipe"] / c["batch_latency_p50_ms"],
            f"{r['median_ms']['recipe']:.2f} / {r['median_ms']['latency_p50_ms']:.2f} / "
            f"{r['median_ms']['batch_latency_p50_ms']:.2f}",
            r["measure_cost_s"], c["cpu_clock_p95"], c["recipe"] / c["cpu_clock_p95"],
        ])
    header = [
        "model", "CV recipe (100 rows, n_jobs=-1)", "CV tuneops p50", "CV tuneops p95", "CV tuneops batch",
        "ratio vs p50", "ratio vs p95", "ratio vs batch",
        "median ms: recipe 100 rows / p50 1 row / batch 256 rows", "tuneops s per measurement",
        "CV p95, CPU clock (proposal)", "ratio vs p95, CPU clock",
    ]
    ratios = [r["cv"]["recipe"] / r["cv"]["latency_p95_ms"] for r in rows]
    return "\n".join([
        f"### Latency measurement stability ({repetitions} repetitions per model)",
        "",
        f"Command: `{command}`",
        "",
        render_table(header, table),
        "",
        f"Ratio = recipe CV / tuneops CV (higher: tuneops steadier). Against tuneops' p95 "
        f"(the quickstart's objective) the ratio ranges {min(ratios):.2f}-{max(ratios):.2f}. "
        "Each repetition measures the same fitted model once per method, models interleaved. "
        "The recipe's figure times one 100-row `predict` of the bare estimator with "
        "`n_jobs=-1`; tuneops' is `measure_latency` on the pipeline (impute + model, "
        "`n_jobs=1`) under a one-thread limit, after warm-up. The last two columns time the same "
        "method with `time.process_time` instead of `time.perf_counter` (a proposal, not "
        "tuneops' current clock): CPU time leaves out the waits while other processes hold "
        "the cores.",
    ])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 repetitions, 2 models")
    parser.add_argument("--repetitions", type=int, default=None)
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    names = list(MODELS)[:2] if args.quick else list(MODELS)
    repetitions = args.repetitions or (8 if args.quick else 30)
    command = command_line()
    print(f"reproduce with: {command}", flush=True)
    text = report(measure(names, repetitions), repetitions, command)
    print(text)
    if not args.no_doc:
        write_doc_block("bench_latency", text)


if __name__ == "__main__":
    main()
