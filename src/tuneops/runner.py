"""Run a study: samplers by name, the global trial budget, and the worker loop.

The budget is *slots*: the process that owns a run enqueues exactly ``n_trials`` WAITING
trials (fewer if some already exist), and every worker, local or remote, only ever pops a
WAITING trial, atomically, through the storage. So exactly ``n_trials`` trials run across all
workers, however many join or leave, and none is run twice. Optuna's ``n_trials`` counts per
process and its ``enqueue_trial(skip_if_exists=True)`` is not atomic, so neither gives this.

A trial whose worker died or was interrupted is *abandoned*: marked FAIL with the reason,
excluded from the budget, and its configuration is queued again once.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuneops.errors import SpecError, unknown_name

__all__ = [
    "SAMPLERS",
    "make_sampler",
    "ensure_slots",
    "next_trial",
    "run_trial",
    "work",
    "recover_abandoned",
    "execute",
    "worker_identity",
]

_log = logging.getLogger("tuneops")

ABANDONED = "abandoned"  # user attr: reason a trial was abandoned (not counted in the budget)
RETRY_OF = "retry_of"  # user attr: number of the abandoned trial this slot re-runs
WORKER = "worker"  # user attr: {"host", "pid", "id"} of the worker that ran the trial
FAIL_REASON = "fail_reason"


def _tpe(seed: int | None, *, group: bool, **kw: Any) -> optuna.samplers.BaseSampler:
    # Optuna 5 defaults: multivariate and constant_liar (pending trials penalised, so parallel
    # workers spread out). `group` handles conditional spaces (several families); it is marked
    # experimental, and using it is a deliberate choice, so its warning is not the user's.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=group, **kw)


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "auto": _tpe,
    "tpe": _tpe,
    "random": lambda seed, group=False, **kw: optuna.samplers.RandomSampler(seed=seed, **kw),
    "gp": lambda seed, group=False, **kw: optuna.samplers.GPSampler(seed=seed, **kw),
    "nsga2": lambda seed, group=False, **kw: optuna.samplers.NSGAIISampler(seed=seed, **kw),
    "nsga3": lambda seed, group=False, **kw: optuna.samplers.NSGAIIISampler(seed=seed, **kw),
    "cmaes": lambda seed, group=False, **kw: optuna.samplers.CmaEsSampler(seed=seed, **kw),
    "qmc": lambda seed, group=False, **kw: optuna.samplers.QMCSampler(seed=seed, **kw),
}


def make_sampler(
    name: str, params: Mapping[str, Any] | None = None, *, seed: int | None, conditional: bool = False
) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` with keyword ``params``.

    ``auto`` is multivariate TPE for every problem: it handles conditional spaces, single and
    multiple objectives, constraints and parallel workers (constant liar), at a per-trial
    cost that stays small up to thousands of trials. GP and CMA-ES are available by name.

    Raises:
        SpecError: unknown name, or parameters the sampler does not accept.
    """
    if name not in SAMPLERS:
        raise SpecError(unknown_name("sampler", name, SAMPLERS, field="search.sampler"))
    try:
        return SAMPLERS[name](seed, group=conditional, **dict(params or {}))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"search.sampler: {name} does not accept {dict(params or {})}: {exc}") from exc


