"""The spec: one validated, immutable value that describes a tuning job.

A spec is written in YAML or TOML (or given as a dict), validated once by :func:`load_spec`,
stored with its study, and round-trips through :meth:`Spec.to_dict`. Every error names the
field, what was expected, what was received, and what to do.

Example::

    >>> spec = load_spec({"data": {"source": "sklearn:iris"},
    ...                   "model": {"family": "random_forest"},
    ...                   "objectives": ["accuracy"], "search": {"n_trials": 5}})
    >>> spec.objectives[0].direction
    'maximize'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tuneops.errors import SpecError, unknown_name
from tuneops.metrics import METRICS, get_metric
from tuneops.space import Param, parse_space, space_to_dict

__all__ = [
    "Spec",
    "DataSpec",
    "Objective",
    "Constraint",
    "Selection",
    "Component",
    "load_spec",
    "dump_spec",
    "parse_constraint",
]

TASKS = ("auto", "classification", "regression")
POLICIES = ("knee", "lexicographic", "weighted")
_TOP_KEYS = ("study", "data", "model", "objectives", "constraints", "selection", "search",
             "storage", "output_dir", "warm_start", "monitor")
_SEARCH_KEYS = ("sampler", "pruner", "n_trials", "timeout_s", "n_workers", "cv_folds", "seed",
                "backend", "resources")
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


@dataclass(frozen=True)
class DataSpec:
    source: str
    target: str | None = None
    task: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "task": self.task}
        if self.target is not None:
            out["target"] = self.target
        return out


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str

    def to_dict(self) -> dict[str, str]:
        return {"metric": self.metric, "direction": self.direction}


_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``metric op threshold``; strict and non-strict comparisons are treated alike."""

    metric: str
    op: str
    threshold: float

    def violation(self, metrics: Mapping[str, float]) -> float:
        """Optuna's convention: <= 0 is feasible, > 0 is by how much it misses."""
        value = metrics[self.metric]
        return self.threshold - value if self.op in (">=", ">") else value - self.threshold

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


def parse_constraint(text: Any, field: str = "constraints", *, builtin_only: bool = True) -> Constraint:
    """Parse ``"accuracy >= 0.9"``.

    With ``builtin_only=False`` any metric name is accepted (custom objectives name their own
    metrics; selection checks later that the trials measured it).

    Raises:
        SpecError: the text is not ``metric op number`` or the metric is unknown.
    """
    match = _CONSTRAINT.match(text) if isinstance(text, str) else None
    if match is None:
        raise SpecError(
            f"{field}: malformed constraint {text!r}; expected 'METRIC OP NUMBER' with OP one "
            "of >=, <=, >, < (for example 'accuracy >= 0.90' or 'latency_p95_ms <= 50')."
        )
    metric, op, number = match.groups()
    if builtin_only:
        get_metric(metric, field=field)
    try:
        threshold = float(number)
    except ValueError:
        raise SpecError(f"{field}: {number!r} in {text!r} is not a number.") from None
    if not math.isfinite(threshold):
        raise SpecError(f"{field}: threshold in {text!r} must be finite.")
    return Constraint(metric, op, threshold)


@dataclass(frozen=True)
class Selection:
    """How one trial is chosen from the feasible Pareto front."""

    policy: str = "knee"
    weights: tuple[tuple[str, float], ...] = ()
    priority: tuple[str, ...] = ()
    tolerance: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"policy": self.policy}
        if self.weights:
            out["weights"] = dict(self.weights)
        if self.priority:
            out["priority"] = list(self.priority)
        if self.tolerance:
            out["tolerance"] = self.tolerance
        return out


@dataclass(frozen=True)
class Component:
    """A sampler or pruner chosen by name, with keyword parameters."""

    name: str = "auto"
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def to_dict(self) -> Any:
        return {"name": self.name, **self.kwargs} if self.params else self.name


