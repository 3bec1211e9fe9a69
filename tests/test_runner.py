"""The global budget as a rolling window of slots: exact counts, no owner needed, repairs.

The window's contract on every storage (PostgreSQL and Redis included) runs in test_storage.py
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

from tuneops import runner
from tuneops.storage import get_storage


def fast(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", -3, 3)


def _study(workdir: Path) -> optuna.Study:
    return optuna.create_study(study_name=f"w-{uuid.uuid4().hex[:6]}", storage=get_storage(str(workdir / "s.journal")))


def _budget(study: optuna.Study) -> dict:
    return study._storage.get_study_system_attrs(study._study_id)[runner.BUDGET]


def _state_counts(study: optuna.Study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    counts = {s.name: sum(t.state == s for t in runner.counted(trials)) for s in TrialState}
    counts["abandoned"] = len(trials) - len(runner.counted(trials))
    return {k: v for k, v in counts.items() if v}


def test_only_a_window_of_the_budget_is_queued(workdir: Path) -> None:
    study = _study(workdir)
    assert runner.ensure_slots(study, 50, n_workers=3) == 50
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == runner.window(3) == 4
    assert [t.system_attrs[runner.SLOT] for t in waiting] == [0, 1, 2, 3]
    assert _budget(study) == {"n_trials": 50, "base": 0, "slots": 50, "window": 4}

    trial = runner.next_trial(study, identity=runner.worker_identity())
    queued = study.get_trials(states=(TrialState.WAITING,))
    claimed = trial._cached_frozen_trial.system_attrs[runner.SLOT]
    assert len(queued) == 4  # the claim queued its successor, labelled for this worker
    successor = [t for t in queued if t.system_attrs[runner.SLOT] == claimed + 4]
    assert len(successor) == 1 and successor[0].user_attrs["worker"] == runner.worker_identity()


def _work(url: str, name: str) -> None:
    study = optuna.load_study(study_name=name, storage=get_storage(url))
    runner.work(study, fast)


def test_workers_finish_the_budget_without_its_owner(workdir: Path) -> None:
    url = str(workdir / "s.journal")
    study = optuna.create_study(study_name="ownerless", storage=get_storage(url))
    runner.ensure_slots(study, 15)  # the owner queues a window of 2 and is gone
    procs = [multiprocessing.get_context("fork").Process(target=_work, args=(url, "ownerless")) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert _state_counts(study) == {"COMPLETE": 15}
    slots = sorted(t.system_attrs[runner.SLOT] for t in study.get_trials())
    assert slots == list(range(15))  # every slot queued once, none skipped


def test_a_claim_that_died_before_queueing_its_successor_loses_nothing(workdir: Path) -> None:
    study = _study(workdir)
    runner.ensure_slots(study, 6)  # slots 0 and 1; each claim queues the slot two further
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lost = study.get_trials(states=(TrialState.WAITING,))[0]
    # A worker claims slot 0 and is killed before it queues slot 2.
    assert study._storage.set_trial_state_values(lost._trial_id, state=TrialState.RUNNING)
    study._storage.set_trial_user_attr(lost._trial_id, runner.WORKER, runner.worker_identity() | {"pid": int(dead.stdout)})

    runner.work(study, fast)

    assert _state_counts(study) == {"COMPLETE": 6, "abandoned": 1}
    retry = [t for t in study.get_trials() if t.user_attrs.get(runner.RETRY_OF) == lost.number]
    assert len(retry) == 1 and retry[0].system_attrs[runner.SLOT] == 0  # the retry queued slot 2


def test_a_slot_queued_twice_runs_once(workdir: Path) -> None:
    study = _study(workdir)
    runner.ensure_slots(study, 4)
    runner._enqueue(study, slot=1)  # as a worker stalled past the grace period would

    runner.work(study, fast)

    assert _state_counts(study) == {"COMPLETE": 4, "abandoned": 1}
    duplicate = [t for t in study.get_trials() if runner.retired(t)]
    assert len(duplicate) == 1 and duplicate[0].user_attrs["abandoned"] == "retired: duplicate slot 1"
    assert not duplicate[0].params


def test_a_new_budget_replaces_the_earlier_one(workdir: Path) -> None:
    study = _study(workdir)
    runner.ensure_slots(study, 10)
    runner.work(study, fast, deadline=0)  # nothing runs: the deadline has passed
    assert runner.ensure_slots(study, 3) == -7  # lowered on resume: slots 0, 1 stay, 1 more
    budget = _budget(study)
    assert (budget["base"], budget["slots"]) == (10, 1)
    runner.work(study, fast)
    assert _state_counts(study) == {"COMPLETE": 3}
    assert runner.ensure_slots(study, 7, n_workers=2) == 4  # raised: four more, window of three
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 3
    runner.work(study, fast)
    assert _state_counts(study) == {"COMPLETE": 7}


def test_one_worker_replays_the_same_study_for_the_same_seed(workdir: Path) -> None:
    """Warm-start configurations are claimed in their queued order and slots in number order, so a
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
