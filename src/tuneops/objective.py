"""Spec -> Optuna objective.

:class:`SpecObjective` is a picklable callable ``trial -> tuple of objective values``. Each
trial suggests a family (when the spec lists several: algorithm selection as a conditional
space) and its parameters, cross-validates on the study's fixed folds, measures latency and
size when an objective or constraint needs them, records every metric in the trial's user
attributes (``metrics``, ``metrics_std``, ``family``) and its constraint violations through
``trial.set_constraint`` so the sampler learns feasibility.

Serving cost is measured on the spec's declared serving path (``serving:``; see
:func:`tuneops.measure.serving_config`) by the serving thread's CPU time, with its interval;
``fit_time_s`` is CPU seconds. The details - intervals, calls, wall figures, the
preprocessing/model split, fit wall seconds and threads - go to the trial's ``tuneops:cost``
attribute (:data:`tuneops._study.COST`). A constraint on a latency metric is judged on the
interval's far end (:func:`tuneops.selection.violation`), so the sampler learns what
selection will accept. Fits use ``search.resources.cpu`` threads (default: cores / workers)
for families that can; the refit for export and the serving measurement use
``serving.threads`` (one by default).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState
from sklearn.exceptions import ConvergenceWarning

from tuneops import _study
from tuneops.data import Dataset
from tuneops.errors import SpecError, unknown_name
from tuneops.families import FIDELITY_STEPS, build_pipeline, build_preprocessor, get_family
from tuneops.families._base import fit_threads, single_threaded
from tuneops.measure import (
    FitClock,
    LatencyConfig,
    make_folds,
    mean_metrics,
    measure_serving,
    model_size_kb,
    reference_calibration,
    score,
    scoring_record,
    serving_config,
)
from tuneops.metrics import METRICS, check_task, positive_label
from tuneops.pruning import (
    FIDELITY_ATTR,
    consult_at,
    intermediate_values,
    report,
    should_prune,
)
from tuneops.repeats import OUTCOME_KEYS, REPEAT_OF, Repeats
from tuneops.runner import record_with_outcome
from tuneops.selection import violation
from tuneops.space import Param, suggest_params
from tuneops.spec import Spec

__all__ = ["SpecObjective", "TrialFailed"]


class TrialFailed(Exception):
    """The trial ran but produced no usable value (NaN metric); the reason is recorded."""


#: The fitted preprocessing of each fold is kept for the next trials while the folds' outputs
#: take at most this many bytes per worker (beyond it, each trial fits its own, as a pipeline
#: would: on data that large the fits dwarf the preprocessing anyway).
PREPARED_MAX_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Prepared:
    """One fold with its preprocessing fitted on the training rows: the step and its outputs.

    The preprocessing of a fold depends on its rows and on whether the family scales, never on
    a trial's parameters, so a worker fits it once per fold (33 ms of the quickstart's 0.7 CPU-s
    trials, per fold) instead of once per trial and fold, and transforms the test rows once.
    The step is shared by the pipelines of later trials, which only read it.
    """

    pre: Any
    X_train: np.ndarray
    y_train: pd.Series
    X_test: np.ndarray
    y_test: pd.Series
    fit_cpu_s: float = 0.0  # CPU seconds of fitting the preprocessing on the training rows

    @property
    def nbytes(self) -> int:
        return int(self.X_train.nbytes + self.X_test.nbytes)


class _Deadline:
    """``search.trial_timeout_s`` for one trial: :meth:`check`, called before each further CV
    fold or fidelity step, stops a trial that has run longer (wall clock, from the start of its
    fits) as pruned, recording ``tuneops:timed_out``. A trial whose last fold or step is done is
    kept: what remains (its latency, its size) is bounded by the measurement's own budget."""

    def __init__(self, trial: optuna.trial.BaseTrial, limit_s: float) -> None:
        self.trial, self.limit_s, self.started = trial, limit_s, time.monotonic()

    def check(self, at: str, fidelity: dict[str, Any] | None = None) -> None:
        elapsed = time.monotonic() - self.started
        if elapsed <= self.limit_s:
            return
        if fidelity is not None:
            record_with_outcome(self.trial, FIDELITY_ATTR, fidelity)
        record_with_outcome(
            self.trial,
            _study.TIMED_OUT,
            {"limit_s": self.limit_s, "elapsed_s": round(elapsed, 3), "at": at},
        )
        raise optuna.TrialPruned(
            f"stopped {at}: over search.trial_timeout_s ({self.limit_s:g} s, ran {elapsed:.1f} s)"
        )


