"""The production loop through the CLI: deploy (staging gate, saved artifact), verify, the
challenger, serve, labels, monitor on the prediction log and live, alerts."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from _ops_helpers import FEATURES, iris, logistic, register, rows
from conftest import tiny_spec
from sklearn.dummy import DummyClassifier

from tuneops.export import save_model
from tuneops.ops.predlog import PredictionLog, read_log
from tuneops.ops.registry import Registry, sha256_file

FAST = {"n_folds": 5, "n_repeats": 2, "n_requests": 40, "concurrency": 2}


def as_json(result: tuple[int, str, str], code: int = 0) -> dict:
    got, out, err = result
    assert got == code, err
    return json.loads(out)


@pytest.fixture
def iris_registry(workdir: Path) -> Registry:
    """Champion 1 (C=0.01, weak) and version 2 (C=1, good), both iris logistic regressions."""
    spec = {
        "data": {"source": "sklearn:iris"},
        "objectives": [{"metric": "accuracy"}],
        "monitor": {"verify": FAST},
    }
    registry = Registry.open("iris", create=True)
    register(registry, logistic(0.01), workdir / "art", promote=True, spec=spec)
    register(registry, logistic(1.0), workdir / "art", spec=spec)
    return registry


def test_deploy_gates_and_registers_the_saved_artifact(workdir: Path, cli) -> None:
    alerts = workdir / "alerts.jsonl"
    spec = tiny_spec(
        n_trials=3,
        monitor={
            "verify": FAST,
            "min_rows": 20,
            "alerts": {
                "command": [
                    sys.executable,
                    "-c",
                    f"import sys; open({str(alerts)!r}, 'a').write(sys.stdin.read() + '\\n')",
                ],
                "on": ["retune", "warn"],
            },
        },
    )
    (workdir / "s.yaml").write_text(json.dumps(spec))
    assert cli("--quiet", "run", "s.yaml")[0] == 0
    saved = workdir / "tuneops-out" / "tiny" / "model.joblib"
    record = as_json(cli("deploy", "tiny", "--json"))
    assert record["promoted"] is True and record["artifact"]["from"] == "run"
    # The registry holds a copy of the very bytes run saved: no refit.
    assert record["artifact"]["sha256"] == sha256_file(saved)
    assert Path(record["artifact"]["path"]) != saved.resolve()
    verdict = record["verification"]
    assert verdict["verdict"] == "pass" and verdict["settings"]["n_folds"] == 5
    registry = Registry.open("tiny")
    assert registry.verification(1)["verdict"] == "pass" and registry.champion() == 1
    # The champion's own trial again (a pipeline that deploys after every run): nothing
    # registered, and no new probation for the same model.
    events = len(registry.events())
    code, out, _ = cli("deploy", "tiny")
    assert code == 0 and "version 1 is already the champion" in out, out
    assert as_json(cli("deploy", "tiny", "--json"))["already"] is True
    assert [v["version"] for v in registry.versions()] == [1] and len(registry.events()) == events
    # Without the run's artifact (or with other data) the trial is refitted; --no-verify skips
    # the gate and promotes at once.
    saved.unlink()
    other = next(t for t in range(3) if t != record["source"]["trial"])
    record = as_json(cli("deploy", "tiny", "--trial", str(other), "--no-verify", "--json"))
    assert record["artifact"]["from"] == "refit" and "verification" not in record
    assert registry.champion() == 2
    assert "without the staging gate" in registry.events("promote")[-1]["reason"]

    # Monitoring the prediction log: a log the server would write, with shifted rows.
    X, _ = iris()
    with PredictionLog(workdir / "predictions.jsonl") as log:
        for i in range(60):
            row = dict(X.iloc[i % len(X)])
            log.append(
                {
                    "kind": "prediction",
                    "id": f"r{i}",
                    "t": time.time(),
                    "version": 2,
                    "role": "champion",
                    "status": "ok",
                    "latency_ms": 1.0,
                    "prediction": [0],
                    "rows": [{**row, "petal length (cm)": 50.0}],
                }
            )
    doc = as_json(cli("monitor", "--log", "predictions.jsonl", "--json"))
    assert doc["assessment"]["decision"] == "retune" and doc["assessment"]["n_rows"] == 60
    assert doc["alerts"] and doc["alerts"][0]["ok"] is True
    alert = json.loads(alerts.read_text().splitlines()[0])
    assert alert["kind"] == "retune" and alert["model"] == "tiny"
    assert registry.events("monitor")[-1]["source"] == "prediction log predictions.jsonl"
    code, _, err = cli("monitor", "--batch", "x.csv", "--log", "predictions.jsonl")
    assert code == 2 and "give one of --batch FILE or --log FILE" in err
    # Another version's requests are scored with the champion, and the event says so; a
    # selection that matches nothing names what the log holds.
    with PredictionLog(workdir / "predictions.jsonl") as log:
        for i in range(60):
            log.append(
                {
                    "kind": "prediction", "id": f"old{i}", "t": time.time(), "version": 1,
                    "status": "ok", "prediction": [0], "rows": [dict(X.iloc[i % len(X)])],
                }
            )
    doc = as_json(cli("monitor", "--log", "predictions.jsonl", "--version", "1", "--json"))
    assert doc["assessment"]["n_rows"] == 60
    assert "scored with the champion v2, not v1" in registry.events("monitor")[-1]["source"]
    code, _, err = cli("monitor", "--log", "predictions.jsonl", "--version", "7")
    assert code == 2 and "no request of predictions.jsonl matches --version 7" in err
    assert "per version v1: 60, v2: 60" in err


def test_deploy_as_challenger(workdir: Path, cli) -> None:
    """deploy --challenger: refused (exit 2, nothing written) without a champion or with a bad
    --share; otherwise the version is the challenger with its mode and share, the champion
    unchanged, and the same deploy again registers nothing and says so."""
    spec = tiny_spec(n_trials=3, monitor={"verify": FAST})
    (workdir / "s.yaml").write_text(json.dumps(spec))
    assert cli("--quiet", "run", "s.yaml")[0] == 0
    code, _, err = cli("deploy", "tiny", "--challenger", "shadow")
    assert code == 2 and "model 'tiny' has no champion yet" in err, err
    assert "Deploy without --challenger first (`tuneops deploy tiny`" in err
    assert as_json(cli("registry", "list", "--json")) == []
    assert not (workdir / "tuneops-out" / "registry").exists()
    record = as_json(cli("deploy", "tiny", "--no-verify", "--json"))
    assert record["promoted"] is True and record["challenger"] is None
    registry = Registry.open("tiny")
    other = str(next(t for t in range(3) if t != record["source"]["trial"]))
    events = len(registry.events())
    for args, message in [
        ((), "share (--share): expected the share of requests the canary answers"),
        (("--share", "1.5"), "share (--share): expected a share of traffic in [0, 1]"),
    ]:
        code, _, err = cli("deploy", "tiny", "--trial", other, "--challenger", "canary", *args)
        assert code == 2 and message in err, err
    code, _, err = cli("deploy", "tiny", "--challenger", "shadow", "--share", "0.2")
    assert code == 2 and "--share applies to --challenger canary only" in err, err
    assert len(registry.versions()) == 1 and len(registry.events()) == events
    command = ("deploy", "tiny", "--trial", other, "--no-verify", "--challenger", "canary")
    code, out, err = cli(*command, "--share", "0.2")
    assert code == 0, err
    # the version's trial is told before "the champion stays", where it read as the champion's
    assert re.search(
        rf"version 2 \(\w+, trial {other}, artifact from the refit\) is the canary challenger "
        r"\(answers 20% of requests\); the champion stays; \S+/v2/model.joblib", " ".join(out.split())
    ), out
    assert registry.champion() == 1
    state = registry.challenger()
    assert (state["version"], state["mode"], state["share"]) == (2, "canary", 0.2)
    # the registry's commands name it (they showed the champion alone)
    code, out, _ = cli("registry", "list")
    assert code == 0 and "★ 1" in out and "☆ 2" in out, out
    assert "☆ canary challenger (answers 20% of requests)" in out, out
    assert as_json(cli("registry", "list", "--json"))[0]["challenger"] == state
    code, out, _ = cli("registry", "show", "2")
    assert code == 0 and "tiny version 2 ☆ canary challenger (answers 20% of requests)" in out
    assert as_json(cli("registry", "show", "1", "--json"))["challenger"] == state
    events = len(registry.events())
    code, out, err = cli(*command, "--share", "0.5")
    assert code == 0 and "version 2 is already the canary challenger (answers 20%" in out, out
    assert "Nothing was registered or changed" in out
    assert len(registry.versions()) == 2 and len(registry.events()) == events
    assert registry.challenger() == state
    # deployed plain: that very version becomes the champion, and stops being the challenger
    code, out, err = cli("deploy", "tiny", "--trial", other, "--no-verify")
    assert code == 0 and "version 2 is the champion (the version deployed as the challenger" in out
    assert registry.champion() == 2 and registry.challenger() is None
    assert len(registry.versions()) == 2


def test_deploying_a_trial_that_breaks_the_constraints_without_the_gate_says_so(
    workdir: Path, cli
) -> None:
    """deploy --trial N --no-verify promoted a trial the selection would never pick (it broke
    the spec's constraints) without a word; now the output and the registry's history say so."""
    spec = tiny_spec(constraints=["accuracy >= 0.999"])  # no knn on 2 folds of iris meets it
    (workdir / "s.yaml").write_text(json.dumps(spec))
    cli("--quiet", "run", "s.yaml")  # no feasible trial: the study is kept all the same
    record = as_json(cli("deploy", "tiny", "--trial", "0", "--no-verify", "--json"))
    assert record["promoted"] is True and record["constraints_broken"] == ["accuracy >= 0.999"]
    code, _, err = cli("deploy", "tiny", "--trial", "1", "--no-verify")
    assert code == 0
    assert "Trial 1 breaks the spec's constraints (accuracy >= 0.999)" in " ".join(err.split())
    reason = Registry.open("tiny").events("promote")[-1]["reason"]
    assert reason.endswith("it breaks the spec's constraints: accuracy >= 0.999"), reason


def test_a_failing_gate_leaves_the_version_registered_not_champion(
    workdir: Path, cli, iris_registry: Registry
) -> None:
    doc = as_json(cli("verify", "2", "--model", "iris", "--json"))
    assert doc["verdict"] == "pass" and doc["comparison"]["champion"] == 1
    assert doc["settings"]["n_folds"] * doc["settings"]["n_repeats"] == 10  # from the spec
    doc = as_json(
        cli("verify", "2", "--folds", "4", "--repeats", "2", "--requests", "30", "--json")
    )
    assert doc["settings"]["n_folds"] == 4 and doc["concurrency"]["n_requests"] == 30
    X, y = iris()
    path = save_model(DummyClassifier(strategy="most_frequent").fit(X, y), {}, workdir / "dummy")
    number = iris_registry.reserve_version()
    iris_registry.add_version(
        {
            "version": number,
            "source": {"kind": "test"},
            "artifact": {"path": str(path), "sha256": sha256_file(path)},
            "features": FEATURES,
            "categorical": [],
            "target": "target",
            "task": "classification",
            "spec": {
                "data": {"source": "sklearn:iris"},
                "objectives": [{"metric": "accuracy"}],
                "monitor": {"verify": FAST},
            },
            "data": {},
        }
    )
    code, out, _ = cli("verify")  # the newest version, in words
    assert code == 1 and f"version {number}: fail" in out
    assert iris_registry.verification(number)["verdict"] == "fail"
    # A version that failed the gate is neither promoted nor served as a canary by hand
    # without --force (it was served to half the requests); as a shadow it answers no one.
    for args in (("promote", str(number)), ("challenger", str(number), "--mode", "canary")):
        code, _, err = cli("registry", *args)
        assert code == 2 and f"version {number} failed the staging gate at" in err, err
        assert "--force" in err
    assert iris_registry.champion() == 1 and iris_registry.challenger() is None
    assert cli("registry", "challenger", str(number), "--mode", "shadow")[0] == 0
    assert cli("registry", "challenger", str(number), "--mode", "canary", "--force")[0] == 0
    code, out, _ = cli("registry", "challenger", "--clear")
    assert code == 0 and f"No challenger is served (was version {number})." in out
    code, out, _ = cli("registry", "challenger", "--clear")
    assert code == 0 and "No challenger is served; none was." in out  # it said "(was -)"
    # --data with another label column name
    X.assign(species=y).to_csv("labelled.csv", index=False)
    doc = as_json(cli("verify", "2", "--data", "labelled.csv", "--target", "species", "--json"))
    assert doc["settings"]["n_rows"] == 150
    code, _, err = cli("verify", "2", "--folds", "1")
    assert code == 2 and "--folds: expected an integer in [2, 20], received 1" in err
    code, _, err = cli("verify", "2", "--data", "labelled.csv", "--target", "nope")
    assert code == 2 and "no column 'nope'" in err
    code, _, err = cli("verify", "9")
    assert code == 2 and "has no version 9" in err


def test_registry_list_shows_twelve_hex_digits_of_each_artifact(
    workdir: Path, cli, monkeypatch
) -> None:
    registry = Registry.open("iris", create=True)
    path = save_model(logistic(), {"features": FEATURES, "task": "classification"}, workdir / "v1")
    digest = sha256_file(path)
    registry.add_version({
        "version": registry.reserve_version(), "source": {"kind": "deploy", "study": "iris", "trial": 0},
        "artifact": {"path": str(path.resolve()), "sha256": digest}, "family": "linear",
        "features": FEATURES, "categorical": [], "target": "target", "task": "classification",
        "spec": {"data": {"source": "sklearn:iris"}}, "data": {}, "metrics": {},
        "profile": {"metric": "accuracy", "reference": 0.9},
    })
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = cli("registry", "list")
    assert digest.startswith("sha256:")
    assert code == 0 and f" {digest.removeprefix('sha256:')[:12]} " in out, out
    # At 80 columns (a pipe, a log) the table cut the digest to 10 digits, a family such as
    # random_forest to "random_fore…", and left the source out; what does not fit now goes
    # under the table, whole.
    registry.add_version({
        **registry.version(1), "version": registry.reserve_version(), "family": "random_forest",
        "source": {"kind": "retune", "study": "iris.retune-v2", "trial": 3},
    })
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = cli("registry", "list")
    assert code == 0 and all(len(line) <= 80 for line in out.splitlines()), out
    assert "…" not in out and re.search(r"\b2 +random_forest ", out), out
    assert out.count(f" {digest.removeprefix('sha256:')[:12]} ") == 2, out
    assert "2: " in out and "retune: iris.retune-v2 #3" in out, out


def test_a_missing_file_is_named_by_its_option_in_the_house_form(
    iris_registry: Registry, cli
) -> None:
    """Files given to --data, --labels and --window were refused as '--data: ...', where every
    other message of the command line names 'param (--flag): ...'."""
    pd.DataFrame(rows(60)).to_csv("batch.csv", index=False)
    for args, named in (
        (("verify", "2", "--data", "missing.csv"), "data (--data): 'missing.csv'"),
        (("retune", "--data", "missing.csv"), "data (--data): 'missing.csv'"),
        (("label", "--log", "p.jsonl", "--labels", "missing.csv"), "labels (--labels): "),
        (
            ("monitor", "--batch", "batch.csv", "--auto-retune", "--window", "missing.csv"),
            "window (--window): 'missing.csv'",
        ),
    ):
        code, _, err = cli(*args)
        assert code == 2 and named in err, (args, err)


def test_challenger_commands(iris_registry: Registry, cli) -> None:
    state = as_json(
        cli("registry", "challenger", "2", "--mode", "canary", "--share", "0.25", "--json")
    )
    assert (state["version"], state["mode"], state["share"]) == (2, "canary", 0.25)
    assert iris_registry.challenger()["mode"] == "canary"
    code, out, _ = cli("registry", "challenger", "2", "--mode", "shadow")
    assert code == 0 and "shadow challenger of champion 1" in out
    assert as_json(cli("registry", "challenger", "--clear", "--json"))["previous"] == 2
    assert iris_registry.challenger() is None
    for args, message in [
        ((), "give a VERSION with --mode shadow|canary, or --clear"),
        (("2", "--clear"), "not both"),
        (("2",), "mode (--mode): expected shadow or canary"),
        (("2", "--mode", "shadow", "--share", "0.5"), "--share applies to --mode canary only"),
        (("2", "--mode", "blue"), "mode (--mode): expected 'shadow' or 'canary', received 'blue'"),
        (
            ("2", "--mode", "canary", "--share", "2"),
            "share (--share): expected a share of traffic in [0, 1]",
        ),
    ]:
        code, _, err = cli("registry", "challenger", *args)
        assert code == 2 and message in err, (args, err)


def test_a_model_name_cannot_leave_the_artifact_directory_or_take_anothers(
    workdir: Path, cli
) -> None:
    """'..' as a model name wrote the artifact outside --artifacts; a model of the same name in
    another storage, sharing the artifact directory, overwrote the first one's version (which
    could then no longer be served: its sha256 no longer matched)."""
    (workdir / "s.yaml").write_text(json.dumps(tiny_spec(n_trials=2)))
    assert cli("--quiet", "run", "s.yaml")[0] == 0
    assert cli("--quiet", "run", "s.yaml", "--storage", "other.journal")[0] == 0
    for name in ("..", "a/b", ".hidden", "", "x" * 300):
        code, _, err = cli("deploy", "tiny", "--no-verify", "--artifacts", "art", "-m", name)
        assert code == 2 and "model (--model): expected a name of letters" in err, (name, err)
    assert not (workdir / "art").exists() or not any((workdir / "art").rglob("*.joblib"))
    assert cli("deploy", "tiny", "--no-verify", "--artifacts", "art")[0] == 0
    first = (workdir / "art" / "tiny" / "v1" / "model.joblib").read_bytes()
    code, _, err = cli(
        "deploy", "tiny", "--no-verify", "--artifacts", "art", "--storage", "other.journal"
    )
    assert code == 2 and "already holds versions of a model named 'tiny'" in err, err
    assert cli("registry", "list", "--storage", "other.journal", "--json")[1].strip() == "[]"
    assert (workdir / "art" / "tiny" / "v1" / "model.joblib").read_bytes() == first
    assert Registry.open("tiny").verify(1)  # the first registry's version still checks out


def test_the_gate_refuses_labels_it_cannot_judge_and_models_of_another_task(
    workdir: Path, iris_registry: Registry, cli
) -> None:
    """One class left after the rows without a label were dropped passed the gate with
    accuracy 1 [1, 1]; a study of other data deployed to the model was registered, then the
    gate failed with scikit-learn's traceback."""
    X, y = iris()
    one = X.assign(target=y.map({0: "yes"}))  # 'yes' and 100 missing labels
    one.to_csv("one.csv", index=False)
    X.assign(target=y.map({0: "a", 1: "b", 2: "c"})).to_csv("letters.csv", index=False)
    events = len(iris_registry.events())
    code, _, err = cli("verify", "2", "--data", "one.csv")
    assert code == 2 and "the label column holds 1 class(es) ('yes')" in err, err
    code, _, err = cli("verify", "2", "--data", "letters.csv")
    assert code == 2 and "150 of 150 labels are not among the classes" in err, err
    (workdir / "iono.yaml").write_text(
        json.dumps(tiny_spec(study="iono", n_trials=2, data={"source": "pmlb:ionosphere"}))
    )
    assert cli("--quiet", "run", "iono.yaml")[0] == 0
    code, _, err = cli("deploy", "iono", "--model", "iris")
    assert code == 2 and "is not a model of champion 1's task (features: without" in err, err
    # the same features, the labels encoded otherwise: it passed the gate and became champion
    (workdir / "named.yaml").write_text(json.dumps(tiny_spec(
        study="named", n_trials=2, data={"source": "letters.csv", "target": "target"})))
    assert cli("--quiet", "run", "named.yaml")[0] == 0
    code, _, err = cli("deploy", "named", "--model", "iris")
    assert code == 2 and "none of which champion 1 of model 'iris' predicts" in err, err
    assert len(iris_registry.versions()) == 2 and len(iris_registry.events()) == events


