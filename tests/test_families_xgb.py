"""XGBoost's classifier with labels of any kind: strings and labels that do not start at 0."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import xgboost
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.metrics import f1_score, get_scorer

from tuneops.families import _xgb, get_family

PARAMS = {"n_estimators": 30, "max_depth": 3, "random_state": 0, "n_jobs": 1}


@pytest.mark.parametrize(
    ("load", "names"),
    [(load_breast_cancer, np.array(["bad", "good"])), (load_iris, np.array([3, 5, 9]))],
)
def test_any_labels_give_xgboosts_own_model(load, names) -> None:
    X, codes = load(return_X_y=True)
    y = names[codes]
    with pytest.raises(ValueError, match="Invalid classes"):
        xgboost.XGBClassifier(**PARAMS).fit(X, y)  # what a study lost every XGBoost trial to
    theirs = xgboost.XGBClassifier(**PARAMS).fit(X, codes)
    ours = _xgb.XGBClassifier(**PARAMS).fit(X, y)
    assert list(ours.classes_) == list(names)
    assert np.array_equal(ours.predict_proba(X), theirs.predict_proba(X))
    assert np.array_equal(ours.predict(X), names[theirs.predict(X)])
    # Continued boosting (tuneops' rungs), pickles and clones keep the labels.
    ours.set_params(n_estimators=10).fit(X, y, xgb_model=ours.get_booster())
    theirs.set_params(n_estimators=10).fit(X, codes, xgb_model=theirs.get_booster())
    assert np.array_equal(ours.predict_proba(X[:5]), theirs.predict_proba(X[:5]))
    restored = pickle.loads(pickle.dumps(ours))
    assert np.array_equal(restored.predict(X[:5]), ours.predict(X[:5]))
    assert list(clone(ours).fit(X, y).classes_) == list(names)


def test_scorers_find_the_positive_label() -> None:
    X, codes = load_breast_cancer(return_X_y=True)
    y = np.array(["bad", "good"])[codes]
    model = _xgb.XGBClassifier(**PARAMS).fit(X[:400], y[:400])
    auc = get_scorer("roc_auc")(model, X[400:], y[400:])
    assert 0.9 < auc <= 1.0
    assert f1_score(y[400:], model.predict(X[400:]), pos_label="good") > 0.9


def test_the_family_builds_it_and_a_failed_fit_keeps_the_labels() -> None:
    family = get_family("xgboost")
    assert type(family.estimator({}, "classification", 0)) is _xgb.XGBClassifier
    X, codes = load_breast_cancer(return_X_y=True)
    model = _xgb.XGBClassifier(**PARAMS).fit(X, np.array(["bad", "good"])[codes])
    with pytest.raises(ValueError):
        model.fit(X[:, :3], np.full(len(X), "bad"), xgb_model=model.get_booster())
    assert list(model.classes_) == ["bad", "good"]


def test_a_space_without_n_estimators_trains_xgboosts_default_rounds_in_steps() -> None:
    family = get_family("xgboost")
    X, y = load_breast_cancer(return_X_y=True)
    model, state = family.estimator({}, "classification", 0), {}
    family.advance(model, X, y, 0.5, state)  # failed with a TypeError: None * 0.5
    family.advance(model, X, y, 1.0, state)
    plain = xgboost.XGBClassifier(n_jobs=1).fit(X, y)  # n_estimators=None: XGBoost's own 100
    assert model.get_booster().num_boosted_rounds() == plain.get_booster().num_boosted_rounds() == 100
