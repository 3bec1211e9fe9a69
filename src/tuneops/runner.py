"""Run a study: the global trial budget and the worker loop (samplers: :mod:`tuneops.samplers`;
processes: :mod:`tuneops.backends`).

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

A *compute budget* (``search.budget``, ``tuneops:compute_budget``: fit CPU seconds, fit
seconds or fidelity steps) works alongside: a worker creates a new trial only while the compute
the finished trials spent, read from their fidelity records (``tuneops:fidelity``), is below
it, so the compute a pruner saves buys more trials. The sum is kept incrementally with the
settled prefix of the study (see :class:`_Settled`), not re-read from every trial per claim.
Trials still running are not counted yet: with ``n`` workers the budget is overshot by at most
the trials the other workers run at the moment it is reached.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import os
import random
import signal
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuneops import _optuna, _study
from tuneops._study import (
    ABANDONED,
    FAIL_REASON,
    REPEAT_OF,
    RETIRED,
    RETRY_OF,
    WARM_START,
    WORKER,
    counted,
)
from tuneops.errors import StorageUnavailable, UsageError, WriteError
from tuneops.heartbeat import GRACE_S, INTERVAL_S, Heartbeat, stale_trials
from tuneops.pruning import trial_compute
from tuneops.spec import COMPUTE_UNITS
from tuneops.storage import get_storage

__all__ = [
    "set_budget",
    "set_compute_budget",
    "compute_spent",
    "next_trial",
    "run_trial",
    "record_with_outcome",
    "work",
    "MAX_FAILED_IN_A_ROW",
    "MAX_REPEATS_IN_A_ROW",
    "failed_in_a_row",
    "recover_abandoned",
    "worker_identity",
    "WorkerSetup",
    "load",
    "Interrupted",
    "stop_on_signals",
    "signals_held",
]

_log = logging.getLogger("tuneops")


# -- signals
# ----------------------------------------------------------------------------------------
class Interrupted(KeyboardInterrupt):
    """A worker was stopped by SIGINT (Ctrl-C) or SIGTERM (``kill``, a scheduler).

    Its running trials were abandoned (FAIL, not counted) and their configurations queued again
    once; ``abandoned`` lists their numbers (those of this process and, for the owner of a
    local run, of its worker processes). The CLI exits with :attr:`exit_code` (130, 143).
    """

    def __init__(self, signum: int = signal.SIGINT) -> None:
        self.signum = int(signum)
        self.abandoned: list[int] = []
        super().__init__(self.signal_name)

    @classmethod
    def of(cls, exc: BaseException) -> Interrupted:
        """``exc`` as an :class:`Interrupted` (a plain KeyboardInterrupt is Ctrl-C); the stop
        has reached code that acts on it (see :func:`stop_on_signals`)."""
        _STOP["acknowledged"] = True
        return exc if isinstance(exc, Interrupted) else cls(signal.SIGINT)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def reason(self) -> str:
        """Why its trials were abandoned, as recorded: the signal, and for a forked worker whose
        run died (SIGKILL) the SIGTERM Linux sent it then, said as such."""
        if self.signum == signal.SIGTERM and FORKED_FROM is not None and (
            os.getppid() != FORKED_FROM
        ):
            return "interrupted (SIGTERM: the run that started this worker stopped)"
        return f"interrupted ({self.signal_name})"


#: The pid of the run that forked this worker process (tuneops.backends.local); None elsewhere.
FORKED_FROM: int | None = None

# The stop of the current stop_on_signals block: the signal (None before one arrives) and
# whether the Interrupted it raised reached code that acts on it (Interrupted.of).
_STOP: dict[str, Any] = {"signum": None, "acknowledged": False, "t": 0.0}
#: A second stop signal this soon after the first is the same stop delivered twice.
SAME_STOP_S = 1.0


def check_stop() -> None:
    """Raise the stop again if the one the handler raised was lost. Python ignores an exception
    raised in a finalizer (``__del__``): a Ctrl-C that arrived while joblib's thread pool of a
    forest fit was finalized was printed as "Exception ignored" and the run went on to its end,
    every later Ctrl-C answered with "already stopping". Called between trials."""
    if _STOP["signum"] is not None and not _STOP["acknowledged"] and _HELD is None:
        raise Interrupted(_STOP["signum"])


@contextlib.contextmanager
def stop_on_signals() -> Any:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` in this (main) thread,
    so the running trial is abandoned cleanly; the previous handlers are restored after.
    Elsewhere than in the main thread (where Python delivers signals) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if _optuna.replaying():  # a journal replay cut in half loses entries: after it
            _optuna.defer_signal(signum)
            return
        stopping = _STOP["signum"]
        if stopping is not None:
            if not _STOP["acknowledged"] and _HELD is None:
                raise Interrupted(stopping)  # the first was raised where Python ignored it
            # One stop per block: a second signal (Ctrl-C pressed twice, a scheduler's repeated
            # TERM) must not cut short the give-back of the running trials the first started.
            # Within a second it is the same stop twice (a terminal signals a local run's
            # workers, and the run forwards its own): not worth a line.
            repeated = time.monotonic() - _STOP["t"] < SAME_STOP_S
            (_log.debug if repeated else _log.warning)(
                "already stopping (%s): giving back the running trials first",
                signal.Signals(stopping).name,
            )
            return
        _STOP["signum"], _STOP["t"] = signum, time.monotonic()
        if _HELD is not None:
            _HELD.append(signum)  # raised when the held block is done
            return
        raise Interrupted(signum)

    outer = dict(_STOP)
    _STOP.update(signum=None, acknowledged=False, t=0.0)
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _STOP.update(outer)


# -- identity ---------------------------------------------------------------------------------
def worker_identity(worker_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """Who runs a trial: host, pid, an id (``host:pid`` unless given), and ``extra`` (Ray node)."""
    host, pid = socket.gethostname(), os.getpid()
    return {"host": host, "pid": pid, "id": worker_id or f"{host}:{pid}", **extra}


# -- budget -------------------------------------------------------------------------------------
def set_budget(study: optuna.Study, n_trials: int) -> int:
    """Make the budget exactly ``n_trials`` counted trials; returns the change in the budget.

    Trials that exist keep their place (finished, running, or queued, such as warm-start
    configurations); workers create the rest. When the budget was lowered (a resume with a
    smaller ``n_trials``), queued trials beyond it are retired as abandoned. Only the process
    that owns a run calls this; workers read the budget from the study.
    """
    previous = _study.budget(study)
    trials = study.get_trials(deepcopy=False)
    _study.set_budget_record(study, n_trials)
    rank = _ranks(trials)
    for t in _Tally.of(trials).waiting:
        if rank(t) >= n_trials:
            _retire(study, t, f"budget lowered to {n_trials}")
    return n_trials - (previous if previous is not None else len(counted(trials)))


def _ranks(trials: Sequence[FrozenTrial]) -> Callable[[FrozenTrial], int]:
    """``trial -> its place in the budget``: how many counted trials are older (by number)."""
    numbers = sorted(t.number for t in counted(trials))
    return lambda trial: bisect.bisect_left(numbers, trial.number)


def _budget(study: optuna.Study, *, fresh: bool = False) -> int | None:
    """The study's budget (``n_trials``), or None without one, as read at most ``BUDGET_TTL_S``
    ago."""
    known = _BUDGETS.get(study)
    if fresh or known is None or time.monotonic() - known[1] > BUDGET_TTL_S:
        known = _BUDGETS[study] = (_study.budget(study), time.monotonic())
    return known[0]


def set_compute_budget(study: optuna.Study, budget: Mapping[str, float] | None) -> None:
    """Record the study's compute budget ``{unit: amount}`` (``search.budget``), or remove it.

    Only the process that owns a run calls this; workers read it from the study.
    """
    if budget:
        ((unit, amount),) = dict(budget).items()
        _study.set_compute_budget_record(study, unit, amount)
    elif _study.compute_budget(study) is not None:
        _optuna.set_study_system_attr(study, _study.COMPUTE_BUDGET, {})
    _COMPUTE.pop(study, None)


def compute_spent(study: optuna.Study) -> dict[str, float]:
    """The compute the study's finished, counted trials spent, per unit (``fit_cpu_s``,
    ``fit_s``, ``steps``), as the budget counts it."""
    return _Tally.of(_optuna.read_trials(study), study).spent


def _compute_budget(study: optuna.Study) -> tuple[str, float] | None:
    """The study's compute budget, as read at most ``BUDGET_TTL_S`` ago."""
    known = _COMPUTE.get(study)
    if known is None or time.monotonic() - known[1] > BUDGET_TTL_S:
        known = _COMPUTE[study] = (_study.compute_budget(study), time.monotonic())
    return known[0]


