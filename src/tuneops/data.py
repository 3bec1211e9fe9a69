"""Data sources, task detection and the data fingerprint.

Sources:

* ``sklearn:NAME`` - a dataset bundled with scikit-learn (``breast_cancer``, ``iris``, ``wine``,
  ``digits``, ``diabetes``).
* ``pmlb:NAME`` - a Penn ML Benchmark dataset read from a local PMLB directory
  (:func:`pmlb_dir`): the ``TUNEOPS_PMLB_DIR`` environment variable, else
  ``../shared/datasets/pmlb`` relative to the working directory. Nothing is downloaded.
  With ``task: auto`` the task is the one PMLB's ``metadata.yaml`` declares.
* a ``.csv``, ``.tsv``, ``.csv.gz``, ``.tsv.gz`` or ``.parquet`` path with a target column.
* a pandas DataFrame (Python API) with a target column.

What is checked, and why:

* A target with missing values is refused (:class:`DataError` with the count): a row without
  a label cannot be scored, and dropping rows silently changes the data a user thinks they
  tuned on. Remove or label those rows first.
* Feature columns that are entirely missing or hold a single value carry no information;
  they are dropped with a :class:`DataWarning` naming them, and listed in the dataset summary
  (``dropped``, recorded in ``results.json``). So are text columns with a different value in
  every row (identifiers, free text: as categories every test value would be unseen), and
  date, time and duration columns: taken
  as categories, nearly every value would be one never seen in training (a one-hot table of
  timestamps that informs no model, and whose unseen values sent every serving call through
  scikit-learn's slow path: 13.5 of 14.4 ms of a forest's one-row latency); derive numeric
  columns from them (the hour, the day of the week, days since an event) to use them.
* Other missing values and categorical columns are kept as they are: the model pipeline
  imputes and encodes them inside each CV fold, so no information leaks between folds.
* Task detection: text, boolean and categorical targets, and integer targets with few
  distinct values, are classification; set ``data.task`` when that guess is wrong.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tuneops.errors import DataError, unknown_name

__all__ = [
    "Dataset",
    "DataWarning",
    "load_dataset",
    "load_section",
    "pmlb_dir",
    "fingerprint",
    "SKLEARN_DATASETS",
]

#: The environment variable naming the local PMLB directory, and the default when it is unset.
PMLB_ENV = "TUNEOPS_PMLB_DIR"
PMLB_DEFAULT = Path("..") / "shared" / "datasets" / "pmlb"


class DataWarning(UserWarning):
    """The data was changed on load (columns dropped); the message names what and why."""


SKLEARN_DATASETS = {
    "breast_cancer": "load_breast_cancer",
    "iris": "load_iris",
    "wine": "load_wine",
    "digits": "load_digits",
    "diabetes": "load_diabetes",
}
_MIN_ROWS = 10


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features, target, task type and a content fingerprint."""

    name: str
    X: pd.DataFrame
    y: pd.Series
    task: str
    fingerprint: str
    categorical: tuple[str, ...] = field(default=())
    dropped: tuple[str, ...] = field(default=())  # feature columns dropped as uninformative

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(c for c in self.X.columns if c not in self.categorical)

    @property
    def n_classes(self) -> int:
        return int(self.y.nunique()) if self.task == "classification" else 0

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": int(len(self.X)),
            "columns": int(self.X.shape[1]),
            "task": self.task,
            "n_classes": self.n_classes,
            "categorical": list(self.categorical),
            "dropped": list(self.dropped),
            "fingerprint": self.fingerprint,
        }


def pmlb_dir() -> Path:
    """The local PMLB directory: ``$TUNEOPS_PMLB_DIR``, else ``../shared/datasets/pmlb``.

    The default is relative to the working directory (where a checkout next to a ``shared/``
    data folder runs); it is not searched for elsewhere, so the same command reads the same
    data on every machine. :func:`load_dataset` says which of the two was tried when the
    directory does not exist.
    """
    env = os.environ.get(PMLB_ENV)
    return Path(env) if env else PMLB_DEFAULT


