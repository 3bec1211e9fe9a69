"""The preprocessing step of every tuneops pipeline, with a fast path for serving.

A fitted scikit-learn ``ColumnTransformer`` spends almost all of a one-row ``transform`` on
validating and slicing pandas input: on 2,000 x 500 data (480 numeric, 20 categorical columns)
one row took 32 ms of ``ColumnTransformer.transform`` against 0.46 ms of the logistic
regression after it (issue 16 measured 179 ms against 0.23 ms on a busier machine). The
latency objective then ranks pandas overhead, not models.

:class:`Preprocessor` is a ``ColumnTransformer`` (same parameters, same fit, same output)
that, once fitted, compiles its fitted state - imputation values, scaling, one-hot tables -
into NumPy operations (:class:`CompiledTransform`). ``transform`` uses the compiled path for
inputs it can handle exactly: a DataFrame holding the fitted columns (in order, or among others,
picked by name as ``ColumnTransformer`` picks them), a NumPy array of
those columns, or records (a list of dicts with every fitted column, as a JSON request
arrives), unseen categories included when the encoder accepts them; anything else (a missing
column, values of another kind than the fitted categories, ``set_output(pandas)``) goes to
scikit-learn's own ``transform`` (records first become a DataFrame). Two guarantees keep it honest:

* the operations are scikit-learn's own (``x[missing] = statistics_``, ``x -= mean_``,
  ``x /= scale_``, and one-hot rows produced by the fitted encoder itself), so outputs are
  bit-for-bit equal, not approximately;
* at fit, the compiled path is checked against scikit-learn's ``transform`` on up to 64
  training rows (rows with missing values first) and on a row of unseen categories; on any
  difference the step keeps scikit-learn's path (``compiled_`` is None).

Only the structure :func:`tuneops.families.build_pipeline` makes is compiled: per block a
``Pipeline`` of ``SimpleImputer``, optionally ``StandardScaler`` (numeric) or
``OneHotEncoder`` (categorical, dense, no ``drop``).

The pipeline around it is a :class:`ServingPipeline`: scikit-learn's ``Pipeline.predict``
spends about 90 us per call outside its steps (a fitted check over every attribute, metadata
routing), 70% of a one-row logistic regression's 130 us; the latency objective times the steps
and ``tuneops serve`` calls ``predict``, so they now cost the same.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.metaestimators import available_if

__all__ = ["Preprocessor", "CompiledTransform", "compile_transform", "ServingPipeline"]

_CHECK_ROWS = 64


@dataclass(frozen=True)
class _Numeric:
    """Numeric block: impute missing values, then optionally standardise."""

    positions: np.ndarray  # column positions in the input
    fill: np.ndarray  # SimpleImputer.statistics_
    mean: np.ndarray | None  # StandardScaler.mean_ (None: with_mean=False or no scaler)
    scale: np.ndarray | None  # StandardScaler.scale_

    @property
    def width(self) -> int:
        return len(self.positions)

    def write(self, values: np.ndarray, out: np.ndarray) -> bool:
        x = values[:, self.positions].astype(np.float64)
        missing = np.isnan(x)
        if missing.any():
            x[missing] = np.broadcast_to(self.fill, x.shape)[missing]
        if self.mean is not None:
            x -= self.mean
        if self.scale is not None:
            x /= self.scale
        out[:] = x
        return True


@dataclass(frozen=True)
class _Categorical:
    """Categorical block: per column, a table from category to its one-hot row."""

    positions: np.ndarray
    codes: tuple[dict[Any, int], ...]  # category -> row of the table; missing -> the imputed one
    tables: tuple[np.ndarray, ...]  # (n categories, width) one-hot rows, made by the encoder
    # Per column, the table row of an unseen category and the kind of value that may take it
    # ("str" or "number", the kind of the fitted categories); None: scikit-learn decides. Empty
    # in artifacts compiled before unseen categories were (every unseen value goes to sklearn).
    unseen: tuple[int | None, ...] = ()
    kinds: tuple[str | None, ...] = ()

    @property
    def width(self) -> int:
        return sum(t.shape[1] for t in self.tables)

    def write(self, values: np.ndarray, out: np.ndarray) -> bool:
        """Fill ``out``; False when a value needs scikit-learn's path (scikit-learn decides)."""
        start = 0
        unseen = self.unseen or (None,) * len(self.codes)
        kinds = self.kinds or (None,) * len(self.codes)
        columns = zip(self.positions, self.codes, self.tables, unseen, kinds, strict=True)
        for position, codes, table, unseen_row, kind in columns:
            rows = []
            for value in values[:, position]:
                code = codes.get(value)
                if code is None:
                    # missing: NaN of any provenance, None (a JSON null, a one-row frame's
                    # None), pandas' NA; imputed as at training (None scored as an unseen
                    # category, and differently alone than in a batch)
                    if value is None or value is pd.NA or value != value:
                        code = codes[_MISSING]
                    elif unseen_row is not None and _kind(value) == kind:
                        code = unseen_row
                    else:
                        return False
                rows.append(code)
            width = table.shape[1]
            out[:, start : start + width] = table[rows]
            start += width
        return True


