from __future__ import annotations

import optuna
import pytest

from tuneops.space import parse_space, space_to_dict, suggest_params


def test_kinds_and_conditions():
    space = parse_space(
        {
            "kernel": ["rbf", "poly"],
            "degree": {"type": "int", "low": 2, "high": 5, "when": {"kernel": "poly"}},
            "C": {"low": 1e-3, "high": 10.0, "log": True},
            "shrinking": {"value": True},
            "tol": {"low": 0.0, "high": 1.0, "step": 0.25},
        },
        "model.space",
    )
    assert space["C"].kind == "float" and space["degree"].kind == "int"
    rbf = suggest_params(optuna.trial.FixedTrial({"kernel": "rbf", "C": 1.0, "tol": 0.5}), space)
    assert rbf == {"kernel": "rbf", "C": 1.0, "shrinking": True, "tol": 0.5}
    poly = suggest_params(optuna.trial.FixedTrial({"kernel": "poly", "degree": 3, "C": 1.0, "tol": 0.5}), space)
    assert poly["degree"] == 3
    assert parse_space(space_to_dict(space), "x") == space


def test_conditional_parameters_in_a_real_study():
    space = parse_space({"a": ["x", "y"], "b": {"low": 0.0, "high": 1.0, "when": {"a": "y"}}}, "s")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: sum(v for v in suggest_params(t, space).values() if isinstance(v, float)), n_trials=20)
    for t in study.trials:
        assert ("b" in t.params) == (t.params["a"] == "y")


def test_prefix_namespaces_parameters():
    space = parse_space({"k": {"type": "int", "low": 1, "high": 3}}, "s")
    trial = optuna.trial.FixedTrial({"knn.k": 2})
    assert suggest_params(trial, space, prefix="knn.") == {"k": 2}


@pytest.mark.parametrize("raw, message", [
    ({"x": []}, "non-empty list"),
    ({"x": {"low": 1}}, r"x.high: expected a finite number"),
    ({"x": {"low": 1, "high": 2, "step": 0.5, "log": True}}, "positive step without log"),
    ({"x": {"type": "int", "low": 1.5, "high": 3}}, "integer bounds"),
    ({"x": {"lo": 1}}, "unknown key"),
])
def test_bad_parameters(raw, message):
    from tuneops.errors import SpecError

    with pytest.raises(SpecError, match=message):
        parse_space(raw, "model.space")


def test_a_conditional_default_parameter_follows_the_parent_the_spec_adds():
    """`max_depth: {when: {criterion: gini}}` kept the default space's place of max_depth,
    ahead of the new `criterion`: suggested before its parent, it was never active, and no
    gini trial ever had a max_depth (audit)."""
    import optuna

    from tuneops.families import get_family
    from tuneops.space import parse_space, suggest_params

    overrides = parse_space(
        {"criterion": ["gini", "entropy"],
         "max_depth": {"type": "int", "low": 2, "high": 8, "when": {"criterion": "gini"}}},
        "model.space.random_forest",
    )
    space = get_family("random_forest").space("classification", overrides)
    names = list(space)
    assert names.index("criterion") < names.index("max_depth")
    chosen = suggest_params(
        optuna.trial.FixedTrial({"n_estimators": 10, "min_samples_leaf": 1, "max_features": 0.5,
                                 "criterion": "gini", "max_depth": 5}), space)
    assert chosen["max_depth"] == 5
    entropy = suggest_params(
        optuna.trial.FixedTrial({"n_estimators": 10, "min_samples_leaf": 1, "max_features": 0.5,
                                 "criterion": "entropy"}), space)
    assert "max_depth" not in entropy
