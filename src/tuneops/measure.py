"""Honest, repeatable measurement of a model: CV quality, latency, size, fit time.

* Quality: the same CV folds for every trial of a study (:func:`make_folds` is deterministic
  in the data and the seed); each metric is the mean over folds, and its spread is kept.
  Values come from the metric registry (:mod:`tuneops.metrics`), which monitoring uses too;
  binary metrics score the positive class resolved once on the training target. The score
  of a majority-class / mean model on the same folds is the baseline (:func:`scoring_record`).
* Serving cost (:func:`measure_serving`): the CPU time of the serving thread per call, on the
  path the spec's ``serving:`` section declares (a one-row DataFrame by default, a NumPy row,
  a batch, records), single-threaded (OpenMP/BLAS pools at one thread, ``n_jobs=1``) unless
  ``serving.threads`` says otherwise, after warm-up. The number of calls adapts: until the
  median's distribution-free 95% interval is within 3% of it (or 0.03 ms below a millisecond),
  or a CPU budget is spent
  (:class:`LatencyConfig`). Median and p95 come with their intervals, the number of calls,
  the wall-clock figures of the same calls, and the split into preprocessing and model.
  Wall time on a shared machine measures the machine's load (logistic regressions differing
  only in ``C`` measured 4.9-204 ms p95 within one study at load 10-40); the thread's CPU
  time does not count the waits; the machine's own slowdowns (a busy neighbour on the core, a
  lower clock) are divided out with a reference workload timed beside every call
  (:attr:`LatencyConfig.reference`). What the reference cannot divide out (a model switched
  out of its core refills its caches) is flagged: each measurement records how much of its
  timed calls' wall time the serving thread ran (:attr:`ServingCost.cpu_share`; below about
  0.8 it waited for a core), with the load average. Only the parts (declared path, batch) a
  study's metrics need are timed.
* Size: bytes of the pickled fitted pipeline.
* Fit time: mean CPU seconds of one fold's fit (:class:`FitClock`); wall seconds recorded too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import pickle
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import median_filter
from scipy.stats import binom
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.model_selection import KFold, StratifiedKFold

from tuneops import _gc
from tuneops.errors import SpecError
from tuneops.families._base import available_cores, serving_threads
from tuneops.metrics import METRICS, plain, positive_label

__all__ = [
    "serving_call",
    "make_folds",
    "score",
    "baseline_scores",
    "scoring_record",
    "measure_latency",
    "measure_serving",
    "quantile_ci",
    "reference_calibration",
    "reference_work",
    "model_size_kb",
    "LatencyConfig",
    "ServingConfig",
    "ServingCost",
    "Timing",
    "SERVING_PATHS",
    "serving_config",
    "FitClock",
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
        counts = counts[counts > 0]  # a category column lists its unused levels with 0 rows
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


# -- serving cost -------------------------------------------------------------------------------
SERVING_PATHS: dict[str, str] = {
    "row": "one row as a one-row pandas DataFrame per call (the default)",
    "numpy": "one row as a 2-D NumPy array (1, n_features) in the training column order",
    "batch": "serving.batch_size rows as a DataFrame per call",
    "records": "one row as a list holding one dict {column: value} (a JSON request)",
}
_SERVING_KEYS = ("path", "batch_size", "threads")


@dataclass(frozen=True)
class ServingConfig:
    """How the model will be called in production: the path whose cost is measured.

    Attributes:
        path: one of :data:`SERVING_PATHS`. Converting the request (records to a DataFrame,
            NumPy to what the pipeline accepts) counts as preprocessing.
        batch_size: rows per call on the ``batch`` path, and of the batch timings behind
            ``batch_latency_p50_ms`` and ``throughput_rows_per_s`` on the other paths.
        threads: threads the serving model may use (``n_jobs`` and OpenMP/BLAS pools). With
            1 (the default) the serving thread's CPU time is the cost; with more, wall time
            is, since the work spreads over threads the serving thread's clock does not see.
    """

    path: str = "row"
    batch_size: int = 256
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "batch_size": self.batch_size, "threads": self.threads}


def serving_config(raw: Any = None) -> ServingConfig:
    """The spec's ``serving:`` section as a :class:`ServingConfig`, validated.

    ``raw`` is None (the defaults), a mapping (the YAML section) or an object with ``path``,
    ``batch_size`` and ``threads`` attributes (a validated spec section); missing entries
    take the defaults.

    Raises:
        SpecError: an unknown key, an unknown path, or a count that is not an integer >= 1;
            the message names the field, what was expected and what was received.
    """
    if raw is None:
        return ServingConfig()
    if isinstance(raw, ServingConfig):
        return raw
    if isinstance(raw, Mapping):
        unknown = [k for k in raw if k not in _SERVING_KEYS]
        if unknown:
            raise SpecError(
                f"serving: unknown key {unknown[0]!r}; expected some of {', '.join(_SERVING_KEYS)}."
            )
        values = dict(raw)
    else:
        values = {k: getattr(raw, k) for k in _SERVING_KEYS if getattr(raw, k, None) is not None}
    default = ServingConfig()
    path = values.get("path", default.path)
    if path not in SERVING_PATHS:
        raise SpecError(
            f"serving.path: expected one of {', '.join(SERVING_PATHS)}, received {path!r}. "
            "Say how production calls the model: 'row' (a one-row DataFrame), 'numpy', "
            "'batch' (with serving.batch_size) or 'records' (a list of dicts)."
        )
    counts = {}
    for key in ("batch_size", "threads"):
        value = values.get(key, getattr(default, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError(f"serving.{key}: expected an integer >= 1, received {value!r}.")
        counts[key] = value
    return ServingConfig(path, counts["batch_size"], counts["threads"])


@dataclass(frozen=True)
class LatencyConfig:
    """How serving cost is measured: an adaptive number of calls within a CPU budget.

    Calls are made until the median's confidence interval (distribution-free, from order
    statistics) lies within ``rel_precision`` of the median or within ``abs_precision_ms`` -
    and, when p95 is wanted, at
    least ``p95_calls`` calls were made, the fewest for which a 95% interval of the p95 has an
    upper bound - or the budget is spent.

    Attributes:
        budget_s: CPU seconds of the serving thread for the whole measurement (all parts,
            warm-up and request preparation included); the wall time is capped at
            ``wall_factor`` times it. The budget stops a series after its third timed call at
            the earliest, so a model whose call costs over a quarter of it overruns it by up to
            that many calls.
        rel_precision: target half-width of the median's interval, relative to the median.
        abs_precision_ms: a half-width of the median's interval that is precise enough
            whatever the median: 3% of a millisecond. Below a millisecond a relative target
            asks for hundredths of a microsecond, which a model served on a busy machine
            reaches only after a second of calls, if at all (a quickstart forest of 0.45 ms at
            a CPU share of 0.25 needed 150-940 calls, 0.3 CPU-s per trial, more than its
            fits); no latency decision (a constraint in milliseconds, a front ordered by it)
            turns on less.
        min_cpu_s: CPU seconds spent before the precision may stop the calls: a cheap model
            meets the precision within 20 calls of a few milliseconds, a window too short to
            average the machine's drift (its idle CV between repeated measurements was
            0.10-0.14 at 20 calls, bench_latency).
        min_window_calls: calls that are window enough where the precision is
            ``abs_precision_ms`` (a median below a millisecond): the machine's drift of a few
            percent is then within that precision, and ``min_cpu_s`` of a 0.4 ms model (250
            calls) was the largest part of the quickstart's measurement, a fixed 0.1 CPU-s per
            trial that a faster host did not shrink. 100 calls are ``min_cpu_s`` at 1 ms.
        confidence: level of the intervals.
        min_calls: timed calls before the interval is first checked.
        p95_calls: calls wanted when p95 is an objective or constraint.
        max_calls: a hard cap on timed calls.
        warmup: untimed calls first (caches, lazy imports, first-call allocations), at most;
            after a call that spent a tenth of the budget, no more.
        batch_share: share of the budget for the batch timings, when they are wanted besides
            the declared path.
        reference: time a fixed reference workload (:func:`reference_work`) before every
            call and express each call at the speed the machine had when it was calibrated
            (single-threaded serving only): what of the host's drift moves both cancels.
        reference_ns: that calibration, the reference's CPU ns per call; None: this process's
            own (:func:`reference_calibration`). A study measures every trial against one
            (``SpecObjective.share_calibration`` takes the study's before its workers start).
    """

    budget_s: float = 1.0
    rel_precision: float = 0.03
    abs_precision_ms: float = 0.03
    min_cpu_s: float = 0.1
    min_window_calls: int = 100
    confidence: float = 0.95
    min_calls: int = 20
    p95_calls: int = 100
    max_calls: int = 100_000
    warmup: int = 3
    wall_factor: float = 10.0
    batch_share: float = 0.3
    reference: bool = True
    reference_ns: float | None = None


_REFERENCE_VECTOR = np.arange(32.0)


def reference_work() -> float:
    """The fixed workload timed beside every serving call: interpreter work (a loop over a
    small dict) and small NumPy calls, what a one-row ``predict`` is mostly made of. It is
    timed warm, so it follows the machine's own speed (its clock, a neighbour on the core), not
    the cache refills a model pays after its thread was switched out: under 4 busy processes on
    2 cores it slowed 1.02-1.09x where the models slowed 1.01-1.23x (bench_latency), so the
    correction removes part of such a slowdown, not all of it."""
    total = 0.0
    seen: dict[int, float] = {}
    for i in range(100):
        seen[i & 15] = total
        total += i * 3 % 7
    vector = _REFERENCE_VECTOR
    for _ in range(8):
        total += float(vector.dot(vector))
    return total


_REFERENCE_TIMINGS = 3


def _timed_reference(clock: Callable[[], int]) -> int:
    """The cost of :func:`reference_work`, warm (run once untimed first: the call before it
    went through the caches), the same way for the calibration and beside every call: the
    least of three timings. One timing is not enough: beside a random forest's 30 ms batches
    on 1,510-column data under 4 busy processes on 2 cores, most single timings read 5-7x the
    calibration and the next ones 1.0x, and the calls were divided by 5.5 (6 ms reported for
    35 ms of CPU); the least of three read 1.0-1.6x."""
    reference_work()
    timings = []
    for _ in range(_REFERENCE_TIMINGS):
        start = clock()
        reference_work()
        timings.append(clock() - start)
    return min(timings)


_CALIBRATION: list[float] = []  # this process's reference_ns, measured once


def reference_calibration(calls: int = 400) -> float:
    """CPU nanoseconds of one :func:`reference_work` on this thread: the median of ``calls``
    timed calls, measured on first use and kept for the process. Measurements expressed
    against it are in milliseconds at the machine's speed at that moment."""
    if not _CALIBRATION:
        clock = time.thread_time_ns
        samples = []
        # As it is timed beside serving calls: warm, after other work went through the caches.
        other = np.ones(1 << 18)  # 2 MiB of data, and pandas' code, as a request's call
        with _gc.paused():
            for i in range(calls):
                other.sum()
                pd.DataFrame({"x": [float(i)]}).iloc[[0]]
                samples.append(_timed_reference(clock))
        _CALIBRATION.append(float(np.median(samples)))
    return _CALIBRATION[0]


def _speeds(reference_ns: Sequence[int], calibration: float) -> np.ndarray:
    """Per call, the machine's slowness against the calibration: the running median (over 9
    calls) of the reference's cost, divided by the calibrated cost."""
    refs = np.asarray(reference_ns, dtype=float)
    return median_filter(refs, size=min(9, len(refs)), mode="nearest") / calibration


ROW_METRICS = ("latency_p50_ms", "latency_p95_ms")
BATCH_METRICS = ("batch_latency_p50_ms", "throughput_rows_per_s")


def quantile_ci(
    sorted_values: Sequence[float] | np.ndarray, q: float, confidence: float = 0.95
) -> tuple[float, float, bool]:
    """Distribution-free confidence interval of the ``q`` quantile from a sorted sample.

    The interval between order statistics ``x_(l)`` and ``x_(u)`` covers the true quantile
    with probability >= ``confidence`` whatever the distribution, since the number of samples
    below it is Binomial(n, q): ``l = F^-1(a/2)`` and ``u = F^-1(1 - a/2) + 1`` (1-based) for
    that binomial (Conover, *Practical Nonparametric Statistics*, 3.2).

    Returns:
        ``(low, high, bounded)``; when the sample is too small for an index to exist (p95
        needs 72 values at 95%), the extreme sample stands in and ``bounded`` is False.
    """
    x = np.asarray(sorted_values, dtype=float)
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), False
    alpha = 1.0 - confidence
    low_k = int(binom.ppf(alpha / 2, n, q))
    high_k = int(binom.ppf(1 - alpha / 2, n, q)) + 1
    bounded = low_k >= 1 and high_k <= n
    return float(x[max(low_k, 1) - 1]), float(x[min(high_k, n) - 1]), bounded


