"""Findings in words, computed from a study: what a person debugging a search checks first.

Each check is a pure function ``(view, panels) -> list[Finding]`` listed in :data:`CHECKS`, and
each sentence follows from a definition written in the check's docstring (and in the guide's
"Reports" section), with the thresholds below, so a finding is true by construction:

* :func:`convergence`: still improving or converged (best value; hypervolume for several
  objectives) over the last ``max(10, 20 %)`` finished trials.
* :func:`baseline`: the best trial does not beat a model that ignores the features
  (the majority-class/mean baseline on the same folds).
* :func:`boundary`: the best trials sit at the edge of a parameter's range.
* :func:`pruning`: the share of pruned trials, and the fit time pruning saved when measured.
* :func:`failures`: failed trials grouped by reason; abandoned trials.
* :func:`noise`: the top trials closer together than their CV folds' spread.
* :func:`busy_machine`: latencies measured while the serving thread waited for a core.
* :func:`fit_time_definitions`: ``fit_time_s`` of several definitions in one study.
* :func:`feasibility`, :func:`warm_start`, :func:`running`.

The advice fits the kind of study: a spec run is told which spec field to edit; a ``tune()``
study or a plain Optuna study (no stored spec) is told what to change in its own code.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from tuneops import _study, pareto
from tuneops._study import is_retired as retired
from tuneops.metrics import METRICS
from tuneops.report.figures import best_numbers, feasible_losses
from tuneops.report.view import StudyView, pruning_section, view_of

__all__ = ["Finding", "CHECKS", "compute_findings", "findings_section", "convergence_window"]

# Thresholds, named so the text, the docs and the tests agree.
IMPROVING_TOL = 0.01  # improvement within the window, as a share of the range of values seen
WINDOW_MIN = 10  # the window is the last max(WINDOW_MIN, WINDOW_SHARE x n) finished trials
WINDOW_SHARE = 0.2
BOUNDARY_EDGE = 0.05  # outer share of a parameter's range that counts as "at the boundary"
PRUNED_TOO_MANY = 0.5  # share of finished (complete + pruned) trials pruned
NOISE_RATIO = 1.0  # fold std over the spread among the top trials
MIN_TRIALS_TO_JUDGE = 10
SAVING_MIN_S = 1.0  # an estimated pruning saving below this, or below
SAVING_MIN_SHARE = 0.05  # this share of the estimated total, is not reported (not measurable)
# The serving thread's CPU time over the wall time of its timed calls below which a latency
# measurement ran on a busy machine. On 2 cores, 2 runs of bench_busy (docs/benchmarks.md):
# with no load of ours 0.96-0.99, and 0.89-0.99 in the minute after busy processes stopped
# (load average still 7-10); with 1, 2, 4 busy processes per core 0.29-0.94, 0.15-0.46,
# 0.09-0.23 (1 of 120 at or above 0.8, its latency 1.04x idle).
CPU_SHARE_MIN = 0.8


@dataclass(frozen=True)
class Finding:
    level: str  # "warning" | "info" | "ok"
    topic: str
    text: str


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _from_spec(view: StudyView) -> dict[str, Any] | None:
    raw = view.attrs.get(_study.SPEC)
    return dict(raw) if isinstance(raw, Mapping) and raw else None


def _finished(view: StudyView) -> list[FrozenTrial]:
    """Trials that ran to an end (complete, pruned or failed), not abandoned, by number."""
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sorted(
        (t for t in view.trials if t.state in done and _study.ABANDONED not in t.user_attrs),
        key=lambda t: t.number,
    )


def convergence_window(n_finished: int) -> int:
    """The number of last finished trials judged: ``max(10, ceil(20 % of n))``."""
    return max(WINDOW_MIN, math.ceil(WINDOW_SHARE * n_finished))


def convergence(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    """Still improving or converged.

    Definition: the *window* is the last ``W = max(10, ceil(20 % of n))`` of the ``n`` finished
    trials (complete, pruned or failed, in trial order: every trial counts, not only feasible
    ones). The *improvement* is the best feasible value at the end minus the best feasible value
    before the window (several objectives: the hypervolume of the feasible front, objectives
    normalized as in the history panel). The *range of values seen* is the largest minus the
    smallest feasible value of the study (several objectives: the final hypervolume minus the
    hypervolume after the first feasible trial). *Still improving* when the improvement exceeds
    ``IMPROVING_TOL`` (1 %) of that range, or when the first feasible trial came inside the
    window; *converged* otherwise. Fewer than ``W + 1`` finished trials: too few to tell.
    """
    finished = _finished(view)
    n = len(finished)
    ok = [t for t in view.complete if view.is_feasible(t)]
    if not finished:
        return []
    if not ok:
        return [
            Finding(
                "warning", "convergence", "No feasible completed trial yet: nothing to converge."
            )
        ]
    window = convergence_window(n)
    if n <= window:
        return [
            Finding(
                "info",
                "convergence",
                f"{n} finished trials are too few to tell whether the search converged: the "
                f"judgement compares the last {window} trials with those before them "
                f"(need at least {window + 1}).",
            )
        ]
    start = finished[n - window].number
    span = f"the last {window} of {n} finished trials (trials {start}-{finished[-1].number})"
    ok.sort(key=lambda t: t.number)
    before = [t for t in ok if t.number < start]
    if view.multi:
        # ``ok`` in trial order, as the view's: the losses and front changes the history
        # panel computed for the same trials (the hypervolume changes only at those rows)
        _, loss, ref, changes = feasible_losses(view)
        box = float(np.prod(ref))
        last = changes[-1] if changes else None
        end_value = pareto.hypervolume(loss[changes], ref) / box
        early = [i for i in changes if i < len(before)]
        before_value = pareto.hypervolume(loss[early], ref) / box if before else None
        first_value = pareto.hypervolume(loss[:1], ref) / box
        seen = end_value - first_value
        what = "hypervolume of the feasible front"
    else:
        sign = -1.0 if view.directions[0] == "maximize" else 1.0
        values = [t.values[0] for t in ok]
        end_value = sign * min(sign * v for v in values)
        before_value = sign * min(sign * t.values[0] for t in before) if before else None
        seen = max(values) - min(values)
        best_so_far, last = math.inf, None
        for i, v in enumerate(values):
            if sign * v < best_so_far:
                best_so_far, last = sign * v, i
        what = f"best {view.objectives[0]}"
    last_at = ok[last].number if last is not None else ok[0].number
    last_text = f"last improvement at trial {last_at}"
    if view.multi and view.best:
        # The front shown (ties within measured noise) names the last improvement; a later
        # trial that moved the hypervolume (of the plain front) is a tie within noise, and
        # naming the front's member alone contradicted the improvement just measured in the
        # window ("improved by 0.008 within trials 6-15; last improvement at trial 1").
        shown = max(view.best)
        last_text = (
            f"last improvement at trial {last_at}, a tie within measured noise (the newest "
            f"trial on the front shown is {shown})"
            if last_at > shown
            else f"last improvement at trial {shown}"
        )
    if before_value is None:
        return [
            Finding(
                "warning",
                "convergence",
                f"Still improving: the first feasible trial came within {span}. More trials "
                "are likely to help.",
            )
        ]
    gain = abs(end_value - before_value)
    share = gain / seen if seen > 0 else 0.0
    measured = (
        f"the {what} improved by {_fmt(gain)}, {share:.1%} of the range of values seen "
        f"({_fmt(seen)}), within {span}; {last_text}"
        if seen > 0
        # every feasible trial the same: "improved by 0, 0.0% of the range (0)" said nothing
        else f"the {what} stayed at {_fmt(end_value)} from the first feasible trial on, "
        f"within {span} as before it; {last_text}"
    )
    if share > IMPROVING_TOL:
        improving = _beyond_noise(view, _improvements(view, ok, start), before)
        if improving:
            return [
                Finding(
                    "warning",
                    "convergence",
                    f"Still improving: {measured}. More trials are likely to help.",
                )
            ]
        return [
            Finding(
                "ok",
                "convergence",
                f"Converged within noise: {measured}, but every trial that improved it lies "
                "within the noise of an earlier trial (the fold-to-fold std of its metrics, "
                "the measured interval of a serving cost): more trials are unlikely to help "
                "beyond that noise.",
            )
        ]
    return [
        Finding(
            "ok",
            "convergence",
            f"Converged: {measured} (at most {IMPROVING_TOL:.0%} counts as converged).",
        )
    ]


def _improvements(view: StudyView, ok: list[FrozenTrial], start: int) -> list[FrozenTrial]:
    """The feasible trials from trial ``start`` on that improved the result: each new best (one
    objective), or the members of the front shown (several)."""
    if view.multi:
        front = set(view.best)
        return [t for t in ok if t.number >= start and t.number in front]
    sign = -1.0 if view.directions[0] == "maximize" else 1.0
    best, out = math.inf, []
    for t in ok:
        if sign * t.values[0] < best:
            best = sign * t.values[0]
            if t.number >= start:
                out.append(t)
    return out


def _beyond_noise(
    view: StudyView, trials: list[FrozenTrial], earlier: list[FrozenTrial]
) -> list[FrozenTrial]:
    """The ``trials`` better than every ``earlier`` trial beyond noise on some objective: the
    objective's fold-to-fold std (median over the feasible trials that record it) and the
    measured intervals of serving costs. An improvement smaller than that noise is no evidence
    that the search is still finding better configurations (an AUC +0.0047 against a fold std
    of 0.012 read as "still improving"). Array operations: 10,000 trials at the end of a run."""
    if not trials or not earlier:
        return list(trials)
    ok = [t for t in view.complete if view.is_feasible(t)]
    margins = []
    for name in view.objectives:
        stds = [
            t.user_attrs[_study.METRICS_STD][name]
            for t in ok
            if isinstance(t.user_attrs.get(_study.METRICS_STD), Mapping)
            and isinstance(t.user_attrs[_study.METRICS_STD].get(name), (int, float))
        ]
        margins.append(float(np.median(stds)) if stds else 0.0)
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in view.directions])

    def loss_bounds(rows: list[FrozenTrial]) -> tuple[np.ndarray, np.ndarray]:
        """Each trial's objectives as losses, widened to their measured intervals."""
        lo = np.array([t.values for t in rows], dtype=float) * signs
        hi = lo.copy()
        for r, t in enumerate(rows):
            intervals = _study.stored_intervals(t.user_attrs.get(_study.COST))
            for i, name in enumerate(view.objectives):
                interval = intervals.get(name)
                if interval is not None:
                    ends = sorted(signs[i] * v for v in interval)
                    lo[r, i], hi[r, i] = min(ends[0], lo[r, i]), max(ends[1], hi[r, i])
        return lo, hi

    reach = loss_bounds(earlier)[0] - np.array(margins)
    t_hi = loss_bounds(trials)[1]
    # an earlier trial covers a trial when it is nowhere worse beyond noise: its loss's lower
    # end, less the objective's margin, does not lie above the trial's upper end (64 trials at
    # a time: a few MB at most, which the end of a 10,000-trial run must not add to its peak)
    covered = np.concatenate(
        [
            np.all(reach[None, :, :] <= t_hi[i : i + 64, None, :], axis=2).any(axis=1)
            for i in range(0, len(trials), 64)
        ]
    )
    return [t for t, c in zip(trials, covered, strict=True) if not c]


