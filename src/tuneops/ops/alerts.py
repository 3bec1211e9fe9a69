"""Alerts: tell a person (or a pager) when the production loop decides something.

The spec's ``monitor.alerts`` section (validated by :class:`tuneops.spec.AlertSettings`, which
:meth:`AlertConfig.from_raw` uses too)::

    monitor:
      alerts:
        webhook: https://hooks.example.com/tuneops   # HTTP POST, JSON body
        command: ["notify-send", "tuneops"]           # or a string, split like a shell would
        on: [warn, retune, slo, promote, rollback]    # default: all of them
        timeout_s: 5
        repeat_s: 14400                               # a breach that goes on: again after 4 h

Every alert is one JSON object: ``{"kind", "model", "time", "summary", "details"}``. The
webhook receives it as the request body; the command receives it on standard input.

Delivery failures (a refused connection, a non-2xx answer, a command that exits non-zero or
does not exist, a timeout) are logged on the ``tuneops.alerts`` logger and returned as
:class:`Delivery` records: an unreachable pager must never stop monitoring, serving or a
rollback that the alert is about.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import signal
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuneops.errors import unknown_name
from tuneops.spec import (
    ALERT_KINDS,
    WEBHOOK_FROM_ENV,
    AlertSettings,
    command_argv,
    webhook_problem,
    webhook_shown,
)

__all__ = ["ALERT_KINDS", "AlertConfig", "Delivery", "send_alert", "alerts_for_assessment"]

logger = logging.getLogger("tuneops.alerts")

#: The defaults of ``monitor.alerts``, written once: in the spec's settings.
_DEFAULT = AlertSettings()


@dataclass(frozen=True)
class AlertConfig:
    """Where alerts go and which kinds are sent (``monitor.alerts``; the defaults are
    :class:`tuneops.spec.AlertSettings`')."""

    webhook: str | None = _DEFAULT.webhook
    command: tuple[str, ...] | None = command_argv(_DEFAULT.command)
    on: tuple[str, ...] = _DEFAULT.on
    timeout_s: float = _DEFAULT.timeout_s
    #: seconds before an SLO breach that goes on is alerted again (0: every check)
    repeat_s: float = _DEFAULT.repeat_s

    @classmethod
    def from_raw(cls, raw: Any, field_name: str = "monitor.alerts") -> AlertConfig:
        """Validate a ``monitor.alerts`` mapping (None: no alerts) as the spec does
        (:class:`tuneops.spec.AlertSettings`: one validator, whose messages never show a
        webhook's path or query).

        Raises:
            SpecError: an unknown key, a webhook that is not an http(s) URL, an unknown kind.
        """
        if isinstance(raw, AlertConfig):
            return raw
        settings = AlertSettings.from_raw(raw, field_name)
        return cls(
            webhook=settings.webhook,
            command=command_argv(settings.command),  # a string split as a shell would
            on=settings.on,
            timeout_s=settings.timeout_s,
            repeat_s=settings.repeat_s,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.webhook or self.command)


@dataclass
class Delivery:
    """The outcome of delivering one alert to one target."""

    target: str
    ok: bool
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _where(url: str) -> str:
    """Where a webhook goes, for messages, quoted: its scheme and host, not its path or query
    (a Slack-style path or a ?token= is the secret)."""
    return f"'{webhook_shown(url)}'"


def _post(url: str, body: bytes, timeout: float) -> Delivery:
    """Deliver to a webhook within ``timeout`` seconds in all; never raises (a failed alert must
    not stop the decision it is about) and never names more of the URL than its scheme and host.

    urllib's timeout bounds each socket operation, not the delivery: a server that sent a
    header line every half second held ``monitor --live`` for as long as it liked (20 s with a
    2 s timeout). The delivery runs in a thread of its own, which is left to end by itself when
    the time is up.
    """
    outcome: list[Delivery] = []

    def attempt() -> None:
        try:
            outcome.append(_deliver(url, body, timeout))
        except Exception as exc:  # noqa: BLE001 - whatever the URL or the network did
            outcome.append(
                Delivery("webhook", False, f"cannot deliver to {_where(url)}: {type(exc).__name__}")
            )

    thread = threading.Thread(target=attempt, name="tuneops-alert", daemon=True)
    thread.start()
    thread.join(timeout)
    if outcome:
        return outcome[0]
    return Delivery(
        "webhook",
        False,
        f"no answer from {_where(url)} within {timeout:g} s (monitor.alerts.timeout_s)",
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: urllib re-sends a POST moved by 301/302/303 as a GET
    without its body, which the new place answers 200 to, and the alert is reported delivered
    and lost. A redirect is a failed delivery that says where the webhook went."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _deliver(url: str, body: bytes, timeout: float) -> Delivery:
    named = WEBHOOK_FROM_ENV.match(url)
    if named:
        value = os.environ.get(named.group(1), "")
        problem = webhook_problem(value) if value else "it is not set"
        if problem is not None or value == url:
            return Delivery(
                "webhook",
                False,
                f"webhook {url}: the environment variable {named.group(1)} should hold the URL: "
                f"{problem or 'it names itself'}; set it where monitoring runs.",
            )
        url = value
    where = _where(url)
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "tuneops-alerts"},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        moved = exc.headers.get("Location") if 300 <= exc.code < 400 and exc.headers else None
        if moved:
            return Delivery(
                "webhook",
                False,
                f"HTTP {exc.code} from {where}: the webhook redirects to "
                f"{_where(urllib.parse.urljoin(url, moved))}, which is not followed (a POST "
                "moved is re-sent without its alert); write the URL it redirects to in "
                "monitor.alerts.webhook",
            )
        return Delivery("webhook", False, f"HTTP {exc.code} from {where}")
    except urllib.error.URLError as exc:  # its reason is the socket's, not the URL
        reason = exc.reason if isinstance(exc.reason, OSError) else type(exc.reason).__name__
        return Delivery("webhook", False, f"cannot reach {where}: URLError: {reason}")
    except OSError as exc:  # a timeout, a reset
        return Delivery("webhook", False, f"cannot reach {where}: {type(exc).__name__}")
    if not 200 <= status < 300:
        return Delivery("webhook", False, f"HTTP {status} from {where}")
    return Delivery("webhook", True, details={"status": status})


def _run(command: Sequence[str], body: bytes, timeout: float) -> Delivery:
    """Run the alert command with ``body`` on its standard input; never raises.

    The command leads a process group of its own: on a timeout the group is killed, so what
    it started (a script's ``curl``) does not outlive it, one more at every alert. Messages
    name the program only, not its arguments (a token may be one).
    """
    try:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return Delivery("command", False, f"{command[0]!r} failed to run: {exc}")
    try:
        _, stderr = process.communicate(body, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            if hasattr(os, "killpg"):  # POSIX
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=5)
        return Delivery(
            "command",
            False,
            f"{command[0]!r} did not finish within {timeout:g} s (monitor.alerts.timeout_s); "
            "it was stopped, with the processes it started",
        )
    if process.returncode != 0:
        tail = stderr.decode(errors="replace").strip()[-300:]
        return Delivery("command", False, f"{command[0]!r} exited {process.returncode}: {tail}")
    return Delivery("command", True, details={"returncode": 0})


def send_alert(
    config: AlertConfig,
    kind: str,
    *,
    model: str,
    summary: str,
    details: Mapping[str, Any] | None = None,
) -> list[Delivery]:
    """Send one alert of ``kind`` to the webhook and/or command; never raises on delivery.

    Returns one :class:`Delivery` per target tried (none when ``kind`` is not in ``config.on``
    or nothing is configured). Failures are logged at WARNING on ``tuneops.alerts``.

    Example::

        >>> send_alert(AlertConfig.from_raw({"command": "cat"}), "promote", model="m",
        ...            summary="version 3 promoted")                   # doctest: +SKIP
        [Delivery(target='command', ok=True, ...)]
    """
    if kind not in ALERT_KINDS:
        raise ValueError(unknown_name("alert kind", kind, ALERT_KINDS))
    if kind not in config.on or not config.enabled:
        return []
    event = {
        "kind": kind,
        "model": model,
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "summary": summary,
        "details": dict(details or {}),
    }
    body = json.dumps(event, default=str).encode()
    out = []
    if config.webhook:
        out.append(_post(config.webhook, body, config.timeout_s))
    if config.command:
        # one line per alert on the command's stdin: `cat >> alerts.jsonl` keeps JSON lines
        out.append(_run(config.command, body + b"\n", config.timeout_s))
    for delivery in out:
        if not delivery.ok:
            logger.warning(
                "alert %s for model %r not delivered to its %s: %s",
                kind,
                model,
                delivery.target,
                delivery.error,
            )
    return out


_ACTION = {"retune": "re-tuning", "refresh": "refresh"}


def alerts_for_assessment(
    config: AlertConfig, model: str, assessment: Any, outcome: Any = None
) -> list[Delivery]:
    """Alerts for a batch monitoring result: ``warn``/``retune`` decisions, then the
    re-tuning's promotion, if any (what ``tuneops monitor`` calls after each batch)."""
    out: list[Delivery] = []
    decision = getattr(assessment, "decision", None)
    if decision in ("warn", "retune"):
        reasons = list(getattr(assessment, "reasons", []))
        out += send_alert(
            config,
            decision,
            model=model,
            summary=f"monitor: {decision}: {reasons[0] if reasons else ''}",
            details={"reasons": reasons, "n_rows": getattr(assessment, "n_rows", None)},
        )
    if outcome is not None and getattr(outcome, "decision", None) == "promote":
        out += send_alert(
            config,
            "promote",
            model=model,
            summary=f"{_ACTION[getattr(outcome, 'method', 'retune')]} promoted version "
            f"{outcome.challenger}",
            details=outcome.to_dict(),
        )
    return out