# -- identity ---------------------------------------------------------------------------------
def worker_identity(worker_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """Who runs a trial: host, pid, an id (``host:pid`` unless given), and ``extra`` (Ray node)."""
    host, pid = socket.gethostname(), os.getpid()
    return {"host": host, "pid": pid, "id": worker_id or f"{host}:{pid}", **extra}


# -- budget -------------------------------------------------------------------------------------
def counted(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Trials that count against the budget: all but the abandoned ones."""
    return [t for t in trials if ABANDONED not in t.user_attrs]


def ensure_slots(study: optuna.Study, n_trials: int) -> int:
    """Make the budget exactly ``n_trials`` counted trials; returns the change in slots.

    Enqueues empty WAITING trials when too few exist; when the budget was lowered (a resume
    with a smaller ``n_trials``), retires surplus WAITING trials as abandoned. Only the process
    that owns a run calls this (Optuna's enqueue is not atomic across processes); workers only
    claim.
    """
    trials = study.get_trials(deepcopy=False)
    missing = n_trials - len(counted(trials))
    for _ in range(max(0, missing)):
        study.enqueue_trial({})
    if missing < 0:
        storage = study._storage
        surplus = [t for t in trials if t.state == TrialState.WAITING][missing:]
        for t in surplus:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                storage.set_trial_user_attr(t._trial_id, ABANDONED, f"budget lowered to {n_trials}")
                storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
    return missing


def next_trial(study: optuna.Study, *, unlimited: bool = False) -> optuna.Trial | None:
    """Atomically claim a WAITING trial; without one, a new trial only if ``unlimited``."""
    storage = study._storage
    waiting = storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,))
    # Workers that all try the oldest slot first collide on it (one wins, the others wait on
    # its row lock and retry); trying the oldest few in random order spreads them out.
    # (SystemRandom: forked workers share the state of the random module.)
    head = list(waiting[:8])
    random.SystemRandom().shuffle(head)
    for slot in [*head, *waiting[8:]]:
        try:
            if storage.set_trial_state_values(slot._trial_id, state=TrialState.RUNNING):
                return optuna.trial.Trial(study, slot._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return study.ask() if unlimited else None


def abandon(study: optuna.Study, trial_id: int, number: int, reason: str, params: Mapping[str, Any],
            user_attrs: Mapping[str, Any]) -> None:
    """Mark a RUNNING trial FAIL as abandoned, and queue its configuration again once."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial_id, ABANDONED, reason)
        # The storage makes this transition atomic: of several workers recovering the same
        # trial, one succeeds and re-queues it; the others get UpdateFinishedTrialError.
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return
    if RETRY_OF in user_attrs:  # already a retry: run a fresh configuration instead
        study.enqueue_trial({}, user_attrs={RETRY_OF: number, "retry_params": dict(params)})
    else:
        study.enqueue_trial(dict(params), user_attrs={RETRY_OF: number})
    _log.warning("trial %d abandoned (%s); its configuration is queued again", number, reason)


def recover_abandoned(study: optuna.Study, *, grace_s: float | None = None,
                      running: Sequence[FrozenTrial] | None = None) -> int:
    """Abandon RUNNING trials whose worker is gone; returns how many were recovered.

    A worker is gone when it ran on this host under a pid that no longer exists, or when its
    trial has shown no sign of life (heartbeat) for ``grace_s`` seconds (see tuneops.heartbeat).
    ``running``: the study's RUNNING trials when the caller has just read them.
    """
    from tuneops.heartbeat import GRACE_S, stale_trials

    if running is None:
        running = study._storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,))
    stale = stale_trials(running, now=time.time(), grace_s=GRACE_S if grace_s is None else grace_s)
    for t, reason in stale:
        abandon(study, t._trial_id, t.number, reason, t.params, t.user_attrs)
    return len(stale)


# -- one trial ----------------------------------------------------------------------------------
def _as_values(result: Any, n_objectives: int) -> list[float] | str:
    values = list(result) if isinstance(result, (list, tuple)) else [result]
    if len(values) != n_objectives:
        return f"the objective returned {len(values)} value(s) for {n_objectives} objective(s)"
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        return f"the objective returned {result!r}, expected numbers"
    if not all(math.isfinite(v) for v in values):
        return f"the objective returned a non-finite value {values}"
    return values


def run_trial(study: optuna.Study, trial: optuna.Trial, objective: Callable[[optuna.Trial], Any]) -> TrialState:
    """Evaluate one claimed trial and tell the storage; never raises for the objective's errors.

    A pruned trial is PRUNED; an exception or a NaN is FAIL with ``fail_reason``; Ctrl-C
    abandons the trial (its configuration is queued again) and re-raises.
    """
    try:
        result = objective(trial)
    except optuna.TrialPruned:
        return _tell(study, trial, TrialState.PRUNED)
    except KeyboardInterrupt:
        frozen = study._storage.get_trial(trial._trial_id)
        abandon(study, trial._trial_id, trial.number, "interrupted (Ctrl-C)", frozen.params, frozen.user_attrs)
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        _log.warning("trial %d failed: %s", trial.number, reason)
        return _tell(study, trial, TrialState.FAIL, reason=reason[:2000])
    values = _as_values(result, len(study.directions))
    if isinstance(values, str):
        _log.warning("trial %d failed: %s", trial.number, values)
        return _tell(study, trial, TrialState.FAIL, reason=values)
    return _tell(study, trial, TrialState.COMPLETE, values=values)


def _tell(study: optuna.Study, trial: optuna.Trial, state: TrialState, *,
          values: list[float] | None = None, reason: str | None = None) -> TrialState:
    """Record the outcome; a trial that was abandoned meanwhile (declared dead) stays FAIL."""
    try:
        if reason is not None:
            trial.set_user_attr(FAIL_REASON, reason)
        told = study.tell(trial, values, state=state, skip_if_finished=True)
    except optuna.exceptions.UpdateFinishedTrialError:
        told = None
    if told is None or ABANDONED in told.user_attrs:
        _log.warning("trial %d was abandoned while it ran (no heartbeat within the grace period); "
                     "its result is dropped and its configuration runs again", trial.number)
        return TrialState.FAIL
    return state


def work(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], Any],
    *,
    deadline: float | None = None,
    unlimited: bool = False,
    worker_id: str | None = None,
    identity: Mapping[str, Any] | None = None,
    on_trial: Callable[[], None] | None = None,
    heartbeat_s: float | None = None,
    grace_s: float | None = None,
    poll_s: float = 0.5,
) -> int:
    """The worker loop: claim a trial, run it with a heartbeat, repeat.

    The worker stops when the deadline passes, or when no trial is waiting and none is running
    anywhere: while others still run trials it stays, recovers the trials of workers that died
    (their configurations are queued again) and runs those. Returns the number of trials it ran.
    """
    from tuneops.heartbeat import GRACE_S, INTERVAL_S, Heartbeat

    grace_s = GRACE_S if grace_s is None else grace_s
    identity = dict(identity) if identity is not None else worker_identity(worker_id)
    n = 0
    idle_s = min(0.05, poll_s)
    last_scan = time.monotonic()
    with Heartbeat(study._storage, INTERVAL_S if heartbeat_s is None else heartbeat_s) as beat:
        while deadline is None or time.time() < deadline:
            if time.monotonic() - last_scan > grace_s / 4:
                recover_abandoned(study, grace_s=grace_s)
                last_scan = time.monotonic()
            trial = next_trial(study, unlimited=unlimited)
            if trial is None:
                running = study._storage.get_all_trials(
                    study._study_id, deepcopy=False, states=(TrialState.RUNNING,)
                )
                if not running:
                    break
                if recover_abandoned(study, grace_s=grace_s, running=running):
                    continue
                time.sleep(idle_s)
                idle_s = min(idle_s * 2, poll_s)  # others are busy: ask the storage less often
                continue
            idle_s = min(0.05, poll_s)
            trial.set_user_attr(WORKER, identity)
            beat.trial_id = trial._trial_id
            try:
                run_trial(study, trial, objective)
            finally:
                beat.trial_id = None
            n += 1
            if on_trial is not None:
                on_trial()
    return n


