"""End-to-end runs with tiny budgets: outputs, resume, parallel workers, failures, interrupts."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from conftest import ROOT, tiny_spec
from optuna.trial import TrialState
from sklearn.datasets import load_iris

import tuneops
import tuneops.tuning
from tuneops import _study, runner
from tuneops.errors import SpecError, UsageError
from tuneops.storage import get_storage


def finished(study):
    return [t for t in study.trials if t.state.is_finished() and "abandoned" not in t.user_attrs]


def test_run_writes_model_results_and_study(workdir):
    spec = tiny_spec(objectives=["accuracy", "model_size_kb"], constraints=["accuracy >= 0.8"])
    result = tuneops.run(spec)
    assert result.model_path.is_file() and result.results_path.is_file()
    model, meta = tuneops.load_model(result.model_path)
    ds = tuneops.load_dataset("sklearn:iris")
    assert (model.predict(ds.X) == ds.y).mean() > 0.8
    assert meta["trial"] == result.choice.selected.number
    assert meta["data"]["fingerprint"] == ds.fingerprint
    assert {"optuna", "scikit-learn", "python"} <= set(meta["versions"])
    results = json.loads(result.results_path.read_text())
    assert results["n_trials"] == {"complete": 4}
    assert results["selected"]["number"] == meta["trial"]
    assert {t["number"] for t in results["pareto_front"]} == {c.number for c in result.choice.front}
    stored = optuna.load_study(study_name="tiny", storage=get_storage(None))
    assert stored.user_attrs["tuneops:spec"]["study"] == "tiny"
    assert stored.user_attrs["tuneops:data"]["fingerprint"] == ds.fingerprint
    assert (workdir / "tuneops.journal").is_file()


def test_rerunning_the_same_spec_resumes(workdir):
    first = tuneops.run(tiny_spec(n_trials=3))
    params = [t.params for t in first.study.trials]
    second = tuneops.run(tiny_spec(n_trials=5))
    assert len(second.study.trials) == 5
    assert [t.params for t in second.study.trials[:3]] == params
    third = tuneops.run(tiny_spec(n_trials=5))
    assert len(third.study.trials) == 5  # nothing left to run
    # the results and the model carry the budget of the run that wrote them
    assert third.results["spec"]["search"]["n_trials"] == 5
    assert tuneops.load_model(third.model_path)[1]["spec"]["search"]["n_trials"] == 5


def test_a_budget_below_the_trials_held_is_said(workdir, caplog):
    tuneops.run(tiny_spec(n_trials=3))
    with caplog.at_level("WARNING", logger="tuneops"):
        lower = tuneops.run(tiny_spec(n_trials=2))
    assert len(lower.study.trials) == 3
    assert "already holds 3 trials, more than the budget of 2: none runs" in caplog.text
    assert lower.results["spec"]["search"]["n_trials"] == 2
    assert lower.results["spec"]["model"] == {"family": "knn"}  # the identity as first written


def test_resuming_across_fit_time_definitions_is_said_once(workdir, monkeypatch, caplog):
    """A study resumed by a tuneops that measures fit_time_s otherwise compared both kinds of
    trials on one axis; only the report said so, after the run (review)."""
    spec = tiny_spec(n_trials=2, objectives=["accuracy", "fit_time_s"])
    with monkeypatch.context() as m:  # the first run, by a tuneops of the previous definition
        m.setattr(_study, "FIT_TIME_VERSION", 2)
        first = tuneops.run(spec)
    assert {_study.fit_time_version(t) for t in first.study.trials} == {2}
    with caplog.at_level("WARNING", logger="tuneops"):
        tuneops.run({**spec, "search": {**spec["search"], "n_trials": 4}})
    said = [r.getMessage() for r in caplog.records if "fit_time_s is" in r.getMessage()]
    assert len(said) == 1, said  # once, not per trial or worker
    assert said[0].startswith(
        "study tiny: fit_time_s is an objective of this spec, and 2 of its trials measured it "
        "by another definition than this tuneops (version 3: CPU seconds of the model's final fit"
    )
    assert "2 (trials 0-1) as CPU seconds of every fit" in said[0]
    assert "The budget does not read fit_time_s" in said[0] and "run the spec as a new study" in said[0]
    # the report's finding names the same groups
    from tuneops.report import build_report

    (finding,) = [f for f in build_report(tuneops.load_study("tiny")).findings
                  if f.topic == "fit time"]
    assert "2 (trials 0-1) as CPU seconds of every fit" in finding.text
    assert "2 (trials 2-3) as CPU seconds of the model's final fit" in finding.text
    caplog.clear()
    # resumed again: the trials of this definition are no news, the older ones still are;
    # a spec that does not judge fit time is not told
    with caplog.at_level("WARNING", logger="tuneops"):
        tuneops.run({**spec, "search": {**spec["search"], "n_trials": 4}})
    assert "2 of its trials measured it by another definition" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="tuneops"):
        tuneops.run(tiny_spec(study="plain", n_trials=2, objectives=["accuracy", "fit_time_s"]))
        tuneops.run(tiny_spec(study="plain", n_trials=3, objectives=["accuracy", "fit_time_s"]))
    assert "fit_time_s is" not in caplog.text  # one definition throughout


def test_a_worker_of_another_fit_time_definition_refuses_or_warns_and_show_says_the_mix(
    workdir, monkeypatch, caplog, cli
):
    """`tuneops worker` of another tuneops version joined a study and wrote fit times of its own
    definition among the others without a word; `show` did not say the study mixed them
    (review)."""
    spec = tiny_spec(n_trials=2, objectives=["accuracy", "fit_time_s"])
    with monkeypatch.context() as m:  # a run of a tuneops that recorded no study definition
        m.setattr(_study, "FIT_TIME_VERSION", 2)
        m.setattr(_study, "set_fit_time_record", lambda study: None)
        tuneops.run(spec)
    # the definition is read from its trials: this tuneops' worker refuses, naming both
    with pytest.raises(UsageError, match="study 'tiny' measures fit_time_s by definition 2 "
                       r"\(CPU seconds of every fit.*this tuneops measures definition 3") as no:
        tuneops.tuning.join("tiny", timeout_s=5)
    assert "fit_time_s is an objective of the study" in str(no.value)
    assert "run the spec as a new study" in str(no.value)
    code, _, err = cli("worker", "--study", "tiny", "--storage", "tuneops.journal")
    assert code == 2 and "measures fit_time_s by definition 2" in err
    assert len(tuneops.load_study("tiny").trials) == 2  # nothing run
    # resumed by this tuneops: the study's definition is its now, and its workers join
    tuneops.run({**spec, "search": {**spec["search"], "n_trials": 3}})
    assert _study.study_fit_time_version(tuneops.load_study("tiny"), []) == 3
    with monkeypatch.context() as m:  # while a worker of the earlier definition is refused
        m.setattr(_study, "FIT_TIME_VERSION", 2)
        with pytest.raises(UsageError, match="measures fit_time_s by definition 3"):
            tuneops.tuning.join("tiny", timeout_s=5)
    # show and the results say the study mixes definitions
    code, out, err = cli("show", "tiny", "--storage", "tuneops.journal")
    assert code == 0
    assert "Warning: fit_time_s was measured by 2 definitions in this study" in err
    assert "2 (trials 0-1) as CPU seconds of every fit" in err
    code, out, _ = cli("show", "tiny", "--storage", "tuneops.journal", "--json")
    mix = json.loads(out)["fit_time_definitions"]
    assert mix["definitions"] == {"2": [0, 1], "3": [2]} and mix["judged"] == "an objective"
    # a study that judges no fit time: the worker joins, and says it
    plain = tiny_spec(study="plain", n_trials=2)
    with monkeypatch.context() as m:
        m.setattr(_study, "FIT_TIME_VERSION", 2)
        tuneops.run(plain)
    with caplog.at_level("WARNING", logger="tuneops"):
        assert tuneops.tuning.join("plain", timeout_s=5) == 0  # its budget is spent
    assert "study 'plain' measures fit_time_s by definition 2" in caplog.text
    assert "The study judges no fit time, so this worker joins" in caplog.text


def test_resume_refuses_a_different_definition(workdir):
    tuneops.run(tiny_spec(n_trials=2))
    with pytest.raises(SpecError, match="exists with other settings of model") as refused:
        tuneops.run(tiny_spec(n_trials=2, model={"family": "linear"}))
    # what differs is quoted, stored and new
    assert 'model: stored {"family": "knn"}, this spec {"family": "linear"}' in str(refused.value)
    # Other folds score the same configuration differently: not the same study either.
    with pytest.raises(SpecError, match="exists with other settings of search.cv_folds .search.cv_folds: stored 2, this spec 3"):
        tuneops.run(tiny_spec(n_trials=3, cv_folds=3))
    with pytest.raises(SpecError, match="exists with other settings of search.seed"):
        tuneops.run(tiny_spec(n_trials=3, seed=1))


def test_resume_with_the_default_target_stated_is_the_same_study(workdir):
    tuneops.run(tiny_spec(n_trials=2))
    stated = tiny_spec(n_trials=3, data={"source": "sklearn:iris", "target": "target"})
    assert len(tuneops.run(stated).study.trials) == 3  # resumed, not refused as other data
    with pytest.raises(SpecError, match="exists with other settings of data"):
        tuneops.run(tiny_spec(n_trials=4, data={"source": "sklearn:iris", "target": "petal width (cm)", "task": "regression"}, objectives=["r2"]))


def test_resume_on_a_data_file_edited_since_names_the_file_and_both_shapes(workdir):
    frame = load_iris(as_frame=True).frame
    frame.to_csv("iris.csv", index=False)
    spec = tiny_spec(n_trials=2, data={"source": "iris.csv"})
    tuneops.run(spec)
    frame.iloc[:-1].to_csv("iris.csv", index=False)  # a row dropped by an edit
    with pytest.raises(SpecError) as refused:
        tuneops.run({**spec, "search": {**spec["search"], "n_trials": 3}})
    text = str(refused.value)
    assert "was tuned on data 'iris.csv'" in text and "(150 rows x 4 columns)" in text
    assert "(149 rows x 4 columns): the data changed since the study ran" in text
    assert "Restore the data the study was tuned on to resume it" in text


def test_a_study_that_never_ran_a_trial_takes_the_new_definition(workdir):
    # A run that stopped before its first trial (bad data found late, a crash) must not block
    # the corrected run with "the data changed".
    old = {"data": {"source": "sklearn:wine"}, "model": {"family": "knn"}}
    _study.open_study("tiny", get_storage(None), ["maximize"],
                      attrs={_study.SPEC: old, _study.DATA: {"fingerprint": "sha256:old"}},
                      identity=old)
    result = tuneops.run(tiny_spec(n_trials=2))
    assert len(result.study.trials) == 2
    assert result.study.user_attrs[_study.DATA]["fingerprint"] != "sha256:old"
    assert result.study.user_attrs[_study.SPEC]["data"]["source"] == "sklearn:iris"


def test_a_study_created_by_another_process_meanwhile_is_opened(workdir, monkeypatch):
    # Two runs started together: both find no study, one creates it first; the other's create
    # fails with DuplicatedStudyError and must open the study instead of crashing.
    storage = get_storage(None)
    real_create = optuna.create_study

    def create_after_the_other(**kwargs):
        real_create(**kwargs)  # "the other process" wins the race
        return real_create(**kwargs)  # ... so this one is a duplicate

    monkeypatch.setattr(optuna, "create_study", create_after_the_other)
    study = _study.open_study("raced", storage, ["maximize"], attrs={"a": 1})
    assert study.study_name == "raced" and study.user_attrs["a"] == 1
    # the winner records another model: the loser is refused, not mixed into its study
    knn = {"data": {"source": "sklearn:iris"}, "model": {"family": "knn"}}
    forest = {"data": {"source": "sklearn:iris"}, "model": {"family": "random_forest"}}

    def create_with_knn(**kwargs):
        real_create(**kwargs).set_user_attr(_study.SPEC, knn)
        return real_create(**kwargs)

    monkeypatch.setattr(optuna, "create_study", create_with_knn)
    with pytest.raises(SpecError, match="other settings of model .*created a moment ago"):
        _study.open_study("raced2", storage, ["maximize"], attrs={_study.SPEC: forest},
                          identity=forest)


def test_a_study_another_run_is_starting_is_not_taken_over_by_another_definition(workdir):
    """Two runs started together on a new name with different models: the one that lost the
    race to create the study replaced the other's spec, and their trials mixed."""
    import socket

    storage = get_storage(None)
    knn = {"data": {"source": "sklearn:iris"}, "model": {"family": "knn"}}
    forest = {"data": {"source": "sklearn:iris"}, "model": {"family": "random_forest"}}

    def created_by(pid):
        study = _study.open_study(f"s{pid}", storage, ["maximize"], attrs={_study.SPEC: knn},
                                  identity=knn)
        record = {"t": time.time(), "host": socket.gethostname(), "pid": pid}
        _optuna_attr(study, record)
        return study.study_name

    alive = created_by(os.getppid())  # a process that runs: a run still starting the study
    with pytest.raises(SpecError, match="other settings of model .*created a moment ago by another run"):
        _study.open_study(alive, storage, ["maximize"], attrs={_study.SPEC: forest},
                          identity=forest)
    # the same definition joins it; a creator that is gone leaves it to the new definition
    assert _study.open_study(alive, storage, ["maximize"], attrs={_study.SPEC: knn},
                             identity=knn).user_attrs[_study.SPEC] == knn
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = created_by(int(gone.stdout))
    taken = _study.open_study(dead, storage, ["maximize"], attrs={_study.SPEC: forest},
                              identity=forest)
    assert taken.user_attrs[_study.SPEC] == forest


