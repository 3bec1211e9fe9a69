"""``data``: where the data is and what to predict."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    Field,
    field_validator,
)

from tuneops.spec._base import _check, _is_text, _Model, _name

TASKS = ("auto", "classification", "regression")


class DataSpec(_Model):
    """Where the data is and what to predict.

    ``pos_label`` is the positive class of binary ``f1``, ``precision``, ``recall``,
    ``roc_auc`` and ``average_precision``. Default (None): the minority class of the training
    target; the class used is recorded in the results.
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
        return out
