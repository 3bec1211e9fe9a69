"""Real PostgreSQL 15 and redis-server on loopback, started per test session.

Each pytest-xdist worker process starts its own servers on free ports in its own temporary
directory, so ``-n 2`` works. PostgreSQL runs as the ``postgres`` user when the tests run as
root (it refuses to run as root). When a server cannot start the tests that need it skip, except
under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import IN_CI

PG_BIN = Path(os.environ.get("TUNEOPS_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unavailable(what: str) -> None:
    """Skip, or under CI fail: a test that claims a real server never runs without it."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: a missing server fails the test)")
    pytest.skip(what)


class PostgresServer:
    """``initdb`` + ``pg_ctl start`` in a temporary directory; trust auth on 127.0.0.1."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tuneops-pg-"))
        self.data = self.root / "data"
        self.as_root = os.geteuid() == 0
        self.prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=timeout)

    def start(self) -> PostgresServer:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")
        self.pg_ctl("start", "-w", "-t", "60", "-l", str(self.root / "log"), "-o", self.options)
        return self

    @property
    def options(self) -> str:
        return (f"-p {self.port} -k {self.root} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=200")

    def database(self, name: str) -> str:
        """The URL of a new, empty database ``name`` of this server (a test's database of its
        own: studies of the same name in other tests are not seen)."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def pg_ctl(self, *args: str) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args)

    def restart_after(self, delay_s: float) -> None:
        """Stop now; start again after ``delay_s`` (in the background)."""
        self.pg_ctl("stop", "-m", "fast", "-w")
        cmd = [*self.prefix, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "start", "-w", "-l",
               str(self.root / "log"), "-o", self.options]
        self._restarter = subprocess.Popen(["sh", "-c", f"sleep {delay_s}; exec \"$@\"", "sh", *cmd],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_ready(self, timeout_s: float = 30) -> None:
        if getattr(self, "_restarter", None) is not None:
            self._restarter.wait(timeout=timeout_s)
            self._restarter = None
        end = time.time() + timeout_s
        while time.time() < end:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)

    def stop(self) -> None:
        try:
            self.pg_ctl("stop", "-m", "immediate", "-w")
        except Exception:  # noqa: BLE001 - already stopped
            pass
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """``redis-server`` in the foreground on a free port, with an append-only file (what a
    study that must survive a restart needs; tuneops warns without one)."""

    def __init__(self, password: str | None = None) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tuneops-redis-"))
        self.password = password  # requirepass: clients must authenticate
        login = f":{password}@" if password else ""
        self.url = f"redis://{login}127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        if exe is None:
            raise FileNotFoundError("redis-server is not installed (scripts/test.sh installs it)")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--dir", str(self.root), "--maxclients", "1000",
             *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        end = time.time() + 20
        while time.time() < end:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"redis-server did not listen on port {self.port} within 20 s")

    def database(self, number: int) -> tuple[str, Any]:
        """The URL of database ``number`` of this server, emptied, and a client of it (a test's
        database of its own)."""
        import redis

        url = self.url.rsplit("/", 1)[0] + f"/{number}"
        client = redis.Redis.from_url(url)
        client.flushdb()
        return url, client

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """A running PostgreSQL 15 for this test session (this xdist worker)."""
    if not (PG_BIN / "initdb").exists():
        unavailable(f"PostgreSQL binaries not found in {PG_BIN}")
    server = PostgresServer()
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - reported as skip/fail below
        log = server.root / "log"
        detail = log.read_text()[-500:] if log.exists() else getattr(exc, "stderr", b"") or exc
        server.stop()
        unavailable(f"PostgreSQL could not start: {detail}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server():
    """A running redis-server for this test session (this xdist worker)."""
    server = RedisServer()
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - reported as skip/fail below
        unavailable(f"redis-server could not start: {exc}")
    yield server
    server.stop()


STORAGE_KINDS = [
    "journal",
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
]


def storage_url_for(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, *, empty: bool = False
) -> str:
    """A fresh storage URL of ``kind``: a file in ``tmp_path``, or the session's server
    (``empty``: its Redis database emptied first, for tests that list every study)."""
    if kind == "journal":
        return str(tmp_path / "study.journal")
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    if kind == "postgresql":
        return request.getfixturevalue("postgres_server").url
    if kind == "redis":
        url = request.getfixturevalue("redis_server").url
        if empty:
            import redis

            redis.Redis.from_url(url).flushdb()
        return url
    raise ValueError(kind)
