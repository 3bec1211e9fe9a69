"""Pruners by name, multi-objective pruning, and what pruning saved.

* :data:`PRUNERS` maps spec names to factories of Optuna pruners. Their parameters are
  declared with the spec (:data:`tuneops.spec.PRUNER_PARAMETERS`, pydantic models) and checked
  when a spec is loaded; :func:`make_pruner` builds from the validated parameters, so a bad
  value fails with the parameter, the expected range and the received value (never Optuna's
  message from deep inside).
* ``auto`` is resolved by :func:`auto_pruner` from the problem and the budget (the rule and the
  benchmark behind it are in its docstring). For one objective it is
  :class:`FractionalHalvingPruner`: asynchronous successive halving whose rungs sit at
  fractions of the maximum step, so a rule fits an objective that reports 4 steps or 500:
  from 1/9 on tuneops' fidelity schedule (a spec), from 1/3 on an objective's own steps.
* :class:`ParetoPruner` prunes multi-objective studies, which Optuna does not (its issue
  #3450: ``Trial.report``/``should_prune`` raise ``NotImplementedError`` there). It is an
  ordinary :class:`optuna.pruners.BasePruner`; intermediate objective vectors are kept in the
  trial's user attribute ``tuneops:intermediate``. Use :func:`report` and
  :func:`should_prune` in any objective, tuneops or plain Optuna, single- or multi-objective.
* :func:`pruning_savings` accounts a study: pruning rate, steps and fit seconds saved, time to
  the best result, compute to the best and the anytime curve (best against compute spent): the
  ``pruning`` section of ``results.json`` and ``tuneops show``. :func:`trial_compute` is the
  compute of one trial in a budget's unit (``search.budget``, :mod:`tuneops.runner`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

from tuneops import _optuna
from tuneops.errors import SpecError
from tuneops.families import FIDELITY_STEPS
from tuneops.pruning.choice import (
    PRUNER_ATTR,
    SMALL_BUDGET,
    auto_pruner,
    describe_pruner,
    record_pruner,
)
from tuneops.pruning.halving import FractionalHalvingPruner, rung_steps
from tuneops.pruning.multi_objective import INTERMEDIATE_ATTR, ParetoPruner, intermediate_values
from tuneops.pruning.savings import (
    FIDELITY_ATTR,
    best_reached,
    busy_seconds,
    custom_fidelity,
    pruning_savings,
    trial_compute,
)
from tuneops.spec import COMPUTE_UNITS, PRUNER_PARAMETERS, Component, Params, pruner_parameters

__all__ = [
    "PRUNERS",
    "PARAMETERS",
    "make_pruner",
    "auto_pruner",
    "check_pruner",
    "ParetoPruner",
    "FractionalHalvingPruner",
    "rung_steps",
    "trial_compute",
    "best_reached",
    "COMPUTE_UNITS",
    "report",
    "should_prune",
    "consult_at",
    "intermediate_values",
    "pruning_savings",
    "busy_seconds",
    "custom_fidelity",
    "INTERMEDIATE_ATTR",
    "FIDELITY_ATTR",
    "PRUNER_ATTR",
    "record_pruner",
    "describe_pruner",
    "SMALL_BUDGET",
]



# -- parameters ---------------------------------------------------------------------------------
#: name -> the pydantic model of its parameters (defined with the spec, checked at load time).
PARAMETERS = PRUNER_PARAMETERS


def check_pruner(
    name: Any, params: Mapping[str, Any] | None = None, *, field: str = "search.pruner"
) -> Params:
    """Validate a pruner name and its parameters without building it; returns the parameters.

    ``name`` may also be ``{name: ..., PARAMETER: value}`` or a spec's
    :class:`~tuneops.spec.Component`. The check is the spec's
    (:func:`tuneops.spec.pruner_parameters`).

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


