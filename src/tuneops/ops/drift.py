"""Drift tests and reference profiles: pure functions on arrays and plain dicts.

A *profile* summarises one column of the training data so that later batches can be compared
with it without the training data at hand; it is plain JSON and lives in the registry:

* numeric column: PSI bin edges (reference deciles) with the reference share per bin, and a
  fixed random sample of at most :data:`SAMPLE_SIZE` values for the Kolmogorov-Smirnov test.
* categorical column (text, bool, or predicted class labels): the count of every value.

Tests (each returns a :class:`ColumnDrift`):

* numeric: two-sample Kolmogorov-Smirnov (``scipy.stats.ks_2samp``) and a chi-squared test of
  homogeneity on the PSI bins (the reference deciles), Bonferroni-corrected for the two; and the
  Population Stability Index over the same bins for the size of the shift. KS alone is blind to
  what PSI sees best: a shift that empties a tail bin. An offset of a tenth of the range on a
  near-uniform column (churn's ``phone number``) moves the CDF by at most 0.1, which a 200-row
  batch cannot tell from noise (KS p ~ 0.1 before correction), yet it empties the lowest decile
  (PSI 0.5, a chi-squared contribution of 20 from that bin alone). The binned test is the test
  of the statistic PSI estimates (PSI ~ the chi-squared statistic times (1/n + 1/m), below),
  so a large PSI is never left without its significance test.
* categorical: chi-squared test of homogeneity on the 2 x k table of reference and batch counts
  (``scipy.stats.chi2_contingency``; values the reference never saw form one extra column),
  and PSI over the categories.

Missing values are a signal of their own (a feature whose upstream source breaks arrives
empty): every profile records the column's missing share, and a batch's share is compared with
it by Fisher's exact test on the 2 x 2 table (missing / present, reference / batch) and a
two-bin PSI. A column's p-value is then the smaller of the value test's and the missing test's,
Bonferroni-corrected for the two (only when either side has missing values), and its PSI the
larger: a feature that becomes 100% missing has no values to test, but is not stable.

Several columns are tested at once, so p-values are corrected for multiple testing with
Benjamini-Hochberg (``scipy.stats.false_discovery_control``) or Bonferroni.

PSI's sampling noise (:func:`psi_noise`): a batch of ``n`` values binned into ``B`` bins against
a reference of ``m`` values has a PSI of about (B - 1)(1/n + 1/m) on average when nothing
changed at all (PSI is close to the chi-squared divergence, and (1/n + 1/m)^-1 times it to a
chi-squared statistic with B - 1 degrees of freedom; Yurdakul 2018, section 3): 0.049 for 10
bins, 200 rows and 2,000 reference rows, half the 0.1 "stable" line, which PSI practice drew
for large samples. So a batch's PSI overstates the population's shift by that much on average;
:class:`ColumnDrift` records it (``psi_noise``) so the decision can judge the shift net of it.

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
    "missing_test",
    "bins_test",
    "psi_noise",
    "adjust_pvalues",
]

SAMPLE_SIZE = 1000
PSI_EPS = 1e-4
N_BINS = 10
_OTHER = "__unseen__"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift: the test, its statistic and p-value, and the PSI.

    ``test`` names the decisive test (``ks``; ``bins``, the chi-squared test on a numeric
    column's PSI bins; ``chi2`` for a categorical column; or ``missing`` when the missing share
    moved more than the values); ``p_value`` is the column's, Bonferroni-corrected for its
    tests; ``missing`` / ``missing_ref`` are the batch's and the reference's missing shares
    (None for an old profile that did not record it); ``psi_noise`` is the PSI that sampling
    noise alone gives this batch on average (:func:`psi_noise`, for the signal ``psi`` is).
    """

    column: str
    kind: str  # "numeric" | "categorical"
    test: str  # "ks" | "chi2" | "missing"
    statistic: float
    p_value: float
    psi: float
    n: int
    missing: float = 0.0
    missing_ref: float | None = None
    psi_noise: float = 0.0

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


def profile_column(
    values: Any, kind: str, *, seed: int = 0, n_bins: int = N_BINS
) -> dict[str, Any]:
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
    rows = int(len(pd.Series(values)))
    if kind == "categorical":
        series = pd.Series(values).dropna()
        counts = series.map(_label).value_counts()
        return {
            "kind": kind,
            "n": int(len(series)),
            "counts": {str(k): int(v) for k, v in counts.items()},
            "rows": rows,
            "missing": _share(rows - len(series), rows),
        }
    array = _numeric_values(values)
    missing = _share(rows - int(array.size), rows)
    if array.size == 0:
        return {
            "kind": kind,
            "n": 0,
            "edges": [],
            "shares": [1.0],
            "sample": [],
            "rows": rows,
            "missing": missing,
        }
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
        "rows": rows,
        "missing": missing,
    }


def _share(part: int, whole: int) -> float:
    return float(part / whole) if whole else 0.0


def profile_frame(
    X: pd.DataFrame, categorical: Sequence[str], *, seed: int = 0
) -> dict[str, dict[str, Any]]:
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
    cur = np.array(
        [current.get(k, 0) for k in known] + [current[~current.index.isin(known)].sum()],
        dtype=float,
    )
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


