"""Drift tests against scipy and against known distributions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tuneops.ops import drift


def test_ks_matches_scipy_and_separates_known_distributions() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 800)
    same, shifted = rng.normal(0, 1, 300), rng.normal(0.5, 1, 300)
    profile = drift.profile_column(reference, "numeric")
    for batch in (same, shifted):
        ours = drift.column_drift("x", profile, batch)
        expected = stats.ks_2samp(reference, batch)
        ks = drift.ks_test(profile["sample"], batch)
        assert ks == pytest.approx((expected.statistic, expected.pvalue))
        # The column's p-value: KS and the binned chi-squared, Bonferroni-corrected for the two.
        binned = drift.bins_test(profile, batch)[1]
        assert ours.p_value == pytest.approx(min(1.0, 2 * min(expected.pvalue, binned)))
        assert ours.test == ("ks" if expected.pvalue <= binned else "bins")
    assert drift.column_drift("x", profile, shifted).p_value < 1e-6
    assert drift.column_drift("x", profile, same).p_value > 0.05


def test_ks_p_values_are_calibrated_under_no_drift() -> None:
    rng = np.random.default_rng(1)
    profile = drift.profile_column(rng.exponential(1, 5000), "numeric")
    p = [drift.ks_test(profile["sample"], rng.exponential(1, 200))[1] for _ in range(300)]
    # Same distribution: about 5% of p-values under 0.05 (binomial sd ~1.3%).
    assert 0.01 <= np.mean(np.array(p) < 0.05) <= 0.10


def test_psi_matches_the_analytic_value_for_a_normal_shift() -> None:
    rng = np.random.default_rng(2)
    profile = drift.profile_column(rng.normal(0, 1, 200_000), "numeric")
    batch = rng.normal(0.5, 1, 2_000_000)
    # The profile's bins are the reference deciles (close to N(0,1)'s); over those bins the
    # shifted distribution's shares are known exactly.
    assert np.allclose(profile["edges"], stats.norm.ppf(np.linspace(0, 1, 11)[1:-1]), atol=0.02)
    ref = np.array(profile["shares"])
    cur = np.diff(np.concatenate([[0], stats.norm.cdf(profile["edges"], loc=0.5), [1]]))
    analytic = float(np.sum((cur - ref) * np.log(cur / ref)))
    assert 0.2 < analytic < 0.3  # a 0.5 sd mean shift is a "major" shift by PSI practice
    assert drift.psi_numeric(profile, batch) == pytest.approx(analytic, rel=0.02)
    assert drift.psi_numeric(profile, rng.normal(0, 1, 200_000)) < 0.001


def test_chi2_matches_scipy_contingency_and_counts_unseen_categories() -> None:
    rng = np.random.default_rng(3)
    reference = rng.choice(["a", "b", "c"], 1000, p=[0.5, 0.3, 0.2])
    profile = drift.profile_column(reference, "categorical")
    batch = np.concatenate([rng.choice(["a", "b", "c"], 190, p=[0.2, 0.3, 0.5]), ["zz"] * 10])
    ours = drift.column_drift("c", profile, batch)
    table = np.array([
        [np.sum(reference == k) for k in ("a", "b", "c")] + [0],
        [np.sum(batch == k) for k in ("a", "b", "c")] + [10],
    ])
    order = list(profile["counts"])  # profile order: by frequency
    cols = [("a", "b", "c").index(k) for k in order] + [3]
    expected = stats.chi2_contingency(table[:, cols], correction=False)
    assert ours.test == "chi2"
    assert ours.statistic == pytest.approx(expected.statistic)
    assert ours.p_value == pytest.approx(expected.pvalue)
    assert ours.p_value < 1e-10
    same = drift.column_drift("c", profile, rng.choice(["a", "b", "c"], 200, p=[0.5, 0.3, 0.2]))
    assert same.p_value > 0.01 and same.psi < 0.1


def test_psi_categorical_by_hand() -> None:
    profile = drift.profile_column(["a"] * 50 + ["b"] * 50, "categorical")
    value = drift.psi_categorical(profile, ["a"] * 80 + ["b"] * 20)
    assert value == pytest.approx((0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5))


def test_corrections_match_scipy() -> None:
    p = [0.001, 0.01, 0.02, 0.04, 0.3, 0.9]
    assert drift.adjust_pvalues(p, "bh") == pytest.approx(list(stats.false_discovery_control(p, method="bh")))
    assert drift.adjust_pvalues(p, "bonferroni") == pytest.approx([min(1, v * 6) for v in p])
    assert drift.adjust_pvalues(p, "none") == pytest.approx(p)


def test_profile_is_json_and_ignores_missing_values() -> None:
    import json

    values = pd.Series([1.0, np.nan, 2.0, 3.0] * 30)
    profile = drift.profile_column(values, "numeric")
    assert profile["n"] == 90
    assert json.loads(json.dumps(profile)) == profile
    assert drift.column_drift("x", profile, values).p_value == pytest.approx(1.0)


def test_a_feature_that_becomes_missing_is_drift_not_stability() -> None:
    rng = np.random.default_rng(0)
    profile = drift.profile_column(pd.Series(rng.normal(size=2000)), "numeric")
    assert profile["missing"] == 0.0 and profile["rows"] == 2000
    empty = drift.column_drift("x", profile, pd.Series([np.nan] * 200))
    assert empty.test == "missing" and empty.n == 0 and empty.missing == 1.0
    assert empty.p_value < 1e-100 and empty.psi > 1.0
    partly = pd.Series(rng.normal(size=200))
    partly[:30] = np.nan
    some = drift.column_drift("x", profile, partly)
    assert some.test == "missing" and some.missing == pytest.approx(0.15) and some.p_value < 1e-6
    # Categorical columns too; and a batch as complete as its reference is judged on its values.
    categories = drift.profile_column(pd.Series(rng.choice(["a", "b"], 2000)), "categorical")
    assert drift.column_drift("c", categories, pd.Series([None] * 100)).test == "missing"
    clean = drift.column_drift("x", profile, pd.Series(rng.normal(size=200)))
    assert clean.test in ("ks", "bins") and clean.missing == 0.0 and clean.p_value > 0.01


def test_the_missing_share_test_is_fisher_exact_and_old_profiles_still_see_an_empty_column() -> None:
    from scipy import stats

    values = pd.Series([1.0, np.nan, 2.0, 3.0] * 250)  # 25% missing in the reference
    profile = drift.profile_column(values, "numeric")
    assert profile["missing"] == pytest.approx(0.25)
    batch = pd.Series([1.0, 2.0, np.nan, np.nan] * 25)  # 50% missing
    share, p_value, psi_value = drift.missing_test(profile, batch)
    assert share == pytest.approx(0.5)
    assert p_value == pytest.approx(stats.fisher_exact([[250, 750], [50, 50]]).pvalue)
    assert psi_value == pytest.approx(drift.psi([0.75, 0.25], [0.5, 0.5]))
    old = {k: v for k, v in profile.items() if k not in ("missing", "rows")}
    assert drift.missing_test(old, batch) is None
    empty = drift.column_drift("x", old, pd.Series([np.nan] * 50))
    assert empty.test == "missing" and empty.p_value == 0.0 and empty.psi > 1.0


def test_the_binned_test_is_the_contingency_test_of_the_psi_bins() -> None:
    rng = np.random.default_rng(4)
    profile = drift.profile_column(rng.normal(size=3000), "numeric")
    batch = rng.normal(0.3, 1, 250)
    edges = np.asarray(profile["edges"])
    reference = np.round(np.asarray(profile["shares"]) * 3000)
    counts = np.bincount(np.searchsorted(edges, batch, side="right"), minlength=len(edges) + 1)
    expected = stats.chi2_contingency(np.vstack([reference, counts]), correction=False)
    assert drift.bins_test(profile, batch) == pytest.approx((expected.statistic, expected.pvalue))
    assert drift.bins_test(profile, []) == (0.0, 1.0)


def test_an_offset_that_empties_a_tail_bin_is_found_by_the_binned_test_where_ks_is_blind() -> None:
    """An identifier-like column (PMLB churn's ``phone number``: the integers 0-4999): an offset
    of a tenth of its range moves its CDF by at most 0.1, which KS on 200 rows seldom tells from
    noise at the bar of a batch's correction, but empties the lowest PSI bin (PSI 0.3-0.9). The
    column's p-value must see it."""
    rng = np.random.default_rng(5)
    ids = rng.permutation(5000).astype(float)
    profile = drift.profile_column(ids[:2000], "numeric")
    bar = 0.05 / 21  # what the smallest p-value of churn's 21 tests must reach once corrected
    found, ks_alone = 0, 0
    for i in range(15):  # disjoint batches of the rows the reference did not see
        batch = ids[2000 + 200 * i : 2200 + 200 * i] + 500.0
        result = drift.column_drift("phone number", profile, batch)
        found += result.p_value < bar and result.test == "bins" and result.psi > 0.25
        ks_alone += drift.ks_test(profile["sample"], batch)[1] < bar
    assert found >= 14
    assert ks_alone <= 7  # the blind spot: KS alone reaches the bar in a minority of batches


def test_psi_noise_is_the_mean_psi_of_pure_sampling_noise() -> None:
    """With no change at all, a batch's PSI averages (bins - 1)(1/n + 1/m) (Yurdakul 2018):
    checked by simulation, each draw with its own reference of m values and batch of n."""
    rng = np.random.default_rng(6)
    assert drift.psi_noise(10, 200, 2000) == pytest.approx(9 * (1 / 200 + 1 / 2000))
    assert drift.psi_noise(1, 200, 2000) == drift.psi_noise(10, 0, 2000) == 0.0
    for n, m in ((200, 2000), (1000, 2000), (200, 500)):
        values = []
        for _ in range(300):
            profile = drift.profile_column(rng.exponential(1, m), "numeric")
            values.append(drift.psi_numeric(profile, rng.exponential(1, n)))
        assert np.mean(values) == pytest.approx(drift.psi_noise(10, n, m), rel=0.1), (n, m)
    # Categories too; and the column's test records the noise of the signal its PSI is.
    profile = drift.profile_column(rng.choice(["a", "b", "c"], 3000), "categorical")
    same = drift.column_drift("c", profile, rng.choice(["a", "b", "c"], 300))
    assert same.psi_noise == pytest.approx(drift.psi_noise(3, 300, 3000))
    numeric = drift.profile_column(rng.normal(size=1000), "numeric")
    empty = drift.column_drift("x", numeric, [np.nan] * 100)
    assert empty.test == "missing"
    assert empty.psi_noise == pytest.approx(drift.psi_noise(2, 100, 1000))
