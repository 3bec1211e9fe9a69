"""``monitor``: the thresholds of monitoring and re-tuning, and its subsections: the staging
gate (``verify``), service-level objectives (``slo``), live promotion (``live``) and alerts."""

from __future__ import annotations

import shlex
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
)

from tuneops import _secrets
from tuneops.errors import unknown_name
from tuneops.metrics import METRICS
from tuneops.spec._base import (
    Flag,
    Int0,
    Int1,
    Int2,
    Int10,
    NonNegative,
    Probability,
    Unit,
    _check,
    _expected,
    _is_int,
    _is_number,
    _is_text,
    _Model,
    _name,
    _problem,
    _thaw,
)

#: ``monitor.correction``: the multiple-testing corrections of :mod:`tuneops.ops.drift`.
CORRECTIONS = ("bh", "bonferroni", "none")
#: ``monitor.metric``: the metrics monitoring computes from a batch's labels and predictions
#: alone (quality metrics that need no class scores;
#: :data:`tuneops.ops.monitor.PERFORMANCE_METRICS`).
MONITORED_METRICS = tuple(
    name for name, m in METRICS.items() if m.is_quality and not m.needs_scores
)
#: ``monitor.alerts.on``: what can raise an alert: monitoring decisions, an SLO breach, and the
#: two champion changes (:mod:`tuneops.ops.alerts` takes it from here).
ALERT_KINDS = ("warn", "retune", "slo", "promote", "rollback")


