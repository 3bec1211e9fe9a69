"""Workers that die, lose their heartbeat, or are interrupted lose nothing; remote workers join.

Victim workers are real processes (killed with real signals) on real storages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import ROOT, tiny_spec
from optuna.trial import TrialState
from servers import postgres_server, redis_server, storage_url_for  # noqa: F401 - fixtures

import tuneops
from tuneops import _optuna, runner
from tuneops._study import counted, is_retired
from tuneops.backends.local import run_local
from tuneops.heartbeat import HEARTBEAT, stale_trials
from tuneops.storage import get_storage

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

# A worker with a slow objective, in its own process: argv = url study sleep_s host heartbeat_s.
# host "-" records the real host and pid; another name makes it look like a remote machine.
VICTIM = """
import sys, time, optuna
from tuneops import runner
from tuneops._study import counted
from tuneops.storage import get_storage
url, name, sleep_s, host, beat = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], float(sys.argv[5])
study = optuna.load_study(study_name=name, storage=get_storage(url))
def objective(trial):
    x = trial.suggest_float("x", -3, 3)
    time.sleep(sleep_s)
    return x
who = runner.worker_identity() if host == "-" else {"host": host, "pid": 1, "id": host + ":1"}
try:
    runner.work(study, objective, identity=who, heartbeat_s=beat, grace_s=600)
except KeyboardInterrupt:
    sys.exit(130)
