"""Pareto fronts and hypervolumes, at any study size.

Pure functions on arrays. A front is kept incrementally (a new point is compared with the
current front only, not with every earlier point), so a 10,000-trial history costs about
``n x front`` comparisons instead of ``n x n``; hypervolumes use Optuna's WFG (through
:mod:`tuneops._optuna`), and an exact sweep in two dimensions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tuneops import _optuna

__all__ = ["losses", "pareto_mask", "hypervolume", "hypervolume_history"]


def losses(values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """``values`` turned into losses (maximised objectives negated): smaller is better everywhere."""
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return np.asarray(values, dtype=float).reshape(-1, len(signs)) * signs


def pareto_mask(values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """True for rows not dominated by any other row (duplicates are all kept).

    A row dominates another when it is no worse in every objective and better in one. Rows are
    visited in lexicographic order, where a dominating row always comes first, and compared with
    the front found so far only.
    """
    loss = losses(values, directions) if len(directions) else np.asarray(values, dtype=float)
    n = len(loss)
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    order = np.lexsort(loss.T[::-1])
    front = np.empty((0, loss.shape[1]))
    for i in order:
        row = loss[i]
        if len(front):
            no_worse = (front <= row).all(axis=1)
            if (no_worse & (front < row).any(axis=1)).any():
                continue
        mask[i] = True
        front = np.vstack([front, row])
    return mask


def _hv2d(front: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-D hypervolume of a mutually non-dominated set (minimisation)."""
    pts = front[np.argsort(front[:, 0])]
    widths = np.diff(np.append(pts[:, 0], ref[0]))
    return float(np.sum(widths * (ref[1] - np.minimum.accumulate(pts[:, 1]))))


def hypervolume(loss: np.ndarray, reference: np.ndarray | Sequence[float]) -> float:
    """The hypervolume dominated by the rows of ``loss`` (minimisation) up to ``reference``.

    Rows not strictly better than the reference in every objective add nothing and are dropped.
    """
    ref = np.asarray(reference, dtype=float)
    pts = np.asarray(loss, dtype=float).reshape(-1, len(ref))
    pts = pts[(pts < ref).all(axis=1)]
    if len(pts) == 0:
        return 0.0
    pts = pts[pareto_mask(pts, [])]
    if pts.shape[1] == 2:
        return _hv2d(pts, ref)
    return _optuna.hypervolume(pts, ref, assume_pareto=True)


def hypervolume_history(
    loss: np.ndarray, reference: np.ndarray | Sequence[float], *, max_points: int = 400
) -> tuple[np.ndarray, np.ndarray]:
    """The hypervolume of the first ``i + 1`` rows, at up to ``max_points`` indices ``i``.

    Returns ``(indices, values)``: the value is exact at each index returned, and indices are
    spread evenly over the rows (all of them when there are at most ``max_points``), the last
    row always included. The front is kept incrementally; the volume is computed only where the
    front changed since the previous index.
    """
    ref = np.asarray(reference, dtype=float)
    loss = np.asarray(loss, dtype=float).reshape(-1, len(ref))
    n = len(loss)
    if n == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    checkpoints = set(np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(int)).tolist())
    front = np.empty((0, loss.shape[1]))
    changed = False
    value = 0.0
    indices, values = [], []
    for i, row in enumerate(loss):
        if (row < ref).all() and not (len(front) and (front <= row).all(axis=1).any()):
            keep = ~((row <= front).all(axis=1) & (row < front).any(axis=1))
            front = np.vstack([front[keep], row])
            changed = True
        if i in checkpoints:
            if changed:
                value = _hv2d(front, ref) if loss.shape[1] == 2 else _optuna.hypervolume(front, ref, assume_pareto=True)
                changed = False
            indices.append(i)
            values.append(value)
    return np.array(indices, dtype=int), np.array(values)
