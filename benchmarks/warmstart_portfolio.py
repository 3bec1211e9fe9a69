"""Which warm-start portfolio? A leave-one-dataset-out study of the portfolio alone (no TPE).

For every target (dataset D, family F) of a knowledge base built from long cold runs
(``tuneops kb build --n-trials 200``), and every portfolio variant (strategy, neighbours,
candidates per neighbour), the portfolio is built from the base *without D and its
near-duplicates*, and its configurations are evaluated on D in order, with the same spec
(folds, seed) as D's cold run. ``T_port`` = the position of the first configuration within
0.5% of the best score of D's cold run (None if none is). Since a warm-started study runs its
portfolio first, ``T_warm = T_port`` whenever the portfolio reaches the target; otherwise TPE
has to, which only ``bench_warmstart.py`` measures. So this study picks the portfolio by what
it can show: how often, and how early, the portfolio alone reaches the target, against
``T_cold``. Evaluations are cached (``--cache``), so variants share them.

    python benchmarks/warmstart_portfolio.py --kb benchmarks/results/warmstart_cold200.json.gz
    python benchmarks/warmstart_portfolio.py --kb KB --head-replay --family knn   # issue 18's HEAD
    python benchmarks/warmstart_portfolio.py --kb KB --first-pick --family svm --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from tuneops.knowledge.base import Entry, KnowledgeBase, load_file  # noqa: E402
from tuneops.knowledge.build import related  # noqa: E402
from tuneops.knowledge.portfolio import nearest, portfolio, seed_recipe  # noqa: E402

TOL = 0.005


def leave_out(kb: KnowledgeBase, entry: Entry) -> KnowledgeBase:
    """The base without ``entry``'s dataset, its near-duplicates and anything of its fingerprint."""
    drop = related(entry.dataset)
    loo = kb.without(dataset=entry.dataset, fingerprint=entry.fingerprint)
    assert not any(e.dataset in drop or (entry.fingerprint and e.fingerprint == entry.fingerprint)
                   for e in loo), "leave-one-out leaked the target"
    return loo


class Evaluator:
    """Scores of configurations on a target, with D's cold-run spec; cached in a JSON-lines file."""

    def __init__(self, cache: Path):
        self.cache_path = cache
        self.cache: dict[str, float] = {}
        if cache.is_file():
            for line in cache.read_text().splitlines():
                if line.strip():
                    k, v = json.loads(line)
                    self.cache[k] = v
        self.objectives: dict[tuple[str, str], Any] = {}

    def __call__(self, entry: Entry, params: dict[str, Any], cv_folds: int, seed: int) -> float:
        key = json.dumps([entry.dataset, entry.family, sorted(params.items())], default=str)
        if key in self.cache:
            return self.cache[key]
        if (entry.dataset, entry.family) not in self.objectives:
            from tuneops.data import load_dataset
            from tuneops.knowledge.build import cold_spec
            from tuneops.objective import SpecObjective
            from tuneops.spec import load_spec

            spec = load_spec(cold_spec(entry.dataset, entry.family, entry.task, n_trials=1, cv_folds=cv_folds, seed=seed))
            data = load_dataset(spec.data.source, target=spec.data.target, task=spec.data.task)
            self.objectives[(entry.dataset, entry.family)] = SpecObjective(spec, data)
        metrics, _ = self.objectives[(entry.dataset, entry.family)].evaluate(entry.family, params)
        value = float(metrics[entry.metric])
        self.cache[key] = value
        with open(self.cache_path, "a") as fh:
            fh.write(json.dumps([key, value]) + "\n")
        return value


def first_hit(scores: list[float], thr: float) -> int | None:
    return next((i + 1 for i, s in enumerate(scores) if s >= thr), None)


def study(kb: KnowledgeBase, variants: list[dict[str, Any]], size: int, evaluate: Evaluator,
          families: list[str], limit: int | None) -> dict[str, Any]:
    from tuneops.families import get_family

    built = kb.built_with or {}
    cv_folds, seed = built.get("cv_folds", 3), built.get("seed", 0)
    rows = []
    for family in families:
        targets = [e for e in kb.select(family=family) if len(e.history) >= 100]
        for entry in targets[:limit]:
            loo = leave_out(kb, entry)
            space = get_family(family).space(entry.task)
            best = max(entry.history)
            thr = best - TOL * abs(best)
            t_cold = first_hit(list(entry.history), thr)
            row: dict[str, Any] = {"dataset": entry.dataset, "family": family, "t_cold": t_cold, "hits": {}}
            seed_recs = seed_recipe(loo, entry.meta_features, family=family, task=entry.task, size=3)
            row["hits"]["seed"] = first_hit([evaluate(entry, dict(r.params), cv_folds, seed) for r in seed_recs], thr)
            for v in variants:
                neigh = nearest(loo, entry.meta_features, family=family, task=entry.task, k=v["k"])
                recs = portfolio(neigh, space, size=size, per_neighbour=v["per"], strategy=v["strategy"],
                                 min_distance=v.get("min_distance", 0.1))
                row["hits"][v["name"]] = first_hit([evaluate(entry, dict(r.params), cv_folds, seed) for r in recs], thr)
            rows.append(row)
            print(f"  {entry.dataset:<30} {family:<6} cold {t_cold:>3} " +
                  " ".join(f"{k}={h}" for k, h in row["hits"].items()), flush=True)
    return {"rows": rows}


