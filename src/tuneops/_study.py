"""The stored format of a tuneops study: its attribute keys, typed readers, open and load.

A tuneops study is an ordinary Optuna study; what tuneops adds lives in attributes:

study user attributes (the dashboard shows them)
    ``tuneops:spec`` the spec (masked storage URL), ``tuneops:objectives`` ``[{metric,
    direction}]``, ``tuneops:data`` the data summary and fingerprint, ``tuneops:constraints``
    ``["metric op number"]``, ``tuneops:selection`` the choice of the last run,
    ``tuneops:results`` sections of its results document and the state of the study they
    describe (see :mod:`tuneops._record`),
    ``tuneops:pruner`` the pruner a run resolved, ``tuneops:scoring`` the positive class and
    the majority-class/mean baseline.
study system attributes (internal)
    ``tuneops:budget`` ``{"n_trials": N}``: the global budget (see :mod:`tuneops.runner`);
    ``tuneops:compute_budget`` ``{UNIT: amount}``: a compute budget (``search.budget``).
trial user attributes
    ``metrics`` every metric measured, ``family`` the model family, ``worker`` who ran it,
    ``heartbeat`` its latest sign of life, ``abandoned`` why it does not count (a reason that
    begins with ``retired`` for a trial never run), ``retry_of`` the abandoned trial it re-runs,
    ``fail_reason``, ``warm_start`` where its configuration came from,
    ``tuneops:intermediate`` and ``tuneops:fidelity`` (pruning records), ``tuneops:cost``
    (how fit and serving were measured, with the version of ``fit_time_s``'s definition).

Every module reads and writes these through this one; nothing else spells a key. This is the
bottom layer: it imports only Optuna, the storage and the errors.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuneops import _optuna
from tuneops import storage as _storage
from tuneops.errors import SpecError, StudyNotFound
from tuneops.heartbeat import GRACE_S, last_seen, pid_alive, stale_trials
from tuneops.storage import get_storage, mask_secrets, mask_url, resolve_url

__all__ = [
    "SPEC",
    "OBJECTIVES",
    "DATA",
    "CONSTRAINTS",
    "SELECTION",
    "RESULTS",
    "PRUNER",
    "PRUNER_OFF",
    "SCORING",
    "BUDGET",
    "METRICS",
    "METRICS_STD",
    "FAMILY",
    "WORKER",
    "HEARTBEAT",
    "ABANDONED",
    "RETIRED",
    "RETRY_OF",
    "REPEAT_OF",
    "FAIL_REASON",
    "WARM_START",
    "INTERMEDIATE",
    "FIDELITY",
    "COST",
    "stored_intervals",
    "FIT_TIME_DEFINITIONS",
    "FIT_TIME_VERSION",
    "fit_time_version",
    "FIT_TIME_AT",
    "study_fit_time_version",
    "set_fit_time_record",
    "fit_time_mix",
    "fit_time_groups",
    "fit_time_judged",
    "describe_fit_time_groups",
    "number_ranges",
    "StoredObjective",
    "open_study",
    "load_study",
    "save_snapshot",
    "objectives",
    "spec_record",
    "data_record",
    "constraint_texts",
    "counted",
    "found",
    "is_abandoned",
    "is_retired",
    "abandoned_label",
    "lost_compute",
    "died_unseen",
    "warm_start_tags",
    "state_counts",
    "feasible",
    "budget",
    "set_budget_record",
    "COMPUTE_BUDGET",
    "compute_budget",
    "set_compute_budget_record",
]

# -- keys ---------------------------------------------------------------------------------------
SPEC = "tuneops:spec"
# system attr: who created the study and when ({t, host, pid}), to tell a study another run is
# still starting from one whose run stopped before its first trial
CREATED = "tuneops:created"
OBJECTIVES = "tuneops:objectives"
DATA = "tuneops:data"
CONSTRAINTS = "tuneops:constraints"
SELECTION = "tuneops:selection"
# where the last run wrote results.json (absolute): `tuneops report` writes beside it
OUTPUT_DIR = "tuneops:output_dir"
# the end-of-run record: results sections with the state they were computed from (tuneops._record)
RESULTS = "tuneops:results"
PRUNER = "tuneops:pruner"
# why a study runs without pruning, in the words of what was asked (set with PRUNER when it does)
PRUNER_OFF = "tuneops:pruner_off"
SCORING = "tuneops:scoring"  # positive class, averaging, majority-class/mean baseline
BUDGET = "tuneops:budget"  # system attr
COMPUTE_BUDGET = "tuneops:compute_budget"  # system attr: {unit: amount} (search.budget)
# system attr: the latency calibration every trial is expressed at (measure.LatencyConfig)
REFERENCE = "tuneops:reference_ns"
# user attr: the staged strategy's phases and verification (tuneops.strategy)
STRATEGY = "tuneops:strategy"
#: Name prefix of the studies that hold model registries (tuneops.ops.registry), not trials.
REGISTRY_PREFIX = "tuneops-registry:"
#: Name prefix of the studies that hold claims on a piece of work (tuneops.claims), not trials.
CLAIM_PREFIX = "tuneops-claim:"


def internal(name: str) -> bool:
    """Whether study ``name`` is tuneops' own bookkeeping (a registry, a claim), not a study of
    trials to list to a user."""
    return name.startswith((REGISTRY_PREFIX, CLAIM_PREFIX))


METRICS = "metrics"
METRICS_STD = "metrics_std"  # each metric's standard deviation over the CV folds
FAMILY = "family"
WORKER = "worker"
HEARTBEAT = "heartbeat"
ABANDONED = "abandoned"
RETIRED = "retired"  # how the ABANDONED reason of a trial retired unrun begins
RETRY_OF = "retry_of"
REPEAT_OF = "repeat_of"  # an earlier trial of the same parameters whose outcome was reused
FAIL_REASON = "fail_reason"
WARM_START = "warm_start"
INTERMEDIATE = "tuneops:intermediate"  # {str(step): [value per objective]}
FIDELITY = "tuneops:fidelity"  # {steps, n_steps, max_step, fit_s, pruned}
# {fit, serving, intervals: {metric: [low, high]}} (measure.py); an end no sample gives is null
COST = "tuneops:cost"
TIMED_OUT = "tuneops:timed_out"  # {limit_s, elapsed_s, at}: stopped by search.trial_timeout_s

#: The definition of the ``fit_time_s`` metric a trial measured, recorded with it
#: (``tuneops:cost.fit.version``): a study resumed across a change compares the trials of
#: both on one axis. Version -> what the figure is, per CV fold, averaged over the folds.
FIT_TIME_DEFINITIONS: dict[int, str] = {
    1: "wall seconds of every fit (a fraction family trained step by step for a pruner: the "
    "sum of its refits)",
    2: "CPU seconds of every fit (a fraction family trained step by step for a pruner: the sum "
    "of its refits; the fold's preprocessing only in the trial that fitted it first)",
    3: "CPU seconds of the model's final fit plus its fold's preprocessing",
}
FIT_TIME_VERSION = 3  # the definition this tuneops measures
# system attr: the definition of fit_time_s the study's runs measure (set by each run that
# creates or resumes it; workers of another definition refuse to join, see study_fit_time_version)
FIT_TIME_AT = "tuneops:fit_time_version"


class StoredObjective(NamedTuple):
    """One objective as stored: the metric it measures and its direction."""

    metric: str
    direction: str

    def to_dict(self) -> dict[str, str]:
        return {"metric": self.metric, "direction": self.direction}


# -- studies --------------------------------------------------------------------------------------
#: What a resumed run must share with the study: its data, models and objectives, and the
#: folds every trial is scored on (``search.cv_folds`` and ``search.seed``, which shuffles them).
_IDENTITY_KEYS = ("data", "model", "objectives", "search.cv_folds", "search.seed")


def with_stored_identity(stored: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` (a resumed run's spec) with the identity parts of ``stored`` (the spec the
    study was created with: its data, model, objectives, folds and seed, as first written)."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in given.items()}
    for key in _IDENTITY_KEYS:
        section, _, field = key.partition(".")
        if not field:
            if section in stored:
                out[section] = stored[section]
        elif isinstance(stored.get(section), Mapping) and field in stored[section]:
            out.setdefault(section, {})[field] = stored[section][field]
    return out


def _brief(value: Any, limit: int = 120) -> str:
    """A spec part in one short line (JSON), for a message."""
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _identity_part(spec: Mapping[str, Any], key: str) -> Any:
    section, _, field = key.partition(".")
    value = spec.get(section)
    return (value or {}).get(field) if field else value


#: The target column every data source reads when ``data.target`` is not given (see
#: :func:`tuneops.data.load_dataset`): stating it names the same data.
_DEFAULT_TARGET = "target"


def _same_part(key: str, stored: Any, given: Any) -> bool:
    """Whether a resumed run's identity part ``given`` is the ``stored`` one: equal, or, for
    the data section, equal once ``target: target`` (the default, stated) is left out."""
    if stored == given:
        return True
    if key != "data" or not isinstance(stored, Mapping) or not isinstance(given, Mapping):
        return False

    def plain(section: Mapping[str, Any]) -> dict[str, Any]:
        return {
            k: v for k, v in section.items() if not (k == "target" and v == _DEFAULT_TARGET)
        }

    return plain(stored) == plain(given)


def _pinned(stored: Any, given: Any, ran_as: str | None) -> bool:
    """True when ``given`` is the ``stored`` data section with ``task: auto`` (or no task)
    replaced by ``ran_as``, the task the study was run as: a study whose automatic task would
    now come out otherwise (PMLB's declared task) is resumed by stating the task it had."""
    if not isinstance(stored, Mapping) or not isinstance(given, Mapping) or ran_as is None:
        return False
    if stored.get("task", "auto") != "auto" or given.get("task") != ran_as:
        return False
    rest = {k: v for k, v in given.items() if k != "task"}
    return rest == {k: v for k, v in stored.items() if k != "task"}


def open_study(
    name: str,
    storage: optuna.storages.BaseStorage,
    directions: Sequence[str],
    *,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    attrs: Mapping[str, Any] | None = None,
    identity: Mapping[str, Any] | None = None,
    _raced: bool = False,
) -> optuna.Study:
    """Create the study, or resume it when one of that name exists with the same definition.

    ``identity``: the parts of the spec that must match to resume (data, model, objectives).

    A study that never ran a trial takes this run's definition (its run stopped on bad data),
    unless another run may still be starting it: one that created it a moment ago (this run
    lost the race to create it, or it is younger than :data:`STARTING_S`) with another
    definition is refused like a study with trials (two runs started together on one name
    with different models mixed their trials).

    Raises:
        SpecError: a study of that name exists with different objectives, data or space.
    """
    try:
        existing = optuna.load_study(
            study_name=name, storage=storage, sampler=sampler, pruner=pruner
        )
    except KeyError:
        existing = None
    if existing is not None:
        stored = existing.user_attrs.get(SPEC)
        have = [d.name.lower() for d in existing.directions]
        if have != list(directions):
            raise SpecError(
                f"study {name!r} exists with directions {have}, but this run has "
                f"{list(directions)}; "
                "give the run another study name (a spec's `study:` field, or "
                "tune(study=...))."
            )
        if not existing.get_trials(deepcopy=False):
            starting = _raced or _creator_starting(
                _optuna.study_system_attrs(existing).get(CREATED)
            )
            if starting and stored is None and identity is not None:
                stored = _wait_for_spec(existing)  # its creator writes it just after creating
            if not starting or stored is None or not _changed(existing, stored, identity):
                # A study that never ran a trial (its run stopped on bad data, a crash before
                # the first trial): nothing to keep comparable; this run's definition replaces
                # its own.
                for key, value in (attrs or {}).items():
                    existing.set_user_attr(key, value)
                return existing
        if identity is not None and stored is not None:
            changed = _changed(existing, stored, identity)
            if changed:
                shown = "; ".join(
                    f"{k}: stored {_brief(_identity_part(stored, k))}, this spec "
                    f"{_brief(_identity_part(identity, k))}"
                    for k in changed
                )
                raise SpecError(
                    f"study {name!r} exists with other settings of {', '.join(changed)} "
                    f"({shown})"
                    + (
                        ", created a moment ago by another run that is starting it"
                        if not existing.get_trials(deepcopy=False)
                        else ""
                    )
                    + "; resuming would mix trials that cannot be compared. Give the run another "
                    "study name (spec field 'study'), or restore the original spec."
                )
        named = [o.get("metric") for o in existing.user_attrs.get(OBJECTIVES) or ()]
        naming = [o.get("metric") for o in (attrs or {}).get(OBJECTIVES) or ()]
        if named and naming and named != naming:
            # a custom objective's names (tune()): the stored ones label every trial's values
            raise SpecError(
                f"study {name!r} exists with objectives {named}, but this run names them "
                f"{naming}; its trials' values would be read under the wrong names (and its "
                "constraints name metrics the study lacks). Give the run another study name, "
                "or the objectives their stored names."
            )
        if attrs and DATA in attrs and DATA in existing.user_attrs:
            then, now = existing.user_attrs[DATA], attrs[DATA]
            if then.get("fingerprint") != now.get("fingerprint"):
                raise SpecError(
                    f"study {name!r} was tuned on data {now.get('name')!r} with fingerprint "
                    f"{then.get('fingerprint')} ({_shape(then)}), but it now has fingerprint "
                    f"{now.get('fingerprint')} ({_shape(now)}): the data changed since the "
                    "study ran, and trials on other data cannot be compared. Restore the data "
                    "the study was tuned on to resume it, or give the run another study name "
                    "(spec field 'study') for the new data."
                )
        return existing
    try:
        with _optuna.quiet():  # the API says what it does itself; Optuna's INFO lines are noise
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                directions=[str(d) for d in directions],  # type: ignore[misc]
                sampler=sampler,
                pruner=pruner,
            )
    except optuna.exceptions.DuplicatedStudyError:
        # Another process created it between the load above and this create (two runs or
        # workers started together): open it as it now exists, with the same checks.
        return open_study(
            name,
            storage,
            directions,
            sampler=sampler,
            pruner=pruner,
            attrs=attrs,
            identity=identity,
            _raced=True,
        )
    _optuna.set_study_system_attr(
        study, CREATED, {"t": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
    )
    for key, value in (attrs or {}).items():
        study.set_user_attr(key, value)
    names = [o.get("metric") for o in (attrs or {}).get(OBJECTIVES) or ()]
    if names and all(isinstance(n, str) for n in names) and len(names) == len(directions):
        _optuna.set_metric_names(study, names)
    return study


#: Seconds after its creation during which a study without trials, created on another host, may
#: still be being started by its run (reading the data, calibrating); on this host the creating
#: process is asked whether it still runs.
STARTING_S = 120.0


def _shape(data: Mapping[str, Any]) -> str:
    """``"150 rows x 4 columns"`` of a stored data summary."""
    return f"{data.get('rows', '?')} rows x {data.get('columns', '?')} columns"


def _creator_starting(created: Any) -> bool:
    """Whether the run that created a study (its ``CREATED`` record) may still be starting it:
    its process still runs here, or, on another host, it created it within ``STARTING_S``."""
    if not isinstance(created, Mapping) or not isinstance(created.get("t"), int | float):
        return False
    if created.get("host") == socket.gethostname() and isinstance(created.get("pid"), int):
        return created["pid"] != os.getpid() and pid_alive(created["pid"])
    return time.time() - created["t"] < STARTING_S


def _changed(
    existing: optuna.Study, stored: Mapping[str, Any], identity: Mapping[str, Any] | None
) -> list[str]:
    """The parts of the stored spec's identity that ``identity`` changes (none without one)."""
    if identity is None:
        return []
    ran_as = (existing.user_attrs.get(DATA) or {}).get("task")
    return [
        k
        for k in _IDENTITY_KEYS
        if not _same_part(k, _identity_part(stored, k), _identity_part(identity, k))
        # `task: auto` stored, the task it was run as now stated: the same data
        and not (k == "data" and _pinned(stored.get("data"), identity.get("data"), ran_as))
        # a study stored before the folds were part of its identity: not compared
        and not ("." in k and _identity_part(stored, k) is None)
    ]


def _wait_for_spec(study: optuna.Study, timeout_s: float = 10.0) -> Any:
    """The spec the creator of ``study`` records right after creating it; None if it never
    comes (the creator died)."""
    deadline = time.monotonic() + timeout_s
    while True:
        stored = _optuna.study_user_attrs(study).get(SPEC)
        if stored is not None or time.monotonic() > deadline:
            return stored
        time.sleep(0.1)


def load_study(
    name: str, storage_url: str | None = None, *, sampler: optuna.samplers.BaseSampler | None = None
) -> optuna.Study:
    """Load an existing study by name.

    Raises:
        StudyNotFound: no such study; the message lists the studies that exist.
    """
    storage = get_storage(storage_url, must_exist=True)  # a read never creates a journal file
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    except KeyError:
        names = [
            s.study_name
            for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
            if not internal(s.study_name)  # a registry or a claim is not a study to show
        ]
        raise StudyNotFound(
            f"no study {name!r} in storage {mask_url(resolve_url(storage_url))!r}; studies there: "
            f"{', '.join(names) or 'none'}. Pass --storage if the study lives elsewhere."
        ) from None
    # A journal replayed from far behind its snapshot: save one, so the next reader (`report`
    # after `show`, another `show`) does not replay the same entries again.
    _storage.refresh_snapshot(storage)
    return study


def save_snapshot(study: optuna.Study) -> None:
    """Save the replayed state of the study's journal file for the next process that opens it
    (at the end of a run: ``show`` and ``report`` then start from it); nothing for a database
    or in-memory storage. See :func:`tuneops.storage.save_snapshot`."""
    _storage.save_snapshot(_optuna.storage_of(study))


# -- study attributes -----------------------------------------------------------------------------
def objectives(study: optuna.Study) -> list[StoredObjective]:
    """The study's objectives: as stored by tuneops, else ``value``/``value_i`` and Optuna's
    directions."""
    stored = study.user_attrs.get(OBJECTIVES)
    if stored:
        return [StoredObjective(o["metric"], o["direction"]) for o in stored]
    return [
        StoredObjective(f"value_{i}" if len(study.directions) > 1 else "value", d.name.lower())
        for i, d in enumerate(study.directions)
    ]


def spec_record(study: optuna.Study) -> dict[str, Any] | None:
    """The spec a study was run with, as stored (None for a ``tune()`` study); a storage URL's
    password is masked even in a study stored before specs were stored masked."""
    raw = study.user_attrs.get(SPEC)
    return mask_secrets(dict(raw)) if raw else None


def data_record(study: optuna.Study) -> dict[str, Any]:
    """The stored summary of the study's data (``{}`` for a ``tune()`` study)."""
    return dict(study.user_attrs.get(DATA) or {})


def constraint_texts(study: optuna.Study) -> list[str]:
    """The study's constraints as stored (``"metric op number"``)."""
    return list(study.user_attrs.get(CONSTRAINTS, []))


# -- trials -------------------------------------------------------------------------------------
def is_abandoned(trial: FrozenTrial) -> bool:
    """True for a trial that does not count against the budget (abandoned or retired)."""
    return ABANDONED in trial.user_attrs


def is_retired(trial: FrozenTrial) -> bool:
    """True for a trial that was retired without running (over the budget)."""
    return str(trial.user_attrs.get(ABANDONED, "")).startswith(RETIRED)


def found(trial: FrozenTrial) -> bool:
    """Whether ``trial``'s outcome is its own: not a repeat (``REPEAT_OF``) that took an earlier
    trial's. A repeat found nothing: ranks, a phase's or a worker's best and the Pareto front
    leave it out (its earlier trial stands for it), though it counts among the trials."""
    return REPEAT_OF not in trial.user_attrs


def counted(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Trials that count against the budget: all but the abandoned (and retired) ones."""
    return [t for t in trials if ABANDONED not in t.user_attrs]


def abandoned_label(reason: str | None) -> str:
    """How tables mark a trial whose ``abandoned`` user attr is ``reason``: retired, abandoned or
    not."""
    if reason is None:
        return ""
    return " (retired)" if str(reason).startswith(RETIRED) else " (abandoned)"


def warm_start_tags(trials: Sequence[FrozenTrial]) -> dict[int, str]:
    """``number -> source`` of every warm-start trial (its ``warm_start`` user attribute).

    The retry of an abandoned warm-start trial carries its tag; one recorded before retries did
    (untagged, ``retry_of`` a tagged trial, with its parameters) takes its original's: it is
    the warm-start trial that counts, and read untagged it counted as the best other trial."""
    tags = {t.number: str(t.user_attrs[WARM_START]) for t in trials if t.user_attrs.get(WARM_START)}
    if not tags:
        return tags
    by_number = {t.number: t for t in trials}
    for t in trials:
        origin = t.user_attrs.get(RETRY_OF)
        if t.number in tags or not isinstance(origin, int) or origin not in tags:
            continue
        if t.params and t.params == by_number[origin].params:
            tags[t.number] = tags[origin]
    return tags


def lost_compute(trials: Sequence[FrozenTrial]) -> dict[str, Any] | None:
    """The work of the trials abandoned while they ran (a worker that died or was stopped): the
    ``lost_compute`` section of a study's results, None without any.

    Such a trial records none of its fits (they are written with its outcome), its
    configuration runs again, and no budget counts it: ``ran_s`` is the wall seconds from its
    start to when it stopped (:func:`ran_until`: a worker that Ctrl-C or SIGTERM stopped
    recorded when; for one that died, its last sign of life, its heartbeat every 10 s: at least
    that long, and fitting was part of it), ``steps`` the fidelity steps it reported (counted
    as a ``steps`` budget counts a trial's: its last step, one more when they count from 0).
    ``unknown``: the trials whose worker died before their first heartbeat (written every 10 s,
    the first within 10 s of the start), whose time nothing recorded; ``ran_s`` leaves them out,
    and is None when that is every one (a trial SIGKILLed 7 s in showed 'ran at least 0.0 s')."""
    lost = [t for t in trials if ABANDONED in t.user_attrs and not is_retired(t)]
    if not lost:
        return None
    ran_s = 0.0
    steps = 0
    unknown = []
    for t in lost:
        reported = sorted(t.intermediate_values) or sorted(
            int(k) for k in (t.user_attrs.get(INTERMEDIATE) or {})
        )
        if reported:
            steps += reported[-1] + 1 if reported[0] == 0 else reported[-1]
        if died_unseen(t):
            unknown.append(t.number)
            continue
        # The same end as the workers table's busy time: an interrupted trial's (a SIGTERM
        # after 5 s) was 'at least 0.0 s' here, its last heartbeat being its start.
        end = ran_until(t)
        stop = end.timestamp() if end is not None else last_seen(t)
        if t.datetime_start is not None and stop is not None:
            ran_s += max(0.0, stop - t.datetime_start.timestamp())
    out: dict[str, Any] = {
        "n_trials": len(lost),
        "trials": [t.number for t in lost],
        "ran_s": None if len(unknown) == len(lost) else ran_s,
        "steps": steps,
    }
    if unknown:
        out["unknown"] = unknown
    return out


def died_unseen(trial: FrozenTrial) -> bool:
    """Whether ``trial`` was abandoned because its worker died (not stopped: that records when)
    before it wrote a heartbeat: how long it ran is then unknown (its start is all there is)."""
    reason = trial.user_attrs.get(ABANDONED)
    return (
        isinstance(reason, str)
        and not reason.startswith(("interrupted", RETIRED))
        and trial.user_attrs.get(HEARTBEAT) is None
    )


def state_counts(trials: Sequence[FrozenTrial]) -> Counter[str]:
    """Trials by state (``COMPLETE``, ``PRUNED``, ...), with ``ABANDONED`` and ``RETIRED`` apart:
    those two are not counted under their Optuna state (FAIL). ``STALE``, also apart from
    ``RUNNING``: trials left running by a tuneops worker that is gone (a dead pid on this host,
    or silent past the grace period; read now), which nothing runs until a worker or the next
    run gives them back. A trial no tuneops worker recorded itself on (plain Optuna's) has no
    heartbeat to be judged by and counts as running."""
    counts = Counter(t.state.name for t in trials if ABANDONED not in t.user_attrs)
    counts["RETIRED"] = sum(is_retired(t) for t in trials)
    counts["ABANDONED"] = sum(ABANDONED in t.user_attrs for t in trials) - counts["RETIRED"]
    if counts["RUNNING"]:
        mine = [t for t in trials if ABANDONED not in t.user_attrs and t.user_attrs.get(WORKER)]
        counts["STALE"] = len(stale_trials(mine, now=time.time(), grace_s=GRACE_S))
        counts["RUNNING"] -= counts["STALE"]
    return counts


def stored_intervals(cost: Any) -> dict[str, tuple[float, float]]:
    """The confidence intervals of a trial's cost record (``tuneops:cost.intervals``) as
    ``metric -> (low, high)``; an end recorded as null (too few calls to bound it: a p95 of fewer
    than 72 calls has no upper bound) reads as -inf or +inf; malformed entries are left out."""
    raw = cost.get("intervals") if isinstance(cost, Mapping) else None
    if not isinstance(raw, Mapping):
        return {}
    out = {}
    for metric, ends in raw.items():
        if not isinstance(ends, (list, tuple)) or len(ends) != 2:
            continue
        low, high = ends
        if low is None:
            low = -float("inf")
        if high is None:
            high = float("inf")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            continue
        if low != low or high != high:  # NaN
            continue
        out[str(metric)] = (float(low), float(high))
    return out


def fit_time_version(trial: FrozenTrial) -> int | None:
    """The definition (:data:`FIT_TIME_DEFINITIONS`) of the trial's ``fit_time_s``; None when
    it recorded none.

    Trials recorded before the version was are told by their cost record's shape, which each
    change of the definition changed: per-fold preprocessing CPU seconds (version 3), CPU
    seconds without it (2), no fit record beside a ``fit_time_s`` (1).
    """
    metrics = trial.user_attrs.get(METRICS)
    if not isinstance(metrics, Mapping) or "fit_time_s" not in metrics:
        return None
    fit = (trial.user_attrs.get(COST) or {}).get("fit")
    if not isinstance(fit, Mapping):
        return 1
    version = fit.get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    return 3 if "preprocess_cpu_s" in fit else 2


def fit_time_groups(trials: Iterable[FrozenTrial]) -> dict[int, list[int]]:
    """The complete trials that measured ``fit_time_s``, by the definition they measured it
    with (:func:`fit_time_version`): ``{version: [trial numbers]}``."""
    groups: dict[int, list[int]] = {}
    for t in trials:
        if t.state != TrialState.COMPLETE:
            continue
        version = fit_time_version(t)
        if version is not None:
            groups.setdefault(version, []).append(t.number)
    return groups


def study_fit_time_version(study: optuna.Study, trials: Sequence[FrozenTrial]) -> int | None:
    """The definition of ``fit_time_s`` the study measures: the one its runs recorded
    (:data:`FIT_TIME_AT`), else (a study of a tuneops that recorded none) that of its latest
    complete trial that measured it; None when neither tells."""
    recorded = _optuna.study_system_attrs(study).get(FIT_TIME_AT)
    if isinstance(recorded, int) and not isinstance(recorded, bool):
        return recorded
    for t in sorted(trials, key=lambda t: t.number, reverse=True):
        if t.state == TrialState.COMPLETE:
            version = fit_time_version(t)
            if version is not None:
                return version
    return None


def set_fit_time_record(study: optuna.Study) -> None:
    """Record that the study's runs now measure this tuneops' :data:`FIT_TIME_VERSION`."""
    _optuna.set_study_system_attr(study, FIT_TIME_AT, FIT_TIME_VERSION)


def fit_time_mix(
    trials: Iterable[FrozenTrial], objectives: Iterable[str], constraints: Iterable[str]
) -> dict[str, Any] | None:
    """The ``fit_time_definitions`` section of a study's results: when its complete trials
    measured ``fit_time_s`` by more than one definition (a resumed study, or workers of
    several tuneops versions), ``{"definitions": {version: [trial numbers]}, "judged": how
    the study judges it or None, "warning": words}``; None otherwise."""
    groups = fit_time_groups(trials)
    if len(groups) < 2:
        return None
    judged = fit_time_judged(objectives, constraints)
    warning = (
        f"fit_time_s was measured by {len(groups)} definitions in this study (resumed, or "
        f"joined by workers, across tuneops versions that changed it): "
        f"{describe_fit_time_groups(groups)}. "
        + (
            f"It is {judged} of the study: the trials are compared on it as one axis, though "
            "the figures measure different things. Compare fit times only among the trials of "
            "one definition, or run the spec again as a new study (another study name)."
            if judged is not None
            else "The study judges no fit time; compare fit times only among the trials of one "
            "definition."
        )
    )
    return {
        "definitions": {str(v): numbers for v, numbers in sorted(groups.items())},
        "judged": judged,
        "warning": warning,
    }


def fit_time_judged(objectives: Iterable[str], constraints: Iterable[str]) -> str | None:
    """How a study judges ``fit_time_s``: ``"an objective"``, ``"a constraint"``, ``"an
    objective and a constraint"``, or None when it does neither (``constraints`` as stored,
    ``"fit_time_s <= 2"``)."""
    objective = "fit_time_s" in objectives
    constraint = any(str(c).split(" ")[0] == "fit_time_s" for c in constraints)
    if objective and constraint:
        return "an objective and a constraint"
    return "an objective" if objective else "a constraint" if constraint else None


def describe_fit_time_groups(groups: Mapping[int, Sequence[int]], limit: int = 6) -> str:
    """``groups`` (:func:`fit_time_groups`) in words: ``4 (trials 0-2, 6) as CPU seconds of
    every fit ...; 3 (trials 3-5) as ...`` (each group's first ``limit`` ranges of numbers)."""
    return "; ".join(
        f"{len(numbers)} (trials {number_ranges(numbers, limit)}) as "
        + FIT_TIME_DEFINITIONS.get(version, f"definition {version}, unknown to this tuneops")
        for version, numbers in sorted(groups.items())
    )


def number_ranges(numbers: Iterable[int], limit: int | None = None) -> str:
    """Trial numbers as ranges: ``0-11, 14, 20-23`` (the first ``limit`` ranges, then ``...``;
    None: all of them)."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    text = [f"{a}-{b}" if b > a else f"{a}" for a, b in runs]
    if limit is None or len(text) <= limit:
        return ", ".join(text)
    return ", ".join(text[:limit]) + ", ..."


def failures(trials: Sequence[FrozenTrial]) -> list[dict[str, Any]]:
    """The trials that failed by themselves (not abandoned), with their reasons."""
    return [
        {"number": t.number, "reason": t.user_attrs.get(FAIL_REASON, "unknown")}
        for t in trials
        if t.state == TrialState.FAIL and ABANDONED not in t.user_attrs
    ]


def record_output_dir(study: optuna.Study, out_dir: str | os.PathLike[str]) -> None:
    """Record where this run writes results.json (absolute), unless recorded already."""
    where = os.path.abspath(out_dir)
    if study.user_attrs.get(OUTPUT_DIR) != where:
        study.set_user_attr(OUTPUT_DIR, where)


def feasible(trial: FrozenTrial) -> bool | None:
    """Whether the trial met the study's constraints, as Optuna recorded them (None: none)."""
    constraints = trial.constraints
    if not constraints:
        return None
    return all(v <= 0 for v in constraints.values())


def constraints_recorded(trials: Sequence[FrozenTrial], texts: Sequence[str]) -> bool:
    """Whether every complete trial's Optuna constraint record is of exactly ``texts`` (the
    study's constraints, :func:`constraint_texts`), so that :func:`feasible` judges by them.

    A study run again with other constraints keeps its earlier trials' records of the old
    ones (a finished trial's record cannot change): their feasibility must then be judged
    again from their metrics (``tuneops.selection.infeasible_trials``), as selection does.
    """
    want = set(texts)
    return all(
        set(t.constraints or ()) == want for t in trials if t.state == TrialState.COMPLETE
    )


def ran_until(trial: FrozenTrial) -> datetime.datetime | None:
    """When the trial stopped running: its end, except for a trial abandoned because its worker
    died, whose end is when another process noticed (at the next run, perhaps hours later):
    its last sign of life then (heartbeat, else start). A killed worker showed 70 s busy for
    the 8 s it lived, and the study's time to its best counted the idle time in between."""
    end = trial.datetime_complete
    reason = trial.user_attrs.get(ABANDONED)
    if end is None or not isinstance(reason, str) or reason.startswith(("interrupted", RETIRED)):
        return end
    seen = last_seen(trial)
    return end if seen is None else min(end, datetime.datetime.fromtimestamp(seen))


def final_values(trial: FrozenTrial) -> list[float] | None:
    """The trial's objective values when it completed; None otherwise. Optuna gives a pruned
    trial of a one-objective study its last intermediate value, a score of partial training
    (step 9 of 27) that read as better than the selected model's in a table of trials."""
    values = trial.values
    return list(values) if trial.state == TrialState.COMPLETE and values is not None else None


def pruned_at(trial: FrozenTrial) -> dict[str, Any] | None:
    """Where a pruned trial stopped: its last reported step and value (one objective: Optuna's
    record), or values (several: tuneops' own record :data:`INTERMEDIATE`, ``{str(step):
    [value per objective]}``, as ``tuneops.pruning.report`` writes it: Optuna's ``report``
    raises in a multi-objective study, issue #3450); None for another trial. Read here, in
    the stored format's module, not through ``tuneops.pruning``, which sits above it."""
    if trial.state != TrialState.PRUNED:
        return None
    if trial.intermediate_values:
        step = max(trial.intermediate_values)
        return {"step": step, "value": trial.intermediate_values[step]}
    record = trial.user_attrs.get(INTERMEDIATE)
    if not isinstance(record, Mapping) or not record:
        return None
    try:
        steps = {int(k): v for k, v in record.items()}
    except (TypeError, ValueError):  # a record of another shape says nothing of where
        return None
    step = max(steps)
    return {"step": step, "value": steps[step]}


# -- the budget -----------------------------------------------------------------------------------
def budget(study: optuna.Study) -> int | None:
    """The study's global budget (``n_trials``) read now, or None without one."""
    record = _optuna.study_system_attrs(study).get(BUDGET)
    return None if record is None else int(record["n_trials"])


def set_budget_record(study: optuna.Study, n_trials: int) -> None:
    _optuna.set_study_system_attr(study, BUDGET, {"n_trials": n_trials})


def compute_budget(study: optuna.Study) -> tuple[str, float] | None:
    """The study's compute budget ``(unit, amount)`` read now, or None without one."""
    record = _optuna.study_system_attrs(study).get(COMPUTE_BUDGET)
    if not record:
        return None
    ((unit, amount),) = record.items()
    return str(unit), float(amount)


def set_compute_budget_record(study: optuna.Study, unit: str, amount: float) -> None:
    _optuna.set_study_system_attr(study, COMPUTE_BUDGET, {unit: float(amount)})


# -- the latency calibration ----------------------------------------------------------------------
def shared_calibration(study: optuna.Study, calibrate: Callable[[], float]) -> float:
    """The study's latency calibration: the one stored with it (by its first run), or
    ``calibrate()``, stored now, so that a resumed run and joining workers express their
    trials in the same unit as the first (and do not calibrate for nothing).

    Two processes that start on a new study together (a run and a worker started at once)
    both find none: each looks again after calibrating (0.1-0.5 s, when the other may have
    stored its own) and after storing, and takes what the study holds then, so that both
    measure against one calibration. (Storages offer no compare-and-set; a race is left only
    between two stores milliseconds apart.)"""

    def stored() -> float | None:
        value = _optuna.study_system_attrs(study).get(REFERENCE)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
        return None

    found = stored()
    if found is not None:
        return found
    reference_ns = float(calibrate())
    found = stored()  # another process stored its own while this one calibrated
    if found is not None:
        return found
    _optuna.set_study_system_attr(study, REFERENCE, reference_ns)
    return stored() or reference_ns  # the last store wins: measure against that one
