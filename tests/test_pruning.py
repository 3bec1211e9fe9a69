"""Pruners by name (parameter errors), auto, multi-objective pruning, savings, bench pruners."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import tiny_spec

from tuneops import _study
from tuneops.errors import SpecError
from tuneops.pruning.multi_objective import dominates
from tuneops.pruning import (
    FIDELITY_ATTR,
    PRUNERS,
    FractionalHalvingPruner,
    ParetoPruner,
    make_pruner,
    report,
    rung_steps,
    should_prune,
)

DATA = Path(__file__).parent / "data"


# -- parameters -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("percentile", {"percentile": 150}, r"search\.pruner\.percentile: expected a number in \[0, 100\], received 150"),
        ("percentile", {}, r"search\.pruner\.percentile: pruner 'percentile' needs percentile"),
        ("median", {"n_warmup_steps": -1}, r"search\.pruner\.n_warmup_steps: expected an integer >= 0, received -1"),
        ("median", {"n_startup_trials": 2.5}, r"n_startup_trials: expected an integer >= 0, received 2\.5"),
        ("median", {"warmup": 2}, r"search\.pruner\.warmup: pruner 'median' has no parameter 'warmup'; it accepts: n_startup_trials"),
        ("successive_halving", {"reduction_factor": 1}, r"reduction_factor: expected an integer >= 2, received 1"),
        ("successive_halving", {"min_resource": "big"}, r"min_resource: expected 'auto' or an integer >= 1, received 'big'"),
        ("hyperband", {"max_resource": 0}, r"max_resource: expected 'auto' or an integer >= 1, received 0"),
        ("wilcoxon", {"p_threshold": 1.5}, r"p_threshold: expected a number in \[0, 1\], received 1\.5"),
        ("threshold", {}, r"search\.pruner: pruner 'threshold' needs lower and/or upper"),
        ("threshold", {"lower": 2, "upper": 1}, r"search\.pruner\.lower: expected lower <= upper, received lower=2, upper=1"),
        ("patience", {"patience": -1}, r"patience: expected an integer >= 0, received -1"),
        ("patience", {"wrapped": {"name": "median", "n_warmup_steps": -3}}, r"search\.pruner\.wrapped\.n_warmup_steps: expected an integer >= 0, received -3"),
        ("patience", {"wrapped": "medain"}, r"search\.pruner\.wrapped: unknown pruner 'medain'.*Did you mean 'median'"),
        ("pareto", {"dominated_fraction": 0}, r"dominated_fraction: expected a number in \(0, 1\], received 0"),
        ("hyperbnd", {}, r"search\.pruner: unknown pruner 'hyperbnd'; expected one of .*Did you mean 'hyperband'"),
    ],
)
def test_pruner_parameter_errors_name_parameter_range_and_value(name, params, message):
    with pytest.raises(SpecError, match=message):
        make_pruner(name, params)


def test_every_pruner_builds_with_defaults():
    for name in PRUNERS:
        params = {"percentile": 50.0} if name == "percentile" else {"lower": 0.5} if name == "threshold" else {}
        assert isinstance(make_pruner(name, params), optuna.pruners.BasePruner)
    patient = make_pruner("patience", {"patience": 2, "wrapped": {"name": "median", "n_warmup_steps": 2}})
    assert isinstance(patient, optuna.pruners.PatientPruner)


@pytest.mark.parametrize("name", ["wilcoxon", "median"])
def test_single_objective_pruners_refused_for_multi_objective(name):
    with pytest.raises(SpecError, match=f"'{name}' compares one objective, received a study with 2 objectives; use one of auto, none, pareto"):
        make_pruner(name, n_objectives=2)


def test_spec_with_bad_pruner_parameter_is_refused_before_anything_is_written(workdir, cli):
    spec = workdir / "spec.yaml"
    spec.write_text(json.dumps(tiny_spec(pruner={"name": "median", "n_warmup_steps": -1})))
    code, _, err = cli("run", spec, "--no-progress")
    assert code == 2
    assert "search.pruner.n_warmup_steps: expected an integer >= 0, received -1" in err
    assert not (workdir / "tuneops.journal").exists()


@pytest.mark.parametrize(
    ("n_objectives", "n_trials", "expected"),
    [
        (1, 5, optuna.pruners.NopPruner),  # too few trials to compare
        (1, 9, optuna.pruners.NopPruner),
        (2, 5, optuna.pruners.NopPruner),
        (2, 50, ParetoPruner),
        (1, 10, FractionalHalvingPruner),
        (1, 100, FractionalHalvingPruner),
        (1, None, FractionalHalvingPruner),  # a timeout or a compute budget, no trial budget
    ],
)
def test_auto_chooses_by_objectives_and_budget(n_objectives, n_trials, expected):
    from tuneops.pruning import SMALL_BUDGET

    assert SMALL_BUDGET == 10
    pruner = make_pruner("auto", n_objectives=n_objectives, n_trials=n_trials)
    assert isinstance(pruner, expected)


@pytest.mark.parametrize(
    ("max_step", "rungs", "spec_rungs", "own_rungs"),
    [
        (27, [1, 3, 9], [3, 9], [9, 18]),  # tuneops' fidelity schedule: the rungs are its steps
        (8, [1, 3], [1, 3], [3, 6]),  # eighths: 1/27 and 1/9 of 8 merge at step 1
        (4, [1, 2], [1, 2], [2, 3]),  # an objective reporting 4 steps
        (20, [1, 3, 7], [3, 7], [7, 14]),  # 20 epochs rank as late as 50
        (50, [2, 6, 17], [6, 17], [17, 34]),
        (500, [19, 56, 167], [56, 167], [167, 334]),  # 1/27, 1/9, 1/3 of 500 epochs
        (1, [], [], []),  # one step: nothing to rank before the end
    ],
)
def test_auto_rungs_are_fractions_of_the_maximum_step(max_step, rungs, spec_rungs, own_rungs):
    from tuneops.families import FIDELITY_STEPS

    assert rung_steps(max_step) == rungs  # from 1/27 (FractionalHalvingPruner's default)
    # auto on a spec's fidelity schedule: from 1/9, reduction factor 3 (where its curves rank)
    spec = make_pruner("auto", {"max_step": max_step}, n_trials=50, fidelity_schedule=True)
    assert spec.rungs(max_step) == spec_rungs and spec.reduction_factor == 3
    # on an objective's own steps (tune(), plain Optuna): from 1/3, reduction factor 2
    own = make_pruner("auto", {"max_step": max_step}, n_trials=50)
    assert own.rungs(max_step) == own_rungs and own.reduction_factor == 2
    assert rung_steps(FIDELITY_STEPS[-1]) == list(FIDELITY_STEPS[:-1])  # rungs fall on the schedule
    assert rung_steps(500, min_fraction=1 / 9) == [56, 167] and rung_steps(27, min_fraction=1 / 9) == [3, 9]


def test_auto_judges_an_objectives_own_epochs_from_a_third_and_keeps_the_top_half():
    """A tune() objective reporting 50 epochs: nothing is cut before epoch 17 (1/3), where a
    trial goes on in the top half (the second best of four); the spec's rule would have cut
    it at epoch 6 (1/9, top third)."""
    for fidelity_schedule, cut_at in ((False, None), (True, 6)):
        study = optuna.create_study(
            direction="maximize", pruner=make_pruner("auto", n_trials=50, fidelity_schedule=fidelity_schedule))
        for q in (0.5, 0.6, 0.7):  # three trials of 50 epochs complete
            trial = study.ask()
            for epoch in range(1, 51):
                trial.report(q, epoch)
            study.tell(trial, q)
        trial = study.ask()
        stopped = None
        for epoch in range(1, 51):
            trial.report(0.65, epoch)
            if trial.should_prune():
                stopped = epoch
                break
        assert stopped == cut_at
    study = optuna.create_study(direction="maximize", pruner=make_pruner("auto", n_trials=50))
    for q in (0.5, 0.6, 0.7):
        trial = study.ask()
        for epoch in range(1, 51):
            trial.report(q, epoch)
        study.tell(trial, q)
    worst = study.ask()
    for epoch in range(1, 17):
        worst.report(0.1, epoch)
        assert not worst.should_prune()  # nothing is cut before the first rung
    worst.report(0.1, 17)
    assert worst.should_prune()


def test_a_spec_runs_auto_on_its_fidelity_schedule(workdir):
    from tuneops.tuning import run

    result = run(tiny_spec(n_trials=10))
    assert result.study.user_attrs["tuneops:pruner"] == (
        "FractionalHalvingPruner(max_step=27, reduction_factor=3, min_fraction=0.1111)")


def _stream(pruner, qualities, steps, *, ask_last=True):
    """Trials of a plain Optuna study reporting ``q * step / last`` at each of ``steps``;
    returns {trial number: the step it was pruned at}."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    stopped_at = {}
    for q in qualities:
        trial = study.ask()
        for step in steps:
            trial.report(q * (0.5 + 0.5 * step / steps[-1]), step)
            if (ask_last or step != steps[-1]) and trial.should_prune():
                stopped_at[trial.number] = step
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, q)
    return stopped_at


