"""The registry when a process is killed between two of its writes (SIGKILL, the OOM killer, a
lost node: no handler runs). Each test stops a command at a chosen write, as a kill would, and
runs the same command again in a new registry object, as a new process would: it must leave
what one uninterrupted run leaves. Each runs on the embedded journal file, PostgreSQL and Redis
(real servers on loopback from tests/servers.py; under CI a missing server fails)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from _ops_helpers import logistic, register
from conftest import tiny_spec
from servers import postgres_server, redis_server  # noqa: F401 - fixtures

import tuneops.ops.registry as registry_module
from tuneops import _optuna, tuning
from tuneops.ops.live import _champion_since
from tuneops.ops.registry import Registry, deploy


class Killed(BaseException):
    """A kill: no ``except Exception`` (nor ``except KeyboardInterrupt``) handles it."""


@contextlib.contextmanager
def killed_at(kind: str, key: str = "tuneops:event:") -> Iterator[None]:
    """The block is stopped just before it writes its first event of ``kind`` (or its first
    value under a key that starts with ``key``, when ``kind`` is empty)."""
    real = optuna.Study.set_user_attr

    def set_user_attr(self: optuna.Study, name: str, value: Any) -> None:
        if name.startswith(key) and (not kind or value.get("kind") == kind):
            raise Killed(name)
        real(self, name, value)

    with pytest.MonkeyPatch.context() as mp, pytest.raises(Killed):
        mp.setattr(optuna.Study, "set_user_attr", set_user_attr)
        # what a stop by a signal removes, a kill leaves
        mp.setattr(registry_module, "_remove_unregistered", lambda *args: None)
        yield


def kinds(registry: Registry) -> list[str]:
    return [e["kind"] for e in registry.events()]


@pytest.fixture(
    params=[
        "journal",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def store(request: pytest.FixtureRequest, workdir: Path) -> str | None:
    """Where the registry lives: None (the embedded journal file in the test's directory), or
    an empty database of the session's PostgreSQL or Redis server."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_server").database(f"crash_{uuid.uuid4().hex[:12]}")
    if request.param == "redis":
        return request.getfixturevalue("redis_server").database(0)[0]
    return None


def on(store: str | None, **spec: Any) -> dict[str, Any]:
    """The tiny spec, its study in ``store``."""
    return tiny_spec(**spec, **({"storage": store} if store else {}))


@pytest.fixture
def three(workdir: Path, store: str | None) -> Registry:
    """Versions 1, 2, 3 promoted in turn: champion 3, previous champions 1 then 2."""
    registry = Registry.open("iris", store, create=True)
    for c in (0.01, 0.1, 1.0):
        register(registry, logistic(c), workdir / "art", promote=True)
    return registry


def test_a_rollback_killed_before_its_event_is_finished_not_made_twice(three) -> None:
    with killed_at("rollback"):
        three.rollback()
    assert three.champion() == 2 and "rollback" not in kinds(three)
    again = Registry.open("iris", three.storage_url)
    event = again.rollback()  # the same command: it was rolled back to 2 once, not on to 1
    assert (event["kind"], event["version"], event["previous"]) == ("rollback", 2, 3)
    assert again.champion() == 2 and again.champion_history() == [1]
    assert kinds(again).count("rollback") == 1
    # finished: the next rollback is a new one
    assert again.rollback()["version"] == 1 and kinds(again).count("rollback") == 2


def test_a_promotion_killed_before_its_event_is_finished_by_the_same_command(
    three,
) -> None:
    """Champion 3, version 2 served as a shadow challenger, then promoted and killed between
    the champion record and the rest: the same command retires the challenger and records the
    promotion (live monitoring judges a champion's probation by it)."""
    three.set_challenger(2, "shadow")
    with killed_at("", key="tuneops:challenger"):  # before the challenger is retired
        three.promote(2)
    assert three.champion() == 2 and three.challenger()["version"] == 2
    again = Registry.open("iris", three.storage_url)
    event = again.promote(2)  # not "version 2 is already the champion"
    assert (event["kind"], event["version"], event["previous"]) == ("promote", 2, 3)
    assert again.challenger() is None
    assert kinds(again)[-2:] == ["promote", "challenger"]  # in the order a whole run writes
    assert _champion_since(again, 2)[1] is True  # a promotion: on probation
    with pytest.raises(Exception, match="already the champion"):
        again.promote(2)


@pytest.mark.parametrize(
    ("kind", "key"),
    [("", "tuneops:version:"), ("register", "tuneops:event:"), ("promote", "tuneops:event:")],
)
def test_a_deploy_killed_between_its_writes_is_finished_by_the_same_deploy(
    workdir, store, kind, key
) -> None:
    """Killed after it saved its version's files and before their record, after the record and
    before its ``register`` event, or after the champion record and before the ``promote``
    event: the same deploy leaves one version, the champion, with both events and no other
    directory (it registered a second version beside an artifact no version named, or left no
    ``register``)."""
    tuning.run(on(store, n_trials=2))
    with killed_at(kind, key=key):
        deploy("tiny", storage=store)
    record = deploy("tiny", storage=store)
    registry = Registry.open("tiny", store)
    assert record["version"] == 1 and record["resumed"] and record["promoted"]
    assert [v["version"] for v in registry.versions()] == [1] and registry.champion() == 1
    assert kinds(registry) == ["register", "promote"]
    assert sorted(p.name for p in Path("tuneops-out/registry/tiny").iterdir()) == ["v1"]


def test_a_promotion_killed_after_it_retired_the_challenger_records_both_events(three) -> None:
    """Killed after the challenger's state was cleared and before its event: the same command
    records the promotion and the challenger's event, in the order a whole run writes them."""
    three.set_challenger(2, "canary", 0.2)
    with killed_at("challenger"):
        three.promote(2)
    assert three.champion() == 2 and three.challenger() is None
    again = Registry.open("iris", three.storage_url)
    again.promote(2)
    assert kinds(again)[-3:] == ["challenger", "promote", "challenger"]
    assert again.events("challenger")[-1]["previous"] == 2


def test_a_challenger_cleared_and_killed_before_its_event_is_not_cleared_twice(three) -> None:
    three.set_challenger(2, "shadow")
    with killed_at("challenger"):
        three.clear_challenger()
    again = Registry.open("iris", three.storage_url)
    event = again.clear_challenger()
    assert event["previous"] == 2 and again.challenger() is None
    assert [e.get("previous") for e in again.events("challenger")] == [None, 2]


def test_two_identical_deploys_at_the_same_moment_register_one_version(
    workdir, store, caplog
) -> None:
    """Two deploys of the same study, trial and data released together (threads, each with
    its own storage objects, as two processes): both found nothing to resume and registered
    and promoted v1 and v2. Now one registers; the other waits for it and reports its
    version."""
    import threading

    tuning.run(on(store, n_trials=2))
    caplog.set_level("INFO", logger="tuneops.status")
    start, answers = threading.Barrier(2), []

    def run() -> None:
        start.wait()
        answers.append(deploy("tiny", storage=store))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    registry = Registry.open("tiny", store)
    assert [v["version"] for v in registry.versions()] == [1]
    assert kinds(registry) == ["register", "promote"] and registry.champion() == 1
    assert [(a["version"], a["promoted"]) for a in answers] == [(1, True), (1, True)]
    # the other waited for the one that registered, or (the machine busy) came once it had
    # finished and found its trial the champion already: registered nothing either way
    (second,) = [a for a in answers if a.get("deployed_by") or a.get("already")]
    if second.get("deployed_by"):
        assert second["deployed_by"].endswith(f":{os.getpid()}")  # the deploy that registered
        assert (
            f"The same deploy (this study, trial and data) is being run by "
            f"{second['deployed_by']}" in caplog.text
        )
    assert sorted(p.name for p in Path("tuneops-out/registry/tiny").iterdir()) == ["v1"]


def test_a_registry_created_elsewhere_at_the_same_moment_is_opened(
    workdir, store, monkeypatch
) -> None:
    """Another process creates the registry between this one's look for it and its create:
    the create failed with Optuna's DuplicatedStudyError; now the registry is opened."""
    first = Registry.open("iris", store, create=True)
    real = optuna.load_study
    calls = []

    def not_yet(*args, **kwargs):  # this process looked before the other created it
        calls.append(kwargs["study_name"])
        if len(calls) == 1:
            raise KeyError(kwargs["study_name"])
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna, "load_study", not_yet)
    again = Registry.open("iris", store, create=True)
    assert again.study._study_id == first.study._study_id and len(calls) == 2