def summary(rows: list[dict[str, Any]], name: str, sizes: tuple[int, ...]) -> str:
    out = []
    for p in sizes:
        # within a portfolio of p, T_warm = hit when hit <= p; a speed-up of >= 4 needs hit <= t_cold / 4
        hit = [r for r in rows if r["hits"][name] is not None and r["hits"][name] <= p]
        four = sum(1 for r in hit if r["t_cold"] / r["hits"][name] >= 4)
        notworse = sum(1 for r in hit if r["hits"][name] <= 1.1 * r["t_cold"])
        out.append(f"P={p}: hit {len(hit)}/{len(rows)}, >=4x {four}, not worse {notworse}")
    ratios = [r["t_cold"] / r["hits"][name] if r["hits"][name] else 0.0 for r in rows]
    return f"{name:<28} median speed-up if hit else 0: {statistics.median(ratios):.2f}  | " + "; ".join(out)


def table(rows: list[dict[str, Any]], size: int = 10) -> str:
    """Markdown: per family and variant, how the first ``size`` configurations did."""
    lines = [f"| family | variant | reaches the target within {size} | at trial 1 | >= 4x fewer trials than cold | "
             "not worse than 1.1x cold |", "|---|---|---|---|---|---|"]
    families = list(dict.fromkeys(r["family"] for r in rows))
    for family in families:
        sub = [r for r in rows if r["family"] == family]
        for name in sub[0]["hits"]:
            hits = [r for r in sub if r["hits"][name] is not None and r["hits"][name] <= size]
            label = "seed recipe (raw cosine, top-3)" if name == "seed" else name
            lines.append(
                f"| {family} ({len(sub)}, median T_cold {statistics.median(r['t_cold'] for r in sub):g}) | {label} | "
                f"{len(hits)} | {sum(r['hits'][name] == 1 for r in hits)} | "
                f"{sum(r['t_cold'] / r['hits'][name] >= 4 for r in hits)} | "
                f"{sum(r['hits'][name] <= 1.1 * r['t_cold'] for r in hits)} |")
    return "\n".join(lines)


def _tunable(entry: Entry) -> bool:
    from tuneops.data import load_dataset
    from tuneops.errors import SpecError
    from tuneops.measure import make_folds

    data = load_dataset(entry.dataset)
    try:
        make_folds(data.y, data.task, 3, 0)
    except SpecError:
        return False
    return True


