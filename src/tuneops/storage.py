"""Storage URLs -> Optuna storages. The storage is the single source of truth.

* no URL: the embedded default, an Optuna journal file ``tuneops.journal`` in the working
  directory. A journal file is append-only and guarded by a lock file, so several local worker
  processes write to it without the "database is locked" failures SQLite gives under
  concurrent writers (see docs/benchmarks.md for the measurement).
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
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend, JournalStorage

from tuneops import _optuna
from tuneops.errors import MissingExtra, StorageUnavailable, require

__all__ = ["DEFAULT_STORAGE", "resolve_url", "mask_url", "get_storage", "RetryingStorage", "engine_url"]

_log = logging.getLogger("tuneops")

DEFAULT_STORAGE = "tuneops.journal"
_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")
# One connection for the worker loop, one for its heartbeat thread (tuneops.heartbeat).
POOL_SIZE = 2
POOL_OVERFLOW = 2


def resolve_url(url: str | None) -> str:
    """The URL tuneops will use: the embedded default when ``url`` is empty."""
    return url or DEFAULT_STORAGE


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs).

    >>> mask_url("postgresql://ann:s3cret@db:5432/tune")
    'postgresql://ann:***@db:5432/tune'
    """
    # Greedy to the last "@": a password may hold an unescaped "@".
    return re.sub(r"(://[^:/@]*:).*@", r"\1***@", url)


def _password(url: str) -> str | None:
    match = re.search(r"://[^:/@]*:(.*)@", url)
    return match.group(1) if match and match.group(1) else None


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


