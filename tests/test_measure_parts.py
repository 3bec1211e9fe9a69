"""measure_latency times only the parts (one-row, batch) whose metrics are wanted."""

from __future__ import annotations

import pytest
from sklearn.ensemble import RandomForestClassifier

from tuneops.data import load_dataset
from tuneops.measure import (
    BATCH_METRICS,
    ROW_METRICS,
    LatencyConfig,
    ServingConfig,
    measure_latency,
)

FAST = LatencyConfig(budget_s=0.2, min_calls=6, p95_calls=6)
SERVE = ServingConfig(batch_size=32)


class CountingModel:
    """Counts predict calls by batch size, so the test sees which parts ran."""

    def __init__(self, model):
        self.model, self.sizes = model, []

    def predict(self, X):
        self.sizes.append(len(X))
        return self.model.predict(X)


@pytest.fixture(scope="module")
def model_and_rows():
    ds = load_dataset("sklearn:iris")
    return RandomForestClassifier(n_estimators=5, random_state=0, n_jobs=1).fit(ds.X, ds.y), ds.X


@pytest.mark.parametrize(
    ("wanted", "keys", "row_calls", "batch_calls"),
    [
        (None, ROW_METRICS + BATCH_METRICS, True, True),
        (["latency_p95_ms"], ROW_METRICS, True, False),
        (["throughput_rows_per_s"], BATCH_METRICS, False, True),
    ],
)
def test_only_the_wanted_parts_are_timed(model_and_rows, wanted, keys, row_calls, batch_calls):
    model, X = model_and_rows
    counting = CountingModel(model)
    out = measure_latency(counting, X, FAST, metrics=wanted, serving=SERVE)
    assert set(out) == set(keys)
    assert (1 in counting.sizes) is row_calls
    assert (SERVE.batch_size in counting.sizes) is batch_calls
    assert all(v > 0 for v in out.values())


def test_a_spec_objective_measures_only_its_latency_metrics():
    from optuna.trial import FixedTrial

    from tuneops.objective import SpecObjective
    from tuneops.spec import load_spec

    spec = load_spec({"data": {"source": "sklearn:iris"}, "model": {"family": "knn"},
                      "objectives": ["accuracy", "latency_p95_ms"], "search": {"n_trials": 1, "cv_folds": 2}})
    objective = SpecObjective(spec, load_dataset("sklearn:iris"), latency=FAST)
    trial = FixedTrial({"n_neighbors": 5, "weights": "uniform", "p": 2})
    objective(trial)
    metrics = trial.user_attrs["metrics"]
    assert {"accuracy", "latency_p50_ms", "latency_p95_ms"} <= set(metrics)
    assert not set(BATCH_METRICS) & set(metrics)
