"""Streams of batches from a real dataset: disjoint, with shifts injected or in time order.

The dataset is split once into a training part (the first champion learns from it) and a pool;
batches are cut from the pool *without replacement*, so no row is ever in two batches and no
training row is ever in the stream: every score measured on a batch is a score on unseen rows
(an earlier version drew each batch independently from one pool, and 22-43% of a batch's rows
had already been seen, some by the challenger that was then scored on them).

Three kinds of stream:

* **shifted** - rows in random order, shifts injected from batch ``at`` on (they accumulate):
  ``covariate`` (the inputs change, the labelling rule does not: rows are drawn with weight
  ``sigmoid(strength * z)``, ``z`` one standardised numeric feature, a biased sample: p(x)
  shifts, p(y | x) is unchanged) and ``concept`` (the labelling rule changes, the inputs do not:
  class i becomes class i+1, or a regression target is mirrored about the training part's
  mean, one rule for every batch);
* **stationary** - no shift: what a monitor's false alarms are measured on;
* **time-ordered** - the rows in the order of a time column: the first ``train_share`` of the
  time range trains, the rest streams in order; the drift is whatever the data holds. The time
  column itself is not a feature (it drifts by construction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from tuneops.errors import UsageError, unknown_name

__all__ = ["Shift", "Stream", "SHIFTS", "make_stream", "time_stream", "parse_shift"]

SHIFTS = ("covariate", "concept")


@dataclass(frozen=True)
class Shift:
    """A drift injected from batch ``at`` on."""

    kind: str
    at: int
    strength: float = 3.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Stream:
    """A training part and the batches after it; ``rows[i]``: batch i's row ids in the source
    frame (disjoint from each other and from ``train_rows``)."""

    train: pd.DataFrame
    batches: list[pd.DataFrame]
    phases: list[str]
    details: list[dict[str, Any]]
    train_rows: list[int]
    rows: list[list[int]]


def _numeric_feature(X: pd.DataFrame, categorical: Sequence[str]) -> str:
    numeric = [c for c in X.columns if c not in categorical]
    if not numeric:
        raise UsageError(
            "shifts (--shift): a covariate shift biases the rows drawn by one numeric feature, "
            f"and every feature of the data is categorical ({', '.join(map(str, X.columns[:10]))}"
            f"{', ...' if len(X.columns) > 10 else ''}); give concept shifts only (--shift "
            "concept@BATCH) or a stationary stream (--stationary); nothing was written."
        )
    return max(numeric, key=lambda c: (X[c].nunique(), -list(X.columns).index(c)))


def _covariate(pool: pd.DataFrame, shift: Shift, feature: str) -> np.ndarray:
    """Sampling weights that favour high values of one feature."""
    values = pool[feature].astype(float)
    z = ((values - values.mean()) / (values.std() or 1.0)).fillna(0.0).to_numpy()
    return np.asarray(1.0 / (1.0 + np.exp(-shift.strength * z)))


def _concept(
    batch: pd.DataFrame, target: str, classes: Sequence[Any] | None, centre: float
) -> pd.DataFrame:
    """The new labelling rule, the same for every batch: class i becomes class i+1, or a
    regression target is mirrored about ``centre`` (the training part's mean: about each
    batch's own mean, the rule changed with the rows each batch drew)."""
    batch = batch.copy()
    if classes is not None:
        rotate = {c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)}
        batch[target] = batch[target].map(rotate)
    else:
        batch[target] = 2 * centre - batch[target]
    return batch


def _too_small(n_pool: int, n_batches: int, batch_size: int, what: str) -> UsageError:
    most = n_pool // batch_size
    fewer = (
        f"give n_batches (--batches) at most {most}, a smaller batch_size (--batch-size)"
        if most >= 1
        else f"give batch_size (--batch-size) at most {n_pool} rows"
    )
    return UsageError(
        f"simulate: {n_pool} rows remain {what}, but {n_batches} disjoint batches of {batch_size} "
        f"rows need {n_batches * batch_size} (no row is streamed twice); {fewer}, or a larger "
        "dataset."
    )


