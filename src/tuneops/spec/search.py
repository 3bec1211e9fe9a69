"""``search``: how the search runs: sampler, pruner, budget (trials, time or compute), workers,
folds, seed, backend and strategy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    field_validator,
    model_validator,
)

from tuneops.errors import unknown_name
from tuneops.spec._base import (
    Int0,
    Int1,
    Int2,
    _amounts,
    _check,
    _expected,
    _is_number,
    _Model,
    _name,
    _problem,
    _validate,
)
from tuneops.spec.components import PRUNER_PARAMETERS, SAMPLER_PARAMETERS, Component, _component

STRATEGIES = ("staged",)
BACKENDS = ("local", "ray")
#: ``search.budget``: the units a compute budget is counted in (see :mod:`tuneops.runner`):
#: CPU seconds of fitting, wall seconds of fitting, or fidelity steps trained.
COMPUTE_UNITS = ("fit_cpu_s", "fit_s", "steps")


def _compute_budget(raw: Any) -> tuple[tuple[str, float], ...]:
    """``search.budget``: ``{unit: amount > 0}`` with exactly one unit of :data:`COMPUTE_UNITS`."""
    if raw is None:
        return ()
    if isinstance(raw, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in raw):
        raw = dict(raw)
    expected = (
        f"a mapping with one of {', '.join(COMPUTE_UNITS)} and an amount > 0, "
        "e.g. {fit_cpu_s: 600}"
    )
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise _expected(expected)
    ((unit, amount),) = raw.items()
    if unit not in COMPUTE_UNITS:
        raise _problem(unknown_name("compute unit", unit, COMPUTE_UNITS))
    if not _is_number(0, low_open=True)(amount):
        raise _expected("an amount > 0", at=str(unit), received=amount)
    return ((str(unit), float(amount)),)


def check_budget(raw: Any, *, root: str = "search") -> tuple[tuple[str, float], ...]:
    """A compute budget ``{unit: amount}`` validated as ``search.budget`` is.

    Raises:
        SpecError: not one unit of :data:`COMPUTE_UNITS` with an amount > 0 (the message names
            ``ROOT.budget``).
    """
    return _validate(Search, {"budget": raw}, root).budget


class Search(_Model):
    """How the search runs: sampler, pruner, budget, workers, folds, seed, backend."""

    SECTION = "search"

    sampler: Component = Component()
    pruner: Component = Component()
    n_trials: Int1 | None = 20
    timeout_s: Annotated[float, _check("seconds > 0", _is_number(0, low_open=True))] | None = None
    #: A compute budget, ``{unit: amount}`` with one unit of :data:`COMPUTE_UNITS`: trials are
    #: created until the compute the finished trials spent reaches it, so the compute a pruner
    #: saves buys more trials. Without an explicit ``n_trials`` it replaces the default 20.
    budget: Annotated[tuple[tuple[str, float], ...], BeforeValidator(_compute_budget)] = ()
    #: Wall seconds after which a trial still running stops before its next CV fold or
    #: fidelity step (recorded as pruned, with ``tuneops:timed_out``); None: no limit.
    trial_timeout_s: (
        Annotated[float, _check("seconds > 0", _is_number(0, low_open=True))] | None
    ) = None
    n_workers: Int1 = 1
    cv_folds: Int2 = 3
    seed: Int0 = 0
    backend: Annotated[str, _name("backend", BACKENDS)] = "local"
    #: ``staged``: random exploration, TPE with pruning, GP/CMA-ES precision, then verification
    #: of the top candidates with more folds (:mod:`tuneops.strategy`); None: the sampler alone.
    strategy: Annotated[str, _name("strategy", STRATEGIES)] | None = None
    resources: Annotated[
        tuple[tuple[str, float], ...],
        _amounts(
            "a number >= 0 (CPUs, GPUs, bytes of memory, or a custom Ray resource)", "resource"
        ),
    ] = ()

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        return {} if raw is None else raw

    @field_validator("sampler", mode="before")
    @classmethod
    def _sampler(cls, raw: Any) -> Component:
        return _component(raw, "sampler", SAMPLER_PARAMETERS)

    @field_validator("pruner", mode="before")
    @classmethod
    def _pruner(cls, raw: Any) -> Component:
        return _component(raw, "pruner", PRUNER_PARAMETERS)

    @field_validator("resources", mode="after")
    @classmethod
    def _sorted(cls, value: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
        return tuple(sorted(value))

    @model_validator(mode="after")
    def _budget(self) -> Search:
        if self.budget and "n_trials" not in self.model_fields_set:
            object.__setattr__(
                self, "n_trials", None
            )  # the compute budget decides, not the default 20
        if self.n_trials is None and self.timeout_s is None and not self.budget:
            raise _problem(
                "set n_trials, timeout_s, or both, or a compute budget; received none of them."
            )
        if self.strategy == "staged" and self.n_trials is None:
            raise _problem("strategy 'staged' shares n_trials out among its phases; set n_trials.")
        return self

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sampler": self.sampler.to_dict(),
            "pruner": self.pruner.to_dict(),
            "n_trials": self.n_trials,
            "timeout_s": self.timeout_s,
            "n_workers": self.n_workers,
            "cv_folds": self.cv_folds,
            "seed": self.seed,
            "backend": self.backend,
        }
        if self.strategy is not None:
            out["strategy"] = self.strategy
        if self.trial_timeout_s is not None:
            out["trial_timeout_s"] = self.trial_timeout_s
        if self.budget:
            out["budget"] = dict(self.budget)
        if self.resources:
            out["resources"] = dict(self.resources)
        return out
