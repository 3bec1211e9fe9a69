"""The benchmarks' pure helpers: docs section rewriting, hypervolume, error counting.

The benchmarks themselves are timed runs (benchmarks/, results in docs/benchmarks.md), never
timed tests; these checks keep their bookkeeping honest and run in well under a second.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _common import DOC, SECTION, cv, render_table, replace_block  # noqa: E402
from bench_faults import (  # noqa: E402
    excess_evaluations,
    recoveries,
    restarts_to_tuning,
    scan_log,
    spread,
    verdict,
)
from bench_quickstart import hypervolume, reference_point  # noqa: E402
from bench_store import count_stderr_errors  # noqa: E402

DOC_TEXT = """# Benchmarks

## Core (issue 2)

_pending_



## Pruning (issue 3)

_pending_
"""


def test_replace_block_fills_only_its_section_and_is_idempotent():
    once = replace_block(DOC_TEXT, "## Core (issue 2)", "a", "first\nresult")
    assert "<!-- a -->\nfirst\nresult\n<!-- /a -->" in once
    core, pruning = once.split("## Pruning (issue 3)")
    assert "_pending_" not in core
    assert pruning.strip() == "_pending_"  # other sections untouched
    twice = replace_block(once, "## Core (issue 2)", "a", "second")
    assert "first" not in twice and "<!-- a -->\nsecond\n<!-- /a -->" in twice
    both = replace_block(twice, "## Core (issue 2)", "b", "other")
    assert both.index("<!-- /a -->") < both.index("<!-- b -->") < both.index("## Pruning")
    assert replace_block(both, "## Core (issue 2)", "b", "other") == both


def test_replace_block_names_a_missing_section():
    with pytest.raises(ValueError, match="no heading '## Nope'"):
        replace_block(DOC_TEXT, "## Nope", "a", "x")


def test_the_real_doc_has_this_issues_section():
    assert SECTION in DOC.read_text().splitlines()


def test_hypervolume_matches_the_rectangles_by_hand():
    # (accuracy, latency): maximise accuracy, minimise latency; reference (0.9, 10 ms).
    ref = np.array([-0.9, 10.0])
    one = np.array([[0.95, 4.0]])
    assert hypervolume(one, ref) == pytest.approx(0.05 * 6.0)
    two = np.array([[0.95, 4.0], [0.92, 2.0], [0.93, 5.0]])  # the last is dominated
    assert hypervolume(two, ref) == pytest.approx(0.05 * 6.0 + 0.02 * 2.0)
    assert hypervolume(np.array([[0.85, 1.0], [0.99, 11.0]]), ref) == 0.0  # outside the box


def test_reference_point_is_shared_and_beyond_every_latency():
    a, b = np.array([[0.95, 3.0]]), np.array([[0.96, 8.0], [0.91, 1.0]])
    ref = reference_point(a, b)
    assert ref[1] == pytest.approx(8.8) and ref[0] == pytest.approx(-0.9)


def test_cv_table_and_error_counting():
    assert cv([1.0, 1.0, 1.0]) == 0.0
    assert cv([1.0, 3.0]) == pytest.approx(np.std([1.0, 3.0], ddof=1) / 2.0)
    table = render_table(["a", "b"], [[1, 0.123456]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.123 |"]
    stderr = "Traceback (most recent call last):\n  ...\nsqlite3.OperationalError: database is locked\n"
    assert count_stderr_errors(stderr * 2) == (2, 2)


# -- bench_faults: the checks read back from the storage ------------------------------------------
def _trial(number: int, state=TrialState.COMPLETE, params=None, start=0.0, end=None, **attrs):
    base = datetime.datetime(2026, 1, 1)
    trial = optuna.trial.create_trial(
        state=state, value=1.0 if state == TrialState.COMPLETE else None,
        params=params or {}, distributions={k: FloatDistribution(0, 10) for k in params or {}},
        user_attrs=attrs)
    trial.number = number
    trial.datetime_start = base + datetime.timedelta(seconds=start)
    trial.datetime_complete = None if end is None else base + datetime.timedelta(seconds=end)
    return trial


def test_a_retry_of_an_abandoned_trial_is_allowed_once_and_anything_else_is_a_repeat():
    trials = [
        _trial(0, TrialState.FAIL, {"C": 1.0}, abandoned="interrupted (SIGTERM)"),
        _trial(1, params={"C": 1.0}, retry_of=0),  # the documented retry
        _trial(2, params={"C": 2.0}),
        _trial(3, params={"C": 2.0}),  # the same configuration again, no retry: a repeat
        _trial(4, TrialState.FAIL, {"C": 3.0}, abandoned="worker vm:1 is no longer running"),
        _trial(5, params={"C": 3.0}, retry_of=4),
        _trial(6, params={"C": 3.0}, retry_of=4),  # a second retry of one abandoned trial
        _trial(7, params={"C": 4.0}),
        _trial(8, params={"C": 4.0}, retry_of=7),  # names a trial that was not abandoned
        _trial(9, TrialState.FAIL, abandoned="retired: beyond the budget of 9"),  # unrun: no params
        _trial(10, TrialState.FAIL, abandoned="retired: beyond the budget of 9"),
    ]
    assert excess_evaluations(trials) == [[2, 3], [4, 5, 6], [7, 8]]
    v = verdict(trials)
    assert (v.counted, v.abandoned, v.retired, v.retries) == (7, 2, 2, 4)
    assert (v.running, v.waiting, v.unretried) == (0, 0, [])
    assert excess_evaluations(trials[:2] + trials[4:6]) == []


def test_verdict_counts_what_is_left_running_or_queued():
    trials = [_trial(0, TrialState.RUNNING, {"C": 1.0}), _trial(1, TrialState.WAITING),
              _trial(2, params={"C": 2.0}, end=1.0),
              _trial(3, TrialState.FAIL, {"C": 3.0}, abandoned="interrupted (SIGTERM)")]
    v = verdict(trials)
    assert (v.counted, v.counted_finished, v.running, v.waiting) == (3, 1, 1, 1)
    assert v.unretried == [3]  # abandoned, and no trial is its retry


def test_recovery_times_attribute_abandoned_trials_to_the_signal_that_hit_their_worker():
    base = datetime.datetime(2026, 1, 1).timestamp()
    trials = [
        _trial(0, TrialState.FAIL, {"C": 1.0}, start=1.0, end=10.5, abandoned="x",
               worker={"pid": 11}),
        _trial(1, params={"C": 1.0}, start=14.0, end=15.0, retry_of=0, worker={"pid": 12}),
        _trial(2, params={"C": 2.0}, start=2.0, end=3.0, worker={"pid": 11}),  # done before
        _trial(3, TrialState.FAIL, {"C": 3.0}, start=1.0, end=10.2, abandoned="y",
               worker={"pid": 13}),  # the owner's forked worker, abandoned on its SIGTERM
    ]
    signals = [{"at": base + 10.0, "signal": "SIGKILL", "role": "owner", "pids": [11, 13]}]
    rows = recoveries(trials, signals)
    assert [(r["trial"], round(r["abandoned_s"], 3)) for r in rows] == [(0, 0.5), (3, 0.2)]
    assert rows[0]["retry_running_s"] == pytest.approx(4.0) and rows[1]["retry_running_s"] is None
    restarts = [{"role": "owner", "pid": 20, "at": base + 12.0, "ended": None},
                {"role": "worker", "pid": 12, "at": base + 11.0, "ended": base + 13.0}]
    tuning = restarts_to_tuning(trials, restarts, worker_pids=[12])
    assert tuning == [{"role": "owner", "s": None}, {"role": "worker", "s": None}]
    restarts[1]["ended"] = None
    assert restarts_to_tuning(trials, restarts, [12])[1]["s"] == pytest.approx(3.0)
    assert spread([3.0, 1.0, 2.0])["median"] == 2.0 and spread([])["n"] != spread([])["n"]


def test_scan_log_tells_start_up_interrupts_from_errors_and_counts_broken_locks():
    text = (
        "Traceback (most recent call last):\n  File \"x\", line 1, in <module>\nKeyboardInterrupt\n"
        "Stopped by SIGTERM: no trial was running\n"
        "Traceback (most recent call last):\n  File \"y\"\n    raise E\nValueError: boom\n"
        "[W ...] The existing lock file has not been released for an extended period. "
        "Forcibly releasing the lock file.\n"
        "W tuneops._journal_lock: removed the journal lock file s.journal.lock left by a writer "
        "that is gone (host 123)\n"
    )
    assert scan_log(text) == {"startup_interrupts": 1, "errors": {"ValueError: boom": 1},
                              "lock_breaks": 1, "lock_removals": 1}


def test_distributed_section_renders_only_the_parts_it_has():
    from bench_distributed import markdown

    res = {"statements": {"trials": 30, "PostgreSQL|plain": 44.4, "PostgreSQL|tuneops": 39.2,
                          "journal file|plain": 4.7, "journal file|tuneops": 6.0,
                          "journal file fsync|plain": 4.7, "journal file fsync|tuneops": 5.0}}
    text = markdown(res, "python benchmarks/bench_distributed.py --parts statements")
    assert "journal file: fsync'd writes | 4.7 | 5.0 | 1.06 |" in text
    assert "Not in this run" in text and "efficiency" in text


def test_distributed_overhead_is_reported_both_ways():
    from bench_distributed import overhead_summary

    rows = [{"overhead": 0.0, "plain_trials_per_s": 100.0, "tuneops_trials_per_s": 90.0},
            {"overhead": -0.05, "plain_trials_per_s": 100.0, "tuneops_trials_per_s": 100.0},
            {"overhead": 0.02, "plain_trials_per_s": 110.0, "tuneops_trials_per_s": 100.0}]
    both = overhead_summary(rows)
    assert both["per_run"] == 0.0
    assert both["rates"] == pytest.approx(0.1)


def test_sampler_runs_say_where_they_come_from():
    from bench_samplers import provenance

    runs = [{"problem": "dtlz2", "finished_at": "2026-12-07 10:00 UTC", "commit": "abc1234",
             "load": [1.0, 2.5], "torch": False},
            {"problem": "dtlz2"}]
    text = provenance(runs)
    assert "dtlz2: 2 runs, 2026-12-07 10:00 UTC to 2026-12-07 10:00 UTC, commit(s) abc1234" in text
    assert "load 1.0-2.5, PyTorch no" in text and "1 saved without date, commit or load" in text


def test_faults_command_names_the_results_file_it_is_read_from():
    from bench_faults import with_json_path

    recorded = "nice -n 10 python benchmarks/bench_faults.py --quick --json /tmp/fb/letter.json"
    shown = with_json_path(recorded, str(Path(__file__).resolve().parents[1] / "benchmarks/results/faults.json"))
    assert shown == "nice -n 10 python benchmarks/bench_faults.py --quick --json benchmarks/results/faults.json"


def test_the_busy_machine_table_counts_what_each_rule_calls_busy():
    from bench_busy import NAMES, summarise

    def row(condition, share, load, median=1.0):
        return [{"condition": condition, "model": m, "share": share, "speed": 1.0,
                 "median": median, "load": load, "cores": 2, "in_use": 1.0} for m in NAMES]

    rows = row("idle", 0.99, 0.5) + row("busy", 0.3, 1.5, 1.2) + row("after", 0.98, 9.0)
    table = summarise(rows, ["idle", "busy", "after"], 0.8)
    n = len(NAMES)
    assert [r[-2:] for r in table] == [[f"0/{n}", f"0/{n}"], [f"{n}/{n}", f"0/{n}"],
                                       [f"0/{n}", f"{n}/{n}"]]
    assert table[1][6] == "1.20-1.20"  # latency against the idle median of each model


def test_unseen_sampler_problems_reach_their_stated_optima():
    import math

    import numpy as np
    from bench_samplers import (
        PROBLEMS,
        _cat_minimum,
        _front_hv,
        ackley,
        branin,
        dtlz1,
        rosenbrock,
        wfg4,
        zdt2,
        zdt3,
    )

    assert branin(np.array([(math.pi + 5) / 15, 2.275 / 15])) == pytest.approx(0.397887, abs=1e-5)
    assert rosenbrock(np.full(10, 6 / 15)) == pytest.approx(0.0)  # z = 1 everywhere
    assert ackley(np.full(10, 0.5)) == pytest.approx(0.0, abs=1e-12)
    # fronts: distance variables at their optimum put the point on the front
    f1, f2 = wfg4(np.array([0.5] * 4 + [0.35] * 4))
    assert (f1 / 2) ** 2 + (f2 / 4) ** 2 == pytest.approx(1.0)
    assert sum(dtlz1(np.array([0.3, 0.6] + [0.5] * 5))) == pytest.approx(0.5)
    assert zdt2(np.array([0.5] + [0.0] * 9)) == pytest.approx((0.5, 0.75))
    assert zdt3(np.array([0.2] + [0.0] * 9))[1] == pytest.approx(1 - math.sqrt(0.2))
    assert PROBLEMS["zdt2"].ideal_hv == pytest.approx(_front_hv(lambda f: 1 - f**2, (1.1, 1.1)), rel=1e-3)
    assert 0 < _cat_minimum() < 3
    # the problems the rule was chosen on and the unseen ones are separate groups
    assert not any(PROBLEMS[p].unseen for p in ("zdt1", "dtlz2", "rs_latency", "rs_size"))
    unseen = ("branin", "zdt3", "vehicle_svm", "german_size", "pima_size")
    assert all(PROBLEMS[p].unseen for p in unseen)


def test_sampler_docs_rewrite_only_the_problems_with_runs_here():
    from bench_samplers import _RUNS_SUMMARISED, doc_block, merged_block

    old = ("Command: `x` (tables from every saved run: runs summarised: branin: 31 runs, load 5.0; "
           "zdt2: 42 runs, load 3.6). Budget 200 trials per run.\n\n"
           "**branin** (1 objective(s), continuous space)\n\n| sampler |\n|---|\n| tpe |\n\n"
           "**zdt2** (2 objective(s), continuous space)\n\n| sampler |\n|---|\n| old gp |\n\n"
           "- branin: auto 1.000 vs best: met\n- zdt2: auto 0.2 vs best: NOT met")
    new = merged_block(old, "Command: `y`.", {"zdt2": "5 runs, load 2.0"},
                       "**zdt2** (2 objective(s), continuous space)\n\n| sampler |\n|---|\n| new |\n",
                       ["- zdt2: auto 0.9 vs best: met"])
    assert "| tpe |" in new and "- branin: auto 1.000 vs best: met" in new  # kept as written
    assert "| old gp |" not in new and "- zdt2: auto 0.9 vs best: met" in new
    assert "- branin runs: 31 runs, load 5.0" in new
    assert "- zdt2 runs: 5 runs, load 2.0 (tables rewritten by the command above)" in new
    assert _RUNS_SUMMARISED in new
    # a rewritten block reads back as it was written, and nothing new changes nothing
    doc = f"## S\n\n<!-- k -->\n{new}\n<!-- /k -->\n"
    assert doc_block(doc, "k") == new
    assert merged_block(new, "Command: `y`.", {}, "", []) == new
