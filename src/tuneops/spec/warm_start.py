"""``warm_start``: which configurations a new study tries first (the behaviour is
:mod:`tuneops.knowledge.warm_start`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    SkipValidation,
    field_validator,
)

from tuneops.spec._base import (
    Int0,
    Int1,
    Text,
    _check,
    _expected,
    _freeze,
    _is_number,
    _is_text,
    _Model,
    _thaw,
)

#: ``warm_start.auto.strategy``: a static portfolio's order (:mod:`tuneops.knowledge.portfolio`),
#: or ``adaptive``: each warm-start trial chosen after the results so far.
AUTO_STRATEGIES = ("round_robin", "consensus", "coverage", "greedy", "adaptive")


class AutoSettings(_Model):
    """``warm_start.auto``: draw from the nearest past tasks of the knowledge base.

    Defaults chosen by the leave-one-dataset-out study in docs/benchmarks.md (issue 5).
    """

    SECTION = "warm_start.auto"

    neighbors: Int1 = 16
    max_trials: Int0 = 10
    max_share: Annotated[float, _check("a fraction in (0, 1]", _is_number(0, 1, low_open=True))] = (
        0.25
    )
    sources: tuple[str, ...] = ("shipped", "storage")
    strategy: Annotated[
        str, _check(f"one of {', '.join(AUTO_STRATEGIES)}", lambda v: v in AUTO_STRATEGIES)
    ] = "adaptive"

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if raw is True or raw == "auto":
            return {}
        if not isinstance(raw, Mapping):
            raise _expected("true, false or a mapping")
        return raw

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, (list, tuple)) or not raw or not all(_is_text(s) for s in raw):
            raise _expected("a list of 'shipped', 'storage' or knowledge-base file paths")
        return tuple(raw)

    def size(self, n_trials: int | None) -> int:
        """Warm-start trials for a budget: at most ``max_trials`` and ``max_share`` of it."""
        if n_trials is None:
            return self.max_trials
        return max(0, min(self.max_trials, math.floor(self.max_share * n_trials)))


class StudySource(_Model):
    """An earlier study to start from: its best trial or its Pareto front."""

    study: Text
    take: Annotated[str, _check("best or pareto", lambda v: v in ("best", "pareto"))] = "pareto"

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            return {"study": raw}
        if not isinstance(raw, Mapping):
            raise _expected("a study name or {study: NAME, take: best|pareto}")
        return raw

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "take": self.take}


def _params_list(raw: Any) -> Any:
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not all(isinstance(p, Mapping) for p in raw):
        raise _expected("a list of {param: value} mappings")
    return tuple(_freeze(p) for p in raw)


class WarmStart(_Model):
    """The ``warm_start`` section: which configurations a new study tries first.

    See :mod:`tuneops.knowledge.warm_start` for what each source does. ``warm_start: auto`` is
    short for ``{auto: true}``.
    """

    SECTION = "warm_start"

    params: Annotated[
        tuple[SkipValidation[Mapping[str, Any]], ...], BeforeValidator(_params_list)
    ] = ()
    studies: tuple[StudySource, ...] = ()
    auto: AutoSettings | None = None
    out_of_space: Annotated[str, _check("error or clip", lambda v: v in ("error", "clip"))] = (
        "error"
    )

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        if raw is None or raw is False:
            return {}
        if raw is True or raw == "auto":
            return {"auto": True}
        if not isinstance(raw, Mapping):
            raise _expected(f"'auto' or a mapping with keys {', '.join(cls.spec_keys())}")
        return raw

    @field_validator("studies", mode="before")
    @classmethod
    def _studies(cls, raw: Any) -> Any:
        if raw is None:
            return ()
        if isinstance(raw, str):
            return (raw,)
        if not isinstance(raw, (list, tuple)):
            raise _expected("a list of study names")
        return raw

    @field_validator("auto", mode="before")
    @classmethod
    def _auto(cls, raw: Any) -> Any:
        return None if raw is None or raw is False else raw

    @property
    def empty(self) -> bool:
        return not self.params and not self.studies and self.auto is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.params:
            out["params"] = [_thaw(p) for p in self.params]
        if self.studies:
            out["studies"] = [s.to_dict() for s in self.studies]
        if self.auto is not None:
            out["auto"] = self.auto.to_dict() or True
        if self.out_of_space != "error":
            out["out_of_space"] = self.out_of_space
        return out
