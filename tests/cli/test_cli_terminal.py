"""The terminal side of the CLI: --version, -h, --quiet/--verbose, widths, markup, sentences."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import typer
import yaml
from conftest import ROOT, tiny_spec

from tuneops.cli import app
from tuneops.families import FAMILIES
from tuneops.space import parse_param


def write_spec(path, **changes):
    path.write_text(json.dumps(tiny_spec(**changes)))  # JSON is valid YAML
    return path


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the app, as the words a user types."""
    paths: list[tuple[str, ...]] = []

    def walk(command: object, prefix: tuple[str, ...]) -> None:
        # typer ships its own click: a group is whatever lists sub-commands. Read through the
        # group's API, since the app builds its commands lazily (tuneops.cli's table)
        if not hasattr(command, "list_commands"):
            return
        ctx = command.make_context("tuneops", [], resilient_parsing=True)  # type: ignore[attr-defined]
        for name in command.list_commands(ctx):
            paths.append((*prefix, name))
            walk(command.get_command(ctx, name), (*prefix, name))  # type: ignore[attr-defined]

    walk(typer.main.get_command(app), ())
    return paths


def test_version(cli):
    from tuneops import __version__

    code, out, _ = cli("--version")
    assert code == 0 and out.startswith(f"tuneops {__version__} (optuna ")


def test_every_command_has_h_and_help(cli):
    paths = command_paths()
    assert {("run",), ("show",), ("kb", "list"), ("registry", "list"), ("monitor",)} <= set(paths)
    code, out, _ = cli("-h")
    assert code == 0 and "--quiet" in out and "--version" in out
    for path in paths:
        for flag in ("-h", "--help"):
            code, out, err = cli(*path, flag)
            assert code == 0, (path, err)
            assert out.startswith(f"Usage: tuneops {' '.join(path)}"), (path, out[:80])


def test_help_keeps_literal_brackets(cli):
    """`pip install 'tuneops[dashboard]'` is shown as written, not eaten as console markup."""
    code, out, _ = cli("dashboard", "--help")
    assert code == 0 and "pip install 'tuneops[dashboard]'" in " ".join(out.split())


def test_quiet_and_verbose_exclude_each_other(cli):
    code, _, err = cli("--quiet", "--verbose", "families")
    assert code == 2 and "--quiet and --verbose exclude each other" in err


def test_quiet_prints_only_results(workdir, cli):
    spec = write_spec(workdir / "s.yaml", n_trials=2, pruner="median")
    code, out, err = cli("--quiet", "run", spec)  # progress on by default: --quiet turns it off
    assert code == 0, err
    assert err == ""  # no progress, no warnings
    assert "Best trial of tiny" in out and "Selected trial" in out and "Model: " in out
    assert "Report: " not in out and "Pruning: " not in out
    code, loud, _ = cli("run", spec, "--no-progress")
    assert code == 0 and "Report: " in loud and "Pruning: " in loud


def _tuneops(workdir, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "tuneops", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)


def test_optuna_logs_only_with_verbose(workdir):
    """Optuna's INFO lines ("A new study created ...") are silenced unless --verbose."""
    spec = write_spec(workdir / "s.yaml", n_trials=1)
    quiet = _tuneops(workdir, "run", str(spec), "--no-progress", "--no-report")
    assert quiet.returncode == 0, quiet.stderr
    assert "[I " not in quiet.stderr and "A new study created" not in quiet.stderr
    loud = _tuneops(workdir, "--verbose", "run", str(spec), "--no-progress", "--no-report",
                    "--study", "other")
    assert loud.returncode == 0, loud.stderr
    assert "A new study created" in loud.stderr


