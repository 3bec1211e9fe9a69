"""The one seam to Optuna's internals: every private Optuna name tuneops uses is here.

tuneops keeps a global trial budget, claims queued trials atomically and records heartbeats,
which Optuna's public ``Study`` API cannot express (it has no conditional create, and
``study.ask()`` reads every trial again). Those operations go to the study's storage, whose
*methods* are public (``BaseStorage``) but which a ``Study`` holds under private names. Each
such reach is a small function here, tested in ``tests/test__optuna.py`` against every Optuna
5.x release CI runs, so an Optuna upgrade breaks one file with its own failing test instead of
forty call sites.

Nothing outside this module touches a private Optuna name (``tests/test_architecture.py``
checks it).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import json
import os
import pickle
import signal
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume
from optuna.storages import BaseStorage
from optuna.storages._rdb import storage as _rdb
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend, JournalStorage
from optuna.storages.journal import _storage as _journal_storage
from optuna.storages.journal._base import BaseJournalBackend, BaseJournalSnapshot
from optuna.storages.journal._file import BaseJournalFileLock
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.study._frozen import FrozenStudy
from optuna.study._tell import _tell_with_warning
from optuna.trial import FrozenTrial, Trial, TrialState

__all__ = [
    "storage_of",
    "study_id",
    "study_id_of",
    "trial_id",
    "read_trials",
    "read_trial",
    "share_trials",
    "study_seeing",
    "with_constraints",
    "create_trial",
    "frozen",
    "latest",
    "tell",
    "study_system_attrs",
    "set_study_system_attr",
    "study_user_attrs",
    "set_trial_user_attr",
    "set_trial_user_attrs",
    "set_trial_state",
    "cached_storage",
    "rdb_storage",
    "hypervolume",
    "gp_sampler",
    "quiet",
    "param_importances",
    "JournalSnapshot",
    "JournalFileLock",
    "open_journal",
    "journal_backend",
    "journal_entries",
    "journal_restored",
    "journal_state",
    "journal_file_offset",
    "seek_journal_file",
    "read_journal_file",
    "JournalLineError",
    "replay_signal",
    "redis_journal_top",
    "read_redis_journal",
]


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes (``Study._storage``)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The storage's id of ``study`` (``Study._study_id``)."""
    return study._study_id


def study_id_of(study: FrozenStudy) -> int:
    """The storage's id of a study that ``storage.get_all_studies()`` listed
    (``FrozenStudy._study_id``)."""
    return study._study_id


def trial_id(trial: Trial | FrozenTrial) -> int:
    """The storage's id of a trial (``_trial_id`` on both ``Trial`` and ``FrozenTrial``)."""
    return trial._trial_id


def read_trials(
    study: optuna.Study, states: Container[TrialState] | None = None
) -> list[FrozenTrial]:
    """Every trial of ``study`` read from its storage now, without copies (do not mutate them)."""
    return study._storage.get_all_trials(study._study_id, deepcopy=False, states=states)


def read_trial(study: optuna.Study, trial: Trial | FrozenTrial) -> FrozenTrial:
    """``trial`` read from the storage now."""
    return study._storage.get_trial(trial._trial_id)


def share_trials(study: optuna.Study, trials: list[FrozenTrial]) -> None:
    """Let the sampler of the next trial use ``trials`` just read, as ``study.ask()`` does
    with its own read (``Study._thread_local.cached_all_trials``), instead of reading again."""
    study._thread_local.cached_all_trials = trials


class _StudySeeing(optuna.Study):
    """``study`` whose trial reads (``Study._get_trials``, which ``get_trials``, ``trials`` and
    every Optuna sampler go through) pass through ``see``; the rest is the study itself: its
    storage, id and thread-local trial cache (the trials :func:`share_trials` hands it)."""

    def __init__(
        self, study: optuna.Study, see: Callable[[list[FrozenTrial]], list[FrozenTrial]]
    ) -> None:  # not Study.__init__: no storage read, the study's own attributes shared
        self.__dict__.update(study.__dict__)
        self._see = see

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = self._see(super()._get_trials(deepcopy=False, states=states, use_cache=use_cache))
        return copy.deepcopy(trials) if deepcopy else trials


def study_seeing(
    study: optuna.Study, see: Callable[[list[FrozenTrial]], list[FrozenTrial]]
) -> optuna.Study:
    """A view of ``study`` for a sampler: the trials it reads are ``see(trials)`` (a list of
    the trials read, without copies: ``see`` must not mutate them); writes go to the study."""
    return _StudySeeing(study, see)


def with_constraints(trial: FrozenTrial, values: Mapping[str, float]) -> FrozenTrial:
    """A copy of a finished ``trial`` whose constraint record (``trial.constraints``) is
    ``values``, in place of the one it holds (Optuna keeps it in the trial's system attributes
    under ``constraints`` and ``constraints:<name>``, and a finished trial's attributes cannot be
    written again)."""
    out = copy.copy(trial)
    attrs = {
        k: v
        for k, v in trial.system_attrs.items()
        if k != _CONSTRAINTS_KEY and not k.startswith(_CONSTRAINTS_KEY + ":")
    }
    attrs.update({f"{_CONSTRAINTS_KEY}:{k}": float(v) for k, v in values.items()})
    out.system_attrs = attrs
    return out


def create_trial(study: optuna.Study, template: FrozenTrial | None = None) -> Trial:
    """A new trial of ``study`` created from ``template`` in one storage write.

    ``Trial(study, id)`` reads the trial it was given back from the storage (on PostgreSQL a
    transaction of 6 statements, about a fifth of a trial's SQL); on a cached RDB storage
    (:func:`cached_storage`) it is handed instead the record the create returned, the same
    record as that read would give (see :meth:`_CachedRDB.created`).
    """
    storage = study._storage
    trial_id = storage.create_new_trial(study._study_id, template_trial=template)
    cached = _cached_rdb(storage)
    created = cached.created(trial_id, template) if cached is not None else None
    if cached is None or created is None:
        return Trial(study, trial_id)
    with cached.handing(created):
        return Trial(study, trial_id)