"""


def fast(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", -3, 3)


def _study(url: str, n_trials: int) -> optuna.Study:
    study = optuna.create_study(study_name=f"ft-{uuid.uuid4().hex[:8]}", storage=get_storage(url))
    runner.set_budget(study, n_trials)
    return study


def _start_victim(url: str, study: optuna.Study, sleep_s: float, host: str = "-", beat: float = 10.0):
    return subprocess.Popen(
        [sys.executable, "-c", VICTIM, url, study.study_name, str(sleep_s), host, str(beat)],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _wait_running(study: optuna.Study, proc: subprocess.Popen, timeout_s: float = 60) -> optuna.trial.FrozenTrial:
    end = time.time() + timeout_s
    while time.time() < end:
        running = [t for t in study.get_trials(states=(TrialState.RUNNING,)) if "x" in t.params]
        if running:
            return running[0]
        if proc.poll() is not None:
            pytest.fail(f"the victim worker exited early: {proc.communicate()[1].decode()[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    proc.communicate()
    pytest.fail("the victim worker never started a trial")


@pytest.fixture(params=["journal", pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("redis", marks=pytest.mark.redis)])
def url(request: pytest.FixtureRequest, workdir: Path) -> str:
    return storage_url_for(request.param, request, workdir)


def test_sigkilled_worker_trial_is_failed_and_its_configuration_retried(url: str) -> None:
    study = _study(url, 4)
    victim = _start_victim(url, study, sleep_s=120)
    killed = _wait_running(study, victim)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    assert study.trials[killed.number].state == TrialState.RUNNING  # nobody told the storage

    ran = runner.work(study, fast, grace_s=600)  # a surviving worker recovers it at once

    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4 and ran == 4
    dead = trials[killed.number]
    assert dead.state == TrialState.FAIL and "no longer running" in dead.user_attrs["abandoned"]
    retry = [t for t in complete if t.user_attrs.get("retry_of") == killed.number]
    assert len(retry) == 1 and retry[0].params == killed.params  # the same configuration, once


def test_trial_of_a_silent_remote_worker_is_recovered_after_the_grace_period(workdir: Path) -> None:
    url = str(workdir / "s.journal")
    study = _study(url, 2)
    lost = runner.next_trial(study)  # a worker on another machine claims a trial, then vanishes
    lost.set_user_attr("worker", {"host": "elsewhere", "pid": 1, "id": "elsewhere:1"})
    lost.suggest_float("x", -3, 3)
    started = time.time()

    runner.work(study, fast, grace_s=1.0, poll_s=0.1)

    waited = time.time() - started
    trials = study.get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert "no heartbeat from worker elsewhere:1" in trials[lost.number].user_attrs["abandoned"]
    assert 1.0 <= waited < 30


def test_heartbeat_keeps_a_long_trial_of_a_remote_worker_alive(workdir: Path) -> None:
    url = str(workdir / "s.journal")
    study = _study(url, 2)
    remote = _start_victim(url, study, sleep_s=4.0, host="elsewhere", beat=0.3)
    slow = _wait_running(study, remote)

    runner.work(study, fast, grace_s=1.5, poll_s=0.1)  # waits for the remote trial, keeps it
    remote.communicate(timeout=60)
    assert remote.returncode == 0

    trials = study.get_trials()
    ran = counted(trials)  # a trial created beyond the budget at the same moment is retired unrun
    assert [t.state for t in ran] == [TrialState.COMPLETE] * 2
    assert all(is_retired(t) and not t.params for t in trials if t not in ran)
    assert trials[slow.number].user_attrs[HEARTBEAT] > trials[slow.number].datetime_start.timestamp()


def test_forked_workers_leave_when_done_but_the_run_waits_for_a_remote_trial(workdir: Path) -> None:
    url = str(workdir / "s.journal")
    study = _study(url, 4)
    remote = _start_victim(url, study, sleep_s=3.0)  # a worker elsewhere takes one trial of 3 s
    slow = _wait_running(study, remote)
    setup = runner.WorkerSetup(study.study_name, url, optuna.samplers.RandomSampler, optuna.pruners.NopPruner,
                               fast, n_workers=2)

    try:
        run_local(setup, n_workers=2, deadline=None, unlimited=False, study=study)
    finally:
        remote.communicate(timeout=60)
    assert remote.returncode == 0

    # The two forked workers ran the other three and left; this process stayed for the remote one.
    trials = study.get_trials()
    ran = counted(trials)  # three workers creating the last places at once may overshoot: retired
    assert [t.state for t in ran] == [TrialState.COMPLETE] * 4
    assert all(is_retired(t) and not t.params for t in trials if t not in ran)
    assert trials[slow.number].user_attrs["worker"]["pid"] == remote.pid


def test_ctrl_c_abandons_the_running_trial_and_queues_it_again(workdir: Path) -> None:
    url = str(workdir / "s.journal")
    study = _study(url, 2)
    worker = _start_victim(url, study, sleep_s=120)
    running = _wait_running(study, worker)
    worker.send_signal(signal.SIGINT)
    worker.communicate(timeout=30)
    assert worker.returncode == 130

    trials = study.get_trials()
    assert trials[running.number].user_attrs["abandoned"] == "interrupted (SIGINT)"
    retry = [t for t in trials if t.user_attrs.get("retry_of") == running.number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    runner.work(study, fast)
    assert sum(t.state == TrialState.COMPLETE for t in study.get_trials()) == 2


def test_the_owner_draws_a_stream_of_its_own_after_its_forked_workers_died(
    workdir: Path, caplog
) -> None:
    # Both forked workers are SIGKILLed on their third trial; the owner recovers their trials
    # and runs the rest of the budget itself. It must not draw from a forked worker's sampler
    # stream (the same seed would propose that worker's configurations again).
    owner, ran = os.getpid(), []

    def dies_in_workers(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        ran.append(x)
        if os.getpid() != owner and len(ran) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return x

    with caplog.at_level("WARNING", logger="tuneops"):
        result = tuneops.tune(dies_in_workers, n_trials=12, n_workers=2, sampler="random",
                              storage=str(workdir / "s.journal"), study="replay")
    # each death is said, with how many workers go on (the run went on with fewer silently)
    assert caplog.text.count("was killed by SIGKILL") == 2
    assert ("the run goes on with 1 of its 2 workers" in caplog.text) or (
        "this process runs what is left of the budget on its own" in caplog.text
    )
    trials = result.study.get_trials()
    abandoned = [t for t in trials if "abandoned" in t.user_attrs]
    assert len(abandoned) == 2 and len(ran) >= 8  # the owner ran the rest
    fresh = [t.params["x"] for t in trials if t.params and "retry_of" not in t.user_attrs]
    assert len(fresh) == len(set(fresh)), "the owner replayed a forked worker's configurations"
    assert len(counted(trials)) == 12 and not result.study.get_trials(states=(TrialState.RUNNING,))


def test_stale_trials_is_pure() -> None:
    from datetime import datetime

    def running(number: int, worker: dict, beat: float | None, start: float) -> optuna.trial.FrozenTrial:
        attrs = {"worker": worker} | ({HEARTBEAT: beat} if beat is not None else {})
        t = optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs=attrs)
        t.number, t.datetime_start = number, datetime.fromtimestamp(start)
        return t

    now = 1_000_000.0
    trials = [
        running(0, {"host": "here", "pid": 5, "id": "a"}, None, now - 1),  # dead local pid
        running(1, {"host": "here", "pid": 6, "id": "b"}, None, now - 1),  # live local pid
        running(2, {"host": "far", "pid": 5, "id": "c"}, now - 100, now - 500),  # silent too long
        running(3, {"host": "far", "pid": 5, "id": "d"}, now - 10, now - 500),  # beating
        running(4, {}, None, now - 100),  # never recorded its worker
    ]
    stale = stale_trials(trials, now=now, grace_s=60, host="here", alive=lambda pid: pid == 6)
    assert [(t.number, reason.split(" ")[0]) for t, reason in stale] == [(0, "worker"), (2, "no"), (4, "no")]
    # A worker started with a longer grace period is judged by it, by every reader.
    patient = running(7, {"host": "far", "pid": 5, "id": "p", "grace_s": 600}, now - 100, now - 500)
    assert stale_trials([patient], now=now, grace_s=60, host="here") == []
    # A live worker of this host that started before its trial runs it, silent or not: a
    # storage stall past the grace period kept its heartbeats from being written.
    import socket
    import time

    here = socket.gethostname()
    with open(f"/proc/{os.getpid()}/stat", "rb") as handle:
        ticks = int(handle.read().rsplit(b")", 1)[1].split()[19])
    with open("/proc/stat", "rb") as handle:
        boot = next(int(line.split()[1]) for line in handle if line.startswith(b"btime"))
    started = boot + ticks / os.sysconf("SC_CLK_TCK")  # this process's start
    mine = running(5, {"host": here, "pid": os.getpid(), "id": "me"}, None, started + 2)
    assert stale_trials([mine], now=started + 600, grace_s=60, host=here) == []
    # a pid that a later process reused (it started after the trial) is judged by the heartbeat
    reused = running(6, {"host": here, "pid": os.getpid(), "id": "old"}, None, 1_000.0)
    assert [t.number for t, _ in stale_trials([reused], now=time.time(), grace_s=60, host=here)] == [6]


def test_run_alive_is_pure() -> None:
    """A run's record (tuneops.ops.retune's claim on a re-tuning): its process asked on this
    host, a pid a later process reused judged by the heartbeat, another host's by the heartbeat."""
    import socket
    import time

    from tuneops.heartbeat import run_alive

    now = 1_000_000.0
    here = {"host": "here", "pid": 5, "since": now - 500, "seen": now - 500}
    assert not run_alive(here, now=now, host="here", alive=lambda pid: False)  # its pid is gone
    far = {"host": "far", "pid": 5, "since": now - 500}
    assert run_alive({**far, "seen": now - 10}, now=now, host="here")  # beating
    assert not run_alive({**far, "seen": now - 100}, now=now, host="here")  # silent too long
    assert run_alive({**far, "seen": now - 100}, now=now, grace_s=600, host="here")
    assert not run_alive({}, now=now, host="here")  # records nothing: nothing runs it
    mine = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time() - 5}
    assert run_alive(mine, now=time.time() + 3600)  # this process, silent or not
    reused = {**mine, "since": 1_000.0, "seen": 1_000.0}  # the pid of a process long gone
    assert not run_alive(reused, now=time.time())