def test_a_webhook_s_secret_path_is_kept_out_of_every_display(workdir: Path, cli) -> None:
    """A Slack-style webhook (the path is the secret) set as the model's own settings was shown
    whole by `registry settings` (text and --json) and recorded whole in the settings event;
    only its scheme and host are shown. Alerts are still delivered from the stored settings."""
    (workdir / "s.yaml").write_text(json.dumps(tiny_spec(n_trials=2)))
    assert cli("--quiet", "run", "s.yaml")[0] == 0
    assert cli("deploy", "tiny", "--no-verify")[0] == 0
    secret = "T0123/B0456/s3cr3tT0ken"
    (workdir / "settings.yaml").write_text(
        f"alerts:\n  webhook: http://127.0.0.1:9/services/{secret}\n  on: [warn, retune]\n"
    )
    shown = [cli("registry", "settings", "settings.yaml", "--json")[1]]
    shown += [cli("registry", "settings")[1], cli("registry", "settings", "--json")[1]]
    X, y = iris()
    X.assign(target=y).to_csv("batch.csv", index=False)
    code, out, err = cli("monitor", "--batch", "batch.csv", "--json")
    assert code in (0, 1), err
    registry = Registry.open("tiny")
    shown += [out, err, json.dumps(registry.events())]
    assert [i for i, text in enumerate(shown) if secret in text] == []
    assert "http://127.0.0.1:9/..." in shown[1]
    assert secret in registry.settings()["alerts"]["webhook"]  # delivered from here


