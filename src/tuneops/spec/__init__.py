"""The spec: one validated, immutable value that describes a tuning job.

A spec is written in YAML or TOML (or given as a dict), validated once by :func:`load_spec`,
stored with its study, and round-trips through :meth:`Spec.to_dict`. Every section is a
frozen pydantic model that refuses unknown keys, so every field is checked at load time: the
search space, the sampler and pruner with their parameters, the ``warm_start`` and ``monitor``
sections included. A typo fails before anything is written, not at deploy time.

Every error is a :class:`~tuneops.errors.SpecError` whose message comes from one formatter
(:func:`tuneops.errors.format_validation_error`): the field, what was expected, what was
received, the closest valid name, what to do.

Secrets: :meth:`Spec.to_dict` (what is stored with the study and written to files) carries the
storage URL with its password masked (``user:***@host``); :attr:`Spec.storage` is the real URL,
for the code that connects.

Example::

    >>> spec = load_spec({"data": {"source": "sklearn:iris"},
    ...                   "model": {"family": "random_forest"},
    ...                   "objectives": ["accuracy"], "search": {"n_trials": 5}})
    >>> spec.objectives[0].direction
    'maximize'
    >>> load_spec({"data": {"source": "sklearn:iris"}, "model": {"family": "knn"},
    ...            "monitor": {"alpah": 0.1}})
    Traceback (most recent call last):
    ...
    tuneops.errors.SpecError: monitor: unknown monitor setting 'alpah'; ... Did you mean 'alpha'?
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PrivateAttr, field_serializer, field_validator, model_validator

from tuneops.errors import SpecError, unknown_name
from tuneops.metrics import METRICS
from tuneops.space import Param
from tuneops.spec._base import (
    _check,
    _expected,
    _is_text,
    _Model,
    _problem,
    _validate,
    tolerating,
)
from tuneops.spec.components import (
    PRUNER_PARAMETERS,
    SAMPLER_PARAMETERS,
    Component,
    Params,
    pruner_parameters,
    sampler_parameters,
)
from tuneops.spec.data import TASKS, DataSpec
from tuneops.spec.files import MAX_SPEC_VALUES, _read_file, dump_spec, read_monitor_settings
from tuneops.spec.model import ModelSpec, refuses_beyond
from tuneops.spec.monitor import (
    ALERT_KINDS,
    CORRECTIONS,
    MONITORED_METRICS,
    WEBHOOK_FROM_ENV,
    AlertSettings,
    LiveSettings,
    Monitor,
    SLOSettings,
    VerifySettings,
    command_argv,
    webhook_problem,
    webhook_shown,
    yaml_on_key,
)
from tuneops.spec.objectives import (
    POLICIES,
    Constraint,
    Objective,
    Selection,
    _fit_selection,
    check_constraints,
    parse_constraint,
    parse_constraints,
    selection_for,
)
from tuneops.spec.search import BACKENDS, COMPUTE_UNITS, STRATEGIES, Search, check_budget
from tuneops.spec.serving import SERVING_PATHS, Serving
from tuneops.spec.warm_start import AUTO_STRATEGIES, AutoSettings, StudySource, WarmStart
from tuneops.storage import mask_url

__all__ = [
    "Spec",
    "DataSpec",
    "ModelSpec",
    "Objective",
    "Constraint",
    "Selection",
    "Component",
    "Search",
    "WarmStart",
    "AutoSettings",
    "StudySource",
    "Monitor",
    "VerifySettings",
    "SLOSettings",
    "LiveSettings",
    "AlertSettings",
    "SAMPLER_PARAMETERS",
    "PRUNER_PARAMETERS",
    "COMPUTE_UNITS",
    "check_budget",
    "sampler_parameters",
    "pruner_parameters",
    "load_spec",
    "dump_spec",
    "parse_constraint",
    "read_monitor_settings",
    "for_task",
    "refuses_beyond",
    "selection_for",
    "parse_constraints",
    "check_constraints",
    "load_stored_spec",
    "webhook_problem",
    "webhook_shown",
    "command_argv",
    "yaml_on_key",
    "Params",
    "Serving",
    "STUDY_NAME",
    "TASKS",
    "POLICIES",
    "BACKENDS",
    "STRATEGIES",
    "SERVING_PATHS",
    "CORRECTIONS",
    "MONITORED_METRICS",
    "AUTO_STRATEGIES",
    "ALERT_KINDS",
    "WEBHOOK_FROM_ENV",
    "MAX_SPEC_VALUES",
]


#: A study's name: what storages, file names and the dashboard all accept.
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")

_SEARCH_KEYS = Search.spec_keys()


class Spec(_Model):
    """A validated tuning job. Build it with :func:`load_spec`.

    The sections are ``data``, ``model``, ``objectives``, ``constraints``, ``selection``,
    ``search``, ``storage``, ``output_dir``, ``warm_start`` and ``monitor``; the search fields
    and the model's families and space are also attributes of the spec (``spec.n_trials``,
    ``spec.pruner``, ``spec.families``).
    """

    study: Annotated[
        str,
        _check(
            "a name of letters, digits, '_', '-' or '.'",
            lambda v: isinstance(v, str) and bool(STUDY_NAME.match(v)),
        ),
    ] = "tuneops"
    data: DataSpec
    model: ModelSpec
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()
    selection: Selection = Selection()
    search: Search = Search()
    storage: Annotated[str, _check("a storage URL or a file path", _is_text)] | None = Field(
        default=None, repr=False
    )
    output_dir: Annotated[str, _check("a directory path", _is_text)] | None = None
    warm_start: WarmStart | None = None
    monitor: Monitor | None = None
    serving: Serving | None = None
    # True when the spec wrote no objectives and got the default of its written task
    # (accuracy unless data.task says regression): a run whose data turns out a regression
    # takes r2 instead (:func:`for_task`), not a refusal over a metric the user never wrote.
    _objectives_defaulted: bool = PrivateAttr(default=False)
    # What a spec read back from storage holds that this tuneops refuses in a new spec
    # (:func:`load_stored_spec`), kept by its copies and its pickled form (worker processes).
    _tolerated: tuple[str, ...] = PrivateAttr(default=())

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if raw is None:
            return {"data": {}, "model": {}}
        if not isinstance(raw, Mapping):
            return raw  # pydantic: "spec: expected a mapping"
        raw = dict(raw)
        for key in ("data", "model", "search"):
            if raw.get(key) is None:
                raw[key] = {}
        if "objectives" not in raw:
            task = raw["data"].get("task") if isinstance(raw["data"], Mapping) else None
            raw["objectives"] = ["r2"] if task == "regression" else ["accuracy"]
        return raw

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, raw: Any) -> Any:
        if isinstance(raw, (str, Mapping)):
            raw = [raw]
        if not isinstance(raw, (list, tuple)) or not raw:
            raise _expected(
                "a non-empty list of metrics, for example [accuracy, latency_p95_ms]",
                hint=f"Valid metrics: {', '.join(METRICS)}.",
            )
        out: list[Any] = []
        for i, item in enumerate(raw):
            if isinstance(item, str):
                item = {"metric": item}
            if isinstance(item, Objective):
                item = item.to_dict()
            if not isinstance(item, Mapping) or not isinstance(item.get("metric"), str):
                out.append(item)  # the Objective model says what is wrong
                continue
            metric = METRICS.get(item["metric"])
            if metric is None:
                raise _problem(unknown_name("metric", item["metric"], METRICS), at=f"[{i}].metric")
            direction = item.get("direction", metric.direction)
            if direction in ("maximize", "minimize") and direction != metric.direction:
                raise _problem(
                    f"{metric.name} is better when it is {metric.direction[:-1]}ed, but the "
                    f"direction is {direction!r}; remove 'direction' or set it to "
                    f"{metric.direction}.",
                    at=f"[{i}]",
                )
            if any(isinstance(o, Mapping) and o.get("metric") == metric.name for o in out):
                raise _problem(f"metric {metric.name!r} is listed twice.", at=f"[{i}]")
            out.append({**item, "direction": direction})
        return out

    @field_validator("constraints", mode="before")
    @classmethod
    def _constraints(cls, raw: Any) -> Any:
        if raw is None:
            return ()
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, (list, tuple)):
            raise _expected("a list of expressions such as 'accuracy >= 0.9'")
        parsed = tuple(
            c if isinstance(c, Constraint) else parse_constraint(c, f"constraints[{i}]")
            for i, c in enumerate(raw)
        )
        check_constraints(parsed)
        return parsed

    @field_validator("warm_start", mode="before")
    @classmethod
    def _warm_start(cls, raw: Any) -> Any:
        return None if raw is None or raw is False else raw

    @field_serializer("storage")
    def _masked(self, value: str | None) -> str | None:
        # model_dump() and model_dump_json() carry the masked URL too, as to_dict() does.
        return mask_url(value) if value else value

    @model_validator(mode="after")
    def _cross_checks(self) -> Spec:
        selection = _fit_selection(self.selection, self.metric_names)
        if selection is not self.selection:
            return self.model_copy(update={"selection": selection})
        return self

    # -- the flat attributes the rest of tuneops reads ------------------------------------------
    @property
    def families(self) -> tuple[str, ...]:
        return self.model.families

    @property
    def space(self) -> Mapping[str, Mapping[str, Param]]:
        return self.model.space

    @property
    def sampler(self) -> Component:
        return self.search.sampler

    @property
    def pruner(self) -> Component:
        return self.search.pruner

    @property
    def n_trials(self) -> int | None:
        return self.search.n_trials

    @property
    def timeout_s(self) -> float | None:
        return self.search.timeout_s

    @property
    def n_workers(self) -> int:
        return self.search.n_workers

    @property
    def cv_folds(self) -> int:
        return self.search.cv_folds

    @property
    def seed(self) -> int:
        return self.search.seed

    @property
    def backend(self) -> str:
        return self.search.backend

    @property
    def resources(self) -> tuple[tuple[str, float], ...]:
        return self.search.resources

    @property
    def storage_masked(self) -> str | None:
        """The storage URL with its password replaced by ``***`` (what :meth:`to_dict` carries)."""
        return mask_url(self.storage) if self.storage else self.storage

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def metric_names(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def is_multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def measured_metrics(self) -> list[str]:
        """Metrics every trial measures: objectives first, then constraint metrics."""
        names = list(self.metric_names)
        for c in self.constraints:
            if c.metric not in names:
                names.append(c.metric)
        return names

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (for worker processes) as its data, the real storage URL included.
        return (_revalidate, (self._raw(masked=False), self._tolerated))

    @property
    def tolerated(self) -> tuple[str, ...]:
        """The settings this spec holds that this tuneops refuses in a new spec, each as its
        refusal reads; empty but for a spec read back from storage (:func:`load_stored_spec`)."""
        return self._tolerated

    def replace(self, **changes: Any) -> Spec:
        """A copy with fields changed (top-level or ``search`` fields), validated again."""
        return load_spec(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data, as stored with its study; the storage password is masked."""
        return self._raw(masked=True)

    def _raw(self, *, masked: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "study": self.study,
            "data": self.data.to_dict(),
            "model": self.model.to_dict(),
            "objectives": [o.to_dict() for o in self.objectives],
            "constraints": [str(c) for c in self.constraints],
            "selection": self.selection.to_dict(),
            "search": self.search.to_dict(),
            "storage": self.storage_masked if masked else self.storage,
            "output_dir": self.output_dir,
        }
        if self.warm_start is not None:
            out["warm_start"] = self.warm_start.to_dict()
        if self.monitor is not None:
            out["monitor"] = self.monitor.to_dict()
        if self.serving is not None:
            out["serving"] = self.serving.to_dict()
        return out