def _optuna_attr(study, record):
    from tuneops import _optuna

    _optuna.set_study_system_attr(study, _study.CREATED, record)


def test_parallel_workers_run_exactly_n_trials(workdir):
    result = tuneops.run(tiny_spec(n_trials=9, n_workers=3))
    trials = _study.counted(result.study.trials)  # leaves out any created beyond the budget, unrun
    assert len(trials) == 9
    assert all(t.state == TrialState.COMPLETE for t in trials)
    workers = Counter(t.user_attrs["worker"]["pid"] for t in trials)
    assert sum(workers.values()) == 9 and os.getpid() not in workers


def test_failures_are_recorded_and_the_study_goes_on(workdir):
    def objective(trial):
        x = trial.suggest_int("x", 0, 9)
        if x % 3 == 0:
            raise RuntimeError(f"boom at {x}")
        if x % 3 == 1:
            return float("nan")
        return float(x)

    result = tuneops.tune(objective, n_trials=12, sampler="random", storage=":memory:", output_dir=workdir / "out")
    trials = result.study.trials
    assert len(trials) == 12
    for t in trials:
        if t.params["x"] % 3 == 2:
            assert t.state == TrialState.COMPLETE
        else:
            assert t.state == TrialState.FAIL
            assert ("boom at" if t.params["x"] % 3 == 0 else "non-finite") in t.user_attrs["fail_reason"]
    assert result.choice.selected.values == (8.0,) or max(t.value for t in trials if t.value) == result.choice.selected.values[0]


