"""Drift tests and reference profiles: pure functions on arrays and plain dicts.

A *profile* summarises one column of the training data so that later batches can be compared
with it without the training data at hand; it is plain JSON and lives in the registry:

* numeric column: PSI bin edges (reference deciles) with the reference share per bin, and a
  fixed random sample of at most :data:`SAMPLE_SIZE` values for the Kolmogorov-Smirnov test.
* categorical column (text, bool, or predicted class labels): the count of every value.

Tests (each returns a :class:`ColumnDrift`):

* numeric: two-sample Kolmogorov-Smirnov (``scipy.stats.ks_2samp``) for the p-value, and the
  Population Stability Index over the reference deciles for the size of the shift.
* categorical: chi-squared test of homogeneity on the 2 x k table of reference and batch counts
  (``scipy.stats.chi2_contingency``; values the reference never saw form one extra column),
  and PSI over the categories.

Several columns are tested at once, so p-values are corrected for multiple testing with
Benjamini-Hochberg (``scipy.stats.false_discovery_control``) or Bonferroni.

PSI = sum_i (cur_i - ref_i) * ln(cur_i / ref_i), with empty bins set to :data:`PSI_EPS`;
in credit-scoring practice < 0.1 is stable, 0.1-0.25 a moderate shift, >= 0.25 a major one
(Yurdakul 2018, "Statistical properties of population stability index").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "SAMPLE_SIZE",
    "PSI_EPS",
    "CORRECTIONS",
    "ColumnDrift",
    "profile_column",
    "profile_frame",
    "psi",
    "psi_numeric",
    "psi_categorical",
    "ks_test",
    "chi2_test",
    "column_drift",
    "adjust_pvalues",
]

SAMPLE_SIZE = 1000
PSI_EPS = 1e-4
N_BINS = 10
_OTHER = "__unseen__"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift: the test, its statistic and p-value, and the PSI."""

    column: str
    kind: str  # "numeric" | "categorical"
    test: str  # "ks" | "chi2"
    statistic: float
    p_value: float
    psi: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- profiles -----------------------------------------------------------------------------------
def _numeric_values(values: Any) -> np.ndarray:
    array = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    return array[np.isfinite(array)]


def _label(value: Any) -> str:
    """Categories are compared by their text, so JSON round trips keep them equal."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value.item() if hasattr(value, "item") else value)


def profile_column(values: Any, kind: str, *, seed: int = 0, n_bins: int = N_BINS) -> dict[str, Any]:
    """The reference profile of one column (plain JSON).

    Args:
        values: the column's training values (missing values are ignored).
        kind: ``numeric`` or ``categorical``.
        seed: fixes which values go into the KS sample.
        n_bins: PSI bins: reference quantiles, fewer when values repeat.

    Example::

        >>> p = profile_column(np.arange(100.0), "numeric")
        >>> len(p["edges"]), round(sum(p["shares"]), 6)
        (9, 1.0)
    """
    if kind == "categorical":
        series = pd.Series(values).dropna()
        counts = series.map(_label).value_counts()
        return {"kind": kind, "n": int(len(series)), "counts": {str(k): int(v) for k, v in counts.items()}}
    array = _numeric_values(values)
    if array.size == 0:
        return {"kind": kind, "n": 0, "edges": [], "shares": [1.0], "sample": []}
    edges = np.unique(np.quantile(array, np.linspace(0, 1, n_bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, array, side="right"), minlength=len(edges) + 1)
    rng = np.random.default_rng(seed)
    sample = array if array.size <= SAMPLE_SIZE else rng.choice(array, SAMPLE_SIZE, replace=False)
    return {
        "kind": kind,
        "n": int(array.size),
        "edges": [float(e) for e in edges],
        "shares": [float(c) for c in counts / counts.sum()],
        "sample": [float(v) for v in np.sort(sample)],
    }


def profile_frame(X: pd.DataFrame, categorical: Sequence[str], *, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Profiles of every column of ``X``; ``categorical`` names the non-numeric ones."""
    return {
        str(c): profile_column(X[c], "categorical" if c in categorical else "numeric", seed=seed)
        for c in X.columns
    }