@dataclass(frozen=True)
class Spec:
    """A validated tuning job. Build it with :func:`load_spec`."""

    study: str
    data: DataSpec
    families: tuple[str, ...]
    objectives: tuple[Objective, ...]
    space: Mapping[str, Mapping[str, Param]] = field(default_factory=lambda: MappingProxyType({}))
    constraints: tuple[Constraint, ...] = ()
    selection: Selection = Selection()
    sampler: Component = Component()
    pruner: Component = Component()
    n_trials: int | None = 20
    timeout_s: float | None = None
    n_workers: int = 1
    cv_folds: int = 3
    seed: int = 0
    backend: str = "local"
    resources: tuple[tuple[str, float], ...] = ()
    storage: str | None = None
    output_dir: str | None = None
    warm_start: Any = None
    monitor: Any = None

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

    def replace(self, **changes: Any) -> Spec:
        """A copy with fields changed, validated again."""
        return load_spec({**self.to_dict(), **_as_raw(changes)})

    def to_dict(self) -> dict[str, Any]:
        model: dict[str, Any] = {
            "family": self.families[0] if len(self.families) == 1 else list(self.families)
        }
        if any(self.space.values()):
            model["space"] = {f: space_to_dict(s) for f, s in self.space.items() if s}
        out: dict[str, Any] = {
            "study": self.study,
            "data": self.data.to_dict(),
            "model": model,
            "objectives": [o.to_dict() for o in self.objectives],
            "constraints": [str(c) for c in self.constraints],
            "selection": self.selection.to_dict(),
            "search": {
                "sampler": self.sampler.to_dict(),
                "pruner": self.pruner.to_dict(),
                "n_trials": self.n_trials,
                "timeout_s": self.timeout_s,
                "n_workers": self.n_workers,
                "cv_folds": self.cv_folds,
                "seed": self.seed,
                "backend": self.backend,
            },
            "storage": self.storage,
            "output_dir": self.output_dir,
        }
        if self.resources:
            out["search"]["resources"] = dict(self.resources)
        if self.warm_start is not None:
            out["warm_start"] = _thaw(self.warm_start)
        if self.monitor is not None:
            out["monitor"] = _thaw(self.monitor)
        return out