def test_tune_multi_objective_with_constraints_and_workers(workdir):
    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        return x, (1 - x) ** 2 + 0.1

    result = tuneops.tune(
        objective, objectives=["score", "cost"], directions=["maximize", "minimize"],
        constraints=["score >= 0.5"], n_trials=8, n_workers=2, study="mo",
    )
    assert len(_study.counted(result.study.trials)) == 8
    assert result.choice.selected.values[0] >= 0.5
    assert all(c.values[0] >= 0.5 for c in result.choice.front)
    assert all(t.constraints for t in _study.counted(result.study.trials))


def _claim_and_die(url: str) -> None:
    study = optuna.load_study(study_name="tiny", storage=get_storage(url))
    trial = runner.next_trial(study)
    trial.suggest_int("n_neighbors", 1, 50, log=True)
    trial.set_user_attr(_study.WORKER, runner.worker_identity())
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_dead_worker_loses_nothing(workdir):
    import multiprocessing

    url = str(workdir / "store.journal")
    spec = tiny_spec(n_trials=4, storage=url)
    tuneops.run(tiny_spec(n_trials=2, storage=url))
    study = optuna.load_study(study_name="tiny", storage=get_storage(url))
    runner.set_budget(study, 4)
    proc = multiprocessing.get_context("fork").Process(target=_claim_and_die, args=(url,))
    proc.start()
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    running = optuna.load_study(study_name="tiny", storage=get_storage(url)).get_trials(states=(TrialState.RUNNING,))
    assert len(running) == 1
    result = tuneops.run(spec)
    trials = result.study.trials
    abandoned = [t for t in trials if "abandoned" in t.user_attrs]
    assert len(abandoned) == 1 and abandoned[0].state == TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get("retry_of") == abandoned[0].number]
    assert len(retry) == 1 and retry[0].params["n_neighbors"] == abandoned[0].params["n_neighbors"]
    assert len(finished(result.study)) == 4
    assert all(t.state == TrialState.COMPLETE for t in finished(result.study))