def _elite(view: StudyView) -> list:
    # a repeat is its earlier trial again (tuneops.repeats): one configuration repeated was
    # "3 of the 3 best trials" at a bound
    ok = [t for t in view.complete if view.is_feasible(t) and _study.found(t)]
    if view.multi:
        numbers = set(best_numbers(view))
        return [t for t in ok if t.number in numbers]
    sign = -1.0 if view.directions[0] == "maximize" else 1.0
    k = max(3, math.ceil(0.1 * len(ok)))
    return sorted(ok, key=lambda t: sign * t.values[0])[:k]


def _where_to_widen(view: StudyView, name: str) -> str:
    """Where the range of parameter ``name`` is defined: a spec field, or the user's own code."""
    spec = _from_spec(view)
    if spec is None:
        return "in the search space your objective suggests (trial.suggest_*)"
    model = spec.get("model")
    families = model.get("family") if isinstance(model, Mapping) else None
    if isinstance(families, list) and len(families) > 1 and "." in name:
        family, param = name.split(".", 1)
        return f"in the spec, field model.space.{family}.{param}"
    return f"in the spec, field model.space.{name}"


def _hard_limit(view: StudyView, name: str, bound: float, side: str, integer: bool) -> bool:
    """Whether ``bound`` of a spec study's parameter ``name`` is the estimator's own limit
    (``min_samples_leaf`` 1): advice to widen the range there was refused by the spec check."""
    spec = _from_spec(view)
    model = spec.get("model") if spec is not None else None
    if not isinstance(model, Mapping):
        return False
    families = model.get("family")
    family, param = (
        name.split(".", 1)
        if isinstance(families, list) and len(families) > 1 and "." in name
        else (families[0] if isinstance(families, list) else families, name)
    )
    from tuneops.spec import refuses_beyond  # the spec's models: loaded for spec studies only

    return isinstance(family, str) and refuses_beyond(family, param, bound, side, integer=integer)