def test_registry_settings_set_show_and_clear(workdir: Path, iris_registry: Registry, cli) -> None:
    (workdir / "settings.yaml").write_text(
        "monitor:\n  slo: {latency_p95_ms: 20}\n"
        "  alerts:\n    webhook: http://127.0.0.1:9/hook\n    on: [rollback]\n"
    )
    event = as_json(cli("registry", "settings", "settings.yaml", "--json"))
    # the event shows where alerts go, not the path (a webhook's secret); the settings keep it
    assert event["monitor"]["alerts"] == {"webhook": "http://127.0.0.1:9/...", "on": ["rollback"]}
    assert iris_registry.settings()["alerts"]["webhook"] == "http://127.0.0.1:9/hook"
    code, out, _ = cli("registry", "settings")
    assert code == 0 and "slo: {'latency_p95_ms': 20.0}" in out
    assert "verify: " in out and "from champion 1's spec" in out
    shown = as_json(cli("registry", "settings", "--json"))
    assert shown["effective"]["slo"] == {"latency_p95_ms": 20.0}
    assert shown["effective"]["verify"] == FAST  # the champion spec's, where the model sets none
    # a nested section is merged setting by setting: the spec's other verify settings stay
    (workdir / "repeats.yaml").write_text("verify: {n_repeats: 3}\n")
    assert cli("registry", "settings", "repeats.yaml")[0] == 0
    assert as_json(cli("registry", "settings", "--json"))["effective"]["verify"] == {
        **FAST, "n_repeats": 3}
    # ... and a file's keys join the settings set before: the SLO and the alerts stay
    own = iris_registry.settings()
    assert own["slo"] == {"latency_p95_ms": 20.0} and own["alerts"]["on"] == ["rollback"]
    (workdir / "spec-only.yaml").write_text(json.dumps(tiny_spec()))
    code, _, err = cli("registry", "settings", "spec-only.yaml")
    assert code == 2 and "is a spec without a monitor section" in err, err
    for args, message in [
        (("missing.yaml",), "settings file 'missing.yaml' cannot be read"),
        (("settings.yaml", "--clear"), "give FILE or --clear, not both"),
    ]:
        code, _, err = cli("registry", "settings", *args)
        assert code == 2 and message in err, (args, err)
    (workdir / "bad.yaml").write_text("slo: {latency_p95_ms: -1}\n")
    code, _, err = cli("registry", "settings", "bad.yaml")
    assert code == 2 and "settings.slo.latency_p95_ms: expected a number" in err, err
    assert iris_registry.settings()["verify"] == {"n_repeats": 3}  # unchanged by the refusal
    code, out, _ = cli("registry", "settings", "--clear")
    assert code == 0 and "no settings of its own" in out and iris_registry.settings() == {}


