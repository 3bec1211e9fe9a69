"""Distributed tuning: throughput, parallel efficiency, constant liar, contributions, SIGKILL.

    python benchmarks/bench_distributed.py            # the full benchmark (about 15 minutes)
    python benchmarks/bench_distributed.py --quick    # smaller sizes (a few minutes)
    python benchmarks/bench_distributed.py --render benchmarks/results/distributed.json  # the section
                                                      # from saved results, nothing run

Starts its own PostgreSQL 15 and redis-server on loopback (tests/servers.py) and compares, in
the same run, tuneops (its global budget, heartbeats and worker records) with plain Optuna
(``study.optimize`` in the same number of forked processes, same sampler, same storage).
Writes its tables into the issue-4 section of docs/benchmarks.md. PMLB data (``pmlb:pima``) is
read from ``$TUNEOPS_PMLB_DIR``, else from ``../shared/datasets/pmlb`` next to the repository;
scratch files go to the system's temp directory.

This machine has 2 cores. With more workers than cores, a CPU-bound objective would measure
the CPU, not tuneops; the trivial objective measures storage and sampler cost per trial, and
the sleep objectives measure coordination overhead fairly (a sleeping worker holds no CPU).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "benchmarks")]
# PMLB (the contribution part reads pmlb:pima): $TUNEOPS_PMLB_DIR, else the documented default
# ../shared/datasets/pmlb next to the repository.
_PMLB_DEFAULT = ROOT.parent / "shared" / "datasets" / "pmlb"
if _PMLB_DEFAULT.is_dir():
    os.environ.setdefault("TUNEOPS_PMLB_DIR", str(_PMLB_DEFAULT))
# Scratch outputs of the tuneops runs (models, results.json) go to the system's temp directory.
SCRATCH_OUT = Path(tempfile.gettempdir()) / "tuneops-bench-out"

import optuna  # noqa: E402
from _common import stamp as _common_stamp  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

import tuneops  # noqa: E402
from tuneops import runner  # noqa: E402
from tuneops.backends.local import run_local  # noqa: E402
from tuneops.samplers import make_sampler  # noqa: E402
from tuneops.storage import get_storage, mask_url  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)
CTX = multiprocessing.get_context("fork")
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def trivial(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5, 5)
    y = trial.suggest_float("y", -5, 5)
    return (x - 1) ** 2 + (y + 2) ** 2


class Sleep:
    """A sleep objective (picklable for fork) on a 2-D quadratic."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, trial: optuna.Trial) -> float:
        value = trivial(trial)
        time.sleep(self.seconds)
        return value


def _sampler(seed: int, constant_liar: bool = True) -> optuna.samplers.BaseSampler:
    return make_sampler("auto", {"constant_liar": constant_liar}, seed=seed, conditional=True)