def _check_probabilities(spec: Spec, task: str) -> None:
    """Refuse a metric of class probabilities (``log_loss``) with a family that gives none, before
    any trial: each of its trials would fail, and more trials would not help.

    Raises:
        SpecError: names the family, the metric, and what to do.
    """
    if task != "classification":
        return
    needing = [m for m in spec.measured_metrics if METRICS[m].needs_probabilities]
    lacking = [f for f in spec.families if not get_family(f).probabilities]
    if needing and lacking:
        raise SpecError(
            f"model.family: {', '.join(map(repr, lacking))} gives no class probabilities (only "
            f"decision scores), which {needing[0]!r} needs; remove it from model.family, or "
            "measure roc_auc or average_precision instead (they use decision scores)."
        )


def _check_space_task(spec: Spec, task: str, dataset: str) -> None:
    """Refuse a ``model.space`` parameter the family's estimator for ``task`` does not take,
    before any trial. The spec accepts the names of either task (its task may be detected only
    when the data loads): ``linear``'s ``C`` on a regression failed every trial with Ridge's
    ``TypeError`` after the study was created.

    Raises:
        SpecError: names the field, the task, the parameters the estimator takes, the closest.
    """
    for name, params in spec.space.items():
        if not params:
            continue
        family = get_family(name)
        if task not in family.tasks:
            continue  # refused elsewhere, with its own message
        try:
            estimator = family.estimator({}, task, 0)
        except ImportError:  # a missing extra: the run reports it by itself
            continue
        accepted = set(family.default_space(task)) | set(estimator.get_params(deep=False))
        for p in params:
            if p not in accepted:
                # "expected one of ...; Did you mean ...?" as for any unknown name
                expected = unknown_name("parameter", p, accepted).partition("; ")[2]
                raise SpecError(
                    f"model.space.{name}.{p}: {dataset!r} is a {task} task, whose {name} "
                    f"estimator ({type(estimator).__name__}) does not take {p!r}; {expected} "
                    f"Remove {p!r} from the space, or set data.task if the task was detected "
                    "wrongly."
                )


