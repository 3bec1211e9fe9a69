"""Artifacts an earlier tuneops wrote keep working after an upgrade: studies, results and
registered versions are read as they were written. Each test builds the old artifact itself,
as the earlier code wrote it (no old checkout is needed)."""

from __future__ import annotations

import json
import logging
import pickle
import re

import pytest
from conftest import tiny_spec

import tuneops
import tuneops.spec as spec_module
import tuneops.tuning
from tuneops import _study
from tuneops.errors import SpecError
from tuneops.spec import load_spec, load_stored_spec, objectives

# What tuneops accepted and stored before db0388e and ea74061, and now refuses in a new spec:
# the same constraint twice, two upper bounds on one metric, a constraint every model meets,
# selection weights under the knee policy.
OLD_CONSTRAINTS = [
    "accuracy >= 0.5",
    "accuracy >= 0.5",
    "latency_p95_ms <= 500",
    "latency_p95_ms <= 1000",
    "fit_time_s >= 0",
]
OLD_SELECTION = {"policy": "knee", "weights": {"accuracy": 2.0, "latency_p95_ms": 1.0}}


def old_spec(**changes) -> dict:
    old = {
        "study": "old",
        "objectives": ["accuracy", "latency_p95_ms"],
        "constraints": OLD_CONSTRAINTS,
        "selection": OLD_SELECTION,
    }
    return tiny_spec(**{**old, **changes})


@pytest.fixture
def old_study(workdir, monkeypatch):
    """A study run by a tuneops without those checks: the run as it was then (the checks
    taken out), its spec stored as written."""
    monkeypatch.setattr(objectives, "refused_since", lambda message, error=None: None)
    tuneops.run(old_spec(n_trials=3))
    monkeypatch.undo()
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(spec_module, "_WARNED", set())  # each test sees its warning
    study = tuneops.load_study("old", "tuneops.journal")
    assert _study.spec_record(study)["constraints"] == OLD_CONSTRAINTS  # as the old code wrote
    return study


def test_a_new_spec_with_those_settings_is_still_refused():
    with pytest.raises(SpecError, match=r"constraints\[4\]: every model meets 'fit_time_s >= 0'"):
        load_spec(old_spec())
    with pytest.raises(SpecError, match=r"constraints\[1\]: 'accuracy >= 0.5' repeats"):
        load_spec(old_spec(constraints=OLD_CONSTRAINTS[:4]))


def test_a_stored_spec_is_read_as_written_with_one_warning_naming_each_setting(caplog, monkeypatch):
    monkeypatch.setattr(spec_module, "_WARNED", set())
    caplog.set_level(logging.WARNING, logger="tuneops.spec")
    spec = load_stored_spec(old_spec(), "study 'old'")
    assert [str(c) for c in spec.constraints] == OLD_CONSTRAINTS
    assert dict(spec.selection.weights) == OLD_SELECTION["weights"]
    assert spec.selection.policy == "knee"
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith("study 'old': its stored spec holds 4 settings this tuneops refuses")
    for part in (
        "constraints[1]: 'accuracy >= 0.5' repeats constraints[0]",
        "constraints[3]: 'latency_p95_ms <= 1000' and constraints[2] 'latency_p95_ms <= 500' "
        "are both upper bounds",
        "constraints[4]: every model meets 'fit_time_s >= 0'",
        "selection.weights: read by policy 'weighted' only, but the policy is 'knee'; set "
        "policy: weighted, or remove weights",
        "Change them in the spec file",
    ):
        assert part in said, part
    load_stored_spec(old_spec(), "study 'old'")
    assert len(caplog.records) == 1  # once per process
    # Its copies and its pickled form (worker processes) read it the same way.
    assert spec.replace(n_trials=9).constraints == spec.constraints
    assert pickle.loads(pickle.dumps(spec)) == spec
    # Anything else wrong in a stored spec is refused as before.
    with pytest.raises(SpecError, match="unknown metric"):
        load_stored_spec(old_spec(constraints=["acuracy >= 0.5"]), "study 'old'")


