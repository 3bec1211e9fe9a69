"""Errors raised by tuneops.

One root, :class:`TuneOpsError`; each subclass is named for what happened. Every message
answers which thing, what was expected, what was received, and what to do. Errors that are
the user's input (spec, data, storage URL, CLI arguments) derive from :class:`UsageError`,
which the CLI maps to exit code 2.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable

__all__ = [
    "TuneOpsError",
    "UsageError",
    "SpecError",
    "DataError",
    "StorageUnavailable",
    "StudyNotFound",
    "NoFeasibleTrial",
    "MissingExtra",
    "IntegrityError",
    "TuneOpsWarning",
    "VersionMismatchWarning",
    "unknown_name",
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


class NoFeasibleTrial(TuneOpsError):
    """No completed trial satisfies the constraints."""


class MissingExtra(TuneOpsError, ImportError):
    """An optional dependency is needed for this feature."""


class IntegrityError(TuneOpsError):
    """A file's content is not what was recorded when it was written (its sha256 differs).

    Not a :class:`UsageError`: the input is well-formed, the artifact changed. Nothing is loaded
    or changed when it is raised.
    """


class TuneOpsWarning(UserWarning):
    """Root of the warnings tuneops emits on purpose (filter them with this class)."""


class VersionMismatchWarning(TuneOpsWarning):
    """A model was saved with other library versions than the running ones; it may load or
    predict differently."""


def unknown_name(kind: str, received: object, valid: Iterable[str], *, field: str | None = None) -> str:
    """Message for an unknown name: lists the valid ones and the closest match."""
    valid = sorted(valid)
    where = f"{field}: " if field else ""
    close = difflib.get_close_matches(str(received), valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"{where}unknown {kind} {received!r}; expected one of {', '.join(valid)}.{hint}"


def require(module: str, extra: str, feature: str):
    """Import an optional dependency or fail with the exact install command."""

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"{feature} needs the optional package {module!r}, which is not installed; "
            f"install it with: pip install 'tuneops[{extra}]'"
        ) from exc
