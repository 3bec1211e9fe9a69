"""Studies for report tests, built with plain Optuna and the user attributes tuneops records
(``worker``, ``warm_start``, ``fail_reason``, ``metrics``, ``metrics_std``), so the report is
tested on every trial state without depending on how other features produce them."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

DISTS = {
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "depth": IntDistribution(1, 10),
    "criterion": CategoricalDistribution(["gini", "entropy"]),
    "width": FloatDistribution(0.0, 1.0),
}


def add(study: optuna.Study, number_hint: int, params: dict, values=None, *, state=TrialState.COMPLETE,
        attrs: dict | None = None, intermediate: dict | None = None, constraint: float | None = None,
        seconds: float = 1.0) -> None:
    """Add one finished (or running) trial with the given params and marks."""
    start = datetime(2026, 1, 1) + timedelta(seconds=10 * number_hint)
    system = {"constraints": [constraint]} if constraint is not None else {}
    trial = create_trial(
        state=state, values=values if state == TrialState.COMPLETE else None,
        params=params, distributions={k: DISTS[k] for k in params},
        user_attrs=attrs or {}, system_attrs=system, intermediate_values=intermediate or {},
    )
    trial.datetime_start = start
    trial.datetime_complete = None if state == TrialState.RUNNING else start + timedelta(seconds=seconds)
    study.add_trial(trial)


def build(n: int = 40, *, multi: bool = True, seed: int = 0, states: bool = True,
          name: str = "report-test", storage=None) -> optuna.Study:
    """A study of ``n`` trials: accuracy (max, and latency (min) when ``multi``), with two
    workers, 3 warm-start trials, learning curves, and (``states``) failed, pruned, infeasible
    and one running trial."""
    rng = random.Random(seed)
    directions = ["maximize", "minimize"] if multi else ["maximize"]
    study = optuna.create_study(study_name=name, storage=storage, directions=directions)
    study.set_user_attr("tuneops:objectives", [{"metric": "accuracy", "direction": "maximize"}]
                        + ([{"metric": "latency_p95_ms", "direction": "minimize"}] if multi else []))
    study.set_user_attr("tuneops:data", {"name": "sklearn:iris", "rows": 150, "columns": 4,
                                         "task": "classification", "fingerprint": "abc123"})
    study.set_user_attr("tuneops:spec", {"study": name, "data": {"source": "sklearn:iris"}})
    for i in range(n):
        params = {"lr": 10 ** rng.uniform(-4, 0), "depth": rng.randint(1, 10),
                  "criterion": rng.choice(["gini", "entropy"])}
        acc = 0.9 - 0.02 * (math.log10(params["lr"]) + 2) ** 2 + 0.003 * params["depth"] + rng.uniform(0, 0.01)
        lat = 1.0 + params["depth"] + rng.uniform(0, 0.5)
        attrs = {"worker": {"host": "hostA", "pid": 1000 + i % 2, "id": f"w{i % 2}"},
                 "metrics": {"accuracy": acc, "latency_p95_ms": lat},
                 "metrics_std": {"accuracy": 0.002}}
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
        add(study, i, params, [acc, lat] if multi else [acc], state=state, attrs=attrs,
            intermediate=curve, constraint=(lat - 9.0) if states else None)
    if states:
        add(study, n, {"lr": 0.01}, state=TrialState.RUNNING, attrs={"worker": {"host": "hostA", "pid": 1000, "id": "w0"}})
    return study
