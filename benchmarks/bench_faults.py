"""Faults: signals to the owner and to workers while a study runs; nothing lost, nothing repeated.

    nice -n 10 python benchmarks/bench_faults.py           # 4 storages, 200 trials, 24 signals each
    nice -n 10 python benchmarks/bench_faults.py --quick   # journal only, 40 trials, 6 signals,
                                                           # pmlb:letter ($TUNEOPS_PMLB_DIR)
    nice -n 10 python benchmarks/bench_faults.py --storages sqlite,redis --no-doc

Per storage (journal file, SQLite, PostgreSQL 15 and redis-server on loopback, started as the
tests start them: tests/servers.py), a 200-trial study runs with 4 workers: the owner,
``python -m tuneops run SPEC --workers 2 --storage URL`` (two forked workers), and two
``python -m tuneops worker --study NAME --storage URL``. A driver in this process sends SIGKILL,
SIGTERM or SIGINT (seeded choice) to a random live process (the owner, one of its forked
workers, or a joined worker) each time the study passes one of the seeded progress marks, and
restarts whatever died: the owner with the same command (it resumes the study), a joined
worker as it was started. A forked worker is not restarted on its own: it comes back with its
owner's next restart (the owner runs the rest in its own process meanwhile).

When the owner has finished (exit 0: the model and results are written) the study is read
back from the storage and checked:

* counted trials (all but the abandoned ones) must be exactly ``n_trials``, all finished;
* configurations evaluated twice beyond documented retries must be 0: trials that ran are
  grouped by their parameters; a second trial with the same parameters is allowed only as the
  retry of an abandoned trial (user attr ``retry_of`` naming it), once per abandoned trial;
* trials left RUNNING (or WAITING) after the run must be 0, and no process of the run may
  outlive it;
* time to recover: from a signal to the victim's running trial being abandoned (and its
  configuration queued again), to that configuration running again, and from a restart of the
  owner (or of a worker) to its first trial.

The objective is small on purpose (``linear`` on ``--data``, 2 CV folds, no pruning): the
benchmark measures the fault handling, not the model. The default ``sklearn:iris`` fits so fast
that on a quiet machine a study can end before its signals land (the run then warns: 0 trials
abandoned tests nothing); the documented run and ``--quick`` use ``pmlb:letter``. Its one parameter ``C`` is
continuous and the sampler is the seeded random sampler, so two trials share parameters only
when a configuration was run again or a sampler stream was replayed (TPE would hide a replayed
stream once it models the study: its proposals then depend on the history too). The machine
is shared: run it under ``nice -n 10``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import optuna  # noqa: E402
from _common import child_env, command_line, render_table, write_doc_block  # noqa: E402
from _common import stamp as _common_stamp  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402
from servers import PostgresServer, RedisServer  # noqa: E402

from tuneops._study import ABANDONED, REPEAT_OF, RETIRED, RETRY_OF, WORKER  # noqa: E402
from tuneops.storage import get_storage, mask_url  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)

SECTION = "## Faults (issue 14)"
STORAGES = ("journal", "sqlite", "postgresql", "redis")
DEFAULT_DATA = "sklearn:iris"
QUICK_DATA = "pmlb:letter"  # slow enough that --quick's signals land during trials
ROLES = ("owner", "worker")
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
# How each signal may end a process: handled (128 + n, the running trial given back), by the
# default action before tuneops installed its handler (-n), or 0 when it arrived as the
# process was finishing anyway.
EXPECTED_EXITS = {
    signal.SIGKILL: {-9},
    signal.SIGTERM: {143, -15},
    signal.SIGINT: {130, -2},
}


# -- pure checks on the stored trials (tested in tests/test_benchmarks_smoke.py) ------------------
def params_key(trial: FrozenTrial) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(trial.params.items()))


def excess_evaluations(trials: Sequence[FrozenTrial]) -> list[list[int]]:
    """Groups of trial numbers that evaluated the same configuration beyond documented retries.

    A trial *evaluated* its configuration when it has parameters (a trial retired unrun has
    none) and is not a repeat (``repeat_of``: it took a completed trial's outcome). Within a group of trials with equal parameters, the oldest is the original; another
    is allowed only when it is the retry (``retry_of``) of an abandoned trial of the same group,
    and each abandoned trial has at most one allowed retry. Returns, per configuration with
    anything beyond that, the numbers of all its trials.
    """
    groups: dict[tuple[tuple[str, Any], ...], list[FrozenTrial]] = defaultdict(list)
    for t in trials:
        if t.params and REPEAT_OF not in t.user_attrs:  # a repeat reused an outcome, ran nothing
            groups[params_key(t)].append(t)
    excess = []
    for group in groups.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda t: t.number)
        abandoned = {t.number for t in group if ABANDONED in t.user_attrs}
        retried: set[int] = set()
        extra = 0
        for t in group[1:]:
            of = t.user_attrs.get(RETRY_OF)
            if of in abandoned and of not in retried:
                retried.add(of)
            else:
                extra += 1
        if extra:
            excess.append([t.number for t in group])
    return excess


@dataclass
class Verdict:
    """What the storage says after the run."""

    counted: int  # trials that count against the budget (all but the abandoned and retired)
    counted_finished: int
    complete: int
    failed: int  # counted trials that failed (the objective's errors; 0 here)
    abandoned: int  # trials whose worker died or was interrupted (re-queued once)
    retired: int  # trials taken out of the budget unrun
    retries: int  # trials that re-ran an abandoned trial's configuration
    running: int  # RUNNING after the run: must be 0
    waiting: int  # WAITING after the run: must be 0
    excess: list[list[int]]  # configurations evaluated twice beyond documented retries
    unretried: list[int]  # abandoned trials whose configuration was not queued again


def verdict(trials: Sequence[FrozenTrial]) -> Verdict:
    counted = [t for t in trials if ABANDONED not in t.user_attrs]
    out = [t for t in trials if ABANDONED in t.user_attrs]
    retired = [t for t in out if str(t.user_attrs[ABANDONED]).startswith(RETIRED)]
    return Verdict(
        counted=len(counted),
        counted_finished=sum(t.state.is_finished() for t in counted),
        complete=sum(t.state == TrialState.COMPLETE for t in counted),
        failed=sum(t.state == TrialState.FAIL for t in counted),
        abandoned=len(out) - len(retired),
        retired=len(retired),
        retries=sum(RETRY_OF in t.user_attrs and bool(t.params) for t in trials),
        running=sum(t.state == TrialState.RUNNING for t in trials),
        waiting=sum(t.state == TrialState.WAITING for t in trials),
        excess=excess_evaluations(trials),
        unretried=sorted(
            set(t.number for t in out if t not in retired)
            - {t.user_attrs[RETRY_OF] for t in trials if RETRY_OF in t.user_attrs}
        ),
    )


def _start_s(t: FrozenTrial) -> float | None:
    return t.datetime_start.timestamp() if t.datetime_start else None


def _end_s(t: FrozenTrial) -> float | None:
    return t.datetime_complete.timestamp() if t.datetime_complete else None


def recoveries(
    trials: Sequence[FrozenTrial], signals: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Per signal, the victims' trials that were running and were abandoned: how long from the
    signal to the abandonment (the configuration is queued in the same step) and to its retry
    starting. ``signals``: ``{at, pids}`` (the victim and, for an owner, its forked workers)."""
    by_retry_of = {t.user_attrs[RETRY_OF]: t for t in trials if RETRY_OF in t.user_attrs}
    rows = []
    for s in signals:
        pids = set(s["pids"])
        for t in trials:
            pid = (t.user_attrs.get(WORKER) or {}).get("pid")
            start, end = _start_s(t), _end_s(t)
            if (
                pid not in pids
                or ABANDONED not in t.user_attrs
                or start is None
                or end is None
                or start > s["at"]
                or end < s["at"]
                or str(t.user_attrs[ABANDONED]).startswith(RETIRED)
            ):
                continue
            retry = by_retry_of.get(t.number)
            retry_start = _start_s(retry) if retry is not None else None
            rows.append(
                {
                    "signal": s["signal"],
                    "role": s["role"],
                    "trial": t.number,
                    "abandoned_s": end - s["at"],
                    "retry_running_s": None if retry_start is None else retry_start - s["at"],
                    "reason": t.user_attrs[ABANDONED],
                }
            )
    return rows


def restarts_to_tuning(
    trials: Sequence[FrozenTrial], restarts: Sequence[Mapping[str, Any]], worker_pids: Iterable[int]
) -> list[dict[str, Any]]:
    """Per restart, seconds from the restart to its first trial (None: killed before one).

    An owner's trials are those of pids that are not joined workers (its own and its forked
    workers'), started after the restart and before its next end; a worker's, those of its pid.
    """
    joined = set(worker_pids)
    rows = []
    for r in restarts:

        def mine(t: FrozenTrial, r: Mapping[str, Any] = r) -> bool:
            pid = (t.user_attrs.get(WORKER) or {}).get("pid")
            return pid not in joined if r["role"] == "owner" else pid == r["pid"]

        starts = [
            s
            for t in trials
            if mine(t)
            and (s := _start_s(t)) is not None
            and r["at"] <= s <= (r["ended"] if r["ended"] is not None else float("inf"))
        ]
        rows.append({"role": r["role"], "s": min(starts) - r["at"] if starts else None})
    return rows


def spread(values: Sequence[float]) -> dict[str, float]:
    """min / median / p90 / max of ``values`` (NaN when empty)."""
    if not values:
        return {k: float("nan") for k in ("n", "min", "median", "p90", "max")}
    s = sorted(values)
    return {
        "n": len(s),
        "min": s[0],
        "median": statistics.median(s),
        "p90": s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))],
        "max": s[-1],
    }


