"""The renderer contract: draw a computed :class:`~tuneops.report.document.Report` into files."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from tuneops.report.document import Report, jsonable

__all__ = ["Renderer", "selection_text", "KIND_NAMES"]


class Renderer(ABC):
    """Draws a report. One method to implement.

    ``render(report, out)`` writes the report to ``out`` (a file for a one-file format, a
    directory for one file per panel) and returns the paths written. It computes nothing about
    the study (everything is in ``report``) and writes each file atomically, so a refused or
    failed render never leaves a half-written file behind.
    """

    #: the output is one file (True) or a directory of files (False)
    single_file: bool = True
    #: the default file name (single file) or directory name
    default_name: str = "report"

    @abstractmethod
    def render(self, report: Report, out: Path) -> list[Path]:
        """Write ``report`` to ``out``; return the paths written."""


# Shared by every renderer, so the HTML and the PNG of a panel read the same.
KIND_COLORS = {
    "dominated": "#aec7e8",
    "pareto": "#1f77b4",
    "tied": "#17becf",  # on no trial's losing side, tied with the front within noise
    "infeasible": "#9e9e9e",
    "selected": "#d62728",
}
# What each kind of point in the Pareto figure is, in the legend of every renderer.
KIND_NAMES = {
    "dominated": "dominated (feasible)",
    "tied": "tied with the front within measurement noise",
    "pareto": "Pareto front (feasible)",
    "infeasible": "infeasible (violates a constraint)",
    "selected": "selected trial",
}
STATE_COLORS = {
    "COMPLETE": "#1f77b4",
    "PRUNED": "#ff7f0e",
    "RUNNING": "#2ca02c",
    "FAIL": "#7f7f7f",
    "WAITING": "#bcbd22",
}
WARM_COLOR = "#9467bd"
BEST_COLOR = "#d62728"  # best so far
HYPERVOLUME_COLOR = "#2ca02c"  # never the best-so-far colour: the two lines mean different things


# -- the selection, said the same way by every renderer -----------------------------------------
def _g(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, (int, float)) else str(v)


def selection_text(report: Report) -> str:
    """The selected trial as the CLI names it: ``11 ★ accuracy=0.9543, latency_p95_ms=0.953
    (policy: knee)``; one objective: ``(the best feasible accuracy)``; under the staged strategy
    the verified means and 95% intervals selection used; no selected trial: ``none (why)``."""
    if report.selected is None:
        return f"none ({_why_none_selected(report)})"
    sel = next((r for r in report.table.rows if r[0] == report.selected), None)
    values = ""
    if sel is not None:
        values = ", ".join(
            f"{o}={jsonable(v):.4g}" if isinstance(jsonable(v), float) else f"{o}={v}"
            for o, v in zip(report.objectives, sel[2 : 2 + len(report.objectives)], strict=False)
        )
    verified = verified_selection(report)
    if verified is not None:
        # staged: selection chose at the verified means, not at the search values
        values = ", ".join(
            f"{o}={_g(mean)} verified"
            + (f" (95% CI {_g(ci[0])} – {_g(ci[1])})" if ci else "")
            + (f", {_g(search)} in the search" if isinstance(search, (int, float)) else "")
            for o, mean, ci, search in zip(
                report.objectives,
                verified["mean"],
                verified.get("ci95") or [None] * len(report.objectives),
                verified.get("values") or [None] * len(report.objectives),
                strict=False,
            )
        )
    policy = (report.selection or {}).get("policy")
    if len(report.objectives) == 1:  # whatever the policy (a knee needs two), as the CLI
        how = f" (the best feasible {report.objectives[0]}"
        how += ", by its verified mean)" if verified is not None else ")"
    else:
        how = f" (policy: {policy})" if policy else ""
    return f"{report.selected} ★ {values}{how}"


def verified_selection(report: Report) -> dict[str, Any] | None:
    """The selected trial's verification under ``strategy: staged`` (its verified means and
    95% intervals, the values selection used), or None."""
    verification = (report.strategy or {}).get("verification") or {}
    return next(
        (
            dict(c)
            for c in verification.get("candidates", [])
            if c.get("number") == report.selected and c.get("mean") is not None
        ),
        None,
    )


def _why_none_selected(report: Report) -> str:
    """Why no trial is selected: no trial completed (all pruned, failed or still running), or
    none of the completed ones meets the constraints (said only when there are constraints)."""
    if not report.counts.get("complete"):
        ended = ", ".join(
            f"{report.counts[state]} {label}"
            for state, label in (
                ("pruned", "pruned"),
                ("fail", "failed"),
                ("abandoned", "abandoned"),
                ("running", "running"),
                ("waiting", "waiting"),
                ("stale", "left running by a worker that is gone"),
            )
            if report.counts.get(state)
        )
        return "no trial completed" + (f": {ended}" if ended else "")
    # constraints declared by the spec, or recorded by a tune()/plain Optuna objective alone
    column = report.table.columns.index("feasible")
    if report.constraints or any(row[column] is False for row in report.table.rows):
        return "no completed trial meets the constraints"
    return "no completed trial has finite values to select from"
