"""The ``auto`` rule per case, the switching sampler, and make_sampler's contract."""

from __future__ import annotations

import importlib.util
from collections import Counter
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from tuneops.errors import SpecError
from tuneops.families import get_family
from tuneops.samplers import (
    GP_LOCAL_SEARCH,
    GP_MAX_PARAMS,
    GP_TRIALS,
    STARTUP_TRIALS,
    AutoSampler,
    FamilyGuard,
    SpaceKind,
    SwitchingSampler,
    auto_plan,
    describe_space,
    family_distributions,
    make_sampler,
)

CONTINUOUS = {f"x{i}": FloatDistribution(0.0, 1.0) for i in range(6)}
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _stages(stages: list[Any]) -> list[tuple[int, str, dict[str, Any]]]:
    return [(s.start, s.name, dict(s.params)) for s in stages]


# -- the space -------------------------------------------------------------------------------------
def test_describe_space_kinds() -> None:
    assert describe_space(CONTINUOUS) == SpaceKind(6, "continuous", False)
    assert (
        describe_space({"n": IntDistribution(1, 9), "x": FloatDistribution(0, 1)}).kind == "integer"
    )
    assert describe_space({"x": FloatDistribution(0, 1, step=0.1)}).kind == "integer"
    assert describe_space({"c": CategoricalDistribution(["a", "b"])}).kind == "categorical"
    mixed = describe_space(
        {"c": CategoricalDistribution(["a", "b"]), "x": FloatDistribution(0, 1)}, conditional=True
    )
    assert (mixed.kind, mixed.conditional) == ("mixed", True)
    # A distribution with one value is not searched.
    assert describe_space({"fixed": CategoricalDistribution(["a"]), **CONTINUOUS}).n_params == 6


def test_family_distributions_name_parameters_as_the_objective_does() -> None:
    one = {"knn": get_family("knn").space("classification", None)}
    assert set(family_distributions(one)) == {"n_neighbors", "weights", "p"}
    two = {**one, "linear": get_family("linear").space("classification", None)}
    dists = family_distributions(two)
    assert set(dists) == {"family", "knn.n_neighbors", "knn.weights", "knn.p", "linear.C"}
    assert describe_space(dists, conditional=True) == SpaceKind(5, "mixed", True)


# -- the rule per case -----------------------------------------------------------------------------
def test_one_objective_without_numbers_and_categoricals_together_is_multivariate_tpe() -> None:
    # measured on problems the rule was not chosen on (Branin, Hartmann6, Rosenbrock-10,
    # Ackley-10, an SVM on pmlb:vehicle, 6 integers, 6 categoricals): a GP stage made auto's
    # sampler CPU 4-25x default TPE's and found no more (docs/benchmarks.md)
    integer = describe_space({"n": IntDistribution(1, 50), "x": FloatDistribution(0, 1)})
    categorical = describe_space({"c": CategoricalDistribution(["a", "b"])})
    for space in (describe_space(CONTINUOUS), integer, categorical):
        for budget in (GP_TRIALS, 200, 1000, None):
            stages, why = auto_plan(1, space, budget, gp=True)
            assert _stages(stages) == [(0, "tpe", {"multivariate": True})]
            assert f"one objective, {space.kind} space" in why
    # the GP share applies where GP leads, not here
    stages, _ = auto_plan(1, describe_space(CONTINUOUS), 400, gp=True, gp_trials=150)
    assert _stages(stages) == [(0, "tpe", {"multivariate": True})]