# -- remote workers -------------------------------------------------------------------------------
@pytest.mark.postgres
def test_tuneops_worker_joins_a_study_from_another_process(postgres_server, workdir: Path, cli) -> None:
    url = postgres_server.url
    name = f"join-{uuid.uuid4().hex[:6]}"
    tuneops.run(tiny_spec(study=name, n_trials=2), storage=url)
    study = optuna.load_study(study_name=name, storage=get_storage(url))
    runner.set_budget(study, 8)  # the owner raises the global budget; workers only claim

    other = subprocess.Popen(
        [sys.executable, "-m", "tuneops", "worker", "--study", name, "--storage", url],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir,
    )
    code, out, _err = cli("worker", "--study", name, "--storage", url)
    stdout, stderr = other.communicate(timeout=120)
    assert code == 0 and other.returncode == 0, stderr.decode()[-2000:]

    ran_here = int(out.split("ran ")[1].split(" ")[0])
    ran_there = int(stdout.decode().split("ran ")[1].split(" ")[0])
    assert ran_here + ran_there == 6
    trials = counted(study.get_trials())  # leaves out a trial retired unrun beyond the budget
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 8
    assert all(t.user_attrs.get("metrics", {}).get("accuracy") for t in trials)


def test_worker_on_a_custom_objective_study_is_refused(workdir: Path, cli) -> None:
    url = str(workdir / "s.journal")
    tuneops.tune(fast, n_trials=1, storage=url, study="custom")
    code, _out, err = cli("worker", "--study", "custom", "--storage", url)
    assert code == 2 and "custom objective" in err
    code, _out, err = cli("worker", "--study", "nope", "--storage", url)
    assert code == 2 and "no study 'nope'" in err and "custom" in err


