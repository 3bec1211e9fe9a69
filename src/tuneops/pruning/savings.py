"""What pruning saved, from a study's trials: pruning rate, steps and fit seconds saved, time and
compute to the best result, and the anytime curve (best against compute spent): the ``pruning``
section of ``results.json`` and ``tuneops show``. :func:`trial_compute` is the compute of one
trial in a budget's unit (``search.budget``, :mod:`tuneops.runner`)."""

from __future__ import annotations

import statistics
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tuneops import _study
from tuneops.pareto import pareto_mask
from tuneops.pruning.choice import PRUNER_ATTR, is_off, off_reason
from tuneops.pruning.multi_objective import intermediate_values

FIDELITY_ATTR = _study.FIDELITY  # trial user attr: {steps, n_steps, max_step, fit_s, pruned}


# -- compute ------------------------------------------------------------------------------------
def trial_compute(record: Mapping[str, Any] | None, unit: str) -> float:
    """The compute a trial spent in ``unit`` (:data:`COMPUTE_UNITS`), from its fidelity record.

    ``fit_cpu_s``: CPU seconds of fitting (a step-wise spec trial's ``fit_cpu_s_steps``, a
    custom objective's or a straight-through trial's ``fit_cpu_s``; a record from before
    straight-through trials recorded CPU has wall seconds only, which stand in). ``fit_s``:
    wall seconds of fitting. ``steps``: the last fidelity step trained (the resource: rounds,
    trees or epochs in units of the schedule; one more when the steps count from 0; a trial
    that reported no step counts its ``max_step``, at least 1). No record: 0.
    """
    if not record:
        return 0.0
    if unit == "steps":
        steps = record.get("steps") or ()
        if not steps:
            return float(record.get("max_step") or 1)
        # epoch indices from 0: a trial that reached step k trained k + 1 of them
        return float(steps[-1] + 1 if steps[0] == 0 else steps[-1])
    if unit == "fit_cpu_s":
        if record.get("fit_cpu_s") is not None:
            return float(record["fit_cpu_s"])
        if record.get("fit_cpu_s_steps"):
            return float(record["fit_cpu_s_steps"][-1])
    return float(record.get("fit_s", 0.0))


def custom_fidelity(
    trial: FrozenTrial, n_objectives: int, *, fit_s: float, fit_cpu_s: float, pruned: bool
) -> dict[str, Any]:
    """The fidelity record of a custom objective's trial (``tune()``): the steps it reported,
    its wall and CPU seconds (the whole objective call: tuneops cannot tell fitting apart),
    whether it was pruned. ``custom`` marks it: its maximum step is not known per trial, so
    :func:`pruning_savings` takes the largest step a completed trial reported."""
    steps = sorted(intermediate_values(trial, n_objectives))
    return {
        "steps": steps,
        "n_steps": len(steps),
        "max_step": steps[-1] if steps else None,
        "fit_s": fit_s,
        "fit_cpu_s": fit_cpu_s,
        "pruned": pruned,
        "custom": True,
    }


