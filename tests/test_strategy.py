"""The staged strategy: phases by trial number and budget, resume, the pruner gate, verification."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from tuneops import _study
from tuneops.data import load_dataset
from tuneops.errors import NoFeasibleTrial
from tuneops.objective import SpecObjective
from tuneops.samplers import GP_LOCAL_SEARCH, SpaceKind, auto_plan, describe_space, gp_settings
from tuneops.selection import select_in_study
from tuneops.spec import Objective, Selection, load_spec, parse_constraint
from tuneops.strategy import (
    StagedPruner,
    StagedSampler,
    phase_of,
    record_strategy,
    staged_phases,
    staged_pruner,
    strategy_of,
    strategy_section,
    t975,
    top_candidates,
    verify_top,
)


def _objective(trial: optuna.trial.BaseTrial) -> float:
    return (trial.suggest_float("x", -1, 1) - 0.3) ** 2 + trial.suggest_float("y", -1, 1) ** 2


# -- phases ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n_trials", "bounds"),
    [
        (200, [(0, 30), (30, 140), (140, 200)]),  # 15 % explore, 30 % refine
        (100, [(0, 20), (20, 70), (70, 100)]),  # explore at its minimum of 20
        (1000, [(0, 50), (50, 700), (700, 1000)]),  # explore at its maximum of 50
        (30, [(0, 10), (10, 21), (21, 30)]),  # a tiny budget: explore a third
    ],
)
def test_phases_by_budget(n_trials: int, bounds: list[tuple[int, int]]) -> None:
    phases = staged_phases(n_trials, gp=False, cmaes=False)
    assert [(p.start, p.end) for p in phases] == bounds
    assert [p.name for p in phases] == ["explore", "model", "refine"]
    assert [p.pruning for p in phases] == [False, True, False]


def test_refine_sampler_by_case() -> None:
    assert staged_phases(200, gp=True)[-1].sampler == "gp"

    one_continuous = SpaceKind(3, "continuous", False)
    assert staged_phases(200, space=one_continuous, gp=False, cmaes=True)[-1].sampler == "cmaes"
    assert (
        staged_phases(200, n_objectives=2, space=one_continuous, gp=False, cmaes=True)[-1].sampler
        == "tpe"
    )
    assert staged_phases(200, space=SpaceKind(9, "mixed", True), gp=True)[-1].sampler == "tpe"
    # GP lost to TPE with three objectives (DTLZ2): not chosen there even with PyTorch
    assert staged_phases(200, n_objectives=2, gp=True)[-1].sampler == "gp"
    assert staged_phases(200, n_objectives=3, gp=True)[-1].sampler == "tpe"


@pytest.mark.parametrize(
    ("n_objectives", "categorical", "starting_points"), [(1, True, GP_LOCAL_SEARCH), (2, False, 10)]
)
def test_refine_phase_runs_the_gp_auto_runs(
    n_objectives: int, categorical: bool, starting_points: int
) -> None:
    # The refine phase built Optuna's default GPSampler, its acquisition searched from 10
    # starting points, while auto's GP stage (one objective with categoricals, two on floats)
    # searches from GP_LOCAL_SEARCH with one objective (as good at 0.43 of the CPU,
    # docs/benchmarks.md) and from Optuna's 10 with two
    space: dict[str, Any] = {"x": FloatDistribution(-1, 1), "y": FloatDistribution(-1, 1)}
    if categorical:
        space["c"] = CategoricalDistribution(["a", "b"])

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        value = _objective(trial)
        if categorical:
            value += trial.suggest_categorical("c", ["a", "b"]) == "b"
        return (value,) * n_objectives

    sampler = StagedSampler(seed=0, n_trials=30, n_objectives=n_objectives, space=space, gp=True)
    study = optuna.create_study(directions=["minimize"] * n_objectives, sampler=sampler)
    refine = sampler.phases(study)[-1]
    assert refine.sampler == "gp"
    # the explore and model phases (random, TPE), then the refine phase's first trial asked:
    # its sampler is built, not run (no PyTorch needed)
    study.optimize(objective, n_trials=refine.start)
    number = study.ask().number
    gp = sampler.route(study, study.trials[number])
    assert type(gp).__name__ == "GPSampler"
    assert gp._n_local_search == starting_points  # Optuna's private setting (tuneops._optuna)
    # one place says what auto's GP stage is: the refine phase's is the same
    stage = auto_plan(n_objectives, describe_space(space), 200, gp=True)[0][0]
    assert (stage.name, dict(stage.params)) == ("gp", gp_settings(n_objectives))


def test_phase_of_puts_trials_past_the_budget_in_the_last_phase() -> None:
    phases = staged_phases(40, gp=False)
    assert phase_of(phases, 0).name == "explore"
    assert phase_of(phases, 39).name == "refine"
    assert phase_of(phases, 45).name == "refine"


def test_bad_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="n_trials"):
        staged_phases(0)


# -- the sampler -----------------------------------------------------------------------------------
def _served(sampler: StagedSampler, study: optuna.Study) -> dict[str, str]:
    """The class of the sampler of each phase, after a run."""
    return {
        p.name: type(sampler.route(study, study.trials[p.start])).__name__
        for p in sampler.phases(study)
        if p.start < len(study.trials)
    }


def test_sampler_phases_by_trial_number() -> None:
    sampler = StagedSampler(seed=0, n_trials=40, gp=False, cmaes=False)
    study = optuna.create_study(sampler=sampler)
    study.optimize(_objective, n_trials=40)
    assert [(p.name, p.start, p.end) for p in sampler.phases(study)] == [
        ("explore", 0, 13),
        ("model", 13, 28),
        ("refine", 28, 40),
    ]
    assert _served(sampler, study) == {
        "explore": "RandomSampler",
        "model": "TPESampler",
        "refine": "TPESampler",
    }
    # The refine phase's TPE samples near the best: the best is better than the explore phase's.
    explore_best = min(float(t.values[0]) for t in study.trials[:13])
    assert study.best_value <= explore_best


def test_sampler_is_deterministic_with_a_seed() -> None:
    def params() -> list[dict[str, Any]]:
        study = optuna.create_study(
            sampler=StagedSampler(seed=5, n_trials=30, gp=False, cmaes=False)
        )
        study.optimize(_objective, n_trials=30)
        return [t.params for t in study.trials]

    assert params() == params()


def test_no_phase_replays_the_configurations_of_the_phase_before() -> None:
    # 20 trials: 6 random, then TPE, whose start-up still draws at random for 4 trials; with one
    # seed for both it proposed trials 0-3 again (a duplicate even reached a real study's front).
    study = optuna.create_study(sampler=StagedSampler(seed=0, n_trials=20, gp=False, cmaes=False))
    study.optimize(_objective, n_trials=20)
    configurations = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(configurations)) == 20


def test_auto_after_its_start_up_does_not_replay_it() -> None:
    from tuneops.samplers import AutoSampler, stage_seed

    assert stage_seed(3, 0) == 3 and stage_seed(None, 2) is None
    assert len({stage_seed(3, k) for k in range(4)}) == 4
    # The space unknown (tune()): 10 random start-up trials, then TPE, which keeps drawing at
    # random while fewer than its own 20 start-up trials are done.
    sampler = AutoSampler(seed=0, n_objectives=1, n_trials=30, gp=False, n_startup_trials=20)
    study = optuna.create_study(sampler=sampler)
    study.optimize(_objective, n_trials=30)
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 30


def test_phases_come_from_the_stored_budget_on_resume() -> None:
    storage = optuna.storages.InMemoryStorage()  # shared by both "processes", as a database is
    study = optuna.create_study(
        study_name="s",
        storage=storage,
        sampler=StagedSampler(seed=0, n_trials=60, gp=False, cmaes=False),
    )
    _study.set_budget_record(study, 60)  # what runner.set_budget stores
    study.optimize(_objective, n_trials=25)
    first = record_strategy(study, StagedSampler(seed=0, n_trials=60, gp=False).phases(study))
    # Another process (a resumed run, a joining worker) knows no budget: it reads the stored one.
    again = StagedSampler(seed=0, gp=False, cmaes=False)
    resumed = optuna.load_study(study_name="s", storage=storage, sampler=again)
    assert [p.to_dict() for p in again.phases(resumed)] == first["phases"]
    resumed.optimize(_objective, n_trials=35)
    assert _served(again, resumed) == {
        "explore": "RandomSampler",
        "model": "TPESampler",
        "refine": "TPESampler",
    }
    assert resumed.user_attrs[_study.STRATEGY]["n_trials"] == 60
    section = strategy_section(resumed, resumed.trials)
    assert section is not None
    assert [p["phase"] for p in section["phases"]] == ["explore", "model", "refine"]
    assert [p["trials"]["complete"] for p in section["phases"]] == [20, 22, 18]


def test_without_any_budget_the_sampler_says_what_is_missing() -> None:
    study = optuna.create_study(sampler=StagedSampler(seed=0))
    with pytest.raises(ValueError, match="search.n_trials"):
        study.optimize(_objective, n_trials=1)


def test_space_judged_from_the_explore_phase_for_a_conditional_objective() -> None:
    def conditional(trial: optuna.Trial) -> float:
        if trial.suggest_categorical("family", ["a", "b"]) == "a":
            return trial.suggest_float("a.x", 0, 1)
        return trial.suggest_int("b.n", 1, 10) / 10

    sampler = StagedSampler(seed=0, n_trials=30, gp=True)  # conditional: TPE even with GP allowed
    study = optuna.create_study(sampler=sampler)
    study.optimize(conditional, n_trials=30)
    assert _served(sampler, study)["refine"] == "TPESampler"


# -- the pruner gate -------------------------------------------------------------------------------
class _Always(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_pruner_prunes_in_the_model_phase_only() -> None:
    sampler = StagedSampler(seed=0, n_trials=30, gp=False, cmaes=False)
    pruner = staged_pruner(_Always(), sampler)
    assert isinstance(pruner, StagedPruner)

    def reporting(trial: optuna.Trial) -> float:
        value = _objective(trial)
        trial.report(value, 1)
        if trial.should_prune():
            raise optuna.TrialPruned()
        return value

    study = optuna.create_study(sampler=sampler, pruner=pruner)
    study.optimize(reporting, n_trials=30)
    pruned = [t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned == list(range(10, 21))  # the model phase of a 30-trial study
    # A pruner that never prunes, or one that decides how the objective trains, is kept as it is.
    nop = optuna.pruners.NopPruner()
    assert staged_pruner(nop, sampler) is nop


# -- the spec field --------------------------------------------------------------------------------
def test_strategy_of_reads_every_form_of_spec() -> None:
    assert strategy_of({"search": {"strategy": "staged"}}) == "staged"
    assert strategy_of({"search": {}}) is None

    class Search:
        strategy = "staged"

    class Spec:
        search = Search()

    assert strategy_of(Spec()) == "staged"
    assert strategy_of(object()) is None


# -- verification ----------------------------------------------------------------------------------
def test_t975_matches_the_table() -> None:
    assert t975(2) == pytest.approx(4.303)
    assert t975(20) == pytest.approx(2.086, abs=1e-3)
    assert t975(10_000) == pytest.approx(1.960, abs=1e-3)


def test_top_candidates_rank_by_pareto_front() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for values in [(0.9, 5.0), (0.8, 1.0), (0.85, 6.0), (0.7, 0.5), (0.6, 9.0)]:
        study.add_trial(optuna.trial.create_trial(values=list(values)))
    top = top_candidates(study.trials, ["maximize", "minimize"], 4)
    # Front: trials 0, 1, 3 (by accuracy), then the front of the rest: trial 2.
    assert [t.number for t in top] == [0, 1, 3, 2]


def test_top_candidates_are_trials_that_met_the_constraints_first() -> None:
    # the verification re-evaluated the two best, which broke latency <= 2, while trial 2 (the
    # best that met it) went unverified and was selected at its search values
    study = optuna.create_study(directions=["maximize", "minimize"])
    for values, violation in [((0.9, 5.0), 3.0), ((0.88, 4.0), 2.0), ((0.8, 1.0), 0.0),
                              ((0.7, 0.5), 0.0), ((0.75, 1.5), 0.0)]:
        study.add_trial(optuna.trial.create_trial(
            values=list(values), system_attrs={"constraints": [violation]}))
    top = top_candidates(study.trials, ["maximize", "minimize"], 3)
    assert [t.number for t in top] == [2, 3, 4]  # the feasible front, then the next feasible
    # fewer feasible trials than k: the infeasible ones fill the rest, best first
    assert [t.number for t in top_candidates(study.trials, ["maximize", "minimize"], 5)] == [
        2, 3, 4, 0, 1]


def test_verify_top_judges_trials_recorded_under_other_constraints_by_the_study_s_now() -> None:
    """A staged study resumed with 'value <= 0.5' in place of 'value <= 2' verified the trial at
    0.9, which its record of the old constraint called feasible, and left the best trial that
    meets the new one (0.4) unverified."""
    from tuneops import _study

    study = optuna.create_study(direction="maximize")
    for x in (0.9, 0.4, 0.3):
        study.add_trial(optuna.trial.create_trial(
            params={"x": x}, distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
            value=x, constraints={"value <= 2": x - 2}))
    study.set_user_attr(_study.CONSTRAINTS, ["value <= 0.5"])
    result = verify_top(study, lambda folds, repeat: lambda t: t.suggest_float("x", 0, 1), k=1,
                        record=False)
    assert [c["number"] for c in result["candidates"]] == [1]
    # records of the study's constraints are read as they are
    study.set_user_attr(_study.CONSTRAINTS, ["value <= 2"])
    result = verify_top(study, lambda folds, repeat: lambda t: t.suggest_float("x", 0, 1), k=1,
                        record=False)
    assert [c["number"] for c in result["candidates"]] == [0]


def test_verify_top_reports_confidence_intervals_on_real_cv() -> None:
    spec = load_spec(
        {
            "data": {"source": "sklearn:iris"},
            "model": {"family": "knn"},
            "objectives": ["accuracy"],
            "search": {"n_trials": 6, "cv_folds": 3, "seed": 0},
        }
    )
    data = load_dataset("sklearn:iris")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    record_strategy(study, staged_phases(6))
    study.optimize(SpecObjective(spec, data), n_trials=6)

    def factory(folds: int, repeat: int) -> SpecObjective:
        return SpecObjective(
            spec.replace(
                search={**spec.to_dict()["search"], "cv_folds": folds, "seed": 100 + repeat}
            ),
            data,
        )

    result = verify_top(study, factory, k=2, folds=4, repeats=3)
    assert (result["k"], result["folds"], result["repeats"]) == (2, 4, 3)
    assert len(result["candidates"]) == 2
    best = result["candidates"][0]
    assert best["number"] == study.best_trial.number or best["values"][0] == study.best_value
    low, high = best["ci95"][0]
    runs = [r[0] for r in best["evaluations"]]
    assert len(runs) == 3 and low <= best["mean"][0] <= high
    half = t975(2) * best["std"][0] / math.sqrt(3)
    assert high - best["mean"][0] == pytest.approx(half)
    assert 0.8 < best["mean"][0] <= 1.0
    stored = study.user_attrs[_study.STRATEGY]
    assert stored["verification"]["candidates"][0]["number"] == best["number"]
    assert strategy_section(study, study.trials)["verification"]["k"] == 2  # type: ignore[index]


def test_a_retry_keeps_the_phase_of_the_trial_it_repeats() -> None:
    """By trial number, a model-phase trial abandoned and retried ran in the refine phase (with
    pruning off), and the refine phase ran more trials than planned (audit: 3/3/6 of 4/4/4). By
    place in the budget, abandoned trials hold no place: the retry takes the model phase."""
    sampler = StagedSampler(seed=0, n_trials=12, gp=False, cmaes=False)
    pruner = staged_pruner(_Always(), sampler)
    study = optuna.create_study(sampler=sampler, pruner=pruner)
    assert [(p.name, p.start, p.end) for p in sampler.phases(study)] == [
        ("explore", 0, 4), ("model", 4, 8), ("refine", 8, 12)
    ]
    study.optimize(_objective, n_trials=7)  # places 0-6
    abandoned = study.ask()  # trial 7, place 7: model
    assert sampler.phase(study, abandoned.number).name == "model"
    abandoned.set_user_attr(_study.ABANDONED, "worker gone")
    study.tell(abandoned, state=optuna.trial.TrialState.FAIL)
    retry = study.ask()  # trial 8: by number the refine phase; its place is 7
    assert retry.number == 8 and sampler.phase(study, 8).name == "model"
    assert type(sampler.route(study, study.trials[8])).__name__ == "TPESampler"
    retry.report(1.0, 1)
    assert retry.should_prune()  # pruning on, as in the model phase
    study.tell(retry, 1.0)
    study.optimize(_objective, n_trials=4)  # places 8-11: refine
    assert [sampler.phase(study, n).name for n in range(9, 13)] == ["refine"] * 4
    record_strategy(study, sampler.phases(study))
    section = strategy_section(study, study.trials)
    assert section is not None
    assert [sum(p["trials"].values()) for p in section["phases"]] == [4, 4, 4]


def test_a_phase_s_best_is_of_its_trials_that_met_the_constraints() -> None:
    """The explore phase's best accuracy was an infeasible trial's: no selection could give it."""
    study = optuna.create_study(direction="maximize")
    record_strategy(study, staged_phases(6))  # explore: trials 0 and 1
    for value, violation in ((0.99, 3.0), (0.8, 0.0), (0.7, 0.0)):
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, value=value,
            system_attrs={"constraints": [violation]}))
    section = strategy_section(study, study.trials)
    assert section is not None
    assert [(p["phase"], p["best"]) for p in section["phases"]] == [
        ("explore", [0.8]), ("model", [0.7]), ("refine", [None])
    ]


def test_verification_is_not_drawn_again_for_the_same_candidates() -> None:
    """A run again after the budget is spent redrew the verification: the intervals and the
    selection moved (a latency CI from 0.44-0.54 to 0.40-0.57) with nothing new to judge."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    record_strategy(study, staged_phases(6))
    study.optimize(_objective, n_trials=6)
    calls: list[int] = []

    def factory(folds: int, repeat: int) -> Any:
        calls.append(repeat)
        rng = __import__("numpy").random.default_rng(len(calls))
        return lambda t: _objective(t) + rng.normal(0, 0.1)

    first = verify_top(study, factory, k=2, folds=3, repeats=3)
    assert len(calls) == 3
    assert verify_top(study, factory, k=2, folds=3, repeats=3) == first
    assert len(calls) == 3  # nothing drawn again
    study.optimize(_objective, n_trials=30)  # new trials: other candidates, verified anew
    if [c["number"] for c in first["candidates"]] != [
        t.number for t in top_candidates(study.trials, ["minimize"], 2)
    ]:
        verify_top(study, factory, k=2, folds=3, repeats=3)
        assert len(calls) == 6
    verify_top(study, factory, k=2, folds=4, repeats=3)  # other settings: verified anew
    assert len(calls) in (6, 9)


