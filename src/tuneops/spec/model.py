"""``model``: the families searched and their search spaces, checked against the estimators'
own parameter validation when the spec loads."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydantic import (
    SkipValidation,
)

from tuneops.errors import unknown_name
from tuneops.families import FAMILIES
from tuneops.space import Param, parse_space, space_to_dict
from tuneops.spec._base import _expected, _Model, _problem


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
