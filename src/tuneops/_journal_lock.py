"""The lock of a journal file, which a killed writer does not leave behind.

Optuna's journal lock is an entry next to the journal (``FILE.lock``) that a writer creates
before it appends and removes after. A process killed in between (SIGKILL, the OOM killer, a
container stopped) leaves it, and every other process of the study then waits: Optuna breaks a
lock only after it has stood unchanged for 30 s (its grace period). With workers that append at
every trial, one worker's death stalled the whole study for those 30 s.

:class:`JournalLock` lets the kernel hold the lock between tuneops processes. A writer first
takes an exclusive ``flock`` on the journal file itself, which the kernel releases when the
process ends, however it ends. Holding it, the writer also creates Optuna's ``FILE.lock`` (a
regular file naming its host and pid), so plain Optuna processes writing the same journal (a
script, the dashboard) exclude it and are excluded as before. A tuneops writer that holds the
``flock`` and finds a lock file written by a tuneops writer of this host knows that writer is
gone (it would hold the ``flock`` otherwise) and removes the file at once. Any other lock file
(one of plain Optuna's, one from another machine sharing the directory, an empty one) is waited
for as Optuna waits, grace period included.

Where the file system refuses ``flock`` (some network mounts), the lock is Optuna's alone: the
lock file is created empty and never removed early.

A writer takes the lock with ``acquire()`` just before the ``try`` whose ``finally`` releases
it (Optuna's ``get_lock_file``, tuneops' journal append): a signal turned into an exception in
between leaves it held. The same thread's next ``acquire()`` finds it still held and keeps it,
so the process does not wait on itself; its ``flock`` ends with the process anyway.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time

from tuneops._optuna import JournalFileLock

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: Optuna's lock file alone
    fcntl = None  # type: ignore[assignment]

__all__ = ["JournalLock"]

_log = logging.getLogger(__name__)

_MARK = b"tuneops journal lock\n"
_HOST = socket.gethostname()
GRACE_S = 30.0  # Optuna's grace period for a lock file it cannot tell is left behind
WARN_S = 10.0

# flock descriptors held by this process's threads; a forked child closes its copies (the lock
# stays with the parent: closing a copy does not release it, only the last close does).
_HELD_FDS: set[int] = set()


def _close_inherited() -> None:
    for fd in list(_HELD_FDS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_FDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited)


class JournalLock(JournalFileLock):
    """The lock for appending to the journal file ``path`` (see the module's docstring).

    One object serves all threads of a process: each thread holds its own ``flock``, so a
    heartbeat thread and the worker's thread exclude each other like two processes.
    """

    def __init__(self, path: str, grace_period_s: float = GRACE_S) -> None:
        self.path = path
        self.lock_file = path + ".lock"  # Optuna's name (LOCK_FILE_SUFFIX), shared with it
        self.grace_period_s = grace_period_s
        self._local = threading.local()  # .held = (flock fd or None, (st_dev, st_ino) or None)
        self.broken = 0  # lock files of gone tuneops writers removed by this object

    def acquire(self) -> bool:
        if getattr(self._local, "held", None) is not None:
            return True  # taken by this thread and never released (see the module's docstring)
        fd = self._flock()
        try:
            identity = self._create(kernel_held=fd is not None)
        except BaseException:
            if fd is not None:
                _release_flock(fd)
            raise
        self._local.held = (fd, identity)
        return True

    def release(self) -> None:
        held = getattr(self._local, "held", None)
        if held is None:
            raise RuntimeError("Error: did not possess lock")  # Optuna's message
        self._local.held = None
        fd, identity = held
        try:
            info = os.lstat(self.lock_file)
            # Not ours when plain Optuna broke it after its grace period and took it since.
            if (info.st_dev, info.st_ino) == identity:
                os.unlink(self.lock_file)
        except FileNotFoundError:
            pass
        finally:
            if fd is not None:
                _release_flock(fd)

    def _flock(self) -> int | None:
        """An exclusive ``flock`` on the journal, waited for; None where it is not supported."""
        if fcntl is None:
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        _HELD_FDS.add(fd)
        return fd

    def _create(self, *, kernel_held: bool) -> tuple[int, int]:
        """Create the lock file, waiting for (or removing) one that stands; its identity."""
        sleep_s = 0.001
        seen: tuple[int, int, float] | None = None  # (dev, ino, mtime) of the standing file
        seen_since = warned_at = time.monotonic()
        while True:
            try:
                fd = os.open(
                    self.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644
                )
            except FileExistsError:
                pass
            else:
                try:
                    if kernel_held:
                        try:
                            os.write(fd, _MARK + f"{_HOST} {os.getpid()}\n".encode())
                        except OSError:  # a full disk: the lock holds all the same, unnamed
                            pass
                    info = os.fstat(fd)
                finally:
                    os.close(fd)
                return info.st_dev, info.st_ino
            gone = self._left_by_gone_writer() if kernel_held else None
            if gone is not None:
                _remove(self.lock_file)
                self.broken += 1
                _log.warning(
                    "removed the journal lock file %s left by a writer that is gone (%s)",
                    self.lock_file, gone,
                )
                continue
            try:
                info = os.lstat(self.lock_file)
            except FileNotFoundError:
                continue
            now = time.monotonic()
            if seen != (info.st_dev, info.st_ino, info.st_mtime):
                seen, seen_since = (info.st_dev, info.st_ino, info.st_mtime), now
            elif now - seen_since > self.grace_period_s:
                _log.warning(
                    "the journal lock file %s has stood for %.0f s: removing it as Optuna does",
                    self.lock_file, now - seen_since,
                )
                _remove(self.lock_file)
                continue
            if now - warned_at > WARN_S:
                _log.warning(
                    "waiting %.0f s for the journal lock file %s (held by another writer; "
                    "removed after %.0f s unchanged)",
                    now - seen_since, self.lock_file, self.grace_period_s,
                )
                warned_at = now
            time.sleep(sleep_s)
            sleep_s = min(sleep_s * 2, 0.1)

    def _left_by_gone_writer(self) -> str | None:
        """``"host pid"`` of the tuneops writer of this host that wrote the standing lock file,
        else None. The caller holds the ``flock``, which that writer held as long as it lived."""
        try:
            fd = os.open(self.lock_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:  # gone meanwhile, or a symbolic link (Optuna's own lock)
            return None
        try:
            head = os.read(fd, 256)
        finally:
            os.close(fd)
        if not head.startswith(_MARK):
            return None
        writer = head[len(_MARK):].decode(errors="replace").strip()
        return writer if writer.split(" ", 1)[0] == _HOST else None


def _release_flock(fd: int) -> None:
    _HELD_FDS.discard(fd)
    os.close(fd)  # the last descriptor of its open file: the flock ends


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