@pytest.mark.parametrize(("steps", "rungs"), [((1, 2, 3, 4), {2, 3}), (tuple(range(1, 501)), {167, 334})])
def test_auto_cuts_only_at_its_rungs_whether_4_or_500_steps_are_reported(steps, rungs):
    """A plain Optuna study (no tuneops objective): the maximum step is learned from the first
    completed trial, cuts happen only at the rungs, never at or after the last step (asked
    there too, as a user's loop does), most trials stop early, never the best."""
    quality = np.random.default_rng(0).uniform(0, 1, 60)
    stopped_at = _stream(make_pruner("auto", n_trials=60), quality, steps)
    assert set(stopped_at.values()) <= rungs and set(stopped_at.values())
    assert 0 not in stopped_at  # nothing to learn the maximum step from yet
    assert int(np.argmax(quality)) not in stopped_at
    assert 0.6 < len(stopped_at) / 60 < 0.95


def test_max_step_is_learned_from_the_largest_completed_trial_or_declared():
    pruner = FractionalHalvingPruner()
    study = optuna.create_study(direction="maximize", pruner=pruner)
    assert pruner.learned_max_step(study) is None
    for last in (40, 100):
        trial = study.ask()
        for step in range(1, last + 1):
            trial.report(0.5, step)
        study.tell(trial, 0.5)
    running = study.ask()
    running.report(0.9, 300)  # a running trial does not count
    assert pruner.learned_max_step(study) == 100
    assert FractionalHalvingPruner(max_step=27).learned_max_step(study) == 27
    with pytest.raises(SpecError, match=r"max_step: expected an integer >= 1, received 0"):
        FractionalHalvingPruner(max_step=0)
    with pytest.raises(SpecError, match=r"min_fraction: expected a number in \(0, 1\), received 1"):
        make_pruner("fractional_halving", {"min_fraction": 1})


def test_auto_accepts_max_step_only():
    with pytest.raises(SpecError, match=r"search\.pruner\.percentile: pruner 'auto' has no parameter 'percentile'; it accepts: max_step"):
        make_pruner("auto", {"percentile": 25})
    with pytest.raises(SpecError, match=r"search\.pruner\.max_step: expected an integer >= 1 or None, received -2|max_step: expected an integer >= 1"):
        make_pruner("auto", {"max_step": -2})


