"""optuna-dashboard on a study's storage (the optional extra ``dashboard``).

optuna-dashboard has no authentication, so it binds to loopback unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tuneops._study import load_study
from tuneops.errors import UsageError, require
from tuneops.storage import get_storage

__all__ = ["Dashboard", "start_dashboard"]

LOOPBACK = "127.0.0.1"


@dataclass
class Dashboard:
    """A dashboard server bound to ``host:port``; ``url`` opens the study (or the study list)."""

    server: Any
    host: str
    port: int
    url: str

    def serve_forever(self) -> None:
        try:
            self.server.serve_forever()
        finally:
            self.server.server_close()

    def shutdown(self) -> None:
        """Stop a server running ``serve_forever`` in another thread."""
        self.server.shutdown()


def start_dashboard(
    storage_url: str | None = None,
    *,
    study: str | None = None,
    host: str = LOOPBACK,
    port: int = 8080,
) -> Dashboard:
    """Bind optuna-dashboard to ``host:port`` on the storage (``port=0``: a free port).

    The socket is bound on return; call :meth:`Dashboard.serve_forever` to answer requests.

    Raises:
        MissingExtra: optuna-dashboard is not installed.
        StudyNotFound: ``study`` is not in the storage.
        UsageError: the port cannot be bound.
    """
    require("optuna_dashboard", "dashboard", "tuneops dashboard")

    from optuna_dashboard import wsgi

    path = "/dashboard"
    storage = get_storage(storage_url, must_exist=True)  # serving reads: never create a file
    if study is not None:
        load_study(study, storage_url)  # StudyNotFound lists the studies there
        path += f"/studies/{storage.get_study_id_from_name(study)}"

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # one line per request is noise
            pass

    try:
        server = make_server(
            host, port, wsgi(storage), server_class=WSGIServer, handler_class=QuietHandler
        )
    except OSError as exc:
        raise UsageError(
            f"--port: cannot listen on {host}:{port} ({exc.strerror or exc}); pick another port "
            "with --port, or --port 0 for any free one."
        ) from exc
    bound_port = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    return Dashboard(server, host, bound_port, f"http://{shown}:{bound_port}{path}")
