"""``search.sampler`` and ``search.pruner``: a component chosen by name with keyword parameters,
one table of parameters per sampler and per pruner, checked when the spec loads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, TypeVar, cast

from pydantic import (
    BeforeValidator,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tuneops.errors import SpecError, unknown_name
from tuneops.spec._base import (
    Finite,
    Flag,
    Fraction,
    Int0,
    Int1,
    Int2,
    NonNegative,
    Positive,
    Unit,
    _check,
    _expected,
    _freeze,
    _is_int,
    _is_number,
    _Model,
    _name,
    _problem,
    _thaw,
    _validate,
)


class Component(_Model):
    """A sampler or pruner chosen by name, with keyword parameters (checked at load time)."""

    name: str = "auto"
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return {k: _thaw(v) for k, v in self.params}

    def to_dict(self) -> Any:  # type: ignore[override]
        return {"name": self.name, **self.kwargs} if self.params else self.name


class Params(_Model):
    """The keyword parameters of one sampler or pruner.

    A parameter not declared is refused with the accepted ones; the builders in
    :mod:`tuneops.runner` and :mod:`tuneops.pruning` receive :meth:`options`, the parameters
    the user set (Optuna's or tuneops' defaults apply to the rest; the defaults below say which).
    """

    OWNER: ClassVar[str] = ""

    @classmethod
    def _unknown_key(cls, key: Any, valid: tuple[str, ...]) -> PydanticCustomError:
        return _problem(
            f"{cls.OWNER} has no parameter {key!r}; it accepts: {', '.join(valid) or 'none'}.",
            at=str(key),
        )

    def options(self) -> dict[str, Any]:
        """The parameters given, as keyword arguments for the builder."""
        return {k: getattr(self, k) for k in type(self).model_fields if k in self.model_fields_set}


class NoParams(Params):
    """A sampler or pruner without parameters."""


class TPEParams(Params):
    """``tpe`` and ``auto`` (multivariate TPE; ``seed`` comes from ``search.seed``)."""

    n_startup_trials: Int0 = 10
    n_ei_candidates: Int1 = 24
    constant_liar: Flag = True


class AutoParams(TPEParams):
    """``auto``: TPE's parameters, and GP's share of the trials where GP leads (see
    :mod:`tuneops.samplers`)."""

    gp_trials: Int0 = 40


class GPParams(Params):
    n_startup_trials: Int0 = 10
    deterministic_objective: Flag = False
    warn_independent_sampling: Flag = True


class NSGAIIParams(Params):
    population_size: Int2 = 50
    mutation_prob: Unit | None = None
    crossover_prob: Unit = 0.9
    swapping_prob: Unit = 0.5


class NSGAIIIParams(NSGAIIParams):
    dividing_parameter: Int1 = 3


class CmaEsParams(Params):
    x0: dict[str, Any] | None = None
    sigma0: Positive | None = None
    n_startup_trials: Int0 = 1
    consider_pruned_trials: Flag = False
    popsize: Int1 | None = None
    use_separable_cma: Flag = False
    with_margin: Flag = False
    lr_adapt: Flag = False


class QMCParams(Params):
    qmc_type: Annotated[str, _name("qmc_type", ("sobol", "halton"))] = "sobol"
    scramble: Flag = False
    warn_asynchronous_seeding: Flag = True
    warn_independent_sampling: Flag = True


_RESOURCE = "'auto' or an integer >= 1"


def _is_resource(v: Any) -> bool:
    return v == "auto" or _is_int(1)(v)


class _PercentileCommon(Params):
    n_startup_trials: Int0 = 5
    n_warmup_steps: Int0 = 0
    interval_steps: Int1 = 1
    n_min_trials: Int1 = 1


class MedianParams(_PercentileCommon):
    pass


class PercentileParams(Params):
    percentile: Annotated[float, _check("a number in [0, 100]", _is_number(0, 100))]
    n_startup_trials: Int0 = 5
    n_warmup_steps: Int0 = 0
    interval_steps: Int1 = 1
    n_min_trials: Int1 = 1

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping) and "percentile" not in raw:
            raise _problem(f"{cls.OWNER} needs percentile (a number in [0, 100]).", at="percentile")
        return raw


class SuccessiveHalvingParams(Params):
    """tuneops' default reduction factor is 2: fidelity steps double the budget."""

    min_resource: Annotated[int | str, _check(_RESOURCE, _is_resource)] = "auto"
    reduction_factor: Int2 = 2
    min_early_stopping_rate: Int0 = 0
    bootstrap_count: Int0 = 0

    @model_validator(mode="after")
    def _bootstrap(self) -> SuccessiveHalvingParams:
        if self.bootstrap_count > 0 and self.min_resource == "auto":
            raise _problem(
                f"expected 0 when min_resource is 'auto', received {self.bootstrap_count!r}; set "
                "min_resource to an integer >= 1.",
                at="bootstrap_count",
            )
        return self


