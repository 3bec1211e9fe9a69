"""Execution backends: the name table, the Ray backend end to end on a local Ray instance."""

from __future__ import annotations

import os
import signal
import threading
import time

import optuna
import pytest
import yaml
from conftest import IN_CI, ROOT, tiny_spec
from optuna.trial import TrialState

import tuneops
from tuneops import _study, runner
from tuneops.backends import BACKENDS, get_backend
from tuneops.backends.local import LocalBackend
from tuneops.errors import SpecError, StorageUnavailable, UsageError
from tuneops.storage import get_storage


def test_backend_table_resolves_names_once() -> None:
    assert set(BACKENDS) == {"local", "ray"}
    assert isinstance(get_backend("local"), LocalBackend)
    with pytest.raises(SpecError, match=r"search.backend: unknown backend 'dask'; expected one of local, ray"):
        get_backend("dask")


def test_address_needs_the_ray_backend(workdir) -> None:
    with pytest.raises(
        UsageError, match=r"address \(--address\): .* names a Ray cluster.*--backend ray"
    ):
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


def _require_ray():
    """The ray module; outside CI a test without it is skipped, under CI it fails."""
    try:
        import ray
    except ImportError:
        if IN_CI:
            pytest.fail("ray is not installed (pip install 'tuneops[ray]'); CI needs it")
        pytest.skip("ray is not installed")
    return ray


def _trials_so_far(storage: str, study: str) -> list:
    """The study's trials as a running run has written them ([] before it exists)."""
    try:
        return optuna.load_study(study_name=study, storage=get_storage(storage)).get_trials()
    except (KeyError, OSError, ValueError):
        return []


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray instance for the session (its start-up is the expensive part)."""
    ray = _require_ray()
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


def test_a_ray_cluster_that_does_not_answer_is_refused_before_anything_is_written(workdir) -> None:
    """ray.init retried for over 5 minutes, and the study had already been written."""
    from servers import free_port

    spec = tiny_spec(storage=str(workdir / "ray-none.journal"))
    spec["search"]["backend"] = "ray"
    started = time.monotonic()
    for address in (f"127.0.0.1:{free_port()}", f"ray://127.0.0.1:{free_port()}"):
        with pytest.raises(
            UsageError, match=r"address \(--address\): no Ray cluster answers at .*ray start --head"
        ):
            tuneops.run(spec, address=address)
    with pytest.raises(UsageError, match=r"address \(--address\): expected ray://HOST:PORT"):
        tuneops.run(spec, address="head-node")
    assert time.monotonic() - started < 30
    assert not (workdir / "ray-none.journal").exists()


@pytest.fixture
def no_ray_around(tmp_path, monkeypatch):
    """Ray's own lookup of ``address="auto"`` sees no cluster: no RAY_ADDRESS, its record of
    the latest `ray start` (``<RAY_TMPDIR>/ray/ray_current_cluster``) in an empty temp dir, and
    no raylet process (Ray's scan of the processes would find the suite's local Ray)."""
    _require_ray()
    from ray._private import services
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "raytmp"))
    (tmp_path / "raytmp" / "ray").mkdir(parents=True)
    def no_raylet() -> frozenset[str]:
        return frozenset()

    no_raylet.cache_clear = lambda: None  # type: ignore[attr-defined] # ray.init calls it
    monkeypatch.setattr(services, "find_gcs_addresses", no_raylet)
    return tmp_path / "raytmp" / "ray" / "ray_current_cluster"


def test_address_auto_without_a_ray_cluster_is_refused_before_anything_is_written(
    workdir, no_ray_around, monkeypatch, cli
) -> None:
    """`--address auto` with no cluster printed "started" and then failed in ray.init."""
    from servers import free_port

    spec = tiny_spec(storage=str(workdir / "ray-auto.journal"))
    spec["search"]["backend"] = "ray"
    with pytest.raises(
        UsageError, match=r"address \(--address\): 'auto': no Ray cluster found.*ray start --head"
    ):
        tuneops.run(spec, address="auto")
    # A record left by a cluster that is gone (killed, not `ray stop`ped), and RAY_ADDRESS,
    # which Ray reads first: the address they name is checked as a given one is.
    no_ray_around.write_text(f"127.0.0.1:{free_port()}")
    with pytest.raises(
        UsageError,
        match=r"address \(--address\): 'auto': .*ray_current_cluster names 127\.0\.0\.1:\d+, "
        r"but no Ray cluster answers there",
    ):
        tuneops.run(spec, address="auto")
    monkeypatch.setenv("RAY_ADDRESS", f"ray://127.0.0.1:{free_port()}")
    with pytest.raises(
        UsageError,
        match=r"address \(--address\): 'auto': RAY_ADDRESS names ray://127\.0\.0\.1:\d+, but "
        r"no Ray cluster answers there",
    ):
        tuneops.run(spec, address="auto")
    assert not (workdir / "ray-auto.journal").exists()
    monkeypatch.delenv("RAY_ADDRESS")
    no_ray_around.unlink()
    spec_file = workdir / "auto.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    code, out, err = cli("run", spec_file, "--backend", "ray", "--address", "auto", "--no-progress")
    assert code == 2 and "no Ray cluster found" in err and "started" not in out + err
    assert not (workdir / "ray-auto.journal").exists()


@pytest.mark.ray
def test_address_auto_finds_the_cluster_ray_start_recorded(local_ray, no_ray_around) -> None:
    from tuneops.backends.ray import RayBackend

    no_ray_around.write_text(local_ray.get_runtime_context().gcs_address)
    RayBackend(address="auto").prepare()  # answers: no error


@pytest.mark.ray
def test_a_killed_last_ray_worker_is_replaced_and_the_budget_is_spent(local_ray, workdir) -> None:
    """With one worker, a Ray task SIGKILLed in the last trial left no task to run its retry:
    the run ended a trial short, exit 0, saying the trial was queued again."""
    storage = str(workdir / "ray-kill.journal")
    spec = tiny_spec(n_trials=3, n_workers=1, data={"source": "pmlb:phoneme"}, storage=storage,
                     model={"family": "random_forest", "space": {"n_estimators": 300}})
    spec["search"].update(backend="ray", resources={"cpu": 1})
    killed: list[int] = []

    def kill_the_first_running_trials_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            trials = _trials_so_far(storage, "tiny")
            if sum(t.state == TrialState.COMPLETE for t in trials) < 2:
                time.sleep(0.2)
                continue  # the last trial of the budget: no other task is left to retry it
            for t in (t for t in trials if t.state == TrialState.RUNNING):
                worker = t.user_attrs.get("worker") or {}
                if str(worker.get("id", "")).startswith("ray:") and worker.get("pid"):
                    os.kill(int(worker["pid"]), signal.SIGKILL)
                    killed.append(t.number)
                    return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_the_first_running_trials_worker)
    killer.start()
    result = tuneops.run(spec)
    killer.join()
    assert killed, "no trial was seen running"
    trials = result.study.get_trials()
    counted = _study.counted(trials)
    assert [t.state for t in counted] == [TrialState.COMPLETE] * 3
    victim = trials[killed[0]]
    assert victim.state == TrialState.FAIL and "its Ray worker was lost" in str(victim.user_attrs)
    assert result.results["n_trials"]["complete"] == 3


def _kill_a_ray_worker_mid_trial(storage: str, study: str, killed: list[int]) -> None:
    """SIGKILL the Ray worker of the first trial seen running for half a second."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not killed:
        trials = _trials_so_far(storage, study)
        for t in trials:
            worker = t.user_attrs.get("worker") or {}
            if (t.state == TrialState.RUNNING and str(worker.get("id", "")).startswith("ray:")
                    and time.time() - t.datetime_start.timestamp() > 0.5):
                os.kill(int(worker["pid"]), signal.SIGKILL)
                killed.append(t.number)
                return
        time.sleep(0.2)


