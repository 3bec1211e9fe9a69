"""Findings in words: each check on hand-made studies where the right sentence is known, and on
studies that must not trigger it. The definitions are the checks' docstrings (and the guide)."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from report_studies import add, build

from tuneops import _study
from tuneops.report import build_report
from tuneops.report.findings import CPU_SHARE_MIN, PRUNED_TOO_MANY, convergence_window


def topics(study, topic):
    return [f for f in build_report(study).findings if f.topic == topic]


def series(
    values, *, direction="maximize", params=None, attrs=None, states=None, seconds=None, spec=None
):
    """A one-objective study: trial i has value values[i] (None: no value, e.g. pruned)."""
    study = optuna.create_study(direction=direction)
    if spec is not None:
        study.set_user_attr(_study.SPEC, spec)
    for i, v in enumerate(values):
        state = (states or {}).get(i, TrialState.COMPLETE)
        add(
            study,
            i,
            (params or (lambda i: {"lr": 0.01, "depth": 5}))(i),
            [v],
            state=state,
            attrs=(attrs or (lambda i: {}))(i),
            seconds=(seconds or (lambda i: 1.0))(i),
        )
    return study


def two_objective(points, *, states=None):
    """A (maximize, minimize) study with trial i at points[i]."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr(
        _study.OBJECTIVES,
        [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "latency", "direction": "minimize"},
        ],
    )
    for i, p in enumerate(points):
        add(
            study,
            i,
            {"lr": 0.01, "depth": 1 + i % 10},
            list(p),
            state=(states or {}).get(i, TrialState.COMPLETE),
        )
    return study


# -- convergence -------------------------------------------------------------------------------
def test_the_window_is_the_last_max_10_or_20_percent_of_finished_trials():
    assert convergence_window(20) == 10 and convergence_window(50) == 10
    assert convergence_window(51) == 11 and convergence_window(10_000) == 2000


def test_still_improving():
    (f,) = topics(series([i / 20 for i in range(20)]), "convergence")
    assert f.level == "warning"
    assert f.text == (
        "Still improving: the best value improved by 0.5, 52.6% of the range of values "
        "seen (0.95), within the last 10 of 20 finished trials (trials 10-19); last "
        "improvement at trial 19. More trials are likely to help."
    )


def test_converged():
    (f,) = topics(series([0.1, 0.5, 0.9] + [0.3] * 17), "convergence")
    assert f.level == "ok"
    assert f.text.startswith(
        "Converged: the best value improved by 0, 0.0% of the range of values seen "
        "(0.8), within the last 10 of 20 finished trials (trials 10-19); last "
        "improvement at trial 2"
    )


def test_converged_on_one_value_says_so():
    (f,) = topics(series([0.7] * 20), "convergence")
    assert f.level == "ok"
    assert f.text.startswith(
        "Converged: the best value stayed at 0.7 from the first feasible trial on, within the "
        "last 10 of 20 finished trials (trials 10-19) as before it; last improvement at trial 0"
    )
    assert "range of values seen" not in f.text


def test_minimized_objective_and_a_small_gain_below_the_threshold_is_converged():
    # range 1.0; the last 10 trials improve the best from 0.0 to -0.005: 0.5% <= 1%
    values = [1.0, 0.0] + [0.5] * 17 + [-0.005]
    (f,) = topics(series(values, direction="minimize"), "convergence")
    assert (
        f.level == "ok"
        and "0.5% of the range" in f.text
        and "last improvement at trial 19" in f.text
    )
    values[-1] = -0.05  # 4.8% of the range now
    (f,) = topics(series(values, direction="minimize"), "convergence")
    assert f.level == "warning" and f.text.startswith("Still improving")


def test_an_improvement_within_the_fold_noise_is_converged_within_noise():
    """An AUC gain of 0.0047 against a fold-to-fold std of 0.012 read as "still improving"."""
    values = [0.70, 0.79] + [0.75] * 17 + [0.7947]
    noisy = {"attrs": lambda i: {"metrics_std": {"value": 0.012}}}
    (f,) = topics(series(values, **noisy), "convergence")
    assert f.level == "ok" and f.text.startswith("Converged within noise: the best value")
    assert "lies within the noise of an earlier trial" in f.text
    values[-1] = 0.83  # 0.04 above the earlier best: beyond a fold std of 0.012
    (f,) = topics(series(values, **noisy), "convergence")
    assert f.level == "warning" and f.text.startswith("Still improving")
    # without a recorded std an improvement is judged by its size alone, as before
    values[-1] = 0.7947
    (f,) = topics(series(values), "convergence")
    assert f.level == "warning" and f.text.startswith("Still improving")


