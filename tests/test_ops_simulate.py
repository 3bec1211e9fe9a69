"""Simulation on streams of unseen rows: disjoint batches, per-shift recovery, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuneops.cli._common import fmt
from tuneops.data import load_dataset
from tuneops.errors import UsageError
from tuneops.ops.monitor import resampled_scores
from tuneops.ops.registry import Registry
from tuneops.ops.simulate import VERDICTS, Shift, make_stream, parse_shift, recovery, time_stream


def test_simulate_cli_end_to_end(workdir: Path, cli) -> None:
    code, out, err = cli(
        "simulate",
        "--dataset",
        "pmlb:phoneme",
        "--batches",
        "7",
        "--batch-size",
        "150",
        "--shift",
        "covariate@2",
        "--shift",
        "concept@4",
        "--n-trials",
        "3",
        "--out",
        "sim",
    )
    assert code == 0, err
    timeline = json.loads(Path("sim/timeline.json").read_text())
    assert Path("sim/timeline.png").stat().st_size > 10_000
    # Everything under --out: nothing in ./tuneops-out (re-tuning studies included).
    assert not Path("tuneops-out").exists()
    assert any(p.name.startswith("simulate-phoneme.retune-v") for p in Path("sim").iterdir())
    assert timeline["rows"] == {"train": 2161, "streamed": 7 * 150, "seen_twice": 0}
    rows = timeline["batches"]
    assert [r["phase"] for r in rows] == ["stationary"] * 2 + ["covariate"] * 2 + [
        "covariate+concept"
    ] * 3
    assert rows[0]["champion"] == 1 and rows[0]["champion_score"] == rows[0]["baseline_score"]
    assert rows[2]["max_psi"] > 3 * rows[0]["max_psi"]  # the covariate shift is seen
    # Concept drift collapses the model in place; detected on its first batch, re-tuned and
    # promoted; the new champion recovers on rows no model has seen.
    assert rows[4]["decision"] == "retune" and rows[4]["retune"]["decision"] == "promote"
    assert rows[4]["baseline_score"] < 0.4
    assert rows[5]["champion"] > 1 and rows[5]["champion_score"] > rows[5]["baseline_score"] + 0.3
    covariate, concept = timeline["summary"]["shifts"]
    assert (covariate["kind"], covariate["at"], covariate["until"]) == ("covariate", 2, 4)
    assert concept["detected_at"] == 4 and concept["first_promotion_at"] == 4
    assert concept["after_promotion"]["lost"] > 0.3 and concept["recovered_share"] > 0.5
    assert rows[5]["frozen_scores"]["1"] == rows[5]["baseline_score"]  # v1 was in place at 4
    # After the promotion, the champion (fitted on 70% of batch 4) is refreshed on the rows since
    # the change: batch 4 at batch 5, batches 4-5 at batch 6 (judged on the batch itself).
    assert rows[5]["refresh"]["champion"] == rows[5]["champion"] and rows[5]["refresh"]["rows"] == 150
    assert rows[6]["refresh"]["rows"] == 300 and rows[6]["refresh"]["holdout_rows"] == 150
    assert timeline["summary"]["n_refreshes"] == sum(
        r["refresh"] is not None and r["refresh"]["decision"] == "promote" for r in rows
    )
    registry = Registry.open("simulate-phoneme", "sim/simulate.journal")
    assert len(registry.events("monitor")) == 7
    assert "concept@4: detected at 4, promoted at 4" in out
    # Each shift's judgement is printed in the numbers the record holds: the cost and the share
    # recovered, each with its interval, and the verdict.
    judgement = concept["judgement"]
    assert judgement["on"] == "after_promotion" and judgement["rows"] == 2 * 150
    assert judgement["rows_before"] == 2 * 150  # batches 2-3: nothing promoted since 2
    low, high = judgement["lost_interval"]
    assert low <= judgement["lost"] <= high and concept["verdict"] in VERDICTS
    low, high = judgement["share_interval"]
    assert low <= judgement["share"] == concept["recovered_share"] <= high
    assert (
        f"after the promotion, 300 rows against 300 before: cost {fmt(judgement['lost'])} "
        f"[{fmt(judgement['lost_interval'][0])}, {fmt(judgement['lost_interval'][1])}], share "
        f"recovered {fmt(judgement['share'])} [{fmt(low)}, {fmt(high)}]: {concept['verdict']}"
    ) in out
    assert f": {covariate['verdict']}" in out.split("covariate@2: ")[1].splitlines()[0]
    assert timeline["summary"]["verdicts"][concept["verdict"]] >= 1
    # a retune decision that re-tuned nothing says why on its batch's line (cooldown, ...)
    notes = [r["note"] for r in rows if r.get("note")]
    assert notes and all(note in out for note in notes)
    # The same model name in the same storage is refused, nothing is run.
    code, _, err = cli("simulate", "--batches", "7", "--out", "sim")
    assert code == 2 and "already registered" in err


def test_a_file_needs_target_and_bad_input_writes_nothing(workdir: Path, cli) -> None:
    data = load_dataset("pmlb:phoneme")
    frame = data.X.assign(label=data.y.to_numpy()).iloc[:900]
    frame.assign(day=np.arange(900) // 30).to_csv("stream.csv", index=False)
    code, _, err = cli("simulate", "--dataset", "stream.csv", "--out", "sim")
    assert code == 2 and "target (--target): 'stream.csv' is a file" in err
    code, _, err = cli("simulate", "--dataset", "stream.csv", "--target", "nope", "--out", "sim")
    assert code == 2 and "target (--target): column 'nope' does not exist" in err
    code, _, err = cli(
        "simulate",
        "--dataset",
        "stream.csv",
        "--target",
        "label",
        "--batches",
        "30",
        "--out",
        "sim",
    )
    assert code == 2 and "no row is streamed twice" in err
    code, _, err = cli("simulate", "--stationary", "--shift", "concept@2", "--out", "sim")
    assert code == 2 and "--stationary" in err
    # batches smaller than monitor.min_rows: refused before the initial tuning, not after it
    code, _, err = cli(
        "simulate", "--dataset", "stream.csv", "--target", "label", "--batch-size", "5",
        "--out", "sim",
    )
    assert code == 2, err
    assert "batch_size (--batch-size): expected at least 50 rows per batch" in err
    assert not Path("sim").exists() and not Path("simulate.journal").exists()
    assert not Path("tuneops-out").exists()
    # A file with --target, streamed in the order of its time column (stationary by nature).
    code, out, err = cli(
        "simulate",
        "--dataset",
        "stream.csv",
        "--target",
        "label",
        "--time-column",
        "day",
        "--batch-size",
        "60",
        "--n-trials",
        "2",
        "--out",
        "sim",
        "--json",
    )
    assert code == 0, err
    timeline = json.loads(out)
    assert timeline["mode"] == "time-ordered" and timeline["shifts"] == []
    assert timeline["n_batches"] == (900 - 360) // 60 and timeline["rows"]["seen_twice"] == 0
    assert [r["phase"] for r in timeline["batches"]] == ["time-ordered"] * timeline["n_batches"]
    assert timeline["summary"]["non_ok_share"] is not None
    assert (
        "day" not in Registry.open("simulate-stream", "sim/simulate.journal").version(1)["features"]
    )


def test_a_champion_that_lacks_a_class_is_monitored_not_a_crash(workdir: Path, cli) -> None:
    """A challenger re-tuned on 70 rows can lack a rare class of the data (PMLB texture: 9 of 11);
    the monitor does not train on classes the champion does not know, and the simulation
    stopped there with "window (--window): ... Nothing was recorded" (a flag nobody gave), its
    partial output left behind. Now it monitors on and says on each batch why nothing is
    learnt."""
    rng = np.random.default_rng(0)
    y = rng.choice(6, size=2000, p=[0.3, 0.3, 0.2, 0.1, 0.09, 0.01])
    X = rng.normal(size=(2000, 3)) + y[:, None] * 1.5
    pd.DataFrame(X, columns=["a", "b", "c"]).assign(label=y).to_csv("rare.csv", index=False)
    code, out, err = cli(
        "simulate", "--dataset", "rare.csv", "--target", "label", "--batches", "7",
        "--shift", "concept@3", "--n-trials", "2", "--out", "sim", "--json",
    )
    assert code == 0, err
    timeline = json.loads(out)
    rows = timeline["batches"]
    assert rows[3]["retune"]["decision"] == "promote"
    blocked = [r for r in rows if (r["note"] or "").startswith("re-tuning and refresh skipped")]
    assert blocked and all(r["retune"] is None and r["refresh"] is None for r in blocked)
    assert "predicts 5 classes, and the rows they would learn from also hold 0" in blocked[0]["note"]
    assert blocked[0]["note"] in err  # the batch's line says it too
    assert timeline["summary"]["shifts"][0]["verdict"] in VERDICTS


def test_stream_batches_are_disjoint_and_never_training_rows() -> None:
    frame = pd.DataFrame(
        {"x": range(2000), "y": [i % 7 for i in range(2000)], "target": [0, 1] * 1000}
    )
    stream = make_stream(
        frame,
        target="target",
        task="classification",
        n_batches=5,
        batch_size=200,
        shifts=[Shift("covariate", 1, 4.0), Shift("concept", 3)],
        seed=0,
    )
    assert len(stream.train) == 800 and all(len(b) == 200 for b in stream.batches)
    streamed = [i for r in stream.rows for i in r]
    assert len(set(streamed)) == len(streamed) == 1000
    assert not set(streamed) & set(stream.train_rows)
    for batch, rows in zip(stream.batches, stream.rows, strict=True):
        assert batch["x"].tolist() == rows  # x is the row id
    assert set(stream.train["x"]) == set(stream.train_rows)
    assert stream.batches[1]["x"].mean() > stream.batches[0]["x"].mean() + 200  # biased high x
    # concept: the label of each row is rotated (0 <-> 1), the inputs are untouched
    assert ((stream.batches[2]["x"] % 2) == stream.batches[2]["target"]).all()
    assert ((stream.batches[3]["x"] % 2) != stream.batches[3]["target"]).all()
    stationary = make_stream(
        frame, target="target", task="classification", n_batches=6, batch_size=200, seed=1
    )
    assert stationary.phases == ["stationary"] * 6
    with pytest.raises(
        UsageError,
        match=r"1200 rows remain after the training part, but 7 "
        r"disjoint batches of 200 rows need 1400.*n_batches \(--batches\) at most 6",
    ):
        make_stream(frame, target="target", task="classification", n_batches=7, batch_size=200)


def test_a_regression_concept_shift_is_one_rule_for_every_batch() -> None:
    """A regression target was mirrored about each batch's own mean, so the labelling rule
    changed from batch to batch with the rows drawn (most under a covariate shift): a
    challenger that learned one batch's rule met another in the next (pmlb:547_no2, linear:
    the promoted model scored r2 -3.9 where the never-updated one scored -0.92). It is one rule
    now, mirrored about the training part's mean: y' = 2 m - y, the same m in every batch."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, 2000)
    frame = pd.DataFrame({"x": x, "target": 3 * x + rng.normal(0, 1, 2000)})
    stream = make_stream(
        frame, target="target", task="regression", n_batches=4, batch_size=200,
        shifts=[Shift("covariate", 1, 4.0), Shift("concept", 2)], seed=0,
    )
    centres = [
        (batch["target"].to_numpy() + frame["target"].to_numpy()[rows]) / 2
        for batch, rows in zip(stream.batches[2:], stream.rows[2:], strict=True)
    ]
    m = stream.train["target"].mean()
    assert all(np.allclose(c, m) for c in centres), [c.mean() for c in centres]
    assert np.allclose(stream.batches[1]["target"], frame["target"].to_numpy()[stream.rows[1]])


