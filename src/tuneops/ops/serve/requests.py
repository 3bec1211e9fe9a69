"""A request to the app, read and checked: its JSON (``_parse``: a key twice is refused), its
rows, request id and canary key (``_rows``), every row against the model's features, numbers
and categories (``_check``), a label against the model's classes (``_not_a_class``), the rows as
a DataFrame (``_frame``), and the request ids answered (``_AnsweredIds``). A client's mistake is
a ``_BadRequest`` (its status and a message naming the problem).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tuneops.ops.categories import LISTED_CATEGORIES, expected_category, is_number
from tuneops.ops.serve.models import _Loaded

# How many answered request ids a server remembers, to tell a /label client which of its ids it
# never answered and to refuse a label of the wrong shape (1.2 MB at 100,000).
ANSWERED_IDS_KEPT = 100_000
# The longest request id or canary key a client may send (a UUID has 36, a W3C trace id 32).
MAX_ID_CHARS = 256


class _BadRequest(Exception):
    """A client's mistake: its status and message; ``close``: answered before the body was
    read whole, so the connection is closed (what is left of the body would be read as the
    next request)."""

    def __init__(self, status: int, message: str, *, close: bool = False):
        super().__init__(message)
        self.status = status
        self.close = close


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, or a 422 naming a key it has twice: JSON keeps the last value
    of a repeated key, silently, which may not be the one the client meant to send."""
    found = dict(pairs)
    if len(found) == len(pairs):
        return found
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _BadRequest(
                422,
                f"body: the key {_short(key)} appears more than once in one JSON object; JSON "
                "keeps only the last value, which may not be the one meant; send each key once.",
            )
        seen.add(key)
    return found  # pragma: no cover - a dict shorter than its pairs repeats a key


