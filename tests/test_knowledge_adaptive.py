"""The adaptive warm start: proposals follow the past tasks that agree with the new one."""

from __future__ import annotations

import pytest
from conftest import tiny_spec

from tuneops.families import get_family
from tuneops.knowledge.adaptive import PLAN_ATTR, plan_family, propose
from tuneops.knowledge.base import Entry, KnowledgeBase
from tuneops.knowledge.metafeatures import FEATURES
from tuneops.knowledge.portfolio import Neighbour

SPACE = get_family("knn").space("classification")
W = {"n_neighbors": 1, "weights": "uniform", "p": 1}
X = {"n_neighbors": 5, "weights": "distance", "p": 2}
Y = {"n_neighbors": 15, "weights": "uniform", "p": 2}
Z = {"n_neighbors": 40, "weights": "distance", "p": 1}


def _entry(name: str, scores: dict[str, float], meta: float = 0.5) -> Entry:
    configs = sorted(((c, scores[k]) for k, c in (("W", W), ("X", X), ("Y", Y), ("Z", Z))), key=lambda c: -c[1])
    return Entry(name, "classification", "knn", "accuracy", "maximize", {f: meta for f in FEATURES}, tuple(configs))


# Two kinds of past task: "a" (the nearer) ranks X > Y > Z > W, "b" ranks the other way round.
A = _entry("a", {"X": 0.90, "Y": 0.80, "Z": 0.70, "W": 0.60})
B = _entry("b", {"W": 0.90, "Z": 0.85, "Y": 0.70, "X": 0.60}, meta=0.6)
PLAN = plan_family([Neighbour(A, 0.1), Neighbour(B, 0.2)], SPACE)


def _next(observed):
    return PLAN["candidates"][propose(PLAN, SPACE, observed)]


def test_first_proposals_follow_the_nearness_weighted_consensus():
    assert PLAN["sources"][0].startswith("kb:a#1") and len(PLAN["candidates"]) == 4
    assert _next([]) == X
    assert _next([(X, 0.9)]) == Y  # one result orders nothing yet: the consensus' next


def test_results_that_contradict_the_nearest_task_switch_to_the_other():
    # The new task ranks Y above X, as "b" does: the next proposal is b's best, not the consensus' next (Z).
    assert _next([(X, 0.60), (Y, 0.70)]) == W
    # The same configurations ranked as "a" ranks them: a keeps its weight and Z (a's next) comes next.
    assert _next([(X, 0.90), (Y, 0.80)]) == Z


def test_nothing_is_proposed_twice_and_minimising_flips_the_order():
    seen = [(c, 0.5 + i / 10) for i, c in enumerate(PLAN["candidates"])]
    assert propose(PLAN, SPACE, seen) is None
    # errors instead of accuracies: the lower value is the better one
    assert PLAN["candidates"][propose(PLAN, SPACE, [(X, 0.40), (Y, 0.30)], maximize=False)] == W


def test_a_candidate_run_by_a_trial_that_set_more_parameters_counts_as_tried():
    """The spec searched a parameter the base lacks (the sampler chose it): counted as a
    difference of 1, the candidate never looked tried, and 5 of 8 warm trials ran it again."""
    from tuneops.space import Param

    space = {**SPACE, "leaf_size": Param(name="leaf_size", kind="int", low=10, high=50)}
    first = PLAN["candidates"][propose(PLAN, space, [])]
    ran = {**first, "leaf_size": 30}  # the trial that ran it, with the extra parameter
    assert PLAN["candidates"][propose(PLAN, space, [], tried=[ran])] != first


def test_a_pruned_or_failed_warm_trial_is_not_proposed_again(workdir):
    """A pruned warm trial was neither a result nor tried: proposed four times in a row."""
    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from tuneops.knowledge.adaptive import _trials_of

    study = optuna.create_study()
    dists = {"n_neighbors": IntDistribution(1, 50), "weights": CategoricalDistribution(
        ["uniform", "distance"]), "p": IntDistribution(1, 2)}
    for state, params in ((TrialState.PRUNED, X), (TrialState.FAIL, Y), (TrialState.COMPLETE, Z)):
        study.add_trial(create_trial(state=state, params=params, distributions=dists,
                                     value=0.8 if state == TrialState.COMPLETE else None))
    observed, tried = _trials_of(study, "knn", ["knn"], None, exclude=-1)
    assert observed == [(Z, 0.8)] and tried == [X, Y]


