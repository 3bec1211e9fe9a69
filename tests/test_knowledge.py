"""Warm start and meta-learning: meta-features, retrieval, the knowledge base, warm-start runs."""

from __future__ import annotations

import contextlib
import json
import re
import logging
from dataclasses import replace

import numpy as np
import optuna
import pandas as pd
import pytest
from conftest import tiny_spec

from tuneops.errors import SpecError, StudyNotFound
from tuneops.families import get_family
from tuneops.knowledge.base import (
    SHIPPED_PATH,
    UNVERSIONED_FIT,
    Entry,
    KnowledgeBase,
    dedupe,
    load_file,
    load_shipped,
)
from tuneops.knowledge.build import DEFAULT_FAMILIES
from tuneops.knowledge.metafeatures import (
    FEATURES,
    meta_features,
    raw_cosine_distance,
    scale_features,
)
from tuneops.knowledge.portfolio import fit_to_space, nearest, portfolio
from tuneops.knowledge.warm_start import parse_warm_start


# -- meta-features ------------------------------------------------------------------------------
def test_meta_features_of_iris_are_the_known_values():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    mf = meta_features(X, y, "classification")
    assert list(mf) == list(FEATURES)
    assert (mf["n_rows"], mf["n_features"], mf["n_classes"]) == (150.0, 4.0, 3.0)
    assert mf["class_entropy"] == pytest.approx(1.0) and mf["minority_ratio"] == 1.0
    assert mf["majority_fraction"] == pytest.approx(1 / 3)
    assert mf["categorical_ratio"] == 0.0 and mf["missing_ratio"] == 0.0
    assert mf["dimensionality"] == pytest.approx(4 / 150)
    # iris is easy for 1-NN and a linear model, hard for a stump (it separates one class of three)
    assert mf["landmark_1nn"] > 0.9 and mf["landmark_linear"] > 0.9
    assert 0.5 < mf["landmark_stump"] < 0.75
    assert mf["max_mutual_information"] > mf["mean_mutual_information"] > 0
    assert meta_features(X, y, "classification") == mf  # pure and deterministic


def test_meta_features_count_categories_missing_values_and_imbalance():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({
        "a": rng.normal(size=100),
        "b": [np.nan] * 10 + list(rng.normal(size=90)),
        "colour": ["red", "blue"] * 50,
        "size": ["s", "m", "l", "xl"] * 25,
    })
    y = pd.Series([0] * 80 + [1] * 20)
    before = X.copy()
    mf = meta_features(X, y, "classification")
    pd.testing.assert_frame_equal(X, before)  # the input is not modified
    assert mf["categorical_ratio"] == 0.5
    assert mf["missing_ratio"] == pytest.approx(10 / 400)
    assert mf["rows_with_missing_ratio"] == pytest.approx(0.1)
    assert mf["binary_feature_ratio"] == 0.25
    assert mf["minority_ratio"] == pytest.approx(0.25) and mf["majority_fraction"] == pytest.approx(0.8)


def test_meta_features_of_a_regression_task():
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    mf = meta_features(X, y, "regression")
    assert mf["n_classes"] == 0.0 and mf["class_entropy"] == 0.0
    assert mf["target_skewness"] > 0.2  # the diabetes target is right-skewed
    assert 0.3 < mf["landmark_linear"] < 0.6  # Ridge r2 on diabetes is about 0.48
    assert all(np.isfinite(v) for v in mf.values())


def _meta(**values: float) -> dict[str, float]:
    base = {f: 0.5 for f in FEATURES}
    base.update(values)
    return base


def test_scaling_stops_the_row_count_from_deciding_the_neighbour():
    # Query: 1000 rows, an easy, balanced problem. "same_size" has 1000 rows but is a hard,
    # imbalanced problem; "alike" is the same kind of problem with 300 rows.
    query = _meta(n_rows=1000, landmark_1nn=0.95, landmark_linear=0.95, minority_ratio=1.0, class_entropy=1.0)
    same_size = _meta(n_rows=1000, landmark_1nn=0.55, landmark_linear=0.5, minority_ratio=0.1, class_entropy=0.4)
    alike = _meta(n_rows=300, landmark_1nn=0.94, landmark_linear=0.96, minority_ratio=0.95, class_entropy=0.99)
    others = [_meta(n_rows=n, landmark_1nn=a, landmark_linear=a, minority_ratio=m, class_entropy=m)
              for n, a, m in ((150, 0.7, 0.5), (5000, 0.8, 0.3), (600, 0.6, 0.7))]
    # The seed's raw cosine picks the dataset of the same size ...
    assert raw_cosine_distance(query, same_size) < raw_cosine_distance(query, alike)
    # ... the scaled distance picks the similar problem.
    entries = [_entry(f"d{i}", m) for i, m in enumerate([same_size, alike, *others])]
    found = nearest(KnowledgeBase(tuple(entries)), query, family="knn", task="classification", k=2)
    assert found[0].entry.dataset == "d1"
    scaled = scale_features([query, same_size, alike, *others])
    assert np.abs(scaled).max() <= 3.0  # no feature can dominate


def _entry(name: str, meta, family="knn", task="classification", configs=None, fingerprint=None) -> Entry:
    configs = configs or ((({"n_neighbors": 5, "weights": "uniform", "p": 2}), 0.9),)
    return Entry(name, task, family, "accuracy", "maximize", meta, tuple(configs), fingerprint=fingerprint)


