"""The PNG renderer against the HTML report's fixes: each test draws a panel with matplotlib and
checks the figure's objects (axes, artists, texts), not pixels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import optuna
import pytest
from optuna.trial import TrialState
from report_studies import add, build

from tuneops import _study
from tuneops.report import build_report, png, write_report
from tuneops.report import figures as F
from tuneops.report.view import view_of


@pytest.fixture
def draw():
    """Draws panel data as the PNG renderer does; every figure is closed after."""
    made = []

    def draw(key, data):
        fig = png._figure(F.Panel(key, key, data))
        made.append(fig)
        return fig

    yield draw
    for fig in made:
        plt.close(fig)


def _ticks(axis) -> list[float]:
    lo, hi = sorted(axis.get_view_interval())
    return [t for t in axis.get_ticklocs() if lo - 1e-9 <= t <= hi + 1e-9]


def _series(name, numbers, values, best, *, direction="maximize"):
    n = len(numbers)
    return F.Series(
        name, direction, tuple(numbers), tuple(values), tuple(best), (False,) * n, (True,) * n
    )


def test_history_runs_to_the_last_trial_of_the_study(draw):
    """Trials 0 and 3 completed, 4-13 were pruned: the axis ended at trial 3, the pruned ten
    out of sight (the HTML report draws the best so far to the study's last trial)."""
    s = _series("accuracy", [0, 3], [0.94, 0.96], [0.94, 0.96])
    fig = draw("history", F.History((s,), None, last_trial=13, last_feasible=3, n_complete=2))
    ax = fig.axes[0]
    (best,) = [line for line in ax.get_lines() if line.get_label().startswith("best so far")]
    assert list(best.get_xdata())[-1] == 13 and list(best.get_ydata())[-1] == 0.96
    assert ax.get_xlim()[1] >= 13
    note = next(t.get_text() for t in ax.texts if "last feasible trial" in t.get_text())
    assert "later trials pruned, failed, infeasible or running" in note


def test_trial_step_and_count_axes_have_integer_ticks(draw):
    """matplotlib put ticks at 0.5 "trial" between trials 0 and 3 (plotly did, before the
    HTML report's fix), and would at half steps and half trials counted."""
    s = _series("accuracy", [0, 3], [0.94, 0.96], [0.94, 0.96])
    history = draw("history", F.History((s,), None, last_trial=3, last_feasible=3))
    curves = F.IntermediateValues(
        "accuracy", (F.Curve(0, "COMPLETE", (1, 2, 3), (0.5, 0.6, 0.7)),), 1
    )
    workers = F.Workers((F.WorkerRow("w1", {"COMPLETE": 2, "PRUNED": 1}, 3.0, 1),))
    slices = F.Slices((0, 1), (F.Axis("lr", (0.1, 0.2)),), {"accuracy": (0.5, 0.6)}, 2)
    axes = {
        "history (trial)": history.axes[0].xaxis,
        "learning curves (step)": draw("intermediate_values", curves).axes[0].xaxis,
        "workers (trials)": draw("workers", workers).axes[0].yaxis,
        "slices' colour bar (trial number)": draw("slices", slices).axes[-1].yaxis,
    }
    fractional = {what: _ticks(axis) for what, axis in axes.items()}
    assert not {w: t for w, t in fractional.items() if not all(float(x).is_integer() for x in t)}
    assert all(fractional.values())


def test_serving_cost_axes_never_run_negative(draw):
    """Latencies of 0.02 and 5 ms: matplotlib's 5 % margin drew the axis from -0.2 ms."""
    latency = _series("latency_p95_ms", [0, 1], [0.02, 5.0], [0.02, 0.02], direction="minimize")
    accuracy = _series("accuracy", [0, 1], [0.02, 5.0], [0.02, 5.0])  # not a cost: untouched
    history = draw("history", F.History((accuracy, latency), None, 1, 1, 2))
    assert history.axes[0].get_ylim()[0] < 0
    assert history.axes[1].get_ylim()[0] == 0
    slices = F.Slices((0, 1), (F.Axis("lr", (0.1, 0.2)),), {"latency_p95_ms": (0.02, 5.0)}, 2)
    assert draw("slices", slices).axes[0].get_ylim()[0] == 0


def test_no_axis_moves_its_values_into_an_offset(draw):
    """Model sizes 8.4609 to 8.4619 KB read "0.0000" to "0.0008" with "+8.461" at the top."""
    size = _series(
        "model_size_kb", [0, 1, 2], [8.4609, 8.4619, 8.4612], [8.4609] * 3, direction="minimize"
    )
    fig = draw("history", F.History((size,), None, 2, 2, 3))
    fig.canvas.draw()
    assert fig.axes[0].yaxis.get_offset_text().get_text() == ""
    assert any(t.get_text().startswith("8.46") for t in fig.axes[0].get_yticklabels())


def test_contour_shows_the_objective_and_says_what_it_draws(draw):
    """With a categorical axis (no surface) the trials were black dots: the objective appeared
    nowhere. Over a surface the dots were unexplained and the colour bar did not say the surface
    is interpolated (the HTML report's legend and colour bar do)."""
    grid = (0.0, 1.0)
    categorical = F.Contour(
        "accuracy",
        F.Axis("n", (1.0, 3.0, 7.0), log=True),
        F.Axis("p", (0.0, 1.0, 0.0), labels=("1", "2")),
        (0.93, 0.95, 0.96),
        grid,
        grid,
        ((None, None), (None, None)),
        3,
    )
    fig = draw("contour", categorical)
    (points,) = fig.axes[0].collections
    assert list(points.get_array()) == [0.93, 0.95, 0.96]
    assert fig.axes[-1].get_ylabel() == "accuracy"  # its colour bar
    surface = F.Contour(
        "accuracy",
        F.Axis("a", (0.0, 1.0, 0.0)),
        F.Axis("b", (0.0, 0.0, 1.0)),
        (0.9, 0.8, 0.7),
        grid,
        grid,
        ((0.9, 0.8), (0.7, 0.8)),
        3,
    )
    fig = draw("contour", surface)
    assert fig.axes[-1].get_ylabel() == "accuracy (interpolated)"
    legend = fig.axes[0].get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["trials"]


@pytest.mark.parametrize(
    "values, labels",
    [
        ((1.0, 3.0, 8.0), ["1", "2", "5"]),  # n_neighbors: within a decade
        ((14.0, 20.0, 26.0), ["14", "20", "26"]),  # no 1, 2, 5 or 1..9 tick but one: the ends
        ((2.0, 32.0), ["2", "5", "10", "20"]),  # max_depth
        ((1e-4, 0.5), ["0.0001", "0.001", "0.01", "0.1"]),  # a learning rate over decades
    ],
)
def test_log_axes_label_plain_numbers_that_do_not_overlap(draw, values, labels):
    """A short log axis had every minor tick labelled ("2x10^0 3x10^0 4x10^0 6x10^0") into one
    unreadable row under the slice plots and the contour."""
    n = len(values)
    slices = F.Slices(
        tuple(range(n)), (F.Axis("p", values, log=True),), {"accuracy": (0.9,) * n}, n
    )
    fig = draw("slices", slices)
    fig.canvas.draw()
    axis = fig.axes[0].xaxis
    lo, hi = sorted(axis.get_view_interval())
    shown = [t.get_text() for t in axis.get_majorticklabels() if lo <= t.get_position()[0] <= hi]
    assert shown == labels
    assert not any(t.get_text() for t in axis.get_minorticklabels())


def _texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.texts).replace("\n", " ")


