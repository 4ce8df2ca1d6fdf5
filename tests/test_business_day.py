"""Business days that run past midnight: a source's `day_ends_at`.

A late bar's till in Berlin (tests/fixtures/late_bar) exports one file per business day,
named by that day, and the business day runs until 04:00: the 2026-01-05 file holds sales
from 09:04 on the 5th to 01:45 on the 6th, and receipt numbers restart at R0001 every
business day. Without `day_ends_at` the 01:45 sale was quarantined as in the future and
the 00:30 receipt took the 6th's id (`B01/2026-01-06/R0006`), the id of the 6th's own
R0006: dbt's ids_not_reused held the marts back. With `day_ends_at: "04:00"` every sale is
published under its business day's receipt, at its real time.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from aiwf_assets.cleaning import CleanResult, clean_orders_day
from aiwf_assets.cleaning.rules import day_end
from aiwf_assets.cleaning.transforms import IDENTITY_SCHEMA
from aiwf_assets.ingest.parse import parse_landing
from aiwf_assets.ingest.spec import (
    DEFAULT_SOURCES_PATH,
    ColumnSpec,
    SourcesConfig,
    parse_documents,
)
from aiwf_assets.ingest.timestamps import local_day
from tests.test_third_party_export import run_to_marts

FIXTURE = Path(__file__).parent / "fixtures" / "late_bar"
KEY = b"test-pii-key"
DAYS = (dt.date(2026, 1, 5), dt.date(2026, 1, 6))
UTC = dt.UTC


def _sources(*, calendar_days: bool = False) -> SourcesConfig:
    """The packaged sources overlaid by the bar's declaration (`day_ends_at: "04:00"`), or
    with that key taken out (`calendar_days`: what the bar got before)."""
    sources = parse_documents(
        [
            (str(DEFAULT_SOURCES_PATH), DEFAULT_SOURCES_PATH.read_text()),
            (str(FIXTURE / "sources.yaml"), (FIXTURE / "sources.yaml").read_text()),
        ]
    )
    if not calendar_days:
        return sources
    till = dataclasses.replace(sources["bar_till"], day_ends_at=None)
    return dataclasses.replace(sources, sources={**sources.sources, "bar_till": till})


def _clean(sources: SourcesConfig, day: dt.date, export: bytes | None = None) -> CleanResult:
    """One business day of the till, from the fixture's file unless `export` is given."""
    data = export if export is not None else (FIXTURE / "bar_till" / f"{day}.csv").read_bytes()
    raw = parse_landing(data, sources["bar_till"], f"bar_till/{day}.csv").frame
    return clean_orders_day({"bar_till": raw}, IDENTITY_SCHEMA.to_frame(), KEY, day, sources)


