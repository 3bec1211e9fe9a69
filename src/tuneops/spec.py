"""The spec: one validated, immutable value that describes a tuning job.

A spec is written in YAML or TOML (or given as a dict), validated once by :func:`load_spec`,
stored with its study, and round-trips through :meth:`Spec.to_dict`. Every section is a
frozen pydantic model that refuses unknown keys, so every field is checked at load time: the
search space, the sampler and pruner with their parameters, the ``warm_start`` and ``monitor``
sections included. A typo fails before anything is written, not at deploy time.

Every error is a :class:`~tuneops.errors.SpecError` whose message comes from one formatter
(:func:`tuneops.errors.format_validation_error`): the field, what was expected, what was
received, the closest valid name, what to do.

Secrets: :meth:`Spec.to_dict` (what is stored with the study and written to files) carries the
storage URL with its password masked (``user:***@host``); :attr:`Spec.storage` is the real URL,
for the code that connects.

Example::

    >>> spec = load_spec({"data": {"source": "sklearn:iris"},
    ...                   "model": {"family": "random_forest"},
    ...                   "objectives": ["accuracy"], "search": {"n_trials": 5}})
    >>> spec.objectives[0].direction
    'maximize'
    >>> load_spec({"data": {"source": "sklearn:iris"}, "model": {"family": "knn"},
    ...            "monitor": {"alpah": 0.1}})
    Traceback (most recent call last):
    ...
    tuneops.errors.SpecError: monitor: unknown monitor setting 'alpah'; ... Did you mean 'alpha'?
"""

from __future__ import annotations

import math
import os
import re
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, TypeVar, cast

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SkipValidation,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tuneops.errors import SpecError, format_validation_error, require, unknown_name
from tuneops.families import FAMILIES
from tuneops.metrics import METRICS, get_metric
from tuneops.space import Param, parse_space, space_to_dict
from tuneops.storage import mask_url

__all__ = [
    "Spec",
    "DataSpec",
    "ModelSpec",
    "Objective",
    "Constraint",
    "Selection",
    "Component",
    "Search",
    "WarmStart",
    "AutoSettings",
    "StudySource",
    "Monitor",
    "VerifySettings",
    "SLOSettings",
    "LiveSettings",
    "AlertSettings",
    "SAMPLER_PARAMETERS",
    "PRUNER_PARAMETERS",
    "COMPUTE_UNITS",
    "check_budget",
    "sampler_parameters",
    "pruner_parameters",
    "load_spec",
    "dump_spec",
    "parse_constraint",
    "read_monitor_settings",
]

TASKS = ("auto", "classification", "regression")
STRATEGIES = ("staged",)
POLICIES = ("knee", "lexicographic", "weighted")
BACKENDS = ("local", "ray")
#: ``search.budget``: the units a compute budget is counted in (see :mod:`tuneops.runner`):
#: CPU seconds of fitting, wall seconds of fitting, or fidelity steps trained.
COMPUTE_UNITS = ("fit_cpu_s", "fit_s", "steps")
#: ``monitor.correction``: the multiple-testing corrections of :mod:`tuneops.ops.drift`.
CORRECTIONS = ("bh", "bonferroni", "none")
#: ``monitor.metric``: the metrics monitoring computes from a batch's labels and predictions
#: alone (quality metrics that need no class scores;
#: :data:`tuneops.ops.monitor.PERFORMANCE_METRICS`).
MONITORED_METRICS = tuple(
    name for name, m in METRICS.items() if m.is_quality and not m.needs_scores
)
#: ``warm_start.auto.strategy``: a static portfolio's order (:mod:`tuneops.knowledge.portfolio`),
#: or ``adaptive``: each warm-start trial chosen after the results so far.
AUTO_STRATEGIES = ("round_robin", "consensus", "coverage", "greedy", "adaptive")
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


# -- errors raised inside validation (the formatter in tuneops.errors turns them into words) -----
_UNSET: Any = object()


def _expected(
    expected: str, *, hint: str = "", at: str = "", received: Any = _UNSET
) -> PydanticCustomError:
    """``FIELD: expected ..., received ...``; ``at``: a sub-field, whose value is ``received``."""
    ctx: dict[str, Any] = {"expected": expected, "hint": hint, "at": at}
    if received is not _UNSET:
        ctx["received"] = received
    return PydanticCustomError("expected", "expected {expected}", ctx)


def _problem(message: str, *, at: str = "") -> PydanticCustomError:
    return PydanticCustomError("tuneops", "{message}", {"message": message, "at": at})


def _check(expected: str, ok: Callable[[Any], bool], hint: str = "") -> BeforeValidator:
    """A field check in our words: ``ok(value)`` or ``expected ..., received ...``.

    Checks run on the raw value, before pydantic's own (lax) conversion, so ``"5"`` is not an
    integer and ``true`` is not a number, as in the YAML the user wrote.
    """

    def check(value: Any) -> Any:
        if not ok(value):
            raise _expected(expected, hint=hint)
        return value

    return BeforeValidator(check)


def _name(kind: str, valid: tuple[str, ...]) -> BeforeValidator:
    """A name from a fixed list; an unknown one is refused with the list and the closest match."""

    def check(value: Any) -> Any:
        if not isinstance(value, str) or value not in valid:
            raise _problem(unknown_name(kind, value, valid))
        return value

    return BeforeValidator(check)