def test_ctrl_c_keeps_finished_trials_and_resume_completes(workdir):
    spec = workdir / "slow.yaml"
    # pruner none: this is about interruption, and auto prunes a 40-trial study from trial 2 on
    spec.write_text(json.dumps(tiny_spec(n_trials=40, pruner="none", model={
        "family": "random_forest", "space": {"n_estimators": {"type": "int", "low": 5, "high": 30}}})))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuneops", "run", str(spec), "--no-progress"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 60
    storage_file = workdir / "tuneops.journal"
    while time.time() < deadline:
        time.sleep(0.5)
        if storage_file.exists():
            try:  # the journal file can exist a moment before the study's first record
                study = optuna.load_study(study_name="tiny", storage=get_storage(str(storage_file)))
            except KeyError:
                continue
            if len(study.get_trials(states=(TrialState.COMPLETE,))) >= 2:
                break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Stopped by SIGINT" in err and "finished trials are kept" in err
    study = optuna.load_study(study_name="tiny", storage=get_storage(str(storage_file)))
    done_before = len(study.get_trials(states=(TrialState.COMPLETE,)))
    assert done_before >= 2
    assert not study.get_trials(states=(TrialState.RUNNING,))
    # Resume with a budget of two more trials: exactly two more finish.
    result = tuneops.run(spec, n_trials=done_before + 2)
    assert len(finished(result.study)) == done_before + 2
    assert all(t.state == TrialState.COMPLETE for t in finished(result.study))


def test_a_lower_budget_on_resume_retires_surplus_queued_trials(workdir):
    study = optuna.create_study(study_name="s", storage=get_storage(None))
    for n in range(6):
        study.enqueue_trial({"n_neighbors": n + 1})
    runner.set_budget(study, 6)
    assert runner.set_budget(study, 4) == -2
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 4 and len(_study.counted(study.trials)) == 4


def test_a_staged_run_records_its_phases_and_verifies_the_top_candidates(workdir):
    result = tuneops.run(tiny_spec(n_trials=24, cv_folds=2) | {"search": {
        "strategy": "staged", "n_trials": 24, "cv_folds": 2, "seed": 0}}, progress=False)
    section = result.results["strategy"]
    assert [p["phase"] for p in section["phases"]] == ["explore", "model", "refine"]
    assert section["phases"][-1]["to_trial"] == 24
    verified = section["verification"]
    assert verified["folds"] >= 5 and verified["repeats"] == 3 and verified["candidates"]
    for c in verified["candidates"]:
        low, high = c["ci95"][0]
        assert low <= c["mean"][0] <= high
    chosen = result.results["selected"]
    assert chosen["verified"]["mean"] == next(
        c["mean"] for c in verified["candidates"] if c["number"] == chosen["number"])
    assert all("verified" in r for r in result.results["pareto_front"])
    # ... shown in the report as well: the phases as run and the verified candidates
    from tuneops.report import build_report
    from tuneops.report.html import render_html

    report = build_report(result.study)
    assert report.strategy == section
    page = render_html(report, plotly="cdn")
    assert '<section class="panel" data-panel="strategy"' in page and "<td>explore</td>" in page
    # a table, not a figure: the page's drawn figures (and the trial table) are as without it
    assert page.count('data-drawn="1"') == sum(p.data is not None for p in report.panels) + 1
    best = verified["candidates"][0]
    low, high = best["ci95"][0]
    mark = " ★" if best["number"] == chosen["number"] else ""  # the selected row is marked
    assert f"<td>{best['number']}{mark}</td>" in page and f"{low:.4g} – {high:.4g}" in page
    # a run again keeps the verification: nothing new to judge, nothing redrawn
    again = tuneops.run(tiny_spec(n_trials=24, cv_folds=2) | {"search": {
        "strategy": "staged", "n_trials": 24, "cv_folds": 2, "seed": 0}}, progress=False)
    assert again.results["strategy"]["verification"] == verified
    # resumed with a larger budget: the record is the new budget's plan (it kept the old one,
    # and the report showed a refine phase 'trials 6-8' holding 5 trials)
    more = tuneops.run(tiny_spec(n_trials=30, cv_folds=2) | {"search": {
        "strategy": "staged", "n_trials": 30, "cv_folds": 2, "seed": 0}}, progress=False)
    phases = more.results["strategy"]["phases"]
    assert phases[-1]["to_trial"] == 30 and more.results["strategy"]["n_trials"] == 30
    assert sum(sum(p["trials"].values()) for p in phases) == 30
    # ... and each trial that ran is counted in the phase it ran in, not the stretched plan's
    ran = {t.number: t.user_attrs["tuneops:phase"] for t in more.study.trials}
    first = {p["phase"]: (p["from_trial"], p["to_trial"]) for p in section["phases"]}
    assert all(ran[n] == name for name, (a, b) in first.items() for n in range(a, b))
    by_phase = {p["phase"]: sum(p["trials"].values()) for p in phases}
    assert by_phase == {name: sum(1 for v in ran.values() if v == name) for name in by_phase}
    assert by_phase["explore"] == first["explore"][1] - first["explore"][0]  # none moved in


