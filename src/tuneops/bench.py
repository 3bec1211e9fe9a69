"""Compare pruners on one spec: live runs (``tuneops bench pruners``) and replays of real curves.

* :func:`bench_pruners` runs the spec once per (pruner, seed) with :func:`tuneops.tuning.run`
  (same data, budget and folds), and summarises each run from its storage: pruning rate, best
  final quality (one objective) or hypervolume (several), compute (fit plus measurement
  seconds), wall time and compute to the best result. Repeated seeds give a spread.
* :func:`record_curves` trains configurations to the end, step by step, and keeps every
  intermediate vector and cumulative fit second; :func:`replay` runs a pruner over such
  recorded curves in a given order. A replay is exact about what a pruner would have cut and
  what that would have cost, for many pruners and orders at the price of one training run
  (the order stands in for the sampler: it is random search).

The data is computed first (plain dicts); :func:`render_table` and :func:`plot_bench` render it.
"""

from __future__ import annotations

import io
import math
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from tuneops import _record, _study, pareto, runner
from tuneops._files import write_atomic
from tuneops.data import load_section
from tuneops.objective import SpecObjective
from tuneops.pruning import (
    FIDELITY_ATTR,
    busy_seconds,
    consult_at,
    intermediate_values,
    make_pruner,
    pruning_savings,
    report,
    should_prune,
    trial_compute,
)
from tuneops.spec import load_spec
from tuneops.tuning import run

__all__ = [
    "bench_pruners",
    "run_summary",
    "record_curves",
    "replay",
    "compute_to_reach",
    "hypervolume",
    "reference_point",
    "render_table",
    "plot_bench",
]


# -- quality of a set of results ------------------------------------------------------------------
def hypervolume(
    values: Sequence[Sequence[float]], directions: Sequence[str], reference: Sequence[float]
) -> float:
    """Hypervolume dominated by ``values`` up to ``reference`` (Optuna's implementation)."""
    if not len(values):
        return 0.0
    return pareto.hypervolume(
        pareto.losses(values, directions), pareto.losses([reference], directions)[0]
    )


def reference_point(
    all_values: Sequence[Sequence[float]], directions: Sequence[str]
) -> list[float]:
    """A reference point just beyond the worst value of each objective over all runs compared."""
    arr = np.asarray(all_values, dtype=float)
    ref = []
    for j, d in enumerate(directions):
        col = arr[:, j]
        span = float(col.max() - col.min()) or 1.0
        ref.append(
            float(col.min() - 0.1 * span) if d == "maximize" else float(col.max() + 0.1 * span)
        )
    return ref


# -- live runs ------------------------------------------------------------------------------------
def run_summary(study: optuna.Study) -> dict[str, Any]:
    """Per-run figures from the storage: trials, pruning, compute, best, time to best.

    ``wall_s`` counts the seconds during which a finished trial ran (:func:`busy_seconds`),
    not the span from the first start to the last end: a run interrupted and resumed an hour
    later took the seconds its trials ran, not the hour between. ``values`` (what ``best`` is
    computed from) are those of the complete trials that met the spec's constraints. The time
    and compute to the best (several objectives: to the front) are the run's results.json
    figures: to the front its selection printed (ties within noise left out), while that
    selection is current; the plain Pareto front only for a study without one.
    """

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    # The best is the best a run could select: a trial that broke the spec's constraints is not
    # (an infeasible 0.9666 was a run's "best accuracy" while its selection was 0.9069).
    complete = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.values is not None
        and _study.feasible(t) is not False
    ]
    fit = [t.user_attrs.get(FIDELITY_ATTR, {}) for t in done]
    # CPU seconds, which the machine's load does not inflate (wall seconds measured the load:
    # 1.6-3.0x the CPU between runs on a busy machine); records without CPU give wall seconds
    compute = sum(
        trial_compute(r, "fit_cpu_s") + r.get("measure_cpu_s", r.get("measure_s", 0.0)) for r in fit
    )
    # the front the product printed, as results.json computes the time to it (pruning_savings
    # with the selection's front): the plain front counted a trial tied within noise that
    # completed last, and a run's time to best could be its whole length
    choice = _record.current_choice(study, trials) if len(study.directions) > 1 else None
    printed = choice.get("pareto_front") if choice is not None else None
    savings = pruning_savings(study, trials, printed) or {}
    # A trial stopped by search.trial_timeout_s is recorded as pruned, but the pruner did not
    # stop it (the pruning section counts it apart too).
    late = sum(_study.TIMED_OUT in t.user_attrs for t in done)
    pruned = sum(
        t.state == TrialState.PRUNED and _study.TIMED_OUT not in t.user_attrs for t in done
    )
    return {
        "n_trials": len(done),
        "n_pruned": pruned,
        "n_timed_out": late,
        "pruning_rate": pruned / len(done) if done else 0.0,
        "compute_s": compute,
        # while trials ran: a run interrupted and resumed later spent no time in between
        "wall_s": busy_seconds(done),
        "time_to_best_s": savings.get("time_to_best_s"),
        "fit_s_to_best": savings.get("fit_s_to_best"),
        "values": [list(t.values) for t in complete],
        "directions": [d.name.lower() for d in study.directions],
        # the trial numbers of the front the run printed (several objectives), if it did
        "front": list(printed) if printed is not None else None,
    }


