"""``tuneops deploy`` and ``tuneops registry``: model versions, the champion, promotion, rollback.

``tuneops.ops`` is imported inside the commands: it loads pandas and scipy (about 1.4 s), which
every other command (and ``tuneops -h``) would otherwise pay for.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from tuneops.cli._common import (
    JsonOpt,
    ModelOpt,
    StorageOpt,
    add_free_column,
    add_name_column,
    emit_json,
    fmt,
    free_cell,
    make_table,
    term,
)

__all__ = ["deploy", "list_versions", "show", "promote", "rollback", "COMMANDS"]


def deploy(
    study: Annotated[str, typer.Argument(help="Study name.")],
    trial: Annotated[int | None, typer.Option(
        help="Trial number (default: the selected trial).")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Model name (default: the study name).")] = None,
    artifacts: Annotated[str | None, typer.Option(
        help="Artifact directory (default: monitor.artifact_dir).")] = None,
    storage: StorageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Register a study's selected (or given) trial as a new model version and make it champion."""
    from tuneops.ops.registry import deploy as deploy_trial

    record = deploy_trial(study, storage=storage, trial=trial, model=model, artifact_dir=artifacts)
    if json_out:
        emit_json({"model": model or study, **record})
        return
    term.result(
        f"Model {model or study} version {record['version']} is the champion "
        f"({record['family']}, trial {record['source']['trial']}); artifact "
        f"{record['artifact']['path']} {record['artifact']['sha256'][:19]}...",
        highlight=False, markup=False, soft_wrap=True,
    )


def list_versions(model: ModelOpt = None, storage: StorageOpt = None,
                  json_out: JsonOpt = False) -> None:
    """List the versions of every registered model (or of --model)."""
    from tuneops.ops.registry import Registry, list_models

    names = [model] if model else list_models(storage)
    models: list[dict[str, Any]] = []
    for name in names:
        reg = Registry.open(name, storage)
        models.append({"model": name, "champion": reg.champion(), "versions": reg.versions()})
    if json_out:
        emit_json(models)
        return
    if not models:
        term.info("No model is registered; register one with `tuneops deploy STUDY`.",
                  markup=False)
    for m in models:
        table = make_table(f"model {m['model']}")
        add_name_column(table, "version", justify="right")
        add_name_column(table, "created")
        add_free_column(table, "source", wide=False)
        add_name_column(table, "family")
        add_name_column(table, "metric (reference)")
        add_name_column(table, "sha256")
        for v in m["versions"]:
            mark = "★ " if v["version"] == m["champion"] else ""
            src = v["source"]
            table.add_row(f"{mark}{v['version']}", v["created"],
                          free_cell(f"{src['kind']}: {src['study']} #{src['trial']}", wide=False),
                          v["family"], f"{v['profile']['metric']} {fmt(v['profile']['reference'])}",
                          v["artifact"]["sha256"][:12])
        term.result(table)


def show(
    version: Annotated[int | None, typer.Argument(
        help="Version (default: the champion).")] = None,
    model: ModelOpt = None,
    events: Annotated[int, typer.Option(help="How many recent events to list.")] = 10,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print the version record and events as JSON.")] = False,
    storage: StorageOpt = None,
) -> None:
    """Show a version (params, metrics, data, artifact) and the model's recent events."""
    from tuneops.ops.registry import Registry

    reg = Registry.open(model, storage)
    record = reg.version(version if version is not None else reg.require_champion())
    log = reg.events()[-events:] if events > 0 else []
    champion = reg.champion()
    if json_out:
        emit_json({"version": record, "champion": champion, "events": log})
        return
    plain: dict[str, Any] = {"highlight": False, "markup": False, "soft_wrap": True}
    term.result(Text.assemble((reg.name, "bold"), f" version {record['version']}",
                              " ★ champion" if record["version"] == champion else ""))
    for key in ("created", "source", "family", "params", "metrics", "artifact"):
        term.result(f"  {key}: {record[key]}", **plain)
    data = record["data"]
    term.result(f"  data: {data.get('name')} ({data.get('rows')} rows, {data.get('fingerprint')})",
                **plain)
    term.result(f"  reference: {record['profile']['metric']} "
                f"{fmt(record['profile']['reference'])} (out-of-fold), "
                f"{len(record['features'])} feature profiles", **plain)
    for e in log:
        detail = e.get("decision") or e.get("reason") or ""
        term.result(f"  {e['time']} {e['kind']:<8} "
                    f"v{e.get('version', e.get('challenger', '-'))} {detail}", **plain)


def promote(
    version: Annotated[int, typer.Argument(help="Version to make the champion.")],
    model: ModelOpt = None,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "promoted by hand",
    storage: StorageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Make VERSION the champion."""
    from tuneops.ops.registry import Registry

    event = Registry.open(model, storage).promote(version, reason)
    if json_out:
        emit_json(event)
    else:
        term.result(f"Version {version} is the champion (was {event['previous']}).",
                    highlight=False)


def rollback(
    to: Annotated[int | None, typer.Option(
        help="Version to restore (default: the previous champion).")] = None,
    model: ModelOpt = None,
    storage: StorageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Restore the previous champion (or version --to)."""
    from tuneops.ops.registry import Registry

    event = Registry.open(model, storage).rollback(to)
    if json_out:
        emit_json(event)
    else:
        term.result(f"Rolled back: version {event['version']} is the champion "
                    f"(was {event['previous']}).", highlight=False)


COMMANDS: dict[str, Any] = {
    "list": list_versions,
    "show": show,
    "promote": promote,
    "rollback": rollback,
}
