"""Journal snapshots: the state Optuna replayed from a journal file, saved next to it
(``FILE.snapshot``) so that opening a large journal replays only what was written since. A
cache, never a source of truth (see :mod:`tuneops.storage`)."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage

from tuneops import _optuna
from tuneops._files import write_error
from tuneops._journal_lock import JournalLock
from tuneops.errors import (
    StorageUnavailable,
    WriteError,
)

_log = logging.getLogger("tuneops")

SNAPSHOT_SUFFIX = ".snapshot"
_SNAPSHOT_MAGIC = b"tuneops journal snapshot\n"
_SNAPSHOT_FORMAT = 1
_HASH_CHUNK = 1 << 20


def snapshot_path(journal: str | os.PathLike[str]) -> Path:
    """Where the snapshot of journal file ``journal`` lives: next to it, ``FILE.snapshot``."""
    return Path(f"{os.fspath(journal)}{SNAPSHOT_SUFFIX}")


def _prefix_digest(path: str, n_bytes: int) -> str | None:
    """SHA-256 of the first ``n_bytes`` of ``path``; None when the file is shorter."""
    digest = hashlib.sha256()
    remaining = n_bytes
    with open(path, "rb") as f:
        while remaining > 0:
            chunk = f.read(min(_HASH_CHUNK, remaining))
            if not chunk:
                return None
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


class SnapshotJournalFile(JournalFileBackend):
    """Optuna's journal file backend, which also finds the snapshot saved next to the file
    (:meth:`load_snapshot`), for :func:`tuneops._optuna.open_journal` to restore when the storage
    opens. It is not an Optuna ``BaseJournalSnapshot``: Optuna would pickle the whole replay
    state for it at every 100th trial (see ``open_journal``).

    ``restored`` is how many journal entries the snapshot held (0 when there was none or it was
    refused); the storage then replays only the entries after those.

    Appends are Optuna's (one JSON line per entry, under the lock, fsync'd) with one repair
    first: an entry left incomplete at the end of the file (its writer was killed within a
    large write, or the disk filled up) is cut off. Optuna's reader skips such a tail, but the
    next entry appended after it would be glued to it into one undecodable line, and from then
    on every reader of the study fails. Nobody was told the torn entry was written (its write
    raised, or its process died), so cutting it loses nothing that was acknowledged. A journal
    glued so before (by an earlier version, or by plain Optuna) is read with the whole entry at
    the glued line's end (:func:`tuneops._optuna.read_journal_file`), with a warning.
    """

    def __init__(self, file_path: str, *, use_snapshot: bool = True) -> None:
        self.lock = JournalLock(file_path)
        super().__init__(file_path, lock_obj=self.lock)
        self.path = file_path
        self.use_snapshot = use_snapshot
        self.restored = 0
        self._held: dict[int, list[dict[str, Any]]] = {}  # thread -> entries it holds
        self.appends = 0  # appends written to the file (one lock and one fsync each)
        self.applying = 0  # the entry read last (see read_logs)
        self._warned_glued: set[int] = set()

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        if threading.get_ident() in self._held:
            return  # the first read after the block reads what it and others wrote (together)
        # the number of the entry the storage applies now: one it cannot apply is named by it
        self.applying = log_number_from
        entries = _optuna.read_journal_file(self, log_number_from, self._glued)
        for self.applying, entry in enumerate(entries, log_number_from):
            yield entry

    def damage(self, exc: BaseException) -> StorageUnavailable | None:
        """The error to raise for ``exc``, raised while the storage replayed this file, when it
        is a line after the first that is not an entry Optuna can replay (a byte flipped by a
        disk, an edit, a copy cut short; :attr:`applying` names the entry applied when Optuna
        raised): the file is a journal whose entries before that line are whole. None for
        anything else, a file whose first line fails among it (it is no journal at all)."""
        if not isinstance(exc, Exception) or isinstance(exc, OSError):
            return None
        if _optuna.replay_signal(exc):  # Optuna telling this writer, not a damaged line
            return None
        line = exc if isinstance(exc, _optuna.JournalLineError) else None
        number = line.log_number if line is not None else self.applying
        if number < 1:
            return None
        reason = (
            f"not a journal entry: {type(line.reason).__name__}: {line.reason}"
            if line is not None
            else f"an entry Optuna cannot replay: {type(exc).__name__}: {str(exc)[:200]}"
        )
        path = self.path
        return StorageUnavailable(
            f"journal file {path!r} is damaged at line {number + 1} ({reason}; the line begins "
            f"{_journal_line(path, number)[:80]!r}). Its first {number} entries are whole; "
            "that line and every one after it cannot be read, so no command reads the file "
            "until it is repaired. What to do: restore the file from a backup; or keep its "
            f"first {number} entries (`head -n {number} {path} > {path}.kept`, then pass "
            f"--storage {path}.kept): whatever was recorded from line {number + 1} on is lost, "
            "and a run resumed on that file runs the trials its budget then has left."
        )

    def _glued(self, log_number: int, dropped: int) -> None:
        if log_number not in self._warned_glued:
            self._warned_glued.add(log_number)
            _log.warning(
                "journal %s: entry %d was glued to %d bytes of an entry left incomplete before "
                "it (a writer killed mid-write or a full disk, before this version cut such "
                "tails): read without them",
                self.path,
                log_number,
                dropped,
            )

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        held = self._held.get(threading.get_ident())
        if held is not None:
            held.extend(logs)
            return
        self._append(logs)

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """The entries this thread appends within the block are written at its end, in one
        append (one lock, one write, one fsync: about 0.4 ms each on a local disk), in order;
        also when the block raises. Other threads (a heartbeat) write as usual meanwhile.

        Within the block this thread reads nothing from the file (the storage sees it as it was
        when the block began: what the block writes is not there yet, and reading only what
        others wrote would cost a read per write for nothing); the first read after the block
        applies both. Hold only writes that nothing reads before the block ends (a trial's
        last attributes and its state, :func:`tuneops._optuna.tell`, which then reads)."""
        ident = threading.get_ident()
        if ident in self._held:  # already held by an outer block
            yield
            return
        held: list[dict[str, Any]] = []
        self._held[ident] = held
        try:
            yield
        finally:
            del self._held[ident]
            if held:
                self._append(held)

    def _append(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        self.appends += 1
        try:
            self.lock.acquire()  # creates a lock file: a full disk can refuse that too
            try:
                # Unbuffered: an entry that failed is never completed later by a buffer's flush.
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
                try:
                    _cut_torn_tail(fd, self.path)
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
            finally:
                self.lock.release()
        except OSError as exc:
            raise _write_error(self.path, exc) from exc

    def load_snapshot(self) -> bytes | None:
        """The snapshot's pickled state when it is valid for this journal as it is now, else
        None (the storage then replays the journal from its first entry)."""
        found = _read_snapshot(self.path) if self.use_snapshot else None
        if found is None:
            return None
        n_entries, offset, payload = found
        _optuna.seek_journal_file(self, n_entries, offset)
        self.restored = n_entries
        return payload


_TAIL_CHUNK = 1 << 16


def _write_error(path: str, exc: OSError) -> WriteError:
    return write_error(
        path,
        exc,
        what="write to the journal",
        then="run the same command again to resume the study: everything recorded before is "
        "intact (an entry cut short is removed at the next write)",
    )


def _journal_line(path: str, number: int) -> bytes:
    """Line ``number`` (from 0) of the file at ``path``, without its newline (b"" if none)."""
    try:
        with open(path, "rb") as f:
            for i, line in enumerate(f):
                if i == number:
                    return line.rstrip(b"\n")
    except OSError:
        pass
    return b""


def _cut_torn_tail(fd: int, path: str) -> None:
    """Truncate the file open at ``fd`` after its last newline when it does not end with one
    (see :class:`SnapshotJournalFile`); the caller holds the journal's lock."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    end = size
    keep = 0
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    os.ftruncate(fd, keep)
    _log.warning(
        "journal %s: cut off %d bytes of an entry left incomplete at its end (its writer was "
        "killed mid-write or the disk was full); nothing acknowledged is lost",
        path,
        size - keep,
    )


