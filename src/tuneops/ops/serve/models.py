"""The served models: a loaded version (``_Loaded``: its model, its features, the kinds and
categories its categorical features accept, read from the fitted encoders or the reference
profile), what is served (``_Routing``: the champion and a shadow or canary challenger) and
which requests the canary answers (:func:`canary_bucket`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from tuneops.families._preprocess import Preprocessor


def canary_bucket(key: str) -> float:
    """A stable number in [0, 1) for a request key: the canary serves keys below its share.

    A cryptographic hash (not Python's salted ``hash``) so every replica and every restart puts
    one key in the same bucket.
    """
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


# -- models and routing ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Loaded:
    version: int
    model: Any
    features: tuple[str, ...]
    numeric: frozenset[str]
    # The feature names as one pandas Index, built once: a DataFrame given a ready Index is
    # built in a sixth of the CPU of one given a list of names (0.04 vs 0.27 ms for one row).
    columns: Any = None
    # True when the model is a tuneops pipeline whose Preprocessor has a compiled path: it then
    # takes the validated JSON records as they are, with the same output as from a DataFrame
    # (tuneops.families._preprocess), and no DataFrame is built per request.
    takes_records: bool = False
    # Columns the training data had and tuneops dropped on load (dates, constant or empty
    # columns: ``data.dropped``): a request may still send them, as the data it comes from has
    # them; they are ignored, not logged.
    ignored: frozenset[str] = frozenset()
    # Per categorical feature, the kind of value its categories are ("text", "boolean" or
    # "number"; absent: not known, any single value passes) and the categories it knows
    # (:func:`tuneops.ops.categories.category_schema`): a request's value of another kind is
    # refused, not scored as an unseen category (JSON true for a text category, "" for a
    # missing value).
    kinds: Mapping[str, str] = field(default_factory=dict)
    categories: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    @functools.cached_property
    def categorical(self) -> tuple[str, ...]:
        return tuple(f for f in self.features if f not in self.numeric)

    @functools.cached_property
    def categorical_kinds(self) -> tuple[tuple[str, str | None], ...]:
        return tuple((f, self.kinds.get(f)) for f in self.categorical)

    @functools.cached_property
    def classes(self) -> list[Any] | None:
        """A classifier's classes as JSON values (None: a regressor, or a model that does not
        show them)."""
        classes = getattr(self.model, "classes_", None)
        return None if classes is None else np.asarray(classes).tolist()

    @functools.cached_property
    def numeric_classes(self) -> list[Any] | None:
        """A classifier's classes when they are all numbers (then a text label such as "yes"
        never equals an answer); None otherwise (text classes, a regressor)."""
        classes = getattr(self.model, "classes_", None)
        if classes is None or getattr(classes, "dtype", np.dtype(object)).kind not in "iufb":
            return None
        return np.asarray(classes).tolist()


def _without_ignored(rows: Sequence[Any], loaded: _Loaded) -> Sequence[Any]:
    """``rows`` without the keys ``loaded`` ignores (the same list when none has any)."""
    if not loaded.ignored or not any(
        isinstance(r, dict) and not loaded.ignored.isdisjoint(r) for r in rows
    ):
        return rows
    return [
        {k: v for k, v in r.items() if k not in loaded.ignored} if isinstance(r, dict) else r
        for r in rows
    ]


def _takes_records(model: Any, features: tuple[str, ...]) -> bool:
    if not isinstance(model, Pipeline) or len(model.steps) < 2:
        return False
    first = model.steps[0][1]
    compiled = getattr(first, "compiled_", None)
    return (
        isinstance(first, Preprocessor)
        and compiled is not None
        and getattr(first, "fast_", True)
        and tuple(compiled.columns) == features
    )


@dataclass(frozen=True)
class _Routing:
    """What is served; replaced whole on a switch, never mutated (a request reads it once)."""

    champion: _Loaded
    challenger: _Loaded | None = None
    mode: str | None = None
    share: float = 0.0

    @property
    def key(self) -> tuple[int, int | None, str | None, float]:
        return (
            self.champion.version,
            self.challenger.version if self.challenger else None,
            self.mode,
            self.share,
        )
