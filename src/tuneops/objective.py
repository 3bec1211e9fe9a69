"""Spec -> Optuna objective.

:class:`SpecObjective` is a picklable callable ``trial -> tuple of objective values``. Each
trial suggests a family (when the spec lists several: algorithm selection as a conditional
space) and its parameters, cross-validates on the study's fixed folds, measures latency and
size when an objective or constraint needs them, records every metric in the trial's user
attributes (``metrics``, ``metrics_std``, ``family``) and its constraint violations through
``trial.set_constraint`` so the sampler learns feasibility.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from typing import Any

import optuna
from sklearn.exceptions import ConvergenceWarning

from tuneops.data import Dataset
from tuneops.families import build_pipeline, get_family
from tuneops.measure import LatencyConfig, make_folds, mean_metrics, measure_latency, model_size_kb, score
from tuneops.metrics import METRICS
from tuneops.space import Param, suggest_params
from tuneops.spec import Spec

__all__ = ["SpecObjective", "TrialFailed"]


class TrialFailed(Exception):
    """The trial ran but produced no usable value (NaN metric); the reason is recorded."""


class SpecObjective:
    """The objective for a spec on a dataset.

    Example::

        >>> from tuneops.spec import load_spec
        >>> from tuneops.data import load_dataset
        >>> spec = load_spec({"data": {"source": "sklearn:iris"}, "model": {"family": "knn"},
        ...                   "objectives": ["accuracy"], "search": {"n_trials": 1}})
        >>> objective = SpecObjective(spec, load_dataset("sklearn:iris"))
        >>> values = objective(optuna.trial.FixedTrial({"n_neighbors": 5, "weights": "uniform", "p": 2}))
        >>> 0.9 < values[0] <= 1.0
        True
    """

    def __init__(self, spec: Spec, dataset: Dataset, *, latency: LatencyConfig = LatencyConfig()):
        self.spec = spec
        self.dataset = dataset
        self.task = dataset.task
        self.folds = make_folds(dataset.y, dataset.task, spec.cv_folds, spec.seed)
        self.labels = sorted(dataset.y.unique()) if dataset.task == "classification" else None
        self.spaces: dict[str, dict[str, Param]] = {
            name: get_family(name).space(dataset.task, spec.space.get(name))
            for name in spec.families
        }
        self.latency = latency
        for metric in spec.measured_metrics:
            if dataset.task not in METRICS[metric].tasks:
                from tuneops.errors import SpecError

                raise SpecError(
                    f"metric {metric!r} applies to {METRICS[metric].tasks[0]}, but "
                    f"{dataset.name!r} is a {dataset.task} task; use one of "
                    f"{', '.join(m for m, d in METRICS.items() if dataset.task in d.tasks)}."
                )

    # -- parameters -------------------------------------------------------------------------
    def suggest(self, trial: optuna.trial.BaseTrial) -> tuple[str, dict[str, Any]]:
        """Suggest a family and its parameters; with one family no ``family`` parameter exists."""
        names = list(self.spaces)
        if len(names) == 1:
            return names[0], suggest_params(trial, self.spaces[names[0]])
        family = trial.suggest_categorical("family", names)
        return family, suggest_params(trial, self.spaces[family], prefix=f"{family}.")

    def config_of(self, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The family and estimator parameters of a trial's recorded ``params``."""
        return self.suggest(optuna.trial.FixedTrial(dict(params)))

    def pipeline(self, family: str, params: Mapping[str, Any]) -> Any:
        return build_pipeline(
            get_family(family), params, self.task, self.spec.seed,
            numeric=self.dataset.numeric, categorical=self.dataset.categorical,
        )

    # -- evaluation -------------------------------------------------------------------------
    def __call__(self, trial: optuna.trial.BaseTrial) -> tuple[float, ...]:
        family, params = self.suggest(trial)
        trial.set_user_attr("family", family)
        metrics, spread = self.evaluate(family, params)
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("metrics_std", spread)
        for constraint in self.spec.constraints:
            trial.set_constraint(str(constraint), constraint.violation(metrics))
        values = tuple(metrics[name] for name in self.spec.metric_names)
        bad = [n for n, v in zip(self.spec.metric_names, values) if not math.isfinite(v)]
        if bad:
            raise TrialFailed(f"objective {', '.join(bad)} is not finite for {family} {params}")
        return values

    def evaluate(self, family: str, params: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
        """Cross-validate one configuration; returns (mean metrics, std over folds)."""
        wanted = set(self.spec.measured_metrics)
        quality = [m for m in wanted if METRICS[m].kind == "quality"]
        with warnings.catch_warnings():
            # A tuned iteration budget that stops before convergence is a legitimate
            # configuration; its score tells the sampler what it needs to know.
            warnings.simplefilter("ignore", ConvergenceWarning)
            per_fold, model = self._cross_validate(family, params, quality)
        mean, spread = mean_metrics(per_fold)
        latency = [m for m in wanted if METRICS[m].kind == "latency"]
        if latency:
            rows = self.dataset.X.iloc[self.folds[-1][1]]
            mean.update(measure_latency(model, rows, self.latency, metrics=latency))
        if "model_size_kb" in wanted:
            mean["model_size_kb"] = model_size_kb(model)
        return mean, spread

    def _cross_validate(self, family: str, params: Mapping[str, Any], quality: list[str]) -> tuple[list[dict[str, float]], Any]:
        X, y = self.dataset.X, self.dataset.y
        per_fold: list[dict[str, float]] = []
        model = None
        for train, test in self.folds:
            model = self.pipeline(family, params)
            start = time.perf_counter()
            model.fit(X.iloc[train], y.iloc[train])
            fit_s = time.perf_counter() - start
            fold = score(model, X.iloc[test], y.iloc[test], quality, labels=self.labels)
            fold["fit_time_s"] = fit_s
            per_fold.append(fold)
        return per_fold, model

    def refit(self, params: Mapping[str, Any]) -> tuple[str, dict[str, Any], Any]:
        """Fit the configuration of recorded trial ``params`` on all the data."""
        family, estimator_params = self.config_of(params)
        model = self.pipeline(family, estimator_params)
        model.fit(self.dataset.X, self.dataset.y)
        return family, estimator_params, model
