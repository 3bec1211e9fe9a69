"""Renderers and commands: one self-contained HTML file, PNGs per panel, `tuneops report`,
`tuneops run` writing report.html, on real tuneops runs with tiny budgets."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, tiny_spec
from report_studies import build

from tuneops.errors import UsageError
from tuneops.report import RENDERERS, build_report, get_renderer, write_report
from tuneops.report.figures import PANELS


def test_html_is_one_offline_file_with_every_panel_and_trial(tmp_path):
    study = build(40)
    report = build_report(study)
    (path,) = write_report(report, tmp_path / "r.html")
    text = path.read_text()
    assert path.stat().st_size < 10 * 2**20
    # nothing fetched at view time: no external scripts, styles or fonts
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+href=", text)
    assert "Plotly.newPlot" in text and len(text) > 3_000_000  # plotly.js is inlined
    for key in PANELS:
        assert f'data-panel="{key}"' in text
    # every drawn panel, and the trial table (a panel of its own)
    assert text.count('data-drawn="1"') == sum(p.data is not None for p in report.panels) + 1
    assert 'id="panel-pareto_front"' in text
    payload = text[text.index('id="trial-data">') + len('id="trial-data">') :]
    rows = json.loads(payload[: payload.index("</script>")])["rows"]
    assert len(rows) == len(study.trials)  # the page builds a row per trial from this JSON
    assert "abc123" in text and "sklearn:iris" in text  # data fingerprint and spec
    assert "Still improving" in text or "Converged" in text


def test_cdn_mode_links_plotly_instead_of_embedding_it(tmp_path):
    report = build_report(build(20))
    (small,) = write_report(report, tmp_path / "cdn.html", plotly="cdn")
    text = small.read_text()
    assert re.search(r'<script src="https://cdn\.plot\.ly/plotly-[0-9.]+\.min\.js"', text)
    assert small.stat().st_size < 1_000_000 and "Plotly.newPlot" in text
    with pytest.raises(
        UsageError, match=r"plotly \(--plotly\): expected one of embed, cdn, received 'web'"
    ):
        write_report(report, tmp_path / "x.html", plotly="web")
    with pytest.raises(UsageError, match=r"only the html format has plotly \(--plotly\)"):
        write_report(report, tmp_path / "x", fmt="png", plotly="cdn")
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "x").exists()


def test_cdn_mode_pins_the_bundled_plotly_js_by_its_sri_hash(tmp_path, monkeypatch):
    """cdn.plot.ly/plotly-V.min.js is plotly.js's dist/plotly.min.js of release V, the file
    plotly.py bundles for V (its commands.py update_bundle): the page names its sha384, so a
    browser refuses a CDN file that is not the one this plotly was released with."""
    import base64
    import hashlib
    import pkgutil

    import plotly.offline

    report = build_report(build(20))
    (small,) = write_report(report, tmp_path / "cdn.html", plotly="cdn")
    bundled = pkgutil.get_data("plotly", "package_data/plotly.min.js")
    assert bundled is not None
    digest = base64.b64encode(hashlib.sha384(bundled).digest()).decode()
    version = plotly.offline.get_plotlyjs_version()
    tag = re.search(r"<script src=\"https://cdn\.plot\.ly/[^>]*>", small.read_text())
    assert tag is not None
    assert f'src="https://cdn.plot.ly/plotly-{version}.min.js"' in tag.group()
    assert f'integrity="sha384-{digest}"' in tag.group() and 'crossorigin="anonymous"' in tag.group()
    # A plotly whose bundle is not the release its version names (a development build, named
    # "plotly/plotly.js_master_<date>_<rev>"; a bundle replaced by hand): no hash could be
    # right, so the CDN mode is refused before anything is written.
    for other in ("plotly/plotly.js_master_2026-01-01_0123abcd", "1.0.0"):
        monkeypatch.setattr(plotly.offline, "get_plotlyjs_version", lambda other=other: other)
        with pytest.raises(
            UsageError, match=r"plotly \(--plotly\): 'cdn': .*Use plotly 'embed' \(--plotly embed"
        ):
            write_report(report, tmp_path / "odd.html", plotly="cdn")
    assert not (tmp_path / "odd.html").exists()


def test_trial_table_has_one_family_column():
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import create_trial

    study = optuna.create_study()
    dists = {"family": CategoricalDistribution(["knn", "svm"]), "knn.k": FloatDistribution(1, 9)}
    for i in range(3):
        study.add_trial(
            create_trial(
                params={"family": "knn", "knn.k": 1.0 + i},
                distributions=dists,
                value=float(i),
                user_attrs={"family": "knn"},
            )
        )
    columns = build_report(study).table.columns
    assert columns.count("family") == 1 and "knn.k" in columns


def test_trial_table_says_which_trials_repeated_an_earlier_configuration():
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    study = optuna.create_study()
    dists = {"k": FloatDistribution(1, 9)}
    for i, attrs in enumerate([{}, {}, {"repeat_of": 0}]):
        study.add_trial(
            create_trial(params={"k": 1.0 + i % 2 * 3}, distributions=dists, value=1.0 + i % 2,
                         user_attrs=attrs)
        )
    table = build_report(study).table
    column = table.columns.index("repeat of")
    assert [row[column] for row in table.rows] == [None, None, 0]
    plain = optuna.create_study()
    plain.add_trial(create_trial(params={"k": 2.0}, distributions=dists, value=3.0))
    assert "repeat of" not in build_report(plain).table.columns  # only when there are repeats


def test_a_repeat_of_a_front_trial_is_not_drawn_as_a_second_front_point():
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    study = optuna.create_study(directions=["maximize", "minimize"])
    dists = {"k": FloatDistribution(1, 9)}
    for k, values, attrs in [
        (1.0, [0.9, 2.0], {}), (2.0, [0.8, 1.0], {}), (3.0, [0.7, 3.0], {}),
        (1.0, [0.9, 2.0], {"repeat_of": 0}),
    ]:
        study.add_trial(
            create_trial(params={"k": k}, distributions=dists, values=values, user_attrs=attrs)
        )
    front = build_report(study).panel("pareto_front").data
    kinds = dict(zip(front.numbers, front.kinds, strict=True))
    assert 3 not in kinds  # trial 0 stands for it
    assert kinds[0] in ("pareto", "selected") and kinds[1] in ("pareto", "selected")
    assert kinds[2] == "dominated"


def test_png_writes_a_figure_per_drawn_panel(tmp_path):
    report = build_report(build(30, multi=False))
    paths = write_report(report, tmp_path / "figs", fmt="png")
    drawn = [p.key for p in report.panels if p.data is not None]
    assert sorted(p.name for p in paths if p.suffix == ".png") == sorted(f"{k}.png" for k in drawn)
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    readme = (tmp_path / "figs" / "README.txt").read_text()
    assert "(not drawn) Pareto front: a single-objective study" in readme
    assert "Findings:" in readme


def test_unknown_format_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(
        UsageError,
        match=r"fmt \(--format\): unknown report format 'pdf'; expected one of html, png",
    ):
        get_renderer("pdf")
    assert set(RENDERERS) == {"html", "png"}


def _write_spec(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump(tiny_spec(**changes)))
    return path


def test_run_then_report_on_a_real_multi_objective_study(workdir, cli):
    spec = _write_spec(
        workdir / "mo.yaml",
        study="mo",
        n_trials=5,
        objectives=["accuracy", "latency_p95_ms"],
        constraints=["accuracy >= 0.5"],
    )
    code, out, err = cli("run", spec, "--no-progress")
    assert code == 0, err
    run_report = workdir / "tuneops-out" / "mo" / "report.html"
    assert run_report.exists() and "Report: " in out  # `tuneops run` writes it next to results.json
    results = json.loads((workdir / "tuneops-out" / "mo" / "results.json").read_text())
    assert {
        "level": "info",
        "topic": "convergence",
        "text": "5 finished trials are too few to tell whether the search converged: the "
        "judgement compares the last 10 trials with those before them (need at least 11).",
    } in results["findings"]  # the findings are also in results.json

    code, out, err = cli("report", "mo", "--out", workdir / "r.html")
    assert code == 0, err
    text = (workdir / "r.html").read_text()
    assert 'data-panel="pareto_front" data-drawn="1"' in text
    assert "latency_p95_ms" in text and "★" in text
    assert "Drawn: 0 of" not in text  # every panel draws all 5 trials: no sample note

    from tuneops.tuning import load_study

    report = build_report(load_study("mo"))
    # each trial's latency with its interval and the preprocessing share of a call
    columns = report.table.columns
    value, interval = columns.index("latency_p95_ms"), columns.index("latency_p95_ms 95% interval")
    share = columns.index("preprocess share")
    slowness = columns.index("host slowness (divided out)")
    complete = [r for r in report.table.rows if r[1].startswith("COMPLETE")]
    assert complete
    for row in complete:
        low, high = row[interval].split(" – ")
        # a timing stopped as dominated after 20 calls has no 95% upper bound of its p95
        assert float(low) <= float(f"{row[value]:.3g}") <= (
            math.inf if high == "unbounded" else float(high)
        )
        assert re.fullmatch(r"\d+%", row[share])
        assert re.fullmatch(r"\d+\.\d\dx", row[slowness]) and 0.2 < float(row[slowness][:-1]) < 5
    front = report.panel("pareto_front").data
    assert front.kinds.count("selected") == 1
    on_front = {n for n, k in zip(front.numbers, front.kinds, strict=True) if k in ("pareto", "selected")}
    assert on_front == set(results["selection"]["pareto_front"])  # the front show and results give
    assert front.numbers[front.kinds.index("selected")] == report.selected
    assert report.panel("workers").data.rows  # the core runner records the worker
    code, out, err = cli("report", "mo", "--format", "png", "--out", workdir / "png")
    assert code == 0, err
    assert (workdir / "png" / "pareto_front.png").exists()


def test_report_command_refuses_bad_input(workdir, cli):
    spec = _write_spec(workdir / "s.yaml", n_trials=1)
    stale = workdir / "tuneops-out" / "tiny" / "report.html"
    stale.parent.mkdir(parents=True)
    stale.write_text("an earlier run's report")
    code, out, err = cli("run", spec, "--no-progress", "--no-report")
    assert code == 0, err
    # an earlier report would describe the study before this run: removed, and said
    assert not stale.exists() and "Removed the earlier" in err + out
    code, out, err = cli("report", "tiny", "--format", "pdf", "--out", workdir / "x")
    assert code == 2 and "unknown report format 'pdf'" in err and not (workdir / "x").exists()
    code, out, err = cli("report", "nope")
    assert code == 2 and "no study 'nope'" in err and "tiny" in err
    (workdir / "blocker").write_text("a file where a directory would go")
    for target in ("blocker/r.html", "blocker/sub"):
        code, out, err = cli("report", "tiny", "--out", workdir / target)
        assert code == 2 and "'blocker' is a file" in err.replace(str(workdir) + "/", ""), err
    # one trial: a short report that says why panels are missing
    code, out, err = cli(
        "report", "tiny", "--storage", workdir / "tuneops.journal", "--out", workdir
    )
    assert code == 0, err
    text = (workdir / "report.html").read_text()  # --out DIR: DIR/report.html
    assert "1 completed trial(s)" in text and "Not shown: " in text


def test_report_command_plotly_option(workdir, cli):
    """--plotly cdn writes a small file that loads plotly.js from the CDN; embed (the default)
    puts plotly.js inside; a bad value or --plotly with png exits 2 and writes nothing."""
    spec = _write_spec(workdir / "s.yaml", n_trials=2)
    assert cli("run", spec, "--no-progress", "--no-report")[0] == 0
    code, out, err = cli("report", "tiny", "--plotly", "cdn", "--out", workdir / "cdn.html")
    assert code == 0, err
    text = (workdir / "cdn.html").read_text()
    assert re.search(r'<script src="https://cdn\.plot\.ly/plotly-[0-9.]+\.min\.js"', text)
    assert len(text) < 1_000_000
    code, out, err = cli("report", "tiny", "--plotly", "embed", "--out", workdir / "embed.html")
    assert code == 0, err
    text = (workdir / "embed.html").read_text()
    assert not re.search(r"<script src=\"https://cdn", text) and len(text) > 3_000_000
    code, out, err = cli("report", "tiny", "--plotly", "web", "--out", workdir / "x.html")
    assert code == 2 and "plotly (--plotly): expected one of embed, cdn, received 'web'" in err
    code, out, err = cli("report", "tiny", "-f", "png", "--plotly", "cdn", "--out", workdir / "x")
    assert code == 2 and "only the html format has plotly (--plotly)" in err
    assert not (workdir / "x.html").exists() and not (workdir / "x").exists()


def test_importing_the_report_package_loads_no_plotting_library():
    code = (
        "import sys, tuneops.report, tuneops.report.document; "
        "print([m for m in ('plotly', 'matplotlib') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]"


def test_without_the_report_extra_the_command_says_what_to_install(workdir, cli, monkeypatch):
    spec = _write_spec(workdir / "s.yaml", n_trials=2)
    monkeypatch.setitem(sys.modules, "plotly", None)  # as if plotly were not installed
    code, out, err = cli("run", spec, "--no-progress")
    assert code == 0  # the run itself succeeds
    assert "No report.html" in err and "pip install 'tuneops[report]'" in err
    assert not (workdir / "tuneops-out" / "tiny" / "report.html").exists()
    code, out, err = cli("report", "tiny")
    err = " ".join(err.split())
    assert code == 1 and "the HTML report needs the optional package 'plotly'" in err
    assert "pip install 'tuneops[report]'" in err  # not eaten as console markup


def test_learning_curves_of_a_real_multi_objective_pruned_run(workdir):
    from tuneops.tuning import run

    spec = tiny_spec(n_trials=8, pruner="pareto", objectives=["accuracy", "latency_p95_ms"])
    spec["model"] = {
        "family": "random_forest",
        "space": {"n_estimators": {"type": "int", "low": 8, "high": 16}},
    }
    result = run(spec)
    study = result.study
    report = build_report(study)
    curves = report.panel("intermediate_values").data.curves  # from the pruning feature's record
    assert [c.number for c in curves] == [t.number for t in study.trials]
    assert {c.state for c in curves} == {t.state.name for t in study.trials}
    assert all(c.steps[0] == 1 and len(c.steps) >= 1 for c in curves)
    n_pruned = sum(t.state.name == "PRUNED" for t in study.trials)
    pruning = [f.text for f in report.findings if f.topic == "pruning"]
    assert bool(pruning) == (n_pruned > 0)
    assert all(str(n_pruned) in text for text in pruning)
    # The saving is stated when the pruned trials saved fit time: a trial cut after its last
    # step (the measured latency decides the cut) saved none, and then time is not mentioned.
    saved = (result.results.get("pruning") or {}).get("fit_cpu_s_saved") or 0
    assert all(("of fitting" in text) == (saved > 0) for text in pruning)


def test_the_report_counts_trials_as_show_does():
    import optuna

    from tuneops import _study

    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=1.0, params={}, distributions={}))
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, user_attrs={_study.ABANDONED: "interrupted"}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    counts = build_report(study).counts
    assert (counts["complete"], counts["fail"], counts["abandoned"]) == (1, 1, 1)


def test_a_study_name_from_the_storage_does_not_choose_where_the_report_goes(workdir):
    """A study created by plain Optuna (or the dashboard) may be named '../../x': the default
    report path stays inside tuneops-out (found by a security audit)."""
    from tuneops.storage import get_storage

    storage = get_storage(str(workdir / "odd.journal"))
    build(6, name="../../escaped<b>", storage=storage)
    written = write_report(build_report(optuna_study(storage, "../../escaped<b>")))
    inside = (workdir / "tuneops-out").resolve()
    assert all(inside in Path(p).resolve().parents for p in written), written
    assert not (workdir.parent / "escaped<b>").exists()


def optuna_study(storage, name):
    import optuna

    return optuna.load_study(study_name=name, storage=storage)


def test_the_anytime_curve_is_drawn_from_the_runs_compute(workdir):
    """results.json's best-against-compute curve (issue 18) as a report panel: the same points,
    the best's arrival marked; one objective only."""
    import tuneops

    result = tuneops.run(tiny_spec(n_trials=6), progress=False)
    compute = result.results["pruning"]["compute"]
    report = build_report(result.study)
    panel = report.panel("anytime")
    assert panel.data is not None, panel.missing
    assert [list(p) for p in panel.data.points] == compute["anytime"]
    assert panel.data.unit == compute["unit"] == "fit_cpu_s"
    assert panel.data.to_best == compute["to_best"]
    (page,) = write_report(report, workdir / "r.html", plotly="cdn")
    text = page.read_text()
    assert 'data-panel="anytime" data-drawn="1"' in text and "fit CPU seconds spent" in text
    figures = write_report(report, workdir / "png", fmt="png")
    assert any(p.name.endswith("anytime.png") for p in map(Path, figures))
    multi = build_report(build(20))
    assert "one objective only" in (multi.panel("anytime").missing or "")