# -- savings ------------------------------------------------------------------------------------
def pruning_savings(
    study: optuna.Study, trials: Sequence[FrozenTrial], front: Collection[int] | None = None
) -> dict[str, Any] | None:
    """What pruning saved in ``study``: the ``pruning`` section of ``results.json``.

    Returns None when no trial was trained step by step. Saved fit seconds of a pruned trial
    are its fit seconds so far scaled to the full budget (``fit_s * max_step / last_step``)
    minus what it spent: exact for trees, rounds and epochs, a lower bound for the
    training-set fraction of super-linear models (SVM). They are counted in CPU seconds
    (``fit_cpu_s``, ``fit_cpu_s_saved`` and ``fit_saved_fraction``: what a busy machine does not
    inflate, the unit of ``fit_time_s`` and of a ``fit_cpu_s`` budget) and in wall seconds
    (``fit_s``, ``fit_s_saved``). A custom objective's trials
    (``tune()``) are scaled to the largest step a completed trial reported.

    ``compute`` gives the compute spent (in the unit of the study's compute budget, else fit
    CPU seconds), the budget if any, the compute until the best result existed, and the
    *anytime* curve: ``[compute spent, best value so far]`` at each completion that improved
    the best (one objective), in order of completion.

    The best result existed from the moment :func:`best_reached` gives (the time and compute
    to it count the trials finished until then): one objective, when the first trial with
    the best feasible value completed; several, when the last point of the final Pareto front
    appeared. ``front``: the trial numbers of the front the selection printed (ties within
    noise removed, :func:`tuneops.selection.noise_front`); default: the plain Pareto front.
    """
    recorded = [t for t in trials if FIDELITY_ATTR in t.user_attrs]
    if not recorded:
        return None
    completed = [
        t
        for t in recorded
        if t.state == TrialState.COMPLETE and t.user_attrs[FIDELITY_ATTR].get("steps")
    ]
    largest = max((t.user_attrs[FIDELITY_ATTR]["steps"][-1] for t in completed), default=0)
    # The steps a completed custom trial reported: what a pruned one would have run (1, 2, 4, 8
    # or 0-9, not every integer up to the largest).
    schedule: list[int] = max(
        (t.user_attrs[FIDELITY_ATTR]["steps"] for t in completed),
        key=len,
        default=[],
    )
    records = [(t, _scaled(t, largest, schedule)) for t in recorded]
    ratios = _cost_ratios(completed)
    # A trial stopped by search.trial_timeout_s is not the pruner's doing, nor its saving;
    # counted from every trial (one trained straight through records no fidelity).
    late = [t for t in trials if _study.TIMED_OUT in t.user_attrs]
    # Steps saved are the pruner's: a timed-out trial's unrun steps are not (nor its CPU).
    counted = [(t, r) for t, r in records if _study.TIMED_OUT not in t.user_attrs]
    pruned = [(t, r) for t, r in counted if t.state == TrialState.PRUNED]
    finished = [t for t, _ in counted if t.state in (TrialState.COMPLETE, TrialState.PRUNED)] + late
    steps_run = sum(len(r["steps"]) for _, r in counted)
    steps_total = sum(r["n_steps"] for _, r in counted)
    fit_s = sum(r["fit_s"] for _, r in records)
    saved_s = sum(_unspent(r, r["fit_s"], _ratio(t, r, ratios)) for t, r in pruned)
    fit_cpu_s = sum(trial_compute(r, "fit_cpu_s") for _, r in records)
    saved_cpu_s = sum(
        _unspent(r, trial_compute(r, "fit_cpu_s"), _ratio(t, r, ratios)) for t, r in pruned
    )
    out: dict[str, Any] = {
        "pruner": study.user_attrs.get(PRUNER_ATTR),
        # why nothing was pruned, when no pruner ran (the console says it instead of counts)
        **({"off": off_reason(study.user_attrs)} if is_off(study.user_attrs) else {}),
        "n_trials": len(finished),
        "n_pruned": len(pruned),
        "n_timed_out": len(late),
        "pruning_rate": len(pruned) / len(finished) if finished else 0.0,
        "pruned_at_step": _count(r["steps"][-1] for _, r in pruned if r["steps"]),
        "steps_run": steps_run,
        "steps_saved": steps_total - steps_run,
        "fit_cpu_s": fit_cpu_s,
        "fit_cpu_s_saved": saved_cpu_s,
        "fit_saved_fraction": (
            saved_cpu_s / (fit_cpu_s + saved_cpu_s) if fit_cpu_s + saved_cpu_s > 0 else 0.0
        ),
        "fit_s": fit_s,
        "fit_s_saved": saved_s,
        **_measurements_saved(records, pruned),
    }
    reached = best_reached(study, trials, front)
    out.update(_time_to_best(trials, reached))
    out["compute"] = _compute_curve(study, records, reached)
    return out


def _unspent(record: Mapping[str, Any], spent: float, ratio: float | None = None) -> float:
    """What a pruned trial that spent ``spent`` (seconds) until its last step would have spent
    more to reach its maximum step: ``spent * (ratio - 1)``, ``ratio`` being what the completed
    trials' full fit cost against their cost at that step (:func:`_cost_ratios`); without
    one, the share of the resource trained: ``max_step / last_step`` (the steps' share of
    the schedule when the last step is 0, an epoch index)."""
    steps, top = record.get("steps"), record.get("max_step")
    if not steps or not top:
        return 0.0
    if ratio is None:
        if steps[0] == 0:  # epoch indices from 0: step k is the (k + 1)-th of top + 1
            ratio = (top + 1) / (steps[-1] + 1)
        else:
            ratio = top / steps[-1]
    return spent * max(ratio - 1.0, 0.0)


def _family_of(trial: FrozenTrial) -> Any:
    return trial.params.get("family", trial.user_attrs.get("family"))


