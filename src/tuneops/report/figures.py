"""Each panel of a report as plain data, computed from a :class:`~tuneops.report.view.StudyView`.

Renderers (HTML, PNG) only draw these objects; tests check the data, not pixels (the pattern
of ``optuna/visualization/_pareto_front.py``). A panel that cannot be drawn for a study (one
trial, no parameters, a single objective for a Pareto front) is a :class:`Panel` with
``data=None`` and ``missing`` saying why.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from tuneops import pareto
from tuneops.pareto import pareto_mask
from tuneops.report.view import (
    StudyView,
    categorical_labels,
    feasible,
    intermediate_curve,
    is_warm_start,
)

__all__ = [
    "Panel", "Missing", "Series", "History", "Importances", "Axis", "ParallelCoordinates",
    "Slices", "Contour", "ParetoFront", "Curve", "IntermediateValues", "WorkerRow", "Workers",
    "compute_panels", "PANELS",
]

MAX_SLICES = 8  # the most important parameters get a slice; more would be unreadable


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
    """One objective over trial numbers: each value and the best feasible value so far."""

    name: str
    direction: str
    numbers: tuple[int, ...]
    values: tuple[float, ...]
    best: tuple[float | None, ...]
    warm_start: tuple[bool, ...]
    feasible: tuple[bool, ...]


@dataclass(frozen=True)
class History:
    series: tuple[Series, ...]
    # Multi-objective: hypervolume of the feasible front after each trial (objectives
    # normalized to [0, 1] over the study, reference point 1.1): one number for "still improving".
    hypervolume: tuple[tuple[int, ...], tuple[float, ...]] | None = None


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
    numbers: tuple[int, ...]
    axes: tuple[Axis, ...]
    color: tuple[float, ...]
    color_name: str


@dataclass(frozen=True)
class Slices:
    numbers: tuple[int, ...]
    params: tuple[Axis, ...]
    objectives: dict[str, tuple[float, ...]]


@dataclass(frozen=True)
class Contour:
    objective: str
    x: Axis
    y: Axis
    z: tuple[float, ...]  # the objective at the points (x.values, y.values)
    grid_x: tuple[float, ...]
    grid_y: tuple[float, ...]
    grid_z: tuple[tuple[float | None, ...], ...]  # rows along y; None outside the points' hull


@dataclass(frozen=True)
class ParetoFront:
    """Trials in objective space; ``kinds`` is one of selected, pareto, dominated, infeasible."""

    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    numbers: tuple[int, ...]
    values: tuple[tuple[float, ...], ...]
    kinds: tuple[str, ...]
    n_objectives_total: int


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


@dataclass(frozen=True)
class WorkerRow:
    worker: str
    counts: dict[str, int]
    busy_s: float
    n_best: int  # trials of this worker on the (feasible) front / the best


@dataclass(frozen=True)
class Workers:
    rows: tuple[WorkerRow, ...]
    n_unattributed: int = 0


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
            values.append(float(labels.index(str(t.params[name]))) if str(t.params[name]) in labels else None)
        else:
            try:
                values.append(float(t.params[name]))
            except (TypeError, ValueError):
                values.append(None)
    low = getattr(dist, "low", None)
    high = getattr(dist, "high", None)
    return Axis(name, tuple(values), tuple(labels) if labels else None,
                bool(getattr(dist, "log", False)), low, high)


def _need_complete(view: StudyView, n: int, what: str) -> list[FrozenTrial]:
    complete = view.complete
    if len(complete) < n:
        raise Missing(f"{what} needs at least {n} completed trials; this study has {len(complete)}.")
    return complete


def _need_params(view: StudyView) -> dict[str, BaseDistribution]:
    dists = {k: d for k, d in view.distributions().items() if not d.single()}
    if not dists:
        raise Missing("the study has no tuned parameters (none or only fixed ones).")
    return dists


# -- panels -------------------------------------------------------------------------------------
def history(view: StudyView, ctx: dict[str, Any]) -> History:
    complete = _need_complete(view, 1, "the optimization history")
    series = []
    for i, (name, direction) in enumerate(zip(view.objectives, view.directions)):
        best: list[float | None] = []
        current: float | None = None
        for t in complete:
            if feasible(t):
                v = t.values[i]
                if current is None or _sign(direction) * v < _sign(direction) * current:
                    current = v
            best.append(current)
        series.append(Series(
            name, direction, tuple(t.number for t in complete), tuple(t.values[i] for t in complete),
            tuple(best), tuple(is_warm_start(t) for t in complete), tuple(feasible(t) for t in complete),
        ))
    return History(tuple(series), _hypervolume_history(view, complete) if view.multi else None)


def _hypervolume_history(view: StudyView, complete: list[FrozenTrial]) -> tuple[tuple[int, ...], tuple[float, ...]] | None:
    ok = [t for t in complete if feasible(t)]
    if not ok:
        return None
    loss = pareto.losses([t.values for t in ok], view.directions)
    lo, hi = loss.min(axis=0), loss.max(axis=0)
    loss = (loss - lo) / np.where(hi > lo, hi - lo, 1.0)
    # Sampled at up to 400 trials (exact there): a 10,000-trial history drawn point by point
    # costs a hypervolume per new front point and shows nothing more.
    indices, values = pareto.hypervolume_history(loss, np.full(loss.shape[1], 1.1))
    return tuple(ok[i].number for i in indices), tuple(float(v) for v in values)


def importances(view: StudyView, ctx: dict[str, Any]) -> Importances:
    """Optuna's default evaluator (PED-ANOVA in Optuna 5; fANOVA is far slower at 1k trials)."""
    import optuna.importance as importance  # the module itself, not Optuna's lazy attribute

    _need_params(view)
    _need_complete(view, 2, "parameter importances")
    if view.study is None:
        raise Missing("importances need the study itself, not only its trials.")
    evaluator = importance.PedAnovaImportanceEvaluator()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            values = importance.get_param_importances(view.study, evaluator=evaluator)
        except Exception as exc:  # a third-party algorithm failing must not take the report down
            raise Missing(f"Optuna's {type(evaluator).__name__} failed on this study: "
                          f"{type(exc).__name__}: {exc}") from None
    notes = tuple(dict.fromkeys(str(w.message) for w in caught))
    target = "reaching the Pareto front" if view.multi else view.objectives[0]
    return Importances(target, type(evaluator).__name__, dict(values), notes)


