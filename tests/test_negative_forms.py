"""Negative numbers written the way ERPs and accounting tools write them: a column's `negatives`.

SAP lists exported to CSV put the minus after the number (`1-`, `12,50-`); accounting exports
put a negative amount in parentheses (`(5.25)`). Undeclared, every return of such an export
was refused as not a number, so its returns never reached the marts. The fixture
(tests/fixtures/sap_billing) is a German retailer's billing lines: semicolons, decimal commas,
the minus after the number, the line's amount rather than a unit price, the date and the time
apart. The expected amounts are read from the file with `csv` alone.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from pathlib import Path

import polars as pl
import pytest

from aiwf_assets.cleaning import CleanResult, clean_orders_day
from aiwf_assets.cleaning.transforms import IDENTITY_SCHEMA
from aiwf_assets.ingest.numbers import read_float, read_int
from aiwf_assets.ingest.parse import parse_landing
from aiwf_assets.ingest.spec import (
    ColumnSpec,
    SourcesConfig,
    SourceSpecError,
    declared_sources,
)
from tests.test_item_sales_export import over_packaged
from tests.test_order_amounts import _clean as clean_day

FIXTURE = Path(__file__).parent / "fixtures" / "sap_billing"
DAY = dt.date(2026, 3, 4)


def _export() -> bytes:
    return (FIXTURE / "sap" / f"{DAY}.csv").read_bytes()


def _clean(sources: SourcesConfig, data: bytes) -> CleanResult:
    return clean_day(sources, "sap", data)


def _german(text: str) -> float:
    """`1.249,00` and `12,50-` read by hand."""
    sign = -1 if text.endswith("-") else 1
    return sign * float(text.rstrip("-").replace(".", "").replace(",", "."))


@pytest.mark.parametrize(
    ("kind", "negatives", "decimal", "text", "value"),
    [
        ("float", ("trailing_minus",), ",", "12,50-", -12.5),
        ("float", ("trailing_minus",), ",", "1.249,00-", -1249.0),
        ("float", ("trailing_minus",), ",", "12,50", 12.5),
        ("float", ("trailing_minus",), ",", "-12,50", -12.5),
        ("float", ("trailing_minus",), ",", "-12,50-", None),  # signed twice
        ("float", ("trailing_minus",), ",", "(12,50)", None),  # not declared
        ("float", ("parentheses",), None, "(5.25)", -5.25),
        ("float", ("parentheses",), None, "( 5.25 )", -5.25),
        ("float", ("parentheses",), None, "(-5.25)", None),
        ("float", ("parentheses",), None, "5.25-", None),  # not declared
        ("int", ("trailing_minus",), None, "1-", -1),
        ("int", ("trailing_minus", "parentheses"), None, "(2)", -2),
        ("int", ("trailing_minus",), None, "-", None),
        ("int", (), None, "1-", None),  # undeclared: refused, as before
    ],
)
def test_a_negative_number_reads_as_the_column_declares(
    kind: str, negatives: tuple[str, ...], decimal: str | None, text: str,
    value: float | None,
) -> None:
    col = ColumnSpec("x", kind, decimal=decimal, negatives=negatives)  # type: ignore[arg-type]
    read = read_int if kind == "int" else read_float
    assert pl.select(read(col, pl.lit(text)).value).item() == value


def test_every_billing_line_and_return_is_published_at_its_amount() -> None:
    sources = declared_sources(FIXTURE / "sources.yaml")
    rows = list(csv.DictReader(io.StringIO(_export().decode()), delimiter=";"))
    result = _clean(sources, _export())
    assert result.quarantine.is_empty()
    lines = result.tables["order_lines"].sort("order_id", "line_number")
    assert lines.select("order_id", "quantity", "line_amount_source").rows() == [
        (f"store_de:{r['Beleg']}", int(r["Menge"].rstrip("-")) * (-1 if "-" in r["Menge"] else 1),
         _german(r["Betrag"]))
        for r in rows
    ]
    returned = lines.filter(pl.col("is_return"))
    assert returned.select("sku", "quantity", "unit_price").rows() == [("MUG-01", -1, 12.5)]
    # 23:58:41 in Berlin is 22:58:41 UTC, the same day
    late = result.tables["orders"].filter(pl.col("order_id") == "store_de:4714")
    assert late["ordered_at"].item() == dt.datetime(2026, 3, 4, 22, 58, 41, tzinfo=dt.UTC)


def test_undeclared_the_returns_are_refused_naming_the_value() -> None:
    sources = declared_sources(FIXTURE / "sources.yaml")
    spec = sources["sap"]
    plain = dataclasses.replace(
        spec, columns=tuple(dataclasses.replace(c, negatives=()) for c in spec.columns)
    )
    result = _clean(dataclasses.replace(sources, sources={"sap": plain}), _export())
    assert result.quarantine.select("source_row", "reasons").rows() == [
        (3, "quantity: not an integer ('1-'); unit_price: not a number with decimal comma "
            "('12,50-')")
    ]


def test_a_discount_taken_off_is_negated_whatever_its_form() -> None:
    """An order amount read with `negate` (a discount written as a positive amount) in a
    source that writes negatives in parentheses or with a trailing minus: `(6.00)` and
    `6,00-` were refused as not a number once a minus was put in front of them."""
    declaration = """