class _Missing:
    """Key of the imputed category in a code table (NaN is no usable dict key)."""

    def __repr__(self) -> str:
        return "<missing>"

    def __reduce__(self) -> str:
        return "_MISSING"  # one instance, also after unpickling


_MISSING = _Missing()


@dataclass(frozen=True)
class CompiledTransform:
    """A fitted ``ColumnTransformer`` as NumPy operations, for inputs of the fitted columns."""

    columns: tuple[str, ...]
    blocks: tuple[_Numeric | _Categorical, ...]
    # The memory layout of scikit-learn's output ("F": a DataFrame of numbers only comes out of
    # ColumnTransformer column-major): equal values in another layout made an estimator's
    # matrix product sum in another order (probabilities off by 8e-16 on 50 classes).
    order: Literal["C", "F"] = "C"
    # Column indexes already looked at, each with the positions of ``columns`` in it (None:
    # equal to ``columns``): rows cut from one frame share their column index, and comparing
    # 500 names costs more than the whole compiled transform.
    _seen: list[tuple[Any, np.ndarray | None]] = field(
        default_factory=list, compare=False, repr=False
    )

    def __getstate__(self) -> dict[str, Any]:
        # The cache of column indexes seen when predicting is no part of the model: pickled,
        # a model's size changed with what it had predicted (one artifact measured 280.0, 280.2
        # and 280.6 KiB: model.json, verify's "exact" size, tuning), and it carried the last
        # callers' column indexes along.
        state = dict(self.__dict__)
        state["_seen"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Artifacts pickled before the cache was left out (tuneops before 6718449) carry it,
        # and in its earlier form (bare column indexes, not (index, positions) pairs): such a
        # model failed every prediction of a DataFrame after an upgrade ("too many values to
        # unpack" in monitor, verify, retune). The cache is rebuilt on use: it starts empty.
        self.__dict__.update({**state, "_seen": []})

    def values_of(self, X: Any) -> np.ndarray | None:
        """The input as a 2-D array in the fitted column order, or None when it is not one."""
        if isinstance(X, pd.DataFrame):
            index = X.columns
            found = [at for seen, at in self._seen if seen is index]
            if found:
                at = found[0]
            else:
                at = self._positions(index)
                if at is not None and not len(at):
                    return None
                self._seen[:] = [(index, at), *self._seen[:3]]
            values = X.to_numpy()
            return values if at is None else values[:, at]
        if isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == len(self.columns):
            return X
        if isinstance(X, list) and X and all(isinstance(r, Mapping) for r in X):
            try:
                return np.array([[r[c] for c in self.columns] for r in X], dtype=object)
            except KeyError:
                return None
        return None

    def _positions(self, index: pd.Index) -> np.ndarray | None:
        """None when ``index`` is the fitted columns in order; else the positions of the fitted
        columns in it, or an empty array when it lacks one (or names one twice). A frame of
        more columns is the file the data came from, which still holds the columns the data
        load dropped (a constant, a date): ColumnTransformer selects the fitted ones by name,
        and so does this path (it went to scikit-learn's, 5x the latency objective: 4.3 ms
        against 0.8 ms a row for a gradient boosting of 18 features)."""
        if len(index) == len(self.columns) and index.equals(pd.Index(self.columns)):
            return None
        at = index.get_indexer(pd.Index(self.columns)) if index.is_unique else np.array([-1])
        return np.empty(0, dtype=np.intp) if (at < 0).any() else at

    def transform(self, X: Any) -> np.ndarray | None:
        """The transformed array, or None when the input needs scikit-learn's path."""
        values = self.values_of(X)
        if values is None:
            return None
        width = sum(b.width for b in self.blocks)
        out = np.empty((len(values), width), dtype=np.float64, order=self.order)
        start = 0
        for block in self.blocks:
            try:
                if not block.write(values, out[:, start : start + block.width]):
                    return None
            except (TypeError, ValueError):  # e.g. pd.NA in a numeric column
                return None
            start += block.width
        return out


def _numeric_block(steps: list[Any], positions: np.ndarray) -> _Numeric | None:
    if not steps or not isinstance(steps[0], SimpleImputer) or len(steps) > 2:
        return None
    imputer = steps[0]
    if not (isinstance(imputer.missing_values, float) and np.isnan(imputer.missing_values)):
        return None
    if imputer.add_indicator or len(imputer.statistics_) != len(positions):
        return None
    mean = scale = None
    if len(steps) == 2:
        scaler = steps[1]
        if not isinstance(scaler, StandardScaler):
            return None
        mean, scale = scaler.mean_ if scaler.with_mean else None, scaler.scale_
    return _Numeric(positions, np.asarray(imputer.statistics_, dtype=np.float64), mean, scale)


def _categorical_block(steps: list[Any], positions: np.ndarray) -> _Categorical | None:
    if len(steps) != 2 or not isinstance(steps[0], SimpleImputer):
        return None
    imputer, encoder = steps
    if not isinstance(encoder, OneHotEncoder) or encoder.drop is not None or encoder.sparse_output:
        return None
    if imputer.add_indicator or not (
        isinstance(imputer.missing_values, float) and np.isnan(imputer.missing_values)
    ):
        return None
    codes, tables, unseen, kinds = [], [], [], []
    for j, categories in enumerate(encoder.categories_):
        # Rows of the table: every known category, made one-hot by the fitted encoder itself
        # (infrequent grouping included), then - when the encoder accepts unknown values - the
        # row it makes of a value it never saw (the infrequent column, or zeros; the same for
        # every unseen value of the column's kind): a high-cardinality column (an id, a date)
        # brings an unseen value in almost every request, and scikit-learn's path costs ~25x
        # the compiled one. The other columns hold their first category and are sliced away.
        known = list(categories)
        kind = _categories_kind(known) if encoder.handle_unknown != "error" else None
        rows = known + ([_unseen_value(known, kind)] if kind else [])
        frame = np.empty((len(rows), len(encoder.categories_)), dtype=object)
        for k, other in enumerate(encoder.categories_):
            frame[:, k] = other[0]
        frame[:, j] = rows
        with warnings.catch_warnings():  # "unknown categories ... encoded as all zeros"
            warnings.simplefilter("ignore", UserWarning)
            encoded = encoder.transform(frame)
        start = sum(_width(encoder, k) for k in range(j))
        tables.append(np.ascontiguousarray(encoded[:, start : start + _width(encoder, j)]))
        table_codes: dict[Any, int] = {value: i for i, value in enumerate(known)}
        filled = imputer.statistics_[j]
        if filled not in table_codes:
            return None
        table_codes[_MISSING] = table_codes[filled]
        codes.append(table_codes)
        unseen.append(len(known) if kind else None)
        kinds.append(kind)
    return _Categorical(positions, tuple(codes), tuple(tables), tuple(unseen), tuple(kinds))


def _kind(value: Any) -> str | None:
    """The kind ("str" or "number") of a value an unseen-category row may stand for; None
    otherwise (None, booleans, pd.NA, other objects: scikit-learn decides what they are)."""
    if isinstance(value, str):
        return "str"
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    ):
        return "number"
    return None


