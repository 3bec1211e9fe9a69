"""The end-of-run record: reused while provably current, recomputed otherwise (counted calls).

A tiny two-objective ``tune()`` study on a journal file writes the record at its end; then
``tuneops show``, ``study_results`` and the report must not recompute what the record holds,
and must recompute as soon as a trial is added, a trial is unfinished, the study's attributes
change, or the stored choice is not what ``reselect`` would give.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

import tuneops
import tuneops.selection
from tuneops import _record, _study, contribution, pruning, results, selection
from tuneops._study import load_study
from tuneops.report.document import build_report


def _objective(trial: optuna.Trial) -> tuple[float, float]:
    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_float("y", 0.0, 1.0)
    return x, 1.0 - x + 0.01 * y


def _run(n_trials: int = 30, **kwargs) -> optuna.Study:
    tuneops.tune(
        _objective,
        objectives=["f1", "f2"],
        directions=["minimize", "minimize"],
        n_trials=n_trials,
        sampler="random",
        storage="tuneops.journal",
        study="rec",
        **kwargs,
    )
    return load_study("rec", "tuneops.journal")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the recomputations the record saves: pruning, workers, selection."""
    counted: Counter[str] = Counter()

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            counted[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(pruning, "pruning_savings", counting("pruning", pruning.pruning_savings))
    monkeypatch.setattr(
        contribution, "contribution_section", counting("workers", contribution.contribution_section)
    )
    monkeypatch.setattr(
        contribution,
        "worker_contributions",
        counting("worker_contributions", contribution.worker_contributions),
    )
    # `show` and the report import reselect from tuneops.selection when they need it
    monkeypatch.setattr(tuneops.selection, "reselect", counting("reselect", selection.reselect))
    return counted


def _fresh(counted: Counter[str]) -> Counter[str]:
    counted.clear()  # the run's own computations are not the readers'
    return counted


def _show(cli, *args: str) -> str:
    code, out, err = cli("show", "rec", *args)
    assert code == 0, err
    return out


def test_a_run_writes_a_record_that_describes_its_study(workdir: Path) -> None:
    study = _run()
    trials = study.get_trials(deepcopy=False)
    record = _record.current_record(study, trials)
    assert record is not None
    assert record["n_trials"] == 30 and record["states"] == {"COMPLETE": 30}
    assert set(record["sections"]) == set(_record.SECTIONS)
    stored = study.user_attrs[_study.SELECTION]
    assert record["selection"] is True  # the stored choice was made from these 30 trials
    assert _record.current_choice(study, trials) == stored
    doc = json.loads((workdir / "tuneops-out" / "rec" / "results.json").read_text())
    assert record["sections"]["workers"] == doc["workers"]
    assert record["sections"]["pruning"] == doc.get("pruning")


def test_show_reuses_a_current_record_and_prints_the_same(workdir: Path, cli, calls) -> None:
    _run()
    _fresh(calls)
    reused = {args: _show(cli, *args) for args in [(), ("--all",), ("--json",), ("--trials",)]}
    assert calls == Counter()  # nothing recomputed: selection, pruning, workers all stored
    study = load_study("rec", "tuneops.journal")
    study.set_user_attr(_study.RESULTS, None)  # no record: everything is computed again
    recomputed = {args: _show(cli, *args) for args in reused}
    assert calls["reselect"] == 4 and calls["pruning"] == 4 and calls["workers"] == 4
    assert recomputed == reused


def test_a_trial_added_after_the_run_makes_the_record_stale(workdir: Path, cli, calls) -> None:
    _run()
    _fresh(calls)
    study = load_study("rec", "tuneops.journal")
    study.add_trial(
        create_trial(
            params={"x": 0.5, "y": 0.0},
            distributions=study.trials[0].distributions,
            values=[0.0, 0.0],  # dominates every trial: the front and the choice change
        )
    )
    trials = study.get_trials(deepcopy=False)
    assert _record.current_record(study, trials) is None
    assert _record.current_choice(study, trials) is None
    out = _show(cli, "--json")
    assert calls["reselect"] == 1 and calls["pruning"] == 1 and calls["workers"] == 1
    doc = json.loads(out)
    assert doc["n_trials"] == {"complete": 31}
    assert doc["selection"]["selected_trial"] == 30  # the new trial, not the stored choice
    assert doc["pareto_front"][0]["number"] == 30


def test_changed_attributes_make_the_record_stale(workdir: Path, cli, calls) -> None:
    _run()
    _fresh(calls)
    study = load_study("rec", "tuneops.journal")
    study.set_user_attr(_study.CONSTRAINTS, ["f1 <= 0.5"])  # as a resumed run would
    assert _record.current_record(study, study.get_trials(deepcopy=False)) is None
    doc = json.loads(_show(cli, "--json"))
    assert calls["reselect"] == 1 and calls["pruning"] == 1
    assert all(t["values"][0] <= 0.5 for t in doc["pareto_front"])


def test_no_record_while_a_trial_is_unfinished(workdir: Path) -> None:
    study = _run()
    study.set_user_attr(_study.RESULTS, None)
    running = study.ask()  # a worker still running: its attributes may still change
    trials = study.get_trials(deepcopy=False)
    assert not _record.write_record(study, trials, {"pruning": None, "workers": None})
    assert study.user_attrs[_study.RESULTS] is None
    study.tell(running, [0.5, 0.5])
    trials = study.get_trials(deepcopy=False)
    assert _record.write_record(study, trials, {"pruning": None, "workers": None})
    assert _record.current_record(study, trials) is not None


def test_a_record_of_unfinished_trials_is_never_reused(workdir: Path) -> None:
    study = _run()
    study.ask()
    trials = study.get_trials(deepcopy=False)
    record = dict(study.user_attrs[_study.RESULTS])
    record.update(_record.basis(study, trials))  # forged: counts as now, one trial RUNNING
    assert record["states"][TrialState.RUNNING.name] == 1
    study.set_user_attr(_study.RESULTS, record)
    assert _record.current_record(study, trials) is None


def test_a_choice_from_other_trials_or_another_policy_is_not_reused(workdir: Path) -> None:
    study = _run()
    trials = study.get_trials(deepcopy=False)
    choice = dict(study.user_attrs[_study.SELECTION])
    sections = {"pruning": None, "warm_start": None, "workers": None}
    # made before the last trial completed: the record keeps its sections, not the choice
    _record.write_record(study, trials, sections, {**choice, "n_complete": 29})
    record = _record.current_record(study, trials)
    assert record is not None and record["selection"] is False
    assert _record.current_choice(study, trials) is None
    # a choice that is not the stored one is not vouched for either
    _record.write_record(study, trials, sections, {**choice, "selected_trial": -1})
    assert _record.current_choice(study, trials) is None
    _record.write_record(study, trials, sections, choice)
    assert _record.current_choice(study, trials) == choice

    _run(n_trials=30, selection="weighted")  # resumed: no new trial, the weighted choice
    study = load_study("rec", "tuneops.journal")
    trials = study.get_trials(deepcopy=False)
    record = _record.current_record(study, trials)
    assert record is not None and record["selection"] is True
    assert study.user_attrs[_study.SELECTION]["policy"] == "weighted"
    # reselect() applies knee to a study without a spec: the stored choice is not its answer
    assert _record.current_choice(study, trials) is None


def test_the_report_reuses_a_current_record_and_recomputes_a_stale_one(
    workdir: Path, calls
) -> None:
    study = _run()
    _fresh(calls)
    stored = study.user_attrs[_study.SELECTION]
    report = build_report(study)
    assert calls == Counter()
    assert report.selected == stored["selected_trial"]
    assert report.panel("workers").data is not None

    study.add_trial(
        create_trial(
            params={"x": 0.5, "y": 0.0},
            distributions=study.trials[0].distributions,
            values=[0.0, 0.0],
        )
    )
    report = build_report(study)
    assert calls["worker_contributions"] == 1 and calls["reselect"] == 1
    assert report.selected == 30  # not the stale stored choice
    assert report.selection is not None and report.selection["n_complete"] == 31


def test_results_reuse_the_record_with_the_same_document(workdir: Path, calls) -> None:
    study = _run()
    choice = selection.reselect(study)
    _fresh(calls)
    reused = results.study_results(study, choice=choice)
    assert calls == Counter()
    study.set_user_attr(_study.RESULTS, None)
    assert results.study_results(study, choice=choice) == {**reused}
    assert calls["pruning"] == 1 and calls["workers"] == 1


def _modules_after(workdir: Path, command: list[str]) -> set[str]:
    """The tuneops modules a fresh ``python -m tuneops COMMAND`` imported."""
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['tuneops', *{command!r}]\n"
        "try:\n"
        "    runpy.run_module('tuneops', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(' '.join(m for m in sys.modules if m.startswith('tuneops')), file=sys.stderr)\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=workdir
    )
    assert done.returncode == 0, done.stderr
    return set(done.stderr.strip().splitlines()[-1].split())


