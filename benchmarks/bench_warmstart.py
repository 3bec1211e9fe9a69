"""Warm start vs cold TPE, leave-one-dataset-out over PMLB datasets.

For every dataset D in the knowledge base and every family F:

* **cold**: the cold TPE curve of (D, F) recorded by ``tuneops kb build`` (the same spec, default
  space, folds, sampler seed and no pruning as below, so reusing it is sound: it *is* that cold
  run). Target = within 0.5% of the best score that cold run found (200 trials for the issue's
  protocol); ``T_cold`` = trials it needed.
* **warm (tuneops)**: ``tuning.run`` with ``warm_start: {auto: {sources: [KB without D]}}`` and
  the default auto settings for a budget as long as the cold run (scaled meta-features, nearest
  neighbours, the portfolio), then the same TPE. ``T_warm`` = trials to reach the same target.
* **seed recipe** (baseline): raw cosine similarity on unscaled meta-features, the nearest
  dataset's top-3 configurations enqueued, then the same TPE.

The knowledge base given to a run never holds D or a known near-duplicate of D
(``tuneops.knowledge.build.RELATED``): it is written to a file without them (by name and by
fingerprint) and the script checks it. A warm run stops as soon as the target is reached, or at
ceil(1.1 * T_cold) + 1 trials (then it is a loss worse than 1.1x, reported as censored).

Also reported: the neighbour-quality check of the scaling: the regret on D of the nearest
neighbour's best configuration under scaled distance vs the seed's raw cosine distance.

    tuneops kb build --n-trials 200 --family knn --family svm --dataset ... --out KB   # the cold runs
    python benchmarks/bench_warmstart.py --kb KB --checkpoint rows.jsonl
    python benchmarks/bench_warmstart.py --quick    # the shipped base, 10 datasets of knn and svm
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tuneops.knowledge.base import Entry, KnowledgeBase, load_file, load_shipped  # noqa: E402
from tuneops.knowledge.portfolio import nearest, param_distance, seed_recipe  # noqa: E402

TOL = 0.005
HARD = 10  # T_cold from which targets are also reported apart


def threshold(best: float) -> float:
    return best - TOL * abs(best)


def trials_to(scores: list[float], thr: float) -> int | None:
    for i, s in enumerate(scores):
        if s is not None and s >= thr:
            return i + 1
    return None


def _scores(study: Any, metric: str) -> list[float | None]:
    import optuna

    out = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if "abandoned" in t.user_attrs:
            continue
        out.append(t.user_attrs.get("metrics", {}).get(metric) if t.state == optuna.trial.TrialState.COMPLETE else None)
    return out


def warm_curve(entry: Entry, warm: dict[str, Any], thr: float, cap: int,
               cv_folds: int, seed: int, first: int) -> dict[str, Any]:
    """Run the warm-started study (D's cold spec plus ``warm``) until it reaches ``thr`` or ``cap`` trials.

    The run is cut in two (the ``first`` trials, i.e. the portfolio, then on to the cap) so it
    stops early when the portfolio alone reaches the target; the study resumes in between.
    """
    import optuna
    from threadpoolctl import threadpool_limits

    from tuneops.knowledge.build import cold_spec
    from tuneops.tuning import run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        spec = cold_spec(entry.dataset, entry.family, entry.task, n_trials=first, cv_folds=cv_folds, seed=seed)
        spec.update(study=f"bench.{entry.dataset.replace(':', '_')}.{entry.family}",
                    storage=str(Path(tmp) / "s.journal"), output_dir=str(Path(tmp) / "out"), warm_start=warm)
        steps = sorted({min(first, cap), cap})
        scores: list[float | None] = []
        for n in steps:
            spec["search"]["n_trials"] = n
            result = run(spec)
            scores = _scores(result.study, entry.metric)
            if trials_to(scores, thr) is not None:
                break
        sources = [t.user_attrs.get("warm_start") for t in sorted(result.study.trials, key=lambda t: t.number)]
    return {"scores": scores, "t": trials_to(scores, thr), "n_warm": sum(s is not None for s in sources),
            "first_source": sources[0] if sources else None}


def leave_out(kb: KnowledgeBase, entry: Entry) -> KnowledgeBase:
    """The base for target ``entry``: without its dataset, near-duplicates and fingerprint (checked)."""
    from tuneops.knowledge.build import related

    loo = kb.without(dataset=entry.dataset, fingerprint=entry.fingerprint)
    drop = related(entry.dataset)
    assert not any(e.dataset in drop or (entry.fingerprint and e.fingerprint == entry.fingerprint)
                   for e in loo), "leave-one-out leaked the target"
    return loo


def bench_one(args: tuple) -> dict[str, Any]:
    entry_dict, kb_dict, tmpdir, cv_folds, seed, budget, *rest = args
    overrides = rest[0] if rest else {}  # warm_start.auto settings to try instead of the defaults
    from tuneops.knowledge.warm_start import AutoSettings

    entry = Entry.from_dict(entry_dict)
    kb = KnowledgeBase(tuple(Entry.from_dict(e) for e in kb_dict["entries"]))
    loo = leave_out(kb, entry)
    kb_path = str(Path(tmpdir) / f"loo-{entry.dataset.replace(':', '_')}-{entry.family}.json")
    loo.save(kb_path, history=False)
    started = time.time()
    history = list(entry.history)
    best = max(history)
    thr = threshold(best)
    t_cold = trials_to(history, thr)
    cap = min(len(history), math.ceil(1.1 * t_cold)) + 1
    # The portfolio a user's budget of ``budget`` trials gets with the default settings; the
    # run itself is cut into steps, so the size is passed explicitly (max_share 1).
    size = int(overrides.get("max_trials", AutoSettings().size(budget)))
    ours = warm_curve(entry, {"auto": {**overrides, "sources": [kb_path], "max_trials": size, "max_share": 1.0}},
                      thr, cap, cv_folds, seed, first=size)
    baseline = seed_recipe(loo, entry.meta_features, family=entry.family, task=entry.task, size=3)
    seed_run = warm_curve(entry, {"params": [dict(r.params) for r in baseline]}, thr, cap, cv_folds, seed, first=3)
    scaled_nn = nearest(loo, entry.meta_features, family=entry.family, task=entry.task, k=1)
    from tuneops.families import get_family

    space = get_family(entry.family).space(entry.task)
    top = entry.configs[0][0]
    return {
        "dataset": entry.dataset, "family": entry.family, "task": entry.task, "best_cold": best,
        "n_cold": len(history), "t_cold": t_cold, "cap": cap,
        "t_warm": ours["t"], "t_seed": seed_run["t"],
        "first_regret_warm": (best - ours["scores"][0]) / abs(best) if ours["scores"] and ours["scores"][0] is not None else None,
        "first_regret_seed": (best - seed_run["scores"][0]) / abs(best) if seed_run["scores"] and seed_run["scores"][0] is not None else None,
        "neighbour_scaled": scaled_nn[0].entry.dataset if scaled_nn else None,
        "neighbour_raw": baseline[0].dataset if baseline else None,
        "param_gap_scaled": param_distance(scaled_nn[0].entry.configs[0][0], top, space) if scaled_nn else None,
        "param_gap_raw": param_distance(baseline[0].params, top, space) if baseline else None,
        "n_warm_trials": ours["n_warm"],
        "strategy": overrides.get("strategy", AutoSettings().strategy),
        "seconds": time.time() - started,
    }


def retrieval_check(kb: KnowledgeBase, families: list[str]) -> dict[str, Any]:
    """No tuning: for every entry, leave it out and compare its nearest neighbour under the
    scaled distance and under the seed's raw cosine: how far apart their best scores are, and how
    far the neighbour's best configuration is from the entry's own best (unit-scale RMS)."""
    from tuneops.families import get_family

    out: dict[str, Any] = {}
    for family in families:
        gaps: dict[str, list[float]] = {"scaled": [], "raw": []}
        params: dict[str, list[float]] = {"scaled": [], "raw": []}
        entries = list(kb.select(family=family))
        for e in entries:
            loo = kb.without(dataset=e.dataset, fingerprint=e.fingerprint)
            space = get_family(family).space(e.task)
            scaled = nearest(loo, e.meta_features, family=family, task=e.task, k=1)
            raw = seed_recipe(loo, e.meta_features, family=family, task=e.task, size=1)
            if not scaled or not raw:
                continue
            picks = {"scaled": scaled[0].entry, "raw": next(x for x in loo if x.dataset == raw[0].dataset and x.family == family)}
            for key, n in picks.items():
                gaps[key].append(abs(n.best_score - e.best_score))
                params[key].append(param_distance(n.configs[0][0], e.configs[0][0], space))
        n = len(gaps["scaled"])
        out[family] = {
            "n": n,
            "median_best_score_gap": {k: statistics.median(v) if v else None for k, v in gaps.items()},
            "median_param_gap": {k: statistics.median(v) if v else None for k, v in params.items()},
        }
    return out


def hindsight_bound(kb: KnowledgeBase, families: list[str]) -> dict[str, Any]:
    """How many targets any fixed portfolio could speed up >= 4x, even one chosen with hindsight.

    No tuning, and deliberately a cheat: the portfolio is picked *on the targets themselves*,
    greedily (position p takes the configuration, among all configurations tried anywhere in
    the base, that reaches the most targets not yet reached whose ``T_cold >= 4p``). A
    configuration reaches a target when the score of the nearest configuration tried in the
    target's cold run is within the tolerance of its best (the estimate the portfolio's regrets
    use). Targets with ``T_cold < 4`` cannot be sped up 4x at all; those with ``T_cold < 8`` only
    by the portfolio's first configuration, which no feedback from the target can choose.
    """
    import numpy as np

    from tuneops.families import get_family
    from tuneops.knowledge.portfolio import _pairwise, _unit_matrix

    out: dict[str, Any] = {}
    for family in families:
        entries = [e for e in kb.select(family=family) if e.history]
        if not entries:
            continue
        space = get_family(family).space(entries[0].task)
        pool, categorical = _unit_matrix([p for e in entries for p, _ in e.configs], space)
        pool = np.unique(np.round(pool, 6), axis=0)
        t_cold = np.array([trials_to(list(e.history), threshold(max(e.history))) for e in entries])
        hits = np.zeros((len(entries), len(pool)), dtype=bool)
        for i, e in enumerate(entries):
            tried, _ = _unit_matrix([p for p, _ in e.configs], space)
            scores = np.array([s for _, s in e.configs])
            hits[i] = scores[np.argmin(_pairwise(pool, tried, categorical), axis=1)] >= threshold(max(e.history))
        reached = np.zeros(len(entries), dtype=bool)
        by_position: dict[int, int] = {}
        for position in range(1, int(t_cold.max()) // 4 + 1):
            open_ = (t_cold >= 4 * position) & ~reached
            if not open_.any():
                break
            j = int(np.argmax(hits[open_].sum(axis=0)))
            reached |= hits[:, j] & (t_cold >= 4 * position)
            by_position[position] = int(reached.sum())
        out[family] = {
            "n": len(entries), "impossible": int((t_cold < 4).sum()), "first_trial_only": int(((t_cold >= 4) & (t_cold < 8)).sum()),
            "hindsight_within_10": by_position.get(10, max(by_position.values(), default=0)),
            "hindsight_any_length": max(by_position.values(), default=0),
            "median_share_of_pool_within_tolerance": float(np.median(hits.mean(axis=1))),
        }
    return out


def ratio(t_cold: int, t: int | None, cap: int) -> tuple[float, bool]:
    """Speed-up T_cold / T_warm (> 1 = fewer trials); censored runs count at the cap."""
    if t is None:
        return t_cold / cap, True
    return t_cold / t, False


def summarise(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    ratios, censored = [], 0
    win = tie = loss = 0
    worst = None
    for r in rows:
        value, cens = ratio(r["t_cold"], r[key], r["cap"])
        censored += cens
        ratios.append(value)
        t = r[key] if r[key] is not None else math.inf
        if t < r["t_cold"]:
            win += 1
        elif t == r["t_cold"]:
            tie += 1
        else:
            loss += 1
        slowdown = (t / r["t_cold"])
        if worst is None or slowdown > worst[0]:
            worst = (slowdown, r["dataset"], r["family"], r["t_cold"], r[key] if r[key] is not None else f">{r['cap']}")
    over = sum(1 for r in rows if (r[key] if r[key] is not None else math.inf) > 1.1 * r["t_cold"])
    return {
        "n": len(rows), "median_speedup": statistics.median(ratios) if ratios else None,
        "win": win, "tie": tie, "loss": loss, "censored": censored, "worse_than_1.1x": over,
        "worst": {"slowdown": worst[0], "dataset": worst[1], "family": worst[2], "t_cold": worst[3],
                  "t": worst[4]} if worst else None,
        "median_trials": statistics.median([r[key] if r[key] is not None else r["cap"] for r in rows]) if rows else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 datasets each of knn and svm")
    parser.add_argument("--kb", help="knowledge base file (default: the shipped base)")
    parser.add_argument("--family", action="append", help="family (repeat); default: all in the base")
    parser.add_argument("--datasets", type=int, help="at most this many datasets per family")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "warmstart.json"))
    parser.add_argument("--shard", metavar="I/N", help="run only every N-th target from the I-th (0-based); "
                        "combine the shards' --out files with --from-results")
    parser.add_argument("--auto", action="append", metavar="KEY=VALUE",
                        help="a warm_start.auto setting instead of its default (ablations), e.g. max_trials=5")
    parser.add_argument("--checkpoint", help="JSON-lines file of finished rows; a rerun resumes from it")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--from-results", nargs="+", metavar="JSON",
                        help="summarise earlier --out files (runs split by family) instead of running")
    parser.add_argument("--compare", nargs="+", metavar="JSON",
                        help="with --from-results: --out files of another warm start (an ablation) to show "
                             "beside it, target by target")
    parser.add_argument("--compare-label", default="other warm start", help="its name in the tables")
    args = parser.parse_args(argv)
    if args.from_results:
        parts = [json.loads(Path(p).read_text()) for p in args.from_results]
        rows = [{"strategy": _strategy_of(part["command"]), **r} for part in parts for r in part["rows"]]
        commands = "; ".join(f"`{part['command'].strip()}`" for part in parts)
        if args.compare:
            compared = [json.loads(Path(p).read_text()) for p in args.compare]
            other = {(r["dataset"], r["family"]): r["t_warm"] for part in compared for r in part["rows"]}
            missing = [f"{r['dataset']}/{r['family']}" for r in rows if (r["dataset"], r["family"]) not in other]
            if missing:
                sys.exit(f"--compare: no rows for {', '.join(missing[:5])}; compare runs over the same targets")
            rows = [{**r, "t_other": other[(r["dataset"], r["family"])]} for r in rows]
            commands += f"; compared with {', '.join(f'`{c}`' for c in args.compare)} ({args.compare_label})"
        report = summarise_report(rows, list(dict.fromkeys(r["family"] for r in rows)),
                                  commands, parts[0]["n_cold_trials"], sum(p["elapsed_s"] for p in parts),
                                  compare_label=args.compare_label if args.compare else None)
        kb = load_file(args.kb) if args.kb else load_shipped()
        families = list(dict.fromkeys(r["family"] for r in rows))
        report["retrieval"] = retrieval_check(kb, families)
        report["hindsight"] = hindsight_bound(kb, families)
        return _emit(report, args)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # HistGradientBoosting: one thread per job
    kb = load_file(args.kb) if args.kb else load_shipped()
    built = kb.built_with or {}
    families = args.family or (["knn", "svm"] if args.quick else list(built.get("families") or sorted({e.family for e in kb})))
    limit = args.datasets or (10 if args.quick else None)
    targets = []
    for family in families:
        entries = [e for e in kb.select(family=family) if e.history]
        # targets: the family's longest cold runs (a base may also hold shorter, older ones)
        entries = [e for e in entries if len(e.history) == max(len(x.history) for x in entries)]
        targets += entries[:limit] if limit else entries
    if args.shard:
        i, n = (int(x) for x in args.shard.split("/"))
        targets = targets[i::n]
    command = "python benchmarks/bench_warmstart.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"{command}\n{len(targets)} (dataset, family) targets; knowledge base: {len(kb)} entries, "
          f"cold curves of {built.get('n_trials')} trials")
    kb_dict = kb.to_dict(history=False)
    rows: list[dict[str, Any]] = []
    done: dict[tuple[str, str], dict[str, Any]] = {}
    if args.checkpoint and Path(args.checkpoint).is_file():  # rows of an interrupted run
        for line in Path(args.checkpoint).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[(r["dataset"], r["family"])] = r
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {k: (int(v) if v.isdigit() else v) for k, v in (a.split("=", 1) for a in args.auto or [])}
        jobs = [(e.to_dict(), kb_dict, tmp, built.get("cv_folds", 3), built.get("seed", 0), len(e.history), overrides)
                for e in targets if (e.dataset, e.family) not in done]
        rows += [done[(e.dataset, e.family)] for e in targets if (e.dataset, e.family) in done]
        print(f"{len(rows)} rows from the checkpoint, {len(jobs)} to run")
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max(1, args.jobs), mp_context=multiprocessing.get_context("fork")) as pool:
            for future in as_completed([pool.submit(bench_one, job) for job in jobs]):
                r = future.result()
                rows.append(r)
                _print_row(r)
                if args.checkpoint:
                    with open(args.checkpoint, "a") as fh:
                        fh.write(json.dumps(r, default=str) + "\n")
    order = {(e.dataset, e.family): i for i, e in enumerate(targets)}
    rows.sort(key=lambda r: order[(r["dataset"], r["family"])])
    report = summarise_report(rows, families, command, built.get("n_trials"), time.time() - started)
    report["retrieval"] = retrieval_check(kb, families)
    report["hindsight"] = hindsight_bound(kb, families)
    return _emit(report, args)


def _strategy_of(command: str) -> str:
    """The warm-start strategy of a run, for rows written before they recorded it: an ``--auto
    strategy=...`` override, else ``consensus`` (the default until ``adaptive`` replaced it)."""
    import re

    found = re.search(r"--auto strategy=(\w+)", command)
    return found.group(1) if found else "consensus"


def _emit(report: dict[str, Any], args: argparse.Namespace) -> int:
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    text = render(report)
    print(text)
    if not args.no_docs:
        write_docs(text)
    return 0


def summarise_report(rows: list[dict[str, Any]], families: list[str], command: str,
                     n_cold: int | None, elapsed_s: float, compare_label: str | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {"command": command, "n_cold_trials": n_cold, "tolerance": TOL,
                              "elapsed_s": elapsed_s, "families": {}, "rows": rows, "compare_label": compare_label}
    # Also the targets where cold TPE needed >= 10 trials: only there can 4x fewer trials happen
    # at all (a target cold TPE reaches in 1-3 trials leaves no room for a speed-up).
    groups = [(f, lambda r, f=f: r["family"] == f) for f in families] + [("all", lambda r: True)]
    groups += [(f"{f}, T_cold >= {HARD}", lambda r, f=f: (f == "all" or r["family"] == f) and r["t_cold"] >= HARD)
               for f in families + ["all"]]
    for family, member in groups:
        sub = [r for r in rows if member(r)]
        if not sub:
            continue
        fr = [r for r in sub if r["first_regret_warm"] is not None and r["first_regret_seed"] is not None]
        pg = [r for r in sub if r["param_gap_scaled"] is not None and r["param_gap_raw"] is not None]
        report["families"][family] = {
            "warm": summarise(sub, "t_warm"),
            "seed_recipe": summarise(sub, "t_seed"),
            **({"other": summarise(sub, "t_other")} if compare_label else {}),
            "median_first_regret": {"scaled": statistics.median(r["first_regret_warm"] for r in fr) if fr else None,
                                    "raw_cosine": statistics.median(r["first_regret_seed"] for r in fr) if fr else None},
            "first_trial_better": {"scaled": sum(r["first_regret_warm"] < r["first_regret_seed"] for r in fr),
                                   "raw_cosine": sum(r["first_regret_warm"] > r["first_regret_seed"] for r in fr)},
            "median_param_gap": {"scaled": statistics.median(r["param_gap_scaled"] for r in pg) if pg else None,
                                 "raw_cosine": statistics.median(r["param_gap_raw"] for r in pg) if pg else None},
        }
    return report


def _print_row(r: dict[str, Any]) -> None:
    print(f"  {r['dataset']:<32} {r['family']:<24} cold {r['t_cold']:>3}  warm {r['t_warm']}  seed {r['t_seed']}  "
          f"({r['seconds']:.0f}s)", flush=True)


def _commands(text: str) -> str:
    return text if text.startswith("`") else f"`{text.strip()}`"


def render(report: dict[str, Any]) -> str:
    lines = [
        f"Command: {_commands(report['command'])} (leave-one-dataset-out; cold curves = the "
        f"{report['n_cold_trials']}-trial cold TPE runs of `tuneops kb build`; target = within "
        f"{report['tolerance']:.1%} of their best; warm start = `warm_start: auto` with its defaults for "
        f"a {report['n_cold_trials']}-trial budget; {report['elapsed_s'] / 60:.0f} min on 2 shared cores).",
        "",
        "| family | n | method | median speed-up (cold/warm trials) | median trials | win/tie/loss | > 1.1x worse (censored) | worst case |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for family, f in report["families"].items():
        strategies = sorted({str(r.get("strategy", "?")) for r in report["rows"]})
        methods = [(f"tuneops warm start ({', '.join(strategies)})", "warm"), ("seed recipe (raw cosine, top-3)", "seed_recipe")]
        if "other" in f:
            methods.insert(1, (report["compare_label"], "other"))
        for name, key in methods:
            s = f[key]
            w = s["worst"]
            worst = f"{w['dataset']}/{w['family']}: {w['t']} vs {w['t_cold']} cold" if w else "-"
            lines.append(f"| {family} | {s['n']} | {name} | {s['median_speedup']:.2f}x | {s['median_trials']} | "
                         f"{s['win']}/{s['tie']}/{s['loss']} | {s['worse_than_1.1x']} ({s['censored']}) | {worst} |")
    lines += ["", "Quality of the first trial (tuneops: the first of its portfolio, from scaled meta-features; seed recipe: the raw-cosine nearest dataset's best) and of the nearest neighbour's best configuration:", "",
              "| family | median regret of trial 1, tuneops | same, seed recipe | trial 1 better: tuneops / seed | median param gap of the nearest neighbour's best to the target's best, scaled | same, raw cosine |",
              "|---|---|---|---|---|---|"]
    for family, f in report["families"].items():
        r, b, g = f["median_first_regret"], f["first_trial_better"], f["median_param_gap"]
        fmt = lambda v: f"{v:.4f}" if v is not None else "-"  # noqa: E731
        lines.append(f"| {family} | {fmt(r['scaled'])} | {fmt(r['raw_cosine'])} | {b['scaled']} / {b['raw_cosine']} | "
                     f"{fmt(g['scaled'])} | {fmt(g['raw_cosine'])} |")
    if report.get("retrieval"):
        lines += ["", "Retrieval check without tuning (every entry of the base left out in turn; its nearest neighbour):", "",
                  "| family | entries | median gap in best score, scaled / raw cosine | median param gap of best configs, scaled / raw |",
                  "|---|---|---|---|"]
        for family, c in sorted(report["retrieval"].items()):
            g, p = c["median_best_score_gap"], c["median_param_gap"]
            lines.append(f"| {family} | {c['n']} | {g['scaled']:.4f} / {g['raw']:.4f} | {p['scaled']:.3f} / {p['raw']:.3f} |")
    if report.get("hindsight"):
        h = report["hindsight"]
        lines += ["", "How far any portfolio could go: the targets a fixed portfolio speeds up >= 4x when it is chosen "
                  "with hindsight *on the targets themselves* (a cheat, to estimate the ceiling: greedy, so not a strict bound, and a "
                  "method that adapts to the target's results could pick differently from trial 2 on; see `hindsight_bound`):", "",
                  "| family | targets | T_cold < 4 (4x impossible) | 4 <= T_cold < 8 (only trial 1 can do it) | >= 4x, hindsight portfolio of 10 | >= 4x, hindsight portfolio of any length | median share of the base's configurations within 0.5 % on a target |",
                  "|---|---|---|---|---|---|---|"]
        for family, c in h.items():
            lines.append(f"| {family} | {c['n']} | {c['impossible']} | {c['first_trial_only']} | {c['hindsight_within_10']} | "
                         f"{c['hindsight_any_length']} | {c['median_share_of_pool_within_tolerance']:.1%} |")
        total = sum(c["hindsight_any_length"] for c in h.values())
        n = sum(c["n"] for c in h.values())
        lines += ["", f"A median speed-up of 4x needs {n // 2} of {n} targets at >= 4x; the hindsight portfolio reaches {total}."]
    return "\n".join(lines)


def write_docs(text: str) -> None:
    """Put ``text`` into this benchmark's section of docs/benchmarks.md: between the
    ``<!-- bench_warmstart:begin/end -->`` markers when the section has them (the analysis
    around them is kept), else as the whole section."""
    path = ROOT / "docs" / "benchmarks.md"
    doc = path.read_text()
    head = "## Warm start and meta-learning (issue 5)"
    start = doc.index(head) + len(head)
    nxt = doc.find("\n## ", start)
    end = nxt if nxt != -1 else len(doc)
    section = doc[start:end]
    begin, finish = "<!-- bench_warmstart:begin -->", "<!-- bench_warmstart:end -->"
    if begin in section and finish in section:
        a, b = section.index(begin) + len(begin), section.index(finish)
        section = section[:a] + "\n" + text + "\n" + section[b:]
        path.write_text(doc[:start] + section + doc[end:])
    else:
        path.write_text(doc[:start] + "\n\n" + text + "\n\n" + doc[end:].lstrip("\n"))


if __name__ == "__main__":
    sys.exit(main())
