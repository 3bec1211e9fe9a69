"""Execution backends: the name table, the Ray backend end to end on a local Ray instance."""

from __future__ import annotations

import os

import pytest
from conftest import IN_CI, ROOT, tiny_spec
from optuna.trial import TrialState

import tuneops
from tuneops import _study, runner
from tuneops.backends import BACKENDS, get_backend
from tuneops.backends.local import LocalBackend
from tuneops.errors import SpecError, StorageUnavailable, UsageError


def test_backend_table_resolves_names_once() -> None:
    assert set(BACKENDS) == {"local", "ray"}
    assert isinstance(get_backend("local"), LocalBackend)
    with pytest.raises(SpecError, match=r"search.backend: unknown backend 'dask'; expected one of local, ray"):
        get_backend("dask")


def test_address_needs_the_ray_backend(workdir) -> None:
    with pytest.raises(UsageError, match=r"--address .* names a Ray cluster.*--backend ray"):
        tuneops.run(tiny_spec(), address="ray://head:10001")


def test_ray_options_from_spec_resources() -> None:
    from tuneops.backends.ray import ray_options

    assert ray_options({}) == {"num_cpus": 1.0}
    assert ray_options({"cpu": 2, "gpu": 1, "memory": 1e9, "tpu_v4": 1}) == {
        "num_cpus": 2.0, "num_gpus": 1.0, "memory": 1_000_000_000, "resources": {"tpu_v4": 1.0},
    }


def test_ray_backend_refuses_a_memory_storage(workdir) -> None:
    spec = tiny_spec()
    spec["search"]["backend"] = "ray"
    with pytest.raises(StorageUnavailable, match="Ray backend needs a storage its workers share"):
        tuneops.run(spec, storage=":memory:")


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray instance for the session (its start-up is the expensive part)."""
    try:
        import ray
    except ImportError:
        if IN_CI:
            pytest.fail("ray is not installed (pip install 'tuneops[ray]'); CI needs it")
        pytest.skip("ray is not installed")
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    # address="local": a Ray instance of its own, even when a cluster already runs on this
    # machine (ray.init would join it, and refuses num_cpus then)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_ray_backend_end_to_end(local_ray, workdir) -> None:
    spec = tiny_spec(n_trials=4, n_workers=2)
    spec["search"].update(backend="ray", resources={"cpu": 1})
    result = tuneops.run(spec, storage="ray.journal")  # a relative path: made absolute for Ray

    trials = _study.counted(result.study.get_trials())  # leaves out any created beyond the budget, unrun
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    workers = [t.user_attrs["worker"] for t in trials]
    node = local_ray.get_runtime_context().get_node_id()
    assert all(w["node"] == node and w["id"].startswith(f"ray:{node[:8]}:") for w in workers)
    assert all(w["pid"] != os.getpid() for w in workers)  # ran in Ray's worker processes
    section = result.results["workers"]
    assert sum(r["complete"] for r in section["workers"]) == 4
    assert all(r["node"] == node for r in section["workers"])
    assert result.model_path is not None and result.model_path.exists()


@pytest.mark.ray
def test_ray_workers_get_a_dataframe_through_the_object_store(local_ray, workdir) -> None:
    # run(dataset=DataFrame) has no source a Ray task could read again: the data travels with the tasks
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    spec = tiny_spec(n_trials=3, n_workers=2, data={"source": "my-frame"})
    spec["search"].update(backend="ray", resources={"cpu": 1})
    result = tuneops.run(spec, dataset=frame, storage="ray-frame.journal")
    trials = _study.counted(result.study.get_trials())
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert all(t.user_attrs["worker"]["pid"] != os.getpid() for t in trials)
