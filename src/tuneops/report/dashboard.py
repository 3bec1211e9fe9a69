"""optuna-dashboard on a study's storage (the optional extra ``dashboard``).

optuna-dashboard has no authentication, so it binds to loopback unless told otherwise, and
its API can delete and rename studies (the model registry is a study too). Guarded here: read
only unless ``allow_writes``, and on loopback only requests addressed to a loopback name are
answered (a web page whose name was rebound to 127.0.0.1 names its own host).
"""

from __future__ import annotations

import errno
import json
import socket
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tuneops._hosts import host_name, is_loopback, url
from tuneops._study import load_study
from tuneops.errors import UsageError, require
from tuneops.storage import get_storage

__all__ = ["Dashboard", "start_dashboard"]

LOOPBACK = "127.0.0.1"
_READING = ("GET", "HEAD", "OPTIONS")


def _guarded(app: Any, *, loopback: bool, allow_writes: bool) -> Any:
    """``app`` answering only reads (unless ``allow_writes``) and, on loopback, only requests
    addressed to a loopback name."""

    def refuse(start_response: Any, status: str, message: str) -> list[bytes]:
        body = json.dumps({"reason": message}).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        if loopback:
            host = environ.get("HTTP_HOST", "")
            if not is_loopback(host_name(host)):
                return refuse(
                    start_response,
                    "421 Misdirected Request",
                    f"this dashboard answers requests addressed to 127.0.0.1, ::1 or localhost, "
                    f"received Host {host[:60]!r}",
                )
        if not allow_writes and environ.get("REQUEST_METHOD", "GET") not in _READING:
            return refuse(
                start_response,
                "403 Forbidden",
                "tuneops dashboard is read-only (its API can delete studies, the model "
                "registry among them); start it with --allow-writes to edit notes or studies",
            )
        return app(environ, start_response)

    return guarded


class _IPv6Server(WSGIServer):
    """wsgiref's server on an IPv6 address (``WSGIServer`` binds AF_INET sockets only)."""

    address_family = socket.AF_INET6


def _server_class(host: str) -> type[WSGIServer]:
    """The WSGI server class that can bind ``host``: an IPv6 address (``::1``) needs an
    AF_INET6 socket; a host name or an IPv4 address, wsgiref's own."""
    return _IPv6Server if ":" in host else WSGIServer


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
    allow_writes: bool = False,
) -> Dashboard:
    """Bind optuna-dashboard to ``host:port`` on the storage (``port=0``: a free port), read
    only unless ``allow_writes`` (its API deletes and renames studies).

    The socket is bound on return; call :meth:`Dashboard.serve_forever` to answer requests.

    Raises:
        MissingExtra: optuna-dashboard is not installed.
        StudyNotFound: ``study`` is not in the storage.
        UsageError: the port cannot be bound.
    """
    require("optuna_dashboard", "dashboard", "tuneops dashboard")
    if host.startswith("[") and host.endswith("]"):  # [::1], as a URL writes it
        host = host[1:-1]

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
        app = _guarded(wsgi(storage), loopback=is_loopback(host), allow_writes=allow_writes)
        server = make_server(
            host, port, app, server_class=_server_class(host), handler_class=QuietHandler
        )
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise UsageError(
                f"port (--port): cannot listen on {host}:{port} ({exc.strerror or exc}); pick "
                "another port, or 0 for any free one."
            ) from exc
        raise UsageError(  # a name that does not resolve, an address not on this machine
            f"host (--host): cannot listen on {host!r} ({exc.strerror or exc}); give an "
            "address of "
            "this machine, such as 127.0.0.1 or ::1 (the default is 127.0.0.1)."
        ) from exc
    bound_port = server.server_address[1]
    return Dashboard(server, host, bound_port, url(host, bound_port) + path)
