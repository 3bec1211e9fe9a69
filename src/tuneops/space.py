"""Search spaces: spec parameters <-> Optuna distributions, with conditional parameters.

A parameter in a spec is one of::

    n_estimators: {type: int, low: 10, high: 500, log: true}
    max_features: {low: 0.1, high: 1.0}              # float: bounds are floats
    kernel: [rbf, poly]                              # categorical shorthand
    degree: {type: int, low: 2, high: 5, when: {kernel: poly}}   # conditional
    bootstrap: {value: true}                         # fixed, not searched

A conditional parameter is suggested only when the parameter it names has (one of) the
given value(s); the parent must come earlier in the space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from tuneops.errors import SpecError

__all__ = ["Param", "parse_space", "suggest_params", "space_to_dict", "distributions"]

_KINDS = ("int", "float", "categorical", "fixed")


@dataclass(frozen=True)
class Param:
    """One searchable (or fixed) hyperparameter."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    value: Any = None
    when: tuple[tuple[str, tuple[Any, ...]], ...] = field(default=())

    def distribution(self) -> optuna.distributions.BaseDistribution:
        low, high = self.low, self.high
        if self.kind == "int":
            assert low is not None and high is not None  # parse_space sets both
            return optuna.distributions.IntDistribution(
                int(low), int(high), log=self.log, step=int(self.step or 1)
            )
        if self.kind == "float":
            assert low is not None and high is not None
            return optuna.distributions.FloatDistribution(
                float(low), float(high), log=self.log, step=self.step
            )
        if self.kind == "categorical":
            return optuna.distributions.CategoricalDistribution(self.choices)
        raise ValueError(f"fixed parameter {self.name!r} has no distribution")

    def is_active(self, chosen: Mapping[str, Any]) -> bool:
        return all(parent in chosen and chosen[parent] in values for parent, values in self.when)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind}
        if self.kind in ("int", "float"):
            out.update(low=self.low, high=self.high)
            if self.log:
                out["log"] = True
            if self.step is not None:
                out["step"] = self.step
        elif self.kind == "categorical":
            out["choices"] = list(self.choices)
        else:
            out = {"value": self.value}
        if self.when:
            out["when"] = {p: (list(v) if len(v) > 1 else v[0]) for p, v in self.when}
        return out


def _number(raw: Any, where: str, key: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{where}.{key}: expected a finite number, received {value!r}; set {key}.")
    return value


def parse_param(name: str, raw: Any, where: str) -> Param:
    """Parse one parameter definition; ``where`` names the spec field for messages."""
    where = f"{where}.{name}"
    if isinstance(raw, list):
        if not raw:
            raise SpecError(f"{where}: expected a non-empty list of choices, received [].")
        return Param(name, "categorical", choices=tuple(raw))
    if not isinstance(raw, Mapping):
        return Param(name, "fixed", value=raw)
    unknown = set(raw) - {"type", "low", "high", "log", "step", "choices", "value", "when"}
    if unknown:
        raise SpecError(
            f"{where}: unknown key(s) {sorted(unknown)}; expected type, low, high, log, step, "
            "choices, value, when."
        )
    when = _parse_when(raw.get("when"), where)
    if "value" in raw:
        return Param(name, "fixed", value=raw["value"], when=when)
    if "choices" in raw:
        choices = raw["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpecError(f"{where}.choices: expected a non-empty list, received {choices!r}.")
        return Param(name, "categorical", choices=tuple(choices), when=when)
    low, high = _number(raw, where, "low"), _number(raw, where, "high")
    kind = raw.get("type") or ("int" if isinstance(low, int) and isinstance(high, int) else "float")
    if kind not in ("int", "float"):
        raise SpecError(f"{where}.type: expected int, float or categorical, received {kind!r}.")
    if low > high:
        raise SpecError(f"{where}: expected low <= high, received low={low}, high={high}.")
    log = bool(raw.get("log", False))
    if log and low <= 0:
        raise SpecError(f"{where}: a log scale needs low > 0, received low={low}.")
    step = raw.get("step")
    if step is not None:
        step = _number(raw, where, "step")
        if step <= 0 or log:
            raise SpecError(f"{where}.step: expected a positive step without log, received {step}.")
    if kind == "int" and (int(low) != low or int(high) != high):
        raise SpecError(f"{where}: an int parameter needs integer bounds, received {low}..{high}.")
    return Param(name, kind, low=low, high=high, log=log, step=step, when=when)


def _parse_when(raw: Any, where: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError(
            f"{where}.when: expected a mapping like {{parent: value}} or {{parent: [v1, v2]}}, "
            f"received {raw!r}."
        )
    return tuple((str(k), tuple(v) if isinstance(v, list) else (v,)) for k, v in raw.items())


def parse_space(raw: Any, where: str) -> dict[str, Param]:
    """Parse a mapping of parameter definitions, checking conditional parents exist earlier."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: expected a mapping of parameter names, received {raw!r}.")
    space: dict[str, Param] = {}
    for name, definition in raw.items():
        param = parse_param(str(name), definition, where)
        for parent, _ in param.when:
            if parent not in space:
                raise SpecError(
                    f"{where}.{name}.when: parent parameter {parent!r} must be defined before "
                    f"{name!r}; defined so far: {sorted(space) or 'none'}."
                )
        space[param.name] = param
    return space


def parents_first(space: Mapping[str, Param]) -> dict[str, Param]:
    """``space`` in its own order, except that a conditional parameter comes after the
    parameters its ``when`` names: suggested before its parent, it was never active (a spec's
    ``max_depth: {when: {criterion: gini}}`` kept the default space's place of ``max_depth``,
    ahead of ``criterion``, and no trial ever had a ``max_depth``)."""
    ordered: dict[str, Param] = {}
    pending = list(space.items())
    while pending:
        waiting = []
        for name, param in pending:
            if all(parent in ordered or parent not in space for parent, _ in param.when):
                ordered[name] = param
            else:
                waiting.append((name, param))
        if len(waiting) == len(pending):  # a cycle (parse_space refuses one): as they are
            ordered.update(waiting)
            break
        pending = waiting
    return ordered


def space_to_dict(space: Mapping[str, Param]) -> dict[str, Any]:
    return {name: p.to_dict() for name, p in space.items()}


def suggest_params(
    trial: optuna.trial.BaseTrial, space: Mapping[str, Param], prefix: str = ""
) -> dict[str, Any]:
    """Suggest every active parameter of ``space``; returns ``{name: value}`` without prefix."""
    chosen: dict[str, Any] = {}
    for name, param in space.items():
        if not param.is_active(chosen):
            continue
        if param.kind == "fixed":
            chosen[name] = param.value
        else:
            chosen[name] = _suggest(trial, prefix + name, param)
    return chosen


def _suggest(trial: optuna.trial.BaseTrial, name: str, param: Param) -> Any:
    low, high = param.low, param.high
    if param.kind == "int":
        assert low is not None and high is not None  # parse_space sets both
        return trial.suggest_int(
            name, int(low), int(high), step=int(param.step or 1), log=param.log
        )
    if param.kind == "float":
        assert low is not None and high is not None
        return trial.suggest_float(name, low, high, step=param.step, log=param.log)
    return trial.suggest_categorical(name, list(param.choices))


def distributions(space: Mapping[str, Param], prefix: str = "") -> dict[str, Any]:
    return {prefix + n: p.distribution() for n, p in space.items() if p.kind != "fixed"}