class HyperbandParams(Params):
    min_resource: Int1 = 1
    max_resource: Annotated[int | str, _check(_RESOURCE, _is_resource)] = "auto"
    reduction_factor: Int2 = 2
    bootstrap_count: Int0 = 0


class WilcoxonParams(Params):
    p_threshold: Unit = 0.1
    n_startup_steps: Int0 = 2


class ThresholdParams(Params):
    lower: Finite | None = None
    upper: Finite | None = None
    n_warmup_steps: Int0 = 0
    interval_steps: Int1 = 1

    @model_validator(mode="after")
    def _bounds(self) -> ThresholdParams:
        if self.lower is None and self.upper is None:
            raise _problem(f"{self.OWNER} needs lower and/or upper (a finite number).")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise _problem(
                f"expected lower <= upper, received lower={self.lower:g}, upper={self.upper:g}.",
                at="lower",
            )
        return self


class ParetoParams(Params):
    """:class:`tuneops.pruning.ParetoPruner`: from step 4 on, or from ``warmup_fraction`` of
    the maximum step (``max_step``, declared or learned from the completed trials)."""

    n_startup_trials: Int1 = 5
    n_warmup_steps: Int0 = 4
    dominated_fraction: Fraction = 0.5
    min_dominating: Int1 = 2
    warmup_fraction: Fraction | None = None
    max_step: Int1 | None = None


class AutoPrunerParams(Params):
    """``auto``: the objective's maximum step when declared (else a spec's fidelity schedule,
    or learned from the first completed trials of a custom objective)."""

    max_step: Int1 | None = None


class FractionalHalvingParams(Params):
    """:class:`tuneops.pruning.FractionalHalvingPruner`: rungs at ``min_fraction *
    reduction_factor**k`` of the maximum step."""

    max_step: Int1 | None = None
    reduction_factor: Int2 = 3
    n_brackets: Int1 = 1
    min_fraction: Annotated[
        float, _check("a number in (0, 1)", _is_number(0, 1, low_open=True, high_open=True))
    ] = 1 / 27


def _wrapped(raw: Any) -> Component:
    component = _component(raw, "pruner", PRUNER_PARAMETERS)
    if component.name in ("patience", "auto"):
        raise _expected(f"a pruner other than {component.name!r}", received=component.name)
    return component


class PatienceParams(Params):
    """Optuna's PatientPruner around ``wrapped`` (a pruner name or ``{name: ..., params...}``)."""

    patience: Int0 = 1
    min_delta: NonNegative = 0.0
    wrapped: Annotated[Component, BeforeValidator(_wrapped)] = Field(
        default_factory=lambda: Component(name="none")
    )


_P = TypeVar("_P", bound=Params)


def _owned(model: type[_P], owner: str) -> type[_P]:
    """``model`` under the name of the sampler or pruner it belongs to (for its messages)."""
    namespace = {"OWNER": owner, "__module__": __name__, "__doc__": model.__doc__}
    owned = type(model.__name__, (model,), namespace)
    return cast("type[_P]", owned)