def _bin_counts(profile: Mapping[str, Any], array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference and batch counts over a numeric profile's PSI bins."""
    edges = np.asarray(profile["edges"], dtype=float)
    shares = np.asarray(profile["shares"], dtype=float)
    ref = np.round(shares * float(profile.get("n") or 0))
    cur = np.bincount(np.searchsorted(edges, array, side="right"), minlength=len(shares))
    return ref, cur.astype(float)


def bins_test(profile: Mapping[str, Any], values: Any) -> tuple[float, float]:
    """Chi-squared test of homogeneity on a numeric column's PSI bins (2 x bins table of the
    reference's and the batch's counts; bins empty in both are dropped).

    The test of the statistic PSI estimates: it sees a shift that empties or fills a tail bin,
    which Kolmogorov-Smirnov (a largest CDF gap) does not on a small batch.
    """
    array = _numeric_values(values)
    if array.size == 0 or not profile.get("n"):
        return 0.0, 1.0
    ref, cur = _bin_counts(profile, array)
    keep = (ref + cur) > 0
    if keep.sum() < 2:
        return 0.0, 1.0
    result = stats.chi2_contingency(np.vstack([ref[keep], cur[keep]]), correction=False)
    return float(result.statistic), float(result.pvalue)


def psi_noise(n_bins: int, n: int, n_reference: int) -> float:
    """The PSI that sampling noise alone gives on average: (bins - 1) * (1/n + 1/n_reference).

    ``n_bins``: the bins (categories) the reference fills; ``n``: the batch's values;
    ``n_reference``: the reference's. With no change at all, ``PSI / (1/n + 1/n_reference)``
    is close to a chi-squared variable with ``n_bins - 1`` degrees of freedom (Yurdakul 2018),
    whose mean this is. 0 when there is nothing to compare (one bin, or no values).

    Example::

        >>> round(psi_noise(10, 200, 2000), 4)
        0.0495
    """
    if n_bins <= 1 or n <= 0 or n_reference <= 0:
        return 0.0
    return float((n_bins - 1) * (1.0 / n + 1.0 / n_reference))


def _value_noise(profile: Mapping[str, Any], n: int) -> float:
    """:func:`psi_noise` of a batch of ``n`` values against a profile's bins or categories."""
    if profile["kind"] == "categorical":
        filled = sum(1 for v in profile["counts"].values() if v > 0)
    else:
        filled = sum(1 for v in profile["shares"] if v > 0)
    return psi_noise(filled, n, int(profile.get("n") or 0))


def missing_test(profile: Mapping[str, Any], values: Any) -> tuple[float, float, float] | None:
    """Fisher's exact test and two-bin PSI of the batch's missing share against the reference's.

    Returns ``(batch share, p-value, PSI)``, or None when the profile does not record its
    missing share (made before it was monitored). Both shares 0: p 1, PSI 0.
    """
    if "missing" not in profile:
        return None
    series = pd.Series(values)
    n = int(len(series))
    present = (
        int(_numeric_values(series).size)
        if profile["kind"] == "numeric"
        else int(series.notna().sum())
    )
    share = _share(n - present, n)
    ref_rows = int(profile.get("rows") or profile.get("n") or 0)
    ref_missing = round(float(profile["missing"]) * ref_rows)
    if n == 0 or ref_rows == 0 or (ref_missing == 0 and present == n):
        return share, 1.0, 0.0
    table = [[ref_missing, ref_rows - ref_missing], [n - present, present]]
    p_value = float(stats.fisher_exact(table).pvalue)
    ref_share = float(profile["missing"])
    return share, p_value, psi([1 - ref_share, ref_share], [1 - share, share])


def column_drift(name: str, profile: Mapping[str, Any], values: Any) -> ColumnDrift:
    """Test one column of a batch against its reference profile: its values and its missing
    share.

    The column's tests (numeric: KS and the binned chi-squared; categorical: chi-squared; both:
    the missing share when either side has missing values) are Bonferroni-corrected together,
    so the column contributes one valid p-value to the batch's correction; ``test`` names the
    smallest, ``psi`` is the larger of the values' and the missing share's PSI.
    """
    rows = int(len(pd.Series(values)))
    if profile["kind"] == "categorical":
        statistic, p_value = chi2_test(profile, values)
        n = int(pd.Series(values).notna().sum())
        tests = [("chi2", statistic, p_value)]
        psi_value = psi_categorical(profile, values)
    else:
        n = int(_numeric_values(values).size)
        tests = [("ks", *ks_test(profile["sample"], values))]
        if "edges" in profile and "shares" in profile:
            tests.append(("bins", *bins_test(profile, values)))
        psi_value = psi_numeric(profile, values)
    noise = _value_noise(profile, n)
    missing = missing_test(profile, values)
    if missing is None:
        if n == 0 and rows and profile.get("n"):
            # An old profile without a missing share: an empty column is still no evidence of
            # stability; it is the most a column can drift.
            return ColumnDrift(
                name,
                profile["kind"],
                "missing",
                1.0,
                0.0,
                psi([1.0, 0.0], [0.0, 1.0]),
                0,
                1.0,
                None,
                psi_noise(2, rows, int(profile["n"])),
            )
        ref_share = None
        share = 0.0
    else:
        share, p_missing, psi_missing = missing
        ref_share = float(profile["missing"])
        if share > 0 or ref_share > 0:
            tests.append(("missing", share - ref_share, p_missing))
            if psi_missing > psi_value:
                ref_rows = int(profile.get("rows") or profile.get("n") or 0)
                psi_value, noise = psi_missing, psi_noise(2, rows, ref_rows)
    # Several tests of one column: Bonferroni over them, then the column is as drifted as its
    # most significant signal (the first of equals: KS before the bins, values before missing).
    test, statistic, p_value = min(tests, key=lambda t: t[2])
    p_value = min(1.0, len(tests) * p_value)
    return ColumnDrift(
        name, profile["kind"], test, statistic, p_value, psi_value, n, share, ref_share, noise
    )


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
