"""``tuneops kb``: the knowledge base of past tuning that warm-starts new studies.

``tuneops.knowledge`` is imported inside the commands: it loads pandas (about 1.2 s), which every
other command (and ``tuneops -h``) would otherwise pay for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from tuneops._files import check_output_dir, is_stdout
from tuneops.cli._common import (
    JsonOpt,
    StorageOpt,
    WideOpt,
    add_free_column,
    add_name_column,
    emit_json,
    fmt,
    free_cell,
    make_table,
    params_text,
    term,
)
from tuneops.errors import DataError, SpecError, UsageError
from tuneops.families import get_family

__all__ = ["COMMANDS"]

KBSourceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--source",
        help="shipped, storage, or a file from `kb export`; repeat (default: shipped and storage).",
    ),
]


def _kb(sources: list[str] | None, storage: str | None) -> Any:
    from tuneops.knowledge.base import load_sources

    return load_sources(sources or ["shipped", "storage"], storage)


def _check_family(name: str) -> None:
    """Refuse an unknown family as ``--family`` (exit 2, with the names it could be)."""
    try:
        get_family(name)
    except SpecError as exc:
        raise UsageError(str(exc).replace("model.family", "--family", 1)) from None


def _entry(e: Any) -> dict[str, Any]:
    return {**e.to_dict(history=False), "source": e.source, "best_score": e.best_score}


def list_entries(
    storage: StorageOpt = None,
    source: KBSourceOpt = None,
    family: Annotated[str | None, typer.Option(help="Only this family.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the entries: dataset, family, task, best score, where they come from."""
    if family is not None:
        _check_family(family)  # a misspelt family listed nothing, as if the base had none
    kb = _kb(source, storage).select(family=family)
    if json_out:
        emit_json(
            [
                {k: v for k, v in _entry(e).items() if k not in ("configs", "meta_features")}
                for e in kb
            ]
        )
        return
    # The dataset is what a reader looks for: it is never shortened, and the source (last) is
    # shortened first on a narrow terminal.
    table = make_table(f"knowledge base: {len(kb)} entries")
    add_name_column(table, "dataset")
    add_name_column(table, "family")
    add_name_column(table, "task")
    add_name_column(table, "best")
    add_free_column(table, "source", wide=False)
    for e in kb:
        table.add_row(
            e.dataset,
            e.family,
            e.task,
            f"{e.metric} {fmt(e.best_score)}",
            free_cell(e.source, wide=False),
        )
    term.result(table)


