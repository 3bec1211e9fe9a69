"""tuneops' own cost per trial, its memory, and the end of a large study, against plain Optuna.

A trivial objective (one objective: ``x ** 2``; two: ``(x, 1 - x + 0.01 y)``, whose Pareto
front holds about an eighth of the trials, so fronts and hypervolumes have real work) runs
``--trials`` trials with Optuna's RandomSampler (the sampler's cost is Optuna's, not tuneops')
in two ways, each in its own child process, interleaved (plain, tuneops, tuneops, plain, ...):

* **plain Optuna**: ``optuna.create_study(...).optimize(objective, n_trials=N)`` on the same
  storage;
* **tuneops**: ``tuneops.tune(objective, n_trials=N, sampler="random", storage=URL)``: the global
  budget, claims, heartbeat, constraint wrapper, and at the end selection, ``results.json``.

Storages: a journal file, and PostgreSQL 15 on loopback (started as tests/servers.py does; a
fresh database per run). Measured in the children with ``time.process_time`` (every thread of
the process) and ``resource.getrusage``:

1. **own CPU per trial**, per window of ``--window`` trials: the objective stamps the CPU clock
   at every call; tuneops' CPU per trial in a window minus plain Optuna's in the same window.
   Target: <= 0.5 ms at every window, flat.
2. **peak RSS** (``ru_maxrss``) of each child. Target: tuneops <= plain Optuna + 30 MB.
3. **end of a two-objective study**: the CPU after the last trial's objective returned until
   ``tune()`` returned (selection, results, results.json), then ``python -m tuneops show`` and
   ``python -m tuneops report`` in fresh processes (imports included; CPU from
   ``RUSAGE_CHILDREN``). Target: <= 5 s of CPU in all.

    python benchmarks/bench_overhead.py              # 10,000 trials, journal and PostgreSQL
    python benchmarks/bench_overhead.py --quick      # 2,000 trials, journal only
    python benchmarks/bench_overhead.py --no-write   # leave docs/benchmarks.md alone
    python benchmarks/bench_overhead.py --end-only --stores journal --objectives 2
                                                     # 3. only: tuneops runs, no plain Optuna
    python benchmarks/bench_overhead.py --end-only --stores journal --objectives 2 --repeats 2 \
        --baseline ../before      # 3. side by side with another checkout's src/, made e.g. by
                                  # git archive COMMIT | tar -x -C ../before
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, child_env, command_line, render_table, write_doc_block  # noqa: E402

SECTION = "## Overhead (issue 15)"
TARGET_MS = 0.5
TARGET_RSS_MB = 30.0
TARGET_END_S = 5.0
TOOLS = ("optuna", "tuneops")


# -- children -----------------------------------------------------------------------------------
def _objective(n_objectives: int, stamps: list[float]) -> Any:
    def objective(trial: Any) -> Any:
        stamps.append(time.process_time())
        x = trial.suggest_float("x", 0.0, 1.0)
        if n_objectives == 1:
            return x * x
        y = trial.suggest_float("y", 0.0, 1.0)
        if n_objectives == 3:  # DTLZ2's sphere: every point is on the front (the worst case)
            a, b = x * math.pi / 2, y * math.pi / 2
            return math.cos(a) * math.cos(b), math.cos(a) * math.sin(b), math.sin(a)
        return x, 1.0 - x + 0.01 * y

    return objective


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def child_run(
    tool: str, url: str, n_objectives: int, n_trials: int, study: str, out_dir: str
) -> dict[str, Any]:
    """One run in this (fresh) process; returns CPU stamps, peak RSS and the end-of-run CPU."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stamps: list[float] = []
    objective = _objective(n_objectives, stamps)
    directions = ["minimize"] * n_objectives
    names = ["value"] if n_objectives == 1 else [f"f{i + 1}" for i in range(n_objectives)]
    rss_before = _rss_mb()
    if tool == "optuna":
        storage: Any = url
        if "://" not in url:
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            storage = JournalStorage(JournalFileBackend(url))
        else:  # only here: plain Optuna on a journal file loads nothing of tuneops
            from tuneops.storage import engine_url  # the same driver as tuneops (psycopg 3)

            storage = engine_url(url)
        s = optuna.create_study(
            study_name=study,
            storage=storage,
            directions=directions,
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        start = time.process_time()
        s.optimize(objective, n_trials=n_trials)
        end = time.process_time()
        extra: dict[str, Any] = {}
    else:
        import tuneops

        start = time.process_time()
        result = tuneops.tune(
            objective,
            objectives=names,
            directions=directions,
            n_trials=n_trials,
            sampler="random",
            storage=url,
            study=study,
            output_dir=out_dir,
        )
        end = time.process_time()
        extra = {
            "front": len(result.choice.front) if result.choice else 0,
            "selected": result.choice.selected.number if result.choice else None,
        }
    return {
        "tool": tool,
        "n_trials": len(stamps),
        "stamps": stamps,
        "start_cpu_s": start,
        "end_cpu_s": end,
        "after_last_s": end - stamps[-1],
        "rss_mb": _rss_mb(),
        "rss_before_mb": rss_before,
        **extra,
    }


# -- parent -------------------------------------------------------------------------------------
def _env(src: Path | None) -> dict[str, str]:
    """A child's environment: this checkout's ``src`` first on the path, or ``src``'s."""
    env = child_env()
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), env["PYTHONPATH"]])
    return env


