"""``tuneops deploy`` and ``tuneops registry``: model versions, the champion, the challenger,
promotion, rollback.

``tuneops.ops`` is loaded when a command runs (:func:`_ops`): it loads pandas and scipy (about
1.4 s), which every other command (and ``tuneops -h``) would otherwise pay for.
"""

from __future__ import annotations

import shlex
from types import SimpleNamespace
from typing import Annotated, Any

import typer
from rich.text import Text

from tuneops import runner
from tuneops._secrets import shown_settings
from tuneops.cli._common import (
    Column,
    JsonOpt,
    ModelOpt,
    StorageOpt,
    emit_json,
    fmt,
    print_fitted,
    term,
)
from tuneops.errors import UsageError
from tuneops.storage import mask_url

__all__ = [
    "deploy",
    "list_versions",
    "show",
    "promote",
    "rollback",
    "challenger",
    "settings",
    "clean",
    "COMMANDS",
]


def _ops() -> Any:
    """The registry and the staging gate, loaded once, when a command runs."""
    from tuneops.ops import registry, verify

    return SimpleNamespace(
        Registry=registry.Registry,
        list_models=registry.list_models,
        deploy=registry.deploy,
        verify=verify.verify,
        partial_versions=registry.partial_versions,
        remove_stale_versions=registry.remove_stale_versions,
    )


