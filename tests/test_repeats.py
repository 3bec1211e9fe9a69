"""A configuration the sampler proposes again takes its completed trial's outcome: the same
search, nothing fitted twice (tuneops.repeats)."""

from __future__ import annotations

import json
import pickle
from types import SimpleNamespace

import optuna
import pytest
from conftest import tiny_spec
from optuna.trial import TrialState

import tuneops
from tuneops import _study, runner
from tuneops.contribution import worker_contributions
from tuneops.knowledge.warm_start import warm_start_section
from tuneops.objective import SpecObjective
from tuneops.repeats import Repeats
from tuneops.selection import infeasible_trials
from tuneops.storage import get_storage
from tuneops.strategy import strategy_summary

# knn on iris: 12 configurations of 3 neighbour counts x 2 weights x 2 metrics, so a
# 30-trial study proposes several of them again
_SMALL_KNN = {"n_neighbors": [3, 5, 7], "weights": ["uniform", "distance"], "p": [1, 2]}


def _spec(name: str, **changes) -> dict:
    changes = {"n_trials": 30, **changes}
    return tiny_spec(study=name, model={"family": "knn", "space": _SMALL_KNN}, **changes)


def _fits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The numbers of the trials that fit their configuration, from now on."""
    calls: list[int] = []
    run = SpecObjective._run

    def counting(self, family, params, trial):
        calls.append(trial.number)
        return run(self, family, params, trial)

    monkeypatch.setattr(SpecObjective, "_run", counting)
    return calls


def _trials(name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=get_storage(None)).get_trials()


@pytest.mark.parametrize("pruner", ["none", "auto", "wilcoxon"])
def test_a_repeated_configuration_takes_its_outcome_and_the_search_is_unchanged(
    workdir, monkeypatch, pruner
):
    fits = _fits(monkeypatch)
    with_repeats = tuneops.run(_spec("reused", pruner=pruner))
    fitted_with = list(fits)
    monkeypatch.setattr(Repeats, "earlier", lambda self, trial, alike=None: None)  # every trial fitted
    fits.clear()
    tuneops.run(_spec("refitted", pruner=pruner))
    fitted_without = list(fits)

    reused, refitted = _trials("reused"), _trials("refitted")
    # the same trials in the same states with the same values: the sampler and the pruner
    # saw what a new fit would have given them
    assert [(t.state, t.params, t.values) for t in reused] == [
        (t.state, t.params, t.values) for t in refitted
    ]
    repeats = [t for t in reused if _study.REPEAT_OF in t.user_attrs]
    assert len(repeats) >= 5
    by_number = {t.number: t for t in reused}
    for t in repeats:
        earlier = by_number[t.user_attrs[_study.REPEAT_OF]]
        assert earlier.number < t.number and earlier.params == t.params
        assert _study.REPEAT_OF not in earlier.user_attrs  # the first of its configuration
        if t.state == TrialState.COMPLETE:  # took a completed trial's outcome
            assert earlier.state == TrialState.COMPLETE
            assert t.user_attrs[_study.METRICS] == earlier.user_attrs[_study.METRICS]
        else:  # pruned on the replayed values of a completed or pruned trial
            assert t.state == TrialState.PRUNED
            assert earlier.state in (TrialState.COMPLETE, TrialState.PRUNED)
    if pruner == "auto":  # a pruned configuration's repeat pruned without a fit
        assert any(by_number[t.user_attrs[_study.REPEAT_OF]].state == TrialState.PRUNED for t in repeats)
        assert _study.FIDELITY not in t.user_attrs  # trained nothing, so spent no compute
    assert fitted_without == list(range(30))
    assert fitted_with == [t.number for t in reused if _study.REPEAT_OF not in t.user_attrs]
    results = json.loads(with_repeats.results_path.read_text())
    assert results["n_repeats"] == len(repeats)
    assert sum(1 for t in results["trials"] if "repeat_of" in t) == len(repeats)
    # the selection chose among distinct configurations: never a repeat
    assert _study.REPEAT_OF not in by_number[with_repeats.choice.selected.number].user_attrs
    assert all(
        _study.REPEAT_OF not in by_number[c.number].user_attrs for c in with_repeats.choice.front
    )


def test_a_multi_objective_repeat_takes_the_measured_latency_of_its_configuration(workdir):
    # a repeat is not timed again: the front cannot keep the luckiest of several timings of
    # one model, and the pruner replays the earlier trial's vectors
    result = tuneops.run(_spec("timed", objectives=["accuracy", "latency_p95_ms"], pruner="auto"))
    trials = {t.number: t for t in _trials("timed")}
    repeats = [t for t in trials.values() if _study.REPEAT_OF in t.user_attrs]
    assert repeats
    for t in repeats:
        earlier = trials[t.user_attrs[_study.REPEAT_OF]]
        if t.state == TrialState.COMPLETE:
            assert t.values == earlier.values
            assert t.user_attrs[_study.COST] == earlier.user_attrs[_study.COST]
    numbers = [c.number for c in result.choice.front]
    assert len({tuple(sorted(trials[n].params.items())) for n in numbers}) == len(numbers)


def test_the_run_says_which_trials_were_repeats(workdir, cli):
    (workdir / "spec.yaml").write_text(json.dumps(_spec("said", pruner="none")))  # JSON is YAML
    code, out, err = cli("run", "spec.yaml")
    assert code == 0, err
    text = " ".join((out + err).split())
    assert "configuration again: nothing fitted" in text
    assert (
        "repeats of an earlier trial's configuration (nothing fitted: its outcome taken, or "
        "pruned on its replayed values)"
    ) in text
    code, out, err = cli("show", "said", "--trials", "--wide")
    assert code == 0, err
    text = " ".join(out.split())
    for t in _trials("said"):  # the trial table says which trials were repeats, of which
        if _study.REPEAT_OF in t.user_attrs:
            assert f"repeat of trial {t.user_attrs[_study.REPEAT_OF]}:" in text
    assert text.count("repeat of trial") == sum(_study.REPEAT_OF in t.user_attrs for t in _trials("said"))


def test_a_space_the_sampler_has_exhausted_ends_the_run_early_and_says_so(workdir, cli, caplog):
    # 12 configurations and 200 trials: once every trial proposes one already completed, the
    # rest of the budget would only repeat them (and a compute budget would never be spent)
    spec = _spec("exhausted", pruner="none", n_trials=200)
    (workdir / "spec.yaml").write_text(json.dumps(spec))
    code, out, err = cli("run", "spec.yaml")
    assert code == 0, err
    trials = _trials("exhausted")
    assert len(trials) < 200
    last = [t for t in trials if t.state.is_finished()][-runner.MAX_REPEATS_IN_A_ROW :]
    assert all(_study.REPEAT_OF in t.user_attrs for t in last)
    distinct = {tuple(sorted(t.params.items())) for t in trials}
    text = " ".join((out + err + caplog.text).split())
    assert f"the last {runner.MAX_REPEATS_IN_A_ROW} finished trials all repeated" in text
    assert (
        f"(nothing fitted: {runner.MAX_REPEATS_IN_A_ROW} took a completed trial's outcome)" in text
    )
    assert f"({len(distinct)} distinct configurations tried: {len(distinct)} completed)" in text


def test_the_stop_on_repeats_says_which_were_pruned_and_counts_the_pruned_configurations(caplog):
    """With a pruner, repeats of pruned configurations (pruned again on the values they
    replayed) ended a run with "the last 20 finished trials all repeated configurations
    already completed (their outcomes reused) ... (6 distinct configurations completed)": 6 of
    the 20 were pruned, and 6 of the 12 configurations tried were pruned ones."""
    study = _study_with(
        [
            ({"k": 1}, TrialState.COMPLETE),
            ({"k": 2}, TrialState.PRUNED),
            ({"k": 3}, TrialState.PRUNED),
            ({"k": 3}, TrialState.COMPLETE),  # pruned once, then fitted in full: completed
            ({"k": 1}, TrialState.COMPLETE),
            ({"k": 2}, TrialState.PRUNED),
            ({"k": 1}, TrialState.PRUNED),  # a completed configuration pruned on its replay
        ],
        t4={_study.REPEAT_OF: 0},
        t5={_study.REPEAT_OF: 1},
        t6={_study.REPEAT_OF: 0},
    )
    caplog.set_level("WARNING", logger="tuneops")
    assert runner._exhausted(study.trials, 3)
    text = " ".join(caplog.text.split())
    assert (
        "the last 3 finished trials all repeated configurations tried before (nothing fitted: 1 "
        "took a completed trial's outcome, 2 were pruned on the values they replayed); the "
        "sampler proposes nothing new in this space (3 distinct configurations tried: 2 "
        "completed, 1 pruned)" in text
    ), text
    assert not runner._exhausted(study.trials, 4)  # trial 3 fitted its configuration


def test_a_compute_budget_ends_when_only_repeats_are_left(workdir):
    spec = _spec("compute", pruner="none", n_trials=None)
    spec["search"]["budget"] = {"fit_cpu_s": 1e6}  # never reached by 12 knn configurations
    tuneops.run(spec)
    trials = _trials("compute")
    assert sum(_study.REPEAT_OF in t.user_attrs for t in trials) >= runner.MAX_REPEATS_IN_A_ROW


def _study_with(trials: list[tuple[dict, TrialState]], **attrs_of: dict) -> optuna.Study:
    """A study of ``trials`` made by hand; ``attrs_of``: extra user attributes by trial number
    (``t1={...}``)."""
    study = optuna.create_study()
    dist = optuna.distributions.IntDistribution(1, 9)
    for number, (params, state) in enumerate(trials):
        extra = attrs_of.get(f"t{number}", {})
        trial = optuna.trial.create_trial(
            params=params,
            distributions={k: dist for k in params},
            value=1.0 if state == TrialState.COMPLETE else None,
            state=state,
            user_attrs={
                _study.METRICS: {"accuracy": 1.0},
                _study.METRICS_STD: {"accuracy": 0.0},
                _study.COST: {},
                **extra,
            },
        )
        study.add_trial(trial)
    return study


def _asking(study: optuna.Study, **params) -> SimpleNamespace:
    """A running trial of ``study`` that drew ``params`` (what Repeats reads of one)."""
    return SimpleNamespace(study=study, params=params, number=len(study.trials))


def test_a_repeat_is_found_past_a_trial_still_running_and_only_of_a_completed_one():
    study = _study_with(
        [
            ({"k": 1}, TrialState.COMPLETE),
            ({"k": 2}, TrialState.RUNNING),  # the settled prefix stops here
            ({"k": 3}, TrialState.COMPLETE),  # finished out of order
            ({"k": 4}, TrialState.PRUNED),  # with nothing to replay
            ({"k": 5}, TrialState.FAIL),
            ({"k": 6}, TrialState.PRUNED),
            ({"k": 6}, TrialState.COMPLETE),  # a completed one is taken before a pruned one
            ({"k": 7}, TrialState.PRUNED),
        ],
        # pruned trials' values as a multi-objective study records them
        t5={_study.INTERMEDIATE: {"1": [0.5]}},
        t7={_study.INTERMEDIATE: {"1": [0.5]}},
    )
    repeats = Repeats(["accuracy"])
    cases = [(1, 0), (3, 2), (2, None), (4, None), (5, None), (6, 6), (7, 7), (8, None)]
    for k, expected in cases:
        found = repeats.earlier(_asking(study, k=k))
        assert (found.number if found else None) == expected, k
    # a configuration that is not measured on every metric is evaluated again
    assert Repeats(["accuracy", "latency_p95_ms"]).earlier(_asking(study, k=1)) is None
    # a trial outside a study (a FixedTrial) has nothing to repeat
    assert repeats.earlier(optuna.trial.FixedTrial({"k": 1})) is None


def test_the_index_reads_only_trials_past_its_settled_prefix():
    study = _study_with([({"k": k % 9 + 1}, TrialState.COMPLETE) for k in range(40)])
    repeats = Repeats(["accuracy"])
    assert repeats.earlier(_asking(study, k=3)).number == 2
    index = repeats._index[study]
    assert index.upto == 40 and len(index.done) == 9  # the first of each configuration
    # a copy for another process starts empty and reads its own
    copy = pickle.loads(pickle.dumps(repeats))
    assert copy.metrics == ("accuracy",) and copy.earlier(_asking(study, k=4)).number == 3


def test_a_repeat_of_an_infeasible_trial_is_infeasible_too():
    done = ({"k": 1}, TrialState.COMPLETE)
    trials = _study_with([done, done], t1={_study.REPEAT_OF: 0}).get_trials()
    assert infeasible_trials(trials, ["accuracy"], ["accuracy >= 2"]) == {0, 1}
    assert infeasible_trials(trials, ["accuracy"], ["accuracy >= 0.5"]) == frozenset()


# -- a repeat found nothing: the sections that credit a finding leave it out -------------------
def _made(number, value, worker="w:1", **attrs):
    t = optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        values=[value],
        user_attrs={"worker": {"host": "w", "pid": int(worker[2:]), "id": worker}, **attrs},
    )
    t.number = number
    return t


def test_a_phase_that_proposed_an_earlier_phase_s_best_again_did_not_find_it():
    record = {"phases": [
        {"phase": "explore", "from_trial": 0, "to_trial": 2, "sampler": "random", "pruning": False},
        {"phase": "model", "from_trial": 2, "to_trial": 4, "sampler": "tpe", "pruning": True},
    ]}
    trials = [_made(0, 0.9), _made(1, 0.5), _made(2, 0.6), _made(3, 0.9, repeat_of=0)]
    phases = {p["phase"]: p for p in strategy_summary(record, ["maximize"], trials)["phases"]}
    assert phases["explore"]["best"] == [0.9]
    assert phases["model"]["best"] == [0.6]  # trial 3 took trial 0's outcome
    assert phases["model"]["trials"]["complete"] == 2  # still a trial of the phase


def test_a_worker_that_repeated_the_best_configuration_did_not_find_it():
    trials = [_made(0, 0.9, "w:1"), _made(1, 0.5, "w:2"), _made(2, 0.9, "w:2", repeat_of=0)]
    rows = {r["worker"]: r for r in worker_contributions(trials, ["maximize"])}
    assert rows["w:1"]["has_best"] and rows["w:1"]["best"] == 0.9
    assert not rows["w:2"]["has_best"] and rows["w:2"]["best"] == 0.5
    assert rows["w:2"]["complete"] == 2
    two = [_made(0, 0.9, "w:1"), _made(1, 0.9, "w:2", repeat_of=0)]
    for t, v in zip(two, ([0.9, 3.0], [0.9, 3.0]), strict=True):
        t.values = v
    rows = {r["worker"]: r for r in worker_contributions(two, ["maximize", "minimize"])}
    assert (rows["w:1"]["pareto"], rows["w:2"]["pareto"]) == (1, 0)
    assert rows["w:1"]["pareto_share"] == 1.0


def test_a_repeat_of_a_warm_start_trial_is_no_cold_find_and_ranks_nothing():
    study = optuna.create_study(direction="maximize")
    for t in (_made(0, 0.9, warm_start="params[0]"), _made(1, 0.8), _made(2, 0.9, repeat_of=0)):
        study.add_trial(t)
    section = warm_start_section(study, study.get_trials(deepcopy=False))
    assert section["best_cold_value"] == 0.8  # trial 2 took the warm trial's outcome
    assert section["n_ranked"] == 2 and section["best_rank"] == 1
    multi = optuna.create_study(directions=["maximize", "minimize"])
    for t, v in (
        (_made(0, 0.0, warm_start="params[0]"), [0.7, 5.0]),
        (_made(1, 0.0), [0.9, 1.0]),
        (_made(2, 0.0, repeat_of=1), [0.9, 1.0]),
    ):
        t.values = v
        multi.add_trial(t)
    section = warm_start_section(multi, multi.get_trials(deepcopy=False))
    assert section["best_rank"] == 2  # dominated by trial 1, counted once
    assert section["n_ranked"] == 2


def test_a_study_resumed_with_another_serving_path_times_its_repeats_again(workdir):
    # the earlier trials' latency is of the old path: a repeat under the new one is timed
    spec = _spec("paths", objectives=["accuracy", "latency_p50_ms"], pruner="none", n_trials=12)
    tuneops.run(spec)
    first = {t.number for t in _trials("paths")}
    tuneops.run({**spec, "serving": {"path": "numpy"}, "search": {**spec["search"], "n_trials": 30}})
    trials = {t.number: t for t in _trials("paths")}
    later = [t for n, t in trials.items() if n not in first]
    for t in later:
        of = t.user_attrs.get(_study.REPEAT_OF)
        if of is not None:  # only ever of a trial timed on the path of now
            assert trials[of].user_attrs[_study.COST]["serving"]["path"] == "numpy"
    old_configs = {tuple(sorted(trials[n].params.items())) for n in first}
    again = [t for t in later if tuple(sorted(t.params.items())) in old_configs]
    assert again  # 12 configurations: the second run proposes some of the first run's again
    assert any(_study.REPEAT_OF not in t.user_attrs for t in again)
    # ... and once timed on the new path, a configuration is a repeat of that trial: only the
    # first run's trial of it was looked at, and every later one was fitted again (a knn
    # configuration fitted 9 times in one 30-trial run)
    fitted = [tuple(sorted(t.params.items())) for t in later if _study.REPEAT_OF not in t.user_attrs]
    assert len(fitted) == len(set(fitted)), sorted(fitted)


def test_the_report_counts_pruned_trials_as_the_run_does(workdir):
    # repeats trained nothing: the report's pruning finding counted them (3 of 28) where the
    # run's pruning line did not (2 of 26)
    from tuneops.report import build_report

    result = tuneops.run(_spec("counted", pruner="auto", n_trials=40))
    savings = json.loads(result.results_path.read_text())["pruning"]
    study = optuna.load_study(study_name="counted", storage=get_storage(None))
    assert any(_study.REPEAT_OF in t.user_attrs for t in study.trials)
    texts = [f.text for f in build_report(study).findings if f.topic == "pruning"]
    assert texts and texts[0].startswith(f"{savings['n_pruned']} of {savings['n_trials']} ")


def test_a_forked_local_worker_leaves_the_stop_s_reason_to_the_run_s_own(caplog):
    """With search.n_workers 2 a run printed "stopping: the last 20 finished trials all
    repeated configurations ..." three times (each forked worker, then the run's own), and once
    while the other worker ran on and fitted new configurations: the run's own worker, which
    works after the forked ones on the same state, says it."""
    study = optuna.create_study(storage=get_storage(":memory:"))
    for i in range(4):
        study.enqueue_trial({"x": 0}, user_attrs={_study.REPEAT_OF: 0} if i else {})
    study.optimize(lambda t: t.suggest_int("x", 0, 9), n_trials=4)

    def never(trial: optuna.Trial) -> float:
        raise AssertionError("a trial was run")

    caplog.set_level("DEBUG", logger="tuneops")
    for forked in (True, False):
        caplog.clear()
        ran = runner.work(study, never, max_repeats_in_a_row=3, wait_for_others=not forked)
        said = [r.levelname for r in caplog.records if "stopping: the last 3" in r.getMessage()]
        assert ran == 0 and said == (["DEBUG"] if forked else ["WARNING"]), said


def test_deploying_a_repeat_of_the_champion_s_trial_registers_nothing(workdir):
    """`tuneops deploy STUDY --trial 11`, a repeat of trial 10, the champion: the same model
    (same configuration, study and data) was registered as a new version and promoted,
    restarting the probation window."""
    from tuneops.ops.registry import Registry, deploy

    tuneops.run(_spec("dep", pruner="none"))
    trials = _trials("dep")
    repeat = next(t for t in trials if t.state == TrialState.COMPLETE and _study.REPEAT_OF in t.user_attrs)
    earlier = repeat.user_attrs[_study.REPEAT_OF]
    first = deploy("dep", trial=earlier)
    assert first["promoted"] and first["source"]["trial"] == earlier
    again = deploy("dep", trial=repeat.number)
    assert again["already"] and again["version"] == first["version"]
    assert len(Registry.open("dep").versions()) == 1
