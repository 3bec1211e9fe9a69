"""Worker contribution analysis: a pure function of the trials."""

from __future__ import annotations

from datetime import datetime, timedelta

import optuna
from optuna.trial import TrialState

from tuneops.contribution import contribution_section, worker_contributions

T0 = datetime(2026, 1, 1, 12, 0, 0)


def _trial(number: int, worker: str, state: TrialState, values=None, seconds: float = 1.0, **attrs):
    t = optuna.trial.create_trial(
        state=state, values=values,
        user_attrs={"worker": {"host": worker.split(":")[0], "pid": int(worker.split(":")[1]), "id": worker}, **attrs},
    )
    t.number = number
    t.datetime_start, t.datetime_complete = T0, T0 + timedelta(seconds=seconds)
    return t


def test_single_objective_counts_best_and_busy_time() -> None:
    trials = [
        _trial(0, "a:1", TrialState.COMPLETE, [0.8], seconds=2),
        _trial(1, "b:2", TrialState.COMPLETE, [0.9], seconds=3),
        _trial(2, "a:1", TrialState.PRUNED, seconds=0.5),
        _trial(3, "b:2", TrialState.FAIL, seconds=1, fail_reason="boom"),
        _trial(4, "a:1", TrialState.FAIL, seconds=4, abandoned="worker a:1 is no longer running"),
        # a trial retired unrun (budget lowered): not a:1's work
        _trial(5, "a:1", TrialState.FAIL, seconds=0, abandoned="retired: budget lowered to 5"),
    ]
    rows = {r["worker"]: r for r in worker_contributions(trials, ["maximize"])}
    a, b = rows["a:1"], rows["b:2"]
    assert (a["complete"], a["pruned"], a["failed"], a["abandoned"]) == (1, 1, 0, 1)
    assert (b["complete"], b["pruned"], b["failed"], b["abandoned"]) == (1, 0, 1, 0)
    # trial 4's worker died before its first heartbeat: its time is unknown, left out (not
    # 0 s, nor the 4 s until another process noticed: a killed worker showed 70 s busy for
    # 8 s of life), and counted as unknown
    assert a["busy_s"] == 2.5 and b["busy_s"] == 4.0
    assert (a["busy_unknown"], b["busy_unknown"]) == (1, 0)
    assert (a["best"], a["has_best"], b["best"], b["has_best"]) == (0.8, False, 0.9, True)
    assert (a["pareto_share"], b["pareto_share"]) == (0.0, 1.0)


def test_a_dead_workers_trial_counts_until_its_last_heartbeat() -> None:
    beat = (T0 + timedelta(seconds=8)).timestamp()
    died = _trial(0, "a:1", TrialState.FAIL, seconds=70, abandoned="no heartbeat from worker a:1",
                  heartbeat=beat)
    stopped = _trial(1, "b:2", TrialState.FAIL, seconds=5, abandoned="interrupted (SIGINT)",
                     heartbeat=(T0 + timedelta(seconds=1)).timestamp())
    rows = {r["worker"]: r for r in worker_contributions([died, stopped], ["maximize"])}
    assert rows["a:1"]["busy_s"] == 8.0
    assert rows["b:2"]["busy_s"] == 5.0  # interrupted: it ran until it was stopped


def test_a_worker_that_died_before_its_first_heartbeat_has_an_unknown_busy_time(capsys) -> None:
    """lost_compute says 'unknown' for such a trial; the workers table added 0.0 s for it (a
    worker SIGKILLed 7 s into its only trial showed busy 0.0)."""
    from tuneops._study import lost_compute
    from tuneops.cli._common import print_workers
    from tuneops.report import figures as F

    died = _trial(0, "a:1", TrialState.FAIL, seconds=7, abandoned="no heartbeat from worker a:1")
    trials = [died, _trial(1, "b:2", TrialState.COMPLETE, [0.9], seconds=3)]
    assert lost_compute(trials)["unknown"] == [0]
    rows = {r["worker"]: r for r in worker_contributions(trials, ["maximize"])}
    assert (rows["a:1"]["busy_s"], rows["a:1"]["busy_unknown"]) == (None, 1)
    assert (rows["b:2"]["busy_s"], rows["b:2"]["busy_unknown"]) == (3.0, 0)
    print_workers({"workers": {"n_workers": 2, "hosts": ["a", "b"], "workers": list(rows.values())}})
    table = capsys.readouterr().out
    line = next(line for line in table.splitlines() if "a:1" in line)
    assert "unknown" in line and "0.0" not in line, table
    # in the report's figure too
    assert F.WorkerRow("a:1", {"FAIL": 1}, None, 0, 1).busy_label == "unknown busy time"
    assert F.WorkerRow("a:1", {"FAIL": 2}, 5.2, 0, 1).busy_label == "5s busy + 1 unknown"


