"""Local worker processes (the default backend).

One worker runs in this process; more are forked processes that each open the storage
themselves (so each has its own connection pool) and run :func:`tuneops.runner.work`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime
import logging
import multiprocessing
import os
import signal
import sys
import weakref
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState
from threadpoolctl import ThreadpoolController

from tuneops import _optuna, runner
from tuneops._study import ABANDONED
from tuneops.backends._base import Backend
from tuneops.errors import TuneOpsError

__all__ = ["LocalBackend", "run_local", "die_with_parent"]


@contextlib.contextmanager
def _signals_ignored() -> Any:
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


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
        run_local(
            setup,
            n_workers=n_workers,
            deadline=deadline,
            unlimited=unlimited,
            study=study,
            on_progress=on_progress,
        )


# Sampler streams handed out so far, per study object (one run): each forked worker, and the
# owner when it works on after them, draws from a stream (sampler index) of its own. Reusing
# indexes 0..n-1 in a later round, or index 0 for the owner (its study's sampler), would replay
# a forked worker's seed and propose its configurations again.
_STREAMS: weakref.WeakKeyDictionary[optuna.Study, int] = weakref.WeakKeyDictionary()


def _new_streams(study: optuna.Study, n: int) -> range:
    start = _STREAMS.get(study, 0)
    _STREAMS[study] = start + n
    return range(start, start + n)


def die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), so a
    worker never outlives the run that forked it, even one killed with SIGKILL: it abandons its
    trial (queued again) and exits instead of tuning on as an orphan. Also what a process
    pool's initializer calls (``tuneops kb build``) for the same reason."""
    runner.FORKED_FROM = os.getppid()  # a SIGTERM once it changed: the run died (its reason)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's handler still stops its workers
        pass


def _child(
    setup: runner.WorkerSetup,
    index: int,
    deadline: float | None,
    unlimited: bool,
    pools: Any,
    parent: int,
) -> None:
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the request took effect
        sys.exit(128 + signal.SIGTERM)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = runner.load(setup, index)
        # An OpenMP pool inherited from the parent (e.g. after a k-NN predict there) deadlocks
        # GNU libgomp in the child unless parallel regions stay single-threaded. `pools` (the
        # parent's OpenMP libraries, found once there: the search scans every loaded library)
        # holds only OpenMP: resizing OpenBLAS in a forked child costs it CPU on every trial.
        with pools.limit(limits=1):
            with runner.stop_on_signals():
                runner.work(
                    study,
                    setup.objective,
                    deadline=deadline,
                    unlimited=unlimited,
                    heartbeat_s=setup.heartbeat_s,
                    grace_s=setup.grace_s,
                    wait_for_others=False,
                )
    except runner.Interrupted as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.exit(exc.exit_code)
    except TuneOpsError as exc:  # said in one line, not a traceback; this process goes on
        logging.getLogger("tuneops").error("worker %d stopped: %s", index, exc)
        sys.exit(1)


def _quietly(function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call ``function``; an error is logged, not raised (the workers carry on, and the next
    call retries)."""
    try:
        function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        logging.getLogger("tuneops").debug(
            "%s failed: %s", getattr(function, "__name__", function), exc
        )


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
    runs the retries of workers that died.

    SIGINT or SIGTERM (to this process) abandons every running trial cleanly (queued again),
    stops every worker process and raises :class:`tuneops.runner.Interrupted` listing the
    abandoned trials; finished trials are kept. A worker process whose parent dies (even by
    SIGKILL) is sent SIGTERM by the kernel and does the same for its own trial.
    """
    with runner.stop_on_signals():
        _run_local(
            setup,
            n_workers=n_workers,
            deadline=deadline,
            unlimited=unlimited,
            study=study,
            on_progress=on_progress,
        )


def _run_local(
    setup: runner.WorkerSetup,
    *,
    n_workers: int,
    deadline: float | None,
    unlimited: bool,
    study: optuna.Study,
    on_progress: Callable[[], None] | None = None,
) -> None:
    if n_workers > 1:
        _run_forked(setup, n_workers, deadline, unlimited, study, on_progress)
    # This process works too: alone, or on what the forked workers left (a dead one's trial).
    runner.work(
        study,
        setup.objective,
        deadline=deadline,
        unlimited=unlimited,
        on_trial=on_progress,
        heartbeat_s=setup.heartbeat_s,
        grace_s=setup.grace_s,
    )


def _run_forked(
    setup: runner.WorkerSetup,
    n_workers: int,
    deadline: float | None,
    unlimited: bool,
    study: optuna.Study,
    on_progress: Callable[[], None] | None,
) -> None:
    """Fork ``n_workers`` workers and wait for them; then give ``study`` a sampler stream of
    its own for the work this process does after them."""
    started = datetime.datetime.now()
    ctx = multiprocessing.get_context("fork")
    pools = ThreadpoolController().select(user_api="openmp")
    *indexes, own = _new_streams(study, n_workers + 1)
    procs = [
        ctx.Process(
            target=_child, args=(setup, i, deadline, unlimited, pools, os.getpid()), daemon=False
        )
        for i in indexes
    ]
    for p in procs:
        p.start()
    gone: set[int] = set()
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=0.5 / n_workers)
            killed = [p for p in procs if p.exitcode not in (None, 0) and p.pid not in gone]
            if killed:
                # A worker killed mid-trial (SIGKILL, the OOM killer): its trial goes back to
                # the queue now (its pid is dead), not when another worker next looks between
                # trials.
                gone.update(p.pid for p in killed if p.pid is not None)
                for p in killed:
                    how = (
                        f"was killed by {signal.Signals(-p.exitcode).name} (the out-of-memory "
                        "killer sends SIGKILL)"
                        if p.exitcode is not None and p.exitcode < 0
                        else f"stopped with exit code {p.exitcode}"
                    )
                    left = sum(q.is_alive() for q in procs)
                    logging.getLogger("tuneops").warning(
                        "worker process %s %s; %s",
                        p.pid,
                        how,
                        f"the run goes on with {left} of its {n_workers} workers"
                        if left
                        else "this process runs what is left of the budget on its own",
                    )
                _quietly(runner.recover_abandoned, study, grace_s=setup.grace_s)
            if on_progress is not None:
                _quietly(on_progress)  # a read the storage fails must not end the run
    except KeyboardInterrupt as exc:
        stop = runner.Interrupted.of(exc)
        with _signals_ignored():  # a second signal must not cut the clean-up short
            for p in procs:
                if p.is_alive() and p.pid is not None:
                    os.kill(p.pid, stop.signum)
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
                    p.join(timeout=5)
            stop.abandoned += [  # what the worker processes gave back
                t.number
                for t in _optuna.read_trials(study, states=(TrialState.FAIL,))
                if t.user_attrs.get(ABANDONED) == f"interrupted ({stop.signal_name})"
                and t.datetime_complete is not None
                and t.datetime_complete >= started
                and t.number not in stop.abandoned
            ]
        raise stop from None
    finally:
        runner.recover_abandoned(study, grace_s=setup.grace_s)
    study.sampler = setup.sampler(own)  # not the stream of forked worker 0 (the study's own)