def fingerprint(X: pd.DataFrame, y: pd.Series) -> str:
    """SHA-256 of the content (values, column names, dtypes, order), not of a file path."""
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in X.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(X, index=False).values.tobytes())
    digest.update(pd.util.hash_pandas_object(y.rename("target"), index=False).values.tobytes())
    return "sha256:" + digest.hexdigest()


def detect_task(y: pd.Series) -> str:
    """Classification for text, boolean, categorical, or integer targets with few values."""
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    values = y.dropna()
    is_integral = bool(np.all(np.mod(values, 1) == 0))
    if is_integral and values.nunique() <= max(2, min(30, int(0.05 * len(values)) + 2)):
        return "classification"
    return "regression"


def load_dataset(
    source: str | pd.DataFrame,
    *,
    target: str | None = None,
    task: str = "auto",
    name: str | None = None,
    categorical: str | Sequence[str] | None = None,
    drop: Sequence[str] | None = None,
    advice: str | None = None,
) -> Dataset:
    """Load a data source into a :class:`Dataset`.

    ``categorical``: feature columns of numbers to take as categories (codes), or ``"declared"``
    for those a PMLB source's ``metadata.yaml`` declares categorical or nominal (PMLB stores
    every feature as a number). Text, boolean and category-typed columns are categories anyway.
    ``drop``: feature columns to leave out (listed in ``dropped``, so a batch or request that
    still holds them is accepted and they are ignored). ``advice``: what the warning of a
    dropped column tells the user to do (default: remove it from the data), for rows a user
    cannot change so (a re-tuning's recent rows, which must hold the champion's features).

    Raises:
        DataError: the source is unknown, missing, empty, or has no such target column; a
            column named in ``categorical`` is not a feature; ``"declared"`` for a source that
            declares nothing.
    """
    default_target: str | None
    declared: str | None = None  # the task the source itself declares (PMLB's metadata)
    codes: Sequence[str] = () if categorical is None or categorical == "declared" else categorical
    if isinstance(source, pd.DataFrame):
        frame, default_target, name = source, "target", name or "dataframe"
    elif not isinstance(source, str):
        raise DataError(
            f"data.source: expected a string or a DataFrame, received {type(source).__name__}."
        )
    elif source.startswith("sklearn:"):
        frame, default_target = _sklearn(source.removeprefix("sklearn:")), "target"
    elif source.startswith("pmlb:"):
        frame, declared = _pmlb(source.removeprefix("pmlb:"))
        default_target = "target"
        if categorical == "declared":
            codes = _pmlb_categorical(pmlb_dir() / source.removeprefix("pmlb:") / "metadata.yaml")
    else:
        frame = _file(Path(source))
        default_target = "target" if "target" in frame.columns else None  # as spec.md says
    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if duplicated:
        raise DataError(
            f"data: {name or source!r} has several columns named "
            f"{', '.join(map(repr, duplicated))}; expected one column per name. Rename or drop "
            "the duplicates and load the data again."
        )
    target = target or default_target
    if target is None:
        raise DataError(
            f"data.target: {source!r} is a file, so the spec must name its target column; "
            f"columns: {', '.join(map(str, frame.columns[:20]))}."
        )
    if target not in frame.columns:
        raise DataError(
            f"data.target: column {target!r} does not exist in {name or source!r}; columns: "
            f"{', '.join(map(str, frame.columns[:30]))}. Set data.target to one of them."
        )
    missing = int(frame[target].isna().sum())
    if missing:
        raise DataError(
            f"data.target: column {target!r} of {name or source!r} has {missing} missing "
            f"value(s) in {len(frame)} rows; expected a label on every row. Remove those rows "
            "(or fill in their labels) and load the data again."
        )
    if len(frame) < _MIN_ROWS:
        raise DataError(
            f"data: {name or source!r} has {len(frame)} rows with a target; at least {_MIN_ROWS} "
            "are needed to cross-validate."
        )
    X = frame.drop(columns=[target]).reset_index(drop=True)
    if X.shape[1] == 0:
        raise DataError(f"data: {name or source!r} has no feature columns besides {target!r}.")
    _refuse_infinite(frame, name or str(source))
    X.columns = [str(c) for c in X.columns]
    if categorical == "declared" and not (isinstance(source, str) and source.startswith("pmlb:")):
        raise DataError(
            f"data.categorical: 'declared' takes the categorical columns a PMLB source declares, "
            f"but {name or source!r} is not a PMLB source; list its categorical columns instead "
            "(data.categorical: [COLUMN, ...])."
        )
    left_out = tuple(_feature_names(drop or (), X, target, name or str(source), "data.drop"))
    if len(left_out) == X.shape[1]:
        raise DataError(
            f"data.drop: leaves no feature of {name or source!r}; drop fewer columns."
        )
    X = X.drop(columns=list(left_out))
    for c in _feature_names(codes, X, target, name or str(source)):
        X[c] = X[c].astype("object")  # codes as categories: 3 and 3.0 stay the same category
    X, dropped = _drop_uninformative(X, name or str(source), advice)
    dropped = left_out + dropped
    y = frame[target].reset_index(drop=True)
    # PMLB's declared task describes its `target` column, not another column chosen as target
    detected = (declared if target == default_target else None) or detect_task(y)
    if task == "auto":
        task = detected
    elif task == "classification" and detected == "regression" and y.nunique() > 100:
        raise DataError(
            f"data.task: classification was requested but target {target!r} has {y.nunique()} "
            "distinct numeric values; set data.task to regression or auto."
        )
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise DataError(
            f"data.task: regression needs a numeric target, but {target!r} is {y.dtype}; set "
            "data.task to classification or auto."
        )
    if task == "classification" and y.nunique() < 2:
        raise DataError(f"data: target {target!r} has a single class; there is nothing to learn.")
    categorical = tuple(
        c
        for c in X.columns
        if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])
    )
    for c in categorical:  # one representation for text and categories, robust to NaN
        X[c] = X[c].astype("object").where(X[c].notna(), np.nan)
    _check_categories(X, categorical, name or str(source))
    return Dataset(
        name=name or source,
        X=X,
        y=y,
        task=task,
        fingerprint=fingerprint(X, y),
        categorical=categorical,
        dropped=dropped,
    )


