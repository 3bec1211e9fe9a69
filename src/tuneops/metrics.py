"""The metrics: one registry of scorers used by measurement, monitoring and re-tuning alike.

Each :class:`Metric` has a name, a direction, a kind and the tasks it applies to. A metric is
either *quality* - computed by :meth:`Metric.compute` from ``(y_true, y_pred, y_score,
options)`` with :mod:`sklearn.metrics` - or a *serving cost*: *latency* (single-threaded,
warmed-up predict timings), *size* (serialized bytes) or *time* (fit seconds), which
:mod:`tuneops.measure` measures on the model rather than computes from predictions. Spec
objectives and constraints, ``monitor.metric`` and the re-tuning comparison all name metrics
from :data:`METRICS`; measuring a model (:func:`tuneops.measure.score`) and monitoring a batch
(:func:`tuneops.ops.monitor.metric_value`) call the same functions, so they cannot disagree.

Positive class of binary metrics (``f1``, ``precision``, ``recall``, ``roc_auc``,
``average_precision``): the spec's ``data.pos_label``, else the **minority class of the
training target** (:func:`positive_label`; on a tie, the later class in sorted order, which
is scikit-learn's ``classes_[1]``). The minority class is the one a binary f1 is meant to
find: scoring the majority class instead rewards a constant model (on PMLB ``hepatitis`` a
model that always answers ``live`` scores f1 0.885 for ``live`` and 0 for ``die``). The label
used is recorded in ``results.json`` under ``scoring.pos_label``. Multiclass targets have no
positive class: f1, precision and recall are macro averages over the classes (each class
counts the same), ``roc_auc`` is one-vs-rest, ``average_precision`` the macro average of the
one-vs-rest precision-recall areas.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from tuneops.errors import SpecError, unknown_name

__all__ = [
    "Metric",
    "ScoreOptions",
    "METRICS",
    "QUALITY",
    "get_metric",
    "metrics_for_task",
    "check_task",
    "positive_label",
    "plain",
]

CLASSIFICATION, REGRESSION = "classification", "regression"
QUALITY = "quality"
COST_KINDS = ("latency", "size", "time")


@dataclass(frozen=True)
class ScoreOptions:
    """What a quality metric needs besides the labels and predictions.

    Attributes:
        labels: every class of the training target, in the column order of ``y_score`` (a
            model's ``classes_``); None for regression, or to take the classes present.
        pos_label: the positive class of a binary target (see :func:`positive_label`); None
            for multiclass (macro averaging) and regression.
    """

    labels: tuple[Any, ...] | None = None
    pos_label: Any = None


#: ``(y_true, y_pred, y_score, options) -> value``; ``y_score`` is a 2-D array of class
#: probabilities (columns in ``options.labels`` order) or a 1-D binary decision score for
#: ``labels[1]``, or None when the model has neither.
Compute = Callable[[np.ndarray, np.ndarray | None, np.ndarray | None, ScoreOptions], float]


#: The attainable values of the bounded quality metrics (serving costs are >= 0).
_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(
        (
            "accuracy",
            "balanced_accuracy",
            "f1",
            "precision",
            "recall",
            "roc_auc",
            "average_precision",
        ),
        (0.0, 1.0),
    ),
    "log_loss": (0.0, np.inf),
    "r2": (-np.inf, 1.0),
    "rmse": (0.0, np.inf),
    "mae": (0.0, np.inf),
}


@dataclass(frozen=True)
class Metric:
    """One metric of the registry.

    Attributes:
        name: the name specs use.
        direction: ``maximize`` or ``minimize``.
        kind: ``quality`` (computed from predictions) or a serving cost: ``latency``,
            ``size``, ``time`` (measured on the model by :mod:`tuneops.measure`).
        tasks: the tasks it applies to.
        needs_scores: computed from class probabilities or decision scores, not labels only
            (monitoring cannot compute these: production logs hold predicted labels).
        uses_pos_label: a binary target's value depends on which class is positive.
        compute: the function of a quality metric; None for serving costs.
        needs_probabilities: computed from class probabilities only: a family whose classifier
            gives decision scores instead (``svm``) cannot be scored on it.
    """

    name: str
    direction: str
    kind: str
    tasks: tuple[str, ...] = (CLASSIFICATION, REGRESSION)
    needs_scores: bool = False
    description: str = ""
    uses_pos_label: bool = False
    compute: Compute | None = field(default=None, repr=False, compare=False)
    needs_probabilities: bool = False

    @property
    def range(self) -> tuple[float, float]:
        """The values the metric can take (``-inf``/``inf`` where unbounded)."""
        return _RANGES.get(self.name, (0.0 if self.kind in COST_KINDS else -np.inf, np.inf))

    @property
    def is_quality(self) -> bool:
        return self.kind == QUALITY

    @property
    def is_serving_cost(self) -> bool:
        return self.kind in COST_KINDS

    def score(
        self,
        y_true: Any,
        y_pred: Any = None,
        y_score: Any = None,
        *,
        labels: Sequence[Any] | None = None,
        pos_label: Any = None,
    ) -> float:
        """The value of a quality metric (NaN when it is undefined on this data).

        Raises:
            ValueError: the metric is a serving cost, which is measured, not computed.
        """
        if self.compute is None:
            raise ValueError(
                f"metric {self.name!r} is a serving cost ({self.kind}); tuneops.measure measures it"
            )
        options = ScoreOptions(tuple(labels) if labels is not None else None, pos_label)
        y_t = np.asarray(y_true)
        y_p = None if y_pred is None else np.asarray(y_pred)
        y_s = None if y_score is None else np.asarray(y_score)
        return float(self.compute(y_t, y_p, y_s, options))


# -- the quality functions ------------------------------------------------------------------------
@functools.cache
def _skm() -> ModuleType:
    """``sklearn.metrics``, imported on the first score rather than with the table.

    The spec validates metric names against this table, and importing scikit-learn takes
    seconds on a busy machine: ``tuneops show`` and spec loading must not pay for it.
    """
    return importlib.import_module("sklearn.metrics")


def _pred(y_pred: np.ndarray | None) -> np.ndarray:
    if y_pred is None:
        raise ValueError("this metric needs predicted labels (y_pred)")
    return y_pred


def _accuracy(
    y: np.ndarray, pred: np.ndarray | None, score: np.ndarray | None, o: ScoreOptions
) -> float:
    return float(_skm().accuracy_score(y, _pred(pred)))


def _balanced_accuracy(
    y: np.ndarray, pred: np.ndarray | None, score: np.ndarray | None, o: ScoreOptions
) -> float:
    with warnings.catch_warnings():
        # A batch can hold predicted classes its labels lack: sklearn leaves them out of the
        # mean (recall is undefined for them) and says so; that is the intended value.
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true", UserWarning)
        return float(_skm().balanced_accuracy_score(y, _pred(pred)))


def _label_score(
    function: str, y: np.ndarray, pred: np.ndarray | None, score: np.ndarray | None, o: ScoreOptions
) -> float:
    """f1/precision/recall (``sklearn.metrics.<function>``): of the positive class when
    binary, macro-averaged otherwise."""
    fn = getattr(_skm(), function)
    p = _pred(pred)
    if o.pos_label is not None:
        # As booleans, so a fold or batch lacking one class still has a defined value.
        return float(fn(y == o.pos_label, p == o.pos_label, zero_division=0))
    return float(fn(y, p, average="macro", zero_division=0))


def _label_metric(function: str) -> Compute:
    # A partial of a module-level function, not a closure: metrics stay picklable.
    return functools.partial(_label_score, function)


def _positive_score(score: np.ndarray, o: ScoreOptions) -> np.ndarray:
    """The score of the positive class from a probability matrix or a binary decision score."""
    labels = list(o.labels) if o.labels is not None else []
    if score.ndim == 2:
        return score[:, labels.index(o.pos_label)] if o.pos_label in labels else score[:, -1]
    # A 1-D decision function scores labels[1] (scikit-learn's convention).
    return score if not labels or o.pos_label == labels[-1] else -score


def _roc_auc(
    y: np.ndarray, pred: np.ndarray | None, score: np.ndarray | None, o: ScoreOptions
) -> float:
    if score is None or len(np.unique(y)) < 2:
        return float("nan")
    if o.pos_label is not None:
        return float(_skm().roc_auc_score(y == o.pos_label, _positive_score(score, o)))
    if score.ndim != 2 or o.labels is None:
        return float("nan")
    # One-vs-rest, macro: each class present in ``y`` (a fold may miss a rare one) against the
    # rest, on that class's own column, as scikit-learn's ``multi_class="ovr"`` does when every
    # class is present. Not on columns renormalised over the present classes: dividing a row
    # by its sum reorders the rows within a column (and an SVM's decision scores are no
    # probabilities to renormalise: 0.9637 reported where its AUC was 0.9659).
    classes = list(o.labels)
    aucs = [
        _skm().roc_auc_score(y == c, score[:, classes.index(c)])
        for c in np.unique(y)
        if c in classes
    ]
    return float(np.mean(aucs)) if len(aucs) >= 2 else float("nan")


def _average_precision(
    y: np.ndarray, pred: np.ndarray | None, score: np.ndarray | None, o: ScoreOptions
) -> float:
    if score is None:
        return float("nan")
    if o.pos_label is not None:
        positive = y == o.pos_label
        return (
            float(_skm().average_precision_score(positive, _positive_score(score, o)))
            if positive.any()
            else float("nan")
        )
    if score.ndim != 2 or o.labels is None:
        return float("nan")
    classes = np.asarray(o.labels)
    present = np.isin(classes, np.unique(y))
    onehot = (y[:, None] == classes[present][None, :]).astype(int)
    return float(_skm().average_precision_score(onehot, score[:, present], average="macro"))


def _log_loss(
    y: np.ndarray, pred: np.ndarray | None, score: np.ndarray | None, o: ScoreOptions
) -> float:
    if score is None or score.ndim != 2:
        return float("nan")  # decision scores are not probabilities
    return float(_skm().log_loss(y, score, labels=list(o.labels) if o.labels is not None else None))


def _r2(y: np.ndarray, pred: np.ndarray | None, score: np.ndarray | None, o: ScoreOptions) -> float:
    return float(_skm().r2_score(y, _pred(pred)))


def _rmse(
    y: np.ndarray, pred: np.ndarray | None, score: np.ndarray | None, o: ScoreOptions
) -> float:
    return float(_skm().root_mean_squared_error(y, _pred(pred)))


def _mae(
    y: np.ndarray, pred: np.ndarray | None, score: np.ndarray | None, o: ScoreOptions
) -> float:
    return float(_skm().mean_absolute_error(y, _pred(pred)))


_C, _R = (CLASSIFICATION,), (REGRESSION,)
_BINARY = "of the positive class (binary) or macro-averaged (multiclass)"

METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric(
            "accuracy",
            "maximize",
            QUALITY,
            _C,
            description="share of correct labels",
            compute=_accuracy,
        ),
        Metric(
            "balanced_accuracy",
            "maximize",
            QUALITY,
            _C,
            description="mean per-class recall",
            compute=_balanced_accuracy,
        ),
        Metric(
            "f1",
            "maximize",
            QUALITY,
            _C,
            description=f"F1 {_BINARY}",
            uses_pos_label=True,
            compute=_label_metric("f1_score"),
        ),
        Metric(
            "precision",
            "maximize",
            QUALITY,
            _C,
            description=f"precision {_BINARY}",
            uses_pos_label=True,
            compute=_label_metric("precision_score"),
        ),
        Metric(
            "recall",
            "maximize",
            QUALITY,
            _C,
            description=f"recall {_BINARY}",
            uses_pos_label=True,
            compute=_label_metric("recall_score"),
        ),
        Metric(
            "roc_auc",
            "maximize",
            QUALITY,
            _C,
            True,
            "ROC AUC (one-vs-rest for multiclass)",
            uses_pos_label=True,
            compute=_roc_auc,
        ),
        Metric(
            "average_precision",
            "maximize",
            QUALITY,
            _C,
            True,
            f"area under the precision-recall curve {_BINARY}",
            uses_pos_label=True,
            compute=_average_precision,
        ),
        Metric(
            "log_loss",
            "minimize",
            QUALITY,
            _C,
            True,
            "cross-entropy of predicted probabilities",
            compute=_log_loss,
            needs_probabilities=True,
        ),
        Metric(
            "r2", "maximize", QUALITY, _R, description="coefficient of determination", compute=_r2
        ),
        Metric(
            "rmse", "minimize", QUALITY, _R, description="root mean squared error", compute=_rmse
        ),
        Metric("mae", "minimize", QUALITY, _R, description="mean absolute error", compute=_mae),
        # The units and clocks measure.py uses (spec.md's table): "mean seconds to fit" read as
        # the wall seconds the progress lines print, "ms to predict one row" as wall time and as
        # one row whatever serving.path says.
        Metric(
            "latency_p50_ms",
            "minimize",
            "latency",
            description="median CPU ms per call on the serving path (one row by default)",
        ),
        Metric(
            "latency_p95_ms",
            "minimize",
            "latency",
            description="95th-percentile CPU ms per call on the serving path (one row by default)",
        ),
        Metric(
            "batch_latency_p50_ms",
            "minimize",
            "latency",
            description="median ms to predict one batch of serving.batch_size rows",
        ),
        Metric(
            "throughput_rows_per_s", "maximize", "latency", description="rows per second in batches"
        ),
        Metric(
            "model_size_kb",
            "minimize",
            "size",
            description="pickled size of the fitted pipeline in KiB",
        ),
        Metric(
            "fit_time_s",
            "minimize",
            "time",
            description="mean CPU seconds to fit on one CV fold (preprocessing included)",
        ),
    ]
}


def get_metric(name: str, *, field: str = "metric") -> Metric:
    """The metric of that name.

    Raises:
        SpecError: no such metric; the message lists the valid names.
    """
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise SpecError(unknown_name("metric", name, METRICS, field=field)) from None


def metrics_for_task(task: str) -> list[Metric]:
    return [m for m in METRICS.values() if task in m.tasks]


def check_task(names: Iterable[str], task: str, dataset: str, *, field: str = "objectives") -> None:
    """Refuse metrics that do not apply to the dataset's task.

    Raises:
        SpecError: names the metric, the task, the metrics that fit, and ``data.task``
            (a target of few integer values is detected as classification).
    """
    for name in names:
        metric = get_metric(name, field=field)
        if task not in metric.tasks:
            hint = (
                " If the target is a quantity rather than a label (few distinct integer values "
                "are detected as classes), set data.task: regression."
                if task == CLASSIFICATION
                else " If the target holds labels, set data.task: classification."
            )
            raise SpecError(
                f"{field}: metric {name!r} applies to {metric.tasks[0]}, but {dataset!r} is a "
                f"{task} task; use one of "
                f"{', '.join(m.name for m in metrics_for_task(task) if m.is_quality)}.{hint}"
            )


def plain(value: Any) -> Any:
    """A label as a plain Python value (numpy scalars are not JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def positive_label(y: Any, requested: Any = None, *, field: str = "data.pos_label") -> Any:
    """The positive class of a binary target: ``requested``, else the minority class of ``y``.

    ``y`` is the training target. On a tie the later class in sorted order is positive
    (scikit-learn's ``classes_[1]``). Returns None for a target of more than two classes
    (metrics then macro-average) when nothing was requested.

    ``requested`` matches a class exactly, else by its text (``pos_label: "1"`` for the class
    ``1``; YAML and CSV disagree on types more often than users do).

    Raises:
        SpecError: ``requested`` is not a class of ``y``, or the target is not binary.
    """
    values = [plain(v) for v in np.asarray(y).tolist() if v is not None and v == v]  # no NaN
    counts: dict[Any, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    classes = sorted(counts, key=_sort_key)
    if requested is None:
        if len(classes) != 2:
            return None
        low = min(counts.values())
        return [c for c in classes if counts[c] == low][-1]
    if len(classes) != 2:
        raise SpecError(
            f"{field}: expected no pos_label for a target of {len(classes)} classes (multiclass "
            f"metrics are macro-averaged over the classes), received {requested!r}; remove "
            f"{field}."
        )
    exact = [c for c in classes if _same(c, requested)]
    if not exact:
        exact = [c for c in classes if str(c) == str(requested)]
    if len(exact) != 1:
        raise SpecError(
            f"{field}: expected one of the target's classes "
            f"{', '.join(repr(plain(c)) for c in classes)}, received {requested!r}."
        )
    return plain(exact[0])


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python; a boolean pos_label must name a boolean class and vice versa.
    if isinstance(a, (bool, np.bool_)) != isinstance(b, (bool, np.bool_)):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _sort_key(value: Any) -> tuple[str, Any]:
    # Classes of one target share a type; the type name keeps mixed ones sortable.
    return (type(value).__name__, value)
