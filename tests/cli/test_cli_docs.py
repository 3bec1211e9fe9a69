"""docs/reference/cli.md names every command and exactly the options each one takes.

The tables are written by scripts/gen_cli_docs.py from the app itself; this test reads the same
app, so a new option, a renamed one or a new command without its docs fails here (the help
texts may differ from the table's wording: only the names are compared).
"""

from __future__ import annotations

import importlib.util

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