def _as_raw(changes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in changes.items()}


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _mapping(raw: Any, where: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: expected a mapping, received {type(raw).__name__} {raw!r}.")
    return raw


def _check_keys(raw: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in raw:
        if key not in allowed:
            raise SpecError(unknown_name("key", key, allowed, field=where))


def _int(raw: Any, where: str, *, low: int, allow_none: bool = False) -> int | None:
    if raw is None and allow_none:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < low:
        raise SpecError(f"{where}: expected an integer >= {low}, received {raw!r}.")
    return raw


def _objectives(raw: Any) -> tuple[Objective, ...]:
    if isinstance(raw, (str, Mapping)):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise SpecError(
            "objectives: expected a non-empty list of metrics, for example "
            f"[accuracy, latency_p95_ms]; received {raw!r}. Valid metrics: {', '.join(METRICS)}."
        )
    out = []
    for i, item in enumerate(raw):
        where = f"objectives[{i}]"
        if isinstance(item, str):
            item = {"metric": item}
        item = _mapping(item, where)
        _check_keys(item, ("metric", "direction"), where)
        metric = get_metric(item.get("metric"), field=f"{where}.metric")
        direction = item.get("direction", metric.direction)
        if direction not in ("maximize", "minimize"):
            raise SpecError(
                f"{where}.direction: expected maximize or minimize, received {direction!r}."
            )
        if direction != metric.direction:
            raise SpecError(
                f"{where}: {metric.name} is better when it is {metric.direction[:-1]}ed, but the "
                f"direction is {direction!r}; remove 'direction' or set it to {metric.direction}."
            )
        if any(o.metric == metric.name for o in out):
            raise SpecError(f"{where}: metric {metric.name!r} is listed twice.")
        out.append(Objective(metric.name, direction))
    return tuple(out)


def _selection(raw: Any, objectives: tuple[Objective, ...]) -> Selection:
    if raw is None:
        return Selection()
    if isinstance(raw, str):
        raw = {"policy": raw}
    raw = _mapping(raw, "selection")
    _check_keys(raw, ("policy", "weights", "priority", "tolerance"), "selection")
    policy = raw.get("policy", "knee")
    if policy not in POLICIES:
        raise SpecError(unknown_name("selection policy", policy, POLICIES, field="selection.policy"))
    names = [o.metric for o in objectives]
    weights = _mapping(raw.get("weights"), "selection.weights")
    for metric, weight in weights.items():
        if metric not in names:
            raise SpecError(
                f"selection.weights: {metric!r} is not an objective; expected some of {names}."
            )
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise SpecError(f"selection.weights.{metric}: expected a number >= 0, received {weight!r}.")
    if policy == "weighted" and not weights:
        weights = {n: 1.0 for n in names}
    priority = raw.get("priority") or []
    if not isinstance(priority, list) or any(p not in names for p in priority):
        raise SpecError(f"selection.priority: expected a list of objectives from {names}, received {priority!r}.")
    tolerance = raw.get("tolerance", 0.0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise SpecError(f"selection.tolerance: expected a number >= 0, received {tolerance!r}.")
    return Selection(
        policy,
        tuple((k, float(v)) for k, v in weights.items()),
        tuple(priority),
        float(tolerance),
    )


def _component(raw: Any, where: str) -> Component:
    if raw is None:
        return Component()
    if isinstance(raw, str):
        return Component(raw)
    raw = _mapping(raw, where)
    name = raw.get("name", "auto")
    if not isinstance(name, str):
        raise SpecError(f"{where}.name: expected a name, received {name!r}.")
    params = {k: v for k, v in raw.items() if k != "name"}
    return Component(name, tuple(sorted((k, _freeze(v)) for k, v in params.items())))


def _families_and_space(raw: Any) -> tuple[tuple[str, ...], Mapping[str, Mapping[str, Param]]]:
    from tuneops.families import FAMILIES

    raw = _mapping(raw, "model")
    _check_keys(raw, ("family", "families", "space"), "model")
    families = raw.get("families", raw.get("family"))
    if isinstance(families, str):
        families = [families]
    if not isinstance(families, list) or not families:
        raise SpecError(
            "model.family: expected a family name or a list of names, received "
            f"{families!r}; valid families: {', '.join(sorted(FAMILIES))}."
        )
    for name in families:
        if name not in FAMILIES:
            raise SpecError(unknown_name("model family", name, FAMILIES, field="model.family"))
    if len(set(families)) != len(families):
        raise SpecError(f"model.family: a family is listed twice in {families}.")
    space_raw = _mapping(raw.get("space"), "model.space")
    if len(families) == 1 and not (set(space_raw) & set(FAMILIES)):
        space_raw = {families[0]: space_raw} if space_raw else {}
    for name in space_raw:
        if name not in families:
            raise SpecError(
                f"model.space: {name!r} is not one of the spec's families {families}; with "
                "several families, give each its own mapping under model.space.FAMILY."
            )
    space = {
        f: MappingProxyType(parse_space(space_raw.get(f), f"model.space.{f}")) for f in families
    }
    return tuple(families), MappingProxyType(space)


def load_spec(source: str | Path | Mapping[str, Any] | Spec, **overrides: Any) -> Spec:
    """Read and validate a spec from a YAML/TOML file, a dict, or a Spec.

    Args:
        source: path to ``.yaml``/``.yml``/``.toml``, a mapping, or a Spec.
        **overrides: top-level or ``search`` fields to replace (``n_trials=5``, ``storage=...``).

    Raises:
        SpecError: naming the field, what was expected and what was received.
    """
    default_name = "tuneops"
    if isinstance(source, Spec):
        raw: Any = source.to_dict()
    elif isinstance(source, Mapping):
        raw = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise SpecError(f"spec file {str(path)!r} does not exist; pass the path of a YAML or TOML spec.")
        raw = _read_file(path)
        default_name = re.sub(r"[^A-Za-z0-9_.\-]", "-", path.stem) or default_name
    raw = dict(_mapping(raw, "spec"))
    search = dict(_mapping(raw.get("search"), "search"))
    for key, value in overrides.items():
        if value is None:
            continue
        if key in _SEARCH_KEYS:
            search[key] = value
        elif key in _TOP_KEYS:
            raw[key] = value
        else:
            raise SpecError(unknown_name("override", key, _SEARCH_KEYS + _TOP_KEYS))
    raw["search"] = search
    return _validate(raw, default_name)


def _read_file(path: Path) -> Any:
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
    except Exception as exc:  # the parser's message carries the line and column
        raise SpecError(f"spec file {str(path)!r} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    raise SpecError(f"spec file {str(path)!r}: expected a .yaml, .yml or .toml file, received {path.suffix!r}.")


def _validate(raw: dict[str, Any], default_name: str) -> Spec:
    _check_keys(raw, _TOP_KEYS, "spec")
    study = raw.get("study") or default_name
    if not isinstance(study, str) or not _STUDY_NAME.match(study):
        raise SpecError(
            f"study: expected a name of letters, digits, '_', '-' or '.', received {study!r}."
        )
    data = _mapping(raw.get("data"), "data")
    _check_keys(data, ("source", "target", "task"), "data")
    source = data.get("source")
    if not isinstance(source, str) or not source.strip():
        raise SpecError(
            "data.source: expected a data source such as 'sklearn:breast_cancer', "
            f"'pmlb:NAME' or a CSV/Parquet path; received {source!r}."
        )
    task = data.get("task", "auto")
    if task not in TASKS:
        raise SpecError(unknown_name("task", task, TASKS, field="data.task"))
    target = data.get("target")
    if target is not None and not isinstance(target, str):
        raise SpecError(f"data.target: expected a column name, received {target!r}.")
    families, space = _families_and_space(raw.get("model"))
    objectives = _objectives(raw.get("objectives", ["accuracy"] if task != "regression" else ["r2"]))
    constraints_raw = raw.get("constraints") or []
    if isinstance(constraints_raw, str):
        constraints_raw = [constraints_raw]
    if not isinstance(constraints_raw, list):
        raise SpecError(f"constraints: expected a list of expressions, received {constraints_raw!r}.")
    constraints = tuple(
        parse_constraint(c, f"constraints[{i}]") for i, c in enumerate(constraints_raw)
    )
    search = raw["search"]
    _check_keys(search, _SEARCH_KEYS, "search")
    n_trials = _int(search.get("n_trials", 20), "search.n_trials", low=1, allow_none=True)
    timeout = search.get("timeout_s")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise SpecError(f"search.timeout_s: expected seconds > 0, received {timeout!r}.")
    if n_trials is None and timeout is None:
        raise SpecError("search: set n_trials, timeout_s, or both; received neither.")
    backend = search.get("backend", "local")
    if backend not in ("local", "ray"):
        raise SpecError(unknown_name("backend", backend, ("local", "ray"), field="search.backend"))
    resources = _mapping(search.get("resources"), "search.resources")
    storage = raw.get("storage")
    if storage is not None and not isinstance(storage, str):
        raise SpecError(f"storage: expected a URL or file path, received {storage!r}.")
    output_dir = raw.get("output_dir")
    if output_dir is not None and not isinstance(output_dir, str):
        raise SpecError(f"output_dir: expected a directory path, received {output_dir!r}.")
    spec = Spec(
        study=study,
        data=DataSpec(source.strip(), target, task),
        families=families,
        space=space,
        objectives=objectives,
        constraints=constraints,
        selection=_selection(raw.get("selection"), objectives),
        sampler=_component(search.get("sampler"), "search.sampler"),
        pruner=_component(search.get("pruner"), "search.pruner"),
        n_trials=n_trials,
        timeout_s=float(timeout) if timeout is not None else None,
        n_workers=_int(search.get("n_workers", 1), "search.n_workers", low=1),
        cv_folds=_int(search.get("cv_folds", 3), "search.cv_folds", low=2),
        seed=_int(search.get("seed", 0), "search.seed", low=0),
        backend=backend,
        resources=tuple(sorted((str(k), float(v)) for k, v in resources.items())),
        storage=storage,
        output_dir=output_dir,
        warm_start=_freeze(raw.get("warm_start")),
        monitor=_freeze(raw.get("monitor")),
    )
    _check_names(spec)
    return spec


def _check_names(spec: Spec) -> None:
    """Resolve sampler and pruner names now, so a typo fails before anything is written."""
    from tuneops.pruning import PRUNERS, check_pruner
    from tuneops.runner import SAMPLERS

    if spec.sampler.name not in SAMPLERS:
        raise SpecError(unknown_name("sampler", spec.sampler.name, SAMPLERS, field="search.sampler"))
    if spec.pruner.name not in PRUNERS:
        raise SpecError(unknown_name("pruner", spec.pruner.name, PRUNERS, field="search.pruner"))
    check_pruner(spec.pruner.name, spec.pruner.kwargs)


def dump_spec(spec: Spec, path: str | Path) -> Path:
    """Write a spec as YAML or TOML (by suffix); ``load_spec`` reads it back equal."""
    path = Path(path)
    data = spec.to_dict()
    if path.suffix == ".toml":
        from tuneops.errors import require

        tomli_w = require("tomli_w", "toml", "Writing TOML specs")
        path.write_text(tomli_w.dumps(_drop_none(data)))
    else:
        import yaml

        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _drop_none(value: Any) -> Any:  # TOML has no null
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


def with_overrides(spec: Spec, **changes: Any) -> Spec:
    """Return ``spec`` with top-level fields replaced without re-validation (internal use)."""
    return replace(spec, **changes)
