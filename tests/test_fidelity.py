"""The fidelity contract, run against every model family: monotone steps, pruned trials stop."""

from __future__ import annotations

import time

import numpy as np
import optuna
import pytest

from tuneops.data import load_dataset
from tuneops.families import FAMILIES, FIDELITY_STEPS, build_pipeline, get_family
from tuneops.objective import SpecObjective
from tuneops.pruning import FIDELITY_ATTR
from tuneops.spec import load_spec

# Small but real budgets: enough trees/rounds/epochs that every step adds some.
SMALL = {"n_estimators": 24, "max_iter": 24, "width": 8, "n_layers": 1, "n_neighbors": 5}


class Never(optuna.pruners.BasePruner):
    """Prunes nothing; makes the objective train and report step by step."""

    def prune(self, study, trial):
        return False


def _params(name: str) -> dict:
    params = {}
    for p in get_family(name).default_space("classification").values():
        if p.name in SMALL:
            params[p.name] = min(max(SMALL[p.name], p.low), p.high)
        elif p.kind == "categorical":
            params[p.name] = p.choices[0]
        elif p.log:
            params[p.name] = type(p.low)(np.sqrt(p.low * p.high))
        else:
            params[p.name] = type(p.low)((p.low + p.high) / 2)
    return params


def _trained(estimator, state) -> int:
    """How much the estimator has trained: trees, rounds, epochs or rows."""
    if hasattr(estimator, "estimators_"):
        return len(estimator.estimators_)
    if hasattr(estimator, "booster_"):
        return estimator.booster_.current_iteration()
    if hasattr(estimator, "get_booster"):
        return estimator.get_booster().num_boosted_rounds()
    if hasattr(estimator, "loss_curve_"):  # MLP: one entry per epoch, across partial_fit calls
        return len(estimator.loss_curve_)
    if hasattr(estimator, "n_iter_") and estimator.__class__.__name__.startswith("Hist"):
        return int(estimator.n_iter_)
    return state.get("rows", 0)


@pytest.fixture(scope="module")
def data():
    return load_dataset("sklearn:breast_cancer")


def _objective(name: str, data, **search):
    spec = load_spec({
        "study": f"fid-{name}", "data": {"source": "sklearn:breast_cancer"}, "model": {"family": name},
        "objectives": ["accuracy"], "search": {"cv_folds": 2, "n_trials": 1, **search},
    })
    return SpecObjective(spec, data)


def _spy(monkeypatch, name: str) -> list[tuple[float, int]]:
    calls: list[tuple[float, int]] = []
    cls = FAMILIES[name]
    original = cls.advance

    def advance(self, estimator, X, y, fraction, state):
        original(self, estimator, X, y, fraction, state)
        calls.append((fraction, _trained(estimator, state) or len(X)))

    monkeypatch.setattr(cls, "advance", advance)
    return calls


def _run(objective, name: str, pruner) -> optuna.trial.FrozenTrial:
    study = optuna.create_study(direction="maximize", pruner=pruner, study_name=f"fid-{name}")
    study.enqueue_trial(_params(name))
    study.optimize(objective, n_trials=1)
    return study.trials[0]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_reports_monotone_steps(name, data, monkeypatch):
    calls = _spy(monkeypatch, name)
    trial = _run(_objective(name, data), name, Never())
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert list(trial.intermediate_values) == list(FIDELITY_STEPS)  # each step reported once
    fractions = [f for f, _ in calls]
    n_folds = 2
    assert fractions == [s / FIDELITY_STEPS[-1] for s in FIDELITY_STEPS for _ in range(n_folds)]
    per_fold = [[amount for (_, amount) in calls[i::n_folds]] for i in range(n_folds)]
    for amounts in per_fold:
        assert amounts == sorted(amounts) and amounts[0] < amounts[-1], (name, amounts)
    assert get_family(name).fidelity in ("rounds", "trees", "epochs", "fraction")
    assert trial.user_attrs[FIDELITY_ATTR]["steps"] == list(FIDELITY_STEPS)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_pruned_trial_stops_training(name, data, monkeypatch):
    calls = _spy(monkeypatch, name)
    # accuracy is always below 2: pruned at the first step the pruner may act on (the second)
    second = FIDELITY_STEPS[1]
    trial = _run(_objective(name, data), name, optuna.pruners.ThresholdPruner(lower=2.0, n_warmup_steps=2))
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [1, second]
    assert max(f for f, _ in calls) == second / FIDELITY_STEPS[-1]  # nothing trained past it
    assert trial.user_attrs[FIDELITY_ATTR]["steps"] == [1, second]
    assert trial.user_attrs[FIDELITY_ATTR]["pruned"] is True