def test_label_joins_truth_to_logged_requests(workdir: Path, cli) -> None:
    with PredictionLog(workdir / "p.jsonl") as log:
        for i in range(3):
            log.append(
                {"kind": "prediction", "id": f"r{i}", "t": 1.0, "version": 1, "prediction": [i % 2]}
            )
    pd.DataFrame({"request_id": ["r0", "r1", "zz"], "label": [1, 0, 1]}).to_csv(
        "y.csv", index=False
    )
    doc = as_json(cli("label", "--log", "p.jsonl", "--labels", "y.csv", "--json"))
    assert (doc["labels"], doc["n_unknown"], doc["unknown_ids"]) == (3, 1, ["zz"])
    labels = {r["id"]: r.get("label") for r in read_log(workdir / "p.jsonl").predictions}
    assert labels == {"r0": 1, "r1": 0, "r2": None}
    before = (workdir / "p.jsonl").read_text()
    pd.DataFrame({"id": ["r0"], "label": [1]}).to_csv("bad.csv", index=False)
    code, _, err = cli("label", "--log", "p.jsonl", "--labels", "bad.csv")
    assert code == 2 and "lacks the column(s) request_id" in err
    code, _, err = cli("label", "--log", "nope.jsonl", "--labels", "y.csv")
    assert code == 2 and "does not exist" in err
    code, _, err = cli("label", "--log", "p.jsonl", "--labels", "y.csv", "--storage", "s.db")
    assert code == 2 and "the log's requests name no model; add --model NAME" in err, err
    code, _, err = cli("label", "--log", "p.jsonl", "--labels", "missing.csv")
    assert code == 2 and "'missing.csv' does not exist; expected the path of a CSV" in err
    pd.DataFrame({"request_id": ["r0", "r0"], "label": [1, 0]}).to_csv("twice.csv", index=False)
    code, _, err = cli("label", "--log", "p.jsonl", "--labels", "twice.csv")
    assert code == 2 and "gives request id(s) r0 different labels" in err
    # labels that could never be compared with what the model answers are refused
    for label, message in (
        ("yes", "1 label value(s) are text where the model answers numbers (e.g. 0, 1)"),
        ("[0, 1]", "request r0 was answered for 1 row(s); expected one label (or a list of 1), received a list of 2"),
    ):
        pd.DataFrame({"request_id": ["r0"], "label": [label]}).to_csv("odd.csv", index=False)
        code, _, err = cli("label", "--log", "p.jsonl", "--labels", "odd.csv")
        assert code == 2 and message in err and "Nothing was written" in err, err
    assert (workdir / "p.jsonl").read_text() == before and not (workdir / "nope.jsonl").exists()


