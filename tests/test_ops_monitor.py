"""The decision rule, the monitor section's schema, and batch validation (pure: no storage)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tuneops.errors import DataError, SpecError
from tuneops.ops import drift
from tuneops.ops.monitor import (
    PERFORMANCE_METRICS,
    MonitorConfig,
    _aligned,
    _upper_bound,
    assess,
    decide,
    validate_batch,
)

CONFIG = MonitorConfig()


def feature(name: str, p: float, psi: float) -> dict:
    return {"column": name, "test": "ks", "p_adjusted": p, "psi": psi, "drifted": p < CONFIG.alpha}


STABLE_PREDICTION = {"test": "chi2", "p_value": 0.5, "psi": 0.01, "drifted": False}


def test_no_drift_is_ok() -> None:
    decision, reasons = decide([feature("a", 0.6, 0.02), feature("b", 0.3, 0.05)], STABLE_PREDICTION, None, CONFIG)
    assert decision == "ok"
    assert "no feature drifted" in reasons[0]
    assert "max PSI 0.050 (b)" in reasons[0]  # the largest PSI names its feature
    noisy = {**feature("day", 0.9, 2.5), "psi_noise": 1.7}  # a date column: PSI from sampling
    _, reasons = decide([feature("a", 0.6, 0.02), noisy], STABLE_PREDICTION, None, CONFIG)
    assert "max PSI 2.500 (day, of which noise ~1.700)" in reasons[0]


def test_one_moderate_drift_warns() -> None:
    decision, reasons = decide([feature("a", 0.001, 0.15), feature("b", 0.3, 0.05), feature("c", 0.9, 0.0)],
                               STABLE_PREDICTION, None, CONFIG)
    assert decision == "warn"
    assert "feature 'a' drifted" in reasons[0] and "moderate shift" in reasons[0]


def test_one_major_drift_retunes() -> None:
    decision, reasons = decide([feature("a", 1e-9, 0.4), feature("b", 0.3, 0.05), feature("c", 0.9, 0.0)],
                               STABLE_PREDICTION, None, CONFIG)
    assert decision == "retune"
    assert "PSI >= psi_retune 0.25" in reasons[0]


def test_large_psi_without_significance_is_not_drift() -> None:
    # Small batches give noisy PSI; the corrected test must agree before anything happens.
    decision, _ = decide([feature("a", 0.2, 0.4)], STABLE_PREDICTION, None, CONFIG)
    assert decision == "ok"


def test_share_of_drifted_features_retunes() -> None:
    features = [feature("a", 0.01, 0.12), feature("b", 0.02, 0.11), feature("c", 0.5, 0.01), feature("d", 0.7, 0.0)]
    decision, reasons = decide(features, STABLE_PREDICTION, None, CONFIG)
    assert decision == "retune"
    assert "2 of 4 features drifted (50% >= drift_share 50%)" in reasons[0]
    decision, _ = decide(features, STABLE_PREDICTION, None, MonitorConfig(drift_share=0.75))
    assert decision == "warn"


def test_prediction_drift() -> None:
    shifted = {"test": "chi2", "p_value": 1e-6, "psi": 0.3, "drifted": True}
    assert decide([feature("a", 0.6, 0.0)], shifted, None, CONFIG)[0] == "retune"
    assert decide([feature("a", 0.6, 0.0)], {**shifted, "psi": 0.05}, None, CONFIG)[0] == "warn"


def test_performance_drop_needs_confidence() -> None:
    perf = {"metric": "accuracy", "value": 0.7, "reference": 0.9, "drop": 0.2, "confident_drop": 0.12}
    decision, reasons = decide([feature("a", 0.6, 0.0)], STABLE_PREDICTION, perf, CONFIG)
    assert decision == "retune" and "dropped by more than max_metric_drop 0.05" in reasons[0]
    unsure = {**perf, "value": 0.84, "drop": 0.06, "confident_drop": 0.01}
    decision, reasons = decide([feature("a", 0.6, 0.0)], STABLE_PREDICTION, unsure, CONFIG)
    assert decision == "warn" and "not yet with confidence" in reasons[0]
    # A point estimate past the tolerance whose bound is not even below the reference is noise.
    noise = {**unsure, "confident_drop": -0.01}
    assert decide([feature("a", 0.6, 0.0)], STABLE_PREDICTION, noise, CONFIG)[0] == "ok"


def _profile(rng: np.random.Generator) -> dict:
    X = pd.DataFrame({"a": rng.normal(0, 1, 2000), "b": rng.uniform(0, 1, 2000), "c": rng.choice(["x", "y"], 2000)})
    return {
        "features": drift.profile_frame(X, ["c"]),
        "prediction": drift.profile_column(rng.choice([0, 1], 2000), "categorical"),
        "metric": "accuracy",
        "reference": 0.9,
    }


def test_assess_end_to_end_on_known_distributions() -> None:
    rng = np.random.default_rng(0)
    profile = _profile(rng)
    batch = pd.DataFrame({"a": rng.normal(0, 1, 300), "b": rng.uniform(0, 1, 300), "c": rng.choice(["x", "y"], 300)})
    preds = rng.choice([0, 1], 300)
    labels = np.where(rng.uniform(size=300) < 0.9, preds, 1 - preds)
    stationary = assess(profile, batch, preds, labels)
    assert stationary.decision == "ok", stationary.reasons
    assert stationary.performance["value"] == pytest.approx(np.mean(labels == preds))
    shifted = assess(profile, batch.assign(a=batch["a"] + 1.0), preds, labels)
    assert shifted.decision == "retune"
    assert any("'a'" in r for r in shifted.reasons)
    concept = assess(profile, batch, preds, 1 - labels)
    assert concept.decision == "retune" and "accuracy" in concept.reasons[0]


def test_monitor_section_schema() -> None:
    config = MonitorConfig.from_raw({"alpha": 0.01, "correction": "bonferroni", "min_rows": 100})
    assert (config.alpha, config.correction, config.min_rows) == (0.01, "bonferroni", 100)
    with pytest.raises(SpecError, match="monitor: unknown monitor setting 'alpah'.*Did you mean 'alpha'"):
        MonitorConfig.from_raw({"alpah": 0.01})
    with pytest.raises(SpecError, match=r"monitor.alpha: expected a number strictly between 0 and 1, received 2"):
        MonitorConfig.from_raw({"alpha": 2})
    with pytest.raises(SpecError, match="monitor.correction: unknown correction 'holm'; expected one of bh, bonferroni, none"):
        MonitorConfig.from_raw({"correction": "holm"})
    with pytest.raises(SpecError, match="monitor.min_rows: expected an integer >= 10, received 'many'"):
        MonitorConfig.from_raw({"min_rows": "many"})
    with pytest.raises(SpecError, match="monitor: expected a mapping"):
        MonitorConfig.from_raw([1, 2])


def _validate(frame: pd.DataFrame, min_rows: int = 10):
    return validate_batch(frame, features=["a", "b", "c"], categorical=["c"], target="target", min_rows=min_rows)


def test_malformed_batches_name_the_columns() -> None:
    good = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20), "c": ["x"] * 20, "target": [0, 1] * 10})
    X, y = _validate(good)
    assert list(X.columns) == ["a", "b", "c"] and y is not None
    X, y = _validate(good.drop(columns=["target"]))
    assert y is None
    with pytest.raises(DataError, match=r"missing feature column\(s\) b; unexpected column\(s\) extra.*nothing was recorded"):
        _validate(good.drop(columns=["b"]).assign(extra=1))
    # a column the training data's load dropped (a date) comes with batches from that source
    dated = good.assign(seen_at=pd.date_range("2024-01-01", periods=20, freq="h"))
    X, _ = validate_batch(dated, features=["a", "b", "c"], categorical=["c"], target="target",
                          min_rows=10, ignored=("seen_at",))
    assert list(X.columns) == ["a", "b", "c"]
    with pytest.raises(DataError, match=r"unexpected column\(s\) seen_at"):
        _validate(dated)
    bad_type = good.assign(a=["1.5"] * 19 + ["oops"])
    with pytest.raises(DataError, match=r"wrong type in column\(s\) a \(expected numbers, received .* such as 'oops'\)"):
        _validate(bad_type)
    with pytest.raises(DataError, match="batch: 20 rows, but at least 50 are needed"):
        _validate(good, min_rows=50)
    numeric_text = good.assign(a=[str(v) for v in good["a"]])  # numbers written as text are fine
    assert _validate(numeric_text)[0]["a"].dtype.kind == "f"


def test_a_feature_that_becomes_missing_retunes() -> None:
    rng = np.random.default_rng(1)
    profile = _profile(rng)
    batch = pd.DataFrame({"a": [np.nan] * 300, "b": rng.uniform(0, 1, 300), "c": rng.choice(["x", "y"], 300)})
    result = assess(profile, batch, rng.choice([0, 1], 300))
    assert result.decision == "retune", result.reasons
    a = next(f for f in result.features if f["column"] == "a")
    assert a["test"] == "missing" and a["missing"] == 1.0 and a["drifted"]
    assert "MISSING" in result.reasons[0]


def test_the_prediction_test_is_corrected_with_the_features_and_needs_a_psi_floor() -> None:
    rng = np.random.default_rng(2)
    profile = _profile(rng)
    batch = pd.DataFrame({"a": rng.normal(0, 1, 300), "b": rng.uniform(0, 1, 300), "c": rng.choice(["x", "y"], 300)})
    # predictions slightly off balance: a raw p below 0.05 but a small PSI
    preds = (rng.uniform(size=300) < 0.57).astype(int)
    result = assess(profile, batch, preds)
    p = result.prediction
    assert p["p_adjusted"] >= p["p_value"]
    assert p["psi"] < CONFIG.psi_floor and not p["drifted"] and result.decision == "ok", result.reasons
    # A significant shift below the PSI floor is not drift; above it, it is.
    loud = assess(profile, batch, preds, config=MonitorConfig(psi_floor=0.0, correction="none"))
    assert loud.prediction["drifted"] == (loud.prediction["p_value"] < 0.05)
    shifted = assess(profile, batch, np.ones(300, dtype=int))
    assert shifted.prediction["drifted"] and shifted.decision == "retune"


def test_the_monitor_subsections_are_validated_at_load_time() -> None:
    """A typo in each of verify, slo, live and alerts fails when the spec is loaded."""
    from tuneops.ops.alerts import ALERT_KINDS, AlertConfig
    from tuneops.ops.live import LivePolicy, SLOConfig
    from tuneops.ops.verify import VerifyConfig
    from tuneops.spec import ALERT_KINDS as SPEC_ALERT_KINDS

    cases = {
        "verify": ({"n_fold": 3}, r"monitor\.verify: unknown verify setting 'n_fold'.*Did you mean 'n_folds'"),
        "slo": ({"latency_p95": 5}, r"monitor\.slo: unknown SLO setting 'latency_p95'.*'latency_p95_ms'"),
        "live": ({"metrc": "accuracy"}, r"monitor\.live: unknown live setting 'metrc'.*Did you mean 'metric'"),
        "alerts": ({"webhok": "http://x"}, r"monitor\.alerts: unknown alert setting 'webhok'.*'webhook'"),
    }
    for section, (raw, message) in cases.items():
        with pytest.raises(SpecError, match=message):
            MonitorConfig.from_raw({section: raw})
    with pytest.raises(SpecError, match=r"monitor\.alerts\.on\[1\]: unknown alert kind 'slos'.*'slo'"):
        MonitorConfig.from_raw({"alerts": {"on": ["warn", "slos"]}})
    with pytest.raises(SpecError, match=r"monitor\.verify\.n_folds: expected an integer in \[2, 20\], received 1"):
        MonitorConfig.from_raw({"verify": {"n_folds": 1}})
    with pytest.raises(SpecError, match=r"monitor\.slo\.latency_p95_ms: expected a number > 0"):
        MonitorConfig.from_raw({"slo": {"latency_p95_ms": -1}})
    with pytest.raises(SpecError, match=r"monitor\.alerts\.webhook: expected an http:// or https:// URL"):
        MonitorConfig.from_raw({"alerts": {"webhook": "ftp://host"}})
    assert SPEC_ALERT_KINDS == ALERT_KINDS
    # What the spec accepts, the modules' own validation accepts and reads the same way.
    config = MonitorConfig.from_raw({
        "verify": {"n_folds": 3, "max_regression": 0.01}, "slo": {"latency_p95_ms": 20, "window_s": 60},
        "live": {"metric": "accuracy", "auto": False}, "alerts": {"command": "cat", "on": ["slo"]},
    })
    raw = config.to_dict()
    assert VerifyConfig.from_raw(raw["verify"]).n_folds == 3
    assert SLOConfig.from_raw(raw["slo"]).latency_p95_ms == 20.0
    assert LivePolicy.from_raw(raw["live"]).auto is False
    assert AlertConfig.from_raw(raw["alerts"]).command == ("cat",)
    assert "verify" not in MonitorConfig().to_dict()  # defaults are not written back


def test_the_accuracy_bootstrap_equals_scoring_each_replicate() -> None:
    # The bound of accuracy is computed for all replicates at once; it must be the value the
    # per-replicate scoring (every other metric's path) gives, for numeric and text labels.
    rng = np.random.default_rng(7)
    for seed, n in enumerate((5, 37, 200)):
        y = rng.integers(0, 3, n)
        pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
        for labels, predicted in ((y, pred), (y.astype(str), pred.astype(str))):
            y_arr, p_arr = _aligned(labels, predicted)
            idx = np.random.default_rng(seed).integers(0, n, size=(200, n))
            replicates = [PERFORMANCE_METRICS["accuracy"].score(y_arr[i], p_arr[i]) for i in idx]
            expected = float(np.quantile(replicates, 0.95))
            assert _upper_bound("accuracy", labels, predicted, 0.05, seed=seed) == expected


def test_the_metric_drop_is_corrected_with_the_batch_s_other_tests() -> None:
    rng = np.random.default_rng(4)
    profile = _profile(rng)
    n = 200
    batch = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.uniform(0, 1, n), "c": rng.choice(["x", "y"], n)})
    preds = rng.choice([0, 1], n)
    # Accuracy 0.84 against a reference of 0.9: a drop past the tolerance (0.05) by the point
    # estimate, one-sided p about 0.01 alone, but not below alpha once corrected with the 4 other
    # tests of the batch.
    wrong = np.zeros(n, dtype=bool)
    wrong[rng.choice(n, 32, replace=False)] = True
    labels = np.where(wrong, 1 - preds, preds)
    result = assess(profile, batch, preds, labels)
    assert min(f["p_value"] for f in [*result.features, result.prediction]) > 0.1  # the premise
    perf = result.performance
    assert perf["drop"] == pytest.approx(0.06)
    assert perf["p_value"] < CONFIG.alpha <= perf["p_adjusted"]
    assert result.decision == "ok", result.reasons
    # Without the correction the same batch warns: the p-value, not the point drop, decides.
    loud = assess(profile, batch, preds, labels, config=MonitorConfig(correction="none"))
    assert loud.decision == "warn" and "not yet with confidence" in loud.reasons[0]
    # A large drop is still found, corrected or not.
    bad = assess(profile, batch, preds, 1 - labels)
    assert bad.decision == "retune" and bad.performance["p_adjusted"] < CONFIG.alpha


def test_one_drifted_feature_of_two_is_judged_by_its_psi_not_by_the_share_rule() -> None:
    moderate = [feature("a", 0.001, 0.15), feature("b", 0.5, 0.01)]
    decision, reasons = decide(moderate, STABLE_PREDICTION, None, CONFIG)
    assert decision == "warn" and not any("drift_share" in r for r in reasons)
    major = [feature("a", 1e-9, 0.4), feature("b", 0.5, 0.01)]
    assert decide(major, STABLE_PREDICTION, None, CONFIG)[0] == "retune"


def _wide(rng: np.random.Generator, n: int, *, offset: float = 0.0) -> pd.DataFrame:
    """Five numeric features of different shapes (one an identifier-like uniform integer column,
    shifted by ``offset``) and a categorical one."""
    return pd.DataFrame({
        "normal": rng.normal(0, 1, n),
        "skewed": rng.exponential(1, n),
        "uniform": rng.uniform(0, 1, n),
        "counts": rng.poisson(3, n).astype(float),
        "id": rng.integers(0, 5000, n).astype(float) + offset,
        "c": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2]),
    })


def _wide_profile(rng: np.random.Generator, n: int = 3000) -> dict:
    return {
        "features": drift.profile_frame(_wide(rng, n), ["c"]),
        "prediction": drift.profile_column(rng.choice([0, 1], n, p=[0.6, 0.4]), "categorical"),
        "metric": "accuracy",
        "reference": 0.9,
    }


def test_pure_sampling_noise_rarely_warns_at_any_batch_size() -> None:
    """Stationary batches of 50, 200 and 1,000 rows (six features and the predictions, all drawn
    from the reference's distributions): the share of non-ok decisions stays within alpha at
    every size (Benjamini-Hochberg bounds the chance of any rejection by alpha when nothing
    changed), and within 2% from 200 rows, where the floor on the PSI net of its sampling noise
    clears the significant-but-small batches a raw floor of 0.1 let through."""
    rng = np.random.default_rng(8)
    profile = _wide_profile(rng)
    for n, n_batches in ((50, 120), (200, 150), (1000, 20)):
        non_ok, cleared = 0, 0
        for _ in range(n_batches):
            result = assess(profile, _wide(rng, n), rng.choice([0, 1], n, p=[0.6, 0.4]))
            non_ok += result.decision != "ok"
            cleared += any(
                f["p_adjusted"] < CONFIG.alpha and f["psi"] >= CONFIG.psi_floor and not f["drifted"]
                for f in result.features
            )
            noise = {f["column"]: f["psi_noise"] for f in result.features}
            assert noise["normal"] == pytest.approx(drift.psi_noise(10, n, 3000))
        rate = non_ok / n_batches
        # alpha plus two binomial standard errors at 50 rows; the floor's own target above.
        se = np.sqrt(CONFIG.alpha * (1 - CONFIG.alpha) / n_batches)
        limit = CONFIG.alpha + 2 * se if n == 50 else 0.02
        assert rate <= limit, (n, rate)
        if n == 200:
            assert cleared >= 1  # the noise-aware floor did something a fixed floor would not


def test_a_single_strongly_shifted_feature_is_detected_within_a_batch() -> None:
    """One feature of six shifted, no labels: a major shift retunes on the first 200-row batch.
    Both kinds: a location shift of a normal feature (KS's case) and an offset of a tenth of the
    range of an identifier-like uniform column, which empties a tail bin (PSI ~0.5) while
    moving the CDF by at most 0.1 (the binned test's case; KS alone missed it)."""
    rng = np.random.default_rng(9)
    profile = _wide_profile(rng)
    for column, offset in (("normal", 0.7), ("id", 500.0)):
        retuned = 0
        for _ in range(20):
            batch = _wide(rng, 200)
            batch[column] = batch[column] + offset
            result = assess(profile, batch, rng.choice([0, 1], 200, p=[0.6, 0.4]))
            retuned += result.decision == "retune"
            shifted = next(f for f in result.features if f["column"] == column)
            others = [f for f in result.features if f["column"] != column]
            assert not any(f["drifted"] for f in others) or result.decision == "retune"
        assert retuned >= 19, (column, retuned)
        assert any(f"feature {column!r} drifted" in r for r in result.reasons)
        assert shifted["psi"] >= CONFIG.psi_retune and "of which noise" in result.reasons[0]


def test_paired_gain_is_the_difference_on_the_same_resamples() -> None:
    from tuneops.ops.monitor import paired_gain

    y = np.array([0, 1] * 50)
    before = np.zeros(100, dtype=int)  # accuracy 0.5
    after = y.copy()
    after[:6] = 1 - after[:6]  # accuracy 0.94
    gain, low, high = paired_gain("accuracy", y, before, after)
    assert gain == pytest.approx(0.44) and 0.3 < low < gain < high < 0.6
    assert paired_gain("accuracy", y, after, after) == (0.0, 0.0, 0.0)  # nothing to resample
    # The same rows in both: one row apart on 100 is within noise.
    nearly = after.copy()
    nearly[10] = 1 - nearly[10]
    gain, low, high = paired_gain("accuracy", y, nearly, after)
    assert gain == pytest.approx(0.01) and low <= 0 < high
    # A metric to minimize: lower error is a positive gain.
    target = np.linspace(0, 10, 100)
    gain, low, _ = paired_gain("rmse", target, target + 2.0, target + 1.0)
    assert gain == pytest.approx(1.0) and low == pytest.approx(1.0)


def test_a_champion_without_a_reference_profile_is_refused_by_name(workdir) -> None:
    """A version added through the API without a profile crashed `monitor` with KeyError."""
    from _ops_helpers import iris, logistic, register

    from tuneops.errors import UsageError
    from tuneops.ops.monitor import check_batch
    from tuneops.ops.registry import Registry

    registry = Registry.open("bare", create=True)
    register(registry, logistic(1.0), workdir / "art", promote=True)
    X, y = iris()
    with pytest.raises(UsageError, match="champion 1 has no reference profile.*tuneops deploy"):
        check_batch(registry, X.assign(target=y))
    assert registry.events("monitor") == []  # nothing recorded