def test_tables_fit_80_columns(workdir, cli, monkeypatch):
    """Names whole at 80 columns, parameters without the family prefix, one line per trial."""
    monkeypatch.setenv("COLUMNS", "80")
    spec = write_spec(workdir / "s.yaml", n_trials=6,
                      model={"family": ["knn", "hist_gradient_boosting"], "space": {
                          # small boosting models: the test is about the table, not the fit
                          "hist_gradient_boosting": {
                              "max_iter": {"type": "int", "low": 5, "high": 20},
                              "max_leaf_nodes": {"type": "int", "low": 4, "high": 16}}}},
                      objectives=["balanced_accuracy", "latency_p95_ms", "model_size_kb"])
    code, out, err = cli("run", spec, "--no-progress", "--no-report")
    assert code == 0, err
    code, out, err = cli("show", "tiny", "--trials")
    assert code == 0, err
    lines = out.splitlines()
    sentences = ("Selected", "Pruning")  # prose: the terminal wraps it
    too_long = [line for line in lines if len(line) > 80 and not line.startswith(sentences)]
    assert not too_long
    header = next(line for line in lines if line.startswith("trial") and "state" in line)
    for name in ("balanced_accuracy", "latency_p95_ms", "model_size_kb"):
        assert f" {name} " in f" {header} "
    assert "…" not in header and "…" not in "".join(lines[:3])
    families = re.findall(r"\b(knn|hist_gradient_boosting)\b", out)
    assert len(families) >= 6 + 2  # every trial's family, whole, and those of the front
    assert "hist_gradient_boosting." not in out and "knn." not in out  # no family prefix
    assert "family=" not in out  # the family is its own column, not a parameter
    # one line per trial: trial numbers 0..5 each start exactly one row of the trials table
    table = lines[lines.index(header):]
    for number in range(6):
        row = rf"\s*{number}\s+(complete|pruned|failed)"
        assert sum(bool(re.match(row, line)) for line in table) == 1
    # --wide shows every parameter in full
    code, wide, _ = cli("show", "tiny", "--trials", "--wide")
    assert code == 0 and "…" not in wide


def test_long_parameters_are_elided_on_one_line(cli, capsys, monkeypatch):
    from tuneops.cli import _common

    monkeypatch.setenv("COLUMNS", "80")
    _common.configure()
    params = {f"parameter_{i}": 0.123456 * i for i in range(12)}
    rows = [([str(i), "0.91"], _common.params_text(params)) for i in range(3)]
    columns = [_common.Column("trial", "right"), _common.Column("accuracy", "right")]
    _common.print_fitted("t", columns, rows, "params")
    out = capsys.readouterr().out.splitlines()
    body = out[3:]
    assert len(body) == 3 and all(len(line) <= 80 and line.rstrip().endswith("…") for line in body)


def test_show_completes_the_selected_sentence_for_tune_studies(workdir, cli):
    import tuneops

    def objective(trial):
        return (trial.suggest_float("x", -2, 2) - 1) ** 2

    tuneops.tune(objective, n_trials=3, storage="tuneops.journal", study="custom",
                 directions=["minimize"])
    code, out, err = cli("show", "custom")
    assert code == 0, err
    # one objective: the best trial, not a Pareto front chosen from by a knee
    assert re.search(r"Selected trial \d+, the best feasible value: value=[0-9.e-]+\.", out), out
    assert "Best trial of custom" in out and "Pareto front" not in out


def test_run_writes_plain_progress_when_not_a_terminal(workdir, cli):
    """stderr is not a terminal under pytest: one line per finished trial, no redraws."""
    spec = write_spec(workdir / "s.yaml", n_trials=3)
    code, out, err = cli("run", spec, "--no-report", "--workers", "2")
    assert code == 0, err
    assert "\r" not in err and "\x1b[" not in err
    for number in range(3):
        assert len(re.findall(rf"^tiny: trial {number} complete: ", err, re.M)) == 1, err
    assert "Best trial of tiny" in out and "tiny: trial" not in out  # progress: not on stdout


