"""The weighted binning swapped into scikit-learn gives the original's thresholds, bit for bit."""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.ensemble._hist_gradient_boosting import binning

from aiwf_assets.ml import demand, weighted_binning  # noqa: F401  (demand installs it)


def _columns() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    n = 5000
    spread = rng.lognormal(0, 1, n)
    ties = np.round(rng.normal(10, 3, n), 1)  # a few hundred distinct values, many ties
    with_nan = np.where(rng.random(n) < 0.1, np.nan, spread)
    few = rng.integers(0, 12, n).astype(float)  # fewer distinct values than bins
    weights = rng.lognormal(0, 1, n)
    zero_weights = np.where(rng.random(n) < 0.2, 0.0, weights)
    return [
        (spread, weights),
        (ties, weights),
        (ties, zero_weights),
        (with_nan, zero_weights),
        (few, weights),
        (np.full(n, 3.0), weights),
        (np.round(spread, 2), np.ones(n)),
    ]


@pytest.mark.parametrize("case", range(len(_columns())))
def test_weighted_thresholds_are_the_originals(case: int) -> None:
    column, weights = _columns()[case]
    expected = weighted_binning.ORIGINAL(column.copy(), 255, sample_weight=weights.copy())
    got = weighted_binning.find_binning_thresholds(column.copy(), 255, sample_weight=weights.copy())
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_the_swap_is_in_use_and_fits_the_same_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the pinned scikit-learn the swap is installed; a weighted fit predicts exactly
    as with the original binning."""
    assert weighted_binning.per_percentile_loop(weighted_binning.ORIGINAL)
    assert binning._find_binning_thresholds is weighted_binning.find_binning_thresholds
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.lognormal(0, 1, 3000), np.round(rng.normal(0, 1, 3000), 2)])
    y = rng.poisson(np.exp(0.3 * x[:, 1]) * 2).astype(float)
    weights = rng.lognormal(0, 1, 3000)

    def fitted() -> np.ndarray:
        model = HistGradientBoostingRegressor(loss="poisson", max_iter=30, random_state=42)
        return model.fit(x, y, sample_weight=weights).predict(x)

    swapped = fitted()
    monkeypatch.setattr(binning, "_find_binning_thresholds", weighted_binning.ORIGINAL)
    np.testing.assert_array_equal(swapped, fitted())