def bench_pruners(
    spec: Any,
    pruners: Sequence[str | Mapping[str, Any]] | None = None,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "tuneops-bench",
    n_trials: int | None = None,
    n_workers: int | None = None,
    on_run: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``spec`` once per pruner and seed on the same data and budget; summarise each run.

    Studies are named ``<study>-<pruner>-s<seed>`` in a journal file in ``out_dir`` (so a
    Hyperband run repeats: its brackets hash the study name, and a rerun resumes the runs it
    finds). ``on_run`` receives each run's summary as soon as the run ends, with ``pruner``
    and, as ``run_best``, its best value (one objective) or the size of its Pareto front
    (several: the hypervolume needs every run's results).

    Returns:
        ``{"spec", "pruners": [{"pruner", "runs", "mean", "std"}], "reference"}``
        where each run has pruning_rate, best (best value, or hypervolume with several
        objectives, of the trials that met the constraints), compute_s (fit plus measurement
        CPU seconds), wall_s, time_to_best_s.
    """

    base = load_spec(spec)
    if pruners is None:
        pruners = default_pruners(len(base.metric_names))
    for pruner in pruners:  # every pruner fits the spec before any run (nothing half-done)
        make_pruner(pruner, n_objectives=len(base.metric_names))
    overrides: dict[str, Any] = {}
    if n_trials is not None:
        overrides["n_trials"] = n_trials
    if n_workers is not None:
        overrides["n_workers"] = n_workers
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    storage = str(out / "bench.journal")
    results: list[dict[str, Any]] = []
    for pruner in pruners:
        label = pruner if isinstance(pruner, str) else _label(pruner)
        runs = []
        for seed in seeds:
            # a valid study name
            name = f"{base.study}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', label).strip('_')}-s{seed}"
            result = run(
                base,
                study=name,
                seed=seed,
                pruner=pruner,
                storage=storage,
                output_dir=str(out / "runs" / name),
                **overrides,
            )
            summary = run_summary(result.study)
            summary.update(seed=seed, study=name)
            runs.append(summary)
            if on_run is not None:
                on_run({**summary, "pruner": label, "run_best": _run_best(summary)})
        results.append({"pruner": label, "runs": runs})
    directions = results[0]["runs"][0]["directions"] if results and results[0]["runs"] else []
    everything = [v for r in results for run_ in r["runs"] for v in run_["values"]]
    ref = reference_point(everything, directions) if len(directions) > 1 and everything else None
    for entry in results:
        for run_ in entry["runs"]:
            run_["best"] = _best(run_["values"], directions, ref)
        entry["mean"], entry["std"] = _aggregate(entry["runs"])
    return {
        "spec": base.study,
        "metric": "hypervolume"
        if ref
        else (base.metric_names[0] if base.metric_names else "value"),
        "reference": ref,
        "seeds": list(seeds),
        "pruners": results,
    }


def default_pruners(n_objectives: int) -> tuple[str, ...]:
    """What ``bench pruners`` compares when not told: no pruning, Optuna's median pruner (one
    objective) or the Pareto pruner (several), and ``auto``."""
    return ("none", "median", "auto") if n_objectives == 1 else ("none", "pareto", "auto")


def _label(component: Mapping[str, Any]) -> str:
    rest = {k: v for k, v in component.items() if k != "name"}
    return f"{component.get('name')}(" + ",".join(f"{k}={v}" for k, v in sorted(rest.items())) + ")"


def _best(
    values: Sequence[Sequence[float]], directions: Sequence[str], ref: Sequence[float] | None
) -> float | None:
    if not values:
        return None
    if ref is not None:
        return hypervolume(values, directions, ref)
    pick = max if directions[0] == "maximize" else min
    return float(pick(v[0] for v in values))


def _run_best(run_: Mapping[str, Any]) -> float | int | None:
    """One run's best value (one objective), or how many trials its Pareto front holds: the
    front the run printed (ties within noise left out), the plain one for a run without it."""
    values, directions = run_["values"], run_["directions"]
    if len(directions) == 1:
        return _best(values, directions, None)
    if run_.get("front") is not None:
        return len(run_["front"])
    return int(pareto.pareto_mask(values, directions).sum()) if values else 0


_FIGURES = ("pruning_rate", "best", "compute_s", "wall_s", "time_to_best_s")


def _aggregate(
    runs: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    for key in _FIGURES:
        xs = [r[key] for r in runs if r.get(key) is not None]
        mean[key] = statistics.fmean(xs) if xs else None
        std[key] = statistics.pstdev(xs) if len(xs) > 1 else (0.0 if xs else None)
    return mean, std


def render_table(bench: Mapping[str, Any]) -> list[list[str]]:
    """Rows ``[pruner, pruning rate, best, compute s, wall s, time to best s]`` as mean ± std."""

    def cell(entry: Mapping[str, Any], key: str, fmt: str) -> str:
        m, s = entry["mean"].get(key), entry["std"].get(key)
        if m is None:
            return "-"
        return f"{m:{fmt}} ± {s:{fmt}}" if s else f"{m:{fmt}}"

    rows = [
        [
            "pruner",
            "pruning rate",
            f"best {bench['metric']}",
            "compute CPU s",
            "wall s",
            "time to best s",
        ]
    ]
    for entry in bench["pruners"]:
        rows.append(
            [
                entry["pruner"],
                cell(entry, "pruning_rate", ".2f"),
                cell(entry, "best", ".4f"),
                cell(entry, "compute_s", ".1f"),
                cell(entry, "wall_s", ".1f"),
                cell(entry, "time_to_best_s", ".1f"),
            ]
        )
    return rows


def plot_bench(bench: Mapping[str, Any], path: str | Path) -> Path:
    """Best result against compute, one colour per pruner, one point per seed (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for entry in bench["pruners"]:
        xs = [r["compute_s"] for r in entry["runs"] if r.get("best") is not None]
        ys = [r["best"] for r in entry["runs"] if r.get("best") is not None]
        ax.scatter(xs, ys, label=entry["pruner"], alpha=0.8)
    ax.set_xlabel("compute (fit + measurement CPU seconds)")
    ax.set_ylabel(f"best {bench['metric']}")
    ax.set_title(f"pruners on {bench['spec']} (seeds {', '.join(map(str, bench['seeds']))})")
    ax.legend(fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    return write_atomic(path, buf.getvalue())  # whole or not at all, as every tuneops file


# -- recorded curves and replays
# --------------------------------------------------------------------
class _Never(optuna.pruners.BasePruner):
    """Prunes nothing but makes the objective train step by step and report every step."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return False


def record_curves(
    spec: Any,
    *,
    n_configs: int,
    seed: int = 0,
    dataset: Any = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train ``n_configs`` random configurations of ``spec`` to the end, keeping their curves.

    Returns ``{"directions", "metrics", "trials": [{"params", "curve": {step: vector},
    "fit_s_steps", "fit_cpu_s_steps", "score_cpu_s_steps", "measure_s", "values"}]}`` (real
    training; nothing is simulated; the step lists are cumulative). ``on_trial`` receives each
    trial's record as soon as it is trained (to save progress).
    """

    spec = load_spec(spec, n_trials=n_configs, seed=seed)
    data = dataset if dataset is not None else load_section(spec.data)
    objective = SpecObjective(spec, data)
    study = optuna.create_study(
        directions=spec.directions,
        sampler=optuna.samplers.RandomSampler(seed),
        pruner=_Never(),
        study_name=f"{spec.study}-curves",
    )
    trials: list[dict[str, Any]] = []
    kept: set[int] = set()

    def keep() -> None:  # trials may finish out of number order: keep each trial once
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.number in kept:
                continue
            kept.add(t.number)
            record = t.user_attrs[FIDELITY_ATTR]
            trials.append(
                {
                    "params": dict(t.params),
                    "curve": {
                        str(k): list(v)
                        for k, v in intermediate_values(t, len(spec.directions)).items()
                    },
                    **{
                        key: record[key]
                        for key in ("fit_s_steps", "fit_cpu_s_steps", "score_cpu_s_steps")
                    },
                    "measure_s": record.get("measure_s", 0.0),
                    "values": list(t.values),
                }
            )
            if on_trial is not None:
                on_trial(trials[-1])

    runner.set_budget(study, n_configs)
    runner.work(study, objective, on_trial=keep)
    return {
        "study": spec.study,
        "directions": list(spec.directions),
        "metrics": spec.metric_names,
        "trials": trials,
    }


def replay(
    curves: Mapping[str, Any],
    pruner: optuna.pruners.BasePruner | str,
    order: Sequence[int] | None = None,
    *,
    cost: str = "fit_s_steps",
) -> list[dict[str, Any]]:
    """Run ``pruner`` over recorded ``curves`` in ``order``, as the objective would have.

    Returns per trial, in order: ``{"index", "pruned_at" (step or None), "compute_s",
    "values" (None when pruned)}``; compute is the cumulative ``cost`` (``fit_s_steps``: fit
    seconds; ``fit_cpu_s_steps``: fit CPU seconds) up to the step the trial reached, plus the
    measurement seconds for a completed trial.
    """
    directions = curves["directions"]
    if isinstance(pruner, str):
        pruner = make_pruner(pruner, n_objectives=len(directions), n_trials=len(curves["trials"]))
    study = optuna.create_study(
        directions=directions,
        pruner=pruner,
        sampler=optuna.samplers.RandomSampler(0),
        study_name=f"replay-{curves.get('study', 'curves')}",
    )
    out = []
    for index in order if order is not None else range(len(curves["trials"])):
        rec = curves["trials"][index]
        trial = study.ask()
        pruned_at = None
        steps = sorted(int(s) for s in rec["curve"])  # the steps it was recorded at
        for k, step in enumerate(steps):
            report(trial, rec["curve"][str(step)], step)
            if consult_at(step, len(directions), steps[-1]) and should_prune(trial):
                pruned_at, spent = step, rec[cost][k]
                break
        if pruned_at is None:
            study.tell(trial, rec["values"])
            spent = rec[cost][-1] + rec["measure_s"]
        else:
            study.tell(trial, state=TrialState.PRUNED)
        out.append(
            {
                "index": index,
                "pruned_at": pruned_at,
                "compute_s": spent,
                "values": None if pruned_at is not None else rec["values"],
            }
        )
    return out


def compute_to_reach(outcomes: Sequence[Mapping[str, Any]], target: float, direction: str) -> float:
    """Compute spent until a completed trial reached ``target`` (inf when none did)."""
    spent = 0.0
    for o in outcomes:
        spent += o["compute_s"]
        if o["values"] is not None:
            v = o["values"][0]
            if (v >= target) if direction == "maximize" else (v <= target):
                return spent
    return math.inf
