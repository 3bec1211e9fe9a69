from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from tuneops.data import load_dataset
from tuneops.measure import LatencyConfig, make_folds, measure_latency, model_size_kb, score


@pytest.fixture(scope="module")
def fitted():
    ds = load_dataset("sklearn:breast_cancer")
    model = RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1).fit(ds.X, ds.y)
    return ds, model


def test_folds_are_deterministic_and_stratified():
    y = load_dataset("sklearn:iris").y
    a, b = make_folds(y, "classification", 3, seed=1), make_folds(y, "classification", 3, seed=1)
    assert all((x[1] == z[1]).all() for x, z in zip(a, b))
    for _, test in a:
        assert set(np.bincount(y.iloc[test])) == {50 // 3, 50 // 3 + 1} or len(set(np.bincount(y.iloc[test]))) == 1


def test_score_matches_sklearn(fitted):
    ds, model = fitted
    got = score(model, ds.X, ds.y, ["accuracy", "f1", "roc_auc", "log_loss", "latency_p95_ms"])
    assert set(got) == {"accuracy", "f1", "roc_auc", "log_loss"}
    pred, proba = model.predict(ds.X), model.predict_proba(ds.X)
    assert got["accuracy"] == pytest.approx(accuracy_score(ds.y, pred))
    # Binary f1 scores the minority class by default: 0 (malignant, 212 of 569 rows).
    assert got["f1"] == pytest.approx(f1_score(ds.y, pred, pos_label=0))
    assert got["roc_auc"] == pytest.approx(roc_auc_score(ds.y, proba[:, 1]))
    assert got["log_loss"] == pytest.approx(log_loss(ds.y, proba))


def test_latency_is_measured_per_row_and_per_batch(fitted):
    ds, model = fitted
    lat = measure_latency(model, ds.X, LatencyConfig(repeats=10, batch_repeats=3, max_seconds=0.5))
    assert 0 < lat["latency_p50_ms"] <= lat["latency_p95_ms"]
    assert lat["throughput_rows_per_s"] == pytest.approx(256 / (lat["batch_latency_p50_ms"] / 1e3))


def test_size_grows_with_the_model(fitted):
    ds, small = fitted
    big = RandomForestClassifier(n_estimators=40, random_state=0, n_jobs=1).fit(ds.X, ds.y)
    assert model_size_kb(big) > 2 * model_size_kb(small) > 0
