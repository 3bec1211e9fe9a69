"""What tuneops offers: ``tuneops families`` and ``tuneops metrics``."""

from __future__ import annotations

from typing import Any

import yaml
from rich.table import Table
from rich.text import Text

from tuneops.cli._common import (
    JsonOpt,
    WideOpt,
    add_free_column,
    add_name_column,
    emit_json,
    make_table,
    term,
)
from tuneops.families import FAMILIES
from tuneops.metrics import METRICS
from tuneops.space import space_to_dict

__all__ = ["families", "metrics"]


def families(json_out: JsonOpt = False, wide: WideOpt = False) -> None:
    """List the model families and their default search spaces (what model.space overrides)."""
    rows: list[dict[str, Any]] = []
    for name, cls in FAMILIES.items():
        family = cls()
        spaces = {task: space_to_dict(family.default_space(task)) for task in _TASKS}
        rows.append({"name": name, "description": family.description, "default_space": spaces})
    if json_out:
        emit_json(rows)
        return
    lines = [(row, _space_lines(row["default_space"])) for row in rows]
    width = max(len(param) for _, params in lines for param, _ in params)
    term.info(
        "Default search spaces (model.space overrides any parameter, in this syntax).",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    for i, (row, params) in enumerate(lines):
        gap = "\n" if i or not term.quiet else ""  # a blank line before each family
        term.result(
            Text.assemble(gap, (row["name"], "bold"), f": {row['description']}"), **_line(wide)
        )
        if not wide:
            for param, definition in params:
                term.result(f"  {param:<{width}}  {definition}", **_line(wide))
            continue
        # a grid: a long definition wraps under itself, not under the parameter's name
        grid = Table.grid(padding=(0, 2, 0, 0))
        grid.add_column(no_wrap=True, min_width=width + 2)
        grid.add_column(overflow="fold")
        for param, definition in params:
            grid.add_row(f"  {param}", definition)
        term.result(grid, highlight=False)


# The tasks a default space may differ by (linear: C or alpha; svm: epsilon for regression).
_TASKS = ("classification", "regression")


def _line(wide: bool) -> dict[str, Any]:
    """How a line of ``families`` prints: whole (folded) with --wide, else cut to one line."""
    if wide:
        return {"highlight": False, "markup": False, "overflow": "fold"}
    return {
        "highlight": False,
        "markup": False,
        "no_wrap": True,
        "overflow": "ellipsis",
        "crop": True,
    }


def _space_lines(spaces: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """``(parameter, definition)`` per line. A parameter of one task only, or defined otherwise
    for each task, names the task after it (``alpha (regression)``): in the name column, which
    is never cut, so the definition keeps its room at 80 columns."""
    lines: list[tuple[str, str]] = []
    names = list(dict.fromkeys(name for space in spaces.values() for name in space))
    for name in names:
        defined = {task: space[name] for task, space in spaces.items() if name in space}
        if len(defined) == len(spaces) and len({repr(d) for d in defined.values()}) == 1:
            lines.append((name, definition_text(next(iter(defined.values())))))
            continue
        for task, definition in defined.items():
            lines.append((f"{name} ({task})", definition_text(definition)))
    return lines


def definition_text(definition: dict[str, Any]) -> str:
    """A parameter definition (as :func:`tuneops.space.space_to_dict` writes it) in the spec's
    own syntax, on one line: ``{type: int, low: 10, high: 300, log: true}``, which
    ``model.space`` takes as written (a float keeps its point: ``1.0``, ``1.0e-08``)."""
    text = yaml.safe_dump(definition, default_flow_style=True, sort_keys=False, width=10**6)
    return str(text).strip()


def metrics(json_out: JsonOpt = False) -> None:
    """List the built-in metrics."""
    rows: list[dict[str, Any]] = [
        {
            "name": m.name,
            "direction": m.direction,
            "kind": m.kind,
            "tasks": list(m.tasks),
            "description": m.description,
        }
        for m in METRICS.values()
    ]
    if json_out:
        emit_json(rows)
        return
    table = make_table("metrics")
    add_name_column(table, "name")
    for col in ("direction", "kind", "tasks"):
        table.add_column(col)
    add_free_column(table, "description", wide=True)
    for row in rows:
        table.add_row(
            row["name"], row["direction"], row["kind"], ", ".join(row["tasks"]), row["description"]
        )
    term.result(table)
