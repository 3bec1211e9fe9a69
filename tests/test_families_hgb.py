"""Histogram gradient boosting predicting a few rows through all trees at once: identical to
scikit-learn's predictions, to the bit."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn import ensemble
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from tuneops.families import _hgb, get_family

CASES = [
    ("binary", ensemble.HistGradientBoostingClassifier, _hgb.HistGradientBoostingClassifier),
    ("multiclass", ensemble.HistGradientBoostingClassifier, _hgb.HistGradientBoostingClassifier),
    ("regression", ensemble.HistGradientBoostingRegressor, _hgb.HistGradientBoostingRegressor),
]


def _data(kind: str):
    if kind == "binary":
        X, y = load_breast_cancer(return_X_y=True)
    elif kind == "multiclass":
        X, y = load_iris(return_X_y=True)
        y = np.array(["setosa", "versicolor", "virginica"])[y]
    else:
        X, y = load_diabetes(return_X_y=True)
    X = X.copy()
    X[::5, 1] = np.nan  # missing values go where each node learned to send them
    return X, y


@pytest.mark.parametrize(("kind", "theirs", "ours"), CASES)
def test_raw_predictions_are_scikit_learns_to_the_bit(kind, theirs, ours) -> None:
    X, y = _data(kind)
    params = {"max_iter": 60, "max_leaf_nodes": 15, "random_state": 0}
    a, b = theirs(**params).fit(X, y), ours(**params).fit(X, y)
    for i in range(0, len(X), 3):
        row = X[i : i + 1]
        assert np.array_equal(a._raw_predict(row), b._raw_predict(row))
        assert np.array_equal(a.predict(row), b.predict(row))
    few = X[: _hgb.DIRECT_ROWS]
    assert np.array_equal(a._raw_predict(few), b._raw_predict(few))
    assert np.array_equal(a.predict(X), b.predict(X))  # many rows: scikit-learn's path
    # Warm start adds iterations: the stacked trees follow; a pickle leaves the cache out.
    b.set_params(max_iter=90, warm_start=True).fit(X, y)
    a.set_params(max_iter=90, warm_start=True).fit(X, y)
    assert np.array_equal(a._raw_predict(X[:1]), b._raw_predict(X[:1]))
    restored = pickle.loads(pickle.dumps(b))
    assert not hasattr(restored, "_tuneops_stack")
    assert np.array_equal(restored._raw_predict(X[:1]), a._raw_predict(X[:1]))
    assert np.array_equal(clone(b).fit(X, y).predict(X[:2]), theirs(**b.get_params()).fit(X, y).predict(X[:2]))


def test_the_direct_path_runs_for_few_rows_and_defers_otherwise(monkeypatch) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    model = _hgb.HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    calls = []
    original = ensemble.HistGradientBoostingClassifier._predict_iterations

    def counted(self, *args, **kwargs):
        calls.append(args[0].shape[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ensemble.HistGradientBoostingClassifier, "_predict_iterations", counted)
    model.predict(X[:1])
    model.predict(X[: _hgb.DIRECT_ROWS])
    assert calls == []  # direct
    model.predict(X[: _hgb.DIRECT_ROWS + 1])
    assert calls == [_hgb.DIRECT_ROWS + 1]  # scikit-learn's per-tree loop


def test_categorical_splits_go_to_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"c": rng.integers(0, 5, 300), "x": rng.normal(size=300)})
    y = (X["c"].isin([1, 3]) ^ (X["x"] > 0)).astype(int)
    params = {"max_iter": 30, "categorical_features": [0], "random_state": 0}
    a = ensemble.HistGradientBoostingClassifier(**params).fit(X, y)
    b = _hgb.HistGradientBoostingClassifier(**params).fit(X, y)
    assert _hgb._stack(b) is None  # a categorical split: not stacked
    assert np.array_equal(a._raw_predict(X[:1]), b._raw_predict(X[:1]))


def test_the_family_builds_the_direct_estimators() -> None:
    family = get_family("hist_gradient_boosting")
    assert type(family.estimator({}, "classification", 0)).__module__ == _hgb.__name__
    assert type(family.estimator({}, "regression", 0)).__module__ == _hgb.__name__
