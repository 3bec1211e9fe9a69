"""Pareto fronts and hypervolumes, at any study size.

Pure functions on arrays. A front is kept incrementally (a new point is compared with the
current front only, not with every earlier point), so a 10,000-trial history costs about
``n x front`` comparisons instead of ``n x n``; hypervolumes are exact sweeps in two and three
dimensions (``n log n``) and Optuna's WFG (through :mod:`tuneops._optuna`) beyond.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np

from tuneops import _optuna

__all__ = ["losses", "pareto_mask", "hypervolume", "hypervolume_history", "ParetoFront"]


def losses(values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """``values`` turned into losses (maximised objectives negated): smaller is better
    everywhere."""
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return np.asarray(values, dtype=float).reshape(-1, len(signs)) * signs


def pareto_mask(
    values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str]
) -> np.ndarray:
    """True for rows not dominated by any other row (duplicates are all kept).

    A row dominates another when it is no worse in every objective and better in one. One
    objective: the rows equal to the best. Two objectives: one sort and a running minimum
    (``n log n``). More: rows are visited in lexicographic order, where a dominating row always
    comes first, and compared with the front found so far only (``n x front``).
    """
    loss = losses(values, directions) if len(directions) else np.asarray(values, dtype=float)
    n = len(loss)
    if n == 0:
        return np.zeros(0, dtype=bool)
    if loss.shape[1] == 1:
        return loss[:, 0] == loss[:, 0].min()
    if loss.shape[1] == 2:
        return _mask2d(loss)
    if loss.shape[1] == 3:
        return _mask3d(loss)
    mask = np.zeros(n, dtype=bool)
    front = np.empty_like(loss)  # the front so far, filled in place (no copy per member)
    size = 0
    for i in np.lexsort(loss.T[::-1]):
        row = loss[i]
        if size:
            head = front[:size]
            if ((head <= row).all(axis=1) & (head < row).any(axis=1)).any():
                continue
        mask[i] = True
        front[size] = row
        size += 1
    return mask


def _mask2d(loss: np.ndarray) -> np.ndarray:
    """:func:`pareto_mask` of two-column losses by one lexicographic sort.

    In ``(f1, f2)`` order a row is dominated exactly when a row of smaller ``f1`` has an ``f2``
    no larger, or a row of equal ``f1`` has a smaller ``f2`` (equal rows do not dominate).
    """
    order = np.lexsort((loss[:, 1], loss[:, 0]))
    x, y = loss[order, 0], loss[order, 1]
    idx = np.arange(len(x))
    starts = np.ones(len(x), dtype=bool)
    starts[1:] = x[1:] != x[:-1]
    group = np.maximum.accumulate(np.where(starts, idx, 0))  # first row of each row's f1 group
    best = np.minimum.accumulate(y)
    before = np.where(group > 0, best[np.maximum(group - 1, 0)], np.inf)  # min f2 of smaller f1
    keep = (before > y) & (y[group] == y)
    mask = np.zeros(len(x), dtype=bool)
    mask[order] = keep
    return mask


def _slot(xs: list[float], ys: list[float], x: float, y: float) -> tuple[int, int] | None:
    """Where ``(x, y)`` goes in a staircase of 2-D minima (``xs`` rising, ``ys`` falling):
    ``xs[lo:hi] = [x]; ys[lo:hi] = [y]`` replaces the members it dominates. None when a member
    weakly dominates it (no larger in both)."""
    lo = bisect.bisect_left(xs, x)
    # the members with xs <= x: the one at lo if it equals x, else the one before lo
    if (lo < len(xs) and xs[lo] == x and ys[lo] <= y) or (lo > 0 and ys[lo - 1] <= y):
        return None
    hi = lo
    while hi < len(ys) and ys[hi] >= y:
        hi += 1
    return lo, hi


def _mask3d(loss: np.ndarray) -> np.ndarray:
    """:func:`pareto_mask` of three-column losses in ``n log n``.

    Rows are visited in ``(f1, f2, f3)`` order, one group of equal ``f1`` at a time. A row of
    a group is dominated by a row of an earlier group (smaller ``f1``) exactly when one has
    ``f2`` and ``f3`` no larger: the earlier groups' ``(f2, f3)`` minima are kept as a staircase
    (``f2`` rising, ``f3`` falling) and asked by bisection. Within its group (equal ``f1``) a row
    is dominated by an earlier one of smaller ``f2`` and ``f3`` no larger, or of equal ``f2``
    and smaller ``f3`` (equal rows do not dominate). A 10,000-row front took 2.2 s compared
    with the front so far; this 0.05 s.
    """
    order = np.lexsort((loss[:, 2], loss[:, 1], loss[:, 0]))
    rows = loss[order].tolist()
    keep = np.zeros(len(rows), dtype=bool)
    ys: list[float] = []  # staircase of the earlier groups: f2 rising ...
    zs: list[float] = []  # ... f3 falling
    start = 0
    while start < len(rows):
        end = start
        while end < len(rows) and rows[end][0] == rows[start][0]:
            end += 1
        below = math.inf  # smallest f3 of the group's rows with a smaller f2 than the current
        run_f2, run_f3 = None, math.inf  # the current run of equal f2: its first (least) f3
        for k in range(start, end):
            _, y, z = rows[k]
            if y != run_f2:
                below = min(below, run_f3)
                run_f2, run_f3 = y, z
            at = bisect.bisect_right(ys, y) - 1
            dominated = (at >= 0 and zs[at] <= z) or below <= z or run_f3 < z
            keep[k] = not dominated
        for k in range(start, end):  # the group joins the staircase
            slot = _slot(ys, zs, rows[k][1], rows[k][2]) if keep[k] else None
            if slot is not None:
                ys[slot[0] : slot[1]] = [rows[k][1]]
                zs[slot[0] : slot[1]] = [rows[k][2]]
        start = end
    mask = np.zeros(len(rows), dtype=bool)
    mask[order] = keep
    return mask


class ParetoFront:
    """A front of losses kept as rows arrive: each row is compared with the front only, and
    members it dominates leave. For watching a study grow (progress lines), where recomputing
    the front of every trial at each refresh would cost ``n`` per refresh."""

    def __init__(self, n_objectives: int) -> None:
        self.rows = np.empty((0, n_objectives))

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row: Sequence[float]) -> bool:
        """Add one row of losses; True when it joined the front (equal rows are all kept)."""
        r = np.asarray(row, dtype=float)
        front = self.rows
        if len(front) and ((front <= r).all(axis=1) & (front < r).any(axis=1)).any():
            return False
        keep = ~((r <= front).all(axis=1) & (r < front).any(axis=1))
        self.rows = np.vstack([front[keep], r])
        return True


def _hv2d(front: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-D hypervolume of a mutually non-dominated set (minimisation)."""
    pts = front[np.argsort(front[:, 0])]
    widths = np.diff(np.append(pts[:, 0], ref[0]))
    return float(np.sum(widths * (ref[1] - np.minimum.accumulate(pts[:, 1]))))


