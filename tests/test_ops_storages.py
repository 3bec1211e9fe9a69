"""The registry on every kind of storage a study can live in: journal file, SQLite,
PostgreSQL and Redis (real servers on loopback from tests/servers.py; under CI a missing
server fails).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from servers import STORAGE_KINDS, postgres_server, redis_server, storage_url_for  # noqa: F401 - fixtures

from tuneops.errors import UsageError
from tuneops.export import save_model, sha256_file
from tuneops.ops.registry import Registry, list_models


@pytest.fixture(params=STORAGE_KINDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return storage_url_for(request.param, request, tmp_path, empty=True)


def _record(version: int, root: Path | None = None) -> dict:
    """A version; with ``root``, its artifact is a real (tiny) saved model, which promote and
    rollback verify."""
    artifact = {"path": "/nonexistent", "sha256": "sha256:0"}
    if root is not None:
        path = save_model({"k": version}, {}, root / f"v{version}")
        artifact = {"path": str(path), "sha256": sha256_file(path)}
    return {"version": version, "source": {"study": "s", "trial": version, "kind": "deploy"},
            "artifact": artifact, "params": {"k": version}}


def test_registry_contract(storage_url: str, tmp_path: Path) -> None:
    registry = Registry.open("churn-model", storage_url, create=True)
    assert "churn-model" in list_models(storage_url)
    for v in (1, 2, 3):
        registry.add_version(_record(v, tmp_path / "artifacts"))
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
    assert registry.load_model(1)[0] == {"k": 1}
    Path(registry.version(1)["artifact"]["path"]).unlink()
    with pytest.raises(UsageError, match=r"artifact '.*/v1/model.joblib' does not exist"):
        registry.load_model(1)


def _reserve(url: str, name: str, n: int, out) -> None:
    registry = Registry.open(name, url)
    out.put([registry.reserve_version() for _ in range(n)])


def test_version_numbers_stay_unique_with_writers_at_the_same_moment(storage_url: str) -> None:
    import multiprocessing
    import uuid

    name = f"race-{uuid.uuid4().hex[:8]}"  # a server's database outlives one test
    Registry.open(name, storage_url, create=True).add_version(_record(1))  # registered before reservations
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    writers = [ctx.Process(target=_reserve, args=(storage_url, name, 4, out)) for _ in range(3)]
    for w in writers:
        w.start()
    numbers = sorted(n for _ in writers for n in out.get(timeout=120))
    for w in writers:
        w.join(timeout=60)
    assert numbers == list(range(2, 14))  # 12 numbers, none twice, none the existing version 1
