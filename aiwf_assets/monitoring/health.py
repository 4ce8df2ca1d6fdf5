"""Pipeline health per landing source and day, and anomalies against each source's history.

Metrics (one row per source and delivery day, from the cleaned tables):
rows (cleaned + quarantined), quarantine_rate, null_customer_rate (share of
cleaned rows without a customer_key) and staleness_hours (from the newest
event in the day's data to the end of the delivery day: a feed that stopped
early is stale). A source with no delivery that day has rows = 0.

Each metric of a day is judged against the same source's previous days:
robust z-score AND IQR fences (`stats.judge`); with enough history an
IsolationForest over all metrics flags days more isolated than any day of
the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import polars as pl
from sklearn.ensemble import IsolationForest

from aiwf_assets.monitoring.stats import judge

METRICS = ("rows", "quarantine_rate", "null_customer_rate", "staleness_hours")
HEALTH_SCHEMA = {
    "partition_date": pl.Date,
    "source": pl.String,
    "rows": pl.Int64,
    "rows_quarantined": pl.Int64,
    "quarantine_rate": pl.Float64,
    "null_customer_rate": pl.Float64,
    "staleness_hours": pl.Float64,
}
HISTORY_DAYS = 28  # window of previous days a metric is judged against
MIN_HISTORY_DAYS = 7  # fewer previous days: no verdict yet
FOREST_HISTORY_DAYS = 90
FOREST_MIN_HISTORY_DAYS = 30


@dataclass(frozen=True)
class EventTable:
    """A cleaned table (with customer_key) whose rows count towards a source's health."""

    table: str
    event_column: str


EVENT_TABLES = (
    EventTable("cleaned.order_lines", "ordered_at"),
    EventTable("cleaned.interactions", "occurred_at"),
)
QUARANTINE_TABLE = "cleaned.quarantine"


def source_of(column: str = "source_file") -> str:
    """SQL: the landing folder (= source) of a lineage path like `web_orders/2026-01-05.jsonl`."""
    return f"split_part({column}, '/', 1)"


def days_in(days: list[date]) -> str:
    """SQL: `partition_date IN (...)` (portable DuckDB/Postgres date literals)."""
    return "partition_date IN (" + ", ".join(f"DATE '{d.isoformat()}'" for d in days) + ")"


def events_sql(table: EventTable, days: list[date]) -> str:
    return (
        f"SELECT partition_date, {source_of()} AS source, COUNT(*) AS rows_cleaned, "
        "SUM(CASE WHEN customer_key IS NULL THEN 1 ELSE 0 END) AS null_customer_rows, "
        f"CAST(MAX(EXTRACT(EPOCH FROM {table.event_column})) AS DOUBLE PRECISION) AS latest_epoch "
        f"FROM {table.table} WHERE {days_in(days)} GROUP BY 1, 2"
    )


def quarantine_sql(days: list[date]) -> str:
    return (
        f"SELECT partition_date, {source_of()} AS source, COUNT(*) AS rows_quarantined "
        f"FROM {QUARANTINE_TABLE} WHERE {days_in(days)} GROUP BY 1, 2"
    )


def day_metrics(
    day: date, sources: list[str], events: pl.DataFrame, quarantined: pl.DataFrame
) -> pl.DataFrame:
    """One row per source for `day` (sources without data get rows = 0).

    events: source, rows_cleaned, null_customer_rows, latest_epoch of that day (several
    rows per source are summed: a source feeds one table, but nothing here assumes it).
    quarantined: source, rows_quarantined of that day.
    """
    end_of_day = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC).timestamp()
    per_source = (
        events.group_by("source")
        .agg(
            pl.col("rows_cleaned").sum().cast(pl.Int64),
            pl.col("null_customer_rows").sum().cast(pl.Int64),
            pl.col("latest_epoch").max().cast(pl.Float64),
        )
    )
    frame = (
        pl.DataFrame({"source": sources}, schema={"source": pl.String})
        .join(per_source, on="source", how="left")
        .join(quarantined.select("source", pl.col("rows_quarantined").cast(pl.Int64)),
              on="source", how="left")
        .with_columns(
            pl.col("rows_cleaned", "null_customer_rows", "rows_quarantined").fill_null(0)
        )
        .with_columns(rows=pl.col("rows_cleaned") + pl.col("rows_quarantined"))
        .with_columns(
            partition_date=pl.lit(day),
            quarantine_rate=_ratio(pl.col("rows_quarantined"), pl.col("rows")),
            null_customer_rate=_ratio(pl.col("null_customer_rows"), pl.col("rows_cleaned")),
            staleness_hours=(pl.lit(end_of_day) - pl.col("latest_epoch")) / 3600.0,
        )
    )
    return frame.select(list(HEALTH_SCHEMA)).cast(HEALTH_SCHEMA)  # type: ignore[arg-type]


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(numerator / denominator).otherwise(None)


