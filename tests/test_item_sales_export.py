"""A till's item sales report: amounts written with the dollar sign, lines that state their total.

The shape of Square's "Item Sales" CSV (tests/fixtures/item_sales): one row per item line,
`$5.25`, `-$0.65` and `"$1,249.00"` as the money, no unit price but the line's totals
(`Gross Sales`, and `Net Sales` after the line's discount), a refund a row with a negative
quantity and negative money, a loyalty reward given away at $0.00, the date and the time of
day in two fields. Before the `symbol`, `line_total`, `free_lines` and `time_from` keys such
an export could not be declared: every amount was refused as not a number, mapping `Net
Sales` as the unit price would have published 2 croissants sold for $5.85 as $11.70, the
reward was refused and every sale was at noon UTC. The expected amounts are read from the
file with `csv` alone.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pytest

from aiwf_assets.cleaning import CleanResult, clean_orders_day
from aiwf_assets.cleaning.audit import PlausibilityThresholds, price_findings
from aiwf_assets.cleaning.contracts import validate_table
from aiwf_assets.cleaning.transforms import IDENTITY_SCHEMA
from aiwf_assets.ingest.numbers import read_float
from aiwf_assets.ingest.parse import parse_landing
from aiwf_assets.ingest.spec import (
    DEFAULT_SOURCES_PATH,
    ColumnSpec,
    SourcesConfig,
    SourceSpecError,
    declared_sources,
    parse_documents,
)
from tests.test_order_amounts import _clean as clean_day
from tests.test_third_party_export import run_to_marts

FIXTURE = Path(__file__).parent / "fixtures" / "item_sales"
DECLARED = FIXTURE / "sources.yaml"
KEY = b"test-pii-key"
DAY = dt.date(2026, 3, 4)
CAFE = "cafe"


def _export() -> bytes:
    return (FIXTURE / CAFE / f"{DAY}.csv").read_bytes()


def _dollars(text: str) -> float:
    """An amount as the report writes it, read by hand: `-$0.65`, `"$1,249.00"`."""
    return float(text.replace("$", "").replace(",", ""))


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def _clean(sources: SourcesConfig, data: bytes) -> CleanResult:
    return clean_day(sources, CAFE, data)


def over_packaged(name: str, text: str) -> SourcesConfig:
    """The packaged sources with the declaration `text` (a file named `name`) laid over."""
    packaged = (str(DEFAULT_SOURCES_PATH), DEFAULT_SOURCES_PATH.read_text())
    return parse_documents([packaged, (name, text)])


def _sold(rows: list[dict[str, str]], rate: float) -> dict[str, float]:
    """Each transaction's net sales in EUR, from the report's Net Sales."""
    totals: dict[str, float] = {}
    for row in rows:
        order = f"{CAFE}:{row['Transaction ID']}"
        totals[order] = totals.get(order, 0.0) + _dollars(row["Net Sales"]) * rate
    return {order: round(total, 2) for order, total in totals.items()}


def test_every_line_is_published_at_what_it_was_sold_for() -> None:
    sources = declared_sources(DECLARED)
    rate = sources.currency_rates_to_eur["USD"]
    rows = _rows(_export())
    result = _clean(sources, _export())
    assert result.quarantine.is_empty()
    lines = result.tables["order_lines"]
    assert lines.height == len(rows)
    # the line's money is its Net Sales; the unit price that, over the quantity
    amounts = sorted(
        zip(lines["order_id"], lines["sku"], lines["line_amount_source"], strict=True)
    )
    assert amounts == sorted(
        (f"{CAFE}:{r['Transaction ID']}", r["SKU"], _dollars(r["Net Sales"])) for r in rows
    )
    muffins = lines.filter(pl.col("sku") == "MUF-03").row(0, named=True)
    assert muffins["quantity"] == 3
    assert muffins["unit_price"] == pytest.approx(10.0 / 3 * rate)
    orders = result.tables["orders"]
    published = dict(zip(orders["order_id"], orders["order_total"].round(2), strict=True))
    assert published == _sold(rows, rate)
    # the refund: a return of one latte, its money given back
    refund = lines.filter(pl.col("order_id") == f"{CAFE}:T-8844").row(0, named=True)
    assert (refund["is_return"], refund["quantity"], refund["line_amount_source"]) == (
        True, -1, -5.25,
    )
    counts = result.accounting.row(0, named=True)
    assert counts["rows_in"] == counts["rows_cleaned"] == len(rows)


@pytest.mark.parametrize(
    ("symbol", "decimal", "text", "value"),
    [
        ("$", None, "$4.50", 4.5),
        ("$", None, "4.50", 4.5),  # written without the sign
        ("$", None, "-$0.65", -0.65),
        ("$", None, "$-0.65", -0.65),
        ("$", None, "- $ 0.65", -0.65),
        ("$", None, "($1.00)", -1.0),  # accounting negative
        ("$", ".", "$1,249.00", 1249.0),
        ("$", None, "$1,249.00", None),  # a thousands separator, undeclared: refused
        ("$", None, "€4.50", None),  # another sign
        ("$", None, "$$4.50", None),
        ("$", None, "(-$1.00)", None),  # signed twice
        ("$", None, "$", None),
        ("€", ",", "4,50 €", 4.5),
        ("€", ",", "€1.299,00", 1299.0),
        ("€", ",", "(3,00€)", -3.0),
        ("€", ",", "4.50 €", None),  # a decimal point where commas are declared
        ("kr.", ",", "12,50 kr.", 12.5),
    ],
)
def test_an_amount_reads_with_its_currency_sign_wherever_it_is_written(
    symbol: str, decimal: str | None, text: str, value: float | None
) -> None:
    col = ColumnSpec("unit_price", "float", decimal=decimal, symbol=symbol)
    read = pl.select(read_float(col, pl.lit(text)).value).item()
    assert read == (pytest.approx(value) if value is not None else None)


def test_an_amount_in_another_currency_is_quarantined_naming_it() -> None:
    """The report's sign is the source's: a euro amount in a dollar report is not read as
    dollars (the row is refused with its value, the rest is published)."""
    data = _export().replace(b"$3.25,$0.29", b"\xe2\x82\xac3.25,$0.29")
    rows = _rows(data)
    result = _clean(declared_sources(DECLARED), data)
    assert result.quarantine.select("source_row", "reasons").rows() == [
        (7, "unit_price: not a number ('€3.25')")
    ]
    assert result.tables["order_lines"].height + result.quarantine.height == len(rows)


def test_without_the_keys_no_amount_is_read() -> None:
    """What a user who declares the report like any other gets: every line refused as not
    a number, so the day meets the quarantine guard rather than publishing nothing."""
    sources = declared_sources(DECLARED)
    spec = sources[CAFE]
    price = dataclasses.replace(spec.column("unit_price"), symbol=None)
    plain = dataclasses.replace(
        spec, columns=tuple(price if c.name == "unit_price" else c for c in spec.columns)
    )
    result = _clean(dataclasses.replace(sources, sources={CAFE: plain}), _export())
    assert result.tables["order_lines"].is_empty()
    assert result.quarantine.height == len(_rows(_export()))
    assert result.quarantine["reasons"][0] == "unit_price: not a number ('$5.25')"


def test_a_line_given_away_is_a_line_at_zero() -> None:
    """The loyalty reward (a latte, Net Sales $0.00): with `free_lines` a line sold at 0,
    its unit counted; without, quarantined saying what to declare (it was refused as a
    price that must be > 0, the latte's unit lost from the product's sales)."""
    sources = declared_sources(DECLARED)
    reward = next(r for r in _rows(_export()) if r["Net Sales"] == "$0.00")
    result = _clean(sources, _export())
    lines = result.tables["order_lines"].filter(
        pl.col("order_id") == f"{CAFE}:{reward['Transaction ID']}"
    )
    assert lines.select("sku", "quantity", "unit_price", "line_amount").rows() == [
        ("LAT-01", 1, 0.0, 0.0)
    ]
    assert not validate_table("order_lines", result.tables["order_lines"], sources=sources)
    strict = dataclasses.replace(sources[CAFE], free_lines=False)
    strict_sources = dataclasses.replace(sources, sources={CAFE: strict})
    held = _clean(strict_sources, _export())
    assert held.quarantine["reasons"].to_list() == [
        "unit_price: must be > 0, or declare free_lines: true for lines given away (0.0)"
    ]
    # the contract holds a 0 only on a channel that declares it
    failures = validate_table("order_lines", result.tables["order_lines"], sources=strict_sources)
    assert [(f.check, f.column, f.count) for f in failures] == [
        ("not_equal_to(0) (but where the source declares free_lines)", "unit_price", 1)
    ]
    # and the price plausibility warning does not take it for a price in cents
    products = pl.DataFrame({"sku": ["LAT-01"], "list_price": [4.99]})
    assert price_findings(lines, products, PlausibilityThresholds()) == []


def test_the_time_of_day_is_read_from_its_own_field() -> None:
    """`time_from: Time`: each order's time is its Date and Time, a local time of the
    café's zone; before, only the Date could be mapped (every sale at noon UTC)."""
    rows = _rows(_export())
    result = _clean(declared_sources(DECLARED), _export())
    orders = result.tables["orders"]
    published = dict(zip(orders["order_id"], orders["ordered_at"], strict=True))
    zone = ZoneInfo("America/New_York")
    assert published == {
        f"{CAFE}:{r['Transaction ID']}": dt.datetime.fromisoformat(f"{r['Date']}T{r['Time']}")
        .replace(tzinfo=zone)
        .astimezone(dt.UTC)
        for r in rows
    }


