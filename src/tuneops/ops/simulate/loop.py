"""The production loop on a stream: monitor each batch, re-tune, promote; recovery per shift.

A training part tunes and deploys the first champion (version 1, also kept as the
*never-updated* baseline); then every batch of the stream (:mod:`.stream`: disjoint, unseen
rows) goes through :func:`tuneops.ops.retune.monitor_batch` (monitor, and re-tune when it says
so, on the recent flagged batches; after a promotion, an ``ok`` batch refreshes the champion on
the rows since the change, :func:`tuneops.ops.retune.refresh`), so the simulation drives exactly
the code path of ``tuneops monitor --auto-retune --window ...``. Every model is scored on a batch
*before* anything learns from it, and no batch repeats a row, so every score is on rows no model
has seen.

Everything is written under ``out_dir``: the storage (``simulate.journal`` unless given), the
initial study's outputs, the registry's artifacts, the re-tuning studies' outputs,
``timeline.json`` and ``timeline.png``. Bad input (an unknown dataset, a file without
``target``, a stream that does not fit) is refused before anything is written.

While it runs, ``out_dir/simulate.running`` (:data:`RUNNING_MARKER`) names the model and the
storage it writes; it is removed once ``timeline.json`` and ``timeline.png`` are written. A
simulation stopped before that (Ctrl-C, SIGTERM, a crash) leaves it, and the next simulation of
the same model and storage in that directory starts over: it deletes the stopped one's studies
(the initial study, the registry, the re-tuning studies) and artifacts first. A finished
simulation has no marker and is never touched (its model name stays taken).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from tuneops import runner, tuning
from tuneops._files import path_part, write_atomic
from tuneops.data import load_dataset
from tuneops.errors import DataError, UsageError
from tuneops.export import write_json
from tuneops.ops.monitor import MonitorConfig, metric_value, resampled_scores
from tuneops.ops.registry import PREFIX, Registry, list_models, register_trial
from tuneops.ops.retune import monitor_batch, performance_dropped
from tuneops.ops.simulate.plots import timeline_figure
from tuneops.ops.simulate.stream import Shift, Stream, make_stream, time_stream
from tuneops.spec import load_spec
from tuneops.storage import get_storage, mask_url

__all__ = [
    "simulate",
    "recovery",
    "SimulationInterrupted",
    "RUNNING_MARKER",
    "RECOVERY_TARGET",
    "VERDICTS",
]

#: The file in ``out_dir`` that says a simulation there has not finished (see the module).
RUNNING_MARKER = "simulate.running"

#: The share of a shift's cost that re-tuning must win back (issue 19's target).
RECOVERY_TARGET = 0.9

#: A shift's verdict (:func:`recovery`): its interval of the share recovered lies at or above
#: the target, below it, or across it (or the cost itself is within the sampling noise); or
#: the shift made the model in place better with confidence.
VERDICTS = ("recovered", "not recovered", "within noise", "no loss")

#: Row resamples of each batch behind the recovery intervals (the monitor's paired gain: 1000).
N_BOOT = 1000


class SimulationInterrupted(runner.Interrupted):
    """A simulation stopped by SIGINT or SIGTERM after ``n_done`` of ``n_batches`` batches
    (0: during the initial tuning); ``out`` holds a partial simulation, without a timeline,
    which the same simulation replaces when run again."""

    def __init__(self, signum: int, *, out: Path, n_done: int, n_batches: int) -> None:
        super().__init__(signum)
        self.out, self.n_done, self.n_batches = out, n_done, n_batches


def _is_file(source: str) -> bool:
    return not source.startswith(("pmlb:", "sklearn:"))


def _load(source: str, target: str | None) -> Any:
    if _is_file(source) and target is None:
        raise UsageError(
            f"target (--target): {source!r} is a file, so name its label column as target "
            "(--target COLUMN); nothing was written."
        )
    try:
        return load_dataset(source, target=target)
    except DataError as exc:
        raise DataError(
            str(exc)
            .replace("data.target", "target (--target)")
            .replace("data.source", "source (--dataset)")
        ) from None


def simulate(
    source: str = "pmlb:phoneme",
    *,
    target: str | None = None,
    family: str = "knn",
    n_batches: int | None = 24,
    batch_size: int = 100,
    shifts: Sequence[Shift] | None = None,
    time_column: str | None = None,
    n_trials: int = 8,
    retune_trials: int | None = None,
    monitor: Mapping[str, Any] | None = None,
    storage: str | None = None,
    model: str | None = None,
    out_dir: str | Path = "tuneops-out/simulate",
    seed: int = 0,
    plot: bool = True,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the production loop on a stream of unseen batches; returns the timeline (and writes it).

    Args:
        source: a dataset source (``pmlb:NAME``, ``sklearn:NAME``, or a file with ``target``).
        shifts: None: covariate shift at a third of the stream, concept drift at two thirds;
            ``()``: a stationary stream (what false alarms are measured on).
        time_column: stream the rows in this column's order instead (no injected shifts; the
            column is not a feature); ``n_batches`` None then streams every row there is.
        monitor: the spec's ``monitor`` section (thresholds, re-tuning budget).
        storage: default ``out_dir/simulate.journal``.
        progress: called with each batch's timeline row.

    Raises:
        UsageError: bad arguments or data (before anything is written); the model name is taken
            (by a finished simulation: an unfinished one in ``out_dir`` is started over).
        SimulationInterrupted: stopped by SIGINT or SIGTERM; ``out_dir`` holds a partial
            simulation that the same call starts over.

    Example::

        >>> timeline = simulate("pmlb:phoneme", n_batches=12)        # doctest: +SKIP
        >>> [(s["verdict"], s["judgement"]["share_interval"])                # doctest: +SKIP
        ...  for s in timeline["summary"]["shifts"]]
    """
    out = Path(out_dir)
    data = _load(source, target)
    label = str(data.y.name or target or "target")
    frame = data.X.assign(**{label: data.y.to_numpy()})
    if time_column is not None:
        if shifts:
            raise UsageError(
                "shifts (--shift): a time-ordered stream (time_column, --time-column) carries "
                "its own drift; leave shifts (--shift) out."
            )
        shifts = []
        stream = time_stream(
            frame, time_column=time_column, n_batches=n_batches, batch_size=batch_size
        )
    else:
        n_batches = 24 if n_batches is None else n_batches
        if shifts is None:
            shifts = [Shift("covariate", n_batches // 3), Shift("concept", 2 * n_batches // 3)]
        stream = make_stream(
            frame,
            target=label,
            task=data.task,
            categorical=data.categorical,
            n_batches=n_batches,
            batch_size=batch_size,
            shifts=shifts,
            seed=seed,
        )
    mode = "time-ordered" if time_column else ("shifted" if shifts else "stationary")
    name = model or f"simulate-{Path(source.split(':')[-1]).name.split('.')[0]}"
    monitor_raw = {
        "retune_trials": retune_trials or n_trials,
        "artifact_dir": str(out / "registry"),
        **dict(monitor or {}),
    }
    config = MonitorConfig.from_raw(monitor_raw)
    if batch_size < config.min_rows:  # every batch would be refused after the initial tuning
        raise UsageError(
            f"batch_size (--batch-size): expected at least {config.min_rows} rows per batch "
            f"(monitor.min_rows: the drift tests refuse smaller batches), received {batch_size}; "
            "nothing was written."
        )
    storage = storage or str(out / "simulate.journal")
    marker = {"model": name, "storage": mask_url(storage)}
    stopped = _read_marker(out) == marker  # an earlier one of this model here never finished
    if name in list_models(storage) and not stopped:
        raise UsageError(
            f"simulate: model {name!r} is already registered in this storage; pass another --model "
            "name or another --storage (or --out for the default storage)."
        )
    metric = "accuracy" if data.task == "classification" else "r2"
    spec = load_spec(
        {
            "study": f"{name}.initial",
            "data": {"source": source, "task": data.task, "target": label},
            "model": {"family": family},
            "objectives": [metric],
            "search": {"n_trials": n_trials, "cv_folds": 3, "seed": seed},
            "storage": storage,
            "output_dir": str(out / "initial"),
            "monitor": monitor_raw,
        }
    )
    if stopped:
        _start_over(out, name, storage)
    out.mkdir(parents=True, exist_ok=True)  # the first write: everything above only read
    write_json(out / RUNNING_MARKER, {**marker, "started": _now()})
    rows: list[dict[str, Any]] = []
    try:
        result = tuning.run(spec, dataset=stream.train)
        if result.choice is None:
            raise UsageError(f"simulate: the initial tuning found no model: {result.message}")
        train = load_dataset(stream.train, target=label, task=data.task, name=source)
        registry = Registry.open(name, storage, create=True)
        register_trial(
            registry,
            result.study,
            result.choice.selected.number,
            train,
            spec,
            source={"kind": "simulate"},
            promote=True,
            reason="initial model of the simulation",
        )
        resamples: dict[int, dict[str, np.ndarray]] = {}
        _run(registry, stream, shifts, label, metric, config, out, seed, progress, rows, resamples)
        timeline = {
            "dataset": source,
            "family": family,
            "metric": metric,
            "model": name,
            "mode": mode,
            "n_batches": len(stream.batches),
            "batch_size": batch_size,
            "rows": {
                "train": len(stream.train_rows),
                "streamed": sum(len(r) for r in stream.rows),
                "seen_twice": _seen_twice(stream),
            },
            "shifts": [{**s.to_dict(), **stream.details[s.at]} for s in shifts],
            "thresholds": config.to_dict(),
            "batches": rows,
            "summary": recovery(rows, shifts, resamples=resamples, alpha=config.alpha),
        }
        # Each written whole or not at all; timeline.json last, so a simulation stopped while
        # writing has none, as its stop message says.
        if plot:
            write_atomic(out / "timeline.png", _png(timeline_figure(timeline)))
        write_json(out / "timeline.json", timeline)
    except KeyboardInterrupt as exc:
        raise SimulationInterrupted(
            runner.Interrupted.of(exc).signum,
            out=out,
            n_done=len(rows),
            n_batches=len(stream.batches),
        ) from None
    (out / RUNNING_MARKER).unlink()  # finished: never started over
    return timeline


def _png(figure: Any) -> bytes:
    """``figure`` as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(figure)
    return buffer.getvalue()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _read_marker(out: Path) -> dict[str, Any] | None:
    """The model and storage of the unfinished simulation in ``out``, or None."""
    try:
        marker = json.loads((out / RUNNING_MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict):
        return None
    return {"model": marker.get("model"), "storage": marker.get("storage")}


def _start_over(out: Path, name: str, storage: str) -> None:
    """Delete what an unfinished simulation of model ``name`` wrote: its studies in ``storage``
    (the initial study, the registry, the re-tuning studies) and its artifacts and timeline in
    ``out`` (re-tuning output directories are rewritten by the studies of the same names)."""
    store = get_storage(storage)
    retuning = f"{path_part(name)[:100]}.retune-v"
    for summary in optuna.get_all_study_summaries(store, include_best_trial=False):
        study = summary.study_name
        if study in (f"{name}.initial", PREFIX + name) or study.startswith(retuning):
            optuna.delete_study(study_name=study, storage=store)
    shutil.rmtree(out / "registry" / path_part(name), ignore_errors=True)
    for stale in ("timeline.json", "timeline.png"):
        with contextlib.suppress(FileNotFoundError):
            (out / stale).unlink()


def _seen_twice(stream: Stream) -> int:
    """Rows streamed more than once or also trained on (0 by construction; recorded as proof)."""
    streamed = [i for r in stream.rows for i in r]
    return len(streamed) - len(set(streamed)) + len(set(streamed) & set(stream.train_rows))


def _run(
    registry: Registry,
    stream: Stream,
    shifts: Sequence[Shift],
    label: str,
    metric: str,
    config: MonitorConfig,
    out: Path,
    seed: int,
    progress: Callable[[dict[str, Any]], None] | None,
    rows: list[dict[str, Any]],
    resamples: dict[int, dict[str, np.ndarray]],
) -> list[dict[str, Any]]:
    """Append each batch's timeline row to ``rows`` (what a stop leaves is the batches done),
    and to ``resamples[t]`` the champion's and each frozen model's scores on the same
    :data:`N_BOOT` row resamples of batch ``t`` (paired; what :func:`recovery`'s intervals are
    computed from)."""
    baseline, _ = registry.load_model(1)
    frozen: dict[int, Any] = {}  # shift index -> the champion in place when the shift began
    flagged: list[tuple[pd.DataFrame, str]] = []
    # The labelled rows since the last promoted re-tuning (its recent data, then every batch
    # that re-tuned nothing and showed no confident drop): what a refresh refits the champion's
    # configuration on. None before the first promotion.
    since_change: pd.DataFrame | None = None
    retuned_on: list[pd.DataFrame] = []
    for t, batch in enumerate(stream.batches):
        champion = registry.require_champion()
        model_now, _ = registry.load_model(champion)
        for i, s in enumerate(shifts):
            if s.at == t:
                frozen[i] = model_now
        X, y = batch.drop(columns=[label]), batch[label].to_numpy()
        predictions = {"champion": model_now.predict(X)}
        predictions.update({str(i): m.predict(X) for i, m in frozen.items()})
        champion_score = metric_value(metric, y, predictions["champion"])
        baseline_score = metric_value(metric, y, baseline.predict(X))
        frozen_scores = {str(i): metric_value(metric, y, predictions[str(i)]) for i in frozen}
        if shifts:  # what recovery's intervals need; a stream without shifts has no recovery
            rng = np.random.default_rng([seed & 0xFFFFFFFF, t])
            idx = rng.integers(0, len(y), size=(N_BOOT, len(y)))  # every model: the same rows
            resamples[t] = {k: resampled_scores(metric, y, p, idx) for k, p in predictions.items()}

        def window(
            assessment: Any,
            batch: pd.DataFrame = batch,
            flagged: list[tuple[pd.DataFrame, str]] = flagged,
        ) -> list[tuple[pd.DataFrame, str]]:
            # The trailing batches flagged for the same kind of alarm (a metric drop, or drift
            # only), so data from before a change is not mixed into the re-tuning.
            kind = "performance" if performance_dropped(assessment, config) else "drift"
            trail: list[tuple[pd.DataFrame, str]] = []
            for b, k in reversed(flagged):
                if k != kind:
                    break
                trail.insert(0, (b, k))
            return [*trail, (batch, kind)][-config.recent_batches :]

        def recent(assessment: Any, window: Any = window) -> pd.DataFrame:
            frame = pd.concat([b for b, _ in window(assessment)], ignore_index=True)
            retuned_on[:] = [frame]
            return frame

        learn_from = [batch, *(b for b, _ in flagged)]
        blocked = _unknown_classes(
            registry,
            champion,
            label,
            learn_from if since_change is None else [*learn_from, since_change],
        )
        assessment, outcome, note = monitor_batch(
            registry,
            batch,
            recent=recent,
            window=since_change,
            auto_retune=blocked is None,
            config=config,
            source=f"simulate batch {t}",
            seed=seed + t,
            out_dir=out,
        )
        if blocked and (assessment.decision == "retune" or since_change is not None):
            note = blocked  # what a re-tuning or refresh would have run on here
        refreshed = outcome if outcome is not None and outcome.method == "refresh" else None
        retuned = outcome if refreshed is None else None
        promoted = retuned is not None and retuned.decision == "promote"
        flagged = [] if assessment.decision == "ok" or promoted else window(assessment)
        if promoted:
            since_change = retuned_on[0]
        elif (
            since_change is not None
            and retuned is None
            and not performance_dropped(assessment, config)
        ):
            since_change = pd.concat([since_change, batch], ignore_index=True)
        row = {
            "t": t,
            "phase": stream.phases[t],
            "rows": len(batch),
            "decision": assessment.decision,
            "reasons": assessment.reasons,
            "max_psi": assessment.max_psi,
            "share_drifted": assessment.share_drifted,
            "prediction_psi": assessment.prediction["psi"],
            "champion": champion,
            "champion_score": champion_score,
            "baseline_score": baseline_score,
            "frozen_scores": frozen_scores,
            "retune": retuned.to_dict() if retuned is not None else None,
            "refresh": refreshed.to_dict() if refreshed is not None else None,
            "note": note,
        }
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def _unknown_classes(
    registry: Registry, champion: int, label: str, frames: Sequence[pd.DataFrame]
) -> str | None:
    """Why the rows a re-tuning or refresh would learn from cannot be used, or None.

    The monitor refuses to train on labels the champion does not predict (in production they
    are most often labels encoded otherwise: :func:`tuneops.ops.monitor.check_labels`). A
    champion re-tuned on a few rows can lack classes of the data (on PMLB texture, 11 classes,
    a challenger fitted on 70 rows knew 9); the simulation then monitors without re-tuning
    instead of stopping, and says so on the batch.
    """
    classes = registry.classes(champion)
    if classes is None:
        return None
    known = set(np.asarray(classes).tolist())
    labels = {v for frame in frames for v in pd.unique(frame[label].dropna())}
    unknown = sorted(labels - known, key=str)
    if not unknown:
        return None
    return (
        f"re-tuning and refresh skipped: champion v{champion} predicts {len(known)} classes, "
        f"and the rows they would learn from also hold {', '.join(map(str, unknown[:5]))}"
        f"{', ...' if len(unknown) > 5 else ''} (the monitor does not train on classes its "
        "champion does not know: a model of more classes is a new study)"
    )


def _promoted(row: Mapping[str, Any]) -> bool:
    return bool(row["retune"]) and row["retune"]["decision"] == "promote"


def _refreshed(row: Mapping[str, Any]) -> bool:
    refresh = row.get("refresh") or {}
    return refresh.get("decision") == "promote"


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def recovery(
    rows: Sequence[Mapping[str, Any]],
    shifts: Sequence[Shift],
    *,
    resamples: Mapping[int, Mapping[str, np.ndarray]] | None = None,
    alpha: float = 0.05,
    target: float = RECOVERY_TARGET,
) -> dict[str, Any]:
    """Per shift: what it cost the model in place, how much re-tuning won back, and whether
    that is more than the rows' sampling noise can tell (pure).

    For shift ``k`` (its segment runs to the next shift or the end): ``before`` is the
    champion's mean score on the settled batches before it (after the previous shift's first
    promotion, when there was one); ``frozen`` is the model that was champion when the shift
    began, never updated, and ``champion`` the monitored one, both averaged over the segment's
    batches after its first promotion; ``recovered_share = (champion - frozen) / (before -
    frozen)`` when the shift cost anything. ``with_detection``: the same over the whole segment
    (detection and re-tuning time included). Every batch is unseen rows (disjoint stream), so
    these are scores on unseen rows. Without shifts: the share of non-``ok`` decisions.

    ``judgement`` weighs that against the noise of the rows it is measured on. With
    ``resamples`` (batch ``t`` -> the champion's (``"champion"``) and shift ``k``'s frozen
    model's (``"k"``) scores on the same row resamples of the batch, as :func:`simulate`
    records them), each figure gets a two-sided ``1 - alpha`` percentile interval from a
    bootstrap that resamples the rows of every batch (the batches before the shift apart from
    those after it; the champion and the frozen model on the same resamples: paired). Judged
    on the batches after the first promotion, or on the whole segment when nothing was
    promoted (no batch after a promotion: no judgement). ``verdict``:

    * ``no loss``: the cost's interval lies below 0 (the shift helped the model in place);
    * ``within noise``: the cost's interval contains 0 (nothing measurably lost: no share is
      judged), or the share's interval contains ``target``;
    * ``recovered`` / ``not recovered``: the share's interval lies at or above / below
      ``target``.

    Resamples in which the shift cost nothing have no share and are left out of its interval
    (fewer than ``alpha / 2`` of them when the cost is judged).
    """
    n = len(rows)
    summary: dict[str, Any] = {
        "n_batches": n,
        "n_retunes": sum(r["retune"] is not None for r in rows),
        "n_promotions": sum(_promoted(r) for r in rows),
        "n_refreshes": sum(_refreshed(r) for r in rows),
        "decisions": {d: sum(r["decision"] == d for r in rows) for d in ("ok", "warn", "retune")},
        "non_ok_share": (sum(r["decision"] != "ok" for r in rows) / n) if n else None,
    }
    ordered = sorted(enumerate(shifts), key=lambda p: p[1].at)
    per_shift: list[dict[str, Any]] = []
    settled_from = 0
    for j, (index, s) in enumerate(ordered):
        end = ordered[j + 1][1].at if j + 1 < len(ordered) else n
        segment = [r for r in rows if s.at <= r["t"] < end]
        settled = [r for r in rows if settled_from <= r["t"] < s.at]
        before = _mean([r["champion_score"] for r in settled])
        promotions = [r["t"] for r in segment if _promoted(r)]
        after_rows = [r for r in segment if promotions and r["t"] > promotions[0]]
        after = _share(after_rows, before, str(index))
        judged = after_rows if promotions else segment
        per_shift.append(
            {
                **s.to_dict(),
                "until": end,
                "before": before,
                "detected_at": next((r["t"] for r in segment if r["decision"] == "retune"), None),
                "first_promotion_at": promotions[0] if promotions else None,
                "after_promotion": after,
                "recovered_share": after["recovered_share"] if after else None,
                "with_detection": _share(segment, before, str(index)),
                "judgement": _judgement(
                    settled,
                    judged,
                    str(index),
                    on="after_promotion" if promotions else "segment",
                    resamples=resamples,
                    alpha=alpha,
                    target=target,
                ),
            }
        )
        per_shift[-1]["verdict"] = (per_shift[-1]["judgement"] or {}).get("verdict")
        settled_from = promotions[0] + 1 if promotions else s.at
    summary["shifts"] = per_shift
    lost = [
        p["recovered_share"]
        for p in per_shift
        if p["after_promotion"] and p["after_promotion"]["lost"] > 0
    ]
    # The worst shift's share: one figure that does not hide a shift that was not recovered.
    summary["recovered_share"] = min((v for v in lost if v is not None), default=None)
    summary["recovery_target"] = target
    summary["confidence"] = 1 - alpha
    summary["verdicts"] = {v: sum(p["verdict"] == v for p in per_shift) for v in VERDICTS}
    # Shifts whose share recovered lies below the target with confidence (a shift that cost
    # nothing measurable is not among them: one row in 100 is no loss to recover).
    summary["unrecovered"] = [i for i, p in enumerate(per_shift) if p["verdict"] == "not recovered"]
    return summary


def _share(
    part: Sequence[Mapping[str, Any]], before: float | None, key: str
) -> dict[str, Any] | None:
    """Point figures of the share recovered over ``part`` (the batches ``key``'s frozen
    model was scored on)."""
    scored = [r for r in part if key in r.get("frozen_scores", {})]
    if not scored or before is None:
        return None
    champion = float(np.mean([r["champion_score"] for r in scored]))
    frozen = float(np.mean([r["frozen_scores"][key] for r in scored]))
    lost = before - frozen
    return {
        "n_batches": len(scored),
        "champion": champion,
        "frozen": frozen,
        "lost": lost,
        "recovered_share": (champion - frozen) / lost if lost > 0 else None,
    }


def _judgement(
    settled: Sequence[Mapping[str, Any]],
    judged: Sequence[Mapping[str, Any]],
    key: str,
    *,
    on: str,
    resamples: Mapping[int, Mapping[str, np.ndarray]] | None,
    alpha: float,
    target: float,
) -> dict[str, Any] | None:
    """The cost, the gap to ``before`` and the share recovered on the ``judged`` batches, each
    with its bootstrap interval, and the verdict (see :func:`recovery`)."""
    scored = [r for r in judged if key in r.get("frozen_scores", {})]
    if not scored or not settled:
        return None
    before = float(np.mean([r["champion_score"] for r in settled]))
    champion = float(np.mean([r["champion_score"] for r in scored]))
    frozen = float(np.mean([r["frozen_scores"][key] for r in scored]))
    lost = before - frozen
    out: dict[str, Any] = {
        "on": on,
        "n_batches": len(scored),
        "rows": sum(int(r.get("rows", 0)) for r in scored),
        "rows_before": sum(int(r.get("rows", 0)) for r in settled),
        "before": before,
        "champion": champion,
        "frozen": frozen,
        "lost": lost,
        "lost_interval": None,
        "gap": champion - before,
        "gap_interval": None,
        "share": (champion - frozen) / lost if lost > 0 else None,
        "share_interval": None,
        "target": target,
        "verdict": None,
    }
    needed = [r["t"] for r in (*settled, *scored)]
    if resamples is None or any(t not in resamples for t in needed):
        return out
    b = np.mean([resamples[r["t"]]["champion"] for r in settled], axis=0)
    c = np.mean([resamples[r["t"]]["champion"] for r in scored], axis=0)
    f = np.mean([resamples[r["t"]][key] for r in scored], axis=0)
    levels = [alpha / 2, 1 - alpha / 2]

    def interval(values: np.ndarray) -> list[float]:
        return [float(v) for v in np.quantile(values, levels)]

    out["lost_interval"] = interval(b - f)
    out["gap_interval"] = interval(c - b)
    if out["lost_interval"][1] < 0:
        out["verdict"] = "no loss"
    elif out["lost_interval"][0] <= 0:
        out["verdict"] = "within noise"  # the cost itself: nothing measurable to win back
    else:
        costly = b - f > 0
        share = interval((c[costly] - f[costly]) / (b[costly] - f[costly]))
        out["share_interval"] = share
        out["verdict"] = (
            "recovered"
            if share[0] >= target
            else "not recovered"
            if share[1] < target
            else "within noise"
        )
    return out
