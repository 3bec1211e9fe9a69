"""Shared fixtures: a private working directory per test, and the CLI in-process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# The few PMLB datasets the tests read are vendored in tests/data/pmlb (see its README), so a
# fresh clone anywhere runs the suite; TUNEOPS_PMLB_DIR, when set, points elsewhere.
PMLB_DIR = ROOT / "tests" / "data" / "pmlb"
if not os.environ.get("TUNEOPS_PMLB_DIR"):
    os.environ["TUNEOPS_PMLB_DIR"] = str(PMLB_DIR)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory so the default store and outputs land in tmp."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``tuneops ARGS`` in-process; returns (exit code, stdout, stderr)."""
    from tuneops.cli import main

    def invoke(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return invoke


def tiny_spec(**changes) -> dict:
    """A spec that runs in about a second."""
    spec = {
        "study": "tiny",
        "data": {"source": "sklearn:iris"},
        "model": {"family": "knn"},
        "objectives": ["accuracy"],
        "search": {"n_trials": 4, "cv_folds": 2, "seed": 0},
    }
    for key, value in changes.items():
        if key in ("n_trials", "n_workers", "sampler", "pruner", "cv_folds", "seed", "timeout_s"):
            spec["search"][key] = value
        else:
            spec[key] = value
    return spec


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
