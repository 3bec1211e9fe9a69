"""End to end: the positive class and the baseline a run used are in results.json, and a run
whose best trial does not beat the baseline says so; bad cv_folds ends in exit 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import yaml
from conftest import tiny_spec

import tuneops


def hepatitis_like(signal: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.array(["live"] * 123 + ["die"] * 32)
    return pd.DataFrame(
        {
            "bilirubin": rng.normal(size=155) + signal * (y == "die"),
            "albumin": rng.normal(size=155),
            "target": y,
        }
    )


def test_results_record_the_positive_class_and_the_baseline(workdir):
    spec = tiny_spec(
        study="hep",
        data={"source": "hepatitis-like"},
        objectives=["f1", "accuracy"],
        n_trials=3,
        cv_folds=3,
    )
    result = tuneops.run(spec, dataset=hepatitis_like(signal=3.0))
    scoring = json.loads(result.results_path.read_text())["scoring"]
    assert scoring["pos_label"] == "die" and scoring["average"] == "binary"
    assert scoring["baseline_model"] == "majority class"
    assert scoring["baseline"]["f1"] == 0.0
    assert abs(scoring["baseline"]["accuracy"] - 123 / 155) < 0.01
    best_f1 = max(t["metrics"]["f1"] for t in result.results["trials"] if t["state"] == "COMPLETE")
    assert best_f1 > 0.5  # 'die' is learnable here; the constant 'live' model scores 0
    assert not [f for f in result.results["findings"] if f["topic"] == "baseline"]


def test_a_best_trial_no_better_than_the_baseline_is_a_finding(workdir):
    spec = tiny_spec(study="noise", data={"source": "noise"}, objectives=["accuracy"], n_trials=2)
    result = tuneops.run(spec, dataset=hepatitis_like(signal=0.0))
    found = [f for f in result.results["findings"] if f["topic"] == "baseline"]
    assert len(found) == 1 and found[0]["level"] == "warning"
    assert "no better than the majority class model's 0.7935" in found[0]["text"]


def test_cv_folds_above_the_smallest_class_exits_2_and_writes_nothing(workdir, cli):
    (workdir / "spec.yaml").write_text(yaml.safe_dump(tiny_spec(cv_folds=60)))
    code, out, err = cli("run", "spec.yaml", "--no-progress")
    assert code == 2
    assert "search.cv_folds: expected at most 50" in err and "received 60" in err
    assert sorted(p.name for p in workdir.iterdir()) == ["spec.yaml"]
