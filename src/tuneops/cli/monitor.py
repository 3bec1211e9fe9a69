"""The production loop: ``tuneops monitor``, ``tuneops retune``, ``tuneops simulate``,
``tuneops label``.

``tuneops.ops`` and pandas are loaded on first use (:func:`_ops`): they take about 1.4 s,
which every other command (and ``tuneops -h``) would otherwise pay for.
"""

from __future__ import annotations

import datetime
import json
import re
import shlex
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer
from rich.text import Text

from tuneops import runner
from tuneops.cli._common import (
    JsonOpt,
    ModelOpt,
    StorageOpt,
    emit_json,
    fmt,
    make_table,
    reader_left,
    storage_option,
    term,
)
from tuneops.errors import TuneOpsError, UsageError
from tuneops.storage import mask_url

__all__ = ["monitor", "retune", "simulate", "label"]

_COLOURS = {
    "ok": "green",
    "warn": "yellow",
    "retune": "red",
    "promote": "green",
    "hold": "yellow",
    "slo": "red",
    "rollback": "red",
    "withdraw": "yellow",
}
_DEFAULT_LOG = "tuneops-out/predictions.jsonl"  # tuneops.ops.serve.DEFAULT_LOG, without loading it


def _ops() -> Any:
    """The library behind these commands, loaded once, when a command runs."""
    from tuneops.ops import alerts, live, monitor, predlog, registry, retune, simulate

    return SimpleNamespace(
        alerts=alerts,
        live=live,
        monitor=monitor,
        predlog=predlog,
        registry=registry,
        retune=retune,
        simulate=simulate.simulate,
        parse_shift=simulate.parse_shift,
    )


def _read_frames(ops: Any, paths: list[Path], field: str) -> Any:
    """The files of a repeated option, read and concatenated in order."""
    import pandas as pd  # type: ignore[import-untyped]

    frames = [ops.monitor.read_batch(path, field=field) for path in paths]
    return pd.concat(frames, ignore_index=True)


def _print_outcome(outcome: Any) -> None:
    term.result(
        Text.assemble(
            "Refresh of a configuration of study "
            if outcome.method == "refresh"
            else "Re-tuning study ",
            (outcome.study, "bold"),
            f": challenger v{outcome.challenger}, "
            if outcome.challenger is not None
            else ": no challenger, ",
            (outcome.decision, _COLOURS.get(outcome.decision, "yellow")),
        )
    )
    for reason in outcome.reasons:
        term.result(f"  - {reason}", highlight=False, markup=False, soft_wrap=True)