#: sampler name -> its parameters (the factories are :data:`tuneops.samplers.SAMPLERS`).
SAMPLER_PARAMETERS: dict[str, type[Params]] = {
    "auto": _owned(AutoParams, "sampler 'auto'"),
    "tpe": _owned(TPEParams, "sampler 'tpe'"),
    "random": _owned(NoParams, "sampler 'random'"),
    "gp": _owned(GPParams, "sampler 'gp'"),
    "nsga2": _owned(NSGAIIParams, "sampler 'nsga2'"),
    "nsga3": _owned(NSGAIIIParams, "sampler 'nsga3'"),
    "cmaes": _owned(CmaEsParams, "sampler 'cmaes'"),
    "qmc": _owned(QMCParams, "sampler 'qmc'"),
}

#: pruner name -> its parameters (the factories are :data:`tuneops.pruning.PRUNERS`).
PRUNER_PARAMETERS: dict[str, type[Params]] = {
    "auto": _owned(AutoPrunerParams, "pruner 'auto'"),
    "fractional_halving": _owned(FractionalHalvingParams, "pruner 'fractional_halving'"),
    "none": _owned(NoParams, "pruner 'none'"),
    "median": _owned(MedianParams, "pruner 'median'"),
    "percentile": _owned(PercentileParams, "pruner 'percentile'"),
    "successive_halving": _owned(SuccessiveHalvingParams, "pruner 'successive_halving'"),
    "hyperband": _owned(HyperbandParams, "pruner 'hyperband'"),
    "wilcoxon": _owned(WilcoxonParams, "pruner 'wilcoxon'"),
    "threshold": _owned(ThresholdParams, "pruner 'threshold'"),
    "patience": _owned(PatienceParams, "pruner 'patience'"),
    "pareto": _owned(ParetoParams, "pruner 'pareto'"),
}


def _split(raw: Any, kind: str) -> tuple[Any, dict[str, Any]]:
    if raw is None:
        return "auto", {}
    if isinstance(raw, Component):
        return raw.name, raw.kwargs
    if isinstance(raw, str):
        return raw, {}
    if isinstance(raw, Mapping):
        params = dict(raw)
        return params.pop("name", "auto"), params
    raise _expected(f"a {kind} name or a mapping {{name: NAME, PARAMETER: value, ...}}")


def _component(raw: Any, kind: str, table: Mapping[str, type[Params]]) -> Component:
    """Inside validation: a sampler or pruner with its parameters checked against ``table``."""
    name, params = _split(raw, kind)
    if not isinstance(name, str) or name not in table:
        raise _problem(unknown_name(kind, name, table))
    table[name].model_validate(params)  # errors land under this field: search.pruner.PARAM
    return Component(name=name, params=tuple(sorted((k, _freeze(v)) for k, v in params.items())))


def _parameters(
    kind: str,
    table: Mapping[str, type[Params]],
    name: Any,
    params: Mapping[str, Any] | None,
    field: str,
) -> Params:
    if isinstance(name, (Component, Mapping)):
        name, extra = _split(name, kind)
        params = {**extra, **(params or {})}
    if not isinstance(name, str) or name not in table:
        raise SpecError(unknown_name(kind, name, table, field=field))
    return _validate(table[name], dict(params or {}), field)


def sampler_parameters(
    name: Any, params: Mapping[str, Any] | None = None, *, field: str = "search.sampler"
) -> Params:
    """The validated parameters of sampler ``name`` (or of ``{name: ..., params...}``).

    Raises:
        SpecError: unknown sampler, unknown parameter, or a value of the wrong type or range.
    """
    return _parameters("sampler", SAMPLER_PARAMETERS, name, params, field)


def pruner_parameters(
    name: Any, params: Mapping[str, Any] | None = None, *, field: str = "search.pruner"
) -> Params:
    """The validated parameters of pruner ``name`` (or of ``{name: ..., params...}``).

    Example::

        >>> pruner_parameters("percentile", {"percentile": 150})
        Traceback (most recent call last):
        ...
        tuneops.errors.SpecError: search.pruner.percentile: expected a number in [0, 100], ...
    """
    return _parameters("pruner", PRUNER_PARAMETERS, name, params, field)