def test_tuneops_report_writes_beside_the_runs_results_in_its_output_dir(workdir, cli):
    """A run with output_dir kept results.json there, while `tuneops report STUDY` wrote to
    tuneops-out/STUDY (audit). A spec's output_dir without this study's results.json (the
    storage alone does not choose a directory) keeps the default."""
    import tuneops

    tuneops.run(tiny_spec(study="ov", n_trials=2), storage="t.journal", output_dir="ovout")
    (workdir / "ovout" / "report.html").unlink(missing_ok=True)
    code, _, err = cli("report", "ov", "--storage", "t.journal")
    assert code == 0, err
    assert (workdir / "ovout" / "report.html").is_file()
    assert not (workdir / "tuneops-out" / "ov").exists()
    # from another working directory: the relative output_dir names another place; the run
    # recorded where it wrote (audit)
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    (workdir / "ovout" / "report.html").unlink()
    os.chdir(elsewhere)
    try:
        code, _, err = cli("report", "ov", "--storage", str(workdir / "t.journal"))
    finally:
        os.chdir(workdir)
    assert code == 0, err
    assert (workdir / "ovout" / "report.html").is_file() and not (elsewhere / "tuneops-out").exists()
    (workdir / "ovout" / "results.json").unlink()
    code, _, err = cli("report", "ov", "--storage", "t.journal")
    assert code == 0, err
    assert (workdir / "tuneops-out" / "ov" / "report.html").is_file()