def min_scale(metric: str, history: np.ndarray) -> float:
    """The smallest spread a metric's history is credited with (a flat history is not exact)."""
    if metric == "rows":
        return 1.0 + 0.05 * float(np.median(history))
    if metric == "staleness_hours":
        return 1.0
    return 0.01  # rates: one percentage point


def metric_anomalies(history: pl.DataFrame, today: pl.DataFrame, z: float) -> pl.DataFrame:
    """Judge each (source, metric) of `today` against that source's `history` rows.

    Returns source, partition_date, metric, value, low, high, robust_z, anomalous, for
    every judged value (sources with fewer than MIN_HISTORY_DAYS previous values are
    not judged).
    """
    rows = []
    for record in today.iter_rows(named=True):
        past = history.filter(
            pl.col("source") == record["source"],
            pl.col("partition_date") < record["partition_date"],
            pl.col("partition_date") >= record["partition_date"] - timedelta(days=HISTORY_DAYS),
        )
        for metric in METRICS:
            values = past[metric].drop_nulls().to_numpy().astype(np.float64)
            value = record[metric]
            if value is None or values.size < MIN_HISTORY_DAYS:
                continue
            verdict = judge(values, float(value), z, min_scale=min_scale(metric, values))
            rows.append({
                "source": record["source"],
                "partition_date": record["partition_date"],
                "metric": metric,
                "value": verdict.value,
                "low": verdict.low,
                "high": verdict.high,
                "robust_z": verdict.robust_z,
                "anomalous": verdict.anomalous,
            })
    return pl.DataFrame(rows, schema={
        "source": pl.String, "partition_date": pl.Date, "metric": pl.String, "value": pl.Float64,
        "low": pl.Float64, "high": pl.Float64, "robust_z": pl.Float64, "anomalous": pl.Boolean,
    })


def forest_anomalies(history: pl.DataFrame, today: pl.DataFrame) -> pl.DataFrame:
    """IsolationForest per source over all metrics, fitted on up to FOREST_HISTORY_DAYS
    previous days (at least FOREST_MIN_HISTORY_DAYS). A day is anomalous when it is more
    isolated than every day it was fitted on.

    Returns source, partition_date, score, threshold, anomalous.
    """
    rows = []
    for record in today.iter_rows(named=True):
        past = history.filter(
            pl.col("source") == record["source"],
            pl.col("partition_date") < record["partition_date"],
            pl.col("partition_date")
            >= record["partition_date"] - timedelta(days=FOREST_HISTORY_DAYS),
        )
        if past.height < FOREST_MIN_HISTORY_DAYS:
            continue
        train = _matrix(past)
        fill = np.nanmedian(train, axis=0)
        fill = np.where(np.isnan(fill), 0.0, fill)
        train = np.where(np.isnan(train), fill, train)
        point = _matrix(pl.DataFrame([record]).select(METRICS).cast(pl.Float64))
        point = np.where(np.isnan(point), fill, point)
        forest = IsolationForest(n_estimators=100, random_state=0).fit(train)
        threshold = float(forest.score_samples(train).min())
        score = float(forest.score_samples(point)[0])
        rows.append({
            "source": record["source"],
            "partition_date": record["partition_date"],
            "score": score,
            "threshold": threshold,
            "anomalous": score < threshold,
        })
    return pl.DataFrame(rows, schema={
        "source": pl.String, "partition_date": pl.Date, "score": pl.Float64,
        "threshold": pl.Float64, "anomalous": pl.Boolean,
    })


def _matrix(frame: pl.DataFrame) -> np.ndarray:
    return frame.select([pl.col(m).cast(pl.Float64) for m in METRICS]).to_numpy()
