"""Pruners by name, multi-objective pruning, and what pruning saved.

* :data:`PRUNERS` maps spec names to factories of Optuna pruners. Their parameters are
  declared with the spec (:data:`tuneops.spec.PRUNER_PARAMETERS`, pydantic models) and checked
  when a spec is loaded; :func:`make_pruner` builds from the validated parameters, so a bad
  value fails with the parameter, the expected range and the received value (never Optuna's
  message from deep inside).
* ``auto`` is resolved by :func:`auto_pruner` from the problem and the budget (the rule and the
  benchmark behind it are in its docstring).
* :class:`ParetoPruner` prunes multi-objective studies, which Optuna does not (its issue
  #3450: ``Trial.report``/``should_prune`` raise ``NotImplementedError`` there). It is an
  ordinary :class:`optuna.pruners.BasePruner`; intermediate objective vectors are kept in the
  trial's user attribute ``tuneops:intermediate``. Use :func:`report` and
  :func:`should_prune` in any objective, tuneops or plain Optuna, single- or multi-objective.
* :func:`pruning_savings` accounts a study: pruning rate, steps and fit seconds saved, time to
  the best result (the ``pruning`` section of ``results.json`` and ``tuneops show``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tuneops import _optuna
from tuneops.errors import SpecError
from tuneops.families import FIDELITY_STEPS
from tuneops.pareto import pareto_mask
from tuneops.spec import PRUNER_PARAMETERS, Component, Params, pruner_parameters

__all__ = [
    "PRUNERS",
    "PARAMETERS",
    "make_pruner",
    "auto_pruner",
    "check_pruner",
    "ParetoPruner",
    "report",
    "should_prune",
    "consult_at",
    "intermediate_values",
    "pruning_savings",
    "INTERMEDIATE_ATTR",
    "FIDELITY_ATTR",
    "PRUNER_ATTR",
    "describe_pruner",
]

INTERMEDIATE_ATTR = "tuneops:intermediate"  # user attr: {str(step): [value per objective]}
FIDELITY_ATTR = "tuneops:fidelity"  # trial user attr: {steps, n_steps, max_step, fit_s, pruned}
PRUNER_ATTR = "tuneops:pruner"  # study user attr: the pruner a run resolved (``auto`` made concrete)


# -- parameters ---------------------------------------------------------------------------------
#: name -> the pydantic model of its parameters (defined with the spec, checked at load time).
PARAMETERS = PRUNER_PARAMETERS


def check_pruner(name: Any, params: Mapping[str, Any] | None = None, *, field: str = "search.pruner") -> Params:
    """Validate a pruner name and its parameters without building it; returns the parameters.

    ``name`` may also be ``{name: ..., PARAMETER: value}`` or a spec's
    :class:`~tuneops.spec.Component`. The check is the spec's (:func:`tuneops.spec.pruner_parameters`).

    Raises:
        SpecError: naming the parameter, the expected range and the received value.
    """
    return pruner_parameters(name, params, field=field)


def _component(value: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(value, Component):
        return value.name, value.kwargs
    if isinstance(value, str):
        return value, {}
    rest = dict(value)
    return str(rest.pop("name", "none")), rest


# -- the table ----------------------------------------------------------------------------------
def _nop(**kw: Any) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


def _patience(*, patience: int = 1, min_delta: float = 0.0, wrapped: Any = "none") -> optuna.pruners.BasePruner:
    inner_name, inner_params = _component(wrapped)
    inner = None if inner_name == "none" else make_pruner(inner_name, inner_params)
    return optuna.pruners.PatientPruner(inner, patience=patience, min_delta=min_delta)


def _successive_halving(**kw: Any) -> optuna.pruners.BasePruner:
    # Reduction factor 2 by default: fidelity steps double the budget (1, 2, 4, 8 eighths), so
    # every rung falls on a step.
    return optuna.pruners.SuccessiveHalvingPruner(**{"reduction_factor": 2, **kw})


def _hyperband(**kw: Any) -> optuna.pruners.BasePruner:
    # Brackets hash the study name; tuneops names studies deterministically, so runs repeat.
    return optuna.pruners.HyperbandPruner(**{"reduction_factor": 2, **kw})


def _wilcoxon(**kw: Any) -> optuna.pruners.BasePruner:

    with warnings.catch_warnings():
        # Chosen by name in a spec: the user asked for it; Optuna marks it experimental.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.pruners.WilcoxonPruner(**kw)


PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "auto": lambda **kw: auto_pruner(**kw),
    "none": _nop,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": _successive_halving,
    "hyperband": _hyperband,
    "wilcoxon": _wilcoxon,
    "threshold": optuna.pruners.ThresholdPruner,
    "patience": _patience,
    "pareto": lambda **kw: ParetoPruner(**kw),
}


#: Pruners that decide in multi-objective studies (Optuna's own read one objective only).
MULTI_OBJECTIVE = ("auto", "none", "pareto")


def make_pruner(
    name: Any,
    params: Mapping[str, Any] | None = None,
    *,
    n_objectives: int = 1,
    n_trials: int | None = None,
) -> optuna.pruners.BasePruner:
    """Build the pruner ``name`` with keyword ``params``; ``auto`` looks at the problem.

    Raises:
        SpecError: unknown name, an unknown parameter, or a value out of range (the message
            names the parameter, the expected range and the received value).

    Example::

        >>> make_pruner("percentile", {"percentile": 150})
        Traceback (most recent call last):
        ...
        tuneops.errors.SpecError: search.pruner.percentile: expected a number in [0, 100], received 150.
    """
    options = check_pruner(name, params)
    name = _component(name)[0] if not isinstance(name, str) else name
    if name == "auto":
        return auto_pruner(n_objectives=n_objectives, n_trials=n_trials)
    if n_objectives > 1 and name not in MULTI_OBJECTIVE:
        raise SpecError(
            f"search.pruner: {name!r} compares one objective, received a study with {n_objectives} "
            f"objectives; use one of {', '.join(MULTI_OBJECTIVE)} for multi-objective studies."
        )
    return PRUNERS[name](**options.options())


#: ``auto``: studies of fewer trials are not pruned.
SMALL_BUDGET = 10


def auto_pruner(*, n_objectives: int = 1, n_trials: int | None = None) -> optuna.pruners.BasePruner:
    """The pruner ``auto`` resolves to, by budget (``n_trials``) and number of objectives.

    * Fewer than ``SMALL_BUDGET`` (10) trials: no pruning (every trial would be compared with
      too few others).
    * Several objectives: :class:`ParetoPruner` with its defaults (decides from step 4, half
      the budget, on: in the benchmark's replays it kept every member of the final Pareto
      front and the full hypervolume with less compute; deciding from step 2 saved more but
      pruned final-front members).
    * One objective, 10 trials or more, or no trial budget (a timeout): successive halving
      with one rung at step 2, ``SuccessiveHalvingPruner(min_resource=2,
      reduction_factor=4)``: after a quarter of its training budget (trees, rounds, epochs)
      a trial goes on only if it is in the top quarter of the trials that reached that step;
      from the second trial on, with no startup trials.

    Why (benchmarks/bench_pruners.py: real curves of histogram gradient boosting, random
    forests and MLPs on 10 PMLB datasets of 2-4k rows, studies of 20, 30, 50 and 100 trials,
    10 orders each; figures in docs/benchmarks.md): of the 16 rules replayed, it is one of
    those that reached the no-pruning study's best (within 0.5 %) in every run at every
    budget; it needed 1.15-1.23x less fit compute to get there (no such rule saved more than
    0.04x above it at any budget; the seed's ``MedianPruner(n_startup_trials=5,
    n_warmup_steps=2)``: 1.02-1.07x) and 1.95-2.05x less for the whole study (seed
    1.45-2.08x: ahead only at 100 trials). Percentile and median rules train their
    first 5 trials to the end, and the best often arrives within the first few trials, so
    startup trials are most of the compute to the best. Successive halving, percentile and
    median rules that cut from step 1 saved more in total (up to 4x) but lost the best in
    2-10 % of the runs at every budget, 100 trials included (at step 1 the rank correlation
    with the final accuracy was 0.28 on one dataset); Hyperband (factor 2) kept it but saved
    only 1.03-1.06x to the best. No budget measured favoured another rule that kept the best, so
    the budget only decides whether to prune at all.
    """
    if n_trials is not None and n_trials < SMALL_BUDGET:
        return optuna.pruners.NopPruner()
    if n_objectives > 1:
        return ParetoPruner()
    return _successive_halving(min_resource=2, reduction_factor=4)


def describe_pruner(pruner: optuna.pruners.BasePruner) -> str:
    """A short readable name of a built pruner, for results and logs."""
    if isinstance(pruner, ParetoPruner):
        return repr(pruner)
    fields = {k.lstrip("_"): v for k, v in vars(pruner).items() if isinstance(v, (int, float, str)) and not k.startswith("__")}
    inner = getattr(pruner, "_wrapped_pruner", None)
    if inner is not None:
        fields["wrapped"] = describe_pruner(inner)
    args = ", ".join(f"{k}={v}" for k, v in sorted(fields.items()))
    return f"{type(pruner).__name__}({args})"


# -- multi-objective pruning ----------------------------------------------------------------------
def intermediate_values(trial: FrozenTrial, n_objectives: int) -> dict[int, tuple[float | None, ...]]:
    """The intermediate objective vectors a trial reported, ``{step: (value per objective)}``.

    Read from tuneops' user attribute (any study), else from Optuna's own record (one objective).
    """
    stored = trial.user_attrs.get(INTERMEDIATE_ATTR)
    if stored:
        return {int(k): tuple(v) for k, v in stored.items()}
    if n_objectives == 1:
        return {step: (value,) for step, value in trial.intermediate_values.items()}
    return {}


def dominates(a: Sequence[float | None], b: Sequence[float | None], directions: Sequence[StudyDirection]) -> bool:
    """``a`` is at least as good as ``b`` on every objective both know, and better on one.

    Objectives unknown (None) in either vector are left out of the comparison.
    """
    better = False
    compared = 0
    for x, y, d in zip(a, b, directions):
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            continue
        compared += 1
        if d == StudyDirection.MINIMIZE:
            x, y = -x, -y
        if x < y:
            return False
        if x > y:
            better = True
    return better and compared > 0


class ParetoPruner(optuna.pruners.BasePruner):
    """Prune a trial whose intermediate objective vector is dominated by many peers at its step.

    The rule: at step ``s`` (``s >= n_warmup_steps``), once ``n_startup_trials`` completed
    trials reported a vector at ``s``, prune when at least ``max(min_dominating,
    dominated_fraction * n)`` of those ``n`` vectors dominate the trial's vector at ``s``.
    Dominance is Pareto dominance over the objectives both vectors know (a component may be
    ``None``: not measured at that step). With one objective this is the percentile rule.

    Compared at the same step, like with like: tuneops reports for each objective what the
    step already measured: the CV quality, and for a serving-cost objective a cost of the
    partially trained model (validation predict CPU time per row for latency, the pickled size
    for size, fit seconds so far for fit time). A trial that is cheap is never dominated
    by accurate but costly ones, so the members of the final Pareto front at the cheap end
    survive; a trial is cut only when most finished trials were both better and cheaper at
    the same point of training.

    Works with any study: in a multi-objective study Optuna's ``trial.report`` raises, so
    :func:`report` keeps the vector in the trial's user attribute ``tuneops:intermediate``,
    and :func:`should_prune` asks this pruner.

    Example::

        >>> import optuna
        >>> from tuneops.pruning import ParetoPruner, report, should_prune
        >>> study = optuna.create_study(directions=["maximize", "minimize"], pruner=ParetoPruner())
        >>> def objective(trial):
        ...     x = trial.suggest_float("x", 0, 1)
        ...     for step in (1, 2, 4, 8):
        ...         report(trial, (x * step / 8, 1 - x), step)
        ...         if should_prune(trial):
        ...             raise optuna.TrialPruned()
        ...     return x, 1 - x
        >>> study.optimize(objective, n_trials=5)
    """

    def __init__(
        self,
        *,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 4,
        dominated_fraction: float = 0.5,
        min_dominating: int = 2,
    ) -> None:
        check_pruner(
            "pareto",
            {"n_startup_trials": n_startup_trials, "n_warmup_steps": n_warmup_steps,
             "dominated_fraction": dominated_fraction, "min_dominating": min_dominating},
            field="ParetoPruner",
        )
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps
        self.dominated_fraction = dominated_fraction
        self.min_dominating = min_dominating

    def __repr__(self) -> str:
        return (
            f"ParetoPruner(n_startup_trials={self.n_startup_trials}, n_warmup_steps={self.n_warmup_steps}, "
            f"dominated_fraction={self.dominated_fraction}, min_dominating={self.min_dominating})"
        )

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        directions = study.directions
        mine = intermediate_values(trial, len(directions))
        if not mine:
            return False
        step = max(mine)
        if step < self.n_warmup_steps:
            return False
        peers = []
        for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            vector = intermediate_values(other, len(directions)).get(step)
            if vector is not None:
                peers.append(vector)
        if len(peers) < self.n_startup_trials:
            return False
        n_dominating = sum(dominates(p, mine[step], directions) for p in peers)
        return n_dominating >= max(self.min_dominating, self.dominated_fraction * len(peers))


def report(trial: optuna.trial.BaseTrial, values: float | Sequence[float | None], step: int) -> None:
    """Report the intermediate objective value(s) of ``trial`` at ``step``, once per step.

    Single-objective studies use Optuna's own record (``trial.report``). In a multi-objective
    study, where that raises, the vector goes to the user attribute ``tuneops:intermediate``.
    """
    vector = [values] if isinstance(values, (int, float)) else list(values)
    study = getattr(trial, "study", None)
    if study is None:  # FixedTrial: nothing to record
        return
    if len(study.directions) == 1:
        trial.report(float(vector[0]), step)
        return
    if len(vector) != len(study.directions):
        raise ValueError(
            f"report: expected {len(study.directions)} values (one per objective), received {len(vector)}."
        )
    record = dict(trial.user_attrs.get(INTERMEDIATE_ATTR, {}))
    if str(step) in record:
        return  # a step is reported once, as Optuna does
    record[str(step)] = [None if v is None else float(v) for v in vector]
    trial.set_user_attr(INTERMEDIATE_ATTR, record)


def consult_at(step: int, n_objectives: int, last_step: int | None = None) -> bool:
    """Whether to ask the pruner after ``step``: always before the last step; at the last step
    only with several objectives, where pruning still skips the serving-cost measurement."""

    return step != (last_step if last_step is not None else FIDELITY_STEPS[-1]) or n_objectives > 1


def should_prune(trial: optuna.trial.BaseTrial) -> bool:
    """Whether the study's pruner stops ``trial`` now; works for any number of objectives."""
    study = getattr(trial, "study", None)
    if study is None:
        return False
    if len(study.directions) == 1:
        return trial.should_prune()
    return study.pruner.prune(study, _optuna.latest(trial))  # type: ignore[arg-type]


