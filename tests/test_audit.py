"""The audit's pure parts: guard thresholds, overrides and located contract findings."""

from __future__ import annotations

from datetime import UTC

import polars as pl
import pytest

from aiwf_assets.cleaning.audit import (
    GuardThresholds,
    PlausibilityThresholds,
    contract_finding,
    cross_day_finding,
    early_end_finding,
    early_end_inputs,
    is_overridden,
    order_hours,
    overridden_sources,
    price_findings,
    quarantine_finding,
    reference_finding,
    repeated_finding,
    volume_finding,
)
from aiwf_assets.cleaning.contracts import CheckFailure, validate_table

T = GuardThresholds()


@pytest.mark.parametrize(
    ("records", "history", "held"),
    [
        (0, [], True),  # first day, empty file: the default floor of one record
        (1, [], False),
        (0, [1650, 1700, 1580], True),  # empty or header-only after normal days
        (80, [1650, 1700, 1580], True),  # truncated to 5 %
        (500, [1650, 1700, 1580], False),  # a quiet day (0.3 x): allowed
        (0, [3, 2, 4], False),  # a channel this small has empty days by chance
        (0, [7, 9, 8, 6], True),  # ... but not this one (Poisson chance < 0.001)
        (1, [7, 9, 8, 6], False),
    ],
)
def test_volume_guard(records: int, history: list[int], held: bool) -> None:
    finding = volume_finding("pos_transactions", records, history, T)
    assert (finding is not None) is held
    if finding:
        assert finding.startswith("pos_transactions: ")


def test_volume_guard_names_the_median_and_the_history() -> None:
    finding = volume_finding("web_orders", 80, [1650, 1700, 1580], T)
    assert finding is not None
    assert "80 record(s)" in finding and "median of 1650 over 3 published day(s)" in finding


@pytest.mark.parametrize(
    ("last", "weeks", "held"),
    [
        (23.9, [(23.8, 0), (23.7, 0), (23.9, 0)], False),  # a normal day
        (14.0, [(23.8, 40), (23.7, 38), (23.9, 45)], True),  # stopped at 14:00
        (14.0, [(23.8, 40), (23.7, 38)], False),  # two weeks of history: too little
        (22.5, [(23.8, 9), (23.7, 8), (23.9, 10)], False),  # 1.2 h early: a quiet evening
        (18.0, [(23.8, 3), (23.7, 2), (23.9, 4)], False),  # few orders later: chance
        (18.0, [(19.0, 60), (19.0, 70), (18.9, 65)], False),  # stores closed at 19:00-20:00
        (15.5, [(18.0, 60), (19.0, 70), (18.9, 65)], True),
        (None, [(23.8, 40), (23.7, 38), (23.9, 45)], False),  # no orders: the volume guard's
    ],
)
def test_early_end_guard(last: float | None, weeks: list[tuple[float, int]], held: bool) -> None:
    finding = early_end_finding("web_orders", last, weeks, T)
    assert (finding is not None) is held
    if finding:
        assert finding.startswith("web_orders: the file's last order is at ")


def test_early_end_guard_names_the_times_and_the_orders_missing() -> None:
    finding = early_end_finding("web_orders", 14.0, [(23.8, 40), (23.7, 38), (24.25, 45)], T)
    assert finding is not None
    assert "at 14:00 UTC, 9.7 h before the earliest last order of the same weekday" in finding
    assert "over 3 published week(s) (23:42)" in finding
    assert "a median of 40 order(s) came later" in finding
    assert "an export run before the day ended?" in finding
    # a file of orders from the evening before only
    before = early_end_finding("web_orders", -0.5, [(23.8, 40), (23.7, 38), (24.25, 45)], T)
    assert before is not None and "at 23:30 (the day before) UTC" in before


def test_early_end_inputs_count_orders_after_the_days_last_one() -> None:
    from datetime import date, datetime, timedelta

    utc = UTC

    def lines(day: date, rows: list[tuple[str, str, float]]) -> pl.DataFrame:
        midnight = datetime(day.year, day.month, day.day, tzinfo=utc)
        return pl.DataFrame(
            {
                "channel": [c for c, _, _ in rows],
                "partition_date": [day] * len(rows),
                "order_id": [o for _, o, _ in rows],
                "ordered_at": [midnight + timedelta(hours=h) for _, _, h in rows],
            },
            schema_overrides={"ordered_at": pl.Datetime("us", "UTC")},
        )

    today = order_hours(lines(date(2026, 1, 22), [("web", "W9", 13.5), ("store", "T9", 9.0)]))
    week = order_hours(
        lines(
            date(2026, 1, 15),
            [
                ("web", "W1", 10.0),
                ("web", "W2", 15.0),  # two lines of one order after 13:30: one order
                ("web", "W2", 15.0),
                ("web", "W3", 24.5),  # after midnight, still the 15th's delivery
                ("store", "T1", 18.0),
            ],
        )
    )
    assert early_end_inputs(today, week, "web") == (13.5, [(24.5, 2)])
    assert early_end_inputs(today, week, "app") == (None, [])


