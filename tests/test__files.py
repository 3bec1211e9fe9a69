"""Files written whole or not at all; a refused write names the file and what to do; an output
directory that cannot be created is refused before the work starts."""

from __future__ import annotations

import errno
import os
import stat
import threading
import time

import pytest
import yaml
from conftest import tiny_spec

from tuneops._files import check_output_dir, copy_atomic, is_stream, replacing, write_atomic
from tuneops.errors import UsageError, WriteError
from tuneops.export import MODEL_FILE, save_model


class _FullDisk:
    """Pickling it fails as a full disk fails a write, halfway through the file."""

    def __reduce__(self):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_write_that_fails_leaves_neither_the_file_nor_a_temporary(tmp_path) -> None:
    with pytest.raises(WriteError, match=r"could not write .*model\.joblib.*No space left on "
                       r"device.*free space on that disk") as caught:
        save_model({"weights": [1.0] * 1000, "tail": _FullDisk()}, {"study": "s"}, tmp_path)
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    assert os.listdir(tmp_path) == []


def test_a_failed_write_keeps_the_previous_file(tmp_path) -> None:
    path = tmp_path / "results.json"
    write_atomic(path, b"old")
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        tmp.write_bytes(b"half of the new")
        raise RuntimeError("stopped")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["results.json"]


def test_written_files_are_readable_by_others_as_open_makes_them(tmp_path) -> None:
    mask = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "a.html", b"<html>")
        copied = copy_atomic(path, tmp_path / "b.html")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert copied.read_bytes() == b"<html>" and stat.S_IMODE(copied.stat().st_mode) == 0o644


def test_a_pipe_or_device_given_as_the_file_is_written_into_not_replaced(tmp_path) -> None:
    # `--out /dev/null` renamed a regular file onto /dev/null (as root): a stream is written into
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    time.sleep(0.2)  # the reader has the pipe open
    write_atomic(fifo, b"the base")
    reader.join(timeout=10)
    assert received == [b"the base"] and stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(os.listdir(tmp_path)) == ["pipe"]  # no temporary left beside it
    # a descriptor by name (/dev/stdout is one): written to the descriptor itself
    r, w = os.pipe()
    try:
        write_atomic(f"/dev/fd/{w}", b"to the descriptor")
        assert os.read(r, 100) == b"to the descriptor"
    finally:
        os.close(r)
        os.close(w)
    assert is_stream("/dev/null") and is_stream("/dev/stdout") and is_stream("/dev/stderr")