def test_dominates_ignores_unknown_components():
    mx, mn = optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE
    assert dominates([0.9, 1.0], [0.8, 2.0], [mx, mn])
    assert not dominates([0.9, 3.0], [0.8, 2.0], [mx, mn])  # better quality, but costlier
    assert dominates([0.9, None], [0.8, 2.0], [mx, mn])
    assert not dominates([None, None], [0.8, 2.0], [mx, mn])
    assert not dominates([0.8, 2.0], [0.8, 2.0], [mx, mn])


def test_pareto_pruner_in_a_plain_optuna_multi_objective_study():
    """Optuna's report/should_prune raise in MO studies (#3450); tuneops' helpers do not."""
    study = optuna.create_study(
        directions=["maximize", "minimize"], pruner=ParetoPruner(n_startup_trials=3),
        sampler=optuna.samplers.RandomSampler(0),
    )
    stopped_at = {}

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        cost = x if x > 0.5 else 1 + x  # a trade-off above 0.5; below, worse in both objectives
        for step in (1, 2, 4, 8):
            report(trial, (x * step / 8, cost), step)
            report(trial, (0.0, 99.0), step)  # a step is reported once: ignored
            if should_prune(trial):
                stopped_at[trial.number] = step
                raise optuna.TrialPruned()
        return x, cost

    study.optimize(objective, n_trials=30)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "dominated trials should be pruned"
    assert all(t.params["x"] <= 0.5 for t in pruned)  # only the dominated region
    assert all(stopped_at[t.number] >= 2 for t in pruned)  # warm-up: never at step 1
    with pytest.raises(NotImplementedError):  # what Optuna itself does
        optuna.create_study(directions=["maximize", "minimize"]).ask().report(0.1, 1)


def test_pareto_pruner_spares_a_trial_at_a_step_where_trials_ended():
    """Epochs as a hyperparameter (25 or 50): trials of 25 were cut at step 25, their last,
    fully trained and thrown away, because the last step was learned as 50."""
    study = optuna.create_study(
        directions=["maximize", "minimize"],
        pruner=ParetoPruner(n_startup_trials=2, n_warmup_steps=25),  # judged from step 25 on
        sampler=optuna.samplers.RandomSampler(0),
    )
    cut_at = {}

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        epochs = 25 if trial.number % 2 else 50
        for step in range(5, epochs + 1, 5):
            report(trial, (x * step / 50, 2 - x), step)  # a higher x is better in both
            if should_prune(trial):
                cut_at[trial.number] = (step, epochs)
                raise optuna.TrialPruned()
        return x * epochs / 50, 2 - x

    for x in (0.9, 0.8, 0.85):  # good trials first: of both lengths, complete
        study.enqueue_trial({"x": x})
    study.optimize(objective, n_trials=30)
    assert cut_at, "dominated trials should be pruned"
    assert all(step != epochs for step, epochs in cut_at.values()), cut_at


def test_savings_of_steps_counted_from_zero():
    """Epochs 0..59: a trial pruned at step 1 ran 2 of 60, scaled 59/1 instead of 60/2."""
    from tuneops.pruning.savings import _unspent, trial_compute

    assert _unspent({"steps": [0, 1], "max_step": 59}, 1.0) == pytest.approx(29.0)
    assert _unspent({"steps": [1, 2], "max_step": 60}, 1.0) == pytest.approx(29.0)
    assert _unspent({"steps": [0], "max_step": 59}, 1.0) == pytest.approx(59.0)
    assert trial_compute({"steps": [0, 1, 2]}, "steps") == 3.0  # three epochs trained
    assert trial_compute({"steps": [1, 2, 3]}, "steps") == 3.0


def test_pareto_pruner_never_prunes_the_final_front_of_real_curves():
    """Replay recorded real curves (random forests on PMLB diabetes, accuracy vs latency):
    in every order, no member of the final Pareto front is pruned, and pruning does happen."""
    from tuneops.bench import replay
    from tuneops.selection import pareto_mask

    curves = json.loads((DATA / "curves_mo_diabetes.json").read_text())
    values = [t["values"] for t in curves["trials"]]
    front = {i for i, m in enumerate(pareto_mask(values, curves["directions"])) if m}
    n_pruned = 0
    for seed in range(10):
        order = list(np.random.default_rng(seed).permutation(len(values)))
        outcome = replay(curves, make_pruner("auto", n_objectives=2, n_trials=len(values)), order)
        assert not [o["index"] for o in outcome if o["index"] in front and o["pruned_at"] is not None]
        n_pruned += sum(o["pruned_at"] is not None for o in outcome)
    assert n_pruned > 0


# -- savings and show ---------------------------------------------------------------------------------
def test_savings_section_in_results_and_show(workdir, cli):
    from tuneops.tuning import run

    spec = tiny_spec(n_trials=10, pruner={"name": "threshold", "lower": 0.935, "n_warmup_steps": 2})
    spec["model"] = {"family": "random_forest", "space": {"n_estimators": {"type": "int", "low": 8, "high": 16}}}
    result = run(spec)
    saving = result.results["pruning"]
    states = [t.state for t in result.study.trials]
    n_pruned = states.count(optuna.trial.TrialState.PRUNED)
    assert saving["n_pruned"] == n_pruned > 0
    assert saving["pruning_rate"] == n_pruned / 10
    assert saving["pruner"].startswith("ThresholdPruner(")
    assert saving["steps_saved"] == sum(4 - len(t.user_attrs["tuneops:fidelity"]["steps"]) for t in result.study.trials)
    assert saving["fit_cpu_s_saved"] > 0 and saving["fit_s_saved"] > 0 and 0 < saving["fit_saved_fraction"] < 1
    assert saving["time_to_best_s"] >= 0 and saving["best_trials"]
    assert json.loads(Path(result.results_path).read_text())["pruning"]["n_pruned"] == n_pruned
    code, out, _ = cli("show", "tiny")
    assert code == 0
    assert f"Pruning: {n_pruned} of 10 trials pruned" in out and "fit CPU seconds saved" in out


