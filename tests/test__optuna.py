"""The seam to Optuna's internals, tested on its own: each reach into a private name does what
tuneops relies on, on journal and SQLite storages. CI runs this on the lowest and the newest
supported Optuna, so an upgrade that moves a private name fails here first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from tuneops import _optuna
from tuneops.storage import get_storage


@pytest.fixture(params=["journal", "sqlite"])
def study(request: pytest.FixtureRequest, tmp_path: Path) -> optuna.Study:
    url = str(tmp_path / "s.journal") if request.param == "journal" else f"sqlite:///{tmp_path / 's.db'}"
    return optuna.create_study(study_name="seam", storage=get_storage(url))


def test_trials_are_read_created_and_told_through_the_storage(study: optuna.Study) -> None:
    template = optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs={"worker": "w"})
    trial = _optuna.create_trial(study, template)
    assert trial.number == 0 and _optuna.frozen(trial).user_attrs == {"worker": "w"}
    assert [t.number for t in _optuna.read_trials(study, states=(TrialState.RUNNING,))] == [0]
    assert _optuna.read_trial(study, trial).state == TrialState.RUNNING
    trial.suggest_float("x", 0, 1)
    assert _optuna.tell(study, trial, [0.5], TrialState.COMPLETE) == TrialState.COMPLETE
    # a trial finished meanwhile (declared dead) is skipped and keeps its state
    assert _optuna.tell(study, trial, [0.7], TrialState.COMPLETE) == TrialState.COMPLETE
    assert study.trials[0].values == [0.5]


def test_claiming_a_queued_trial_is_atomic(study: optuna.Study) -> None:
    study.enqueue_trial({"x": 0.3})
    queued = _optuna.read_trials(study)[0]
    assert _optuna.set_trial_state(study, queued, TrialState.RUNNING) is True
    assert _optuna.set_trial_state(study, queued, TrialState.RUNNING) is False  # taken already
    _optuna.set_trial_user_attr(study, queued, "abandoned", "test")
    _optuna.set_trial_state(study, queued, TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        _optuna.set_trial_state(study, queued, TrialState.RUNNING)
    assert study.trials[0].user_attrs["abandoned"] == "test"
    assert _optuna.trial_id(queued) == _optuna.trial_id(study.trials[0])


def test_study_attributes_and_shared_trials(study: optuna.Study) -> None:
    _optuna.set_study_system_attr(study, "tuneops:budget", {"n_trials": 3})
    assert _optuna.study_system_attrs(study)["tuneops:budget"] == {"n_trials": 3}
    study.set_user_attr("k", 1)
    assert _optuna.study_user_attrs(study) == {"k": 1}
    assert _optuna.storage_of(study) is study._storage and isinstance(_optuna.study_id(study), int)
    trials = _optuna.read_trials(study)
    _optuna.share_trials(study, trials)  # the next ask() uses these instead of reading again
    assert study.ask().number == 0


def test_the_pruner_sees_the_latest_reports(study: optuna.Study) -> None:
    trial = study.ask()
    trial.report(0.5, step=1)
    assert _optuna.latest(trial).intermediate_values == {1: 0.5}


def test_hypervolume_and_cached_storage(tmp_path: Path) -> None:
    points = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    assert _optuna.hypervolume(points, np.array([2.0, 2.0])) == pytest.approx(3.25)
    assert _optuna.hypervolume(np.empty((0, 2)), np.array([1.0, 1.0])) == 0.0
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'c.db'}")
    cached = _optuna.cached_storage(rdb)
    assert isinstance(cached, optuna.storages.BaseStorage)
    assert optuna.create_study(storage=cached).study_name


def test_quiet_restores_the_verbosity() -> None:
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        with _optuna.quiet():
            assert optuna.logging.get_verbosity() == optuna.logging.WARNING
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
    finally:
        optuna.logging.set_verbosity(before)