def _parse(body: bytes) -> Any:
    """The request's JSON, or a 400 (not JSON) or a 422 (a key twice in one object)."""
    try:
        return json.loads(body, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, 5,000 digits
        raise _BadRequest(400, f"body: expected JSON, could not parse it: {exc}.") from None


#: The keys of a request sent as {"rows": [...], ...}.
_ENVELOPE = ("rows", "request_id", "key")


def _rows(payload: Any) -> tuple[list[Any], str | None, str | None]:
    if isinstance(payload, list):
        return payload, None, None
    if isinstance(payload, dict) and "rows" in payload:
        rows = payload["rows"]
        if not isinstance(rows, list):
            raise _BadRequest(
                422, f"rows: expected a list of records, received {_received(rows)}."
            )
        unknown = [str(k) for k in payload if k not in _ENVELOPE]
        if unknown:
            # {"rows": [...], "requestId": "a"} was answered under an id the server made up,
            # and the client's labels for "a" then joined nothing
            close = difflib.get_close_matches(
                unknown[0].lower().replace("-", "_"), _ENVELOPE, n=1, cutoff=0.6
            )
            raise _BadRequest(
                422,
                f"body: unexpected key(s) {', '.join(map(_short, unknown[:5]))} beside rows; "
                'expected {"rows": [...]} with, optionally, "request_id" and "key"'
                + (f" (did you mean {close[0]!r}?)" if close else "")
                + ". Nothing was predicted.",
            )
        return (
            rows,
            _identifier(payload.get("request_id"), "request_id"),
            _identifier(payload.get("key"), "key"),
        )
    if isinstance(payload, dict):
        return [payload], None, None
    raise _BadRequest(
        422,
        "body: expected a JSON list of records, one record, or "
        f'{{"rows": [...]}}; received {_received(payload)}.',
    )


def _identifier(value: Any, name: str) -> str | None:
    """A client's request id or canary key as the log keeps it: a string, or a number as its
    text (``7`` is ``"7"``); None when not sent. Raises a 422 for anything else (an object's
    Python repr made an id no client could send again)."""
    if isinstance(value, str) and len(value) > MAX_ID_CHARS:
        # kept in every log record and sent back with each label: a 5 MB id was logged whole
        raise _BadRequest(
            422,
            f"{name}: expected at most {MAX_ID_CHARS} characters, received "
            f"{len(value):,}; send a shorter id (a UUID, a trace id).",
        )
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and _finite(value):
        return str(value)
    raise _BadRequest(
        422,
        f"{name}: expected a string (or a number), received {_received(value)}.",
    )


def _check(rows: Sequence[Any], loaded: _Loaded) -> None:
    """Every row a JSON object of exactly the model's features, numbers where numeric; or a
    422 naming the problem."""
    if not rows:
        raise _BadRequest(422, "rows: expected at least one record, received none.")
    wanted = set(loaded.features)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise _BadRequest(
                422,
                f"rows[{i}]: expected a JSON object of features, received {_received(row)}."
                + (
                    ' Several rows go in a JSON list of records or {"rows": [...]}, one object '
                    "per row."
                    if isinstance(row, list)
                    else ""
                ),
            )
        if row.keys() != wanted:
            missing = [f for f in loaded.features if f not in row]
            # a client's keys, echoed in the answer: bounded (5 of them, 60 characters each)
            extra = [_clip(str(k)) for k in row if k not in wanted]
            if len(extra) > 5:
                extra = [*extra[:5], f"and {len(extra) - 5:,} more"]
            raise _BadRequest(
                422,
                f"rows[{i}]: "
                + "; ".join(
                    ([f"missing feature(s) {', '.join(missing)}"] if missing else [])
                    + ([f"unexpected key(s) {', '.join(extra)}"] if extra else [])
                )
                + f". The model (version {loaded.version}) expects exactly: "
                + ", ".join(loaded.features)
                + "."
                + (
                    ' Several rows go in a JSON list of records or {"rows": [...]}.'
                    if len(missing) == len(loaded.features)
                    and any(isinstance(v, list) for v in row.values())
                    else ""
                ),
            )
        for name in loaded.numeric:
            value = row[name]
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise _BadRequest(
                    422,
                    f"rows[{i}].{name}: expected a number (or null for missing), received "
                    f"{_received(value)}."
                    + (
                        ' Several rows go in a JSON list of records or {"rows": [...]}, one '
                        "object per row, not a list of values per feature."
                        if isinstance(value, list)
                        else ""
                    ),
                )
            if value is not None and not _finite(value):
                # JSON's 1e999, Infinity, NaN or a 400-digit integer: the client's mistake, a
                # 422 here, not a model failure (a 500 counted against the error-rate SLO).
                shown = repr(value) if isinstance(value, float) else "an integer beyond a float"
                raise _BadRequest(
                    422,
                    f"rows[{i}].{name}: expected a finite number (or null for missing), "
                    f"received {shown}.",
                )
        for name, kind in loaded.categorical_kinds:
            value = row[name]
            if value is None:
                continue
            if kind is None:
                if isinstance(value, (dict, list)) or (
                    isinstance(value, float) and not _finite(value)
                ):
                    # an object or a list reached the model as a category and failed there: a
                    # 500 counted against the error-rate SLO, which a client could use to roll
                    # back
                    raise _BadRequest(
                        422,
                        f"rows[{i}].{name}: expected a category (a string, number or boolean; "
                        f"null for missing), received {_received(value)}.",
                    )
            elif not _of_kind(value, kind) or (
                value == "" and "" not in loaded.categories.get(name, ())
            ):
                # The model scored a value of another kind than its categories (JSON true for
                # a text category, "" for a missing value) as an unseen category, silently.
                raise _BadRequest(422, _category_problem(i, name, value, kind, loaded))


def _json_kind(value: Any) -> str:
    return "boolean" if isinstance(value, bool) else "text" if isinstance(value, str) else "number"


def _not_a_class(label: Any, classes: Sequence[Any]) -> str | None:
    """Why ``label`` (one value, or a list of one per row) is none of ``classes`` (the served
    classifiers' classes), or None when every value is one: a label 7 for classes 0, 1 and 2
    was logged, and read as the model's error on that request."""
    if not classes:
        return None  # a model that shows no classes: nothing to check against
    # once each: a champion and its challenger both know 0 and 1 ("classes (0, 1, 0, 1)"); by
    # kind as well as value, as below
    seen: set[tuple[str, Any]] = set()
    distinct = []
    for c in classes:
        key = (_json_kind(c), c)
        if key not in seen:
            seen.add(key)
            distinct.append(c)
    classes = distinct
    for value in label if isinstance(label, list) else [label]:
        # by kind as well as value: Python's 1 == True would let 1 pass for the class true
        if any(_json_kind(value) == _json_kind(c) and value == c for c in classes):
            continue
        listed = ", ".join(json.dumps(c, default=str) for c in classes[:LISTED_CATEGORIES])
        if len(classes) > LISTED_CATEGORIES:
            listed = f"{len(classes)} classes such as {listed}, ..."
        # the same class written as the other kind (1 for the class "1")
        same = [c for c in classes if str(c).lower() == str(value).lower()]
        hint = f"send {json.dumps(same[0], default=str)}" if same else "send one of them"
        return (
            f"expected one of the model's classes ({listed}), received {_received(value)}; "
            f"{hint}. Nothing was recorded."
        )
    return None


def _of_kind(value: Any, kind: str) -> bool:
    if kind == "text":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool) and _finite(value)


def _category_problem(i: int, name: str, value: Any, kind: str, loaded: _Loaded) -> str:
    """Why ``value`` is no category of ``name``: the kind expected, the known categories (all
    of them when few), what was received and what to send."""
    known = loaded.categories.get(name, ())
    if value == "":
        hint = "send null for a missing value"
    else:
        # the same category written as the other kind (true for "True", 1 for "1", and the
        # code 2.0 of a column that had a missing value for "2")
        same = [
            c
            for c in known
            if str(c).lower() == str(value).lower()
            or (
                kind == "number"
                and isinstance(value, str)
                and is_number(value)
                and isinstance(c, int | float)
                and float(value) == c
            )
        ]
        wanted = {"text": "a string", "number": "a number", "boolean": "true or false"}[kind]
        hint = f"send {json.dumps(same[0])}" if same else f"send {wanted}"
    return (
        f"rows[{i}].{name}: expected {expected_category(kind, known)}; received "
        f"{_received(value)}: {hint}."
    )


