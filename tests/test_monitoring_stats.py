"""Pure statistics (PSI, KS, robust z, IQR) and the drift verdicts built on them."""

import math

import numpy as np
import polars as pl
import pytest

from aiwf_assets.monitoring.drift import DriftThresholds, drift_table, features_at_level
from aiwf_assets.monitoring.stats import iqr_bounds, judge, ks_statistic, psi, robust_z

RNG = np.random.default_rng(7)
NORMAL = RNG.normal(0.0, 1.0, 5000)
THRESHOLDS = DriftThresholds(psi_warn=0.1, psi_retrain=0.25, ks_warn=0.1, ks_retrain=0.2)


def test_psi_is_zero_for_the_same_sample_and_large_for_a_shift() -> None:
    assert psi(NORMAL, NORMAL) == pytest.approx(0.0, abs=1e-12)
    assert psi(NORMAL, RNG.normal(0.0, 1.0, 5000)) < 0.02  # sampling noise only
    assert psi(NORMAL, NORMAL + 1.0) > 0.25


def test_psi_counts_missing_values_as_their_own_bin() -> None:
    with_gaps = NORMAL.copy()
    with_gaps[: len(with_gaps) // 3] = np.nan
    assert psi(NORMAL, with_gaps) > 0.25


def test_psi_handles_a_constant_reference() -> None:
    ones = np.ones(100)
    assert psi(ones, ones) == pytest.approx(0.0, abs=1e-12)
    assert psi(ones, np.full(100, 2.0)) > 1.0


def test_ks_statistic_is_the_largest_ecdf_distance() -> None:
    assert ks_statistic([1, 2, 3, 4], [1, 2, 3, 4]) == 0.0
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)
    assert ks_statistic([1, 2], [10, 11]) == 1.0
    assert math.isnan(ks_statistic([1.0, 2.0], [np.nan]))


def test_robust_z_uses_median_and_mad() -> None:
    # median 3, MAD 1 -> robust sd 1.4826
    assert robust_z([1, 2, 3, 4, 5], 6) == pytest.approx(3 / 1.4826)
    assert robust_z([1, 2, 3, 4, 500], 3) == 0.0  # one wild value does not move the centre
    assert robust_z([5, 5, 5], 6, min_scale=0.5) == pytest.approx(2.0)


def test_iqr_bounds_are_tukey_fences() -> None:
    assert iqr_bounds([1, 2, 3, 4, 5]) == pytest.approx((-1.0, 7.0))
    assert iqr_bounds([1, 2, 3, 4, 5], k=3.0) == pytest.approx((-4.0, 10.0))


def test_half_the_usual_rows_is_flagged_with_the_expected_range() -> None:
    history = RNG.normal(400, 12, 28).round()
    verdict = judge(history, 200.0, z=3.5)
    assert verdict.anomalous
    assert 300 < verdict.low < 400 < verdict.high < 500
    assert verdict.robust_z < -10
    assert not judge(history, 410.0, z=3.5).anomalous


def test_judge_reports_the_same_robust_z_as_robust_z() -> None:
    for min_scale in (1e-9, 1.0, 40.0):
        history = RNG.normal(400, 12, 28).round()
        for value in (200.0, 401.0, 455.5):
            assert judge(history, value, z=3.5, min_scale=min_scale).robust_z == robust_z(
                history, value, min_scale=min_scale
            )


def test_both_rules_must_agree_before_a_value_is_anomalous() -> None:
    history = [10, 10, 10, 10, 11, 10, 10, 30]  # IQR fences are tight, MAD sd is 0
    verdict = judge(history, 12.0, z=3.5, min_scale=1.0)
    assert verdict.value > iqr_bounds(history)[1]  # outside the fences
    assert not verdict.anomalous  # but within 3.5 robust sds (min_scale 1)


def test_drift_levels_follow_the_thresholds() -> None:
    assert THRESHOLDS.level(0.05, 0.05) == "ok"
    assert THRESHOLDS.level(0.12, 0.05) == "warn"
    assert THRESHOLDS.level(0.05, 0.15) == "warn"
    assert THRESHOLDS.level(0.3, 0.0) == "retrain"
    assert THRESHOLDS.level(0.0, float("nan")) == "ok"
    with pytest.raises(ValueError, match="below retrain"):
        DriftThresholds(psi_warn=0.3, psi_retrain=0.2, ks_warn=0.1, ks_retrain=0.2)


def test_drift_table_ranks_the_drifted_feature_first() -> None:
    reference = pl.DataFrame({"stable": NORMAL, "moved": NORMAL})
    current = pl.DataFrame({"stable": RNG.normal(0, 1, 5000), "moved": NORMAL * 2 + 1})
    table = drift_table(reference, current, ["stable", "moved"], THRESHOLDS)
    assert table["feature"].to_list() == ["moved", "stable"]
    assert table["level"].to_list() == ["retrain", "ok"]
    assert features_at_level(table, "warn") == ["moved"]
    assert features_at_level(table, "retrain") == ["moved"]
