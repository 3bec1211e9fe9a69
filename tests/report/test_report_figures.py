"""Each panel's data, checked on studies with every trial state (not pixels)."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from report_studies import add, build

from tuneops.report import build_report
from tuneops.report import figures as F
from tuneops.report.view import view_of
from tuneops.selection import pareto_mask


def panels(study, selected=None):
    view = view_of(study)
    if selected is not None:
        view = dataclasses.replace(view, selected=selected)
    return {p.key: p for p in F.compute_panels(view)}, view


def test_history_best_so_far_counts_only_feasible_trials():
    study = optuna.create_study(direction="maximize")
    for i, (v, c) in enumerate([(0.5, 0), (0.9, 1.0), (0.7, -1), (0.6, 0), (0.8, 0)]):
        add(study, i, {"lr": 0.1}, [v], constraint=c, attrs={"warm_start": True} if i == 0 else {})
    hist = panels(study)[0]["history"].data
    s = hist.series[0]
    assert s.values == (0.5, 0.9, 0.7, 0.6, 0.8)
    assert s.best == (0.5, 0.5, 0.7, 0.7, 0.8)  # 0.9 violates its constraint
    assert s.feasible == (True, False, True, True, True)
    assert s.warm_start == (True, False, False, False, False)
    assert hist.hypervolume is None


def test_history_of_multi_objective_has_the_exact_normalized_hypervolume():
    from tuneops import pareto

    found, view = panels(build(60))
    hist = found["history"].data
    assert [s.name for s in hist.series] == ["accuracy", "latency_p95_ms"]
    numbers, hv = hist.hypervolume
    assert len(numbers) == len(hv) >= 3
    assert all(b >= a - 1e-12 for a, b in zip(hv, hv[1:], strict=False))
    assert 0 < hv[-1] <= 1.0  # normalized by the reference box: never above 1
    ok = [t for t in view.complete if view.is_feasible(t)]
    assert numbers[-1] == ok[-1].number  # the line reaches the last feasible trial
    loss, ref = F.normalized_losses(view, ok)
    for number, value in zip(numbers, hv, strict=True):  # brute force at every point drawn
        upto = [i for i, t in enumerate(ok) if t.number <= number]
        assert value == pytest.approx(pareto.hypervolume(loss[upto], ref) / np.prod(ref))


def test_importances_use_ped_anova_on_every_parameter():
    single = panels(build(40, multi=False))[0]["importances"].data
    assert single.evaluator == "PedAnovaImportanceEvaluator"
    assert set(single.values) == {"lr", "depth", "criterion"}
    assert single.target == "accuracy"
    # accuracy depends on lr most in build(): the importance ranks it first
    assert next(iter(single.values)) == "lr"
    multi = panels(build(40))[0]["importances"].data
    assert multi.target == "reaching the Pareto front"


def test_pareto_front_marks_selected_infeasible_and_front():
    study = build(40)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    feasible = [t for t in complete if all(v <= 0 for v in t.constraints.values())]
    mask = pareto_mask(np.array([t.values for t in feasible]), ["maximize", "minimize"])
    front = {t.number for t, m in zip(feasible, mask, strict=False) if m}
    chosen = min(front)
    data = panels(study, selected=chosen)[0]["pareto_front"].data
    kinds = dict(zip(data.numbers, data.kinds, strict=False))
    assert kinds[chosen] == "selected"
    assert {n for n, k in kinds.items() if k == "pareto"} == front - {chosen}
    infeasible = {t.number for t in complete if t not in feasible}
    assert infeasible and {n for n, k in kinds.items() if k == "infeasible"} == infeasible
    assert set(data.numbers) == {t.number for t in complete}  # no pruned/failed/running points
    assert data.objectives == ("accuracy", "latency_p95_ms")


def test_pareto_front_in_3d_and_missing_for_one_objective():
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    for i in range(6):
        add(study, i, {"lr": 10 ** -(i % 4)}, [i, i * 2.0, 6 - i])
    data = panels(study)[0]["pareto_front"].data
    assert len(data.objectives) == 3 and all(len(v) == 3 for v in data.values)
    missing = panels(build(20, multi=False))[0]["pareto_front"]
    assert missing.data is None and "single-objective" in missing.missing


def test_parallel_coordinates_categorical_and_inactive_params():
    study = optuna.create_study()
    add(study, 0, {"lr": 0.1, "criterion": "gini"}, [1.0])
    add(study, 1, {"lr": 0.01, "criterion": "entropy", "depth": 3}, [2.0])
    add(study, 2, {"lr": 0.001, "criterion": "gini", "depth": 5}, [3.0])
    data = panels(study)[0]["parallel_coordinates"].data
    axes = {a.name: a for a in data.axes}
    assert axes["criterion"].labels == ("gini", "entropy")
    assert axes["criterion"].values == (0.0, 1.0, 0.0)
    assert axes["depth"].values == (None, 3.0, 5.0)  # conditional: inactive in trial 0
    assert axes["lr"].log and axes["lr"].low == 1e-4
    assert axes["value"].values == (1.0, 2.0, 3.0)


def test_a_parameter_set_only_by_pruned_trials_gets_no_axis_and_every_renderer_draws(tmp_path):
    # two families, one of them tried only in a pruned trial: its parameters have no values to draw
    from tuneops.report import write_report

    study = optuna.create_study(direction="maximize")
    add(study, 0, {"lr": 0.1, "criterion": "gini"}, [0.8])
    add(study, 1, {"depth": 3}, state=TrialState.PRUNED)
    add(study, 2, {"lr": 0.01, "criterion": "entropy"}, [0.9])
    found, _ = panels(study)
    assert {a.name for a in found["parallel_coordinates"].data.axes} == {"lr", "criterion", "value"}
    assert "depth" not in {a.name for a in found["slices"].data.params}
    report = build_report(study)
    (html,) = write_report(report, tmp_path / "r.html")
    assert html.stat().st_size > 0
    assert write_report(report, tmp_path / "figs", fmt="png")


def test_slices_and_contour_follow_importance():
    ps, _ = panels(build(40, multi=False))
    order = list(ps["importances"].data.values)
    assert [a.name for a in ps["slices"].data.params] == order
    contour = ps["contour"].data
    assert (contour.x.name, contour.y.name) == tuple(order[:2])
    assert len(contour.grid_z) == len(contour.grid_y) == 40
    assert all(len(row) == len(contour.grid_x) for row in contour.grid_z)
    inside = [v for row in contour.grid_z for v in row if v is not None]
    assert inside and min(contour.z) - 1e-9 <= min(inside) <= max(inside) <= max(contour.z) + 1e-9


def test_intermediate_values_from_optuna_and_from_user_attrs():
    single = panels(build(20, multi=False))[0]["intermediate_values"].data
    states = {c.state for c in single.curves}
    assert {"COMPLETE", "PRUNED"} <= states
    pruned = next(c for c in single.curves if c.state == "PRUNED")
    assert pruned.steps == (0, 1)
    multi = panels(build(20))[0]["intermediate_values"].data  # tuneops' multi-objective record
    complete = [c for c in multi.curves if c.state == "COMPLETE"]
    assert complete and all(c.steps == (0, 1, 2, 3) for c in complete)
    trial = next(t for t in build(20).trials if t.number == complete[0].number)
    assert complete[0].values[-1] == trial.user_attrs["tuneops:intermediate"]["3"][0]
    assert {"PRUNED"} <= {c.state for c in multi.curves}


def test_workers_count_trials_per_process():
    data = panels(build(20))[0]["workers"].data
    rows = {r.worker: r for r in data.rows}
    assert set(rows) == {"w0", "w1"}
    assert sum(sum(r.counts.values()) for r in rows.values()) == 21  # 20 finished + 1 running
    assert rows["w0"].counts.get("RUNNING") == 1
    assert rows["w0"].busy_s > 0


def test_workers_of_a_study_run_again_with_other_constraints_credit_the_best_meeting_them():
    """The workers panel credited the best to a trial whose record of an old constraint said it
    met it (the report judged the trial again everywhere else)."""
    from tuneops import _study

    study = optuna.create_study(direction="maximize")
    for worker, x in [("a", 0.9), ("b", 0.4)]:
        study.add_trial(optuna.trial.create_trial(
            value=x, constraints={"value <= 2": x - 2}, user_attrs={"worker": {"id": worker}}))
    study.set_user_attr(_study.CONSTRAINTS, ["value <= 0.5"])
    rows = {r.worker: r.n_best for r in F.workers(view_of(study), {}).rows}
    assert rows == {"a": 0, "b": 1}


def test_worker_label_falls_back_to_host_and_pid():
    from optuna.trial import create_trial

    from tuneops.report.view import worker_label

    assert (
        worker_label(create_trial(value=1.0, user_attrs={"worker": {"host": "h", "pid": 7}}))
        == "h:7"
    )
    assert worker_label(create_trial(value=1.0)) is None


def test_panels_that_a_study_cannot_fill_say_why():
    study = optuna.create_study(direction="minimize")
    add(study, 0, {"lr": 0.1}, [1.0])
    report = build_report(study)
    reasons = {p.key: p.missing for p in report.panels}
    assert reasons["history"] is None  # one point is still a history
    assert "at least 2 completed trials" in reasons["importances"]
    assert "at least 3 completed trials" in reasons["contour"]
    assert "worker" in reasons["workers"]
    assert "intermediate" in reasons["intermediate_values"]
    assert report.notes and "1 completed trial" in report.notes[0]


def test_empty_study_and_only_failed_trials_do_not_crash():
    study = optuna.create_study()
    assert all(p.data is None for p in build_report(study).panels)
    add(study, 0, {"lr": 0.1}, state=TrialState.FAIL, attrs={"fail_reason": "MemoryError: big"})
    report = build_report(study)
    assert any("MemoryError: big" in f.text for f in report.findings)
    assert report.selected is None


def test_an_importance_evaluator_failure_is_a_missing_panel_not_a_crash(monkeypatch):
    def broken(*args, **kwargs):
        raise FloatingPointError("singular matrix")

    from tuneops import _optuna

    monkeypatch.setattr(_optuna, "param_importances", broken)
    panel = panels(build(12, states=False))[0]["importances"]
    assert panel.data is None
    assert panel.missing == (
        "Optuna's PedAnovaImportanceEvaluator failed on this study: "
        "FloatingPointError: singular matrix"
    )


def test_contour_takes_the_top_parameters_that_trials_set_together():
    # conditional space: lr only with gini, depth only with entropy, width always
    study = optuna.create_study()
    for i in range(16):
        gini = i % 2 == 0
        params = {"criterion": "gini" if gini else "entropy", "width": (i * 7 % 16) / 16}
        params.update({"lr": 10 ** -(i % 4 + 1)} if gini else {"depth": 1 + i % 9})
        add(study, i, params, [float(i % 5) + params["width"]])
    ranked = F.Importances(
        "value", "given", {"lr": 0.5, "depth": 0.3, "criterion": 0.1, "width": 0.1}
    )
    contour = F.contour(view_of(study), {"importances": ranked})
    # lr and depth are never set together; criterion is constant where lr is set
    assert {contour.x.name, contour.y.name} == {"lr", "width"}
    assert None not in contour.x.values and len(contour.x.values) == 8


def _all_pruned_spec_run(n: int = 4, **spec) -> optuna.Study:
    """A one-objective spec run whose every trial was pruned at its first step."""
    from tuneops import _study

    study = optuna.create_study(direction="maximize")
    study.set_user_attr(_study.SPEC, {"study": "s", **spec})
    cut = {"steps": [1], "n_steps": 4, "max_step": 4, "fit_s": 1.0, "pruned": True}
    for i in range(n):
        add(study, i, {"lr": 0.1}, state=TrialState.PRUNED, attrs={_study.FIDELITY: cut},
            intermediate={1: 0.5})
    return study


def test_the_anytime_panel_says_no_feasible_trial_completed_when_none_did():
    """A spec run read "no trial recorded the compute it spent (trials of a spec ... do)"."""
    anytime = panels(_all_pruned_spec_run())[0]["anytime"]
    assert anytime.data is None
    assert anytime.missing == "no feasible trial completed (4 pruned)."
    plain = optuna.create_study()
    add(plain, 0, {"lr": 0.1}, [1.0])  # a plain Optuna study: no compute record
    assert "no trial recorded the compute it spent" in panels(plain)[0]["anytime"].missing


@pytest.mark.parametrize("pruner", ["none", {"name": "none"}])
def test_the_learning_curves_panel_says_pruning_was_off(pruner):
    """A spec run with pruner: none read "the objective did not report learning-curve steps,
    so nothing could be pruned": the cause is the pruner, not the objective."""
    from tuneops import _study

    study = optuna.create_study()
    study.set_user_attr(_study.SPEC, {"study": "s", "search": {"pruner": pruner}})
    study.set_user_attr(_study.PRUNER, "NopPruner()")
    add(study, 0, {"lr": 0.1}, [1.0])
    missing = panels(study)[0]["intermediate_values"].missing
    assert missing.startswith("pruning was off (the spec's search.pruner is none)")
    assert "did not report" not in missing
    plain = optuna.create_study()  # a plain study: no pruner known, the objective reported none
    add(plain, 0, {"lr": 0.1}, [1.0])
    assert "did not report learning-curve steps" in panels(plain)[0]["intermediate_values"].missing


