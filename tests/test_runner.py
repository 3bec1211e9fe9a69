"""The global budget by place: exact counts, no owner needed, overshoot retired, repairs.

The budget's contract on every storage (PostgreSQL and Redis included) runs in test_storage.py
through its parametrized fixture; these tests take the corner cases on a journal file.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tuneops import _optuna, runner
from tuneops import _study as study_format
from tuneops.results import study_results
from tuneops.storage import get_storage


def fast(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", -3, 3)


def _study(workdir: Path) -> optuna.Study:
    return optuna.create_study(study_name=f"w-{uuid.uuid4().hex[:6]}", storage=get_storage(str(workdir / "s.journal")))


def _budget(study: optuna.Study) -> dict:
    return _optuna.study_system_attrs(study)[study_format.BUDGET]


def _state_counts(study: optuna.Study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    counts = {s.name: sum(t.state == s for t in study_format.counted(trials)) for s in TrialState}
    counts["abandoned"] = len(trials) - len(study_format.counted(trials))
    return {k: v for k, v in counts.items() if v}


def test_the_budget_is_recorded_and_trials_are_created_on_demand(workdir: Path) -> None:
    study = _study(workdir)
    assert runner.set_budget(study, 50) == 50
    assert _budget(study) == {"n_trials": 50}
    assert not study.get_trials()  # nothing is queued up front

    trial = runner.next_trial(study, identity=runner.worker_identity())
    created = study.get_trials()
    assert [(t.number, t.state) for t in created] == [(trial.number, TrialState.RUNNING)]
    assert created[0].user_attrs["worker"] == runner.worker_identity()  # written with the trial


def _work(url: str, name: str) -> None:
    study = optuna.load_study(study_name=name, storage=get_storage(url))
    runner.work(study, fast)


def test_workers_finish_the_budget_without_its_owner(workdir: Path) -> None:
    url = str(workdir / "s.journal")
    study = optuna.create_study(study_name="ownerless", storage=get_storage(url))
    runner.set_budget(study, 15)  # the owner records the budget and is gone
    procs = [multiprocessing.get_context("fork").Process(target=_work, args=(url, "ownerless")) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert _state_counts(study).get("COMPLETE") == 15
    assert all(study_format.is_retired(t) and not t.params for t in study.get_trials() if t.state != TrialState.COMPLETE)


def test_a_trial_created_beyond_the_budget_is_retired_unrun(workdir: Path) -> None:
    study = _study(workdir)
    runner.set_budget(study, 3)
    for _ in range(2):
        runner.run_trial(study, runner.next_trial(study), fast)
    stale = study._storage.get_all_trials(study._study_id)  # two counted: one place left
    runner.run_trial(study, runner.next_trial(study), fast)  # another worker takes it meanwhile

    assert runner._claim(study, stale, runner.worker_identity()) is None  # created, found beyond, retired

    assert _state_counts(study) == {"COMPLETE": 3, "abandoned": 1}
    extra = study.get_trials()[-1]
    assert extra.user_attrs["abandoned"].startswith("retired: beyond the budget of 3") and not extra.params
    assert study_results(study)["n_trials"] == {"complete": 3, "retired": 1}  # not counted as abandoned
    assert study_format.abandoned_label(extra.user_attrs["abandoned"]) == " (retired)"
    runner.work(study, fast)  # nothing left to run
    assert _state_counts(study) == {"COMPLETE": 3, "abandoned": 1}


def test_queued_configurations_beyond_the_budget_are_retired(workdir: Path) -> None:
    study = _study(workdir)
    for x in (0.5, 1.5, 2.5):
        study.enqueue_trial({"x": x})
    runner.set_budget(study, 2)

    runner.work(study, fast)

    assert _state_counts(study) == {"COMPLETE": 2, "abandoned": 1}
    assert [t.params["x"] for t in study.get_trials(states=(TrialState.COMPLETE,))] == [0.5, 1.5]
    assert study.get_trials()[2].user_attrs["abandoned"] == "retired: budget lowered to 2"


def test_a_worker_that_died_right_after_creating_its_trial_loses_nothing(workdir: Path) -> None:
    study = _study(workdir)
    runner.set_budget(study, 6)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lost = runner.next_trial(study, identity=runner.worker_identity() | {"pid": int(dead.stdout)})

    runner.work(study, fast)

    assert _state_counts(study) == {"COMPLETE": 6, "abandoned": 1}
    retry = [t for t in study.get_trials() if t.user_attrs.get(study_format.RETRY_OF) == lost.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE


def test_a_new_budget_replaces_the_earlier_one(workdir: Path) -> None:
    study = _study(workdir)
    runner.set_budget(study, 10)
    runner.work(study, fast, deadline=0)  # nothing runs: the deadline has passed
    assert runner.set_budget(study, 3) == -7  # lowered on resume
    runner.work(study, fast)
    assert _state_counts(study) == {"COMPLETE": 3}
    assert runner.set_budget(study, 7) == 4  # raised
    runner.work(study, fast)
    assert _state_counts(study) == {"COMPLETE": 7}


def test_one_worker_replays_the_same_study_for_the_same_seed(workdir: Path) -> None:
    """Warm-start configurations are claimed in their queued order before new trials are created, so a
    seeded single-worker run, resumed with a larger budget, is the same study every time."""
    from tuneops.tuning import run

    def params_by_number(name: str) -> list[dict]:
        spec = {"study": name, "data": {"source": "sklearn:iris"}, "model": {"family": "knn"},
                "objectives": ["accuracy"], "storage": str(workdir / f"{name}.journal"),
                "output_dir": str(workdir / name),
                "warm_start": {"params": [{"n_neighbors": 25}, {"n_neighbors": 3}, {"n_neighbors": 9}]},
                "search": {"n_trials": 3, "seed": 5, "pruner": "none", "sampler": "tpe"}}
        run(spec, progress=False)
        spec["search"]["n_trials"] = 9
        study = run(spec, progress=False).study
        trials = sorted(study.trials, key=lambda t: t.datetime_start)
        assert [t.params["n_neighbors"] for t in trials[:3]] == [25, 3, 9]  # in the order given
        return [t.params for t in sorted(study.trials, key=lambda t: t.number)]

    first = params_by_number("a")
    assert len(first) == 9 and first == params_by_number("b")


def test_the_budget_tally_examines_only_open_and_new_trials(workdir):
    """The cost of a claim does not grow with the study: counted in trials examined, not time."""
    study = _study(workdir)
    for i in range(300):
        study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=float(i)))
    trials = _optuna.read_trials(study)
    first = runner._Tally.of(trials, study)
    assert first.examined == 300 and first.live == 300
    again = runner._Tally.of(_optuna.read_trials(study), study)
    assert again.examined == 0 and again.live == 300  # the settled prefix is not looked at
    runner.set_budget(study, 302)
    trial = runner.next_trial(study)  # one new RUNNING trial: the only one examined from now on
    assert trial is not None
    later = runner._Tally.of(_optuna.read_trials(study), study)
    assert later.examined == 1 and later.live == 301 and later.running == 1
    # ... the same numbers as a full scan (no stale view)
    full = runner._Tally.of(_optuna.read_trials(study))
    assert (full.live, full.running, full.out, len(full.waiting)) == (301, 1, 0, 0)


def _fails_as_family(trial: optuna.Trial) -> float:
    family = trial.suggest_categorical("family", ["broken", "fine"])
    if family == "broken" or trial.number >= 5:
        raise ValueError(f"cannot fit {family}")
    return trial.suggest_float("x", -3, 3)


def test_a_study_whose_trials_all_fail_stops_instead_of_spending_its_budget(workdir, caplog) -> None:
    study = _study(workdir)
    runner.set_budget(study, 200)
    study.enqueue_trial({"family": "fine"})  # a completed trial first: the streak starts after it
    with caplog.at_level("ERROR", logger="tuneops"):
        ran = runner.work(study, _fails_as_family, max_failed_in_a_row=7)
    trials = study.get_trials()
    failed = runner.failed_in_a_row(trials)
    assert ran == len(trials) < 200
    assert len(failed) == 7 and trials[-1].state == TrialState.FAIL
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 1
    assert "stopping: the last 7 finished trials all failed" in caplog.text
    assert "cannot fit" in caplog.text
    # Under a compute budget, which failed trials do not spend, the same stop ends the run.
    spent = _study(workdir)
    runner.set_compute_budget(spent, {"steps": 10})
    assert runner.work(spent, _fails_as_family, unlimited=True, max_failed_in_a_row=7) < 20
    # Abandoned trials (a dead worker's) and running ones do not make or break a streak.
    marked = [t for t in trials if t.state == TrialState.FAIL][-3:]
    for t in marked:
        t.user_attrs[study_format.ABANDONED] = "worker died"
    assert len(runner.failed_in_a_row(trials)) == 4


def _fails_one_in_three(trial: optuna.Trial) -> float:
    if trial.number % 3 == 2:
        raise ValueError("a diverging configuration")
    return trial.suggest_float("x", -3, 3)


def test_a_few_failing_configurations_do_not_stop_the_study(workdir) -> None:
    study = _study(workdir)
    runner.set_budget(study, 30)
    assert runner.work(study, _fails_one_in_three, max_failed_in_a_row=2) == 30


def test_attributes_recorded_with_the_outcome_share_its_journal_append(workdir: Path) -> None:
    """``record_with_outcome`` within run_trial: the attributes reach the storage with the
    trial's state, in one journal append (no write of their own); outside it, at once."""
    study = _study(workdir)
    seen: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        runner.record_with_outcome(trial, "a", 1)
        runner.record_with_outcome(trial, "b", {"c": [2.5]})
        seen.append(_optuna.read_trial(study, trial).user_attrs)  # not written yet
        return trial.suggest_float("x", 0, 1)

    backend = _optuna.journal_backend(_optuna.storage_of(study))
    trial = runner.next_trial(study, unlimited=True)
    before = backend.appends
    assert runner.run_trial(study, trial, objective) == TrialState.COMPLETE
    assert backend.appends - before == 2  # the parameter, then the attributes with the state
    (done,) = study.get_trials()
    assert done.state == TrialState.COMPLETE and seen == [{}]
    assert done.user_attrs == {"a": 1, "b": {"c": [2.5]}}
    fixed = optuna.trial.FixedTrial({"x": 0.5})
    runner.record_with_outcome(fixed, "a", 1)
    assert fixed.user_attrs == {"a": 1}