def get_storage(url: str | None, *, n_workers: int = 1) -> optuna.storages.BaseStorage:
    """Open (creating if needed) the storage behind ``url``.

    Args:
        url: a storage URL or journal file path; None for the embedded default.
        n_workers: how many workers will share the storage (checked against the server's
            connection limit for PostgreSQL; ``:memory:`` allows one).

    Raises:
        StorageUnavailable: the URL's scheme is unknown, or the server cannot be reached or
            refuses the login; the message names the URL (password masked) and what to check.
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
    scheme = _scheme(url)
    try:
        if scheme in ("", "journal", "file"):
            return _journal_file(url.split("://", 1)[1] if scheme else url)
        if scheme in _RDB_SCHEMES:
            return _rdb(url, n_workers)
        if scheme in ("redis", "rediss"):
            return _redis(url)
    except (StorageUnavailable, MissingExtra):
        raise
    except Exception as exc:
        raise StorageUnavailable(_unreachable(url, exc)) from exc
    raise StorageUnavailable(
        f"storage: unknown scheme {scheme!r} in {mask_url(url)!r}; expected a journal file path, "
        "sqlite:///FILE, postgresql://USER:PASS@HOST:PORT/DB, mysql://..., or redis://HOST:PORT/DB."
    )


_HINTS = (
    (("password authentication failed", "authentication failed", "access denied", "wrongpass",
      "invalid username-password", "noauth"),
     "check the user name and password in the URL"),
    (("does not exist", "unknown database"),
     "check the database name in the URL, or create the database first (for PostgreSQL: createdb NAME)"),
    (("could not translate host name", "name or service not known", "nodename nor servname",
      "temporary failure in name resolution", "unknown host"),
     "check the host name in the URL"),
    (("connection refused", "timeout", "timed out", "could not connect", "error 111",
      "connect call failed", "no route to host", "network is unreachable"),
     "check that the server is running and listens on that host and port, and that this machine "
     "can reach it (firewall, listen_addresses / bind)"),
    (("too many clients", "too many connections", "max number of clients"),
     "the server has no free connections: use fewer workers or raise the server's connection "
     "limit (PostgreSQL: max_connections)"),
)


def _unreachable(url: str, exc: BaseException) -> str:
    texts = []
    cause: BaseException | None = exc
    while cause is not None and len(texts) < 5:
        texts.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    text = " ".join(texts)
    reason = next((line.strip() for t in texts for line in t.splitlines() if line.strip()), type(exc).__name__)
    password = _password(url)
    if password:
        reason = reason.replace(password, "***")
    lowered = text.lower()
    hint = next((h for keys, h in _HINTS if any(k in lowered for k in keys)),
                "check that the server is running and reachable, and that the user, password and "
                "database name in the URL are right")
    return f"storage {mask_url(url)!r} cannot be opened: {reason[:300].rstrip('.')}. What to check: {hint}."


def _journal_file(path: str) -> optuna.storages.BaseStorage:

    target = Path(path)
    if target.exists() and target.is_dir():
        raise StorageUnavailable(f"storage {path!r} is a directory; expected a journal file path.")
    if not target.parent.exists():
        raise StorageUnavailable(
            f"storage {path!r}: directory {str(target.parent)!r} does not exist; create it first."
        )
    return JournalStorage(JournalFileBackend(str(target)))


def _rdb(url: str, n_workers: int) -> optuna.storages.BaseStorage:
    if url.startswith("sqlite"):
        return _sqlite(url)
    # Each worker is its own process with its own pool: the worker loop and its heartbeat
    # thread hold one connection each; the overflow covers a recovery scan. No pool_pre_ping:
    # Optuna checks a connection out for every storage call, so a ping would double the round
    # trips; a connection found dead on use is invalidated and RetryingStorage retries the call.
    engine_kwargs: dict[str, Any] = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW,
                                     "pool_recycle": 1800}
    target = engine_url(url)
    if target.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 5}
    elif target.startswith("mysql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 5}
    rdb = optuna.storages.RDBStorage(target, engine_kwargs=engine_kwargs)
    # Optuna never disposes the engine; close the pooled connections when the storage goes.
    weakref.finalize(rdb, rdb.engine.dispose)
    if n_workers > 1 and target.startswith("postgresql"):
        _check_connection_limit(rdb, url, n_workers)
    return RetryingStorage(_optuna.cached_storage(rdb), url)


def _sqlite(url: str) -> optuna.storages.BaseStorage:
    """SQLite with write-locking transactions.

    Optuna claims a waiting trial with ``SELECT ... FOR UPDATE``, which SQLite ignores, so two
    processes could both claim one trial (measured: up to 8 double claims in 560 trials with 8
    workers, docs/benchmarks.md). ``BEGIN IMMEDIATE`` takes SQLite's write lock when a
    transaction starts, which serialises claims (SQLAlchemy's documented pysqlite recipe).
    """

    rdb = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 30}})

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
        limit = int(conn.execute(sqlalchemy.text("SHOW max_connections")).scalar())
    need = n_workers * POOL_SIZE + 1
    if need > limit:
        _log.warning(
            "storage %s allows %d connections, but %d workers may hold %d; use fewer workers or "
            "raise max_connections on the server", mask_url(url), limit, n_workers, need,
        )


def _redis(url: str) -> optuna.storages.BaseStorage:

    redis = require("redis", "redis", "Redis storage")
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    client.ping()
    client.close()

    return RetryingStorage(JournalStorage(JournalRedisBackend(url)), url)


# -- dropped connections ------------------------------------------------------------------------
def _transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a lost or refused connection, not a bad request."""
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 6:
        module = type(cause).__module__
        name = type(cause).__name__
        if module.startswith("sqlalchemy") and name in ("OperationalError", "InterfaceError", "DisconnectionError"):
            return True
        if getattr(cause, "connection_invalidated", False):
            return True
        if module.startswith("redis") and name in ("ConnectionError", "TimeoutError", "BusyLoadingError"):
            return True
        if isinstance(cause, (ConnectionError, TimeoutError)):
            return True
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return False


class RetryingStorage(optuna.storages.BaseStorage):
    """Delegates to ``inner``; retries an operation whose connection dropped, with backoff.

    Only connection failures are retried (a refused or reset connection, a server restart, a
    timeout); every other error, and the last failure, reaches the caller. Thread-safe as the
    inner storage is. Attributes the base class does not define are read from ``inner``.
    """

    def __init__(self, inner: optuna.storages.BaseStorage, url: str, *, attempts: int = 7,
                 first_delay_s: float = 0.5) -> None:
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
        for attempt in range(1, self.attempts + 1):
            try:
                return getattr(self.inner, method)(*args, **kwargs)
            except Exception as exc:
                if attempt == self.attempts or not _transient(exc):
                    raise
                _log.warning(
                    "storage %s: connection lost during %s (%s); retrying in %.1f s (%d/%d)",
                    mask_url(self.url), method, type(exc).__name__, delay, attempt, self.attempts - 1,
                )
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
