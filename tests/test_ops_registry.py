"""Registry, monitoring and re-tuning on a real (tiny) study: deploy, promote, keep, rollback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tuneops.claims import Claim
from tuneops.data import load_dataset
from tuneops.errors import DataError, IntegrityError, UsageError
from tuneops.ops.monitor import MonitorConfig
from tuneops.ops.registry import PREFIX, Registry, deploy, list_models
from tuneops.ops.monitor import metric_value
from tuneops.ops.retune import (
    RETUNE_ATTR,
    RetuneInterrupted,
    compare,
    monitor_batch,
    refresh,
    refresh_obstacle,
    retune,
    retune_work,
    unfinished_retune,
)
from tuneops.storage import get_storage


@pytest.fixture
def deployed(workdir: Path):
    """phoneme (PMLB) split into a training file and a pool of later rows; a tiny knn study."""
    from tuneops import tuning

    data = load_dataset("pmlb:phoneme")
    frame = data.X.assign(target=data.y).sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame.iloc[:800].to_csv("train.csv", index=False)
    spec = {
        "study": "phon", "data": {"source": "train.csv", "target": "target"}, "model": {"family": "knn"},
        "objectives": ["accuracy"], "search": {"n_trials": 3, "cv_folds": 2, "seed": 0},
        "monitor": {"retune_trials": 3, "min_rows": 50},
    }
    tuning.run(spec)
    record = deploy("phon")
    return Registry.open("phon"), record, frame.iloc[800:].reset_index(drop=True)


def flipped(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(target=1 - frame["target"])


def champion_of(frame: pd.DataFrame, study: str, family: str, objective: str, folds: int) -> Registry:
    """``frame`` (with its ``target``) written to train.csv, tuned by a 2-trial study, deployed."""
    from tuneops import tuning

    frame.to_csv("train.csv", index=False)
    tuning.run({
        "study": study, "data": {"source": "train.csv"}, "model": {"family": family},
        "objectives": [objective], "search": {"n_trials": 2, "cv_folds": folds, "seed": 0},
    })
    deploy(study)
    return Registry.open(study)


def test_deploy_records_a_versioned_champion_in_the_study_storage(deployed) -> None:
    registry, record, _ = deployed
    assert list_models() == ["phon"]
    names = [s.study_name for s in optuna.get_all_study_summaries(get_storage(None), include_best_trial=False)]
    assert PREFIX + "phon" in names  # same journal file as the study
    assert registry.champion() == 1
    assert record["source"] == {"study": "phon", "trial": record["source"]["trial"], "kind": "deploy"}
    assert record["artifact"]["sha256"].startswith("sha256:") and Path(record["artifact"]["path"]).is_file()
    assert record["data"]["fingerprint"] == load_dataset("train.csv", target="target").fingerprint
    profile = record["profile"]
    assert set(profile["features"]) == set(record["features"])
    assert profile["prediction"]["kind"] == "categorical" and profile["metric"] == "accuracy"
    assert 0.6 < profile["reference"] <= 1.0
    assert [e["kind"] for e in registry.events()] == ["register", "promote"]


def test_concept_drift_retunes_and_promotes_then_rollback(deployed) -> None:
    registry, _, pool = deployed
    batch = flipped(pool.iloc[:300])
    assessment, outcome, note = monitor_batch(registry, batch, auto_retune=True)
    assert assessment.decision == "retune" and note is None
    assert outcome.decision == "promote", outcome.reasons
    assert outcome.challenger_score > outcome.champion_score + 0.3
    low, high = outcome.gain_interval
    assert 0.3 < low <= outcome.challenger_score - outcome.champion_score <= high
    assert outcome.warm_start and outcome.warm_start[0]["source"] == "champion"
    study = optuna.load_study(study_name=outcome.study, storage=get_storage(None))
    assert study.trials[0].user_attrs["warm_start"] == "champion"
    assert study.trials[0].params == registry.version(1)["trial_params"]
    assert registry.champion() == 2
    # the model the re-tuning's run fitted and saved is registered, not fitted a second time
    assert registry.version(2)["artifact"]["from"] == "run"
    kinds = [e["kind"] for e in registry.events()]
    assert kinds[-4:] == ["monitor", "register", "retune", "promote"]
    # Within the cooldown, drift alone does not re-tune again ...
    shifted = pool.iloc[300:600].drop(columns=["target"]).assign(Aa=lambda f: f["Aa"] + 3)
    assessment, again, note = monitor_batch(registry, shifted, auto_retune=True)
    assert assessment.decision == "retune" and again is None
    assert "within monitor.cooldown 2" in note
    # ... but a measured drop of the metric does (the old labelling rule is back).
    assessment, again, note = monitor_batch(registry, pool.iloc[300:600], auto_retune=True)
    assert assessment.performance["drop"] > 0.3 and again is not None and note is None
    current = registry.champion()  # 3 when the second re-tuning promoted, else still 2
    expected = 2 if current == 3 else 1
    event = registry.rollback()
    assert (event["version"], event["previous"], registry.champion()) == (expected, current, expected)
    with pytest.raises(UsageError, match=r"model 'phon' has no version 9; versions: 1, 2"):
        registry.rollback(to=9)
    assert registry.champion() == expected


def test_keep_when_the_challenger_is_not_better_by_the_margin(deployed) -> None:
    registry, _, pool = deployed
    outcome = retune(registry, pool.iloc[:300], config=MonitorConfig(margin=0.5, retune_trials=3))
    assert outcome.decision == "keep"
    assert "not better by the margin; the champion stays" in outcome.reasons[0]
    assert registry.champion() == 1
    assert len(registry.versions()) == 2  # the challenger is kept as a version, not promoted
    assert registry.events("retune")[-1]["decision"] == "keep"
    with pytest.raises(
        UsageError, match=r"no previous champion to roll back to; name a version as to \(--to\)"
    ):
        registry.rollback()


def test_refresh_refits_a_retuned_champion_on_the_rows_since_the_change(deployed) -> None:
    registry, _, pool = deployed
    new = flipped(pool.iloc[:1000])  # the labelling rule changed
    outcome = retune(registry, new.iloc[:200], config=MonitorConfig(retune_trials=3, margin=0.0))
    assert outcome.decision == "promote" and outcome.rows == 140, outcome.reasons
    v2 = registry.version(2)
    assert v2["data"]["rows"] == 140
    config = registry.config(v2)
    # Only a champion fitted on a recent window, and only when the window holds more rows.
    assert "not fitted on a recent window (source 'deploy')" in refresh_obstacle(
        registry.version(1), 10_000, config
    )
    assert "v2 was fitted on 140 rows; the window holds 140" in refresh_obstacle(v2, 140, config)
    assert "refresh is off" in refresh_obstacle(v2, 10_000, MonitorConfig(refresh_rows=0))
    assert refresh_obstacle(v2, 600, config) is None
    batch, window = new.iloc[800:1000], new.iloc[:800]
    # A malformed window is refused before anything is recorded.
    events = len(registry.events())
    with pytest.raises(DataError, match=r"window \(--window\): no label column 'target'"):
        monitor_batch(registry, batch, auto_retune=True, window=window.drop(columns=["target"]))
    with pytest.raises(DataError, match=r"window \(--window\): .*missing feature column\(s\) Aa"):
        monitor_batch(registry, batch, auto_retune=True, window=window.drop(columns=["Aa"]))
    assert len(registry.events()) == events
    # A window that adds nothing says so.
    _, skipped, note = monitor_batch(registry, batch, auto_retune=True, window=window.iloc[:100])
    assert skipped is None and "refresh skipped: champion v2 was fitted on 140 rows" in note
    assessment, outcome, _ = monitor_batch(registry, batch, auto_retune=True, window=window)
    assert not assessment.performance["confident_drop"] > config.max_metric_drop
    assert outcome is not None and outcome.method == "refresh"
    assert (outcome.champion, outcome.rows, outcome.holdout_rows) == (2, 800, 200)
    v3 = registry.version(outcome.challenger)
    assert v3["source"] == {
        "study": v2["source"]["study"], "trial": v2["source"]["trial"],
        "kind": "refresh", "champion": 2, "rows": 800,
        "refreshed": registry.events("refresh")[-1]["refreshed"],
    }
    assert v3["data"]["rows"] == 800 and v3["params"] == v2["params"]
    # Both scored on the batch, which neither was fitted on; a tie goes to the refit.
    model, _ = registry.load_model(outcome.challenger)
    X, y = batch.drop(columns=["target"]), batch["target"].to_numpy()
    assert outcome.challenger_score == metric_value("accuracy", y, model.predict(X))
    promoted = outcome.challenger_score >= outcome.champion_score
    assert outcome.decision == ("promote" if promoted else "keep")
    assert registry.champion() == (outcome.challenger if promoted else 2)
    assert registry.events("refresh")[-1]["decision"] == outcome.decision
    assert "configuration refitted on 800 rows since the change (v2: 140)" in outcome.reasons[0]


def test_refresh_keeps_the_champion_when_the_refit_is_worse(deployed) -> None:
    registry, _, pool = deployed
    retune(registry, flipped(pool.iloc[:200]), config=MonitorConfig(retune_trials=3, margin=0.0))
    assert registry.champion() == 2
    # A window from before the change: the refit learns the old rule and loses on new rows.
    outcome = refresh(registry, pool.iloc[200:800], holdout=flipped(pool.iloc[800:1000]))
    assert outcome.decision == "keep" and outcome.challenger_score < outcome.champion_score - 0.3
    assert registry.champion() == 2 and registry.version(outcome.challenger)["data"]["rows"] == 600
    # the rule is "promoted when at least as good": no margin to fall short of
    assert "worse than the champion; the champion stays" in outcome.reasons[0]
    assert "by the margin" not in outcome.reasons[0]


def test_a_tie_keeps_a_champion_fitted_on_more_rows_than_the_refit(deployed, monkeypatch) -> None:
    """By hand (`retune --refresh`) a deployed champion, fitted on 800 rows, is refreshed on
    300: a tie on the held-out rows promoted the refit on fewer rows ("a tie goes to the larger
    sample", said the rule). The champion stays; a refit on more rows than it still wins a tie."""
    import tuneops.ops.retune as retune_module

    registry, _, pool = deployed
    monkeypatch.setattr(retune_module, "metric_value", lambda *a, **k: 0.75)  # every score ties
    outcome = refresh(registry, pool.iloc[:300])
    assert (outcome.decision, outcome.rows, registry.champion()) == ("keep", 210, 1), outcome
    assert outcome.reasons[0].endswith(
        "(gain +0, margin 0): a tie, and the champion was fitted on as many rows or more; it stays"
    ), outcome.reasons[0]
    assert "refitted on 210 rows since the change (v1: 800)" in outcome.reasons[0]
    outcome = refresh(registry, pool.iloc[:1300])
    assert (outcome.decision, outcome.rows) == ("promote", 910), outcome
    assert registry.champion() == outcome.challenger


def test_a_retuned_or_refreshed_champion_accepts_the_columns_its_predecessor_accepted(
    workdir: Path,
) -> None:
    """A re-tuning learns from recent rows with the champion's dropped columns left out, and a
    refresh's window may hold a column constant in its rows: the new version recorded neither
    as dropped, so once it was champion every batch (and every served request) holding the
    columns the source still has was refused as having unexpected columns."""
    from tuneops import tuning

    data = load_dataset("pmlb:phoneme")
    frame = data.X.assign(site=7.0, target=data.y).sample(frac=1.0, random_state=0)
    frame = frame.reset_index(drop=True)
    frame.iloc[:800].to_csv("train.csv", index=False)
    tuning.run({
        "study": "phon", "data": {"source": "train.csv", "drop": ["site"]},
        "model": {"family": "knn"}, "objectives": ["accuracy"],
        "search": {"n_trials": 2, "cv_folds": 2, "seed": 0},
        "monitor": {"retune_trials": 2, "min_rows": 50},
    })
    deploy("phon")
    registry = Registry.open("phon")
    assert registry.version(1)["data"]["dropped"] == ["site"]
    new = flipped(frame.iloc[800:1800]).reset_index(drop=True)
    outcome = retune(registry, new.iloc[:300], config=MonitorConfig(retune_trials=2, margin=0.0))
    assert outcome.decision == "promote", outcome.reasons
    assert registry.version(2)["data"]["dropped"] == ["site"]
    assessment, _, _ = monitor_batch(registry, new.iloc[300:400])  # holds site, as the source
    assert registry.champion() == 2 and assessment.n_rows == 100
    # A window in which Ao never changes: the refit cannot learn from it and drops it.
    window = new.iloc[:800].assign(Ao=0.5)
    with pytest.warns(UserWarning, match="Dropped 1 feature column.*Ao"):
        outcome = refresh(registry, window, holdout=new.iloc[800:1000])
    v3 = registry.version(outcome.challenger)
    assert "Ao" not in v3["features"] and v3["data"]["dropped"] == ["Ao", "site"]
    if registry.champion() != outcome.challenger:  # kept: a tie or worse on the held-out rows
        registry.promote(outcome.challenger, "test")
    assessment, _, _ = monitor_batch(registry, new.iloc[800:1000])  # holds Ao and site
    assert registry.champion() == outcome.challenger and assessment.n_rows == 200


def _coded_champion(workdir: Path, monkeypatch) -> Registry:
    """The champion of a study of PMLB-like data whose ``region`` is declared categorical and
    coded as numbers (test_data's ``coded`` set)."""
    from test_data import _coded

    from tuneops import tuning

    _coded(workdir)
    monkeypatch.setenv("TUNEOPS_PMLB_DIR", str(workdir / "pmlb"))
    tuning.run({
        "study": "coded", "data": {"source": "pmlb:coded", "categorical": "declared"},
        "model": {"family": "knn"}, "objectives": ["accuracy"],
        "search": {"n_trials": 2, "cv_folds": 2, "seed": 0},
    })
    deploy("coded")
    registry = Registry.open("coded")
    return registry


def test_a_champion_of_declared_categorical_codes_is_retuned(workdir: Path, monkeypatch) -> None:
    """``data.categorical: declared`` reads a PMLB source's metadata; the re-tuning, on rows given
    as a table, was refused ("'declared' ... is not a PMLB source") before anything was tuned."""
    registry = _coded_champion(workdir, monkeypatch)
    assert registry.version(1)["categorical"] == ["region"]
    recent = pd.read_csv(workdir / "coded.csv")
    outcome = retune(registry, recent, config=MonitorConfig(retune_trials=2, min_rows=50))
    challenger = registry.version(outcome.challenger)
    assert challenger["categorical"] == ["region"]  # still codes, not a quantity
    assert challenger["spec"]["data"]["categorical"] == ["region"]


def test_text_in_a_coded_category_is_refused_by_monitor_and_retune_as_serve_refuses_it(
    workdir: Path, monkeypatch, cli
) -> None:
    """``tuneops serve`` answers 422 for "high" in a category coded as numbers; a batch holding
    it was assessed (the text taken as a new category: a drift warning, and every code of the
    column, read from the file as text, scored as unseen), and a re-tuning trained a challenger
    whose categories were text, which refused every client's numbers once promoted. Both refuse
    it now, naming the column, what it takes and what was received; nothing is recorded."""
    import httpx

    from tuneops.ops.serve import ServeConfig, start_server

    registry = _coded_champion(workdir, monkeypatch)
    rows = pd.read_csv(workdir / "coded.csv")
    texted = rows.astype({"region": object})
    texted.loc[:2, "region"] = "north"
    texted.to_csv("texted.csv", index=False)
    before = len(registry.events())
    expected = (r"region \(expected a category as a number, one of 1, 2, 3, 4 \(another number is "
                r"scored as an unseen category\), or an empty cell for missing; received 3 "
                r"value\(s\) it cannot take, such as 'north'\)")
    code, _, err = cli("monitor", "--batch", "texted.csv")
    assert code == 2 and re.search(expected, err), err
    assert "error: batch texted.csv: wrong type" in err, err  # which batch: the file given
    with pytest.raises(DataError, match=expected):
        retune(registry, pd.read_csv("texted.csv"), config=MonitorConfig(retune_trials=2))
    with pytest.raises(DataError, match=expected):
        refresh(registry, pd.read_csv("texted.csv"))
    assert len(registry.events()) == before and registry.versions()[-1]["version"] == 1
    # the server refuses the same value, in the same words
    served = ServeConfig(model="coded", port=0, log=str(workdir / "log.jsonl"))
    with start_server(served) as server, httpx.Client(base_url=server.url) as client:
        row = {"region": "north", "income": 0.5, "flag": 1}
        answer = client.post("/predict", json=row)
        assert answer.status_code == 422
        assert "expected a category as a number, one of 1, 2, 3, 4" in answer.json()["error"]
        assert client.post("/predict", json={**row, "region": 2}).status_code == 200
    # The same rows from a prediction log (JSON, as a server of another version wrote them):
    # a missing value there is null, not "an empty cell" of a file.
    from tuneops.ops.predlog import PredictionLog

    with PredictionLog(workdir / "texted.jsonl") as log:
        for i, record in enumerate(texted.drop(columns="target").to_dict("records")):
            log.append({
                "kind": "prediction", "id": f"t{i}", "t": 1.0 + i, "version": 1,
                "role": "champion", "status": "ok", "latency_ms": 1.0, "n_rows": 1,
                "prediction": [1], "rows": [record],
            })
    code, _, err = cli("monitor", "--log", str(workdir / "texted.jsonl"))
    assert code == 2 and "or null for missing; received 3 value(s)" in err, err
    assert "empty cell" not in err, err
    # an infinite code, which the server refuses too (a file's "inf" is read as a number)
    infinite = rows.astype({"region": float})
    infinite.loc[5, "region"] = float("inf")
    with pytest.raises(DataError, match=r"region \(expected a category as a number.*such as inf\)"):
        monitor_batch(registry, infinite)
    # the codes as text (a frame read from a file whose column also held a word) are the same
    # categories: the model scores them as it scores the numbers
    as_numbers = monitor_batch(registry, rows)[0]
    as_text = monitor_batch(registry, rows.astype({"region": str}))[0]
    assert as_text.performance == as_numbers.performance


def test_digits_of_a_text_category_in_a_batch_are_its_categories(workdir: Path) -> None:
    """A category column that held a word in training (codes '1'-'4' and 'north') is text; a
    batch file holding only digits is read as numbers, which the model scored as unseen
    categories, silently (another accuracy than the same rows as text). They are the
    categories they write."""
    from test_data import _coded

    _coded(workdir)
    rows = pd.read_csv(workdir / "coded.csv")
    train = rows.astype({"region": object})
    train.loc[0, "region"] = "north"
    with pytest.warns(UserWarning, match="holds numbers but also 1 text value"):
        registry = champion_of(train, "worded", "knn", "accuracy", folds=2)
    assert registry.categories(1)[0] == {"region": "text"}
    as_numbers = monitor_batch(registry, rows)[0]
    as_text = monitor_batch(registry, rows.astype({"region": str}))[0]
    assert as_numbers.performance == as_text.performance


def test_a_retune_warns_once_of_a_column_its_rows_hold_constant_naming_those_rows(
    deployed,
) -> None:
    """Recent rows in which a feature never changes: the warning came twice, the second naming
    the champion's source ('train.csv'), which the re-tuning never read, and both said to
    remove the column from the data, which the champion's batches must hold."""
    import warnings

    registry, _, pool = deployed
    recent = flipped(pool.iloc[:300]).assign(Ao=0.5)
    with pytest.raises(DataError, match=r"missing feature column\(s\) Ao"):
        retune(registry, recent.drop(columns=["Ao"]), config=MonitorConfig(retune_trials=2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        retune(registry, recent, config=MonitorConfig(retune_trials=2))
    dropped = [str(w.message) for w in caught if "Dropped" in str(w.message)]
    assert len(dropped) == 1 and "'recent data of phon'" in dropped[0], dropped
    # the warning said to remove it from the data, but while the champion has it a file
    # without it is refused ("missing feature column(s) Ao")
    assert "Remove them" not in dropped[0] and "keep them in the files" in dropped[0]


def test_compare_requires_margin_and_constraints() -> None:
    assert compare("accuracy", 0.80, 0.85, 0.01, {})[0] == "promote"
    assert compare("accuracy", 0.80, 0.805, 0.01, {})[0] == "keep"
    decision, reasons = compare("accuracy", 0.80, 0.90, 0.01, {"latency_p95_ms <= 5": 2.5})
    assert decision == "keep" and "misses constraint 'latency_p95_ms <= 5' by 2.5" in reasons[1]
    assert compare("rmse", 3.0, 2.0, 0.5, {})[0] == "promote"  # lower is better
    # No margin (a refresh): worse is kept as worse, not as "not better by the margin".
    decision, reasons = compare("accuracy", 0.80, 0.79, 0.0, {})
    assert decision == "keep" and "worse than the champion; the champion stays" in reasons[0]
    assert compare("accuracy", 0.80, 0.80, 0.0, {})[0] == "promote"
    # With the gain's interval: better by the margin is not enough without confidence.
    decision, reasons = compare("accuracy", 0.80, 0.85, 0.01, {}, interval=(-0.02, 0.12))
    assert decision == "keep" and "not with 95% confidence" in reasons[0]
    assert "95% interval [-0.02, +0.12]" in reasons[0]
    decision, reasons = compare("accuracy", 0.80, 0.85, 0.01, {}, interval=(0.01, 0.09))
    assert decision == "promote" and "with 95% confidence" in reasons[0]


def test_malformed_batch_records_nothing(deployed, cli) -> None:
    registry, _, pool = deployed
    before = len(registry.events())
    pool.iloc[:100].drop(columns=["Aa"]).assign(extra=1).to_csv("bad.csv", index=False)
    code, _, err = cli("monitor", "--batch", "bad.csv")
    assert code == 2
    assert "missing feature column(s) Aa" in err and "unexpected column(s) extra" in err
    pool.iloc[:20].to_csv("small.csv", index=False)
    code, _, err = cli("monitor", "--batch", "small.csv")
    assert code == 2 and "20 rows, but at least 50" in err
    pool.iloc[:100].assign(Ao="abc").to_csv("text.csv", index=False)
    code, _, err = cli("monitor", "--batch", "text.csv")
    assert code == 2 and "wrong type in column(s) Ao" in err
    assert len(registry.events()) == before
    with pytest.raises(DataError, match="no label column 'target'; re-tuning and refresh learn from labelled data"):
        retune(registry, pool.iloc[:300].drop(columns=["target"]))
    assert len(registry.events()) == before
    # a label column with no label in it (an AssertionError traceback from the CLI, exit 1),
    # or too few: counted on the labelled rows, as they are what is trained and judged on
    pool.iloc[:300].assign(target=float("nan")).to_csv("unlabelled.csv", index=False)
    for args in (("retune", "--data", "unlabelled.csv"), ("retune", "--refresh", "--data", "unlabelled.csv")):
        code, _, err = cli(*args)
        assert code == 2 and "0 of its 300 rows have a label, but at least 50 labelled" in err, err
    # --n-trials 0 read as "the default" and ran monitor.retune_trials trials
    code, _, err = cli("retune", "--data", "unlabelled.csv", "--n-trials", "0")
    assert code == 2 and "--n-trials': Input should be greater than or equal to 1" in err, err
    few = pool.iloc[:300].copy()
    few.loc[few.index[40:], "target"] = float("nan")
    with pytest.raises(DataError, match="40 of its 300 rows have a label, but at least 50"):
        retune(registry, few)
    assert len(registry.events()) == before


def test_tampered_artifact_is_refused(deployed) -> None:
    registry, record, pool = deployed
    Path(record["artifact"]["path"]).write_bytes(b"not the model")
    with pytest.raises(IntegrityError, match="the file changed"):
        monitor_batch(registry, pool.iloc[:100])


def test_cli_production_loop(deployed, cli) -> None:
    registry, _, pool = deployed
    pool.iloc[:200].to_csv("ok.csv", index=False)
    code, out, _ = cli("monitor", "--batch", "ok.csv", "--json")
    assert code == 0
    assert json.loads(out)["assessment"]["decision"] in ("ok", "warn")
    code, _, err = cli("monitor", "--batch", "ok.csv", "--fail-on", "drift")
    assert code == 2 and "fail_on (--fail-on): expected one of warn, retune, received 'drift'" in err
    flipped(pool.iloc[200:500]).to_csv("drifted.csv", index=False)
    code, out, _ = cli("monitor", "--batch", "drifted.csv", "--fail-on", "retune")
    assert code == 3 and ": retune" in out, out
    code, out, _ = cli("monitor", "--batch", "ok.csv", "--fail-on", "retune")
    assert code == 0, out
    flipped(pool.iloc[200:500]).to_csv("recent.csv", index=False)
    code, out, _ = cli("retune", "--data", "recent.csv", "--model", "phon")
    assert code == 0 and "promote" in out
    code, out, _ = cli("registry", "list")
    assert code == 0 and "★ 2" in out
    flipped(pool.iloc[500:1100]).to_csv("since.csv", index=False)
    code, _, err = cli("retune", "--refresh", "--n-trials", "3", "--data", "since.csv")
    assert code == 2 and "--refresh refits the champion's configuration" in err
    code, _, err = cli("monitor", "--batch", "ok.csv", "--window", "since.csv")
    assert code == 2 and "--window" in err and "--auto-retune" in err
    code, out, _ = cli("retune", "--refresh", "--data", "since.csv", "--json")
    refreshed = json.loads(out)
    assert code == 0 and refreshed["method"] == "refresh" and refreshed["champion"] == 2
    assert (refreshed["rows"], refreshed["holdout_rows"]) == (420, 180)
    assert registry.version(refreshed["challenger"])["source"]["kind"] == "refresh"
    if refreshed["decision"] == "promote":
        registry.rollback()  # back to v2 for the rest of the test
    assert registry.champion() == 2
    code, out, _ = cli("registry", "show", "1")
    assert code == 0 and "version 1" in out and "retune" in out
    # the source in words, as `registry list` says it, not the raw record
    study = registry.version(refreshed["challenger"])["source"]["study"]
    code, out, _ = cli("registry", "show", str(refreshed["challenger"]))
    line = next(line for line in out.splitlines() if line.strip().startswith("source:"))
    assert f"source: refresh: {study} #" in line and "{" not in line, out
    assert line.endswith("(challenger to champion v2, refitted on 420 rows)"), out
    code, out, _ = cli("registry", "rollback", "--to", "7")
    assert code == 2
    code, out, _ = cli("registry", "rollback")
    assert code == 0 and "version 1 is the champion (was 2)" in out
    code, out, _ = cli("registry", "promote", "2")
    assert code == 0 and registry.champion() == 2
    code, _, err = cli("registry", "list", "--model", "nope")
    assert code == 2 and "no model 'nope'" in err
    code, _, err = cli("deploy", "nope")
    assert code == 2 and "no study 'nope'" in err


def test_readme_production_example(workdir: Path, cli) -> None:
    """The README's commands on examples/production.yaml (fewer trials), two objectives."""
    from tuneops.spec import load_spec

    root = Path(__file__).resolve().parents[1]
    example = root / "examples" / "production.yaml"
    assert MonitorConfig.from_spec(load_spec(example)) == MonitorConfig()  # it lists the defaults
    # The README's block sets where pmlb:phoneme is, and its one-line recipe makes a batch from
    # the PMLB file: run as written, from a folder where tests/ is the repository's.
    readme = (root / "README.md").read_text()
    assert "export TUNEOPS_PMLB_DIR=$PWD/tests/data/pmlb" in readme
    recipe = re.search(r'^python -c "(.+)"$', readme, re.MULTILINE).group(1)
    (workdir / "readme").mkdir()
    (workdir / "readme" / "tests").symlink_to(root / "tests")
    subprocess.run([sys.executable, "-c", recipe], cwd=workdir / "readme", check=True)
    batch = pd.read_csv(workdir / "readme" / "batch.csv")
    source = load_dataset("pmlb:phoneme")
    assert len(batch) == 600 and list(batch.columns) == [*source.X.columns, "target"]
    assert set(batch["target"]) == {0, 1}
    code, _, err = cli("run", str(example), "--n-trials", "3", "--no-progress")
    assert code == 0, err
    code, out, err = cli("deploy", "production")
    assert code == 0 and "version 1 is the champion" in out, err
    data = load_dataset("pmlb:phoneme")
    frame = data.X.assign(target=data.y).sample(n=600, random_state=1)
    frame.iloc[:300].to_csv("batch.csv", index=False)
    code, out, _ = cli("monitor", "--batch", "batch.csv", "--auto-retune")
    assert code == 0 and ": ok" in out or ": warn" in out
    flipped(frame.iloc[300:]).to_csv("recent.csv", index=False)
    code, out, _ = cli("monitor", "--batch", "recent.csv", "--auto-retune")
    assert code == 0 and ": retune" in out and "Re-tuning study production.retune-v2" in out, out
    assert "challenger v2, promote" in out and "meets the constraints" in out
    # the batch was judged against v1; the header named v2, promoted after it (audit)
    assert "production v1 on recent.csv" in out, out
    code, out, err = cli("registry", "show", "2")
    assert code == 0 and "retune" in out, (out, err)


def test_promote_and_rollback_by_hand_retire_the_challenger(workdir: Path) -> None:
    from _ops_helpers import logistic, register

    registry = Registry.open("iris", create=True)
    v1 = register(registry, logistic(1.0), workdir / "art", promote=True)
    v2 = register(registry, logistic(0.01), workdir / "art")
    with pytest.raises(UsageError, match="is the champion; a challenger is another version"):
        registry.set_challenger(v1, "shadow")
    registry.set_challenger(v2, "canary", 0.3)
    with pytest.raises(UsageError, match="already the champion"):
        registry.promote(v1)
    registry.promote(v2)
    assert registry.challenger() is None  # the champion does not also answer as the canary
    registry.set_challenger(v1, "shadow")
    registry.rollback()  # back to v1: it is the champion, not its own shadow
    assert registry.require_champion() == v1 and registry.challenger() is None
    assert [e["version"] for e in registry.events("promote")] == [v1, v2]
    # A challenger answers requests: its artifact must pass the check promote makes.
    Path(registry.version(v2)["artifact"]["path"]).write_bytes(b"tampered")
    with pytest.raises(IntegrityError):
        registry.set_challenger(v2, "shadow")
    assert registry.challenger() is None


def test_labels_in_another_encoding_are_refused_not_read_as_decay(deployed, cli) -> None:
    registry, _, pool = deployed
    before = len(registry.events())
    worded = pool.iloc[:100].assign(target=pool["target"].iloc[:100].map({0: "zero", 1: "one"}))
    worded.to_csv("worded.csv", index=False)
    code, _, err = cli("monitor", "--batch", "worded.csv", "--auto-retune")
    assert code == 2, err
    assert "labels are not among the classes the champion predicts (0, 1)" in err
    assert "such as 'zero', 'one'" in err.replace("\n", " ") or "'zero'" in err
    # One unknown label among known ones: drift to assess, but nothing to train a challenger on.
    odd = pool.iloc[:300].copy()
    odd.loc[odd.index[0], "target"] = 7
    with pytest.raises(DataError, match="1 of 300 labels are not among the classes"):
        retune(registry, odd)
    assert len(registry.events()) == before
    assert registry.require_champion() == 1


def test_label_ids_that_look_like_numbers_stay_text(deployed, cli) -> None:
    from tuneops.ops.predlog import PredictionLog, read_log

    with PredictionLog("p.jsonl") as log:
        for request_id in ("0042", "1.50"):
            log.append({"kind": "prediction", "id": request_id, "t": 1.0, "prediction": [1]})
    Path("labels.csv").write_text("request_id,label\n0042,1\n1.50,0\n")
    code, _, err = cli("label", "--labels", "labels.csv", "--log", "p.jsonl")
    assert code == 0, err
    assert {r["id"]: r.get("label") for r in read_log("p.jsonl").predictions} == {
        "0042": 1,
        "1.50": 0,
    }


def test_a_deploy_that_cannot_write_its_artifact_registers_nothing(deployed, cli) -> None:
    Path("blocker").write_text("a file where the artifact directory would go")
    code, _, err = cli("deploy", "phon", "--model", "other", "--artifacts", "blocker", "--no-verify")
    assert code == 2 and "is a file" in err
    assert "other" not in list_models()


def test_a_stopped_retune_resumes_its_study_under_the_same_version(deployed, cli, monkeypatch) -> None:
    """Ctrl-C after 2 of 4 trials: the same command goes on in the same study (retune-v2), its
    finished trials kept and the abandoned one run again, instead of a new study and version."""
    from tuneops.objective import SpecObjective

    registry, _, pool = deployed
    flipped(pool.iloc[:300]).to_csv("recent.csv", index=False)
    calls, real = [0], SpecObjective.__call__

    def stop_at_the_third(self, trial):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return real(self, trial)

    monkeypatch.setattr(SpecObjective, "__call__", stop_at_the_third)
    code, _, err = cli("retune", "--data", "recent.csv", "--n-trials", "4")
    assert code == 130, err
    assert "Stopped by SIGINT: re-tuning study phon.retune-v2 keeps its 2 finished trials; " in err
    assert "trial 2 was running: abandoned, it runs again on resume" in err
    assert "`tuneops retune --data recent.csv --model phon --n-trials 4` resumes it" in err
    assert registry.versions()[-1]["version"] == 1 and registry.events("retune") == []
    monkeypatch.setattr(SpecObjective, "__call__", real)
    code, out, err = cli("retune", "--data", "recent.csv", "--n-trials", "4", "--json")
    assert code == 0, err
    outcome = json.loads(out)
    assert (outcome["study"], outcome["challenger"]) == ("phon.retune-v2", 2)
    study = optuna.load_study(study_name="phon.retune-v2", storage=get_storage(None))
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 4 and states.count("FAIL") == 1, states
    assert [t.user_attrs.get("retry_of") for t in study.trials if "retry_of" in t.user_attrs] == [2]
    names = {s.study_name for s in optuna.get_all_study_summaries(get_storage(None), False)}
    assert not any(n.startswith("phon.retune-v3") for n in names)
    # Finished (its retune event names it): never resumed again, even against the same champion.
    mark = study.user_attrs[RETUNE_ATTR]
    assert mark["champion"] == 1 and mark["version"] == 2
    assert unfinished_retune(registry, 1, mark["data"], mark["tuning_data"]) is None


def test_a_monitor_stopped_while_re_tuning_says_what_it_kept_and_resumes(
    deployed, cli, monkeypatch
) -> None:
    """SIGTERM during `monitor --auto-retune`'s re-tuning: the assessment and the finished
    trials are kept, the message says so and what the same command does (it said only the
    generic "no file is left half-written", as SIGINT); that command resumes retune-v2."""
    import signal

    from tuneops.objective import SpecObjective

    registry, _, pool = deployed
    flipped(pool.iloc[:300]).to_csv("batch.csv", index=False)
    calls, real = [0], SpecObjective.__call__

    def stop_at_the_third(self, trial):
        calls[0] += 1
        if calls[0] == 3:  # a real SIGTERM (`kill`): it was taken for Ctrl-C (exit 130)
            signal.raise_signal(signal.SIGTERM)
        return real(self, trial)

    monkeypatch.setattr(SpecObjective, "__call__", stop_at_the_third)
    code, _, err = cli("monitor", "--batch", "batch.csv", "--auto-retune")
    assert code == 143, err
    err = " ".join(err.split())
    assert (
        "Stopped by SIGTERM: the batch's assessment is recorded, no alert was sent; re-tuning "
        "study phon.retune-v2 keeps its 2 finished trials; trial 2 was running: abandoned"
    ) in err, err
    assert (
        "`tuneops monitor --batch batch.csv --model phon --auto-retune` assesses the batch "
        "again and resumes it" in err
    ), err
    assert len(registry.events("monitor")) == 1 and registry.events("retune") == []
    monkeypatch.setattr(SpecObjective, "__call__", real)
    code, out, err = cli(
        "monitor", "--batch", "batch.csv", "--model", "phon", "--auto-retune", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["retune"]["study"] == "phon.retune-v2"
    study = optuna.load_study(study_name="phon.retune-v2", storage=get_storage(None))
    assert [t.state.name for t in study.trials].count("COMPLETE") == 3


def test_a_monitor_stopped_after_its_challenger_was_registered_says_sigterm_once(
    deployed, cli, monkeypatch
) -> None:
    """SIGTERM while the challenger is compared: it said "Stopped by SIGINT: ... did not finish"
    then "Stopped by SIGTERM before the command started; nothing was done"."""
    import signal

    import tuneops.ops.retune as retune_module

    registry, _, pool = deployed
    flipped(pool.iloc[:300]).to_csv("batch.csv", index=False)
    monkeypatch.setattr(
        retune_module, "paired_gain", lambda *a, **k: signal.raise_signal(signal.SIGTERM)
    )
    code, _, err = cli("monitor", "--batch", "batch.csv", "--auto-retune")
    assert code == 143, err
    err = " ".join(err.split())
    assert err.count("Stopped by") == 1 and "SIGINT" not in err, err
    assert (
        "re-tuning study phon.retune-v2 finished and registered its challenger v2, which was "
        "not compared with the champion yet. `tuneops monitor --batch batch.csv --model phon "
        "--auto-retune` assesses the batch again and compares it" in err
    ), err


def test_a_second_retune_of_the_same_data_is_refused_while_the_first_runs(
    deployed, monkeypatch
) -> None:
    """Two re-tunings of the same data at once: the second found the first's study unfinished
    and resumed it beside it (both registering and judging its challenger); it is refused,
    naming the first, and the first ends alone. Once it has ended, the same data finds its
    recorded outcome (recorded_retune)."""
    import socket

    from tuneops.errors import RunInProgress
    from tuneops.objective import SpecObjective

    registry, _, pool = deployed
    recent = flipped(pool.iloc[:300])
    refused, real = [], SpecObjective.__call__

    def second_run_during_the_second_trial(self, trial):
        if trial.number == 1 and not refused:
            with pytest.raises(RunInProgress) as info:
                retune(registry, recent, n_trials=3)
            refused.append(str(info.value))
        return real(self, trial)

    monkeypatch.setattr(SpecObjective, "__call__", second_run_during_the_second_trial)
    outcome = retune(registry, recent, n_trials=3)
    (message,) = refused
    assert (
        f"re-tuning study phon.retune-v2 (these data against champion v1 of 'phon') is being "
        f"run by {socket.gethostname()}:{os.getpid()} since " in message
    ), message
    assert "`tuneops show phon.retune-v2` follows it" in message
    assert message.endswith("Nothing was tuned or registered.")
    assert (outcome.study, outcome.challenger) == ("phon.retune-v2", 2)
    assert [e["study"] for e in registry.events("retune")] == ["phon.retune-v2"]
    assert [v["version"] for v in registry.versions()] == [1, 2]
    study = optuna.load_study(study_name="phon.retune-v2", storage=get_storage(None))
    assert len(study.trials) == 3
    # the claims are released at the end: no claim study is left
    assert not [s for s in get_storage(None).get_all_studies() if s.study_name.startswith("tuneops-claim:")]


def at_the_same_moment(run):
    """``run(registry)`` in two threads released together, each with its own registry and
    storage objects (two monitors): what each returned, or the RunInProgress it raised."""
    import threading

    from tuneops.errors import RunInProgress

    start, answers = threading.Barrier(2), []

    def monitor() -> None:
        mine = Registry.open("phon")
        start.wait()
        try:
            answers.append(run(mine))
        except RunInProgress as exc:
            answers.append(exc)

    threads = [threading.Thread(target=monitor) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return answers


def test_two_retunes_of_the_same_data_started_at_the_same_moment_run_once(deployed) -> None:
    """Two monitors re-tune the same rows at the same moment (threads, each with its own
    registry and storage objects): both found nothing to resume, reserved v2 and v3 and tuned,
    registered and judged twice. Now one runs and the other is refused, naming it."""
    from tuneops.errors import RunInProgress

    registry, _, pool = deployed
    recent = flipped(pool.iloc[:300])
    answers = at_the_same_moment(lambda mine: retune(mine, recent, n_trials=2))
    assert sorted(type(a).__name__ for a in answers) == ["RetuneOutcome", "RunInProgress"], answers
    (refused,) = [a for a in answers if isinstance(a, RunInProgress)]
    assert "against champion v1 of 'phon') is being run by" in str(refused) or (
        "a re-tuning of these data against champion v1 of 'phon' is being run by" in str(refused)
    ), refused
    assert [v["version"] for v in registry.versions()] == [1, 2]
    assert [e["study"] for e in registry.events("retune")] == ["phon.retune-v2"]


def test_two_refreshes_of_the_same_rows_started_at_the_same_moment_refit_once(deployed) -> None:
    """Two monitors refresh the same rows at the same moment (threads, each with its own
    registry and storage objects): refresh took no claim, so both registered a refit (v3 and
    v4) and recorded two `refresh` events. Now one refits; the other is refused, naming it, or
    (when it claims after the first ended) finds the recorded outcome."""
    from tuneops.errors import RunInProgress

    registry, _, pool = deployed
    new = flipped(pool.iloc[:1000])
    retune(registry, new.iloc[:200], config=MonitorConfig(retune_trials=3, margin=0.0))
    assert registry.champion() == 2
    window, batch = new.iloc[:800], new.iloc[800:1000]
    answers = at_the_same_moment(lambda mine: refresh(mine, window, holdout=batch))
    assert len(answers) == 2, answers
    refits = [v["version"] for v in registry.versions() if v["source"]["kind"] == "refresh"]
    assert refits == [3], registry.versions()
    assert [e["challenger"] for e in registry.events("refresh")] == [3]
    outcomes = [a for a in answers if not isinstance(a, Exception)]
    assert outcomes and all(o.challenger == 3 for o in outcomes), answers
    for refused in (a for a in answers if isinstance(a, Exception)):
        assert isinstance(refused, RunInProgress), refused
        assert "a refresh of these rows against champion v2 of 'phon' is being run by" in str(
            refused
        ), refused
        assert str(refused).endswith("Nothing was refitted or registered."), refused
    if len(outcomes) == 2:  # the second claimed after the first had ended: its recorded outcome
        assert any("not refitted again" in o.reasons[-1] for o in outcomes), outcomes
    # the claims are released at the end: no claim study is left
    assert not [s for s in get_storage(None).get_all_studies() if s.study_name.startswith("tuneops-claim:")]


def test_a_refresh_is_refused_while_another_run_of_it_holds_its_claim(deployed) -> None:
    """A live process holding the claim on these rows (as another machine's monitor would):
    the refresh is refused before anything is written; other rows refresh side by side."""
    from tuneops.data import fingerprint
    from tuneops.errors import RunInProgress
    from tuneops.ops.retune import refresh_work

    registry, _, pool = deployed
    new = flipped(pool.iloc[:1000])
    retune(registry, new.iloc[:200], config=MonitorConfig(retune_trials=3, margin=0.0))
    window, batch = new.iloc[:800], new.iloc[800:1000]
    refreshed = {
        "data": fingerprint(window.drop(columns=["target"]), window["target"]),
        "holdout": fingerprint(batch.drop(columns=["target"]), batch["target"]),
        "seed": 0,
    }
    other = Claim(get_storage(None), refresh_work("phon", 2, refreshed),
                  {"host": "elsewhere", "pid": 1, "id": "elsewhere:1"})
    assert other.acquire() is None
    versions, events = len(registry.versions()), len(registry.events())
    with pytest.raises(RunInProgress, match=r"a refresh of these rows against champion v2 of "
                       r"'phon' is being run by elsewhere:1 since .*Nothing was refitted or "
                       r"registered\.$"):
        refresh(registry, window, holdout=batch)
    assert (len(registry.versions()), len(registry.events())) == (versions, events)
    # other rows are another refresh: not held by that claim
    outcome = refresh(registry, window.iloc[100:], holdout=batch)
    assert outcome.challenger == versions + 1
    other.release()


def _refresh_stopped_after_registering(deployed, monkeypatch):
    """A re-tuned champion (v2) and a refresh of it stopped (Ctrl-C) after it registered its
    refit v3, before judging it: ``(registry, window, batch)`` of that refresh."""
    import tuneops.ops.retune as retune_module

    registry, _, pool = deployed
    new = flipped(pool.iloc[:1000])
    retune(registry, new.iloc[:200], config=MonitorConfig(retune_trials=3, margin=0.0))
    window, batch = new.iloc[:800], new.iloc[800:1000]
    real = retune_module.metric_value

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(retune_module, "metric_value", stop)
    with pytest.raises(KeyboardInterrupt):
        refresh(registry, window, holdout=batch)
    monkeypatch.setattr(retune_module, "metric_value", real)
    return registry, window, batch


def test_a_refresh_stopped_after_registering_its_refit_judges_it_when_run_again(
    deployed, monkeypatch
) -> None:
    """Ctrl-C after the refit was registered, before it was judged: the rerun registered the
    same refit again (v4 beside an orphan v3 that no event judged). Now it judges v3."""
    from tuneops.ops.retune import unfinished_refresh

    registry, window, batch = _refresh_stopped_after_registering(deployed, monkeypatch)
    assert [v["version"] for v in registry.versions()] == [1, 2, 3]
    assert not registry.events("refresh") and registry.champion() == 2
    refreshed = registry.version(3)["source"]["refreshed"]
    assert unfinished_refresh(registry, 2, refreshed)["version"] == 3
    outcome = refresh(registry, window, holdout=batch)
    assert (outcome.champion, outcome.challenger, outcome.rows) == (2, 3, 800)
    assert [v["version"] for v in registry.versions()] == [1, 2, 3]
    assert [e["challenger"] for e in registry.events("refresh")] == [3]
    assert registry.events("refresh")[0]["refreshed"] == refreshed
    # judged now: no longer unfinished; other rows, or another champion, are not this refit
    assert unfinished_refresh(registry, 2, refreshed) is None
    assert unfinished_refresh(registry, 1, refreshed) is None


def test_a_refresh_with_another_seed_refits_anew_not_the_refit_or_outcome_of_another(
    deployed, monkeypatch
) -> None:
    """A refresh of the same rows, judged on the same held-out batch, with another seed: it
    judged the refit the stopped seed-0 refresh registered (v3), and after that one's outcome
    was recorded it returned that outcome ("another seed refits them anew", it said). The seed
    is part of what a refresh is found by: another seed registers its own refit."""
    from tuneops.ops.retune import unfinished_refresh

    registry, window, batch = _refresh_stopped_after_registering(deployed, monkeypatch)
    assert registry.version(3)["source"]["refreshed"]["seed"] == 0
    outcome = refresh(registry, window, holdout=batch, seed=1)
    assert (outcome.champion, outcome.challenger) == (2, 4), outcome
    assert registry.version(4)["source"]["refreshed"]["seed"] == 1
    assert registry.events("refresh")[-1]["refreshed"]["seed"] == 1
    # v3, the seed-0 refit, is left for a rerun with seed 0, which judges it
    assert unfinished_refresh(registry, 2, registry.version(3)["source"]["refreshed"])["version"] == 3
    # a recorded outcome is found only by the same seed
    champion = registry.champion()
    again = refresh(registry, window, holdout=batch, seed=1)
    assert "not refitted again" in again.reasons[-1] and again.challenger == 4
    other = refresh(registry, window, holdout=batch, seed=2)
    assert other.champion == champion and other.challenger == 5, other
    assert [e["challenger"] for e in registry.events("refresh")] == [4, 5]


def test_a_refresh_stopped_while_judging_its_refit_says_so_and_the_rerun_judges_it(
    deployed, cli, monkeypatch
) -> None:
    """SIGTERM after the refit was registered, while it was judged: the stop said "the refresh
    did not finish. ... runs it again" (which registered another refit). Now it names the refit
    kept, and the same command judges that one."""
    import signal

    import tuneops.ops.retune as retune_module

    registry, _, pool = deployed
    flipped(pool.iloc[:300]).to_csv("since.csv", index=False)
    real = retune_module.metric_value
    monkeypatch.setattr(
        retune_module, "metric_value", lambda *a, **k: signal.raise_signal(signal.SIGTERM)
    )
    code, _, err = cli("retune", "--refresh", "--data", "since.csv")
    assert code == 143, err
    err = " ".join(err.split())
    assert err.count("Stopped by") == 1, err
    assert (
        "Stopped by SIGTERM: the refresh registered its refit v2, which was not compared with the "
        "champion yet. `tuneops retune --data since.csv --model phon --refresh` compares it and "
        "promotes it or keeps the champion, without refitting." in err
    ), err
    monkeypatch.setattr(retune_module, "metric_value", real)
    code, out, err = cli("retune", "--refresh", "--data", "since.csv", "--json")
    assert code == 0, err
    assert json.loads(out)["challenger"] == 2
    assert [v["version"] for v in registry.versions()] == [1, 2]
    assert [e["challenger"] for e in registry.events("refresh")] == [2]


def test_an_unfinished_refit_whose_artifact_changed_is_not_reused(deployed, monkeypatch) -> None:
    registry, window, batch = _refresh_stopped_after_registering(deployed, monkeypatch)
    path = Path(registry.version(3)["artifact"]["path"])
    path.write_bytes(path.read_bytes() + b"\0")
    outcome = refresh(registry, window, holdout=batch)
    assert outcome.challenger == 4  # refitted anew, not the tampered v3 judged


def _stopped_when_comparing(registry, recent, monkeypatch) -> RetuneInterrupted:
    """A retune stopped (Ctrl-C) while it compares its registered challenger with the
    champion; the comparison works again afterwards."""
    import tuneops.ops.retune as retune_module

    real = retune_module.paired_gain

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(retune_module, "paired_gain", stop)
    with pytest.raises(RetuneInterrupted) as info:
        retune(registry, recent, n_trials=2)
    monkeypatch.setattr(retune_module, "paired_gain", real)
    return info.value


def test_a_retune_whose_run_died_is_resumed_by_the_next(deployed, monkeypatch) -> None:
    """A claim left by a process that is gone (killed outright) does not block the resume."""
    import socket

    registry, _, pool = deployed
    recent = flipped(pool.iloc[:300])
    _stopped_when_comparing(registry, recent, monkeypatch)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    study = optuna.load_study(study_name="phon.retune-v2", storage=get_storage(None))
    dead = {"run": "x", "host": socket.gethostname(), "pid": int(gone.stdout), "since": 1.0}
    left = Claim(get_storage(None), retune_work("phon", study.user_attrs[RETUNE_ATTR]), dead)
    assert left.acquire() is None  # the claim of a run killed outright, never released
    outcome = retune(registry, recent, n_trials=2)
    assert (outcome.study, outcome.challenger) == ("phon.retune-v2", 2)
    assert not [s for s in get_storage(None).get_all_studies() if s.study_name.startswith("tuneops-claim:")]


def test_a_retune_stopped_after_registering_its_challenger_compares_it_when_resumed(
    deployed, monkeypatch
) -> None:
    registry, _, pool = deployed
    recent = flipped(pool.iloc[:300])
    stopped = _stopped_when_comparing(registry, recent, monkeypatch)
    assert (stopped.study, stopped.version, stopped.registered) == ("phon.retune-v2", 2, True)
    assert stopped.exit_code == 130 and registry.events("retune") == []
    outcome = retune(registry, recent, n_trials=2)
    assert (outcome.study, outcome.challenger) == ("phon.retune-v2", 2)
    assert outcome.challenger_score is not None
    assert [v["version"] for v in registry.versions()] == [1, 2]  # v2 compared, not another


@pytest.mark.parametrize("moment", ["after the event", "before the promotion", "while printing"])
def test_a_retune_stopped_after_recording_its_outcome_says_so_and_is_not_tuned_again(
    deployed, cli, monkeypatch, moment
) -> None:
    """SIGTERM just after the `retune` event was recorded: the stop said "finished and
    registered its challenger v2, which was not compared with the champion yet" (or "no
    re-tuning study was started", or "did not finish"), the outcome was not printed, the
    promotion it recorded could be left undone, and the same command re-tuned the rows again
    as v3. Now the outcome is printed, the stop says what was recorded, and the rerun finds it."""
    import signal

    import tuneops.cli.monitor as cli_monitor

    registry, _, pool = deployed
    flipped(pool.iloc[:300]).to_csv("recent.csv", index=False)
    record, promote, show = Registry.record, Registry.promote, cli_monitor._print_outcome

    def record_then_stop(self, kind, **payload):
        event = record(self, kind, **payload)
        if kind == "retune" and moment == "after the event":
            signal.raise_signal(signal.SIGTERM)
        return event

    def stop_then_promote(self, *args, **kwargs):
        if moment == "before the promotion":
            signal.raise_signal(signal.SIGTERM)
        return promote(self, *args, **kwargs)

    def stop_then_print(outcome):
        if moment == "while printing":
            signal.raise_signal(signal.SIGTERM)
        show(outcome)

    monkeypatch.setattr(Registry, "record", record_then_stop)
    monkeypatch.setattr(Registry, "promote", stop_then_promote)
    monkeypatch.setattr(cli_monitor, "_print_outcome", stop_then_print)
    code, out, err = cli("retune", "--data", "recent.csv")
    assert code == 143, err
    assert "Re-tuning study phon.retune-v2: challenger v2, promote" in out, out
    err = " ".join(err.split())
    assert err.count("Stopped by") == 1, err
    assert (
        "Stopped by SIGTERM: the re-tuning had finished and its outcome is recorded (challenger "
        "v2 promoted). `tuneops retune --data recent.csv --model phon` finds that outcome and "
        "prints it, without re-tuning." in err
    ), err
    assert registry.champion() == 2 and len(registry.events("retune")) == 1
    for owner, name, real in (
        (Registry, "record", record), (Registry, "promote", promote), (cli_monitor, "_print_outcome", show)
    ):
        monkeypatch.setattr(owner, name, real)
    code, out, err = cli("retune", "--data", "recent.csv", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert (found["study"], found["challenger"], found["decision"]) == ("phon.retune-v2", 2, "promote")
    assert "not re-tuned again" in found["reasons"][-1]
    assert [v["version"] for v in registry.versions()] == [1, 2]
    assert len(registry.events("retune")) == 1 and len(registry.events("promote")) == 2


@pytest.mark.parametrize("labels", ["as trained", "flipped"])
def test_a_refresh_stopped_after_recording_its_outcome_is_not_refitted_again(
    deployed, cli, monkeypatch, labels
) -> None:
    """SIGTERM just after the `refresh` event was recorded: the outcome was printed and the stop
    said it was recorded, but the same command refitted the same rows again as v3 (and, after a
    promotion, judged that refit against the refit it had promoted). Now it finds the recorded
    outcome; another --seed refits anew."""
    import signal

    registry, _, pool = deployed
    rows = pool.iloc[:300] if labels == "as trained" else flipped(pool.iloc[:300])
    rows.to_csv("since.csv", index=False)
    record = Registry.record

    def record_then_stop(self, kind, **payload):
        event = record(self, kind, **payload)
        if kind == "refresh":
            signal.raise_signal(signal.SIGTERM)
        return event

    monkeypatch.setattr(Registry, "record", record_then_stop)
    code, out, err = cli("retune", "--refresh", "--data", "since.csv", "--json")
    assert code == 143, err
    first = json.loads(out)
    assert first["challenger"] == 2 and (labels == "as trained" or first["decision"] == "promote")
    err = " ".join(err.split())
    assert (
        "Stopped by SIGTERM: the refresh had finished and its outcome is recorded (challenger v2 "
        in err
    ), err
    assert (
        "`tuneops retune --data since.csv --model phon --refresh` finds that outcome and prints "
        "it, without refitting." in err
    ), err
    monkeypatch.setattr(Registry, "record", record)
    code, out, err = cli("retune", "--refresh", "--data", "since.csv", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert {k: v for k, v in found.items() if k != "reasons"} == {
        k: v for k, v in first.items() if k != "reasons"
    }
    assert found["reasons"][:-1] == first["reasons"]
    assert "by an earlier refresh of v1 on the same rows; not refitted again" in found["reasons"][-1]
    assert [v["version"] for v in registry.versions()] == [1, 2]
    assert len(registry.events("refresh")) == 1
    code, out, err = cli("retune", "--refresh", "--data", "since.csv", "--seed", "1", "--json")
    assert code == 0 and json.loads(out)["challenger"] == 3, err


def test_a_promotion_a_crash_left_undone_is_finished_by_the_next_retune(deployed, monkeypatch) -> None:
    """The process died between the `retune` event (decision promote) and the promotion: the
    next re-tuning of the same rows promotes the recorded challenger instead of tuning again."""
    registry, _, pool = deployed
    recent = flipped(pool.iloc[:300])
    promote = Registry.promote

    def crash(self, *args, **kwargs):
        raise OSError("the machine went down")

    monkeypatch.setattr(Registry, "promote", crash)
    with pytest.raises(OSError, match="went down"):
        retune(registry, recent, n_trials=2)
    assert registry.champion() == 1 and registry.events("retune")[-1]["decision"] == "promote"
    monkeypatch.setattr(Registry, "promote", promote)
    outcome = retune(registry, recent, n_trials=2)
    assert (outcome.challenger, outcome.decision) == (2, "promote")
    assert registry.champion() == 2 and [v["version"] for v in registry.versions()] == [1, 2]
    assert len(registry.events("retune")) == 1


def test_a_deploy_stopped_while_writing_its_artifact_leaves_nothing(deployed, cli, monkeypatch) -> None:
    """Ctrl-C after model.json was copied: no artifact left in the registry's directory, no
    version, and the message says so (it said nothing and left an orphan v2)."""
    import tuneops.ops.registry as registry_module

    registry, _, _ = deployed
    _champion_of_another_trial(registry, cli)  # the selected trial deploys as a new version
    real = registry_module.copy_atomic

    def stop_on_the_model(source, path):
        if Path(path).name == "model.joblib":
            raise KeyboardInterrupt
        return real(source, path)

    monkeypatch.setattr(registry_module, "copy_atomic", stop_on_the_model)
    code, _, err = cli("deploy", "phon", "--no-verify")
    assert code == 130
    assert "Stopped by SIGINT before a version was registered: nothing was kept" in err, err
    assert "`tuneops deploy phon --no-verify` runs it again" in err
    assert sorted(p.name for p in Path("tuneops-out/registry/phon").iterdir()) == ["v1", "v2"]
    assert [v["version"] for v in registry.versions()] == [1, 2]
    assert [e["kind"] for e in registry.events()] == ["register", "promote"] * 2


def _champion_of_another_trial(registry: Registry, cli) -> None:
    """Version 2, of a trial other than the selected one, made the champion: a deploy of the
    selected trial (version 1's) is then a new version, not the champion's own trial again."""
    selected = registry.version(1)["source"]["trial"]
    other = next(t for t in range(3) if t != selected)
    assert cli("deploy", "phon", "--trial", str(other), "--no-verify")[0] == 0
    assert registry.champion() == 2


def test_a_deploy_stopped_during_the_staging_gate_is_finished_by_the_same_command(
    deployed, cli, monkeypatch
) -> None:
    """SIGTERM during the gate: the version is registered, not verified, and the message says
    what finishes it; the same deploy then verifies and promotes it instead of adding v3."""
    import signal
    from types import SimpleNamespace

    import tuneops.ops.verify as verify_module
    from tuneops.runner import Interrupted

    registry, _, _ = deployed
    _champion_of_another_trial(registry, cli)

    def stopped(reg, version, **kwargs):
        raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(verify_module, "verify", stopped)
    code, _, err = cli("deploy", "phon")
    assert code == 143
    assert "Stopped by SIGTERM: model phon version 3 is registered, not verified, not the champion" in err, err
    assert "`tuneops deploy phon` finishes it (no other version is registered)" in err
    assert "`tuneops verify 3 --model phon` then `tuneops registry promote 3 --model phon`" in err
    assert registry.champion() == 2 and registry.verification(3) is None
    gated = []

    def passes(reg, version, **kwargs):
        gated.append(version)
        verdict = {"version": version, "verdict": "pass", "reasons": ["fine"]}
        reg.record("verify", **verdict)
        return SimpleNamespace(passed=True, to_dict=lambda: verdict)

    monkeypatch.setattr(verify_module, "verify", passes)
    code, out, err = cli("deploy", "phon")
    assert code == 0, err
    assert "version 3 is the champion (registered by an earlier deploy that was stopped" in out
    assert gated == [3] and registry.champion() == 3
    assert [v["version"] for v in registry.versions()] == [1, 2, 3]
    # Finished (champion now): the next deploy of the same trial adds nothing, gate or not.
    monkeypatch.setattr(verify_module, "verify", stopped)
    code, out, _ = cli("deploy", "phon")
    assert code == 0 and "version 3 is already the champion" in out
    assert [v["version"] for v in registry.versions()] == [1, 2, 3]


def test_text_labels_for_a_regression_champion_are_refused_by_name(workdir: Path, cli) -> None:
    """A regression champion's labels are quantities: a batch labelled with classes ('low',
    'high') exits 2 naming them, instead of a traceback from inside the r2 metric."""
    data = load_dataset("sklearn:diabetes")
    frame = data.X.assign(target=data.y).sample(frac=1.0, random_state=0).reset_index(drop=True)
    registry = champion_of(frame.iloc[:300], "dia", "linear", "r2", folds=2)
    before = len(registry.events())
    pool = frame.iloc[300:].reset_index(drop=True)
    worded = pool.assign(target=["high" if v > 140 else "low" for v in pool["target"]])
    worded.to_csv("worded.csv", index=False)
    for args in (("monitor", "--batch", "worded.csv"), ("retune", "--data", "worded.csv")):
        code, _, err = cli(*args)
        assert code == 2, err
        assert "142 of 142 labels are not numbers, such as" in err and "'low'" in err
        assert "regression model" in err and "Traceback" not in err
    assert len(registry.events()) == before
    pool.to_csv("numbers.csv", index=False)  # the same rows with their numbers are assessed
    code, _, err = cli("monitor", "--batch", "numbers.csv")
    assert code == 0, err


def test_label_for_a_regression_model_says_what_it_checked(workdir: Path, cli) -> None:
    """`tuneops label` said its labels were "checked against the classes of model 'dia'" for a
    regression model, which has none: it says it checked them as the numbers the model answers;
    and a text label was refused twice over in one message, once by the model and once by the
    log's answers."""
    from tuneops.ops.predlog import PredictionLog

    data = load_dataset("sklearn:diabetes")
    champion_of(data.X.assign(target=data.y), "dia", "linear", "r2", folds=2)
    with PredictionLog("p.jsonl") as log:
        for request_id in ("a", "b"):
            log.append({"kind": "prediction", "id": request_id, "t": 1.0, "model": "dia",
                        "version": 1, "prediction": [151.5]})
    Path("labels.csv").write_text("request_id,label\na,140.5\n")
    code, out, err = cli("label", "--labels", "labels.csv", "--log", "p.jsonl")
    assert code == 0, err
    out = " ".join(out.split())
    assert "checked as the numbers regression model 'dia' answers" in out and "classes" not in out
    Path("worded.csv").write_text("request_id,label\nb,high\n")
    code, _, err = cli("label", "--labels", "worded.csv", "--log", "p.jsonl")
    assert code == 2 and "expected a number: it is a regression model" in err, err
    assert " ".join(err.split()).count("request b has 'high'") == 1, err


def test_recent_data_without_a_class_of_the_champion_is_neither_retuned_nor_refreshed(
    workdir: Path, cli
) -> None:
    """A challenger fitted on rows without one of the champion's classes could never predict
    it, and once promoted refused every later batch holding it (a texture stream stopped
    re-tuning for good): `retune` exits 2 before anything is written, `monitor --auto-retune`
    skips with the reason, and a refresh on such a window is refused the same way."""
    data = load_dataset("sklearn:iris")
    frame = data.X.assign(target=data.y)
    registry = champion_of(frame, "iris", "knn", "accuracy", folds=3)
    two = frame[frame.target != 2].reset_index(drop=True)  # 100 rows of classes 0 and 1
    two.to_csv("two.csv", index=False)
    storage = get_storage(None)
    studies = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    reserved = len(registry.study.trials)
    code, _, err = cli("retune", "--data", "two.csv")
    assert code == 2, err
    assert "the recent data (100 rows) holds no row of class(es) 2 of the champion's 3" in err
    assert "could never predict them" in err and "Traceback" not in err
    swapped = two.assign(target=two.target.map({0: 1, 1: 0}))  # a confident drop: retune
    assessment, outcome, note = monitor_batch(registry, swapped, auto_retune=True)
    assert assessment.decision == "retune" and outcome is None
    assert note is not None and note.startswith("re-tuning skipped: the recent data (100 rows)")
    with pytest.raises(DataError, match=r"fitted part \(\d+ rows\) holds no row of class\(es\) 2"):
        refresh(registry, two)
    assert sorted(s.study_name for s in optuna.get_all_study_summaries(storage)) == studies
    assert len(Registry.open("iris").study.trials) == reserved  # no version number taken


def test_recent_data_too_thin_for_the_folds_is_refused_before_anything_is_written(
    workdir: Path, cli
) -> None:
    """A class with one row in the re-tuning's tuning part: `retune` exits 2 naming the class,
    with no study created and no version number taken; `monitor --auto-retune` assesses the
    batch and skips the re-tuning with that reason. A class with fewer rows than the
    champion's folds but at least 2: the re-tuning runs on that many folds and says so (it was
    refused, and a yeast stream skipped every re-tuning)."""
    data = load_dataset("sklearn:iris")
    frame = data.X.assign(target=data.y)
    registry = champion_of(frame, "iris", "knn", "accuracy", folds=3)

    def batch(n_rare: int) -> pd.DataFrame:  # 30 + 30 rows of two classes, n_rare of the third
        return pd.concat(
            [frame[frame.target == 0].iloc[:30], frame[frame.target == 1].iloc[:30],
             frame[frame.target == 2].iloc[:n_rare]], ignore_index=True,
        )

    batch(2).to_csv("thin.csv", index=False)  # 1 row of class 2 in the 70% tuning part
    storage = get_storage(None)
    studies = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    reserved = len(registry.study.trials)
    code, _, err = cli("retune", "--data", "thin.csv")
    assert code == 2, err
    assert "class 2 has 1 row in the tuning part of the recent data (43 of its 62" in err
    assert "needs at least 2 of each class" in err and "Traceback" not in err
    assert sorted(s.study_name for s in optuna.get_all_study_summaries(storage)) == studies
    assert len(Registry.open("iris").study.trials) == reserved  # no version number taken
    # the same rows with classes 0 and 1 swapped: a confident drop, decision retune
    thin = batch(2)
    swapped = thin.assign(target=thin.target.map({0: 1, 1: 0, 2: 2}))
    assessment, outcome, note = monitor_batch(registry, swapped, auto_retune=True)
    assert assessment.decision == "retune" and outcome is None
    assert note is not None and note.startswith("re-tuning skipped: class 2 has 1 row")
    assert sorted(s.study_name for s in optuna.get_all_study_summaries(storage)) == studies
    # 2 rows of class 2 in the tuning part: re-tuned on 2 folds, not refused
    batch(3).to_csv("rare.csv", index=False)
    code, out, err = cli("retune", "--data", "rare.csv", "--n-trials", "2", "--json")
    assert code in (0, 1), err
    retuned = Registry.open("iris").events("retune")[-1]
    assert retuned["reasons"][-1].startswith(
        "re-tuned on 2 cross-validation folds, not the champion's 3"
    ), retuned["reasons"]
    study = optuna.load_study(study_name=retuned["study"], storage=storage)
    assert study.user_attrs["tuneops:spec"]["search"]["cv_folds"] == 2


def _gate(verdicts: list[str], gated: list[int]):
    """A staging gate that records the next of ``verdicts`` (judged against the champion)."""
    from types import SimpleNamespace

    def gate(reg, version):
        gated.append(version)
        verdict = {
            "version": version, "verdict": verdicts.pop(0), "reasons": ["judged"],
            "comparison": {"champion": reg.champion()},
        }
        reg.record("verify", **verdict)
        return SimpleNamespace(passed=verdict["verdict"] == "pass", to_dict=lambda: verdict)

    return gate


def test_deploy_as_challenger_serves_it_beside_the_unchanged_champion(deployed) -> None:
    """deploy(challenger=...) registers and gates the version, then makes it the challenger
    (mode and share) instead of the champion; the same deploy again changes nothing; a plain
    deploy of that trial promotes that version (no twin); once withdrawn, a new deploy of the
    trial is a new version."""
    registry, first, _ = deployed
    other = next(t for t in range(3) if t != first["source"]["trial"])
    gated: list[int] = []
    record = deploy(
        "phon", trial=other, challenger="canary", share=0.25, gate=_gate(["pass"], gated)
    )
    assert gated == [2] and record["promoted"] is False and record["verification"]["verdict"] == "pass"
    state = registry.challenger()
    assert (state["version"], state["mode"], state["share"]) == (2, "canary", 0.25)
    assert record["challenger"] == state and registry.champion() == 1
    assert [e["version"] for e in registry.events("promote")] == [1]
    assert "as the canary challenger" in registry.events("challenger")[-1]["reason"]
    # The same deploy again (in either mode): nothing registered, the challenger not reset.
    events = len(registry.events())
    again = deploy("phon", trial=other, challenger="shadow", gate=_gate(["pass"], gated))
    assert again["already"] is True and again["challenger"] == state and gated == [2]
    assert len(registry.versions()) == 2 and len(registry.events()) == events
    # A plain deploy of the challenger's trial promotes that version (it was judged against
    # this champion already), and it stops serving as the challenger.
    promoted = deploy("phon", trial=other, gate=_gate([], gated))
    assert promoted["promoted"] is True and promoted["was_challenger"] is True
    assert registry.champion() == 2 and registry.challenger() is None
    assert len(registry.versions()) == 2 and gated == [2]
    # Withdrawn challengers are finished deploys: deploying the trial again registers anew.
    deploy("phon", challenger="shadow", gate=_gate(["pass"], gated))
    assert registry.challenger()["version"] == 3 and registry.champion() == 2
    registry.clear_challenger("withdrawn by the live comparison")
    deploy("phon", challenger="shadow", gate=_gate(["pass"], gated))
    assert registry.challenger()["version"] == 4 and gated == [2, 3, 4]


def test_a_challenger_deploy_that_fails_its_gate_or_is_stopped_sets_no_challenger(
    deployed,
) -> None:
    """A failed gate leaves the version registered, not the challenger; a deploy stopped during
    its gate is finished by the same deploy, which makes that version the challenger."""
    import signal

    from tuneops.ops.registry import DeployInterrupted
    from tuneops.runner import Interrupted

    registry, first, _ = deployed
    other = next(t for t in range(3) if t != first["source"]["trial"])
    gated: list[int] = []
    record = deploy("phon", trial=other, challenger="shadow", gate=_gate(["fail"], gated))
    assert record["promoted"] is False and record["challenger"] is None
    assert registry.challenger() is None and registry.champion() == 1
    assert registry.events("challenger") == []

    def stopped(reg, version):
        raise Interrupted(signal.SIGTERM)

    third = next(t for t in range(3) if t not in (other, first["source"]["trial"]))
    with pytest.raises(DeployInterrupted) as caught:
        deploy("phon", trial=third, challenger="canary", share=0.5, gate=stopped)
    assert caught.value.version == 3 and registry.challenger() is None
    record = deploy("phon", trial=third, challenger="canary", share=0.5, gate=_gate(["pass"], gated))
    assert record["resumed"] is True and record["challenger"]["version"] == 3
    assert registry.challenger()["share"] == 0.5 and registry.champion() == 1
    assert len(registry.versions()) == 3


def test_a_challenger_deploy_is_refused_before_anything_is_written(deployed) -> None:
    """A bad mode or share, or a model without a champion: UsageError, nothing recorded."""
    registry, _, _ = deployed
    trials, events = len(registry.study.trials), len(registry.events())
    for kwargs, message in [
        ({"challenger": "canary"}, r"share \(--share\): expected the share of requests"),
        ({"challenger": "canary", "share": 1.5}, r"expected a share of traffic in \[0, 1\], received 1.5"),
        ({"challenger": "shadow", "share": 0.2}, "a shadow challenger answers no request"),
        ({"challenger": "blue"}, r"challenger \(--challenger\): expected 'shadow' or 'canary'"),
        ({"share": 0.2}, r"give it with challenger \(--challenger\) canary"),
        ({"challenger": "shadow", "model": "fresh"}, "model 'fresh' has no champion yet"),
    ]:
        with pytest.raises(UsageError, match=message):
            deploy("phon", **kwargs)
    assert len(registry.study.trials) == trials and len(registry.events()) == events
    assert list_models() == ["phon"] and not Path("tuneops-out/registry/fresh").exists()


def test_a_re_tuning_that_finds_no_feasible_trial_says_so_in_one_sentence(workdir: Path) -> None:
    """The reason read "... re-select without re-running with `tuneops select STUDY
    --constraint ...`.; the champion stays": the run's message ends a sentence of its own."""
    import numpy as np

    from tuneops import tuning

    data = load_dataset("pmlb:phoneme")
    frame = data.X.assign(target=data.y).sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame.iloc[:600].to_csv("train.csv", index=False)
    tuning.run({
        "study": "noisy", "data": {"source": "train.csv"}, "model": {"family": "knn"},
        "objectives": ["accuracy"], "constraints": ["accuracy >= 0.75"],
        "search": {"n_trials": 2, "cv_folds": 2, "seed": 0},
        "monitor": {"retune_trials": 2, "min_rows": 50},
    })
    deploy("noisy")
    registry = Registry.open("noisy")
    # labels that no model can learn: nothing the re-tuning finds meets accuracy >= 0.75
    recent = frame.iloc[600:900].assign(target=np.random.default_rng(0).integers(0, 2, 300))
    outcome = retune(registry, recent.reset_index(drop=True))
    assert outcome.decision == "keep" and outcome.challenger is None
    (reason,) = outcome.reasons
    assert reason.startswith("no challenger: no trial meets the constraints"), reason
    assert reason.endswith("--constraint ...`; the champion stays") and ".;" not in reason, reason


def test_events_written_in_one_tick_of_a_coarse_clock_are_all_kept(workdir, monkeypatch) -> None:
    """A clock that moves in coarse steps (about 16 ms on Windows): the promotion of the
    challenger and the challenger's retirement got one key, and the second event replaced
    the first (the log had no ``promote``)."""
    import time

    from _ops_helpers import logistic, register

    registry = Registry.open("iris", create=True)
    for c in (0.1, 1.0):
        register(registry, logistic(c), workdir / "art", promote=c == 0.1)
    registry.set_challenger(2, "shadow")
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_000_000_000)
    registry.promote(2)
    assert [e["kind"] for e in registry.events()][-2:] == ["promote", "challenger"]
    assert registry.events("challenger")[-1]["previous"] == 2


def test_a_version_forced_past_a_failed_gate_says_so_in_the_registry(workdir, cli) -> None:
    """`registry promote --force` and `registry challenger --mode canary --force` made a
    version that failed the staging gate the champion or the canary; nothing in `registry
    list` or `show` said so afterwards. Now the event records it and both commands show it."""
    from _ops_helpers import logistic, register

    registry = Registry.open("iris", create=True)
    for c in (1.0, 0.01, 0.1):
        number = register(registry, logistic(c), workdir / "art", promote=c == 1.0)
        # what the commands print of a version that a deploy records and the helper does not
        registry.study.set_user_attr(f"tuneops:version:{number}", {
            **registry.version(number), "source": {"kind": "test", "study": "s", "trial": 0},
            "family": "logistic", "params": {"C": c},
            "profile": {"metric": "accuracy", "reference": 0.9}})
    registry.record("verify", version=1, verdict="pass", reasons=["fine"])
    for number in (2, 3):
        registry.record("verify", version=number, verdict="fail", reasons=["worse"])
    code, _, err = cli("registry", "challenger", "3", "--mode", "canary", "--force")
    assert code == 0, err
    code, _, err = cli("registry", "promote", "2", "--force")
    assert code == 0 and "failed its staging gate and was promoted with --force" in err, err
    assert registry.events("promote")[-1]["forced"] is True
    assert registry.events("challenger")[-1]["forced"] is True
    gates = registry.gates()
    assert gates[1] == {"verdict": "pass", "time": gates[1]["time"], "forced": []}
    assert [f["kind"] for f in gates[2]["forced"]] == ["promote"]
    assert [(f["kind"], f["mode"]) for f in gates[3]["forced"]] == [("challenger", "canary")]
    code, out, _ = cli("registry", "list", "--json")
    versions = {v["version"]: v for v in json.loads(out)[0]["versions"]}
    assert versions[1]["gate"]["forced"] == [] and versions[2]["gate"]["verdict"] == "fail"
    assert versions[2]["gate"]["forced"][0]["reason"] == "promoted by hand"
    code, out, _ = cli("registry", "list")
    flat = " ".join(out.split())
    assert code == 0 and "0.9 FORCED" in flat and "gate FORCED: made the champion" in flat, out
    code, out, _ = cli("registry", "show", "2")
    flat = " ".join(out.split())
    assert "staging gate: fail at" in flat and "FORCED past a failed gate: made the champion" in (
        flat
    ), out
    assert "promote v2 FORCED past a failed staging gate: promoted by hand" in flat, out
    assert json.loads(cli("registry", "show", "3", "--json")[1])["gate"]["forced"][0]["mode"] == (
        "canary"
    )
    # a version that passed, or was forced past nothing, records no "forced"
    registry.promote(1)
    assert "forced" not in registry.events("promote")[-1]


def test_a_change_of_champion_waits_for_one_in_progress_and_says_so(workdir, caplog) -> None:
    """A promotion while another process changes the champion waits for it (one change at a
    time) and, when that lasts, says whom it waits for instead of hanging silently."""
    import threading
    import time

    from _ops_helpers import logistic, register

    from tuneops import _optuna

    registry = Registry.open("iris", create=True)
    for c in (0.1, 1.0):
        register(registry, logistic(c), workdir / "art", promote=c == 0.1)
    other = Claim(_optuna.storage_of(registry.study), "iris.champion",
                  {"host": "elsewhere", "pid": 7, "id": "elsewhere:7"})
    assert other.acquire() is None
    caplog.set_level("INFO", logger="tuneops.status")
    releaser = threading.Timer(1.6, other.release)
    releaser.start()
    t0 = time.monotonic()
    registry.promote(2)
    waited = time.monotonic() - t0
    releaser.join()
    assert waited > 1.5 and registry.champion() == 2
    assert ("Waiting for elsewhere:7, which is changing the champion, challenger or settings "
            "of model 'iris'") in caplog.text


def test_two_settings_changes_at_the_same_moment_keep_both(workdir, monkeypatch) -> None:
    """`tuneops registry settings FILE` reads the model's settings, puts the file's keys on
    top and writes them back: two at the same moment (threads, each with its own registry and
    storage objects, as two processes) both read none, and the second write lost the first's
    key. Now each change is made under the model's claim on changes (the one promotions
    take): the second reads the first's settings and keeps them."""
    import threading
    import time

    from _ops_helpers import logistic, register

    registry = Registry.open("iris", create=True)
    register(registry, logistic(1.0), workdir / "art", promote=True)
    read = Registry.settings

    def slow_settings(self: Registry) -> dict:
        settings = read(self)
        time.sleep(0.3)  # what the other change does meanwhile decides the outcome
        return settings

    monkeypatch.setattr(Registry, "settings", slow_settings)
    start, events = threading.Barrier(2), []

    def change(settings: dict) -> None:
        mine = Registry.open("iris")
        start.wait()
        events.append(mine.configure(settings, merge=True))

    threads = [threading.Thread(target=change, args=(settings,))
               for settings in ({"alpha": 0.01}, {"min_rows": 100})]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    monkeypatch.setattr(Registry, "settings", read)
    assert registry.settings() == {"alpha": 0.01, "min_rows": 100}
    first, second = registry.events("settings")
    assert first["previous"] == {} and second["previous"] == first["monitor"]
    assert second["monitor"] == {"alpha": 0.01, "min_rows": 100}
    # the claim is released: a change after them is made at once
    assert registry.configure({"alpha": 0.02}, merge=True)["monitor"] == {
        "alpha": 0.02, "min_rows": 100}


def test_a_retune_does_not_promote_over_a_champion_changed_while_it_ran(
    deployed, monkeypatch
) -> None:
    """Another process promoted a version while a re-tuning ran: the re-tuning promoted its
    challenger, judged against the former champion, over the new one, which it never met.
    Now it keeps the new champion and says why (its challenger stays a version)."""
    import tuneops.ops.retune as retune_module

    registry, record, pool = deployed
    other_trial = (record["source"]["trial"] + 1) % 3
    real = retune_module._judge

    def judged_then_replaced(*args, **kwargs):
        real(*args, **kwargs)
        deploy("phon", trial=other_trial)  # another process: a new champion, meanwhile

    monkeypatch.setattr(retune_module, "_judge", judged_then_replaced)
    outcome = retune(registry, flipped(pool.iloc[:300]))
    new = registry.champion()
    assert new not in (1, outcome.challenger), new
    assert outcome.decision == "keep" and outcome.champion == 1
    assert outcome.reasons[0].startswith(
        f"not promoted: champion v1, which challenger v{outcome.challenger} beat, was replaced "
        f"by v{new} (another process) during the re-tuning"), outcome.reasons
    assert registry.events("retune")[-1]["decision"] == "keep"
    assert [e["version"] for e in registry.events("promote")] == [1, new]


def test_two_threads_promoting_through_one_registry_object_take_turns(workdir, monkeypatch) -> None:
    """The hold on the claim of changes is reentrant per thread, not per object: a second
    thread promoting through the same Registry object entered while the first held it, and
    both read the same champion."""
    import threading
    import time

    from _ops_helpers import logistic, register

    registry = Registry.open("iris", create=True)
    for c in (0.1, 1.0, 10.0):
        register(registry, logistic(c), workdir / "art", promote=c == 0.1)
    real = Registry._change_champion

    def slow(self, *args, **kwargs):
        time.sleep(0.5)  # between reading the champion and writing it: the window, widened
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Registry, "_change_champion", slow)
    def promote(number: int, delay: float) -> None:
        time.sleep(delay)  # the second while the first holds the claim
        registry.promote(number)

    threads = [threading.Thread(target=promote, args=a) for a in ((2, 0.0), (3, 0.3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    first, second = registry.events("promote")[1:]
    assert first["previous"] == 1 and second["previous"] == first["version"]
    assert registry.champion_history() == [1, first["version"]]
