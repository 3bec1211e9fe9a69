"""The staged strategy (``search.strategy: staged``): explore, model, refine, then verify.

The seed's table 5.4 as an opt-in, on Optuna's own samplers:

=============  ===================  ======================================================
phase          share of the trials  sampler
=============  ===================  ======================================================
explore        15 % (20 to 50)      random: an unbiased picture of the space, every trial
                                    trained to the end (full-fidelity references)
model          the rest (~55 %)     TPE as ``auto`` configures it (multivariate for one
                                    objective, independent for several, grouped for a
                                    conditional space), with the study's pruner
refine         30 %                 GP around what the model phase found (a space of at
                                    most 16 unconditional parameters, one or two
                                    objectives, PyTorch installed), configured as
                                    ``auto``'s GP stage (:func:`~tuneops.samplers.gp_settings`);
                                    else CMA-ES started at the best trial so far (one
                                    objective, numbers only, ``cmaes`` installed); else TPE
                                    with 4x the candidates per trial (more exploitation)
verify         after the trials     the top-k candidates re-evaluated with more CV folds
                                    and repeats (other fold seeds); mean and 95 % CI per
                                    objective, before selection
=============  ===================  ======================================================

Phases are a function of the trial number and the study's stored budget (``tuneops:budget``,
:func:`tuneops._study.budget`), so every worker and a resumed run put a trial in the same
phase; a resumed run with another budget stretches the phases over the new budget (trials
already run keep their results). The plan is recorded in the study user attribute
``tuneops:strategy`` (:func:`record_strategy`), the verification is added to it
(:func:`verify_top`), and :func:`strategy_section` is its section in the results document.

:class:`StagedSampler` is an ordinary Optuna sampler and :class:`StagedPruner` an ordinary
pruner: both work on any Optuna study.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import statistics
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from tuneops import _optuna, _study, pareto
from tuneops.metrics import METRICS
from tuneops.samplers import (
    GP_MAX_OBJECTIVES,
    GP_MAX_PARAMS,
    RoutingSampler,
    SpaceKind,
    Stage,
    _space_of_trials,
    build_gp,
    build_stage,
    describe_space,
    gp_available,
    stage_seed,
)

# progress lines the CLI prints (tuneops.cli._common.configure)
_status = logging.getLogger("tuneops.status")

__all__ = [
    "STRATEGIES",
    "Phase",
    "staged_phases",
    "StagedSampler",
    "StagedPruner",
    "strategy_of",
    "record_strategy",
    "phase_of",
    "top_candidates",
    "verify_top",
    "strategy_section",
    "strategy_summary",
]

STRATEGIES = ("staged",)
EXPLORE_SHARE, REFINE_SHARE = 0.15, 0.30
EXPLORE_MIN, EXPLORE_MAX = 20, 50


@dataclass(frozen=True)
class Phase:
    """Trials ``start`` to ``end - 1`` (by number) run with ``sampler``; ``pruning``: the study's
    pruner may stop them."""

    name: str
    start: int
    end: int
    sampler: str
    pruning: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.name,
            "from_trial": self.start,
            "to_trial": self.end,
            "sampler": self.sampler,
            "pruning": self.pruning,
        }


def _cmaes_available() -> bool:
    """Whether Optuna's CmaEsSampler can run here (it needs the ``cmaes`` package)."""
    return importlib.util.find_spec("cmaes") is not None


def refine_sampler(
    n_objectives: int, space: SpaceKind | None, *, gp: bool | None = None, cmaes: bool | None = None
) -> str:
    """The refine phase's sampler: ``gp``, ``cmaes`` or ``tpe`` (see the module docstring)."""
    gp = gp_available() if gp is None else gp
    cmaes = _cmaes_available() if cmaes is None else cmaes
    if space is not None and space.conditional:
        return "tpe"
    small = space is None or space.n_params <= GP_MAX_PARAMS
    if gp and n_objectives <= GP_MAX_OBJECTIVES and small:  # GP lost to TPE on 3 objectives
        return "gp"
    if (
        cmaes
        and n_objectives == 1
        and space is not None
        and space.kind in ("continuous", "integer")
    ):
        return "cmaes"
    return "tpe"


