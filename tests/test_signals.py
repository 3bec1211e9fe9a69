"""Signals and resume: nothing lost, nothing repeated, no orphans, and a message that is true."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import tuneops
from tuneops import _study, runner, tuning
from tuneops.storage import get_storage

from conftest import ROOT, tiny_spec



def _slow_spec(workdir: Path, n_trials: int = 40, **search) -> Path:
    spec = workdir / "slow.yaml"
    # pruner none: this is about interruption; random forests of 5-30 trees take a moment each
    spec.write_text(json.dumps(tiny_spec(n_trials=n_trials, pruner="none", **search, model={
        "family": "random_forest", "space": {"n_estimators": {"type": "int", "low": 5, "high": 30}}})))
    return spec


def _start(workdir: Path, spec: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-m", "tuneops", "run", str(spec), "--no-progress", *args],
                            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _load(workdir: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=get_storage(str(workdir / "tuneops.journal")))


def _wait_for(workdir: Path, predicate, timeout: float = 90) -> optuna.Study:
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.3)
        if (workdir / "tuneops.journal").exists():
            try:
                study = _load(workdir)
            except KeyError:  # the file is opened before the study is written into it
                continue
            if predicate(study):
                return study
    raise AssertionError("the run never reached the awaited state")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped) is not running
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _worker_pids(study: optuna.Study) -> set[int]:
    return {int(t.user_attrs[_study.WORKER]["pid"]) for t in study.get_trials() if _study.WORKER in t.user_attrs}


def test_sigterm_on_the_owner_abandons_running_trials_stops_every_worker_and_says_which(workdir):
    proc = _start(workdir, _slow_spec(workdir), "--workers", "2")
    _wait_for(workdir, lambda s: len(s.get_trials(states=(TrialState.COMPLETE,))) >= 2
              and s.get_trials(states=(TrialState.RUNNING,)))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 143, err
    study = _load(workdir)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    abandoned = [t.number for t in study.get_trials()
                 if t.user_attrs.get(_study.ABANDONED) == "interrupted (SIGTERM)"]
    said = re.search(r"Stopped by SIGTERM: trials? ([\d, ]+) (?:was|were) running", err)
    if abandoned:
        assert said and sorted(int(n) for n in said.group(1).split(",")) == sorted(abandoned), err
    else:
        assert "no trial was running" in err, err
    time.sleep(1.0)
    assert not any(_alive(pid) for pid in _worker_pids(study) - {os.getpid()}), "orphaned workers"
    # Each abandoned configuration is queued again once, and a resume completes the budget.
    queued = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs[_study.RETRY_OF] for t in queued) == sorted(abandoned)
    result = tuneops.run(workdir / "slow.yaml", n_trials=len(_study.counted(study.trials)) + 1)
    assert not result.study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


def test_sigkill_on_the_owner_leaves_no_orphan_worker(workdir):
    proc = _start(workdir, _slow_spec(workdir), "--workers", "2")
    try:
        study = _wait_for(workdir, lambda s: len({t.user_attrs.get(_study.WORKER, {}).get("pid")
                                                  for t in s.get_trials(states=(TrialState.RUNNING,))}) >= 2)
    finally:  # a failed wait must not leave the run going (its pipes and process leak otherwise)
        proc.kill()
    # The workers hold the run's pipes until they leave. Had the owner been killed while it held
    # the journal's lock, its lock file is removed at once (tuneops._journal_lock), not after
    # Optuna's 30 s grace period.
    proc.communicate(timeout=30)
    deadline = time.time() + 30
    pids = _worker_pids(study) - {proc.pid}
    while time.time() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    assert pids and not any(_alive(pid) for pid in pids), "a worker outlived its killed owner"
    # The workers gave their trials back as they left: none stays RUNNING with a live owner.
    study = _load(workdir)
    running = study.get_trials(states=(TrialState.RUNNING,))
    assert all(t.user_attrs[_study.WORKER]["pid"] == proc.pid for t in running)


def test_a_resumed_run_never_proposes_the_configurations_it_already_evaluated(workdir):
    spec = workdir / "r.yaml"
    # a continuous parameter: two draws of a fresh stream never coincide by chance
    spec.write_text(json.dumps(tiny_spec(n_trials=5, sampler="random", pruner="none", model={"family": "linear"})))
    n_first = len(tuneops.run(spec, progress=False).study.trials)
    resumed = tuneops.run(spec, n_trials=10, progress=False)
    params = [tuple(sorted(t.params.items())) for t in resumed.study.trials]
    assert n_first == 5 and len(params) == 10
    assert len(set(params)) == 10, "a resumed run replayed the first run's sampler stream"
    # ... and a resumed seeded run is reproducible: the same two steps elsewhere give the same trials.
    again = workdir / "again"
    again.mkdir()
    os.chdir(again)
    tuneops.run(spec, progress=False)
    replay = tuneops.run(spec, n_trials=10, progress=False)
    assert [tuple(sorted(t.params.items())) for t in replay.study.trials] == params


def test_a_worker_that_rejoins_under_the_same_identity_does_not_replay_its_proposals(workdir):
    # A restarted container keeps its host name and runs the worker as the same pid (1); on a
    # busy machine pids are reused too (pid_max 32768). The same identity must not mean the
    # same sampler stream: the second life would propose its first life's configurations.
    spec = workdir / "j.yaml"
    spec.write_text(json.dumps(tiny_spec(n_trials=2, sampler="random", pruner="none",
                                         model={"family": "linear"})))
    study = tuneops.run(spec, progress=False).study
    who = {"host": "worker-0", "pid": 1, "id": "worker-0:1"}
    for budget in (5, 8):
        runner.set_budget(study, budget)
        assert tuning.join("tiny", str(workdir / "tuneops.journal"), identity=who) == 3
    params = [tuple(sorted(t.params.items())) for t in _load(workdir).trials]
    assert len(params) == 8 and len(set(params)) == 8, "the rejoined worker replayed its stream"


@pytest.mark.parametrize("same_stop_s", [1.0, 0.0])
def test_a_second_signal_does_not_cut_short_the_give_back(caplog, monkeypatch, same_stop_s):
    # The first signal stops the block; one arriving while its trials are given back is noted
    # and ignored, so the give-back finishes. Within SAME_STOP_S it is the same stop delivered
    # twice (a terminal's Ctrl-C and the run's forward of it to its workers): not a warning.
    monkeypatch.setattr(runner, "SAME_STOP_S", same_stop_s)
    with caplog.at_level("DEBUG", logger="tuneops"):
        try:
            with runner.stop_on_signals():
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)  # the handler raises before this ends
                except runner.Interrupted as exc:
                    first = runner.Interrupted.of(exc)  # the give-back takes the stop
                    os.kill(os.getpid(), signal.SIGINT)  # while giving back
                    time.sleep(0.05)  # the handler has run by now, and not raised
                    raise first
        except runner.Interrupted as stop:
            assert stop.signal_name == "SIGTERM"
    (said,) = [r for r in caplog.records if "already stopping (SIGTERM)" in r.getMessage()]
    assert said.levelname == ("DEBUG" if same_stop_s else "WARNING")


def test_a_signal_during_abandon_waits_until_the_configuration_is_queued_again(
    workdir, monkeypatch
):
    study = optuna.create_study(storage=get_storage(str(workdir / "s.journal")))
    runner.set_budget(study, 2)
    trial = runner.next_trial(study)
    trial.suggest_float("x", 0, 1)
    real = runner._optuna.set_trial_state

    def killed_midway(study_, t, state):  # the signal lands between FAIL and the re-queue
        done = real(study_, t, state)
        if state == TrialState.FAIL:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        return done

    monkeypatch.setattr(runner._optuna, "set_trial_state", killed_midway)
    try:
        with runner.stop_on_signals():
            runner.abandon(study, study.get_trials()[trial.number], "no heartbeat")
            time.sleep(5)  # the held signal is delivered once abandon() returns
    except runner.Interrupted as stop:
        assert stop.signal_name == "SIGTERM"
    trials = study.get_trials()
    assert trials[trial.number].state == TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get("retry_of") == trial.number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING


class _SignalOnFinalize:
    """An object whose finalizer receives the stop signal: Python ignores what it raises."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs, raises, and Python prints "Exception ignored"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_stop_raised_where_python_ignores_it_is_raised_again(workdir):
    """A Ctrl-C delivered while joblib's thread pool of a forest fit was finalized was lost:
    the run went on to its end, and every later Ctrl-C said "already stopping" (audit: the rare
    flake of test_ctrl_c_keeps_finished_trials_and_resume_completes). The worker loop raises it
    again between trials, and another Ctrl-C raises it at once."""
    study = optuna.create_study(storage=get_storage(str(workdir / "s.journal")))
    runner.set_budget(study, 5)
    ran = []

    def objective(trial):
        ran.append(trial.number)
        if trial.number == 1:
            _SignalOnFinalize()  # made and dropped: its __del__ swallows the Interrupted
        return trial.suggest_float("x", 0, 1)

    with pytest.raises(runner.Interrupted) as stop:
        with runner.stop_on_signals():
            runner.work(study, objective, wait_for_others=False)
    assert stop.value.signal_name == "SIGINT" and ran == [0, 1]  # not all 5
    assert all(t.state != TrialState.RUNNING for t in study.get_trials())
    with pytest.raises(runner.Interrupted):  # a second Ctrl-C raises when the first was lost
        with runner.stop_on_signals():
            _SignalOnFinalize()
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)


