"""Run a study: samplers by name, the global trial budget, and the worker loop.

The budget is *slots*: WAITING trials that every worker, local or remote, pops atomically through
the storage, so exactly ``n_trials`` trials run across all workers, however many join or leave,
and none is run twice. Optuna's ``n_trials`` counts per process and its
``enqueue_trial(skip_if_exists=True)`` is not atomic, so neither gives this.

Only a small *window* of slots is queued at any time (one per worker and one spare):
Optuna's RDB cache re-reads every unfinished trial on each sampler call, so a whole budget
queued up front would make every trial cost O(remaining budget). The owner of a run records the
budget in the study (``tuneops:budget``: slot indices ``base .. base + slots - 1``, window
``W``) and queues slots ``base .. base + W - 1``; whoever claims slot ``i`` queues slot
``i + W`` while it is in the budget. The claim is atomic, so each slot index is queued exactly
once, by one worker, with no further coordination: the budget keeps going when the owner has
finished or died.

A trial whose worker died or was interrupted is *abandoned*: marked FAIL with the reason,
excluded from the budget, and its configuration (with its slot index) is queued again once.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import socket
import time
import weakref
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
    "window",
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
RETIRED = "retired"  # how the ABANDONED reason of a slot that was retired unrun begins
SLOT = "tuneops:slot"  # trial system attr: the index of the budget slot the trial fills
BUDGET = "tuneops:budget"  # study system attr: {"n_trials", "base", "slots", "window"}


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


def retired(trial: FrozenTrial) -> bool:
    """True for a slot that was retired without running (budget lowered, or a duplicate)."""
    return str(trial.user_attrs.get(ABANDONED, "")).startswith(RETIRED)


def window(n_workers: int) -> int:
    """How many budget slots stay queued for ``n_workers`` workers: one each and one spare.

    Each claim queues the next slot at once, labelled for the worker that claimed, and workers
    claim their own first, so they rarely collide; every queued slot is re-read by Optuna's RDB
    cache on each sampler call, so the window stays small.
    """
    return max(1, n_workers) + 1


def ensure_slots(study: optuna.Study, n_trials: int, *, n_workers: int = 1) -> int:
    """Make the budget exactly ``n_trials`` counted trials; returns the change in the budget.

    Trials that exist keep their place (finished, running, or queued, such as warm-start
    configurations, or slots of an earlier budget, which no longer queue successors); the rest
    of the budget gets fresh slot indices, of which the first :func:`window` are queued now and
    the others by the workers' claims. When the budget was lowered (a resume with a smaller
    ``n_trials``), surplus WAITING trials are retired as abandoned. Only the process that owns a
    run calls this; workers only claim.
    """
    storage = study._storage
    trials = study.get_trials(deepcopy=False)
    live = counted(trials)
    previous = storage.get_study_system_attrs(study._study_id).get(BUDGET)
    missing = n_trials - len(live)
    for t in live:  # slots of the earlier budget stay in it as they are, without successors
        if not t.state.is_finished() and t.system_attrs.get(SLOT) is not None:
            try:
                storage.set_trial_system_attr(t._trial_id, SLOT, None)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # it finished meanwhile (a worker of the earlier run is still going)
    if missing < 0:
        for t in [t for t in live if t.state == TrialState.WAITING][missing:]:
            _retire(study, t, f"budget lowered to {n_trials}")
    # Indices never repeat: the new budget starts above every index queued or promised before.
    base = max([1 + t.system_attrs[SLOT] for t in trials if t.system_attrs.get(SLOT) is not None]
               + ([previous["base"] + previous["slots"]] if previous else [0]))
    slots, w = max(0, missing), window(n_workers)
    # Recorded before the first slot is queued, so every claim of a new slot sees it.
    storage.set_study_system_attr(study._study_id, BUDGET,
                                  {"n_trials": n_trials, "base": base, "slots": slots, "window": w})
    for index in range(base, base + min(slots, w)):
        _enqueue(study, slot=index)
    return n_trials - (previous["n_trials"] if previous else len(live))


def _enqueue(study: optuna.Study, *, slot: int | None = None, params: Mapping[str, Any] | None = None,
             user_attrs: Mapping[str, Any] | None = None) -> None:
    """Queue a WAITING trial: budget slot ``slot`` (if any), with fixed ``params`` (if any)."""
    system_attrs: dict[str, Any] = {} if slot is None else {SLOT: slot}
    if params:
        system_attrs["fixed_params"] = dict(params)
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, system_attrs=system_attrs,
                                              user_attrs=dict(user_attrs or {})))


def _retire(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Take a WAITING trial out of the budget unrun (FAIL, abandoned); False if it was claimed."""
    storage = study._storage
    try:
        if not storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
            return False
        storage.set_trial_user_attr(trial._trial_id, ABANDONED, f"{RETIRED}: {reason}")
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


