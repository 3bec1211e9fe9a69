"""The metric registry: positive class of binary metrics, sklearn agreement, one source for all."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
from sklearn.svm import LinearSVC

from tuneops.errors import SpecError
from tuneops.measure import score
from tuneops.metrics import METRICS, check_task, positive_label
from tuneops.ops.monitor import PERFORMANCE_METRICS, metric_value


def hepatitis_like(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """PMLB hepatitis' shape: 155 patients, 123 'live' and 32 'die'."""
    rng = np.random.default_rng(seed)
    y = pd.Series(["live"] * 123 + ["die"] * 32)
    X = pd.DataFrame(
        {"bilirubin": rng.normal(size=155) + (y == "die") * 1.5, "age": rng.normal(size=155)}
    )
    return X, y


def test_binary_f1_scores_the_minority_class_by_default() -> None:
    X, y = hepatitis_like()
    assert positive_label(y) == "die"
    constant = DummyClassifier(strategy="most_frequent").fit(X, y)  # always 'live'
    got = score(
        constant, X, y, ["f1", "precision", "recall", "accuracy"], pos_label=positive_label(y)
    )
    # The old sorted-order rule scored 'live' here: a constant model got f1 0.885.
    assert got["f1"] == 0.0 and got["recall"] == 0.0 and got["precision"] == 0.0
    assert got["accuracy"] == pytest.approx(123 / 155)
    assert score(constant, X, y, ["f1"])["f1"] == 0.0  # no pos_label: the minority of y
    live = score(constant, X, y, ["f1"], pos_label=positive_label(y, "live"))["f1"]
    assert live == pytest.approx(f1_score(y, constant.predict(X), pos_label="live")) and live > 0.88


def test_positive_label_default_and_validation() -> None:
    assert positive_label(pd.Series([0, 1, 1])) == 0
    assert positive_label(pd.Series([0, 0, 1, 1])) == 1  # tie: sklearn's classes_[1]
    assert isinstance(positive_label(pd.Series(np.array([3, 7, 7]))), int)  # plain, JSON-ready
    assert positive_label(pd.Series([0, 1, 2])) is None  # multiclass: macro averaging
    assert positive_label(pd.Series([0, 1, 1]), "1") == 1  # YAML text matches an integer class
    assert positive_label(pd.Series([True, False, False]), True) is True
    with pytest.raises(
        SpecError,
        match=r"data.pos_label: expected one of the target's classes 'die', 'live', "
        "received 'dead'",
    ):
        positive_label(pd.Series(["live", "die"]), "dead")
    with pytest.raises(
        SpecError, match="data.pos_label: expected no pos_label for a target of 3 classes.*macro"
    ):
        positive_label(pd.Series(["a", "b", "c"]), "a")
    with pytest.raises(SpecError, match="received 1"):
        positive_label(pd.Series([True, False]), 1)  # True == 1 in Python, not here


def test_binary_scores_use_the_positive_column() -> None:
    X, y = hepatitis_like(1)
    pos = positive_label(y)
    proba_model = LogisticRegression().fit(X, y)
    got = score(proba_model, X, y, ["roc_auc", "average_precision"], pos_label=pos)
    column = list(proba_model.classes_).index(pos)
    p = proba_model.predict_proba(X)[:, column]
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y == pos, p))
    assert got["average_precision"] == pytest.approx(average_precision_score(y == pos, p))
    # A 1-D decision function scores classes_[1] ('live'); 'die' is scored by its negation.
    margin_model = LinearSVC().fit(X, y)
    got = score(margin_model, X, y, ["roc_auc", "average_precision"], pos_label=pos)
    d = -margin_model.decision_function(X)
    assert got["average_precision"] == pytest.approx(average_precision_score(y == pos, d))
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y == pos, d))


def test_multiclass_is_macro_averaged() -> None:
    rng = np.random.default_rng(0)
    y = pd.Series(rng.choice(["a", "b", "c"], size=90))
    X = pd.DataFrame({"x": rng.normal(size=90) + (y == "a")})
    model = LogisticRegression().fit(X, y)
    got = score(model, X, y, ["f1", "average_precision", "roc_auc"])
    assert got["f1"] == pytest.approx(f1_score(y, model.predict(X), average="macro"))
    onehot = np.stack([(y == c).to_numpy() for c in model.classes_], axis=1)
    assert got["average_precision"] == pytest.approx(
        average_precision_score(onehot, model.predict_proba(X), average="macro")
    )
    assert got["roc_auc"] == pytest.approx(
        roc_auc_score(y, model.predict_proba(X), multi_class="ovr")
    )