def frozen(trial: Trial) -> FrozenTrial:
    """The record a ``Trial`` was created with (``Trial._cached_frozen_trial``), without a read."""
    return trial._cached_frozen_trial


def latest(trial: Trial) -> FrozenTrial:
    """The trial as its pruner sees it (``Trial._get_latest_trial``): params and reports so far."""
    return trial._get_latest_trial()


def tell(
    study: optuna.Study,
    trial: Trial,
    values: Sequence[float] | None,
    state: TrialState,
    user_attrs: Mapping[str, Any] | None = None,
) -> TrialState | None:
    """Finish ``trial`` as ``study.optimize`` does, without reading it back; a trial already
    finished (declared dead and abandoned meanwhile) is skipped. Returns the state told, or
    None when the trial had already finished.

    ``user_attrs``: written on the trial just before its state. On a journal backend that can
    write entries together (``together()``: tuneops' journal file) they go in the same append
    as the state, so a trial's last attributes cost no storage write of their own (a journal
    write is a lock, an append and an fsync: about 0.4 ms, as much as tuneops' whole overhead
    per trial may be). On a cached RDB storage (:func:`cached_storage`) they go in one
    transaction with the read of the trial that the tell begins with (on PostgreSQL each
    transaction costs the client about 1 ms of CPU; see :meth:`_CachedRDB.write_and_read`).
    """
    storage = study._storage
    together = getattr(journal_backend(storage), "together", None)
    cached = _cached_rdb(storage) if together is None and user_attrs else None
    if cached is not None and user_attrs:
        # On an RDB: the attributes and the read of the trial that Optuna's tell begins with in
        # one transaction, instead of a transaction per attribute and one for the read.
        read = cached.write_and_read(trial._trial_id, user_attrs)
        if read is not None:
            with cached.handing(read):
                return _tell(study, trial, values, state)
    if together is None or not user_attrs:
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            for key, value in (user_attrs or {}).items():
                storage.set_trial_user_attr(trial._trial_id, key, value)
        return _tell(study, trial, values, state)
    told: TrialState | None = None
    final: FrozenTrial | None = None
    try:
        with together():
            for key, value in user_attrs.items():
                storage.set_trial_user_attr(trial._trial_id, key, value)
            told = _tell(study, trial, values, state)
    finally:
        # Apply the entries just written now, not at some later read, where an entry the
        # storage refuses (the trial was abandoned between the tell's check and the write)
        # would raise: each refused entry raises once.
        for _ in range(len(user_attrs) + 2):
            try:
                final = storage.get_trial(trial._trial_id)
                break
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
    # A state refused in that way: the trial keeps the state its abandoner gave it.
    return told if final is not None and final.state == told else None


def _tell(
    study: optuna.Study, trial: Trial, values: Sequence[float] | None, state: TrialState
) -> TrialState | None:
    try:
        told, _, _ = _tell_with_warning(
            study,
            trial,
            None if values is None else list(values),
            state,
            skip_if_finished=True,
            suppress_warning=True,
        )
    except optuna.exceptions.UpdateFinishedTrialError:
        return None
    return told


def study_system_attrs(study: optuna.Study) -> dict[str, Any]:
    """The study's system attributes, read now (internal records the dashboard does not show)."""
    return study._storage.get_study_system_attrs(study._study_id)


def set_study_system_attr(study: optuna.Study, key: str, value: Any) -> None:
    study._storage.set_study_system_attr(study._study_id, key, value)


def study_user_attrs(study: optuna.Study) -> dict[str, Any]:
    """The study's user attributes, read now (``study.user_attrs`` may be a cached copy)."""
    return study._storage.get_study_user_attrs(study._study_id)


