"""Claims (tuneops.claims): of the processes that claim a piece of work at the same moment,
exactly one holds it, on every storage (journal file, SQLite, PostgreSQL, Redis: real servers
on loopback from tests/servers.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.study import StudyDirection
from servers import STORAGE_KINDS, postgres_server, redis_server, storage_url_for  # noqa: F401 - fixtures

from tuneops import _study
from tuneops.claims import CLAIM_ATTR, Claim, claim_study_name
from tuneops.errors import StudyNotFound
from tuneops.storage import get_storage

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=STORAGE_KINDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return storage_url_for(request.param, request, tmp_path, empty=True)


def _gone_pid() -> int:
    """The pid of a process of this host that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def _claim_names(url: str) -> list[str]:
    return sorted(s.study_name for s in get_storage(url).get_all_studies()
                  if s.study_name.startswith(_study.CLAIM_PREFIX))


def _race(url: str, work: str, n: int) -> list[tuple[Claim, dict | None]]:
    """``n`` threads, each with its own storage object (as separate processes have), claim
    ``work`` at the same moment; every claim and what its acquire() answered."""
    claims = [Claim(get_storage(url), work, {"id": f"thread {i}", "host": socket.gethostname(),
                                             "pid": os.getpid()}) for i in range(n)]
    answers: list[dict | None] = [{}] * n
    start = threading.Barrier(n)

    def claim(i: int) -> None:
        start.wait()
        answers[i] = claims[i].acquire()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return list(zip(claims, answers, strict=True))


def test_of_claims_at_the_same_moment_exactly_one_wins(storage_url: str) -> None:
    """Four claimants at once, 12 times (last writer wins on an attribute let two win)."""
    for round_ in range(12):
        outcome = _race(storage_url, f"work-{round_}", 4)
        winners = [c for c, answer in outcome if answer is None]
        assert len(winners) == 1, [answer for _, answer in outcome]
        (winner,) = winners
        assert winner.check() is None and winner.generation == 1
        # every other one was told who holds it
        assert {a["run"] for c, a in outcome if a is not None} == {winner.record["run"]}
        assert all(c.check() == winner.record for c, a in outcome if a is not None)
        winner.release()
        assert _claim_names(storage_url) == []


def test_a_dead_holder_is_taken_over_by_exactly_one(storage_url: str) -> None:
    """The holder's process is gone: of four claimants at once, one takes generation 2 and
    deletes generation 1; the others see it alive and give way."""
    dead = {"id": "gone", "host": socket.gethostname(), "pid": _gone_pid(), "since": 1.0}
    for round_ in range(6):
        work = f"work-{round_}"
        assert Claim(get_storage(storage_url), work, dead).acquire() is None
        outcome = _race(storage_url, work, 4)
        winners = [c for c, answer in outcome if answer is None]
        assert len(winners) == 1, [answer for _, answer in outcome]
        assert winners[0].generation == 2
        assert _claim_names(storage_url) == [claim_study_name(work, 2)]
        winners[0].release()
    assert _claim_names(storage_url) == []


def test_a_silent_holder_taken_over_finds_out_and_leaves_the_new_claim(tmp_path: Path) -> None:
    """A holder on another machine silent past the grace period is taken over; its check()
    names the new holder and its release() deletes nothing of the new claim."""
    url = str(tmp_path / "claims.journal")
    silent = Claim(get_storage(url), "w", {"id": "far:1", "host": "far", "pid": 1})
    assert silent.acquire() is None
    silent.record["seen"] = silent.record["since"] = time.time() - 3600  # its last heartbeat
    silent.update()
    taker = Claim(get_storage(url), "w", {"id": "near:2", "host": "near", "pid": 2})
    assert taker.acquire() is None and taker.generation == 2
    assert silent.check()["id"] == "near:2"
    silent.release()
    assert _claim_names(url) == [claim_study_name("w", 2)] and taker.check() is None
    # a live holder elsewhere (recent heartbeat) is left alone
    third = Claim(get_storage(url), "w", {"id": "third:3", "host": "third", "pid": 3})
    assert third.acquire()["id"] == "near:2" and third.generation is None