def _plain_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage as a plain Optuna user opens it."""
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend, JournalStorage

    if url.startswith("redis"):
        return JournalStorage(JournalRedisBackend(url))
    if url.startswith("postgresql"):
        return optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg://"))
    return JournalStorage(JournalFileBackend(url))


def _plain_child(url: str, name: str, n: int, seed: int, objective) -> None:
    study = optuna.load_study(study_name=name, storage=_plain_storage(url), sampler=_sampler(seed))
    study.optimize(objective, n_trials=n)


def run_plain(url: str, n_trials: int, n_workers: int, objective) -> dict:
    """Plain Optuna: create the study, then ``optimize`` in n forked processes (n_trials split)."""
    name = f"plain-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    optuna.create_study(study_name=name, storage=_plain_storage(url), sampler=_sampler(0))
    shares = [n_trials // n_workers + (i < n_trials % n_workers) for i in range(n_workers)]
    procs = [CTX.Process(target=_plain_child, args=(url, name, k, 7919 * i, objective)) for i, k in enumerate(shares)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    # Reading the trials back is part of the run for both: tuneops reads them for results.json.
    trials = optuna.load_study(study_name=name, storage=_plain_storage(url)).get_trials(deepcopy=False)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "errors": sum(p.exitcode != 0 for p in procs) + sum(t.state == TrialState.FAIL for t in trials)}


def _plain_here(url: str, n_trials: int, _n_workers: int, objective) -> None:
    """Plain Optuna with one worker in this process (so that its storage work can be counted)."""
    study = optuna.create_study(study_name=f"plain-{uuid.uuid4().hex[:8]}", storage=_plain_storage(url),
                                sampler=_sampler(0))
    study.optimize(objective, n_trials=n_trials)


def run_tuneops(url: str, n_trials: int, n_workers: int, objective, **kw) -> dict:
    name = f"tuneops-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    result = tuneops.tune(objective, n_trials=n_trials, n_workers=n_workers, storage=url, study=name,
                          objectives=["value"], directions=["minimize"],
                          output_dir=str(SCRATCH_OUT / name), **kw)
    wall = time.perf_counter() - started
    counts = result.results["n_trials"]
    return {"wall_s": wall, "complete": counts.get("complete", 0), "errors": counts.get("fail", 0),
            "study": result.study, "results": result.results}


# -- 1. throughput --------------------------------------------------------------------------------
def bench_throughput(stores: dict[str, Callable[[], str]], workers: list[int], n_trials: int,
                     repeats: int) -> list[dict]:
    """``stores``: per storage, a function that empties it (or makes a new one) and returns its URL.

    Every run starts on an empty store: the journal storages (file, Redis) replay the whole
    journal, every study in it, whenever a process opens them, so a store that grows during the
    benchmark would tax whichever contender runs later.
    """
    rows = []
    for store, fresh in stores.items():
        for fn in (run_plain, run_tuneops):  # warm-up: imports and first connections are not timed
            fn(fresh(), 8, 1, trivial)
        for n in workers:
            ratios, plain_tps, tune_tps, errors = [], [], [], 0
            for r in range(repeats):
                order = ("plain", "tuneops") if r % 2 == 0 else ("tuneops", "plain")
                got = {}
                for which in order:
                    fn = run_plain if which == "plain" else run_tuneops
                    got[which] = fn(fresh(), n_trials, n, trivial)
                    errors += got[which]["errors"] + (n_trials - got[which]["complete"])
                plain_tps.append(n_trials / got["plain"]["wall_s"])
                tune_tps.append(n_trials / got["tuneops"]["wall_s"])
                ratios.append(got["tuneops"]["wall_s"] / got["plain"]["wall_s"])
            row = {"storage": store, "workers": n, "plain_trials_per_s": statistics.median(plain_tps),
                   "tuneops_trials_per_s": statistics.median(tune_tps),
                   "overhead": statistics.median(ratios) - 1, "errors": errors}
            print(f"  throughput {store:10s} {n:2d} workers: plain {row['plain_trials_per_s']:6.1f}/s  "
                  f"tuneops {row['tuneops_trials_per_s']:6.1f}/s  overhead {row['overhead']:+.1%} (median of "
                  f"per-run ratios), {_rate_overhead(row):+.1%} (from the rates)  errors {errors}", flush=True)
            rows.append(row)
    return rows


# -- 2. parallel efficiency -----------------------------------------------------------------------
def bench_efficiency(url: str, n_trials: int, seconds: float, workers: int, repeats: int = 3) -> dict:
    """One run with 1 worker (long, steady), ``repeats`` alternating runs with ``workers`` (their
    wall time moves by a second or more between runs: the workers' sampler work collides on 2
    cores whenever their trials end together); the median of those is compared."""
    for fn in (run_plain, run_tuneops):  # warm-up: imports and first connections are not timed
        fn(url, 8, 2, Sleep(0.01))
    plain_one = run_plain(url, n_trials, 1, Sleep(seconds))
    one = run_tuneops(url, n_trials, 1, Sleep(seconds))
    runs: dict[str, list[dict]] = {"tuneops": [], "plain": []}
    for r in range(repeats):
        for which in ("tuneops", "plain") if r % 2 == 0 else ("plain", "tuneops"):
            runs[which].append((run_tuneops if which == "tuneops" else run_plain)(url, n_trials, workers, Sleep(seconds)))
    many, plain = ({"wall_s": statistics.median(x["wall_s"] for x in runs[k]),
                    "complete": min(x["complete"] for x in runs[k])} for k in ("tuneops", "plain"))
    speedup = one["wall_s"] / many["wall_s"]
    out = {"trials": n_trials, "seconds": seconds, "workers": workers, "wall_1_s": one["wall_s"],
           "wall_n_s": many["wall_s"], "plain_wall_1_s": plain_one["wall_s"],
           "plain_wall_n_s": plain["wall_s"], "speedup": speedup,
           "efficiency": speedup / workers, "plain_efficiency": plain_one["wall_s"] / plain["wall_s"] / workers,
           "repeats": repeats, "walls_n_s": {k: [x["wall_s"] for x in v] for k, v in runs.items()},
           "ideal_n_s": n_trials * seconds / workers,
           "complete": (one["complete"], many["complete"], plain_one["complete"], plain["complete"])}
    print(f"  efficiency: tuneops 1 worker {one['wall_s']:.1f} s, {workers} workers {many['wall_s']:.1f} s "
          f"-> {out['efficiency']:.2f}; plain Optuna 1 worker {plain_one['wall_s']:.1f} s, {workers} workers "
          f"{plain['wall_s']:.1f} s -> {out['plain_efficiency']:.2f} (ideal {out['ideal_n_s']:.1f} s)", flush=True)
    return out


# -- 2b. storage work per trial -------------------------------------------------------------------
def bench_statements(pg_url: str, journal: str, n_trials: int) -> dict:
    """SQL statements (PostgreSQL), and journal entries and fsync'd writes (journal file), per
    trial, one worker.

    The journal is counted at the file, not at a backend class: tuneops writes through its own
    backend (``tuneops.storage.SnapshotJournalFile``, which overrides ``append_logs`` and may
    write several entries in one append), so patching Optuna's ``JournalFileBackend.append_logs``
    counted nothing on the tuneops side. Entries are the lines the run added to the file; writes
    are the ``os.fsync`` calls on that file (one per append, on both sides)."""
    import sqlalchemy

    counts = {"sql": 0, "fsync": 0}
    journal_path = os.path.realpath(journal)

    def on_sql(*_args) -> None:
        counts["sql"] += 1

    fsync = os.fsync

    def counting_fsync(fd) -> None:
        try:
            target = os.readlink(f"/proc/self/fd/{fd if isinstance(fd, int) else fd.fileno()}")
        except OSError:
            target = ""
        if target == journal_path:
            counts["fsync"] += 1
        fsync(fd)

    def lines() -> int:
        try:
            with open(journal_path, "rb") as f:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        except FileNotFoundError:
            return 0

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", on_sql)
    os.fsync = counting_fsync
    out: dict = {"trials": n_trials}
    try:
        for which, fn in (("plain", _plain_here), ("tuneops", run_tuneops)):
            fn(pg_url, 4, 1, trivial)  # warm-up
            counts["sql"] = 0
            fn(pg_url, n_trials, 1, trivial)
            out[f"PostgreSQL|{which}"] = counts["sql"] / n_trials
        for which, fn in (("plain", _plain_here), ("tuneops", run_tuneops)):
            fn(journal, 4, 1, trivial)  # warm-up
            counts["fsync"], before = 0, lines()
            fn(journal, n_trials, 1, trivial)
            out[f"journal file|{which}"] = (lines() - before) / n_trials
            out[f"journal file fsync|{which}"] = counts["fsync"] / n_trials
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", on_sql)
        os.fsync = fsync
    print(f"  per trial on PostgreSQL: plain {out['PostgreSQL|plain']:.1f}, tuneops "
          f"{out['PostgreSQL|tuneops']:.1f} SQL statements", flush=True)
    print(f"  per trial on the journal file: plain {out['journal file|plain']:.1f} entries in "
          f"{out['journal file fsync|plain']:.1f} fsync'd writes, tuneops {out['journal file|tuneops']:.1f} "
          f"entries in {out['journal file fsync|tuneops']:.1f} fsync'd writes", flush=True)
    return out


# -- 3. constant liar -----------------------------------------------------------------------------
def _concurrent_closeness(trials: list[optuna.trial.FrozenTrial]) -> float:
    """Mean distance (in the unit square) from each trial to the nearest trial running with it."""
    dists = []
    for t in trials:
        others = [o for o in trials if o.number != t.number and o.datetime_start <= t.datetime_start < o.datetime_complete]
        if others:
            dists.append(min(((t.params["x"] - o.params["x"]) ** 2 + (t.params["y"] - o.params["y"]) ** 2) ** 0.5 / 10
                             for o in others))
    return statistics.mean(dists) if dists else float("nan")


def bench_constant_liar(url_for, n_trials: int, workers: int, seconds: float, seeds: int) -> dict:
    out = {}
    for liar in (True, False):
        best, close = [], []
        for seed in range(seeds):
            url = url_for(f"liar-{liar}-{seed}")
            name = f"liar-{uuid.uuid4().hex[:6]}"
            study = optuna.create_study(study_name=name, storage=get_storage(url), sampler=_sampler(seed, liar))
            runner.set_budget(study, n_trials)
            setup = runner.WorkerSetup(name, url, lambda i, s=seed, l=liar: _sampler(1000 * s + i, l),
                                       optuna.pruners.NopPruner, Sleep(seconds), workers)
            run_local(setup, n_workers=workers, deadline=None, unlimited=False, study=study)
            trials = study.get_trials(states=(TrialState.COMPLETE,))
            best.append(min(t.value for t in trials))
            close.append(_concurrent_closeness(trials))
        out["on" if liar else "off"] = {"best_median": statistics.median(best), "best_mean": statistics.mean(best),
                                        "nearest_running_mean": statistics.mean(close)}
        print(f"  constant_liar={liar}: best (median of {seeds}) {statistics.median(best):.4f}, nearest "
              f"concurrently running trial {statistics.mean(close):.3f}", flush=True)
    return out


# -- 4. the seed's exercise: 3 workers x 150 trials on PostgreSQL -------------------------------
def bench_contribution(url: str, n_trials: int) -> dict:
    spec = {
        "study": f"exercise3-{uuid.uuid4().hex[:6]}",
        "data": {"source": "pmlb:pima"},
        "model": {"family": ["linear", "knn"]},
        "objectives": ["accuracy", "model_size_kb"],
        "search": {"n_trials": n_trials, "n_workers": 3, "cv_folds": 3, "seed": 0},
        "output_dir": str(SCRATCH_OUT / "exercise3"),
    }
    started = time.perf_counter()
    result = tuneops.run(spec, storage=url)
    wall = time.perf_counter() - started
    section = result.results["workers"]
    print(f"  exercise 3: {result.results['n_trials']} in {wall:.0f} s", flush=True)
    for r in section["workers"]:
        print(f"    {r['worker']:14s} complete {r['complete']:3d} pruned {r['pruned']} failed {r['failed']} "
              f"busy {r['busy_s']:.0f} s Pareto {r['pareto']} ({r['pareto_share']:.0%})", flush=True)
    return {"wall_s": wall, "n_trials": result.results["n_trials"], "workers": section["workers"],
            "front": len(result.results["pareto_front"])}


# -- 5. SIGKILL one of 4 workers every 10 s ---------------------------------------------------
WORKER = """
import sys, time, optuna
sys.path.insert(0, {bench!r})
from bench_distributed import Sleep
from tuneops import runner
from tuneops.samplers import make_sampler
from tuneops.storage import get_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
url, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
study = optuna.load_study(study_name=name, storage=get_storage(url),
                          sampler=make_sampler("auto", seed=None, conditional=True))