def test_time_stream_follows_the_time_column() -> None:
    frame = pd.DataFrame({"t": np.arange(100)[::-1], "x": np.arange(100.0), "target": [0, 1] * 50})
    stream = time_stream(frame, time_column="t", n_batches=None, batch_size=20)
    assert "t" not in stream.train.columns and len(stream.batches) == 3
    assert stream.train["x"].min() == 60  # the earliest times (highest x) train
    assert [b["x"].tolist() for b in stream.batches][0] == [59.0 - i for i in range(20)]
    with pytest.raises(UsageError, match=r"time_column \(--time-column\): no column 'when'"):
        time_stream(frame, time_column="when", n_batches=None, batch_size=20)


def _row(
    t: int, champion: float, frozen: dict, decision: str = "ok", promote: bool = False
) -> dict:
    retune = {"decision": "promote"} if promote else None
    return {
        "t": t,
        "decision": decision,
        "champion_score": champion,
        "baseline_score": 0.0,
        "frozen_scores": frozen,
        "retune": retune,
    }


def test_recovery_is_per_shift_against_the_model_in_place() -> None:
    rows = [
        _row(0, 0.9, {}),
        _row(1, 0.9, {}),
        _row(2, 0.5, {"0": 0.5}, "retune", promote=True),  # shift 0: 0.9 -> 0.5
        _row(3, 0.86, {"0": 0.5}),
        _row(4, 0.86, {"0": 0.5}),
        _row(5, 0.3, {"0": 0.2, "1": 0.3}, "retune"),  # shift 1, never promoted
        _row(6, 0.3, {"0": 0.2, "1": 0.3}, "warn"),
    ]
    summary = recovery(rows, [Shift("concept", 2), Shift("concept", 5)])
    first, second = summary["shifts"]
    assert first["before"] == pytest.approx(0.9) and first["first_promotion_at"] == 2
    assert first["after_promotion"]["frozen"] == pytest.approx(0.5)
    assert first["recovered_share"] == pytest.approx((0.86 - 0.5) / (0.9 - 0.5))
    assert second["before"] == pytest.approx(0.86)  # settled: after the first promotion
    assert second["recovered_share"] is None
    # without the rows' resamples there is no interval, so no verdict
    assert first["judgement"]["share"] == pytest.approx(0.9) and first["verdict"] is None
    assert summary["unrecovered"] == []
    assert summary["recovered_share"] == pytest.approx(0.9)
    assert summary["decisions"] == {"ok": 4, "warn": 1, "retune": 2}
    assert summary["non_ok_share"] == pytest.approx(3 / 7)