def boundary(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    """Best trials at the edge of a parameter's range.

    Definition: the *best trials* are the best ``max(3, 10 %)`` feasible completed trials (one
    objective) or the feasible Pareto front (several). For each numeric parameter, a trial is at
    the lower (upper) bound when its value lies in the outer ``BOUNDARY_EDGE`` (5 %) of the
    range (log scale for log parameters). Reported when at least 2 and at least half of the best
    trials that set the parameter are at the same bound, with 10 or more completed trials.
    """
    if len(view.complete) < MIN_TRIALS_TO_JUDGE:
        return []
    elite = _elite(view)
    out = []
    for name, dist in view.distributions().items():
        if not isinstance(dist, (FloatDistribution, IntDistribution)) or dist.single():
            continue
        lo, hi = float(dist.low), float(dist.high)
        f = math.log10 if dist.log else float
        span = f(hi) - f(lo)
        values = [float(t.params[name]) for t in elite if name in t.params]
        positions = [(f(v) - f(lo)) / span for v in values]
        if len(positions) < 2:
            continue
        for side, at, bound in (
            ("lower", [p <= BOUNDARY_EDGE for p in positions], lo),
            ("upper", [p >= 1 - BOUNDARY_EDGE for p in positions], hi),
        ):
            if sum(at) >= 2 and sum(at) * 2 >= len(positions):
                if _hard_limit(view, name, bound, side, isinstance(dist, IntDistribution)):
                    continue  # the estimator accepts nothing beyond: no range to widen
                # "sit at the upper bound 100" was said of 87, 88, 95 and 98: the values near
                # the bound are given unless they are the bound itself
                near = sorted(v for v, a in zip(values, at, strict=True) if a)
                rng = f"its range [{_fmt(lo)}, {_fmt(hi)}]"
                if near[0] == near[-1] == bound:
                    where = f"sit at the {side} bound {_fmt(bound)} of {rng}"
                else:
                    seen = _fmt(near[0])
                    seen += "" if near[0] == near[-1] else f" to {_fmt(near[-1])}"
                    scale = " on a log scale" if dist.log else ""
                    where = (
                        f"sit near the {side} bound of {rng} (at {seen}: its outer "
                        f"{BOUNDARY_EDGE:.0%}{scale})"
                    )
                out.append(
                    Finding(
                        "warning",
                        "boundary",
                        f"{name}: {sum(at)} of the {len(positions)} best trials {where}: the "
                        f"optimum may lie beyond. Widen the range beyond {_fmt(bound)} "
                        f"{_where_to_widen(view, name)}.",
                    )
                )
    return out


def pruning(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    """How much was pruned, and what it saved when that can be measured.

    Definition: the *share* is pruned / (complete + pruned) trials. *Every trial pruned* (a
    warning, whatever the number of trials, and no saving is claimed) when none completed.
    *Too much pruning* (a
    warning) when the share exceeds ``PRUNED_TOO_MANY`` (50 %) with 10 or more finished trials -
    unless a halving pruner (successive halving, Hyperband, tuneops' ``auto``) did no more than
    its design: with reduction factor ``r`` and ``k`` rungs reached, it lets about ``r**-k`` of
    the trials finish, so a share up to ``1 - r**-k`` (+ ``HALVING_SLACK``) is what it is for
    and is said as information.
    The saving is the pruning feature's measured fit time (``tuneops.pruning.pruning_savings``:
    each pruned trial's fit seconds scaled to its full budget, minus what it spent). Without that
    record it is estimated as (pruned trials x the median duration of complete trials) - the
    pruned trials' own duration, and shown only when at least ``SAVING_MIN_S`` (1 s) and
    ``SAVING_MIN_SHARE`` (5 %) of the estimated total; otherwise nothing is said about time.
    """
    # the trials that trained (a repeat took an earlier trial's outcome or pruning: counted
    # as the run's pruning line counts, tuneops.pruning.pruning_savings)
    complete = [t for t in view.of_state(TrialState.COMPLETE) if _study.found(t)]
    stopped = [t for t in view.of_state(TrialState.PRUNED) if _study.found(t)]
    # A trial over search.trial_timeout_s is recorded as pruned, but the pruner did not stop it.
    timed_out = [t for t in stopped if _study.TIMED_OUT in t.user_attrs]
    pruned = [t for t in stopped if _study.TIMED_OUT not in t.user_attrs]
    late = (
        f" {len(timed_out)} more stopped over the trial time limit (search.trial_timeout_s)."
        if timed_out
        else ""
    )
    if not pruned:
        if timed_out:
            return [
                Finding(
                    "info",
                    "pruning",
                    f"{len(timed_out)} of {len(complete) + len(timed_out)} finished trials "
                    "stopped over the trial time limit (search.trial_timeout_s); none was "
                    "pruned.",
                )
            ]
        return []
    finished = len(pruned) + len(complete)
    share = len(pruned) / finished
    if not complete:
        # Nothing ran to the end: the compute pruning "saved" bought no model (8 of 8 pruned,
        # "saved 14.8 CPU s", read as a success), whatever the number of trials.
        where = (
            "in the spec, field search.pruner (raise n_warmup_steps / min_resource, or "
            "pruner: none)"
            if _from_spec(view) is not None
            else "in your objective's pruner (raise n_warmup_steps / min_resource, or use "
            "optuna.pruners.NopPruner)"
        )
        return [
            Finding(
                "warning",
                "pruning",
                f"Every trial was pruned: the pruner stopped all {len(pruned)} finished "
                "trials before their last step, so no model was trained to the end and "
                f"there is nothing to select. Loosen the pruner {where}, or check the "
                f"learning curves: early steps may not predict the final score.{late}",
            )
        ]
    saved = late
    savings = pruning_section(view)
    cpu = savings is not None and "fit_cpu_s_saved" in savings
    if savings and (savings.get("fit_cpu_s_saved" if cpu else "fit_s_saved") or 0) > 0:
        amount = (
            f"{savings['fit_cpu_s_saved']:.1f} CPU s" if cpu else f"{savings['fit_s_saved']:.1f} s"
        )
        saved += (
            f" Pruning saved {amount} of fitting "
            f"({savings['fit_saved_fraction']:.0%} of what full training would have taken)."
        )
    elif (
        not savings
    ):  # no step-by-step record: estimate pruned trials at the median full-trial time
        spent = sum(t.duration.total_seconds() for t in pruned if t.duration)
        full = [t.duration.total_seconds() for t in complete if t.duration]
        if full:
            est = len(pruned) * float(np.median(full)) - spent
            total = est + spent + sum(full)
            if est >= SAVING_MIN_S and total > 0 and est >= SAVING_MIN_SHARE * total:
                saved += (
                    f" Pruning saved about {est:.1f} s of {total:.1f} s (pruned trials "
                    "counted at the median duration of complete trials)."
                )
    design = _halving_design(savings)
    if design is not None and share > PRUNED_TOO_MANY and share <= design[0] + HALVING_SLACK:
        return [
            Finding(
                "info",
                "pruning",
                f"{len(pruned)} of {finished} finished trials ({share:.0%}) were pruned: within "
                f"what halving does by design (reduction factor {design[1]:g} at {design[2]} "
                f"rung(s) prunes up to {design[0]:.0%} of the trials, all but about 1 in "
                f"{design[1] ** design[2]:.0f}).{saved}",
            )
        ]
    if share > PRUNED_TOO_MANY and finished >= MIN_TRIALS_TO_JUDGE:
        return [
            Finding(
                "warning",
                "pruning",
                f"Too much pruning: {len(pruned)} of {finished} finished trials "
                f"({share:.0%}) were pruned. If early steps do not predict the final score, the "
                "pruner culls at random: raise its warm-up (n_warmup_steps / min_resource) or "
                f"check the learning curves.{saved}",
            )
        ]
    return [
        Finding(
            "info",
            "pruning",
            f"{len(pruned)} of {finished} finished trials ({share:.0%}) were pruned.{saved}",
        )
    ]


#: How far above its design share a halving pruner may prune before it is "too much"
#: (asynchronous halving decides on the trials finished so far, so early trials see few peers).
HALVING_SLACK = 0.05


def _halving_design(savings: Mapping[str, Any] | None) -> tuple[float, float, int] | None:
    """(design share, reduction factor, rungs reached) of a halving pruner's record; None for
    another pruner or without a record."""
    text = str((savings or {}).get("pruner") or "")
    if not any(name in text for name in ("Halving", "Hyperband")):
        return None
    found = re.search(r"reduction_factor=(\d+(?:\.\d+)?)", text)
    rungs = len((savings or {}).get("pruned_at_step") or {})
    if found is None or rungs == 0 or float(found.group(1)) <= 1:
        return None
    factor = float(found.group(1))
    return 1.0 - factor**-rungs, factor, rungs


#: Numbers in a failure's message (values, sizes, addresses): masked to group failures.
_NUMBER = re.compile(r"0x[0-9a-fA-F]+|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _reason_kind(first_line: str) -> str:
    """A failure's kind: the first line of its reason (exception type and message) with every
    number masked as ``<n>``."""
    return _NUMBER.sub("<n>", first_line)


def failures(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    """Failed trials grouped by kind, the first line of their recorded reason (exception type
    and message) with numbers masked, the three most frequent named with a count and one
    example; and trials abandoned by a stopped worker; retired trials are not failures."""
    failed = [t for t in view.of_state(TrialState.FAIL) if _study.ABANDONED not in t.user_attrs]
    abandoned = [t for t in view.trials if _study.ABANDONED in t.user_attrs and not retired(t)]
    out = []
    if failed:
        firsts = [
            (
                str(t.user_attrs.get(_study.FAIL_REASON) or "no reason recorded")
                .strip()
                .splitlines()
                or ["?"]
            )[0][:160]
            for t in failed
        ]
        # one reason per kind of failure: "1x RuntimeError: boom 0.55; 1x ... boom 0.72" was
        # one failure told apart by the numbers in its message
        reasons = Counter(_reason_kind(r) for r in firsts)
        example: dict[str, str] = {}
        for r in firsts:
            example.setdefault(_reason_kind(r), r)
        listed = "; ".join(
            f"{n}x {kind}" + (f" (e.g. {example[kind]})" if example[kind] != kind else "")
            for kind, n in reasons.most_common(3)
        )
        more = f" (and {len(reasons) - 3} other reasons)" if len(reasons) > 3 else ""
        out.append(
            Finding(
                "warning",
                "failures",
                f"{len(failed)} of {len(view.trials)} trials failed: {listed}{more}.",
            )
        )
    if abandoned:
        out.append(
            Finding(
                "info",
                "failures",
                f"{len(abandoned)} trials were abandoned (worker stopped or died) and re-queued.",
            )
        )
    return out


def _params_key(t: FrozenTrial) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in t.params.items()))


def noise(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    """Top trials closer together than their noise.

    Definition: per objective whose fold-to-fold standard deviation is recorded (trial user
    attr ``metrics_std``) for 3 or more feasible trials of distinct configurations: the *top
    trials* are the best ``max(3, 25 %)`` of them (a configuration evaluated again counts
    once); a warning when the median of their fold std exceeds ``NOISE_RATIO`` x the spread
    (best - worst) of their values.
    """
    out = []
    advice = (
        "Use more folds (search.cv_folds) or more data."
        if _from_spec(view) is not None
        else "Average over more folds or repeats in your objective, or use more data."
    )
    ok = [t for t in view.complete if view.is_feasible(t)]
    # one trial per configuration: the same configuration evaluated again (a sampler's repeat on
    # a small space) scores alike on the same folds, and three of them made "the top 4 differ
    # by 2.3e-05"
    distinct = list({_params_key(t): t for t in reversed(ok)}.values())[::-1]
    for i, (name, direction) in enumerate(zip(view.objectives, view.directions, strict=False)):
        rows = [
            (t.values[i], t.user_attrs[_study.METRICS_STD][name])
            for t in distinct
            if isinstance(t.user_attrs.get(_study.METRICS_STD), Mapping)
            and isinstance(t.user_attrs[_study.METRICS_STD].get(name), (int, float))
        ]
        if len(rows) < 3:
            continue
        rows.sort(key=lambda r: -r[0] if direction == "maximize" else r[0])
        top = rows[: max(3, len(rows) // 4)]
        spread = max(r[0] for r in top) - min(r[0] for r in top)
        fold_std = float(np.median([r[1] for r in top]))
        if fold_std > 0 and fold_std > NOISE_RATIO * spread:
            out.append(
                Finding(
                    "warning",
                    "noise",
                    f"High noise between CV folds in {name}: the top {len(top)} trials differ by "
                    f"{_fmt(spread)}, less than their fold-to-fold std (median "
                    f"{_fmt(fold_std)}); their ranking is not reliable. {advice}",
                )
            )
    return out


def busy_machine(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    """Latencies measured while the serving thread had to share its core.

    Definition: a complete trial's serving measurement was *busy* when the serving thread's
    CPU time over its timed calls was below ``CPU_SHARE_MIN`` of their wall time
    (``tuneops:cost.serving.cpu_share``: a thread that has its core runs throughout, one that
    waits for a core does not). A measurement recorded before that share was (or with a wall
    clock, ``serving.threads`` above 1) falls back to the machine's 1-minute load average
    above its cores (``load``, ``cores``), which lags a change of load by about a minute and
    counts every process, the study's own workers too. The measurement divides out the
    machine's slowness as a reference workload sees it, but a model whose thread is switched
    out refills its caches, and its CPU time per call grows beyond that: an audit measured the
    same logistic regression 1.6x slower at load 6 and 2.4x at load 12 on 2 cores, beyond
    their intervals, so identical models got different feasibility verdicts; bench_busy
    measured up to 1.31x at shares of 0.3-0.8 and up to 2.66x below 0.3.
    """
    shared: list[tuple[float, float | None, int | None]] = []  # (share, load, cores)
    by_load: list[tuple[float, int]] = []  # (load, cores) of measurements without a share
    n_measured = 0
    # a repeat took its earlier trial's record: measured once, counted once (tuneops.repeats)
    for t in filter(_study.found, view.complete):
        serving = (t.user_attrs.get(_study.COST) or {}).get("serving") or {}
        share, load, cores = serving.get("cpu_share"), serving.get("load"), serving.get("cores")
        load = float(load) if isinstance(load, (int, float)) else None
        cores = cores if isinstance(cores, int) and cores > 0 else None
        if isinstance(share, (int, float)):
            n_measured += 1
            if share < CPU_SHARE_MIN:
                shared.append((float(share), load, cores))
        elif load is not None and cores is not None:
            n_measured += 1
            if load > cores:
                by_load.append((load, cores))
    if not shared and not by_load:
        return []
    parts = []
    if shared:
        lowest = min(r[0] for r in shared)
        loads = [(r[1], r[2]) for r in shared if r[1] is not None and r[2] is not None]
        context = ""
        if loads:
            load, cores = max(loads, key=lambda r: r[0] / r[1])
            context = f"; the load average then was up to {load:.1f} on {cores} cores"
        parts.append(
            f"{len(shared)} of {n_measured} latency measurements ran while the serving thread "
            f"waited for a core: in the lowest it ran {lowest:.0%} of its timed calls' wall "
            f"time (below {CPU_SHARE_MIN:.0%} counts as busy{context})."
        )
    if by_load:
        load, cores = max(by_load, key=lambda r: r[0] / r[1])
        parts.append(
            f"{len(by_load)} of {n_measured} latency measurements ran on a busy machine by the "
            f"load average (up to {load:.1f} on {cores} cores; they recorded no CPU share of "
            "the serving thread, and the 1-minute load average lags and counts every process, "
            "the study's own workers too)."
        )
    return [
        Finding(
            "warning",
            "latency",
            " ".join(parts) + " The latency objective does not count the waiting, but a model "
            "switched out of its core refills its caches, so its CPU time per call grows "
            "beyond what the measurement divides out, the more the lower the share (on 2 "
            "cores the same models measured up to 1.3x their idle latency at shares of "
            "0.3-0.8 and up to 2.7x below 0.3): trials measured at different times can differ "
            "beyond their intervals, and a latency constraint can pass or fail with the load. "
            "Measure the chosen model again on a quiet machine (`tuneops verify`), or run "
            "fewer workers (no more than the cores) and fewer other jobs beside the study.",
        )
    ]


def fit_time_definitions(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    """``fit_time_s`` measured by different definitions within one study.

    Definition: a spec study whose objectives or constraints use ``fit_time_s`` holds complete
    trials of more than one definition of it (:data:`tuneops._study.FIT_TIME_DEFINITIONS`,
    read by :func:`tuneops._study.fit_time_version`): a study resumed across a tuneops
    version that changed it. Its trials are then compared on one axis (the best trial or the
    front, the selection, the sampler's model of the objective) with figures that measured
    different things: for a fraction family trained step by step for a pruner, the sum of its
    refits was 3-5x its final fit.
    """
    judged = _study.fit_time_judged(view.objectives, view.attrs.get(_study.CONSTRAINTS) or [])
    if _from_spec(view) is None or judged is None:
        return []
    by_version = _study.fit_time_groups(view.complete)
    if len(by_version) < 2:
        return []
    groups = _study.describe_fit_time_groups(by_version)
    return [
        Finding(
            "warning",
            "fit time",
            f"fit_time_s was measured by {len(by_version)} definitions in this study (resumed, "
            f"or joined by workers, across tuneops versions that changed it): {groups}. The "
            "trials are compared on it as one axis, but the figures measure different things "
            "(a fraction family's refits for a pruner summed to 3-5x its final fit). Compare "
            "fit times only among the trials of one definition, or run the spec again as a "
            "new study (another study name) for comparable figures.",
        )
    ]


def running(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    counts = _study.state_counts(view.trials)
    n_gone, n_run = counts["STALE"], counts["RUNNING"]
    n_wait = len(view.of_state(TrialState.WAITING))
    out = []
    if n_run or n_wait:
        out.append(
            Finding(
                "info",
                "progress",
                f"Snapshot of a study in progress: {n_run} trials running, {n_wait} waiting.",
            )
        )
    if n_gone:
        out.append(
            Finding(
                "warning",
                "progress",
                f"{n_gone} trials were left running by workers that are gone (killed, or "
                "stopped by an error); nothing runs them. "
                + (
                    # a live run's workers give them back: not "the next run"
                    "The study's live workers give them back between their trials and run "
                    "their configurations again."
                    if n_run
                    else "The next run of the study, or `tuneops worker`, gives them back and "
                    "runs their configurations again."
                ),
            )
        )
    return out


def warm_start(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    # an abandoned warm trial's retry carries its tag: the configuration counts once
    warm = [t for t in view.trials if view.is_warm(t) and not _study.is_abandoned(t)]
    if not warm:
        return []
    best = set(best_numbers(view))
    hits = [t.number for t in warm if t.number in best]
    if not view.multi:
        text = (
            f"{len(warm)} warm-start trials; the best trial "
            f"({', '.join(map(str, best)) or 'none yet'}) "
            + (
                "is one of them: warm start found it."
                if hits
                else "came from the search, not from warm start."
            )
        )
    else:
        text = (
            f"{len(warm)} warm-start trials; {len(hits)} of the {len(best)} trials on the feasible "
            "Pareto front came from warm start"
            + (f" (trials {', '.join(map(str, hits[:10]))})." if hits else ".")
        )
    return [Finding("info", "warm start", text)]


def feasibility(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    complete = view.complete
    if complete and not any(view.is_feasible(t) for t in complete):
        return [
            Finding(
                "warning",
                "constraints",
                f"None of the {len(complete)} completed trials meets the constraints; relax "
                "them (tuneops select STUDY -c ...) or widen the search.",
            )
        ]
    return []


def baseline(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    """The best trial of a quality objective does not beat the majority-class/mean model
    scored on the same folds (study attr ``tuneops:scoring``, tuneops.measure.scoring_record)."""
    scoring = view.attrs.get("tuneops:scoring")
    if not isinstance(scoring, Mapping) or not isinstance(scoring.get("baseline"), Mapping):
        return []
    ok = [t for t in view.complete if view.is_feasible(t)]
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
        # only a metric whose value depends on which class is positive (f1, precision, recall,
        # roc_auc, average_precision) is "of" a positive class: not accuracy
        uses = getattr(METRICS.get(name), "uses_pos_label", False)
        label = f" (positive class {pos!r})" if pos is not None and uses else ""
        out.append(
            Finding(
                "warning",
                "baseline",
                f"The best {name}{label} is {_fmt(best)}, no better than the "
                f"{scoring.get('baseline_model', 'baseline')} model's {_fmt(base)} on the same "
                "folds: "
                "the trials learned nothing useful from the features. Check the target and "
                "data.pos_label, widen the search, or add features.",
            )
        )
    return out


def perfect(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    """A quality objective at its perfect value (accuracy 1, rmse 0) in cross-validation: on
    real data most often a leak, a column that encodes the target (an ID assigned by outcome,
    a field filled in after the fact): clean1's molecule name gave f1 1.0, 0.86-0.91 without it."""
    out = []
    for i, name in enumerate(view.objectives):
        metric = METRICS.get(name)
        if metric is None or metric.kind != "quality":
            continue
        low, high = metric.range
        best = high if metric.direction == "maximize" else low
        if not math.isfinite(best):
            continue
        hits = [t for t in view.complete if abs(t.values[i] - best) <= 1e-12]
        if not hits:
            continue
        # Configurations, not trials: a repeat (tuneops.repeats) took its earlier trial's score
        # and counted as another model at 1.0 (9 trials of 8 configurations on agaricus_lepiota)
        n = len({tuple(sorted(t.params.items())) for t in hits})
        out.append(
            Finding(
                "warning",
                "perfect score",
                f"{n} configuration(s) scored a perfect {name} of {_fmt(best)} in cross-"
                f"validation (trial {hits[0].number}{' and others' if n > 1 else ''}). On real "
                "data that is most often a leak: a column that encodes the target (an id given "
                "by outcome, a field filled in after it). Check the features the model uses most "
                "and leave such columns out (data.drop) before trusting the score.",
            )
        )
    return out


CHECKS: tuple[Callable[[StudyView, Mapping[str, Any]], list[Finding]], ...] = (
    convergence,
    baseline,
    perfect,
    boundary,
    pruning,
    failures,
    noise,
    busy_machine,
    fit_time_definitions,
    feasibility,
    warm_start,
    running,
)


def compute_findings(view: StudyView, panels: Mapping[str, Any]) -> list[Finding]:
    """Every finding, warnings first. ``panels`` maps panel key -> data (None when missing)."""
    found = [f for check in CHECKS for f in check(view, panels)]
    order = {"warning": 0, "info": 1, "ok": 2}
    return sorted(found, key=lambda f: order.get(f.level, 3))


def findings_section(
    study: Any,
    trials: Any,
    *,
    sections: Mapping[str, Any] | None = None,
    selection: Mapping[str, Any] | None = None,
) -> list[dict[str, str]] | None:
    """The findings for ``results.json`` (``tuneops show --json``); cheap: no importances.

    ``sections`` (pruning, workers) and the ``selection`` (``Choice.to_dict()``): already
    computed by the caller for these trials, not computed again. The selection's front (the
    noise-aware one ``show`` prints) is the one the findings judge, as in the report."""
    view = view_of(study, trials, sections=sections, selection=selection)
    if not view.trials:
        return None
    return [asdict(f) for f in compute_findings(view, {})]
