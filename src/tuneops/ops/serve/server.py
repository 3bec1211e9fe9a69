"""Running the app on uvicorn: the listening socket, what uvicorn does not bound by itself (a
deadline for a request's headers, the connections open at once), :func:`serve` (what
``tuneops serve`` runs, until interrupted) and :func:`start_server` (in a background thread:
tests, benchmarks, notebooks).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tuneops._hosts import is_loopback, url
from tuneops.errors import MissingExtra, UsageError
from tuneops.ops.registry import Registry
from tuneops.ops.serve.app import ModelServer, create_app
from tuneops.ops.serve.config import NEEDS_SERVE_EXTRA, ServeConfig

try:
    import uvicorn
    from starlette.applications import Starlette
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtra(NEEDS_SERVE_EXTRA) from _exc

try:
    import resource  # POSIX only: the open-file limit
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

logger = logging.getLogger("tuneops.serve")


def _warn_if_exposed(config: ServeConfig) -> None:
    """Say it once more when serving past loopback without a token (``no_auth``: on purpose,
    or ServeConfig would have refused)."""
    if not is_loopback(config.host) and config.token is None:
        logger.warning(
            "serving on %s without a token (no_auth): anyone who reaches this address can "
            "query the "
            "model and post labels, which `tuneops monitor --live` promotes, withdraws and "
            "rolls back on; set $TUNEOPS_SERVE_TOKEN (or --token-file), or bind to 127.0.0.1 "
            "behind a proxy that authenticates.",
            config.host,
        )


#: The most connections served at once by default, and the files kept for the server's own
#: use (its registry, its log, its model files) below the open-file limit.
MAX_CONNECTIONS, _OWN_FILES = 10_000, 64

#: The most bytes a request's line and headers may take (431 beyond): Node's default, and
#: h11's. Neither uvicorn nor httptools bounds them: the server buffered a 200 KB header.
MAX_HEAD_BYTES = 16 * 1024


def _max_connections(config: ServeConfig) -> int:
    if config.max_connections is not None:
        return config.max_connections
    if resource is None:  # pragma: no cover - Windows
        return MAX_CONNECTIONS
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft - _OWN_FILES))


def _json_answer(status: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer with a tuneops error body (``error``, ``request_id``), closing
    the connection: what the protocol writes itself, where no app answers."""
    body = json.dumps({"error": message, "request_id": None}).encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


