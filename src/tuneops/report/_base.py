"""The renderer contract: draw a computed :class:`~tuneops.report.document.Report` into files."""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from tuneops.report.document import Report

__all__ = ["Renderer", "write_atomic"]


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


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory.

    The file gets the mode an ordinary ``open()`` would give (0666 less the umask, so 0644 by
    default): ``mkstemp`` creates its file 0600, and a report is meant to be read by others.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # POSIX
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process umask. POSIX only lets one read it by setting it, so set it back at once."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Shared by every renderer, so the HTML and the PNG of a panel read the same.
KIND_COLORS = {
    "dominated": "#aec7e8",
    "pareto": "#1f77b4",
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
