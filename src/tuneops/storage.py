"""Storage URLs -> Optuna storages. The storage is the single source of truth.

* no URL: the embedded default, an Optuna journal file ``tuneops.journal`` in the working
  directory. A journal file is append-only and guarded by a lock file, so several local worker
  processes write to it without the "database is locked" failures SQLite gives under
  concurrent writers (see docs/benchmarks.md for the measurement).
* ``path/to/file.journal`` or ``journal:///abs/path``: a journal file at that path.
* ``sqlite:///file.db``, ``postgresql://...``, ``mysql://...``: Optuna's RDB storage.
* ``redis://host:port/db``: Optuna's journal storage on Redis.
* ``:memory:``: in-process only (tests, notebooks); one worker.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import optuna

from tuneops.errors import StorageUnavailable

__all__ = ["DEFAULT_STORAGE", "resolve_url", "mask_url", "get_storage"]

DEFAULT_STORAGE = "tuneops.journal"
_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")


def resolve_url(url: str | None) -> str:
    """The URL tuneops will use: the embedded default when ``url`` is empty."""
    return url or DEFAULT_STORAGE


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _scheme(url: str) -> str:
    match = re.match(r"^([a-z][a-z0-9+]*)://", url)
    return match.group(1).split("+")[0] if match else ""


def get_storage(url: str | None, *, n_workers: int = 1) -> optuna.storages.BaseStorage:
    """Open (creating if needed) the storage behind ``url``.

    Raises:
        StorageUnavailable: the URL's scheme is unknown, or the server cannot be reached; the
            message names the URL (password masked) and what to check.
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
    except StorageUnavailable:
        raise
    except Exception as exc:
        raise StorageUnavailable(_unreachable(url, exc)) from exc
    raise StorageUnavailable(
        f"storage: unknown scheme {scheme!r} in {mask_url(url)!r}; expected a journal file path, "
        "sqlite:///FILE, postgresql://USER:PASS@HOST/DB, mysql://..., or redis://HOST:PORT/DB."
    )


def _unreachable(url: str, exc: BaseException) -> str:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"storage {mask_url(url)!r} cannot be opened: {reason[:300]}. Check that the server is "
        "running and reachable, and that the user, password and database name are right."
    )


def _journal_file(path: str) -> optuna.storages.BaseStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    target = Path(path)
    if target.exists() and target.is_dir():
        raise StorageUnavailable(f"storage {path!r} is a directory; expected a journal file path.")
    if not target.parent.exists():
        raise StorageUnavailable(
            f"storage {path!r}: directory {str(target.parent)!r} does not exist; create it first."
        )
    return JournalStorage(JournalFileBackend(str(target)))


def _rdb(url: str, n_workers: int) -> optuna.storages.BaseStorage:
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if not url.startswith("sqlite"):
        # A worker process holds one connection at a time; leave headroom for the heartbeat.
        engine_kwargs.update(pool_size=2, max_overflow=2, pool_recycle=1800)
        if url.startswith(("postgresql", "postgres")):
            engine_kwargs["connect_args"] = {"connect_timeout": 5}
    else:
        engine_kwargs["connect_args"] = {"timeout": 30}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


def _redis(url: str) -> optuna.storages.BaseStorage:
    from tuneops.errors import require

    redis = require("redis", "redis", "Redis storage")
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    client.ping()
    from optuna.storages.journal import JournalRedisBackend, JournalStorage

    return JournalStorage(JournalRedisBackend(url))