runner.work(study, Sleep(seconds))
"""


def bench_sigkill(url: str, n_trials: int, seconds: float, every_s: float, workers: int = 4) -> dict:
    name = f"sigkill-{uuid.uuid4().hex[:6]}"
    study = optuna.create_study(study_name=name, storage=get_storage(url))
    runner.set_budget(study, n_trials)
    code = WORKER.format(bench=str(Path(__file__).parent))

    def spawn() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", code, url, name, str(seconds)], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    procs = [spawn() for _ in range(workers)]
    rng = random.Random(0)
    kills, started, next_kill = [], time.time(), time.time() + every_s
    while True:
        time.sleep(0.2)
        if all(p.poll() is not None for p in procs):
            break
        if time.time() >= next_kill:
            alive = [p for p in procs if p.poll() is None]
            victim = rng.choice(alive)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills.append({"pid": victim.pid, "at": time.time()})
            procs.remove(victim)
            procs.append(spawn())  # a replacement joins, as a supervisor would restart it
            next_kill += every_s
    wall = time.time() - started
    for p in procs:
        p.wait()
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    abandoned = [t for t in trials if "abandoned" in t.user_attrs]
    configs = [tuple(sorted(t.params.items())) for t in complete]
    retries = [t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs]
    recovery = []
    for t in abandoned:
        pid = t.user_attrs["worker"]["pid"]
        kill = next((k["at"] for k in kills if k["pid"] == pid), None)
        if kill is not None and t.datetime_complete is not None:
            recovery.append(t.datetime_complete.timestamp() - kill)
    out = {"trials": n_trials, "workers": workers, "kills": len(kills), "wall_s": wall,
           "complete": len(complete), "abandoned": len(abandoned),
           "duplicate_configs": len(configs) - len(set(configs)),
           "duplicate_retries": len(retries) - len(set(retries)),
           "left_running_or_waiting": sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials),
           "max_recovery_s": max(recovery) if recovery else None}
    print(f"  SIGKILL: {out}", flush=True)
    return out


# -- report ---------------------------------------------------------------------------------------
def _rate_overhead(row: dict) -> float:
    """The overhead computed from the rate columns: plain's median trials/s over tuneops' - 1."""
    return row["plain_trials_per_s"] / row["tuneops_trials_per_s"] - 1


def overhead_summary(rows: list[dict]) -> dict:
    """Both statistics of the overhead over the throughput rows (they differ: the median of a
    row's per-run ratios is not the ratio of its two sides' median rates, which may come from
    different runs)."""
    return {"per_run": statistics.median(r["overhead"] for r in rows),
            "rates": statistics.median(_rate_overhead(r) for r in rows)}


def markdown(res: dict, command: str) -> str:
    """The section's text from ``res``; a part that is not in ``res`` (``--parts`` without
    ``--reuse``) is said to be missing, not rendered."""
    run_at, load = res.get("run_at", {}), res.get("load", {})
    when = "; ".join(f"{part}: {at}, load average {load.get(part, 'not recorded')}" for part, at in run_at.items())
    missing = [p for p, key in PART_KEYS.items() if key not in res]
    lines = [f"Command: `{res.get('command', command)}` (`--parts` reruns some parts; `--reuse FILE` keeps "
             "the other parts' figures from an earlier results.json; a run that writes this section "
             "copies its results.json to `benchmarks/results/distributed.json`). PostgreSQL 15 and redis-server on loopback, "
             "started by the script. The machine has 2 cores; absolute times are not comparable across rows "
             "or runs, so each comparison with plain Optuna is run side by side, alternating which goes "
             f"first, and reported as a ratio. Figures measured at (with the load average): {when}.",
             "",
             "Up to 16 workers share the 2 cores, so the trivial objective measures what a trial costs in "
             "storage and sampler work (CPU-bound for both contenders alike), and the sleep objective "
             "measures coordination overhead: a sleeping worker holds no CPU, as a worker waiting on a "
             "GPU or a remote fit would not.",
             ""]
    if missing:
        lines += [f"Not in this run (run them, or pass `--reuse` with an earlier results.json): "
                  f"{', '.join(missing)}.", ""]
    if "throughput" in res:
        lines += [f"**1. Throughput, trivial objective** ({res['throughput_trials']} trials per run, median of "
                  f"{res['repeats']} alternating runs after one untimed warm-up run of each, every run on an "
                  "empty store; tuneops = `tuneops.tune` with its global budget, heartbeats, worker records and "
                  "results.json; plain = "
                  "`optuna.create_study` + `study.optimize(n_trials=n/N)` in N forked processes + reading the "
                  "trials back (as tuneops does for results.json), same TPE sampler settings, same storage). "
                  "Two overhead columns: the median of the per-run ratios (tuneops wall / plain wall, each "
                  "pair of runs side by side), and the overhead computed from the two rate columns (each "
                  "side's median trials/s, which may come from different runs):",
                  "",
                  "| storage | workers | plain Optuna trials/s | tuneops trials/s | overhead, median of per-run "
                  "ratios | overhead, from the rate columns | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in res["throughput"]:
            lines.append(f"| {r['storage']} | {r['workers']} | {r['plain_trials_per_s']:.1f} | "
                         f"{r['tuneops_trials_per_s']:.1f} | {r['overhead']:+.1%} | {_rate_overhead(r):+.1%} | "
                         f"{r['errors']} |")
        both = overhead_summary(res["throughput"])
        by_store: dict[str, list[dict]] = {}
        for r in res["throughput"]:
            by_store.setdefault(r["storage"], []).append(r)
        per_store = ", ".join(f"{k} {overhead_summary(v)['per_run']:+.1%} / {overhead_summary(v)['rates']:+.1%}"
                              for k, v in by_store.items())
        lines += ["", f"Median overhead over all rows (target <= +5%): **{both['per_run']:+.1%}** as the median of "
                  f"the per-run ratios, **{both['rates']:+.1%}** from the rate columns; per storage (per-run / "
                  f"rates): {per_store}. Errors at 16 workers: "
                  f"{sum(r['errors'] for r in res['throughput'] if r['workers'] == 16)}.", ""]
    if "statements" in res:
        st = res["statements"]
        rows = [("PostgreSQL", "PostgreSQL: SQL statements")]
        if "journal file fsync|plain" in st:
            how = ("SQL statements counted with a SQLAlchemy event hook; on the journal file the lines the "
                   "run added to the file (entries) and the `os.fsync` calls on it (writes: one lock, one "
                   "write, one fsync each; tuneops writes a trial's last entries in one)")
            rows += [("journal file", "journal file: entries"), ("journal file fsync", "journal file: fsync'd writes")]
        else:
            how = ("SQL statements counted with a SQLAlchemy event hook, journal entries at Optuna's "
                   "`JournalFileBackend.append_logs`, which tuneops wrote through when this ran; it writes "
                   "through its own backend since 2026-12-06, where that hook counts nothing")
            rows += [("journal file", "journal file: journal entries")]
        lines += [f"**Storage work per trial** (one worker, {st['trials']} trials of the trivial objective, "
                  f"the run's fixed work included; {how}):", "",
                  "| storage | plain Optuna | tuneops | ratio |", "|---|---:|---:|---:|"]
        for key, label in rows:
            a, b = st[f"{key}|plain"], st[f"{key}|tuneops"]
            lines.append(f"| {label} | {a:.1f} | {b:.1f} | {b / a:.2f} |" if a else f"| {label} | {a:.1f} | {b:.1f} | - |")
        lines.append("")
    if "efficiency" in res:
        e = res["efficiency"]
        lines += [f"**2. Parallel efficiency** ({e['trials']} trials of a {e['seconds']:g}-second sleep objective, "
                  "PostgreSQL, one untimed warm-up run of each first; one run with 1 worker, and with "
                  f"{e['workers']} workers the median of {e.get('repeats', 1)} alternating runs"
                  + (f": tuneops {', '.join(f'{w:.1f}' for w in e['walls_n_s']['tuneops'])} s, plain Optuna "
                     f"{', '.join(f'{w:.1f}' for w in e['walls_n_s']['plain'])} s" if "walls_n_s" in e else "")
                  + "):", "",
                  "| run | wall time | ideal | efficiency (speed-up / workers) |", "|---|---:|---:|---:|",
                  f"| tuneops, 1 worker | {e['wall_1_s']:.1f} s | {e['trials'] * e['seconds']:.0f} s | |",
                  f"| tuneops, {e['workers']} workers | {e['wall_n_s']:.1f} s | {e['ideal_n_s']:.0f} s | "
                  f"**{e['efficiency']:.2f}** |"]
        if "plain_wall_1_s" in e:
            lines += [f"| plain Optuna, 1 worker | {e['plain_wall_1_s']:.1f} s | {e['trials'] * e['seconds']:.0f} s | |",
                      f"| plain Optuna, {e['workers']} workers | {e['plain_wall_n_s']:.1f} s | {e['ideal_n_s']:.0f} s | "
                      f"{e['plain_efficiency']:.2f} |",
                      "", f"tuneops efficiency **{e['efficiency']:.2f}** (target >= 0.9); plain Optuna on the same "
                      f"machine in the same run {e['plain_efficiency']:.2f}. Wall time tuneops / plain: "
                      f"{e['wall_1_s'] / e['plain_wall_1_s']:.2f} with 1 worker, "
                      f"{e['wall_n_s'] / e['plain_wall_n_s']:.2f} with {e['workers']}.", ""]
        else:
            lines += [f"| plain Optuna, {e['workers']} workers | {e['plain_wall_n_s']:.1f} s | {e['ideal_n_s']:.0f} s | |",
                      "", f"Efficiency **{e['efficiency']:.2f}** (target >= 0.9).", ""]
    if "constant_liar" in res:
        c = res["constant_liar"]
        lines += [f"**3. Parallel-aware sampling** (TPE, {res['liar_workers']} workers, {res['liar_trials']} trials "
                  f"of a sleep objective on a 2-D quadratic, {res['liar_seeds']} seeds; the distance is from each "
                  "trial to the nearest trial that was running when it started, in units of the search box):", "",
                  "| TPE constant_liar | best value (median) | best value (mean) | distance to nearest running trial |",
                  "|---|---:|---:|---:|",
                  f"| on (tuneops default) | {c['on']['best_median']:.4f} | {c['on']['best_mean']:.4f} | {c['on']['nearest_running_mean']:.3f} |",
                  f"| off | {c['off']['best_median']:.4f} | {c['off']['best_mean']:.4f} | {c['off']['nearest_running_mean']:.3f} |",
                  "", f"With constant liar on, trials started {c['on']['nearest_running_mean']:.3f} from the nearest "
                  f"running trial against {c['off']['nearest_running_mean']:.3f} with it off (larger: workers spread "
                  f"out); the median best value was {c['on']['best_median']:.4f} against {c['off']['best_median']:.4f} "
                  f"(lower is better). {res['liar_seeds']} seeds, one run each, are too few to rank the best values.", ""]
    if "contribution" in res:
        x = res["contribution"]
        lines += [f"**4. The seed's exercise 3**: 3 workers, {sum(x['n_trials'].values())} trials, PostgreSQL, "
                  f"pmlb:pima, linear + knn, objectives accuracy and model size; {x['n_trials']} in "
                  f"{x['wall_s']:.0f} s; Pareto front of {x['front']} trials. `tuneops show STUDY` prints this table "
                  "and results.json holds it under `workers`:", "",
                  "| worker | complete | pruned | failed | busy | Pareto share |", "|---|---:|---:|---:|---:|---:|"]
        for r in x["workers"]:
            lines.append(f"| {r['worker']} | {r['complete']} | {r['pruned']} | {r['failed']} | {r['busy_s']:.0f} s | "
                         f"{r['pareto']} ({r['pareto_share']:.0%}) |")
        lines.append("")
    if "sigkill" in res:
        k = res["sigkill"]
        lines += [f"**5. SIGKILL** one of {k['workers']} workers every {res['kill_every_s']:g} s (a replacement "
                  f"starts at once) during a {k['trials']}-trial run of a {res['kill_sleep_s']:g}-second objective on "
                  f"PostgreSQL: {k['kills']} kills, **{k['complete']} complete trials**, {k['abandoned']} abandoned "
                  f"(re-queued once each), duplicate configurations among complete trials: "
                  f"{k['duplicate_configs']}, trials left running or waiting: {k['left_running_or_waiting']}, "
                  f"slowest recovery after a kill: "
                  f"{'n/a' if k['max_recovery_s'] is None else format(k['max_recovery_s'], '.1f') + ' s'}; "
                  f"wall time {k['wall_s']:.0f} s.", ""]
    lines += _findings(res)
    return "\n".join(lines)


def _findings(res: dict) -> list[str]:
    """What the figures say, from the figures (the causes were measured, see docs/benchmarks.md)."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "missed"

    out = ["**What the numbers say.**", ""]
    if "throughput" in res and "sigkill" in res:
        k = res["sigkill"]
        out += [f"* Budget and fault tolerance hold: "
                f"{sum(r['errors'] for r in res['throughput'] if r['workers'] == 16)} "
                f"errors at 16 workers on every storage, {k['complete']} complete trials of {k['trials']} after "
                f"{k['kills']} SIGKILLs with {k['duplicate_configs'] or 'no'} configuration run twice, and every "
                "test of the budget (exact counts with 4 workers on every storage, workers finishing a budget "
                "whose owner is gone, a trial created beyond the budget, lowered and raised budgets, a worker "
                "killed right after creating its trial) passes."]
    if "throughput" in res:
        rows = res["throughput"]
        both = overhead_summary(rows)
        by_workers = {n: overhead_summary([r for r in rows if r["workers"] == n])
                      for n in sorted({r["workers"] for r in rows})}
        above = [r for r in rows if r["overhead"] > 0.05]
        above_rates = [r for r in rows if _rate_overhead(r) > 0.05]
        out += [f"* Overhead against plain Optuna (target <= +5%): **{verdict(both['per_run'] <= 0.05)}** on the "
                f"median over rows of the per-run ratios (**{both['per_run']:+.1%}**), "
                f"**{verdict(both['rates'] <= 0.05)}** on the median over rows of the overhead computed from the "
                f"rate columns (**{both['rates']:+.1%}**). The two statistics differ because a row's per-run "
                "ratios pair runs made side by side while each rate is one side's median over its runs, which "
                "may come from different runs; with "
                f"{res['repeats']} run(s) per row neither is steady. By number of workers (median over the "
                "storages, per-run / rates): "
                + ", ".join(f"{n}: {v['per_run']:+.1%} / {v['rates']:+.1%}" for n, v in by_workers.items())
                + f". Rows above +5%: {len(above)} of {len(rows)} by per-run ratios ("
                + ", ".join(f"{r['storage']} {r['workers']}: {r['overhead']:+.1%}" for r in above)
                + f"), {len(above_rates)} of {len(rows)} from the rate columns. A run of "
                f"{res['throughput_trials']} trivial trials lasts one to a few seconds, so single "
                "rows move by 10-20 points between runs; the counts of storage work are the "
                "steadier measure. The excess grows with the number of workers on these 2 cores: with 16, "
                "workers that create a trial just as the last place of the budget is taken retire theirs unrun "
                "(a create and two writes each, a few per run with a trivial objective), and on Redis the "
                "tuneops workers used more CPU than plain Optuna's in a probe (8 workers: about +10-20%) "
                "although they make fewer storage reads; the cause was not found."]
    if "statements" in res:
        st = res["statements"]
        pg = st["PostgreSQL|tuneops"] / st["PostgreSQL|plain"] - 1
        jr = st["journal file|tuneops"] / st["journal file|plain"] - 1
        text = (f"* Storage work per trial, one worker: on PostgreSQL tuneops issues {pg:+.0%} SQL statements "
                f"against plain Optuna, on the journal file {jr:+.0%} entries")
        if "journal file fsync|plain" in st:
            fs = st["journal file fsync|tuneops"] / st["journal file fsync|plain"] - 1
            text += f" in {fs:+.0%} fsync'd writes"
        out += [text + " (the run's own writes included: study attributes, the budget record, the reads for "
                "results.json). A worker creates its trial with its record in the same write, as `study.ask()` "
                "creates one, and its loop's read of the trials serves the sampler (`study.ask()` reads the "
                "queue, then the trials)."]
    if "efficiency" in res and "plain_wall_1_s" in res["efficiency"]:
        e = res["efficiency"]
        per_second = e["wall_1_s"] / e["workers"] / e["wall_n_s"] ** 2
        out += [f"* Parallel efficiency **{e['efficiency']:.2f}** against a target of 0.9: "
                f"**{verdict(e['efficiency'] >= 0.9)}**; plain Optuna on the same machine in the same run: "
                f"{e['plain_efficiency']:.2f}. tuneops took {e['wall_1_s'] / e['plain_wall_1_s']:.2f}x plain "
                f"Optuna's wall time with one worker and {e['wall_n_s'] / e['plain_wall_n_s']:.2f}x with "
                f"{e['workers']}. At these wall times each second more for the {e['workers']} workers costs "
                f"{per_second:.2f} of efficiency."]
    out.append("")
    return out