def set_trial_user_attr(
    study: optuna.Study, trial: Trial | FrozenTrial, key: str, value: Any
) -> None:
    """Write a user attribute of any trial of the study (a ``FrozenTrial`` has no setter)."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


def set_trial_user_attrs(
    study: optuna.Study, trial: Trial | FrozenTrial, attrs: Mapping[str, Any]
) -> None:
    """Write several user attributes of a trial, in one transaction on a cached RDB storage
    (:func:`cached_storage`), else one by one.

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: the trial had already finished (on an RDB,
            none of ``attrs`` was written).
    """
    cached = _cached_rdb(study._storage)
    if cached is not None and len(attrs) > 1 and cached.write_attrs(trial._trial_id, attrs):
        return
    for key, value in attrs.items():
        study._storage.set_trial_user_attr(trial._trial_id, key, value)


def set_trial_state(
    study: optuna.Study,
    trial: Trial | FrozenTrial,
    state: TrialState,
    values: Sequence[float] | None = None,
) -> bool:
    """Move a trial to ``state``; the storage makes this atomic. False when the trial was not
    WAITING and ``state`` is RUNNING (another worker claimed it).

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: the trial had already finished.
    """
    return study._storage.set_trial_state_values(
        trial._trial_id, state=state, values=None if values is None else list(values)
    )


def rdb_storage(url: str, engine_kwargs: Mapping[str, Any] | None = None) -> _RDB:
    """``optuna.storages.RDBStorage(url, engine_kwargs=...)`` whose trial attributes cost less
    to write on PostgreSQL (see :class:`_RDB`); the same rows are stored.

    Two processes opening one new database in the same moment both create its tables, and
    the one that loses fails ("table studies already exists", a unique violation on
    ``alembic_version``): it opens the database again, which then finds the tables made.
    """
    for attempt in range(3):
        try:
            return _RDB(url, engine_kwargs=dict(engine_kwargs or {}))
        except Exception as exc:  # SQLAlchemy's OperationalError or IntegrityError: by name,
            # not imported here (SQLAlchemy is loaded by RDBStorage, only for databases)
            text = str(exc).lower()
            racing = type(exc).__name__ in ("OperationalError", "IntegrityError") and (
                "already exists" in text or "unique" in text or "duplicate" in text
            )
            if not racing or attempt == 2:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


class _RDB(optuna.storages.RDBStorage):
    """Optuna's RDB storage, writing a trial's user or system attribute on PostgreSQL with a
    Core statement built once, instead of a new ORM-enabled ``INSERT ... ON CONFLICT`` per
    write (2.4 ms of client CPU per attribute through Optuna's own path, measured on
    PostgreSQL 15 with psycopg 3 and SQLAlchemy 2.0; 0.6 ms this way). The statement and its
    row are Optuna's (``RDBStorage._set_trial_attr_without_commit``): the key, and the value as
    ``json.dumps`` writes it, upserted on (trial_id, key); the trial must exist and be
    updatable. The trial is looked up by primary key in the session first, so within the
    transaction that created it (a trial created from a template) it costs no query.
    Elsewhere, or when Optuna's names have moved, Optuna's own path runs."""

    def _set_trial_attr_without_commit(
        self,
        session: Any,
        model_cls: Any,
        trial_id: int,
        key: str,
        value: Any,
    ) -> None:
        statement = self._attr_upsert(model_cls) if self.engine.name == "postgresql" else None
        if statement is None:
            super()._set_trial_attr_without_commit(session, model_cls, trial_id, key, value)
            return
        trial = session.get(_rdb.models.TrialModel, trial_id)
        if trial is None:
            raise KeyError(_rdb.models.NOT_FOUND_MSG)
        self.check_trial_is_updatable(trial_id, trial.state)
        row = {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
        session.execute(statement, row)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state.pop("_tuneops_upserts", None)  # statements bound to this engine's tables: rebuilt
        return state

    def _get_trials(
        self,
        study_id: int,
        states: Container[TrialState] | None,
        included_trial_ids: set[int],
        trial_id_greater_than: int,
    ) -> list[FrozenTrial]:
        """Optuna's ``RDBStorage._get_trials`` (what its cache reads every trial with), with
        the rows read by six Core ``SELECT``s instead of ORM objects (one per trial, parameter,
        value, attribute and intermediate value: 0.12-0.21 s of client CPU for 300 trials on
        PostgreSQL and SQLite, against 0.018-0.026 s this way) and each distribution decoded
        once per distinct JSON.
        The same trials, the same fields: tests compare every field with Optuna's own read.
        Optuna's path runs when its tables are not the ones this reads."""
        import sqlalchemy  # here: a journal's reader never loads it (0.3-0.45 s of CPU)

        tables = _trial_tables()
        if tables is None:
            return super()._get_trials(study_id, states, included_trial_ids, trial_id_greater_than)
        included = {t for t in included_trial_ids if t <= trial_id_greater_than}
        trials_t = tables["trials"]
        where = [trials_t.c.study_id == study_id]
        if states is not None:
            assert isinstance(states, Iterable)
            where.append(trials_t.c.state.in_(list(states)))
        if included and trial_id_greater_than > -1:
            where.append(
                sqlalchemy.or_(
                    trials_t.c.trial_id.in_(sorted(included)),
                    trials_t.c.trial_id > trial_id_greater_than,
                )
            )
        elif trial_id_greater_than > -1:
            where.append(trials_t.c.trial_id > trial_id_greater_than)
        ids = sqlalchemy.select(trials_t.c.trial_id).where(*where).scalar_subquery()
        with _rdb._create_scoped_session(self.scoped_session) as session:
            _rdb.models.StudyModel.find_or_raise_by_id(study_id, session)
            head = session.execute(
                sqlalchemy.select(
                    trials_t.c.trial_id,
                    trials_t.c.number,
                    trials_t.c.state,
                    trials_t.c.datetime_start,
                    trials_t.c.datetime_complete,
                )
                .where(*where)
                .order_by(trials_t.c.trial_id)
            ).all()
            if not head:
                return []
            rows = {
                name: session.execute(
                    sqlalchemy.select(*(table.c[c] for c in _CHILD_COLUMNS[name]))
                    .where(table.c.trial_id.in_(ids))
                    .order_by(table.c[_CHILD_COLUMNS[name][0]])
                ).all()
                for name, table in tables.items()
                if name != "trials"
            }
        return _frozen_trials(head, rows)

    def _attr_upsert(self, model_cls: Any) -> Any:
        """The upsert of one row of ``model_cls``'s table (made once per table); None when the
        table is not the (trial_id, key, value_json) one Optuna's helper writes."""
        cache: dict[Any, Any] = self.__dict__.setdefault("_tuneops_upserts", {})
        if model_cls not in cache:
            table: Any = getattr(model_cls, "__table__", None)
            columns = set(table.c.keys()) if table is not None else set()
            dialect = getattr(_rdb, "sqlalchemy_dialects_postgresql", None)
            models = getattr(_rdb, "models", None)
            if (
                not {"trial_id", "key", "value_json"} <= columns
                or dialect is None
                or not hasattr(models, "TrialModel")
                or not hasattr(models, "NOT_FOUND_MSG")
            ):
                cache[model_cls] = None
            else:
                insert = dialect.insert(table)
                cache[model_cls] = insert.on_conflict_do_update(
                    index_elements=[table.c.trial_id, table.c.key],
                    set_={"value_json": insert.excluded.value_json},
                )
        return cache[model_cls]


# The columns read from each table of a trial, the first its order (Optuna's row ids).
_CHILD_COLUMNS = {
    "trial_params": ("param_id", "trial_id", "param_name", "param_value", "distribution_json"),
    "trial_values": ("trial_value_id", "trial_id", "objective", "value", "value_type"),
    "trial_user_attributes": ("trial_user_attribute_id", "trial_id", "key", "value_json"),
    "trial_system_attributes": ("trial_system_attribute_id", "trial_id", "key", "value_json"),
    "trial_intermediate_values": (
        "trial_intermediate_value_id",
        "trial_id",
        "step",
        "intermediate_value",
        "intermediate_value_type",
    ),
}
_TRIAL_COLUMNS = ("trial_id", "number", "study_id", "state", "datetime_start", "datetime_complete")