def _is_int(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _is_number(
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return ok


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


Int0 = Annotated[int, _check("an integer >= 0", _is_int(0))]
Int1 = Annotated[int, _check("an integer >= 1", _is_int(1))]
Int2 = Annotated[int, _check("an integer >= 2", _is_int(2))]
Int10 = Annotated[int, _check("an integer >= 10", _is_int(10))]
Finite = Annotated[float, _check("a finite number", _is_number())]
NonNegative = Annotated[float, _check("a number >= 0", _is_number(0))]
Positive = Annotated[float, _check("a number > 0", _is_number(0, low_open=True))]
Unit = Annotated[float, _check("a number in [0, 1]", _is_number(0, 1))]
Probability = Annotated[
    float,
    _check("a number strictly between 0 and 1", _is_number(0, 1, low_open=True, high_open=True)),
]
Fraction = Annotated[float, _check("a number in (0, 1]", _is_number(0, 1, low_open=True))]
Flag = Annotated[bool, _check("true or false", _is_bool)]
Text = Annotated[str, _check("a non-empty string", _is_text)]


# -- the base of every section --------------------------------------------------------------------
_M = TypeVar("_M", bound="_Model")


class _Model(BaseModel):
    """A frozen section of a spec that refuses unknown keys.

    Subclasses put shorthand forms into the canonical mapping in :meth:`_normalize`;
    ``KEY_KIND`` names their keys in the unknown-key message; ``SECTION`` is where the section
    sits in a spec, so a section built on its own (``Monitor(alpha=2)``) names
    ``monitor.alpha`` when it is refused. The small value types also take their fields
    positionally (``Objective("accuracy", "maximize")``), as the dataclasses they replace did.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    SECTION: ClassVar[str] = ""
    KEY_KIND: ClassVar[str] = "key"

    def __init__(self, /, *args: Any, **data: Any) -> None:
        if args:
            names = list(type(self).model_fields)
            if len(args) > len(names):
                raise TypeError(f"{type(self).__name__} takes {len(names)} positional arguments")
            data.update(zip(names, args, strict=False))
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise SpecError(format_validation_error(exc, root=self.SECTION)) from None

    # Marked as pydantic's own __init__, so validation of nested sections never calls it (their
    # errors stay pydantic errors, named from the top of the spec); only direct construction does.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"{type(self).__name__} is immutable; cannot set {name!r} (use spec.replace(...) or "
            "load_spec(spec, **changes) for a changed copy)."
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot delete {name!r}.")

    @classmethod
    def spec_keys(cls) -> tuple[str, ...]:
        """The keys the section accepts in a spec."""
        return tuple(cls.model_fields)

    @classmethod
    def from_raw(cls: type[_M], raw: Any, field_name: str | None = None) -> _M:
        """The section from raw data (or itself), validated as it would be inside a spec.

        Raises:
            SpecError: naming the field below ``field_name`` (default: where the section sits).
        """
        if isinstance(raw, cls):
            return raw
        return _validate(cls, raw, cls.SECTION if field_name is None else field_name)

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        return raw

    @classmethod
    def _unknown_key(cls, key: Any, valid: tuple[str, ...]) -> PydanticCustomError:
        return _problem(unknown_name(cls.KEY_KIND, key, valid))

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, raw: Any) -> Any:
        if isinstance(raw, cls):
            return raw
        raw = cls._normalize(raw)
        if isinstance(raw, Mapping):
            valid = cls.spec_keys()
            for key in raw:
                if key not in valid:
                    raise cls._unknown_key(key, valid)
        return raw

    def to_dict(self) -> dict[str, Any]:
        """The section as plain data; fields left at their default are omitted."""
        out: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if not info.is_required() and value == info.get_default(call_default_factory=True):
                continue
            out[name] = _thaw(value)
        return out


def _validate(model: type[_M], raw: Any, root: str) -> _M:
    """``model`` from raw data, or a SpecError naming fields below ``root``."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, root=root)) from None


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, _Model):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


# -- data, objectives, constraints, selection ----------------------------------------------------
class DataSpec(_Model):
    """Where the data is and what to predict.

    ``pos_label`` is the positive class of binary ``f1``, ``precision``, ``recall``,
    ``roc_auc`` and ``average_precision``. Default (None): the minority class of the training
    target; the class used is recorded in the results.
    """

    SECTION = "data"

    source: Annotated[
        str,
        _check(
            "a data source such as 'sklearn:breast_cancer', 'pmlb:NAME' or a CSV/Parquet path",
            _is_text,
        ),
    ] = Field(default=None, validate_default=True)
    target: Annotated[str, _check("a column name", _is_text)] | None = None
    task: Annotated[str, _name("task", TASKS)] = "auto"
    pos_label: (
        Annotated[
            str | int | bool,
            _check(
                "a class label (a string, an integer, true or false)",
                lambda v: isinstance(v, (str, int)),
            ),
        ]
        | None
    ) = None

    @field_validator("source", mode="after")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "task": self.task}
        if self.target is not None:
            out["target"] = self.target
        if self.pos_label is not None:
            out["pos_label"] = self.pos_label
        return out


class Objective(_Model):
    """One metric to optimize and its direction."""

    metric: Text
    direction: Annotated[str, _name("direction", ("maximize", "minimize"))]

    def to_dict(self) -> dict[str, str]:
        return {"metric": self.metric, "direction": self.direction}


_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


class Constraint(_Model):
    """``metric op threshold``; strict and non-strict comparisons are treated alike."""

    metric: Text
    op: Annotated[str, _name("comparison", ("<=", ">=", "<", ">"))]
    threshold: Finite

    def violation(self, metrics: Mapping[str, float]) -> float:
        """Optuna's convention: <= 0 is feasible, > 0 is by how much it misses."""
        value = metrics[self.metric]
        return self.threshold - value if self.op in (">=", ">") else value - self.threshold

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


def parse_constraints(
    value: Any, field: str = "constraints", *, builtin_only: bool = False
) -> list[Constraint]:
    """Constraints as the Python API takes them: one text (``"accuracy >= 0.9"``), a
    :class:`Constraint`, or a list of those; None for none. A single text was read as a list
    of its characters ("malformed constraint 'v'"), and a number failed every trial.

    Raises:
        SpecError: anything else, naming it.
    """
    if value is None:
        return []
    items = [value] if isinstance(value, (str, Constraint)) else value
    if not isinstance(items, (list, tuple)):
        raise SpecError(
            f"{field}: expected a constraint such as 'accuracy >= 0.9' or a list of them, "
            f"received {type(value).__name__} {value!r}."
        )
    out = []
    for i, item in enumerate(items):
        if isinstance(item, Constraint):
            out.append(item)
        elif isinstance(item, str):
            out.append(parse_constraint(item, field, builtin_only=builtin_only))
        else:
            raise SpecError(
                f"{field}[{i}]: expected a constraint such as 'accuracy >= 0.9', received "
                f"{type(item).__name__} {item!r}."
            )
    return out