def test_several_objectives_judge_the_front_shown_and_its_noise():
    """The last improvement is a member of the front shown; a new point within the measured
    interval of an earlier one's latency is no improvement."""
    points = [(0.80, 10.0), (0.90, 20.0)] + [(0.5, 30.0)] * 17 + [(0.90, 19.5)]
    study = optuna.create_study(directions=["maximize", "minimize"])
    objectives = [
        {"metric": "accuracy", "direction": "maximize"},
        {"metric": "latency", "direction": "minimize"},
    ]
    study.set_user_attr(_study.OBJECTIVES, objectives)
    # 19 is faster than 1 only within 1's measured interval
    intervals = {1: [18.0, 22.0], 19: [18.5, 20.5]}
    for i, p in enumerate(points):
        attrs = {_study.COST: {"intervals": {"latency": intervals[i]}}} if i in intervals else {}
        add(study, i, {"lr": 0.01, "depth": 1 + i % 10}, list(p), attrs=attrs)
    (f,) = topics(study, "convergence")
    assert f.level == "ok" and f.text.startswith("Converged within noise"), f.text

    # 19 is less accurate than 1 and faster only within 1's interval: a tie, off the front
    # shown, which moved the plain front's hypervolume in the window. The finding named the
    # front's newest member (1) as the last improvement, against the gain it had just measured
    # ("improved by 0.008 within trials 6-15; last improvement at trial 1")
    points[19] = (0.85, 19.5)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr(_study.OBJECTIVES, objectives)
    for i, p in enumerate(points):
        attrs = {_study.COST: {"intervals": {"latency": intervals[i]}}} if i in intervals else {}
        add(study, i, {"lr": 0.01, "depth": 1 + i % 10}, list(p), attrs=attrs)
    (f,) = topics(study, "convergence")
    assert f.level == "ok" and f.text.startswith("Converged within noise"), f.text
    assert (
        "within the last 10 of 20 finished trials (trials 10-19); last improvement at trial 19, "
        "a tie within measured noise (the newest trial on the front shown is 1)" in f.text
    ), f.text


def test_every_finished_trial_counts_in_the_window_not_only_feasible_ones():
    # improvements up to trial 19, then 10 pruned trials: the last 10 finished trials improved
    # nothing, although the last feasible trials did
    values = [i / 20 for i in range(20)] + [None] * 10
    states = {i: TrialState.PRUNED for i in range(20, 30)}
    (f,) = topics(series(values, states=states), "convergence")
    assert f.level == "ok" and "within the last 10 of 30 finished trials (trials 20-29)" in f.text


def test_multi_objective_hypervolume_flat_for_the_last_20_trials_is_converged():
    # the issue's case: the front grew until trial 19 (by a few % in its last trials), then 20
    # dominated trials: the hypervolume did not change in the window
    front = [(0.5 + 0.02 * i, 1.0 + 0.01 * i) for i in range(20)]
    dominated = [(0.4, 5.0)] * 20
    (f,) = topics(two_objective(front + dominated), "convergence")
    assert f.level == "ok" and "hypervolume of the feasible front improved by 0," in f.text
    assert "last improvement at trial 19" in f.text


def test_multi_objective_still_improving_when_the_front_grows_in_the_window():
    points = [(0.4, 5.0)] * 20 + [(0.5 + 0.02 * i, 1.0) for i in range(20)]
    (f,) = topics(two_objective(points), "convergence")
    assert f.level == "warning" and f.text.startswith("Still improving: the hypervolume")
    assert "last improvement at trial 39" in f.text


def test_too_few_trials_and_no_feasible_trial_yet():
    (f,) = topics(series([0.1, 0.2, 0.3]), "convergence")
    assert f.level == "info" and "too few" in f.text and "need at least 11" in f.text
    # the first feasible trial arrives inside the window
    study = optuna.create_study()
    for i in range(20):
        add(study, i, {"lr": 0.1}, [1.0], constraint=1.0 if i < 15 else -1.0)
    (f,) = topics(study, "convergence")
    assert f.level == "warning" and "first feasible trial came within the last 10" in f.text


# -- boundary ----------------------------------------------------------------------------------
DEPTHS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_best_trials_at_a_boundary_ask_to_widen_the_range():
    # depth is best at its upper bound 10, lr in the middle of its range
    study = series(
        [d / 10 for d in DEPTHS * 2], params=lambda i: {"lr": 0.01, "depth": DEPTHS[i % 10]}
    )
    (f,) = topics(study, "boundary")
    assert f.text.startswith(
        "depth: 2 of the 3 best trials sit at the upper bound 10 of its range [1, 10]"
    )
    # the same values reversed: best at the lower bound
    low = series(
        [1 - d / 10 for d in DEPTHS * 2], params=lambda i: {"lr": 0.01, "depth": DEPTHS[i % 10]}
    )
    assert "lower bound 1 " in topics(low, "boundary")[0].text
    inside = series(
        [-abs(d - 5) for d in range(1, 11)] * 2,
        params=lambda i: {"lr": 0.01, "depth": DEPTHS[i % 10]},
    )
    assert topics(inside, "boundary") == []


