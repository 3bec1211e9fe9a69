"""Masking the password of a URL, wherever a URL may travel (messages, logs, documents).

Kept free of heavy imports: :mod:`tuneops.export` masks model metadata with it, and loading a
model must not import Optuna or SQLAlchemy.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

__all__ = ["mask_url", "mask_secrets", "mask_webhook", "shown_settings", "url_password"]

#: A webhook given as the name of an environment variable (``${ALERT_WEBHOOK}``): no secret.
WEBHOOK_FROM_ENV = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")

# Greedy to the last "@": a password may hold an unescaped "@".
_PASSWORD = re.compile(r"(://[^:/@\s]*:).*@")
# libpq and redis-py also take the password as a query parameter (?password=, ?sslpassword=).
_QUERY_PASSWORD = re.compile(
    r"([?&](?:ssl)?(?:password|passwd)=)(\"[^\"]*\"|'[^']*'|[^&#\s]*)", re.IGNORECASE
)


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs).

    >>> mask_url("postgresql://ann:s3cret@db:5432/tune")
    'postgresql://ann:***@db:5432/tune'
    >>> mask_url("redis://db:6379/0?password=s3cret&ssl=true")
    'redis://db:6379/0?password=***&ssl=true'
    """
    return _QUERY_PASSWORD.sub(r"\1***", _PASSWORD.sub(r"\1***@", url))


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` (JSON-like: dicts, lists, strings) with every URL password masked.

    The last line of defence for documents tuneops writes (results, model metadata, registry
    records): whichever way a storage URL got into them, its password does not leave.

    >>> mask_secrets({"storage": "postgresql://ann:s3cret@db/tune", "n": [1, "redis://:pw@h"]})
    {'storage': 'postgresql://ann:***@db/tune', 'n': [1, 'redis://:***@h']}
    """
    if isinstance(value, str):
        return (
            mask_url(value)
            if "://" in value and ("@" in value or "passw" in value.lower())
            else value
        )
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    if isinstance(value, tuple):
        return tuple(mask_secrets(v) for v in value)
    return value


def mask_webhook(url: str) -> str:
    """Where a webhook goes, for messages and displays: its scheme and host, not its path or
    query (a Slack-style path or a ``?token=`` is the secret), nor a ``user:password@``; a
    ``${VARIABLE}`` as it is.

    >>> mask_webhook("https://hooks.slack.com/services/T0/B0/s3cret")
    'https://hooks.slack.com/...'
    """
    if WEBHOOK_FROM_ENV.match(url):
        return url
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(a malformed URL)"
    host = parts.netloc.rpartition("@")[2]
    shown = f"{parts.scheme}://{host}" if parts.scheme else host
    return f"{shown}/..." if parts.path.strip("/") or parts.query else shown


def shown_settings(value: Any) -> Any:
    """``value`` (JSON-like) as shown or recorded beside the settings it copies: URL passwords
    masked (:func:`mask_secrets`) and every ``webhook`` as :func:`mask_webhook` shows it. Not for
    the stored settings themselves, which the alerts are delivered from.

    >>> shown_settings({"alerts": {"webhook": "https://h.example/T0/s3cret", "on": ["warn"]}})
    {'alerts': {'webhook': 'https://h.example/...', 'on': ['warn']}}
    """
    if isinstance(value, dict):
        return {
            k: mask_webhook(v) if k == "webhook" and isinstance(v, str) else shown_settings(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(shown_settings(v) for v in value)
    return mask_secrets(value)


def url_password(url: str) -> str | None:
    """The password in ``url``, before its host or as a query parameter (None without one)."""
    match = re.search(r"://[^:/@\s]*:(.*)@", url) or re.search(
        r"[?&](?:ssl)?(?:password|passwd)=(\"[^\"]*\"|'[^']*'|[^&#\s]*)", url, re.IGNORECASE
    )
    return match.group(1) if match and match.group(1) else None
