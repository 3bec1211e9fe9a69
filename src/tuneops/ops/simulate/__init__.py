"""Simulation: the production loop on a stream of unseen batches from a real dataset.

* :mod:`~tuneops.ops.simulate.stream` - disjoint batches: shifted, stationary or time-ordered;
* :mod:`~tuneops.ops.simulate.loop` - monitor, re-tune, promote on each batch; recovery per shift;
* :mod:`~tuneops.ops.simulate.plots` - the timeline figure.
"""

from __future__ import annotations

from tuneops.ops.simulate.loop import RECOVERY_TARGET, VERDICTS, recovery, simulate
from tuneops.ops.simulate.plots import timeline_figure
from tuneops.ops.simulate.stream import SHIFTS, Shift, Stream, make_stream, parse_shift, time_stream

__all__ = [
    "Shift",
    "Stream",
    "SHIFTS",
    "make_stream",
    "time_stream",
    "parse_shift",
    "simulate",
    "recovery",
    "RECOVERY_TARGET",
    "VERDICTS",
    "timeline_figure",
]
