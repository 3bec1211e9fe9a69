"""Meta-features of a dataset: what a tuning run knows about its data before the first trial.

:func:`meta_features` is a pure function of ``(X, y, task)``: size and shape, class count and
imbalance, categorical and missing ratios, statistical and information-theoretic features,
and cheap landmarkers (the cross-validated score of a decision stump, of 1-NN and of a linear
model). Every value is a float; features that do not apply to the task are 0.

Raw meta-features live on wildly different scales (rows in the thousands, ratios below 1), so
a raw cosine or Euclidean distance is decided by the row count alone. :func:`scale_features`
maps each feature onto a common scale against a population (log for counts, then a robust
z-score clipped to +-3), so no single feature dominates :func:`distance`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a frame is read (not to read a study's results)
    import pandas as pd

__all__ = [
    "FEATURES",
    "LOG_FEATURES",
    "meta_features",
    "scale_features",
    "distance",
    "raw_cosine_distance",
]

#: Every meta-feature, in a fixed order (the vector layout).
FEATURES: tuple[str, ...] = (
    # size and shape
    "n_rows",
    "n_features",
    "dimensionality",
    # classes
    "n_classes",
    "class_entropy",
    "minority_ratio",
    "majority_fraction",
    # column types and missing values
    "categorical_ratio",
    "missing_ratio",
    "rows_with_missing_ratio",
    "binary_feature_ratio",
    # statistics of the numeric features and the target
    "mean_skewness",
    "mean_kurtosis",
    "mean_abs_correlation",
    "target_skewness",
    # information theory
    "mean_feature_entropy",
    "mean_mutual_information",
    "max_mutual_information",
    "noise_signal_ratio",
    # landmarkers: 3-fold CV score of cheap models
    "landmark_stump",
    "landmark_1nn",
    "landmark_linear",
)

#: Counts spanning orders of magnitude: compared on a log scale.
LOG_FEATURES = frozenset(
    {"n_rows", "n_features", "dimensionality", "n_classes", "mean_kurtosis", "noise_signal_ratio"}
)

_MAX_ROWS = 1000  # statistical features and landmarkers use a fixed-seed sample of this size
_BINS = 10


def meta_features(X: pd.DataFrame, y: pd.Series, task: str, *, seed: int = 0) -> dict[str, float]:
    """The meta-features of ``(X, y)`` as ``{name: float}`` in :data:`FEATURES` order.

    Size, type and missing-value features use every row; statistical, information-theoretic
    and landmark features use a sample of at most 1000 rows (fixed by ``seed``), so the cost
    stays below a second on large data.

    Example::

        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True, as_frame=True)
        >>> mf = meta_features(X, y, "classification")
        >>> mf["n_rows"], mf["n_classes"], mf["minority_ratio"]
        (150.0, 3.0, 1.0)
    """
    n, p = X.shape
    import pandas as pd

    categorical = [
        c
        for c in X.columns
        if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])
    ]
    numeric = [c for c in X.columns if c not in categorical]
    missing = X.isna()
    out: dict[str, float] = {
        "n_rows": float(n),
        "n_features": float(p),
        "dimensionality": p / max(n, 1),
        "categorical_ratio": len(categorical) / max(p, 1),
        "missing_ratio": float(missing.values.mean()) if p else 0.0,
        "rows_with_missing_ratio": float(missing.any(axis=1).mean()) if p else 0.0,
        "binary_feature_ratio": sum(X[c].nunique(dropna=True) <= 2 for c in X.columns) / max(p, 1),
    }
    out.update(_class_features(y, task))
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n, _MAX_ROWS), replace=False))
    Xs, ys = X.iloc[rows].reset_index(drop=True), y.iloc[rows].reset_index(drop=True)
    encoded = _encode(Xs, categorical)
    out.update(_statistics(Xs[numeric], ys, task))
    out.update(_information(encoded, ys, task, seed))
    out.update(_landmarkers(encoded, ys, task, seed))
    return {name: _finite(out.get(name, 0.0)) for name in FEATURES}


def _finite(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


def _class_features(y: pd.Series, task: str) -> dict[str, float]:
    if task != "classification":
        return {
            "n_classes": 0.0,
            "class_entropy": 0.0,
            "minority_ratio": 0.0,
            "majority_fraction": 0.0,
        }
    counts = y.value_counts().to_numpy(dtype=float)
    freq = counts / counts.sum()
    k = len(counts)
    entropy = float(-(freq * np.log(freq)).sum() / math.log(k)) if k > 1 else 0.0
    return {
        "n_classes": float(k),
        "class_entropy": entropy,  # 1 = balanced
        "minority_ratio": float(counts.min() / counts.max()),
        "majority_fraction": float(freq.max()),
    }


def _encode(X: pd.DataFrame, categorical: Sequence[str]) -> np.ndarray:
    """Numbers only: categories as codes, missing values as the column median."""
    import pandas as pd

    cols = []
    for c in X.columns:
        col = X[c]
        if c in categorical:
            codes = pd.Series(pd.factorize(col.astype("object"))[0], dtype=float)
            col = codes.where(codes >= 0, np.nan)
        col = pd.to_numeric(col, errors="coerce").astype(float)
        cols.append(col.fillna(col.median() if col.notna().any() else 0.0).to_numpy())
    return np.column_stack(cols) if cols else np.zeros((len(X), 0))


def _statistics(num: pd.DataFrame, y: pd.Series, task: str) -> dict[str, float]:
    from scipy import stats

    out: dict[str, float] = {}
    values = num.to_numpy(dtype=float)
    varying = [j for j in range(values.shape[1]) if np.nanstd(values[:, j]) > 0]
    if varying:
        v = values[:, varying]
        out["mean_skewness"] = float(np.nanmean(np.abs(stats.skew(v, nan_policy="omit"))))
        out["mean_kurtosis"] = float(np.nanmean(stats.kurtosis(v, nan_policy="omit"))) + 3.0
        if len(varying) > 1:
            filled = np.where(np.isnan(v), np.nanmedian(v, axis=0), v)
            corr = np.corrcoef(filled, rowvar=False)
            upper = corr[np.triu_indices_from(corr, k=1)]
            out["mean_abs_correlation"] = float(np.nanmean(np.abs(upper)))
    if task == "regression":
        out["target_skewness"] = float(abs(stats.skew(y.to_numpy(dtype=float))))
    return out


def _discretize(column: np.ndarray) -> np.ndarray:
    if len(np.unique(column)) <= _BINS:
        return np.unique(column, return_inverse=True)[1]
    edges = np.quantile(column, np.linspace(0, 1, _BINS + 1)[1:-1])
    return np.searchsorted(edges, column, side="right")


def _entropy(labels: np.ndarray) -> float:
    _, counts = np.unique(labels, return_counts=True)
    freq = counts / counts.sum()
    return float(-(freq * np.log(freq)).sum())


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information (nats) of two label arrays, from their contingency table."""
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1.0)
    joint = table / table.sum()
    outer = joint.sum(axis=1, keepdims=True) @ joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float(max(0.0, (joint[nz] * np.log(joint[nz] / outer[nz])).sum()))


