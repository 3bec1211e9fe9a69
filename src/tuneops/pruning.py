"""Pruners by name, multi-objective pruning, and what pruning saved.

* :data:`PRUNERS` maps spec names to factories of Optuna pruners. Their parameters are
  declared with the spec (:data:`tuneops.spec.PRUNER_PARAMETERS`, pydantic models) and checked
  when a spec is loaded; :func:`make_pruner` builds from the validated parameters, so a bad
  value fails with the parameter, the expected range and the received value (never Optuna's
  message from deep inside).
* ``auto`` is resolved by :func:`auto_pruner` from the problem and the budget (the rule and the
  benchmark behind it are in its docstring). For one objective it is
  :class:`FractionalHalvingPruner`: asynchronous successive halving whose rungs sit at
  fractions of the maximum step, so the same rule fits an objective that reports 4 steps
  (tuneops' fidelity schedule) or 500 (every epoch of a custom objective).
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

import math
import statistics
import warnings
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tuneops import _optuna, _study
from tuneops.errors import SpecError
from tuneops.families import FIDELITY_STEPS
from tuneops.pareto import pareto_mask
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
]

INTERMEDIATE_ATTR = _study.INTERMEDIATE  # user attr: {str(step): [value per objective]}
FIDELITY_ATTR = _study.FIDELITY  # trial user attr: {steps, n_steps, max_step, fit_s, pruned}
PRUNER_ATTR = _study.PRUNER  # study user attr: the pruner a run resolved (``auto`` made concrete)


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
) -> optuna.pruners.BasePruner:
    """Build the pruner ``name`` with keyword ``params``; ``auto`` looks at the problem.

    Args:
        max_step: the objective's last step when the caller knows it (a spec's fidelity
            schedule); a ``max_step`` parameter of the pruner wins; None: learned from the
            first completed trials.
        measured_after_last: the objective still measures something after its last step
            (a spec's serving cost: latency, size), so a multi-objective cut there saves that
            measurement; otherwise (``tune()``) the training is paid for and nothing is cut.

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


#: ``auto``: studies of fewer trials are not pruned.
SMALL_BUDGET = 10


#: ``auto``'s rungs (one objective): reduction factor and the first rung's fraction of the
#: maximum step. Chosen by benchmarks/bench_pruners.py (see :func:`auto_pruner`).
AUTO_REDUCTION_FACTOR = 3
AUTO_MIN_FRACTION = 1 / 9
#: ``auto`` with several objectives: Pareto pruning decides from this fraction of the maximum step.
AUTO_PARETO_WARMUP = 1 / 3


def auto_pruner(
    *,
    n_objectives: int = 1,
    n_trials: int | None = None,
    max_step: int | None = None,
    measured_after_last: bool = False,
) -> optuna.pruners.BasePruner:
    """The pruner ``auto`` resolves to, by budget (``n_trials``) and number of objectives.

    * Fewer than ``SMALL_BUDGET`` (10) trials: no pruning (every trial would be compared with
      too few others).
    * Several objectives: :class:`ParetoPruner` deciding from a third of the maximum step on
      (``warmup_fraction``; in the benchmark's replays deciding from a quarter or a half of
      the training kept every member of the final Pareto front and the full hypervolume), and
      never after the last step unless the objective still measures a serving cost there
      (``measured_after_last``: a spec's latency or size).
    * One objective, 10 trials or more, or no trial budget (a timeout or a compute budget):
      :class:`FractionalHalvingPruner` with reduction factor 3 and rungs at 1/9 and 1/3 of the
      maximum step (declared as ``max_step``, or learned from the completed trials): at each
      rung a trial goes on only if it is in the top third of the trials that reached it. With
      tuneops' fidelity schedule (27ths) the rungs are steps 3 and 9; with an objective that
      reports every one of 500 epochs, epochs 56 and 167; with one that reports 4 steps, steps
      1 and 2 (rungs that fall on the same step merge).

    Why (benchmarks/bench_pruners.py, figures in docs/benchmarks.md, "Pruning"): under a fixed
    compute budget, replayed on recorded real curves, the first rung at 1/27 and at 1/9 are
    the same rung on a spec's eighths (35 % of the compute to the no-pruning final quality
    saved in the median, the target reached in 86 % of the runs against 68 % without
    pruning); on MLPs reporting every epoch, a first rung at 1/27 (epoch 2 of 50) culled
    configurations at random (-39 % saving, reached 56 % against 94 %) where 1/9 saved 22 %
    and reached 84 %: the first rung must be where the curve already ranks configurations.
    Rungs at fractions fit the curve whatever the number of steps reported, where Optuna's
    ``SuccessiveHalvingPruner`` places them at absolute steps (``min_resource * rf**k``:
    epochs 2, 8, 32 of a 50-epoch curve; the previous ``auto``: -42 %, reached 52 %).
    Hyperband brackets (``n_brackets=3``) reached the target more often on the epoch curves
    (96 %) but saved nothing; no rule met the issue's targets on every source (see the doc).
    On tuneops' own schedule (27ths, recorded for 40 configurations on each of 5 PMLB sets) the
    rungs are steps 3 and 9 and ``auto`` saved 48 %, against 51 % for the same rungs knowing
    the final ranking: the rung structure, not the ranking, caps it near half, because 1/9 of
    a configuration's budget already costs about 21 % of its full fit. Rules that saved a few
    points more there (reduction factor 4; Optuna's successive halving at steps 2, 8, 32) lost
    the target in most runs on three of the five epoch sets, so the defaults stand.
    """
    if n_trials is not None and n_trials < SMALL_BUDGET:
        return optuna.pruners.NopPruner()
    if n_objectives > 1:
        return ParetoPruner(
            warmup_fraction=AUTO_PARETO_WARMUP,
            max_step=max_step,
            cut_at_last_step=measured_after_last,
        )
    return FractionalHalvingPruner(
        max_step=max_step, reduction_factor=AUTO_REDUCTION_FACTOR, min_fraction=AUTO_MIN_FRACTION
    )


def _is_off(study_attrs: Mapping[str, Any]) -> bool:
    return study_attrs.get(PRUNER_ATTR) == describe_pruner(optuna.pruners.NopPruner())


def record_pruner(
    study: optuna.Study,
    pruner: optuna.pruners.BasePruner,
    asked: str,
    n_trials: int | None,
    *,
    field: str,
) -> None:
    """Record the pruner a run resolved (``auto`` made concrete) and, when it prunes nothing,
    why, in the words of what was asked (``field``: ``search.pruner`` in a spec, ``pruner``
    in :func:`tuneops.tune`)."""
    study.set_user_attr(PRUNER_ATTR, describe_pruner(pruner))
    if isinstance(pruner, optuna.pruners.NopPruner):
        study.set_user_attr(_study.PRUNER_OFF, why_off(asked, n_trials, field=field))


def why_off(asked: str, n_trials: int | None, *, field: str) -> str:
    """Why pruner ``asked`` prunes nothing in a study of ``n_trials`` trials (pure)."""
    if asked == "auto" and n_trials is not None and n_trials < SMALL_BUDGET:
        return (
            f"{field} auto prunes studies of {SMALL_BUDGET} trials or more; this one asked "
            f"for {n_trials}"
        )
    return f"{field} auto chose no pruner" if asked == "auto" else f"{field}: {asked}"


def off_reason(study_attrs: Mapping[str, Any]) -> str:
    """Why a study ran without pruning: recorded by :func:`record_pruner`, else (a study of an
    earlier tuneops) read from the spec it records (pure)."""
    recorded = study_attrs.get(_study.PRUNER_OFF)
    if isinstance(recorded, str):
        return recorded
    search = (study_attrs.get(_study.SPEC) or {}).get("search") or {}
    asked = search.get("pruner", "auto")
    name = asked.get("name") if isinstance(asked, Mapping) else asked
    n_trials = search.get("n_trials")
    budget = n_trials if isinstance(n_trials, int) else None
    return why_off(str(name), budget, field="search.pruner")


def describe_pruner(pruner: optuna.pruners.BasePruner) -> str:
    """A short readable name of a built pruner, for results and logs."""
    if isinstance(pruner, (ParetoPruner, FractionalHalvingPruner)):
        return repr(pruner)
    fields = {
        k.lstrip("_"): v
        for k, v in vars(pruner).items()
        if isinstance(v, (int, float, str)) and not k.startswith("__")
    }
    inner = getattr(pruner, "_wrapped_pruner", None)
    if inner is not None:
        fields["wrapped"] = describe_pruner(inner)
    args = ", ".join(f"{k}={v}" for k, v in sorted(fields.items()))
    return f"{type(pruner).__name__}({args})"


# -- multi-objective pruning ----------------------------------------------------------------------
def intermediate_values(
    trial: FrozenTrial, n_objectives: int
) -> dict[int, tuple[float | None, ...]]:
    """The intermediate objective vectors a trial reported, ``{step: (value per objective)}``.

    Read from tuneops' user attribute (any study), else from Optuna's own record (one objective).
    """
    stored = trial.user_attrs.get(INTERMEDIATE_ATTR)
    if stored:
        return {int(k): tuple(v) for k, v in stored.items()}
    if n_objectives == 1:
        return {step: (value,) for step, value in trial.intermediate_values.items()}
    return {}


def dominates(
    a: Sequence[float | None], b: Sequence[float | None], directions: Sequence[StudyDirection]
) -> bool:
    """``a`` is at least as good as ``b`` on every objective both know, and better on one.

    Objectives unknown (None) in either vector are left out of the comparison.
    """
    better = False
    compared = 0
    for x, y, d in zip(a, b, directions, strict=False):
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

    The rule: at step ``s`` (``s >= n_warmup_steps``, or ``s >= warmup_fraction * max_step``
    when ``warmup_fraction`` is given), once ``n_startup_trials`` completed trials reported a
    vector at ``s``, prune when at least ``max(min_dominating, dominated_fraction * n)`` of
    those ``n`` vectors dominate the trial's vector at ``s``. Dominance is Pareto dominance
    over the objectives both vectors know (a component may be ``None``: not measured at that
    step). With one objective this is the percentile rule.

    Never at or after the maximum step (declared ``max_step``, else the largest step a
    completed trial reported) unless ``cut_at_last_step``: by then a custom objective has paid
    for the whole training and a cut saves nothing; a spec objective that still measures a
    serving cost (latency, size) after its last step saves that measurement, and tuneops
    sets ``cut_at_last_step`` for it.

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
        warmup_fraction: float | None = None,
        max_step: int | None = None,
        cut_at_last_step: bool = False,
    ) -> None:
        check_pruner(
            "pareto",
            {
                "n_startup_trials": n_startup_trials,
                "n_warmup_steps": n_warmup_steps,
                "dominated_fraction": dominated_fraction,
                "min_dominating": min_dominating,
                **({"warmup_fraction": warmup_fraction} if warmup_fraction is not None else {}),
                **({"max_step": max_step} if max_step is not None else {}),
            },
            field="ParetoPruner",
        )
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps
        self.dominated_fraction = dominated_fraction
        self.min_dominating = min_dominating
        self.warmup_fraction = warmup_fraction
        self.max_step = max_step
        self.cut_at_last_step = cut_at_last_step

    def __repr__(self) -> str:
        warmup = (
            f"warmup_fraction={self.warmup_fraction:.3g}"
            if self.warmup_fraction is not None
            else f"n_warmup_steps={self.n_warmup_steps}"
        )
        return (
            f"ParetoPruner(n_startup_trials={self.n_startup_trials}, {warmup}, "
            f"dominated_fraction={self.dominated_fraction}, min_dominating={self.min_dominating}, "
            f"max_step={self.max_step if self.max_step is not None else 'learned'}, "
            f"cut_at_last_step={self.cut_at_last_step})"
        )

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        directions = study.directions
        mine = intermediate_values(trial, len(directions))
        if not mine:
            return False
        step = max(mine)
        if self.warmup_fraction is None and step < self.n_warmup_steps:
            return False
        peers = []
        learned = 0
        ends = set()  # the last steps completed trials reported
        for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            record = intermediate_values(other, len(directions))
            if record:
                last = max(record)
                learned = max(learned, last)
                ends.add(last)
            vector = record.get(step)
            if vector is not None:
                peers.append(vector)
        max_step = self.max_step if self.max_step is not None else (learned or None)
        if not self.cut_at_last_step and (
            (max_step is not None and step >= max_step)
            # a step where completed trials ended may be this trial's last too (epochs as a
            # hyperparameter: trials of 25 epochs were cut at step 25, fully trained)
            or (self.max_step is None and step in ends)
        ):
            return False  # the training is paid for: a cut saves nothing
        if self.warmup_fraction is not None and (
            max_step is None or step < self.warmup_fraction * max_step
        ):
            return False
        if len(peers) < self.n_startup_trials:
            return False
        n_dominating = sum(dominates(p, mine[step], directions) for p in peers)
        return n_dominating >= max(self.min_dominating, self.dominated_fraction * len(peers))


