"""What every command shares: the terminal (quiet/verbose, widths), options, printing helpers.

The commands print through :data:`term` so that ``--quiet``, ``--verbose`` and the terminal width
are decided once, when the app starts (:func:`configure`), and not in each command.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import select
import stat
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import optuna
import typer
from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from tuneops import _optuna
from tuneops._study import load_study
from tuneops.metrics import METRICS
from tuneops.storage import check_scheme

__all__ = [
    "read_study",
    "term",
    "configure",
    "emit_json",
    "fmt",
    "fmt_values",
    "Column",
    "print_fitted",
    "params_text",
    "make_table",
    "StorageOpt",
    "storage_option",
    "JsonOpt",
    "WideOpt",
    "AllOpt",
    "FRONT_ROWS",
    "ModelOpt",
    "print_summary",
    "print_front",
    "print_pruning",
    "print_lost",
    "print_workers",
    "print_trials",
]


@contextlib.contextmanager
def read_study(name: str, storage: str | None) -> Iterator[optuna.Study]:
    """The study a reading command (show, select, report) works on, loaded once, for the block.

    Within the block, the objects read so far (the modules, and at 10,000 trials some 10^6
    objects of the study's trials) are out of the garbage collector's sight (``gc.freeze``): the
    command keeps all of them, yet each full collection while it builds its tables would scan
    them all again (``show``: reselection 0.33 -> 0.17 s, findings 0.33 -> 0.19 s of CPU at
    10,000 trials). They are handed back to the collector after (the CLI also runs in-process,
    in tests and notebooks).
    """
    study = load_study(name, storage)
    gc.freeze()
    try:
        yield study
    finally:
        gc.unfreeze()


# Third-party packages whose warnings are noise at the terminal unless --verbose: a fold that
# stops before convergence or a deprecation inside a dependency is not the user's to act on.
_THIRD_PARTY = (
    r"(optuna|sklearn|scipy|numpy|pandas|joblib|lightgbm|xgboost|ray|threadpoolctl)(\.|$)"
)


_PYTHON_SHOWWARNING = warnings.showwarning


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """A warning that reaches the terminal (tuneops' own, such as a ``DataWarning``): one line,
    ``warning: <message>``, instead of Python's file, line number and source line; once per
    command (``deploy`` loads the data twice, and said the same thing twice)."""
    text = f"warning: {message}"
    if text not in term.warned:
        term.warned.add(text)
        term.warn(text)


@dataclass
class Terminal:
    """Where results (stdout) and messages (stderr) go, and how much is said."""

    out: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True))
    quiet: bool = False
    verbose: bool = False
    warned: set[str] = field(default_factory=set)  # warnings printed by this command

    def result(self, *objects: Any, **kwargs: Any) -> None:
        """A result the user asked for: printed even with --quiet."""
        self.out.print(*objects, **kwargs)

    def info(self, *objects: Any, **kwargs: Any) -> None:
        """A status line (where a file went, what happened on the way): hidden by --quiet."""
        if not self.quiet:
            self.out.print(*objects, **kwargs)

    def warn(self, message: str) -> None:
        """Something the user should know on stderr (not an error: the command goes on)."""
        self.err.print(message, style="yellow", markup=False, highlight=False, soft_wrap=True)

    def error(self, message: str) -> None:
        self.err.print(
            Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True
        )


term = Terminal()


def configure(*, quiet: bool = False, verbose: bool = False) -> Terminal:
    """Set up output and log levels for one invocation (called by the app's callback).

    New consoles each time: rich reads ``COLUMNS`` and the terminal size when a console is made,
    and tests call :func:`tuneops.cli.main` many times in one process.
    """
    if quiet and verbose:
        raise typer.BadParameter("--quiet and --verbose exclude each other; give one.")
    term.out, term.err = Console(), Console(stderr=True)
    term.quiet, term.verbose = quiet, verbose
    term.warned = set()
    _status_lines(not quiet and not verbose)  # -v: the root handler prints them with the rest
    _optuna.VERBOSE = verbose
    if verbose:
        # Let Optuna's per-study and per-trial INFO lines and every library's warnings through.
        optuna.logging.set_verbosity(optuna.logging.INFO)
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        warnings.simplefilter("default")
        warnings.showwarning = _PYTHON_SHOWWARNING  # where each comes from, too
    else:
        # tuneops prints its own progress and summary; Optuna's INFO lines would bury them.
        optuna.logging.set_verbosity(optuna.logging.ERROR if quiet else optuna.logging.WARNING)
        warnings.filterwarnings("ignore", module=_THIRD_PARTY)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.showwarning = _show_warning
    return term


class _StatusHandler(logging.Handler):
    """Prints the library's status lines (logger ``tuneops.status``: what the warm start
    proposes, before the first trial) on stderr, as the command's own status lines."""

    def emit(self, record: logging.LogRecord) -> None:
        term.err.print(record.getMessage(), highlight=False, markup=False, soft_wrap=True)


def _status_lines(shown: bool) -> None:
    status = logging.getLogger("tuneops.status")
    status.handlers = [h for h in status.handlers if not isinstance(h, _StatusHandler)]
    if shown:
        status.addHandler(_StatusHandler())
    status.setLevel(logging.INFO)


# -- options shared by several commands ---------------------------------------------------------
# Rows of the Pareto front a summary prints: a 10,000-trial study's front holds thousands of
# trials, which no one reads in a terminal and which took 2 s to lay out (issue 15).
FRONT_ROWS = 20

def storage_option(value: str | None) -> str | None:
    """--storage's callback: an unknown scheme is refused as the option's (``storage
    (--storage): expected ..., received ...``), not as a spec's ``storage:`` field."""
    if value:
        check_scheme(value, "storage (--storage)")
    return value


StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        "-s",
        help="Storage URL (default: tuneops.journal here).",
        callback=storage_option,
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document to stdout instead of tables."),
]
WideOpt = Annotated[
    bool,
    typer.Option(
        "--wide",
        help="Show long cells (parameters, definitions, descriptions) in full, wrapped, "
        "instead of one line per row cut short.",
    ),
]
AllOpt = Annotated[
    bool,
    typer.Option(
        "--all", help=f"List the whole Pareto front (default: its first {FRONT_ROWS} trials)."
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Registered model name (default: the only one)."),
]


# -- formatting ---------------------------------------------------------------------------------
def fmt(value: Any) -> str:
    """A number short enough for a table cell; anything else as text."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


def fmt_values(values: Any) -> str:
    """A trial's objective values: ``0.9533, 0.0012`` (``-`` when it has none)."""
    if values is None:
        return "-"
    if isinstance(values, (list, tuple)):
        return ", ".join(fmt(v) for v in values)
    return fmt(values)


def params_text(params: dict[str, Any], family: str | None = None) -> str:
    """``k=v, ...`` without the ``family`` choice and the ``FAMILY.`` prefix of multi-family specs
    (the family has its own column)."""
    prefix = f"{family}." if family else ""
    items = []
    for key, value in params.items():
        if key == "family" and family is not None:
            continue
        items.append(f"{key.removeprefix(prefix)}={fmt(value)}")
    return ", ".join(items)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null, so every JSON parser reads the output."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def emit_json(document: Any) -> None:
    """One JSON document on stdout (``--json``): plain text, never wrapped or coloured."""
    text = json.dumps(_finite(json.loads(json.dumps(document, default=_jsonable))), indent=2)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def reader_left(wait_s: float = 0.0) -> bool:
    """Whether the reader of standard output is gone (``tuneops monitor --live | head`` after
    ``head`` exited), waiting up to ``wait_s`` seconds for it to go: what a command that runs
    until stopped (``monitor --live``) checks between its steps, as nothing else tells it.

    Known when a write met the closed pipe (the CLI's stream then says so: ``reader_left``),
    or, on a pipe or a socket, from the descriptor itself: ``poll`` reports an error or a
    hang-up on a pipe nobody reads, so the wait ends as the reader leaves, without writing.
    Any other output (a terminal, a file) is waited on for ``wait_s`` seconds.
    """
    stream = sys.stdout
    if getattr(stream, "reader_left", False):
        return True
    try:
        fd = stream.fileno()
        kind = os.fstat(fd).st_mode
        watched = stat.S_ISFIFO(kind) or stat.S_ISSOCK(kind)
        poller = select.poll() if watched else None
    except (AttributeError, OSError, ValueError):  # no descriptor (captured), no poll (Windows)
        poller = None
    if poller is None:
        if wait_s > 0:
            time.sleep(wait_s)
        return bool(getattr(stream, "reader_left", False))
    poller.register(fd, 0)  # no event asked: only POLLERR, POLLHUP and POLLNVAL come back
    deadline = time.monotonic() + wait_s
    while True:
        if poller.poll(max(0.0, deadline - time.monotonic()) * 1e3):
            return True
        if time.monotonic() >= deadline:
            return bool(getattr(stream, "reader_left", False))


class _TitledTable(Table):
    """A table whose title is a line of its own, wrapped at the terminal's width, not the
    table's (rich wraps a title inside a narrow table over several lines)."""

    heading: str | None = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.heading:
            yield Text(self.heading, style="italic")
        yield from super().__rich_console__(console, options)


def make_table(title: str | None = None) -> Table:
    """A table without vertical borders: at 80 columns every character goes to the content."""
    table = _TitledTable(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    table.heading = title
    return table


def add_name_column(table: Table, header: str, *, justify: Any = "left") -> None:
    """A column whose cells are names (metrics, families): never wrapped, never shortened."""
    table.add_column(header, justify=justify, no_wrap=True, min_width=len(header))


def add_free_column(table: Table, header: str, *, wide: bool) -> None:
    """The column that gives way when the terminal is narrow (parameters, reasons)."""
    table.add_column(header, overflow="fold" if wide else "ellipsis")


def free_cell(text: str, *, wide: bool) -> Text:
    """A cell of the free column: one line ending in … unless ``wide``."""
    if wide:
        return Text(text)
    return Text(text, no_wrap=True, overflow="ellipsis")


# Below this many characters a parameter column shows nothing useful: its texts go under the
# table instead, one line each.
MIN_FREE_WIDTH = 20


@dataclass
class Column:
    """A name column of :func:`print_fitted`. ``movable``: when even the names do not fit, its
    value moves in front of the row's free text (under the table) instead of being shortened."""

    header: str
    justify: Any = "left"
    movable: bool = False


def print_fitted(
    title: str,
    columns: list[Column],
    rows: list[tuple[list[str], str]],
    free_header: str,
    *,
    wide: bool = False,
) -> None:
    """A table of name columns (never shortened) and one free column (elided with …).

    Each row is ``(cells, free text)``. Layouts, first that fits the console: every column with
    the free column; the name columns, then the free texts under the table one line each (keyed
    by the row's first cell); the same with movable columns moved into those lines. ``wide``
    wraps the free texts instead of eliding them.
    """
    console = term.out

    def build(keep: list[int], with_free: bool) -> Table:
        table = make_table(title)
        for i in keep:
            add_name_column(table, columns[i].header, justify=columns[i].justify)
        if with_free:
            add_free_column(table, free_header, wide=wide)
        for cells, free in rows:
            kept = [cells[i] for i in keep]
            table.add_row(*kept, *([free_cell(free, wide=wide)] if with_free else []))
        return table

    def width(table: Table) -> int:
        # Measured without the console's limit: a measurement is clamped to the width it gets.
        return Measurement.get(console, console.options.update_width(100_000), table).maximum

    every = list(range(len(columns)))
    if width(build(every, False)) + 2 + MIN_FREE_WIDTH <= console.width:
        term.result(build(every, True))
        return
    keep = every
    if width(build(every, False)) > console.width:
        keep = [i for i in every if not columns[i].movable]
    moved = [i for i in every if i not in keep]
    term.result(build(keep, False))
    headers = [columns[i].header for i in moved] + [free_header]
    if any(free or moved for _, free in rows):
        term.result(f"{' · '.join(headers)}:", highlight=False, markup=False)
    for cells, free in rows:
        text = " · ".join([*(cells[i] for i in moved), *([free] if free else [])])
        if text:
            line = f"  {cells[0].lstrip('★ ')}: {text}"
            if wide:
                term.result(line, highlight=False, markup=False, overflow="fold")
            else:
                term.result(
                    line,
                    highlight=False,
                    markup=False,
                    no_wrap=True,
                    overflow="ellipsis",
                    crop=True,
                )


# -- the results document as tables ---------------------------------------------------------------
def _objective_names(results: dict[str, Any]) -> list[str]:
    return [o["metric"] for o in results["objectives"]]


def _trial_metrics(results: dict[str, Any], trial: dict[str, Any]) -> dict[str, Any]:
    """Every number known of a trial by name: its objective values, then its recorded metrics."""
    # values is None for a trial that did not complete: then only its metrics are known
    values = dict(zip(_objective_names(results), trial.get("values") or [], strict=False))
    return {**values, **(trial.get("metrics") or {})}


def _verified_values(results: dict[str, Any], trial: dict[str, Any]) -> dict[str, Any]:
    """A staged strategy's verified means of ``trial``'s objectives by name; {} when it was not
    among the verified candidates."""
    mean = (trial.get("verified") or {}).get("mean")
    return dict(zip(_objective_names(results), mean or [], strict=False))


def print_front(
    results: dict[str, Any], *, wide: bool = False, limit: int | None = FRONT_ROWS
) -> None:
    """The Pareto front and the selected trial as a table, one line per trial unless ``wide``.

    At most ``limit`` rows (None: all): the front's first trials in the order of the results
    document, with the selected trial always among them, then a line saying how many more
    there are and how to see them.
    """
    objectives = _objective_names(results)
    constraints = results.get("constraints") or []
    selected = (results.get("selected") or {}).get("number")
    whole = results.get("pareto_front", [])
    front = _first_rows(whole, selected, limit)
    show_family = any(t.get("family") for t in front)
    columns = [Column("trial", "right"), *[Column(name, "right") for name in objectives]]
    if show_family:
        columns.append(Column("family", movable=True))
    rows = []
    # Under the staged strategy the front is of the verified means: shown at their search
    # values, a verified member read as dominated by another (f1 0.9467 at 322.9 KiB beside
    # 0.949 at 178.9) and the selected trial's numbers were not those it was chosen by.
    verified = any(_verified_values(results, t) for t in front)
    for t in front:
        values = {**_trial_metrics(results, t), **_verified_values(results, t)}
        family = t.get("family")
        cells = [
            ("★ " if t["number"] == selected else "") + str(t["number"]),
            *[fmt(values.get(n)) for n in objectives],
        ]
        if show_family:
            cells.append(family or "-")
        rows.append((cells, params_text(t["params"], family)))
    title = (
        f"{'Best trial' if len(objectives) == 1 else 'Pareto front'} of {results['study']} "
        f"(feasible: {', '.join(constraints) or 'no constraints'})"
    )
    if verified:
        title += "; verified candidates at their verified means"
    print_fitted(title, columns, rows, "params", wide=wide)
    if len(front) < len(whole):
        term.result(
            f"… and {len(whole) - len(front)} more (use --all or --json: "
            f"tuneops show {results['study']} --all)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _first_rows(
    front: list[dict[str, Any]], selected: int | None, limit: int | None
) -> list[dict[str, Any]]:
    """The first ``limit`` members of ``front``, the selected trial kept (in place of the last)."""
    if limit is None or len(front) <= limit:
        return front
    head = front[:limit]
    if selected is not None and all(t["number"] != selected for t in head):
        chosen = next((t for t in front if t["number"] == selected), None)
        if chosen is not None:
            head = [*head[: limit - 1], chosen]
    return head


def selected_sentence(results: dict[str, Any]) -> str | None:
    """``Selected trial 12 by knee: accuracy=0.96, fit_time_s=0.01.`` (None when none is)."""
    sel = results.get("selected")
    if not sel:
        return None
    policy = (results.get("selection") or {}).get("policy", "the selection policy")
    numbers = _trial_metrics(results, sel)
    objectives = _objective_names(results)
    if len(objectives) == 1:  # the best feasible trial, whatever the policy (a knee needs two)
        text = f"Selected trial {sel['number']}, the best feasible {objectives[0]}"
    else:
        text = f"Selected trial {sel['number']} by {policy}"
    verified = _verified_values(results, sel)
    if numbers:
        text += ": " + ", ".join(f"{k}={fmt(v)}" for k, v in {**numbers, **verified}.items())
    if verified:
        searched = ", ".join(f"{k}={fmt(numbers[k])}" for k in verified if k in numbers)
        text += f" ({', '.join(verified)}: verified means; in the search {searched})"
    return text + _positive_class(results, numbers) + "."


def _positive_class(results: dict[str, Any], numbers: dict[str, Any]) -> str:
    """`` (positive class 'bad')`` when a binary metric shown depends on which class is
    positive (f1, precision, recall, roc_auc, average_precision); else empty."""
    pos = (results.get("scoring") or {}).get("pos_label")
    if pos is None or not any(
        getattr(METRICS.get(name), "uses_pos_label", False) for name in numbers
    ):
        return ""
    return f" (positive class {pos!r}; data.pos_label sets it)"


_COUNT_LABELS = {
    "stale": "left running by a worker that is gone (given back, and its configuration run "
    "again, by the next run or `tuneops worker` on the study)"
}
# ... while other workers run trials of the study: they give it back between their trials (a
# live run's did, while `show` said "queued again by the next run")
_STALE_WHILE_RUNNING = (
    "left running by a worker that is gone (the study's live workers give it back between "
    "their trials and run its configuration again)"
)


def print_summary(
    results: dict[str, Any], *, wide: bool = False, limit: int | None = FRONT_ROWS
) -> None:
    """Counts, the front (``limit`` rows, None: all), the selected trial and what pruning
    saved; failures on stderr."""
    labels = dict(_COUNT_LABELS)
    if results["n_trials"].get("running"):
        labels["stale"] = _STALE_WHILE_RUNNING
    counts = (
        ", ".join(f"{v} {labels.get(k, k)}" for k, v in results["n_trials"].items())
        or "no trials"
    )
    if results.get("n_repeats"):
        # a repeat of a completed trial may be pruned too, on the values it replayed
        n = results["n_repeats"]
        counts += (
            f"; {n} repeat{'s' if n != 1 else ''} of an earlier trial's configuration (nothing "
            "fitted: its outcome taken, or pruned on its replayed values)"
        )
    term.result(Text.assemble((results["study"], "bold"), f": {counts}"), highlight=False)
    if results.get("pareto_front"):
        print_front(results, wide=wide, limit=limit)
    sentence = selected_sentence(results)
    if sentence:
        term.result(sentence, highlight=False, markup=False, soft_wrap=True)
    for note in (results.get("selection") or {}).get("notes") or ():
        term.warn(f"Note: {note}")  # e.g. the choice meets a constraint only within noise
    print_pruning(results)
    print_lost(results)
    warm = results.get("warm_start")
    if warm and warm.get("summary"):
        term.info(
            warm["summary"][:1].upper() + warm["summary"][1:] + ".",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if results.get("message"):
        term.warn(results["message"])
    mix = results.get("fit_time_definitions")
    if mix and mix.get("judged"):  # trials compared on fit times that measure different things
        term.warn(f"Warning: {mix['warning']}")
    for f in results.get("failures", [])[:5]:
        term.err.print(
            Text.assemble((f"trial {f['number']} failed:", "red"), " ", f["reason"][:200]),
            highlight=False,
        )


def print_pruning(results: dict[str, Any]) -> None:
    """One paragraph of what pruning saved (the results' ``pruning`` section)."""
    p = results.get("pruning")
    if not p:
        return
    # CPU seconds, which load does not inflate (a record written before they were counted
    # has wall seconds only, and says so)
    cpu = "fit_cpu_s" in p
    spent, saved = (p["fit_cpu_s"], p["fit_cpu_s_saved"]) if cpu else (p["fit_s"], p["fit_s_saved"])
    unit = "fit CPU seconds" if cpu else "fit seconds"
    if p.get("off"):  # no pruner ran: nothing to count; say so, and why
        line = f"Pruning: off ({p['off']}); {spent:.1f} {unit} spent"
    else:
        line = (
            f"Pruning: {p['n_pruned']} of {p['n_trials']} trials pruned ({p['pruning_rate']:.0%})"
            f"{' by ' + p['pruner'] if p.get('pruner') else ''}; "
            f"{p['steps_saved']} of {p['steps_run'] + p['steps_saved']} intermediate reports and "
            f"{saved:.1f} of {spent + saved:.1f} {unit} saved ({p['fit_saved_fraction']:.0%})"
        )
    # a cut after training saves a serving measurement only when a latency is measured (a size
    # objective times nothing: measure_s_saved 0)
    if p.get("measurements_saved") and p.get("measure_s_saved"):
        line += (
            f", and the serving measurement of {p['measurements_saved']} trial(s) cut after "
            f"training (about {p['measure_s_saved']:.1f} CPU s)"
        )
    if p.get("time_to_best_s") is not None:
        to_best = p.get("fit_cpu_s_to_best")
        fit = (
            f"{to_best:.1f} fit CPU s" if to_best is not None else f"{p['fit_s_to_best']:.1f} fit s"
        )
        line += f"; best reached after {p['time_to_best_s']:.1f} s ({fit})"
    term.info(line + ".", highlight=False, markup=False, soft_wrap=True)
    compute = p.get("compute") or {}
    if compute.get("budget") is not None:
        unit = COMPUTE_UNIT_WORDS.get(compute["unit"], compute["unit"])
        spent, budget = compute["spent"], compute["budget"]
        ended = (
            "; the budget ended the run (trials running then finished past it)"
            if spent >= budget
            else ""
        )
        term.info(
            f"Compute budget: {spent:.4g} of {budget:.4g} {unit} spent{ended}.",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def print_lost(results: dict[str, Any]) -> None:
    """What abandoned trials ran before their workers stopped (``lost_compute``), which no
    budget counts."""
    lost = results.get("lost_compute")
    if not lost:
        return
    steps = f" and {lost['steps']} fidelity steps" if lost.get("steps") else ""
    budget = (results.get("pruning") or {}).get("compute") or {}
    counted = (
        "; the compute budget does not count it (it counts the fits finished trials record, and "
        "their configurations ran again)"
        if budget.get("budget") is not None
        else ""
    )
    # A worker that died before its trial's first heartbeat left no record of how long it ran:
    # said as unknown, not as "at least 0.0 s"
    unknown = len(lost.get("unknown") or ())
    n = lost["n_trials"]
    wall = "wall: until stopped, or to the last heartbeat of a worker that died"
    why = (
        f"{'its worker' if unknown == 1 else 'their workers'} died before writing a heartbeat, "
        "the record of how long a trial ran"
    )
    if unknown == n:
        said = (
            f"ran for an unknown time before their workers stopped ({why})"
            + (f"; they reported {lost['steps']} fidelity steps" if lost.get("steps") else "")
        )
    else:
        said = f"ran at least {lost['ran_s']:.1f} s ({wall}){steps} before their workers stopped"
        if unknown:
            said += f", not counting {unknown} whose time is unknown ({why})"
    term.info(
        f"Lost compute: {n} abandoned trial(s) {said}{counted}.",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


#: The units of ``search.budget`` as the console names them.
COMPUTE_UNIT_WORDS = {
    "fit_cpu_s": "fit CPU seconds",
    "fit_s": "fit seconds (wall)",
    "steps": "steps of training (a spec's schedule counts 27 per full fit)",
}


def busy_text(busy_s: float | None, n_unknown: int) -> str:
    """A worker's busy seconds: "unknown" when every trial's time is (its worker died before
    their first heartbeat), else with how many trials they leave out, as the lost-compute line
    says them: such a trial is not 0 s."""
    if busy_s is None:
        return "unknown"
    return f"{busy_s:.1f}" + (f" + {n_unknown} unknown" if n_unknown else "")


def print_workers(results: dict[str, Any]) -> None:
    """The workers section as a table (only when more than one worker ran trials)."""
    section = results.get("workers")
    if not section or section["n_workers"] < 2:
        return
    table = make_table(f"workers ({section['n_workers']} on {len(section['hosts'])} host(s))")
    add_free_column(table, "worker", wide=False)
    for col in ("complete", "pruned", "failed", "abandoned", "best", "busy_s", "Pareto share"):
        add_name_column(table, col, justify="right")
    for r in section["workers"]:
        best = fmt(r["best"]) + (" ★" if r["has_best"] else "") if r["best"] is not None else "-"
        table.add_row(
            free_cell(r["worker"], wide=False),
            str(r["complete"]),
            str(r["pruned"]),
            str(r["failed"]),
            str(r["abandoned"]),
            best,
            busy_text(r["busy_s"], r.get("busy_unknown") or 0),
            f"{r['pareto']} ({r['pareto_share']:.0%})",
        )
    term.result(table)


def print_trials(results: dict[str, Any], label: Any, *, wide: bool = False) -> None:
    """Every trial, one line each: state, values, duration, family, params or failure reason.

    ``label(abandoned)`` marks retired/abandoned trials (the runner's wording).
    """
    show_family = any(t.get("family") for t in results["trials"])
    objectives = _objective_names(results)
    columns = [
        Column("trial", "right"),
        Column("state"),
        *[Column(name, "right") for name in objectives],
        Column("time_s", "right"),
    ]
    if show_family:
        columns.append(Column("family", movable=True))
    rows = []
    for t in results["trials"]:
        family = t.get("family")
        values = t["values"] or [None] * len(objectives)
        cells = [
            str(t["number"]),
            t["state"].lower() + label(t.get("abandoned")),
            *[fmt(v) for v in values],
            f"{t['duration_s']:.1f}" if t["duration_s"] is not None else "-",
        ]
        if show_family:
            cells.append(family or "-")
        text = t.get("fail_reason") or params_text(t["params"], family)
        if t.get("repeat_of") is not None:  # took that trial's outcome or its pruning
            text = f"repeat of trial {t['repeat_of']}: {text}"
        rows.append((cells, text))
    print_fitted("trials", columns, rows, "params / reason", wide=wide)
