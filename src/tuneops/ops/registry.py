"""The model registry: versions, the champion, and the event log, in the study storage.

A registry is an Optuna study named ``tuneops-registry:<model>`` in the same storage as the
tuning studies (journal file, SQLite, PostgreSQL, Redis: any storage Optuna offers), so every
machine that sees the studies sees the champion. Its study user attributes hold:

* ``tuneops:version:<n>`` - one record per version: the artifact (path and sha256 of the
  ``model.joblib`` written by :func:`tuneops.export.save_model`), source study and trial, family,
  params, CV metrics, spec, data fingerprint, features, and the reference profile of the
  training data (per-feature distributions, out-of-fold prediction distribution, reference
  metric) that monitoring compares batches with;
* ``tuneops:champion`` - the current champion and the history of champions (for rollback);
* ``tuneops:challenger`` - the version that ``tuneops serve`` runs beside the champion (shadow
  or canary) and its share of traffic, or none;
* ``tuneops:event:<time>`` - one record per event (``register``, ``promote``, ``rollback``,
  ``monitor``, ``retune``, ``verify``, ``challenger``, ``live``), appended, never rewritten.

Each record is its own key, so writers append instead of rewriting one growing document.
The model file is verified against its sha256 before it is loaded. Version numbers are the
registry study's trials, each created complete in one write that names its writer
(``tuneops:reserved_by``). A deploy holds a claim (:mod:`tuneops.claims`) on its study, trial
and data while it runs: the same deploy started twice at once registers one version.

Example::

    >>> from tuneops.ops.registry import deploy                  # doctest: +SKIP
    >>> record = deploy("quickstart")                            # doctest: +SKIP
    >>> Registry.open("quickstart").champion()                   # doctest: +SKIP
    1
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from tuneops import _optuna, _study, runner
from tuneops._files import check_output_dir, copy_atomic, path_part, write_atomic
from tuneops._secrets import mask_secrets, shown_settings
from tuneops.claims import CLAIM_ATTR, Claim
from tuneops.errors import IntegrityError, StudyNotFound, UsageError
from tuneops.export import METADATA_FILE, MODEL_FILE, load_model, sha256_file, verify_model
from tuneops.heartbeat import GRACE_S, pid_alive, run_alive, stale_trials
from tuneops.objective import SpecObjective
from tuneops.ops.categories import category_schema
from tuneops.ops.drift import profile_column, profile_frame
from tuneops.ops.monitor import MonitorConfig, metric_value, monitored_metric
from tuneops.spec import Monitor, yaml_on_key
from tuneops.storage import get_storage, mask_url, resolve_url, storage_exists
from tuneops.tuning import DATA_ATTR, complete_trial, export_trial, load_study, rebuild

__all__ = [
    "PREFIX",
    "Registry",
    "list_models",
    "deploy",
    "register_trial",
    "reference_profile",
    "saved_artifact",
    "sha256_file",
    "comparable",
    "ChampionChanged",
    "DeployInterrupted",
    "unfinished_deploy",
    "partial_versions",
    "remove_stale_versions",
]

PREFIX = _study.REGISTRY_PREFIX
_VERSION = "tuneops:version:"
_EVENT = "tuneops:event:"
_CHAMPION = "tuneops:champion"
_CHALLENGER = "tuneops:challenger"
_SETTINGS = "tuneops:settings"
#: A file in a version's directory while it is written: its writer (host, pid, since).
WRITER_FILE = ".tuneops-writer.json"
_RESERVED_BY = "tuneops:reserved_by"  # user attribute of a reservation's trial: its writer
_WAIT_S = 0.25  # between two looks at the claim of the same deploy run elsewhere
_CHANGE_WAIT_S = 0.05  # between two looks at the claim of a change of champion elsewhere
#: ``if_champion`` of :meth:`Registry.promote` and :meth:`Registry.set_challenger`: any champion
_ANY: Any = object()
_status = logging.getLogger("tuneops.status")  # lines the CLI prints as its own
_log = logging.getLogger("tuneops")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")  # as a study's name


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


#: The fields of a version record and their types, checked where present (records registered
#: by hand or by an earlier tuneops may lack some); the first three are required.
_RECORD_FIELDS: dict[str, type] = {
    "version": int,
    "source": dict,
    "artifact": dict,
    "family": str,
    "params": dict,
    "trial_params": dict,
    "metrics": dict,
    "spec": dict,
    "data": dict,
    "features": list,
    "categorical": list,
    "target": str,
    "task": str,
    "profile": dict,
    "created": str,
}
_REQUIRED_FIELDS = ("version", "source", "artifact")


def _record_problem(number: str, record: Any) -> str | None:
    """What is wrong with the version record stored as version ``number``, or None."""
    if not isinstance(record, Mapping):
        return f"expected a mapping of the version's fields, received {type(record).__name__}"
    for name in _REQUIRED_FIELDS:
        if name not in record:
            return f"it lacks {name!r}"
    for name, kind in _RECORD_FIELDS.items():
        if name in record and (
            not isinstance(record[name], kind) or isinstance(record[name], bool)
        ):
            shown = repr(record[name])
            return (
                f"{name!r} is {shown[:60]}{'...' if len(shown) > 60 else ''}, expected "
                f"{'a number' if kind is int else f'a {kind.__name__}'}"
            )
    if str(record["version"]) != number:
        return f"it names version {record['version']}, but is stored as version {number}"
    artifact = record["artifact"]
    for name in ("path", "sha256"):
        if not isinstance(artifact.get(name), str):
            return f"its artifact lacks {name} (artifact: {artifact!r})"
    profile = record.get("profile")
    if profile is not None:
        for name, kind in (("features", dict), ("metric", str)):
            if name in profile and not isinstance(profile[name], kind):
                return f"its profile's {name!r} is not a {kind.__name__}"
    return None


def _damaged(where: tuple[str, str, str], wrong: str) -> UsageError:
    """The error of a damaged version record; ``where``: (model, version, storage shown)."""
    name, number, storage = where
    return UsageError(
        f"model {name!r} version {number}: its record in the registry (storage {storage!r}, "
        f"study '{PREFIX}{name}') is damaged: {wrong}. tuneops did not write it so (it was "
        "edited in the storage, or the storage is damaged), and reads nothing of it. What to "
        "do: restore the storage from a backup; or make another version the champion "
        "(`tuneops registry rollback`, or `tuneops registry promote VERSION` of one `tuneops "
        "registry list` shows) and deploy again."
    )


class _Record(dict):  # type: ignore[type-arg]
    """A checked version record: a field read that it lacks raises the damaged-record error
    naming the field (:func:`_damaged`), not a bare ``KeyError``. Holds only strings besides
    the record, so it copies and pickles as the dict it is."""

    def __init__(self, record: Mapping[str, Any], where: tuple[str, str, str]) -> None:
        super().__init__(record)
        self._where = where

    def __missing__(self, key: str) -> Any:
        raise _damaged(self._where, f"it has no {key!r}")


def list_models(storage: str | None = None) -> list[str]:
    """Names of the models registered in a storage (none in a journal or SQLite file that does
    not exist: listing never creates it)."""
    if not storage_exists(storage):
        return []
    summaries = optuna.get_all_study_summaries(get_storage(storage), include_best_trial=False)
    return sorted(
        s.study_name.removeprefix(PREFIX) for s in summaries if s.study_name.startswith(PREFIX)
    )


class ChampionChanged(UsageError):
    """The champion is no longer the one a change was judged against (another process changed
    it meanwhile): ``expected`` and ``current`` name both; nothing was changed."""

    def __init__(self, message: str, *, expected: int | None, current: int | None) -> None:
        super().__init__(message)
        self.expected, self.current = expected, current


class Registry:
    """One model's versions, champion and events, stored in a study's user attributes.

    Safe for several writers at once, on every storage: versions are registered and events
    appended without a lock (a version number is a trial of the registry study, which every
    storage numbers atomically; each event is its own key). A change of champion or challenger
    (promote, rollback, a challenger set or cleared) reads the champion record and rewrites it:
    one process at a time does so, holding the model's claim on such changes
    (:meth:`changing`), so two promotions at the same moment are made one after the other,
    each recording the champion it replaced.
    """

    def __init__(self, study: optuna.Study, storage_url: str | None):
        self.study = study
        self.storage_url = storage_url
        self.name = study.study_name.removeprefix(PREFIX)
        self._classes: dict[int, Any] = {}
        # the thread holding the claim on changes through this object, and how deep (changing())
        self._changing: tuple[int, int] | None = None

    @classmethod
    def open(
        cls, name: str | None = None, storage: str | None = None, *, create: bool = False
    ) -> Registry:
        """Open the registry of model ``name`` (the only model, when ``name`` is None).

        Raises:
            StudyNotFound: no such model (the message lists the registered ones).
        """
        if create and name is not None and not _MODEL_NAME.match(name):
            # the name becomes a directory of the artifacts: '..' or 'a/b' would leave it, and
            # names that differ only in such characters would share one
            raise UsageError(
                f"name (--model): expected a name of letters, digits, '_', '-' or '.' starting "
                f"with a letter or digit (at most 128), received {name!r}."
            )
        store = get_storage(storage, must_exist=not create)  # reading never creates a file
        if name is None:
            names = list_models(storage)
            if len(names) != 1:
                raise UsageError(
                    f"name (--model): "
                    f"{'no model is' if not names else f'{len(names)} models are'} "
                    "registered in "
                    f"{mask_url(resolve_url(storage))!r}"
                    + (
                        f" ({', '.join(names)}); name one with --model."
                        if names
                        else "; register one with `tuneops deploy STUDY` first."
                    )
                )
            name = names[0]
        try:
            study = optuna.load_study(study_name=PREFIX + name, storage=store)
        except KeyError:
            if not create:
                names = list_models(storage)
                raise StudyNotFound(
                    f"no model {name!r} in the registry of {mask_url(resolve_url(storage))!r}; "
                    "registered: "
                    f"{', '.join(names) or 'none'}. Register it with `tuneops deploy STUDY`."
                ) from None
            try:
                study = optuna.create_study(
                    study_name=PREFIX + name, storage=store, directions=["maximize"]
                )
            except optuna.exceptions.DuplicatedStudyError:  # created this moment elsewhere
                study = optuna.load_study(study_name=PREFIX + name, storage=store)
            else:
                study.set_user_attr("tuneops:registry", {"model": name, "created": _now()})
        return cls(study, storage)

    # -- reading ----------------------------------------------------------------------------
    def _attrs(self) -> dict[str, Any]:
        return self.study.user_attrs  # read from the storage on every access

    def versions(self) -> list[dict[str, Any]]:
        """Every version's record, by number. A damaged record (:meth:`version` raises on it)
        is left out with a warning that names it: the others stay listed, and the next
        version can be registered and promoted in its place."""
        out = []
        for key, value in self._attrs().items():
            if key.startswith(_VERSION):
                try:
                    out.append(self._checked(key, value))
                except UsageError as exc:
                    _log.warning("%s (left out of the versions)", exc)
        return sorted(out, key=lambda v: v["version"])

    def _checked(self, key: str, record: Any) -> dict[str, Any]:
        """The version record stored under ``key``, checked to be what tuneops writes: a
        mapping with its number, its source and its artifact's path and sha256, and the other
        fields of a version of the right types where present. A field missing when it is read
        is named as the damage too (:class:`_Record`), not raised as a bare ``KeyError``.

        Raises:
            UsageError: the record is not one tuneops wrote (edited in the storage, or the
                storage damaged); the message names the version, what is wrong and what to do.
        """
        where = (self.name, key.removeprefix(_VERSION), mask_url(resolve_url(self.storage_url)))
        wrong = _record_problem(where[1], record)
        if wrong:
            raise _damaged(where, wrong)
        return _Record(record, where)

    def version(self, number: int, *, field: str = "version") -> dict[str, Any]:
        """The record of version ``number``; ``field`` is how the caller's input is named.

        Raises:
            UsageError: no such version; the message names ``field`` and lists the versions
                that exist.
        """
        record = self._attrs().get(f"{_VERSION}{number}")
        if record is None:
            existing = [str(v["version"]) for v in self.versions()]
            raise UsageError(
                f"{field}: model {self.name!r} has no version {number}; versions: "
                f"{', '.join(existing) or 'none'}."
            )
        return self._checked(f"{_VERSION}{number}", record)

    def champion(self) -> int | None:
        return self._champion_state().get("version")

    def _champion_state(
        self, attrs: Mapping[str, Any] | None = None, *, replacing: bool = False
    ) -> dict[str, Any]:
        """The champion record (``version``, ``history`` of earlier champions, the ``event``
        of a change left unfinished), checked to be what tuneops writes.

        ``replacing``: the caller writes a new champion record (promote, a rollback to a named
        version): a damaged one is then read as no champion, with a warning, so that the
        command the error advises gets out of it.

        Raises:
            UsageError: the record is damaged (edited in the storage, or the storage damaged),
                unless ``replacing``.
        """
        raw = (self._attrs() if attrs is None else attrs).get(_CHAMPION)
        if raw is None:
            return {"version": None, "history": []}
        wrong = None
        if not isinstance(raw, Mapping):
            wrong = f"expected a mapping, received {type(raw).__name__} {str(raw)[:40]!r}"
        elif raw.get("version") is not None and (
            not isinstance(raw["version"], int) or isinstance(raw["version"], bool)
        ):
            wrong = f"its version is {raw['version']!r}, expected a version number"
        elif not isinstance(raw.get("history", []), list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in raw.get("history", [])
        ):
            wrong = f"its history is {str(raw.get('history'))[:60]!r}, expected version numbers"
        elif raw.get("event") is not None and not (
            isinstance(raw["event"], Mapping)
            and {"key", "record", "retire", "why"} <= set(raw["event"])
        ):
            wrong = "its unfinished change's event is not one tuneops writes"
        if wrong is None:
            return dict(raw)
        where = mask_url(resolve_url(self.storage_url))
        text = (
            f"model {self.name!r}: the champion record in the registry (storage {where!r}, "
            f"study '{PREFIX}{self.name}') is damaged: {wrong}. tuneops did not write it so (it "
            "was edited in the storage, or the storage is damaged)"
        )
        if replacing:
            _log.warning("%s; it is replaced, and the champions before it are forgotten", text)
            return {"version": None, "history": []}
        raise UsageError(
            f"{text}, and reads nothing of it. What to do: restore the storage from a backup; "
            "or name the champion again (`tuneops registry promote VERSION` of one `tuneops "
            "registry list` shows), which replaces the record (rollback then has no earlier "
            "champion to go back to)."
        )

    def require_champion(self) -> int:
        champion = self.champion()
        if champion is None:
            raise UsageError(
                f"model {self.name!r} has no champion; promote a version with "
                "`tuneops registry promote VERSION`."
            )
        return champion

    def champion_history(self) -> list[int]:
        """The previous champions, oldest first (where :meth:`rollback` goes back to)."""
        return list(self._champion_state().get("history", []))

    def challenger(self) -> dict[str, Any] | None:
        """The served challenger: ``{"version", "mode" ("shadow"|"canary"), "share", "since"}``."""
        state = self._attrs().get(_CHALLENGER)
        if not state or state.get("version") is None:
            return None
        return {k: v for k, v in state.items() if k != "event"}

    def verification(self, number: int) -> dict[str, Any] | None:
        """The latest ``verify`` event of version ``number`` (the staging gate), or None."""
        found = [e for e in self.events("verify") if e.get("version") == number]
        return found[-1] if found else None

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The events (of ``kind``), oldest first. One changed in the storage into what
        tuneops does not write (not a mapping with its kind and time) is left out with a
        warning that names it: the others are read as ever."""
        attrs = self._attrs()
        out: list[dict[str, Any]] = []
        for key in sorted(k for k in attrs if k.startswith(_EVENT)):
            event = attrs[key]
            if not (
                isinstance(event, dict)
                and isinstance(event.get("kind"), str)
                and isinstance(event.get("time"), str)
            ):
                _log.warning(
                    "model %r: event %s in the registry (storage %r) is damaged (%s, expected "
                    "a mapping with its kind and time); left out of the events",
                    self.name,
                    key.removeprefix(_EVENT),
                    mask_url(resolve_url(self.storage_url)),
                    str(event)[:60],
                )
                continue
            if kind is None or event["kind"] == kind:
                out.append(event)
        return out

    def settings(self) -> dict[str, Any]:
        """The model's own ``monitor`` settings (:meth:`configure`; empty: none)."""
        return dict((self._attrs().get(_SETTINGS) or {}).get("monitor") or {})

    def monitor_section(self, version: Mapping[str, Any]) -> dict[str, Any]:
        """The ``monitor`` settings that apply to ``version``: its spec's section, with the
        model's own settings in place of the keys they set (nested sections merged setting by
        setting)."""
        section = dict((version.get("spec") or {}).get("monitor") or {})
        for key, value in self.settings().items():
            mine = section.get(key)
            # a nested section (verify, slo, live, alerts) is merged setting by setting:
            # `verify: {n_repeats: 2}` keeps the spec's n_folds
            if isinstance(mine, dict) and isinstance(value, dict):
                value = {**mine, **value}
            section[key] = value
        return section

    def config(self, version: Mapping[str, Any]) -> MonitorConfig:
        """The monitoring thresholds that apply to a version (:meth:`monitor_section`)."""
        return MonitorConfig.from_raw(self.monitor_section(version))

    def verify(self, number: int) -> dict[str, Any]:
        """Check version ``number``'s artifact against the sha256 recorded at registration (and
        the one in its ``model.json``) without loading it; returns the version record.

        Raises:
            UsageError: no such version, or its artifact is not on this machine.
            IntegrityError: the artifact's content changed since it was registered.
        """
        record = self.version(number)
        path = self._artifact_path(number, record)
        try:
            verify_model(path, record["artifact"]["sha256"])
        except IntegrityError as exc:
            raise IntegrityError(
                f"model {self.name!r} version {number} fails verification: {exc}"
            ) from None
        return record

    def intact(self, number: int) -> bool:
        """Whether version ``number``'s artifact is here and still the one registered
        (:meth:`verify` without its errors): what a rerun checks before reusing a version."""
        try:
            self.verify(number)
        except (UsageError, IntegrityError):
            return False
        return True

    def _artifact_path(self, number: int, record: Mapping[str, Any]) -> Path:
        path = Path(record["artifact"]["path"])
        if not path.is_file():
            raise UsageError(
                f"model {self.name!r} version {number}: artifact {str(path)!r} does not exist on "
                "this "
                "machine, so it cannot be verified; copy the artifact directory here or set "
                "monitor.artifact_dir to shared storage."
            )
        return path

    def load_model(self, number: int) -> tuple[Any, dict[str, Any]]:
        """Load version ``number``'s model after checking its sha256 (see :meth:`verify`).

        The bytes checked are the bytes unpickled (one read): a file replaced after a check
        and read again would run unchecked code.

        Raises:
            UsageError: the artifact is missing. IntegrityError: its content changed.
        """
        record = self.version(number)
        path = self._artifact_path(number, record)
        try:
            return load_model(path, sha256=record["artifact"]["sha256"])
        except IntegrityError as exc:
            raise IntegrityError(
                f"model {self.name!r} version {number} fails verification: {exc}"
            ) from None

    def classes(self, number: int) -> Any:
        """The classes version ``number`` predicts (its model's ``classes_``; None for a
        regressor), loaded once per registry object: a monitored batch, the re-tuning it starts
        and a refresh all check their labels against them."""
        return self._facts(number)[0]

    def categories(self, number: int) -> tuple[dict[str, str], dict[str, tuple[Any, ...]]]:
        """Per categorical feature of version ``number``, the kind of value its categories are
        and the categories it knows (:func:`tuneops.ops.categories.category_schema`, what
        ``tuneops serve`` checks requests against), loaded once per registry object: a batch
        to monitor, re-tune or refresh on is checked against them."""
        return self._facts(number)[1]

    def _facts(self, number: int) -> tuple[Any, tuple[dict[str, str], dict[str, tuple[Any, ...]]]]:
        if number not in self._classes:
            model, _ = self.load_model(number)
            record = self.version(number)
            schema = category_schema(
                model,
                list(record.get("categorical") or ()),
                (record.get("profile") or {}).get("features") or {},
            )
            self._classes[number] = (getattr(model, "classes_", None), schema)
        return self._classes[number]

    # -- writing ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def changing(self) -> Iterator[None]:
        """Hold the model's claim on changes of champion, challenger and its own settings for
        the block, waiting while a live process holds it (:class:`tuneops.claims.Claim`:
        atomic on every storage; the claim of a process that died is taken over). Reentrant
        within this object and thread; another thread waits as another process does.

        Without it, two promotions at the same moment both read champion 1 and wrote theirs:
        the champion was the last writer's, its history lost the other, and both ``promote``
        events said they replaced version 1.
        """
        me = threading.get_ident()
        if self._changing is not None and self._changing[0] == me:
            self._changing = (me, self._changing[1] + 1)
            try:
                yield
            finally:
                self._changing = (me, self._changing[1] - 1)
            return
        work = f"{path_part(self.name)}.champion"
        claim = Claim(_optuna.storage_of(self.study), work, runner.worker_identity())
        said = False
        while (holder := claim.acquire()) is not None:
            if not said and time.time() - claim.record["since"] > 1.0:  # not a blink: say so
                said = True
                _status.info(
                    "Waiting for %s, which is changing the champion, challenger or settings "
                    "of model %r (one change at a time; a holder that died is taken over "
                    "after %g s without a heartbeat).",
                    holder.get("id", "another process"),
                    self.name,
                    GRACE_S,
                )
            time.sleep(_CHANGE_WAIT_S)
        self._changing = (me, 1)
        try:
            with claim.beating():
                yield
        finally:
            self._changing = None

    def _expect_champion(self, expected: Any, what: str) -> None:
        """Refuse ``what`` (a change decided while ``expected`` was the champion) when it is
        no longer the champion (:data:`_ANY`: any champion will do, and a damaged champion
        record is left to the change, which replaces it or names it)."""
        if expected is _ANY:
            return
        current = self.champion()
        if current != expected:
            raise ChampionChanged(
                f"model {self.name!r}: {what} was decided while version {expected} was the "
                f"champion, and the champion is now {current} (changed by another process "
                "meanwhile); nothing was changed: decide it again against the new champion.",
                expected=expected,
                current=current,
            )

    def reserve_version(self) -> int:
        """A new version number, never handed to another writer, even one reserving at the same
        moment: it is 1 + the number of a trial created in the registry study, which every
        storage numbers atomically. A registry from before reservations skips the numbers it
        already has.

        The trial is created complete in one write, naming its writer (``tuneops:reserved_by``:
        host, pid, since): no kill leaves it RUNNING. Reservations an earlier tuneops left
        RUNNING (killed between its writes) are given up (FAIL) once their writer is provably
        gone (:func:`tuneops.heartbeat.stale_trials`).
        """
        self._give_up_dead_reservations()
        taken = {v["version"] for v in self.versions()}
        storage, study_id = _optuna.storage_of(self.study), _optuna.study_id(self.study)
        while True:
            writer = {**runner.worker_identity(), "since": time.time()}
            template = optuna.trial.create_trial(value=0.0, user_attrs={_RESERVED_BY: writer})
            trial_id = storage.create_new_trial(study_id, template_trial=template)
            number = storage.get_trial_number_from_id(trial_id) + 1
            if number not in taken:
                return number

    def reserved(self) -> dict[int, dict[str, Any]]:
        """Every version number reserved (:meth:`reserve_version`), recorded or not, with its
        writer (``{}`` for a reservation of an earlier tuneops, which named none)."""
        out: dict[int, dict[str, Any]] = {}
        for t in self.study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
        ):
            if _RESERVED_BY in t.user_attrs or isinstance(t.user_attrs.get("tuneops:version"), int):
                out[t.number + 1] = dict(t.user_attrs.get(_RESERVED_BY) or {})
        return out

    def _give_up_dead_reservations(self) -> None:
        running = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        for trial, _ in stale_trials(running, now=time.time(), grace_s=GRACE_S):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                _optuna.set_trial_state(self.study, trial, optuna.trial.TrialState.FAIL)

    def record(self, kind: str, **payload: Any) -> dict[str, Any]:
        """Append an event; returns it. Secrets are masked, a webhook's path and query too (the
        settings an event copies are delivered from where they are stored, not from it)."""
        key, event = _event(kind, payload)
        self.study.set_user_attr(key, event)
        return event

    def add_version(self, record: Mapping[str, Any]) -> dict[str, Any]:
        stored: dict[str, Any] = mask_secrets(_plain({**record, "created": _now()}))
        self.study.set_user_attr(f"{_VERSION}{stored['version']}", stored)
        self.record("register", version=stored["version"], source=stored["source"])
        return stored

    def configure(
        self,
        monitor: Mapping[str, Any] | None,
        reason: str = "set by hand",
        *,
        merge: bool = False,
    ) -> dict[str, Any]:
        """Set the model's own ``monitor`` settings (None: clear them); returns the event.

        They take the place of the same keys of every version's spec section, so an alert
        route or an SLO changes without registering a version, and stays through promotions
        and rollbacks. Validated as a spec's ``monitor`` section; nothing is stored when a
        setting is refused. ``merge``: the keys given replace those keys of the model's
        settings, the others stay (``tuneops registry settings FILE``).

        The settings are read, merged and written under the model's claim on changes
        (:meth:`changing`): two changes at the same moment are made one after the other, where
        both read the same settings and the second write lost the first's keys.

        Raises:
            SpecError: an unknown key, a value of the wrong type or out of range.
        """
        with self.changing():
            return self._configure(monitor, reason, merge)

    def _configure(
        self, monitor: Mapping[str, Any] | None, reason: str, merge: bool
    ) -> dict[str, Any]:
        previous = self.settings()
        if merge and isinstance(monitor, Mapping):
            monitor = {**previous, **monitor}
        stored: dict[str, Any] = {}
        if monitor is not None:
            if not isinstance(monitor, Mapping) or not monitor:
                raise UsageError(
                    "settings: expected a mapping of monitor settings (alpha, slo, alerts, "
                    f"...), received {monitor!r}; give --clear to remove them."
                )
            checked = Monitor.from_raw(monitor, "settings")
            for key, raw in monitor.items():  # the keys given, as validated
                value = getattr(checked, key)
                if hasattr(value, "to_dict"):  # a nested section: the settings given, even
                    given = yaml_on_key(raw) if isinstance(raw, Mapping) else {}
                    full = value.to_dict()  # ... one equal to its default (to_dict omits it)
                    value = {k: full.get(k, getattr(value, k)) for k in given}
                stored[key] = value
        self.study.set_user_attr(_SETTINGS, {"monitor": _plain(stored), "time": _now()})
        return self.record("settings", monitor=stored, previous=previous, reason=reason)

    def gates(self) -> dict[int, dict[str, Any]]:
        """Per version, its staging gate as the event log tells it: ``verdict`` (the latest:
        ``"pass"``, ``"fail"``, or None: never verified) and its ``time``, and ``forced``: the
        changes (``kind``, ``time``, ``reason``) that made it the champion or the canary
        challenger past a failed verdict (``--force``; empty: none)."""
        out: dict[int, dict[str, Any]] = {}
        for event in self.events():
            number = event.get("version")
            if not isinstance(number, int):
                continue
            gate = out.setdefault(number, {"verdict": None, "time": None, "forced": []})
            if event["kind"] == "verify":
                gate["verdict"], gate["time"] = event.get("verdict"), event.get("time")
            elif event["kind"] in ("promote", "challenger") and event.get("forced"):
                gate["forced"].append(
                    {k: event.get(k) for k in ("kind", "time", "reason", "mode")}
                )
        return out

    def gate(self, number: int) -> dict[str, Any]:
        """Version ``number``'s entry of :meth:`gates`."""
        return self.gates().get(number) or {"verdict": None, "time": None, "forced": []}

    def _gate_passed(self, number: int, force: bool, what: str) -> bool:
        """Refuse a version whose latest staging-gate verdict is a fail, unless ``force``;
        True when ``force`` let it past such a verdict (what its event then records)."""
        verdict = self.verification(number)
        if verdict is None or verdict.get("verdict") != "fail":
            return False
        if force:
            return True
        # the check that failed (its text says "misses the limit"), not the summary line
        failed = [c for c in verdict.get("checks") or [] if not c.get("passed", True)]
        reasons = verdict.get("reasons") or []
        why = failed[0].get("text", "") if failed else (reasons[0] if reasons else "")
        raise UsageError(
            f"model {self.name!r}: version {number} failed the staging gate at "
            f"{verdict.get('time', '?')} ({str(why)[:200]}); {what} it only after `tuneops "
            f"verify {number}` passes, or give --force to {what} it anyway."
        )

    def promote(
        self,
        number: int,
        reason: str = "promoted by hand",
        *,
        force: bool = False,
        if_champion: Any = _ANY,
    ) -> dict[str, Any]:
        """Make version ``number`` the champion, once its artifact passes :meth:`verify` (and,
        unless ``force``, its latest staging-gate verdict is not a fail). One process at a time
        (:meth:`changing`).

        ``if_champion``: promote only while the champion is this version (None: no champion),
        the one the version was judged against.

        Raises:
            UsageError: no such version, its artifact is missing, or it failed the staging
                gate. IntegrityError: the artifact changed since it was registered; the
                registry is left unchanged. ChampionChanged: the champion is not
                ``if_champion``.
        """
        # refused before the claim is taken: a refused change writes nothing
        self.version(number)
        self._gate_passed(number, force, "promote")
        with self.changing():
            return self._promote(number, reason, force, if_champion)

    def _promote(
        self, number: int, reason: str, force: bool, if_champion: Any
    ) -> dict[str, Any]:
        finished = self.finish_change()
        state = self._champion_state(replacing=True)
        previous = state.get("version")
        if previous == number:
            if finished and finished["kind"] == "promote" and finished["version"] == number:
                return finished  # this promotion, stopped before its event: finished now
            # Not a new promotion: recording one would restart the probation window that
            # automatic rollback judges the champion by.
            raise UsageError(f"model {self.name!r}: version {number} is already the champion.")
        self._expect_champion(if_champion, f"promoting version {number}")
        # a version made champion past a failed gate says so in its event, for ever
        forced = {"forced": True} if self._gate_passed(number, force, "promote") else {}
        self.verify(number)
        history = list(state.get("history", []))
        if previous is not None:
            history.append(previous)
        return self._change_champion(
            number,
            history,
            "promote",
            {"previous": previous, "reason": reason, **forced},
            retire={number},
            why=f"version {number} became the champion",
        )

    def _change_champion(
        self,
        number: int,
        history: list[int],
        kind: str,
        payload: Mapping[str, Any],
        *,
        retire: set[Any],
        why: str,
    ) -> dict[str, Any]:
        """Make ``number`` the champion, retire the challenger when it is one of ``retire``,
        and record the event (``kind`` with ``payload``); returns it.

        Three writes, and a process killed between them (SIGKILL, the OOM killer, a lost node)
        runs no handler: the champion record names its event (key and content) and what to
        retire, so that the next change of champion or challenger finishes the change first
        (:meth:`finish_change`). Without it, a champion changed with no ``promote`` event had
        no probation for automatic rollback, and a rollback run again rolled back twice.
        """
        key, event = _event(kind, {"version": number, **payload})
        pending = {"key": key, "record": event, "retire": sorted(retire, key=str), "why": why}
        self.study.set_user_attr(
            _CHAMPION, {"version": number, "since": _now(), "history": history, "event": pending}
        )
        self._retire_challenger(retire, why)
        self.study.set_user_attr(key, event)  # last: its presence says the change is whole
        return event

    def finish_change(self) -> dict[str, Any] | None:
        """Finish a change of champion whose process was killed after it wrote the champion
        record and before its event (:meth:`_change_champion`): retire the challenger it
        retired, and record its event under its own key and time (and the event of a change of
        challenger so stopped). Returns that event, or None
        when no change was left unfinished. Every change of the champion or the challenger
        calls it first, so nothing has changed since the stopped one."""
        attrs = self._attrs()
        challenger = (attrs.get(_CHALLENGER) or {}).get("event")
        if challenger and challenger["key"] not in attrs:
            self.study.set_user_attr(challenger["key"], challenger["record"])
        try:
            pending = self._champion_state(attrs).get("event")
        except UsageError:  # damaged: said by what reads or replaces the champion after this
            pending = None
        if not pending or pending["key"] in attrs:
            return None
        self._retire_challenger(set(pending["retire"]), pending["why"])
        self.study.set_user_attr(pending["key"], pending["record"])
        return dict(pending["record"])

    def set_challenger(
        self,
        number: int,
        mode: str,
        share: float = 0.0,
        reason: str = "set by hand",
        *,
        force: bool = False,
        if_champion: Any = _ANY,
    ) -> dict[str, Any]:
        """Serve version ``number`` beside the champion: ``shadow`` (scores every request, answers
        none) or ``canary`` (answers ``share`` of the requests). One process at a time
        (:meth:`changing`); ``if_champion`` as :meth:`promote`'s.

        Raises:
            UsageError: no such version, an unknown mode, a share outside [0, 1], or a version
                that failed the staging gate (a canary answers users) unless ``force``.
                ChampionChanged: the champion is not ``if_champion``.
        """
        # refused before the claim is taken: a refused change writes nothing
        _check_mode(mode, share)
        self.version(number)
        if mode == "canary":
            self._gate_passed(number, force, "serve")
        with self.changing():
            return self._set_challenger(number, mode, share, reason, force, if_champion)

    def _set_challenger(
        self, number: int, mode: str, share: float, reason: str, force: bool, if_champion: Any
    ) -> dict[str, Any]:
        self.finish_change()
        if number == self.champion():
            raise UsageError(
                f"model {self.name!r}: version {number} is the champion; a challenger is "
                "another version (`tuneops registry list`)."
            )
        self._expect_champion(if_champion, f"serving version {number} as the challenger")
        forced = {}
        # a shadow answers no one: watching a failed version is fine
        if mode == "canary" and self._gate_passed(number, force, "serve"):
            forced = {"forced": True}
        self.verify(number)  # a challenger answers requests too: its artifact must be intact
        # Microseconds: live monitoring counts the challenger's traffic from this instant on.
        since = _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")
        state = {"version": number, "mode": mode, "share": float(share), "since": since}
        self._set_challenger_state(state, {**state, "reason": reason, **forced})
        return state

    def clear_challenger(self, reason: str = "cleared by hand") -> dict[str, Any]:
        """Stop serving the challenger (after its promotion, or when it is withdrawn)."""
        with self.changing():
            return self._clear_challenger_once(reason)

    def _clear_challenger_once(self, reason: str) -> dict[str, Any]:
        attrs = self._attrs()
        state = attrs.get(_CHALLENGER) or {}
        pending: dict[str, Any] | None = None if state.get("version") else state.get("event")
        self.finish_change()
        if pending is not None and pending["key"] not in attrs:
            return dict(pending["record"])  # cleared by a run killed before its event: once
        return self._clear_challenger(reason)

    def _clear_challenger(self, reason: str) -> dict[str, Any]:
        previous = (self.challenger() or {}).get("version")
        return self._set_challenger_state(
            {"version": None, "since": _now()},
            {"version": None, "previous": previous, "reason": reason},
        )

    def _set_challenger_state(
        self, state: Mapping[str, Any], payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Write the challenger's state, then its event; the state names its event, which
        :meth:`finish_change` records when a kill came between the two."""
        key, event = _event("challenger", payload)
        self.study.set_user_attr(_CHALLENGER, {**state, "event": {"key": key, "record": event}})
        self.study.set_user_attr(key, event)
        return event

    def _retire_challenger(self, versions: set[Any], why: str) -> None:
        """Clear the challenger when it is one of ``versions`` (now the champion, or the
        version just rolled back from: neither may keep answering as a challenger)."""
        current = (self.challenger() or {}).get("version")
        if current is not None and current in versions:
            self._clear_challenger(f"{why}: it no longer serves as the challenger")

    def rollback(
        self, to: int | None = None, reason: str | None = None, *, if_champion: Any = _ANY
    ) -> dict[str, Any]:
        """Restore a previous champion (the one before the current, or version ``to``).

        The version restored must pass :meth:`verify` first: a rollback onto a changed or
        missing artifact would leave a champion nobody can load.

        Raises:
            UsageError: ``to`` does not exist, there is no previous champion, or its artifact
                is missing. IntegrityError: its artifact changed; the registry is left unchanged.
                ChampionChanged: the champion is not ``if_champion`` (the one the rollback was
                decided on, as :meth:`promote`'s).
        """
        attrs = self._attrs()
        raw = attrs.get(_CHAMPION)
        pending = raw.get("event") if isinstance(raw, Mapping) else None
        # none to finish: refused before the claim is taken (a refused change writes nothing)
        if not isinstance(pending, Mapping) or pending.get("key") in attrs:
            if to is not None:
                self.version(to, field="to (--to)")
            elif not self._champion_state(attrs).get("history"):  # a damaged record: named
                raise UsageError(
                    f"model {self.name!r}: no previous champion to roll back to; name a version "
                    "as to (--to)."
                )
        with self.changing():
            return self._rollback(to, reason, if_champion)

    def _rollback(self, to: int | None, reason: str | None, if_champion: Any) -> dict[str, Any]:
        finished = self.finish_change()
        if finished and finished["kind"] == "rollback" and to in (None, finished["version"]):
            return finished  # this rollback, stopped before its event: not rolled back twice
        self._expect_champion(if_champion, f"rolling back from version {if_champion}")
        state = self._champion_state(replacing=to is not None)
        history = list(state.get("history", []))
        if to is None:
            if not history:
                raise UsageError(
                    f"model {self.name!r}: no previous champion to roll back to; name a version "
                    "as to (--to)."
                )
            to = history.pop()
        else:
            self.version(to, field="to (--to)")
            if to in history:
                history.remove(to)
        current = state.get("version")
        if to == current:
            raise UsageError(f"model {self.name!r}: version {to} is already the champion.")
        self.verify(to)
        return self._change_champion(
            to,
            history,
            "rollback",
            {
                "previous": current,
                "reason": reason or f"rolled back from version {current} to {to}",
            },
            retire={to, current},
            why=f"rolled back from version {current} to {to}",
        )


_last_ns = 0  # the time of this process's latest event key


def _check_mode(mode: str, share: float) -> None:
    """Refuse a challenger's unknown mode or a share outside [0, 1]."""
    if mode not in ("shadow", "canary"):
        raise UsageError(f"mode (--mode): expected 'shadow' or 'canary', received {mode!r}.")
    if not 0.0 <= share <= 1.0:
        raise UsageError(
            f"share (--share): expected a share of traffic in [0, 1], received {share!r}."
        )


def _event(kind: str, payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """An event's key and record. The key is its time in nanoseconds (keys sort as events
    happened), later than this process's previous one, and a random tail: a clock that moves
    in coarse steps (about 16 ms on Windows) gave a promotion and the retirement of its
    challenger one key, and the second event replaced the first; two processes could meet on
    one key too."""
    global _last_ns
    _last_ns = max(time.time_ns(), _last_ns + 1)
    event = shown_settings(_plain({"kind": kind, "time": _now(), **payload}))
    return f"{_EVENT}{_last_ns:020d}.{uuid.uuid4().hex[:8]}", event


def _plain(value: Any) -> Any:
    """JSON-safe copy (numpy scalars, tuples) for storage in user attributes."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# -- reference profile --------------------------------------------------------------------------
def reference_profile(
    objective: Any, params: Mapping[str, Any], metric: str, *, seed: int = 0
) -> dict[str, Any]:
    """Per-feature distributions of the training data and the out-of-fold prediction distribution.

    Predictions come from the study's own CV folds (each row predicted by a model that did not
    see it), so they match what the model does on new data rather than its training fit; the
    reference metric is computed on them too.
    """
    dataset = objective.dataset
    family, estimator_params = objective.config_of(params)
    X, y = dataset.X, dataset.y
    predictions = np.empty(len(y), dtype=object)
    for train, test in objective.folds:
        model = objective.pipeline(family, estimator_params)
        model.fit(X.iloc[train], y.iloc[train])
        predictions[test] = list(model.predict(X.iloc[test]))
    if dataset.task == "regression":
        predictions = predictions.astype(float)
    kind = "categorical" if dataset.task == "classification" else "numeric"
    pos_label = getattr(objective, "pos_label", None)  # of binary metrics, as the study scored
    return {
        "features": profile_frame(X, dataset.categorical, seed=seed),
        "prediction": profile_column(predictions, kind, seed=seed),
        "metric": metric,
        "pos_label": pos_label,
        "reference": metric_value(metric, y.to_numpy(), predictions, pos_label=pos_label),
        "n_rows": int(len(y)),
    }


def register_trial(
    registry: Registry,
    study: optuna.Study,
    number: int,
    dataset: Any,
    spec: Any,
    *,
    source: Mapping[str, Any],
    artifact_dir: str | Path | None = None,
    promote: bool = False,
    reason: str | None = None,
    extra: Mapping[str, Any] | None = None,
    version: int | None = None,
    saved: Path | None = None,
    adopt: Path | None = None,
) -> dict[str, Any]:
    """Profile trial ``number`` on ``dataset``, refit and save it, and add it as a version
    (number ``version`` from :meth:`Registry.reserve_version`, else a new one).

    The profile (the slow part) comes first, and a version's files are removed again when it
    cannot be recorded (an error, Ctrl-C, SIGTERM): a stop leaves no artifact that no version
    names.

    ``saved``: a ``model.joblib`` already fitted for this trial on this data (what ``run``
    exported; see :func:`saved_artifact`): copied into the registry instead of refitted.
    ``adopt``: the ``model.joblib`` of version ``version`` that an earlier run saved and was
    killed before recording (:func:`_unrecorded_artifact`): recorded as it is, in its place.
    """

    objective = SpecObjective(spec, dataset)
    objective.share_calibration(study)  # a refit's latency in the study's unit
    config = MonitorConfig.from_spec(spec)
    metric = monitored_metric(config, spec.metric_names, dataset.task)
    trial = study.trials[number]
    family, params = objective.config_of(trial.params)
    # The slow part (a fit per CV fold) before anything is written: a stop during it leaves no
    # artifact and uses up no version number.
    profile = reference_profile(objective, trial.params, metric, seed=spec.seed)
    folder = Path(artifact_dir or config.artifact_dir) / path_part(registry.name)
    remove_partial_versions(registry, folder)
    number_v = version if version is not None else registry.reserve_version()
    out = folder / f"v{number_v}"
    if adopt:  # the files an earlier run wrote for this very version and did not record
        out = adopt.parent
    elif (out / MODEL_FILE).exists():
        # another registry's version (a model of the same name in another storage, sharing the
        # artifact directory): overwriting it would make that version unservable
        raise UsageError(
            f"{out / MODEL_FILE} already exists: a model named {registry.name!r} in another "
            "storage keeps its versions in the same artifact directory. Give this one its own "
            "(--artifacts DIR, or monitor.artifact_dir)."
        )
    try:
        if not adopt:  # first: who writes here, for the sweep of a writer killed mid-copy
            write_atomic(out / WRITER_FILE, json.dumps(_writer(registry, number_v)).encode())
        if adopt:
            path = adopt.resolve()
        elif saved is not None:
            # A copy: the run's output directory is rewritten by the next run, a version never
            # is.
            copy_atomic(saved.with_name(METADATA_FILE), out / METADATA_FILE)
            copy_atomic(saved, out / MODEL_FILE)
            path = (out / MODEL_FILE).resolve()
        else:
            path = export_trial(study, number, objective, out, spec=spec).resolve()
        record = {
            "version": number_v,
            "source": {"study": study.study_name, "trial": number, **source},
            # the sha256 save_model recorded in model.json, checked against the file's bytes now
            "artifact": {
                "path": str(path),
                "sha256": verify_model(path)["artifact"]["sha256"],
                "from": "run" if saved is not None else "refit",
            },
            "family": family,
            "params": params,
            "trial_params": dict(trial.params),
            "metrics": trial.user_attrs.get("metrics", {}),
            "spec": spec.to_dict(),
            "data": study.user_attrs.get(DATA_ATTR) or dataset.summary(),
            "features": [str(c) for c in dataset.X.columns],
            "categorical": list(dataset.categorical),
            "target": spec.data.target or "target",
            "task": dataset.task,
            "profile": profile,
            **(extra or {}),
        }
        record = registry.add_version(record)
        with contextlib.suppress(OSError):
            (out / WRITER_FILE).unlink()  # recorded: a version, whoever wrote it
    except BaseException:
        # Stopped or failed before the version was recorded: an artifact no version names
        # would be an orphan in the registry's directory (and refuse the next deploy there).
        _remove_unregistered(registry, number_v, out)
        raise
    if promote:
        registry.promote(
            number_v, reason or f"deployed from study {study.study_name!r} trial {number}"
        )
    return record


def _remove_unregistered(registry: Registry, number: int, out: Path) -> None:
    """Remove the files register_trial wrote to ``out`` unless version ``number`` was recorded
    (best effort: when the registry cannot be read, nothing is removed)."""
    try:
        if any(v["version"] == number for v in registry.versions()):
            return
    except Exception:  # noqa: BLE001 - the storage may be what failed; keep the files then
        return
    for name in (MODEL_FILE, METADATA_FILE, WRITER_FILE):
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
    with contextlib.suppress(OSError):
        out.rmdir()  # only when empty: nothing else of this version is removed


def _writer(registry: Registry, number: int) -> dict[str, Any]:
    """What :data:`WRITER_FILE` of version ``number``'s directory holds: this process."""
    who = runner.worker_identity()
    return {
        "registry": registry.study.study_name,
        "version": number,
        "host": who["host"],
        "pid": who["pid"],
        "since": time.time(),
    }


def remove_partial_versions(registry: Registry, folder: Path) -> list[int]:
    """Remove the directories under ``folder`` of versions reserved and never recorded whose
    artifact is not whole (a process killed while it copied or saved the files: SIGKILL, the
    OOM killer; no handler removed them), when their writer (:data:`WRITER_FILE`) is provably
    dead: a process of this host that no longer runs. A writer on another host, or a directory
    without a writer file, is left alone; so is a whole artifact (the deploy that saved it
    records it when run again, :func:`_unrecorded_artifact`). Returns the versions removed."""
    if not folder.is_dir():
        return []
    recorded = {v["version"] for v in registry.versions()}
    reserved = registry.reserved()
    host, removed = socket.gethostname(), []
    for directory in sorted(folder.glob("v*")):
        number = int(directory.name[1:]) if directory.name[1:].isdigit() else None
        if number is None or number in recorded or number not in reserved:
            continue
        try:
            writer = json.loads((directory / WRITER_FILE).read_text())
        except (OSError, ValueError):
            continue  # no writer named: no proof
        try:
            verify_model(directory / MODEL_FILE)
            continue  # whole: kept for the deploy that saved it
        except IntegrityError:
            pass
        if (
            not isinstance(writer, dict)
            or writer.get("registry") != registry.study.study_name
            or writer.get("version") != number
            or writer.get("host") != host
            or not isinstance(writer.get("pid"), int)
            or pid_alive(writer["pid"])  # alive, or its pid reused: not proof of death
        ):
            continue
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(number)
    return removed


def _artifact_folders(registry: Registry, artifact_dir: str | Path | None) -> list[Path]:
    """The directories the versions of ``registry``'s model are written in: those of its
    recorded versions, its own settings' ``artifact_dir``, ``artifact_dir`` (as ``deploy
    --artifacts`` takes it) and the default; the ones that exist."""
    folders = {
        Path(v["artifact"]["path"]).parent.parent
        for v in registry.versions()
        if isinstance((v.get("artifact") or {}).get("path"), str)
    }
    for root in (artifact_dir, registry.settings().get("artifact_dir"), Monitor().artifact_dir):
        if root:
            folders.add(Path(root) / path_part(registry.name))
    return sorted({f.resolve() for f in folders if f.is_dir()})


def _live_writers(registry: Registry, now: float) -> set[tuple[Any, Any]]:
    """``(host, pid)`` of every process holding a live claim in the registry's storage (a
    deploy, a re-tuning, a refresh, a change of champion: each beats while it writes)."""
    live: set[tuple[Any, Any]] = set()
    for study in _optuna.storage_of(registry.study).get_all_studies():
        if not study.study_name.startswith(_study.CLAIM_PREFIX):
            continue
        record = study.user_attrs.get(CLAIM_ATTR)
        if isinstance(record, Mapping) and run_alive(record, now=now):
            live.add((record.get("host"), record.get("pid")))
    return live


def partial_versions(
    registry: Registry, artifact_dir: str | Path | None = None
) -> list[dict[str, Any]]:
    """The directories of versions reserved and never recorded (a writer that is still
    writing, or one killed while it wrote: SIGKILL, the OOM killer, a lost machine), found in
    the model's artifact directories (:func:`_artifact_folders`). Each: ``version``, ``path``,
    ``whole`` (its artifact checks out), ``writer`` (``host``, ``pid``, ``since`` from
    :data:`WRITER_FILE`; None: not named), ``changed`` (Unix time of its latest change: the
    writer's start or a file written) and ``age_s`` since, and ``alive``: True when its writer
    provably runs (a process of this host, or one holding a live claim in the storage, whose
    heartbeat is recent), False when it provably does not (a gone process of this host), None
    when nothing tells (another host without a live claim, no writer named)."""
    now = time.time()
    recorded = {v["version"] for v in registry.versions()}
    reserved = registry.reserved()
    host, live, out = socket.gethostname(), _live_writers(registry, now), []
    for folder in _artifact_folders(registry, artifact_dir):
        for directory in sorted(folder.glob("v*")):
            number = int(directory.name[1:]) if directory.name[1:].isdigit() else None
            if number is None or number in recorded or number not in reserved:
                continue
            writer = _writer_of(registry, directory, number)
            try:
                verify_model(directory / MODEL_FILE)
                whole = True
            except IntegrityError:
                whole = False
            times = [p.stat().st_mtime for p in (directory, *directory.iterdir())]
            if writer is not None and isinstance(writer.get("since"), int | float):
                times.append(float(writer["since"]))
            alive: bool | None = None
            if writer is not None and writer.get("host") == host:
                alive = pid_alive(writer["pid"])  # alive, or its pid reused: not proof of death
            elif writer is not None and (writer.get("host"), writer.get("pid")) in live:
                alive = True
            changed = max(times)
            out.append(
                {
                    "version": number,
                    "path": str(directory),
                    "whole": whole,
                    "writer": writer,
                    "changed": changed,
                    "age_s": max(0.0, now - changed),
                    "alive": alive,
                }
            )
    return out


def _writer_of(registry: Registry, directory: Path, number: int) -> dict[str, Any] | None:
    """What :data:`WRITER_FILE` in ``directory`` says of its writer, when it names version
    ``number`` of this registry; else None."""
    try:
        writer = json.loads((directory / WRITER_FILE).read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(writer, dict)
        or writer.get("registry") != registry.study.study_name
        or writer.get("version") != number
        or not isinstance(writer.get("pid"), int)
    ):
        return None
    return {k: writer.get(k) for k in ("host", "pid", "since")}


def remove_stale_versions(
    registry: Registry,
    older_than_s: float,
    artifact_dir: str | Path | None = None,
    *,
    dry_run: bool = False,
) -> list[dict[str, Any]]:
    """Remove the directories of :func:`partial_versions` whose writer is not known to run
    (``alive`` not True) and that have not changed for ``older_than_s`` seconds: what a writer
    on another machine that was killed, or lost, left (no process there can be asked). A
    writer that runs is never touched, however old its directory; each directory is looked at
    again just before it is removed. Returns the ones removed (``dry_run``: the ones that
    would be).

    Raises:
        UsageError: ``older_than_s`` is not a number of seconds >= 0.
    """
    if not isinstance(older_than_s, int | float) or not older_than_s >= 0:
        raise UsageError(
            f"older_than (--older-than): expected an age >= 0 (90s, 30m, 6h, 2d), received "
            f"{older_than_s!r}."
        )

    def stale(entry: Mapping[str, Any]) -> bool:
        return entry["alive"] is not True and entry["age_s"] >= older_than_s

    removed = []
    for entry in partial_versions(registry, artifact_dir):
        if not stale(entry):
            continue
        if not dry_run:
            # looked at again: a writer may have started on it, or recorded it, meanwhile
            again = [
                e for e in partial_versions(registry, artifact_dir) if e["path"] == entry["path"]
            ]
            if not again or not stale(again[0]):
                continue
            shutil.rmtree(entry["path"], ignore_errors=True)
        removed.append(entry)
    return removed


def _unrecorded_artifact(
    registry: Registry, folder: Path, study_name: str, trial: int, data_fingerprint: str | None
) -> tuple[int, Path] | None:
    """The newest version number reserved and never recorded whose directory under ``folder``
    holds a whole artifact of this study, trial and data (its sha256 checks out): what a
    deploy killed between saving its version's files and recording them left (SIGKILL, the
    OOM killer: no handler removes them). Its number and ``model.joblib``, or None."""
    recorded = {v["version"] for v in registry.versions()}
    for number in sorted(registry.reserved(), reverse=True):
        path = folder / f"v{number}" / MODEL_FILE
        if number in recorded or not path.is_file():
            continue
        try:
            meta = verify_model(path)
        except IntegrityError:
            continue
        if (
            meta.get("study") == study_name
            and meta.get("trial") == trial
            and data_fingerprint is not None
            and (meta.get("data") or {}).get("fingerprint") == data_fingerprint
        ):
            return number, path
    return None


def comparable(champion: Mapping[str, Any], candidate: Mapping[str, Any]) -> None:
    """Refuse a candidate that is not a model of the champion's task: other features, or
    another kind of task (the gate would fit the champion on the candidate's columns).

    Raises:
        UsageError: naming both versions and what differs.
    """
    mine, theirs = list(candidate.get("features") or []), list(champion.get("features") or [])
    differ = []
    if set(mine) != set(theirs):
        missing = [f for f in theirs if f not in mine][:5]
        extra = [f for f in mine if f not in theirs][:5]
        differ.append(
            "features: "
            + "; ".join(
                ([f"without the champion's {', '.join(missing)}"] if missing else [])
                + ([f"with {', '.join(extra)} the champion lacks"] if extra else [])
            )
        )
    if candidate.get("task") and champion.get("task") and candidate["task"] != champion["task"]:
        differ.append(f"task: {candidate['task']} where the champion's is {champion['task']}")
    if differ:
        raise UsageError(
            f"version {candidate.get('version', '(new)')} is not a model of champion "
            f"{champion['version']}'s task ({'; '.join(differ)}); register it as another "
            "model (--model NAME) or deploy a study of the same data. Nothing was recorded."
        )


def saved_artifact(study: optuna.Study, trial: int, spec: Any) -> Path | None:
    """The ``model.joblib`` that ``run`` exported for ``trial``, if it is still that model.

    It qualifies when its sha256 checks out and its ``model.json`` names this study and trial
    and the data fingerprint the study recorded (so it was fitted on the same data); otherwise
    None, and the trial is refitted.
    """
    path = Path(spec.output_dir or Path("tuneops-out") / path_part(study.study_name)) / MODEL_FILE
    if not path.is_file():
        return None
    try:
        meta = verify_model(path)
    except IntegrityError:
        return None
    stored = (study.user_attrs.get(DATA_ATTR) or {}).get("fingerprint")
    same = (
        meta.get("study") == study.study_name
        and meta.get("trial") == trial
        and stored is not None
        and (meta.get("data") or {}).get("fingerprint") == stored
    )
    return path if same else None


class DeployInterrupted(runner.Interrupted):
    """A deploy stopped by SIGINT or SIGTERM: ``model``, and ``version`` when one was registered
    (not verified and not promoted: the same deploy finishes it, :func:`unfinished_deploy`),
    else None (nothing was kept: no version, no artifact)."""

    def __init__(self, signum: int, *, model: str, version: int | None) -> None:
        super().__init__(signum)
        self.model, self.version = model, version


def unfinished_deploy(
    registry: Registry, study_name: str, trial: int, data_fingerprint: str | None
) -> dict[str, Any] | None:
    """The version an earlier deploy of the same study, trial and data registered and never
    finished (stopped before its staging gate gave a verdict, or before the promotion, or the
    change of challenger, after a pass): never champion nor challenger, no failed verdict, its
    artifact intact; the newest, or None."""
    been_champion = {registry.champion(), *registry.champion_history()}
    been_champion |= {e.get("version") for e in registry.events("promote")}
    been_champion |= {e.get("previous") for e in registry.events("rollback")}
    # a challenger was deployed (`deploy --challenger`), then served and perhaps withdrawn
    been_champion |= {e.get("version") for e in registry.events("challenger")}
    for record in reversed(registry.versions()):
        number = record["version"]
        if not _deployed_by(record, study_name, trial, data_fingerprint) or number in been_champion:
            continue
        verdict = registry.verification(number)
        if verdict is not None and verdict.get("verdict") != "pass":
            continue
        if registry.intact(number):  # the artifact is still the one registered
            return record
    return None


def _deployed_by(
    record: Mapping[str, Any], study_name: str, trial: int, data_fingerprint: str | None
) -> bool:
    """True when version ``record`` was registered by a deploy of this study, trial and data."""
    source = record.get("source") or {}
    return (
        source.get("kind") == "deploy"
        and source.get("study") == study_name
        and source.get("trial") == trial
        and (record.get("data") or {}).get("fingerprint") == data_fingerprint
    )


def deploy(
    study_name: str,
    *,
    storage: str | None = None,
    trial: int | None = None,
    model: str | None = None,
    artifact_dir: str | Path | None = None,
    gate: Callable[[Registry, int], Any] | None = None,
    challenger: str | None = None,
    share: float | None = None,
) -> dict[str, Any]:
    """Register a study's selected (or given) trial as a new version and make it the champion
    (or, with ``challenger``, the challenger).

    The model ``run`` exported (``output_dir/model.joblib``) is registered when it is the same
    trial fitted on the same data (:func:`saved_artifact`); otherwise the trial is refitted on
    the study's data (checked against the stored fingerprint). Either way it is saved under
    ``artifact_dir/<model>/v<N>/``, profiled, and recorded in the registry of model ``model``
    (default: the study's name) in the study's storage.

    ``gate``: the staging gate, called as ``gate(registry, version)`` before the promotion
    (``tuneops deploy`` passes :func:`tuneops.ops.verify.verify`); it returns an object with
    ``passed`` (and ``to_dict()``); a version that fails stays registered, not champion. The
    returned record then has ``verification`` (the verdict) and ``promoted``.

    ``challenger``: ``"shadow"`` or ``"canary"`` (with ``share``, the share of requests it
    answers, in [0, 1]): the version that passes the gate becomes the challenger
    (:meth:`Registry.set_challenger`) instead of the champion, which is unchanged; the returned
    record's ``challenger`` is then its state (else None). The model must have a champion.

    When the champion is already this study's trial fitted on the same data, nothing is
    registered or promoted: the returned record is the champion's, with ``already`` True
    (and ``promoted`` True: it is the champion). When the challenger is, a deploy with
    ``challenger`` registers and changes nothing (``already`` True; ``registry challenger``
    changes its mode); one without verifies and promotes that version.

    A deploy that was stopped after it registered its version (during the staging gate) is
    finished by the next deploy of the same study, trial and data (:func:`unfinished_deploy`):
    that version is verified and promoted instead of another one registered; the returned
    record then has ``resumed`` True. One stopped after the gate passed it is promoted on that
    recorded verdict (the gate runs again only when the champion changed meanwhile). Of two
    identical deploys at the same moment, one registers; the other waits for it and returns its
    version with ``deployed_by`` (who ran it).

    Raises:
        StudyNotFound: no such study. UsageError: the study was not run from a spec, the trial
            is not complete, the data changed since the study ran, or ``challenger`` is given
            with a bad mode or share or for a model without a champion (nothing is written).
        DeployInterrupted: stopped by SIGINT or SIGTERM (what it kept: the registered version
            or nothing).
    """

    _check_challenger(challenger, share)
    study = load_study(study_name, storage)
    trial = _deployed_trial(study, complete_trial(study, trial))
    spec, data = rebuild(
        study, "tuneops cannot rebuild or monitor its model; deploy a study run from a spec"
    )
    # A malformed monitor section or an artifact directory that cannot be written fails
    # before anything is written (no empty registry, no version number used up).
    config = MonitorConfig.from_spec(spec)
    name = model if model is not None else study_name
    if not _MODEL_NAME.match(name):  # before anything is read or written by that name
        raise UsageError(
            f"model (--model): expected a name of letters, digits, '_', '-' or '.' starting "
            f"with a letter or digit (at most 128), received {name!r}."
        )
    if challenger is not None and (
        name not in list_models(storage) or Registry.open(name, storage).champion() is None
    ):
        raise UsageError(
            f"challenger (--challenger): model {name!r} has no champion yet, and a challenger is "
            "served beside one. Deploy without --challenger first (`tuneops deploy "
            f"{study_name}`: it becomes the champion), then deploy challengers. Nothing was "
            "recorded."
        )
    fingerprint = (study.user_attrs.get(DATA_ATTR) or data.summary()).get("fingerprint")
    # Two deploys of the same trial and data at the same moment both found nothing to resume
    # and registered (and promoted) two versions: the one that claims it deploys, the other
    # waits for it and reports its version (_deployed_meanwhile).
    claim = Claim(
        _optuna.storage_of(study),
        deploy_work(name, study_name, trial, fingerprint),
        runner.worker_identity(),
    )
    try:
        other = _wait_for(claim)
    except KeyboardInterrupt as exc:  # while waiting: nothing was written
        raise DeployInterrupted(
            runner.Interrupted.of(exc).signum, model=name, version=None
        ) from None
    with claim.beating():
        return _deploy(
            study,
            trial,
            spec,
            data,
            config,
            name,
            fingerprint,
            storage,
            artifact_dir,
            gate,
            other,
            (challenger, share or 0.0) if challenger is not None else None,
        )


def _check_challenger(challenger: str | None, share: float | None) -> None:
    """Refuse a bad ``challenger`` mode or ``share`` of :func:`deploy` before anything is read."""
    if challenger is None:
        if share is not None:
            raise UsageError(
                "share (--share): the share of requests a canary challenger answers; give it "
                "with challenger (--challenger) canary."
            )
        return
    if challenger not in ("shadow", "canary"):
        raise UsageError(
            f"challenger (--challenger): expected 'shadow' or 'canary', received {challenger!r}."
        )
    if challenger == "shadow" and share is not None:
        raise UsageError(
            "share (--share): a shadow challenger answers no request; --share applies to "
            "--challenger canary only."
        )
    if challenger == "canary" and share is None:
        raise UsageError(
            "share (--share): expected the share of requests the canary answers, in [0, 1], "
            "received nothing; add --share (0.1 sends it one request in ten)."
        )
    if share is not None and not 0.0 <= share <= 1.0:
        raise UsageError(
            f"share (--share): expected a share of traffic in [0, 1], received {share!r}."
        )


def _deployed_trial(study: optuna.Study, trial: int) -> int:
    """``trial``, or the trial whose model it is when it is a repeat (``repeat_of``,
    :mod:`tuneops.repeats`: the same configuration of the same study, its outcome taken): a
    repeat of the champion's trial was registered as a new version of the same model (the
    champion's probation restarted, a rollback brought the same model back)."""
    trials = study.get_trials(deepcopy=False)
    asked, seen = trial, set()
    while (of := trials[trial].user_attrs.get(_study.REPEAT_OF)) is not None and trial not in seen:
        seen.add(trial)
        trial = int(of)
    if trial != asked:
        _status.info(
            "Trial %d repeated trial %d's configuration (its outcome taken, nothing fitted): "
            "deploying trial %d, the same model.",
            asked,
            trial,
            trial,
        )
    return trial


def deploy_work(model: str, study_name: str, trial: int, data_fingerprint: str | None) -> str:
    """What a deploy claims (:class:`tuneops.claims.Claim`): the deploy of ``study_name``'s
    trial ``trial`` on the data ``data_fingerprint`` names to model ``model``."""
    key = {"study": study_name, "trial": trial, "data": data_fingerprint}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return f"{path_part(model)}.deploy-{digest}"


def _wait_for(claim: Claim) -> dict[str, Any] | None:
    """Take ``claim``, waiting while a live process holds it; the record of the holder this
    process waited for (the first), or None when it waited for none."""
    first: dict[str, Any] | None = None
    while (holder := claim.acquire()) is not None:
        if first is None:
            first = holder
            _status.info(
                "The same deploy (this study, trial and data) is being run by %s; waiting for "
                "it to end: this one then reports the version it registered.",
                holder.get("id", "another process"),
            )
        time.sleep(_WAIT_S)
    return first


def _deployed_meanwhile(
    registry: Registry,
    other: Mapping[str, Any],
    study_name: str,
    trial: int,
    data_fingerprint: str | None,
) -> dict[str, Any] | None:
    """The newest version the deploy ``other`` (the holder of the same deploy's claim this one
    waited for) registered and finished: made champion or challenger, or failed by the staging
    gate; None when it left nothing finished (stopped: this deploy resumes what it kept)."""
    since = other.get("since")
    if not isinstance(since, int | float):
        return None
    promoted = {registry.champion(), *(e.get("version") for e in registry.events("promote"))}
    promoted |= {e.get("version") for e in registry.events("challenger")}
    for record in reversed(registry.versions()):
        created = _dt.datetime.fromisoformat(record["created"]).timestamp()
        if created < since - 1.0:  # stored to the second
            break
        if not _deployed_by(record, study_name, trial, data_fingerprint):
            continue
        verdict = registry.verification(record["version"])
        if record["version"] in promoted or (verdict or {}).get("verdict") == "fail":
            return record
    return None


class _RecordedVerdict:
    """A staging gate's verdict read back from its ``verify`` event (as the gate returns one:
    ``passed`` and ``to_dict()``)."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        self._event = {k: v for k, v in event.items() if k != "kind"}
        self.passed = self._event.get("verdict") == "pass"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._event)


def _passed_gate(registry: Registry, number: int) -> _RecordedVerdict | None:
    """Version ``number``'s latest staging-gate verdict when it is a pass against the current
    champion (none then, or the same one; a version's artifact never changes, and a resumed
    deploy checked it is intact), else None: the gate runs again."""
    event = registry.verification(number)
    if event is None or event.get("verdict") != "pass":
        return None
    judged_against = (event.get("comparison") or {}).get("champion")
    return _RecordedVerdict(event) if judged_against == registry.champion() else None


def _deployed(
    registry: Registry,
    record: Mapping[str, Any],
    gate: Callable[[Registry, int], Any] | None,
    broken: list[str],
    **extra: Any,
) -> dict[str, Any]:
    """What :func:`deploy` returns for version ``record`` that an earlier or a simultaneous
    run of it finished: its record, whether it is the champion, and its staging gate's
    verdict (when this deploy has a gate)."""
    verdict = dict(registry.verification(record["version"]) or {})
    verdict.pop("kind", None)
    return {
        **record,
        "promoted": registry.champion() == record["version"],
        "challenger": _challenger_of(registry, record["version"]),
        **extra,
        "constraints_broken": broken,
        **({"verification": verdict} if gate is not None else {}),
    }


def _challenger_of(registry: Registry, number: int) -> dict[str, Any] | None:
    """The challenger's state when version ``number`` is the challenger, else None."""
    state = registry.challenger()
    return state if state is not None and state["version"] == number else None


def _deploy(
    study: optuna.Study,
    trial: int,
    spec: Any,
    data: Any,
    config: MonitorConfig,
    name: str,
    fingerprint: str | None,
    storage: str | None,
    artifact_dir: str | Path | None,
    gate: Callable[[Registry, int], Any] | None,
    other: Mapping[str, Any] | None,
    challenger: tuple[str, float] | None,
) -> dict[str, Any]:
    """:func:`deploy` under its claim; ``other``: the record of the same deploy this one waited
    for, or None; ``challenger``: the mode and share to serve the version as, or None."""
    study_name = study.study_name
    existing = Registry.open(name, storage) if name in list_models(storage) else None
    if artifact_dir is None and existing is not None:
        # the model's own settings (`tuneops registry settings`) say where its versions go
        artifact_dir = existing.settings().get("artifact_dir")
    artifact_dir = artifact_dir or config.artifact_dir
    check_output_dir(artifact_dir, option="artifact_dir (--artifacts)")
    folder = Path(artifact_dir) / path_part(name)
    if existing is None and any(folder.glob(f"v*/{MODEL_FILE}")):
        raise UsageError(  # refused before this storage gets an empty registry
            f"{folder} already holds versions of a model named {name!r}, which this storage "
            f"does not have: a model of the same name in another storage keeps its versions "
            "there. Give this one its own artifact directory (--artifacts DIR, or "
            "monitor.artifact_dir), or another name (--model)."
        )
    champion = existing.champion() if existing is not None else None
    if existing is not None and champion is not None:  # a version of another task: refused
        comparable(
            existing.version(champion),
            {"features": [str(c) for c in data.X.columns], "task": data.task},
        )
        classes = existing.classes(champion) if data.task == "classification" else None
        labels = set(data.y.dropna().unique().tolist())
        if classes is not None and labels.isdisjoint(np.asarray(classes).tolist()):
            known = ", ".join(repr(c) for c in np.asarray(classes).tolist()[:5])
            raise UsageError(
                f"study {study_name!r} labels its rows {sorted(map(repr, labels))[:5]}, none "
                f"of which champion {champion} of model {name!r} predicts ({known}): the "
                "labels are encoded otherwise, and a champion answering in the new code "
                "would read as wrong on every logged label. Encode them as the champion's "
                "data did, or deploy to another --model. Nothing was recorded."
            )
    registry = existing or Registry.open(name, storage, create=True)
    # a trial given by number may break the spec's constraints (the selection never picks one)
    broken = _constraints_broken(study.get_trials(deepcopy=False)[trial], spec)
    breaking = f"; it breaks the spec's constraints: {', '.join(broken)}" if broken else ""
    record: dict[str, Any] | None = None
    try:
        finished = registry.finish_change()
        if finished is not None and finished["kind"] == "promote":
            done = registry.version(finished["version"])
            if _deployed_by(done, study_name, trial, fingerprint):
                # this deploy was killed after it made its version the champion and before the
                # promotion's event: finished now, not deployed a second time
                return _deployed(registry, done, gate, broken, resumed=True)
        meanwhile = (
            None
            if other is None
            else _deployed_meanwhile(registry, other, study_name, trial, fingerprint)
        )
        if meanwhile is not None and other is not None:
            # by the same deploy, run at the same moment: reported, not done a second time
            return _deployed(
                registry,
                meanwhile,
                gate,
                broken,
                resumed=False,
                deployed_by=str(other.get("id", "another process")),
            )
        current = registry.champion()
        if current is not None and _deployed_by(
            registry.version(current), study_name, trial, fingerprint
        ):
            # The champion is this trial fitted on this data already (a pipeline that deploys
            # after every run, whose run resumed a spent budget): another version of it restarted
            # the probation window, and a rollback then brought back the same model.
            return {
                **registry.version(current),
                "promoted": True,  # it is the champion, as a deploy that promotes leaves it
                "challenger": None,
                "already": True,
                "resumed": False,
                "constraints_broken": broken,
            }
        serving = registry.challenger()
        if serving is not None and _deployed_by(
            registry.version(serving["version"]), study_name, trial, fingerprint
        ):
            if challenger is not None:
                # served already: setting it again would restart its live comparison
                return {
                    **registry.version(serving["version"]),
                    "promoted": False,
                    "challenger": serving,
                    "already": True,
                    "resumed": False,
                    "constraints_broken": broken,
                }
            # deployed as the champion now: that version, not a twin beside it
            record = registry.version(serving["version"])
            resumed, was = False, {"was_challenger": True}
        else:
            record = unfinished_deploy(registry, study_name, trial, fingerprint)
            resumed, was = record is not None, {}
        if record is not None and not any(
            e.get("version") == record["version"] for e in registry.events("register")
        ):
            # killed between the version's record and its event: the event the deploy owes
            registry.record("register", version=record["version"], source=record["source"])
        if record is None:
            orphan = _unrecorded_artifact(registry, folder, study_name, trial, fingerprint)
            record = register_trial(
                registry,
                study,
                trial,
                data,
                spec,
                source={"kind": "deploy"},
                artifact_dir=artifact_dir,
                saved=saved_artifact(study, trial, spec),
                version=orphan[0] if orphan else None,
                adopt=orphan[1] if orphan else None,
            )
            resumed = orphan is not None  # an earlier deploy saved it: recorded now
        if gate is None:
            # the registry's history says the gate was skipped, not only that it was deployed
            why = f"deployed from study {study_name!r} trial {trial} without the staging gate"
            state = _make_live(registry, record["version"], challenger, why + breaking)
            return {
                **record,
                "promoted": state is None,
                "challenger": state,
                "resumed": resumed,
                **was,
                "constraints_broken": broken,
            }
        # resumed after its gate passed (killed before the promotion): the recorded verdict on
        # this version's artifact, not a second run of the gate and a second `verify` event
        judged = registry.champion()
        verdict = _passed_gate(registry, record["version"]) if resumed or was else None
        state = None
        while True:
            if verdict is None:
                judged = registry.champion()  # what the gate compares the version with
                verdict = gate(registry, record["version"])
            if not verdict.passed:
                break
            why = f"deployed from study {study_name!r} trial {trial}; passed the staging gate"
            try:
                # only while the champion is the one the gate judged it against: another
                # deploy may have promoted its version meanwhile
                state = _make_live(registry, record["version"], challenger, why, judged)
                break
            except ChampionChanged as exc:
                _status.info(
                    "Champion %s of model %r was replaced by version %s while the staging gate "
                    "judged version %d; judging it again, against version %s.",
                    exc.expected,
                    name,
                    exc.current,
                    record["version"],
                    exc.current,
                )
                verdict = None
    except KeyboardInterrupt as exc:
        stop = runner.Interrupted.of(exc)
        if record is None:  # stopped while registering: recorded, or nothing was kept
            record = unfinished_deploy(registry, study_name, trial, fingerprint)
        raise DeployInterrupted(
            stop.signum, model=name, version=None if record is None else record["version"]
        ) from None
    return {
        **record,
        "promoted": bool(verdict.passed) and state is None,
        "challenger": state,
        "verification": verdict.to_dict(),
        "resumed": resumed,
        **was,
        "constraints_broken": broken,
    }


def _make_live(
    registry: Registry,
    number: int,
    challenger: tuple[str, float] | None,
    why: str,
    if_champion: Any = _ANY,
) -> dict[str, Any] | None:
    """Promote version ``number``, or make it the challenger (``challenger``: mode and share);
    the challenger's state then, else None. ``if_champion``: as :meth:`Registry.promote`'s."""
    if challenger is None:
        registry.promote(number, why, if_champion=if_champion)
        return None
    mode, share = challenger
    return registry.set_challenger(
        number, mode, share, f"{why}; as the {mode} challenger", if_champion=if_champion
    )


def _constraints_broken(trial: optuna.trial.FrozenTrial, spec: Any) -> list[str]:
    """The spec's constraints ``trial`` broke when it was tuned (its recorded metrics)."""
    metrics = trial.user_attrs.get(_study.METRICS) or {}
    return [
        str(c) for c in spec.constraints if c.metric in metrics and c.violation(metrics) > 0
    ]