def _page(study) -> str:
    from tuneops.report.html import render_html

    return render_html(build_report(study), plotly="cdn")


def test_the_summary_says_why_no_trial_is_selected():
    """"no completed trial meets the constraints" was said of a study without constraints whose
    every trial was pruned or failed."""
    import optuna
    from optuna.trial import TrialState
    from report_studies import add

    from tuneops import _study

    study = optuna.create_study()
    for i in range(3):
        add(study, i, {"lr": 0.1}, state=TrialState.PRUNED if i else TrialState.FAIL)
    text = _page(study)
    assert "no trial completed: 2 pruned, 1 failed" in text
    assert "meets the constraints" not in text
    infeasible = optuna.create_study(direction="maximize")
    infeasible.set_user_attr(_study.OBJECTIVES, [{"metric": "accuracy", "direction": "maximize"}])
    infeasible.set_user_attr(_study.CONSTRAINTS, ["accuracy >= 0.9"])
    for i in range(2):
        add(infeasible, i, {"lr": 0.1}, [0.5], constraint=0.4)
    assert "none (no completed trial meets the constraints)" in _page(infeasible)


def test_pruned_trials_of_a_multi_objective_study_say_where_they_stopped():
    """Single-objective tables said "PRUNED at step N", multi-objective ones only "PRUNED": the
    step was read from Optuna's record alone, which trial.report cannot write there (#3450)."""
    from tuneops.results import trial_record

    study = build(20)  # trials 5 and 15 pruned after step 1, in tuneops' own record
    report = build_report(study)
    states = {row[0]: row[1] for row in report.table.rows}
    assert states[5] == states[15] == "PRUNED at step 1"
    stopped = trial_record(study.trials[5])["pruned_at"]
    assert stopped["step"] == 1 and len(stopped["value"]) == 2  # a value per objective
    single = build_report(build(20, multi=False)).table.rows  # Optuna's record, as before
    assert {row[1] for row in single if row[0] in (5, 15)} == {"PRUNED at step 1"}