def _print_assessment(reg: Any, version: int, where: str, assessment: Any) -> None:
    """The assessment of ``version`` (the champion the batch was judged against: a re-tune may
    have promoted another since)."""
    term.result(
        Text.assemble(
            (reg.name, "bold"),
            f" v{version} on {where} ({assessment.n_rows} rows): ",
            (assessment.decision, _COLOURS[assessment.decision]),
        )
    )
    for reason in assessment.reasons:
        term.result(f"  - {reason}", highlight=False, markup=False, soft_wrap=True)
    p = assessment.performance
    if p and not any(
        r.startswith(f"{p['metric']} ") or f"; {p['metric']} " in r for r in assessment.reasons
    ):
        # A drift decision on a labelled batch said nothing of the metric (a warn for one
        # feature while accuracy held at 0.695 against 0.500): the labels were measured too.
        limits = assessment.thresholds or {}
        tolerance = limits.get("max_metric_drop")
        confidence = 1 - float(limits.get("alpha", 0.05))
        term.result(
            f"  - {p['metric']} {p['value']:.4g} on this batch vs {p['reference']:.4g} "
            f"reference (drop {p['drop']:.3g}, {p.get('n_labelled', assessment.n_rows)} "
            "labelled rows): not dropped by more than max_metric_drop"
            + (f" {tolerance:g}" if tolerance is not None else "")
            + f" with {confidence:.0%} confidence",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    rows = [
        (
            f["column"],
            f["test"],
            f"{f['p_adjusted']:.3g}",
            f"{f['psi']:.3f}",
            f"{f.get('missing', 0.0):.0%}",
            "yes" if f["drifted"] else "",
        )
        for f in sorted(assessment.features, key=lambda f: -f["psi"])[:10]
    ]
    table = make_table("drift per feature (top 10 by PSI)")
    # The feature's name gives way when the terminal is narrow (elided with …: the reasons
    # above name every drifted feature whole, --json has them all); the figures never do: at
    # 80 columns a long name cut the PSI to "0.5…" and hid "drifted" entirely.
    table.add_column("feature", overflow="ellipsis")
    for i, col in enumerate(("test", "p (adjusted)", "PSI", "missing", "drifted"), start=1):
        widest = max([len(col), *(len(row[i]) for row in rows)])
        table.add_column(
            col, justify="left" if i == 1 else "right", no_wrap=True, min_width=widest
        )
    for name, *figures in rows:
        table.add_row(Text(name, no_wrap=True, overflow="ellipsis"), *figures)
    term.result(table)


def _print_live(decision: Any) -> None:
    term.result(
        Text.assemble(
            f"champion v{decision.champion}",
            f", {decision.mode} challenger v{decision.challenger}" if decision.challenger else "",
            ": ",
            (decision.decision, _COLOURS.get(decision.decision, "yellow")),
            " (applied)" if decision.applied else "",
        )
    )
    for reason in decision.reasons:
        term.result(f"  - {reason}", highlight=False, markup=False, soft_wrap=True)
    for version, t in decision.traffic.items():
        latency = t.get("latency_ms") or {}
        # a shadow scores requests and answers none: its throughput is no figure of its own
        served = "answers none" if t.get("shadow_only") else f"{t['rps']:.3g} req/s"
        term.result(
            f"  v{version} {'/'.join(t['roles'])}: {t['n_requests']} requests"
            f"{' scored' if t.get('shadow_only') else ''}, {t['n_errors']} errors, p50 "
            f"{fmt(latency.get('latency_p50_ms'))} ms, p95 "
            f"{fmt(latency.get('latency_p95_ms'))} ms, {served}{_labelled_score(t)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _nothing_selected(
    log: Path, predictions: list[dict[str, Any]], since: str | None, version: int | None
) -> str:
    """Why no row of the prediction log was selected, and what to do."""
    answered = [r for r in predictions if r.get("status", "ok") == "ok"]
    if not answered:
        return (
            f"log (--log): {log} holds no answered request yet; send traffic to `tuneops serve` "
            "first. Nothing was recorded."
        )
    if not any(r.get("rows") for r in answered):
        return (
            f"log (--log): {log} holds {len(answered)} answered request(s), all logged without "
            "their input rows (serve's log_rows off), so drift cannot be tested on them; "
            "check a batch file (--batch) instead. Nothing was recorded."
        )
    versions: dict[str, int] = {}
    for r in answered:
        versions[str(r.get("version"))] = versions.get(str(r.get("version")), 0) + 1
    in_order = sorted(versions.items(), key=lambda kv: (len(kv[0]), kv[0]))  # v2 before v10
    held = ", ".join(f"v{v}: {n}" for v, n in in_order)
    asked = " and ".join(
        ([f"--since {since}"] if since is not None else [])
        + ([f"--version {version}"] if version is not None else [])
    )
    return (
        f"log (--log): no request of {log} matches {asked} (it holds {len(answered)} answered "
        f"request(s) with rows; per version {held}); widen --since, choose a version it "
        "holds, or leave them out. Nothing was recorded."
    )


def _labelled_score(traffic: dict[str, Any]) -> str:
    if not traffic.get("metric"):
        return ""
    if not traffic.get("n_labelled"):
        return ", no labelled rows yet"
    rows = f"{traffic['n_labelled']} labelled row(s)"
    if traffic.get("score") is None:
        return f", {traffic['metric']} undefined on {rows}"
    return f", {traffic['metric']} {fmt(traffic['score'])} on {rows}"


def monitor(
    batch: Annotated[
        Path | None,
        typer.Option(
            "--batch", "-b", help="Batch file: feature columns, optionally the label column."
        ),
    ] = None,
    log: Annotated[
        Path | None,
        typer.Option(
            "--log",
            help="Prediction log of `tuneops serve`: monitor its rows as a batch (labels "
            "joined), or with --live its traffic (default for --live: "
            "tuneops-out/predictions.jsonl).",
        ),
    ] = None,
    log_since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="--log: only requests since then: a duration back from now (90s, 30m, 2h, "
            "7d) or a date-time (2026-12-06T10:00, local time unless it names its zone).",
        ),
    ] = None,
    log_version: Annotated[
        int | None,
        typer.Option("--version", help="--log: only requests answered by this version."),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Watch the served traffic: SLOs, the challenger against the champion, "
            "automatic promotion and rollback.",
        ),
    ] = False,
    every: Annotated[float, typer.Option(help="--live: seconds between checks.")] = 30.0,
    checks: Annotated[
        int | None,
        typer.Option(help="--live: stop after this many checks (default: until interrupted)."),
    ] = None,
    no_apply: Annotated[
        bool,
        typer.Option("--no-apply", help="--live: decide, record and alert, but change nothing."),
    ] = False,
    model: ModelOpt = None,
    auto_retune: Annotated[
        bool,
        typer.Option("--auto-retune", help="Re-tune on the batch when the decision is retune."),
    ] = False,
    window: Annotated[
        list[Path] | None,
        typer.Option(
            "--window",
            help="With --auto-retune: labelled data since the champion's change (files, oldest "
            "first; repeat). A labelled batch that re-tunes nothing refreshes a re-tuned "
            "champion on it (monitor.refresh_rows).",
        ),
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the assessment (and re-tuning) as one JSON document; with --live, "
            "one document per check.",
        ),
    ] = False,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            help="Exit 3 when the decision is this level or worse: warn or retune "
            "(for cron and CI).",
        ),
    ] = None,
    storage: StorageOpt = None,
) -> None:
    """Check a batch (a file or the prediction log) against the champion: drift, prediction
    drift, performance; one decision, alerts as the spec's monitor.alerts says. With --live:
    the served traffic, SLOs, promotion and rollback.

    Exits 130 on Ctrl-C and 143 on SIGTERM: a re-tuning (--auto-retune) keeps its finished
    trials, and the same command assesses the batch again and resumes it.
    """
    if live:
        if batch is not None or auto_retune or fail_on or window:
            raise UsageError(
                "--live watches the prediction log; --batch, --auto-retune, --window and "
                "--fail-on apply to batch monitoring: leave them out."
            )
        if log_since is not None or log_version is not None:
            raise UsageError(
                "--live judges every version's requests of the last monitor.slo.window_s "
                "seconds; --since and --version choose the requests of `monitor --log`: leave "
                "them out (set monitor.slo.window_s to judge a longer or shorter span)."
            )
        _watch(model, storage, log or Path(_DEFAULT_LOG), every, checks, not no_apply, json_out)
        return
    if (batch is None) == (log is None):
        raise UsageError(
            "monitor: give one of --batch FILE or --log FILE (a prediction log), "
            "or --live to watch the served traffic."
        )
    if checks is not None or no_apply:
        raise UsageError("--checks and --no-apply apply to --live only.")
    if (log_since is not None or log_version is not None) and log is None:
        raise UsageError(
            "--since and --version choose requests of a prediction log: add --log FILE or "
            "leave them out."
        )
    if window and not auto_retune:
        raise UsageError(
            "window (--window): the rows a refresh refits the champion on; it acts only with "
            "--auto-retune: add --auto-retune or leave --window out."
        )
    ops = _ops()
    if fail_on is not None and fail_on not in ops.monitor.DECISIONS[1:]:
        raise UsageError(
            f"fail_on (--fail-on): expected one of {', '.join(ops.monitor.DECISIONS[1:])}, "
            f"received {fail_on!r}; leave it out to always exit 0 after a check"
        )
    reg = ops.registry.Registry.open(model, storage)
    champion = reg.version(reg.require_champion())
    if log is not None:
        contents = ops.predlog.read_log(log)
        frame = ops.live.batch_from_log(
            contents,
            champion["features"],
            champion["target"],
            since=None if log_since is None else _since_time(log_since),
            version=log_version,
            name=str(log),
            model=reg.name,
        )
        source = f"prediction log {log}" + "".join(
            [
                f" since {log_since}" if log_since else "",
                f" (version {log_version})" if log_version else "",
                # monitor judges the champion: on another version's requests it says so
                f", scored with the champion v{champion['version']}, not v{log_version} (the "
                "live comparison of `monitor --live` judges a challenger on its own answers)"
                if log_version and log_version != champion["version"]
                else "",
            ]
        )
        if frame.empty:
            raise UsageError(_nothing_selected(log, contents.predictions, log_since, log_version))
        if contents.bad_lines:
            term.warn(
                f"prediction log {log}: {contents.bad_lines} line(s) skipped, not records "
                "tuneops serve writes whole (a write cut short by a crash or a full disk, or "
                "a line written by something else)."
            )
        if contents.n_ambiguous:
            term.warn(
                f"prediction log {log}: {contents.n_ambiguous} label(s) joined no request: "
                "their request id was answered more than once before them (by several "
                "servers, for a client that sent one id twice), so none is known to be their "
                "truth."
            )
    else:
        frame, source = batch, str(batch)
    since = _read_frames(ops, window, "window (--window)") if window else None
    n_assessed = len(reg.events("monitor"))
    try:
        with runner.stop_on_signals():
            assessment, outcome, note = ops.retune.monitor_batch(
                reg,
                frame,
                auto_retune=auto_retune,
                window=since,
                source=source,
                # a logged row is JSON: a missing value is null there, not an empty cell
                missing_as="an empty cell" if log is None else "null",
            )
    except KeyboardInterrupt as exc:
        options = {
            "--batch": batch,
            "--log": log,
            "--since": log_since,
            "--version": log_version,
            "--model": reg.name,
            "--fail-on": fail_on,
            "--storage": mask_url(storage) if storage else None,
        }
        command = ["tuneops", "monitor"]
        command += [a for k, v in options.items() if v is not None for a in (k, str(v))]
        command += ["--auto-retune"] if auto_retune else []
        command += [a for p in window or () for a in ("--window", str(p))]
        command += ["--json"] if json_out else []
        assessed = len(reg.events("monitor")) > n_assessed
        raise _monitor_stopped(exc, shlex.join(command), assessed=assessed) from None
    alert_config = ops.live.monitor_settings(reg.monitor_section(champion))[2]
    deliveries = ops.alerts.alerts_for_assessment(alert_config, reg.name, assessment, outcome)
    failed = fail_on is not None and ops.monitor.DECISIONS.index(
        assessment.decision
    ) >= ops.monitor.DECISIONS.index(fail_on)
    if json_out:
        emit_json(
            {
                "assessment": {"version": champion["version"], **assessment.to_dict()},
                "retune": outcome.to_dict() if outcome else None,
                "note": note,
                "alerts": [vars(d) for d in deliveries],
            }
        )
    else:
        _print_assessment(reg, champion["version"], source, assessment)
        if note:
            term.warn(note)
        if outcome is not None:
            _print_outcome(outcome)
    if failed:
        raise typer.Exit(3)