def _tuneops_protocol(base: type, seconds: float, max_connections: int) -> type:
    """uvicorn's HTTP protocol ``base``, with a deadline for a request's headers, a limit on
    the connections open at once, a bound on the size of a request's headers, and every answer
    the protocol writes itself in JSON.

    The deadline: ``seconds`` after the connection is made, or after the previous answer on a
    kept-alive connection, a request whose headers are not complete is answered 408 and its
    connection closed (a connection that received nothing is closed without an answer, which a
    client could read as the answer to a request it sends at that moment). Each connection has
    its own timer. uvicorn has no such timeout: its keep-alive timer is reset by every byte
    received, so a client sending a header byte every few seconds held its connection forever
    (slowloris). ASGI cannot help (the app is called once the headers are complete), hence
    this subclass.

    The limit: beyond ``max_connections`` connections open at once (or as many requests being
    answered), a request is answered 503 in JSON. uvicorn's own ``limit_concurrency`` answered
    it in plain text ("Service Unavailable"), and a request it cannot parse 400 in plain text
    ("Invalid HTTP request received."), where every error of tuneops is JSON with ``error``.

    The bound: a request whose line and headers take more than :data:`MAX_HEAD_BYTES` is
    answered 431 and its connection closed. h11 refuses a head it is still waiting for beyond
    its ``max_incomplete_event_size`` (set to the bound; uvicorn answered it as a 400);
    httptools has no bound, so the bytes of an unfinished head are counted as they arrive
    (``on_headers_complete`` ends a head, ``on_message_complete`` starts the next: both are
    httptools callbacks, never called on h11), and once past the bound the head is fed no
    further than it: 431 unless its headers ended within. A head that began in the middle of
    a read (pipelined after a body) is counted from the next read on, and h11 parses a head
    that arrived whole in one read whatever its size: a complete head's size is checked again
    before the app is called, on either parser (asyncio reads at most 256 KiB at once: what
    such a head can make the server hold before 431).

    It relies on what uvicorn's h11 and httptools protocols have in common: ``loop``,
    ``transport``, ``cycle`` (the request being answered, replaced when the next request's
    headers are complete), ``app``, ``connections``, ``tasks``, ``logger``,
    ``connection_made``, ``data_received``, ``connection_lost``, ``on_response_complete`` and
    ``send_400_response`` (tests/test_ops_serve.py runs it on whichever uvicorn picks).
    """
    timed_out = _json_answer(
        "408 Request Timeout",
        f"headers: not received within {seconds:g} s (serve --read-timeout); send a request's "
        "headers at once.",
    )
    too_large = _json_answer(
        "431 Request Header Fields Too Large",
        f"headers: the request line and headers take more than {MAX_HEAD_BYTES:,} bytes (16 "
        "KiB), the most this server reads; send smaller headers (a cookie or token that "
        "grew?).",
    )
    too_large_body = too_large.partition(b"\r\n\r\n")[2]
    busy = json.dumps(
        {
            "error": f"server busy: more than {max_connections:,} connections open or requests "
            "being answered at once (serve --max-connections); retry shortly.",
            "request_id": None,
        }
    ).encode()

    class TuneopsProtocol(base):  # type: ignore[misc,valid-type]
        _tuneops_timer: asyncio.TimerHandle | None = None
        _tuneops_received = False  # bytes since the timer was armed
        # bytes of the unfinished head counted so far (httptools), None: not counting (in a
        # body, or on h11, which bounds a head itself)
        _tuneops_head: int | None = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.app: Any = self._tuneops_limited(self.app)

        def _tuneops_limited(self, app: Any) -> Any:
            connections, tasks = self.connections, self.tasks

            async def refuse(send: Any, status: int, body: bytes, *extra: Any) -> None:
                # an answer in JSON that closes the connection
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    *extra,
                ]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})

            async def limited(scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] == "http" and (
                    len(scope["raw_path"]) + len(scope["query_string"])
                    + sum(len(name) + len(value) + 4 for name, value in scope["headers"])
                    > MAX_HEAD_BYTES
                ):
                    await refuse(send, 431, too_large_body)
                    return
                # this request's own task is among the tasks already
                if scope["type"] == "http" and (
                    len(connections) > max_connections or len(tasks) > max_connections
                ):
                    self.logger.warning("Exceeded concurrency limit.")
                    await refuse(send, 503, busy, (b"retry-after", b"1"))
                    return
                await app(scope, receive, send)

            return limited

        def send_400_response(self, msg: str) -> None:
            conn = getattr(self, "conn", None)  # h11's, refusing a head beyond the bound
            if conn is not None and len(conn.trailing_data[0]) > MAX_HEAD_BYTES:
                self._tuneops_refuse_head()
                return
            self.transport.write(
                _json_answer(
                    "400 Bad Request",
                    f"request: not valid HTTP/1.1 ({msg.rstrip('.')}); send a request line, "
                    "headers and a body as HTTP/1.1 defines them.",
                )
            )
            self.transport.close()

        def _tuneops_refuse_head(self) -> None:
            self.logger.warning("Request headers beyond %d bytes.", MAX_HEAD_BYTES)
            self.transport.write(too_large)
            self.transport.close()

        def data_received(self, data: bytes) -> None:
            self._tuneops_received = True
            head = self._tuneops_head
            while head is not None and head + len(data) > MAX_HEAD_BYTES:
                # feed what the head may still take; the rest only if the head ended within
                allowed = MAX_HEAD_BYTES - head
                self._tuneops_head = MAX_HEAD_BYTES
                super().data_received(data[:allowed])
                if self.transport.is_closing():
                    return
                if self._tuneops_head == MAX_HEAD_BYTES:
                    self._tuneops_refuse_head()
                    return
                data, head = data[allowed:], self._tuneops_head
            if head is not None:
                self._tuneops_head = head + len(data)
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._tuneops_head = None
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._tuneops_head = 0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if hasattr(base, "on_headers_complete"):  # httptools: count the first head
                self._tuneops_head = 0
            self._tuneops_arm(None)

        def on_response_complete(self) -> None:
            # the answered request: if it is still the latest when the timer fires, the next
            # one's headers did not arrive in time (read before uvicorn may start the next)
            answered = self.cycle
            super().on_response_complete()
            self._tuneops_arm(answered)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._tuneops_timer is not None:
                self._tuneops_timer.cancel()
            super().connection_lost(exc)

        def _tuneops_arm(self, answered: Any) -> None:
            if self._tuneops_timer is not None:
                self._tuneops_timer.cancel()
            self._tuneops_received = False
            self._tuneops_timer = self.loop.call_later(seconds, self._tuneops_due, answered)

        def _tuneops_due(self, answered: Any) -> None:
            # no request since, and none being answered (httptools makes a pipelined request
            # the cycle as soon as its headers are in, before the one ahead is answered)
            idle = self.cycle is None or self.cycle.response_complete
            if self.cycle is answered and idle and not self.transport.is_closing():
                if self._tuneops_received:
                    self.transport.write(timed_out)
                self.transport.close()

    return TuneopsProtocol