def _compute_left(study: optuna.Study, tally: _Tally) -> bool:
    """True unless the study has a compute budget that its finished trials have spent."""
    limit = _compute_budget(study)
    return limit is None or tally.spent[limit[0]] < limit[1]


_COMPUTE: weakref.WeakKeyDictionary[optuna.Study, tuple[tuple[str, float] | None, float]] = (
    weakref.WeakKeyDictionary()
)

# The budget each process last read, per study, and when: reading it for every trial would cost
# a query per trial. It is read again before a trial is refused for lack of budget (the owner of
# a resumed run may have raised it), and every BUDGET_TTL_S (or lowered it).
BUDGET_TTL_S = 5.0
_BUDGETS: weakref.WeakKeyDictionary[optuna.Study, tuple[int | None, float]] = (
    weakref.WeakKeyDictionary()
)


def _enqueue(
    study: optuna.Study,
    *,
    params: Mapping[str, Any] | None = None,
    user_attrs: Mapping[str, Any] | None = None,
) -> None:
    """Queue a WAITING trial with fixed ``params`` (if any)."""
    system_attrs = {"fixed_params": dict(params)} if params else {}
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING, system_attrs=system_attrs, user_attrs=dict(user_attrs or {})
        )
    )


def _retire(study: optuna.Study, trial: FrozenTrial, reason: str, *, claimed: bool = False) -> bool:
    """Take a trial out of the budget unrun (FAIL, abandoned); False if another worker claimed it.

    ``claimed``: the trial is this worker's (RUNNING); otherwise it is WAITING and claimed first.
    """
    try:
        if not claimed and not _optuna.set_trial_state(study, trial, TrialState.RUNNING):
            return False
        _optuna.set_trial_user_attr(study, trial, ABANDONED, f"{RETIRED}: {reason}")
        _optuna.set_trial_state(study, trial, TrialState.FAIL)
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