def _is_int_in(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _in(low: float, high: float) -> Any:
    return _check(f"a number in [{low:g}, {high:g}]", _is_number(low, high))


def _int_in(low: int, high: int) -> Any:
    return _check(f"an integer in [{low}, {high}]", _is_int_in(low, high))


class _Settings(_Model):
    """A nested ``monitor`` subsection: a mapping (``null`` gives the defaults)."""

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            raise _expected(f"a mapping with keys {', '.join(cls.spec_keys())}")
        return raw

    def full_dict(self) -> dict[str, Any]:
        """Every setting, defaults included."""
        return {name: _thaw(getattr(self, name)) for name in type(self).model_fields}


class VerifySettings(_Settings):
    """``monitor.verify``: the staging gate (:class:`tuneops.ops.verify.VerifyConfig`).

    ``n_folds: 5`` x ``n_repeats: 3`` repeated CV (the seed's production verification, 5-10
    folds), ``alpha: 0.05`` for every interval, ``max_regression: 0.0`` the loss against the
    champion a candidate may be shown to have (it fails when the paired interval's upper bound
    is below minus this), ``concurrency: 4`` threads sending
    ``n_requests: 200`` calls of ``rows: 1`` rows each.
    """

    SECTION = "monitor.verify"
    KEY_KIND = "verify setting"

    n_folds: Annotated[int, _int_in(2, 20)] = 5
    n_repeats: Annotated[int, _int_in(1, 50)] = 3
    alpha: Annotated[float, _in(1e-4, 0.5)] = 0.05
    max_regression: NonNegative = 0.0
    concurrency: Annotated[int, _int_in(1, 256)] = 4
    n_requests: Annotated[int, _int_in(20, 1_000_000)] = 200
    rows: Annotated[int, _int_in(1, 100_000)] = 1


_PositiveMs = Annotated[
    float, _check("a number > 0 (or null: unchecked)", _is_number(0, low_open=True))
]


class SLOSettings(_Settings):
    """``monitor.slo``: service-level objectives of the served model
    (:class:`tuneops.ops.live.SLOConfig`).

    Latency limits (ms, server side), ``max_error_rate`` and ``min_rps``: null means unchecked.
    ``window_s: 300`` of traffic judged; ``min_requests: 30`` below which a version is not
    judged; ``probation_s: 3600`` after a promotion during which an SLO breach rolls back;
    ``alpha: 0.05`` the tests' level.
    """

    SECTION = "monitor.slo"
    KEY_KIND = "SLO setting"

    latency_p50_ms: _PositiveMs | None = None
    latency_p95_ms: _PositiveMs | None = None
    latency_p99_ms: _PositiveMs | None = None
    max_error_rate: Unit | None = None
    min_rps: _PositiveMs | None = None
    window_s: Annotated[float, _check("a number >= 1", _is_number(1))] = 300.0
    min_requests: Int1 = 30
    probation_s: NonNegative = 3600.0
    alpha: Annotated[float, _in(1e-6, 0.5)] = 0.05


class LiveSettings(_Settings):
    """``monitor.live``: when a shadow or canary challenger is promoted or withdrawn
    (:class:`tuneops.ops.live.LivePolicy`).

    ``metric: null`` (the champion's monitored metric), ``alpha: 0.05`` for the gain's bootstrap
    interval, ``margin: 0.0`` its lower bound must exceed, ``min_labelled: 100`` labelled rows per
    side, ``n_boot: 1000`` resamples, ``auto: true`` applies decisions (false: record and alert).
    """

    SECTION = "monitor.live"
    KEY_KIND = "live setting"

    metric: Annotated[str, _name("monitored metric", MONITORED_METRICS)] | None = None
    alpha: Annotated[float, _in(1e-6, 0.5)] = 0.05
    margin: NonNegative = 0.0
    min_labelled: Int2 = 100
    n_boot: Annotated[int, _check("an integer >= 100", _is_int(100))] = 1000
    auto: Flag = True


#: ``monitor.alerts.webhook: ${NAME}``: the URL is read from the environment when an alert is
#: sent, so a secret in it (a Slack path, a ?token=) stays out of specs, the registry and the
#: dashboard.
WEBHOOK_FROM_ENV = _secrets.WEBHOOK_FROM_ENV


def webhook_problem(url: Any) -> str | None:
    """What is wrong with a ``monitor.alerts.webhook`` value (None: nothing)."""
    if isinstance(url, str) and WEBHOOK_FROM_ENV.match(url):
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return (
            "expected an http:// or https:// URL (or ${VARIABLE} to read it from the environment)"
        )
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "expected a URL without spaces or control characters (encode a space as %20)"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in 0-65535
    except ValueError as exc:
        return f"expected a well-formed URL ({exc})"
    if not parts.hostname:
        return "expected a URL with a host name"
    if "@" in parts.netloc:
        return (
            "expected a URL without user:password@ (it is not sent as a login, and the copy the "
            "registry keeps is masked); put the service's token where it documents it, and "
            "the URL in the environment: webhook: ${ALERT_WEBHOOK}"
        )
    return None


webhook_shown = _secrets.mask_webhook


def _webhook(raw: Any) -> Any:
    problem = None if raw is None else webhook_problem(raw)
    if problem is None:
        return raw
    # the secret part of a URL (its path, its query, a login) never reaches a message
    received = webhook_shown(raw) if isinstance(raw, str) else raw
    raise _expected(problem.removeprefix("expected "), received=received)


def command_argv(command: str | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """A ``monitor.alerts.command`` as the program and its arguments: a string is split as a
    shell would (without running one)."""
    return tuple(shlex.split(command)) if isinstance(command, str) else command


def _command(raw: Any) -> Any:
    if raw is None:
        return raw
    if isinstance(raw, str) and raw.strip():
        try:
            shlex.split(raw)
        except ValueError as exc:  # an unclosed quote: it crashed the alert's delivery
            raise _expected(
                f"a command line that splits as a shell would ({exc})",
                hint="Close the quote, or give the command as a list of strings.",
            ) from None
        return raw
    if isinstance(raw, (list, tuple)) and raw and all(_is_text(c) for c in raw):
        return tuple(raw)
    raise _expected("a command line: a string or a non-empty list of strings")


def _kinds(raw: Any) -> Any:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, (list, tuple)):
        raise _expected(f"a list of {', '.join(ALERT_KINDS)}")
    for i, kind in enumerate(raw):
        if kind not in ALERT_KINDS:
            raise _problem(unknown_name("alert kind", kind, ALERT_KINDS), at=f"[{i}]")
    return tuple(raw)


class AlertSettings(_Settings):
    """``monitor.alerts``: a webhook (HTTP POST, JSON body) and/or a command (the JSON on its
    standard input) told about the kinds in ``on``; ``timeout_s: 5`` per delivery;
    ``repeat_s: 14400`` before a breach that goes on is alerted again.

    The one validator of these settings: :class:`tuneops.ops.alerts.AlertConfig` is built from
    it. Its messages show a webhook's scheme and host only (a path, a query or a login is the
    secret, :func:`webhook_shown`)."""

    SECTION = "monitor.alerts"
    KEY_KIND = "alert setting"

    webhook: Annotated[str | None, BeforeValidator(_webhook)] = None
    command: Annotated[str | tuple[str, ...] | None, BeforeValidator(_command)] = None
    on: Annotated[tuple[str, ...], BeforeValidator(_kinds)] = ALERT_KINDS
    timeout_s: Annotated[
        float, _check("seconds in (0, 300]", _is_number(0, 300, low_open=True))
    ] = 5.0
    #: An SLO breach that goes on is alerted again after this many seconds (Alertmanager's
    #: ``repeat_interval`` default, 4 h); a new breach (another version or SLO) at once; 0: on
    #: every check.
    repeat_s: Annotated[
        float, _check("seconds >= 0 (0: alert on every check)", _is_number(0))
    ] = 14400.0

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        return super()._normalize(yaml_on_key(raw))


def yaml_on_key(raw: Any) -> Any:
    """``raw`` with the key ``True`` read as ``"on"``: YAML 1.1 (PyYAML) reads an unquoted
    ``on:`` key as the boolean true, so ``alerts: {on: [warn]}`` arrives as ``{True: [...]}``."""
    if isinstance(raw, Mapping) and any(k is True for k in raw) and "on" not in raw:
        return {("on" if k is True else k): v for k, v in raw.items()}
    return raw


class Monitor(_Model):
    """Thresholds of monitoring and re-tuning; the spec's ``monitor`` section.

    Defaults and their anchors:

    * ``alpha: 0.05`` - p-value threshold of each drift test after correction (Evidently's
      default per-column tests use p < 0.05).
    * ``correction: bh`` - Benjamini-Hochberg over the features; ``bonferroni`` or ``none``.
    * ``drift_share: 0.5`` - share of drifted features that means the dataset drifted
      (Evidently's DatasetDriftMetric default).
    * ``psi_warn: 0.1``, ``psi_retune: 0.25`` - PSI practice: < 0.1 stable, 0.1-0.25 moderate,
      >= 0.25 major.
    * ``metric: null`` - the monitored metric (default: the spec's first objective that can be
      computed from predictions alone, else accuracy / r2).
    * ``max_metric_drop: 0.05`` - tolerated drop of the metric, in its units.
    * ``min_rows: 50`` - smaller batches are refused (PSI over 10 bins is noise below that).
    * ``retune_trials: 12`` - trials of a re-tuning study; ``holdout: 0.3`` - share of the recent
      data kept aside to compare challenger and champion; ``margin: 0.01`` - how much better the
      challenger must be on that data (and better with confidence: its gain's paired bootstrap
      interval at 1 - ``alpha`` above 0); ``recent_batches: 3`` - batches a simulation re-tunes on;
      ``cooldown: 2`` - batches after a re-tuning before ``--auto-retune`` re-tunes again.
    * ``refresh_rows: 2000`` - after a re-tuning promotes a challenger fitted on the few rows
      that showed a change, each later ``ok`` batch with labels refits the champion's
      configuration on the labelled rows since the change (the newest ``refresh_rows``; no
      search, one fit) and promotes the refit when it scores at least as well as the champion
      on that batch, which neither was fitted on (:func:`tuneops.ops.retune.refresh`). 0: off.
    * ``artifact_dir: tuneops-out/registry`` - where model versions are saved (path + sha256
      are recorded in the registry).
    * ``psi_floor: 0.1`` - a feature (or the predictions) counts as drifted only when its
      corrected p < ``alpha`` *and* its PSI net of its sampling noise (``(bins - 1)(1/n +
      1/m)`` for a batch of n rows against m reference rows, :func:`tuneops.ops.drift.psi_noise`)
      >= this: with enough rows a test finds shifts too small to matter, PSI practice calls
      < 0.1 stable, and a small batch's PSI is inflated by noise alone (0.05 at 200 rows).
    * ``verify``, ``slo``, ``live``, ``alerts`` - the staging gate, service-level objectives,
      live promotion/rollback and alerts (:class:`VerifySettings`, :class:`SLOSettings`,
      :class:`LiveSettings`, :class:`AlertSettings`).
    """

    SECTION = "monitor"
    KEY_KIND = "monitor setting"

    alpha: Probability = 0.05
    correction: Annotated[str, _name("correction", CORRECTIONS)] = "bh"
    drift_share: Probability = 0.5
    psi_warn: NonNegative = 0.1
    psi_retune: NonNegative = 0.25
    metric: Annotated[str, _name("monitored metric", MONITORED_METRICS)] | None = None
    max_metric_drop: NonNegative = 0.05
    min_rows: Int10 = 50
    retune_trials: Int1 = 12
    holdout: Probability = 0.3
    margin: NonNegative = 0.01
    recent_batches: Int1 = 3
    cooldown: Int0 = 2
    refresh_rows: Int0 = 2000
    artifact_dir: Annotated[str, _check("a path", _is_text)] = "tuneops-out/registry"
    psi_floor: NonNegative = 0.1
    verify: VerifySettings = VerifySettings()
    slo: SLOSettings = SLOSettings()
    live: LiveSettings = LiveSettings()
    alerts: AlertSettings = AlertSettings()

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if not isinstance(raw, Mapping):
            raise _expected("a mapping of thresholds")
        return raw

    @classmethod
    def from_raw(cls, raw: Any, field_name: str | None = "monitor") -> Monitor:
        """Validate a ``monitor`` mapping (None gives the defaults).

        Raises:
            SpecError: an unknown key, a value of the wrong type, or out of range.
        """
        if raw is None:
            return cls()
        return super().from_raw(raw, field_name)

    @classmethod
    def from_spec(cls, spec: Any) -> Monitor:
        return cls.from_raw(getattr(spec, "monitor", None))

    def to_dict(self) -> dict[str, Any]:
        """Every threshold, defaults included (what a registry version records); a nested
        section (``verify``, ``slo``, ``live``, ``alerts``) only when it differs from its
        defaults, so a spec without them reads back as it was written."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, _Settings):
                if value != type(value)():
                    out[name] = value.to_dict()
            else:
                out[name] = value
        return out
