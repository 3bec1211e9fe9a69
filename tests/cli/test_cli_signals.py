"""Every command stopped by Ctrl-C or SIGTERM: its ``finally`` blocks run, one line says what
stopped it and what that left, and the exit code is 130 or 143."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

# A command that takes its time and cleans up after itself, in place of `tuneops families`
# (the command table resolves the function when the command runs).
_SLOW_COMMAND = """
import sys, time
import tuneops.cli.catalog as catalog
from tuneops.cli import main

def families() -> None:
    try:
        open("started", "w").close()
        time.sleep(60)
    finally:
        open("finally-ran", "w").close()

catalog.families = families
sys.exit(main(["families"]))
"""


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_command_runs_its_finally_says_so_and_exits_128_plus_the_signal(
    tmp_path: Path, signum: int, code: int
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_COMMAND], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    try:
        deadline = time.time() + 30
        while not (tmp_path / "started").exists() and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err
    assert (tmp_path / "finally-ran").exists(), "the command's finally did not run"
    name = signal.Signals(signum).name
    assert err.strip() == (
        f"Stopped by {name}: tuneops families did not finish; no file it was writing is left "
        "half-written (tuneops writes each under a temporary name and renames it when whole), "
        "and what it had already stored is kept."
    ), err


def test_main_puts_the_sigterm_handler_back(cli) -> None:
    before = signal.getsignal(signal.SIGTERM)
    code, _, _ = cli("metrics")
    assert code == 0 and signal.getsignal(signal.SIGTERM) is before


def test_a_process_forked_by_a_command_dies_of_sigterm_as_before(tmp_path: Path) -> None:
    """Local workers and kb build's pool set their own handlers; until then SIGTERM kills them
    (trapped, it raised in multiprocessing's loop and printed a traceback)."""
    script = """
import os, signal, sys, time
import tuneops.cli.catalog as catalog
from tuneops.cli import main

def families() -> None:
    ready, go = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(go, b"x")
        time.sleep(30)
        os._exit(0)
    os.read(ready, 1)  # the child runs Python code
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    print(os.WTERMSIG(status) if os.WIFSIGNALED(status) else -1)

catalog.families = families
sys.exit(main(["families"]))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=60,
    )
    assert out.returncode == 0 and out.stdout.strip() == str(int(signal.SIGTERM)), out