def test_one_objective_with_categoricals_and_numbers_is_a_cheaper_gp_stage_then_tpe() -> None:
    # GP found more than TPE there (a mixed problem, docs/benchmarks.md); its acquisition
    # searched from GP_LOCAL_SEARCH points found as much as from Optuna's 10 at 0.4 of the CPU
    mixed = describe_space({"c": CategoricalDistribution(["a", "b"]), "x": FloatDistribution(0, 1)})
    gp = {"n_local_search": GP_LOCAL_SEARCH}
    stages, _ = auto_plan(1, mixed, 200, gp=True)
    assert _stages(stages) == [(0, "gp", gp), (GP_TRIALS, "tpe", {"multivariate": True})]
    assert _stages(auto_plan(1, mixed, GP_TRIALS, gp=True)[0]) == [(0, "gp", gp)]
    # two objectives on floats keep Optuna's own acquisition search (the fewer points were
    # not measured there)
    assert auto_plan(2, describe_space(CONTINUOUS), 200, gp=True)[0][0].params == {}


def test_gp_share_is_a_parameter() -> None:
    stages, _ = auto_plan(2, describe_space(CONTINUOUS), 400, gp=True, gp_trials=150)
    assert [s.start for s in stages] == [0, 150]
    assert _stages(auto_plan(2, describe_space(CONTINUOUS), 400, gp=True, gp_trials=0)[0]) == [
        (0, "tpe", {"multivariate": False})
    ]
    sampler = make_sampler(
        "auto", {"gp_trials": 90}, seed=0, n_objectives=2, space=CONTINUOUS, n_trials=200
    )
    assert isinstance(sampler, AutoSampler)
    described = sampler.describe()
    assert described is not None
    assert [s["from_trial"] for s in described["stages"]] == ([0, 90] if HAS_TORCH else [0])
    with pytest.raises(SpecError, match="gp_trials: expected a whole number"):
        make_sampler("auto", {"gp_trials": -1}, seed=0)


def test_time_only_budget_switches_too() -> None:
    stages, _ = auto_plan(2, describe_space(CONTINUOUS), None, gp=True)
    assert [s.start for s in stages] == [0, GP_TRIALS]


def test_one_objective_conditional_is_grouped_tpe() -> None:
    stages, why = auto_plan(1, SpaceKind(8, "mixed", True), 200, gp=True)
    assert _stages(stages) == [(0, "tpe", {"multivariate": True, "group": True})]
    assert "conditional" in why


def test_two_objectives_continuous_is_gp_then_independent_tpe() -> None:
    stages, _ = auto_plan(2, describe_space(CONTINUOUS), 400, gp=True)
    assert _stages(stages) == [(0, "gp", {}), (GP_TRIALS, "tpe", {"multivariate": False})]


def test_three_or_more_objectives_are_independent_tpe_even_with_gp() -> None:
    # measured on DTLZ2: a GP stage cost 7x TPE's CPU and found less (docs/benchmarks.md)
    for n_objectives in (3, 4):
        for budget in (20, 200, None):
            stages, why = auto_plan(n_objectives, describe_space(CONTINUOUS), budget, gp=True)
            assert _stages(stages) == [(0, "tpe", {"multivariate": False})]
            assert f"{n_objectives} objectives" in why
    integer = describe_space({"n": IntDistribution(1, 50), "x": FloatDistribution(0, 1)})
    assert _stages(auto_plan(3, integer, 200, gp=True)[0]) == [(0, "tpe", {"multivariate": False})]


def test_several_objectives_on_integer_or_mixed_spaces_are_independent_tpe() -> None:
    # measured on a real spec (hist_gradient_boosting, accuracy vs latency): a GP stage cost
    # 8x TPE's sampler CPU and found a worse front (docs/benchmarks.md)
    integer = describe_space({"n": IntDistribution(1, 50), "x": FloatDistribution(0, 1)})
    mixed = describe_space({"c": CategoricalDistribution(["a", "b"]), "x": FloatDistribution(0, 1)})
    categorical = describe_space({"c": CategoricalDistribution(["a", "b"])})
    for space in (integer, mixed, categorical):
        stages, why = auto_plan(2, space, 200, gp=True)
        assert _stages(stages) == [(0, "tpe", {"multivariate": False})]
        assert f"{space.kind} space, 2 objectives" in why
    # continuous stays GP then TPE
    assert [s.name for s in auto_plan(2, describe_space(CONTINUOUS), 200, gp=True)[0]] == [
        "gp",
        "tpe",
    ]