def test_a_study_without_pruning_says_so_and_why(workdir, cli):
    from tuneops.tuning import run

    # auto below its budget, and none asked for: no "0 of 4 trials pruned by NopPruner()"
    for pruner, why in (("auto", "search.pruner auto prunes studies of 10 trials or more; this "
                                 "one asked for 4"), ("none", "search.pruner: none")):
        run(tiny_spec(study=f"off_{pruner}", n_trials=4, pruner=pruner))
        code, out, _ = cli("show", f"off_{pruner}")
        assert code == 0
        line = next(x for x in out.splitlines() if x.startswith("Pruning:"))
        assert line.startswith(f"Pruning: off ({why}); ") and "fit CPU seconds spent" in line, line
        assert "NopPruner" not in out and "saved" not in line


# -- bench pruners ------------------------------------------------------------------------------------
def test_bench_pruners_end_to_end(workdir, cli):
    spec = workdir / "spec.yaml"
    spec.write_text(json.dumps(tiny_spec(n_trials=4)))
    code, out, err = cli("bench", "pruners", spec, "--pruners", "none,median", "--seeds", "0,1", "--out", "b")
    assert code == 0, err
    assert "none" in out and "median" in out and "pruning rate" in out
    # one line per run as it ends, before the table (the runs take minutes on real specs)
    runs = re.findall(r"^  (none|median) seed (\d): 4 trials \(\d pruned\), best 0\.\d+, "
                      r"[\d.]+ CPU s, [\d.]+ s wall$", out, re.MULTILINE)
    assert runs == [("none", "0"), ("none", "1"), ("median", "0"), ("median", "1")], out
    assert out.index("median seed 1:") < out.index("pruning rate")
    bench = json.loads((workdir / "b" / "bench.json").read_text())
    assert [p["pruner"] for p in bench["pruners"]] == ["none", "median"]
    for entry in bench["pruners"]:
        assert [r["seed"] for r in entry["runs"]] == [0, 1]
        assert all(r["n_trials"] == 4 and 0 < r["best"] <= 1 and r["compute_s"] > 0 for r in entry["runs"])
        assert entry["mean"]["best"] is not None and entry["std"]["best"] is not None
    assert bench["pruners"][0]["mean"]["pruning_rate"] == 0
    assert (workdir / "b" / "bench.png").stat().st_size > 0


def test_bench_wall_time_counts_the_seconds_trials_ran_not_the_gap_before_a_resume():
    """A run interrupted and resumed a minute later showed 63.5 s of wall time for 7.3 s of
    compute: the span from the first start to the last end counted the idle minute (audit)."""
    import datetime

    from tuneops.bench import run_summary

    study = optuna.create_study(direction="maximize")
    t0 = datetime.datetime(2026, 1, 1, 12, 0, 0)
    for start, seconds in ((0, 2.0), (1, 2.0), (60, 3.0)):  # two overlap; the resume after 60 s
        study.add_trial(optuna.trial.FrozenTrial(
            number=0, state=optuna.trial.TrialState.COMPLETE, value=0.5, values=None,
            datetime_start=t0 + datetime.timedelta(seconds=start),
            datetime_complete=t0 + datetime.timedelta(seconds=start + seconds),
            params={}, distributions={}, user_attrs={}, system_attrs={},
            intermediate_values={}, trial_id=0))
    assert run_summary(study)["wall_s"] == pytest.approx(3.0 + 3.0)


def test_bench_best_is_the_best_trial_that_met_the_constraints():
    """`bench pruners` gave a run's best accuracy as 0.9666, a trial of 330 KB under
    `model_size_kb <= 90`: the run selected 0.9069, and its time to best was of that (audit)."""
    from tuneops.bench import _run_best, run_summary

    study = optuna.create_study(direction="maximize")
    for value, violation in ((0.97, 240.0), (0.91, 0.0), (0.89, 0.0)):
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, value=value,
            system_attrs={"constraints": [violation]}))
    summary = run_summary(study)
    assert summary["values"] == [[0.91], [0.89]]
    assert _run_best(summary) == 0.91
    two = optuna.create_study(directions=["maximize", "minimize"])
    for values, violation in (([0.99, 1.0], 5.0), ([0.9, 2.0], 0.0)):
        two.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, values=values,
            system_attrs={"constraints": [violation]}))
    assert run_summary(two)["values"] == [[0.9, 2.0]]


def test_bench_pruning_rate_leaves_out_trials_stopped_by_the_trial_time_limit():
    """A trial over search.trial_timeout_s is recorded as pruned; the pruning section counts it
    apart, `bench pruners` counted it as the pruner's."""
    from tuneops.bench import run_summary

    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.9))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED,
        user_attrs={_study.TIMED_OUT: {"limit_s": 1.0, "elapsed_s": 1.2, "at": "fold 2"}}))
    summary = run_summary(study)
    assert (summary["n_trials"], summary["n_pruned"], summary["n_timed_out"]) == (3, 1, 1)
    assert summary["pruning_rate"] == pytest.approx(1 / 3)


def test_bench_pruners_refuses_a_pruner_the_spec_cannot_use_before_any_run(workdir, cli):
    """The documented `--pruners none,median,auto` on the two-objective quickstart ran `none`
    for 26 s, then failed on `median` with exit 2 and a half-written benchmark (audit)."""
    spec = workdir / "mo.yaml"
    spec.write_text(json.dumps(tiny_spec(objectives=["accuracy", "model_size_kb"])))
    code, _, err = cli("bench", "pruners", spec, "--pruners", "none,median", "--out", "b")
    assert code == 2 and "'median' compares one objective" in err and "pareto" in err
    assert not (workdir / "b").exists()  # nothing ran, nothing written
    from tuneops.bench import default_pruners

    assert default_pruners(2) == ("none", "pareto", "auto")
    assert default_pruners(1) == ("none", "median", "auto")
    code, _, err = cli("bench", "pruners", spec, "--pruners", "mediun")
    assert code == 2 and "Did you mean 'median'" in err


