"""The results document of a study: what ran, what was chosen, and why (``results.json``).

Computed from the storage only, so ``tuneops show`` on any machine gives the same answer.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuneops.selection import Choice

__all__ = ["study_results", "trial_record"]


def trial_record(t: FrozenTrial) -> dict[str, Any]:
    """One trial as plain data."""
    record: dict[str, Any] = {
        "number": t.number,
        "state": t.state.name,
        "values": list(t.values) if t.values is not None else None,
        "params": dict(t.params),
        "metrics": t.user_attrs.get("metrics", {}),
        "duration_s": t.duration.total_seconds() if t.duration else None,
    }
    for key in ("family", "fail_reason", "abandoned", "worker", "retry_of", "warm_start"):
        if key in t.user_attrs:
            record[key] = t.user_attrs[key]
    if t.constraints:
        record["feasible"] = all(v <= 0 for v in t.constraints.values())
    return record


def study_results(
    study: optuna.Study,
    *,
    choice: Choice | None = None,
    elapsed_s: float | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """The results document for ``study``; sections that need data a study lacks are omitted."""
    from tuneops.export import library_versions
    from tuneops.runner import retired

    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    counts = Counter(t.state.name for t in trials if "abandoned" not in t.user_attrs)
    counts["RETIRED"] = sum(retired(t) for t in trials)  # created beyond the budget, never run
    counts["ABANDONED"] = sum("abandoned" in t.user_attrs for t in trials) - counts["RETIRED"]
    attrs = study.user_attrs
    results: dict[str, Any] = {
        "study": study.study_name,
        "objectives": attrs.get("tuneops:objectives")
        or [{"metric": "value", "direction": d.name.lower()} for d in study.directions],
        "constraints": attrs.get("tuneops:constraints", []),
        "data": attrs.get("tuneops:data"),
        # positive class of binary metrics, averaging, majority-class/mean baseline scores
        "scoring": attrs.get("tuneops:scoring"),
        "spec": attrs.get("tuneops:spec"),
        "n_trials": {k.lower(): v for k, v in sorted(counts.items()) if v},
        "elapsed_s": elapsed_s,
        "selected": None,
        "pareto_front": [],
        "message": message,
        "failures": [
            {"number": t.number, "reason": t.user_attrs.get("fail_reason", "unknown")}
            for t in trials
            if t.state == TrialState.FAIL and "abandoned" not in t.user_attrs
        ],
        "trials": [trial_record(t) for t in trials],
        "versions": library_versions(),
    }
    if choice is not None:
        results["selection"] = choice.to_dict()
        results["selected"] = trial_record(by_number[choice.selected.number])
        results["pareto_front"] = [trial_record(by_number[c.number]) for c in choice.front]
    for name, section in _sections():
        value = section(study, trials)
        if value is not None:
            results[name] = value
    return results


def _sections() -> list[tuple[str, Any]]:
    """Sections other parts of tuneops contribute: ``(study, trials) -> dict | None``.

    Imported here, explicitly, so a reader sees every section of the document in one place.
    """
    from tuneops.contribution import contribution_section
    from tuneops.knowledge.warm_start import warm_start_section
    from tuneops.pruning import pruning_savings
    from tuneops.report.findings import findings_section

    return [
        ("pruning", pruning_savings),
        ("warm_start", warm_start_section),
        ("workers", contribution_section),
        ("findings", findings_section),
    ]
