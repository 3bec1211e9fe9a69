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


def test_openmp_threads_wait_passively_unless_the_environment_says_otherwise():
    """Before any OpenMP runtime loads (scikit-learn, LightGBM, XGBoost read it then): spinning
    threads burned 2.6-53x the CPU of one thread on a busy machine (bench_fit_threads.py)."""
    code = "import os, tuneops, sklearn.ensemble; print(os.environ['OMP_WAIT_POLICY'])"
    env = {"PYTHONPATH": str(ROOT / "src")}
    run = lambda env: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,  # noqa: E731
                                     check=True, env=env).stdout.strip()
    assert run(env) == "PASSIVE"
    assert run({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"  # the user's setting wins


def test_every_error_of_the_api_reference_table_is_importable_from_tuneops():
    """api.md lists IntegrityError (what load_model raises) in its errors table, which says
    everything is importable from `tuneops`; it was not (audit)."""
    import re

    import tuneops

    text = (ROOT / "docs" / "reference" / "api.md").read_text()
    table = text.split("## Errors", 1)[1].split("\n\n`", 1)[0]
    names = re.findall(r"^\| `(\w+)` \|", table, flags=re.M)
    assert "IntegrityError" in names and len(names) >= 7
    assert [n for n in names if not hasattr(tuneops, n)] == []