def test_the_same_weekday_history_read_per_order_gives_the_lines_answer(tmp_path) -> None:
    """The early-end guard's history is read one row per order (its latest line) from the
    published order lines: the same inputs as from every line, also when an order's lines
    carry different times (one before, one after the day's last order)."""
    from datetime import date, datetime, timedelta

    from aiwf_assets.cleaning.assets import _same_weekday_order_hours
    from aiwf_assets.io.warehouse import DuckDBWarehouse

    rows = []
    for week in (1, 2, 3):
        day = date(2026, 1, 22) - timedelta(days=7 * week)
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for order, hours in [("A", [9.0, 9.0]), ("B", [12.0, 15.5]), ("C", [23.0 + week / 10])]:
            for h in hours:
                rows.append(("web", day, f"{order}{week}", midnight + timedelta(hours=h)))
    lines = pl.DataFrame(
        rows, schema=["channel", "partition_date", "order_id", "ordered_at"], orient="row"
    ).with_columns(pl.col("ordered_at").cast(pl.Datetime("us", "UTC")))
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.replace_partitions("cleaned.order_lines", lines, lines["partition_date"].unique().to_list())
    history = _same_weekday_order_hours(wh, date(2026, 1, 22), 28)
    assert history.height == 9  # orders, not lines
    for last in (10.0, 13.0, 16.0):
        today = pl.DataFrame({"channel": ["web"], "hours": [last]})
        assert early_end_inputs(today, history, "web") == early_end_inputs(
            today, order_hours(lines), "web"
        )


@pytest.mark.parametrize(
    ("staged", "published", "held"),
    [(0, None, True), (0, 800, True), (5, None, False), (799, 800, False), (600, 800, True),
     (1000, 800, False)],
)
def test_reference_guard(staged: int, published: int | None, held: bool) -> None:
    assert (reference_finding("customers", staged, published, T) is not None) is held


TRAILING = "record: CSV row has 9 fields, header has 8"


@pytest.mark.parametrize(
    ("rows_in", "reasons", "history", "held"),
    [
        (4, [(TRAILING, 4)], (1, 4, 0), True),  # every row, one reason (the 2026-12-07 probe)
        (4, [("record: not valid UTF-8", 3)], (1, 4, 0), True),  # 3 of 4, one reason
        (4, [(TRAILING, 4)], (0, 0, 0), True),  # the first day is guarded too
        (200, [(TRAILING, 101)], (20, 4000, 10), True),
        (200, [(TRAILING, 100)], (20, 4000, 10), False),  # not more than half
        (2, [("ticket_id: missing", 2)], (20, 150, 2), False),  # two bad tickets of two
        (3, [("ticket_id: missing", 2)], (20, 150, 2), False),  # 2 of 3: chance explains it
        # the generator's fault day of a four-ticket source: every row, four reasons
        (4, [("a: x", 1), ("b: y", 1), ("c: z", 1), ("d: w", 1)], (20, 150, 3), False),
        (50, [(TRAILING, 40)], (20, 1000, 700), False),  # a source that always quarantines
        (0, [], (20, 1000, 0), False),  # an empty file: the volume guard's case
    ],
)
def test_quarantine_guard(
    rows_in: int, reasons: list[tuple[str, int]], history: tuple[int, int, int], held: bool
) -> None:
    quarantined = sum(n for _, n in reasons)
    finding = quarantine_finding("pos", rows_in, quarantined, reasons, history, T)
    assert (finding is not None) == held, finding


def test_quarantine_guard_names_share_counts_reasons_and_override() -> None:
    finding = quarantine_finding(
        "uk_invoices", 300, 290,
        [(TRAILING, 280), ("sku: missing", 6), ("quantity: not an integer", 3), ("x: y", 1)],
        (12, 3600, 36), T,
    )  # fmt: skip
    assert finding == (
        "uk_invoices: 290 of 300 row(s) quarantined, 280 (93%) for"
        " 'record: CSV row has 9 fields, header has 8' (more than 50% of the rows for one"
        " reason; usually 5.0% quarantined over 12 published day(s), chance 0);"
        " other reasons: 'sku: missing' x 6; 'quantity: not an integer' x 3; and 1 more"
        " kind(s); a changed export format (delimiter, encoding, columns)? To publish the day"
        " with these rows in quarantine: run tag aiwf/accept_drop=uk_invoices"
    )
    strict = GuardThresholds(max_quarantine_share=0.95)
    assert quarantine_finding("uk_invoices", 300, 290, [(TRAILING, 280)], (0, 0, 0), strict) is None