def test_a_sale_without_its_time_is_quarantined_and_a_file_without_the_field_says_so() -> None:
    sources = declared_sources(DECLARED)
    data = _export().replace(b"2026-03-04,09:12:44,", b"2026-03-04,,", 1)
    result = _clean(sources, data)
    assert result.quarantine.select("source_row", "reasons").rows() == [
        (3, "ordered_at: not a timestamp in format '%Y-%m-%d %H:%M:%S' ('2026-03-04')")
    ]
    lines = _export().decode().splitlines()
    without = "\n".join(",".join(r.split(",")[:1] + r.split(",")[2:]) for r in lines) + "\n"
    parsed = parse_landing(without.encode(), sources[CAFE], f"{CAFE}/{DAY}.csv")
    assert parsed.missing_columns == ("ordered_at.Time",)
    assert _clean(sources, without.encode()).tables["order_lines"].is_empty()


def test_a_json_export_with_the_time_apart_reads_it() -> None:
    declaration = """
version: 1
sources:
  kiosk:
    contract: order_lines
    channel: kiosk
    format: jsonl
    landing: kiosk/{date}.jsonl
    columns:
      order_id:    {from: receipt.id, type: string}
      line_number: {from: line, type: int}
      ordered_at:  {from: receipt.date, time_from: receipt.time, type: timestamp,
                    timestamp_format: "%d.%m.%Y %H:%M", timezone: Europe/Berlin}
      currency:    {constant: EUR, type: string}
      sku:         {from: sku, type: string}
      quantity:    {from: qty, type: int}
      unit_price:  {from: price, type: float}
"""
    spec = over_packaged("kiosk.yaml", declaration)["kiosk"]
    record = {
        "receipt": {"id": "K1", "date": "04.03.2026", "time": "23:30"},
        "line": 1, "sku": "MUG-01", "qty": 1, "price": "12.50",
    }
    parsed = parse_landing(f"{json.dumps(record)}\n".encode(), spec, f"kiosk/{DAY}.jsonl")
    assert parsed.missing_columns == () and parsed.extra_columns == ()
    assert parsed.frame["ordered_at"].to_list() == ["04.03.2026 23:30"]


