"""The ``tuneops`` command line: parses arguments, calls the library, prints.

Exit codes: 0 success, 1 failure (for example no feasible trial), 2 bad input (spec, data,
storage URL, arguments), 130 interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from tuneops.errors import TuneOpsError, UsageError

app = typer.Typer(
    name="tuneops",
    help="Production hyperparameter tuning: spec -> multi-objective search -> selected model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

StorageOpt = Annotated[
    Optional[str], typer.Option("--storage", "-s", help="Storage URL (default: tuneops.journal here).")
]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_front(results: dict[str, Any]) -> None:
    """The Pareto front and the selected trial as a table."""
    objectives = [o["metric"] for o in results["objectives"]]
    constraints = results.get("constraints") or []
    selected = (results.get("selected") or {}).get("number")
    table = Table(title=f"Pareto front of {results['study']} (feasible: {', '.join(constraints) or 'no constraints'})")
    table.add_column("trial", justify="right")
    for name in objectives:
        table.add_column(name, justify="right")
    table.add_column("family")
    table.add_column("params", overflow="fold")
    for t in results.get("pareto_front", []):
        mark = "★ " if t["number"] == selected else ""
        values = {**dict(zip(objectives, t["values"] or [])), **t.get("metrics", {})}
        table.add_row(
            f"{mark}{t['number']}", *[_fmt(values.get(n)) for n in objectives], t.get("family", "-"),
            ", ".join(f"{k}={_fmt(v)}" for k, v in t["params"].items()),
        )
    console.print(table)


def print_summary(results: dict[str, Any]) -> None:
    counts = ", ".join(f"{v} {k}" for k, v in results["n_trials"].items())
    console.print(f"[bold]{results['study']}[/]: {counts}")
    if results.get("pareto_front"):
        print_front(results)
    sel = results.get("selected")
    if sel:
        console.print(f"Selected trial [bold]{sel['number']}[/] by {results['selection']['policy']}: "
                      + ", ".join(f"{k}={_fmt(v)}" for k, v in sel.get("metrics", {}).items()))
    if results.get("message"):
        err.print(f"[yellow]{results['message']}[/]")
    for f in results.get("failures", [])[:5]:
        err.print(f"[red]trial {f['number']} failed:[/] {f['reason'][:200]}")


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="Spec file (YAML or TOML).")],
    n_trials: Annotated[Optional[int], typer.Option(help="Override search.n_trials.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", help="Local worker processes.")] = None,
    timeout_s: Annotated[Optional[float], typer.Option(help="Override search.timeout_s.")] = None,
    storage: StorageOpt = None,
    study: Annotated[Optional[str], typer.Option(help="Override the study name.")] = None,
    output_dir: Annotated[Optional[str], typer.Option("--out", help="Output directory.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Tune SPEC: run the trials, select under the constraints, refit and save the model."""
    from tuneops.tuning import run as run_spec

    try:
        result = run_spec(
            spec, progress=progress, n_trials=n_trials, n_workers=workers, timeout_s=timeout_s,
            storage=storage, study=study, output_dir=output_dir,
        )
    except KeyboardInterrupt:
        err.print("[yellow]Interrupted: finished trials are kept; run the same command to resume.[/]")
        raise typer.Exit(130) from None
    print_summary(result.results)
    if result.model_path:
        console.print(f"Model: {result.model_path}\nResults: {result.results_path}")
    else:
        raise typer.Exit(1)


@app.command()
def show(
    study: Annotated[str, typer.Argument(help="Study name.")],
    storage: StorageOpt = None,
    trials: Annotated[bool, typer.Option("--trials", help="List every trial.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the results document as JSON.")] = False,
) -> None:
    """Show a study: trial counts, the Pareto front and the selected trial."""
    import json

    from tuneops.errors import NoFeasibleTrial
    from tuneops.results import study_results
    from tuneops.tuning import load_study, reselect

    s = load_study(study, storage)
    try:
        choice, message = reselect(s), None
    except NoFeasibleTrial as exc:
        choice, message = None, str(exc)
    results = study_results(s, choice=choice, message=message)
    if json_out:
        console.print_json(json.dumps(results, default=str))
        return
    print_summary(results)
    if trials:
        table = Table(title="trials")
        for col in ("trial", "state", "values", "duration_s", "params / reason"):
            table.add_column(col)
        for t in results["trials"]:
            table.add_row(str(t["number"]), t["state"] + (" (abandoned)" if "abandoned" in t else ""),
                          _fmt(t["values"]), _fmt(t["duration_s"]),
                          t.get("fail_reason") or ", ".join(f"{k}={_fmt(v)}" for k, v in t["params"].items()))
        console.print(table)


@app.command()
def select(
    study: Annotated[str, typer.Argument(help="Study name.")],
    constraint: Annotated[Optional[list[str]], typer.Option("--constraint", "-c", help="e.g. 'accuracy >= 0.95'; repeat for more. Replaces the spec's constraints.")] = None,
    policy: Annotated[Optional[str], typer.Option(help="knee, lexicographic or weighted.")] = None,
    storage: StorageOpt = None,
) -> None:
    """Select again with other constraints or policy, without re-running any trial."""
    from tuneops.results import study_results
    from tuneops.tuning import load_study, reselect

    s = load_study(study, storage)
    choice = reselect(s, constraints=constraint, policy=policy)
    results = study_results(s, choice=choice)
    if constraint is not None:
        results["constraints"] = constraint
    print_summary(results)


@app.command()
def export(
    study: Annotated[str, typer.Argument(help="Study name.")],
    trial: Annotated[Optional[int], typer.Option(help="Trial number (default: the selected trial).")] = None,
    out: Annotated[Optional[str], typer.Option(help="Output directory.")] = None,
    storage: StorageOpt = None,
) -> None:
    """Refit and save a study's selected (or given) trial."""
    from tuneops.tuning import export_model, load_study

    path = export_model(load_study(study, storage), trial=trial, out_dir=out)
    console.print(f"Model: {path}")


@app.command()
def families() -> None:
    """List the model families and their default search spaces."""
    from tuneops.families import FAMILIES

    table = Table(title="model families")
    for col in ("name", "description", "default space (classification)"):
        table.add_column(col)
    for name, cls in FAMILIES.items():
        fam = cls()
        space = ", ".join(f"{p.name}" for p in fam.default_space("classification").values())
        table.add_row(name, fam.description, space)
    console.print(table)


@app.command()
def metrics() -> None:
    """List the built-in metrics."""
    from tuneops.metrics import METRICS

    table = Table(title="metrics")
    for col in ("name", "direction", "kind", "tasks", "description"):
        table.add_column(col)
    for m in METRICS.values():
        table.add_row(m.name, m.direction, m.kind, ", ".join(m.tasks), m.description)
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    """Entry point: maps tuneops errors to exit codes (2 for bad input, 1 for failures)."""
    import click
    import optuna

    # tuneops prints its own progress and summary; Optuna's per-trial INFO lines would bury them.
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    try:
        # Without standalone mode click returns the code of a typer.Exit instead of raising it.
        code = app(args=argv, standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("[yellow]Aborted.[/]")
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2
    except UsageError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    except TuneOpsError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
