"""Studies for report tests, built with plain Optuna and the user attributes tuneops records
(``worker``, ``warm_start``, ``fail_reason``, ``metrics``, ``metrics_std``), so the report is
tested on every trial state without depending on how other features produce them."""

from __future__ import annotations

import math
import random
import time
from datetime import datetime, timedelta

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

DISTS = {
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "depth": IntDistribution(1, 10),
    "criterion": CategoricalDistribution(["gini", "entropy"]),
    "width": FloatDistribution(0.0, 1.0),
    "n_neighbors": IntDistribution(1, 10),
}


def add(
    study: optuna.Study,
    number_hint: int,
    params: dict,
    values=None,
    *,
    state=TrialState.COMPLETE,
    attrs: dict | None = None,
    intermediate: dict | None = None,
    constraint: float | None = None,
    seconds: float = 1.0,
) -> None:
    """Add one finished (or running) trial with the given params and marks."""
    start = datetime(2026, 1, 1) + timedelta(seconds=10 * number_hint)
    system = {"constraints": [constraint]} if constraint is not None else {}
    trial = create_trial(
        state=state,
        values=values if state == TrialState.COMPLETE else None,
        params=params,
        distributions={k: DISTS[k] for k in params},
        user_attrs=attrs or {},
        system_attrs=system,
        intermediate_values=intermediate or {},
    )
    trial.datetime_start = start
    trial.datetime_complete = (
        None if state == TrialState.RUNNING else start + timedelta(seconds=seconds)
    )
    study.add_trial(trial)


def build(
    n: int = 40,
    *,
    multi: bool = True,
    seed: int = 0,
    states: bool = True,
    name: str = "report-test",
    storage=None,
) -> optuna.Study:
    """A study of ``n`` trials: accuracy (max, and latency (min) when ``multi``), with two
    workers, 3 warm-start trials, learning curves, and (``states``) failed, pruned, infeasible
    and one running trial."""
    rng = random.Random(seed)
    directions = ["maximize", "minimize"] if multi else ["maximize"]
    study = optuna.create_study(study_name=name, storage=storage, directions=directions)
    study.set_user_attr(
        "tuneops:objectives",
        [{"metric": "accuracy", "direction": "maximize"}]
        + ([{"metric": "latency_p95_ms", "direction": "minimize"}] if multi else []),
    )
    study.set_user_attr(
        "tuneops:data",
        {
            "name": "sklearn:iris",
            "rows": 150,
            "columns": 4,
            "task": "classification",
            "fingerprint": "abc123",
        },
    )
    study.set_user_attr("tuneops:spec", {"study": name, "data": {"source": "sklearn:iris"}})
    for i in range(n):
        params = {
            "lr": 10 ** rng.uniform(-4, 0),
            "depth": rng.randint(1, 10),
            "criterion": rng.choice(["gini", "entropy"]),
        }
        acc = (
            0.9
            - 0.02 * (math.log10(params["lr"]) + 2) ** 2
            + 0.003 * params["depth"]
            + rng.uniform(0, 0.01)
        )
        lat = 1.0 + params["depth"] + rng.uniform(0, 0.5)
        attrs = {
            "worker": {"host": "hostA", "pid": 1000 + i % 2, "id": f"w{i % 2}"},
            "metrics": {"accuracy": acc, "latency_p95_ms": lat},
            "metrics_std": {"accuracy": 0.002},
        }
        if i < 3:
            attrs["warm_start"] = True
        curve = {s: acc * (s + 1) / 4 for s in range(4)}
        state = TrialState.COMPLETE
        if states and i % 10 == 7:
            state, attrs["fail_reason"] = TrialState.FAIL, "ValueError: solver did not converge"
        elif states and i % 10 == 5:
            state, curve = TrialState.PRUNED, {0: curve[0], 1: curve[1]}
        if multi:  # Optuna's trial.report is single-objective only (#3450): tuneops' pruning record
            attrs["tuneops:intermediate"] = {str(k): [v, None] for k, v in curve.items()}
            curve = {}
        add(
            study,
            i,
            params,
            [acc, lat] if multi else [acc],
            state=state,
            attrs=attrs,
            intermediate=curve,
            constraint=(lat - 9.0) if states else None,
        )
    if states:
        add(
            study,
            n,
            {"lr": 0.01},
            state=TrialState.RUNNING,
            # running now: its worker (on another host) beat a moment ago
            attrs={"worker": {"host": "hostA", "pid": 1000, "id": "w0"}, "heartbeat": time.time()},
        )
    return study


