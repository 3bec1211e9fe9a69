"""The warm-start portfolio from long cold runs: strategies, near-duplicates, extending a base."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import optuna
import pytest

from tuneops.errors import UsageError
from tuneops.families import get_family
from tuneops.knowledge.base import (
    META_ATTR,
    UNVERSIONED_FIT,
    Entry,
    KnowledgeBase,
    entries_of_study,
    load_file,
)
from tuneops.knowledge.metafeatures import FEATURES
from tuneops.knowledge.portfolio import Neighbour, portfolio

SPACE = get_family("knn").space("classification")
X = {"n_neighbors": 1, "weights": "uniform", "p": 1}   # best on the nearest task only
Y = {"n_neighbors": 15, "weights": "distance", "p": 2}  # good on every task
Z = {"n_neighbors": 50, "weights": "uniform", "p": 2}   # mediocre everywhere


def _task(name: str, scores: dict[str, float], distance: float) -> Neighbour:
    configs = sorted(((c, scores[k]) for k, c in (("X", X), ("Y", Y), ("Z", Z))), key=lambda c: -c[1])
    meta = {f: 0.5 for f in FEATURES}
    return Neighbour(Entry(name, "classification", "knn", "accuracy", "maximize", meta, tuple(configs)), distance)


NEIGHBOURS = [
    _task("a", {"X": 0.90, "Y": 0.89, "Z": 0.80}, 0.1),
    _task("b", {"X": 0.60, "Y": 0.95, "Z": 0.85}, 0.2),
    _task("c", {"X": 0.55, "Y": 0.93, "Z": 0.90}, 0.3),
]


def test_round_robin_takes_the_nearest_tasks_best_first():
    recs = portfolio(NEIGHBOURS, SPACE, size=3, strategy="round_robin")
    assert dict(recs[0].params) == X and recs[0].dataset == "a"


def test_consensus_puts_what_is_good_on_many_similar_tasks_first():
    recs = portfolio(NEIGHBOURS, SPACE, size=3, strategy="consensus")
    assert [dict(r.params) for r in recs] == [Y, Z, X]  # mean regret over a, b, c: Y < Z < X
    assert recs[0].dataset in {"b", "c"} and recs[0].rank == 0  # where it was the best


def test_coverage_adds_what_covers_the_tasks_the_first_pick_misses():
    # Y is within 1% on a, best on b; on c Z is nearly as good. Coverage starts with Y (lowest
    # weighted regret), then takes X, which closes a's remaining gap, before Z.
    recs = portfolio(NEIGHBOURS, SPACE, size=2, strategy="coverage")
    assert [dict(r.params) for r in recs] == [Y, X]


def test_an_unknown_strategy_names_the_valid_ones():
    with pytest.raises(UsageError, match="consensus"):
        portfolio(NEIGHBOURS, SPACE, strategy="best")


def test_leave_one_out_drops_known_near_duplicates_too():
    meta = {f: 0.5 for f in FEATURES}
    kb = KnowledgeBase(tuple(
        Entry(f"pmlb:{d}", "classification", "knn", "accuracy", "maximize", meta, ((X, 0.9),))
        for d in ("heart_statlog", "heart_c", "heart_h", "iris", "monk1", "monk2")
    ))
    assert [e.dataset for e in kb.without(dataset="pmlb:heart_c")] == ["pmlb:iris", "pmlb:monk1", "pmlb:monk2"]
    assert [e.dataset for e in kb.without(dataset="monk2")] == [
        "pmlb:heart_statlog", "pmlb:heart_c", "pmlb:heart_h", "pmlb:iris"]
    assert len(kb.without(dataset="pmlb:iris")) == 5


def test_an_entry_can_keep_every_trial_of_its_study():
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(META_ATTR, {"task": "classification", "features": {f: 0.5 for f in FEATURES}})
    study.set_user_attr("tuneops:objectives", [{"metric": "accuracy", "direction": "maximize"}])
    study.set_user_attr("tuneops:data", {"name": "d", "task": "classification"})
    dist = {"n_neighbors": optuna.distributions.IntDistribution(1, 50)}
    for k in range(1, 16):
        study.add_trial(optuna.trial.create_trial(params={"n_neighbors": k}, distributions=dist, value=k / 100,
                                                  user_attrs={"family": "knn", "metrics": {"accuracy": k / 100}}))
    (top,) = entries_of_study(study)
    (every,) = entries_of_study(study, keep=None)
    assert len(top.configs) == 10 and len(every.configs) == 15 and len(every.history) == 15
    assert every.configs[0] == ({"n_neighbors": 15}, 0.15) and every.configs[-1] == ({"n_neighbors": 1}, 0.01)


def test_an_entry_from_a_study_keeps_the_spec_s_fixed_values():
    """An svm study with gamma fixed at 0.01 became 'C=1.252 -> 0.8086'; a later run reused C
    with another gamma and scored 0.7954."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(META_ATTR, {"task": "classification", "features": {f: 0.5 for f in FEATURES}})
    study.set_user_attr("tuneops:objectives", [{"metric": "accuracy", "direction": "maximize"}])
    study.set_user_attr("tuneops:data", {"name": "d", "task": "classification"})
    study.set_user_attr("tuneops:spec", {"model": {"family": "svm", "space": {"svm": {
        "C": {"type": "float", "low": 0.1, "high": 10, "log": True}, "gamma": {"value": 0.01},
        "degree": {"value": 3, "when": {"kernel": "poly"}}}}}})
    dist = {"C": optuna.distributions.FloatDistribution(0.1, 10, log=True)}
    study.add_trial(optuna.trial.create_trial(params={"C": 1.25}, distributions=dist, value=0.8,
                                              user_attrs={"family": "svm", "metrics": {"accuracy": 0.8}}))
    (entry,) = entries_of_study(study)
    assert entry.configs[0] == ({"gamma": 0.01, "C": 1.25}, 0.8)  # a conditional one is not