def show(
    dataset: Annotated[
        str, typer.Argument(help="Dataset name (pmlb: optional) or DATASET/FAMILY.")
    ],
    storage: StorageOpt = None,
    source: KBSourceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show an entry's meta-features and best configurations."""
    kb = _kb(source, storage)
    found = kb.find(dataset)
    if not found:
        raise UsageError(
            f"kb show: no entry for {dataset!r}; `tuneops kb list` shows the {len(kb)} entries."
        )
    built_with = kb.built_with if any(e.source == "shipped" for e in found) else None
    if json_out:
        emit_json(
            {
                "entries": [_entry(e) for e in found],
                "built_with": dict(built_with) if built_with else None,
            }
        )
        return
    plain: dict[str, Any] = {"highlight": False, "markup": False, "soft_wrap": True}
    for e in found:
        term.result(
            Text.assemble(
                (e.dataset, "bold"), f" / {e.family} ({e.task}, {e.metric}, source {e.source})"
            )
        )
        term.result(
            "meta-features: " + ", ".join(f"{k}={fmt(v)}" for k, v in e.meta_features.items()),
            **plain,
        )
        for i, (params, score) in enumerate(e.configs[:5]):
            term.result(f"  #{i + 1} {e.metric}={fmt(score)}: {params_text(dict(params))}", **plain)
    note = kb.fit_time_note(found)
    if note:
        term.info(note, **plain)
    if built_with:
        term.info(
            f"built with: {built_with.get('command')} ({built_with.get('built_at')})", **plain
        )


# The spec fields a data load names, as `kb recommend` takes them: its options.
_DATA_OPTIONS = (
    ("data.categorical", "categorical (--categorical)", "--categorical"),
    ("data.source", "data (--data)", "--data"),
    ("data.target", "target (--target)", "--target"),
)


def _named_as_options(message: str) -> str:
    """A data load's message with the spec fields it names (``data.categorical: ...``, ``Fix the
    name in data.categorical``) written as the options of `kb recommend` that gave them."""
    message = message.replace("(data.categorical: [COLUMN, ...])", "(--categorical COLUMN)")
    for field, first, later in _DATA_OPTIONS:
        if message.startswith(field + ":"):
            message = first + message[len(field) :]
        message = message.replace(field, later)
    return message


def recommend(
    data: Annotated[
        str, typer.Option("--data", help="Data source: sklearn:NAME, pmlb:NAME or a file.")
    ],
    family: Annotated[str, typer.Option("--family", help="Model family.")],
    target: Annotated[str | None, typer.Option(help="Target column (files).")] = None,
    categorical: Annotated[
        list[str] | None,
        typer.Option(
            "--categorical",
            help="A feature column of numbers that are codes (repeat the option), or 'declared' "
            "for a PMLB set's declared ones: as the spec's data.categorical, so the nearest "
            "tasks are those its run would find.",
        ),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(help="How many configurations (default: warm_start.auto's max_trials)."),
    ] = None,
    storage: StorageOpt = None,
    source: KBSourceOpt = None,
    json_out: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Configurations to try first for FAMILY on DATA, from the nearest past tasks.

    First the zero-shot portfolio (the first trials of the default adaptive warm start), then
    the consensus of the nearest tasks; the adaptive warm start picks each later trial after
    the results so far.
    """
    from tuneops.knowledge import recommend as recommend_configs

    if size is not None and size < 1:
        raise UsageError(f"size (--size): expected an integer >= 1, received {size}.")
    _check_family(family)
    declared = categorical == ["declared"]
    try:
        recs, neighbours = recommend_configs(
            data,
            family,
            kb=_kb(source, storage),
            size=size,
            target=target,
            categorical="declared" if declared else categorical,
        )
    except DataError as exc:
        raise DataError(_named_as_options(str(exc))) from None
    if json_out:
        emit_json(
            {
                "family": family,
                "data": data,
                "nearest": [
                    {"dataset": n.entry.dataset, "distance": n.distance} for n in neighbours
                ],
                "portfolio": [
                    {
                        "dataset": r.dataset,
                        "rank": r.rank,
                        "distance": r.distance,
                        "score": r.score,
                        "params": dict(r.params),
                    }
                    for r in recs
                ],
            }
        )
        return
    term.info(
        "nearest: " + ", ".join(f"{n.entry.dataset} ({n.distance:.3g})" for n in neighbours[:5]),
        highlight=False,
        markup=False,
    )
    table = make_table(f"warm-start portfolio (zero-shot, then consensus) for {family} on {data}")
    add_name_column(table, "from")
    add_name_column(table, "score there", justify="right")
    add_free_column(table, "params", wide=wide)
    for r in recs:
        table.add_row(
            f"{r.dataset} #{r.rank + 1}",
            fmt(r.score),
            free_cell(params_text(dict(r.params)), wide=wide),
        )
    term.result(table)


def build(
    out: Annotated[
        Path,
        typer.Option(
            help="Where to write the base (to replace the shipped base, give its path in a source "
            "checkout: src/tuneops/knowledge/prebuilt.json.gz)."
        ),
    ] = Path("prebuilt.json.gz"),
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="PMLB dataset; repeat (default: the curated list)."),
    ] = None,
    family: Annotated[
        list[str] | None,
        typer.Option(
            "--family",
            help="Family; repeat (default: the nine default families: knn, linear, "
            "hist_gradient_boosting, lightgbm, random_forest, xgboost, extra_trees, mlp, svm).",
        ),
    ] = None,
    n_trials: Annotated[int, typer.Option(help="Cold TPE trials per dataset and family.")] = 30,
    cv_folds: Annotated[int, typer.Option(help="CV folds.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of folds and sampler.")] = 0,
    jobs: Annotated[int, typer.Option(help="Parallel processes.")] = 1,
    checkpoint: Annotated[
        Path | None, typer.Option(help="JSON-lines checkpoint; a rerun resumes from it.")
    ] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option(
            help="Start no job after this many minutes (0: only assemble the checkpoint)."
        ),
    ] = None,
    extend: Annotated[
        Path | None,
        typer.Option(
            help="An earlier base to add to: entries built now replace its entries for the same "
            "dataset and family."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Build the prebuilt base by tuning each family on PMLB datasets (cold TPE).

    One line per finished job (on stderr with --json, none with --quiet). Ctrl-C or SIGTERM
    stops the worker processes, exits 130 or 143 and says how many jobs the --checkpoint kept.
    """
    from tuneops.knowledge import build as builder
    from tuneops.knowledge.base import load_file

    families = family or list(builder.DEFAULT_FAMILIES)
    for f in families:
        get_family(f)
    base = load_file(extend) if extend is not None else None  # read before `out` may overwrite it
    lines = term.err if json_out or is_stdout(out) else term.out  # the base may be on stdout

    def log(*objects: Any) -> None:
        if not term.quiet:
            lines.print(*objects, highlight=False, markup=False, soft_wrap=True)

    try:
        kb = builder.build(
            dataset or list(builder.DEFAULT_DATASETS),
            families,
            n_trials=n_trials,
            cv_folds=cv_folds,
            seed=seed,
            n_jobs=jobs,
            checkpoint=checkpoint,
            max_minutes=max_minutes,
            extend=base,
            log=log,
        )
    except builder.BuildInterrupted as stop:
        kept = (
            f"{stop.kept} of {stop.total} jobs kept in {checkpoint}; rerun with the same "
            "--checkpoint to resume."
            if checkpoint is not None
            else f"{stop.kept} of {stop.total} jobs had finished and none was kept; give "
            "--checkpoint FILE to keep finished jobs for a rerun."
        )
        term.warn(
            f"Stopped by {stop.signal_name}: kb build did not finish and wrote no base to "
            f"{out}; {kept}"
        )
        raise typer.Exit(stop.exit_code) from None
    if not len(kb):  # every job failed: an empty base is no result (it exited 0)
        n_datasets = len(dataset or builder.DEFAULT_DATASETS)
        raise UsageError(
            f"kb build: no entry was built ({n_datasets} dataset(s) x "
            f"{len(families)} family(ies) all failed; their reasons are above). Check the "
            "dataset names against the PMLB directory ($TUNEOPS_PMLB_DIR). Nothing was written."
        )
    path = kb.save(out)
    if json_out:
        emit_json({"path": str(path), "n_entries": len(kb), "bytes": path.stat().st_size})
    else:
        (term.err.print if is_stdout(out) else term.result)(
            f"Wrote {len(kb)} entries to {path} ({path.stat().st_size / 1024:.0f} KiB)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def export(
    path: Annotated[Path, typer.Argument(help="File to write (.json or .json.gz).")],
    storage: StorageOpt = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="shipped, storage, or a file from `kb export`; repeat (default: storage).",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the knowledge base (default: the studies in the storage) to a file."""
    if not str(path).endswith((".json", ".json.gz")):
        raise UsageError(
            f"kb export: expected a file name ending in .json or .json.gz, received {str(path)!r}."
        )
    check_output_dir(path.parent, option="the file's directory")
    kb = _kb(source or ["storage"], storage)
    kb.save(path)
    if json_out:
        emit_json({"path": str(path), "n_entries": len(kb)})
    else:
        term.result(f"Wrote {len(kb)} entries to {path}", highlight=False, markup=False)


def import_entries(
    path: Annotated[Path, typer.Argument(help="A file from `kb export`.")],
    storage: StorageOpt = None,
    prefix: Annotated[
        str, typer.Option(help="Name prefix of the studies that hold the entries.")
    ] = "kb",
    json_out: JsonOpt = False,
) -> None:
    """Store a file's entries in the storage, where every run's warm start finds them."""
    from tuneops.knowledge import base

    names = base.import_entries(base.load_file(path), storage, prefix=prefix)
    if json_out:
        emit_json({"studies": list(names), "n_entries": len(names)})
    else:
        term.result(
            f"Imported {len(names)} entries into the storage (studies {prefix}.*)",
            highlight=False,
            markup=False,
        )


COMMANDS: dict[str, Any] = {
    "list": list_entries,
    "show": show,
    "recommend": recommend,
    "build": build,
    "export": export,
    "import": import_entries,
}
