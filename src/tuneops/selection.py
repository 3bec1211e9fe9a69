"""Pareto front, constraints and selection policies: which trial goes to production.

Pure functions on plain values, so re-selection with other constraints needs no re-run and
tests can compare against brute force.

Policies (on the feasible Pareto front, each objective scaled to [0, 1] over the front with 0
the best):

* ``knee`` (default): the member closest to the ideal point (best of every objective) in the
  scaled space - the balanced trade-off a person would point at.
* ``lexicographic``: best on the first priority objective; ties (within ``tolerance`` on the
  scaled axis) go to the next objective, and so on.
* ``weighted``: the smallest weighted sum of scaled objectives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from tuneops import _study
from tuneops.errors import NoFeasibleTrial, SpecError
from tuneops.pareto import pareto_mask
from tuneops.spec import Constraint, Objective, Selection, _selection, load_spec, parse_constraint

__all__ = ["Candidate", "Choice", "pareto_mask", "candidates_from_trials", "select_trial", "reselect"]


@dataclass(frozen=True)
class Candidate:
    """A completed trial as selection sees it."""

    number: int
    values: tuple[float, ...]
    metrics: Mapping[str, float]
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    """The outcome of selection."""

    selected: Candidate
    front: tuple[Candidate, ...]  # feasible Pareto front
    n_feasible: int
    n_candidates: int
    policy: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "selected_trial": self.selected.number,
            "policy": self.policy,
            "pareto_front": [c.number for c in self.front],
            "n_feasible": self.n_feasible,
            "n_complete": self.n_candidates,
        }


def candidates_from_trials(trials: Sequence[FrozenTrial], metric_names: Sequence[str]) -> list[Candidate]:
    """COMPLETE trials as candidates; metrics default to the objective values by name."""
    out = []
    for t in trials:
        if t.state != TrialState.COMPLETE or t.values is None:
            continue
        metrics = dict(zip(metric_names, t.values))
        metrics.update(t.user_attrs.get(_study.METRICS, {}))
        out.append(Candidate(t.number, tuple(t.values), metrics, dict(t.params)))
    return out


def _violations(c: Candidate, constraints: Sequence[Constraint]) -> dict[str, float]:
    return {str(k): k.violation(c.metrics) for k in constraints}


def _scaled(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    loss = values * signs
    lo, hi = loss.min(axis=0), loss.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (loss - lo) / span


def select_trial(
    candidates: Sequence[Candidate],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint] = (),
    selection: Selection = Selection(),
) -> Choice:
    """Choose one trial from the feasible Pareto front.

    Raises:
        SpecError: a constraint names a metric the trials did not measure.
        NoFeasibleTrial: no complete trial, or none meets the constraints; the message names
            the closest trial and the constraint it misses.
    """
    if not candidates:
        raise NoFeasibleTrial("no trial completed, so there is nothing to select; run more trials.")
    measured = set(candidates[0].metrics)
    for k in constraints:
        if k.metric not in measured:
            raise SpecError(
                f"constraint '{k}' uses {k.metric!r}, which this study did not measure; measured "
                f"metrics: {', '.join(sorted(measured))}. Add it to the spec's objectives or "
                "constraints and run again."
            )
    violations = [_violations(c, constraints) for c in candidates]
    feasible = [c for c, v in zip(candidates, violations) if all(x <= 0 for x in v.values())]
    if not feasible:
        raise NoFeasibleTrial(_closest_message(candidates, violations, constraints))
    directions = [o.direction for o in objectives]
    values = np.array([c.values for c in feasible], dtype=float)
    front = [c for c, keep in zip(feasible, pareto_mask(values, directions)) if keep]
    front.sort(key=lambda c: c.number)
    chosen = _apply_policy(front, objectives, selection)
    return Choice(chosen, tuple(front), len(feasible), len(candidates), selection.policy)


def _apply_policy(front: list[Candidate], objectives: Sequence[Objective], selection: Selection) -> Candidate:
    names = [o.metric for o in objectives]
    scaled = _scaled(np.array([c.values for c in front], dtype=float), [o.direction for o in objectives])
    if selection.policy == "weighted":
        weights = dict(selection.weights) or {n: 1.0 for n in names}
        w = np.array([weights.get(n, 0.0) for n in names])
        return front[int(np.argmin(scaled @ w))]
    if selection.policy == "lexicographic":
        order = list(selection.priority) + [n for n in names if n not in selection.priority]
        alive = np.arange(len(front))
        for name in order:
            column = scaled[alive, names.index(name)]
            alive = alive[column <= column.min() + selection.tolerance + 1e-12]
        return front[int(alive[0])]
    # knee: closest to the ideal point; ties go to the earlier trial
    return front[int(np.argmin(np.linalg.norm(scaled, axis=1)))]


def _closest_message(
    candidates: Sequence[Candidate], violations: Sequence[dict[str, float]], constraints: Sequence[Constraint]
) -> str:
    scale = {
        str(k): max(abs(k.threshold), 1e-9) for k in constraints
    }
    totals = [sum(max(0.0, x) / scale[n] for n, x in v.items()) for v in violations]
    best = int(np.argmin(totals))
    c, v = candidates[best], violations[best]
    missed = [
        f"'{n}' (it has {next(k.metric for k in constraints if str(k) == n)}="
        f"{c.metrics[next(k.metric for k in constraints if str(k) == n)]:.4g})"
        for n, x in v.items() if x > 0
    ]
    return (
        f"no trial meets the constraints ({len(candidates)} complete). The closest is trial "
        f"{c.number}, which misses {', '.join(missed)}. Relax the constraint, widen the search "
        "space, or run more trials; re-select without re-running with "
        "`tuneops select STUDY --constraint ...`."
    )


# -- a study ----------------------------------------------------------------------------------------
def reselect(
    study: optuna.Study,
    *,
    constraints: Sequence[str] | None = None,
    policy: str | Selection | None = None,
) -> Choice:
    """Select again from a finished study with other constraints or policy; nothing re-runs.

    Raises:
        SpecError: malformed constraint or a metric the study did not measure.
        NoFeasibleTrial: nothing meets the constraints (the message names the closest trial).
    """
    objectives = [Objective(o.metric, o.direction) for o in _study.objectives(study)]
    raw = _study.spec_record(study)
    spec = load_spec(raw) if raw else None
    if constraints is None:
        parsed = list(spec.constraints) if spec else [
            parse_constraint(c, builtin_only=False) for c in _study.constraint_texts(study)
        ]
    else:
        parsed = [
            parse_constraint(c, "--constraint", builtin_only=False) if isinstance(c, str) else c
            for c in constraints
        ]
    if isinstance(policy, Selection):
        selection = policy
    elif policy is not None:
        selection = _selection(policy, tuple(objectives))
    else:
        selection = spec.selection if spec else Selection()
    return select_trial(
        candidates_from_trials(study.get_trials(deepcopy=False), [o.metric for o in objectives]),
        objectives, parsed, selection,
    )
