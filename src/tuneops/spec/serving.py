"""``serving``: how the model will be called in production."""

from __future__ import annotations

from typing import Annotated, Any

from tuneops.spec._base import Int1, _Model, _name

SERVING_PATHS = ("row", "numpy", "batch", "records")


class Serving(_Model):
    """``serving``: how the model will be called in production, the path whose cost the
    latency objectives measure (see :mod:`tuneops.measure`)."""

    SECTION = "serving"

    path: Annotated[str, _name("serving path", SERVING_PATHS)] = "row"
    batch_size: Int1 = 256
    threads: Int1 = 1

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        return {} if raw is None else raw

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "batch_size": self.batch_size, "threads": self.threads}
