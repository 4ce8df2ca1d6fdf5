"""Weighted binning for scikit-learn's histogram gradient boosting in one sort per feature.

scikit-learn 1.8 and 1.9 bin a feature fitted with sample weights (on up to 200,000 rows;
above that the weights drive a subsample and the unweighted path runs) by calling
`_weighted_percentile` once per bin edge: 254 sorts of the column, per feature, per fit.
The demand model fits with weights, and on its features that was about three quarters of
every fit's CPU (docs/ML.md, Performance note). Upstream rewrote the binning after 1.9
(scikit-learn PR #34248); until the pinned version has it, `install()` swaps in the
function below: scikit-learn 1.9's `_find_binning_thresholds` with the one change that
`_weighted_percentile` gets every percentile in one call. That call sorts once and
computes each percentile with the same arithmetic as a call of its own, so the thresholds,
and hence the models, are bit-identical (tested against the original).
"""

from __future__ import annotations

import inspect

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.ensemble._hist_gradient_boosting import binning
from sklearn.ensemble._hist_gradient_boosting.common import ALMOST_INF, X_DTYPE
from sklearn.utils.stats import _weighted_percentile

ORIGINAL = binning._find_binning_thresholds


def per_percentile_loop(function: object) -> bool:
    """Whether `function` is the binning this module replaces: one call per percentile."""
    return "for percentile in percentiles" in inspect.getsource(function)  # type: ignore[arg-type]


# Authors: The scikit-learn developers (BSD-3-Clause); from scikit-learn 1.9.1, one change
def find_binning_thresholds(
    col_data: np.ndarray, max_bins: int, sample_weight: np.ndarray | None = None
) -> np.ndarray:
    """`_find_binning_thresholds` of scikit-learn 1.9.1, weighted percentiles in one call
    (without weights: the original)."""
    if sample_weight is None:
        return ORIGINAL(col_data, max_bins)
    missing_mask = np.isnan(col_data)
    if missing_mask.any():
        col_data = col_data[~missing_mask]
        sample_weight = sample_weight[~missing_mask]
    nnz_sw = sample_weight != 0
    col_data = col_data[nnz_sw]
    sample_weight = sample_weight[nnz_sw]
    sort_idx = np.argsort(col_data)
    col_data = col_data[sort_idx]
    sample_weight = sample_weight[sort_idx]
    distinct_values = np.unique(col_data).astype(X_DTYPE)
    if len(distinct_values) == 1:
        return np.asarray([])
    if len(distinct_values) <= max_bins:
        bin_thresholds = sliding_window_view(distinct_values, 2).mean(axis=1)
    else:  # the change: every percentile from one sort
        percentiles = np.linspace(0, 100, num=max_bins + 1)[1:-1]
        bin_thresholds = _weighted_percentile(col_data, sample_weight, percentiles, average=True)
    unique_bin_values = np.unique(bin_thresholds)
    if unique_bin_values.shape[0] != bin_thresholds.shape[0]:
        bin_thresholds = unique_bin_values
    np.clip(bin_thresholds, a_min=None, a_max=ALMOST_INF, out=bin_thresholds)
    return bin_thresholds


def install() -> bool:
    """Use `find_binning_thresholds` in scikit-learn's binning while the installed version
    has the per-percentile loop (a version without it is left alone). True if in use."""
    if binning._find_binning_thresholds is find_binning_thresholds:
        return True
    if not per_percentile_loop(ORIGINAL):
        return False
    binning._find_binning_thresholds = find_binning_thresholds
    return True
