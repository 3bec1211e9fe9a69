"""The journal file's lock: a writer killed while it holds the lock does not stall the others,
plain Optuna writers still exclude and are excluded, threads and forked children behave.

The waits that must end early run with a grace period of an hour, so a lock that is broken by
the grace period instead of at once fails the test (by its join timeout), whatever the load."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from optuna.storages.journal import JournalFileSymlinkLock

from tuneops._journal_lock import _HOST, _MARK, JournalLock
from tuneops.storage import SnapshotJournalFile

HOUR = 3600.0


@pytest.fixture
def journal(tmp_path: Path) -> str:
    path = tmp_path / "s.journal"
    path.touch()
    return str(path)


class _Taker(threading.Thread):
    """``lock.acquire()`` in a thread of its own; ``got`` is set once it holds the lock, which
    it releases (in that thread, as the lock is per thread) when ``release()`` is called."""

    def __init__(self, lock) -> None:
        super().__init__(daemon=True)
        self.lock, self.got, self._done = lock, threading.Event(), threading.Event()
        self.start()

    def run(self) -> None:
        self.lock.acquire()
        self.got.set()
        self._done.wait()
        self.lock.release()

    def release(self) -> None:
        self._done.set()
        self.join(30)


def _hold_and_wait(path: str, ready) -> None:
    JournalLock(path).acquire()
    ready.set()
    time.sleep(HOUR)


def test_a_lock_left_by_a_killed_writer_is_removed_at_once(
    journal: str, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_and_wait, args=(journal, ready))
    holder.start()
    try:
        assert ready.wait(60), "the holder never took the lock"
        waiter = JournalLock(journal, grace_period_s=HOUR)
        taker = _Taker(waiter)
        assert not taker.got.wait(0.5), "the lock was taken while its holder lived"
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(30)
        # The killed holder's lock file may already be gone here (the waiter is quick), so
        # the test reads which writer the lock file names once the waiter holds the lock.
        assert taker.got.wait(30), "the lock left by a killed writer was not removed"
        assert waiter.broken == 1
        assert Path(journal + ".lock").read_bytes() == _MARK + f"{_HOST} {os.getpid()}\n".encode()
        assert f"left by a writer that is gone ({_HOST} {holder.pid})" in caplog.text
        taker.release()
        assert not Path(journal + ".lock").exists()
    finally:
        holder.kill()
        holder.join()


def test_plain_optuna_writers_and_tuneops_exclude_each_other(journal: str) -> None:
    optuna_lock = JournalFileSymlinkLock(journal)
    optuna_lock.acquire()
    ours = JournalLock(journal, grace_period_s=HOUR)
    taker = _Taker(ours)
    assert not taker.got.wait(0.5), "tuneops took the lock plain Optuna held"
    optuna_lock.release()
    assert taker.got.wait(30)
    assert ours.broken == 0
    # Plain Optuna waits for ours in turn (the lock file is then ours, a regular file).
    theirs = _Taker(JournalFileSymlinkLock(journal))
    assert not theirs.got.wait(0.5), "plain Optuna took the lock tuneops held"
    taker.release()
    assert theirs.got.wait(30)
    theirs.release()


def test_a_lock_file_from_another_host_is_left_to_the_grace_period(journal: str) -> None:
    Path(journal + ".lock").write_bytes(_MARK + f"not-{_HOST} 12345\n".encode())
    lock = JournalLock(journal, grace_period_s=1.0)
    started = time.monotonic()
    assert lock.acquire()
    assert time.monotonic() - started >= 1.0  # waited for it to stand unchanged that long
    assert lock.broken == 0
    lock.release()


def test_threads_of_one_process_exclude_each_other(journal: str) -> None:
    lock = JournalLock(journal, grace_period_s=HOUR)
    lock.acquire()
    other = _Taker(lock)
    assert not other.got.wait(0.5), "a second thread took the lock the first held"
    lock.release()
    assert other.got.wait(30)
    other.release()


def test_a_lock_never_released_by_its_thread_is_kept_not_waited_for(journal: str) -> None:
    # Optuna's get_lock_file acquires before its try: an exception in between leaks the lock.
    lock = JournalLock(journal, grace_period_s=HOUR)
    lock.acquire()
    assert lock.acquire()  # the same thread again: at once
    lock.release()
    assert not Path(journal + ".lock").exists()
    with pytest.raises(RuntimeError, match="did not possess"):
        lock.release()


def test_a_child_forked_while_a_thread_holds_the_lock_does_not_keep_it(journal: str) -> None:
    lock = JournalLock(journal, grace_period_s=HOUR)
    lock.acquire()  # held by this thread while the child is forked
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child waits until the parent is done, then leaves
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    try:
        lock.release()
        other = _Taker(JournalLock(journal, grace_period_s=HOUR))
        assert other.got.wait(30), "the forked child kept the lock its parent released"
        other.release()
    finally:
        os.close(write_end)
        os.waitpid(pid, 0)


def _append(path: str, writer: int, n: int) -> None:
    backend = SnapshotJournalFile(path, use_snapshot=False)
    for i in range(n):
        backend.append_logs([{"writer": writer, "i": i, "pad": "x" * 512}])


def test_concurrent_writers_append_whole_entries(journal: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_append, args=(journal, w, 150)) for w in range(3)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(120)
        assert p.exitcode == 0
    entries = [json.loads(line) for line in Path(journal).read_bytes().splitlines()]
    assert sorted((e["writer"], e["i"]) for e in entries) == [
        (w, i) for w in range(3) for i in range(150)
    ]
    assert not Path(journal + ".lock").exists()


def test_without_flock_the_lock_is_optunas_lock_file_alone(journal, monkeypatch) -> None:
    # Some network file systems refuse flock (ENOLCK): the lock file still excludes, and it
    # is created unnamed, so nobody removes it early on the word of a flock it never had.
    import errno
    import types

    from tuneops import _journal_lock

    def refused(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(_journal_lock, "fcntl", types.SimpleNamespace(flock=refused, LOCK_EX=2))
    lock = JournalLock(journal, grace_period_s=HOUR)
    lock.acquire()
    assert Path(journal + ".lock").read_bytes() == b""  # unnamed
    other = _Taker(JournalLock(journal, grace_period_s=HOUR))
    assert not other.got.wait(0.5), "a second writer took the lock file the first held"
    lock.release()
    assert other.got.wait(30)
    other.release()
    assert not Path(journal + ".lock").exists()