def _cost_ratios(completed: Sequence[FrozenTrial]) -> dict[tuple[Any, int], float]:
    """``(family, step) -> median over completed trials of full fit CPU / fit CPU at step``.

    A fit's cost is not linear in its steps: the first rounds or trees carry fixed costs
    (binning, the imputer, thread start-up), so 1/27 of the budget already cost about a tenth
    of the full fit, and scaling what a pruned trial spent by ``max_step / step`` overstated
    the saving 2-3.5x. The completed trials of the same family measured the real curve."""
    samples: dict[tuple[Any, int], list[float]] = {}
    for t in completed:
        record = t.user_attrs[FIDELITY_ATTR]
        cpu, steps = record.get("fit_cpu_s_steps"), record.get("steps")
        if not cpu or not steps or len(cpu) != len(steps) or not cpu[-1] > 0:
            continue
        for step, spent in zip(steps, cpu, strict=True):
            if spent > 0:
                samples.setdefault((_family_of(t), step), []).append(cpu[-1] / spent)
    return {key: float(statistics.median(values)) for key, values in samples.items()}


def _ratio(
    trial: FrozenTrial, record: Mapping[str, Any], ratios: Mapping[tuple[Any, int], float]
) -> float | None:
    steps = record.get("steps")
    return ratios.get((_family_of(trial), steps[-1])) if steps else None