def test_a_run_result_prints_in_one_line(workdir):
    result = tuneops.tune(lambda t: t.suggest_float("x", 0, 1), n_trials=4, study="short", output_dir=workdir / "o")
    text = repr(result)
    assert text.startswith("RunResult(study='short', trials: complete 4, selected: trial ")
    assert "\n" not in text and len(text) < 400  # the dataclass's repr printed every trial
    assert repr(tuneops.tune(lambda t: t.suggest_float("x", 0, 1), objectives=["v"], constraints=["v >= 2"],
                             n_trials=2, study="none", output_dir=workdir / "n")).count("selected: none (") == 1


def test_a_family_that_cannot_fit_the_data_leaves_the_budget_to_the_others(workdir, monkeypatch, caplog):
    from tuneops.families import get_family
    from tuneops.samplers import FAMILY_FAILURES

    def cannot_fit(self, params, task, seed):
        raise ImportError("knn's library is missing (as a family with an absent extra would be)")

    monkeypatch.setattr(type(get_family("knn")), "estimator", cannot_fit)
    spec = tiny_spec(model={"family": ["knn", "linear"]}, n_trials=24, sampler="tpe")
    with caplog.at_level("WARNING", logger="tuneops"):
        result = tuneops.run(spec, storage=":memory:", output_dir=workdir / "out")
    counts = Counter((t.params["family"], t.state) for t in result.study.trials)
    assert counts[("knn", TrialState.FAIL)] == FAMILY_FAILURES
    assert counts[("linear", TrialState.COMPLETE)] + counts[("linear", TrialState.PRUNED)] == 24 - FAMILY_FAILURES
    assert any("family 'knn'" in r.getMessage() and "missing" in r.getMessage() for r in caplog.records)


def test_a_resumed_run_measures_latency_at_the_first_runs_calibration(workdir, monkeypatch):
    """The first run stores its latency calibration with the study; a resumed run (another
    process) uses the stored one, so its trials are in the same unit, and does not calibrate."""
    from tuneops import _optuna, _study, measure

    spec = tiny_spec(n_trials=2, objectives=["accuracy", "latency_p50_ms"])
    first = tuneops.run(spec)
    stored = _optuna.study_system_attrs(first.study)[_study.REFERENCE]
    assert stored == measure.reference_calibration()
    monkeypatch.setattr(measure, "_CALIBRATION", [])  # a new process: not calibrated yet
    second = tuneops.run({**spec, "search": {**spec["search"], "n_trials": 4}})
    assert measure._CALIBRATION == []  # the stored calibration served; none taken for nothing
    speeds = [t.user_attrs[_study.COST]["serving"]["call"]["speed"]
              for t in second.study.get_trials()]
    assert len(speeds) == 4 and all(0.2 < s < 5 for s in speeds)
    assert _optuna.study_system_attrs(second.study)[_study.REFERENCE] == stored


@pytest.mark.parametrize("pruner", ["none", "median"])  # folds trained straight; fidelity steps
def test_a_trial_over_its_time_limit_stops_before_its_next_fold_or_step(workdir, pruner, caplog):
    spec = tiny_spec(n_trials=3, pruner=pruner, model={"family": "random_forest"})
    spec["search"]["trial_timeout_s"] = 1e-4
    with caplog.at_level("INFO", logger="tuneops"):
        result = tuneops.run(spec, storage=":memory:", output_dir=workdir / "out")
    trials = result.study.trials
    assert [t.state for t in trials] == [TrialState.PRUNED] * 3
    for t in trials:
        late = t.user_attrs[_study.TIMED_OUT]
        assert late["limit_s"] == 1e-4 and late["elapsed_s"] > 1e-4
        # the first check: after fold 1 of 2 straight through, or at the first fidelity step
        assert late["at"] == ("after fold 1 of 2" if pruner == "none" else "at step 1 of 27")
    assert result.choice is None and result.message
    assert result.study.user_attrs[_study.SPEC]["search"]["trial_timeout_s"] == 1e-4
    if pruner == "median":  # not counted as the pruner's doing
        assert result.results["pruning"]["n_pruned"] == 0
        assert result.results["pruning"]["n_timed_out"] == 3


def test_a_trial_within_its_time_limit_is_not_touched(workdir):
    spec = tiny_spec(n_trials=2)
    spec["search"]["trial_timeout_s"] = 600
    result = tuneops.run(spec, storage=":memory:", output_dir=workdir / "out")
    assert all(_study.TIMED_OUT not in t.user_attrs for t in result.study.trials)
    assert any(t.state == TrialState.COMPLETE for t in result.study.trials)


@pytest.mark.parametrize("bad", [0, -1, "soon"])
def test_a_trial_time_limit_must_be_positive_seconds(bad):
    from tuneops.spec import load_spec

    with pytest.raises(SpecError, match=r"search\.trial_timeout_s"):
        load_spec({**tiny_spec(), "search": {**tiny_spec()["search"], "trial_timeout_s": bad}})


