"""The bad-input corpus (issue 14): a wrong spec, data file, storage URL, batch, command argument
or API call ends in exit 2 (CLI) or a typed tuneops error (API) whose message names the field
and the value received, and nothing is written.

Every case runs in its own copy of one small world: a journal store holding a registered model
with two versions (v2 the champion, v1 before it) and a study with a pruned trial, plus the
spec, data and batch files the cases point at. Before and after a case, every file and
directory under the working directory is recorded (path, size, mtime and the sha256 of the
bytes); the store is a file there, so equal bytes mean equal studies, trials and attributes.

Not here: a journal in a directory without write permission (needs a non-root child process;
tests/test_storage_errors.py covers it), and the servers' refusals (PostgreSQL, Redis), which
need the real servers and are in tests/test_storage_errors.py and tests/test_ops_storages.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from _ops_helpers import FEATURES, iris, logistic, register
from conftest import tiny_spec

import tuneops
from tuneops.data import DataWarning, load_dataset
from tuneops.errors import (
    DataError,
    SpecError,
    StorageUnavailable,
    StudyNotFound,
    TuneOpsError,
    UsageError,
)
from tuneops.ops.monitor import check_batch
from tuneops.ops.registry import Registry

# -- the world every case starts from ------------------------------------------------------------
MODEL = "m"  # registered model: versions 1 and 2, champion 2 (rolled forward from 1)
PRUNED_STUDY = "pr"  # a tune() study: trial 1 pruned, trials 0 and 2 complete


def _quadratic(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)
    return -(x - 1.0) ** 2


def _prunes_trial_1(trial: optuna.Trial) -> float:
    if trial.number == 1:
        raise optuna.TrialPruned()
    return _quadratic(trial)


def _frame(n: int, labels: list[Any] | None = None, *, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = labels if labels is not None else [i % 2 for i in range(n)]
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "y": y})


def _spec(**changes: Any) -> str:
    return json.dumps(tiny_spec(**changes))  # JSON is YAML


def _csv_spec(source: str, **changes: Any) -> str:
    return _spec(data={"source": source, "target": "y"}, **changes)


SPECS: dict[str, str] = {
    "cv_rows.yaml": _csv_spec("rows12.csv", cv_folds=20),
    "cv_class.yaml": _csv_spec("rare.csv", cv_folds=3),
    "cpu_two.yaml": _spec(search={"n_trials": 4, "resources": {"cpu": "two"}}),
    "malformed.yaml": "study: x\ndata: {source: sklearn:iris\nmodel: [knn\n",
    "wrong_type.toml": (
        'study = "t"\n[data]\nsource = "sklearn:iris"\n[model]\nfamily = "knn"\n'
        '[search]\nn_trials = "five"\n'
    ),
    "top_key.yaml": _spec(serach={"n_trials": 3}),
    "family.yaml": _spec(model={"family": "randm_forest"}),
    "metric.yaml": _spec(objectives=["acuracy"]),
    "sampler.yaml": _spec(sampler="tpee"),
    "pruner.yaml": _spec(pruner="mediam"),
    "pruner_param.yaml": _spec(pruner={"name": "percentile", "percentile": 150}),
    "nan_target.yaml": _csv_spec("nan_target.csv"),
    "no_source.yaml": _csv_spec("nowhere.csv"),
    "no_target.yaml": _csv_spec("no_target.csv"),
    "empty_csv.yaml": _csv_spec("empty.csv"),
    "header_only.yaml": _csv_spec("header_only.csv"),
    "policy.yaml": _spec(selection={"policy": "knees"}),
    "weights.yaml": _spec(objectives=["accuracy", "fit_time_s"],
                          selection={"policy": "weighted",
                                     "weights": {"accuracy": 1, "fit_time_s": 1, "latency_ms": 2}}),
    "weights_unread.yaml": _spec(objectives=["accuracy", "fit_time_s"],
                                 selection={"weights": {"accuracy": 2, "fit_time_s": 1}}),
    "constraint_always.yaml": _spec(constraints=["accuracy >= 0.5", "accuracy >= 0.8"]),
    "warm_out.yaml": _spec(warm_start={"params": [{"n_neighbors": 10_000}]}),
    "monitor_typo.yaml": _spec(monitor={"alpah": 0.1}),
    "direction.yaml": _spec(objectives=[{"metric": "accuracy", "direction": "minimize"}]),
    "task.yaml": _spec(data={"source": "sklearn:iris", "task": "clasification"}),
    "constraint.yaml": _spec(constraints=["accuracy >> 0.9"]),
    "constraint_out_of_range.yaml": _spec(constraints=["accuracy >= 1.5"]),
    "seed.yaml": _spec(seed=-3),
    "study_name.yaml": _spec(study="my study!"),
    "no_budget.yaml": _spec(search={"n_trials": None}),
    "list.yaml": "- data\n- model\n",
    "space_name.yaml": _spec(model={"family": "knn", "space": {"n_neighbours": [1, 5]}}),
    "space_choice.yaml": _spec(model={"family": "knn", "space": {"weights": ["uniform", "cosine"]}}),
    # Ridge's alpha on a classification: every trial failed with LogisticRegression's TypeError
    "space_other_task.yaml": _spec(model={"family": "linear", "space": {"alpha": [0.1, 1.0]}}),
    "space_bound.yaml": _spec(model={"family": "knn", "space": {"n_neighbors": {"low": 0, "high": 5}}}),
    "space_range.yaml": _spec(model={"family": "knn", "space": {"n_neighbors": {"low": 5,
                                                                                "high": 1}}}),
    "source_number.yaml": _spec(data={"source": 5}),
    "no_objectives.yaml": _spec(objectives=[]),
    "float_trials.yaml": _spec(n_trials=2.5),
    "bool_workers.yaml": _spec(search={"n_trials": 3, "n_workers": True}),
    "constraint_metric.yaml": _spec(constraints=["latency_ms <= 3"]),
    "empty_out.yaml": _spec(output_dir=""),
    "sampler_param.yaml": _spec(sampler={"name": "tpe", "n_startup": 3}),
    "only_target.yaml": _csv_spec("only_target.csv"),
    "text_regression.yaml": _spec(data={"source": "text_target.csv", "target": "y",
                                        "task": "regression"}),
    "one_class.yaml": _csv_spec("one_class.csv"),
    "bad_parquet.yaml": _csv_spec("bad.parquet"),
    "txt_data.yaml": _csv_spec("data.txt"),
    "broken.toml": "study = [\n",
    "tabs.yaml": "study: x\n\tdata: 1\n",
    "spec.json": _spec(),
    "good.yaml": _spec(),
}


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files and store every case starts from (built once, copied per case)."""
    root = tmp_path_factory.mktemp("world")
    here = Path.cwd()
    os.chdir(root)  # the default store (tuneops.journal) and outputs land in the world
    try:
        for name, text in SPECS.items():
            (root / name).write_text(text)
        (root / "a_directory.yaml").mkdir()
        _frame(12).to_csv(root / "rows12.csv", index=False)
        _frame(30, [0] * 28 + [1] * 2).to_csv(root / "rare.csv", index=False)
        nan_target = _frame(20).astype({"y": float})
        nan_target.loc[[3, 7, 11], "y"] = np.nan
        nan_target.to_csv(root / "nan_target.csv", index=False)
        all_nan = _frame(30)
        all_nan["empty"] = np.nan
        all_nan.to_csv(root / "all_nan.csv", index=False)
        _frame(20).rename(columns={"y": "label"}).to_csv(root / "no_target.csv", index=False)
        (root / "empty.csv").write_text("")
        (root / "header_only.csv").write_text("a,b,y\n")
        _frame(20)[["y"]].to_csv(root / "only_target.csv", index=False)
        _frame(20, [f"c{i % 2}" for i in range(20)]).to_csv(root / "text_target.csv", index=False)
        _frame(20, [1] * 20).to_csv(root / "one_class.csv", index=False)
        (root / "bad.parquet").write_text("not parquet")
        (root / "data.txt").write_text("a,y\n1,0\n")
        (root / "batch.txt").write_text("a\n1\n")
        (root / "not_a_journal.json").write_text('{"not": "a journal"}\n')

        X, y = iris()
        batch = X.assign(target=y).sample(80, random_state=0)
        batch.drop(columns=[FEATURES[0]]).to_csv(root / "batch_missing.csv", index=False)
        batch.assign(zzz=1.0).to_csv(root / "batch_extra.csv", index=False)
        batch.assign(**{FEATURES[1]: ["abc"] * len(batch)}).to_csv(
            root / "batch_dtype.csv", index=False)
        batch.assign(**{FEATURES[2]: [np.inf] + [1.0] * (len(batch) - 1)}).to_csv(
            root / "batch_inf.csv", index=False)
        (root / "batch_empty.csv").write_text("")
        batch.head(5).to_csv(root / "batch_small.csv", index=False)

        registry = Registry.open(MODEL, None, create=True)
        register(registry, logistic(1.0), root / "artifacts", promote=True)
        register(registry, logistic(0.5), root / "artifacts", promote=True)
        tuneops.tune(_prunes_trial_1, n_trials=3, study=PRUNED_STUDY, sampler="random")
    finally:
        os.chdir(here)
    return root


