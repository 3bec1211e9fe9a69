"""Pruners by name: ``name -> factory``, resolved once at the boundary.

The core table maps spec names to Optuna's pruners. ``auto`` is resolved by
:func:`make_pruner` from the budget and the problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optuna

from tuneops.errors import SpecError, unknown_name

__all__ = ["PRUNERS", "make_pruner"]


def _nop(**kw: Any) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner(**kw)


PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "auto": _nop,
    "none": _nop,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "wilcoxon": optuna.pruners.WilcoxonPruner,
    "threshold": optuna.pruners.ThresholdPruner,
}


def make_pruner(name: str, params: Mapping[str, Any] | None = None) -> optuna.pruners.BasePruner:
    """Build the pruner ``name`` with keyword ``params``.

    Raises:
        SpecError: unknown name, or parameters the pruner does not accept.
    """
    if name not in PRUNERS:
        raise SpecError(unknown_name("pruner", name, PRUNERS, field="search.pruner"))
    try:
        return PRUNERS[name](**dict(params or {}))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"search.pruner: {name} does not accept {dict(params or {})}: {exc}") from exc