def next_trial(
    study: optuna.Study, *, unlimited: bool = False, identity: Mapping[str, Any] | None = None
) -> optuna.Trial | None:
    """Atomically claim a queued trial, or create one while the budget allows; None otherwise.

    ``unlimited``: create trials without a budget (time-only runs). ``identity``: the worker's
    record, stored on the trial.
    """
    return _claim(study, _optuna.read_trials(study), identity, unlimited=unlimited)


def _claim(
    study: optuna.Study,
    trials: Sequence[FrozenTrial],
    identity: Mapping[str, Any] | None,
    *,
    unlimited: bool = False,
) -> optuna.Trial | None:
    """:func:`next_trial` on the study's ``trials`` just read.

    A queued trial runs when it is within the budget (its :func:`_ranks` place is below
    ``n_trials``) and is retired otherwise. A new trial is created when fewer than ``n_trials``
    counted trials exist; workers that create at the same moment can overshoot, so a new trial
    checks its place (its number is final once created) and retires itself when it is beyond
    the budget. A trial within the budget stays within it: older trials can only leave it.
    """
    tally = _Tally.of(trials, study)
    rank = _ranks(trials) if tally.waiting else None
    # The trials just read serve the sampler for this trial, as the read in study.ask() does.
    _optuna.share_trials(study, trials if isinstance(trials, list) else list(trials))
    for t in _claim_order(tally.waiting) if tally.waiting else ():
        if (
            not unlimited
            and rank is not None
            and _budget(study) is not None
            and _beyond(study, rank(t))
        ):
            _retire(study, t, f"beyond the budget of {_budget(study)}")
            continue
        try:
            if not _optuna.set_trial_state(study, t, TrialState.RUNNING):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        try:
            trial = optuna.trial.Trial(study, _optuna.trial_id(t))
            if identity is not None:
                trial.set_user_attr(WORKER, dict(identity))
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # declared dead (no heartbeat) before the record was written: it is re-queued
        except KeyboardInterrupt as exc:  # the trial is ours: give it back
            stop = Interrupted.of(exc)
            abandon(study, _optuna.read_trial(study, t), stop.reason)
            stop.abandoned.append(t.number)
            raise stop from None
        return trial
    if not _compute_left(study, tally):
        return None
    if unlimited:
        return _new(study, identity, tally, None)
    if _beyond(study, tally.live):
        return None
    budget = _budget(study)
    if budget is not None and budget - tally.live <= tally.running:
        # The last places, which the workers now running may be taking too: read again, so that
        # workers rarely create a trial beyond the budget (it would be retired unrun).
        trials = _optuna.read_trials(study)
        _optuna.share_trials(study, trials)
        tally = _Tally.of(trials, study)
        if _beyond(study, tally.live):
            return None
    return _new(study, identity, tally, _budget(study))