def staged_phases(
    n_trials: int,
    *,
    n_objectives: int = 1,
    space: SpaceKind | None = None,
    gp: bool | None = None,
    cmaes: bool | None = None,
) -> list[Phase]:
    """The phases of a study of ``n_trials`` trials (a pure function of its arguments).

    Example::

        >>> [(p.name, p.start, p.end) for p in staged_phases(200, gp=True)]
        [('explore', 0, 30), ('model', 30, 140), ('refine', 140, 200)]
    """
    if n_trials < 1:
        raise ValueError(
            f"n_trials: expected a positive budget for the staged strategy, received {n_trials}"
        )
    explore = min(
        max(round(EXPLORE_SHARE * n_trials), EXPLORE_MIN), EXPLORE_MAX, max(n_trials // 3, 1)
    )
    refine = min(round(REFINE_SHARE * n_trials), n_trials - explore)
    model_end = n_trials - refine
    phases = [Phase("explore", 0, explore, "random", False)]
    if model_end > explore:
        phases.append(Phase("model", explore, model_end, "tpe", True))
    if refine > 0:
        phases.append(
            Phase(
                "refine",
                model_end,
                n_trials,
                refine_sampler(n_objectives, space, gp=gp, cmaes=cmaes),
                False,
            )
        )
    return phases


def phase_of(phases: Sequence[Phase], place: int) -> Phase:
    """The phase of the trial at ``place`` in the budget (:func:`place_in_budget`); places past
    the budget (a time-only run) belong to the last phase."""
    for phase in phases:
        if phase.start <= place < phase.end:
            return phase
    return phases[-1]


def place_in_budget(trials: Sequence[FrozenTrial], number: int) -> int:
    """Trial ``number``'s place in the budget: how many counted trials are older, the rule the
    budget itself counts by (:mod:`tuneops.runner`). An abandoned trial holds no place, so its
    retry takes one in the phase the abandoned trial had (by trial number, a trial abandoned in
    the model phase was retried in the refine phase, with pruning off, and the refine phase ran
    more trials than planned)."""
    return sum(1 for t in trials if t.number < number and _study.ABANDONED not in t.user_attrs)


#: trial user attr: the phase of the staged strategy the trial ran in
PHASE_ATTR = "tuneops:phase"


class _Plan:
    """The phases of one study, computed once from its stored budget (or the given one)."""

    def __init__(
        self,
        n_trials: int | None,
        n_objectives: int | None,
        space: SpaceKind | None,
        gp: bool | None,
        cmaes: bool | None,
    ) -> None:
        self.n_trials, self.n_objectives, self.space = n_trials, n_objectives, space
        self.gp, self.cmaes = gp, cmaes
        self._phases: list[Phase] | None = None

    def phases(self, study: optuna.Study) -> list[Phase]:
        if self._phases is None:
            stored = _study.budget(study)
            n_trials = stored if stored is not None else self.n_trials
            if n_trials is None:
                raise ValueError(
                    "the staged strategy needs a trial budget (search.n_trials); none is set"
                )
            self._phases = staged_phases(
                n_trials,
                n_objectives=self.n_objectives or len(study.directions),
                space=self.space,
                gp=self.gp,
                cmaes=self.cmaes,
            )
        return self._phases


class StagedSampler(RoutingSampler):
    """Hands each trial to its phase's sampler (:func:`staged_phases`), by trial number.

    The space is given (a spec) or judged from the explore phase's finished trials when the
    refine phase starts (it has 20 trials or more). The CMA-ES of the refine phase starts at
    the best trial numbered before the phase (a function of stored trials: resumable).

    Args:
        seed: the explore phase's seed; the later phases' derive from it
            (:func:`tuneops.samplers.stage_seed`: a TPE still drawing at random at the start of
            its phase would otherwise replay the explore phase's configurations).
        n_trials: the budget if the study has none stored yet (the stored one wins).
        n_objectives: default: the study's.
        space: the search space (Optuna distributions or a SpaceKind), if known.
        conditional: whether the space is conditional (with ``space`` as distributions).
    """

    def __init__(
        self,
        *,
        seed: int | None,
        n_trials: int | None = None,
        n_objectives: int | None = None,
        space: Mapping[str, BaseDistribution] | SpaceKind | None = None,
        conditional: bool = False,
        gp: bool | None = None,
        cmaes: bool | None = None,
    ) -> None:
        if space is not None and not isinstance(space, SpaceKind):
            space = describe_space(space, conditional=conditional)
        self._seed = seed
        self._plan = _Plan(n_trials, n_objectives, space, gp, cmaes)
        self._samplers: dict[str, optuna.samplers.BaseSampler] = {}
        self._placed: tuple[int, int] = (-1, 0)  # (trial number, its place in the budget)

    def phases(self, study: optuna.Study) -> list[Phase]:
        """This study's phases."""
        return self._plan.phases(study)

    def planned(self) -> list[Phase]:
        """The phases of the budget given here (``n_trials``, ``n_objectives``), whatever the
        study stores: a run records its plan before it stores a larger budget on resume."""
        plan = self._plan
        if plan.n_trials is None or plan.n_objectives is None:
            raise ValueError("planned phases need n_trials and n_objectives")
        return staged_phases(
            plan.n_trials,
            n_objectives=plan.n_objectives,
            space=plan.space,
            gp=plan.gp,
            cmaes=plan.cmaes,
        )

    def phase(self, study: optuna.Study, number: int) -> Phase:
        """The phase of trial ``number``, by its place in the budget when it was first asked
        (read once per trial: the sampler is asked for every parameter)."""
        if self._placed[0] != number:
            self._placed = (number, place_in_budget(_optuna.read_trials(study), number))
        return phase_of(self.phases(study), self._placed[1])

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        super().before_trial(study, trial)
        # The phase the trial runs in, recorded: a resumed run with another budget stretches
        # the phases of the trials to come, and the ones that ran are reported in theirs (model
        # trials were shown under explore, as pruned random trials, after 12 -> 18 trials).
        if PHASE_ATTR not in trial.user_attrs:
            phase = self.phase(study, trial.number).name
            _optuna.set_trial_user_attr(study, trial, PHASE_ATTR, phase)

    def route(self, study: optuna.Study, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        phase = self.phase(study, trial.number)
        if phase.name not in self._samplers:
            self._samplers[phase.name] = self._build(study, phase)
        return self._samplers[phase.name]

    def _build(self, study: optuna.Study, phase: Phase) -> optuna.samplers.BaseSampler:
        n_objectives = len(study.directions)
        space = self._plan.space
        if space is None and phase.name != "explore":
            finished = [
                t
                for t in _optuna.read_trials(study, states=(TrialState.COMPLETE, TrialState.PRUNED))
                if t.number < phase.start
            ]
            space = _space_of_trials(finished) if finished else None
        tpe = {
            "multivariate": n_objectives == 1 or bool(space and space.conditional),
            "group": bool(space and space.conditional),
        }
        if phase.name == "explore":
            return optuna.samplers.RandomSampler(seed=self._seed)
        if phase.name == "model":
            return build_stage_tpe(stage_seed(self._seed, 1), tpe)
        seed = stage_seed(self._seed, 2)
        name = phase.sampler
        if (
            space is not None and self._plan.space is None
        ):  # judged now: the stored name may not fit
            name = refine_sampler(n_objectives, space, gp=self._plan.gp, cmaes=self._plan.cmaes)
        if name == "gp":
            return build_gp(seed, n_objectives)  # the GP auto runs (fewer starting points)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(
                seed=seed, x0=_best_params(study, phase.start), sigma0=0.2, n_startup_trials=0
            )
        return build_stage_tpe(seed, {**tpe, "n_ei_candidates": 96})

    def reseed_rng(self) -> None:
        for sampler in self._samplers.values():
            sampler.reseed_rng()


def build_stage_tpe(seed: int | None, params: Mapping[str, Any]) -> optuna.samplers.BaseSampler:
    """TPE with ``params`` (the configuration ``auto`` uses, see :mod:`tuneops.samplers`)."""
    return build_stage(Stage(0, "tpe", params), seed)


def _best_params(study: optuna.Study, before: int) -> dict[str, Any] | None:
    """The numeric parameters of the best complete trial numbered below ``before`` (one
    objective; None with several)."""
    trials = [
        t for t in _optuna.read_trials(study, states=(TrialState.COMPLETE,)) if t.number < before
    ]
    if not trials or len(study.directions) != 1:
        return None
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    best = min(trials, key=lambda t: (sign * float(t.values[0]), t.number))
    return {
        k: v
        for k, v in best.params.items()
        if not isinstance(best.distributions[k], CategoricalDistribution)
    } or None


class StagedPruner(optuna.pruners.BasePruner):
    """The study's pruner in the model phase only; explore and refine trials run to the end.

    Explore trials are the full-fidelity references every later comparison leans on; refine
    trials sit near the best, where a low-fidelity score separates them least.

    Args:
        base: the pruner of the model phase.
        phase: ``(study, trial number) -> its phase`` (:meth:`StagedSampler.phase`).
    """

    def __init__(
        self, base: optuna.pruners.BasePruner, phase: Callable[[optuna.Study, int], Phase]
    ) -> None:
        self.base = base
        self._phase = phase

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if not self._phase(study, trial.number).pruning:
            return False
        return self.base.prune(study, trial)


def staged_pruner(
    base: optuna.pruners.BasePruner, sampler: StagedSampler
) -> optuna.pruners.BasePruner:
    """``base`` gated by the phases of ``sampler``; a pruner that never prunes, or one that
    sets how the objective trains (Wilcoxon: by folds), is returned as it is."""
    if isinstance(base, (optuna.pruners.NopPruner, optuna.pruners.WilcoxonPruner)):
        return base
    return StagedPruner(base, sampler.phase)


# -- the record in the study -------------------------------------------------------------------
def strategy_of(spec: Any) -> str | None:
    """The spec's ``search.strategy`` (None: none), whichever form the spec has."""
    if isinstance(spec, Mapping):
        search = spec.get("search") or {}
        return search.get("strategy") if isinstance(search, Mapping) else None
    search = getattr(spec, "search", None)
    value = getattr(search, "strategy", None) if search is not None else None
    return value if value is not None else getattr(spec, "strategy", None)


#: Key of the ``tuneops:strategy`` record that holds the candidates a verification cut short
#: (Ctrl-C, a crash) had verified: the run again keeps them. Not ``verification``, which the
#: selection reads only once every candidate is verified.
VERIFYING = "verifying"


def record_strategy(study: optuna.Study, phases: Sequence[Phase], **extra: Any) -> dict[str, Any]:
    """Write the plan to the study (user attr ``tuneops:strategy``), keeping a stored
    verification when the phases are unchanged; returns the record."""
    old = _optuna.study_user_attrs(study).get(_study.STRATEGY) or {}
    record = {
        "name": "staged",
        "n_trials": phases[-1].end,
        "phases": [p.to_dict() for p in phases],
        **extra,
    }
    if old.get("phases") == record["phases"]:
        for key in ("verification", VERIFYING):  # a verification cut short goes on from there
            if key in old:
                record[key] = old[key]
    elif old.get("verification") or old.get(VERIFYING):
        # A new budget: the verification is of the old one's candidates, so the selection no
        # longer reads it, but a candidate still among the top ones is verified all the same
        earlier = old.get("verification") or old[VERIFYING]
        record[VERIFYING] = {k: earlier[k] for k in ("folds", "repeats", "candidates")}
    study.set_user_attr(_study.STRATEGY, record)
    return record


# -- verification ---------------------------------------------------------------------------------
def top_candidates(
    trials: Sequence[FrozenTrial],
    directions: Sequence[str],
    k: int,
    *,
    infeasible: Container[int] | None = None,
) -> list[FrozenTrial]:
    """The ``k`` best complete trials: those that met the constraints (as the study recorded
    them, or: whose numbers are not in ``infeasible``) first, then the others; within each, by
    non-dominated rank (the Pareto front first, then the front of the rest, ...), within a rank
    by the first objective, then by trial number. (Ranked without the constraints, the
    verification re-evaluated infeasible trials while a feasible one went unverified and was
    then selected at its search values.)"""
    complete = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.values is not None
        and _study.ABANDONED not in t.user_attrs
        and _study.REPEAT_OF not in t.user_attrs  # its configuration's earlier trial is there
        and all(math.isfinite(v) for v in t.values)
    ]
    if infeasible is None:
        missed = [_study.feasible(t) is False for t in complete]
    else:
        missed = [t.number in infeasible for t in complete]
    out = _by_rank([t for t, m in zip(complete, missed, strict=True) if not m], directions, k)
    return out + _by_rank(
        [t for t, m in zip(complete, missed, strict=True) if m], directions, k - len(out)
    )


