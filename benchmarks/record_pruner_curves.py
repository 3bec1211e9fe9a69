"""Phase 1 of bench_pruners: record real learning curves once, into a cache the replays read.

    nice -n 10 python benchmarks/record_pruner_curves.py              # 10 PMLB datasets, 60 configs
    nice -n 10 python benchmarks/record_pruner_curves.py --configs 80 # extend the same cache

For each dataset, random configurations of histogram gradient boosting (rounds), random forest
(trees) and MLP (epochs) are trained to the end step by step with tuneops' objective (3-fold CV,
steps 1, 2, 4, 8 eighths of each configuration's budget); every step's CV accuracy and the
cumulative CPU seconds of fitting and of scoring are kept (CPU time of the training thread, so
the figures do not depend on the machine's load). Recording goes round-robin in chunks of
``CHUNK`` configurations per dataset and the cache is rewritten (atomically) after every trial,
so a time-out loses at most one trial and leaves the datasets balanced. Re-running continues
where the cache stops.

The multi-objective curves (random forests, accuracy + latency p95) are recorded the same way.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import optuna  # noqa: E402

from tuneops.bench import record_curves  # noqa: E402
from tuneops.data import load_dataset  # noqa: E402

CACHE = ROOT / "benchmarks" / "results" / "pruner_curves.json.gz"
QUICK_CACHE = ROOT / "benchmarks" / "out" / "pruner_curves_quick.json.gz"

# 2,300-7,400 rows (capped at MAX_ROWS), 5-57 features, 2-7 classes: fitting dominates overhead.
DATASETS = [
    "churn", "spambase", "phoneme", "twonorm", "kr_vs_kp",
    "waveform_21", "hypothyroid", "page_blocks", "segmentation", "allhypo",
]
QUICK = ["wdbc", "diabetes", "monk2"]
MO_DATASETS = ["diabetes", "wdbc"]
MAX_ROWS = 4000
CHUNK = 10

# tuneops' default spaces, with the budgets capped so the recording fits a shared 2-core machine.
SO_SPACE = {
    "hist_gradient_boosting": {"max_iter": {"type": "int", "low": 20, "high": 300, "log": True}},
    "random_forest": {"n_estimators": {"type": "int", "low": 10, "high": 200, "log": True}},
    "mlp": {"max_iter": {"type": "int", "low": 10, "high": 100, "log": True},
            "width": {"type": "int", "low": 16, "high": 128, "log": True}},
}
MO_SPACE = {"n_estimators": {"type": "int", "low": 10, "high": 150, "log": True}}


def spec_for(name: str, mo: bool) -> dict:
    if mo:
        return {"study": f"mo-{name}", "data": {"source": f"pmlb:{name}"},
                "model": {"family": "random_forest", "space": MO_SPACE},
                "objectives": ["accuracy", "latency_p95_ms"], "search": {"cv_folds": 3}}
    return {"study": f"so-{name}", "data": {"source": f"pmlb:{name}"},
            "model": {"family": list(SO_SPACE), "space": SO_SPACE},
            "objectives": ["accuracy"], "search": {"cv_folds": 3}}


def dataset(name: str):
    data = load_dataset(f"pmlb:{name}")
    if len(data.X) <= MAX_ROWS:
        return data
    frame = data.X.assign(target=data.y).sample(MAX_ROWS, random_state=0)
    return load_dataset(frame, name=name)


def load_cache(path: Path) -> dict:
    if path.exists():
        with gzip.open(path, "rt") as f:
            return json.load(f)
    return {}


def save_cache(path: Path, cache: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt") as f:
        json.dump(cache, f)
    os.replace(tmp, path)


def record(names: list[str], mo_names: list[str], n_configs: int, n_mo: int, path: Path) -> dict:
    cache = load_cache(path)
    jobs = [(f"mo-{n}", n, True, n_mo) for n in mo_names] + [(f"so-{n}", n, False, n_configs) for n in names]
    started = time.time()
    data: dict[str, object] = {}
    while True:
        pending = [(key, n, mo, want) for key, n, mo, want in jobs if len(cache.get(key, {}).get("trials", [])) < want]
        if not pending:
            break
        # round-robin: the dataset with the fewest trials next, one chunk at a time
        key, name, mo, want = min(pending, key=lambda j: (len(cache.get(j[0], {}).get("trials", [])), jobs.index(j)))
        entry = cache.setdefault(key, {"trials": [], "dataset": name})
        have = len(entry["trials"])
        chunk = min(CHUNK, want - have)
        if name not in data:
            data[name] = dataset(name)
        ds = data[name]
        entry.update(rows=len(ds.X), columns=int(ds.X.shape[1]), classes=int(ds.y.nunique()))

        def keep(trial: dict, entry: dict = entry) -> None:
            entry["trials"].append(trial)
            save_cache(path, cache)

        # a new seed per chunk: new random configurations
        curves = record_curves(spec_for(name, mo), n_configs=chunk, seed=1000 + have, dataset=ds, on_trial=keep)
        entry.update(study=curves["study"], directions=curves["directions"], metrics=curves["metrics"])
        save_cache(path, cache)
        cpu = sum(t["fit_cpu_s_steps"][-1] + t["score_cpu_s_steps"][-1] for t in entry["trials"])
        print(f"  {key}: {len(entry['trials'])}/{want} trials ({cpu:.0f} CPU s fit+score; "
              f"{time.time() - started:.0f} s since start)", flush=True)
    return cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 small datasets, 12 configurations")
    parser.add_argument("--configs", type=int, default=60, help="configurations per dataset")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if args.quick:
        record(QUICK, QUICK[:1], 12, 12, QUICK_CACHE)
    else:
        record(DATASETS, MO_DATASETS, args.configs, 20, CACHE)


if __name__ == "__main__":
    main()
