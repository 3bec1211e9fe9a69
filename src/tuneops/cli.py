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
from rich.markup import escape
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
    print_pruning(results)
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
    report: Annotated[bool, typer.Option(help="Write report.html next to results.json (needs the extra 'report').")] = True,
    backend: Annotated[Optional[str], typer.Option(help="Where workers run: local or ray.")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (with --backend ray).")] = None,
) -> None:
    """Tune SPEC: run the trials, select under the constraints, refit and save the model."""
    from tuneops.tuning import run as run_spec

    try:
        result = run_spec(
            spec, progress=progress, n_trials=n_trials, n_workers=workers, timeout_s=timeout_s,
            storage=storage, study=study, output_dir=output_dir, backend=backend, address=address,
        )
    except KeyboardInterrupt:
        err.print("[yellow]Interrupted: finished trials are kept; run the same command to resume.[/]")
        raise typer.Exit(130) from None
    print_summary(result.results)
    if report:
        write_run_report(result.study, result.output_dir)
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
    from tuneops.runner import abandoned_label
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
    print_workers(results)
    if trials:
        table = Table(title="trials")
        for col in ("trial", "state", "values", "duration_s", "params / reason"):
            table.add_column(col)
        for t in results["trials"]:
            table.add_row(str(t["number"]), t["state"] + abandoned_label(t.get("abandoned")),
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

# -- Pruning (issue 3): savings in `show`/`run`, `tuneops bench pruners` ---------------------------
def print_pruning(results: dict[str, Any]) -> None:
    """One paragraph of what pruning saved (the results' ``pruning`` section)."""
    p = results.get("pruning")
    if not p:
        return
    line = (
        f"Pruning: {p['n_pruned']} of {p['n_trials']} trials pruned ({p['pruning_rate']:.0%})"
        f"{' by ' + p['pruner'] if p.get('pruner') else ''}; "
        f"{p['steps_saved']} of {p['steps_run'] + p['steps_saved']} steps and "
        f"{p['fit_s_saved']:.1f} of {p['fit_s'] + p['fit_s_saved']:.1f} fit seconds saved "
        f"({p['fit_saved_fraction']:.0%})"
    )
    if p.get("time_to_best_s") is not None:
        line += f"; best reached after {p['time_to_best_s']:.1f} s ({p['fit_s_to_best']:.1f} fit s)"
    console.print(line + ".", highlight=False, soft_wrap=True)


bench_app = typer.Typer(help="Compare configurations on the same spec, seeds and budget.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("pruners")
def bench_pruners_cmd(
    spec: Annotated[Path, typer.Argument(help="Spec file (YAML or TOML).")],
    pruners: Annotated[str, typer.Option(help="Comma-separated pruner names.")] = "none,median,auto",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds; several give a spread.")] = "0,1,2",
    n_trials: Annotated[Optional[int], typer.Option(help="Override search.n_trials.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", help="Local worker processes.")] = None,
    out: Annotated[Path, typer.Option(help="Directory for the journal, bench.json and bench.png.")] = Path("tuneops-bench"),
) -> None:
    """Run SPEC once per pruner and seed; compare pruning rate, best result, compute and time to best."""
    import json

    from tuneops.bench import bench_pruners, plot_bench, render_table
    from tuneops.export import write_json
    from tuneops.pruning import check_pruner

    names = [p.strip() for p in pruners.split(",") if p.strip()]
    for name in names:
        check_pruner(name, field="--pruners")
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds: expected comma-separated integers, received {seeds!r}.") from None
    if not names or not seed_list:
        raise UsageError("--pruners and --seeds: expected at least one of each.")
    result = bench_pruners(spec, names, seeds=seed_list, out_dir=out, n_trials=n_trials, n_workers=workers)
    rows = render_table(result)
    table = Table(title=f"pruners on {result['spec']} (seeds {seeds})")
    for col in rows[0]:
        table.add_column(col)
    for row in rows[1:]:
        table.add_row(*row)
    console.print(table)
    json_path = write_json(out / "bench.json", json.loads(json.dumps(result, default=str)))
    png = plot_bench(result, out / "bench.png")
    console.print(f"JSON: {json_path}\nPlot: {png}")


# == Production loop: registry, monitoring, re-tuning, simulation (issue 7) =====================
registry_app = typer.Typer(help="Model versions, the champion, promotion and rollback.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
ModelOpt = Annotated[
    Optional[str], typer.Option("--model", "-m", help="Registered model name (default: the only one).")
]


def _print_outcome(outcome: Any) -> None:
    color = "green" if outcome.decision == "promote" else "yellow"
    console.print(f"Re-tuning study [bold]{outcome.study}[/]: challenger v{outcome.challenger}, "
                  f"[{color}]{outcome.decision}[/]")
    for reason in outcome.reasons:
        console.print(f"  - {reason}", highlight=False)


@app.command()
def deploy(
    study: Annotated[str, typer.Argument(help="Study name.")],
    trial: Annotated[Optional[int], typer.Option(help="Trial number (default: the selected trial).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model name (default: the study name).")] = None,
    artifacts: Annotated[Optional[str], typer.Option(help="Artifact directory (default: monitor.artifact_dir).")] = None,
    storage: StorageOpt = None,
) -> None:
    """Register a study's selected (or given) trial as a new model version and make it champion."""
    from tuneops.ops.registry import deploy as deploy_trial

    record = deploy_trial(study, storage=storage, trial=trial, model=model, artifact_dir=artifacts)
    console.print(
        f"Model [bold]{model or study}[/] version {record['version']} is the champion "
        f"({record['family']}, trial {record['source']['trial']}); artifact {record['artifact']['path']} "
        f"{record['artifact']['sha256'][:19]}...", highlight=False,
    )


@registry_app.command("list")
def registry_list(model: ModelOpt = None, storage: StorageOpt = None) -> None:
    """List the versions of every registered model (or of --model)."""
    from tuneops.ops.registry import Registry, list_models

    names = [model] if model else list_models(storage)
    if not names:
        console.print("No model is registered; register one with `tuneops deploy STUDY`.")
    for name in names:
        reg = Registry.open(name, storage)
        champion = reg.champion()
        table = Table(title=f"model {name}")
        for col in ("version", "created", "source", "family", "metric (reference)", "artifact"):
            table.add_column(col)
        for v in reg.versions():
            mark = "★ " if v["version"] == champion else ""
            src = v["source"]
            table.add_row(f"{mark}{v['version']}", v["created"], f"{src['kind']}: {src['study']} #{src['trial']}",
                          v["family"], f"{v['profile']['metric']} {_fmt(v['profile']['reference'])}",
                          v["artifact"]["sha256"][:19])
        console.print(table)


@registry_app.command("show")
def registry_show(
    version: Annotated[Optional[int], typer.Argument(help="Version (default: the champion).")] = None,
    model: ModelOpt = None,
    events: Annotated[int, typer.Option(help="How many recent events to list.")] = 10,
    json_out: Annotated[bool, typer.Option("--json", help="Print the version record and events as JSON.")] = False,
    storage: StorageOpt = None,
) -> None:
    """Show a version (params, metrics, data, artifact) and the model's recent events."""
    import json

    from tuneops.ops.registry import Registry

    reg = Registry.open(model, storage)
    record = reg.version(version if version is not None else reg.require_champion())
    log = reg.events()[-events:] if events > 0 else []
    if json_out:
        console.print_json(json.dumps({"version": record, "champion": reg.champion(), "events": log}, default=str))
        return
    console.print(f"[bold]{reg.name}[/] version {record['version']}"
                  + (" ★ champion" if record["version"] == reg.champion() else ""))
    for key in ("created", "source", "family", "params", "metrics", "artifact"):
        console.print(f"  {key}: {record[key]}", highlight=False)
    console.print(f"  data: {record['data'].get('name')} ({record['data'].get('rows')} rows, "
                  f"{record['data'].get('fingerprint')})", highlight=False)
    console.print(f"  reference: {record['profile']['metric']} {_fmt(record['profile']['reference'])} "
                  f"(out-of-fold), {len(record['features'])} feature profiles", highlight=False)
    for e in log:
        detail = e.get("decision") or e.get("reason") or ""
        console.print(f"  {e['time']} {e['kind']:<8} v{e.get('version', e.get('challenger', '-'))} {detail}",
                      highlight=False)


@registry_app.command("promote")
def registry_promote(
    version: Annotated[int, typer.Argument(help="Version to make the champion.")],
    model: ModelOpt = None,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "promoted by hand",
    storage: StorageOpt = None,
) -> None:
    """Make VERSION the champion."""
    from tuneops.ops.registry import Registry

    event = Registry.open(model, storage).promote(version, reason)
    console.print(f"Version {version} is the champion (was {event['previous']}).")


@registry_app.command("rollback")
def registry_rollback(
    to: Annotated[Optional[int], typer.Option(help="Version to restore (default: the previous champion).")] = None,
    model: ModelOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Restore the previous champion (or version --to)."""
    from tuneops.ops.registry import Registry

    event = Registry.open(model, storage).rollback(to)
    console.print(f"Rolled back: version {event['version']} is the champion (was {event['previous']}).")


@app.command()
def monitor(
    batch: Annotated[Path, typer.Option("--batch", "-b", help="Batch file: feature columns, optionally the label column.")],
    model: ModelOpt = None,
    auto_retune: Annotated[bool, typer.Option("--auto-retune", help="Re-tune on the batch when the decision is retune.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the assessment as JSON.")] = False,
    fail_on: Annotated[Optional[str], typer.Option(
        "--fail-on", help="Exit 3 when the decision is this level or worse: warn or retune (for cron and CI).")] = None,
    storage: StorageOpt = None,
) -> None:
    """Check a batch against the champion: drift, prediction drift, performance; one decision."""
    import json

    from tuneops.ops.monitor import DECISIONS
    from tuneops.ops.registry import Registry
    from tuneops.ops.retune import monitor_batch

    if fail_on is not None and fail_on not in DECISIONS[1:]:
        raise UsageError(f"--fail-on: expected one of {', '.join(DECISIONS[1:])}, received {fail_on!r}; "
                         "leave it out to always exit 0 after a check")
    reg = Registry.open(model, storage)
    assessment, outcome, note = monitor_batch(reg, batch, auto_retune=auto_retune)
    failed = fail_on is not None and DECISIONS.index(assessment.decision) >= DECISIONS.index(fail_on)
    if json_out:
        console.print_json(json.dumps({"assessment": assessment.to_dict(),
                                       "retune": outcome.to_dict() if outcome else None, "note": note}))
        if failed:
            raise typer.Exit(3)
        return
    color = {"ok": "green", "warn": "yellow", "retune": "red"}[assessment.decision]
    console.print(f"[bold]{reg.name}[/] v{reg.version(reg.require_champion())['version']} on {batch} "
                  f"({assessment.n_rows} rows): [{color}]{assessment.decision}[/]")
    for reason in assessment.reasons:
        console.print(f"  - {reason}", highlight=False)
    table = Table(title="drift per feature (top 10 by PSI)")
    for col in ("feature", "test", "p (adjusted)", "PSI", "drifted"):
        table.add_column(col)
    for f in sorted(assessment.features, key=lambda f: -f["psi"])[:10]:
        table.add_row(f["column"], f["test"], f"{f['p_adjusted']:.3g}", f"{f['psi']:.3f}", "yes" if f["drifted"] else "")
    console.print(table)
    if note:
        err.print(f"[yellow]{note}[/]")
    if outcome is not None:
        _print_outcome(outcome)
    if failed:
        raise typer.Exit(3)


@app.command()
def retune(
    data: Annotated[list[Path], typer.Option("--data", "-d", help="Recent labelled data file; repeat for more.")],
    model: ModelOpt = None,
    n_trials: Annotated[Optional[int], typer.Option(help="Trials (default: monitor.retune_trials).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split and the search.")] = 0,
    storage: StorageOpt = None,
) -> None:
    """Tune a challenger on recent data, compare it with the champion, promote or keep."""
    import pandas as pd

    from tuneops.ops.monitor import read_batch
    from tuneops.ops.registry import Registry
    from tuneops.ops.retune import retune as retune_model

    frames = [read_batch(path) for path in data]
    reg = Registry.open(model, storage)
    _print_outcome(retune_model(reg, pd.concat(frames, ignore_index=True), n_trials=n_trials, seed=seed,
                                trigger="tuneops retune"))


@app.command()
def simulate(
    dataset: Annotated[str, typer.Option(help="Dataset source (pmlb:NAME, sklearn:NAME, file).")] = "pmlb:phoneme",
    family: Annotated[str, typer.Option(help="Model family.")] = "knn",
    batches: Annotated[int, typer.Option(help="Number of batches.")] = 24,
    batch_size: Annotated[int, typer.Option(help="Rows per batch.")] = 300,
    shift: Annotated[Optional[list[str]], typer.Option(help="KIND@BATCH, e.g. covariate@8, concept@16; repeat. Default: covariate at 1/3, concept at 2/3.")] = None,
    n_trials: Annotated[int, typer.Option(help="Trials of the initial tuning and of each re-tuning.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the stream and the searches.")] = 0,
    model: Annotated[Optional[str], typer.Option(help="Model name (default: simulate-DATASET).")] = None,
    out: Annotated[Path, typer.Option(help="Output directory for timeline.json, timeline.png, models.")] = Path("tuneops-out/simulate"),
    storage: Annotated[Optional[str], typer.Option("--storage", "-s", help="Storage URL (default: OUT/simulate.journal).")] = None,
) -> None:
    """Simulate a drifting stream from a real dataset: monitor -> re-tune -> promote, with a timeline."""
    from tuneops.ops.simulate import parse_shift, simulate as run_simulation

    shifts = [parse_shift(s) for s in shift] if shift else None
    if storage is None:
        out.mkdir(parents=True, exist_ok=True)
        storage = str(out / "simulate.journal")

    def show(row: dict[str, Any]) -> None:
        retuned = f" re-tuned: {row['retune']['decision']}" if row["retune"] else ""
        console.print(f"batch {row['t']:>3} {row['phase']:<18} {row['decision']:<6} max PSI {row['max_psi']:.2f} "
                      f"champion v{row['champion']} {_fmt(row['champion_score'])} never-updated "
                      f"{_fmt(row['baseline_score'])}{retuned}", highlight=False)

    timeline = run_simulation(dataset, family=family, n_batches=batches, batch_size=batch_size, shifts=shifts,
                              n_trials=n_trials, storage=storage, model=model, out_dir=out, seed=seed,
                              progress=show)
    summary = timeline["summary"]
    console.print(f"Re-tunings: {summary['n_retunes']}, promotions: {summary.get('n_promotions', 0)}; "
                  f"share of the loss recovered after the last shift: {_fmt(summary.get('recovered_share'))}")
    console.print(f"Timeline: {out / 'timeline.json'}, {out / 'timeline.png'}")
# == end of production loop (issue 7) ===========================================================


# -- reports (issue 6): the HTML/PNG report and optuna-dashboard ---------------------------------
@app.command()
def report(
    study: Annotated[str, typer.Argument(help="Study name.")],
    storage: StorageOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="HTML file, or the directory for --format png (default: tuneops-out/STUDY/report.html or .../figures).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="html (one self-contained file) or png (one file per figure).")] = "html",
) -> None:
    """Write a report of STUDY: findings in words, figures, the trial table, the spec."""
    from tuneops.report import get_renderer, write_report
    from tuneops.tuning import load_study

    get_renderer(fmt)  # a bad --format fails before the study is read
    paths = write_report(load_study(study, storage), out, fmt=fmt)
    console.print(f"Report: {paths[0] if fmt == 'html' else paths[0].parent} ({len(paths)} file(s))", soft_wrap=True)


@app.command()
def dashboard(
    study: Annotated[Optional[str], typer.Argument(help="Open this study (default: the study list).")] = None,
    storage: StorageOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind. The dashboard has no login: keep loopback unless a proxy guards it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8080,
) -> None:
    """Serve optuna-dashboard on the study's storage (needs the extra: pip install 'tuneops[dashboard]')."""
    from tuneops.report.dashboard import start_dashboard

    board = start_dashboard(storage, study=study, host=host, port=port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"warning: optuna-dashboard has no login and now listens on {host}; anyone who "
                  "reaches this address can read and edit the studies.", highlight=False, markup=False)
    console.print(f"optuna-dashboard listening on {board.url} (Ctrl-C to stop)", highlight=False, soft_wrap=True)
    sys.stdout.flush()
    try:
        board.serve_forever()
    except KeyboardInterrupt:
        pass


def write_run_report(study: Any, output_dir: Path) -> None:
    """After `tuneops run`: report.html next to results.json; skipped (never failing the run)
    when the report extra is missing or the report cannot be written."""
    from tuneops.errors import MissingExtra
    from tuneops.report import write_report

    try:
        path = write_report(study, Path(output_dir) / "report.html")[0]
    except MissingExtra as exc:
        err.print(f"No report.html: {exc}", highlight=False, markup=False, soft_wrap=True)
        return
    except Exception as exc:  # the run's results are already saved; a report problem is not a failed run
        err.print(f"report.html not written: {type(exc).__name__}: {exc}", highlight=False, markup=False)
        return
    console.print(f"Report: {path}", soft_wrap=True, highlight=False)


# -- end reports ----------------------------------------------------------------------------------


# -- knowledge base (warm start and meta-learning, issue 5) -----------------------------------------
kb_app = typer.Typer(help="The knowledge base of past tuning that warm-starts new studies.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
KBSourceOpt = Annotated[
    Optional[list[str]],
    typer.Option("--source", help="shipped, storage, or a file from `kb export`; repeat (default: shipped and storage)."),
]


def _kb(sources: Optional[list[str]], storage: Optional[str]):
    from tuneops.knowledge.base import load_sources

    return load_sources(sources or ["shipped", "storage"], storage)


@kb_app.command("list")
def kb_list(storage: StorageOpt = None, source: KBSourceOpt = None,
            family: Annotated[Optional[str], typer.Option(help="Only this family.")] = None) -> None:
    """List the entries: dataset, family, task, best score, where they come from."""
    kb = _kb(source, storage).select(family=family)
    table = Table(title=f"knowledge base: {len(kb)} entries")
    table.add_column("dataset", no_wrap=True)
    table.add_column("family", no_wrap=True)
    table.add_column("task")
    table.add_column("best", no_wrap=True)
    table.add_column("source", no_wrap=True)
    for e in kb:
        table.add_row(e.dataset, e.family, e.task, f"{e.metric} {_fmt(e.best_score)}", e.source)
    console.print(table)


@kb_app.command("show")
def kb_show(dataset: Annotated[str, typer.Argument(help="Dataset name (pmlb: optional) or DATASET/FAMILY.")],
            storage: StorageOpt = None, source: KBSourceOpt = None) -> None:
    """Show an entry's meta-features and best configurations."""
    kb = _kb(source, storage)
    found = kb.find(dataset)
    if not found:
        raise UsageError(f"kb show: no entry for {dataset!r}; `tuneops kb list` shows the {len(kb)} entries.")
    for e in found:
        console.print(f"[bold]{e.dataset}[/] / {e.family} ({e.task}, {e.metric}, source {e.source})")
        console.print("meta-features: " + ", ".join(f"{k}={_fmt(v)}" for k, v in e.meta_features.items()))
        for i, (params, score) in enumerate(e.configs[:5]):
            console.print(f"  #{i + 1} {e.metric}={_fmt(score)}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in params.items()))
    if kb.built_with and any(e.source == "shipped" for e in found):
        console.print(f"built with: {kb.built_with.get('command')} ({kb.built_with.get('built_at')})")


@kb_app.command("recommend")
def kb_recommend(
    data: Annotated[str, typer.Option("--data", help="Data source: sklearn:NAME, pmlb:NAME or a file.")],
    family: Annotated[str, typer.Option("--family", help="Model family.")],
    target: Annotated[Optional[str], typer.Option(help="Target column (files).")] = None,
    size: Annotated[Optional[int], typer.Option(help="How many configurations (default: warm_start.auto's max_trials).")] = None,
    storage: StorageOpt = None, source: KBSourceOpt = None,
) -> None:
    """Configurations to try first for FAMILY on DATA, from the nearest past tasks.

    The list is the consensus portfolio (what warm_start.auto with strategy: consensus
    enqueues); the adaptive default draws on the same tasks and picks each trial after the
    results so far.
    """
    from tuneops.families import get_family
    from tuneops.knowledge import recommend

    get_family(family)
    recs, neighbours = recommend(data, family, kb=_kb(source, storage), size=size, target=target)
    if not recs:
        raise UsageError(f"kb recommend: the knowledge base has no entry for family {family!r} and this task.")
    console.print("nearest: " + ", ".join(f"{n.entry.dataset} ({n.distance:.3g})" for n in neighbours[:5]))
    table = Table(title=f"warm-start portfolio (consensus) for {family} on {data}")
    for col in ("from", "score there", "params"):
        table.add_column(col)
    for r in recs:
        table.add_row(f"{r.dataset} #{r.rank + 1}", _fmt(r.score), ", ".join(f"{k}={_fmt(v)}" for k, v in r.params.items()))
    console.print(table)


@kb_app.command("build")
def kb_build(
    out: Annotated[Path, typer.Option(help="Where to write the base.")] = Path("src/tuneops/knowledge/prebuilt.json.gz"),
    dataset: Annotated[Optional[list[str]], typer.Option("--dataset", help="PMLB dataset; repeat (default: the curated list).")] = None,
    family: Annotated[Optional[list[str]], typer.Option("--family", help="Family; repeat (default: knn, linear, random_forest, hist_gradient_boosting).")] = None,
    n_trials: Annotated[int, typer.Option(help="Cold TPE trials per dataset and family.")] = 30,
    cv_folds: Annotated[int, typer.Option(help="CV folds.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of folds and sampler.")] = 0,
    jobs: Annotated[int, typer.Option(help="Parallel processes.")] = 1,
    checkpoint: Annotated[Optional[Path], typer.Option(help="JSON-lines checkpoint; a rerun resumes from it.")] = None,
    max_minutes: Annotated[Optional[float], typer.Option(help="Start no job after this many minutes (0: only assemble the checkpoint).")] = None,
    extend: Annotated[Optional[Path], typer.Option(help="An earlier base to add to: entries built now replace its entries for the same dataset and family.")] = None,
) -> None:
    """Build the prebuilt base by tuning each family on PMLB datasets (cold TPE)."""
    from tuneops.families import get_family
    from tuneops.knowledge.base import load_file
    from tuneops.knowledge.build import DEFAULT_DATASETS, DEFAULT_FAMILIES, build

    families = family or list(DEFAULT_FAMILIES)
    for f in families:
        get_family(f)
    base = load_file(extend) if extend is not None else None  # read before `out` may overwrite it
    kb = build(dataset or list(DEFAULT_DATASETS), families, n_trials=n_trials, cv_folds=cv_folds,
               seed=seed, n_jobs=jobs, checkpoint=checkpoint, max_minutes=max_minutes, extend=base,
               log=console.print)
    path = kb.save(out)
    console.print(f"Wrote {len(kb)} entries to {path} ({path.stat().st_size / 1024:.0f} KiB)")


@kb_app.command("export")
def kb_export(path: Annotated[Path, typer.Argument(help="File to write (.json or .json.gz).")],
              storage: StorageOpt = None, source: KBSourceOpt = None) -> None:
    """Write the knowledge base (default: the studies in the storage) to a file."""
    kb = _kb(source or ["storage"], storage)
    kb.save(path)
    console.print(f"Wrote {len(kb)} entries to {path}")


@kb_app.command("import")
def kb_import(path: Annotated[Path, typer.Argument(help="A file from `kb export`.")],
              storage: StorageOpt = None,
              prefix: Annotated[str, typer.Option(help="Name prefix of the studies that hold the entries.")] = "kb") -> None:
    """Store a file's entries in the storage, where every run's warm start finds them."""
    from tuneops.knowledge.base import import_entries, load_file

    names = import_entries(load_file(path), storage, prefix=prefix)
    console.print(f"Imported {len(names)} entries into the storage (studies {prefix}.*)")
# -- end knowledge base --------------------------------------------------------------------------


# -- distributed tuning: remote workers and worker contributions (issue 4) ----------------------
def print_workers(results: dict[str, Any]) -> None:
    """The workers section as a table (only when more than one worker ran trials)."""
    section = results.get("workers")
    if not section or section["n_workers"] < 2:
        return
    table = Table(title=f"workers ({section['n_workers']} on {len(section['hosts'])} host(s))")
    for col in ("worker", "complete", "pruned", "failed", "abandoned", "best", "busy_s", "Pareto share"):
        table.add_column(col, justify="left" if col == "worker" else "right")
    for r in section["workers"]:
        best = _fmt(r["best"]) + (" ★" if r["has_best"] else "") if r["best"] is not None else "-"
        table.add_row(r["worker"], str(r["complete"]), str(r["pruned"]), str(r["failed"]),
                      str(r["abandoned"]), best, f"{r['busy_s']:.1f}",
                      f"{r['pareto']} ({r['pareto_share']:.0%})")
    console.print(table)


@app.command()
def worker(
    study: Annotated[str, typer.Option("--study", help="Name of the study to join.")],
    storage: Annotated[str, typer.Option("--storage", "-s", help="The study's storage URL.")],
    timeout_s: Annotated[Optional[float], typer.Option(help="Stop starting trials after this many seconds.")] = None,
    grace_s: Annotated[Optional[float], typer.Option(help="Seconds without heartbeat before a trial counts as dead (default 60).")] = None,
    heartbeat_s: Annotated[Optional[float], typer.Option(help="Seconds between heartbeats (default 10).")] = None,
) -> None:
    """Join STUDY from this machine: run its trials until the global budget is spent."""
    import signal

    from tuneops.tuning import join

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM like Ctrl-C: the running trial is abandoned cleanly

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        n = join(study, storage, timeout_s=timeout_s, grace_s=grace_s, heartbeat_s=heartbeat_s)
    except KeyboardInterrupt:
        err.print("[yellow]Interrupted: the running trial was abandoned and queued again.[/]")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print(f"worker done: ran {n} trial(s) of study {study}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: maps tuneops errors to exit codes (2 for bad input, 1 for failures)."""
    import optuna

    # tuneops prints its own progress and summary; Optuna's per-trial INFO lines would bury them.
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    try:
        # Standalone mode: typer prints usage errors itself and exits 2, and turns typer.Exit
        # into SystemExit; tuneops' own errors propagate to the handlers below. (Typer vendors
        # its click, so only its public surface is used here.)
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    except UsageError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    except TuneOpsError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