def _ranked_params(view: StudyView, ctx: dict[str, Any], complete: Sequence[FrozenTrial] | None = None) -> list[str]:
    """Parameters by importance; with ``complete``, only those at least one of them set (a
    family tried only in pruned or failed trials has no values to draw)."""
    dists = _need_params(view)
    imp = ctx.get("importances")
    order = [p for p in (imp.values if imp else {}) if p in dists]
    names = order + [p for p in dists if p not in order]
    return names if complete is None else [n for n in names if any(n in t.params for t in complete)]


def parallel_coordinates(view: StudyView, ctx: dict[str, Any]) -> ParallelCoordinates:
    dists = _need_params(view)
    complete = _need_complete(view, 2, "parallel coordinates")
    names = _ranked_params(view, ctx, complete)
    axes = [_axis(n, dists[n], complete) for n in names]
    axes += [Axis(o, tuple(t.values[i] for t in complete)) for i, o in enumerate(view.objectives)]
    return ParallelCoordinates(tuple(t.number for t in complete), tuple(axes),
                               tuple(t.values[0] for t in complete), view.objectives[0])


def slices(view: StudyView, ctx: dict[str, Any]) -> Slices:
    dists = _need_params(view)
    complete = _need_complete(view, 2, "slice plots")
    names = _ranked_params(view, ctx, complete)[:MAX_SLICES]
    return Slices(
        tuple(t.number for t in complete),
        tuple(_axis(n, dists[n], complete) for n in names),
        {o: tuple(t.values[i] for t in complete) for i, o in enumerate(view.objectives)},
    )