def test_show_prints_each_workers_contribution(workdir: Path, cli) -> None:
    def slow(trial: optuna.Trial) -> float:
        time.sleep(0.3)
        return trial.suggest_float("x", -3, 3)

    url = str(workdir / "s.journal")
    result = tuneops.tune(slow, n_trials=6, n_workers=2, storage=url, study="two")
    section = result.results["workers"]
    assert section["n_workers"] == 2
    code, out, _err = cli("show", "two", "--storage", url)
    assert code == 0
    assert "workers (2 on 1 host(s))" in out
    for row in section["workers"]:
        assert row["worker"] in out


def test_a_journal_that_cannot_grow_stops_the_run_cleanly_and_the_same_command_resumes(workdir):
    # A real write failure, not a mock: the process may not grow a file past 48 KB (as a full
    # disk refuses a write, here with EFBIG), so an append fails within the run, maybe halfway.
    import resource
    import yaml

    spec = workdir / "s.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(n_trials=120, n_workers=2, sampler="random")))
    command = [sys.executable, "-m", "tuneops", "run", str(spec), "--storage", "s.journal",
               "--out", "out"]

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (48_000, 48_000))

    first = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300,
                           preexec_fn=limited)
    assert first.returncode == 1, first.stderr[-2000:]
    assert "could not write to the journal" in first.stderr and "ulimit -f" in first.stderr
    assert "Traceback" not in first.stderr, first.stderr[-3000:]
    assert (workdir / "s.journal").stat().st_size <= 48_000
    second = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    study = optuna.load_study(study_name="tiny", storage=get_storage("s.journal"))
    assert len(counted(study.trials)) == 120
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


def test_show_counts_a_trial_whose_worker_is_gone_apart_from_the_running_ones(workdir, cli):
    """After a crash (a SIGKILL, a full disk) a trial stays RUNNING in the storage although
    nothing runs it: `show` must not say it is running."""
    import socket

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)  # a process that has exited
    study = optuna.create_study(study_name="crashed", storage=get_storage("s.journal"))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    host = socket.gethostname()
    for pid in (dead_pid, os.getpid()):  # one worker gone, one alive (this process)
        _optuna.set_trial_user_attr(
            study, study.ask(), "worker", {"host": host, "pid": pid, "id": f"{host}:{pid}"})
    code, out, err = cli("show", "crashed", "--storage", "s.journal", "--json")
    assert code == 0, err
    assert json.loads(out)["n_trials"] == {"complete": 2, "running": 1, "stale": 1}
    code, out, err = cli("show", "crashed", "--storage", "s.journal")
    assert "1 running" in out and "1 left running by a worker that is gone" in out
    # while a worker runs trials of the study, it gives the trial back between its trials: not
    # "queued again by the next run", said of a trial of a live run
    said = " ".join(out.split())
    assert "(the study's live workers give it back between their trials and run its " \
        "configuration again)" in said, said
    assert "next run" not in said
    from tuneops.report import build_report

    texts = [f.text for f in build_report(study).findings]
    assert "Snapshot of a study in progress: 1 trials running, 0 waiting." in texts
    (gone,) = [t for t in texts if t.startswith("1 trials were left running by workers that are")]
    assert gone.endswith("The study's live workers give them back between their trials and run "
                         "their configurations again."), gone
    # with no live worker left, the next run or worker gives it back
    live = next(t for t in study.get_trials() if t.state == TrialState.RUNNING
                and t.user_attrs["worker"]["pid"] == os.getpid())
    study.tell(live.number, 0.5)
    code, out, err = cli("show", "crashed", "--storage", "s.journal")
    said = " ".join(out.split())
    assert "1 left running by a worker that is gone (given back, and its configuration run " \
        "again, by the next run or `tuneops worker` on the study)" in said, said
    texts = [f.text for f in build_report(study).findings]
    (gone,) = [t for t in texts if t.startswith("1 trials were left running by workers that are")]
    assert "The next run of the study, or `tuneops worker`, gives them back" in gone, gone


def test_a_dead_worker_not_yet_reaped_is_not_alive() -> None:
    """A killed Ray worker stays a zombie until its parent reaps it: its pid still exists, and
    its trial was left RUNNING when the run checked for orphans at that moment."""
    from tuneops.heartbeat import pid_alive

    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(pid, 0)  # the pid exists ...
        assert not pid_alive(pid)  # ... and is dead
        assert pid_alive(os.getpid())
    finally:
        os.waitpid(pid, 0)
    assert not pid_alive(pid)