def test_best_trials_near_a_bound_say_where_they_are():
    """The regression run's 4 best trials had min_samples_leaf 87, 88, 95 and 98 in [2, 100]
    (log): "4 of the 4 best trials sit at the upper bound 100" named values none of them had."""
    leaf = [87, 88, 95, 98, 3, 5, 8, 12, 20, 40] * 2
    study = optuna.create_study(direction="maximize")
    dist = optuna.distributions.IntDistribution(2, 100, log=True)
    for i, v in enumerate([1.0, 0.99, 0.98, 0.97] + [0.5] * 16):
        study.add_trial(
            optuna.trial.create_trial(
                params={"leaf": leaf[i]}, distributions={"leaf": dist}, values=[v]
            )
        )
    (f,) = topics(study, "boundary")
    assert f.text.startswith(
        "leaf: 3 of the 3 best trials sit near the upper bound of its range [2, 100] (at 87 to "
        "95: its outer 5% on a log scale): the optimum may lie beyond."
    ), f.text


def test_boundary_advice_fits_the_kind_of_study():
    values = [d / 10 for d in DEPTHS * 2]
    tuned = series(values, params=lambda i: {"lr": 0.01, "depth": DEPTHS[i % 10]})
    (f,) = topics(tuned, "boundary")  # tune() or plain Optuna: no spec to edit
    assert "spec" not in f.text and "model.space" not in f.text
    assert "in the search space your objective suggests (trial.suggest_*)" in f.text
    spec = {"study": "s", "model": {"family": "knn"}}
    (f,) = topics(
        series(values, params=lambda i: {"lr": 0.01, "depth": DEPTHS[i % 10]}, spec=spec),
        "boundary",
    )
    assert f.text.endswith("Widen the range beyond 10 in the spec, field model.space.depth.")


def test_no_advice_to_widen_a_range_past_the_estimators_own_limit():
    """k-NN refuses n_neighbors 0: "widen the range beyond 1" was refused by the spec check."""
    values = [1 - k / 10 for k in DEPTHS * 2]  # best at the lower bound 1
    params = lambda i: {"n_neighbors": DEPTHS[i % 10]}  # noqa: E731
    spec = {"study": "s", "model": {"family": "knn"}}
    assert topics(series(values, params=params, spec=spec), "boundary") == []
    # a custom objective's range (no estimator known) and the upper bound are still judged
    assert "lower bound 1 " in topics(series(values, params=params), "boundary")[0].text
    high = [k / 10 for k in DEPTHS * 2]
    (f,) = topics(series(high, params=params, spec=spec), "boundary")
    assert "upper bound 10" in f.text and "model.space.n_neighbors" in f.text


def test_log_parameters_are_judged_on_the_log_scale():
    lrs = [10 ** (-4 + 4 * k / 9) for k in range(10)] * 2  # 1e-4 .. 1 evenly in log
    study = series(
        [-abs(k - 4.5) for k in range(10)] * 2, params=lambda i: {"lr": lrs[i], "depth": 5}
    )
    assert topics(study, "boundary") == []  # the best are mid-range in log space


# -- pruning -----------------------------------------------------------------------------------
def test_too_much_pruning():
    states = {i: TrialState.PRUNED for i in range(12) if i % 4 != 0}
    (f,) = topics(series([0.5] * 12, states=states), "pruning")
    assert (
        9 / 12 > PRUNED_TOO_MANY and f.level == "warning" and "Too much pruning: 9 of 12" in f.text
    )
    assert topics(series([0.5] * 12), "pruning") == []


