"""Zero-shot warm start vs cold TPE, the family default and FLAML's zero-shot (issue 18).

Leave-one-dataset-out over the PMLB classification datasets of the knowledge base. For every
target (dataset D, family F) and every seed s (CV folds and sampler seed):

* **warm**: ``tuning.run`` on D with ``warm_start: {auto: {sources: [the base without D]}}``
  (the default strategy: the family's greedy zero-shot portfolio first, then the adaptive
  nearest-task choice; 10 warm trials, what a 40-trial study gets), then TPE, ``--trials``
  trials in all. The base given to the run never holds D or a known near-duplicate of D
  (``tuneops.knowledge.base.RELATED``), by name or fingerprint; the script checks it.
* **cold**: the same spec without warm start (Optuna multivariate TPE). For the build's seed
  the curve recorded by ``tuneops kb build`` is the same run (same spec, folds, sampler seed),
  so its first trials are reused and only the rest is run.
* **default**: the family's estimator with its library defaults (``params = {}``).
* **FLAML zero-shot**: ``flaml.default.suggest_config(task, X, y, learner, k=1)`` (FLAML's
  published zero-shot portfolios; lightgbm, random_forest, extra_trees, xgboost), translated to
  the estimator's parameter names and scored with the same CV. Needs ``flaml`` importable
  (``pip install flaml``; not a tuneops dependency); without it the column is empty.

All scores are the CV accuracy (R^2 with ``--task regression``) of the same folds. Normalized
regret of a curve at trial t: ``(best - best so far) / (best - worst)`` over every score
measured on (D, F, s) by any method.
Cold TPE's run-to-run noise on D: the spread of its best at ``--trials`` over the seeds.

    python benchmarks/bench_warmstart.py --family knn --seeds 0 1 --checkpoint rows.jsonl
    python benchmarks/bench_warmstart.py --from-checkpoint rows.jsonl    # the tables again
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tuneops.knowledge.base import Entry, KnowledgeBase, load_file, load_shipped, related  # noqa: E402

WARM_TRIALS = 10  # what warm_start: auto gives a 40-trial study (max_trials 10, max_share 0.25)
#: FLAML's zero-shot learner for each tuneops family it covers.
FLAML_LEARNER = {
    "lightgbm": "lgbm",
    "random_forest": "rf",
    "extra_trees": "extra_tree",
    "xgboost": "xgb_limitdepth",
}


# -- the runs -----------------------------------------------------------------------------------
def leave_out(kb: KnowledgeBase, entry: Entry) -> KnowledgeBase:
    """The base for ``entry``: without its dataset, near-duplicates and fingerprint (checked)."""
    loo = kb.without(dataset=entry.dataset, fingerprint=entry.fingerprint)
    drop = related(entry.dataset)
    assert not any(
        e.dataset in drop or (entry.fingerprint and e.fingerprint == entry.fingerprint) for e in loo
    ), "leave-one-out leaked the target"
    return loo


def _scores(study: Any, metric: str) -> tuple[list[float | None], list[str | None]]:
    from optuna.trial import TrialState

    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    return (
        [
            t.user_attrs.get("metrics", {}).get(metric) if t.state == TrialState.COMPLETE else None
            for t in trials
        ],
        [t.user_attrs.get("warm_start") for t in trials],
    )


def run_curve(
    entry: Entry, seed: int, n_trials: int, warm: dict[str, Any] | None
) -> tuple[list[float | None], list[str | None]]:
    """Scores (in trial order) and warm-start sources of one study on the target's data."""
    import optuna
    from threadpoolctl import threadpool_limits

    from tuneops.knowledge.build import cold_spec
    from tuneops.tuning import run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        spec = cold_spec(
            entry.dataset, entry.family, entry.task, n_trials=n_trials, cv_folds=3, seed=seed
        )
        spec.update(output_dir=str(Path(tmp) / "out"), storage=":memory:")
        if warm is not None:
            spec["warm_start"] = warm
        result = run(spec)
        return _scores(result.study, entry.metric)