# -- savings ------------------------------------------------------------------------------------
def pruning_savings(study: optuna.Study, trials: Sequence[FrozenTrial]) -> dict[str, Any] | None:
    """What pruning saved in ``study``: the ``pruning`` section of ``results.json``.

    Returns None when no trial was trained step by step. Saved fit seconds of a pruned trial
    are its fit seconds so far scaled to the full budget (``fit_s * max_step / last_step``)
    minus what it spent: exact for trees, rounds and epochs, a lower bound for the
    training-set fraction of super-linear models (SVM).
    """
    records = [(t, t.user_attrs[FIDELITY_ATTR]) for t in trials if FIDELITY_ATTR in t.user_attrs]
    if not records:
        return None
    pruned = [(t, r) for t, r in records if t.state == TrialState.PRUNED]
    finished = [t for t, _ in records if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    steps_run = sum(len(r["steps"]) for _, r in records)
    steps_total = sum(r["n_steps"] for _, r in records)
    fit_s = sum(r["fit_s"] for _, r in records)
    saved_s = sum(r["fit_s"] * (r["max_step"] / r["steps"][-1] - 1) for _, r in pruned if r["steps"])
    out: dict[str, Any] = {
        "pruner": study.user_attrs.get(PRUNER_ATTR),
        "n_trials": len(finished),
        "n_pruned": len(pruned),
        "pruning_rate": len(pruned) / len(finished) if finished else 0.0,
        "pruned_at_step": _count(r["steps"][-1] for _, r in pruned if r["steps"]),
        "steps_run": steps_run,
        "steps_saved": steps_total - steps_run,
        "fit_s": fit_s,
        "fit_s_saved": saved_s,
        "fit_saved_fraction": saved_s / (fit_s + saved_s) if fit_s + saved_s > 0 else 0.0,
    }
    out.update(_time_to_best(study, trials))
    return out


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[str(v)] = counts.get(str(v), 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: int(kv[0])))


def _time_to_best(study: optuna.Study, trials: Sequence[FrozenTrial]) -> dict[str, Any]:
    """Wall and fit seconds from the study's first trial until its best result existed.

    One objective: until the best trial completed. Several: until the last member of the
    final Pareto front completed (from then on the front did not change).
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    started = [t.datetime_start for t in trials if t.datetime_start is not None]
    if not complete or not started:
        return {}
    directions = study.directions
    if len(directions) == 1:
        sign = -1 if directions[0] == StudyDirection.MAXIMIZE else 1
        best = [min(complete, key=lambda t: sign * t.values[0])]
    else:

        mask = pareto_mask([t.values for t in complete], [d.name.lower() for d in directions])
        best = [t for t, m in zip(complete, mask) if m]
    reached = max(t.datetime_complete for t in best)
    first = min(started)
    compute = sum(
        t.user_attrs.get(FIDELITY_ATTR, {}).get("fit_s", 0.0)
        for t in trials
        if t.datetime_complete is not None and t.datetime_complete <= reached
    )
    return {
        "best_trials": [t.number for t in best],
        "time_to_best_s": (reached - first).total_seconds(),
        "fit_s_to_best": compute,
    }
