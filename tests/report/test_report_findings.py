"""Findings in words: each check on a study built to trigger it, and on one that must not."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState
from report_studies import add, build

from tuneops.report import build_report
from tuneops.report.findings import PRUNED_TOO_MANY


def topics(study, topic):
    return [f for f in build_report(study).findings if f.topic == topic]


def series(values, *, direction="maximize", params=None, attrs=None, states=None):
    study = optuna.create_study(direction=direction)
    for i, v in enumerate(values):
        state = (states or {}).get(i, TrialState.COMPLETE)
        add(study, i, (params or (lambda i: {"lr": 0.01, "depth": 5}))(i), [v], state=state,
            attrs=(attrs or (lambda i: {}))(i))
    return study


def test_still_improving_vs_converged():
    improving = series([i / 20 for i in range(20)])
    (f,) = topics(improving, "convergence")
    assert f.level == "warning" and f.text.startswith("Still improving") and "trial 19" in f.text
    converged = series([0.1, 0.5, 0.9] + [0.3] * 17)
    (f,) = topics(converged, "convergence")
    assert f.level == "ok" and f.text.startswith("Converged") and "trial 2" in f.text
    (f,) = topics(series([0.1, 0.2, 0.3]), "convergence")
    assert f.level == "info" and "too few" in f.text


def test_multi_objective_convergence_uses_hypervolume():
    (f,) = topics(build(40, states=False), "convergence")
    assert "hypervolume" in f.text


def test_best_trials_at_a_boundary_ask_to_widen_the_range():
    # depth is best at its upper bound 10, lr in the middle of its range
    study = series([d / 10 for d in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 2],
                   params=lambda i: {"lr": 0.01, "depth": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10][i % 10]})
    found = topics(study, "boundary")
    assert len(found) == 1
    assert found[0].text.startswith("depth: ") and "upper bound 10" in found[0].text and "widen" in found[0].text
    # the same values reversed: best at the lower bound
    low = series([1 - d / 10 for d in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 2],
                 params=lambda i: {"lr": 0.01, "depth": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10][i % 10]})
    assert "lower bound 1" in topics(low, "boundary")[0].text
    inside = series([-abs(d - 5) for d in range(1, 11)] * 2,
                    params=lambda i: {"lr": 0.01, "depth": list(range(1, 11))[i % 10]})
    assert topics(inside, "boundary") == []


def test_log_parameters_are_judged_on_the_log_scale():
    lrs = [10 ** (-4 + 4 * k / 9) for k in range(10)] * 2  # 1e-4 .. 1 evenly in log
    study = series([-abs(k - 4.5) for k in range(10)] * 2, params=lambda i: {"lr": lrs[i], "depth": 5})
    assert topics(study, "boundary") == []  # the best are mid-range in log space


def test_too_much_pruning():
    states = {i: TrialState.PRUNED for i in range(12) if i % 4 != 0}
    (f,) = topics(series([0.5] * 12, states=states), "pruning")
    assert 9 / 12 > PRUNED_TOO_MANY and f.level == "warning" and "Too much pruning: 9 of 12" in f.text
    (f,) = topics(series([0.5] * 12, states={3: TrialState.PRUNED}), "pruning")
    assert f.level == "info" and "1 trials" in f.text and "saved about" in f.text
    assert topics(series([0.5] * 12), "pruning") == []


def test_failed_trials_and_their_reasons():
    reasons = {1: "ValueError: bad\ntraceback...", 2: "ValueError: bad\nother", 4: "MemoryError: out"}
    study = series([0.5] * 6, states={i: TrialState.FAIL for i in reasons},
                   attrs=lambda i: {"fail_reason": reasons[i]} if i in reasons else {})
    (f,) = topics(study, "failures")
    assert f.level == "warning"
    assert "3 of 6 trials failed" in f.text and "2x ValueError: bad" in f.text and "1x MemoryError: out" in f.text
    assert "traceback" not in f.text


def test_high_noise_between_cv_folds():
    noisy = series([0.90 + 0.001 * (i % 5) for i in range(12)],
                   attrs=lambda i: {"metrics_std": {"value": 0.05}})
    (f,) = topics(noisy, "noise")
    assert f.level == "warning" and "value" in f.text and "cv_folds" in f.text
    quiet = series([0.5 + 0.03 * i for i in range(12)], attrs=lambda i: {"metrics_std": {"value": 0.001}})
    assert topics(quiet, "noise") == []


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


def test_pruning_savings_come_from_the_pruning_features_record():
    from tuneops.pruning import FIDELITY_ATTR

    full = {"steps": list(range(1, 11)), "n_steps": 10, "max_step": 10, "fit_s": 10.0, "pruned": False}
    cut = {"steps": [1, 2], "n_steps": 10, "max_step": 10, "fit_s": 2.0, "pruned": True}
    study = series([0.5] * 4, states={1: TrialState.PRUNED},
                   attrs=lambda i: {FIDELITY_ATTR: cut if i == 1 else full})
    (f,) = topics(study, "pruning")
    # the pruned trial ran 2 of 10 steps in 2 s: 8 s saved; 32 s were spent fitting, 40 s without pruning
    assert "Pruning saved 8.0 s of fitting (20% of what full training would have taken)." in f.text