def _scored(
    spec: list[tuple[int, dict[str, float], bool]], n_rows: int, seed: int = 0
) -> tuple[list[dict], dict]:
    """Timeline rows and their resamples from per-row correctness: each batch (``rows``
    long) has its champion's and frozen models' accuracies exactly as given, the errors of
    each model on its own random rows; ``True``: a promotion on that batch."""
    rng = np.random.default_rng(seed)
    rows, resamples = [], {}
    for t, (_, scores, promote) in enumerate(spec):
        idx = rng.integers(0, n_rows, size=(1000, n_rows))
        y = np.zeros(n_rows, dtype=int)
        boot = {}
        for key, score in scores.items():
            pred = np.ones(n_rows, dtype=int)
            pred[rng.permutation(n_rows)[: round(score * n_rows)]] = 0
            boot[key] = resampled_scores("accuracy", y, pred, idx)
        resamples[t] = boot
        rows.append(
            {
                **_row(
                    t,
                    scores["champion"],
                    {k: v for k, v in scores.items() if k != "champion"},
                    promote=promote,
                ),
                "rows": n_rows,
            }
        )
    return rows, resamples


def test_recovery_is_judged_against_the_noise_of_its_rows() -> None:
    """A shift's cost and share recovered come with bootstrap intervals over the rows: a cost of
    one row in 100 is within noise, not "unrecovered" (before: any cost > 0 without a
    promotion was listed as unrecovered); a share is recovered or not only when its interval
    lies above or below the target."""
    # crx: the covariate shift costs one row in 100 and nothing is promoted
    rows, resamples = _scored(
        [(0, {"champion": 0.86}, False), (1, {"champion": 0.85, "0": 0.85}, False)], 100
    )
    summary = recovery(rows, [Shift("covariate", 1)], resamples=resamples)
    (shift,) = summary["shifts"]
    judgement = shift["judgement"]
    assert judgement["on"] == "segment" and judgement["rows"] == judgement["rows_before"] == 100
    assert judgement["lost"] == pytest.approx(0.01)
    low, high = judgement["lost_interval"]
    assert low < 0 < 0.01 < high and high - low > 0.05  # about +-0.1 at 100 rows a side
    assert shift["verdict"] == "within noise" and judgement["share_interval"] is None
    assert summary["unrecovered"] == [] and summary["verdicts"]["within noise"] == 1

    # 3 x 200 rows a side, a cost of 0.8: all won back is recovered with confidence; a share of
    # 0.9 is within noise; nothing won back is not recovered
    def judged(after: float) -> dict:
        spec = [(t, {"champion": 0.9}, False) for t in range(3)]
        spec += [(3, {"champion": 0.1, "0": 0.1}, True)]
        spec += [(t, {"champion": after, "0": 0.1}, False) for t in range(4, 7)]
        rows, resamples = _scored(spec, 200)
        return recovery(rows, [Shift("concept", 3)], resamples=resamples)

    full, nine_tenths = judged(0.9), judged(0.82)
    share = full["shifts"][0]["judgement"]
    assert full["shifts"][0]["verdict"] == "recovered" and share["on"] == "after_promotion"
    assert share["rows"] == 600 and share["share"] == pytest.approx(1.0)
    assert 0.9 <= share["share_interval"][0] < 1.0 < share["share_interval"][1]
    assert share["gap"] == pytest.approx(0.0)
    assert share["gap_interval"][0] < 0 < share["gap_interval"][1]
    assert nine_tenths["shifts"][0]["verdict"] == "within noise"
    assert nine_tenths["shifts"][0]["judgement"]["share"] == pytest.approx(0.9)
    assert nine_tenths["unrecovered"] == []
    none = judged(0.1)
    assert none["shifts"][0]["verdict"] == "not recovered" and none["unrecovered"] == [0]
    assert none["shifts"][0]["judgement"]["share_interval"][1] < 0.9
    # A shift the model in place gained from, with confidence, cost nothing.
    rows, resamples = _scored(
        [(t, {"champion": 0.6}, False) for t in range(3)]
        + [(t, {"champion": 0.9, "0": 0.9}, False) for t in range(3, 6)],
        200,
    )
    gained = recovery(rows, [Shift("covariate", 3)], resamples=resamples)
    assert gained["shifts"][0]["verdict"] == "no loss"
    assert gained["verdicts"] == {
        "recovered": 0, "not recovered": 0, "within noise": 0, "no loss": 1
    }