def _information(X: np.ndarray, y: pd.Series, task: str, seed: int) -> dict[str, float]:
    if X.shape[1] == 0:
        return {}
    target = y.to_numpy()
    target = (
        np.unique(target, return_inverse=True)[1]
        if task == "classification"
        else _discretize(target.astype(float))
    )
    discrete = [_discretize(X[:, j]) for j in range(X.shape[1])]
    entropies = np.array([_entropy(d) for d in discrete])
    mi = np.array([_mutual_information(target, d) for d in discrete])
    mean_mi = float(mi.mean())
    return {
        "mean_feature_entropy": float(entropies.mean()),
        "mean_mutual_information": mean_mi,
        "max_mutual_information": float(mi.max()),
        # High when features carry much entropy but little of it about the target.
        "noise_signal_ratio": float((entropies.mean() - mean_mi) / mean_mi)
        if mean_mi > 1e-12
        else 0.0,
    }


def _landmarkers(X: np.ndarray, y: pd.Series, task: str, seed: int) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if X.shape[1] == 0:
        return {}
    target = y.to_numpy()
    if task == "classification":
        smallest = int(np.unique(target, return_counts=True)[1].min())
        folds = (
            StratifiedKFold(3, shuffle=True, random_state=seed)
            if smallest >= 3
            else KFold(3, shuffle=True, random_state=seed)
        )
        models = {
            "landmark_stump": DecisionTreeClassifier(max_depth=1, random_state=seed),
            "landmark_1nn": make_pipeline(StandardScaler(), KNeighborsClassifier(1)),
            "landmark_linear": make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)),
        }
        scoring = "balanced_accuracy"
    else:
        folds = KFold(3, shuffle=True, random_state=seed)
        target = target.astype(float)
        models = {
            "landmark_stump": DecisionTreeRegressor(max_depth=1, random_state=seed),
            "landmark_1nn": make_pipeline(StandardScaler(), KNeighborsRegressor(1)),
            "landmark_linear": make_pipeline(StandardScaler(), Ridge(1.0)),
        }
        scoring = "r2"
    out = {}

    for name, model in models.items():
        with warnings.catch_warnings():
            # A landmarker on a tiny or degenerate fold may not converge or may see a missing
            # class; its score is still the signal we want (a low one).
            warnings.simplefilter("ignore")
            try:
                scores = cross_val_score(
                    model, X, target, cv=folds, scoring=scoring, error_score=0.0
                )
            except ValueError:  # every fit failed (scikit-learn raises then): no signal at all
                scores = np.zeros(1)
        out[name] = float(np.clip(np.mean(scores), -1.0, 1.0))
    return out