def _read_snapshot(journal: str) -> tuple[int, int, bytes] | None:
    """``(entries, byte offset, pickled state)`` of the snapshot of ``journal``, or None when
    there is none or it must not be used: not owned by this user or writable by others, another
    format or Optuna version, a damaged payload, or a journal whose first ``offset`` bytes are
    no longer those the snapshot was taken from."""
    path = snapshot_path(journal)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if (
                not stat.S_ISREG(info.st_mode)
                or (hasattr(os, "geteuid") and info.st_uid != os.geteuid())
                or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            ):
                _log.debug("journal snapshot %s ignored: not this user's own file", path)
                return None
            if f.readline() != _SNAPSHOT_MAGIC:
                return None
            header = json.loads(f.readline())
            payload = f.read()
        if (
            header.get("format") != _SNAPSHOT_FORMAT
            or header.get("optuna") != optuna.__version__
            or hashlib.sha256(payload).hexdigest() != header.get("payload_sha256")
        ):
            _log.debug("journal snapshot %s ignored: another format or version, or damaged", path)
            return None
        n_entries, offset = int(header["entries"]), int(header["offset"])
        if _prefix_digest(journal, offset) != header.get("journal_sha256"):
            _log.debug(
                "journal snapshot %s ignored: the journal is not the one it was taken of", path
            )
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return n_entries, offset, payload