def _since_time(text: str) -> float:
    """``--since``: a duration back from now (``90s``, ``30m``, ``2h``, ``7d``) or an ISO
    date-time, as a Unix time."""

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if match:
        seconds = float(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
        return time.time() - seconds
    try:
        return datetime.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise UsageError(
            f"since (--since): expected a duration back from now (90s, 30m, 2h, 7d) or a date-time "
            f"(2026-12-06T10:00), received {text!r}."
        ) from None


def _watch(
    model: str | None,
    storage: str | None,
    log: Path,
    every: float,
    checks: int | None,
    apply: bool,
    json_out: bool,
) -> None:
    if every <= 0:
        raise UsageError(f"every (--every): expected seconds > 0, received {every}.")
    if checks is not None and checks < 1:
        raise UsageError(f"checks (--checks): expected an integer >= 1, received {checks}.")
    ops = _ops()
    reg = ops.registry.Registry.open(model, storage)
    reg.require_champion()

    def show(decision: Any) -> None:
        if json_out:
            emit_json(decision.to_dict())
        else:
            _print_live(decision)

    if not log.exists():
        term.info(f"Waiting for the prediction log {log} ...", highlight=False, markup=False)
    reader_gone: list[bool] = []

    def wait(seconds: float) -> bool:
        if reader_left(seconds):
            reader_gone.append(True)
        return bool(reader_gone)

    decisions = ops.live.watch(
        reg, log, every_s=every, n_checks=checks, on_decision=show, apply=apply, wait=wait
    )
    if reader_gone:
        # `monitor --live | head`: nobody reads the decisions any more; checking (and alerting)
        # on with them thrown away helps no one. Every check made is recorded whole.
        term.warn(
            f"Stopped: the reader of the output left (a closed pipe) after {len(decisions)} "
            f"check(s), each one's decision recorded whole (`tuneops registry show --model "
            f"{reg.name}` lists them)."
        )
        return
    if checks is not None and not decisions:
        raise UsageError(
            f"log (--log): the prediction log {str(log)!r} did not appear in {checks} check(s); "
            "point --log at the file `tuneops serve --log` writes."
        )


def retune(
    data: Annotated[
        list[Path], typer.Option("--data", "-d", help="Recent labelled data file; repeat for more.")
    ],
    model: ModelOpt = None,
    n_trials: Annotated[
        int | None, typer.Option(min=1, help="Trials (default: monitor.retune_trials).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split and the search.")] = 0,
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh",
            help="No search: refit the champion's configuration on the data (the newest "
            "monitor.refresh_rows rows), compare on a held-out part, promote if at least as good.",
        ),
    ] = False,
    storage: StorageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Tune a challenger on recent data, compare it with the champion, promote or keep.

    Exits 130 on Ctrl-C and 143 on SIGTERM: the finished trials are kept, and the same command
    (same data, same champion) resumes the re-tuning under the same version number. A stop
    after the outcome was recorded prints it and says so; the same command then prints the
    recorded outcome instead of re-tuning.
    """
    ops = _ops()
    if refresh and n_trials is not None:
        raise UsageError("--refresh refits the champion's configuration: leave --n-trials out.")
    recent = _read_frames(ops, data, "data (--data)")
    reg = ops.registry.Registry.open(model, storage)
    command = ["tuneops", "retune", *(a for p in data for a in ("--data", str(p)))]
    command += ["--model", reg.name, *(["--refresh"] if refresh else [])]
    command += ["--n-trials", str(n_trials)] if n_trials is not None else []
    command += ["--seed", str(seed)] if seed else []
    command += ["--storage", mask_url(storage)] if storage else []
    outcome = None
    printed = False
    try:
        with runner.stop_on_signals():
            if refresh:
                outcome = ops.retune.refresh(
                    reg, recent, seed=seed, trigger="tuneops retune --refresh"
                )
            else:
                outcome = ops.retune.retune(
                    reg, recent, n_trials=n_trials, seed=seed, trigger="tuneops retune"
                )
            with runner.signals_held():  # decided and recorded: printed whole, then the stop
                _show_outcome(outcome, json_out)
                printed = True
    except KeyboardInterrupt as exc:
        stop = runner.Interrupted.of(exc)
        decided = outcome if outcome is not None else getattr(stop, "outcome", None)
        if decided is not None and not printed:
            _show_outcome(decided, json_out)  # the outcome the stop came after is the result
        raise _retune_stopped(stop, shlex.join(command), refresh=refresh, decided=decided) from None


def _show_outcome(outcome: Any, json_out: bool) -> None:
    if json_out:
        emit_json(outcome.to_dict())
    else:
        _print_outcome(outcome)


def _decided(outcome: Any) -> str:
    """What a recorded outcome did, in a few words."""
    what = "refresh" if outcome.method == "refresh" else "re-tuning"
    if outcome.challenger is None:
        done = f"no challenger, champion v{outcome.champion} stays"
    elif outcome.decision == "promote":
        done = f"challenger v{outcome.challenger} promoted"
    else:
        done = f"challenger v{outcome.challenger} kept, champion v{outcome.champion} stays"
    return f"the {what} had finished and its outcome is recorded ({done})"


def _retune_stopped(
    exc: KeyboardInterrupt, command: str, *, refresh: bool, decided: Any = None
) -> typer.Exit:
    """Say what a stopped ``retune`` kept (only what happened) and how to resume; exit 130/143.
    ``decided``: the outcome recorded before the stop came (printed above)."""
    stop = runner.Interrupted.of(exc)
    if decided is not None:
        then = (
            "finds that outcome and prints it, without refitting"
            if refresh
            else "finds that outcome and prints it, without re-tuning"
        )
        term.warn(f"Stopped by {stop.signal_name}: {_decided(decided)}. `{command}` {then}.")
        return typer.Exit(stop.exit_code)
    kept = _retune_kept(stop)
    if kept is None:
        what = "the refresh did not finish" if refresh else "no re-tuning study was started"
        term.warn(f"Stopped by {stop.signal_name}: {what}. `{command}` runs it again.")
        return typer.Exit(stop.exit_code)
    what, then = kept
    term.warn(f"Stopped by {stop.signal_name}: {what}. `{command}` {then}.")
    return typer.Exit(stop.exit_code)


def _monitor_stopped(exc: KeyboardInterrupt, command: str, *, assessed: bool) -> typer.Exit:
    """Say what a stopped ``monitor`` (batch) kept and what running it again does: it assesses
    the batch again (one more ``monitor`` event) and resumes a re-tuning it stopped, which
    ``retune`` finds by the same rows and champion (:func:`tuneops.ops.retune.retune`)."""
    stop = runner.Interrupted.of(exc)
    recorded = (
        "the batch's assessment is recorded" if assessed else "no assessment was recorded"
    )
    kept = _retune_kept(stop)
    if kept is None:
        # Stopped while assessing, before a re-tuning created its study, or while a refresh
        # refitted (nothing of it is kept: it is one fit, done again).
        term.warn(
            f"Stopped by {stop.signal_name}: {recorded}; no alert was sent. `{command}` runs "
            "it again" + (" (assessing the batch once more)." if assessed else ".")
        )
        return typer.Exit(stop.exit_code)
    what, then = kept
    term.warn(
        f"Stopped by {stop.signal_name}: {recorded}, no alert was sent; {what}. `{command}` "
        f"assesses the batch again and {then}."
    )
    return typer.Exit(stop.exit_code)


def _retune_kept(stop: runner.Interrupted) -> tuple[str, str] | None:
    """What a stopped re-tuning (or refresh) kept and what running it again on the same data
    does, or None when it kept nothing (not a RetuneInterrupted, stopped before its study was
    created, or a refresh stopped before its refit was registered)."""
    outcome = getattr(stop, "outcome", None)  # stopped after the outcome was recorded
    if outcome is not None:
        return _decided(outcome), (
            "does not refit the same rows again"
            if outcome.method == "refresh"
            else "finds that outcome, without re-tuning"
        )
    study = getattr(stop, "study", None)  # a RetuneInterrupted names its study
    version = getattr(stop, "version", None)
    if study is None and getattr(stop, "registered", False):  # a refresh, stopped judging
        return (
            f"the refresh registered its refit v{version}, which was not compared with the "
            "champion yet",
            "compares it and promotes it or keeps the champion, without refitting",
        )
    if study is None:
        return None
    if getattr(stop, "registered", False):
        what = (
            f"re-tuning study {study} finished and registered its challenger v{version}, "
            "which was not compared with the champion yet"
        )
        then = "compares it and promotes it or keeps the champion"
    else:
        finished = getattr(stop, "n_finished", 0)
        numbers = sorted(set(stop.abandoned))
        running = (
            f"; trial{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))} "
            f"{'were' if len(numbers) > 1 else 'was'} running: abandoned, "
            f"{'they run' if len(numbers) > 1 else 'it runs'} again on resume"
            if numbers
            else ""
        )
        what = (
            f"re-tuning study {study} keeps its {finished} finished trial"
            f"{'' if finished == 1 else 's'}{running}; version {version} stays reserved for "
            "its challenger"
        )
        then = "resumes it (the same data and champion; other data starts a new re-tuning)"
    return what, then


def simulate(
    dataset: Annotated[
        str,
        typer.Option(help="Dataset source: pmlb:NAME, sklearn:NAME, or a file (then --target)."),
    ] = "pmlb:phoneme",
    target: Annotated[
        str | None, typer.Option(help="Label column of a file given as --dataset.")
    ] = None,
    family: Annotated[str, typer.Option(help="Model family.")] = "knn",
    batches: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Number of batches (default 24; with --time-column: every row after training).",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            help="Rows per batch; no row is streamed twice: batches x rows must fit in the data.",
        ),
    ] = 100,
    shift: Annotated[
        list[str] | None,
        typer.Option(
            help="KIND@BATCH, e.g. covariate@8, concept@16; repeat. Default: covariate at 1/3, "
            "concept at 2/3."
        ),
    ] = None,
    stationary: Annotated[
        bool,
        typer.Option(
            "--stationary",
            help="No shift: a stationary stream (what false alarms are measured on).",
        ),
    ] = False,
    time_column: Annotated[
        str | None,
        typer.Option(
            help="Stream the rows in the order of this column (its own drift; not a feature)."
        ),
    ] = None,
    n_trials: Annotated[
        int, typer.Option(min=1, help="Trials of the initial tuning and of each re-tuning.")
    ] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the stream and the searches.")] = 0,
    model: Annotated[
        str | None, typer.Option(help="Model name (default: simulate-DATASET).")
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            help="Output directory: storage, studies, model artifacts, timeline.json, timeline.png."
        ),
    ] = Path("tuneops-out/simulate"),
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            "-s",
            help="Storage URL (default: OUT/simulate.journal).",
            callback=storage_option,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Simulate a stream of unseen batches from a real dataset: monitor, re-tune, promote.

    One line per batch as it is processed (on stderr with --json, none with --quiet).
    """
    ops = _ops()
    if stationary and (shift or time_column):
        raise UsageError(
            "stationary (--stationary): a stationary stream has no --shift and no --time-column; "
            "give one of them."
        )
    shifts = [ops.parse_shift(s) for s in shift] if shift else ([] if stationary else None)
    lines = term.err if json_out else term.out

    def show(row: dict[str, Any]) -> None:
        if term.quiet:
            return
        retuned = f" re-tuned: {row['retune']['decision']}" if row["retune"] else ""
        if row.get("refresh"):
            retuned += f" refreshed on {row['refresh']['rows']} rows: {row['refresh']['decision']}"
        lines.print(
            f"batch {row['t']:>3} {row['phase']:<18} {row['decision']:<6} max PSI "
            f"{row['max_psi']:.2f} champion v{row['champion']} "
            f"{fmt(row['champion_score'])} never-updated "
            f"{fmt(row['baseline_score'])}{retuned}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        if row.get("note"):  # a re-tuning the decision called for and that did not run: why
            lines.print(f"          {row['note']}", highlight=False, markup=False, soft_wrap=True)

    try:
        with runner.stop_on_signals():
            timeline = ops.simulate(
                dataset,
                target=target,
                family=family,
                n_batches=batches,
                batch_size=batch_size,
                shifts=shifts,
                time_column=time_column,
                n_trials=n_trials,
                storage=storage,
                model=model,
                out_dir=out,
                seed=seed,
                progress=show,
            )
    except KeyboardInterrupt as exc:
        command = _simulate_command(
            {
                "--dataset": None if dataset == "pmlb:phoneme" else dataset,
                "--target": target,
                "--family": None if family == "knn" else family,
                "--batches": batches,
                "--batch-size": None if batch_size == 100 else batch_size,
                "--time-column": time_column,
                "--n-trials": None if n_trials == 8 else n_trials,
                "--seed": seed or None,
                "--model": model,
                "--out": out,
                "--storage": mask_url(storage) if storage else None,
            },
            shift or [],
            stationary,
        )
        raise _simulate_stopped(exc, out, command) from None
    files = {"timeline": str(out / "timeline.json"), "plot": str(out / "timeline.png")}
    if json_out:
        emit_json({**timeline, "outputs": files})
        return
    summary = timeline["summary"]
    term.result(
        f"{timeline['mode'].capitalize()} stream of {summary['n_batches']} batches "
        f"({timeline['rows']['streamed']} unseen rows): {summary['decisions']['warn']} "
        f"warn, {summary['decisions']['retune']} retune; re-tunings: "
        f"{summary['n_retunes']}, promotions: {summary['n_promotions']}, refreshes promoted: "
        f"{summary['n_refreshes']}",
        highlight=False,
        soft_wrap=True,
    )
    if summary["shifts"]:
        term.result(
            f"Recovery per shift on unseen rows ({summary['confidence']:.0%} intervals; recovered: "
            f"at least {fmt(summary['recovery_target'])} of the cost won back with confidence):",
            highlight=False,
            soft_wrap=True,
        )
    for s in summary["shifts"]:
        term.result(
            f"  {s['kind']}@{s['at']}: detected at {fmt(s['detected_at'])}, promoted at "
            f"{fmt(s['first_promotion_at'])}; {_recovery_text(s.get('judgement'))}",
            highlight=False,
            soft_wrap=True,
        )
    term.info(
        f"Timeline: {files['timeline']}, {files['plot']}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def _recovery_text(judgement: dict[str, Any] | None) -> str:
    """A shift's judgement in words: the cost, the share won back (each with its interval) and
    the verdict, in the numbers ``timeline.json`` records."""
    if judgement is None:
        return "not judged (no settled batch before the shift, or none after its promotion)"

    def interval(bounds: list[float] | None) -> str:
        return f" [{fmt(bounds[0])}, {fmt(bounds[1])}]" if bounds else ""

    where = "after the promotion" if judgement["on"] == "after_promotion" else "nothing promoted"
    text = (
        f"{where}, {judgement['rows']} rows against {judgement['rows_before']} before: cost "
        f"{fmt(judgement['lost'])}{interval(judgement['lost_interval'])}"
    )
    verdict = judgement["verdict"]
    if judgement["share_interval"] is not None or verdict is None:  # None: no resamples
        share = f"{fmt(judgement['share'])}{interval(judgement['share_interval'])}"
        return f"{text}, share recovered {share}: {verdict or 'not judged'}"
    why = {
        "within noise": "its interval holds 0, nothing measurable to win back",
        "no loss": "the shift helped the model in place",
    }
    return f"{text}: {verdict} ({why[verdict]})"


def _simulate_command(options: dict[str, Any], shifts: list[str], stationary: bool) -> str:
    """The ``tuneops simulate`` command line of these options (None: left out)."""
    command = ["tuneops", "simulate"]
    command += [a for k, v in options.items() if v is not None for a in (k, str(v))]
    command += [a for s in shifts for a in ("--shift", s)]
    command += ["--stationary"] if stationary else []
    return shlex.join(command)


def _simulate_stopped(exc: KeyboardInterrupt, out: Path, command: str) -> typer.Exit:
    """Say what a stopped ``simulate`` left (only what happened) and what starts it over."""
    stop = runner.Interrupted.of(exc)
    if getattr(stop, "out", None) is None:  # not a SimulationInterrupted: nothing written
        term.warn(
            f"Stopped by {stop.signal_name} before anything was written. `{command}` runs it again."
        )
        return typer.Exit(stop.exit_code)
    n_done, n_batches = getattr(stop, "n_done", 0), getattr(stop, "n_batches", 0)
    done = f"after {n_done} of {n_batches} batches" if n_done else "before the first batch"
    term.warn(
        f"Stopped by {stop.signal_name} {done}: {out} holds a partial simulation, without "
        f"timeline.json. `{command}` starts it over, replacing it (a finished simulation is "
        "never replaced)."
    )
    return typer.Exit(stop.exit_code)


def label(
    log: Annotated[
        Path, typer.Option("--log", help="The prediction log `tuneops serve --log` writes.")
    ],
    labels: Annotated[
        Path,
        typer.Option(
            "--labels",
            help="CSV with the columns request_id and label (one row per request; a "
            "multi-row request: its labels as a JSON list).",
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Registered model whose requests these are: each label must be one of the "
            "classes of the version that answered it (the champion's for a request not in the "
            "log). Default: the model the log's requests name, when --storage holds its "
            "registry; else a label is checked against the answers the log shows (a number is "
            "refused where they are text such as 'no' and 'yes').",
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            "-s",
            help="The storage of the registry of --model, or of the model the log's requests "
            "name (default: tuneops.journal here).",
            callback=storage_option,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Join the true labels to logged predictions by request id (what live monitoring compares)."""
    ops = _ops()
    reg = None if model is None else ops.registry.Registry.open(model, storage)
    frame = ops.monitor.read_batch(labels, field="labels (--labels)", text=("request_id", "label"))
    missing = [c for c in ("request_id", "label") if c not in frame.columns]
    if missing:
        raise UsageError(
            f"labels (--labels): {labels} lacks the column(s) {', '.join(missing)}; expected "
            f"request_id and label, received {', '.join(map(str, frame.columns))}."
        )
    if frame["request_id"].isna().any() or frame["label"].isna().any():
        raise UsageError(
            f"labels (--labels): {labels} has rows without a request_id or a label; every "
            "row needs both. Nothing was written."
        )
    if not log.is_file():
        raise UsageError(
            f"log (--log): {str(log)!r} "
            + ("is a directory" if log.is_dir() else "does not exist")
            + "; point it at the file `tuneops serve --log` writes. Nothing was written."
        )
    ids = frame["request_id"].astype(str)
    twice = frame[ids.duplicated(keep=False)]
    conflicting = sorted(
        str(i) for i, rows in twice.groupby(ids[twice.index]) if rows["label"].nunique() > 1
    )
    if conflicting:  # the last one silently won
        raise UsageError(
            f"labels (--labels): {labels} gives request id(s) {', '.join(conflicting[:3])} "
            "different labels on several rows; expected one label per request id. Nothing was "
            "written."
        )
    predictions = ops.predlog.read_log(log).predictions
    answers = _answer_kinds(predictions)
    kind = next(iter(answers)) if len(answers) == 1 else None
    if reg is None:  # the model the log names, so the labels are checked against its classes
        reg = _model_of_log(ops.registry, predictions, storage)
    classes = None if reg is None else _classes_by_request(reg, predictions)
    if kind is None and classes is not None:  # no answer logged yet: the model's classes say
        values = [v for c in classes.values() if c is not None for v in c]
        kinds = {_kind(v) for v in values}
        kind = kinds.pop() if len(kinds) == 1 else "number"
    pairs = {
        str(k): _label_value(v, kind)
        for k, v in zip(frame["request_id"], frame["label"], strict=True)
    }
    if classes is None:
        problems = _number_problems(pairs, predictions, ops.predlog)
    else:
        problems = _class_problems(pairs, classes, reg, ops.predlog)
    _check_labels(pairs, predictions, answers, labels, ops.predlog, problems)
    known = {str(r.get("id")) for r in predictions}
    unknown = sorted(set(pairs) - known)
    n = ops.predlog.append_labels(log, pairs)
    checked = None if reg is None else reg.name
    if json_out:
        emit_json(
            {
                "log": str(log),
                "labels": n,
                "unknown_ids": unknown[:20],
                "n_unknown": len(unknown),
                "checked_against": checked,
            }
        )
        return
    # a regression model has no classes: its labels were checked to be numbers
    regression = classes is not None and all(c is None for c in classes.values())
    against = (
        f"checked as the numbers regression model {checked!r} answers"
        if regression
        else f"checked against the classes of model {checked!r}"
    )
    term.result(
        f"{n} label(s) appended to {log}" + (f" ({against})." if checked else "."),
        highlight=False,
        markup=False,
    )
    if unknown:
        term.warn(
            f"{len(unknown)} request id(s) are not in the log (yet), e.g. "
            f"{', '.join(unknown[:3])}; their labels are kept and join a request answered "
            "before now that is logged later, never one answered after."
        )


def _kind(value: Any) -> str:
    """A label's or an answer's kind: ``text``, ``boolean`` (JSON true/false) or ``number``."""
    if isinstance(value, str):
        return "text"
    return "boolean" if isinstance(value, bool) else "number"


#: What a label of one kind is refused as, where the model answers another.
_KIND_WORDS = {"text": "text", "number": "numbers", "boolean": "booleans (true, false)"}


def _classes_by_request(reg: Any, predictions: list[dict[str, Any]]) -> dict[str, Any]:
    """``--model``: per request id of the log, the classes of the version that answered it
    (None: a regressor), and under ``""`` the champion's, for ids the log does not hold.

    Raises:
        UsageError: the log's requests were answered by another model.
    """
    versions: dict[str, int] = {}
    others: set[str] = set()
    for record in predictions:
        named = record.get("model")
        if named is not None and named != reg.name:  # several models' servers share a log
            others.add(str(named))
            continue
        if isinstance(record.get("version"), int):
            versions[str(record.get("id"))] = record["version"]
    if others and not versions:
        raise UsageError(
            f"model (--model): the log holds requests of model(s) {', '.join(sorted(others))}, "
            f"none of {reg.name!r}; give the model that answered them."
        )
    known = {v["version"] for v in reg.versions()}
    champion = reg.require_champion()

    def of(version: int) -> Any:
        classes = reg.classes(version if version in known else champion)
        return None if classes is None else list(getattr(classes, "tolist", lambda: classes)())

    out = {request_id: of(version) for request_id, version in versions.items()}
    out[""] = of(champion)
    return out


def _model_of_log(registry: Any, predictions: list[dict[str, Any]], storage: str | None) -> Any:
    """Without ``--model``: the registry of the one model the log's requests name, or None when
    they name none or several, or ``storage`` holds no registry of it (labels written on a
    machine without the registry are checked against the log's answers alone).

    Raises:
        UsageError: ``--storage`` was given, but the log names no single model, or that storage
            cannot be read or holds no registry of it.
    """
    named = sorted({str(r["model"]) for r in predictions if r.get("model") is not None})
    if len(named) != 1:
        if storage is not None:
            raise UsageError(
                "storage (--storage): the storage of the registry of the model whose labels these "
                "are, but the log's requests name "
                + (f"several models ({', '.join(named)})" if named else "no model")
                + "; add --model NAME."
            )
        return None
    try:
        reg = registry.Registry.open(named[0], storage)
        known = {v["version"] for v in reg.versions()}
        for version in {r.get("version") for r in predictions if r.get("model") == named[0]}:
            if isinstance(version, int) and version in known:
                reg.classes(version)  # its artifact is here: its classes can be read
        reg.classes(reg.require_champion())
    except TuneOpsError:  # no registry here, or its artifacts are elsewhere
        if storage is not None:  # asked for: its problem is said
            raise
        return None
    return reg


def _number_problems(
    pairs: dict[str, Any], predictions: list[dict[str, Any]], predlog: Any
) -> list[str]:
    """Without the model's classes: labels written as numbers (``1``) for a log whose answers
    are text that is never a number (``no``, ``yes``): read as the class ``'1'``, they never
    match a prediction, and monitoring the log then finds every label unknown. A label among
    the answers is kept, as is a text label never answered yet (a class the model has not
    predicted)."""
    answered = {
        v
        for r in predictions
        if isinstance(r.get("prediction"), list)
        for v in r["prediction"]
        if isinstance(v, str)
    }
    if not answered or any(_is_number_text(v) for v in answered):
        return []
    odd = [
        (request_id, value)
        for request_id, label in pairs.items()
        if predlog.is_label(label)
        for value in (label if isinstance(label, list) else [label])
        if isinstance(value, str) and _is_number_text(value) and value not in answered
    ]
    if not odd:
        return []
    request_id, value = odd[0]
    shown = ", ".join(map(repr, sorted(answered)[:5])) + (", ..." if len(answered) > 5 else "")
    return [
        f"{len(odd)} label value(s) are numbers where the model answers text classes (the log "
        f"shows {shown}), so they never match a prediction: request {request_id} has {value!r}; "
        "write each label as the class the model answers, or pass --model NAME (and --storage "
        "URL of its registry) to check the labels against its classes"
    ]


def _is_number_text(value: str) -> bool:
    """``value`` is a number written out (``1``, ``-0.5``, ``2e3``), not a word."""
    return _NUMBER.fullmatch(value.strip()) is not None


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _class_problems(
    pairs: dict[str, Any], classes: dict[str, Any], reg: Any, predlog: Any
) -> list[str]:
    """``--model``: labels that are none of the classes of the version that answered their
    request (a label ``1`` for a model whose classes are 'no' and 'yes' was kept as the class
    '1' and replaced a good label), and booleans for a regression model."""
    odd: list[tuple[str, Any, Any]] = []
    for request_id, label in pairs.items():
        if not predlog.is_label(label):
            continue  # _check_labels says so
        allowed = classes.get(request_id, classes[""])
        for value in label if isinstance(label, list) else [label]:
            if allowed is None:
                if isinstance(value, bool) or isinstance(value, str):
                    odd.append((request_id, value, allowed))
            elif value not in allowed or isinstance(value, bool) != any(
                isinstance(c, bool) for c in allowed
            ):
                odd.append((request_id, value, allowed))
    if not odd:
        return []
    request_id, value, allowed = odd[0]
    expected = (
        "a number: it is a regression model"
        if allowed is None
        else "one of its classes, " + ", ".join(map(repr, allowed[:10]))
        + (", ..." if len(allowed) > 10 else "")
    )
    return [
        f"{len(odd)} label value(s) are not what model {reg.name!r} answers (expected "
        f"{expected}), so they never match a prediction: request {request_id} has {value!r}"
    ]


def _answer_kinds(predictions: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """What the model answers in the log: per kind of value (text, number), up to 3 examples."""
    examples: dict[str, list[Any]] = {}
    for record in predictions:
        predicted = record.get("prediction")
        for v in predicted if isinstance(predicted, list) else ():
            seen = examples.setdefault(_kind(v), [])
            if len(seen) < 3 and v not in seen:
                seen.append(v)
    return examples


def _label_value(value: Any, kind: str | None) -> Any:
    """A label of the labels file as the log keeps it: a JSON list as a list; read as the model
    answers (``kind``: ``1`` as a number where it answers numbers, ``"1"`` where it answers
    text); as pandas would read it when the log shows no answer yet."""
    if isinstance(value, str) and value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return [_label_value(v, kind) for v in parsed] if isinstance(parsed, list) else value
    if hasattr(value, "item"):
        value = value.item()
    if kind == "text":
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # a Parquet column of floats: 1.0 is the class "1"
        return str(value)
    if isinstance(value, str):
        word = value.strip()
        # true/false are booleans where the model answers booleans, and refused (as
        # booleans) where it answers numbers: true equalled the class 1
        if word.lower() in ("true", "false") and kind in ("number", "boolean"):
            return word.lower() == "true"
        for parse in (int, float):
            try:
                return parse(word)
            except ValueError:
                pass
    return value


def _check_labels(
    pairs: dict[str, Any],
    predictions: list[dict[str, Any]],
    answers: dict[str, list[Any]],
    path: Path,
    predlog: Any,
    classes: list[str] | None = None,
) -> None:
    """Refuse (nothing written) labels that could never be compared with what the model
    answered: not a label at all, the wrong number of labels for a logged request, or text where
    the model answers numbers (or the reverse: ``yes`` is never equal to ``1``); ``classes``:
    the problems :func:`_class_problems` found (``--model``)."""
    problems = [
        f"request {k}: {v!r} is not a label (a string, number or boolean; a list of them for a "
        "multi-row request)"
        for k, v in pairs.items()
        if not predlog.is_label(v)
    ]
    problems += classes or []
    answered = {
        str(r.get("id")): len(r["prediction"])
        for r in predictions
        if isinstance(r.get("prediction"), list) and r["prediction"]
    }
    times: dict[str, int] = {}
    for r in predictions:
        if isinstance(r.get("prediction"), list) and r["prediction"]:
            times[str(r.get("id"))] = times.get(str(r.get("id")), 0) + 1
    problems += [
        f"request {k} was answered {times[k]} times (by several servers, or for a client that "
        "sent its id twice), so a label cannot say which of them it is the truth of (it would "
        "join none); leave it out"
        for k in pairs
        if times.get(k, 0) > 1
    ]
    for request_id, label in pairs.items():
        n = answered.get(request_id)
        wrong = predlog.label_shape_problem(request_id, label, n) if n else None
        if wrong is not None and predlog.is_label(label):
            problems.append(wrong)
    # one kind of answer: a label of another kind never matches (what the model's own classes
    # found, when given, says it already: the same label is not refused twice over)
    if len(answers) == 1 and not classes:
        (kind,) = answers
        # a number for a model answering booleans stays accepted (0 and 1 are its classes)
        odd = [
            (k, v)
            for k, label in pairs.items()
            if predlog.is_label(label)
            for v in (label if isinstance(label, list) else [label])
            if _kind(v) != kind and not (_kind(v) == "number" and kind == "boolean")
        ]
        if odd:
            k, v = odd[0]
            given = _kind(v)
            problems.append(
                f"{len(odd)} label value(s) are {_KIND_WORDS[given]} where the model answers "
                f"{_KIND_WORDS[kind]} (e.g. {', '.join(map(repr, answers[kind]))}), so they "
                + (
                    "would be read as 1 and 0, not as the model's classes: write each class "
                    "as the number the model answers"
                    if given == "boolean" and kind == "number"
                    else "never match a prediction"
                )
                + f": request {k} has {v!r}"
            )
    if problems:
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise UsageError(
            f"labels (--labels): {path}: {'; '.join(problems[:3])}{more}. Write each label as the "
            "model predicts it (one per row of its request, a JSON list for a multi-row request). "
            "Nothing was written."
        )