def test_warm_start_trials_are_counted_once_by_where_they_came_from():
    """An adaptive pick of a portfolio candidate was counted twice ("8 portfolio, 5 adaptive,
    -5 given"); a fixed list from the knowledge base read as "given"."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from tuneops.knowledge.warm_start import TAG, warm_start_section

    study = optuna.create_study(direction="maximize")
    for i, tag in enumerate([
        "kb:portfolio#1 (robust default; from pmlb:a#1)",
        "kb:portfolio#1 (robust default; from pmlb:a#1), adaptive after 2 result(s)",
        "kb:pmlb:a#2 (distance 0.1)",
        "params[0]",
    ]):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5 + i / 10,
                                     user_attrs={TAG: tag}))
    section = warm_start_section(study, study.get_trials(deepcopy=False))
    counts = (section["n_portfolio"], section["n_adaptive"], section["n_kb"])
    assert counts == (1, 1, 1)
    assert "4 trials (1 portfolio, 1 adaptive, 1 from the knowledge base, 1 given)" in (
        section["summary"]
    )


def test_an_adaptive_warm_start_tags_its_trials_counts_them_and_resumes(workdir):
    from tuneops.tuning import run

    path = workdir / "kb.json"
    KnowledgeBase((A, B)).save(str(path))
    auto = {"sources": [str(path)], "strategy": "adaptive", "max_trials": 3, "max_share": 1.0}
    spec = tiny_spec(n_trials=5, warm_start={"auto": auto})
    result = run(spec)
    trials = sorted(result.study.trials, key=lambda t: t.number)
    assert len(trials) == 5  # the warm-start trials are part of n_trials
    tags = [t.user_attrs.get("warm_start") for t in trials]
    # the zero-shot portfolio of the family: first the configuration best on average over a and b
    assert tags[0].startswith("kb:portfolio#1 (robust default") and trials[0].params == Z
    assert all(tag is not None and tag.startswith("kb:portfolio#") for tag in tags[:3])
    assert tags[3:] == [None, None]
    assert all(t.params in PLAN["candidates"] for t in trials[:3])
    assert len({tuple(sorted(t.params.items())) for t in trials[:3]}) == 3
    assert result.study._storage.get_study_system_attrs(result.study._study_id)[PLAN_ATTR]["size"] == 3
    assert result.results["warm_start"]["n_enqueued"] == 3
    again = run(spec, n_trials=7)  # resuming proposes nothing new: the range was the first 3 trials
    assert sum("warm_start" in t.user_attrs for t in again.study.trials) == 3 and len(again.study.trials) == 7


def test_explicit_configurations_come_first_and_the_adaptive_range_follows(workdir):
    from tuneops.tuning import run

    path = workdir / "kb.json"
    KnowledgeBase((A, B)).save(str(path))
    spec = tiny_spec(n_trials=4, warm_start={"params": [Y], "auto": {"sources": [str(path)], "strategy": "adaptive",
                                                                       "max_trials": 2, "max_share": 1.0}})
    trials = sorted(run(spec).study.trials, key=lambda t: t.number)
    assert trials[0].user_attrs["warm_start"] == "params[0]" and trials[0].params == Y
    assert trials[1].user_attrs["warm_start"].startswith("kb:portfolio#1")
    assert trials[1].params != Y and trials[1].params in PLAN["candidates"]


def test_a_configuration_queued_twice_runs_once(workdir, caplog):
    """The consensus re-proposed the spec's own configuration, and a study's trial listed twice
    was queued twice."""
    from tuneops.tuning import run

    path = workdir / "kb.json"
    KnowledgeBase((A, B)).save(str(path))
    spec = tiny_spec(n_trials=4, warm_start={"params": [X, X], "auto": {
        "sources": [str(path)], "strategy": "consensus", "max_trials": 2, "max_share": 1.0}})
    with caplog.at_level("WARNING", logger="tuneops"):
        trials = sorted(run(spec).study.trials, key=lambda t: t.number)
    warm = [t for t in trials if "warm_start" in t.user_attrs]
    configs = [t.params for t in warm]
    assert configs.count(X) == 1 and len(configs) == len({str(sorted(c.items())) for c in configs})
    assert "is the configuration of params[0], already queued; run once" in caplog.text


def test_the_adaptive_choice_follows_the_portfolio_head(workdir, monkeypatch):
    from tuneops.knowledge import adaptive
    from tuneops.tuning import run

    monkeypatch.setattr(adaptive, "HEAD", 1)
    path = workdir / "kb.json"
    KnowledgeBase((A, B)).save(str(path))
    auto = {"sources": [str(path)], "max_trials": 3, "max_share": 1.0}
    study = run(tiny_spec(n_trials=3, warm_start={"auto": auto})).study
    trials = sorted(study.trials, key=lambda t: t.number)
    tags = [t.user_attrs["warm_start"] for t in trials]
    assert tags[0].startswith("kb:portfolio#1") and "adaptive after 1 result(s)" in tags[1]
    assert "adaptive after 2 result(s)" in tags[2] and len({repr(t.params) for t in trials}) == 3


@pytest.mark.parametrize("strategy", ["adaptive", "consensus"])
def test_strategy_names_are_validated(strategy):
    from tuneops.knowledge.warm_start import parse_warm_start

    assert parse_warm_start({"auto": {"strategy": strategy}}).auto.strategy == strategy


def test_the_adaptive_range_works_under_hyperband(workdir, monkeypatch):
    # Hyperband hands the sampler a study of one bracket, without user attrs or the other trials
    from tuneops.knowledge import adaptive
    from tuneops.tuning import run

    monkeypatch.setattr(adaptive, "HEAD", 0)  # the adaptive choice from the first trial

    path = workdir / "kb.json"
    KnowledgeBase((A, B)).save(str(path))
    auto = {"sources": [str(path)], "strategy": "adaptive", "max_trials": 3, "max_share": 1.0}
    trials = sorted(run(tiny_spec(n_trials=3, pruner="hyperband", warm_start={"auto": auto})).study.trials,
                    key=lambda t: t.number)
    assert ["adaptive after 0" in t.user_attrs["warm_start"] for t in trials] == [True, False, False]
    assert "adaptive after 2 result(s)" in trials[2].user_attrs["warm_start"]


def test_two_local_workers_share_one_plan(workdir):
    from tuneops.tuning import run

    path = workdir / "kb.json"
    KnowledgeBase((A, B)).save(str(path))
    spec = tiny_spec(n_trials=6, n_workers=2, warm_start={"auto": {"sources": [str(path)], "strategy": "adaptive",
                                                                   "max_trials": 4, "max_share": 1.0}})
    trials = [t for t in run(spec).study.trials if "abandoned" not in t.user_attrs]
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
    warm = [t for t in trials if "warm_start" in t.user_attrs]
    assert sorted(t.number for t in warm) == [0, 1, 2, 3]  # the range is by trial number, whichever worker runs it
    assert all(t.params in PLAN["candidates"] for t in warm)


def test_results_are_ranked_by_the_quality_metric_even_when_it_is_not_the_first_objective(
    workdir, monkeypatch
):
    from tuneops.knowledge import adaptive
    from tuneops.tuning import run

    monkeypatch.setattr(adaptive, "HEAD", 0)  # the adaptive choice from the first trial

    path = workdir / "kb.json"
    KnowledgeBase((A, B)).save(str(path))
    auto = {"sources": [str(path)], "strategy": "adaptive", "max_trials": 3, "max_share": 1.0}
    spec = tiny_spec(n_trials=3, objectives=["fit_time_s", "accuracy"], pruner="none", warm_start={"auto": auto})
    study = run(spec).study  # no pruning: fit times vary, and a pruned trial is no result
    trials = sorted(study.trials, key=lambda t: t.number)
    plan = study._storage.get_study_system_attrs(study._study_id)[PLAN_ATTR]["families"]["knn"]
    assert "adaptive after 2 result(s)" in trials[2].user_attrs["warm_start"]
    # the third trial is what the plan proposes for the first two trials' accuracies (the
    # entries' metric, maximised), not for their fit times (the first objective, minimised)
    by_accuracy = [(t.params, t.user_attrs["metrics"]["accuracy"]) for t in trials[:2]]
    assert trials[2].params == plan["candidates"][propose(plan, SPACE, by_accuracy)]


def test_the_nearest_datasets_of_the_results_are_those_of_every_family_nearest_first():
    """The console named pmlb:cleve (svm's nearest); results.json listed knn's five only."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from tuneops import _optuna
    from tuneops.knowledge.warm_start import TAG, warm_start_section

    study = optuna.create_study(direction="maximize")
    _optuna.set_study_system_attr(study, PLAN_ATTR, {
        "order": ["knn", "svm"],
        "families": {"knn": {"neighbours": ["a", "b"], "distances": [0.2, 0.3]},
                     "svm": {"neighbours": ["c", "a"], "distances": [0.1, 0.2]}},
    })
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5,
                                 user_attrs={TAG: "kb:portfolio#1 (robust default)"}))
    section = warm_start_section(study, study.get_trials(deepcopy=False))
    assert section["neighbours"] == ["c", "a", "b"]