def test_three_objectives_conditional_is_still_grouped_tpe() -> None:
    stages, _ = auto_plan(3, SpaceKind(8, "mixed", True), 200, gp=True)
    assert _stages(stages) == [(0, "tpe", {"multivariate": True, "group": True})]


def test_auto_sampler_with_three_objectives_builds_independent_tpe() -> None:
    auto = make_sampler("auto", seed=0, n_objectives=3, space=CONTINUOUS, n_trials=200)
    assert isinstance(auto, AutoSampler)
    described = auto.describe()
    assert described is not None
    assert described["stages"] == [
        {"from_trial": 0, "sampler": "tpe", "params": {"multivariate": False}}
    ]
    study = optuna.create_study(directions=["minimize"] * 3, sampler=auto)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1),) * 3, n_trials=12)
    assert len(study.trials) == 12


def test_many_parameters_or_no_torch_is_tpe() -> None:
    wide = SpaceKind(GP_MAX_PARAMS + 1, "continuous", False)
    assert _stages(auto_plan(2, wide, 100, gp=True)[0]) == [(0, "tpe", {"multivariate": False})]
    stages, why = auto_plan(2, describe_space(CONTINUOUS), 100, gp=False)
    assert _stages(stages) == [(0, "tpe", {"multivariate": False})]
    assert "PyTorch" in why


def test_make_sampler_auto_decides_at_construction_with_a_known_space() -> None:
    sampler = make_sampler("auto", seed=0, n_objectives=2, space=CONTINUOUS, n_trials=400)
    assert isinstance(sampler, AutoSampler)
    described = sampler.describe()
    assert described is not None
    assert [s["sampler"] for s in described["stages"]] == (["gp", "tpe"] if HAS_TORCH else ["tpe"])
    assert described["space"] == {"n_params": 6, "kind": "continuous", "conditional": False}


def test_make_sampler_keeps_the_old_signature() -> None:
    assert isinstance(make_sampler("tpe", seed=0), optuna.samplers.TPESampler)
    assert isinstance(
        make_sampler("tpe", {"n_startup_trials": 5}, seed=0, conditional=True),
        optuna.samplers.TPESampler,
    )
    assert isinstance(make_sampler("random", None, seed=1), optuna.samplers.RandomSampler)
    # The old call for a conditional study: grouped TPE once the study says its objectives.
    auto = make_sampler("auto", None, seed=0, conditional=True)
    assert isinstance(auto, AutoSampler)
    study = optuna.create_study(sampler=auto)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    described = auto.describe()
    assert described is not None and described["stages"][0]["params"]["group"] is True


def test_make_sampler_errors_name_the_field() -> None:
    with pytest.raises(SpecError, match="search.sampler"):
        make_sampler("tpee", seed=0)
    with pytest.raises(SpecError, match="search.sampler: random does not accept"):
        make_sampler("random", {"bogus": 1}, seed=0)


# -- tune(): the space is unknown until trials ran -------------------------------------------------
def _continuous(trial: optuna.Trial) -> float:
    return (trial.suggest_float("x", -1, 1) - 0.3) ** 2 + trial.suggest_float("y", -1, 1) ** 2


def _conditional(trial: optuna.Trial) -> float:
    family = trial.suggest_categorical("family", ["a", "b"])
    if family == "a":
        return trial.suggest_float("a.x", 0, 1)
    return trial.suggest_int("b.n", 1, 10) / 10


def _two(trial: optuna.Trial) -> tuple[float, float]:
    return trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)


def test_unknown_space_is_judged_after_the_startup_trials() -> None:
    auto = AutoSampler(seed=0, gp=False)
    study = optuna.create_study(sampler=auto)
    study.optimize(_continuous, n_trials=STARTUP_TRIALS - 1)
    assert auto.describe() is None  # still random
    study.optimize(_continuous, n_trials=3)
    described = auto.describe()
    assert described is not None
    assert described["space"] == {"n_params": 2, "kind": "continuous", "conditional": False}
    assert described["stages"] == [
        {"from_trial": 0, "sampler": "tpe", "params": {"multivariate": True}}
    ]