def test_the_saved_model_is_measured_again_and_a_size_it_breaks_is_said(workdir):
    """A trial's model_size_kb is that of a cross-validation fold's model: k-NN on 2 folds
    keeps half of the rows, and the saved model, refitted on all, keeps them all."""
    spec = tiny_spec(objectives=["accuracy", "model_size_kb"], n_trials=2)
    first = tuneops.run(spec)
    _, meta = tuneops.load_model(first.model_path)
    saved, measured = meta["saved"]["model_size_kb"], meta["metrics"]["model_size_kb"]
    # 150 rows kept instead of 75; the file holds the model (and its metadata)
    assert 1.3 * measured < saved < first.model_path.stat().st_size / 1024
    assert not first.choice.notes
    limit = round((saved + measured) / 2, 1)  # met by the trials, broken by the saved model
    second = tuneops.run(
        {**spec, "study": "tight", "constraints": [f"model_size_kb <= {limit}"]}
    )
    (note,) = [n for n in second.choice.notes if "saved model" in n]
    assert f"breaks the constraint 'model_size_kb <= {limit:g}'" in note
    assert "cross-validation models" in note
    assert note in second.results["selection"]["notes"]
    assert tuneops.load_model(second.model_path)[1]["saved"]["note"] == note
    # between the pickled model and its file: the file breaks it (joblib writes k-NN's rows
    # and its tree's copy of them each on its own), which a deployment ships (audit)
    file_kb = first.model_path.stat().st_size / 1024
    assert tuneops.load_model(first.model_path)[1]["artifact"]["bytes"] == first.model_path.stat().st_size
    between = round((saved + file_kb) / 2, 1)
    third = tuneops.run(
        {**spec, "study": "file", "constraints": [f"model_size_kb <= {between}"]}
    )
    (note,) = [n for n in third.choice.notes if "saved file" in n]
    assert "the saved file model.joblib is" in note and f"'model_size_kb <= {between:g}'" in note
    assert float(note.split("model.joblib is ")[1].split(" KiB")[0]) > between


def test_a_pruned_trial_shows_no_objective_value_but_where_it_stopped():
    """Optuna gives a pruned trial of a one-objective study its last intermediate value: a
    partial-training score that read as better than the selected model in the trial table."""
    from tuneops.report.document import trial_table
    from tuneops.report.view import view_of
    from tuneops.results import trial_record

    study = optuna.create_study(direction="minimize")

    def objective(trial):
        trial.suggest_float("x", 0, 1)
        for step in (1, 3, 9):
            trial.report(10.0 / step, step)
        if trial.number == 1:
            raise optuna.TrialPruned()
        return 5.0

    study.optimize(objective, n_trials=2)
    pruned = study.trials[1]
    assert pruned.state == TrialState.PRUNED and pruned.value == pytest.approx(10 / 9)
    record = trial_record(pruned)
    assert record["values"] is None
    assert record["pruned_at"] == {"step": 9, "value": pytest.approx(10 / 9)}
    assert trial_record(study.trials[0])["values"] == [5.0]
    assert "pruned_at" not in trial_record(study.trials[0])
    table = trial_table(view_of(study))
    row = dict(zip(table.columns, table.rows[1], strict=False))
    assert row["state"] == "PRUNED at step 9" and row[table.columns[2]] is None


def test_tune_takes_one_constraint_as_text_and_refuses_renamed_objectives(workdir):
    """A single text was split into characters ("malformed constraint 'v'"); renamed objectives
    on a resume were accepted, the stored names kept, and reselect failed later."""
    def objective(trial):
        x = trial.suggest_float("x", -5, 5)
        return (x - 1) ** 2, abs(x)

    kwargs = dict(objectives=["loss", "size"], directions=["minimize", "minimize"],
                  storage="t.journal", study="t")
    result = tuneops.tune(objective, n_trials=4, constraints="loss <= 100", **kwargs)
    assert result.results["constraints"] == ["loss <= 100"]
    with pytest.raises(SpecError, match=r"exists with objectives \['loss', 'size'\], but this "
                                        r"run names them \['loss2', 'size'\]"):
        tuneops.tune(objective, n_trials=6, **{**kwargs, "objectives": ["loss2", "size"]})


def test_with_constraints_a_bad_return_fails_the_trial_with_the_same_reason(workdir, caplog):
    """With constraints, None or a wrong count failed with "float() argument must be ...";
    a non-numeric extra metric failed without naming its key."""
    returns = iter([None, (1.0, 2.0), 2.0])

    def objective(trial):
        trial.suggest_float("x", 0, 1)
        value = next(returns)
        if value == 2.0:
            trial.set_user_attr("metrics", {"size": "big"})
        return value

    result = tuneops.tune(objective, n_trials=3, constraints=["value <= 10"], sampler="random")
    reasons = [t.user_attrs.get("fail_reason", "") for t in result.study.trials]
    assert reasons[0].startswith("the objective returned None, expected numbers"), reasons
    assert reasons[1] == "the objective returned 2 value(s) for 1 objective(s)", reasons
    assert "metrics']['size']: expected a number, received 'big'" in reasons[2], reasons


def test_a_run_that_selects_nothing_leaves_no_earlier_model_beside_its_results(workdir):
    """A resumed run with a tightened constraint said 'no model' while the earlier run's
    model.joblib (which misses the new constraint) stayed in the same folder."""
    first = tuneops.run(tiny_spec(n_trials=2, constraints=["accuracy >= 0.5"]))
    assert first.model_path.is_file()
    again = tuneops.run(tiny_spec(n_trials=3, constraints=["accuracy >= 0.9999"]))
    assert again.model_path is None and not first.model_path.exists()
    assert not first.model_path.with_name("model.json").exists()
    assert "earlier run's model.joblib" in again.message