def test_a_warm_trial_is_on_the_front_the_selection_printed_not_merely_undominated():
    """A warm trial tied with the front within noise read 'on the Pareto front' in the console
    and '0 of 3 on the front' in the report's finding."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from tuneops.knowledge.warm_start import TAG, warm_start_section

    study = optuna.create_study(directions=["maximize", "minimize"])
    tag = {TAG: "kb:portfolio#1 (robust default)"}
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.95, 1.00], user_attrs=tag))
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.951, 0.99]))  # dominates
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.80, 0.50]))
    trials = study.get_trials(deepcopy=False)
    assert warm_start_section(study, trials)["n_on_front"] == 0  # dominated: as before
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.9505, 0.98], user_attrs=tag))
    trials = study.get_trials(deepcopy=False)
    plain = warm_start_section(study, trials)
    assert plain["n_on_front"] == 1 and plain["best_warm_trial"] == 3  # the plain front
    # the selection printed trials 1 and 2 (trial 3 tied with 1 within noise)
    printed = warm_start_section(study, trials, front=[1, 2])
    assert printed["n_on_front"] == 0 and printed["best_warm_trial"] == 3
    assert [t.get("on_front") for t in printed["trials"]] == [False, False]
    assert printed["summary"].endswith(
        "none on the Pareto front: best warm trial #3 is within noise of it (dominated by none of "
        "the 4 feasible trials)"), printed["summary"]
    assert warm_start_section(study, trials, front=[2, 3])["n_on_front"] == 1


def test_a_retry_in_the_warm_start_range_takes_no_place_of_it(workdir):
    """The range was by trial number: the retry of an abandoned warm trial (its configuration,
    queued) took the next number in it, so the adaptive warm start made one proposal fewer than
    its plan's size for every retry that landed in it (review)."""
    import optuna

    from tuneops import _optuna, _study, runner
    from tuneops.knowledge.adaptive import WarmStartSampler
    from tuneops.space import suggest_params
    from tuneops.storage import get_storage

    study = optuna.create_study(
        direction="maximize", storage=get_storage(str(workdir / "s.journal")),
        sampler=WarmStartSampler(optuna.samplers.RandomSampler(seed=0), {"knn": SPACE}))
    _optuna.set_study_system_attr(
        study, PLAN_ATTR, {"first": 0, "size": 3, "order": ["knn"], "families": {"knn": PLAN}})

    def run_one(abandon=False):
        trial = study.ask()
        params = suggest_params(trial, SPACE)
        if abandon:  # its worker died: FAIL, abandoned, its configuration queued again
            runner.abandon(study, _optuna.read_trial(study, trial), "no heartbeat for 60 s")
        else:
            study.tell(trial, params["n_neighbors"] / 100)

    run_one(abandon=True)  # trial 0, the first warm proposal
    for _ in range(4):  # trial 1 is its retry; then 2, 3, 4
        run_one()
    trials = study.get_trials()
    assert trials[1].user_attrs[_study.RETRY_OF] == 0 and trials[1].params == trials[0].params
    warm = [t.number for t in _study.counted(trials) if "warm_start" in t.user_attrs]
    assert warm == [1, 2, 3]  # three, as planned: the retry and two more proposals
    assert all(t.params in PLAN["candidates"] for t in trials[:4])
    assert "warm_start" not in trials[4].user_attrs