@pytest.mark.ray
def test_a_lost_ray_worker_leaves_stdout_to_the_results(workdir) -> None:
    """`tuneops run --backend ray --json` of a run whose Ray worker was killed printed Ray's
    "(raylet) A worker died ..." line on stdout before the JSON document (no JSON reader could
    read it), and Ray's own log lines ("Started a local Ray instance.") on stderr without
    --verbose, which keeps other libraries' logs out."""
    import json
    import subprocess
    import sys

    _require_ray()
    storage = str(workdir / "ray-out.journal")
    spec = tiny_spec(n_trials=2, n_workers=1, data={"source": "pmlb:phoneme"}, storage=storage,
                     model={"family": "random_forest", "space": {"n_estimators": 300}})
    spec["search"]["backend"] = "ray"
    (workdir / "spec.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuneops", "run", "spec.yaml", "--json", "--no-report"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    killed: list[int] = []
    killer = threading.Thread(target=_kill_a_ray_worker_mid_trial, args=(storage, "tiny", killed))
    killer.start()
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
        killer.join()
    assert killed, f"no trial was seen running; stderr: {err[-2000:]}"
    assert proc.returncode == 0, err[-2000:]
    assert "(raylet)" not in out
    document = json.loads(out)  # stdout holds the results and nothing else
    assert document["n_trials"]["complete"] == 2 and document["n_trials"]["abandoned"] == 1
    assert "Started a local Ray instance" not in err


@pytest.mark.ray
def test_a_lost_ray_workers_trial_another_worker_gave_back_is_counted(local_ray, workdir,
                                                                       caplog) -> None:
    """Two Ray workers, one SIGKILLed mid-trial: the other found its dead pid and queued its
    trial again, and the run then said "1 worker(s) lost (WorkerCrashedError); 0 trial(s) they
    left running queued again"."""
    import logging

    storage = str(workdir / "ray-two.journal")
    spec = tiny_spec(n_trials=4, n_workers=2, data={"source": "pmlb:phoneme"}, storage=storage,
                     model={"family": "random_forest", "space": {"n_estimators": 300}})
    spec["search"].update(backend="ray", resources={"cpu": 1})
    killed: list[int] = []
    killer = threading.Thread(target=_kill_a_ray_worker_mid_trial, args=(storage, "tiny", killed))
    killer.start()
    with caplog.at_level(logging.WARNING, logger="tuneops"):
        result = tuneops.run(spec)
    killer.join()
    assert killed, "no trial was seen running"
    trials = result.study.get_trials()
    given_back = [t for t in trials if _study.is_abandoned(t) and not _study.is_retired(t)]
    assert [t.number for t in given_back] == killed
    assert [t.state for t in _study.counted(trials)] == [TrialState.COMPLETE] * 4
    said = [r.getMessage() for r in caplog.records if "worker(s) lost" in r.getMessage()]
    assert said and said[0].endswith("; 1 trial(s) they left running queued again"), said


@pytest.mark.ray
def test_ctrl_c_on_a_ray_run_names_the_trials_its_tasks_gave_back(local_ray, workdir) -> None:
    """The run's own process runs no trial on Ray: Ctrl-C said "Stopped by SIGINT: no trial
    was running" while both of its tasks had abandoned and queued again a trial."""
    import _thread

    storage = str(workdir / "ray-int.journal")
    spec = tiny_spec(n_trials=6, n_workers=2, data={"source": "pmlb:phoneme"}, storage=storage,
                     model={"family": "random_forest", "space": {"n_estimators": 300}})
    spec["search"].update(backend="ray", resources={"cpu": 1})
    seen: list[int] = []

    def interrupt_once_a_trial_runs() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            trials = _trials_so_far(storage, "tiny")
            running = [t for t in trials if t.state == TrialState.RUNNING
                       and str((t.user_attrs.get("worker") or {}).get("id", "")).startswith("ray:")]
            if running:
                seen.extend(t.number for t in running)
                _thread.interrupt_main()  # Ctrl-C
                return
            time.sleep(0.2)

    interrupter = threading.Thread(target=interrupt_once_a_trial_runs)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt) as info:
        tuneops.run(spec)
    interrupter.join()
    assert seen, "no trial was seen running"
    trials = optuna.load_study(study_name="tiny", storage=get_storage(storage)).get_trials()
    given_back = [t.number for t in trials
                  if str(t.user_attrs.get("abandoned", "")).startswith("interrupted")]
    assert given_back and set(seen) <= set(given_back)
    assert sorted(runner.Interrupted.of(info.value).abandoned) == sorted(given_back)