def _trial_tables() -> dict[str, Any] | None:
    """Optuna's trial tables by name, when they have the columns :meth:`_RDB._get_trials`
    reads and the value types it decodes; None otherwise."""
    models = getattr(_rdb, "models", None)
    if not hasattr(_rdb, "_create_scoped_session") or not hasattr(models, "StudyModel"):
        return None
    metadata = getattr(getattr(models, "BaseModel", None), "metadata", None)
    tables = getattr(metadata, "tables", {})
    wanted = {"trials": _TRIAL_COLUMNS, **_CHILD_COLUMNS}
    for name, columns in wanted.items():
        table = tables.get(name)
        if table is None or not set(columns) <= set(table.c.keys()):
            return None
    value_types = getattr(getattr(models, "TrialValueModel", None), "TrialValueType", None)
    step_types = getattr(
        getattr(models, "TrialIntermediateValueModel", None), "TrialIntermediateValueType", None
    )
    if {t.name for t in value_types or ()} != {"FINITE", "INF_POS", "INF_NEG"}:
        return None
    if {t.name for t in step_types or ()} != {"FINITE", "INF_POS", "INF_NEG", "NAN"}:
        return None
    return {name: tables[name] for name in wanted}


# A stored float by its type's name (Optuna keeps infinities and NaN as a type, the value NULL).
_STORED_FLOAT = {"INF_POS": float("inf"), "INF_NEG": float("-inf"), "NAN": float("nan")}


def _stored_float(value: float | None, kind: Any) -> float:
    if kind.name == "FINITE":
        assert value is not None
        return value
    return _STORED_FLOAT[kind.name]


_DISTRIBUTIONS = 1024  # distinct distributions decoded once per process, at most so many
_distributions: dict[str, optuna.distributions.BaseDistribution] = {}


def _distribution(text: str) -> optuna.distributions.BaseDistribution:
    """The distribution of a parameter row, decoded once per process and shared by every trial
    that has it (Optuna's read decodes one per trial and parameter, twice)."""
    found = _distributions.get(text)
    if found is None:
        found = optuna.distributions.json_to_distribution(text)
        if len(_distributions) < _DISTRIBUTIONS:
            _distributions[text] = found
    return found


def _frozen_trials(head: Sequence[Any], rows: Mapping[str, Sequence[Any]]) -> list[FrozenTrial]:
    """FrozenTrials from the rows of Optuna's trial tables, as
    ``RDBStorage._build_frozen_trial_from_trial_model`` makes them from ORM objects."""
    by_trial: dict[int, dict[str, Any]] = {
        row.trial_id: {"params": [], "values": {}, "user": {}, "system": {}, "steps": {}}
        for row in head
    }
    # A part of a trial created after the trials were read (another worker, between the
    # statements) is left out with its trial, as Optuna's ORM read leaves it out.
    nowhere: dict[str, Any] = {"params": [], "values": {}, "user": {}, "system": {}, "steps": {}}
    for _, trial, name, value, dist_json in rows["trial_params"]:
        by_trial.get(trial, nowhere)["params"].append((name, value, _distribution(dist_json)))
    for _, trial, objective, value, kind in rows["trial_values"]:
        by_trial.get(trial, nowhere)["values"][objective] = _stored_float(value, kind)
    # attribute names, short strings and small records shared, as the journal reader shares them
    for _, trial, key, value_json in rows["trial_user_attributes"]:
        by_trial.get(trial, nowhere)["user"][sys.intern(key)] = _shared(json.loads(value_json))
    for _, trial, key, value_json in rows["trial_system_attributes"]:
        by_trial.get(trial, nowhere)["system"][sys.intern(key)] = _shared(json.loads(value_json))
    for _, trial, step, value, kind in rows["trial_intermediate_values"]:
        by_trial.get(trial, nowhere)["steps"][step] = _stored_float(value, kind)
    out = []
    for row in head:
        parts = by_trial[row.trial_id]
        values = parts["values"]
        out.append(
            FrozenTrial(
                number=row.number,
                state=row.state,
                value=None,
                values=[values[k] for k in range(len(values))] if values else None,
                datetime_start=row.datetime_start,
                datetime_complete=row.datetime_complete,
                params={n: d.to_external_repr(v) for n, v, d in parts["params"]},
                distributions={n: d for n, _, d in parts["params"]},
                user_attrs=parts["user"],
                system_attrs=parts["system"],
                intermediate_values=parts["steps"],
                trial_id=row.trial_id,
            )
        )
    return out


def cached_storage(storage: optuna.storages.RDBStorage) -> BaseStorage:
    """An RDB storage behind Optuna's cache of finished trials (as ``optuna.storages.get_storage``
    wraps it): a worker then reads only the trials that changed; it can also write a trial's
    attributes in one transaction and skip reads of trials it has just created or read (see
    :class:`_CachedRDB`)."""
    return _CachedRDB(storage)


# A trial record handed to the next ``get_trial`` of its storage in this thread, instead of a
# read: (storage, record); see _CachedRDB.handing.
_HANDED = threading.local()

# Engines whose DATETIME keeps microseconds, so that a trial created there reads back with the
# very start time it was given (MySQL's DATETIME drops them).
_EXACT_TIME_ENGINES = ("postgresql", "sqlite")


