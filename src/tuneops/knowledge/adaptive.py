"""The adaptive warm start: each early trial chosen from past tasks *that agree with this one so
far*.

A static portfolio (:func:`tuneops.knowledge.portfolio.portfolio`) fixes its configurations
before the first result. The adaptive warm start (``warm_start.auto.strategy: adaptive``) keeps
the same knowledge, the nearest past tasks and their tried configurations, and decides one
trial at a time:

* **The zero-shot head** (issue 18): the family's first :data:`HEAD` proposals are its greedy
  portfolio over *every* past task (:func:`tuneops.knowledge.portfolio.greedy_portfolio`): the
  configuration best on average (a robust default), then those that cover the tasks it
  misses. No result is needed to choose them, and the adaptive weights below need two.
* **Candidates** are the ``per_neighbour`` best configurations of every neighbour, with each
  neighbour's estimated regret for every candidate (the score of the nearest configuration
  tried there, as the portfolio estimates it).
* **Weights**: a neighbour starts with weight 1/rank of its meta-feature distance. Once the new
  study has results, a neighbour whose regrets order the observed configurations the wrong way
  round loses weight: ``w = prior * exp(-n * discordant share of the observed pairs)``. This is
  the ranking loss of RGPE (Feurer, Letham, Bakshy 2018, "Scalable meta-learning for Bayesian
  optimization"), with the neighbours' own trial histories as the surrogates.
* **The next trial** is the candidate with the lowest weighted mean regret that is not within
  ``min_distance`` of a configuration the study already has.

:func:`plan_family` (what to store) and :func:`propose` (the next candidate) are pure.
:class:`WarmStartSampler` wraps the study's sampler: for the trials of the warm-start range it
proposes (and tags the trial ``warm_start``), for every other trial it defers to the wrapped
sampler. The plan is stored in the study (system attr :data:`PLAN_ATTR`, about 100 KB for a
2-parameter space), so every worker, local or remote, proposes from the same plan, and a resumed
study continues it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tuneops import _optuna, _study
from tuneops._study import WARM_START as TAG
from tuneops.knowledge.base import add_prefix, quality_objective, strip_prefix
from tuneops.knowledge.portfolio import (
    COST_SCALE,
    Neighbour,
    _distance_on_own,
    _pairwise,
    _regrets,
    _unit_matrix,
    cost_scores,
    fit_to_space,
    greedy_portfolio,
)
from tuneops.space import Param

__all__ = ["PLAN_ATTR", "HEAD", "plan_family", "propose", "head_proposal", "WarmStartSampler"]

PLAN_ATTR = "tuneops:warm_start_plan"  # study system attr: {"first", "size", "order", "families"}
MIN_DISTANCE = 0.02  # unit-scale RMS: closer than this to a tried configuration = the same one
#: Proposals of each family taken from its greedy zero-shot portfolio before the adaptive
#: choice: the robust default, then the configuration that covers what it misses (the
#: adaptive weights need two results to order anything).
HEAD = 3


def plan_family(
    neighbours: Sequence[Neighbour],
    space: Mapping[str, Param],
    *,
    per_neighbour: int = 30,
    tasks: Sequence[Neighbour] = (),
    head: int | None = None,
    cost_weight: float = 0.0,
) -> dict[str, Any]:
    """What the adaptive warm start of one family needs, as plain data (stored in the study).

    Returns ``{"candidates": [params], "sources": [str], "regret": [[float]] (neighbours x
    candidates), "prior": [float], "head": [int], "cost": [float], "cost_weight": float,
    "neighbours": [dataset]}``; no candidates when the neighbours have no configurations.

    ``tasks``: every past task of the family (as neighbours, any order): the first ``head``
    proposals (default :data:`HEAD`) are their greedy zero-shot portfolio
    (:func:`~tuneops.knowledge.portfolio.greedy_portfolio`: the configuration best on average
    first), the indices of which are ``head``; the adaptive choice takes over after them.
    ``cost_weight`` > 0 (the spec also minimises latency or size) makes both prefer
    configurations that were cheap to serve (``cost``: the serving-cost proxy on [0, 1]).
    """
    candidates: list[dict[str, Any]] = []
    sources: list[str] = []
    kept: dict[str, int] = {}  # a configuration several neighbours share is one candidate

    def add(params: dict[str, Any], source: str) -> int:
        key = repr(sorted(params.items()))
        if key not in kept:
            kept[key] = len(candidates)
            candidates.append(params)
            sources.append(source)
        return kept[key]

    head = HEAD if head is None else head
    heads: list[int] = []
    if tasks and head > 0:
        for i, rec in enumerate(greedy_portfolio(tasks, space, size=head, cost_weight=cost_weight)):
            label = "robust default" if i == 0 else "covers the tasks the others miss"
            source = f"kb:portfolio#{i + 1} ({label}; from {rec.dataset}#{rec.rank + 1})"
            heads.append(add(dict(rec.params), source))
    for n in neighbours:
        for rank, (raw, _) in enumerate(n.entry.configs[:per_neighbour]):
            params, _ = fit_to_space(raw, space)
            add(params, f"kb:{n.entry.dataset}#{rank + 1} (distance {n.distance:.3g})")
    if not candidates or not neighbours:
        return {
            "candidates": [],
            "sources": [],
            "regret": [],
            "prior": [],
            "head": [],
            "cost": [],
            "cost_weight": 0.0,
            "neighbours": [],
        }
    unit, categorical = _unit_matrix(candidates, space)
    regret = _regrets(neighbours, unit, space, categorical)
    prior = 1.0 / np.arange(1, len(neighbours) + 1)
    family = neighbours[0].entry.family
    cost = cost_scores(family, candidates) if cost_weight else np.zeros(len(candidates))
    return {
        "candidates": candidates,
        "sources": sources,
        "regret": np.round(regret, 6).tolist(),
        "prior": (prior / prior.sum()).tolist(),
        "head": heads,
        "cost": np.round(cost, 4).tolist(),
        "cost_weight": float(cost_weight),
        "neighbours": [n.entry.dataset for n in neighbours],
        "distances": [round(float(n.distance), 6) for n in neighbours],
    }


def propose(
    plan: Mapping[str, Any],
    space: Mapping[str, Param],
    observed: Sequence[tuple[Mapping[str, Any], float]],
    tried: Sequence[Mapping[str, Any]] = (),
    *,
    maximize: bool = True,
) -> int | None:
    """The index of the next candidate of ``plan`` (from :func:`plan_family`); None if none is left.

    Args:
        observed: (params, value) of the study's completed trials of this family.
        tried: further configurations not to propose again (running trials).
        maximize: the direction of the values.
    """
    if not plan["candidates"]:
        return None
    unit, categorical = _unit_matrix(plan["candidates"], space)
    regret = np.asarray(plan["regret"], dtype=float)
    weights = np.asarray(plan["prior"], dtype=float)
    seen = [p for p, _ in observed] + list(tried)
    if len(observed) >= 2:
        points, _ = _unit_matrix([p for p, _ in observed], space)
        at = regret[
            :, np.argmin(_pairwise(points, unit, categorical), axis=1)
        ]  # neighbours x observed
        values = np.array([v for _, v in observed]) * (1.0 if maximize else -1.0)
        i, j = np.triu_indices(len(observed), k=1)
        keep = values[i] != values[j]
        if keep.any():
            i, j = i[keep], j[keep]
            better = values[i] > values[j]  # i beat j on this task
            predicted = np.sign(
                at[:, j] - at[:, i]
            )  # +1: the neighbour says i beats j (lower regret)
            discordant = np.where(predicted == 0, 0.5, (predicted > 0) != better)
            weights = weights * np.exp(-len(observed) * discordant.mean(axis=1))
            weights = weights / weights.sum()
    score = weights @ regret
    cost_weight = float(plan.get("cost_weight", 0.0))
    if cost_weight > 0 and len(score) > 1 and np.ptp(score) > 0:
        # regrets on [0, 1] among the candidates, so the cost proxy (also on [0, 1]) weighs in
        cost = np.asarray(plan["cost"], dtype=float)
        score = (score - score.min()) / np.ptp(score) + COST_SCALE * cost_weight * cost
    if seen:
        points, _ = _unit_matrix(seen, space)
        near = _distance_on_own(unit, points, categorical).min(axis=1) < MIN_DISTANCE
        score = np.where(near, np.inf, score)
    best = int(np.argmin(score))
    return None if not np.isfinite(score[best]) else best


def head_proposal(
    plan: Mapping[str, Any],
    space: Mapping[str, Param],
    position: int,
    seen: Sequence[Mapping[str, Any]],
) -> int | None:
    """The candidate index of the family's ``position``-th proposal while it is in the plan's
    zero-shot head (and not already tried), else None (the adaptive choice decides)."""
    head = list(plan.get("head") or [])
    if position >= len(head):
        return None
    index = int(head[position])
    if seen:
        unit, categorical = _unit_matrix([plan["candidates"][index]], space)
        points, _ = _unit_matrix(list(seen), space)
        if _distance_on_own(unit, points, categorical).min() < MIN_DISTANCE:
            return None
    return index


class WarmStartSampler(optuna.samplers.BaseSampler):
    """Proposes the trials of the warm-start range from the study's plan; defers otherwise.

    Args:
        base: the sampler for every other trial (and for any parameter a proposal leaves out).
        spaces: the search space of each family, by family name (as the objective has them).
    """

    def __init__(
        self, base: optuna.samplers.BaseSampler, spaces: Mapping[str, Mapping[str, Param]]
    ) -> None:
        self._base = base
        self._spaces = spaces
        self._plan: Mapping[str, Any] | None = None
        self._quality: tuple[str | None, bool] | None = (
            None  # (metric, maximize) the results are ranked by
        )
        self._proposals: dict[int, dict[str, Any]] = {}  # trial number -> trial params
        self._past_range: int | None = None  # a trial number at which the range had ended

    def _plan_of(self, study: optuna.Study) -> Mapping[str, Any]:
        if self._plan is None:
            self._plan = _optuna.study_system_attrs(study).get(PLAN_ATTR) or {}
        return self._plan

    def _quality_of(self, study: optuna.Study) -> tuple[str | None, bool]:
        """The study's first quality metric (what the past tasks' regrets are in), else its first
        objective."""
        if self._quality is None:
            found = quality_objective(_optuna.study_user_attrs(study))
            self._quality = (
                (found[0], found[1] == "maximize")
                if found
                else (None, study.directions[0] == StudyDirection.MAXIMIZE)
            )
        return self._quality

    def _position(self, study: optuna.Study, number: int, first: int) -> int:
        """Trial ``number``'s place in the warm-start range: the trials from ``first`` before it
        that the sampler proposed. A queued trial (the retry of an abandoned trial, its
        configuration again) and one retired unrun take no place: by trial number, each retry
        in the range took one of its proposals, and its trials were that many fewer."""
        return sum(
            1
            for t in _optuna.read_trials(study)
            if first <= t.number < number
            and "fixed_params" not in t.system_attrs
            and not _study.is_retired(t)
        )

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)
        plan = self._plan_of(study)
        first, size = int(plan.get("first", 0)), int(plan.get("size", 0))
        if (
            trial.number < first
            or "fixed_params" in trial.system_attrs
            or (self._past_range is not None and trial.number >= self._past_range)
        ):
            return  # not in the warm-start range, or a queued trial (explicit, or a retry)
        position = self._position(study, trial.number, first) if trial.number > first else 0
        if position >= size:
            self._past_range = trial.number  # places only grow with the number: read no more
            return
        families = list(self._spaces)
        family = plan["order"][position % len(plan["order"])]
        metric, maximize = self._quality_of(study)
        observed, tried = _trials_of(study, family, families, metric, exclude=trial.number)
        fam_plan = plan["families"][family]
        index = head_proposal(
            fam_plan,
            self._spaces[family],
            position // len(plan["order"]),
            [p for p, _ in observed] + tried,
        )
        if index is not None:
            source = fam_plan["sources"][index]
        else:
            index = propose(fam_plan, self._spaces[family], observed, tried, maximize=maximize)
            if index is None:
                return
            source = f"{fam_plan['sources'][index]}, adaptive after {len(observed)} result(s)"
        self._proposals[trial.number] = add_prefix(fam_plan["candidates"][index], family, families)
        _optuna.set_trial_user_attr(study, trial, TAG, source)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        proposal = self._proposals.get(trial.number)
        if proposal is None:
            return self._base.sample_relative(study, trial, search_space)
        return {name: value for name, value in proposal.items() if name in search_space}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        proposal = self._proposals.get(trial.number)
        if proposal is not None and param_name in proposal:
            return proposal[param_name]
        return self._base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._proposals.pop(trial.number, None)
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()


def _trials_of(
    study: optuna.Study, family: str, families: Sequence[str], metric: str | None, *, exclude: int
) -> tuple[list[tuple[dict[str, Any], float]], list[dict[str, Any]]]:
    """(params, value of ``metric``, else the first objective) of the completed trials of
    ``family``, and the params of its other trials (running, pruned, failed, or without that
    value): none is proposed again (a pruned warm trial was, four times in a row)."""
    observed, tried = [], []
    # From the storage: with Hyperband, a sampler is handed a study that shows one bracket only.
    states = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED, TrialState.FAIL)
    for t in _optuna.read_trials(study, states=states):
        if (
            t.number == exclude
            or (len(families) > 1 and t.params.get("family") != family)
            or not t.params
        ):
            continue
        params = strip_prefix(t.params, family)
        value = (
            (t.user_attrs.get("metrics") or {}).get(metric)
            if metric
            else (t.values[0] if t.values else None)
        )
        if t.state == TrialState.COMPLETE and value is not None and math.isfinite(value):
            observed.append((params, float(value)))
        else:
            tried.append(params)
    return observed, tried