def test_a_halving_pruner_at_its_design_share_is_not_too_much_pruning():
    """tuneops' own default (rungs at 1/9 and 1/3, reduction factor 3) lets about 1 trial in 9
    finish: 18 of 20 pruned is its design, not a warning; beyond the design it is."""
    full = {"steps": [3, 10, 30], "n_steps": 30, "max_step": 30, "fit_s": 3.0, "pruned": False}

    def halving(n: int, pruned_at: dict[int, int]) -> optuna.Study:
        def record(i: int) -> dict[str, Any]:
            if i not in pruned_at:
                return {_study.FIDELITY: full}
            steps = [3, 10][: 1 + (pruned_at[i] == 10)]
            cut = {"steps": steps, "n_steps": 30, "max_step": 30, "fit_s": 0.1 * steps[-1],
                   "pruned": True}
            return {_study.FIDELITY: cut}

        states = {i: TrialState.PRUNED for i in pruned_at}
        study = series([0.5] * n, states=states, attrs=record)
        study.set_user_attr(_study.PRUNER, "FractionalHalvingPruner(max_step=learned, "
                                           "reduction_factor=3, min_fraction=0.1111)")
        return study

    two_rungs = {i: (3 if i % 3 else 10) for i in range(2, 20)}  # 18 of 20, at 2 rungs
    (f,) = topics(halving(20, two_rungs), "pruning")
    assert f.level == "info" and "18 of 20 finished trials (90%) were pruned: within what" in f.text
    assert "reduction factor 3 at 2 rung(s) prunes up to 89% of the trials, all but about 1 in 9" in f.text
    one_rung = {i: 3 for i in range(2, 20)}  # 18 of 20 at the first rung: beyond 1 - 1/3
    (f,) = topics(halving(20, one_rung), "pruning")
    assert f.level == "warning" and "Too much pruning: 18 of 20" in f.text


def test_pruning_savings_are_never_negative_or_meaningless():
    # pruned trials took as long as complete ones: nothing measurable was saved, nothing is said
    (f,) = topics(series([0.5] * 12, states={3: TrialState.PRUNED}), "pruning")
    assert f.level == "info" and f.text == "1 of 12 finished trials (8%) were pruned."
    # pruned trials took longer than the median complete one (a custom objective): no "-0.1 s"
    slow = series(
        [0.5] * 12, states={3: TrialState.PRUNED}, seconds=lambda i: 1.1 if i == 3 else 1.0
    )
    (f,) = topics(slow, "pruning")
    assert "saved" not in f.text
    # complete trials take 10 s, the pruned one stopped after 1 s: about 9 s saved of 120 s
    fast = series(
        [0.5] * 12, states={3: TrialState.PRUNED}, seconds=lambda i: 1.0 if i == 3 else 10.0
    )
    (f,) = topics(fast, "pruning")
    assert f.text.endswith(
        "Pruning saved about 9.0 s of 120.0 s (pruned trials counted at the median "
        "duration of complete trials)."
    )


def test_pruning_savings_come_from_the_pruning_features_record():
    full = {
        "steps": list(range(1, 11)),
        "n_steps": 10,
        "max_step": 10,
        "fit_s": 10.0,
        "pruned": False,
    }
    cut = {"steps": [1, 2], "n_steps": 10, "max_step": 10, "fit_s": 2.0, "pruned": True}
    study = series(
        [0.5] * 4,
        states={1: TrialState.PRUNED},
        attrs=lambda i: {_study.FIDELITY: cut if i == 1 else full},
    )
    (f,) = topics(study, "pruning")
    # the pruned trial ran 2 of 10 steps in 2 s: 8 s saved; 32 s spent fitting, 40 s unpruned
    assert "Pruning saved 8.0 CPU s of fitting (20% of what full training would have taken)." in f.text


# -- failures, noise, the rest -----------------------------------------------------------------
def test_failed_trials_and_their_reasons():
    reasons = {
        1: "ValueError: bad\ntraceback...",
        2: "ValueError: bad\nother",
        4: "MemoryError: out",
    }
    study = series(
        [0.5] * 6,
        states={i: TrialState.FAIL for i in reasons},
        attrs=lambda i: {_study.FAIL_REASON: reasons[i]} if i in reasons else {},
    )
    (f,) = topics(study, "failures")
    assert f.level == "warning"
    assert f.text == "3 of 6 trials failed: 2x ValueError: bad; 1x MemoryError: out."


@pytest.mark.parametrize(
    "spec, advice",
    [
        (None, "Average over more folds or repeats in your objective, or use more data."),
        ({"study": "s"}, "Use more folds (search.cv_folds) or more data."),
    ],
)
def test_high_noise_between_cv_folds(spec, advice):
    distinct = {"params": lambda i: {"lr": 0.01 * (i + 1), "depth": 5}}
    noisy = series(
        [0.90 + 0.001 * (i % 5) for i in range(12)],
        attrs=lambda i: {"metrics_std": {"value": 0.05}},
        spec=spec,
        **distinct,
    )
    (f,) = topics(noisy, "noise")
    assert f.level == "warning" and f.text.startswith(
        "High noise between CV folds in value: the top 3"
    )
    assert f.text.endswith(advice)
    quiet = series(
        [0.5 + 0.03 * i for i in range(12)],
        attrs=lambda i: {"metrics_std": {"value": 0.001}},
        **distinct,
    )
    assert topics(quiet, "noise") == []


