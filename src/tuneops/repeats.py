"""A configuration tried before: its outcome reused instead of fitted again.

Optuna's samplers propose a configuration they have already evaluated as often as it looks
best: on a discrete space nothing stops them. A 100-trial knn study on pmlb:wdbc completed 21
trials of 6 distinct configurations (one of them 15 times). The spec's objective is
deterministic for a configuration (the study's folds and seed are fixed), so fitting it again
spends the compute for the same accuracy, and re-measuring a noisy figure (latency) lets the
front keep the luckiest of several draws of the same model.

So a trial whose parameters equal those of a completed trial of its study replays that trial's
intermediate values to the pruner (which stops it where a new fit would have been stopped) and
takes its recorded outcome (metrics, their spread, the cost record); one whose parameters equal
those of a pruned trial replays its values the same way, and is fitted only when the pruner lets
it past them. Either way, a trial that fitted nothing writes ``repeat_of`` (the earlier trial's
number). It still spends a place of ``n_trials`` (the sampler would otherwise propose it again
and again) but no compute of a compute budget. Failed and abandoned trials are not reused.

:class:`Repeats` keeps the configurations of the study's settled prefix (trials that are all
finished) indexed by their parameters, and scans only the trials still open past it, so its
cost per trial does not grow with the study.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuneops import _optuna, _study

__all__ = ["OUTCOME_KEYS", "REPEAT_OF", "Repeats", "replayable", "reusable_outcome"]

REPEAT_OF = _study.REPEAT_OF
#: The user attributes a reused trial takes from the earlier one (written by the objective).
OUTCOME_KEYS = (_study.METRICS, _study.METRICS_STD, _study.COST)


def _key(params: Mapping[str, Any]) -> Hashable:
    return tuple(sorted(params.items()))


def reusable_outcome(trial: FrozenTrial, metrics: Collection[str]) -> bool:
    """Whether ``trial``'s recorded outcome can stand for a new trial of the same parameters:
    it completed (not abandoned) and recorded every metric in ``metrics``."""
    if trial.state != TrialState.COMPLETE or _study.ABANDONED in trial.user_attrs:
        return False
    attrs = trial.user_attrs
    recorded = attrs.get(_study.METRICS)
    return (
        all(key in attrs for key in OUTCOME_KEYS)
        and isinstance(recorded, dict)
        and all(m in recorded for m in metrics)
    )


def replayable(trial: FrozenTrial) -> bool:
    """Whether ``trial`` was pruned with intermediate values a repeat can replay."""
    return (
        trial.state == TrialState.PRUNED
        and _study.ABANDONED not in trial.user_attrs
        and bool(trial.intermediate_values or trial.user_attrs.get(_study.INTERMEDIATE))
    )


@dataclass
class _Index:
    upto: int = 0  # trials 0..upto-1 are all finished
    done: dict[Hashable, list[FrozenTrial]] = field(default_factory=dict)  # completed, in order
    pruned: dict[Hashable, FrozenTrial] = field(default_factory=dict)  # first pruned


class Repeats:
    """The completed and pruned configurations of each study a process works on, by their
    parameters.

    ``metrics``: what a reusable completed trial must have recorded (the spec's measured
    metrics)."""

    def __init__(self, metrics: Collection[str]) -> None:
        self.metrics = tuple(metrics)
        self._index: weakref.WeakKeyDictionary[optuna.Study, _Index] = (
            weakref.WeakKeyDictionary()
        )

    def __getstate__(self) -> dict[str, Any]:  # a copy in another process reads its own
        return {"metrics": self.metrics}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["metrics"])  # type: ignore[misc]

    def earlier(
        self,
        trial: optuna.trial.BaseTrial,
        alike: Callable[[FrozenTrial], bool] | None = None,
    ) -> FrozenTrial | None:
        """The trial of ``trial``'s study with the same parameters whose outcome it can take
        (the first completed one that ``alike`` accepts: measured as ``trial`` would be) or,
        failing that, whose pruning it can replay (the first pruned one); None when there is
        none or ``trial`` is outside a study (a ``FixedTrial``).

        With ``alike``, a configuration completed before a change of measurement (a study
        resumed with another serving path or fit threads) and fitted again since is taken
        from that new fit: only its first trial was looked at, and every later trial of it
        was fitted again (9 fits of one knn configuration in a 30-trial run)."""
        accept = alike or (lambda t: True)
        study = getattr(trial, "study", None)
        if not isinstance(study, optuna.Study):
            return None
        key = _key(trial.params)
        trials = _optuna.read_trials(study)
        index = self._index.setdefault(study, _Index())
        if index.upto > len(trials):  # another study object of the same name: start over
            index = self._index[study] = _Index()
        while index.upto < len(trials) and trials[index.upto].state.is_finished():
            t = trials[index.upto]
            if reusable_outcome(t, self.metrics):
                if REPEAT_OF not in t.user_attrs:  # its earlier trial, listed before it, stands
                    index.done.setdefault(_key(t.params), []).append(t)
            elif replayable(t):
                index.pruned.setdefault(_key(t.params), t)
            index.upto += 1
        found = next((t for t in index.done.get(key, ()) if accept(t)), None)
        if found is not None:
            return found
        number = getattr(trial, "number", None)
        pruned = index.pruned.get(key)
        for t in trials[index.upto :]:  # finished out of order while an earlier one runs
            if t.number == number or _key(t.params) != key:
                continue
            if reusable_outcome(t, self.metrics) and accept(t):
                return t
            if pruned is None and replayable(t):
                pruned = t
        return pruned
