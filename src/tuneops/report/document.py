"""The report of a study as one data object: summary, findings, panels, trial table, spec.

:func:`build_report` reads the study once and computes everything; renderers draw the result.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import optuna

from tuneops import _study
from tuneops._secrets import mask_secrets
from tuneops._study import abandoned_label
from tuneops.report.figures import Panel, compute_panels, pruned_label
from tuneops.report.findings import CPU_SHARE_MIN, Finding, compute_findings
from tuneops.report.view import (
    StudyView,
    view_of,
    warm_start_section,
    worker_label,
)
from tuneops.strategy import strategy_summary

__all__ = ["Report", "TrialTable", "build_report"]


@dataclass(frozen=True)
class TrialTable:
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    # what the cells of a column that are not plain figures mean: column -> sentence (the HTML
    # report prints them under the table's heading)
    legend: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Report:
    study: str
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    counts: dict[str, int]
    selected: int | None
    findings: tuple[Finding, ...]
    panels: tuple[Panel, ...]
    table: TrialTable
    spec: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    constraints: tuple[str, ...] = ()
    selection: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    # ``strategy: staged``: its phases (trials by state, best values) and the verification of
    # the top candidates (tuneops.strategy.strategy_summary); None for other studies
    strategy: dict[str, Any] | None = None
    # how the warm-start trials did (results.json's ``warm_start``); None without any
    warm_start: dict[str, Any] | None = None
    # where the last run wrote results.json (absolute; tuneops._study.OUTPUT_DIR), if recorded
    output_dir: str | None = None
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))

    def panel(self, key: str) -> Panel:
        return next(p for p in self.panels if p.key == key)


def trial_table(view: StudyView) -> TrialTable:
    """Every trial as a row: number, state, objectives, feasibility, marks, params, duration.

    The model family is one column: the ``family`` parameter of a multi-family search when there
    is one, else the ``family`` the trial recorded."""
    params = list(view.distributions())
    marks = (
        ("family", "worker", "warm start")
        if _study.FAMILY not in params
        else ("worker", "warm start")
    )
    # A measured serving cost comes with its confidence interval, the serving thread's CPU
    # share of its timed calls (below CPU_SHARE_MIN it waited for a core: the busy-machine
    # finding), the preprocessing share of each call and the host's slowness divided out of
    # it (tuneops:cost): shown beside the objectives when any trial has them.
    costs = [t.user_attrs.get(_study.COST) or {} for t in view.trials]
    measured = [m for m in view.objectives if any(m in c.get("intervals", {}) for c in costs)]
    cpu = any(_cpu_share(c) is not None for c in costs)
    shares = any(
        ((c.get("serving") or {}).get("call") or {}).get("preprocess_share") is not None
        for c in costs
    )
    speeds = any(
        ((c.get("serving") or {}).get("call") or {}).get("speed") is not None for c in costs
    )
    # a trial that took an earlier trial's outcome (or pruning) for the same configuration
    # fitted nothing: its values are that trial's (tuneops.repeats)
    repeats = any(_study.REPEAT_OF in t.user_attrs for t in view.trials)
    columns = (
        "trial",
        "state",
        *view.objectives,
        *(f"{m} 95% interval" for m in measured),
        *((CPU_SHARE_COLUMN,) if cpu else ()),
        *(("preprocess share",) if shares else ()),
        *(("host slowness (divided out)",) if speeds else ()),
        "feasible",
        *marks,
        *(("repeat of",) if repeats else ()),
        "duration s",
        *params,
        "fail reason",
    )
    own_family = _study.FAMILY not in params
    rows = []
    for t, cost in zip(view.trials, costs, strict=True):
        intervals = cost.get("intervals", {})
        call = (cost.get("serving") or {}).get("call") or {}
        final = _study.final_values(t)
        values: list[float | None] = (
            list(final) if final is not None else [None] * len(view.objectives)
        )
        stopped = _study.pruned_at(t)
        state = (
            pruned_label(
                None if stopped is None else stopped["step"], _study.TIMED_OUT in t.user_attrs
            )
            if t.state == optuna.trial.TrialState.PRUNED
            else t.state.name
        ) + abandoned_label(t.user_attrs.get(_study.ABANDONED))
        if t.number == view.selected:
            state += " ★"
        rows.append(
            (
                t.number,
                state,
                *values,
                *(_interval(intervals.get(m)) for m in measured),
                *((_cpu_share_cell(cost),) if cpu else ()),
                *((_share(call.get("preprocess_share")),) if shares else ()),
                *((_slowness(call.get("speed")),) if speeds else ()),
                view.is_feasible(t) if t.state == optuna.trial.TrialState.COMPLETE else None,
                *((t.user_attrs.get(_study.FAMILY),) if own_family else ()),
                worker_label(t),
                view.is_warm(t) or None,
                *((t.user_attrs.get(_study.REPEAT_OF),) if repeats else ()),
                round(t.duration.total_seconds(), 3) if t.duration else None,
                *[t.params.get(p) for p in params],
                (
                    str(t.user_attrs.get(_study.FAIL_REASON))[:300]
                    if t.user_attrs.get(_study.FAIL_REASON)
                    else None
                ),
            )
        )
    legend: tuple[tuple[str, str], ...] = ((CPU_SHARE_COLUMN, CPU_SHARE_LEGEND),) if cpu else ()
    unbounded = [
        f"{m} 95% interval"
        for m in measured
        if any(
            isinstance(c.get("intervals", {}).get(m), list)
            and len(c["intervals"][m]) == 2
            and c["intervals"][m][1] is None
            for c in costs
        )
    ]
    legend += tuple((column, UNBOUNDED_LEGEND) for column in unbounded)
    return TrialTable(columns, tuple(rows), legend)


def _interval(bounds: Any) -> str | None:
    """``[low, high]`` as the table shows it: ``4.12 – 4.31``; ``4.12 – unbounded`` when the
    calls were too few to bound the high end (:data:`UNBOUNDED_LEGEND`)."""
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return None
    low, high = bounds
    if not isinstance(low, (int, float)):
        return None
    if high is None:
        return f"{low:.3g} – unbounded"
    return f"{low:.3g} – {high:.3g}" if isinstance(high, (int, float)) else None


#: What an interval's ``unbounded`` says, under the table.
UNBOUNDED_LEGEND = (
    "\"unbounded\": the timing made too few calls to bound the p95 from above (a 95% "
    "interval of it needs 72 calls): it was stopped after 20 once the trial was known to be "
    "dominated. The p95 shown is of the calls made; constraints on it are met within noise at "
    "best."
)


def _slowness(value: Any) -> str | None:
    """The machine's slowness during a latency measurement against its calibration: 1.20x
    means calls ran 1.2x slower than at calibration, and were divided by that."""
    return f"{value:.2f}x" if isinstance(value, (int, float)) and math.isfinite(value) else None


def _share(value: Any) -> str | None:
    return f"{value:.0%}" if isinstance(value, (int, float)) and math.isfinite(value) else None


#: The trial table's column of the serving thread's CPU share (one per measurement, whatever
#: the number of latency objectives), its threshold in the header.
CPU_SHARE_COLUMN = f"serving CPU share (busy < {CPU_SHARE_MIN:.0%})"


def _cpu_share(cost: Any) -> float | None:
    """The serving thread's CPU share over the timed calls of a trial's latency measurement
    (``tuneops:cost.serving.cpu_share``); None when not recorded (a wall clock, an older
    trial, no serving measurement)."""
    share = ((cost or {}).get("serving") or {}).get("cpu_share")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not math.isfinite(share):
        return None
    return float(share)


#: What the CPU share column's cells say, under the table.
CPU_SHARE_LEGEND = (
    "the share of its timed calls' wall time the serving thread ran, rounded down; below "
    f"{CPU_SHARE_MIN:.0%} (busy) it waited for a core. \"wall clock\": timed by the wall "
    "clock (serving.threads above 1), which has no such share; \"not recorded\": measured by "
    "a tuneops that did not record it; \"–\": no latency measured (the trial was pruned, "
    "failed or is running before its measurement)."
)


def _cpu_share_cell(cost: Any) -> str:
    """The CPU share column's cell: ``97%``, ``62% busy`` below :data:`CPU_SHARE_MIN` (the
    busy-machine finding's rule), ``wall clock`` for a measurement without a thread's CPU clock
    (a resumed study whose ``serving.threads`` went above 1 mixes both), ``not recorded`` for
    one made before the share was, ``–`` without any (:data:`CPU_SHARE_LEGEND`)."""
    share = _cpu_share(cost)
    if share is not None:
        shown = f"{math.floor(share * 100)}%"  # rounded down: 0.796 is no "80% busy"
        return f"{shown} busy" if share < CPU_SHARE_MIN else shown
    serving = (cost or {}).get("serving") or {}
    if not (serving.get("call") or serving.get("batch") or "cpu_share" in serving):
        return "–"
    return "wall clock" if serving.get("clock") == "wall" else "not recorded"


def build_report(study: optuna.Study | StudyView) -> Report:
    """Compute the report of ``study``: every panel that its trials allow, findings, the table.

    Example::

        >>> report = build_report(tuneops.load_study("quickstart"))   # doctest: +SKIP
        >>> [p.key for p in report.panels if p.missing]                # doctest: +SKIP
        ['pareto_front', 'intermediate_values']
    """
    view = study if isinstance(study, StudyView) else view_of(study)
    panels = compute_panels(view)
    findings = compute_findings(view, {p.key: p.data for p in panels})
    # as show counts them: abandoned, retired and stale trials apart from failed and running
    counts = Counter(
        {state.lower(): n for state, n in _study.state_counts(view.trials).items() if n}
    )
    notes = []
    if len(view.complete) < 2:
        notes.append(
            f"This study has {len(view.complete)} completed trial(s): most panels need at least "
            "two "
            "(importances, parallel coordinates, slices) or three (contour). Run more trials and "
            "report again."
        )
    attrs = view.attrs
    # the selection the view shows: the run's while current, else made again now
    selection = dict(view.selection) if view.selection is not None else None
    if selection is not None:  # what a reader must know about the choice (noise, limits)
        notes += [str(n) for n in selection.get("notes") or ()]
    return Report(
        study=view.name,
        objectives=view.objectives,
        directions=view.directions,
        counts=dict(counts),
        selected=view.selected,
        findings=tuple(findings),
        panels=tuple(panels),
        table=trial_table(view),
        spec=mask_secrets(dict(attrs[_study.SPEC]))
        if attrs.get(_study.SPEC)
        else None,  # older specs
        data=dict(attrs[_study.DATA]) if attrs.get(_study.DATA) else None,
        constraints=tuple(attrs.get(_study.CONSTRAINTS) or ()),
        selection=selection,
        notes=tuple(notes),
        strategy=strategy_summary(attrs.get(_study.STRATEGY), view.directions, view.trials),
        warm_start=warm_start_section(view),
        output_dir=attrs.get(_study.OUTPUT_DIR),
    )


def jsonable(value: Any) -> Any:
    """Values for embedding in a document: NaN/inf become None, others stay or become str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)
