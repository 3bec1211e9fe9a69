"""Re-tuning: a challenger tuned on recent data, compared with the champion, promoted or not.

1. The recent labelled data is split (stratified for classification) into a tuning part and a
   held-out part (``monitor.holdout``).
2. A new study ``<model>.retune-v<N>`` in the registry's storage tunes the champion's spec on
   the tuning part with ``monitor.retune_trials`` trials, warm-started: the configurations of
   :func:`warm_start_configs` (the champion's own trial and its study's Pareto set) are
   enqueued first, each with user attr ``warm_start`` naming its source.
3. The selected trial is refitted, profiled and registered as a new version (a challenger).
4. Challenger and champion are scored on the same held-out part. The challenger is promoted
   only when it is better on the monitored metric by at least ``monitor.margin``, better with
   confidence (the paired bootstrap interval of the gain at ``1 - monitor.alpha`` lies above
   0, as a live challenger must be), and meets the spec's constraints (quality metrics from
   the held-out part, serving costs as measured by its trial); otherwise the champion stays
   and the reasons are recorded.

Every outcome is a ``retune`` event in the registry.

A re-tuning that was stopped (Ctrl-C, SIGTERM, a crash) is resumed by the next one on the same
recent data against the same champion: its study records what it re-tunes (``tuneops:retune``:
the champion's version and the fingerprints of the recent data and of its tuning part), and
while no ``retune`` event names it, :func:`retune` continues it under the same version number
(its finished trials kept, the ones it abandoned run again) instead of starting another. One
process runs a re-tuning at a time: before it reads or writes anything else, a run claims the
re-tuning (its champion and data fingerprints, :func:`retune_work`) with an atomic claim in the
registry's storage that its heartbeat keeps alive (:class:`tuneops.claims.Claim`), and a second
run of the same re-tuning while that process lives, even one started at the same moment, is
refused (:class:`~tuneops.errors.RunInProgress`, naming it) rather than run beside it, which
would register and judge a challenger twice.

Once its ``retune`` event is recorded, a re-tuning is decided: the event and the promotion it
decides are written as one step for a stop (SIGINT/SIGTERM take effect after both), and the
next re-tuning of the same recent data (against the champion it was judged against, or the
challenger it promoted) finds the recorded outcome and returns it, finishing a promotion a
crash left undone, instead of tuning the same rows again under a new version
(:func:`recorded_retune`).

A challenger promoted after a change was fitted on the few rows that showed the change (140 of
one 200-row batch by default). :func:`refresh` refits the champion's own configuration on the
labelled rows gathered since (``monitor.refresh_rows`` at most) and promotes the refit only when
it scores at least as well as the champion on rows neither was fitted on: no search, one fit.
Every outcome is a ``refresh`` event, which records the rows it was fitted and judged on; a
refresh of the same rows against the same champion (or the refit it promoted) finds that
outcome instead of refitting them again (:func:`recorded_refresh`). As a re-tuning, one process
runs a refresh of given rows against a given champion at a time (a claim on
:func:`refresh_work`), a second one, even started at the same moment, is refused rather than
registering a second refit; and a refresh stopped after it registered its refit and before its
event judges that refit when run again (:func:`unfinished_refresh`).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from tuneops import _optuna, runner, tuning
from tuneops.claims import Claim
from tuneops.data import fingerprint, load_dataset
from tuneops.errors import DataError, NoFeasibleTrial, RunInProgress, UsageError
from tuneops.heartbeat import GRACE_S
from tuneops.knowledge.warm_start import queue as queue_warm_start
from tuneops.knowledge.warm_start import queue_the_rest
from tuneops.measure import score
from tuneops.metrics import plain
from tuneops.ops.monitor import (
    PERFORMANCE_METRICS,
    MonitorConfig,
    check_batch,
    check_labels,
    dropped_columns,
    metric_value,
    paired_gain,
    read_batch,
    validate_batch,
)
from tuneops.ops.registry import Registry, register_trial, saved_artifact
from tuneops.spec import load_stored_spec
from tuneops.storage import get_storage, resolve_url
from tuneops.tuning import load_study, reselect

__all__ = [
    "RetuneOutcome",
    "RetuneInterrupted",
    "RETUNE_ATTR",
    "retune_work",
    "unfinished_retune",
    "recorded_retune",
    "recorded_refresh",
    "refresh_work",
    "unfinished_refresh",
    "retune",
    "refresh",
    "refresh_obstacle",
    "monitor_batch",
    "performance_dropped",
    "warm_start_configs",
    "WARM_START_SOURCES",
    "compare",
]


@dataclass
class RetuneOutcome:
    """What a re-tuning decided, with the scores on the shared held-out data."""

    decision: str  # "promote" | "keep"
    reasons: list[str]
    champion: int
    challenger: int | None
    study: str
    metric: str
    champion_score: float | None = None
    challenger_score: float | None = None
    holdout_rows: int = 0
    warm_start: list[dict[str, Any]] = field(default_factory=list)
    method: str = "retune"  # or "refresh": the champion's configuration refitted, no search
    rows: int | None = None  # rows the challenger was fitted on
    gain_interval: list[float] | None = None  # paired bootstrap interval of the gain

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: User attribute of a re-tuning study: what it re-tunes (``champion``: the version it tries to
#: beat; ``data``, ``tuning_data``: fingerprints of the recent data and of its tuning part;
#: ``version``: the number its challenger gets). A stopped re-tuning is resumed by it.
RETUNE_ATTR = "tuneops:retune"


def retune_work(model: str, mark: Mapping[str, Any]) -> str:
    """What a run of a re-tuning claims (:class:`tuneops.claims.Claim`): the re-tuning of
    ``model`` that ``mark`` describes (:data:`RETUNE_ATTR`: the champion and the fingerprints
    of the recent data and of its tuning part; its version is decided under the claim)."""
    key = {k: mark[k] for k in ("champion", "data", "tuning_data")}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return f"{_study_base(model)}.retune-{digest}"


def refresh_work(model: str, champion: int, refreshed: Mapping[str, Any]) -> str:
    """What a run of a refresh claims (:class:`tuneops.claims.Claim`): the refit of
    ``model``'s ``champion`` on the rows ``refreshed`` names (the fingerprints of the rows it is
    fitted and judged on, and the seed of the refit, as its ``refresh`` event records them)."""
    key = {"champion": champion, "refreshed": dict(refreshed)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return f"{_study_base(model)}.refresh-{digest}"


class RetuneInterrupted(runner.Interrupted):
    """A re-tuning stopped by SIGINT or SIGTERM, with what it kept (for the message that says
    how to resume it).

    ``study``: the re-tuning study (None: stopped before it was created, nothing kept; or a
    refresh, which has none); ``version``: the version number held for its challenger;
    ``n_finished``: its finished trials; ``registered``: its challenger (a refresh's refit) was
    registered but not yet compared with the champion;
    ``outcome``: the stop came after the re-tuning was decided: its ``retune`` event (and the
    promotion it decided) are recorded, and this is the outcome; None before that.
    """

    def __init__(
        self,
        signum: int,
        *,
        study: str | None,
        version: int | None,
        n_finished: int = 0,
        registered: bool = False,
        outcome: RetuneOutcome | None = None,
    ) -> None:
        super().__init__(signum)
        self.study, self.version = study, version
        self.n_finished, self.registered = n_finished, registered
        self.outcome = outcome


def unfinished_retune(
    registry: Registry, champion: int, data: str, tuning_data: str
) -> tuple[int, str] | None:
    """``(version, study)`` of a stopped re-tuning of ``registry``'s model to resume: one whose
    study records this ``champion`` and these data fingerprints (:data:`RETUNE_ATTR`), that no
    ``retune`` event names (it never finished) and whose version is unregistered or its own
    challenger; the newest of them, or None."""
    pattern = re.compile(re.escape(_study_base(registry.name)) + r"\.retune-v(\d+)$")
    finished = {e.get("study") for e in registry.events("retune")}
    versions = {v["version"]: v for v in registry.versions()}
    found: list[tuple[int, str]] = []
    summaries = optuna.get_all_study_summaries(
        get_storage(registry.storage_url), include_best_trial=False
    )
    for summary in summaries:
        match = pattern.match(summary.study_name)
        mark = summary.user_attrs.get(RETUNE_ATTR) or {}
        if match is None or summary.study_name in finished:
            continue
        number = int(match.group(1))
        if mark != {
            "champion": champion,
            "data": data,
            "tuning_data": tuning_data,
            "version": number,
        }:
            continue
        record = versions.get(number)
        if record is None or (record.get("source") or {}).get("study") == summary.study_name:
            found.append((number, summary.study_name))
    return max(found) if found else None


def recorded_retune(
    registry: Registry, champion: int, data: str, tuning_data: str
) -> dict[str, Any] | None:
    """The newest ``retune`` event of a re-tuning of these recent data (its study's
    :data:`RETUNE_ATTR` records these fingerprints) judged against ``champion``, or that
    promoted ``champion``; None when there is none. A run stopped after recording it (its
    outcome never printed) is thereby not tuned again by the same command."""
    events = registry.events("retune")
    if not events:
        return None
    summaries = optuna.get_all_study_summaries(
        get_storage(registry.storage_url), include_best_trial=False
    )
    marks = {s.study_name: s.user_attrs.get(RETUNE_ATTR) or {} for s in summaries}
    for event in reversed(events):
        mark = marks.get(event.get("study")) or {}
        if (mark.get("data"), mark.get("tuning_data")) != (data, tuning_data):
            continue
        if mark.get("champion") != event.get("champion"):
            continue
        if _about(event, champion):
            return event
    return None


def _about(event: Mapping[str, Any], champion: int) -> bool:
    """A ``retune`` or ``refresh`` event judged against ``champion``, or that promoted it."""
    promoted = event.get("decision") == "promote" and event.get("challenger") == champion
    return event.get("champion") == champion or promoted


def recorded_refresh(
    registry: Registry, champion: int, refreshed: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The newest ``refresh`` event of these rows (``refreshed``: the fingerprints of the rows
    the champion was refitted on and of the held-out rows, and the refit's seed, as
    :func:`refresh` records them) judged against ``champion``, or that promoted ``champion``;
    None when there is none. A refresh stopped after recording it (its outcome never printed)
    is thereby not refitted again by the same command."""
    for event in reversed(registry.events("refresh")):
        if event.get("refreshed") == refreshed and _about(event, champion):
            return event
    return None


def unfinished_refresh(
    registry: Registry, champion: int, refreshed: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The refit an earlier refresh of these rows with the same seed (``refreshed``, as
    :func:`refresh` records them) against ``champion`` registered and never judged (stopped
    before its ``refresh`` event): no event names it, it never served, its artifact is intact;
    the newest, or None. A rerun judges it instead of registering the same refit again."""
    named = {e.get("challenger") for e in registry.events("refresh")}
    been_champion = {registry.champion(), *registry.champion_history()}
    for record in reversed(registry.versions()):
        source, number = record.get("source") or {}, record["version"]
        if (
            source.get("kind") != "refresh"
            or source.get("champion") != champion
            or source.get("refreshed") != dict(refreshed)
            or number in named
            or number in been_champion
        ):
            continue
        if registry.intact(number):  # the artifact is still the one registered
            return record
    return None


def _recorded_outcome(registry: Registry, event: Mapping[str, Any]) -> RetuneOutcome:
    """The outcome ``event`` recorded, its promotion done if the run that decided it stopped
    before (a crash between the two writes), with a reason saying it was found, not re-tuned
    (or, for a refresh, not refitted)."""
    names = set(RetuneOutcome.__dataclass_fields__)
    outcome = RetuneOutcome(**{k: v for k, v in event.items() if k in names})
    outcome.reasons = list(outcome.reasons)
    challenger = outcome.challenger
    if outcome.decision == "promote" and challenger is not None:
        events = registry.events()
        later = events[next((i for i, e in enumerate(events) if e == event), 0) :]
        if not any(e["kind"] == "promote" and e.get("version") == challenger for e in later):
            registry.promote(challenger, outcome.reasons[0])
    if outcome.method == "refresh":
        outcome.reasons.append(
            f"recorded at {event.get('time')} by an earlier refresh of v{outcome.champion} on "
            "the same rows; not refitted again: another seed refits them anew"
        )
    else:
        outcome.reasons.append(
            f"recorded at {event.get('time')} by an earlier run on the same rows (re-tuning "
            f"study {outcome.study}); not re-tuned again: another seed re-tunes them anew"
        )
    return outcome


# -- warm start ---------------------------------------------------------------------------------
def _champion_configs(registry: Registry, champion: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The champion's trial params, then its source study's feasible Pareto set."""

    configs = [dict(champion["trial_params"])]
    try:
        study = load_study(champion["source"]["study"], registry.storage_url)
        front = reselect(study).front
    except (KeyError, NoFeasibleTrial, ValueError):
        front = ()
    configs += [dict(c.params) for c in front]
    return configs


# Sources of warm-start configurations, tried in order: name -> fn(registry, champion record).
# The knowledge base (tuneops.knowledge) adds its recommendations for the recent data here, as
# one more entry, when it is available.
WARM_START_SOURCES: dict[str, Callable[[Registry, Mapping[str, Any]], list[dict[str, Any]]]] = {
    "champion": _champion_configs,
}


def warm_start_configs(
    registry: Registry, champion: Mapping[str, Any], limit: int
) -> list[tuple[str, dict[str, Any]]]:
    """Distinct configurations to evaluate first, ``(source, params)``, at most ``limit``."""
    seen: list[dict[str, Any]] = []
    out: list[tuple[str, dict[str, Any]]] = []
    for source, fn in WARM_START_SOURCES.items():
        for params in fn(registry, champion):
            if params not in seen and len(out) < limit:
                seen.append(params)
                out.append((source, params))
    return out


# -- comparison ---------------------------------------------------------------------------------
def compare(
    metric: str,
    champion_score: float,
    challenger_score: float,
    margin: float,
    violations: Mapping[str, float],
    interval: tuple[float, float] | None = None,
    confidence: float = 0.95,
) -> tuple[str, list[str]]:
    """Promote when the challenger is better by ``margin`` and meets every constraint (pure);
    with ``interval`` (the gain's ``confidence`` interval, :func:`paired_gain`), also only when
    it is better with that confidence (the interval's lower end above 0)."""
    direction = PERFORMANCE_METRICS[metric].direction
    gain = (
        challenger_score - champion_score
        if direction == "maximize"
        else champion_score - challenger_score
    )
    text = (
        f"{metric} on held-out recent data: challenger {challenger_score:.4g} vs champion "
        f"{champion_score:.4g} (gain {gain:+.4g}, margin {margin:g})"
    )
    missed = [
        f"challenger misses constraint '{c}' by {v:.4g}" for c, v in violations.items() if v > 0
    ]
    if interval is not None:
        text += f", {confidence:.0%} interval [{interval[0]:+.4g}, {interval[1]:+.4g}]"
    if gain < margin:
        # with no margin (a refresh, or monitor.margin: 0) the rule is "at least as good", and
        # a challenger that fails it is worse, not short of a margin
        short = "not better by the margin" if margin > 0 else "worse than the champion"
        return "keep", [f"{text}: {short}; the champion stays"] + missed
    if interval is not None and interval[0] <= 0:
        return "keep", [
            f"{text}: better by the margin, but not with {confidence:.0%} confidence; the "
            "champion stays"
        ] + missed
    if missed:
        return "keep", [f"{text}: better, but the champion stays"] + missed
    better = "better by the margin" if margin > 0 else "at least as good"
    if interval is not None:
        better += f" with {confidence:.0%} confidence"
    return "promote", [f"{text}: {better} and meets the constraints"]


def _split(
    frame: pd.DataFrame, target: str, task: str, share: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``frame`` split into a part to fit and a held-out ``share`` (stratified by class when
    every class has two rows)."""
    from sklearn.model_selection import train_test_split

    stratify = (
        frame[target]
        if task == "classification" and frame[target].value_counts().min() >= 2
        else None
    )
    fit_part, holdout = train_test_split(
        frame, test_size=share, random_state=seed, stratify=stratify
    )
    return fit_part, holdout


def missing_classes(labels: pd.Series, classes: Any) -> list[Any]:
    """The champion's ``classes`` (None: a regressor) of which ``labels`` hold no row."""
    if classes is None:
        return []
    seen = set(pd.unique(labels.dropna()))
    return [c for c in classes if c not in seen]


def _lacking(missing: Sequence[Any], classes: Any, where: str) -> str:
    """Why a model fitted on rows that lack ``missing`` classes is not fitted (the words)."""
    return (
        f"{where} holds no row of class(es) {', '.join(repr(plain(c)) for c in missing)} of the "
        f"champion's {len(classes)}: a model fitted on it could never predict them, and once "
        "promoted it would refuse every later batch that holds them"
    )


def retune_folds(
    champion: Mapping[str, Any],
    frame: pd.DataFrame,
    config: MonitorConfig,
    seed: int,
    classes: Any = None,
) -> tuple[int, str | None]:
    """The cross-validation folds a re-tuning of labelled ``frame`` uses, and why it cannot run
    (None when it can).

    ``classes``: the champion's (:meth:`Registry.classes`); a frame without a row of one of
    them cannot be re-tuned (a challenger promoted without a class refused every later batch
    holding it: a texture stream stopped re-tuning for good).

    The champion's ``search.cv_folds``, fewer when the tuning part (what :func:`_split` leaves
    after the ``holdout`` share) holds a class with fewer rows than that: stratified folds need
    one row of each class per fold, and a rare class of a multiclass target in a few hundred
    recent rows is common (a yeast stream skipped every re-tuning). It cannot run below 2 folds.
    Checked before anything is written: the search would otherwise fail after the re-tuning
    study was created and a version number taken."""
    target, task = champion["target"], champion["task"]
    labelled = frame[frame[target].notna()].reset_index(drop=True)
    tune_part, _ = _split(labelled, target, task, config.holdout, seed)
    n_folds = load_stored_spec(champion["spec"], _stored_by(champion)).cv_folds
    where = (
        f"the tuning part of the recent data ({len(tune_part)} of its {len(labelled)} labelled "
        f"rows; monitor.holdout {config.holdout:g} is held out to judge)"
    )
    if len(tune_part) < n_folds:
        return (
            n_folds,
            f"{where} has fewer rows than the champion's {n_folds} cross-validation folds",
        )
    missing = missing_classes(labelled[target], classes) if task == "classification" else []
    if missing:
        return n_folds, _lacking(missing, classes, f"the recent data ({len(labelled)} rows)")
    if task == "classification":
        counts = tune_part[target].value_counts()
        counts = counts[counts > 0]
        rarest = int(counts.min())
        if rarest < 2:
            return n_folds, (
                f"class {plain(counts.idxmin())!r} has {rarest} row in {where}, and stratified "
                "cross-validation needs at least 2 of each class (one per fold)"
            )
        return min(n_folds, rarest), None
    return n_folds, None


def fold_obstacle(
    champion: Mapping[str, Any],
    frame: pd.DataFrame,
    config: MonitorConfig,
    seed: int,
    classes: Any = None,
) -> str | None:
    """Why labelled ``frame`` cannot be re-tuned (:func:`retune_folds`), or None."""
    return retune_folds(champion, frame, config, seed, classes)[1]


def _study_base(model: str) -> str:
    return (re.sub(r"[^A-Za-z0-9_.\-]", "_", model).lstrip("_.-") or "model")[:100]


def _study_name(model: str, version: int) -> str:
    return f"{_study_base(model)}.retune-v{version}"


def retune(
    registry: Registry,
    recent: pd.DataFrame,
    *,
    config: MonitorConfig | None = None,
    n_trials: int | None = None,
    seed: int = 0,
    trigger: str | None = None,
    out_dir: str | Path = "tuneops-out",
) -> RetuneOutcome:
    """Tune a challenger on ``recent`` (features and labels), compare, promote or keep.

    Args:
        registry: the model's registry; its champion is the starting point.
        recent: recent labelled data with the champion's feature columns and label column.
        config: thresholds (default: the champion spec's ``monitor`` section).
        n_trials: trials of the re-tuning study (default ``config.retune_trials``).
        trigger: why this re-tuning runs (recorded with the event).
        out_dir: where the re-tuning study's outputs go (``OUT/<model>.retune-v<N>``).

    Raises:
        DataError: ``recent`` lacks columns or labels, or is too small.
        IntegrityError: the champion's artifact changed since it was registered (checked
            first; nothing is tuned or registered). UsageError: it is missing on this machine.
    """
    champion_version = registry.require_champion()
    # A champion whose artifact changed cannot be compared with: refuse before anything is
    # tuned or registered (no orphan challenger study or version).
    champion = registry.verify(champion_version)
    config = config or registry.config(champion)
    target, task = champion["target"], champion["task"]
    kinds, categories = registry.categories(champion_version)
    X, y = validate_batch(
        recent,
        features=champion["features"],
        categorical=champion["categorical"],
        target=target,
        min_rows=max(config.min_rows, 20),
        require_labels=True,
        what="recent data",
        ignored=dropped_columns(champion),
        kinds=kinds,
        categories=categories,
    )
    assert y is not None  # require_labels=True above
    classes = registry.classes(champion_version)
    check_labels(y, classes, what="recent data", strict=True)
    frame = X.assign(**{target: y.to_numpy()})[y.notna().to_numpy()].reset_index(drop=True)
    n_folds, obstacle = retune_folds(champion, frame, config, seed, classes)
    if obstacle is not None:  # before a version number is taken or a study created
        raise DataError(
            f"recent data: {obstacle}. Re-tune on more labelled rows (more batches, or more "
            "rows of the rare class); nothing was tuned or registered."
        )
    tune_part, holdout = _split(frame, target, task, config.holdout, seed)
    tune_part = tune_part.reset_index(drop=True)
    dataset = load_dataset(
        tune_part, target=target, task=task, name=f"recent data of {registry.name}",
        advice=_KEEP_COLUMNS,
    )
    data_fp = fingerprint(frame.drop(columns=[target]), frame[target])
    mark = {"champion": champion_version, "data": data_fp, "tuning_data": dataset.fingerprint}
    run = _Run(registry, champion_version, retune_work(registry.name, mark))
    number: int | None = None
    study: optuna.Study | None = None
    outcome: RetuneOutcome | None = None
    decided = False
    try:
        run.claim()  # another process runs this re-tuning: refused before anything is written
        with run.beating():  # released however this ends
            # Decided already (a run stopped after it recorded its outcome): that outcome, not
            # the same rows tuned again under a new version.
            recorded = recorded_retune(registry, champion_version, data_fp, dataset.fingerprint)
            if recorded is not None:
                return _recorded_outcome(registry, recorded)
            # A re-tuning of the same data against the same champion that was stopped goes on
            # where it stopped, under the version number it holds (not a new study, a new
            # number, its trials lost).
            resumed = unfinished_retune(registry, champion_version, data_fp, dataset.fingerprint)
            # the number names the re-tuning study; the challenger gets it
            number = resumed[0] if resumed is not None else registry.reserve_version()
            name = _study_name(registry.name, number)
            run.names(name)
            spec = load_stored_spec(
                recent_spec(champion),
                _stored_by(champion),
                study=name,
                n_trials=n_trials or config.retune_trials,
                n_workers=1,
                storage=resolve_url(registry.storage_url),
                seed=seed,
                cv_folds=n_folds,
                output_dir=str(Path(out_dir) / name),
            )
            fewer = load_stored_spec(champion["spec"], _stored_by(champion)).cv_folds
            folds_note = (
                f"re-tuned on {n_folds} cross-validation folds, not the champion's {fewer}: a "
                "class of the recent data has that few rows in its tuning part"
                if n_folds < fewer
                else None
            )
            metric = champion["profile"]["metric"]
            configs = warm_start_configs(
                registry, champion, limit=max(1, (spec.n_trials or 2) // 2)
            )
            outcome = RetuneOutcome(
                "keep",
                [],
                champion_version,
                None,
                spec.study,
                metric,
                holdout_rows=len(holdout),
                warm_start=[{"source": s, "params": p} for s, p in configs],
                rows=len(tune_part),
            )
            study = _open_warm(spec, dataset, configs, {**mark, "version": number})
            # the rows loaded once, under their own name: loaded again from the frame, they
            # were named after the champion's source (a warning of a constant column came twice,
            # the second naming 'pmlb:...', which the re-tuning never read)
            result = tuning.run(spec, dataset=dataset)
            if result.choice is None:
                # the message is a sentence of its own ("... --constraint ...`."): no ".;"
                reason = (result.message or "no trial was selected").rstrip(".")
                outcome.reasons = [f"no challenger: {reason}; the champion stays"]
            else:
                run.check(name)  # taken over while this run was stalled: it registers, not this
                challenger = _challenger(registry, number, result, dataset, spec, champion, config)
                outcome.challenger = challenger["version"]
                _judge(outcome, registry, champion, challenger, holdout, spec, config, seed)
            if folds_note:
                outcome.reasons.append(folds_note)
            # The decision and the promotion it decides: one step for a stop, which takes
            # effect after both (a SIGTERM between them left a recorded "promote" undone, and
            # the message said the challenger was not compared yet).
            with registry.changing(), runner.signals_held():
                _keep_if_champion_changed(registry, outcome)
                registry.record("retune", trigger=trigger, **outcome.to_dict())
                decided = True
                if outcome.decision == "promote" and outcome.challenger is not None:
                    registry.promote(outcome.challenger, outcome.reasons[0])
    except KeyboardInterrupt as exc:
        if decided and outcome is not None:
            stop = runner.Interrupted.of(exc)
            raise RetuneInterrupted(
                stop.signum, study=outcome.study, version=number, outcome=outcome
            ) from None
        raise _interrupted(exc, registry, study, number) from None
    assert outcome is not None  # set before the event is recorded
    return outcome


class _Run:
    """This process's hold on a re-tuning (:func:`retune_work`) or a refresh
    (:func:`refresh_work`): an atomic claim in the registry's storage
    (:class:`tuneops.claims.Claim`), taken before the run reads or writes anything of the work,
    refreshed every heartbeat interval while it runs, and released when it ends, however it
    ends."""

    def __init__(
        self, registry: Registry, champion: int, work: str, *, refresh: bool = False
    ) -> None:
        self.model, self.champion, self.refresh = registry.name, champion, refresh
        self._claim = Claim(_optuna.storage_of(registry.study), work, runner.worker_identity())

    def claim(self) -> None:
        """Take the work for this run.

        Raises:
            RunInProgress: a process that lives runs it (claimed it first, even at the same
                moment); nothing was written.
        """
        holder = self._claim.acquire()
        if holder is not None:
            raise RunInProgress(self._refusal(holder))

    def names(self, study: str) -> None:
        """Record the re-tuning study this run runs, for the message of a run it refuses."""
        self._claim.update(study=study)

    def check(self, study: str | None = None) -> None:
        """Raise :class:`RunInProgress` when another run has taken the work over (this one
        was silent for longer than the grace period, and the other found it dead)."""
        holder = self._claim.check()
        if holder is not None:
            what, model = (
                (f"the refresh of champion v{self.champion}", "refit")
                if self.refresh
                else (f"re-tuning study {study}", "challenger")
            )
            raise RunInProgress(
                f"{what} was taken over by {holder.get('id', 'another process')} while this "
                f"run was silent for more than {GRACE_S:g} s (no heartbeat reached the "
                f"storage): that run registers and judges its {model}; this one stops "
                "without registering anything."
            )

    def beating(self) -> contextlib.AbstractContextManager[None]:
        return self._claim.beating()

    def _refusal(self, holder: Mapping[str, Any]) -> str:
        who = str(holder.get("id") or "another process")
        since = holder.get("since")
        when = (
            " since "
            + datetime.datetime.fromtimestamp(since).isoformat(sep=" ", timespec="seconds")
            if isinstance(since, int | float)
            else ""
        )
        seen = holder.get("seen")
        ago = (
            f", last heard from {max(0.0, time.time() - seen):.0f} s ago"
            if isinstance(seen, int | float)
            else ""
        )
        if self.refresh:
            return (
                f"a refresh of these rows against champion v{self.champion} of "
                f"{self.model!r} is being run by {who}{when}{ago}; expected no other run of "
                "it, as two would register and judge its refit twice. Wait for that run to "
                "end (this command then finds its outcome), or stop it and run this command "
                "again to finish it. Nothing was refitted or registered."
            )
        study = holder.get("study")
        what = f"these data against champion v{self.champion} of {self.model!r}"
        what = f"re-tuning study {study} ({what})" if study else f"a re-tuning of {what}"
        follow = f" (`tuneops show {study}` follows it)" if study else ""
        return (
            f"{what} is being run by {who}{when}{ago}; expected no other run of it, as two "
            f"would register and judge its challenger twice. Wait for that run to end{follow}, "
            "or stop it and run this command again to resume what it kept. Nothing was tuned "
            "or registered."
        )


# -- refresh: the champion's configuration refitted on the rows since the change ------------------
#: Champions that a refresh may refit: fitted on a window of recent data (a re-tuning's or an
#: earlier refresh's), not on the study's full training data.
REFRESHABLE = ("retune", "refresh")


def refresh_obstacle(
    champion: Mapping[str, Any], window_rows: int, config: MonitorConfig
) -> str | None:
    """Why a refresh of ``champion`` on a window of ``window_rows`` rows would add nothing, or
    None when it can: refresh is on, the champion was fitted on a recent window (a re-tuning's
    or a refresh's), and the window holds more rows than it was fitted on (pure)."""
    version = champion.get("version")
    kind = (champion.get("source") or {}).get("kind")
    fitted = int((champion.get("data") or {}).get("rows") or 0)
    if not config.refresh_rows:
        return "refresh is off (monitor.refresh_rows: 0)"
    if kind not in REFRESHABLE:
        return (
            f"champion v{version} was not fitted on a recent window (source {kind!r}); only a "
            "re-tuned or refreshed champion is refreshed"
        )
    if min(window_rows, config.refresh_rows) <= fitted:
        return (
            f"champion v{version} was fitted on {fitted} rows; the window holds {window_rows} "
            f"(monitor.refresh_rows {config.refresh_rows})"
        )
    return None


def _labelled(
    champion: Mapping[str, Any],
    frame: pd.DataFrame,
    what: str,
    min_rows: int,
    classes: Any = None,
    schema: tuple[Mapping[str, str], Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """``frame``'s feature and label columns, checked against the champion, rows with a label.
    ``schema``: the champion's categorical kinds and categories (:meth:`Registry.categories`).

    Raises:
        DataError: columns missing or of the wrong type, no label column, too few rows.
    """
    target = champion["target"]
    X, y = validate_batch(
        frame,
        features=champion["features"],
        categorical=champion["categorical"],
        target=target,
        min_rows=min_rows,
        require_labels=True,
        what=what,
        ignored=dropped_columns(champion),
        kinds=schema[0] if schema else None,
        categories=schema[1] if schema else None,
    )
    assert y is not None  # require_labels=True above
    check_labels(y, classes, what=what, strict=True)
    return X.assign(**{target: y.to_numpy()})[y.notna().to_numpy()].reset_index(drop=True)


def refresh(
    registry: Registry,
    window: pd.DataFrame,
    *,
    holdout: pd.DataFrame | None = None,
    config: MonitorConfig | None = None,
    seed: int = 0,
    trigger: str | None = None,
) -> RetuneOutcome:
    """Refit the champion's configuration on ``window``; promote it if it is at least as good.

    ``window``: labelled rows since the change, oldest first; the newest
    ``config.refresh_rows`` are used. ``holdout``: rows neither model was fitted on (the newest
    batch, in a stream); None keeps ``config.holdout`` of the window aside (stratified). The
    refit is registered as a version (source kind ``refresh``) and promoted when its metric on
    the held-out rows is not worse than the champion's and it meets the spec's constraints: the
    same configuration fitted on more rows of the same period, so a tie goes to the larger
    sample. Every outcome is a ``refresh`` event; a refresh of the same rows (same ``seed``)
    recorded already against this champion, or that promoted it, is returned as it was
    recorded (its promotion finished if a crash left it undone), not refitted again.

    Raises:
        DataError: the window or the held-out rows lack columns or labels, or are too small.
        IntegrityError: the champion's artifact changed since it was registered.
        UsageError: the champion has no source trial to refit (registered before sources were
            recorded).
    """
    champion_version = registry.require_champion()
    champion = registry.verify(champion_version)
    config = config or registry.config(champion)
    target, task = champion["target"], champion["task"]

    classes, schema = registry.classes(champion_version), registry.categories(champion_version)
    frame = _labelled(
        champion, window, "the refresh window", max(config.min_rows, 20), classes, schema
    )
    frame = frame.tail(config.refresh_rows).reset_index(drop=True)  # the newest rows
    if holdout is None:
        frame, holdout = _split(frame, target, task, config.holdout, seed)
    else:
        holdout = _labelled(
            champion, holdout, "the refresh's held-out rows", 1, classes, schema
        )
    fit_part = frame.reset_index(drop=True)
    missing = missing_classes(fit_part[target], classes) if task == "classification" else []
    if missing:  # before a version number is taken
        where = f"the refresh window's fitted part ({len(fit_part)} rows)"
        raise DataError(
            f"{_lacking(missing, classes, where)}. Refresh on a longer window holding every "
            "class; nothing was refitted or registered."
        )
    # What this refresh refits and judges on, and the seed of the refit (the estimator's
    # random_state; with the held-out rows given, as a stream's batch, the seed draws nothing
    # else): a refresh of these rows with this seed against the same champion recorded already
    # (stopped after its event) is that outcome, and its refit registered and never judged is
    # judged, not refitted. Another seed is another refit, never one of those.
    refreshed = {
        "data": fingerprint(fit_part.drop(columns=[target]), fit_part[target]),
        "holdout": fingerprint(holdout.drop(columns=[target]), holdout[target]),
        "seed": seed,
    }
    run = _Run(
        registry,
        champion_version,
        refresh_work(registry.name, champion_version, refreshed),
        refresh=True,
    )
    run.claim()  # another process refits these rows: refused before anything is written
    with run.beating():  # released however this ends
        recorded = recorded_refresh(registry, champion_version, refreshed)
        if recorded is not None:
            return _recorded_outcome(registry, recorded)
        return _refresh(
            registry, champion, fit_part, holdout, refreshed, config, seed, trigger, run
        )


def _refresh(
    registry: Registry,
    champion: Mapping[str, Any],
    fit_part: pd.DataFrame,
    holdout: pd.DataFrame,
    refreshed: Mapping[str, Any],
    config: MonitorConfig,
    seed: int,
    trigger: str | None,
    run: _Run,
) -> RetuneOutcome:
    """The refit of :func:`refresh`, under its claim: registered (or the one a stopped run of it
    registered), judged, recorded."""
    champion_version, target, task = champion["version"], champion["target"], champion["task"]
    source = champion.get("source") or {}
    if "study" not in source or "trial" not in source:
        raise UsageError(
            f"refresh: champion v{champion_version} of {registry.name!r} records no source study "
            "and trial to refit; re-tune it instead (`tuneops retune --data FILE`)."
        )
    spec = load_stored_spec(
        champion["spec"],
        _stored_by(champion),
        storage=resolve_url(registry.storage_url),
        seed=seed,
    )
    # A refresh of these rows stopped after it registered its refit and before its event: that
    # refit is judged, not another registered beside it (an orphan version).
    challenger = unfinished_refresh(registry, champion_version, refreshed)
    if challenger is None:
        dataset = load_dataset(
            fit_part, target=target, task=task, name=f"refresh window of {registry.name}",
            advice=_KEEP_COLUMNS,
        )
        study = load_study(source["study"], registry.storage_url)
        run.check()  # taken over while this run was stalled: it registers, not this one
        challenger = register_trial(
            registry,
            study,
            int(source["trial"]),
            dataset,
            spec,
            source={
                "kind": "refresh",
                "champion": champion_version,
                "rows": len(fit_part),
                "refreshed": dict(refreshed),  # what unfinished_refresh finds it by
            },
            artifact_dir=config.artifact_dir,
            # The version records the data it was fitted on, not the source study's.
            extra={"data": successor_data(dataset, champion)},
        )
    try:
        outcome = _judge_refit(registry, champion, challenger, fit_part, holdout, spec)
    except KeyboardInterrupt as exc:  # the refit is registered: a rerun judges it
        stop = runner.Interrupted.of(exc)
        raise RetuneInterrupted(
            stop.signum, study=None, version=challenger["version"], registered=True
        ) from None
    decided = False
    try:
        # the decision and its promotion: one step for a stop, and for another change of
        # champion (which waits for it)
        with registry.changing(), runner.signals_held():
            _keep_if_champion_changed(registry, outcome)
            registry.record("refresh", trigger=trigger, refreshed=refreshed, **outcome.to_dict())
            decided = True
            if outcome.decision == "promote":
                registry.promote(challenger["version"], outcome.reasons[0])
    except KeyboardInterrupt as exc:
        stop = runner.Interrupted.of(exc)
        raise RetuneInterrupted(
            stop.signum,
            study=None,
            version=challenger["version"],
            registered=not decided,
            outcome=outcome if decided else None,
        ) from None
    return outcome


def _judge_refit(
    registry: Registry,
    champion: Mapping[str, Any],
    challenger: Mapping[str, Any],
    fit_part: pd.DataFrame,
    holdout: pd.DataFrame,
    spec: Any,
) -> RetuneOutcome:
    """A refresh's outcome: the refit ``challenger`` and the champion scored on the same
    held-out rows; promoted when not worse and within the spec's constraints (:func:`compare`)."""
    champion_version, target = champion["version"], champion["target"]
    source = champion["source"]
    metric = champion["profile"]["metric"]
    pos_label = champion["profile"].get("pos_label")
    X_h, y_h = holdout.drop(columns=[target]), holdout[target].to_numpy()
    champion_model, _ = registry.load_model(champion_version)
    challenger_model, _ = registry.load_model(challenger["version"])
    champion_score = metric_value(metric, y_h, champion_model.predict(X_h), pos_label=pos_label)
    challenger_score = metric_value(metric, y_h, challenger_model.predict(X_h), pos_label=pos_label)
    outcome = RetuneOutcome(
        "keep",
        [],
        champion_version,
        challenger["version"],
        source["study"],
        metric,
        champion_score=champion_score,
        challenger_score=challenger_score,
        holdout_rows=len(holdout),
        method="refresh",
        rows=len(fit_part),
    )
    measured = {
        **challenger["metrics"],
        **score(challenger_model, X_h, holdout[target], spec.measured_metrics, pos_label=pos_label),
    }
    violations = {str(c): c.violation(measured) for c in spec.constraints if c.metric in measured}
    outcome.decision, outcome.reasons = compare(
        metric, champion_score, challenger_score, 0.0, violations
    )
    fitted = int((champion.get("data") or {}).get("rows") or 0)
    if outcome.decision == "promote" and challenger_score == champion_score:
        if len(fit_part) <= fitted:
            # A tie goes to the larger sample: by hand (`retune --refresh`) a champion fitted on
            # as many rows as the refit or more (a deployed one) is refreshed too, and a tie
            # promoted the refit fitted on fewer.
            outcome.decision = "keep"
            outcome.reasons[0] = outcome.reasons[0].replace(
                ": at least as good and meets the constraints",
                ": a tie, and the champion was fitted on as many rows or more; it stays",
            )
    outcome.reasons[0] = (
        f"refresh: v{champion_version}'s configuration refitted on {len(fit_part)} rows "
        f"since the change (v{champion_version}: {fitted}); " + outcome.reasons[0]
    )
    return outcome


def _keep_if_champion_changed(registry: Registry, outcome: RetuneOutcome) -> None:
    """Turn a ``promote`` decision into ``keep`` when the champion it was judged against is no
    longer the champion (another process changed it while this run tuned or refitted): its
    challenger never met the new one. Called holding the registry's claim on changes."""
    current = registry.champion()
    if outcome.decision != "promote" or current == outcome.champion:
        return
    what = "re-tuning" if outcome.method == "retune" else "refresh"
    outcome.decision = "keep"
    outcome.reasons.insert(
        0,
        f"not promoted: champion v{outcome.champion}, which challenger v{outcome.challenger} "
        f"beat, was replaced by v{current} (another process) during the {what}, and the "
        f"challenger was never compared with v{current}; `tuneops verify "
        f"{outcome.challenger}` judges it against v{current}, `tuneops registry promote "
        f"{outcome.challenger}` promotes it by hand",
    )


def _judge(
    outcome: RetuneOutcome,
    registry: Registry,
    champion: Mapping[str, Any],
    challenger: Mapping[str, Any],
    holdout: pd.DataFrame,
    spec: Any,
    config: MonitorConfig,
    seed: int,
) -> None:
    """Score champion and challenger on the same held-out rows; set ``outcome``'s scores, gain
    interval, decision and reasons (:func:`compare`)."""
    metric, target = outcome.metric, champion["target"]
    X_h, y_h = holdout.drop(columns=[target]), holdout[target]
    champion_model, _ = registry.load_model(champion["version"])
    challenger_model, _ = registry.load_model(challenger["version"])
    # One registry, one positive class: the champion's (recorded in its reference profile).
    pos_label = champion["profile"].get("pos_label")
    champion_pred, challenger_pred = champion_model.predict(X_h), challenger_model.predict(X_h)
    outcome.champion_score = metric_value(
        metric, y_h.to_numpy(), champion_pred, pos_label=pos_label
    )
    outcome.challenger_score = metric_value(
        metric, y_h.to_numpy(), challenger_pred, pos_label=pos_label
    )
    # Paired over the held-out rows: a margin of one row on 60 is not evidence of better.
    _, low, high = paired_gain(
        metric,
        y_h.to_numpy(),
        champion_pred,
        challenger_pred,
        alpha=config.alpha,
        seed=seed,
        pos_label=pos_label,
    )
    outcome.gain_interval = [low, high]
    holdout_quality = score(challenger_model, X_h, y_h, spec.measured_metrics, pos_label=pos_label)
    measured = {**challenger["metrics"], **holdout_quality}
    violations = {str(c): c.violation(measured) for c in spec.constraints if c.metric in measured}
    outcome.decision, outcome.reasons = compare(
        metric,
        outcome.champion_score,
        outcome.challenger_score,
        config.margin,
        violations,
        interval=(low, high),
        confidence=1 - config.alpha,
    )


def _challenger(
    registry: Registry,
    number: int,
    result: Any,
    dataset: Any,
    spec: Any,
    champion: Mapping[str, Any],
    config: MonitorConfig,
) -> dict[str, Any]:
    """The re-tuning's selected trial registered as version ``number``; a resumed re-tuning
    stopped after it registered its challenger takes that version as it is."""
    existing = {v["version"]: v for v in registry.versions()}.get(number)
    if existing is not None:  # unfinished_retune checked it is this study's
        return existing
    return register_trial(
        registry,
        result.study,
        result.choice.selected.number,
        dataset,
        spec,
        source={"kind": "retune", "champion": champion["version"]},
        artifact_dir=config.artifact_dir,
        version=number,
        # the model the re-tuning's run just fitted on the same rows: copied, not fitted again
        saved=saved_artifact(result.study, result.choice.selected.number, spec),
        extra={"data": successor_data(dataset, champion)},
    )


def _stored_by(champion: Mapping[str, Any]) -> str:
    """What stored the champion's spec, as :func:`tuneops.spec.load_stored_spec` names it."""
    source = champion.get("source") or {}
    study = f" (study {source['study']!r})" if "study" in source else ""
    return f"champion version {champion.get('version')}{study}"


#: What the warning of a column the recent rows hold constant (or empty) says: those rows hold
#: the champion's features, and a file without the column is refused ("missing feature
#: column(s)"), so "remove them from the data" sent the user into that refusal.
_KEEP_COLUMNS = (
    "The new version leaves them out and ignores them in later batches and requests; keep "
    "them in the files (they are the champion's features)."
)


def recent_spec(champion: Mapping[str, Any]) -> dict[str, Any]:
    """The champion's spec with its ``data`` section for the recent rows a re-tuning tunes on.

    Those rows are the champion's features, its dropped columns already left out, and code
    columns already categories: ``data.drop`` names columns they do not hold (the re-tuning
    of a spec that dropped an id was refused: "data.drop: ... received 'id', which is not
    one"), and ``categorical: declared`` reads a PMLB source's metadata, which rows given as
    a table have none of (refused as "not a PMLB source"). So neither is kept, and the
    champion's categorical features are named instead.
    """
    spec = dict(champion["spec"])
    data = {k: v for k, v in (spec.get("data") or {}).items() if k not in ("drop", "categorical")}
    codes = [str(c) for c in champion.get("categorical") or ()]
    if (spec.get("data") or {}).get("categorical") is not None and codes:
        data["categorical"] = codes
    spec["data"] = data
    return spec


def successor_data(dataset: Any, champion: Mapping[str, Any]) -> dict[str, Any]:
    """The data summary of a version fitted on ``dataset`` to succeed ``champion``.

    Its ``dropped`` columns are every column the champion took (its features and the columns
    its own data load dropped) that the new version does not: the recent rows come from the
    champion's source, so the columns its load dropped were left out of them before the
    re-tuning saw them, and a column constant in a few recent rows is dropped by their load.
    Recorded as the data's own, a batch or a served request that still holds them (as every
    one from that source does) was refused once the new version was champion (422 for every
    request of a client that sends whole rows).
    """
    kept = {str(c) for c in dataset.X.columns}
    taken = [*map(str, champion.get("features") or ()), *dropped_columns(champion)]
    summary = dict(dataset.summary())
    summary["dropped"] = list(dict.fromkeys(c for c in taken if c not in kept))
    return summary


def _interrupted(
    exc: KeyboardInterrupt, registry: Registry, study: optuna.Study | None, number: int | None
) -> RetuneInterrupted:
    """``exc`` as a :class:`RetuneInterrupted` saying what the stopped re-tuning kept."""
    stop = runner.Interrupted.of(exc)
    finished = 0
    if study is not None:
        states = [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
        finished = len(study.get_trials(deepcopy=False, states=states))
    registered = any(v["version"] == number for v in registry.versions())
    out = RetuneInterrupted(
        stop.signum,
        study=study.study_name if study is not None else None,
        version=number,
        n_finished=finished,
        registered=registered,
    )
    out.abandoned = list(stop.abandoned)
    return out


def _open_warm(
    spec: Any,
    dataset: Any,
    configs: Sequence[tuple[str, Mapping[str, Any]]],
    mark: Mapping[str, Any],
) -> optuna.Study:
    """Create the re-tuning study as ``tuning.run`` would, with the warm-start trials queued
    first and ``mark`` (:data:`RETUNE_ATTR`: what it re-tunes) recorded; returns it.

    ``tuning.run`` then resumes it: the queued trials count against ``n_trials`` and run first.
    """

    study = tuning.open_study(
        spec.study,
        get_storage(spec.storage),
        spec.directions,
        attrs={
            tuning.SPEC_ATTR: spec.to_dict(),
            tuning.OBJECTIVES_ATTR: [o.to_dict() for o in spec.objectives],
            tuning.DATA_ATTR: dataset.summary(),
            RETUNE_ATTR: dict(mark),
        },
        identity=spec.to_dict(),
    )
    trials = study.get_trials(deepcopy=False)
    if trials:  # resumed: the warm start was queued when the study was created, unless the
        queue_the_rest(study, trials)  # re-tuning stopped before all of it was
    else:
        queue_warm_start(study, [(params, source) for source, params in configs])
    return study


def performance_dropped(assessment: Any, config: MonitorConfig) -> bool:
    """The batch's labels show, with confidence, a drop beyond ``max_metric_drop``."""
    performance = assessment.performance
    return performance is not None and performance["confident_drop"] > config.max_metric_drop


# -- monitor, then re-tune when it says so --------------------------------------------------------
def monitor_batch(
    registry: Registry,
    batch: pd.DataFrame | str | Path,
    *,
    auto_retune: bool = False,
    recent: pd.DataFrame | Callable[[Any], pd.DataFrame] | None = None,
    window: pd.DataFrame | None = None,
    config: MonitorConfig | None = None,
    source: str | None = None,
    seed: int = 0,
    out_dir: str | Path = "tuneops-out",
    missing_as: str = "an empty cell",
) -> tuple[Any, RetuneOutcome | None, str | None]:
    """Check a batch; with ``auto_retune``, re-tune when the decision is ``retune``.

    Re-tuning uses ``recent`` (a frame, or a function of the assessment that returns one;
    default: the batch itself, which then needs labels) and is
    skipped for ``config.cooldown`` batches after the previous re-tuning, so a drift the
    champion survives does not re-tune on every batch - unless the labels show the champion's
    metric dropped (:func:`performance_dropped`): a model that got worse is never left alone.
    With ``auto_retune`` and a ``window`` (labelled rows since the champion's change, without
    this batch), a labelled batch that re-tunes nothing and shows no confident drop refreshes a
    champion fitted on fewer rows (:func:`refresh_obstacle`, :func:`refresh`; the batch is the
    held-out part). Returns ``(assessment, outcome or None, note or None)``; the note says why
    a wanted re-tuning or refresh did not run. ``source`` names the batch in messages and
    ``missing_as`` is how it writes a missing value (``null`` for rows of a prediction log).

    Raises:
        DataError: the batch or the window is malformed (checked first: nothing is recorded).
    """

    frame = read_batch(batch) if isinstance(batch, (str, Path)) else batch
    label = source or (str(batch) if isinstance(batch, (str, Path)) else None)
    champion = registry.version(registry.require_champion())
    config = config or registry.config(champion)
    if auto_retune:
        # What a re-tuning or refresh would learn from is checked before anything is recorded.
        classes = registry.classes(champion["version"])
        if window is not None:
            window = _labelled(
                champion,
                window,
                "window (--window)",
                1,
                classes,
                registry.categories(champion["version"]),
            )
        if champion["target"] in frame.columns:
            check_labels(frame[champion["target"]], classes, what=label or "batch", strict=True)
    assessment = check_batch(registry, frame, config=config, source=label, missing_as=missing_as)
    if not auto_retune:
        return assessment, None, None
    wait = _cooldown(registry, assessment, config) if assessment.decision == "retune" else None
    if assessment.decision != "retune" or wait:
        # No re-tuning on this batch: a refresh may still add the rows gathered since the change
        # (not after a confident drop: the rows before it belong to another concept).
        if window is None or performance_dropped(assessment, config):
            return assessment, None, wait
        refreshed, why = _refresh_on(registry, frame, window, config, seed, label)
        return assessment, refreshed, "; ".join(n for n in (wait, why) if n) or None
    data = recent(assessment) if callable(recent) else recent if recent is not None else frame
    target = registry.version(registry.require_champion())["target"]
    if target not in data.columns or data[target].isna().all():
        return (
            assessment,
            None,
            (
                f"re-tuning skipped: the batch has no label column {target!r}; run `tuneops retune "
                "--data FILE` with labelled recent data"
            ),
        )
    obstacle = fold_obstacle(champion, data, config, seed, registry.classes(champion["version"]))
    if obstacle is not None:  # the batch is assessed and recorded; the search cannot run
        return (
            assessment,
            None,
            f"re-tuning skipped: {obstacle}; run `tuneops retune --data FILE` with more labelled "
            "rows",
        )
    outcome = retune(
        registry,
        data,
        config=config,
        seed=seed,
        trigger="; ".join(assessment.reasons[:3]),
        out_dir=out_dir,
    )
    return assessment, outcome, None


def _cooldown(registry: Registry, assessment: Any, config: MonitorConfig) -> str | None:
    """Why a wanted re-tuning waits (``monitor.cooldown`` batches since the last one, unless
    the labels show a confident drop), or None."""
    events = registry.events()
    last = max((i for i, e in enumerate(events) if e["kind"] == "retune"), default=None)
    if last is None or performance_dropped(assessment, config):
        return None
    since = sum(e["kind"] == "monitor" for e in events[last + 1 :])
    if since > config.cooldown:
        return None
    return (
        f"re-tuning skipped: the last one was {since} batch(es) ago, within monitor.cooldown "
        f"{config.cooldown}"
    )


def _refresh_on(
    registry: Registry,
    batch: pd.DataFrame,
    window: pd.DataFrame,
    config: MonitorConfig,
    seed: int,
    label: str | None,
) -> tuple[RetuneOutcome | None, str | None]:
    """Refresh the champion on ``window``, judged on ``batch``, when that can add data and the
    batch has labels: ``(outcome, None)``; else ``(None, why not)``."""
    champion = registry.version(registry.require_champion())
    target = champion["target"]
    if target not in batch.columns or batch[target].isna().all():
        return None, f"refresh skipped: the batch has no labels ({target!r}) to judge it on"
    obstacle = refresh_obstacle(champion, len(window), config)
    if obstacle is None and champion["task"] == "classification":
        classes = registry.classes(champion["version"])
        missing = missing_classes(window[target].tail(config.refresh_rows), classes)
        if missing:
            obstacle = _lacking(missing, classes, f"the window ({len(window)} rows)")
    if obstacle is not None:
        return None, f"refresh skipped: {obstacle}"
    outcome = refresh(
        registry,
        window,
        holdout=batch,
        config=config,
        seed=seed,
        trigger=f"ok batch {label}" if label else "ok batch",
    )
    return outcome, None
