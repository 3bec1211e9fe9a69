"""What every benchmark script shares: the reproduce command, ratio tables, the docs section.

Pure helpers (no timing here): :func:`render_table` formats rows as Markdown,
:func:`replace_block` rewrites one benchmark's block inside one section of
docs/benchmarks.md, leaving every other section untouched.
"""

from __future__ import annotations

import os
import shlex
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Core: quickstart vs the seed recipe (issue 2)"

if str(SRC) not in sys.path:  # run from a checkout without installing it
    sys.path.insert(0, str(SRC))


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that reproduces this run, relative to the repository root."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve()
    try:
        shown = str(script.relative_to(ROOT))
    except ValueError:
        shown = str(script)
    return " ".join(["nice -n 10 python", shlex.quote(shown), *map(shlex.quote, argv[1:])])


def commit() -> str:
    """The checkout's short commit, or ``unknown`` outside a git checkout."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def stamp() -> str:
    """When and on what code a run ran: ``YYYY-MM-DD HH:MM UTC, commit abc1234``."""
    import time

    return f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit()}"


def child_env() -> dict[str, str]:
    """Environment for a child python: this checkout's ``src`` first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return env


def fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def render_table(header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 3) -> str:
    """A Markdown table (also readable in a terminal)."""
    cells = [[fmt(c, digits) for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def cv(values: Sequence[float]) -> float:
    """Coefficient of variation (sample std / mean)."""
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if len(values) > 1 and mean else float("nan")


def replace_block(doc: str, section: str, key: str, body: str) -> str:
    """``doc`` with the block ``key`` inside ``section`` set to ``body``.

    A block is delimited by ``<!-- key -->`` and ``<!-- /key -->``. The section's
    ``_pending_`` placeholder is dropped; a missing block is appended at the end of the
    section (before the next ``## `` heading). Other sections are untouched.

    Raises:
        ValueError: ``section`` is not a heading of ``doc``.
    """
    lines = doc.splitlines()
    try:
        start = lines.index(section)
    except ValueError:
        raise ValueError(f"docs/benchmarks.md has no heading {section!r}; add it first.") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    inner = [line for line in lines[start + 1:end] if line.strip() != "_pending_"]
    opening, closing = f"<!-- {key} -->", f"<!-- /{key} -->"
    block = [opening, *body.strip("\n").splitlines(), closing]
    if opening in inner and closing in inner:
        a, b = inner.index(opening), inner.index(closing)
        inner[a:b + 1] = block
    else:
        while inner and not inner[-1].strip():
            inner.pop()
        inner += ["", *block]
    inner = _strip_blank_edges(inner)
    rebuilt = lines[:start + 1] + [""] + inner + ["", "", ""] * (end < len(lines)) + lines[end:]
    return "\n".join(rebuilt) + "\n"


def _strip_blank_edges(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def write_doc_block(key: str, body: str, section: str = SECTION, path: Path = DOC) -> None:
    """Write ``body`` as block ``key`` of ``section`` (a ``## `` heading) of docs/benchmarks.md
    and say so."""
    path.write_text(replace_block(path.read_text(), section, key, body))
    print(f"wrote the {key!r} block of {section[3:]!r} in {path.relative_to(ROOT)}")