def _by_rank(trials: Sequence[FrozenTrial], directions: Sequence[str], k: int) -> list[FrozenTrial]:
    """The ``k`` best of ``trials`` by non-dominated rank, first objective, trial number."""
    if not trials or k <= 0:
        return []
    loss = pareto.losses([t.values for t in trials], directions)
    rank = np.full(len(trials), -1)
    left, level = np.arange(len(trials)), 0
    while len(left) and (rank >= 0).sum() < k:
        front = left[pareto.pareto_mask(loss[left], [])]
        rank[front] = level
        left = np.setdiff1d(left, front)
        level += 1
    chosen = [i for i in range(len(trials)) if rank[i] >= 0]
    chosen.sort(key=lambda i: (rank[i], loss[i][0], trials[i].number))
    return [trials[i] for i in chosen[:k]]


# Student t 0.975 quantiles for 1-10 degrees of freedom (exact to 3 decimals); beyond, the
# Cornish-Fisher expansion around the normal quantile (error < 0.001 from 11 on). Avoids
# importing scipy.stats (0.3 s) for one number.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (a 95 % two-sided CI)."""
    if df < 1:
        raise ValueError(f"df: expected >= 1 degree of freedom, received {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def verify_top(
    study: optuna.Study,
    objective_factory: Callable[[int, int], Callable[[optuna.trial.BaseTrial], Any]],
    k: int = 5,
    folds: int = 5,
    repeats: int = 3,
    *,
    record: bool = True,
) -> dict[str, Any]:
    """Re-evaluate the study's top ``k`` trials ``repeats`` times with ``folds`` CV folds each.

    ``objective_factory(folds, repeat)`` returns an objective (``trial -> value or tuple``)
    that cross-validates with ``folds`` folds drawn with a seed for ``repeat`` (0, 1, ...);
    each candidate's parameters are replayed through it with ``optuna.trial.FixedTrial``.
    Each repeat is one estimate; per objective the result is their mean, sample standard
    deviation and Student-t 95 % confidence interval (none with one repeat).

    Returns:
        ``{"k", "folds", "repeats", "candidates": [{"number", "params", "values" (as tuned),
        "mean", "std", "ci95": [[low, high] per objective], "evaluations"}]}``, also stored in
        the study's ``tuneops:strategy`` record when ``record``.

    Example::

        >>> def factory(folds, repeat):
        ...     rng = np.random.default_rng(repeat)
        ...     return lambda t: t.suggest_float("x", 0, 1) + rng.normal(0, 0.01)
        >>> study = optuna.create_study()
        >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
        >>> verify_top(study, factory, k=2, record=False)["candidates"][0]["ci95"][0][0] < 1
        True
    """
    if k < 1 or folds < 2 or repeats < 1:
        raise ValueError(
            f"verify_top: expected k >= 1, folds >= 2, repeats >= 1; received k={k}, "
            f"folds={folds}, repeats={repeats}"
        )
    directions = [d.name.lower() for d in study.directions]
    ranges = [
        METRICS[o.metric].range if o.metric in METRICS else (-math.inf, math.inf)
        for o in _study.objectives(study)
    ]
    trials = _optuna.read_trials(study)
    texts = _study.constraint_texts(study)
    # run again with other constraints: the earlier trials' records are of the old ones
    infeasible = (
        None
        if _study.CONSTRAINTS not in _optuna.study_user_attrs(study)
        or _study.constraints_recorded(trials, texts)
        # tuneops.selection (and the spec's models) only for such a study: `show` and `report`
        # read this module's strategy_section, and must not load them (tuneops.results)
        else importlib.import_module("tuneops.selection").infeasible_trials(
            trials, [o.metric for o in _study.objectives(study)], texts
        )
    )
    candidates = top_candidates(trials, directions, k, infeasible=infeasible)
    stored = (_optuna.study_user_attrs(study).get(_study.STRATEGY) or {}).get("verification")
    if (
        stored
        and (stored["k"], stored["folds"], stored["repeats"]) == (k, folds, repeats)
        and [(c["number"], c["values"]) for c in stored["candidates"]]
        == [(t.number, list(t.values)) for t in candidates]
    ):
        # The same candidates were verified: a run again (the budget spent) does not draw new
        # estimates that would move the intervals and the selection.
        return dict(stored)
    # Candidates verified before with these settings (by a verification cut short, or of other
    # candidates): kept, each took `repeats` cross-validations with more folds
    done: dict[tuple[int, tuple[float, ...]], dict[str, Any]] = {}
    strategy = _optuna.study_user_attrs(study).get(_study.STRATEGY) or {}
    for earlier in (strategy.get("verification"), strategy.get(VERIFYING)):
        if earlier and (earlier["folds"], earlier["repeats"]) == (folds, repeats):
            for c in earlier["candidates"]:
                done.setdefault((c["number"], tuple(c["values"])), c)
    objectives: list[Callable[[optuna.trial.BaseTrial], Any]] | None = None
    out: list[dict[str, Any]] = []
    for i, trial in enumerate(candidates):
        kept = done.get((trial.number, tuple(trial.values)))
        if kept is not None:
            _status.info(
                "Candidate %d of %d (trial %d): verified before, kept",
                i + 1,
                len(candidates),
                trial.number,
            )
            out.append(dict(kept))
            continue
        if objectives is None:
            objectives = [objective_factory(folds, r) for r in range(repeats)]
        # a line per candidate: the phase took 40 s of silence after the last trial (audit)
        _status.info(
            "Verifying candidate %d of %d (trial %d): %d folds x %d repeats",
            i + 1,
            len(candidates),
            trial.number,
            folds,
            repeats,
        )
        runs = []
        for objective in objectives:
            value = objective(optuna.trial.FixedTrial(dict(trial.params)))
            runs.append(
                [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
            )
        per_objective = list(zip(*runs, strict=True))
        mean = [statistics.fmean(v) for v in per_objective]
        std = [statistics.stdev(v) if len(v) > 1 else None for v in per_objective]
        # Within the values the metric can take: from 3 repeats the t interval of a balanced
        # accuracy of 0.977 reached 1.013 ("95% CI 0.9417-1.013").
        ci = [
            [
                max(m - t975(repeats - 1) * s / math.sqrt(repeats), bottom),
                min(m + t975(repeats - 1) * s / math.sqrt(repeats), top),
            ]
            if s is not None
            else None
            for m, s, (bottom, top) in zip(mean, std, ranges, strict=True)
        ]
        out.append(
            {
                "number": trial.number,
                "params": dict(trial.params),
                "values": list(trial.values),
                "mean": mean,
                "std": std,
                "ci95": ci,
                "evaluations": runs,
            }
        )
        if record:  # kept if the verification is cut short before its end
            partial = dict(_optuna.study_user_attrs(study).get(_study.STRATEGY) or {})
            partial[VERIFYING] = {"folds": folds, "repeats": repeats, "candidates": list(out)}
            study.set_user_attr(_study.STRATEGY, partial)
    result = {"k": k, "folds": folds, "repeats": repeats, "candidates": out}
    if record:
        stored = dict(_optuna.study_user_attrs(study).get(_study.STRATEGY) or {"name": "staged"})
        stored["verification"] = result
        stored.pop(VERIFYING, None)
        study.set_user_attr(_study.STRATEGY, stored)
    return result


def strategy_section(study: optuna.Study, trials: Sequence[FrozenTrial]) -> dict[str, Any] | None:
    """The ``strategy`` section of the results document: the phases, per phase the trials by
    state and the best value of each objective among its trials that met the constraints, and
    the verification; None without a strategy."""
    return strategy_summary(
        _optuna.study_user_attrs(study).get(_study.STRATEGY),
        [d.name.lower() for d in study.directions],
        trials,
    )


def strategy_summary(
    record: Mapping[str, Any] | None, directions: Sequence[str], trials: Sequence[FrozenTrial]
) -> dict[str, Any] | None:
    """:func:`strategy_section` from the stored record (the report reads it from its view)."""
    if not record:
        return None
    phases = [
        Phase(p["phase"], p["from_trial"], p["to_trial"], p["sampler"], p["pruning"])
        for p in record.get("phases", [])
    ]
    counted = sorted(_study.counted(trials), key=lambda t: t.number)
    ran_in = [  # the phase each trial ran in: recorded, else by its place in the budget
        t.user_attrs.get(PHASE_ATTR) or phase_of(phases, place).name
        for place, t in enumerate(counted)
    ]
    rows = []
    for phase in phases:
        inside = [t for t, name in zip(counted, ran_in, strict=True) if name == phase.name]
        # the best a phase found is what could be selected: a trial that broke the constraints
        # is not (its value read as the phase's best)
        done = [
            t
            for t in inside
            if t.state == TrialState.COMPLETE
            and t.values is not None
            and _study.feasible(t) is not False
            and _study.found(t)  # a repeat of an earlier phase's trial found nothing here
        ]
        best = [
            (max if d == "maximize" else min)(t.values[i] for t in done) if done else None
            for i, d in enumerate(directions)
        ]
        rows.append(
            {
                **phase.to_dict(),
                "trials": {
                    s.name.lower(): sum(t.state == s for t in inside)
                    for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
                },
                "best": best,
            }
        )
    return {
        "name": record.get("name", "staged"),
        "n_trials": record.get("n_trials"),
        "phases": rows,
        "verification": record.get("verification"),
    }