class _CachedRDB(optuna.storages._CachedStorage):
    """Optuna's ``_CachedStorage`` over an ``RDBStorage``, with three savings for the writes
    and reads tuneops makes around each trial (each RDB transaction costs the client about
    1 ms of CPU on PostgreSQL, through SQLAlchemy's ORM and the driver):

    * :meth:`write_attrs`: several user attributes of a trial in one transaction (Optuna
      writes each in its own);
    * :meth:`write_and_read`: a trial's last attributes and the read of the trial that
      Optuna's tell begins with, in one transaction;
    * :meth:`handing`: the next ``get_trial`` of a trial in this thread returns a record just
      read or created instead of reading it again (``Trial(study, id)`` and Optuna's tell both
      begin with that read).

    Each uses ``RDBStorage``'s helpers that write within a caller's session (the ones its own
    ``create_new_trial`` uses); when one is missing or a transaction fails, the caller falls
    back to the public path, one write per attribute.
    """

    def get_trial(self, trial_id: int) -> FrozenTrial:
        handed = getattr(_HANDED, "record", None)
        if handed is not None and handed[0] is self and handed[1]._trial_id == trial_id:
            _HANDED.record = None
            return handed[1]
        return super().get_trial(trial_id)

    @contextlib.contextmanager
    def handing(self, record: FrozenTrial) -> Iterator[None]:
        """Within the block, the first ``get_trial(record's id)`` of this storage in this thread
        returns ``record`` (once; a record not taken is dropped when the block ends)."""
        _HANDED.record = (self, record)
        try:
            yield
        finally:
            _HANDED.record = None

    def created(self, trial_id: int, template: FrozenTrial | None) -> FrozenTrial | None:
        """The trial just created as ``trial_id`` from ``template``, as reading it would return
        it, without a read: Optuna's cache holds the record ``create_new_trial`` built (the
        template with the number, id and start time given). None when that record could
        differ from a read: a template with parameters, values or intermediate values (their
        stored forms are converted), an engine whose times lose precision, or no such record.
        """
        if template is not None and (
            template.params or template.values is not None or template.intermediate_values
        ):
            return None
        if self._backend.engine.name not in _EXACT_TIME_ENGINES:
            return None
        with self._lock:
            where = self._trial_id_to_study_id_and_number.get(trial_id)
            info = self._studies.get(where[0]) if where else None
            record = info.trials.get(where[1]) if info is not None and where else None
        if record is None or record._trial_id != trial_id:
            return None
        return FrozenTrial(
            number=record.number,
            state=record.state,
            value=None,
            values=None,
            datetime_start=record.datetime_start,
            datetime_complete=record.datetime_complete,
            params={},
            distributions={},
            # as stored: JSON (a tuple reads back as a list)
            user_attrs=json.loads(json.dumps(record.user_attrs)),
            system_attrs=json.loads(json.dumps(record.system_attrs)),
            intermediate_values={},
            trial_id=trial_id,
        )

    def write_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> bool:
        """Write ``attrs`` as user attributes of a trial in one transaction. False when that
        transaction could not be made (helpers missing, a lost connection): nothing was
        written, and the caller takes the public path (which retries).

        Raises:
            optuna.exceptions.UpdateFinishedTrialError: the trial had finished (nothing written).
        """
        backend = self._backend
        write = getattr(backend, "_set_trial_attr_without_commit", None)
        session_of = getattr(_rdb, "_create_scoped_session", None)
        if write is None or session_of is None:
            return False
        try:
            with session_of(backend.scoped_session) as session:
                for key, value in attrs.items():
                    write(session, _rdb.models.TrialUserAttributeModel, trial_id, key, value)
        except optuna.exceptions.UpdateFinishedTrialError:
            raise
        except Exception:  # noqa: BLE001 - rolled back; the public path does it again
            return False
        return True

    def write_and_read(self, trial_id: int, attrs: Mapping[str, Any]) -> FrozenTrial | None:
        """Write ``attrs`` as user attributes of a trial, then read the trial, in one
        transaction: the record ``get_trial`` would return after writing them one by one.
        None when that transaction could not be made (helpers missing, the trial finished
        meanwhile, a lost connection): nothing was written then, and the caller takes the
        public path (which retries and reports the error as before)."""
        backend = self._backend
        write = getattr(backend, "_set_trial_attr_without_commit", None)
        build = getattr(backend, "_build_frozen_trial_from_trial_model", None)
        session_of = getattr(_rdb, "_create_scoped_session", None)
        if write is None or build is None or session_of is None:
            return None
        try:
            with session_of(backend.scoped_session) as session:
                # The trial's row, held (the session keeps only weak references) so that the
                # writes look it up without a query (_RDB); its attributes, values, ... are
                # loaded after the writes, by the read below.
                model = session.get(_rdb.models.TrialModel, trial_id)
                if model is None:
                    return None
                for key, value in attrs.items():
                    write(session, _rdb.models.TrialUserAttributeModel, trial_id, key, value)
                # Read as RDBStorage.get_trial reads (a finished trial is not in the cache: the
                # write above would have refused it).
                record = build(model)
        except Exception:  # noqa: BLE001 - rolled back; the public path does it again
            return None
        return record


def _cached_rdb(storage: BaseStorage) -> _CachedRDB | None:
    """The :class:`_CachedRDB` a study's storage is or wraps (tuneops' ``RetryingStorage``
    holds it as ``inner``); None for any other storage."""
    for _ in range(3):
        if isinstance(storage, _CachedRDB):
            return storage
        inner = storage.__dict__.get("inner") if hasattr(storage, "__dict__") else None
        if not isinstance(inner, BaseStorage):
            return None
        storage = inner
    return None


def hypervolume(points: np.ndarray, reference: np.ndarray, *, assume_pareto: bool = False) -> float:
    """The hypervolume of ``points`` (minimisation) bounded by ``reference``: Optuna's WFG, the
    algorithm its own hypervolume history plot uses (no public alias in Optuna 5)."""
    pts = np.asarray(points, dtype=float)
    if len(pts) == 0:
        return 0.0
    return float(
        compute_hypervolume(pts, np.asarray(reference, dtype=float), assume_pareto=assume_pareto)
    )


def gp_sampler(
    *, seed: int | None, n_local_search: int | None = None, **kw: Any
) -> optuna.samplers.GPSampler:
    """Optuna's ``GPSampler(seed=seed, **kw)``, its acquisition optimised from
    ``n_local_search`` starting points (None: Optuna's 10).

    The starting points are a private attribute (``GPSampler._n_local_search``; Optuna's
    ``_optimize_acqf`` passes it to ``optimize_acqf_mixed``): no public argument sets them. With
    categorical parameters the local search from each point, an exhaustive pass over every
    categorical's choices, was 97% of GPSampler's CPU (docs/benchmarks.md, issue 15).

    Raises:
        ValueError: ``n_local_search`` below 2 (the incumbent takes one starting point and at
            least one must come from the sampled candidates). An Optuna without the attribute
            gets a RuntimeWarning and its own search.
    """
    sampler = optuna.samplers.GPSampler(seed=seed, **kw)
    if n_local_search is not None:
        if isinstance(n_local_search, bool) or not isinstance(n_local_search, int):
            raise ValueError(
                f"n_local_search: expected a whole number >= 2, received {n_local_search!r}"
            )
        if n_local_search < 2:
            raise ValueError(
                f"n_local_search: expected a whole number >= 2 (the best trial is one starting "
                f"point, the sampled candidates at least one more), received {n_local_search}"
            )
        if hasattr(sampler, "_n_local_search"):
            sampler._n_local_search = n_local_search
        else:  # another Optuna: its own search (dearer, never wrong); said, not fatal
            warnings.warn(
                f"optuna {optuna.__version__}: GPSampler has no _n_local_search, so its "
                f"acquisition is searched from Optuna's default starting points, not "
                f"{n_local_search} (more CPU per trial).",
                RuntimeWarning,
                stacklevel=2,
            )
    return sampler


