"""Run a study: samplers by name, the global trial budget, and the worker loop.

The budget is global: exactly ``n_trials`` trials count across all workers, local or remote,
however many join or leave, and none runs twice. Optuna's ``n_trials`` counts per process and
its storages have no conditional create ("a new trial if fewer than n exist"), so the budget
is kept by *place*: the owner of a run records ``n_trials`` in the study (``tuneops:budget``),
and a trial's place is the number of counted trials older than it (trial numbers are assigned
atomically by every storage). A worker creates a trial while fewer than ``n_trials`` are
counted, as ``study.ask()`` would, with one write; when workers create at the same moment near
the end, the ones whose place is beyond the budget retire their trial unrun. Queued trials
(warm-start configurations, retries) are claimed atomically (WAITING -> RUNNING), oldest
first, and retired unrun when their place is beyond the budget.

A trial whose worker died or was interrupted is *abandoned*: marked FAIL with the reason,
excluded from the budget, and its configuration is queued again once.
"""

from __future__ import annotations

import bisect
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
    "set_budget",
    "next_trial",
    "run_trial",
    "work",
    "recover_abandoned",
    "execute",
    "worker_identity",
]

_log = logging.getLogger("tuneops")

ABANDONED = "abandoned"  # user attr: reason a trial was abandoned (not counted in the budget)
RETRY_OF = "retry_of"  # user attr: number of the abandoned trial this one re-runs
WORKER = "worker"  # user attr: {"host", "pid", "id"} of the worker that ran the trial
FAIL_REASON = "fail_reason"
RETIRED = "retired"  # how the ABANDONED reason of a trial that was retired unrun begins
BUDGET = "tuneops:budget"  # study system attr: {"n_trials": the global budget}


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
    """True for a trial that was retired without running (over the budget)."""
    return str(trial.user_attrs.get(ABANDONED, "")).startswith(RETIRED)


def abandoned_label(reason: str | None) -> str:
    """How tables mark a trial whose ``abandoned`` user attr is ``reason``: retired, abandoned or not."""
    if reason is None:
        return ""
    return " (retired)" if str(reason).startswith(RETIRED) else " (abandoned)"


def set_budget(study: optuna.Study, n_trials: int) -> int:
    """Make the budget exactly ``n_trials`` counted trials; returns the change in the budget.

    Trials that exist keep their place (finished, running, or queued, such as warm-start
    configurations); workers create the rest. When the budget was lowered (a resume with a
    smaller ``n_trials``), queued trials beyond it are retired as abandoned. Only the process
    that owns a run calls this; workers read the budget from the study.
    """
    storage = study._storage
    previous = storage.get_study_system_attrs(study._study_id).get(BUDGET)
    trials = study.get_trials(deepcopy=False)
    storage.set_study_system_attr(study._study_id, BUDGET, {"n_trials": n_trials})
    rank = _ranks(trials)
    for t in _Tally.of(trials).waiting:
        if rank(t) >= n_trials:
            _retire(study, t, f"budget lowered to {n_trials}")
    return n_trials - (previous["n_trials"] if previous else len(counted(trials)))


def _ranks(trials: Sequence[FrozenTrial]) -> Callable[[FrozenTrial], int]:
    """``trial -> its place in the budget``: how many counted trials are older (by number)."""
    numbers = sorted(t.number for t in counted(trials))
    return lambda trial: bisect.bisect_left(numbers, trial.number)


def _budget(study: optuna.Study, *, fresh: bool = False) -> int | None:
    """The study's budget (``n_trials``), or None without one, as read at most ``BUDGET_TTL_S`` ago."""
    known = _BUDGETS.get(study)
    if fresh or known is None or time.monotonic() - known[1] > BUDGET_TTL_S:
        record = study._storage.get_study_system_attrs(study._study_id).get(BUDGET)
        known = _BUDGETS[study] = (None if record is None else int(record["n_trials"]), time.monotonic())
    return known[0]


# The budget each process last read, per study, and when: reading it for every trial would cost
# a query per trial. It is read again before a trial is refused for lack of budget (the owner of
# a resumed run may have raised it), and every BUDGET_TTL_S (or lowered it).
BUDGET_TTL_S = 5.0
_BUDGETS: weakref.WeakKeyDictionary[optuna.Study, tuple[int | None, float]] = weakref.WeakKeyDictionary()


