"""What each worker contributed to a study: trials by state, best value, busy time, Pareto share.

Computed from the trials alone (every trial records the worker that ran it in its user
attribute ``worker``: host, pid, id and, on Ray, the node), so the answer is the same on any
machine that reads the storage.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from tuneops._study import (
    CONSTRAINTS,
    constraints_recorded,
    died_unseen,
    found,
    is_retired,
    objectives,
    ran_until,
)
from tuneops.pareto import pareto_mask

__all__ = ["worker_contributions", "contribution_section"]


def _feasible(t: FrozenTrial) -> bool:
    return all(v <= 0 for v in (t.constraints or {}).values())


def worker_contributions(
    trials: Sequence[FrozenTrial],
    directions: Sequence[str],
    front: Collection[int] | None = None,
    *,
    is_feasible: Callable[[FrozenTrial], bool] | None = None,
) -> list[dict[str, Any]]:
    """One row per worker, in order of first trial (a pure function of the trials).

    Each row: ``worker`` (id), ``host``, ``pid``, ``node`` (Ray, else None), ``complete``,
    ``pruned``, ``failed``, ``abandoned`` (trials it left when it died or was interrupted),
    ``running`` (trials it is running now),
    ``busy_s`` (time spent in its trials; None when every one of them is unknown),
    ``busy_unknown`` (its trials whose time is unknown: abandoned by a worker that died before
    their first heartbeat, left out of ``busy_s`` as ``lost_compute.unknown`` leaves them
    out, not counted as 0 s), ``best`` (its best value, single objective only),
    ``has_best`` (it found the study's best), ``pareto`` and ``pareto_share`` (its members of
    the Pareto front of feasible complete trials, and their fraction of that front).
    ``front``: the trial numbers of the front the selection printed (differences within noise
    and accuracy ties removed, :func:`tuneops.selection.noise_front`), so the shares add up to
    the front a user reads; default: the plain Pareto front of the trials. ``is_feasible``:
    whether a complete trial met the constraints; default: as Optuna recorded them.
    """
    # A trial retired unrun (beyond the budget) ran nothing, whoever created it.
    ran = [
        t
        for t in trials
        if t.user_attrs.get("worker") and t.state != TrialState.WAITING and not is_retired(t)
    ]
    complete = [t for t in ran if t.state == TrialState.COMPLETE and t.values is not None]
    # the feasible trials only: when none meets the constraints, no worker found a best or a
    # member of the front (an infeasible "best" credited 3 workers with a front of none)
    # and only the trials whose outcome is their own: a worker that proposed another's best
    # configuration again took its outcome (repeats.py), it did not find it
    pool = [t for t in complete if (is_feasible or _feasible)(t) and found(t)]
    members: set[int] = set(front) if front is not None else set()
    if pool and front is None:
        mask = pareto_mask(np.array([t.values for t in pool], dtype=float), directions)
        members = {t.number for t, m in zip(pool, mask, strict=False) if m}
    in_pool = {t.number for t in pool}
    single = len(directions) == 1
    sign = -1.0 if single and directions[0] == "maximize" else 1.0
    best_overall = min((sign * t.values[0] for t in pool), default=None) if single else None

    rows: dict[str, dict[str, Any]] = {}
    # each FrozenTrial property read once, and a worker's row made once (10,000 trials: the
    # loop was 0.1 s of every results document)
    for t in sorted(ran, key=lambda t: t.number):
        attrs = t.user_attrs
        w = attrs["worker"]
        if not isinstance(w, Mapping):  # plain Optuna code's own "worker" attribute: its name
            w = {"id": w}
        key = str(w.get("id"))
        row = rows.get(key)
        if row is None:
            row = rows[key] = {
                "worker": key,
                "host": w.get("host"),
                "pid": w.get("pid"),
                "node": w.get("node"),
                "complete": 0,
                "pruned": 0,
                "failed": 0,
                "abandoned": 0,
                "running": 0,
                "busy_s": 0.0,
                "busy_unknown": 0,
                "best": None,
                "has_best": False,
                "pareto": 0,
                "pareto_share": 0.0,
            }
        state = t.state
        if "abandoned" in attrs:
            row["abandoned"] += 1
        elif state == TrialState.COMPLETE:
            row["complete"] += 1
        elif state == TrialState.PRUNED:
            row["pruned"] += 1
        elif state == TrialState.FAIL:
            row["failed"] += 1
        elif state == TrialState.RUNNING:
            row["running"] += 1
        start, end = t.datetime_start, ran_until(t)
        if died_unseen(t):  # its end would be its start: 0 s, where nothing is known
            row["busy_unknown"] += 1
        elif start and end:
            row["busy_s"] += (end - start).total_seconds()
        number = t.number
        if number in members:
            row["pareto"] += 1
        if single and number in in_pool:
            value = t.values[0]
            if row["best"] is None or sign * value < sign * row["best"]:
                row["best"] = value
            if best_overall is not None and sign * value == best_overall:
                row["has_best"] = True
    for row in rows.values():
        timed = sum(row[k] for k in ("complete", "pruned", "failed", "abandoned", "running"))
        row["busy_s"] = None if timed == row["busy_unknown"] else round(row["busy_s"], 3)
        row["pareto_share"] = row["pareto"] / len(members) if members else 0.0
    return list(rows.values())


def contribution_section(
    study: optuna.Study, trials: Sequence[FrozenTrial], front: Collection[int] | None = None
) -> dict[str, Any] | None:
    """The ``workers`` section of results.json (``front``: the selection's, see
    :func:`worker_contributions`); None when no trial recorded its worker."""
    directions = [d.name.lower() for d in study.directions]
    is_feasible = None
    texts = study.user_attrs.get(CONSTRAINTS)
    if isinstance(texts, list) and not constraints_recorded(trials, texts):
        # Run again with other constraints: the earlier trials' records are of the old ones
        # (a worker was credited with the best by a trial the selection refused). Judged as
        # selection judges them; tuneops.selection (and the spec's models) only for such a
        # study, as in tuneops.results.
        infeasible = importlib.import_module("tuneops.selection").infeasible_trials(
            trials, [o.metric for o in objectives(study)], texts
        )
        is_feasible = lambda t: t.number not in infeasible  # noqa: E731
    rows = worker_contributions(trials, directions, front, is_feasible=is_feasible)
    if not rows:
        return None
    return {
        "n_workers": len(rows),
        "hosts": sorted({str(r["host"]) for r in rows}),
        "workers": rows,
    }
