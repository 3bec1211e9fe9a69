"""``tuneops report`` (HTML/PNG report of a study) and ``tuneops dashboard`` (optuna-dashboard)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tuneops._files import check_output_dir, is_stdout, is_stream
from tuneops._hosts import is_loopback
from tuneops.cli._common import JsonOpt, StorageOpt, emit_json, read_study, term
from tuneops.errors import MissingExtra
from tuneops.report import get_renderer, write_report

__all__ = ["report", "dashboard", "write_run_report"]


def report(
    study: Annotated[str, typer.Argument(help="Study name.")],
    storage: StorageOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="HTML file, or the directory for --format png (default: report.html or "
            "figures/ beside the run's results.json: its output_dir, else tuneops-out/STUDY).",
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="html (one self-contained file) or png (one file per figure)."
        ),
    ] = "html",
    plotly: Annotated[
        str | None,
        typer.Option(
            "--plotly",
            help="html only: embed (default: plotly.js inside the file, which opens offline; "
            "about 4.6 MB more) or cdn (a small file that loads plotly.js from cdn.plot.ly "
            "when opened, pinned by the sha384 of the bundled plotly.js).",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a report of STUDY: findings in words, figures, the trial table, the spec."""
    options = {} if plotly is None else {"plotly": plotly}
    get_renderer(fmt, **options)  # a bad --format or --plotly fails before the study is read
    if out is not None and (out.is_dir() or not is_stream(out)):  # refused first: exit 2
        folder = out if fmt != "html" or out.is_dir() or not out.suffix else out.parent
        check_output_dir(folder, option="--out")
    with read_study(study, storage) as s:
        paths = write_report(s, out, fmt=fmt, **options)
    if json_out:
        emit_json({"study": study, "format": fmt, "files": [str(p) for p in paths]})
        return
    where = paths[0] if fmt == "html" else paths[0].parent
    (term.err if is_stdout(out) else term.out).print(  # the report itself may be on stdout
        f"Report: {where} ({len(paths)} file(s))", soft_wrap=True, highlight=False, markup=False
    )


def dashboard(
    study: Annotated[
        str | None, typer.Argument(help="Open this study (default: the study list).")
    ] = None,
    storage: StorageOpt = None,
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind (IPv4 or IPv6, such as ::1). The dashboard has no login: keep "
            "loopback unless a proxy guards it."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8080,
    allow_writes: Annotated[
        bool,
        typer.Option(
            "--allow-writes",
            help="Let the dashboard change the storage (notes, renaming and deleting studies, "
            "the model registry among them); read-only by default.",
        ),
    ] = False,
) -> None:
    """Serve optuna-dashboard on the study's storage (read-only unless --allow-writes).

    Needs the extra: pip install 'tuneops[dashboard]'.
    """
    from tuneops.report.dashboard import start_dashboard  # http.server: not for `report`

    board = start_dashboard(storage, study=study, host=host, port=port, allow_writes=allow_writes)
    if not is_loopback(host):
        term.warn(
            f"warning: optuna-dashboard has no login and now listens on {host}; anyone who "
            "reaches this address can read the studies"
            + (" and delete them." if allow_writes else ".")
        )
    # Printed even with --quiet: the address is the result of this command.
    term.result(
        f"optuna-dashboard listening on {board.url} (Ctrl-C to stop)",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    sys.stdout.flush()
    try:
        board.serve_forever()
    except KeyboardInterrupt:
        pass


def write_run_report(study: Any, output_dir: Path, *, write: bool = True) -> Path | None:
    """After ``tuneops run``: report.html next to results.json. Skipped with a warning, never
    failing the run, when the report extra is missing or the report cannot be written (the
    run's results are already saved). Returns the report's path, or None.

    An earlier run's report.html is removed first, also when ``write`` is False (``run
    --no-report``): left beside this run's results.json after a failure, a Ctrl-C or a run
    without a report, it would describe another state of the study."""
    target = Path(output_dir) / "report.html"
    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
        target.unlink()
        if not write:
            term.info(
                f"Removed the earlier {target}: it described the study before this run "
                f"(`tuneops report {study.study_name}` writes a current one).",
                soft_wrap=True,
                highlight=False,
                markup=False,
            )
    if not write:
        return None
    try:
        return write_report(study, target)[0]
    except MissingExtra as exc:
        term.warn(f"No report.html: {exc}")
    except Exception as exc:  # noqa: BLE001 - a report problem is not a failed run
        term.warn(f"report.html not written: {type(exc).__name__}: {exc}")
    return None