def write_section(text: str) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    content = doc.read_text()
    head = "## Distributed and fault-tolerant tuning (issue 4)"
    start = content.index(head) + len(head)
    end = content.find("\n## ", start)
    end = len(content) if end == -1 else end
    doc.write_text(content[:start] + "\n\n" + text.strip() + "\n\n\n" + content[end:].lstrip("\n"))


PARTS = ("throughput", "statements", "efficiency", "liar", "contribution", "sigkill")
# the key of each part's figures in results.json
PART_KEYS = {"throughput": "throughput", "statements": "statements", "efficiency": "efficiency",
             "liar": "constant_liar", "contribution": "contribution", "sigkill": "sigkill"}




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    parser.add_argument("--reuse", help="results.json of an earlier run: keep its figures for parts not run")
    parser.add_argument("--render", metavar="FILE",
                        help="run nothing: print (and unless --no-write, write) the section from a results.json, "
                        "e.g. benchmarks/results/distributed.json")
    args = parser.parse_args()
    if args.render:
        res = json.loads(Path(args.render).read_text())
        text = markdown(res, res.get("command", "python benchmarks/bench_distributed.py"))
        print(text)
        if not args.no_write:
            write_section(text)
            print("\nwrote docs/benchmarks.md")
        return
    parts = [p for p in args.parts.split(",") if p]
    command = "python benchmarks/bench_distributed.py" + (" --quick" if args.quick else "")
    if parts and set(parts) != set(PARTS):
        command += f" --parts {','.join(parts)}" + (" --reuse EARLIER/results.json" if args.reuse else "")
    from servers import PostgresServer, RedisServer

    q = args.quick
    res: dict = json.loads(Path(args.reuse).read_text()) if args.reuse else {}
    stamp = _common_stamp()
    res.setdefault("run_at", {})
    pg, rd = PostgresServer().start(), RedisServer().start()
    load_start = os.getloadavg()[0]
    # kept after the run: its results.json is what --reuse reads
    tmp = Path(tempfile.mkdtemp(prefix="tuneops-bench-"))
    try:
        print(f"servers: {mask_url(pg.url)}, {rd.url}", flush=True)
        if "throughput" in parts:
            import redis

            def empty_redis() -> str:
                redis.Redis.from_url(rd.url).flushdb()
                return rd.url

            files = iter(range(10**6))
            stores = {"journal file": lambda: str(tmp / f"bench-{next(files)}.journal"),
                      "PostgreSQL": lambda: pg.url,  # queries are per study: other studies cost nothing
                      "Redis": empty_redis}
            res["throughput_trials"] = 48 if q else 200
            res["repeats"] = 1 if q else 3
            res["throughput"] = bench_throughput(stores, [1, 4, 16] if q else [1, 2, 4, 8, 16],
                                                 res["throughput_trials"], res["repeats"])
        if "statements" in parts:
            res["statements"] = bench_statements(pg.url, str(tmp / "statements.journal"), 30)
        if "efficiency" in parts:
            res["efficiency"] = bench_efficiency(pg.url, 40 if q else 160, 0.25 if q else 1.0, 8)
        if "liar" in parts:
            res["liar_workers"], res["liar_trials"], res["liar_seeds"] = 8, (48 if q else 64), (2 if q else 3)
            res["constant_liar"] = bench_constant_liar(lambda tag: str(tmp / f"{tag}.journal"), res["liar_trials"],
                                                       res["liar_workers"], 0.1, res["liar_seeds"])
        if "contribution" in parts:
            res["contribution"] = bench_contribution(pg.url, 30 if q else 150)
        if "sigkill" in parts:
            res["kill_every_s"], res["kill_sleep_s"] = (8.0, 0.3) if q else (10.0, 1.0)
            res["sigkill"] = bench_sigkill(pg.url, 60 if q else 200, res["kill_sleep_s"], res["kill_every_s"])
        load = f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
        stamp = f"{stamp.split(' UTC')[0]}-{time.strftime('%H:%M', time.gmtime())} UTC{stamp.split(' UTC')[1]}"
        if parts:
            res["command"] = command
        for part in parts:
            res["run_at"][part] = stamp
            res.setdefault("load", {})[part] = load
    finally:
        pg.stop()
        rd.stop()
    (tmp / "results.json").write_text(json.dumps(res, indent=1, default=str))
    print(f"results: {tmp / 'results.json'}")
    text = markdown(res, command)
    print("\n" + text)
    if not args.no_write:
        write_section(text)
        (ROOT / "benchmarks" / "results" / "distributed.json").write_text(json.dumps(res, indent=1, default=str))
        print("\nwrote docs/benchmarks.md and benchmarks/results/distributed.json")


if __name__ == "__main__":
    main()