def _patience(
    *, patience: int = 1, min_delta: float = 0.0, wrapped: Any = "none"
) -> optuna.pruners.BasePruner:
    inner_name, inner_params = _component(wrapped)
    inner = None if inner_name == "none" else make_pruner(inner_name, inner_params)
    with warnings.catch_warnings():
        # Chosen by name: the user asked for it; Optuna marks it experimental.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
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
    "fractional_halving": lambda **kw: FractionalHalvingPruner(**kw),
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
    max_step: int | None = None,
    measured_after_last: bool = False,
    fidelity_schedule: bool = False,
) -> optuna.pruners.BasePruner:
    """Build the pruner ``name`` with keyword ``params``; ``auto`` looks at the problem.

    Args:
        max_step: the objective's last step when the caller knows it (a spec's fidelity
            schedule); a ``max_step`` parameter of the pruner wins; None: learned from the
            first completed trials.
        measured_after_last: the objective still measures something after its last step
            (a spec's serving cost: latency, size), so a multi-objective cut there saves that
            measurement; otherwise (``tune()``) the training is paid for and nothing is cut.
        fidelity_schedule: the objective reports tuneops' fidelity steps (a spec), whose
            curves ``auto``'s earlier rungs were measured on; otherwise (``tune()``, a plain
            Optuna study) ``auto`` judges the objective's own steps later and more gently
            (:func:`auto_pruner`).

    Raises:
        SpecError: unknown name, an unknown parameter, or a value out of range (the message
            names the parameter, the expected range and the received value).

    Example::

        >>> make_pruner("percentile", {"percentile": 150})
        Traceback (most recent call last):
        ...
        tuneops.errors.SpecError: search.pruner.percentile: expected a number in [0, 100], received
        150.
    """
    options = check_pruner(name, params).options()
    name = _component(name)[0] if not isinstance(name, str) else name
    if name == "auto":
        return auto_pruner(
            n_objectives=n_objectives,
            n_trials=n_trials,
            max_step=options.get("max_step", max_step),
            measured_after_last=measured_after_last,
            fidelity_schedule=fidelity_schedule,
        )
    if n_objectives > 1 and name not in MULTI_OBJECTIVE:
        raise SpecError(
            f"search.pruner: {name!r} compares one objective, received a study with {n_objectives} "
            f"objectives; use one of {', '.join(MULTI_OBJECTIVE)} for multi-objective studies."
        )
    if name == "pareto":
        options.setdefault("max_step", max_step)
        options["cut_at_last_step"] = measured_after_last
    elif name == "fractional_halving":
        options.setdefault("max_step", max_step)
    return PRUNERS[name](**options)
def report(
    trial: optuna.trial.BaseTrial, values: float | Sequence[float | None], step: int
) -> None:
    """Report the intermediate objective value(s) of ``trial`` at ``step``, once per step.

    Single-objective studies use Optuna's own record (``trial.report``). In a multi-objective
    study, where that raises, the vector goes to the user attribute ``tuneops:intermediate``.
    """
    vector = [values] if isinstance(values, (int, float)) else list(values)
    study = getattr(trial, "study", None)
    if study is None:  # FixedTrial: nothing to record
        return
    if len(study.directions) == 1:
        with warnings.catch_warnings():
            # a step already reported keeps its value (a repeat's replayed values, then its fit)
            warnings.filterwarnings("ignore", message=r"The reported value is ignored")
            trial.report(float(vector[0]), step)  # type: ignore[arg-type]  # checked finite
        return
    if len(vector) != len(study.directions):
        raise ValueError(
            f"report: expected {len(study.directions)} values (one per objective), received "
            f"{len(vector)}."
        )
    record = dict(trial.user_attrs.get(INTERMEDIATE_ATTR, {}))
    if str(step) in record:
        return  # a step is reported once, as Optuna does
    record[str(step)] = [None if v is None else float(v) for v in vector]
    trial.set_user_attr(INTERMEDIATE_ATTR, record)


def consult_at(
    step: int, n_objectives: int, last_step: int | None = None, *, measured_after: bool = True
) -> bool:
    """Whether to ask the pruner after ``step``: always before the last step; at the last step
    only with several objectives when something is still measured after it
    (``measured_after``: a spec's serving cost), so that a cut there still saves it. A custom
    objective has paid for the whole training at its last step: no cut there."""

    last = last_step if last_step is not None else FIDELITY_STEPS[-1]
    return step != last or (n_objectives > 1 and measured_after)


def should_prune(trial: optuna.trial.BaseTrial) -> bool:
    """Whether the study's pruner stops ``trial`` now; works for any number of objectives."""
    study = getattr(trial, "study", None)
    if study is None:
        return False
    if len(study.directions) == 1:
        return trial.should_prune()
    return study.pruner.prune(study, _optuna.latest(trial))  # type: ignore[arg-type]



