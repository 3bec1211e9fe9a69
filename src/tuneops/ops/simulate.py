"""Simulation: a stream of batches from a real dataset with drift injected at known times.

The dataset is shuffled; a training part tunes and deploys the first champion (version 1,
also kept as the *never-updated* baseline), the rest is a pool that batches are drawn from.
Shifts, each from batch ``at`` on (they accumulate):

* ``covariate`` - the input distribution changes, the labelling rule does not: rows are drawn
  with weight ``sigmoid(strength * z)`` where ``z`` is one standardised numeric feature (a
  biased sample, p(x) shifts, p(y | x) is unchanged).
* ``concept`` - the labelling rule changes, the inputs do not: class labels are rotated
  (class i becomes class i+1) or, for regression, the target is mirrored about its mean.

Each batch goes through :func:`tuneops.ops.retune.monitor_batch` (monitor, and re-tune when it
says so, with the recent flagged batches as the recent data), so the simulation drives exactly
the code path of ``tuneops monitor --auto-retune``. Scores of the champion and of the
baseline are measured on each batch *before* anything learns from it.

:func:`simulate` returns the timeline (plain JSON) and writes ``timeline.json`` and
``timeline.png``; :func:`timeline_figure` renders a timeline with matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tuneops import tuning
from tuneops.data import load_dataset
from tuneops.errors import UsageError, require, unknown_name
from tuneops.export import write_json
from tuneops.ops.monitor import MonitorConfig, metric_value
from tuneops.ops.registry import Registry, list_models, register_trial
from tuneops.ops.retune import monitor_batch, performance_dropped
from tuneops.spec import load_spec

__all__ = ["Shift", "Stream", "SHIFTS", "make_stream", "parse_shift", "simulate", "recovery", "timeline_figure"]


@dataclass(frozen=True)
class Shift:
    """A drift injected from batch ``at`` on."""

    kind: str
    at: int
    strength: float = 3.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Stream:
    train: pd.DataFrame
    batches: list[pd.DataFrame]
    phases: list[str]
    details: list[dict[str, Any]]


def _numeric_feature(X: pd.DataFrame, categorical: Sequence[str]) -> str:
    numeric = [c for c in X.columns if c not in categorical]
    if not numeric:
        raise UsageError("simulate: covariate shift needs a numeric feature; the dataset has none.")
    return max(numeric, key=lambda c: (X[c].nunique(), -list(X.columns).index(c)))


def _covariate(pool: pd.DataFrame, target: str, shift: Shift, info: dict[str, Any]) -> np.ndarray:
    """Sampling weights that favour high values of one feature."""
    values = pool[info["feature"]].astype(float)
    z = ((values - values.mean()) / (values.std() or 1.0)).fillna(0.0).to_numpy()
    return 1.0 / (1.0 + np.exp(-shift.strength * z))


def _concept(batch: pd.DataFrame, target: str, classes: Sequence[Any] | None) -> pd.DataFrame:
    batch = batch.copy()
    if classes is not None:
        rotate = {c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)}
        batch[target] = batch[target].map(rotate)
    else:
        batch[target] = 2 * batch[target].mean() - batch[target]
    return batch


SHIFTS = ("covariate", "concept")


def make_stream(
    frame: pd.DataFrame,
    *,
    target: str,
    task: str,
    categorical: Sequence[str] = (),
    n_batches: int,
    batch_size: int,
    shifts: Sequence[Shift] = (),
    train_share: float = 0.4,
    seed: int = 0,
) -> Stream:
    """Split ``frame`` into a training part and a stream of batches with the shifts injected."""
    for s in shifts:
        if s.kind not in SHIFTS:
            raise UsageError(unknown_name("shift", s.kind, SHIFTS, field="--shift"))
        if not 0 <= s.at < n_batches:
            raise UsageError(f"shift {s.kind!r} at batch {s.at}: expected 0 <= at < {n_batches} batches.")
    rng = np.random.default_rng(seed)
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    n_train = int(len(shuffled) * train_share)
    train, pool = shuffled.iloc[:n_train].reset_index(drop=True), shuffled.iloc[n_train:].reset_index(drop=True)
    if len(pool) < batch_size:
        raise UsageError(
            f"simulate: {len(pool)} rows remain after the training part, fewer than --batch-size "
            f"{batch_size}; use a larger dataset or a smaller batch size."
        )
    features = pool.drop(columns=[target])
    info = {"feature": _numeric_feature(features, categorical)} if any(s.kind == "covariate" for s in shifts) else {}
    classes = sorted(frame[target].unique()) if task == "classification" else None
    batches, phases, details = [], [], []
    for t in range(n_batches):
        active = [s for s in shifts if s.at <= t]
        weights = np.ones(len(pool))
        for s in active:
            if s.kind == "covariate":
                weights = weights * _covariate(pool, target, s, info)
        rows = rng.choice(len(pool), size=batch_size, replace=False, p=weights / weights.sum())
        batch = pool.iloc[rows].reset_index(drop=True)
        if any(s.kind == "concept" for s in active):
            batch = _concept(batch, target, classes)
        batches.append(batch)
        phases.append("+".join(s.kind for s in active) or "stationary")
        details.append({**info} if active else {})
    return Stream(train, batches, phases, details)


# -- the loop -----------------------------------------------------------------------------------
def simulate(
    source: str = "pmlb:phoneme",
    *,
    family: str = "knn",
    n_batches: int = 24,
    batch_size: int = 300,
    shifts: Sequence[Shift] | None = None,
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
    """Run the production loop on a drifting stream; returns the timeline (and writes it).

    Args:
        source: a dataset source (``pmlb:NAME``, ``sklearn:NAME``, a file).
        shifts: default: covariate shift at a third of the stream, concept drift at two thirds.
        monitor: the spec's ``monitor`` section (thresholds, re-tuning budget).
        progress: called with each batch's timeline row.

    Example::

        >>> timeline = simulate("pmlb:phoneme", n_batches=12)        # doctest: +SKIP
        >>> timeline["summary"]["recovered_share"]                    # doctest: +SKIP
    """

    name = model or f"simulate-{source.split(':')[-1]}"
    if name in list_models(storage):
        raise UsageError(
            f"simulate: model {name!r} is already registered in this storage; pass another --model "
            "name or another --storage (or --out for the default storage)."
        )
    data = load_dataset(source)
    if shifts is None:
        shifts = (Shift("covariate", n_batches // 3), Shift("concept", 2 * n_batches // 3))
    monitor_raw = {"retune_trials": retune_trials or n_trials, **dict(monitor or {})}
    config = MonitorConfig.from_raw(monitor_raw)
    frame = data.X.assign(target=data.y.to_numpy())
    stream = make_stream(
        frame, target="target", task=data.task, categorical=data.categorical, n_batches=n_batches,
        batch_size=batch_size, shifts=shifts, seed=seed,
    )
    out = Path(out_dir)
    metric = "accuracy" if data.task == "classification" else "r2"
    spec = load_spec({
        "study": f"{name}.initial",
        "data": {"source": source, "task": data.task},
        "model": {"family": family},
        "objectives": [metric],
        "search": {"n_trials": n_trials, "cv_folds": 3, "seed": seed},
        "storage": storage,
        "output_dir": str(out / "initial"),
        "monitor": {"artifact_dir": str(out / "registry"), **monitor_raw},
    })
    result = tuning.run(spec, dataset=stream.train)
    if result.choice is None:
        raise UsageError(f"simulate: the initial tuning found no model: {result.message}")
    train = load_dataset(stream.train, target="target", task=data.task, name=source)
    registry = Registry.open(name, storage, create=True)
    register_trial(registry, result.study, result.choice.selected.number, train, spec,
                   source={"kind": "simulate"}, promote=True,
                   reason="initial model of the simulation")
    baseline, _ = registry.load_model(1)
    rows: list[dict[str, Any]] = []
    flagged: list[tuple[pd.DataFrame, str]] = []
    for t, batch in enumerate(stream.batches):
        champion = registry.require_champion()
        model_now, _ = registry.load_model(champion)
        X, y = batch.drop(columns=["target"]), batch["target"].to_numpy()
        champion_score = metric_value(metric, y, model_now.predict(X))
        baseline_score = metric_value(metric, y, baseline.predict(X))
        def window(assessment: Any, batch: pd.DataFrame = batch) -> list[tuple[pd.DataFrame, str]]:
            # The trailing batches flagged for the same kind of alarm (a metric drop, or drift
            # only), so data from before a change is not mixed into the re-tuning.
            kind = "performance" if performance_dropped(assessment, config) else "drift"
            trail: list[tuple[pd.DataFrame, str]] = []
            for b, k in reversed(flagged):
                if k != kind:
                    break
                trail.insert(0, (b, k))
            return [*trail, (batch, kind)][-config.recent_batches:]

        assessment, outcome, note = monitor_batch(
            registry, batch, recent=lambda a: pd.concat([b for b, _ in window(a)], ignore_index=True),
            auto_retune=True, config=config, source=f"simulate batch {t}", seed=seed + t,
        )
        promoted = outcome is not None and outcome.decision == "promote"
        flagged = [] if assessment.decision == "ok" or promoted else window(assessment)
        row = {
            "t": t,
            "phase": stream.phases[t],
            "decision": assessment.decision,
            "reasons": assessment.reasons,
            "max_psi": assessment.max_psi,
            "share_drifted": assessment.share_drifted,
            "prediction_psi": assessment.prediction["psi"],
            "champion": champion,
            "champion_score": champion_score,
            "baseline_score": baseline_score,
            "retune": outcome.to_dict() if outcome is not None else None,
            "note": note,
        }
        rows.append(row)
        if progress is not None:
            progress(row)
    timeline = {
        "dataset": source,
        "family": family,
        "metric": metric,
        "model": name,
        "n_batches": n_batches,
        "batch_size": batch_size,
        "shifts": [{**s.to_dict(), **stream.details[s.at]} for s in shifts],
        "thresholds": config.to_dict(),
        "batches": rows,
        "summary": recovery(rows, shifts),
    }
    write_json(out / "timeline.json", timeline)
    if plot:
        figure = timeline_figure(timeline)
        figure.savefig(out / "timeline.png", dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(figure)
    return timeline


def recovery(rows: Sequence[Mapping[str, Any]], shifts: Sequence[Shift]) -> dict[str, Any]:
    """How much of the score the last shift cost the never-updated model, and how much
    re-tuning won back (pure).

    ``before``: the champion's mean score on the batches before the last shift. After the
    first promotion following that shift: ``baseline`` (never updated) and ``champion`` means;
    ``recovered_share = (champion - baseline) / (before - baseline)``. ``with_detection``
    gives the same share over every batch from the shift on (detection and re-tuning time
    included).
    """
    if not shifts:
        return {"n_retunes": sum(r["retune"] is not None for r in rows)}
    last = max(s.at for s in shifts)
    before = [r["champion_score"] for r in rows if r["t"] < last]
    promoted = [r["t"] for r in rows if r["t"] >= last and r["retune"] and r["retune"]["decision"] == "promote"]
    summary: dict[str, Any] = {
        "n_retunes": sum(r["retune"] is not None for r in rows),
        "n_promotions": sum(bool(r["retune"]) and r["retune"]["decision"] == "promote" for r in rows),
        "last_shift_at": last,
        "before": float(np.mean(before)) if before else None,
        "detected_at": next((r["t"] for r in rows if r["t"] >= last and r["decision"] == "retune"), None),
        "first_promotion_at": promoted[0] if promoted else None,
    }

    def share(after: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
        if not after or not before:
            return None
        champion = float(np.mean([r["champion_score"] for r in after]))
        baseline = float(np.mean([r["baseline_score"] for r in after]))
        lost = summary["before"] - baseline
        return {"champion": champion, "baseline": baseline, "lost": lost,
                "recovered_share": (champion - baseline) / lost if lost > 0 else None}

    after_promotion = share([r for r in rows if promoted and r["t"] > promoted[0]])
    summary["after_promotion"] = after_promotion
    summary["recovered_share"] = after_promotion["recovered_share"] if after_promotion else None
    summary["with_detection"] = share([r for r in rows if r["t"] >= last])
    return summary


# -- rendering ----------------------------------------------------------------------------------
def timeline_figure(timeline: Mapping[str, Any]) -> Any:
    """The timeline as a matplotlib figure: scores on top, drift scores below."""

    require("matplotlib", "report", "the simulation plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = timeline["batches"]
    t = [r["t"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    top.plot(t, [r["champion_score"] for r in rows], "-o", ms=3, label="champion (monitored, re-tuned)")
    top.plot(t, [r["baseline_score"] for r in rows], "--", color="grey", label="never updated")
    for r in rows:
        if r["retune"]:
            promoted = r["retune"]["decision"] == "promote"
            top.plot(r["t"], r["champion_score"], "*" if promoted else "x", ms=12 if promoted else 8,
                     color="tab:green" if promoted else "tab:red")
    top.plot([], [], "*", color="tab:green", label="re-tuned: challenger promoted")
    top.plot([], [], "x", color="tab:red", label="re-tuned: champion kept")
    top.set_ylabel(timeline["metric"])
    top.set_title(f"{timeline['dataset']} ({timeline['family']}), {timeline['batch_size']} rows per batch")
    bottom.plot(t, [r["max_psi"] for r in rows], "-o", ms=3, label="max feature PSI")
    bottom.plot(t, [r["prediction_psi"] for r in rows], "-", label="prediction PSI")
    bottom.plot(t, [r["share_drifted"] for r in rows], ":", label="share of features drifted")
    bottom.axhline(timeline["thresholds"]["psi_retune"], color="tab:red", lw=0.8, label="psi_retune")
    bottom.set_xlabel("batch")
    bottom.set_ylabel("drift")
    for axis in (top, bottom):
        for s in timeline["shifts"]:
            axis.axvline(s["at"] - 0.5, color="black", lw=0.8, ls="--")
    for s in timeline["shifts"]:
        top.annotate(f"{s['kind']} shift", (s["at"] - 0.4, 1.0), xycoords=("data", "axes fraction"),
                     va="top", fontsize=8)
    top.legend(fontsize=7, loc="lower left")
    bottom.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def parse_shift(text: str) -> Shift:
    """``KIND@BATCH`` or ``KIND@BATCH:STRENGTH`` (e.g. ``concept@16``, ``covariate@8:2``).

    Raises:
        UsageError: malformed text or unknown kind.
    """
    kind, _, rest = text.partition("@")
    at, _, strength = rest.partition(":")
    try:
        shift = Shift(kind.strip(), int(at), float(strength) if strength else 3.0)
    except ValueError:
        raise UsageError(
            f"--shift: malformed {text!r}; expected KIND@BATCH[:STRENGTH] with KIND one of "
            f"{', '.join(SHIFTS)}, e.g. concept@16."
        ) from None
    if shift.kind not in SHIFTS:
        raise UsageError(unknown_name("shift", shift.kind, SHIFTS, field="--shift"))
    return shift
