from __future__ import annotations

import re

import pytest

from tuneops.errors import SpecError
from tuneops.spec import (
    MONITORED_METRICS,
    PRUNER_PARAMETERS,
    dump_spec,
    load_spec,
    parse_constraint,
)
from conftest import EXAMPLES, ROOT, tiny_spec


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


def test_a_spec_write_refused_midway_keeps_the_earlier_file(tmp_path):
    """``ulimit -f`` stops the write of a larger spec after its first bytes (a full disk
    does the same): the earlier spec file stays whole, and the error names the file."""
    import subprocess
    import sys

    path = tmp_path / "spec.yaml"
    dump_spec(load_spec(tiny_spec()), path)
    before = path.read_bytes()
    script = (
        "import resource, signal, sys\n"
        "from tuneops.spec import dump_spec, load_spec\n"
        "from tuneops.errors import WriteError\n"
        f"spec = load_spec({str(EXAMPLES / 'production.yaml')!r})\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({len(before) + 10}, resource.RLIM_INFINITY))\n"
        "try:\n"
        f"    dump_spec(spec, {str(path)!r})\n"
        "except WriteError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert f"could not write '{path}'" in done.stdout and "ulimit -f" in done.stdout
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["spec.yaml"]  # no temporary left


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
        # upper case (as papers write them) had no suggestion: difflib compares case
        ({"objectives": ["RMSE"]}, r"unknown metric 'RMSE'.*Did you mean 'rmse'"),
        ({"model": {"family": "Random_Forest"}}, r"unknown model family 'Random_Forest'.*Did you mean 'random_forest'"),
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


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_a_spec_nested_thousands_deep_is_a_spec_error(tmp_path, suffix):
    """'[' 3,000 times crashed the YAML and TOML parsers with a RecursionError (a traceback,
    exit 1) instead of a SpecError naming the file (found by a security review)."""
    deep = tmp_path / f"deep{suffix}"
    assign = ": " if suffix == ".yaml" else " = "
    deep.write_text("study" + assign + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(SpecError, match=r"deep\.(yaml|toml)'\: values nested too deeply"):
        load_spec(deep)


def test_a_spec_file_of_megabytes_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    """A data file given as the spec was read whole and parsed (PyYAML: 7.5 s of CPU for
    1.15 MB of rows) before any check (found by a security review)."""
    from tuneops.spec import files

    parsed = []
    monkeypatch.setattr(files.yaml, "safe_load", lambda text: parsed.append(text) or {})
    big = tmp_path / "big.yaml"
    big.write_text("study: big\nrows:\n" + "- [1.5, 2.5, 3.5, 4.5]\n" * 200_000)
    assert big.stat().st_size > files.MAX_SPEC_BYTES
    with pytest.raises(SpecError, match=r"big\.yaml'\: larger than 4 MB; a spec is a few KB"):
        load_spec(big)
    assert parsed == []
    big.write_text("study: big\n" + "#" * 1000 + "\n")  # a spec of a few KB is parsed
    files._read_file(big)
    assert parsed == ["study: big\n" + "#" * 1000 + "\n"]


def test_a_yaml_alias_bomb_is_refused_not_expanded(tmp_path):
    """safe_load runs no code, but nested aliases expand a 1 KB file to 10^10 values when the
    spec is validated (2.4 GB after a minute): refused at once. Aliases in a normal spec load."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nstudy: bomb\n")
    with pytest.raises(SpecError, match="more than 100,000 values once its YAML aliases"):
        load_spec(bomb)
    fine = tmp_path / "fine.yaml"
    fine.write_text(
        "data: {source: 'sklearn:iris'}\nmodel: {family: knn, space: &s {n_neighbors: 5}}\n"
        "objectives: [accuracy]\nsearch: {n_trials: 2}\n"
    )
    assert load_spec(fine).n_trials == 2


def test_constraint_parsing():
    c = parse_constraint("latency_p95_ms <= 50")
    assert (c.metric, c.op, c.threshold) == ("latency_p95_ms", "<=", 50.0)
    assert c.violation({"latency_p95_ms": 60}) == pytest.approx(10)
    assert str(c) == "latency_p95_ms <= 50"
    # a threshold the metric cannot reach is refused before the budget runs
    with pytest.raises(SpecError, match="no model can meet 'accuracy >= 1.5': accuracy takes "
                       "values from 0 to 1"):
        load_spec(tiny_spec(constraints=["accuracy >= 1.5"]))
    with pytest.raises(SpecError, match="latency_p95_ms takes values from 0"):
        parse_constraint("latency_p95_ms < 0")
    assert parse_constraint("accuracy >= 1").threshold == 1.0  # reachable, if hardly
    # a custom objective's metric is in its own units (an accuracy in %)
    assert parse_constraint("accuracy >= 90", builtin_only=False).threshold == 90.0


@pytest.mark.parametrize(
    "constraints, message",
    [
        (["accuracy >= 0.9", "accuracy >= 0.9"],
         r"constraints\[1\]: 'accuracy >= 0.9' repeats constraints\[0\] 'accuracy >= 0.9'; "
         r"remove one\."),
        (["accuracy > 0.9", "latency_p95_ms <= 5", "accuracy >= 0.9"],
         r"constraints\[2\]: 'accuracy >= 0.9' repeats constraints\[0\] 'accuracy > 0.9' \(strict "
         r"and non-strict comparisons are treated alike\)"),
        (["latency_p95_ms <= 5", "latency_p95_ms <= 10"],
         r"constraints\[1\]: 'latency_p95_ms <= 10' and constraints\[0\] 'latency_p95_ms <= 5' are "
         r"both upper bounds on latency_p95_ms; expected one bound per metric and direction\. "
         r"Keep the one you mean \(together they mean 'latency_p95_ms <= 5'\)"),
        (["accuracy >= 0.8", "accuracy > 0.85"],
         r"both lower bounds on accuracy.*'accuracy > 0.85'"),
        (["latency_p95_ms <= 5", "latency_p95_ms >= 10"],
         r"constraints\[1\]: 'latency_p95_ms >= 10' and constraints\[0\] 'latency_p95_ms <= 5' "
         r"leave no value of latency_p95_ms that meets both; expected a lower bound at most the "
         r"upper bound \(10 > 5\)"),
    ],
)
def test_constraints_that_repeat_or_contradict_each_other_are_refused(constraints, message):
    """Two constraints on one metric were kept silently: the same one twice, two upper bounds
    (which applies?), or a range no value meets, which ran the whole budget first."""
    with pytest.raises(SpecError, match=message):
        load_spec(tiny_spec(constraints=constraints))


TWO = ["accuracy", "latency_p95_ms"]


@pytest.mark.parametrize(
    "changes, message",
    [
        # a setting of another policy than the one chosen was ignored without a word
        ({"selection": {"weights": {"accuracy": 2, "latency_p95_ms": 1}}},
         r"selection\.weights: read by policy 'weighted' only, but the policy is 'knee'; set "
         r"policy: weighted, or remove weights\."),
        ({"selection": {"policy": "weighted", "priority": ["accuracy"]}},
         r"selection\.priority: read by policy 'lexicographic' only, but the policy is 'weighted'"),
        ({"selection": {"policy": "knee", "tolerance": 0.05}},
         r"selection\.tolerance: read by policy 'lexicographic' only, but the policy is 'knee'"),
        ({"selection": {"policy": "lexicographic", "priority": ["accuracy", "accuracy"]}},
         r"selection\.priority: 'accuracy' is listed twice in \['accuracy', 'accuracy'\]"),
        ({"selection": {"policy": "weighted", "weights": {"accuracy": 0, "latency_p95_ms": 0}}},
         r"selection\.weights: expected at least one weight > 0, received \{'accuracy': 0\.0, "
         r"'latency_p95_ms': 0\.0\}: with every weight 0 every trial scores the same"),
        # a constraint every model meets constrains nothing
        ({"constraints": ["accuracy >= 0"]},
         r"constraints\[0\]: every model meets 'accuracy >= 0': accuracy takes values from 0 to "
         r"1, so it constrains nothing\. Remove it, or give a threshold inside that range\."),
        ({"constraints": ["accuracy >= 0.5", "latency_p95_ms > 0"]},
         r"constraints\[1\]: every model meets 'latency_p95_ms > 0' \(strict and non-strict "
         r"comparisons are treated alike: a value at the threshold meets it\): latency_p95_ms "
         r"takes values from 0 to inf"),
    ],
)
def test_spec_settings_that_mean_nothing_are_refused(changes, message):
    with pytest.raises(SpecError, match=message):
        load_spec(tiny_spec(objectives=TWO, **changes))


def test_the_settings_of_the_policy_chosen_are_accepted():
    lex = {"policy": "lexicographic", "priority": ["latency_p95_ms"], "tolerance": 0.1}
    assert load_spec(tiny_spec(objectives=TWO, selection=lex)).selection.tolerance == 0.1
    weighted = {"policy": "weighted", "weights": {"accuracy": 1, "latency_p95_ms": 0}}
    assert load_spec(tiny_spec(objectives=TWO, selection=weighted)).selection.weights
    assert load_spec(tiny_spec(constraints=["accuracy >= 0.01", "accuracy <= 0.99"]))


def test_a_range_on_one_metric_is_accepted():
    spec = load_spec(tiny_spec(constraints=["accuracy >= 0.8", "accuracy <= 0.95"]))
    assert [str(c) for c in spec.constraints] == ["accuracy >= 0.8", "accuracy <= 0.95"]
    assert load_spec(tiny_spec(constraints=["accuracy <= 0.9", "accuracy >= 0.9"])).constraints


def test_space_overrides_with_several_families():
    spec = load_spec(tiny_spec(model={
        "family": ["knn", "random_forest"],
        "space": {"random_forest": {"n_estimators": {"type": "int", "low": 5, "high": 20}}},
    }))
    assert spec.space["random_forest"]["n_estimators"].high == 20
    with pytest.raises(SpecError, match="'svm' is not one of the spec's families"):
        load_spec(tiny_spec(model={"family": ["knn", "random_forest"], "space": {"svm": {}}}))


# -- one validation mechanism: every section checked at load time (issue 13 part 4) -------------
def test_monitor_typo_is_refused_at_load_not_at_deploy():
    with pytest.raises(SpecError, match=r"monitor: unknown monitor setting 'typo'; expected one of alerts, alpha, .*"):
        load_spec(tiny_spec(monitor={"alpha": 0.1, "typo": 1}))
    with pytest.raises(SpecError, match=r"monitor: unknown monitor setting 'alpah'.*Did you mean 'alpha'"):
        load_spec(tiny_spec(monitor={"alpah": 0.1}))
    with pytest.raises(SpecError, match=r"monitor\.alpha: expected a number strictly between 0 and 1, received 2\."):
        load_spec(tiny_spec(monitor={"alpha": 2}))
    spec = load_spec(tiny_spec(monitor={"alpha": 0.01, "correction": "bonferroni"}))
    assert (spec.monitor.alpha, spec.monitor.correction, spec.monitor.min_rows) == (0.01, "bonferroni", 50)


@pytest.mark.parametrize(
    "warm_start, message",
    [
        ({"auto": {"neighbours": 3}}, r"warm_start\.auto: unknown key 'neighbours'.*Did you mean 'neighbors'"),
        ({"out_of_space": "ignore"}, r"warm_start\.out_of_space: expected error or clip, received 'ignore'"),
        ({"studies": [{"study": "a", "take": "worst"}]}, r"warm_start\.studies\[0\]\.take: expected best or pareto"),
        ({"params": [{"n_neighbors": 3}, 7]}, r"warm_start\.params: expected a list of \{param: value\} mappings"),
        ({"auto": {"max_trials": -1}}, r"warm_start\.auto\.max_trials: expected an integer >= 0, received -1"),
        (42, r"warm_start: expected 'auto' or a mapping"),
    ],
)
def test_warm_start_bad_field_is_refused_at_load(warm_start, message):
    with pytest.raises(SpecError, match=message):
        load_spec(tiny_spec(warm_start=warm_start))


def test_warm_start_is_typed_and_round_trips():
    spec = load_spec(tiny_spec(warm_start={"params": [{"n_neighbors": 3}], "studies": ["old"],
                                           "auto": {"max_share": 0.5}}))
    ws = spec.warm_start
    assert ws.params[0]["n_neighbors"] == 3 and ws.studies[0].take == "pareto"
    assert ws.auto.max_share == 0.5 and ws.auto.size(10) == 5
    assert load_spec(spec.to_dict()) == spec
    assert load_spec(tiny_spec(warm_start="auto")).warm_start.auto.strategy == "adaptive"
    assert load_spec(tiny_spec(warm_start=False)).warm_start is None


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"sampler": {"name": "tpe", "n_startup_trials": -1}},
         r"search\.sampler\.n_startup_trials: expected an integer >= 0, received -1\."),
        ({"sampler": {"name": "tpe", "n_startup": 5}},
         r"search\.sampler\.n_startup: sampler 'tpe' has no parameter 'n_startup'; it accepts: n_startup_trials"),
        ({"sampler": {"name": "random", "seed": 3}},
         r"search\.sampler\.seed: sampler 'random' has no parameter 'seed'; it accepts: none"),
        ({"sampler": {"name": "qmc", "qmc_type": "lhs"}},
         r"search\.sampler\.qmc_type: unknown qmc_type 'lhs'; expected one of halton, sobol"),
        ({"sampler": {"name": "nsga2", "crossover_prob": 1.5}},
         r"search\.sampler\.crossover_prob: expected a number in \[0, 1\], received 1\.5"),
        ({"sampler": {"name": "gp", "deterministic_objective": "yes"}},
         r"search\.sampler\.deterministic_objective: expected true or false, received 'yes'"),
        ({"sampler": ["tpe"]}, r"search\.sampler: expected a sampler name or a mapping"),
        ({"pruner": {"name": "median", "warmup": 2}},
         r"search\.pruner\.warmup: pruner 'median' has no parameter 'warmup'; it accepts: n_startup_trials"),
        ({"pruner": {"name": "percentile"}}, r"search\.pruner\.percentile: pruner 'percentile' needs percentile"),
        ({"pruner": {"name": "patience", "wrapped": {"name": "median", "n_warmup_steps": -3}}},
         r"search\.pruner\.wrapped\.n_warmup_steps: expected an integer >= 0, received -3"),
        ({"pruner": {"name": "hyperband", "max_resource": "big"}},
         r"search\.pruner\.max_resource: expected 'auto' or an integer >= 1, received 'big'"),
    ],
)
def test_sampler_and_pruner_parameters_are_checked_at_load(changes, message):
    with pytest.raises(SpecError, match=message):
        load_spec(tiny_spec(**changes))


def test_declared_parameters_are_what_optuna_takes(monkeypatch):
    """Every sampler and pruner builds with all its declared parameters given (at their defaults)."""
    import optuna

    from tuneops import samplers
    from tuneops.pruning import PRUNERS, make_pruner
    from tuneops.samplers import SAMPLERS, make_sampler
    from tuneops.spec import PRUNER_PARAMETERS, SAMPLER_PARAMETERS

    # GPSampler is built without PyTorch (it needs it to sample): make_sampler refuses gp
    # where PyTorch is missing, which this check of parameters is not about
    monkeypatch.setattr(samplers, "gp_available", lambda: True)

    assert set(SAMPLER_PARAMETERS) == set(SAMPLERS) and set(PRUNER_PARAMETERS) == set(PRUNERS)
    for name, model in SAMPLER_PARAMETERS.items():
        params = {k: f.get_default() for k, f in model.model_fields.items()}
        spec = load_spec(tiny_spec(sampler={"name": name, **{k: v for k, v in params.items() if v is not None}}))
        assert spec.sampler.name == name
        assert isinstance(make_sampler(name, params, seed=0), optuna.samplers.BaseSampler)
    required = {"percentile": {"percentile": 50.0}, "threshold": {"lower": 0.5}, "patience": {"wrapped": "median"}}
    for name, model in PRUNER_PARAMETERS.items():
        params = {k: f.get_default(call_default_factory=True) for k, f in model.model_fields.items()
                  if not f.is_required() and f.get_default() is not None}
        params.update(required.get(name, {}))
        assert isinstance(make_pruner(name, params), optuna.pruners.BasePruner), name


def test_spec_tables_agree_with_the_modules_that_use_them():
    from tuneops.knowledge.portfolio import STRATEGIES
    from tuneops.ops.drift import CORRECTIONS
    from tuneops.ops.monitor import PERFORMANCE_METRICS
    from tuneops.spec import AUTO_STRATEGIES, MONITORED_METRICS
    from tuneops.spec import CORRECTIONS as SPEC_CORRECTIONS

    assert set(MONITORED_METRICS) == set(PERFORMANCE_METRICS)
    assert set(SPEC_CORRECTIONS) == set(CORRECTIONS)
    assert AUTO_STRATEGIES == (*STRATEGIES, "adaptive")


def test_every_problem_is_reported_at_once_one_line_each():
    with pytest.raises(SpecError) as info:
        load_spec(tiny_spec(n_workers=0, cv_folds=1, monitor={"min_rows": "many"}))
    lines = str(info.value).splitlines()
    assert lines == [
        "search.n_workers: expected an integer >= 1, received 0.",
        "search.cv_folds: expected an integer >= 2, received 1.",
        "monitor.min_rows: expected an integer >= 10, received 'many'.",
    ]


def test_sections_are_immutable_and_refused_when_built_alone():
    from tuneops.ops.monitor import MonitorConfig

    spec = load_spec(tiny_spec(monitor={}))
    with pytest.raises(AttributeError, match="immutable"):
        spec.search.n_trials = 3  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        spec.monitor.alpha = 0.5  # type: ignore[misc]
    with pytest.raises(SpecError, match=r"monitor\.alpha: expected a number strictly between 0 and 1, received 2"):
        MonitorConfig(alpha=2)


# -- bad input named at load time (issue 14 part 5) ----------------------------------------------
@pytest.mark.parametrize(
    "override, message",
    [
        ({"n_trials": -1}, r"search\.n_trials: expected an integer >= 1, received -1\."),
        ({"n_trials": "5"}, r"search\.n_trials: expected an integer >= 1, received '5'\."),
        ({"n_workers": 0}, r"search\.n_workers: expected an integer >= 1, received 0\."),
        ({"n_workers": 1.5}, r"search\.n_workers: expected an integer >= 1, received 1\.5\."),
        ({"cv_folds": 1}, r"search\.cv_folds: expected an integer >= 2, received 1\."),
        ({"cv_folds": True}, r"search\.cv_folds: expected an integer >= 2, received True\."),
    ],
)
def test_counts_must_be_positive_integers(override, message):
    with pytest.raises(SpecError, match=message):
        load_spec(tiny_spec(), **override)


def test_resources_name_the_resource_expected_and_received():
    raw = tiny_spec()
    raw["search"]["resources"] = {"cpu": "two"}
    with pytest.raises(SpecError, match=r"search\.resources\.cpu: expected a number >= 0 .*received 'two'\."):
        load_spec(raw)
    raw["search"]["resources"] = {"cpu": 2, "gpu": 0.5}
    spec = load_spec(raw)
    assert dict(spec.resources) == {"cpu": 2.0, "gpu": 0.5}
    assert load_spec(spec.to_dict()) == spec


def test_a_directory_given_as_the_spec_says_it_is_a_directory(tmp_path):
    with pytest.raises(SpecError, match=r"is a directory; pass the path of a YAML or TOML spec file"):
        load_spec(tmp_path)


# -- secrets (issue 14 part 1) and metrics options (issue 14 part 4) ----------------------------
def test_to_dict_masks_the_storage_password(tmp_path):
    import json

    url = "postgresql://ann:s3cr@t-pw@db:5432/tune"
    spec = load_spec(tiny_spec(storage=url))
    assert spec.storage == url  # what the code that connects uses
    stored = spec.to_dict()
    assert stored["storage"] == "postgresql://ann:***@db:5432/tune" == spec.storage_masked
    assert "s3cr" not in json.dumps(stored) and "s3cr" not in repr(spec) and "s3cr" not in str(spec)
    assert spec.model_dump(include={"storage"})["storage"] == stored["storage"]
    assert "s3cr" not in dump_spec(spec, tmp_path / "spec.yaml").read_text()
    # overrides and copies keep the real URL; only what is stored or written is masked
    assert load_spec(tiny_spec(), storage=url).storage == url
    assert spec.replace(n_trials=9).storage == url and load_spec(spec, seed=3).storage == url
    assert load_spec(tiny_spec(storage="runs.journal")).to_dict()["storage"] == "runs.journal"


@pytest.mark.parametrize("label", ["live", 1, 0, True, False])
def test_pos_label_round_trips(label, tmp_path):
    spec = load_spec(tiny_spec(data={"source": "sklearn:iris", "pos_label": label}))
    assert spec.data.pos_label == label and type(spec.data.pos_label) is type(label)
    assert spec.to_dict()["data"]["pos_label"] == label
    for again in (load_spec(spec.to_dict()), load_spec(dump_spec(spec, tmp_path / "spec.yaml")),
                  load_spec(dump_spec(spec, tmp_path / "spec.toml"))):
        assert again == spec and type(again.data.pos_label) is type(label)


def test_pos_label_default_and_bad_value():
    spec = load_spec(tiny_spec())
    assert spec.data.pos_label is None and "pos_label" not in spec.to_dict()["data"]
    with pytest.raises(SpecError, match=r"data\.pos_label: expected a class label .*received \[1\]"):
        load_spec(tiny_spec(data={"source": "sklearn:iris", "pos_label": [1]}))


def test_the_serving_section_is_validated_at_load_and_reaches_the_measurement():
    from tuneops.measure import serving_config

    spec = load_spec(tiny_spec(objectives=["accuracy", "latency_p95_ms"], serving={"path": "numpy"}))
    assert serving_config(spec.serving).path == "numpy"
    assert load_spec(spec.to_dict()).serving == spec.serving
    with pytest.raises(SpecError, match=r"serving.path: unknown serving path 'rows'.*Did you mean 'row'"):
        load_spec(tiny_spec(serving={"path": "rows"}))
    with pytest.raises(SpecError, match=r"serving: unknown key 'thread'.*Did you mean 'threads'"):
        load_spec(tiny_spec(serving={"thread": 2}))


def test_a_spec_without_objectives_on_regression_data_tunes_r2(workdir):
    """The default 'accuracy' was chosen before the task was known, and the run was refused
    over a metric the user never wrote."""
    import tuneops

    spec = {"study": "reg", "data": {"source": "sklearn:diabetes"}, "model": {"family": "linear"},
            "search": {"n_trials": 2, "cv_folds": 3}}
    result = tuneops.run(spec)
    assert [o["metric"] for o in result.results["objectives"]] == ["r2"]
    from tuneops.errors import SpecError
    with pytest.raises(SpecError, match="metric 'accuracy' applies to classification"):
        tuneops.run({**spec, "study": "reg2", "objectives": ["accuracy"]})  # written: refused


SPEC_MD = ROOT / "docs" / "reference" / "spec.md"


def test_spec_md_pruner_table_names_every_pruner_and_parameter():
    """docs/reference/spec.md's pruner table: a row per accepted pruner, naming each of its
    parameters (the truth is PRUNER_PARAMETERS, which the spec validates against)."""
    text = SPEC_MD.read_text()
    table = text[text.index("| name | what it is | parameters |") :].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        name, _, parameters = line.strip("|").split(" | ")
        rows[name.strip("` ")] = set(re.findall(r"`([a-z_]+)`", parameters))
    assert set(rows) == set(PRUNER_PARAMETERS)
    for name, model in PRUNER_PARAMETERS.items():
        missing = set(model.model_fields) - rows[name]
        assert not missing, f"pruner {name!r}: spec.md does not name {sorted(missing)}"


def test_spec_md_names_the_accepted_monitored_metrics_and_pos_labels():
    text = SPEC_MD.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `metric` |"))
    assert set(re.findall(r"`([a-z0-9_]+)`", row)) >= set(MONITORED_METRICS)
    data = {"source": "sklearn:breast_cancer"}
    for accepted in ("yes", 1, True):
        assert load_spec({"data": {**data, "pos_label": accepted}, "model": {"family": "knn"}})
    with pytest.raises(SpecError, match=r"data.pos_label: expected a class label \(a string, an"):
        load_spec({"data": {**data, "pos_label": 1.5}, "model": {"family": "knn"}})
    row = next(line for line in text.splitlines() if line.startswith("| `pos_label` |"))
    assert "a string, an integer, `true` or `false`" in row