def _feature_names(
    columns: Sequence[str], X: pd.DataFrame, target: str, name: str, field: str = "data.categorical"
) -> Sequence[str]:
    """``columns`` (``data.categorical`` or ``data.drop``: ``field``), each checked to be a
    feature of ``X``.

    Raises:
        DataError: naming a column that is the target or not in the data, with the closest.
    """
    for c in columns:
        if c == target:
            raise DataError(
                f"{field}: {c!r} is the target column of {name!r}, not a feature; remove it "
                f"from {field}."
            )
        if c not in X.columns:
            close = difflib.get_close_matches(c, list(X.columns), n=3)
            raise DataError(
                f"{field}: expected feature columns of {name!r}, received {c!r}, which "
                "is not one"
                + (f"; closest: {', '.join(close)}." if close else f"; columns: "
                   f"{', '.join(map(str, X.columns[:30]))}.")
                + f" Fix the name in {field}."
            )
    return columns


def load_section(section: Any, frame: pd.DataFrame | None = None) -> Dataset:
    """The data a spec's ``data`` section (:class:`tuneops.spec.DataSpec`) names, or ``frame``
    in its place (the Python API's rows; the section's source is then their name)."""
    return load_dataset(
        section.source if frame is None else frame,
        target=section.target,
        task=section.task,
        name=None if frame is None else section.source,
        categorical=section.categorical,
        drop=section.drop,
    )