def test_an_older_studys_untagged_retry_of_a_warm_trial_counts_as_that_warm_trial():
    """Retries did not carry the tag before: in such a study the warm start's summary said "none
    completed" of a configuration that completed, and counted it as the best other trial."""
    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from tuneops import _study
    from tuneops.knowledge.warm_start import warm_start_section
    from tuneops.report import build_report

    dists = {"n_neighbors": IntDistribution(1, 50), "weights": CategoricalDistribution(
        ["uniform", "distance"]), "p": IntDistribution(1, 2)}
    study = optuna.create_study(direction="maximize")
    tag = "kb:portfolio#1 (robust default; from pmlb:a#1)"
    study.add_trial(create_trial(state=TrialState.FAIL, params=Z, distributions=dists,
                                 user_attrs={_study.WARM_START: tag, _study.ABANDONED: "killed"}))
    study.add_trial(create_trial(state=TrialState.COMPLETE, params=Z, distributions=dists,
                                 value=0.95, user_attrs={_study.RETRY_OF: 0}))  # untagged
    study.add_trial(create_trial(state=TrialState.COMPLETE, params=X, distributions=dists,
                                 value=0.9))
    # a fresh configuration run after a retry was abandoned again is no warm trial
    study.add_trial(create_trial(state=TrialState.COMPLETE, params=Y, distributions=dists,
                                 value=0.8, user_attrs={_study.RETRY_OF: 0}))
    section = warm_start_section(study, study.get_trials(deepcopy=False))
    assert section["n_enqueued"] == 1 and section["best_warm_trial"] == 1
    assert section["trials"][0]["source"] == tag and section["n_portfolio"] == 1
    assert section["best_cold_value"] == 0.9  # not the warm trial's 0.95
    table = build_report(study).table
    column = table.columns.index("warm start")
    assert [row[column] for row in table.rows] == [True, True, None, None]