def test_record_curves_keeps_each_trial_once_with_cpu_seconds_per_step():
    """The benchmark's recording: every configuration once (trials may finish out of number
    order), cumulative CPU seconds of fitting and scoring per step, and a replay can use them."""
    from tuneops.bench import record_curves, replay

    spec = tiny_spec(model={"family": "hist_gradient_boosting",
                            "space": {"max_iter": {"type": "int", "low": 8, "high": 16}}})
    seen = []
    curves = record_curves(spec, n_configs=4, seed=0, on_trial=seen.append)
    assert len(curves["trials"]) == 4 and seen == curves["trials"]
    assert len({json.dumps(t["params"], sort_keys=True) for t in curves["trials"]}) == 4
    for t in curves["trials"]:
        for key in ("fit_s_steps", "fit_cpu_s_steps", "score_cpu_s_steps"):
            assert len(t[key]) == 4 and all(b >= a for a, b in zip(t[key], t[key][1:])), key
        assert t["fit_cpu_s_steps"][0] > 0
    out = replay(curves, "none", cost="fit_cpu_s_steps")
    assert [o["compute_s"] - curves["trials"][o["index"]]["measure_s"] for o in out] == [
        t["fit_cpu_s_steps"][-1] for t in curves["trials"]]


def test_bench_pruners_accepts_a_pruner_with_parameters(workdir):
    """A pruner given as {name, params} is labelled with its parameters; its study name stays valid."""
    from tuneops.bench import bench_pruners

    bench = bench_pruners(tiny_spec(n_trials=2), [{"name": "median", "n_warmup_steps": 1}], seeds=[0], out_dir="b")
    (entry,) = bench["pruners"]
    assert entry["pruner"] == "median(n_warmup_steps=1)"
    assert entry["runs"][0]["study"] == "tiny-median_n_warmup_steps_1-s0" and entry["runs"][0]["n_trials"] == 2


