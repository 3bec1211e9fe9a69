"""The prediction log: one JSON line per answered request; labels joined later by request id.

``tuneops serve`` appends a ``prediction`` record for every request (its id, the version that
answered and in which role, the latency, the predictions, the shadow challenger's answer when
there is one, and the input rows unless told not to). Labels arrive later, when the truth is
known, as ``label`` records naming the request id (``POST /label`` or :func:`append_labels`).
Live monitoring (:mod:`tuneops.ops.live`) reads the log and joins the two.

Why a JSON-lines file rather than the study storage: a served request must not wait on a
database round trip (storage writes cost 13-67 ms per trial, DESIGN.md), and a file is what
log shippers and ``jq`` read. Each record is written with one ``write(2)`` on a descriptor
opened with ``O_APPEND``, so concurrent writers (threads, or several server processes on one
machine) never interleave or overwrite each other's lines. A reader skips a torn line (a
writer killed mid-write) and counts it. A write the disk cut short (full, or a size limit)
raises; the writer's next record then starts with a newline, so the fragment stays a line of
its own and the records after it are read whole (without that, the next record was glued to
the fragment and lost with it).

Record formats::

    {"kind": "prediction", "id": "...", "t": 1733400000.123, "version": 2, "role": "champion",
     "mode": "shadow", "latency_ms": 0.84, "n_rows": 1, "prediction": [0],
     "shadow": {"version": 3, "prediction": [1], "latency_ms": 0.31}, "rows": [{...}]}
    {"kind": "label", "id": "...", "t": 1733400060.0, "label": [1]}

``status`` is ``"error"`` (with ``error``) for a request the model failed on; ``key`` is the
canary key when the client sent one. ``t`` is when the request arrived and ``latency_ms`` the
server's time for it from that moment (the event loop takes each request as it comes: parsing,
checks, the wait for the model thread behind the requests ahead, the predict): what the client
waits, but for its own side of the connection. ``t + latency_ms`` is when it was answered.

A label counts only if it fits the request (one label for one row, a list of one per row: one
of the wrong shape never replaces a good one), and only for a prediction answered before the
label was recorded: one posted earlier (forged, or guessed ahead of a client's request id)
never joins the request answered later under that id. The join compares the records' times, not
their places in the file: the server appends a prediction after its answer is sent (and after
the shadow scored it), so a quick client's label can come first in the file. Both times are the
wall clock of the machine that wrote them (several servers appending to one log on one machine
share it); a clock stepped back between an answer and its label (NTP) can make that label not
count.

A label is the truth of one request. When the log holds several requests answered under its id
before it was recorded (two servers answered a client that sent one id twice; ``tuneops serve``
itself refuses an id it has answered), it joins none of them and is counted as ambiguous
(:attr:`LogContents.n_ambiguous`): one truth counted for several requests skewed the score."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneops.errors import DataError

__all__ = [
    "PredictionLog",
    "LogContents",
    "LogReader",
    "read_log",
    "append_labels",
    "is_label",
    "label_fits",
    "label_shape_problem",
]


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


class PredictionLog:
    """An append-only JSON-lines file; thread-safe, one ``write`` per record.

    Example::

        >>> log = PredictionLog(tmp / "predictions.jsonl")              # doctest: +SKIP
        >>> log.append({"kind": "prediction", "id": "a", "prediction": [1]})  # doctest: +SKIP
        >>> log.label("a", [1])                                          # doctest: +SKIP
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = self._open()
        except OSError as exc:
            raise DataError(
                f"prediction log {str(self.path)!r} cannot be opened for writing "
                f"({exc.strerror or exc}); give --log a file path in a directory you can write."
            ) from None
        self._lock = threading.Lock()
        # This writer's last record was cut short (a full disk): the next starts with a newline.
        self._torn = False

    def _open(self) -> int:
        # Not world-readable: it holds every request's input rows (0640: a monitoring account
        # in the server's group may read it). Read too: see append.
        return os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)

    def _follow(self, fd: int) -> int:
        """The descriptor to write to: a new file at the path when the log was moved away or
        deleted (logrotate's default, a rotation by hand): writing on to the old one filled
        ``predictions.jsonl.1`` while readers of the path saw no new request."""
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            here = None
        mine = os.fstat(fd)
        if here is not None and (here.st_ino, here.st_dev) == (mine.st_ino, mine.st_dev):
            return fd
        new = self._open()  # an OSError (the directory is gone) is the append's error
        os.close(fd)
        self._torn = False  # a cut line is in the old file; the new one starts clean
        return new

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record (a JSON object) as one line."""
        line = (json.dumps(record, separators=(",", ":"), default=_jsonable) + "\n").encode()
        with self._lock:
            if self._fd is None:
                raise ValueError(f"prediction log {str(self.path)!r} is closed.")
            self._fd = self._follow(self._fd)
            # A line left unfinished, by this writer or another (a replica killed mid-write
            # while this one runs; the check at open alone let the next record glue onto it,
            # and both were skipped by readers): the record starts on a line of its own.
            if self._torn or not _fd_ends_a_line(self._fd):
                line = b"\n" + line
            view = memoryview(line)
            try:  # one write(2) unless the disk cuts it short; then the rest, or the error
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError:
                self._torn = self._torn or len(view) < len(line)
                raise
            self._torn = False

    def label(self, request_id: str, label: Any) -> None:
        """Record the true label(s) of request ``request_id`` (a list for a multi-row request)."""
        self.append({"kind": "label", "id": str(request_id), "t": time.time(), "label": label})

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fd_ends_a_line(fd: int) -> bool:
    """True when the file open at ``fd`` is empty or ends with a newline (two system calls)."""
    size = os.fstat(fd).st_size
    return size == 0 or os.pread(fd, 1, size - 1) == b"\n"


def append_labels(path: str | Path, labels: Mapping[str, Any]) -> int:
    """Append ``{request_id: label}`` to the log at ``path``; returns how many were written.

    This is the batch way to join labels (a nightly export of outcomes, say); ``POST /label``
    is the online way. Both write the same ``label`` records.
    """
    with PredictionLog(path) as log:
        for request_id, label in labels.items():
            log.label(request_id, label)
    return len(labels)


@dataclass
class LogContents:
    """What a prediction log holds: prediction records (labels joined) and the bad lines."""

    predictions: list[dict[str, Any]] = field(default_factory=list)
    n_labels: int = 0
    bad_lines: int = 0
    #: labels joined to no request because several requests answered under their id before
    #: them could each be the one they are the truth of
    n_ambiguous: int = 0


def read_log(path: str | Path, *, since: float | None = None) -> LogContents:
    """Read a prediction log; each prediction record gets ``label`` when one was recorded.

    A label joins a prediction only if it was recorded after the prediction was answered, and
    only if no other request under its id was (see the module's docstring); of those, the last
    one in the log (a correction). Records before ``since`` (a Unix time) are skipped (nor do
    they make a label ambiguous); labels are joined whatever their time.

    Raises:
        DataError: the file does not exist.
    """
    return LogReader(path, since=since).read(final=True)


class LogReader:
    """A prediction log read as it grows: each :meth:`read` parses only the lines appended
    since the last one (``monitor --live`` checks every few seconds; re-reading a log of a
    million requests each time cost tens of seconds), and returns the whole contents so far,
    labels joined. A log truncated or replaced (rotated) is read again from its start.
    """

    def __init__(self, path: str | Path, *, since: float | None = None) -> None:
        self.path, self.since = Path(path), since
        self._offset = 0
        self._inode: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._offset = 0
        self._contents = LogContents()
        # per request id, its labels in log order: (the time recorded, the label)
        self._labels: dict[str, list[tuple[float, Any]]] = {}
        self._by_id: dict[str, list[dict[str, Any]]] = {}
        self._ambiguous: dict[str, int] = {}  # per request id, its labels that joined none

    def read(self, *, final: bool = False) -> LogContents:
        """The contents so far. A last line without its newline is a record being written and
        is left for the next read, unless ``final`` (then it is a torn line, counted bad).

        Raises:
            DataError: the file does not exist.
        """
        if not self.path.is_file():
            raise DataError(
                f"prediction log {str(self.path)!r} "
                + ("is a directory" if self.path.is_dir() else "does not exist")
                + "; point --log at the file "
                "`tuneops serve --log` writes (default tuneops-out/predictions.jsonl)."
            )
        with open(self.path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_ino != self._inode or info.st_size < self._offset:
                self._inode = info.st_ino
                self._reset()
            handle.seek(self._offset)
            data = handle.read()
        end = len(data) if final else data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].decode("utf-8", errors="replace").splitlines():
            self._add(line)
        self._contents.n_labels = len(self._labels)
        return self._contents

    def _add(self, line: str) -> None:
        out = self._contents
        if not line.strip():
            return
        try:
            record = json.loads(line)
        except ValueError:  # not JSON (a torn line), or a 5,000-digit number
            out.bad_lines += 1
            return
        if not isinstance(record, dict):
            out.bad_lines += 1
            return
        kind = record.get("kind", "prediction")
        stamp = _time_of(record.get("t"))
        if "id" not in record or stamp is None:
            out.bad_lines += 1  # not a record tuneops wrote: no request id, or no usable time
            return
        key = str(record["id"])
        if kind == "label":
            if not is_label(record.get("label")):
                out.bad_lines += 1  # an object where a label goes: not what tuneops writes
                return
            label = record["label"]
            self._labels.setdefault(key, []).append((stamp, label))
            takers = _takers(self._by_id.get(key, ()), stamp, label)
            if len(takers) == 1:  # later in the log: replaces an earlier one (a correction)
                takers[0]["label"] = label
            elif takers:
                self._count_ambiguous(key, self._ambiguous.get(key, 0) + 1)
        elif self.since is None or stamp >= self.since:
            self._by_id.setdefault(key, []).append(record)
            out.predictions.append(record)
            labels = self._labels.get(key, ())
            if any(_takers([record], t, label) for t, label in labels):
                self._join(key)  # it may take a label, or make one another took ambiguous

    def _join(self, key: str) -> None:
        """Join the labels of request id ``key`` to its predictions afresh (see :func:`read_log`:
        a label joins the one request it can be the truth of, the last such label counts)."""
        predictions = self._by_id.get(key, [])
        for prediction in predictions:
            prediction.pop("label", None)
        ambiguous = 0
        for stamp, label in self._labels.get(key, ()):
            takers = _takers(predictions, stamp, label)
            if len(takers) == 1:
                takers[0]["label"] = label
            elif takers:
                ambiguous += 1
        self._count_ambiguous(key, ambiguous)

    def _count_ambiguous(self, key: str, n: int) -> None:
        self._contents.n_ambiguous += n - self._ambiguous.get(key, 0)
        self._ambiguous[key] = n


def _takers(
    predictions: Iterable[dict[str, Any]], stamp: float, label: Any
) -> list[dict[str, Any]]:
    """The predictions a label recorded at ``stamp`` can be the truth of: answered before it,
    for as many rows as it labels (two labels for one row would replace a good one and join
    nothing; a failed request answered no row)."""
    return [
        p for p in predictions if stamp >= _answered(p) and label_fits(label, _n_answered(p))
    ]


def _time_of(value: Any) -> float | None:
    """A record's time ``t`` as a finite float; None for a missing, boolean, non-numeric,
    infinite or unrepresentable one (a 400-digit integer)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        stamp = float(value)
    except OverflowError:
        return None
    return stamp if math.isfinite(stamp) else None


def _answered(record: Mapping[str, Any]) -> float:
    """When a prediction record's request was answered (Unix time): its arrival ``t`` (checked
    by the reader) plus its ``latency_ms``; ``t`` alone for a record without a latency."""
    start = float(record["t"])
    latency = record.get("latency_ms")
    if isinstance(latency, int | float) and not isinstance(latency, bool) and latency > 0:
        try:
            return start + float(latency) / 1e3  # NaN fails `> 0`; +inf: never labelled
        except OverflowError:  # a latency no float holds: never labelled
            return math.inf
    return start


def is_label(value: Any) -> bool:
    """A true label as the log keeps it: a string, a boolean or a finite number, or a non-empty
    list of them (a request of several rows)."""
    if isinstance(value, list):
        # one level only, judged before looking in: lists nested 900 deep (a 2 KB body posted
        # to /label) recursed until a RecursionError
        return bool(value) and all(not isinstance(v, list) and is_label(v) for v in value)
    if isinstance(value, (str, bool)):
        return True
    try:
        return isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an integer beyond a float
        return False


def label_fits(label: Any, n_rows: int) -> bool:
    """Whether ``label`` can be the truth of a request of ``n_rows`` rows: one label for one row,
    or a list of one label per row."""
    return len(label) == n_rows if isinstance(label, list) else n_rows == 1


def label_shape_problem(request_id: str, label: Any, n_rows: int) -> str | None:
    """Why ``label`` cannot be the truth of request ``request_id``, answered for ``n_rows`` rows
    (a label of the wrong shape would replace a good one and join no row); None when it can.
    ``POST /label`` and ``tuneops label`` refuse with this reason."""
    if label_fits(label, n_rows):
        return None
    received = f"a list of {len(label)}" if isinstance(label, list) else "one label"
    expected = "one label (or a list of 1)" if n_rows == 1 else f"a list of {n_rows} labels"
    shown = request_id if len(request_id) <= 60 else request_id[:57] + "..."
    return (
        f"request {shown} was answered for {n_rows} row(s); expected {expected}, "
        f"received {received}"
    )


def _n_answered(record: Mapping[str, Any]) -> int:
    """The rows a prediction record answered (0 for a failed request: no label joins it)."""
    prediction = record.get("prediction")
    return len(prediction) if isinstance(prediction, list) else 0


def labelled_rows(record: Mapping[str, Any]) -> Iterable[tuple[Any, Any, Any]]:
    """``(label, prediction, shadow prediction or None)`` per row of a labelled record."""
    label = record.get("label")
    predictions = record.get("prediction") or []
    shadow = (record.get("shadow") or {}).get("prediction")
    labels = label if isinstance(label, list) else [label]
    if label is None or len(labels) != len(predictions):
        return []
    shadows = (
        shadow
        if isinstance(shadow, list) and len(shadow) == len(predictions)
        else [None] * len(labels)
    )
    return [
        (y, p, s) for y, p, s in zip(labels, predictions, shadows, strict=True) if y is not None
    ]
