"""How to serve: :class:`ServeConfig` (which model, where to listen, the token, where to log,
how often to poll, the limits on a request) and the default prediction log, :data:`DEFAULT_LOG`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tuneops._hosts import host_name, is_loopback
from tuneops.errors import UsageError

#: What importing the app or the server says when the ``serve`` extra is not installed.
NEEDS_SERVE_EXTRA = (
    "tuneops serve needs the optional packages 'starlette' and 'uvicorn', which are not "
    "installed; install them with: pip install 'tuneops[serve]'"
)

DEFAULT_LOG = "tuneops-out/predictions.jsonl"


@dataclass(frozen=True)
class ServeConfig:
    """How to serve: which model, where to listen, where to log, how often to poll."""

    model: str | None = None
    storage: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    # out of the repr: a config printed in a notebook, a log or a test failure shows no secret
    token: str | None = field(default=None, repr=False)
    log: str | None = DEFAULT_LOG
    log_rows: bool = True
    poll_s: float = 2.0
    # One request is predicted at a time (in the model thread): a huge one holds every other
    # request for as long as it takes, so its size is bounded (413 beyond).
    max_rows: int = 10_000
    max_body_mb: float = 16.0
    # Host names a request may be addressed to (the Host header), besides the loopback names;
    # None: the loopback names alone when bound to loopback (a web page whose name was rebound
    # to 127.0.0.1 is refused), any name otherwise.
    allowed_hosts: tuple[str, ...] | None = None
    # A request's headers must arrive within this many seconds of its connection (or of the
    # previous answer on a kept-alive one), and then its whole body within as many (408
    # beyond): a client that trickled its headers or its body, or stopped, held its connection
    # open forever (uvicorn bounds neither).
    read_timeout_s: float = 30.0
    # Connections open at once, at most (uvicorn's limit_concurrency: 503 beyond); None: 10,000,
    # or the open-file limit less 64 when lower. Without a bound, idle or slow clients took
    # file descriptors until the server could open no file (its registry, its log).
    max_connections: int | None = None
    # Serve past loopback without a token, on purpose (--no-auth): refused otherwise, as
    # anyone who reaches the address could post the labels live monitoring decides on.
    no_auth: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UsageError(f"port (--port): expected 0-65535, received {self.port}.")
        if not (isinstance(self.max_rows, int) and self.max_rows >= 1):
            raise UsageError(
                f"max_rows (--max-rows): expected an integer >= 1, received {self.max_rows!r}."
            )
        if not self.max_body_mb > 0:
            raise UsageError(
                f"max_body_mb (--max-body-mb): expected a size > 0, received "
                f"{self.max_body_mb!r}."
            )
        if not self.poll_s > 0:
            raise UsageError(f"poll_s (--poll): expected seconds > 0, received {self.poll_s}.")
        if not (self.read_timeout_s > 0 and math.isfinite(self.read_timeout_s)):
            raise UsageError(
                "read_timeout_s (--read-timeout): expected a finite number of seconds > 0, "
                f"received {self.read_timeout_s!r}."
            )
        if self.max_connections is not None and not (
            isinstance(self.max_connections, int) and self.max_connections >= 1
        ):
            raise UsageError(
                "max_connections (--max-connections): expected an integer >= 1, received "
                f"{self.max_connections!r}."
            )
        for name in self.allowed_hosts or ():
            if not name.strip() or host_name(name) != name.strip().lower().strip("[]"):
                raise UsageError(
                    f"allowed_hosts (--allow-host): expected a host name without a port (the "
                    "Host header's "
                    f"name is compared, whatever its port), received {name!r}."
                )
        if self.token is not None and not self.token.strip():
            raise UsageError(
                "token (--token or $TUNEOPS_SERVE_TOKEN): expected a non-empty token, "
                f"received {'an empty one' if not self.token else 'only whitespace'}; set it, "
                "or leave both out to serve without one."
            )
        if self.no_auth and self.token is not None:
            raise UsageError(
                "token, no_auth (--token, --token-file or $TUNEOPS_SERVE_TOKEN, --no-auth): "
                "expected one of them, received both; drop --no-auth to require the token, or "
                "unset the token to serve without one."
            )
        if not is_loopback(self.host) and self.token is None and not self.no_auth:
            # A warning scrolled past in a service's log while anyone on the network could
            # post the labels `tuneops monitor --live` promotes, withdraws and rolls back on.
            raise UsageError(
                f"host (--host): {self.host} is reachable from other machines, and no token was "
                "given; anyone who reaches it could query the model and post the labels `tuneops "
                "monitor --live` promotes, withdraws and rolls back on. Set $TUNEOPS_SERVE_TOKEN "
                "(or --token-file FILE), bind to 127.0.0.1 behind a proxy that authenticates, "
                "or pass --no-auth to serve without a token on purpose."
            )