def cold_curve(
    entry: Entry, seed: int, n_trials: int, build_seed: int
) -> tuple[list[float | None], int]:
    """The cold TPE curve; the build's recorded trials are reused for its seed (it is that run)."""
    history = list(entry.history) if seed == build_seed else []
    if len(history) >= n_trials:
        return history[:n_trials], n_trials
    scores, _ = run_curve(entry, seed, n_trials, None)
    if history:  # the same run: the recorded prefix must agree (a check that reusing it is sound)
        pairs = zip(history, scores, strict=False)
        same = sum(abs(a - b) < 1e-9 for a, b in pairs if b is not None)
        if same < len(history) * 0.9:
            print(
                f"  note: {entry.key} seed {seed}: rerun agrees with the build's curve on "
                f"{same}/{len(history)}",
                flush=True,
            )
    return scores, 0


def flaml_params(entry: Entry) -> dict[str, Any] | None:
    """FLAML's zero-shot configuration for the target's data, in the family's parameter names."""
    learner = FLAML_LEARNER.get(entry.family)
    if learner is None:
        return None
    try:
        from flaml.default.suggest import suggest_config
    except ImportError:
        return None
    from tuneops.data import load_dataset

    data = load_dataset(entry.dataset)
    (config,) = suggest_config(entry.task, data.X, data.y, learner, k=1)
    hp = dict(config["hyperparameters"])
    if entry.family in ("random_forest", "extra_trees"):
        if "max_leaves" in hp:
            hp["max_leaf_nodes"] = hp.pop("max_leaves")
    elif entry.family == "lightgbm":
        if "log_max_bin" in hp:
            hp["max_bin"] = (1 << hp.pop("log_max_bin")) - 1
    return hp


def evaluate(entry: Entry, seed: int, params: dict[str, Any]) -> float | None:
    from tuneops.data import load_dataset
    from tuneops.knowledge.build import cold_spec
    from tuneops.objective import SpecObjective
    from tuneops.spec import load_spec

    spec = load_spec(
        cold_spec(entry.dataset, entry.family, entry.task, n_trials=1, cv_folds=3, seed=seed)
    )
    data = load_dataset(spec.data.source, target=spec.data.target, task=spec.data.task)
    try:
        metrics, _ = SpecObjective(spec, data).evaluate(entry.family, params)
    except Exception as exc:  # a configuration the estimator refuses scores nothing
        print(f"  {entry.key} seed {seed}: {params} failed: {exc}", flush=True)
        return None
    return float(metrics[entry.metric])


def bench_one(args: tuple[dict[str, Any], dict[str, Any], int, int, int, str]) -> dict[str, Any]:
    """One (target, seed): the warm and cold curves, the default and FLAML's configuration;
    ``{"error": ...}`` when the target cannot be tuned (say, a class too rare for 3 folds)."""
    entry_dict, _, seed, n_trials, *_ = args
    try:
        return _bench_one(args)
    except Exception as exc:
        return {
            "dataset": entry_dict["dataset"],
            "family": entry_dict["family"],
            "seed": seed,
            "n_trials": n_trials,
            "error": f"{type(exc).__name__}: {str(exc)[:200]}",
            "seconds": 0.0,
        }


def _bench_one(args: tuple[dict[str, Any], dict[str, Any], int, int, int, str]) -> dict[str, Any]:
    entry_dict, kb_dict, seed, n_trials, build_seed, tmpdir = args
    entry = Entry.from_dict(entry_dict)
    kb = KnowledgeBase(
        tuple(Entry.from_dict(e) for e in kb_dict["entries"]), kb_dict.get("built_with")
    )
    loo = leave_out(kb, entry)
    path = Path(tmpdir) / f"loo-{entry.dataset.replace(':', '_')}-{entry.family}-{seed}.json.gz"
    loo.save(path, history=True)
    started = time.time()
    warm_cfg = {"auto": {"sources": [str(path)], "max_trials": WARM_TRIALS, "max_share": 1.0}}
    warm, sources = run_curve(entry, seed, n_trials, warm_cfg)
    given = load_file(path)
    assert not any(e.dataset in related(entry.dataset) for e in given), (
        "leave-one-out leaked the target"
    )
    cold, reused = cold_curve(entry, seed, n_trials, build_seed)
    fl = flaml_params(entry)
    return {
        "dataset": entry.dataset,
        "family": entry.family,
        "seed": seed,
        "n_trials": n_trials,
        "warm": warm,
        "warm_sources": sources[:WARM_TRIALS],
        "cold": cold,
        "cold_reused": reused,
        "default": evaluate(entry, seed, {}),
        "flaml": evaluate(entry, seed, fl) if fl is not None else None,
        "flaml_params": fl,
        "base_entries": len(given),
        "seconds": time.time() - started,
    }