def test_a_note_on_the_selection_is_printed_and_in_the_report(capsys):
    # e.g. the chosen trial meets `latency_p95_ms <= 5` only within measurement noise
    import optuna
    from optuna.trial import create_trial

    from tuneops import _study
    from tuneops.cli import _common
    from tuneops.report import build_report

    note = "no trial meets the constraints beyond measurement noise; the selected trial 0 ..."
    results = {"study": "s", "n_trials": {"complete": 1}, "selection": {"notes": [note]}}
    _common.configure()
    _common.print_summary(results)
    assert f"Note: {note}" in capsys.readouterr().err

    study = optuna.create_study()
    study.add_trial(create_trial(params={}, distributions={}, value=1.0))
    # as a run stores it: made from the 1 complete trial, so still current for the report
    study.set_user_attr(
        _study.SELECTION, {"selected_trial": 0, "n_complete": 1, "notes": [note]}
    )
    assert note in build_report(study).notes


def test_a_staged_front_is_printed_at_the_verified_means_it_was_selected_by(capsys):
    """A staged study printed its front at the search values, where trial 6 (f1 0.9467, 322.9
    KiB) read as dominated by trial 11 (0.949, 178.9): the front and the choice were of the
    verified means (0.9422 at 357.8, 0.9344 at 202.7), which only a note gave, for trial 11."""
    from tuneops.cli import _common

    def member(number, values, mean):
        return {"number": number, "values": values, "params": {}, "metrics": {"fit_time_s": 0.2},
                "verified": {"mean": mean, "ci95": [[m, m] for m in mean]}}

    front = [member(6, [0.9467, 322.9], [0.9422, 357.8]),
             member(11, [0.949, 178.9], [0.9344, 202.7]),
             {"number": 12, "values": [0.9, 8.5], "params": {}}]  # not verified: search values
    results = {"study": "car", "n_trials": {"complete": 12}, "pareto_front": front,
               "selected": front[1], "objectives": [
                   {"metric": "f1", "direction": "maximize"},
                   {"metric": "model_size_kb", "direction": "minimize"}],
               "constraints": [], "selection": {"policy": "knee", "notes": []}}
    _common.configure()
    _common.print_summary(results, wide=True)
    out = " ".join(capsys.readouterr().out.split())
    assert "verified candidates at their verified means" in out, out
    assert re.search(r"\b6 0\.9422 357\.8\b", out) and re.search(r"★ 11 0\.9344 202\.7\b", out)
    assert re.search(r"\b12 0\.9 8\.5\b", out), out
    assert "0.9467" not in out
    assert (
        "Selected trial 11 by knee: f1=0.9344, model_size_kb=202.7, fit_time_s=0.2 (f1, "
        "model_size_kb: verified means; in the search f1=0.949, model_size_kb=178.9)." in out
    ), out


def _front_study(n_trials: int) -> None:
    """A tune() study whose every trial is on the Pareto front: (x, 1 - x), both minimized."""
    import tuneops

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        return x, 1 - x

    tuneops.tune(objective, objectives=["f1", "f2"], directions=["minimize", "minimize"],
                 n_trials=n_trials, sampler="random", storage="tuneops.journal", study="wide")


def test_show_prints_the_first_rows_of_a_long_front_and_all_with_all(workdir, cli):
    from tuneops.cli._common import FRONT_ROWS

    n = FRONT_ROWS + 7
    _front_study(n)
    code, out, err = cli("show", "wide")
    assert code == 0, err
    rows = re.findall(r"^\s*(?:★ )?(\d+)\s+[0-9.e-]+\s+[0-9.e-]+\s", out, re.M)
    assert len(rows) == FRONT_ROWS, out
    assert "… and 7 more (use --all or --json: tuneops show wide --all)" in out
    selected = int(re.search(r"Selected trial (\d+) by knee", out).group(1))
    assert re.search(rf"^\s*★ {selected}\s", out, re.M), out  # the selected trial is listed

    code, out, err = cli("show", "wide", "--all")
    assert code == 0, err
    rows = re.findall(r"^\s*(?:★ )?(\d+)\s+[0-9.e-]+\s+[0-9.e-]+\s", out, re.M)
    assert sorted(map(int, rows)) == list(range(n)) and "more (use --all" not in out

    code, out, _ = cli("show", "wide", "--json")
    assert len(json.loads(out)["pareto_front"]) == n