def test_two_entries_of_one_dataset_and_family_are_both_imported(workdir):
    """The second replaced the first while 'Imported 6 entries' was said for 5 stored."""
    from tuneops.knowledge.base import from_storage, import_entries

    meta = {f: 0.5 for f in FEATURES}
    kb = KnowledgeBase([
        Entry("pmlb:cleve", "classification", "svm", "accuracy", "maximize", meta,
              (({"C": 1.0}, score),), source=f"storage:{name}")
        for name, score in (("svm-cleve", 0.81), ("multi-cleve", 0.79))
    ])
    names = import_entries(kb, str(workdir / "kb.journal"))
    assert names == ["kb.pmlb_cleve.svm", "kb.pmlb_cleve.svm.2"]
    assert import_entries(kb, str(workdir / "kb.journal")) == names  # again: the same studies
    stored = sorted(e.configs[0][1] for e in from_storage(str(workdir / "kb.journal")))
    assert stored == [0.79, 0.81]


def test_kb_build_extends_an_earlier_base(workdir, cli):
    args = ("--dataset", "iris", "--n-trials", "2", "--cv-folds", "2")
    code, out, _ = cli("kb", "build", *args, "--family", "knn", "--out", "a.json.gz")
    assert code == 0, out
    code, out, _ = cli("kb", "build", *args, "--family", "linear", "--extend", "a.json.gz", "--out", "b.json.gz")
    assert code == 0, out
    kb = load_file(workdir / "b.json.gz")
    assert sorted(e.family for e in kb) == ["knn", "linear"]
    assert kb.built_with["built"] == {"linear": 1} and kb.built_with["extends"]["built"] == {"knn": 1}
    assert kb.built_with["datasets"] == ["iris"]


# -- the greedy zero-shot portfolio (issue 18) --------------------------------------------------
def test_greedy_picks_the_robust_default_then_what_covers_the_tasks_it_misses():
    from tuneops.knowledge.portfolio import greedy

    # columns: 0 good everywhere but task 3; 1 a near-copy of 0 (the same tasks, a little worse);
    # 2 poor on average but the best on task 3; 3 mediocre everywhere
    regret = np.array([
        [0.00, 0.05, 0.90, 0.40],
        [0.05, 0.05, 0.80, 0.40],
        [0.00, 0.05, 0.90, 0.40],
        [0.80, 0.80, 0.00, 0.40],
    ])
    assert greedy(regret, 1) == [0]  # the lowest mean regret: a robust default
    assert greedy(regret, 2) == [0, 2]  # not 1 or 3, which add nothing on task 3
    assert greedy(regret, 4)[:2] == [0, 2] and sorted(greedy(regret, 4)) == [0, 1, 2, 3]
    # serving cost: when 0 is expensive and 1 nearly as good, a cost-aware portfolio starts with 1
    cost = np.array([1.0, 0.0, 0.0, 0.0])
    assert greedy(regret, 2, cost=cost, cost_weight=0.5)[0] == 1


