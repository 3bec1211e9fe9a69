"""What a model's categorical features take: per feature the kind of value its categories are
("text", "boolean" or "number") and the categories it knows, read from the fitted encoders (or
the reference profile). One reading for everything that feeds a model: ``tuneops serve``
refuses a request's value of another kind (422), and a batch to monitor, re-tune or refresh on is
refused the same way (:func:`tuneops.ops.monitor.validate_batch`), so a value one refuses is
never scored as an unseen category by the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

#: Known categories a message lists in full; beyond, a few of them and how many.
LISTED_CATEGORIES = 12


def fitted_categories(model: Any, names: Sequence[str] | None = None) -> dict[str, list[Any]]:
    """The categories a fitted model's encoders learned, by input feature name (missing values
    left out), found through pipelines and column transformers; empty when the model shows
    none (a model of another make). ``names``: the columns ``model`` is fitted on, when it
    does not record them itself (an encoder behind an imputer in a column transformer)."""
    found: dict[str, list[Any]] = {}
    if isinstance(model, Pipeline):
        for _, step in model.steps:
            if step is None or isinstance(step, str):  # "passthrough"
                continue
            found.update(fitted_categories(step, names))
            # an imputer keeps its columns (tuneops' keeps the empty ones too); after any
            # other step, the columns are no longer the inputs
            names = names if isinstance(step, SimpleImputer) else None
        return found
    transformers = getattr(model, "transformers_", None)
    if isinstance(transformers, list):  # a fitted ColumnTransformer
        inputs = getattr(model, "feature_names_in_", None)
        for _, step, columns in transformers:
            if not isinstance(step, str):  # "drop", "passthrough"
                found.update(fitted_categories(step, _column_names(columns, inputs)))
        return found
    categories = getattr(model, "categories_", None)
    if isinstance(categories, list):
        if names is None:
            names = getattr(model, "feature_names_in_", None)
        if names is not None and len(names) == len(categories):
            for name, known in zip(names, categories, strict=True):
                found[str(name)] = [v for v in np.asarray(known).tolist() if not is_missing(v)]
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


def is_missing(value: Any) -> bool:
    """None or NaN: a missing value, not a category."""
    return value is None or (isinstance(value, float) and value != value)


def category_kind(values: Sequence[Any]) -> str | None:
    """The kind of value every category is ("text", "boolean", "number"); None when mixed or
    none."""
    kinds = {
        "boolean" if isinstance(v, bool) else "text" if isinstance(v, str) else "number"
        if isinstance(v, int | float) else None
        for v in values
    }
    return kinds.pop() if len(kinds) == 1 else None


def category_schema(
    model: Any, categorical: Sequence[str], profile: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, tuple[Any, ...]]]:
    """Per categorical feature, the kind of its categories and the categories it knows: the
    fitted encoder's (exact), else the reference profile's labels (kept as text, so a kind only
    when some label is no number and no boolean word: such a column is text, as data loading
    refuses a column mixing text with other values)."""
    try:
        fitted = fitted_categories(model)
    except Exception:  # noqa: BLE001 - a model of another make: its values are not checked
        fitted = {}
    kinds: dict[str, str] = {}
    categories: dict[str, tuple[Any, ...]] = {}
    for name in categorical:
        if name in fitted:
            known = fitted[name]
            kind = category_kind(known)
        else:
            known = list((profile.get(name) or {}).get("counts") or {})
            words = [k for k in known if not is_number(k) and k not in ("True", "False")]
            kind = "text" if words else None
        if kind is not None:
            kinds[name] = kind
        if known:
            categories[name] = tuple(known)
    return kinds, categories


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a number (``"3"``, ``"1e3"``, ``"nan"``)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def category_text(value: Any) -> str:
    """A value a file gave a text category, as that text: ``7`` and ``7.0`` (a column with a
    missing value) are ``"7"``, ``True`` is ``"True"``."""
    if hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def expected_category(kind: str, known: Sequence[Any], *, missing: str = "null") -> str:
    """What a categorical feature of ``kind`` takes, in words: the kind, the known categories
    (all of them when few) and how to send a missing value (``missing``: ``null`` in JSON, an
    empty cell in a file)."""
    listed = ", ".join(json.dumps(c) for c in known[:LISTED_CATEGORIES])
    if len(known) > LISTED_CATEGORIES:
        listed = f"{len(known)} categories such as {listed}, ..."
    if kind == "boolean":
        expected = "true or false (its categories are booleans)"
    else:
        word = "string" if kind == "text" else "number"
        expected = f"a category as a {word}" + (
            f", one of {listed} (another {word} is scored as an unseen category)" if known else ""
        )
    return f"{expected}, or {missing} for missing"
