"""The ``tuneops`` command line: parses arguments, calls the library, prints.

One module per command group; this module holds the app, its global options and the table of
commands, so every command the CLI has is listed here.

Exit codes: 0 success, 1 failure (for example no feasible trial), 2 bad input (spec, data,
storage URL, arguments), 3 ``monitor --fail-on`` tripped, 130 interrupted; ``verify``
and ``deploy`` exit 1 when the staging gate fails.
"""

from __future__ import annotations

import platform
import sys
from typing import Annotated, Any

import optuna
import typer

from tuneops import __version__
from tuneops.cli import bench, catalog, kb, monitor, registry, report, run, serve, study, verify
from tuneops.cli._common import configure, term
from tuneops.errors import TuneOpsError, UsageError

__all__ = ["app", "main"]

# -h as well as --help everywhere (click passes help_option_names on to every subcommand), and
# help text printed as written: rich markup would swallow `pip install 'tuneops[report]'`.
_TYPER: dict[str, Any] = {
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}

app = typer.Typer(
    name="tuneops",
    help="Production hyperparameter tuning: spec -> multi-objective search -> selected model.\n\n"
    "Global options go before the command: tuneops --quiet run spec.yaml",
    **_TYPER,
)


def _version(value: bool) -> None:
    if value:
        term.out.print(
            f"tuneops {__version__} (optuna {optuna.__version__}, "
            f"Python {platform.python_version()})",
            highlight=False,
        )
        raise typer.Exit(0)


@app.callback()
def _global(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_version, help="Print the version and exit."
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print only results and errors: no progress, no status lines."
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Let Optuna's INFO lines and other libraries' logs and warnings "
            "through (silenced by default).",
        ),
    ] = False,
) -> None:
    """Set up the terminal for this invocation (the app's help text comes from the Typer)."""
    configure(quiet=quiet, verbose=verbose)


# -- the command table: name -> function, per group ----------------------------------------------
_COMMANDS: dict[str, Any] = {
    "run": run.run,
    "worker": run.worker,
    "show": study.show,
    "select": study.select,
    "export": study.export,
    "families": catalog.families,
    "metrics": catalog.metrics,
    "report": report.report,
    "dashboard": report.dashboard,
    "deploy": registry.deploy,
    "verify": verify.verify,
    "serve": serve.serve,
    "monitor": monitor.monitor,
    "label": monitor.label,
    "retune": monitor.retune,
    "simulate": monitor.simulate,
}
_GROUPS: dict[str, tuple[str, dict[str, Any]]] = {
    "bench": ("Compare configurations on the same spec, seeds and budget.", bench.COMMANDS),
    "registry": ("Model versions, the champion, promotion and rollback.", registry.COMMANDS),
    "kb": ("The knowledge base of past tuning that warm-starts new studies.", kb.COMMANDS),
}

for _name, _function in _COMMANDS.items():
    app.command(_name)(_function)
for _group, (_help, _commands) in _GROUPS.items():
    _sub = typer.Typer(help=_help, **_TYPER)
    for _name, _function in _commands.items():
        _sub.command(_name)(_function)
    app.add_typer(_sub, name=_group)


def main(argv: list[str] | None = None) -> int:
    """Entry point: maps tuneops errors to exit codes (2 for bad input, 1 for failures)."""
    configure()  # also for errors raised before the app's callback runs
    try:
        # Standalone mode: typer prints usage errors itself and exits 2, and turns typer.Exit
        # into SystemExit; tuneops' own errors propagate to the handlers below.
        app(args=argv, standalone_mode=True, prog_name="tuneops")
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    except UsageError as exc:
        term.error(str(exc))
        return 2
    except TuneOpsError as exc:
        term.error(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
