"""Calling a served model: its input from the checked rows (the records themselves for a
compiled tuneops pipeline, else a DataFrame), its predictions and a shadow's (timed in the
model thread), and the warm-up on typical rows before a version takes traffic (``_warm_up``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tuneops.ops.serve.models import _Loaded, _without_ignored
from tuneops.ops.serve.requests import _check, _frame

logger = logging.getLogger("tuneops.serve")


def _typical_row(loaded: _Loaded, profile: Mapping[str, Any]) -> dict[str, Any] | None:
    """A request row of typical values from the reference profile: each numeric feature's
    median, each categorical one's most frequent category; None (missing) where the profile
    records no value (the training rows had none). A feature the profile does not cover (a
    version registered without one) gets a valid value all the same: 0.0, or the first
    category the model knows. None when no valid row can be made (a category the model does
    not show)."""
    row: dict[str, Any] = {}
    for name in loaded.features:
        column = profile.get(name)
        known = loaded.categories.get(name, ())
        if name in loaded.numeric:
            sample = (column or {}).get("sample") or []
            row[name] = float(np.median(sample)) if sample else None if column else 0.0
            continue
        counts: dict[str, int] = (column or {}).get("counts") or {}
        if counts:
            label = max(counts, key=lambda c: counts[c])
            # the profile keeps categories as text ("True", "1"): the model's own value
            same = [c for c in known if _as_label(c) == label]
            row[name] = same[0] if same else label if name not in loaded.kinds else None
            if row[name] is not None:
                continue
        elif column:
            row[name] = None
            continue
        if not known:
            return None
        row[name] = known[0]
    return row


def _as_label(value: Any) -> str:
    """A category as the reference profile writes it (:func:`tuneops.ops.drift.profile_column`)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _warm_up(loaded: _Loaded, profile: Mapping[str, Any], calls: int = 3) -> None:
    """Answer a few typical rows before the version takes traffic: a model's first predict pays
    for lazy imports, allocations and caches (87 ms against 2 ms for the next on a k-NN
    pipeline), which the first user after a start or a switch would otherwise wait for. A
    failure is logged, never fatal: requests then meet it and get its error."""
    try:
        row = _typical_row(loaded, profile)
        if row is None:
            logger.info(
                "warm-up of version %s skipped: its registry record has no reference profile "
                "and the model shows no categories to send; its first request pays for the "
                "first predict.",
                loaded.version,
            )
            return
        for _ in range(calls):
            loaded.model.predict(_model_input([row], loaded))
    except Exception as exc:  # noqa: BLE001 - a warm-up must not keep a version from serving
        logger.warning("warm-up of version %s failed: %s", loaded.version, exc)


def _predict(loaded: _Loaded, X: Any) -> list[Any]:
    return loaded.model.predict(X).tolist()  # type: ignore[no-any-return]


def _answer(rows: Sequence[Any], loaded: _Loaded) -> tuple[Any, list[Any]]:
    """The model input of ``rows`` and ``loaded``'s predictions for it (in the model thread)."""
    X = _model_input(rows, loaded)
    return X, _predict(loaded, X)


def _shadow_answer(rows: Sequence[Any], shadow: _Loaded, X: Any) -> tuple[list[Any], float]:
    """The shadow's predictions (on ``X``, else on its own input from ``rows``) and the seconds
    they took, timed in the model thread: a shadow's latency is its own work, not its wait
    behind the requests the model thread answers first."""
    start = time.perf_counter()
    predictions = _predict(shadow, X if X is not None else _model_input(rows, shadow))
    return predictions, time.perf_counter() - start


def _model_input(rows: Sequence[Any], loaded: _Loaded) -> Any:
    """What ``loaded.model.predict`` gets: the checked records themselves when it takes them,
    else a DataFrame. Raises the 422 of :func:`_check`."""
    rows = _without_ignored(rows, loaded)
    if loaded.takes_records:
        _check(rows, loaded)
        return rows
    return _frame(rows, loaded)