def test_multiclass_roc_auc_ranks_each_class_on_its_own_column() -> None:
    """An SVM's decision scores (no probabilities), and a fold that misses a class: each class
    against the rest on its own column, never on rows renormalised by their sum (which reorders
    a column: a user's ecoli study reported 0.9637 for an AUC of 0.9659)."""
    from sklearn.svm import SVC

    rng = np.random.default_rng(1)
    y = pd.Series(rng.choice(["a", "b", "c", "d"], size=120))
    X = pd.DataFrame({"x": rng.normal(size=120) + (y == "a") - (y == "b"), "z": rng.normal(size=120)})
    model = SVC().fit(X, y)
    d = model.decision_function(X)
    got = score(model, X, y, ["roc_auc"])["roc_auc"]
    per_class = [roc_auc_score(y == c, d[:, i]) for i, c in enumerate(model.classes_)]
    assert got == pytest.approx(np.mean(per_class))
    normalised = d / d.sum(axis=1, keepdims=True)
    assert got != pytest.approx(roc_auc_score(y, normalised, multi_class="ovr"))
    # a fold without "d": the three classes present, each on its own column
    fold = (y != "d").to_numpy()
    got = score(model, X[fold], y[fold], ["roc_auc"])["roc_auc"]
    assert got == pytest.approx(np.mean([roc_auc_score(y[fold] == c, d[fold][:, i])
                                         for i, c in enumerate(model.classes_) if c != "d"]))


def test_registry_entries_are_complete() -> None:
    for m in METRICS.values():
        assert m.direction in ("maximize", "minimize")
        assert m.is_quality != m.is_serving_cost
        assert (m.compute is not None) == m.is_quality, m.name
    with pytest.raises(ValueError, match="serving cost"):
        METRICS["latency_p95_ms"].score([1], [1])
    assert set(PERFORMANCE_METRICS) == {
        n for n, m in METRICS.items() if m.is_quality and not m.needs_scores
    }


def test_a_metric_of_the_other_task_mentions_data_task() -> None:
    with pytest.raises(
        SpecError, match="metric 'rmse' applies to regression.*set data.task: regression"
    ):
        check_task(["accuracy", "rmse"], "classification", "wine quality")
    check_task(["r2", "latency_p95_ms"], "regression", "diabetes")


@pytest.mark.parametrize("case", ["binary", "multiclass", "regression"])
def test_monitor_and_measure_give_identical_values(case: str) -> None:
    """Both go through the registry: the same (y, pred) gives the same number."""
    rng = np.random.default_rng(3)
    if case == "regression":
        X = pd.DataFrame({"x": rng.normal(size=120)})
        y = pd.Series(2 * X["x"] + rng.normal(size=120))
        model, task, pos = LinearRegression().fit(X, y), "regression", None
    else:
        X, y = hepatitis_like(2)
        if case == "multiclass":
            y = pd.Series(np.where(X["age"] > 0.8, "mild", y))
        model, task, pos = LogisticRegression().fit(X, y), "classification", positive_label(y)
    names = [n for n, m in PERFORMANCE_METRICS.items() if task in m.tasks]
    assert len(names) >= 3
    measured = score(model, X, y, names, pos_label=pos)
    for name in names:
        monitored = metric_value(name, y.to_numpy(), model.predict(X), pos_label=pos)
        assert monitored == pytest.approx(measured[name], abs=1e-12), name


def test_descriptions_state_the_clock_and_unit_measured():
    """`tuneops metrics` said "mean seconds to fit" (the measure is CPU seconds: the progress
    lines' seconds are wall time) and "ms to predict one row" (CPU ms, per call of the serving
    path, a batch on `serving.path: batch`)."""
    from tuneops.metrics import METRICS

    assert METRICS["fit_time_s"].description.startswith("mean CPU seconds to fit")
    for name in ("latency_p50_ms", "latency_p95_ms"):
        assert "CPU ms per call on the serving path" in METRICS[name].description
    assert METRICS["model_size_kb"].description.endswith("in KiB")