version: 1
sources:
  shop:
    contract: order_lines
    channel: shop
    format: csv
    landing: shop/{date}.csv
    order_amounts: {Discount: {code: DISCOUNT, kind: discount, negate: true}}
    columns:
      order_id:    {from: Order, type: string}
      line_number: {sequence: order_id, type: int}
      ordered_at:  {from: At, type: timestamp, timestamp_format: iso8601}
      currency:    {constant: EUR, type: string}
      sku:         {from: Sku, type: string}
      quantity:    {from: Qty, type: int}
      unit_price:  {from: Price, type: float, decimal: ",", symbol: €,
                    negatives: [parentheses, trailing_minus]}
"""
    sources = over_packaged("shop.yaml", declaration)
    head = "Order,At,Sku,Qty,Price,Discount\n"
    for discount, taken in (('"6,00 €"', -6.0), ('"(6,00 €)"', 6.0), ('"6,00-"', 6.0)):
        data = head + f'A1,2026-03-04T10:00:00Z,MUG-01,2,"15,00 €",{discount}\n'
        frame = parse_landing(data.encode(), sources["shop"], f"shop/{DAY}.csv").frame
        result = clean_orders_day(
            {"shop": frame}, IDENTITY_SCHEMA.to_frame(), b"k", DAY, sources
        )
        if taken < 0:
            assert result.quarantine.is_empty()
            made = result.tables["order_lines"].filter(pl.col("sku") == "DISCOUNT")
            assert made["unit_price"].to_list() == [taken]
        else:  # written negative already: negate would add it to the order, so refused
            assert result.quarantine["reasons"].to_list() == [
                "unit_price: must be < 0 once negated (an order amount taken off the order, "
                "written below 0: drop its negate?) (6.0)"
            ]


@pytest.mark.parametrize(
    ("declared", "error"),
    [
        ("negatives: [trailing]", "each of trailing_minus, parentheses at most once"),
        ("negatives: [parentheses, parentheses]", "at most once"),
    ],
)
def test_a_negatives_declaration_that_cannot_work_is_refused(declared: str, error: str) -> None:
    text = (FIXTURE / "sources.yaml").read_text().replace("replace_packaged: true\n", "")
    bad = text.replace("negatives: [trailing_minus]}", f"{declared}}}", 1)
    assert bad != text
    with pytest.raises(SourceSpecError, match=rf"quantity\.negatives: .*{error}"):
        over_packaged("sap.yaml", bad)
    on_text = text.replace("{from: Material, type: string}", "{from: Material, type: string, "
                           "negatives: [parentheses]}")
    with pytest.raises(SourceSpecError, match=r"sku\.negatives: only for float and int"):
        over_packaged("sap.yaml", on_text)