def test_a_trial_abandoned_while_it_ran_keeps_its_abandoners_state(workdir: Path) -> None:
    """Another worker declared the trial dead while it ran: its held attributes and state are
    refused once, at the tell, not at some later read of the study."""
    study = _study(workdir)
    other = get_storage(str(workdir / "s.journal"))  # another process's view of the file

    def objective(trial: optuna.Trial) -> float:
        runner.record_with_outcome(trial, "a", 1)
        other.set_trial_state_values(_optuna.trial_id(trial), TrialState.FAIL)
        return 0.5

    trial = runner.next_trial(study, unlimited=True)
    assert runner.run_trial(study, trial, objective) == TrialState.FAIL
    assert [t.state for t in _optuna.read_trials(study)] == [TrialState.FAIL]
    assert "a" not in study.get_trials()[0].user_attrs


def test_a_write_to_a_trial_abandoned_meanwhile_is_no_failure_of_the_configuration(
    workdir: Path, caplog
) -> None:
    """The objective's intermediate report hit the trial another worker had abandoned: it was
    logged as 'trial 3 failed: UpdateFinishedTrialError'."""
    study = _study(workdir)

    def objective(trial: optuna.Trial) -> float:
        runner.abandon(study, _optuna.read_trial(study, trial), "no heartbeat")  # another worker
        trial.report(0.5, 1)
        return 0.5

    trial = runner.next_trial(study, unlimited=True)
    with caplog.at_level("WARNING", logger="tuneops"):
        assert runner.run_trial(study, trial, objective) == TrialState.FAIL
    assert "was abandoned while it ran" in caplog.text and "failed:" not in caplog.text
    assert study.get_trials()[1].user_attrs[study_format.RETRY_OF] == trial.number  # queued


