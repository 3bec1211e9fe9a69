"""The execution backend contract: where a study's workers run.

A backend starts workers and waits for them; it never decides which trial runs where. Every
worker runs the same loop, :func:`tuneops.runner.work`, against the shared storage, which
hands out the trials (the global budget) and records the results.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import optuna

from tuneops.runner import WorkerSetup

__all__ = ["Backend"]


class Backend(abc.ABC):
    """Runs ``n_workers`` workers of a study until its budget or deadline is spent.

    Contract of :meth:`execute`:

    * each worker rebuilds the study from ``setup`` (its own storage connection) and runs
      :func:`tuneops.runner.work` until no trial is waiting or running, or ``deadline`` passes;
    * it returns when every worker has stopped; a worker that died is not an error (its trial is
      recovered through the heartbeat and re-queued), an error in tuneops' own code is;
    * on KeyboardInterrupt it interrupts the workers, whose running trials are abandoned (their
      configurations queued again), and re-raises.
    """

    name: str = "base"

    def prepare(self) -> None:  # noqa: B027 - most backends have nothing to prepare
        """Check, before anything is written, that the workers can be started (a cluster
        reachable); raises :class:`tuneops.errors.UsageError` when they cannot."""

    @abc.abstractmethod
    def execute(
        self,
        setup: WorkerSetup,
        *,
        study: optuna.Study,
        n_workers: int,
        deadline: float | None,
        unlimited: bool,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        """Run the workers; see the class docstring."""