# -- many workers -------------------------------------------------------------------------------
@dataclass
class WorkerSetup:
    """What a worker process needs to rebuild the study on its side."""

    study_name: str
    storage_url: str | None
    sampler: Callable[[int], optuna.samplers.BaseSampler]  # worker index -> sampler
    pruner: Callable[[], optuna.pruners.BasePruner]
    objective: Callable[[optuna.Trial], Any]
    n_workers: int = 1
    heartbeat_s: float | None = None  # None: tuneops.heartbeat.INTERVAL_S
    grace_s: float | None = None  # None: tuneops.heartbeat.GRACE_S


def load(setup: WorkerSetup, index: int) -> optuna.Study:
    from tuneops.storage import get_storage

    # The owner checked the server's connection limit for all workers; one worker needs no check.
    return optuna.load_study(
        study_name=setup.study_name,
        storage=get_storage(setup.storage_url),
        sampler=setup.sampler(index),
        pruner=setup.pruner(),
    )


def _child(setup: WorkerSetup, index: int, deadline: float | None, unlimited: bool) -> None:
    from threadpoolctl import threadpool_limits

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = load(setup, index)
        # One thread per forked worker: the workers already fill the cores, and an OpenMP pool
        # inherited from the parent (e.g. after a k-NN predict there) deadlocks GNU libgomp in
        # the child unless parallel regions stay single-threaded.
        with threadpool_limits(limits=1):
            work(study, setup.objective, deadline=deadline, unlimited=unlimited,
                 heartbeat_s=setup.heartbeat_s, grace_s=setup.grace_s)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def execute(
    setup: WorkerSetup,
    *,
    n_workers: int,
    deadline: float | None,
    unlimited: bool,
    study: optuna.Study,
    on_progress: Callable[[], None] | None = None,
) -> None:
    """Run the study with ``n_workers`` local workers until the budget or deadline is spent.

    One worker runs in this process; more are forked processes that each open the storage
    themselves (so each has its own connection pool). Ctrl-C abandons running trials cleanly and keeps the finished ones.
    """
    if n_workers <= 1:
        work(study, setup.objective, deadline=deadline, unlimited=unlimited, on_trial=on_progress,
             heartbeat_s=setup.heartbeat_s, grace_s=setup.grace_s)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_child, args=(setup, i, deadline, unlimited), daemon=False)
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
        recover_abandoned(study, grace_s=setup.grace_s)