def test_verify_top_refuses_bad_arguments() -> None:
    study = optuna.create_study()
    with pytest.raises(ValueError, match="folds >= 2"):
        verify_top(study, lambda f, r: _objective, k=1, folds=1)


def _verified_study(means: dict[int, float]) -> optuna.Study:
    """Three trials at accuracy 0.9, 0.8, 0.7 and a verification of trials 0 and 1."""
    study = optuna.create_study(direction="maximize")
    for value in (0.9, 0.8, 0.7):
        study.add_trial(optuna.trial.create_trial(values=[value], params={}, distributions={}))
    candidates = [
        {"number": n, "params": {}, "values": [study.trials[n].value], "mean": [m],
         "std": [0.01], "ci95": [[m - 0.02, m + 0.02]], "evaluations": [[m]] * 3}
        for n, m in means.items()
    ]
    study.set_user_attr(_study.STRATEGY, {"name": "staged", "verification": {
        "k": len(means), "folds": 5, "repeats": 3, "candidates": candidates}})
    return study


def test_selection_after_verification_uses_the_verified_means() -> None:
    accuracy = [Objective(metric="accuracy", direction="maximize")]
    # The search's best (trial 0, 0.9) verifies at 0.78; trial 1 (0.8) at 0.85: trial 1 wins.
    study = _verified_study({0: 0.78, 1: 0.85})
    choice = select_in_study(study, accuracy, [], Selection())
    assert choice.selected.number == 1 and choice.selected.values == (0.85,)
    assert "staged verification re-evaluated (5 folds x 3 repeats)" in choice.notes[0]
    assert "accuracy 0.85 (95% CI 0.83-0.87)" in choice.notes[0]
    assert (choice.n_candidates, choice.n_feasible) == (3, 3)  # the study's, not the verified 2
    limited = select_in_study(study, accuracy, [parse_constraint("accuracy >= 0.75")], Selection())
    assert (limited.n_candidates, limited.n_feasible) == (3, 2)
    # No verified candidate meets the constraint: the other trials at their search values,
    # said so; a verified one is not taken back at its search value (trial 0: 0.9 in the
    # search, 0.78 verified, was selected for "accuracy >= 0.88")
    limit = [parse_constraint("accuracy >= 0.88")]
    with pytest.raises(NoFeasibleTrial, match="trial 1"):
        select_in_study(study, accuracy, limit, Selection())
    low = _verified_study({0: 0.6, 1: 0.65})
    choice = select_in_study(low, accuracy, [parse_constraint("accuracy >= 0.7")], Selection())
    assert choice.selected.number == 2  # unverified, 0.7 in the search
    assert "none of the 2 candidates the staged verification re-evaluated" in choice.notes[0]
    assert "the other trials at their search values" in choice.notes[0]
    # Without a verification the search's values decide.
    plain = optuna.create_study(direction="maximize")
    plain.add_trial(optuna.trial.create_trial(values=[0.5], params={}, distributions={}))
    assert select_in_study(plain, accuracy, [], Selection()).notes == ()