def test_a_pipe_nobody_reads_is_refused_at_once_and_leaves_nothing(tmp_path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(UsageError, match=r"'.*pipe' is a named pipe that no process reads"):
        write_atomic(fifo, b"x")
    assert time.monotonic() - start < 5 and sorted(os.listdir(tmp_path)) == ["pipe"]


def test_links_devices_and_directories_given_as_the_file(tmp_path) -> None:
    # a link planted in an output directory is replaced; the device it names is not written
    link = tmp_path / "report.html"
    link.symlink_to("/dev/null")
    write_atomic(link, b"<html>")
    assert not link.is_symlink() and link.read_bytes() == b"<html>"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    # a device that is not a stream is refused (checked without writing: never rename onto one)
    with pytest.raises(UsageError, match=r"'/dev/zero' is a device or socket, not a file"):
        is_stream("/dev/zero")
    (tmp_path / "out").mkdir()
    with pytest.raises(UsageError, match=r"'.*out' is a directory; expected the path of a file"):
        write_atomic(tmp_path / "out", b"x")
    (tmp_path / "to-dir").symlink_to(tmp_path / "out")
    with pytest.raises(UsageError, match=r"is a directory"):
        write_atomic(tmp_path / "to-dir", b"x")
    assert sorted(os.listdir(tmp_path)) == ["out", "report.html", "to-dir"]


def test_an_output_directory_under_a_file_is_refused(tmp_path) -> None:
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(
        UsageError, match=r"'.*taken' is a file.*give out_dir \(--out\) a directory"
    ):
        check_output_dir(tmp_path / "taken" / "out")
    check_output_dir(tmp_path / "new" / "deeper")  # creatable: accepted, and nothing created
    assert not (tmp_path / "new").exists()


def test_run_refuses_a_bad_out_before_any_trial_and_writes_no_study(workdir, cli) -> None:
    (workdir / "taken").write_text("a file")
    (workdir / "s.yaml").write_text(yaml.safe_dump(tiny_spec()))
    code, _, err = cli("run", "s.yaml", "--out", "taken/out")
    assert code == 2, err
    assert "is a file" in err and "--out" in err
    assert not (workdir / "tuneops.journal").exists()  # no study begun
    assert not (workdir / "tuneops-out").exists()


def test_a_model_that_cannot_be_saved_says_the_study_is_kept(workdir, cli, monkeypatch) -> None:
    import tuneops.tuning

    def full_disk(model, metadata, out_dir):
        return save_model({"model": model, "tail": _FullDisk()}, metadata, out_dir)

    (workdir / "s.yaml").write_text(yaml.safe_dump(tiny_spec()))
    with monkeypatch.context() as patched:
        patched.setattr(tuneops.tuning, "save_model", full_disk)
        code, _, err = cli("run", "s.yaml", "--out", "out", "--no-report")
    assert code == 1, err
    assert "No space left on device" in err and "Every trial is recorded" in err
    assert not (workdir / "out" / MODEL_FILE).exists()
    code, out, err = cli("run", "s.yaml", "--out", "out", "--no-report")
    assert code == 0, err
    assert "4 finished before" in err + out and (workdir / "out" / MODEL_FILE).exists()


def test_a_results_path_taken_by_a_directory_says_the_study_is_kept(workdir, cli) -> None:
    (workdir / "s.yaml").write_text(yaml.safe_dump(tiny_spec()))
    (workdir / "out" / "results.json").mkdir(parents=True)
    code, _, err = cli("run", "s.yaml", "--out", "out", "--no-report")
    assert code == 2, err
    assert "results.json' is a directory" in err and "Every trial is recorded" in err


@pytest.mark.parametrize("fault", ["full disk", "interrupt"])
def test_a_results_json_not_written_leaves_no_earlier_one_beside_the_new_model(
    workdir, cli, monkeypatch, fault
) -> None:
    import json

    import tuneops.tuning

    (workdir / "s.yaml").write_text(yaml.safe_dump(tiny_spec()))
    code, _, err = cli("run", "s.yaml", "--out", "out", "--no-report")
    assert code == 0, err
    assert (workdir / "out" / "results.json").is_file()
    (workdir / "out" / "report.html").write_text("<html>the earlier run's</html>")

    def refused(path, data):
        if fault == "interrupt":
            raise KeyboardInterrupt  # Ctrl-C or SIGTERM as the results are written
        raise WriteError(f"could not write {str(path)!r} (No space left on device).")

    with monkeypatch.context() as patched:
        patched.setattr(tuneops.tuning, "write_json", refused)
        code, _, err = cli("run", "s.yaml", "--out", "out", "--no-report", "--n-trials", "6")
    assert code == (130 if fault == "interrupt" else 1), err
    if fault == "full disk":
        assert "The earlier results.json and report.html in out were removed" in err
    # this run's model, and no results.json or report of the run before: another selection
    assert (workdir / "out" / MODEL_FILE).is_file()
    assert not (workdir / "out" / "results.json").exists()
    assert not (workdir / "out" / "report.html").exists()
    code, _, err = cli("run", "s.yaml", "--out", "out", "--no-report", "--n-trials", "6")
    assert code == 0, err
    results = json.loads((workdir / "out" / "results.json").read_text())
    model = json.loads((workdir / "out" / "model.json").read_text())
    assert results["selected"]["number"] == model["trial"]


def test_tune_whose_results_cannot_be_written_says_its_trials_are_kept(workdir, monkeypatch):
    import tuneops
    import tuneops.custom

    def objective(trial):
        return trial.suggest_float("x", 0, 1)

    def full_disk(path, data):
        error = WriteError(f"could not write {str(path)!r} (No space left on device).")
        error.errno = errno.ENOSPC
        raise error

    with monkeypatch.context() as patched:
        patched.setattr(tuneops.custom, "write_json", full_disk)
        with pytest.raises(WriteError, match=r"No space left.*Every trial is recorded in the "
                           r"study's storage: tune\(\) again with study='api'") as caught:
            tuneops.tune(objective, n_trials=3, study="api", output_dir="out")
    assert caught.value.errno == errno.ENOSPC
    result = tuneops.tune(objective, n_trials=3, study="api", output_dir="out")
    assert len(result.study.trials) == 3 and result.results_path.is_file()  # none run again