@dataclass(frozen=True)
class Timing:
    """Per-call figures of one timed series, in milliseconds of the measuring clock.

    ``preprocess_ms`` and ``model_ms`` split ``median_ms`` by the median over calls of the
    preprocessing share of each call, so they sum to it; ``preprocess_share`` is the
    preprocessing share of the summed time. ``wall_*`` are wall
    clock figures of the same calls (what a client would wait on this machine, now). With the
    reference (:attr:`LatencyConfig.reference`), every call is divided by the machine's
    slowness at that moment (``speed``, 1.0 at the calibration); ``raw_median_ms`` is the
    clock's own median.
    """

    median_ms: float
    median_ci_ms: tuple[float, float]
    p95_ms: float
    p95_ci_ms: tuple[float, float]
    p95_bounded: bool
    n_calls: int
    wall_median_ms: float
    wall_p95_ms: float
    preprocess_ms: float
    model_ms: float
    preprocess_share: float
    stopped_by: str  # "precision", "budget", "max_calls" or "dominated"
    cpu_s: float  # CPU seconds the measurement cost (request preparation included)
    raw_median_ms: float = float("nan")  # the clock's own median, before the speed correction
    speed: float = 1.0  # the machine's slowness against the calibration (median over calls)
    cpu_share: float | None = None  # the thread's CPU over the wall time of the timed calls

    @property
    def relative_halfwidth(self) -> float:
        lo, hi = self.median_ci_ms
        if not self.median_ms:
            return 0.0
        return max(hi - self.median_ms, self.median_ms - lo) / self.median_ms

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["median_ci_ms"], out["p95_ci_ms"] = list(self.median_ci_ms), list(self.p95_ci_ms)
        return out