def test_final_model_does_not_depend_on_step_wise_training(data):
    """The last step is the fully trained model: same metrics with and without pruning."""
    objective = _objective("random_forest", data)
    stepped = _run(objective, "random_forest", Never())
    straight = _run(objective, "random_forest", optuna.pruners.NopPruner())
    assert stepped.value == straight.value
    assert straight.user_attrs[FIDELITY_ATTR]["n_steps"] == 1  # trained straight through
    # and the forest grown by warm start equals one fitted at once
    fam = get_family("random_forest")
    X, y = data.X, data.y
    grown = fam.fit(build_pipeline(fam, _params("random_forest"), "classification", 0, numeric=data.numeric, categorical=()), X, y)
    once = build_pipeline(fam, _params("random_forest"), "classification", 0, numeric=data.numeric, categorical=()).fit(X, y)
    assert np.array_equal(grown.predict_proba(X), once.predict_proba(X))


def test_schedule_is_geometric_down_to_1_27_and_auto_rungs_fall_on_it():
    """Factor 3 from 1/27 of the budget: a first rung at 1/27 (issue 18), each step 3x the last."""
    from tuneops.pruning import make_pruner

    assert FIDELITY_STEPS == (1, 3, 9, 27)
    assert all(b == 3 * a for a, b in zip(FIDELITY_STEPS, FIDELITY_STEPS[1:], strict=False))
    spec_auto = make_pruner("auto", {"max_step": FIDELITY_STEPS[-1]}, n_trials=50, fidelity_schedule=True)
    assert spec_auto.rungs(27) == [3, 9]  # a spec's auto: rungs on its schedule


def test_spec_objective_prunes_at_the_auto_rungs(data):
    """A spec objective under ``auto`` (max_step declared by the schedule): a trial worse than
    the first is cut at auto's first rung (step 3: 1/9 of its trees), having trained nothing more."""
    from tuneops.pruning import make_pruner

    objective = _objective("random_forest", data)
    study = optuna.create_study(direction="maximize", study_name="fid-auto",
                                pruner=make_pruner("auto", n_trials=50, max_step=FIDELITY_STEPS[-1],
                                                   fidelity_schedule=True))
    good = {**_params("random_forest"), "max_depth": 8, "max_features": 0.5}
    bad = {**good, "max_depth": 2, "max_features": 0.05}
    study.enqueue_trial(good)
    study.enqueue_trial(bad)
    study.optimize(objective, n_trials=2)
    first, second = study.trials
    assert first.state == optuna.trial.TrialState.COMPLETE
    assert second.state == optuna.trial.TrialState.PRUNED
    assert second.user_attrs[FIDELITY_ATTR]["steps"] == [1, 3]


def test_wilcoxon_steps_are_folds(data):
    from tuneops.pruning import make_pruner

    objective = _objective("knn", data, pruner="wilcoxon")
    trial = _run(objective, "knn", make_pruner("wilcoxon"))
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert list(trial.intermediate_values) == [0, 1]  # one per CV fold


def _mixed_frame(seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = 240
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n) * 100,
            "colour": rng.choice(["red", "green", "blue", None], size=n),
        }
    )
    frame.loc[::7, "a"] = np.nan
    frame["target"] = np.where(frame["a"].fillna(0) + (frame["colour"] == "red") > 0.3, "yes", "no")
    return frame


@pytest.mark.parametrize("pruned", [False, True], ids=["straight through", "by steps"])
def test_a_fold_is_preprocessed_once_and_scores_as_its_own_pipeline_would(pruned, monkeypatch) -> None:
    """Later trials reuse each fold's fitted preprocessing (scaled and unscaled families apart)
    and score exactly what a pipeline fitted from scratch on the fold scores."""
    from sklearn.metrics import accuracy_score

    import tuneops.objective as objective_module

    data = load_dataset(_mixed_frame(), target="target", name="mixed")
    spec = load_spec({"data": {"source": "mixed"}, "model": {"family": ["knn", "random_forest"]},
                      "objectives": ["accuracy"], "search": {"n_trials": 1, "cv_folds": 3, "seed": 0}})
    objective = SpecObjective(spec, data)
    study = optuna.create_study(direction="maximize", pruner=Never() if pruned else optuna.pruners.NopPruner())
    configs = [("knn", {"n_neighbors": 5}), ("random_forest", {"n_estimators": 12}), ("knn", {"n_neighbors": 9})]

    def expected(family, params):  # scikit-learn's own pipeline, fitted from scratch per fold
        scores = []
        for train, test in objective.folds:
            model = objective.pipeline(family, dict(_params(family), **params))
            model.fit(data.X.iloc[train], data.y.iloc[train])
            scores.append(accuracy_score(data.y.iloc[test], model.predict(data.X.iloc[test])))
        return float(np.mean(scores))

    for family, params in configs:
        fixed = {"family": family, **{f"{family}.{k}": v for k, v in dict(_params(family), **params).items()}}
        study.enqueue_trial(fixed)
        study.optimize(objective, n_trials=1)
        assert study.trials[-1].value == pytest.approx(expected(family, params), abs=0)
    # knn scales and the forest does not: two preprocessings per fold, each fitted once
    assert sorted(objective._prepared) == [(f, s) for f in range(3) for s in (False, True)]
    fitted = objective.prepared(get_family("knn"), 0).pre
    assert objective.prepared(get_family("knn"), 0).pre is fitted
    # a copy elsewhere (a Ray worker) prepares its own folds; over the byte cap nothing is kept
    import pickle

    assert pickle.loads(pickle.dumps(objective))._prepared == {}
    monkeypatch.setattr(objective_module, "PREPARED_MAX_BYTES", 0)
    fresh = SpecObjective(spec, data)
    study.enqueue_trial({"family": "knn", **{f"knn.{k}": v for k, v in _params("knn").items()}})
    study.optimize(fresh, n_trials=1)
    assert fresh._prepared == {} and study.trials[-1].value == pytest.approx(expected("knn", {}), abs=0)