def test_tune_says_when_it_resumes_another_objective_or_a_spent_budget(workdir, caplog):
    """The default study name is tune-<function name>, so every `def objective` shares one
    study: a second objective silently got the first one's result (its budget was spent), or
    ran in the same study as the first one's trials (audit)."""
    import logging

    def objective(trial):
        return trial.suggest_float("x", 0, 1)

    with caplog.at_level(logging.INFO, logger="tuneops"):
        tuneops.tune(objective, n_trials=3, storage="t.journal")
    assert "resuming" not in caplog.text

    def objective(trial):  # noqa: F811 - the same name, another objective
        return trial.suggest_float("y", 0, 1)

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tuneops"):
        tuneops.tune(objective, n_trials=3, storage="t.journal")
    assert "tune(): resuming study 'tune-objective'" in caplog.text
    assert "the code of test_tune_says_when_it_resumes" in caplog.text
    assert "budget is spent (3 finished trial(s) of n_trials=3" in caplog.text
    assert "study='NEW_NAME'" in caplog.text

    def other(trial):
        return trial.suggest_float("y", 0, 1)

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tuneops"):
        tuneops.tune(other, n_trials=4, storage="t.journal", study="tune-objective")
    assert f"this call runs {__name__}." in caplog.text and "other" in caplog.text
    assert "budget is spent" not in caplog.text  # one more trial to run
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tuneops"):
        tuneops.tune(other, n_trials=5, storage="t.journal", study="tune-objective")
    assert "resuming study 'tune-objective' with its 4 trial(s)" in caplog.text  # plain resume
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_run_on_a_dataframe_needs_no_data_source(workdir):
    """api.md: `dataset` is used instead of data.source, yet a dict spec without one was
    refused ("data.source: expected a data source ...")."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    spec = {"study": "frame", "model": {"family": "knn"},
            "search": {"n_trials": 2, "cv_folds": 2}}
    result = tuneops.run(spec, dataset=frame, storage="t.journal")
    assert result.results["data"]["name"] == "dataframe" and result.results["data"]["rows"] == 150
    with pytest.raises(SpecError, match="data.source"):  # without a DataFrame it is needed
        tuneops.run(spec, storage="t.journal")


def test_a_study_names_its_objectives_for_optunas_own_tools(workdir):
    """optuna-dashboard labelled the objectives "Objective 0/1" (audit): the study records
    their names where Optuna's tools read them."""
    import warnings

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        return x, 1 - x

    result = tuneops.tune(objective, objectives=["accuracy", "latency_p95_ms"], n_trials=2,
                          storage="t.journal", study="named")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        assert result.study.metric_names == ["accuracy", "latency_p95_ms"]