def test_retrieval_finds_an_identical_dataset_first():
    shipped = load_shipped()
    from tuneops.data import load_dataset

    data = load_dataset("sklearn:wine")
    meta = meta_features(data.X, data.y, data.task)
    kb = shipped + KnowledgeBase((_entry("sklearn:wine", meta),))
    found = nearest(kb, meta, family="knn", task="classification", k=5)
    # the shipped base holds the same data as pmlb:wine_recognition: both are found first, at 0
    # (up to the last bit of a correlation, which moves between NumPy versions)
    assert {n.entry.dataset for n in found[:2]} == {"sklearn:wine", "pmlb:wine_recognition"}
    assert found[0].distance == pytest.approx(0.0, abs=1e-12)
    assert found[1].distance == pytest.approx(0.0, abs=1e-12)
    assert found[2].distance > 1e-3


def test_portfolio_is_diverse_and_inside_the_space():
    space = get_family("knn").space("classification")
    same = {"n_neighbors": 5, "weights": "uniform", "p": 2}
    neighbours = nearest(KnowledgeBase((
        _entry("a", _meta(n_rows=100), configs=((same, 0.9), ({"n_neighbors": 40, "weights": "distance", "p": 1}, 0.8))),
        _entry("b", _meta(n_rows=110), configs=((dict(same), 0.95),)),  # a duplicate of a's best
        _entry("c", _meta(n_rows=5000), configs=(({"n_neighbors": 500, "weights": "uniform", "p": 2}, 0.7),)),
    )), _meta(n_rows=100), family="knn", task="classification")
    recs = portfolio(neighbours, space, size=5)
    params = [dict(r.params) for r in recs]
    assert params.count(same) == 1  # the duplicate is skipped
    assert {"n_neighbors": 50, "weights": "uniform", "p": 2} in params  # 500 clipped to the space
    assert recs[0].dataset == "a" and recs[0].rank == 0


def test_fit_to_space_clips_and_drops():
    space = get_family("random_forest").space("classification")
    fitted, changes = fit_to_space({"n_estimators": 1000, "max_features": 0.5, "criterion": "gini"}, space)
    assert fitted == {"n_estimators": 300, "max_features": 0.5}
    assert ("criterion: not searched in this space", "dropped") in changes
    assert ("n_estimators=1000: outside [10, 300]", "set to 300") in changes
    # an in-range value is not called outside; a misspelt name gets a suggestion; a fixed
    # parameter given its own value fits; a conditional one given while inactive is said
    from tuneops.space import Param

    fixed = {**space, "max_depth": Param(name="max_depth", kind="fixed", value=6)}
    _, changes = fit_to_space({"n_estimators": 20.7, "n_estimator": 20, "max_depth": 6}, fixed)
    assert changes == [
        ("n_estimators=20.7: not a whole number", "set to 21"),
        ("n_estimator: not searched in this space (did you mean 'n_estimators'?)", "dropped"),
    ]
    conditional = {
        "kernel": Param(name="kernel", kind="categorical", choices=("rbf", "poly")),
        "degree": Param(name="degree", kind="int", low=2, high=5, when=(("kernel", ("poly",)),)),
    }
    fitted, changes = fit_to_space({"kernel": "rbf", "degree": 3}, conditional)
    assert fitted == {"kernel": "rbf"}
    assert changes == [("degree: used only when kernel in ['poly']", "ignored")]


# -- the shipped base and leave-one-out ---------------------------------------------------------
def _builds(built: dict) -> list[dict]:
    """A base's build record, then the records of the builds it extended, newest first."""
    chain = [built]
    while "extends" in chain[-1]:
        chain.append(chain[-1]["extends"])
    return chain


def test_the_shipped_base_loads_records_its_build_and_recommends():
    from tuneops.knowledge import recommend
    from tuneops.knowledge.base import SHIPPED_PATH

    kb = load_shipped()
    assert SHIPPED_PATH.stat().st_size < 5 * 1024 * 1024
    assert len(kb) >= 60 and {"random_forest", "knn", "svm"} <= {e.family for e in kb}
    # the 200-trial cold runs keep every distinct configuration (regrets are estimated from them)
    long = [e for e in kb if len(e.history) == 200]
    assert len(long) >= 60 and all(3 <= len(e.configs) <= 200 for e in long)
    # the earlier builds are kept
    assert any(b.get("built", {}).get("svm", 0) >= 30 for b in _builds(kb.built_with)[1:])
    assert kb.built_with["n_trials"] and "pmlb" in kb.built_with["source"].lower()
    assert set(kb.built_with["datasets"]) >= {e.dataset.removeprefix("pmlb:") for e in kb}
    recs, neighbours = recommend("sklearn:breast_cancer", "random_forest", kb=kb, size=4)
    assert 1 <= len(recs) <= 4 and neighbours
    space = get_family("random_forest").space("classification")
    for r in recs:
        assert fit_to_space(r.params, space) == (dict(r.params), [])


def test_leave_one_out_never_returns_the_target():
    kb = load_shipped().select(family="knn")
    assert len(kb) >= 30
    from tuneops.knowledge.build import related

    for entry in kb:
        loo = kb.without(dataset=entry.dataset, fingerprint=entry.fingerprint)
        assert len(loo) == len(kb) - sum(e.dataset in related(entry.dataset) for e in kb)
        found = nearest(loo, entry.meta_features, family="knn", task=entry.task, k=len(kb))
        assert found and entry.dataset not in {n.entry.dataset for n in found}
    # by fingerprint too: the same data under another name
    twin = _entry("renamed", kb.entries[0].meta_features, fingerprint=kb.entries[0].fingerprint)
    assert "renamed" not in {e.dataset for e in (kb + KnowledgeBase((twin,))).without(fingerprint=twin.fingerprint)}