def test_a_storage_gone_during_a_trial_leaves_it_running_to_be_queued_again(
    workdir: Path,
) -> None:
    """Told FAIL once the server was back (a PostgreSQL restart of 30-65 s), the trial spent a
    place of the budget and never ran again, while the message promised it would."""
    import pytest

    from tuneops.errors import StorageUnavailable

    study = _study(workdir)

    def objective(trial: optuna.Trial) -> float:
        raise StorageUnavailable("storage 'postgresql://...' stayed unreachable")

    trial = runner.next_trial(study, unlimited=True)
    with pytest.raises(StorageUnavailable):
        runner.run_trial(study, trial, objective)
    assert [t.state for t in _optuna.read_trials(study)] == [TrialState.RUNNING]


def test_two_runs_that_find_the_study_empty_draw_streams_of_their_own(workdir: Path) -> None:
    """Two processes that open one study in the same moment both find it empty, so both number
    worker 0's stream from 0 trials; each is handed a trial of its own number and draws from it
    (they proposed the same configurations: 6 of 12 trials on PostgreSQL). A single worker
    draws the stream it always did."""
    from tuneops.data import load_dataset
    from tuneops.spec import load_spec
    from tuneops.tuning import _components

    spec = load_spec({"study": "together", "data": {"source": "sklearn:iris"},
                      "model": {"family": "knn"}, "objectives": ["accuracy"],
                      "storage": str(workdir / "together.journal"),
                      "search": {"n_trials": 8, "seed": 3, "sampler": "random", "pruner": "none"}})
    _, factory, _ = _components(spec, load_dataset("sklearn:iris"))
    storage = get_storage(spec.storage)
    optuna.create_study(study_name="together", storage=storage)
    one, two = (optuna.load_study(study_name="together", storage=storage,
                                  sampler=factory(0, resumed=0)) for _ in range(2))
    first, second = one.ask(), two.ask()  # trials 0 and 1, from samplers built for 0 trials
    assert (first.number, second.number) == (0, 1)
    a = {k: first.suggest_int(k, 1, 10_000) for k in "abc"}
    b = {k: second.suggest_int(k, 1, 10_000) for k in "abc"}
    assert a != b

    # a single worker's first trial is the one expected: the stream it always drew
    alone = optuna.create_study(sampler=factory(0, resumed=0)).ask()
    assert {k: alone.suggest_int(k, 1, 10_000) for k in "abc"} == a


