"""Live monitoring of the prediction log: SLO breach -> rollback + alert; canary and shadow."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from _ops_helpers import FEATURES, Webhook, iris, logistic, register, rows

from tuneops.errors import DataError, SpecError
from tuneops.ops.live import LivePolicy, SLOConfig, batch_from_log, check_live, summarize
from tuneops.ops.predlog import PredictionLog, read_log
from tuneops.ops.registry import Registry
from tuneops.ops.serve import ServeConfig, start_server


@pytest.fixture
def registry(workdir: Path) -> Registry:
    """Version 1: a weak model (C=0.01, about 0.87 accuracy on iris); version 2: good (C=1)."""
    registry = Registry.open("iris", create=True)
    register(registry, logistic(0.01), workdir / "art", promote=True)
    register(registry, logistic(1.0), workdir / "art")
    return registry


def write_traffic(
    path: Path, answer: dict[int, object], shadow: tuple[int, object] | None = None, n: int = 300
) -> None:
    """``n`` labelled requests answered in turn by the versions in ``answer`` (real predictions),
    under ids no earlier call used (a label joins one request)."""
    first = len(path.read_bytes().splitlines()) if path.exists() else 0
    X, y = iris()
    index = [i % len(X) for i in range(n)]
    frame = X.iloc[index]
    predicted = {v: model.predict(frame).tolist() for v, model in answer.items()}  # type: ignore[attr-defined]
    shadowed = shadow[1].predict(frame).tolist() if shadow else None  # type: ignore[attr-defined]
    versions = list(answer)
    with PredictionLog(path) as log:
        for i in range(n):
            version = versions[i % len(versions)]
            record = {
                "kind": "prediction",
                "id": f"r{first}-{i}",
                "t": time.time() - 1e-3,  # arrived 1 ms before it was answered (now)
                "version": version,
                "role": "champion" if i % len(versions) == 0 else "challenger",
                "status": "ok",
                "latency_ms": 1.0,
                "n_rows": 1,
                "prediction": [predicted[version][i]],
                "rows": [dict(X.iloc[index[i]])],
            }
            if shadow is not None and shadowed is not None:
                record["shadow"] = {
                    "version": shadow[0],
                    "prediction": [shadowed[i]],
                    "latency_ms": 0.5,
                }
            log.append(record)
            log.label(f"r{first}-{i}", [int(y.iloc[index[i]])])


def test_an_slo_breach_rolls_back_under_a_running_server_and_alerts(registry: Registry) -> None:
    registry.promote(2, "new champion, on probation")
    hook = Webhook()
    try:
        with (
            start_server(
                ServeConfig("iris", port=0, log="predictions.jsonl", poll_s=0.1)
            ) as server,
            httpx.Client(base_url=server.url) as client,
        ):
            answered = [
                client.post("/predict", json=rows(1, i)).json()["version"] for i in range(40)
            ]
            assert set(answered) == {2}
            deadline = time.monotonic() + 10  # each log line is written just after its answer
            while len(read_log("predictions.jsonl").predictions) < 40:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            decision = check_live(
                registry,
                "predictions.jsonl",
                alerts={"webhook": hook.url},
                slo={"latency_p95_ms": 1e-4, "min_requests": 20},
            )
            assert decision.decision == "rollback" and decision.applied, decision.reasons
            assert registry.champion() == 1
            deadline = time.monotonic() + 15
            while client.get("/health").json()["champion"] != 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            after = {client.post("/predict", json=rows(1, i)).json()["version"] for i in range(10)}
            assert after == {1}
    finally:
        hook.close()
    assert decision.breaches[0]["slo"] == "latency_p95_ms" and decision.breaches[0]["version"] == 2
    assert (
        "p95 latency" in decision.reasons[1]
        and "100% of 40 requests over the limit" in decision.reasons[1]
    )
    assert hook.kinds() == ["slo", "rollback"]
    assert "champion 2 rolled back" in hook.received[1]["summary"]
    assert "alerts" not in hook.received[0]["details"]  # it was always an empty list
    assert hook.received[0]["details"]["decision"] == "rollback"
    kinds = [e["kind"] for e in registry.events()]
    assert (
        kinds[-2:] == ["rollback", "live"] and registry.events("live")[-1]["decision"] == "rollback"
    )
    # The restored champion is not on probation: its own breach alerts, but nothing is undone.
    decision = check_live(
        registry, "predictions.jsonl", slo={"latency_p95_ms": 1e-4, "min_requests": 5}
    )
    assert decision.traffic["1"]["n_requests"] >= 10  # only its traffic since it became champion
    assert decision.decision == "slo" and not decision.applied and registry.champion() == 1


def test_a_breach_that_goes_on_is_alerted_once_then_after_repeat_s(registry: Registry) -> None:
    """monitor --live checks every 30 s: a champion that keeps breaching sent an slo alert per
    check. Now: once, again after monitor.alerts.repeat_s, and at once for a new breach."""
    write_traffic(Path("predictions.jsonl"), {1: logistic(0.01)}, n=40)
    hook = Webhook()
    slo = {"latency_p95_ms": 1e-4, "min_requests": 5, "probation_s": 0, "window_s": 3600}
    alerts = {"webhook": hook.url, "on": ["slo"], "repeat_s": 600}
    try:
        checks = [check_live(registry, "predictions.jsonl", slo=slo, alerts=alerts)
                  for _ in range(3)]
        assert [c.decision for c in checks] == ["slo"] * 3
        assert [c.slo_news for c in checks] == [True, False, False]
        assert "repeat_s (600 s)" in checks[1].reasons[-1]
        assert hook.kinds() == ["slo"]
        later = check_live(registry, "predictions.jsonl", slo=slo, alerts=alerts,
                           now=time.time() + 601)
        assert later.slo_news and hook.kinds() == ["slo", "slo"]
        # another SLO broken besides: news at once
        wider = check_live(registry, "predictions.jsonl", alerts=alerts,
                           slo={**slo, "latency_p50_ms": 1e-4})
        assert wider.slo_news and hook.kinds() == ["slo"] * 3
        assert {b["slo"] for b in wider.breaches} == {"latency_p50_ms", "latency_p95_ms"}
    finally:
        hook.close()
    assert [e["slo_news"] for e in registry.events("live")] == [True, False, False, True, True]


def test_a_canary_that_beats_the_champion_with_confidence_is_promoted(registry: Registry) -> None:
    registry.set_challenger(2, "canary", share=0.5)
    hook = Webhook()
    write_traffic(Path("predictions.jsonl"), {1: logistic(0.01), 2: logistic(1.0)}, n=40)
    try:
        early = check_live(registry, "predictions.jsonl", policy={"min_labelled": 100})
        assert early.decision == "hold" and "100 needed on each side" in early.reasons[-1]
        write_traffic(Path("predictions.jsonl"), {1: logistic(0.01), 2: logistic(1.0)}, n=600)
        decision = check_live(
            registry,
            "predictions.jsonl",
            policy={"min_labelled": 100},
            alerts={"webhook": hook.url, "on": ["promote"]},
        )
    finally:
        hook.close()
    comparison = decision.comparison
    assert decision.decision == "promote" and decision.applied, decision.reasons
    assert not comparison["paired"] and comparison["low"] > 0 and comparison["n_challenger"] >= 300
    assert registry.champion() == 2 and registry.challenger() is None
    assert hook.kinds() == ["promote"]


def test_a_shadow_that_loses_with_confidence_is_withdrawn(registry: Registry) -> None:
    registry.promote(2)
    registry.set_challenger(1, "shadow")
    write_traffic(Path("predictions.jsonl"), {2: logistic(1.0)}, shadow=(1, logistic(0.01)), n=450)
    decision = check_live(registry, "predictions.jsonl", policy={"min_labelled": 100})
    assert decision.decision == "withdraw" and decision.applied, decision.reasons
    assert decision.comparison["paired"] and decision.comparison["high"] < 0
    assert "worse with confidence" in decision.reasons[0]
    assert registry.challenger() is None and registry.champion() == 2
    # Recording only: with auto off the registry is left alone. Evidence from before the
    # challenger was set again does not count: new traffic is needed.
    registry.set_challenger(1, "shadow")
    held = check_live(registry, "predictions.jsonl", policy={"min_labelled": 100})
    assert held.decision == "hold" and held.comparison["n_champion"] == 0
    write_traffic(Path("predictions.jsonl"), {2: logistic(1.0)}, shadow=(1, logistic(0.01)), n=450)
    decision = check_live(
        registry, "predictions.jsonl", policy={"min_labelled": 100, "auto": False}
    )
    assert (
        decision.decision == "withdraw"
        and not decision.applied
        and registry.challenger() is not None
    )


def test_traffic_per_version_and_the_log_as_a_batch(registry: Registry) -> None:
    write_traffic(
        Path("predictions.jsonl"),
        {1: logistic(0.01), 2: logistic(1.0)},
        shadow=(3, logistic(1.0)),
        n=100,
    )
    contents = read_log("predictions.jsonl")
    traffic = summarize(contents.predictions, now=time.time() + 1, window_s=60)
    assert (
        traffic[1].n_requests == 50 and traffic[2].n_requests == 50 and traffic[3].n_requests == 100
    )
    assert traffic[3].shadow_only and traffic[3].rps == 0 and traffic[1].rps > 0
    assert traffic[1].latency_ms["latency_p95_ms"] == pytest.approx(1.0)
    assert traffic[1].score is None and traffic[1].n_labelled == 0  # no metric asked
    # The metric per version on the labelled rows each answered (or, as a shadow, scored).
    scored = summarize(contents.predictions, now=time.time() + 1, window_s=60, metric="accuracy")
    X, y = iris()
    for version, model, index in (
        (1, logistic(0.01), range(0, 100, 2)),
        (2, logistic(1.0), range(1, 100, 2)),
        (3, logistic(1.0), range(100)),
    ):
        expected = float((model.predict(X.iloc[list(index)]) == y.iloc[list(index)]).mean())
        assert scored[version].n_labelled == len(index)
        assert scored[version].score == pytest.approx(expected), version
    assert scored[1].score != scored[2].score  # the two models differ on these rows
    assert scored[3].to_dict()["score"] == scored[3].score and "labelled" not in scored[3].to_dict()
    # A version that answered requests and scored others in shadow within the window (a shadow
    # just promoted) is judged on what it answered: whole requests, not its predict alone.
    mixed = [
        {"kind": "prediction", "id": "a", "t": 10.0, "version": 1, "role": "champion",
         "status": "ok", "latency_ms": 0.5, "shadow": {"version": 2, "latency_ms": 0.1}},
        {"kind": "prediction", "id": "b", "t": 11.0, "version": 2, "role": "champion",
         "status": "ok", "latency_ms": 9.0},
    ]
    both = summarize(mixed, now=12.0, window_s=60)
    assert both[2].roles == ["shadow", "champion"] and both[2].samples_ms == [9.0]
    assert summarize(mixed[:1], now=12.0, window_s=60)[2].samples_ms == [0.1]
    batch = batch_from_log(contents, FEATURES, "target", version=2)
    assert list(batch.columns) == [*FEATURES, "target"] and len(batch) == 50
    assert batch["target"].tolist() == [int(y.iloc[i]) for i in range(1, 100, 2)]
    with open("predictions.jsonl", "a") as handle:
        handle.write('{"kind": "prediction", "id": "torn"')  # a writer killed mid-line
    assert read_log("predictions.jsonl").bad_lines == 1


def test_bad_live_settings_name_the_field() -> None:
    with pytest.raises(
        SpecError,
        match=r"monitor\.slo\.latency_p95_ms: expected a number > 0 \(or null: unchecked\), "
        "received 'fast'",
    ):
        SLOConfig.from_raw({"latency_p95_ms": "fast"})
    with pytest.raises(
        SpecError,
        match="monitor.slo: unknown SLO setting 'latency_p95'.*Did you mean 'latency_p95_ms'",
    ):
        SLOConfig.from_raw({"latency_p95": 5})
    with pytest.raises(SpecError, match="monitor.live.metric: unknown monitored metric 'acc'"):
        LivePolicy.from_raw({"metric": "acc"})
    assert SLOConfig.from_raw({"latency_p95_ms": None}).latency_p95_ms is None


@pytest.mark.parametrize(
    ("section", "raw"),
    [("slo", {"latency_p95_ms": "fast"}), ("slo", {"latency_p95": 5}), ("slo", ["window_s"]),
     ("slo", {"max_error_rate": 2}), ("slo", {"min_requests": 1.5}), ("slo", {"window_s": None}),
     ("slo", {"alpha": float("nan")}), ("live", {"metric": "acc"}), ("live", {"auto": "yes"}),
     ("live", {"n_boot": 5}), ("live", {"min_labelled": True}), ("live", {"marg": 0.1}),
     ("live", "auto")],
)
def test_the_spec_and_the_live_module_refuse_settings_in_the_same_words(section, raw) -> None:
    """One validator (the spec's section) serves both: the module's own said `unknown setting`
    where the spec said `unknown SLO setting`, `a mapping of settings, received list` without
    naming the keys, and `a number >= 1e-12` for a latency limit the spec called `> 0`."""
    from tuneops.spec import Monitor

    parse = {"slo": SLOConfig.from_raw, "live": LivePolicy.from_raw}[section]
    with pytest.raises(SpecError) as module:
        parse(raw)
    with pytest.raises(SpecError) as spec:
        Monitor.from_raw({section: raw})
    assert str(module.value) == str(spec.value), (module.value, spec.value)
    assert str(spec.value).startswith(f"monitor.{section}")


def test_live_settings_read_as_the_spec_reads_them() -> None:
    from tuneops.spec import LiveSettings, SLOSettings

    # the defaults are the spec's
    assert SLOConfig.from_raw(None).to_dict() == SLOSettings().full_dict() == SLOConfig().to_dict()
    assert LivePolicy.from_raw(None).to_dict() == LiveSettings().full_dict()
    assert LivePolicy.from_raw(None) == LivePolicy()
    slo = SLOConfig.from_raw({"latency_p99_ms": 200, "min_requests": 5, "max_error_rate": None})
    assert slo.latency_p99_ms == 200.0 and slo.min_requests == 5 and slo.max_error_rate is None
    policy = LivePolicy.from_raw({"metric": "f1", "auto": False, "n_boot": 200})
    assert (policy.metric, policy.auto, policy.n_boot) == ("f1", False, 200)
    assert LivePolicy.from_raw(policy) is policy


@pytest.mark.parametrize(
    ("module", "name", "settings"),
    [
        ("live", "SLOConfig", "SLOSettings"),
        ("live", "LivePolicy", "LiveSettings"),
        ("verify", "VerifyConfig", "VerifySettings"),
        ("alerts", "AlertConfig", "AlertSettings"),
    ],
)
def test_the_runtime_settings_read_their_defaults_from_the_spec(
    module: str, name: str, settings: str
) -> None:
    """The defaults of monitor.slo, .live, .verify and .alerts were written twice, in the spec's
    settings and in these dataclasses (only an equality test caught a drift): each field's
    default is now the spec settings' value of that field, never a literal of its own."""
    import ast
    import dataclasses
    import importlib
    import inspect

    import tuneops.spec

    runtime = getattr(importlib.import_module(f"tuneops.ops.{module}"), name)
    spec = getattr(tuneops.spec, settings)
    (node,) = ast.parse(inspect.getsource(runtime)).body
    assert isinstance(node, ast.ClassDef)
    defaults = {
        f.target.id: f.value
        for f in node.body
        if isinstance(f, ast.AnnAssign) and isinstance(f.target, ast.Name)
    }
    assert set(defaults) == set(spec.model_fields) == {f.name for f in dataclasses.fields(runtime)}
    for field_name, value in defaults.items():
        read = value.args[0] if isinstance(value, ast.Call) and value.args else value
        assert isinstance(read, ast.Attribute) and read.attr == field_name, (
            f"{name}.{field_name} = {ast.unparse(value)}: expected the default of "
            f"{settings}.{field_name}"
        )
    assert runtime() == runtime.from_raw(None)
    assert dataclasses.asdict(runtime()) == {
        k: getattr(spec(), k) for k in spec.model_fields
    }


# Appends records to the log under a file size limit until the disk "fills" (EFBIG), lifts the
# limit, appends one more: as a full disk that frees up again. argv: log path, limit bytes.
_FILLING = """
import resource, signal, sys
from tuneops.ops.predlog import PredictionLog
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
log = PredictionLog(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), hard))
written = 0
try:
    while True:
        log.append({"kind": "prediction", "id": f"r{written}", "t": 1.0, "prediction": [1],
                    "pad": "x" * 100})
        written += 1
except OSError as exc:
    failed = exc
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
log.append({"kind": "prediction", "id": "after", "t": 2.0, "prediction": [0]})
print(written)
"""


def test_a_record_the_disk_cut_short_does_not_take_the_next_one_with_it(workdir: Path) -> None:
    import subprocess
    import sys

    from conftest import ROOT

    path = workdir / "predictions.jsonl"
    done = subprocess.run([sys.executable, "-c", _FILLING, str(path), "1000"], check=True,
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    written = int(done.stdout)
    assert 0 < written < 10  # the limit cut a record short (1000 bytes, ~150 per record)
    log = read_log(path)
    assert [r["id"] for r in log.predictions] == [f"r{i}" for i in range(written)] + ["after"]
    assert log.bad_lines == 1  # the fragment, a line of its own


def test_a_line_left_torn_before_the_writer_opened_is_closed_and_odd_records_are_counted(
    workdir: Path,
) -> None:
    path = workdir / "predictions.jsonl"
    path.write_text('{"kind":"prediction","id":"torn","t":17965')  # a server killed mid-write
    with PredictionLog(path) as log:
        log.append({"kind": "prediction", "id": "after", "t": 1.0, "prediction": [0]})
        log.append({"kind": "prediction", "id": "odd", "t": "yesterday", "prediction": [0]})
        log.label("after", [0])
    contents = read_log(path)
    assert [r["id"] for r in contents.predictions] == ["after"]
    assert contents.predictions[0]["label"] == [0]
    assert contents.bad_lines == 2  # the torn line, and the record whose time is not a number


def test_a_line_another_writer_left_torn_while_this_one_runs_is_closed(workdir: Path) -> None:
    """The check at open alone: a replica killed mid-write while this server ran had its torn
    line glued to this server's next record, and readers skipped both."""
    path = workdir / "predictions.jsonl"
    with PredictionLog(path) as log:
        log.append({"kind": "prediction", "id": "before", "t": 1.0, "prediction": [0]})
        with open(path, "a") as other:  # the other replica, killed mid-write
            other.write('{"kind":"prediction","id":"torn","t":2')
        log.append({"kind": "prediction", "id": "after", "t": 3.0, "prediction": [1]})
    contents = read_log(path)
    assert [r["id"] for r in contents.predictions] == ["before", "after"]
    assert contents.bad_lines == 1


def test_a_prediction_log_that_cannot_be_opened_is_named(workdir: Path) -> None:
    from tuneops.errors import DataError

    (workdir / "a_directory").mkdir()
    with pytest.raises(DataError, match=r"prediction log '.*a_directory' cannot be opened"):
        PredictionLog(workdir / "a_directory")


def test_the_live_reader_parses_only_what_was_appended(workdir: Path, monkeypatch) -> None:
    import json as json_module

    from tuneops.ops import predlog

    path = workdir / "predictions.jsonl"
    reader = predlog.LogReader(path)
    with PredictionLog(path) as log:
        for i in range(3):
            log.append({"kind": "prediction", "id": f"r{i}", "t": 1.0 + i, "prediction": [0]})
    assert [r["id"] for r in reader.read().predictions] == ["r0", "r1", "r2"]
    parsed: list[str] = []
    real = json_module.loads
    monkeypatch.setattr(predlog.json, "loads", lambda text: parsed.append(text) or real(text))
    with open(path, "a") as handle:  # a record being written: left for the next read
        handle.write('{"kind": "label", "id": "r0", "t": 9.0, "label": [1]}\n{"kind": "pred')
    contents = reader.read()
    assert len(parsed) == 1  # the new label line only, not the three before it
    assert contents.predictions[0]["label"] == [1] and contents.n_labels == 1
    with open(path, "a") as handle:
        handle.write('iction", "id": "r3", "t": 5.0, "prediction": [1]}\n')
    assert [r["id"] for r in reader.read().predictions] == ["r0", "r1", "r2", "r3"]
    assert reader.read().bad_lines == 0
    path.write_text('{"kind": "prediction", "id": "new", "t": 1.0, "prediction": [0]}\n')
    assert [r["id"] for r in reader.read().predictions] == ["new"]  # rotated: read again


def test_a_writer_follows_its_log_when_it_is_rotated_away(workdir: Path) -> None:
    """logrotate moves predictions.jsonl to predictions.jsonl.1 (or a person deletes it): the
    server kept writing into the moved file, and `monitor --live` on the path saw no request
    after the rotation. The writer opens a new file at its path."""
    path = workdir / "predictions.jsonl"
    with PredictionLog(path) as log:
        log.append({"kind": "prediction", "id": "old", "t": 1.0, "prediction": [0]})
        path.rename(workdir / "predictions.jsonl.1")
        log.append({"kind": "prediction", "id": "new", "t": 2.0, "prediction": [1]})
        path.unlink()
        log.label("new", 1)
    assert [r["id"] for r in read_log(workdir / "predictions.jsonl.1").predictions] == ["old"]
    assert read_log(path).n_labels == 1 and not read_log(path).predictions
    assert oct(path.stat().st_mode & 0o777) == "0o640"


def test_the_models_own_settings_route_alerts_through_promotions(registry: Registry) -> None:
    """Alerts and the live policy set on the model (not in a version's spec) decide and alert
    for whichever version is champion, and stay through the promotion they announce."""
    registry.set_challenger(2, "canary", share=0.5)
    hook = Webhook()
    write_traffic(Path("predictions.jsonl"), {1: logistic(0.01), 2: logistic(1.0)}, n=600)
    with pytest.raises(SpecError, match="settings.live: unknown live setting .min_labeled."):
        registry.configure({"live": {"min_labeled": 100}})
    assert registry.settings() == {} and registry.events("settings") == []  # nothing stored
    event = registry.configure(
        {"live": {"min_labelled": 700}, "alerts": {"webhook": hook.url, "on": ["promote"]}}
    )
    assert event["previous"] == {} and set(event["monitor"]) == {"live", "alerts"}
    try:
        held = check_live(registry, "predictions.jsonl")  # the model's min_labelled: 700
        assert held.decision == "hold" and "700 needed on each side" in held.reasons[-1]
        registry.configure({"live": {"min_labelled": 100}, "alerts": {"webhook": hook.url}})
        decision = check_live(registry, "predictions.jsonl")
    finally:
        hook.close()
    assert decision.decision == "promote" and registry.champion() == 2, decision.reasons
    assert hook.kinds() == ["promote"]  # the versions' specs have no alerts
    assert registry.monitor_section(registry.version(2))["alerts"]["webhook"] == hook.url
    registry.configure(None)
    assert registry.settings() == {} and "alerts" not in registry.monitor_section(
        registry.version(2)
    )
    assert [e["monitor"] == {} for e in registry.events("settings")] == [False, False, True]


def test_a_label_that_is_no_label_is_counted_as_a_bad_line_not_joined(workdir: Path) -> None:
    """An object where a label goes (a log written by something else, or by a server before
    /label checked its labels) made `monitor --log` fail with "unhashable type"."""
    write_traffic(Path("predictions.jsonl"), {1: logistic(0.01)}, n=4)
    with PredictionLog("predictions.jsonl") as log:
        log.label("r0", {"class": 1})
        log.label("r1", [[1]])
        log.label("r2", float("nan"))
    contents = read_log("predictions.jsonl")
    assert contents.bad_lines == 3
    _, y = iris()
    # the labels written with the traffic stand; the bad ones neither replace nor join them
    assert [r["label"] for r in contents.predictions] == [[int(y.iloc[i])] for i in range(4)]


def test_records_without_a_usable_time_are_bad_lines_not_a_crash(workdir: Path) -> None:
    """A prediction without `t`, or with a time or latency no float holds, raised KeyError or
    OverflowError in the reader (and so in `monitor --log` and live decisions)."""
    lines = [
        {"kind": "prediction", "id": "a", "version": 1, "prediction": [0]},  # no t
        {"kind": "prediction", "id": "b", "t": 10**400, "version": 1, "prediction": [0]},
        {"kind": "label", "id": "c", "label": 1},  # a label without t
        {"kind": "prediction", "id": "d", "t": 5.0, "latency_ms": 10**400, "version": 1,
         "prediction": [0]},
        {"kind": "label", "id": "d", "t": 6.0, "label": 0},
    ]
    Path("odd.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    contents = read_log("odd.jsonl")
    assert contents.bad_lines == 3
    assert [r["id"] for r in contents.predictions] == ["d"]
    assert "label" not in contents.predictions[0]  # never answered in a float's range: unlabelled


def test_the_prediction_log_is_not_readable_by_every_user(workdir: Path) -> None:
    """It holds every request's input rows: created 0640 (it was 0644)."""
    import stat

    with PredictionLog("fresh.jsonl") as log:
        log.label("r0", 1)
    assert stat.S_IMODE(Path("fresh.jsonl").stat().st_mode) & 0o007 == 0


def test_a_label_of_the_wrong_shape_never_replaces_a_good_one(workdir: Path) -> None:
    records = [
        {"kind": "prediction", "id": "one", "t": 1.0, "latency_ms": 1, "prediction": [0]},
        {"kind": "label", "id": "one", "t": 2.0, "label": 1},
        {"kind": "label", "id": "one", "t": 3.0, "label": [0, 1]},  # two labels for one row
        {"kind": "label", "id": "two", "t": 4.0, "label": [1, 1]},  # before its request: ...
        {"kind": "label", "id": "two", "t": 8.0, "label": 1},  # ... and one label for two rows
        {"kind": "prediction", "id": "two", "t": 5.0, "latency_ms": 1, "prediction": [0, 1]},
    ]
    Path("p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    labels = {r["id"]: r.get("label") for r in read_log("p.jsonl").predictions}
    assert labels == {"one": 1, "two": None}


def test_a_label_counts_only_for_a_prediction_answered_before_it_was_recorded(
    workdir: Path,
) -> None:
    """A label posted before its request was answered (forged, or guessed ahead of a client's
    id) must not join the prediction answered later under that id. The join compares times,
    not positions: the server appends a prediction after its answer is sent (after the shadow
    scored it), so the label of a quick client can come first in the file."""
    from tuneops.ops import predlog

    path = workdir / "predictions.jsonl"
    lines = [
        {"kind": "label", "id": "forged", "t": 5.0, "label": 1},
        {"kind": "prediction", "id": "forged", "t": 10.0, "latency_ms": 1.0, "prediction": [0]},
        # recorded while the request was in flight (answered at 11.0): not yet answered
        {"kind": "label", "id": "slow", "t": 10.5, "label": 1},
        {"kind": "label", "id": "quick", "t": 21.0, "label": 1},  # before its record, after it
        {"kind": "prediction", "id": "slow", "t": 10.0, "latency_ms": 1000.0, "prediction": [0]},
        {"kind": "prediction", "id": "quick", "t": 20.0, "latency_ms": 1.0, "prediction": [0]},
        {"kind": "label", "id": "slow", "t": 12.0, "label": 2},
        {"kind": "label", "id": "quick", "t": 22.0, "label": 2},  # a correction
        {"kind": "label", "id": "quick", "t": 15.0, "label": 3},  # later in the file, too early
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    expected = {"forged": None, "slow": 2, "quick": 2}
    assert {r["id"]: r.get("label") for r in read_log(path).predictions} == expected
    reader = predlog.LogReader(path)  # read as it grows, one line at a time: the same join
    path.write_text("")
    for line in lines:
        with open(path, "a") as handle:
            handle.write(json.dumps(line) + "\n")
        contents = reader.read()
    assert {r["id"]: r.get("label") for r in contents.predictions} == expected


def test_a_label_for_an_id_answered_twice_before_it_joins_neither_request(
    workdir: Path,
) -> None:
    """Two requests answered under one id (two servers; a client that sent its id twice): a
    label recorded after both joined both, one truth counted twice; it joins none and is
    counted. A label recorded between the two answers can only be the first's."""
    from tuneops.ops import predlog

    path = workdir / "predictions.jsonl"
    lines = [
        {"kind": "prediction", "id": "twice", "t": 1.0, "latency_ms": 1, "prediction": [0]},
        {"kind": "label", "id": "between", "t": 6.0, "label": 1},
        {"kind": "label", "id": "twice", "t": 9.0, "label": 1},
        {"kind": "prediction", "id": "between", "t": 2.0, "latency_ms": 1, "prediction": [1]},
        {"kind": "prediction", "id": "between", "t": 7.0, "latency_ms": 1, "prediction": [0]},
        # written after the label (the server appends after answering): still answered before
        {"kind": "prediction", "id": "twice", "t": 5.0, "latency_ms": 1, "prediction": [1]},
        {"kind": "prediction", "id": "failed", "t": 1.0, "status": "error", "n_rows": 1},
        {"kind": "prediction", "id": "failed", "t": 2.0, "latency_ms": 1, "prediction": [1]},
        {"kind": "label", "id": "failed", "t": 3.0, "label": 1},  # a retry after a failure
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    contents = read_log(path)
    joined = [(r["id"], r["t"], r.get("label")) for r in contents.predictions]
    assert joined == [
        ("twice", 1.0, None),
        ("between", 2.0, 1),
        ("between", 7.0, None),
        ("twice", 5.0, None),
        ("failed", 1.0, None),
        ("failed", 2.0, 1),
    ]
    assert contents.n_ambiguous == 1
    reader = predlog.LogReader(path)  # read as it grows: "twice" was joined, then ambiguous
    path.write_text("")
    for line in lines:
        with open(path, "a") as handle:
            handle.write(json.dumps(line) + "\n")
        contents = reader.read()
    assert [(r["id"], r["t"], r.get("label")) for r in contents.predictions] == joined
    assert contents.n_ambiguous == 1


def test_throughput_is_per_second_of_the_role_held_and_counts_only_answers():
    """Found by a user: a champion since a rollback a second ago was divided by the whole window
    (0.4 req/s for 109 requests in a second), and a version that was both shadow and canary
    counted the requests it only shadowed as answered."""
    old = [{"t": float(t), "version": 1, "role": "champion", "latency_ms": 1.0} for t in range(100)]
    new = [{"t": 299.0 + i / 100, "version": 1, "role": "champion", "latency_ms": 1.0,
            "shadow": {"version": 2, "latency_ms": 1.0}} for i in range(100)]
    canary = [{"t": 299.5, "version": 2, "role": "canary", "latency_ms": 1.0}] * 10
    traffic = summarize(old + new + canary, now=300.0, window_s=400, since={1: 299.0})
    assert traffic[1].n_requests == 100 and traffic[1].rps == pytest.approx(100.0)
    assert traffic[2].n_requests == 110  # 100 shadowed, 10 answered
    assert traffic[2].rps == pytest.approx(10 / 300.0)  # answered ones, over the whole window


def test_a_window_without_traffic_judges_nothing(registry: Registry) -> None:
    """'every judged version meets its SLOs' was said of a log without a request."""
    from tuneops.ops.live import check_live

    Path("empty.jsonl").write_text("")
    decision = check_live(registry, "empty.jsonl", record=False)
    assert decision.decision == "ok"
    assert decision.reasons == ["no request in the last 300 s: nothing to judge yet"]


def test_a_better_challenger_is_promoted_when_the_established_champion_breaks_an_slo() -> None:
    """It was held: the champion's breach (which no rollback can undo) blocked the way out."""
    from tuneops.ops.live import decide

    breach = {"version": 1, "slo": "latency_p95_ms", "limit": 50, "observed": 80.0,
              "p_value": 0.001, "share_over": 0.2, "n": 400}
    comparison = {"enough": True, "metric": "accuracy", "champion": 0.80, "challenger": 0.86,
                  "n_champion": 300, "n_challenger": 300, "gain": 0.06, "low": 0.03,
                  "high": 0.09, "confidence": 0.95, "paired": True}
    decision, reasons = decide(1, 2, [breach], comparison, LivePolicy(),
                               champion_on_probation=False, has_previous=True)
    assert decision == "promote" and "better with confidence" in reasons[0]
    assert any("champion 1 breaks its SLO" in r for r in reasons)


def test_a_challenger_is_judged_on_its_own_traffic_not_on_its_earlier_roles(
    registry: Registry,
) -> None:
    """Version 2 was a slow champion, rolled back; set again as a canary, its SLOs are judged
    on the requests it answered as the canary, as its accuracy is, not withdrawn at once for
    the latency of its days as champion."""
    registry.promote(2, "new champion")
    X, y = iris()
    predicted = logistic(1.0).predict(X).tolist()
    with PredictionLog(Path("predictions.jsonl")) as log:
        for i in range(100):  # v2 answering as the champion, slowly
            log.append({
                "kind": "prediction", "id": f"slow{i}", "t": time.time() - 1e-3, "version": 2,
                "role": "champion", "status": "ok", "latency_ms": 80.0, "n_rows": 1,
                "prediction": [predicted[i]], "rows": [dict(X.iloc[i])],
            })
            log.label(f"slow{i}", [int(y.iloc[i])])
    registry.rollback(reason="too slow")
    registry.set_challenger(2, "canary", share=0.5)
    write_traffic(Path("predictions.jsonl"), {1: logistic(0.01), 2: logistic(1.0)}, n=100)
    decision = check_live(
        registry,
        "predictions.jsonl",
        slo={"latency_p95_ms": 10, "min_requests": 20},
        policy={"min_labelled": 100},
    )
    assert decision.decision == "hold", decision.reasons
    assert not decision.breaches and registry.challenger() is not None
    assert decision.traffic["2"]["n_requests"] == 50
    assert decision.traffic["2"]["latency_ms"]["latency_p95_ms"] == pytest.approx(1.0)


def test_another_model_s_log_is_refused_not_read_as_missing_features(registry: Registry, cli) -> None:
    """`monitor --log` on the log of another model read every feature as missing: 'retune',
    every feature drifted, the metric collapsed, and the event recorded."""
    with PredictionLog(Path("other.jsonl")) as log:
        for i in range(60):
            log.append({
                "kind": "prediction", "id": f"o{i}", "t": time.time() - 1e-3, "version": 1,
                "role": "champion", "status": "ok", "latency_ms": 1.0, "n_rows": 1,
                "prediction": [0], "rows": [{"mcg": 0.5, "gvh": 0.4}],
            })
    with pytest.raises(DataError, match=r"60 logged row\(s\) lack the model's features"):
        batch_from_log("other.jsonl", FEATURES, "target")
    before = len(registry.events())
    code, _, err = cli("monitor", "--model", "iris", "--log", "other.jsonl")
    assert code == 2, err
    assert "prediction log 'other.jsonl': 60 logged row(s) lack the model's features" in err
    assert "a row holds mcg, gvh" in err and len(registry.events()) == before


def test_a_log_shared_with_another_model_s_server_is_judged_on_this_model_s_requests(
    registry: Registry,
) -> None:
    """Two models served from one directory write the default log together, both numbering
    their versions from 1: `monitor --live` judged the other model's slow v1 as this one's
    (an SLO breach, a rollback), and `monitor --log` refused the whole log."""
    with start_server(ServeConfig("iris", port=0, log="predictions.jsonl", poll_s=0.1)) as server:
        with httpx.Client(base_url=server.url) as client:
            for i in range(60):
                assert client.post("/predict", json=rows(1, i)).is_success
        deadline = time.monotonic() + 10
        while len(read_log("predictions.jsonl").predictions) < 60:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert {r["model"] for r in read_log("predictions.jsonl").predictions} == {"iris"}
    with PredictionLog(Path("predictions.jsonl")) as log:
        for i in range(60):  # the other model's server: its own features, slow
            log.append({
                "kind": "prediction", "id": f"o{i}", "t": time.time() - 1e-3, "model": "other",
                "version": 1, "role": "champion", "status": "ok", "latency_ms": 500.0,
                "n_rows": 1, "prediction": [0], "rows": [{"mcg": 0.5}],
            })
    decision = check_live(
        registry, "predictions.jsonl", slo={"latency_p95_ms": 100, "min_requests": 20}
    )
    assert not decision.breaches, decision.reasons
    assert decision.traffic["1"]["n_requests"] == 60
    frame = batch_from_log("predictions.jsonl", FEATURES, "target", model="iris")
    assert len(frame) == 60
    with pytest.raises(DataError, match="lack the model's features"):  # unfiltered: refused
        batch_from_log("predictions.jsonl", FEATURES, "target")


def test_a_live_decision_is_not_applied_to_a_champion_changed_since_the_check(
    registry: Registry, workdir: Path
) -> None:
    """A live check decided on champion 1's traffic, and another process promoted version 3
    before the decision was applied: the promotion of the challenger replaced champion 3,
    which no traffic had judged, and the rollback rolled back champion 3. Now neither is
    applied, and the decision says why."""
    from tuneops.ops.live import LiveDecision, _apply

    registry.set_challenger(2, "canary", 0.5)
    third = register(registry, logistic(0.1), workdir / "art")
    registry.promote(third, "by another process")
    for kind in ("promote", "rollback"):
        decision = LiveDecision(kind, ["judged on champion 1's traffic"], 1, 2, "canary", {}, [],
                                None)
        assert _apply(registry, decision) is False
        assert registry.champion() == third and registry.champion_history() == [1]
        assert "was decided while version 1 was the champion, and the champion is now " \
               f"{third}" in decision.reasons[-1], decision.reasons
    assert [e["version"] for e in registry.events("promote")] == [1, third]
    assert registry.events("rollback") == []