def rung_steps(
    max_step: int, *, reduction_factor: int = 3, min_fraction: float = 1 / 27
) -> list[int]:
    """The steps of the rungs of :class:`FractionalHalvingPruner`, below ``max_step``.

    Fractions ``min_fraction * reduction_factor**k`` below 1 of ``max_step``, rounded up to a
    whole step (at least step 1); rungs that fall on the same step merge, so a coarse schedule
    gets fewer rungs rather than a rung before anything is trained.

    Example::

        >>> rung_steps(27), rung_steps(500), rung_steps(8), rung_steps(4)
        ([1, 3, 9], [19, 56, 167], [1, 3], [1, 2])
    """
    steps: list[int] = []
    fraction = min_fraction
    while fraction < 1 - 1e-9:
        step = max(1, math.ceil(fraction * max_step - 1e-9))
        if step < max_step and (not steps or step > steps[-1]):
            steps.append(step)
        fraction *= reduction_factor
    return steps


class FractionalHalvingPruner(optuna.pruners.BasePruner):
    """Asynchronous successive halving with rungs at fractions of the maximum step.

    The rule of Optuna's ``SuccessiveHalvingPruner`` (asynchronous successive halving, Li et
    al. 2020): when a trial reaches a rung, it goes on only if its value is among the top
    ``1 / reduction_factor`` of the values every trial had on reaching that rung (the first
    ``reduction_factor - 1`` trials at a rung go on only if they are the best so far). The
    rungs are not absolute steps but fractions of the maximum step
    (:func:`rung_steps`: ``min_fraction``, ``min_fraction * reduction_factor``, ... below 1),
    so an objective reporting 4 steps and one reporting 500 epochs are both cut at the same
    share of their training. The maximum step is ``max_step`` when declared (a spec's
    fidelity schedule, or a parameter), else the largest step a completed trial reported:
    until a trial has completed nothing is pruned.

    With ``n_brackets`` > 1 this is Hyperband (Li et al. 2018) as Optuna runs it: each trial
    falls in a bracket fixed by the study's name and its number, bracket ``b`` starts its rungs
    ``reduction_factor**b`` times later, and trials compete within their bracket only, so
    some configurations are judged late where early steps rank badly.

    A trial's value at a rung is the value it reported at the first step at or after the
    rung (before the maximum step); rungs are checked as a trial crosses them, from what it
    reported, so nothing is written to the storage. Never prunes at or after the maximum step.
    One objective (several: :class:`ParetoPruner`).

    Example::

        >>> import optuna
        >>> pruner = FractionalHalvingPruner(max_step=500)
        >>> pruner.rungs(500)
        [19, 56, 167]
        >>> study = optuna.create_study(direction="maximize", pruner=pruner)
    """

    def __init__(
        self,
        *,
        max_step: int | None = None,
        reduction_factor: int = 3,
        min_fraction: float = 1 / 27,
        n_brackets: int = 1,
    ) -> None:
        check_pruner(
            "fractional_halving",
            {
                "reduction_factor": reduction_factor,
                "min_fraction": min_fraction,
                "n_brackets": n_brackets,
                **({"max_step": max_step} if max_step is not None else {}),
            },
            field="FractionalHalvingPruner",
        )
        self.max_step = max_step
        self.reduction_factor = reduction_factor
        self.min_fraction = min_fraction
        self.n_brackets = n_brackets
        # Finished trials never change: their last step and their value at a rung are read once.
        self._last_steps: dict[tuple[str, int], int] = {}
        self._at_rung: dict[tuple[str, int, int, int], float | None] = {}
        self._rungs: dict[tuple[int, int], list[int]] = {}

    def __repr__(self) -> str:
        brackets = f", n_brackets={self.n_brackets}" if self.n_brackets > 1 else ""
        return (
            "FractionalHalvingPruner(max_step="
            f"{self.max_step if self.max_step is not None else 'learned'}, "
            f"reduction_factor={self.reduction_factor}, "
            f"min_fraction={self.min_fraction:.4g}{brackets})"
        )

    def rungs(self, max_step: int, bracket: int = 0) -> list[int]:
        """The rung steps for ``max_step`` (see :func:`rung_steps`) in ``bracket`` (its first
        rung ``reduction_factor**bracket`` times later than bracket 0's)."""
        key = (max_step, bracket)
        if key not in self._rungs:
            self._rungs[key] = rung_steps(
                max_step,
                reduction_factor=self.reduction_factor,
                min_fraction=self.min_fraction * self.reduction_factor**bracket,
            )
        return self._rungs[key]

    def bracket(self, study_name: str, number: int) -> int:
        """The Hyperband bracket of a trial: fixed by the study's name and the trial's number
        (as Optuna's ``HyperbandPruner`` does; tuneops names studies deterministically)."""
        if self.n_brackets == 1:
            return 0
        return zlib.crc32(f"{study_name}_{number}".encode()) % self.n_brackets

    def learned_max_step(
        self, study: optuna.Study, trials: Sequence[FrozenTrial] | None = None
    ) -> int | None:
        """``max_step`` if declared, else the largest last step of the study's completed trials."""
        if self.max_step is not None:
            return self.max_step
        if trials is None:
            trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = 0
        for t in trials:
            if t.state != TrialState.COMPLETE:
                continue
            key = (study.study_name, t.number)
            last = self._last_steps.get(key)
            if last is None:
                last = self._last_steps[key] = max(t.intermediate_values, default=0)
            best = max(best, last)
        return best or None

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        values = trial.intermediate_values
        if not values:
            return False
        step = max(values)
        value = values[step]
        # Trials are read only when needed: to learn the maximum step, or at a rung.
        trials = None if self.max_step is not None else study.get_trials(deepcopy=False)
        max_step = self.learned_max_step(study, trials)
        if max_step is None or step >= max_step:
            return False
        if math.isnan(value):
            return True
        previous = (
            step - 1 if step - 1 in values else max((s for s in values if s < step), default=0)
        )
        bracket = self.bracket(study.study_name, trial.number)
        crossed = [r for r in self.rungs(max_step, bracket) if previous < r <= step]
        if not crossed:
            return False
        if trials is None:
            trials = study.get_trials(deepcopy=False)
        maximize = study.direction == StudyDirection.MAXIMIZE
        for rung in crossed:
            competing = [value]
            for other in trials:
                if (
                    other.number != trial.number
                    and self.bracket(study.study_name, other.number) == bracket
                ):
                    at = self._value_at(study.study_name, other, rung, max_step)
                    if at is not None and not math.isnan(at):
                        competing.append(at)
            if not _promotable(value, competing, self.reduction_factor, maximize):
                return True
        return False

    def _value_at(
        self, study_name: str, trial: FrozenTrial, rung: int, max_step: int
    ) -> float | None:
        """What ``trial`` reported on reaching ``rung`` (None: it never did before ``max_step``)."""
        key = (study_name, trial.number, rung, max_step)
        if key in self._at_rung:
            return self._at_rung[key]
        values = trial.intermediate_values
        if rung in values:
            at: float | None = values[rung]
        else:
            later = [s for s in values if rung <= s < max_step]
            at = values[min(later)] if later else None
        if trial.state.is_finished():
            self._at_rung[key] = at
        return at


def _promotable(
    value: float, competing: list[float], reduction_factor: int, maximize: bool
) -> bool:
    """Optuna's rule (``_is_trial_promotable_to_next_rung``): in the top ``1/reduction_factor``
    of ``competing`` (which holds ``value``); the best of them while fewer than that compete."""
    index = max(len(competing) // reduction_factor - 1, 0)
    ordered = sorted(competing, reverse=maximize)
    return value >= ordered[index] if maximize else value <= ordered[index]


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
        trial.report(float(vector[0]), step)  # type: ignore[arg-type]  # checked finite above
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
    finished = [
        t for t, _ in counted if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    ] + late
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
        **({"off": off_reason(study.user_attrs)} if _is_off(study.user_attrs) else {}),
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
