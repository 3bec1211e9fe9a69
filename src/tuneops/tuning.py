"""The tuning job end to end: spec -> data -> study -> workers -> selection -> model -> results.

:func:`run` takes a spec; :func:`tune` takes your own Optuna-style objective and gives it the
same storage, budget, parallel workers, constraint-aware selection and outputs.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna

from tuneops import _optuna, _study, runner
from tuneops._files import check_output_dir
from tuneops._study import load_study, open_study
from tuneops.backends import get_backend
from tuneops.custom import RunResult, drive, sampler_seed, tune
from tuneops.data import Dataset, load_section
from tuneops.errors import NoFeasibleTrial, SpecError, TuneOpsError, UsageError, WriteError
from tuneops.export import METADATA_FILE, MODEL_FILE, save_model, write_json
from tuneops.families import FIDELITY_STEPS
from tuneops.heartbeat import INTERVAL_S
from tuneops.knowledge.adaptive import WarmStartSampler
from tuneops.knowledge.warm_start import parse_warm_start
from tuneops.knowledge.warm_start import plan as warm_start_plan
from tuneops.measure import model_size_kb
from tuneops.metrics import METRICS
from tuneops.objective import SpecObjective
from tuneops.pruning import make_pruner, record_pruner
from tuneops.results import study_results
from tuneops.samplers import (
    CurrentConstraints,
    FamilyGuard,
    FirstTrialSeeded,
    family_distributions,
    make_sampler,
)
from tuneops.selection import (
    Choice,
    constraint_record,
    constraints_within_noise,
    infeasible_trials,
    reselect,
    select_in_study,
)
from tuneops.spec import (
    Objective,
    Spec,
    for_task,
    load_spec,
    load_stored_spec,
)
from tuneops.storage import get_storage, storage_exists
from tuneops.strategy import StagedSampler, record_strategy, staged_pruner, verify_top

_log = logging.getLogger("tuneops")
_status = logging.getLogger("tuneops.status")  # progress lines the CLI prints

__all__ = [
    "run",
    "tune",
    "join",
    "RunResult",
    "open_study",
    "load_study",
    "study_spec",
    "reselect",
    "export_model",
    "missed_constraints",
    "constraints_within_noise_of",
]

SPEC_ATTR = _study.SPEC
OBJECTIVES_ATTR = _study.OBJECTIVES
DATA_ATTR = _study.DATA
CONSTRAINTS_ATTR = _study.CONSTRAINTS
SELECTION_ATTR = _study.SELECTION
SCORING_ATTR = _study.SCORING


# -- studies ------------------------------------------------------------------------------------
def study_objectives(study: optuna.Study) -> list[Objective]:
    """The study's objectives (as stored, else ``value``/``value_i`` with Optuna's directions)."""
    return [Objective(metric=o.metric, direction=o.direction) for o in _study.objectives(study)]


def study_spec(study: optuna.Study) -> Spec | None:
    """The spec a study was run with, if it was run from a spec; read as it was written, a
    setting this tuneops refuses in a new spec but an earlier one stored with the study
    included (:func:`tuneops.spec.load_stored_spec` warns once, naming it)."""
    raw = _study.spec_record(study)
    return load_stored_spec(raw, f"study {study.study_name!r}") if raw else None


# -- run a spec ---------------------------------------------------------------------------------
def run(
    spec: Spec | Mapping[str, Any] | str | Path,
    *,
    progress: bool = False,
    dataset: Any = None,
    address: str | None = None,
    **overrides: Any,
) -> RunResult:
    """Tune the spec: run its trials, select under its constraints, refit and save the model.

    Args:
        spec: a Spec, a dict, or the path of a YAML/TOML spec.
        progress: show a progress bar.
        dataset: a pandas DataFrame to use instead of ``data.source`` (target column from
            ``data.target``, default ``target``); ``data.source`` then only names it (a dict
            spec may leave it out: ``dataframe``). Or a :class:`tuneops.data.Dataset` already
            loaded from one (a re-tuning's recent rows), used as it is, under its own name.
        address: the Ray cluster to run on (``search.backend: ray``); None starts a local Ray.
        **overrides: spec fields to replace (``n_trials``, ``n_workers``, ``storage``, ``backend``,
        ...).

    Returns:
        a :class:`RunResult` with the study, the selection, and the output paths.

    Example::

        >>> result = run("examples/quickstart.yaml", n_trials=5)   # doctest: +SKIP
        >>> result.model_path                                        # doctest: +SKIP
        PosixPath('tuneops-out/quickstart/model.joblib')
    """

    if dataset is not None and isinstance(spec, Mapping):
        section = spec.get("data")
        if section is None or (isinstance(section, Mapping) and "source" not in section):
            spec = {**spec, "data": {**(section or {}), "source": "dataframe"}}
    try:
        spec = load_spec(spec, **overrides)
    except SpecError as refused:
        spec = _resumed_as_stored(spec, overrides, refused)
    backend = _backend_for(spec, address)
    data = dataset if isinstance(dataset, Dataset) else load_section(spec.data, dataset)
    spec = for_task(spec, data.task)  # no objectives written: r2 for a regression found now
    objective, sampler_factory, pruner_factory = _components(spec, data)
    warm_start = warm_start_plan(spec, objective.spaces, data.task)  # refuses before writing
    # refused now, not after hours of tuning; the message names where the directory came from
    named_by = "output_dir (--out)" if overrides.get("output_dir") else "the spec's output_dir"
    check_output_dir(_output_dir(spec), option=named_by)
    backend.prepare()  # a cluster that cannot be reached: refused before anything is written
    storage = get_storage(spec.storage, n_workers=spec.n_workers)
    pruner = pruner_factory()
    spec_dict = spec.to_dict()
    study = open_study(
        spec.study,
        storage,
        spec.directions,
        sampler=sampler_factory(0),
        pruner=pruner,
        attrs={
            SPEC_ATTR: spec_dict,
            OBJECTIVES_ATTR: [o.to_dict() for o in spec.objectives],
            DATA_ATTR: data.summary(),
        },
        identity=spec_dict,
    )
    objective.share_calibration(study)  # before the workers start: they carry it
    trials = study.get_trials(deepcopy=False)
    resumed = len(trials)
    stored = study.user_attrs.get(SPEC_ATTR)
    if resumed and isinstance(stored, Mapping):
        # Resumed with other settings besides the identity checked above (a budget,
        # constraints, a pruner): the stored spec takes them, as results.json and model.json
        # show it (a run with --n-trials 24 showed the first run's 20) and joining workers use
        # it; its identity stays as first written.
        updated = _study.with_stored_identity(stored, spec_dict)
        if updated != stored:
            study.set_user_attr(SPEC_ATTR, updated)
    counted = len(_study.counted(trials))
    if resumed and spec.n_trials is not None and counted > spec.n_trials:
        _log.warning(
            "study %s already holds %d trials, more than the budget of %d: none runs; the "
            "results cover all %d (give n_trials above %d to run more)",
            spec.study, counted, spec.n_trials, counted, counted,
        )
    if resumed:
        _say_other_fit_time_definitions(spec, trials)
        _say_other_constraints(spec, trials)
    _study.set_fit_time_record(study)  # the definition its workers must measure from now on
    workers_sampler = functools.partial(sampler_factory, resumed=resumed)
    if resumed:
        study.sampler = workers_sampler(0)
    study.set_user_attr(CONSTRAINTS_ATTR, [str(c) for c in spec.constraints])
    study.set_user_attr(SCORING_ATTR, objective.scoring_record())
    record_pruner(study, pruner, spec.pruner.name, spec.n_trials, field="search.pruner")
    if spec.search.strategy == "staged":
        # this run's budget (a resumed run with a larger one stores it only when it starts)
        record_strategy(study, _staged(spec, *_space_of(spec, objective), spec.seed).planned())
    # Meta-features are stored once; warm-start trials are enqueued before the budget is set
    # (in _drive), so they count in n_trials.
    warm_start.apply(study, data, seed=spec.seed)
    setup = runner.WorkerSetup(
        spec.study,
        spec.storage,
        workers_sampler,
        pruner_factory,
        objective,
        spec.n_workers,
        join=join,
    )
    started = time.time()
    drive(
        study,
        setup,
        spec.n_trials,
        spec.timeout_s,
        spec.n_workers,
        progress,
        backend,
        budget=dict(spec.search.budget),
    )
    elapsed = time.time() - started
    return _finish(study, spec, objective, elapsed)


def _resumed_as_stored(source: Any, overrides: Mapping[str, Any], refused: SpecError) -> Spec:
    """The spec of a run that resumes a study an earlier tuneops stored with the very settings
    this tuneops refuses in a new spec (:func:`tuneops.spec.load_stored_spec`): read as the
    study's stored spec is, with its warning, so the spec a team runs every day resumes its
    study after an upgrade. Anything else (a new study, other such settings than the stored
    ones, any other problem) is ``refused``; a spec that differs from the stored one in what
    makes the study is refused by :func:`tuneops._study.open_study` as before."""
    try:
        spec = load_stored_spec(source, "", quiet=True, **overrides)
    except SpecError:
        raise refused from None
    if not spec.tolerated or not storage_exists(spec.storage):
        raise refused
    try:
        study = load_study(spec.study, spec.storage)
    except TuneOpsError:  # no such study (a new one), or a storage not to be read
        raise refused from None
    raw = _study.spec_record(study)
    try:
        stored = load_stored_spec(raw, "", quiet=True) if raw else None
    except SpecError:
        raise refused from None
    if stored is None or sorted(stored.tolerated) != sorted(spec.tolerated):
        raise refused
    return load_stored_spec(source, f"study {spec.study!r}", **overrides)


def _say_other_constraints(spec: Spec, trials: list[optuna.trial.FrozenTrial]) -> None:
    """Say, as a run resumes, that complete trials ran under other constraints than the spec's
    and are judged by the spec's: by the selection, the report and the sampler
    (:class:`tuneops.samplers.CurrentConstraints`)."""
    keys = {str(c) for c in spec.constraints}
    done = (t for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    other = [t for t in done if t.constraints.keys() != keys]
    if not other:
        return
    ran = sorted({k for t in other for k in t.constraints})
    unmeasured = sum(
        constraint_record(t, spec.metric_names, spec.constraints) is None for t in other
    )
    _log.info(
        "study %s: %d of its complete trials ran under other constraints (%s); the selection, "
        "the report and the sampler judge them by this spec's (%s)%s",
        spec.study,
        len(other),
        ", ".join(ran) or "none",
        ", ".join(sorted(keys)) or "none",
        f"; {unmeasured} of them did not measure a constraint's metric: they count as missing "
        "it and the sampler leaves them out"
        if unmeasured
        else "",
    )


def _say_other_fit_time_definitions(spec: Spec, trials: list[optuna.trial.FrozenTrial]) -> None:
    """Warn once, as a run resumes, when the study's complete trials measured ``fit_time_s``
    by another definition than this tuneops (:data:`tuneops._study.FIT_TIME_DEFINITIONS`) and
    the spec judges it: the report's finding (``fit time``) says the same afterwards, from
    the same groups."""
    judged = _study.fit_time_judged(spec.metric_names, [str(c) for c in spec.constraints])
    groups = _study.fit_time_groups(trials)
    current = _study.FIT_TIME_VERSION
    other = {v: numbers for v, numbers in groups.items() if v != current}
    if judged is None or not other:
        return
    _log.warning(
        "study %s: fit_time_s is %s of this spec, and %d of its trials measured it by another "
        "definition than this tuneops (version %d: %s): %s. Its new trials measure version "
        "%d, and the study compares the two on one axis (%s), though they measure "
        "different things (a fraction family's refits for a pruner summed to 3-5x its final "
        "fit). The budget does not read fit_time_s: n_trials counts trials, a compute "
        "budget each trial's own record of its fits. For comparable fit times, run "
        "the spec as a new study (another study name: study in the spec, or --study); the "
        "report names the trials of each definition.",
        spec.study,
        judged,
        sum(len(numbers) for numbers in other.values()),
        current,
        _study.FIT_TIME_DEFINITIONS[current],
        _study.describe_fit_time_groups(other),
        current,
        "the best trial or front, the selection, the sampler's model"
        + (", the constraint's verdicts" if "constraint" in judged else ""),
    )


def _check_fit_time_definition(study: optuna.Study) -> None:
    """Refuse to join a study whose runs measure ``fit_time_s`` by another definition than
    this tuneops, when its spec judges it (an objective or a constraint): the worker's trials
    would be compared on one axis with figures that measure something else. Without that,
    warn: the trials' fit times (results, report) then mix both."""
    theirs = _study.study_fit_time_version(study, study.get_trials(deepcopy=False))
    mine = _study.FIT_TIME_VERSION
    if theirs is None or theirs == mine:
        return
    defined = _study.FIT_TIME_DEFINITIONS
    text = (
        f"study {study.study_name!r} measures fit_time_s by definition {theirs} "
        f"({defined.get(theirs, 'of a newer tuneops than this one')}); this tuneops measures "
        f"definition {mine} ({defined[mine]})"
    )
    judged = _study.fit_time_judged(
        [o.metric for o in _study.objectives(study)], _study.constraint_texts(study)
    )
    if judged is not None:
        raise UsageError(
            f"{text}. fit_time_s is {judged} of the study, and its trials would be compared "
            "on figures that measure different things. Join with the tuneops version the "
            "study's run uses (pip install 'tuneops==<that version>'), or run the spec as a "
            "new study (another study name) with this one."
        )
    _log.warning(
        "%s. The study judges no fit time, so this worker joins; its trials' fit_time_s "
        "figures (results, report) are not comparable with the others'.",
        text,
    )


def _backend_for(spec: Spec, address: str | None) -> Any:

    options: dict[str, Any] = {"resources": dict(spec.resources)}
    if address is not None:
        if spec.backend != "ray":
            raise UsageError(
                f"address (--address): {address!r} names a Ray cluster, but the backend is "
                f"{spec.backend!r}; give backend 'ray' (--backend ray, or search.backend: ray in "
                "the spec)."
            )
        options["address"] = address
    return get_backend(spec.backend, **options)


def _components(spec: Spec, data: Any) -> tuple[Any, Callable[..., Any], Callable[[], Any]]:
    """The objective, sampler factory (``(worker index, resumed=N) -> sampler``) and pruner
    factory of a spec.

    Raises:
        SpecError: metrics that do not fit the task, or bad sampler/pruner parameters.
    """

    objective = SpecObjective(spec, data)  # validates metrics against the task
    conditional, space = _space_of(spec, objective)
    sampler_factory: Callable[..., Any] = functools.partial(_sampler_for, spec, conditional, space)
    if _adaptive_warm_start(spec):
        plain = sampler_factory
        sampler_factory = lambda index, resumed=0: WarmStartSampler(  # noqa: E731
            plain(index, resumed=resumed), objective.spaces
        )
    if len(objective.spaces) > 1:
        # a family whose trials only fail would otherwise be proposed for ever
        unguarded = sampler_factory
        sampler_factory = lambda index, resumed=0: FamilyGuard(  # noqa: E731
            unguarded(index, resumed=resumed),
            list(objective.spaces),
            seed=sampler_seed(spec.seed, index, resumed),
        )
    # each worker's stream numbered by its first trial, not only by what it found in the study:
    # two runs that start together find the same trials there
    streams = sampler_factory
    seeded: Callable[..., Any] = lambda index, resumed=0: FirstTrialSeeded(  # noqa: E731
        lambda first: streams(index, resumed=first), resumed
    )
    # a study run again with other constraints: the sampler sees its earlier trials judged by
    # these, not by the records they were run with
    judge = functools.partial(
        constraint_record, metric_names=spec.metric_names, constraints=spec.constraints
    )
    keys = [str(c) for c in spec.constraints]
    sampler_factory = lambda index, resumed=0: CurrentConstraints(  # noqa: E731
        seeded(index, resumed=resumed), keys, judge
    )
    # The spec's fidelity schedule declares the maximum step (and auto's rungs for it); a
    # multi-objective cut at the last step still saves the serving-cost measurement when the
    # spec measures one.
    measured_after = any(METRICS[m].kind in ("latency", "size") for m in spec.measured_metrics)
    pruner_factory: Callable[[], Any] = functools.partial(
        make_pruner,
        spec.pruner.name,
        spec.pruner.kwargs,
        n_objectives=len(spec.objectives),
        n_trials=spec.n_trials,
        max_step=FIDELITY_STEPS[-1],
        measured_after_last=measured_after,
        fidelity_schedule=True,
    )
    if spec.search.strategy == "staged":
        # pruning only in the phase where TPE models the space (see tuneops.strategy)
        plain_pruner = pruner_factory
        pruner_factory = lambda: staged_pruner(plain_pruner(), _staged(spec, conditional, space, 0))  # noqa: E731
    sampler_factory(0)  # fail on bad sampler or pruner parameters before anything is written
    pruner_factory()
    return objective, sampler_factory, pruner_factory


def _check_worker_times(
    timeout_s: float | None, heartbeat_s: float | None, grace_s: float | None
) -> None:
    """Refuse a worker's time settings that would lose work: a grace period within two
    heartbeats declares live trials dead between their beats (``--grace-s 0`` abandoned every
    trial of a healthy worker on another host and ran 30 trials for a budget of 20).

    Raises:
        UsageError: a setting that is not a positive number of seconds, or a grace period of
            at most two heartbeat intervals.
    """
    for option, value in (
        ("timeout_s (--timeout-s)", timeout_s),
        ("heartbeat_s (--heartbeat-s)", heartbeat_s),
        ("grace_s (--grace-s)", grace_s),
    ):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(
                f"{option}: expected seconds > 0, received {value:g}; leave it out for the "
                "default."
            )
    beat = heartbeat_s if heartbeat_s is not None else INTERVAL_S
    if grace_s is not None and grace_s <= 2 * beat:
        raise UsageError(
            f"grace_s (--grace-s): expected more than two heartbeat intervals ({2 * beat:g} s "
            f"with heartbeat_s (--heartbeat-s) {beat:g}), received {grace_s:g}: a trial goes that "
            "long between two signs of life, so a shorter grace declares live trials dead and "
            "runs them again."
        )


def join(
    name: str,
    storage_url: str | None = None,
    *,
    timeout_s: float | None = None,
    identity: Mapping[str, Any] | None = None,
    heartbeat_s: float | None = None,
    grace_s: float | None = None,
    dataset: Any = None,
) -> int:
    """Work on an existing study as one more worker, from any machine; returns trials run.

    The objective is rebuilt from the spec stored with the study (its data source must be
    readable here and give the same data fingerprint; or ``dataset`` is the loaded data, as the
    Ray backend passes it, checked the same way). The worker claims trials of the global
    budget until none is waiting or running; with a time-only budget (no ``n_trials``) it runs
    new trials for ``timeout_s`` (default: the spec's ``timeout_s``).

    Raises:
        StudyNotFound: no such study in the storage.
        UsageError: the study was run with a custom objective, or the data here differs.

    Example::

        >>> join("quickstart", "postgresql://tune:***@db:5432/tune")   # doctest: +SKIP
        17
    """

    _check_worker_times(timeout_s, heartbeat_s, grace_s)
    study = load_study(name, storage_url)
    _check_fit_time_definition(study)
    spec, data = rebuild(
        study,
        "a worker cannot join it; start more workers with tune(..., n_workers=N) from your own "
        "code",
        dataset,
    )
    objective, sampler_factory, pruner_factory = _components(spec, data)
    objective.share_calibration(study)
    who = dict(identity) if identity is not None else runner.worker_identity()
    index = 1 + zlib.crc32(str(who["id"]).encode()) % 100_000  # a sampler stream of its own
    # ... and of this join: a worker that joins again under the same id (a restarted container
    # keeps its host name and pid; pids are reused) must not replay its earlier proposals.
    resumed = len(study.get_trials(deepcopy=False))
    study = optuna.load_study(
        study_name=name,
        storage=_optuna.storage_of(study),
        sampler=sampler_factory(index, resumed=resumed),
        pruner=pruner_factory(),
    )
    timeout_s = timeout_s if timeout_s is not None else spec.timeout_s
    deadline = time.time() + timeout_s if timeout_s else None
    unlimited = spec.n_trials is None
    if unlimited and deadline is None and not spec.search.budget:
        raise UsageError(
            f"study {name!r} has no n_trials budget, no compute budget and no timeout; give the "
            "worker --timeout-s."
        )
    return runner.work(
        study,
        objective,
        deadline=deadline,
        unlimited=unlimited,
        identity=who,
        heartbeat_s=heartbeat_s,
        grace_s=grace_s,
    )


def _adaptive_warm_start(spec: Spec) -> bool:

    auto = parse_warm_start(spec.warm_start).auto
    return auto is not None and auto.strategy == "adaptive"


def _space_of(spec: Spec, objective: SpecObjective) -> tuple[bool, dict[str, Any]]:
    """Whether the spec's space is conditional (several families, or ``when``), and the space
    as Optuna distributions named as the objective suggests them."""
    conditional = len(spec.families) > 1 or any(
        p.when for s in objective.spaces.values() for p in s.values()
    )
    return conditional, family_distributions(objective.spaces)


def _staged(spec: Spec, conditional: bool, space: Mapping[str, Any], seed: int) -> StagedSampler:
    return StagedSampler(
        seed=seed,
        n_trials=spec.n_trials,
        n_objectives=len(spec.objectives),
        space=space,
        conditional=conditional,
    )


def _sampler_for(
    spec: Spec, conditional: bool, space: Mapping[str, Any], index: int, *, resumed: int = 0
) -> optuna.samplers.BaseSampler:
    seed = sampler_seed(spec.seed, index, resumed)
    if spec.search.strategy == "staged":
        return _staged(spec, conditional, space, seed)
    return make_sampler(
        spec.sampler.name,
        spec.sampler.kwargs,
        seed=seed,
        conditional=conditional,
        n_objectives=len(spec.objectives),
        space=space,
        n_trials=spec.n_trials,
    )


def _output_dir(spec: Spec) -> Path:
    return Path(spec.output_dir or Path("tuneops-out") / spec.study)


def _finish(study: optuna.Study, spec: Spec, objective: Any, elapsed: float) -> RunResult:
    try:
        return _write_outputs(study, spec, objective, elapsed)
    except WriteError as exc:
        error = WriteError(f"{exc} {_RESUME_WRITES}")
        error.errno = exc.errno
        raise error from exc
    except UsageError as exc:
        if type(exc) is not UsageError:  # a spec, data or storage error says what to do itself
            raise
        # an output path that is a directory or a device (tuneops._files)
        raise UsageError(f"{exc} {_RESUME_WRITES}") from exc


_RESUME_WRITES = (
    "Every trial is recorded in the study's storage: the same command runs only what its "
    "budget has left (nothing once it is spent) and writes the outputs."
)


def _write_outputs(study: optuna.Study, spec: Spec, objective: Any, elapsed: float) -> RunResult:
    out_dir = _output_dir(spec)
    _study.record_output_dir(study, out_dir)
    objectives = list(spec.objectives)
    message = None
    if spec.search.strategy == "staged":
        # The seed's last stage: the top candidates again, with more folds and repeats, with
        # confidence intervals (recorded in the study; shown in results and the report).
        def verifying(folds: int, repeat: int) -> SpecObjective:
            again = SpecObjective(
                load_spec(spec, cv_folds=folds, seed=spec.seed + 1000 + repeat), objective.dataset
            )
            again.share_calibration(study)  # latency in the unit the search measured in
            return again

        verify_top(
            study,
            verifying,
            k=5,
            folds=max(5, spec.cv_folds + 2),
            repeats=3,
        )
    _study.save_snapshot(study)  # before selection: see tuneops.custom.tune (memory)
    choice: Choice | None
    try:
        choice = select_in_study(
            study, objectives, spec.constraints, spec.selection, spec.metric_names
        )
    except NoFeasibleTrial as exc:
        choice, message = None, str(exc)
        stale = [out_dir / n for n in (MODEL_FILE, METADATA_FILE) if (out_dir / n).is_file()]
        if stale:
            # An earlier run's model beside a results.json that says there is none: a pipeline
            # picking it up would deploy a model this run's constraints no longer allow.
            for path in stale:
                path.unlink()
            message += (
                f" The earlier run's {MODEL_FILE} in {out_dir} was removed: it met that run's "
                "constraints, not these (tuneops export --trial N writes a model again)."
            )
    model_path = None
    saved: dict[str, Any] = {}
    if choice is not None:
        study.set_user_attr(SELECTION_ATTR, choice.to_dict())
        model_path, saved = _export(study, choice.selected.number, objective, out_dir, spec=spec)
    try:
        if choice is not None and saved.get("note"):  # the saved model breaks a constraint
            choice = replace(choice, notes=(*choice.notes, saved["note"]))
            study.set_user_attr(SELECTION_ATTR, choice.to_dict())
        results = study_results(
            study, choice=choice, elapsed_s=elapsed, message=message, record=True
        )
        results["outputs"] = {
            "model": str(model_path) if model_path else None,
            "results": str(out_dir / "results.json"),
        }
        results_path = write_json(out_dir / "results.json", results)
    except BaseException as exc:
        # This run's model is saved, its results.json is not (a full disk, a signal): an
        # earlier run's results.json beside it would name another selection and other figures
        # than the model, and a pipeline reading both would take them as the model's.
        removed = _remove_stale_results(out_dir) if model_path is not None else []
        if removed and isinstance(exc, WriteError):
            error = WriteError(
                f"{exc} The earlier {' and '.join(removed)} in {out_dir} "
                f"{'were' if len(removed) > 1 else 'was'} removed: "
                f"{'they' if len(removed) > 1 else 'it'} described the study before this run, "
                f"whose {MODEL_FILE} is saved."
            )
            error.errno = exc.errno
            raise error from exc
        raise
    return RunResult(study, choice, results, out_dir, model_path, results_path, message)


#: What a run writes beside its model that describes the study as it was (``report.html`` is
#: the CLI's, written after run() returns).
_STATE_FILES = ("results.json", "report.html")


def _remove_stale_results(out_dir: Path) -> list[str]:
    """Remove an earlier run's :data:`_STATE_FILES` from ``out_dir``; the names removed."""
    removed = []
    for name in _STATE_FILES:
        try:
            (out_dir / name).unlink()
        except OSError:  # none, a directory, or not ours to remove: left as it is
            continue
        removed.append(name)
    return removed


def export_trial(
    study: optuna.Study, number: int, objective: Any, out_dir: Path, *, spec: Spec
) -> Path:
    """Refit trial ``number``'s configuration on all data and save it with metadata."""
    return _export(study, number, objective, out_dir, spec=spec)[0]


def _saved_size(model: Any, trial: optuna.trial.FrozenTrial, spec: Spec) -> dict[str, Any]:
    """The saved model's own ``model_size_kb`` when the spec measures it: a trial measures the
    model of a cross-validation fold, fitted on part of the rows, and a refit on all of them
    is larger (a forest's trees grow with the rows: +36% measured on glass). With ``note``
    when the saved model breaks a constraint on its size that the trial met."""
    if "model_size_kb" not in spec.metric_names:
        return {}
    size = model_size_kb(model)
    measured = (trial.user_attrs.get(_study.METRICS) or {}).get("model_size_kb")
    out: dict[str, Any] = {"model_size_kb": size}
    broken = [
        k for k in spec.constraints if k.metric == "model_size_kb" and k.violation(out) > 0
    ]
    if broken:
        out["note"] = (
            f"the saved model (trial {trial.number} refitted on all rows) is {size:.1f} KiB, "
            f"which breaks the constraint '{broken[0]}' that the trial met on its "
            f"cross-validation models ({measured:.1f} KiB, fitted on fewer rows); tighten "
            "the constraint to leave room for the refit, or pick another trial (tuneops "
            "select, tuneops export --trial)"
            if isinstance(measured, int | float)
            else f"the saved model is {size:.1f} KiB, which breaks the constraint '{broken[0]}'"
        )
    return out


def _export(
    study: optuna.Study, number: int, objective: Any, out_dir: Path, *, spec: Spec
) -> tuple[Path, dict[str, Any]]:
    """:func:`export_trial`, and what the saved model measured (:func:`_saved_size`)."""
    trial = study.trials[number]
    _status.info(  # a long refit (a forest on all rows) was silence (47 s seen)
        "Refitting trial %d on all %d rows and saving it to %s",
        number,
        len(objective.dataset.X),
        out_dir,
    )
    family, params, model = objective.refit(trial.params)
    saved = _saved_size(model, trial, spec)
    metadata = {
        "study": study.study_name,
        "trial": number,
        "family": family,
        "params": params,
        "metrics": trial.user_attrs.get("metrics", {}),
        "objectives": [o.to_dict() for o in spec.objectives],
        "constraints": [str(c) for c in spec.constraints],
        "spec": spec.to_dict(),
        "data": study.user_attrs.get(DATA_ATTR, {}),
        "features": list(objective.dataset.X.columns),
        "task": objective.task,
    }
    if saved:
        metadata["saved"] = saved  # the refitted model itself, beside the trial's metrics
    path = save_model(model, metadata, out_dir)
    if saved:
        _judge_file_size(saved, path, spec)
    return path, saved


def _judge_file_size(saved: dict[str, Any], path: Path, spec: Spec) -> None:
    """The size of ``model.joblib`` itself (``saved["file_kb"]``), and a note when it breaks a
    size constraint the pickled model meets: joblib writes each array on its own, so arrays a
    model holds twice (k-NN's training rows and its tree's copy) are written twice (540 KiB on
    disk for a k-NN of 327 KiB pickled)."""
    file_kb = path.stat().st_size / 1024.0
    saved["file_kb"] = file_kb
    broken = [k for k in spec.constraints if k.metric == "model_size_kb"]
    if saved.get("note") or not any(k.violation({"model_size_kb": file_kb}) > 0 for k in broken):
        return
    limit = next(k for k in broken if k.violation({"model_size_kb": file_kb}) > 0)
    saved["note"] = (
        f"the saved file {path.name} is {file_kb:.1f} KiB, which breaks the constraint "
        f"'{limit}' that the model meets pickled ({saved['model_size_kb']:.1f} KiB, what "
        "model_size_kb measures): joblib writes each array on its own, so arrays the model "
        "holds in two places are written twice; ship the model pickled, tighten the "
        "constraint, or pick another trial"
    )


# -- re-selection and export of an existing study -----------------------------------------------
def rebuild(study: optuna.Study, why_not: str, dataset: Any = None) -> tuple[Spec, Any]:
    """The spec a study ran with and its data, read again and checked against the fingerprint.

    ``dataset`` (a loaded :class:`~tuneops.data.Dataset`, as the Ray backend ships it) is
    used instead of reading the spec's source again; it is checked all the same.

    Raises:
        UsageError: the study was run with a custom objective (``why_not`` says what that
            prevents), or the data changed since the study ran.
    """

    spec = study_spec(study)
    if spec is None:
        raise UsageError(
            f"study {study.study_name!r} was run with a custom objective (tuneops.tune), so "
            f"{why_not}."
        )
    data = dataset if dataset is not None else load_section(spec.data)
    stored = study.user_attrs.get(DATA_ATTR, {}).get("fingerprint")
    if stored and stored != data.fingerprint:
        raise UsageError(
            f"data {spec.data.source!r} here has fingerprint {data.fingerprint}, but study "
            f"{study.study_name!r} was tuned on {stored}: the data changed (or differs on this "
            "machine). Use the same data, or run a new study on the new data."
        )
    return spec, data


def complete_trial(study: optuna.Study, trial: int | None) -> int:
    """``trial`` if it is a complete trial of ``study``; None means the selected trial.

    Raises:
        UsageError: the trial does not exist or is not complete. NoFeasibleTrial: nothing to select.
    """
    if trial is None:
        return reselect(study).selected.number
    trials = study.get_trials(deepcopy=False)
    if not 0 <= trial < len(trials):
        raise UsageError(
            f"trial (--trial): study {study.study_name!r} has no trial {trial} (its trials are "
            f"numbered 0 to {len(trials) - 1}); `tuneops show STUDY --trials` lists them."
        )
    state = trials[trial].state
    if state != optuna.trial.TrialState.COMPLETE:
        raise UsageError(
            f"trial (--trial): trial {trial} of study {study.study_name!r} is "
            f"{state.name.lower()}, not complete, so it has no model to export; `tuneops show "
            "STUDY --trials` lists the complete ones."
        )
    return trial


def missed_constraints(study: optuna.Study, trial: int) -> list[str]:
    """The study's constraints (as stored now) that complete trial ``trial`` misses, judged as
    selection judges them (not by the trial's Optuna record, which is of the constraints of
    the run it ran in)."""
    texts = _study.constraint_texts(study)
    frozen = study.get_trials(deepcopy=False)[trial]
    names = [o.metric for o in _study.objectives(study)]
    return [k for k in texts if infeasible_trials([frozen], names, [k])]


def constraints_within_noise_of(study: optuna.Study, trial: int) -> dict[str, str]:
    """The study's constraints that complete trial ``trial`` meets by its measured value but not
    beyond measurement noise, each with the value and its interval: among
    :func:`missed_constraints`, the ones a trial meets by value (selection takes such a trial
    only when no trial meets the constraints beyond noise)."""
    texts = _study.constraint_texts(study)
    frozen = study.get_trials(deepcopy=False)[trial]
    names = [o.metric for o in _study.objectives(study)]
    return constraints_within_noise(frozen, names, texts)


def export_model(
    study: optuna.Study, *, trial: int | None = None, out_dir: str | Path | None = None
) -> Path:
    """Refit and save a study's selected (or given) trial again, from its stored spec.

    Without ``out_dir``: the selected trial goes where the run wrote it (the spec's output
    directory), a given ``trial`` to ``trial-N/`` inside it, so the run's ``model.joblib``
    stays the model its ``results.json`` names.

    Raises:
        UsageError: the study was not run from a spec, the trial is not complete, or the data
            changed since the study ran.
    """

    if trial is not None and (isinstance(trial, bool) or not isinstance(trial, int)):
        raise UsageError(f"trial: expected a trial number (an int), received {trial!r}.")
    given = trial
    trial = complete_trial(study, trial)
    spec, data = rebuild(
        study, "tuneops cannot refit its model; refit it from the selected params in results.json"
    )
    out = Path(out_dir) if out_dir else _output_dir(spec)
    if out_dir is None and given is not None:
        out = out / f"trial-{trial}"
    check_output_dir(out)  # before the refit
    objective = SpecObjective(spec, data)
    objective.share_calibration(study)  # its model's latency in the study's unit
    return export_trial(study, trial, objective, out, spec=spec)