def _uvicorn_config(app: Starlette, config: ServeConfig) -> uvicorn.Config:
    """uvicorn's settings: its 5 s for an idle keep-alive connection (its default, said here as
    it is relied on), no WebSocket (this server has no such endpoint: an upgrade request is
    answered as plain HTTP, by the app), and its HTTP protocol (httptools when installed, else
    h11) with a deadline for the headers and the limit on connections open at once
    (:func:`_tuneops_protocol`: uvicorn's own limit answers in plain text);
    :meth:`ModelServer._body` has the deadline for the body."""
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        limit_concurrency=None,
        timeout_keep_alive=5,
        ws="none",
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        http=_tuneops_protocol(
            AutoHTTPProtocol, config.read_timeout_s, _max_connections(config)
        ),
    )


def _socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this. Without it, a socket handed to uvicorn answers a
    # keep-alive client 40 ms late (Nagle's algorithm meets the client's delayed ACK): measured
    # 45 ms per GET /health instead of 2 ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"host, port (--host, --port): cannot listen on {host}:{port}: {exc}; choose a "
            "free port."
        ) from None
    return sock


def _bound_app(
    config: ServeConfig, registry: Registry | None
) -> tuple[socket.socket, Starlette, ModelServer]:
    """The listening socket, then the app: a taken port is refused before the champion is
    loaded and the log is opened (a server that could not start left an empty prediction log
    behind)."""
    sock = _socket(config.host, config.port)
    try:
        app, server = create_app(config, registry)
    except BaseException:
        sock.close()
        raise
    _warn_if_exposed(config)
    return sock, app, server


def serve(
    config: ServeConfig,
    registry: Registry | None = None,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM, handled by uvicorn). What ``tuneops serve`` runs.

    ``on_ready(url)`` is called once the champion is loaded and verified and the address is
    bound: what it announces is then true.

    Raises:
        UsageError: see :func:`create_app`; the address is taken.
    """
    sock, app, server = _bound_app(config, registry)
    if on_ready is not None:
        on_ready(url(config.host, sock.getsockname()[1]))
    uvicorn_server = uvicorn.Server(_uvicorn_config(app, config))
    try:
        uvicorn_server.run(sockets=[sock])
    finally:
        server.close()
        sock.close()


@dataclass
class RunningServer:
    """A server running in a background thread (tests, benchmarks, notebooks)."""

    url: str
    server: ModelServer
    _uvicorn: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _socket: socket.socket = field(repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(timeout)
        self.server.close()
        self._socket.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    config: ServeConfig, registry: Registry | None = None, *, timeout: float = 20.0
) -> RunningServer:
    """Start serving in a background thread on ``config.port`` (0: a free port); returns when
    the server accepts connections.

    Raises:
        UsageError: see :func:`serve`. RuntimeError: the server did not start within ``timeout``.
    """
    sock, app, server = _bound_app(config, registry)
    port = sock.getsockname()[1]
    uvicorn_server = uvicorn.Server(_uvicorn_config(app, config))
    thread = threading.Thread(
        target=uvicorn_server.run, kwargs={"sockets": [sock]}, name="tuneops-serve", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not uvicorn_server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            uvicorn_server.should_exit = True
            server.close()
            sock.close()
            raise RuntimeError(
                f"the server on {config.host}:{port} did not start within {timeout:g} s."
            )
        time.sleep(0.01)
    return RunningServer(url(config.host, port), server, uvicorn_server, thread, sock)
