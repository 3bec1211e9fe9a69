from __future__ import annotations

import pytest

from tuneops.errors import SpecError
from tuneops.spec import dump_spec, load_spec, parse_constraint
from conftest import EXAMPLES, tiny_spec


def test_examples_load_and_round_trip(tmp_path):
    for path in EXAMPLES.glob("*.yaml"):
        spec = load_spec(path)
        assert load_spec(spec.to_dict()) == spec
        out = dump_spec(spec, tmp_path / f"{path.stem}.yaml")
        assert load_spec(out) == spec


def test_toml_round_trip(tmp_path):
    spec = load_spec(EXAMPLES / "three_objectives.yaml")
    path = dump_spec(spec, tmp_path / "spec.toml")
    assert load_spec(path) == spec


def test_directions_default_from_metric_and_constraints_parse():
    spec = load_spec(tiny_spec(objectives=["accuracy", "latency_p95_ms"], constraints=["accuracy >= 0.9"]))
    assert spec.directions == ["maximize", "minimize"]
    assert spec.constraints[0].violation({"accuracy": 0.95}) == pytest.approx(-0.05)
    assert spec.measured_metrics == ["accuracy", "latency_p95_ms"]


def test_spec_is_immutable():
    spec = load_spec(tiny_spec())
    with pytest.raises(AttributeError):
        spec.n_trials = 3  # type: ignore[misc]


def test_overrides_go_to_search_fields():
    spec = load_spec(tiny_spec(), n_trials=7, n_workers=3, storage="x.journal")
    assert (spec.n_trials, spec.n_workers, spec.storage) == (7, 3, "x.journal")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"objectives": ["acuracy"]}, r"unknown metric 'acuracy'.*Did you mean 'accuracy'"),
        ({"model": {"family": "forest"}}, r"model.family: unknown model family 'forest'; expected one of"),
        ({"sampler": "tpee"}, r"search.sampler: unknown sampler 'tpee'.*Did you mean 'tpe'"),
        ({"pruner": "medain"}, r"search.pruner: unknown pruner 'medain'"),
        ({"constraints": ["accuracy => 0.9"]}, r"malformed constraint 'accuracy => 0.9'; expected 'METRIC OP NUMBER'"),
        ({"constraints": ["speed <= 3"]}, r"unknown metric 'speed'"),
        ({"n_trials": 0}, r"search.n_trials: expected an integer >= 1, received 0"),
        ({"cv_folds": 1}, r"search.cv_folds: expected an integer >= 2, received 1"),
        ({"objectives": [{"metric": "accuracy", "direction": "minimize"}]}, r"accuracy is better when it is maximized"),
        ({"data": {}}, r"data.source: expected a data source"),
        ({"colour": "red"}, r"spec: unknown key 'colour'"),
        ({"model": {"family": "knn", "space": {"n_neighbors": {"low": 5, "high": 1}}}}, r"expected low <= high"),
        ({"model": {"family": "knn", "space": {"n_neighbors": {"low": 0, "high": 5, "log": True}}}}, r"log scale needs low > 0"),
        ({"model": {"family": "knn", "space": {"p": {"type": "int", "low": 1, "high": 2, "when": {"metric": "x"}}}}}, r"parent parameter 'metric' must be defined before 'p'"),
        ({"selection": {"policy": "pareto"}}, r"unknown selection policy 'pareto'"),
        ({"selection": {"policy": "weighted", "weights": {"latency_p95_ms": 1}}}, r"'latency_p95_ms' is not an objective"),
    ],
)
def test_bad_specs_name_the_field(changes, message):
    with pytest.raises(SpecError, match=message):
        load_spec(tiny_spec(**changes))


def test_budget_needs_trials_or_timeout():
    raw = tiny_spec()
    raw["search"]["n_trials"] = None
    with pytest.raises(SpecError, match="set n_trials, timeout_s, or both"):
        load_spec(raw)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(SpecError, match="is not valid YAML"):
        load_spec(bad)


def test_constraint_parsing():
    c = parse_constraint("latency_p95_ms <= 50")
    assert (c.metric, c.op, c.threshold) == ("latency_p95_ms", "<=", 50.0)
    assert c.violation({"latency_p95_ms": 60}) == pytest.approx(10)
    assert str(c) == "latency_p95_ms <= 50"


def test_space_overrides_with_several_families():
    spec = load_spec(tiny_spec(model={
        "family": ["knn", "random_forest"],
        "space": {"random_forest": {"n_estimators": {"type": "int", "low": 5, "high": 20}}},
    }))
    assert spec.space["random_forest"]["n_estimators"].high == 20
    with pytest.raises(SpecError, match="'svm' is not one of the spec's families"):
        load_spec(tiny_spec(model={"family": ["knn", "random_forest"], "space": {"svm": {}}}))
