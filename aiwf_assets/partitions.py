"""Partitioning shared by every daily asset (the delivery day of a landed file).

From AIWF_PARTITION_START to AIWF_PARTITION_END (inclusive) or, without an end, to today.
"""

import datetime as dt

import dagster as dg

from aiwf_assets.settings import get_settings


def _end_date(last_day: str | None) -> str | None:
    """DailyPartitionsDefinition's end_date is exclusive: the day after the last partition."""
    if last_day is None:
        return None
    return (dt.date.fromisoformat(last_day) + dt.timedelta(days=1)).isoformat()


daily_partitions = dg.DailyPartitionsDefinition(
    start_date=get_settings().partition_start, end_date=_end_date(get_settings().partition_end)
)