@dataclass(frozen=True)
class ServingCost:
    """What serving the model costs on its declared path (see :func:`measure_serving`)."""

    serving: ServingConfig
    clock: str  # "thread_cpu" (one thread) or "wall" (serving.threads > 1)
    call: Timing | None  # one request on the declared path
    batch: Timing | None  # serving.batch_size rows per call
    # the machine's 1-minute load average when the measurement ended, and its cores: a busy
    # machine slows the models themselves beyond what the reference work divides out (the
    # direct sign of that is cpu_share; the load average lags and counts every process)
    load: float | None = None
    cores: int | None = None

    @property
    def cpu_share(self) -> float | None:
        """How much of its timed calls' wall time the serving thread ran: the lower
        :attr:`Timing.cpu_share` of the timed series (None with a wall clock)."""
        shares = [t.cpu_share for t in (self.call, self.batch) if t is not None]
        known = [s for s in shares if s is not None]
        return min(known) if known else None

    def metrics(self) -> dict[str, float]:
        """The registry's latency metrics (``latency_p50_ms`` ... ``throughput_rows_per_s``)."""
        out: dict[str, float] = {}
        if self.call is not None:
            out["latency_p50_ms"] = self.call.median_ms
            out["latency_p95_ms"] = self.call.p95_ms
        if self.batch is not None:
            out["batch_latency_p50_ms"] = self.batch.median_ms
            out["throughput_rows_per_s"] = _throughput(
                self.serving.batch_size, self.batch.median_ms
            )
        return out

    def intervals(self) -> dict[str, list[float | None]]:
        """``metric -> [low, high]``: the confidence interval of each latency metric; the p95's
        ``high`` is None when a timing stopped as dominated made too few calls to bound it
        (:func:`quantile_ci`)."""
        out: dict[str, list[float | None]] = {}
        if self.call is not None:
            out["latency_p50_ms"] = list(self.call.median_ci_ms)
            # A timing stopped as dominated (after 20 calls) gives its p95 no upper bound: the
            # largest of 20 calls is above the p95 with probability 1 - 0.95^20 = 64%, not 95%.
            # One stopped by its budget keeps the largest call (at 50 calls a 92% bound) until
            # selection can weigh such bounds (a p95 constraint on costly models).
            low, high = self.call.p95_ci_ms
            unknown = not self.call.p95_bounded and self.call.stopped_by == "dominated"
            out["latency_p95_ms"] = [low, None if unknown else high]
        if self.batch is not None:
            lo, hi = self.batch.median_ci_ms
            out["batch_latency_p50_ms"] = [lo, hi]
            out["throughput_rows_per_s"] = [
                _throughput(self.serving.batch_size, hi),
                _throughput(self.serving.batch_size, lo),
            ]
        return out

    def record(self) -> dict[str, Any]:
        """Plain data for the trial's ``tuneops:cost`` attribute."""
        return {
            **self.serving.to_dict(),
            "clock": self.clock,
            "call": self.call.to_dict() if self.call is not None else None,
            "batch": self.batch.to_dict() if self.batch is not None else None,
            "cpu_share": self.cpu_share,
            "load": self.load,
            "cores": self.cores,
        }


