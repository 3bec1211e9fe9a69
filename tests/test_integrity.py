"""Integrity of artifacts and read-only commands (issue 14, part 6).

Model files carry a sha256 that loading verifies before unpickling; the registry refuses to
promote, roll back to or re-tune from a changed artifact, leaving everything unchanged;
reading never creates a storage file; a missing knowledge-base file refuses a run before its
study exists; reports are readable by others (0644 under the usual umask).
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from conftest import tiny_spec
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import tuneops
from tuneops import tuning
from tuneops.errors import IntegrityError, StudyNotFound, UsageError, VersionMismatchWarning
from tuneops.export import library_versions, load_model, save_model, sha256_file
from tuneops.ops.registry import PREFIX, Registry, deploy
from tuneops.ops.retune import retune
from tuneops.report import write_report
from tuneops.storage import get_storage


# -- model files ----------------------------------------------------------------------------------
@pytest.fixture
def saved(workdir: Path) -> Path:
    X, y = load_iris(return_X_y=True)
    return save_model(LogisticRegression(max_iter=500).fit(X, y), {"study": "iris"}, workdir / "m")


def test_model_json_records_the_sha256_of_the_model_bytes(saved: Path) -> None:
    meta = json.loads((saved.parent / "model.json").read_text())
    assert meta["artifact"] == {"file": "model.joblib", "sha256": sha256_file(saved), "bytes": saved.stat().st_size}
    assert meta["versions"]["scikit-learn"] == library_versions()["scikit-learn"]
    model, loaded = tuneops.load_model(saved)
    assert model.predict(load_iris().data[:3]).tolist() == [0, 0, 0]
    assert loaded["study"] == "iris" and loaded["artifact"]["sha256"] == meta["artifact"]["sha256"]
    assert load_model(saved.parent)[1]["study"] == "iris"  # the directory works too


def test_a_save_stopped_midway_keeps_the_earlier_model_whole(saved: Path, monkeypatch) -> None:
    """A kill while model.joblib was written left the new model beside the old model.json, and
    load_model called it tampered (audit). Both files are renamed only when both are written;
    a temporary file a killed save left for over an hour is removed by the next save."""
    import joblib

    from tuneops import export

    before = saved.read_bytes(), (saved.parent / "model.json").read_text()
    X, y = load_iris(return_X_y=True)
    real_dump = joblib.dump

    def dumped_then_stopped(value, target, *args, **kwargs):
        real_dump(value, target, *args, **kwargs)
        raise KeyboardInterrupt  # the model is written, its metadata not yet

    monkeypatch.setattr(joblib, "dump", dumped_then_stopped)
    with pytest.raises(KeyboardInterrupt):
        save_model(LogisticRegression(C=0.01, max_iter=500).fit(X, y), {"study": "iris"}, saved.parent)
    monkeypatch.setattr(joblib, "dump", real_dump)
    assert (saved.read_bytes(), (saved.parent / "model.json").read_text()) == before
    load_model(saved)  # whole and consistent
    assert not list(saved.parent.glob(".*.tmp"))
    stale = saved.parent / ".model.joblib.abc123.tmp"
    stale.write_bytes(b"x" * 100)
    os.utime(stale, (0, 0))  # untouched for decades: a killed save's
    fresh = saved.parent / ".model.joblib.def456.tmp"
    fresh.write_bytes(b"y")  # a save in progress elsewhere: kept
    save_model(LogisticRegression(max_iter=500).fit(X, y), {"study": "iris"}, saved.parent)
    assert not stale.exists() and fresh.exists()
    assert export.STALE_TEMPORARY_S == 3600.0


def test_a_file_replaced_between_the_check_and_the_load_is_not_the_one_loaded(
    saved: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sha256 was computed from one read of the file and the model unpickled from a
    second: a file replaced in between ran its code (found by a security audit)."""
    import tuneops.export as export

    marker = workdir / "code-ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    checked = export.verify_model

    def check_then_replace(*args, **kwargs):
        recorded = checked(*args, **kwargs)
        saved.write_bytes(pickle.dumps(Payload()))  # the race, made certain
        return recorded

    monkeypatch.setattr(export, "verify_model", check_then_replace)
    model, _ = load_model(saved)
    assert not marker.exists()
    assert model.predict(load_iris().data[:3]).tolist() == [0, 0, 0]  # the bytes checked


