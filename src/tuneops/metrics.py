"""The built-in metrics: name, direction, what it measures, and for which task.

A metric is *quality* (computed from out-of-fold predictions, averaged over the CV folds),
*latency* (single-threaded, warmed-up predict timings), *size* (serialized bytes) or *time*
(fit seconds). Spec objectives and constraints name metrics from this table.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "METRICS", "get_metric", "metrics_for_task"]


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str  # "maximize" | "minimize"
    kind: str  # "quality" | "latency" | "size" | "time"
    tasks: tuple[str, ...] = ("classification", "regression")
    needs_scores: bool = False  # needs predict_proba / decision_function
    description: str = ""


_C, _R = ("classification",), ("regression",)

METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("accuracy", "maximize", "quality", _C, description="share of correct labels"),
        Metric("balanced_accuracy", "maximize", "quality", _C, description="mean per-class recall"),
        Metric("f1", "maximize", "quality", _C, description="F1 (binary) or macro F1 (multiclass)"),
        Metric("roc_auc", "maximize", "quality", _C, True, "ROC AUC (one-vs-rest for multiclass)"),
        Metric("log_loss", "minimize", "quality", _C, True, "cross-entropy of predicted probabilities"),
        Metric("r2", "maximize", "quality", _R, description="coefficient of determination"),
        Metric("rmse", "minimize", "quality", _R, description="root mean squared error"),
        Metric("mae", "minimize", "quality", _R, description="mean absolute error"),
        Metric("latency_p50_ms", "minimize", "latency", description="median ms to predict one row"),
        Metric("latency_p95_ms", "minimize", "latency", description="95th-percentile ms to predict one row"),
        Metric("batch_latency_p50_ms", "minimize", "latency", description="median ms to predict one batch"),
        Metric("throughput_rows_per_s", "maximize", "latency", description="rows per second in batches"),
        Metric("model_size_kb", "minimize", "size", description="pickled size of the fitted pipeline"),
        Metric("fit_time_s", "minimize", "time", description="mean seconds to fit on one CV fold"),
    ]
}


def get_metric(name: str, *, field: str = "metric") -> Metric:
    from tuneops.errors import SpecError, unknown_name

    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise SpecError(unknown_name("metric", name, METRICS, field=field)) from None


def metrics_for_task(task: str) -> list[Metric]:
    return [m for m in METRICS.values() if task in m.tasks]