def _throughput(batch_size: int, ms: float) -> float:
    return batch_size / (ms / 1e3) if ms > 0 else float("inf")


def measure_serving(
    model: Any,
    X: pd.DataFrame,
    config: LatencyConfig = LatencyConfig(),
    *,
    serving: ServingConfig = ServingConfig(),
    metrics: Iterable[str] | None = None,
    dominated_above_ms: float | None = None,
) -> ServingCost:
    """Time ``model.predict`` on the declared serving path; preprocessing and model apart.

    Each call is timed by the serving thread's CPU clock (``time.thread_time_ns``) with
    OpenMP/BLAS pools and the estimator's ``n_jobs`` at ``serving.threads`` (one by default):
    the CPU a single-threaded request costs, which other processes on a busy machine do not
    add to (they delay it; the wall figures record that). With several serving threads the
    wall clock is the cost. A pipeline's steps are timed as ``Pipeline.predict`` runs them:
    the transform steps (and any request conversion) as preprocessing, the final estimator's
    ``predict`` as the model; the cost is their sum per call.

    Requests cycle through the rows of ``X`` and are made fresh for every call, outside the
    timing: pandas caches per DataFrame, and a production request is a new frame. The
    garbage collector is paused while timing, as ``timeit`` does.

    Args:
        metrics: the latency metrics wanted (None: all). The declared path gives
            ``latency_p50_ms``/``latency_p95_ms``; batch timings give the batch metrics (on
            the ``batch`` path they are the same calls). A part no wanted metric needs is
            skipped.
        dominated_above_ms: stop timing the declared path early (``stopped_by`` is
            ``"dominated"``) once the median's lower confidence bound exceeds this: a trial
            whose latency is then known, with confidence, to be worse than that of a trial at
            least as good on everything else cannot reach the Pareto front, and a precise
            figure of it is not worth the calls (issue 15: measure precisely only what can
            matter). Its figures and intervals are those of the calls made.
    """
    wanted = set(ROW_METRICS + BATCH_METRICS if metrics is None else metrics)
    want_call = bool(wanted & set(ROW_METRICS)) or serving.path == "batch"
    want_batch = bool(wanted & set(BATCH_METRICS)) and serving.path != "batch"
    clock = time.thread_time_ns if serving.threads == 1 else time.perf_counter_ns
    budgets = (
        (config.budget_s * (1 - config.batch_share), config.budget_s * config.batch_share)
        if want_call and want_batch
        else (config.budget_s, config.budget_s)
    )
    calibration = None
    if config.reference and serving.threads == 1:  # a one-thread reference for one thread
        calibration = config.reference_ns or reference_calibration()
    call = batch = None
    with serving_threads(model, serving.threads), _quiet_requests():
        if want_call:
            rows = serving.batch_size if serving.path == "batch" else 1
            call = _time_series(
                _Caller(model, X, serving.path, clock),
                _requests(X, serving.path, rows),
                budgets[0],
                config,
                want_p95="latency_p95_ms" in wanted,
                dominated_above_ms=dominated_above_ms,
                calibration=calibration,
            )
        if want_batch:
            kind = {"row": "batch", "numpy": "numpy", "records": "records"}[serving.path]
            batch = _time_series(
                _Caller(model, X, kind, clock),
                _requests(X, kind, serving.batch_size),
                budgets[1],
                config,
                want_p95=False,
                calibration=calibration,
            )
    if serving.path == "batch":
        batch = call
    return ServingCost(
        serving,
        "thread_cpu" if serving.threads == 1 else "wall",
        call,
        batch,
        load=_load_average(),
        cores=available_cores(),  # this process's (affinity), not the host's count
    )


