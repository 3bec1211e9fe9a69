"""Samplers by name, and the rule that says which Optuna sampler ``auto`` means.

Optuna's samplers do the searching; this module names them, fixes their seeds, and chooses
among them for ``auto``. Three wrappers, all ordinary Optuna ``BaseSampler`` s that work on any
study: :class:`SwitchingSampler` hands each trial to one of several samplers by trial number
(GP for the first trials of a study, TPE after); :class:`AutoSampler` applies the rule,
at construction when the space is known (a spec) or at the first trials when it is not
(``tune()``: a user's objective declares its space by running); and :class:`FamilyGuard`
stops proposing a model family whose trials only fail, which Optuna's samplers would propose
for ever (they learn nothing from failed trials). :class:`FirstTrialSeeded` gives each worker
a seed stream of its own even when several start on one study in the same moment.
:class:`CurrentConstraints` shows a sampler the study's earlier trials judged by the
constraints of now, in a study run again with other constraints.

The ``auto`` rule (:func:`auto_plan`)
=====================================

==========================  ===========================================================
case                        sampler
==========================  ===========================================================
conditional space           TPE, multivariate + ``group`` (the only Optuna sampler that
                            models a conditional space; GP and CMA-ES model only the
                            parameters every trial shares and sample the rest at random)
three or more objectives,   independent TPE (Optuna 5's default for several objectives)
or two objectives on a
space not all floats
one objective on floats,    multivariate TPE (Optuna 5's default for one objective)
on integers, or on
categoricals only
one objective on            GP for the first ``gp_trials`` (default 40) trials, then
categoricals with numbers,  TPE: multivariate for one objective, independent for two
or two on floats only; at   (Optuna 5's own defaults). With one objective GP's
most ``GP_MAX_PARAMS`` (16) acquisition is searched from ``GP_LOCAL_SEARCH`` (3)
                            starting points, not Optuna's 10
more parameters, or         TPE, multivariate for one objective, independent for several
GP unavailable (no torch)
==========================  ===========================================================

Evidence (``benchmarks/bench_samplers.py``, 200 trials, hypervolume as a share of the ideal;
every figure, its seeds and what is unmeasured in docs/benchmarks.md, "Samplers (issue 15)"):

* One objective (problems the rule was not chosen on, 3 seeds): Optuna's default TPE costs
  2-7 ms of sampler CPU per trial there and GPSampler 20-100 times that, so a GP stage of 40
  trials made ``auto`` 7.6-8.5x default TPE's sampler CPU over 200 trials on floats (Branin,
  Hartmann6, Rosenbrock-10, Ackley-10; 7.0x on an SVM on pmlb:vehicle, 1 seed) and 25x on six
  integers, for at most 0.004 more of the way from a median random point to the optimum.
  Hence TPE there; ``sampler: gp`` remains for a study whose trials dwarf a second of sampler
  time. On six 5-level categoricals (15 seeds) the GP stage found little more (0.981 +-
  0.052; TPE 0.980 +- 0.040 and, with ``auto``'s seeds, 0.959 +- 0.063; GP alone 1.000) at
  8.8x: TPE there too, under the CPU target and 0.02-0.04 short of GP alone. On a mixed space
  (a log-scaled float whose optimum moves with a categorical, integers, a second
  categorical; 10 seeds) it did (0.986 +- 0.022 vs default TPE 0.916 +- 0.074, GP alone 0.985
  +- 0.034) at 9.3x; GP's cost there was its acquisition's local search (97% of it: an
  exhaustive pass over every categorical's choices from each of 10 starting points), and
  from 3 starting points the stage found as much (0.987 +- 0.023) at 4.0x: GP for 40 trials,
  its acquisition from 3 points, then TPE. On ZDT1 (two objectives) 3 points lost the front
  (0.69 +- 0.15 vs 0.88 +- 0.03 at 40 GP trials, 5 seeds): there GP keeps Optuna's 10.
* ZDT1 (2 objectives, 10 continuous parameters): GP is the only Optuna sampler that finds the
  front (0.955, 1 seed; every TPE variant, NSGA-II/III and random 0.00-0.11, QMC 0.13), at
  0.7-1.2 s of CPU per trial, 23x default TPE's sampler CPU over the study. GP for the first
  40 trials then TPE (``auto``) reached 0.84 +- 0.08 (3 seeds) at 3.6x; GP for 50 then TPE
  0.89 at 5.4x. Within the 5x CPU budget no split reaches GP alone; a spec buys more with
  ``{name: auto, gp_trials: 200}`` where a trial's training dwarfs a second of sampler time.
* DTLZ2 (3 objectives, 7 continuous parameters): independent TPE 0.772 +- 0.013 (3 seeds);
  GP for 40 trials then independent TPE 0.722 +- 0.046 (never above TPE alone) at 6.8x TPE's
  CPU; GP alone 0.615 at 46x (2.3 s per trial, 1 seed); NSGA-III, the usual choice for 3+
  objectives, 0.495 (its population of 50 has only four generations in 200 trials);
  multivariate TPE 0.489, QMC 0.457, NSGA-II 0.448, random 0.403. Hence the row for three or
  more objectives.
* A real spec, accuracy vs latency_p95_ms with hist_gradient_boosting (3 integer, 2 float
  parameters; 1 seed): GP cost about 2 s per trial there, 8.3x TPE's sampler CPU with 40 GP
  trials, and its front was worse than independent TPE's; over 3 seeds independent TPE led
  random and NSGA-II (0.81 / 0.71 / 0.70). Hence two objectives on integer, categorical or
  mixed spaces get TPE.
* Conditional spaces with two objectives (three real specs, accuracy vs model_size_kb,
  grouped multivariate TPE vs independent TPE, 8 seeds each, paired by seed): pmlb:german,
  independent TPE led by 0.053 +- 0.043 (7 of 8 seeds); sklearn:breast_cancer, +0.003 +-
  0.071 (3 of 8); pmlb:pima, grouped led by 0.149 +- 0.404 (6 of 8). Pooled, no difference
  (Wilcoxon signed-rank p = 0.94): the row stays grouped TPE, and misses the 0.02 target on
  pmlb:german.
* Optuna's default independent TPE beat multivariate TPE (with or without ``group``) on both
  multi-objective problems, and ``group``'s search-space scan is quadratic in the trials, so
  ``group`` is for conditional spaces only.

GP needs PyTorch (``pip install torch``); without it ``auto`` is TPE, which was the best
sampler available without PyTorch on DTLZ2 and within 0.02 of the best (QMC) on ZDT1.
:meth:`AutoSampler.describe` says which was chosen and why.
"""