def test_a_configuration_evaluated_again_counts_once_among_the_top_trials():
    """Three evaluations of one configuration (identical scores on the same folds) made "the
    top 4 differ by 2.3e-05"; the distinct configurations are far apart."""
    values = [0.95, 0.80, 0.70, 0.60, 0.95, 0.95] + [0.5 - 0.01 * i for i in range(6)]
    repeat = {0: 1.0, 4: 1.0, 5: 1.0}  # trials 0, 4 and 5: one configuration
    study = series(
        values,
        params=lambda i: {"lr": repeat.get(i, 0.001 * (i + 1)), "depth": 5},
        attrs=lambda i: {"metrics_std": {"value": 0.02}},
    )
    assert topics(study, "noise") == []


def test_warm_start_running_and_constraints():
    study = build(20)
    (f,) = topics(study, "warm start")
    assert f.text.startswith("3 warm-start trials")
    (f,) = topics(study, "progress")
    assert "1 trials running" in f.text
    impossible = optuna.create_study()
    for i in range(3):
        add(impossible, i, {"lr": 0.1}, [1.0], constraint=1.0)
    (f,) = topics(impossible, "constraints")
    assert f.level == "warning" and "None of the 3" in f.text


def test_warnings_come_first():
    levels = [f.level for f in build_report(build(40)).findings]
    assert levels == sorted(levels, key=["warning", "info", "ok"].index)


@pytest.mark.parametrize("spec, where", [(None, "NopPruner"), ({"study": "s"}, "search.pruner")])
def test_every_trial_pruned_is_a_warning_and_claims_no_saving(spec, where):
    """8 of 8 pruned read "Pruning saved 14.8 CPU s of fitting (96% ...)" as information: the
    compute bought no model at all."""
    cut = {"steps": [1], "n_steps": 10, "max_step": 10, "fit_s": 1.0, "pruned": True}
    study = series(
        [0.5] * 8,
        states=dict.fromkeys(range(8), TrialState.PRUNED),
        attrs=lambda i: {_study.FIDELITY: cut},
        spec=spec,
    )
    (f,) = topics(study, "pruning")
    assert f.level == "warning" and f.text.startswith(
        "Every trial was pruned: the pruner stopped all 8 finished trials"
    )
    assert "no model was trained to the end" in f.text and where in f.text
    assert "saved" not in f.text


def test_failures_differing_only_in_numbers_are_one_reason():
    """"1x RuntimeError: boom 0.55; 1x RuntimeError: boom 0.72; ..." listed one failure once per
    value in its message."""
    reasons = {i: f"RuntimeError: boom {0.5 + i / 100}\ntraceback" for i in range(1, 5)}
    reasons[5] = "MemoryError: out"
    study = series(
        [0.5] * 7,
        states={i: TrialState.FAIL for i in reasons},
        attrs=lambda i: {_study.FAIL_REASON: reasons[i]} if i in reasons else {},
    )
    (f,) = topics(study, "failures")
    assert f.text == (
        "5 of 7 trials failed: 4x RuntimeError: boom <n> (e.g. RuntimeError: boom 0.51); "
        "1x MemoryError: out."
    )


def test_the_positive_class_is_named_only_for_metrics_that_depend_on_it():
    """"The best accuracy (positive class 1) is ...": accuracy has no positive class."""

    def no_better(metric: str) -> str:
        study = series([0.5, 0.55, 0.52])
        study.set_user_attr(_study.OBJECTIVES, [{"metric": metric, "direction": "maximize"}])
        study.set_user_attr(
            _study.SCORING,
            {"pos_label": 1, "baseline_model": "majority-class", "baseline": {metric: 0.6}},
        )
        (f,) = topics(study, "baseline")
        return f.text

    assert no_better("accuracy").startswith("The best accuracy is 0.55, no better than")
    assert no_better("f1").startswith("The best f1 (positive class 1) is 0.55")


def _serving(**record):
    return {"tuneops:cost": {"serving": {"path": "row", **record}}}


def test_latencies_measured_while_the_serving_thread_waited_for_a_core_are_a_warning():
    """The serving thread's CPU share of its calls' wall time decides, not the load average."""
    shares = [0.99, 0.97, 0.45, 0.12, 0.98]
    loads = [3.5, 0.4, 0.5, 7.0, 9.0]  # lagging: high after the burst, low during it
    busy = series(
        [0.9, 0.91, 0.92, 0.93, 0.94],
        attrs=lambda i: _serving(cpu_share=shares[i], load=loads[i], cores=2),
    )
    (f,) = topics(busy, "latency")
    assert f.level == "warning"
    assert "2 of 5 latency measurements ran while the serving thread waited for a core" in f.text
    assert "in the lowest it ran 12% of its timed calls' wall time (below 80% counts" in f.text
    assert "load average then was up to 7.0 on 2 cores" in f.text
    assert "`tuneops verify`" in f.text
    # a busy load average with the thread running throughout (the study's own workers, or a
    # burst after the measurement) is no finding
    quiet = series([0.9, 0.91], attrs=lambda i: _serving(cpu_share=0.96, load=12.0, cores=2))
    assert topics(quiet, "latency") == []