def head_replay(
    kb: KnowledgeBase, families: list[str], heads: tuple[int, ...] = (0, 1, 2, 3, 5, 10),
    budget: int = 10, evaluate: Evaluator | None = None, limit: int | None = None,
) -> dict[str, Any]:
    """How many zero-shot portfolio trials before the adaptive choice (``adaptive.HEAD``)?

    No tuning: an offline replay, leave-one-dataset-out, of the first ``budget`` warm-start
    trials for each head length, where a proposal's score on the target is estimated from the
    target's own cold run (the kernel estimate of
    :func:`~tuneops.knowledge.portfolio.normalized_regrets`, which a long cold run makes
    close). With ``evaluate``, each proposal is scored for real instead (CV on the target with
    its cold run's folds, cached), and regret is normalized by the target's cold run.
    Reports the median and mean normalized regret after 1, 3, 5 and ``budget`` trials.
    """
    import numpy as np

    from tuneops.families import get_family
    from tuneops.knowledge.adaptive import head_proposal, plan_family, propose
    from tuneops.knowledge.build import ZERO_SHOT_DATASETS
    from tuneops.knowledge.portfolio import _unit_matrix, normalized_regrets

    out: dict[str, Any] = {}
    for family in families:
        targets = [e for e in kb.select(family=family, task="classification")
                   if e.history and e.dataset.removeprefix("pmlb:") in ZERO_SHOT_DATASETS]
        if not targets:
            continue
        space = get_family(family).space("classification")
        res: dict[int, dict[int, list[float]]] = {
            h: {1: [], 3: [], 5: [], budget: []} for h in heads
        }
        if evaluate is not None:  # a target the current data checks refuse (a class too rare)
            targets = [t for t in targets if _tunable(t)]
        for t in targets[:limit]:
            loo = leave_out(kb, t)
            top, low = max(t.history), min(t.history)
            tasks = nearest(loo, t.meta_features, family=family, task=t.task, k=len(loo))
            for h in heads:
                plan = plan_family(tasks[:16], space, tasks=tasks, head=h)
                obs: list[tuple[dict[str, Any], float]] = []
                for position in range(budget):
                    i = head_proposal(plan, space, position, [p for p, _ in obs])
                    i = propose(plan, space, obs) if i is None else i
                    if i is None:
                        break
                    if evaluate is not None:
                        value = evaluate(t, dict(plan["candidates"][i]), 3, 0)
                        regret = max(0.0, (top - value) / (top - low)) if top > low else 0.0
                    else:
                        unit, cat = _unit_matrix([plan["candidates"][i]], space)
                        regret = float(normalized_regrets([t], unit, space, cat)[0, 0])
                    obs.append((plan["candidates"][i], -regret))  # higher is better
                for k in res[h]:
                    res[h][k].append(-max(v for _, v in obs[:k]))
        out[family] = {h: {k: (float(np.median(v)), float(np.mean(v))) for k, v in r.items()}
                       for h, r in res.items()}
        for h, r in out[family].items():
            print(f"{family} head {h}: " + ", ".join(f"@{k} median {m:.3f} mean {a:.3f}"
                                                   for k, (m, a) in r.items()), flush=True)
    return out