def test_the_summary_gives_the_selected_trial_as_selection_saw_it():
    """One objective read "(policy: knee)" where the CLI says "the best feasible accuracy"; under
    the staged strategy the search value was shown though selection used the verified mean."""
    import optuna

    from tuneops import _study

    study = optuna.create_study(direction="maximize")
    study.set_user_attr(_study.OBJECTIVES, [{"metric": "accuracy", "direction": "maximize"}])
    for value in (0.9, 0.8, 0.7):
        study.add_trial(optuna.trial.create_trial(values=[value], params={}, distributions={}))
    plain = _page(study)
    assert "0 ★ accuracy=0.9 (the best feasible accuracy)" in plain and "policy:" not in plain
    candidates = [  # trial 0 verifies at 0.78, trial 1 at 0.85: trial 1 is selected
        {"number": n, "params": {}, "values": [study.trials[n].value], "mean": [m],
         "std": [0.01], "ci95": [[m - 0.02, m + 0.02]], "evaluations": [[m]] * 3}
        for n, m in {0: 0.78, 1: 0.85}.items()
    ]
    phase = {"phase": "explore", "from_trial": 0, "to_trial": 3, "sampler": "tpe", "pruning": False}
    study.set_user_attr(_study.STRATEGY, {"name": "staged", "phases": [phase], "verification": {
        "k": 2, "folds": 5, "repeats": 3, "candidates": candidates}})
    text = _page(study)
    assert (
        "1 ★ accuracy=0.85 verified (95% CI 0.83 – 0.87), 0.8 in the search (the best feasible "
        "accuracy, by its verified mean)"
    ) in text
    assert '<tr class="sel"><td>1 ★</td><td>0.8</td><td>0.85</td>' in text