# -- statistics ---------------------------------------------------------------------------------
def psi(reference: Sequence[float], current: Sequence[float], *, eps: float = PSI_EPS) -> float:
    """Population Stability Index of two share vectors over the same bins."""
    ref = np.clip(np.asarray(reference, dtype=float), eps, None)
    cur = np.clip(np.asarray(current, dtype=float), eps, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi_numeric(profile: Mapping[str, Any], values: Any) -> float:
    """PSI of ``values`` against a numeric profile's bins."""
    array = _numeric_values(values)
    if array.size == 0:
        return 0.0
    edges = np.asarray(profile["edges"], dtype=float)
    counts = np.bincount(np.searchsorted(edges, array, side="right"), minlength=len(edges) + 1)
    return psi(profile["shares"], counts / counts.sum())


def _category_counts(profile: Mapping[str, Any], values: Any) -> tuple[np.ndarray, np.ndarray]:
    ref_counts: Mapping[str, int] = profile["counts"]
    current = pd.Series(values).dropna().map(_label).value_counts()
    known = list(ref_counts)
    ref = np.array([ref_counts[k] for k in known] + [0], dtype=float)
    cur = np.array([current.get(k, 0) for k in known] + [current[~current.index.isin(known)].sum()], dtype=float)
    return ref, cur


def psi_categorical(profile: Mapping[str, Any], values: Any) -> float:
    """PSI of ``values`` against a categorical profile's counts (unseen values in one bin)."""
    ref, cur = _category_counts(profile, values)
    if cur.sum() == 0:
        return 0.0
    return psi(ref / ref.sum(), cur / cur.sum())


def ks_test(reference: Sequence[float], values: Any) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value (``scipy.stats.ks_2samp``)."""
    array = _numeric_values(values)
    if array.size == 0 or len(reference) == 0:
        return 0.0, 1.0
    result = stats.ks_2samp(np.asarray(reference, dtype=float), array)
    return float(result.statistic), float(result.pvalue)


def chi2_test(profile: Mapping[str, Any], values: Any) -> tuple[float, float]:
    """Chi-squared test that the batch's categories come from the reference's distribution.

    A test of homogeneity on the 2 x k table (reference counts, batch counts), so the
    reference's own sampling noise is accounted for; categories empty in both are dropped.
    """
    ref, cur = _category_counts(profile, values)
    keep = (ref + cur) > 0
    table = np.vstack([ref[keep], cur[keep]])
    if table.shape[1] < 2 or cur.sum() == 0:
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def column_drift(name: str, profile: Mapping[str, Any], values: Any) -> ColumnDrift:
    """Test one column of a batch against its reference profile."""
    if profile["kind"] == "categorical":
        statistic, p_value = chi2_test(profile, values)
        return ColumnDrift(name, "categorical", "chi2", statistic, p_value,
                           psi_categorical(profile, values), int(pd.Series(values).notna().sum()))
    statistic, p_value = ks_test(profile["sample"], values)
    return ColumnDrift(name, "numeric", "ks", statistic, p_value, psi_numeric(profile, values),
                       int(_numeric_values(values).size))


# -- multiple testing ---------------------------------------------------------------------------
def _bonferroni(p: np.ndarray) -> np.ndarray:
    return np.minimum(1.0, p * len(p))


def _benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    return stats.false_discovery_control(p, method="bh")


def _none(p: np.ndarray) -> np.ndarray:
    return p


CORRECTIONS = {"bh": _benjamini_hochberg, "bonferroni": _bonferroni, "none": _none}


def adjust_pvalues(p_values: Sequence[float], method: str = "bh") -> list[float]:
    """p-values corrected for testing several columns at once (``bh``, ``bonferroni``, ``none``)."""
    array = np.asarray(p_values, dtype=float)
    if array.size == 0:
        return []
    return [float(v) for v in CORRECTIONS[method](array)]
