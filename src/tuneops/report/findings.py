"""Findings in words, computed from a study: what a person debugging a search checks first.

Each check is a pure function ``(view, panels) -> list[Finding]`` listed in :data:`CHECKS`:
is the best value still improving or converged; does it beat a model that ignores the
features (the majority-class/mean baseline); do the best trials sit at a search-space
boundary (widen it); is pruning cutting too much; which trials failed and why; is the
difference between the top trials within the noise between CV folds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from tuneops._study import is_retired as retired
from tuneops.pruning import pruning_savings
from tuneops.report.figures import History, best_numbers, compute_panels
from tuneops.report.view import StudyView, feasible, is_warm_start, view_of

__all__ = ["Finding", "CHECKS", "compute_findings", "findings_section"]

# Thresholds, named so the text and the tests agree.
IMPROVING_TOL = 0.01      # improvement in the last window, as a share of the value range
BOUNDARY_EDGE = 0.05      # outer share of a parameter's range that counts as "at the boundary"
PRUNED_TOO_MANY = 0.5     # share of finished trials pruned
NOISE_RATIO = 1.0         # fold std over the spread among the top trials
MIN_TRIALS_TO_JUDGE = 10


@dataclass(frozen=True)
class Finding:
    level: str  # "warning" | "info" | "ok"
    topic: str
    text: str


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def convergence(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    hist = panels.get("history")
    if not isinstance(hist, History):
        return []
    if view.multi:
        if hist.hypervolume is None:
            return [Finding("warning", "convergence", "No feasible trial yet: nothing to converge.")]
        numbers, values = hist.hypervolume
        what, scale = "hypervolume of the feasible front", max(values[-1], 1e-12)
    else:
        s = hist.series[0]
        pairs = [(n, b) for n, b in zip(s.numbers, s.best) if b is not None]
        if not pairs:
            return [Finding("warning", "convergence", "No feasible trial yet: nothing to converge.")]
        numbers, values = tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
        what = f"best {s.name}"
        scale = (max(s.values) - min(s.values)) or abs(values[-1]) or 1.0
    n = len(values)
    if n < MIN_TRIALS_TO_JUDGE:
        return [Finding("info", "convergence",
                        f"{n} completed trials are too few to tell whether the search converged "
                        f"(need {MIN_TRIALS_TO_JUDGE}).")]
    window = max(5, n // 4)
    gain = abs(values[-1] - values[-window - 1]) / scale
    last_change = next((numbers[i] for i in range(n - 1, 0, -1) if values[i] != values[i - 1]), numbers[0])
    if gain > IMPROVING_TOL:
        return [Finding("warning", "convergence",
                        f"Still improving: the {what} changed by {gain:.1%} of its range in the last "
                        f"{window} trials (last at trial {last_change}). More trials are likely to help.")]
    return [Finding("ok", "convergence",
                    f"Converged: the {what} improved by less than {IMPROVING_TOL:.0%} of its range "
                    f"in the last {window} trials (last change at trial {last_change}).")]


def _elite(view: StudyView) -> list:
    ok = [t for t in view.complete if feasible(t)]
    if view.multi:
        numbers = set(best_numbers(view))
        return [t for t in ok if t.number in numbers]
    sign = -1.0 if view.directions[0] == "maximize" else 1.0
    k = max(3, math.ceil(0.1 * len(ok)))
    return sorted(ok, key=lambda t: sign * t.values[0])[:k]


def boundary(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    if len(view.complete) < MIN_TRIALS_TO_JUDGE:
        return []
    elite = _elite(view)
    out = []
    for name, dist in view.distributions().items():
        if isinstance(dist, CategoricalDistribution) or dist.single():
            continue
        lo, hi = float(dist.low), float(dist.high)
        f = (math.log10 if dist.log else float)
        span = f(hi) - f(lo)
        positions = [(f(float(t.params[name])) - f(lo)) / span for t in elite if name in t.params]
        if len(positions) < 2:
            continue
        for side, at, bound in (("lower", [p <= BOUNDARY_EDGE for p in positions], lo),
                                ("upper", [p >= 1 - BOUNDARY_EDGE for p in positions], hi)):
            if sum(at) >= 2 and sum(at) * 2 >= len(positions):
                out.append(Finding(
                    "warning", "boundary",
                    f"{name}: {sum(at)} of the {len(positions)} best trials sit at the {side} bound "
                    f"{_fmt(bound)} of its range [{_fmt(lo)}, {_fmt(hi)}]; widen the range beyond "
                    f"{_fmt(bound)} (spec model.space.{name}).",
                ))
    return out


def pruning(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    complete = view.of_state(TrialState.COMPLETE)
    pruned = view.of_state(TrialState.PRUNED)
    if not pruned:
        return []
    share = len(pruned) / (len(pruned) + len(complete))
    saved = ""
    savings = _pruning_savings(view)
    if savings and savings.get("fit_s_saved") is not None:
        saved = (f" Pruning saved {savings['fit_s_saved']:.1f} s of fitting "
                 f"({savings['fit_saved_fraction']:.0%} of what full training would have taken).")
    else:  # no step-by-step record: estimate pruned trials at the median full-trial time
        spent = sum(t.duration.total_seconds() for t in pruned if t.duration)
        full = [t.duration.total_seconds() for t in complete if t.duration]
        if full and float(np.median(full)) > 0:
            est = len(pruned) * float(np.median(full)) - spent
            saved = (f" Pruning saved about {est:.1f} s of {est + spent + sum(full):.1f} s "
                     "(pruned trials counted at the median full-trial time).")
    if share > PRUNED_TOO_MANY:
        return [Finding("warning", "pruning",
                        f"Too much pruning: {len(pruned)} of {len(pruned) + len(complete)} finished trials "
                        f"({share:.0%}) were pruned. If early steps do not predict the final score, the "
                        "pruner culls at random: raise its warm-up (n_warmup_steps / min_resource) or "
                        f"check the learning curves.{saved}")]
    return [Finding("info", "pruning", f"{len(pruned)} trials ({share:.0%} of finished) were pruned.{saved}")]


def _pruning_savings(view: StudyView) -> dict[str, Any] | None:
    """The pruning feature's account of saved fit time (``results.json`` section ``pruning``)."""
    if view.study is None:
        return None

    return pruning_savings(view.study, list(view.trials))