def test_a_forked_worker_whose_run_died_says_so(monkeypatch) -> None:
    """A run killed with SIGKILL: Linux sends its forked workers SIGTERM, recorded as
    'interrupted (SIGTERM)' as if the user had sent it."""
    import os
    import signal

    stop = runner.Interrupted(signal.SIGTERM)
    assert stop.reason == "interrupted (SIGTERM)"  # not a forked worker
    monkeypatch.setattr(runner, "FORKED_FROM", os.getppid())
    assert stop.reason == "interrupted (SIGTERM)"  # its run is alive: the signal was sent
    monkeypatch.setattr(runner, "FORKED_FROM", -1)  # its parent changed: the run died
    assert stop.reason == "interrupted (SIGTERM: the run that started this worker stopped)"
    assert runner.Interrupted(signal.SIGINT).reason == "interrupted (SIGINT)"


def test_optuna_s_report_in_a_multi_objective_study_stops_at_the_first_trial(workdir) -> None:
    """Every trial failed the same way (20 of them before the run stopped on failures)."""
    import pytest

    import tuneops
    from tuneops.errors import UsageError

    calls = []

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        calls.append(trial.number)
        x = trial.suggest_float("x", 0, 1)
        trial.report(x, 1)
        return x, 1 - x

    with pytest.raises(UsageError, match=r"tuneops\.pruning\.report\(trial, values, step\)"):
        tuneops.tune(objective, n_trials=10, objectives=["a", "b"], storage=":memory:")
    assert calls == [0]