def _hv3d(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact 3-D hypervolume (minimisation) of points strictly inside ``ref``, by a sweep in
    the third objective: between two consecutive ``f3`` values the dominated region's cross
    section is the 2-D area of the points passed so far, kept as a staircase (``f1`` rising,
    ``f2`` falling) whose area is updated where each point lands. ``n log n`` plus the members
    each point removes; dominated points add nothing and need no filtering first. Optuna's WFG
    took 0.7 s on a 2,000-point front, this about 0.02 s."""
    pts = points[np.argsort(points[:, 2], kind="stable")]
    rx, ry, rz = (float(v) for v in ref)
    xs: list[float] = []
    ys: list[float] = []
    area = volume = 0.0
    zs = pts[:, 2].tolist() + [rz]
    for k, (x, y) in enumerate(pts[:, :2].tolist()):
        slot = _slot(xs, ys, x, y)
        if slot is not None:
            lo, hi = slot
            right = xs[hi] if hi < len(xs) else rx  # where the new step ends
            first = max(lo - 1, 0)
            old = sum(
                ((xs[i + 1] if i + 1 < len(xs) else rx) - xs[i]) * (ry - ys[i])
                for i in range(first, hi)
            )
            new = (right - x) * (ry - y)
            if lo > 0:
                new += (x - xs[lo - 1]) * (ry - ys[lo - 1])
            area += new - old
            xs[lo:hi] = [x]
            ys[lo:hi] = [y]
        volume += area * (zs[k + 1] - zs[k])
    return volume


def hypervolume(loss: np.ndarray, reference: np.ndarray | Sequence[float]) -> float:
    """The hypervolume dominated by the rows of ``loss`` (minimisation) up to ``reference``.

    Rows not strictly better than the reference in every objective add nothing and are dropped.
    """
    ref = np.asarray(reference, dtype=float)
    pts = np.asarray(loss, dtype=float).reshape(-1, len(ref))
    pts = pts[(pts < ref).all(axis=1)]
    if len(pts) == 0:
        return 0.0
    if pts.shape[1] == 3:
        return _hv3d(pts, ref)
    pts = pts[pareto_mask(pts, [])]
    if pts.shape[1] == 2:
        return _hv2d(pts, ref)
    return _optuna.hypervolume(pts, ref, assume_pareto=True)


#: Indices of a hypervolume history in three or more dimensions (see hypervolume_history).
MAX_POINTS_3D = 100


def hypervolume_history(
    loss: np.ndarray, reference: np.ndarray | Sequence[float], *, max_points: int = 400
) -> tuple[np.ndarray, np.ndarray]:
    """The hypervolume of the first ``i + 1`` rows, at up to ``max_points`` indices ``i``.

    Returns ``(indices, values)``: the value is exact at each index returned, and indices are
    spread evenly over the rows (all of them when there are at most ``max_points``), the last
    row always included. In two dimensions the front is kept incrementally and swept where it
    changed. In three, each index costs a sweep of the rows so far (:func:`_hv3d` needs no
    front kept), so at most :data:`MAX_POINTS_3D` indices are taken: a 10,000-point front took
    20 s of WFG at 400 indices. Beyond, the front is kept and WFG computes where it changed.
    """
    ref = np.asarray(reference, dtype=float)
    loss = np.asarray(loss, dtype=float).reshape(-1, len(ref))
    n = len(loss)
    if n == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    if loss.shape[1] >= 3:
        max_points = min(max_points, MAX_POINTS_3D)
    checkpoints = np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(int))
    if loss.shape[1] == 2:
        return checkpoints, _history2d(loss, ref, checkpoints)
    if loss.shape[1] == 3:
        inside: np.ndarray = np.all(loss < ref, axis=1)
        counts = np.cumsum(inside)
        value, seen = 0.0, 0
        values3 = []
        for i in checkpoints.tolist():
            if counts[i] != seen:  # rows inside the reference arrived since the last index
                seen = int(counts[i])
                value = _hv3d(loss[: i + 1][inside[: i + 1]], ref)
            values3.append(value)
        return checkpoints, np.array(values3)
    at = set(checkpoints.tolist())
    front = np.empty((0, loss.shape[1]))
    changed = False
    value = 0.0
    values = []
    for i, row in enumerate(loss):
        if (row < ref).all() and not (len(front) and (front <= row).all(axis=1).any()):
            keep = ~((row <= front).all(axis=1) & (row < front).any(axis=1))
            front = np.vstack([front[keep], row])
            changed = True
        if i in at:
            if changed:
                value = _optuna.hypervolume(front, ref, assume_pareto=True)
                changed = False
            values.append(value)
    return checkpoints, np.array(values)


def _history2d(loss: np.ndarray, ref: np.ndarray, checkpoints: np.ndarray) -> np.ndarray:
    """:func:`hypervolume_history` in two dimensions: the front is kept sorted (``f1`` rising,
    ``f2`` falling), so a new row is placed by bisection and replaces the contiguous run of
    members it dominates; each checkpoint where the front changed costs one sweep."""
    xs: list[float] = []
    ys: list[float] = []
    at = set(checkpoints.tolist())
    changed = False
    value = 0.0
    values = []
    for i, (x, y) in enumerate(loss.tolist()):
        slot = _slot(xs, ys, x, y) if x < ref[0] and y < ref[1] else None
        if slot is not None:
            xs[slot[0] : slot[1]] = [x]
            ys[slot[0] : slot[1]] = [y]
            changed = True
        if i in at:
            if changed:
                value = _hv2d(np.column_stack([xs, ys]), ref)
                changed = False
            values.append(value)
    return np.array(values)
