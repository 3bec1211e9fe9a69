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
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tuneops.errors import UsageError, WriteError

__all__ = [
    "replacing",
    "write_atomic",
    "copy_atomic",
    "is_stream",
    "is_stdout",
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
    errno.EPIPE: "the process reading the pipe stopped before the end: keep it reading",
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

    A stream (:func:`is_stream`: ``/dev/null``, ``/dev/stdout``, a named pipe) is written into,
    not replaced: a rename onto it would put a regular file in place of the device or the link.
    The temporary file is then in the system's temporary directory.

    Raises:
        UsageError: ``path`` is a directory, a device that is not a stream, or a pipe no
            process reads.
        WriteError: the directory or the file could not be written.
    """
    path = Path(path)
    stream = is_stream(path)
    tmp: Path | None = None
    try:
        if stream:
            fd, name = tempfile.mkstemp(prefix=".tuneops-out.", suffix=".tmp")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(name)
        if hasattr(os, "fchmod") and not stream:  # POSIX; a stream's copy in /tmp stays private
            os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        yield tmp
        if stream:
            _write_stream(path, tmp)
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise write_error(path, exc) from exc
        raise


#: Paths that name a stream, by name (not resolved: /dev/stdout is a link to the process's
#: descriptor): written into, never replaced.
_STREAM_NAMES = {"/dev/null": None, "/dev/tty": None, "/dev/stdout": 1, "/dev/stderr": 2}
_FD_PREFIXES = ("/dev/fd/", "/proc/self/fd/")


def _descriptor(path: Path) -> int | None:
    """The open descriptor ``path`` names (``/dev/stdout``: 1, ``/dev/fd/3``: 3), else None."""
    text = os.path.abspath(path)
    if text in _STREAM_NAMES:
        return _STREAM_NAMES[text]
    for prefix in _FD_PREFIXES:
        if text.startswith(prefix) and text[len(prefix) :].isdigit():
            return int(text[len(prefix) :])
    return None


def is_stdout(path: str | Path | None) -> bool:
    """True when ``path`` names this process's standard output (``/dev/stdout``, ``/dev/fd/1``):
    what the command prints besides must then go to standard error."""
    return path is not None and _descriptor(Path(path)) == 1


def is_stream(path: str | Path) -> bool:
    """True when ``path`` is written into rather than replaced: ``/dev/null``, ``/dev/tty``,
    the process's own streams (``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``) or a named
    pipe. False for a regular file, a missing one, or a symbolic link to a file (the link is
    replaced, what it pointed to is left alone: a link planted in an output directory cannot
    make tuneops write into a device).

    Raises:
        UsageError: ``path`` is a directory (or a link to one), or a device or socket that is
            not one of those streams.
    """
    path = Path(path)
    if os.path.abspath(path) in _STREAM_NAMES or _descriptor(path) is not None:
        return True
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            mode = path.stat().st_mode
            if not stat.S_ISDIR(mode):
                return False
    except OSError:
        return False  # nothing there yet, or a dangling link: written as a new file
    if stat.S_ISREG(mode):
        return False
    if stat.S_ISFIFO(mode):
        return True
    if stat.S_ISDIR(mode):
        raise UsageError(
            f"{str(path)!r} is a directory; expected the path of a file to write. Give a file "
            f"name inside it (for example {str(path / 'out.json')!r})."
        )
    raise UsageError(
        f"{str(path)!r} is a device or socket, not a file; expected the path of a file to "
        "write (or /dev/null to discard the output, /dev/stdout to print it)."
    )


def _write_stream(path: Path, source: Path) -> None:
    """Copy ``source`` into the stream ``path``: the process's own descriptor for
    ``/dev/stdout``-like names (so what is printed after it follows it), else the path opened
    for writing; a named pipe must have a reader already (no wait for one that never comes)."""
    descriptor = _descriptor(path)
    with open(source, "rb") as src:
        if descriptor is not None:
            if descriptor == 1:
                sys.stdout.flush()  # what the process printed before comes first
            while chunk := src.read(1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(descriptor, view) :]
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                raise UsageError(
                    f"{str(path)!r} is a named pipe that no process reads; start its reader "
                    "first, or give a file name."
                ) from exc
            raise
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb") as sink:
            shutil.copyfileobj(src, sink)


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


def check_output_dir(path: str | Path, *, option: str = "out_dir (--out)") -> None:
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
