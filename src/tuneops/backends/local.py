"""Local worker processes (the default backend)."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from tuneops import runner
from tuneops.backends._base import Backend

__all__ = ["LocalBackend"]


class LocalBackend(Backend):
    """Workers as forked processes on this machine (one worker runs in this process)."""

    name = "local"

    def __init__(self, *, resources: dict[str, float] | None = None) -> None:
        # A local worker uses what this machine gives it; per-trial resources are Ray's concern.
        self.resources = dict(resources or {})

    def execute(
        self,
        setup: runner.WorkerSetup,
        *,
        study: optuna.Study,
        n_workers: int,
        deadline: float | None,
        unlimited: bool,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        runner.execute(setup, n_workers=n_workers, deadline=deadline, unlimited=unlimited,
                       study=study, on_progress=on_progress)
