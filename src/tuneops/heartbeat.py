"""Heartbeats on every storage, and how a dead worker's trial is recognised.

Optuna's own heartbeat works only with RDB storages inside ``study.optimize()``; tuneops drives
trials with ask/tell (:func:`tuneops.runner.work`) on journal files, Redis and databases alike,
so it keeps its own. While a worker runs a trial, a background thread writes the time into the
trial's user attribute ``heartbeat`` every ``interval_s`` seconds. A RUNNING trial is *stale*
when

* its worker ran on this host under a pid that no longer exists (found at once), or
* its last sign of life (the latest heartbeat, else the trial's start) is older than the grace
  period (a worker on another machine that died, lost its network, or was SIGKILLed), or
* no worker recorded itself on it within two heartbeat intervals (it died right after claiming).

Any worker, and the process that owns the run, abandons stale trials through
:func:`tuneops.runner.recover_abandoned`, which queues their configuration again once. Clocks of
the machines are compared, so keep them in sync (NTP) and the grace period well above both the
interval and any clock skew.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "HEARTBEAT",
    "INTERVAL_S",
    "GRACE_S",
    "Heartbeat",
    "last_seen",
    "stale_trials",
    "pid_alive",
    "run_alive",
]

_log = logging.getLogger("tuneops")

HEARTBEAT = "heartbeat"  # user attr: unix time of the trial's latest heartbeat
INTERVAL_S = 10.0
GRACE_S = 60.0


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` runs on this host (a zombie, dead and not yet reaped by its
    parent, does not: a killed Ray worker stays one for a while)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):  # gone meanwhile, or no /proc
        return False


class Heartbeat:
    """A background thread that beats for the trial its worker is running.

    ``with Heartbeat(storage, 10.0) as beat: beat.trial_id = id; ...; beat.trial_id = None``.
    The thread writes nothing while ``trial_id`` is None; a beat for a trial that finished in
    the meantime is ignored. Storage errors are logged, never raised: a missed beat only
    shortens the time the trial has left before others consider it stale.
    """

    def __init__(
        self, storage: optuna.storages.BaseStorage, interval_s: float = INTERVAL_S
    ) -> None:
        self.storage = storage
        self.interval_s = interval_s
        self.trial_id: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneops-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.trial_id = None
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            trial_id = self.trial_id
            if trial_id is None:
                continue
            try:
                self.storage.set_trial_user_attr(trial_id, HEARTBEAT, time.time())
            except (optuna.exceptions.UpdateFinishedTrialError, KeyError):
                pass  # the trial finished (or was abandoned) between the read and the write
            except Exception as exc:  # noqa: BLE001 - a heartbeat must never kill its worker
                _log.warning("heartbeat for trial id %d not recorded: %s", trial_id, exc)


def last_seen(trial: FrozenTrial) -> float | None:
    """Unix time of the trial's latest sign of life: its heartbeat, else its start."""
    beat = trial.user_attrs.get(HEARTBEAT)
    start = trial.datetime_start.timestamp() if trial.datetime_start else None
    seen = [t for t in (beat, start) if t is not None]
    return max(seen) if seen else None


def _running_since_before(pid: int, trial: FrozenTrial) -> bool:
    """True when process ``pid`` of this host started before ``trial`` did (so it is the
    worker that claimed it, not a later process that reused its pid); False when that cannot
    be told (no /proc: the heartbeat decides)."""
    if trial.datetime_start is None:
        return False
    return _started_before(pid, trial.datetime_start.timestamp())


def _started_before(pid: int, when: float) -> bool:
    """True when process ``pid`` of this host started before Unix time ``when`` (1 s of slack);
    False when it did not, is dead, or that cannot be told (no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        if fields[0] == b"Z":  # dead, not yet reaped
            return False
        started = _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return False
    return started <= when + 1.0


@functools.cache
def _boot_time() -> int:
    """This machine's boot time (Unix seconds, /proc/stat's ``btime``): read once."""
    with open("/proc/stat", "rb") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(b"btime"))


def stale_trials(
    trials: Iterable[FrozenTrial],
    *,
    now: float,
    grace_s: float,
    host: str | None = None,
    alive: Callable[[int], bool] = pid_alive,
) -> list[tuple[FrozenTrial, str]]:
    """RUNNING trials whose worker is gone, each with the reason (a pure function of its inputs).

    Args:
        trials: trials of a study (others than RUNNING are ignored).
        now: the current unix time.
        grace_s: how long a trial may go without a sign of life.
        host: this machine's host name; trials of workers on it are checked by pid.
        alive: ``pid -> bool`` for this host.
    """
    host = host if host is not None else socket.gethostname()
    stale = []
    for t in trials:
        if t.state != TrialState.RUNNING:
            continue
        worker = t.user_attrs.get("worker") or {}
        if not isinstance(worker, Mapping):  # plain Optuna code's own attribute, not a worker's
            worker = {}
        if worker.get("host") == host and "pid" in worker:
            pid = int(worker["pid"])
            if not alive(pid):
                stale.append((t, f"worker {worker.get('id')} is no longer running"))
                continue
            if _running_since_before(pid, t):
                # Its process lives on this host and started before the trial: it is running
                # the trial, even if its heartbeats could not be written (a storage stall of
                # more than the grace period abandoned live trials and ran them twice).
                continue
        seen = last_seen(t)
        # A worker records itself right after it claims a trial; one that has not after two
        # heartbeat intervals died in between, so it need not wait out the whole grace period.
        limit = grace_s if worker else min(grace_s, 2 * INTERVAL_S)
        declared = worker.get("grace_s")  # a worker started with a longer grace period
        if isinstance(declared, int | float) and not isinstance(declared, bool):
            limit = max(limit, float(declared))
        if seen is not None and now - seen > limit:
            who = f"worker {worker['id']}" if worker.get("id") else "its worker (never recorded)"
            stale.append((t, f"no heartbeat from {who} for {now - seen:.0f} s (grace {limit:g} s)"))
    return stale


def run_alive(
    run: Mapping[str, Any],
    *,
    now: float,
    grace_s: float = GRACE_S,
    host: str | None = None,
    alive: Callable[[int], bool] = pid_alive,
) -> bool:
    """Whether the run a record describes still runs (a pure function of its inputs, as
    :func:`stale_trials`). ``run``: ``host``, ``pid``, ``since`` (when it started) and ``seen``
    (its latest heartbeat), Unix times. On this host its process is asked (one that started
    after ``since`` reused the pid: the heartbeat decides); elsewhere, it lives while its latest
    sign of life is within ``grace_s``."""
    host = host if host is not None else socket.gethostname()
    pid, since = run.get("pid"), run.get("since")
    if run.get("host") == host and isinstance(pid, int):
        if not alive(pid):
            return False
        if isinstance(since, int | float) and _started_before(pid, since):
            return True
    seen = [t for t in (since, run.get("seen")) if isinstance(t, int | float)]
    return bool(seen) and now - max(seen) <= grace_s