def scan_log(text: str) -> dict[str, Any]:
    """What the processes' output says beyond the trials: tracebacks by their last line (a
    KeyboardInterrupt is SIGINT arriving before tuneops handles it, while Python imports), and
    how often a journal file lock left by a killed holder was removed: at once (the holder was
    a tuneops writer of this host, tuneops._journal_lock) or after the 30 s grace period."""
    errors: Counter[str] = Counter()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            last = next((x for x in lines[i + 1 :] if x and not x.startswith((" ", "\t"))), "?")
            errors[last.strip()[:160]] += 1
    return {
        "startup_interrupts": errors.pop("KeyboardInterrupt", 0),
        "errors": dict(errors),
        "lock_breaks": text.count("Forcibly releasing the lock file") + text.count("has stood for"),
        "lock_removals": text.count("left by a writer that is gone"),
    }


# -- processes ------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _children(pid: int) -> list[int]:
    """Forked workers of ``pid``: its children running the same command line (not, say, a
    multiprocessing resource tracker, which is started with another)."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    out = []
    for k in map(int, kids):
        try:
            if Path(f"/proc/{k}/cmdline").read_bytes() == cmd and _alive(k):
                out.append(k)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


@dataclass
class Proc:
    role: str  # "owner" or "worker"
    slot: int
    popen: subprocess.Popen[bytes]
    at: float  # started (unix time)
    ended: float | None = None
    code: int | None = None


@dataclass
class Run:
    """One storage's run: what the driver did and saw."""

    storage: str
    url: str
    n_trials: int
    procs: list[Proc] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
    seen_pids: set[int] = field(default_factory=set)
    done_at: float | None = None
    timed_out: bool = False


