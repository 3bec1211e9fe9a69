"""The end-of-run record: results sections a run computed, kept in the study with the state of
the study they describe, so that readers (``tuneops show``, the report) reuse them only while
they are provably current (issue 15: at 10,000 trials, recomputing the selection, the pruning
account and the worker contributions was about 0.5 s of every ``show``).

Why reuse is safe. Optuna never deletes a trial, and a finished trial (COMPLETE, PRUNED, FAIL)
can no longer be written: the storages raise ``UpdateFinishedTrialError``, and tuneops' own
writes to trials (retire, abandon, heartbeat, warm-start tag) go to WAITING or RUNNING trials.
So a record is reused only when

* every trial it was computed from was finished (no WAITING or RUNNING trial), and
* the study has now the same number of trials, in the same states, and
* the same study attributes (a SHA-256 of the user and system attributes: the spec,
  constraints, data, pruner, strategy, stored selection, budgets and warm-start plan that the
  sections read).

Then the trials are the same trials with the same contents, and each stored section equals
what a recomputation would give. Anything else (a trial added, a worker still running, a
resumed run that changed its constraints) and the reader recomputes: it never shows a stale
figure. The stored selection is reused under one more condition, see :func:`current_choice`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuneops import _optuna, _study

__all__ = [
    "SECTIONS",
    "basis",
    "write_record",
    "current_record",
    "current_choice",
    "choice_outdated",
]

# 2: the time to the best as pruning.best_reached defines it (a record of 1 holds the old)
# 3: selection's rules of 2026-12-08 (weighted ties within noise; a note for the best of an
# objective left off the front): a record of 2 vouches for a choice made by the old ones
FORMAT = 3
#: Sections of the results document the record keeps: the ones that cost a pass over every
#: trial's attributes, or an import of the spec's models (``warm_start``); the others are read
#: directly, or are cheap.
SECTIONS = ("pruning", "warm_start", "workers")
_UNFINISHED = (TrialState.WAITING.name, TrialState.RUNNING.name)


def _attrs_digest(attrs: Mapping[str, Any], study: optuna.Study) -> str:
    """SHA-256 of the study's user attributes (without the record) and system attributes (the
    budgets, the warm-start plan)."""
    kept = {k: v for k, v in attrs.items() if k != _study.RESULTS}
    text = json.dumps(
        [kept, _optuna.study_system_attrs(study)], sort_keys=True, default=repr, allow_nan=True
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _complete(trials: Sequence[FrozenTrial]) -> int:
    """COMPLETE trials with values: the candidates of a selection (``Choice.n_candidates``)."""
    return sum(1 for t in trials if t.state == TrialState.COMPLETE and t.values is not None)


def basis(study: optuna.Study, trials: Sequence[FrozenTrial]) -> dict[str, Any]:
    """The state of ``study`` that sections computed from ``trials`` describe."""
    attrs = _optuna.study_user_attrs(study)
    return {
        "format": FORMAT,
        "n_trials": len(trials),
        "states": dict(sorted(Counter(t.state.name for t in trials).items())),
        "attrs": _attrs_digest(attrs, study),
    }


def write_record(
    study: optuna.Study,
    trials: Sequence[FrozenTrial],
    sections: Mapping[str, Any],
    choice: Mapping[str, Any] | None = None,
) -> bool:
    """Store ``sections`` (computed from ``trials``) and the run's ``choice`` (``Choice.to_dict()``)
    with their basis. Returns False, storing nothing, when a trial was unfinished (the
    sections could change without the counts showing it).

    ``choice`` is marked as current only when it is the study's stored choice
    (``tuneops:selection``) and was made from the same complete trials as ``trials`` (its
    ``n_complete`` equals their number): otherwise a trial completed between the selection and
    now, and the choice would not match the basis.
    """
    stamp = basis(study, trials)
    if any(stamp["states"].get(s) for s in _UNFINISHED):
        return False
    record: dict[str, Any] = {**stamp, "sections": {k: sections.get(k) for k in SECTIONS}}
    # The choice is the study's stored one (``tuneops:selection``, covered by the digest), so
    # the record only says that it was made from these trials, instead of holding a copy.
    stored = _optuna.study_user_attrs(study).get(_study.SELECTION)
    record["selection"] = bool(
        choice is not None
        and choice.get("n_complete") == _complete(trials)
        and _jsonable(choice) == stored
    )
    study.set_user_attr(_study.RESULTS, record)
    return True


def _jsonable(value: Any) -> Any:
    """``value`` as the storage gives it back (JSON: tuples become lists)."""
    return json.loads(json.dumps(value))


def is_stored_choice(study: optuna.Study, choice: Mapping[str, Any] | None) -> bool:
    """Whether ``choice`` is the study's stored one (what the record's sections were computed
    with); a selection made again with other constraints or policy is not."""
    if choice is None:
        return True
    return bool(_jsonable(choice) == _optuna.study_user_attrs(study).get(_study.SELECTION))


def current_record(study: optuna.Study, trials: Sequence[FrozenTrial]) -> dict[str, Any] | None:
    """The study's record when it describes the study as it is now (``trials`` read now), else
    None: a reader then recomputes."""
    attrs = _optuna.study_user_attrs(study)
    record = attrs.get(_study.RESULTS)
    if not isinstance(record, Mapping) or record.get("format") != FORMAT:
        return None
    states = record.get("states")
    if not isinstance(states, Mapping) or any(states.get(s) for s in _UNFINISHED):
        return None
    if record.get("n_trials") != len(trials):
        return None
    if dict(states) != dict(Counter(t.state.name for t in trials)):
        return None
    if record.get("attrs") != _attrs_digest(attrs, study):
        return None
    return copy.deepcopy(dict(record))  # the storage's own objects stay untouched


def choice_outdated(study: optuna.Study) -> bool:
    """Whether the study's stored choice is known to be made under other rules than it has now:
    the run's record (current or not: a trial may have started or completed since) is of
    another format, or was written with other study attributes (spec, constraints, policy). A
    run resumed with other constraints changes them before it selects again: until then the
    stored choice is of the old ones (a report showed a trial of 36.6 KiB selected under
    'model_size_kb <= 20', with the old choice's notes). Without a record nothing is known."""
    attrs = _optuna.study_user_attrs(study)
    record = attrs.get(_study.RESULTS)
    if not isinstance(record, Mapping):
        return False
    return record.get("format") != FORMAT or record.get("attrs") != _attrs_digest(attrs, study)


def _default_policy(attrs: Mapping[str, Any]) -> str | None:
    """The policy :func:`tuneops.selection.reselect` applies without arguments: the spec's,
    else knee (None when the stored spec's selection has a shape this does not read)."""
    spec = attrs.get(_study.SPEC)
    if not spec:
        return "knee"
    raw = spec.get("selection") if isinstance(spec, Mapping) else None
    if raw is None:
        return "knee"
    if isinstance(raw, str):
        return raw
    if isinstance(raw, Mapping):
        policy = raw.get("policy", "knee")
        return policy if isinstance(policy, str) else None
    return None


def current_choice(
    study: optuna.Study,
    trials: Sequence[FrozenTrial],
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The run's stored choice (``Choice.to_dict()``) when it is what
    ``reselect(study)`` would choose now, else None.

    Besides a current record (:func:`current_record`; ``record`` when already checked), its
    policy must be the one ``reselect`` applies: a spec's policy is in the spec (part of the
    basis), but ``tune(selection="weighted")`` stores no spec, and ``reselect`` uses knee there.
    """
    record = current_record(study, trials) if record is None else record
    if record is None or record.get("selection") is not True:
        return None
    attrs = _optuna.study_user_attrs(study)
    choice = attrs.get(_study.SELECTION)
    if not isinstance(choice, Mapping) or choice.get("policy") != _default_policy(attrs):
        return None
    return copy.deepcopy(dict(choice))
