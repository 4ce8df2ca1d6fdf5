"""Weighted binning for scikit-learn's histogram gradient boosting in one sort per feature.

scikit-learn 1.8 and 1.9 bin a feature fitted with sample weights (on up to 200,000 rows;
above that the weights drive a subsample and the unweighted path runs) by calling
`_weighted_percentile` once per bin edge: 254 sorts of the column, per feature, per fit.
The demand model fits with weights, and on its features that was about three quarters of
every fit's CPU (docs/ML.md, Performance note). Upstream rewrote the binning after 1.9
(scikit-learn PR #34248, not in a release yet). Until the pinned version has it,
`install()` puts `OneSortPercentiles` in the binning module's place of
`_weighted_percentile`: on the first edge of a column it asks scikit-learn's own
`_weighted_percentile` for every edge the binning will ask for, in one call (one sort, the
same arithmetic per percentile), and answers the following edges of that column from
those values. scikit-learn's binning code itself is unchanged, so the thresholds and the
models are bit-identical (tested against the original).
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import numpy as np
from sklearn.ensemble._hist_gradient_boosting import binning
from sklearn.utils import stats


def per_percentile_loop(function: object) -> bool:
    """Whether `function` is the binning this module speeds up: one call per percentile."""
    return "for percentile in percentiles" in inspect.getsource(function)  # type: ignore[arg-type]


def bin_edge_percentiles(first: float) -> np.ndarray | None:
    """The percentiles the binning asks for when its first one is `first`
    (`linspace(0, 100, max_bins + 1)[1:-1]`), or None if `first` is not such a start."""
    if not 0 < first < 50:
        return None
    max_bins = round(100 / first)  # linspace's step is 100 / max_bins
    edges = np.linspace(0, 100, num=max_bins + 1)[1:-1]
    return edges if edges.size and edges[0] == first else None


class OneSortPercentiles:
    """`_weighted_percentile` for scikit-learn's binning: a column's edges from one call.

    Answers from the column's precomputed edges only for the same column and weight arrays
    (identity, per thread: the binning runs features on a thread pool) and a percentile of
    the set; anything else goes to the original unchanged."""

    def __init__(self, original: Any):
        self.original = original
        self._local = threading.local()

    def __call__(
        self,
        array: Any,
        sample_weight: Any,
        percentile_rank: Any = 50,
        average: bool = False,
        xp: Any = None,
    ) -> Any:
        if xp is not None or np.ndim(percentile_rank) != 0 or np.ndim(array) != 1:
            return self.original(array, sample_weight, percentile_rank, average=average, xp=xp)
        cached = getattr(self._local, "column", None)
        if cached is None or cached[0] is not array or cached[1] is not sample_weight:
            cached = None
            edges = bin_edge_percentiles(float(percentile_rank))
            if edges is not None:
                values = self.original(array, sample_weight, edges, average=average)
                cached = (
                    array,
                    sample_weight,
                    average,
                    dict(zip(edges.tolist(), values, strict=True)),
                )
            self._local.column = cached
        if cached is not None and cached[2] == average:
            value = cached[3].get(float(percentile_rank))
            if value is not None:
                return value
        return self.original(array, sample_weight, percentile_rank, average=average)


def install() -> bool:
    """Use `OneSortPercentiles` in scikit-learn's binning while the installed version has
    the per-percentile loop (a version without it is left alone). True if in use."""
    if isinstance(binning.__dict__.get("_weighted_percentile"), OneSortPercentiles):
        return True
    if binning.__dict__.get("_weighted_percentile") is not stats._weighted_percentile:
        return False
    if not per_percentile_loop(binning._find_binning_thresholds):
        return False
    binning._weighted_percentile = OneSortPercentiles(stats._weighted_percentile)
    return True
