"""The model artifact: the selected configuration refitted on all data, with its metadata.

``model.joblib`` holds ``{"model": fitted_pipeline, "metadata": {...}}``; ``model.json`` holds
the same metadata for people and tools that do not unpickle. Files are written to a temporary
name and renamed, so a failure never leaves a half-written model.
"""

from __future__ import annotations

import functools
import json
import os
import platform
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import joblib

__all__ = ["save_model", "load_model", "library_versions", "write_json"]

_LIBRARIES = ("tuneops", "optuna", "scikit-learn", "numpy", "pandas", "scipy", "joblib", "lightgbm", "xgboost")


def library_versions() -> dict[str, str]:
    """The versions of Python and of the libraries a saved model or result depends on."""
    return dict(_library_versions())


@functools.cache  # installed versions do not change while a process runs; looking them up costs 20 ms
def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def save_model(model: Any, metadata: dict[str, Any], out_dir: str | Path) -> Path:
    """Save ``model`` with ``metadata`` as ``out_dir/model.joblib`` and ``out_dir/model.json``."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metadata = {**metadata, "versions": library_versions()}
    path = out / "model.joblib"
    tmp = out / "model.joblib.tmp"
    joblib.dump({"model": model, "metadata": metadata}, tmp)
    os.replace(tmp, path)
    write_json(out / "model.json", metadata)
    return path


def load_model(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Load a saved model; returns ``(fitted_pipeline, metadata)``.

    Example::

        model, meta = load_model("tuneops-out/quickstart/model.joblib")
        model.predict(X_new)
    """

    bundle = joblib.load(path)
    return bundle["model"], bundle["metadata"]
