from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuneops.data import DataWarning, detect_task, load_dataset, pmlb_dir
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


def test_a_pmlb_dataset_takes_the_task_pmlb_declares(tmp_path, monkeypatch):
    """As PMLB's 519_vinnie (a regression target of 16 integers on 380 rows, taken for classes)
    and confidence (6 classes on 72 rows, taken for a quantity)."""
    monkeypatch.setenv("TUNEOPS_PMLB_DIR", str(tmp_path))
    rng = np.random.default_rng(0)

    def pmlb(name: str, target, task: str) -> None:
        (tmp_path / name).mkdir()
        frame = pd.DataFrame({"x": rng.normal(size=len(target)), "target": target})
        frame.to_csv(tmp_path / name / f"{name}.tsv.gz", sep="\t", index=False)
        (tmp_path / name / "metadata.yaml").write_text(
            f"# generated\ndataset: {name}\ntask: {task}\ntarget:\n  type: x\n")

    pmlb("vinnie", rng.integers(0, 16, size=380), "regression")
    pmlb("confidence", np.repeat(np.arange(6), 12), "classification")
    vinnie = load_dataset("pmlb:vinnie")
    assert detect_task(vinnie.y) == "classification" and vinnie.task == "regression"
    confidence = load_dataset("pmlb:confidence")
    assert detect_task(confidence.y) == "regression" and confidence.task == "classification"
    assert load_dataset("pmlb:vinnie", task="classification").task == "classification"
    # the declared task is the `target` column's: another column chosen as target is detected
    assert load_dataset("pmlb:confidence", target="x").task == "regression"


def test_a_study_whose_automatic_task_changed_resumes_with_the_task_stated(tmp_path, monkeypatch):
    from conftest import tiny_spec

    from tuneops.errors import SpecError
    from tuneops.tuning import run

    monkeypatch.setenv("TUNEOPS_PMLB_DIR", str(tmp_path / "pmlb"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pmlb/tiny").mkdir(parents=True)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60),
                          "target": [0, 1, 2] * 20})
    frame.to_csv(tmp_path / "pmlb/tiny/tiny.tsv.gz", sep="\t", index=False)
    spec = tiny_spec(n_trials=2, data={"source": "pmlb:tiny"}, objectives=["accuracy"],
                     storage=str(tmp_path / "s.journal"))
    run(spec)  # detected: classification
    # the metadata now declares another task: `task: auto` would change what the study is
    (tmp_path / "pmlb/tiny/metadata.yaml").write_text("task: regression\n")
    with pytest.raises(SpecError):
        run({**spec, "search": {**spec["search"], "n_trials": 3}})
    # stating the task the study was run as resumes it
    pinned = {**spec, "data": {"source": "pmlb:tiny", "task": "classification"},
              "search": {**spec["search"], "n_trials": 3}}
    assert len(run(pinned).study.trials) == 3


