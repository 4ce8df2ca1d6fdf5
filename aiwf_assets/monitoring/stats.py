"""Pure statistics for drift and anomaly detection (numpy only, no Dagster).

- `psi`: population stability index of a current sample against a reference,
  on the reference's quantile bins (missing values get their own bin).
- `ks_statistic`: two-sample Kolmogorov-Smirnov statistic (max ECDF distance).
- `robust_z`: distance from the median in robust standard deviations (MAD).
- `iqr_bounds`: Tukey fences q1 - k*IQR, q3 + k*IQR.
- `judge`: both rules together, with the expected range to show next to a flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAD_TO_SD = 1.4826  # MAD of a normal distribution times this is its standard deviation
PSI_FLOOR = 1e-4  # share given to an empty bin so the log stays finite


def _as_array(values: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (duplicates dropped for discrete data)."""
    finite = reference[np.isfinite(reference)]
    if finite.size == 0:
        return np.array([])
    return np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin: len(edges) + 1 value bins, then one bin for NaN/inf."""
    finite = np.isfinite(values)
    counts = np.bincount(
        np.searchsorted(edges, values[finite], side="left"), minlength=edges.size + 1
    ).astype(np.float64)
    counts = np.append(counts, float((~finite).sum()))
    return counts / max(values.size, 1)


def psi(
    reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray, bins: int = 10
) -> float:
    """Population stability index; 0 = same distribution, > 0.25 is conventionally large."""
    ref, cur = _as_array(reference), _as_array(current)
    if ref.size == 0 or cur.size == 0:
        raise ValueError("PSI needs a non-empty reference and current sample")
    edges = quantile_edges(ref, bins)
    expected = np.clip(bin_shares(ref, edges), PSI_FLOOR, None)
    actual = np.clip(bin_shares(cur, edges), PSI_FLOOR, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_statistic(
    reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray
) -> float:
    """Largest distance between the two empirical CDFs of the finite values (0..1).

    NaN when either side has no finite value (PSI's missing bin covers that case).
    """
    ref, cur = _as_array(reference), _as_array(current)
    ref, cur = np.sort(ref[np.isfinite(ref)]), np.sort(cur[np.isfinite(cur)])
    if ref.size == 0 or cur.size == 0:
        return float("nan")
    grid = np.concatenate([ref, cur])
    cdf_ref = np.searchsorted(ref, grid, side="right") / ref.size
    cdf_cur = np.searchsorted(cur, grid, side="right") / cur.size
    return float(np.max(np.abs(cdf_ref - cdf_cur)))


def robust_scale(history: np.ndarray, min_scale: float) -> float:
    """MAD-based standard deviation, never below `min_scale` (a flat history is not exact)."""
    mad = float(np.median(np.abs(history - np.median(history))))
    return max(MAD_TO_SD * mad, min_scale)


def robust_z(history: Sequence[float] | np.ndarray, value: float, min_scale: float = 1e-9) -> float:
    """(value - median) / robust sd of the history."""
    hist = _as_array(history)
    if hist.size == 0:
        raise ValueError("robust z needs a non-empty history")
    return float((value - np.median(hist)) / robust_scale(hist, min_scale))


def iqr_bounds(history: Sequence[float] | np.ndarray, k: float = 1.5) -> tuple[float, float]:
    """Tukey fences: values outside are outliers of the history."""
    hist = _as_array(history)
    if hist.size == 0:
        raise ValueError("IQR bounds need a non-empty history")
    q1, q3 = np.quantile(hist, [0.25, 0.75])
    return float(q1 - k * (q3 - q1)), float(q3 + k * (q3 - q1))


@dataclass(frozen=True)
class Judgement:
    value: float
    low: float  # expected range: a value inside it is normal
    high: float
    robust_z: float
    anomalous: bool


def judge(
    history: Sequence[float] | np.ndarray,
    value: float,
    z: float,
    k: float = 1.5,
    min_scale: float = 1e-9,
) -> Judgement:
    """Anomalous when the value is beyond `z` robust sds AND outside the IQR fences.

    Requiring both keeps a single noisy rule from paging anyone. The expected range
    reported is the wider of the two bands (what is normal by either rule).
    """
    hist = _as_array(history)
    centre, scale = float(np.median(hist)), robust_scale(hist, min_scale)
    fence_low, fence_high = iqr_bounds(hist, k)
    low, high = min(centre - z * scale, fence_low), max(centre + z * scale, fence_high)
    # robust_z(hist, value, min_scale), without computing the median and scale again
    return Judgement(value, low, high, (value - centre) / scale, bool(value < low or value > high))