def test_first_rows_keep_the_selected_trial_in_place_of_the_last():
    from tuneops.cli._common import _first_rows

    front = [{"number": i} for i in range(10)]
    assert [t["number"] for t in _first_rows(front, 8, 3)] == [0, 1, 8]
    assert [t["number"] for t in _first_rows(front, 1, 3)] == [0, 1, 2]
    assert _first_rows(front, 8, None) == front and _first_rows(front, 8, 10) == front


def test_show_and_report_import_only_what_they_need(workdir):
    """The CLI loads a command's module when it runs (issue 15: every command's dependencies
    cost 4.3 s of CPU per invocation): show needs neither scikit-learn, pandas, scipy nor
    plotly, nor the web stack of serve and the dashboard."""
    _front_study(5)
    # sqlalchemy: only a database URL needs it, not this journal file
    heavy = ("sklearn", "pandas", "scipy", "plotly", "uvicorn", "starlette", "pyarrow",
             "sqlalchemy")
    probe = (
        "import sys\n"
        "from tuneops.cli import main\n"
        "code = main(sys.argv[1:])\n"
        f"print('LOADED', sorted(m for m in {heavy!r} if m in sys.modules), code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", probe, "show", "wide"], capture_output=True,
                          text=True, env=env, cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "LOADED [] 0" in done.stdout, done.stdout[-500:]
    done = subprocess.run([sys.executable, "-c", probe, "report", "wide", "-o", "r.html"],
                          capture_output=True, text=True, env=env, cwd=workdir)
    assert done.returncode == 0, done.stderr
    # plotly builds the figures; nothing else heavy
    assert "LOADED ['plotly'] 0" in done.stdout, done.stdout[-500:]


def test_tuneops_warnings_are_one_line_on_stderr(workdir, cli):
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame["constant"] = 1.0
    frame.to_csv(workdir / "iris.csv", index=False)
    spec = tiny_spec(data={"source": "iris.csv", "target": "target"})
    (workdir / "spec.yaml").write_text(json.dumps(spec))  # JSON is YAML
    code, _, err = cli("run", "spec.yaml", "--no-report", "--no-progress")
    assert code == 0, err
    assert "warning: Dropped 1 feature column(s) of 'iris.csv'" in err
    assert "DataWarning" not in err and ".py:" not in err  # not Python's file:line format
    # deploy loads the data twice (the fingerprint, then its staging gate): said once
    code, _, err = cli("deploy", "tiny")
    assert code == 0, err
    assert err.count("warning: Dropped 1 feature column(s)") == 1, err


def test_the_pruning_line_names_a_saved_serving_measurement_only_when_one_was_saved(capsys):
    from tuneops.cli import _common

    _common.configure()
    base = {"n_pruned": 2, "n_trials": 24, "pruning_rate": 2 / 24, "steps_saved": 1, "steps_run": 95,
            "fit_cpu_s": 4.0, "fit_cpu_s_saved": 0.1, "fit_saved_fraction": 0.02, "measurements_saved": 1}
    _common.print_pruning({"pruning": dict(base, measure_s_saved=0.0)})  # size objective: nothing timed
    _common.print_pruning({"pruning": dict(base, measure_s_saved=0.8)})  # a latency objective
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if line.startswith("Pruning:")]
    assert len(lines) == 2
    assert "serving measurement" not in lines[0]
    assert "serving measurement of 1 trial(s) cut after training (about 0.8 CPU s)" in lines[1]
    assert "1 of 96 intermediate reports" in lines[0]  # reports, not the budget's steps


