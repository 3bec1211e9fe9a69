"""What does ``tuneops serve`` add over calling the model in-process? Does a switch lose requests?

A server (``tuneops.ops.serve.serve`` in a child process, on loopback) serves a logistic
regression fitted on iris, registered through the registry API: the pipeline tuneops builds
(its Preprocessor, then the estimator), and at the end a plain scikit-learn pipeline, a model
tuneops did not build; a bounded load generator in this process (threads, ``http.client``
keep-alive connections) sends one-row requests.

1. **Added latency**, one client, per mode (champion alone, shadow challenger, canary 50%):
   the client-observed p50/p95 of ``POST /predict`` minus the p50/p95 of the bare
   ``model.predict`` on a one-row DataFrame in this process, measured in interleaved blocks
   (bare, served, bare, ...) so machine load hits both alike; and the server's CPU per request
   minus this process's CPU per bare predict, which load does not inflate the way it inflates
   wall time. Target: <= 1 ms added at p50.
2. **Throughput**: requests/s with ``--clients`` parallel clients, per mode.
3. **Switches under load**: ``--clients`` clients send requests while the champion is promoted
   and rolled back every 0.5 s; every request sent must be answered (HTTP 200).

    python benchmarks/bench_serve.py                  # 600 requests per mode and measure
    python benchmarks/bench_serve.py --quick          # 150, for a smoke run
    python benchmarks/bench_serve.py --write-doc      # also update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import child_env, command_line, render_table, stamp, write_doc_block  # noqa: E402

SECTION = "## Serving (issue 19)"


def _setup(workdir: Path) -> tuple[str, Any, list[Any]]:
    """A registry with three versions in ``workdir``; returns (storage URL, X, models).

    Versions 1 and 2 are what ``tuneops run``/``deploy`` register: the pipeline
    :func:`tuneops.families.build_pipeline` makes (tuneops' Preprocessor, then the "linear"
    family's logistic regression), at C=1 and C=0.05. Version 3 is a plain scikit-learn
    pipeline (``StandardScaler`` + ``LogisticRegression``), a model tuneops did not build: the
    server has to hand it a DataFrame.
    """
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tuneops.export import save_model
    from tuneops.families import build_pipeline, get_family
    from tuneops.ops.registry import Registry, sha256_file

    data = load_iris()
    X = pd.DataFrame(data.data, columns=data.feature_names)
    storage = str(workdir / "registry.journal")
    registry = Registry.open("iris", storage, create=True)
    candidates = [
        build_pipeline(
            get_family("linear"),
            {"C": C},
            "classification",
            0,
            numeric=tuple(X.columns),
            categorical=(),
        )
        for C in (1.0, 0.05)
    ]
    candidates.append(make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500)))
    models = []
    for candidate in candidates:
        model = candidate.fit(X, data.target)
        number = registry.reserve_version()
        path = save_model(model, {"features": list(X.columns)}, workdir / f"v{number}")
        registry.add_version(
            {
                "version": number,
                "source": {"kind": "benchmark"},
                "artifact": {"path": str(path), "sha256": sha256_file(path)},
                "features": list(X.columns),
                "categorical": [],
                "target": "target",
                "task": "classification",
                "spec": {},
                "data": {},
            }
        )
        models.append(model)
    registry.promote(1, "benchmark")
    return storage, X, models


class _Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def predict(self, row: dict[str, float], key: str) -> tuple[int, dict[str, Any]]:
        body = json.dumps({"rows": [row], "key": key})
        self.conn.request(
            "POST", "/predict", body=body, headers={"Content-Type": "application/json"}
        )
        response = self.conn.getresponse()
        return response.status, json.loads(response.read())

    def get(self, path: str) -> dict[str, Any]:
        self.conn.request("GET", path)
        return json.loads(self.conn.getresponse().read())


def _wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the server")
        time.sleep(0.05)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _added_latency(
    port: int, model: Any, X: Any, n: int, pid: int, block: int = 50
) -> dict[str, float]:
    """Interleaved blocks of bare predicts and served requests; one client.

    Wall time is what a client sees, but on a loaded machine it mostly measures waiting for a
    core; CPU time does not: the server's CPU per request against this process's CPU per bare
    predict is the cost serving adds, whatever the load.
    """
    from threadpoolctl import threadpool_limits

    client = _Client(port)
    rows = [dict(X.iloc[i % len(X)]) for i in range(n)]
    frames = [X.iloc[[i % len(X)]] for i in range(n)]
    for i in range(20):  # warm-up both paths
        client.predict(rows[i], f"k{i}")
        model.predict(frames[i])
    bare: list[float] = []
    served: list[float] = []
    bare_cpu = server_cpu = 0.0
    with threadpool_limits(limits=1):
        for start in range(0, n, block):
            c0 = time.process_time()
            for i in range(start, min(start + block, n)):
                t0 = time.perf_counter()
                model.predict(frames[i])
                bare.append(time.perf_counter() - t0)
            bare_cpu += time.process_time() - c0
            # A fresh connection per block: on a loaded machine the bare block can outlast
            # uvicorn's 5 s keep-alive timeout, which closes the idle one.
            client = _Client(port)
            client.predict(rows[start], "warm")
            c0 = _cpu_seconds(pid)
            for i in range(start, min(start + block, n)):
                t0 = time.perf_counter()
                status, _ = client.predict(rows[i], f"user-{i}")
                served.append(time.perf_counter() - t0)
                assert status == 200
            server_cpu += _cpu_seconds(pid) - c0
    b, s = np.asarray(bare) * 1e3, np.asarray(served) * 1e3
    return {
        "bare_p50": float(np.median(b)),
        "served_p50": float(np.median(s)),
        "added_p50": float(np.median(s) - np.median(b)),
        "bare_p95": float(np.percentile(b, 95)),
        "served_p95": float(np.percentile(s, 95)),
        "added_p95": float(np.percentile(s, 95) - np.percentile(b, 95)),
        "bare_cpu": bare_cpu / n * 1e3,
        "server_cpu": server_cpu / n * 1e3,
        "added_cpu": (server_cpu - bare_cpu) / n * 1e3,
    }


def _load(port: int, X: Any, clients: int, stop: threading.Event, n_max: int) -> dict[str, Any]:
    """``clients`` threads send requests until ``stop`` or ``n_max`` in all; counts and versions."""
    sent = [0] * clients
    answered = [0] * clients
    versions: set[int] = set()
    failures: list[str] = []

    def run(worker: int) -> None:
        client = _Client(port)
        i = 0
        while not stop.is_set() and sum(sent) < n_max:
            sent[worker] += 1
            try:
                status, body = client.predict(dict(X.iloc[i % len(X)]), f"w{worker}-{i}")
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
                client = _Client(port)
                continue
            if status == 200:
                answered[worker] += 1
                versions.add(int(body["version"]))
            else:
                failures.append(f"HTTP {status}: {body}")
            i += 1

    threads = [threading.Thread(target=run, args=(w,)) for w in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {
        "sent": sum(sent),
        "answered": sum(answered),
        "versions": sorted(versions),
        "failures": failures[:5],
        "n_failures": len(failures),
        "rps": sum(answered) / elapsed,
    }


def _queueing(port: int, X: Any, clients: int, n: int, log: Path) -> dict[str, float]:
    """``clients`` threads send ``n`` one-row requests at once; the client-observed latency of
    each against what the server logged for it (by request id): the share of the client's
    p50/p95 the log accounts for. A server that predicts on its event loop logs only each
    request's own predict; the wait behind the requests ahead is what clients see on top."""
    seen: dict[str, float] = {}
    lock = threading.Lock()

    def run(worker: int) -> None:
        client = _Client(port)
        for i in range(worker, n, clients):
            request_id = f"q{worker}-{i}"
            body = json.dumps({"rows": [dict(X.iloc[i % len(X)])], "request_id": request_id})
            t0 = time.perf_counter()
            client.conn.request(
                "POST", "/predict", body=body, headers={"Content-Type": "application/json"}
            )
            client.conn.getresponse().read()
            with lock:
                seen[request_id] = (time.perf_counter() - t0) * 1e3

    threads = [threading.Thread(target=run, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.5)  # the log lines are written after the answers
    from tuneops.ops.predlog import read_log

    logged = {r["id"]: float(r["latency_ms"]) for r in read_log(log).predictions if r["id"] in seen}
    ids = sorted(logged)
    client_ms = np.array([seen[i] for i in ids])
    server_ms = np.array([logged[i] for i in ids])
    return {
        "n": len(ids),
        "client_p50": float(np.quantile(client_ms, 0.5)),
        "client_p95": float(np.quantile(client_ms, 0.95)),
        "logged_p50": float(np.quantile(server_ms, 0.5)),
        "logged_p95": float(np.quantile(server_ms, 0.95)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600, help="requests per mode for latency")
    parser.add_argument("--clients", type=int, default=4, help="parallel clients for throughput")
    parser.add_argument(
        "--switch-seconds", type=float, default=6.0, help="length of the switch test"
    )
    parser.add_argument("--quick", action="store_true", help="150 requests, 2 s of switches")
    parser.add_argument("--write-doc", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.switch_seconds = 150, 2.0
    from tuneops.ops.registry import Registry

    load_start = os.getloadavg()[0]
    started = stamp()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        workdir = Path(tmp)
        storage, X, models = _setup(workdir)
        registry = Registry.open("iris", storage)
        port = _free_port()
        code = (
            "from tuneops.ops.serve import ServeConfig, serve; "
            f"serve(ServeConfig('iris', {storage!r}, port={port}, "
            f"log={str(workdir / 'log.jsonl')!r}, "
            "poll_s=0.2))"
        )
        server = subprocess.Popen(
            [sys.executable, "-c", code],
            env=child_env(),
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:

            def up() -> bool:
                try:
                    return _Client(port).get("/health")["status"] == "ok"
                except OSError:
                    return False

            try:
                _wait_for(up, 60)
            except RuntimeError:
                server.terminate()
                raise RuntimeError(
                    "the server did not start: " + server.communicate()[1].decode()[-2000:]
                ) from None
            health = lambda: _Client(port).get("/health")  # noqa: E731
            rows: list[list[Any]] = []
            throughput: list[list[Any]] = []
            for mode in ("champion only", "shadow", "canary 50%"):
                if mode == "shadow":
                    registry.set_challenger(2, "shadow")
                elif mode.startswith("canary"):
                    registry.set_challenger(2, "canary", share=0.5)
                wanted = {"champion only": None, "shadow": "shadow", "canary 50%": "canary"}[mode]
                _wait_for(lambda w=wanted: health()["mode"] == w)
                lat = _added_latency(port, models[0], X, args.requests, server.pid)
                rows.append(_latency_row(f"tuneops pipeline, {mode}", lat))
                load = _load(port, X, args.clients, threading.Event(), args.requests)
                throughput.append(
                    [mode, args.clients, load["answered"], load["rps"], load["n_failures"]]
                )
                print(
                    f"{mode}: added p50 {lat['added_p50']:.3f} ms, p95 {lat['added_p95']:.3f} ms, "
                    f"CPU {lat['added_cpu']:.3f} ms per request; "
                    f"{load['rps']:.0f} req/s with {args.clients} clients",
                    flush=True,
                )
            registry.clear_challenger("benchmark")
            _wait_for(lambda: health()["challenger"] is None)
            queue = _queueing(port, X, 2 * args.clients, args.requests, workdir / "log.jsonl")
            print(
                f"{2 * args.clients} concurrent clients: client p50 {queue['client_p50']:.2f} "
                f"ms, p95 {queue['client_p95']:.2f} ms; logged p50 {queue['logged_p50']:.2f} ms, "
                f"p95 {queue['logged_p95']:.2f} ms",
                flush=True,
            )
            stop = threading.Event()
            result: dict[str, Any] = {}
            runner = threading.Thread(
                target=lambda: result.update(_load(port, X, args.clients, stop, 10**9))
            )
            runner.start()
            switches = 0
            t_end = time.monotonic() + args.switch_seconds
            while time.monotonic() < t_end:
                time.sleep(0.5)
                if registry.champion() == 1:
                    registry.promote(2, "benchmark: switch under load")
                else:
                    registry.rollback(reason="benchmark: switch under load")
                switches += 1
            time.sleep(0.5)
            stop.set()
            runner.join()
            metrics_switches = _switch_count(port)
            # A model tuneops did not build, served the generic way (a DataFrame per request).
            registry.promote(3, "benchmark: a plain scikit-learn pipeline")
            _wait_for(lambda: health()["champion"] == 3)
            # the server predicts through its steps (tuneops.families._preprocess.
            # ServingPipeline), without Pipeline.predict's checks: the bare baseline does too
            from tuneops.families._preprocess import ServingPipeline

            as_served = ServingPipeline(**models[2].get_params(deep=False))
            lat = _added_latency(port, as_served, X, args.requests, server.pid)
            rows.append(_latency_row("plain scikit-learn pipeline, champion only", lat))
            print(f"plain scikit-learn pipeline: added CPU {lat['added_cpu']:.3f} ms", flush=True)
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        lost = result["sent"] - result["answered"]
        print(
            f"switches under load: {switches} registry changes, {metrics_switches} hot switches, "
            f"sent {result['sent']}, answered {result['answered']}, lost {lost}, versions "
            f"{result['versions']}, failures {result['failures']}"
        )

    load_avg = os.getloadavg()[0]
    table = render_table(
        [
            "model, mode",
            "bare p50 ms",
            "served p50 ms",
            "added p50 ms",
            "bare p95 ms",
            "served p95 ms",
            "added p95 ms",
            "bare CPU ms",
            "server CPU ms",
            "added CPU ms",
        ],
        rows,
    )
    table2 = render_table(["mode", "clients", "requests", "requests/s", "failed"], throughput)
    body = "\n".join(
        [
            f"`{command_line(argv and [sys.argv[0], *argv])}` ({started}; load average {load_start:.1f} "
            f"at the start, {load_avg:.1f} at the end, on {os.cpu_count()} cores; "
            f"{_http_stack()})",
            "",
            f"One client, {args.requests} one-row requests per row, interleaved with bare "
            "in-process predicts of the same model on a one-row DataFrame in blocks of 50 "
            "(wall: what the client saw; CPU: the server process's CPU per request against "
            "this process's CPU per bare predict; added CPU is the primary figure, wall time on "
            "a loaded machine mostly measures waiting for a core):",
            "",
            table,
            "",
            f"Throughput, {args.clients} parallel clients:",
            "",
            table2,
            "",
            f"What the log says against what clients saw, {2 * args.clients} clients sending "
            f"{queue['n']} one-row requests at once (each request's server-logged latency "
            "against its client-observed one; the log is what live SLOs judge):",
            "",
            render_table(
                ["", "p50 ms", "p95 ms"],
                [
                    ["client-observed", queue["client_p50"], queue["client_p95"]],
                    ["server-logged", queue["logged_p50"], queue["logged_p95"]],
                    [
                        "logged / observed",
                        queue["logged_p50"] / queue["client_p50"],
                        queue["logged_p95"] / queue["client_p95"],
                    ],
                ],
            ),
            "",
            f"Switches under load: {switches} promote/rollback in {args.switch_seconds:g} s with "
            f"{args.clients} clients: {metrics_switches} hot switches, {result['sent']} requests "
            "sent, "
            f"{result['answered']} answered, {lost} lost; versions answering: "
            f"{result['versions']}.",
        ]
    )
    print(body)
    if args.write_doc:
        write_doc_block("bench_serve", body, SECTION)
    return 0 if lost == 0 else 1


def _latency_row(name: str, lat: dict[str, float]) -> list[Any]:
    keys = ("bare_p50", "served_p50", "added_p50", "bare_p95", "served_p95", "added_p95")
    return [name, *(lat[k] for k in keys), lat["bare_cpu"], lat["server_cpu"], lat["added_cpu"]]


def _http_stack() -> str:
    """What uvicorn picks with its defaults (``http="auto"``, ``loop="auto"``) in this Python."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"uvicorn {http} + {loop}"


def _switch_count(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        if line.startswith("tuneops_model_switches_total "):
            return int(float(line.split()[1]))
    return -1


if __name__ == "__main__":
    sys.exit(main())
