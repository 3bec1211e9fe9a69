"""Gradient-boosting libraries as optional extras: LightGBM and XGBoost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuneops.errors import require
from tuneops.families._base import Family, budget, float_param, int_param
from tuneops.space import Param

__all__ = ["LightGBM", "XGBoost"]


class _Boosting(Family):
    """A boosting library whose fit can continue from the booster trained so far."""

    fidelity = "rounds"
    threads = "openmp"  # n_jobs sets the library's OpenMP threads

    def continue_from(self, estimator: Any) -> dict[str, Any]:
        """The ``fit`` keyword that adds new rounds to ``estimator``'s booster."""
        raise NotImplementedError

    def advance(
        self, estimator: Any, X: Any, y: Any, fraction: float, state: dict[str, Any]
    ) -> None:
        total = state.setdefault("total", estimator.n_estimators)
        done, target = state.get("rounds", 0), budget(total, fraction)
        if target <= done:
            return
        estimator.set_params(n_estimators=target - done)
        estimator.fit(X, y, **(self.continue_from(estimator) if done else {}))
        state["rounds"] = target
        if fraction >= 1.0:
            estimator.set_params(n_estimators=total)


class LightGBM(_Boosting):
    name = "lightgbm"
    extra = "lightgbm"
    description = "LightGBM LGBM{Classifier,Regressor} (extra: lightgbm)"

    def continue_from(self, estimator: Any) -> dict[str, Any]:
        return {"init_model": estimator.booster_}

    def default_space(self, task: str) -> dict[str, Param]:
        params = [
            int_param("n_estimators", 20, 500, log=True),
            float_param("learning_rate", 0.01, 0.3, log=True),
            int_param("num_leaves", 7, 127, log=True),
            int_param("min_child_samples", 5, 100, log=True),
            float_param("subsample", 0.5, 1.0),
            float_param("colsample_bytree", 0.3, 1.0),
            float_param("reg_lambda", 1e-8, 10.0, log=True),
        ]
        return {p.name: p for p in params}

    def estimator(self, params: Mapping[str, Any], task: str, seed: int) -> Any:
        require("lightgbm", "lightgbm", "The lightgbm family")
        # LightGBM's estimators, handing NumPy requests straight to the booster (same
        # predictions, a tenth of the one-row cost: tuneops.families._lgbm).
        from tuneops.families import _lgbm

        cls = _lgbm.LGBMClassifier if task == "classification" else _lgbm.LGBMRegressor
        return cls(**params, subsample_freq=1, random_state=seed, n_jobs=1, verbose=-1)


class XGBoost(_Boosting):
    name = "xgboost"
    extra = "xgboost"
    description = "XGBoost XGB{Classifier,Regressor} (extra: xgboost)"

    def continue_from(self, estimator: Any) -> dict[str, Any]:
        return {"xgb_model": estimator.get_booster()}

    def default_space(self, task: str) -> dict[str, Param]:
        params = [
            int_param("n_estimators", 20, 500, log=True),
            float_param("learning_rate", 0.01, 0.3, log=True),
            int_param("max_depth", 2, 10),
            float_param("min_child_weight", 0.5, 20.0, log=True),
            float_param("subsample", 0.5, 1.0),
            float_param("colsample_bytree", 0.3, 1.0),
            float_param("reg_lambda", 1e-8, 10.0, log=True),
        ]
        return {p.name: p for p in params}

    def estimator(self, params: Mapping[str, Any], task: str, seed: int) -> Any:
        xgb = require("xgboost", "xgboost", "The xgboost family")
        # XGBoost's classifier takes only the labels 0..k-1; tuneops' takes any (families/_xgb).
        from tuneops.families import _xgb

        cls = _xgb.XGBClassifier if task == "classification" else xgb.XGBRegressor
        # XGBoost's n_estimators defaults to None (100 rounds inside): stated, so that a space
        # without it still trains in rounds (fidelity steps take a share of the number).
        rounds = {"n_estimators": 100, **params}
        return cls(**rounds, random_state=seed, n_jobs=1, tree_method="hist", verbosity=0)