def contour(view: StudyView, ctx: dict[str, Any]) -> Contour:
    from scipy.interpolate import griddata

    dists = _need_params(view)
    complete = _need_complete(view, 3, "a contour")
    names = _ranked_params(view, ctx)
    if len(names) < 2:
        raise Missing(f"a contour needs two tuned parameters; this study has one ({names[0]}).")
    # The two most important parameters that trials set together (conditional spaces: the top
    # two may belong to different model families and never meet).
    def spans(a: str, b: str) -> bool:
        together = [t for t in complete if a in t.params and b in t.params]
        return (len(together) >= 3 and len({repr(t.params[a]) for t in together}) > 1
                and len({repr(t.params[b]) for t in together}) > 1)

    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    chosen = next(((a, b) for a, b in pairs if spans(a, b)), None)
    if chosen is None:
        raise Missing("no two parameters vary together in 3 or more completed trials.")
    x_name, y_name = chosen
    both = [t for t in complete if x_name in t.params and y_name in t.params]
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
    try:
        grid = griddata(np.c_[px, py], z, tuple(np.meshgrid(gx, gy)), method="linear")
    except Exception as exc:  # qhull: points on a line
        raise Missing(f"the trials' points do not span an area ({type(exc).__name__}).") from None
    unscale = (lambda g, a: 10 ** g if a.log else g)
    return Contour(
        view.objectives[0], x, y, tuple(z.tolist()),
        tuple(unscale(gx, x).tolist()), tuple(unscale(gy, y).tolist()),
        tuple(tuple(None if math.isnan(v) else float(v) for v in row) for row in grid),
    )


def pareto_front(view: StudyView, ctx: dict[str, Any]) -> ParetoFront:
    if not view.multi:
        raise Missing("a single-objective study has no trade-off; see the optimization history.")
    complete = _need_complete(view, 1, "a Pareto front")
    k = min(3, len(view.directions))
    values = np.array([t.values for t in complete], dtype=float)
    ok = np.array([feasible(t) for t in complete])
    on_front = np.zeros(len(complete), dtype=bool)
    if ok.any():
        on_front[np.flatnonzero(ok)] = pareto_mask(values[ok], view.directions)
    kinds = []
    for t, f, p in zip(complete, ok, on_front):
        kinds.append("selected" if t.number == view.selected else
                     "infeasible" if not f else "pareto" if p else "dominated")
    return ParetoFront(
        view.objectives[:k], view.directions[:k], tuple(t.number for t in complete),
        tuple(tuple(float(v) for v in row[:k]) for row in values), tuple(kinds), len(view.directions),
    )


def intermediate_values(view: StudyView, ctx: dict[str, Any]) -> IntermediateValues:
    curves = []
    for t in view.trials:
        curve = intermediate_curve(t, len(view.directions))
        if curve is not None:
            curves.append(Curve(t.number, t.state.name, tuple(curve[0]), tuple(curve[1])))
    if not curves:
        raise Missing("no trial reported intermediate values (the objective did not report "
                      "learning-curve steps, so nothing could be pruned).")
    return IntermediateValues(view.objectives[0], tuple(curves))


def workers(view: StudyView, ctx: dict[str, Any]) -> Workers:
    """Per worker: trials by state, busy time, members of the best/front; the counting is
    ``tuneops.contribution``'s (the same as results.json and ``tuneops show``)."""
    from tuneops.contribution import worker_contributions

    contributions = worker_contributions(view.trials, view.directions)
    if not contributions:
        raise Missing("no trial recorded which worker ran it (user attr 'worker').")
    rows = tuple(
        WorkerRow(
            r["worker"],
            {"COMPLETE": r["complete"], "PRUNED": r["pruned"],
             "FAIL": r["failed"] + r["abandoned"], "RUNNING": r["running"]},
            r["busy_s"],
            r["pareto"] if view.multi else int(r["has_best"]),
        )
        for r in contributions
    )
    unattributed = sum(
        1 for t in view.trials if t.state != TrialState.WAITING and not t.user_attrs.get("worker")
    )
    return Workers(rows, unattributed)


def best_numbers(view: StudyView) -> list[int]:
    """The best feasible trial (one objective) or the feasible Pareto front (several)."""
    ok = [t for t in view.complete if feasible(t)]
    if not ok:
        return []
    if not view.multi:
        s = _sign(view.directions[0])
        return [min(ok, key=lambda t: s * t.values[0]).number]
    mask = pareto_mask(np.array([t.values for t in ok]), view.directions)
    return [t.number for t, m in zip(ok, mask) if m]


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