def _claim_order(waiting: Sequence[FrozenTrial], identity: Mapping[str, Any] | None) -> list[FrozenTrial]:
    """Configurations first (warm start, retries), then the worker's own slots, then the others.

    The first choice is the oldest of the first non-empty group, so one worker claims in queue
    order: warm-start configurations in their priority order, and the same seed replays the same
    study. Workers that lose that first choice to another would collide again on the next oldest
    (one wins, the others wait on its row lock and retry), so after it each group's oldest few are
    tried in random order; the slots a worker queued carry its record and it prefers them, which
    keeps collisions rare. (SystemRandom: forked workers share the state of the random module.)
    """
    rng = random.SystemRandom()
    groups: list[list[FrozenTrial]] = [[], [], []]
    for t in waiting:
        own = identity is not None and t.user_attrs.get(WORKER) == identity
        groups[0 if t.system_attrs.get("fixed_params") else 1 if own else 2].append(t)
    order = []
    for group in groups:
        head = group[:8]
        rng.shuffle(head)
        order += [*head, *group[8:]]
    first = next(group[0] for group in groups if group)
    return [first, *(t for t in order if t is not first)]


def next_trial(study: optuna.Study, *, unlimited: bool = False,
               identity: Mapping[str, Any] | None = None) -> optuna.Trial | None:
    """Atomically claim a WAITING trial; without one, a new trial only if ``unlimited``.

    ``identity``: the worker's record, stored on the trial it claims (a slot this worker queued
    carries it already). Claiming budget slot ``i`` queues slot ``i + window`` while that is in
    the budget, labelled with ``identity``.
    """
    trial = _claim(study, study._storage.get_all_trials(study._study_id, deepcopy=False), identity)
    if trial is None and unlimited:
        trial = _new(study, identity)
    return trial


def _new(study: optuna.Study, identity: Mapping[str, Any] | None) -> optuna.Trial:
    """A new trial outside any budget (time-only budgets)."""
    trial = study.ask()
    if identity is not None:
        trial.set_user_attr(WORKER, dict(identity))
    return trial


def _claim(study: optuna.Study, trials: Sequence[FrozenTrial],
           identity: Mapping[str, Any] | None) -> optuna.Trial | None:
    """:func:`next_trial` on the study's ``trials`` just read; None when none is waiting."""
    storage = study._storage
    for _ in range(3):  # another round when others took every slot seen: theirs queued new ones
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        if not waiting:
            return None
        first_of_slot: dict[int, int] = {}  # slot index -> number of the oldest counted trial in it
        for t in counted(trials):
            if SLOT in t.system_attrs:
                i = t.system_attrs[SLOT]
                first_of_slot[i] = min(first_of_slot.get(i, t.number), t.number)
        for slot in _claim_order(waiting, identity):
            index = slot.system_attrs.get(SLOT)
            if index is not None and first_of_slot.get(index, slot.number) < slot.number:
                # queued twice (a worker stalled past the grace period): the older one counts
                _retire(study, slot, f"duplicate slot {index}")
                continue
            try:
                if not storage.set_trial_state_values(slot._trial_id, state=TrialState.RUNNING):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            try:
                # The trials just read serve the sampler for this trial, as the read in
                # study.ask() does (it re-reads on the first suggestion otherwise).
                study._thread_local.cached_all_trials = trials
                trial = optuna.trial.Trial(study, slot._trial_id)
                if identity is not None and slot.user_attrs.get(WORKER) != identity:
                    trial.set_user_attr(WORKER, dict(identity))
                if index is not None:
                    _queue_successor(study, index, trials, identity)
            except optuna.exceptions.UpdateFinishedTrialError:
                # Declared dead before this worker's record replaced the label of the (dead)
                # worker that queued the slot: it is re-queued, and its retry queues the successor.
                continue
            except KeyboardInterrupt:  # the slot is ours: give it back (its retry queues the successor)
                abandon(study, storage.get_trial(slot._trial_id), "interrupted (Ctrl-C)")
                raise
            return trial
        trials = storage.get_all_trials(study._study_id, deepcopy=False)
    return None


