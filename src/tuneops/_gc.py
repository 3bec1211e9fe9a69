"""The cyclic garbage collector paused while a large study is read or summarised.

Reading or summarising a 10,000-trial study makes some 10^5 new objects at a time, none of them
garbage, yet each burst of allocations triggers a collection that scans every object already
alive (the study's 10^6) again. Measured at 10,000 trials: restoring a journal snapshot 0.74 ->
0.15 s of CPU, selection 0.27 -> 0.15 s, the results document 0.74 -> 0.57 s. Nothing here holds
reference cycles that must be collected before the block ends; collection resumes after it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["paused"]


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off (restored as it was on exit)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
