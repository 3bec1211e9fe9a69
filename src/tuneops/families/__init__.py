"""Model families: one registry, ``name -> Family``. Adding a family is one small class.

Example::

    >>> from tuneops.families import get_family
    >>> get_family("random_forest").default_space("classification")["n_estimators"].log
    True
"""

from __future__ import annotations

from tuneops.errors import SpecError, unknown_name
from tuneops.families._base import FIDELITY_STEPS, Family, build_pipeline, build_preprocessor
from tuneops.families.boosting import LightGBM, XGBoost
from tuneops.families.sklearn import (
    KNN,
    MLP,
    SVM,
    ExtraTrees,
    HistGradientBoosting,
    Linear,
    RandomForest,
)

__all__ = [
    "FAMILIES",
    "FIDELITY_STEPS",
    "Family",
    "get_family",
    "build_pipeline",
    "build_preprocessor",
    "register_family",
]

FAMILIES: dict[str, type[Family]] = {
    cls.name: cls
    for cls in (
        RandomForest,
        ExtraTrees,
        HistGradientBoosting,
        Linear,
        SVM,
        KNN,
        MLP,
        LightGBM,
        XGBoost,
    )
}


def get_family(name: str) -> Family:
    """The family registered under ``name``.

    Raises:
        SpecError: the name is not registered; the message lists the valid names.
    """
    try:
        return FAMILIES[name]()
    except KeyError:
        raise SpecError(
            unknown_name("model family", name, FAMILIES, field="model.family")
        ) from None


def register_family(cls: type[Family]) -> type[Family]:
    """Add a family to the registry (usable as a class decorator)."""
    if not cls.name:
        raise ValueError("a family class needs a non-empty `name`")
    FAMILIES[cls.name] = cls
    return cls
