"""`tuneops dashboard`: optuna-dashboard on the study's storage, on loopback, saying where."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest
from conftest import ROOT
from report_studies import build

from tuneops.errors import StudyNotFound, UsageError
from tuneops.report.dashboard import start_dashboard
from tuneops.storage import get_storage


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (loopback only)
        return response.status, response.read().decode("utf-8", "replace")


@pytest.fixture
def journal(tmp_path):
    url = str(tmp_path / "studies.journal")
    build(12, name="dash", storage=get_storage(url))
    return url


def test_dashboard_serves_the_study_on_loopback(journal):
    board = start_dashboard(journal, study="dash", port=0)
    thread = threading.Thread(target=board.serve_forever, daemon=True)
    thread.start()
    try:
        assert board.host == "127.0.0.1" and board.server.server_address[0] == "127.0.0.1"
        assert board.url == f"http://127.0.0.1:{board.port}/dashboard/studies/0"
        status, page = fetch(board.url)
        assert status == 200 and "<html" in page.lower()
        status, body = fetch(f"http://127.0.0.1:{board.port}/api/studies")
        studies = json.loads(body)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["dash"]
    finally:
        board.shutdown()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_dashboard_refuses_unknown_study_and_busy_port(journal):
    with pytest.raises(StudyNotFound, match="no study 'nope'.*dash"):
        start_dashboard(journal, study="nope", port=0)
    first = start_dashboard(journal, port=0)
    try:
        with pytest.raises(
            UsageError, match=rf"port \(--port\): cannot listen on 127.0.0.1:{first.port}"
        ):
            start_dashboard(journal, port=first.port)
    finally:
        first.server.server_close()
    # an address not on this machine is the host's fault, not the port's
    with pytest.raises(
        UsageError, match=r"host \(--host\): cannot listen on '192\.0\.2\.1'.*address of this"
    ):
        start_dashboard(journal, host="192.0.2.1", port=0)


def test_dashboard_command_prints_where_it_listens(journal):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with subprocess.Popen(
        [sys.executable, "-m", "tuneops", "dashboard", "dash", "--storage", journal, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as proc:
        try:
            line = proc.stdout.readline()
            assert line.startswith("optuna-dashboard listening on http://127.0.0.1:"), (
                line,
                proc.poll(),
            )
            url = line.split(" on ", 1)[1].split()[0]
            assert url.endswith("/dashboard/studies/0")
            status, page = fetch(url)
            assert status == 200 and "<html" in page.lower()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _request(url: str, method: str = "GET", host: str | None = None) -> int:
    request = urllib.request.Request(url, method=method, data=b"{}" if method != "GET" else None,
                                     headers={"Content-Type": "application/json"})
    if host is not None:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("allow_writes", [False, True])
def test_the_dashboard_is_read_only_and_answers_only_loopback_names(journal, allow_writes):
    """optuna-dashboard's API deletes studies (the model registry is one) and has no login:
    any local user, or a web page whose name was rebound to 127.0.0.1, could delete them."""
    board = start_dashboard(journal, port=0, allow_writes=allow_writes)
    thread = threading.Thread(target=board.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{board.port}"
    try:
        assert _request(f"{base}/api/studies", host=f"evil.example:{board.port}") == 421
        assert _request(f"{base}/api/studies", host="127.0.0.1.evil.example") == 421
        assert _request(f"{base}/api/studies", host="127.evil.example") == 421
        assert _request(f"{base}/api/studies/0", "DELETE", host=f"evil.example:{board.port}") == 421
        assert _request(f"{base}/api/studies", host=f"localhost:{board.port}") == 200
        deleted = _request(f"{base}/api/studies/0", "DELETE")
    finally:
        board.shutdown()
        thread.join(timeout=10)
    names = [s.study_name for s in get_storage(journal).get_all_studies()]
    if allow_writes:
        assert deleted == 204 and names == []
    else:
        assert deleted == 403 and names == ["dash"]


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_the_dashboard_listens_on_ipv6_loopback(journal, host):
    """`--host ::1` failed: wsgiref's server is IPv4 only (address family AF_INET)."""
    board = start_dashboard(journal, study="dash", host=host, port=0)
    thread = threading.Thread(target=board.serve_forever, daemon=True)
    thread.start()
    base = f"http://[::1]:{board.port}"
    try:
        assert board.url == f"{base}/dashboard/studies/0"
        status, page = fetch(board.url)  # Host: [::1]:PORT, a loopback name
        assert status == 200 and "<html" in page.lower()
        assert _request(f"{base}/api/studies", host=f"evil.example:{board.port}") == 421
        assert _request(f"{base}/api/studies", host=f"localhost:{board.port}") == 200
        assert _request(f"{base}/api/studies/0", "DELETE") == 403  # still read-only
    finally:
        board.shutdown()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_an_ipv6_host_gets_an_ipv6_server() -> None:
    """The choice the test above exercises, checked where a machine has no IPv6 loopback."""
    import socket

    from tuneops.report.dashboard import _server_class

    assert _server_class("::1").address_family == socket.AF_INET6
    assert _server_class("fe80::1%eth0").address_family == socket.AF_INET6
    assert _server_class("127.0.0.1").address_family == socket.AF_INET
    assert _server_class("localhost").address_family == socket.AF_INET


def test_a_server_url_brackets_an_ipv6_address_once() -> None:
    from tuneops._hosts import url

    # serve's start_server bracketed ::1 and then bracketed it again: http://[[::1]]:8000
    assert url("::1", 8000) == url("[::1]", 8000) == "http://[::1]:8000"
    assert url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert url("localhost", 80) == "http://localhost:80"
