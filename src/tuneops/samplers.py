"""Samplers by name: one table from the spec's ``search.sampler`` to an Optuna sampler.

Optuna's samplers do the searching; this module only names them, fixes their seeds, and says
which one ``auto`` means.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna

from tuneops.errors import SpecError, unknown_name

__all__ = ["SAMPLERS", "make_sampler"]


def _tpe(seed: int | None, *, group: bool, **kw: Any) -> optuna.samplers.BaseSampler:
    # Optuna 5 defaults: multivariate and constant_liar (pending trials penalised, so parallel
    # workers spread out). `group` handles conditional spaces (several families); it is marked
    # experimental, and using it is a deliberate choice, so its warning is not the user's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=group, **kw)


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "auto": _tpe,
    "tpe": _tpe,
    "random": lambda seed, group=False, **kw: optuna.samplers.RandomSampler(seed=seed, **kw),
    "gp": lambda seed, group=False, **kw: optuna.samplers.GPSampler(seed=seed, **kw),
    "nsga2": lambda seed, group=False, **kw: optuna.samplers.NSGAIISampler(seed=seed, **kw),
    "nsga3": lambda seed, group=False, **kw: optuna.samplers.NSGAIIISampler(seed=seed, **kw),
    "cmaes": lambda seed, group=False, **kw: optuna.samplers.CmaEsSampler(seed=seed, **kw),
    "qmc": lambda seed, group=False, **kw: optuna.samplers.QMCSampler(seed=seed, **kw),
}


def make_sampler(
    name: str, params: Mapping[str, Any] | None = None, *, seed: int | None, conditional: bool = False
) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` with keyword ``params``.

    ``auto`` is multivariate TPE for every problem: it handles conditional spaces, single and
    multiple objectives, constraints and parallel workers (constant liar), at a per-trial
    cost that stays small up to thousands of trials. GP and CMA-ES are available by name.

    Raises:
        SpecError: unknown name, or parameters the sampler does not accept.
    """
    if name not in SAMPLERS:
        raise SpecError(unknown_name("sampler", name, SAMPLERS, field="search.sampler"))
    try:
        return SAMPLERS[name](seed, group=conditional, **dict(params or {}))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"search.sampler: {name} does not accept {dict(params or {})}: {exc}") from exc
