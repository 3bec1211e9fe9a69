"""LightGBM estimators handing NumPy requests straight to their booster: identical to LightGBM's
scikit-learn wrapper, to the bit."""

from __future__ import annotations

import pickle

import lightgbm
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from tuneops.families import _lgbm, get_family

CASES = [
    ("binary", lightgbm.LGBMClassifier, _lgbm.LGBMClassifier),
    ("multiclass", lightgbm.LGBMClassifier, _lgbm.LGBMClassifier),
    ("regression", lightgbm.LGBMRegressor, _lgbm.LGBMRegressor),
]
PARAMS = {
    "n_estimators": 60,
    "num_leaves": 15,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.7,
    "reg_lambda": 0.1,
    "random_state": 0,
    "n_jobs": 1,
    "verbose": -1,
}


def _data(kind: str):
    if kind == "binary":
        X, y = load_breast_cancer(return_X_y=True)
    elif kind == "multiclass":
        X, y = load_iris(return_X_y=True)
        y = np.array(["setosa", "versicolor", "virginica"])[y]  # labels come back as strings
    else:
        X, y = load_diabetes(return_X_y=True)
    X = X.copy()
    X[::5, 1] = np.nan  # missing values go where each node learned to send them
    return X, y


def _outputs(model, X):
    out = [model.predict(X)]
    if hasattr(model, "predict_proba"):
        out.append(model.predict_proba(X))
    return out


def _same(a, b) -> bool:
    return all(
        x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize(("kind", "theirs", "ours"), CASES)
def test_predictions_are_lightgbms_to_the_bit(kind, theirs, ours) -> None:
    X, y = _data(kind)
    a, b = theirs(**PARAMS).fit(X, y), ours(**PARAMS).fit(X, y)
    for i in range(0, len(X), 7):
        assert _same(_outputs(a, X[i : i + 1]), _outputs(b, X[i : i + 1]))
    assert _same(_outputs(a, X), _outputs(b, X))
    assert _same(_outputs(a, np.asfortranarray(X[:9])), _outputs(b, np.asfortranarray(X[:9])))
    assert _same(_outputs(a, X[:9].astype(np.float32)), _outputs(b, X[:9].astype(np.float32)))
    # Boosting continued from the booster (how tuneops fits rungs), pickles and clones.
    a.set_params(n_estimators=20).fit(X, y, init_model=a.booster_)
    b.set_params(n_estimators=20).fit(X, y, init_model=b.booster_)
    assert _same(_outputs(a, X[:3]), _outputs(b, X[:3]))
    restored = pickle.loads(pickle.dumps(b))
    assert type(restored) is ours
    assert _same(_outputs(a, X[:3]), _outputs(restored, X[:3]))
    fresh = clone(b).fit(X, y)
    assert _same(_outputs(theirs(**b.get_params()).fit(X, y), X[:3]), _outputs(fresh, X[:3]))


def test_the_booster_is_called_directly_only_when_nothing_changes_the_answer(monkeypatch) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    model = _lgbm.LGBMClassifier(**PARAMS).fit(X, y)
    wrapped = []
    original = lightgbm.LGBMModel.predict

    def counted(self, *args, **kwargs):
        wrapped.append(kwargs.get("raw_score", False))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(lightgbm.LGBMModel, "predict", counted)
    model.predict(X[:1])
    model.predict_proba(X[:50])
    assert wrapped == []  # straight to the booster
    raw = model.predict_proba(X[:1], raw_score=True)  # a keyword: LightGBM's path
    assert wrapped == [True] and raw.shape == (1,)
    model.predict(X[:1].tolist())  # not an array: LightGBM validates it
    model.predict(X[:1].astype(int))  # not floats: LightGBM converts them
    model.set_params(n_jobs=2).predict(X[:1])  # serving.threads > 1: LightGBM's threads
    assert len(wrapped) == 4
    model.set_params(n_jobs=1, pred_early_stop=True).predict(X[:1])  # a prediction parameter
    assert len(wrapped) == 5
    with pytest.raises(ValueError, match="features"):
        model.set_params(pred_early_stop=False).predict(X[:1, :5])  # wrong width: its error
    assert len(wrapped) == 6
    with pytest.raises(lightgbm.compat.LGBMNotFittedError):
        _lgbm.LGBMClassifier().predict(X[:1])


def test_the_family_builds_the_direct_estimators() -> None:
    family = get_family("lightgbm")
    assert type(family.estimator({}, "classification", 0)) is _lgbm.LGBMClassifier
    assert type(family.estimator({}, "regression", 0)) is _lgbm.LGBMRegressor