def test_a_signal_during_a_journal_replay_waits_for_its_end(workdir, monkeypatch):
    """Optuna counts a journal entry read before it applies it: a Ctrl-C inside the replay of
    the trial this worker had just created lost it from the worker's view, the give-back missed
    it, and it stayed RUNNING ("no trial was running"; audit). The signal now waits for the
    replay to end."""
    from optuna.storages.journal._storage import JournalStorageReplayResult

    study = optuna.create_study(storage=get_storage(str(workdir / "s.journal")))
    runner.set_budget(study, 5)
    real = JournalStorageReplayResult._apply_create_trial
    created = []

    def interrupted_midway(self, log):
        created.append(1)
        if len(created) == 3:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler has run by now: deferred, not raised here
        return real(self, log)

    monkeypatch.setattr(JournalStorageReplayResult, "_apply_create_trial", interrupted_midway)
    with pytest.raises(runner.Interrupted) as stop:
        with runner.stop_on_signals():
            runner.work(study, lambda t: t.suggest_float("x", 0, 1), wait_for_others=False)
    assert stop.value.signal_name == "SIGINT"
    fresh = optuna.load_study(study_name=study.study_name, storage=get_storage(str(workdir / "s.journal")))
    assert [t.number for t in fresh.trials if t.state == TrialState.RUNNING] == []