def parse_constraint(
    text: Any, field: str = "constraints", *, builtin_only: bool = True
) -> Constraint:
    """Parse ``"accuracy >= 0.9"``.

    With ``builtin_only=False`` any metric name is accepted (custom objectives name their own
    metrics; selection checks later that the trials measured it).

    Raises:
        SpecError: the text is not ``metric op number`` or the metric is unknown.
    """
    match = _CONSTRAINT.match(text) if isinstance(text, str) else None
    if match is None:
        raise SpecError(
            f"{field}: malformed constraint {text!r}; expected 'METRIC OP NUMBER' with OP one "
            "of >=, <=, >, < (for example 'accuracy >= 0.90' or 'latency_p95_ms <= 50')."
        )
    metric, op, number = match.groups()
    # A custom objective may use a built-in name in its own units (accuracy in %): its range
    # is checked only for the built-in metrics.
    known = get_metric(metric, field=field) if builtin_only else None
    try:
        threshold = float(number)
    except ValueError:
        raise SpecError(f"{field}: {number!r} in {text!r} is not a number.") from None
    if not math.isfinite(threshold):
        raise SpecError(f"{field}: threshold in {text!r} must be finite.")
    if known is not None:
        low, high = known.range
        impossible = (
            (op == ">=" and threshold > high)
            or (op == ">" and threshold >= high)
            or (op == "<=" and threshold < low)
            or (op == "<" and threshold <= low)
        )
        if impossible:
            # Refused now: otherwise the whole budget runs before "no trial meets it".
            raise SpecError(
                f"{field}: no model can meet {text!r}: {metric} takes values from {low:g} to "
                f"{high:g}. Give a threshold {metric} can reach."
            )
    return Constraint(metric=metric, op=op, threshold=threshold)


def _amounts(expected: str, what: str) -> BeforeValidator:
    """A mapping ``{name: number >= 0}`` (or its stored form, ``((name, number), ...)``)."""
    is_amount = _is_number(0)

    def check(raw: Any) -> Any:
        if raw is None:
            return ()
        if isinstance(raw, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in raw):
            raw = dict(raw)
        if not isinstance(raw, Mapping):
            raise _expected(f"a mapping {{{what}: {expected}}}")
        for key, value in raw.items():
            if not is_amount(value):
                raise _expected(expected, at=str(key), received=value)
        return tuple((str(k), float(v)) for k, v in raw.items())

    return BeforeValidator(check)


class Selection(_Model):
    """How one trial is chosen from the feasible Pareto front."""

    SECTION = "selection"

    policy: Annotated[str, _name("selection policy", POLICIES)] = "knee"
    weights: Annotated[tuple[tuple[str, float], ...], _amounts("a number >= 0", "objective")] = ()
    priority: tuple[str, ...] = ()
    tolerance: NonNegative = 0.0

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            return {"policy": raw}
        return {} if raw is None else raw

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Any:
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
            raise _expected("a list of objective names")
        return value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"policy": self.policy}
        if self.weights:
            out["weights"] = dict(self.weights)
        if self.priority:
            out["priority"] = list(self.priority)
        if self.tolerance:
            out["tolerance"] = self.tolerance
        return out


def _fit_selection(selection: Selection, names: list[str]) -> Selection:
    """Check a selection against the objectives; ``weighted`` without weights weighs them alike.

    Raises:
        SpecError: a weight or priority on a metric that is not an objective.
    """
    for metric, _ in selection.weights:
        if metric not in names:
            raise SpecError(
                f"selection.weights: {metric!r} is not an objective; expected some of {names}."
            )
    if any(p not in names for p in selection.priority):
        raise SpecError(
            f"selection.priority: expected a list of objectives from {names}, received "
            f"{list(selection.priority)!r}."
        )
    if selection.policy == "weighted" and not selection.weights:
        return selection.model_copy(update={"weights": tuple((n, 1.0) for n in names)})
    return selection


def _selection(raw: Any, objectives: tuple[Objective, ...]) -> Selection:
    """The ``selection`` field for the objectives (also used by :func:`tuneops.tuning.tune`)."""
    selection = raw if isinstance(raw, Selection) else _validate(Selection, raw, "selection")
    return _fit_selection(selection, [o.metric for o in objectives])


# -- samplers and pruners: one table of parameters each -------------------------------------------
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


# -- model and search ------------------------------------------------------------------------------
class ModelSpec(_Model):
    """The model families searched, and the search space per family (defaults filled later)."""

    SECTION = "model"

    families: tuple[str, ...]
    space: SkipValidation[Mapping[str, Mapping[str, Param]]] = MappingProxyType({})

    @classmethod
    def spec_keys(cls) -> tuple[str, ...]:
        return ("family", "families", "space")

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise _expected("a mapping with family (a name or a list) and optionally space")
        for key in raw:
            if key not in cls.spec_keys():
                raise cls._unknown_key(key, cls.spec_keys())
        families = raw.get("families", raw.get("family"))
        if isinstance(families, str):
            families = [families]
        if isinstance(families, tuple):
            families = list(families)
        if not isinstance(families, list) or not families:
            raise _expected(
                "a family name or a list of names",
                at="family",
                received=families,
                hint=f"Valid families: {', '.join(sorted(FAMILIES))}.",
            )
        for name in families:
            if name not in FAMILIES:
                raise _problem(unknown_name("model family", name, FAMILIES), at="family")
        if len(set(families)) != len(families):
            raise _problem(f"a family is listed twice in {families}.", at="family")
        space_raw = raw.get("space") or {}
        if not isinstance(space_raw, Mapping):
            raise _expected("a mapping of parameter names", at="space", received=space_raw)
        if len(families) == 1 and not (set(space_raw) & set(FAMILIES)):
            space_raw = {families[0]: space_raw} if space_raw else {}
        for name in space_raw:
            if name not in families:
                raise _problem(
                    f"{name!r} is not one of the spec's families {families}; with several "
                    "families, give each its own mapping under model.space.FAMILY.",
                    at="space",
                )
        space = {
            f: MappingProxyType(_space(space_raw.get(f), f"model.space.{f}")) for f in families
        }
        for f, params in space.items():
            accepted = _accepted_names(f) if params else None
            for p in params:
                if accepted is not None and p not in accepted:
                    raise _problem(unknown_name(f"{f} parameter", p, accepted), at=f"space.{f}.{p}")
                refused = _refused_value(f, params[p]) if accepted is not None else None
                if refused:
                    raise _problem(refused, at=f"space.{f}.{p}")
        return {"families": tuple(families), "space": MappingProxyType(space)}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "family": self.families[0] if len(self.families) == 1 else list(self.families)
        }
        if any(self.space.values()):
            out["space"] = {f: space_to_dict(s) for f, s in self.space.items() if s}
        return out


def _accepted_names(name: str) -> set[str] | None:
    """The parameters family ``name`` accepts: its default space's and its estimators'.

    A misspelt name in ``model.space`` would otherwise fail every trial with the estimator's
    TypeError after the study was created. None when the estimator cannot be built here (a
    missing extra, which the run reports by itself).
    """
    family = FAMILIES[name]()
    names: set[str] = set()
    try:
        for task in family.tasks:
            names |= set(family.default_space(task))
            names |= set(family.estimator({}, task, 0).get_params(deep=False))
    except ImportError:
        return None
    return names