def test_pareto_share_on_two_objectives_prefers_feasible_trials() -> None:
    trials = [
        _trial(0, "a:1", TrialState.COMPLETE, [0.9, 5.0]),  # front
        _trial(1, "b:2", TrialState.COMPLETE, [0.8, 1.0]),  # front
        _trial(2, "b:2", TrialState.COMPLETE, [0.7, 2.0]),  # dominated by 1
        _trial(3, "c:3", TrialState.COMPLETE, [0.95, 9.0]),  # front
    ]
    rows = {r["worker"]: r for r in worker_contributions(trials, ["maximize", "minimize"])}
    assert {w: r["pareto"] for w, r in rows.items()} == {"a:1": 1, "b:2": 1, "c:3": 1}
    assert all(r["best"] is None for r in rows.values())  # no single best with two objectives
    assert abs(sum(r["pareto_share"] for r in rows.values()) - 1) < 1e-12


def test_no_best_and_no_front_member_when_no_trial_meets_the_constraints() -> None:
    trials = [
        _trial(0, "a:1", TrialState.COMPLETE, [0.9, 5.0]),
        _trial(1, "b:2", TrialState.COMPLETE, [0.8, 1.0]),
    ]
    # each misses a constraint by 0.5
    for directions in (["maximize", "minimize"], ["maximize"]):
        kept = [optuna.trial.create_trial(
            state=t.state, values=t.values[: len(directions)], user_attrs=t.user_attrs,
            system_attrs={"constraints": [0.5]},
        ) for t in trials]
        rows = worker_contributions(kept, directions)
        assert [(r["pareto"], r["has_best"], r["best"]) for r in rows] == [(0, False, None)] * 2


def test_pareto_share_of_the_front_the_selection_printed() -> None:
    # The selection's front drops ties within noise (here trial 0, tied with 3 on accuracy):
    # the shares add up over the front a user reads, not the plain Pareto front.
    trials = [
        _trial(0, "a:1", TrialState.COMPLETE, [0.9, 5.0]),
        _trial(1, "b:2", TrialState.COMPLETE, [0.8, 1.0]),
        _trial(3, "c:3", TrialState.COMPLETE, [0.95, 9.0]),
    ]
    rows = {
        r["worker"]: r
        for r in worker_contributions(trials, ["maximize", "minimize"], front=[1, 3])
    }
    assert {w: r["pareto"] for w, r in rows.items()} == {"a:1": 0, "b:2": 1, "c:3": 1}
    assert {w: r["pareto_share"] for w, r in rows.items()} == {"a:1": 0, "b:2": 0.5, "c:3": 0.5}


def test_section_is_absent_without_worker_records() -> None:
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert contribution_section(study, study.get_trials()) is None


def test_a_study_run_again_with_other_constraints_credits_the_best_that_meets_them() -> None:
    """After 'value <= 2' became 'value <= 0.5', worker a:1 was credited with the study's best
    (0.9) by its trial's record of the old constraint, a trial the selection refused."""
    from tuneops import _study

    study = optuna.create_study(direction="maximize")
    for number, (worker, x) in enumerate([("a:1", 0.9), ("b:2", 0.4)]):
        host, pid = worker.split(":")
        study.add_trial(optuna.trial.create_trial(
            value=x, constraints={"value <= 2": x - 2},
            user_attrs={"worker": {"host": host, "pid": int(pid), "id": worker}}))
    study.set_user_attr(_study.CONSTRAINTS, ["value <= 0.5"])
    rows = {r["worker"]: r for r in contribution_section(study, study.get_trials())["workers"]}
    assert (rows["a:1"]["best"], rows["a:1"]["has_best"]) == (None, False)
    assert (rows["b:2"]["best"], rows["b:2"]["has_best"]) == (0.4, True)