def test_resampled_r2_is_r2_of_each_resample() -> None:
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(3)
    y = rng.normal(size=60)
    pred = y + rng.normal(scale=0.5, size=60)
    idx = rng.integers(0, 60, size=(50, 60))
    idx[0] = 7  # a constant resample: r2_score's convention (0 unless predicted exactly)
    expected = [r2_score(y[i], pred[i]) for i in idx]
    assert resampled_scores("r2", y, pred, idx) == pytest.approx(expected)
    assert resampled_scores("r2", y, y, idx[:1])[0] == 1.0


def test_bad_shifts_are_refused() -> None:
    assert parse_shift("concept@5:2") == Shift("concept", 5, 2.0)
    with pytest.raises(UsageError, match=r"shifts \(--shift\): malformed 'concept5'"):
        parse_shift("concept5")
    with pytest.raises(UsageError, match=r"shifts \(--shift\): unknown shift 'drift'"):
        parse_shift("drift@3")
    with pytest.raises(
        UsageError, match=r"shifts \(--shift\): expected a batch in 0..3 .*received concept@9"
    ):
        make_stream(
            pd.DataFrame({"x": range(100), "target": [0, 1] * 50}),
            target="target",
            task="classification",
            n_batches=4,
            batch_size=10,
            shifts=[Shift("concept", 9)],
        )
    # Only categorical features: a covariate shift has no feature to bias; the message says
    # what to give instead.
    with pytest.raises(
        UsageError,
        match=r"shifts \(--shift\): a covariate shift .* every feature of the data is "
        r"categorical \(colour\); give concept shifts only \(--shift concept@BATCH\) or a "
        r"stationary stream \(--stationary\)",
    ):
        make_stream(
            pd.DataFrame({"colour": ["red", "blue"] * 50, "target": [0, 1] * 50}),
            target="target",
            task="classification",
            categorical=["colour"],
            n_batches=4,
            batch_size=10,
            shifts=[Shift("covariate", 1)],
        )