def test_verify_top_intervals_stay_within_the_values_the_metric_takes() -> None:
    """From 3 repeats, a balanced accuracy of 0.977 got "95% CI 0.9417-1.013" (the staged run's
    note): an interval past 1, which no model can reach."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(
        _study.OBJECTIVES, [{"metric": "balanced_accuracy", "direction": "maximize"}]
    )
    study.optimize(lambda t: t.suggest_float("x", 0.9, 1.0), n_trials=3)
    repeats = iter([1.0, 0.95, 0.999] * 3)

    def factory(folds: int, repeat: int):
        value = next(repeats)
        return lambda t: value

    result = verify_top(study, factory, k=1, folds=3, repeats=3, record=False)
    (low, high), = result["candidates"][0]["ci95"]
    assert high == 1.0 and low < result["candidates"][0]["mean"][0] < high


def test_a_verification_cut_short_keeps_the_candidates_it_verified() -> None:
    """Ctrl-C during the verification lost every candidate verified so far (each is `repeats`
    cross-validations with more folds: 5 candidates cost more than a 24-trial search), and the
    run again verified them all anew; the unfinished record is not a verification the selection
    reads."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    record_strategy(study, staged_phases(6))
    study.optimize(_objective, n_trials=6)
    evaluated: list[float] = []

    def factory(stop_after: int | None) -> Any:
        def make(folds: int, repeat: int) -> Any:
            def objective(t: Any) -> float:
                if stop_after is not None and len(evaluated) == stop_after:
                    raise KeyboardInterrupt
                value = _objective(t) + repeat / 100
                evaluated.append(t.params["x"])
                return value
            return objective
        return make

    with pytest.raises(KeyboardInterrupt):  # stopped in the third candidate
        verify_top(study, factory(7), k=3, folds=3, repeats=3)
    assert "verification" not in study.user_attrs[_study.STRATEGY]
    record_strategy(study, staged_phases(6))  # the run again writes its plan first
    evaluated.clear()
    result = verify_top(study, factory(None), k=3, folds=3, repeats=3)
    first_two = [c["params"]["x"] for c in result["candidates"][:2]]
    assert evaluated == [result["candidates"][2]["params"]["x"]] * 3  # only the third
    assert all(x not in evaluated for x in first_two)
    assert [len(c["evaluations"]) for c in result["candidates"]] == [3, 3, 3]
    assert study.user_attrs[_study.STRATEGY]["verification"] == result


def test_a_run_with_a_new_budget_keeps_the_candidates_verified_before() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    record_strategy(study, staged_phases(6))
    study.optimize(_objective, n_trials=6)
    first = verify_top(study, lambda f, r: _objective, k=2, folds=3, repeats=2)
    record_strategy(study, staged_phases(8))  # resumed with n_trials 8
    assert "verification" not in study.user_attrs[_study.STRATEGY]  # not the new budget's
    study.optimize(lambda t: 10.0 + _objective(t), n_trials=2)  # nothing better
    again = verify_top(study, lambda f, r: pytest.fail("verified again"), k=2, folds=3, repeats=2)
    assert again["candidates"] == first["candidates"]
