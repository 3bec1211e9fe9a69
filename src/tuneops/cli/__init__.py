"""The ``tuneops`` command line: parses arguments, calls the library, prints.

One module per command group; this module holds the app, its global options and the table of
commands, so every command the CLI has is listed here. The table names each command's module
and function as strings: a command's module (and whatever heavy library it needs: scikit-learn,
plotly, uvicorn, pandas) is imported only when that command runs or when the help lists it, so
``tuneops show`` does not pay for ``tuneops serve``'s dependencies (issue 15: 4.3 s of CPU per
invocation when every module was imported at start).

Exit codes: 0 success, 1 failure (for example no feasible trial), 2 bad input (spec, data,
storage URL, arguments, a model file whose sha256 changed), 3 ``monitor --fail-on`` tripped,
130 interrupted (SIGINT), 143 (SIGTERM); ``verify`` and ``deploy`` exit 1 when the staging
gate fails.

A closed standard output (``tuneops monitor ... | head``): the command goes on with what it
prints sent to ``/dev/null`` and exits with its own code, the outcome it decided (``--fail-on``'s
3 after a recorded assessment), not click's 1 for the broken pipe (:class:`_Stream`; the
SIGPIPE note of Python's ``signal`` documentation). A command that runs until stopped
(``monitor --live``) stops instead, between two of its steps, and exits 0
(:func:`tuneops.cli._common.reader_left`).

Interruptions: :func:`main` turns SIGTERM into an exception, as Python does SIGINT, so the
``finally`` blocks of a command stopped by ``kill``, ``timeout`` or a scheduler run (temporary
files are removed) instead of the process dying at once. A command stopped either way says so
in one line, what its interruption left (:data:`_STOPPED`), and exits 130 or 143. ``run``,
``worker`` and ``kb build`` handle the signals themselves and say more (which trials were given
back, which jobs the checkpoint kept).
"""

from __future__ import annotations

import functools
import importlib
import os
import platform
import signal
import sys
import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import Annotated, Any, TextIO, cast

import optuna
import typer
import typer.core
import typer.main

from tuneops import __version__
from tuneops.cli._common import configure, term
from tuneops.errors import IntegrityError, TuneOpsError, UsageError

__all__ = ["app", "main"]

# -h as well as --help everywhere (click passes help_option_names on to every subcommand), and
# help text printed as written: rich markup would swallow `pip install 'tuneops[report]'`.
_TYPER: dict[str, Any] = {
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}

# -- the command table: name -> (module in tuneops.cli, function), per group ---------------------
_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run"),
    "worker": ("run", "worker"),
    "show": ("study", "show"),
    "select": ("study", "select"),
    "export": ("run", "export"),
    "families": ("catalog", "families"),
    "metrics": ("catalog", "metrics"),
    "report": ("report", "report"),
    "dashboard": ("report", "dashboard"),
    "deploy": ("registry", "deploy"),
    "verify": ("verify", "verify"),
    "serve": ("serve", "serve"),
    "monitor": ("monitor", "monitor"),
    "label": ("monitor", "label"),
    "retune": ("monitor", "retune"),
    "simulate": ("monitor", "simulate"),
}
# group -> (one-line help, module whose COMMANDS maps sub-command names to functions)
_GROUPS: dict[str, tuple[str, str]] = {
    "bench": ("Compare configurations on the same spec, seeds and budget.", "bench"),
    "registry": ("Model versions, the champion, promotion and rollback.", "registry"),
    "kb": ("The knowledge base of past tuning that warm-starts new studies.", "kb"),
}


