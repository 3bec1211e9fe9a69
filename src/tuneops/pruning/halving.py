"""Asynchronous successive halving with rungs at fractions of the maximum step
(:class:`FractionalHalvingPruner`): the same rule fits an objective that reports 4 steps or 500."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tuneops.spec import pruner_parameters


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
        pruner_parameters(
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
