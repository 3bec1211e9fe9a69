"""Local worker processes (the default backend).

One worker runs in this process; more are forked processes that each open the storage
themselves (so each has its own connection pool) and run :func:`tuneops.runner.work`.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from typing import Any

import optuna
from threadpoolctl import ThreadpoolController

from tuneops import runner
from tuneops.backends._base import Backend

__all__ = ["LocalBackend", "run_local"]


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
        run_local(setup, n_workers=n_workers, deadline=deadline, unlimited=unlimited,
                  study=study, on_progress=on_progress)


def _child(setup: runner.WorkerSetup, index: int, deadline: float | None, unlimited: bool, pools: Any) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = runner.load(setup, index)
        # An OpenMP pool inherited from the parent (e.g. after a k-NN predict there) deadlocks
        # GNU libgomp in the child unless parallel regions stay single-threaded. `pools` (the
        # parent's OpenMP libraries, found once there: the search scans every loaded library)
        # holds only OpenMP: resizing OpenBLAS in a forked child costs it CPU on every trial.
        with pools.limit(limits=1):
            runner.work(study, setup.objective, deadline=deadline, unlimited=unlimited,
                        heartbeat_s=setup.heartbeat_s, grace_s=setup.grace_s, wait_for_others=False)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_local(
    setup: runner.WorkerSetup,
    *,
    n_workers: int,
    deadline: float | None,
    unlimited: bool,
    study: optuna.Study,
    on_progress: Callable[[], None] | None = None,
) -> None:
    """Run the study with ``n_workers`` local workers until the budget or deadline is spent.

    One worker runs in this process; more are forked processes that each open the storage
    themselves (so each has its own connection pool). A forked worker stops as soon as it finds
    nothing to run; this process then stays for what others still run (remote workers), and
    runs the retries of workers that died. Ctrl-C abandons running trials cleanly and keeps the
    finished ones.
    """
    if n_workers <= 1:
        runner.work(study, setup.objective, deadline=deadline, unlimited=unlimited, on_trial=on_progress,
             heartbeat_s=setup.heartbeat_s, grace_s=setup.grace_s)
        return
    ctx = multiprocessing.get_context("fork")
    pools = ThreadpoolController().select(user_api="openmp")
    procs = [
        ctx.Process(target=_child, args=(setup, i, deadline, unlimited, pools), daemon=False)
        for i in range(n_workers)
    ]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=0.5 / n_workers)
            if on_progress is not None:
                on_progress()
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGINT)
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
        raise
    finally:
        runner.recover_abandoned(study, grace_s=setup.grace_s)
    runner.work(study, setup.objective, deadline=deadline, unlimited=unlimited, on_trial=on_progress,
                heartbeat_s=setup.heartbeat_s, grace_s=setup.grace_s)