def test_unknown_conditional_space_is_grouped_tpe() -> None:
    auto = AutoSampler(seed=0, gp=True)  # gp allowed: the conditional space still says TPE
    study = optuna.create_study(sampler=auto)
    study.optimize(_conditional, n_trials=STARTUP_TRIALS + 2)
    described = auto.describe()
    assert described is not None and described["space"]["conditional"] is True
    assert described["stages"][0]["params"] == {"multivariate": True, "group": True}


def test_unknown_space_in_two_objectives_plans_gp_then_tpe() -> None:
    auto = AutoSampler(seed=0, gp=True, n_trials=500)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=auto)
    # The startup trials run here (random), then one queued trial with fixed parameters, which
    # makes the choice without sampling: the plan is what is checked (GP needs PyTorch).
    study.optimize(_two, n_trials=STARTUP_TRIALS)
    study.enqueue_trial({"x": 0.5, "y": 0.5})
    study.optimize(_two, n_trials=1)
    described = auto.describe()
    assert described is not None
    assert [(s["from_trial"], s["sampler"]) for s in described["stages"]] == [
        (0, "gp"),
        (GP_TRIALS, "tpe"),
    ]


@pytest.mark.skipif(not HAS_TORCH, reason="GPSampler needs PyTorch")
def test_auto_runs_gp_with_torch() -> None:
    auto = make_sampler(
        "auto",
        seed=0,
        n_objectives=2,
        space={"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)},
        n_trials=15,
    )
    assert isinstance(auto, AutoSampler)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=auto)
    study.optimize(_two, n_trials=15)
    described = auto.describe()
    assert described is not None and [s["sampler"] for s in described["stages"]] == ["gp"]
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 15


@pytest.mark.skipif(not HAS_TORCH, reason="GPSampler needs PyTorch")
def test_auto_on_one_objective_with_categoricals_runs_its_cheaper_gp() -> None:
    space = {"c": CategoricalDistribution(["a", "b", "c"]), "x": FloatDistribution(0, 1)}
    auto = make_sampler("auto", seed=0, n_objectives=1, space=space, n_trials=14)
    assert isinstance(auto, AutoSampler)
    study = optuna.create_study(sampler=auto)
    study.optimize(
        lambda t: t.suggest_float("x", 0, 1) + (t.suggest_categorical("c", ["a", "b", "c"]) == "b"),
        n_trials=14,
    )
    described = auto.describe()
    assert described is not None
    assert described["stages"] == [
        {"from_trial": 0, "sampler": "gp", "params": {"n_local_search": GP_LOCAL_SEARCH}}
    ]
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 14