@pytest.fixture
def inworld(world: Path, workdir: Path) -> Path:
    """The working directory, filled with a copy of the world."""
    shutil.copytree(world, workdir, dirs_exist_ok=True, symlinks=True)
    return workdir


# -- what "nothing was written" means -------------------------------------------------------------
def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every directory and file under ``root``: files by size, mtime and content hash."""
    seen: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_dir() and not path.is_symlink():
            seen[name] = ("dir",)
        else:
            stat = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            seen[name] = ("file", stat.st_size, stat.st_mtime_ns, digest)
    return seen


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs, in words (for the assertion message)."""
    out = [f"created {p}" for p in after.keys() - before.keys()]
    out += [f"removed {p}" for p in before.keys() - after.keys()]
    out += [f"changed {p}" for p in before.keys() & after.keys() if before[p] != after[p]]
    return sorted(out)


def flat(text: str) -> str:
    """A message as one line: rich's panels and wrapping undone."""
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", text)).strip()


# -- the corpus -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One bad input: CLI arguments (exit 2 expected) or an API call (``error`` expected).

    ``fields`` must all appear in the message (the field's name, as the user wrote it), and so
    must ``received`` (the value received, or what was wrong about it).
    """

    id: str
    call: tuple[str, ...] | Callable[[], Any]
    fields: tuple[str, ...]
    received: tuple[str, ...] = ()
    error: type[TuneOpsError] = UsageError
    value_error: bool = True  # a caller catching ValueError catches it too
    in_world: bool = True  # False: an empty working directory (no store, no files)
    extra: dict[str, Any] = field(default_factory=dict)


def args(*words: str) -> tuple[str, ...]:
    return words


def tune_with(**kwargs: Any) -> Callable[[], Any]:
    return lambda: tuneops.tune(_quadratic, **{"n_trials": 3, **kwargs})


def run_frame(frame: pd.DataFrame, **search: Any) -> Callable[[], Any]:
    spec = tiny_spec(data={"source": "frame", "target": "y"})
    spec["search"].update(search)
    return lambda: tuneops.run(spec, dataset=frame)


def _registry_call(method: str, *args: Any) -> Callable[[], Any]:
    return lambda: getattr(Registry.open(MODEL), method)(*args)


def _check_batch(frame_of: Callable[[], pd.DataFrame]) -> Callable[[], Any]:
    return lambda: check_batch(Registry.open(MODEL), frame_of())


CASES: list[Case] = [
    # -- specs through `tuneops run` ----------------------------------------------------------
    Case("cv_folds>rows", args("run", "cv_rows.yaml"), ("search.cv_folds",), ("20", "12 rows")),
    Case("cv_folds>smallest-class", args("run", "cv_class.yaml"), ("search.cv_folds",),
         ("received 3", "smallest class")),
    Case("resources-cpu-two", args("run", "cpu_two.yaml"), ("search.resources",), ("'two'",)),
    Case("spec-is-directory", args("run", "a_directory.yaml"), ("spec",),
         ("a_directory.yaml", "is a directory")),
    Case("spec-missing", args("run", "nope.yaml"), ("spec",), ("nope.yaml", "does not exist")),
    Case("spec-malformed-yaml", args("run", "malformed.yaml"), ("malformed.yaml",),
         ("not valid YAML", "line")),
    Case("spec-toml-wrong-type", args("run", "wrong_type.toml"), ("search.n_trials",),
         ("'five'", "an integer")),
    Case("spec-json-suffix", args("run", "spec.json"), ("spec file",), ("'.json'",)),
    Case("spec-not-a-mapping", args("run", "list.yaml"), ("spec",), ("['data', 'model']",)),
    Case("spec-unknown-top-key", args("run", "top_key.yaml"), ("serach",),
         ("unknown key", "search")),
    Case("unknown-family", args("run", "family.yaml"), ("model.family",),
         ("'randm_forest'", "Did you mean 'random_forest'")),
    Case("unknown-metric", args("run", "metric.yaml"), ("objectives[0].metric",),
         ("'acuracy'", "Did you mean 'accuracy'")),
    Case("unknown-sampler", args("run", "sampler.yaml"), ("search.sampler",),
         ("'tpee'", "Did you mean 'tpe'")),
    Case("unknown-pruner", args("run", "pruner.yaml"), ("search.pruner",),
         ("'mediam'", "Did you mean 'median'")),
    Case("pruner-param-range", args("run", "pruner_param.yaml"),
         ("search.pruner.percentile",), ("150",)),
    Case("nan-target", args("run", "nan_target.yaml"), ("data.target",), ("3 missing",)),
    Case("data-source-missing", args("run", "no_source.yaml"), ("data.source",),
         ("nowhere.csv", "does not exist")),
    Case("csv-without-target", args("run", "no_target.yaml"), ("data.target",),
         ("'y'", "label")),
    Case("csv-empty", args("run", "empty_csv.yaml"), ("data.source",), ("empty.csv", "empty")),
    Case("csv-header-only", args("run", "header_only.yaml"), ("data.source",),
         ("header_only.csv", "no rows")),
    Case("selection-policy-typo", args("run", "policy.yaml"), ("selection.policy",),
         ("'knees'", "Did you mean 'knee'")),
    Case("weights-wrong-length", args("run", "weights.yaml"), ("selection.weights",),
         ("'latency_ms' is not an objective",)),
    Case("selection-weights-unread", args("run", "weights_unread.yaml"), ("selection.weights",),
         ("read by policy 'weighted' only", "the policy is 'knee'", "set policy: weighted")),
    Case("constraints-two-lower-bounds", args("run", "constraint_always.yaml"),
         ("constraints[1]", "constraints[0]"), ("both lower bounds on accuracy",)),
    Case("warm-start-out-of-space", args("run", "warm_out.yaml"),
         ("warm_start.params[0]", "n_neighbors"), ("10000",)),
    Case("monitor-section-typo", args("run", "monitor_typo.yaml"), ("monitor",),
         ("'alpah'", "Did you mean 'alpha'")),
    Case("direction-contradicts-metric", args("run", "direction.yaml"), ("objectives[0]",),
         ("'minimize'",)),
    Case("task-typo", args("run", "task.yaml"), ("data.task",), ("'clasification'",)),
    Case("constraint-malformed", args("run", "constraint.yaml"), ("constraints[0]",),
         ("accuracy >> 0.9",)),
    Case("negative-seed", args("run", "seed.yaml"), ("search.seed",), ("-3",)),
    Case("study-name", args("run", "study_name.yaml"), ("study",), ("'my study!'",)),
    Case("no-budget", args("run", "no_budget.yaml"), ("search",), ("n_trials", "timeout_s")),
    Case("space-name-typo", args("run", "space_name.yaml"), ("model.space.knn.n_neighbours",),
         ("Did you mean 'n_neighbors'",)),
    Case("space-low>high", args("run", "space_range.yaml"), ("model.space.knn.n_neighbors",),
         ("low=5, high=1",)),
    Case("space-param-of-the-other-task", args("run", "space_other_task.yaml"),
         ("model.space.linear.alpha",), ("classification task", "LogisticRegression", "'alpha'")),
    Case("space-choice-refused", args("run", "space_choice.yaml"), ("model.space.knn.weights",),
         ("does not accept 'cosine'",)),
    Case("space-bound-refused", args("run", "space_bound.yaml"), ("model.space.knn.n_neighbors",),
         ("does not accept 0",)),
    Case("source-not-a-string", args("run", "source_number.yaml"), ("data.source",),
         ("received 5",)),
    Case("objectives-empty", args("run", "no_objectives.yaml"), ("objectives",),
         ("received []",)),
    Case("n_trials-float", args("run", "float_trials.yaml"), ("search.n_trials",), ("2.5",)),
    Case("n_workers-bool", args("run", "bool_workers.yaml"), ("search.n_workers",),
         ("True",)),
    Case("constraint-unknown-metric", args("run", "constraint_metric.yaml"),
         ("constraints[0]",), ("'latency_ms'", "Did you mean")),
    Case("output_dir-empty", args("run", "empty_out.yaml"), ("output_dir",), ("''",)),
    Case("sampler-param-unknown", args("run", "sampler_param.yaml"),
         ("search.sampler.n_startup",), ("'tpe' has no parameter",)),
    Case("csv-only-target", args("run", "only_target.yaml"), ("data",),
         ("only_target.csv", "no feature columns")),
    Case("regression-text-target", args("run", "text_regression.yaml"), ("data.task",),
         ("'y'", "numeric")),
    Case("single-class", args("run", "one_class.yaml"), ("data",), ("'y'", "single class")),
    Case("parquet-corrupt", args("run", "bad_parquet.yaml"), ("data.source",),
         ("bad.parquet",)),
    Case("data-unsupported-type", args("run", "txt_data.yaml"), ("data.source",),
         ("data.txt", "'.txt'")),
    Case("spec-malformed-toml", args("run", "broken.toml"), ("broken.toml",),
         ("not valid TOML",)),
    Case("spec-yaml-tab", args("run", "tabs.yaml"), ("tabs.yaml",), ("not valid YAML",)),
    # -- command-line overrides ----------------------------------------------------------------
    # an option's value is named as the option (the house form), not as the spec field it replaces
    Case("n-trials-0", args("run", "good.yaml", "--n-trials", "0"), ("n_trials (--n-trials):",),
         ("received 0",)),
    Case("workers-negative", args("run", "good.yaml", "--workers", "-1"),
         ("n_workers (--workers):",), ("-1",)),
    Case("workers-not-a-number", args("run", "good.yaml", "--workers", "two"), ("--workers",),
         ("integer",)),
    Case("timeout-negative", args("run", "good.yaml", "--timeout-s", "-5"),
         ("timeout_s (--timeout-s):",), ("-5",)),
    Case("trial-timeout-0", args("run", "good.yaml", "--trial-timeout-s", "0"),
         ("trial_timeout_s (--trial-timeout-s):",), ("received 0",)),
    Case("backend-typo", args("run", "good.yaml", "--backend", "raay"), ("backend (--backend):",),
         ("'raay'", "Did you mean 'ray'")),
    Case("address-without-ray", args("run", "good.yaml", "--address", "10.0.0.1:6379"),
         ("--address",), ("'10.0.0.1:6379'", "local")),
    # -- storage URLs ----------------------------------------------------------------------------
    Case("sqlite-missing-directory", args("run", "good.yaml", "--storage", "sqlite:///nodir/x.db"),
         ("storage",), ("nodir", "does not exist")),
    Case("journal-missing-directory", args("run", "good.yaml", "--storage", "no/dir/s.journal"),
         ("storage",), ("no/dir", "does not exist")),
    Case("postgresql-one-slash", args("run", "good.yaml", "--storage", "postgresql:/host/db"),
         ("storage",), ("postgresql:/host/db",)),
    Case("bad-port", args("run", "good.yaml", "--storage", "postgresql://u:pw@localhost:5x32/db"),
         ("storage", "port"), ("5x32",)),
    Case("unknown-scheme", args("run", "good.yaml", "--storage", "ftp://host/x"),
         ("storage (--storage): expected a journal file path",), ("received 'ftp://host/x'",)),
    Case("unknown-scheme-show", args("show", "s", "--storage", "bogus://x"),
         ("storage (--storage): expected",), ("received 'bogus://x' (unknown scheme 'bogus')",)),
    Case("sqlite-no-file", args("run", "good.yaml", "--storage", "sqlite:///"), ("storage",),
         ("'sqlite:///'", "names no SQLite file")),
    Case("redis-bad-port", args("run", "good.yaml", "--storage", "redis://localhost:notaport/0"),
         ("storage", "port"), ("'notaport'",)),
    Case("storage-is-directory", args("run", "good.yaml", "--storage", "a_directory.yaml"),
         ("storage",), ("a_directory.yaml", "is a directory")),
    Case("memory-storage-two-workers",
         args("run", "good.yaml", "--storage", ":memory:", "--workers", "2"),
         ("storage", "n_workers"), ("':memory:'", "is 2")),
    Case("study-override-bad-name", args("run", "good.yaml", "--study", "bad name!"),
         ("study (--study):",), ("'bad name!'",)),
    Case("timeout-nan", args("run", "good.yaml", "--timeout-s", "nan"),
         ("timeout_s (--timeout-s):",), ("nan",)),
    # -- commands on studies, models and the knowledge base -----------------------------------
    Case("show-unknown-study", args("show", "nosuch"), ("study",), ("'nosuch'",)),
    Case("show-without-store", args("show", "nosuch"), ("storage",), ("tuneops.journal",),
         in_world=False),
    Case("export-pruned-trial", args("export", PRUNED_STUDY, "--trial", "1"), ("--trial",),
         ("trial 1", "is pruned, not complete")),
    Case("export-missing-trial", args("export", PRUNED_STUDY, "--trial", "99"), ("--trial",),
         ("has no trial 99", "numbered 0 to")),
    Case("select-policy-typo", args("select", PRUNED_STUDY, "--policy", "knees"),
         ("policy",), ("'knees'",)),
    Case("select-constraint-malformed", args("select", PRUNED_STUDY, "-c", "value >> 1"),
         ("--constraint",), ("value >> 1",)),
    # a metric the study never measured: named as the argument it came from, as above
    Case("select-constraint-unmeasured", args("select", PRUNED_STUDY, "-c", "accuracy >= 0.9"),
         ("constraints (--constraint)",), ("'accuracy'", "did not measure")),
    Case("deploy-unknown-study", args("deploy", "nosuch"), ("study",), ("'nosuch'",)),
    Case("kb-recommend-unknown-family",
         args("kb", "recommend", "--data", "sklearn:iris", "--family", "knnn"),
         ("family",), ("'knnn'", "Did you mean 'knn'")),
    Case("kb-recommend-size-0",
         args("kb", "recommend", "--data", "sklearn:iris", "--family", "knn", "--size", "0"),
         ("--size",), ("received 0",)),
    Case("kb-recommend-family-flag",
         args("kb", "recommend", "--data", "sklearn:iris", "--family", "knnn"),
         ("--family",), ("'knnn'",)),
    Case("kb-export-suffix", args("kb", "export", "kb.txt"), ("kb export",), ("'kb.txt'",)),
    Case("registry-show-negative-events", args("registry", "show", "--events", "-3"),
         ("--events",), ("-3",)),
    Case("constraint-out-of-range", args("run", "constraint_out_of_range.yaml"),
         ("constraints",), ("'accuracy >= 1.5'", "from 0 to 1")),
    Case("storage-not-a-journal", args("show", "x", "--storage", "not_a_journal.json"),
         ("storage",), ("'not_a_journal.json'", "not an Optuna journal file")),
    Case("registry-unknown-model", args("registry", "show", "--model", "nope"), ("model",),
         ("'nope'", f"registered: {MODEL}")),
    Case("registry-unknown-version", args("registry", "show", "9"), ("version",), ("9",)),
    Case("rollback-unknown-version", args("registry", "rollback", "--to", "9"), ("--to",),
         ("9", "versions: 1, 2")),
    Case("promote-unknown-version", args("registry", "promote", "7"), ("version",), ("7",)),
    Case("monitor-missing-column", args("monitor", "--batch", "batch_missing.csv"),
         ("batch", FEATURES[0]), ("missing",)),
    Case("monitor-extra-column", args("monitor", "--batch", "batch_extra.csv"),
         ("batch", "zzz"), ("unexpected",)),
    Case("monitor-infinite", args("monitor", "--batch", "batch_inf.csv"), ("batch", FEATURES[2]),
         ("infinite values",)),
    Case("monitor-wrong-dtype", args("monitor", "--batch", "batch_dtype.csv"),
         ("batch", FEATURES[1]), ("'abc'", "expected numbers")),
    Case("monitor-empty-batch", args("monitor", "--batch", "batch_empty.csv"),
         ("--batch",), ("batch_empty.csv", "empty")),
    Case("monitor-missing-batch", args("monitor", "--batch", "nothere.csv"),
         ("--batch",), ("nothere.csv", "does not exist")),
    Case("monitor-small-batch", args("monitor", "--batch", "batch_small.csv"),
         ("monitor.min_rows",), ("5 rows",)),
    Case("monitor-fail-on-typo", args("monitor", "--batch", "batch_extra.csv", "--fail-on", "wrn"),
         ("--fail-on",), ("'wrn'",)),
    Case("retune-missing-data", args("retune", "--data", "nothere.csv"), ("--data",),
         ("nothere.csv",)),
    Case("show-sqlite-missing-directory", args("show", "x", "--storage", "sqlite:///nodir/x.db"),
         ("storage",), ("nodir", "does not exist")),
    Case("report-unknown-study", args("report", "nosuch"), ("study",), ("'nosuch'",)),
    Case("worker-unknown-study", args("worker", "--study", "nosuch", "--storage",
                                      "tuneops.journal"), ("study",), ("'nosuch'",)),
    Case("worker-grace-zero", args("worker", "--study", "x", "--storage", "tuneops.journal",
                                   "--grace-s", "0"), ("--grace-s",), ("received 0",)),
    Case("worker-grace-within-heartbeats",
         args("worker", "--study", "x", "--storage", "tuneops.journal", "--grace-s", "5",
              "--heartbeat-s", "10"), ("--grace-s", "two heartbeat intervals"), ("received 5",)),
    Case("worker-timeout-negative", args("worker", "--study", "x", "--storage",
                                         "tuneops.journal", "--timeout-s", "-1"),
         ("--timeout-s",), ("received -1",)),
    Case("deploy-custom-objective", args("deploy", PRUNED_STUDY), ("study",),
         ("custom objective",)),
    Case("export-custom-objective", args("export", PRUNED_STUDY), ("study",),
         ("custom objective",)),
    Case("kb-recommend-missing-data",
         args("kb", "recommend", "--data", "nowhere.csv", "--family", "knn"),
         ("data (--data)",), ("nowhere.csv",)),
    Case("kb-show-unknown", args("kb", "show", "nosuch"), ("kb show",), ("'nosuch'",)),
    Case("kb-list-missing-source", args("kb", "list", "--source", "nofile.json"),
         ("knowledge base",), ("nofile.json", "does not exist")),
    Case("promote-unknown-model", args("registry", "promote", "1", "--model", "nope"),
         ("model",), ("'nope'",)),
    Case("monitor-unsupported-type", args("monitor", "--batch", "batch.txt"), ("--batch",),
         ("'.txt'",)),
    Case("retune-extra-column", args("retune", "--data", "batch_extra.csv"), ("recent data",),
         ("zzz", "unexpected")),
    Case("simulate-unknown-dataset",
         args("simulate", "--dataset", "sklearn:nope", "--batches", "3"), ("--dataset",),
         ("'nope'",)),
    Case("simulate-no-batches", args("simulate", "--batches", "0"), ("--batches",),
         ("greater than or equal to 1",)),
    Case("simulate-shift-malformed", args("simulate", "--shift", "bogus"), ("--shift",),
         ("'bogus'",)),
    # -- the Python API --------------------------------------------------------------------------
    Case("tune-n_trials-negative", tune_with(n_trials=-1), ("n_trials",), ("-1",),
         error=SpecError, in_world=False),
    Case("tune-n_workers-0", tune_with(n_workers=0), ("n_workers",), ("0",), error=SpecError,
         in_world=False),
    Case("tune-timeout-negative", tune_with(timeout_s=-1.0), ("timeout_s",), ("-1",),
         error=SpecError, in_world=False),
    Case("tune-pruner-bad-dict", tune_with(pruner={"name": "median", "n_warmup": 1}),
         ("pruner.n_warmup",), ("'median' has no parameter",), error=SpecError, in_world=False),
    Case("tune-pruner-not-a-name", tune_with(pruner={"nme": "median"}), ("pruner",),
         ("'nme'",), error=SpecError, in_world=False),
    Case("tune-direction-typo", tune_with(directions=["maximise"]), ("directions",),
         ("'maximise'",), error=SpecError, in_world=False),
    Case("tune-direction-and-directions", tune_with(direction="minimize", directions=["minimize"]),
         ("direction",), ("'minimize'", "directions=[...]"), error=SpecError, in_world=False),
    Case("tune-direction-typo-singular", tune_with(direction="max"), ("direction:",), ("'max'",),
         error=SpecError, in_world=False),
    Case("tune-selection-weights-unread", tune_with(selection={"weights": {"value": 1}}),
         ("selection.weights",), ("read by policy 'weighted' only",), error=SpecError,
         in_world=False),
    Case("tune-policy-typo", tune_with(selection="knees"), ("selection.policy",),
         ("'knees'",), error=SpecError, in_world=False),
    Case("tune-weights-length",
         tune_with(objectives=["a", "b"], selection={"policy": "weighted", "weights": [1]}),
         ("selection.weights",), ("received [1]",), error=SpecError, in_world=False),
    Case("tune-sampler-typo", tune_with(sampler="tpee"), ("sampler",), ("'tpee'",),
         error=SpecError, in_world=False),
    Case("tune-storage-one-slash", tune_with(storage="postgresql:/host/db"), ("storage",),
         ("postgresql:/host/db",), error=StorageUnavailable, in_world=False),
    Case("tune-objective-not-callable", lambda: tuneops.tune("obj", n_trials=3), ("objective",),
         ("'obj'",), error=SpecError, in_world=False),
    Case("tune-objective-twice", tune_with(objectives=["a", "a"]), ("objectives",),
         ("'a' is listed twice",), error=SpecError, in_world=False),
    Case("tune-study-outside-out", tune_with(study="../../escaped"), ("study",),
         ("'../../escaped'",), error=SpecError, in_world=False),
    Case("tune-seed-negative", tune_with(seed=-1), ("seed",), ("-1",), error=SpecError,
         in_world=False),
    Case("tune-constraint-number", tune_with(constraints=[5]), ("constraints[0]",),
         ("int 5",), error=SpecError, in_world=False),
    Case("tune-constraints-mapping", tune_with(constraints={"a": 1}), ("constraints",),
         ("dict",), error=SpecError, in_world=False),
    Case("run-infinite-values",
         run_frame(_frame(40).assign(a=lambda f: f["a"].where(f.index > 1, np.inf))),
         ("data",), ("'a' (2)",), error=DataError, in_world=False),
    Case("run-cv_folds>smallest-class",
         run_frame(_frame(40, [0] * 37 + [1] * 3), cv_folds=5), ("search.cv_folds",),
         ("received 5",), error=SpecError, in_world=False),
    Case("load_spec-resources", lambda: tuneops.load_spec(
        tiny_spec(search={"n_trials": 3, "resources": {"cpu": "two"}})),
         ("search.resources",), ("'two'",), error=SpecError),
    Case("reselect-a-name", lambda: tuneops.reselect(PRUNED_STUDY), ("study",),
         ("str 'pr'", "load_study"), error=UsageError),
    Case("export_model-trial-text",
         lambda: tuneops.export_model(tuneops.load_study(PRUNED_STUDY), trial="3"), ("trial",),
         ("'3'",), error=UsageError),
    Case("load_model-the-metadata", lambda: tuneops.load_model("m/model.json"), ("model.json",),
         ("metadata", "model.joblib"), error=UsageError, in_world=False),
    Case("load_model-unverified-damaged",
         lambda: tuneops.load_model("not_a_journal.json", verify=False), ("not_a_journal.json",),
         ("cannot be read as a model",), error=UsageError),
    Case("load_spec-directory", lambda: tuneops.load_spec("a_directory.yaml"), ("spec",),
         ("a_directory.yaml",), error=SpecError),
    Case("load_dataset-nan-target",
         lambda: load_dataset(_frame(20, [0, 1] * 9 + [None, 1]), target="y"),
         ("data.target",), ("1 missing",), error=DataError),
    Case("registry-open-unknown", lambda: Registry.open("nope"), ("model",), ("'nope'",),
         error=StudyNotFound),
    Case("registry-rollback-unknown", _registry_call("rollback", 9), ("version",), ("9",)),
    Case("check_batch-missing-column",
         _check_batch(lambda: iris()[0].drop(columns=[FEATURES[2]])),
         ("batch", FEATURES[2]), ("missing",), error=DataError),
]


def _ids(case: Case) -> str:
    return case.id


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_bad_input(case: Case, workdir: Path, world: Path, cli: Any) -> None:
    if case.in_world:
        shutil.copytree(world, workdir, dirs_exist_ok=True, symlinks=True)
    before = snapshot(workdir)
    if isinstance(case.call, tuple):
        code, out, err = cli(*case.call)
        message = flat(err)
        assert code == 2, f"exit {code}\nstdout: {out}\nstderr: {err}"
        assert "Traceback" not in err
    else:
        with pytest.raises(TuneOpsError) as caught:
            case.call()
        assert isinstance(caught.value, case.error), repr(caught.value)
        if case.value_error:
            assert isinstance(caught.value, ValueError), repr(caught.value)
        message = flat(str(caught.value))
    for text in (*case.fields, *case.received):
        assert text in message, f"{text!r} not in the message: {message}"
    assert changes(before, snapshot(workdir)) == []


def test_the_corpus_is_large_and_named_uniquely() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)


# -- the documented exceptions: what may be written, and what is -------------------------------
def test_all_nan_column_is_dropped_with_a_warning_naming_it(inworld: Path) -> None:
    before = snapshot(inworld)
    with pytest.warns(DataWarning, match=r"entirely missing: 'empty'"):
        data = load_dataset("all_nan.csv", target="y")
    assert "empty" not in data.X.columns and data.dropped == ("empty",)
    assert changes(before, snapshot(inworld)) == []


def test_tune_pruner_as_a_dict_works(workdir: Path) -> None:
    result = tuneops.tune(_quadratic, n_trials=3, storage="s.journal", study="d",
                          pruner={"name": "median", "n_warmup_steps": 1})
    assert isinstance(result.study.pruner, optuna.pruners.MedianPruner)
    assert result.study.pruner._n_warmup_steps == 1  # noqa: SLF001 - what the dict asked for
    nested = tuneops.tune(_quadratic, n_trials=2, storage="s.journal", study="e",
                          pruner={"name": "median", "params": {"n_warmup_steps": 2}})
    assert nested.study.pruner._n_warmup_steps == 2  # noqa: SLF001
    assert result.results_path is not None and result.results_path.is_file()


def test_constraint_on_a_name_the_objective_never_returns(workdir: Path) -> None:
    """Documented: tune() stops at the first trial (recorded as failed) with a UsageError that
    names the constraint; no results are written."""
    with pytest.raises(UsageError) as caught:
        tuneops.tune(_quadratic, n_trials=5, storage="s.journal", study="c",
                     constraints=["latency_ms <= 3"])
    assert "latency_ms <= 3" in str(caught.value) and "'latency_ms'" in str(caught.value)
    study = optuna.load_study(study_name="c", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("s.journal")))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL]
    assert not (workdir / "tuneops-out").exists()


def test_nothing_written_means_nothing_written(workdir: Path) -> None:
    """The snapshot sees a new file, a new directory and a rewrite with the same size."""
    (workdir / "f").write_text("ab")
    before = snapshot(workdir)
    (workdir / "d").mkdir()
    (workdir / "f").write_text("ba")
    assert changes(before, snapshot(workdir)) == ["changed f", "created d"]
