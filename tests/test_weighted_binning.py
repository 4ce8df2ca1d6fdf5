"""The weighted binning swapped into scikit-learn gives the original's thresholds, bit for bit."""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.ensemble._hist_gradient_boosting import binning
from sklearn.utils import stats

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


def _original(column: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """scikit-learn's binning with its own `_weighted_percentile`, one call per edge."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(binning, "_weighted_percentile", stats._weighted_percentile)
        return binning._find_binning_thresholds(column.copy(), 255, sample_weight=weights.copy())


@pytest.mark.parametrize("case", range(len(_columns())))
def test_weighted_thresholds_are_the_originals(case: int) -> None:
    column, weights = _columns()[case]
    expected = _original(column, weights)
    assert isinstance(binning._weighted_percentile, weighted_binning.OneSortPercentiles)
    got = binning._find_binning_thresholds(column.copy(), 255, sample_weight=weights.copy())
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_a_column_is_sorted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """One call of the original per weighted column (254 before), other calls passed on."""
    calls: list[object] = []

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args[2])
        return stats._weighted_percentile(*args, **kwargs)

    monkeypatch.setattr(
        binning, "_weighted_percentile", weighted_binning.OneSortPercentiles(counting)
    )
    column, weights = _columns()[0]
    binning._find_binning_thresholds(column, 255, sample_weight=weights)
    binning._find_binning_thresholds(column * 2, 255, sample_weight=weights)
    assert len(calls) == 2 and all(np.ndim(c) == 1 and len(c) == 254 for c in calls)
    # a percentile outside a binning's set (someone else's call) goes to the original
    one = binning._weighted_percentile(column, weights, 37.5)
    assert calls[-1] == 37.5 and one == stats._weighted_percentile(column, weights, 37.5)
    assert weighted_binning.bin_edge_percentiles(100 / 255)[-1] == np.linspace(0, 100, 256)[-2]
    assert weighted_binning.bin_edge_percentiles(37.5) is None


def test_the_swap_is_in_use_and_fits_the_same_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the pinned scikit-learn the swap is installed; a weighted fit predicts exactly
    as with the original binning."""
    assert weighted_binning.per_percentile_loop(binning._find_binning_thresholds)
    assert weighted_binning.install()
    assert isinstance(binning._weighted_percentile, weighted_binning.OneSortPercentiles)
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.lognormal(0, 1, 3000), np.round(rng.normal(0, 1, 3000), 2)])
    y = rng.poisson(np.exp(0.3 * x[:, 1]) * 2).astype(float)
    weights = rng.lognormal(0, 1, 3000)

    def fitted() -> np.ndarray:
        model = HistGradientBoostingRegressor(loss="poisson", max_iter=30, random_state=42)
        return model.fit(x, y, sample_weight=weights).predict(x)

    swapped = fitted()
    monkeypatch.setattr(binning, "_weighted_percentile", stats._weighted_percentile)
    np.testing.assert_array_equal(swapped, fitted())