def test_a_port_that_is_not_ray_is_refused_before_anything_is_written(workdir) -> None:
    """An HTTP server passed the bare TCP check, and ray.init then waited on it for more than
    ten minutes, deaf to Ctrl-C, after the study was written (audit of today's features)."""
    import http.server

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    spec = tiny_spec(storage=str(workdir / "not-ray.journal"))
    spec["search"]["backend"] = "ray"
    started = time.monotonic()
    try:
        with pytest.raises(UsageError, match=r"something listens at .*, but not Ray"):
            tuneops.run(spec, address=f"127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert time.monotonic() - started < 20
    assert not (workdir / "not-ray.journal").exists()


@pytest.mark.ray
def test_a_ray_clusters_gcs_answers_the_protocol_check(local_ray) -> None:
    from tuneops.backends.ray import _grpc_answer

    host, port = local_ray.get_runtime_context().gcs_address.rsplit(":", 1)
    assert _grpc_answer(host, int(port)) is True


def test_without_an_address_ray_starts_a_local_instance_unless_ray_address_is_set(monkeypatch):
    """Ray's default joins the cluster the latest `ray start` recorded, and failed after
    "started" when that record outlived its cluster: no --address means a local Ray of its own
    (the docs' promise), except under RAY_ADDRESS (a Ray job's driver)."""
    ray = _require_ray()
    from tuneops.backends.ray import RayBackend

    asked: list = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda address=None, **kwargs: asked.append(address))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert RayBackend()._connect() is True and asked == ["local"]
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    RayBackend()._connect()
    assert asked[-1] is None  # Ray's own lookup reads RAY_ADDRESS
    RayBackend(address="auto")._connect()
    assert asked[-1] == "auto"