def _received(value: Any) -> str:
    """A request's value as JSON names it: its type and its text (shortened)."""
    if value is None:
        return "null"
    if isinstance(value, str) and not value:
        return "an empty string"
    kind = (
        "boolean" if isinstance(value, bool)
        else "string" if isinstance(value, str)
        else "number" if isinstance(value, int | float)
        else "object" if isinstance(value, dict)
        else "list" if isinstance(value, list)
        else type(value).__name__
    )
    if isinstance(value, int) and not isinstance(value, bool) and not _finite(value):
        text = "beyond a float's range"
    else:
        text = json.dumps(value, default=str)  # NaN, Infinity as JSON writes them
    return f"{kind} {text if len(text) <= 60 else text[:57] + '...'}"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(value: Any, limit: int = 60) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)  # an int beyond a float's range raises OverflowError
    except OverflowError:
        return False


def _frame(rows: Sequence[Any], loaded: _Loaded) -> Any:
    """The rows as a DataFrame in the model's feature order, or a 422 naming the problem."""
    _check(rows, loaded)
    columns = loaded.columns if loaded.columns is not None else list(loaded.features)
    values = [[row[f] for f in loaded.features] for row in rows]
    if len(loaded.numeric) == len(loaded.features):
        # All numeric (None -> NaN): one float array, half the CPU of building from records.
        return pd.DataFrame(np.array(values, dtype=float), columns=columns)
    return pd.DataFrame(values, columns=columns)


class _AnsweredIds:
    """The ids of the last ``capacity`` requests answered and their numbers of rows, for
    ``/label`` to say which posted ids this server never answered and to refuse a label of the
    wrong shape. Used from the event loop only (no lock).

    It keeps ``hash(id)``, not the id: a client chooses its ids, and 100,000 ids of a megabyte
    each must not stay in memory. Python's string hash is keyed per process (SipHash), so a
    client cannot make up an id that collides with another's. The hashes are a ring of 64-bit
    integers beside one of 32-bit row counts (1.2 MB at 100,000: an ordered dict of the hashes
    alone took 14 MB); an id answered again takes a new place, so the latest answer counts.
    """

    def __init__(self, capacity: int = ANSWERED_IDS_KEPT) -> None:
        self.capacity = capacity
        self._ring = np.zeros(capacity, dtype=np.int64)
        self._rows = np.zeros(capacity, dtype=np.int32)
        self._n = 0  # answers recorded since the start

    def add(self, request_id: str, n_rows: int = 1) -> None:
        self._ring[self._n % self.capacity] = hash(request_id)
        self._rows[self._n % self.capacity] = n_rows
        self._n += 1

    def rows_of(self, request_ids: Sequence[Hashable]) -> list[int]:
        """The number of rows of the latest answer to each of ``request_ids``; 0 for an id not
        among the last ``capacity`` answered."""
        n = len(self)
        ring, rows = self._ring[:n], self._rows[:n]
        hashes = np.fromiter((hash(i) for i in request_ids), dtype=np.int64, count=len(request_ids))
        if len(hashes) <= 32:  # a scan per id (30 us each) beats sorting the ring (5-10 ms)
            found = []
            for h in hashes:
                hits = np.flatnonzero(ring == h)
                # of several answers to one id, the newest: the largest age rank
                found.append(int(rows[hits[np.argmax(self._age(hits))]]) if hits.size else 0)
            return found
        # the places oldest first, sorted by hash (stable: a hash's last place is its newest)
        by_age = np.argsort(self._age(np.arange(n)))
        order = by_age[np.argsort(ring[by_age], kind="stable")]
        at = np.searchsorted(ring[order], hashes, side="right") - 1
        hit = (at >= 0) & (ring[order][np.maximum(at, 0)] == hashes)
        return [int(rows[order[a]]) if h else 0 for a, h in zip(at, hit, strict=True)]

    def _age(self, places: np.ndarray) -> np.ndarray:
        """A rank of ``places`` in the ring by when they were written, larger is newer (the
        next place to write holds the oldest answer)."""
        return (places - self._n) % self.capacity

    def missing(self, request_ids: Sequence[Hashable]) -> list[Hashable]:
        """The ids of ``request_ids`` that are not among the last ``capacity`` answered."""
        counts = self.rows_of(request_ids)
        return [i for i, c in zip(request_ids, counts, strict=True) if not c]

    def __contains__(self, request_id: object) -> bool:
        return isinstance(request_id, Hashable) and not self.missing([request_id])

    def __len__(self) -> int:
        return min(self._n, self.capacity)