SPEC = """\
study: {study}
data: {{source: "{data}"}}
model: {{family: linear}}
objectives: [accuracy]
search: {{n_trials: {n_trials}, cv_folds: 2, sampler: random, pruner: none, seed: {seed}}}
"""


def storage_url(kind: str, scratch: Path, servers: Mapping[str, Any]) -> str:
    if kind == "journal":
        return str(scratch / "study.journal")
    if kind == "sqlite":
        return f"sqlite:///{scratch / 'study.db'}"
    return servers[kind].url


def _load(url: str, name: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=get_storage(url))
    except KeyError:
        return None


def run_storage(
    kind: str,
    url: str,
    scratch: Path,
    *,
    n_trials: int,
    n_signals: int,
    seed: int,
    timeout_s: float,
    data: str = "sklearn:iris",
) -> tuple[Run, list[FrozenTrial]]:
    """Run one study under signals until its owner finishes; return what happened and its trials."""
    name = f"faults-{kind}"
    spec = scratch / "faults.yaml"
    spec.write_text(SPEC.format(study=name, n_trials=n_trials, seed=seed, data=data))
    env = child_env()
    owner_cmd = [
        sys.executable,
        "-m",
        "tuneops",
        "run",
        str(spec),
        "--workers",
        "2",
        "--storage",
        url,
        "--out",
        str(scratch / "out"),
        "--no-progress",
        "--no-report",
    ]
    worker_cmd = [sys.executable, "-m", "tuneops", "worker", "--study", name, "--storage", url]
    run = Run(kind, url, n_trials)
    logs = {role: open(scratch / f"{role}.log", "ab") for role in ROLES}  # noqa: SIM115
    rng = random.Random(f"{seed}-{kind}")
    marks = sorted(rng.sample(range(3, max(4, int(0.92 * n_trials))), n_signals))
    gap_s = 0.0
    last_signal = 0.0

    def start(role: str, slot: int) -> Proc:
        log = logs[role]
        log.write(f"\n=== {role} {slot} started at {time.time():.3f}\n".encode())
        log.flush()
        p = Proc(
            role,
            slot,
            subprocess.Popen(
                owner_cmd if role == "owner" else worker_cmd,
                cwd=scratch,
                env=env,
                stdout=log,
                stderr=log,
            ),
            time.time(),
        )
        run.procs.append(p)
        run.seen_pids.add(p.popen.pid)
        return p

    owner = start("owner", 0)
    workers: list[Proc | None] = [None, None]
    started = time.time()
    study = None
    try:
        while True:
            now = time.time()
            if now - started > timeout_s:
                run.timed_out = True
                break
            # Processes that ended: record, restart what a signal ended before the study is done.
            for p in [owner, *workers]:
                if p is None or p.ended is not None or p.popen.poll() is None:
                    continue
                p.ended, p.code = now, p.popen.returncode
            if owner.ended is not None:
                if owner.code == 0:
                    run.done_at = owner.ended
                else:
                    owner = start("owner", 0)
            if study is None:
                study = _load(url, name)
            if study is not None and run.done_at is None:
                for i, w in enumerate(workers):
                    if w is None or (w.ended is not None and w.code != 0):
                        workers[i] = start("worker", i)
            if run.done_at is not None and all(w is None or w.ended is not None for w in workers):
                break
            if run.done_at is not None and now - run.done_at > 120:  # workers that do not leave
                run.timed_out = True
                break
            # Signals at the progress marks (at least gap_s apart), to a random live process.
            targets = []
            if owner.ended is None:
                kids = _children(owner.popen.pid)
                run.seen_pids.update(kids)
                targets.append(("owner", owner.popen.pid, [owner.popen.pid, *kids]))
                targets += [("forked worker", k, [k]) for k in kids]
            targets += [
                ("worker", w.popen.pid, [w.popen.pid])
                for w in workers
                if w is not None and w.ended is None
            ]
            if study is not None and marks and now - last_signal >= gap_s and targets:
                trials = study.get_trials(deepcopy=False)
                finished = sum(
                    t.state.is_finished() and ABANDONED not in t.user_attrs for t in trials
                )
                if finished >= marks[0] or run.done_at is not None:
                    marks.pop(0)
                    role, pid, pids = rng.choice(targets)
                    sig = rng.choice(SIGNALS)
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                    else:
                        last_signal = time.time()
                        run.signals.append(
                            {
                                "at": last_signal,
                                "role": role,
                                "pid": pid,
                                "pids": pids,
                                "signal": sig.name,
                                "finished": finished,
                            }
                        )
                        print(
                            f"  {kind}: {sig.name} -> {role} {pid} "
                            f"at {finished}/{n_trials} finished",
                            flush=True,
                        )
                    gap_s = rng.uniform(0.5, 3.0)
            time.sleep(0.25)
    finally:
        for p in run.procs:  # every process started, also one started as the driver was stopped
            if p.popen.poll() is None:
                p.popen.kill()
                p.popen.wait()
                p.ended, p.code = time.time(), p.popen.returncode
        for log in logs.values():
            log.close()
    time.sleep(1.0)  # forked workers of a killed owner leave on their own (SIGTERM from the kernel)
    study = _load(url, name)
    return run, ([] if study is None else study.get_trials(deepcopy=False))