# -- the switching sampler -------------------------------------------------------------------------
class _Recording(optuna.samplers.RandomSampler):
    """A random sampler that notes the trials it was asked for."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        self.numbers: set[int] = set()

    def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
        self.numbers.add(trial.number)
        return super().sample_independent(study, trial, name, distribution)


def test_switching_sampler_switches_at_the_stage_start() -> None:
    first, second = _Recording(0), _Recording(1)
    study = optuna.create_study(sampler=SwitchingSampler([(0, first), (7, second)]))
    study.optimize(_continuous, n_trials=12)
    assert first.numbers == set(range(7))
    assert second.numbers == set(range(7, 12))


def test_switching_sampler_is_deterministic_with_a_seed() -> None:
    def params(seed: int) -> list[dict[str, Any]]:
        sampler = SwitchingSampler(
            [
                (0, optuna.samplers.RandomSampler(seed=seed)),
                (5, optuna.samplers.TPESampler(seed=seed, n_startup_trials=0)),
            ]
        )
        study = optuna.create_study(sampler=sampler)
        study.optimize(_continuous, n_trials=12)
        return [t.params for t in study.trials]

    assert params(3) == params(3)
    assert params(3) != params(4)


def test_switching_sampler_hands_a_resumed_study_to_the_right_stage() -> None:
    storage = optuna.storages.InMemoryStorage()  # shared by both "processes", as a database is
    first = _Recording(0)
    study = optuna.create_study(
        study_name="s", storage=storage, sampler=SwitchingSampler([(0, first), (6, _Recording(1))])
    )
    study.optimize(_continuous, n_trials=4)
    again_first, again_second = _Recording(0), _Recording(1)
    resumed = optuna.load_study(
        study_name="s",
        storage=storage,
        sampler=SwitchingSampler([(0, again_first), (6, again_second)]),
    )
    resumed.optimize(_continuous, n_trials=4)
    assert again_first.numbers == {4, 5} and again_second.numbers == {6, 7}


def test_switching_sampler_rejects_bad_stages() -> None:
    with pytest.raises(ValueError, match="from 0"):
        SwitchingSampler([(3, optuna.samplers.RandomSampler())])
    with pytest.raises(ValueError, match="increasing"):
        SwitchingSampler(
            [
                (0, optuna.samplers.RandomSampler()),
                (9, optuna.samplers.RandomSampler()),
                (4, optuna.samplers.RandomSampler()),
            ]
        )


# -- a family whose trials only fail --------------------------------------------------------------
def _broken_family(trial: optuna.Trial) -> float:
    family = trial.suggest_categorical("family", ["broken", "fine", "other"])
    x = trial.suggest_float(f"{family}.x", 0.0, 1.0)
    if family == "broken":
        raise ValueError("cannot fit broken")
    return x if family == "fine" else x / 2


def _family_counts(study: optuna.Study) -> Counter:
    return Counter((t.params["family"], t.state) for t in study.trials)


@pytest.mark.parametrize("group", [False, True], ids=["independent", "grouped multivariate"])
def test_a_family_whose_trials_only_fail_is_proposed_no_more(group, caplog) -> None:
    def tpe() -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=0, multivariate=group, group=group, n_startup_trials=5)

    plain = optuna.create_study(direction="maximize", sampler=tpe())
    plain.optimize(_broken_family, n_trials=40, catch=(ValueError,))
    # what the guard is for: plain TPE learns nothing from failures and keeps proposing it
    assert _family_counts(plain)[("broken", TrialState.FAIL)] > 10

    guarded = optuna.create_study(direction="maximize", sampler=FamilyGuard(tpe(), ["broken", "fine", "other"], seed=0, limit=3))
    with caplog.at_level("WARNING", logger="tuneops"):
        guarded.optimize(_broken_family, n_trials=40, catch=(ValueError,))
    counts = _family_counts(guarded)
    assert counts[("broken", TrialState.FAIL)] == 3
    assert counts[("fine", TrialState.COMPLETE)] + counts[("other", TrialState.COMPLETE)] == 37
    told = [r.getMessage() for r in caplog.records if "no more trials of it" in r.getMessage()]
    assert len(told) == 1 and "'broken'" in told[0]
    assert guarded.best_value > plain.best_value - 0.05
    # another worker of the same run (a forked copy of the sampler) excludes the family without
    # saying so again: one warning per run, not one per worker
    import copy

    caplog.clear()
    forked = copy.deepcopy(guarded.sampler)
    forked._told.clear()
    with caplog.at_level("WARNING", logger="tuneops"):
        assert forked.excluded(guarded) == {"broken"}
    assert not [r for r in caplog.records if "no more trials of it" in r.getMessage()]
    # a later run of the study (a new sampler) says it again: the user is told on resuming
    resumed = FamilyGuard(tpe(), ["broken", "fine", "other"], seed=1, limit=3)
    with caplog.at_level("WARNING", logger="tuneops"):
        assert resumed.excluded(guarded) == {"broken"}
    assert len([r for r in caplog.records if "no more trials of it" in r.getMessage()]) == 1


def test_a_family_that_completed_once_and_a_study_that_only_fails_are_not_excluded() -> None:
    def fails_early(trial: optuna.Trial) -> float:
        family = trial.suggest_categorical("family", ["broken", "fine"])
        if family == "broken" and trial.number > 0:
            raise ValueError("cannot fit broken")
        return 1.0

    study = optuna.create_study(sampler=FamilyGuard(optuna.samplers.RandomSampler(seed=1), ["broken", "fine"], limit=2))
    study.enqueue_trial({"family": "broken"})  # completes: the family works on some configuration
    study.optimize(fails_early, n_trials=30, catch=(ValueError,))
    assert _family_counts(study)[("broken", TrialState.FAIL)] > 2
    assert study.sampler.excluded(study) == set()

    def always_fails(trial: optuna.Trial) -> float:
        trial.suggest_categorical("family", ["a", "b"])
        raise ValueError("bad data")

    failing = optuna.create_study(sampler=FamilyGuard(optuna.samplers.RandomSampler(seed=0), ["a", "b"], limit=2))
    failing.optimize(always_fails, n_trials=12, catch=(ValueError,))
    # every family fails: none is excluded (the runner's stop says why instead)
    assert failing.sampler.excluded(failing) == set()
    assert {t.params["family"] for t in failing.trials} == {"a", "b"}


# -- constraints changed between runs ----------------------------------------------------------
def _constrained_trial(x: float, records: dict[str, float], metrics: dict[str, float]) -> Any:
    return optuna.trial.create_trial(
        params={"x": x}, distributions={"x": FloatDistribution(0, 5)}, value=x,
        user_attrs={"metrics": metrics}, constraints=records,
    )


def test_the_sampler_sees_earlier_trials_judged_by_the_constraints_of_now() -> None:
    """A study run again with other constraints kept its earlier trials' records of the old
    ones: TPE learnt feasibility from them (a trial at 1.5 broke 'value <= 1' and went on
    breaking it after the constraint became 'value <= 2'), and GPSampler refused the study
    outright ("The constraint names must be the same for all trials")."""
    import functools
    import inspect

    from optuna.samplers._gp.sampler import _get_constraint_vals_and_feasibility as stock_gp

    from tuneops.samplers import CurrentConstraints
    from tuneops.selection import constraint_record
    from tuneops.spec import parse_constraint

    study = optuna.create_study()
    study.add_trial(_constrained_trial(0.5, {"value <= 1": -0.5}, {}))
    study.add_trial(_constrained_trial(1.5, {"value <= 1": 0.5}, {}))
    study.add_trial(_constrained_trial(3.0, {"value <= 1": 2.0, "size <= 9": -1.0}, {"size": 8}))
    study.add_trial(_constrained_trial(2.5, {"value <= 2": 0.5}, {}))  # this run's
    stock = study.get_trials(states=(TrialState.COMPLETE,))

    def _get_constraint_vals_and_feasibility(trials: list[Any]) -> Any:
        # GPSampler's own reading of the records: (study, trials) in Optuna 5.0, (trials) later
        if len(inspect.signature(stock_gp).parameters) == 2:
            return stock_gp(study, trials)
        return stock_gp(trials)

    # 5.1: "The constraint names must be the same ..."; 5.0: "The number of constraints ..."
    with pytest.raises(ValueError, match="must be the same for all trials"):
        _get_constraint_vals_and_feasibility(stock)

    now = [parse_constraint("value <= 2", builtin_only=False)]
    seen: list[list[Any]] = []

    class Spy(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, distribution):  # type: ignore[no-untyped-def]
            seen.append(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            return super().sample_independent(study, trial, name, distribution)

    judge = functools.partial(constraint_record, metric_names=["value"], constraints=now)
    study.sampler = CurrentConstraints(Spy(seed=0), ["value <= 2"], judge)
    study.optimize(lambda t: t.suggest_float("x", 0, 5), n_trials=1)
    assert [t.constraints for t in seen[0]] == [
        {"value <= 2": -1.5}, {"value <= 2": -0.5}, {"value <= 2": 1.0}, {"value <= 2": 0.5}
    ]
    _, feasible = _get_constraint_vals_and_feasibility(seen[0])  # GP takes them
    assert feasible.tolist() == [True, True, False, False]
    # the study's own records are untouched (a finished trial's cannot change)
    assert study.trials[1].constraints == {"value <= 1": 0.5}

    # a trial that did not measure a constraint's metric cannot be judged: left out
    seen.clear()
    size = [parse_constraint("size <= 5", builtin_only=False)]
    judge = functools.partial(constraint_record, metric_names=["value"], constraints=size)
    study.sampler = CurrentConstraints(Spy(seed=0), ["size <= 5"], judge)
    study.optimize(lambda t: t.suggest_float("x", 0, 5), n_trials=1)
    assert [(t.number, t.constraints) for t in seen[0]] == [(2, {"size <= 5": 3.0})]


def test_a_repeat_is_judged_by_the_record_it_took_under_the_constraints_of_now() -> None:
    """A study of repeats (tuneops.repeats: a trial that took an earlier trial's outcome) run
    again with a new constraint: each repeat was judged as having measured nothing, left out
    of the sampler's view, and the run said "14 of them did not measure a constraint's
    metric" of a knn study whose every trial had measured it."""
    import functools

    from tuneops._study import REPEAT_OF
    from tuneops.samplers import CurrentConstraints
    from tuneops.selection import constraint_record
    from tuneops.spec import parse_constraint

    study = optuna.create_study()
    study.add_trial(_constrained_trial(0.5, {}, {"value": 0.5}))
    repeat = _constrained_trial(0.5, {}, {"value": 0.5})
    repeat.set_user_attr(REPEAT_OF, 0)
    study.add_trial(repeat)
    now = [parse_constraint("value <= 0.4", builtin_only=False)]
    judge = functools.partial(constraint_record, metric_names=["value"], constraints=now)
    assert judge(study.trials[1]) == judge(study.trials[0]) == {"value <= 0.4": pytest.approx(0.1)}
    seen: list[list[Any]] = []

    class Spy(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, distribution):  # type: ignore[no-untyped-def]
            seen.append(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            return super().sample_independent(study, trial, name, distribution)

    study.sampler = CurrentConstraints(Spy(seed=0), ["value <= 0.4"], judge)
    study.optimize(lambda t: t.suggest_float("x", 0, 5), n_trials=1)
    assert [t.number for t in seen[0]] == [0, 1]
    assert seen[0][1].constraints == {"value <= 0.4": pytest.approx(0.1)}


def test_a_study_whose_records_hold_is_handed_to_the_sampler_as_it_is() -> None:
    from tuneops.samplers import CurrentConstraints

    seen: list[Any] = []

    class Spy(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, distribution):  # type: ignore[no-untyped-def]
            seen.append(study)
            return super().sample_independent(study, trial, name, distribution)

    study = optuna.create_study()
    study.add_trial(_constrained_trial(0.5, {"value <= 1": -0.5}, {}))
    study.sampler = CurrentConstraints(Spy(seed=0), ["value <= 1"], lambda t: {"no": 1.0})
    study.optimize(lambda t: t.suggest_float("x", 0, 5), n_trials=2)
    assert seen == [study, study] and study.sampler.judged == {}


def test_gp_by_name_without_pytorch_is_refused_before_any_trial(monkeypatch) -> None:
    """search.sampler: gp on a machine without PyTorch ran every trial into "No module named
    'torch'" (20 failed trials in a row) instead of saying what to install."""
    from tuneops import samplers

    monkeypatch.setattr(samplers, "gp_available", lambda: False)
    with pytest.raises(SpecError, match=r"search\.sampler: .* received gp, which needs PyTorch, "
                       r"not installed; install it \(pip install torch\)"):
        make_sampler("gp", seed=0)
    assert type(make_sampler("auto", seed=0, n_objectives=1)).__name__ == "AutoSampler"