def test_an_objectives_identity_is_the_same_in_every_process_and_sees_through_wrappers(workdir):
    """A set literal's constant is a frozenset, whose repr follows the per-process string hash:
    every resume said "the code changed" (audit). A partial was every partial's identity, and
    an inherited __call__ had none."""
    import functools

    from tuneops.custom import _function_identity

    source = (
        "import sys; sys.path.insert(0, 'src')\n"
        "from tuneops.custom import _function_identity\n"
        "def objective(trial):\n"
        "    return 1.0 if trial in {'alpha', 'beta', 'gamma', 'delta', 'epsilon'} else 0.0\n"
        "print(_function_identity(objective)['code'])\n"
    )
    digests = {
        subprocess.run([sys.executable, "-c", source], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONHASHSEED": str(seed)}, check=True).stdout
        for seed in range(4)
    }
    assert len(digests) == 1

    def first(trial, scale):
        return scale

    def second(trial, scale):
        return -scale

    a, b = functools.partial(first, scale=1), functools.partial(second, scale=1)
    assert _function_identity(a)["name"].endswith("first")
    assert _function_identity(a)["code"] != _function_identity(b)["code"]

    class Base:
        def __call__(self, trial):
            return 1.0

    class Child(Base):
        pass

    assert _function_identity(Child())["code"] == _function_identity(Base())["code"] != ""


def test_columns_of_codes_named_categorical_are_tuned_and_served_as_categories(workdir):
    """A class that follows regions 1 and 4 of a region code: as a number no linear model can
    separate it; as the category the spec says it is, one-hot columns do."""
    rng = np.random.default_rng(0)
    region = rng.integers(1, 5, size=160)
    frame = pd.DataFrame(
        {"region": region, "noise": rng.normal(size=160), "target": np.isin(region, (1, 4))}
    )
    frame.to_csv(workdir / "coded.csv", index=False)

    def tuned(**data) -> float:
        spec = tiny_spec(
            study=f"coded-{len(data)}",
            data={"source": "coded.csv", **data},
            model={"family": "linear"},
            n_trials=2,
        )
        result = tuneops.run(spec, output_dir=str(workdir / f"out-{len(data)}"))
        model, meta = tuneops.load_model(result.model_path)
        assert meta["data"]["categorical"] == list(data.get("categorical", []))
        # served from the file's numbers (a request's JSON numbers), not the loaded categories
        served = (model.predict(frame[["region", "noise"]]) == frame["target"]).mean()
        assert served == pytest.approx(result.choice.selected.values[0], abs=0.05)
        return result.choice.selected.values[0]

    assert tuned(categorical=["region"]) > 0.97
    assert tuned() < 0.8


def test_a_leaking_column_named_in_data_drop_is_left_out_of_tuning_and_served_around(workdir):
    """The perfect-score finding says to drop a leak: data.drop does it from the spec."""
    rng = np.random.default_rng(0)
    target = rng.integers(0, 2, size=120)
    frame = pd.DataFrame(
        {"leak": target * 10 + 1, "noise": rng.normal(size=120), "target": target}
    )
    frame.to_csv(workdir / "leaky.csv", index=False)

    def tuned(**data):
        spec = tiny_spec(
            study=f"leaky-{len(data)}",
            data={"source": "leaky.csv", **data},
            model={"family": "linear"},
            n_trials=2,
        )
        result = tuneops.run(spec, output_dir=str(workdir / f"out-{len(data)}"))
        found = json.loads(result.results_path.read_text())["findings"] or []
        return result, {f["topic"] for f in found}

    leaking, topics = tuned()
    assert leaking.choice.selected.values[0] == 1.0 and "perfect score" in topics
    result, topics = tuned(drop=["leak"])
    model, meta = tuneops.load_model(result.model_path)
    assert meta["data"]["dropped"] == ["leak"] and result.choice.selected.values[0] < 0.8
    assert "perfect score" not in topics
    # a request holding the dropped column is answered from the others
    assert len(model.predict(frame.drop(columns="target"))) == 120


def test_a_run_with_other_constraints_shows_the_sampler_its_earlier_trials_judged_by_them(
    workdir, monkeypatch, caplog
):
    """Resumed with 'accuracy >= 0.5' tightened to 'accuracy >= 0.99', TPE went on modelling
    the first run's trials at 0.95 as feasible: their Optuna records, written as they
    finished, are of the old constraint. The selection and the report judged them again; the
    sampler did not (and GPSampler refused such a study: test_samplers)."""
    seen = []
    sample = optuna.samplers.TPESampler.sample_relative

    def spy(self, study, trial, space):
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        seen.append({t.number: t.constraints for t in done})
        return sample(self, study, trial, space)

    monkeypatch.setattr(optuna.samplers.TPESampler, "sample_relative", spy)
    first = tuneops.run(tiny_spec(n_trials=2, sampler="tpe", constraints=["accuracy >= 0.5"]))
    accuracy = {t.number: t.values[0] for t in first.study.trials}
    seen.clear()
    with caplog.at_level("INFO", logger="tuneops"):
        again = tuneops.run(
            tiny_spec(n_trials=3, sampler="tpe", constraints=["accuracy >= 0.99"])
        )
    assert ("study tiny: 2 of its complete trials ran under other constraints (accuracy >= 0.5); "
            "the selection, the report and the sampler judge them by this spec's (accuracy >= "
            "0.99)\n") in caplog.text
    assert seen and all(set(s) >= {0, 1} for s in seen)
    for number in (0, 1):
        assert seen[-1][number] == {"accuracy >= 0.99": pytest.approx(0.99 - accuracy[number])}
    assert again.study.trials[0].constraints == {"accuracy >= 0.5": pytest.approx(0.5 - accuracy[0])}


def test_tune_run_again_with_other_constraints_shows_the_sampler_the_constraints_of_now(
    workdir, monkeypatch
):
    seen = []
    sample = optuna.samplers.RandomSampler.sample_independent

    def spy(self, study, trial, name, distribution):
        seen.append([t.constraints for t in study.get_trials(states=(TrialState.COMPLETE,))])
        return sample(self, study, trial, name, distribution)

    monkeypatch.setattr(optuna.samplers.RandomSampler, "sample_independent", spy)

    def objective(trial):
        return trial.suggest_float("x", 0, 1)

    first = tuneops.tune(objective, n_trials=2, sampler="random", constraints=["value <= 2"])
    values = [t.value for t in first.study.trials]
    seen.clear()
    tuneops.tune(objective, n_trials=3, sampler="random", constraints=["value <= 0.5"])
    assert seen[-1][:2] == [{"value <= 0.5": pytest.approx(v - 0.5)} for v in values]


def test_a_constraint_naming_no_returned_or_recorded_metric_says_which_and_the_closest(workdir):
    """tune(objectives=["accuracy"], constraints=["acuracy >= 0.5"]) stopped with "constraint
    'acuracy >= 0.5' needs 'acuracy'; return it as an objective or ...": no word of the name the
    objective did return, nor of what it recorded."""
    from tuneops.custom import ConstraintMetricMissing

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        trial.set_user_attr("metrics", {"size_kb": 3.0})
        return x

    with pytest.raises(ConstraintMetricMissing) as refused:
        tuneops.tune(objective, objectives=["accuracy"], constraints=["acuracy >= 0.5"],
                     n_trials=2, storage=":memory:", output_dir=workdir / "o")
    assert str(refused.value) == (
        "constraint 'acuracy >= 0.5' names 'acuracy', which the objective neither returned "
        "(objectives: accuracy) nor recorded (trial.user_attrs['metrics']: size_kb). Did you "
        "mean 'accuracy'? Fix the constraint's name, or return the metric as an objective or "
        "record it with trial.set_user_attr('metrics', {...}) in the objective."
    )


def test_a_study_whose_every_trial_failed_says_why_not_run_more_trials(workdir):
    """A tune() objective that returned two values for one objective failed every trial, and
    the run said "no trial completed ...; run more trials", which would fail the same way (and
    on the same study run nothing: failed trials spend its n_trials)."""

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        return x, x

    result = tuneops.tune(objective, objectives=["accuracy"], n_trials=2, storage=":memory:",
                          output_dir=workdir / "o")
    assert result.choice is None
    assert result.message == (
        "no trial completed, so there is nothing to select: 2 failed (the last: the objective "
        "returned 2 value(s) for 1 objective(s)). Fix what made them fail, then run again with "
        "a larger n_trials (failed trials count in it) or as a new study; `tuneops show STUDY "
        "--trials` lists every trial's reason."
    )

    def pruned(trial):
        trial.suggest_float("x", 0, 1)
        raise optuna.TrialPruned()

    result = tuneops.tune(pruned, objectives=["accuracy"], n_trials=2, storage=":memory:",
                          output_dir=workdir / "p")
    assert "all 2 were pruned. Loosen the pruner" in result.message
