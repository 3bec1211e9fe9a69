"""Pruners by name (parameter errors), auto, multi-objective pruning, savings, bench pruners."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest

from conftest import tiny_spec
from tuneops.errors import SpecError
from tuneops.pruning import (
    PRUNERS,
    ParetoPruner,
    dominates,
    make_pruner,
    report,
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
        (1, 10, optuna.pruners.SuccessiveHalvingPruner),
        (1, 100, optuna.pruners.SuccessiveHalvingPruner),
        (1, None, optuna.pruners.SuccessiveHalvingPruner),  # a timeout, no trial budget
    ],
)
def test_auto_chooses_by_objectives_and_budget(n_objectives, n_trials, expected):
    from tuneops.pruning import SMALL_BUDGET

    assert SMALL_BUDGET == 10
    pruner = make_pruner("auto", n_objectives=n_objectives, n_trials=n_trials)
    assert type(pruner) is expected


def test_auto_single_objective_has_one_rung_at_a_quarter_of_training():
    """min_resource 2, reduction factor 4: the only rung before the last step is step 2."""
    from tuneops.families import FIDELITY_STEPS

    pruner = make_pruner("auto", n_trials=100)
    assert (pruner._min_resource, pruner._reduction_factor, pruner._bootstrap_count) == (2, 4, 0)
    rungs = [pruner._min_resource * pruner._reduction_factor**k for k in range(3)]
    assert [r for r in rungs if r < FIDELITY_STEPS[-1]] == [2]


def test_auto_takes_no_parameters():
    with pytest.raises(SpecError, match=r"search\.pruner\.percentile: pruner 'auto' has no parameter 'percentile'; it accepts: none"):
        make_pruner("auto", {"percentile": 25})


def test_auto_cuts_at_step_2_keeps_a_quarter_and_the_best():
    """A plain Optuna study of 60 trials: ``auto`` never cuts at step 1, cuts at step 2 from
    the second trial on, about three quarters of the trials, never the best one."""
    study = optuna.create_study(direction="maximize", pruner=make_pruner("auto", n_trials=60))
    rng = np.random.default_rng(0)
    quality = rng.uniform(0, 1, 60)
    stopped_at = {}
    for q in quality:
        trial = study.ask()
        for step in (1, 2, 4):
            trial.report(q * step / 8, step)
            if trial.should_prune():
                stopped_at[trial.number] = step
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, q)
    assert set(stopped_at.values()) == {2}
    assert int(np.argmax(quality)) not in stopped_at
    assert 0.6 < len(stopped_at) / 60 < 0.9


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
    assert saving["fit_s_saved"] > 0 and 0 < saving["fit_saved_fraction"] < 1
    assert saving["time_to_best_s"] >= 0 and saving["best_trials"]
    assert json.loads(Path(result.results_path).read_text())["pruning"]["n_pruned"] == n_pruned
    code, out, _ = cli("show", "tiny")
    assert code == 0
    assert f"Pruning: {n_pruned} of 10 trials pruned" in out and "fit seconds saved" in out


# -- bench pruners ------------------------------------------------------------------------------------
def test_bench_pruners_end_to_end(workdir, cli):
    spec = workdir / "spec.yaml"
    spec.write_text(json.dumps(tiny_spec(n_trials=4)))
    code, out, err = cli("bench", "pruners", spec, "--pruners", "none,median", "--seeds", "0,1", "--out", "b")
    assert code == 0, err
    assert "none" in out and "median" in out and "pruning rate" in out
    bench = json.loads((workdir / "b" / "bench.json").read_text())
    assert [p["pruner"] for p in bench["pruners"]] == ["none", "median"]
    for entry in bench["pruners"]:
        assert [r["seed"] for r in entry["runs"]] == [0, 1]
        assert all(r["n_trials"] == 4 and 0 < r["best"] <= 1 and r["compute_s"] > 0 for r in entry["runs"])
        assert entry["mean"]["best"] is not None and entry["std"]["best"] is not None
    assert bench["pruners"][0]["mean"]["pruning_rate"] == 0
    assert (workdir / "b" / "bench.png").stat().st_size > 0
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