def passing_gate(gated: list[int]) -> Callable[[Registry, int], Any]:
    """A staging gate that passes every version, records its verdict as the real one does
    (against the champion of the moment) and appends the version to ``gated``."""
    from types import SimpleNamespace

    def gate(registry: Registry, version: int) -> Any:
        gated.append(version)
        champion = registry.champion()
        verdict = {"version": version, "verdict": "pass", "reasons": ["fine"],
                   "comparison": None if champion is None else {"champion": champion}}
        registry.record("verify", **verdict)
        return SimpleNamespace(passed=True, to_dict=lambda: verdict)

    return gate


def test_a_deploy_killed_after_its_gate_passed_reuses_the_verdict(workdir, store) -> None:
    """Killed after the staging gate recorded its pass and before the promotion: the same
    deploy ran the gate again (two ``verify`` events of one artifact); now it promotes on the
    recorded verdict, which it returns."""
    gated: list[int] = []
    gate = passing_gate(gated)
    tuning.run(on(store, n_trials=2))
    with killed_at("", key="tuneops:champion"):
        deploy("tiny", storage=store, gate=gate)
    record = deploy("tiny", storage=store, gate=gate)
    registry = Registry.open("tiny", store)
    assert gated == [1] and kinds(registry) == ["register", "verify", "promote"]
    assert record["resumed"] and record["promoted"] and registry.champion() == 1
    assert (record["verification"]["verdict"], record["verification"]["reasons"]) == (
        "pass",
        ["fine"],
    )


