"""Multi-objective pruning, which Optuna does not do (its issue #3450): :class:`ParetoPruner`
stops a trial whose intermediate objective vector is dominated by enough peers at the same step.
The vectors live in the trial's user attribute ``tuneops:intermediate``
(:func:`tuneops.pruning.report` writes them)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tuneops import _study
from tuneops.spec import pruner_parameters

INTERMEDIATE_ATTR = _study.INTERMEDIATE  # user attr: {str(step): [value per objective]}


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
        pruner_parameters(
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
