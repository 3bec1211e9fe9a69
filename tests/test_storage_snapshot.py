"""Journal snapshots (tuneops.storage): the state they restore is the replay's, and a snapshot
that does not match the journal as it is now is never used."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import ROOT
from optuna.storages.journal import JournalFileBackend, JournalStorage

import tuneops
from tuneops import _optuna, _study, storage


def two_objectives(trial: optuna.Trial) -> tuple[float, float]:
    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_float("y", 0.0, 1.0)
    return x, 1.0 - x + 0.01 * y


def _run(path: Path, n_trials: int, study: str = "snap") -> None:
    tuneops.tune(
        two_objectives,
        objectives=["f1", "f2"],
        directions=["minimize", "minimize"],
        n_trials=n_trials,
        sampler="random",
        storage=str(path),
        study=study,
        output_dir=str(path.parent / "out"),
    )


def _replayed(path: Path) -> JournalStorage:
    """The journal read by plain Optuna, from its first entry: the reference."""
    return JournalStorage(JournalFileBackend(str(path)))


def _state(st: optuna.storages.BaseStorage) -> list[Any]:
    """Everything a reader can see in a storage: studies, their attributes, every trial."""
    out: list[Any] = []
    for summary in st.get_all_studies():
        sid = st.get_study_id_from_name(summary.study_name)
        out.append(
            (
                summary.study_name,
                st.get_study_directions(sid),
                st.get_study_user_attrs(sid),
                st.get_study_system_attrs(sid),
                [vars(t) for t in st.get_all_trials(sid, deepcopy=False)],
            )
        )
    return out


def _restored(st: optuna.storages.BaseStorage) -> int:
    backend = _optuna.journal_backend(st)
    assert isinstance(backend, storage.SnapshotJournalFile)
    return backend.restored


def test_a_run_leaves_a_snapshot_that_restores_the_replayed_state(workdir: Path) -> None:
    path = workdir / "s.journal"
    _run(path, 40)
    snap = storage.snapshot_path(path)
    assert snap.exists()
    assert snap.stat().st_mode & 0o777 == 0o600  # a pickle: this user's alone
    opened = storage.get_storage(str(path))
    reference = _replayed(path)
    # restored whole but for what the run wrote after its last trial, before the results (saved
    # first, for memory): the selection and the results' record, two study attributes replayed
    assert _optuna.journal_entries(reference) - _restored(opened) == 2
    assert _state(opened) == _state(reference)


def test_a_snapshot_temporary_a_killed_save_left_is_removed_by_a_later_save(
    workdir: Path,
) -> None:
    """A save killed while it wrote left FILE.snapshot.<pid>.tmp, as large as the snapshot,
    that no later save (under another pid) ever removed."""
    import os
    import time

    path = workdir / "s.journal"
    snap = storage.snapshot_path(path)
    stale, fresh = Path(f"{snap}.99999991.tmp"), Path(f"{snap}.99999992.tmp")
    for leftover in (stale, fresh):
        leftover.write_bytes(b"half a pickle")
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    _run(path, 3)  # ends with a save
    assert snap.exists() and not stale.exists()
    assert fresh.exists()  # maybe another process's save under way: left alone


def test_a_study_grown_after_the_snapshot_replays_only_the_new_entries(workdir: Path) -> None:
    """Another worker (plain Optuna here, which saves no snapshot) adds trials after the run:
    the reader restores the snapshot and replays the rest; it sees every trial."""
    path = workdir / "s.journal"
    _run(path, 20)
    at_snapshot = _restored(storage.get_storage(str(path)))
    other = optuna.load_study(study_name="snap", storage=_replayed(path))
    other.optimize(two_objectives, n_trials=7)
    opened = storage.get_storage(str(path))
    assert _restored(opened) == at_snapshot
    assert _optuna.journal_entries(opened) > at_snapshot
    assert len(opened.get_all_trials(0)) == 27
    assert _state(opened) == _state(_replayed(path))
    # A resumed run writes on top of the restored state and leaves a new snapshot.
    _run(path, 30)
    opened = storage.get_storage(str(path))
    assert len(opened.get_all_trials(0)) == 30
    assert _state(opened) == _state(_replayed(path))


def _rewrite_header(snap: Path, **changes: Any) -> None:
    magic, header, payload = snap.read_bytes().split(b"\n", 2)
    snap.write_bytes(magic + b"\n" + json.dumps({**json.loads(header), **changes}).encode()
                     + b"\n" + payload)


def _another_journal(path: Path) -> None:
    """The journal replaced by another study's journal, at least as long as the first."""
    snap = storage.snapshot_path(path).read_bytes()
    path.unlink()
    _run(path, 40, study="other")
    storage.snapshot_path(path).write_bytes(snap)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:2000].rsplit(b"\n", 1)[0] + b"\n")


def _damaged(path: Path) -> None:
    snap = storage.snapshot_path(path)
    data = bytearray(snap.read_bytes())
    data[-10] ^= 0xFF
    snap.write_bytes(bytes(data))


def _other_optuna(path: Path) -> None:
    _rewrite_header(storage.snapshot_path(path), optuna="4.0.0")


def _other_format(path: Path) -> None:
    _rewrite_header(storage.snapshot_path(path), format=999)


def _writable_by_others(path: Path) -> None:
    os.chmod(storage.snapshot_path(path), 0o622)


def _not_a_snapshot(path: Path) -> None:
    storage.snapshot_path(path).write_bytes(b"hello\n")