def deploy(
    study: Annotated[str, typer.Argument(help="Study name.")],
    trial: Annotated[
        int | None, typer.Option(help="Trial number (default: the selected trial).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model name (default: the study name).")
    ] = None,
    artifacts: Annotated[
        str | None, typer.Option(help="Artifact directory (default: monitor.artifact_dir).")
    ] = None,
    no_verify: Annotated[
        bool,
        typer.Option(
            "--no-verify",
            help=(
                "Skip the staging gate (tuneops verify): promote at once, or with"
                " --challenger make it the challenger at once."
            ),
        ),
    ] = False,
    challenger: Annotated[
        str | None,
        typer.Option(
            "--challenger",
            help="Make the version the challenger instead of the champion: shadow (scores "
            "every request, answers none) or canary (answers --share); the champion stays.",
        ),
    ] = None,
    share: Annotated[
        float | None,
        typer.Option(
            help="--challenger canary: share of requests it answers, in [0, 1], sticky by "
            "request key."
        ),
    ] = None,
    storage: StorageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Register a study's selected (or given) trial as a new model version; promote it to
    champion once it passes the staging gate (exit 1 when it fails: registered, not champion),
    or, with --challenger, serve it beside the champion (`tuneops serve`; `tuneops monitor
    --live` promotes or withdraws it). A trial that is the champion already, or the challenger
    with --challenger, on the same data, is not registered again.

    Exits 130 on Ctrl-C and 143 on SIGTERM, saying what was kept: nothing, or a version
    registered and not verified, which the same command then verifies and promotes (instead of
    registering another).
    """
    ops = _ops()
    gate = None if no_verify else (lambda reg, version: ops.verify(reg, version))
    command = ["tuneops", "deploy", study]
    command += ["--trial", str(trial)] if trial is not None else []
    command += ["--model", model] if model is not None else []
    command += ["--artifacts", artifacts] if artifacts is not None else []
    command += ["--no-verify"] if no_verify else []
    live = ["--mode", challenger] if challenger is not None else []
    live += ["--share", str(share)] if share is not None else []
    command += (["--challenger", *live[1:]]) if live else []
    command += ["--storage", mask_url(storage)] if storage else []
    try:
        with runner.stop_on_signals():
            record = ops.deploy(
                study,
                storage=storage,
                trial=trial,
                model=model,
                artifact_dir=artifacts,
                gate=gate,
                challenger=challenger,
                share=share,
            )
    except KeyboardInterrupt as exc:
        raise _deploy_stopped(
            exc,
            shlex.join(command),
            no_verify=no_verify,
            storage=mask_url(storage) if storage else None,
            challenger=shlex.join(live) if live else None,
        ) from None
    name = model or study
    if json_out:
        emit_json({"model": name, **record})
    elif record.get("already") and record.get("challenger"):
        serving = record["challenger"]
        term.result(
            f"Model {name} version {record['version']} is already the {serving['mode']} "
            f"challenger{_answers(serving)}: trial {record['source']['trial']} of study {study} "
            "on the same data. Nothing was registered or changed (setting it again would restart "
            f"its live comparison); `tuneops registry challenger {record['version']} --mode ...` "
            "changes its mode or share.",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return
    elif record.get("already"):
        term.result(
            f"Model {name} version {record['version']} is already the champion: trial "
            f"{record['source']['trial']} of study {study} on the same data. Nothing was "
            "registered or promoted (another version of it would restart the probation window, "
            "and a rollback would bring back the same model).",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return
    else:
        verdict = record.get("verification")
        if verdict is not None:
            _print_verdict(verdict)
        serving = record.get("challenger")
        if serving:
            status = f"is the {serving['mode']} challenger{_answers(serving)}"
        elif record["promoted"]:
            status = "is the champion"
        else:
            status = "is registered, NOT " + ("the challenger" if challenger else "promoted")
        broken = record.get("constraints_broken")
        if broken and verdict is None:
            term.warn(
                f"Trial {record['source']['trial']} breaks the spec's constraints "
                f"({', '.join(broken)}) and was deployed without the staging gate (--no-verify): "
                "the registry's history says so. Deploy a trial that meets them (the selected "
                "one, by default), or drop --no-verify to have the gate judge it."
            )
        if record.get("resumed"):
            status += " (registered by an earlier deploy that was stopped before it finished)"
        if record.get("was_challenger"):
            status += " (the version deployed as the challenger; no other was registered)"
        if record.get("deployed_by"):
            status += (
                f" (registered by the same deploy run at the same time by "
                f"{record['deployed_by']}; this one registered nothing)"
            )
        if serving:
            status += "; the champion stays"
        what = (
            f"{record['family']}, trial {record['source']['trial']}, artifact from the "
            f"{record['artifact']['from']}"
        )
        # the version's description before "the champion stays", which it followed and read as
        # the champion's ("the champion stays (knn, trial 3, ...)": the challenger's trial)
        line = (
            f"version {record['version']} ({what}) {status}"
            if serving
            else f"version {record['version']} {status} ({what})"
        )
        term.result(
            f"Model {name} {line}; "
            f"{record['artifact']['path']} {record['artifact']['sha256'][:19]}...",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if not record["promoted"] and not record.get("challenger"):
        raise typer.Exit(1)


def _answers(state: dict[str, Any]) -> str:
    """How much of the traffic a challenger answers, as a parenthesis."""
    if state["mode"] == "canary":
        return f" (answers {state['share']:.0%} of requests)"
    return " (scores every request, answers none)"


def _deploy_stopped(
    exc: KeyboardInterrupt,
    command: str,
    *,
    no_verify: bool,
    storage: str | None,
    challenger: str | None = None,
) -> typer.Exit:
    """Say what a stopped ``deploy`` kept (only what happened) and what finishes it; exit
    130/143."""
    stop = runner.Interrupted.of(exc)
    version = getattr(stop, "version", None)  # a DeployInterrupted says what it registered
    if version is None:
        term.warn(
            f"Stopped by {stop.signal_name} before a version was registered: nothing was kept "
            f"(no version, no artifact). `{command}` runs it again."
        )
        return typer.Exit(stop.exit_code)
    model = getattr(stop, "model", None)
    of = f" --model {shlex.quote(model)}" if model else ""
    of += f" --storage {shlex.quote(storage)}" if storage else ""
    role = "the challenger" if challenger else "the champion"
    live = (
        f"`tuneops registry challenger {version} {challenger}{of}`"
        if challenger
        else f"`tuneops registry promote {version}{of}`"
    )
    if no_verify:
        what = "registered, not " + ("the challenger" if challenger else "promoted")
        then = live
    else:
        what = f"registered, not verified, not {role}"
        then = f"`tuneops verify {version}{of}` then {live}"
    term.warn(
        f"Stopped by {stop.signal_name}: model {model} version {version} is {what}. "
        f"`{command}` finishes it (no other version is registered), or {then}."
    )
    return typer.Exit(stop.exit_code)


def _print_verdict(verdict: dict[str, Any]) -> None:
    colour = "green" if verdict["verdict"] == "pass" else "red"
    term.result(
        Text.assemble(f"Staging gate, version {verdict['version']}: ", (verdict["verdict"], colour))
    )
    for reason in verdict["reasons"]:
        term.result(f"  - {reason}", highlight=False, markup=False, soft_wrap=True)


def list_versions(
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Only this registered model (default: every one)."),
    ] = None,
    storage: StorageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the versions of every registered model (or of --model)."""
    ops = _ops()
    names = [model] if model else ops.list_models(storage)
    models: list[dict[str, Any]] = []
    for name in names:
        reg = ops.Registry.open(name, storage)
        gates = reg.gates()
        models.append(
            {
                "model": name,
                "champion": reg.champion(),
                "challenger": reg.challenger(),
                "versions": [
                    {**v, "gate": gates.get(v["version"]) or _NO_GATE} for v in reg.versions()
                ],
                "incomplete": ops.partial_versions(reg),
            }
        )
    if json_out:
        emit_json(models)
        return
    if not models:
        term.info("No model is registered; register one with `tuneops deploy STUDY`.", markup=False)
    for m in models:
        # the challenger too: after `deploy --challenger` nothing here said which version
        # `tuneops serve` runs beside the champion
        served = m["challenger"] or {}
        rows = []
        for v in m["versions"]:
            mark = (
                "★ "
                if v["version"] == m["champion"]
                else "☆ "
                if v["version"] == served.get("version")
                else ""
            )
            src = v["source"]
            cells = [
                f"{mark}{v['version']}",
                v["created"],
                v["family"],
                f"{v['profile']['metric']} {fmt(v['profile']['reference'])}",
                _gate_cell(v["gate"]),
                # the digest's first 12 hex digits (the record's "sha256:" prefix left out: it
                # took 7 of the 12 and left 5 digits)
                v["artifact"]["sha256"].removeprefix("sha256:")[:12],
            ]
            rows.append((cells, _source_line(src)))
        # Names and figures are never cut (at 80 columns the family read "random_fore…", the
        # digest lost 2 of its 12 digits and the source was gone): what does not fit goes
        # under the table, one line per version.
        columns = [
            Column("version", "right"),
            Column("created", movable=True),
            Column("family"),
            Column("metric (reference)"),
            Column("gate"),
            Column("sha256"),
        ]
        print_fitted(f"model {m['model']}", columns, rows, "source")
        if served:
            term.result(
                f"★ champion, ☆ {served['mode']} challenger{_answers(served)}",
                highlight=False,
                markup=False,
            )
        _print_incomplete(m["model"], m["incomplete"])
        if any(v["gate"]["forced"] for v in m["versions"]):
            term.result(
                "gate FORCED: made the champion or the canary challenger past a failed staging "
                "gate (--force); `tuneops registry show VERSION` says when and why.",
                highlight=False,
                markup=False,
            )


_NO_GATE: dict[str, Any] = {"verdict": None, "time": None, "forced": []}


def _source_line(source: dict[str, Any], detail: bool = False) -> str:
    """Where a version came from in words: its kind, study and trial (`registry list`); with
    ``detail`` (`registry show`), also the champion a re-tuning or refresh challenged and the
    rows a refresh refitted on."""
    kind, study, trial = (source.get(k, "?") for k in ("kind", "study", "trial"))
    text = f"{kind}: {study} #{trial}"
    if not detail:
        return text
    notes = []
    if source.get("champion") is not None:
        notes.append(f"challenger to champion v{source['champion']}")
    if source.get("rows") is not None:
        notes.append(f"refitted on {source['rows']} rows")
    return f"{text} ({', '.join(notes)})" if notes else text


def _age(seconds: float) -> str:
    """An age in words: 45 s, 12 min, 5.2 h, 3.1 d."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def _incomplete_line(entry: dict[str, Any]) -> str:
    """One directory of a version reserved and never recorded, in words."""
    writer = entry["writer"]
    who = (
        f"written by {writer['host']}:{writer['pid']}"
        if writer is not None
        else "its writer not named"
    )
    state = {
        True: "its writer runs",
        False: "its writer is gone (this host)",
        None: "nothing tells whether its writer runs",
    }[entry["alive"]]
    what = "whole artifact, not recorded" if entry["whole"] else "partial"
    return (
        f"v{entry['version']} {entry['path']} ({what}; {who}; unchanged for "
        f"{_age(entry['age_s'])}; {state})"
    )


def _print_incomplete(model: str, incomplete: list[dict[str, Any]]) -> None:
    """Say which version directories were never recorded, and how to remove the stale ones."""
    if not incomplete:
        return
    plain: dict[str, Any] = {"highlight": False, "markup": False, "soft_wrap": True}
    term.result(f"incomplete (reserved, never recorded) of model {model}:", **plain)
    for entry in incomplete:
        term.result(f"  {_incomplete_line(entry)}", **plain)
    term.result(
        f"  `tuneops registry clean --model {model} --older-than 6h` removes those unchanged "
        "for 6 h whose writer does not provably run (never a running writer's).",
        **plain,
    )


def _gate_cell(gate: dict[str, Any]) -> str:
    """A version's staging gate in a cell: its latest verdict (none: never verified), or
    FORCED when it was made champion or canary challenger past a failed one."""
    return "FORCED" if gate["forced"] else gate["verdict"] or "none"


def _gate_line(gate: dict[str, Any]) -> str:
    """A version's staging gate in a sentence (`registry show`)."""
    if gate["verdict"] is None:
        line = "never verified (deployed with --no-verify, or registered by hand)"
    else:
        line = f"{gate['verdict']} at {gate['time']}"
    for forced in gate["forced"]:
        role = "the champion" if forced["kind"] == "promote" else f"the {forced['mode']} challenger"
        line += f"; FORCED past a failed gate: made {role} at {forced['time']} ({forced['reason']})"
    return line


def show(
    version: Annotated[int | None, typer.Argument(help="Version (default: the champion).")] = None,
    model: ModelOpt = None,
    events: Annotated[int, typer.Option(help="How many recent events to list.")] = 10,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the version record and events as JSON.")
    ] = False,
    storage: StorageOpt = None,
) -> None:
    """Show a version (params, metrics, data, artifact) and the model's recent events."""
    if events < 0:
        raise UsageError(f"events (--events): expected a number of events >= 0, received {events}.")
    reg = _ops().Registry.open(model, storage)
    record = reg.version(version if version is not None else reg.require_champion())
    log = reg.events()[-events:] if events > 0 else []
    champion = reg.champion()
    served = reg.challenger()
    gate = reg.gate(record["version"])
    incomplete = _ops().partial_versions(reg)
    if json_out:
        emit_json(
            {
                "version": record,
                "gate": gate,
                "champion": champion,
                "challenger": served,
                "events": log,
                "incomplete": incomplete,
            }
        )
        return
    plain: dict[str, Any] = {"highlight": False, "markup": False, "soft_wrap": True}
    term.result(
        Text.assemble(
            (reg.name, "bold"),
            f" version {record['version']}",
            " ★ champion" if record["version"] == champion else "",
            f" ☆ {served['mode']} challenger{_answers(served)}"
            if served and record["version"] == served["version"]
            else "",
        )
    )
    term.result(f"  created: {record['created']}", **plain)
    # in words, as `registry list` says it (it printed the raw record: {'study': ..., ...})
    term.result(f"  source: {_source_line(record['source'], detail=True)}", **plain)
    for key in ("family", "params", "metrics", "artifact"):
        term.result(f"  {key}: {record[key]}", **plain)
    term.result(f"  staging gate: {_gate_line(gate)}", **plain)
    data = record["data"]
    term.result(
        f"  data: {data.get('name')} ({data.get('rows')} rows, {data.get('fingerprint')})", **plain
    )
    term.result(
        f"  reference: {record['profile']['metric']} "
        f"{fmt(record['profile']['reference'])} (out-of-fold), "
        f"{len(record['features'])} feature profiles",
        **plain,
    )
    for e in log:
        detail = e.get("decision") or e.get("verdict") or e.get("reason") or ""
        if e.get("forced"):
            detail = f"FORCED past a failed staging gate: {detail}"
        # a key present with None (a live check, a settings change) names no version either
        version = next((e[k] for k in ("version", "challenger") if e.get(k) is not None), None)
        term.result(
            f"  {e['time']} {e['kind']:<8} {'-' if version is None else f'v{version}'} {detail}",
            **plain,
        )
    _print_incomplete(reg.name, incomplete)