def test_overrides_are_a_deliberate_list_of_sources() -> None:
    overrides = overridden_sources({"aiwf/accept_drop": "web_orders, customers"})
    assert is_overridden("customers", overrides) and not is_overridden("stores", overrides)
    assert is_overridden("stores", overridden_sources({"aiwf/accept_drop": "*"}))
    assert not overridden_sources({})


def test_a_contract_finding_names_file_row_column_value_and_how_many_more() -> None:
    frame = pl.DataFrame(
        {
            "sku": ["SKU-00001", "bad1", "bad2", "bad3", "bad4"],
            "source_file": ["pos/2026-01-02.csv"] * 5,
            "source_row": [1, 2, 3, 4, 5],
            "channel": ["store"] * 5,
        }
    )
    failure = CheckFailure("str_matches", "sku", 4, ("bad1", "bad2", "bad3", "bad4"), (1, 2, 3, 4))
    text = contract_finding("order_lines", frame, failure)
    assert text.startswith("order_lines: str_matches failed on column sku in 4 row(s): ")
    assert "file pos/2026-01-02.csv, row 2, channel store (value 'bad1')" in text
    assert text.endswith("; and 1 more")


def test_validate_table_reports_row_positions() -> None:
    frame = pl.DataFrame({"sku": ["SKU-00001"], "name": ["n"], "category": ["c"],
                          "subcategory": [None], "list_price": [-1.0]})
    (failure,) = validate_table("products", frame.cast({"subcategory": pl.String}))
    assert failure.column == "list_price" and failure.rows == (0,)


def test_prices_far_from_the_list_price_are_named_per_file() -> None:
    products = pl.DataFrame({"sku": ["SKU-00001", "SKU-00002"], "list_price": [10.0, 20.0]})
    lines = pl.DataFrame(
        {
            "sku": ["SKU-00001", "SKU-00002", "SKU-00001", "SKU-00002"],
            "unit_price": [1000.0, 2000.0, 9.0, 15.0],  # cents in file a, a promotion in b
            "source_file": ["a.csv", "a.csv", "b.csv", "b.csv"],
            "source_row": [1, 2, 1, 2],
        }
    )
    (finding,) = price_findings(lines, products, PlausibilityThresholds())
    assert finding.startswith("a.csv: 2 of 2 line(s) priced at least 10x away")
    assert "median 100x" in finding and "first row 1: SKU-00001 at 1000.0 vs 10.0" in finding


def test_a_file_with_every_record_twice_is_unusual_but_a_till_scanning_twice_is_not() -> None:
    columns = ["txn_id", "sku"]
    normal = pl.DataFrame(
        {"txn_id": ["T1", "T1", "T1", "T2", "T3"], "sku": ["A", "A", "B", "C", "D"],
         "_parse_error": [None] * 5}
    )
    doubled = pl.concat([normal, normal])
    assert repeated_finding("pos_transactions", normal, columns, PlausibilityThresholds()) is None
    finding = repeated_finding("pos_transactions", doubled, columns, PlausibilityThresholds())
    assert finding is not None and "6 of 10 record(s) (60%)" in finding


def test_without_history_only_sales_sources_need_a_record() -> None:
    assert volume_finding("crm_tickets", 0, [], T, floor=0) is None
    assert volume_finding("web_orders", 0, [], T, floor=1) is not None


@pytest.mark.parametrize(
    ("keys", "first_delivered", "held"),
    [
        (178, [("2026-01-10", 178)], True),  # yesterday's file under today's name
        (178, [("2026-01-10", 89)], False),  # half: not most
        (178, [("2026-01-10", 60), ("2026-01-09", 40)], True),  # most, over two days
        (300, [("2026-01-10", 6)], False),  # a few late re-sent orders
        (4, [("2026-01-10", 4)], False),  # a quiet desk's day: too few to tell
        (0, [], False),
    ],
)
def test_cross_day_guard(keys: int, first_delivered: list[tuple[str, int]], held: bool) -> None:
    assert (cross_day_finding("web_orders", "order", keys, first_delivered, T) is not None) is held


def test_cross_day_guard_names_the_share_the_days_and_the_override() -> None:
    one = cross_day_finding("web_orders", "order", 178, [("2026-01-10", 178)], T)
    assert one is not None and one.startswith(
        "web_orders: 178 of 178 order(s) were already delivered on 2026-01-10: the same file"
        " under another day's name?"
    )
    assert one.endswith("run tag aiwf/accept_drop=web_orders")
    days = [("2026-01-08", 10), ("2026-01-09", 50), ("2026-01-10", 30), ("2026-01-07", 5)]
    many = cross_day_finding("crm_tickets", "ticket", 100, days, T)
    assert many is not None and many.startswith(
        "crm_tickets: 95 of 100 ticket(s) were already delivered on 2026-01-09 (50),"
        " 2026-01-10 (30), 2026-01-08 (10) and 1 more day(s):"
    )