def test_a_claim_whose_creator_died_before_recording_itself_is_taken_over(tmp_path: Path) -> None:
    url = str(tmp_path / "claims.journal")
    storage = get_storage(url)
    storage.create_new_study([StudyDirection.MINIMIZE], claim_study_name("w", 1))  # no record: died
    started = time.monotonic()
    claim = Claim(get_storage(url), "w", {"id": "me"}, unrecorded_s=0.5)
    assert claim.acquire() is None and claim.generation == 2
    assert time.monotonic() - started >= 0.5  # waited for the record that never came
    recorded = [s for s in storage.get_all_studies() if s.study_name == claim_study_name("w", 2)]
    assert recorded[0].user_attrs[CLAIM_ATTR]["id"] == "me"


def test_each_generation_without_a_record_gets_its_own_wait(tmp_path: Path) -> None:
    """Generation 1 never recorded (its creator died); generation 2 appears while the claimant
    waits and is recorded 1 s later: the wait restarts for it, and its live holder keeps it
    (one wait for both took generation 2 over before its creator had written its record)."""
    url = str(tmp_path / "claims.journal")
    storage = get_storage(url)
    storage.create_new_study([StudyDirection.MINIMIZE], claim_study_name("w", 1))

    def second_creator() -> None:
        time.sleep(1.5)
        study_id = storage.create_new_study([StudyDirection.MINIMIZE], claim_study_name("w", 2))
        time.sleep(1.0)
        record = {"run": "other", "id": "other", "host": socket.gethostname(), "pid": os.getpid(),
                  "since": time.time(), "seen": time.time()}
        storage.set_study_user_attr(study_id, CLAIM_ATTR, record)

    thread = threading.Thread(target=second_creator)
    thread.start()
    held = Claim(get_storage(url), "w", {"id": "me"}, unrecorded_s=2.0).acquire()
    thread.join()
    assert held is not None and held["id"] == "other"
    assert _claim_names(url) == [claim_study_name("w", 1), claim_study_name("w", 2)]


def test_a_stop_between_the_two_writes_leaves_no_claim(tmp_path: Path, monkeypatch) -> None:
    url = str(tmp_path / "claims.journal")
    claim = Claim(get_storage(url), "w", {"id": "me"})

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(claim.storage, "set_study_user_attr", stopped)
    with pytest.raises(KeyboardInterrupt):
        claim.acquire()
    assert _claim_names(url) == []


def test_the_heartbeat_refreshes_the_record_and_the_end_releases(tmp_path: Path) -> None:
    url = str(tmp_path / "claims.journal")
    claim = Claim(get_storage(url), "w", {"id": "me"})
    assert claim.acquire() is None
    first = claim.record["seen"]
    with claim.beating(interval_s=0.05):
        time.sleep(0.3)
        (study,) = [s for s in get_storage(url).get_all_studies() if s.study_name.endswith("w.1")]
        assert study.user_attrs[CLAIM_ATTR]["seen"] > first
    assert _claim_names(url) == []


def test_claim_studies_are_not_listed_as_studies(tmp_path: Path) -> None:
    url = str(tmp_path / "claims.journal")
    optuna.create_study(study_name="tuned", storage=get_storage(url))
    assert Claim(get_storage(url), "tuned.retune-0", {"id": "me"}).acquire() is None
    with pytest.raises(StudyNotFound, match=r"studies there: tuned\. "):
        _study.load_study("nope", url)


_CLAIMANT = """
import os, sys, time
from pathlib import Path
from tuneops.claims import Claim
from tuneops.storage import get_storage
url, me, rounds, sync = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
storage = get_storage(url)
(sync / me).touch()
while len(list(sync.iterdir())) < 2:
    time.sleep(0.01)
t0 = max(p.stat().st_mtime for p in sync.iterdir()) + 0.5  # the same instant for both
for r in range(rounds):
    time.sleep(max(0.0, t0 + 0.3 * r - time.time()))
    held = Claim(storage, f"work-{r}", {"id": me, "host": "h", "pid": os.getpid()}).acquire()
    print(r, "won" if held is None else "lost", flush=True)
"""


def test_two_processes_claiming_at_the_same_moment_one_wins_each_time(tmp_path: Path) -> None:
    """Two real processes on one journal file start each of 15 claims at the same instant."""
    url, sync = str(tmp_path / "claims.journal"), tmp_path / "sync"
    sync.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIMANT, url, name, "15", str(sync)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for name in ("a", "b")]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    results = [dict(line.split() for line in out.splitlines()) for out, _ in outputs]
    for r in range(15):
        assert sorted(res[str(r)] for res in results) == ["lost", "won"], (r, results)