@pytest.mark.parametrize(
    "tamper",
    [_another_journal, _truncated, _damaged, _other_optuna, _other_format, _writable_by_others,
     _not_a_snapshot],
)
def test_a_stale_or_foreign_snapshot_is_never_used(workdir: Path, tamper: Any) -> None:
    path = workdir / "s.journal"
    _run(path, 30)
    tamper(path)
    opened = storage.get_storage(str(path))
    assert _restored(opened) == 0  # replayed from the first entry
    assert _state(opened) == _state(_replayed(path))


def test_a_snapshot_of_another_user_is_not_used(workdir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = workdir / "s.journal"
    _run(path, 10)
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)
    assert _restored(storage.get_storage(str(path))) == 0


def test_a_reader_saves_a_snapshot_only_after_a_long_replay(workdir: Path) -> None:
    path = workdir / "s.journal"
    _run(path, 30)
    snap = storage.snapshot_path(path)
    snap.unlink()
    opened = storage.get_storage(str(path))
    entries = _optuna.journal_entries(opened)
    assert entries < 1000
    # a short replay does not pay for a snapshot
    assert storage.refresh_snapshot(opened) is False and not snap.exists()
    # a replay of at least min_entries (and a tenth of the journal) does
    assert storage.refresh_snapshot(opened, min_entries=entries) is True and snap.exists()
    assert _restored(storage.get_storage(str(path))) == entries
    assert storage.refresh_snapshot(storage.get_storage(str(path)), min_entries=1) is False


def test_load_study_saves_the_snapshot_a_long_replay_earned(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = workdir / "s.journal"
    _run(path, 10)
    storage.snapshot_path(path).unlink()
    real = storage.refresh_snapshot
    monkeypatch.setattr(storage, "refresh_snapshot", lambda st: real(st, min_entries=1))
    _study.load_study("snap", str(path))
    assert storage.snapshot_path(path).exists()


def test_other_storages_have_no_snapshot(workdir: Path) -> None:
    assert storage.save_snapshot(storage.get_storage(":memory:")) is None
    sqlite = storage.get_storage("sqlite:///s.db")
    assert storage.save_snapshot(sqlite) is None and not storage.refresh_snapshot(sqlite)
    assert sorted(p.name for p in workdir.iterdir()) == ["s.db"]


def test_an_unwritable_snapshot_is_not_an_error(workdir: Path) -> None:
    path = workdir / "s.journal"
    _run(path, 5)
    snap = storage.snapshot_path(path)
    snap.unlink()
    snap.mkdir()  # os.replace onto a directory fails
    assert storage.save_snapshot(storage.get_storage(str(path))) is None
    assert [p.name for p in workdir.iterdir() if p.name.endswith(".tmp")] == []


def _show(workdir: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "tuneops", *args, "--storage", "s.journal"],
        capture_output=True, text=True, env=env, cwd=workdir,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_show_from_a_snapshot_prints_what_a_replay_prints(workdir: Path) -> None:
    path = workdir / "s.journal"
    _run(path, 40)
    other = optuna.load_study(study_name="snap", storage=_replayed(path))
    other.optimize(two_objectives, n_trials=5)  # grown after the snapshot
    outputs = {}
    for how in ("snapshot", "replay"):
        if how == "replay":
            storage.snapshot_path(path).unlink()
        outputs[how] = [_show(workdir, "show", "snap"), _show(workdir, "show", "snap", "--json")]
    assert outputs["snapshot"] == outputs["replay"]
    assert json.loads(outputs["replay"][1])["n_trials"] == {"complete": 45}


def test_a_journal_opened_for_reading_does_not_import_sqlalchemy(workdir: Path) -> None:
    path = workdir / "s.journal"
    _run(path, 3)
    probe = (
        "import sys\n"
        "from tuneops import _study\n"
        f"_study.load_study('snap', {str(path)!r})\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "False", done.stderr


def test_a_copied_journal_and_snapshot_still_match(workdir: Path) -> None:
    """The snapshot names no path: a journal moved with its snapshot keeps using it."""
    path = workdir / "s.journal"
    _run(path, 10)
    (workdir / "moved").mkdir()
    moved = workdir / "moved" / "s.journal"
    shutil.copy(path, moved)
    shutil.copy(storage.snapshot_path(path), storage.snapshot_path(moved))
    opened = storage.get_storage(str(moved))
    assert _restored(opened) > 0
    assert _state(opened) == _state(_replayed(moved))


def test_a_state_pickled_in_many_parts_restores_whole_and_in_order(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trials are pickled in parts (a bounded memo: memory at the end of a run)."""
    monkeypatch.setattr(_optuna, "STATE_PART", 7)
    path = workdir / "s.journal"
    _run(path, 40)
    opened = storage.get_storage(str(path))
    assert _restored(opened) > 0
    assert [t.number for t in opened.get_all_trials(0)] == list(range(40))
    assert _state(opened) == _state(_replayed(path))


@pytest.mark.parametrize(
    "payload",
    [b"garbage", b"ctuneops._optuna\nno_such_function\n."],
    ids=["not a pickle", "a name this tuneops lacks"],
)
def test_a_snapshot_that_passes_its_checks_but_does_not_load_is_replaced_by_the_replay(
    workdir: Path, payload: bytes
) -> None:
    """As if written by a tuneops whose pickled names differ: the journal is replayed, and the
    backend says nothing was restored (so a reader saves a new snapshot)."""
    path = workdir / "s.journal"
    _run(path, 10)
    snap = storage.snapshot_path(path)
    magic, header, _ = snap.read_bytes().split(b"\n", 2)
    fields = {**json.loads(header), "payload_sha256": hashlib.sha256(payload).hexdigest()}
    snap.write_bytes(magic + b"\n" + json.dumps(fields).encode() + b"\n" + payload)
    opened = storage.get_storage(str(path))
    assert _restored(opened) == 0
    assert _state(opened) == _state(_replayed(path))