def _refused_value(name: str, param: Param) -> str | None:
    """Why the estimator of family ``name`` refuses a value of ``param`` (a fixed value, a
    choice, or a range's bound), or None. Asked of scikit-learn's own parameter checks
    (``_validate_params``), so ``weights: cosine`` or ``n_neighbors: {low: 0}`` fails when the
    spec loads instead of failing every trial that draws it. A value is refused only when every
    task whose estimator takes the parameter refuses it; an estimator without the checks
    (LightGBM, XGBoost) or that cannot be built here is not asked.
    """
    from sklearn.utils._param_validation import InvalidParameterError

    if param.kind == "fixed":
        values = [param.value]
    elif param.kind == "categorical":
        values = list(param.choices)
    else:
        cast = int if param.kind == "int" else float
        values = [cast(v) for v in (param.low, param.high) if v is not None]
    family = FAMILIES[name]()
    for value in values:
        refusals: list[str] = []
        asked = 0
        for task in family.tasks:
            try:
                estimator = family.estimator({param.name: value}, task, 0)
                check = getattr(estimator, "_validate_params", None)
                if check is None:
                    continue
                asked += 1
                check()
            except InvalidParameterError as exc:
                refusals.append(str(exc))
            except Exception:  # noqa: BLE001 - a parameter of the other task, a missing extra
                continue
        if asked and len(refusals) == asked:
            if _whole_numbers_written_as_decimals(family, param):
                written = ", ".join(f"{k}: {getattr(param, k)!r}" for k in ("low", "high"))
                return (
                    f"{name} takes whole numbers for {param.name} (its default range is of "
                    f"integers), but {written} make a range of decimals, and {value!r} is "
                    f"refused; give whole-number bounds (for example low: "
                    f"{math.ceil(param.low or 0)}, high: {math.floor(param.high or 0)})."
                )
            return (
                f"{name} does not accept {value!r}: {refusals[0]} Change it in the spec "
                "(`tuneops families` lists each family's default space)."
            )
    return None


def refuses_beyond(family: str, name: str, bound: float, side: str, *, integer: bool) -> bool:
    """Whether the estimator of ``family`` refuses every value just beyond ``bound`` of its
    parameter ``name`` (``side``: ``lower`` or ``upper``): a range that cannot be widened there
    (``min_samples_leaf`` below 1, ``max_features`` above 1.0). False when unknown."""
    if family not in FAMILIES:
        return False
    if integer:
        value: float = bound - 1 if side == "lower" else bound + 1
    else:
        step = abs(bound) * 0.1 or 1e-3
        value = bound - step if side == "lower" else bound + step
    fixed = Param(name=name, kind="fixed", value=int(value) if integer else float(value))
    try:
        return _refused_value(family, fixed) is not None
    except Exception:  # noqa: BLE001 - an estimator that cannot be built here: not known
        return False


def _whole_numbers_written_as_decimals(family: Any, param: Param) -> bool:
    """A float range for a parameter whose default range is of integers: one bound written as
    a decimal (``high: 20.5``) makes the whole range decimal."""
    defaults = [family.default_space(task).get(param.name) for task in family.tasks]
    return param.kind == "float" and any(d is not None and d.kind == "int" for d in defaults)


def _space(raw: Any, where: str) -> dict[str, Param]:
    if isinstance(raw, Mapping) and raw and all(isinstance(p, Param) for p in raw.values()):
        return dict(raw)  # parsed already
    return parse_space(raw, where)


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


# -- serving ---------------------------------------------------------------------------------------
SERVING_PATHS = ("row", "numpy", "batch", "records")


class Serving(_Model):
    """``serving``: how the model will be called in production, the path whose cost the
    latency objectives measure (see :mod:`tuneops.measure`)."""

    SECTION = "serving"

    path: Annotated[str, _name("serving path", SERVING_PATHS)] = "row"
    batch_size: Int1 = 256
    threads: Int1 = 1

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        return {} if raw is None else raw

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "batch_size": self.batch_size, "threads": self.threads}


# -- warm start -----------------------------------------------------------------------------------
class AutoSettings(_Model):
    """``warm_start.auto``: draw from the nearest past tasks of the knowledge base.

    Defaults chosen by the leave-one-dataset-out study in docs/benchmarks.md (issue 5).
    """

    SECTION = "warm_start.auto"

    neighbors: Int1 = 16
    max_trials: Int0 = 10
    max_share: Annotated[float, _check("a fraction in (0, 1]", _is_number(0, 1, low_open=True))] = (
        0.25
    )
    sources: tuple[str, ...] = ("shipped", "storage")
    strategy: Annotated[
        str, _check(f"one of {', '.join(AUTO_STRATEGIES)}", lambda v: v in AUTO_STRATEGIES)
    ] = "adaptive"

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if raw is True or raw == "auto":
            return {}
        if not isinstance(raw, Mapping):
            raise _expected("true, false or a mapping")
        return raw

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, (list, tuple)) or not raw or not all(_is_text(s) for s in raw):
            raise _expected("a list of 'shipped', 'storage' or knowledge-base file paths")
        return tuple(raw)

    def size(self, n_trials: int | None) -> int:
        """Warm-start trials for a budget: at most ``max_trials`` and ``max_share`` of it."""
        if n_trials is None:
            return self.max_trials
        return max(0, min(self.max_trials, math.floor(self.max_share * n_trials)))


class StudySource(_Model):
    """An earlier study to start from: its best trial or its Pareto front."""

    study: Text
    take: Annotated[str, _check("best or pareto", lambda v: v in ("best", "pareto"))] = "pareto"

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            return {"study": raw}
        if not isinstance(raw, Mapping):
            raise _expected("a study name or {study: NAME, take: best|pareto}")
        return raw

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "take": self.take}


def _params_list(raw: Any) -> Any:
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not all(isinstance(p, Mapping) for p in raw):
        raise _expected("a list of {param: value} mappings")
    return tuple(_freeze(p) for p in raw)


