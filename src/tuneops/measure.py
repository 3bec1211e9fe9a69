"""Honest, repeatable measurement of a model: CV quality, latency, size, fit time.

* Quality: the same CV folds for every trial of a study (:func:`make_folds` is deterministic
  in the data and the seed); each metric is the mean over folds, and its spread is kept.
* Latency: single-threaded (BLAS/OpenMP pools limited to one thread, estimators with
  ``n_jobs=1``), after warm-up, repeated; median and p95 per row, median per batch, and
  throughput. Timing one ``predict`` with ``n_jobs=-1`` measures thread start-up and noise.
  Only the parts (one-row, batch) that a study's metrics need are timed: the batch part was
  about a quarter of the measurement's CPU on quickstart models, which want one-row p95 only.
* Size: bytes of the pickled fitted pipeline.
* Fit time: mean wall seconds of one fold's fit.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tuneops.metrics import METRICS

__all__ = [
    "make_folds",
    "score",
    "measure_latency",
    "model_size_kb",
    "LatencyConfig",
    "ROW_METRICS",
    "BATCH_METRICS",
]


def make_folds(y: pd.Series, task: str, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (classification) or plain shuffled K folds, fixed by ``seed``."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if task == "classification":
        smallest = int(y.value_counts().min())
        if smallest >= n_folds:
            splitter = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
            return [(tr, te) for tr, te in splitter.split(np.zeros(len(y)), y)]
    splitter = KFold(n_folds, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in splitter.split(np.zeros(len(y)))]


def _scores(model: Any, X: pd.DataFrame) -> np.ndarray | None:
    """Class probabilities or decision scores, whichever the model offers."""
    if hasattr(model, "predict_proba"):
        try:
            return model.predict_proba(X)
        except (AttributeError, NotImplementedError):
            pass
    if hasattr(model, "decision_function"):
        return model.decision_function(X)
    return None


def score(
    model: Any,
    X: pd.DataFrame,
    y: pd.Series,
    metrics: Iterable[str],
    *,
    labels: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Quality metrics of a fitted model on ``(X, y)``; metrics of other kinds are ignored."""
    from sklearn import metrics as skm

    names = [m for m in metrics if METRICS[m].kind == "quality"]
    if not names:
        return {}
    pred = model.predict(X)
    out: dict[str, float] = {}
    scores = _scores(model, X) if any(METRICS[m].needs_scores for m in names) else None
    classes = labels if labels is not None else getattr(model, "classes_", None)
    for name in names:
        if name == "accuracy":
            out[name] = skm.accuracy_score(y, pred)
        elif name == "balanced_accuracy":
            out[name] = skm.balanced_accuracy_score(y, pred)
        elif name == "f1":
            binary = classes is not None and len(classes) == 2
            out[name] = skm.f1_score(
                y, pred, average="binary" if binary else "macro",
                pos_label=classes[1] if binary else 1, zero_division=0,
            )
        elif name == "roc_auc":
            out[name] = _roc_auc(y, scores, classes)
        elif name == "log_loss":
            if scores is None or scores.ndim != 2 or not hasattr(model, "predict_proba"):
                out[name] = float("nan")
            else:
                out[name] = skm.log_loss(y, scores, labels=classes)
        elif name == "r2":
            out[name] = skm.r2_score(y, pred)
        elif name == "rmse":
            out[name] = float(np.sqrt(skm.mean_squared_error(y, pred)))
        elif name == "mae":
            out[name] = skm.mean_absolute_error(y, pred)
    return {k: float(v) for k, v in out.items()}