def test_the_notes_under_an_html_figure_are_under_the_png_and_in_the_readme(draw, tmp_path):
    """Why the hypervolume is not drawn, that it is relative to the study, that a large study's
    points are a sample, and that slices beyond the top parameters are left out: the HTML
    report says it under the figure; the PNG said nothing, and nor did README.txt."""
    s = _series("accuracy", [0, 1], [0.9, 0.8], [0.9, 0.9])
    note = "Hypervolume not drawn: it is measured between the study's own best and worst"
    fig = draw("history", F.History((s, s), None, 1, 1, 5, (note + " (1 feasible so far).",)))
    assert note in _texts(fig)
    assert "Drawn: 2 of 5 trials" in _texts(fig)  # n_complete 5, two drawn
    params = tuple(F.Axis(f"p{i}", (0.1, 0.2)) for i in range(10))
    fig = draw("slices", F.Slices((0, 1), params, {"accuracy": (0.9, 0.8)}, 2))
    assert "The 8 most important of 10 parameters are drawn" in _texts(fig)

    study = optuna.create_study(directions=["maximize", "minimize"])
    add(study, 0, {"lr": 0.1}, [0.9, 0.02])  # one feasible trial: no hypervolume
    write_report(build_report(study), tmp_path / "figs", fmt="png")
    readme = (tmp_path / "figs" / "README.txt").read_text()
    history = readme[readme.index("history.png") :].splitlines()
    assert history[1].strip().startswith("Hypervolume not drawn")


