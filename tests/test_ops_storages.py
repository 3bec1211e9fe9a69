"""The registry on every kind of storage a study can live in: journal file, SQLite, Redis.

Redis is a real ``redis-server`` on loopback, started here; under CI a missing server fails.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import IN_CI
from tuneops.errors import UsageError
from tuneops.ops.registry import Registry, list_models


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; CI needs it (apt-get install redis-server)")
        pytest.skip("redis-server is not installed")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.terminate()
        pytest.fail(f"redis-server did not start on port {port}")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(params=["journal", "sqlite", "redis"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "journal":
        return str(tmp_path / "store.journal")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url = request.getfixturevalue("redis_url")
    import redis

    redis.Redis.from_url(url).flushdb()
    return url


def _record(version: int) -> dict:
    return {"version": version, "source": {"study": "s", "trial": version, "kind": "deploy"},
            "artifact": {"path": "/nonexistent", "sha256": "sha256:0"}, "params": {"k": version}}


def test_registry_contract(storage_url: str) -> None:
    registry = Registry.open("churn-model", storage_url, create=True)
    assert list_models(storage_url) == ["churn-model"]
    for v in (1, 2, 3):
        registry.add_version(_record(v))
    registry.promote(1)
    registry.promote(3, "better")
    registry.record("monitor", version=3, decision="ok", reasons=["fine"])
    # A second handle (another machine) sees the same state through the storage.
    other = Registry.open(None, storage_url)
    assert other.champion() == 3
    assert [v["version"] for v in other.versions()] == [1, 2, 3]
    assert [e["kind"] for e in other.events()] == ["register"] * 3 + ["promote", "promote", "monitor"]
    assert other.events("promote")[-1]["reason"] == "better"
    event = other.rollback()
    assert (event["version"], event["previous"]) == (1, 3)
    assert registry.champion() == 1
    with pytest.raises(UsageError, match="has no version 7; versions: 1, 2, 3"):
        registry.rollback(to=7)
    with pytest.raises(UsageError, match="artifact '/nonexistent' does not exist"):
        registry.load_model(1)
