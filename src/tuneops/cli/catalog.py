"""What tuneops offers: ``tuneops families`` and ``tuneops metrics``."""

from __future__ import annotations

from typing import Any

from tuneops.cli._common import (
    JsonOpt,
    WideOpt,
    add_free_column,
    add_name_column,
    emit_json,
    free_cell,
    make_table,
    term,
)
from tuneops.families import FAMILIES
from tuneops.metrics import METRICS

__all__ = ["families", "metrics"]


def families(json_out: JsonOpt = False, wide: WideOpt = False) -> None:
    """List the model families and their default search spaces."""
    rows: list[dict[str, Any]] = []
    for name, cls in FAMILIES.items():
        family = cls()
        space = list(family.default_space("classification"))
        rows.append({"name": name, "description": family.description, "default_space": space})
    if json_out:
        emit_json(rows)
        return
    table = make_table("model families")
    add_name_column(table, "name")
    add_free_column(table, "description", wide=True)
    add_free_column(table, "default space (classification)", wide=wide)
    for row in rows:
        table.add_row(
            row["name"], row["description"], free_cell(", ".join(row["default_space"]), wide=wide)
        )
    term.result(table)


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