def test_what_abandoned_trials_ran_is_reported_as_lost_compute(workdir: Path, capsys) -> None:
    """A trial abandoned mid-run (its worker died) records none of its fits, its configuration
    runs again, and no budget counts it: its partial compute was counted nowhere, and said
    nowhere either (review)."""
    import time

    import pytest

    from tuneops.cli._common import print_lost, print_summary

    study = _study(workdir)
    trial = runner.next_trial(study, unlimited=True)
    for step in (1, 3, 9):  # the fidelity steps it reported before its worker died
        trial.report(0.5, step)
    started = _optuna.read_trial(study, trial).datetime_start.timestamp()
    time.sleep(0.3)  # a heartbeat 0.2 s after the start, then the worker died
    _optuna.set_trial_user_attr(study, trial, study_format.HEARTBEAT, started + 0.2)
    runner.abandon(study, _optuna.read_trial(study, trial), "no heartbeat for 60 s")
    retry = runner.next_trial(study, unlimited=True)  # its configuration again: counted
    runner.run_trial(study, retry, fast)
    extra = runner.next_trial(study, unlimited=True)  # beyond the budget: retired, never run
    runner._retire(study, _optuna.read_trial(study, extra), "beyond the budget", claimed=True)
    assert [t.number for t in study.get_trials() if study_format.is_abandoned(t)] == [0, 2]
    results = study_results(study)
    lost = results["lost_compute"]
    assert lost["n_trials"] == 1 and lost["trials"] == [0]
    assert lost["ran_s"] == pytest.approx(0.2) and lost["steps"] == 9  # to its last heartbeat
    print_summary(results)
    out = capsys.readouterr()
    assert "Lost compute: 1 abandoned trial(s) ran at least 0.2 s (wall: until stopped, or to " \
        "the last heartbeat of a worker that died) and 9 fidelity steps before their workers " \
        "stopped." in out.out + out.err
    # under a compute budget, said not to count in it
    print_lost({**results, "pruning": {"compute": {"unit": "steps", "budget": 50.0}}})
    out = capsys.readouterr()
    assert "before their workers stopped; the compute budget does not count it" in out.out + out.err
    # without an abandoned trial there is nothing to say
    clean = _study(workdir)
    runner.run_trial(clean, runner.next_trial(clean, unlimited=True), fast)
    assert "lost_compute" not in study_results(clean)


def test_a_trial_whose_worker_died_before_its_first_heartbeat_lost_an_unknown_time(
    workdir: Path, capsys
) -> None:
    """A worker SIGKILLed 7 s into its trial, before the first heartbeat (up to 10 s in), left
    only the trial's start: `tuneops show` said 'ran at least 0.0 s', a false figure."""
    import time

    import pytest

    from tuneops.cli._common import print_lost

    study = _study(workdir)
    unseen = runner.next_trial(study, unlimited=True)
    time.sleep(0.2)
    runner.abandon(study, _optuna.read_trial(study, unseen), "worker vm:1 is no longer running")
    lost = study_results(study)["lost_compute"]
    assert lost["unknown"] == [0] and lost["ran_s"] is None
    print_lost({"lost_compute": lost})
    said = " ".join("".join(capsys.readouterr()).split())
    assert "Lost compute: 1 abandoned trial(s) ran for an unknown time before their workers " \
        "stopped (its worker died before writing a heartbeat, the record of how long a trial " \
        "ran)." in said, said
    assert "0.0 s" not in said
    # beside one whose heartbeat says how long it ran at least: only that one is counted
    seen = runner.next_trial(study, unlimited=True)
    started = _optuna.read_trial(study, seen).datetime_start.timestamp()
    time.sleep(0.3)  # a heartbeat 0.2 s after the start, then the worker died
    _optuna.set_trial_user_attr(study, seen, study_format.HEARTBEAT, started + 0.2)
    runner.abandon(study, _optuna.read_trial(study, seen), "no heartbeat for 60 s")
    lost = study_results(study)["lost_compute"]
    assert lost["unknown"] == [0] and lost["ran_s"] == pytest.approx(0.2)
    print_lost({"lost_compute": lost})
    said = " ".join("".join(capsys.readouterr()).split())
    assert "Lost compute: 2 abandoned trial(s) ran at least 0.2 s (wall: until stopped, or to " \
        "the last heartbeat of a worker that died) before their workers stopped, not counting 1 " \
        "whose time is unknown (its worker died before writing a heartbeat, the record of how " \
        "long a trial ran)." in said, said


def test_lost_compute_of_an_interrupted_trial_counts_until_it_was_stopped(workdir: Path) -> None:
    """A trial its worker gave back on SIGTERM or Ctrl-C ran until then, which its worker
    recorded: lost_compute said 'ran at least 0.0 s' of trials stopped after 5 s (no heartbeat
    within a trial's first 10 s), while the workers table counted those 5 s as busy time."""
    import signal
    import time

    import pytest

    study = _study(workdir)
    trial = runner.next_trial(study, unlimited=True)
    trial.report(0.5, 1)
    time.sleep(0.3)
    runner.abandon(study, _optuna.read_trial(study, trial), runner.Interrupted(signal.SIGTERM).reason)
    stopped = study.get_trials(deepcopy=False)[0]
    ran = (stopped.datetime_complete - stopped.datetime_start).total_seconds()
    assert ran >= 0.3
    assert study_results(study)["lost_compute"]["ran_s"] == pytest.approx(ran)