def _categories_kind(known: list[Any]) -> str | None:
    """The kind shared by every fitted category, or None when they are mixed or of no kind."""
    kinds = {_kind(value) for value in known}
    return kinds.pop() if len(kinds) == 1 else None


def _unseen_value(known: list[Any], kind: str) -> Any:
    """A value of ``kind`` that is none of the fitted categories."""
    if kind == "number":
        return float(max(known)) + 1.0
    value = "\x00unseen"
    while value in known:
        value += "\x00"
    return value


def _width(encoder: OneHotEncoder, j: int) -> int:
    """Output columns of input feature ``j``: its categories, infrequent ones merged into one."""
    infrequent = getattr(encoder, "infrequent_categories_", [None] * len(encoder.categories_))[j]
    n = len(encoder.categories_[j])
    return n if infrequent is None else n - len(infrequent) + 1


def compile_transform(ct: ColumnTransformer, X: pd.DataFrame) -> CompiledTransform | None:
    """Compile a fitted ``ColumnTransformer`` of the supported structure; None otherwise.

    ``X`` is (a sample of) the data it was fitted on: the compiled path must reproduce
    ``ct.transform`` on it exactly, or nothing is compiled.
    """
    if not isinstance(X, pd.DataFrame) or ct.sparse_output_ or ct.remainder != "drop":
        return None
    columns = tuple(str(c) for c in X.columns)
    if tuple(X.columns) != columns or len(set(columns)) != len(columns):
        return None
    position = {c: i for i, c in enumerate(columns)}
    blocks: list[_Numeric | _Categorical] = []
    for name, transformer, selected in ct.transformers_:
        if transformer == "drop" or name == "remainder":
            continue
        if not isinstance(transformer, Pipeline) or not all(isinstance(c, str) for c in selected):
            return None
        positions = np.array([position[c] for c in selected], dtype=np.intp)
        steps = [step for _, step in transformer.steps]
        block = (
            _categorical_block(steps, positions)
            if any(isinstance(s, OneHotEncoder) for s in steps)
            else _numeric_block(steps, positions)
        )
        if block is None:
            return None
        blocks.append(block)
    if not blocks:
        return None
    compiled = CompiledTransform(columns, tuple(blocks))
    sample = _check_sample(X)
    unseen = sample.iloc[:1].copy()
    for block in blocks:
        if isinstance(block, _Categorical):
            columns_of = zip(block.positions, block.codes, block.kinds, strict=True)
            for position, codes, kind in columns_of:
                if kind is not None:
                    known = [value for value in codes if value is not _MISSING]
                    unseen.iloc[0, position] = _unseen_value(known, kind)
    sample = pd.concat([sample, unseen])
    with warnings.catch_warnings():  # "unknown categories ... encoded as all zeros"
        warnings.simplefilter("ignore", UserWarning)
        slow = np.asarray(ColumnTransformer.transform(ct, sample))
    if slow.flags.f_contiguous and not slow.flags.c_contiguous:
        compiled = dataclasses.replace(compiled, order="F")
    fast = compiled.transform(sample)
    if fast is None or fast.shape != slow.shape or not np.array_equal(fast, slow, equal_nan=True):
        return None
    return compiled


