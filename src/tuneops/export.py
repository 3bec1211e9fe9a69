"""The model artifact: the selected configuration refitted on all data, with its metadata.

``model.joblib`` holds ``{"model": fitted_pipeline, "metadata": {...}}``; ``model.json`` holds
the same metadata for people and tools that do not unpickle, plus ``artifact``: the file name
and the sha256 of ``model.joblib``'s bytes. :func:`load_model` checks that sha256 *before* it
unpickles (unpickling runs code, so a changed file must not be loaded), and warns when the
model was saved with other versions of Python, scikit-learn or NumPy than the running ones.

Files are written to a temporary name and renamed, so a failure never leaves a half-written
model. Metadata never carries a password: storage URLs in it are masked.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import platform
import time
import warnings
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from tuneops._files import replacing
from tuneops._secrets import mask_secrets
from tuneops.errors import IntegrityError, UsageError, VersionMismatchWarning

__all__ = [
    "save_model",
    "load_model",
    "verify_model",
    "sha256_file",
    "library_versions",
    "write_json",
    "MODEL_FILE",
    "METADATA_FILE",
]

MODEL_FILE = "model.joblib"
METADATA_FILE = "model.json"
_LIBRARIES = (
    "tuneops",
    "optuna",
    "scikit-learn",
    "numpy",
    "pandas",
    "scipy",
    "joblib",
    "lightgbm",
    "xgboost",
)
# The libraries whose version change can make a pickled pipeline load or predict differently
# (scikit-learn documents no cross-version pickle compatibility; NumPy and Python change the
# pickle of arrays and objects). Python is compared on major.minor: bug-fix releases keep pickles.
_CHECKED = ("python", "scikit-learn", "numpy")


def library_versions() -> dict[str, str]:
    """The versions of Python and of the libraries a saved model or result depends on."""
    return dict(_library_versions())


# Installed versions do not change while a process runs; looking them up costs 20 ms.
@functools.cache
def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def sha256_file(path: str | Path) -> str:
    """``"sha256:<hex>"`` of the file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


#: A top-level list of more records than this is written one compact record per line.
RECORDS_PER_LINE_FROM = 20