def test_the_console_says_when_a_compute_budget_ended_the_run(capsys):
    """A `budget: {steps: 100}` run stopped after 4 of its 8 trials without a word, and counted
    "0 of 4 steps" in reports where the budget counted 108 steps of training (audit)."""
    from tuneops.cli import _common

    _common.configure()
    base = {"n_pruned": 0, "n_trials": 4, "pruning_rate": 0.0, "steps_saved": 0, "steps_run": 4,
            "fit_cpu_s": 4.0, "fit_cpu_s_saved": 0.0, "fit_saved_fraction": 0.0}
    for spent in (108, 54):
        compute = {"unit": "steps", "spent": spent, "budget": 100}
        _common.print_pruning({"pruning": dict(base, compute=compute)})
    _common.print_pruning({"pruning": dict(base, compute={"unit": "fit_cpu_s", "spent": 3.0,
                                                           "budget": None})})
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if line.startswith("Compute budget:")]
    assert len(lines) == 2
    assert lines[0].startswith("Compute budget: 108 of 100 steps of training") and "ended" in lines[0]
    assert lines[1].startswith("Compute budget: 54 of 100 steps") and "ended" not in lines[1]


def test_a_binary_metric_names_its_positive_class(workdir, cli):
    """f1 of breast cancer is the F1 of its minority class, 0 (malignant): said, not only
    recorded in results.json."""
    spec = write_spec(
        workdir / "s.yaml", data={"source": "sklearn:breast_cancer"}, objectives=["f1"], n_trials=2
    )
    code, out, err = cli("run", spec, "--no-progress", "--no-report")
    assert code == 0, err
    assert re.search(
        r"Selected trial \d+, the best feasible f1: f1=[0-9.]+.* \(positive class 0; "
        r"data\.pos_label sets it\)\.",
        out,
    ), out
    code, out, err = cli("run", write_spec(workdir / "a.yaml", study="acc", n_trials=2))
    assert "positive class" not in out  # accuracy does not depend on it


def test_families_print_each_default_space_in_the_spec_syntax(cli, monkeypatch):
    """`tuneops families` prints every parameter's definition (bounds, log, choices), one line
    each at 80 columns, in the syntax model.space takes: each line parses back to the family's
    own default parameter, for each task."""
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = cli("families")
    assert code == 0
    lines = out.splitlines()
    assert all(len(line) <= 80 and not line.endswith("…") for line in lines), out
    for name, cls in FAMILIES.items():
        start = lines.index(f"{name}: {cls().description}") + 1
        end = lines.index("", start) if "" in lines[start:] else len(lines)
        printed = dict(line.strip().split("  ", 1) for line in lines[start:end])
        for task in ("classification", "regression"):
            for param, default in cls().default_space(task).items():
                definition = printed.get(param) or printed[f"{param} ({task})"]
                assert parse_param(param, yaml.safe_load(definition.strip()), "s") == default
    assert "{type: categorical, choices: [uniform, distance]}" in out  # knn's weights
    assert "alpha (regression)" in out and "C (classification)" in out  # linear: by task
    code, wide, _ = cli("families", "--wide")
    assert code == 0 and "l2_regularization" in wide


def test_a_run_ended_by_its_time_budget_says_so(workdir, cli):
    """`--timeout-s 8` with n_trials 50 stopped after 4 trials, exit 0, without a word of the
    46 left (audit)."""
    spec = write_spec(workdir / "s.yaml", n_trials=500, timeout_s=1)
    code, out, err = cli("run", spec, "--no-progress", "--no-report")
    assert code == 0, err
    assert re.search(r"Time budget: timeout_s=1 ended the run with \d+ finished trial\(s\) of "
                     r"n_trials=500; running it again resumes", out + err), out + err


def test_the_refit_after_the_trials_says_what_it_does(workdir, cli):
    """47 s of silence between the last trial and the summary while a forest was refitted on
    all rows (audit): a line says it."""
    spec = write_spec(workdir / "s.yaml", n_trials=2)
    code, out, err = cli("run", spec, "--no-progress", "--no-report")
    assert code == 0, err
    assert re.search(r"Refitting trial \d+ on all 150 rows and saving it to ", err), err


