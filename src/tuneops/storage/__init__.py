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

import importlib.util
import logging
import os
import re
import weakref
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalRedisBackend

from tuneops import _gc, _optuna
from tuneops._secrets import mask_secrets, mask_url, url_password
from tuneops.errors import MissingExtra, StorageUnavailable, StudyNotFound, require
from tuneops.storage.retry import RetryingStorage, _chain
from tuneops.storage.snapshots import (
    SNAPSHOT_SUFFIX,
    SnapshotJournalFile,
    refresh_snapshot,
    save_snapshot,
    snapshot_path,
)

__all__ = [
    "DEFAULT_STORAGE",
    "resolve_url",
    "mask_url",
    "mask_secrets",
    "storage_exists",
    "check_scheme",
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


def check_scheme(url: str, what: str = "storage") -> None:
    """Refuse a URL whose scheme tuneops does not know (``bogus://x``), naming ``what`` gave it:
    ``storage`` (a spec's field), ``storage (--storage)`` (the option).

    Raises:
        StorageUnavailable: the scheme is unknown; the message lists the forms tuneops takes.
    """
    scheme = _scheme(url)
    if scheme and scheme not in _KNOWN_SCHEMES:
        raise StorageUnavailable(
            f"{what}: expected a journal file path, sqlite:///FILE, "
            "postgresql://USER:PASS@HOST:PORT/DB, mysql://..., or redis://HOST:PORT/DB; received "
            f"{mask_url(url)!r} (unknown scheme {scheme!r})."
        )


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
    check_scheme(url)
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
    raise AssertionError(f"scheme {scheme!r} passed check_scheme but opens no storage")


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
        typo = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)//", url)
        base = typo.group(1).lower().split("+")[0] if typo else ""
        if base in _KNOWN_SCHEMES and base not in _FILE_SCHEMES:
            # read as a file path, it was printed whole, password and all
            shown = mask_url(url.replace("//", "://", 1)).replace("://", "//", 1)
            raise StorageUnavailable(
                f"storage {shown!r} is not a valid URL: the ':' after "
                f"'{typo.group(1) if typo else base}' is missing (it would be read as a file "
                f"path); expected {_FORMS[base]}."
            )
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
    # network: [USER[:PASSWORD]@]HOST[:PORT][/DB][?...]; the password may hold '/', and '@'
    # for redis-py, which takes the last '@'. SQLAlchemy ends the password at the first: the
    # rest became the host name, and the driver's error printed it.
    login, _, after = rest.rpartition("@")
    if "@" in login and base in _RDB_SCHEMES:
        raise StorageUnavailable(
            f"storage {mask_url(url)!r}: the password holds '@', which ends it for the database "
            "driver (the rest would be read as the host name); write '@' in a password as %40, "
            f"as in {_FORMS[base].replace('PASSWORD', 'pass%40word')}."
        )
    hostport = re.split(r"[/?]", after, maxsplit=1)[0]
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
            # Redis >= 6 to a client without a password (redis-py's HELLO, its first command)
            "must be called with the client already authenticated",
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
    if what.startswith("authentication failed") and not password:
        what = "authentication failed: the server asks for a password, and the URL has none"
        form = _FORMS.get(_scheme(url), "the documented form")
        todo = f"put the password in the URL, as in {form} (percent-encode '@', ':' and '/' in it)"
    return (
        f"storage {mask_url(url)!r} cannot be opened: {what} ({reason[:300].rstrip('.')}). "
        f"What to do: {todo}."
    )


def _journal_file(path: str) -> optuna.storages.BaseStorage:
    """A journal file (checked by :func:`_check_file`); created when it does not exist. Its
    snapshot, when valid, is restored first (see the module's docstring)."""
    backend: SnapshotJournalFile | None = None
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
                _raise_if_damaged(backend, exc)
                raise
            _log.debug("journal snapshot of %s not restored (%r): replaying the journal", path, exc)
            backend = SnapshotJournalFile(path, use_snapshot=False)
            try:
                return _optuna.open_journal(backend)
            except Exception as again:
                _raise_if_damaged(backend, again)
                raise
    except PermissionError as exc:
        raise StorageUnavailable(
            f"storage {path!r}: no permission to create or write {exc.filename or path!r} "
            f"(running as {_user()}); choose a path you can write, or fix its permissions."
        ) from exc



def _raise_if_damaged(backend: SnapshotJournalFile | None, exc: Exception) -> None:
    """Raise what :meth:`SnapshotJournalFile.damage` makes of ``exc``, if anything."""
    error = backend.damage(exc) if backend is not None else None
    if error is not None:
        raise error from exc


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