def test_changed_model_is_refused_with_both_hashes_and_what_to_do(saved: Path) -> None:
    recorded = json.loads((saved.parent / "model.json").read_text())["artifact"]["sha256"]
    saved.write_bytes(saved.read_bytes() + b"\0")
    actual = sha256_file(saved)
    with pytest.raises(IntegrityError) as info:
        load_model(saved)
    message = str(info.value)
    assert str(saved) in message and recorded in message and actual in message
    assert "Restore the original file or export the model again" in message
    assert "verify=False" in message


def test_a_changed_pickle_is_never_unpickled(saved: Path, workdir: Path) -> None:
    """The check runs before unpickling: a replaced file's code does not run."""
    marker = workdir / "code-ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    saved.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(IntegrityError, match="the file changed"):
        load_model(saved)
    assert not marker.exists()
    with pytest.raises(UsageError, match="is not a tuneops model"):  # opted out: unpickled
        load_model(saved, verify=False)
    assert marker.exists()


def test_verify_false_loads_a_replaced_but_valid_model(saved: Path) -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=50).fit(X, y)
    other = save_model(model, {"study": "other"}, saved.parent.parent / "o")
    saved.write_bytes(other.read_bytes())
    with pytest.raises(IntegrityError):
        load_model(saved)
    assert load_model(saved, verify=False)[1]["study"] == "other"


def test_model_without_recorded_hash_cannot_be_verified(saved: Path) -> None:
    (saved.parent / "model.json").unlink()
    with pytest.raises(IntegrityError, match=r"has no recorded sha256.*verify=False"):
        load_model(saved)
    assert load_model(saved, verify=False)[1]["study"] == "iris"


def test_missing_model_file() -> None:
    with pytest.raises(IntegrityError, match=r"'nowhere/model.joblib' does not exist"):
        load_model("nowhere/model.joblib")


def test_other_library_versions_warn(saved: Path) -> None:
    meta_path = saved.parent / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["versions"].update({"scikit-learn": "0.24.2", "python": "3.6.15"})
    meta_path.write_text(json.dumps(meta))
    expected = r"python 3\.6\.15 \(running .*scikit-learn 0\.24\.2"
    with pytest.warns(VersionMismatchWarning, match=expected):
        load_model(saved)
    meta["versions"]["scikit-learn"] = library_versions()["scikit-learn"]
    meta["versions"]["python"] = library_versions()["python"].rsplit(".", 1)[0] + ".999"
    meta_path.write_text(json.dumps(meta))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(saved)  # another bug-fix release of Python keeps pickles: no warning


# -- the registry ---------------------------------------------------------------------------------
@pytest.fixture
def two_versions(workdir: Path) -> Registry:
    """A tiny iris study deployed twice: version 2 is the champion, version 1 before it."""
    tuning.run(tiny_spec(study="iris", n_trials=3))
    deploy("iris", trial=0)
    deploy("iris", trial=1)
    return Registry.open("iris")


def _state(registry: Registry) -> tuple:
    study = optuna.load_study(study_name=PREFIX + registry.name, storage=get_storage(None))
    return dict(study.user_attrs), len(study.trials)


def _study_names() -> set[str]:
    summaries = optuna.get_all_study_summaries(get_storage(None), include_best_trial=False)
    return {s.study_name for s in summaries}


def _tamper(registry: Registry, version: int) -> Path:
    path = Path(registry.version(version)["artifact"]["path"])
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    return path


def test_rollback_to_a_changed_artifact_changes_nothing(two_versions: Registry, cli) -> None:
    path = _tamper(two_versions, 1)
    before = _state(two_versions)
    expected = rf"model 'iris' version 1 fails verification: model '{path}'"
    with pytest.raises(IntegrityError, match=expected):
        two_versions.rollback()
    code, _, err = cli("registry", "rollback", "--to", "1")
    assert code == 2 and "fails verification" in err
    assert _state(two_versions) == before and two_versions.champion() == 2