def test_the_report_says_how_the_warm_start_trials_did():
    """results.json's warm_start section (sources, ranks, best warm against the best other)
    had no place in the report."""
    study = build(20, multi=False)
    for t in study.trials[:3]:  # the three warm-start trials, as a spec's params gives them
        assert t.user_attrs["warm_start"] is True
    report = build_report(study)
    assert report.warm_start is not None and len(report.warm_start["trials"]) == 3
    text = _page(study)
    section = text[text.index('data-panel="warm_start"') :]
    section = section[: section.index("</section>")]
    assert "<h2>Warm start</h2>" in section
    assert "warm start: 3 trials (3 given); best warm trial #" in section
    assert "vs " in section and "for the best other trial" in section
    assert section.count("<tr>") + section.count('<tr class="sel">') == 1 + 3  # head + trials
    assert 'data-panel="warm_start"' not in _page(_cold(6))  # no warm start: no section


def _cold(n: int):
    import optuna
    from report_studies import add

    study = optuna.create_study()
    for i in range(n):
        add(study, i, {"lr": 0.1 * (i + 1)}, [float(i)])
    return study


# -- png: the folder is replaced whole ----------------------------------------------------------
def _png_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_png_interrupted_leaves_the_earlier_figures_and_no_temporary_folder(tmp_path, monkeypatch):
    """Interrupted, `report --format png` left 4 of 8 PNGs and no README.txt (audit)."""
    from tuneops.report import png

    out = tmp_path / "figs"
    write_report(build_report(build(20, multi=False)), out, fmt="png")  # an earlier report
    report = build_report(build(30, multi=False))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    drawn = 0

    def interrupted(draw):
        def figure(data):
            nonlocal drawn
            drawn += 1
            if drawn == 3:  # Ctrl-C while the third figure is drawn
                raise KeyboardInterrupt
            return draw(data)

        return figure

    monkeypatch.setattr(png, "FIGURES", {k: interrupted(f) for k, f in png.FIGURES.items()})
    with pytest.raises(KeyboardInterrupt):
        write_report(report, out, fmt="png")
    assert drawn == 3
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _png_names(tmp_path) == ["figs"]  # no temporary folder beside it


