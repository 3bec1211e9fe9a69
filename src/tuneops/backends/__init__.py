"""Execution backends: where the workers of a study run.

One table, :data:`BACKENDS`, maps the spec's ``search.backend`` to a class; :func:`get_backend`
resolves a name once, at the boundary. Coordination is always through the shared storage.
"""

from __future__ import annotations

import importlib
from typing import Any

from tuneops.backends._base import Backend
from tuneops.errors import SpecError, unknown_name

__all__ = ["Backend", "BACKENDS", "get_backend"]

# name -> "module:Class" (imported on first use, so `import tuneops` never imports Ray)
BACKENDS: dict[str, str] = {
    "local": "tuneops.backends.local:LocalBackend",
    "ray": "tuneops.backends.ray:RayBackend",
}


def get_backend(name: str | Backend, **options: Any) -> Backend:
    """The backend ``name`` (``local`` or ``ray``) with its ``options`` (Ray: ``address``,
    ``resources``).

    Raises:
        SpecError: unknown name.
    """
    if isinstance(name, Backend):
        return name
    if name not in BACKENDS:
        raise SpecError(unknown_name("backend", name, BACKENDS, field="search.backend"))
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**options)