class WarmStart(_Model):
    """The ``warm_start`` section: which configurations a new study tries first.

    See :mod:`tuneops.knowledge.warm_start` for what each source does. ``warm_start: auto`` is
    short for ``{auto: true}``.
    """

    SECTION = "warm_start"

    params: Annotated[
        tuple[SkipValidation[Mapping[str, Any]], ...], BeforeValidator(_params_list)
    ] = ()
    studies: tuple[StudySource, ...] = ()
    auto: AutoSettings | None = None
    out_of_space: Annotated[str, _check("error or clip", lambda v: v in ("error", "clip"))] = (
        "error"
    )

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if raw is None or raw is False:
            return {}
        if raw is True or raw == "auto":
            return {"auto": True}
        if not isinstance(raw, Mapping):
            raise _expected(f"'auto' or a mapping with keys {', '.join(cls.spec_keys())}")
        return raw

    @field_validator("studies", mode="before")
    @classmethod
    def _studies(cls, raw: Any) -> Any:
        if raw is None:
            return ()
        if isinstance(raw, str):
            return (raw,)
        if not isinstance(raw, (list, tuple)):
            raise _expected("a list of study names")
        return raw

    @field_validator("auto", mode="before")
    @classmethod
    def _auto(cls, raw: Any) -> Any:
        return None if raw is None or raw is False else raw

    @property
    def empty(self) -> bool:
        return not self.params and not self.studies and self.auto is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.params:
            out["params"] = [_thaw(p) for p in self.params]
        if self.studies:
            out["studies"] = [s.to_dict() for s in self.studies]
        if self.auto is not None:
            out["auto"] = self.auto.to_dict() or True
        if self.out_of_space != "error":
            out["out_of_space"] = self.out_of_space
        return out


# -- monitor --------------------------------------------------------------------------------------
#: ``monitor.alerts.on``: what can raise an alert: monitoring decisions, an SLO breach, and the
#: two champion changes (:mod:`tuneops.ops.alerts` takes it from here).
ALERT_KINDS = ("warn", "retune", "slo", "promote", "rollback")


def _is_int_in(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _in(low: float, high: float) -> Any:
    return _check(f"a number in [{low:g}, {high:g}]", _is_number(low, high))


def _int_in(low: int, high: int) -> Any:
    return _check(f"an integer in [{low}, {high}]", _is_int_in(low, high))


class _Settings(_Model):
    """A nested ``monitor`` subsection: a mapping (``null`` gives the defaults)."""

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            raise _expected(f"a mapping with keys {', '.join(cls.spec_keys())}")
        return raw

    def full_dict(self) -> dict[str, Any]:
        """Every setting, defaults included."""
        return {name: _thaw(getattr(self, name)) for name in type(self).model_fields}


class VerifySettings(_Settings):
    """``monitor.verify``: the staging gate (:class:`tuneops.ops.verify.VerifyConfig`).

    ``n_folds: 5`` x ``n_repeats: 3`` repeated CV (the seed's production verification, 5-10
    folds), ``alpha: 0.05`` for every interval, ``max_regression: 0.0`` tolerated loss against
    the champion at the interval's lower bound, ``concurrency: 4`` threads sending
    ``n_requests: 200`` calls of ``rows: 1`` rows each.
    """

    SECTION = "monitor.verify"
    KEY_KIND = "verify setting"

    n_folds: Annotated[int, _int_in(2, 20)] = 5
    n_repeats: Annotated[int, _int_in(1, 50)] = 3
    alpha: Annotated[float, _in(1e-4, 0.5)] = 0.05
    max_regression: NonNegative = 0.0
    concurrency: Annotated[int, _int_in(1, 256)] = 4
    n_requests: Annotated[int, _int_in(20, 1_000_000)] = 200
    rows: Annotated[int, _int_in(1, 100_000)] = 1


_PositiveMs = Annotated[
    float, _check("a number > 0 (or null: unchecked)", _is_number(0, low_open=True))
]


class SLOSettings(_Settings):
    """``monitor.slo``: service-level objectives of the served model
    (:class:`tuneops.ops.live.SLOConfig`).

    Latency limits (ms, server side), ``max_error_rate`` and ``min_rps``: null means unchecked.
    ``window_s: 300`` of traffic judged; ``min_requests: 30`` below which a version is not
    judged; ``probation_s: 3600`` after a promotion during which an SLO breach rolls back;
    ``alpha: 0.05`` the tests' level.
    """

    SECTION = "monitor.slo"
    KEY_KIND = "SLO setting"

    latency_p50_ms: _PositiveMs | None = None
    latency_p95_ms: _PositiveMs | None = None
    latency_p99_ms: _PositiveMs | None = None
    max_error_rate: Unit | None = None
    min_rps: _PositiveMs | None = None
    window_s: Annotated[float, _check("a number >= 1", _is_number(1))] = 300.0
    min_requests: Int1 = 30
    probation_s: NonNegative = 3600.0
    alpha: Annotated[float, _in(1e-6, 0.5)] = 0.05


class LiveSettings(_Settings):
    """``monitor.live``: when a shadow or canary challenger is promoted or withdrawn
    (:class:`tuneops.ops.live.LivePolicy`).

    ``metric: null`` (the champion's monitored metric), ``alpha: 0.05`` for the gain's bootstrap
    interval, ``margin: 0.0`` its lower bound must exceed, ``min_labelled: 100`` labelled rows per
    side, ``n_boot: 1000`` resamples, ``auto: true`` applies decisions (false: record and alert).
    """

    SECTION = "monitor.live"
    KEY_KIND = "live setting"

    metric: Annotated[str, _name("monitored metric", MONITORED_METRICS)] | None = None
    alpha: Annotated[float, _in(1e-6, 0.5)] = 0.05
    margin: NonNegative = 0.0
    min_labelled: Int2 = 100
    n_boot: Annotated[int, _check("an integer >= 100", _is_int(100))] = 1000
    auto: Flag = True


#: ``monitor.alerts.webhook: ${NAME}``: the URL is read from the environment when an alert is
#: sent, so a secret in it (a Slack path, a ?token=) stays out of specs, the registry and the
#: dashboard.
WEBHOOK_FROM_ENV = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")


def webhook_problem(url: Any) -> str | None:
    """What is wrong with a ``monitor.alerts.webhook`` value (None: nothing)."""
    if isinstance(url, str) and WEBHOOK_FROM_ENV.match(url):
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return (
            "expected an http:// or https:// URL (or ${VARIABLE} to read it from the environment)"
        )
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "expected a URL without spaces or control characters (encode a space as %20)"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in 0-65535
    except ValueError as exc:
        return f"expected a well-formed URL ({exc})"
    if not parts.hostname:
        return "expected a URL with a host name"
    if "@" in parts.netloc:
        return (
            "expected a URL without user:password@ (it is not sent as a login, and the copy the "
            "registry keeps is masked); put the service's token where it documents it, and "
            "the URL in the environment: webhook: ${ALERT_WEBHOOK}"
        )
    return None


def _is_url(v: Any) -> bool:
    return webhook_problem(v) is None


def _command(raw: Any) -> Any:
    if raw is None or (isinstance(raw, str) and raw.strip()):
        return raw
    if isinstance(raw, (list, tuple)) and raw and all(_is_text(c) for c in raw):
        return tuple(raw)
    raise _expected("a command line: a string or a non-empty list of strings")


def _kinds(raw: Any) -> Any:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, (list, tuple)):
        raise _expected(f"a list of {', '.join(ALERT_KINDS)}")
    for i, kind in enumerate(raw):
        if kind not in ALERT_KINDS:
            raise _problem(unknown_name("alert kind", kind, ALERT_KINDS), at=f"[{i}]")
    return tuple(raw)