def test_the_learning_curves_panel_says_auto_turned_pruning_off_for_a_small_study():
    """A spec run of 8 trials with search.pruner auto (off below 10 trials) read "the objective
    did not report learning-curve steps, so nothing could be pruned"."""
    from tuneops import _study

    study = optuna.create_study()
    study.set_user_attr(_study.SPEC, {"study": "s", "search": {"pruner": "auto"}})
    study.set_user_attr(_study.PRUNER, "NopPruner()")
    reason = "search.pruner auto prunes studies of 10 trials or more; this one asked for 8"
    study.set_user_attr(_study.PRUNER_OFF, reason)
    add(study, 0, {"lr": 0.1}, [1.0])
    missing = panels(study)[0]["intermediate_values"].missing
    assert missing.startswith(f"pruning was off ({reason}): trials were trained in one go"), missing
    assert "did not report" not in missing and "Run more trials" in missing


def test_trials_tied_with_the_noise_aware_front_are_not_drawn_as_dominated():
    """The selection's front resolves ties within measured noise: trial 1 is faster than trial 0
    by less than the latency's interval, so only trial 0 is on it; nothing beats trial 1 on
    both objectives, and it was drawn as "dominated (feasible)"."""
    from tuneops.report.plotly_figures import figure_json

    study = optuna.create_study(directions=["maximize", "minimize"])
    for i, point in enumerate([(0.90, 10.0), (0.89, 9.9), (0.80, 20.0)]):
        add(study, i, {"lr": 0.1 * (i + 1)}, list(point))
    view = view_of(study, selection={"selected_trial": 0, "pareto_front": [0]})
    (panel,) = F.compute_panels(view, ["pareto_front"])
    assert dict(zip(panel.data.numbers, panel.data.kinds, strict=True)) == {
        0: "selected",
        1: "tied",
        2: "dominated",
    }
    names = [trace["name"] for trace in figure_json(panel)[0][1]["data"]]
    assert "tied with the front within measurement noise" in names