def _load_average() -> float | None:
    """The 1-minute load average (None where the system does not tell)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def measure_latency(
    model: Any,
    X: pd.DataFrame,
    config: LatencyConfig = LatencyConfig(),
    *,
    metrics: Iterable[str] | None = None,
    serving: ServingConfig = ServingConfig(),
) -> dict[str, float]:
    """The latency metrics of :func:`measure_serving` (which also gives intervals and parts)."""
    return measure_serving(model, X, config, serving=serving, metrics=metrics).metrics()


@contextlib.contextmanager
def _quiet_requests() -> Iterator[None]:
    """The block in which a serving measurement calls the model. A request kind the model
    warns on counts as refused where a conversion exists (:meth:`_Caller._accepts`: a NumPy
    row to a model fitted on a DataFrame is served from a DataFrame); a model that still warns
    on every call (scikit-learn's "X has feature names, but ... was fitted without" for a
    DataFrame to a model fitted on NumPy, which is what ``tuneops serve`` sends it) is timed as
    it predicts, and its warning is not repeated once per call, nor raised under "error".

    The warning filters are the process's (and a thread inherits the context it was started
    in where they are per context, Python 3.14's free-threaded build), so the calls of threads
    started inside the block, as the staging gate's concurrent ones, are quiet too.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def serving_call(
    model: Any, X: pd.DataFrame, path: str, rows: int
) -> Iterator[tuple[Callable[[int], Any], Callable[[Any], float]]]:
    """``(request, call)`` for timing ``model`` on serving ``path`` by the wall clock (what a
    client waits; the staging gate's figure), for the block: ``request(i)`` makes call ``i``'s
    request of ``rows`` rows, fresh, and ``call(request)`` answers it, converting it first when
    the pipeline does not take that kind itself, and returns its seconds. Within the block, in
    the threads it starts too, the model's calls follow :func:`measure_serving`'s warning rule
    (:func:`_quiet_requests`)."""
    with _quiet_requests():
        caller = _Caller(model, X, path, time.perf_counter_ns)
        yield _requests(X, path, rows), lambda request: caller(request)[1] / 1e9


