"""The command line through its real entry point: outputs, exit codes, nothing half-written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import EXAMPLES, ROOT, tiny_spec


def write_spec(path, **changes):
    path.write_text(json.dumps(tiny_spec(**changes)))  # JSON is valid YAML
    return path


def test_run_show_select_export(workdir, cli):
    spec = write_spec(workdir / "s.yaml", objectives=["accuracy", "fit_time_s"], n_trials=4)
    code, out, err = cli("run", spec, "--no-progress")
    assert code == 0, err
    assert "Pareto front of tiny" in out and "★" in out
    assert (workdir / "tuneops-out/tiny/model.joblib").is_file()

    code, out, _ = cli("show", "tiny", "--trials")
    assert code == 0 and "4 complete" in out and "trials" in out

    code, out, _ = cli("show", "tiny", "--json")
    assert json.loads(out)["n_trials"] == {"complete": 4}

    code, out, err = cli("select", "tiny", "--constraint", "accuracy >= 0.99")
    assert code == 1 and "no trial meets the constraints" in err and "closest is trial" in err
    code, out, _ = cli("select", "tiny", "--constraint", "accuracy >= 0.5",
                       "--policy", "lexicographic")
    assert code == 0 and "Selected trial" in out
    # Re-selected with another constraint: the workers' shares are of the new front, not the
    # run's record.
    code, out, _ = cli("select", "tiny", "--constraint", "fit_time_s <= 1000", "--json")
    selected = json.loads(out)
    members = sum(w["pareto"] for w in selected["workers"]["workers"])
    assert code == 0 and members == len(selected["selection"]["pareto_front"])

    code, out, _ = cli("export", "tiny", "--trial", "0", "--out", "exported")
    assert code == 0 and (workdir / "exported/model.joblib").is_file()
    # Without --out a given trial goes beside the run's model, never over it.
    run_model = workdir / "tuneops-out/tiny/model.json"
    before = run_model.read_bytes()
    code, out, _ = cli("export", "tiny", "--trial", "1")
    assert code == 0 and (workdir / "tuneops-out/tiny/trial-1/model.joblib").is_file()
    assert run_model.read_bytes() == before


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"objectives": ["acuracy"]}, "unknown metric 'acuracy'"),
        ({"model": {"family": "forest"}}, "unknown model family 'forest'"),
        ({"sampler": "bayes"}, "unknown sampler 'bayes'"),
        ({"constraints": ["accuracy = 0.9"]}, "malformed constraint"),
        ({"data": {"source": "sklearn:nope"}}, "unknown scikit-learn dataset 'nope'"),
        ({"data": {"source": "missing.csv", "target": "y"}}, "'missing.csv' does not exist"),
        ({"data": {"source": "sklearn:iris", "task": "regression"}},
         "metric 'accuracy' applies to classification"),
        ({"objectives": ["r2"]}, "objectives: metric 'r2' applies to regression"),
        ({"constraints": ["rmse <= 0.5"]}, "constraints: metric 'rmse' applies to regression"),
        ({"objectives": ["log_loss"], "model": {"family": ["knn", "svm"]}},
         "model.family: 'svm' gives no class probabilities .* which 'log_loss' needs; remove it"),
        ({"storage": "postgresql://u:secret@127.0.0.1:1/db"},
         r"'postgresql://u:\*\*\*@127.0.0.1:1/db' cannot be opened"),
        # the spec's field named as the field, not as --storage
        ({"storage": "ftp://host/x"},
         r"error: storage: expected .* received 'ftp://host/x' \(unknown scheme 'ftp'\)"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(workdir, cli, changes, message):
    spec = write_spec(workdir / "bad.yaml", **changes)
    code, out, err = cli("run", spec, "--no-progress")
    assert code == 2, (out, err)
    assert re.search(message, " ".join(err.split())), err
    assert "secret" not in err
    assert sorted(p.name for p in workdir.iterdir()) == ["bad.yaml"]


def test_empty_data_and_missing_target_column(workdir, cli):
    (workdir / "empty.csv").write_text("")
    spec = write_spec(workdir / "a.yaml", data={"source": "empty.csv", "target": "y"})
    code, _, err = cli("run", spec)
    assert code == 2 and "is empty" in err
    (workdir / "d.csv").write_text("a,b\n" + "\n".join(f"{i},{i % 2}" for i in range(20)))
    spec = write_spec(workdir / "b.yaml", data={"source": "d.csv", "target": "label"})
    code, _, err = cli("run", spec)
    assert code == 2 and "column 'label' does not exist" in " ".join(err.split())
    assert not (workdir / "tuneops.journal").exists()


def test_unknown_study_lists_what_exists(workdir, cli):
    cli("run", write_spec(workdir / "s.yaml", n_trials=1), "--no-progress")
    code, _, err = cli("show", "nope")
    assert code == 2 and "no study 'nope'" in err and "studies there: tiny" in err


def test_listing_commands(cli):
    code, out, _ = cli("families")
    assert code == 0 and "hist_gradient_boosting" in out
    code, out, _ = cli("metrics")
    assert code == 0 and "latency_p95_ms" in out


def test_examples_run(workdir, cli):
    """Every example spec runs end to end (with a tiny budget)."""
    from tuneops.spec import load_spec

    for path in sorted(EXAMPLES.glob("*.yaml")):
        study = load_spec(path).study
        code, out, err = cli("run", path, "--n-trials", "2", "--no-progress")
        # 1 is allowed: two trials may not meet an example's business constraints, and the
        # run then says which trial came closest instead of saving a model.
        assert code in (0, 1), err
        results = json.loads((workdir / "tuneops-out" / study / "results.json").read_text())
        assert results["n_trials"] == {"complete": 2}
        assert (code == 0) == (workdir / "tuneops-out" / study / "model.joblib").is_file()


def test_readme_set_up_command_runs_the_quickstart(workdir):
    """The README's first command, run as written (minus the install, already done)."""
    readme = (ROOT / "README.md").read_text()
    setup = r"pip install -e \"\.\[report\]\" && (tuneops run examples/quickstart.yaml)"
    command = re.search(setup, readme).group(1)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = [sys.executable, "-m", "tuneops", *command.split()[1:], "--n-trials", "4",
            "--no-progress"]
    args[4] = str(ROOT / args[4])
    proc = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Selected trial" in proc.stdout
    assert (workdir / "tuneops-out/quickstart/model.joblib").is_file()
    assert (workdir / "tuneops.journal").is_file()