def promote(
    version: Annotated[int, typer.Argument(help="Version to make the champion.")],
    model: ModelOpt = None,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "promoted by hand",
    force: Annotated[
        bool,
        typer.Option("--force", help="Promote a version whose staging gate failed."),
    ] = False,
    storage: StorageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Make VERSION the champion (refused when its latest staging gate failed, unless --force)."""
    event = _ops().Registry.open(model, storage).promote(version, reason, force=force)
    if json_out:
        emit_json(event)
    else:
        was = (
            f"was {event['previous']}" if event["previous"] is not None else "the model's first"
        )
        term.result(f"Version {version} is the champion ({was}).", highlight=False)
        if event.get("forced"):
            term.warn(
                f"Version {version} failed its staging gate and was promoted with --force: the "
                "registry records it (`tuneops registry show`), and `tuneops serve` warns while "
                "it serves it."
            )


def rollback(
    to: Annotated[
        int | None, typer.Option(help="Version to restore (default: the previous champion).")
    ] = None,
    model: ModelOpt = None,
    storage: StorageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Restore the previous champion (or version --to)."""
    event = _ops().Registry.open(model, storage).rollback(to)
    if json_out:
        emit_json(event)
    else:
        term.result(
            f"Rolled back: version {event['version']} is the champion (was {event['previous']}).",
            highlight=False,
        )


def challenger(
    version: Annotated[
        int | None, typer.Argument(help="Version to serve beside the champion.")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="shadow (scores every request, answers none) or canary (answers --share)."
        ),
    ] = None,
    share: Annotated[
        float,
        typer.Option(
            help="canary: share of requests the challenger answers, sticky by request key."
        ),
    ] = 0.1,
    clear: Annotated[bool, typer.Option("--clear", help="Stop serving the challenger.")] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Serve as canary a version whose staging gate failed."),
    ] = False,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "set by hand",
    model: ModelOpt = None,
    storage: StorageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Serve VERSION beside the champion in shadow or canary mode (or --clear it); a running
    `tuneops serve` picks it up at its next poll."""
    if clear == (version is not None):
        raise UsageError(
            "registry challenger: give a VERSION with --mode shadow|canary, or "
            "--clear; not both, not neither."
        )
    reg = _ops().Registry.open(model, storage)
    if clear:
        event = reg.clear_challenger("cleared by hand" if reason == "set by hand" else reason)
        if json_out:
            emit_json(event)
        else:
            was = event.get("previous")
            term.result(
                "No challenger is served"
                + (f" (was version {was})." if was is not None else "; none was."),
                highlight=False,
            )
        return
    if mode is None:
        raise UsageError("mode (--mode): expected shadow or canary, received nothing; add --mode.")
    if mode == "shadow" and share != 0.1:
        raise UsageError(
            "share (--share): a shadow challenger answers no request; --share applies to "
            "--mode canary only."
        )
    state = reg.set_challenger(
        version, mode, share if mode == "canary" else 0.0, reason, force=force
    )
    if json_out:
        emit_json(state)
    else:
        what = (
            f"answers {state['share']:.0%} of requests"
            if mode == "canary"
            else "scores every request, answers none"
        )
        term.result(
            f"Version {version} is the {mode} challenger of champion {reg.champion()}: it {what}.",
            highlight=False,
        )


def settings(
    file: Annotated[
        str | None,
        typer.Argument(
            help="YAML or TOML file of monitor settings (a monitor section, or a spec: its "
            "monitor section is read)."
        ),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the model's own settings.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "set by hand",
    model: ModelOpt = None,
    storage: StorageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show the model's own monitor settings, set them from FILE (its keys replace those keys;
    the others stay), or --clear them.

    They take the place of the same keys of every version's spec `monitor` section (alerts,
    slo, live, drift thresholds, ...): an alert route or an SLO changes without registering a
    version, and stays through promotions and rollbacks."""
    from tuneops.spec import read_monitor_settings

    if file is not None and clear:
        raise UsageError("registry settings: give FILE or --clear, not both.")
    reg = _ops().Registry.open(model, storage)
    if file is not None or clear:
        raw = read_monitor_settings(file) if file is not None else None
        # merge: the file's keys on top of the model's settings (the guide's "a webhook moves"
        # file replaced an SLO and a probation set before, which fell back to the specs), read
        # and written as one change: another at the same moment waits for it
        event = reg.configure(
            raw, reason if reason != "set by hand" or raw else "cleared by hand", merge=True
        )
        if json_out:
            emit_json(event)
        elif event["monitor"]:
            keys = ", ".join(sorted(event["monitor"]))
            term.result(
                f"Model {reg.name!r}: its own settings of {keys} apply to every version.",
                highlight=False,
            )
        else:
            term.result(
                f"Model {reg.name!r}: no settings of its own; each version's spec applies.",
                highlight=False,
            )
        return
    # shown as an event records them: a webhook's path and query (its secret) left out
    own = shown_settings(reg.settings())
    champion = reg.champion()
    effective = (
        shown_settings(reg.monitor_section(reg.version(champion)))
        if champion is not None
        else None
    )
    if json_out:
        emit_json(
            {"model": reg.name, "settings": own, "champion": champion, "effective": effective}
        )
        return
    plain: dict[str, Any] = {"highlight": False, "markup": False, "soft_wrap": True}
    if not own:
        term.result(
            f"Model {reg.name!r} has no settings of its own; each version's spec applies.", **plain
        )
    else:
        term.result(
            f"Model {reg.name!r}: its own settings (in place of the versions' specs):", **plain
        )
        for key in sorted(own):
            term.result(f"  {key}: {own[key]}", **plain)
    if effective is not None:
        spec_keys = sorted(
            k for k in ("slo", "live", "alerts", "verify") if k in effective and k not in own
        )
        for key in spec_keys:
            term.result(f"  {key}: {effective[key]} (from champion {champion}'s spec)", **plain)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def _seconds(text: str) -> float:
    """An age given as 90s, 30m, 6h, 2d or a number of seconds."""
    raw = text.strip().lower()
    unit = _UNITS.get(raw[-1:], None)
    number = raw[:-1] if unit is not None else raw
    try:
        value = float(number) * (unit or 1.0)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise UsageError(
            f"older_than (--older-than): expected an age >= 0 such as 90s, 30m, 6h or 2d (a "
            f"bare number is seconds), received {text!r}."
        )
    return value


