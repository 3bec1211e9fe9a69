"""Ray: the workers of a study run as Ray tasks on a Ray cluster (a local Ray by default).

Each task is one worker, :func:`tuneops.tuning.join` — the same loop ``tuneops worker`` runs
on any machine: it rebuilds the objective from the spec stored with the study and the data,
which travels to the tasks through Ray's object store (so a ``run(dataset=DataFrame)`` works,
and nodes need not read the data source), and claims trials from the shared storage. Ray places the
tasks with the per-trial resources of the
spec's ``search.resources`` (``cpu``, ``gpu``, ``memory`` in bytes, or custom Ray resources);
the storage, not Ray, hands out trials, so tasks that die lose nothing (their trials are
recovered through the heartbeat and re-queued). Needs the ``[ray]`` extra; on a real cluster
the storage must be a database or Redis every node reaches.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from tuneops import _optuna, runner
from tuneops._study import ABANDONED, RETIRED
from tuneops.backends._base import Backend
from tuneops.errors import StorageUnavailable, TuneOpsError, UsageError, require
from tuneops.storage import mask_url, resolve_url

__all__ = ["RayBackend", "ray_options"]

_log = logging.getLogger("tuneops")
CONNECT_TIMEOUT_S = 5.0  # a cluster's port that does not answer within this is refused

_NAMED = {
    "cpu": "num_cpus",
    "cpus": "num_cpus",
    "num_cpus": "num_cpus",
    "gpu": "num_gpus",
    "gpus": "num_gpus",
    "num_gpus": "num_gpus",
    "memory": "memory",
}


def ray_options(resources: Mapping[str, float]) -> dict[str, Any]:
    """Ray task options for per-trial ``resources``; one CPU when none is given.

    >>> ray_options({"cpu": 2, "gpu": 0.5, "accelerator_x": 1})
    {'num_cpus': 2.0, 'num_gpus': 0.5, 'resources': {'accelerator_x': 1.0}}
    """
    options: dict[str, Any] = {"num_cpus": 1.0}
    custom: dict[str, float] = {}
    for key, value in resources.items():
        if key.lower() in _NAMED:
            options[_NAMED[key.lower()]] = int(value) if key.lower() == "memory" else float(value)
        else:
            custom[key] = float(value)
    if custom:
        options["resources"] = custom
    return options


def _shared_url(url: str | None) -> str:
    """The storage URL as every Ray worker must see it (a journal file by absolute path)."""
    url = resolve_url(url)
    if url == ":memory:":
        raise StorageUnavailable(
            "storage ':memory:' lives in one process; the Ray backend needs a storage its workers "
            "share (a journal file on one machine, PostgreSQL or Redis on a cluster)."
        )
    if "://" not in url:
        return str(Path(url).resolve())
    if url.startswith(("journal://", "file://")):
        return f"{url.split('://', 1)[0]}://{Path(url.split('://', 1)[1]).resolve()}"
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return f"sqlite:///{Path(url[len('sqlite:///') :]).resolve()}"
    return url


def _worker(
    join: Callable[..., int],
    study_name: str,
    url: str,
    timeout_s: float | None,
    heartbeat_s: float | None,
    grace_s: float | None,
    dataset: Any = None,
    run: str | None = None,
) -> int:
    """One Ray task: a tuneops worker (``join``) identified by its Ray node (and the run that
    started it: that run knows its trials have no worker once its tasks are all gone)."""
    import ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    node = ray.get_runtime_context().get_node_id()
    identity = runner.worker_identity(f"ray:{node[:8]}:{os.getpid()}", node=node, run=run)
    return join(
        study_name,
        url,
        timeout_s=timeout_s,
        identity=identity,
        heartbeat_s=heartbeat_s,
        grace_s=grace_s,
        dataset=dataset,
    )


def _grpc_answer(host: str, port: int) -> bool | None:
    """Whether ``host:port`` answers as a gRPC server (HTTP/2: a SETTINGS frame to the client
    preface), which Ray's GCS and Ray Client are; None when that cannot be told (TLS, which
    ``RAY_USE_TLS`` turns on). Raises OSError when nothing accepts the connection."""
    with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S) as sock:
        if os.environ.get("RAY_USE_TLS", "").lower() in ("1", "true"):
            return None
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.sendall(_HTTP2_PREFACE)
        try:
            head = sock.recv(9)
        except OSError:  # a timeout or a reset: not a server that speaks HTTP/2
            return False
    return len(head) >= 4 and head[3] == 0x04


def _auto_address(temp_dir: str | None) -> tuple[str | None, str]:
    """The cluster ``ray.init(address="auto")`` would join, found as Ray finds it, and where it
    was found; ``(None, what was looked at)`` when there is none.

    Ray's order (``get_ray_address_from_environment`` in ``ray._private.services``, which
    ``ray.init`` calls): ``$RAY_ADDRESS``; else the address the latest ``ray start`` on this
    machine recorded in ``<temp dir>/ray_current_cluster`` (``$RAY_TMPDIR/ray``, else
    ``$TMPDIR/ray``, else ``/tmp/ray``; ``ray stop`` deletes it); else, for ``auto``, any
    running raylet's GCS address. Ray's own function is called so that the answer is Ray's.
    """
    from ray._private import services

    try:  # where `ray start` records the address: ray._common in recent Ray, _private before
        from ray._common.utils import get_ray_address_file
    except ImportError:  # pragma: no cover - Ray < 2.4x (the extra allows 2.9)
        from ray._private.utils import get_ray_address_file

    path = get_ray_address_file(temp_dir)
    try:
        found = services.get_ray_address_from_environment("auto", temp_dir)
    except ConnectionError:  # Ray's "Could not find any running Ray instance"
        given = os.environ.get("RAY_ADDRESS")
        env = f"RAY_ADDRESS={given!r}" if given else "RAY_ADDRESS is not set"
        return None, f"{env}, {path} does not exist, no raylet runs here"
    if os.environ.get("RAY_ADDRESS"):
        return found, "RAY_ADDRESS"
    try:
        recorded = Path(path).read_text().strip()
    except OSError:
        recorded = None
    return found, path if recorded == found else "a raylet running on this machine"


# The HTTP/2 client connection preface and an empty SETTINGS frame (RFC 9113, 3.4).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


class RayBackend(Backend):
    """Workers as Ray tasks.

    Args:
        address: the Ray cluster (``ray://HOST:10001``, ``HOST:6379`` or ``auto``); None joins
            the Ray this process already initialised, else starts a local one.
        resources: per-worker (per-trial) resources, see :func:`ray_options`.
        init_kwargs: more arguments for ``ray.init`` when this backend starts Ray.
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        resources: Mapping[str, float] | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.address = address
        self.resources = dict(resources or {})
        self.init_kwargs = dict(init_kwargs or {})

    def prepare(self) -> None:
        """Ray is installed, and a cluster named by ``HOST:PORT`` or ``ray://HOST:PORT``, or
        the one ``auto`` finds, answers on that port (ray.init would retry for minutes, or
        fail, after the study was written)."""
        require("ray", "ray", "the Ray backend")
        if self.address in (None, "local"):
            return
        if self.address != "auto":
            self._check_answers(self.address)
            return
        address, where = _auto_address(self.init_kwargs.get("_temp_dir"))
        if address is None:
            raise UsageError(
                f"address (--address): 'auto': no Ray cluster found on this machine ({where}); "
                "start one with `ray start --head`, give a cluster's address (HOST:6379 on a "
                "cluster node, ray://HOST:10001 for Ray Client), or leave the address out to run "
                "on a local Ray of its own."
            )
        self._check_answers(address, found_in=where)

    @staticmethod
    def _check_answers(address: str, found_in: str | None = None) -> None:
        """Refuse ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``) unless Ray answers there;
        ``found_in``: where ``auto`` found it (None: the user gave it)."""
        field = "address (--address)" if found_in is None else "address (--address): 'auto'"
        named = repr(address) if found_in is None else f"{address} (which {found_in} names)"
        hostport = address.split("://", 1)[-1].rstrip("/")
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(
                f"{field}: expected ray://HOST:PORT (Ray Client), HOST:PORT (the cluster's "
                f"GCS, on a node) or auto, received {named}."
            )
        try:
            answer = _grpc_answer(host.strip("[]"), int(port))
        except OSError as exc:
            if found_in is None:
                raise UsageError(
                    f"address (--address): no Ray cluster answers at {named} ({exc}); start it "
                    "(`ray "
                    "start --head` on its head node), or check the host and port: "
                    "ray://HOST:10001 for Ray Client, HOST:6379 on a cluster node."
                ) from None
            advice = (
                "unset RAY_ADDRESS, or point it at a running cluster"
                if found_in == "RAY_ADDRESS"
                else "the cluster recorded there is gone (one that stopped without `ray stop` "
                "leaves its record behind); start one with `ray start --head` (`ray stop` "
                "clears the record), or give a running cluster's address"
            )
            raise UsageError(
                f"address (--address): 'auto': {found_in} names {address}, but no Ray cluster "
                "answers there "
                f"({exc}); {advice}."
            ) from None
        if answer is False:
            raise UsageError(
                f"{field}: something listens at {named}, but not Ray (it does not "
                "answer gRPC, which Ray's GCS and Ray Client speak; ray.init would wait for it "
                "without end): check the port: ray://HOST:10001 for Ray Client, HOST:6379 on a "
                "cluster node."
            )

    def _connect(self) -> bool:
        """Initialise Ray unless it is; True when this call started it (and must stop it)."""
        ray = require("ray", "ray", "the Ray backend")
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            # Ray's own lines ("Started a local Ray instance.", its token-authentication
            # warning) are another library's logs: shown with --verbose only, as the others are
            "logging_level": logging.INFO if _optuna.VERBOSE else logging.ERROR,
            **self.init_kwargs,
        }
        if self.address is None:
            # A local Ray: its workers import the same tuneops as this process.
            src = str(Path(__file__).resolve().parents[2])
            path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
            kwargs.setdefault("runtime_env", {"env_vars": {"PYTHONPATH": path}})
        address = self.address
        if address is None and not os.environ.get("RAY_ADDRESS"):
            # A local Ray of its own, as documented: Ray's own default would first join the
            # cluster the latest `ray start` recorded, and fail after "started" when that
            # record outlived its cluster. RAY_ADDRESS (a Ray job's driver) is still obeyed.
            address = "local"
        try:
            ray.init(address=address, **kwargs)
        except Exception as exc:
            raise TuneOpsError(
                f"Ray: cannot connect to {self.address or 'a new local instance'}: {exc}. Check "
                "the "
                "address (ray://HOST:10001 for Ray Client, HOST:6379 on a cluster node) and that "
                "the cluster runs the same Ray and Python versions."
            ) from exc
        return True

    def execute(
        self,
        setup: runner.WorkerSetup,
        *,
        study: optuna.Study,
        n_workers: int,
        deadline: float | None,
        unlimited: bool,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        if setup.join is None:
            raise TuneOpsError(
                f"study {setup.study_name!r}: the Ray backend rebuilds the objective on each node "
                "from a spec, and this study has none (a custom objective); run it with the local "
                "backend, or from a spec."
            )
        url = _shared_url(setup.storage_url)
        started = self._connect()
        # The Ray this run started prints the errors its raylet reports (a worker killed: "(raylet)
        # A worker died ...") from a thread of its own on sys.stdout, the command's results:
        # `tuneops run --json` printed that line before its JSON document. They go to stderr.
        with contextlib.redirect_stdout(sys.stderr) if started else contextlib.nullcontext():
            self._execute(setup, study, url, n_workers, deadline, started, on_progress)

    def _execute(
        self,
        setup: runner.WorkerSetup,
        study: optuna.Study,
        url: str,
        n_workers: int,
        deadline: float | None,
        started: bool,
        on_progress: Callable[[], None] | None,
    ) -> None:
        import ray

        task = ray.remote(_worker).options(**ray_options(self.resources), max_retries=0)
        data = getattr(
            setup.objective, "dataset", None
        )  # put once; Ray hands every task the object
        data_ref = ray.put(data) if data is not None else None
        run = uuid.uuid4().hex[:12]  # this run's tasks, as their trials record them
        timeout_s = max(0.0, deadline - time.time()) if deadline is not None else None
        refs = [
            task.remote(
                setup.join,
                setup.study_name,
                url,
                timeout_s,
                setup.heartbeat_s,
                setup.grace_s,
                data_ref,
                run,
            )
            for _ in range(max(1, n_workers))
        ]
        _log.info(
            "Ray: %d workers on %s, storage %s", len(refs), self.address or "local", mask_url(url)
        )
        try:
            lost = self._wait(ray, refs, on_progress)
            if lost:
                # Every task of this run is gone: a trial one of them left RUNNING has no worker,
                # known now (its pid may still be a zombie, its node unreachable, and the grace
                # period is a minute). Queued again, it runs in the caller's next round.
                abandoned = self._abandon_orphans(study, run, lost)
                _log.warning(
                    "Ray: %d worker(s) lost (%s); %d trial(s) they left running queued again",
                    len(lost),
                    ", ".join(sorted(set(lost))),
                    abandoned,
                )
        except KeyboardInterrupt as exc:
            stop = runner.Interrupted.of(exc)
            for ref in refs:
                ray.cancel(ref)  # KeyboardInterrupt in the task: its trial is abandoned
            ray.wait(refs, num_returns=len(refs), timeout=30)
            # What the tasks gave back, as the local backend's processes' (this process ran
            # none: "Stopped by SIGINT: no trial was running" of a run whose 2 tasks had each
            # abandoned one)
            stop.abandoned += [
                t.number
                for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                if (t.user_attrs.get("worker") or {}).get("run") == run
                and str(t.user_attrs.get(ABANDONED, "")).startswith("interrupted")
                and t.number not in stop.abandoned
            ]
            raise stop from None
        finally:
            runner.recover_abandoned(study, grace_s=setup.grace_s)
            if started:
                ray.shutdown()

    def _wait(self, ray: Any, refs: list[Any], on_progress: Callable[[], None] | None) -> list[str]:
        """Wait for every task; the errors of the ones lost (worker or node died)."""
        lost: list[str] = []
        pending = refs
        while pending:
            done, pending = ray.wait(pending, timeout=0.5)
            for ref in done:
                error = self._collect(ray, ref)
                if error is not None:
                    lost.append(error)
            if on_progress is not None:
                on_progress()
        return lost

    @staticmethod
    def _abandon_orphans(study: optuna.Study, run: str, lost: list[str]) -> int:
        """Abandon the trials this run's tasks left RUNNING; return how many of its trials were
        queued again for a worker that was gone, counting those another worker gave back first
        (it finds a dead pid of its host between its trials: the run said "0 trial(s) they left
        running queued again" of a trial another task had queued again)."""
        mine = [
            t
            for t in study.get_trials(deepcopy=False)
            if (t.user_attrs.get("worker") or {}).get("run") == run
        ]
        orphans = [t for t in mine if t.state == TrialState.RUNNING]
        for t in orphans:
            runner.abandon(study, t, f"its Ray worker was lost ({lost[0]})")
        # given back earlier because its worker was gone (not stopped by a signal, not retired)
        reasons = [t.user_attrs.get(ABANDONED) for t in mine if t.state != TrialState.RUNNING]
        earlier = [
            r for r in reasons if isinstance(r, str) and not r.startswith(("interrupted", RETIRED))
        ]
        return len(orphans) + len(earlier)

    @staticmethod
    def _collect(ray: Any, ref: Any) -> str | None:
        """Raise a worker's own error; return the error name of a worker lost, else None."""
        try:
            ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # tuneops' own error in the worker
            cause = exc.as_instanceof_cause()
            if isinstance(cause, TuneOpsError):
                raise cause from None
            raise TuneOpsError(f"Ray worker failed: {exc}") from exc
        except ray.exceptions.RayError as exc:  # the worker or its node died
            return type(exc).__name__
        return None