@dataclass
class _Settled:
    """What the budget knows for good about a study's oldest trials: ``upto`` trials (numbers
    0..upto-1) are all finished, so whether they count never changes again (a trial is marked
    abandoned only while it runs), and ``live``/``out`` of them count / do not count."""

    upto: int = 0
    live: int = 0
    out: int = 0
    spent: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COMPUTE_UNITS, 0.0))


# Per study object: the settled prefix, so that a claim examines only the trials that are new or
# still open since the last claim, not every trial of the study (which made tuneops' own cost per
# trial grow with the study: 1.4 ms per claim at 2,000 trials).
_SETTLED: weakref.WeakKeyDictionary[optuna.Study, _Settled] = weakref.WeakKeyDictionary()


@dataclass
class _Tally:
    """What a claim needs from the trials just read, in one pass (they are read for every trial)."""

    waiting: list[FrozenTrial]  # queued trials that count
    live: int  # trials that count
    running: int  # running trials that count
    out: int  # trials that do not count (abandoned or retired)
    examined: int = 0  # trials looked at (the settled prefix is not)
    spent: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COMPUTE_UNITS, 0.0))

    @classmethod
    def of(cls, trials: Sequence[FrozenTrial], study: optuna.Study | None = None) -> _Tally:
        """The tally of ``trials`` (all the study's, in number order). With ``study``, its settled
        prefix is taken as known and extended, so the cost is that of the open trials only."""
        settled = _Settled()
        if study is not None:
            settled = _SETTLED.setdefault(study, settled)
            if settled.upto > len(trials) or (
                settled.upto and trials[settled.upto - 1].number != settled.upto - 1
            ):
                settled = _SETTLED[study] = _Settled()  # another study's trials: start over
        tally = cls([], settled.live, 0, settled.out, spent=dict(settled.spent))
        extending = True
        for i in range(settled.upto, len(trials)):
            t = trials[i]
            tally.examined += 1
            out = ABANDONED in t.user_attrs
            # the compute of a finished trial that counts (one unrun or abandoned did not train
            # to the end of its record, and its retry runs again)
            record = (
                t.user_attrs.get(_study.FIDELITY) if t.state.is_finished() and not out else None
            )
            if extending and t.state.is_finished():
                settled.upto += 1
                settled.out += out
                settled.live += not out
                if record:
                    for unit in COMPUTE_UNITS:
                        settled.spent[unit] += trial_compute(record, unit)
            else:
                extending = False
            if record:
                for unit in COMPUTE_UNITS:
                    tally.spent[unit] += trial_compute(record, unit)
            if out:
                tally.out += 1
                continue
            tally.live += 1
            if t.state == TrialState.WAITING:
                tally.waiting.append(t)
            elif t.state == TrialState.RUNNING:
                tally.running += 1
        return tally


def _beyond(study: optuna.Study, place: int) -> bool:
    """True when ``place`` is beyond the study's budget (or it has none); read again before saying
    so."""
    budget = _budget(study)
    if budget is not None and place < budget:
        return False
    budget = _budget(study, fresh=True)
    return budget is None or place >= budget


def _new(
    study: optuna.Study, identity: Mapping[str, Any] | None, tally: _Tally, budget: int | None
) -> optuna.Trial | None:
    """A new RUNNING trial carrying the worker's record (one write); None when beyond the budget."""
    template = optuna.trial.create_trial(
        state=TrialState.RUNNING, user_attrs={} if identity is None else {WORKER: dict(identity)}
    )
    trial = _optuna.create_trial(study, template)
    if budget is None:
        return trial
    # Older trials than this one: every number below it. Those out of the budget in the read
    # above (all older) are known not to count; any others might. Below the budget even so: it
    # is within it for good.
    if trial.number - tally.out < budget:
        return trial
    fresh = _optuna.read_trials(study)
    if _ranks(fresh)(_optuna.frozen(trial)) < budget:
        _optuna.share_trials(study, fresh)
        return trial
    _retire(
        study,
        _optuna.frozen(trial),
        f"beyond the budget of {budget} (created with others at once)",
        claimed=True,
    )
    return None