# -- tune(): default pruner, no multi-objective cut after the last step, compute budget -----------------
def _epochs_objective(n_epochs: int = 30):
    """A custom objective as users write it: reports after every epoch and asks the pruner."""

    def objective(trial):
        q = trial.suggest_float("q", 0, 1)
        for epoch in range(1, n_epochs + 1):
            trial.report(q * (0.5 + 0.5 * epoch / n_epochs), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return q

    return objective


def test_tune_defaults_to_auto_and_records_the_pruning_section(workdir):
    from tuneops.tuning import tune

    result = tune(_epochs_objective(), n_trials=30, storage="tune.journal", sampler="random")
    assert result.study.user_attrs["tuneops:pruner"].startswith("FractionalHalvingPruner(max_step=learned")
    pruning = result.results["pruning"]
    states = [t.state for t in result.study.trials]
    assert pruning["n_pruned"] == states.count(optuna.trial.TrialState.PRUNED) > 0
    assert set(pruning["pruned_at_step"]) <= {"10", "20"}  # auto's rungs on its own steps: 1/3 and 2/3 of 30
    for t in result.study.trials:  # what each trial trained and spent, for the budget and the section
        record = t.user_attrs[FIDELITY_ATTR]
        assert record["custom"] and record["fit_cpu_s"] >= 0 and record["pruned"] == (t.state.name == "PRUNED")
        assert record["steps"][-1] == (30 if t.state.name == "COMPLETE" else int(max(t.intermediate_values)))
    assert pruning["fit_s_saved"] > 0 and pruning["steps_saved"] > 0
    compute = pruning["compute"]
    assert compute["unit"] == "fit_cpu_s" and compute["budget"] is None
    best = [point[1] for point in compute["anytime"]]
    assert best == sorted(best) and best[-1] == result.study.best_value  # best so far vs compute
    assert 0 <= compute["to_best"] <= compute["spent"]


def test_tune_without_pruning_says_why_in_its_own_words(workdir, cli):
    """tune() records what it was asked: an explicit pruner='none' is not "auto chose no
    pruner", and tune() has no search.pruner (a spec's field) to name."""
    from tuneops.tuning import tune

    for pruner, n_trials, why in (("none", 12, "pruner: none"),
                                  ("auto", 4, "pruner auto prunes studies of 10 trials or more; "
                                              "this one asked for 4")):
        result = tune(_epochs_objective(), n_trials=n_trials, pruner=pruner, sampler="random",
                      storage="tune.journal", study=f"off_{pruner}")
        assert result.results["pruning"]["off"] == why
        code, out, _ = cli("show", f"off_{pruner}", "--storage", "tune.journal")
        assert code == 0
        assert f"Pruning: off ({why}); " in out, out


def test_no_multi_objective_cut_after_the_last_step_of_a_custom_objective(workdir):
    """tune() with two objectives: ParetoPruner (auto) cuts dominated trials before their last
    step, never at it (the training is paid for); a spec that measures a serving cost after the
    last step may still cut there (it saves the measurement)."""
    from tuneops.tuning import tune

    n_epochs = 9
    asked_at_last = []

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        cost = x if x > 0.5 else 1 + x  # below 0.5: worse in both objectives
        for epoch in range(1, n_epochs + 1):
            report(trial, (x * epoch / n_epochs, cost), epoch)
            if epoch == n_epochs:
                asked_at_last.append(should_prune(trial))
            elif should_prune(trial):
                raise optuna.TrialPruned()
        return x, cost

    result = tune(objective, objectives=["acc", "cost"], directions=["maximize", "minimize"],
                  n_trials=40, storage="mo.journal", sampler="random")
    pruned = [t for t in result.study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and asked_at_last and not any(asked_at_last)
    assert all(max(t.user_attrs[FIDELITY_ATTR]["steps"]) < n_epochs for t in pruned)
    assert result.study.user_attrs["tuneops:pruner"].startswith("ParetoPruner(") and "cut_at_last_step=False" in \
        result.study.user_attrs["tuneops:pruner"]
    # the same study's trials, judged by a pruner for a spec that measures latency after its last step
    last = next(t for t in result.study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.params["x"] < 0.5)
    spec_side = make_pruner("auto", n_objectives=2, n_trials=40, max_step=n_epochs, measured_after_last=True)
    assert spec_side.prune(result.study, last) is True
    assert make_pruner("auto", n_objectives=2, n_trials=40).prune(result.study, last) is False


def test_compute_budget_buys_more_trials_with_pruning(workdir):
    """budget={'steps': 300}: trials are created until the steps the finished trials trained
    reach 300; pruned trials spend less, so more of them run; the tally is the sum."""
    from tuneops import runner
    from tuneops.tuning import tune

    plain = tune(_epochs_objective(), budget={"steps": 300}, pruner="none", storage="b.journal",
                 study="plain", sampler="random")
    assert len(plain.study.trials) == 10  # 30 steps each, no pruning
    pruned = tune(_epochs_objective(), budget={"steps": 300}, storage="b.journal", study="pruned",
                  sampler="random")
    trials = pruned.study.trials
    spent = [t.user_attrs[FIDELITY_ATTR]["steps"][-1] for t in trials]
    assert sum(spent) >= 300 and sum(spent[:-1]) < 300  # one worker: stops at the budget
    assert len(trials) > 15 and any(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    assert runner.compute_spent(pruned.study)["steps"] == sum(spent)
    compute = pruned.results["pruning"]["compute"]
    assert compute["unit"] == "steps" and compute["budget"] == 300 and compute["spent"] == sum(spent)
    # n_trials limits when given with a budget
    capped = tune(_epochs_objective(), budget={"steps": 300}, n_trials=4, storage="b.journal", study="capped")
    assert len(capped.study.trials) == 4


def test_budget_tally_is_incremental_with_pruned_trials():
    """The spent compute of settled (finished) trials is kept, not re-read per claim."""
    from tuneops import runner

    study = optuna.create_study()
    for i in range(6):
        t = optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED if i % 2 else optuna.trial.TrialState.COMPLETE,
            value=None if i % 2 else 0.5, intermediate_values={1: 0.5},
            user_attrs={FIDELITY_ATTR: {"steps": [1, 3] if i % 2 else [1, 3, 9, 27], "fit_s": 2.0,
                                        "fit_cpu_s_steps": [0.1, 0.4] if i % 2 else [0.1, 0.4, 1.0, 3.0],
                                        "n_steps": 4, "max_step": 27, "pruned": bool(i % 2)}})
        study.add_trial(t)
    first = runner._Tally.of(study.get_trials(deepcopy=False), study)
    assert first.spent["steps"] == 3 * 27 + 3 * 3 and first.spent["fit_cpu_s"] == pytest.approx(3 * 3.0 + 3 * 0.4)
    assert first.spent["fit_s"] == 12.0 and first.examined == 6
    again = runner._Tally.of(study.get_trials(deepcopy=False), study)
    assert again.spent == first.spent and again.examined == 0  # the settled prefix is not looked at again


def test_search_budget_in_a_spec(workdir):
    from tuneops.spec import load_spec
    from tuneops.tuning import run

    spec = tiny_spec()
    spec["search"] = {"budget": {"steps": 27 * 5}, "cv_folds": 2, "pruner": "none"}
    assert load_spec(spec).n_trials is None  # the budget replaces the default 20
    result = run(spec)
    assert len(result.study.trials) == 5  # no pruning: 27 steps (a full training) per trial
    assert result.results["pruning"]["compute"]["budget"] == 135
    with pytest.raises(SpecError, match=r"search\.budget: unknown compute unit 'cpu'; expected one of fit_cpu_s, fit_s, steps"):
        load_spec({**spec, "search": {"budget": {"cpu": 5}}})
    with pytest.raises(SpecError, match=r"search\.budget\.steps: expected an amount > 0, received 0"):
        load_spec({**spec, "search": {"budget": {"steps": 0}}})


def test_savings_count_the_serving_measurements_a_cut_after_training_saved():
    """A multi-objective spec may cut after the last step, before its serving cost is measured:
    no fit is saved, the measurement is (counted, and estimated at the complete trials' median)."""
    from tuneops.pruning import pruning_savings

    study = optuna.create_study(directions=["maximize", "minimize"])
    for i, (state, steps, cpu) in enumerate([
        ("COMPLETE", [1, 3, 9, 27], 0.2), ("COMPLETE", [1, 3, 9, 27], 0.4),
        ("COMPLETE", [1, 3, 9, 27], 0.3), ("PRUNED", [1, 3, 9, 27], None), ("PRUNED", [1, 3], None),
    ]):
        cost = {"serving": {"call": {"cpu_s": cpu}}} if cpu is not None else {}
        study.add_trial(optuna.trial.create_trial(
            state=getattr(optuna.trial.TrialState, state),
            values=[0.9, 1.0 + i] if state == "COMPLETE" else None, intermediate_values={1: 0.5},
            user_attrs={FIDELITY_ATTR: {"steps": steps, "fit_s": 1.0, "n_steps": 4, "max_step": 27,
                                        "pruned": state == "PRUNED"}, "tuneops:cost": cost}))
    saving = pruning_savings(study, study.get_trials(deepcopy=False))
    assert (saving["n_pruned"], saving["measurements_saved"]) == (2, 1)  # only the cut at 27
    assert saving["measure_s_saved"] == pytest.approx(0.3)  # the median measurement
    assert saving["steps_saved"] == 2  # the trial cut at step 3 saved its two last steps


def test_savings_are_counted_in_cpu_seconds_with_wall_seconds_beside() -> None:
    from tuneops.pruning import pruning_savings

    # A loaded machine: every trial's fitting took 3x its CPU seconds of wall time.
    study = optuna.create_study()
    for state, steps, cpu_steps in [
        ("COMPLETE", [1, 3, 9, 27], [0.1, 0.3, 0.9, 2.7]),
        ("PRUNED", [1, 3], [0.1, 0.3]),
    ]:
        study.add_trial(optuna.trial.create_trial(
            state=getattr(optuna.trial.TrialState, state),
            value=0.9 if state == "COMPLETE" else None, intermediate_values={s: 0.5 for s in steps},
            user_attrs={FIDELITY_ATTR: {"steps": steps, "fit_s": 3 * cpu_steps[-1], "n_steps": 4,
                                        "max_step": 27, "fit_cpu_s_steps": cpu_steps}}))
    saving = pruning_savings(study, study.get_trials(deepcopy=False))
    assert saving["fit_cpu_s"] == pytest.approx(3.0)  # 2.7 + 0.3
    assert saving["fit_cpu_s_saved"] == pytest.approx(2.4)  # 0.3 * (27 / 3 - 1)
    assert saving["fit_s_saved"] == pytest.approx(3 * 2.4)  # the wall figure, beside
    assert saving["fit_saved_fraction"] == pytest.approx(2.4 / 5.4)
    assert saving["fit_cpu_s_to_best"] == pytest.approx(2.7)  # the pruned trial came after it


def _fidelity_trial(state, steps, cpu_steps, *, value=None, constraints=None, start=None, end=None,
                    custom=False):
    import datetime as dt

    record = {"steps": steps, "fit_s": cpu_steps[-1], "n_steps": 4, "max_step": 27,
              "fit_cpu_s_steps": cpu_steps}
    if custom:
        record = {"steps": steps, "n_steps": len(steps), "max_step": steps[-1], "fit_s": 1.0,
                  "fit_cpu_s": 1.0, "pruned": state == "PRUNED", "custom": True}
    base = dt.datetime(2026, 1, 1)
    return optuna.trial.FrozenTrial(
        number=0, trial_id=0, state=getattr(optuna.trial.TrialState, state),
        value=value, params={}, distributions={},
        intermediate_values={s: 0.5 for s in steps},
        user_attrs={FIDELITY_ATTR: record},
        system_attrs={"constraints": constraints} if constraints is not None else {},
        datetime_start=base + dt.timedelta(seconds=start or 0),
        datetime_complete=base + dt.timedelta(seconds=end if end is not None else 1),
    )


def test_a_pruned_trial_s_saving_follows_the_measured_cost_curve_not_the_steps() -> None:
    """Fixed costs make the first steps dear: the completed trials measured 1/27 of the trees
    at a tenth of the full fit's CPU, so a trial cut there saved 9x what it spent, not 26x."""
    from tuneops.pruning import pruning_savings

    study = optuna.create_study()
    for cpu in ([1.0, 2.0, 4.0, 10.0], [2.0, 4.0, 8.0, 20.0]):
        study.add_trial(_fidelity_trial("COMPLETE", [1, 3, 9, 27], cpu, value=0.9))
    study.add_trial(_fidelity_trial("PRUNED", [1], [1.5]))
    saving = pruning_savings(study, study.get_trials(deepcopy=False))
    assert saving["fit_cpu_s_saved"] == pytest.approx(1.5 * (10.0 - 1))  # measured 10x
    # without completed trials to measure: the share of the resource, as before
    alone = optuna.create_study()
    alone.add_trial(_fidelity_trial("PRUNED", [1, 3], [0.1, 0.3]))
    assert pruning_savings(alone, alone.get_trials())["fit_cpu_s_saved"] == pytest.approx(2.4)


def test_the_best_and_the_time_to_it_count_feasible_trials_and_busy_time_only() -> None:
    from tuneops.pruning import pruning_savings

    study = optuna.create_study(direction="maximize")
    # trial 0 feasible; trial 1 better but infeasible; a pause of an hour; trial 2 (resumed)
    study.add_trial(_fidelity_trial("COMPLETE", [1, 3, 9, 27], [1, 2, 3, 4], value=0.80,
                                    constraints=[-1.0], start=0, end=10))
    study.add_trial(_fidelity_trial("COMPLETE", [1, 3, 9, 27], [1, 2, 3, 4], value=0.95,
                                    constraints=[2.0], start=10, end=20))
    study.add_trial(_fidelity_trial("COMPLETE", [1, 3, 9, 27], [1, 2, 3, 4], value=0.85,
                                    constraints=[-0.5], start=3620, end=3630))
    saving = pruning_savings(study, study.get_trials(deepcopy=False))
    assert saving["best_trials"] == [2]
    assert saving["time_to_best_s"] == pytest.approx(30.0)  # 20 s, then 10 s after the pause
    assert saving["compute"]["anytime"][-1][1] == 0.85


def test_the_best_existed_when_the_first_trial_with_its_value_completed() -> None:
    """Two workers tied on the best accuracy: the higher-numbered trial completed first. The
    time and fit CPU to the best waited for the lower-numbered one (the whole run), while the
    anytime curve's compute to the best, in the same section, stopped at the first (audit)."""
    from tuneops.pruning import pruning_savings

    study = optuna.create_study(direction="maximize")
    for value, start, end in ((0.9, 0, 30), (0.9, 0, 10), (0.8, 10, 20)):
        study.add_trial(_fidelity_trial("COMPLETE", [1, 3, 9, 27], [1, 2, 3, 4], value=value,
                                        start=start, end=end))
    saving = pruning_savings(study, study.get_trials(deepcopy=False))
    assert saving["best_trials"] == [1]
    assert saving["time_to_best_s"] == pytest.approx(10.0)
    assert saving["fit_cpu_s_to_best"] == pytest.approx(4.0)
    assert saving["compute"]["to_best"] == saving["fit_cpu_s_to_best"]


def test_the_time_to_the_front_is_to_the_front_the_selection_printed() -> None:
    """Several objectives: a trial on the plain Pareto front that ties within noise with a
    member of the printed front (accuracy 1e-5 apart, larger) completed last, and the time to
    the best was the whole run, of a front the user never saw (audit)."""
    from tuneops.pruning import pruning_savings
    from tuneops.results import study_results

    study = optuna.create_study(directions=["maximize", "minimize"])
    for values, end in (([0.9, 100.0], 10), ([0.8, 50.0], 20), ([0.90001, 108.0], 60)):
        trial = _fidelity_trial("COMPLETE", [1, 3, 9, 27], [1, 2, 3, 4], end=end)
        trial.values = values
        study.add_trial(trial)
    trials = study.get_trials(deepcopy=False)
    plain = pruning_savings(study, trials)
    assert plain["best_trials"] == [0, 1, 2] and plain["time_to_best_s"] == pytest.approx(60.0)
    printed = pruning_savings(study, trials, front=[0, 1])
    assert printed["best_trials"] == [0, 1] and printed["time_to_best_s"] == pytest.approx(20.0)
    assert printed["fit_cpu_s_to_best"] == pytest.approx(8.0)
    choice = {"selected_trial": 0, "pareto_front": [0, 1], "policy": "knee"}
    assert study_results(study, choice=choice)["pruning"]["best_trials"] == [0, 1]


def test_bench_time_to_the_front_is_to_the_front_the_run_printed() -> None:
    """`bench pruners` measured a two-objective run's time to best to the plain Pareto front:
    a trial tied within noise with the printed front, completed last, made it the whole run
    while the run's results.json said 20 s (review)."""
    from tuneops.bench import run_summary
    from tuneops.results import study_results

    study = optuna.create_study(directions=["maximize", "minimize"])
    for values, end in (([0.9, 100.0], 10), ([0.8, 50.0], 20), ([0.90001, 108.0], 60)):
        trial = _fidelity_trial("COMPLETE", [1, 3, 9, 27], [1, 2, 3, 4], end=end)
        trial.values = values
        study.add_trial(trial)
    assert run_summary(study)["time_to_best_s"] == pytest.approx(60.0)  # no selection: plain
    # the end of a run: its selection stored, and the record of what it printed
    choice = {"selected_trial": 0, "pareto_front": [0, 1], "policy": "knee", "n_complete": 3}
    study.set_user_attr(_study.SELECTION, choice)
    results = study_results(study, choice=choice, record=True)
    summary = run_summary(study)
    assert summary["time_to_best_s"] == pytest.approx(results["pruning"]["time_to_best_s"])
    assert summary["time_to_best_s"] == pytest.approx(20.0)
    assert summary["fit_s_to_best"] == results["pruning"]["fit_s_to_best"]


def test_bench_says_the_size_of_the_front_the_run_printed() -> None:
    """`bench pruners` said after each two-objective run "Pareto front of 3 trials" where the
    run printed 2 (a tie within noise left out)."""
    from tuneops.bench import _run_best, run_summary
    from tuneops.results import study_results

    study = optuna.create_study(directions=["maximize", "minimize"])
    for values in ([0.9, 100.0], [0.8, 50.0], [0.90001, 108.0]):
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, values=values))
    assert _run_best(run_summary(study)) == 3  # no selection: the plain front
    choice = {"selected_trial": 0, "pareto_front": [0, 1], "policy": "knee", "n_complete": 3}
    study.set_user_attr(_study.SELECTION, choice)
    study_results(study, choice=choice, record=True)
    summary = run_summary(study)
    assert summary["front"] == [0, 1] and _run_best(summary) == 2


