"""The renderer contract: draw a computed :class:`~tuneops.report.document.Report` into files."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from tuneops.report.document import Report

__all__ = ["Renderer"]


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
