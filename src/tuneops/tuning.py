"""The tuning job end to end: spec -> data -> study -> workers -> selection -> model -> results.

:func:`run` takes a spec; :func:`tune` takes your own Optuna-style objective and gives it the
same storage, budget, parallel workers, constraint-aware selection and outputs.
"""

from __future__ import annotations

import functools
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from tuneops import _optuna, _study, runner
from tuneops._study import load_study, open_study
from tuneops.backends import get_backend
from tuneops.data import load_dataset
from tuneops.errors import NoFeasibleTrial, SpecError, UsageError
from tuneops.export import save_model, write_json
from tuneops.families import FIDELITY_STEPS
from tuneops.knowledge.adaptive import WarmStartSampler
from tuneops.knowledge.warm_start import parse_warm_start
from tuneops.knowledge.warm_start import plan as warm_start_plan
from tuneops.metrics import METRICS
from tuneops.objective import SpecObjective
from tuneops.progress import StudyProgress
from tuneops.pruning import (
    FIDELITY_ATTR,
    PRUNER_ATTR,
    custom_fidelity,
    describe_pruner,
    make_pruner,
)
from tuneops.results import study_results
from tuneops.samplers import family_distributions, make_sampler
from tuneops.selection import Choice, candidates_from_trials, reselect, select_trial
from tuneops.spec import (
    Constraint,
    Objective,
    Spec,
    _selection,
    check_budget,
    load_spec,
    parse_constraint,
)
from tuneops.storage import get_storage
from tuneops.strategy import StagedSampler, record_strategy, staged_pruner, verify_top

__all__ = ["run", "tune", "join", "RunResult", "open_study", "load_study", "study_spec", "reselect",
           "export_model"]

SPEC_ATTR = _study.SPEC
OBJECTIVES_ATTR = _study.OBJECTIVES
DATA_ATTR = _study.DATA
CONSTRAINTS_ATTR = _study.CONSTRAINTS
SELECTION_ATTR = _study.SELECTION
SCORING_ATTR = _study.SCORING


@dataclass
class RunResult:
    """What a run produced. ``choice`` is None when no trial met the constraints."""

    study: optuna.Study
    choice: Choice | None
    results: dict[str, Any]
    output_dir: Path
    model_path: Path | None = None
    results_path: Path | None = None
    message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def selected_trial(self) -> optuna.trial.FrozenTrial | None:
        if self.choice is None:
            return None
        return self.study.trials[self.choice.selected.number]

    @property
    def best_params(self) -> dict[str, Any] | None:
        trial = self.selected_trial
        return dict(trial.params) if trial is not None else None


# -- studies ------------------------------------------------------------------------------------
def study_objectives(study: optuna.Study) -> list[Objective]:
    """The study's objectives (as stored, else ``value``/``value_i`` with Optuna's directions)."""
    return [Objective(o.metric, o.direction) for o in _study.objectives(study)]