def make_stream(
    frame: pd.DataFrame,
    *,
    target: str,
    task: str,
    categorical: Sequence[str] = (),
    n_batches: int,
    batch_size: int,
    shifts: Sequence[Shift] = (),
    train_share: float = 0.4,
    seed: int = 0,
) -> Stream:
    """Split ``frame`` into a training part and disjoint batches with the shifts injected
    (none: a stationary stream).

    Raises:
        UsageError: an unknown shift kind, a shift outside the stream, or too few rows for
            ``n_batches`` disjoint batches.
    """
    for s in shifts:
        if s.kind not in SHIFTS:
            raise UsageError(unknown_name("shift", s.kind, SHIFTS, field="shifts (--shift)"))
        if not 0 <= s.at < n_batches:
            raise UsageError(
                f"shifts (--shift): expected a batch in 0..{n_batches - 1} (the stream has "
                f"{n_batches} batches, --batches), received {s.kind}@{s.at}. Shift a batch of "
                "the stream, or stream more batches."
            )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(frame))
    n_train = int(len(frame) * train_share)
    train_rows, pool_rows = order[:n_train], order[n_train:]
    if len(pool_rows) < n_batches * batch_size:
        raise _too_small(len(pool_rows), n_batches, batch_size, "after the training part")
    pool = frame.iloc[pool_rows].reset_index(drop=True)
    features = pool.drop(columns=[target])
    covariate = any(s.kind == "covariate" for s in shifts)
    info = {"feature": _numeric_feature(features, categorical)} if covariate else {}
    classes = sorted(frame[target].unique()) if task == "classification" else None
    centre = float(frame[target].iloc[train_rows].mean()) if classes is None else 0.0
    available = np.ones(len(pool), dtype=bool)
    batches, phases, details, rows = [], [], [], []
    for t in range(n_batches):
        active = [s for s in shifts if s.at <= t]
        weights = np.ones(len(pool))
        for s in active:
            if s.kind == "covariate":
                weights = weights * _covariate(pool, s, info["feature"])
        weights = np.where(available, weights, 0.0)
        candidates = np.flatnonzero(weights > 0)
        if len(candidates) < batch_size:  # weights can vanish on a few rows: take the rest
            raise _too_small(int(available.sum()), n_batches - t, batch_size, f"at batch {t}")
        chosen = rng.choice(
            candidates,
            size=batch_size,
            replace=False,
            p=weights[candidates] / weights[candidates].sum(),
        )
        available[chosen] = False
        batch = pool.iloc[chosen].reset_index(drop=True)
        if any(s.kind == "concept" for s in active):
            batch = _concept(batch, target, classes, centre)
        batches.append(batch)
        phases.append("+".join(s.kind for s in active) or "stationary")
        details.append({**info} if active else {})
        rows.append([int(pool_rows[i]) for i in chosen])
    train = frame.iloc[train_rows].reset_index(drop=True)
    return Stream(train, batches, phases, details, [int(i) for i in train_rows], rows)


def time_stream(
    frame: pd.DataFrame,
    *,
    time_column: str,
    n_batches: int | None,
    batch_size: int,
    train_share: float = 0.4,
) -> Stream:
    """The rows in the order of ``time_column``: the earliest ``train_share`` train, the rest
    streams as consecutive batches (``n_batches`` of them, default as many as fit).

    Raises:
        UsageError: no such column, values that cannot be ordered, or too few rows.
    """
    if time_column not in frame.columns:
        raise UsageError(
            f"time_column (--time-column): no column {time_column!r} in the data; columns: "
            f"{', '.join(map(str, frame.columns[:30]))}."
        )
    times = frame[time_column]
    if times.isna().any():
        raise UsageError(
            f"time_column (--time-column): {time_column!r} has {int(times.isna().sum())} "
            "missing value(s); every row needs a time to be streamed in order."
        )
    order = np.argsort(times.to_numpy(), kind="stable")
    data = frame.drop(columns=[time_column])
    n_train = int(len(frame) * train_share)
    pool_rows = order[n_train:]
    most = len(pool_rows) // batch_size
    n_batches = most if n_batches is None else n_batches
    if n_batches < 1 or n_batches > most:
        raise _too_small(len(pool_rows), max(n_batches, 1), batch_size, "after the training part")
    rows = [
        [int(i) for i in pool_rows[t * batch_size : (t + 1) * batch_size]] for t in range(n_batches)
    ]
    batches = [data.iloc[r].reset_index(drop=True) for r in rows]
    first = [str(times.iloc[r[0]]) for r in rows]
    return Stream(
        data.iloc[order[:n_train]].reset_index(drop=True),
        batches,
        ["time-ordered"] * n_batches,
        [{"time_column": time_column, "from": f} for f in first],
        [int(i) for i in order[:n_train]],
        rows,
    )


def parse_shift(text: str) -> Shift:
    """``KIND@BATCH`` or ``KIND@BATCH:STRENGTH`` (e.g. ``concept@16``, ``covariate@8:2``).

    Raises:
        UsageError: malformed text or unknown kind.
    """
    kind, _, rest = text.partition("@")
    at, _, strength = rest.partition(":")
    try:
        shift = Shift(kind.strip(), int(at), float(strength) if strength else 3.0)
    except ValueError:
        raise UsageError(
            f"shifts (--shift): malformed {text!r}; expected KIND@BATCH[:STRENGTH] with KIND "
            "one of "
            f"{', '.join(SHIFTS)}, e.g. concept@16."
        ) from None
    if shift.kind not in SHIFTS:
        raise UsageError(unknown_name("shift", shift.kind, SHIFTS, field="shifts (--shift)"))
    return shift
