"""The results document of a study: what ran, what was chosen, and why (``results.json``).

Computed from the storage only, so ``tuneops show`` on any machine gives the same answer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial

from tuneops import _gc, _record, _study

if TYPE_CHECKING:
    from tuneops.selection import Choice

__all__ = ["study_results", "trial_record"]


# trial user attributes a record carries when the trial has them, in this order
_RECORD_KEYS = (
    _study.FAMILY,
    _study.FAIL_REASON,
    _study.ABANDONED,
    _study.WORKER,
    _study.RETRY_OF,
    _study.REPEAT_OF,
    _study.WARM_START,
)


def trial_record(t: FrozenTrial) -> dict[str, Any]:
    """One trial as plain data."""
    # each FrozenTrial property is read once: 10,000 records at the end of every run
    attrs = t.user_attrs
    duration = t.duration
    record: dict[str, Any] = {
        "number": t.number,
        "state": t.state.name,
        "values": _study.final_values(t),  # none for a pruned trial: it was not trained fully
        "params": dict(t.params),
        "metrics": attrs.get(_study.METRICS, {}),
        "duration_s": duration.total_seconds() if duration else None,
    }
    stopped = _study.pruned_at(t)
    if stopped is not None:
        record["pruned_at"] = stopped
    for key in _RECORD_KEYS:
        if key in attrs:
            record[key] = attrs[key]
    feasible = _study.feasible(t)
    if feasible is not None:
        record["feasible"] = feasible
    return record


def study_results(
    study: optuna.Study,
    *,
    choice: Choice | Mapping[str, Any] | None = None,
    elapsed_s: float | None = None,
    message: str | None = None,
    brief: bool = False,
    record: bool = False,
) -> dict[str, Any]:
    """The results document for ``study``; sections that need data a study lacks are omitted.

    ``choice``: a :class:`~tuneops.selection.Choice`, or one as stored
    (``Choice.to_dict()``, e.g. :func:`tuneops._record.current_choice`).

    ``brief``: only what ``tuneops show`` prints, for its summary: no ``trials`` (the records
    of trials off the Pareto front), no ``findings`` and no ``versions``; every other key holds
    what the full document holds. At 10,000 trials the omitted parts are most of the work
    (issue 15), and nothing the summary prints comes from them.

    ``record``: at the end of a run, keep the costly sections and ``choice`` in the study
    (:mod:`tuneops._record`) for readers to reuse while nothing changed. Only the run's own
    selection under the study's stored rules may be passed with it. Whatever the flag, a
    record that is current is reused here instead of recomputing its sections.
    """
    with _gc.paused():  # some 10^5 new objects at 10,000 trials, none of them garbage
        return _build(study, choice, elapsed_s, message, brief, record)


def _build(
    study: optuna.Study,
    choice: Choice | Mapping[str, Any] | None,
    elapsed_s: float | None,
    message: str | None,
    brief: bool,
    record: bool,
) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    selection = None if choice is None else _selection_dict(choice)
    counts = _study.state_counts(trials)  # "running" counts only what runs (STALE apart)
    results: dict[str, Any] = {
        "study": study.study_name,
        "objectives": [o.to_dict() for o in _study.objectives(study)],
        "constraints": _study.constraint_texts(study),
        "data": _study.data_record(study) or None,
        "spec": _study.spec_record(study),
        # positive class of binary metrics, averaging, majority-class/mean baseline scores
        "scoring": study.user_attrs.get(_study.SCORING),
        "n_trials": {k.lower(): v for k, v in sorted(counts.items()) if v},
        "elapsed_s": elapsed_s,
        "selected": None,
        "pareto_front": [],
        "message": message,
        "failures": _study.failures(trials),
        "trials": None,  # below, after the sections (see there)
        "versions": None if brief else _resolve(_VERSIONS)(),
    }
    repeats = sum(_study.REPEAT_OF in t.user_attrs for t in trials)
    if repeats:  # trials of a configuration already completed: its outcome, nothing fitted
        results["n_repeats"] = repeats
    if brief:
        del results["trials"], results["versions"]
    # complete trials that measured fit_time_s by different definitions (workers of several
    # tuneops versions): said wherever the results are read, `tuneops show` included
    mix = _study.fit_time_mix(
        trials, [o["metric"] for o in results["objectives"]], results["constraints"]
    )
    if mix is not None:
        results["fit_time_definitions"] = mix
    lost = _study.lost_compute(trials)  # what abandoned trials ran, which no budget counts
    if lost is not None:
        results["lost_compute"] = lost
    if selection is not None:
        results["selection"] = selection
    computed = _sections(study, trials, selection, brief, results)
    if record:
        _record.write_record(study, trials, computed, selection)
    # Each trial is recorded once; the front and the selected trial reuse those records (at
    # 10,000 trials the front alone can hold thousands). Made after the sections: the records
    # (6 MB at 10,000 trials) and what the sections allocate while they are computed (findings,
    # savings) are then never in memory together, which is where the end of a run peaked.
    if brief:
        wanted = (
            set()
            if selection is None
            else {selection["selected_trial"], *selection["pareto_front"]}
        )
        records = [trial_record(t) for t in trials if t.number in wanted]
    else:
        records = [trial_record(t) for t in trials]
        results["trials"] = records
    texts = study.user_attrs.get(_study.CONSTRAINTS)  # None: not a tuneops study
    if isinstance(texts, list) and not _study.constraints_recorded(trials, texts):
        # Run again with other constraints: the earlier trials' Optuna records are of the old
        # ones; "feasible" is what selection judges under the study's constraints now.
        infeasible = _resolve("tuneops.selection:infeasible_trials")(
            trials, [o["metric"] for o in results["objectives"]], texts
        )
        for r in records:
            if r["state"] == "COMPLETE":
                r["feasible"] = r["number"] not in infeasible
    by_number = {r["number"]: r for r in records}
    if selection is not None:
        results["selected"] = dict(by_number[selection["selected_trial"]])
        results["pareto_front"] = [dict(by_number[n]) for n in selection["pareto_front"]]
        # Under the staged strategy the selection (its front included) is made at the verified
        # means: each record says them beside its search values, which may rank otherwise.
        verification = (study.user_attrs.get(_study.STRATEGY) or {}).get("verification") or {}
        verified = {c["number"]: c for c in verification.get("candidates", [])}
        for shown in (results["selected"], *results["pareto_front"]):
            if shown["number"] in verified:
                v = verified[shown["number"]]
                shown["verified"] = {"mean": v["mean"], "ci95": v["ci95"]}
    return results


def _sections(
    study: optuna.Study,
    trials: list[FrozenTrial],
    selection: dict[str, Any] | None,
    brief: bool,
    results: dict[str, Any],
) -> dict[str, Any]:
    """Add the :data:`SECTIONS` to ``results`` (a current stored record's where it holds them);
    returns every section computed or reused, None included, by name."""
    stored = _record.current_record(study, trials)
    # The findings, the workers' shares of the front and the time to it depend on the choice: a
    # selection made again with other constraints (`tuneops select -c ...`) computes them anew.
    reused = (
        set(SECTIONS)
        if stored is None or _record.is_stored_choice(study, selection)
        else set(SECTIONS) - _CHOICE_SECTIONS
    )
    computed: dict[str, Any] = {}
    for name, where in SECTIONS.items():
        if brief and name in _NOT_BRIEF:
            continue
        if stored is not None and name in stored["sections"] and name in reused:
            value = stored["sections"][name]
        elif name == "findings":
            # the sections just computed and the choice (its front: the one shown, as the
            # report's findings judge it) are not computed again for the findings
            value = _resolve(where)(study, trials, sections=computed, selection=selection)
        elif name in _FRONT_SECTIONS and selection is not None and len(study.directions) > 1:
            # shares of (workers), the time to (pruning) and the warm trials on (warm_start) the
            # front the selection printed, not the plain Pareto front
            value = _resolve(where)(study, trials, front=selection["pareto_front"])
        else:
            value = _resolve(where)(study, trials)
        computed[name] = value
        if value is not None:
            results[name] = value
    return computed


def _selection_dict(choice: Choice | Mapping[str, Any]) -> dict[str, Any]:
    """The ``selection`` section: ``Choice.to_dict()``, or a copy of a stored one."""
    if isinstance(choice, Mapping):
        return dict(choice)
    return choice.to_dict()


# Sections a brief document leaves out: ``tuneops show`` prints none of them.
_NOT_BRIEF = frozenset({"findings"})
# Sections computed from the selection's front and selected trial.
_CHOICE_SECTIONS = frozenset({"findings", "workers", "pruning", "warm_start"})
# Sections given the front the selection printed (several objectives).
_FRONT_SECTIONS = frozenset({"workers", "pruning", "warm_start"})

#: The sections other parts of tuneops contribute, in document order: name ->
#: ``"module:function"``, a function ``(study, trials) -> dict | None``. Listed here, explicitly,
#: so a reader sees every section of the document in one place; each module is imported when
#: its section is first computed: with a current record (:mod:`tuneops._record`) ``tuneops
#: show`` computes none of the costly ones, and then imports neither ``tuneops.spec`` (its
#: pydantic models: about 0.25 s of CPU per process) nor the knowledge package.
SECTIONS: dict[str, str] = {
    "pruning": "tuneops.pruning:pruning_savings",
    "warm_start": "tuneops.knowledge.warm_start:warm_start_section",
    "workers": "tuneops.contribution:contribution_section",
    "strategy": "tuneops.strategy:strategy_section",
    "findings": "tuneops.report.findings:findings_section",
}
# the full document's library versions (joblib's import, 0.04 s, is not needed for a brief one)
_VERSIONS = "tuneops.export:library_versions"


def _resolve(where: str) -> Callable[..., Any]:
    """The function ``"module:function"`` names."""
    module, function = where.split(":")
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]
