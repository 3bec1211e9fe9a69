"""The staging gate: is a registered version fit to serve? Judged on intervals, recorded.

:func:`verify` re-evaluates a candidate version before it serves (the production workflow's
"verify in staging": more cross-validation than tuning could afford, and serving latency):

1. **Quality** - the candidate's configuration (a clone of its artifact's pipeline, so what is
   verified is exactly what was registered) is refitted on repeated K folds (``n_folds`` x
   ``n_repeats``, stratified for classification; sklearn's ``RepeatedStratifiedKFold`` /
   ``RepeatedKFold``). Each metric gets a confidence interval from the *corrected resampled t*
   (Nadeau & Bengio 2003; Bouckaert & Frank 2004 for repeated CV): folds share training rows, so
   the naive t interval over folds is too narrow; the variance is inflated by
   ``1/J + n_test/n_train``.
2. **Against the champion** - the champion is refitted on the *same* folds and the per-fold
   difference of the monitored metric gets the same corrected interval (paired). The candidate
   fails when the interval's upper bound is < ``-max_regression``: worse by more than that, with
   confidence. (The lower bound >= ``-max_regression`` asks it to be *shown* at least as good,
   which no model equal to the champion is at ``max_regression: 0``: its interval straddles 0.)
3. **Latency** on the serving path (``rows`` rows per call as a DataFrame, one by default),
   BLAS pools limited to one thread as in tuning: one call at a time (what the spec's latency
   constraints meant when tuning measured them), and under concurrency: ``concurrency`` threads
   send ``n_requests`` calls; p50/p95/p99 per call with distribution-free confidence bounds
   (binomial order statistics) and throughput per round.
4. **Judgement on intervals** - a constraint or SLO ``x <= limit`` passes only if the interval's
   *upper* bound is <= limit; ``x >= limit`` only if the *lower* bound is >= limit. Constraints
   come from the version's spec; SLOs from ``monitor.slo`` (:class:`~tuneops.ops.live.SLOConfig`,
   judged on the concurrent measurement).

The verdict and its evidence are a ``verify`` event in the registry
(:meth:`~tuneops.ops.registry.Registry.verification` reads it back).

Settings (the spec's ``monitor.verify``, validated by :class:`tuneops.spec.VerifySettings`)::

    monitor:
      verify: {n_folds: 5, n_repeats: 3, alpha: 0.05, max_regression: 0.01,
               concurrency: 4, n_requests: 200, rows: 1}
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from tuneops.data import load_dataset
from tuneops.errors import DataError, UsageError
from tuneops.measure import model_size_kb, score, serving_call, serving_config
from tuneops.metrics import METRICS
from tuneops.ops.categories import category_schema
from tuneops.ops.live import SLOConfig, monitor_settings
from tuneops.ops.monitor import PERFORMANCE_METRICS, check_labels, validate_batch
from tuneops.ops.registry import Registry, comparable
from tuneops.spec import VerifySettings, parse_constraint

__all__ = ["VerifyConfig", "Verdict", "verify", "corrected_interval", "quantile_bounds"]

#: The defaults of ``monitor.verify``, written once: in the spec's settings.
_DEFAULT = VerifySettings()


@dataclass(frozen=True)
class VerifyConfig:
    """How hard the gate looks (the spec's ``monitor.verify``; the defaults are
    :class:`tuneops.spec.VerifySettings`').

    * ``n_folds``, ``n_repeats`` - repeated K-fold CV (the seed: "increase cross-validation,
      5-10"); ``alpha`` - 1 - confidence of every interval.
    * ``max_regression`` - how much worse than the champion (monitored metric, its units)
      the candidate may be shown to be: it fails when the paired interval's upper bound is below
      ``-max_regression``.
    * ``concurrency`` threads, ``n_requests`` calls, ``rows`` rows per call - the serving path
      under load.
    """

    n_folds: int = _DEFAULT.n_folds
    n_repeats: int = _DEFAULT.n_repeats
    alpha: float = _DEFAULT.alpha
    max_regression: float = _DEFAULT.max_regression
    concurrency: int = _DEFAULT.concurrency
    n_requests: int = _DEFAULT.n_requests
    rows: int = _DEFAULT.rows

    @classmethod
    def from_raw(cls, raw: Any, field_name: str = "monitor.verify") -> VerifyConfig:
        """Validate a ``monitor.verify`` mapping (None: the defaults) as the spec does
        (:class:`tuneops.spec.VerifySettings`, the one validator of these settings).

        Raises:
            SpecError: an unknown key or a value out of range, naming the field.
        """
        if isinstance(raw, VerifyConfig):
            return raw
        return cls(**VerifySettings.from_raw(raw, field_name).full_dict())


@dataclass
class Verdict:
    """The gate's verdict (``pass`` / ``fail``), the checks behind it and the evidence."""

    version: int
    verdict: str
    reasons: list[str]
    checks: list[dict[str, Any]]
    quality: dict[str, dict[str, float]]
    comparison: dict[str, Any] | None
    latency: dict[str, Any]
    concurrency: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- statistics (pure) ----------------------------------------------------------------------------
def corrected_interval(
    values: Sequence[float], test_fraction: float, alpha: float
) -> tuple[float, float, float]:
    """Mean and (1 - alpha) interval of a statistic over repeated-CV folds, corrected resampled t.

    ``test_fraction`` is n_test / n_train of one fold. Returns ``(mean, low, high)``.
    """
    from scipy import stats

    x = np.asarray(values, dtype=float)
    mean = float(np.mean(x))
    if len(x) < 2:
        return mean, -math.inf, math.inf
    variance = float(np.var(x, ddof=1)) * (1.0 / len(x) + test_fraction)
    half = float(stats.t.ppf(1 - alpha / 2, len(x) - 1)) * math.sqrt(variance)
    return mean, mean - half, mean + half


def quantile_bounds(samples: Sequence[float], q: float, alpha: float) -> tuple[float, float, float]:
    """The ``q`` quantile of ``samples`` and a distribution-free (1 - alpha) interval.

    Order statistics whose ranks are binomial quantiles: the true quantile lies between the
    ``Binom(n, q).ppf(alpha/2)``-th and ``.ppf(1 - alpha/2) + 1``-th smallest values. With too few
    samples an end is infinite (honestly unknown). Returns ``(estimate, low, high)``.
    """
    from scipy import stats

    x = np.sort(np.asarray(samples, dtype=float))
    n = len(x)
    estimate = float(np.quantile(x, q))
    lo_rank = int(stats.binom.ppf(alpha / 2, n, q))  # 0-based index of the lower order statistic
    hi_rank = int(stats.binom.ppf(1 - alpha / 2, n, q))
    low = float(x[lo_rank - 1]) if lo_rank >= 1 else -math.inf
    high = float(x[hi_rank]) if hi_rank < n else math.inf
    return estimate, low, high


def calls_to_bound(q: float, alpha: float) -> int:
    """The fewest latency calls (a multiple of the 5 rounds :func:`_latency` times) whose
    distribution-free interval of the ``q`` quantile (:func:`quantile_bounds`) has a finite
    upper end: 75 for p95 and 370 for p99 at alpha 0.05."""
    from scipy import stats

    n = 5
    while int(stats.binom.ppf(1 - alpha / 2, n, q)) >= n:
        n += 5
    return n


_QUANTILES = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}


def _judge(
    name: str,
    op: str,
    limit: float,
    estimate: float,
    low: float,
    high: float,
    where: str,
    alpha: float = 0.05,
) -> dict[str, Any]:
    bound = high if op in ("<=", "<") else low
    raise_to = (
        f" to at least {calls_to_bound(_QUANTILES[name], alpha)}" if name in _QUANTILES else ""
    )
    passed = bound <= limit if op in ("<=", "<") else bound >= limit
    side = "upper" if op in ("<=", "<") else "lower"
    return {
        "check": f"{name} {op} {limit:g}",
        "source": where,
        "estimate": estimate,
        "low": low,
        "high": high,
        "bound": side,
        "passed": bool(passed),
        "text": (
            f"{where} {name} {op} {limit:g}: {estimate:.4g} [{low:.4g}, {high:.4g}], {side} "
            f"bound {'meets' if passed else 'misses'} the limit"
            + (
                "; too few calls to bound this quantile: raise monitor.verify.n_requests"
                + raise_to
                if math.isinf(bound)
                else ""
            )
        ),
    }


def _judge_gain(
    metric: str, champion: int | None, gain: float, low: float, high: float, max_regression: float
) -> dict[str, Any]:
    """The check of the candidate against the champion: it fails when the candidate is worse
    by more than ``max_regression`` *with confidence* (the paired gain's upper bound is below
    ``-max_regression``). Judged on the upper bound, not the lower as a constraint is: no
    interval of an equal model (the same configuration refitted, gain 0.0 [-0.036, +0.036])
    lies above 0, so "shown at least as good" failed every model equal to its champion at
    ``max_regression: 0``. A candidate whose interval lies below the limit still fails."""
    limit = 0.0 - max_regression + 0.0  # -0.0 would print as "-0"
    passed = high >= limit
    if not passed:
        verdict = f"the candidate is worse than champion {champion} with confidence"
    elif low >= limit:
        verdict = f"not worse than champion {champion} by more than {max_regression:g}"
    else:  # the interval holds both: not shown worse, nor shown as good
        verdict = (
            f"not shown worse than champion {champion} by more than {max_regression:g} (the "
            f"interval also holds losses down to {-low:.4g}; more folds, monitor.verify."
            "n_repeats, narrow it)"
        )
    return {
        "check": f"gain in {metric} over champion {champion} >= {limit:g}",
        "source": "paired CV",
        "estimate": gain,
        "low": low,
        "high": high,
        "bound": "upper",
        "passed": passed,
        "text": (
            f"paired CV gain in {metric} over champion {champion} >= {limit:g}: {gain:.4g} "
            f"[{low:.4g}, {high:.4g}], upper bound {'meets' if passed else 'misses'} the limit: "
            f"{verdict}"
        ),
    }


# -- measurement ----------------------------------------------------------------------------------
def _frame_of(
    registry: Registry, record: Mapping[str, Any], data: Any, model: Any = None
) -> tuple[Any, Any]:
    """``(X, y)`` to verify on: ``data`` (a DataFrame with the label column, or a Dataset), or
    the version's spec data source checked against its fingerprint. A DataFrame's features are
    checked as a monitored batch's are (``model``'s categories: what ``tuneops serve`` takes):
    text in a numeric feature failed inside the refit with scikit-learn's traceback."""
    import pandas as pd

    features, target = list(record["features"]), record.get("target") or "target"
    if data is None:
        source = (record.get("spec") or {}).get("data") or {}
        if not source.get("source"):
            raise UsageError(
                f"model {registry.name!r} version {record['version']}: no data source is recorded; "
                "pass data (--data FILE) with the features and the label column."
            )
        data = load_dataset(
            source["source"],
            target=source.get("target"),
            task=source.get("task", "auto"),
            categorical=source.get("categorical"),
            drop=source.get("drop"),
        )
        stored = (record.get("data") or {}).get("fingerprint")
        if stored and stored != data.fingerprint:
            raise DataError(
                f"data {source['source']!r} has fingerprint {data.fingerprint} here, but version "
                f"{record['version']} was trained on {stored}; pass data (--data) with the data to "
                "verify on."
            )
    if hasattr(data, "X") and hasattr(data, "y"):
        frame = data.X.assign(**{target: data.y.to_numpy()})
    elif isinstance(data, pd.DataFrame):
        frame = data
    else:
        raise DataError(
            f"data (--data): expected a DataFrame or a dataset, received "
            f"{type(data).__name__}."
        )
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    missing = [c for c in [*features, target] if c not in frame.columns]
    if missing:
        raise DataError(
            f"data (--data): missing column(s) {', '.join(missing)}; version "
            f"{record['version']} "
            f"needs the features {', '.join(features)} and the label column {target!r}."
        )
    if not hasattr(data, "X"):  # a table given as is: its values are not checked yet
        categorical = list(record.get("categorical") or ())
        kinds, categories = category_schema(
            model, categorical, (record.get("profile") or {}).get("features") or {}
        )
        X, _ = validate_batch(
            frame,
            features=features,
            categorical=categorical,
            target=target,
            min_rows=1,
            what="data (--data)",
            # other columns (an id, a date) are left out, as before
            ignored=[c for c in frame.columns if c not in features and c != target],
            kinds=kinds,
            categories=categories,
        )
        frame = X.assign(**{target: frame[target].to_numpy()})
    frame = frame[frame[target].notna()].reset_index(drop=True)
    return frame[features], frame[target]


def _check_classes(y: Any, classes: Any, record: Mapping[str, Any]) -> None:
    """Labels a classifier's verification can mean something on: at least two classes, and
    not all unknown to the model (``{1: 'yes'}`` left 'yes' and 268 missing labels, and the
    gate passed with accuracy 1 [1, 1])."""
    values = y.unique()
    if len(values) < 2:
        raise DataError(
            f"data (--data): the label column holds {len(values)} class(es) "
            f"({', '.join(repr(v) for v in values[:3])}) in the {len(y)} labelled rows; "
            f"verifying version {record['version']} needs at least two. Pass data labelled as "
            "the training data was."
        )
    check_labels(y, classes, what="data (--data)")


def _folds(
    y: Any, task: str, config: VerifyConfig, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    if task == "classification" and int(y.value_counts().min()) >= config.n_folds:
        splitter: Any = RepeatedStratifiedKFold(
            n_splits=config.n_folds, n_repeats=config.n_repeats, random_state=seed
        )
    else:
        splitter = RepeatedKFold(
            n_splits=config.n_folds, n_repeats=config.n_repeats, random_state=seed
        )
    return list(splitter.split(np.zeros(len(y)), y))


def _cross_validate(
    model: Any,
    X: Any,
    y: Any,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    metrics: Sequence[str],
    labels: Any,
) -> list[dict[str, float]]:
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning

    out = []
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for train, test in folds:
            fitted = clone(model).fit(X.iloc[train], y.iloc[train])
            out.append(score(fitted, X.iloc[test], y.iloc[test], metrics, labels=labels))
    return out


def _latency(
    model: Any,
    X: Any,
    config: VerifyConfig,
    concurrency: int,
    path: str = "row",
    rows: int | None = None,
) -> dict[str, Any]:
    """Per-call latency on the declared serving ``path`` (``rows`` rows per call, default
    ``config.rows``), ``concurrency`` calls at once (1: one after another), in 5 rounds;
    quantiles with distribution-free bounds, throughput per round with a t interval over the
    rounds."""
    rows = config.rows if rows is None else rows
    rounds = 5
    samples: list[float] = []
    throughput: list[float] = []
    # The pool's threads start inside serving_call's block: their calls follow its warning rule.
    # BLAS/OpenMP pools limited to one thread, as tuning measured: the parallelism is the requests'.
    with (
        serving_call(model, X, path, rows) as (request, timed),
        threadpool_limits(limits=1),
        ThreadPoolExecutor(max_workers=concurrency) as pool,
    ):
        calls = [request(i) for i in range(config.n_requests)]
        per_round = max(len(calls) // rounds, 1)
        for call in calls[:concurrency]:
            timed(call)  # warm-up
        for r in range(rounds):
            chunk = calls[r * per_round : (r + 1) * per_round]
            t0 = time.perf_counter()
            samples += (
                list(pool.map(timed, chunk)) if concurrency > 1 else [timed(c) for c in chunk]
            )
            throughput.append(len(chunk) / (time.perf_counter() - t0))
    out: dict[str, Any] = {
        "concurrency": concurrency,
        "n_requests": len(samples),
        "rows": rows,
        "path": path,
    }
    for name, q in (("latency_p50_ms", 0.5), ("latency_p95_ms", 0.95), ("latency_p99_ms", 0.99)):
        estimate, low, high = quantile_bounds([s * 1e3 for s in samples], q, config.alpha)
        out[name] = {"estimate": estimate, "low": low, "high": high}
    mean, low, high = corrected_interval(throughput, 0.0, config.alpha)
    out["rps"] = {"estimate": mean, "low": low, "high": high, "per_round": throughput}
    return out


# -- the gate -------------------------------------------------------------------------------------
def verify(
    registry: Registry | str,
    candidate: int | None = None,
    *,
    storage: str | None = None,
    data: Any = None,
    config: VerifyConfig | Mapping[str, Any] | None = None,
    slo: SLOConfig | Mapping[str, Any] | None = None,
    record: bool = True,
    seed: int = 0,
) -> Verdict:
    """Verify version ``candidate`` (default: the newest) against the champion; record the verdict.

    Args:
        registry: a :class:`Registry`, or a model name opened in ``storage``.
        data: the data to verify on (a DataFrame with the label column, or a Dataset); default:
            the version's spec data, checked against the recorded fingerprint.
        config, slo: the gate's settings and the SLOs; None reads the spec's ``monitor.verify``
            and ``monitor.slo``.

    Raises:
        UsageError: no such model or version; the artifact fails its sha256 check.
        DataError: the data lacks columns or changed since training. SpecError: bad settings.

    Example::

        >>> verdict = verify("iris", 2)                                  # doctest: +SKIP
        >>> verdict.verdict, verdict.reasons[0]                          # doctest: +SKIP
        ('pass', 'accuracy: candidate 0.96 [0.94, 0.98] ...')
    """
    registry = registry if isinstance(registry, Registry) else Registry.open(registry, storage)
    versions = registry.versions()
    if candidate is None:
        if not versions:
            raise UsageError(
                f"model {registry.name!r} has no version to verify; register one first."
            )
        candidate = int(versions[-1]["version"])
    record_v = registry.version(candidate)
    raw_monitor = registry.monitor_section(record_v)
    config = VerifyConfig.from_raw(config if config is not None else raw_monitor.get("verify"))
    slo_config = SLOConfig.from_raw(slo) if slo is not None else monitor_settings(raw_monitor)[0]
    champion_v = registry.champion()
    if champion_v not in (None, candidate):
        comparable(registry.version(champion_v), record_v)
    model, _ = registry.load_model(candidate)
    champion_model = (
        registry.load_model(champion_v)[0] if champion_v not in (None, candidate) else None
    )
    mine, theirs = getattr(model, "classes_", None), getattr(champion_model, "classes_", None)
    if mine is not None and theirs is not None and set(mine.tolist()).isdisjoint(theirs.tolist()):
        raise UsageError(
            f"version {candidate} predicts {list(mine.tolist())[:5]}, champion {champion_v} "
            f"{list(theirs.tolist())[:5]}: the labels are encoded otherwise; register it as "
            "another model (--model NAME). Nothing was recorded."
        )
    X, y = _frame_of(registry, record_v, data, model)
    task = record_v.get("task") or (
        "classification" if hasattr(model, "classes_") else "regression"
    )
    if task == "classification":
        _check_classes(y, getattr(model, "classes_", None), record_v)
    else:  # a regressor's labels are numbers: text fails inside the fit with a traceback
        check_labels(y, None, what="data (--data)")
    if len(y) < 2 * config.n_folds:  # every test fold needs two rows for a metric like r2
        raise DataError(
            f"data (--data): {len(y)} labelled row(s) (rows without a label are left out), but "
            f"the gate's {config.n_folds} folds need at least {2 * config.n_folds}; pass more "
            "labelled data. Nothing was recorded."
        )
    spec = record_v.get("spec") or {}
    constraints = [
        parse_constraint(c, "constraints", builtin_only=False)
        for c in spec.get("constraints") or []
    ]
    objectives = [
        o["metric"] if isinstance(o, Mapping) else str(o) for o in spec.get("objectives") or []
    ]
    monitored = (
        (record_v.get("profile") or {}).get("metric")
        or next((m for m in objectives if m in PERFORMANCE_METRICS), None)
        or ("accuracy" if task == "classification" else "r2")
    )
    wanted = [monitored] + [
        m
        for m in objectives + [c.metric for c in constraints]
        if m in METRICS and METRICS[m].kind == "quality" and task in METRICS[m].tasks
    ]
    metrics = list(dict.fromkeys(wanted))
    labels = sorted(y.unique()) if task == "classification" else None
    folds = _folds(y, task, config, seed)
    test_fraction = float(np.mean([len(te) / len(tr) for tr, te in folds]))

    candidate_folds = _cross_validate(model, X, y, folds, metrics, labels)
    quality = {}
    for m in metrics:
        mean, low, high = corrected_interval(
            [f[m] for f in candidate_folds], test_fraction, config.alpha
        )
        # within the values the metric can take (an accuracy's interval above 1 on 20 rows)
        bottom, top = METRICS[m].range if m in METRICS else (-math.inf, math.inf)
        quality[m] = {"mean": mean, "low": max(low, bottom), "high": min(high, top)}
    checks: list[dict[str, Any]] = []
    comparison = None
    if champion_model is not None:
        champion_folds = _cross_validate(champion_model, X, y, folds, [monitored], labels)
        sign = (
            -1.0
            if monitored in PERFORMANCE_METRICS
            and PERFORMANCE_METRICS[monitored].direction == "minimize"
            else 1.0
        )
        diffs = [
            sign * (c[monitored] - h[monitored])
            for c, h in zip(candidate_folds, champion_folds, strict=True)
        ]
        mean, low, high = corrected_interval(diffs, test_fraction, config.alpha)
        champion_mean = float(np.mean([h[monitored] for h in champion_folds]))
        comparison = {
            "champion": champion_v,
            "metric": monitored,
            "champion_mean": champion_mean,
            "gain": mean,
            "low": low,
            "high": high,
        }
        checks.append(_judge_gain(monitored, champion_v, mean, low, high, config.max_regression))

    # the serving path the version was tuned for (its spec's serving section)
    serving = serving_config(spec.get("serving"))
    rows = serving.batch_size if serving.path == "batch" else config.rows
    latency = _latency(model, X, config, 1, serving.path, rows)
    latency["model_size_kb"] = model_size_kb(model)
    concurrent = _latency(model, X, config, config.concurrency, serving.path, rows)

    for c in constraints:
        if c.metric in quality:
            q = quality[c.metric]
            checks.append(
                _judge(c.metric, c.op, c.threshold, q["mean"], q["low"], q["high"], "constraint")
            )
        elif c.metric in ("latency_p50_ms", "latency_p95_ms"):
            q = latency[c.metric]  # as tuning measured it: one call at a time
            checks.append(
                _judge(
                    c.metric,
                    c.op,
                    c.threshold,
                    q["estimate"],
                    q["low"],
                    q["high"],
                    "constraint (one call at a time)",
                    config.alpha,
                )
            )
        elif c.metric == "model_size_kb":
            size = latency["model_size_kb"]
            checks.append(
                _judge(c.metric, c.op, c.threshold, size, size, size, "constraint (exact)")
            )
    for name in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
        limit = getattr(slo_config, name)
        if limit is not None:
            q = concurrent[name]
            checks.append(
                _judge(
                    name,
                    "<=",
                    limit,
                    q["estimate"],
                    q["low"],
                    q["high"],
                    f"SLO at {config.concurrency} parallel requests",
                    config.alpha,
                )
            )
    if slo_config.min_rps is not None:
        q = concurrent["rps"]
        checks.append(
            _judge(
                "requests/s",
                ">=",
                slo_config.min_rps,
                q["estimate"],
                q["low"],
                q["high"],
                f"SLO at {config.concurrency} parallel requests",
            )
        )

    failed = [c for c in checks if not c["passed"]]
    # Every quality metric the gate measured (the monitored one first), not only the one
    # monitoring watches: a study tuned for roc_auc wants to see its roc_auc.
    summary = (
        ", ".join(
            f"{m}: {q['mean']:.4g} [{q['low']:.4g}, {q['high']:.4g}]" for m, q in quality.items()
        )
        + f" over {len(folds)} folds ({config.n_folds} x {config.n_repeats})"
    )
    reasons = [summary] + [c["text"] for c in failed] + [c["text"] for c in checks if c["passed"]]
    verdict = Verdict(
        version=candidate,
        verdict="fail" if failed else "pass",
        reasons=reasons,
        checks=checks,
        quality=quality,
        comparison=comparison,
        latency=latency,
        concurrency=concurrent,
        settings={
            **asdict(config),
            "slo": slo_config.to_dict(),
            "seed": seed,
            "n_rows": int(len(y)),
        },
    )
    if record:
        registry.record("verify", **verdict.to_dict())
    return verdict
