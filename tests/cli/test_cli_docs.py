"""docs/reference/cli.md names every command and exactly the options each one takes.

The tables are written by scripts/gen_cli_docs.py from the app itself; this test reads the same
app, so a new option, a renamed one or a new command without its docs fails here (the help
texts may differ from the table's wording: only the names are compared).
"""

from __future__ import annotations

import importlib.util
import re

from conftest import ROOT

_SPEC = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
assert _SPEC is not None and _SPEC.loader is not None
gen = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(gen)

CLI_MD = ROOT / "docs" / "reference" / "cli.md"


def test_cli_md_names_every_command_and_exactly_its_options():
    assert gen.problems(CLI_MD.read_text()) == []


def test_the_check_sees_a_missing_option_a_stray_one_and_a_missing_command():
    text = CLI_MD.read_text()
    assert "| `--refresh` |" in text and "### `tuneops label`" in text
    doctored = text.replace("| `--refresh` |", "| `--refreshed` |", 1).replace(
        "### `tuneops label`", "### `tuneops labels`", 1
    )
    said = gen.problems(doctored)
    assert "`tuneops retune`: missing from its table: --refresh" in said
    assert "`tuneops retune`: in its table but not taken: --refreshed" in said
    assert "`tuneops label` has no section" in said
    assert "`tuneops labels` has a section but is no command" in said


def test_the_generated_tables_list_every_spelling_and_default():
    commands = gen.commands()
    run = gen.table(commands[("run",)])
    assert "| `--progress` / `--no-progress` | `--progress` |" in run
    assert "| `--workers`, `-w` |  |" in run and "| `SPEC` |  |" in run
    assert "| `--quiet`, `-q` |" in gen.table(commands[()])
    assert "| `--data`, `-d` (repeatable) (required) |" in gen.table(commands[("retune",)])


def test_every_usage_line_names_its_arguments_as_cli_md_does(cli):
    """`tuneops show --help` said "Usage: tuneops show [OPTIONS] {study}" (typer 0.2x's style)
    where cli.md and the help texts say STUDY; every usage line now says what cli.md says."""
    documented = {
        tuple(line.split("[OPTIONS]")[0].split()[1:]): line
        for line in CLI_MD.read_text().splitlines()
        if line.startswith("tuneops ") and line.endswith("[OPTIONS]")
    }
    for path in gen.commands():
        if not path:
            continue
        code, out, err = cli(*path, "--help")
        assert code == 0, err
        usage = out.splitlines()[0].split("[OPTIONS]", 1)[1].split()
        (line,) = [v for k, v in documented.items() if k[: len(path)] == path]
        words = line.split("[OPTIONS]")[0].split()[1 + len(path) :]
        # the arguments: words that are not an option nor the value after one (--data FILE)
        arguments = [
            w
            for i, w in enumerate(words)
            if not w.startswith("--") and not (i and words[i - 1].startswith("--"))
        ]
        assert usage == arguments, (path, out.splitlines()[0], line)
        assert not any("{" in w or w != w.upper() for w in usage), out.splitlines()[0]


# A command line in prose or a code block: `tuneops`, its command words, then what follows up to
# the end of the code span, a table cell or a shell construct (`$(python -c ...)`, `(...)`).
_COMMAND_LINE = re.compile(r"(?<![\w/.-])tuneops((?: [a-z][a-z-]*)+)([^`|\n():;,$]*)")
_FLAG = re.compile(r"(?<![\w-])(--?[a-z][a-z0-9-]*)")


def unknown_options(text: str, commands: dict) -> list[str]:
    """Every ``tuneops COMMAND ... --option`` in ``text`` whose option COMMAND does not take,
    as ``line N: tuneops COMMAND --option``."""
    always = {"--help", "-h"}  # the app's own options go before the command, not after it
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in _COMMAND_LINE.finditer(line):
            words = match.group(1).split()
            path: tuple[str, ...] = ()
            for word in words:
                if not any(k[: len(path) + 1] == (*path, word) for k in commands):
                    break
                path = (*path, word)
            if path not in commands or not path:
                continue
            rest = " ".join(words[len(path) :]) + match.group(2)
            taken = gen.option_names(commands[path]) | always
            found += [
                f"line {number}: tuneops {' '.join(path)} {flag}"
                for flag in _FLAG.findall(rest)
                if flag not in taken
            ]
    return found


def test_every_command_line_in_the_docs_uses_options_its_command_takes():
    """cli.md's tables are generated, but the README, the guide and cli.md's own paragraphs
    are written by hand: an option renamed or removed stays in them unless something reads
    them. Every `tuneops COMMAND ... --option` there names an option COMMAND takes."""
    commands = gen.commands()
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    checked = 0
    for document in documents:
        text = document.read_text()
        checked += len(_COMMAND_LINE.findall(text))
        assert unknown_options(text, commands) == [], document.name
    assert checked > 100  # the docs are full of command lines: the pattern must see them


def test_the_command_line_check_sees_a_renamed_option():
    commands = gen.commands()
    assert unknown_options("run `tuneops run spec.yaml --workers 2 -w 2`", commands) == []
    # the app's --quiet goes before the command: after it, run refuses it
    assert unknown_options("tuneops run spec.yaml -q", commands) == ["line 1: tuneops run -q"]
    said = unknown_options("then\n`tuneops registry promote --versoin 3`", commands)
    assert said == ["line 2: tuneops registry promote --versoin"]
    # `tuneops kb build $(python -c ...)`: python's -c is not kb build's
    assert unknown_options('tuneops kb build $(python -c "x") --out b.json.gz', commands) == []
