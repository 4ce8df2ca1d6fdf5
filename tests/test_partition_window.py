"""The message for days without a daily partition: outside the configured window, or inside
it but not over yet (Dagster makes a day's partition only once the day has ended)."""

from __future__ import annotations

import datetime as dt

from aiwf_assets.partitions import daily_partitions_def, outside_window_message

TODAY = dt.date(2026, 12, 6)


def test_a_day_before_the_start_names_the_start_setting() -> None:
    partitions = daily_partitions_def("2026-01-01", "2026-12-31")
    message = outside_window_message(["2025-06-01"], partitions, today=TODAY)
    assert message.startswith(
        "day(s) 2025-06-01 outside the daily partition window (from "
        "AIWF_PARTITION_START=2026-01-01 to AIWF_PARTITION_END=2026-12-31, UTC)"
    )
    assert "not over yet" not in message


def test_a_day_inside_the_window_that_is_not_over_is_not_called_outside_it() -> None:
    """Generated data for a whole year, run in December: the window ends 2026-12-31, but
    2026-12-06 .. 2026-12-31 have no partition yet; the message says why, not that they are
    outside a window that contains them."""
    partitions = daily_partitions_def("2026-01-01", "2026-12-31")
    message = outside_window_message(["2026-12-20", "2026-12-06"], partitions, today=TODAY)
    assert message.startswith(
        "day(s) 2026-12-06, 2026-12-20 not over yet (today is 2026-12-06, UTC)"
    )
    assert "outside the daily partition window" not in message
    # without an end the window is "up to today": a later day is outside it, as before
    open_ended = daily_partitions_def("2026-01-01", None)
    assert outside_window_message(["2026-12-07"], open_ended, today=TODAY).startswith(
        "day(s) 2026-12-07 outside the daily partition window (from "
        "AIWF_PARTITION_START=2026-01-01 to today, UTC)"
    )


def test_days_past_the_end_and_days_not_over_are_both_named() -> None:
    partitions = daily_partitions_def("2026-01-01", "2026-12-10")
    message = outside_window_message(
        ["2026-12-08", "2027-01-02", "2025-12-31"], partitions, today=TODAY
    )
    outside, not_over = message.split("; day(s) ")
    assert outside.startswith("day(s) 2025-12-31, 2027-01-02 outside the daily partition window")
    assert not_over.startswith("2026-12-08 not over yet")


def test_dagster_has_no_partition_for_a_day_that_is_not_over() -> None:
    """The fact the message rests on, on the pinned Dagster: an end date later than today
    does not make today's or later days' partitions."""
    today = dt.datetime.now(dt.UTC).date()
    end = (today + dt.timedelta(days=30)).isoformat()
    partitions = daily_partitions_def((today - dt.timedelta(days=10)).isoformat(), end)
    assert partitions.has_partition_key((today - dt.timedelta(days=1)).isoformat())
    assert not partitions.has_partition_key(today.isoformat())
    assert not partitions.has_partition_key((today + dt.timedelta(days=1)).isoformat())


def test_a_day_past_the_end_that_is_over_says_to_raise_the_end_not_to_wait() -> None:
    """`aiwf demo` pins AIWF_PARTITION_END to its last generated day in aiwf.env: a file of
    a later day that is long over waits for nothing (found by the 2026-12-07 probe)."""
    partitions = daily_partitions_def("2026-01-01", "2026-03-01")
    message = outside_window_message(["2026-03-03", "2026-03-02"], partitions, today=TODAY)
    assert message == (
        "day(s) 2026-03-02, 2026-03-03 outside the daily partition window (from"
        " AIWF_PARTITION_START=2026-01-01 to AIWF_PARTITION_END=2026-03-01, UTC): day(s) after"
        " the end are over already: set AIWF_PARTITION_END to 2026-03-03 or later to take them"
        " (in the environment, or in aiwf.env in AIWF_HOME, where `aiwf demo` pins the window"
        " to the days it generated)"
    )
    assert "wait" not in message
    # a day past the end that is not over yet does wait for its day
    later = outside_window_message(["2026-12-20"], partitions, today=TODAY)
    assert later.endswith(": later files wait for their day (or a later AIWF_PARTITION_END)")
    open_ended = daily_partitions_def("2026-01-01", None)
    assert outside_window_message([TODAY.isoformat()], open_ended, today=TODAY).endswith(
        ": later files wait for their day"
    )
