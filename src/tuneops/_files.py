"""Files written whole or not at all, and a clear error when the machine refuses a write.

Every file tuneops writes for a person or a tool (the model, ``model.json``, ``results.json``,
reports, a knowledge base, a registry version's copy) is written under a temporary name in the
same directory and renamed onto its path (:func:`replacing`): a reader sees the old file or the
new one, never half of one, and a failed write leaves nothing behind. An ``OSError`` while
writing (a full disk, a quota, a read-only file system, a file size limit) becomes a
:class:`tuneops.errors.WriteError` that names the file and what to do.

:func:`check_output_dir` runs before a long job, so that an output directory that cannot be
created is refused at the start (a bad ``--out``), not after hours of tuning.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tuneops.errors import UsageError, WriteError

__all__ = [
    "replacing",
    "write_atomic",
    "copy_atomic",
    "write_error",
    "check_output_dir",
    "path_part",
]

_TODO = {
    errno.ENOSPC: "free space on that disk, or write to another",
    errno.EDQUOT: "free space within your disk quota, or write to another disk",
    errno.EROFS: "the file system is read-only: write to another path",
    errno.EFBIG: "the file reached this process's file size limit (ulimit -f): raise it",
    errno.EACCES: "fix the directory's permissions, or write to another path",
    errno.EPERM: "fix the directory's permissions, or write to another path",
}


def write_error(
    path: str | Path, exc: OSError, *, what: str = "write", then: str = ""
) -> WriteError:
    """A :class:`WriteError` for ``exc`` raised while writing ``path``: the file, the system's
    reason, and what to do (``then``: what to run after, e.g. the command that resumes)."""
    todo = _TODO.get(exc.errno or 0, "check the disk and the directory's permissions")
    error = WriteError(
        f"could not {what} {str(path)!r} ({exc.strerror or exc}). What to do: {todo}"
        + (f"; then {then}" if then else "")
        + "."
    )
    error.errno = exc.errno  # as the OSError it is
    return error


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; renamed onto ``path`` when the
    block ends, removed when it raises. The file gets the mode an ordinary ``open()`` gives
    (0666 less the umask): ``mkstemp`` makes it private, and these files are meant to be read.

    A path that names a character device or a pipe (``/dev/null``, ``/dev/stdout``) is
    written into, not replaced: renaming onto it would put a regular file in its place.

    Raises:
        UsageError: ``path`` is a directory or another kind of file that cannot be written.
        WriteError: the directory or the file could not be written.
    """
    path = Path(path)
    stream = _stream_target(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(name)
        if hasattr(os, "fchmod"):  # POSIX
            os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        yield tmp
        if stream:
            with open(tmp, "rb") as source, open(path, "wb") as sink:
                shutil.copyfileobj(source, sink)
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise write_error(path, exc) from exc
        raise


def _stream_target(path: Path) -> bool:
    """True when ``path`` is a character device or a pipe, to be written into; False for a
    regular file or no file yet.

    Raises:
        UsageError: ``path`` is a directory, a socket or a block device.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return False  # nothing there yet (or unreadable: the write says why)
    if stat.S_ISREG(mode):
        return False
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return True
    kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
    raise UsageError(
        f"{str(path)!r} is {kind}; expected the path of a file to write. Give a file name "
        f"(for example {str(path / 'out') if stat.S_ISDIR(mode) else 'out.json'!r})."
    )


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all (:func:`replacing`)."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def copy_atomic(source: str | Path, path: str | Path) -> Path:
    """Copy ``source`` (bytes and modification time) to ``path`` whole or not at all."""
    with replacing(path) as tmp:
        shutil.copy2(source, tmp)
    return Path(path)


def path_part(name: str) -> str:
    """``name`` (a study's or a model's, read from a storage) as one directory name: letters,
    digits, ``_``, ``-`` and ``.`` kept, the rest ``_``, no leading dot (``..`` or ``a/b``
    would leave the directory it is meant to sit in)."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name).lstrip(".") or "_"


def check_output_dir(path: str | Path, *, option: str = "--out") -> None:
    """Refuse at the start an output directory that cannot be created or written: a file in
    its place, or a nearest existing directory this user cannot write. Creates nothing.

    Raises:
        UsageError: names the directory, what is in the way, and what to do.
    """
    path = Path(path)
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UsageError(
            f"output directory {str(path)!r} cannot be created: {str(existing)!r} is a file. "
            f"What to do: give {option} a directory path."
        )
    if existing.exists() and not _can_write_in(existing):
        raise UsageError(
            f"output directory {str(path)!r} cannot be written: {str(existing)!r} is not "
            f"writable by this user. What to do: give {option} a directory you can write, or "
            "fix its permissions."
        )


def _can_write_in(directory: Path) -> bool:
    """True when a file can be created in ``directory``: tried (and removed at once), as
    permissions alone do not tell (root passes ``os.access`` on /sys, a read-only mount)."""
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=directory, prefix=".tuneops-probe-"):
            return True
    except OSError:
        return False


def _umask() -> int:
    """The process umask. POSIX only lets one read it by setting it, so set it back at once."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