class AlertSettings(_Settings):
    """``monitor.alerts``: a webhook (HTTP POST, JSON body) and/or a command (the JSON on its
    standard input) told about the kinds in ``on``; ``timeout_s: 5`` per delivery
    (:class:`tuneops.ops.alerts.AlertConfig`)."""

    SECTION = "monitor.alerts"
    KEY_KIND = "alert setting"

    webhook: (
        Annotated[
            str,
            _check("an http:// or https:// URL without user:password@, or ${VARIABLE}", _is_url),
        ]
        | None
    ) = None
    command: Annotated[str | tuple[str, ...] | None, BeforeValidator(_command)] = None
    on: Annotated[tuple[str, ...], BeforeValidator(_kinds)] = ALERT_KINDS
    timeout_s: Annotated[
        float, _check("seconds in (0, 300]", _is_number(0, 300, low_open=True))
    ] = 5.0

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        return yaml_on_key(raw)


def yaml_on_key(raw: Any) -> Any:
    """``raw`` with the key ``True`` read as ``"on"``: YAML 1.1 (PyYAML) reads an unquoted
    ``on:`` key as the boolean true, so ``alerts: {on: [warn]}`` arrives as ``{True: [...]}``."""
    if isinstance(raw, Mapping) and any(k is True for k in raw) and "on" not in raw:
        return {("on" if k is True else k): v for k, v in raw.items()}
    return raw