from __future__ import annotations

import importlib.util
import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from tuneops import _optuna, _study
from tuneops.errors import SpecError, unknown_name
from tuneops.space import Param, distributions

_log = logging.getLogger("tuneops")

__all__ = [
    "SAMPLERS",
    "GP_TRIALS",
    "GP_MAX_PARAMS",
    "GP_MAX_OBJECTIVES",
    "STARTUP_TRIALS",
    "GP_LOCAL_SEARCH",
    "SpaceKind",
    "Stage",
    "SwitchingSampler",
    "AutoSampler",
    "FamilyGuard",
    "FirstTrialSeeded",
    "CurrentConstraints",
    "FAMILY_FAILURES",
    "auto_plan",
    "build_gp",
    "describe_space",
    "family_distributions",
    "gp_available",
    "gp_settings",
    "make_sampler",
]

# GP's share of a study. GP costs 0.7-1.2 s of CPU per trial from its first model on (two
# objectives, 10 parameters); 40 keeps auto's sampler CPU at 200 trials at 3.8-3.9x default
# TPE's on ZDT1-3, but 5.8x on WFG4 (its GP trials cost more). 25 or 30 brought it to 2.3-3.8x
# everywhere and lost 0.08-0.25 of the front on ZDT1 and ZDT3 (5 seeds, docs/benchmarks.md).
GP_TRIALS = 40
GP_MAX_PARAMS = 16  # GP's kernel fit grows with dimensions; beyond this TPE was as good
GP_MAX_OBJECTIVES = 2  # with more, GP's sampler CPU doubles and it lost to TPE (DTLZ2)
STARTUP_TRIALS = 10  # random trials before an unknown space is judged (GP and TPE start so too)
# Starting points of GP's acquisition search in auto's one-objective GP stage (Optuna: 10). With
# categorical parameters that search, an exhaustive pass over each categorical's choices from
# every point, was 97% of GPSampler's CPU; from 3 points auto found as much as from 10 on a mixed
# space (10 seeds) at 0.43 of the sampler CPU, 4.0x default TPE's (docs/benchmarks.md). Not on
# two objectives: on ZDT1 3 points lost 0.19 of the front at 40 GP trials (5 seeds)
GP_LOCAL_SEARCH = 3


# -- the samplers by name ---------------------------------------------------------------------
def _tpe(
    seed: int | None, *, group: bool = False, multivariate: bool | None = True, **kw: Any
) -> optuna.samplers.BaseSampler:
    # Optuna 5 defaults otherwise: constant_liar (pending trials penalised, so parallel workers
    # spread out). `group` handles conditional spaces (several families); it is experimental,
    # and using it is a deliberate choice, so its warning is not the user's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=multivariate, group=group, **kw)