def _measurements_saved(
    records: Sequence[tuple[FrozenTrial, dict[str, Any]]],
    pruned: Sequence[tuple[FrozenTrial, dict[str, Any]]],
) -> dict[str, Any]:
    """What a cut after the last step saved: a multi-objective spec's pruner may stop a trial
    whose training is done but whose serving cost is still to be measured (``consult_at``).
    ``measurements_saved`` counts those trials; ``measure_s_saved`` estimates their CPU seconds
    as the median measurement of the complete trials (``tuneops:cost`` ``serving.call.cpu_s``).
    """
    after_last = sum(
        1 for _, r in pruned if r["steps"] and r["max_step"] and r["steps"][-1] >= r["max_step"]
    )
    costs = sorted(
        cost for t, _ in records if t.state == TrialState.COMPLETE and (cost := _measure_s(t))
    )
    median = costs[len(costs) // 2] if costs else 0.0
    return {"measurements_saved": after_last, "measure_s_saved": after_last * median}


def _measure_s(trial: FrozenTrial) -> float | None:
    """CPU seconds of ``trial``'s serving measurement, if it recorded one."""
    serving = (trial.user_attrs.get(_study.COST) or {}).get("serving") or {}
    cpu = (serving.get("call") or {}).get("cpu_s")
    return float(cpu) if cpu is not None else None


def _scaled(trial: FrozenTrial, largest: int, schedule: Sequence[int] = ()) -> dict[str, Any]:
    """A trial's fidelity record; a custom objective's scaled to ``largest``, the largest step
    a completed trial reported (a pruned trial would have run that far), and to ``schedule``,
    the steps a completed trial reported (a pruned trial would have reported those). The
    stored record itself when nothing is scaled (a copy per trial is megabytes at 10,000
    trials): not to be changed."""
    record: dict[str, Any] = trial.user_attrs[FIDELITY_ATTR]
    if record.get("custom") and (largest or schedule):
        record = dict(record)
        steps = record["steps"]
        record["max_step"] = largest
        if trial.state == TrialState.PRUNED and steps:
            later = [s for s in schedule if s > steps[-1]]
            record["n_steps"] = len(steps) + len(later)
    return record


def _compute_curve(
    study: optuna.Study,
    records: Sequence[tuple[FrozenTrial, dict[str, Any]]],
    reached: tuple[list[FrozenTrial], FrozenTrial] | None,
) -> dict[str, Any]:
    budget = _study.compute_budget(study)
    unit = budget[0] if budget else "fit_cpu_s"
    done = sorted(
        (t for t, _ in records if t.datetime_complete is not None),
        key=lambda t: (t.datetime_complete, t.number),
    )
    by_number = {t.number: r for t, r in records}
    single = len(study.directions) == 1
    sign = 1.0 if single and study.directions[0] == StudyDirection.MAXIMIZE else -1.0
    spent, best, best_at = 0.0, None, None
    curve: list[list[float]] = []
    marker = _finished_key(reached[1]) if reached else None
    for t in done:
        spent += trial_compute(by_number[t.number], unit)
        if marker is not None and _finished_key(t) <= marker:
            best_at = spent
        if single and _counts_as_best(t):
            if best is None or sign * t.values[0] > sign * best:
                best = t.values[0]
                curve.append([spent, best])
    if curve and curve[-1][0] != spent:
        curve.append([spent, curve[-1][1]])
    out: dict[str, Any] = {"unit": unit, "spent": spent, "budget": budget[1] if budget else None}
    if single:
        out["to_best"] = best_at if reached else None
        out["anytime"] = curve
    return out


def _finished_key(trial: FrozenTrial) -> tuple[Any, int]:
    """The order in which trials finished (trial number among those finished at once)."""
    return (trial.datetime_complete, trial.number)


def best_reached(
    study: optuna.Study, trials: Sequence[FrozenTrial], front: Collection[int] | None = None
) -> tuple[list[FrozenTrial], FrozenTrial] | None:
    """The trials that make the study's best feasible result, and the one whose completion made
    it exist (None before any feasible trial completed): every figure "to the best" counts
    what finished until then, that trial included.

    One objective: the first trial to complete with the best value (a tie completed earlier by
    another worker is when the best existed; the lowest-numbered one's completion, later,
    was taken). Several: the front (``front``, the trial numbers the selection printed; by
    default the Pareto front), each point by the first trial that reached it, the front
    existing when its last point appeared (a trial on the plain front that the printed front
    left out as a tie within noise set the time to the best at the end of a run).
    """
    complete = [t for t in trials if _counts_as_best(t) and t.datetime_complete is not None]
    if not complete:
        return None
    directions = study.directions
    if len(directions) == 1:
        sign = -1 if directions[0] == StudyDirection.MAXIMIZE else 1
        top = min(sign * t.values[0] for t in complete)
        members = [t for t in complete if sign * t.values[0] == top]
    elif front is not None:
        wanted = set(front)
        members = [t for t in complete if t.number in wanted]
    else:
        mask = pareto_mask([t.values for t in complete], [d.name.lower() for d in directions])
        members = [t for t, m in zip(complete, mask, strict=False) if m]
    if not members:
        return None
    first: dict[tuple[float, ...], FrozenTrial] = {}
    for t in sorted(members, key=_finished_key):
        first.setdefault(tuple(t.values), t)
    best = sorted(first.values(), key=lambda t: t.number)
    return best, max(best, key=_finished_key)


def _counts_as_best(trial: FrozenTrial) -> bool:
    """A complete trial that met the study's constraints (as Optuna recorded them): only such a
    trial can be the best a run reached (an infeasible one is never selected)."""
    return (
        trial.state == TrialState.COMPLETE
        and trial.values is not None
        and _study.feasible(trial) is not False
    )


def busy_seconds(trials: Sequence[FrozenTrial], until: Any = None) -> float:
    """Wall seconds during which at least one of ``trials`` ran: the union of their [start,
    end] intervals, so the idle time between a run and its resumption (hours, perhaps) is not
    counted. ``until`` (a datetime): only up to then, a trial still running counting up to it;
    None: up to the last end, a trial without an end not counting. A trial abandoned by a dead
    worker ends at its last sign of life (:func:`tuneops._study.ran_until`)."""
    spans: list[tuple[Any, Any]] = []
    for t in trials:
        start, end = t.datetime_start, _study.ran_until(t)
        if start is None:
            continue
        if until is not None:
            if start >= until:
                continue
            end = min(end or until, until)
        elif end is None:
            continue
        spans.append((start, end))
    spans.sort()
    total = 0.0
    current: tuple[Any, Any] | None = None  # the union's interval being extended
    for start, end in spans:
        if current is not None and start <= current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current is not None:
            total += (current[1] - current[0]).total_seconds()
        current = (start, end)
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return total


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[str(v)] = counts.get(str(v), 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: int(kv[0])))


def _time_to_best(
    trials: Sequence[FrozenTrial], reached: tuple[list[FrozenTrial], FrozenTrial] | None
) -> dict[str, Any]:
    """Wall seconds during which trials ran (the idle time between a run and its resumption is
    not counted), and fit CPU and wall seconds, until the study's best feasible result existed
    (:func:`best_reached`)."""
    if reached is None or not any(t.datetime_start is not None for t in trials):
        return {}
    best, last = reached
    marker = _finished_key(last)
    before = [
        t.user_attrs.get(FIDELITY_ATTR)
        for t in trials
        if t.datetime_complete is not None and _finished_key(t) <= marker
    ]
    return {
        "best_trials": [t.number for t in best],
        "time_to_best_s": busy_seconds(trials, last.datetime_complete),
        "fit_cpu_s_to_best": sum(trial_compute(r, "fit_cpu_s") for r in before),
        "fit_s_to_best": sum(trial_compute(r, "fit_s") for r in before),
    }
