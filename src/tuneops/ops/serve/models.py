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
from sklearn.impute import SimpleImputer
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
    # (:func:`_category_schema`): a request's value of another kind is refused, not scored as
    # an unseen category (JSON true for a text category, "" for a missing value).
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


def _fitted_categories(model: Any, names: Sequence[str] | None = None) -> dict[str, list[Any]]:
    """The categories a fitted model's encoders learned, by input feature name (missing values
    left out), found through pipelines and column transformers; empty when the model shows
    none (a model of another make). ``names``: the columns ``model`` is fitted on, when it
    does not record them itself (an encoder behind an imputer in a column transformer)."""
    found: dict[str, list[Any]] = {}
    if isinstance(model, Pipeline):
        for _, step in model.steps:
            if step is None or isinstance(step, str):  # "passthrough"
                continue
            found.update(_fitted_categories(step, names))
            # an imputer keeps its columns (tuneops' keeps the empty ones too); after any
            # other step, the columns are no longer the inputs
            names = names if isinstance(step, SimpleImputer) else None
        return found
    transformers = getattr(model, "transformers_", None)
    if isinstance(transformers, list):  # a fitted ColumnTransformer
        inputs = getattr(model, "feature_names_in_", None)
        for _, step, columns in transformers:
            if not isinstance(step, str):  # "drop", "passthrough"
                found.update(_fitted_categories(step, _column_names(columns, inputs)))
        return found
    categories = getattr(model, "categories_", None)
    if isinstance(categories, list):
        if names is None:
            names = getattr(model, "feature_names_in_", None)
        if names is not None and len(names) == len(categories):
            for name, known in zip(names, categories, strict=True):
                found[str(name)] = [v for v in np.asarray(known).tolist() if not _missing(v)]
    return found


def _column_names(columns: Any, inputs: Any) -> list[str] | None:
    """A column transformer's column selection as names, or None when it cannot tell."""
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, list) and all(isinstance(c, str) for c in columns):
        return list(columns)
    if inputs is None:
        return None
    try:
        return [str(c) for c in np.atleast_1d(np.asarray(inputs, dtype=object)[columns])]
    except (IndexError, TypeError, ValueError):
        return None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _category_kind(values: Sequence[Any]) -> str | None:
    """The kind of value every category is ("text", "boolean", "number"); None when mixed or
    none."""
    kinds = {
        "boolean" if isinstance(v, bool) else "text" if isinstance(v, str) else "number"
        if isinstance(v, int | float) else None
        for v in values
    }
    return kinds.pop() if len(kinds) == 1 else None


def _category_schema(
    model: Any, categorical: Sequence[str], profile: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, tuple[Any, ...]]]:
    """Per categorical feature, the kind of its categories and the categories it knows: the
    fitted encoder's (exact), else the reference profile's labels (kept as text, so a kind only
    when some label is no number and no boolean word: such a column is text, as data loading
    refuses a column mixing text with other values)."""
    try:
        fitted = _fitted_categories(model)
    except Exception:  # noqa: BLE001 - a model of another make: its values are not checked
        fitted = {}
    kinds: dict[str, str] = {}
    categories: dict[str, tuple[Any, ...]] = {}
    for name in categorical:
        if name in fitted:
            known = fitted[name]
            kind = _category_kind(known)
        else:
            known = list((profile.get(name) or {}).get("counts") or {})
            words = [k for k in known if not _is_number(k) and k not in ("True", "False")]
            kind = "text" if words else None
        if kind is not None:
            kinds[name] = kind
        if known:
            categories[name] = tuple(known)
    return kinds, categories


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


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