def _auto(seed: int | None, *, group: bool | None = None, **kw: Any) -> optuna.samplers.BaseSampler:
    return AutoSampler(seed=seed, conditional=group, **kw)


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "auto": _auto,
    "tpe": _tpe,
    "random": lambda seed, group=False, **kw: optuna.samplers.RandomSampler(seed=seed, **kw),
    "gp": lambda seed, group=False, **kw: _optuna.gp_sampler(seed=seed, **kw),
    "nsga2": lambda seed, group=False, **kw: optuna.samplers.NSGAIISampler(seed=seed, **kw),
    "nsga3": lambda seed, group=False, **kw: optuna.samplers.NSGAIIISampler(seed=seed, **kw),
    "cmaes": lambda seed, group=False, **kw: optuna.samplers.CmaEsSampler(seed=seed, **kw),
    "qmc": lambda seed, group=False, **kw: optuna.samplers.QMCSampler(seed=seed, **kw),
}


def gp_available() -> bool:
    """Whether Optuna's GPSampler can run here (it needs PyTorch; found without importing it)."""
    return importlib.util.find_spec("torch") is not None


# -- the space as the rule sees it -----------------------------------------------------------
@dataclass(frozen=True)
class SpaceKind:
    """What the ``auto`` rule needs to know of a search space.

    ``kind``: ``continuous`` (floats only), ``integer`` (ints, or ints and floats),
    ``categorical`` (categorical only) or ``mixed`` (categorical with numbers).
    """

    n_params: int
    kind: str
    conditional: bool

    def to_dict(self) -> dict[str, Any]:
        return {"n_params": self.n_params, "kind": self.kind, "conditional": self.conditional}


def describe_space(
    distributions: Mapping[str, BaseDistribution], *, conditional: bool = False
) -> SpaceKind:
    """The :class:`SpaceKind` of a space given as Optuna distributions (one per parameter).

    Example::

        >>> from optuna.distributions import FloatDistribution, IntDistribution
        >>> describe_space({"x": FloatDistribution(0, 1), "n": IntDistribution(1, 9)})
        SpaceKind(n_params=2, kind='integer', conditional=False)
    """
    dists = [d for d in distributions.values() if not d.single()]
    n_cat = sum(isinstance(d, CategoricalDistribution) for d in dists)
    n_int = sum(isinstance(d, IntDistribution) for d in dists)
    n_float = sum(isinstance(d, FloatDistribution) and d.step is None for d in dists)
    n_num = len(dists) - n_cat
    if n_cat and n_num:
        kind = "mixed"
    elif n_cat:
        kind = "categorical"
    elif n_int or n_float < n_num:  # a stepped float is a grid: integer-like
        kind = "integer"
    else:
        kind = "continuous"
    return SpaceKind(len(dists), kind, conditional)


def family_distributions(spaces: Mapping[str, Mapping[str, Param]]) -> dict[str, BaseDistribution]:
    """A spec's whole space as Optuna distributions, named as the objective suggests them:
    with several families a ``family`` choice and each family's parameters as ``FAMILY.name``
    (see :meth:`tuneops.objective.SpecObjective.suggest`)."""
    families = list(spaces)
    if len(families) == 1:
        return distributions(spaces[families[0]])
    out: dict[str, BaseDistribution] = {"family": CategoricalDistribution(families)}
    for family, space in spaces.items():
        out.update(distributions(space, prefix=f"{family}."))
    return out


def _space_of_trials(trials: Sequence[FrozenTrial]) -> SpaceKind:
    """The space as the finished trials show it: conditional when their parameter sets differ."""
    names = {frozenset(t.distributions) for t in trials}
    merged: dict[str, BaseDistribution] = {}
    for t in trials:
        merged.update(t.distributions)
    return describe_space(merged, conditional=len(names) > 1)