def _journal_backend(storage: optuna.storages.BaseStorage) -> SnapshotJournalFile | None:
    backend = _optuna.journal_backend(storage)
    return backend if isinstance(backend, SnapshotJournalFile) else None


def save_snapshot(storage: optuna.storages.BaseStorage) -> Path | None:
    """Save the state ``storage`` replayed next to its journal file, so the next process that
    opens the file starts from it. Returns the snapshot's path; None for any other storage, or
    when it cannot be written (it is a cache: a failure is logged, never raised).

    Written to a temporary file and renamed, so a reader sees the old snapshot or the new one,
    never half of one; readable and writable by this user only.
    """
    backend = _journal_backend(storage)
    if backend is None or not isinstance(storage, JournalStorage):
        return None
    state, n_entries = _optuna.journal_state(storage)
    offset = _optuna.journal_file_offset(backend, n_entries)
    if offset is None:
        return None
    target = snapshot_path(backend.path)
    temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    _remove_stale_temporaries(target)
    try:
        digest = _prefix_digest(backend.path, offset)
        if digest is None:
            return None
        header = {
            "format": _SNAPSHOT_FORMAT,
            "optuna": optuna.__version__,
            "entries": n_entries,
            "offset": offset,
            "journal_sha256": digest,
            "payload_sha256": _Digest.of(state.dump),
        }
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_SNAPSHOT_MAGIC)
            f.write(json.dumps(header).encode() + b"\n")
            state.dump(f)  # written twice (hashed, then saved), never held whole in memory
        os.replace(temporary, target)
    except OSError as exc:
        _log.debug("journal snapshot %s not written: %s", target, exc)
        with contextlib.suppress(OSError):
            temporary.unlink()
        return None
    backend.restored = n_entries
    return target


#: A temporary snapshot older than this was left by a process killed while it saved one
#: (a save writes its file continually, in well under a second at 10,000 trials).
STALE_TEMPORARY_S = 3600.0


def _remove_stale_temporaries(target: Path) -> None:
    """Remove the ``FILE.snapshot.<pid>.tmp`` files a save killed mid-write left beside
    ``target`` (as large as the snapshot, 5 MB and more at 10,000 trials; no later save,
    under another pid, replaced them). Only this user's files an hour old: a save running
    now in another process writes its own."""
    now = time.time()
    for tmp in target.parent.glob(f"{glob.escape(target.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            info = tmp.lstat()
            mine = not hasattr(os, "geteuid") or info.st_uid == os.geteuid()
            if mine and stat.S_ISREG(info.st_mode) and now - info.st_mtime > STALE_TEMPORARY_S:
                tmp.unlink()


class _Digest:
    """A file-like sink that only hashes what is written to it (SHA-256)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        return len(data)

    @classmethod
    def of(cls, dump: Callable[[Any], None]) -> str:
        """The hex digest of what ``dump(file)`` writes."""
        sink = cls()
        dump(sink)
        return sink._hash.hexdigest()


def refresh_snapshot(storage: optuna.storages.BaseStorage, *, min_entries: int = 1000) -> bool:
    """Save a snapshot when opening ``storage`` replayed many journal entries: at least
    ``min_entries`` and a tenth of the journal (saving costs about a tenth of a full replay per
    entry, so a snapshot that spares fewer would not pay for itself). True when saved.
    """
    backend = _journal_backend(storage)
    if backend is None or not isinstance(storage, JournalStorage):
        return False
    n_entries = _optuna.journal_entries(storage)
    replayed = n_entries - backend.restored
    if replayed < max(min_entries, n_entries // 10):
        return False
    return save_snapshot(storage) is not None