# -- the three studies of the browser test and the screenshots in docs/report-screenshots -------
def _trial(
    rng: random.Random,
    number: int,
    params: dict,
    dists: dict,
    values,
    *,
    state=TrialState.COMPLETE,
    attrs: dict | None = None,
    constraint: float | None = None,
    seconds: float = 1.0,
):
    start = datetime(2026, 1, 1) + timedelta(seconds=10 * number)
    trial = create_trial(
        state=state,
        values=values if state == TrialState.COMPLETE else None,
        params=params,
        distributions={k: dists[k] for k in params},
        user_attrs=attrs or {},
        system_attrs={"constraints": [constraint]} if constraint is not None else {},
    )
    trial.datetime_start = start
    trial.datetime_complete = start + timedelta(seconds=seconds)
    return trial


def _tuneops_attrs(study: optuna.Study, objectives, *, spec: dict | None, constraints=()) -> None:
    """The study attributes a tuneops run records, through the stored-format keys."""
    from tuneops import _study

    study.set_user_attr(_study.OBJECTIVES, [{"metric": m, "direction": d} for m, d in objectives])
    if constraints:
        study.set_user_attr(_study.CONSTRAINTS, list(constraints))
    if spec is not None:
        study.set_user_attr(_study.SPEC, spec)
        study.set_user_attr(
            _study.DATA,
            {
                "name": "pmlb:spambase",
                "rows": 4601,
                "columns": 57,
                "task": "classification",
                "fingerprint": "f00dfeed",
            },
        )


def small_study(storage=None) -> optuna.Study:
    """12 trials, one objective (a first look at a quick run): a failed and a pruned trial."""
    study = build(12, multi=False, name="small", storage=storage)
    return study


def three_objective_study(n: int = 300, seed: int = 1, storage=None) -> optuna.Study:
    """accuracy (max), latency (min), model size (min) with a constraint on accuracy: infeasible
    trials, and a few huge models (outliers that must not stretch the Pareto-front axes)."""
    from tuneops import _study

    rng = random.Random(seed)
    objectives = [
        ("accuracy", "maximize"),
        ("latency_p95_ms", "minimize"),
        ("model_size_kb", "minimize"),
    ]
    study = optuna.create_study(
        study_name="three-objectives", storage=storage, directions=[d for _, d in objectives]
    )
    _tuneops_attrs(
        study,
        objectives,
        spec={"study": "three-objectives", "model": {"family": "random_forest"}},
        constraints=["accuracy >= 0.85"],
    )
    dists = {
        "n_estimators": IntDistribution(10, 500, log=True),
        "max_depth": IntDistribution(2, 20),
        "max_features": FloatDistribution(0.1, 1.0),
        "criterion": CategoricalDistribution(["gini", "entropy"]),
    }
    trials = []
    for i in range(n):
        p = {
            "n_estimators": int(round(10 ** rng.uniform(1, math.log10(500)))),
            "max_depth": rng.randint(2, 20),
            "max_features": rng.uniform(0.1, 1.0),
            "criterion": rng.choice(["gini", "entropy"]),
        }
        acc = (
            0.80
            + 0.08 * math.log10(p["n_estimators"]) / 2.7
            + 0.004 * p["max_depth"]
            - rng.uniform(0, 0.05)
        )
        lat = 0.02 * p["n_estimators"] * (1 + p["max_depth"] / 20) + rng.uniform(0, 0.3)
        size = p["n_estimators"] * 2 ** (p["max_depth"] / 5) * (50 if i % 97 == 13 else 1)
        attrs = {
            _study.WORKER: {"id": f"w{i % 3}"},
            _study.METRICS: {"accuracy": acc},
            _study.FAMILY: "random_forest",
        }
        state = TrialState.FAIL if i % 41 == 40 else TrialState.COMPLETE
        if state == TrialState.FAIL:
            attrs[_study.FAIL_REASON] = "MemoryError: tree too large"
        trials.append(
            _trial(
                rng,
                i,
                p,
                dists,
                [acc, lat, size],
                state=state,
                attrs=attrs,
                constraint=0.85 - acc,
                seconds=rng.uniform(0.5, 4),
            )
        )
    study.add_trials(trials)
    return study


