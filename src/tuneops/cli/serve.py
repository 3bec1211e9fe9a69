"""``tuneops serve``: the registry's champion behind HTTP (an ASGI app on uvicorn).

The serving stack (starlette, uvicorn) and ``tuneops.ops`` are loaded when the command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tuneops.cli._common import ModelOpt, StorageOpt, term
from tuneops.errors import UsageError

__all__ = ["serve"]


def serve(
    model: ModelOpt = None,
    storage: StorageOpt = None,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on; loopback unless you mean to expose it: past loopback, "
            "a token is required (or --no-auth)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            help="Require 'Authorization: Bearer TOKEN' on every endpoint but /health (default: "
            "$TUNEOPS_SERVE_TOKEN, else none). Other users see a command line (ps): prefer "
            "the variable or --token-file."
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="Read the token from this file (its content, without surrounding whitespace; "
            "a mounted secret): instead of --token."
        ),
    ] = None,
    log: Annotated[
        Path, typer.Option(help="Prediction log (JSON lines) that `tuneops monitor --live` reads.")
    ] = Path("tuneops-out/predictions.jsonl"),
    poll: Annotated[
        float,
        typer.Option(
            help="Seconds between registry polls (promotion, rollback, challenger changes)."
        ),
    ] = 2.0,
    max_rows: Annotated[
        int,
        typer.Option(
            help="Rows per request at most (413 beyond): requests are predicted one at a time, "
            "so a huge one delays every other."
        ),
    ] = 10_000,
    max_body_mb: Annotated[
        float, typer.Option(help="Request body size at most, in MB (413 beyond).")
    ] = 16.0,
    read_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a request's headers may take to arrive (from the connection, or the "
            "previous answer on a kept-alive one), and then as many for its whole body (408 "
            "beyond): a client that trickles them or stops sending does not hold its "
            "connection open."
        ),
    ] = 30.0,
    max_connections: Annotated[
        int | None,
        typer.Option(
            help="Connections open at once, at most (503 beyond), so idle or slow clients "
            "cannot take every file descriptor. Default: 10,000, or the open-file limit "
            "(ulimit -n) less 64 when lower.",
            show_default=False,
        ),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="Serve past loopback (--host) without a token, on purpose: anyone who reaches "
            "the address can then query the model and post labels. Without it (or a token), a "
            "--host other than loopback is refused.",
        ),
    ] = False,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="Host name requests may be addressed to besides the loopback names (repeat "
            "for several; 421 otherwise). Default: the loopback names alone when --host is "
            "loopback (a proxy on this machine that keeps the public Host header needs its "
            "name here), any name otherwise.",
        ),
    ] = None,
) -> None:
    """Serve the champion (and a shadow or canary challenger) on POST /predict; labels on POST
    /label; GET /health; GET /metrics (Prometheus). Verified artifacts only; hot switch on
    promote/rollback without dropping requests. Bodies are plain JSON (Content-Type:
    application/json, no Content-Encoding). Stops on Ctrl-C."""
    from tuneops.ops import serve as serving

    if token is not None and token_file is not None:
        raise UsageError(
            "token (--token, --token-file): expected one of them, received both; keep "
            "--token-file (a command line is visible to other users in ps)."
        )
    if token_file is not None:
        token = _read_token(token_file)
    elif token is not None and token.strip():  # an empty one is refused below: no advice
        term.warn(
            "--token is visible to other users of this machine (ps) and in shell history; "
            "prefer $TUNEOPS_SERVE_TOKEN or --token-file."
        )
    config = serving.ServeConfig(
        model=model,
        storage=storage,
        host=host,
        port=port,
        # An empty --token (or $TUNEOPS_SERVE_TOKEN set empty, as "$UNSET" gives) is refused by
        # ServeConfig, not taken as "no token": serving open by accident is the worse mistake.
        token=token if token is not None else os.environ.get("TUNEOPS_SERVE_TOKEN"),
        log=str(log),
        poll_s=poll,
        max_rows=max_rows,
        max_body_mb=max_body_mb,
        read_timeout_s=read_timeout,
        max_connections=max_connections,
        no_auth=no_auth,
        allowed_hosts=tuple(allow_host) if allow_host else None,
    )

    def ready(url: str) -> None:
        term.info(f"Serving on {url} (log {log}); Ctrl-C stops.", highlight=False, markup=False)

    serving.serve(config, on_ready=ready)


def _read_token(path: Path) -> str:
    """The token in ``path``, without surrounding whitespace (a file ends in a newline).

    Raises:
        UsageError: the file cannot be read, or holds no token.
    """
    try:
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"token_file (--token-file): cannot read {str(path)!r}: "
            f"{getattr(exc, 'strerror', None) or exc}; give the path of a file holding the token."
        ) from None
    if not token:
        raise UsageError(
            f"token_file (--token-file): expected a token in {str(path)!r}, received an empty "
            "file; write the token into it."
        )
    mode = path.stat().st_mode & 0o777
    if hasattr(os, "getuid") and mode & 0o004:
        term.warn(
            f"--token-file {path} can be read by every user of this machine (mode {mode:04o}); "
            f"`chmod 600 {path}` keeps the token yours."
        )
    return token