@pytest.mark.parametrize(
    ("share", "fires"), [(CPU_SHARE_MIN - 0.01, True), (CPU_SHARE_MIN, False), (1.0, False)]
)
def test_the_busy_machine_threshold_is_the_cpu_share(share, fires):
    study = series([0.9], attrs=lambda i: _serving(cpu_share=share, load=0.1, cores=2))
    assert bool(topics(study, "latency")) is fires


def test_the_trial_table_shows_each_measurement_cpu_share_beside_its_interval():
    """The busy-machine finding named how many measurements waited for a core, but the table
    that shows each latency and its interval did not show which trials' they were (review)."""
    from tuneops.report.document import CPU_SHARE_COLUMN

    shares = [0.99, 0.45, 0.796, None, CPU_SHARE_MIN]
    study = series(
        [0.9, 0.91, 0.92, 0.93, 0.94],
        attrs=lambda i: {
            "tuneops:cost": {
                "serving": {"path": "row", "cpu_share": shares[i]},
                "intervals": {"value": [0.8, 1.0]},
            }
        },
    )
    table = build_report(study).table
    assert CPU_SHARE_COLUMN == "serving CPU share (busy < 80%)"
    column = table.columns.index(CPU_SHARE_COLUMN)
    assert table.columns[column - 1] == "value 95% interval"  # beside the interval it qualifies
    assert [row[column] for row in table.rows] == [
        "99%",
        "45% busy",
        "79% busy",
        "not recorded",
        "80%",
    ]
    # a study that recorded no share (an older one, a wall clock) has no such column
    older = series([0.9, 0.91], attrs=lambda i: _serving(load=0.5, cores=2))
    assert not any("CPU share" in c for c in build_report(older).table.columns)


def test_the_cpu_share_column_says_why_a_trial_has_no_share():
    """A study resumed with serving.threads above 1 timed its new trials by the wall clock: their
    CPU share cells were blank beside those of the first run, and unexplained (review)."""
    from tuneops.report.document import CPU_SHARE_COLUMN
    from tuneops.report.html import render_html

    def cost(i):
        if i == 0:
            return {"serving": {"path": "row", "clock": "thread_cpu", "cpu_share": 0.97}}
        if i == 1:  # serving.threads: 2
            call = {"median_ms": 1.0, "cpu_share": None}
            return {"serving": {"path": "row", "clock": "wall", "call": call, "cpu_share": None}}
        if i == 2:  # a tuneops that recorded no share
            return {"serving": {"path": "row", "call": {"median_ms": 1.0}}}
        return {"fit": {"cpu_s": [0.1]}}  # pruned before its latency was measured

    study = series(
        [0.9, 0.91, 0.92, None],
        attrs=lambda i: {"tuneops:cost": cost(i)},
        states={3: TrialState.PRUNED},
    )
    report = build_report(study)
    column = report.table.columns.index(CPU_SHARE_COLUMN)
    cells = [row[column] for row in report.table.rows]
    assert cells == ["97%", "wall clock", "not recorded", "–"]
    legend = dict(report.table.legend)[CPU_SHARE_COLUMN]
    assert all(f'"{cell}"' in legend for cell in cells[1:])
    assert "serving.threads above 1" in legend
    page = render_html(report, plotly="cdn")
    assert "wall clock&quot;: timed by the wall clock (serving.threads above 1)" in page
    # no share anywhere: no column, and no legend for it
    older = series([0.9], attrs=lambda i: _serving(load=0.5, cores=2))
    assert build_report(older).table.legend == ()


