"""Exclusive claims: one live process at a time holds a piece of work, on every storage.

Storages offer no compare-and-set on attributes: of two processes that write a claim into an
attribute at the same moment, each may read its own back, and both go on. Every storage tuneops
offers does create a study of a given name only once: the second creator gets Optuna's
``DuplicatedStudyError`` (a unique column in a database; the order of a journal's entries, in
a file or on Redis). So a claim on the work named ``W`` is a study, and generation ``k`` of it
is named ``tuneops-claim:W.k``:

* a process claims ``W`` by creating generation ``k + 1``, ``k`` being the highest generation
  it sees, and only when nobody holds ``k``: none exists, or its holder is dead
  (:func:`tuneops.heartbeat.run_alive`). Of the processes that try at the same moment exactly
  one creates it; the others see its holder alive and give way.
* The winner writes its record (``run``: a token; ``host``, ``pid``, ``since``, and ``seen``,
  its latest heartbeat) into that study's user attribute :data:`CLAIM_ATTR`, refreshes
  ``seen`` every heartbeat interval (:meth:`Claim.beating`), deletes the generations below
  its own, and deletes its own when it ends (:meth:`Claim.release`).
* A holder silent for longer than the grace period (a machine that lost its network) may be
  found dead and taken over; it finds a higher generation, or its own gone, when it checks
  (:meth:`Claim.check`) before doing what only the holder may do.

A generation without a record belongs to a process between its two writes; one still without
a record after two heartbeat intervals belongs to a process that died there (as a trial whose
worker never recorded itself, :func:`tuneops.heartbeat.stale_trials`), and is taken over.

Claim studies are not studies of trials: their names begin with
:data:`tuneops._study.CLAIM_PREFIX`, and listings of studies leave them out.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import optuna
from optuna.study import StudyDirection

from tuneops import _optuna
from tuneops._study import CLAIM_PREFIX
from tuneops.heartbeat import INTERVAL_S, run_alive

__all__ = ["CLAIM_ATTR", "Claim", "claim_study_name"]

#: User attribute of a claim study: its holder's record.
CLAIM_ATTR = "tuneops:claim"


def claim_study_name(work: str, generation: int) -> str:
    """The name of generation ``generation`` of the claim on ``work``."""
    return f"{CLAIM_PREFIX}{work}.{generation}"


class Claim:
    """This process's claim on ``work`` in ``storage`` (see the module's docstring).

    ``record``: who claims (``host``, ``pid``, ``id``; anything else the holder should tell
    the ones it refuses); ``run``, ``since`` and ``seen`` are added when missing. Thread-safe
    as the storage is; one claim object per attempt.

    Example::

        >>> claim = Claim(optuna.storages.InMemoryStorage(), "model.retune", {"pid": 1})
        >>> claim.acquire() is None  # held by this process
        True
        >>> claim.release()
    """

    def __init__(
        self,
        storage: optuna.storages.BaseStorage,
        work: str,
        record: Mapping[str, Any],
        *,
        unrecorded_s: float = 2 * INTERVAL_S,
    ) -> None:
        now = time.time()
        self.storage, self.work, self.unrecorded_s = storage, work, unrecorded_s
        self.record: dict[str, Any] = {
            "run": uuid.uuid4().hex,
            "since": now,
            "seen": now,
            **record,
        }
        self.generation: int | None = None
        self._claim_id: int | None = None
        self._pattern = re.compile(re.escape(claim_study_name(work, 0)[:-1]) + r"(\d+)$")

    def generations(self) -> dict[int, tuple[int, dict[str, Any] | None]]:
        """``generation -> (study id, record or None)`` of every claim on the work."""
        out: dict[int, tuple[int, dict[str, Any] | None]] = {}
        for study in self.storage.get_all_studies():
            match = self._pattern.match(study.study_name)
            if match is not None:
                record = study.user_attrs.get(CLAIM_ATTR)
                out[int(match.group(1))] = (
                    _optuna.study_id_of(study),
                    dict(record) if isinstance(record, Mapping) else None,
                )
        return out

    def acquire(self) -> dict[str, Any] | None:
        """Take the claim: None when this process holds it now, else the record of the live
        process that holds it (it is left alone).

        A generation without a record is waited for, up to ``unrecorded_s`` (its creator is
        between its two writes); an interruption meanwhile leaves nothing of this attempt.
        """
        waiting: tuple[int, float] | None = None  # (generation without a record, since when)
        while True:
            held = self.generations()
            top = max(held, default=0)
            if top:
                holder = held[top][1]
                if holder is None:
                    if waiting is None or waiting[0] != top:
                        waiting = (top, time.monotonic())
                    if time.monotonic() - waiting[1] < self.unrecorded_s:
                        time.sleep(0.05)
                        continue
                elif run_alive(holder, now=time.time()):
                    return holder
            name = claim_study_name(self.work, top + 1)
            try:
                study_id = self.storage.create_new_study([StudyDirection.MINIMIZE], name)
            except optuna.exceptions.DuplicatedStudyError:
                continue  # another process created it this moment: read its record
            try:
                self.record["seen"] = time.time()
                self.storage.set_study_user_attr(study_id, CLAIM_ATTR, self.record)
            except BaseException:  # stopped between the two writes: no record-less claim left
                with contextlib.suppress(Exception):
                    self.storage.delete_study(study_id)
                raise
            self.generation, self._claim_id = top + 1, study_id
            taken = self.check()
            if taken is not None:  # taken over while this process was between its writes
                self._delete(study_id)
                self.generation = self._claim_id = None
                return taken
            for generation, (older, _) in held.items():  # dead holders' claims
                if generation < top + 1:
                    self._delete(older)
            return None

    def check(self) -> dict[str, Any] | None:
        """None while this process holds the claim; else the record of the process that took
        it over (``{}``: none recorded, or the claim is gone)."""
        held = self.generations()
        top = max(held, default=0)
        if self.generation is not None and top == self.generation:
            record = held[top][1] or {}
            if record.get("run") == self.record["run"]:
                return None
        return dict(held[top][1] or {}) if top else {}

    def update(self, **fields: Any) -> None:
        """Add ``fields`` to the record this process holds (what a refused process is told)."""
        self.record.update(fields)
        if self._claim_id is not None:
            self.storage.set_study_user_attr(self._claim_id, CLAIM_ATTR, self.record)

    def release(self) -> None:
        """Delete this process's claim, and the generations below it, if it still holds it.
        Never raises: a claim left behind only makes the next process wait for the grace
        period of its record (or not at all, when it ran on the same host)."""
        with contextlib.suppress(Exception):
            if self.generation is None or self.check() is not None:
                return
            for generation, (study_id, _) in self.generations().items():
                if generation <= self.generation:
                    self._delete(study_id)
        self.generation = self._claim_id = None

    @contextlib.contextmanager
    def beating(self, interval_s: float = INTERVAL_S) -> Iterator[None]:
        """Refresh the record's ``seen`` every ``interval_s`` in a background thread (a missed
        beat only shortens the time others wait), and release the claim on the way out,
        however the block ends."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval_s):
                study_id = self._claim_id
                if study_id is None:
                    return
                try:
                    self.record["seen"] = time.time()
                    self.storage.set_study_user_attr(study_id, CLAIM_ATTR, self.record)
                except KeyError:
                    return  # deleted: taken over (check() stops the holder)
                except Exception:  # noqa: BLE001, S112 - a heartbeat must never stop the work
                    continue

        thread = threading.Thread(target=beat, name="tuneops-claim-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
            self.release()

    def _delete(self, study_id: int) -> None:
        with contextlib.suppress(KeyError):  # deleted meanwhile by another process
            self.storage.delete_study(study_id)
