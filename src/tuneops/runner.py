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
def worker_identity(worker_id: str | None = None) -> dict[str, Any]:
    host, pid = socket.gethostname(), os.getpid()
    return {"host": host, "pid": pid, "id": worker_id or f"{host}:{pid}"}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    study_id = storage.get_study_id_from_name(study.study_name)
    for waiting in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(waiting._trial_id, state=TrialState.RUNNING):
                return optuna.trial.Trial(study, waiting._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return study.ask() if unlimited else None


def abandon(study: optuna.Study, trial_id: int, number: int, reason: str, params: Mapping[str, Any],
            user_attrs: Mapping[str, Any]) -> None:
    """Mark a RUNNING trial FAIL as abandoned, and queue its configuration again once."""
    storage = study._storage
    storage.set_trial_user_attr(trial_id, ABANDONED, reason)
    try:
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return
    if RETRY_OF in user_attrs:  # already a retry: run a fresh configuration instead
        study.enqueue_trial({}, user_attrs={RETRY_OF: number, "retry_params": dict(params)})
    else:
        study.enqueue_trial(dict(params), user_attrs={RETRY_OF: number})
    _log.warning("trial %d abandoned (%s); its configuration is queued again", number, reason)


def recover_abandoned(study: optuna.Study, *, stale_after_s: float = 120.0) -> int:
    """Abandon RUNNING trials whose worker is gone; returns how many were recovered.

    A worker on this host is gone when its pid no longer exists. Trials of other hosts are
    left to heartbeats (remote workers).
    """
    host = socket.gethostname()
    now = time.time()
    recovered = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get(WORKER)
        if worker is None:
            started = t.datetime_start.timestamp() if t.datetime_start else now
            if now - started < stale_after_s:
                continue
            reason = "its worker stopped before recording itself"
        elif worker.get("host") == host and not _pid_alive(int(worker.get("pid", -1))):
            reason = f"worker {worker.get('id')} is no longer running"
        else:
            continue
        abandon(study, t._trial_id, t.number, reason, t.params, t.user_attrs)
        recovered += 1
    return recovered


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
        study.tell(trial, state=TrialState.PRUNED)
        return TrialState.PRUNED
    except KeyboardInterrupt:
        frozen = study._storage.get_trial(trial._trial_id)
        abandon(study, trial._trial_id, trial.number, "interrupted (Ctrl-C)", frozen.params, frozen.user_attrs)
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        trial.set_user_attr(FAIL_REASON, reason[:2000])
        study.tell(trial, state=TrialState.FAIL)
        _log.warning("trial %d failed: %s", trial.number, reason)
        return TrialState.FAIL
    values = _as_values(result, len(study.directions))
    if isinstance(values, str):
        trial.set_user_attr(FAIL_REASON, values)
        study.tell(trial, state=TrialState.FAIL)
        _log.warning("trial %d failed: %s", trial.number, values)
        return TrialState.FAIL
    study.tell(trial, values)
    return TrialState.COMPLETE


def work(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], Any],
    *,
    deadline: float | None = None,
    unlimited: bool = False,
    worker_id: str | None = None,
    on_trial: Callable[[], None] | None = None,
) -> int:
    """The worker loop: claim a trial, run it, repeat until no slot is left or time is up.

    Returns the number of trials this worker ran.
    """
    identity = worker_identity(worker_id)
    n = 0
    while deadline is None or time.time() < deadline:
        trial = next_trial(study, unlimited=unlimited)
        if trial is None:
            break
        trial.set_user_attr(WORKER, identity)
        run_trial(study, trial, objective)
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


def load(setup: WorkerSetup, index: int) -> optuna.Study:
    from tuneops.storage import get_storage

    return optuna.load_study(
        study_name=setup.study_name,
        storage=get_storage(setup.storage_url, n_workers=setup.n_workers),
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
            work(study, setup.objective, deadline=deadline, unlimited=unlimited)
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
    themselves. Ctrl-C abandons running trials cleanly and keeps the finished ones.
    """
    if n_workers <= 1:
        work(study, setup.objective, deadline=deadline, unlimited=unlimited, on_trial=on_progress)
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
        recover_abandoned(study)