class Monitor(_Model):
    """Thresholds of monitoring and re-tuning; the spec's ``monitor`` section.

    Defaults and their anchors:

    * ``alpha: 0.05`` - p-value threshold of each drift test after correction (Evidently's
      default per-column tests use p < 0.05).
    * ``correction: bh`` - Benjamini-Hochberg over the features; ``bonferroni`` or ``none``.
    * ``drift_share: 0.5`` - share of drifted features that means the dataset drifted
      (Evidently's DatasetDriftMetric default).
    * ``psi_warn: 0.1``, ``psi_retune: 0.25`` - PSI practice: < 0.1 stable, 0.1-0.25 moderate,
      >= 0.25 major.
    * ``metric: null`` - the monitored metric (default: the spec's first objective that can be
      computed from predictions alone, else accuracy / r2).
    * ``max_metric_drop: 0.05`` - tolerated drop of the metric, in its units.
    * ``min_rows: 50`` - smaller batches are refused (PSI over 10 bins is noise below that).
    * ``retune_trials: 12`` - trials of a re-tuning study; ``holdout: 0.3`` - share of the recent
      data kept aside to compare challenger and champion; ``margin: 0.01`` - how much better the
      challenger must be on that data (and better with confidence: its gain's paired bootstrap
      interval at 1 - ``alpha`` above 0); ``recent_batches: 3`` - batches a simulation re-tunes on;
      ``cooldown: 2`` - batches after a re-tuning before ``--auto-retune`` re-tunes again.
    * ``refresh_rows: 2000`` - after a re-tuning promotes a challenger fitted on the few rows
      that showed a change, each later ``ok`` batch with labels refits the champion's
      configuration on the labelled rows since the change (the newest ``refresh_rows``; no
      search, one fit) and promotes the refit when it scores at least as well as the champion
      on that batch, which neither was fitted on (:func:`tuneops.ops.retune.refresh`). 0: off.
    * ``artifact_dir: tuneops-out/registry`` - where model versions are saved (path + sha256
      are recorded in the registry).
    * ``psi_floor: 0.1`` - a feature (or the predictions) counts as drifted only when its
      corrected p < ``alpha`` *and* its PSI net of its sampling noise (``(bins - 1)(1/n +
      1/m)`` for a batch of n rows against m reference rows, :func:`tuneops.ops.drift.psi_noise`)
      >= this: with enough rows a test finds shifts too small to matter, PSI practice calls
      < 0.1 stable, and a small batch's PSI is inflated by noise alone (0.05 at 200 rows).
    * ``verify``, ``slo``, ``live``, ``alerts`` - the staging gate, service-level objectives,
      live promotion/rollback and alerts (:class:`VerifySettings`, :class:`SLOSettings`,
      :class:`LiveSettings`, :class:`AlertSettings`).
    """

    SECTION = "monitor"
    KEY_KIND = "monitor setting"

    alpha: Probability = 0.05
    correction: Annotated[str, _name("correction", CORRECTIONS)] = "bh"
    drift_share: Probability = 0.5
    psi_warn: NonNegative = 0.1
    psi_retune: NonNegative = 0.25
    metric: Annotated[str, _name("monitored metric", MONITORED_METRICS)] | None = None
    max_metric_drop: NonNegative = 0.05
    min_rows: Int10 = 50
    retune_trials: Int1 = 12
    holdout: Probability = 0.3
    margin: NonNegative = 0.01
    recent_batches: Int1 = 3
    cooldown: Int0 = 2
    refresh_rows: Int0 = 2000
    artifact_dir: Annotated[str, _check("a path", _is_text)] = "tuneops-out/registry"
    psi_floor: NonNegative = 0.1
    verify: VerifySettings = VerifySettings()
    slo: SLOSettings = SLOSettings()
    live: LiveSettings = LiveSettings()
    alerts: AlertSettings = AlertSettings()

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if not isinstance(raw, Mapping):
            raise _expected("a mapping of thresholds")
        return raw

    @classmethod
    def from_raw(cls, raw: Any, field_name: str | None = "monitor") -> Monitor:
        """Validate a ``monitor`` mapping (None gives the defaults).

        Raises:
            SpecError: an unknown key, a value of the wrong type, or out of range.
        """
        if raw is None:
            return cls()
        return super().from_raw(raw, field_name)

    @classmethod
    def from_spec(cls, spec: Any) -> Monitor:
        return cls.from_raw(getattr(spec, "monitor", None))

    def to_dict(self) -> dict[str, Any]:
        """Every threshold, defaults included (what a registry version records); a nested
        section (``verify``, ``slo``, ``live``, ``alerts``) only when it differs from its
        defaults, so a spec without them reads back as it was written."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, _Settings):
                if value != type(value)():
                    out[name] = value.to_dict()
            else:
                out[name] = value
        return out


# -- the spec --------------------------------------------------------------------------------------
_SEARCH_KEYS = Search.spec_keys()


class Spec(_Model):
    """A validated tuning job. Build it with :func:`load_spec`.

    The sections are ``data``, ``model``, ``objectives``, ``constraints``, ``selection``,
    ``search``, ``storage``, ``output_dir``, ``warm_start`` and ``monitor``; the search fields
    and the model's families and space are also attributes of the spec (``spec.n_trials``,
    ``spec.pruner``, ``spec.families``).
    """

    study: Annotated[
        str,
        _check(
            "a name of letters, digits, '_', '-' or '.'",
            lambda v: isinstance(v, str) and bool(_STUDY_NAME.match(v)),
        ),
    ] = "tuneops"
    data: DataSpec
    model: ModelSpec
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()
    selection: Selection = Selection()
    search: Search = Search()
    storage: Annotated[str, _check("a storage URL or a file path", _is_text)] | None = Field(
        default=None, repr=False
    )
    output_dir: Annotated[str, _check("a directory path", _is_text)] | None = None
    warm_start: WarmStart | None = None
    monitor: Monitor | None = None
    serving: Serving | None = None
    # True when the spec wrote no objectives and got the default of its written task
    # (accuracy unless data.task says regression): a run whose data turns out a regression
    # takes r2 instead (:func:`for_task`), not a refusal over a metric the user never wrote.
    _objectives_defaulted: bool = PrivateAttr(default=False)

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if raw is None:
            return {"data": {}, "model": {}}
        if not isinstance(raw, Mapping):
            return raw  # pydantic: "spec: expected a mapping"
        raw = dict(raw)
        for key in ("data", "model", "search"):
            if raw.get(key) is None:
                raw[key] = {}
        if "objectives" not in raw:
            task = raw["data"].get("task") if isinstance(raw["data"], Mapping) else None
            raw["objectives"] = ["r2"] if task == "regression" else ["accuracy"]
        return raw

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, raw: Any) -> Any:
        if isinstance(raw, (str, Mapping)):
            raw = [raw]
        if not isinstance(raw, (list, tuple)) or not raw:
            raise _expected(
                "a non-empty list of metrics, for example [accuracy, latency_p95_ms]",
                hint=f"Valid metrics: {', '.join(METRICS)}.",
            )
        out: list[Any] = []
        for i, item in enumerate(raw):
            if isinstance(item, str):
                item = {"metric": item}
            if isinstance(item, Objective):
                item = item.to_dict()
            if not isinstance(item, Mapping) or not isinstance(item.get("metric"), str):
                out.append(item)  # the Objective model says what is wrong
                continue
            metric = METRICS.get(item["metric"])
            if metric is None:
                raise _problem(unknown_name("metric", item["metric"], METRICS), at=f"[{i}].metric")
            direction = item.get("direction", metric.direction)
            if direction in ("maximize", "minimize") and direction != metric.direction:
                raise _problem(
                    f"{metric.name} is better when it is {metric.direction[:-1]}ed, but the "
                    f"direction is {direction!r}; remove 'direction' or set it to "
                    f"{metric.direction}.",
                    at=f"[{i}]",
                )
            if any(isinstance(o, Mapping) and o.get("metric") == metric.name for o in out):
                raise _problem(f"metric {metric.name!r} is listed twice.", at=f"[{i}]")
            out.append({**item, "direction": direction})
        return out

    @field_validator("constraints", mode="before")
    @classmethod
    def _constraints(cls, raw: Any) -> Any:
        if raw is None:
            return ()
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, (list, tuple)):
            raise _expected("a list of expressions such as 'accuracy >= 0.9'")
        return tuple(
            c if isinstance(c, Constraint) else parse_constraint(c, f"constraints[{i}]")
            for i, c in enumerate(raw)
        )

    @field_validator("warm_start", mode="before")
    @classmethod
    def _warm_start(cls, raw: Any) -> Any:
        return None if raw is None or raw is False else raw

    @field_serializer("storage")
    def _masked(self, value: str | None) -> str | None:
        # model_dump() and model_dump_json() carry the masked URL too, as to_dict() does.
        return mask_url(value) if value else value

    @model_validator(mode="after")
    def _cross_checks(self) -> Spec:
        selection = _fit_selection(self.selection, self.metric_names)
        if selection is not self.selection:
            return self.model_copy(update={"selection": selection})
        return self

    # -- the flat attributes the rest of tuneops reads ------------------------------------------
    @property
    def families(self) -> tuple[str, ...]:
        return self.model.families

    @property
    def space(self) -> Mapping[str, Mapping[str, Param]]:
        return self.model.space

    @property
    def sampler(self) -> Component:
        return self.search.sampler

    @property
    def pruner(self) -> Component:
        return self.search.pruner

    @property
    def n_trials(self) -> int | None:
        return self.search.n_trials

    @property
    def timeout_s(self) -> float | None:
        return self.search.timeout_s

    @property
    def n_workers(self) -> int:
        return self.search.n_workers

    @property
    def cv_folds(self) -> int:
        return self.search.cv_folds

    @property
    def seed(self) -> int:
        return self.search.seed

    @property
    def backend(self) -> str:
        return self.search.backend

    @property
    def resources(self) -> tuple[tuple[str, float], ...]:
        return self.search.resources

    @property
    def storage_masked(self) -> str | None:
        """The storage URL with its password replaced by ``***`` (what :meth:`to_dict` carries)."""
        return mask_url(self.storage) if self.storage else self.storage

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def metric_names(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def is_multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def measured_metrics(self) -> list[str]:
        """Metrics every trial measures: objectives first, then constraint metrics."""
        names = list(self.metric_names)
        for c in self.constraints:
            if c.metric not in names:
                names.append(c.metric)
        return names

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (for worker processes) as its data, the real storage URL included.
        return (_validate, (Spec, self._raw(masked=False), ""))

    def replace(self, **changes: Any) -> Spec:
        """A copy with fields changed (top-level or ``search`` fields), validated again."""
        return load_spec(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data, as stored with its study; the storage password is masked."""
        return self._raw(masked=True)

    def _raw(self, *, masked: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "study": self.study,
            "data": self.data.to_dict(),
            "model": self.model.to_dict(),
            "objectives": [o.to_dict() for o in self.objectives],
            "constraints": [str(c) for c in self.constraints],
            "selection": self.selection.to_dict(),
            "search": self.search.to_dict(),
            "storage": self.storage_masked if masked else self.storage,
            "output_dir": self.output_dir,
        }
        if self.warm_start is not None:
            out["warm_start"] = self.warm_start.to_dict()
        if self.monitor is not None:
            out["monitor"] = self.monitor.to_dict()
        if self.serving is not None:
            out["serving"] = self.serving.to_dict()
        return out