def test_label_refuses_a_label_for_a_request_id_answered_twice(workdir: Path, cli) -> None:
    """Two servers answered one id: a label for it joined both requests; it is refused by name
    (exit 2, nothing written), and `monitor --log` says a label joined neither."""
    with PredictionLog(workdir / "p.jsonl") as log:
        for request_id, t in (("r0", 1.0), ("r0", 2.0), ("r1", 1.0)):
            log.append({"kind": "prediction", "id": request_id, "t": t, "prediction": [1]})
    before = (workdir / "p.jsonl").read_text()
    pd.DataFrame({"request_id": ["r0", "r1"], "label": [1, 0]}).to_csv("y.csv", index=False)
    code, _, err = cli("label", "--log", "p.jsonl", "--labels", "y.csv")
    err = " ".join(err.split())
    assert code == 2, err
    assert "request r0 was answered 2 times (by several servers, or for a client that sent its " \
        "id twice), so a label cannot say which of them it is the truth of" in err, err
    assert "Nothing was written" in err and (workdir / "p.jsonl").read_text() == before
    with PredictionLog(workdir / "p.jsonl") as log:  # as POST /label would, on either server
        log.label("r0", 1)
    assert [r.get("label") for r in read_log(workdir / "p.jsonl").predictions] == [None] * 3
    assert read_log(workdir / "p.jsonl").n_ambiguous == 1