def _exit_record(run: Run) -> dict[str, Any]:
    """Exit codes per role, and those no signal explains (a crash, a traceback)."""
    sent: dict[int, list[str]] = defaultdict(list)
    for s in run.signals:
        sent[s["pid"]].append(s["signal"])
    codes: Counter[str] = Counter()
    unexplained = []
    for p in run.procs:
        sigs = sent.get(p.popen.pid, [])
        codes[f"{p.role} {p.code}"] += 1
        expected = {0}.union(*(EXPECTED_EXITS[signal.Signals[s]] for s in sigs))
        if p.code not in expected:
            unexplained.append(
                {"role": p.role, "pid": p.popen.pid, "code": p.code, "signals": sigs}
            )
    return {"codes": dict(codes), "unexplained": unexplained}


def summarize(
    run: Run, trials: Sequence[FrozenTrial], wall_s: float, logs: str = ""
) -> dict[str, Any]:
    v = verdict(trials)
    rec = recoveries(trials, run.signals)
    restarts = [
        {"role": p.role, "pid": p.popen.pid, "at": p.at, "ended": p.ended}
        for p in run.procs
        if p.at > run.procs[0].at
    ]
    tuning = restarts_to_tuning(
        trials, restarts, [p.popen.pid for p in run.procs if p.role == "worker"]
    )
    owner_restarts = [r for r in tuning if r["role"] == "owner"]
    worker_restarts = [r for r in tuning if r["role"] == "worker"]
    leftover = sorted(
        pid
        for pid in run.seen_pids | {(t.user_attrs.get(WORKER) or {}).get("pid", 0) for t in trials}
        if pid and _alive(pid)
    )
    return {
        "storage": run.storage,
        "url": mask_url(run.url),
        "n_trials": run.n_trials,
        "wall_s": wall_s,
        "timed_out": run.timed_out,
        "signals": Counter(f"{s['signal']} {s['role']}" for s in run.signals),
        "n_signals": len(run.signals),
        "verdict": asdict(v),
        "recovery": rec,
        "abandoned_s": spread([r["abandoned_s"] for r in rec]),
        "retry_running_s": spread(
            [r["retry_running_s"] for r in rec if r["retry_running_s"] is not None]
        ),
        "owner_restarts": len(owner_restarts),
        "owner_to_tuning_s": spread([r["s"] for r in owner_restarts if r["s"] is not None]),
        "owner_never_tuned": sum(r["s"] is None for r in owner_restarts),
        "worker_restarts": len(worker_restarts),
        "worker_to_tuning_s": spread([r["s"] for r in worker_restarts if r["s"] is not None]),
        "exits": _exit_record(run),
        "alive_after": leftover,
        "logs": scan_log(logs),
        "ok": (
            not run.timed_out
            and v.counted == run.n_trials
            and v.counted_finished == run.n_trials
            and not v.excess
            and v.running == 0
            and v.waiting == 0
            and not leftover
        ),
    }