def _rf_task(name: str, configs: list[tuple[dict, float]], meta: float = 0.5) -> Neighbour:
    entry = Entry(name, "classification", "random_forest", "accuracy", "maximize",
                  {f: meta for f in FEATURES},
                  tuple(sorted(configs, key=lambda c: -c[1])), history=tuple(s for _, s in configs))
    return Neighbour(entry, 0.1)


RF_SPACE = get_family("random_forest").space("classification")
# best on one task only: a deep unregularised forest
DEEP = {"n_estimators": 300, "max_depth": 32, "min_samples_leaf": 1, "max_features": 1.0}
ROBUST = {"n_estimators": 100, "max_depth": 8, "min_samples_leaf": 3, "max_features": 0.3}
SMALL = {"n_estimators": 20, "max_depth": 4, "min_samples_leaf": 5, "max_features": 0.3}
BAD = {"n_estimators": 10, "max_depth": 2, "min_samples_leaf": 20, "max_features": 0.05}


def _rf_tasks() -> list[Neighbour]:
    return [
        _rf_task("a", [(DEEP, 0.95), (ROBUST, 0.80), (SMALL, 0.79), (BAD, 0.60)]),
        _rf_task("b", [(DEEP, 0.70), (ROBUST, 0.90), (SMALL, 0.895), (BAD, 0.60)]),
        _rf_task("c", [(DEEP, 0.72), (ROBUST, 0.88), (SMALL, 0.875), (BAD, 0.60)]),
        _rf_task("d", [(DEEP, 0.70), (ROBUST, 0.85), (SMALL, 0.85), (BAD, 0.55)]),
    ]


def test_the_greedy_portfolio_starts_with_the_configuration_best_on_average_not_a_deep_forest():
    from tuneops.knowledge.portfolio import greedy_portfolio

    recs = greedy_portfolio(_rf_tasks(), RF_SPACE, size=3)
    assert dict(recs[0].params) == ROBUST  # best on average over a-d
    assert dict(recs[1].params) == DEEP  # what covers task a, which ROBUST misses
    # with a serving cost in the spec, the cheap configuration that is nearly as good comes first
    # (a tenth of ROBUST's trees x depth, within 0.005 accuracy on every task)
    cheap = greedy_portfolio(_rf_tasks(), RF_SPACE, size=3, cost_weight=0.5)
    assert dict(cheap[0].params) == SMALL


def test_portfolio_configurations_are_distinct():
    from tuneops.knowledge.base import dedupe
    from tuneops.knowledge.portfolio import _pairwise, _unit_matrix, greedy_portfolio

    twin = {**ROBUST, "max_features": 0.30001}  # the same configuration to 3 significant digits
    configs = [(ROBUST, 0.9), (twin, 0.9), (DEEP, 0.8), (dict(ROBUST), 0.9)]
    kept, _ = dedupe(sorted(configs, key=lambda c: -c[1]))
    assert len(kept) == 2
    tasks = [_rf_task(n, configs + [(SMALL, 0.7), (BAD, 0.5)]) for n in "abc"]
    recs = greedy_portfolio(tasks, RF_SPACE, size=10)
    unit, categorical = _unit_matrix([r.params for r in recs], RF_SPACE)
    gaps = _pairwise(unit, unit, categorical) + np.eye(len(recs))
    # the 5 best of each task hold ROBUST three times over (twin, copy): one candidate
    expected = {tuple(sorted(c.items())) for c in (ROBUST, DEEP, SMALL)}
    assert {tuple(sorted(r.params.items())) for r in recs} == expected
    assert len(recs) == 3 and gaps.min() >= 0.05


def test_a_study_entry_keeps_distinct_configurations_with_their_serving_cost():
    study = optuna.create_study(direction="maximize")
    features = {f: 0.5 for f in FEATURES}
    study.set_user_attr(META_ATTR, {"task": "classification", "features": features})
    study.set_user_attr("tuneops:objectives", [{"metric": "accuracy", "direction": "maximize"}])
    study.set_user_attr("tuneops:data", {"name": "d", "task": "classification"})
    dist = {"n_estimators": optuna.distributions.IntDistribution(10, 300),
            "max_depth": optuna.distributions.IntDistribution(2, 32)}
    for i, (trees, depth) in enumerate([(100, 8), (100, 8), (300, 32), (100, 8)]):
        study.add_trial(optuna.trial.create_trial(
            params={"n_estimators": trees, "max_depth": depth}, distributions=dist,
            value=0.9 - i / 100,
            user_attrs={"family": "random_forest",
                        "metrics": {"accuracy": 0.9 - i / 100, "fit_time_s": 0.5}}))
    (entry,) = entries_of_study(study, keep=None)
    assert [dict(p) for p, _ in entry.configs] == [{"n_estimators": 100, "max_depth": 8},
                                                  {"n_estimators": 300, "max_depth": 32}]
    assert len(entry.history) == 4  # the cold curve keeps every trial
    # fit_time_s without a cost record: the first definition (wall seconds), said with it
    assert entry.costs[0] == {"size": 800.0, "fit_s": 0.5, "fit_version": 1}
    assert entry.costs[1]["size"] == 300 * 32
    again = Entry.from_dict(entry.to_dict())
    assert again.costs == entry.costs and again.configs == entry.configs


