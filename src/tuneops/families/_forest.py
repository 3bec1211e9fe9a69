"""Forests that predict through their trees directly: the same numbers, without the machinery.

scikit-learn's forests predict by sending every tree through joblib (even with ``n_jobs=1``),
and each tree checks again that it is fitted and how many features it has. On one row that
machinery is most of the cost: about 0.15 ms per tree (a 100-tree forest on breast cancer,
16.6 ms per one-row ``predict`` against 1.4 ms through the trees directly, on 2 shared cores).
That cost is what a latency objective measured and what ``tuneops serve`` paid on every
request, and it has nothing to do with the configuration being tuned.

These subclasses keep everything of scikit-learn's forests (parameters, fitting, pickling,
``clone``) and override ``predict_proba`` (classifiers; ``predict`` uses it) and ``predict``
(regressors) when the forest predicts single-threaded with one output: the input is validated
once, as scikit-learn does, then each tree's leaf values are added in the order of
``estimators_`` and divided by their number. That is scikit-learn's own arithmetic with
``n_jobs=1`` (the same float64 sums in the same order), so predictions are identical to the
bit; the tests compare them on every kind of target. With ``n_jobs`` > 1 (``serving.threads``)
or several outputs, scikit-learn's path runs.

Fitting has the same kind of machinery per tree: scikit-learn makes each tree by cloning a
prototype, setting the forest's parameters on it and drawing its seed, and each of those steps
inspects the tree class's signature again (``get_params``), about 0.5 ms per tree: 14% of a
100-tree forest's fit on breast cancer (0.33 -> 0.28 CPU-s). ``_make_estimator`` here makes the
same tree from the same parameters and draws the same seed from the same generator, with the
signature read once per class; the trees are identical (tests compare every node).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import ensemble
from sklearn.tree import (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    ExtraTreeClassifier,
    ExtraTreeRegressor,
)
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
]


def _direct(forest: Any) -> bool:
    """Whether ``forest`` (fitted) predicts through its trees directly."""
    return forest.n_outputs_ == 1 and forest.n_jobs in (None, 1)


def _tree_average(forest: Any, X: Any, *, classes: bool) -> np.ndarray:
    """The trees' leaf values added in ``estimators_`` order, divided by their number: class
    probabilities (one column per class) or, for a regressor, the single output as a vector."""
    X = forest._validate_X_predict(X)
    k = int(forest.n_classes_) if classes else 1
    out = np.zeros((X.shape[0], k), dtype=np.float64)
    for tree in forest.estimators_:
        out += tree.tree_.predict(X)[:, :k]
    out /= len(forest.estimators_)
    return out if classes else out[:, 0]


_TREES = (DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier, ExtraTreeRegressor)
_PARAM_NAMES: dict[type, list[str]] = {}  # tree class -> its parameters, read once
_SEED_MAX = np.iinfo(np.int32).max


class _DirectTrees:
    """Makes each new tree of a fit without re-reading the tree class's signature."""

    def _make_estimator(self, append: bool = True, random_state: Any = None) -> Any:
        proto = self.estimator_  # type: ignore[attr-defined]
        cls = type(proto)
        if cls not in _TREES:
            return super()._make_estimator(append, random_state)  # type: ignore[misc]
        names = _PARAM_NAMES.get(cls)
        if names is None:
            names = _PARAM_NAMES[cls] = sorted(cls._get_param_names())
        # scikit-learn: clone(proto), then set_params(the forest's estimator_params), then
        # _set_random_states (one draw, for the tree's only random_state parameter)
        params = {name: getattr(proto, name) for name in names}
        params.update({p: getattr(self, p) for p in self.estimator_params})  # type: ignore[attr-defined]
        if random_state is not None:
            params["random_state"] = check_random_state(random_state).randint(_SEED_MAX)
        made = cls(**params)
        if append:
            self.estimators_.append(made)  # type: ignore[attr-defined]
        return made


class _DirectClassifier(_DirectTrees):
    """Class probabilities through the trees directly when the forest allows it."""

    def predict_proba(self, X: Any) -> Any:
        check_is_fitted(self)
        if not _direct(self):
            return super().predict_proba(X)  # type: ignore[misc]
        return _tree_average(self, X, classes=True)


class _DirectRegressor(_DirectTrees):
    """The mean prediction through the trees directly when the forest allows it."""

    def predict(self, X: Any) -> Any:
        check_is_fitted(self)
        if not _direct(self):
            return super().predict(X)  # type: ignore[misc]
        return _tree_average(self, X, classes=False)


class RandomForestClassifier(_DirectClassifier, ensemble.RandomForestClassifier):
    __doc__ = ensemble.RandomForestClassifier.__doc__


class ExtraTreesClassifier(_DirectClassifier, ensemble.ExtraTreesClassifier):
    __doc__ = ensemble.ExtraTreesClassifier.__doc__


class RandomForestRegressor(_DirectRegressor, ensemble.RandomForestRegressor):
    __doc__ = ensemble.RandomForestRegressor.__doc__


class ExtraTreesRegressor(_DirectRegressor, ensemble.ExtraTreesRegressor):
    __doc__ = ensemble.ExtraTreesRegressor.__doc__