@pytest.mark.parametrize("name", sorted(n for n in FAMILIES if FAMILIES[n].fidelity == "fraction"))
def test_a_fraction_family_trained_straight_through_fits_once(name, data, monkeypatch):
    """With no pruner to read the steps (and at the final refit), the steps before the last
    are refits on fewer rows that would be thrown away: svm, knn and linear fitted four times
    per fold (audit of issue 15). One fit, the same model and the same score."""
    calls = _spy(monkeypatch, name)
    straight = _run(_objective(name, data), name, optuna.pruners.NopPruner())
    assert [f for f, _ in calls] == [1.0, 1.0]  # one fit per fold, on all the fold's rows
    stepped = _run(_objective(name, data), name, Never())
    assert stepped.value == straight.value
    fam = get_family(name)
    model = build_pipeline(fam, _params(name), "classification", 0, numeric=data.numeric,
                           categorical=())
    calls.clear()
    fitted = fam.fit(model, data.X, data.y)
    assert [f for f, _ in calls] == [1.0]
    stepwise = build_pipeline(fam, _params(name), "classification", 0, numeric=data.numeric,
                              categorical=())
    for _ in fam.fit_steps(stepwise, data.X, data.y):
        pass
    assert np.array_equal(fitted.predict(data.X), stepwise.predict(data.X))


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_fit_time_of_a_fraction_family_is_its_full_fit_whether_or_not_it_was_stepped(
    data, monkeypatch
):
    """``fit_time_s`` is what fitting the configuration costs: a fraction family trained step by
    step (for a pruner) refits on 1/27, 1/9, 1/3 and then all rows, and only the last fit is the
    model's; summing the four made linear 3-5x slower to fit with a pruner than without (audit)."""
    cls = FAMILIES["linear"]
    original = cls.advance

    def advance(self, estimator, X, y, fraction, state):  # a fit whose CPU grows with its rows
        original(self, estimator, X, y, fraction, state)
        _burn(0.05 * fraction)

    monkeypatch.setattr(cls, "advance", advance)
    straight = _run(_objective("linear", data), "linear", optuna.pruners.NopPruner())
    stepped = _run(_objective("linear", data), "linear", Never())
    fit = [t.user_attrs["metrics"]["fit_time_s"] for t in (straight, stepped)]
    assert fit[0] >= 0.05 and fit[1] == pytest.approx(fit[0], rel=0.2)  # the sum: 1.48x
    # the compute the stepped trial spent still counts every step
    spent = stepped.user_attrs[FIDELITY_ATTR]["fit_cpu_s_steps"][-1]
    assert spent >= 2 * 0.05 * (1 / 27 + 1 / 9 + 1 / 3 + 1)


def test_the_first_trial_of_a_worker_is_not_charged_for_preparing_the_folds(data):
    """A worker preprocesses each fold once, in its first trial; ``fit_time_s`` charges every
    trial its fold's preprocessing, so the first of two like trials no longer measures slower
    (audit: 0.0203 against 0.0038-0.0068 s), while the compute it spent counts it. (Two like,
    not identical, trials: the second of two identical ones fits nothing, tuneops.repeats.)"""
    objective = _objective("linear", data)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    params = _params("linear")
    for scale in (1.0, 1.01):
        study.enqueue_trial({**params, "C": params["C"] * scale})
    study.optimize(objective, n_trials=2)
    first, second = study.trials
    costs = [t.user_attrs["tuneops:cost"]["fit"] for t in (first, second)]
    assert costs[0]["preprocess_cpu_s"] == costs[1]["preprocess_cpu_s"]
    assert all(p > 0 for p in costs[0]["preprocess_cpu_s"])
    for t, cost in zip((first, second), costs):
        expected = np.mean(np.add(cost["cpu_s"], cost["preprocess_cpu_s"]))
        assert t.user_attrs["metrics"]["fit_time_s"] == pytest.approx(expected)
    spent = [t.user_attrs[FIDELITY_ATTR]["fit_cpu_s"] for t in (first, second)]
    assert spent[0] == pytest.approx(sum(costs[0]["cpu_s"]) + sum(costs[0]["preprocess_cpu_s"]), rel=0.5)
    assert spent[1] == pytest.approx(sum(costs[1]["cpu_s"]))
