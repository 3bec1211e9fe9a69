"""``tuneops serve``: the registry's champion behind HTTP, with a shadow or canary challenger.

An ASGI app (Starlette) on uvicorn. Endpoints:

* ``POST /predict`` - a JSON list of records, one record, or ``{"rows": [...], "request_id":
  ..., "key": ...}`` (``X-Request-ID`` / ``X-Request-Key`` headers work too; any other key
  beside ``rows`` is refused, as a misspelt ``requestId`` would be dropped). Answers
  ``{"request_id", "version", "predictions"}``. A request id names one request: without one the
  server makes a new one (a UUID), and one this server has answered (of the last 100,000) or is
  answering is refused with 409, nothing predicted, as a label could not say which request it
  is the truth of.
* ``POST /label`` - ``{"request_id": ..., "label": ...}`` or ``{"labels": {id: label}}``: the
  truth, joined to the prediction later by request id (:mod:`tuneops.ops.predlog`), if the
  prediction was answered before the label was recorded. Answers ``{"labelled", "n_unknown"}``
  (and ``unknown_ids``, ``note``): how many posted ids this server did not answer since it
  started (of the last 100,000 it answered); their labels are logged all the same.
* ``GET /health`` - the versions served, the refused ones and why; no token needed.
* ``GET /metrics`` - Prometheus text format: requests by version, role and outcome, a latency
  histogram per version, the champion version, model switches.

The challenger comes from the registry (:meth:`Registry.set_challenger`): in ``shadow`` mode it
scores every request after the answer was sent (its prediction is logged, never returned); in
``canary`` mode it answers ``share`` of the requests, chosen by a hash of the request key, so one
client keeps one model (without a key, the request id: a random split).

Every request is appended to the prediction log (latency, version, role, predictions, the
shadow's answer and, unless ``log_rows=False``, the input rows), which ``tuneops monitor --live``
reads (:mod:`tuneops.ops.live`).

Trust: a version is served only if :meth:`Registry.load_model` loads it, which checks the
artifact's sha256 against the registry; any exception there means the version is refused (the
current model keeps serving, and ``/health`` says why). A thread polls the registry every
``poll_s`` seconds and, when the champion or the challenger changed (``promote``, ``rollback``,
a live decision from another process), loads the new model first and then swaps one reference:
requests in flight finish on the model they started with, none is dropped.

Binds to 127.0.0.1 unless told otherwise; past loopback only with a ``token`` (or
``no_auth=True``, on purpose). With ``token`` every endpoint but ``/health`` needs
``Authorization: Bearer <token>``. ``POST`` bodies must be sent as ``application/json``,
uncompressed (415 otherwise), and on loopback only requests addressed to a loopback name are
answered (421): a web page in a browser on this machine can neither post to the server nor,
by rebinding its name to 127.0.0.1, read from it. A request's headers, then its body, must
arrive within ``read_timeout_s`` each (408), and at most ``max_connections`` are open at once
(503, uvicorn's plain text, as its 400 for malformed HTTP). Every error of the app is JSON,
``{"error": ..., "request_id": ...}``, 404 and 405 included.

One module per job:

* :mod:`~tuneops.ops.serve.config` - :class:`ServeConfig`: which model, where to listen, the
  token, the log, the limits;
* :mod:`~tuneops.ops.serve.models` - a loaded version and the categories it knows, what is
  served (the champion, a shadow or canary challenger), the canary's buckets;
* :mod:`~tuneops.ops.serve.requests` - a request's JSON read and checked (its 4xx answers),
  the request ids answered;
* :mod:`~tuneops.ops.serve.predict` - a served model called: its input, its predictions, a
  shadow's, the warm-up;
* :mod:`~tuneops.ops.serve.metrics` - ``GET /metrics`` in Prometheus' text format;
* :mod:`~tuneops.ops.serve.app` - the ASGI app: :class:`ModelServer` (its endpoints, the
  poller and the hot switch) and :func:`create_app`;
* :mod:`~tuneops.ops.serve.server` - the app on uvicorn: :func:`serve`, :func:`start_server`,
  the listening socket, the deadline for a request's headers, the connection limit.

Example::

    >>> running = start_server("iris", log="predictions.jsonl")   # doctest: +SKIP
    >>> httpx.post(running.url + "/predict", json=[{...}]).json()  # doctest: +SKIP
    >>> running.stop()                                            # doctest: +SKIP
"""

from __future__ import annotations

from tuneops.ops.serve.app import ModelServer, create_app
from tuneops.ops.serve.config import DEFAULT_LOG, ServeConfig
from tuneops.ops.serve.models import canary_bucket
from tuneops.ops.serve.server import RunningServer, serve, start_server

__all__ = [
    "ServeConfig",
    "ModelServer",
    "RunningServer",
    "create_app",
    "serve",
    "start_server",
    "canary_bucket",
    "DEFAULT_LOG",
]
