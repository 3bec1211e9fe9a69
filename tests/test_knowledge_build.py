"""``tuneops kb build`` stopped and resumed: no orphan workers, a checkpoint that survives a
crash mid-append, and a last line that says what was kept."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

from tuneops.errors import UsageError
from tuneops.knowledge.build import build


def _children(pid: int) -> set[int]:
    """The live (not zombie) processes whose parent is ``pid``."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG and /proc are Linux's")
@pytest.mark.parametrize("how", ["SIGTERM to the build's pid", "Ctrl-C to the process group"])
def test_a_stopped_build_leaves_no_worker_and_says_what_the_checkpoint_kept(workdir, how):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    # knn jobs take about a second each; random forests of 40 trials keep both workers busy
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuneops", "kb", "build", "--dataset", "iris", "--dataset",
         "ionosphere", "--family", "knn", "--family", "random_forest", "--n-trials", "40",
         "--cv-folds", "2", "--jobs", "2", "--checkpoint", "ck.jsonl", "--out", "kb.json.gz"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 60
        while _lines(workdir / "ck.jsonl") < 1 and time.time() < deadline:
            time.sleep(0.1)
        workers = _children(proc.pid)
        assert len(workers) == 2, (workers, proc.poll())
        time.sleep(1.0)  # the workers are into their next jobs
        if how.startswith("SIGTERM"):
            os.kill(proc.pid, signal.SIGTERM)  # `kill PID`, `timeout`, a scheduler
        else:
            os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    deadline = time.time() + 10
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.1)
    orphans = [p for p in workers if _alive(p)]
    for pid in orphans:  # not left running after a failure
        os.kill(pid, signal.SIGKILL)
    assert not orphans, "a pool worker outlived the build"
    name, code = ("SIGTERM", 143) if how.startswith("SIGTERM") else ("SIGINT", 130)
    assert proc.returncode == code, err
    kept = _lines(workdir / "ck.jsonl")
    assert f"Stopped by {name}: kb build did not finish and wrote no base to kb.json.gz; "\
           f"{kept} of " \
           "4 jobs kept in ck.jsonl; rerun with the same --checkpoint to resume." in err, err
    # the job studies were in memory: nothing was queued again, and no traceback
    assert "abandoned" not in err and "queued again" not in err and "Traceback" not in err, err
    assert not (workdir / "kb.json.gz").exists()


def test_without_a_checkpoint_a_stopped_build_says_nothing_was_kept(workdir):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuneops", "kb", "build", "--dataset", "iris", "--family",
         "random_forest", "--n-trials", "40", "--cv-folds", "2", "--out", "kb.json.gz"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 30
        while not _children(proc.pid) and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        try:  # what is left of the group, after a failure
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.communicate()
    assert proc.returncode == 143, err
    assert re.search(r"0 of 1 jobs had finished and none was kept; give --checkpoint FILE to "
                     r"keep finished jobs for a rerun\.", err), err


def test_a_checkpoint_whose_last_line_was_cut_off_resumes_with_a_warning(workdir):
    ck = workdir / "ck.jsonl"
    said: list[str] = []
    first = build(["iris"], ["knn"], n_trials=2, cv_folds=2, checkpoint=ck, log=said.append)
    whole = ck.read_bytes()
    assert len(whole.splitlines()) == 1 and whole.endswith(b"\n")
    # killed while appending the next record: half a line, no newline
    ck.write_bytes(whole + whole[:70])
    said.clear()
    again = build(["iris"], ["knn"], n_trials=2, cv_folds=2, checkpoint=ck, max_minutes=0,
                  log=said.append)
    assert [e.to_dict() for e in again.entries] == [e.to_dict() for e in first.entries]
    assert any("last line of the checkpoint" in s and "cut off" in s for s in said), said
    assert "0 jobs to run (1 from the checkpoint)" in said[-1]
    # the torn tail is gone: the next record starts on a line of its own
    assert ck.read_bytes() == whole


def test_a_checkpoint_record_is_appended_on_a_line_of_its_own(workdir):
    ck = workdir / "ck.jsonl"
    ck.write_text(json.dumps({"dataset": "x", "family": "knn", "entries": []}))  # no newline
    build(["iris"], ["knn"], n_trials=2, cv_folds=2, checkpoint=ck, log=lambda _: None)
    records = [json.loads(line) for line in ck.read_text().splitlines()]
    assert [r["dataset"] for r in records] == ["x", "iris"] and ck.read_text().endswith("\n")


def test_a_bad_line_before_the_last_is_refused_with_its_number(workdir):
    ck = workdir / "ck.jsonl"
    record = json.dumps({"dataset": "x", "family": "knn", "entries": []})
    ck.write_text("not json\n" + record + "\n")
    with pytest.raises(UsageError, match=r"ck.jsonl', line 1: expected a JSON record of a kb "
                                         r"build job .* received b'not json'"):
        build(["iris"], ["knn"], checkpoint=ck, max_minutes=0, log=lambda _: None)