def _refuse_infinite(frame: pd.DataFrame, name: str) -> None:
    """Refuse infinite values (``inf`` in a CSV, a division by zero upstream): no estimator
    accepts them, and every trial would fail on them.

    Raises:
        DataError: naming the columns and how many values each holds.
    """
    numeric = frame.select_dtypes(include="number")
    if numeric.empty:
        return
    counts = np.isinf(numeric.to_numpy(dtype=float, na_value=np.nan)).sum(axis=0)
    bad = [f"{c!r} ({int(n)})" for c, n in zip(numeric.columns, counts, strict=True) if n]
    if bad:
        raise DataError(
            f"data: {name!r} has infinite values in column(s) {', '.join(bad[:10])}"
            f"{' and more' if len(bad) > 10 else ''}; expected finite numbers. Replace them with "
            "a finite value, or leave them empty (missing values are imputed), and load the data "
            "again."
        )


def _drop_uninformative(
    X: pd.DataFrame, name: str, advice: str | None = None
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Drop feature columns that are entirely missing or hold one value, with a DataWarning.

    Such a column cannot inform a model, and an all-missing one makes numpy's nanmean warn
    "Mean of empty slice" inside the imputer on every fold.

    Raises:
        DataError: no feature column is left.
    """
    empty = [c for c in X.columns if X[c].isna().all()]
    dates = [
        c for c in X.columns if c not in empty and (_is_time(X[c]) or _is_date_text(X[c]))
    ]
    constant = [
        c
        for c in X.columns
        if c not in empty and c not in dates and X[c].nunique(dropna=False) == 1
    ]
    ids = [c for c in X.columns if c not in empty + dates + constant and _is_identifier(X[c])]
    taken = empty + dates + constant + ids
    rows = [c for c in X.columns if c not in taken and _is_row_number(X[c])]
    if rows:  # kept (a time step is a row count too), but said: often a leak
        warnings.warn(
            f"Feature column(s) {', '.join(map(repr, rows))} of {name!r} count the rows "
            "(consecutive integers in the file's order). A row number tells the model where a "
            "row sits in the file, not what it is: on a file sorted by the target it scores "
            "perfectly in cross-validation and not on new rows. Drop it unless the order means "
            "something (time).",
            DataWarning,
            stacklevel=3,
        )
    gone = empty + dates + constant + ids
    if not gone:
        return X, ()
    if len(gone) == X.shape[1]:
        raise DataError(
            f"data: every feature column of {name!r} is entirely missing, constant, an identifier, "
            f"or a date or duration ({', '.join(map(repr, gone))}); there is nothing to learn "
            "from. Derive "
            "numeric columns from the dates (the hour, the day of the week, days since an "
            "event) and load the data again."
        )
    parts = []
    if empty:
        parts.append(f"entirely missing: {', '.join(map(repr, empty))}")
    if constant:
        parts.append(f"a single value: {', '.join(map(repr, constant))}")
    if ids:
        parts.append(
            f"text with a different value in every row, an identifier no model can learn from: "
            f"{', '.join(map(repr, ids))}"
        )
    if dates:
        parts.append(
            f"dates or durations, which tuneops does not turn into features: "
            f"{', '.join(f'{c!r} ({X[c].dtype})' for c in dates)}; derive numeric columns from "
            "them (the hour, the day of the week, days since an event) to use them"
        )
    warnings.warn(
        f"Dropped {len(gone)} feature column(s) of {name!r} that cannot inform a "
        f"model ({'; '.join(parts)}). "
        + (advice or "Remove them from the data to silence this warning."),
        DataWarning,
        stacklevel=3,
    )
    return X.drop(columns=gone), tuple(gone)


#: Fewest non-missing values before a text column whose values are all distinct is taken for
#: an identifier (in a handful of rows, distinct values say little).
_ID_MIN_VALUES = 20


def _is_identifier(column: pd.Series) -> bool:
    """A text (or categorical) column whose non-missing values are all distinct: an ID or free
    text. As a category every test value would be unseen (a one-hot table of arbitrary IDs)."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return False
    values = column.dropna()
    return len(values) >= _ID_MIN_VALUES and values.nunique() == len(values)


def _check_categories(X: pd.DataFrame, categorical: Sequence[str], name: str) -> None:
    """Refuse a text column that also holds numbers (every trial failed in the encoder, the
    column unnamed), and say when a column of numbers holds a few text tokens (a missing-value
    marker such as '?': the column is read as categories, and a file without the marker then
    reads it as numbers, every value unseen).

    Raises:
        DataError: a column mixing text and numbers.
    """
    for c in categorical:
        values = X[c].dropna()
        kind = pd.api.types.infer_dtype(values, skipna=True)  # in C: no Python call per value
        if kind not in ("string", "empty") and not kind.startswith("mixed"):
            continue  # numbers, booleans: no text to mix or to hold a marker
        text = values.map(lambda v: isinstance(v, str)) if kind != "string" else None
        if text is not None and text.any():
            example = (values[text].iloc[0], values[~text].iloc[0])
            raise DataError(
                f"data: column {c!r} of {name!r} holds both text and other values (such as "
                f"{example[0]!r} and {example[1]!r}); expected one kind of value per column. "
                "Write them all as text (or all as numbers) and load the data again."
            )
        if text is not None or len(values) < _ID_MIN_VALUES:
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        odd = values[numbers.isna()]
        if len(odd) and len(odd) <= 0.1 * len(values) and odd.nunique() <= 3:
            warnings.warn(
                f"Column {c!r} of {name!r} holds numbers but also {odd.nunique()} text "
                f"value(s) ({', '.join(map(repr, odd.unique()[:3]))} in {len(odd)} row(s)), so it "
                "is read as categories, not as a number. If that text marks a missing value, "
                "leave those cells empty in the file.",
                DataWarning,
                stacklevel=3,
            )


def _is_row_number(column: pd.Series) -> bool:
    """An integer column counting the rows: consecutive and in the rows' order. On a file
    sorted by the target it predicts the target perfectly (CV accuracy 1.0, 25% on new rows),
    which nothing said."""
    if not pd.api.types.is_integer_dtype(column) or pd.api.types.is_bool_dtype(column):
        return False
    if len(column) < _ID_MIN_VALUES or column.isna().any():
        return False
    values = column.to_numpy()
    steps = np.diff(values)
    return bool((steps == 1).all() or (steps == -1).all())


# A date (2020-01-17, 2020/01/17, 17/01/2020, 1/17/20), with a time or not
_DATE_TEXT = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}([ T]\d{1,2}:\d{2}.*)?"
    r"|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}([ T].*)?"
)