_TOP_KEYS = Spec.spec_keys()


def load_spec(source: str | Path | Mapping[str, Any] | Spec, **overrides: Any) -> Spec:
    """Read and validate a spec from a YAML/TOML file, a dict, or a Spec.

    Args:
        source: path to ``.yaml``/``.yml``/``.toml``, a mapping, or a Spec.
        **overrides: top-level or ``search`` fields to replace (``n_trials=5``, ``storage=...``);
            None leaves a field as it is.

    Raises:
        SpecError: naming the field, what was expected and what was received.
    """
    default_name = "tuneops"
    if isinstance(source, Spec):
        if not any(v is not None for v in overrides.values()):
            return source
        raw: Any = source._raw(masked=False)
    elif isinstance(source, Mapping):
        raw = dict(source)
    elif not isinstance(source, (str, Path)):
        raise SpecError(
            f"spec: expected the path of a YAML or TOML file, a mapping or a Spec, received "
            f"{type(source).__name__} {source!r}."
        )
    else:
        path = Path(source)
        if path.is_dir():
            raise SpecError(
                f"spec path {str(path)!r} is a directory; pass the path of a YAML or TOML spec "
                "file."
            )
        if not path.is_file():
            raise SpecError(
                f"spec file {str(path)!r} does not exist; pass the path of a YAML or TOML spec."
            )
        raw = _read_file(path)
        default_name = re.sub(r"[^A-Za-z0-9_.\-]", "-", path.stem) or default_name
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise SpecError(
            f"spec: expected a mapping of sections, received {type(raw).__name__} {raw!r}."
        )
    raw = dict(raw)
    search = raw.get("search")
    search = dict(search) if isinstance(search, Mapping) else search
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, os.PathLike):  # output_dir=Path(...), storage=Path("x.journal")
            value = os.fspath(value)
        if key in _SEARCH_KEYS:
            if not isinstance(search, dict):
                search = {}
            search[key] = value.to_dict() if isinstance(value, _Model) else value
        elif key in _TOP_KEYS:
            raw[key] = value.to_dict() if isinstance(value, _Model) else value
        else:
            raise SpecError(unknown_name("override", key, _SEARCH_KEYS + _TOP_KEYS))
    raw["search"] = search
    raw["study"] = raw.get("study") or default_name
    defaulted = (
        source._objectives_defaulted if isinstance(source, Spec) else "objectives" not in raw
    ) and "objectives" not in overrides
    spec = _validate(Spec, raw, "")
    private = spec.__pydantic_private__  # (Spec is immutable)
    assert private is not None  # it declares a private attribute
    private["_objectives_defaulted"] = bool(defaulted)
    return spec


def for_task(spec: Spec, task: str) -> Spec:
    """``spec`` with the default objective of ``task`` when it wrote none (r2 for a regression
    found when the data loaded); else ``spec`` itself."""
    if spec._objectives_defaulted and task == "regression" and spec.metric_names == ["accuracy"]:
        raw = spec._raw(masked=False)
        raw["objectives"] = ["r2"]
        return _validate(Spec, raw, "")
    return spec


def _read_file(path: Path, what: str = "spec file") -> Any:
    if path.suffix not in (".yaml", ".yml", ".toml"):
        raise SpecError(
            f"{what} {str(path)!r}: expected a .yaml, .yml or .toml file, received {path.suffix!r}."
        )
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{what} {str(path)!r} cannot be read: {exc}.") from exc
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        raw = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:  # the message has line and column
        kind = path.suffix[1:].upper()
        raise SpecError(f"{what} {str(path)!r} is not valid {kind}: {exc}") from exc
    if _larger_than(raw, MAX_SPEC_VALUES):
        # YAML aliases share one object per anchor, so a 1 KB file of nested aliases expands to
        # billions of values when validated (it held 2.4 GB after a minute): refused here
        raise SpecError(
            f"{what} {str(path)!r}: more than {MAX_SPEC_VALUES:,} values once its YAML aliases "
            "(*name) are expanded; a spec is far smaller. Write the values out, or check for "
            "aliases nested in each other."
        )
    return raw


#: Values a spec file may hold with its YAML aliases expanded (a large spec holds hundreds).
MAX_SPEC_VALUES = 100_000


def _larger_than(value: Any, limit: int) -> bool:
    """Whether ``value`` holds more than ``limit`` values, counting each alias where it is
    used; stops counting at the limit."""
    stack, seen = [value], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(item, Mapping):
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def read_monitor_settings(path: str | Path) -> dict[str, Any]:
    """The ``monitor`` settings in a YAML or TOML file: the file is a ``monitor`` section, or
    a spec (its ``monitor`` section is read). Validated where they are stored
    (:meth:`tuneops.ops.registry.Registry.configure`).

    Raises:
        SpecError: the file cannot be read or parsed, or holds no mapping of settings.
    """
    path = Path(path)
    raw = _read_file(path, "settings file")
    if isinstance(raw, Mapping) and "monitor" in raw:
        raw = raw["monitor"]
    elif isinstance(raw, Mapping) and {"data", "model", "study"} & set(raw):
        raise SpecError(
            f"settings file {str(path)!r} is a spec without a monitor section; write the "
            "settings under monitor:, or in a file of their own (alpha, slo, alerts, ...)."
        )
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError(
            f"settings file {str(path)!r}: expected a mapping of monitor settings (alpha, slo, "
            f"alerts, ...) or a spec with a monitor section, received {raw!r}."
        )
    return dict(raw)


def dump_spec(spec: Spec, path: str | Path) -> Path:
    """Write a spec as YAML or TOML (by suffix); ``load_spec`` reads it back equal.

    The storage password is masked, as in :meth:`Spec.to_dict`.
    """
    path = Path(path)
    data = spec.to_dict()
    if path.suffix == ".toml":
        tomli_w = require("tomli_w", "toml", "Writing TOML specs")
        path.write_text(tomli_w.dumps(_drop_none(data)))
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _drop_none(value: Any) -> Any:  # TOML has no null
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value
