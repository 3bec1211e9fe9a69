"""The benchmarks' pure helpers: docs section rewriting, hypervolume, error counting.

The benchmarks themselves are timed runs (benchmarks/, results in docs/benchmarks.md), never
timed tests; these checks keep their bookkeeping honest and run in well under a second.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _common import DOC, SECTION, cv, render_table, replace_block  # noqa: E402
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
