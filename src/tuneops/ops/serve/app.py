"""The ASGI app (Starlette): :class:`ModelServer`, the state behind it (the registry, the loaded
models and their hot switch, the prediction log, the metrics) and its endpoints (``/predict``,
``/label``, ``/health``, ``/metrics``); :func:`create_app` for any ASGI server.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from tuneops._hosts import host_name, is_loopback
from tuneops.errors import MissingExtra, UsageError
from tuneops.families._preprocess import ServingPipeline
from tuneops.ops.categories import category_schema, is_missing, is_number
from tuneops.ops.monitor import dropped_columns
from tuneops.ops.predlog import PredictionLog, is_label, label_shape_problem
from tuneops.ops.registry import Registry
from tuneops.ops.serve.config import NEEDS_SERVE_EXTRA, ServeConfig
from tuneops.ops.serve.metrics import _Metrics
from tuneops.ops.serve.models import (
    _Loaded,
    _Routing,
    _takes_records,
    _without_ignored,
    canary_bucket,
)
from tuneops.ops.serve.predict import _answer, _shadow_answer, _warm_up
from tuneops.ops.serve.requests import (
    _AnsweredIds,
    _BadRequest,
    _clip,
    _identifier,
    _not_a_class,
    _parse,
    _received,
    _rows,
    _short,
)

try:
    import anyio  # Starlette's own dependency
    import anyio.to_thread
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtra(NEEDS_SERVE_EXTRA) from _exc

logger = logging.getLogger("tuneops.serve")


# -- the server -----------------------------------------------------------------------------------
class ModelServer:
    """The state behind the app: the registry, the loaded models, the log and the metrics.

    Thread-safety: requests run on the event loop and read :attr:`routing` once each; their
    predicts run one at a time in a model thread (:meth:`_in_worker`), so a model is never
    called from two threads at once. The poller thread builds a new routing and assigns it in
    one step (a reference assignment is atomic in CPython), so a request never sees half a
    switch.
    """

    def __init__(self, config: ServeConfig, registry: Registry | None = None):
        self.config = config
        self.registry = registry or Registry.open(config.model, config.storage)
        self.metrics = _Metrics()
        self.answered = _AnsweredIds()
        self._in_flight: set[str] = set()  # ids of requests being answered (event loop only)
        self.refused: dict[int, str] = {}
        self._cache: dict[int, _Loaded] = {}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._limiter: Any = None  # anyio.CapacityLimiter(1): one predict at a time
        # Host names answered besides the loopback ones; None: any (bound elsewhere, no list)
        self._allowed_hosts: frozenset[str] | None = (
            frozenset(h.lower() for h in config.allowed_hosts)
            if config.allowed_hosts
            else frozenset()
            if is_loopback(config.host)
            else None
        )
        self.log: PredictionLog | None = None
        champion = self.registry.require_champion()
        loaded = self._load(champion)
        if loaded is None:
            raise UsageError(
                f"refusing to serve model {self.registry.name!r}: its champion, version "
                f"{champion}, "
                f"cannot be loaded and verified: {self.refused[champion]}"
            )
        self.log = PredictionLog(config.log) if config.log else None  # once there is a model
        self.routing = _Routing(loaded)
        self._apply(self._desired())

    # -- models -----------------------------------------------------------------------------
    def _load(self, version: int) -> _Loaded | None:
        if version in self._cache:
            return self._cache[version]
        try:
            record = self.registry.version(version)
            model, metadata = self.registry.load_model(version)
            features = tuple(
                str(f) for f in (record.get("features") or metadata.get("features") or ())
            )
            if not features:
                raise UsageError("the version records no feature names")
            categorical = set(record.get("categorical") or ())
        except Exception as exc:  # noqa: BLE001 - any failure to load or verify means: do not serve it
            if self.refused.get(version) != str(exc):
                logger.error(
                    "refusing to serve version %s of %r: %s", version, self.registry.name, exc
                )
            self.refused[version] = str(exc)
            return None
        self.refused.pop(version, None)
        if type(model) is Pipeline:  # saved before tuneops' own: served at its measured cost
            model = ServingPipeline(**model.get_params(deep=False))
        profile = (record.get("profile") or {}).get("features") or {}
        kinds, categories = category_schema(
            model, [f for f in features if f in categorical], profile
        )
        loaded = _Loaded(
            version,
            model,
            features,
            frozenset(f for f in features if f not in categorical),
            pd.Index(features),
            _takes_records(model, features),
            frozenset(dropped_columns(record)) - set(features),
            kinds,
            categories,
        )
        _warm_up(loaded, profile)
        self._cache[version] = loaded
        self._warn_if_ungated(version)
        return loaded

    def _warn_if_ungated(self, version: int) -> None:
        """Say so when version ``version``, about to be served, has no passed staging-gate
        verdict: it was forced past a failed one (``--force``), or never verified
        (``deploy --no-verify``, a promotion by hand or by a re-tuning)."""
        try:
            gate = self.registry.gate(version)
            made = [
                e
                for e in self.registry.events()
                if e["kind"] in ("promote", "challenger") and e.get("version") == version
            ]
        except Exception:  # noqa: BLE001 - a storage hiccup: the model is served all the same
            return
        if gate["verdict"] == "pass":
            return
        if gate["verdict"] is None:
            why = "no `tuneops verify` verdict is recorded for it"
            if made:  # how it came to be served: deploy --no-verify, by hand, a re-tuning
                how = "promoted" if made[-1]["kind"] == "promote" else "set as challenger"
                why += f" ({how}: {made[-1].get('reason')})"
        else:
            why = f"its latest staging-gate verdict is a fail ({gate['time']})"
            if gate["forced"]:
                last = gate["forced"][-1]
                role = "the champion" if last["kind"] == "promote" else "the canary challenger"
                why += f", and it was made {role} past it at {last['time']} ({last['reason']})"
        logger.warning(
            "serving version %s of %r without a passed staging gate: %s; `tuneops verify %s "
            "--model %s` judges it.",
            version,
            self.registry.name,
            why,
            version,
            self.registry.name,
        )

    def _desired(self) -> tuple[int, int | None, str | None, float]:
        champion = self.registry.require_champion()
        challenger = self.registry.challenger()
        if challenger is None or challenger["version"] == champion:
            return (champion, None, None, 0.0)
        return (
            champion,
            int(challenger["version"]),
            challenger["mode"],
            float(challenger.get("share", 0.0)),
        )

    def _apply(self, desired: tuple[int, int | None, str | None, float]) -> bool:
        """Load what ``desired`` names and swap the routing; returns whether it changed."""
        if desired == self.routing.key:
            return False
        champion_v, challenger_v, mode, share = desired
        champion = self._load(champion_v) or self.routing.champion  # refused: the current one stays
        challenger = self._load(challenger_v) if challenger_v is not None else None
        routing = _Routing(
            champion, challenger, mode if challenger else None, share if challenger else 0.0
        )
        if routing.key == self.routing.key:
            return False
        previous, self.routing = self.routing, routing
        keep = {routing.champion.version} | (
            {routing.challenger.version} if routing.challenger else set()
        )
        self._cache = {v: m for v, m in self._cache.items() if v in keep}
        with self.metrics._lock:
            self.metrics.switches += 1
        logger.info("serving %r: %s -> %s", self.registry.name, previous.key, routing.key)
        return True

    def poll_once(self) -> bool:
        """Read the registry and switch if the champion or challenger changed."""
        try:
            return self._apply(self._desired())
        except Exception as exc:  # noqa: BLE001 - a storage hiccup must not stop serving
            logger.warning(
                "polling the registry of %r failed (serving on): %s", self.registry.name, exc
            )
            return False

    def _poll(self) -> None:
        while not self._stop.wait(self.config.poll_s):
            self.poll_once()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, name="tuneops-serve-poller", daemon=True)
        self._poller.start()
        try:
            yield
        finally:
            self._stop.set()
            self._poller.join(timeout=10)

    def close(self) -> None:
        self._stop.set()
        if self.log is not None:
            self.log.close()

    # -- endpoints ----------------------------------------------------------------------------
    def _authorized(self, request: Request) -> bool:
        if self.config.token is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # Both sides without surrounding whitespace: a header's value is read without it, and
        # a token from a secret file keeps its newline ("abc\n" refused every client)
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.config.token.strip().encode()
        )

    def _refused(
        self, request: Request, *, body: bool = False, auth: bool = True
    ) -> Response | None:
        """Why a request is refused before anything else is read, or None.

        A browser page on another site may send only form or plain-text bodies without asking
        first (a CORS preflight, which this server never grants): requiring JSON keeps such a
        page from posting predictions or labels through a visitor's browser. A page whose name
        was rebound to 127.0.0.1 (DNS rebinding) is the same origin as this server, but names
        its own host: on loopback only loopback names are accepted (``allowed_hosts``).
        """
        allowed = self._allowed_hosts
        if allowed is not None:
            host = request.headers.get("host", "")
            name = host_name(host)
            if name not in allowed and not is_loopback(name):
                names = ", ".join(["localhost", "127.0.0.1", "::1", *sorted(allowed)])
                return self._error(
                    421,
                    f"Host: this server answers requests addressed to {names}, received "
                    f"{_short(host)}; start it with --allow-host NAME to accept another name "
                    "(a proxy's).",
                )
        if auth and not self._authorized(request):
            return self._error(401, "missing or wrong bearer token (Authorization: Bearer TOKEN).")
        if body:
            kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
            if kind != "application/json" and not kind.endswith("+json"):
                return self._error(
                    415,
                    f"Content-Type: expected application/json, received {_short(kind or 'none')}; "
                    "send the header (curl: -H 'Content-Type: application/json').",
                )
            encoding = request.headers.get("content-encoding", "").strip().lower()
            if encoding not in ("", "identity"):
                # a gzip body was read as JSON and refused as unparsable (400), which hid why
                return self._error(
                    415,
                    f"Content-Encoding: this server reads plain JSON bodies, received one "
                    f"encoded as {_short(encoding)}; send the body uncompressed, without a "
                    "Content-Encoding header.",
                )
        return None

    @staticmethod
    def _error(
        status: int, message: str, request_id: str | None = None, *, close: bool = False
    ) -> JSONResponse:
        return JSONResponse(
            {"error": message, "request_id": request_id},
            status_code=status,
            headers={"Connection": "close"} if close else None,
        )

    async def predict(self, request: Request) -> Response:
        start, arrived = time.perf_counter(), time.time()  # t + latency_ms: when answered
        refused = self._refused(request, body=True)
        if refused is not None:
            self.metrics.observe(
                None, "none", "unauthorized" if refused.status_code == 401 else "bad_request", None
            )
            return refused
        routing = self.routing
        try:
            payload = _parse(await self._body(request))
            rows, request_id, key = _rows(payload)
            request_id = request_id or _identifier(
                request.headers.get("x-request-id"), "X-Request-ID"
            )
            key = key or _identifier(request.headers.get("x-request-key"), "X-Request-Key")
            if len(rows) > self.config.max_rows:
                raise _BadRequest(
                    413,
                    f"rows: at most {self.config.max_rows} per request (serve --max-rows), "
                    f"received {len(rows)}; send them in several requests, or score a file "
                    "offline with the model.joblib artifact.",
                )
        except _BadRequest as exc:
            self.metrics.observe(None, "none", "bad_request", None)
            return self._error(exc.status, str(exc), close=exc.close)
        sent = request_id
        if sent and (sent in self._in_flight or sent in self.answered):
            # A second request under one id: its label could not say which request it is the
            # truth of (predlog joins it to neither), so it is refused, not answered.
            self.metrics.observe(None, "none", "bad_request", None)
            return self._error(
                409,
                f"request_id: {_short(sent)} was already answered by this server (or is being "
                "answered); a request id names one request, and its label joins that request "
                "by it. Send a new id for a new request, or none (the server makes one). "
                "Nothing was predicted.",
                sent,
            )
        request_id = sent or uuid.uuid4().hex
        self._in_flight.add(request_id)  # from here to its answer (or failure): no other under it
        try:
            canary = (
                routing.mode == "canary"
                and routing.challenger is not None
                and canary_bucket(key or request_id) < routing.share
            )
            answering = routing.challenger if canary and routing.challenger else routing.champion
            role = "challenger" if canary else "champion"
            record: dict[str, Any] = {
                "kind": "prediction",
                "id": request_id,
                "t": arrived,
                # several models' servers may share a log (the default path): readers keep theirs
                "model": self.registry.name,
                "version": answering.version,
                "role": role,
                "mode": routing.mode,
            }
            if key is not None:
                record["key"] = key
            try:
                X, predictions = await self._in_worker(_answer, rows, answering)
            except _BadRequest as exc:
                self.metrics.observe(answering.version, role, "bad_request", None)
                return self._error(exc.status, str(exc), request_id)
            except Exception as exc:  # noqa: BLE001 - the model failed on this input: a 500, logged
                latency = time.perf_counter() - start
                self.metrics.observe(answering.version, role, "error", latency)
                record.update(
                    status="error",
                    error=f"{type(exc).__name__}: {exc}",
                    latency_ms=latency * 1e3,
                    n_rows=len(rows),
                )
                # The exception's text may name paths or data values: it goes to the operator (the
                # server log and the prediction log), never to the client.
                logger.error(
                    "version %s failed to predict request %r: %s",  # %r: a client's id, quoted
                    answering.version, request_id, record["error"],
                )
                where = "the server log"
                if self.log is not None:
                    self.log.append(record)
                    where = f"the prediction log (status \"error\") and {where}"
                return self._error(
                    500,
                    f"version {answering.version} failed to predict request {request_id}; the "
                    f"error is recorded in {where} under this request id.",
                    request_id,
                )
            latency = time.perf_counter() - start
            self.metrics.observe(answering.version, role, "ok", latency)
            # before the answer: its label may come at once
            self.answered.add(request_id, len(rows))
            record.update(
                status="ok", latency_ms=latency * 1e3, n_rows=len(rows), prediction=predictions
            )
            if self.config.log_rows:
                record["rows"] = _without_ignored(rows, answering)
            shadow = routing.challenger if routing.mode == "shadow" else None
            answer = json.dumps(
                {
                    "request_id": request_id,
                    "version": answering.version,
                    "predictions": predictions,
                },
                default=str,
            )
            # Shadow scoring (in the model thread) and the log write (on the event loop: the thread
            # pool's hand-off cost more CPU than the write itself) run after the answer is sent.
            task = BackgroundTask(self._after, record, shadow, rows, answering, X)
            return Response(answer, media_type="application/json", background=task)
        finally:
            self._in_flight.discard(request_id)

    async def _in_worker(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` (a predict) in the one model thread, off the event loop.

        The loop stays free to take the next requests as they arrive, start their clocks and
        answer /health, while predicts run one at a time: a request's logged latency then
        includes its wait behind the requests ahead of it, which a predict on the loop hid (8
        parallel clients saw a p95 of 186 ms where 5.4 ms was logged).
        """
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)  # made in the loop, on first use
        return await anyio.to_thread.run_sync(
            functools.partial(function, *args), limiter=self._limiter
        )

    async def _body(self, request: Request) -> bytes:
        """The request's body, refused (413) beyond ``max_body_mb`` before it is all read."""
        limit = int(self.config.max_body_mb * 1_000_000)  # MB, as --max-body-mb says (not MiB)
        too_large = _BadRequest(
            413,
            f"body: at most {self.config.max_body_mb:g} MB (serve --max-body-mb); send the rows "
            "in several requests.",
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            too_large.close = True  # the body is left unread
            raise too_large
        chunks, size = [], 0
        try:
            # One deadline for the whole body, not one per chunk: a client sending a byte a
            # second would meet any per-read timeout and still hold its request for hours.
            with anyio.fail_after(self.config.read_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        too_large.close = True
                        raise too_large
                    chunks.append(chunk)
        except TimeoutError:
            expected = f"{int(declared):,}" if declared.isdigit() else "an unknown number of"
            raise _BadRequest(
                408,
                f"body: not received within {self.config.read_timeout_s:g} s (serve "
                f"--read-timeout); received {size:,} of {expected} bytes. Send the whole body "
                "at once, or raise --read-timeout for slow links.",
                close=True,
            ) from None
        return b"".join(chunks)

    async def _after(
        self,
        record: dict[str, Any],
        shadow: _Loaded | None,
        rows: Sequence[Any],
        answering: _Loaded,
        X: Any,
    ) -> None:
        if shadow is not None:
            try:
                same_input = (
                    shadow.takes_records == answering.takes_records
                    and shadow.features == answering.features
                    and shadow.numeric == answering.numeric
                    and shadow.kinds == answering.kinds
                )
                predicted, seconds = await self._in_worker(
                    _shadow_answer, rows, shadow, X if same_input else None
                )
                record["shadow"] = {
                    "version": shadow.version,
                    "prediction": predicted,
                    "latency_ms": seconds * 1e3,
                }
                self.metrics.observe(shadow.version, "shadow", "ok", seconds)
            except Exception as exc:  # noqa: BLE001 - a failing shadow never affects the answer
                record["shadow"] = {
                    "version": shadow.version,
                    "error": f"{type(exc).__name__}: {exc}",
                }
                self.metrics.observe(shadow.version, "shadow", "error", None)
        if self.log is not None:
            try:
                self.log.append(record)
            except OSError as exc:  # a full disk must not take the endpoint down
                logger.error("prediction log %s: %s", self.config.log, exc)

    async def label(self, request: Request) -> Response:
        refused = self._refused(request, body=True)
        if refused is not None:
            return refused
        try:
            payload = _parse(await self._body(request))
        except _BadRequest as exc:
            return self._error(exc.status, str(exc), close=exc.close)
        if (
            isinstance(payload, dict)
            and "labels" in payload
            and isinstance(payload["labels"], dict)
        ):
            labels = {str(k): v for k, v in payload["labels"].items()}
            single = False
            try:
                for posted in labels:
                    _identifier(posted, "labels (a request id)")
            except _BadRequest as exc:
                return self._error(exc.status, f"{exc} Nothing was recorded.")
        elif isinstance(payload, dict) and "request_id" in payload and "label" in payload:
            try:
                request_id = _identifier(payload["request_id"], "request_id")
            except _BadRequest as exc:
                return self._error(exc.status, f"{exc} Nothing was recorded.")
            if not request_id:
                return self._error(
                    422,
                    "request_id: expected the id /predict answered with, received "
                    f"{json.dumps(payload['request_id'])}. Nothing was recorded.",
                )
            labels = {request_id: payload["label"]}
            single = True
        else:
            return self._error(
                422,
                'body: expected {"request_id": ID, "label": VALUE} or '
                '{"labels": {ID: VALUE, ...}}.',
            )

        def at(request_id: str) -> str:
            """The key of the body a label came in: ``label``, or ``labels[ID]``."""
            return "label" if single else f"labels[{_short(request_id)}]"

        if len(labels) > self.config.max_rows:
            return self._error(
                413,
                f"labels: at most {self.config.max_rows} per request (serve --max-rows), "
                f"received {len(labels)}; send them in several requests, or append them to the "
                "log offline (tuneops label).",
            )
        for request_id, value in labels.items():
            if not is_label(value):
                return self._error(
                    422,
                    f"{at(request_id)}: expected the true label (a string, number or "
                    "boolean; a list of them for a multi-row request), received "
                    f"{_received(value)}. Nothing was recorded.",
                )
        if self.log is None:
            return self._error(409, "this server keeps no prediction log (started without --log).")
        routing = self.routing
        served = [v for v in (routing.champion, routing.challenger) if v is not None]
        classes = [v.numeric_classes for v in served if v.numeric_classes is not None]
        regressor = any(getattr(v.model, "classes_", None) is None for v in served)
        # JSON true/false is a label only of a model whose classes are booleans: for classes
        # 0 and 1 true was logged and equalled class 1; a regressor's label is a quantity
        # (live r2 read true as 1.0)
        no_booleans = regressor or any(
            not all(isinstance(c, bool) for c in found) for found in classes
        )
        if classes or regressor:  # the models served answer numbers: a text label never matches
            for request_id, value in labels.items():
                words = [
                    v for v in (value if isinstance(value, list) else [value])
                    if (isinstance(v, str) and not is_number(v))
                    or (no_booleans and isinstance(v, bool))
                ]
                if words:
                    listed = (
                        ", ".join(json.dumps(c) for c in classes[0][:5])
                        + (", ..." if len(classes[0]) > 5 else "")
                        if classes
                        else ""
                    )
                    kind = (
                        "booleans" if classes and isinstance(classes[0][0], bool) else "numbers"
                    )
                    answers = (
                        f"whose classes are {kind} ({listed})"
                        if classes
                        else "a regression model that answers the measured quantity (a number)"
                    )
                    if isinstance(words[0], bool) and classes:
                        # what to send: the class it stood for (true was read as 1)
                        number = int(words[0])
                        instead = (
                            f" ({number}, not {json.dumps(words[0])})"
                            if number in classes[0]
                            else ""
                        )
                        return self._error(
                            422,
                            f"{at(request_id)}: expected one of the model's classes, "
                            f"which are numbers ({listed}), received the boolean "
                            f"{json.dumps(words[0])}; send the class as the number the model "
                            f"answers{instead}. Nothing was recorded.",
                        )
                    shown = json.dumps(words[0]) if isinstance(words[0], bool) else _short(words[0])
                    return self._error(
                        422,
                        f"{at(request_id)}: {shown} can never equal an "
                        f"answer of the model, {answers}; send the label as the model answers "
                        "it. Nothing was recorded.",
                    )
        if not regressor:
            # each class once whatever models share it: _not_a_class
            known = [c for v in served for c in v.classes or () if not is_missing(c)]
            for request_id, value in labels.items():
                odd = _not_a_class(value, known)
                if odd is not None:
                    return self._error(422, f"{at(request_id)}: {odd}")
        n_rows = self.answered.rows_of(list(labels))
        for (request_id, value), n in zip(labels.items(), n_rows, strict=True):
            # a label of the wrong shape would replace a good one and join no row
            wrong = label_shape_problem(request_id, value, n) if n else None
            if wrong is not None:
                return self._error(
                    422, f"{'label' if single else 'labels'}: {wrong}. Nothing was recorded."
                )
        unknown = [i for i, n in zip(labels, n_rows, strict=True) if not n]
        # off the loop (/health stays quick) and not in the model thread (predicts go on)
        await anyio.to_thread.run_sync(functools.partial(self._write_labels, labels))
        answer: dict[str, Any] = {"labelled": len(labels), "n_unknown": len(unknown)}
        if unknown:
            # Still written: the request may have been answered before a restart, or by another
            # replica. The join counts a label only for a prediction answered before it.
            answer["unknown_ids"] = unknown[:20]
            answer["note"] = (
                f"{len(unknown)} of the {len(labels)} request id(s) were not answered by this "
                f"server since it started (it remembers the last {self.answered.capacity:,}); "
                "their labels are logged and count only for a request answered before they "
                "were recorded (by this server before a restart, or by another replica "
                "writing this log), never for one answered later."
            )
        return JSONResponse(answer)

    def _write_labels(self, labels: Mapping[str, Any]) -> None:
        assert self.log is not None
        for request_id, value in labels.items():
            self.log.label(request_id, value)

    async def health(self, request: Request) -> Response:
        wrong_host = self._refused(request, auth=False)
        if wrong_host is not None:
            return wrong_host
        routing = self.routing
        # /health needs no token (load balancers call it), so without one it does not say why
        # a version was refused: the reasons name artifact paths and checksums.
        authorized = self._authorized(request)
        refused = {
            str(v): reason if authorized else "refused (send the token for the reason)"
            for v, reason in self.refused.items()
        }
        return JSONResponse(
            {
                "status": "ok",
                "model": self.registry.name,
                "champion": routing.champion.version,
                "challenger": routing.challenger.version if routing.challenger else None,
                "mode": routing.mode,
                "share": routing.share,
                "refused": refused,
            }
        )

    async def prometheus(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        return PlainTextResponse(
            self.metrics.render(self.routing), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def _no_route(self, request: Request, exc: Exception) -> Response:
        """404 and 405 as JSON, as every other error of this server (Starlette's are plain
        text, which a client parsing ``error`` could not read)."""
        path = _clip(request.url.path)  # echoed: at most 60 characters
        if getattr(exc, "status_code", 404) == 405:
            allowed = getattr(exc, "headers", None) or {}
            methods = allowed.get("Allow", "")
            return JSONResponse(
                {
                    "error": f"{request.method} {path}: method not allowed; {path} takes "
                    f"{methods}.",
                    "request_id": None,
                },
                status_code=405,
                headers={"Allow": methods} if methods else None,
            )
        return JSONResponse(
            {
                "error": f"{request.method} {path}: no such endpoint; this server answers "
                + ", ".join(_ROUTES)
                + ".",
                "request_id": None,
                "routes": list(_ROUTES),
            },
            status_code=404,
        )

    async def _failed(self, request: Request, exc: Exception) -> Response:
        """500 as JSON: an exception no endpoint handled (Starlette logs it and re-raises it
        after this answer; its text is not sent, it may hold what the client should not
        see)."""
        return self._error(
            500,
            f"{request.method} {_clip(request.url.path)}: the server failed "
            f"({type(exc).__name__}); its log has the details. Retry, or report it.",
            close=True,
        )

    def app(self) -> Starlette:
        endpoints = {
            "/predict": self.predict,
            "/label": self.label,
            "/health": self.health,
            "/metrics": self.prometheus,
        }
        return Starlette(
            routes=[
                Route(path, endpoints[path], methods=[method])
                for method, _, path in (r.partition(" ") for r in _ROUTES)
            ],
            # an exception no endpoint handled: Starlette's answer was plain text
            exception_handlers={404: self._no_route, 405: self._no_route, 500: self._failed},
            lifespan=self.lifespan,
        )


#: The endpoints, as 404 lists them.
_ROUTES = ("POST /predict", "POST /label", "GET /health", "GET /metrics")


def create_app(
    config: ServeConfig, registry: Registry | None = None
) -> tuple[Starlette, ModelServer]:
    """The ASGI app and its state, for any ASGI server (uvicorn, hypercorn, a test client).

    Raises:
        UsageError: no such model, no champion, or the champion's artifact fails verification.
    """
    server = ModelServer(config, registry)
    return server.app(), server
