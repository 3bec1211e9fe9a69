"""``data``: where the data is and what to predict."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    Field,
    field_validator,
)

from tuneops.spec._base import _check, _is_text, _Model, _name, _problem

TASKS = ("auto", "classification", "regression")


def _is_columns(v: Any) -> bool:
    """``declared``, or a non-empty list of column names."""
    if isinstance(v, str):
        return v == "declared"
    return isinstance(v, (list, tuple)) and bool(v) and all(_is_text(c) for c in v)


class DataSpec(_Model):
    """Where the data is and what to predict.

    ``pos_label`` is the positive class of binary ``f1``, ``precision``, ``recall``,
    ``roc_auc`` and ``average_precision``. Default (None): the minority class of the training
    target; the class used is recorded in the results.

    ``categorical`` names feature columns of numbers that are categories (codes: a product id, a
    region number), to be encoded as categories rather than read as quantities; ``declared``
    takes the columns a PMLB source's ``metadata.yaml`` declares categorical. Text, boolean and
    category-typed columns are categories without being named.

    ``drop`` names feature columns to leave out (an id, a field filled in after the outcome: a
    leak the ``perfect score`` finding points at); a served request may still send them.
    """

    SECTION = "data"

    source: Annotated[
        str,
        _check(
            "a data source such as 'sklearn:breast_cancer', 'pmlb:NAME' or a CSV/Parquet path",
            _is_text,
        ),
    ] = Field(default=None, validate_default=True)
    target: Annotated[str, _check("a column name", _is_text)] | None = None
    task: Annotated[str, _name("task", TASKS)] = "auto"
    pos_label: (
        Annotated[
            str | int | bool,
            _check(
                "a class label (a string, an integer, true or false)",
                lambda v: isinstance(v, (str, int)),
            ),
        ]
        | None
    ) = None

    categorical: (
        Annotated[
            str | tuple[str, ...],
            _check(
                "a list of column names, or 'declared' (the columns a PMLB source declares "
                "categorical)",
                _is_columns,
            ),
        ]
        | None
    ) = None

    drop: (
        Annotated[
            tuple[str, ...],
            _check(
                "a list of column names",
                lambda v: isinstance(v, (list, tuple)) and bool(v) and all(map(_is_text, v)),
            ),
        ]
        | None
    ) = None

    @field_validator("categorical", "drop", mode="after")
    @classmethod
    def _distinct(cls, value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        if isinstance(value, tuple) and len(set(value)) != len(value):
            twice = sorted({c for c in value if value.count(c) > 1})
            raise _problem(f"column(s) {', '.join(map(repr, twice))} listed twice.")
        return value

    @field_validator("source", mode="after")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "task": self.task}
        if self.target is not None:
            out["target"] = self.target
        if self.pos_label is not None:
            out["pos_label"] = self.pos_label
        if self.drop is not None:
            out["drop"] = list(self.drop)
        if self.categorical is not None:
            out["categorical"] = (
                self.categorical if isinstance(self.categorical, str) else list(self.categorical)
            )
        return out