def test_an_entry_carries_the_definition_of_its_fit_times_and_gives_one_at_a_time():
    """The knowledge base copied each configuration's fit_time_s without the version of its
    definition: a study resumed across a change, or a base built before it, mixed figures 3-5x
    apart that nothing could tell apart (review)."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(META_ATTR, {"task": "classification", "features": {f: 0.5 for f in FEATURES}})
    study.set_user_attr("tuneops:objectives", [{"metric": "accuracy", "direction": "maximize"}])
    study.set_user_attr("tuneops:data", {"name": "d", "task": "classification"})
    dist = {"n_estimators": optuna.distributions.IntDistribution(10, 300)}
    fits = [  # the cost records of definitions 2 (no marker, no preprocessing) and 3 (marked)
        {"cpu_s": [2.0], "wall_s": [2.1], "threads": 1},
        {"cpu_s": [0.6], "wall_s": [0.7], "threads": 1, "preprocess_cpu_s": [0.01], "version": 3},
    ]
    for i, fit in enumerate(fits):
        study.add_trial(optuna.trial.create_trial(
            params={"n_estimators": 100 + i}, distributions=dist, value=0.9 - i / 100,
            user_attrs={"family": "random_forest", "tuneops:cost": {"fit": fit},
                        "metrics": {"accuracy": 0.9 - i / 100, "fit_time_s": fit["cpu_s"][0]}}))
    (entry,) = entries_of_study(study, keep=None)
    assert [c["fit_version"] for c in entry.costs] == [2, 3]
    assert entry.fit_times() == (None, 0.6)  # this tuneops' definition only
    assert entry.fit_times(2) == (2.0, None)
    assert entry.fit_versions == {2, 3}
    again = Entry.from_dict(entry.to_dict())
    assert again.costs == entry.costs and again.fit_times() == entry.fit_times()
    assert KnowledgeBase((entry,)).fit_time_note().startswith(
        "fit times (cost.fit_s) of 1 entries (d/random_forest) were measured by another "
        "definition than this tuneops' fit_time_s (version 3")
    # a base written before fit_version was: its fit times are read as version 2, and say so
    raw = entry.to_dict()
    for c in raw["configs"]:
        del c["cost"]["fit_version"]
    old = Entry.from_dict(raw)
    assert [c["fit_version"] for c in old.costs] == [UNVERSIONED_FIT] * 2 == [2, 2]
    assert old.fit_times() == (None, None) and old.fit_times(2) == (2.0, 0.6)
    assert Entry.from_dict(old.to_dict()).costs == old.costs  # written with it from then on
    only_current = replace(entry, configs=entry.configs[1:], costs=entry.costs[1:])
    assert KnowledgeBase((only_current,)).fit_time_note() is None


def test_with_sparse_trials_the_robust_default_is_pooled_across_tasks():
    from tuneops.knowledge.portfolio import DENSE, _unit_matrix, kernel_mass, pooled_regret

    # each task tried a few configurations of its own; "good" ones share one region (deep-ish,
    # many trees), which no single task covers twice
    region = [{"n_estimators": 200 + 10 * i, "max_depth": 12, "min_samples_leaf": 2,
               "max_features": 0.5} for i in range(4)]
    tasks = [_rf_task(n, [(region[i], 0.9), (BAD, 0.6), (SMALL, 0.8 - i / 100)]).entry
             for i, n in enumerate("abcd")]
    unit, categorical = _unit_matrix(region + [SMALL, BAD], RF_SPACE)
    assert kernel_mass(tasks, unit, RF_SPACE, categorical) < DENSE  # each task saw one of them
    pooled = pooled_regret(tasks, unit, RF_SPACE, categorical)
    assert pooled[:4].max() < pooled[4] < pooled[5]  # the shared region beats SMALL beats BAD