def test_slice_plots_keep_every_trial_visible_and_mark_the_selected_one():
    """The reversed Blues scale drew the earliest trials (often the best) near-white, and the
    selected trial was not told apart."""
    from tuneops.report.plotly_figures import figure_json

    study = build(20, multi=False)
    found, view = panels(study, selected=study.best_trial.number)
    slices = found["slices"]
    assert slices.data.selected == view.selected
    traces = figure_json(slices)[0][1]["data"]
    marks = ("selected trial", "infeasible (violates a constraint)")  # drawn over the points
    points = [t for t in traces if t.get("name") not in marks]
    assert {t["marker"]["colorscale"] for t in points} == {"Viridis"}
    assert not any(t["marker"].get("reversescale") for t in points)
    chosen = [t for t in traces if t.get("name") == "selected trial"]
    assert len(chosen) == len(points)  # one mark per subplot, one legend entry
    assert [t["showlegend"] for t in chosen].count(True) == 1
    assert all(t["text"] == [f"trial {view.selected} (selected)"] for t in chosen)


def test_legends_that_explain_a_figure_are_shown_even_with_one_trace():
    """plotly hides the legend of a figure with one legend item: the anytime panel's line
    styles, the contour's black dots and an all-infeasible front's grey crosses were never
    explained."""
    from tuneops.report.plotly_figures import figure_json

    def layout(key, **data):
        return figure_json(F.Panel(key, key, data["data"]))[0][1]["layout"]

    anytime = F.Anytime("accuracy", "fit_cpu_s", ((1.0, 0.5), (3.0, 0.7)), 4.0, 10.0, 3.0)
    shown = layout("anytime", data=anytime)
    assert shown["showlegend"] is True
    assert shown["legend"]["title"]["text"] == "dotted: best reached; dashed: the compute budget"
    no_budget = dataclasses.replace(anytime, budget=None)
    assert layout("anytime", data=no_budget)["legend"]["title"]["text"] == "dotted: best reached"
    contour = panels(build(30, multi=False))[0]["contour"].data
    assert layout("contour", data=contour)["showlegend"] is True
    three = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    for i in range(4):  # every trial violates its constraint: one kind of point only
        add(three, i, {"lr": 0.1 * (i + 1)}, [float(i), 1.0, 2.0], constraint=1.0)
    view = dataclasses.replace(view_of(three), selected=None)  # no trial meets the constraints
    (front_panel,) = F.compute_panels(view, ["pareto_front"])
    front = front_panel.data
    assert set(front.kinds) == {"infeasible"}
    assert layout("pareto_front", data=front)["showlegend"] is True