def test_label_reads_each_label_as_the_model_answers(workdir: Path, cli) -> None:
    """Classes written as digits stay text for a model that answers text; numbers and JSON
    lists become numbers for a model that answers numbers."""
    with PredictionLog(workdir / "text.jsonl") as log:
        log.append({"kind": "prediction", "id": "a", "t": 1.0, "prediction": ["1"]})
        log.append({"kind": "prediction", "id": "b", "t": 1.0, "prediction": ["2", "3"]})
    with PredictionLog(workdir / "numbers.jsonl") as log:
        log.append({"kind": "prediction", "id": "a", "t": 1.0, "prediction": [1.5]})
        log.append({"kind": "prediction", "id": "b", "t": 1.0, "prediction": [2, 0]})
    pd.DataFrame({"request_id": ["a", "b"], "label": ["2", "[3, 2]"]}).to_csv(
        "y.csv", index=False
    )
    expected = {"text": {"a": "2", "b": ["3", "2"]}, "numbers": {"a": 2, "b": [3, 2]}}
    for name, labels in expected.items():
        assert cli("label", "--log", f"{name}.jsonl", "--labels", "y.csv")[0] == 0
        joined = {r["id"]: r.get("label") for r in read_log(workdir / f"{name}.jsonl").predictions}
        assert joined == labels and type(joined["a"]) is type(labels["a"]), name


def test_label_refuses_booleans_where_the_model_answers_numbers(workdir: Path, cli) -> None:
    """Without --model, `true` in the labels file of a log whose answers are 0/1 was read as
    the boolean true and written: it equalled the class 1. It is refused (exit 2, nothing
    written), saying to write the class as a number; a log whose answers are booleans still
    reads true/false as booleans."""
    with PredictionLog(workdir / "numbers.jsonl") as log:
        for i in range(2):
            log.append({"kind": "prediction", "id": f"r{i}", "t": 1.0, "prediction": [i]})
    with PredictionLog(workdir / "flags.jsonl") as log:
        for i in range(2):
            log.append({"kind": "prediction", "id": f"r{i}", "t": 1.0, "prediction": [i == 1]})
    before = (workdir / "numbers.jsonl").read_text()
    for labels in (["true", "0"], ["TRUE", "False"], ["[true]", "0"]):
        pd.DataFrame({"request_id": ["r0", "r1"], "label": labels}).to_csv("y.csv", index=False)
        code, _, err = cli("label", "--log", "numbers.jsonl", "--labels", "y.csv")
        err = " ".join(err.split())
        assert code == 2, (labels, err)
        assert "label value(s) are booleans (true, false) where the model answers numbers " \
            "(e.g. 0, 1), so they would be read as 1 and 0, not as the model's classes: write " \
            "each class as the number the model answers: request r" in err, (labels, err)
        assert "Nothing was written" in err
        assert (workdir / "numbers.jsonl").read_text() == before
    pd.DataFrame({"request_id": ["r0", "r1"], "label": ["false", "true"]}).to_csv(
        "y.csv", index=False
    )
    assert cli("label", "--log", "flags.jsonl", "--labels", "y.csv")[0] == 0
    joined = {r["id"]: r.get("label") for r in read_log(workdir / "flags.jsonl").predictions}
    assert joined == {"r0": False, "r1": True}
    pd.DataFrame({"request_id": ["r0"], "label": ["yes"]}).to_csv("y.csv", index=False)
    code, _, err = cli("label", "--log", "flags.jsonl", "--labels", "y.csv")
    assert code == 2 and "are text where the model answers booleans (true, false)" in err, err


def test_label_with_model_refuses_labels_that_are_none_of_its_classes(workdir: Path, cli) -> None:
    """A yes/no model's log labelled 1/0: read as the classes "1"/"0" (the model answers text),
    written, and each replaced the request's good label. With --model the labels are checked
    against the classes of the version that answered (exit 2, nothing written)."""
    from sklearn.linear_model import LogisticRegression

    X, y = iris()
    answers = y.map(lambda v: "yes" if v == 2 else "no")
    registry = Registry.open("yn", create=True)
    register(registry, LogisticRegression(max_iter=500).fit(X, answers), workdir / "art", promote=True)
    with PredictionLog(workdir / "p.jsonl") as log:
        for i, answer in enumerate(["yes", "no"]):
            log.append({"kind": "prediction", "id": f"r{i}", "t": 1.0, "model": "yn", "version": 1,
                        "prediction": [answer]})
    pd.DataFrame({"request_id": ["r0", "r1"], "label": ["yes", "no"]}).to_csv("good.csv", index=False)
    pd.DataFrame({"request_id": ["r0", "r1"], "label": [1, 0]}).to_csv("digits.csv", index=False)
    assert cli("label", "--log", "p.jsonl", "--labels", "good.csv", "--model", "yn")[0] == 0
    before = (workdir / "p.jsonl").read_text()
    code, _, err = cli("label", "--log", "p.jsonl", "--labels", "digits.csv", "--model", "yn")
    err = " ".join(err.split())
    assert code == 2, err
    assert (
        "2 label value(s) are not what model 'yn' answers (expected one of its classes, 'no', "
        "'yes'), so they never match a prediction: request r0 has '1'" in err
    ), err
    assert "Nothing was written" in err and (workdir / "p.jsonl").read_text() == before
    joined = {r["id"]: r.get("label") for r in read_log(workdir / "p.jsonl").predictions}
    assert joined == {"r0": "yes", "r1": "no"}
    # an id the log does not hold is checked against the champion's classes
    pd.DataFrame({"request_id": ["later"], "label": ["maybe"]}).to_csv("later.csv", index=False)
    code, _, err = cli("label", "--log", "p.jsonl", "--labels", "later.csv", "-m", "yn")
    assert code == 2 and "request later has 'maybe'" in err, err
    code, _, err = cli("label", "--log", "p.jsonl", "--labels", "good.csv", "--storage", "x.db")
    assert code == 2 and "storage 'x.db' does not exist" in err, err
    assert (workdir / "p.jsonl").read_text() == before


