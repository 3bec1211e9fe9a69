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
#: maximum step, on tuneops' fidelity schedule (a spec) and on an objective's own steps (every
#: epoch or boosting round of a ``tune()`` objective). Chosen by benchmarks/bench_pruners.py
#: (see :func:`auto_pruner`).
AUTO_REDUCTION_FACTOR = 3
AUTO_MIN_FRACTION = 1 / 9
AUTO_OWN_STEPS_REDUCTION_FACTOR = 2
AUTO_OWN_STEPS_FRACTION = 1 / 3
#: ``auto`` with several objectives: Pareto pruning decides from this fraction of the maximum step.
AUTO_PARETO_WARMUP = 1 / 3


def auto_pruner(
    *,
    n_objectives: int = 1,
    n_trials: int | None = None,
    max_step: int | None = None,
    measured_after_last: bool = False,
    fidelity_schedule: bool = False,
) -> optuna.pruners.BasePruner:
    """The pruner ``auto`` resolves to, by budget (``n_trials``), number of objectives, and
    whose steps the objective reports (``fidelity_schedule``: tuneops' own, a spec's).

    * Fewer than ``SMALL_BUDGET`` (10) trials: no pruning (every trial would be compared with
      too few others).
    * Several objectives: :class:`ParetoPruner` deciding from a third of the maximum step on
      (``warmup_fraction``; in the benchmark's replays deciding from a quarter or a half of
      the training kept every member of the final Pareto front and the full hypervolume), and
      never after the last step unless the objective still measures a serving cost there
      (``measured_after_last``: a spec's latency or size).
    * One objective, 10 trials or more, or no trial budget (a timeout or a compute budget):
      :class:`FractionalHalvingPruner`, asynchronous successive halving with rungs at
      fractions of the maximum step (declared as ``max_step``, or learned from the completed
      trials). On tuneops' fidelity schedule (``fidelity_schedule``: a spec, 27ths): reduction
      factor 3, rungs at 1/9 and 1/3 (a trial goes on only in the top third of the trials that
      reached the rung): steps 3 and 9. On an objective's own steps (``tune()``, or any
      Optuna study: every epoch or boosting round, whatever their number): reduction factor 2,
      rungs at 1/3 and 2/3 (the top half goes on): epochs 17 and 34 of 50, steps 2 and 3 of 4.

    Why (benchmarks/bench_pruners.py, figures in docs/benchmarks.md, "Pruning"): under a fixed
    compute budget, replayed on recorded real curves. On tuneops' own schedule (27ths, 40
    configurations on each of 5 PMLB sets) rungs at 1/9 and 1/3 saved 48 % of the compute to
    the no-pruning final quality, against 51 % for the same rungs knowing the final ranking;
    1/9 of a configuration's budget already costs about 21 % of its full fit there, and the
    curves rank configurations at 1/9 (Spearman correlation with the final accuracy +0.54 to
    +0.88 on four sets of five). An objective reporting every epoch is another curve: on MLPs
    trained for 50 epochs the correlation at epoch 6 (1/9) was +0.2 to +0.5 on four sets of
    five and negative on two of six held-out sets (fast learners that overfit), and the same
    rungs cut the configurations that win later: on the first five sets (3 draws of 20
    streams) they reached the no-pruning target in 82-84 % of the runs against 89-94 % without
    pruning, on six held-out sets in 51-60 % against 72-79 %; with the same MLPs reporting 20
    epochs (2 draws), in 33-51 % and 52-62 % against 87-97 % and 68-76 %. Halving at 1/3 and
    2/3 with reduction factor 2 reached it in as many runs as no pruning or more on both
    50-epoch splits (93-98 % and 83-86 %) and saved more (14-22 % and 9-17 %); at 20 epochs it
    reached it in 87-94 % and 77-82 % and saved -5 % and 10-22 %. A single rung at 1/3 with
    reduction factor 3, the best on the first five sets, missed the target more often than no
    pruning on the held-out ones: a trial must be judged twice, gently, where the curves still
    cross. On LightGBM curves reporting each of 100 rounds (11 sets), recorded after the choice, the
    own-steps rule saved 23-29 % against 16-20 % and reached the target in 82-84 % of the
    runs against 71-85 % (no pruning 74-75 %). tuneops cannot tell an objective's curves from
    the number of steps it reports (20 MLP epochs rank as late as 50), so the rule follows
    whose steps they are: the spec's, measured, or the objective's own, where reaching the
    target comes first. Optuna's ``SuccessiveHalvingPruner`` places rungs at absolute steps
    (``min_resource * rf**k``: epochs 1, 4, 16 of a 50-epoch curve) and reached the target
    in 39-61 % of the epoch runs.
    """
    if n_trials is not None and n_trials < SMALL_BUDGET:
        return optuna.pruners.NopPruner()
    if n_objectives > 1:
        return ParetoPruner(
            warmup_fraction=AUTO_PARETO_WARMUP,
            max_step=max_step,
            cut_at_last_step=measured_after_last,
        )
    if fidelity_schedule:
        return FractionalHalvingPruner(
            max_step=max_step,
            reduction_factor=AUTO_REDUCTION_FACTOR,
            min_fraction=AUTO_MIN_FRACTION,
        )
    return FractionalHalvingPruner(
        max_step=max_step,
        reduction_factor=AUTO_OWN_STEPS_REDUCTION_FACTOR,
        min_fraction=AUTO_OWN_STEPS_FRACTION,
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