def study_spec(study: optuna.Study) -> Spec | None:
    """The spec a study was run with, if it was run from a spec."""
    raw = _study.spec_record(study)
    return load_spec(raw) if raw else None


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
            ``data.target``, default ``target``).
        address: the Ray cluster to run on (``search.backend: ray``); None starts a local Ray.
        **overrides: spec fields to replace (``n_trials``, ``n_workers``, ``storage``, ``backend``, ...).

    Returns:
        a :class:`RunResult` with the study, the selection, and the output paths.

    Example::

        >>> result = run("examples/quickstart.yaml", n_trials=5)   # doctest: +SKIP
        >>> result.model_path                                        # doctest: +SKIP
        PosixPath('tuneops-out/quickstart/model.joblib')
    """

    spec = load_spec(spec, **overrides)
    backend = _backend_for(spec, address)
    if dataset is not None:
        data = load_dataset(dataset, target=spec.data.target, task=spec.data.task, name=spec.data.source)
    else:
        data = load_dataset(spec.data.source, target=spec.data.target, task=spec.data.task)
    objective, sampler_factory, pruner_factory = _components(spec, data)
    warm_start = warm_start_plan(spec, objective.spaces, data.task)  # refuses before writing
    storage = get_storage(spec.storage, n_workers=spec.n_workers)
    pruner = pruner_factory()
    spec_dict = spec.to_dict()
    study = open_study(
        spec.study, storage, spec.directions,
        sampler=sampler_factory(0), pruner=pruner,
        attrs={
            SPEC_ATTR: spec_dict,
            OBJECTIVES_ATTR: [o.to_dict() for o in spec.objectives],
            DATA_ATTR: data.summary(),
        },
        identity=spec_dict,
    )
    resumed = len(study.get_trials(deepcopy=False))
    workers_sampler = functools.partial(sampler_factory, resumed=resumed)
    if resumed:
        study.sampler = workers_sampler(0)
    study.set_user_attr(CONSTRAINTS_ATTR, [str(c) for c in spec.constraints])
    study.set_user_attr(SCORING_ATTR, objective.scoring_record())
    study.set_user_attr(PRUNER_ATTR, describe_pruner(pruner))
    if spec.search.strategy == "staged":
        record_strategy(study, _staged(spec, *_space_of(spec, objective), spec.seed).phases(study))
    # Meta-features are stored once; warm-start trials are enqueued before the budget is set
    # (in _drive), so they count in n_trials.
    warm_start.apply(study, data, seed=spec.seed)
    setup = runner.WorkerSetup(
        spec.study, spec.storage, workers_sampler, pruner_factory, objective, spec.n_workers, join=join
    )
    started = time.time()
    _drive(study, setup, spec.n_trials, spec.timeout_s, spec.n_workers, progress, backend,
           budget=dict(spec.search.budget))
    elapsed = time.time() - started
    return _finish(study, spec, objective, elapsed)


def _backend_for(spec: Spec, address: str | None) -> Any:

    options: dict[str, Any] = {"resources": dict(spec.resources)}
    if address is not None:
        if spec.backend != "ray":
            raise UsageError(
                f"--address {address!r} names a Ray cluster, but the backend is {spec.backend!r}; "
                "add --backend ray (or search.backend: ray in the spec)."
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
            plain(index, resumed=resumed), objective.spaces)
    # The spec's fidelity schedule declares the maximum step; a multi-objective cut at the last
    # step still saves the serving-cost measurement when the spec measures one.
    measured_after = any(METRICS[m].kind in ("latency", "size") for m in spec.measured_metrics)
    pruner_factory: Callable[[], Any] = functools.partial(
        make_pruner, spec.pruner.name, spec.pruner.kwargs,
        n_objectives=len(spec.objectives), n_trials=spec.n_trials,
        max_step=FIDELITY_STEPS[-1], measured_after_last=measured_after,
    )
    if spec.search.strategy == "staged":
        # pruning only in the phase where TPE models the space (see tuneops.strategy)
        plain_pruner = pruner_factory
        pruner_factory = lambda: staged_pruner(plain_pruner(), _staged(spec, conditional, space, 0))  # noqa: E731
    sampler_factory(0)  # fail on bad sampler or pruner parameters before anything is written
    pruner_factory()
    return objective, sampler_factory, pruner_factory


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

    study = load_study(name, storage_url)
    spec, data = rebuild(study, "a worker cannot join it; start more workers with tune(..., n_workers=N) from your own code",
                         dataset)
    objective, sampler_factory, pruner_factory = _components(spec, data)
    who = dict(identity) if identity is not None else runner.worker_identity()
    index = 1 + zlib.crc32(str(who["id"]).encode()) % 100_000  # a sampler stream of its own
    study = optuna.load_study(
        study_name=name, storage=_optuna.storage_of(study), sampler=sampler_factory(index), pruner=pruner_factory()
    )
    timeout_s = timeout_s if timeout_s is not None else spec.timeout_s
    deadline = time.time() + timeout_s if timeout_s else None
    unlimited = spec.n_trials is None
    if unlimited and deadline is None and not spec.search.budget:
        raise UsageError(
            f"study {name!r} has no n_trials budget, no compute budget and no timeout; give the "
            "worker --timeout-s."
        )
    return runner.work(study, objective, deadline=deadline, unlimited=unlimited, identity=who,
                       heartbeat_s=heartbeat_s, grace_s=grace_s)


def _adaptive_warm_start(spec: Spec) -> bool:

    auto = parse_warm_start(spec.warm_start).auto
    return auto is not None and auto.strategy == "adaptive"


def sampler_seed(seed: int, index: int, resumed: int = 0) -> int:
    """The seed of worker ``index``'s sampler in a run that found ``resumed`` trials in its study.

    Distinct streams per worker, reproducible per index; a resumed run draws new streams (the
    first run's streams would propose its configurations again), which depend only on the spec's
    seed and the point of resumption, so a resumed seeded run is reproducible too.
    """
    return (seed + 7919 * index + 104_729 * resumed) % (2**32)


def _space_of(spec: Spec, objective: SpecObjective) -> tuple[bool, dict[str, Any]]:
    """Whether the spec's space is conditional (several families, or ``when``), and the space
    as Optuna distributions named as the objective suggests them."""
    conditional = len(spec.families) > 1 or any(p.when for s in objective.spaces.values() for p in s.values())
    return conditional, family_distributions(objective.spaces)


def _staged(spec: Spec, conditional: bool, space: Mapping[str, Any], seed: int) -> StagedSampler:
    return StagedSampler(seed=seed, n_trials=spec.n_trials, n_objectives=len(spec.objectives),
                         space=space, conditional=conditional)


def _sampler_for(spec: Spec, conditional: bool, space: Mapping[str, Any], index: int, *,
                 resumed: int = 0) -> optuna.samplers.BaseSampler:
    seed = sampler_seed(spec.seed, index, resumed)
    if spec.search.strategy == "staged":
        return _staged(spec, conditional, space, seed)
    return make_sampler(spec.sampler.name, spec.sampler.kwargs, seed=seed, conditional=conditional,
                        n_objectives=len(spec.objectives), space=space, n_trials=spec.n_trials)


def _drive(
    study: optuna.Study,
    setup: runner.WorkerSetup,
    n_trials: int | None,
    timeout_s: float | None,
    n_workers: int,
    progress: bool,
    backend: Any = None,
    *,
    budget: Mapping[str, float] | None = None,
) -> None:

    backend = get_backend(backend or "local")
    deadline = time.time() + timeout_s if timeout_s else None
    runner.recover_abandoned(study, grace_s=setup.grace_s)
    if n_trials is not None:
        runner.set_budget(study, n_trials)
    runner.set_compute_budget(study, budget)
    with StudyProgress(study, n_trials, enabled=progress) as bar:
        # A worker that dies leaves its trial to be re-queued; go round until none is waiting.
        for _ in range(3):
            backend.execute(
                setup, study=study, n_workers=n_workers, deadline=deadline,
                unlimited=n_trials is None, on_progress=bar.refresh,
            )
            waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
            if not waiting or (deadline is not None and time.time() >= deadline):
                break


def _finish(study: optuna.Study, spec: Spec, objective: Any, elapsed: float) -> RunResult:

    out_dir = Path(spec.output_dir or Path("tuneops-out") / spec.study)
    objectives = list(spec.objectives)
    message = None
    if spec.search.strategy == "staged":
        # The seed's last stage: the top candidates again, with more folds and repeats, with
        # confidence intervals (recorded in the study; shown in results and the report).
        verify_top(study, lambda folds, repeat: SpecObjective(
            load_spec(spec, cv_folds=folds, seed=spec.seed + 1000 + repeat), objective.dataset),
            k=5, folds=max(5, spec.cv_folds + 2), repeats=3)
    choice: Choice | None
    try:
        choice = select_trial(
            candidates_from_trials(study.get_trials(deepcopy=False), spec.metric_names),
            objectives, spec.constraints, spec.selection,
        )
    except NoFeasibleTrial as exc:
        choice, message = None, str(exc)
    model_path = None
    if choice is not None:
        study.set_user_attr(SELECTION_ATTR, choice.to_dict())
        model_path = export_trial(study, choice.selected.number, objective, out_dir, spec=spec)
    results = study_results(study, choice=choice, elapsed_s=elapsed, message=message)
    results["outputs"] = {"model": str(model_path) if model_path else None, "results": str(out_dir / "results.json")}
    results_path = write_json(out_dir / "results.json", results)
    return RunResult(study, choice, results, out_dir, model_path, results_path, message)


def export_trial(
    study: optuna.Study, number: int, objective: Any, out_dir: Path, *, spec: Spec
) -> Path:
    """Refit trial ``number``'s configuration on all data and save it with metadata."""

    trial = study.trials[number]
    family, params, model = objective.refit(trial.params)
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
    return save_model(model, metadata, out_dir)


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
            f"study {study.study_name!r} was run with a custom objective (tuneops.tune), so {why_not}."
        )
    data = dataset if dataset is not None else load_dataset(spec.data.source, target=spec.data.target, task=spec.data.task)
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
    if not 0 <= trial < len(study.trials) or study.trials[trial].state != optuna.trial.TrialState.COMPLETE:
        raise UsageError(
            f"--trial: trial {trial} of study {study.study_name!r} is not a complete trial; "
            "`tuneops show STUDY --trials` lists them."
        )
    return trial