def test_a_study_stored_with_them_is_shown_selected_exported_and_joined(old_study, cli, caplog):
    code, out, err = cli("select", "old")  # it was refused (exit 2), naming the first setting
    assert code == 0, err
    assert "Selected trial" in out
    assert "study 'old': its stored spec holds 4 settings" in caplog.text
    for command in (("show", "old"), ("export", "old", "--out", "exp")):
        code, _, err = cli(*command)
        assert code == 0, (command, err)
    choice = tuneops.reselect(old_study)
    assert choice.selected is not None and choice.policy == "knee"  # as the old code chose
    # A worker joins it from the stored spec (one more trial once the budget allows it).
    _study.set_budget_record(old_study, 4)
    assert tuneops.tuning.join("old", "tuneops.journal") == 1


def test_the_spec_it_ran_with_resumes_it(old_study, workdir, cli, caplog):
    """The spec file a team runs every day resumes its study after an upgrade (it was refused:
    exit 2, 'constraints[4]: every model meets ...'), with the warning; the run's results
    keep the settings as they were."""
    (workdir / "old.yaml").write_text(json.dumps(old_spec(n_trials=4)))
    code, out, err = cli("run", "old.yaml", "--no-report")
    assert code == 0, err
    assert "study 'old': its stored spec holds 4 settings" in caplog.text
    study = tuneops.load_study("old", "tuneops.journal")
    assert len(study.trials) == 4
    assert _study.spec_record(study)["constraints"] == OLD_CONSTRAINTS
    # Fixed in the file, it resumes too, and the study takes the fixed settings.
    fixed = old_spec(n_trials=5, constraints=["accuracy >= 0.5"], selection="knee")
    (workdir / "old.yaml").write_text(json.dumps(fixed))
    assert cli("run", "old.yaml", "--no-report")[0] == 0
    assert _study.spec_record(study)["constraints"] == ["accuracy >= 0.5"]


def test_a_new_study_or_other_such_settings_are_refused_as_before(old_study, workdir, cli):
    journal = (workdir / "tuneops.journal").read_bytes()
    for spec in (
        old_spec(study="new"),  # no study stored them: a new study
        old_spec(constraints=OLD_CONSTRAINTS[1:]),  # other settings than the stored ones
    ):
        (workdir / "s.yaml").write_text(json.dumps(spec))
        code, _, err = cli("run", "s.yaml", "--no-report")
        assert code == 2 and "every model meets 'fit_time_s >= 0'" in err, err
    assert (workdir / "tuneops.journal").read_bytes() == journal  # nothing written


def test_a_resume_with_another_spec_is_refused_as_before(old_study):
    with pytest.raises(SpecError, match="exists with other settings of search.seed"):
        tuneops.run(tiny_spec(study="old", objectives=["accuracy", "latency_p95_ms"], seed=1))
    with pytest.raises(SpecError, match="exists with other settings of search.seed"):
        tuneops.run(old_spec(seed=1))  # with the stored settings now refused, too


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"constraints": ["accuracy >= 0.9", "accuracy <= 0.8"]}, "leave no value of accuracy"),
        ({"constraints": ["accuracy >= 0.5", "accuracy > 0.5"]}, "strict and non-strict"),
        ({"constraints": ["latency_p95_ms > 0"]}, "every model meets 'latency_p95_ms > 0'"),
        ({"selection": {"policy": "knee", "priority": ["accuracy"]}}, "selection.priority"),
        ({"selection": {"policy": "weighted", "tolerance": 0.1}}, "selection.tolerance"),
        (
            {"selection": {"policy": "lexicographic", "priority": ["accuracy", "accuracy"]}},
            "'accuracy' is listed twice",
        ),
        ({"selection": {"policy": "weighted", "weights": {"accuracy": 0}}}, "at least one weight"),
    ],
)
def test_each_setting_refused_since_is_read_from_storage(changes, named, monkeypatch, caplog):
    monkeypatch.setattr(spec_module, "_WARNED", set())
    raw = tiny_spec(**{"objectives": ["accuracy", "latency_p95_ms"], **changes})
    with pytest.raises(SpecError, match=re.escape(named)):
        load_spec(raw)
    spec = load_stored_spec(raw, "study 'tiny'")
    assert len(spec.tolerated) == 1 and named in spec.tolerated[0]
    assert spec.to_dict()["constraints"] == raw.get("constraints", [])  # as written
    assert named in caplog.text