def test_bad_usage_exits_2(cli):
    code, _, err = cli("run")
    assert code == 2 and "Missing argument" in err
    code, _, err = cli("show", "x", "--no-such-option")
    assert code == 2 and "No such option" in err
    code, out, _ = cli("--help")
    assert code == 0 and "run" in out


def test_ctrl_c_while_the_report_is_written_leaves_no_stale_report(workdir, cli, monkeypatch):
    """Found by a user: a Ctrl-C after the trials, while report.html was written, exited 130
    without a word and left the previous run's report beside the new results.json."""
    import tuneops.cli.report as report_cli

    spec = write_spec(workdir / "s.yaml", n_trials=2)
    code, _, err = cli("run", spec, "--no-progress")
    report = workdir / "tuneops-out/tiny/report.html"
    if not report.exists():  # the report extra is missing: the run says so and goes on
        assert "No report.html" in err
    before = json.loads((workdir / "tuneops-out/tiny/results.json").read_text())

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_cli, "write_report", interrupted)
    code, _, err = cli("run", spec, "--no-progress", "--n-trials", "3")
    assert code == 130
    said = " ".join(err.split())
    assert "while writing the report" in said and "tuneops report tiny" in said
    after = json.loads((workdir / "tuneops-out/tiny/results.json").read_text())
    assert before["n_trials"] == {"complete": 2} and after["n_trials"] == {"complete": 3}
    assert not report.exists()


def test_an_output_directory_that_is_a_file_is_blamed_on_where_it_was_named(workdir, cli):
    (workdir / "afile").write_text("x")
    spec = write_spec(workdir / "s.yaml", output_dir="afile")
    code, _, err = cli("run", spec, "--no-progress")
    assert code == 2 and "give the spec's output_dir a directory path" in " ".join(err.split())
    code, _, err = cli("run", write_spec(workdir / "t.yaml"), "--no-progress", "--out", "afile")
    assert code == 2 and "give output_dir (--out) a directory path" in " ".join(err.split())
    assert sorted(p.name for p in workdir.iterdir()) == ["afile", "s.yaml", "t.yaml"]