# -- the figures --------------------------------------------------------------------------------
def _clean(values: Sequence[float | None], floor: float) -> list[float]:
    return [floor if v is None or not math.isfinite(v) else float(v) for v in values]


def regrets(row: dict[str, Any], points: Sequence[int]) -> dict[str, dict[int, float]]:
    """Normalized regret of the warm and cold curves at each of ``points`` trials."""
    measured = [
        v for v in [*row["warm"], *row["cold"], row["default"], row["flaml"]] if v is not None
    ]
    top, low = max(measured), min(measured)
    out: dict[str, dict[int, float]] = {}
    for key in ("warm", "cold"):
        curve = _clean(row[key], low)
        out[key] = {
            t: (top - max(curve[:t])) / (top - low) if top > low else 0.0
            for t in points
            if t <= len(curve)
        }
    return out


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(rows: list[dict[str, Any]], points: Sequence[int] = (1, 5, 10, 40)) -> dict[str, Any]:
    """Per family and over all: the issue's four targets (rows that failed are left out)."""
    rows = [r for r in rows if "error" not in r]
    out: dict[str, Any] = {}
    families = list(dict.fromkeys(r["family"] for r in rows))
    for family in [*families, "all"]:
        sub = [r for r in rows if family in ("all", r["family"])]
        if not sub:
            continue
        first = [
            (r["warm"][0], r["default"], r["flaml"])
            for r in sub
            if r["warm"] and r["warm"][0] is not None
        ]
        beats = sum(w > d for w, d, _ in first if d is not None)
        ties = sum(w == d for w, d, _ in first if d is not None)
        n_default = sum(d is not None for _, d, _ in first)
        vs_flaml = [w - f for w, _, f in first if f is not None]
        reg = [regrets(r, points) for r in sub]
        at = {
            t: {
                "warm": _median([g["warm"][t] for g in reg if t in g["warm"]]),
                "cold": _median([g["cold"][t] for g in reg if t in g["cold"]]),
            }
            for t in points
        }
        for t in points:
            w, c = at[t]["warm"], at[t]["cold"]
            at[t]["ratio"] = (
                (w / c if c else (0.0 if w == 0 else math.inf))
                if w is not None and c is not None
                else None
            )
        # best at the full budget, by dataset: mean over seeds, and cold's run-to-run noise
        by_dataset: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in sub:
            by_dataset.setdefault((r["family"], r["dataset"]), []).append(r)
        final = []
        for (fam, ds), rs in by_dataset.items():
            n = max(r["n_trials"] for r in rs)
            rs = [
                r for r in rs if r["n_trials"] == n and len(r["warm"]) >= n and len(r["cold"]) >= n
            ]
            if not rs:
                continue
            wb = statistics.mean(max(_clean(r["warm"], -math.inf)) for r in rs)
            cb_each = [max(_clean(r["cold"], -math.inf)) for r in rs]
            noise = (max(cb_each) - min(cb_each)) if len(cb_each) > 1 else None
            final.append(
                {
                    "dataset": ds,
                    "family": fam,
                    "diff": wb - statistics.mean(cb_each),
                    "noise": noise,
                    "seeds": len(rs),
                }
            )
        noises = [f["noise"] for f in final if f["noise"] is not None]
        median_noise = _median(noises)
        worse = [f for f in final if f["noise"] is not None and f["diff"] < -max(f["noise"], 1e-12)]
        worse_median = [
            f for f in final if median_noise is not None and f["diff"] < -max(median_noise, 1e-12)
        ]
        out[family] = {
            "rows": len(sub),
            "datasets": len({r["dataset"] for r in sub}),
            "seeds": sorted({r["seed"] for r in sub}),
            "first_beats_default": beats,
            "first_ties_default": ties,
            "n_default": n_default,
            "first_minus_flaml_median": _median(vs_flaml),
            "n_flaml": len(vs_flaml),
            "first_ge_flaml": sum(v >= 0 for v in vs_flaml),
            "regret": at,
            "final_trials": max(r["n_trials"] for r in sub),
            "final_n": len(final),
            "final_diff_median": _median([f["diff"] for f in final]),
            "cold_noise_median": median_noise,
            "final_worse_than_noise": len(worse),
            "final_worse_than_median_noise": len(worse_median),
            "worst_final": min(final, key=lambda f: f["diff"]) if final else None,
        }
    return out


