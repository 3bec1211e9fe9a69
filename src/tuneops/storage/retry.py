"""Dropped connections: a network storage's operation that failed because its connection was
lost or refused is retried with exponential backoff (:class:`RetryingStorage`)."""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import optuna

from tuneops._secrets import mask_url, url_password
from tuneops.errors import (
    StorageUnavailable,
)

_log = logging.getLogger("tuneops")


def _chain(exc: BaseException, limit: int = 5) -> list[BaseException]:
    """``exc`` and what caused it, outermost first, without Optuna's ``StorageInternalError``
    wrapper, whose text ("invalid data in the commit, e.g. exceeding max length") sent users
    to their data after a server restart or "too many clients"."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < limit:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    kept = [c for c in chain if not isinstance(c, optuna.exceptions.StorageInternalError)]
    return kept or chain


def _transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a lost or refused connection, not a bad request."""
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 6:
        module = type(cause).__module__
        name = type(cause).__name__
        if module.startswith("sqlalchemy") and name in (
            "OperationalError",
            "InterfaceError",
            "DisconnectionError",
        ):
            return True
        if getattr(cause, "connection_invalidated", False):
            return True
        if module.startswith("redis") and name in (
            "ConnectionError",
            "TimeoutError",
            "BusyLoadingError",
        ):
            return True
        if isinstance(cause, (ConnectionError, TimeoutError)):
            return True
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return False


#: Seconds a storage call may go unanswered before tuneops says so (TUNEOPS_STORAGE_STALL_S).
STALL_WARN_S = 30.0


class _StallWatch:
    """Says when a storage call goes unanswered, and when the answer comes.

    A server that stops answering without closing its connections (stopped, swapped out, cut
    off by a network partition) leaves the driver waiting: the kernel keeps a stopped server's
    connections open, so neither timeouts nor keepalives end the wait, and a run would hang
    without a word. Calls in flight are noted (a dict entry, about a microsecond); a daemon
    thread started with the first call looks at them every few seconds and warns once per
    stalled call. Nothing is interrupted: the answer may still come (a server resumed), and
    Ctrl-C stops the run as always.
    """

    def __init__(self) -> None:
        self.calls: dict[int, tuple[float, str, str]] = {}  # id -> (started, url, method)
        self.warned: set[int] = set()
        self.ids = itertools.count()
        self.lock = threading.Lock()
        self.pid: int | None = None  # the process the watching thread runs in (not a fork's)
        self.refused: set[str] = set()  # bad TUNEOPS_STORAGE_STALL_S values, said once each
        # a fork copies a lock another thread may hold at that instant: the child makes its own
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self.lock = threading.Lock()
        self.pid = None

    def limit_s(self) -> float:
        raw = os.environ.get("TUNEOPS_STORAGE_STALL_S")
        if not raw:
            return STALL_WARN_S
        try:
            limit = float(raw)
        except ValueError:
            limit = math.nan
        if not limit > 0:  # NaN too
            if raw not in self.refused:
                self.refused.add(raw)
                _log.warning(
                    "TUNEOPS_STORAGE_STALL_S: expected seconds > 0, received %r; using %g s.",
                    raw,
                    STALL_WARN_S,
                )
            return STALL_WARN_S
        return limit

    @contextlib.contextmanager
    def call(self, url: str, method: str) -> Iterator[None]:
        if self.pid != os.getpid():
            self._start()
        started = time.monotonic()
        key = next(self.ids)
        self.calls[key] = (started, url, method)
        try:
            yield
        finally:
            del self.calls[key]
            if key in self.warned:
                with self.lock:
                    self.warned.discard(key)
                _log.warning(
                    "storage %s answered %s after %.0f s; going on.",
                    mask_url(url),
                    method,
                    time.monotonic() - started,
                )

    def _start(self) -> None:
        with self.lock:
            if self.pid != os.getpid():  # first call, or first in a forked worker
                self.calls.clear()  # the parent's calls are not this process's
                self.warned.clear()
                self.pid = os.getpid()
                watcher = threading.Thread(
                    target=self._watch, name="tuneops-storage-stall", daemon=True
                )
                watcher.start()

    def _watch(self) -> None:
        while True:
            limit = self.limit_s()
            time.sleep(min(5.0, max(0.05, limit / 4)))
            now = time.monotonic()
            for key, (started, url, method) in list(self.calls.items()):
                if now - started >= limit and key not in self.warned:
                    with self.lock:
                        self.warned.add(key)
                    _log.warning(
                        "storage %s has not answered %s for %.0f s: the server is stopped, "
                        "overloaded or cut off by the network. Waiting for it; Ctrl-C stops "
                        "(running trials are queued again by the next run or worker).",
                        mask_url(url),
                        method,
                        now - started,
                    )