FAMILIES = ("knn", "svm", "random_forest", "hist_gradient_boosting", "mlp")


def wide_study(n: int = 400, seed: int = 2, storage=None) -> optuna.Study:
    """A spec run over 5 families of 6 parameters each (30 parameters, named ``family.param``
    as tuneops names them), two objectives, 20% pruned trials with learning curves."""
    from tuneops import _study

    rng = random.Random(seed)
    objectives = [("balanced_accuracy", "maximize"), ("latency_p95_ms", "minimize")]
    study = optuna.create_study(
        study_name="wide-30-parameters", storage=storage, directions=[d for _, d in objectives]
    )
    _tuneops_attrs(
        study, objectives, spec={"study": "wide-30-parameters", "model": {"family": list(FAMILIES)}}
    )
    dists: dict = {"family": CategoricalDistribution(list(FAMILIES))}
    for f in FAMILIES:
        dists[f"{f}.learning_rate_or_c"] = FloatDistribution(1e-4, 10.0, log=True)
        dists[f"{f}.size"] = IntDistribution(1, 300, log=True)
        dists[f"{f}.regularization_strength"] = FloatDistribution(0.0, 1.0)
        dists[f"{f}.depth_or_layers"] = IntDistribution(1, 12)
        dists[f"{f}.fraction"] = FloatDistribution(0.05, 1.0)
        dists[f"{f}.variant"] = CategoricalDistribution(["a", "b", "c"])
    trials = []
    for i in range(n):
        fam = FAMILIES[i % len(FAMILIES)] if i < 50 else rng.choice(FAMILIES[:3])
        p: dict = {"family": fam}
        for name, d in dists.items():
            if not name.startswith(fam + "."):
                continue
            if isinstance(d, CategoricalDistribution):
                p[name] = rng.choice(d.choices)
            elif d.log:
                v = 10 ** rng.uniform(math.log10(d.low), math.log10(d.high))
                p[name] = int(round(v)) if isinstance(d, IntDistribution) else v
            else:
                p[name] = (
                    rng.randint(d.low, d.high)
                    if isinstance(d, IntDistribution)
                    else rng.uniform(d.low, d.high)
                )
        lr = math.log10(p[f"{fam}.learning_rate_or_c"])
        acc = (
            0.7
            + 0.05 * FAMILIES.index(fam) / 4
            - 0.01 * (lr + 1) ** 2
            + 0.1 * p[f"{fam}.fraction"]
            - rng.uniform(0, 0.03)
        )
        lat = 0.5 + 0.02 * p[f"{fam}.size"] * (1 + FAMILIES.index(fam)) + rng.uniform(0, 0.2)
        curve = {str(s): [acc * (1 - 0.5 ** (s + 1)), None] for s in range(6)}
        state = TrialState.PRUNED if i % 5 == 4 else TrialState.COMPLETE
        if state == TrialState.PRUNED:
            curve = dict(list(curve.items())[:2])
        attrs = {
            _study.WORKER: {"id": f"w{i % 4}"},
            _study.FAMILY: fam,
            _study.INTERMEDIATE: curve,
            "metrics_std": {"balanced_accuracy": 0.01},
        }
        trials.append(
            _trial(
                rng, i, p, dists, [acc, lat], state=state, attrs=attrs, seconds=rng.uniform(1, 6)
            )
        )
    study.add_trials(trials)
    return study


STUDIES = {"small": small_study, "three-objectives": three_objective_study, "wide": wide_study}
