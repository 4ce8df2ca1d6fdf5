"""Pipeline health per landing source and day, and anomalies against each source's history.

Metrics (one row per source and delivery day, from the cleaned tables):
rows (cleaned + quarantined), quarantine_rate, null_customer_rate (share of
cleaned rows without a customer_key) and staleness_hours (from the newest
event in the day's data to the end of the delivery day where the source keeps
its days: in its event column's `timezone` and up to its `day_ends_at`; a feed
that stopped early is stale). A source with no delivery that day has rows = 0.

Each metric of a day is judged against the same source's previous days:
robust z-score AND IQR fences (`stats.judge`); with enough history an
IsolationForest over all metrics flags days more isolated than any day it was
fitted on. One forest per source and week (fitted on the weeks before), and a
verdict is kept while its fingerprint is unchanged: a range run over a year
fits a forest per week, not per day, and re-running it after one day changed
fits only the forests whose training rows or days changed.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from aiwf_assets.monitoring import iforest
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


@dataclass(frozen=True)
class DayEnd:
    """Where a source's delivery day ends: its zone's wall clock at `at` on the next day
    (midnight, or the business day's end a till declares with `day_ends_at`)."""

    zone: str = "UTC"
    at: time = time()

    def epoch(self, day: date) -> float:
        """Seconds since the epoch at which `day` ends."""
        return datetime.combine(day + timedelta(days=1), self.at, ZoneInfo(self.zone)).timestamp()


def source_of(templates: Mapping[str, str], column: str = "source_file") -> str:
    """SQL: the daily source a lineage path like `web_orders/2026-01-05.jsonl` was landed by,
    the first of `templates` (source -> landing template) it follows; NULL for none. By the
    whole template, not the first folder: sources may share a folder (`exports/{date}_pos.csv`,
    `exports/{date}_web.jsonl`) or have a folder per day (`{date}/pos.csv`)."""
    whens = " ".join(
        f"WHEN {column} LIKE '{like_pattern(template)}' ESCAPE '\\' THEN '{sql_text(name)}'"
        for name, template in templates.items()
    )
    return f"CASE {whens} END" if whens else "CAST(NULL AS VARCHAR)"


def like_pattern(template: str) -> str:
    """A landing template as a SQL LIKE pattern (`{date}` -> `____-__-__`), for LIKE ... ESCAPE
    '\\', quotes doubled."""
    escaped = template.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sql_text(escaped.replace("{date}", "____-__-__"))


def sql_text(text: str) -> str:
    return text.replace("'", "''")


def days_in(days: list[date]) -> str:
    """SQL: `partition_date IN (...)` (portable DuckDB/Postgres date literals)."""
    return "partition_date IN (" + ", ".join(f"DATE '{d.isoformat()}'" for d in days) + ")"


def events_sql(table: EventTable, days: list[date], templates: Mapping[str, str]) -> str:
    return (
        f"SELECT partition_date, {source_of(templates)} AS source, COUNT(*) AS rows_cleaned, "
        "SUM(CASE WHEN customer_key IS NULL THEN 1 ELSE 0 END) AS null_customer_rows, "
        f"CAST(MAX(EXTRACT(EPOCH FROM {table.event_column})) AS DOUBLE PRECISION) AS latest_epoch "
        f"FROM {table.table} WHERE {days_in(days)} GROUP BY 1, 2"
    )


def quarantine_sql(days: list[date], templates: Mapping[str, str]) -> str:
    return (
        f"SELECT partition_date, {source_of(templates)} AS source, COUNT(*) AS rows_quarantined "
        f"FROM {QUARANTINE_TABLE} WHERE {days_in(days)} GROUP BY 1, 2"
    )


def day_metrics(
    day: date,
    day_ends: Mapping[str, DayEnd],
    events: pl.DataFrame,
    quarantined: pl.DataFrame,
) -> pl.DataFrame:
    """One row per source of `day_ends` for `day` (sources without data get rows = 0).

    events: source, rows_cleaned, null_customer_rows, latest_epoch of that day (several
    rows per source are summed: a source feeds one table, but nothing here assumes it).
    quarantined: source, rows_quarantined of that day.
    """
    sources = sorted(day_ends)
    end_of_day = pl.Series("end_of_day", [day_ends[s].epoch(day) for s in sources])
    per_source = events.group_by("source").agg(
        pl.col("rows_cleaned").sum().cast(pl.Int64),
        pl.col("null_customer_rows").sum().cast(pl.Int64),
        pl.col("latest_epoch").max().cast(pl.Float64),
    )
    frame = (
        pl.DataFrame(
            {"source": sources, "end_of_day": end_of_day},
            schema={"source": pl.String, "end_of_day": pl.Float64},
        )
        .join(per_source, on="source", how="left")
        .join(
            quarantined.select("source", pl.col("rows_quarantined").cast(pl.Int64)),
            on="source",
            how="left",
        )
        .with_columns(pl.col("rows_cleaned", "null_customer_rows", "rows_quarantined").fill_null(0))
        .with_columns(rows=pl.col("rows_cleaned") + pl.col("rows_quarantined"))
        .with_columns(
            partition_date=pl.lit(day),
            quarantine_rate=_ratio(pl.col("rows_quarantined"), pl.col("rows")),
            null_customer_rate=_ratio(pl.col("null_customer_rows"), pl.col("rows_cleaned")),
            staleness_hours=(pl.col("end_of_day") - pl.col("latest_epoch")) / 3600.0,
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
    not judged). Each source's history is sorted by day once and a day's window is a
    slice of it (found by binary search), not a filter of the whole history per day.
    """
    windows = {source: _SourceHistory(rows) for (source,), rows in history.group_by("source")}
    rows = []
    for record in today.iter_rows(named=True):
        past = windows.get(record["source"])
        if past is None:
            continue
        day = record["partition_date"]
        lo, hi = past.window(day - timedelta(days=HISTORY_DAYS), day)
        for metric in METRICS:
            values = past.values(metric, lo, hi)
            value = record[metric]
            if value is None or values.size < MIN_HISTORY_DAYS:
                continue
            verdict = judge(values, float(value), z, min_scale=min_scale(metric, values))
            rows.append(
                {
                    "source": record["source"],
                    "partition_date": day,
                    "metric": metric,
                    "value": verdict.value,
                    "low": verdict.low,
                    "high": verdict.high,
                    "robust_z": verdict.robust_z,
                    "anomalous": verdict.anomalous,
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            "source": pl.String,
            "partition_date": pl.Date,
            "metric": pl.String,
            "value": pl.Float64,
            "low": pl.Float64,
            "high": pl.Float64,
            "robust_z": pl.Float64,
            "anomalous": pl.Boolean,
        },
    )


class _SourceHistory:
    """One source's health rows sorted by day, as numpy arrays (a day's window is a slice)."""

    def __init__(self, rows: pl.DataFrame) -> None:
        rows = rows.sort("partition_date", maintain_order=True)
        self.days = rows["partition_date"].to_numpy()
        self.metrics = {
            m: (rows[m].cast(pl.Float64).to_numpy(), rows[m].is_null().to_numpy()) for m in METRICS
        }

    def window(self, first: date, end: date) -> tuple[int, int]:
        """[lo, hi) of the rows with first <= partition_date < end."""
        lo, hi = np.searchsorted(self.days, np.array([first, end], dtype="datetime64[D]"))
        return int(lo), int(hi)

    def values(self, metric: str, lo: int, hi: int) -> np.ndarray:
        """The metric's non-null values in rows [lo, hi)."""
        values, null = self.metrics[metric]
        return values[lo:hi][~null[lo:hi]]


FOREST_SCHEMA = {
    "source": pl.String,
    "partition_date": pl.Date,
    "score": pl.Float64,
    "threshold": pl.Float64,
    "anomalous": pl.Boolean,
    "fingerprint": pl.String,
}
FOREST_MODEL = "IsolationForest(n_estimators=100, random_state=0)"  # part of every fingerprint


@dataclass(frozen=True)
class ForestRun:
    verdicts: pl.DataFrame  # FOREST_SCHEMA
    fitted: int  # forests fitted
    scored: int  # verdicts computed anew (the others were kept)


def forest_window(day: date) -> tuple[date, date]:
    """[first, end) of the days the forest judging `day` is fitted on: the
    FOREST_HISTORY_DAYS before the Monday of its week. Every day of a week shares one
    fit, and a day's own data never moves the forest of its week."""
    week_start = day - timedelta(days=day.weekday())
    return week_start - timedelta(days=FOREST_HISTORY_DAYS), week_start


def forest_anomalies(
    history: pl.DataFrame, today: pl.DataFrame, previous: pl.DataFrame | None = None
) -> ForestRun:
    """IsolationForest per source and week over all metrics, fitted on the source's rows
    in `forest_window` (at least FOREST_MIN_HISTORY_DAYS of them; fewer: no verdict). A day
    is anomalous when it is more isolated than every day its forest was fitted on.

    history: health rows the windows are taken from (may include `today`'s days: a window
    ends before the day's week). previous: verdicts stored by an earlier run; a day whose
    fingerprint (model, training rows, the day's metrics) is unchanged keeps its stored
    verdict, so a week's forest is fitted only when one of its days needs a new verdict.

    Returns the verdicts (FOREST_SCHEMA rows), the forests fitted and the days scored anew.
    """
    stored = {}
    if previous is not None:
        stored = {
            (row["source"], row["partition_date"]): row for row in previous.iter_rows(named=True)
        }
    rows: list[dict] = []
    fits = scored = 0
    day = pl.col("partition_date")
    weeks = today.with_columns(week=day - pl.duration(days=day.dt.weekday() - 1))
    for (source, week), days in weeks.group_by(["source", "week"], maintain_order=True):
        first, end = forest_window(week)  # type: ignore[arg-type]
        past = history.filter(
            pl.col("source") == source,
            pl.col("partition_date") >= first,
            pl.col("partition_date") < end,
        ).sort("partition_date")
        if past.height < FOREST_MIN_HISTORY_DAYS:
            continue
        train = _matrix(past)
        with warnings.catch_warnings():  # a metric without any value (a silent source)
            warnings.simplefilter("ignore", RuntimeWarning)
            fill = np.nanmedian(train, axis=0)
        fill = np.where(np.isnan(fill), 0.0, fill)
        train = np.where(np.isnan(train), fill, train)
        trained_on = hashlib.sha256(
            FOREST_MODEL.encode() + str(train.shape).encode() + train.tobytes()
        )
        points = _matrix(days)
        points = np.where(np.isnan(points), fill, points)
        pending = []
        for record, point in zip(days.iter_rows(named=True), points, strict=True):
            fingerprint = trained_on.copy()
            fingerprint.update(point.tobytes())
            key = (source, record["partition_date"])
            row = {
                "source": source,
                "partition_date": record["partition_date"],
                "fingerprint": fingerprint.hexdigest(),
            }
            if key in stored and stored[key]["fingerprint"] == row["fingerprint"]:
                rows.append(stored[key])
            else:
                pending.append((row, point))
        if not pending:
            continue
        fits, scored = fits + 1, scored + len(pending)
        # IsolationForest(n_estimators=100, random_state=0).fit(train).score_samples(...)
        scores = iforest.score_samples(train, np.vstack([train, *(p for _, p in pending)]))
        threshold = float(scores[: train.shape[0]].min())
        for (row, _), score in zip(pending, scores[train.shape[0] :], strict=True):
            rows.append(
                {
                    **row,
                    "score": float(score),
                    "threshold": threshold,
                    "anomalous": bool(score < threshold),
                }
            )
    verdicts = pl.DataFrame(rows, schema=FOREST_SCHEMA).sort("partition_date", "source")
    return ForestRun(verdicts, fits, scored)


def _matrix(frame: pl.DataFrame) -> np.ndarray:
    return frame.select([pl.col(m).cast(pl.Float64) for m in METRICS]).to_numpy()