def test_show_and_report_of_a_current_record_do_not_import_the_spec(workdir: Path) -> None:
    """The spec's pydantic models (0.2-0.3 s per process) load only to select again."""
    _run()
    show = _modules_after(workdir, ["show", "rec", "--storage", "tuneops.journal"])
    assert "tuneops.spec" not in show and "tuneops.selection" not in show
    report = _modules_after(
        workdir,
        ["report", "rec", "--storage", "tuneops.journal", "--format", "html", "--plotly", "cdn"],
    )
    assert "tuneops.spec" not in report and "tuneops.selection" not in report
    study = load_study("rec", "tuneops.journal")
    study.set_user_attr(_study.CONSTRAINTS, ["f1 <= 0.5"])  # stale: select again
    assert "tuneops.selection" in _modules_after(workdir, ["show", "rec"])


def test_the_report_does_not_trust_a_stored_choice_the_record_does_not_vouch_for(
    workdir: Path, calls
) -> None:
    study = _run()
    trials = study.get_trials(deepcopy=False)
    stored = dict(study.user_attrs[_study.SELECTION])
    other = next(n for n in stored["pareto_front"] if n != stored["selected_trial"])
    # a resumed run that found nothing feasible leaves an older choice behind (same trials)
    study.set_user_attr(_study.SELECTION, {**stored, "selected_trial": other})
    sections = {"pruning": None, "warm_start": None, "workers": None}
    assert _record.write_record(study, trials, sections, None)
    _fresh(calls)
    report = build_report(study)
    assert calls["reselect"] == 1
    assert report.selected == stored["selected_trial"]  # selected again, not the stale one