_STALLS = _StallWatch()


class _Outages:
    """What a process says about a storage's lost connection: once when it is lost, every
    ``every_s`` while calls still retry, and once when a call gets through again. Each call and
    thread (a worker's loop, its heartbeat) retries on its own; one line per retry of each
    printed about 50 lines, twice over, for one outage, and nothing when it ended."""

    def __init__(self, every_s: float = 15.0) -> None:
        self.every_s = every_s
        self.lock = threading.Lock()
        self.since: dict[str, tuple[float, float]] = {}  # url -> (lost at, last said at)

    def retrying(self, url: str, method: str, exc: BaseException) -> None:
        now = time.monotonic()
        with self.lock:
            lost, said = self.since.get(url, (now, -math.inf))
            if now - said < self.every_s:
                return
            self.since[url] = (lost, now)
        if said == -math.inf:
            _log.warning(
                "storage %s: connection lost during %s (%s); retrying with backoff for about "
                "30 s per call",
                mask_url(url),
                method,
                type(_chain(exc)[0]).__name__,
            )
        else:
            _log.warning(
                "storage %s: still unreachable after %.0f s; retrying", mask_url(url), now - lost
            )

    def ended(self, url: str) -> None:
        with self.lock:
            began = self.since.pop(url, None)
        if began is not None:
            _log.warning(
                "storage %s: reconnected after %.0f s; going on",
                mask_url(url),
                time.monotonic() - began[0],
            )


_OUTAGES = _Outages()


class RetryingStorage(optuna.storages.BaseStorage):
    """Delegates to ``inner``; retries an operation whose connection dropped, with backoff.

    Only connection failures are retried (a refused or reset connection, a server restart, a
    timeout); every other error, and the last failure, reaches the caller. Thread-safe as the
    inner storage is. Attributes the base class does not define are read from ``inner``. A
    call that goes unanswered longer than :data:`STALL_WARN_S` is reported (:class:`_StallWatch`).
    """

    def __init__(
        self,
        inner: optuna.storages.BaseStorage,
        url: str,
        *,
        attempts: int = 7,
        first_delay_s: float = 0.5,
    ) -> None:
        self.inner = inner
        self.url = url
        self.attempts = attempts
        self.first_delay_s = first_delay_s

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set (unpickling)
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        delay = self.first_delay_s
        started = time.monotonic()
        for attempt in range(1, self.attempts + 1):
            try:
                with _STALLS.call(self.url, method):
                    result = getattr(self.inner, method)(*args, **kwargs)
                if self.url in _OUTAGES.since:  # a call got through: the outage ended
                    _OUTAGES.ended(self.url)
                return result
            except Exception as exc:
                if not _transient(exc):
                    raise
                if attempt == self.attempts:
                    # One line that says what happened and what to do, not the driver's
                    # traceback (pages of it, once per worker).
                    cause = _chain(exc)[0]  # the driver's words, not Optuna's wrapper's
                    first = (str(cause).strip().splitlines() or [""])[0][:200]
                    password = url_password(self.url)
                    if password:
                        first = first.replace(password, "***")
                    raise StorageUnavailable(
                        f"storage {mask_url(self.url)!r} stayed unreachable: {method} failed "
                        f"{attempt} times over {time.monotonic() - started:.0f} s "
                        f"({type(cause).__name__}: {mask_url(first)}). "
                        "Trials that were running stay RUNNING and are queued again by the next "
                        "run or worker: start the server and run the same command again."
                    ) from exc
                _OUTAGES.retrying(self.url, method, exc)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")


def _delegate(name: str) -> Callable[..., Any]:
    @functools.wraps(getattr(optuna.storages.BaseStorage, name))
    def method(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    return method


for _name in [n for n in vars(optuna.storages.BaseStorage) if not n.startswith("_")]:
    if callable(getattr(optuna.storages.BaseStorage, _name)):
        setattr(RetryingStorage, _name, _delegate(_name))
RetryingStorage.__abstractmethods__ = frozenset()
del _name
