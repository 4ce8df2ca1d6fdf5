"""Feature and prediction drift: which window is compared with which, and the verdicts.

The reference is what the champion saw when it was trained: the feature
snapshot at its training cutoff (`trained_through`), pinned once per champion
version by the monitoring asset so later feature rebuilds cannot move it.
The current window is the newest snapshot. Each feature gets PSI and KS; a
feature is at level `warn` or `retrain` when either statistic reaches that
level's threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from aiwf_assets.monitoring.stats import ks_statistic, psi

LEVELS = ("ok", "warn", "retrain")


@dataclass(frozen=True)
class DriftThresholds:
    psi_warn: float
    psi_retrain: float
    ks_warn: float
    ks_retrain: float

    def __post_init__(self) -> None:
        if not (self.psi_warn < self.psi_retrain and self.ks_warn < self.ks_retrain):
            raise ValueError(f"drift warn thresholds must be below retrain thresholds: {self}")

    def level(self, psi_value: float, ks_value: float) -> str:
        ks_value = 0.0 if ks_value != ks_value else ks_value  # NaN: PSI's missing bin decides
        if psi_value >= self.psi_retrain or ks_value >= self.ks_retrain:
            return "retrain"
        if psi_value >= self.psi_warn or ks_value >= self.ks_warn:
            return "warn"
        return "ok"


def snapshot_at(features: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """The newest snapshot on or before `as_of` (empty when there is none)."""
    dates = features.filter(pl.col("as_of_date") <= as_of)["as_of_date"]
    if dates.is_empty():
        return features.head(0)
    return features.filter(pl.col("as_of_date") == dates.max())


def latest_snapshot(features: pl.DataFrame) -> pl.DataFrame:
    return features.filter(pl.col("as_of_date") == features["as_of_date"].max())


def drift_table(
    reference: pl.DataFrame, current: pl.DataFrame, columns: list[str], thresholds: DriftThresholds
) -> pl.DataFrame:
    """One row per column: psi, ks and level; worst first."""
    rows = []
    for column in columns:
        ref = reference[column].cast(pl.Float64).to_numpy()
        cur = current[column].cast(pl.Float64).to_numpy()
        psi_value, ks_value = psi(ref, cur), ks_statistic(ref, cur)
        rows.append({
            "feature": column,
            "psi": psi_value,
            "ks": ks_value,
            "level": thresholds.level(psi_value, ks_value),
        })
    table = pl.DataFrame(rows, schema={
        "feature": pl.String, "psi": pl.Float64, "ks": pl.Float64, "level": pl.String,
    })
    rank = pl.col("level").replace_strict({lvl: i for i, lvl in enumerate(LEVELS)})
    return table.sort([rank, pl.col("psi")], descending=True)


def features_at_level(table: pl.DataFrame, level: str) -> list[str]:
    """Features at `level` or worse."""
    worse = LEVELS[LEVELS.index(level):]
    return table.filter(pl.col("level").is_in(worse))["feature"].to_list()
