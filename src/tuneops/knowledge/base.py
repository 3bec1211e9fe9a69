"""The knowledge base: past tuning results, one :class:`Entry` per (dataset, family).

An entry holds a dataset's meta-features, the task, the family, the quality metric and the
configurations tried there with their scores (best first). The knowledge base a run sees is
the union of

* the **shipped** base (``prebuilt.json.gz`` next to this module, built by ``tuneops kb build``),
* the **storage**: every finished tuneops study records its meta-features (study user attr
  ``tuneops:meta_features``), family, space and trials, so it becomes an entry as it is; and
  ``tuneops kb import`` stores imported entries as trial-less studies holding the entry,
* any **file** written by ``tuneops kb export``.

Entries are plain data (``to_dict``/``from_dict``), so a base round-trips through JSON.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from tuneops import _study
from tuneops._files import write_atomic
from tuneops.errors import DataError, UsageError
from tuneops.metrics import METRICS
from tuneops.storage import get_storage, storage_exists

__all__ = [
    "Entry",
    "KnowledgeBase",
    "SHIPPED_PATH",
    "META_ATTR",
    "ENTRY_ATTR",
    "load_shipped",
    "load_file",
    "from_storage",
    "load_sources",
    "entries_of_study",
    "add_prefix",
    "strip_prefix",
    "size_proxy",
    "dedupe",
    "UNVERSIONED_FIT",
]

SHIPPED_PATH = Path(__file__).with_name("prebuilt.json.gz")
META_ATTR = "tuneops:meta_features"  # study user attr: {"features": {...}, "task": ...}
ENTRY_ATTR = "tuneops:kb_entry"  # study user attr of an imported entry (a study without trials)
FORMAT = 1
_KEEP_TOP = 10
#: The definition (:data:`tuneops._study.FIT_TIME_DEFINITIONS`) of a configuration's ``fit_s``
#: recorded without its ``fit_version``: every base written before the version was. Fit times
#: entered the base (2026-12-06) after ``fit_time_s`` became CPU seconds (version 2) and
#: before it became the final fit only (3); the shipped base's were all measured so.
UNVERSIONED_FIT = 2


#: Datasets sharing their rows or their source with each other (the UCI heart-disease
#: collections; the three MONK's problems share one feature table): leave-one-out drops the
#: whole group, so a benchmark never learns from a near-copy of its target.
RELATED: tuple[frozenset[str], ...] = (
    frozenset({"heart_statlog", "heart_c", "heart_h"}),
    frozenset({"monk1", "monk2", "monk3"}),
)


def related(dataset: str) -> set[str]:
    """``dataset`` and its near-duplicates (see :data:`RELATED`), with and without ``pmlb:``."""
    name = dataset.removeprefix("pmlb:")
    group = next((g for g in RELATED if name in g), frozenset({name}))
    return set(group) | {f"pmlb:{d}" for d in group}


@dataclass(frozen=True)
class Entry:
    """What tuning one family on one dataset learned.

    ``configs`` are ``(params, score)`` pairs, best first, with estimator parameter names
    (no ``family.`` prefix); ``score`` is ``metric`` in its ``direction``.
    ``history`` is the order the trials ran in (scores only), kept for benchmarks.
    ``costs`` (aligned with ``configs``, or empty) is what each configuration cost where it
    ran: ``fit_s`` (its trial's ``fit_time_s``) with ``fit_version``, the definition it was
    measured by (:data:`tuneops._study.FIT_TIME_DEFINITIONS`; read as
    :data:`UNVERSIONED_FIT` where a base did not record it), and ``size`` (the family's
    :func:`size_proxy`, trees x depth and the like), so a multi-objective spec that also
    minimises latency or size can prefer configurations that were cheap. Fit times of
    different definitions measure different things: read them through :meth:`fit_times`,
    which gives those of one definition only.
    ``default_score`` is the score of the family's library defaults (``params = {}``) on the
    same CV folds, or None where it was not measured: the zero-shot portfolio's first pick
    should beat it, so it prefers a configuration that beat the default on many past tasks.
    It belongs to the entry, so leaving a dataset out of the base leaves its default out too.
    """

    dataset: str
    task: str
    family: str
    metric: str
    direction: str
    meta_features: Mapping[str, float]
    configs: tuple[tuple[Mapping[str, Any], float], ...]
    fingerprint: str | None = None
    source: str = ""
    history: tuple[float, ...] = field(default=())
    costs: tuple[Mapping[str, float], ...] = field(default=())
    default_score: float | None = None

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.family}"

    @property
    def best_score(self) -> float | None:
        return self.configs[0][1] if self.configs else None

    def fit_times(self, version: int = _study.FIT_TIME_VERSION) -> tuple[float | None, ...]:
        """Each configuration's fit seconds (aligned with ``configs``) as definition ``version``
        measures them (default: this tuneops' ``fit_time_s``); None where it was not measured
        or was measured by another definition, which is never compared with it (a fraction
        family's refits for a pruner summed to 3-5x its final fit)."""
        if not self.costs:
            return (None,) * len(self.configs)
        return tuple(
            float(c["fit_s"]) if "fit_s" in c and c.get("fit_version") == version else None
            for c in self.costs
        )

    @property
    def fit_versions(self) -> frozenset[int]:
        """The definitions the entry's fit times were measured by (empty: none recorded)."""
        return frozenset(int(c["fit_version"]) for c in self.costs if "fit_version" in c)

    def to_dict(self, *, history: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "fingerprint": self.fingerprint,
            "task": self.task,
            "family": self.family,
            "metric": self.metric,
            "direction": self.direction,
            "meta_features": dict(self.meta_features),
            "configs": [
                {
                    "params": dict(p),
                    "score": s,
                    **({"cost": dict(self.costs[i])} if self.costs else {}),
                }
                for i, (p, s) in enumerate(self.configs)
            ],
        }
        if history and self.history:
            out["history"] = list(self.history)
        if self.default_score is not None:
            out["default_score"] = self.default_score
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "") -> Entry:
        try:
            return cls(
                dataset=str(raw["dataset"]),
                task=str(raw["task"]),
                family=str(raw["family"]),
                metric=str(raw["metric"]),
                direction=str(raw.get("direction", "maximize")),
                meta_features={k: float(v) for k, v in raw["meta_features"].items()},
                configs=tuple((dict(c["params"]), float(c["score"])) for c in raw["configs"]),
                fingerprint=raw.get("fingerprint"),
                source=source or str(raw.get("source", "")),
                history=tuple(float(v) for v in raw.get("history", ())),
                costs=_costs(raw["configs"]),
                default_score=_optional_float(raw.get("default_score")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(
                "knowledge base entry "
                f"{raw.get('dataset', '?') if isinstance(raw, Mapping) else raw!r}: "
                f"expected keys dataset, task, family, metric, meta_features, configs; {exc!r}."
            ) from exc


def _optional_float(value: Any) -> float | None:
    """A finite float, or None (absent, null, or NaN: a default the estimator refused)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _costs(configs: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, float], ...]:
    """The ``cost`` of every configuration, or () when any lacks one (older bases). A ``fit_s``
    without its ``fit_version`` is of :data:`UNVERSIONED_FIT`, and says so from then on."""
    if not configs or not all(isinstance(c.get("cost"), Mapping) for c in configs):
        return ()
    out = []
    for c in configs:
        cost: dict[str, float] = {
            k: int(v) if k == "fit_version" else float(v) for k, v in c["cost"].items()
        }
        if "fit_s" in cost and "fit_version" not in cost:
            cost["fit_version"] = UNVERSIONED_FIT
        out.append(cost)
    return tuple(out)


def size_proxy(family: str, params: Mapping[str, Any]) -> float:
    """A serving-cost proxy of a configuration, from its parameters (bigger = larger, slower model).

    Forests: trees x depth (a tree's nodes grow with its depth, prediction walks one path per
    tree); boosting: rounds x leaves (xgboost: rounds x depth); MLP: layers x width; k-NN: 1 +
    neighbours/50 (prediction cost is mostly the training set, the same for every
    configuration); linear and SVM: 1 (their size depends on the data, not on the parameters).
    Missing parameters count as the estimator's default.
    """

    def num(name: str, default: float) -> float:
        value = params.get(name, default)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if number else default

    if family in ("random_forest", "extra_trees"):
        return num("n_estimators", 100) * min(num("max_depth", 32), 32)
    if family == "hist_gradient_boosting":
        return num("max_iter", 100) * num("max_leaf_nodes", 31)
    if family == "lightgbm":
        return num("n_estimators", 100) * num("num_leaves", 31)
    if family == "xgboost":
        return num("n_estimators", 100) * 2 ** num("max_depth", 6)
    if family == "mlp":
        return num("n_layers", 1) * num("width", 100)
    if family == "knn":
        return 1.0 + num("n_neighbors", 5) / 50
    return 1.0


def dedupe(
    configs: Sequence[tuple[Mapping[str, Any], float]],
    costs: Sequence[Mapping[str, float]] = (),
    *,
    digits: int = 3,
) -> tuple[list[tuple[Mapping[str, Any], float]], list[Mapping[str, float]]]:
    """``configs`` (best first) without repeats: two configurations are the same when their
    parameters agree to ``digits`` significant digits; the first (best) is kept.

    A cold TPE run on a small space proposes the same configuration many times (a 200-trial
    k-NN run has a handful of distinct ones among its top 30), and a portfolio needs distinct
    configurations.
    """
    seen: set[tuple[tuple[str, Any], ...]] = set()
    out: list[tuple[Mapping[str, Any], float]] = []
    out_costs: list[Mapping[str, float]] = []
    for i, (params, score) in enumerate(configs):
        key = tuple(sorted((k, _rounded(v, digits)) for k, v in params.items()))
        if key in seen:
            continue
        seen.add(key)
        out.append((params, score))
        if costs:
            out_costs.append(costs[i])
    return out, out_costs


def _rounded(value: Any, digits: int) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))
    return value


@dataclass(frozen=True)
class KnowledgeBase:
    """An immutable collection of entries, with provenance of the shipped/built base."""

    entries: tuple[Entry, ...] = ()
    built_with: Mapping[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def __add__(self, other: KnowledgeBase) -> KnowledgeBase:
        return KnowledgeBase(self.entries + other.entries, self.built_with or other.built_with)

    def select(self, *, family: str | None = None, task: str | None = None) -> KnowledgeBase:
        return KnowledgeBase(
            tuple(
                e
                for e in self.entries
                if (family is None or e.family == family) and (task is None or e.task == task)
            ),
            self.built_with,
        )

    def without(self, dataset: str | None = None, fingerprint: str | None = None) -> KnowledgeBase:
        """The base without any entry of ``dataset`` (by name or fingerprint) or of a known
        near-duplicate of it (:data:`tuneops.knowledge.build.RELATED`): leave-one-out."""

        names = related(dataset) if dataset is not None else set()
        return KnowledgeBase(
            tuple(
                e
                for e in self.entries
                if not (
                    e.dataset in names or (fingerprint is not None and e.fingerprint == fingerprint)
                )
            ),
            self.built_with,
        )

    def find(self, name: str) -> list[Entry]:
        """Entries whose dataset is ``name`` (``pmlb:`` prefix optional) or whose key is
        ``name``."""
        wanted = {name, f"pmlb:{name}"}
        return [e for e in self.entries if e.dataset in wanted or e.key in wanted]

    def fit_time_note(self, entries: Iterable[Entry] | None = None) -> str | None:
        """Which of ``entries`` (default: the base's) hold fit times measured by another
        definition than this tuneops' ``fit_time_s``, and what those measured; None when
        none does."""
        other = [
            e
            for e in (self.entries if entries is None else entries)
            if e.fit_versions - {_study.FIT_TIME_VERSION}
        ]
        if not other:
            return None
        known = _study.FIT_TIME_DEFINITIONS
        current = _study.FIT_TIME_VERSION
        versions = sorted(set().union(*(e.fit_versions for e in other)) - {current})
        keys = ", ".join(e.key for e in other[:5]) + (", ..." if len(other) > 5 else "")
        return (
            f"fit times (cost.fit_s) of {len(other)} entries ({keys}) were measured by another "
            f"definition than this tuneops' fit_time_s (version {current}: {known[current]}): "
            + "; ".join(f"version {v}: {known.get(v, 'unknown to this tuneops')}" for v in versions)
            + ". They are not compared with fit times measured now (Entry.fit_times gives one "
            "definition's); a fit time recorded without its fit_version (any base built before "
            f"it was) is read as version {UNVERSIONED_FIT}."
        )

    def to_dict(self, *, history: bool = True) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "built_with": dict(self.built_with) if self.built_with else None,
            "entries": [e.to_dict(history=history) for e in self.entries],
        }

    def save(self, path: str | Path, *, history: bool = True) -> Path:
        """Write the base as JSON (gzip when the name ends in .gz), atomically."""

        path = Path(path)
        data = json.dumps(
            self.to_dict(history=history), separators=(",", ":"), default=_jsonable
        ).encode()
        if path.suffix == ".gz":
            data = gzip.compress(data, mtime=0)
        return write_atomic(path, data)  # readable by others: a base is meant to be shared


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")


# -- loading ------------------------------------------------------------------------------------
#: The most JSON a knowledge-base file may hold, decompressed (the shipped base holds 3 MB).
MAX_KB_BYTES = 512 * 2**20


def load_file(path: str | Path, source: str | None = None) -> KnowledgeBase:
    """Read a base written by :meth:`KnowledgeBase.save` (``.json`` or ``.json.gz``).

    Raises:
        DataError: the file is missing or is not a knowledge base.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"knowledge base {str(path)!r} does not exist; write one with `tuneops kb export PATH`."
        )
    try:
        with path.open("rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            # read to a bound: 100 KB of gzip inflate to 100 MB (a 'zip bomb'), all in memory
            raw_bytes = (gzip.GzipFile(fileobj=f) if gzipped else f).read(MAX_KB_BYTES + 1)
        raw = None if len(raw_bytes) > MAX_KB_BYTES else json.loads(raw_bytes)
    except (OSError, ValueError, EOFError, RecursionError) as exc:
        raise DataError(f"knowledge base {str(path)!r} is not readable JSON: {exc}") from exc
    if len(raw_bytes) > MAX_KB_BYTES:
        raise DataError(
            f"knowledge base {str(path)!r}: more than {MAX_KB_BYTES // 2**20} MB of JSON"
            f"{' once decompressed' if gzipped else ''}; the shipped base is 3 MB. Check that "
            "this is a file of `tuneops kb export`."
        )
    if not isinstance(raw, Mapping) or not isinstance(raw.get("entries"), list):
        raise DataError(
            f"knowledge base {str(path)!r}: expected an object with a list of 'entries' (from "
            f"`tuneops kb export`), received {type(raw).__name__} with keys "
            f"{list(raw)[:5] if isinstance(raw, Mapping) else '-'}"
            + (
                f" and 'entries' a {type(raw['entries']).__name__}"
                if isinstance(raw, Mapping) and "entries" in raw
                else ""
            )
            + ". What to do: give a file `tuneops kb export` wrote, or write it again."
        )
    label = source or f"file:{path.name}"
    entries = []
    for i, raw_entry in enumerate(raw["entries"], 1):
        try:
            entries.append(Entry.from_dict(raw_entry, label))
        except DataError as exc:
            raise DataError(
                f"knowledge base {str(path)!r}, entry {i} of {len(raw['entries'])}: {exc} What "
                "to do: write the file again (`tuneops kb export PATH`), or remove that entry."
            ) from exc
    return KnowledgeBase(tuple(entries), raw.get("built_with"))


def load_shipped() -> KnowledgeBase:
    """The prebuilt base shipped in the package (empty if the asset is absent)."""
    if not SHIPPED_PATH.is_file():
        return KnowledgeBase()
    return load_file(SHIPPED_PATH, source="shipped")


def quality_objective(study_attrs: Mapping[str, Any]) -> tuple[str, str] | None:
    """(metric, direction) of a tuneops study's first quality objective (what entries score by)."""

    for o in study_attrs.get("tuneops:objectives") or []:
        if o.get("metric") in METRICS and METRICS[o["metric"]].kind == "quality":
            return str(o["metric"]), str(o["direction"])
    return None


def _fixed_values(attrs: Mapping[str, Any], family: str) -> dict[str, Any]:
    """The unconditional fixed values of ``family`` in the spec a study recorded (``model.space``
    as ``Spec.to_dict`` writes it: ``{family: {name: {"value": ...}}}``)."""
    model = (attrs.get("tuneops:spec") or {}).get("model") or {}
    space = (model.get("space") or {}).get(family) if isinstance(model, Mapping) else None
    if not isinstance(space, Mapping):
        return {}
    return {
        name: d["value"]
        for name, d in space.items()
        if isinstance(d, Mapping) and set(d) == {"value"}
    }


def entries_of_study(study: Any, *, keep: int | None = _KEEP_TOP) -> list[Entry]:
    """The entries a finished tuneops study contributes (one per family it tried).

    A study contributes when it recorded meta-features; the score of a trial is the first
    quality objective (from its ``metrics`` user attr). An entry keeps the ``keep`` best
    configurations (None: all). An imported entry (a trial-less study with
    ``tuneops:kb_entry``) is returned as it is.
    """

    attrs = study.user_attrs
    if ENTRY_ATTR in attrs:
        return [Entry.from_dict(attrs[ENTRY_ATTR], f"storage:{study.study_name}")]
    meta = attrs.get(META_ATTR)
    data = attrs.get("tuneops:data") or {}
    quality = quality_objective(attrs)
    if not meta or quality is None:
        return []
    metric, direction = quality
    by_family: dict[str, list[tuple[dict[str, Any], float, dict[str, float]]]] = {}
    order: dict[str, list[float]] = {}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for t in sorted(complete, key=lambda t: t.number):
        metrics = t.user_attrs.get("metrics", {})
        score = metrics.get(metric)
        family = t.user_attrs.get("family")
        if family is None or score is None or not math.isfinite(score):
            continue
        # the spec's fixed values ran with every trial but are no Optuna parameter: an entry
        # without them advertised a score its configuration does not reach elsewhere
        params = {**_fixed_values(attrs, family), **strip_prefix(t.params, family)}
        cost = {"size": size_proxy(family, params)}
        for name, key in (("fit_time_s", "fit_s"), ("model_size_kb", "model_size_kb")):
            if isinstance(metrics.get(name), (int, float)) and math.isfinite(metrics[name]):
                cost[key] = round(float(metrics[name]), 5)
        version = _study.fit_time_version(t)
        if "fit_s" in cost and version is not None:
            # with the figure, its definition: a study resumed across a change holds both
            cost["fit_version"] = version
        by_family.setdefault(family, []).append((params, float(score), cost))
        order.setdefault(family, []).append(float(score))
    sign = -1.0 if direction == "maximize" else 1.0
    out = []
    for family, found in by_family.items():
        found.sort(key=lambda c: sign * c[1])  # stable: among equal scores, the earlier trial first
        configs, costs = dedupe([(p, s) for p, s, _ in found], [c for _, _, c in found])
        out.append(
            Entry(
                dataset=str(data.get("name", study.study_name)),
                task=str(meta.get("task", data.get("task", ""))),
                family=family,
                metric=metric,
                direction=direction,
                meta_features=dict(meta["features"]),
                configs=tuple(configs if keep is None else configs[:keep]),
                fingerprint=data.get("fingerprint"),
                source=f"storage:{study.study_name}",
                history=tuple(order[family]),
                costs=tuple(costs if keep is None else costs[:keep]),
            )
        )
    return out


def add_prefix(params: Mapping[str, Any], family: str, families: Sequence[str]) -> dict[str, Any]:
    """A trial's ``params`` for estimator parameters of ``family`` (the inverse of
    :func:`strip_prefix`):
    unchanged when the study searches one family, else ``family`` plus ``family.``-prefixed
    names."""
    if len(families) == 1:
        return dict(params)
    return {"family": family, **{f"{family}.{k}": v for k, v in params.items()}}


def strip_prefix(params: Mapping[str, Any], family: str) -> dict[str, Any]:
    """Estimator parameters of a trial's ``params`` (drops ``family`` and the ``family.``
    prefix)."""
    prefix = f"{family}."
    if "family" in params:
        return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
    return dict(params)


def from_storage(storage_url: str | None, *, exclude: Iterable[str] = ()) -> KnowledgeBase:
    """Entries of every study in the storage that recorded meta-features (or was imported)."""
    if not storage_exists(storage_url):  # no journal file yet: no entries, and none created
        return KnowledgeBase()
    storage = get_storage(storage_url)
    skip = set(exclude)
    entries: list[Entry] = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.study_name in skip:
            continue
        if META_ATTR not in summary.user_attrs and ENTRY_ATTR not in summary.user_attrs:
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        entries.extend(entries_of_study(study))
    return KnowledgeBase(tuple(entries))


SOURCES_DOC = "'shipped', 'storage', or the path of a file from `tuneops kb export`"


def load_sources(
    sources: Sequence[str], storage_url: str | None, *, exclude_study: str | None = None
) -> KnowledgeBase:
    """The union of the named sources (see :data:`SOURCES_DOC`)."""
    kb = KnowledgeBase()
    for source in sources:
        if source == "shipped":
            kb = kb + load_shipped()
        elif source == "storage":
            kb = kb + from_storage(storage_url, exclude=[exclude_study] if exclude_study else [])
        else:
            kb = kb + load_file(source)
    return kb


def import_entries(kb: KnowledgeBase, storage_url: str | None, *, prefix: str = "kb") -> list[str]:
    """Store each entry as a trial-less study ``{prefix}.{dataset}.{family}``; returns the names.
    A second entry of the same dataset and family in ``kb`` (from another study) is stored as
    ``....{family}.2`` and so on, not over the first (one was lost while the count said
    imported); importing the same file again replaces the same studies.

    Raises:
        UsageError: ``prefix`` is no study-name prefix; a study of that name already exists
            holding something else.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", prefix or ""):
        raise UsageError(
            f"prefix (--prefix): expected letters, digits, '_', '-' or '.' starting with a "
            "letter or "
            f"digit (it starts study names), received {prefix!r}."
        )
    storage = get_storage(storage_url)
    names: list[str] = []
    for entry in kb:
        safe = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in entry.dataset)
        base = f"{prefix}.{safe}.{entry.family}"[:120]
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}.{n}"
        study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True)
        existing = study.user_attrs.get(ENTRY_ATTR)
        if existing is None and (study.trials or study.user_attrs):
            raise UsageError(
                f"kb import: study {name!r} already exists and is not an imported entry; "
                "import with another prefix (--prefix)."
            )
        study.set_user_attr(ENTRY_ATTR, entry.to_dict(history=False))
        names.append(name)
    return names