# -- report ---------------------------------------------------------------------------------------
NAMES = {
    "journal": "journal file",
    "sqlite": "SQLite",
    "postgresql": "PostgreSQL",
    "redis": "Redis",
}


def _s(d: Mapping[str, float]) -> str:
    if d["n"] != d["n"] or not d["n"]:
        return "-"
    return f"{d['median']:.1f} ({d['min']:.1f}-{d['max']:.1f}, n={d['n']})"


def markdown(results: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]]) -> str:
    """The doc block: ``runs`` are the commands that produced ``results`` (``command``,
    ``stamp``, ``load`` at start and end, ``storages``), several when storages ran apart."""
    rows = []
    for r in results:
        v = r["verdict"]
        rows.append(
            [
                NAMES[r["storage"]],
                r["n_signals"],
                v["counted"],
                len(v["excess"]),
                v["running"],
                v["abandoned"],
                len(v["unretried"]) if "unretried" in v else "?",
                v["retries"],
                v["retired"],
                _s(r["abandoned_s"]),
                _s(r["retry_running_s"]),
                _s(r["owner_to_tuning_s"])
                + (
                    f"; {r['owner_never_tuned']} killed before tuning"
                    if r["owner_never_tuned"]
                    else ""
                ),
                f"{r['wall_s']:.0f} s",
                "**yes**" if r["ok"] else "**NO**",
            ]
        )
    table = render_table(
        [
            "storage",
            "signals",
            "counted trials",
            "configs run twice beyond retries",
            "left RUNNING",
            "abandoned",
            "abandoned, not re-queued",
            "retries run",
            "retired unrun",
            "kill -> abandoned + re-queued, s",
            "kill -> retry running, s",
            "owner restart -> tuning, s",
            "wall",
            "pass",
        ],
        rows,
    )
    signal_rows = []
    for r in results:
        sig = r["signals"]
        signal_rows.append(
            [
                NAMES[r["storage"]],
                *(
                    sig.get(f"{s} {role}", 0)
                    for s in ("SIGKILL", "SIGTERM", "SIGINT")
                    for role in ("owner", "forked worker", "worker")
                ),
                r["owner_restarts"],
                r["worker_restarts"],
                _s(r["worker_to_tuning_s"]),
            ]
        )
    sig_table = render_table(
        [
            "storage",
            *(
                f"{s} {role}"
                for s in ("KILL", "TERM", "INT")
                for role in ("owner", "forked", "worker")
            ),
            "owner restarts",
            "worker restarts",
            "worker restart -> tuning, s",
        ],
        signal_rows,
    )
    by_kind: dict[str, list[float]] = defaultdict(list)
    for r in results:
        for x in r["recovery"]:
            by_kind[f"{x['signal']} to {x['role']}"].append(x["abandoned_s"])
    kind_rows = [
        [k, *(lambda d: [d["n"], d["min"], d["median"], d["p90"], d["max"]])(spread(v))]
        for k, v in sorted(by_kind.items())
    ]
    kind_table = render_table(
        ["signal", "abandoned trials", "min s", "median s", "p90 s", "max s"], kind_rows
    )
    unexplained = [
        f"{NAMES[r['storage']]}: {u}" for r in results for u in r["exits"]["unexplained"]
    ]
    alive = [f"{NAMES[r['storage']]}: {r['alive_after']}" for r in results if r["alive_after"]]
    logs = {r["storage"]: r.get("logs") or scan_log("") for r in results}
    errors = [f"{NAMES[k]}: {x['errors']}" for k, x in logs.items() if x["errors"]]
    startup = sum(x["startup_interrupts"] for x in logs.values())
    breaks = sum(x["lock_breaks"] for x in logs.values())
    removals = sum(x.get("lock_removals", 0) for x in logs.values())
    lines = [
        "; ".join(
            f"`{r['command']}` ({', '.join(NAMES[k] for k in r['storages'])}: {r['stamp']}; load "
            f"average {r['load'][0]:.1f} at the start, {r['load'][1]:.1f} at the end, on "
            f"{os.cpu_count()} cores)"
            for r in runs
        ),
        "",
        f"Per storage: one study of {results[0]['n_trials'] if results else '?'} trials "
        f"(`linear` on `{results[0].get('data', 'sklearn:iris') if results else '?'}`, 2 CV "
        "folds, seeded random sampler, no pruning), 4 "
        "workers (the owner's 2 forked, 2 joined). Times as median (min-max, n).",
        "",
        table,
        "",
        "Signals sent (victim chosen at random among the live processes), restarts:",
        "",
        sig_table,
        "",
        "From a signal to the victim's running trial abandoned (FAIL, `abandoned` recorded, its "
        "configuration queued again in the same step), all storages:",
        "",
        kind_table,
        "",
        f"Exit codes no signal explains: {'; '.join(unexplained) if unexplained else 'none'}. "
        f"Processes of a run alive after it: {'; '.join(alive) if alive else 'none'}. "
        f"Errors in the processes' output (tracebacks other than SIGINT during start-up): "
        f"{'; '.join(errors) if errors else 'none'}. SIGINT during start-up (before tuneops "
        f"handles it: a KeyboardInterrupt traceback, nothing to give back): {startup}. Journal "
        f"file locks left by a killed holder: {removals} removed at once, {breaks} after the "
        "30 s grace period.",
    ]
    return "\n".join(lines)




