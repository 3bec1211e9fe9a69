"""Warm start and meta-learning: meta-features, the knowledge base, recommendations.

* :mod:`~tuneops.knowledge.metafeatures` - meta-features of a dataset (pure) and their scaling.
* :mod:`~tuneops.knowledge.base` - the knowledge base: shipped, storage, files.
* :mod:`~tuneops.knowledge.portfolio` - nearest past tasks and a diverse portfolio (pure).
* :mod:`~tuneops.knowledge.adaptive` - the adaptive warm start: each early trial from the past
  tasks that agree with the study's results so far (the default).
* :mod:`~tuneops.knowledge.warm_start` - the ``warm_start`` spec field, enqueueing, results.
* :mod:`~tuneops.knowledge.build` - ``tuneops kb build``: the prebuilt base from PMLB.
"""

from __future__ import annotations

from tuneops.knowledge.base import Entry, KnowledgeBase, load_file, load_shipped, load_sources
from tuneops.knowledge.metafeatures import meta_features
from tuneops.knowledge.portfolio import Recommendation, nearest, portfolio

__all__ = [
    "Entry",
    "KnowledgeBase",
    "Recommendation",
    "load_file",
    "load_shipped",
    "load_sources",
    "meta_features",
    "nearest",
    "portfolio",
    "recommend",
]


def recommend(
    source: str, family: str, *, kb: KnowledgeBase | None = None, size: int | None = None,
    neighbors: int | None = None, target: str | None = None, task: str = "auto",
) -> tuple[list[Recommendation], list]:
    """Configurations to try first for ``family`` on the data at ``source``.

    Returns (recommendations, neighbours): the consensus portfolio, what ``warm_start: auto``
    with ``strategy: consensus`` enqueues (size and neighbours default to auto's). The adaptive
    default draws on the same neighbours but picks each trial after the results so far, so its
    trials are known only as the study runs. ``kb`` defaults to the shipped base.
    """
    from tuneops.data import load_dataset
    from tuneops.families import get_family
    from tuneops.knowledge.warm_start import AutoSettings

    defaults = AutoSettings()
    size = defaults.max_trials if size is None else size
    neighbors = defaults.neighbors if neighbors is None else neighbors

    data = load_dataset(source, target=target, task=task)
    kb = load_shipped() if kb is None else kb
    meta = meta_features(data.X, data.y, data.task)
    neighbours = nearest(kb, meta, family=family, task=data.task, k=neighbors)
    space = get_family(family).space(data.task)
    return portfolio(neighbours, space, size=size, strategy="consensus"), neighbours