def test_a_stopped_simulation_says_so_and_the_same_command_starts_it_over(
    workdir: Path, cli, monkeypatch
) -> None:
    """Ctrl-C after 2 of 4 batches: the message names the partial simulation and the command;
    that command starts over in the same --out (it was refused: the model was registered), and
    a finished simulation is never replaced."""
    import tuneops.ops.simulate.loop as loop

    real, calls = loop.monitor_batch, [0]

    def stop_at_the_third(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "monitor_batch", stop_at_the_third)
    args = ("simulate", "--batches", "4", "--stationary", "--n-trials", "2", "--out", "sim")
    code, _, err = cli(*args)
    assert code == 130
    assert "Stopped by SIGINT after 2 of 4 batches: sim holds a partial simulation" in err, err
    assert "`tuneops simulate --batches 4 --n-trials 2 --out sim --stationary` starts it over" in err
    assert Path("sim/simulate.running").is_file() and not Path("sim/timeline.json").exists()
    monkeypatch.setattr(loop, "monitor_batch", real)
    code, _, err = cli(*args)
    assert code == 0, err
    assert Path("sim/timeline.json").is_file() and not Path("sim/simulate.running").exists()
    registry = Registry.open("simulate-phoneme", "sim/simulate.journal")
    assert len(registry.events("monitor")) == 4  # the stopped run's registry was replaced
    assert [v["version"] for v in registry.versions()][0] == 1
    code, _, err = cli(*args)
    assert code == 2 and "already registered" in err  # finished: kept as it is


def test_a_simulation_stopped_while_drawing_its_timeline_leaves_no_torn_png(
    workdir: Path, cli, monkeypatch
) -> None:
    """Ctrl-C while timeline.png was being written: it was drawn straight into --out, so half a
    PNG was left (and the message said nothing was written); now no timeline.png, no
    timeline.json, and the message is that of a stopped simulation."""
    from matplotlib.figure import Figure

    real = Figure.savefig

    def stop_half_way(self, fname, *args, **kwargs):
        real(self, fname, *args, **kwargs)
        if hasattr(fname, "truncate"):
            fname.truncate(100)
        else:
            with open(fname, "r+b") as handle:
                handle.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", stop_half_way)
    code, _, err = cli(
        "simulate", "--batches", "2", "--stationary", "--n-trials", "2", "--out", "sim"
    )
    assert code == 130, err
    assert "Stopped by SIGINT after 2 of 2 batches: sim holds a partial simulation" in err, err
    assert not Path("sim/timeline.png").exists() and not Path("sim/timeline.json").exists()
    assert [p.name for p in Path("sim").iterdir() if p.name.startswith(".timeline")] == []
    assert Path("sim/simulate.running").is_file()  # the same command starts it over
