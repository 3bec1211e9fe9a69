"""``--json``: every command that prints results prints one JSON document on stdout."""

from __future__ import annotations

import json
import math

import pytest
from conftest import tiny_spec


def write_spec(path, **changes):
    path.write_text(json.dumps(tiny_spec(**changes)))
    return path


def as_json(result: tuple[int, str, str]) -> object:
    code, out, err = result
    assert code == 0, err
    return json.loads(out)  # the whole of stdout is one document


def test_json_of_study_commands(workdir, cli):
    spec = write_spec(workdir / "s.yaml", n_trials=3)
    doc = as_json(cli("run", spec, "--json"))  # progress goes to stderr, not into the JSON
    assert doc["n_trials"] == {"complete": 3}
    assert doc["outputs"]["model"].endswith("model.joblib")
    assert doc["outputs"]["report"].endswith("report.html")
    assert as_json(cli("show", "tiny", "--json"))["selected"]["number"] == doc["selected"]["number"]
    reselected = as_json(cli("select", "tiny", "--policy", "lexicographic", "--json"))
    assert reselected["selection"]["policy"] == "lexicographic"
    exported = as_json(cli("export", "tiny", "--trial", "0", "--out", "e", "--json"))
    assert exported == {
        "study": "tiny", "trial": 0, "model": "e/model.joblib", "missed": [], "within_noise": []
    }
    report = as_json(cli("report", "tiny", "--out", "r.html", "--json"))
    assert report["files"] == ["r.html"]
    worker = as_json(cli("worker", "--study", "tiny", "--storage", "tuneops.journal", "--json"))
    assert worker == {"study": "tiny", "n_trials": 0}  # the budget is spent


def test_json_of_listings(cli):
    families = as_json(cli("families", "--json"))
    knn = next(f for f in families if f["name"] == "knn")
    assert knn["default_space"]["classification"]["n_neighbors"] == {
        "type": "int", "low": 1, "high": 50, "log": True
    }
    linear = next(f for f in families if f["name"] == "linear")
    assert list(linear["default_space"]["regression"]) == ["alpha"]  # Ridge: the task's own
    metrics = as_json(cli("metrics", "--json"))
    assert any(m["name"] == "latency_p95_ms" and m["direction"] == "minimize" for m in metrics)
    entries = as_json(cli("kb", "list", "--json", "--source", "shipped", "--family", "knn"))
    assert entries and all(e["family"] == "knn" and "best_score" in e for e in entries)


def test_json_of_the_production_loop(workdir, cli):
    from tuneops.data import load_dataset

    data = load_dataset("pmlb:phoneme")
    frame = data.X.assign(target=data.y).sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame.iloc[:600].to_csv("train.csv", index=False)
    frame.iloc[600:800].to_csv("batch.csv", index=False)
    spec = {"study": "phon", "data": {"source": "train.csv", "target": "target"},
            "model": {"family": "knn"}, "objectives": ["accuracy"],
            "search": {"n_trials": 2, "cv_folds": 2, "seed": 0},
            "monitor": {"retune_trials": 2, "min_rows": 50}}
    (workdir / "p.yaml").write_text(json.dumps(spec))
    assert cli("--quiet", "run", "p.yaml", "--no-report")[0] == 0
    deployed = as_json(cli("deploy", "phon", "--json"))
    assert deployed["version"] == 1 and deployed["model"] == "phon"
    listed = as_json(cli("registry", "list", "--json"))
    assert listed[0]["model"] == "phon" and listed[0]["champion"] == 1
    assert as_json(cli("registry", "show", "--json"))["version"]["version"] == 1
    checked = as_json(cli("monitor", "--batch", "batch.csv", "--json"))
    assert checked["assessment"]["decision"] in ("ok", "warn", "retune")
    outcome = as_json(cli("retune", "--data", "batch.csv", "--n-trials", "2", "--json"))
    assert outcome["decision"] in ("promote", "keep") and outcome["challenger"] == 2
    event = as_json(cli("registry", "promote", "2", "--json"))
    assert event["version"] == 2
    event = as_json(cli("registry", "rollback", "--json"))
    assert event["version"] == 1 and event["previous"] == 2


def test_json_is_strict(capsys):
    """NaN and infinity are not JSON: they are written as null."""
    from tuneops.cli._common import emit_json

    emit_json({"a": math.nan, "b": [math.inf, 1.5], "c": (1, 2)})
    assert json.loads(capsys.readouterr().out, parse_constant=pytest.fail) == {
        "a": None, "b": [None, 1.5], "c": [1, 2]}