# -- scaling and distance -----------------------------------------------------------------------
def _transform(name: str, value: float) -> float:
    return math.log1p(max(value, 0.0)) if name in LOG_FEATURES else value


def scale_features(
    vectors: Sequence[Mapping[str, float]], reference: Sequence[Mapping[str, float]] | None = None
) -> np.ndarray:
    """Map meta-feature dicts onto one comparable scale; returns an array (len(vectors),
    len(FEATURES)).

    Counts are log-transformed, then each feature is centred on the median of ``reference``
    (default: ``vectors`` themselves) and divided by its inter-quartile range (a feature
    constant in the population is ignored), and clipped to +-3 so one outlying feature
    cannot decide a distance.
    """

    def matrix(rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        return np.array(
            [[_transform(f, float(r.get(f, 0.0))) for f in FEATURES] for r in rows], dtype=float
        )

    values = matrix(vectors)
    ref = matrix(reference) if reference is not None else values
    if len(ref) == 0:
        return np.zeros_like(values)
    centre = np.median(ref, axis=0)
    q75, q25 = np.percentile(ref, [75, 25], axis=0)
    spread = q75 - q25
    fallback = ref.std(axis=0)
    spread = np.where(spread > 1e-12, spread, fallback)
    scaled = np.where(
        spread > 1e-12, (values - centre) / np.where(spread > 1e-12, spread, 1.0), 0.0
    )
    return np.clip(scaled, -3.0, 3.0)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square difference of two scaled meta-feature vectors (0 = identical)."""
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def raw_cosine_distance(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """The seed recipe: 1 - cosine similarity of *unscaled* meta-features (kept as a baseline).

    With raw values the row count dwarfs every ratio, so this ranks neighbours by size.
    """
    va = np.array([float(a.get(f, 0.0)) for f in FEATURES])
    vb = np.array([float(b.get(f, 0.0)) for f in FEATURES])
    norm = np.linalg.norm(va) * np.linalg.norm(vb)
    return float(1.0 - va @ vb / norm) if norm > 0 else 1.0