def _spawn(args: list[str], src: Path | None = None) -> tuple[dict[str, Any], float]:
    """Run this script as a child (tuneops from ``src``, default this checkout); returns its
    JSON answer and its CPU (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=_env(src), cwd=ROOT
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(done.stdout.strip().splitlines()[-1]), cpu


def _command_cpu(argv: list[str], src: Path | None = None) -> float:
    """CPU (user + system) of ``python -m tuneops ARGV`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "tuneops", *argv],
        capture_output=True,
        text=True,
        env=_env(src),
        cwd=ROOT,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(
            f"tuneops {' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-4000:]}"
        )
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def windows(stamps: list[float], size: int) -> list[float]:
    """CPU ms per trial in consecutive windows of ``size`` trials (the last may be shorter)."""
    out = []
    for a in range(0, len(stamps) - 1, size):
        b = min(a + size, len(stamps) - 1)
        out.append(1000.0 * (stamps[b] - stamps[a]) / (b - a))
    return out


class Stores:
    """Storage URLs for one run each: a new journal file, or a new PostgreSQL database."""

    def __init__(self, tmp: Path, with_postgres: bool) -> None:
        self.tmp, self.pg, self.n = tmp, None, 0
        if with_postgres:
            sys.path.insert(0, str(ROOT / "tests"))
            from servers import PostgresServer

            self.pg = PostgresServer().start()

    def url(self, store: str) -> str:
        self.n += 1
        if store == "journal":
            return str(self.tmp / f"run{self.n}.journal")
        import sqlalchemy

        from tuneops.storage import engine_url

        assert self.pg is not None
        engine = sqlalchemy.create_engine(engine_url(self.pg.url), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE run{self.n}"))
        engine.dispose()
        return self.pg.url.rsplit("/", 1)[0] + f"/run{self.n}"

    def close(self) -> None:
        if self.pg is not None:
            self.pg.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 trials, journal only")
    parser.add_argument("--trials", type=int, help="trials per run (default 10,000; --quick 2,000)")
    parser.add_argument("--window", type=int, default=500, help="trials per window of the overhead")
    parser.add_argument("--stores", help="comma-separated: journal,postgresql")
    parser.add_argument("--objectives", default="1,2", help="comma-separated numbers of objectives")
    parser.add_argument("--repeats", type=int, default=1, help="runs per tool and configuration")
    parser.add_argument("--no-write", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument(
        "--end-only",
        action="store_true",
        help="only the end of a study (end of run, show, report): tuneops runs of 2+ "
        "objectives, no plain Optuna, no per-trial or memory figures",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="with --end-only: a checkout of the code to compare with (its src/ is used); each "
        "repeat runs it and this checkout in turn, alternating which goes first",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline is not None and not args.end_only:
        parser.error("--baseline compares the end of a study: give --end-only too")
    baseline_src = None if args.baseline is None else args.baseline.resolve() / "src"
    if baseline_src is not None and not (baseline_src / "tuneops").is_dir():
        parser.error(f"--baseline: expected a checkout with src/tuneops, received {args.baseline}")
    if args.child:
        print(json.dumps(child_run(**json.loads(args.child))))
        return 0
    n_trials = args.trials or (2000 if args.quick else 10_000)
    stores = (args.stores or ("journal" if args.quick else "journal,postgresql")).split(",")
    objectives = [int(n) for n in args.objectives.split(",")]
    tools = ("tuneops",) if args.end_only else TOOLS
    if args.end_only:
        objectives = [n for n in objectives if n >= 2]
        if not objectives:
            parser.error("--end-only measures multi-objective studies: give --objectives 2 or 3")
    command = command_line([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    print(command, flush=True)
    load_start = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="tuneops-overhead-"))
    pool = Stores(tmp, "postgresql" in stores)
    runs: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = {}
    ends: list[dict[str, Any]] = []
    try:
        for store in stores:
            for n_obj in objectives:
                key = (store, n_obj)
                runs[key] = {t: [] for t in tools}
                order = [
                    tools[(i + r) % len(tools)]
                    for r in range(args.repeats)
                    for i in range(len(tools))
                ]
                codes: list[Path | None] = [None] * len(order)
                if baseline_src is not None:  # baseline, this, this, baseline, ...
                    order = [t for t in order for _ in range(2)]
                    codes = [(baseline_src, None)[(i + i // 2) % 2] for i in range(len(order))]
                for tool, src in zip(order, codes, strict=True):  # optuna, tuneops, tuneops, ...
                    url = pool.url(store)
                    spec = {
                        "tool": tool,
                        "url": url,
                        "n_objectives": n_obj,
                        "n_trials": n_trials,
                        "study": f"overhead-{n_obj}",
                        "out_dir": str(tmp / f"out{pool.n}"),
                    }
                    res, cpu = _spawn(["--child", json.dumps(spec)], src)
                    res["process_cpu_s"] = cpu
                    runs[key][tool].append(res)
                    print(
                        f"{store} {n_obj} obj {tool:8s} CPU {cpu:6.1f} s, "
                        f"peak RSS {res['rss_mb']:.0f} MB, "
                        f"after the last trial {res['after_last_s']:.2f} s",
                        flush=True,
                    )
                    if tool == "tuneops" and n_obj >= 2:
                        show = _command_cpu(["show", spec["study"], "--storage", url], src)
                        report = _command_cpu(
                            [
                                "report",
                                spec["study"],
                                "--storage",
                                url,
                                "--out",
                                str(tmp / f"report{pool.n}.html"),
                            ],
                            src,
                        )
                        # For scale: `show` once more with the journal's snapshot removed,
                        # so it replays the whole journal (as every reader did before it).
                        replay = None
                        if store == "journal":
                            # not at the top: the children (plain Optuna) must not load tuneops
                            from tuneops.storage import snapshot_path

                            snapshot_path(url).unlink(missing_ok=True)
                            replay = _command_cpu(["show", spec["study"], "--storage", url], src)
                        ends.append(
                            {
                                "code": "this" if src is None else "baseline",
                                "store": store,
                                "n_objectives": n_obj,
                                "after_last_s": res["after_last_s"],
                                "show_s": show,
                                "report_s": report,
                                "show_replay_s": replay,
                                "front": res.get("front"),
                            }
                        )
                        print(
                            f"  {'baseline' if src else 'this checkout'}: "
                            f"end of run {res['after_last_s']:.2f} s, show {show:.2f} s, "
                            f"report {report:.2f} s CPU (front of {res.get('front')}); "
                            f"show replaying the journal {replay or 0:.2f} s",
                            flush=True,
                        )
    finally:
        pool.close()
    load_end = os.getloadavg()[0]
    if args.end_only:
        body = summarize_end(ends, n_trials, command, (load_start, load_end))
    else:
        body = summarize(runs, ends, n_trials, args.window, command, (load_start, load_end))
    print(body)
    out = ROOT / "benchmarks" / "out" / f"bench_overhead-{'-'.join(stores)}-{n_trials}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"runs": {f"{k[0]}-{k[1]}": v for k, v in runs.items()}, "ends": ends})
    )
    if not args.no_write:  # one block per configuration: a run replaces only its own figures
        kind = "bench_overhead end" if args.end_only else "bench_overhead"
        key = f"{kind} {','.join(stores)} {args.objectives} {n_trials}"
        write_doc_block(key, body, SECTION)
    return 0


def summarize(
    runs: dict[tuple[str, int], dict[str, list[dict[str, Any]]]],
    ends: list[dict[str, Any]],
    n_trials: int,
    window: int,
    command: str,
    load: tuple[float, float],
) -> str:
    """The Markdown block: overhead per window, peak RSS, end of run; targets met or not."""
    over_rows, rss_rows, verdicts = [], [], []
    for (store, n_obj), by_tool in runs.items():
        per_tool = {t: [windows(r["stamps"], window) for r in by_tool[t]] for t in TOOLS}
        med = {t: [statistics.median(w) for w in zip(*per_tool[t], strict=True)] for t in TOOLS}
        own = [a - b for a, b in zip(med["tuneops"], med["optuna"], strict=True)]
        shown = sorted({0, len(own) // 4, len(own) // 2, 3 * len(own) // 4, len(own) - 1})
        cells = [f"{own[i]:+.2f} ({med['optuna'][i]:.2f})" for i in shown]
        over_rows.append([store, n_obj, *cells, f"{max(own):+.2f}"])
        ok = max(own) <= TARGET_MS
        verdicts.append(
            f"own CPU per trial, {store}, {n_obj} objective(s): max {max(own):+.2f} ms "
            f"{'<=' if ok else '>'} {TARGET_MS} ms"
        )
        rss = {t: statistics.median(r["rss_mb"] for r in by_tool[t]) for t in TOOLS}
        rss_rows.append(
            [store, n_obj, rss["optuna"], rss["tuneops"], rss["tuneops"] - rss["optuna"]]
        )
        ok = rss["tuneops"] - rss["optuna"] <= TARGET_RSS_MB
        verdicts.append(
            f"peak RSS, {store}, {n_obj} objective(s): +{rss['tuneops'] - rss['optuna']:.0f} MB "
            f"{'<=' if ok else '>'} {TARGET_RSS_MB:.0f} MB"
        )
    n_windows = -(-(n_trials - 1) // window)
    idx = sorted({0, n_windows // 4, n_windows // 2, 3 * n_windows // 4, n_windows - 1})
    heads = [f"trials {i * window + 1}-{min((i + 1) * window, n_trials)}" for i in idx]
    end_table, end_verdicts = _end_table(ends)
    verdicts += end_verdicts
    return "\n".join(
        [
            f"`{command}` (load average {load[0]:.1f} at the start, {load[1]:.1f} at the end, on "
            f"{os.cpu_count()} cores; {n_trials} trials per run, RandomSampler)",
            "",
            "tuneops' own CPU per trial in ms (tuneops minus plain Optuna, in the same window of "
            f"{window} "
            "trials; in brackets plain Optuna's CPU per trial). Target: <= 0.5 ms everywhere.",
            "",
            render_table(["store", "objectives", *heads, "max"], over_rows),
            "",
            "Peak RSS in MB (`ru_maxrss` of each child process). "
            "Target: tuneops <= plain Optuna + 30 MB.",
            "",
            render_table(
                ["store", "objectives", "plain Optuna", "tuneops", "difference"], rss_rows
            ),
            "",
            *end_table,
            "",
            *[f"- {v}" for v in verdicts],
        ]
    )


def summarize_end(
    ends: list[dict[str, Any]], n_trials: int, command: str, load: tuple[float, float]
) -> str:
    """The Markdown block of ``--end-only``: the end-of-study table and its verdicts."""
    end_table, verdicts = _end_table(ends)
    return "\n".join(
        [
            f"`{command}` (load average {load[0]:.1f} at the start, {load[1]:.1f} at the end, on "
            f"{os.cpu_count()} cores; {n_trials} trials per run, RandomSampler; tuneops only)",
            "",
            *end_table,
            "",
            *[f"- {v}" for v in verdicts],
        ]
    )


def _end_table(ends: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Lines of the end-of-study table, and one verdict per run (with ``--baseline``: a
    ``code`` column, and per code the median and range of each phase)."""
    compared = any(e.get("code") == "baseline" for e in ends)
    verdicts = []
    end_rows = [
        [
            *([e.get("code", "this")] if compared else []),
            e["store"],
            e["n_objectives"],
            e["front"],
            e["after_last_s"],
            e["show_s"],
            e["report_s"],
            e["after_last_s"] + e["show_s"] + e["report_s"],
            "-" if e.get("show_replay_s") is None else e["show_replay_s"],
        ]
        for e in ends
    ]
    for e in ends:
        total = e["after_last_s"] + e["show_s"] + e["report_s"]
        verdicts.append(
            f"end of run + show + report, {e['store']}"
            f"{', ' + e.get('code', 'this') if compared else ''}: {total:.1f} s "
            f"{'<=' if total <= TARGET_END_S else '>'} {TARGET_END_S:.0f} s CPU"
        )
    table = [
        "End of a two-objective study: CPU seconds after the last trial until `tune()` returned, "
        "then `tuneops show` and `tuneops report` in fresh processes (imports included; on a "
        "journal they start from the snapshot the run saved). Target: <= 5 s in all. For scale, "
        "the last column: `show` again without the snapshot (the whole journal replayed).",
        "",
        render_table(
            [
                *(["code"] if compared else []),
                "store",
                "objectives",
                "Pareto front",
                "end of run s",
                "show s",
                "report s",
                "total s",
                "show, replaying s",
            ],
            end_rows,
        ),
    ]
    if compared:
        table += ["", *_medians(ends)]
    return table, verdicts


def _medians(ends: list[dict[str, Any]]) -> list[str]:
    """Per code: the median (range) of each phase over its runs, and this/baseline ratios."""
    phases = {
        "end of run": lambda e: e["after_last_s"],
        "show": lambda e: e["show_s"],
        "report": lambda e: e["report_s"],
        "total": lambda e: e["after_last_s"] + e["show_s"] + e["report_s"],
    }
    medians: dict[str, dict[str, float]] = {}
    lines = []
    for code in ("baseline", "this"):
        runs = [e for e in ends if e.get("code", "this") == code]
        if not runs:
            continue
        parts = []
        for name, of in phases.items():
            values = [of(e) for e in runs]
            medians.setdefault(code, {})[name] = statistics.median(values)
            parts.append(
                f"{name} {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
            )
        lines.append(f"- {code}, median (range) of {len(runs)} run(s), CPU s: {'; '.join(parts)}")
    if len(medians) == 2:
        ratios = ", ".join(
            f"{name} {medians['this'][name] / medians['baseline'][name]:.2f}"
            for name in phases
            if medians["baseline"][name] > 0
        )
        lines.append(f"- this / baseline (medians): {ratios}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