def test_png_into_an_earlier_figures_folder_replaces_it_whole(tmp_path):
    out = tmp_path / "figs"
    write_report(build_report(build(20, multi=True)), out, fmt="png")
    assert "pareto_front.png" in _png_names(out)
    paths = write_report(build_report(build(20, multi=False)), out, fmt="png")
    # the one-objective report has no Pareto front: the earlier one is gone, not mixed in
    assert _png_names(out) == sorted(p.name for p in paths) and "pareto_front.png" not in _png_names(out)
    assert _png_names(tmp_path) == ["figs"]
    assert out.stat().st_mode & 0o777 == 0o777 & ~_umask()  # not mkdtemp's private mode


def _umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_png_refuses_a_folder_with_other_files_before_drawing(tmp_path):
    out = tmp_path / "docs"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    (out / "old.png").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"figures folder .*docs' holds files that are not report "
                                         r"figures \(notes.md\); .* give --out a new or empty"):
        write_report(build_report(build(10, multi=False)), out, fmt="png")
    assert _png_names(out) == ["notes.md", "old.png"] and _png_names(tmp_path) == ["docs"]


def _markup_study():
    """A study whose parameter name and category values are HTML and script markup (values a
    spec or plain Optuna code may hold, which the report shows in its table and figures)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    words = ["<!--<script>", "</script><b>x", "a&b", "plain"]
    dists = {"<!--<script>": CategoricalDistribution(words), "lr": FloatDistribution(0.01, 1.0)}
    study = optuna.create_study(study_name="markup<!--<script>",
                                directions=["maximize", "minimize"])
    for i in range(12):
        study.add_trial(optuna.trial.create_trial(
            values=[i / 12, (12 - i) / 12], distributions=dists,
            params={"<!--<script>": words[i % 4], "lr": 0.01 + i / 20},
        ))
    return study, words


def test_markup_in_the_data_stays_inside_its_script_element(tmp_path):
    """A category value '<!--<script>' made the browser read the trial table's JSON on past its
    </script>, into the page's own script: no table and no figure was drawn (found by a
    security review). Every JSON payload holds no markup character and reads back whole."""
    study, words = _markup_study()
    (path,) = write_report(build_report(study), tmp_path / "r.html")
    text = path.read_text()
    payloads = re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', text,
                          flags=re.S)
    assert len(payloads) == text.count('<script type="application/json"') > 1
    for fid, payload in payloads:
        assert not set("<>&") & set(payload), fid
        json.loads(payload)
    rows = json.loads(dict(payloads)["trial-data"])["rows"]
    assert {w for row in rows for w in row if w in words} == set(words)


def test_a_worker_attribute_of_plain_optuna_code_is_a_worker_name(tmp_path):
    """Optuna code of one's own may record user attribute 'worker' as a name: the report and
    the trial counts of `tuneops show` crashed on it ('str' object has no attribute 'get')."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from tuneops import _study

    study = optuna.create_study()
    x = {"x": FloatDistribution(0, 1)}
    for i in range(5):
        study.add_trial(create_trial(value=i / 5, params={"x": i / 5}, distributions=x,
                                     user_attrs={"worker": "host-a"}))
    study.add_trial(create_trial(state=TrialState.RUNNING, params={"x": 0.5}, distributions=x,
                                 user_attrs={"worker": "host-b"}))
    counts = _study.state_counts(study.trials)
    assert (counts["COMPLETE"], counts["RUNNING"], counts["STALE"]) == (5, 1, 0)
    report = build_report(study)
    workers = report.panel("workers").data
    assert [(r.worker, r.counts["COMPLETE"], r.counts["RUNNING"]) for r in workers.rows] == [
        ("host-a", 5, 0), ("host-b", 0, 1)]
    write_report(report, tmp_path / "r.html")


@pytest.mark.parametrize("value", [7, [0.5, "a"], None, "text"])
def test_a_metrics_attribute_of_plain_optuna_code_is_not_tuneops_metrics(tmp_path, value):
    """A 'metrics' user attribute that is not a mapping (Optuna code of one's own keeps
    what it likes there) crashed the report's selection with a TypeError."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    study = optuna.create_study(directions=["maximize", "minimize"])
    for i in range(5):
        study.add_trial(create_trial(values=[i / 5, 1 - i / 5], params={"x": i / 5},
                                     distributions={"x": FloatDistribution(0, 1)},
                                     user_attrs={"metrics": value}))
    report = build_report(study)
    assert report.selected is not None
    write_report(report, tmp_path / "r.html")
