"""``tuneops run`` (tune a spec on this machine), ``tuneops worker`` (join a study) and
``tuneops export`` (refit a stored trial): the commands that rebuild a spec's objective.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from tuneops import runner, tuning
from tuneops.cli._common import (
    JsonOpt,
    StorageOpt,
    WideOpt,
    emit_json,
    print_summary,
    storage_option,
    term,
)
from tuneops.cli.report import write_run_report
from tuneops.errors import SpecError

__all__ = ["run", "worker", "export"]


def _stopped(exc: KeyboardInterrupt, *, owner: bool) -> typer.Exit:
    """Say what an interruption did (only what actually happened) and exit 130 or 143."""
    stop = runner.Interrupted.of(exc)
    numbers = sorted(set(stop.abandoned))
    if numbers:
        what = (
            f"trial{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))} "
            f"{'were' if len(numbers) > 1 else 'was'} running: abandoned and queued again once"
        )
    else:
        what = "no trial was running"
    then = (
        "finished trials are kept; run the same command to resume."
        if owner
        else "the study goes on with its other workers."
    )
    term.warn(f"Stopped by {stop.signal_name}: {what}; {then}")
    return typer.Exit(stop.exit_code)


#: The spec fields ``run``'s options replace: field -> (the override's name, its option).
_OVERRIDES = {
    "search.n_trials": ("n_trials", "--n-trials"),
    "search.n_workers": ("n_workers", "--workers"),
    "search.timeout_s": ("timeout_s", "--timeout-s"),
    "search.trial_timeout_s": ("trial_timeout_s", "--trial-timeout-s"),
    "search.backend": ("backend", "--backend"),
    "study": ("study", "--study"),
    "output_dir": ("output_dir", "--out"),
}


def _named_as_given(exc: SpecError, given: dict[str, object]) -> SpecError:
    """``exc`` with each refused field that an option replaced named as that option, in the
    house form ``n_trials (--n-trials): ...`` (``--n-trials 0`` was refused as
    ``search.n_trials``, a field of a spec file that may not even set it)."""
    text = str(exc)
    for field, (name, option) in _OVERRIDES.items():
        if given.get(name) is not None:
            text = re.sub(rf"(?m)^{re.escape(field)}:", f"{name} ({option}):", text)
    if text == str(exc):
        return exc
    return SpecError(text)


def run(
    spec: Annotated[Path, typer.Argument(help="Spec file (YAML or TOML).")],
    n_trials: Annotated[int | None, typer.Option(help="Override search.n_trials.")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Local worker processes.")
    ] = None,
    timeout_s: Annotated[float | None, typer.Option(help="Override search.timeout_s.")] = None,
    trial_timeout_s: Annotated[
        float | None, typer.Option(help="Override search.trial_timeout_s.")
    ] = None,
    storage: StorageOpt = None,
    study: Annotated[str | None, typer.Option(help="Override the study name.")] = None,
    output_dir: Annotated[str | None, typer.Option("--out", help="Output directory.")] = None,
    progress: Annotated[
        bool,
        typer.Option(
            help="Show progress on stderr: a bar on a terminal, one line per trial otherwise."
        ),
    ] = True,
    report: Annotated[
        bool,
        typer.Option(
            help="Write report.html next to results.json (needs the extra 'report'); "
            "--no-report removes an earlier run's, which would describe another state."
        ),
    ] = True,
    backend: Annotated[str | None, typer.Option(help="Where workers run: local or ray.")] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster address (with --backend ray): HOST:PORT, ray://HOST:PORT or auto "
            "(the cluster Ray finds: $RAY_ADDRESS, the latest `ray start` here); checked before "
            "anything is written (exit 2 when no cluster answers)."
        ),
    ] = None,
    json_out: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Tune SPEC: run the trials, select under the constraints, refit and save the model.

    Exits 1 when no trial meets the constraints (the closest trial is named), 130 on Ctrl-C
    and 143 on SIGTERM (running trials are abandoned and queued again, finished ones kept:
    the same command resumes).
    """
    result = None
    overrides: dict[str, object] = {
        "n_trials": n_trials,
        "n_workers": workers,
        "timeout_s": timeout_s,
        "trial_timeout_s": trial_timeout_s,
        "storage": storage,
        "study": study,
        "output_dir": output_dir,
        "backend": backend,
    }
    try:
        with runner.stop_on_signals():
            try:
                result = tuning.run(
                    spec,
                    progress=progress and not term.quiet,
                    address=address,
                    **overrides,
                )
            except SpecError as exc:
                raise _named_as_given(exc, overrides) from None
            report_path = write_run_report(result.study, result.output_dir, write=report)
    except KeyboardInterrupt as exc:
        if result is None:
            raise _stopped(exc, owner=True) from None
        # Stopped while the report was written: everything else is saved and says so.
        stop = runner.Interrupted.of(exc)
        term.warn(
            f"Stopped by {stop.signal_name} while writing the report: the trials, "
            f"{result.results_path} and the model are saved; there is no report.html (`tuneops "
            f"report {result.study.study_name}` writes it)."
        )
        raise typer.Exit(stop.exit_code) from None
    if json_out:
        emit_json(
            {
                **result.results,
                "outputs": {
                    "model": str(result.model_path) if result.model_path else None,
                    "results": str(result.results_path) if result.results_path else None,
                    "report": str(report_path) if report_path else None,
                },
            }
        )
    else:
        print_summary(result.results, wide=wide)
        if report_path is not None:
            term.info(f"Report: {report_path}", soft_wrap=True, highlight=False, markup=False)
        if result.model_path:
            term.result(
                f"Model: {result.model_path}\nResults: {result.results_path}",
                soft_wrap=True,
                highlight=False,
                markup=False,
            )
    if not result.model_path:
        raise typer.Exit(1)


