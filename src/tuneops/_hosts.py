"""Host names of HTTP requests, for the servers tuneops runs on loopback (``serve``,
``dashboard``): which names are this machine's own.

A web page whose name was rebound to 127.0.0.1 (DNS rebinding) reaches a loopback server as
the same origin, but its requests still name its own host: only requests addressed to a
loopback name are answered. The names are judged exactly (``127.0.0.1.evil.example`` is not
loopback), addresses by :mod:`ipaddress`.
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback", "host_name", "url", "LOOPBACK_NAMES"]

LOOPBACK_NAMES = ("localhost",)


def is_loopback(name: str) -> bool:
    """Whether ``name`` (a host name or an address, IPv6 with or without brackets) is this
    machine's loopback: ``localhost``, 127.0.0.0/8 or ::1."""
    name = name.strip().lower().strip("[]")
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host of a ``Host`` header, without its port: ``[::1]:8000`` -> ``::1``."""
    header = header.strip()
    if header.startswith("["):
        return header[1:].partition("]")[0].lower()
    return header.rpartition(":")[0].lower() if header.count(":") == 1 else header.lower()


def url(host: str, port: int) -> str:
    """``http://HOST:PORT`` for a server bound to ``host``, an IPv6 address in brackets."""
    host = host.strip("[]")
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