def _file_rows(day: dt.date) -> list[dict[str, str]]:
    with (FIXTURE / "bar_till" / f"{day}.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter=";"))


def _euros(rows: list[dict[str, str]]) -> Decimal:
    return sum(
        (Decimal(r["Menge"]) * Decimal(r["Einzelpreis"].replace(",", ".")) for r in rows),
        Decimal(0),
    )


def test_every_sale_of_a_business_day_past_midnight_is_published_under_its_receipt() -> None:
    sources = _sources()
    assert sources["bar_till"].business_day_end == dt.time(4)
    results = {day: _clean(sources, day) for day in DAYS}
    for day, result in results.items():
        rows = _file_rows(day)
        counts = result.accounting.row(0, named=True)
        # every row of the file is published: none quarantined, none lost
        assert counts["rows_in"] == counts["rows_cleaned"] == len(rows), day
        assert (counts["rows_quarantined"], counts["duplicates_removed"]) == (0, 0)
        assert result.quarantine.is_empty()
        lines = result.tables["order_lines"]
        assert Decimal(str(round(lines["line_amount"].sum(), 2))) == _euros(rows)
        # a receipt per distinct Bon-Nr of the file, each under the file's business day
        receipts = {f"bar:B01/{day}/{r['Bon-Nr']}" for r in rows}
        assert set(result.tables["orders"]["order_id"]) == receipts
    ids = [i for r in results.values() for i in r.tables["orders"]["order_id"]]
    assert len(ids) == len(set(ids)) == 7 + 8  # the two R0006 are two sales
    # the sales after midnight keep their real time; order_date is their UTC day, as for
    # every channel (00:30 in Berlin is 23:30 UTC on the 5th, 01:45 is 00:45 on the 6th)
    after_midnight = ["bar:B01/2026-01-05/R0006", "bar:B01/2026-01-05/R0007"]
    late = results[DAYS[0]].tables["orders"].filter(pl.col("order_id").is_in(after_midnight))
    assert late.select("ordered_at", "order_date", "n_lines").sort("ordered_at").rows() == [
        (dt.datetime(2026, 1, 5, 23, 30, 5, tzinfo=UTC), dt.date(2026, 1, 5), 2),
        (dt.datetime(2026, 1, 6, 0, 45, 22, tzinfo=UTC), dt.date(2026, 1, 6), 1),
    ]
    # the 6th's business day runs into the 7th the same way
    assert "bar:B01/2026-01-06/R0008" in results[DAYS[1]].tables["orders"]["order_id"]


def test_without_day_ends_at_the_sales_after_midnight_are_lost_or_collide() -> None:
    """What the bar got before: calendar days."""
    sources = _sources(calendar_days=True)
    first, second = (_clean(sources, day) for day in DAYS)
    # 01:45 in Berlin is 00:45 UTC on the 6th: after the 5th's end, quarantined
    assert first.quarantine["reasons"].to_list() == [
        "ordered_at: in the future for a 2026-01-05 delivery (2026-01-06T00:45:22Z)"
    ]
    counts = first.accounting.row(0, named=True)
    assert (counts["rows_in"], counts["rows_cleaned"], counts["rows_quarantined"]) == (10, 9, 1)
    # 00:30 on the 6th gets the 6th's day: the 6th's own R0006 has the same id, and the
    # marts would keep the first and drop the other (ids_not_reused fails instead)
    reused = set(first.tables["orders"]["order_id"]) & set(second.tables["orders"]["order_id"])
    assert reused == {"bar:B01/2026-01-06/R0006"}


SUMMER = (
    "Filiale;Kasse;Bon-Nr;Pos;Zeitpunkt;Artikel-Nr;Bezeichnung;Menge;Einzelpreis;Zahlart;"
    "Kundenkarte\r\n"
    "B01;2;R0001;1;03.07.2026 18:02:10;3002;Pils 0,5l;2;4,80;BAR;\r\n"
    "B01;2;R0002;1;04.07.2026 01:15:44;3020;Gin Tonic;2;9,50;KARTE;K-004711\r\n"
    "B01;2;R0003;1;04.07.2026 03:55:03;3002;Pils 0,5l;1;4,80;BAR;\r\n"
    # after closing: the next business day's receipt in this day's file
    "B01;1;R0001;1;04.07.2026 04:20:00;1001;Espresso;1;2,40;BAR;\r\n"
)


def test_a_summer_business_day_ends_at_its_local_time_and_not_later() -> None:
    """In summer Berlin is UTC+2: the 3 July business day ends at 02:00 UTC on the 4th. A
    sale at 03:55 belongs to it; one at 04:20 is still in the future for the 3rd's file,
    and the reason says when its business day ended."""
    day = dt.date(2026, 7, 3)
    result = _clean(_sources(), day, SUMMER.encode())
    assert result.quarantine["reasons"].to_list() == [
        "ordered_at: in the future for a 2026-07-03 delivery (its business day ends"
        " 2026-07-04 04:00 Europe/Berlin) (2026-07-04T02:20:00Z)"
    ]
    orders = result.tables["orders"].sort("ordered_at")
    assert orders.select("order_id", "ordered_at").rows() == [
        ("bar:B01/2026-07-03/R0001", dt.datetime(2026, 7, 3, 16, 2, 10, tzinfo=UTC)),
        ("bar:B01/2026-07-03/R0002", dt.datetime(2026, 7, 3, 23, 15, 44, tzinfo=UTC)),
        ("bar:B01/2026-07-03/R0003", dt.datetime(2026, 7, 4, 1, 55, 3, tzinfo=UTC)),
    ]
    counts = result.accounting.row(0, named=True)
    assert (counts["rows_in"], counts["rows_cleaned"], counts["rows_quarantined"]) == (4, 3, 1)


def _business_days(col: ColumnSpec, texts: list[str], ends: dt.time | None) -> list[str]:
    frame = pl.DataFrame({"at": texts})
    return frame.select(local_day(col, pl.col("at"), ends)).to_series().to_list()


def test_the_business_day_is_counted_on_the_local_wall_clock() -> None:
    berlin = ColumnSpec(
        "ordered_at", "timestamp", timestamp_format="%d.%m.%Y %H:%M:%S",
        timezone="Europe/Berlin",
    )
    texts = [
        "06.01.2026 03:59:59", "06.01.2026 04:00:00",
        # the night the clocks go back (03:00 CEST -> 02:00 CET): 03:30 CET is still the
        # 24th's business day on the wall clock, though 4 h earlier it was 00:30 CEST
        "25.10.2026 03:30:00", "25.10.2026 04:00:00",
    ]
    assert _business_days(berlin, texts, dt.time(4)) == [
        "2026-01-05", "2026-01-06", "2026-10-24", "2026-10-25",
    ]
    assert _business_days(berlin, texts, None) == [
        "2026-01-06", "2026-01-06", "2026-10-25", "2026-10-25",
    ]  # calendar days, as without the key
    # a day without a time is the day written; without a zone the wall clock is UTC's
    dated = ColumnSpec(
        "ordered_at", "timestamp", timestamp_format="%d.%m.%Y", timezone="America/Los_Angeles"
    )
    assert _business_days(dated, ["06.01.2026"], dt.time(12)) == ["2026-01-06"]
    utc = ColumnSpec("ordered_at", "timestamp", timestamp_format="iso8601")
    times = ["2026-01-06T01:59:00Z", "2026-01-06T02:30:00+01:00", "2026-01-06T02:00:00Z"]
    assert _business_days(utc, times, dt.time(2)) == ["2026-01-05", "2026-01-05", "2026-01-06"]


def test_a_delivery_day_ends_at_the_latest_of_utc_its_zone_and_its_business_day() -> None:
    day = DAYS[0]
    at = dt.datetime
    assert day_end(day, "Europe/Berlin", dt.time(4)) == at(2026, 1, 6, 3, tzinfo=UTC)
    assert day_end(dt.date(2026, 7, 3), "Europe/Berlin", dt.time(4)) == at(
        2026, 7, 4, 2, tzinfo=UTC
    )
    assert day_end(dt.date(2026, 10, 24), "Europe/Berlin", dt.time(4)) == at(
        2026, 10, 25, 3, tzinfo=UTC
    )  # 04:00 CET, after the clocks went back
    assert day_end(day, None, dt.time(4)) == at(2026, 1, 6, 4, tzinfo=UTC)
    # never earlier than without it: midnight UTC, or midnight where the times are written
    assert day_end(day, "Europe/Berlin", dt.time(0)) == day_end(day) == at(
        2026, 1, 6, tzinfo=UTC
    )
    assert day_end(day, "Asia/Tokyo", dt.time(4)) == day_end(day, "Asia/Tokyo")
    assert day_end(day, "America/Los_Angeles", dt.time(4)) == at(2026, 1, 6, 12, tzinfo=UTC)


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Both business days landed and built from raw to the marts in a fresh process, the
    sources from the fixture's AIWF_SOURCES file (`day_ends_at: "04:00"`)."""
    home = tmp_path_factory.mktemp("late_bar_home")
    landing = home / "landing" / "bar_till"
    landing.mkdir(parents=True)
    for day in DAYS:
        (landing / f"{day}.csv").write_bytes((FIXTURE / "bar_till" / f"{day}.csv").read_bytes())
    report = run_to_marts(home, FIXTURE / "sources.yaml", str(DAYS[0]), str(DAYS[1]))
    return home, report


def test_both_business_days_reach_the_marts_with_ids_not_reused_passing(
    built: tuple[Path, dict],
) -> None:
    home, report = built
    checks = dict(map(tuple, report["checked"]))
    assert checks["stg_cleaned__orders_ids_not_reused"] is True
    assert checks["stg_cleaned__order_lines_ids_not_reused"] is True
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select count(*) from cleaned.quarantine").fetchall() == [(0,)]
        orders = con.sql(
            "select partition_date, order_id, order_total from marts.fct_orders"
        ).pl()
        accounting = con.sql(
            "select partition_date, rows_in, rows_cleaned from cleaned.file_accounting"
        ).pl()
    rows = {day: _file_rows(day) for day in DAYS}
    assert accounting.sort("partition_date").rows() == [
        (day, len(rows[day]), len(rows[day])) for day in DAYS
    ]
    assert orders.height == orders["order_id"].n_unique() == 15
    for day in DAYS:
        mine = orders.filter(pl.col("partition_date") == day)
        assert set(mine["order_id"]) == {f"bar:B01/{day}/{r['Bon-Nr']}" for r in rows[day]}
        total = Decimal(str(round(mine["order_total"].sum(), 2)))
        assert total == _euros(rows[day])



def test_a_till_without_loyalty_cards_reaches_the_marts_with_a_warning(
    tmp_path: Path,
) -> None:
    """The same bar without its stamp cards and without a customer file: every sale is
    anonymous, so there is no customer at all. The marts are published (the sales, the
    products' daily sales); `dim_customers`' row count warns instead of failing the run
    (it blocked the marts before), and the blocking key tests pass."""
    sources = tmp_path / "sources.yaml"
    declared = (FIXTURE / "sources.yaml").read_text()
    card = "      loyalty_id:  {from: Kundenkarte, type: string}"
    assert card in declared
    sources.write_text(
        declared.replace(card, "").replace("ignore: [Kasse, Bezeichnung]",
                                           "ignore: [Kasse, Bezeichnung, Kundenkarte]")
    )
    home = tmp_path / "home"
    landing = home / "landing" / "bar_till"
    landing.mkdir(parents=True)
    for day in DAYS:
        (landing / f"{day}.csv").write_bytes((FIXTURE / "bar_till" / f"{day}.csv").read_bytes())
    report = run_to_marts(home, sources, str(DAYS[0]), str(DAYS[1]))
    checks = dict(map(tuple, report["checked"]))
    assert checks["dim_customers_has_every_crm_customer"] is True
    assert any(
        key == "dim_customers" and "min_row_count" in check for key, check in report["warned"]
    ), report["warned"]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select count(*) from marts.dim_customers").fetchall() == [(0,)]
        orders = con.sql("select count(*), count(customer_key) from marts.fct_orders").fetchall()
    assert orders == [(15, 0)]