def _gone_pid() -> int:
    """The pid of a process of this host that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_a_reservation_killed_after_its_trial_was_created_leaves_no_running_trial(
    workdir, store
) -> None:
    """Killed right after the storage created the reservation's trial (no handler runs, no
    write after it reaches the storage): the trial stayed RUNNING for ever in the registry.
    Now the trial is created complete, naming its writer; its number is only skipped."""
    registry = Registry.open("m", store, create=True)
    assert registry.reserve_version() == 1
    storage = _optuna.storage_of(registry.study)
    real, dead = type(storage).create_new_trial, []

    def create_then_die(self, *args, **kwargs):
        if dead:
            raise Killed("a dead process writes nothing")
        trial_id = real(self, *args, **kwargs)
        dead.append(trial_id)
        raise Killed("after the create")

    def nothing_after_the_kill(method):
        def write(self, *args, **kwargs):
            if dead:
                raise Killed("a dead process writes nothing")
            return method(self, *args, **kwargs)
        return write

    with pytest.MonkeyPatch.context() as mp, pytest.raises(Killed):
        mp.setattr(type(storage), "create_new_trial", create_then_die)
        for name in ("set_trial_state_values", "set_trial_user_attr", "set_trial_system_attr"):
            mp.setattr(type(storage), name, nothing_after_the_kill(getattr(type(storage), name)))
        registry.reserve_version()
    again = Registry.open("m", store)
    assert [t.state for t in again.study.trials] == [TrialState.COMPLETE] * 2
    assert again.study.trials[1].user_attrs["tuneops:reserved_by"]["pid"] == os.getpid()
    assert again.reserve_version() == 3 and sorted(again.reserved()) == [1, 2, 3]


def test_a_reservation_an_earlier_tuneops_left_running_is_given_up_once_its_writer_is_gone(
    workdir, store
) -> None:
    """RUNNING reservations of an earlier tuneops (killed between its writes): the one whose
    writer's pid is gone is given up (FAIL) by the next reservation; the one whose writer
    lives (this process) is left alone."""
    import socket

    registry = Registry.open("m", store, create=True)
    storage, study_id = _optuna.storage_of(registry.study), _optuna.study_id(registry.study)
    for pid in (_gone_pid(), os.getpid()):
        trial_id = storage.create_new_trial(study_id)
        storage.set_trial_user_attr(
            trial_id, "worker", {"host": socket.gethostname(), "pid": pid, "id": f"w{pid}"}
        )
    assert registry.reserve_version() == 3
    assert [t.state for t in registry.study.trials] == [
        TrialState.FAIL, TrialState.RUNNING, TrialState.COMPLETE
    ]


def test_a_deploy_killed_while_copying_its_files_leaves_no_partial_version(
    workdir, store
) -> None:
    """Killed (no handler runs) after it copied model.json and while it copied model.joblib:
    the partial v1 stayed for ever beside the v2 the deploy run again registered. Its writer
    being provably dead (a gone pid of this host), the next registration removes it."""
    from tuneops import runner

    tuning.run(on(store, n_trials=2))
    gone, real = _gone_pid(), registry_module.copy_atomic

    def killed_on_the_model(source, path):
        if Path(path).name == "model.joblib":
            raise Killed(str(path))
        return real(source, path)

    identity = runner.worker_identity
    with pytest.MonkeyPatch.context() as mp, pytest.raises(Killed):
        mp.setattr(registry_module, "copy_atomic", killed_on_the_model)
        mp.setattr(registry_module, "_remove_unregistered", lambda *args: None)
        mp.setattr(runner, "worker_identity", lambda *a, **k: {**identity(), "pid": gone})
        deploy("tiny", storage=store)
    folder = Path("tuneops-out/registry/tiny")
    left = {p.name for p in (folder / "v1").iterdir()}
    assert "model.json" in left and "model.joblib" not in left  # partial
    record = deploy("tiny", storage=store)
    assert record["version"] == 2 and record["promoted"]
    assert sorted(p.name for p in folder.iterdir()) == ["v2"]
    assert sorted(p.name for p in (folder / "v2").iterdir()) == ["model.joblib", "model.json"]


def test_a_partial_version_is_removed_only_with_proof_its_writer_is_dead(workdir) -> None:
    """Left alone: a partial version whose writer lives (this process), runs on another host
    (no proof), or is not named (an earlier tuneops), a version nobody reserved, and a whole
    artifact (its deploy records it when run again)."""
    import json
    import socket

    from _ops_helpers import logistic

    from tuneops.export import save_model

    registry = Registry.open("m", create=True)
    folder = workdir / "art"
    numbers = [registry.reserve_version() for _ in range(5)]
    here, gone = socket.gethostname(), _gone_pid()
    writers = {1: (here, os.getpid()), 2: ("elsewhere", gone), 4: (here, gone), 5: (here, gone)}
    for n in numbers + [6]:
        (folder / f"v{n}").mkdir(parents=True)
        (folder / f"v{n}" / "model.json").write_text("{}")
        if n in writers:
            host, pid = writers[n]
            writer = {"registry": registry.study.study_name, "version": n, "host": host,
                      "pid": pid, "since": 0.0}
            (folder / f"v{n}" / registry_module.WRITER_FILE).write_text(json.dumps(writer))
    save_model(logistic(), {}, folder / "v5")  # whole
    assert registry_module.remove_partial_versions(registry, folder) == [4]
    assert sorted(p.name for p in folder.iterdir()) == ["v1", "v2", "v3", "v5", "v6"]


def test_deploy_says_which_run_registered_the_version_it_reports(workdir, cli, monkeypatch) -> None:
    """`tuneops deploy` started while the same deploy runs: it says it waits, then which run
    registered the version it reports, and that it registered nothing."""
    import socket
    import threading
    import time

    from tuneops.storage import get_storage

    tuning.run(tiny_spec(n_trials=2))
    real = registry_module.reference_profile

    def slow_in_the_first(*args, **kwargs):
        if threading.current_thread().name == "first":
            time.sleep(1.5)  # still registering when the command starts
        return real(*args, **kwargs)

    monkeypatch.setattr(registry_module, "reference_profile", slow_in_the_first)
    first = threading.Thread(target=lambda: deploy("tiny"), name="first")
    first.start()
    while not any(s.study_name.startswith("tuneops-claim:")
                  for s in get_storage(None).get_all_studies()):
        time.sleep(0.05)
    code, out, err = cli("deploy", "tiny", "--no-verify")
    first.join(timeout=60)
    who = f"{socket.gethostname()}:{os.getpid()}"
    assert code == 0, err
    assert f"The same deploy (this study, trial and data) is being run by {who}" in err, err
    assert (
        f"Model tiny version 1 is the champion (registered by the same deploy run at the same "
        f"time by {who}; this one registered nothing)" in " ".join(out.split())
    ), out
    assert [v["version"] for v in Registry.open("tiny").versions()] == [1]


def test_a_verdict_judged_against_another_champion_is_not_reused(workdir) -> None:
    """The gate passed version 2 against champion 1 and the deploy was killed before the
    promotion; version 3 became the champion meanwhile: run again, the deploy judges version 2
    against champion 3."""
    gated: list[int] = []
    tuning.run(tiny_spec(n_trials=3))
    deploy("tiny", trial=0)
    with killed_at("", key="tuneops:champion"):
        deploy("tiny", trial=1, gate=passing_gate(gated))
    deploy("tiny", trial=2)
    record = deploy("tiny", trial=1, gate=passing_gate(gated))
    registry = Registry.open("tiny")
    assert gated == [2, 2] and record["version"] == 2 and registry.champion() == 2
    assert [e["comparison"]["champion"] for e in registry.events("verify")] == [1, 3]


def test_a_deploy_sigkilled_while_copying_is_cleaned_up_and_finished_by_the_next(workdir) -> None:
    """A real SIGKILL (another process, no handler, no ``finally``) while the deploy copied
    model.joblib: its claim and its partial v1 are left behind. The same deploy run again is
    not held up by that claim (its holder's pid is gone), removes v1 and registers v2."""
    import signal

    tuning.run(tiny_spec(n_trials=2))
    script = (
        "import os, signal\n"
        "from pathlib import Path\n"
        "import tuneops.ops.registry as r\n"
        "real = r.copy_atomic\n"
        "def copy(source, path):\n"
        "    if Path(path).name == 'model.joblib':\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(source, path)\n"
        "r.copy_atomic = copy\n"
        "r.deploy('tiny')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    folder = Path("tuneops-out/registry/tiny")
    assert "model.joblib" not in {p.name for p in (folder / "v1").iterdir()}
    record = deploy("tiny")
    assert (record["version"], record["promoted"]) == (2, True)
    assert sorted(p.name for p in folder.iterdir()) == ["v2"]
    assert [v["version"] for v in Registry.open("tiny").versions()] == [2]


_RACING_DEPLOY = """
import json, os, sys, time
from pathlib import Path
from types import SimpleNamespace
import tuneops.ops.registry as r

store = sys.argv[2] or None
real_promote, real_change = r.Registry.promote, r.Registry._change_champion

def promote(self, *args, **kwargs):
    # both processes reach their promotion together (each has read nothing of the other's)
    Path(f"at-promote-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while len(list(Path().glob("at-promote-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return real_promote(self, *args, **kwargs)

def change(self, *args, **kwargs):
    time.sleep(0.5)  # between reading the champion and writing it: the window, widened
    return real_change(self, *args, **kwargs)

def gate(registry, version):
    champion = registry.champion()
    verdict = {"version": version, "verdict": "pass", "reasons": ["fine"],
               "comparison": None if champion is None else {"champion": champion}}
    registry.record("verify", **verdict)
    return SimpleNamespace(passed=True, to_dict=lambda: verdict)

r.Registry.promote, r.Registry._change_champion = promote, change
record = r.deploy("tiny", storage=store, trial=int(sys.argv[1]), gate=gate)
print(json.dumps({"version": record["version"], "promoted": record["promoted"]}))
"""


def test_two_deploys_of_different_trials_at_once_are_promoted_one_after_the_other(
    workdir, store
) -> None:
    """Two processes deploy two trials of a study at the same moment, each gated against no
    champion: both read "no champion" and wrote theirs; the champion was the last writer's,
    its history lost the other, and both ``promote`` events said they replaced none. Now the
    promotions are made one after the other: the second finds its gate's champion replaced,
    judges its version against the new one, and records the champion it replaced."""
    import json

    tuning.run(on(store, n_trials=2))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACING_DEPLOY, str(t), store or ""],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for t in (0, 1)
    ]
    answers = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-3000:]
        answers.append(json.loads(out.strip().splitlines()[-1]))
    registry = Registry.open("tiny", store)
    assert sorted(a["version"] for a in answers) == [1, 2]  # each its own version
    assert all(a["promoted"] for a in answers)
    assert [v["version"] for v in registry.versions()] == [1, 2]
    assert sorted(e["version"] for e in registry.events("register")) == [1, 2]
    first, second = registry.events("promote")
    assert first["previous"] is None and second["previous"] == first["version"]
    assert registry.champion() == second["version"]
    assert registry.champion_history() == [first["version"]]
    # the version promoted second was judged against the champion it replaced
    verdicts = [e for e in registry.events("verify") if e["version"] == second["version"]]
    assert verdicts[-1]["comparison"] == {"champion": first["version"]}


