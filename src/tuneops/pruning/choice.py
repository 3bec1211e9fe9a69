"""Which pruner a study runs: ``auto``'s rule (:func:`auto_pruner`), and what the study records
of the choice (:func:`record_pruner`: the pruner's description, and why it prunes nothing when
it does not)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from tuneops import _study
from tuneops.pruning.halving import FractionalHalvingPruner
from tuneops.pruning.multi_objective import ParetoPruner

PRUNER_ATTR = _study.PRUNER  # study user attr: the pruner a run resolved (``auto`` made concrete)


#: ``auto``: studies of fewer trials are not pruned.
SMALL_BUDGET = 10


#: ``auto``'s rungs (one objective): reduction factor and the first rung's fraction of the
#: maximum step. Chosen by benchmarks/bench_pruners.py (see :func:`auto_pruner`).
AUTO_REDUCTION_FACTOR = 3
AUTO_MIN_FRACTION = 1 / 9
#: ``auto`` with several objectives: Pareto pruning decides from this fraction of the maximum step.
AUTO_PARETO_WARMUP = 1 / 3


def auto_pruner(
    *,
    n_objectives: int = 1,
    n_trials: int | None = None,
    max_step: int | None = None,
    measured_after_last: bool = False,
) -> optuna.pruners.BasePruner:
    """The pruner ``auto`` resolves to, by budget (``n_trials``) and number of objectives.

    * Fewer than ``SMALL_BUDGET`` (10) trials: no pruning (every trial would be compared with
      too few others).
    * Several objectives: :class:`ParetoPruner` deciding from a third of the maximum step on
      (``warmup_fraction``; in the benchmark's replays deciding from a quarter or a half of
      the training kept every member of the final Pareto front and the full hypervolume), and
      never after the last step unless the objective still measures a serving cost there
      (``measured_after_last``: a spec's latency or size).
    * One objective, 10 trials or more, or no trial budget (a timeout or a compute budget):
      :class:`FractionalHalvingPruner` with reduction factor 3 and rungs at 1/9 and 1/3 of the
      maximum step (declared as ``max_step``, or learned from the completed trials): at each
      rung a trial goes on only if it is in the top third of the trials that reached it. With
      tuneops' fidelity schedule (27ths) the rungs are steps 3 and 9; with an objective that
      reports every one of 500 epochs, epochs 56 and 167; with one that reports 4 steps, steps
      1 and 2 (rungs that fall on the same step merge).

    Why (benchmarks/bench_pruners.py, figures in docs/benchmarks.md, "Pruning"): under a fixed
    compute budget, replayed on recorded real curves, the first rung at 1/27 and at 1/9 are
    the same rung on a spec's eighths (35 % of the compute to the no-pruning final quality
    saved in the median, the target reached in 86 % of the runs against 68 % without
    pruning); on MLPs reporting every epoch, a first rung at 1/27 (epoch 2 of 50) culled
    configurations at random (-39 % saving, reached 56 % against 94 %) where 1/9 saved 22 %
    and reached 84 %: the first rung must be where the curve already ranks configurations.
    Rungs at fractions fit the curve whatever the number of steps reported, where Optuna's
    ``SuccessiveHalvingPruner`` places them at absolute steps (``min_resource * rf**k``:
    epochs 2, 8, 32 of a 50-epoch curve; the previous ``auto``: -42 %, reached 52 %).
    Hyperband brackets (``n_brackets=3``) reached the target more often on the epoch curves
    (96 %) but saved nothing; no rule met the issue's targets on every source (see the doc).
    On tuneops' own schedule (27ths, recorded for 40 configurations on each of 5 PMLB sets) the
    rungs are steps 3 and 9 and ``auto`` saved 48 %, against 51 % for the same rungs knowing
    the final ranking: the rung structure, not the ranking, caps it near half, because 1/9 of
    a configuration's budget already costs about 21 % of its full fit. Rules that saved a few
    points more there (reduction factor 4; Optuna's successive halving at steps 2, 8, 32) lost
    the target in most runs on three of the five epoch sets, so the defaults stand.
    """
    if n_trials is not None and n_trials < SMALL_BUDGET:
        return optuna.pruners.NopPruner()
    if n_objectives > 1:
        return ParetoPruner(
            warmup_fraction=AUTO_PARETO_WARMUP,
            max_step=max_step,
            cut_at_last_step=measured_after_last,
        )
    return FractionalHalvingPruner(
        max_step=max_step, reduction_factor=AUTO_REDUCTION_FACTOR, min_fraction=AUTO_MIN_FRACTION
    )


def is_off(study_attrs: Mapping[str, Any]) -> bool:
    return study_attrs.get(PRUNER_ATTR) == describe_pruner(optuna.pruners.NopPruner())


def record_pruner(
    study: optuna.Study,
    pruner: optuna.pruners.BasePruner,
    asked: str,
    n_trials: int | None,
    *,
    field: str,
) -> None:
    """Record the pruner a run resolved (``auto`` made concrete) and, when it prunes nothing,
    why, in the words of what was asked (``field``: ``search.pruner`` in a spec, ``pruner``
    in :func:`tuneops.tune`)."""
    study.set_user_attr(PRUNER_ATTR, describe_pruner(pruner))
    if isinstance(pruner, optuna.pruners.NopPruner):
        study.set_user_attr(_study.PRUNER_OFF, why_off(asked, n_trials, field=field))


def why_off(asked: str, n_trials: int | None, *, field: str) -> str:
    """Why pruner ``asked`` prunes nothing in a study of ``n_trials`` trials (pure)."""
    if asked == "auto" and n_trials is not None and n_trials < SMALL_BUDGET:
        return (
            f"{field} auto prunes studies of {SMALL_BUDGET} trials or more; this one asked "
            f"for {n_trials}"
        )
    return f"{field} auto chose no pruner" if asked == "auto" else f"{field}: {asked}"


def off_reason(study_attrs: Mapping[str, Any]) -> str:
    """Why a study ran without pruning: recorded by :func:`record_pruner`, else (a study of an
    earlier tuneops) read from the spec it records (pure)."""
    recorded = study_attrs.get(_study.PRUNER_OFF)
    if isinstance(recorded, str):
        return recorded
    search = (study_attrs.get(_study.SPEC) or {}).get("search") or {}
    asked = search.get("pruner", "auto")
    name = asked.get("name") if isinstance(asked, Mapping) else asked
    n_trials = search.get("n_trials")
    budget = n_trials if isinstance(n_trials, int) else None
    return why_off(str(name), budget, field="search.pruner")


def describe_pruner(pruner: optuna.pruners.BasePruner) -> str:
    """A short readable name of a built pruner, for results and logs."""
    if isinstance(pruner, (ParetoPruner, FractionalHalvingPruner)):
        return repr(pruner)
    fields = {
        k.lstrip("_"): v
        for k, v in vars(pruner).items()
        if isinstance(v, (int, float, str)) and not k.startswith("__")
    }
    inner = getattr(pruner, "_wrapped_pruner", None)
    if inner is not None:
        fields["wrapped"] = describe_pruner(inner)
    args = ", ".join(f"{k}={v}" for k, v in sorted(fields.items()))
    return f"{type(pruner).__name__}({args})"