def test_label_without_model_checks_the_labels_against_the_classes_of_the_model_the_log_names(
    workdir: Path, cli, monkeypatch
) -> None:
    """iris with its species names as classes, served: its log answers 'setosa', ... A labels
    file encoded 0/1/2 without --model was read as the classes '0', '1', '2' and written (exit
    0); every later `monitor --log` refused the log ("labels are not among the classes the
    champion predicts"). Now the model the log's requests name is found in the registry and the
    labels are checked against its classes; without its registry here, numbers where the log
    shows text classes are refused, saying to pass --model."""
    from sklearn.linear_model import LogisticRegression

    X, y = iris()
    names = y.map(dict(enumerate(["setosa", "versicolor", "virginica"])))
    registry = Registry.open("species", create=True)
    register(registry, LogisticRegression(max_iter=500).fit(X, names), workdir / "art", promote=True)
    with PredictionLog(workdir / "p.jsonl") as log:
        for i, answer in enumerate(["setosa", "versicolor"]):
            log.append({"kind": "prediction", "id": f"r{i}", "t": 1.0, "model": "species",
                        "version": 1, "prediction": [answer]})
    pd.DataFrame({"request_id": ["r0", "r1"], "label": [0, 2]}).to_csv("codes.csv", index=False)
    before = (workdir / "p.jsonl").read_text()
    code, _, err = cli("label", "--log", "p.jsonl", "--labels", "codes.csv")
    err = " ".join(err.split())
    assert code == 2, err
    assert (
        "2 label value(s) are not what model 'species' answers (expected one of its classes, "
        "'setosa', 'versicolor', 'virginica'), so they never match a prediction: request r0 has "
        "'0'" in err
    ), err
    assert "Nothing was written" in err and (workdir / "p.jsonl").read_text() == before
    # a class the log shows no answer of yet is a class all the same
    pd.DataFrame({"request_id": ["r0", "r1"], "label": ["setosa", "virginica"]}).to_csv(
        "names.csv", index=False
    )
    doc = as_json(cli("label", "--log", "p.jsonl", "--labels", "names.csv", "--json"))
    assert (doc["labels"], doc["checked_against"]) == (2, "species")
    joined = {r["id"]: r.get("label") for r in read_log(workdir / "p.jsonl").predictions}
    assert joined == {"r0": "setosa", "r1": "virginica"}
    # the registry elsewhere (another storage here): the log's answers are what is known
    (workdir / "elsewhere").mkdir()
    (workdir / "p.jsonl").rename(workdir / "elsewhere" / "p.jsonl")
    monkeypatch.chdir(workdir / "elsewhere")
    before = Path("p.jsonl").read_text()
    code, _, err = cli("label", "--log", "p.jsonl", "--labels", "../codes.csv")
    err = " ".join(err.split())
    assert code == 2, err
    assert (
        "2 label value(s) are numbers where the model answers text classes (the log shows "
        "'setosa', 'versicolor'), so they never match a prediction: request r0 has '0'; write "
        "each label as the class the model answers, or pass --model NAME (and --storage URL of "
        "its registry) to check the labels against its classes" in err
    ), err
    assert Path("p.jsonl").read_text() == before and not Path("tuneops.journal").exists()
    doc = as_json(cli("label", "--log", "p.jsonl", "--labels", "../names.csv", "--json"))
    assert (doc["labels"], doc["checked_against"]) == (2, None)
    doc = as_json(cli("label", "--log", "p.jsonl", "--labels", "../names.csv", "--storage",
                      "../tuneops.journal", "--json"))
    assert doc["checked_against"] == "species"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_and_monitor_live_through_the_cli(
    workdir: Path, cli, iris_registry: Registry
) -> None:
    """`tuneops serve` as a real process on loopback (token from the environment), a shadow
    challenger, then `tuneops monitor --live` on its log."""
    iris_registry.set_challenger(2, "shadow")
    port = _free_port()
    env = {
        **os.environ,
        "TUNEOPS_SERVE_TOKEN": "s3cret",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    errors = (workdir / "serve.err").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tuneops",
            "serve",
            "--model",
            "iris",
            "--port",
            str(port),
            "--log",
            "p.jsonl",
            "--poll",
            "0.2",
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (workdir / "serve.err").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        assert httpx.post(url + "/predict", json=rows(1)).status_code == 401
        headers = {"Authorization": "Bearer s3cret"}
        with httpx.Client(base_url=url, headers=headers) as client:
            answers = [
                client.post("/predict", json={"rows": [r], "request_id": f"q{i}"}).json()
                for i, r in enumerate(rows(40))
            ]
        assert {a["version"] for a in answers} == {1}
    finally:
        process.terminate()
        process.wait(20)
        errors.close()
    records = read_log(workdir / "p.jsonl").predictions
    assert len(records) == 40 and all(r["shadow"]["version"] == 2 for r in records)
    doc = as_json(
        cli(
            "monitor",
            "--live",
            "--log",
            "p.jsonl",
            "--checks",
            "1",
            "--every",
            "0.01",
            "--no-apply",
            "--json",
        )
    )
    assert doc["champion"] == 1 and doc["challenger"] == 2 and doc["mode"] == "shadow"
    assert doc["decision"] == "hold" and doc["applied"] is False  # no labels yet
    assert doc["traffic"]["1"]["n_requests"] == 40
    assert iris_registry.events("live")[-1]["decision"] == "hold"
    code, _, err = cli("monitor", "--live", "--batch", "x.csv")
    assert code == 2 and "--live watches the prediction log" in err
    # --since was accepted with --live and silently ignored (it judges monitor.slo.window_s)
    for extra in (("--since", "1h"), ("--version", "2"), ("--window", "x.csv")):
        code, _, err = cli("monitor", "--live", "--checks", "1", *extra)
        assert code == 2 and extra[0] in err and "leave them out" in err, (extra, err)
    # a log that never appears ends the given checks (it waited forever); a directory is named
    code, _, err = cli("monitor", "--live", "--log", "none.jsonl", "--checks", "1",
                       "--every", "0.01")
    assert code == 2 and "did not appear in 1 check(s)" in err
    (workdir / "logdir").mkdir()
    pd.DataFrame({"request_id": ["q0"], "label": [1]}).to_csv("y.csv", index=False)
    for command in (("monitor", "--live", "--checks", "1"), ("monitor",), ("label", "--labels", "y.csv")):
        code, _, err = cli(*command, "--log", "logdir")
        assert code == 2 and "is a directory" in err, (command, err)


def test_monitor_live_stops_when_the_reader_of_its_output_leaves(
    workdir: Path, iris_registry: Registry
) -> None:
    """`tuneops monitor --live ... | head` checked, recorded and alerted on forever after head
    exited, its output thrown away. It stops at the next wait between checks (each check made
    is recorded whole), says so on stderr and exits 0, as a command whose reader left does."""
    with PredictionLog(workdir / "p.jsonl") as log:
        for i, row in enumerate(rows(5)):
            log.append({"kind": "prediction", "id": f"r{i}", "t": time.time(), "model": "iris",
                        "version": 1, "role": "champion", "mode": None, "status": "ok",
                        "latency_ms": 1.0, "n_rows": 1, "prediction": [0], "rows": [row]})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with subprocess.Popen(
        [sys.executable, "-m", "tuneops", "monitor", "--live", "--log", "p.jsonl", "--every",
         "1", "--json"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            first = process.stdout.readline()  # the first decision's JSON begins
            assert first.startswith("{"), first
            process.stdout.close()  # the reader leaves (head -1 exits)
            closed = time.monotonic()
            code = process.wait(timeout=30)  # it ran on until killed
            waited = time.monotonic() - closed
            err = process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
    assert code == 0, err
    assert waited < 10, waited  # at the wait after the reader left, not after more checks
    checks = len(iris_registry.events("live"))
    assert f"Stopped: the reader of the output left (a closed pipe) after {checks} check(s)" \
        in " ".join(err.split()), err
    assert checks in (1, 2)  # a check running as the reader left ends, recorded whole
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    time.sleep(1.5)
    assert len(iris_registry.events("live")) == checks  # no check after the exit


def test_verify_follows_the_model_s_own_verify_settings(
    workdir: Path, cli, iris_registry: Registry
) -> None:
    """`tuneops registry settings` says its verify keys apply to every version: `tuneops
    verify` reads them as the staging gate of `deploy` does (it read the version's spec)."""
    (workdir / "gate.yaml").write_text("verify: {n_folds: 3, n_requests: 25}\n")
    assert cli("registry", "settings", "gate.yaml")[0] == 0
    doc = as_json(cli("verify", "2", "--json"))
    assert doc["settings"]["n_folds"] == 3 and doc["concurrency"]["n_requests"] == 25
    assert doc["settings"]["n_repeats"] == FAST["n_repeats"]  # the spec's, not set by the model
    doc = as_json(cli("verify", "2", "--requests", "30", "--json"))  # a flag still wins
    assert doc["settings"]["n_folds"] == 3 and doc["concurrency"]["n_requests"] == 30


def test_a_re_tuning_without_a_challenger_says_so(capsys) -> None:
    """A re-tuning whose search found no feasible trial printed 'challenger vNone, keep'."""
    from tuneops.cli.monitor import _print_outcome
    from tuneops.ops.retune import RetuneOutcome

    outcome = RetuneOutcome(
        "keep", ["no challenger: no trial meets the constraints; the champion stays"], 1, None,
        "iris.retune-v2", "accuracy",
    )
    _print_outcome(outcome)
    out = capsys.readouterr().out
    assert "Re-tuning study iris.retune-v2: no challenger, keep" in out and "vNone" not in out


def test_the_first_promotion_names_no_previous_champion(workdir: Path, cli) -> None:
    registry = Registry.open("iris", create=True)
    register(registry, logistic(1.0), workdir / "art")
    code, out, err = cli("registry", "promote", "1")
    assert code == 0, err
    assert "Version 1 is the champion (the model's first)." in out and "None" not in out
    register(registry, logistic(0.01), workdir / "art")
    assert "Version 2 is the champion (was 1)." in cli("registry", "promote", "2")[1]


def test_a_drift_decision_on_a_labelled_batch_also_gives_the_metric(capsys) -> None:
    """`monitor` printed "warn" for one drifted feature and nothing of the labelled rows' accuracy
    (0.695 against 0.500: better), which only --json showed."""
    from types import SimpleNamespace

    from tuneops.cli import _common
    from tuneops.cli.monitor import _print_assessment
    from tuneops.ops.monitor import Assessment

    drifted = "feature 'x' drifted (CHI2 p_adj=0.0015 < 0.05, PSI 0.179): moderate shift"
    performance = {"metric": "accuracy", "value": 0.6951, "reference": 0.5003, "drop": -0.1948,
                   "confident_drop": -0.27, "n_labelled": 82}
    feature = {"column": "x", "test": "chi2", "p_adjusted": 0.0015, "psi": 0.179, "drifted": True}
    assessment = Assessment("warn", [drifted], [feature], {}, performance, 83, 1.0, 0.179,
                            {"alpha": 0.05, "max_metric_drop": 0.05})
    _common.configure()
    _print_assessment(SimpleNamespace(name="m"), 1, "b.csv", assessment)
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "- accuracy 0.6951 on this batch vs 0.5003 reference (drop -0.195, 82 labelled rows): "
        "not dropped by more than max_metric_drop 0.05 with 95% confidence" in out
    ), out
    # said once: a reason that gives the metric already is not repeated
    dropped = "accuracy 0.41 on this batch vs 0.5 reference (drop 0.09): dropped by more than"
    assessment.reasons = [dropped]
    _print_assessment(SimpleNamespace(name="m"), 1, "b.csv", assessment)
    assert capsys.readouterr().out.count("accuracy 0.") == 1