def _check_sample(X: pd.DataFrame) -> pd.DataFrame:
    """Up to 64 rows to check the compiled path on: rows with missing values first."""
    missing = np.flatnonzero(X.isna().to_numpy().any(axis=1))[: _CHECK_ROWS // 2]
    rest = np.setdiff1d(np.arange(min(len(X), _CHECK_ROWS)), missing)
    rows = np.concatenate([missing, rest])[:_CHECK_ROWS]
    return X.iloc[np.sort(rows)]


class Preprocessor(ColumnTransformer):
    """A ``ColumnTransformer`` that serves small inputs through its compiled fitted state.

    Parameters and fitting are ``ColumnTransformer``'s. After fitting, ``compiled_`` holds the
    :class:`CompiledTransform` (None when the structure is not one tuneops compiles, or the
    check at fit found a difference); ``transform`` uses it when the input allows and falls
    back to ``ColumnTransformer.transform`` otherwise. Predictions never change: see the
    module docstring.
    """

    def fit_transform(self, X: Any, y: Any = None, **params: Any) -> Any:
        out = super().fit_transform(X, y, **params)
        # Compiled only for NumPy output (a DataFrame output means set_output(pandas), maybe
        # inherited through clone) and plain fits.
        fast = getattr(self, "fast_", True) and not params and isinstance(out, np.ndarray)
        self.compiled_ = compile_transform(self, X) if fast else None
        return out

    def set_output(self, *, transform: Any = None) -> Preprocessor:
        # The compiled path returns NumPy arrays: only the default container may use it.
        self.fast_ = transform in (None, "default")
        super().set_output(transform=transform)
        return self

    def transform(self, X: Any, **params: Any) -> Any:
        compiled = getattr(self, "compiled_", None)
        if compiled is not None and not params and getattr(self, "fast_", True):
            out = compiled.transform(X)
            if out is not None:
                return out
        names = getattr(self, "feature_names_in_", None)
        if isinstance(X, list) and X and all(isinstance(r, Mapping) for r in X):
            X = pd.DataFrame.from_records(X, columns=list(self.feature_names_in_))
        elif isinstance(X, np.ndarray) and names is not None and X.shape[1:] == (len(names),):
            # A NumPy row the compiled path declined (a value of another kind than the fitted
            # categories): ColumnTransformer selects columns by name and raised on an array.
            X = _as_frame(X, names, self.transformers_)
        if isinstance(X, pd.DataFrame):
            X = _as_fitted(X, getattr(self, "feature_names_in_", None))
        return super().transform(X, **params)


def _as_frame(values: np.ndarray, names: Any, transformers: Any) -> pd.DataFrame:
    """A 2-D array of the fitted columns as the DataFrame the fit saw: the columns of an
    encoded block as objects (the categories), the others as floats."""
    kinds: dict[str, Any] = {}
    for _, transformer, selected in transformers:
        if isinstance(transformer, str):  # "drop" or "passthrough": left as they come
            continue
        steps = [step for _, step in getattr(transformer, "steps", [])]
        kind = object if any(isinstance(step, OneHotEncoder) for step in steps) else np.float64
        if isinstance(selected, list):
            kinds.update((column, kind) for column in selected if isinstance(column, str))
    return pd.DataFrame(values, columns=list(names)).astype(kinds)


def _as_fitted(X: pd.DataFrame, names: Any) -> pd.DataFrame:
    """``X`` in the form the fit saw (tuneops.data loads every source so): column names as
    text (a frame of columns 0..4 trained, as '0'..'4', and then failed to predict), and
    missing values as NaN: pandas' NA of nullable columns (a Parquet file's ``boolean`` or
    ``string`` column crashed the imputer) and None in text columns (scored as an unseen
    category). A frame already in that form is returned as it is."""
    if names is not None and any(not isinstance(c, str) for c in X.columns):
        text = [str(c) for c in X.columns]
        if set(text) >= set(map(str, names)):
            X = X.set_axis(text, axis=1)
    changes = {}
    for name, column in X.items():
        dtype = column.dtype
        if isinstance(dtype, pd.api.extensions.ExtensionDtype) and not isinstance(
            dtype, pd.CategoricalDtype | pd.DatetimeTZDtype
        ):
            numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(
                dtype
            )
            changes[name] = (
                column.astype("float64")
                if numeric
                else column.astype(object).where(column.notna(), np.nan)
            )
        elif pd.api.types.is_object_dtype(dtype) and column.isna().any():
            changes[name] = column.where(column.notna(), np.nan)  # None -> NaN
    return X.assign(**changes) if changes else X


def _share_neighbors_data(estimator: Any) -> None:
    """Let a k-NN estimator's training data and its search tree's data be one array again.

    Fitted, they are one (the tree keeps the array it was given); joblib writes each array on its
    own, so a loaded model held two copies: twice the memory while it serves, and twice the
    pickled size - the staging gate measured a k-NN's ``model_size_kb`` at 342 KiB where the run
    had saved it at 192 (``saved.model_size_kb``)."""
    tree = getattr(estimator, "_tree", None)
    fit_x = getattr(estimator, "_fit_X", None)
    data = getattr(getattr(tree, "data", None), "base", None)
    if (
        isinstance(fit_x, np.ndarray)
        and isinstance(data, np.ndarray)
        and data is not fit_x
        and data.shape == fit_x.shape
        and data.dtype == fit_x.dtype
        and np.array_equal(data, fit_x)
    ):
        estimator._fit_X = data


class ServingPipeline(Pipeline):
    """scikit-learn's ``Pipeline`` whose ``predict`` without parameters runs the steps and
    nothing else: each transform, then the estimator's ``predict``, as the latency objective
    times them. With parameters (metadata routing) it is scikit-learn's own. An unfitted step
    still raises scikit-learn's ``NotFittedError`` from its own ``transform`` or ``predict``."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for _, step in self.steps:
            _share_neighbors_data(step)

    @available_if(lambda self: hasattr(self._final_estimator, "predict"))
    def predict(self, X: Any, **params: Any) -> Any:
        if params:
            return super().predict(X, **params)
        for _, step in self.steps[:-1]:
            if step is not None and step != "passthrough":
                X = step.transform(X)
        return self.steps[-1][1].predict(X)