def test_a_parquet_export_with_a_date_and_a_time_column_reads_both() -> None:
    """Typed Parquet columns: a Date and a Time (its fraction of a second kept)."""
    declaration = """
version: 1
sources:
  kiosk:
    contract: order_lines
    channel: kiosk
    format: parquet
    landing: kiosk/{date}.parquet
    columns:
      order_id:    {from: id, type: string}
      line_number: {from: line, type: int}
      ordered_at:  {from: day, time_from: at, type: timestamp,
                    timestamp_format: "%Y-%m-%d %H:%M:%S%.f"}
      currency:    {constant: EUR, type: string}
      sku:         {from: sku, type: string}
      quantity:    {from: qty, type: int}
      unit_price:  {from: price, type: float}
"""
    sources = over_packaged("kiosk.yaml", declaration)
    spec = sources["kiosk"]
    table = pl.DataFrame(
        {
            "id": ["K1", "K2"], "line": [1, 1], "day": [DAY, DAY],
            "at": [dt.time(9, 5), dt.time(23, 59, 59, 250000)],
            "sku": ["MUG-01", "MUG-01"], "qty": [1, 2], "price": [12.5, 12.5],
        }
    )
    buffer = io.BytesIO()
    table.write_parquet(buffer)
    parsed = parse_landing(buffer.getvalue(), spec, f"kiosk/{DAY}.parquet")
    assert parsed.missing_columns == () and parsed.extra_columns == ()
    assert parsed.frame["ordered_at"].to_list() == [
        "2026-03-04 09:05:00", "2026-03-04 23:59:59.250"
    ]
    result = clean_orders_day(
        {"kiosk": parsed.frame}, IDENTITY_SCHEMA.to_frame(), KEY, DAY, sources
    )
    assert result.quarantine.is_empty()
    assert result.tables["orders"]["ordered_at"].to_list() == [
        dt.datetime(2026, 3, 4, 9, 5, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 4, 23, 59, 59, 250000, tzinfo=dt.UTC),
    ]


