"""What every section of a spec is built from: the frozen, key-checking :class:`_Model`, the
field checks that speak the user's words (``expected ..., received ...``), and the small value
types (``Int1``, ``Unit``, ``Flag``...) the sections declare their fields with."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tuneops.errors import SpecError, format_validation_error, unknown_name

# -- errors raised inside validation (the formatter in tuneops.errors turns them into words) -----
_UNSET: Any = object()


def _expected(
    expected: str, *, hint: str = "", at: str = "", received: Any = _UNSET
) -> PydanticCustomError:
    """``FIELD: expected ..., received ...``; ``at``: a sub-field, whose value is ``received``."""
    ctx: dict[str, Any] = {"expected": expected, "hint": hint, "at": at}
    if received is not _UNSET:
        ctx["received"] = received
    return PydanticCustomError("expected", "expected {expected}", ctx)


def _problem(message: str, *, at: str = "") -> PydanticCustomError:
    return PydanticCustomError("tuneops", "{message}", {"message": message, "at": at})


# -- settings refused since an earlier tuneops stored them -------------------------------------
# A check added to the spec refuses settings an earlier tuneops accepted and stored with its
# studies and registered versions (constraints that repeat or contradict each other, db0388e;
# a constraint every model meets and selection settings of another policy, ea74061). Read back
# from storage, such a spec is taken as it was written and each setting is noted, not refused:
# refused, the study could no longer be shown, selected, exported, joined or re-tuned.
_TOLERATING: ContextVar[list[str] | None] = ContextVar("tuneops_spec_tolerating", default=None)


def refused_since(message: str, error: Exception | None = None) -> None:
    """Refuse a setting an earlier tuneops accepted (``error``, by default a SpecError of
    ``message``), or note ``message`` while a stored spec is read (inside :func:`tolerating`)."""
    notes = _TOLERATING.get()
    if notes is None:
        raise error if error is not None else SpecError(message)
    notes.append(message)


@contextmanager
def tolerating() -> Iterator[list[str]]:
    """Within it, :func:`refused_since` notes its settings in the list it gives instead of
    refusing them (for a spec read back from storage)."""
    notes: list[str] = []
    token = _TOLERATING.set(notes)
    try:
        yield notes
    finally:
        _TOLERATING.reset(token)


def _check(expected: str, ok: Callable[[Any], bool], hint: str = "") -> BeforeValidator:
    """A field check in our words: ``ok(value)`` or ``expected ..., received ...``.

    Checks run on the raw value, before pydantic's own (lax) conversion, so ``"5"`` is not an
    integer and ``true`` is not a number, as in the YAML the user wrote.
    """

    def check(value: Any) -> Any:
        if not ok(value):
            raise _expected(expected, hint=hint)
        return value

    return BeforeValidator(check)


def _name(kind: str, valid: tuple[str, ...]) -> BeforeValidator:
    """A name from a fixed list; an unknown one is refused with the list and the closest match."""

    def check(value: Any) -> Any:
        if not isinstance(value, str) or value not in valid:
            raise _problem(unknown_name(kind, value, valid))
        return value

    return BeforeValidator(check)


def _is_int(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _is_number(
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return ok


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


Int0 = Annotated[int, _check("an integer >= 0", _is_int(0))]
Int1 = Annotated[int, _check("an integer >= 1", _is_int(1))]
Int2 = Annotated[int, _check("an integer >= 2", _is_int(2))]
Int10 = Annotated[int, _check("an integer >= 10", _is_int(10))]
Finite = Annotated[float, _check("a finite number", _is_number())]
NonNegative = Annotated[float, _check("a number >= 0", _is_number(0))]
Positive = Annotated[float, _check("a number > 0", _is_number(0, low_open=True))]
Unit = Annotated[float, _check("a number in [0, 1]", _is_number(0, 1))]
Probability = Annotated[
    float,
    _check("a number strictly between 0 and 1", _is_number(0, 1, low_open=True, high_open=True)),
]
Fraction = Annotated[float, _check("a number in (0, 1]", _is_number(0, 1, low_open=True))]
Flag = Annotated[bool, _check("true or false", _is_bool)]
Text = Annotated[str, _check("a non-empty string", _is_text)]


# -- the base of every section --------------------------------------------------------------------
_M = TypeVar("_M", bound="_Model")


class _Model(BaseModel):
    """A frozen section of a spec that refuses unknown keys.

    Subclasses put shorthand forms into the canonical mapping in :meth:`_normalize`;
    ``KEY_KIND`` names their keys in the unknown-key message; ``SECTION`` is where the section
    sits in a spec, so a section built on its own (``Monitor(alpha=2)``) names
    ``monitor.alpha`` when it is refused. The small value types also take their fields
    positionally (``Objective("accuracy", "maximize")``), as the dataclasses they replace did.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    SECTION: ClassVar[str] = ""
    KEY_KIND: ClassVar[str] = "key"

    def __init__(self, /, *args: Any, **data: Any) -> None:
        if args:
            names = list(type(self).model_fields)
            if len(args) > len(names):
                raise TypeError(f"{type(self).__name__} takes {len(names)} positional arguments")
            data.update(zip(names, args, strict=False))
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise SpecError(format_validation_error(exc, root=self.SECTION)) from None

    # Marked as pydantic's own __init__, so validation of nested sections never calls it (their
    # errors stay pydantic errors, named from the top of the spec); only direct construction does.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"{type(self).__name__} is immutable; cannot set {name!r} (use spec.replace(...) or "
            "load_spec(spec, **changes) for a changed copy)."
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot delete {name!r}.")

    @classmethod
    def spec_keys(cls) -> tuple[str, ...]:
        """The keys the section accepts in a spec."""
        return tuple(cls.model_fields)

    @classmethod
    def from_raw(cls: type[_M], raw: Any, field_name: str | None = None) -> _M:
        """The section from raw data (or itself), validated as it would be inside a spec.

        Raises:
            SpecError: naming the field below ``field_name`` (default: where the section sits).
        """
        if isinstance(raw, cls):
            return raw
        return _validate(cls, raw, cls.SECTION if field_name is None else field_name)

    @classmethod
    def _normalize(cls, raw: Any) -> Any:
        return raw

    @classmethod
    def _unknown_key(cls, key: Any, valid: tuple[str, ...]) -> PydanticCustomError:
        return _problem(unknown_name(cls.KEY_KIND, key, valid))

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, raw: Any) -> Any:
        if isinstance(raw, cls):
            return raw
        raw = cls._normalize(raw)
        if isinstance(raw, Mapping):
            valid = cls.spec_keys()
            for key in raw:
                if key not in valid:
                    raise cls._unknown_key(key, valid)
        return raw

    def to_dict(self) -> dict[str, Any]:
        """The section as plain data; fields left at their default are omitted."""
        out: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if not info.is_required() and value == info.get_default(call_default_factory=True):
                continue
            out[name] = _thaw(value)
        return out


def _validate(model: type[_M], raw: Any, root: str) -> _M:
    """``model`` from raw data, or a SpecError naming fields below ``root``."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, root=root)) from None


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, _Model):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _amounts(expected: str, what: str) -> BeforeValidator:
    """A mapping ``{name: number >= 0}`` (or its stored form, ``((name, number), ...)``)."""
    is_amount = _is_number(0)

    def check(raw: Any) -> Any:
        if raw is None:
            return ()
        if isinstance(raw, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in raw):
            raw = dict(raw)
        if not isinstance(raw, Mapping):
            raise _expected(f"a mapping {{{what}: {expected}}}")
        for key, value in raw.items():
            if not is_amount(value):
                raise _expected(expected, at=str(key), received=value)
        return tuple((str(k), float(v)) for k, v in raw.items())

    return BeforeValidator(check)
