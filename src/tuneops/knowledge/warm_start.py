"""The ``warm_start`` spec field: which configurations a new study tries first.

Schema (every key optional)::

    warm_start: auto                     # shorthand for {auto: true}
    warm_start:
      params:                            # known-good configurations, tried first, in order
        - {n_estimators: 200, max_depth: 12}    # partial: the sampler fills the rest
        - {family: svm, C: 10}           # several families: name the family
      studies: [churn-v1, {study: churn-v2, take: pareto}]   # their best (or Pareto) trials
      auto: true                         # or {neighbors: 16, max_trials: 10, max_share: 0.25,
                                         #     sources: [shipped, storage, PATH],
                                         # strategy: consensus | coverage | round_robin | adaptive}
      out_of_space: error                # or clip: clip numbers, drop the rest, with a warning

``auto`` retrieves the nearest past tasks of the same family and task type from the knowledge
base (see :mod:`tuneops.knowledge.base`) and draws at most ``max_trials`` (and at most
``max_share`` of ``n_trials``) configurations from their best. With the default strategy,
``adaptive``, the study's trials right after the explicit ones are each chosen when they start,
from the past tasks whose results agree with this study's so far
(:mod:`tuneops.knowledge.adaptive`; the plan is stored in the study). The static strategies
enqueue a fixed portfolio (:mod:`tuneops.knowledge.portfolio`). Explicit configurations and
studies are what you asked for, so they are all enqueued, but together they must fit in
``n_trials``.

Every warm-start trial counts in ``n_trials`` (enqueued ones are ordinary WAITING trials
created before the workers create theirs); its user attr ``warm_start`` names its source
(``params[0]``, ``study:churn-v1#17``, ``kb:pmlb:iris#1 (distance 0.12)``, with
``, adaptive after 2 result(s)`` for an adaptive one), and the results document has a
``warm_start`` section saying how those trials did.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from tuneops import _optuna, _study
from tuneops.errors import DataError, SpecError, StudyNotFound
from tuneops.knowledge.adaptive import PLAN_ATTR, plan_family
from tuneops.knowledge.base import (
    META_ATTR,
    add_prefix,
    load_file,
    load_sources,
    strip_prefix,
)
from tuneops.knowledge.metafeatures import meta_features
from tuneops.knowledge.portfolio import (
    fit_to_space,
    greedy_portfolio,
    nearest,
    portfolio,
)
from tuneops.metrics import METRICS
from tuneops.space import Param
from tuneops.spec import AUTO_STRATEGIES, AutoSettings, WarmStart

__all__ = [
    "WarmStart",
    "AutoSettings",
    "AUTO_STRATEGIES",
    "parse_warm_start",
    "plan",
    "WarmStartPlan",
    "warm_start_section",
    "TAG",
]

_log = logging.getLogger("tuneops")
# What the warm start proposes, before the first trial: a status line the CLI prints (without
# -v), where INFO lines of the "tuneops" logger are hidden (tuneops.cli._common.configure).
_status = logging.getLogger("tuneops.status")
TAG = _study.WARM_START  # trial user attr: where the configuration came from
#: Study user attr: the configurations the warm start queues ({params, source} each), written
#: before the first is queued, so a resume queues those a stopped run had not queued yet.
QUEUE_ATTR = "tuneops:warm_start_queue"
#: Trial user attr: the trial's place in that queue (sources are not unique: two families'
#: portfolios can both draw "kb:pmlb:pima#1").
INDEX = "tuneops:warm_start_index"


def parse_warm_start(raw: Any) -> WarmStart:
    """The ``warm_start`` section as validated by the spec (a :class:`~tuneops.spec.WarmStart`).

    A loaded spec's ``warm_start`` is validated already and returned as it is (None gives the
    empty warm start); raw data is validated by the same model.

    Raises:
        SpecError: naming the sub-field, what was expected and what was received.
    """
    if raw is None:
        return WarmStart()
    if isinstance(raw, WarmStart):
        return raw
    return WarmStart.from_raw(raw)


def queue(study: optuna.Study, items: Sequence[tuple[Mapping[str, Any], str]]) -> list[str]:
    """Queue ``(params, source)`` warm-start configurations on a new study: recorded first
    (:data:`QUEUE_ATTR`), so that :func:`queue_the_rest` can finish a queue a stopped run left
    short. Returns the sources queued."""
    if not items:
        return []
    study.set_user_attr(QUEUE_ATTR, [{"params": dict(p), "source": s} for p, s in items])
    for i, (params, source) in enumerate(items):
        study.enqueue_trial(dict(params), user_attrs={TAG: source, INDEX: i})
    return [s for _, s in items]


def queue_the_rest(study: optuna.Study, trials: Sequence[Any]) -> list[str]:
    """On a resume, queue the configurations of the recorded warm-start queue that the run which
    began the study had not queued when it stopped (a Ctrl-C or a kill among the enqueues lost
    the rest silently: "warm start: 2 trials (2 given)" of 6 listed). Returns their sources."""
    plan = study.user_attrs.get(QUEUE_ATTR) or []
    present = {t.user_attrs.get(INDEX) for t in trials}
    missing = [(i, item) for i, item in enumerate(plan) if i not in present]
    if missing:
        _log.warning(
            "warm start: %d of its %d configuration(s) were not queued when the run that began "
            "the study stopped; queued now",
            len(missing),
            len(plan),
        )
    for i, item in missing:
        study.enqueue_trial(item["params"], user_attrs={TAG: item["source"], INDEX: i})
    return [item["source"] for _, item in missing]


# -- the plan -----------------------------------------------------------------------------------
@dataclass
class WarmStartPlan:
    """The configurations to enqueue: explicit ones resolved up front, auto ones at apply."""

    settings: WarmStart
    spaces: Mapping[str, Mapping[str, Param]]
    task: str
    n_trials: int | None
    storage_url: str | None
    explicit: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    #: > 0 when the spec also minimises a serving cost (latency, size): the share of such
    #: objectives; the portfolio then prefers configurations that were cheap in the base.
    cost_weight: float = 0.0

    def apply(self, study: optuna.Study, dataset: Any, *, seed: int = 0) -> list[str]:
        """Record meta-features once; on a study without trials, enqueue the warm start.

        Returns the sources of the enqueued trials (empty when the study already ran).
        """
        meta = study.user_attrs.get(META_ATTR)
        if meta is None:
            meta = {
                "task": dataset.task,
                "features": meta_features(dataset.X, dataset.y, dataset.task, seed=seed),
            }
            study.set_user_attr(META_ATTR, meta)
        trials = study.get_trials(deepcopy=False)
        if trials:  # resuming: the warm start was queued when the study began, unless its run
            return queue_the_rest(study, trials)  # stopped before it queued them all
        proposed = list(self.explicit)
        if self.settings.auto is not None:
            proposed += self._auto(study, meta["features"], len(proposed))
        elif proposed:
            sources = ", ".join(s for _, s in proposed[:5]) + (", ..." if len(proposed) > 5 else "")
            _status.info("warm start: %d configuration(s) from %s", len(proposed), sources)
        distinct: list[tuple[dict[str, Any], str]] = []
        for params, source in proposed:
            first = next((s for p, s in distinct if p == params), None)
            if first is not None:  # a study's trial listed twice; a kb pick the spec gave too
                _log.warning(
                    "warm start: %s is the configuration of %s, already queued; run once",
                    source,
                    first,
                )
                continue
            distinct.append((params, source))
        return queue(study, distinct)

    def _auto(
        self, study: optuna.Study, meta: Mapping[str, float], n_explicit: int
    ) -> list[tuple[dict[str, Any], str]]:
        """The static portfolio to enqueue; for ``adaptive``, records the plan instead (nothing to
        enqueue)."""
        auto = self.settings.auto
        assert auto is not None
        size = auto.size(self.n_trials)
        if self.n_trials is not None:
            size = min(size, self.n_trials - n_explicit)
        if size <= 0:
            _log.warning(
                "warm_start.auto: no trial of the budget is left for it (max_share %g of "
                "n_trials %s is %d trial(s), %d taken by explicit configurations); raise "
                "max_share or n_trials for a warm start",
                auto.max_share,
                self.n_trials,
                auto.size(self.n_trials),
                n_explicit,
            )
            return []
        kb = load_sources(auto.sources, self.storage_url, exclude_study=study.study_name)
        families = list(self.spaces)
        near = {f: nearest(kb, meta, family=f, task=self.task, k=auto.neighbors) for f in families}
        # every past task of a family: its zero-shot portfolio is chosen across all of them
        tasks = {f: nearest(kb, meta, family=f, task=self.task, k=len(kb)) for f in families}
        out: list[tuple[dict[str, Any], str]] = []
        if auto.strategy == "adaptive":
            plans = {
                f: plan_family(
                    near[f], self.spaces[f], tasks=tasks[f], cost_weight=self.cost_weight
                )
                for f in families
            }
            order = [f for f in families if plans[f]["candidates"]]
            if order:
                record = {"first": n_explicit, "size": size, "order": order, "families": plans}
                _optuna.set_study_system_attr(study, PLAN_ATTR, record)
                self._announce(size, near, order, n_explicit, describe_plan(plans, order, size))
                return []
        else:
            # Several families: share the portfolio out, family by family, nearest first.
            per_family = {}
            for f in families:
                if auto.strategy == "greedy":
                    per_family[f] = greedy_portfolio(
                        tasks[f], self.spaces[f], size=size, cost_weight=self.cost_weight
                    )
                else:
                    per_family[f] = portfolio(
                        near[f], self.spaces[f], size=size, strategy=auto.strategy
                    )
            for i in range(size):
                for family in families:
                    recs = per_family[family]
                    if i < len(recs) and len(out) < size:
                        out.append((add_prefix(recs[i].params, family, families), recs[i].source))
            if out:
                self._announce(
                    len(out),
                    near,
                    [f for f in families if per_family[f]],
                    n_explicit,
                    f"a {auto.strategy} portfolio, first {_params(out[0][0])}",
                )
        if not out:
            _log.warning(
                "warm_start.auto: the knowledge base (%s) has no %s entries for %s; starting cold",
                ", ".join(auto.sources),
                self.task,
                ", ".join(families),
            )
        return out

    def _announce(
        self,
        size: int,
        neighbours: Mapping[str, Sequence[Any]],
        families: Sequence[str],
        n_explicit: int,
        how: str,
    ) -> None:
        """The console's line of what the warm start proposes (logger ``tuneops.status``, INFO):
        ``warm start: N configurations from K similar datasets (nearest: a, b, c) ...``."""
        found = [n for f in families for n in neighbours[f]]
        found.sort(key=lambda n: n.distance)
        names = list(dict.fromkeys(n.entry.dataset for n in found))
        explicit = f" after {n_explicit} explicit" if n_explicit else ""
        cost = (
            f"; preferring configurations cheap to serve (weight {self.cost_weight:.2g})"
            if self.cost_weight
            else ""
        )
        _status.info(
            # "up to": candidates that fall together in a narrowed space are run once
            "warm start: up to %d configurations%s from %d similar dataset%s (nearest: %s) for "
            "%s: %s%s",
            size,
            explicit,
            len(names),
            "" if len(names) == 1 else "s",
            ", ".join(names[:3]),
            ", ".join(families),
            how,
            cost,
        )


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def describe_plan(plans: Mapping[str, Mapping[str, Any]], order: Sequence[str], size: int) -> str:
    """What an adaptive warm start of ``size`` trials proposes, in the order
    :class:`~tuneops.knowledge.adaptive.WarmStartSampler` takes it (pure): trial ``p`` goes to
    family ``order[p % len(order)]``, from its zero-shot head while the head lasts, else chosen
    after the results so far."""
    n = len(order)
    picks = [(order[p % n], p // n) for p in range(size)]
    heads = [(f, i) for f, i in picks if i < len(plans[f]["head"])]
    then = ", then each chosen after the results so far" if len(heads) < size else ""
    if not heads:
        return "each chosen after the results so far"
    family = heads[0][0]
    first = _params(plans[family]["candidates"][plans[family]["head"][0]])
    others = list(dict.fromkeys(f for f, _ in heads[1:] if f != family))
    if not others:  # one family's head
        same = f" and {len(heads) - 1} more of it" if len(heads) > 1 else ""
        return f"first the robust default of {family}'s zero-shot portfolio ({first}){same}{then}"
    more = len(heads) - 1 - len(others)  # beyond each family's robust default
    return (
        f"the robust default of each family's zero-shot portfolio in turn: {family} ({first}), "
        f"then {', '.join(others)}"
        + (f", and {more} more from their portfolios" if more > 0 else "")
        + then
    )


def serving_cost_weight(objectives: Sequence[Any]) -> float:
    """The share of ``objectives`` that minimise a serving cost (latency, size), 0 when none does.

    Fit time is a training cost, not a serving one, and does not count.
    """
    if not objectives:
        return 0.0
    costs = sum(
        1
        for o in objectives
        if o.metric in METRICS
        and METRICS[o.metric].kind in ("latency", "size")
        and o.direction == "minimize"
    )
    return costs / len(objectives)


def _check(
    params: Mapping[str, Any], space: Mapping[str, Param], where: str, policy: str
) -> dict[str, Any]:
    fitted, changes = fit_to_space(params, space)
    if changes and policy == "error":
        raise SpecError(
            f"{where}: {'; '.join(issue for issue, _ in changes)} (the search space is "
            f"{', '.join(f'{n}' for n, p in space.items() if p.kind != 'fixed')}). Fix the values, "
            "or set warm_start.out_of_space: clip to have them put into the space with a warning."
        )
    for issue, action in changes:
        _log.warning("%s: %s, %s", where, issue, action)
    return fitted


def plan(spec: Any, spaces: Mapping[str, Mapping[str, Param]], task: str) -> WarmStartPlan:
    """Validate ``spec.warm_start`` against the search spaces and resolve explicit sources.

    Runs before the study is created, so a bad warm start refuses the run with nothing
    written.

    Raises:
        SpecError: malformed field, a value outside the space (with ``out_of_space: error``),
            an unknown family, or more explicit configurations than ``n_trials``.
        StudyNotFound: a study named in ``warm_start.studies`` does not exist.
    """
    settings = parse_warm_start(spec.warm_start)
    result = WarmStartPlan(
        settings,
        spaces,
        task,
        spec.n_trials,
        spec.storage,
        cost_weight=serving_cost_weight(spec.objectives),
    )
    for i, source in enumerate(settings.auto.sources if settings.auto is not None else ()):
        if source not in ("shipped", "storage"):
            # read now: a missing or malformed file must refuse the run before the study exists
            try:
                load_file(source)
            except DataError as exc:
                raise DataError(f"warm_start.auto.sources[{i}]: {exc}") from None
    families = list(spaces)
    for i, raw in enumerate(settings.params):
        where = f"warm_start.params[{i}]"
        params = dict(raw)
        family = params.pop("family", families[0] if len(families) == 1 else None)
        if family not in spaces:
            raise SpecError(
                f"{where}.family: expected one of the spec's families {families}, received "
                f"{family!r}"
                + (
                    "; with several families, name the family of each configuration."
                    if family is None
                    else "."
                )
            )
        fitted = _check(params, spaces[family], where, settings.out_of_space)
        result.explicit.append((add_prefix(fitted, family, families), f"params[{i}]"))
    for study_source in settings.studies:
        name = study_source.study
        for trial, family, params in _study_configs(name, study_source.take, spec.storage):
            where = f"warm_start.studies {name!r} trial {trial}"
            if family not in spaces:
                _log.warning("%s: family %s is not searched by this spec; skipped", where, family)
                continue
            fitted = _check(params, spaces[family], where, settings.out_of_space)
            result.explicit.append((add_prefix(fitted, family, families), f"study:{name}#{trial}"))
    if spec.n_trials is not None and len(result.explicit) > spec.n_trials:
        raise SpecError(
            f"warm_start: {len(result.explicit)} configurations from params and studies, but "
            f"search.n_trials is {spec.n_trials}; raise n_trials or list fewer."
        )
    return result


def _study_configs(
    name: str, take: str, storage_url: str | None
) -> list[tuple[int, str, dict[str, Any]]]:
    try:
        study = _study.load_study(name, storage_url)
    except StudyNotFound as exc:
        raise StudyNotFound(f"warm_start.studies: {exc}") from None
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not done:
        raise SpecError(f"warm_start.studies: study {name!r} has no complete trial to start from.")
    if take == "best" or len(study.directions) == 1:
        sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
        chosen = [max(done, key=lambda t: sign * t.values[0])]
        if take == "pareto" and len(study.directions) == 1:
            chosen = chosen[:1]
    else:
        chosen = study.best_trials
    out = []
    for t in sorted(chosen, key=lambda t: t.number):
        family = t.user_attrs.get("family") or _single_family(study, name)
        out.append((t.number, family, strip_prefix(t.params, family)))
    return out


def _single_family(study: optuna.Study, name: str) -> str:
    spec = study.user_attrs.get("tuneops:spec") or {}
    family = (spec.get("model") or {}).get("family")
    if not isinstance(family, str):
        raise SpecError(
            f"warm_start.studies: study {name!r} does not record its model family (not a tuneops "
            "study); list its configurations under warm_start.params instead."
        )
    return family


# -- results ------------------------------------------------------------------------------------
def warm_start_section(
    study: optuna.Study, trials: Sequence[FrozenTrial], front: Collection[int] | None = None
) -> dict[str, Any] | None:
    """How the warm-start trials did: each one's source, value and rank among the feasible
    complete trials, where the best warm trial ranked, and a one-line ``summary`` for the
    console.

    With one objective the rank is by value (1: the best). With several it is 1 plus the number
    of feasible trials that dominate the trial (ranking by the first objective alone called a
    dominated trial the best warm one), and "on the Pareto front" means on ``front``: the trial
    numbers of the front the selection printed (differences within noise removed,
    :func:`tuneops.selection.noise_front`); default the plain Pareto front. A trial tied with
    that front within noise is dominated by none and not on it (the console and the report
    then said different things of one trial).

    A warm-start trial abandoned by its worker (interrupted, or dead) is not counted: its retry,
    the same configuration, carries its tag and counts in its place (the first warm trial is
    the retry of the first one abandoned)."""
    tags = _study.warm_start_tags(trials)  # an older study's untagged retries too
    warm = [t for t in _study.counted(trials) if t.number in tags]
    if not warm:
        return None
    complete = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.values
        and _study.feasible(t) is not False
        and _study.found(t)  # a repeat of a warm trial is no cold find, nor ranked twice
    ]
    signs = np.array(
        [-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0 for d in study.directions]
    )
    multi = len(signs) > 1
    if multi:
        loss = np.array([t.values for t in complete], dtype=float).reshape(-1, len(signs)) * signs

        def dominated_by(t: FrozenTrial) -> int:
            own = np.asarray(t.values, dtype=float) * signs
            return int(np.sum(np.all(loss <= own, axis=1) & np.any(loss < own, axis=1)))

        ranked_numbers = {t.number for t in complete}
        rank = {t.number: 1 + dominated_by(t) for t in warm if t.number in ranked_numbers}
        shown = set(front) if front is not None else {n for n, r in rank.items() if r == 1}
        # a trial on the front shown first, then the least dominated
        best = min(rank, key=lambda n: (n not in shown, rank[n], n), default=None)
        best_cold = None
    else:
        ranked = sorted(complete, key=lambda t: signs[0] * t.values[0])
        position = {t.number: i + 1 for i, t in enumerate(ranked)}
        rank = {t.number: position[t.number] for t in warm if t.number in position}
        best = min(rank, key=lambda n: rank[n], default=None)
        cold = [t for t in complete if t.number not in tags]
        best_cold = min(cold, key=lambda t: signs[0] * t.values[0]).values[0] if cold else None
    by_number = {t.number: t for t in warm}
    kinds = Counter(_kind(tags[t.number]) for t in warm)
    first = min(warm, key=lambda t: (t.user_attrs.get(_study.RETRY_OF, t.number), t.number))
    plan = _optuna.study_system_attrs(study).get(PLAN_ATTR) or {}
    families = plan.get("families", {})
    # the nearest past datasets over every family, nearest first (as the console names them;
    # the first family's five missed a nearer dataset of another family)
    found = [
        (distance, d)
        for f in plan.get("order", [])
        for d, distance in zip(
            families[f].get("neighbours", []),
            families[f].get("distances") or range(len(families[f].get("neighbours", []))),
            strict=False,
        )
    ]
    neighbours = list(dict.fromkeys(d for _, d in sorted(found, key=lambda x: x[0])))
    section = {
        "n_enqueued": len(warm),
        "n_complete": len(rank),
        "n_ranked": len(complete),
        # 1: a warm trial is the best of the study (one objective) or on its front (several)
        "ranking": "pareto" if multi else "value",
        "best_rank": rank[best] if best is not None else None,
        "best_warm_value": _first(by_number[best]) if best is not None else None,
        "best_warm_trial": best,
        "best_cold_value": best_cold,
        "n_on_front": sum(n in shown for n in rank) if multi else None,
        "first_value": _first(first) if first.number in rank else None,
        "first_rank": rank.get(first.number),
        # each trial counted once: an adaptive pick of a portfolio candidate is adaptive
        "n_portfolio": kinds["portfolio"],
        "n_adaptive": kinds["adaptive"],
        "n_kb": kinds["kb"],  # a fixed list from the knowledge base (strategy consensus ...)
        "neighbours": neighbours[:5],
        "trials": [
            {
                "number": t.number,
                "source": tags[t.number],
                "state": t.state.name,
                "values": _study.final_values(t),  # none for a pruned trial's partial score
                "rank": rank.get(t.number),
                **({"on_front": t.number in shown} if multi and t.number in rank else {}),
            }
            for t in warm
        ],
    }
    section["summary"] = _summary(section)
    return section


def _kind(tag: str) -> str:
    """Where a warm-start trial (its tag) came from, each counted once: ``adaptive`` (chosen
    after the results so far, a portfolio candidate too), ``portfolio`` (the zero-shot head),
    ``kb`` (a fixed list from the knowledge base), ``given`` (the spec's params or studies)."""
    if "adaptive after" in tag:
        return "adaptive"
    if tag.startswith("kb:portfolio#"):
        return "portfolio"
    return "kb" if tag.startswith("kb:") else "given"


def _first(trial: FrozenTrial) -> float | list[float] | None:
    """A trial's value (one objective) or values (several)."""
    values = trial.values
    if not values:
        return None
    return values[0] if len(values) == 1 else list(values)


def _summary(section: Mapping[str, Any]) -> str:
    """``warm start: 10 trials (3 portfolio, 7 adaptive); best warm trial #4 ranked 2 of 40
    (0.912 vs 0.915 for the best other trial); first warm trial 0.905, ranked 6``; with several
    objectives ``...; 2 of 10 on the Pareto front (best warm trial #4)`` or ``best warm trial
    #4 dominated by 3 of 40 feasible trials``."""
    from_kb = section.get("n_kb", 0)
    parts = [
        f"{section['n_portfolio']} portfolio",
        f"{section['n_adaptive']} adaptive",
        f"{from_kb} from the knowledge base",
    ]
    other = section["n_enqueued"] - section["n_portfolio"] - section["n_adaptive"] - from_kb
    kinds = ", ".join(
        [p for p in parts if not p.startswith("0 ")] + ([f"{other} given"] if other else [])
    )
    n = section["n_enqueued"]
    text = f"warm start: {n} trial{'' if n == 1 else 's'} ({kinds})"
    if section["best_rank"] is None:
        return text + "; none completed feasible"
    if section.get("ranking") == "pareto":
        if section["n_on_front"]:
            return text + (
                f"; {section['n_on_front']} of {section['n_complete']} on the Pareto front of "
                f"the {section['n_ranked']} feasible trials (best warm trial "
                f"#{section['best_warm_trial']})"
            )
        if section["best_rank"] == 1:  # dominated by none, but not on the front shown
            return text + (
                f"; none on the Pareto front: best warm trial #{section['best_warm_trial']} is "
                f"within noise of it (dominated by none of the {section['n_ranked']} feasible "
                "trials)"
            )
        return text + (
            f"; none on the Pareto front: best warm trial #{section['best_warm_trial']} "
            f"dominated by {section['best_rank'] - 1} of the {section['n_ranked']} feasible "
            "trials"
        )
    text += (
        f"; best warm trial #{section['best_warm_trial']} ranked {section['best_rank']} of "
        f"{section['n_ranked']} ({_g(section['best_warm_value'])}"
    )
    if section["best_cold_value"] is not None:
        text += f" vs {_g(section['best_cold_value'])} for the best other trial)"
    else:
        text += ")"
    if section["first_rank"] is not None:
        text += f"; first warm trial {_g(section['first_value'])}, ranked {section['first_rank']}"
    return text


def _g(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