# -- the rule ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """Trials numbered from ``start`` (until the next stage) go to sampler ``name``, built with
    ``params``."""

    start: int
    name: str
    params: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "from_trial": self.start,
            "sampler": self.name,
            **({"params": dict(self.params)} if self.params else {}),
        }


def auto_plan(
    n_objectives: int,
    space: SpaceKind,
    n_trials: int | None = None,
    *,
    gp: bool | None = None,
    gp_trials: int = GP_TRIALS,
) -> tuple[list[Stage], str]:
    """The stages ``auto`` runs for a study, and why (the rule in the module docstring).

    Args:
        n_objectives: the study's number of objectives.
        space: the search space (:func:`describe_space`).
        n_trials: the budget; None for a time-only run.
        gp: whether GP can run (default: :func:`gp_available`).
        gp_trials: GP's share of the trials (``{name: auto, gp_trials: N}`` in a spec).

    Example::

        >>> stages, why = auto_plan(2, SpaceKind(10, "continuous", False), 200, gp=True)
        >>> [(s.start, s.name) for s in stages]
        [(0, 'gp'), (40, 'tpe')]
    """
    gp = gp_available() if gp is None else gp
    tpe = {"multivariate": n_objectives == 1}
    if space.conditional:
        return [Stage(0, "tpe", {"multivariate": True, "group": True})], (
            "conditional space: multivariate TPE with group, the one Optuna sampler that models it"
        )
    if n_objectives == 1 and space.kind in ("continuous", "integer", "categorical"):
        # Optuna's default TPE (multivariate) costs 2-7 ms of sampler CPU per trial on one
        # objective, GP 20-100 times that: a GP stage of 40 trials made auto 7-8.5x TPE's
        # sampler CPU at 200 trials on floats (Branin, Hartmann6, Rosenbrock-10, Ackley-10, an
        # SVM on pmlb:vehicle) and 25x on integers, for at most 0.004 of the way to the optimum
        # (docs/benchmarks.md, the problems the rule was not chosen on). With categorical
        # parameters only, about the same: six 5-level categoricals, 15 seeds, TPE 0.959-0.980
        # (two seed streams) and a GP stage of 40 trials 0.981 at 8.8x (0.961 at 4.7x with GP's
        # acquisition from 3 points). Categoricals with numbers are where GP found more
        return [Stage(0, "tpe", tpe)], (
            f"one objective, {space.kind} space: multivariate TPE (Optuna's default; a GP stage "
            "cost 4-25x its sampler CPU and found little or no more)"
        )
    if n_objectives > GP_MAX_OBJECTIVES:
        # DTLZ2 (3 objectives, 7 parameters, 200 trials, 3 seeds): GP for 40 trials then TPE
        # reached 0.72 of the ideal hypervolume, independent TPE alone 0.77, at 6.8x TPE's
        # sampler CPU (about 2 s per GP trial); NSGA-III, the usual choice for 3+ objectives,
        # 0.50 at this budget
        return [Stage(0, "tpe", tpe)], (
            f"{n_objectives} objectives: independent TPE (GP cost more and found less, "
            "NSGA-III found less at a few hundred trials)"
        )
    if n_objectives > 1 and space.kind != "continuous":
        # a real spec (accuracy vs latency, hist_gradient_boosting: 3 integer, 2 float
        # parameters, 200 trials): GPSampler cost about 2 s per trial there (twice its cost on
        # ZDT1's floats), 8.3x TPE's sampler CPU over the study with 40 GP trials, and the
        # front was worse than independent TPE's
        return [Stage(0, "tpe", tpe)], (
            f"{space.kind} space, {n_objectives} objectives: independent TPE (GP cost 8x and "
            "found less on integer parameters)"
        )
    if space.n_params > GP_MAX_PARAMS:
        return [Stage(0, "tpe", tpe)], f"{space.n_params} parameters (> {GP_MAX_PARAMS}): TPE"
    if not gp:
        return [Stage(0, "tpe", tpe)], "GP unavailable (PyTorch not installed): TPE"
    if gp_trials <= 0:
        return [Stage(0, "tpe", tpe)], "gp_trials: 0: TPE"
    gp_params = gp_settings(n_objectives)
    if n_trials is not None and n_trials <= gp_trials:
        return [Stage(0, "gp", gp_params)], (
            f"{space.kind} space, {n_trials} trials (<= {gp_trials}): GP"
        )
    return [Stage(0, "gp", gp_params), Stage(gp_trials, "tpe", tpe)], (
        f"{space.kind} space: GP for the first {gp_trials} trials, then TPE (flat cost per trial)"
    )


def gp_settings(n_objectives: int) -> dict[str, Any]:
    """The settings of every GPSampler tuneops runs of its own choice (``auto``'s GP stage, the
    staged strategy's refine phase), for a study of ``n_objectives``.

    One objective: the acquisition searched from :data:`GP_LOCAL_SEARCH` starting points, which
    found as much as Optuna's 10 at 0.43 of the CPU (a mixed space, 10 seeds). Two: Optuna's
    own 10 (from 3, GP lost the front on ZDT1; docs/benchmarks.md).

    Example::

        >>> gp_settings(1), gp_settings(2)
        ({'n_local_search': 3}, {})
    """
    return {"n_local_search": GP_LOCAL_SEARCH} if n_objectives == 1 else {}


def build_gp(seed: int | None, n_objectives: int) -> optuna.samplers.BaseSampler:
    """GPSampler with :func:`gp_settings` for ``n_objectives``, seeded with ``seed``."""
    return build_stage(Stage(0, "gp", gp_settings(n_objectives)), seed)


def stage_seed(seed: int | None, k: int) -> int | None:
    """The seed of the ``k``-th sampler of a study that switches samplers (``k`` 0: ``seed``).

    Samplers that follow one another get distinct seeds: Optuna's TPE, GP and CMA-ES start with
    their own ``RandomSampler(seed)``, so with one seed a TPE phase whose start-up still draws at
    random replayed the random phase before it, configuration for configuration (3 of a
    20-trial staged study's trials were repeats).
    """
    if seed is None or k == 0:
        return seed
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def build_stage(stage: Stage, seed: int | None) -> optuna.samplers.BaseSampler:
    """The sampler of one stage, with ``seed``."""
    params = dict(stage.params)
    if stage.name == "tpe":
        return _tpe(seed, **params)
    return SAMPLERS[stage.name](seed, **params)


# -- the wrappers -------------------------------------------------------------------------------
class RoutingSampler(optuna.samplers.BaseSampler):
    """A sampler that hands each trial, whole, to the sampler :meth:`route` picks for it (by
    trial number, so every worker and a resumed study agree), showing it the study
    :meth:`view` gives (the study itself unless a subclass says otherwise). Subclasses say how
    to route."""

    def route(self, study: optuna.Study, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def view(self, study: optuna.Study) -> optuna.Study:
        return study

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.route(study, trial).infer_relative_search_space(self.view(study), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.route(study, trial).sample_relative(self.view(study), trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.route(study, trial).sample_independent(
            self.view(study), trial, param_name, param_distribution
        )

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.route(study, trial).before_trial(self.view(study), trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.route(study, trial).after_trial(self.view(study), trial, state, values)


class FirstTrialSeeded(RoutingSampler):
    """A sampler whose seed stream is fixed by the number of the first trial it samples.

    A worker numbers its stream from the trials it finds in the study when it starts; two
    processes that open one study in the same moment both find the same trials there, would draw
    the same stream and propose the same configurations (6 of 12 trials repeated, two runs of
    one spec on PostgreSQL). The trial the storage hands each of them has a number of its own,
    so the sampler is built again from that number when it differs from the one expected. A
    single worker's first trial is the one expected: its stream, and a seeded replay, are as
    before.

    Args:
        build: first trial number -> the sampler (with the seed that number gives).
        expected: the first trial number expected (the trials found in the study); the sampler
            is built for it here, so bad parameters fail before any trial.
    """

    def __init__(self, build: Callable[[int], optuna.samplers.BaseSampler], expected: int) -> None:
        self._build = build
        self._sampler = build(expected)
        self._expected: int | None = expected

    def route(self, study: optuna.Study, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        return self._sampler

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self._expected is not None:
            if trial.number != self._expected:
                self._sampler = self._build(trial.number)
            self._expected = None
        self._sampler.before_trial(study, trial)

    def reseed_rng(self) -> None:
        self._sampler.reseed_rng()


class CurrentConstraints(RoutingSampler):
    """Shows ``sampler`` the study's complete trials with constraint values of the constraints
    of now, in a study run again with other constraints.

    A trial's constraint record (``trial.set_constraint``) is written once, as it finishes; a
    study resumed with a changed constraint kept its earlier trials' records of the old one,
    and the sampler went on learning feasibility from them (after ``accuracy >= 0.5`` became
    ``accuracy >= 0.99``, TPE modelled trials at 0.95 as feasible), or stopped: GPSampler
    refuses trials whose constraint names differ ("The constraint names must be the same for
    all trials"). Finished trials cannot be written again, so the sampler is handed a view of
    the study (:func:`tuneops._optuna.study_seeing`) in which each complete trial whose record
    is not of ``keys`` carries ``judge(trial)`` instead; a trial ``judge`` cannot judge (it
    did not measure a constraint's metric: None) is left out of the view.

    The trials to judge again are found once, at the sampler's first call on a study (its
    later trials record the constraints of now), so a study whose records hold costs nothing
    more per trial.

    Args:
        sampler: the sampler to hand the view.
        keys: the names of the constraints of now, as the objective records them.
        judge: a complete trial -> its record under those constraints ({name: value}, <= 0
            met), or None when it cannot be judged.
    """

    def __init__(
        self,
        sampler: optuna.samplers.BaseSampler,
        keys: Sequence[str],
        judge: Callable[[FrozenTrial], Mapping[str, float] | None],
    ) -> None:
        self._sampler = sampler
        self._keys = frozenset(keys)
        self._judge = judge
        self._base: optuna.Study | None = None
        self._view: optuna.Study | None = None
        self._judged: dict[int, FrozenTrial | None] = {}
        self._left_out = False

    @property
    def judged(self) -> dict[int, FrozenTrial | None]:
        """Trial number -> the trial as the sampler sees it (None: left out), for the trials
        judged again; empty when every record is of the constraints of now."""
        return dict(self._judged)

    def _study(self, study: optuna.Study) -> optuna.Study:
        if study is self._base and self._view is not None:
            return self._view
        judged: dict[int, FrozenTrial | None] = {}
        for t in _optuna.read_trials(study, states=(TrialState.COMPLETE,)):
            if t.constraints.keys() != self._keys:
                record = self._judge(t)
                judged[t.number] = None if record is None else _optuna.with_constraints(t, record)
        self._base, self._judged = study, judged
        self._left_out = any(t is None for t in judged.values())
        self._view = _optuna.study_seeing(study, self._see) if judged else study
        return self._view

    def _see(self, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        # every read of the sampler's (a few a trial): one pass, about 0.4 us a trial
        get = self._judged.get
        seen = [get(t.number, t) for t in trials]
        if self._left_out:
            return [t for t in seen if t is not None]
        return cast("list[FrozenTrial]", seen)

    def route(self, study: optuna.Study, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        return self._sampler

    def view(self, study: optuna.Study) -> optuna.Study:
        return self._study(study)

    def reseed_rng(self) -> None:
        self._sampler.reseed_rng()


class SwitchingSampler(RoutingSampler):
    """Hands each trial to the sampler of its stage, by trial number.

    Trial numbers are assigned by the storage, so every worker, and a resumed study, hands a
    given trial to the same stage. Each stage's sampler sees the whole study (a TPE stage
    models the trials a GP stage ran). Queued trials with fixed parameters are untouched:
    Optuna fixes those parameters before asking any sampler.

    Args:
        stages: (first trial number, sampler), in increasing first trial number, the first at 0.

    Example::

        >>> sampler = SwitchingSampler([(0, optuna.samplers.RandomSampler(seed=0)),
        ...                             (20, optuna.samplers.TPESampler(seed=0))])
        >>> study = optuna.create_study(sampler=sampler)
    """

    def __init__(self, stages: Sequence[tuple[int, optuna.samplers.BaseSampler]]) -> None:
        starts = [start for start, _ in stages]
        if not stages or starts[0] != 0 or starts != sorted(starts):
            raise ValueError(
                f"stages: expected increasing first trial numbers from 0, received {starts}"
            )
        self._stages = list(stages)

    @property
    def stages(self) -> list[tuple[int, optuna.samplers.BaseSampler]]:
        return list(self._stages)

    def route(self, study: optuna.Study, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        return self.sampler_for(trial.number)

    def sampler_for(self, number: int) -> optuna.samplers.BaseSampler:
        """The sampler of trial ``number``."""
        chosen = self._stages[0][1]
        for start, sampler in self._stages:
            if number >= start:
                chosen = sampler
        return chosen

    def reseed_rng(self) -> None:
        for _, sampler in self._stages:
            sampler.reseed_rng()


class AutoSampler(RoutingSampler):
    """``sampler: auto``: the sampler :func:`auto_plan` chooses for this study.

    With ``space`` known (a spec) the choice is made here. Without it (``tune()``: the
    objective declares its parameters as it runs) the first :data:`STARTUP_TRIALS` trials are
    random, which is how GP and TPE start anyway, and the choice is made from what the lowest
    numbered finished trials show (a function of stored trials: a resumed study, or another
    worker, makes the same choice). ``n_objectives`` defaults to the study's.

    Args:
        seed: the seed of every sampler it builds.
        n_objectives: the number of objectives, if known.
        space: the search space (Optuna distributions or a :class:`SpaceKind`), if known.
        n_trials: the budget (None: time-only).
        conditional: whether the space is conditional (None: from ``space``/the trials).
        gp: whether GP may be used (default: :func:`gp_available`).
        gp_trials: GP's share of the trials (default :data:`GP_TRIALS`); more buys a better
            front on continuous problems at about 1 s of sampler CPU per extra trial.
    """

    def __init__(
        self,
        *,
        seed: int | None,
        n_objectives: int | None = None,
        space: Mapping[str, BaseDistribution] | SpaceKind | None = None,
        n_trials: int | None = None,
        conditional: bool | None = None,
        gp: bool | None = None,
        gp_trials: int = GP_TRIALS,
        **tpe: Any,
    ) -> None:
        unknown = set(tpe) - {"n_startup_trials", "n_ei_candidates", "constant_liar"}
        if unknown:
            raise TypeError(f"AutoSampler got unexpected keyword argument(s) {sorted(unknown)}")
        self._tpe_params = dict(tpe)  # for the TPE stage(s)
        if isinstance(gp_trials, bool) or not isinstance(gp_trials, int) or gp_trials < 0:
            raise ValueError(f"gp_trials: expected a whole number >= 0, received {gp_trials!r}")
        self._gp_trials = gp_trials
        self._seed = seed
        self._n_objectives = n_objectives
        self._n_trials = n_trials
        self._gp = gp_available() if gp is None else gp
        self._conditional = conditional
        self._space: SpaceKind | None
        if isinstance(space, SpaceKind):
            self._space = (
                space if conditional is None else SpaceKind(space.n_params, space.kind, conditional)
            )
        elif space is not None:
            self._space = describe_space(space, conditional=bool(conditional))
        elif conditional:
            self._space = SpaceKind(0, "mixed", True)  # a conditional space needs no more detail
        else:
            self._space = None
        self._startup = optuna.samplers.RandomSampler(seed=seed)
        self._startup_first = False
        self._delegate: SwitchingSampler | None = None
        self._plan: tuple[list[Stage], str] | None = None
        self._routes: dict[int, optuna.samplers.BaseSampler] = {}  # trial number -> its sampler
        if self._space is not None and n_objectives is not None:
            self._decide(n_objectives, self._space)
        self._startup_first = self._delegate is None

    def _decide(self, n_objectives: int, space: SpaceKind) -> None:
        stages, why = auto_plan(
            n_objectives, space, self._n_trials, gp=self._gp, gp_trials=self._gp_trials
        )
        stages = [
            Stage(s.start, s.name, {**s.params, **self._tpe_params}) if s.name == "tpe" else s
            for s in stages
        ]
        self._plan = stages, why
        self._space = space
        # Decided at construction (the space known), the first stage is the study's first
        # sampler; decided after the start-up's random trials, every stage has its own seed.
        first = 1 if self._startup_first else 0
        built = [build_stage(s, stage_seed(self._seed, first + i)) for i, s in enumerate(stages)]
        starts = [s.start for s in stages]
        self._delegate = SwitchingSampler(list(zip(starts, built, strict=True)))

    def route(self, study: optuna.Study, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        if trial.number in self._routes:
            return self._routes[trial.number]
        if self._delegate is None:
            n_objectives = self._n_objectives or len(study.directions)
            if self._space is not None:
                self._decide(n_objectives, self._space)
            else:
                finished = study.get_trials(
                    deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
                )
                if len(finished) >= STARTUP_TRIALS:
                    first = sorted(finished, key=lambda t: t.number)[:STARTUP_TRIALS]
                    self._decide(n_objectives, _space_of_trials(first))
        sampler = (
            self._startup if self._delegate is None else self._delegate.sampler_for(trial.number)
        )
        self._routes[trial.number] = sampler
        return sampler

    def describe(self) -> dict[str, Any] | None:
        """The choice made so far, as plain data (None until it is made)."""
        if self._plan is None:
            return None
        stages, why = self._plan
        return {
            "sampler": "auto",
            "stages": [s.to_dict() for s in stages],
            "why": why,
            "space": self._space.to_dict() if self._space else None,
        }

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        sampler = self._routes.pop(trial.number, None) or self.route(study, trial)
        self._routes.pop(trial.number, None)
        sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._startup.reseed_rng()
        if self._delegate is not None:
            self._delegate.reseed_rng()


#: A family is proposed no more once this many of its trials failed and none completed or was
#: pruned (while another family can still be proposed).
FAMILY_FAILURES = 5


#: study system attr ``PREFIX + family``: when a worker said the family is proposed no more
_EXCLUDED_PREFIX = "tuneops:family_excluded:"


class FamilyGuard(RoutingSampler):
    """Stops proposing a model family whose trials only fail; defers everything else to ``base``.

    Optuna's samplers learn from completed and pruned trials only, so a family that cannot fit
    the data (a missing library, labels it refuses) stays the least known choice: TPE proposed
    it for every trial from the 14th on of a 3-family study until the study stopped for its
    failures (:data:`tuneops.runner.MAX_FAILED_IN_A_ROW`), the other families starved. Once a
    family has ``limit`` failed trials and no completed or pruned one, its proposals are
    replaced by a choice among the other families (independent TPE over the study's finished
    trials). A family that completes a trial (one still running elsewhere) is proposed again.
    When every family would be excluded none is: the study's own stop names the cause. Trials
    queued with fixed parameters (warm start, retries) are Optuna's, not the sampler's.

    The counts are kept incrementally (finished trials do not change), so a trial costs the
    unfinished tail of the study, not a scan of every trial.

    Args:
        base: the sampler of every parameter and trial.
        families: the choices of the ``family`` parameter.
        seed: the seed of the replacement choice.
        limit: failed trials, none completed, that exclude a family.
    """

    def __init__(
        self,
        base: optuna.samplers.BaseSampler,
        families: Sequence[str],
        *,
        seed: int | None = None,
        limit: int = FAMILY_FAILURES,
    ) -> None:
        self._base = base
        self._families = list(families)
        self._limit = limit
        self._fallback = optuna.samplers.TPESampler(seed=seed, constant_liar=False)
        self._rng = np.random.default_rng(seed)
        self._done_below = 0  # every trial numbered below this is finished and counted
        self._counted: set[int] = set()  # finished trials counted above it
        self._failed: dict[str, int] = {}
        self._worked: dict[str, int] = {}
        self._last_reason: dict[str, str] = {}
        self._told: set[str] = set()
        self._created = time.time()

    def excluded(self, study: optuna.Study) -> set[str]:
        """The families no longer proposed, from the study's trials now."""
        self._count(study)
        out = {
            f
            for f in self._families
            if self._failed.get(f, 0) >= self._limit and not self._worked.get(f)
        }
        if len(out) >= len(self._families):
            return set()
        for family in sorted(out - self._told):
            self._told.add(family)
            # Once per run, not once per worker: the first of a run's forked workers (which
            # share this sampler's creation time) marks the study with the time; a later run
            # (a resumed one, a joined worker) was created after the mark and says it again.
            said = f"{_EXCLUDED_PREFIX}{family}"
            mark = _optuna.study_system_attrs(study).get(said)
            if isinstance(mark, float) and mark >= self._created:
                continue
            _optuna.set_study_system_attr(study, said, time.time())
            _log.warning(
                "family %r: its first %d trials failed and none completed, so no more trials of it "
                "are proposed in this run (the last said: %s). Fix the cause and run again to "
                "tune it: the study resumes with its finished trials",
                family,
                self._failed[family],
                self._last_reason.get(family, "unknown"),
            )
        return out

    def _count(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        for t in trials[self._done_below :]:
            if t.number in self._counted or not t.state.is_finished():
                continue
            self._counted.add(t.number)
            family = t.params.get(_study.FAMILY)
            if family is None or _study.ABANDONED in t.user_attrs:
                continue
            if t.state == TrialState.FAIL:
                self._failed[family] = self._failed.get(family, 0) + 1
                self._last_reason[family] = str(t.user_attrs.get(_study.FAIL_REASON, "unknown"))
            else:
                self._worked[family] = self._worked.get(family, 0) + 1
        while self._done_below in self._counted:
            self._counted.discard(self._done_below)
            self._done_below += 1

    def _family(self, study: optuna.Study, trial: FrozenTrial, proposed: Any) -> Any:
        excluded = self.excluded(study)
        if proposed not in excluded:
            return proposed
        others = [f for f in self._families if f not in excluded]
        try:
            return self._fallback.sample_independent(
                study, trial, _study.FAMILY, CategoricalDistribution(others)
            )
        except ValueError:
            # a trial of an excluded family completed since the count (another worker's)
            return others[int(self._rng.integers(len(others)))]

    def route(self, study: optuna.Study, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        return self._base

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        sampled = self._base.sample_relative(study, trial, search_space)
        if _study.FAMILY in sampled:
            sampled[_study.FAMILY] = self._family(study, trial, sampled[_study.FAMILY])
        return sampled

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        value = self._base.sample_independent(study, trial, param_name, param_distribution)
        if param_name == _study.FAMILY:
            value = self._family(study, trial, value)
        return value

    def reseed_rng(self) -> None:
        self._base.reseed_rng()
        self._fallback.reseed_rng()


# -- the entry point ------------------------------------------------------------------------------
def make_sampler(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int | None,
    conditional: bool | None = False,
    n_objectives: int | None = None,
    space: Mapping[str, BaseDistribution] | SpaceKind | None = None,
    n_trials: int | None = None,
) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` with keyword ``params``.

    ``auto`` is an :class:`AutoSampler`: give it what is known (``n_objectives``, ``space``
    as Optuna distributions, ``n_trials``) and it chooses now; what is not given it reads from
    the study (objectives) or the first trials (space). ``conditional=None`` means "unknown";
    ``False`` (the default, for callers that predate the rule) is taken as "unknown" too for
    ``auto`` when no ``space`` is given, since a caller that knows its space passes it.
    ``tpe`` by name is multivariate TPE, grouped when ``conditional``.

    Raises:
        SpecError: unknown name, or parameters the sampler does not accept.

    Example::

        >>> type(make_sampler("tpe", seed=0)).__name__
        'TPESampler'
        >>> auto = make_sampler("auto", seed=0, n_objectives=2, conditional=True, n_trials=50)
        >>> auto.describe()["why"]
        'conditional space: multivariate TPE with group, the one Optuna sampler that models it'
    """
    if name not in SAMPLERS:
        raise SpecError(unknown_name("sampler", name, SAMPLERS, field="search.sampler"))
    if name == "gp" and not gp_available():
        # every trial failed on it ("No module named 'torch'"), 20 in a row before the run
        # stopped
        raise SpecError(
            "search.sampler: expected a sampler that can run here, received gp, which needs "
            "PyTorch, not installed; install it (pip install torch), or choose another sampler "
            "(auto uses TPE where PyTorch is missing)."
        )
    kw = dict(params or {})
    try:
        if name == "auto":
            return AutoSampler(
                seed=seed,
                n_objectives=n_objectives,
                space=space,
                n_trials=n_trials,
                conditional=conditional if (conditional or space is not None) else None,
                **kw,
            )
        return SAMPLERS[name](seed, group=bool(conditional), **kw)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"search.sampler: {name} does not accept {kw}: {exc}") from exc
