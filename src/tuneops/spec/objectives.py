"""``objectives``, ``constraints`` and ``selection``: what is optimised, what must hold, and how
one trial is chosen from the feasible Pareto front."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import (
    field_validator,
    model_validator,
)

from tuneops.errors import SpecError
from tuneops.metrics import get_metric
from tuneops.spec._base import (
    Finite,
    NonNegative,
    Text,
    _amounts,
    _expected,
    _Model,
    _name,
    _problem,
    _validate,
    refused_since,
)

POLICIES = ("knee", "lexicographic", "weighted")


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


def check_constraints(constraints: Sequence[Constraint], field: str = "constraints") -> None:
    """Refuse constraints that repeat or contradict each other; one bound per metric and
    direction, and a lower and an upper bound on one metric (a range) that leave a value.

    Two bounds on a metric in one direction (``latency_p95_ms <= 5`` and ``latency_p95_ms <=
    10``) were both kept, the tighter deciding while the other read as if it applied; a range
    that leaves no value (``accuracy >= 0.9`` and ``accuracy <= 0.8``) ran the whole budget
    before "no trial meets the constraints".

    Raises:
        SpecError: naming both entries (``field[i]``), what was expected and what to do.
    """
    seen: dict[tuple[str, bool], int] = {}  # (metric, is a lower bound) -> index
    for j, c in enumerate(constraints):
        lower = c.op in (">=", ">")
        i = seen.get((c.metric, lower))
        if i is not None:
            first = constraints[i]
            if first.threshold == c.threshold:
                alike = (
                    "" if first.op == c.op
                    else " (strict and non-strict comparisons are treated alike)"
                )
                refused_since(
                    f"{field}[{j}]: '{c}' repeats {field}[{i}] '{first}'{alike}; remove one."
                )
                continue
            tighter = max if lower else min
            keep = first if tighter(first.threshold, c.threshold) == first.threshold else c
            refused_since(
                f"{field}[{j}]: '{c}' and {field}[{i}] '{first}' are both "
                f"{'lower' if lower else 'upper'} bounds on {c.metric}; expected one bound per "
                f"metric and direction. Keep the one you mean (together they mean '{keep}')."
            )
            continue
        seen[(c.metric, lower)] = j
        i = seen.get((c.metric, not lower))
        if i is not None:
            low, high = (c, constraints[i]) if lower else (constraints[i], c)
            if low.threshold > high.threshold:
                refused_since(
                    f"{field}[{j}]: '{c}' and {field}[{i}] '{constraints[i]}' leave no value of "
                    f"{c.metric} that meets both; expected a lower bound at most the upper bound "
                    f"({low.threshold:g} > {high.threshold:g}). Change one of the thresholds."
                )


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
        lower = op in (">=", ">")
        if (lower and threshold <= low) or (not lower and threshold >= high):
            strict = (
                " (strict and non-strict comparisons are treated alike: a value at the "
                "threshold meets it)"
                if op in (">", "<")
                else ""
            )
            refused_since(
                f"{field}: every model meets {text!r}{strict}: {metric} takes values from "
                f"{low:g} to {high:g}, so it constrains nothing. Remove it, or give a threshold "
                "inside that range."
            )
    return Constraint(metric=metric, op=op, threshold=threshold)


def _refused(message: str, at: str) -> None:
    """A selection setting refused since an earlier tuneops stored it (see refused_since)."""
    refused_since(f"selection.{at}: {message}", _problem(message, at=at))


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

    @model_validator(mode="after")
    def _meaningful(self) -> Selection:
        # A setting of another policy than the one chosen was ignored without a word (weights
        # under the default knee: the user meant weighted and got the knee).
        for name, value, policy in (
            ("weights", self.weights, "weighted"),
            ("priority", self.priority, "lexicographic"),
            ("tolerance", self.tolerance, "lexicographic"),
        ):
            if value and self.policy != policy:
                _refused(
                    f"read by policy {policy!r} only, but the policy is {self.policy!r}; set "
                    f"policy: {policy}, or remove {name}.",
                    name,
                )
        repeated = sorted({p for p in self.priority if self.priority.count(p) > 1})
        if repeated:
            _refused(
                f"{repeated[0]!r} is listed twice in {list(self.priority)!r}; list each "
                "objective once, most important first.",
                "priority",
            )
        if self.weights and not any(w > 0 for _, w in self.weights):
            _refused(
                f"expected at least one weight > 0, received {dict(self.weights)!r}: with every "
                "weight 0 every trial scores the same and the choice is arbitrary.",
                "weights",
            )
        return self

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


def selection_for(raw: Any, objectives: tuple[Objective, ...]) -> Selection:
    """The ``selection`` field for the objectives (also used by :func:`tuneops.tuning.tune`)."""
    selection = raw if isinstance(raw, Selection) else _validate(Selection, raw, "selection")
    return _fit_selection(selection, [o.metric for o in objectives])