def test_a_pmlb_dataset_without_readable_metadata_is_detected(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEOPS_PMLB_DIR", str(tmp_path))
    (tmp_path / "tiny").mkdir()
    frame = pd.DataFrame({"a": [(7 * i) % 40 for i in range(40)], "target": [0, 1, 2, 3] * 10})
    frame.to_csv(tmp_path / "tiny/tiny.tsv.gz", sep="\t", index=False)
    assert load_dataset("pmlb:tiny").task == "classification"  # no metadata.yaml
    (tmp_path / "tiny/metadata.yaml").write_text("task: [unclosed\n")
    assert load_dataset("pmlb:tiny").task == "classification"  # unreadable: detected
    (tmp_path / "tiny/metadata.yaml").write_text("task: regression\n")
    assert load_dataset("pmlb:tiny").task == "regression"


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


def test_a_target_with_missing_values_is_refused_with_the_count():
    frame = pd.DataFrame({"a": np.arange(20.0), "target": [0, 1] * 8 + [np.nan] * 4})
    expected = r"data.target: column 'target' of 'dataframe' has 4 missing value\(s\) in 20 rows"
    with pytest.raises(DataError, match=expected + ".*Remove those rows"):
        load_dataset(frame)


def test_empty_and_constant_columns_are_dropped_with_a_warning_naming_them(recwarn):
    frame = pd.DataFrame({
        "signal": np.arange(40.0),
        "empty": [np.nan] * 40,
        "same": ["x"] * 40,
        "zero": [0] * 40,
        "sparse": [np.nan] * 39 + [1.0],  # one value plus missing: kept, missingness informs
        "target": ["a", "b"] * 20,
    })
    named = r"entirely missing: 'empty'; a single value: 'same', 'zero'"
    with pytest.warns(DataWarning, match=r"Dropped 3 feature column\(s\) of 'dataframe'.*" + named):
        ds = load_dataset(frame)
    assert list(ds.X.columns) == ["signal", "sparse"]
    assert ds.dropped == ("empty", "same", "zero")
    assert ds.summary()["dropped"] == ["empty", "same", "zero"]
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    with pytest.raises(DataError, match="every feature column of 'dataframe' is entirely missing"):
        load_dataset(frame[["empty", "zero", "target"]])


def test_date_and_duration_columns_are_dropped_with_a_warning_that_says_what_to_derive(tmp_path):
    n = 60
    frame = pd.DataFrame({
        "amount": np.arange(n, dtype=float),
        "when": pd.date_range("2024-01-01", periods=n, freq="h"),
        "when_utc": pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC"),
        "waited": pd.to_timedelta(np.arange(n), unit="min"),
        "month": pd.period_range("2020-01", periods=n, freq="M"),
        "target": ["a", "b"] * (n // 2),
    })
    with pytest.warns(DataWarning, match=r"Dropped 4 feature column\(s\).*dates or durations.*"
                      r"'when' \(datetime64.*'waited' \(timedelta64.*derive numeric columns"):
        ds = load_dataset(frame)
    assert list(ds.X.columns) == ["amount"] and ds.categorical == ()
    assert ds.dropped == ("when", "when_utc", "waited", "month")
    # the same from a parquet file, which keeps the dtype (a CSV's dates are text)
    frame.drop(columns=["month"]).to_parquet(tmp_path / "events.parquet")
    with pytest.warns(DataWarning, match="dates or durations"):
        assert load_dataset(str(tmp_path / "events.parquet"), target="target").dropped == ("when", "when_utc", "waited")
    with pytest.raises(DataError, match="constant, an identifier, or a date or duration.*Derive numeric columns"):
        load_dataset(frame[["when", "waited", "target"]])


def test_a_text_column_with_a_different_value_in_every_row_is_dropped_as_an_identifier():
    n = 40
    frame = pd.DataFrame({
        "amount": np.arange(n, dtype=float),
        "customer": [f"cust-{i:04d}" for i in range(n)],
        "note": [f"note {i}" for i in range(n - 1)] + [None],  # distinct where present
        "colour": ["red", "green"] * (n // 2),
        # a distinct number per row is a number, not an identifier (a row count is said: below)
        "code": np.random.default_rng(0).permutation(n),
        "target": ["a", "b"] * (n // 2),
    })
    with pytest.warns(DataWarning, match=r"an identifier no model can learn from: 'customer', 'note'"):
        ds = load_dataset(frame)
    assert list(ds.X.columns) == ["amount", "colour", "code"]
    assert ds.dropped == ("customer", "note")
    # in a handful of rows distinct text says little: kept
    small = frame.iloc[:12].assign(target=["a", "b"] * 6)
    assert "customer" in load_dataset(small).X.columns


def test_pmlb_directory_comes_from_the_variable_or_the_documented_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNEOPS_PMLB_DIR", raising=False)
    assert pmlb_dir() == Path("../shared/datasets/pmlb")  # relative to the working directory
    unset = r"TUNEOPS_PMLB_DIR is not set and the default '../shared/datasets/pmlb'"
    with pytest.raises(DataError, match=r"'pmlb:iris' needs a local PMLB directory, but " + unset
                       + ".*Set TUNEOPS_PMLB_DIR"):
        load_dataset("pmlb:iris")
    monkeypatch.setenv("TUNEOPS_PMLB_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"TUNEOPS_PMLB_DIR='.*nowhere' does not exist"):
        load_dataset("pmlb:iris")
    (tmp_path / "shared" / "datasets" / "pmlb" / "tiny").mkdir(parents=True)
    frame = pd.DataFrame({"a": range(12), "target": [0, 1] * 6})
    frame.to_csv(tmp_path / "shared/datasets/pmlb/tiny/tiny.tsv.gz", sep="\t", index=False)
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    monkeypatch.delenv("TUNEOPS_PMLB_DIR")
    assert len(load_dataset("pmlb:tiny").X) == 12


def test_infinite_values_and_duplicated_columns_are_refused_before_anything_runs(tmp_path):
    frame = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3, "target": [0, 1] * 20})
    frame.loc[[3, 7, 9], "a"] = np.inf
    frame.loc[5, "b"] = -np.inf
    path = tmp_path / "inf.csv"
    frame.to_csv(path, index=False)  # written as "inf" / "-inf", read back as infinities
    with pytest.raises(DataError, match=r"infinite values in column\(s\) 'a' \(3\), 'b' \(1\)"):
        load_dataset(str(path), target="target")
    twice = pd.DataFrame([[1.0, 2.0, i % 2] for i in range(40)], columns=["a", "a", "target"])
    with pytest.raises(DataError, match="several columns named 'a'"):
        load_dataset(twice)


def test_a_file_with_a_column_named_target_needs_no_data_target(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"a": np.arange(40.0), "target": [0, 1] * 20}).to_csv(path, index=False)
    assert load_dataset(str(path)).y.tolist() == [0, 1] * 20


def test_a_csv_with_a_repeated_header_is_refused(tmp_path):
    """pandas reads 'label,label' as label and label.1: the target's copy from a join became a
    feature (accuracy 1.0 in every trial) and the model then failed on fresh rows."""
    import pytest

    from tuneops.errors import DataError

    path = tmp_path / "joined.csv"
    path.write_text("a,b,label,label\n" + "".join(f"{i},{i % 3},{i % 2},{i % 2}\n" for i in range(40)))
    with pytest.raises(DataError, match=r"several columns named 'label'.*pandas would read"):
        load_dataset(str(path), target="label")


def test_a_category_target_with_an_unused_level_is_not_called_a_rare_class():
    """A level no row uses was refused as 'a class with a single row'."""
    import pandas as pd

    from tuneops.measure import make_folds

    y = pd.Series(pd.Categorical(["high", "low"] * 20, categories=["high", "low", "unknown"]))
    assert len(make_folds(y, "classification", 3, 0)) == 3  # 'unknown' has no row at all


def test_a_column_that_counts_the_rows_is_said():
    """A row number on a file sorted by the target: CV accuracy 1.0, 25% on new rows, and
    nothing said. Kept (a time step counts rows too), with a warning naming it."""
    n = 40
    frame = pd.DataFrame({
        "x": np.random.default_rng(0).normal(size=n),
        "row_id": np.arange(n),
        "target": [0] * (n // 2) + [1] * (n // 2),  # sorted by the target
    })
    with pytest.warns(DataWarning, match=r"'row_id' of 'dataframe' count the rows"):
        data = load_dataset(frame)
    assert "row_id" in data.X.columns


def test_dates_written_as_text_are_dropped_as_dates(tmp_path):
    """The guide says date columns are dropped; a CSV's dates became 60 categories."""
    n = 60
    frame = pd.DataFrame({
        "x": np.random.default_rng(0).normal(size=n),
        "signup": [f"2020-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(n)],
        "seen": [f"{1 + i % 28}/{1 + i % 12}/2021 10:{i % 60:02d}" for i in range(n)],
        "code": [f"A-{i % 5}" for i in range(n)],  # text with a dash: no date
        "target": [0, 1] * (n // 2),
    })
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.warns(DataWarning, match=r"dates or durations.*'signup'.*'seen'"):
        data = load_dataset(str(tmp_path / "d.csv"), target="target")
    assert list(data.X.columns) == ["x", "code"]


def test_a_column_of_text_and_numbers_is_refused_and_a_marker_in_numbers_is_said():
    """Mixed text and numbers failed every trial in the encoder without naming the column; a
    '?' among numbers made the column categories without a word."""
    n = 40
    frame = pd.DataFrame({
        "x": np.random.default_rng(0).normal(size=n),
        "kind": ["a", 3] * (n // 2),
        "target": [0, 1] * (n // 2),
    })
    with pytest.raises(DataError, match=r"column 'kind' of 'dataframe' holds both text and"):
        load_dataset(frame)
    marked = frame.assign(kind=[str(i % 9) for i in range(n - 2)] + ["?", "?"])
    with pytest.warns(DataWarning, match=r"'kind' of 'dataframe' holds numbers but also 1 text value\(s\) \('\?' in 2 row\(s\)\)"):
        load_dataset(marked)


def _coded(tmp_path: Path) -> Path:
    """A CSV whose ``region`` is a code (1-4: no quantity) beside a real quantity, and PMLB's
    layout of the same rows with a metadata.yaml declaring the code categorical."""
    rng = np.random.default_rng(0)
    n = 120
    region = rng.integers(1, 5, size=n)
    frame = pd.DataFrame(
        {
            "region": region,
            "income": rng.normal(size=n),
            "flag": rng.integers(0, 2, size=n),
            # the class follows regions 1 and 4 together: no threshold on the code separates them
            "target": np.isin(region, (1, 4)).astype(int),
        }
    )
    frame.to_csv(tmp_path / "coded.csv", index=False)
    (tmp_path / "pmlb" / "coded").mkdir(parents=True)
    frame.to_csv(tmp_path / "pmlb" / "coded" / "coded.tsv.gz", sep="\t", index=False)
    (tmp_path / "pmlb" / "coded" / "metadata.yaml").write_text(
        "dataset: coded\ntask: classification\nfeatures:\n"
        "  - name: region\n    type: nominal\n  - name: income\n    type: continuous\n"
        "  - name: flag\n    type: binary\n"
    )
    return tmp_path / "coded.csv"


def test_named_columns_of_codes_are_categories(tmp_path, monkeypatch):
    path = _coded(tmp_path)
    plain = load_dataset(str(path))
    assert plain.categorical == ()  # numbers are quantities unless named
    coded = load_dataset(str(path), categorical=["region"])
    assert coded.categorical == ("region",) and coded.numeric == ("income", "flag")
    assert coded.X["region"].dtype == object and coded.fingerprint != plain.fingerprint
    # PMLB declares its feature types: categorical and nominal ones are categories
    monkeypatch.setenv("TUNEOPS_PMLB_DIR", str(tmp_path / "pmlb"))
    assert load_dataset("pmlb:coded", categorical="declared").categorical == ("region",)
    assert load_dataset("pmlb:coded").categorical == ()


def test_categorical_columns_that_are_not_features_are_refused(tmp_path, monkeypatch):
    path = str(_coded(tmp_path))
    with pytest.raises(DataError, match=r"data.categorical: .*'regoin'.*closest: region"):
        load_dataset(path, categorical=["regoin"])
    with pytest.raises(DataError, match=r"'target' is the target column"):
        load_dataset(path, categorical=["target"])
    with pytest.raises(DataError, match=r"'declared' .* is not a PMLB source"):
        load_dataset(path, categorical="declared")
    monkeypatch.setenv("TUNEOPS_PMLB_DIR", str(tmp_path / "pmlb"))
    (tmp_path / "pmlb" / "coded" / "metadata.yaml").write_text("task: classification\n")
    with pytest.raises(DataError, match=r"lists none; list the categorical columns"):
        load_dataset("pmlb:coded", categorical="declared")


def test_columns_named_in_drop_are_left_out_and_listed(tmp_path):
    path = str(_coded(tmp_path))
    data = load_dataset(path, drop=["flag"], categorical=["region"])
    assert list(data.X.columns) == ["region", "income"] and data.dropped == ("flag",)
    assert data.fingerprint == load_dataset(
        pd.read_csv(path).drop(columns="flag"), categorical=["region"]
    ).fingerprint
    with pytest.raises(DataError, match=r"data.drop: .*'flg'.*closest: flag"):
        load_dataset(path, drop=["flg"])
    with pytest.raises(DataError, match=r"data.drop: 'target' is the target column"):
        load_dataset(path, drop=["target"])
    with pytest.raises(DataError, match=r"data.drop: leaves no feature"):
        load_dataset(path, drop=["region", "income", "flag"])
