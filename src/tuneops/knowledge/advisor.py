"""What the warm start would try first on a dataset: ``tuneops kb recommend``."""

from __future__ import annotations

from collections.abc import Sequence

from tuneops.data import load_dataset
from tuneops.errors import UsageError
from tuneops.families import get_family
from tuneops.knowledge import adaptive
from tuneops.knowledge.base import KnowledgeBase, load_shipped
from tuneops.knowledge.metafeatures import meta_features
from tuneops.knowledge.portfolio import (
    Neighbour,
    Recommendation,
    greedy_portfolio,
    nearest,
    param_distance,
    portfolio,
)
from tuneops.knowledge.warm_start import AutoSettings

__all__ = ["recommend"]


def recommend(
    source: str,
    family: str,
    *,
    kb: KnowledgeBase | None = None,
    size: int | None = None,
    neighbors: int | None = None,
    target: str | None = None,
    task: str = "auto",
    categorical: str | Sequence[str] | None = None,
) -> tuple[list[Recommendation], list[Neighbour]]:
    """Configurations to try first for ``family`` on the data at ``source``.

    Returns (recommendations, neighbours). The first :data:`~tuneops.knowledge.adaptive.HEAD`
    are the family's greedy zero-shot portfolio over every past task (what the default
    ``warm_start: auto`` tries first: the configuration best on average, then what covers the
    tasks it misses); the rest is the consensus portfolio of the nearest tasks. The default
    warm start picks those later trials after the results so far, so they are known only as
    the study runs; the consensus order is its best guess without results. ``kb`` defaults to
    the shipped base; size and neighbours default to auto's. ``categorical`` as the spec's
    ``data.categorical``: the data's meta-features, and so its nearest tasks, are those a run
    of that spec computes.

    Raises:
        UsageError: the knowledge base has no entry for ``family`` on the data's task.
    """
    defaults = AutoSettings()
    size = defaults.max_trials if size is None else size
    neighbors = defaults.neighbors if neighbors is None else neighbors

    data = load_dataset(source, target=target, task=task, categorical=categorical)
    kb = load_shipped() if kb is None else kb
    meta = meta_features(data.X, data.y, data.task)
    everyone = nearest(kb, meta, family=family, task=data.task, k=len(kb))
    if not everyone:
        tasks = sorted({e.task for e in kb.select(family=family)})
        raise UsageError(
            f"kb recommend: the knowledge base has no entry for family {family!r} on "
            f"{data.task} tasks"
            + (f" (it holds {', '.join(tasks)} ones)" if tasks else " (it holds none)")
            + "; give --source a base that has them (tuneops kb build)."
        )
    neighbours = everyone[:neighbors]
    space = get_family(family).space(data.task)
    head = greedy_portfolio(everyone, space, size=min(size, adaptive.HEAD)) if everyone else []
    rest = portfolio(neighbours, space, size=size, strategy="consensus")
    out = list(head)
    for rec in rest:
        if len(out) >= size:
            break
        if all(param_distance(rec.params, r.params, space) >= adaptive.MIN_DISTANCE for r in out):
            out.append(rec)
    return out, neighbours