def test_changed_system_attributes_make_the_record_stale(workdir: Path) -> None:
    """The warm-start plan and the budgets are system attributes the sections read."""
    from tuneops import _optuna

    study = _run()
    trials = study.get_trials(deepcopy=False)
    assert _record.current_record(study, trials) is not None
    _study.set_compute_budget_record(study, "fit_cpu_s", 60.0)  # as a resumed run would
    assert _record.current_record(study, trials) is None
    assert _optuna.study_system_attrs(study)[_study.COMPUTE_BUDGET] == {"fit_cpu_s": 60.0}


def test_the_report_does_not_reuse_a_choice_made_under_other_constraints(
    workdir: Path, calls
) -> None:
    """A run resumed with other constraints, its first trial running: the report kept the
    stored choice because it counted as many complete trials as the study has (a trial of
    36.6 KiB selected under 'model_size_kb <= 20', with the old choice's notes)."""
    study = _run(constraints=["f1 <= 0.9"])
    stored = study.user_attrs[_study.SELECTION]
    study.ask()  # the next trial, running: the record is no longer current
    _fresh(calls)
    assert build_report(study).selection == stored  # the same rules: the run's choice reused
    assert calls["reselect"] == 0
    # the resumed run wrote its constraints, and has not selected yet
    least = min(t.values[0] for t in study.trials if t.values)
    study.set_user_attr(_study.CONSTRAINTS, [f"f1 <= {least + 1e-9}"])
    report = build_report(study)
    assert calls["reselect"] == 1
    assert report.selection == selection.reselect(study).to_dict() != stored
    assert report.selected != stored["selected_trial"]


def test_a_record_of_the_previous_format_vouches_for_nothing(workdir: Path, calls) -> None:
    """A study recorded before the selection's rules changed (format 2: weighted stretched
    noise, no note for a best trial left off the front): `show` printed its stored choice and
    notes, which selecting again no longer gives."""
    study = _run()
    record = dict(study.user_attrs[_study.RESULTS])
    assert record["format"] == _record.FORMAT == 3
    study.set_user_attr(_study.RESULTS, {**record, "format": 2})
    trials = study.get_trials(deepcopy=False)
    assert _record.current_record(study, trials) is None
    assert _record.current_choice(study, trials) is None
    assert _record.choice_outdated(study)