def _requests(X: pd.DataFrame, path: str, rows: int) -> Callable[[int], Any]:
    """``i -> request`` for call ``i``: a fresh object of the path's kind, cycling over ``X``."""
    n = len(X)
    if path == "numpy":
        values = X.to_numpy()
        return lambda i: values[np.arange(i * rows, (i + 1) * rows) % n]
    if path == "records":
        pool = X.iloc[: min(n, 64 * rows)].to_dict("records")
        return lambda i: [dict(pool[(i * rows + k) % len(pool)]) for k in range(rows)]
    if rows == 1:
        return lambda i: X.iloc[[i % n]]
    return lambda i: X.iloc[np.arange(i * rows, (i + 1) * rows) % n]


class _Caller:
    """One serving call split in two timed parts: ``(preprocess ns, total ns)``."""

    def __init__(self, model: Any, X: pd.DataFrame, kind: str, clock: Callable[[], int]):
        steps = getattr(model, "steps", None)
        if isinstance(steps, list) and len(steps) > 1:
            self.transforms = [s for _, s in steps[:-1] if s is not None and s != "passthrough"]
            self.final = steps[-1][1]
        else:
            self.transforms, self.final = [], model
        self.clock = clock
        self.columns = list(X.columns)
        self.dtypes = X.dtypes.to_dict()
        # A pipeline that does not take NumPy rows or records itself (tuneops' preprocessing
        # does) needs a DataFrame: building one is part of serving such a request.
        self.convert: Callable[[Any], Any] | None = None
        if kind == "records" and not self._accepts(X.iloc[:1].to_dict("records")):
            self.convert = self._from_records
        elif kind == "numpy" and not self._accepts(X.to_numpy()[:1]):
            self.convert = self._from_numpy

    def _accepts(self, values: np.ndarray) -> bool:
        # A warning is a refusal, whatever the filters: a model that warns on a NumPy row
        # ("X does not have valid feature names") is served quietly from a DataFrame, and
        # the path taken must not depend on the caller's filters (under the default filters
        # the timed calls warned, under "error" a DataFrame was built; the staging gate's
        # calls, in threads, have no quiet context and raised under "error").
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                x = values
                for step in self.transforms:
                    x = step.transform(x)
                if not self.transforms:
                    self.final.predict(x)
        except Exception:  # noqa: BLE001 - any refusal means "needs a DataFrame"
            return False
        return True

    def _from_records(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        return pd.DataFrame.from_records(records, columns=self.columns)

    def _from_numpy(self, values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(values, columns=self.columns).astype(self.dtypes)

    def __call__(self, request: Any) -> tuple[int, int]:
        clock = self.clock
        start = clock()
        x = self.convert(request) if self.convert is not None else request
        for step in self.transforms:
            x = step.transform(x)
        middle = clock()
        self.final.predict(x)
        end = clock()
        return middle - start, end - start


_WARMUP_SHARE = 0.1  # of the budget: past it, no further warm-up call
_MIN_BUDGET_CALLS = 3  # timed calls before the budget may stop: a median that resists one outlier


def _time_series(
    call: _Caller,
    request: Callable[[int], Any],
    budget_s: float,
    config: LatencyConfig,
    *,
    want_p95: bool,
    dominated_above_ms: float | None = None,
    calibration: float | None = None,
) -> Timing:
    """Call until the median is known to ``rel_precision`` (and p95 has its calls) or the
    budget is spent; see :class:`LatencyConfig`. With ``dominated_above_ms``, also stop once
    the median's lower confidence bound is above it (see :func:`measure_serving`). With a
    ``calibration``, :func:`reference_work` is timed before each call and each call is divided
    by the machine's slowness then (:func:`_speeds`)."""
    # The warm-up is part of the measurement's cost: it counts against the budget, and one
    # call that spent a tenth of it is warm-up enough (three free warm-up calls and five owed
    # timed ones cost a random forest's 66 ms batch 0.53 CPU-s of a 0.3 s share).
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    warmed = 0
    while warmed < config.warmup:
        call(request(warmed))
        warmed += 1
        if time.thread_time() - cpu0 > _WARMUP_SHARE * budget_s:
            break
    need = max(config.min_calls, config.p95_calls if want_p95 else 0)
    totals: list[int] = []
    pres: list[int] = []
    walls: list[int] = []
    refs: list[int] = []
    clock = call.clock

    def corrected() -> tuple[np.ndarray, np.ndarray]:
        """Per-call totals in ns, and the speeds they were divided by."""
        raw = np.asarray(totals, dtype=float)
        if calibration is None:
            return raw, np.ones_like(raw)
        speeds = _speeds(refs, calibration)
        return raw / speeds, speeds

    stopped_by = "max_calls"
    check_at = need
    dominated_ns = None if dominated_above_ms is None else dominated_above_ms * 1e6
    dominance_at = config.min_calls
    # No collection may pause a timed call. None is forced before: a full collection scans every
    # object of the worker (80 ms per trial on the quickstart, 8% of its CPU) and times nothing.
    with _gc.paused():
        for i in range(warmed, warmed + config.max_calls):
            req = request(i)
            if calibration is not None:
                refs.append(_timed_reference(clock))
            w = time.perf_counter_ns()
            pre, total = call(req)
            walls.append(time.perf_counter_ns() - w)
            pres.append(pre)
            totals.append(total)
            n = len(totals)
            if n >= _MIN_BUDGET_CALLS and (
                time.thread_time() - cpu0 > budget_s
                or time.perf_counter() - wall0 > budget_s * config.wall_factor
            ):
                stopped_by = "budget"
                break
            if dominated_ns is not None and n >= dominance_at:
                low = quantile_ci(np.sort(corrected()[0]), 0.5, config.confidence)[0]
                if low > dominated_ns:
                    stopped_by = "dominated"
                    break
                dominance_at = math.ceil(n * 1.25)
            if n >= check_at:
                ordered = np.sort(corrected()[0])
                median = float(np.median(ordered))
                lo, hi, _ = quantile_ci(ordered, 0.5, config.confidence)
                wanted = max(config.rel_precision * median, config.abs_precision_ms * 1e6)
                precise = max(hi - median, median - lo) <= wanted
                long_enough = time.thread_time() - cpu0 >= min(config.min_cpu_s, budget_s) or (
                    n >= config.min_window_calls and wanted > config.rel_precision * median
                )
                if precise and long_enough:
                    stopped_by = "precision"
                    break
                check_at = math.ceil(n * 1.1)
    cpu_s = time.thread_time() - cpu0
    total_ns, speeds = corrected()
    unsorted_total = total_ns / 1e6
    total_ms = np.sort(unsorted_total)
    pre_ms = np.asarray(pres, dtype=float) / speeds / 1e6
    wall_ms = np.asarray(walls, dtype=float) / 1e6
    med_lo, med_hi, _ = quantile_ci(total_ms, 0.5, config.confidence)
    p95_lo, p95_hi, p95_bounded = quantile_ci(total_ms, 0.95, config.confidence)
    summed = float(unsorted_total.sum())
    median_ms = float(np.median(total_ms))
    # The parts of the median, not the medians of the parts: those summed to 0.69-1.15 of it
    # on new models under load. The median share is robust to a call slow in one part.
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(unsorted_total > 0, pre_ms / unsorted_total, 0.0)
    pre_share = float(np.clip(np.median(shares), 0.0, 1.0)) if len(shares) else 0.0
    return Timing(
        median_ms=median_ms,
        median_ci_ms=(med_lo, med_hi),
        p95_ms=float(np.percentile(total_ms, 95)),
        p95_ci_ms=(p95_lo, p95_hi),
        p95_bounded=p95_bounded,
        n_calls=len(total_ms),
        wall_median_ms=float(np.median(wall_ms)),
        wall_p95_ms=float(np.percentile(wall_ms, 95)),
        preprocess_ms=median_ms * pre_share,
        model_ms=median_ms * (1.0 - pre_share),
        preprocess_share=float(pre_ms.sum() / summed) if summed > 0 else 0.0,
        stopped_by=stopped_by,
        cpu_s=cpu_s,
        raw_median_ms=float(np.median(totals)) / 1e6,
        speed=float(np.median(speeds)),
        cpu_share=_cpu_share(totals, walls) if clock is time.thread_time_ns else None,
    )


def _cpu_share(cpu_ns: Sequence[int], wall_ns: Sequence[int]) -> float | None:
    """The serving thread's CPU time over the wall time of the same calls, summed."""
    wall = float(sum(wall_ns))
    return min(1.0, float(sum(cpu_ns)) / wall) if wall > 0 else None


class FitClock:
    """CPU and wall seconds of the fits inside ``with`` blocks, summed over blocks.

    CPU time is the cost a busy machine does not distort (wall time also counts the moments
    the worker waits for a core: 64 wall-s against 16 CPU-s per fold under load, issue 16).
    With one thread it is the calling thread's clock (``time.thread_time``); with several it
    is the process's (``time.process_time``), which counts every thread of the fit - and of
    anything else running in the process, so a worker runs one trial at a time.
    """

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self.clock = "thread_cpu" if threads == 1 else "process_cpu"
        self._cpu = time.thread_time if threads == 1 else time.process_time
        self.cpu_s = 0.0
        self.wall_s = 0.0

    def __enter__(self) -> FitClock:
        self._start = (self._cpu(), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_s += self._cpu() - self._start[0]
        self.wall_s += time.perf_counter() - self._start[1]


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
