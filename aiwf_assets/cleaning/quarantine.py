"""Quarantine overviews across every day: rows per channel and kind of reason, rows per day.

A reason reads `column: problem (value)`, sometimes with the delivery day or the
position in the file; the kind of reason leaves those out, so one problem counts once
whatever its value, day or line.
"""

from __future__ import annotations

import polars as pl

# the offending value, the delivery day and the position vary per row: not part of the kind
_DETAIL = r" \(.*\)$| for a [0-9-]+ delivery| at column [0-9]+"


def reasons_by_row(quarantine: pl.DataFrame) -> pl.DataFrame:
    """One row per (quarantined row, kind of reason): partition_date, channel, reason."""
    return (
        quarantine.select("partition_date", "channel", pl.col("reasons").str.split(";"))
        .explode("reasons")
        .select(
            "partition_date",
            "channel",
            pl.col("reasons").str.strip_chars().str.replace_all(_DETAIL, "").alias("reason"),
        )
    )


def by_reason(quarantine: pl.DataFrame) -> pl.DataFrame:
    """Rows per channel and kind of reason over every day, with the days it occurred on."""
    return (
        reasons_by_row(quarantine)
        .group_by("channel", "reason")
        .agg(
            pl.len().alias("rows"),
            pl.col("partition_date").n_unique().alias("days"),
            pl.col("partition_date").min().alias("first_day"),
            pl.col("partition_date").max().alias("last_day"),
        )
        .sort(["rows", "channel", "reason"], descending=[True, False, False])
    )


def by_day(quarantine: pl.DataFrame) -> pl.DataFrame:
    """Quarantined rows per delivery day and channel (days without any left out)."""
    return (
        quarantine.pivot(
            on="channel", index="partition_date", values="reasons", aggregate_function="len"
        )
        .fill_null(0)
        .sort("partition_date")
    )