def _f(v: Any, fmt: str = ".3f") -> str:
    return "-" if v is None else (f"{v:{fmt}}" if isinstance(v, (int, float)) else str(v))


def markdown(summary: dict[str, Any], command: str, kb_note: str, elapsed: float) -> str:
    lines = [
        f"Command: `{command}` ({elapsed / 60:.0f} min of benchmark processes). {kb_note}",
        "",
        "| family | datasets x seeds | first warm trial beats / ties the default "
        "| first warm - FLAML zero-shot (median, >= 0 on) | norm. regret @5 warm / cold (ratio) "
        "| @10 warm / cold (ratio) | best @N warm - cold "
        "(median) | cold noise @N (median) | datasets worse than their cold noise |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    budgets = {s["final_trials"] for f, s in summary.items() if f != "all"}
    for family, s in summary.items():
        if family == "all" and len(budgets) > 1:
            continue  # studies of different lengths: a pooled row would mix them
        r5, r10 = s["regret"].get(5, {}), s["regret"].get(10, {})
        flaml = (
            f"{_f(s['first_minus_flaml_median'], '+.4f')} ({s['first_ge_flaml']}/{s['n_flaml']})"
            if s["n_flaml"]
            else "not covered"
        )
        worst = s["worst_final"]
        worst_text = (
            f"{s['final_worse_than_noise']}/{s['final_n']}"
            + (
                f" (worst {worst['dataset'].removeprefix('pmlb:')} {worst['diff']:+.4f})"
                if worst
                else ""
            )
            if s["final_n"]
            else "-"
        )
        lines.append(
            f"| {family} | {s['datasets']} x {len(s['seeds'])} | "
            f"{s['first_beats_default']} / {s['first_ties_default']} of {s['n_default']} "
            f"({s['first_beats_default'] / max(s['n_default'], 1):.0%}) | {flaml} | "
            f"{_f(r5.get('warm'))} / {_f(r5.get('cold'))} ({_f(r5.get('ratio'), '.2f')}) | "
            f"{_f(r10.get('warm'))} / {_f(r10.get('cold'))} ({_f(r10.get('ratio'), '.2f')}) | "
            f"N={s['final_trials']}: {_f(s['final_diff_median'], '+.4f')} "
            f"({s['final_n']} datasets) | "
            f"{_f(s['cold_noise_median'], '.4f')} | "
            f"{worst_text} |"
        )
    return "\n".join(lines)


def write_docs(text: str) -> None:
    """Put ``text`` between the ``bench_warmstart18:begin/end`` markers of docs/benchmarks.md."""
    path = ROOT / "docs" / "benchmarks.md"
    doc = path.read_text()
    begin, finish = "<!-- bench_warmstart18:begin -->", "<!-- bench_warmstart18:end -->"
    if begin not in doc or finish not in doc:
        print("docs/benchmarks.md has no bench_warmstart18 markers; not updated")
        return
    a, b = doc.index(begin) + len(begin), doc.index(finish)
    path.write_text(doc[:a] + "\n" + text + "\n" + doc[b:])


def targets_of(
    kb: KnowledgeBase, family: str, limit: int | None, task: str = "classification"
) -> list[Entry]:
    """The family's entries of the zero-shot datasets (``ZERO_SHOT_DATASETS``; for regression,
    the regression datasets of ``DEFAULT_DATASETS``), smallest first."""
    from tuneops.knowledge.build import DEFAULT_DATASETS, ZERO_SHOT_DATASETS

    names = ZERO_SHOT_DATASETS if task == "classification" else DEFAULT_DATASETS
    order = {d: i for i, d in enumerate(names)}
    entries = [
        e
        for e in kb.select(family=family, task=task)
        if e.history and e.dataset.removeprefix("pmlb:") in order
    ]
    entries.sort(key=lambda e: order[e.dataset.removeprefix("pmlb:")])
    return entries[:limit] if limit else entries


def read_rows(path: str) -> list[dict[str, Any]]:
    """Rows of a checkpoint (JSON lines) or of a saved ``--out`` file (.json or .json.gz, e.g.
    benchmarks/results/warmstart18.json.gz: the shipped rows, whose checkpoints are not)."""
    if path.endswith((".json", ".json.gz")):
        data = Path(path).read_bytes()
        return list(json.loads(gzip.decompress(data) if path.endswith(".gz") else data)["rows"])
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kb", help="knowledge base file (default: the shipped base)")
    parser.add_argument(
        "--family", action="append", help="family (repeat); default: the issue's five"
    )
    parser.add_argument(
        "--datasets", type=int, help="at most this many targets per family (smallest first)"
    )
    parser.add_argument(
        "--task",
        choices=("classification", "regression"),
        default="classification",
        help="the targets' task (regression: the base's PMLB regression sets; scores are R^2)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--checkpoint", help="JSON-lines file of finished rows; a rerun resumes from it"
    )
    parser.add_argument(
        "--from-checkpoint", nargs="+", metavar="FILE",
        help="only summarise these row files (checkpoints, or saved --out files)"
    )
    out = ROOT / "benchmarks" / "results" / "warmstart18.json.gz"
    parser.add_argument("--out", default=str(out),
                        help="summary and rows (.json, or .json.gz)")
    parser.add_argument(
        "--docs", action="store_true", help="write the table into docs/benchmarks.md"
    )
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_warmstart.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    kb = load_file(args.kb) if args.kb else load_shipped()
    built = dict(kb.built_with or {})
    rows: list[dict[str, Any]] = []
    started = time.time()
    if args.from_checkpoint:
        for p in args.from_checkpoint:
            rows += read_rows(p)
    else:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        families = args.family or [
            "hist_gradient_boosting",
            "random_forest",
            "lightgbm",
            "knn",
            "svm",
        ]
        done: set[tuple[str, str, int, int]] = set()
        if args.checkpoint and Path(args.checkpoint).is_file():
            for line in Path(args.checkpoint).read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    rows.append(r)
                    done.add((r["dataset"], r["family"], r["seed"], r["n_trials"]))
        kb_dict = kb.to_dict(history=True)
        tmp = tempfile.mkdtemp(prefix="bench_warmstart.")
        jobs = [
            (e.to_dict(), kb_dict, s, args.trials, int(built.get("seed", 0)), tmp)
            for f in families
            for e in targets_of(kb, f, args.datasets, args.task)
            for s in args.seeds
            if (e.dataset, f, s, args.trials) not in done
        ]
        print(
            f"{command}\n{len(jobs)} runs to do ({len(done)} from the checkpoint); "
            f"base: {len(kb)} entries",
            flush=True,
        )
        with ProcessPoolExecutor(max(1, args.jobs)) as pool:
            for row in pool.map(bench_one, jobs):
                rows.append(row)
                if args.checkpoint:
                    with open(args.checkpoint, "a") as fh:
                        fh.write(json.dumps(row) + "\n")
                if "error" in row:
                    print(
                        f"  {row['dataset']}/{row['family']} seed {row['seed']}: {row['error']}",
                        flush=True,
                    )
                    continue
                first = row["warm"][0] if row["warm"] else None
                print(
                    f"  {row['dataset']}/{row['family']} seed {row['seed']}: "
                    f"first warm {_f(first, '.4f')}, default {_f(row['default'], '.4f')}, "
                    f"flaml {_f(row['flaml'], '.4f')}, "
                    f"best warm {_f(max(_clean(row['warm'], -1)), '.4f')} "
                    f"vs cold {_f(max(_clean(row['cold'], -1)), '.4f')} "
                    f"({row['seconds']:.0f}s)",
                    flush=True,
                )
    summary = summarise(rows)
    elapsed = sum(r.get("seconds", 0.0) for r in rows)
    note = (
        f"Base: {len(kb)} entries built with {built.get('n_trials')} cold TPE trials per dataset "
        f"({built.get('built_at', '?')}); every warm run is given it without the target and "
        "its near-duplicates."
    )
    text = markdown(summary, command, note, elapsed)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    document = {"command": command, "summary": summary, "rows": rows, "elapsed_s": elapsed,
                "wall_s": time.time() - started}
    data = json.dumps(document, indent=None if args.out.endswith(".gz") else 1).encode()
    Path(args.out).write_bytes(gzip.compress(data, mtime=0) if args.out.endswith(".gz") else data)
    if args.docs:
        write_docs(text, args.task)
    return 0


if __name__ == "__main__":
    sys.exit(main())