def _is_date_text(column: pd.Series) -> bool:
    """A text column of dates as a CSV holds them (the guide says date columns are dropped,
    and only a Parquet file's datetime columns were: CSV dates became 60 categories). Judged
    on up to 200 values; all must read as dates."""
    if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return False
    values = column.dropna()
    if len(values) < _ID_MIN_VALUES:
        return False
    sample = values.iloc[:: max(1, len(values) // 200)]
    return all(isinstance(v, str) and _DATE_TEXT.fullmatch(v.strip()) for v in sample)


def _is_time(column: pd.Series) -> bool:
    """A date, time or duration column (datetime64 with or without a zone, timedelta, period)."""
    dtype = column.dtype
    return (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    )


def _sklearn(name: str) -> pd.DataFrame:
    if name not in SKLEARN_DATASETS:
        raise DataError(
            unknown_name("scikit-learn dataset", name, SKLEARN_DATASETS, field="data.source")
        )
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, SKLEARN_DATASETS[name])(as_frame=True)
    frame = bunch.frame.copy()
    return frame


def _pmlb(name: str) -> tuple[pd.DataFrame, str | None]:
    """A PMLB dataset's rows, and the task its ``metadata.yaml`` declares (None when absent):
    PMLB's own label is right where the values mislead (``519_vinnie``, a regression target of
    16 integer values; ``confidence``, 6 classes on 72 rows)."""
    root = pmlb_dir()
    path = root / name / f"{name}.tsv.gz"
    if not path.is_file():
        if not root.is_dir():
            where = (
                f"{PMLB_ENV}={os.environ[PMLB_ENV]!r}"
                if os.environ.get(PMLB_ENV)
                else f"{PMLB_ENV} is not set and the default {str(PMLB_DEFAULT)!r} (relative to "
                f"the working directory {str(Path.cwd())!r})"
            )
            raise DataError(
                f"data.source: 'pmlb:{name}' needs a local PMLB directory, but {where} does "
                f"not exist. Set {PMLB_ENV} to a folder holding NAME/NAME.tsv.gz files."
            )
        names = sorted(p.name for p in root.iterdir() if p.is_dir())
        close = difflib.get_close_matches(name, names, n=3)
        raise DataError(
            f"data.source: PMLB dataset {name!r} is not in {str(root)!r} ({len(names)} datasets)"
            + (
                f"; closest: {', '.join(close)}."
                if close
                else "; list the folder to see the names."
            )
        )
    return pd.read_csv(path, sep="\t"), _pmlb_task(path.parent / "metadata.yaml")


def _pmlb_task(path: Path) -> str | None:
    """``task`` of a PMLB ``metadata.yaml`` (its top-level ``task:`` line; the file's feature
    list can be tens of KB, not worth a YAML parse): classification, regression, or None when
    the file is missing, unreadable or says something else."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    found = re.search(r"^task:[ \t]*['\"]?(classification|regression)['\"]?[ \t]*(#.*)?$", text,
                      re.MULTILINE)
    return found.group(1) if found else None


#: PMLB feature types read as categories (``binary`` 0/1 and ``ordinal`` stay numbers: order).
_PMLB_CATEGORICAL = ("categorical", "nominal")


def _pmlb_categorical(path: Path) -> tuple[str, ...]:
    """The features a PMLB ``metadata.yaml`` declares categorical or nominal.

    Raises:
        DataError: the file is missing or lists no features (nothing is declared).
    """
    try:
        meta = yaml.safe_load(path.read_text(errors="replace"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(
            f"data.categorical: 'declared' reads the feature types of {str(path)!r}, which "
            f"could not be read ({exc}); list the categorical columns instead."
        ) from None
    features = meta.get("features") if isinstance(meta, dict) else None
    if not isinstance(features, list):
        raise DataError(
            f"data.categorical: 'declared' reads the feature types of {str(path)!r}, which "
            "lists none; list the categorical columns instead (data.categorical: [COLUMN, ...])."
        )
    return tuple(
        str(f["name"])
        for f in features
        if isinstance(f, dict) and "name" in f and f.get("type") in _PMLB_CATEGORICAL
    )


def _file(path: Path, *, text: Sequence[str] = ()) -> pd.DataFrame:
    """Read a data file; the columns named in ``text`` are read as text from CSV/TSV (an id
    such as ``0042`` stays ``"0042"``)."""
    if not path.exists():
        raise DataError(
            f"data.source: {str(path)!r} does not exist; expected sklearn:NAME, pmlb:NAME, or the "
            "path of a CSV/TSV/Parquet file."
        )
    suffixes = "".join(path.suffixes[-2:]).lower()
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        elif ".tsv" in suffixes or ".csv" in suffixes:
            sep = "\t" if ".tsv" in suffixes else ","
            frame = pd.read_csv(path, sep=sep, dtype=dict.fromkeys(text, str))
            # pandas renames a repeated header (label, label.1): the target's copy from a join
            # became a feature (accuracy 1.0). The names as written:
            header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str).iloc[0]
            written = [str(h) for h in header]
            repeated = sorted({h for h in written if written.count(h) > 1})
            if repeated:
                raise DataError(
                    f"data.source: {str(path)!r} has several columns named "
                    f"{', '.join(map(repr, repeated))}; expected one column per name (pandas "
                    "would read them as NAME, NAME.1). Rename or drop the duplicates and load "
                    "the data again."
                )
        else:
            raise DataError(
                f"data.source: {str(path)!r} has an unsupported type {path.suffix!r}; expected "
                ".csv, .tsv (optionally .gz) or .parquet."
            )
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(
            f"data.source: {str(path)!r} is empty; expected a header row and data rows."
        ) from None
    except Exception as exc:
        raise DataError(f"data.source: cannot read {str(path)!r}: {exc}") from exc
    if frame.empty:
        raise DataError(f"data.source: {str(path)!r} has no rows.")
    return frame
