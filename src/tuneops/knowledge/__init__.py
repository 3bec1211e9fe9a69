"""Warm start and meta-learning: meta-features, the knowledge base, recommendations.

* :mod:`~tuneops.knowledge.metafeatures` - meta-features of a dataset (pure) and their scaling.
* :mod:`~tuneops.knowledge.base` - the knowledge base: shipped, storage, files.
* :mod:`~tuneops.knowledge.portfolio` - nearest past tasks and a diverse portfolio (pure).
* :mod:`~tuneops.knowledge.adaptive` - the adaptive warm start: each early trial from the past
  tasks that agree with the study's results so far (the default).
* :mod:`~tuneops.knowledge.warm_start` - the ``warm_start`` spec field, enqueueing, results.
* :mod:`~tuneops.knowledge.advisor` - ``tuneops kb recommend``: what the warm start would try.
* :mod:`~tuneops.knowledge.build` - ``tuneops kb build``: the prebuilt base from PMLB.
"""

from __future__ import annotations

import importlib
from typing import Any

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

# name -> the module that defines it, imported on first use: reading a study's warm-start
# results must not import pandas (meta-features) or the whole knowledge base.
_HOME = {
    "Entry": "base",
    "KnowledgeBase": "base",
    "load_file": "base",
    "load_shipped": "base",
    "load_sources": "base",
    "meta_features": "metafeatures",
    "nearest": "portfolio",
    "portfolio": "portfolio",
    "Recommendation": "portfolio",
    "recommend": "advisor",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'tuneops.knowledge' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tuneops.knowledge.{_HOME[name]}"), name)