_TOP_KEYS = Spec.spec_keys()


def load_spec(source: str | Path | Mapping[str, Any] | Spec, **overrides: Any) -> Spec:
    """Read and validate a spec from a YAML/TOML file, a dict, or a Spec.

    Args:
        source: path to ``.yaml``/``.yml``/``.toml``, a mapping, or a Spec.
        **overrides: top-level or ``search`` fields to replace (``n_trials=5``, ``storage=...``);
            None leaves a field as it is.

    Raises:
        SpecError: naming the field, what was expected and what was received.
    """
    default_name = "tuneops"
    if isinstance(source, Spec):
        if not any(v is not None for v in overrides.values()):
            return source
        raw: Any = source._raw(masked=False)
    elif isinstance(source, Mapping):
        raw = dict(source)
    elif not isinstance(source, (str, Path)):
        raise SpecError(
            f"spec: expected the path of a YAML or TOML file, a mapping or a Spec, received "
            f"{type(source).__name__} {source!r}."
        )
    else:
        path = Path(source)
        if path.is_dir():
            raise SpecError(
                f"spec path {str(path)!r} is a directory; pass the path of a YAML or TOML spec "
                "file."
            )
        if not path.is_file():
            raise SpecError(
                f"spec file {str(path)!r} does not exist; pass the path of a YAML or TOML spec."
            )
        raw = _read_file(path)
        default_name = re.sub(r"[^A-Za-z0-9_.\-]", "-", path.stem) or default_name
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise SpecError(
            f"spec: expected a mapping of sections, received {type(raw).__name__} {raw!r}."
        )
    raw = dict(raw)
    search = raw.get("search")
    search = dict(search) if isinstance(search, Mapping) else search
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, os.PathLike):  # output_dir=Path(...), storage=Path("x.journal")
            value = os.fspath(value)
        if key in _SEARCH_KEYS:
            if not isinstance(search, dict):
                search = {}
            search[key] = value.to_dict() if isinstance(value, _Model) else value
        elif key in _TOP_KEYS:
            raw[key] = value.to_dict() if isinstance(value, _Model) else value
        else:
            raise SpecError(unknown_name("override", key, _SEARCH_KEYS + _TOP_KEYS))
    raw["search"] = search
    raw["study"] = raw.get("study") or default_name
    defaulted = (
        source._objectives_defaulted if isinstance(source, Spec) else "objectives" not in raw
    ) and "objectives" not in overrides
    spec = _revalidate(raw, source._tolerated if isinstance(source, Spec) else ())
    _private(spec)["_objectives_defaulted"] = bool(defaulted)
    return spec