def export_model(study: optuna.Study, *, trial: int | None = None, out_dir: str | Path | None = None) -> Path:
    """Refit and save a study's selected (or given) trial again, from its stored spec.

    Raises:
        UsageError: the study was not run from a spec, the trial is not complete, or the data
            changed since the study ran.
    """

    trial = complete_trial(study, trial)
    spec, data = rebuild(study, "tuneops cannot refit its model; refit it from the selected params in results.json")
    out = Path(out_dir or Path("tuneops-out") / study.study_name)
    return export_trial(study, trial, SpecObjective(spec, data), out, spec=spec)


# -- a custom objective -------------------------------------------------------------------------
class ConstraintMetricMissing(UsageError):
    """A constraint names a metric the objective did not return: every trial would fail the
    same way, so the run stops at the first one (the trial is recorded as failed)."""


class _Constrained:
    """Wraps a user objective: records constraint violations so the sampler learns feasibility,
    and what the trial trained and spent (``tuneops:fidelity``: the steps it reported, wall and
    CPU seconds of the call), which the pruning section and a compute budget read."""

    def __init__(self, fn: Callable[[optuna.Trial], Any], names: Sequence[str], constraints: Sequence[Constraint]):
        self.fn, self.names, self.constraints = fn, list(names), list(constraints)

    def __call__(self, trial: optuna.Trial) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        pruned = False
        try:
            return self._call(trial)
        except optuna.TrialPruned:
            pruned = True
            raise
        finally:
            study = getattr(trial, "study", None)
            if study is not None and FIDELITY_ATTR not in trial.user_attrs:
                trial.set_user_attr(FIDELITY_ATTR, custom_fidelity(
                    _optuna.latest(trial), len(study.directions), fit_s=time.perf_counter() - wall,
                    fit_cpu_s=time.process_time() - cpu, pruned=pruned))

    def _call(self, trial: optuna.Trial) -> Any:
        result = self.fn(trial)
        if self.constraints:
            values = list(result) if isinstance(result, (list, tuple)) else [result]
            metrics = {**dict(zip(self.names, values)), **trial.user_attrs.get("metrics", {})}
            trial.set_user_attr("metrics", {k: float(v) for k, v in metrics.items()})
            for c in self.constraints:
                if c.metric not in metrics:
                    raise ConstraintMetricMissing(
                        f"constraint '{c}' needs {c.metric!r}; return it as an objective or set "
                        "trial.set_user_attr('metrics', {...}) in the objective"
                    )
                trial.set_constraint(str(c), c.violation(metrics))
        return result


