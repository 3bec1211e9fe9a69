"""The scikit-learn families: forests, histogram gradient boosting, linear, SVM, k-NN, MLP.

Default spaces follow common practice: log scales for regularisation strengths, learning
rates, counts spanning orders of magnitude; linear scales for fractions.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from tuneops.errors import SpecError
from tuneops.families._base import Family, budget, choice, float_param, int_param
from tuneops.space import Param

_log = logging.getLogger("tuneops")

__all__ = [
    "RandomForest",
    "ExtraTrees",
    "HistGradientBoosting",
    "Linear",
    "SVM",
    "KNN",
    "MLP",
]


def _space(*params: Param) -> dict[str, Param]:
    return {p.name: p for p in params}


class RandomForest(Family):
    name = "random_forest"
    description = "scikit-learn RandomForest{Classifier,Regressor}"
    fidelity = "trees"
    threads = "joblib"  # n_jobs builds trees in Python threads

    def advance(
        self, estimator: Any, X: Any, y: Any, fraction: float, state: dict[str, Any]
    ) -> None:
        # warm_start adds trees to the fitted ones; new trees draw their seeds after the
        # existing ones', so the forest equals one fitted with all trees at once.
        total = state.setdefault("total", estimator.n_estimators)
        if budget(total, fraction) > state.get("trees", 0):
            state["trees"] = budget(total, fraction)
            estimator.set_params(n_estimators=state["trees"], warm_start=True)
            estimator.fit(X, y)

    def default_space(self, task: str) -> dict[str, Param]:
        return _space(
            int_param("n_estimators", 10, 300, log=True),
            int_param("max_depth", 2, 32, log=True),
            int_param("min_samples_leaf", 1, 20, log=True),
            float_param("max_features", 0.05, 1.0),
        )

    def _cls(self, task: str) -> type:
        # scikit-learn's forests, predicting through their trees directly (same predictions,
        # a tenth of the one-row cost: tuneops.families._forest).
        from tuneops.families import _forest

        return (
            _forest.RandomForestClassifier
            if task == "classification"
            else _forest.RandomForestRegressor
        )

    def estimator(self, params: Mapping[str, Any], task: str, seed: int) -> Any:
        return self._cls(task)(**params, random_state=seed, n_jobs=1)


class ExtraTrees(RandomForest):
    name = "extra_trees"
    description = "scikit-learn ExtraTrees{Classifier,Regressor}"

    def _cls(self, task: str) -> type:
        from tuneops.families import _forest

        if task == "classification":
            return _forest.ExtraTreesClassifier
        return _forest.ExtraTreesRegressor


class HistGradientBoosting(Family):
    name = "hist_gradient_boosting"
    description = "scikit-learn HistGradientBoosting{Classifier,Regressor}"
    fidelity = "rounds"
    threads = "openmp"  # no n_jobs: the OpenMP thread-pool limit decides

    def advance(
        self, estimator: Any, X: Any, y: Any, fraction: float, state: dict[str, Any]
    ) -> None:
        total = state.setdefault("total", estimator.max_iter)
        if budget(total, fraction) > state.get("rounds", 0):
            state["rounds"] = budget(total, fraction)
            estimator.set_params(max_iter=state["rounds"], warm_start=True)
            estimator.fit(X, y)

    def default_space(self, task: str) -> dict[str, Param]:
        return _space(
            float_param("learning_rate", 0.01, 0.3, log=True),
            int_param("max_iter", 20, 500, log=True),
            int_param("max_leaf_nodes", 7, 127, log=True),
            int_param("min_samples_leaf", 2, 100, log=True),
            float_param("l2_regularization", 1e-8, 10.0, log=True),
        )

    def estimator(self, params: Mapping[str, Any], task: str, seed: int) -> Any:
        # scikit-learn's estimators, predicting a few rows through all trees at once (same
        # predictions, a quarter of the one-row cost: tuneops.families._hgb).
        from tuneops.families import _hgb

        cls = (
            _hgb.HistGradientBoostingClassifier
            if task == "classification"
            else _hgb.HistGradientBoostingRegressor
        )
        return cls(**params, early_stopping=False, random_state=seed)


class Linear(Family):
    name = "linear"
    scale = True
    description = "LogisticRegression (classification) or Ridge (regression)"

    def default_space(self, task: str) -> dict[str, Param]:
        if task == "classification":
            return _space(float_param("C", 1e-4, 1e3, log=True))
        return _space(float_param("alpha", 1e-4, 1e3, log=True))

    def estimator(self, params: Mapping[str, Any], task: str, seed: int) -> Any:
        from sklearn.linear_model import LogisticRegression, Ridge

        if task == "classification":
            return LogisticRegression(**{"max_iter": 500, **params}, random_state=seed)
        return Ridge(**params, random_state=seed)


class SVM(Family):
    name = "svm"
    scale = True
    description = "SVC / SVR with an RBF kernel"
    probabilities = False  # decision scores: probability=True would cost an internal 5-fold CV

    def default_space(self, task: str) -> dict[str, Param]:
        space = _space(
            float_param("C", 1e-3, 1e3, log=True),
            float_param("gamma", 1e-4, 1.0, log=True),
        )
        if task == "regression":
            space["epsilon"] = float_param("epsilon", 1e-3, 1.0, log=True)
        return space

    def estimator(self, params: Mapping[str, Any], task: str, seed: int) -> Any:
        from sklearn.svm import SVC, SVR

        if task == "classification":
            # probability=True costs an internal 5-fold CV; roc_auc uses decision_function instead.
            return SVC(**params, random_state=seed)
        return SVR(**params)


class KNN(Family):
    name = "knn"
    scale = True
    description = "k-nearest neighbours"

    def min_rows(self, estimator: Any) -> int:
        return max(30, estimator.n_neighbors)

    def fit_to_rows(self, space: dict[str, Param], train_rows: int) -> dict[str, Param]:
        """No more neighbours than a fold's training rows (a re-tuning on a few recent rows
        drew n_neighbors 50 for 28 rows: "Expected n_neighbors <= n_samples_fit")."""
        k = space.get("n_neighbors")
        if k is not None and k.kind == "int" and k.high is not None and k.high > train_rows >= 1:
            bounded = dataclasses.replace(k, high=max(train_rows, k.low or 1))
            space = {**space, "n_neighbors": bounded}
        return space

    def fit_written_to_rows(
        self, written: dict[str, Param], train_rows: int
    ) -> dict[str, Param]:
        """A spec's ``n_neighbors`` beyond a fold's training rows: trials there fail ("Expected
        n_neighbors <= n_samples_fit") or, on tiny data, scored as a majority vote. A range
        wholly beyond is refused; one partly beyond is bounded, with a warning."""
        k = written.get("n_neighbors")
        if k is None or k.kind != "int" or k.high is None or k.high <= train_rows:
            return written
        where = f"model.space.{self.name}.n_neighbors"
        if (k.low or 1) > train_rows:
            raise SpecError(
                f"{where}: expected at most {train_rows} neighbours (the training rows of a "
                f"cross-validation fold), received a range from {k.low} to {k.high}; lower the "
                "range, use fewer search.cv_folds, or more data."
            )
        _log.warning(
            "%s: %d neighbours is more than a cross-validation fold's %d training rows; "
            "searching %s to %d",
            where,
            k.high,
            train_rows,
            k.low,
            train_rows,
        )
        return {**written, "n_neighbors": dataclasses.replace(k, high=train_rows)}

    def default_space(self, task: str) -> dict[str, Param]:
        return _space(
            int_param("n_neighbors", 1, 50, log=True),
            choice("weights", "uniform", "distance"),
            choice("p", 1, 2),
        )

    def estimator(self, params: Mapping[str, Any], task: str, seed: int) -> Any:
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

        cls = KNeighborsClassifier if task == "classification" else KNeighborsRegressor
        return cls(**params, n_jobs=1)


class MLP(Family):
    name = "mlp"
    scale = True
    description = "multi-layer perceptron (scikit-learn)"
    fidelity = "epochs"

    def advance(
        self, estimator: Any, X: Any, y: Any, fraction: float, state: dict[str, Any]
    ) -> None:
        # One partial_fit call is one epoch; the full budget is max_iter epochs, run to the
        # end (no tolerance-based stop, which would make the budget depend on the curve).
        from sklearn.base import is_classifier

        total = state.setdefault("total", estimator.max_iter)
        done = state.get("epochs", 0)
        extra = {"classes": np.unique(y)} if is_classifier(estimator) else {}
        for _ in range(done, budget(total, fraction)):
            estimator.partial_fit(X, y, **extra)
        state["epochs"] = max(done, budget(total, fraction))

    def default_space(self, task: str) -> dict[str, Param]:
        return _space(
            int_param("n_layers", 1, 3),
            int_param("width", 16, 256, log=True),
            float_param("alpha", 1e-6, 1e-1, log=True),
            float_param("learning_rate_init", 1e-4, 1e-1, log=True),
            int_param("max_iter", 20, 300, log=True),
        )

    def estimator(self, params: Mapping[str, Any], task: str, seed: int) -> Any:
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        params = dict(params)
        layers = (params.pop("width", 64),) * params.pop("n_layers", 1)
        cls = MLPClassifier if task == "classification" else MLPRegressor
        return cls(hidden_layer_sizes=layers, **params, random_state=seed)
