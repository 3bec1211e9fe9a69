"""``tuneops verify``: the staging gate: is a registered version fit to serve?

Exit 0 when the version passes, 1 when it fails, 2 for bad input. ``tuneops.ops`` is loaded when
the command runs (:func:`_ops`).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer
from rich.text import Text

from tuneops.cli._common import JsonOpt, ModelOpt, StorageOpt, emit_json, fmt, term
from tuneops.errors import SpecError, UsageError
from tuneops.spec import VerifySettings

__all__ = ["verify"]


def _ops() -> Any:
    """The staging gate and the batch reader, loaded once, when the command runs."""
    from tuneops.ops import monitor, registry, verify

    return SimpleNamespace(
        Registry=registry.Registry, read_batch=monitor.read_batch, verify=verify.verify
    )


def verify(
    version: Annotated[
        int | None, typer.Argument(help="Version to verify (default: the newest).")
    ] = None,
    model: ModelOpt = None,
    storage: StorageOpt = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Data to verify on: the features and the label column (default: the version's "
            "spec data, checked against its fingerprint)."
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Label column of --data (default: the version's).")
    ] = None,
    folds: Annotated[
        int | None, typer.Option(help="Folds per repeat (default: monitor.verify.n_folds, 5).")
    ] = None,
    repeats: Annotated[
        int | None,
        typer.Option(help="Repeats of the K folds (default: monitor.verify.n_repeats, 3)."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Parallel requests of the latency test (default: monitor.verify.concurrency, 4)."
        ),
    ] = None,
    requests: Annotated[
        int | None,
        typer.Option(help="Calls of the latency test (default: monitor.verify.n_requests, 200)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Re-evaluate a version with more folds and repeats against the champion on the same folds,
    measure its latency one call at a time and under concurrency, judge constraints and SLOs on
    the intervals; the verdict is a registry event."""
    if target is not None and data is None:
        raise UsageError("--target names the label column of --data; give --data FILE too.")
    overrides = {
        "n_folds": folds,
        "n_repeats": repeats,
        "concurrency": concurrency,
        "n_requests": requests,
    }
    flags = {
        "n_folds": "--folds",
        "n_repeats": "--repeats",
        "concurrency": "--concurrency",
        "n_requests": "--requests",
    }
    for key, value in overrides.items():
        if value is not None:  # a flag's bad value is named as the flag, not the spec field
            try:
                VerifySettings.from_raw({key: value}, field_name="")
            except SpecError as exc:
                raise UsageError(f"{flags[key]}: {str(exc).split(': ', 1)[-1]}") from None
    ops = _ops()
    reg = ops.Registry.open(model, storage)
    versions = reg.versions()
    if version is None and versions:
        version = int(versions[-1]["version"])
    record = reg.version(version) if version is not None else None
    # the model's own settings (`tuneops registry settings`) in place of the version's spec's
    raw = dict((reg.monitor_section(record) if record else {}).get("verify") or {})
    raw.update({k: v for k, v in overrides.items() if v is not None})
    frame = None
    if data is not None:
        frame = ops.read_batch(data, field="data (--data)")
        label = target or (record or {}).get("target") or "target"
        if label not in frame.columns:
            raise UsageError(
                f"target (--target): {data} has no column {label!r}; columns: "
                f"{', '.join(map(str, frame.columns[:30]))}."
            )
        wanted = (record or {}).get("target") or "target"
        frame = frame.rename(columns={label: wanted}) if label != wanted else frame
    verdict = ops.verify(reg, version, data=frame, config=raw)
    if json_out:
        emit_json(verdict.to_dict())
    else:
        colour = "green" if verdict.passed else "red"
        term.result(
            Text.assemble(
                (reg.name, "bold"), f" version {verdict.version}: ", (verdict.verdict, colour)
            )
        )
        for reason in verdict.reasons:
            term.result(f"  - {reason}", highlight=False, markup=False, soft_wrap=True)
        c = verdict.concurrency
        term.result(
            f"  latency at {c['concurrency']} parallel requests: p50 "
            f"{fmt(c['latency_p50_ms']['estimate'])} ms, p95 "
            f"{fmt(c['latency_p95_ms']['estimate'])} ms, p99 "
            f"{fmt(c['latency_p99_ms']['estimate'])} ms, "
            f"{fmt(c['rps']['estimate'])} requests/s",
            highlight=False,
            markup=False,
        )
    if not verdict.passed:
        raise typer.Exit(1)