def test_degenerate_figures_are_not_drawn_as_if_they_meant_something():
    """One trial drew a hypervolume of 1.0 ("share of box": the box is that trial), ticks at
    -0.5 and 0.5 "trial", and a latency axis from -0.5 ms."""
    from tuneops import _study
    from tuneops.report.plotly_figures import figure_json

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr(
        _study.OBJECTIVES,
        [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "latency_p95_ms", "direction": "minimize"},
        ],
    )
    add(study, 0, {"lr": 0.1}, [0.9, 0.02])
    found, _ = panels(study)
    history = found["history"].data
    assert history.hypervolume is None
    assert history.notes and history.notes[0].startswith("Hypervolume not drawn")
    layout = figure_json(found["history"])[0][1]["layout"]
    assert layout["xaxis"]["tickformat"] == "d" and layout["xaxis"]["dtick"] == 1
    assert "rangemode" not in layout["yaxis"] and layout["yaxis2"]["rangemode"] == "nonnegative"
    front = found["pareto_front"].data
    assert front.ranges[1][0] >= 0  # latency: the 5 % padding stops at 0
    add(study, 1, {"lr": 0.2}, [0.8, 0.01])
    history = panels(study)[0]["history"].data
    assert history.hypervolume is not None
    assert "relative to this study" in history.notes[0]