def test_promote_of_a_changed_artifact_changes_nothing(two_versions: Registry, cli) -> None:
    two_versions.promote(1)
    _tamper(two_versions, 2)
    before = _state(two_versions)
    code, _, err = cli("registry", "promote", "2")
    assert code == 2 and "version 2 fails verification" in err and "the file changed" in err
    assert _state(two_versions) == before and two_versions.champion() == 1


@pytest.mark.parametrize("damage", ["truncated", "model.json truncated"])
def test_a_damaged_champion_is_bad_input_for_every_command_that_loads_it(
    two_versions: Registry, cli, damage: str
) -> None:
    """monitor and verify exited 1 on a champion whose file changed, serve 2; all exit 2 now,
    naming the file, what is wrong and what to do, without a traceback."""
    artifact = Path(two_versions.version(2)["artifact"]["path"])
    if damage == "truncated":  # a copy cut short, a disk that filled up as it was copied
        artifact.write_bytes(artifact.read_bytes()[: artifact.stat().st_size // 2])
        named, wrong = str(artifact), "the file changed (edited, truncated or replaced)"
    else:
        meta = artifact.with_name("model.json")
        meta.write_text(meta.read_text()[:40])
        named, wrong = str(meta), "is not readable JSON"
    before = _state(two_versions)
    pd.DataFrame(load_iris().data[:60], columns=load_iris().feature_names).to_csv(
        "batch.csv", index=False
    )
    for command in (("monitor", "--batch", "batch.csv"), ("verify", "2")):
        code, _, err = cli(*command)
        text = " ".join(err.split())
        assert code == 2, (command, err)
        assert named in text and wrong in text and "export the model again" in text, text
        assert "Traceback" not in err
    assert _state(two_versions) == before


def _damage_record(registry: Registry, version: int, damage) -> None:
    study = optuna.load_study(study_name=PREFIX + registry.name, storage=get_storage(None))
    key = f"tuneops:version:{version}"
    study.set_user_attr(key, damage(dict(study.user_attrs[key])))


@pytest.mark.parametrize("damage, wrong", [
    (lambda r: {**r, "artifact": None}, "'artifact' is None, expected a dict"),
    (lambda r: {**r, "artifact": {"path": r["artifact"]["path"]}}, "its artifact lacks sha256"),
    (lambda r: {k: v for k, v in r.items() if k != "features"}, "it has no 'features'"),
    (lambda r: {**r, "profile": "x"}, "'profile' is 'x', expected a dict"),
    (lambda r: [r["version"]], "expected a mapping of the version's fields, received list"),
])
def test_a_damaged_registry_record_is_named_and_the_others_stay_usable(
    two_versions: Registry, cli, caplog, damage, wrong: str
) -> None:
    """A version record changed in the storage raised KeyError or TypeError tracebacks from
    `registry list`, `registry show` and `monitor` (exit 1)."""
    _damage_record(two_versions, 2, damage)
    pd.DataFrame(load_iris().data[:60], columns=load_iris().feature_names).to_csv(
        "batch.csv", index=False
    )
    damaged = "model 'iris' version 2: its record in the registry (storage 'tuneops.journal'"
    for command in (("monitor", "--batch", "batch.csv"), ("registry", "show", "2")):
        code, _, err = cli(*command)
        text = " ".join(err.split())
        assert code == 2 and "Traceback" not in err, (command, err)
        assert damaged in text and f"is damaged: {wrong}" in text, text
        assert "tuneops registry rollback" in text
    code, out, err = cli("registry", "list")  # the others are listed
    assert code == 0, err
    if "has no" not in wrong:  # a field missing is named where it is read, not by the list
        assert damaged in caplog.text and "left out of the versions" in caplog.text
        assert [v["version"] for v in two_versions.versions()] == [1]
    code, _, err = cli("registry", "rollback")  # the way out the message gives
    assert code == 0, err
    assert two_versions.champion() == 1


@pytest.mark.parametrize("damage, wrong", [
    (lambda c: [c["version"]], "expected a mapping, received list"),
    (lambda c: {**c, "version": "2"}, "its version is '2', expected a version number"),
    (lambda c: {**c, "history": [1, "z"]}, "its history is \"[1, 'z']\", expected version numbers"),
])
def test_a_damaged_champion_record_is_named_and_promote_replaces_it(
    two_versions: Registry, cli, damage, wrong: str
) -> None:
    """A champion record changed in the storage raised AttributeError tracebacks from every
    command that reads the champion (list, monitor, rollback, promote)."""
    study = optuna.load_study(study_name=PREFIX + "iris", storage=get_storage(None))
    study.set_user_attr("tuneops:champion", damage(study.user_attrs["tuneops:champion"]))
    pd.DataFrame(load_iris().data[:60], columns=load_iris().feature_names).to_csv(
        "batch.csv", index=False
    )
    for command in (("registry", "list"), ("monitor", "--batch", "batch.csv"),
                    ("registry", "rollback")):
        code, _, err = cli(*command)
        text = " ".join(err.split())
        assert code == 2 and "Traceback" not in err, (command, err)
        assert "model 'iris': the champion record in the registry" in text, text
        assert f"is damaged: {wrong}" in text and "tuneops registry promote VERSION" in text
    code, _, err = cli("registry", "promote", "1")  # the way out the message gives
    assert code == 0, err
    assert two_versions.champion() == 1 and two_versions.champion_history() == []


@pytest.mark.parametrize("damaged", ["x", {}, {"kind": "verify"}])
def test_a_damaged_registry_event_is_left_out_with_a_warning(
    two_versions: Registry, cli, caplog, damaged
) -> None:
    """An event changed in the storage raised TypeError/KeyError tracebacks from `registry
    show` and `monitor`, which read the event log."""
    study = optuna.load_study(study_name=PREFIX + "iris", storage=get_storage(None))
    key = sorted(k for k in study.user_attrs if k.startswith("tuneops:event:"))[-1]
    events = len(two_versions.events())
    study.set_user_attr(key, damaged)
    pd.DataFrame(load_iris().data[:60], columns=load_iris().feature_names).to_csv(
        "batch.csv", index=False
    )
    for command in (("registry", "show", "2"), ("monitor", "--batch", "batch.csv")):
        code, _, err = cli(*command)
        assert code == 0 and "Traceback" not in err, (command, err)
    named = f"model 'iris': event {key.removeprefix('tuneops:event:')} in the registry"
    assert named in caplog.text and "left out of the events" in caplog.text
    assert len(two_versions.events()) == events  # one left out, the monitor's own recorded


def test_missing_artifact_is_refused_before_rollback(two_versions: Registry) -> None:
    Path(two_versions.version(1)["artifact"]["path"]).unlink()
    before = _state(two_versions)
    with pytest.raises(UsageError, match="does not exist on this machine"):
        two_versions.rollback()
    assert _state(two_versions) == before


def test_retune_verifies_the_champion_before_tuning(two_versions: Registry) -> None:
    _tamper(two_versions, 2)
    before = _state(two_versions)
    studies = _study_names()
    iris = load_iris(as_frame=True).frame
    with pytest.raises(IntegrityError, match="version 2 fails verification"):
        retune(two_versions, iris, n_trials=2)
    assert _study_names() == studies  # no re-tuning study was created
    assert _state(two_versions) == before  # no version reserved, no challenger, no event
    assert not any("retune" in str(p) for p in Path("tuneops-out").rglob("*"))


def test_a_registry_artifact_replaced_after_its_check_is_not_the_one_loaded(
    two_versions: Registry, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registry.load_model (what serve, monitor, verify and retune load through) hashed the
    file, then unpickled it from a second read: a file replaced in between ran its code
    (found by a security review; load_model itself had been fixed)."""
    import tuneops.export as export
    import tuneops.ops.registry as registry_module

    marker = workdir / "code-ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = Path(two_versions.version(1)["artifact"]["path"])
    for module in (export, registry_module):
        checked = module.verify_model

        def check_then_replace(*args, _checked=checked, **kwargs):
            recorded = _checked(*args, **kwargs)
            path.write_bytes(pickle.dumps(Payload()))  # the race, made certain
            return recorded

        monkeypatch.setattr(module, "verify_model", check_then_replace)
    model, _ = two_versions.load_model(1)
    assert not marker.exists()
    assert len(model.predict(load_iris(as_frame=True).data[:3])) == 3  # the bytes checked
    with pytest.raises(IntegrityError, match="version 1 fails verification"):
        two_versions.load_model(1)  # the file now on disk is refused, not run
    assert not marker.exists()


def test_registered_sha256_is_the_one_in_model_json(two_versions: Registry) -> None:
    record = two_versions.version(2)
    meta = json.loads((Path(record["artifact"]["path"]).parent / "model.json").read_text())
    assert record["artifact"]["sha256"] == meta["artifact"]["sha256"]


def test_registry_refuses_a_model_json_changed_to_match(two_versions: Registry) -> None:
    """The registry's own record is checked too: rewriting model.json to the new hash fails."""
    path = Path(two_versions.version(1)["artifact"]["path"])
    valid = Path(two_versions.version(2)["artifact"]["path"]).read_bytes()
    path.write_bytes(valid)  # another valid model
    meta_path = path.parent / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["artifact"]["sha256"] = sha256_file(path)
    meta_path.write_text(json.dumps(meta))
    load_model(path)  # consistent on its own
    with pytest.raises(IntegrityError, match="version 1 fails verification"):
        two_versions.load_model(1)


# -- read-only commands create nothing ----------------------------------------------------------
@pytest.mark.parametrize("args, code", [
    (("kb", "list"), 0),
    (("kb", "list", "--storage", "sqlite:///kb.db"), 0),
    (("registry", "list"), 0),
    (("registry", "show"), 2),
    (("show", "nothing"), 2),
    (("show", "nothing", "--storage", "sqlite:///store.db"), 2),
    (("report", "nothing"), 2),
    (("select", "nothing"), 2),
    (("export", "nothing"), 2),
    (("deploy", "nothing"), 2),
    (("monitor", "--batch", "b.csv"), 2),
])
def test_read_only_commands_create_no_file(
    workdir: Path, cli, args: tuple[str, ...], code: int
) -> None:
    pd.DataFrame({"a": [1.0]}).to_csv("b.csv", index=False)
    got, out, err = cli(*args)
    err = " ".join(err.split())  # the console wraps long lines
    assert got == code, (out, err)
    assert sorted(p.name for p in workdir.iterdir()) == ["b.csv"]
    if args[0] == "show":
        assert "does not exist" in err and "holds no study" in err


def test_missing_storage_file_is_study_not_found(workdir: Path) -> None:
    with pytest.raises(StudyNotFound, match=r"storage 'tuneops.journal' does not exist"):
        tuneops.load_study("x")
    assert list(workdir.iterdir()) == []


# -- a missing knowledge base refuses the run before the study exists ---------------------------
def test_missing_knowledge_base_file_refuses_before_the_study(workdir: Path, cli) -> None:
    spec = tiny_spec(warm_start={"auto": {"sources": ["shipped", "no-such-kb.json"]}})
    Path("spec.yaml").write_text(yaml.safe_dump(spec))
    code, _, err = cli("run", "spec.yaml")
    err = " ".join(err.split())  # the console wraps long lines
    assert code == 2
    assert "warm_start.auto.sources[1]: knowledge base 'no-such-kb.json' does not exist" in err
    assert sorted(p.name for p in workdir.iterdir()) == ["spec.yaml"]  # no journal, no outputs


# -- reports ------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_report_mode_follows_the_umask(workdir: Path, umask: int, mode: int) -> None:
    study = optuna.create_study(study_name="r", storage=get_storage(":memory:"))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    previous = os.umask(umask)
    try:
        (path,) = write_report(study, workdir / "report.html")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode
