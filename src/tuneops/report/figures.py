"""Each panel of a report as plain data, computed from a :class:`~tuneops.report.view.StudyView`.

Renderers (HTML, PNG) only draw these objects; tests check the data, not pixels (the pattern
of ``optuna/visualization/_pareto_front.py``). A panel that cannot be drawn for a study (one
trial, no parameters, a single objective for a Pareto front) is a :class:`Panel` with
``data=None`` and ``missing`` saying why.
"""

from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from tuneops import _optuna, _study, pareto
from tuneops.metrics import METRICS
from tuneops.pareto import pareto_mask
from tuneops.report.view import (
    StudyView,
    categorical_labels,
    intermediate_curve,
    pruning_section,
)

__all__ = [
    "Panel",
    "Missing",
    "Series",
    "History",
    "Importances",
    "Axis",
    "ParallelCoordinates",
    "Slices",
    "Contour",
    "ParetoFront",
    "Curve",
    "IntermediateValues",
    "pruned_label",
    "pruned_lines",
    "WorkerRow",
    "Workers",
    "compute_panels",
    "PANELS",
    "sample",
    "normalized_losses",
    "feasible_losses",
    "TOP_PARAMS",
    "MAX_POINTS",
    "is_cost",
    "sample_note",
]

# Readability limits, the same for every renderer. A figure shows the TOP_PARAMS most important
# parameters; the rest are drawn one click away in the HTML (<details>); the PNG says it left
# them out.
TOP_PARAMS = 8
# Points drawn per scatter (history, Pareto front, slices, contour) and lines per parallel-
# coordinates plot: beyond a few thousand marks a plot is ink, not information, and the file and
# the browser slow down. The trials that matter are always kept (see :func:`sample`).
MAX_POINTS = 2000
MAX_LINES = 1000
MAX_CURVES = 300
# Importances of a larger study are computed on an evenly spread sample of its completed trials
# (PED-ANOVA compares the top quantile with the rest; 2,000 trials estimate both well).
IMPORTANCE_TRIALS = 2000
# Pareto-front axes cover the feasible front and this central share of the feasible trials; trials
# beyond are drawn at the edge, marked as outside.
PARETO_QUANTILES = (0.02, 0.98)


class Missing(Exception):
    """Raised by a panel function: this study lacks what the panel needs (the message says what)."""


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    data: Any = None
    missing: str | None = None


# -- data objects -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """One objective over trial numbers: each value and the best feasible value so far.

    With more than :data:`MAX_POINTS` completed trials the points are a sample (see
    :func:`sample`) that keeps every trial where the best changed, so ``best`` drawn as a step
    line over ``numbers`` is exact."""

    name: str
    direction: str
    numbers: tuple[int, ...]
    values: tuple[float, ...]
    best: tuple[float | None, ...]
    warm_start: tuple[bool, ...]
    feasible: tuple[bool, ...]


@dataclass(frozen=True)
class History:
    """Per objective a :class:`Series`; several objectives: the normalized hypervolume.

    ``hypervolume`` is ``(trial numbers, values)`` after each feasible completed trial (sampled at
    up to 400 trials, exact there): the volume dominated by the feasible front, with each
    objective scaled to [0, 1] between its best and worst feasible value and the reference point
    at 1.1, divided by the volume of that reference box (1.1 ** k), so it lies in [0, 1].
    ``last_trial`` is the study's last trial number, ``last_feasible`` the last feasible completed
    one: after it the best-so-far line has no new point (later trials were pruned, failed,
    infeasible or are running)."""

    series: tuple[Series, ...]
    hypervolume: tuple[tuple[int, ...], tuple[float, ...]] | None = None
    last_trial: int | None = None
    last_feasible: int | None = None
    n_complete: int = 0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Importances:
    target: str
    evaluator: str
    values: dict[str, float]  # parameter -> importance, most important first
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Axis:
    """A parameter or objective as an axis. Categorical values are indices into ``labels``;
    ``None`` marks a trial where a conditional parameter was inactive."""

    name: str
    values: tuple[float | None, ...]
    labels: tuple[str, ...] | None = None
    log: bool = False
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class ParallelCoordinates:
    """``axes``: every parameter by importance (``n_params`` of them), then the objectives.
    ``color`` is the first objective (``color_name``, its direction ``color_direction``).
    ``numbers`` may be a sample of ``n_total`` completed trials (front and selected kept)."""

    numbers: tuple[int, ...]
    axes: tuple[Axis, ...]
    color: tuple[float, ...]
    color_name: str
    n_params: int = 0
    color_direction: str = "minimize"
    n_total: int = 0


@dataclass(frozen=True)
class Slices:
    """Every parameter by importance against each objective; ``numbers`` may be a sample of
    ``n_total`` completed trials."""

    numbers: tuple[int, ...]
    params: tuple[Axis, ...]
    objectives: dict[str, tuple[float, ...]]
    n_total: int = 0
    selected: int | None = None  # the selected trial's number, among ``numbers`` when set
    # the trials among ``numbers`` that broke a constraint (marked as in the Pareto figure)
    infeasible: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Contour:
    objective: str
    x: Axis
    y: Axis
    z: tuple[float, ...]  # the objective at the points (x.values, y.values)
    grid_x: tuple[float, ...]
    grid_y: tuple[float, ...]
    grid_z: tuple[tuple[float | None, ...], ...]  # rows along y; None far from every trial
    n_total: int = 0


@dataclass(frozen=True)
class ParetoFront:
    """Trials in objective space; ``kinds`` is one of selected, pareto, tied, dominated,
    infeasible. ``pareto`` is the front shown (the selection's, noise-aware: ties within the
    measured noise of serving costs and fold spread are resolved); ``tied`` are feasible trials
    no trial beats on every objective that the noise-aware front leaves out: tied within
    measurement noise with a front trial that is better beyond noise on another objective.

    ``ranges`` is the axis range of each objective: it covers the feasible front, the selected
    trial and the central :data:`PARETO_QUANTILES` of the feasible trials (all trials when none
    is feasible), padded by 5 %. A trial beyond is ``outside`` and drawn at the edge, so one
    outlier does not squash the front. Dominated and infeasible trials may be a sample
    (``n_total`` completed trials; the front and the selected trial are always kept)."""

    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    numbers: tuple[int, ...]
    values: tuple[tuple[float, ...], ...]
    kinds: tuple[str, ...]
    n_objectives_total: int
    ranges: tuple[tuple[float, float], ...] = ()
    outside: tuple[bool, ...] = ()
    n_total: int = 0


@dataclass(frozen=True)
class Curve:
    number: int
    state: str
    steps: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class IntermediateValues:
    objective: str  # the curves are of the first objective
    curves: tuple[Curve, ...]
    n_total: int = 0  # curves recorded; at most MAX_CURVES drawn (the best trials' kept)
    # every pruned trial (drawn or not) with the last step it reported and whether the trial
    # time limit stopped it rather than the pruner: (number, step, timed out)
    pruned: tuple[tuple[int, int, bool], ...] = ()


def pruned_label(step: int | None, timed_out: bool = False) -> str:
    """How every renderer names a pruned trial: ``PRUNED at step N``, its last reported step
    (the HTML trial table's state, the PNG folder's README.txt); ``(over the time limit)``
    when ``search.trial_timeout_s`` stopped it, which Optuna records as pruned too, but the
    pruner did not."""
    text = "PRUNED" if step is None else f"PRUNED at step {step}"
    return f"{text} (over the time limit)" if timed_out else text


def pruned_lines(d: IntermediateValues) -> list[str]:
    """The pruned trials by the step they stopped at, in :func:`pruned_label`'s words:
    ``PRUNED at step 3: trials 4, 7-9`` (every trial: a renderer without a trial table lists
    them all)."""
    by_step: dict[tuple[int, bool], list[int]] = {}
    for number, step, timed_out in d.pruned:
        by_step.setdefault((step, timed_out), []).append(number)
    return [
        f"{pruned_label(*key)}: {'trial' if len(numbers) == 1 else 'trials'} "
        + _study.number_ranges(numbers)
        for key, numbers in sorted(by_step.items())
    ]


@dataclass(frozen=True)
class WorkerRow:
    worker: str
    counts: dict[str, int]
    busy_s: float | None  # None: every trial's time is unknown
    n_best: int  # trials of this worker on the (feasible) front / the best
    # trials whose time is unknown (the worker died before their first heartbeat): not 0 s
    n_unknown: int = 0

    @property
    def busy_label(self) -> str:
        """``12s busy``; ``unknown busy time`` when every trial's is unknown, else with the
        trials it leaves out (``+ 1 unknown``), as the lost-compute line says them."""
        if self.busy_s is None:
            return "unknown busy time"
        extra = f" + {self.n_unknown} unknown" if self.n_unknown else ""
        return f"{self.busy_s:.0f}s busy{extra}"


@dataclass(frozen=True)
class Workers:
    rows: tuple[WorkerRow, ...]
    n_unattributed: int = 0


#: How an axis names each unit of compute (``search.budget``'s units).
COMPUTE_LABELS = {"fit_cpu_s": "fit CPU seconds", "fit_s": "fit seconds (wall)", "steps": "steps"}


@dataclass(frozen=True)
class Anytime:
    """The best value against the compute spent (one objective): what a longer or shorter run
    would have reached, and where the best appeared."""

    objective: str
    unit: str  # fit_cpu_s, fit_s or steps (the study's compute budget's, else fit_cpu_s)
    points: tuple[tuple[float, float], ...]  # (compute spent, best so far), each improvement
    spent: float
    budget: float | None
    to_best: float | None


# -- helpers ------------------------------------------------------------------------------------
def _sign(direction: str) -> float:
    return -1.0 if direction == "maximize" else 1.0


def _axis(name: str, dist: BaseDistribution | None, trials: Sequence[FrozenTrial]) -> Axis:
    labels = categorical_labels(dist) if dist is not None else None
    values: list[float | None] = []
    for t in trials:
        if name not in t.params:
            values.append(None)
        elif labels is not None:
            values.append(
                float(labels.index(str(t.params[name]))) if str(t.params[name]) in labels else None
            )
        else:
            try:
                values.append(float(t.params[name]))
            except (TypeError, ValueError):
                values.append(None)
    low = getattr(dist, "low", None)
    high = getattr(dist, "high", None)
    return Axis(
        name,
        tuple(values),
        tuple(labels) if labels else None,
        bool(getattr(dist, "log", False)),
        low,
        high,
    )


def sample(n: int, keep: Sequence[int] | set[int] = (), limit: int = MAX_POINTS) -> list[int]:
    """Indices ``0..n-1`` to draw: all when ``n <= limit``; else every index in ``keep`` and
    evenly spaced others up to ``limit`` in all, in order. Deterministic, so two reports of the
    same study draw the same points."""
    if n <= limit:
        return list(range(n))
    kept = {i for i in keep if 0 <= i < n}
    room = max(0, limit - len(kept))
    if room:
        kept.update(np.linspace(0, n - 1, room).round().astype(int).tolist())
    return sorted(kept)


def _need_complete(view: StudyView, n: int, what: str) -> list[FrozenTrial]:
    complete = view.complete
    if len(complete) < n:
        raise Missing(
            f"{what} needs at least {n} completed trials; this study has {len(complete)}."
        )
    return complete


def _need_params(view: StudyView) -> dict[str, BaseDistribution]:
    dists = {k: d for k, d in view.distributions().items() if not d.single()}
    if not dists:
        raise Missing("the study has no tuned parameters (none or only fixed ones).")
    return dists


# -- panels -------------------------------------------------------------------------------------
def history(view: StudyView, ctx: dict[str, Any]) -> History:
    complete = _need_complete(view, 1, "the optimization history")
    ok = [view.is_feasible(t) for t in complete]
    warm = [view.is_warm(t) for t in complete]
    # The best feasible value so far, and the trials that improved it, by array operations
    # (row by row: 0.04 s at 10,000 trials). Exact: a sign of +-1 multiplies without rounding,
    # and the values of ``view.complete`` are finite.
    values = np.array([t.values for t in complete], dtype=float).reshape(len(complete), -1)
    feasible = np.array(ok, dtype=bool)
    bests: list[list[float | None]] = []
    changed: set[int] = set()
    for i, direction in enumerate(view.directions):
        sign = _sign(direction)
        loss = np.where(feasible, sign * values[:, i], np.inf)
        so_far = np.minimum.accumulate(loss)
        before = np.concatenate(([np.inf], so_far[:-1]))
        changed.update(np.flatnonzero(loss < before).tolist())
        bests.append([None if math.isinf(b) else sign * b for b in so_far.tolist()])
    keep = changed | {j for j, w in enumerate(warm) if w} | {len(complete) - 1}
    keep |= {j for j, t in enumerate(complete) if t.number == view.selected}
    idx = sample(len(complete), keep)
    series = tuple(
        Series(
            name,
            direction,
            tuple(complete[j].number for j in idx),
            tuple(complete[j].values[i] for j in idx),
            tuple(bests[i][j] for j in idx),
            tuple(warm[j] for j in idx),
            tuple(ok[j] for j in idx),
        )
        for i, (name, direction) in enumerate(zip(view.objectives, view.directions, strict=False))
    )
    last_feasible = max((t.number for t, f in zip(complete, ok, strict=False) if f), default=None)
    hypervolume, notes = _hypervolume_drawn(view) if view.multi else (None, ())
    return History(
        series,
        hypervolume,
        max(t.number for t in view.trials),
        last_feasible,
        len(complete),
        notes,
    )


def _hypervolume_drawn(
    view: StudyView,
) -> tuple[tuple[tuple[int, ...], tuple[float, ...]] | None, tuple[str, ...]]:
    """The hypervolume history, or None when it would mean nothing, with the notes that say
    how to read it. Normalized between the study's own best and worst feasible values, one
    feasible trial (or trials alike in every objective) is the whole box: 1.0 after a single
    trial read as a perfect front."""
    ok = [t for t in view.complete if view.is_feasible(t)]
    loss = pareto.losses([t.values for t in ok], view.directions) if ok else None
    flat = [] if loss is None else [
        name
        for name, lo, hi in zip(view.objectives, loss.min(axis=0), loss.max(axis=0), strict=False)
        if hi <= lo
    ]
    if len(ok) < 2 or len(flat) == len(view.objectives):
        return None, (
            f"Hypervolume not drawn: it is measured between the study's own best and worst "
            f"feasible values, which needs 2 or more feasible trials that differ ({len(ok)} "
            "feasible so far).",
        )
    notes = [
        "Hypervolume: the share of the box between this study's own best and worst feasible "
        "values (the reference point 10% beyond the worst) that the feasible front dominates; "
        "relative to this study, not comparable between studies."
    ]
    if flat:
        notes.append(
            f"{', '.join(flat)} took one value over the feasible trials: the hypervolume "
            "measures the other objectives only."
        )
    return _hypervolume_history(view), tuple(notes)


def normalized_losses(
    view: StudyView, trials: Sequence[FrozenTrial]
) -> tuple[np.ndarray, np.ndarray]:
    """Losses of ``trials`` scaled to [0, 1] per objective between the best and the worst
    feasible value in the whole study, and the reference point (1.1 in every objective): the
    frame of the report's hypervolume (history and the convergence finding)."""
    ok = [t for t in view.complete if view.is_feasible(t)]
    ref = np.full(len(view.directions), 1.1)
    if not ok:
        return np.zeros((0, len(ref))), ref
    every = pareto.losses([t.values for t in ok], view.directions)
    lo, hi = every.min(axis=0), every.max(axis=0)
    loss = pareto.losses([t.values for t in trials], view.directions)
    return (loss - lo) / np.where(hi > lo, hi - lo, 1.0), ref


def feasible_losses(
    view: StudyView,
) -> tuple[list[FrozenTrial], np.ndarray, np.ndarray, list[int]]:
    """The feasible complete trials (trial order), their :func:`normalized_losses`, the
    reference point and the rows that grew the front (:func:`front_changes`): computed once
    per view, for the history panel and the convergence finding (10,000 trials: 0.05 s each
    time)."""
    cached = view.memo.get("feasible_losses")
    if cached is None:
        ok = [t for t in view.complete if view.is_feasible(t)]
        loss, ref = normalized_losses(view, ok)
        cached = (ok, loss, ref, front_changes(loss) if ok else [])
        view.memo["feasible_losses"] = cached
    return cached  # type: ignore[no-any-return]


def _hypervolume_history(view: StudyView) -> tuple[tuple[int, ...], tuple[float, ...]] | None:
    ok, loss, ref, changes = feasible_losses(view)
    if not ok:
        return None
    # The hypervolume changes only at rows that grew the front: the history of those rows (a
    # step line through them) is the exact history of all, at a fraction of the cost. Sampled
    # at up to 400 of them (exact there).
    indices, values = pareto.hypervolume_history(loss[changes], ref)
    box = float(np.prod(ref))
    numbers = [ok[changes[i]].number for i in indices]
    hv = [min(1.0, float(v) / box) for v in values]
    if numbers and numbers[-1] != ok[-1].number:  # the value holds to the last feasible trial
        numbers.append(ok[-1].number)
        hv.append(hv[-1])
    return tuple(numbers), tuple(hv)


def front_changes(loss: np.ndarray) -> list[int]:
    """Indices of the rows that grew the front: not weakly dominated by any earlier row (the
    only rows where the hypervolume can change). Two objectives: the front is kept sorted by
    the first loss and searched by bisection (O(n log n)); more: compared row by row."""
    out: list[int] = []
    if loss.shape[1] != 2:
        # A row of the final front is weakly dominated by an earlier row only when that row
        # is identical to it; only the other rows are compared with the rows kept so far
        # (weak dominance is transitive, so none need leave). A 10,000-row front: 3.3 s -> 0.1.
        final = pareto.pareto_mask(loss, [])
        kept = np.empty_like(loss)
        size = 0
        seen: set[tuple[float, ...]] = set()
        for i, row in enumerate(loss):
            if final[i]:
                key = tuple(row.tolist())
                if key in seen:
                    continue
                seen.add(key)
            elif size and (kept[:size] <= row).all(axis=1).any():
                continue
            kept[size] = row
            size += 1
            out.append(i)
        return out
    xs: list[float] = []  # the front by increasing first loss; second loss strictly decreasing
    ys: list[float] = []
    for i, (x, y) in enumerate(loss.tolist()):
        k = bisect.bisect_right(xs, x)  # front points with first loss <= x are xs[:k]
        if k and ys[k - 1] <= y:  # the best second loss among them is ys[k - 1]
            continue
        j = k
        while j < len(xs) and ys[j] >= y:  # points now dominated: first loss >= x, second >= y
            j += 1
        if k and xs[k - 1] == x:  # same first loss, worse second: dominated too
            k -= 1
        xs[k:j] = [x]
        ys[k:j] = [y]
        out.append(i)
    return out


def importances(view: StudyView, ctx: dict[str, Any]) -> Importances:
    """Optuna's default evaluator, PED-ANOVA (fANOVA is far slower at 1k trials), loaded
    without scikit-learn (:func:`tuneops._optuna.param_importances`)."""
    _need_params(view)
    _need_complete(view, 2, "parameter importances")
    if view.study is None:
        raise Missing("importances need the study itself, not only its trials.")
    evaluator = "PedAnovaImportanceEvaluator"
    complete = view.complete
    subset: list[FrozenTrial] | None = None
    sampled: tuple[str, ...] = ()
    if len(complete) > IMPORTANCE_TRIALS:
        subset = [complete[i] for i in sample(len(complete), (), IMPORTANCE_TRIALS)]
        sampled = (
            f"Computed on {IMPORTANCE_TRIALS} of the {len(complete)} completed trials, "
            "evenly spread over the study.",
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            values = _optuna.param_importances(view.study, subset)
        except Exception as exc:  # a third-party algorithm failing must not take the report down
            raise Missing(
                f"Optuna's {evaluator} failed on this study: {type(exc).__name__}: {exc}"
            ) from None
    notes = sampled + tuple(dict.fromkeys(str(w.message) for w in caught))
    target = "reaching the Pareto front" if view.multi else view.objectives[0]
    return Importances(target, evaluator, dict(values), notes)


def _ranked_params(
    view: StudyView, ctx: dict[str, Any], complete: Sequence[FrozenTrial] | None = None
) -> list[str]:
    """Parameters by importance; with ``complete``, only those at least one of them set (a
    family tried only in pruned or failed trials has no values to draw)."""
    dists = _need_params(view)
    imp = ctx.get("importances")
    order = [p for p in (imp.values if imp else {}) if p in dists]
    names = order + [p for p in dists if p not in order]
    return names if complete is None else [n for n in names if any(n in t.params for t in complete)]


def _sampled(view: StudyView, complete: list[FrozenTrial], limit: int) -> list[FrozenTrial]:
    """``complete`` thinned to ``limit`` trials, keeping the best (or the front), the selected."""
    if len(complete) <= limit:
        return complete
    important = set(best_numbers(view)) | {view.selected}
    return [
        complete[i]
        for i in sample(
            len(complete), {i for i, t in enumerate(complete) if t.number in important}, limit
        )
    ]


def parallel_coordinates(view: StudyView, ctx: dict[str, Any]) -> ParallelCoordinates:
    dists = _need_params(view)
    complete = _need_complete(view, 2, "parallel coordinates")
    names = _ranked_params(view, ctx, complete)
    shown = _sampled(view, complete, MAX_LINES)
    axes = [_axis(n, dists[n], shown) for n in names]
    axes += [Axis(o, tuple(t.values[i] for t in shown)) for i, o in enumerate(view.objectives)]
    return ParallelCoordinates(
        tuple(t.number for t in shown),
        tuple(axes),
        tuple(t.values[0] for t in shown),
        view.objectives[0],
        len(names),
        view.directions[0],
        len(complete),
    )


def slices(view: StudyView, ctx: dict[str, Any]) -> Slices:
    dists = _need_params(view)
    complete = _need_complete(view, 2, "slice plots")
    names = _ranked_params(view, ctx, complete)
    # Each point is drawn once per parameter and objective: fewer of them in wide studies.
    shown = _sampled(
        view, complete, max(300, MAX_POINTS * 8 // max(8, len(names) * len(view.objectives)))
    )
    return Slices(
        tuple(t.number for t in shown),
        tuple(_axis(n, dists[n], shown) for n in names),
        {o: tuple(t.values[i] for t in shown) for i, o in enumerate(view.objectives)},
        len(complete),
        view.selected if any(t.number == view.selected for t in shown) else None,
        frozenset(t.number for t in shown if not view.is_feasible(t)),
    )


def contour(view: StudyView, ctx: dict[str, Any]) -> Contour:
    """The first objective over the two most important parameters that trials set together.

    The surface is an inverse-distance-weighted mean of the trials (power 2, in the parameters'
    scaled [0, 1] coordinates, log scale for log parameters) on a 40 x 40 grid, left blank where
    no trial lies within 1/8 of the ranges (no extrapolation into unexplored corners)."""
    dists = _need_params(view)
    complete = _need_complete(view, 3, "a contour")
    names = _ranked_params(view, ctx)
    if len(names) < 2:
        raise Missing(f"a contour needs two tuned parameters; this study has one ({names[0]}).")

    # The two most important parameters that trials set together (conditional spaces: the top
    # two may belong to different model families and never meet).
    def spans(a: str, b: str) -> bool:
        together = [p for p in (t.params for t in complete) if a in p and b in p]
        return len(together) >= 3 and _varies(together, a) and _varies(together, b)

    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    chosen = next(((a, b) for a, b in pairs if spans(a, b)), None)
    if chosen is None:
        raise Missing("no two parameters vary together in 3 or more completed trials.")
    x_name, y_name = chosen
    setting_both = [t for t in complete if x_name in t.params and y_name in t.params]
    both = _sampled(view, setting_both, MAX_POINTS // 2)
    x, y = _axis(x_name, dists[x_name], both), _axis(y_name, dists[y_name], both)
    z = np.array([t.values[0] for t in both])

    def scaled(a: Axis) -> np.ndarray:
        v = np.array(a.values, dtype=float)
        return np.log10(v) if a.log else v

    px, py = scaled(x), scaled(y)
    gx = np.linspace(px.min(), px.max(), 40)
    gy = np.linspace(py.min(), py.max(), 40)
    if np.ptp(px) == 0 or np.ptp(py) == 0:
        raise Missing(f"all trials share one value of {x_name if np.ptp(px) == 0 else y_name}.")
    grid = _idw(px, py, z, gx, gy)

    def unscale(g, a):
        return 10**g if a.log else g

    return Contour(
        view.objectives[0],
        x,
        y,
        tuple(z.tolist()),
        tuple(unscale(gx, x).tolist()),
        tuple(unscale(gy, y).tolist()),
        tuple(tuple(None if math.isnan(v) else float(v) for v in row) for row in grid),
        len(setting_both),  # the trials it could draw: a sample note only when it sampled
    )


def _varies(params: Sequence[dict[str, Any]], name: str) -> bool:
    """Whether ``name`` takes two values (compared by ``repr``) in ``params``; stops at the
    second (a set of 10,000 reprs per parameter took 0.03 s of a report)."""
    first = repr(params[0][name]) if params else None
    return any(repr(p[name]) != first for p in params)


def _idw(
    px: np.ndarray, py: np.ndarray, z: np.ndarray, gx: np.ndarray, gy: np.ndarray
) -> np.ndarray:
    """Inverse-distance weights (power 2) of the points at each grid node; NaN far from all."""
    sx, sy = (np.ptp(px) or 1.0), (np.ptp(py) or 1.0)
    nx, ny = (px - px.min()) / sx, (py - py.min()) / sy
    mx, my = np.meshgrid((gx - px.min()) / sx, (gy - py.min()) / sy)
    d2 = (mx.reshape(-1, 1) - nx) ** 2 + (my.reshape(-1, 1) - ny) ** 2
    near = d2.min(axis=1) <= (1 / 8) ** 2
    w = 1.0 / np.maximum(d2, 1e-12)
    value = (w @ z) / w.sum(axis=1)
    return np.where(near, value, np.nan).reshape(mx.shape)


def pareto_front(view: StudyView, ctx: dict[str, Any]) -> ParetoFront:
    if not view.multi:
        raise Missing("a single-objective study has no trade-off; see the optimization history.")
    # A repeat is its earlier trial's model, point for point: drawn, it read as a second trial
    # "tied" with the front (tuneops.repeats)
    complete = [t for t in _need_complete(view, 1, "a Pareto front") if _study.found(t)]
    k = min(3, len(view.directions))
    values = np.array([t.values for t in complete], dtype=float)
    ok = np.array([view.is_feasible(t) for t in complete])
    front_numbers = set(view.best)
    on_front = np.array([t.number in front_numbers for t in complete])
    # The selection's front is noise-aware (tuneops.selection.noise_front): a trial that
    # nothing beats on every objective may be left out of it, tied within measured noise with
    # a front trial that is better beyond noise elsewhere. Drawn as "dominated" it read as
    # beaten; it is a kind of its own.
    tied = np.zeros(len(complete), dtype=bool)
    if ok.any():
        tied[ok] = pareto_mask(values[ok], view.directions)
        tied &= ~on_front
    kinds = [
        "selected"
        if t.number == view.selected
        else "infeasible"
        if not f
        else "pareto"
        if p
        else "tied"
        if n
        else "dominated"
        for t, f, p, n in zip(complete, ok, on_front, tied, strict=False)
    ]
    values = values[:, :k]
    shown = ("pareto", "tied", "selected")  # always kept, never beyond the axes
    ranges = _pareto_ranges(values, ok, np.array([kd in shown for kd in kinds]))
    # a serving cost is never negative: the padding must not draw "-0.5 ms"
    ranges = tuple(
        (max(lo, 0.0), hi) if is_cost(name) and lo < 0 <= values[:, i].min() else (lo, hi)
        for i, (name, (lo, hi)) in enumerate(zip(view.objectives[:k], ranges, strict=False))
    )
    idx = sample(len(complete), {i for i, kd in enumerate(kinds) if kd in shown})
    outside = [
        bool(any(not lo <= v <= hi for v, (lo, hi) in zip(values[i], ranges, strict=False)))
        for i in idx
    ]
    return ParetoFront(
        view.objectives[:k],
        view.directions[:k],
        tuple(complete[i].number for i in idx),
        tuple(tuple(float(v) for v in values[i]) for i in idx),
        tuple(kinds[i] for i in idx),
        len(view.directions),
        ranges,
        tuple(outside),
        len(complete),
    )


def _pareto_ranges(
    values: np.ndarray, ok: np.ndarray, front: np.ndarray
) -> tuple[tuple[float, float], ...]:
    base = values[ok] if ok.any() else values
    # Quantiles taken among the trials' own values, never between two of them: interpolated,
    # the 98th percentile of 8 trials lay below the largest, and an ordinary trial was drawn at
    # the edge as if it were an outlier. Fewer than 50 trials: the extremes; more: the outer 2 %.
    lo_q = np.quantile(base, PARETO_QUANTILES[0], axis=0, method="lower")
    hi_q = np.quantile(base, PARETO_QUANTILES[1], axis=0, method="higher")
    must = values[front] if front.any() else base
    lo = np.minimum(lo_q, must.min(axis=0))
    hi = np.maximum(hi_q, must.max(axis=0))
    pad = np.where(hi > lo, 0.05 * (hi - lo), np.maximum(np.abs(hi) * 0.05, 1e-9))
    return tuple((float(a), float(b)) for a, b in zip(lo - pad, hi + pad, strict=False))


def _has_curve(t: FrozenTrial) -> bool:
    return bool(t.intermediate_values) or _study.INTERMEDIATE in t.user_attrs


def intermediate_values(view: StudyView, ctx: dict[str, Any]) -> IntermediateValues:
    """Learning curves of the first objective; at most :data:`MAX_CURVES` (the best trials, or
    the front, and the selected one always among them)."""
    candidates = [t for t in view.trials if _has_curve(t)]
    best = set(view.best) | {view.selected}
    idx = sample(
        len(candidates), {i for i, t in enumerate(candidates) if t.number in best}, MAX_CURVES
    )
    curves = []
    for i in idx:
        t = candidates[i]
        curve = intermediate_curve(t, len(view.directions))
        if curve is not None:
            curves.append(Curve(t.number, t.state.name, tuple(curve[0]), tuple(curve[1])))
    if not curves:
        if _pruning_off(view):
            # the cause, not a consequence: "the objective did not report steps, so nothing
            # could be pruned" was said of a spec run with pruner: none
            if _study.SPEC in view.attrs:
                # auto turns pruning off for a small study and records why
                why = view.attrs.get(_study.PRUNER_OFF) or "the spec's search.pruner is none"
                advice = (
                    "Run more trials (or name a pruner in search.pruner)"
                    if view.attrs.get(_study.PRUNER_OFF)
                    else "Choose a pruner (search.pruner: auto)"
                )
                raise Missing(
                    f"pruning was off ({why}): trials were trained in one go, with no "
                    f"learning-curve steps to record. {advice} to train step by step and see "
                    "the curves."
                )
            raise Missing(
                f"pruning was off (the study's pruner is {view.attrs.get(_study.PRUNER)}): "
                "no trial reported intermediate values."
            )
        raise Missing(
            "no trial reported intermediate values (the objective did not report "
            "learning-curve steps, so nothing could be pruned)."
        )
    pruned = []
    for t in candidates:
        stopped = _study.pruned_at(t)
        if stopped is not None:
            pruned.append((t.number, int(stopped["step"]), _study.TIMED_OUT in t.user_attrs))
    return IntermediateValues(view.objectives[0], tuple(curves), len(candidates), tuple(pruned))


def _pruning_off(view: StudyView) -> bool:
    """Whether the run chose no pruner: the spec's ``search.pruner: none`` (a name or a
    ``{name: none}``), or the pruner the run recorded (``tuneops:pruner``) is Optuna's
    ``NopPruner`` (``auto`` for a small study, whose reason is ``tuneops:pruner_off``)."""
    spec = view.attrs.get(_study.SPEC)
    search = spec.get("search") if isinstance(spec, Mapping) else None
    chosen = search.get("pruner") if isinstance(search, Mapping) else None
    if isinstance(chosen, Mapping):
        chosen = chosen.get("name")
    if chosen == "none":
        return True
    # what the run resolved: search.pruner auto is off for a study of fewer than 10 trials (a
    # spec run of 8 was told "the objective did not report learning-curve steps")
    return str(view.attrs.get(_study.PRUNER) or "").startswith("NopPruner")


def workers(view: StudyView, ctx: dict[str, Any]) -> Workers:
    """Per worker: trials by state, busy time, members of the best/front; the counting is
    ``tuneops.contribution``'s (the same as results.json and ``tuneops show``)."""
    from tuneops.contribution import worker_contributions

    stored = view.sections.get("workers")  # computed already for these trials (the run's record)
    if "workers" in view.sections:
        contributions = list(stored["workers"]) if stored else []
    else:
        printed = (view.selection or {}).get("pareto_front") if view.multi else None
        contributions = worker_contributions(
            view.trials, view.directions, printed, is_feasible=view.is_feasible
        )
    if not contributions:
        raise Missing("no trial recorded which worker ran it (user attr 'worker').")
    rows = tuple(
        WorkerRow(
            r["worker"],
            {
                "COMPLETE": r["complete"],
                "PRUNED": r["pruned"],
                "FAIL": r["failed"] + r["abandoned"],
                "RUNNING": r["running"],
            },
            r["busy_s"],
            r["pareto"] if view.multi else int(r["has_best"]),
            r.get("busy_unknown") or 0,  # a results.json written before it: none known
        )
        for r in contributions
    )
    unattributed = sum(
        1
        for t in view.trials
        if t.state != TrialState.WAITING and not t.user_attrs.get(_study.WORKER)
    )
    return Workers(rows, unattributed)


def anytime(view: StudyView, ctx: dict[str, Any]) -> Anytime:
    """The anytime curve of ``results.json``'s ``pruning.compute``: best feasible value against
    the compute the finished trials spent, in order of completion (one objective)."""
    if view.multi:
        raise Missing("one objective only: with several, the history panel's hypervolume is it.")
    compute = (pruning_section(view) or {}).get("compute") or {}
    points = tuple((float(x), float(y)) for x, y in compute.get("anytime") or ())
    if not points:
        if not any(view.is_feasible(t) for t in view.complete):
            # the curve starts at the first feasible completed trial: a spec run whose every
            # trial was pruned read "no trial recorded the compute it spent"
            raise Missing(f"no feasible trial completed ({_unfinished_account(view)}).")
        raise Missing(
            "no trial recorded the compute it spent (trials of a spec or of tune() do; a plain "
            "Optuna study does not)."
        )
    return Anytime(
        view.objectives[0],
        str(compute.get("unit", "fit_cpu_s")),
        points,
        float(compute.get("spent", points[-1][0])),
        compute.get("budget"),
        compute.get("to_best"),
    )


def _unfinished_account(view: StudyView) -> str:
    """What became of the trials when none completed feasible: ``3 pruned, 1 failed``."""
    counts = _study.state_counts(view.trials)
    infeasible = sum(not view.is_feasible(t) for t in view.complete)
    parts = [
        f"{n} {label}"
        for n, label in (
            (infeasible, "completed but infeasible (violates a constraint)"),
            (counts["PRUNED"], "pruned"),
            (counts["FAIL"], "failed"),
            (counts["ABANDONED"], "abandoned"),
            (counts["RUNNING"] + counts["WAITING"], "running or waiting"),
        )
        if n
    ]
    return ", ".join(parts) or "no trial finished"


def sample_note(panel: Panel) -> str:
    """What a panel draws when it draws a sample of the trials (or curves), and how the sample
    was chosen; "" when it draws them all. Written under the figure by every renderer."""
    d = panel.data
    if d is None:
        return ""
    total = getattr(d, "n_total", 0)
    shown = len(getattr(d, "numbers", ()) or getattr(d, "curves", ()) or getattr(d, "z", ()))
    if panel.key == "history":
        total, shown = d.n_complete, len(d.series[0].numbers) if d.series else 0
    if not total or shown >= total:
        return ""
    what = "curves" if panel.key == "intermediate_values" else "trials"
    return (
        f"Drawn: {shown} of {total} {what}, evenly spread over the study, always including the "
        "best (or the Pareto front), the selected trial and every improvement."
    )


def is_cost(name: str) -> bool:
    """Whether objective ``name`` is a serving cost (latency, size, time): never negative, so
    its axes start at 0 at the lowest."""
    metric = METRICS.get(name)
    return metric is not None and metric.is_serving_cost


def best_numbers(view: StudyView) -> list[int]:
    """The best feasible trial (one objective) or the feasible Pareto front (several)."""
    return list(view.best)


# The panels in report order: key -> (title, function). Explicit, so a reader sees them all.
PANELS: dict[str, tuple[str, Callable[[StudyView, dict[str, Any]], Any]]] = {
    "history": ("Optimization history", history),
    "importances": ("Parameter importances", importances),
    "pareto_front": ("Pareto front", pareto_front),
    "parallel_coordinates": ("Parallel coordinates", parallel_coordinates),
    "slices": ("Slice plots", slices),
    "contour": ("Contour of the two most important parameters", contour),
    "intermediate_values": ("Learning curves (intermediate values)", intermediate_values),
    "workers": ("Worker contribution", workers),
    "anytime": ("Best against compute spent", anytime),
}


def compute_panels(view: StudyView, keys: Sequence[str] | None = None) -> list[Panel]:
    """Every panel for ``view`` (or the given ``keys``), in report order."""
    ctx: dict[str, Any] = {}
    panels = []
    for key, (title, fn) in PANELS.items():
        if keys is not None and key not in keys:
            continue
        try:
            data = fn(view, ctx)
        except Missing as exc:
            panels.append(Panel(key, title, None, str(exc)))
            continue
        ctx[key] = data
        panels.append(Panel(key, title, data))
    return panels
