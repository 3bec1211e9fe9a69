"""Tiny real models registered through the registry API, for the serving and live tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tuneops.export import save_model
from tuneops.ops.registry import Registry, sha256_file

FEATURES = list(load_iris().feature_names)  # the names `sklearn:iris` gives, so specs find them


def iris() -> tuple[pd.DataFrame, pd.Series]:
    data = load_iris()
    return pd.DataFrame(data.data, columns=FEATURES), pd.Series(data.target, name="target")


def logistic(C: float = 1.0) -> Any:
    X, y = iris()
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500)).fit(X, y)


def register(
    registry: Registry,
    model: Any,
    out: Path,
    *,
    promote: bool = False,
    spec: dict[str, Any] | None = None,
    dropped: tuple[str, ...] = (),
    task: str = "classification",
) -> int:
    """Save ``model`` as an artifact and add it as a version (promoted if asked); ``dropped``:
    columns the training data had and the data load dropped."""
    number = registry.reserve_version()
    meta = {"features": FEATURES, "task": task, "data": {"dropped": list(dropped)}}
    path = save_model(model, meta, out / f"v{number}")
    registry.add_version(
        {
            "version": number,
            "source": {"kind": "test"},
            "artifact": {"path": str(path.resolve()), "sha256": sha256_file(path)},
            "features": FEATURES,
            "categorical": [],
            "target": "target",
            "task": task,
            "spec": spec
            or {"data": {"source": "sklearn:iris"}, "objectives": [{"metric": "accuracy"}]},
            "data": {"dropped": list(dropped)},
            "metrics": {},
        }
    )
    if promote:
        registry.promote(number, "test")
    return number


def rows(n: int, start: int = 0) -> list[dict[str, float]]:
    X, _ = iris()
    return [dict(X.iloc[(start + i) % len(X)]) for i in range(n)]


class Webhook:
    """A tiny HTTP server on loopback that records the JSON bodies POSTed to it."""

    def __init__(self, status: int = 200):
        import http.server
        import json
        import threading

        received: list[dict[str, Any]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def kinds(self) -> list[str]:
        return [r["kind"] for r in self.received]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


#: Set by every :class:`Slow` predict as it starts (a server in this process: the tests' own).
SLOW_STARTED = __import__("threading").Event()


class Slow:
    """A model whose every predict takes ``seconds`` (a sleep) on top of ``model``'s."""

    def __init__(self, model: Any, seconds: float):
        self.model, self.seconds = model, seconds
        self.classes_ = model.classes_

    def predict(self, X: Any) -> Any:
        import time

        SLOW_STARTED.set()
        time.sleep(self.seconds)
        return self.model.predict(X)
