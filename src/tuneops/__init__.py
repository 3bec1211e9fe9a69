"""tuneops: production hyperparameter tuning on Optuna.

One spec takes a model from multi-objective search under business constraints to a saved,
versioned model. The public API is small and imports lazily, so ``import tuneops`` is fast.

Example::

    import tuneops
    result = tuneops.run("examples/quickstart.yaml")
    print(result.choice.selected.number, result.model_path)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

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
]

_LAZY = {
    "run": "tuneops.tuning",
    "tune": "tuneops.tuning",
    "load_study": "tuneops.tuning",
    "reselect": "tuneops.tuning",
    "export_model": "tuneops.tuning",
    "RunResult": "tuneops.tuning",
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
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tuneops' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