def _bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_warmstart.py"
    spec = importlib.util.spec_from_file_location("bench_warmstart", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.parametrize("target", ["pmlb:heart_c", "pmlb:iris"])
def test_the_benchmark_never_gives_a_warm_run_its_target_or_a_near_duplicate(
    tmp_path, monkeypatch, target
):
    from tuneops.knowledge.base import related

    bench = _bench()
    meta = {f: 0.5 for f in FEATURES}
    names = ["heart_statlog", "heart_c", "heart_h", "iris", "wine_recognition", "sonar"]
    kb = KnowledgeBase(tuple(
        _entry(f"pmlb:{d}", meta, family="knn", fingerprint=f"sha256:{d}") for d in names
    ) + (_entry("pmlb:iris_copy", meta, family="knn", fingerprint="sha256:iris"),))  # iris, renamed
    # every entry knows its default's score; the target's must not reach the warm run either
    kb = KnowledgeBase(tuple(
        replace(e, default_score=0.5 + i / 100)
        for i, e in enumerate(kb.entries)
    ))
    entry = next(e for e in kb if e.dataset == target)
    seen = {}

    def fake_run(entry, seed, n_trials, warm):  # no tuning: only what the warm run is given
        if warm is not None:
            (path,) = warm["auto"]["sources"]
            seen["kb"] = load_file(path)
        return [0.5] * n_trials, [None] * n_trials

    monkeypatch.setattr(bench, "run_curve", fake_run)
    monkeypatch.setattr(bench, "evaluate", lambda entry, seed, params: 0.5)
    monkeypatch.setattr(bench, "flaml_params", lambda entry: None)
    row = bench.bench_one((entry.to_dict(), kb.to_dict(), 0, 3, 0, str(tmp_path)))
    assert "error" not in row, row
    given = {e.dataset for e in seen["kb"]}
    assert not given & related(target)
    assert entry.fingerprint not in {e.fingerprint for e in seen["kb"]}
    twin = {"pmlb:iris_copy"} if target == "pmlb:iris" else set()
    assert given == {e.dataset for e in kb} - related(target) - twin
    assert row["base_entries"] == len(given)
    kept = {e.default_score for e in kb if e.dataset in given}
    assert {e.default_score for e in seen["kb"]} == kept  # the others' defaults travel
    assert not kept & {e.default_score for e in kb if e.dataset in related(target) | twin}


def test_the_benchmark_summary_counts_the_issue_targets():
    bench = _bench()
    rows = []
    cases = {"a": (0.9, 0.8, 0.85), "b": (0.7, 0.75, 0.7), "c": (0.6, 0.5, None)}
    for d, (w0, default, flaml) in cases.items():
        for seed, cold_best in ((0, 0.9), (1, 0.88)):
            rows.append({"dataset": d, "family": "random_forest", "seed": seed, "n_trials": 4,
                         "warm": [w0, w0, 0.91, 0.91], "cold": [0.5, 0.6, 0.7, cold_best],
                         "default": default, "flaml": flaml})
    s = bench.summarise(rows, points=(1, 2, 4))["random_forest"]
    assert (s["first_beats_default"], s["first_ties_default"], s["n_default"]) == (4, 0, 6)
    assert s["n_flaml"] == 4 and s["first_ge_flaml"] == 4
    assert s["cold_noise_median"] == pytest.approx(0.02) and s["final_n"] == 3
    assert s["regret"][2]["warm"] < s["regret"][2]["cold"]
    assert s["final_worse_than_noise"] == 0 and s["final_diff_median"] == pytest.approx(0.02)


# -- the warm_start field -----------------------------------------------------------------------
@pytest.mark.parametrize("raw, match", [
    ({"params": 3}, r"warm_start.params: expected a list"),
    ({"auto": {"max_share": 2}}, r"warm_start.auto.max_share: expected a fraction"),
    ({"paramz": []}, r"warm_start: unknown key 'paramz'; expected one of auto, out_of_space, params, studies. Did you mean 'params'"),
    ({"out_of_space": "ignore"}, r"warm_start.out_of_space: expected error or clip"),
    ({"studies": [{"study": "a", "take": "worst"}]}, r"take: expected best or pareto"),
    ({"auto": {"strategy": "best"}}, r"warm_start.auto.strategy: expected one of round_robin, consensus, coverage"),
    (42, r"warm_start: expected 'auto' or a mapping"),
])
def test_warm_start_schema_errors(raw, match):
    with pytest.raises(SpecError, match=match):
        parse_warm_start(raw)


def test_auto_shorthand_and_budget_share():
    auto = parse_warm_start("auto").auto
    assert auto.size(200) == 10 and auto.size(40) == 10 and auto.size(8) == 2 and auto.size(None) == 10
    assert auto.strategy == "adaptive" and auto.neighbors == 16


def _trials(study):
    return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


def test_with_several_objectives_a_warm_trial_is_ranked_by_dominance_not_by_the_first():
    """Ranked by the first objective, a dominated warm trial was called the best (#0 "ranked 5"
    while #1 was on the front); infeasible trials were ranked too."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from tuneops.knowledge.warm_start import TAG, warm_start_section

    study = optuna.create_study(directions=["maximize", "minimize"])
    rows = [  # (accuracy, size, warm source, feasible)
        (0.90, 400.0, "kb:portfolio#0", True),  # dominated by trial 3 (0.91, 100)
        (0.85, 50.0, "kb:portfolio#1", True),  # on the front: the smallest
        (0.99, 10.0, None, False),  # infeasible: it ranks nothing
        (0.91, 100.0, None, True),
        (0.80, 500.0, None, True),
    ]
    for accuracy, size, source, feasible in rows:
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                values=[accuracy, size],
                user_attrs={TAG: source} if source else {},
                system_attrs={"constraints": [0.0 if feasible else 1.0]},
            )
        )
    section = warm_start_section(study, study.get_trials(deepcopy=False))
    assert section["ranking"] == "pareto" and section["n_ranked"] == 4
    assert {t["number"]: t["rank"] for t in section["trials"]} == {0: 2, 1: 1}
    assert section["best_warm_trial"] == 1 and section["n_on_front"] == 1
    assert "1 of 2 on the Pareto front of the 4 feasible trials (best warm trial #1)" in (
        section["summary"]
    )


def test_an_abandoned_warm_trial_is_retried_as_a_warm_trial_and_counted_once():
    """A warm trial interrupted (Ctrl-C) and resumed: its retry ran untagged, the summary said
    "warm start: 4 trials ...; none completed feasible" of a portfolio configuration whose retry
    completed second best of the study, and counted that retry as the best other trial (audit)."""
    from tuneops import _optuna, runner
    from tuneops.knowledge.warm_start import TAG, warm_start_section

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"x": 0.9}, user_attrs={TAG: "params[0]"})
    study.enqueue_trial({"x": 0.1}, user_attrs={TAG: "params[1]"})
    runner.set_budget(study, 3)
    first = runner.next_trial(study)
    first.suggest_float("x", 0.0, 1.0)
    runner.abandon(study, _optuna.read_trial(study, first), "interrupted (SIGINT)")

    def objective(trial: optuna.Trial) -> float:  # the new trial scores at most 0.5
        return trial.suggest_float("x", 0.0, 1.0) * (1.0 if TAG in trial.user_attrs else 0.5)

    while (trial := runner.next_trial(study)) is not None:
        runner.run_trial(study, trial, objective)
    trials = study.get_trials(deepcopy=False)
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == 0)
    assert retry.params == {"x": 0.9} and retry.user_attrs[TAG] == "params[0]"
    section = warm_start_section(study, trials)
    assert section["n_enqueued"] == 2 and section["n_complete"] == 2
    assert sorted(t["number"] for t in section["trials"]) == sorted([1, retry.number])
    assert section["best_warm_trial"] == retry.number and section["best_rank"] == 1
    assert section["best_cold_value"] < 0.5  # the new trial, not the warm configuration's retry
    assert section["first_value"] == 0.9 and section["first_rank"] == 1  # params[0], retried
    assert section["summary"].startswith("warm start: 2 trials (2 given); best warm trial")


def test_warm_start_trials_are_tagged_completed_and_counted_in_the_budget(workdir):
    from tuneops.tuning import run

    spec = tiny_spec(n_trials=4, warm_start={"params": [{"n_neighbors": 7, "weights": "distance", "p": 1},
                                                        {"n_neighbors": 3}]})
    result = run(spec)
    trials = _trials(result.study)
    assert len(trials) == 4  # the two warm-start trials are part of n_trials, not extra
    assert [t.user_attrs.get("warm_start") for t in trials] == ["params[0]", "params[1]", None, None]
    assert trials[0].params == {"n_neighbors": 7, "weights": "distance", "p": 1}
    assert trials[1].params["n_neighbors"] == 3 and set(trials[1].params) == {"n_neighbors", "weights", "p"}
    section = result.results["warm_start"]
    assert section["n_enqueued"] == 2 and section["n_complete"] == 2
    assert [t["source"] for t in section["trials"]] == ["params[0]", "params[1]"]
    assert section["best_rank"] >= 1
    assert result.study.user_attrs["tuneops:meta_features"]["features"]["n_rows"] == 150.0
    # resuming with a bigger budget does not enqueue the warm start again
    again = run(spec, n_trials=5)
    assert sum("warm_start" in t.user_attrs for t in again.study.trials) == 2 and len(again.study.trials) == 5


@contextlib.contextmanager
def _enqueue_stopped_at(n: int, monkeypatch):
    """Within the block, the ``n``-th ``Study.enqueue_trial`` is interrupted (a Ctrl-C)."""
    real, calls = optuna.Study.enqueue_trial, []

    def enqueue(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "enqueue_trial", enqueue)
    try:
        yield
    finally:
        monkeypatch.setattr(optuna.Study, "enqueue_trial", real)


def test_a_warm_start_cut_short_while_queuing_is_completed_on_resume(workdir, monkeypatch, caplog):
    """A Ctrl-C (or a kill) among the enqueues of six given configurations lost the rest: the
    resumed run ran two of them and said "warm start: 2 trials (2 given)" (audit)."""
    from tuneops.tuning import run

    given = [{"n_neighbors": k} for k in (3, 5, 7, 9, 11, 13)]
    spec = tiny_spec(n_trials=8, warm_start={"params": given})
    with pytest.raises(KeyboardInterrupt), _enqueue_stopped_at(3, monkeypatch):
        run(spec)
    with caplog.at_level(logging.WARNING, logger="tuneops"):
        result = run(spec)
    assert "4 of its 6 configuration(s) were not queued" in caplog.text
    sources = [t.user_attrs.get("warm_start") for t in result.study.trials]
    assert sorted(s for s in sources if s) == [f"params[{i}]" for i in range(6)]
    assert len(result.study.trials) == 8


def test_out_of_space_is_an_error_with_nothing_written(workdir):
    from tuneops.tuning import run

    with pytest.raises(SpecError, match=r"warm_start.params\[0\]: n_neighbors=500: outside \[1, 50\].*out_of_space: clip"):
        run(tiny_spec(warm_start={"params": [{"n_neighbors": 500}]}))
    assert not (workdir / "tuneops.journal").exists() or not optuna.get_all_study_summaries(
        optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(workdir / "tuneops.journal"))))


def test_out_of_space_clip_warns_and_clips(workdir, caplog):
    from tuneops.tuning import run

    with caplog.at_level(logging.WARNING, logger="tuneops"):
        result = run(tiny_spec(n_trials=2, warm_start={"params": [{"n_neighbors": 500, "leaf_size": 3}],
                                                        "out_of_space": "clip"}))
    assert _trials(result.study)[0].params["n_neighbors"] == 50
    assert "outside [1, 50], set to 50" in caplog.text and "leaf_size: not searched" in caplog.text


def test_warm_start_from_an_earlier_study_and_several_families(workdir):
    from tuneops.tuning import run

    first = run(tiny_spec(study="first", n_trials=3))
    best = max(first.study.best_trials, key=lambda t: t.values[0])
    spec = tiny_spec(study="second", n_trials=3, model={"family": ["knn", "linear"]},
                     warm_start={"studies": ["first"], "params": [{"family": "linear", "C": 1.0}]})
    trials = _trials(run(spec).study)
    assert trials[0].user_attrs["warm_start"] == "params[0]"
    assert trials[0].params == {"family": "linear", "linear.C": 1.0}
    assert trials[1].user_attrs["warm_start"] == f"study:first#{best.number}"
    assert trials[1].params == {"family": "knn", **{f"knn.{k}": v for k, v in best.params.items()}}
    with pytest.raises(StudyNotFound, match="warm_start.studies: no study 'nope'"):
        run(tiny_spec(study="third", warm_start={"studies": ["nope"]}))
    with pytest.raises(SpecError, match=r"name the family of each configuration"):
        run(tiny_spec(study="fourth", model={"family": ["knn", "linear"]}, warm_start={"params": [{"C": 1.0}]}))


def test_auto_warm_start_uses_past_studies_in_the_storage(workdir):
    from tuneops.tuning import run

    run(tiny_spec(study="past", n_trials=4))  # iris, knn: now part of the knowledge base
    spec = tiny_spec(study="new", n_trials=8, data={"source": "sklearn:wine"},
                     warm_start={"auto": {"sources": ["storage"], "max_share": 0.25}})
    result = run(spec)
    tags = [t.user_attrs.get("warm_start") for t in _trials(result.study)]
    assert tags[0] == "kb:portfolio#1 (robust default; from sklearn:iris#1)"
    assert len(result.study.trials) == 8
    assert sum(t is not None for t in tags) <= 2  # at most 25% of 8


# -- the CLI ------------------------------------------------------------------------------------
def test_kb_commands(workdir, cli):
    from tuneops.tuning import run

    run(tiny_spec(study="mine", n_trials=3))
    code, out, _ = cli("kb", "list", "--source", "storage")
    assert code == 0 and "sklearn:iris" in out and "knn" in out
    header = next(line.split() for line in out.splitlines() if line.startswith("dataset"))
    assert header == ["dataset", "family", "task", "best", "source"]  # as the docs say
    assert "classification" in out
    code, out, _ = cli("kb", "export", "team.json.gz")
    assert code == 0 and "1 entries" in out
    code, out, _ = cli("kb", "import", "team.json.gz", "--storage", "other.journal")
    assert code == 0
    code, out, err = cli("kb", "import", "team.json.gz", "--prefix", "bad prefix!")
    assert code == 2 and "prefix (--prefix): expected letters" in err
    code, out, _ = cli("kb", "show", "sklearn:iris", "--storage", "other.journal", "--source", "storage")
    assert code == 0 and "n_rows=150" in out and "#1 accuracy=" in out
    code, out, _ = cli("kb", "recommend", "--data", "sklearn:wine", "--family", "knn", "--source", "team.json.gz", "--size", "2")
    assert code == 0 and "sklearn:iris #1" in out
    code, out, err = cli("kb", "show", "no_such_data", "--source", "team.json.gz")
    assert code == 2 and "no entry for 'no_such_data'" in err
    code, out, err = cli("kb", "list", "--family", "knnn")  # it listed nothing, exit 0
    assert code == 2 and "Did you mean 'knn'?" in err
    code, out, err = cli("kb", "recommend", "--data", "sklearn:diabetes", "--family", "knn",
                         "--source", "team.json.gz")
    assert code == 2 and "no entry for family 'knn' on regression tasks (it holds " in err
    code, out, err = cli("kb", "build", "--dataset", "no_such_set", "--family", "knn",
                         "--n-trials", "2", "--out", "none.json.gz")
    assert code == 2 and "no entry was built" in err and not (workdir / "none.json.gz").exists()
    code, out, _ = cli("kb", "list")  # shipped + storage
    assert code == 0 and "pmlb:iris" in out
    # the entries of this tuneops' runs carry its fit-time definition: nothing to say; the
    # shipped base's were measured by an earlier one, said where they are shown
    code, out, err = cli("kb", "show", "sklearn:iris", "--source", "storage")
    assert code == 0 and "fit times (cost.fit_s)" not in out + err
    code, out, err = cli("kb", "show", "iris", "--source", "shipped")
    assert code == 0 and "were measured by another definition than this tuneops' fit_time_s" in (
        " ".join((out + err).split()))
    assert json.loads(__import__("gzip").decompress((workdir / "team.json.gz").read_bytes()))["entries"][0]["family"] == "knn"


def test_kb_build_records_entries_and_provenance(workdir, cli):
    code, out, _ = cli("kb", "build", "--dataset", "iris", "--family", "knn", "--n-trials", "3",
                       "--cv-folds", "2", "--out", "kb.json.gz", "--checkpoint", "kb.jsonl")
    assert code == 0, out
    kb = load_file(workdir / "kb.json.gz")
    (entry,) = kb.entries
    assert (entry.dataset, entry.family, entry.metric) == ("pmlb:iris", "knn", "accuracy")
    assert len(entry.history) == 3 and entry.best_score == max(entry.history)
    assert entry.meta_features["n_rows"] == 150.0
    assert kb.built_with["datasets"] == ["iris"] and kb.built_with["n_trials"] == 3
    assert kb.built_with["built"] == {"knn": 1}
    # the defaults' score on the same folds, what the zero-shot first pick should beat
    from tuneops.knowledge.build import default_score

    assert entry.default_score == default_score("iris", "knn", cv_folds=2, seed=0)
    assert 0.8 < entry.default_score <= 1.0 and "default_scores" in kb.built_with
    # a rerun resumes from the checkpoint instead of tuning again
    code, out, _ = cli("kb", "build", "--dataset", "iris", "--family", "knn", "--n-trials", "3",
                       "--cv-folds", "2", "--out", "kb2.json.gz", "--checkpoint", "kb.jsonl")
    assert code == 0 and "0 jobs to run (1 from the checkpoint)" in out


def test_an_older_base_gains_the_default_scores_without_tuning_again(tmp_path):
    from tuneops.knowledge.build import add_default_scores, default_score

    meta = {f: 0.5 for f in FEATURES}
    kb = KnowledgeBase((
        _entry("pmlb:iris", meta),
        Entry("pmlb:tae", "classification", "knn", "accuracy", "maximize", meta,
              (({"n_neighbors": 5}, 0.5),), default_score=0.25),  # measured already: kept
        _entry("pmlb:lymphography", meta),  # a class too rare for 3 folds: no default, said so
    ), {"cv_folds": 3, "seed": 0})
    lines = []
    out = add_default_scores(kb, log=lines.append)
    iris, tae, lymph = out.entries
    assert iris.default_score == default_score("iris", "knn", cv_folds=3, seed=0) > 0.9
    assert tae.default_score == 0.25 and lymph.default_score is None
    assert "2 entries to score" in lines[0] and any("lymphography/knn: FAILED" in x for x in lines)
    assert iris.configs == kb.entries[0].configs and "default_scores" in out.built_with
    out.save(tmp_path / "kb.json.gz")
    assert [e.default_score for e in load_file(tmp_path / "kb.json.gz")] == [
        iris.default_score, 0.25, None]
    # a base from before default scores reads as it did
    assert "default_score" not in kb.entries[0].to_dict()


# -- the zero-shot warm start (issue 18): what it says, serving costs, the shipped base ----------
def _rf_base(path):
    deep = {"n_estimators": 300, "max_depth": 32, "min_samples_leaf": 1, "max_features": 1.0}
    robust = {"n_estimators": 100, "max_depth": 8, "min_samples_leaf": 3, "max_features": 0.3}
    small = {"n_estimators": 12, "max_depth": 4, "min_samples_leaf": 5, "max_features": 0.3}
    entries = []
    for i, (name, scores) in enumerate({"a": (0.95, 0.80, 0.795), "b": (0.70, 0.90, 0.898),
                                        "c": (0.72, 0.88, 0.878), "d": (0.70, 0.85, 0.85)}.items()):
        configs = sorted(zip((deep, robust, small), scores, strict=True), key=lambda c: -c[1])
        entries.append(Entry(f"pmlb:{name}", "classification", "random_forest", "accuracy",
                             "maximize",
                             {f: 0.1 * i for f in FEATURES}, tuple(configs), history=scores))
    KnowledgeBase(tuple(entries)).save(str(path))
    return deep, robust, small


def test_the_warm_start_says_what_it_proposed_and_how_it_did(workdir, caplog):
    import re

    from tuneops.tuning import run

    path = workdir / "kb.json"
    _, robust, _ = _rf_base(path)
    auto = {"sources": [str(path)], "max_trials": 3, "max_share": 1.0}
    with caplog.at_level(logging.INFO, logger="tuneops"):
        result = run(tiny_spec(n_trials=4, model={"family": "random_forest"},
                               warm_start={"auto": auto}))
    lines = [r.getMessage() for r in caplog.records
             if r.name == "tuneops.status" and r.getMessage().startswith("warm start:")]
    assert len(lines) == 1
    assert re.match(r"warm start: up to 3 configurations from 4 similar datasets \(nearest: pmlb:\w, "
                    r"pmlb:\w, pmlb:\w\) for random_forest: first the robust default of "
                    r"random_forest's zero-shot portfolio \(n_estimators=100, max_depth=8, "
                    r"min_samples_leaf=3, max_features=0.3\) and 2 more of it", lines[0]), lines[0]
    trials = _trials(result.study)
    assert trials[0].params == robust  # the configuration best on average over the four tasks
    section = result.results["warm_start"]
    assert section["n_portfolio"] == 3 and section["first_rank"] >= 1 and section["neighbours"]
    # a share of the budget that rounds to no trial is said (it was silent)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tuneops"):
        run(tiny_spec(study="none", n_trials=4, model={"family": "random_forest"},
                      warm_start={"auto": {**auto, "max_share": 0.1}}))
    assert "warm_start.auto: no trial of the budget is left for it (max_share 0.1 of n_trials 4" in (
        caplog.text
    )
    summary = section["summary"]
    assert re.match(r"warm start: 3 trials \(3 portfolio\); best warm trial #\d ranked \d of 4 "
                    r"\([\d.]+ vs [\d.]+ for the best other trial\); first warm trial [\d.]+, "
                    r"ranked \d", summary), summary


def test_the_announced_plan_is_the_order_the_sampler_takes_with_several_families():
    from tuneops.knowledge.warm_start import describe_plan

    def fam(head, first):
        return {"head": head, "candidates": [first, {"c": 2}, {"c": 3}]}

    rf, hgb, lin = fam([0, 1], {"n_estimators": 58}), fam([0], {"lr": 0.1}), fam([], {"C": 1.0})
    # one family: its head, then the adaptive choice
    assert describe_plan({"random_forest": rf}, ["random_forest"], 3) == (
        "first the robust default of random_forest's zero-shot portfolio (n_estimators=58) and 1 "
        "more of it, then each chosen after the results so far")
    # several: trial p goes to family p % 3 (it read 'random_forest's ... and 2 more of it' when
    # the 2 more were the other families' defaults); linear has no head: chosen adaptively
    plans = {"random_forest": rf, "hist_gradient_boosting": hgb, "linear": lin}
    order = list(plans)
    assert describe_plan(plans, order, 2) == (
        "the robust default of each family's zero-shot portfolio in turn: random_forest "
        "(n_estimators=58), then hist_gradient_boosting")
    assert describe_plan(plans, order, 4) == (
        "the robust default of each family's zero-shot portfolio in turn: random_forest "
        "(n_estimators=58), then hist_gradient_boosting, and 1 more from their portfolios, then "
        "each chosen after the results so far")
    assert describe_plan({"linear": lin}, ["linear"], 2) == "each chosen after the results so far"


def test_tuneops_run_prints_how_the_warm_start_did(workdir, cli):
    import yaml

    path = workdir / "kb.json"
    _rf_base(path)
    auto = {"sources": [str(path)], "max_trials": 2, "max_share": 1.0}
    spec = tiny_spec(n_trials=3, model={"family": "random_forest"}, warm_start={"auto": auto})
    (workdir / "spec.yaml").write_text(yaml.safe_dump(spec))
    code, out, err = cli("run", "spec.yaml", "--no-report", "--no-progress")
    assert code == 0
    assert "Warm start: 2 trials (2 portfolio); best warm trial #" in out, out
    # what it proposes is said before the first trial, without -v (it was an INFO log line)
    assert "warm start: up to 2 configurations from 4 similar datasets (nearest: pmlb:" in err, err
    assert cli("--quiet", "run", "spec.yaml", "--no-report", "--no-progress")[2] == ""


def test_a_spec_that_minimises_a_serving_cost_starts_from_cheap_configurations(workdir, caplog):
    from tuneops.knowledge.warm_start import serving_cost_weight
    from tuneops.spec import load_spec
    from tuneops.tuning import run

    assert serving_cost_weight(load_spec(tiny_spec()).objectives) == 0.0
    def weight(objectives):
        return serving_cost_weight(load_spec(tiny_spec(objectives=objectives)).objectives)

    assert weight(["accuracy", "fit_time_s"]) == 0.0  # a training cost, not a serving one
    assert weight(["accuracy", "model_size_kb"]) == 0.5
    path = workdir / "kb.json"
    _, robust, small = _rf_base(path)
    auto = {"sources": [str(path)], "max_trials": 1, "max_share": 1.0}
    with caplog.at_level(logging.INFO, logger="tuneops"):
        result = run(tiny_spec(n_trials=2, model={"family": "random_forest"},
                               warm_start={"auto": auto},
                               objectives=["accuracy", "model_size_kb"]))
    assert _trials(result.study)[0].params == small  # nearly as good as `robust`, much smaller
    assert "preferring configurations cheap to serve" in caplog.text


def test_explicit_configurations_are_announced_too(workdir, caplog):
    from tuneops.tuning import run

    with caplog.at_level(logging.INFO, logger="tuneops"):
        run(tiny_spec(n_trials=2, warm_start={"params": [{"n_neighbors": 7}]}))
    assert "warm start: 1 configuration(s) from params[0]" in caplog.text


def test_a_regression_spec_gets_its_zero_shot_warm_start_from_the_shipped_base(workdir, caplog):
    from tuneops.tuning import run

    spec = tiny_spec(n_trials=8, data={"source": "sklearn:diabetes"}, objectives=["r2"],
                     model={"family": "random_forest"}, warm_start="auto")
    with caplog.at_level(logging.INFO, logger="tuneops"):
        result = run(spec)
    lines = [r.getMessage() for r in caplog.records
             if r.name == "tuneops.status" and r.getMessage().startswith("warm start:")]
    assert len(lines) == 1 and "for random_forest" in lines[0], lines
    assert "similar datasets" in lines[0] and "pmlb:" in lines[0]
    first = _trials(result.study)[0]
    assert first.user_attrs.get("warm_start"), first.user_attrs  # a proposal, not TPE's draw
    assert result.results["warm_start"]["n_portfolio"] >= 1


def test_the_shipped_base_covers_every_default_family_with_distinct_configurations():
    assert SHIPPED_PATH.stat().st_size < 5 * 1024 * 1024
    kb = load_shipped()
    assert set(DEFAULT_FAMILIES) <= {e.family for e in kb}
    built = kb.built_with
    # what it was built from
    families = set().union(*(b.get("families", ()) for b in _builds(built)))
    assert built["datasets"] and families >= set(DEFAULT_FAMILIES) - {"knn", "svm"}
    assert built["n_trials"] and built["seed"] == 0 and built["cv_folds"] == 3
    assert {"optuna", "scikit-learn", "lightgbm", "xgboost"} <= set(built["versions"])
    # the earlier 200-trial knn/svm runs are kept
    assert any(b.get("built", {}).get("svm", 0) >= 30 for b in _builds(built)[1:])
    # both tasks, every default family: regression specs get a zero-shot warm start too
    for task in ("classification", "regression"):
        for family in DEFAULT_FAMILIES:
            entries = kb.select(family=family, task=task)
            assert len(entries) >= 10, (family, task)
            # the entries together cover the space: a build whose every dataset drew the same
            # seeded start-up trials gave XGBoost, extra trees and MLP 8 configurations in all
            distinct = {tuple(sorted(map(str, params.items()))) for e in entries
                        for params, *_ in e.configs}
            assert len(distinct) >= 15, (family, task, len(distinct))
    for entry in kb:
        assert len(dedupe(entry.configs)[0]) == len(entry.configs), entry.key  # distinct only
    # entries of this build record each configuration's serving-cost proxy and fit time (an
    # entry kept from an earlier build may not)
    new = [e for e in kb if e.family not in ("knn", "svm") and e.costs]
    for family in set(DEFAULT_FAMILIES) - {"knn", "svm"}:
        assert sum(e.family == family for e in new) >= 10, family
    assert all(len(e.costs) == len(e.configs) and "fit_s" in e.costs[0] for e in new)
    # built before fit_version was recorded, with fit_time_s's definition 2 (CPU seconds of
    # every fit): read as such, so never compared with the fit times of this tuneops
    assert {c["fit_version"] for e in new for c in e.costs} == {UNVERSIONED_FIT} == {2}
    assert all(t is None for e in new for t in e.fit_times())
    assert "read as version 2" in kb.fit_time_note()


def test_the_rest_of_a_warm_start_queue_is_told_by_place_not_by_source(monkeypatch):
    """Two families' portfolios can both draw "kb:pmlb:pima#1": matched by source, the second
    configuration counted as queued when only the first was (audit of the resume)."""
    from tuneops.knowledge.warm_start import queue, queue_the_rest

    study = optuna.create_study()
    items = [({"family": "knn"}, "kb:pmlb:pima#1"), ({"family": "linear"}, "kb:pmlb:pima#1")]
    with pytest.raises(KeyboardInterrupt), _enqueue_stopped_at(2, monkeypatch):
        queue(study, items)
    assert queue_the_rest(study, study.get_trials()) == ["kb:pmlb:pima#1"]
    assert [t.system_attrs["fixed_params"] for t in study.get_trials()] == [
        {"family": "knn"}, {"family": "linear"}]
    assert queue_the_rest(study, study.get_trials()) == []


@pytest.mark.parametrize("gzipped", [True, False])
def test_a_knowledge_base_file_beyond_its_bound_is_refused_unread(tmp_path, monkeypatch, gzipped):
    """A .json.gz was decompressed whole before anything was checked: 100 KB of gzip inflate to
    100 MB (a 'zip bomb' passed around as a team's base) and all of it was held in memory."""
    import gzip

    from tuneops.errors import DataError
    from tuneops.knowledge import base

    monkeypatch.setattr(base, "MAX_KB_BYTES", 10_000)
    document = json.dumps({"entries": []}) + " " * 20_000  # valid JSON beyond the bound
    path = tmp_path / ("kb.json.gz" if gzipped else "kb.json")
    path.write_bytes(gzip.compress(document.encode()) if gzipped else document.encode())
    expected = "more than 0 MB of JSON" + (" once decompressed" if gzipped else ";")
    with pytest.raises(DataError, match=expected):
        load_file(path)
    path.write_bytes(gzip.compress(b'{"entries": []}') if gzipped else b'{"entries": []}')
    assert load_file(path).entries == ()
    if gzipped:  # cut short (a copy that stopped): an EOFError and a traceback before
        path.write_bytes(gzip.compress(b'{"entries": []}')[:-6])
        with pytest.raises(DataError, match="is not readable JSON"):
            load_file(path)


@pytest.mark.parametrize("document, expected", [
    ({"entries": 5}, "expected an object with a list of 'entries' .* and 'entries' a int"),
    ({"entries": [{"dataset": "iris"}]}, r"knowledge base '.*kb.json', entry 1 of 1: knowledge "
     r"base entry 'iris': expected keys .*KeyError\('task'\)\. What to do: write the file again"),
])
def test_a_damaged_knowledge_base_file_names_the_file_and_the_entry(
    workdir, cli, document, expected
) -> None:
    """A list of entries that was not a list raised a TypeError traceback (`kb import`); a
    damaged entry was named without its file."""
    (workdir / "kb.json").write_text(json.dumps(document))
    code, _, err = cli("kb", "import", "kb.json")
    assert code == 2 and "Traceback" not in err, err
    assert re.search(expected, " ".join(err.split())), err


def test_kb_recommend_reads_codes_as_categories_as_the_run_would(workdir, cli):
    """`kb recommend` had no way to say a column of numbers holds codes: a dataset tuned with
    data.categorical was placed among past tasks by meta-features of quantities (helper A:
    contraceptive at distance 0.657, farther than other sets)."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame["region"] = np.arange(len(frame)) % 7 * 10  # codes, not a quantity
    frame.to_csv("coded.csv", index=False)
    common = ("kb", "recommend", "--data", "coded.csv", "--target", "target", "--family", "knn",
              "--json")
    code, plain_out, err = cli(*common)
    assert code == 0, err
    code, coded_out, err = cli(*common, "--categorical", "region")
    assert code == 0, err
    as_numbers = [n["distance"] for n in json.loads(plain_out)["nearest"]]
    as_codes = [n["distance"] for n in json.loads(coded_out)["nearest"]]
    assert as_numbers != as_codes  # other meta-features, other distances
    code, _, err = cli(*common, "--categorical", "regoin")
    assert code == 2 and "regoin" in err and "region" in err


def test_kb_recommend_names_its_options_in_a_data_error(workdir, cli):
    """A data error of `kb recommend` named the spec's fields, which its user never wrote
    ('data.categorical: ... Fix the name in data.categorical.' for --categorical regoin)."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame["region"] = np.arange(len(frame)) % 7
    frame.to_csv("coded.csv", index=False)
    common = ("kb", "recommend", "--family", "knn", "--target", "target")
    for args, named in (
        (("--data", "coded.csv", "--categorical", "regoin"), "categorical (--categorical): "),
        (("--data", "coded.csv", "--categorical", "declared"), "categorical (--categorical): "),
        (("--data", "missing.csv"), "data (--data): "),
    ):
        code, _, err = cli(*common, *args)
        assert code == 2 and named in err and "data." not in err, (args, err)
    code, _, err = cli(*common, "--data", "coded.csv", "--categorical", "regoin")
    assert "Fix the name in --categorical." in err


def test_the_warm_start_summary_of_one_trial_says_trial():
    from tuneops.knowledge.warm_start import _summary

    section = {"n_enqueued": 1, "n_portfolio": 0, "n_adaptive": 0, "n_kb": 0, "best_rank": None}
    assert _summary(section) == "warm start: 1 trial (1 given); none completed feasible"
    assert _summary({**section, "n_enqueued": 2}).startswith("warm start: 2 trials (2 given)")
