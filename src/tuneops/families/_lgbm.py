"""LightGBM estimators that hand a NumPy request straight to their booster: the same numbers.

LightGBM's scikit-learn wrapper prepares every ``predict`` call before its booster sees the
rows: scikit-learn's input validation, the whole parameter set rebuilt from ``get_params`` and
its aliases resolved, and that set (a few dozen training parameters) sent to the C++ side as
a string it parses again; a classifier's ``predict`` then maps class indices back through
``LabelEncoder.inverse_transform``, which re-checks them. On one row of a 100-tree model that
is about 1.6 ms of CPU around 0.1 ms of trees (breast cancer, 2 shared cores): the latency
objective measured the wrapper, not the configuration, and ``tuneops serve`` paid it on
every request.

These subclasses keep everything of LightGBM's (parameters, fitting, pickling, ``clone``) and
take a shorter path for the requests tuneops' preprocessing produces - a 2-D float array with
the fitted number of columns - when nothing set on the estimator changes what ``predict``
does: one thread (``n_jobs=1``, tuneops' default), no prediction parameter among the extra
keyword arguments, a built-in objective, no keyword argument in the call. The rows then go to
``Booster.predict`` with ``num_threads=1`` - the call the wrapper ends in, without the training
parameters, which LightGBM's predictor does not read (prediction reads only its own
parameters; the model file carries the objective and the trees). Class labels are taken from
``classes_`` by the same indices. The tests compare every output with the wrapper's, to the
bit. Anything else goes through LightGBM's own path.
"""

from __future__ import annotations

from typing import Any

import lightgbm
import numpy as np

__all__ = ["LGBMClassifier", "LGBMRegressor"]

#: Parameters (any alias) that change what LightGBM's prediction computes; set among an
#: estimator's extra keyword arguments, they send its calls through the wrapper.
_PREDICTION_PARAMS = (
    "num_threads",
    "start_iteration_predict",
    "num_iteration_predict",
    "predict_raw_score",
    "predict_leaf_index",
    "predict_contrib",
    "predict_disable_shape_check",
    "pred_early_stop",
    "pred_early_stop_freq",
    "pred_early_stop_margin",
)


def _prediction_aliases() -> frozenset[str]:
    aliases = getattr(lightgbm.basic, "_ConfigAliases", None)
    names = set(_PREDICTION_PARAMS)
    if aliases is not None:
        for name in _PREDICTION_PARAMS:
            names |= set(aliases.get(name))
    return frozenset(names)


_PREDICTION_ALIASES = _prediction_aliases()


def _direct(model: Any, X: Any, kwargs: dict[str, Any]) -> bool:
    """Whether ``model``'s ``predict`` of ``X`` may go straight to its booster."""
    return (
        not kwargs
        and isinstance(X, np.ndarray)
        and X.ndim == 2
        and X.dtype.kind == "f"
        and model.n_jobs == 1
        and getattr(model, "_Booster", None) is not None
        and X.shape[1] == getattr(model, "_n_features", -1)
        and not callable(getattr(model, "_objective", None))
        and _PREDICTION_ALIASES.isdisjoint(getattr(model, "_other_params", {}))
    )


def _booster_predict(model: Any, X: np.ndarray) -> np.ndarray:
    """What the wrapper's ``predict`` would return for ``X`` (see the module's docstring)."""
    booster: Any = model._Booster
    result: np.ndarray = booster.predict(X, num_threads=1)
    return result


class LGBMClassifier(lightgbm.LGBMClassifier):
    """``LGBMClassifier`` whose NumPy requests go straight to its booster when allowed."""

    def predict_proba(self, X: Any, *args: Any, **kwargs: Any) -> Any:
        if args or not _direct(self, X, kwargs):
            return super().predict_proba(X, *args, **kwargs)
        result = _booster_predict(self, X)
        if result.ndim == 2:  # multiclass: one column per class already
            return result
        return np.vstack((1.0 - result, result)).transpose()

    def predict(self, X: Any, *args: Any, **kwargs: Any) -> Any:
        if args or not _direct(self, X, kwargs):
            return super().predict(X, *args, **kwargs)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class LGBMRegressor(lightgbm.LGBMRegressor):
    """``LGBMRegressor`` whose NumPy requests go straight to its booster when allowed."""

    def predict(self, X: Any, *args: Any, **kwargs: Any) -> Any:
        if args or not _direct(self, X, kwargs):
            return super().predict(X, *args, **kwargs)
        return _booster_predict(self, X)
