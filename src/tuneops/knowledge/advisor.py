"""What the warm start would try first on a dataset: ``tuneops kb recommend``."""

from __future__ import annotations

from tuneops.data import load_dataset
from tuneops.families import get_family
from tuneops.knowledge.base import KnowledgeBase, load_shipped
from tuneops.knowledge.metafeatures import meta_features
from tuneops.knowledge.portfolio import Neighbour, Recommendation, nearest, portfolio
from tuneops.knowledge.warm_start import AutoSettings

__all__ = ["recommend"]


def recommend(
    source: str, family: str, *, kb: KnowledgeBase | None = None, size: int | None = None,
    neighbors: int | None = None, target: str | None = None, task: str = "auto",
) -> tuple[list[Recommendation], list[Neighbour]]:
    """Configurations to try first for ``family`` on the data at ``source``.

    Returns (recommendations, neighbours): the consensus portfolio, what ``warm_start: auto``
    with ``strategy: consensus`` enqueues (size and neighbours default to auto's). The adaptive
    default draws on the same neighbours but picks each trial after the results so far, so its
    trials are known only as the study runs. ``kb`` defaults to the shipped base.
    """
    defaults = AutoSettings()
    size = defaults.max_trials if size is None else size
    neighbors = defaults.neighbors if neighbors is None else neighbors

    data = load_dataset(source, target=target, task=task)
    kb = load_shipped() if kb is None else kb
    meta = meta_features(data.X, data.y, data.task)
    neighbours = nearest(kb, meta, family=family, task=data.task, k=neighbors)
    space = get_family(family).space(data.task)
    return portfolio(neighbours, space, size=size, strategy="consensus"), neighbours
