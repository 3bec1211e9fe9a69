"""``tuneops bench pruners``: compare pruners on one spec, the same seeds and budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tuneops.bench import bench_pruners, plot_bench, render_table
from tuneops.cli._common import JsonOpt, add_name_column, emit_json, make_table, term
from tuneops.errors import UsageError
from tuneops.export import write_json
from tuneops.pruning import check_pruner

__all__ = ["pruners", "COMMANDS"]


def pruners(
    spec: Annotated[Path, typer.Argument(help="Spec file (YAML or TOML).")],
    pruners: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated pruner names [default: none,median,auto for one objective; "
            "none,pareto,auto for several]."
        ),
    ] = None,
    seeds: Annotated[
        str, typer.Option(help="Comma-separated seeds; several give a spread.")
    ] = "0,1,2",
    n_trials: Annotated[int | None, typer.Option(help="Override search.n_trials.")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Local worker processes.")
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Directory for the journal, bench.json and bench.png.")
    ] = Path("tuneops-bench"),
    json_out: JsonOpt = False,
) -> None:
    """Run SPEC once per pruner and seed: pruning rate, best result, compute and time to best.

    One line per finished run (pruner, seed, trials, best) as it ends (on stderr with --json,
    none with --quiet); the table when all have run.
    """
    names = None if pruners is None else [p.strip() for p in pruners.split(",") if p.strip()]
    for name in names or ():
        check_pruner(name, field="--pruners")
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise UsageError(
            f"seeds (--seeds): expected comma-separated integers, received {seeds!r}."
        ) from None
    if names == [] or not seed_list:
        raise UsageError("--pruners and --seeds: expected at least one of each.")
    lines = term.err if json_out else term.out  # the JSON alone on stdout

    def said(run: dict[str, Any]) -> None:
        if term.quiet:
            return
        best = run["run_best"]
        if len(run["directions"]) > 1:
            what = f"Pareto front of {best} trial{'' if best == 1 else 's'}"
        else:
            what = "best -" if best is None else f"best {best:.4g}"
        lines.print(
            f"  {run['pruner']} seed {run['seed']}: {run['n_trials']} trials "
            f"({run['n_pruned']} pruned), {what}, {run['compute_s']:.1f} CPU s, "
            f"{run['wall_s']:.1f} s wall",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

    result = bench_pruners(
        spec,
        names,
        seeds=seed_list,
        out_dir=out,
        n_trials=n_trials,
        n_workers=workers,
        on_run=said,
    )
    json_path = write_json(out / "bench.json", json.loads(json.dumps(result, default=str)))
    png = plot_bench(result, out / "bench.png")
    if json_out:
        emit_json({**result, "outputs": {"json": str(json_path), "plot": str(png)}})
        return
    rows = render_table(result)
    table = make_table(f"pruners on {result['spec']} (seeds {seeds})")
    add_name_column(table, rows[0][0])
    for col in rows[0][1:]:
        table.add_column(col, justify="right")
    for row in rows[1:]:
        table.add_row(*row)
    term.result(table)
    term.info(f"JSON: {json_path}\nPlot: {png}", soft_wrap=True, highlight=False, markup=False)


COMMANDS: dict[str, Any] = {"pruners": pruners}