# The budget each process last read, per study: a claim needs it, and reading it each time
# would cost a query per trial. It is read again when a slot lies outside it (a new budget).
_BUDGETS: weakref.WeakKeyDictionary[optuna.Study, dict[str, int]] = weakref.WeakKeyDictionary()


def _queue_successor(study: optuna.Study, index: int, trials: Sequence[FrozenTrial],
                     identity: Mapping[str, Any] | None) -> None:
    """Queue slot ``index + window`` of the budget, unless it exists (``index`` is a retry)."""
    budget = _BUDGETS.get(study)
    if budget is None or not budget["base"] <= index < budget["base"] + budget["slots"]:
        budget = study._storage.get_study_system_attrs(study._study_id).get(BUDGET)
        if budget is None:
            return
        _BUDGETS[study] = budget
    successor = index + budget["window"]
    if not budget["base"] <= index < successor < budget["base"] + budget["slots"]:
        return
    if any(t.system_attrs.get(SLOT) == successor for t in counted(trials)):
        return
    _enqueue(study, slot=successor, user_attrs={WORKER: dict(identity)} if identity is not None else None)


def abandon(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    """Mark a RUNNING trial FAIL as abandoned, and queue its configuration again once."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, ABANDONED, reason)
        # The storage makes this transition atomic: of several workers recovering the same
        # trial, one succeeds and re-queues it; the others get UpdateFinishedTrialError.
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return
    slot = trial.system_attrs.get(SLOT)  # the retry fills the same budget slot
    if RETRY_OF in trial.user_attrs:  # already a retry: run a fresh configuration instead
        _enqueue(study, slot=slot, user_attrs={RETRY_OF: trial.number, "retry_params": dict(trial.params)})
    else:
        _enqueue(study, slot=slot, params=trial.params, user_attrs={RETRY_OF: trial.number})
    _log.warning("trial %d abandoned (%s); its configuration is queued again", trial.number, reason)


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
        abandon(study, t, reason)
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
        abandon(study, study._storage.get_trial(trial._trial_id), "interrupted (Ctrl-C)")
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
    from optuna.study._tell import _tell_with_warning

    try:
        if reason is not None:
            trial.set_user_attr(FAIL_REASON, reason)
        # Optuna's own tell of study.optimize: study.tell would read the trial back once more.
        # An abandoned trial is already FAIL, so it is skipped and keeps that state.
        told, _, _ = _tell_with_warning(study, trial, values, state, skip_if_finished=True,
                                        suppress_warning=True)
    except optuna.exceptions.UpdateFinishedTrialError:
        told = None
    if told != state:
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
    idle_s = min(0.1, poll_s)
    last_scan = time.monotonic()
    with Heartbeat(study._storage, INTERVAL_S if heartbeat_s is None else heartbeat_s) as beat:
        while deadline is None or time.time() < deadline:
            if time.monotonic() - last_scan > grace_s / 4:
                recover_abandoned(study, grace_s=grace_s)
                last_scan = time.monotonic()
            trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
            trial = _claim(study, trials, identity)
            if trial is None and unlimited:
                trial = _new(study, identity)
            if trial is None:
                if any(t.state == TrialState.WAITING for t in trials):
                    continue  # others took the slots seen; their claims queued new ones
                running = [t for t in trials if t.state == TrialState.RUNNING]
                if not running:
                    break
                if recover_abandoned(study, grace_s=grace_s, running=running):
                    continue
                time.sleep(idle_s)
                idle_s = min(idle_s * 2, poll_s)  # others are busy: ask the storage less often
                continue
            idle_s = min(0.1, poll_s)
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