def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically (temporary file, then rename); URL passwords in ``data`` are masked.

    Indented for reading, except that a top-level list of many records (a study's trials) has
    one compact record per line: as readable and as diff-able, and a fifth of the encoder's
    time (``indent=2`` over 10,000 trial records took 0.65 s of CPU at the end of a run).
    """
    # streamed: a 10,000-trial document is never one string in memory
    with replacing(path) as tmp, tmp.open("w") as f:
        if isinstance(data, dict):
            _write_document(f, data)
        else:
            f.write(_dumps(data, indent=2))
        f.write("\n")
    return path


def _dumps(value: Any, **options: Any) -> str:
    """``json.dumps(mask_secrets(value))``, masking only where a password can be.

    A URL with a password is a string holding both "://" and "@", which JSON writes unescaped:
    text without both is the text of the masked value too. So the value is encoded as it is and
    masked (and encoded again) only then: walking every record of 10,000 trials to mask nothing
    was 0.15 s of CPU at the end of a run.
    """
    text = json.dumps(value, default=_default, **options)
    if "://" in text and "@" in text:
        text = json.dumps(mask_secrets(value), default=_default, **options)
    return text


def _default(value: Any) -> Any:
    return mask_secrets(_jsonable(value))


def _write_document(f: Any, data: dict[str, Any]) -> None:
    """``json.dump(data, f, indent=2)``, with long lists of records one record per line."""
    if not data:
        f.write("{}")
        return
    f.write("{")
    for i, (key, value) in enumerate(data.items()):
        f.write(("," if i else "") + "\n  " + json.dumps(str(key)) + ": ")
        records = (
            isinstance(value, list)
            and len(value) > RECORDS_PER_LINE_FROM
            and all(isinstance(v, dict) for v in value)
        )
        if records:
            f.write("[")
            for j, record in enumerate(value):
                f.write(("," if j else "") + "\n    " + _dumps(record))
            f.write("\n  ]")
        else:
            f.write(_dumps(value, indent=2).replace("\n", "\n  "))
    f.write("\n}")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def save_model(model: Any, metadata: dict[str, Any], out_dir: str | Path) -> Path:
    """Save ``model`` with ``metadata`` as ``out_dir/model.joblib`` and ``out_dir/model.json``.

    ``model.json`` also records ``artifact: {file, sha256, bytes}`` of ``model.joblib``, whose
    sha256 :func:`load_model` verifies. Returns the path of ``model.joblib``.
    """

    out = Path(out_dir)
    metadata = mask_secrets({**metadata, "versions": library_versions()})
    path = out / MODEL_FILE
    import joblib  # the model stack: a run that saves no model (``tune()``) never loads it

    _remove_stale_temporaries(out)
    # Both files are written whole under temporary names first and renamed one after the other
    # on leaving the block (microseconds apart): a run stopped while the model was written (a
    # kill, a full disk) left the new model.joblib beside the old model.json, which load_model
    # then called "changed (edited, truncated or replaced)".
    with replacing(out / METADATA_FILE) as tmp_meta, replacing(path) as tmp:
        joblib.dump({"model": model, "metadata": metadata}, tmp)
        artifact = {"file": MODEL_FILE, "sha256": sha256_file(tmp), "bytes": tmp.stat().st_size}
        with tmp_meta.open("w") as f:
            _write_document(f, {**metadata, "artifact": artifact})
            f.write("\n")
    return path


#: A temporary file of a save older than this was left by a process that died while saving.
STALE_TEMPORARY_S = 3600.0


def _remove_stale_temporaries(out: Path) -> None:
    """Remove what a save killed mid-write left in ``out`` (a ``.model.joblib.*.tmp`` as large
    as the model, 72 MB for a forest of 300 trees, that no later run removed). A save in
    progress writes its file continually, so one untouched for an hour is no one's."""
    now = time.time()
    for name in (MODEL_FILE, METADATA_FILE):
        for tmp in out.glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > STALE_TEMPORARY_S:
                    tmp.unlink()


def _paths(path: str | Path) -> tuple[Path, Path]:
    target = Path(path)
    if target.is_dir():
        target = target / MODEL_FILE
    elif target.name == METADATA_FILE:  # "the file changed" was said of the metadata
        raise UsageError(
            f"{str(target)!r} is the model's metadata; give its {MODEL_FILE} (or the directory "
            "holding both)."
        )
    return target, target.with_name(METADATA_FILE)


def verify_model(
    path: str | Path, sha256: str | None = None, *, content: bytes | None = None
) -> dict[str, Any]:
    """Check ``model.joblib`` against the sha256 recorded for it; returns its ``model.json``.

    Args:
        path: ``model.joblib`` or the directory holding it.
        sha256: the expected ``"sha256:<hex>"`` (as a registry recorded it); default: the one
            in ``model.json`` next to the file. When both exist, both must match.
        content: the file's bytes, already read (what is checked is then what gets loaded:
            a file replaced between a check and a second read would be unpickled unchecked).

    Raises:
        IntegrityError: the file is missing, has no recorded sha256, or its bytes changed;
            the message names the file, the expected and actual sha256, and what to do.
    """
    target, meta_path = _paths(path)
    if not target.is_file():
        raise IntegrityError(
            f"model {str(target)!r} does not exist; export it again (`tuneops export STUDY`) or "
            "give the path of a model.joblib."
        )
    recorded: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            recorded = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise IntegrityError(
                f"model {str(target)!r}: its metadata {str(meta_path)!r} is not readable JSON "
                f"({exc}); export the model again, or load it with verify=False if you trust "
                "the file."
            ) from exc
    expected = [h for h in (sha256, (recorded.get("artifact") or {}).get("sha256")) if h]
    if not expected:
        raise IntegrityError(
            f"model {str(target)!r} has no recorded sha256 (no {METADATA_FILE} with an 'artifact' "
            "entry next to it; models saved before tuneops recorded one have none), so it cannot "
            "be verified. Export it again with this tuneops, or load it with verify=False if you "
            "trust the file (loading unpickles it, which runs code)."
        )
    actual = (
        sha256_file(target) if content is None else "sha256:" + hashlib.sha256(content).hexdigest()
    )
    for want in expected:
        if actual != want:
            raise IntegrityError(
                f"model {str(target)!r} has sha256 {actual}, but {want} was recorded when it was "
                "saved: the file changed (edited, truncated or replaced) and is not loaded. "
                "Restore the original file or export the model again; load it with verify=False "
                "only if you trust the new file."
            )
    return recorded


def _version_mismatches(saved: dict[str, Any]) -> list[str]:
    running = library_versions()
    out = []
    for name in _CHECKED:
        then, now = saved.get(name), running.get(name)
        if then is None or now is None:
            continue
        if name == "python":
            then, now = ".".join(then.split(".")[:2]), ".".join(now.split(".")[:2])
        if then != now:
            out.append(f"{name} {saved[name]} (running {running[name]})")
    return out


def load_model(
    path: str | Path, *, verify: bool = True, sha256: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """Load a saved model; returns ``(fitted_pipeline, metadata)``.

    Args:
        path: ``model.joblib`` or the directory holding it.
        verify: check the file's sha256 against ``model.json`` (and ``sha256``) before
            unpickling it. ``False`` skips the check: only for a file you trust.
        sha256: an expected ``"sha256:<hex>"`` in addition to the one in ``model.json``.

    Raises:
        IntegrityError: ``verify`` and the file differs from what was recorded (or nothing was
            recorded); nothing is unpickled.
        UsageError: the file unpickles to something other than a tuneops model bundle.

    Warns:
        VersionMismatchWarning: the model was saved with another Python (major.minor),
            scikit-learn or NumPy than the running ones.

    Example::

        model, meta = load_model("tuneops-out/quickstart/model.joblib")
        model.predict(X_new)
    """
    import joblib

    target, _ = _paths(path)
    if not verify:
        try:
            bundle = joblib.load(target)
        except FileNotFoundError:
            raise UsageError(f"{str(target)!r} does not exist; expected a model.joblib.") from None
        except Exception as exc:  # noqa: BLE001 - any unpickling error: the file is no model
            raise UsageError(
                f"{str(target)!r} cannot be read as a model ({type(exc).__name__}: "
                f"{str(exc)[:200]}); it is damaged or not a model.joblib. Export it again "
                "(tuneops export)."
            ) from None
        recorded: dict[str, Any] = {}
    else:
        try:
            content = target.read_bytes()  # read once: the bytes checked are the bytes loaded
        except OSError:
            content = None  # verify_model names the missing file
        recorded = verify_model(target, sha256, content=content)
        _warn_versions(target, recorded.get("versions") or {})
        bundle = joblib.load(io.BytesIO(content or b""))
    if not isinstance(bundle, dict) or not {"model", "metadata"} <= set(bundle):
        raise UsageError(
            f"{str(target)!r} is not a tuneops model: expected a bundle with 'model' and "
            f"'metadata' (written by tuneops.export.save_model), found {type(bundle).__name__}."
        )
    meta = dict(bundle["metadata"])
    if not recorded:
        _warn_versions(target, meta.get("versions") or {})
    if recorded.get("artifact"):
        meta["artifact"] = recorded["artifact"]
    return bundle["model"], meta


def _warn_versions(target: Path, saved: dict[str, Any]) -> None:
    mismatches = _version_mismatches(saved)
    if mismatches:
        warnings.warn(
            f"model {str(target)!r} was saved with {', '.join(mismatches)}; it may fail to load or "
            "predict differently. Check its predictions, or export it again in this environment.",
            VersionMismatchWarning,
            stacklevel=3,
        )
