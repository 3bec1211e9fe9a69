"""``tuneops run`` (tune a spec on this machine) and ``tuneops worker`` (join a study)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from tuneops import tuning
from tuneops.cli._common import JsonOpt, StorageOpt, WideOpt, emit_json, print_summary, term
from tuneops.cli.report import write_run_report

__all__ = ["run", "worker"]


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler stopping the job) ends a run like Ctrl-C: running trials are
    abandoned cleanly, forked workers are stopped, finished trials are kept."""

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(
    spec: Annotated[Path, typer.Argument(help="Spec file (YAML or TOML).")],
    n_trials: Annotated[int | None, typer.Option(help="Override search.n_trials.")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", "-w", help="Local worker processes.")] = None,
    timeout_s: Annotated[float | None, typer.Option(help="Override search.timeout_s.")] = None,
    storage: StorageOpt = None,
    study: Annotated[str | None, typer.Option(help="Override the study name.")] = None,
    output_dir: Annotated[str | None, typer.Option("--out", help="Output directory.")] = None,
    progress: Annotated[bool, typer.Option(
        help="Show progress on stderr: a bar on a terminal, one line per trial otherwise.")] = True,
    report: Annotated[bool, typer.Option(
        help="Write report.html next to results.json (needs the extra 'report').")] = True,
    backend: Annotated[str | None, typer.Option(help="Where workers run: local or ray.")] = None,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster address (with --backend ray).")] = None,
    json_out: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Tune SPEC: run the trials, select under the constraints, refit and save the model.

    Exits 1 when no trial meets the constraints (the closest trial is named), 130 when
    interrupted (finished trials are kept: the same command resumes).
    """
    try:
        with _sigterm_as_interrupt():
            result = tuning.run(
                spec, progress=progress and not term.quiet, n_trials=n_trials, n_workers=workers,
                timeout_s=timeout_s, storage=storage, study=study, output_dir=output_dir,
                backend=backend, address=address,
            )
    except KeyboardInterrupt:
        term.warn("Interrupted: finished trials are kept; run the same command to resume.")
        raise typer.Exit(130) from None
    report_path = write_run_report(result.study, result.output_dir) if report else None
    if json_out:
        emit_json({**result.results, "outputs": {
            "model": str(result.model_path) if result.model_path else None,
            "results": str(result.results_path) if result.results_path else None,
            "report": str(report_path) if report_path else None,
        }})
    else:
        print_summary(result.results, wide=wide)
        if report_path is not None:
            term.info(f"Report: {report_path}", soft_wrap=True, highlight=False, markup=False)
        if result.model_path:
            term.result(f"Model: {result.model_path}\nResults: {result.results_path}",
                        soft_wrap=True, highlight=False, markup=False)
    if not result.model_path:
        raise typer.Exit(1)


def worker(
    study: Annotated[str, typer.Option("--study", help="Name of the study to join.")],
    storage: Annotated[str, typer.Option("--storage", "-s", help="The study's storage URL.")],
    timeout_s: Annotated[float | None, typer.Option(
        help="Stop starting trials after this many seconds.")] = None,
    grace_s: Annotated[float | None, typer.Option(
        help="Seconds without heartbeat before a trial counts as dead (default 60).")] = None,
    heartbeat_s: Annotated[float | None, typer.Option(
        help="Seconds between heartbeats (default 10).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Join STUDY from this machine: run its trials until the global budget is spent."""
    try:
        with _sigterm_as_interrupt():
            n = tuning.join(study, storage, timeout_s=timeout_s, grace_s=grace_s,
                            heartbeat_s=heartbeat_s)
    except KeyboardInterrupt:
        term.warn("Interrupted: the running trial was abandoned and queued again.")
        raise typer.Exit(130) from None
    if json_out:
        emit_json({"study": study, "n_trials": n})
    else:
        term.result(f"worker done: ran {n} trial(s) of study {study}", highlight=False,
                    markup=False)
