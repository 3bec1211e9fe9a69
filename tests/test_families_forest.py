"""Forests predicting through their trees directly: identical to scikit-learn's, to the bit."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import sparse
from sklearn import ensemble
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from tuneops.families import _forest, get_family

PAIRS = [
    (ensemble.RandomForestClassifier, _forest.RandomForestClassifier),
    (ensemble.ExtraTreesClassifier, _forest.ExtraTreesClassifier),
    (ensemble.RandomForestRegressor, _forest.RandomForestRegressor),
    (ensemble.ExtraTreesRegressor, _forest.ExtraTreesRegressor),
]


def _data(classifier: bool, kind: str):
    if not classifier:
        X, y = load_diabetes(return_X_y=True)
        return X, y
    if kind == "binary":
        return load_breast_cancer(return_X_y=True)
    X, y = load_iris(return_X_y=True)
    return X, np.array(["setosa", "versicolor", "virginica"])[y]  # string labels, 3 classes


CASES = [
    (theirs, ours, kind)
    for theirs, ours in PAIRS
    for kind in (
        ("binary", "multiclass")
        if issubclass(theirs, ensemble._forest.ForestClassifier)
        else ("regression",)
    )
]


@pytest.mark.parametrize(("theirs", "ours", "kind"), CASES)
def test_predictions_are_scikit_learns_to_the_bit(theirs, ours, kind) -> None:
    classifier = kind != "regression"
    X, y = _data(classifier, kind)
    X = X.copy()
    X[::9, 1] = np.nan  # missing values take the trees' learned direction
    params = {"n_estimators": 37, "max_features": 0.5, "random_state": 3, "n_jobs": 1}
    a, b = theirs(**params).fit(X, y), ours(**params).fit(X, y)
    for rows in (X, X[:1], X[5:9]):
        assert np.array_equal(a.predict(rows), b.predict(rows))
        if classifier:
            assert np.array_equal(a.predict_proba(rows), b.predict_proba(rows))
    # Sparse input, a pickled copy and a clone fitted again: the same numbers.
    assert np.array_equal(a.predict(sparse.csr_matrix(np.nan_to_num(X))),
                          b.predict(sparse.csr_matrix(np.nan_to_num(X))))
    assert np.array_equal(pickle.loads(pickle.dumps(b)).predict(X), a.predict(X))
    assert np.array_equal(clone(b).fit(X, y).predict(X), a.predict(X))


def test_direct_path_skips_joblib_and_threads_defer_to_scikit_learn(monkeypatch) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    forest = _forest.RandomForestClassifier(n_estimators=5, random_state=0, n_jobs=1).fit(X, y)
    expected = forest.predict(X[:3])

    def refuse(*args, **kwargs):
        raise AssertionError("scikit-learn's joblib path ran")

    monkeypatch.setattr(ensemble._forest, "Parallel", refuse)
    assert np.array_equal(forest.predict(X[:3]), expected)  # direct: joblib never called
    forest.set_params(n_jobs=2)  # serving.threads > 1: scikit-learn's threaded path
    with pytest.raises(AssertionError, match="joblib path ran"):
        forest.predict(X[:3])
    with pytest.raises(Exception, match="not fitted"):
        _forest.RandomForestRegressor().predict(X[:3])


@pytest.mark.parametrize("name", ["random_forest", "extra_trees"])
def test_the_forest_families_build_the_direct_forests(name) -> None:
    family = get_family(name)
    assert isinstance(family.estimator({}, "classification", 0), ensemble._forest.ForestClassifier)
    assert type(family.estimator({}, "classification", 0)).__module__ == _forest.__name__
    assert type(family.estimator({}, "regression", 0)).__module__ == _forest.__name__


def _same_trees(a, b) -> bool:
    return len(a.estimators_) == len(b.estimators_) and all(
        ta.get_params() == tb.get_params()
        and all(
            np.array_equal(getattr(ta.tree_, f), getattr(tb.tree_, f), equal_nan=True)
            for f in ("children_left", "children_right", "feature", "threshold", "value", "missing_go_to_left")
        )
        for ta, tb in zip(a.estimators_, b.estimators_)
    )


@pytest.mark.parametrize(("theirs", "ours", "kind"), CASES)
@pytest.mark.parametrize(
    "params",
    [
        {"max_features": "sqrt", "max_depth": 6, "min_samples_leaf": 2},
        {"bootstrap": False, "max_features": 0.7, "ccp_alpha": 0.001},
        {"bootstrap": True, "max_samples": 0.5, "criterion": "entropy"},
    ],
    ids=["sqrt-depth", "no-bootstrap", "half-samples"],
)
def test_fitting_makes_scikit_learns_trees_node_for_node(theirs, ours, kind, params) -> None:
    if params.get("criterion") == "entropy" and kind == "regression":
        params = {**params, "criterion": "absolute_error"}
    X, y = _data(kind != "regression", kind)
    a, b = (cls(n_estimators=12, random_state=5, n_jobs=1, **params).fit(X, y) for cls in (theirs, ours))
    assert _same_trees(a, b)
    # grown in steps with warm_start (the families' fidelity steps): the same forest again
    a.set_params(warm_start=True, n_estimators=30).fit(X, y)
    b.set_params(warm_start=True, n_estimators=30).fit(X, y)
    assert _same_trees(a, b)
    assert np.array_equal(a.predict(X), b.predict(X))
    # an unseeded forest still draws its trees' seeds from one generator (distinct trees)
    free = ours(n_estimators=3, n_jobs=1, **{k: v for k, v in params.items() if k != "criterion"}).fit(X, y)
    assert len({t.random_state for t in free.estimators_}) == 3