def test_a_small_study_draws_every_feasible_trial_inside_the_pareto_axes():
    """The regression run's 8 feasible trials: the 98th percentile, interpolated between the
    largest model (4431 KiB, an ordinary dominated trial) and the next (2134 KiB), cut the
    axis at 4310 and drew that trial "beyond the axis range (drawn at the edge)". The central
    share of the trials is made of trials: with fewer than 50, none is cut; with many, the
    outer 2 % on each side still are."""
    from tuneops import _study

    points = [(2.686, 1313.4), (2.532, 4431.5), (3.209, 795.8), (3.061, 319.9)]
    points += [(2.428, 1384.8), (2.549, 102.2), (2.436, 280.3), (2.413, 2134.1)]
    study = optuna.create_study(directions=["minimize", "minimize"])
    study.set_user_attr(
        _study.OBJECTIVES,
        [
            {"metric": "rmse", "direction": "minimize"},
            {"metric": "model_size_kb", "direction": "minimize"},
        ],
    )
    for i, p in enumerate(points):
        add(study, i, {"lr": 0.1}, list(p))
    front = panels(study)[0]["pareto_front"].data
    assert not any(front.outside), list(zip(front.numbers, front.outside, strict=True))
    assert front.ranges[1][1] >= 4431.5
    # an outlier among 100 trials is still drawn at the edge, not squashing the rest
    big = optuna.create_study(directions=["minimize", "minimize"])
    big.set_user_attr(_study.OBJECTIVES, study.user_attrs[_study.OBJECTIVES])
    rng = np.random.default_rng(0)
    for i in range(99):
        add(big, i, {"lr": 0.1}, [float(2 + rng.random()), float(100 + 900 * rng.random())])
    add(big, 99, {"lr": 0.1}, [3.5, 1e6])
    front = panels(big)[0]["pareto_front"].data
    assert [n for n, out in zip(front.numbers, front.outside, strict=True) if out] == [99]