def test_measurements_without_a_cpu_share_fall_back_to_the_load_average():
    """Studies measured before the share was recorded: load above the cores (the audit: on 2
    cores at load 6-15 the same model measured up to 2.4x slower than idle)."""
    loads = [0.7, 0.9, 6.5, 12.2, 1.5]
    busy = series([0.9, 0.91, 0.92, 0.93, 0.94], attrs=lambda i: _serving(load=loads[i], cores=2))
    (f,) = topics(busy, "latency")
    assert f.level == "warning"
    assert "2 of 5 latency measurements ran on a busy machine by the load average" in f.text
    assert "up to 12.2 on 2 cores; they recorded no CPU share" in f.text
    quiet = series([0.9, 0.91, 0.92], attrs=lambda i: _serving(load=1.9, cores=2))
    assert topics(quiet, "latency") == []
    assert topics(series([0.9, 0.91, 0.92]), "latency") == []  # nothing timed
    # a study resumed across the change: both kinds, one finding, each counted by its own rule
    mixed = series(
        [0.9, 0.91, 0.92],
        attrs=lambda i: _serving(load=8.0, cores=2)
        if i == 0
        else _serving(cpu_share=[0.5, 0.99][i - 1], load=0.3, cores=2),
    )
    (f,) = topics(mixed, "latency")
    assert "1 of 3 latency measurements ran while the serving thread waited" in f.text
    assert "1 of 3 latency measurements ran on a busy machine by the load average" in f.text


# -- fit time definitions ----------------------------------------------------------------------
def _fit_record(version):
    """A trial's records as tuneops wrote them with each definition of fit_time_s (the version
    marker from 3 on; before it, only the shape of the cost record tells)."""
    metrics = {"metrics": {"accuracy": 0.9, "fit_time_s": 0.5}}
    if version == 1:  # before the cost record
        return metrics
    fit = {"cpu_s": [0.5], "wall_s": [0.6], "threads": 1}
    if version in (3, "marked"):
        fit["preprocess_cpu_s"] = [0.01]
    if version == "marked":
        fit["version"] = _study.FIT_TIME_VERSION
    return {**metrics, "tuneops:cost": {"fit": fit}}


def _fit_study(versions, *, objective="fit_time_s", constraints=()):
    study = series(
        [0.5] * len(versions),
        direction="minimize",
        attrs=lambda i: _fit_record(versions[i]),
        spec={"model": {"family": "linear"}},
    )
    study.set_user_attr(_study.OBJECTIVES, [{"metric": objective, "direction": "minimize"}])
    study.set_user_attr(_study.CONSTRAINTS, list(constraints))
    return study


def test_the_fit_time_definition_of_a_trial_is_its_marker_or_told_by_its_record():
    def version(record):
        study = series([0.5], attrs=lambda i: record)
        return _study.fit_time_version(study.trials[0])

    assert version(_fit_record("marked")) == _study.FIT_TIME_VERSION
    assert version(_fit_record(3)) == 3  # recorded between the change and its marker
    assert version(_fit_record(2)) == 2 and version(_fit_record(1)) == 1
    assert version({"metrics": {"accuracy": 0.9}}) is None  # no fit time measured
    assert set(_study.FIT_TIME_DEFINITIONS) == {1, 2, 3}


def test_a_study_that_mixes_fit_time_definitions_says_so_where_fit_time_is_judged():
    (f,) = topics(_fit_study([2, 2, 2, 3, "marked", "marked", 2]), "fit time")
    assert f.level == "warning"
    assert f.text.startswith("fit_time_s was measured by 2 definitions in this study")
    assert "4 (trials 0-2, 6) as CPU seconds of every fit" in f.text
    assert "3 (trials 3-5) as CPU seconds of the model's final fit plus its fold's" in f.text
    assert "run the spec again as a new study" in f.text
    # a constraint on fit time compares trials on it too
    constrained = _fit_study([1, "marked"], objective="accuracy", constraints=["fit_time_s <= 2"])
    (f,) = topics(constrained, "fit time")
    assert "1 (trials 0) as wall seconds of every fit" in f.text


def test_one_fit_time_definition_or_fit_time_unused_is_no_finding():
    assert topics(_fit_study([3, "marked", 3]), "fit time") == []  # the same definition
    assert topics(_fit_study([2, "marked"], objective="accuracy"), "fit time") == []
    assert topics(_fit_study([2, 2]), "fit time") == []


def test_results_json_findings_judge_the_front_shown_as_the_report_does():
    """The run's thyroid study: three trials on the plain front, two on the front shown (a
    third faster than one of them only within its measured latency interval). The report said
    "1 of the 2 trials on the feasible Pareto front came from warm start", results.json (and
    `show --json`) "1 of the 3": the findings of the results document ignored the front."""
    from tuneops.report.view import view_of
    from tuneops.results import study_results

    points = [(0.99, 0.95), (0.976, 0.50), (0.994, 0.54), (0.9807, 0.387), (0.9911, 0.390)]
    points += [(0.95, 0.9)] * 8
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr(
        _study.OBJECTIVES,
        [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "latency_p95_ms", "direction": "minimize"},
        ],
    )
    intervals = {3: [0.37, 0.41], 4: [0.38, 0.40]}
    for i, p in enumerate(points):
        attrs: dict[str, Any] = {"warm_start": "kb:portfolio#1"} if i < 3 else {}
        if i in intervals:
            attrs[_study.COST] = {"intervals": {"latency_p95_ms": intervals[i]}}
        add(study, i, {"lr": 0.01, "depth": 1 + i % 10}, list(p), attrs=attrs)
    selection = view_of(study).selection
    assert selection is not None and sorted(selection["pareto_front"]) == [2, 4]
    report = {f.topic: f.text for f in build_report(study).findings}
    assert report["warm start"].startswith("3 warm-start trials; 1 of the 2 trials")
    results = study_results(study, choice=selection)
    assert {f["topic"]: f["text"] for f in results["findings"]} == report