def _check_count(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{name}: expected an integer >= 1{' or None' if allow_none else ''}, "
                        f"received {value!r}.")


def _component(field: str, value: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``"tpe"`` or ``{"name": "tpe", "params": {...}}`` (as in a spec) -> (name, params)."""
    if isinstance(value, str):
        return value, {}
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        extra = set(value) - {"name", "params"}
        if extra:
            raise SpecError(f"{field}: unknown key(s) {sorted(extra)}; expected 'name' and 'params'.")
        return value["name"], dict(value.get("params") or {})
    raise SpecError(f"{field}: expected a name or {{'name': ..., 'params': {{...}}}}, received {value!r}.")


class _Default(int):
    """A default that can be told apart from the same number given explicitly."""


DEFAULT_N_TRIALS = _Default(20)


def tune(
    objective: Callable[[optuna.Trial], Any],
    *,
    objectives: Sequence[str] = ("value",),
    directions: Sequence[str] | None = None,
    constraints: Sequence[str] = (),
    selection: str | Mapping[str, Any] = "knee",
    n_trials: int | None = DEFAULT_N_TRIALS,
    timeout_s: float | None = None,
    n_workers: int = 1,
    storage: str | None = None,
    study: str | None = None,
    sampler: str | Mapping[str, Any] = "auto",
    pruner: str | Mapping[str, Any] = "auto",
    budget: Mapping[str, float] | None = None,
    seed: int = 0,
    output_dir: str | Path | None = None,
    progress: bool = False,
) -> RunResult:
    """Tune your own objective with tuneops' storage, budget, workers and selection.

    Args:
        objective: ``trial -> float`` or a tuple of floats, using ``trial.suggest_*``.
        objectives: a name per returned value (used by constraints and reports).
        directions: ``maximize``/``minimize`` per objective; defaults from built-in metric
            names, else ``maximize``.
        constraints: expressions on objective names or on metrics the objective records with
            ``trial.set_user_attr("metrics", {...})``.
        n_workers: local worker processes (forked: the objective need not be importable).
        pruner: a pruner name or ``{"name": ..., PARAMETER: value}``; ``auto`` (the default,
            as in a spec) prunes an objective that reports its steps (``trial.report`` and
            ``trial.should_prune``, or :func:`tuneops.pruning.report` and
            :func:`tuneops.pruning.should_prune` with several objectives) at fractions of its
            largest step (``max_step``, declared or learned from the first completed trials).
            An objective that reports nothing is never pruned.
        budget: a compute budget ``{unit: amount}`` (``fit_cpu_s``, ``fit_s`` or ``steps``, as
            ``search.budget`` in a spec): trials are created until the finished ones spent it
            (CPU or wall seconds of the objective call, or steps reported), so the compute the
            pruner saves buys more trials. With a budget, ``n_trials`` limits only when given.

    Example::

        >>> def objective(trial):
        ...     x = trial.suggest_float("x", -5, 5)
        ...     return -(x - 1) ** 2
        >>> result = tune(objective, n_trials=10, storage=":memory:")   # doctest: +SKIP
    """

    compute = dict(check_budget(budget, root="")) if budget is not None else {}
    _check_count("n_trials", n_trials, allow_none=True)
    _check_count("n_workers", n_workers)
    if timeout_s is not None and (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
                                  or not timeout_s > 0):
        raise SpecError(f"timeout_s: expected a number of seconds > 0 or None, received {timeout_s!r}.")
    if compute and n_trials is DEFAULT_N_TRIALS:
        n_trials = None  # the compute budget decides, as in a spec (n_trials limits when given)
    if n_trials is None and timeout_s is None and not compute:
        raise SpecError("n_trials, timeout_s and budget: expected at least one of them, received none; "
                        "give n_trials=N, timeout_s=SECONDS or budget={'fit_cpu_s': SECONDS}.")
    names = list(objectives)
    if directions is None:
        directions = [METRICS[n].direction if n in METRICS else "maximize" for n in names]
    directions = list(directions)
    if len(directions) != len(names) or any(d not in ("maximize", "minimize") for d in directions):
        raise SpecError(
            f"directions: expected one of maximize/minimize per objective {names}, received {directions}."
        )
    objs = tuple(Objective(n, d) for n, d in zip(names, directions))
    parsed = [parse_constraint(c, builtin_only=False) if isinstance(c, str) else c for c in constraints]
    chosen_selection = _selection(selection, objs)
    name = study or f"tune-{getattr(objective, '__name__', 'objective')}"
    store = get_storage(storage, n_workers=n_workers)
    sampler_name, sampler_params = _component("sampler", sampler)
    # the space of a custom objective is judged by `auto` from its first trials
    make = functools.partial(make_sampler, sampler_name, sampler_params, conditional=None, n_trials=n_trials,
                             n_objectives=len(names))
    # A custom objective's maximum step is declared (pruner parameter max_step) or learned; at
    # its last step the training is paid for, so no multi-objective cut there.
    pruner_factory = functools.partial(make_pruner, pruner, None, n_objectives=len(names), n_trials=n_trials)
    make(seed=seed)  # bad sampler or pruner parameters fail before anything is written
    built = pruner_factory()
    opened = open_study(
        name, store, directions, sampler=make(seed=seed), pruner=built,
        attrs={OBJECTIVES_ATTR: [o.to_dict() for o in objs]},
    )
    opened.set_user_attr(PRUNER_ATTR, describe_pruner(built))
    resumed = len(opened.get_trials(deepcopy=False))
    sampler_factory = lambda i: make(seed=sampler_seed(seed, i, resumed))  # noqa: E731
    opened.sampler = sampler_factory(0)
    opened.set_user_attr(CONSTRAINTS_ATTR, [str(c) for c in parsed])
    wrapped = _Constrained(objective, names, parsed)
    setup = runner.WorkerSetup(name, storage, sampler_factory, pruner_factory, wrapped, n_workers)
    started = time.time()
    _drive(opened, setup, n_trials, timeout_s, n_workers, progress, budget=compute)

    message = None
    try:
        choice: Choice | None = select_trial(
            candidates_from_trials(opened.get_trials(deepcopy=False), names), objs, parsed, chosen_selection
        )
        opened.set_user_attr(SELECTION_ATTR, choice.to_dict())
    except NoFeasibleTrial as exc:
        choice, message = None, str(exc)
    results = study_results(opened, choice=choice, elapsed_s=time.time() - started, message=message)
    out_dir = Path(output_dir or Path("tuneops-out") / name)
    results_path = write_json(out_dir / "results.json", results)
    return RunResult(opened, choice, results, out_dir, None, results_path, message)