def clean(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Remove only directories unchanged for this long: 90s, 30m, 6h, 2d (a bare "
            "number is seconds). Choose it above the longest a deploy or re-tuning takes to "
            "write a version.",
        ),
    ],
    model: ModelOpt = None,
    artifacts: Annotated[
        str | None,
        typer.Option(help="Also look in this artifact directory (as deploy --artifacts)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing.")
    ] = False,
    storage: StorageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove the directories of versions reserved and never recorded (left by a deploy or a
    re-tuning killed while it wrote, on any machine) that are unchanged for --older-than and
    whose writer does not provably run. A writer that runs (a process of this host, or one
    whose claim in the storage has a recent heartbeat) is never touched. `registry list` and
    `show` list these directories."""
    age = _seconds(older_than)
    ops = _ops()
    reg = ops.Registry.open(model, storage)
    removed = ops.remove_stale_versions(reg, age, artifacts, dry_run=dry_run)
    if json_out:
        emit_json({"model": reg.name, "dry_run": dry_run, "removed": removed})
        return
    plain: dict[str, Any] = {"highlight": False, "markup": False, "soft_wrap": True}
    verb = "Would remove" if dry_run else "Removed"
    if not removed:
        term.result(
            f"Model {reg.name!r}: no incomplete version directory unchanged for "
            f"{_age(age)} whose writer may be gone; nothing {'would be ' if dry_run else ''}"
            "removed.",
            **plain,
        )
    for entry in removed:
        term.result(f"{verb} {_incomplete_line(entry)}", **plain)


COMMANDS: dict[str, Any] = {
    "list": list_versions,
    "show": show,
    "promote": promote,
    "rollback": rollback,
    "challenger": challenger,
    "settings": settings,
    "clean": clean,
}
