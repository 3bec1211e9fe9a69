"""The production loop: ``tuneops monitor``, ``tuneops retune`` and ``tuneops simulate``.

``tuneops.ops`` and pandas are imported inside the commands: they take about 1.4 s to load,
which every other command (and ``tuneops -h``) would otherwise pay for.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from tuneops.cli._common import (
    JsonOpt,
    ModelOpt,
    StorageOpt,
    add_name_column,
    emit_json,
    fmt,
    make_table,
    term,
)
from tuneops.errors import UsageError

__all__ = ["monitor", "retune", "simulate"]

_COLOURS = {"ok": "green", "warn": "yellow", "retune": "red", "promote": "green"}


def _print_outcome(outcome: Any) -> None:
    term.result(Text.assemble("Re-tuning study ", (outcome.study, "bold"),
                              f": challenger v{outcome.challenger}, ",
                              (outcome.decision, _COLOURS.get(outcome.decision, "yellow"))))
    for reason in outcome.reasons:
        term.result(f"  - {reason}", highlight=False, markup=False, soft_wrap=True)


def monitor(
    batch: Annotated[Path, typer.Option(
        "--batch", "-b", help="Batch file: feature columns, optionally the label column.")],
    model: ModelOpt = None,
    auto_retune: Annotated[bool, typer.Option(
        "--auto-retune", help="Re-tune on the batch when the decision is retune.")] = False,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print the assessment (and re-tuning) as one JSON document.")] = False,
    fail_on: Annotated[str | None, typer.Option(
        "--fail-on", help="Exit 3 when the decision is this level or worse: warn or retune "
        "(for cron and CI).")] = None,
    storage: StorageOpt = None,
) -> None:
    """Check a batch against the champion: drift, prediction drift, performance; one decision."""
    from tuneops.ops.monitor import DECISIONS
    from tuneops.ops.registry import Registry
    from tuneops.ops.retune import monitor_batch

    if fail_on is not None and fail_on not in DECISIONS[1:]:
        raise UsageError(f"--fail-on: expected one of {', '.join(DECISIONS[1:])}, received "
                         f"{fail_on!r}; leave it out to always exit 0 after a check")
    reg = Registry.open(model, storage)
    assessment, outcome, note = monitor_batch(reg, batch, auto_retune=auto_retune)
    failed = (fail_on is not None
              and DECISIONS.index(assessment.decision) >= DECISIONS.index(fail_on))
    if json_out:
        emit_json({"assessment": assessment.to_dict(),
                   "retune": outcome.to_dict() if outcome else None, "note": note})
    else:
        version = reg.version(reg.require_champion())["version"]
        term.result(Text.assemble(
            (reg.name, "bold"), f" v{version} on {batch} ({assessment.n_rows} rows): ",
            (assessment.decision, _COLOURS[assessment.decision])))
        for reason in assessment.reasons:
            term.result(f"  - {reason}", highlight=False, markup=False, soft_wrap=True)
        table = make_table("drift per feature (top 10 by PSI)")
        add_name_column(table, "feature")
        add_name_column(table, "test")
        for col in ("p (adjusted)", "PSI", "drifted"):
            add_name_column(table, col, justify="right")
        for f in sorted(assessment.features, key=lambda f: -f["psi"])[:10]:
            table.add_row(f["column"], f["test"], f"{f['p_adjusted']:.3g}", f"{f['psi']:.3f}",
                          "yes" if f["drifted"] else "")
        term.result(table)
        if note:
            term.warn(note)
        if outcome is not None:
            _print_outcome(outcome)
    if failed:
        raise typer.Exit(3)


def retune(
    data: Annotated[list[Path], typer.Option(
        "--data", "-d", help="Recent labelled data file; repeat for more.")],
    model: ModelOpt = None,
    n_trials: Annotated[int | None, typer.Option(
        help="Trials (default: monitor.retune_trials).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split and the search.")] = 0,
    storage: StorageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Tune a challenger on recent data, compare it with the champion, promote or keep."""
    import pandas as pd  # type: ignore[import-untyped]

    from tuneops.ops.monitor import read_batch
    from tuneops.ops.registry import Registry
    from tuneops.ops.retune import retune as retune_model

    frames = [read_batch(path, field="--data") for path in data]
    reg = Registry.open(model, storage)
    outcome = retune_model(reg, pd.concat(frames, ignore_index=True), n_trials=n_trials,
                           seed=seed, trigger="tuneops retune")
    if json_out:
        emit_json(outcome.to_dict())
    else:
        _print_outcome(outcome)


