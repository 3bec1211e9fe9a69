"""Honest, repeatable measurement of a model: CV quality, latency, size, fit time.

* Quality: the same CV folds for every trial of a study (:func:`make_folds` is deterministic
  in the data and the seed); each metric is the mean over folds, and its spread is kept.
  Values come from the metric registry (:mod:`tuneops.metrics`), which monitoring uses too;
  binary metrics score the positive class resolved once on the training target. The score
  of a majority-class / mean model on the same folds is the baseline (:func:`scoring_record`).
* Latency: single-threaded (BLAS/OpenMP pools limited to one thread, estimators with
  ``n_jobs=1``), after warm-up, repeated; median and p95 per row, median per batch, and
  throughput. Timing one ``predict`` with ``n_jobs=-1`` measures thread start-up and noise.
  Only the parts (one-row, batch) that a study's metrics need are timed: the batch part was
  about a quarter of the measurement's CPU on quickstart models, which want one-row p95 only.
* Size: bytes of the pickled fitted pipeline.
* Fit time: mean wall seconds of one fold's fit.
"""

from __future__ import annotations

import gc
import pickle
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.model_selection import KFold, StratifiedKFold
from threadpoolctl import threadpool_limits

from tuneops.errors import SpecError
from tuneops.metrics import METRICS, plain, positive_label

__all__ = [
    "make_folds",
    "score",
    "baseline_scores",
    "scoring_record",
    "measure_latency",
    "model_size_kb",
    "LatencyConfig",
    "ROW_METRICS",
    "BATCH_METRICS",
    "mean_metrics",
]


def make_folds(
    y: pd.Series, task: str, n_folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (classification) or plain shuffled K folds, fixed by ``seed``.

    Every fold must hold at least one row and, for classification, every class must appear
    in every fold (stratified): otherwise a fold's model never sees a class and its scores
    (log_loss, roc_auc) are computed over a different set of classes than the others.

    Raises:
        SpecError: ``n_folds`` exceeds the rows, or the size of the smallest class; the
            message names ``search.cv_folds`` and the largest value that works.
    """
    if n_folds > len(y):
        raise SpecError(
            f"search.cv_folds: expected at most {len(y)} (the data has {len(y)} rows and every "
            f"fold needs one), received {n_folds}. Lower search.cv_folds or use more data."
        )
    if task == "classification":
        counts = y.value_counts()
        smallest = int(counts.min())
        if smallest < n_folds:
            numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
            hint = (
                " If the target is a quantity rather than a label (a few distinct integer values "
                "are detected as classes), set data.task: regression."
                if numeric
                else ""
            )
            rare = plain(counts.idxmin())
            if smallest < 2:  # no number of folds works
                raise SpecError(
                    f"search.cv_folds: class {rare!r} of the target has a single row, so no "
                    f"number of folds can hold it in every fold (received {n_folds}). Remove or "
                    "merge the rare class." + hint
                )
            raise SpecError(
                f"search.cv_folds: expected at most {smallest} (the smallest class, {rare!r}, "
                f"has {smallest} rows and stratified folds need one of each class per fold), "
                f"received {n_folds}. Lower search.cv_folds, or remove or merge the rare class."
                + hint
            )
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
    pos_label: Any = None,
) -> dict[str, float]:
    """Quality metrics of a fitted model on ``(X, y)``; serving costs are ignored.

    Every value comes from the registry's function (:data:`tuneops.metrics.METRICS`), the
    same one monitoring uses.

    Args:
        labels: every class of the training target in the model's column order (default:
            the model's ``classes_``).
        pos_label: the positive class of a binary target (resolve it once on the training
            target with :func:`tuneops.metrics.positive_label`). None for a binary target
            takes the minority class of ``y`` - of this fold, so pass it explicitly.
    """
    names = [m for m in metrics if METRICS[m].is_quality]
    if not names:
        return {}
    classes = labels if labels is not None else getattr(model, "classes_", None)
    if (
        classes is not None
        and pos_label is None
        and len(classes) == 2
        and any(METRICS[m].uses_pos_label for m in names)
    ):
        pos_label = positive_label(y)
    pred = model.predict(X)
    y_score = _scores(model, X) if any(METRICS[m].needs_scores for m in names) else None
    y_true = np.asarray(y)
    return {
        name: METRICS[name].score(y_true, pred, y_score, labels=classes, pos_label=pos_label)
        for name in names
    }


def baseline_scores(
    y: pd.Series,
    task: str,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    metrics: Iterable[str],
    *,
    labels: Sequence[Any] | None = None,
    pos_label: Any = None,
) -> dict[str, float]:
    """What a model that ignores the features scores, on the study's own CV folds.

    Classification: scikit-learn's ``DummyClassifier(strategy="prior")``, which predicts the
    majority class of the training fold and the class shares as probabilities; regression:
    ``DummyRegressor(strategy="mean")``. Mean over folds, per quality metric. A tuned model
    that does not beat it has learned nothing from the features.
    """
    names = [m for m in metrics if METRICS[m].is_quality]
    if not names:
        return {}
    per_fold = []
    for train, test in folds:
        dummy = (
            DummyClassifier(strategy="prior")
            if task == "classification"
            else DummyRegressor(strategy="mean")
        )
        dummy.fit(np.zeros((len(train), 1)), y.iloc[train])
        per_fold.append(
            score(
                dummy,
                pd.DataFrame({"_": np.zeros(len(test))}),
                y.iloc[test],
                names,
                labels=labels,
                pos_label=pos_label,
            )
        )
    return mean_metrics(per_fold)[0]


def scoring_record(
    y: pd.Series,
    task: str,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    metrics: Iterable[str],
    *,
    labels: Sequence[Any] | None = None,
    pos_label: Any = None,
) -> dict[str, Any]:
    """How a study's quality metrics are computed, as plain data for ``results.json``.

    ``pos_label`` (the positive class of binary metrics, None otherwise), ``average``
    (``binary``, ``macro`` or None for regression), and ``baseline``: the score of the
    majority-class (classification) or mean (regression) model on the same folds
    (:func:`baseline_scores`), with its ``baseline_model``.
    """
    names = [m for m in metrics if METRICS[m].is_quality]
    average = None if task != "classification" else "binary" if pos_label is not None else "macro"
    return {
        "pos_label": plain(pos_label),
        "average": average,
        "baseline_model": "majority class" if task == "classification" else "mean",
        "baseline": baseline_scores(y, task, folds, names, labels=labels, pos_label=pos_label),
    }


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
            batched = _timed_calls(
                model.predict, [batch] * config.batch_repeats, config.max_seconds * 0.3
            )
            p50_batch = float(np.median(batched))
            out["batch_latency_p50_ms"] = p50_batch * 1e3
            out["throughput_rows_per_s"] = (
                config.batch_size / p50_batch if p50_batch > 0 else float("inf")
            )
    return out


def _timed_calls(fn: Callable[[Any], Any], args: Sequence[Any], budget_s: float) -> list[float]:
    """Time ``fn(a)`` for each ``a``; stop early past the budget but keep at least 5 timings.

    The garbage collector is paused while timing, as ``timeit`` does: a collection triggered
    by earlier allocations would land in whichever call happens to run then.
    """

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


def mean_metrics(
    per_fold: Sequence[Mapping[str, float]],
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and standard deviation over folds, per metric."""
    keys = per_fold[0].keys() if per_fold else []
    mean = {k: float(np.mean([f[k] for f in per_fold])) for k in keys}
    std = {k: float(np.std([f[k] for f in per_fold])) for k in keys}
    return mean, std