#: Set by ``tuneops --verbose``: Optuna's INFO lines are wanted, :func:`quiet` leaves them.
VERBOSE = False


def set_metric_names(study: optuna.Study, names: Sequence[str]) -> None:
    """Name the study's objectives where Optuna's own tools read them (optuna-dashboard showed
    "Objective 0", "Objective 1"); ``Study.set_metric_names`` is experimental, its warning
    silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(names))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Optuna's INFO lines ("A new study created ...") silenced within the block, unless the
    user asked for them (:data:`VERBOSE`, set by ``tuneops --verbose``, or verbosity DEBUG);
    the previous verbosity is restored after."""
    previous = optuna.logging.get_verbosity()
    if previous == optuna.logging.INFO and not VERBOSE:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _ped_anova_module() -> types.ModuleType:
    """``optuna.importance._ped_anova`` without running ``optuna/importance/__init__.py``, which
    imports scikit-learn for the fANOVA and MDI evaluators (about 2.7 s of CPU in a fresh process,
    more than the whole rest of a report). The package is stood in for only while the PED-ANOVA
    modules load, then removed, so a later ``import optuna.importance`` runs the real package."""
    if "optuna.importance" in sys.modules:
        return importlib.import_module("optuna.importance._ped_anova")
    spec = importlib.util.find_spec("optuna.importance")
    if spec is None or spec.submodule_search_locations is None:  # pragma: no cover - broken install
        return importlib.import_module("optuna.importance._ped_anova")
    stand_in = types.ModuleType("optuna.importance")
    stand_in.__path__ = list(spec.submodule_search_locations)
    sys.modules["optuna.importance"] = stand_in
    try:
        return importlib.import_module("optuna.importance._ped_anova")
    finally:
        if sys.modules.get("optuna.importance") is stand_in:
            del sys.modules["optuna.importance"]


class _TrialsOf:
    """A study seen through a given list of its completed trials (for an evaluator that reads
    ``get_trials``); everything else is the study's own."""

    def __init__(self, study: optuna.Study, trials: list[FrozenTrial]) -> None:
        self._study = study
        self._trials = trials

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return [t for t in self._trials if states is None or t.state in states]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


def param_importances(
    study: optuna.Study, trials: list[FrozenTrial] | None = None
) -> dict[str, float]:
    """PED-ANOVA importances (Optuna's default evaluator), normalized to sum 1 and sorted, as
    ``optuna.importance.get_param_importances(study)`` returns them; several objectives: the
    importance of reaching the Pareto front. Without loading scikit-learn (see above).
    ``trials``: evaluate on these completed trials of the study only (a sample of a large one)."""
    evaluator = _ped_anova_module().PedAnovaImportanceEvaluator()
    target = study if trials is None else _TrialsOf(study, trials)
    raw = evaluator.evaluate(target)  # type: ignore[arg-type]
    total = sum(raw.values())
    values = {k: (v / total if total else 1.0 / len(raw)) for k, v in raw.items()}
    return dict(sorted(values.items(), key=lambda kv: -kv[1]))


# -- journal snapshots (tuneops.storage) ----------------------------------------------------------
#: A journal backend that can hand ``JournalStorage`` a saved replay state when it opens
#: (``optuna.storages.journal._base.BaseJournalSnapshot``; Optuna's Redis backend is one).
JournalSnapshot = BaseJournalSnapshot

#: The lock a journal file backend takes around each append (``acquire``/``release``;
#: ``optuna.storages.journal._file.BaseJournalFileLock``): tuneops.storage passes its own.
JournalFileLock = BaseJournalFileLock


class _Opening(BaseJournalBackend, BaseJournalSnapshot):
    """``backend`` as a snapshot-giving backend, for ``JournalStorage.__init__`` only."""

    def __init__(self, backend: BaseJournalBackend, snapshot: bytes | None) -> None:
        self.backend, self.snapshot = backend, snapshot

    def read_logs(self, log_number_from: int) -> Any:
        return self.backend.read_logs(log_number_from)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.backend.append_logs(logs)

    def load_snapshot(self) -> bytes | None:
        return self.snapshot

    def save_snapshot(self, snapshot: bytes) -> None:  # pragma: no cover - not called on opening
        """Nothing: a snapshot is saved by its owner, who knows where it belongs."""


# A stop signal's handler raises in whatever the main thread is doing (tuneops.runner). Inside
# Optuna's journal replay (``JournalStorageReplayResult.apply_logs`` counts an entry read before
# it applies it) that lost the entry from the process's view for good: a trial the worker had
# just created was missing when it gave its trials back, and stayed RUNNING. The handler defers
# a signal that arrives during a replay of the main thread; the replay delivers it again when
# done (a few microseconds per storage read when nothing arrives).
_replaying = 0
_deferred: list[int] = []


def replaying() -> bool:
    """Whether the main thread is replaying journal entries (a signal must wait)."""
    return _replaying > 0


def defer_signal(signum: int) -> None:
    """Deliver ``signum`` again when the current journal replay is done."""
    _deferred.append(signum)


