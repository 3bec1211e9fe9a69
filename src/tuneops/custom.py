"""Tune your own objective: :func:`tune`, and what a run shares with a spec's run.

The light half of the application layer (:mod:`tuneops.tuning` adds specs, data, model
families and the model export on top): the storage, the global budget, parallel workers,
constraint-aware selection and ``results.json``. It imports neither the data layer (pandas,
pyarrow) nor the model families (scikit-learn, scipy), so a process that tunes a custom
objective does not pay for them: about 170 MB of memory and a second of imports.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import logging
import numbers
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from tuneops import _optuna, _study, runner
from tuneops._files import check_output_dir
from tuneops._study import open_study
from tuneops.backends import get_backend
from tuneops.errors import NoFeasibleTrial, SpecError, UsageError, WriteError
from tuneops.export import write_json
from tuneops.metrics import METRICS
from tuneops.progress import StudyProgress
from tuneops.pruning import FIDELITY_ATTR, custom_fidelity, make_pruner, record_pruner
from tuneops.results import study_results
from tuneops.samplers import CurrentConstraints, FirstTrialSeeded, make_sampler
from tuneops.selection import (
    Choice,
    candidates_from_trials,
    constraint_record,
    infeasible_trials,
    nothing_completed,
    select_trial,
)
from tuneops.spec import (
    STUDY_NAME,
    Constraint,
    Objective,
    check_budget,
    check_constraints,
    parse_constraints,
    pruner_parameters,
    sampler_parameters,
    selection_for,
)
from tuneops.storage import get_storage

__all__ = ["tune", "RunResult", "ConstraintMetricMissing", "drive", "sampler_seed"]

_log = logging.getLogger("tuneops")
# a status line the CLI prints (tuneops.cli._common.configure), as the warm start's
_status = logging.getLogger("tuneops.status")

OBJECTIVES_ATTR = _study.OBJECTIVES
CONSTRAINTS_ATTR = _study.CONSTRAINTS
SELECTION_ATTR = _study.SELECTION


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

    def __repr__(self) -> str:
        # The dataclass's repr printed every trial of ``results`` (pages in a notebook).
        counts = ", ".join(f"{k} {v}" for k, v in (self.results.get("n_trials") or {}).items())
        chosen = self.choice.selected if self.choice is not None else None
        selected = (
            f"trial {chosen.number} {dict(chosen.metrics) or list(chosen.values)}"
            if chosen is not None
            else f"none ({self.message})"
        )
        return (
            f"RunResult(study={self.study.study_name!r}, trials: {counts or 'none'}, "
            f"selected: {selected}, model_path={self.model_path!s}, "
            f"results_path={self.results_path!s})"
        )


def sampler_seed(seed: int, index: int, resumed: int = 0) -> int:
    """The seed of worker ``index``'s sampler whose first trial is number ``resumed``: the trials
    found in its study, or the trial it was handed (:class:`tuneops.samplers.FirstTrialSeeded`).

    Distinct streams per worker, reproducible per index; a resumed run draws new streams (the
    first run's streams would propose its configurations again), which depend only on the spec's
    seed and the point of resumption, so a resumed seeded run is reproducible too.
    """
    return (seed + 7919 * index + 104_729 * resumed) % (2**32)


def _judged_before(study: optuna.Study) -> dict[int, bool] | None:
    """Feasibility of the complete trials found at the start, under the study's constraints
    now, when their Optuna records are of other ones (a study run again with other
    constraints); None when the records hold. The progress line's count of non-dominated
    trials counted trials the selection would refuse."""
    if _study.CONSTRAINTS not in study.user_attrs:
        return None
    texts = _study.constraint_texts(study)
    trials = study.get_trials(deepcopy=False)
    if _study.constraints_recorded(trials, texts):
        return None
    names = [o.metric for o in _study.objectives(study)]
    refused = infeasible_trials(trials, names, texts)
    done = (t.number for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    return {n: n not in refused for n in done}


def drive(
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
    """Run ``setup``'s workers on ``backend`` (default local) until the budget or deadline is
    spent, with a progress bar; trials queued again by workers that died run too."""

    backend = get_backend(backend or "local")
    deadline = time.time() + timeout_s if timeout_s else None
    runner.recover_abandoned(study, grace_s=setup.grace_s)
    if n_trials is not None:
        runner.set_budget(study, n_trials)
    runner.set_compute_budget(study, budget)
    with StudyProgress(
        study, n_trials, enabled=progress, judged=_judged_before(study) if progress else None
    ) as bar:
        # A worker that dies leaves its trial to be re-queued; go round until none is waiting.
        for _ in range(3):
            backend.execute(
                setup,
                study=study,
                n_workers=n_workers,
                deadline=deadline,
                unlimited=n_trials is None,
                on_progress=bar.refresh,
            )
            waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
            if not waiting or (deadline is not None and time.time() >= deadline):
                break
        else:
            if waiting:
                _log.warning(
                    "%d trial(s) are still queued after 3 rounds of workers, each round ending "
                    "with workers lost: the budget is not spent. Check the workers' machines "
                    "(memory, preemption), then run the same command again to finish.",
                    len(waiting),
                )
    if deadline is not None and time.time() >= deadline:
        trials = runner.counted(study.get_trials(deepcopy=False))
        finished = sum(t.state.is_finished() for t in trials)
        if n_trials is None or finished < n_trials:
            # a run cut by its time budget ended with exit 0 and no word of the trials it left
            _status.info(
                "Time budget: timeout_s=%g ended the run with %d finished trial(s)%s.",
                timeout_s,
                finished,
                f" of n_trials={n_trials}; running it again resumes with the trials left"
                if n_trials is not None
                else "; running it again runs for another timeout_s",
            )


class ConstraintMetricMissing(UsageError):
    """A constraint names a metric the objective did not return: every trial would fail the
    same way, so the run stops at the first one (the trial is recorded as failed)."""


class _Constrained:
    """Wraps a user objective: records constraint violations so the sampler learns feasibility,
    and what the trial trained and spent (``tuneops:fidelity``: the steps it reported, wall and
    CPU seconds of the call), which the pruning section and a compute budget read."""

    def __init__(
        self,
        fn: Callable[[optuna.Trial], Any],
        names: Sequence[str],
        constraints: Sequence[Constraint],
    ):
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
            # the trial's own record, not `trial.user_attrs` (a deep copy per read)
            if study is not None and FIDELITY_ATTR not in _optuna.frozen(trial).user_attrs:
                runner.record_with_outcome(  # written with the outcome: no storage write of its own
                    trial,
                    FIDELITY_ATTR,
                    custom_fidelity(
                        _optuna.latest(trial),
                        len(study.directions),
                        fit_s=time.perf_counter() - wall,
                        fit_cpu_s=time.process_time() - cpu,
                        pruned=pruned,
                    ),
                )

    def _call(self, trial: optuna.Trial) -> Any:
        result = self.fn(trial)
        if self.constraints:
            values = runner.as_values(result, len(self.names))
            if isinstance(values, str):
                return result  # failed by the runner with this reason, as without constraints
            named = dict(zip(self.names, values, strict=False))
            extra = trial.user_attrs.get("metrics", {})
            for key, value in extra.items():
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise ValueError(
                        f"trial.user_attrs['metrics'][{key!r}]: expected a number, received "
                        f"{value!r}"
                    )
            metrics = {**named, **extra}
            runner.record_with_outcome(trial, "metrics", {k: float(v) for k, v in metrics.items()})
            for c in self.constraints:
                if c.metric not in metrics:
                    # a typo of an objective's name (acuracy) read as a metric never recorded
                    close = difflib.get_close_matches(c.metric, list(metrics), n=1)
                    raise ConstraintMetricMissing(
                        f"constraint '{c}' names {c.metric!r}, which the objective neither "
                        f"returned (objectives: {', '.join(self.names)}) nor recorded "
                        "(trial.user_attrs['metrics']: "
                        f"{', '.join(sorted(map(str, extra))) or 'none'})."
                        + (f" Did you mean {close[0]!r}?" if close else "")
                        + " Fix the constraint's name, or return the metric as an objective or "
                        "record it with trial.set_user_attr('metrics', {...}) in the objective."
                    )
                trial.set_constraint(str(c), c.violation(metrics))
        return result


#: User attribute: which objective function a tune() study runs (module, name, code digest).
OBJECTIVE_FUNCTION_ATTR = "tuneops:objective_function"


def _function_identity(objective: Callable[..., Any]) -> dict[str, str]:
    """Where ``objective`` is defined and a digest of its code (its bytecode, constants and
    names, nested functions included), to tell a resumed study that its objective changed.

    The digest is the same in every process: a set's constants are hashed in sorted order (a
    frozenset's repr follows the per-process string hash: "the code changed" on every resume).
    A ``functools.partial`` is its function's; a callable object, its class's ``__call__``."""
    target = objective
    while isinstance(target, functools.partial):
        target = target.func
    target = getattr(target, "__func__", target)
    code = getattr(target, "__code__", None)
    if code is None and not isinstance(target, type):  # a callable object
        code = getattr(type(target).__call__, "__code__", None)
    digest = hashlib.sha256()

    def add(value: Any) -> None:
        if hasattr(value, "co_code"):  # a code object: its code, not its repr (an address)
            digest.update(value.co_code)
            digest.update(repr(value.co_names).encode())
            for const in value.co_consts:
                add(const)
        elif isinstance(value, frozenset):
            for text in sorted(map(repr, value)):
                digest.update(text.encode())
        elif isinstance(value, tuple):
            for item in value:
                add(item)
        else:
            digest.update(repr(value).encode())

    if code is not None:
        add(code)
    return {
        "module": str(getattr(target, "__module__", "")),
        "name": str(getattr(target, "__qualname__", type(target).__qualname__)),
        "code": digest.hexdigest()[:16] if code is not None else "",
    }


def _say_resumed(
    study: optuna.Study, objective: Callable[..., Any], n_existing: int, n_trials: int | None
) -> None:
    """Record which function the study runs; on a resume, say so when it matters: the study
    held trials of another objective function (the default name is ``tune-<function name>``,
    so every ``def objective`` shares one study), or the budget is spent already (a second
    call with another objective returned the first one's result and ran nothing)."""
    now = _function_identity(objective)
    before = study.user_attrs.get(OBJECTIVE_FUNCTION_ATTR)
    if before != now:
        study.set_user_attr(OBJECTIVE_FUNCTION_ATTR, now)
    if not n_existing:
        return
    name = study.study_name
    notes = []
    if isinstance(before, Mapping) and (before.get("module"), before.get("name")) != (
        now["module"],
        now["name"],
    ):
        notes.append(
            f"its {n_existing} trial(s) ran {before.get('module')}.{before.get('name')}, this "
            f"call runs {now['module']}.{now['name']}"
        )
    elif isinstance(before, Mapping) and before.get("code") != now["code"]:
        notes.append(f"the code of {now['name']}() changed since its {n_existing} trial(s) ran")
    finished = sum(t.state.is_finished() for t in runner.counted(study.get_trials(deepcopy=False)))
    if n_trials is not None and finished >= n_trials:
        notes.append(
            f"its budget is spent ({finished} finished trial(s) of n_trials={n_trials}, which "
            "counts the study's trials, not this call's), so no trial runs"
        )
    if notes:
        _log.warning(
            "tune(): resuming study %r: %s. Pass study='NEW_NAME' to start a new study, or "
            "a larger n_trials to run more.",
            name,
            "; ".join(notes),
        )
    else:
        _log.info("tune(): resuming study %r with its %d trial(s).", name, n_existing)


def _check_count(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(
            f"{name}: expected an integer >= 1{' or None' if allow_none else ''}, "
            f"received {value!r}."
        )


def _component(field: str, value: Any) -> tuple[str, dict[str, Any]]:
    """``"tpe"``, ``{"name": "tpe", "n_startup_trials": 5}`` (as in a spec) or
    ``{"name": "tpe", "params": {...}}`` -> (name, params), checked as a spec's are.

    Raises:
        SpecError: naming ``field`` (``sampler`` or ``pruner``), the parameter and the value.
    """
    if isinstance(value, str):
        name, params = value, {}
    elif isinstance(value, Mapping) and isinstance(value.get("name"), str):
        name, params = value["name"], {k: v for k, v in value.items() if k != "name"}
        if set(params) == {"params"} and isinstance(params["params"], Mapping):
            params = dict(params["params"])
    else:
        raise SpecError(
            f"{field}: expected a name or {{'name': NAME, PARAMETER: value, ...}}, "
            f"received {value!r}."
        )
    check = sampler_parameters if field == "sampler" else pruner_parameters
    check(name, params, field=field)
    return name, params


class _Default(int):
    """A default that can be told apart from the same number given explicitly."""


DEFAULT_N_TRIALS = _Default(20)


def tune(
    objective: Callable[[optuna.Trial], Any],
    *,
    objectives: Sequence[str] = ("value",),
    directions: Sequence[str] | None = None,
    direction: str | None = None,
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
        direction: the one objective's direction, as ``optuna.create_study(direction=...)``
            takes it (``directions=[direction]``).
        constraints: expressions on objective names or on metrics the objective records with
            ``trial.set_user_attr("metrics", {...})``.
        n_workers: local worker processes (forked: the objective need not be importable).
        sampler, pruner: a name, or a spec's form ``{"name": "median", "n_warmup_steps": 2}``
            (``{"name": ..., "params": {...}}`` is accepted too); checked before anything is
            written, the errors naming ``sampler.PARAMETER`` or ``pruner.PARAMETER``. The
            pruner ``auto`` (the default, as in a spec) prunes an objective that reports its
            steps (``trial.report``/``trial.should_prune``, or :func:`tuneops.pruning.report`
            and :func:`tuneops.pruning.should_prune` with several objectives) at fractions of
            its largest step (``max_step``, declared or learned from the first completed
            trials); an objective that reports nothing is never pruned.
        budget: a compute budget ``{unit: amount}`` (``fit_cpu_s``, ``fit_s`` or ``steps``, as
            ``search.budget`` in a spec): trials are created until the finished ones spent it,
            so the compute the pruner saves buys more trials. With a budget, ``n_trials``
            limits only when given.

    Example::

        >>> def objective(trial):
        ...     x = trial.suggest_float("x", -5, 5)
        ...     return -(x - 1) ** 2
        >>> result = tune(objective, n_trials=10, storage=":memory:")   # doctest: +SKIP
    """

    if not callable(objective):
        raise SpecError(
            f"objective: expected a function of an Optuna trial returning the objective "
            f"value(s), received {type(objective).__name__} {objective!r}."
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SpecError(f"seed: expected an integer >= 0, received {seed!r}.")
    compute = dict(check_budget(budget, root="")) if budget is not None else {}
    _check_count("n_trials", n_trials, allow_none=True)
    _check_count("n_workers", n_workers)
    if timeout_s is not None and (
        isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0
    ):
        raise SpecError(
            f"timeout_s: expected a number of seconds > 0 or None, received {timeout_s!r}."
        )
    if compute and n_trials is DEFAULT_N_TRIALS:
        n_trials = None  # the compute budget decides, as in a spec (n_trials limits when given)
    if n_trials is None and timeout_s is None and not compute:
        raise SpecError(
            "n_trials, timeout_s and budget: expected at least one of them, received none; "
            "give n_trials=N, timeout_s=SECONDS or budget={'fit_cpu_s': SECONDS}."
        )
    names = [objectives] if isinstance(objectives, str) else list(objectives)  # one objective
    if not names or not all(isinstance(n, str) and n for n in names):
        raise SpecError(
            f"objectives: expected the objectives' names, such as ['accuracy', "
            f"'latency_p95_ms'], received {objectives!r}."
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SpecError(
            f"objectives: {', '.join(map(repr, twice))} is listed twice in {names}; name each "
            "objective once."
        )
    if direction is not None:
        if directions is not None or len(names) != 1:
            raise SpecError(
                f"direction: one objective's direction, received {direction!r} with "
                f"objectives {names} and directions {directions}; give directions=[...] "
                "(one per objective) instead."
            )
        if direction not in ("maximize", "minimize"):
            raise SpecError(
                f"direction: expected maximize or minimize, received {direction!r}."
            )
        directions = [direction]
    if directions is None:
        directions = [METRICS[n].direction if n in METRICS else "maximize" for n in names]
    directions = list(directions)
    if len(directions) != len(names) or any(d not in ("maximize", "minimize") for d in directions):
        raise SpecError(
            f"directions: expected one of maximize/minimize per objective {names}, received "
            f"{directions}."
        )
    objs = tuple(Objective(metric=n, direction=d) for n, d in zip(names, directions, strict=False))
    parsed = parse_constraints(constraints)
    check_constraints(parsed)
    chosen_selection = selection_for(selection, objs)
    function = getattr(objective, "__name__", "objective")
    default = re.sub(r"[^A-Za-z0-9_.\-]", "_", f"tune-{function}")  # tune-<lambda>: tune-_lambda_
    name = study or default[:128]
    if not isinstance(name, str) or not STUDY_NAME.match(name):
        # also keeps the default output directory, tuneops-out/NAME, inside tuneops-out
        raise SpecError(
            f"study: expected a name of letters, digits, '_', '-' or '.' (starting with a "
            f"letter or digit), received {name!r}."
        )
    out_dir = Path(output_dir or Path("tuneops-out") / name)
    check_output_dir(out_dir, option="output_dir")  # refused now, not after the trials
    sampler_name, sampler_params = _component("sampler", sampler)
    # the space of a custom objective is judged by `auto` from its first trials
    make = functools.partial(
        make_sampler,
        sampler_name,
        sampler_params,
        conditional=None,
        n_trials=n_trials,
        n_objectives=len(names),
    )
    pruner_name, pruner_params = _component("pruner", pruner)
    pruner_factory = functools.partial(
        make_pruner, pruner_name, pruner_params, n_objectives=len(names), n_trials=n_trials
    )
    make(seed=seed)  # bad sampler or pruner parameters fail before anything is written
    built = pruner_factory()
    store = get_storage(storage, n_workers=n_workers)  # after every check: a refusal writes nothing
    opened = open_study(
        name,
        store,
        directions,
        sampler=make(seed=seed),
        pruner=built,
        attrs={OBJECTIVES_ATTR: [o.to_dict() for o in objs]},
    )
    record_pruner(opened, built, pruner_name, n_trials, field="pruner")
    resumed = len(opened.get_trials(deepcopy=False))
    _say_resumed(opened, objective, resumed, n_trials)
    judge = functools.partial(constraint_record, metric_names=names, constraints=parsed)
    sampler_factory = lambda i: CurrentConstraints(  # noqa: E731
        FirstTrialSeeded(lambda first: make(seed=sampler_seed(seed, i, first)), resumed),
        [str(c) for c in parsed],
        judge,
    )
    opened.sampler = sampler_factory(0)
    opened.set_user_attr(CONSTRAINTS_ATTR, [str(c) for c in parsed])
    _study.record_output_dir(opened, out_dir)  # before the trials: the record sees it
    wrapped = _Constrained(objective, names, parsed)
    setup = runner.WorkerSetup(name, storage, sampler_factory, pruner_factory, wrapped, n_workers)
    started = time.time()
    drive(opened, setup, n_trials, timeout_s, n_workers, progress, budget=compute)
    # `tuneops show`/`report` start from the snapshot (a journal file only; the few entries that
    # selection and the results document add are replayed after it). Saved before them: the
    # snapshot, the candidates of selection and the records of the results are the end of a
    # run's largest allocations (4-6 MB each at 10,000 trials), and its memory peaked at their sum.
    _study.save_snapshot(opened)

    message = None
    try:
        trials = opened.get_trials(deepcopy=False)
        candidates = candidates_from_trials(trials, names)
        if not candidates:  # say why: every trial failed on the objective's error, or was pruned
            raise NoFeasibleTrial(nothing_completed(trials))
        choice: Choice | None = select_trial(candidates, objs, parsed, chosen_selection)
        if choice is not None:
            opened.set_user_attr(SELECTION_ATTR, choice.to_dict())
    except NoFeasibleTrial as exc:
        choice, message = None, str(exc)
    results = study_results(
        opened, choice=choice, elapsed_s=time.time() - started, message=message, record=True
    )
    try:
        results_path = write_json(out_dir / "results.json", results)
    except WriteError as exc:
        error = WriteError(
            f"{exc} Every trial is recorded in the study's storage: tune() again with study="
            f"{name!r} (and the same storage) runs only what its budget has left and writes "
            "results.json."
        )
        error.errno = exc.errno
        raise error from exc
    return RunResult(opened, choice, results, out_dir, None, results_path, message)
