"""Nearest past tasks and a small, diverse portfolio of their best configurations (pure).

:func:`nearest` ranks the entries of one family and task by the distance of their scaled
meta-features to the query's; :func:`portfolio` pools the best configurations of those
neighbours (skipping near-duplicates, so a handful of trials covers several good regions) and
orders them by one of :data:`STRATEGIES`: by default ``consensus``, the configurations with
the lowest mean estimated regret across the neighbours first. :func:`fit_to_space` puts a
configuration into the current search space (clip numbers, drop unknown parameters).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuneops.errors import UsageError, unknown_name
from tuneops.knowledge.base import Entry, KnowledgeBase, size_proxy
from tuneops.knowledge.metafeatures import distance, raw_cosine_distance, scale_features
from tuneops.space import Param

__all__ = [
    "Neighbour",
    "Recommendation",
    "STRATEGIES",
    "nearest",
    "portfolio",
    "fit_to_space",
    "param_distance",
    "seed_recipe",
    "greedy",
    "greedy_portfolio",
    "normalized_regrets",
    "cost_scores",
    "candidate_pool",
    "pooled_regret",
    "kernel_mass",
]


@dataclass(frozen=True)
class Neighbour:
    entry: Entry
    distance: float


@dataclass(frozen=True)
class Recommendation:
    """One configuration to try, where it came from, and how it scored there."""

    params: Mapping[str, Any]
    dataset: str
    distance: float
    score: float
    rank: int  # 0 = that dataset's best configuration

    @property
    def source(self) -> str:
        return f"kb:{self.dataset}#{self.rank + 1} (distance {self.distance:.3g})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": dict(self.params),
            "dataset": self.dataset,
            "distance": self.distance,
            "score": self.score,
            "rank": self.rank,
        }


def nearest(
    kb: KnowledgeBase, meta: Mapping[str, float], *, family: str, task: str, k: int = 8
) -> list[Neighbour]:
    """The ``k`` entries of ``family`` and ``task`` closest to ``meta``, nearest first.

    Meta-features are scaled against the candidates themselves (see
    :func:`~tuneops.knowledge.metafeatures.scale_features`), so no feature dominates.
    """
    candidates = [e for e in kb.select(family=family, task=task) if e.configs]
    if not candidates:
        return []
    population = [e.meta_features for e in candidates] + [meta]
    scaled = scale_features(population)
    query = scaled[-1]
    ranked = sorted(
        (Neighbour(e, distance(scaled[i], query)) for i, e in enumerate(candidates)),
        key=lambda n: (n.distance, n.entry.dataset),
    )
    return ranked[:k]


def seed_recipe(
    kb: KnowledgeBase, meta: Mapping[str, float], *, family: str, task: str, size: int = 3
) -> list[Recommendation]:
    """The seed's baseline: the raw-cosine nearest entry's top ``size`` configurations."""
    candidates = [e for e in kb.select(family=family, task=task) if e.configs]
    if not candidates:
        return []
    best = min(candidates, key=lambda e: (raw_cosine_distance(e.meta_features, meta), e.dataset))
    d = raw_cosine_distance(best.meta_features, meta)
    return [
        Recommendation(p, best.dataset, d, s, i) for i, (p, s) in enumerate(best.configs[:size])
    ]


def _unit(param: Param, value: Any) -> float | None:
    """A parameter value on [0, 1] of its range (log ranges on log scale); None if categorical."""
    if param.kind not in ("int", "float") or not isinstance(value, (int, float)):
        return None
    low, high = float(param.low or 0.0), float(param.high or 0.0)
    if param.log:
        low, high, value = math.log(low), math.log(high), math.log(max(float(value), 1e-300))
    return 0.0 if high <= low else float(np.clip((float(value) - low) / (high - low), 0.0, 1.0))


def param_distance(a: Mapping[str, Any], b: Mapping[str, Any], space: Mapping[str, Param]) -> float:
    """Root-mean-square difference of two configurations on the unit scale of ``space``."""
    diffs = []
    for name, param in space.items():
        if param.kind == "fixed":
            continue
        if name not in a or name not in b:
            diffs.append(1.0 if (name in a) != (name in b) else 0.0)
            continue
        ua, ub = _unit(param, a[name]), _unit(param, b[name])
        diffs.append(
            abs(ua - ub) if ua is not None and ub is not None else float(a[name] != b[name])
        )
    return float(np.sqrt(np.mean(np.square(diffs)))) if diffs else 0.0


def fit_to_space(
    params: Mapping[str, Any], space: Mapping[str, Param]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Put a configuration into ``space``; returns (params, what did not fit: ``(issue,
    action)`` pairs, the action being what clipping does about it).

    Numbers out of [low, high] are clipped, ints rounded and steps snapped; a categorical value
    not among the choices and a parameter the space does not search are dropped, so the sampler
    fills them in. A fixed parameter given its fixed value fits.
    """
    out: dict[str, Any] = {}
    changes: list[tuple[str, str]] = []
    searched = [n for n, p in space.items() if p.kind != "fixed"]
    for name, value in params.items():
        param = space.get(name)
        if param is not None and param.kind == "fixed":
            if value != param.value:
                changes.append((f"{name}={value!r}: fixed at {param.value!r} here", "dropped"))
            continue
        if param is None:
            close = difflib.get_close_matches(name, searched, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            changes.append((f"{name}: not searched in this space{hint}", "dropped"))
            continue
        if param.when and all(parent in params for parent, _ in param.when) and not (
            param.is_active(params)
        ):
            when = ", ".join(f"{p} in {list(v)}" for p, v in param.when)
            changes.append((f"{name}: used only when {when}", "ignored"))
            continue
        if param.kind == "categorical":
            if value in param.choices:
                out[name] = value
            else:
                changes.append((f"{name}={value!r}: not among {list(param.choices)}", "dropped"))
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            changes.append((f"{name}={value!r}: not a number", "dropped"))
            continue
        low, high = float(param.low or 0.0), float(param.high or 0.0)
        clipped = min(max(float(value), low), high)
        issue = f"{name}={value!r}: outside [{param.low}, {param.high}]" if clipped != value else ""
        if param.step:
            snapped = min(low + round((clipped - low) / param.step) * param.step, high)
            if snapped != clipped and not issue:
                issue = f"{name}={value!r}: not on the grid of step {param.step:g} from {param.low}"
            clipped = snapped
        if param.kind == "int":
            if clipped != round(clipped) and not issue:
                issue = f"{name}={value!r}: not a whole number"
            clipped = int(round(clipped))
        if clipped != value:
            changes.append((issue or f"{name}={value!r}: not in the space", f"set to {clipped!r}"))
        out[name] = clipped
    return out, changes


def _unit_matrix(
    configs: Sequence[Mapping[str, Any]], space: Mapping[str, Param]
) -> tuple[np.ndarray, np.ndarray]:
    """Configurations as rows on the unit scale of ``space`` (NaN = not set) and which columns are
    categorical."""
    names = [n for n, p in space.items() if p.kind != "fixed"]
    out = np.full((len(configs), len(names)), np.nan)
    categorical = np.array([space[n].kind == "categorical" for n in names], dtype=bool)
    for j, name in enumerate(names):
        param = space[name]
        for i, c in enumerate(configs):
            if name not in c:
                continue
            if param.kind == "categorical":
                choices = list(param.choices)
                out[i, j] = float(choices.index(c[name])) if c[name] in choices else -1.0
            else:
                u = _unit(param, c[name])
                out[i, j] = np.nan if u is None else u
    return out, categorical


def _pairwise(a: np.ndarray, b: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """RMS unit-scale distances between the rows of ``a`` and ``b`` (as :func:`param_distance`)."""
    if a.shape[1] == 0:
        return np.zeros((len(a), len(b)))
    x, y = a[:, None, :], b[None, :, :]
    diff = np.where(categorical, (x != y).astype(float), np.abs(x - y))
    nan_x, nan_y = np.isnan(x), np.isnan(y)
    diff = np.where(nan_x & nan_y, 0.0, np.where(nan_x | nan_y, 1.0, diff))
    return np.sqrt(np.mean(diff**2, axis=2))


def _distance_on_own(a: np.ndarray, b: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """RMS unit-scale distances from each row of ``a`` (candidates) to each row of ``b``
    (trials) on the parameters the candidate sets: a parameter the base lacks (the spec's
    ``criterion``) is chosen by the sampler, and counted as a difference of 1 it kept a
    candidate a trial had run from ever looking tried (5 of 8 warm trials ran one again)."""
    if a.shape[1] == 0:
        return np.zeros((len(a), len(b)))
    x, y = a[:, None, :], b[None, :, :]
    diff = np.where(categorical, (x != y).astype(float), np.abs(x - y))
    diff = np.where(np.isnan(x), 0.0, np.where(np.isnan(y), 1.0, diff))
    count = np.maximum((~np.isnan(a)).sum(axis=1), 1)[:, None]
    return np.sqrt((diff**2).sum(axis=2) / count)


def _regrets(
    neighbours: Sequence[Neighbour],
    candidates: np.ndarray,
    space: Mapping[str, Param],
    categorical: np.ndarray,
) -> np.ndarray:
    """Estimated relative regret of each candidate on each neighbour, shape (neighbours,
    candidates).

    A candidate's score on a past task is that of the nearest configuration tried there (the
    entry keeps every trial of its cold run), and its regret is the shortfall from that task's
    best, relative to the best: 0 = as good as the best found there.
    """
    out = np.zeros((len(neighbours), len(candidates)))
    for i, n in enumerate(neighbours):
        tried, _ = _unit_matrix([p for p, _ in n.entry.configs], space)
        scores = np.array([s for _, s in n.entry.configs])
        sign = 1.0 if n.entry.direction == "maximize" else -1.0
        best = float(np.max(sign * scores))
        nearest_tried = np.argmin(_pairwise(candidates, tried, categorical), axis=1)
        out[i] = (best - sign * scores[nearest_tried]) / max(abs(best), 1e-12)
    return out


def portfolio(
    neighbours: Sequence[Neighbour],
    space: Mapping[str, Param],
    *,
    size: int = 10,
    per_neighbour: int = 5,
    min_distance: float = 0.1,
    strategy: str = "consensus",
) -> list[Recommendation]:
    """Up to ``size`` diverse configurations from the neighbours' best, best bet first.

    Candidates are the ``per_neighbour`` best configurations of every neighbour, put into
    ``space``; one within ``min_distance`` (unit-scale RMS, see :func:`param_distance`) of a
    candidate already kept is skipped. ``strategy`` orders them (see :data:`STRATEGIES`):

    * ``round_robin``: every neighbour's best, nearest neighbour first, then their second best, ...
    * ``consensus``: by the mean estimated regret over all the neighbours (weighted by
      nearness, 1/rank), so a configuration good on many similar tasks comes before one that
      is best on a single task.
    * ``coverage``: greedily the configuration that most lowers the weighted sum over the
      neighbours of the best regret any chosen configuration reaches there (a portfolio whose
      members are good on different tasks).
    * ``greedy``: the zero-shot portfolio of :func:`greedy_portfolio` over the neighbours given
      (pass every entry of the family for the task-independent portfolio).
    """
    if strategy not in STRATEGIES:
        raise UsageError(unknown_name("portfolio strategy", strategy, STRATEGIES))
    pool: list[Recommendation] = []
    for rank in range(per_neighbour):
        for n in neighbours:
            if rank >= len(n.entry.configs):
                continue
            raw, score = n.entry.configs[rank]
            params, _ = fit_to_space(raw, space)
            if any(param_distance(params, c.params, space) < min_distance for c in pool):
                continue
            pool.append(Recommendation(params, n.entry.dataset, n.distance, score, rank))
    if strategy == "greedy":
        return greedy_portfolio(
            neighbours, space, size=size, per_neighbour=per_neighbour, min_distance=min_distance
        )
    if strategy == "round_robin" or len(pool) <= 1:
        return pool[:size]
    candidates, categorical = _unit_matrix([c.params for c in pool], space)
    regret = _regrets(neighbours, candidates, space, categorical)
    weights = 1.0 / np.arange(1, len(neighbours) + 1)
    weights = weights / weights.sum()
    if strategy == "consensus":
        order = np.argsort(weights @ regret, kind="stable")
        return [pool[i] for i in order[:size]]
    chosen: list[int] = []
    reached = np.full(len(neighbours), np.inf)
    while len(chosen) < min(size, len(pool)):
        gain = [
            (weights @ np.minimum(reached, regret[:, j]) if j not in chosen else np.inf)
            for j in range(len(pool))
        ]
        j = int(np.argmin(gain))
        chosen.append(j)
        reached = np.minimum(reached, regret[:, j])
    return [pool[i] for i in chosen]


#: How :func:`portfolio` orders its candidates (names documented there).
STRATEGIES = ("round_robin", "consensus", "coverage", "greedy")

#: Bandwidth (unit-scale RMS distance) of the kernel that estimates a configuration's score on a
#: past task from the configurations tried there, and the weight of that task's median score
#: (the prior: a configuration far from anything tried there is assumed typical, not good).
BANDWIDTH = 0.1
PRIOR_WEIGHT = 0.1
#: Below this kernel mass per task (the median over candidates of the summed kernel weights of
#: the configurations tried on a task, :data:`BANDWIDTH`), the per-task estimates are mostly
#: their prior and the first pick uses :func:`pooled_regret`. The shipped base: k-NN 4.2 and
#: SVM 17.6 (200 trials in 2-3 dimensions), HistGradientBoosting 0.19 and LightGBM 0.45
#: (20 and 12 trials in 5-7 dimensions).
DENSE = 1.0


def normalized_regrets(
    tasks: Sequence[Entry],
    candidates: np.ndarray,
    space: Mapping[str, Param],
    categorical: np.ndarray,
) -> np.ndarray:
    """Estimated normalized regret of each candidate on each task, shape (tasks, candidates).

    The score of a candidate on a task is a kernel-weighted mean of the scores of the
    configurations tried there (Gaussian in unit-scale distance, :data:`BANDWIDTH`), shrunk
    towards the task's median score (:data:`PRIOR_WEIGHT`); a configuration tried there gets
    (almost) its own score. Regret is normalized per task as in auto-sklearn 2.0 and HPO-B:
    ``(best - score) / (best - worst)`` over the configurations tried there, in [0, 1]; a task
    where every configuration scored the same counts 0 for every candidate.
    """
    out = np.zeros((len(tasks), len(candidates)))
    for i, entry in enumerate(tasks):
        tried, _ = _unit_matrix([p for p, _ in entry.configs], space)
        sign = 1.0 if entry.direction == "maximize" else -1.0
        scores = sign * np.array([s for _, s in entry.configs], dtype=float)
        reference = sign * np.array(entry.history, dtype=float) if entry.history else scores
        best, worst = float(scores.max()), float(min(scores.min(), reference.min()))
        if best - worst <= 1e-12:
            continue
        weights = np.exp(-((_pairwise(candidates, tried, categorical) / BANDWIDTH) ** 2))
        median = float(np.median(reference))
        estimate = (weights @ scores + PRIOR_WEIGHT * median) / (weights.sum(axis=1) + PRIOR_WEIGHT)
        out[i] = np.clip((best - estimate) / (best - worst), 0.0, 1.0)
    return out


#: How much a serving cost can outweigh regret: the most expensive candidate pays at most
#: ``COST_SCALE * cost_weight`` in mean normalized regret (0.05 for accuracy + latency), so
#: the first pick is a cheaper good configuration, not a stump forest.
COST_SCALE = 0.1

#: Bandwidth of the pooled estimate of a configuration's mean regret (:func:`pooled_regret`),
#: wider than :data:`BANDWIDTH`: it draws on the configurations tried on every task at once.
POOLED_BANDWIDTH = 0.15


def pooled_regret(
    tasks: Sequence[Entry],
    candidates: np.ndarray,
    space: Mapping[str, Param],
    categorical: np.ndarray,
    sources: Sequence[int | None] = (),
) -> np.ndarray:
    """Each candidate's mean normalized regret over ``tasks``, estimated from all of them at once.

    Every configuration tried on any task is a sample of (configuration, normalized regret on
    that task); a candidate's mean regret is their kernel-weighted mean (Gaussian,
    :data:`POOLED_BANDWIDTH`), shrunk towards 0.5 (an unknown region is assumed mediocre).
    With a few dozen trials per task in a 5- to 7-dimensional space, most candidates are far
    from every configuration tried on any single task, so the per-task estimate of
    :func:`normalized_regrets` is mostly its prior there; pooling the tasks' trials sees the
    regions good on many tasks. This picks the portfolio's first configuration (the robust
    default) when the tasks' own trials are sparse (:func:`kernel_mass` below :data:`DENSE`).

    ``sources``: for each candidate, the index of the task it was taken from; that task's trials
    are left out of its estimate. Otherwise a candidate's own trial (regret 0 there, the best
    of its task) dominates wherever the other tasks tried nothing near it, and an odd winner
    of a single task (a forest of depth 2 on a noise-like dataset) looks like a robust default.
    """
    points, regrets, owner = [], [], []
    for t, entry in enumerate(tasks):
        scores = np.array([s for _, s in entry.configs], dtype=float)
        if entry.direction != "maximize":
            scores = -scores
        history = np.array(entry.history, dtype=float) if entry.history else scores
        if entry.history and entry.direction != "maximize":
            history = -history
        best, worst = float(scores.max()), float(min(scores.min(), history.min()))
        if best - worst <= 1e-12:
            continue
        points.append(_unit_matrix([p for p, _ in entry.configs], space)[0])
        regrets.append((best - scores) / (best - worst))
        owner.append(np.full(len(scores), t))
    if not points:
        return np.full(len(candidates), 0.5)
    distances = _pairwise(candidates, np.vstack(points), categorical)
    weights = np.exp(-((distances / POOLED_BANDWIDTH) ** 2))
    if sources:
        of = np.concatenate(owner)
        own = np.array([-1 if s is None else s for s in sources])
        weights = np.where(of[None, :] == own[:, None], 0.0, weights)
    prior = 0.5
    return (weights @ np.concatenate(regrets) + prior * 0.5) / (weights.sum(axis=1) + prior)


def kernel_mass(
    tasks: Sequence[Entry],
    candidates: np.ndarray,
    space: Mapping[str, Param],
    categorical: np.ndarray,
) -> float:
    """How densely the tasks' own trials cover the candidates: the median over candidates of
    the kernel weights (:data:`BANDWIDTH`) of the configurations tried on a task, summed and
    averaged over the tasks. Below :data:`DENSE`, per-task estimates say little."""
    if not tasks or len(candidates) == 0:
        return 0.0
    mass = np.zeros(len(candidates))
    for entry in tasks:
        tried, _ = _unit_matrix([p for p, _ in entry.configs], space)
        mass += np.exp(-((_pairwise(candidates, tried, categorical) / BANDWIDTH) ** 2)).sum(axis=1)
    return float(np.median(mass / len(tasks)))


def cost_scores(family: str, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Each configuration's serving-cost proxy (:func:`~tuneops.knowledge.base.size_proxy`) on
    [0, 1] among ``configs``: log scale, 0 = the cheapest, 1 = the most expensive."""
    logs = np.log(np.array([max(size_proxy(family, c), 1e-9) for c in configs], dtype=float))
    if len(logs) == 0 or logs.max() - logs.min() < 1e-12:
        return np.zeros(len(logs))
    return (logs - logs.min()) / (logs.max() - logs.min())


def greedy(
    regret: np.ndarray,
    size: int,
    *,
    cost: np.ndarray | None = None,
    cost_weight: float = 0.0,
    mean: np.ndarray | None = None,
) -> list[int]:
    """Greedy portfolio selection on a (tasks x candidates) regret matrix; returns column indices.

    The first pick minimises the mean regret over the tasks (the configuration best on
    average: a robust default); every next pick minimises the mean over the tasks of the
    smallest regret any chosen configuration reaches there, so it is chosen for what it adds
    on the tasks the others miss (Feurer et al. 2022, "Auto-sklearn 2.0", greedy portfolio
    construction; FLAML's zero-shot AutoML builds its portfolio the same way). Ties go to the
    lower mean regret. With ``cost`` (per candidate, on [0, 1]) the objective adds
    ``COST_SCALE * cost_weight * cost``: a serving-cost-aware portfolio prefers the cheaper of
    two configurations that cover the tasks nearly alike, not the cheapest configuration.
    ``mean``: a better estimate of each candidate's mean regret than ``regret.mean(axis=0)``
    (:func:`pooled_regret`), for the first pick and for ties.
    """
    n_tasks, n = regret.shape
    if n == 0:
        return []
    penalty = COST_SCALE * cost_weight * (cost if cost is not None else np.zeros(n))
    if mean is None:
        mean = regret.mean(axis=0) if n_tasks else np.zeros(n)
    chosen: list[int] = []
    reached = np.ones(n_tasks)  # normalized regret: 1 = the worst configuration tried there
    while len(chosen) < min(size, n):
        covered = np.minimum(reached[:, None], regret).mean(axis=0) if n_tasks else np.zeros(n)
        value = (covered if chosen else mean) + penalty
        value[chosen] = np.inf
        order = np.lexsort((mean + penalty, value))  # by value, then by mean regret
        j = int(order[0])
        chosen.append(j)
        reached = np.minimum(reached, regret[:, j])
    return chosen


def candidate_pool(
    tasks: Sequence[Neighbour],
    space: Mapping[str, Param],
    *,
    per_neighbour: int = 5,
    min_distance: float = 0.05,
) -> list[Recommendation]:
    """The ``per_neighbour`` best configurations of every task, put into ``space``, without
    near-duplicates (closer than ``min_distance``): distinct configurations only."""
    pool: list[Recommendation] = []
    units: list[np.ndarray] = []
    for rank in range(per_neighbour):
        for n in tasks:
            if rank >= len(n.entry.configs):
                continue
            raw, score = n.entry.configs[rank]
            params, _ = fit_to_space(raw, space)
            unit, categorical = _unit_matrix([params], space)
            if units and _pairwise(unit, np.vstack(units), categorical).min() < min_distance:
                continue
            units.append(unit)
            pool.append(Recommendation(params, n.entry.dataset, n.distance, score, rank))
    return pool


def greedy_portfolio(
    tasks: Sequence[Neighbour],
    space: Mapping[str, Param],
    *,
    size: int = 10,
    per_neighbour: int = 5,
    min_distance: float = 0.05,
    cost_weight: float = 0.0,
) -> list[Recommendation]:
    """The zero-shot portfolio of ``tasks`` (every past task of a family, or the nearest ones).

    Candidates: :func:`candidate_pool`. Their regret on every task: :func:`normalized_regrets`.
    Selection: :func:`greedy` (the robust default first, then what covers the tasks it
    misses). ``cost_weight`` > 0 (a spec that also minimises latency or size) adds each
    candidate's serving-cost proxy (:func:`cost_scores`) to the objective.
    """
    pool = candidate_pool(tasks, space, per_neighbour=per_neighbour, min_distance=min_distance)
    if not pool:
        return []
    unit, categorical = _unit_matrix([c.params for c in pool], space)
    entries = [n.entry for n in tasks]
    regret = normalized_regrets(entries, unit, space, categorical)
    sparse = kernel_mass(entries, unit, space, categorical) < DENSE
    index = {e.dataset: i for i, e in enumerate(entries)}
    sources = [index.get(c.dataset) for c in pool]
    mean = pooled_regret(entries, unit, space, categorical, sources) if sparse else None
    family = tasks[0].entry.family
    cost = cost_scores(family, [c.params for c in pool]) if cost_weight else None
    chosen = greedy(regret, size, cost=cost, cost_weight=cost_weight, mean=mean)
    return [pool[i] for i in chosen]