def with_json_path(command: str, path: str) -> str:
    """``command`` with its ``--json`` value set to ``path``, relative to the repository when
    it is inside it (the doc shows a command anyone can run, not one machine's path)."""
    resolved = Path(path).resolve()
    try:
        shown = str(resolved.relative_to(ROOT))
    except ValueError:
        shown = path
    words = shlex.split(command)
    for i, word in enumerate(words):
        if word == "--json" and i + 1 < len(words):
            words[i + 1] = shown
        elif word.startswith("--json="):
            words[i] = f"--json={shown}"
    return shlex.join(words)


def _run_record(
    command: str, stamp: str, load_start: float, kinds: Sequence[str]
) -> dict[str, Any]:
    return {
        "command": command,
        "stamp": stamp,
        "load": [load_start, os.getloadavg()[0]],
        "storages": list(kinds),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--storages", default=",".join(STORAGES), help=f"comma-separated subset of {STORAGES}"
    )
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--signals", type=int, default=24, help="signals per storage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data",
        default=None,
        help="the study's data (a slower fit, e.g. sklearn:digits, keeps a study running long "
        "enough for every signal on a quiet machine)",
    )
    parser.add_argument(
        "--timeout-s", type=float, default=900, help="give up on a storage after this"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"journal only, 40 trials, 6 signals, --data {QUICK_DATA} unless given",
    )
    parser.add_argument("--no-doc", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument(
        "--render", metavar="JSON", help="only rewrite the doc from saved results (--json)"
    )
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        # the results were saved where they are now read: the command names this file, not the
        # path the run wrote to (another machine's /tmp)
        runs = [{**r, "command": with_json_path(r["command"], args.render)} for r in saved["runs"]]
        text = markdown(saved["results"], runs)
        print(text)
        if not args.no_doc:
            write_doc_block("bench_faults", text, SECTION)
        return 0
    if args.quick:
        # sklearn:iris fits so fast that every signal of a 40-trial study landed after it ended
        # (0 trials abandoned: nothing tested); letter's 2-fold fits take about a second
        args.storages, args.trials, args.signals = "journal", 40, 6
        args.data = args.data or QUICK_DATA
    args.data = args.data or DEFAULT_DATA
    kinds = [k for k in args.storages.split(",") if k]
    unknown = sorted(set(kinds) - set(STORAGES))
    if unknown:
        parser.error(f"--storages: unknown {unknown}; expected a subset of {list(STORAGES)}")
    command = command_line([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    if args.json:
        command = with_json_path(command, args.json)
    # The processes of a run must take SIGINT as a terminal's Ctrl-C does. A shell starts a
    # background job with SIGINT ignored, and an ignored signal stays ignored across exec, so a
    # tuneops process would ignore it until it installs its own handler: handle it here (a
    # handled signal is reset to the default at exec). SIGTERM to this driver cleans up too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_start = os.getloadavg()[0]
    stamp = _common_stamp()
    results = []
    servers: dict[str, Any] = {}
    try:
        if "postgresql" in kinds:
            servers["postgresql"] = PostgresServer().start()
        if "redis" in kinds:
            servers["redis"] = RedisServer().start()
        for kind in kinds:
            scratch = Path(tempfile.mkdtemp(prefix=f"tuneops-faults-{kind}-"))
            url = storage_url(kind, scratch, servers)
            print(f"{kind}: {mask_url(url)}; logs in {scratch}", flush=True)
            t0 = time.time()
            run, trials = run_storage(
                kind,
                url,
                scratch,
                n_trials=args.trials,
                n_signals=args.signals,
                seed=args.seed,
                timeout_s=args.timeout_s,
                data=args.data,
            )
            logs = "".join((scratch / f"{r}.log").read_text(errors="replace") for r in ROLES)
            result = summarize(run, trials, time.time() - t0, logs)
            result["data"] = args.data
            results.append(result)
            if args.json:  # after each storage: a long run that is cut short keeps what it measured
                saved = {
                    "runs": [_run_record(command, stamp, load_start, kinds)],
                    "results": results,
                }
                Path(args.json).write_text(json.dumps(saved, indent=1, default=str))
            print(
                f"  {kind}: ok={result['ok']} verdict={result['verdict']} "
                f"abandoned_s={result['abandoned_s']} "
                f"owner_to_tuning_s={result['owner_to_tuning_s']} "
                f"exits={result['exits']} alive_after={result['alive_after']}",
                flush=True,
            )
    finally:
        for s in servers.values():
            s.stop()
    text = markdown(results, [_run_record(command, stamp, load_start, kinds)])
    print("\n" + text)
    if sum(r["verdict"]["abandoned"] for r in results) == 0:
        print(
            "\nwarning: no signal landed during a trial (0 trials abandoned): this run tested "
            "nothing of giving trials back; use slower --data (e.g. pmlb:letter) or more trials",
            file=sys.stderr,
        )
    if not args.no_doc:
        write_doc_block("bench_faults", text, SECTION)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