class SpecObjective:
    """The objective for a spec on a dataset.

    Example::

        >>> from tuneops.spec import load_spec
        >>> from tuneops.data import load_dataset
        >>> spec = load_spec({"data": {"source": "sklearn:iris"}, "model": {"family": "knn"},
        ...                   "objectives": ["accuracy"], "search": {"n_trials": 1}})
        >>> objective = SpecObjective(spec, load_dataset("sklearn:iris"))
        >>> params = {"n_neighbors": 5, "weights": "uniform", "p": 2}
        >>> values = objective(optuna.trial.FixedTrial(params))
        >>> 0.9 < values[0] <= 1.0
        True
    """

    def __init__(self, spec: Spec, dataset: Dataset, *, latency: LatencyConfig = LatencyConfig()):
        self.spec = spec
        self.dataset = dataset
        self.task = dataset.task
        self.folds = make_folds(dataset.y, dataset.task, spec.cv_folds, spec.seed)
        self.labels = sorted(dataset.y.unique()) if dataset.task == "classification" else None
        # The positive class of binary metrics, resolved once on the whole training target so
        # every fold scores the same class (see tuneops.metrics).
        self.pos_label = (
            positive_label(dataset.y, getattr(spec.data, "pos_label", None))
            if dataset.task == "classification"
            else None
        )
        # the smallest fold's training rows bound what a space may ask of them
        n_rows = len(dataset.y)
        train_rows = n_rows - math.ceil(n_rows / spec.cv_folds)
        self.spaces: dict[str, dict[str, Param]] = {
            name: get_family(name).space(dataset.task, spec.space.get(name), train_rows=train_rows)
            for name in spec.families
        }
        # The spec's serving section (read with defaults while the spec gains it).
        self.serving = serving_config(getattr(spec, "serving", None))
        kinds = {getattr(METRICS.get(m), "kind", None) for m in spec.measured_metrics}
        # One calibration of the machine's speed for every trial of a study (see
        # LatencyConfig.reference), taken by share_calibration before the workers start.
        self.calibrates = "latency" in kinds and latency.reference and latency.reference_ns is None
        self.latency = latency
        self.threads = fit_threads(_resource(spec, "cpu"), spec.n_workers)
        self._prepared: dict[tuple[int, bool], Prepared] = {}  # (fold, family scales) -> fold
        # completed configurations of the study, whose outcome a repeat of them reuses
        self.repeats = Repeats(spec.measured_metrics)
        # CPU seconds this process spent preparing folds: a trial that prepares one spends it
        self.preparing_cpu_s = 0.0
        check_task(spec.metric_names, dataset.task, dataset.name, field="objectives")
        constrained = [c.metric for c in spec.constraints if c.metric not in spec.metric_names]
        check_task(constrained, dataset.task, dataset.name, field="constraints")
        _check_probabilities(spec, dataset.task)
        _check_space_task(spec, dataset.task, dataset.name)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_prepared": {}}  # a copy elsewhere prepares its own folds

    def share_calibration(self, study: optuna.Study) -> None:
        """Measure latency at the study's calibration: the one its first run stored, else
        this machine's, taken now (0.1-0.3 s) and stored. Called before the workers start:
        forked or pickled, they carry it, and Ray workers on other machines report in this
        unit too; a resumed run or a joining worker reports in the first run's."""
        if self.calibrates:
            shared = _study.shared_calibration(study, reference_calibration)
            self.latency = dataclasses.replace(self.latency, reference_ns=shared)

    def scoring_record(self) -> dict[str, Any]:
        """Positive class, averaging and the majority-class/mean baseline on the study's folds."""
        return scoring_record(
            self.dataset.y,
            self.task,
            self.folds,
            self.spec.measured_metrics,
            labels=self.labels,
            pos_label=self.pos_label,
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
            get_family(family),
            params,
            self.task,
            self.spec.seed,
            numeric=self.dataset.numeric,
            categorical=self.dataset.categorical,
        )

    def prepared(self, fam: Any, fold: int) -> Prepared:
        """Fold ``fold`` preprocessed as ``fam``'s pipelines preprocess it (kept for the next
        trials while :data:`PREPARED_MAX_BYTES` allows)."""
        key = (fold, bool(fam.scale))
        found = self._prepared.get(key)
        if found is not None:
            return found
        X, y = self.dataset.X, self.dataset.y
        train, test = self.folds[fold]
        pre = build_preprocessor(
            fam, numeric=self.dataset.numeric, categorical=self.dataset.categorical
        )
        with single_threaded():
            start = time.thread_time()
            X_train = np.asarray(pre.fit_transform(X.iloc[train], y.iloc[train]))
            fitted = time.thread_time()
            X_test = np.asarray(pre.transform(X.iloc[test]))
            self.preparing_cpu_s += time.thread_time() - start
        made = Prepared(pre, X_train, y.iloc[train], X_test, y.iloc[test], fitted - start)
        if sum(p.nbytes for p in self._prepared.values()) + made.nbytes <= PREPARED_MAX_BYTES:
            self._prepared[key] = made
        return made

    # -- evaluation -------------------------------------------------------------------------
    def __call__(self, trial: optuna.trial.BaseTrial) -> tuple[float, ...]:
        family, params = self.suggest(trial)
        trial.set_user_attr("family", family)
        # A configuration tried before: its values replayed to the pruner, and the outcome of
        # one that completed taken, nothing fitted (repeats.py)
        earlier = self.repeats.earlier(trial, lambda t: self._measured_alike(t, family))
        if earlier is not None:
            self._replay(trial, earlier)
        if earlier is not None and earlier.state == TrialState.COMPLETE:
            record_with_outcome(trial, REPEAT_OF, earlier.number)
            metrics, spread, cost = (dict(earlier.user_attrs[key]) for key in OUTCOME_KEYS)
        else:
            metrics, spread, cost = self._run(family, params, trial)
        # Nothing reads these before the trial ends: written with its outcome when the runner
        # runs it (on a journal file in the same storage write, not one write each).
        record_with_outcome(trial, _study.METRICS, metrics)
        record_with_outcome(trial, _study.METRICS_STD, spread)
        record_with_outcome(trial, _study.COST, cost)
        intervals = _study.stored_intervals(cost)
        # A constraint listed twice (a spec an earlier tuneops stored: tuneops.spec.
        # load_stored_spec) is one record: Optuna warns at a second write of a key.
        for constraint in {str(c): c for c in self.spec.constraints}.values():
            # An interval end too few calls bound (a p95 of under 72) misses the constraint
            # beyond noise by an unknown amount: the largest finite float, which a storage's
            # JSON holds where it may not hold infinity.
            missed = violation(constraint, metrics, intervals)
            trial.set_constraint(str(constraint), min(missed, sys.float_info.max))
        values = tuple(metrics[name] for name in self.spec.metric_names)
        named = zip(self.spec.metric_names, values, strict=False)
        bad = [n for n, v in named if not math.isfinite(v)]
        if bad:
            raise TrialFailed(f"objective {', '.join(bad)} is not finite for {family} {params}")
        return values

    def evaluate(
        self, family: str, params: Mapping[str, Any], *, trial: optuna.trial.BaseTrial | None = None
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Cross-validate one configuration; returns (mean metrics, std over folds).

        With a ``trial`` whose study has a pruner, training goes step by step (the family's
        fidelity): after each step the CV score is reported once and the pruner consulted; a
        pruned trial stops training and raises :class:`optuna.TrialPruned`. With the
        Wilcoxon pruner the steps are the CV folds instead. Latency and size are measured on
        the final model only, after the last step.
        """
        metrics, spread, _ = self._run(family, params, trial)
        return metrics, spread

    def _run(
        self, family: str, params: Mapping[str, Any], trial: optuna.trial.BaseTrial | None
    ) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
        """:meth:`evaluate` plus the cost record (the trial's ``tuneops:cost``)."""
        with single_threaded(), warnings.catch_warnings():
            # A tuned iteration budget that stops before convergence is a legitimate
            # configuration; its score tells the sampler what it needs to know.
            warnings.simplefilter("ignore", ConvergenceWarning)
            return self._evaluate(family, params, trial)

    def _evaluate(
        self, family: str, params: Mapping[str, Any], trial: optuna.trial.BaseTrial | None
    ) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
        wanted = set(self.spec.measured_metrics)
        quality = [m for m in self.spec.measured_metrics if METRICS[m].kind == "quality"]
        mode = self._mode(trial)
        fam = get_family(family)
        X = self.dataset.X
        models = [self.pipeline(family, params) for _ in self.folds]
        fit_s = [0.0] * len(self.folds)
        threads = self.threads if fam.threads else 1
        clocks = [FitClock(threads) for _ in self.folds]
        # the model's fit CPU per fold: the whole training, or a fraction family's last step (it
        # refits on all rows from scratch; the smaller fits before it only rank the trial)
        model_cpu = [0.0] * len(self.folds)
        record: dict[str, Any] | None = None
        limit = self.spec.search.trial_timeout_s
        over_time = _Deadline(trial, limit) if limit is not None and trial is not None else None
        preparing = self.preparing_cpu_s
        folds: list[Prepared] = []
        if mode == "steps":
            folds = [self.prepared(fam, i) for i in range(len(self.folds))]
            per_fold, record = self._by_steps(
                fam,
                models,
                folds,
                fit_s,
                clocks,
                model_cpu,
                quality,
                trial,
                over_time,
                self.preparing_cpu_s - preparing,
            )
        else:
            per_fold = []
            for i, model in enumerate(models):
                fold = self.prepared(fam, i)  # as the folds come: a pruned trial needs no more
                folds.append(fold)
                with clocks[i]:
                    fam.fit(
                        model,
                        fold.X_train,
                        fold.y_train,
                        seed=self.spec.seed,
                        threads=threads,
                        preprocessed=fold.pre,
                    )
                fit_s[i] = clocks[i].wall_s
                model_cpu[i] = clocks[i].cpu_s
                per_fold.append(self._score(model, fold, quality))
                if mode == "folds" and trial is not None:
                    # Wilcoxon compares trials instance by instance: here, fold by fold.
                    report(trial, per_fold[-1][self.spec.metric_names[0]], i)
                    if i < len(self.folds) - 1 and should_prune(trial):
                        record_with_outcome(
                            trial,
                            FIDELITY_ATTR,
                            _fidelity(
                                list(range(1, i + 2)),
                                len(self.folds),
                                len(self.folds),
                                sum(fit_s),
                                pruned=True,
                            )
                            | {  # CPU, as a trial trained to the end records it
                                "fit_cpu_s": sum(c.cpu_s for c in clocks)
                                + self.preparing_cpu_s
                                - preparing
                            },
                        )
                        raise optuna.TrialPruned(f"pruned after fold {i + 1} of {len(self.folds)}")
                if over_time is not None and i < len(self.folds) - 1:
                    over_time.check(f"after fold {i + 1} of {len(self.folds)}")
            if mode == "folds":
                record = _fidelity(
                    list(range(1, len(self.folds) + 1)),
                    len(self.folds),
                    len(self.folds),
                    sum(fit_s),
                )
            elif getattr(trial, "study", None) is not None:  # trained straight through: one step
                record = _fidelity([FIDELITY_STEPS[-1]], 1, FIDELITY_STEPS[-1], sum(fit_s))
            if record is not None:  # CPU seconds, as the step-wise path records them; with the
                # fold preprocessing this trial fitted (once per worker): compute it spent
                record["fit_cpu_s"] = sum(c.cpu_s for c in clocks) + (
                    self.preparing_cpu_s - preparing
                )
        # What fitting this configuration costs, the same for every trial: the model's fit plus
        # its fold's preprocessing, whichever trial of the worker happened to fit that first.
        for scores, cpu, fold in zip(per_fold, model_cpu, folds, strict=False):
            scores["fit_time_s"] = cpu + fold.fit_cpu_s
        mean, spread = mean_metrics(per_fold)
        cost: dict[str, Any] = {
            "fit": {
                "cpu_s": [c.cpu_s for c in clocks],
                "preprocess_cpu_s": [f.fit_cpu_s for f in folds],
                "wall_s": [c.wall_s for c in clocks],
                "wall_mean_s": sum(c.wall_s for c in clocks) / len(clocks),
                "threads": threads,
                "clock": clocks[0].clock,
                "version": _study.FIT_TIME_VERSION,  # of fit_time_s's definition
            }
        }
        model = models[-1]
        start, start_cpu = time.perf_counter(), time.process_time()
        latency = [m for m in wanted if METRICS[m].kind == "latency"]
        if latency:
            served = measure_serving(
                model,
                X.iloc[self.folds[-1][1]],
                self.latency,
                serving=self.serving,
                metrics=latency,
                dominated_above_ms=self._latency_to_beat(trial, mean),
            )
            mean.update(served.metrics())
            cost["serving"] = served.record()
            cost["intervals"] = served.intervals()
        if "model_size_kb" in wanted:
            mean["model_size_kb"] = model_size_kb(model)
        if record is not None and trial is not None:  # one write per trial: trained, measuring cost
            record["measure_s"] = time.perf_counter() - start
            record["measure_cpu_s"] = time.process_time() - start_cpu
            record_with_outcome(trial, FIDELITY_ATTR, record)
        return mean, spread, cost

    def _latency_to_beat(
        self, trial: optuna.trial.BaseTrial | None, quality: Mapping[str, float]
    ) -> float | None:
        """The latency above which this trial cannot reach the Pareto front: the lowest upper
        bound of the latency objective among complete, feasible trials at least as good on
        every other objective (None when that cannot be told, and the measurement is full).

        Only for objectives of quality metrics plus one latency metric, and constraints on
        objectives only: then a trial beyond this bound is dominated whatever it measures.
        """
        study = getattr(trial, "study", None)
        names = list(self.spec.metric_names)
        timed = [m for m in names if METRICS[m].kind == "latency"]
        others = [m for m in names if m not in timed]
        if (
            study is None
            or timed not in (["latency_p50_ms"], ["latency_p95_ms"])
            or self.serving.path == "batch"
            or any(METRICS[m].kind != "quality" or m not in quality for m in others)
            or any(c.metric not in names for c in self.spec.constraints)
        ):
            return None
        signs = {m: 1.0 if METRICS[m].direction == "maximize" else -1.0 for m in others}
        best: float | None = None
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            metrics = t.user_attrs.get("metrics") or {}
            if timed[0] not in metrics or any(m not in metrics for m in others):
                continue
            intervals = _study.stored_intervals(t.user_attrs.get(_study.COST))
            if any(signs[m] * (metrics[m] - quality[m]) < 0 for m in others) or any(
                violation(c, metrics, intervals) > 0 for c in self.spec.constraints
            ):
                continue
            bound = intervals.get(timed[0], (math.nan, metrics[timed[0]]))[1]
            # a p95 without an upper bound sets no bar
            if isinstance(bound, (int, float)) and math.isfinite(bound) and (
                best is None or bound < best
            ):
                best = float(bound)
        return best

    def _measured_alike(self, earlier: FrozenTrial, family: str) -> bool:
        """Whether ``earlier``'s figures were measured as this objective measures: the same
        serving path (a study resumed with another ``serving`` section times the new path) and
        the same fit threads and definition of ``fit_time_s``. A pruned trial's replay needs
        none of it (its steps' values are quality and step costs)."""
        cost = earlier.user_attrs.get(_study.COST)
        if earlier.state != TrialState.COMPLETE:
            return True
        if not isinstance(cost, Mapping):
            return False
        fit = cost.get("fit") or {}
        threads = self.threads if get_family(family).threads else 1
        if fit.get("version") != _study.FIT_TIME_VERSION or fit.get("threads") != threads:
            return False
        served = cost.get("serving")
        if served is None:
            return True
        return all(served.get(k) == v for k, v in self.serving.to_dict().items())

    def _replay(self, trial: optuna.trial.BaseTrial, earlier: FrozenTrial) -> None:
        """Report ``earlier``'s intermediate values at its steps and ask the pruner where its
        training asked: the decision a new fit of the same configuration would get (its curve is
        the same), for nothing. Raises :class:`optuna.TrialPruned` when the pruner stops it;
        past the steps of a pruned ``earlier`` the trial is fitted (its steps reported again
        are ignored, as each step is reported once)."""
        mode = self._mode(trial)
        if mode == "final":
            return
        n_objectives = len(self.spec.objectives)
        steps = sorted(intermediate_values(earlier, n_objectives).items())
        for i, (step, vector) in enumerate(steps):
            report(trial, vector, step)
            ask = consult_at(step, n_objectives) if mode == "steps" else i < len(steps) - 1
            if ask and should_prune(trial):
                record_with_outcome(trial, REPEAT_OF, earlier.number)
                raise optuna.TrialPruned(
                    f"pruned at step {step} on the values of trial {earlier.number}, "
                    "an earlier trial of the same configuration (nothing fitted)"
                )

    def _mode(self, trial: optuna.trial.BaseTrial | None) -> str:
        """How to train: ``final`` (straight to the end), ``steps`` (fidelity) or ``folds``."""
        study = getattr(trial, "study", None)
        if study is None or isinstance(study.pruner, optuna.pruners.NopPruner):
            return "final"
        if isinstance(study.pruner, optuna.pruners.WilcoxonPruner):
            return "folds" if len(study.directions) == 1 else "final"
        if len(study.directions) == 1 and METRICS[self.spec.metric_names[0]].kind != "quality":
            return "final"  # a cost objective has no intermediate value worth comparing
        return "steps"

    def _by_steps(
        self,
        fam: Any,
        models: list[Any],
        folds: list[Prepared],
        fit_s: list[float],
        clocks: list[FitClock],
        model_cpu: list[float],
        quality: list[str],
        trial: Any,
        over_time: _Deadline | None,
        preparing_s: float,
    ) -> tuple[list[dict[str, float]], dict[str, Any]]:
        """Train all folds in lockstep over the fidelity steps, reporting after each step
        (``preparing_s``: the CPU seconds this trial spent preparing folds, counted as fit)."""
        runs = [
            fam.fit_steps(
                model,
                fold.X_train,
                fold.y_train,
                seed=self.spec.seed,
                threads=clock.threads,
                preprocessed=fold.pre,
            )
            for model, fold, clock in zip(models, folds, clocks, strict=True)
        ]
        done: list[int] = []
        fit_by_step: list[float] = []
        # CPU seconds (FitClock): the compute a busy machine does not distort (wall time also
        # counts the moments the worker waits for a core); cumulative per step, for fitting
        # and for scoring the step.
        cpu: dict[str, list[float]] = {"fit_cpu_s_steps": [], "score_cpu_s_steps": []}
        score_cpu = 0.0
        per_fold: list[dict[str, float]] = []
        from_scratch = fam.fidelity == "fraction"
        for step in FIDELITY_STEPS:
            for i, run in enumerate(runs):
                before = clocks[i].cpu_s
                with clocks[i]:
                    next(run)
                fit_s[i] = clocks[i].wall_s
                model_cpu[i] = clocks[i].cpu_s - before if from_scratch else clocks[i].cpu_s
            fit_cpu = sum(c.cpu_s for c in clocks) + preparing_s
            done.append(step)
            fit_by_step.append(sum(fit_s))
            per_fold, predict_s = [], 0.0
            for model, fold in zip(models, folds, strict=True):
                start = time.thread_time()
                per_fold.append(self._score(model, fold, quality))
                predict_s += time.thread_time() - start
            score_cpu += predict_s
            cpu["fit_cpu_s_steps"].append(fit_cpu)
            cpu["score_cpu_s_steps"].append(score_cpu)
            cumulative = [c.cpu_s for c in clocks]
            report(trial, self._intermediate(per_fold, cumulative, predict_s, models[-1]), step)
            if consult_at(step, len(self.spec.objectives)) and should_prune(trial):
                record_with_outcome(
                    trial,
                    FIDELITY_ATTR,
                    _fidelity(
                        done, len(FIDELITY_STEPS), FIDELITY_STEPS[-1], fit_by_step, pruned=True
                    )
                    | cpu,
                )
                raise optuna.TrialPruned(f"pruned at step {step} of {FIDELITY_STEPS[-1]}")
            if over_time is not None and step != FIDELITY_STEPS[-1]:
                over_time.check(
                    f"at step {step} of {FIDELITY_STEPS[-1]}",
                    _fidelity(
                        done, len(FIDELITY_STEPS), FIDELITY_STEPS[-1], fit_by_step, pruned=True
                    )
                    | cpu,
                )
        return per_fold, _fidelity(done, len(FIDELITY_STEPS), FIDELITY_STEPS[-1], fit_by_step) | cpu

    def _score(self, model: Any, fold: Prepared, quality: list[str]) -> dict[str, float]:
        """The quality metrics of the pipeline ``model`` on ``fold``'s test rows (its estimator
        on their preprocessed values: what the pipeline's own prediction computes)."""
        return score(
            model[-1],
            fold.X_test,
            fold.y_test,
            quality,
            labels=self.labels,
            pos_label=self.pos_label,
        )

    def _intermediate(
        self, per_fold: list[dict[str, float]], fit_cpu_s: list[float], predict_s: float, model: Any
    ) -> list[float | None]:
        """The objective vector at a step, from what the step measured anyway.

        Quality: the mean CV score. Costs (multi-objective only), of the partially trained
        model: validation predict CPU time per row for latency and throughput objectives, the
        pickled size for size, fit CPU seconds so far for fit time. Comparable across trials at
        the same step; the objective values themselves are measured on the final model.
        """
        n_rows = sum(len(test) for _, test in self.folds)
        per_row_ms = 1e3 * predict_s / max(n_rows, 1)
        vector: list[float | None] = []
        for name in self.spec.metric_names:
            kind = METRICS[name].kind
            if kind == "quality":
                vector.append(float(sum(f[name] for f in per_fold) / len(per_fold)))
            elif name == "throughput_rows_per_s":
                vector.append(1e3 / per_row_ms if per_row_ms > 0 else None)
            elif kind == "latency":
                vector.append(per_row_ms)
            elif kind == "size":
                vector.append(model_size_kb(model))
            elif kind == "time":
                vector.append(sum(fit_cpu_s) / len(fit_cpu_s))
            else:
                vector.append(None)
        return vector

    def refit(self, params: Mapping[str, Any]) -> tuple[str, dict[str, Any], Any]:
        """Fit the configuration of recorded trial ``params`` on all the data."""
        family, estimator_params = self.config_of(params)
        model = self.pipeline(family, estimator_params)
        threads = self.serving.threads
        with single_threaded():
            get_family(family).fit(
                model, self.dataset.X, self.dataset.y, seed=self.spec.seed, threads=threads
            )
        if threads > 1 and "n_jobs" in model[-1].get_params():
            model[-1].set_params(n_jobs=threads)  # serves with the threads the spec gives it
        return family, estimator_params, model


def _fidelity(
    steps: list[int],
    n_steps: int,
    max_step: int,
    fit_s: float | list[float],
    *,
    pruned: bool = False,
) -> dict[str, Any]:
    """What a trial trained (user attr ``tuneops:fidelity``): the steps it ran (of ``n_steps``,
    the last being ``max_step``) and its fit seconds summed over folds (cumulative per step
    when trained step by step; the step-wise path adds the CPU seconds of fitting and scoring,
    ``fit_cpu_s_steps`` and ``score_cpu_s_steps``)."""
    record: dict[str, Any] = {
        "steps": steps,
        "n_steps": n_steps,
        "max_step": max_step,
        "pruned": pruned,
    }
    if isinstance(fit_s, list):
        record["fit_s"], record["fit_s_steps"] = fit_s[-1], list(fit_s)
    else:
        record["fit_s"] = float(fit_s)
    return record


def _resource(spec: Spec, name: str) -> float | None:
    """``search.resources[name]`` whether the spec holds a mapping or ``(key, value)`` pairs."""
    resources = getattr(spec, "resources", None) or ()
    items = resources.items() if isinstance(resources, Mapping) else resources
    for key, value in items:
        if key == name:
            return float(value)
    return None
