from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_import_is_light():
    """`import tuneops` loads no heavy module; the API resolves lazily on first use."""
    code = (
        "import sys, tuneops; heavy = [m for m in ('optuna', 'sklearn', 'pandas', 'plotly', 'ray', 'lightgbm') "
        "if m in sys.modules]; print(','.join(heavy)); tuneops.load_spec; print('optuna' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT / "src")}).stdout.split()
    assert out == ["True"], out  # nothing heavy before use; the spec pulls optuna when used


def test_public_api_resolves():
    import tuneops

    for name in tuneops.__all__:
        assert getattr(tuneops, name) is not None