def test_select_says_that_deploy_and_export_keep_the_specs_selection(workdir, cli):
    """`select -c ...` shows another trial but stores nothing: `deploy` then took the spec's
    selected trial, and nothing said so."""
    spec = write_spec(workdir / "s.yaml", objectives=["accuracy"], n_trials=4)
    assert cli("run", spec, "--no-progress", "--no-report")[0] == 0
    results = json.loads((workdir / "tuneops-out/tiny/results.json").read_text())
    kept = results["selected"]["number"]
    best = results["selected"]["values"][0]
    below = max(t["values"][0] for t in results["trials"] if t["values"][0] < best)
    code, out, _ = cli("select", "tiny", "--constraint", f"accuracy <= {below}")
    shown = int(re.search(r"Selected trial (\d+)", out)[1])
    assert code == 0 and shown != kept
    assert (
        f"Not stored: without --trial, `tuneops deploy tiny` and `tuneops export tiny` still "
        f"take trial {kept}, selected by the spec's constraints and policy; `tuneops deploy "
        f"tiny --trial {shown}` deploys the trial selected here." in " ".join(out.split())
    ), out
    # the same choice as the spec's: nothing to say
    code, out, _ = cli("select", "tiny", "--constraint", "accuracy >= 0")
    assert code == 0 and "Not stored" not in out


def test_export_of_a_trial_within_noise_of_a_constraint_does_not_say_it_misses_it(workdir, cli):
    """A trial whose p95 (1.9 ms) was timed too briefly to bound it from above (a timing stopped
    once the trial was dominated) was exported with "Trial 2 misses the study's constraint(s)
    latency_p95_ms <= 200 ... selection would never choose it"."""
    import copy

    import optuna

    import tuneops

    spec = write_spec(workdir / "s.yaml", constraints=["latency_p95_ms <= 1000"], n_trials=1)
    assert cli("run", spec, "--no-progress", "--no-report")[0] == 0
    study = tuneops.load_study("tiny")
    done = study.trials[0]
    attrs = copy.deepcopy(done.user_attrs)
    low = attrs["tuneops:cost"]["intervals"]["latency_p95_ms"][0]
    attrs["tuneops:cost"]["intervals"]["latency_p95_ms"] = [low, None]  # as a cut timing stores
    study.add_trial(
        optuna.trial.create_trial(
            params=done.params, distributions=done.distributions, values=done.values,
            user_attrs=attrs,
        )
    )
    code, out, err = cli("export", "tiny", "--trial", "1")
    assert code == 0, err
    said = " ".join(err.split())
    assert "misses" not in said, said
    assert (
        "Trial 1 meets the study's constraint(s) latency_p95_ms <= 1000 by its measured value but "
        "not beyond measurement noise: latency_p95_ms " in said
    ), said
    # why, in the selection note's words: not "(95% interval 1.69-unbounded)", which read as
    # a value within noise of a limit 500 times as high
    assert (
        ", whose 95% interval has no upper end: too few timed calls to bound it, however far "
        "from the limit the value is (a timing stops after 20 calls once its trial is known to "
        "be dominated; a p95 needs 72). It is exported as asked" in said
    ), said
    assert "unbounded" not in said, said
    code, out, _ = cli("export", "tiny", "--trial", "1", "--json")
    assert json.loads(out)["missed"] == []
    assert json.loads(out)["within_noise"] == ["latency_p95_ms <= 1000"]


def test_export_names_the_trial_it_exported_and_a_constraint_it_misses(workdir, cli):
    """`export --json` said "trial": null for the selected trial; a trial that misses the
    constraints was exported without a word."""
    spec = write_spec(workdir / "s.yaml", constraints=["fit_time_s <= 1000"])
    assert cli("run", spec, "--no-progress", "--no-report")[0] == 0
    selected = json.loads((workdir / "tuneops-out/tiny/results.json").read_text())["selected"]
    code, out, _ = cli("export", "tiny", "--json")
    assert code == 0 and json.loads(out)["trial"] == selected["number"]
    assert json.loads(out)["missed"] == []
    strict = write_spec(workdir / "strict.yaml", study="strict", constraints=["accuracy >= 0.999"])
    assert cli("run", strict, "--no-progress", "--no-report")[0] == 1  # nothing feasible
    code, out, err = cli("export", "strict", "--trial", "0")
    assert code == 0 and (workdir / "tuneops-out/strict/trial-0/model.joblib").is_file()
    assert (
        "Trial 0 misses the study's constraint(s) accuracy >= 0.999: it is exported as asked, "
        "but selection would never choose it." in " ".join(err.split())
    ), err