def _private(spec: Spec) -> dict[str, Any]:
    private = spec.__pydantic_private__  # (Spec is immutable)
    assert private is not None  # it declares private attributes
    return private


def _revalidate(raw: Any, tolerated: tuple[str, ...]) -> Spec:
    """``raw`` validated; with ``tolerated`` (a spec read back from storage, or a copy of one)
    the settings refused since an earlier tuneops stored them are read as written again."""
    if not tolerated:
        return _validate(Spec, raw, "")
    with tolerating() as notes:
        spec = _validate(Spec, raw, "")
    _private(spec)["_tolerated"] = tuple(notes)
    return spec


_log = logging.getLogger(__name__)
_WARNED: set[tuple[str, tuple[str, ...]]] = set()


def load_stored_spec(
    raw: str | Path | Mapping[str, Any] | Spec, where: str, *, quiet: bool = False, **overrides: Any
) -> Spec:
    """The spec stored with a study or a registered version, read as it was written.

    A setting this tuneops refuses in a new spec but an earlier one accepted and stored
    (constraints that repeat or contradict each other, a constraint every model meets,
    selection settings of another policy) is read as it was written, with one warning naming
    it and what to change (once per process), instead of refusing the study or version; the
    spec's :attr:`Spec.tolerated` lists them. Anything else wrong is refused as
    :func:`load_spec` refuses it.

    Args:
        raw: the stored spec (or anything :func:`load_spec` reads).
        where: what stored it, for the warning (``study 'NAME'``, ``champion version 2``).
        quiet: no warning (the caller decides first whether to read it so).
        **overrides: as for :func:`load_spec`.
    """
    with tolerating() as notes:
        spec = load_spec(raw, **overrides)
    if notes:
        _private(spec)["_tolerated"] = tuple(notes)
        key = (where, tuple(notes))
        if not quiet and key not in _WARNED:
            _WARNED.add(key)
            _log.warning(
                "%s: its stored spec holds %s this tuneops refuses in a new spec (an earlier "
                "tuneops accepted %s), read as it was written: %s. Change %s in the spec file "
                "(a study resumes with other constraints or selection; a new study refuses the "
                "spec as it is).",
                where,
                "a setting" if len(notes) == 1 else f"{len(notes)} settings",
                "it" if len(notes) == 1 else "them",
                "; ".join(n.rstrip(".") for n in notes),
                "it" if len(notes) == 1 else "them",
            )
    return spec


def for_task(spec: Spec, task: str) -> Spec:
    """``spec`` with the default objective of ``task`` when it wrote none (r2 for a regression
    found when the data loaded); else ``spec`` itself."""
    if spec._objectives_defaulted and task == "regression" and spec.metric_names == ["accuracy"]:
        raw = spec._raw(masked=False)
        raw["objectives"] = ["r2"]
        return _revalidate(raw, spec._tolerated)
    return spec