# Signals that arrived while held (see _signals_held): None when nothing is held.
_HELD: list[int] | None = None


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """A stop signal that arrives in the block takes effect when the block is done: a trial
    marked abandoned must have its configuration queued again, or it is lost from the study.

    (Masking the signal would not do: the kernel hands it to another thread of the process,
    and Python runs the handler in the main thread anyway.)"""
    global _HELD
    if _HELD is not None or threading.current_thread() is not threading.main_thread():
        yield  # already held, or not the thread where handlers run
        return
    _HELD = []
    try:
        yield
    finally:
        held, _HELD = _HELD, None
        if held:
            raise Interrupted(held[0])


def signals_held() -> contextlib.AbstractContextManager[None]:
    """Within :func:`stop_on_signals`, a stop that arrives in the block raises
    :class:`Interrupted` when the block is done: for writes that are one step for whoever stops
    the process (a decision and what it does, such as a re-tuning's outcome and its promotion)."""
    return _signals_held()


def abandon(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    """Mark a RUNNING trial FAIL as abandoned, and queue its configuration again once.

    Signals are held meanwhile: the two writes are one step for whoever stops this process."""
    with _signals_held():
        _abandon(study, trial, reason)


def _abandon(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    try:
        _optuna.set_trial_user_attr(study, trial, ABANDONED, reason)
        # The storage makes this transition atomic: of several workers recovering the same
        # trial, one succeeds and re-queues it; the others get UpdateFinishedTrialError.
        _optuna.set_trial_state(study, trial, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return
    if RETRY_OF in trial.user_attrs:  # already a retry: run a fresh configuration instead
        _enqueue(study, user_attrs={RETRY_OF: trial.number, "retry_params": dict(trial.params)})
    else:
        # The same configuration from the same source: a warm-start trial's retry is the warm
        # start's (untagged, the warm start's summary said "none completed" of a portfolio
        # configuration that completed second best, and counted it as the best other trial).
        source = trial.user_attrs.get(WARM_START) if trial.params else None
        _enqueue(
            study,
            params=trial.params,
            user_attrs={RETRY_OF: trial.number} | ({WARM_START: source} if source else {}),
        )
    _log.warning("trial %d abandoned (%s); its configuration is queued again", trial.number, reason)


def recover_abandoned(
    study: optuna.Study,
    *,
    grace_s: float | None = None,
    running: Sequence[FrozenTrial] | None = None,
) -> int:
    """Abandon RUNNING trials whose worker is gone; returns how many were recovered.

    A worker is gone when it ran on this host under a pid that no longer exists, or when its
    trial has shown no sign of life (heartbeat) for ``grace_s`` seconds (see tuneops.heartbeat).
    ``running``: the study's RUNNING trials when the caller has just read them.
    """
    if running is None:
        running = _optuna.read_trials(study, states=(TrialState.RUNNING,))
    stale = stale_trials(running, now=time.time(), grace_s=GRACE_S if grace_s is None else grace_s)
    for t, reason in stale:
        abandon(study, t, reason)
    return len(stale)


# -- one trial ----------------------------------------------------------------------------------
def as_values(result: Any, n_objectives: int) -> list[float] | str:
    """An objective's result as its values, or the reason it is not (a trial's fail reason)."""
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


# The trials run_trial is running (by id(trial)), each with the user attributes recorded for it
# by record_with_outcome, written with its outcome.
_OUTCOME_ATTRS: dict[int, dict[str, Any]] = {}


def record_with_outcome(trial: optuna.trial.BaseTrial, key: str, value: Any) -> None:
    """Set a user attribute of ``trial`` that nothing reads before the trial ends (its measured
    metrics, its cost, its fidelity record): while :func:`run_trial` runs the trial it is
    written with the trial's outcome (on a journal file, in the same storage write: no write of
    its own); otherwise (a ``FixedTrial``, a trial driven elsewhere) now, as
    ``trial.set_user_attr`` writes it. Within the objective, ``trial.user_attrs`` does not show
    it yet when it waits for the outcome."""
    held = _OUTCOME_ATTRS.get(id(trial))
    if held is None:
        trial.set_user_attr(key, value)
    else:
        held[key] = value


def run_trial(
    study: optuna.Study, trial: optuna.Trial, objective: Callable[[optuna.Trial], Any]
) -> TrialState:
    """Evaluate one claimed trial and tell the storage; never raises for the objective's errors.

    A pruned trial is PRUNED; an exception or a NaN is FAIL with ``fail_reason``; Ctrl-C
    abandons the trial (its configuration is queued again) and re-raises. Attributes the
    objective set with :func:`record_with_outcome` are written with the outcome.
    """
    attrs: dict[str, Any] = {}
    _OUTCOME_ATTRS[id(trial)] = attrs
    try:
        return _run_trial(study, trial, objective, attrs)
    finally:
        _OUTCOME_ATTRS.pop(id(trial), None)


def _run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    objective: Callable[[optuna.Trial], Any],
    attrs: dict[str, Any],
) -> TrialState:
    try:
        result = objective(trial)
    except optuna.TrialPruned:
        return _tell(study, trial, TrialState.PRUNED, attrs=attrs)
    except KeyboardInterrupt as exc:
        stop = Interrupted.of(exc)
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            # what the objective recorded, as it stopped
            _optuna.set_trial_user_attrs(study, trial, attrs)
        abandon(study, _optuna.read_trial(study, trial), stop.reason)
        stop.abandoned.append(trial.number)
        raise stop from None
    except (WriteError, StorageUnavailable):
        # Nothing more can be recorded (a full disk; a storage down longer than its retries):
        # stop the run, the trial left RUNNING, abandoned and queued again when the study
        # resumes. Told FAIL (the server back by then: a PostgreSQL restart of 30-65 s), it
        # spent a place of the budget and never ran again.
        raise
    except optuna.exceptions.UpdateFinishedTrialError as exc:
        if ABANDONED not in _optuna.read_trial(study, trial).user_attrs:
            reason = f"{type(exc).__name__}: {exc}"
            _log.warning("trial %d failed: %s", trial.number, reason)
            return TrialState.FAIL
        # The objective wrote to its trial after another worker declared it dead (no heartbeat
        # within the grace period) and queued it again: not a failure of this configuration.
        _log.warning(
            "trial %d was abandoned while it ran (no heartbeat within the grace period); "
            "its result is dropped and its configuration runs again",
            trial.number,
        )
        return TrialState.FAIL
    except UsageError as exc:  # the setup is wrong, not the configuration: stop the run
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        _tell(study, trial, TrialState.FAIL, reason=reason, attrs=attrs)
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if (
            isinstance(exc, NotImplementedError)
            and len(study.directions) > 1
            and "multi-objective" in str(exc)
        ):
            # Optuna's trial.report / should_prune in a multi-objective study: every trial
            # would fail the same way (20 of them, before the run stopped on failures)
            problem = UsageError(
                f"{exc} Report the steps with tuneops.pruning.report(trial, values, step) and "
                "ask tuneops.pruning.should_prune(trial), which work with several objectives."
            )
            _tell(study, trial, TrialState.FAIL, reason=f"UsageError: {problem}", attrs=attrs)
            raise problem from exc
        _log.warning("trial %d failed: %s", trial.number, reason)
        return _tell(study, trial, TrialState.FAIL, reason=reason[:2000], attrs=attrs)
    values = as_values(result, len(study.directions))
    if isinstance(values, str):
        _log.warning("trial %d failed: %s", trial.number, values)
        return _tell(study, trial, TrialState.FAIL, reason=values, attrs=attrs)
    return _tell(study, trial, TrialState.COMPLETE, values=values, attrs=attrs)


def _tell(
    study: optuna.Study,
    trial: optuna.Trial,
    state: TrialState,
    *,
    values: list[float] | None = None,
    reason: str | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> TrialState:
    """Record the outcome, with ``attrs`` (and the ``fail_reason``) written just before it; a
    trial that was abandoned meanwhile (declared dead) stays FAIL."""
    attrs = dict(attrs or {})
    if reason is not None:
        attrs[FAIL_REASON] = reason
    # Optuna's own tell of study.optimize: study.tell would read the trial back once more.
    # An abandoned trial is already FAIL, so it is skipped and keeps that state.
    told = _optuna.tell(study, trial, values, state, attrs)
    if told != state:
        _log.warning(
            "trial %d was abandoned while it ran (no heartbeat within the grace period); "
            "its result is dropped and its configuration runs again",
            trial.number,
        )
        return TrialState.FAIL
    return state


#: A study stops creating trials once this many of its most recent finished trials failed in a
#: row: a setup error that no configuration escapes (a family that cannot fit the data, a
#: custom objective's bug) would otherwise fail every trial of the budget, and forever under a
#: compute budget, which a spec's failed trials do not spend (a ``tune()`` objective's do: its
#: whole call is timed). A few failing configurations among others
#: (a diverging network) never make such a run. Trials abandoned by a dead worker do not count.
MAX_FAILED_IN_A_ROW = 20


def failed_in_a_row(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The study's most recent finished trials (by number) that failed, up to the last one that
    did not (running and queued trials are passed over): newest first."""
    failed: list[FrozenTrial] = []
    for t in reversed(trials):
        if not t.state.is_finished() or ABANDONED in t.user_attrs:
            continue
        if t.state != TrialState.FAIL:
            break
        failed.append(t)
    return failed


def _failing(trials: Sequence[FrozenTrial], limit: int | None, *, say: bool = True) -> bool:
    """True, with the reason logged (``say``), when the last ``limit`` finished trials of
    ``trials`` all failed."""
    if not limit:
        return False
    failed = failed_in_a_row(trials)
    if len(failed) < limit:
        return False
    families = {t.params.get("family") for t in failed}
    # A sampler that never saw a family complete keeps proposing it (TPE ignores failed trials):
    # name the family when every failure is of one.
    family = (
        f", all of family {families.pop()!r}" if len(families) == 1 and None not in families else ""
    )
    (_log.error if say else _log.debug)(
        "stopping: the last %d finished trials all failed (trials %d-%d%s); the last said: %s. "
        "Fix the cause (`tuneops show STUDY` lists the failures) and run again: the study "
        "resumes with its finished trials",
        len(failed),
        failed[-1].number,
        failed[0].number,
        family,
        failed[0].user_attrs.get(FAIL_REASON, "unknown"),
    )
    return True


#: A study stops creating trials once this many of its most recent finished trials all repeated a
#: configuration tried before (:mod:`tuneops.repeats`: a completed one's outcome taken, or pruned
#: on the values it replayed): the sampler finds nothing new in a space of few configurations,
#: and under a compute budget, which a repeat does not spend, it would propose them forever.
MAX_REPEATS_IN_A_ROW = 20


def _exhausted(trials: Sequence[FrozenTrial], limit: int | None, *, say: bool = True) -> bool:
    """True, with the reason logged (``say``), when the last ``limit`` finished trials of
    ``trials`` were all repeats of a configuration tried before."""
    if not limit:
        return False
    last: list[FrozenTrial] = []
    for t in reversed(trials):
        if not t.state.is_finished() or ABANDONED in t.user_attrs:
            continue
        if REPEAT_OF not in t.user_attrs:
            return False
        last.append(t)
        if len(last) >= limit:
            break
    else:
        return False
    # A repeat of a pruned configuration is pruned again on the values it replays, and so may
    # be one of a completed configuration: "all repeated configurations already completed
    # (their outcomes reused) ... (6 distinct configurations completed)" was said of 20 repeats
    # of which 6 were pruned, in a space of 12 configurations tried, 6 of them pruned.
    pruned = sum(t.state == TrialState.PRUNED for t in last)
    completed = {
        tuple(sorted(t.params.items()))
        for t in trials
        if t.state == TrialState.COMPLETE and REPEAT_OF not in t.user_attrs
    }
    cut = {
        tuple(sorted(t.params.items()))
        for t in trials
        if t.state == TrialState.PRUNED
        and REPEAT_OF not in t.user_attrs
        and ABANDONED not in t.user_attrs
    } - completed
    outcomes = ", ".join(
        part
        for part in (
            f"{len(last) - pruned} took a completed trial's outcome" if len(last) > pruned else "",
            f"{pruned} were pruned on the values they replayed" if pruned else "",
        )
        if part
    )
    tried = f"{len(completed) + len(cut)} distinct configurations tried: {len(completed)} " + (
        f"completed, {len(cut)} pruned" if cut else "completed"
    )
    (_log.warning if say else _log.debug)(
        "stopping: the last %d finished trials all repeated configurations tried before "
        "(nothing fitted: %s); the sampler proposes nothing new in this space (%s). Widen "
        "model.space to search further: the study resumes with its finished trials",
        limit,
        outcomes,
        tried,
    )
    return True


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
    max_failed_in_a_row: int | None = MAX_FAILED_IN_A_ROW,
    max_repeats_in_a_row: int | None = MAX_REPEATS_IN_A_ROW,
) -> int:
    """The worker loop: claim a trial, run it with a heartbeat, repeat.

    The worker stops when the deadline passes, or when no trial is waiting and none is running
    anywhere: while others still run trials it stays, recovers the trials of workers that died
    (their configurations are queued again) and runs those. With ``wait_for_others=False`` it
    stops as soon as it finds nothing to run (a local worker whose parent stays for the others).
    It also stops when the study's last ``max_failed_in_a_row`` finished trials all failed
    (:data:`MAX_FAILED_IN_A_ROW`; None never), or all repeated configurations tried
    before (:data:`MAX_REPEATS_IN_A_ROW`). Returns the number of trials it ran.
    """
    grace_s = GRACE_S if grace_s is None else grace_s
    identity = dict(identity) if identity is not None else worker_identity(worker_id)
    if grace_s != GRACE_S:
        # Recorded with each trial: every reader (other workers, `tuneops show`) then judges
        # this worker's silence by the grace period it was started with, not by its own.
        identity.setdefault("grace_s", grace_s)
    n = 0
    idle_s = min(0.1, poll_s)
    last_scan = -math.inf  # scan once on starting: a restarted worker frees its dead self's trial
    with Heartbeat(
        _optuna.storage_of(study), INTERVAL_S if heartbeat_s is None else heartbeat_s
    ) as beat:
        try:
            while deadline is None or time.time() < deadline:
                check_stop()
                if time.monotonic() - last_scan > grace_s / 4:
                    recover_abandoned(study, grace_s=grace_s)
                    last_scan = time.monotonic()
                trials = _optuna.read_trials(study)
                # A local worker the run forked (wait_for_others=False) leaves the reason to the
                # run's own worker, which works after it on the same state: each said it (3
                # times with n_workers 2), and one said the space was exhausted while the other
                # ran on and fitted new configurations
                if _failing(trials, max_failed_in_a_row, say=wait_for_others) or _exhausted(
                    trials, max_repeats_in_a_row, say=wait_for_others
                ):
                    break
                trial = _claim(study, trials, identity, unlimited=unlimited)
                if trial is None:
                    if any(t.state == TrialState.WAITING for t in trials):
                        # others claimed the queued trials seen (or they were retired): look again
                        continue
                    running = [t for t in trials if t.state == TrialState.RUNNING]
                    if not running or not wait_for_others:
                        break
                    if recover_abandoned(study, grace_s=grace_s, running=running):
                        continue
                    time.sleep(idle_s)
                    idle_s = min(idle_s * 2, poll_s)  # others are busy: ask the storage less often
                    continue
                idle_s = min(0.1, poll_s)
                beat.trial_id = _optuna.trial_id(trial)
                try:
                    run_trial(study, trial, objective)
                finally:
                    beat.trial_id = None
                check_stop()  # a stop lost during the trial (the trial itself is kept)
                n += 1
                if on_trial is not None:
                    on_trial()
        except KeyboardInterrupt as exc:
            # A signal can arrive between creating a trial and running it (or while it is told):
            # give back every trial this worker still holds, whatever it was doing.
            stop = Interrupted.of(exc)
            for t in _optuna.read_trials(study, states=(TrialState.RUNNING,)):
                if (
                    t.user_attrs.get(WORKER, {}).get("id") == identity["id"]
                    and t.number not in stop.abandoned
                ):
                    abandon(study, t, stop.reason)
                    stop.abandoned.append(t.number)
            raise stop from None
    return n


# -- a worker of a study ------------------------------------------------------------------------
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
    # A worker on another machine or Ray node: rebuilds everything from the study's name and
    # storage (:func:`tuneops.tuning.join`); None where the objective cannot be rebuilt there.
    join: Callable[..., int] | None = None


def load(setup: WorkerSetup, index: int) -> optuna.Study:
    """The study as worker ``index`` sees it: its own storage connection and sampler."""
    # The owner checked the server's connection limit for all workers; one worker needs no check.
    return optuna.load_study(
        study_name=setup.study_name,
        storage=get_storage(setup.storage_url),
        sampler=setup.sampler(index),
        pruner=setup.pruner(),
    )
