"""Write the option tables of docs/reference/cli.md from the command line itself.

    python scripts/gen_cli_docs.py            # rewrite the tables in place
    python scripts/gen_cli_docs.py --check    # exit 1 if a table is stale, writing nothing

Each command's section (a heading ``### `tuneops NAME```, and ``## Global options`` for the
options before the command) holds one table, ``| argument / option | default | meaning |``,
built from the Typer app in ``tuneops.cli``: every argument and option with its default and its
``--help`` text. Everything else in cli.md (the usage lines, the paragraphs that say more than
a help line can) is written by hand and left as it is. A section without a table gets one after
its usage block. tests/cli/test_cli_docs.py checks that every command has a section and that
each section names exactly the command's arguments and options.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer.main

from tuneops.cli import app

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = ROOT / "docs" / "reference" / "cli.md"

HEADER = "| argument / option | default | meaning |\n|---|---|---|\n"
GLOBAL = "## Global options"
_COMMAND = re.compile(r"^#{2,3} `tuneops((?: [a-z][a-z-]*)*)`\s*$")
_HEADING = re.compile(r"^#{1,3} ")


def commands() -> dict[tuple[str, ...], Any]:
    """Every command of the app by the words a user types (``()``: the app, its global
    options), read through click's group API (the app builds its commands lazily)."""
    found: dict[tuple[str, ...], Any] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        if not hasattr(command, "list_commands"):  # typer ships its own click: duck-typed
            found[path] = command
            return
        if not path:
            found[path] = command
        ctx = command.make_context("tuneops", [], resilient_parsing=True)
        for name in command.list_commands(ctx):
            walk(command.get_command(ctx, name), (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def _is_argument(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "argument"


def _params(command: Any) -> list[Any]:
    return [p for p in command.params if not getattr(p, "hidden", False)]


def param_names(param: Any) -> list[str]:
    """What the docs name a parameter by: ``SPEC`` for an argument, every spelling of an
    option (``--workers``, ``-w``; ``--progress``, ``--no-progress``)."""
    if _is_argument(param):
        return [str(param.name).upper()]
    return [*param.opts, *param.secondary_opts]


def option_names(command: Any) -> set[str]:
    """Every name of every argument and option ``command`` takes (its ``-h`` aside)."""
    return {name for param in _params(command) for name in param_names(param)}


def _name_cell(param: Any) -> str:
    names = [f"`{n}`" for n in param_names(param)]
    if _is_argument(param):
        return names[0] + ("" if param.required else " (optional)")
    cell = ", ".join(f"`{n}`" for n in param.opts)
    if param.secondary_opts:
        cell += " / " + ", ".join(f"`{n}`" for n in param.secondary_opts)
    if param.multiple:
        cell += " (repeatable)"
    if param.required:
        cell += " (required)"
    return cell


def _default_cell(param: Any) -> str:
    default = param.default
    if _is_argument(param) or param.multiple or default is None:
        return ""
    if getattr(param, "is_flag", False) and param.secondary_opts:
        return f"`{param.opts[0] if default else param.secondary_opts[0]}`"
    if getattr(param, "is_flag", False) or default is False:
        return ""
    return f"`{default}`"


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def table(command: Any) -> str:
    """The markdown table of ``command``'s arguments and options, in the order of its help."""
    rows = [
        f"| {_name_cell(p)} | {_default_cell(p)} | {_cell(getattr(p, 'help', ''))} |\n"
        for p in _params(command)
    ]
    return HEADER + "".join(rows)


def sections(lines: list[str]) -> Iterator[tuple[tuple[str, ...], int, int]]:
    """``(command path, first line, end line)`` of each command's section of cli.md."""
    starts: list[tuple[tuple[str, ...] | None, int]] = []
    for i, line in enumerate(lines):
        if not _HEADING.match(line):
            continue
        match = _COMMAND.match(line)
        if match:
            starts.append((tuple(match.group(1).split()), i))
        elif line.strip() == GLOBAL:
            starts.append(((), i))
        else:
            starts.append((None, i))
    for k, (path, start) in enumerate(starts):
        end = starts[k + 1][1] if k + 1 < len(starts) else len(lines)
        if path is not None:
            yield path, start, end


def documented_names(section: list[str]) -> set[str]:
    """The names in the first column of a section's table (the backquoted words)."""
    names: set[str] = set()
    for line in _table_lines(section)[2:]:
        names.update(re.findall(r"`([^`]+)`", line.split(" | ")[0]))
    return names


def _table_lines(section: list[str]) -> list[str]:
    for i, line in enumerate(section):
        if line.startswith(HEADER.splitlines()[0]):
            end = i
            while end < len(section) and section[end].startswith("|"):
                end += 1
            return section[i:end]
    return []


def problems(text: str) -> list[str]:
    """What cli.md (``text``) gets wrong about the command line's names, one sentence each: a
    command without a section (or with two), a section of no command, an argument or option
    missing from a section's table or listed there but not taken by the command."""
    found = commands()
    lines = text.splitlines(keepends=True)
    documented: dict[tuple[str, ...], set[str]] = {}
    said: list[str] = []
    for path, start, end in sections(lines):
        name = " ".join(("tuneops", *path))
        if path in documented:
            said.append(f"`{name}` has two sections")
        documented[path] = documented_names(lines[start:end])
    for path in found.keys() - documented.keys():
        said.append(f"`{' '.join(('tuneops', *path))}` has no section")
    for path in documented.keys() - found.keys():
        said.append(f"`{' '.join(('tuneops', *path))}` has a section but is no command")
    for path in sorted(found.keys() & documented.keys()):
        name = " ".join(("tuneops", *path))
        real, doc = option_names(found[path]), documented[path]
        if real - doc:
            said.append(f"`{name}`: missing from its table: {', '.join(sorted(real - doc))}")
        if doc - real:
            said.append(f"`{name}`: in its table but not taken: {', '.join(sorted(doc - real))}")
    return said


def update(text: str) -> str:
    """cli.md with every command's table rebuilt from the app (the rest as it was)."""
    found = commands()
    lines = text.splitlines(keepends=True)
    # from the last section up, so the line numbers of the ones before stay right
    for path, start, end in reversed(list(sections(lines))):
        if path not in found:
            continue
        section = lines[start:end]
        new = table(found[path]).splitlines(keepends=True)
        old = _table_lines(section)
        if old:
            at = section.index(old[0])
            section[at : at + len(old)] = new
        else:
            fences = [i for i, line in enumerate(section) if line.startswith("```")]
            at = fences[1] + 1 if len(fences) >= 2 else 1
            section[at:at] = ["\n", *new]
        lines[start:end] = section
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if cli.md is not up to date")
    args = parser.parse_args(argv)
    text = CLI_MD.read_text()
    new = update(text)
    if new != text and args.check:
        print(f"{CLI_MD} is out of date: run python scripts/gen_cli_docs.py", file=sys.stderr)
    elif new != text:
        CLI_MD.write_text(new)
        print(f"wrote {CLI_MD}")
    said = problems(new)  # what no table can mend: a command without a section, a stray one
    for problem in said:
        print(f"{CLI_MD.name}: {problem}", file=sys.stderr)
    return 1 if said or (args.check and new != text) else 0


if __name__ == "__main__":
    sys.exit(main())
