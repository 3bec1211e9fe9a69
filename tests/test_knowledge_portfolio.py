"""The warm-start portfolio from long cold runs: strategies, near-duplicates, extending a base."""

from __future__ import annotations

import optuna
import pytest

from tuneops.errors import UsageError
from tuneops.families import get_family
from tuneops.knowledge.base import META_ATTR, Entry, KnowledgeBase, entries_of_study, load_file
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