def test_incomplete_versions_of_other_hosts_are_listed_and_cleaned_after_a_stated_age(
    workdir, cli
) -> None:
    """A partial version written by another host was never removed (only a gone process of
    this host is proof of death) and nothing showed it. Now `registry list` and `show` list
    every version directory reserved and never recorded, with its writer, its age and whether
    the writer runs; `registry clean --older-than AGE` removes those unchanged for AGE whose
    writer does not provably run. A running writer's is never removed: one of this host, or
    one of another host holding a live claim (its heartbeat)."""
    import json
    import socket
    import time

    from _ops_helpers import logistic

    from tuneops.claims import Claim

    registry = Registry.open("m", create=True)
    folder = workdir / "art"
    register(registry, logistic(), folder, promote=True)  # v1, recorded
    # what the commands print of a version that a deploy records and the helper does not
    registry.study.set_user_attr("tuneops:version:1", {
        **registry.version(1), "source": {"kind": "test", "study": "s", "trial": 0},
        "family": "logistic", "params": {}, "profile": {"metric": "accuracy", "reference": 0.9}})
    numbers = [registry.reserve_version() for _ in range(4)]
    assert numbers == [2, 3, 4, 5]
    writers = {2: ("elsewhere", 11), 3: ("busy-host", 12), 4: (socket.gethostname(), os.getpid()),
               5: ("elsewhere", 13)}
    old = time.time() - 3 * 3600
    for n, (host, pid) in writers.items():
        (folder / f"v{n}").mkdir()
        (folder / f"v{n}" / "model.json").write_text("{}")
        writer = {"registry": registry.study.study_name, "version": n, "host": host, "pid": pid,
                  "since": old if n != 5 else time.time()}
        (folder / f"v{n}" / registry_module.WRITER_FILE).write_text(json.dumps(writer))
        if n != 5:
            for p in (folder / f"v{n}", *(folder / f"v{n}").iterdir()):
                os.utime(p, (old, old))
    # busy-host runs a deploy: its claim beats
    claim = Claim(_optuna.storage_of(registry.study), "m.deploy-x",
                  {"host": "busy-host", "pid": 12, "id": "busy-host:12"})
    assert claim.acquire() is None
    found = {e["version"]: e for e in registry_module.partial_versions(registry)}
    assert sorted(found) == [2, 3, 4, 5]
    assert [found[n]["alive"] for n in (2, 3, 4, 5)] == [None, True, True, None]
    assert 3 * 3600 - 60 < found[2]["age_s"] < 3 * 3600 + 60 and found[5]["age_s"] < 60
    code, out, _ = cli("registry", "list", "--model", "m")
    flat = " ".join(out.split())
    assert code == 0 and "incomplete (reserved, never recorded) of model m:" in flat, out
    assert (f"v2 {folder.resolve() / 'v2'} (partial; written by elsewhere:11; unchanged for "
            "3.0 h; nothing tells whether its writer runs)") in flat, out
    assert "v3" in flat and "written by busy-host:12" in flat and "its writer runs" in flat
    assert "`tuneops registry clean --model m --older-than 6h`" in flat
    code, out, _ = cli("registry", "show", "--model", "m")
    assert "written by elsewhere:11" in " ".join(out.split())
    shown = json.loads(cli("registry", "show", "--model", "m", "--json")[1])
    assert [e["version"] for e in shown["incomplete"]] == [2, 3, 4, 5]
    # a dry run removes nothing; 6 h spares all; 1 h removes v2 only (v3, v4 run; v5 is new)
    code, out, _ = cli("registry", "clean", "--model", "m", "--older-than", "1h", "--dry-run")
    assert code == 0 and "Would remove v2 " in out and (folder / "v2").is_dir()
    code, out, _ = cli("registry", "clean", "--model", "m", "--older-than", "6h")
    assert code == 0 and "nothing removed" in " ".join(out.split()), out
    code, out, _ = cli("registry", "clean", "--model", "m", "--older-than", "1h", "--json")
    assert [e["version"] for e in json.loads(out)["removed"]] == [2]
    assert sorted(p.name for p in folder.iterdir()) == ["v1", "v3", "v4", "v5"]
    # age 0: still never a running writer's
    code, out, _ = cli("registry", "clean", "--model", "m", "--older-than", "0")
    assert sorted(p.name for p in folder.iterdir()) == ["v1", "v3", "v4"]
    claim.release()
    code, _, err = cli("registry", "clean", "--model", "m", "--older-than", "soon")
    assert code == 2 and "older_than (--older-than): expected an age >= 0" in err, err