def test_a_perfect_cross_validated_score_is_called_a_likely_leak():
    """clean1's molecule name encodes its label: f1 1.0 in every fold (0.86-0.91 without it),
    and no finding said so."""
    leaky = two_objective([(0.91, 3.0), (1.0, 4.0), (0.95, 2.0), (1.0, 5.0)])
    (found,) = topics(leaky, "perfect score")
    assert found.level == "warning"
    assert found.text.startswith(
        "2 configuration(s) scored a perfect accuracy of 1 in cross-validation"
    )
    assert "(trial 1 and others)" in found.text and "a leak" in found.text
    # a repeat of trial 1's configuration (its score taken, nothing fitted) is no other model
    add(leaky, 4, leaky.trials[1].params, [1.0, 4.0], attrs={_study.REPEAT_OF: 1})
    (found,) = topics(leaky, "perfect score")
    assert found.text.startswith("2 configuration(s) scored a perfect accuracy"), found.text
    alone = two_objective([(0.91, 3.0), (1.0, 4.0)])
    add(alone, 2, alone.trials[1].params, [1.0, 4.0], attrs={_study.REPEAT_OF: 1})
    (found,) = topics(alone, "perfect score")
    assert found.text.startswith("1 configuration(s) scored a perfect accuracy of 1 in cross-"
                                 "validation (trial 1). On real data"), found.text
    assert topics(two_objective([(0.91, 3.0), (0.999, 4.0)]), "perfect score") == []
    # an error metric's perfect value is 0; an objective that is no metric is left alone
    regression = series([0.5, 0.0, 0.2], direction="minimize", spec={"objectives": ["rmse"]})
    regression.set_user_attr(_study.OBJECTIVES, [{"metric": "rmse", "direction": "minimize"}])
    assert len(topics(regression, "perfect score")) == 1
    assert topics(series([1.0, 0.5]), "perfect score") == []


def test_a_repeat_is_not_counted_as_another_latency_measurement():
    """A 2-worker knn study with 18 repeats (tuneops.repeats: the earlier trial's record taken,
    nothing measured) said "29 of 29 latency measurements ran while the serving thread waited
    for a core" where 11 measurements were made."""
    shares = [0.5, 0.95, 0.5, 0.5, 0.5]
    busy = series(
        [0.9, 0.91, 0.9, 0.9, 0.9],
        params=lambda i: {"lr": 0.01 if i != 1 else 0.02, "depth": 5},
        attrs=lambda i: _serving(cpu_share=shares[i], load=3.0, cores=2)
        | ({_study.REPEAT_OF: 0} if i >= 2 else {}),
    )
    (f,) = topics(busy, "latency")
    assert "1 of 2 latency measurements ran while the serving thread waited" in f.text, f.text


def test_a_repeated_configuration_is_one_of_the_best_trials_at_a_bound():
    """The best configuration at depth's upper bound and its two repeats (tuneops.repeats)
    read as "3 of the 3 best trials sit at the upper bound": one configuration, counted three
    times; the next best distinct ones are mid-range."""
    depths = [10, 10, 10] + [5, 6, 4, 5, 6, 4, 5, 6, 4]
    values = [0.95, 0.95, 0.95] + [0.9 - 0.01 * i for i in range(9)]
    study = series(
        values,
        params=lambda i: {"lr": 0.01 * (1 + i % 3) if i >= 3 else 0.05, "depth": depths[i]},
        attrs=lambda i: {_study.REPEAT_OF: 0} if i in (1, 2) else {},
    )
    assert topics(study, "boundary") == []
    # the same values fitted three times as distinct configurations at the bound do count
    distinct = series(
        values,
        params=lambda i: {"lr": 0.01 * (1 + i % 3) if i >= 3 else 0.05 + 0.1 * i, "depth": depths[i]},
    )
    assert "3 of the 3 best trials sit at the upper bound 10" in topics(distinct, "boundary")[0].text
