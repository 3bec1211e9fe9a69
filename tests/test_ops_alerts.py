"""Alerts: a webhook on loopback and a command receive the JSON; failures never raise."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from _ops_helpers import Webhook

from tuneops.errors import SpecError
from tuneops.ops.alerts import AlertConfig, alerts_for_assessment, send_alert


def test_webhook_and_command_receive_the_event(tmp_path: Path) -> None:
    hook = Webhook()
    out = tmp_path / "alert.json"
    script = f"import sys, pathlib; pathlib.Path({str(out)!r}).write_text(sys.stdin.read())"
    try:
        config = AlertConfig.from_raw(
            {"webhook": hook.url, "command": [sys.executable, "-c", script]}
        )
        deliveries = send_alert(
            config,
            "rollback",
            model="iris",
            summary="version 2 rolled back",
            details={"version": 1},
        )
    finally:
        hook.close()
    assert [(d.target, d.ok) for d in deliveries] == [("webhook", True), ("command", True)]
    assert hook.received[0]["kind"] == "rollback" and hook.received[0]["model"] == "iris"
    assert hook.received[0]["details"] == {"version": 1}
    assert json.loads(out.read_text())["summary"] == "version 2 rolled back"


def test_failures_are_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    refused = Webhook(status=500)
    refused.close()  # nothing listens on its port any more
    failing = Webhook(status=503)
    try:
        with caplog.at_level(logging.WARNING, logger="tuneops.alerts"):
            deliveries = send_alert(
                AlertConfig.from_raw({"webhook": refused.url, "timeout_s": 2}),
                "slo",
                model="m",
                summary="s",
            )
            deliveries += send_alert(
                AlertConfig.from_raw({"webhook": failing.url}), "slo", model="m", summary="s"
            )
            deliveries += send_alert(
                AlertConfig.from_raw({"command": "false"}), "slo", model="m", summary="s"
            )
            deliveries += send_alert(
                AlertConfig.from_raw({"command": "no-such-command-xyz"}),
                "slo",
                model="m",
                summary="s",
            )
    finally:
        failing.close()
    assert [d.ok for d in deliveries] == [False, False, False, False]
    assert "cannot reach" in deliveries[0].error and "HTTP 503" in deliveries[1].error
    assert "exited 1" in deliveries[2].error and "failed to run" in deliveries[3].error
    assert len([r for r in caplog.records if "not delivered" in r.getMessage()]) == 4


def test_only_the_kinds_asked_for_are_sent() -> None:
    hook = Webhook()
    try:
        config = AlertConfig.from_raw({"webhook": hook.url, "on": ["rollback"]})
        assert send_alert(config, "promote", model="m", summary="s") == []

        class Assessment:
            decision, reasons, n_rows = "warn", ["feature 'x' drifted"], 100

        assert alerts_for_assessment(config, "m", Assessment()) == []
        config = AlertConfig.from_raw({"webhook": hook.url, "on": ["warn"]})
        assert [d.ok for d in alerts_for_assessment(config, "m", Assessment())] == [True]
    finally:
        hook.close()
    assert hook.kinds() == ["warn"] and "drifted" in hook.received[0]["summary"]


def test_bad_alert_settings_name_the_field() -> None:
    with pytest.raises(
        SpecError, match="monitor.alerts.webhook: expected an http:// or https:// URL"
    ):
        AlertConfig.from_raw({"webhook": "ftp://x"})
    with pytest.raises(
        SpecError, match=r"monitor\.alerts\.on\[0\]: unknown alert kind 'rolback'.*'rollback'"
    ):
        AlertConfig.from_raw({"on": ["rolback"]})
    with pytest.raises(SpecError, match="unknown alert setting 'hook'"):
        AlertConfig.from_raw({"hook": "http://x"})
    assert not AlertConfig.from_raw(None).enabled


def test_an_unquoted_on_key_in_yaml_is_the_alert_kinds() -> None:
    # YAML 1.1 reads `on:` as the boolean true; the documented spelling must load.
    import yaml

    from tuneops.spec import load_spec

    text = """
study: s
data: {source: "sklearn:iris"}
model: {family: knn}
objectives: [accuracy]
monitor:
  alerts:
    webhook: http://127.0.0.1:9/hook
    on: [warn, rollback]