def test_a_study_run_again_with_other_constraints_is_judged_by_them():
    """cpu.yaml run with 'rmse <= 3.5', then again with 'rmse <= 2.43': the selection judged
    by the new constraint, but the report (and results.json's "feasible") read the trials'
    Optuna records of the old one and drew 2.436 and 2.549 as feasible."""
    from optuna.distributions import FloatDistribution

    from tuneops import _study
    from tuneops.results import study_results

    study = optuna.create_study(directions=["minimize", "minimize"])
    study.set_user_attr(
        _study.OBJECTIVES,
        [
            {"metric": "rmse", "direction": "minimize"},
            {"metric": "model_size_kb", "direction": "minimize"},
        ],
    )
    study.set_user_attr(_study.CONSTRAINTS, ["rmse <= 2.43"])
    for i, (rmse, size) in enumerate([(2.428, 1385.0), (2.549, 102.2), (2.436, 280.3)]):
        study.add_trial(
            optuna.trial.create_trial(
                params={"lr": 0.1},
                distributions={"lr": FloatDistribution(1e-4, 1.0, log=True)},
                values=[rmse, size],
                user_attrs={"metrics": {"rmse": rmse, "model_size_kb": size}},
                system_attrs={"constraints:rmse <= 3.5": rmse - 3.5},  # the first run's
            )
        )
    view = view_of(study)
    assert [view.is_feasible(t) for t in view.complete] == [True, False, False]
    front = panels(study)[0]["pareto_front"].data
    kinds = dict(zip(front.numbers, front.kinds, strict=True))
    assert kinds == {0: "selected", 1: "infeasible", 2: "infeasible"}, kinds
    records = study_results(study, choice=view.selection)["trials"]
    assert [r["feasible"] for r in records] == [True, False, False]
    # records of exactly the study's constraints are read as they are
    study.set_user_attr(_study.CONSTRAINTS, ["rmse <= 3.5"])
    assert [r["feasible"] for r in study_results(study)["trials"]] == [True, True, True]