SOURCE = """
version: 1
sources:
  till:
    contract: order_lines
    channel: till
    format: csv
    landing: till/{date}.csv
    columns:
      order_id:    {from: id, type: string}
      line_number: {from: line, type: int}
      ordered_at:  {from: at, type: timestamp, timestamp_format: iso8601}
      currency:    {constant: USD, type: string}
      sku:         {from: sku, type: string}
      quantity:    {from: qty, type: int%(quantity)s}
      unit_price:  {from: total, type: float%(price)s}
"""


@pytest.mark.parametrize(
    ("quantity", "price", "error"),
    [
        (", symbol: $", "", r"quantity\.symbol: only for float columns"),
        ("", ", symbol: 1$", r"unit_price\.symbol: the currency sign"),
        ("", ", symbol: '.'", r"unit_price\.symbol: the currency sign"),
        ("", ", symbol: '( $ )'", r"unit_price\.symbol: the currency sign"),
        (", line_total: true", "", r"quantity\.line_total: only for the unit_price"),
        ("", ", line_total: yes please", r"unit_price\.line_total: true or false"),
        (", time_from: hour", "", r"quantity\.time_from: only for timestamp columns"),
    ],
)
def test_a_declaration_that_cannot_work_is_refused_naming_the_key(
    quantity: str, price: str, error: str
) -> None:
    good = SOURCE % {"quantity": "", "price": ", symbol: $, line_total: true"}
    declared = over_packaged("till.yaml", good)["till"].column("unit_price")
    assert declared is not None and (declared.symbol, declared.line_total) == ("$", True)
    with pytest.raises(SourceSpecError, match=error):
        over_packaged("till.yaml", SOURCE % {"quantity": quantity, "price": price})


@pytest.mark.parametrize(
    ("ordered_at", "error"),
    [
        ("{from: at, time_from: at, type: timestamp, timestamp_format: iso8601}",
         "'at' is already its from"),
        ("{from: at, time_from: hour, type: timestamp, timestamp_format: epoch_s}",
         "epoch_s already holds the time"),
        ("{constant: '2026-03-04', time_from: hour, type: timestamp}",
         "only for timestamp columns read with from"),
    ],
)
def test_a_time_of_day_that_cannot_be_read_is_refused(ordered_at: str, error: str) -> None:
    plain = "{from: at, type: timestamp, timestamp_format: iso8601}"
    bad = (SOURCE % {"quantity": "", "price": ""}).replace(plain, ordered_at)
    assert bad != SOURCE % {"quantity": "", "price": ""}
    with pytest.raises(SourceSpecError, match=f"ordered_at\\.time_from: {error}"):
        over_packaged("till.yaml", bad)


def test_the_marts_hold_what_the_cafe_sold(tmp_path: Path) -> None:
    landing = tmp_path / "landing" / CAFE
    landing.mkdir(parents=True)
    (landing / f"{DAY}.csv").write_bytes(_export())
    run_to_marts(tmp_path, DECLARED, str(DAY), str(DAY))
    rows = _rows(_export())
    rate = declared_sources(DECLARED).currency_rates_to_eur["USD"]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select count(*) from cleaned.quarantine").fetchall() == [(0,)]
        served = dict(con.sql("select order_id, order_total from marts.fct_orders").fetchall())
        units = dict(con.sql("select order_id, n_units from marts.fct_orders").fetchall())
    assert {o: round(t, 2) for o, t in served.items()} == _sold(rows, rate)
    expected_units: dict[str, int] = {}
    for r in rows:
        order = f"{CAFE}:{r['Transaction ID']}"
        expected_units[order] = expected_units.get(order, 0) + int(r["Qty"])
    assert units == expected_units