def test_a_sigterm_before_the_command_runs_exits_143(monkeypatch, capsys):
    """A SIGTERM that lands while a command's module imports (scikit-learn, scipy) reached
    click as an interruption it calls "Aborted!", exit 1 (audit of the benchmarks' faults run)."""
    import signal

    from tuneops import cli

    def importing(name):
        cli._raise_terminated(signal.SIGTERM, None)

    monkeypatch.setattr(cli, "_module", importing)
    monkeypatch.setattr(cli, "_TERMINATED", [])
    assert cli.main(["families"]) == 143
    assert "Stopped by SIGTERM before the command started" in capsys.readouterr().err


# A command whose output outlives its reader (`tuneops ... | head`): it waits until the test has
# closed the pipe, prints more than a pipe holds, says something on stderr, then exits 3.
_PIPE_COMMAND = """
import os, sys, time
import typer
import tuneops.cli.catalog as catalog
from tuneops.cli import main
from tuneops.cli._common import emit_json, term

def families() -> None:
    while not os.path.exists("reader-gone"):
        time.sleep(0.01)
    for i in range(5000):
        term.result(f"line {i} " + "x" * 40)
    emit_json({"decision": "retune"})
    term.warn("still here")
    open("went-on", "w").close()
    raise typer.Exit(3)

catalog.families = families
sys.exit(main(["families"]))
"""


def test_a_closed_stdout_keeps_the_commands_exit_code(tmp_path):
    """`tuneops monitor --fail-on retune ... | head` exited 1 (click's answer to the broken pipe)
    where the command decided 3; the command goes on with its output sent to /dev/null."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _PIPE_COMMAND], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    with proc:
        try:
            proc.stdout.close()  # the reader leaves before the first line
            (tmp_path / "reader-gone").touch()
            err = proc.stderr.read()
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 3, err
    assert err.strip() == "still here", err  # no BrokenPipeError, nothing "ignored" at exit
    assert (tmp_path / "went-on").exists()


def test_the_count_of_repeats_is_singular_for_one(capsys):
    from tuneops.cli import _common

    _common.configure()
    for n, text in ((1, "; 1 repeat of an earlier"), (2, "; 2 repeats of an earlier")):
        _common.print_summary({"study": "s", "n_trials": {"complete": 3}, "n_repeats": n})
        out = " ".join(capsys.readouterr().out.split())
        assert text in out, out


def test_the_drift_table_keeps_its_figures_whole_at_80_columns(capsys, monkeypatch):
    """Long feature names (PMLB solar_flare_2: 'C-class_flares_production_by_this_region')
    squeezed the figures at 80 columns: the PSI read "0.5…", and "drifted" lost its "yes".
    The names give way now, elided, and every figure stays whole."""
    from types import SimpleNamespace

    from tuneops.cli import _common
    from tuneops.cli.monitor import _print_assessment

    monkeypatch.setenv("COLUMNS", "80")
    _common.configure()
    names = ["Activity", "C-class_flares_production_by_this_region",
             "Did_region_become_historically_complex"]
    features = [
        {"column": name, "test": "chi2", "p_adjusted": 6.34e-26 * (i + 1), "psi": 0.56 - i / 10,
         "missing": 0.0, "drifted": i < 2}
        for i, name in enumerate(names)
    ]
    assessment = SimpleNamespace(decision="retune", n_rows=200, reasons=["drifted"],
                                 performance=None, thresholds={}, features=features)
    _print_assessment(SimpleNamespace(name="flare"), 1, "batch.csv", assessment)
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("feature"))
    assert header.split()[-1] == "drifted" and all(len(line) <= 80 for line in lines)
    body = lines[lines.index(header) + 2:]
    assert len(body) == 3
    for line, feature in zip(body, features, strict=True):
        assert f" {feature['psi']:.3f} " in line and line.rstrip().endswith("yes") == feature["drifted"]
    assert body[1].startswith("C-class_flares_production_by_this") and "…" in body[1]