def failures(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    failed = [t for t in view.of_state(TrialState.FAIL) if "abandoned" not in t.user_attrs]
    abandoned = [t for t in view.trials if "abandoned" in t.user_attrs and not retired(t)]
    out = []
    if failed:
        reasons = Counter(
            (str(t.user_attrs.get("fail_reason") or "no reason recorded").strip().splitlines() or ["?"])[0][:160]
            for t in failed
        )
        listed = "; ".join(f"{n}x {r}" for r, n in reasons.most_common(3))
        more = f" (and {len(reasons) - 3} other reasons)" if len(reasons) > 3 else ""
        out.append(Finding("warning", "failures",
                           f"{len(failed)} of {len(view.trials)} trials failed: {listed}{more}."))
    if abandoned:
        out.append(Finding("info", "failures",
                           f"{len(abandoned)} trials were abandoned (worker stopped or died) and re-queued."))
    return out


def noise(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    out = []
    ok = [t for t in view.complete if feasible(t)]
    for i, (name, direction) in enumerate(zip(view.objectives, view.directions)):
        rows = [(t.values[i], t.user_attrs["metrics_std"][name]) for t in ok
                if isinstance(t.user_attrs.get("metrics_std"), Mapping)
                and isinstance(t.user_attrs["metrics_std"].get(name), (int, float))]
        if len(rows) < 3:
            continue
        rows.sort(key=lambda r: -r[0] if direction == "maximize" else r[0])
        top = rows[: max(3, len(rows) // 4)]
        spread = max(r[0] for r in top) - min(r[0] for r in top)
        fold_std = float(np.median([r[1] for r in top]))
        if fold_std > 0 and fold_std > NOISE_RATIO * spread:
            out.append(Finding(
                "warning", "noise",
                f"High noise between CV folds in {name}: the top {len(top)} trials differ by "
                f"{_fmt(spread)}, less than their fold-to-fold std (median {_fmt(fold_std)}); their "
                "ranking is not reliable. Use more folds (search.cv_folds) or more data.",
            ))
    return out


def running(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    n_run = len(view.of_state(TrialState.RUNNING))
    n_wait = len(view.of_state(TrialState.WAITING))
    if not (n_run or n_wait):
        return []
    return [Finding("info", "progress",
                    f"Snapshot of a study in progress: {n_run} trials running, {n_wait} waiting.")]


def warm_start(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    warm = [t for t in view.trials if is_warm_start(t)]
    if not warm:
        return []
    best = set(best_numbers(view))
    hits = [t.number for t in warm if t.number in best]
    if not view.multi:
        text = (f"{len(warm)} warm-start trials; the best trial ({', '.join(map(str, best)) or 'none yet'}) "
                + ("is one of them: warm start found it." if hits else "came from the search, not from warm start."))
    else:
        text = (f"{len(warm)} warm-start trials; {len(hits)} of the {len(best)} trials on the feasible "
                "Pareto front came from warm start"
                + (f" (trials {', '.join(map(str, hits[:10]))})." if hits else "."))
    return [Finding("info", "warm start", text)]


def feasibility(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    complete = view.complete
    if complete and not any(feasible(t) for t in complete):
        return [Finding("warning", "constraints",
                        f"None of the {len(complete)} completed trials meets the constraints; relax "
                        "them (tuneops select STUDY -c ...) or widen the search.")]
    return []


def baseline(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    """The best trial of a quality objective does not beat the majority-class/mean model
    scored on the same folds (study attr ``tuneops:scoring``, tuneops.measure.scoring_record)."""
    scoring = view.attrs.get("tuneops:scoring")
    if not isinstance(scoring, Mapping) or not isinstance(scoring.get("baseline"), Mapping):
        return []
    ok = [t for t in view.complete if feasible(t)]
    out = []
    for i, (name, direction) in enumerate(zip(view.objectives, view.directions, strict=True)):
        base = scoring["baseline"].get(name)
        if not ok or not isinstance(base, (int, float)) or not math.isfinite(base):
            continue
        values = [t.values[i] for t in ok]
        best = max(values) if direction == "maximize" else min(values)
        if (best > base) if direction == "maximize" else (best < base):
            continue
        pos = scoring.get("pos_label")
        label = f" (positive class {pos!r})" if pos is not None else ""
        out.append(Finding(
            "warning", "baseline",
            f"The best {name}{label} is {_fmt(best)}, no better than the "
            f"{scoring.get('baseline_model', 'baseline')} model's {_fmt(base)} on the same folds: "
            "the trials learned nothing useful from the features. Check the target and "
            "data.pos_label, widen the search, or add features.",
        ))
    return out


CHECKS: tuple[Callable[[StudyView, Mapping[str, Any]], list[Finding]], ...] = (
    convergence, baseline, boundary, pruning, failures, noise, feasibility, warm_start, running,
)


def compute_findings(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    """Every finding, warnings first. ``panels`` maps panel key -> data (None when missing)."""
    found = [f for check in CHECKS for f in check(view, panels)]
    order = {"warning": 0, "info": 1, "ok": 2}
    return sorted(found, key=lambda f: order.get(f.level, 3))


def findings_section(study: Any, trials: Any) -> list[dict[str, str]] | None:
    """The findings for ``results.json`` (``tuneops show --json``); cheap: no importances."""


    view = view_of(study, trials)
    if not view.trials:
        return None
    panels = {p.key: p.data for p in compute_panels(view, keys=("history",))}
    return [asdict(f) for f in compute_findings(view, panels)]
