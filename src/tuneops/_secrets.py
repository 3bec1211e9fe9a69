"""Masking the password of a URL, wherever a URL may travel (messages, logs, documents).

Kept free of heavy imports: :mod:`tuneops.export` masks model metadata with it, and loading a
model must not import Optuna or SQLAlchemy.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["mask_url", "mask_secrets", "url_password"]

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


def url_password(url: str) -> str | None:
    """The password in ``url``, before its host or as a query parameter (None without one)."""
    match = re.search(r"://[^:/@\s]*:(.*)@", url) or re.search(
        r"[?&](?:ssl)?(?:password|passwd)=(\"[^\"]*\"|'[^']*'|[^&#\s]*)", url, re.IGNORECASE
    )
    return match.group(1) if match and match.group(1) else None
