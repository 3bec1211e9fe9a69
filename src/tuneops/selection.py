"""Pareto front, constraints and selection policies: which trial goes to production.

Pure functions on plain values, so re-selection with other constraints needs no re-run and
tests can compare against brute force.

Policies (on the feasible Pareto front, each objective scaled to [0, 1] over the front with 0
the best):

* ``knee`` (default): the member closest to the ideal point (best of every objective) in the
  scaled space - the balanced trade-off a person would point at.
* ``lexicographic``: best on the first priority objective; ties (within ``tolerance`` on the
  scaled axis) go to the next objective, and so on.
* ``weighted``: the smallest weighted sum of scaled objectives; as on the front, a difference
  within noise is none (a member within noise of the best on an objective counts as the best).

Measurement noise. A latency metric comes with a confidence interval (the trial's
``tuneops:cost`` attribute, see :mod:`tuneops.measure`); selection respects it:

* Pareto front: a trial dominates another only where it is better beyond noise - on a metric
  with intervals, its interval lies entirely on the better side of the other's; overlapping
  intervals are a tie (:func:`noise_front`). Without intervals this is the usual front. The
  trial with the best value of an objective may so be left out (a member ties with it there
  and is better beyond noise elsewhere): a note says so.
* Constraints: a trial meets ``latency_p95_ms <= 20`` when its interval's upper end does
  (:func:`violation`). A trial whose value meets the limit but whose interval reaches past it
  is *within noise of the limit*: it is chosen only when no trial meets the constraints
  beyond noise, and the choice then records a note saying so (``Choice.notes``).
* ``lexicographic``: on a metric with intervals, trials whose interval reaches the best
  one's are tied with it, and the next objective decides.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from tuneops import _gc, _optuna, _study
from tuneops.errors import NoFeasibleTrial, SpecError, UsageError
from tuneops.metrics import METRICS
from tuneops.pareto import pareto_mask
from tuneops.spec import (
    Constraint,
    Objective,
    Selection,
    check_constraints,
    load_stored_spec,
    parse_constraint,
    parse_constraints,
    selection_for,
)

__all__ = [
    "Candidate",
    "Choice",
    "pareto_mask",
    "noise_front",
    "violation",
    "candidates_from_trials",
    "infeasible_trials",
    "constraints_within_noise",
    "constraint_record",
    "select_trial",
    "reselect",
]


_DEFAULT = Selection()  # knee


@dataclass(frozen=True, slots=True)
class Candidate:
    """A completed trial as selection sees it.

    ``params``: read-only (from a study, the trial's own mapping, not a copy: selection makes
    a candidate of every trial, 10,000 at the end of a large run). ``intervals``: ``metric ->
    (low, high)``, the confidence interval of a measured metric (latency); metrics without one
    are compared by value.
    """

    number: int
    values: tuple[float, ...]
    metrics: Mapping[str, float]
    params: Mapping[str, Any] = field(default_factory=dict)
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # the trial broke a constraint Optuna recorded for it (a plain study's constraints_func):
    # what selection judges when it is given no constraint expressions
    recorded_infeasible: bool = False


@dataclass(frozen=True)
class Choice:
    """The outcome of selection."""

    selected: Candidate
    front: tuple[Candidate, ...]  # feasible Pareto front
    n_feasible: int
    n_candidates: int
    policy: str
    notes: tuple[str, ...] = ()  # what a reader must know about the choice (noise, limits)
    within_noise: tuple[int, ...] = ()  # trials that meet the constraints only within noise

    def to_dict(self) -> dict[str, Any]:
        return {
            "selected_trial": self.selected.number,
            "policy": self.policy,
            "pareto_front": [c.number for c in self.front],
            "n_feasible": self.n_feasible,
            "n_complete": self.n_candidates,
            "notes": list(self.notes),
            "within_noise": list(self.within_noise),
        }


_NO_INTERVALS: Mapping[str, tuple[float, float]] = MappingProxyType({})


def candidates_from_trials(
    trials: Sequence[FrozenTrial], metric_names: Sequence[str]
) -> list[Candidate]:
    """COMPLETE trials as candidates; metrics default to the objective values by name. A repeat
    of an earlier trial's configuration (``repeat_of``, :mod:`tuneops.repeats`) is not one: the
    earlier trial stands for it."""
    with _gc.paused():
        return _candidates(trials, metric_names)


def _candidates(
    trials: Sequence[FrozenTrial], metric_names: Sequence[str], *, repeats: bool = False
) -> list[Candidate]:
    """``repeats``: a repeat is a candidate too (its record, which is its earlier trial's)."""
    out = []
    for t in trials:  # each FrozenTrial property read once: 10,000 trials at every selection
        if t.state != TrialState.COMPLETE:
            continue
        values = t.values
        if values is None:
            continue
        attrs = t.user_attrs
        if _study.REPEAT_OF in attrs and not repeats:  # its earlier trial stands for it
            continue
        metrics = dict(zip(metric_names, values, strict=False))
        extra = attrs.get(_study.METRICS)
        if isinstance(extra, Mapping):  # plain Optuna code may keep a list or a number there
            metrics.update(extra)
        # an end the measurement could not bound (a p95 of too few calls) is infinite: a
        # constraint is then met within noise at best, and the trial ties on that objective
        intervals = _study.stored_intervals(attrs.get(_study.COST)) or _NO_INTERVALS
        out.append(
            Candidate(
                t.number,
                tuple(values),
                metrics,
                t.params,
                intervals,
                _study.feasible(t) is False,
            )
        )
    return out


def violation(
    constraint: Constraint,
    metrics: Mapping[str, float],
    intervals: Mapping[str, Sequence[float]] | None = None,
) -> float:
    """How far a trial misses ``constraint`` (Optuna's convention: <= 0 meets it).

    On a metric with an interval the interval's far end decides - the upper end for ``<=``,
    the lower for ``>=`` - so a trial meets the constraint beyond measurement noise.
    """
    value = metrics[constraint.metric]
    if intervals and constraint.metric in intervals:
        low, high = intervals[constraint.metric][:2]
        value = low if constraint.op in (">=", ">") else high
    return (
        constraint.threshold - value
        if constraint.op in (">=", ">")
        else value - constraint.threshold
    )


def infeasible_trials(
    trials: Sequence[FrozenTrial], metric_names: Sequence[str], constraints: Sequence[str]
) -> frozenset[int]:
    """Numbers of the complete trials that miss ``constraints`` (the study's texts) by the rule
    selection applies (:func:`violation`: a metric's interval's far end); one that did not
    measure a constraint's metric misses it.

    For a study whose constraints changed since some trials ran: their Optuna records are of
    the old constraints (``tuneops._study.constraints_recorded``), and a report that read
    them marked trials feasible that the selection had just refused.
    """
    parsed = parse_constraints(list(constraints), "constraints")
    missed = {
        c.number
        for c in candidates_from_trials(trials, metric_names)
        if any(
            k.metric not in c.metrics or violation(k, c.metrics, c.intervals) > 0 for k in parsed
        )
    }
    # a repeat of a configuration (not a candidate) misses them as its earlier trial does
    again = {t.number for t in trials if t.user_attrs.get(_study.REPEAT_OF) in missed}
    return frozenset(missed | again)


def constraints_within_noise(
    trial: FrozenTrial, metric_names: Sequence[str], constraints: Sequence[str]
) -> dict[str, str]:
    """The constraints (the study's texts) complete trial ``trial`` meets by its measured value
    but not beyond measurement noise, each with its value, its interval and why
    (:func:`noise_clause`): :func:`infeasible_trials` counts them as missed, as selection does
    unless nothing meets the constraints beyond noise."""
    found = candidates_from_trials([trial], metric_names)
    if not found:
        return {}
    c = found[0]
    out = {}
    for text in constraints:
        (k,) = parse_constraints([text], "constraints")
        if k.metric not in c.metrics or k.violation(c.metrics) > 0:
            continue
        if violation(k, c.metrics, c.intervals) > 0:
            out[text] = noise_clause(c, k)
    return out


def constraint_record(
    trial: FrozenTrial, metric_names: Sequence[str], constraints: Sequence[Constraint]
) -> dict[str, float] | None:
    """The constraint record a complete trial would have under ``constraints`` (``{str(k):
    violation}``, as :class:`tuneops.objective.SpecObjective` records it), from its stored
    metrics and intervals; None when it did not measure a constraint's metric (or is not
    complete). What a sampler sees of a trial recorded under other constraints
    (:class:`tuneops.samplers.CurrentConstraints`). A repeat (``repeat_of``) is judged by the
    record it took: it measured what its earlier trial did (the sampler left every repeat out
    of its view, as one that measured nothing)."""
    found = _candidates([trial], metric_names, repeats=True)
    if not found or any(k.metric not in found[0].metrics for k in constraints):
        return None
    return _violations(found[0], constraints)


def _violations(c: Candidate, constraints: Sequence[Constraint]) -> dict[str, float]:
    return {str(k): violation(k, c.metrics, c.intervals) for k in constraints}


def _within_noise(c: Candidate, constraints: Sequence[Constraint]) -> list[Constraint]:
    """The constraints ``c`` meets by its value but not beyond noise; [] if it misses one."""
    noisy = []
    for k in constraints:
        if k.violation(c.metrics) > 0:
            return []
        if violation(k, c.metrics, c.intervals) > 0:
            noisy.append(k)
    return noisy


def _loss_bounds(
    candidates: Sequence[Candidate],
    objectives: Sequence[Objective],
    resolution: Mapping[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of each objective as a loss (smaller is better); a metric
    without an interval has both bounds at its value - rounded to its ``resolution`` when it
    has one (see :func:`resolution_of`)."""
    k = len(objectives)
    steps = resolution or {}
    # Most candidates have no interval: their bounds are their (rounded) values, by array
    # operations; the Python loop below visits only the rows with an interval (10,000
    # candidates took 0.04 s of CPU row by row).
    values = np.array([c.values[:k] for c in candidates], dtype=float).reshape(-1, k)
    lo = values.copy()
    hi = values.copy()
    with_interval = [i for i, c in enumerate(candidates) if c.intervals]
    for j, o in enumerate(objectives):
        step = steps.get(o.metric)
        if step:
            # np.round, like round(), rounds halves to even
            lo[:, j] = hi[:, j] = np.round(values[:, j] / step) * step
        for i in with_interval:
            c = candidates[i]
            if o.metric not in c.intervals:
                continue
            value = values[i, j]  # not rounded: the interval is the measure of its noise
            a, b = c.intervals[o.metric]
            lo[i, j], hi[i, j] = min(a, value), max(b, value)
        if o.direction == "maximize":
            lo[:, j], hi[:, j] = -hi[:, j], -lo[:, j]
    return lo, hi


def noise_front(
    candidates: Sequence[Candidate],
    objectives: Sequence[Objective],
    resolution: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Mask of the Pareto front where differences within the measured interval are ties.

    ``b`` dominates ``a`` when ``b`` is nowhere worse beyond noise (no objective where ``b``'s
    interval lies entirely above ``a``'s, as a loss) and somewhere better beyond noise (an
    objective where it lies entirely below). With no intervals this is the usual front.
    Differences below a metric's ``resolution`` are ties too (:func:`resolution_of`).

    A tie is not transitive, so neither is this dominance: ``b`` may dominate ``a`` (better
    beyond noise on accuracy, slower within noise) and itself be dominated by ``c``, which does
    not dominate ``a`` (``a`` is faster than ``c`` beyond noise). The front is therefore the
    set of candidates that no *member of the front* dominates (the relation's kernel), not
    those that no candidate at all dominates, which dropped ``a`` along a chain of dominated
    trials. Every candidate left out is dominated by a front member, and no front member
    dominates another.
    """
    lo, hi = _loss_bounds(candidates, objectives, resolution)
    if np.array_equal(lo, hi):
        # No intervals: exactly the usual dominance, so the sort-based mask (the pairwise loop
        # below took 13 s of CPU on a 10,000-trial two-objective study; issue 15).
        return pareto_mask(lo, ["minimize"] * lo.shape[1])
    IN, OUT, OPEN = 1, -1, 0
    state = np.full(len(candidates), OPEN, dtype=np.int8)
    while (state == OPEN).any():
        changed = False
        open_rows = np.flatnonzero(state == OPEN)
        # Rows in blocks (a block's dominators at once: 256 x n x objectives comparisons), each
        # block judged on the states at its start: a decision never changes (IN and OUT are
        # final), so a state changed within the block is only seen a pass later.
        for block in np.array_split(open_rows, max(1, len(open_rows) // 256)):
            better = np.zeros((len(block), len(state)), dtype=bool)
            worse = np.zeros_like(better)
            for j in range(lo.shape[1]):  # one objective at a time (any() over a last axis
                better |= hi[None, :, j] < lo[block, j][:, None]  # of 2 is 5x slower)
                worse |= lo[None, :, j] > hi[block, j][:, None]
            dominators = better & ~worse
            out = (dominators & (state == IN)).any(axis=1)
            free = ~(dominators & (state == OPEN)).any(axis=1)
            state[block[out]] = OUT
            state[block[~out & free]] = IN  # only dominated (if at all) by candidates left out
            changed |= bool(out.any() or free.any())
        if not changed:  # a cycle of dominance among the rest (not seen): keep them all
            state[state == OPEN] = IN
    return state == IN


def _scaled(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    loss = values * signs
    lo, hi = loss.min(axis=0), loss.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (loss - lo) / span


def _noise_scaled(
    values: np.ndarray, objectives: Sequence[Objective], lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """The front's objectives scaled to [0, 1] (0 the best) as the front compares them: values
    rounded to a metric's resolution, and a member whose interval reaches the best one's counts
    as the best (as ``lexicographic`` ties them). Plain min-max scaling stretched a difference
    within noise to the whole axis: on pmlb:ionosphere two trials' p95s of 0.62 and 0.70 ms
    (intervals 0.57-0.77 and 0.66-0.83) weighed as much as a model 3x the size, and decided."""
    signs = np.array([-1.0 if o.direction == "maximize" else 1.0 for o in objectives])
    # without an interval both bounds are the (rounded) value; with one, the value itself
    loss = np.where(lo == hi, lo, values * signs)
    scaled = _scaled(loss, ["minimize"] * len(objectives))
    for j in range(loss.shape[1]):
        best = int(np.argmin(loss[:, j]))
        scaled[lo[:, j] <= hi[best, j], j] = 0.0
    return scaled


def resolution_of(objectives: Sequence[Objective], n_rows: int | None) -> dict[str, float]:
    """The smallest real difference of count-based objectives: ``accuracy`` cross-validated
    over ``n_rows`` rows moves by one correct row at a time (1 / n_rows); two configurations
    with the same number of correct rows differ only by how the folds share them (2e-5 on
    breast cancer), which put a model twice as slow on the quickstart's front for "0.9631 vs
    0.9631". Values are compared rounded to it."""
    if not n_rows or n_rows <= 0:
        return {}
    return {o.metric: 1.0 / n_rows for o in objectives if o.metric == "accuracy"}


def select_trial(
    candidates: Sequence[Candidate],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint] = (),
    selection: Selection = _DEFAULT,
    resolution: Mapping[str, float] | None = None,
) -> Choice:
    """Choose one trial from the feasible Pareto front (differences below an objective's
    ``resolution`` are ties on it: :func:`resolution_of`).

    Raises:
        SpecError: a constraint names a metric the trials did not measure.
        NoFeasibleTrial: no complete trial, or none meets the constraints; the message names
            the closest trial and the constraint it misses.
    """
    if not candidates:
        raise NoFeasibleTrial("no trial completed, so there is nothing to select; run more trials.")
    with _gc.paused():
        return _select(candidates, objectives, constraints, selection, resolution)


def _select(
    candidates: Sequence[Candidate],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    selection: Selection,
    resolution: Mapping[str, float] | None,
) -> Choice:
    measured = set(candidates[0].metrics)
    if any(k.metric not in measured for k in constraints):
        # a study run again with a constraint on a metric its first trials did not measure
        measured = measured.union(*(c.metrics for c in candidates))
    for k in constraints:
        if k.metric not in measured:
            known = k.metric in METRICS
            close = difflib.get_close_matches(
                k.metric.lower(), sorted(measured | (set() if known else set(METRICS))), n=1
            )
            raise SpecError(
                f"constraint '{k}' uses {k.metric!r}, "
                + (
                    "which this study did not measure"
                    if known
                    else "which is not a metric tuneops knows nor one this study measured"
                )
                + f"; measured metrics: {', '.join(sorted(measured))}."
                + (f" Did you mean {close[0]!r}?" if close else "")
                + (
                    " To use it, add it to the spec's objectives or constraints and run again."
                    if known
                    else " `tuneops metrics` lists the metrics a spec can use."
                )
            )
    complete = len(candidates)
    # one that did not measure a constraint's metric misses it (as infeasible_trials says)
    judged = [c for c in candidates if all(k.metric in c.metrics for k in constraints)]
    if len(judged) < complete:
        if not judged:
            raise NoFeasibleTrial(
                f"no trial meets the constraints ({complete} complete): no trial measured "
                "every metric they name. Run more trials."
            )
        candidates = judged
    violations = [_violations(c, constraints) for c in candidates]
    feasible = [
        c for c, v in zip(candidates, violations, strict=True) if all(x <= 0 for x in v.values())
    ]
    if not constraints:
        # No expressions: the constraints Optuna recorded (a plain study's constraints_func)
        # still rule a trial out (a study whose every trial broke one had one "selected").
        feasible = [c for c in feasible if not c.recorded_infeasible]
        if not feasible:
            raise NoFeasibleTrial(
                f"no trial meets the constraints the study recorded ({len(candidates)} "
                "complete; Optuna's constraints_func: a value above 0 is a violation). Relax "
                "them, widen the search space, or run more trials."
            )
    noisy = {c.number: _within_noise(c, constraints) for c in candidates}
    within = tuple(n for n, ks in noisy.items() if ks)
    notes: list[str] = []
    if not feasible and within:
        # Nothing meets the constraints beyond noise; the trials that meet them by value
        # are the best there is, and the note says how sure that is.
        feasible = [c for c in candidates if c.number in within]
    if not feasible:
        raise NoFeasibleTrial(
            _closest_message(candidates, violations, constraints, complete=complete)
        )
    mask = noise_front(feasible, objectives, resolution)
    front = [c for c, keep in zip(feasible, mask, strict=True) if keep]
    front.sort(key=lambda c: c.number)
    chosen = _apply_policy(front, objectives, selection, resolution)
    tie = (
        _knee_tie(front, objectives, chosen)
        if selection.policy == "knee" and len(objectives) > 1
        else None
    ) or _best_tie(front, objectives, chosen)
    if tie:
        notes.append(tie)
    if len(objectives) > 1 and len(front) < len(feasible):
        notes.extend(_off_front_notes(feasible, mask, objectives, resolution))
    if noisy.get(chosen.number):
        notes.append(_noise_note(chosen, noisy[chosen.number]))
    elif within:
        notes.append(_within_note(within, candidates, constraints))
    return Choice(
        chosen, tuple(front), len(feasible), complete, selection.policy, tuple(notes), within
    )


def _off_front_notes(
    feasible: Sequence[Candidate],
    mask: np.ndarray,
    objectives: Sequence[Objective],
    resolution: Mapping[str, float] | None,
) -> list[str]:
    """Why the feasible trial with the best value of an objective is not on the front, when it
    is not: a noise-aware front leaves it out when a member ties with it within noise there (a
    wide interval, a difference below the metric's resolution) and is better beyond noise
    elsewhere. A reader looking for the most accurate (or fastest) trial found it missing from
    the front without a word."""
    lo, hi = _loss_bounds(feasible, objectives, resolution)
    on_front = np.flatnonzero(mask)
    notes = []
    for j, o in enumerate(objectives):
        sign = -1.0 if o.direction == "maximize" else 1.0
        loss = np.array([sign * c.values[j] for c in feasible], dtype=float)
        best = np.flatnonzero(loss == loss.min())
        if mask[best].any():
            continue  # a trial with the best value is on the front (the others are its equals)
        i = int(best[0])
        better = hi[on_front] < lo[i]  # front member x objective: better beyond noise
        worse = lo[on_front] > hi[i]
        dominating = np.flatnonzero(better.any(axis=1) & ~worse.any(axis=1))
        if not len(dominating):  # not seen: every trial left out has a dominator on the front
            continue
        k = int(on_front[dominating[0]])
        a, b = feasible[i], feasible[k]
        where = ", ".join(
            f"{objectives[m].metric} {b.values[m]:.4g} against {a.values[m]:.4g}"
            for m in map(int, np.flatnonzero(better[dominating[0]]))
        )
        notes.append(
            f"trial {a.number}, the best on {o.metric} ({a.values[j]:.4g}), is not on the front: "
            f"trial {b.number} ({o.metric} {b.values[j]:.4g}) is within noise of it there "
            f"({_tie_reason(a, b, o.metric, resolution)}) and better beyond noise on {where}."
        )
    return notes


def _tie_reason(
    a: Candidate, b: Candidate, metric: str, resolution: Mapping[str, float] | None
) -> str:
    """Why ``a`` and ``b`` tie on ``metric`` (see :func:`_loss_bounds`)."""
    shown = [
        f"{c.intervals[metric][0]:.4g}-{c.intervals[metric][1]:.4g}"
        if np.isfinite(c.intervals[metric][1])
        else f"{c.intervals[metric][0]:.4g}-unbounded"
        for c in (a, b)
        if metric in c.intervals
    ]
    if shown:
        return f"95% intervals {' and '.join(shown)}"
    step = (resolution or {}).get(metric)
    if step:
        return f"they differ by less than one row of the {round(1 / step)} cross-validated"
    return "equal values"


def _same_values(front: Sequence[Candidate], chosen: Candidate) -> list[int]:
    """The front members whose values equal ``chosen``'s on every objective."""
    mine = np.asarray(chosen.values, dtype=float)
    scale = np.maximum(1.0, np.abs(mine))
    return [
        c.number
        for c in front
        if np.all(np.abs(np.asarray(c.values, dtype=float) - mine) <= 1e-12 * scale)
    ]


def _best_tie(
    front: Sequence[Candidate], objectives: Sequence[Objective], chosen: Candidate
) -> str | None:
    """What to say when several trials share the chosen trial's value of every objective: the
    earliest is taken, whatever the policy (policies differ only between objectives). The
    knee's note, "equally close to the ideal point on the scaled front ... another policy
    chooses by preference", said a tune() study's three trials at accuracy 0.7753, or eight
    trials at roc_auc 1 and f1 1, could be told apart."""
    tied = _same_values(front, chosen)
    if len(tied) < 2:
        return None
    names = ", ".join(map(str, tied[:-1])) + f" and {tied[-1]}"
    if len(objectives) == 1:
        what = f"tie on the best {objectives[0].metric} ({chosen.values[0]:.4g})"
    else:
        pairs = zip(objectives, chosen.values, strict=False)
        shown = ", ".join(f"{o.metric} {v:.4g}" for o, v in pairs)
        what = f"have the same value of every objective ({shown})"
    return f"trials {names} {what}; the earliest, trial {chosen.number}, is taken."


def _knee_tie(
    front: Sequence[Candidate], objectives: Sequence[Objective], chosen: Candidate
) -> str | None:
    """What to say when several front members are equally close to the ideal point (a front
    of two always: scaled, its members sit at (0, 1) and (1, 0)): the knee then took the
    earlier trial by rule, not a balance ("Selected trial 2 by knee" of a front of 2 and 9)."""
    if len(front) < 2:
        return None
    values = np.array([c.values for c in front], dtype=float)
    distance = np.linalg.norm(_scaled(values, [o.direction for o in objectives]), axis=1)
    tied = [c.number for c, d in zip(front, distance, strict=True) if d <= distance.min() + 1e-9]
    if len(tied) < 2 or chosen.number not in tied:
        return None
    if set(tied) <= set(_same_values(front, chosen)):
        return None  # not a knee's balance: the same values (_best_tie says so)
    names = ", ".join(map(str, tied[:-1])) + f" and {tied[-1]}"
    return (
        f"the knee ties between trials {names} (equally close to the ideal point on the scaled "
        f"front); the earliest, trial {chosen.number}, is taken. Another policy chooses by "
        "preference: lexicographic (a priority) or weighted (weights)."
    )


def noise_detail(c: Candidate, k: Constraint) -> str:
    """``c``'s value of ``k``'s metric with its interval, an end the measurement could not bound
    written ``unbounded`` (it printed as ``inf``)."""
    low, high = c.intervals[k.metric]
    ends = "-".join(f"{x:.4g}" if np.isfinite(x) else "unbounded" for x in (low, high))
    return f"{k.metric} {c.metrics[k.metric]:.4g} (95% interval {ends})"


#: Why a trial whose interval has no far end meets a constraint only within noise.
_NO_FAR_END = (
    "too few timed calls to bound it, however far from the limit the value is (a timing stops "
    "after 20 calls once its trial is known to be dominated; a p95 needs 72)"
)


def noise_clause(c: Candidate, k: Constraint) -> str:
    """Why ``c`` meets ``k`` by its value but not beyond noise, in the words of the selection's
    note: its interval reaches past the limit, or has no far end at all. ("latency_p95_ms 1.911
    (95% interval 1.687-unbounded)" was said of a p95 of 1.9 ms against a limit of 1000, as if
    it were within noise of it.)"""
    if not np.isfinite(violation(k, c.metrics, c.intervals)):
        side = "lower" if k.op in (">=", ">") else "upper"
        return (
            f"{k.metric} {c.metrics[k.metric]:.4g}, whose 95% interval has no {side} end: "
            f"{_NO_FAR_END}"
        )
    return f"{noise_detail(c, k)}, whose interval reaches past the limit {k.threshold:g}"


def _unbounded(c: Candidate, constraints: Sequence[Constraint]) -> bool:
    """Whether ``c`` misses a constraint beyond noise only because its interval has no far end
    (too few timed calls to bound a p95 from above)."""
    return any(
        k.metric in c.intervals and not np.isfinite(violation(k, c.metrics, c.intervals))
        for k in constraints
    )


def _within_note(
    within: Sequence[int], candidates: Sequence[Candidate], constraints: Sequence[Constraint]
) -> str:
    by_number = {c.number: c for c in candidates}
    # A p95 far below its limit read as "the interval reaches past the limit" (a study's 1.9 ms
    # against 200 ms): its interval has no upper end at all.
    unbounded = [n for n in within if _unbounded(by_number[n], constraints)]
    bounded = [n for n in within if n not in unbounded]
    parts = []
    if bounded:
        parts.append(
            f"{len(bounded)} trial(s) ({', '.join(map(str, bounded[:10]))}) meet the "
            "constraints by their measured value but not beyond measurement noise (the interval "
            "reaches past the limit)"
        )
    if unbounded:
        parts.append(
            f"{len(unbounded)} trial(s) ({', '.join(map(str, unbounded[:10]))}) meet the "
            f"constraints by their measured value, but an interval of theirs has no far end: "
            f"{_NO_FAR_END}"
        )
    return "; ".join(parts) + "; they were not considered."


def _noise_note(c: Candidate, constraints: Sequence[Constraint]) -> str:
    # An interval with no far end is no sign of a value near the limit: "within noise of the
    # limit ... latency_p95_ms 1.91 (95% interval 1.69-unbounded) against the limit 200. A
    # re-measurement may land on either side" was said of it.
    open_ended = [k for k in constraints if not np.isfinite(violation(k, c.metrics, c.intervals))]
    near = [k for k in constraints if k not in open_ended]
    said = []
    if near:
        parts = [f"{noise_detail(c, k)} against the limit {k.threshold:g}" for k in near]
        said.append(
            f"within noise of the limit: {'; '.join(parts)}. A re-measurement may land on either "
            "side: relax the limit or re-measure before relying on it."
        )
    if open_ended:
        parts = [noise_clause(c, k) for k in open_ended]
        said.append(
            f"{'and ' if near else ''}not beyond noise: {'; '.join(parts)}. Re-measure it before "
            "relying on it."
        )
    return (
        f"no trial meets the constraints beyond measurement noise; the selected trial "
        f"{c.number} meets them by its measured value, {' '.join(said)}"
    )


def _apply_policy(
    front: list[Candidate],
    objectives: Sequence[Objective],
    selection: Selection,
    resolution: Mapping[str, float] | None = None,
) -> Candidate:
    names = [o.metric for o in objectives]
    values = np.array([c.values for c in front], dtype=float)
    scaled = _scaled(values, [o.direction for o in objectives])
    # Ties below a metric's resolution as on the front: lexicographic order must not pick a
    # slower model for an accuracy 1.6e-5 higher (one row is 1/351 on ionosphere).
    lo, hi = _loss_bounds(front, objectives, resolution)
    if selection.policy == "weighted":
        weights = dict(selection.weights) or {n: 1.0 for n in names}
        w = np.array([weights.get(n, 0.0) for n in names])
        return front[int(np.argmin(_noise_scaled(values, objectives, lo, hi) @ w))]
    if selection.policy == "lexicographic":
        order = list(selection.priority) + [n for n in names if n not in selection.priority]
        alive = np.arange(len(front))
        for name in order:
            j = names.index(name)
            column = scaled[alive, j]
            best = alive[int(np.argmin(column))]
            # Within tolerance of the best, or within noise of it (intervals overlap).
            close = column <= column.min() + selection.tolerance + 1e-12
            tied = close | (lo[alive, j] <= hi[best, j])
            alive = alive[tied]
        return front[int(alive[0])]
    # knee: closest to the ideal point; ties go to the earlier trial
    return front[int(np.argmin(np.linalg.norm(scaled, axis=1)))]


def _closest_message(
    candidates: Sequence[Candidate],
    violations: Sequence[dict[str, float]],
    constraints: Sequence[Constraint],
    *,
    complete: int | None = None,
) -> str:
    scale = {str(k): max(abs(k.threshold), 1e-9) for k in constraints}
    totals = [sum(max(0.0, x) / scale[n] for n, x in v.items()) for v in violations]
    best = int(np.argmin(totals))
    c, v = candidates[best], violations[best]

    def measured(metric: str) -> str:
        text = f"{metric}={c.metrics[metric]:.6g}"
        if metric in c.intervals:  # the verdict is on the interval, not on the value alone
            low, high = c.intervals[metric]
            text += f", 95% interval {low:.6g}-{high:.6g}"
        return text

    missed = [
        f"'{n}' (it has {measured(next(k.metric for k in constraints if str(k) == n))})"
        for n, x in v.items()
        if x > 0
    ]
    return (
        f"no trial meets the constraints "
        f"({len(candidates) if complete is None else complete} complete). The closest is trial "
        f"{c.number}, which misses {', '.join(missed)}"
        + (
            " (a measured metric meets a constraint when its whole interval does)"
            if any("interval" in m for m in missed)
            else ""
        )
        + ". Relax the constraint, widen the search "
        "space, or run more trials; re-select without re-running with "
        "`tuneops select STUDY --constraint ...`."
    )


# -- a study ------------------------------------------------------------------------------------
def reselect(
    study: optuna.Study,
    *,
    constraints: Sequence[str] | None = None,
    policy: str | Selection | None = None,
) -> Choice:
    """Select again from a finished study with other constraints or policy; nothing re-runs.

    Raises:
        SpecError: malformed constraint, constraints that repeat or contradict each other,
            or a metric the study did not measure.
        NoFeasibleTrial: nothing meets the constraints (the message names the closest trial).
        UsageError: ``study`` is not a study (a name: load it first).
    """
    if not isinstance(study, optuna.Study):
        raise UsageError(
            f"study: expected an optuna.Study, received {type(study).__name__} {study!r}; load "
            "it first: reselect(tuneops.load_study(NAME, STORAGE))."
        )
    objectives = [
        Objective(metric=o.metric, direction=o.direction) for o in _study.objectives(study)
    ]
    raw = _study.spec_record(study)
    spec = load_stored_spec(raw, f"study {study.study_name!r}") if raw else None
    if constraints is None:
        parsed = (
            list(spec.constraints)
            if spec
            else [parse_constraint(c, builtin_only=False) for c in _study.constraint_texts(study)]
        )
    else:
        parsed = parse_constraints(constraints, "constraints (--constraint)")
        check_constraints(parsed, "constraints (--constraint)")
    if isinstance(policy, Selection):
        selection = policy
    elif policy is not None:
        selection = selection_for(policy, tuple(objectives))
    else:
        selection = spec.selection if spec else Selection()
    try:
        return select_in_study(study, objectives, parsed, selection)
    except SpecError as exc:
        # a given constraint on a metric the study did not measure: named as the argument
        # it came from, as a malformed one is ("constraints (--constraint): ...")
        if constraints is not None and str(exc).startswith("constraint '"):
            raise SpecError(f"constraints (--constraint): {exc}") from None
        raise


def nothing_completed(trials: Sequence[FrozenTrial]) -> str:
    """Why a study has nothing to select, and what to do: "run more trials" was the advice for a
    tune() objective whose every trial had failed on the same error."""
    failed = [
        t
        for t in trials
        if t.state == TrialState.FAIL and not _study.is_abandoned(t) and not _study.is_retired(t)
    ]
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    if failed:
        reason = str(failed[-1].user_attrs.get(_study.FAIL_REASON, "unknown")).splitlines()[0]
        return (
            f"no trial completed, so there is nothing to select: {len(failed)} failed (the "
            f"last: {reason})" + (f" and {pruned} were pruned" if pruned else "") + ". Fix "
            "what made them fail, then run again with a larger n_trials (failed trials count "
            "in it) or as a new study; `tuneops show STUDY --trials` lists every trial's "
            "reason."
        )
    if pruned:
        return (
            f"no trial completed, so there is nothing to select: all {pruned} were pruned. "
            "Loosen the pruner (search.pruner, or pruner= of tune()) or run more trials."
        )
    return "no trial completed, so there is nothing to select; run more trials."


def select_in_study(
    study: optuna.Study,
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    selection: Selection,
    metric_names: Sequence[str] | None = None,
) -> Choice:
    """:func:`select_trial` over the study's complete trials - after a staged strategy's
    verification (``tuneops:strategy``), over the verified candidates at their verified means.

    The verification re-evaluated the top candidates with more folds and repeats: a better
    estimate than the search's single cross-validation, whose best is the luckiest as much as
    the best. When no verified candidate meets the constraints, the other trials are
    candidates at their search values (and a note says so); the verified ones stay at their
    verified means.
    """
    names = list(metric_names or [o.metric for o in objectives])
    trials = study.get_trials(deepcopy=False)
    candidates = candidates_from_trials(trials, names)
    if not candidates:
        raise NoFeasibleTrial(nothing_completed(trials))
    repeats = sum(
        t.state == TrialState.COMPLETE and _study.REPEAT_OF in t.user_attrs for t in trials
    )
    try:
        return _select_in_study(study, candidates, objectives, constraints, selection, names)
    except NoFeasibleTrial as exc:
        said = f"({len(candidates)} complete)"
        if not repeats or said not in str(exc):
            raise
        # `show` counts every complete trial ("29 complete"), the refusal only the candidates
        # ("11 complete"): the repeats (not candidates: tuneops.repeats) are said beside them
        raise NoFeasibleTrial(
            str(exc).replace(
                said,
                f"({len(candidates)} complete, and {repeats} complete "
                f"repeat{'s' if repeats > 1 else ''} of their configurations)",
                1,
            )
        ) from None


def _select_in_study(
    study: optuna.Study,
    candidates: list[Candidate],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    selection: Selection,
    names: list[str],
) -> Choice:
    attrs = _optuna.study_user_attrs(study)  # one read of the storage for both records
    rows = (attrs.get(_study.DATA) or {}).get("rows")
    resolution = resolution_of(objectives, rows if isinstance(rows, int) else None)
    strategy = attrs.get(_study.STRATEGY) or {}
    verification = strategy.get("verification") if isinstance(strategy, Mapping) else None
    if not isinstance(verification, Mapping):
        return select_trial(candidates, objectives, constraints, selection, resolution)
    verified = _verified(candidates, verification, names[: len(objectives)])
    if not verified:
        return select_trial(candidates, objectives, constraints, selection, resolution)
    basis = (
        f"selected among the {len(verified)} candidates the staged verification re-evaluated "
        f"({verification['folds']} folds x {verification['repeats']} repeats), on their mean "
        "values"
    )
    try:
        choice = select_trial(verified, objectives, constraints, selection, resolution)
    except NoFeasibleTrial:
        # The other trials at their search values; a verified candidate stays at its verified
        # mean, which misses the constraints: its search value was the luckier estimate of the
        # same model (a trial verified at accuracy 0.78 was selected for "accuracy >= 0.88" on
        # its search's 0.9)
        better = {c.number: c for c in verified}
        rest = [better.get(c.number, c) for c in candidates]
        choice = select_trial(rest, objectives, constraints, selection, resolution)
        note = (
            f"none of the {len(verified)} candidates the staged verification re-evaluated meets "
            "the constraints at its verified mean; selected from the other trials at their "
            "search values."
        )
        return replace(choice, notes=(note, *choice.notes))
    chosen = next(c for c in verification["candidates"] if c["number"] == choice.selected.number)
    parts = [
        f"{name} {mean:.4g}" + (f" (95% CI {ci[0]:.4g}-{ci[1]:.4g})" if ci else "")
        for name, mean, ci in zip(names, chosen["mean"], chosen["ci95"], strict=False)
    ]
    note = f"{basis}: trial {choice.selected.number} {', '.join(parts)}."
    # The counts are the study's (its complete trials, those meeting the constraints at their
    # search values), as without the strategy: the verified few are said in the note.
    n_feasible = sum(
        all(x <= 0 for x in _violations(c, constraints).values()) for c in candidates
    )
    return replace(
        choice,
        notes=(note, *choice.notes),
        n_candidates=len(candidates),
        n_feasible=n_feasible,
    )


def _verified(
    candidates: Sequence[Candidate],
    verification: Mapping[str, Any],
    objective_names: Sequence[str],
) -> list[Candidate]:
    """The candidates the verification re-evaluated, valued at their verified means."""
    means = {
        int(v["number"]): [float(m) for m in v["mean"]]
        for v in verification.get("candidates") or ()
        if len(v.get("mean") or ()) == len(objective_names)
    }
    return [
        replace(
            c,
            values=tuple(means[c.number]),
            metrics={**c.metrics, **dict(zip(objective_names, means[c.number], strict=True))},
        )
        for c in candidates
        if c.number in means
    ]
