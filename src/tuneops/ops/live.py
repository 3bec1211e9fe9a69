"""Live monitoring: the prediction log read per version, SLOs, automatic promote and rollback.

:func:`check_live` reads the log ``tuneops serve`` writes (:mod:`tuneops.ops.predlog`) and, per
model version: requests, errors, latency p50/p95/p99, throughput, and the monitored metric on
the labelled requests. Then it decides (:func:`decide`, pure):

* ``rollback`` - the champion breaks a latency or error-rate SLO *with confidence*, it became
  champion by a promotion less than ``probation_s`` ago, and a previous champion exists;
* ``withdraw`` - the challenger (shadow or canary) breaks an SLO with confidence, or it *loses*
  with confidence on labelled traffic (the whole confidence interval of its gain is below 0);
* ``promote`` - the challenger *beats* the champion with confidence (the interval's lower bound
  is above ``margin``) on at least ``min_labelled`` labelled rows per side, and meets the SLOs;
* ``slo`` - an SLO is broken but nothing can be undone automatically (an established champion,
  or throughput, which also measures the offered load): an alert only;
* ``hold`` - a challenger is being evaluated and the evidence does not decide yet; ``ok``.

Confidence, honestly:

* a latency SLO ``latency_p95_ms: L`` is broken with confidence when the share of requests slower
  than L is significantly above 5% (one-sided binomial test at ``alpha``): a distribution-free
  test of "the true p95 exceeds L", not a comparison of one noisy percentile with L;
* an error rate, likewise, against ``max_error_rate``; throughput ``min_rps`` with a Poisson
  test of the request count over the window;
* the challenger's gain is a bootstrap confidence interval of the difference of the monitored
  metric: paired over the same requests in shadow mode (both models answered each one),
  independent samples in canary mode (each request was answered by one model).

A shadow challenger's latency is its model time alone (it never answered the client), so its
latency SLO is checked on that lower figure; that is said in the reasons.

Decisions are ``live`` events in the registry; promote/rollback/withdraw are applied (unless
``apply=False``) through :class:`~tuneops.ops.registry.Registry`, which a running ``tuneops serve``
picks up at its next poll; alerts go out through :mod:`tuneops.ops.alerts`.

Settings are the spec's ``monitor.slo`` and ``monitor.live`` (validated by
:class:`tuneops.spec.SLOSettings` and :class:`tuneops.spec.LiveSettings`, which
:meth:`SLOConfig.from_raw` and :meth:`LivePolicy.from_raw` use too)::

    monitor:
      slo: {latency_p95_ms: 50, latency_p99_ms: 200, max_error_rate: 0.01, min_rps: 5,
            window_s: 300, min_requests: 30, probation_s: 3600, alpha: 0.05}
      live: {metric: accuracy, alpha: 0.05, margin: 0.0, min_labelled: 200}
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tuneops.errors import DataError, UsageError
from tuneops.ops.alerts import AlertConfig, Delivery, send_alert
from tuneops.ops.monitor import PERFORMANCE_METRICS, paired_gain
from tuneops.ops.predlog import LogContents, LogReader, labelled_rows, read_log
from tuneops.ops.registry import ChampionChanged, Registry
from tuneops.spec import LiveSettings, SLOSettings

__all__ = [
    "SLOConfig",
    "LivePolicy",
    "VersionTraffic",
    "LiveDecision",
    "summarize",
    "slo_breaches",
    "compare_challenger",
    "decide",
    "check_live",
    "watch",
    "batch_from_log",
    "monitor_settings",
]

_LATENCY = {"latency_p50_ms": 0.50, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}
#: The defaults of ``monitor.slo`` and ``monitor.live``, written once: in the spec's settings.
_SLO = SLOSettings()
_LIVE = LiveSettings()


@dataclass(frozen=True)
class SLOConfig:
    """Service-level objectives of the served model (the spec's ``monitor.slo``); None: unchecked.
    The defaults are :class:`tuneops.spec.SLOSettings`'.

    * ``latency_p50_ms`` / ``latency_p95_ms`` / ``latency_p99_ms`` - server-side latency limits.
    * ``max_error_rate`` - share of requests the model failed on (HTTP 500).
    * ``min_rps`` - answered requests per second over the window (all versions together).
    * ``window_s`` - the traffic judged; ``min_requests`` - fewer requests of a version in the
      window are not judged; ``probation_s`` - how long after its promotion a champion is
      rolled back automatically; ``alpha`` - the tests' level.
    """

    latency_p50_ms: float | None = _SLO.latency_p50_ms
    latency_p95_ms: float | None = _SLO.latency_p95_ms
    latency_p99_ms: float | None = _SLO.latency_p99_ms
    max_error_rate: float | None = _SLO.max_error_rate
    min_rps: float | None = _SLO.min_rps
    window_s: float = _SLO.window_s
    min_requests: int = _SLO.min_requests
    probation_s: float = _SLO.probation_s
    alpha: float = _SLO.alpha

    @classmethod
    def from_raw(cls, raw: Any, field_name: str = "monitor.slo") -> SLOConfig:
        """Validate a ``monitor.slo`` mapping (None: no SLO, default window) as the spec does
        (:class:`tuneops.spec.SLOSettings`, the one validator of these settings).

        Raises:
            SpecError: an unknown key or a value out of range, naming the field.
        """
        if isinstance(raw, SLOConfig):
            return raw
        return cls(**SLOSettings.from_raw(raw, field_name).full_dict())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LivePolicy:
    """When a challenger is promoted or withdrawn on labelled traffic (the spec's ``monitor.live``).
    The defaults are :class:`tuneops.spec.LiveSettings`'.

    * ``metric`` - the compared metric (None: the champion's monitored metric, else
      accuracy / r2); ``alpha`` - 1 - confidence of the gain's interval;
      ``margin`` - the lower bound of the gain must exceed it to promote;
      ``min_labelled`` - labelled rows needed on each side; ``n_boot`` - bootstrap
      resamples; ``auto`` - apply decisions (false: record and alert only).
    """

    metric: str | None = _LIVE.metric
    alpha: float = _LIVE.alpha
    margin: float = _LIVE.margin
    min_labelled: int = _LIVE.min_labelled
    n_boot: int = _LIVE.n_boot
    auto: bool = _LIVE.auto

    @classmethod
    def from_raw(cls, raw: Any, field_name: str = "monitor.live") -> LivePolicy:
        """Validate a ``monitor.live`` mapping (None: the defaults) as the spec does
        (:class:`tuneops.spec.LiveSettings`, the one validator of these settings).

        Raises:
            SpecError: an unknown key or a value out of range, naming the field.
        """
        if isinstance(raw, LivePolicy):
            return raw
        return cls(**LiveSettings.from_raw(raw, field_name).full_dict())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def monitor_settings(monitor: Mapping[str, Any]) -> tuple[SLOConfig, LivePolicy, AlertConfig]:
    """The ``slo``, ``live`` and ``alerts`` settings of a ``monitor`` section (the one that
    applies to a version: :meth:`tuneops.ops.registry.Registry.monitor_section`)."""
    return (
        SLOConfig.from_raw(monitor.get("slo")),
        LivePolicy.from_raw(monitor.get("live")),
        AlertConfig.from_raw(monitor.get("alerts")),
    )


# -- traffic per version --------------------------------------------------------------------------
@dataclass
class VersionTraffic:
    """One version's traffic in the window."""

    version: int
    roles: list[str]
    n_requests: int
    n_errors: int
    latency_ms: dict[str, float] = field(default_factory=dict)
    rps: float = 0.0
    shadow_only: bool = False
    # the monitored metric on the labelled rows this version answered (or, as a shadow, scored)
    metric: str | None = None
    score: float | None = None
    n_labelled: int = 0
    samples_ms: list[float] = field(default_factory=list, repr=False)
    labelled: list[tuple[Any, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: v for k, v in asdict(self).items() if k not in ("samples_ms", "labelled")
        }


def summarize(
    records: Sequence[Mapping[str, Any]],
    *,
    now: float,
    window_s: float,
    since: Mapping[int, float] | None = None,
    metric: str | None = None,
) -> dict[int, VersionTraffic]:
    """Per-version requests, errors, latency quantiles and throughput over the last ``window_s``,
    and ``metric`` (a name of ``PERFORMANCE_METRICS``) on the labelled rows each version answered
    or, as a shadow, scored.

    ``since`` maps a version to the time from which its traffic counts (a champion's traffic
    from before a rollback made it champion again is not its present behaviour).
    """
    start = now - window_s
    recent = [r for r in records if float(r.get("t", 0.0)) >= start]
    first = max(start, min((float(r["t"]) for r in recent), default=now))
    out: dict[int, VersionTraffic] = {}

    shadow_ms: dict[int, list[float]] = {}
    answered: dict[int, int] = {}  # requests a version answered (not those it only shadowed)

    def entry(version: int) -> VersionTraffic:
        return out.setdefault(version, VersionTraffic(version, [], 0, 0))

    for r in recent:
        t = float(r["t"])
        version = int(r["version"])
        if t >= (since or {}).get(version, -math.inf):
            item = entry(version)
            if r.get("role") not in item.roles:
                item.roles.append(str(r.get("role")))
            item.n_requests += 1
            answered[version] = answered.get(version, 0) + 1
            if r.get("status") == "error":
                item.n_errors += 1
            elif r.get("latency_ms") is not None:
                item.samples_ms.append(float(r["latency_ms"]))
            if metric and r.get("label") is not None:
                item.labelled.extend((y, p) for y, p, _ in labelled_rows(r))
        shadow = r.get("shadow")
        if shadow and t >= (since or {}).get(int(shadow["version"]), -math.inf):
            item = entry(int(shadow["version"]))
            if "shadow" not in item.roles:
                item.roles.append("shadow")
            item.n_requests += 1
            if "error" in shadow:
                item.n_errors += 1
            else:
                shadow_ms.setdefault(item.version, []).append(float(shadow["latency_ms"]))
                if metric and r.get("label") is not None:
                    item.labelled.extend((y, s) for y, _, s in labelled_rows(r) if s is not None)
    for item in out.values():
        item.shadow_only = item.roles == ["shadow"]
        if item.shadow_only or not item.samples_ms:
            # A shadow's latency is its predict alone; a version that also answered requests
            # in the window (a shadow promoted) is judged on what it answered.
            item.samples_ms = shadow_ms.get(item.version, [])
        # per second of the time the version held its role in the window: a champion since a
        # rollback a minute ago is not divided by the whole window
        held = max(first, (since or {}).get(item.version, -math.inf))
        item.rps = answered.get(item.version, 0) / max(now - held, 1e-9)
        if item.samples_ms:
            values = np.asarray(item.samples_ms)
            item.latency_ms = {name: float(np.quantile(values, q)) for name, q in _LATENCY.items()}
        if metric:
            item.metric, item.n_labelled = metric, len(item.labelled)
            if item.labelled:
                y, predicted = _typed([p[0] for p in item.labelled], [p[1] for p in item.labelled])
                item.score = _score(metric, y, predicted)
    return out


def _score(metric: str, y: np.ndarray, predicted: np.ndarray) -> float | None:
    """``metric`` of ``predicted`` against ``y``; None where it is undefined (r2 of one row)."""
    try:
        value = float(PERFORMANCE_METRICS[metric].score(y, predicted))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def slo_breaches(item: VersionTraffic, slo: SLOConfig) -> list[dict[str, Any]]:
    """The latency and error-rate SLOs ``item`` breaks with confidence (a list of findings)."""
    from scipy import stats

    found: list[dict[str, Any]] = []
    if item.n_requests < slo.min_requests:
        return found
    samples = np.asarray(item.samples_ms)
    for name, q in _LATENCY.items():
        limit = getattr(slo, name)
        if limit is None or not len(samples):
            continue
        slower = int(np.sum(samples > limit))
        # P(at least `slower` of n exceed L | exactly 1-q of all requests exceed L)
        p_value = float(stats.binom.sf(slower - 1, len(samples), 1 - q))
        if p_value < slo.alpha:
            found.append(
                {
                    "version": item.version,
                    "slo": name,
                    "limit": limit,
                    "observed": item.latency_ms[name],
                    "share_over": slower / len(samples),
                    "p_value": p_value,
                    "n": len(samples),
                    "model_time_only": item.shadow_only,
                }
            )
    if slo.max_error_rate is not None:
        p_value = float(stats.binom.sf(item.n_errors - 1, item.n_requests, slo.max_error_rate))
        if item.n_errors and p_value < slo.alpha:
            found.append(
                {
                    "version": item.version,
                    "slo": "max_error_rate",
                    "limit": slo.max_error_rate,
                    "observed": item.n_errors / item.n_requests,
                    "p_value": p_value,
                    "n": item.n_requests,
                }
            )
    return found


def _throughput_breach(
    traffic: Mapping[int, VersionTraffic], slo: SLOConfig, span: float
) -> dict[str, Any] | None:
    from scipy import stats

    if slo.min_rps is None:
        return None
    answered = sum(t.n_requests for t in traffic.values() if not t.shadow_only)
    p_value = float(stats.poisson.cdf(answered, slo.min_rps * span))
    if p_value < slo.alpha:
        return {
            "version": None,
            "slo": "min_rps",
            "limit": slo.min_rps,
            "observed": answered / span,
            "p_value": p_value,
            "n": answered,
        }
    return None


# -- the challenger against the champion ----------------------------------------------------------
def _typed(*columns: Sequence[Any]) -> list[np.ndarray]:
    """Labels and predictions as comparable arrays: floats when all are numbers, else strings
    (a JSON label 1 and a prediction "1" are the same class), converted once, not per resample."""
    arrays = [np.asarray(list(c)) for c in columns]
    if all(a.dtype.kind in "iufb" for a in arrays):
        return [a.astype(float) for a in arrays]
    return [a.astype(str) for a in arrays]


def compare_challenger(
    records: Sequence[Mapping[str, Any]],
    champion: int,
    challenger: int,
    mode: str,
    metric: str,
    policy: LivePolicy,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Bootstrap CI of the challenger's gain on labelled traffic (positive: better).

    Shadow: paired over the requests both models scored. Canary: the requests each answered.
    """
    scorer = PERFORMANCE_METRICS[metric]

    def fn(y: Any, predicted: Any) -> float:
        return float(scorer.score(y, predicted))

    direction = 1.0 if scorer.direction == "maximize" else -1.0
    rng = np.random.default_rng(seed)
    if mode == "shadow":
        triples = [
            (y, p, s)
            for r in records
            if int(r.get("version", -1)) == champion
            and r.get("label") is not None
            and (r.get("shadow") or {}).get("version") == challenger
            for y, p, s in labelled_rows(r)
            if s is not None
        ]
        n_champion = n_challenger = len(triples)
        if n_champion < policy.min_labelled:
            return {
                "metric": metric,
                "paired": True,
                "n_champion": n_champion,
                "n_challenger": n_challenger,
                "enough": False,
            }
        y, a, b = _typed([t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples])
        champ_value, chall_value = fn(y, a), fn(y, b)
        _, low, high = paired_gain(
            metric, y, a, b, alpha=policy.alpha, n_boot=policy.n_boot, seed=seed
        )
    else:

        def rows_of(version: int) -> tuple[np.ndarray, np.ndarray]:
            pairs = [
                (yy, p)
                for r in records
                if int(r.get("version", -1)) == version and r.get("label") is not None
                for yy, p, _ in labelled_rows(r)
            ]
            labels, predicted = _typed([p[0] for p in pairs], [p[1] for p in pairs])
            return labels, predicted

        (y_a, a), (y_b, b) = rows_of(champion), rows_of(challenger)
        n_champion, n_challenger = len(y_a), len(y_b)
        if min(n_champion, n_challenger) < policy.min_labelled:
            return {
                "metric": metric,
                "paired": False,
                "n_champion": n_champion,
                "n_challenger": n_challenger,
                "enough": False,
            }
        champ_value, chall_value = fn(y_a, a), fn(y_b, b)
        gains = []
        for _ in range(policy.n_boot):
            i, j = rng.integers(0, len(y_a), len(y_a)), rng.integers(0, len(y_b), len(y_b))
            gains.append(direction * (fn(y_b[j], b[j]) - fn(y_a[i], a[i])))
        low, high = (float(q) for q in np.quantile(gains, [policy.alpha / 2, 1 - policy.alpha / 2]))
    return {
        "metric": metric,
        "paired": mode == "shadow",
        "n_champion": n_champion,
        "n_challenger": n_challenger,
        "enough": True,
        "champion": champ_value,
        "challenger": chall_value,
        "gain": direction * (chall_value - champ_value),
        "low": float(low),
        "high": float(high),
        "confidence": 1 - policy.alpha,
    }


# -- the decision ---------------------------------------------------------------------------------
@dataclass
class LiveDecision:
    """What a live check found and decided; ``applied`` says whether the registry was changed."""

    decision: str  # ok | hold | slo | promote | rollback | withdraw
    reasons: list[str]
    champion: int
    challenger: int | None
    mode: str | None
    traffic: dict[str, dict[str, Any]]
    breaches: list[dict[str, Any]]
    comparison: dict[str, Any] | None
    applied: bool = False
    alerts: list[dict[str, Any]] = field(default_factory=list)
    #: whether this check's SLO breaches are news (:func:`slo_news`): only then is an ``slo``
    #: alert sent (recorded with the event, so the next check knows when it was last said)
    slo_news: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(b: Mapping[str, Any]) -> str:
    if b["slo"] == "min_rps":
        return (
            f"throughput {b['observed']:.3g} req/s < min_rps {b['limit']:g} (p={b['p_value']:.2g})"
        )
    if b["slo"] == "max_error_rate":
        return (
            f"version {b['version']}: error rate {b['observed']:.2%} > max_error_rate "
            f"{b['limit']:g} (p={b['p_value']:.2g}, n={b['n']})"
        )
    return (
        f"version {b['version']}: {b['slo'].removeprefix('latency_').removesuffix('_ms')} latency "
        f"{b['observed']:.3g} ms > {b['limit']:g} ms ({b['share_over']:.0%} of {b['n']} requests "
        f"over the limit, p={b['p_value']:.2g})"
        + (" [model time only: shadow]" if b.get("model_time_only") else "")
    )


def decide(
    champion: int,
    challenger: int | None,
    breaches: Sequence[Mapping[str, Any]],
    comparison: Mapping[str, Any] | None,
    policy: LivePolicy,
    *,
    champion_on_probation: bool,
    has_previous: bool,
) -> tuple[str, list[str]]:
    """The decision rule of the module docstring (pure); returns ``(decision, reasons)``."""
    champ = [_text(b) for b in breaches if b["version"] == champion]
    chall = [_text(b) for b in breaches if challenger is not None and b["version"] == challenger]
    service = [_text(b) for b in breaches if b["version"] is None]
    if champ and champion_on_probation and has_previous:
        return "rollback", [
            f"champion {champion} breaks its SLO within its probation"
        ] + champ + chall + service
    if chall:
        return "withdraw", [f"challenger {challenger} breaks its SLO"] + chall + champ + service
    notes = (
        [
            f"champion {champion} breaks its SLO; "
            + (
                "no previous champion to roll back to"
                if champion_on_probation
                else "promoted before the probation window, so no automatic rollback"
            )
        ]
        + champ
        if champ
        else []
    ) + service
    if challenger is not None and comparison is not None:
        c = comparison
        if not c.get("enough"):
            return ("slo" if notes else "hold"), notes + [
                f"challenger {challenger}: {c['n_champion']}/{c['n_challenger']} labelled rows "
                f"(champion/challenger), {policy.min_labelled} needed on each side"
            ]
        text = (
            f"{c['metric']}: challenger {c['challenger']:.4g} vs champion {c['champion']:.4g} on "
            f"{c['n_challenger']}/{c['n_champion']} labelled rows, gain {c['gain']:+.4g}, "
            f"{c['confidence']:.0%} CI [{c['low']:+.4g}, {c['high']:+.4g}]"
            + (" (paired)" if c["paired"] else "")
        )
        if c["low"] > policy.margin:
            # also when the champion breaks an SLO it cannot be rolled back from: a better
            # challenger within its SLOs is the way out (it was held)
            return "promote", [
                f"{text}: better with confidence (lower bound > margin {policy.margin:g}) "
                "and within its SLOs"
            ] + notes
        if c["high"] < 0:
            return "withdraw", [f"{text}: worse with confidence"] + notes
        return ("slo" if notes else "hold"), notes + [f"{text}: not decided yet"]
    if notes:
        return "slo", notes
    return "ok", ["every judged version meets its SLOs"]


def slo_news(
    previous: Sequence[Mapping[str, Any]],
    breaches: Sequence[Mapping[str, Any]],
    now: float,
    repeat_s: float,
) -> bool:
    """Whether ``breaches`` are news to the people alerted: a breach (a version and an SLO) the
    check before did not find, or a breach that goes on and was last said ``repeat_s`` ago or
    more. ``previous``: the earlier ``live`` events, oldest first (pure).

    Without this, a champion that keeps breaching sent one ``slo`` alert per check (every 30 s
    of ``monitor --live``): the pager learns nothing new after the first.
    """
    pairs = {(b.get("version"), b.get("slo")) for b in breaches}
    if not pairs:
        return False
    for event in reversed(previous):
        seen = {(b.get("version"), b.get("slo")) for b in event.get("breaches") or []}
        if not pairs <= seen:
            return True  # a breach the check before (or the one before the episode) lacked
        if event.get("slo_news"):
            said = _epoch(event.get("time"))
            return said is None or now - said >= repeat_s
    return True


def _epoch(iso: str | None) -> float | None:
    return _dt.datetime.fromisoformat(iso).timestamp() if iso else None


def _champion_since(registry: Registry, champion: int) -> tuple[float | None, bool, bool]:
    """When ``champion`` became champion, whether by a promotion, and whether a previous exists."""
    changes = [e for e in registry.events() if e["kind"] in ("promote", "rollback")]
    last = changes[-1] if changes and changes[-1].get("version") == champion else None
    return (
        _epoch(last["time"]) if last else None,
        bool(last and last["kind"] == "promote"),
        bool(registry.champion_history()),
    )


def check_live(
    registry: Registry,
    log: str | Path | LogContents,
    *,
    slo: SLOConfig | Mapping[str, Any] | None = None,
    policy: LivePolicy | Mapping[str, Any] | None = None,
    alerts: AlertConfig | Mapping[str, Any] | None = None,
    now: float | None = None,
    apply: bool | None = None,
    record: bool = True,
    seed: int = 0,
) -> LiveDecision:
    """Judge the served traffic, decide, record a ``live`` event, apply the decision, alert.

    Args:
        registry: the served model's registry (champion and challenger come from it).
        log: the prediction log (path, or contents already read).
        slo, policy, alerts: settings (mappings are validated); None reads the champion's
            ``monitor.slo`` / ``monitor.live`` / ``monitor.alerts`` (its spec's, or the
            model's own: ``tuneops registry settings``).
        apply: change the registry (default ``policy.auto``).

    Raises:
        DataError: the log file does not exist. SpecError: malformed settings.
        UsageError: the registry has no champion.

    Example::

        >>> check_live(Registry.open("iris"), "tuneops-out/predictions.jsonl",
        ...            slo={"latency_p95_ms": 50})                       # doctest: +SKIP
    """
    now = time.time() if now is None else now
    champion = registry.require_champion()
    record_c = registry.version(champion)
    spec_slo, spec_policy, spec_alerts = monitor_settings(registry.monitor_section(record_c))
    slo = SLOConfig.from_raw(slo) if slo is not None else spec_slo
    policy = LivePolicy.from_raw(policy) if policy is not None else spec_policy
    alert_config = AlertConfig.from_raw(alerts) if alerts is not None else spec_alerts
    apply = policy.auto if apply is None else apply
    contents = log if isinstance(log, LogContents) else read_log(log)
    # another model's requests in a shared log are not this model's versions of the same number
    predictions = [r for r in contents.predictions if r.get("model") in (None, registry.name)]
    state = registry.challenger()
    challenger = int(state["version"]) if state and state["version"] != champion else None
    mode = state["mode"] if challenger is not None and state else None
    since_champion, promoted, has_previous = _champion_since(registry, champion)
    since = {champion: since_champion} if since_champion is not None else {}
    challenger_since = _epoch(state.get("since")) if challenger is not None and state else None
    if challenger is not None and challenger_since is not None:
        # its requests in another role (a champion rolled back, an earlier shadow) are not the
        # challenger's: judged on them, a canary was withdrawn before it answered anyone
        since[challenger] = challenger_since
    metric = (
        policy.metric
        or (record_c.get("profile") or {}).get("metric")
        or ("accuracy" if record_c.get("task", "classification") == "classification" else "r2")
    )
    traffic = summarize(
        predictions, now=now, window_s=slo.window_s, since=since, metric=metric
    )
    breaches = [
        b
        for v in traffic.values()
        if v.version in (champion, challenger)
        for b in slo_breaches(v, slo)
    ]
    recent = [r for r in predictions if float(r.get("t", 0.0)) >= now - slo.window_s]
    span = max(
        now - max(now - slo.window_s, min((float(r["t"]) for r in recent), default=now)), 1e-9
    )
    service = _throughput_breach(traffic, slo, span) if recent else None
    if service:
        breaches.append(service)
    comparison = None
    if challenger is not None:
        labelled = [
            r
            for r in predictions
            if challenger_since is None or float(r.get("t", 0.0)) >= challenger_since
        ]
        comparison = compare_challenger(
            labelled, champion, challenger, mode or "canary", metric, policy, seed=seed
        )
    on_probation = (
        promoted and since_champion is not None and now - since_champion <= slo.probation_s
    )
    decision, reasons = decide(
        champion,
        challenger,
        breaches,
        comparison,
        policy,
        champion_on_probation=on_probation,
        has_previous=has_previous,
    )
    if decision == "ok" and not traffic:  # nothing was judged: not "every version meets"
        reasons = [f"no request in the last {slo.window_s:g} s: nothing to judge yet"]
    if contents.n_ambiguous:  # the evidence left out, said (tuneops.ops.predlog)
        reasons = [
            *reasons,
            f"{contents.n_ambiguous} label(s) joined no request: their request id was answered "
            "more than once before them (several servers, a client that sent one id twice)",
        ]
    news = slo_news(registry.events("live"), breaches, now, alert_config.repeat_s)
    if breaches and not news and alert_config.enabled and "slo" in alert_config.on:
        reasons = [
            *reasons,
            "no slo alert: the same breach was alerted less than monitor.alerts.repeat_s "
            f"({alert_config.repeat_s:g} s) ago",
        ]
    out = LiveDecision(
        decision,
        reasons,
        champion,
        challenger,
        mode,
        {str(v): t.to_dict() for v, t in traffic.items()},
        breaches,
        comparison,
        slo_news=news,
    )
    if apply:
        out.applied = _apply(registry, out)
    if record:
        registry.record("live", **{k: v for k, v in out.to_dict().items() if k != "alerts"})
    out.alerts = [asdict(d) for d in _alert(alert_config, registry.name, out)]
    return out


def _apply(registry: Registry, decision: LiveDecision) -> bool:
    reason = "live: " + decision.reasons[0]
    # Applied only while the champion is the one the traffic was judged on: another process
    # (a deploy, a promotion by hand) may have changed it since the check read the registry.
    if decision.decision == "promote" and decision.challenger is not None:
        try:
            # which clears it as the challenger; its live evidence is newer than any gate verdict
            registry.promote(
                decision.challenger, reason, force=True, if_champion=decision.champion
            )
        except ChampionChanged as exc:
            decision.reasons.append(f"promotion not applied: {exc}")
            return False
        return True
    if decision.decision == "rollback":
        try:
            registry.rollback(reason=reason, if_champion=decision.champion)
        except UsageError as exc:  # ChampionChanged among them
            decision.reasons.append(f"rollback not possible: {exc}")
            return False
        return True
    if decision.decision == "withdraw":
        registry.clear_challenger(reason)
        return True
    return False


def _alert(config: AlertConfig, model: str, decision: LiveDecision) -> list[Delivery]:
    out: list[Delivery] = []
    # the decision as the alert's details, without its own deliveries (not sent yet: always [])
    details = {k: v for k, v in decision.to_dict().items() if k != "alerts"}
    if decision.breaches and decision.slo_news:
        out += send_alert(
            config,
            "slo",
            model=model,
            details=details,
            summary="SLO breach: " + "; ".join(_text(b) for b in decision.breaches[:3]),
        )
    if decision.decision == "promote" and decision.applied:
        out += send_alert(
            config,
            "promote",
            model=model,
            details=details,
            summary=f"challenger {decision.challenger} promoted: {decision.reasons[0]}",
        )
    if decision.decision in ("rollback", "withdraw") and decision.applied:
        what = (
            f"champion {decision.champion} rolled back"
            if decision.decision == "rollback"
            else f"challenger {decision.challenger} withdrawn"
        )
        out += send_alert(
            config,
            "rollback",
            model=model,
            details=details,
            summary=f"{what}: {'; '.join(decision.reasons[:2])}",
        )
    return out


def watch(
    registry: Registry,
    log: str | Path,
    *,
    every_s: float = 30.0,
    n_checks: int | None = None,
    on_decision: Callable[[LiveDecision], None] | None = None,
    wait: Callable[[float], bool] | None = None,
    **settings: Any,
) -> list[LiveDecision]:
    """Run :func:`check_live` every ``every_s`` seconds (``n_checks`` times, or until interrupted);
    what ``tuneops monitor --live`` runs. A log that does not exist yet is waited for.

    ``wait(seconds)`` waits before each check (0 s before the first) and returns True to stop
    watching (``monitor --live``: its output's reader is gone); by default it sleeps. A watch
    stops only there, between two checks, so each check's decision is recorded (and applied
    and alerted) whole.
    """
    decisions: list[LiveDecision] = []
    reader = LogReader(log)  # each check parses only what was appended since the last
    if Path(log).is_dir():
        raise DataError(
            f"prediction log {str(log)!r} is a directory; point --log at the file "
            "`tuneops serve --log` writes."
        )
    checked = 0  # a check while the log does not exist yet counts (--checks 1 waited forever)
    while n_checks is None or checked < n_checks:
        pause = every_s if checked else 0.0
        if wait is not None:
            if wait(pause):
                break
        elif pause:
            time.sleep(pause)
        checked += 1
        if Path(log).is_file():
            decision = check_live(registry, reader.read(), **settings)
            decisions.append(decision)
            if on_decision is not None:
                on_decision(decision)
    return decisions


def batch_from_log(
    log: str | Path | LogContents,
    features: Sequence[str],
    target: str,
    *,
    since: float | None = None,
    version: int | None = None,
    name: str | None = None,
    model: str | None = None,
) -> Any:
    """The logged input rows (and joined labels) as a batch frame for ``check_batch``.

    This is how batch monitoring (drift tests, the metric on labelled rows) reads live traffic:
    ``check_batch(registry, batch_from_log(log, v["features"], v["target"], since=...))``.
    Requests logged without rows (``log_rows=False``) cannot be used and are skipped.
    ``name``: the log's path for messages, when ``log`` is already read. ``model``: only the
    requests this model's servers logged (and those logged before records named their model).

    Raises:
        DataError: the log does not exist, or its rows lack the model's features (the log of
            another model: read as missing values, every feature drifted and the metric fell).
    """
    import pandas as pd

    contents = log if isinstance(log, LogContents) else read_log(log, since=since)
    rows: list[dict[str, Any]] = []
    foreign: dict[str, Any] = {}  # the first logged row lacking a feature, and the count
    for r in contents.predictions:
        if (
            r.get("status") != "ok"
            or not r.get("rows")
            or (version is not None and r.get("version") != version)
            or (model is not None and r.get("model") not in (None, model))
        ):
            continue
        if since is not None and float(r.get("t", 0.0)) < since:
            continue
        label = r.get("label")
        # One label per row: a single label for a request of several rows is ambiguous,
        # left unlabelled here as in the live comparison (predlog.labelled_rows).
        labels = label if isinstance(label, list) else [label]
        for row, y in zip(  # noqa: B905 - lengths checked just above
            r["rows"], labels if len(labels) == len(r["rows"]) else [None] * len(r["rows"])
        ):
            if not isinstance(row, dict) or any(f not in row for f in features):
                # the server logs every feature of the model that answered (null if missing)
                foreign.setdefault("row", row)
                foreign["n"] = foreign.get("n", 0) + 1
                continue
            rows.append({**{f: row.get(f) for f in features}, target: y})
    if foreign:
        row = foreign["row"]
        held = ", ".join(map(str, list(row)[:10])) if isinstance(row, dict) else repr(row)[:80]
        absent = [f for f in features if not isinstance(row, dict) or f not in row]
        named = name or (str(log) if isinstance(log, (str, Path)) else None)
        where = f"prediction log {named!r}" if named else "the prediction log"
        raise DataError(
            f"{where}: {foreign['n']} logged row(s) lack the model's features (such as "
            f"{', '.join(map(repr, absent[:5]))}; a row holds {held}): the log of another model? "
            "Point --log at the file `tuneops serve` writes for this model. Nothing was recorded."
        )
    return pd.DataFrame(rows, columns=[*features, target])
