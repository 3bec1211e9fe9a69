"""Simulation end to end on a small stream of a real PMLB dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tuneops.errors import UsageError
from tuneops.ops.registry import Registry
from tuneops.ops.simulate import Shift, make_stream, parse_shift


def test_simulate_cli_end_to_end(workdir: Path, cli) -> None:
    code, out, err = cli(
        "simulate", "--dataset", "pmlb:phoneme", "--batches", "7", "--batch-size", "150",
        "--shift", "covariate@2", "--shift", "concept@4", "--n-trials", "3", "--out", "sim",
    )
    assert code == 0, err
    timeline = json.loads(Path("sim/timeline.json").read_text())
    assert Path("sim/timeline.png").stat().st_size > 10_000
    rows = timeline["batches"]
    assert [r["phase"] for r in rows] == ["stationary"] * 2 + ["covariate"] * 2 + ["covariate+concept"] * 3
    assert [s["kind"] for s in timeline["shifts"]] == ["covariate", "concept"]
    # Before any promotion the champion is the never-updated model.
    assert rows[0]["champion"] == 1 and rows[0]["champion_score"] == rows[0]["baseline_score"]
    # The covariate shift (biased sampling of one feature) is seen in the drift scores.
    assert rows[2]["max_psi"] > 3 * rows[0]["max_psi"]
    # Concept drift (labels rotated) collapses the never-updated model, is detected on its first
    # batch, re-tuned and promoted; the new champion recovers.
    assert rows[4]["decision"] == "retune" and rows[4]["retune"]["decision"] == "promote"
    assert rows[4]["baseline_score"] < 0.4
    assert rows[5]["champion"] > 1 and rows[5]["champion_score"] > rows[5]["baseline_score"] + 0.3
    summary = timeline["summary"]
    assert summary["detected_at"] == 4 and summary["first_promotion_at"] == 4
    assert summary["recovered_share"] > 0.5
    registry = Registry.open("simulate-phoneme", "sim/simulate.journal")
    assert len(registry.events("monitor")) == 7
    assert registry.champion() == rows[-1]["champion"] or rows[-1]["retune"]
    assert "share of the loss recovered" in out
    # The same model name in the same storage is refused, nothing is run.
    code, _, err = cli("simulate", "--batches", "7", "--out", "sim")
    assert code == 2 and "already registered" in err


def test_stream_shifts_are_what_they_claim() -> None:
    rng_frame = pd.DataFrame({"x": range(2000), "y": [i % 7 for i in range(2000)], "target": [0, 1] * 1000})
    stream = make_stream(rng_frame, target="target", task="classification", n_batches=4, batch_size=200,
                         shifts=[Shift("covariate", 1, 4.0), Shift("concept", 3)], seed=0)
    assert len(stream.train) == 800 and all(len(b) == 200 for b in stream.batches)
    assert stream.batches[1]["x"].mean() > stream.batches[0]["x"].mean() + 200  # biased towards high x
    # concept: the label of each row is rotated (0 <-> 1), the inputs are untouched
    assert ((stream.batches[2]["x"] % 2) == stream.batches[2]["target"]).all()
    assert ((stream.batches[3]["x"] % 2) != stream.batches[3]["target"]).all()


def test_bad_shifts_are_refused() -> None:
    assert parse_shift("concept@5:2") == Shift("concept", 5, 2.0)
    with pytest.raises(UsageError, match="--shift: malformed 'concept5'"):
        parse_shift("concept5")
    with pytest.raises(UsageError, match="--shift: unknown shift 'drift'"):
        parse_shift("drift@3")
    with pytest.raises(UsageError, match=r"shift 'concept' at batch 9: expected 0 <= at < 4"):
        make_stream(pd.DataFrame({"x": range(100), "target": [0, 1] * 50}), target="target",
                    task="classification", n_batches=4, batch_size=10, shifts=[Shift("concept", 9)])