def test_custom_steps_from_zero_and_steps_not_every_integer_are_counted_as_reported() -> None:
    from tuneops.pruning import pruning_savings

    study = optuna.create_study()
    study.add_trial(_fidelity_trial("COMPLETE", list(range(10)), [1.0], value=0.9, custom=True))
    study.add_trial(_fidelity_trial("PRUNED", [0], [1.0], custom=True))  # cut after epoch 0
    saving = pruning_savings(study, study.get_trials(deepcopy=False))
    assert saving["steps_saved"] == 9 and saving["fit_cpu_s_saved"] == pytest.approx(9.0)
    doubling = optuna.create_study()
    doubling.add_trial(_fidelity_trial("COMPLETE", [1, 2, 4, 8], [1.0], value=0.9, custom=True))
    doubling.add_trial(_fidelity_trial("PRUNED", [1, 2, 4], [1.0], custom=True))
    assert pruning_savings(doubling, doubling.get_trials())["steps_saved"] == 1  # step 8 only


def test_a_custom_objective_reporting_from_step_zero_is_pruned_and_summarized(workdir) -> None:
    import tuneops

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        for epoch in range(6):
            trial.report(x * (epoch + 1) / 6, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x

    result = tuneops.tune(objective, n_trials=12, sampler="random", seed=3,
                          pruner={"name": "median", "n_startup_trials": 2})
    assert result.results["pruning"]["n_trials"] == 12  # summarized, not a ZeroDivisionError
