"""tuneops: production hyperparameter tuning on Optuna.

One spec takes a model from multi-objective search under business constraints to a saved,
versioned model. The public API is small and imports lazily, so ``import tuneops`` is fast.

Example::

    import tuneops
    result = tuneops.run("examples/quickstart.yaml")
    print(result.choice.selected.number, result.model_path)
"""

from __future__ import annotations

import os
from importlib import import_module, metadata
from typing import Any

# OpenMP threads that wait at a barrier sleep at once instead of spinning (unless the
# environment says otherwise). On a machine whose cores other processes hold, a 2-thread fit
# spun out 2.6-53x the CPU seconds of one thread and ran 1.6-32x slower, and fit_time_s (CPU
# seconds) reported the spin; passive waiting keeps it at 1.1-1.7x. The price is some of the
# threads' gain on an idle machine (benchmarks/bench_fit_threads.py). Read when an OpenMP
# runtime loads: set here, before scikit-learn, LightGBM or XGBoost load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = [
    "run",
    "tune",
    "load_spec",
    "dump_spec",
    "load_dataset",
    "load_model",
    "load_study",
    "reselect",
    "export_model",
    "Spec",
    "RunResult",
    "TuneOpsError",
    "SpecError",
    "DataError",
    "StorageUnavailable",
    "NoFeasibleTrial",
    "WriteError",
    "IntegrityError",
    "StudyNotFound",
]

_LAZY = {
    "run": "tuneops.tuning",
    "tune": "tuneops.custom",
    "load_study": "tuneops.tuning",
    "reselect": "tuneops.tuning",
    "export_model": "tuneops.tuning",
    "RunResult": "tuneops.custom",
    "load_spec": "tuneops.spec",
    "dump_spec": "tuneops.spec",
    "Spec": "tuneops.spec",
    "load_dataset": "tuneops.data",
    "load_model": "tuneops.export",
    "TuneOpsError": "tuneops.errors",
    "SpecError": "tuneops.errors",
    "DataError": "tuneops.errors",
    "StorageUnavailable": "tuneops.errors",
    "NoFeasibleTrial": "tuneops.errors",
    "WriteError": "tuneops.errors",
    "IntegrityError": "tuneops.errors",
    "StudyNotFound": "tuneops.errors",
}


def _version() -> str:
    """The installed distribution's version: pyproject.toml is its one source.

    Read on first access: importlib.metadata (email, zipfile, csv) costs ~30 ms to import,
    most of an otherwise light ``import tuneops``, hence the import here. A source tree on
    ``sys.path`` that was never installed reports ``0+unknown``.
    """

    try:
        return metadata.version("tuneops")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()["__version__"] = version = _version()
        return version
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tuneops' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