class _Journal(JournalStorage):
    """Optuna's ``JournalStorage`` whose replay a stop signal does not cut in half."""

    def _sync_with_backend(self) -> None:
        global _replaying
        if threading.current_thread() is not threading.main_thread():
            self._replay()  # signal handlers run in the main thread only
            return
        _replaying += 1
        try:
            self._replay()
        finally:
            _replaying -= 1
            if not _replaying and _deferred:
                signum = _deferred[0]
                _deferred.clear()
                signal.raise_signal(signum)


    def _replay(self) -> None:
        """Optuna's replay of the entries not read yet; an entry it cannot read or apply is
        raised as the error the backend makes of it (``damage(exc)``: a damaged line, named),
        when it has one: a file damaged while a run read it stopped the run with a traceback."""
        try:
            super()._sync_with_backend()
        except Exception as exc:
            damage = getattr(self._backend, "damage", None)
            error = damage(exc) if damage is not None else None
            if error is None:
                raise
            raise error from exc


def replay_signal(exc: BaseException) -> bool:
    """True when ``exc``, raised by Optuna's journal replay, is what the replay tells the
    writer of an entry it applies (``JournalStorageReplayResult``: this process's create of a
    study that another created first, ``DuplicatedStudyError``; its update of a trial another
    finished, ``UpdateFinishedTrialError``; a record gone, ``KeyError(NOT_FOUND_MSG)``), not
    an entry that cannot be read."""
    return isinstance(exc, optuna.exceptions.OptunaError) or (
        isinstance(exc, KeyError) and exc.args == (_journal_storage.NOT_FOUND_MSG,)
    )


def journal_storage(backend: BaseJournalBackend) -> JournalStorage:
    """A ``JournalStorage`` on ``backend`` (its own snapshot, if it keeps one, restored) whose
    replay a stop signal does not cut in half."""
    return _Journal(backend)


def open_journal(backend: BaseJournalBackend, snapshot: bytes | None = None) -> JournalStorage:
    """A ``JournalStorage`` on ``backend`` that starts from ``snapshot`` (a pickled replay state,
    as :func:`journal_state` makes; None: none) and replays the entries after it.

    Optuna restores a snapshot only from a backend that is a ``BaseJournalSnapshot``, and it
    pickles the whole replay state for such a backend at every 100th trial created
    (``JournalStorage.create_new_trial``): a cost that grows with the study (21 ms per pickle at
    2,000 trials, about 0.2 ms per trial, five times that at 10,000), thrown away by a backend
    that saves its snapshots itself. So the backend is a snapshot-giving one only while the
    storage opens (``JournalStorage._backend`` is the plain backend after).
    """
    storage = _Journal(_Opening(backend, snapshot))
    storage._backend = backend
    return storage


def journal_backend(storage: BaseStorage) -> object | None:
    """The backend of a journal storage (``JournalStorage._backend``); None for another one."""
    return storage._backend if isinstance(storage, JournalStorage) else None


def journal_entries(storage: JournalStorage) -> int:
    """How many journal entries ``storage`` has replayed so far."""
    return storage._replay_result.log_number_read


#: Trials per part of a pickled journal state (see :func:`journal_state`).
STATE_PART = 1000


def journal_state(storage: JournalStorage) -> tuple[JournalState, int]:
    """The state a journal storage replayed, for ``JournalStorage`` to restore as it restores
    Optuna's own snapshots (``JournalStorage._replay_result``), and how many journal entries it
    holds; taken under the storage's lock, so no entry is half applied.

    The trials are pickled in parts of :data:`STATE_PART`, each with its own memo, inside one
    pickle that joins them when loaded (:func:`_join_state`): one memo over 10,000 trials' objects
    took 22-27 MB at the end of a run, and no memo at all (``Pickler.fast``) doubled the time to
    load (each trial's classes looked up again).
    """
    with storage._thread_lock:
        result = storage._replay_result
        trials = list(result._trials.items())
        head = copy.copy(result)
        head._trials = {}
        parts = [pickle.dumps(head, protocol=pickle.HIGHEST_PROTOCOL)]
        parts += [
            pickle.dumps(trials[i : i + STATE_PART], protocol=pickle.HIGHEST_PROTOCOL)
            for i in range(0, len(trials), STATE_PART)
        ]
        n_entries = result.log_number_read
    return JournalState(parts), n_entries


class JournalState:
    """A journal state in parts (:func:`journal_state`); unpickles as the joined
    ``JournalStorageReplayResult``."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    def __reduce__(self) -> tuple[Any, tuple[list[bytes]]]:
        return _join_state, (self.parts,)

    def dump(self, file: Any) -> None:
        """Write the pickle to ``file`` (anything with ``write``), the bytes ``pickle.dumps``
        gives. The parts go to ``write`` as they are, not first joined into one more copy of the
        state (5 MB at 10,000 trials, at the end of a run, when its memory peaks)."""
        pickle.Pickler(file, protocol=pickle.HIGHEST_PROTOCOL).dump(self)


def _join_state(parts: list[bytes]) -> Any:
    """The replay state from :func:`journal_state`'s parts: the head, then its trials in order."""
    result = pickle.loads(parts[0])
    for part in parts[1:]:
        result._trials.update(pickle.loads(part))
    result.tuneops_snapshot = True  # what journal_restored reads
    return result


def journal_restored(storage: JournalStorage) -> bool:
    """True when ``storage`` started from a state of :func:`journal_state` (Optuna's restore
    ignores a snapshot it cannot unpickle with a warning, and replays the whole journal)."""
    return bool(getattr(storage._replay_result, "tuneops_snapshot", False))


def journal_file_offset(backend: JournalFileBackend, n_entries: int) -> int | None:
    """The byte offset where entry ``n_entries`` of a journal file begins, as the backend
    recorded it while reading (``JournalFileBackend._log_number_offset``); None if not read."""
    return backend._log_number_offset.get(n_entries)


def seek_journal_file(backend: JournalFileBackend, n_entries: int, offset: int) -> None:
    """Let the backend's next read from entry ``n_entries`` start at byte ``offset`` instead of
    scanning every line before it (the offset it would record itself)."""
    backend._log_number_offset[n_entries] = offset


_ENTRY_START = b'{"op_code":'  # every entry Optuna writes begins so (its first key)


