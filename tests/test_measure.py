from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from tuneops.data import load_dataset
from tuneops.errors import SpecError
from tuneops.measure import (
    LatencyConfig,
    baseline_scores,
    make_folds,
    measure_latency,
    model_size_kb,
    score,
    scoring_record,
)
from tuneops.objective import SpecObjective
from tuneops.spec import load_spec


@pytest.fixture(scope="module")
def fitted():
    ds = load_dataset("sklearn:breast_cancer")
    model = RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1).fit(ds.X, ds.y)
    return ds, model


def test_folds_are_deterministic_and_stratified():
    y = load_dataset("sklearn:iris").y
    a, b = make_folds(y, "classification", 3, seed=1), make_folds(y, "classification", 3, seed=1)
    assert all((x[1] == z[1]).all() for x, z in zip(a, b, strict=True))
    for _, test in a:
        counts = set(np.bincount(y.iloc[test]))
        assert counts == {50 // 3, 50 // 3 + 1} or len(counts) == 1


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
    lat = measure_latency(model, ds.X, LatencyConfig(budget_s=0.5, min_calls=10, p95_calls=10))
    assert 0 < lat["latency_p50_ms"] <= lat["latency_p95_ms"]
    assert lat["throughput_rows_per_s"] == pytest.approx(256 / (lat["batch_latency_p50_ms"] / 1e3))


def test_size_grows_with_the_model(fitted):
    ds, small = fitted
    big = RandomForestClassifier(n_estimators=40, random_state=0, n_jobs=1).fit(ds.X, ds.y)
    assert model_size_kb(big) > 2 * model_size_kb(small) > 0


def test_cv_folds_beyond_the_rows_or_the_smallest_class_is_refused():
    y = pd.Series(["a", "b"] * 10 + ["c"] * 2)
    smallest = r"search.cv_folds: expected at most 2 \(the smallest class, 'c', has 2 rows"
    with pytest.raises(SpecError, match=smallest + ".*received 3"):
        make_folds(y, "classification", 3, seed=0)
    assert len(make_folds(y, "classification", 2, seed=0)) == 2
    rows = r"search.cv_folds: expected at most 12 \(the data has 12 rows"
    with pytest.raises(SpecError, match=rows + ".*received 20"):
        make_folds(pd.Series(np.arange(12.0)), "regression", 20, seed=0)
    # Few integer values are taken as classes: the message says how to change that.
    counts = pd.Series([1] * 30 + [2] * 30 + [7])
    with pytest.raises(SpecError, match="set data.task: regression"):
        make_folds(counts, "classification", 3, seed=0)


def test_baseline_is_the_majority_class_or_the_mean_on_the_same_folds():
    y = pd.Series(["live"] * 40 + ["die"] * 10)
    folds = make_folds(y, "classification", 5, seed=0)
    names = ["accuracy", "f1", "roc_auc", "latency_p95_ms"]
    record = scoring_record(y, "classification", folds, names, labels=["die", "live"],
                            pos_label="die")
    assert record["pos_label"] == "die" and record["average"] == "binary"
    assert record["baseline_model"] == "majority class"
    assert record["baseline"] == pytest.approx({"accuracy": 0.8, "f1": 0.0, "roc_auc": 0.5})
    r = pd.Series(np.arange(30.0))
    base = baseline_scores(r, "regression", make_folds(r, "regression", 3, seed=0), ["r2", "mae"])
    assert base["r2"] < 0 < base["mae"]  # the training fold's mean predicts no test fold


def test_the_study_objective_scores_the_spec_positive_label():
    X, y = np.random.default_rng(0).normal(size=(60, 2)), ["yes"] * 45 + ["no"] * 15
    frame = pd.DataFrame(X, columns=["a", "b"]).assign(target=y)
    data = load_dataset(frame)
    spec = {"data": {"source": "frame"}, "model": {"family": "knn"}, "objectives": ["f1"],
            "search": {"n_trials": 1, "cv_folds": 3}}
    assert SpecObjective(load_spec(spec), data).pos_label == "no"  # the minority
    explicit = load_spec({**spec, "data": {"source": "frame", "pos_label": "yes"}})
    assert SpecObjective(explicit, data).pos_label == "yes"
