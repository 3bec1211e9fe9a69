"""Errors raised by tuneops.

One root, :class:`TuneOpsError`; each subclass is named for what happened. Every message
answers which thing, what was expected, what was received, and what to do. Errors that are
the user's input (spec, data, storage URL, CLI arguments) derive from :class:`UsageError`,
which the CLI maps to exit code 2.

A message about an argument names it for both of its callers: the library's parameter, then
the command line's flag, ``trial (--trial): study 'x' has no trial 9``; a spec field by its
path (``search.n_trials``). Only ``tuneops.cli`` names a flag alone.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the formatter reads pydantic's errors; importing errors stays light
    from pydantic import ValidationError

__all__ = [
    "TuneOpsError",
    "UsageError",
    "SpecError",
    "DataError",
    "StorageUnavailable",
    "StudyNotFound",
    "WriteError",
    "NoFeasibleTrial",
    "MissingExtra",
    "IntegrityError",
    "RunInProgress",
    "TuneOpsWarning",
    "VersionMismatchWarning",
    "unknown_name",
    "field_path",
    "format_validation_error",
]


class TuneOpsError(Exception):
    """Root of every error tuneops raises on purpose."""


class UsageError(TuneOpsError, ValueError):
    """The input (spec, data, URL, argument) is wrong; the CLI exits 2."""


class SpecError(UsageError):
    """A spec field is missing, of the wrong type, or out of range."""


class DataError(UsageError):
    """A data source cannot be read or does not fit the spec."""


class StorageUnavailable(UsageError):
    """The storage URL cannot be reached or is misconfigured."""


class StudyNotFound(UsageError, KeyError):
    """No study of that name exists in the storage."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class WriteError(TuneOpsError, OSError):
    """The machine refused a write at run time: a full disk, a quota, a read-only file system,
    a file size limit. The message names the file and what to do.

    Not a :class:`UsageError`: the input was fine, the machine changed. Nothing is left
    half-written (files are written under a temporary name and renamed; a journal entry cut
    short is removed at the next append); what was recorded before stays. The CLI exits 1 and
    the same command resumes.
    """


class NoFeasibleTrial(TuneOpsError):
    """No completed trial satisfies the constraints."""


class MissingExtra(TuneOpsError, ImportError):
    """An optional dependency is needed for this feature."""


class IntegrityError(TuneOpsError):
    """A file's content is not what was recorded when it was written (its sha256 differs).

    Not a :class:`UsageError`: the input is well-formed, the artifact changed. Nothing is loaded
    or changed when it is raised.
    """


class RunInProgress(TuneOpsError):
    """Another process is running the same work now (a re-tuning of the same data against the
    same champion, or a refresh of the same rows) and two would collide; the message names
    that process. Nothing was changed. Not a :class:`UsageError`: the command is right, the
    time is not; the CLI exits 1.
    """


class TuneOpsWarning(UserWarning):
    """Root of the warnings tuneops emits on purpose (filter them with this class)."""


class VersionMismatchWarning(TuneOpsWarning):
    """A model was saved with other library versions than the running ones; it may load or
    predict differently."""


def unknown_name(
    kind: str, received: object, valid: Iterable[str], *, field: str | None = None
) -> str:
    """Message for an unknown name: lists the valid ones and the closest match."""
    valid = sorted(valid)
    where = f"{field}: " if field else ""
    close = difflib.get_close_matches(str(received), valid, n=1)
    if not close:  # 'RMSE', 'Random_Forest': difflib compares case; the names are lower case
        lowered = {v.lower(): v for v in valid}
        close = [lowered[c] for c in difflib.get_close_matches(str(received).lower(), lowered, n=1)]
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"{where}unknown {kind} {received!r}; expected one of {', '.join(valid)}.{hint}"


def field_path(loc: Sequence[int | str], root: str = "") -> str:
    """``("search", "pruner", "n_warmup_steps")`` -> ``search.pruner.n_warmup_steps``;
    list positions as ``objectives[0]``; ``root`` is where the validated value sits."""
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


# What pydantic's own error types expect, in the words of our messages.
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "mapping_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "iterable_type": "a list",
}


def format_validation_error(error: ValidationError, *, root: str = "") -> str:
    """The message of a :class:`SpecError` from pydantic's ``ValidationError``, a line per problem.

    Every line names the field (``search.pruner.n_warmup_steps``, ``objectives[0].metric``),
    what was expected and what was received; unknown names list the valid ones with the closest
    match (see :func:`unknown_name`). The spec's models raise two custom error types that carry
    our words: ``expected`` (ctx ``expected``, optional ``hint``) and ``tuneops`` (ctx
    ``message``); either may add ``at`` (a sub-field below the error's location) and
    ``received``. A tuneops :class:`UsageError` raised inside a validator already names its field
    and is kept as it is.

    Args:
        error: what ``Model.model_validate`` raised.
        root: where the validated value sits in a spec (``"monitor"`` when the ``monitor``
            section is validated alone); empty for a whole spec.
    """
    lines: list[str] = []
    for item in error.errors():
        line = _format_one(item, root)
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)


_NOTHING = object()


def _format_one(item: Mapping[str, Any], root: str) -> str:
    ctx = item.get("ctx") or {}
    kind = item["type"]
    if kind == "value_error" and isinstance(ctx.get("error"), UsageError):
        return str(ctx["error"])  # a complete message from a tuneops helper (parse_space, ...)
    path = field_path(item["loc"], root)
    at = str(ctx.get("at") or "")
    if at:
        path = path + at if at.startswith("[") or not path else f"{path}.{at}"
    path = path or "spec"
    received = ctx.get("received", item.get("input", _NOTHING))
    shown = "nothing" if received is _NOTHING else repr(received)
    if kind == "tuneops":
        return f"{path}: {ctx['message']}"
    if kind == "expected":
        hint = f" {ctx['hint']}" if ctx.get("hint") else ""
        return f"{path}: expected {ctx['expected']}, received {shown}.{hint}"
    if kind == "missing":
        return f"{path}: required, received nothing; add it."
    if kind == "extra_forbidden":
        return f"{path}: unknown key; remove it or check its spelling."
    if kind in _EXPECTED:
        return f"{path}: expected {_EXPECTED[kind]}, received {shown}."
    return f"{path}: {item.get('msg', kind)}; received {shown}."


def require(module: str, extra: str, feature: str):
    """Import an optional dependency or fail with the exact install command."""

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"{feature} needs the optional package {module!r}, which is not installed; "
            f"install it with: pip install 'tuneops[{extra}]'"
        ) from exc