"""
    raw = yaml.safe_load(text)
    assert True in raw["monitor"]["alerts"]  # what PyYAML gives
    assert AlertConfig.from_raw(raw["monitor"]["alerts"]).on == ("warn", "rollback")
    spec = load_spec(raw)
    assert spec.monitor.alerts.on == ("warn", "rollback")


def test_a_webhook_read_from_the_environment_and_never_shown_whole(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A webhook's secret is its path or query (Slack's /services/T/B/XXXX, ?token=): it may
    live in the environment, and no message shows more than its scheme and host."""
    from tuneops.spec import Monitor

    hook = Webhook()
    try:
        config = AlertConfig.from_raw({"webhook": "${TUNEOPS_TEST_HOOK}"})
        assert Monitor.from_raw({"alerts": {"webhook": "$TUNEOPS_TEST_HOOK"}}).alerts.webhook
        with caplog.at_level(logging.WARNING, logger="tuneops.alerts"):
            unset = send_alert(config, "slo", model="m", summary="s")
            monkeypatch.setenv("TUNEOPS_TEST_HOOK", hook.url + "/services/T0/B0/s3cretpath?token=s3cret")
            sent = send_alert(config, "slo", model="m", summary="s")
    finally:
        hook.close()
    assert not unset[0].ok and "TUNEOPS_TEST_HOOK should hold the URL: it is not set" in unset[0].error
    assert sent[0].ok and hook.kinds() == ["slo"]
    gone = send_alert(config, "slo", model="m", summary="s")  # the hook is closed now
    assert not gone[0].ok and "cannot reach 'http://127.0.0.1:" in gone[0].error
    assert "s3cret" not in gone[0].error and "/..." in gone[0].error
    assert all("s3cret" not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("url", ["https://ann:pw@hooks.example/x", "https://:tok@hooks.example"])
def test_a_webhook_with_a_login_in_it_is_refused_where_it_is_written(url: str) -> None:
    """urllib does not send user:password@ as a login, and the registry masks its copy: such a
    webhook never delivered; both validators say so when the spec is loaded."""
    from tuneops.spec import Monitor

    with pytest.raises(SpecError, match="without user:password@") as refused:
        AlertConfig.from_raw({"webhook": url})
    with pytest.raises(SpecError, match="without user:password@") as loaded:
        Monitor.from_raw({"alerts": {"webhook": url}})
    # the spec's message showed the whole URL, login included
    for message in (str(refused.value), str(loaded.value)):
        assert "received 'https://hooks.example" in message and "pw@" not in message
        assert "tok@" not in message, message


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com:abc/T0/s3cret", "https://[::1/s3cret", "https://h/T0 0/s3cret",
     "https://h:99999/s3cret", "https:///s3cret"],
)
def test_a_malformed_webhook_is_refused_and_never_stops_monitoring(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each passed validation, then crashed `monitor` and `monitor --live` (after their
    decision was recorded or applied) with a traceback printing the secret path."""
    from tuneops.spec import Monitor

    with pytest.raises(SpecError, match="webhook: expected") as refused:
        AlertConfig.from_raw({"webhook": url})
    with pytest.raises(SpecError, match="webhook: expected") as loaded:
        Monitor.from_raw({"alerts": {"webhook": url}})
    # the spec's message printed the secret path (received 'https://h/T0 0/s3cret')
    assert "s3cret" not in str(refused.value) and "s3cret" not in str(loaded.value), loaded.value
    # from the environment, or however it got past the check: a failed delivery, no secret
    monkeypatch.setenv("TUNEOPS_TEST_HOOK", url)
    for config in (AlertConfig.from_raw({"webhook": "${TUNEOPS_TEST_HOOK}"}), AlertConfig(webhook=url)):
        delivered = send_alert(config, "rollback", model="m", summary="s")
        assert len(delivered) == 1 and not delivered[0].ok
        assert "s3cret" not in (delivered[0].error or ""), delivered[0].error


@pytest.mark.parametrize(
    "raw",
    [{"webhook": "ftp://x/s3cret"}, {"webhook": "https://h:1:2/s3cret"}, {"webhook": 5},
     {"command": ""}, {"command": ["a", 1]}, {"command": "notify-send 'unclosed"},
     {"on": ["warn", "slos"]}, {"on": 5}, {"timeout_s": 0}, {"repeat_s": -1},
     {"hook": "http://x"}, ["webhook"]],
)
def test_the_spec_and_the_alerts_module_refuse_alert_settings_in_the_same_words(raw) -> None:
    """One validator (the spec's section) serves both: the spec's messages showed a webhook's
    secret path and named no index in `on`, the module's named no keys of the mapping, and a
    command with an unclosed quote passed the spec and crashed the module (ValueError)."""
    from tuneops.spec import Monitor

    with pytest.raises(SpecError) as module:
        AlertConfig.from_raw(raw)
    with pytest.raises(SpecError) as spec:
        Monitor.from_raw({"alerts": raw})
    assert str(module.value) == str(spec.value) and str(spec.value).startswith("monitor.alerts")
    assert "s3cret" not in str(spec.value)


def test_a_command_string_is_split_as_a_shell_would() -> None:
    assert AlertConfig.from_raw({"command": "notify-send 'model changed'"}).command == (
        "notify-send", "model changed")
    with pytest.raises(SpecError, match=r"monitor\.alerts\.command: expected a command line that "
                       r"splits as a shell would \(No closing quotation\), received \"a 'b\"\. "
                       "Close the quote"):
        AlertConfig.from_raw({"command": "a 'b"})


def test_a_command_that_appends_its_input_keeps_one_alert_per_line(tmp_path: Path) -> None:
    """The guide's `command: [sh, -c, "cat >> alerts.jsonl"]`: each alert arrives as one line,
    so the file is JSON lines (without the newline two alerts ran together on one line)."""
    out = tmp_path / "alerts.jsonl"
    config = AlertConfig.from_raw({"command": ["sh", "-c", f"cat >> '{out}'"]})
    for kind in ("warn", "retune"):
        (delivery,) = send_alert(config, kind, model="m", summary=kind)
        assert delivery.ok, delivery.error
    assert [json.loads(line)["kind"] for line in out.read_text().splitlines()] == ["warn", "retune"]


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_webhook_that_redirects_is_a_failed_delivery_naming_where_to(
    code: int, caplog: pytest.LogCaptureFixture
) -> None:
    """urllib followed a 301/302/303 as a GET without the body, and the page it landed on
    answered 200: the alert was reported delivered and was lost (an http:// webhook that its
    server moves to https:// does this; found by a security review)."""
    import http.server
    import threading

    got: list[str] = []

    class Moved(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            got.append("POST " + self.path)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(code)
            self.send_header("Location", f"/moved/secret-path?token=t0p{code}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            got.append("GET " + self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Moved)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{httpd.server_address[1]}"
    try:
        with caplog.at_level(logging.WARNING, logger="tuneops.alerts"):
            (delivery,) = send_alert(
                AlertConfig.from_raw({"webhook": f"http://{host}/hook"}), "rollback",
                model="m", summary="s",
            )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert got == ["POST /hook"]  # nothing followed
    assert not delivery.ok
    assert f"HTTP {code} from 'http://{host}/...'" in delivery.error
    assert f"redirects to 'http://{host}/...'" in delivery.error
    assert "monitor.alerts.webhook" in delivery.error
    assert f"t0p{code}" not in caplog.text and "secret-path" not in caplog.text


def test_a_command_that_hangs_is_stopped_with_what_it_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On a timeout only the command itself was killed: what it started (a pager script's
    curl) lived on, one more at every alert of monitor --live; and the message was
    subprocess's, which repeats the whole command line (a token passed as an argument)."""
    import os
    import time

    pid_file = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pid_file}; wait"
    with caplog.at_level(logging.WARNING, logger="tuneops.alerts"):
        started = time.monotonic()
        (delivery,) = send_alert(
            AlertConfig.from_raw({"command": ["sh", "-c", script, "--token=s3cr3t"],
                                  "timeout_s": 1}),
            "slo", model="m", summary="s",
        )
    assert time.monotonic() - started < 10
    assert not delivery.ok and "did not finish within 1 s" in delivery.error
    assert "s3cr3t" not in caplog.text
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, 9)
        pytest.fail("the command's child process outlived the timeout")


def test_a_webhook_that_answers_a_byte_at_a_time_is_given_up_on_at_the_timeout() -> None:
    """urllib's timeout bounds each read, not the delivery: a server sending a header line
    every half second held the alert, and monitor --live with it, 20 s on a 2 s timeout."""
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    stop = threading.Event()

    def drip() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(0.5):
                try:
                    conn.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    return

    threading.Thread(target=drip, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    try:
        started = time.monotonic()
        (delivery,) = send_alert(AlertConfig.from_raw({"webhook": url, "timeout_s": 2}), "slo",
                                 model="m", summary="s")
        took = time.monotonic() - started
    finally:
        stop.set()
        server.close()
    assert not delivery.ok and took < 4, (delivery, took)
    assert delivery.error == (f"no answer from 'http://{url.split('/')[2]}/...' within 2 s "
                              "(monitor.alerts.timeout_s)")