def _readme(study, tmp_path) -> str:
    write_report(build_report(study), tmp_path / "figs", fmt="png")
    return (tmp_path / "figs" / "README.txt").read_text()


def test_the_readme_names_the_selected_trial_as_the_html_summary_does(tmp_path):
    """The PNG report named no selected trial: not which, not why none, not that the staged
    strategy chose it at its verified mean (trial 1 verified above trial 0, which searched
    better), nor which verified candidate it was."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(_study.OBJECTIVES, [{"metric": "accuracy", "direction": "maximize"}])
    for value in (0.9, 0.8, 0.7):
        study.add_trial(optuna.trial.create_trial(values=[value], params={}, distributions={}))
    assert "Selected trial: 0 ★ accuracy=0.9 (the best feasible accuracy)\n" in _readme(
        study, tmp_path
    )
    candidates = [
        {"number": n, "params": {}, "values": [study.trials[n].value], "mean": [m],
         "std": [0.01], "ci95": [[m - 0.02, m + 0.02]], "evaluations": [[m]] * 3}
        for n, m in {0: 0.78, 1: 0.85}.items()
    ]  # fmt: skip
    phase = {"phase": "explore", "from_trial": 0, "to_trial": 3, "sampler": "tpe", "pruning": False}
    verification = {"k": 2, "folds": 5, "repeats": 3, "candidates": candidates}
    study.set_user_attr(
        _study.STRATEGY, {"name": "staged", "phases": [phase], "verification": verification}
    )
    readme = _readme(study, tmp_path)
    assert (
        "Selected trial: 1 ★ accuracy=0.85 verified (95% CI 0.83 – 0.87), 0.8 in the search "
        "(the best feasible accuracy, by its verified mean)\n"
    ) in readme
    assert "- trial 1 ★: 0.8 in the search, 0.85 verified (95% CI 0.83 – 0.87)\n" in readme
    assert "- trial 0: 0.9 in the search, 0.78 verified" in readme

    pruned = optuna.create_study()
    for i in range(3):
        add(pruned, i, {"lr": 0.1}, state=TrialState.PRUNED if i else TrialState.FAIL)
    readme = _readme(pruned, tmp_path)
    assert "Selected trial: none (no trial completed: 2 pruned, 1 failed)\n" in readme


def test_the_readme_says_how_the_warm_start_trials_did(tmp_path):
    """The history marks the warm-start trials; how they ranked, and where they came from, was
    in the HTML report only."""
    study = build(20, multi=False)
    report = build_report(study)
    readme = _readme(study, tmp_path)
    assert "\nWarm start: 3 trials (3 given); best warm trial #" in readme
    lines = [line for line in readme.splitlines() if line.startswith("- trial ")]
    assert len(lines) == len(report.warm_start["trials"]) == 3
    assert all(", rank " in line and " from " in line for line in lines)


def test_the_readme_lists_the_pruned_trials_with_the_step_they_stopped_at(tmp_path):
    """The HTML trial table says `PRUNED at step N`; the PNG folder has no table, and said
    nowhere where a pruned trial stopped (review)."""
    study = build(20, multi=False)  # trials 5 and 15 pruned after step 1
    last = len(study.trials)  # after build's running trial
    add(study, last, {"lr": 0.1}, state=TrialState.PRUNED, intermediate={0: 0.2, 1: 0.3, 2: 0.4})
    report = build_report(study)
    readme = _readme(study, tmp_path)
    assert "\nPruned trials (3), by the last step each reported" in readme
    assert f"\n- PRUNED at step 1: trials 5, 15\n- PRUNED at step 2: trial {last}\n" in readme
    # the words of the HTML trial table
    states = {row[0]: row[1] for row in report.table.rows}
    assert states[5] == states[15] == F.pruned_label(1) == "PRUNED at step 1"
    assert states[last] == "PRUNED at step 2"
    # no pruned trial: no such section
    assert "Pruned trials" not in _readme(build(8, multi=False, states=False), tmp_path)


def test_a_trial_stopped_by_the_time_limit_is_not_said_to_be_the_pruners(tmp_path):
    """A trial over search.trial_timeout_s is recorded as pruned: the trial table and the
    README said `PRUNED at step N` as of a trial the pruner stopped, which the findings and
    `bench pruners` count apart (review)."""
    study = build(20, multi=False)  # trials 5 and 15 pruned after step 1
    late = {_study.TIMED_OUT: {"limit_s": 1.0, "elapsed_s": 1.2, "at": "step 2"}}
    last = len(study.trials)
    add(study, last, {"lr": 0.1}, state=TrialState.PRUNED, attrs=late, intermediate={0: 0.2, 1: 0.3})
    add(study, last + 1, {"lr": 0.1}, state=TrialState.PRUNED, attrs=late)  # before any step
    states = {row[0]: row[1] for row in build_report(study).table.rows}
    assert states[5] == "PRUNED at step 1"
    assert states[last] == "PRUNED at step 1 (over the time limit)"
    assert F.pruned_label(1, True) == states[last]  # the words every renderer uses
    assert states[last + 1] == "PRUNED (over the time limit)"
    readme = _readme(study, tmp_path)
    assert (
        "\n- PRUNED at step 1: trials 5, 15\n"
        f"- PRUNED at step 1 (over the time limit): trial {last}\n"
    ) in readme


def test_pareto_legend_and_worker_labels_say_what_the_html_says(draw):
    """The PNG's grey crosses read "infeasible" where the HTML says they violate a constraint;
    the workers' "50s" did not say it was busy time."""
    front = F.ParetoFront(
        ("accuracy", "latency_p95_ms"),
        ("maximize", "minimize"),
        (0, 1),
        ((0.9, 1.0), (0.8, 2.0)),
        ("infeasible", "infeasible"),
        2,
        ((0.7, 1.0), (0.5, 2.5)),
        (False, False),
        2,
    )
    legend = draw("pareto_front", front).axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["infeasible (violates a constraint)"]
    # beyond the axes, the kind is still said (one grey "beyond the axis range" group hid
    # whether a trial was infeasible or a dominated feasible one), as in the HTML
    edge = F.ParetoFront(
        ("accuracy", "latency_p95_ms"),
        ("maximize", "minimize"),
        (0, 1, 2),
        ((0.9, 1.0), (0.2, 2.0), (0.85, 9.0)),
        ("selected", "infeasible", "dominated"),
        2,
        ((0.7, 1.0), (0.5, 2.5)),
        (False, True, True),
        3,
    )
    legend = draw("pareto_front", edge).axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "selected trial",
        "dominated (feasible), beyond the axis range (drawn at the edge)",
        "infeasible (violates a constraint), beyond the axis range (drawn at the edge)",
    ]
    workers = F.Workers((F.WorkerRow("w1", {"COMPLETE": 2}, 50.2, 1),))
    assert "50s busy, 1 best" in [t.get_text() for t in draw("workers", workers).axes[0].texts]