def first_pick(
    kb: KnowledgeBase, families: list[str], seeds: tuple[int, ...], cache: Path,
    limit: int | None = None,
) -> dict[str, Any]:
    """Does the zero-shot portfolio's first configuration beat the family's defaults?

    Leave-one-dataset-out over the targets ``bench_warmstart.py`` uses (the base's zero-shot
    classification datasets, smallest first, ``limit`` of them): the first pick of
    :func:`~tuneops.knowledge.portfolio.greedy_portfolio` over every other past task, scored
    by CV on the target (its cold run's spec, each seed's folds; cached in ``cache``) next to
    the defaults (``params = {}``). No study runs: trial 1 of a warm run is this first pick, so
    this is the first-trial figure of ``bench_warmstart.py`` at a fraction of its cost (it
    repeats that figure's 45 svm and random-forest rows of issue 18 exactly).

    Where the base records its default scores (``Entry.default_score``, ``tuneops kb build``),
    it also says how far any first pick could go: on how many past tasks the best
    configuration tried there beat the defaults (what a perfect per-task choice among the tried
    configurations would reach), and the median share of a task's tried configurations that
    beat them.
    """
    import numpy as np

    from tuneops.data import load_dataset
    from tuneops.families import get_family
    from tuneops.knowledge.build import ZERO_SHOT_DATASETS, cold_spec
    from tuneops.knowledge.portfolio import greedy_portfolio
    from tuneops.objective import SpecObjective
    from tuneops.spec import load_spec

    scores: dict[str, float | None] = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            if line.strip():
                k, v = json.loads(line)
                scores[k] = v

    def score(entry: Entry, params: dict[str, Any], seed: int) -> float | None:
        key = json.dumps([entry.dataset, entry.family, seed, sorted(params.items())], default=str)
        if key not in scores:
            spec = load_spec(cold_spec(entry.dataset, entry.family, entry.task, n_trials=1,
                                       cv_folds=3, seed=seed))
            data = load_dataset(spec.data.source, target=spec.data.target, task=spec.data.task)
            try:
                metrics, _ = SpecObjective(spec, data).evaluate(entry.family, params)
                scores[key] = float(metrics[entry.metric])
            except Exception as exc:  # a configuration the estimator refuses scores nothing
                print(f"  {entry.key} seed {seed}: {params} failed: {exc}", flush=True)
                scores[key] = None
            with open(cache, "a") as fh:
                fh.write(json.dumps([key, scores[key]]) + "\n")
        return scores[key]

    order = {d: i for i, d in enumerate(ZERO_SHOT_DATASETS)}
    out: dict[str, Any] = {}
    for family in families:
        targets = sorted((e for e in kb.select(family=family, task="classification")
                          if e.history and e.dataset.removeprefix("pmlb:") in order),
                         key=lambda e: order[e.dataset.removeprefix("pmlb:")])[:limit]
        targets = [t for t in targets if _tunable(t)]
        space = get_family(family).space("classification")
        rows = []
        for t in targets:
            loo = leave_out(kb, t)
            tasks = nearest(loo, t.meta_features, family=family, task=t.task, k=len(loo))
            pick = greedy_portfolio(tasks, space, size=1)[0]
            for seed in seeds:
                row: dict[str, Any] = {
                    "dataset": t.dataset, "family": family, "seed": seed,
                    "default": score(t, {}, seed), "first": score(t, dict(pick.params), seed),
                    "from": f"{pick.dataset}#{pick.rank + 1}", "params": dict(pick.params),
                }
                rows.append(row)
                print(f"  {t.dataset:<28} {family} seed {seed}: default {row['default']:.4f} "
                      f"first {row['first']:.4f} ({row['from']})", flush=True)
        pairs = [(r["first"], r["default"]) for r in rows
                 if r["first"] is not None and r["default"] is not None]
        summary: dict[str, Any] = {
            "beats": sum(w > d for w, d in pairs), "ties": sum(w == d for w, d in pairs),
            "n": len(pairs),
            "median_diff": statistics.median(w - d for w, d in pairs) if pairs else None,
        }
        known = [e for e in kb.select(family=family, task="classification")
                 if e.default_score is not None and e.configs]
        if known:
            summary["base_tasks"] = len(known)
            summary["base_best_beats"] = sum(e.configs[0][1] > e.default_score for e in known)
            summary["base_share_beating_median"] = float(np.median(
                [np.mean([s > e.default_score for _, s in e.configs]) for e in known]))
        print(f"{family}: first pick beats {summary['beats']} / ties {summary['ties']} of "
              f"{summary['n']} ({summary['beats'] / max(summary['n'], 1):.0%}), median first - "
              f"default {_signed(summary['median_diff'])}" + (
                  f"; base: the best tried configuration beats the default on "
                  f"{summary['base_best_beats']} of {summary['base_tasks']} tasks, a median "
                  f"{summary['base_share_beating_median']:.0%} of a task's configurations do"
                  if known else ""), flush=True)
        out[family] = {"rows": rows, "summary": summary}
    return out


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kb")
    parser.add_argument("--family", action="append")
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--datasets", type=int)
    parser.add_argument("--cache", default=str(ROOT / ".kbbuild" / "evals.jsonl"))
    parser.add_argument("--out", default=str(ROOT / ".kbbuild" / "portfolio_study.json"))
    parser.add_argument("--from-results", nargs="+", metavar="JSON", help="print the table of earlier --out files")
    parser.add_argument("--head-replay", action="store_true",
                        help="replay the zero-shot head lengths offline (no tuning) and stop")
    parser.add_argument("--heads", type=int, nargs="+", default=[0, 1, 2, 3, 5, 10])
    parser.add_argument("--evaluate", action="store_true",
                        help="with --head-replay: score each proposal by CV on the target (cached)")
    parser.add_argument("--first-pick", action="store_true",
                        help="the zero-shot portfolio's first pick against the defaults "
                             "(trial 1 of bench_warmstart.py, no study), and stop")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(argv)
    if args.first_pick:
        kb = load_file(args.kb)
        result = first_pick(kb, args.family or ["svm", "random_forest"], tuple(args.seeds),
                            Path(args.cache).with_name("first_pick_evals.jsonl"), args.datasets)
        Path(args.out).write_text(json.dumps(result, indent=1))
        return 0
    if args.head_replay:
        kb = load_file(args.kb)
        head_replay(kb, args.family or sorted({e.family for e in kb}), heads=tuple(args.heads),
                    evaluate=Evaluator(Path(args.cache)) if args.evaluate else None,
                    limit=args.datasets)
        return 0
    if args.from_results:
        print(table([r for p in args.from_results for r in json.loads(Path(p).read_text())["rows"]]))
        return 0
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kb = load_file(args.kb)
    families = args.family or sorted({e.family for e in kb})
    variants = [
        {"name": f"{s}-k{k}-per{per}", "strategy": s, "k": k, "per": per}
        for s, k, per in [("round_robin", 8, 3), ("round_robin", 4, 5), ("consensus", 8, 5), ("consensus", 16, 5),
                          ("coverage", 8, 5), ("consensus", 8, 10)]
    ]
    result = study(kb, variants, args.size, Evaluator(Path(args.cache)), families, args.datasets)
    Path(args.out).write_text(json.dumps(result, indent=1))
    for family in families + ["all"]:
        rows = [r for r in result["rows"] if family in ("all", r["family"])]
        print(f"\n{family}: {len(rows)} targets, median T_cold {statistics.median(r['t_cold'] for r in rows)}")
        for name in ["seed"] + [v["name"] for v in variants]:
            print("  " + summary(rows, name, (3, 5, 10, 20)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