class JournalLineError(ValueError):
    """A line of a journal file that is not an entry (not JSON, or cut short before another
    line): ``log_number`` is its entry number, counted from 0 (the line number less one)."""

    def __init__(self, log_number: int, reason: Exception) -> None:
        super().__init__(f"line {log_number + 1}: {type(reason).__name__}: {reason}")
        self.log_number = log_number
        self.reason = reason


def read_journal_file(
    backend: JournalFileBackend, log_number_from: int, on_glued: Callable[[int, int], None]
) -> Iterator[dict[str, Any]]:
    """``JournalFileBackend.read_logs`` (Optuna 5.0-5.1, line for line, its offsets kept in
    ``_log_number_offset``), except for a *glued* line: an entry a writer left incomplete
    (killed within a write, a full disk), with the next writer's whole entry appended after
    it on the same line. Optuna stops every read there with a decode error, so the study could
    never be loaded again; here the whole entry at the line's end is read, and
    ``on_glued(log_number, bytes dropped)`` is called. Any other undecodable line raises as in
    Optuna (at the next line; a torn last line is skipped), as a :class:`JournalLineError`
    naming it.

    Two savings on Optuna's reader, which a 10,000-trial study (some 50,000 entries) feels in
    its memory: the backend keeps the byte offsets of entry 0, of ``log_number_from`` and of
    the next entry to read, not of every entry read (the storage only ever asks for the
    entry after the last it applied; any other number is found by a scan from the start, as
    Optuna does for a number it never saw); and attribute names, short strings and small
    records are shared (:func:`_shared`), not one copy per trial of ``"tuneops:fidelity"``, of
    the worker that ran it ...
    """
    path = backend._file_path
    offsets = backend._log_number_offset
    with open(path, "rb") as f:
        remaining = os.stat(path).st_size
        start = 0
        if log_number_from in offsets:
            for stale in [n for n in offsets if n not in (0, log_number_from)]:
                del offsets[stale]  # a few at most: see below
            f.seek(offsets[log_number_from])
            start = log_number_from
            remaining -= offsets[log_number_from]
        error: JournalLineError | None = None
        for log_number, line in enumerate(f, start=start):
            remaining -= len(line)
            if remaining < 0:
                break
            if error is not None:
                raise error
            if not line.endswith(b"\n"):
                error = JournalLineError(log_number, ValueError("Invalid log format."))
                continue
            if log_number + 1 not in offsets:
                offsets[log_number + 1] = offsets[log_number] + len(line)
            if log_number not in (0, log_number_from):
                offsets.pop(log_number, None)
            if log_number < log_number_from:
                continue
            try:
                entry = json.loads(line)
            except ValueError as err:  # not JSON, or not UTF-8 (a flipped byte)
                at = line.rfind(_ENTRY_START)
                entry = _decoded(line[at:]) if at > 0 else None
                if entry is None:
                    error = JournalLineError(log_number, err)
                    del offsets[log_number + 1]
                    continue
                on_glued(log_number, at)
            if not isinstance(entry, dict):
                raise JournalLineError(log_number, TypeError(f"a JSON {type(entry).__name__}"))
            for key in _ATTR_KEYS:  # each attribute's value; the mapping stays the entry's own
                if isinstance(entry.get(key), dict):
                    entry[key] = {sys.intern(k): _shared(v) for k, v in entry[key].items()}
            yield entry


def redis_journal_top(backend: JournalRedisBackend) -> int | None:
    """The number of the newest entry of a Redis journal (its ``log_number`` key, one GET), or
    None when it holds none."""
    top = backend._redis.get(f"{backend._prefix}:log_number")
    return None if top is None else int(top)


def read_redis_journal(
    backend: JournalRedisBackend, log_number_from: int, top: int | None
) -> Iterator[dict[str, Any]]:
    """``JournalRedisBackend.read_logs`` (Optuna 5.0-5.1, line for line) up to entry ``top``,
    which the caller read (:func:`redis_journal_top`) to check it first: Optuna's reader reads
    it again, a second round trip on every sync, most of which find nothing new."""
    if top is None:
        return
    for log_number in range(log_number_from, top + 1):
        sleep_secs = 0.1
        while True:  # a number taken by a writer whose entry is not set yet (a Redis cluster)
            log = backend._redis.get(backend._key_log_id(log_number))
            if log is not None:
                break
            time.sleep(sleep_secs)
            sleep_secs = min(sleep_secs * 2, 10)
        try:
            yield json.loads(log)
        except json.JSONDecodeError:
            if log_number != top:
                raise


# the keys of the journal entries that carry attributes (set one; create a trial with several)
_ATTR_KEYS = ("user_attr", "system_attr", "user_attrs", "system_attrs")
_SHARED_STR = 64  # strings up to this length are shared (interned); longer ones are data
_SHARED_RECORDS = 256  # at most so many distinct small records are shared (see _shared)
_shared_records: dict[tuple[tuple[str, type, Any], ...], dict[str, Any]] = {}


def _shared(value: Any) -> Any:
    """``value`` (decoded JSON) with its dict keys and short strings interned: equal strings are
    one object, as the trials of a study repeat the same attribute names. A small record of
    strings and numbers seen before (the worker that ran a trial, on every trial it ran) is
    the object decoded first, among the first :data:`_SHARED_RECORDS` distinct ones; neither
    Optuna's replay nor tuneops changes an attribute's value in place (a trial read with
    ``deepcopy=True``, Optuna's default, has copies)."""
    if isinstance(value, dict):
        out = {sys.intern(k): _shared(v) for k, v in value.items()}
        if 0 < len(out) <= 4 and all(type(v) in (str, int, float, bool) for v in out.values()):
            key = tuple((k, type(v), v) for k, v in out.items())  # 1, 1.0 and True differ
            first = _shared_records.get(key)
            if first is not None:
                return first
            if len(_shared_records) < _SHARED_RECORDS:
                _shared_records[key] = out
        return out
    if isinstance(value, list):
        return [_shared(v) for v in value]
    if isinstance(value, str) and len(value) <= _SHARED_STR:
        return sys.intern(value)
    return value


def _decoded(text: bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
