"""Partitioning shared by every daily asset (the delivery day of a landed file).

From AIWF_PARTITION_START to AIWF_PARTITION_END (inclusive) or, without an end, to today.
Built from the settings by `build_definitions` (`partitions_for(settings)`), never at import:
two Definitions built from two Settings in one process each have their own window.
"""

from __future__ import annotations

import datetime as dt
import functools

import dagster as dg
from dagster._core.errors import DagsterUnknownPartitionError

from aiwf_assets.settings import Settings, SettingsError


def daily_partitions_def(first_day: str, last_day: str | None) -> dg.DailyPartitionsDefinition:
    """Daily partitions from `first_day` to `last_day` (inclusive; None: up to today)."""
    # DailyPartitionsDefinition's end_date is exclusive: the day after the last partition
    end = (
        None
        if last_day is None
        else (dt.date.fromisoformat(last_day) + dt.timedelta(days=1)).isoformat()
    )
    partitions = dg.DailyPartitionsDefinition(start_date=first_day, end_date=end)
    object.__setattr__(
        partitions, "validate_partition_key", functools.partial(_validate_in_window, partitions)
    )
    return partitions


def partitions_for(settings: Settings) -> dg.DailyPartitionsDefinition:
    return daily_partitions_def(settings.partition_start, settings.partition_end)


def window(partitions: dg.DailyPartitionsDefinition) -> tuple[str, str | None]:
    """(first day, last day or None for 'up to today') of a daily partitions definition."""
    first = partitions.start.date().isoformat()
    if partitions.end is None:
        return first, None
    return first, (partitions.end.date() - dt.timedelta(days=1)).isoformat()


def outside_window_message(
    days: list[str], partitions: dg.DailyPartitionsDefinition, today: dt.date | None = None
) -> str:
    """Why these days have no partition, and which settings to change. A day inside the
    window up to AIWF_PARTITION_END that is not over yet (UTC) is said apart: Dagster makes a daily
    partition only once its day has ended, even when AIWF_PARTITION_END is later, so no
    setting brings it in before then (data dated ahead of the clock: a sender's wrong
    clock, or generated data). A day after AIWF_PARTITION_END that is over already waits
    for nothing: the message says to raise the end (which `aiwf demo` pins)."""
    first, last = window(partitions)
    today_key = (today or dt.datetime.now(dt.UTC).date()).isoformat()
    not_over = sorted(d for d in days if last and today_key <= d <= last and d >= first)
    outside = sorted(d for d in days if d not in not_over)
    end = f"AIWF_PARTITION_END={last}" if last else "today"
    # past the end and over already: no waiting brings them in, only a later end
    past_end = [d for d in outside if last and last < d < today_key]
    remedies = []
    if any(d < first for d in outside):
        remedies.append("set AIWF_PARTITION_START to an earlier day to take earlier files")
    if past_end:
        remedies.append(
            f"day(s) after the end are over already: set AIWF_PARTITION_END to {past_end[-1]}"
            " or later to take them (in the environment, or in aiwf.env in AIWF_HOME, where"
            " `aiwf demo` pins the window to the days it generated)"
        )
    if any(d >= first and d not in past_end for d in outside):
        remedies.append(
            "later files wait for their day (or a later AIWF_PARTITION_END)"
            if last else "later files wait for their day"
        )
    parts = []
    if outside:
        parts.append(
            f"day(s) {', '.join(outside)} outside the daily partition window (from "
            f"AIWF_PARTITION_START={first} to {end}, UTC): {', and '.join(remedies)}"
        )
    if not_over:
        parts.append(
            f"day(s) {', '.join(not_over)} not over yet (today is {today_key}, UTC): "
            "Dagster makes a daily partition once its day has ended, whatever "
            "AIWF_PARTITION_END says; their files wait for that (a file dated ahead of the "
            "clock may come from a sender with a wrong clock)"
        )
    return "; ".join(parts)


def require_partitions(days: list[str], partitions: dg.DailyPartitionsDefinition) -> list[str]:
    """`days` unchanged when each is a daily partition; else an error naming the setting
    (Dagster's own says only that no PartitionsDefinition contains the key)."""
    outside = [d for d in days if not partitions.has_partition_key(d)]
    if outside:
        raise SettingsError(outside_window_message(outside, partitions))
    return days


def _validate_in_window(
    partitions: dg.DailyPartitionsDefinition, partition_key: str, context
) -> None:
    """`partitions.validate_partition_key`, whose error names the settings to change.

    Dagster validates a requested key here (`dagster asset materialize --partition`, `dg
    launch --partition`, run requests, execute_in_process) and raises
    DagsterUnknownPartitionError; its CLI then adds only "must have a PartitionsDefinition
    containing the passed partition key". The same error type is raised (whoever catches it
    still does), with a message naming AIWF_PARTITION_START / AIWF_PARTITION_END; the CLI
    prints it above its own. Set on each instance `daily_partitions_def` makes rather than by
    subclassing, so the partitions stay a plain DailyPartitionsDefinition wherever Dagster
    looks at their type (snapshots, subsets, equality); tests/test_documented_commands.py
    runs the CLI.
    """
    try:
        dg.DailyPartitionsDefinition.validate_partition_key(partitions, partition_key, context)
    except DagsterUnknownPartitionError:
        try:
            dt.date.fromisoformat(partition_key)
        except ValueError:
            raise DagsterUnknownPartitionError(
                f"partition key {partition_key!r} is not a day: daily partitions are YYYY-MM-DD"
            ) from None
        raise DagsterUnknownPartitionError(
            outside_window_message([partition_key], partitions)
        ) from None