# -- interruptions ----------------------------------------------------------------------------
#: What an interrupted command left, when it is not what every other leaves (_STOPPED_DEFAULT).
#: Every file tuneops writes goes to a temporary name and is renamed when whole
#: (tuneops._files), so a stopped command never leaves half a file.
_STOPPED: dict[str, str] = {
    "serve": "tuneops serve shut down.",
    "bench pruners": (
        "bench pruners did not finish; the trials that finished are kept in the journal in its "
        "--out directory (the same command resumes); bench.json and bench.png are written "
        "once every run has finished."
    ),
    # stopped outside the simulation itself (which says more: tuneops.cli.monitor)
    "simulate": (
        "simulate did not finish; its --out directory holds a partial simulation: give another "
        "--out (or remove that one) to run it again."
    ),
}
_STOPPED_DEFAULT = (
    "{command} did not finish; no file it was writing is left half-written (tuneops writes "
    "each under a temporary name and renames it when whole), and what it had already stored "
    "is kept."
)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that ``finally`` blocks run."""

    signum = signal.SIGTERM


# Set when SIGTERM arrived: one that lands before a command runs (while its module imports
# scikit-learn, say) reaches click, which takes it for Ctrl-C ("Aborted!", exit 1 or 130).
_TERMINATED: list[int] = []


def _raise_terminated(signum: int, frame: Any) -> None:
    _TERMINATED.append(signum)
    raise _Terminated()


def _untrap_in_child() -> None:
    """In a process forked by a command (local workers, kb build's pool): SIGTERM kills again,
    as before main trapped it; such a process sets the handlers it needs itself."""
    if signal.getsignal(signal.SIGTERM) is _raise_terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_untrap_in_child)


def _interruptible(path: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (command ``path``), saying in one line that an interruption stopped it and
    what that left, then exiting 130 (SIGINT) or 143 (SIGTERM). Typer reads the parameters of
    ``function`` through the wrapper (``__wrapped__``)."""

    @functools.wraps(function)
    def command(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except KeyboardInterrupt as exc:
            # runner.Interrupted and _Terminated carry their signal; a plain one is Ctrl-C's
            signum = int(getattr(exc, "signum", signal.SIGINT))
            what = _STOPPED.get(path, _STOPPED_DEFAULT).format(command=f"tuneops {path}")
            term.warn(f"Stopped by {signal.Signals(signum).name}: {what}")
            raise typer.Exit(128 + signum) from None

    return command


class _Command(typer.core.TyperCommand):
    """typer's command whose usage line names its arguments as its help text and the CLI
    reference do, ``STUDY`` and ``[VERSION]`` (click's style): typer 0.2x writes ``{study}``."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            # by name, not class: typer 0.2x carries its own copy of click
            if param.param_type_name == "argument":
                name = (param.metavar or param.name or "").upper()
                name = name if param.required else f"[{name}]"
                pieces.append(name + ("..." if param.nargs != 1 else ""))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


def _module(name: str) -> Any:
    return importlib.import_module(f"{__name__}.{name}")


def _load(name: str) -> Any:
    """The click command for table entry ``name``, built by typer from the function it names."""
    if name in _GROUPS:
        help_text, module = _GROUPS[name]
        sub = typer.Typer(name=name, help=help_text, **_TYPER)
        for command, function in _module(module).COMMANDS.items():
            sub.command(command, cls=_Command)(_interruptible(f"{name} {command}", function))
        return typer.main.get_group(sub)
    module, function = _COMMANDS[name]
    single = typer.Typer(**_TYPER)
    single.command(name, cls=_Command)(_interruptible(name, getattr(_module(module), function)))
    return typer.main.get_command(single)


class _LazyCommands(MutableMapping[str, Any]):
    """The app's sub-commands by name, each built on first access (click reads one by name to
    run it; the help reads all of them). Keys come from the table, so the order of the help and
    typer's "did you mean" suggestions need no import."""

    def __init__(self, built: MutableMapping[str, Any]) -> None:
        self._built = dict(built)
        self._names = [*self._built, *(n for n in (*_COMMANDS, *_GROUPS) if n not in built)]

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in _COMMANDS and name not in _GROUPS:
                raise KeyError(name)
            self._built[name] = _load(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        if name not in self._names:
            self._names.append(name)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._names.remove(name)
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __len__(self) -> int:
        return len(self._names)


class _LazyGroup(typer.core.TyperGroup):
    """typer's group whose commands come from the table, loaded when used (see the module)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = _LazyCommands(self.commands)


app = typer.Typer(
    name="tuneops",
    help="Production hyperparameter tuning: spec -> multi-objective search -> selected model.\n\n"
    "Global options go before the command: tuneops --quiet run spec.yaml",
    cls=_LazyGroup,
    **_TYPER,
)


def _version(value: bool) -> None:
    if value:
        term.out.print(
            f"tuneops {__version__} (optuna {optuna.__version__}, "
            f"Python {platform.python_version()})",
            highlight=False,
        )
        raise typer.Exit(0)


@app.callback()
def _global(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_version, help="Print the version and exit."
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print only results and errors: no progress, no status lines."
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Let Optuna's INFO lines and other libraries' logs and warnings "
            "through (silenced by default).",
        ),
    ] = False,
) -> None:
    """Set up the terminal for this invocation (the app's help text comes from the Typer)."""
    configure(quiet=quiet, verbose=verbose)


# -- a reader that stops reading ---------------------------------------------------------------
class _Stream:
    """A standard stream whose reader may go away (``| head``): the first write or flush that
    meets the closed pipe points the stream's descriptor at ``/dev/null`` and the command goes
    on, so it ends with its own exit code instead of click's 1 for a ``BrokenPipeError`` (or
    Python's 120 at shutdown). The standard way for a CLI (the SIGPIPE note in Python's
    ``signal`` documentation), minus its exit: what the command decided and recorded (a
    monitor's assessment, ``--fail-on``'s 3) is what its exit code says."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        # Set when a write met the closed pipe: a command that runs until stopped (monitor
        # --live) stops then (_common.reader_left), where the others finish their work.
        self.reader_left = False

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        self.reader_left = True
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError):  # a stream without a descriptor (io.UnsupportedOperation)
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)  # also for what a child process writes to it later
        finally:
            os.close(devnull)
        try:
            self._stream.flush()  # what the reader did not take goes to /dev/null
        except BrokenPipeError:
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    """Entry point: maps tuneops errors to exit codes (2 for bad input, 1 for failures),
    SIGTERM to an exception (exit 143) and a closed standard output to nothing (the command's
    own exit code), see the module's docstring."""
    configure()  # also for errors raised before the app's callback runs
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    streams = sys.stdout, sys.stderr
    if streams[0] is not None and streams[1] is not None:  # None: no console (pythonw)
        sys.stdout, sys.stderr = (cast(TextIO, _Stream(s)) for s in streams)
    try:
        return _main(argv)
    finally:
        try:
            for stream in (sys.stdout, sys.stderr):
                if isinstance(stream, _Stream):
                    stream.flush()  # here, not at Python's exit, where a closed pipe makes it 120
        finally:
            sys.stdout, sys.stderr = streams
            if main_thread:
                # None: a handler not set from Python, which cannot be put back; the default
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _main(argv: list[str] | None) -> int:
    try:
        # Standalone mode: typer prints usage errors itself and exits 2, and turns typer.Exit
        # into SystemExit; tuneops' own errors propagate to the handlers below.
        app(args=argv, standalone_mode=True, prog_name="tuneops")
    except SystemExit as exc:
        if exc.code is None:
            return 0
        code = exc.code if isinstance(exc.code, int) else 1
        if _TERMINATED and code in (1, 130):  # stopped before the command ran: click's abort
            term.warn("Stopped by SIGTERM before the command started; nothing was done.")
            return 128 + signal.SIGTERM
        return code
    except (UsageError, IntegrityError) as exc:
        # a model file changed since it was written is bad input as a damaged journal is
        # (exit 2): the command is right, the file must be restored; `serve` said so already
        term.error(str(exc))
        return 2
    except TuneOpsError as exc:
        term.error(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