def _enqueue(study: optuna.Study, *, params: Mapping[str, Any] | None = None,
             user_attrs: Mapping[str, Any] | None = None) -> None:
    """Queue a WAITING trial with fixed ``params`` (if any)."""
    system_attrs = {"fixed_params": dict(params)} if params else {}
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, system_attrs=system_attrs,
                                              user_attrs=dict(user_attrs or {})))


def _retire(study: optuna.Study, trial: FrozenTrial, reason: str, *, claimed: bool = False) -> bool:
    """Take a trial out of the budget unrun (FAIL, abandoned); False if another worker claimed it.

    ``claimed``: the trial is this worker's (RUNNING); otherwise it is WAITING and claimed first.
    """
    storage = study._storage
    try:
        if not claimed and not storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
            return False
        storage.set_trial_user_attr(trial._trial_id, ABANDONED, f"{RETIRED}: {reason}")
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


def _claim_order(waiting: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The oldest queued trial first, then the next few in random order, then the rest.

    One worker thus claims in queue order: warm-start configurations in their priority order,
    and the same seed replays the same study. Workers that lose that first choice to another
    would collide again on the next oldest (one wins, the others wait on its row lock and
    retry), so after it the next few are tried in random order. (SystemRandom: forked workers
    share the state of the random module.)
    """
    first, *rest = sorted(waiting, key=lambda t: t.number)
    head = rest[:8]
    random.SystemRandom().shuffle(head)
    return [first, *head, *rest[8:]]


def next_trial(study: optuna.Study, *, unlimited: bool = False,
               identity: Mapping[str, Any] | None = None) -> optuna.Trial | None:
    """Atomically claim a queued trial, or create one while the budget allows; None otherwise.

    ``unlimited``: create trials without a budget (time-only runs). ``identity``: the worker's
    record, stored on the trial.
    """
    return _claim(study, study._storage.get_all_trials(study._study_id, deepcopy=False), identity,
                  unlimited=unlimited)


def _claim(study: optuna.Study, trials: Sequence[FrozenTrial], identity: Mapping[str, Any] | None,
           *, unlimited: bool = False) -> optuna.Trial | None:
    """:func:`next_trial` on the study's ``trials`` just read.

    A queued trial runs when it is within the budget (its :func:`_ranks` place is below
    ``n_trials``) and is retired otherwise. A new trial is created when fewer than ``n_trials``
    counted trials exist; workers that create at the same moment can overshoot, so a new trial
    checks its place (its number is final once created) and retires itself when it is beyond
    the budget. A trial within the budget stays within it: older trials can only leave it.
    """
    storage = study._storage
    tally = _Tally.of(trials)
    rank = _ranks(trials) if tally.waiting else None
    # The trials just read serve the sampler for this trial, as the read in study.ask() does.
    study._thread_local.cached_all_trials = trials
    for t in _claim_order(tally.waiting) if tally.waiting else ():
        if not unlimited and _budget(study) is not None and _beyond(study, rank(t)):
            _retire(study, t, f"beyond the budget of {_budget(study)}")
            continue
        try:
            if not storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        try:
            trial = optuna.trial.Trial(study, t._trial_id)
            if identity is not None:
                trial.set_user_attr(WORKER, dict(identity))
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # declared dead (no heartbeat) before the record was written: it is re-queued
        except KeyboardInterrupt:  # the trial is ours: give it back
            abandon(study, storage.get_trial(t._trial_id), "interrupted (Ctrl-C)")
            raise
        return trial
    if unlimited:
        return _new(study, identity, tally, None)
    if _beyond(study, tally.live):
        return None
    if _budget(study) - tally.live <= tally.running:
        # The last places, which the workers now running may be taking too: read again, so that
        # workers rarely create a trial beyond the budget (it would be retired unrun).
        trials = storage.get_all_trials(study._study_id, deepcopy=False)
        study._thread_local.cached_all_trials = trials
        tally = _Tally.of(trials)
        if _beyond(study, tally.live):
            return None
    return _new(study, identity, tally, _budget(study))


@dataclass
class _Tally:
    """What a claim needs from the trials just read, in one pass (they are read for every trial)."""

    waiting: list[FrozenTrial]  # queued trials that count
    live: int  # trials that count
    running: int  # running trials that count
    out: int  # trials that do not count (abandoned or retired)

    @classmethod
    def of(cls, trials: Sequence[FrozenTrial]) -> _Tally:
        tally = cls([], 0, 0, 0)
        for t in trials:
            if ABANDONED in t.user_attrs:
                tally.out += 1
                continue
            tally.live += 1
            if t.state == TrialState.WAITING:
                tally.waiting.append(t)
            elif t.state == TrialState.RUNNING:
                tally.running += 1
        return tally


def _beyond(study: optuna.Study, place: int) -> bool:
    """True when ``place`` is beyond the study's budget (or it has none); read again before saying so."""
    budget = _budget(study)
    if budget is not None and place < budget:
        return False
    budget = _budget(study, fresh=True)
    return budget is None or place >= budget


def _new(study: optuna.Study, identity: Mapping[str, Any] | None, tally: _Tally,
         budget: int | None) -> optuna.Trial | None:
    """A new RUNNING trial carrying the worker's record (one write); None when beyond the budget."""
    template = optuna.trial.create_trial(state=TrialState.RUNNING,
                                         user_attrs={} if identity is None else {WORKER: dict(identity)})
    trial = optuna.trial.Trial(study, study._storage.create_new_trial(study._study_id, template_trial=template))
    if budget is None:
        return trial
    # Older trials than this one: every number below it. Those out of the budget in the read
    # above (all older) are known not to count; any others might. Below the budget even so: it
    # is within it for good.
    if trial._cached_frozen_trial.number - tally.out < budget:
        return trial
    fresh = study._storage.get_all_trials(study._study_id, deepcopy=False)
    if _ranks(fresh)(trial._cached_frozen_trial) < budget:
        study._thread_local.cached_all_trials = fresh
        return trial
    _retire(study, trial._cached_frozen_trial, f"beyond the budget of {budget} (created with others at once)",
            claimed=True)
    return None


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
    if RETRY_OF in trial.user_attrs:  # already a retry: run a fresh configuration instead
        _enqueue(study, user_attrs={RETRY_OF: trial.number, "retry_params": dict(trial.params)})
    else:
        _enqueue(study, params=trial.params, user_attrs={RETRY_OF: trial.number})
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
    wait_for_others: bool = True,
) -> int:
    """The worker loop: claim a trial, run it with a heartbeat, repeat.

    The worker stops when the deadline passes, or when no trial is waiting and none is running
    anywhere: while others still run trials it stays, recovers the trials of workers that died
    (their configurations are queued again) and runs those. With ``wait_for_others=False`` it
    stops as soon as it finds nothing to run (a local worker whose parent stays for the others).
    Returns the number of trials it ran.
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
            trial = _claim(study, trials, identity, unlimited=unlimited)
            if trial is None:
                if any(t.state == TrialState.WAITING for t in trials):
                    continue  # others claimed the queued trials seen (or they were retired): look again
                running = [t for t in trials if t.state == TrialState.RUNNING]
                if not running or not wait_for_others:
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


def _child(setup: WorkerSetup, index: int, deadline: float | None, unlimited: bool, pools: Any) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = load(setup, index)
        # An OpenMP pool inherited from the parent (e.g. after a k-NN predict there) deadlocks
        # GNU libgomp in the child unless parallel regions stay single-threaded. `pools` (the
        # parent's OpenMP libraries, found once there: the search scans every loaded library)
        # holds only OpenMP: resizing OpenBLAS in a forked child costs it CPU on every trial.
        with pools.limit(limits=1):
            work(study, setup.objective, deadline=deadline, unlimited=unlimited,
                 heartbeat_s=setup.heartbeat_s, grace_s=setup.grace_s, wait_for_others=False)
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
    themselves (so each has its own connection pool). A forked worker stops as soon as it finds
    nothing to run; this process then stays for what others still run (remote workers), and
    runs the retries of workers that died. Ctrl-C abandons running trials cleanly and keeps the
    finished ones.
    """
    if n_workers <= 1:
        work(study, setup.objective, deadline=deadline, unlimited=unlimited, on_trial=on_progress,
             heartbeat_s=setup.heartbeat_s, grace_s=setup.grace_s)
        return
    import multiprocessing

    from threadpoolctl import ThreadpoolController

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
        recover_abandoned(study, grace_s=setup.grace_s)
    work(study, setup.objective, deadline=deadline, unlimited=unlimited, on_trial=on_progress,
         heartbeat_s=setup.heartbeat_s, grace_s=setup.grace_s)