def simulate(
    dataset: Annotated[str, typer.Option(
        help="Dataset source (pmlb:NAME, sklearn:NAME, file).")] = "pmlb:phoneme",
    family: Annotated[str, typer.Option(help="Model family.")] = "knn",
    batches: Annotated[int, typer.Option(min=1, help="Number of batches.")] = 24,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per batch.")] = 300,
    shift: Annotated[list[str] | None, typer.Option(
        help="KIND@BATCH, e.g. covariate@8, concept@16; repeat. Default: covariate at 1/3, "
        "concept at 2/3.")] = None,
    n_trials: Annotated[int, typer.Option(
        min=1, help="Trials of the initial tuning and of each re-tuning.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the stream and the searches.")] = 0,
    model: Annotated[str | None, typer.Option(
        help="Model name (default: simulate-DATASET).")] = None,
    out: Annotated[Path, typer.Option(
        help="Output directory for timeline.json, timeline.png, models.")
    ] = Path("tuneops-out/simulate"),
    storage: Annotated[str | None, typer.Option(
        "--storage", "-s", help="Storage URL (default: OUT/simulate.journal).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Simulate a drifting stream from a real dataset: monitor, re-tune, promote; a timeline.

    One line per batch as it is processed (on stderr with --json, none with --quiet).
    """
    from tuneops.ops.simulate import parse_shift
    from tuneops.ops.simulate import simulate as run_simulation

    shifts = [parse_shift(s) for s in shift] if shift else None
    # The first directory this command creates: removed again when the input is refused, so a
    # bad --dataset or --batches leaves nothing behind.
    created = next((p for p in reversed([out, *out.parents]) if not p.exists()), None)
    if storage is None:
        out.mkdir(parents=True, exist_ok=True)
        storage = str(out / "simulate.journal")
    lines = term.err if json_out else term.out

    def show(row: dict[str, Any]) -> None:
        if term.quiet:
            return
        retuned = f" re-tuned: {row['retune']['decision']}" if row["retune"] else ""
        lines.print(f"batch {row['t']:>3} {row['phase']:<18} {row['decision']:<6} max PSI "
                    f"{row['max_psi']:.2f} champion v{row['champion']} "
                    f"{fmt(row['champion_score'])} never-updated "
                    f"{fmt(row['baseline_score'])}{retuned}", highlight=False, markup=False,
                    soft_wrap=True)

    try:
        timeline = run_simulation(dataset, family=family, n_batches=batches,
                                  batch_size=batch_size, shifts=shifts, n_trials=n_trials,
                                  storage=storage, model=model, out_dir=out, seed=seed,
                                  progress=show)
    except UsageError:
        if created is not None and created.is_dir():
            shutil.rmtree(created)
        raise
    files = {"timeline": str(out / "timeline.json"), "plot": str(out / "timeline.png")}
    if json_out:
        emit_json({**timeline, "outputs": files})
        return
    summary = timeline["summary"]
    term.result(f"Re-tunings: {summary['n_retunes']}, promotions: "
                f"{summary.get('n_promotions', 0)}; share of the loss recovered after the last "
                f"shift: {fmt(summary.get('recovered_share'))}", highlight=False, soft_wrap=True)
    term.info(f"Timeline: {files['timeline']}, {files['plot']}", highlight=False, markup=False,
              soft_wrap=True)
