"""Storage URLs -> Optuna storages. The storage is the single source of truth.

* no URL: the embedded default, an Optuna journal file ``tuneops.journal`` in the working
  directory. A journal file is append-only and guarded by a lock (:mod:`tuneops._journal_lock`:
  the kernel's ``flock`` plus Optuna's lock file, which a killed writer does not leave behind),
  so several local worker processes write to it without the "database is locked" failures
  SQLite gives under concurrent writers (see docs/benchmarks.md for the measurement).
* ``path/to/file.journal`` or ``journal:///abs/path``: a journal file at that path.
* ``sqlite:///file.db``: Optuna's RDB storage on SQLite (one machine).
* ``postgresql://USER:PASS@HOST:PORT/DB`` (or ``postgres://``), ``mysql://...``: Optuna's RDB
  storage through SQLAlchemy. ``postgresql://`` uses psycopg2 when it is installed, else
  psycopg 3 (``postgresql+psycopg://``, the ``[postgres]`` extra); an explicit ``+driver`` is
  kept as written.
* ``redis://HOST:PORT/DB`` (or ``rediss://``): Optuna's journal storage on Redis.
* ``:memory:``: in-process only (tests, notebooks); one worker.

Network storages (PostgreSQL, MySQL, Redis) are wrapped in :class:`RetryingStorage`: an
operation that fails because the connection dropped is retried with exponential backoff
(0.5 s doubling, about 30 s in all) before the error reaches the worker.

A journal file has a **snapshot** next to it, ``FILE.snapshot``: the state Optuna replayed
from the journal, saved at the end of a run and by a reader that had to replay many entries
(:func:`save_snapshot`, :func:`refresh_snapshot`). Opening the journal restores the snapshot and
replays only the entries written after it, so ``tuneops show`` and ``tuneops report`` on a
10,000-trial study do not each parse the whole journal again (2.5 s of CPU each at that size;
docs/benchmarks.md, "Overhead"). The snapshot is a cache, never a source of truth: it is used
only when the journal's bytes up to the point it was taken hash to what it recorded (the
journal is append-only, so the study may have grown since: those entries are replayed), when
the Optuna version matches, and when this user owns it and nobody else can write it (it is a
pickle, like Optuna's own snapshots). Otherwise the journal is replayed in full, as without one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import itertools
import json
import logging
import math
import os
import re
import stat
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend, JournalStorage

from tuneops import _gc, _optuna
from tuneops._files import write_error
from tuneops._journal_lock import JournalLock
from tuneops._secrets import mask_secrets, mask_url, url_password
from tuneops.errors import (
    MissingExtra,
    StorageUnavailable,
    StudyNotFound,
    WriteError,
    require,
)

__all__ = [
    "DEFAULT_STORAGE",
    "resolve_url",
    "mask_url",
    "mask_secrets",
    "storage_exists",
    "get_storage",
    "RetryingStorage",
    "engine_url",
    "SNAPSHOT_SUFFIX",
    "snapshot_path",
    "save_snapshot",
    "refresh_snapshot",
]

try:
    import pwd  # POSIX: names the user in permission errors
except ImportError:  # pragma: no cover - Windows
    pwd = None  # type: ignore[assignment]

_log = logging.getLogger("tuneops")

DEFAULT_STORAGE = "tuneops.journal"
_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")
_NETWORK_SCHEMES = ("postgresql", "postgres", "mysql", "redis", "rediss")
_FILE_SCHEMES = ("journal", "file")
_KNOWN_SCHEMES = (*_RDB_SCHEMES, "redis", "rediss", *_FILE_SCHEMES)
# One connection for the worker loop, one for its heartbeat thread (tuneops.heartbeat).
POOL_SIZE = 2
POOL_OVERFLOW = 2


def resolve_url(url: str | None) -> str:
    """The URL tuneops will use: the embedded default when ``url`` is empty."""
    return url or DEFAULT_STORAGE


def _scheme(url: str) -> str:
    match = re.match(r"^([a-z][a-z0-9+]*)://", url)
    return match.group(1).split("+")[0] if match else ""


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def engine_url(url: str) -> str:
    """The SQLAlchemy URL for a database URL: the installed driver made explicit.

    ``postgres://`` (which SQLAlchemy 2 rejects) becomes ``postgresql://``; a URL without a
    driver gets psycopg2 when installed, else psycopg 3. ``mysql://`` gets PyMySQL when
    mysqlclient is absent.

    Raises:
        MissingExtra: no driver for that database is installed.
    """
    head, sep, rest = url.partition("://")
    if head in ("postgres", "postgresql"):
        if _has("psycopg2"):
            return f"postgresql://{rest}"
        if _has("psycopg"):
            return f"postgresql+psycopg://{rest}"
        raise MissingExtra(
            f"storage {mask_url(url)!r} needs a PostgreSQL driver (psycopg 3 or psycopg2) and "
            "neither is installed; install it with: pip install 'tuneops[postgres]'"
        )
    if head == "mysql" and not _has("MySQLdb"):
        if _has("pymysql"):
            return f"mysql+pymysql://{rest}"
        raise MissingExtra(
            f"storage {mask_url(url)!r} needs a MySQL driver (mysqlclient or PyMySQL) and neither "
            "is installed; install one with: pip install pymysql"
        )
    if head.startswith("postgres+"):
        return f"postgresql+{head.split('+', 1)[1]}{sep}{rest}"
    return url


def _file_path(url: str) -> Path | None:
    """The file behind a journal or SQLite URL (None for a network or in-memory storage)."""
    scheme = _scheme(url)
    if scheme in ("", *_FILE_SCHEMES):
        return Path(url.split("://", 1)[1] if scheme else url)
    if scheme == "sqlite":
        path = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
        return Path(path) if path and path != ":memory:" else None
    return None


def storage_exists(url: str | None) -> bool:
    """False when ``url`` names a journal or SQLite file that does not exist (yet).

    Readers (listing studies, loading one) check this first: opening a file storage creates
    the file, and a read must never leave one behind. Network storages count as existing.
    """
    url = resolve_url(url)
    if url == ":memory:":
        return True
    path = _file_path(url)
    return path is None or path.exists()


def get_storage(
    url: str | None, *, n_workers: int = 1, must_exist: bool = False
) -> optuna.storages.BaseStorage:
    """Open the storage behind ``url``, creating a journal or SQLite file unless ``must_exist``.

    Args:
        url: a storage URL or journal file path; None for the embedded default.
        n_workers: how many workers will share the storage (checked against the server's
            connection limit for PostgreSQL; ``:memory:`` allows one).
        must_exist: for readers (show, report, list, load): a journal or SQLite file that does
            not exist is an error, and is not created.

    Raises:
        StorageUnavailable: the URL is malformed (scheme, slashes, port), its directory is
            missing or not writable, or the server cannot be reached or refuses the login; the
            message names the URL (password masked), what is wrong and what to do.
        StudyNotFound: ``must_exist`` and the file does not exist, so it holds no study.
        MissingExtra: the database driver is not installed.

    Example::

        >>> storage = get_storage(":memory:")
    """
    url = resolve_url(url)
    if url == ":memory:":
        if n_workers > 1:
            raise StorageUnavailable(
                "storage ':memory:' lives in one process, but n_workers is "
                f"{n_workers}; use a journal file or a database URL for several workers."
            )
        return optuna.storages.InMemoryStorage()
    _check_url(url)
    scheme = _scheme(url)
    if must_exist and not storage_exists(url):
        path = _file_path(url)
        raise StudyNotFound(
            f"storage {mask_url(url)!r} does not exist (no file "
            f"{str(path and path.absolute())!r}), "
            "so it holds no study. Run a spec first (`tuneops run SPEC`), or pass --storage with "
            "the storage that holds your studies."
        )
    try:
        if scheme in ("", *_FILE_SCHEMES):
            return _journal_file(url.split("://", 1)[1] if scheme else url)
        if scheme in _RDB_SCHEMES:
            return _rdb(url, n_workers)
        if scheme in ("redis", "rediss"):
            return _redis(url)
    except (StorageUnavailable, MissingExtra):
        raise
    except Exception as exc:
        if scheme in ("", *_FILE_SCHEMES) and not isinstance(exc, OSError):
            # A journal file whose entries Optuna cannot replay: another kind of file (a spec,
            # results.json, a CSV) given as --storage, or a journal of another tool.
            raise StorageUnavailable(
                f"storage {mask_url(url)!r} is not an Optuna journal file that tuneops can read "
                f"(replaying it failed: {type(exc).__name__}: {str(exc)[:200]}). What to do: "
                "point --storage at the journal file a run wrote (default tuneops.journal in "
                "the working directory) or at a database URL."
            ) from exc
        raise StorageUnavailable(_unreachable(url, exc)) from exc
    raise StorageUnavailable(
        f"storage: unknown scheme {scheme!r} in {mask_url(url)!r}; expected a journal file path, "
        "sqlite:///FILE, postgresql://USER:PASS@HOST:PORT/DB, mysql://..., or redis://HOST:PORT/DB."
    )


_FORMS = {
    "sqlite": "sqlite:///relative/file.db or sqlite:////absolute/file.db",
    "postgresql": "postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
    "postgres": "postgres://USER:PASSWORD@HOST:PORT/DATABASE",
    "mysql": "mysql://USER:PASSWORD@HOST:PORT/DATABASE",
    "redis": "redis://[:PASSWORD@]HOST:PORT/DB",
    "rediss": "rediss://[:PASSWORD@]HOST:PORT/DB",
    "journal": "journal:///absolute/path.journal (or just the file path)",
    "file": "file:///absolute/path.journal (or just the file path)",
}


def _check_url(url: str) -> None:
    """Refuse a malformed URL up front, with what is wrong, before any driver reads it.

    A URL with one slash (``postgresql:/host/db``) would otherwise be taken for a journal path
    in a directory ``postgresql:``, and a bad port would surface as Python's ``int()`` error.
    """
    head = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):(/{0,2})", url)
    if head is None:
        return _check_file(url, url)
    base = head.group(1).lower().split("+")[0]
    if base not in _KNOWN_SCHEMES:
        return _check_file(url, url) if len(head.group(1)) == 1 else None  # C:\... on Windows
    if head.group(2) != "//":
        raise StorageUnavailable(
            f"storage {mask_url(url)!r} is not a valid URL: '{head.group(1)}:' must be followed by "
            f"two slashes; expected {_FORMS[base]}."
        )
    rest = url[head.end() :]
    if base == "sqlite":
        if rest and not rest.startswith("/"):
            raise StorageUnavailable(
                f"storage {mask_url(url)!r} is not a valid SQLite URL: after 'sqlite:' come three "
                f"slashes, then the file; expected {_FORMS['sqlite']}."
            )
        path = _file_path(url)
        if path is None:  # SQLAlchemy's in-memory SQLite: a new, empty database per connection
            raise StorageUnavailable(
                f"storage {mask_url(url)!r} names no SQLite file; expected {_FORMS['sqlite']} "
                "(or ':memory:' for a study that lives in this process only)."
            )
        _check_file(url, str(path))
        return None
    if base in _FILE_SCHEMES:
        return _check_file(url, rest)
    # network: [USER[:PASSWORD]@]HOST[:PORT][/DB][?...]; the password may hold '@' or '/'.
    hostport = re.split(r"[/?]", rest.rpartition("@")[2], maxsplit=1)[0]
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise StorageUnavailable(
                f"storage {mask_url(url)!r} is not a valid URL: the IPv6 host {hostport!r} has no "
                f"closing ']'; expected {_FORMS[base]} with HOST as [::1]."
            )
        port = hostport[close + 1 :].removeprefix(":") if hostport[close + 1 :] else None
    else:
        port = hostport.rpartition(":")[2] if ":" in hostport else None
    if port is None:
        return None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise StorageUnavailable(
            f"storage {mask_url(url)!r}: port {port!r} is not a port number; expected an integer "
            f"from 1 to 65535 after the host (as in {_FORMS[base]}), or no port for the default."
        )
    return None


def _check_file(url: str, path: str) -> None:
    """A journal or SQLite file's directory must exist and be writable (Optuna writes a lock
    file next to a journal, and SQLite a journal of its own, even to read)."""
    target = Path(path)
    parent = target.parent
    try:
        is_dir, parent_exists = target.is_dir(), parent.exists()
        exists = target.exists()
    except PermissionError:  # a directory on the way may not be entered
        raise StorageUnavailable(
            f"storage {mask_url(url)!r}: no permission to reach {str(target.absolute())!r} (a "
            f"directory on the way cannot be entered by {_user()}); choose a path you can write, "
            "or ask its owner for access."
        ) from None
    if is_dir:
        raise StorageUnavailable(
            f"storage {mask_url(url)!r}: {path!r} is a directory; expected a file path "
            "(for example tuneops.journal)."
        )
    if not parent_exists:
        raise StorageUnavailable(
            f"storage {mask_url(url)!r}: directory {str(parent)!r} does not exist; create it "
            f"first (mkdir -p {parent}) or choose another path."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StorageUnavailable(
            f"storage {mask_url(url)!r}: no permission to write in directory "
            f"{str(parent.absolute())!r} (running as {_user()}); choose a directory you can write, "
            "or ask its owner for write access."
        )
    if exists and not os.access(target, os.R_OK | os.W_OK):
        raise StorageUnavailable(
            f"storage {mask_url(url)!r}: no permission to read and write file "
            f"{str(target.absolute())!r} (running as {_user()}); fix its permissions or use a copy."
        )


def _user() -> str:
    if pwd is None:
        return "this user"
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


# (words in the driver's error, what is wrong, what to do): first match wins, so the specific
# causes (authentication, a missing role) come before the broad ones (does not exist, timeout).
_DIAGNOSES = (
    (
        (
            "password authentication failed",
            "authentication failed",
            "access denied",
            "wrongpass",
            "invalid username-password",
            "invalid password",
            "noauth",
            "no password supplied",
            "auth failed",
        ),
        "authentication failed: the server refused the user name or password in the URL",
        "check the user and password (percent-encode '@', ':' and '/' in a password, e.g. %40)",
    ),
    (
        ('role "',),
        "the user in the URL does not exist on the server",
        "check the user name, or create the user first (PostgreSQL: CREATE USER name PASSWORD "
        "'...')",
    ),
    (
        ("does not exist", "unknown database"),
        "the database named in the URL does not exist on the server",
        "check the database name, or create the database first (PostgreSQL: createdb NAME)",
    ),
    (
        (
            "could not translate host name",
            "name or service not known",
            "nodename nor servname",
            "temporary failure in name resolution",
            "unknown host",
            "name resolution",
        ),
        "the host name in the URL cannot be resolved",
        "check the host name (and this machine's DNS)",
    ),
    (
        ("connection refused", "error 111", "connect call failed"),
        "connection refused: no server is running (or listening) on that host and port",
        "start the server, or fix the host and port in the URL (and the server's listen_addresses "
        "/ bind if it runs elsewhere)",
    ),
    (
        ("timeout", "timed out", "no route to host", "network is unreachable"),
        "the server did not answer in time (no route, firewall, or an overloaded server)",
        "check that this machine can reach the host and port (firewall, VPN) and that the server "
        "is up",
    ),
    (
        ("too many clients", "too many connections", "max number of clients"),
        "the server has no free connections",
        "use fewer workers or raise the server's connection limit (PostgreSQL: max_connections)",
    ),
    (
        ('on socket "',),
        "no server listens on this machine's default socket (the URL names no host)",
        "name the host and port in the URL, or start the server on this machine",
    ),
    (
        ("unable to open database file",),
        "SQLite cannot open the file",
        "check that the path is a writable file on a local disk",
    ),
    (
        ("file is not a database", "file is encrypted"),
        "the file is not an SQLite database",
        "point the URL at an SQLite file, or use a new file name",
    ),
)


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


def _unreachable(url: str, exc: BaseException) -> str:
    texts = [str(c) for c in _chain(exc)]
    text = " ".join(texts)
    lines = (line.strip() for t in texts for line in t.splitlines() if line.strip())
    reason = next(lines, type(exc).__name__)
    password = url_password(url)
    if password:
        reason = reason.replace(password, "***")
    reason = mask_url(reason)
    lowered = text.lower()
    found = next(
        ((what, todo) for keys, what, todo in _DIAGNOSES if any(k in lowered for k in keys)), None
    )
    if found is None:
        form = _FORMS.get(_scheme(url), "the documented form")
        return (
            f"storage {mask_url(url)!r} cannot be opened; the driver says: "
            f"{reason[:300].rstrip('.')}. What to do: check the URL against {form}, and the "
            "server's log."
        )
    what, todo = found
    return (
        f"storage {mask_url(url)!r} cannot be opened: {what} ({reason[:300].rstrip('.')}). "
        f"What to do: {todo}."
    )


def _journal_file(path: str) -> optuna.storages.BaseStorage:
    """A journal file (checked by :func:`_check_file`); created when it does not exist. Its
    snapshot, when valid, is restored first (see the module's docstring)."""
    try:
        try:
            backend = SnapshotJournalFile(path)
            with _gc.paused():
                storage = _optuna.open_journal(backend, backend.load_snapshot())
            if backend.restored and not _optuna.journal_restored(storage):
                backend.restored = 0  # Optuna could not unpickle it and replayed the journal
            return storage
        except (PermissionError, StorageUnavailable):
            raise
        except Exception as exc:
            # A snapshot that passed its checks but does not load (written by a tuneops whose
            # pickled names differ): replay the journal instead; a damaged journal raises again.
            if not snapshot_path(path).exists():
                raise
            _log.debug("journal snapshot of %s not restored (%r): replaying the journal", path, exc)
            return _optuna.open_journal(SnapshotJournalFile(path, use_snapshot=False))
    except PermissionError as exc:
        raise StorageUnavailable(
            f"storage {path!r}: no permission to create or write {exc.filename or path!r} "
            f"(running as {_user()}); choose a path you can write, or fix its permissions."
        ) from exc


# -- journal snapshots ----------------------------------------------------------------------------
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
        self._warned_glued: set[int] = set()

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        if threading.get_ident() in self._held:
            return  # the first read after the block reads what it and others wrote (together)
        yield from _optuna.read_journal_file(self, log_number_from, self._glued)

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


def _rdb(url: str, n_workers: int) -> optuna.storages.BaseStorage:
    if url.startswith("sqlite"):
        return _sqlite(url)
    # Each worker is its own process with its own pool: the worker loop and its heartbeat
    # thread hold one connection each; the overflow covers a recovery scan. No pool_pre_ping:
    # Optuna checks a connection out for every storage call, so a ping would double the round
    # trips; a connection found dead on use is invalidated and RetryingStorage retries the call.
    engine_kwargs: dict[str, Any] = {
        "pool_size": POOL_SIZE,
        "max_overflow": POOL_OVERFLOW,
        "pool_recycle": 1800,
    }
    target = engine_url(url)
    if target.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 5}
    elif target.startswith("mysql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 5}
    rdb = _optuna.rdb_storage(target, engine_kwargs)  # Optuna's RDBStorage (cheaper attributes)
    # Optuna never disposes the engine; close the pooled connections when the storage goes.
    weakref.finalize(rdb, rdb.engine.dispose)
    if n_workers > 1 and target.startswith("postgresql"):
        _check_connection_limit(rdb, url, n_workers)
    return RetryingStorage(_optuna.cached_storage(rdb), url)  # type: ignore[abstract]  # methods set below


def _sqlite(url: str) -> optuna.storages.BaseStorage:
    """SQLite with write-locking transactions.

    Optuna claims a waiting trial with ``SELECT ... FOR UPDATE``, which SQLite ignores, so two
    processes could both claim one trial (measured: up to 8 double claims in 560 trials with 8
    workers, docs/benchmarks.md). ``BEGIN IMMEDIATE`` takes SQLite's write lock when a
    transaction starts, which serialises claims (SQLAlchemy's documented pysqlite recipe).
    """

    # Imported here, not with the module: SQLAlchemy costs 0.3-0.45 s of CPU at import and only
    # the database URLs need it (Optuna's RDBStorage has imported it already by this line);
    # `tuneops show` on a journal file does not load it (issue 15).
    import sqlalchemy.event

    rdb = _optuna.rdb_storage(url, {"connect_args": {"timeout": 30}})  # (its cheaper reads)

    @sqlalchemy.event.listens_for(rdb.engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver must not issue its own BEGIN

    @sqlalchemy.event.listens_for(rdb.engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    rdb.engine.dispose()  # connections opened while creating the tables predate the hooks
    weakref.finalize(rdb, rdb.engine.dispose)
    return rdb


def _check_connection_limit(rdb: optuna.storages.RDBStorage, url: str, n_workers: int) -> None:

    with rdb.engine.connect() as conn:
        limit = int(conn.exec_driver_sql("SHOW max_connections").scalar() or 0)
    need = n_workers * POOL_SIZE + 1
    if need > limit:
        _log.warning(
            "storage %s allows %d connections, but %d workers may hold %d; use fewer workers or "
            "raise max_connections on the server",
            mask_url(url),
            limit,
            n_workers,
            need,
        )


def _redis(url: str) -> optuna.storages.BaseStorage:

    redis = require("redis", "redis", "Redis storage")
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    client.ping()
    _warn_if_volatile(client, url)
    client.close()

    return RetryingStorage(_optuna.journal_storage(_RedisJournal(url)), url)  # type: ignore[abstract]


_VOLATILE_SAID: set[str] = set()


def _warn_if_volatile(client: Any, url: str) -> None:
    """Say once per server when Redis keeps its data in memory only (no AOF, no RDB
    snapshots): a restart then loses every study, which nothing else would notice."""
    try:
        appendonly = client.config_get("appendonly").get("appendonly")
        save = client.config_get("save").get("save")
    except Exception:  # noqa: BLE001 - CONFIG refused (a managed Redis): nothing to tell
        return
    if appendonly == "no" and not save and mask_url(url) not in _VOLATILE_SAID:
        _VOLATILE_SAID.add(mask_url(url))
        _log.warning(
            "storage %s keeps its data in memory only (appendonly no, no save points): a "
            "restart of the Redis server loses every study in it. Turn on persistence "
            "(appendonly yes) for studies you keep.",
            mask_url(url),
        )


class _RedisJournal(JournalRedisBackend):
    """Optuna's Redis journal, which notices when the server lost the journal it was reading.

    A Redis restarted without its data (no persistence) or flushed starts numbering entries
    from 0 again; Optuna's reader, past them, read nothing and a run went on writing into a
    journal that no longer held its study, and reported a study that ``show`` could not find.
    """

    def read_logs(self, log_number_from: int) -> Any:
        # the newest entry's number read once, for the check and the read (one GET a sync)
        top = _optuna.redis_journal_top(self)
        if log_number_from > 0 and (top is None or top < log_number_from - 1):
            raise StorageUnavailable(
                f"storage {mask_url(self._url)!r} lost the study journal: the Redis server "
                f"holds {0 if top is None else top + 1} entries where this process "
                f"had read {log_number_from} (a restart without persistence, or a flush). "
                "The trials it held are gone; turn on persistence (appendonly yes) and run "
                "the spec again."
            )
        return _optuna.read_redis_journal(self, log_number_from, top)


# -- dropped connections ------------------------------------------------------------------------
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
