"""Partitioning shared by every daily asset (the delivery day of a landed file).

From AIWF_PARTITION_START to AIWF_PARTITION_END (inclusive) or, without an end, to today.
"""

import datetime as dt

import dagster as dg
from dagster._core.errors import DagsterUnknownPartitionError

from aiwf_assets.settings import SettingsError, get_settings


def _end_date(last_day: str | None) -> str | None:
    """DailyPartitionsDefinition's end_date is exclusive: the day after the last partition."""
    if last_day is None:
        return None
    return (dt.date.fromisoformat(last_day) + dt.timedelta(days=1)).isoformat()


daily_partitions = dg.DailyPartitionsDefinition(
    start_date=get_settings().partition_start, end_date=_end_date(get_settings().partition_end)
)


def outside_window_message(days: list[str]) -> str:
    """Why these days have no partition, and which settings to change."""
    settings = get_settings()
    end = f"AIWF_PARTITION_END={settings.partition_end}" if settings.partition_end else "today"
    return (
        f"day(s) {', '.join(sorted(days))} outside the daily partition window (from "
        f"AIWF_PARTITION_START={settings.partition_start} to {end}, UTC): set "
        "AIWF_PARTITION_START to an earlier day to take earlier files; later files wait "
        "for their day (or a later AIWF_PARTITION_END)"
    )


def require_partitions(days: list[str]) -> list[str]:
    """`days` unchanged when each is a daily partition; else an error naming the setting
    (Dagster's own says only that no PartitionsDefinition contains the key)."""
    outside = [d for d in days if not daily_partitions.has_partition_key(d)]
    if outside:
        raise SettingsError(outside_window_message(outside))
    return days


def _validate_in_window(partition_key: str, context) -> None:
    """`daily_partitions.validate_partition_key`, whose error names the settings to change.

    Dagster validates a requested key here (`dagster asset materialize --partition`, `dg
    launch --partition`, run requests, execute_in_process) and raises
    DagsterUnknownPartitionError; its CLI then adds only "must have a PartitionsDefinition
    containing the passed partition key". The same error type is raised (whoever catches it
    still does), with a message naming AIWF_PARTITION_START / AIWF_PARTITION_END; the CLI
    prints it above its own. Set on this instance rather than by subclassing, so
    `daily_partitions` stays a plain DailyPartitionsDefinition wherever Dagster looks at its
    type (snapshots, subsets, equality); tests/test_documented_commands.py runs the CLI.
    """
    try:
        dg.DailyPartitionsDefinition.validate_partition_key(
            daily_partitions, partition_key, context
        )
    except DagsterUnknownPartitionError:
        try:
            dt.date.fromisoformat(partition_key)
        except ValueError:
            raise DagsterUnknownPartitionError(
                f"partition key {partition_key!r} is not a day: daily partitions are YYYY-MM-DD"
            ) from None
        raise DagsterUnknownPartitionError(outside_window_message([partition_key])) from None


object.__setattr__(daily_partitions, "validate_partition_key", _validate_in_window)