def _roc_auc(y: pd.Series, scores: np.ndarray | None, classes: Any) -> float:
    from sklearn.metrics import roc_auc_score

    if scores is None or y.nunique() < 2:
        return float("nan")
    if classes is not None and len(classes) == 2:
        positive = scores[:, 1] if scores.ndim == 2 else scores
        return roc_auc_score(y == classes[1], positive)
    if scores.ndim != 2:
        return float("nan")
    # Folds may miss a rare class; score on the classes present, renormalised.
    present = np.isin(classes, y.unique())
    probs = scores[:, present]
    probs = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
    if present.sum() == 2:
        return roc_auc_score(y == np.asarray(classes)[present][1], probs[:, 1])
    return roc_auc_score(y, probs, multi_class="ovr", labels=np.asarray(classes)[present])


@dataclass(frozen=True)
class LatencyConfig:
    """How latency is measured. Defaults keep a trial's measurement under about a second."""

    warmup: int = 3
    repeats: int = 30
    batch_size: int = 256
    batch_repeats: int = 5
    max_seconds: float = 1.0


ROW_METRICS = ("latency_p50_ms", "latency_p95_ms")
BATCH_METRICS = ("batch_latency_p50_ms", "throughput_rows_per_s")


def measure_latency(
    model: Any,
    X: pd.DataFrame,
    config: LatencyConfig = LatencyConfig(),
    *,
    metrics: Iterable[str] | None = None,
) -> dict[str, float]:
    """Single-threaded, warmed-up, repeated predict timings.

    Returns ``latency_p50_ms`` and ``latency_p95_ms`` (one row per call, cycling through rows
    of ``X``), ``batch_latency_p50_ms`` (``batch_size`` rows per call) and
    ``throughput_rows_per_s``.

    Args:
        metrics: the latency metrics wanted (None: all). One-row timings give the first two,
            batch timings the last two; a part no wanted metric needs is skipped, and the part
            that runs keeps its own repeats and time budget, so skipping costs no precision.
    """
    from threadpoolctl import threadpool_limits

    wanted = set(ROW_METRICS + BATCH_METRICS if metrics is None else metrics)
    out: dict[str, float] = {}
    with threadpool_limits(limits=1):
        if wanted & set(ROW_METRICS):
            rows = [X.iloc[[i % len(X)]] for i in range(max(config.repeats, 1))]
            for i in range(config.warmup):
                model.predict(rows[i % len(rows)])
            single = _timed_calls(model.predict, rows, config.max_seconds * 0.7)
            out["latency_p50_ms"] = float(np.median(single)) * 1e3
            out["latency_p95_ms"] = float(np.percentile(single, 95)) * 1e3
        if wanted & set(BATCH_METRICS):
            batch = X.iloc[np.arange(config.batch_size) % len(X)]
            model.predict(batch)
            batched = _timed_calls(model.predict, [batch] * config.batch_repeats, config.max_seconds * 0.3)
            p50_batch = float(np.median(batched))
            out["batch_latency_p50_ms"] = p50_batch * 1e3
            out["throughput_rows_per_s"] = config.batch_size / p50_batch if p50_batch > 0 else float("inf")
    return out


def _timed_calls(fn: Callable[[Any], Any], args: Sequence[Any], budget_s: float) -> list[float]:
    """Time ``fn(a)`` for each ``a``; stop early past the budget but keep at least 5 timings.

    The garbage collector is paused while timing, as ``timeit`` does: a collection triggered
    by earlier allocations would land in whichever call happens to run then.
    """
    import gc

    times: list[float] = []
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for i, arg in enumerate(args):
            t0 = time.perf_counter()
            fn(arg)
            times.append(time.perf_counter() - t0)
            if i >= 4 and time.perf_counter() - start > budget_s:
                break
    finally:
        if was_enabled:
            gc.enable()
    return times


def model_size_kb(model: Any) -> float:
    """Pickled size of the fitted model in KiB (what a deployment would ship)."""
    return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)) / 1024.0


def mean_metrics(per_fold: Sequence[Mapping[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and standard deviation over folds, per metric."""
    keys = per_fold[0].keys() if per_fold else []
    mean = {k: float(np.mean([f[k] for f in per_fold])) for k in keys}
    std = {k: float(np.std([f[k] for f in per_fold])) for k in keys}
    return mean, std