def worker(
    study: Annotated[str, typer.Option("--study", help="Name of the study to join.")],
    storage: Annotated[
        str,
        typer.Option(
            "--storage", "-s", help="The study's storage URL.", callback=storage_option
        ),
    ],
    timeout_s: Annotated[
        float | None, typer.Option(help="Stop starting trials after this many seconds.")
    ] = None,
    grace_s: Annotated[
        float | None,
        typer.Option(
            help="Seconds without a heartbeat before this worker counts another's trial as dead "
            "and queues it again (default 60; more than two heartbeat intervals). A longer "
            "grace is recorded, so that every worker waits as long for this one's trials."
        ),
    ] = None,
    heartbeat_s: Annotated[
        float | None, typer.Option(help="Seconds between heartbeats (default 10).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Join STUDY from this machine: run its trials until the global budget is spent."""
    try:
        with runner.stop_on_signals():
            n = tuning.join(
                study, storage, timeout_s=timeout_s, grace_s=grace_s, heartbeat_s=heartbeat_s
            )
    except KeyboardInterrupt as exc:
        raise _stopped(exc, owner=False) from None
    if json_out:
        emit_json({"study": study, "n_trials": n})
    else:
        term.result(
            f"worker done: ran {n} trial(s) of study {study}", highlight=False, markup=False
        )


def export(
    study: Annotated[str, typer.Argument(help="Study name.")],
    trial: Annotated[
        int | None, typer.Option(help="Trial number (default: the selected trial).")
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            help="Output directory (default: the run's; with --trial, trial-N inside it, so the "
            "run's model stays the one its results name)."
        ),
    ] = None,
    storage: StorageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Refit and save a study's selected (or given) trial."""
    s = tuning.load_study(study, storage)
    number = tuning.complete_trial(s, trial)  # the selected one without --trial
    path = tuning.export_model(s, trial=trial, out_dir=out)
    # a given trial may miss the study's constraints: exported all the same, but said
    # ... or meet them by value but not beyond measurement noise: "Trial 2 misses the study's
    # constraint(s) latency_p95_ms <= 200" was said of a p95 of 1.9 ms with no upper bound
    noisy = tuning.constraints_within_noise_of(s, number)
    missed = [k for k in tuning.missed_constraints(s, number) if k not in noisy]
    if json_out:
        # the trial exported, also when it was the selected one ("trial": null said nothing)
        emit_json(
            {
                "study": study,
                "trial": number,
                "model": str(path),
                "missed": missed,
                "within_noise": list(noisy),
            }
        )
        return
    if missed:
        term.warn(
            f"Trial {number} misses the study's constraint(s) {', '.join(missed)}: it is "
            "exported as asked, but selection would never choose it."
        )
    elif noisy:
        details = "; ".join(noisy.values())  # each says why: an interval past the limit, or open
        term.warn(
            f"Trial {number} meets the study's constraint(s) {', '.join(noisy)} by its measured "
            f"value but not beyond measurement noise: {details}. It is exported as asked, but "
            "selection chooses such a trial only when no trial meets the constraints beyond "
            "noise."
        )
    term.result(f"Model: {path}", soft_wrap=True, highlight=False, markup=False)