def test_slices_mark_the_trials_that_broke_a_constraint_in_both_renderers(draw):
    """Infeasible trials were drawn like any other in the slice plots (the Pareto figure
    crosses them out): a study whose every trial broke its constraint looked fine."""
    from tuneops.report.plotly_figures import figure_json

    study = optuna.create_study(direction="maximize")
    for i in range(6):  # trials 1, 3 and 5 break the constraint
        add(study, i, {"lr": 0.1 * (i + 1)}, [0.5 + 0.05 * i], constraint=float(i % 2))
    (panel,) = F.compute_panels(view_of(study), ["slices"])
    assert panel.data.infeasible == {1, 3, 5}
    crosses = [t for t in figure_json(panel)[0][1]["data"]
               if t.get("name") == "infeasible (violates a constraint)"]
    assert len(crosses) == 1 and crosses[0]["marker"]["symbol"] == "x"
    assert crosses[0]["text"] == [f"trial {n} (infeasible)" for n in (1, 3, 5)]
    fig = draw("slices", panel.data)
    marked = [c for c in fig.axes[0].collections if c.get_label().startswith("infeasible")]
    assert len(marked) == 1 and len(marked[0].get_offsets()) == 3
    assert "infeasible (violates a constraint)" in [t.get_text() for t in fig.legends[0].texts]


def test_dollar_signs_in_names_are_text_not_math(tmp_path):
    """'$' in a parameter, metric or category name started matplotlib's math mode: a name such
    as 'cost $\\frac{1}{$' failed every PNG of the report (found by a security review)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import create_trial

    odd = r"cost $\frac{1}{$ usd"
    words = [odd, "$x^$", "plain"]
    dists = {odd: FloatDistribution(0, 1), "cat": CategoricalDistribution(words)}
    study = optuna.create_study(study_name="s$", directions=["maximize", "minimize"])
    for i in range(12):
        study.add_trial(create_trial(values=[i / 12, 1 - i / 12], distributions=dists,
                                     params={odd: i / 12, "cat": words[i % 3]}))
    paths = write_report(build_report(study), tmp_path / "figs", fmt="png")
    assert {"slices.png", "pareto_front.png", "parallel_coordinates.png"} <= {
        p.name for p in paths}
