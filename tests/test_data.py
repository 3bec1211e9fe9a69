from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tuneops.data import detect_task, load_dataset, pmlb_dir
from tuneops.errors import DataError


def test_sklearn_source():
    ds = load_dataset("sklearn:breast_cancer")
    assert ds.X.shape == (569, 30) and ds.task == "classification" and ds.n_classes == 2
    assert ds.fingerprint.startswith("sha256:")
    assert load_dataset("sklearn:diabetes").task == "regression"


def test_pmlb_source_reads_the_local_directory():
    assert pmlb_dir().is_dir()
    ds = load_dataset("pmlb:485_analcatdata_vehicle")
    assert len(ds.X) == 48 and ds.task == "regression"


def test_fingerprint_is_content_not_path(tmp_path):
    frame = load_dataset("sklearn:iris").X.assign(target=load_dataset("sklearn:iris").y)
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_parquet(tmp_path / "b.parquet", index=False)
    a = load_dataset(str(tmp_path / "a.csv"), target="target")
    b = load_dataset(str(tmp_path / "b.parquet"), target="target")
    assert a.fingerprint == b.fingerprint
    changed = frame.copy()
    changed.iloc[0, 0] += 1
    assert load_dataset(changed).fingerprint != a.fingerprint


def test_categorical_and_missing_values_are_kept_for_the_pipeline():
    frame = pd.DataFrame({
        "colour": ["red", "blue", None, "red"] * 10,
        "size": [1.0, np.nan, 3.0, 4.0] * 10,
        "target": ["a", "b"] * 20,
    })
    ds = load_dataset(frame)
    assert ds.categorical == ("colour",) and ds.numeric == ("size",)
    assert ds.X["size"].isna().sum() == 10


def test_task_detection():
    assert detect_task(pd.Series([0, 1, 2] * 20)) == "classification"
    assert detect_task(pd.Series(np.linspace(0, 1, 60))) == "regression"
    assert detect_task(pd.Series(["x", "y"] * 5)) == "classification"


def test_bad_sources(tmp_path):
    with pytest.raises(DataError, match="unknown scikit-learn dataset 'breast'"):
        load_dataset("sklearn:breast")
    with pytest.raises(DataError, match="PMLB dataset 'nosuch' is not in"):
        load_dataset("pmlb:nosuch")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "missing.csv"), target="y")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_dataset(str(empty), target="y")
    frame = tmp_path / "f.csv"
    pd.DataFrame({"a": range(20), "b": range(20)}).to_csv(frame, index=False)
    with pytest.raises(DataError, match="column 'label' does not exist.*columns: a, b"):
        load_dataset(str(frame), target="label")
    with pytest.raises(DataError, match="must name its target column"):
        load_dataset(str(frame))
    with pytest.raises(DataError, match="at least 10 are needed"):
        load_dataset(pd.DataFrame({"a": [1, 2], "target": [0, 1]}))
