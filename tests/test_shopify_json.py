"""A Shopify shop read from its orders as JSON: the line items a list, the money on the order.

The Admin API (and connectors that copy it, such as Airbyte) give one object per order:
`line_items` a list, the shipping under `total_shipping_price_set.shop_money.amount`, the
order-level discount as `total_discounts`, the order's total as `total_price`. Sources that
`explode` a list of items could not declare `order_amounts` or `order_total`, so such a shop
was published at its items' prices (#1001 at 60.00 where the shop charged 58.90), every check
green; and a JSON Lines source that declared amounts failed to read them. Now the amounts
become lines numbered after the order's items and each order is checked against its total.
The expected totals are read from the file with `json` alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from aiwf_assets.cleaning import CleanResult, clean_orders_day
from aiwf_assets.cleaning.transforms import IDENTITY_SCHEMA
from aiwf_assets.ingest.parse import ParseResult, parse_landing
from aiwf_assets.ingest.spec import (
    DEFAULT_SOURCES_PATH,
    ReturnsSpec,
    SourcesConfig,
    SourceSpec,
    SourceSpecError,
    declared_sources,
    parse_documents,
)
from tests.test_third_party_export import run_to_marts

FIXTURE = Path(__file__).parent / "fixtures" / "shopify_json"
DECLARED = FIXTURE / "sources.yaml"
KEY = b"test-pii-key"
DAY = dt.date(2026, 3, 4)
SHOP = "shop_json"


def _sources() -> SourcesConfig:
    return declared_sources(DECLARED)


def _export() -> bytes:
    return (FIXTURE / SHOP / f"{DAY}.jsonl").read_bytes()


def _orders_as_written() -> list[dict]:
    return [json.loads(line) for line in _export().decode().splitlines()]


def _stated(rates: dict[str, float]) -> dict[str, float]:
    """Each order's total_price in EUR, as the file states it."""
    rates = {"EUR": 1.0, **rates}
    return {
        f"{SHOP}:{o['name']}": round(float(o["total_price"]) * rates[o["currency"]], 2)
        for o in _orders_as_written()
    }


def _parse(spec: SourceSpec, data: bytes) -> ParseResult:
    return parse_landing(data, spec, f"{SHOP}/{DAY}.jsonl")


def _clean(sources: SourcesConfig, data: bytes) -> CleanResult:
    frame = _parse(sources[SHOP], data).frame
    return clean_orders_day({SHOP: frame}, IDENTITY_SCHEMA.to_frame(), KEY, DAY, sources)


def _published(result: CleanResult) -> dict[str, float]:
    orders = result.tables["orders"]
    return {o: round(t, 2) for o, t in zip(orders["order_id"], orders["order_total"], strict=True)}


def test_every_order_adds_up_to_the_total_price_it_states() -> None:
    sources = _sources()
    parsed = _parse(sources[SHOP], _export())
    assert parsed.missing_columns == () and parsed.extra_columns == ()
    assert parsed.orders_not_adding_up == 0
    written = _orders_as_written()
    shipped = [o for o in written if float(o["total_shipping_price_set"]["shop_money"]["amount"])]
    discounted = [o for o in written if float(o["total_discounts"])]
    assert parsed.order_amount_lines == len(shipped) + len(discounted) == 3
    result = _clean(sources, _export())
    assert result.quarantine.is_empty()
    assert _published(result) == _stated(sources.currency_rates_to_eur)
    # the amounts are lines after the order's items, in the order they are declared
    lines = result.tables["order_lines"].filter(pl.col("order_id") == f"{SHOP}:#1001")
    lines = lines.sort("line_number").select("line_number", "sku", "line_kind", "unit_price")
    assert lines.rows() == [
        (1, "MUG-01", "product", 12.5),
        (2, "PLT-02", "product", 20.0),
        (3, "TWL-07", "product", 15.0),
        (4, "SHIPPING", "postage", 4.9),
        (5, "DISCOUNT", "discount", -6.0),
    ]
    counts = result.accounting.row(0, named=True)
    assert counts["lines_in_file"] == counts["lines_parsed"] == len(written)


def test_an_order_sent_twice_keeps_one_of_each_amount() -> None:
    data = _export()
    first = data.decode().splitlines(keepends=True)[0]
    result = _clean(_sources(), data + first.encode())
    assert result.quarantine.is_empty()
    # its three items; its amounts are made once per order, however often it is sent
    assert result.accounting["duplicates_removed"].item() == 3
    assert _published(result)[f"{SHOP}:#1001"] == 58.9


def test_without_the_amounts_the_orders_that_do_not_add_up_are_held() -> None:
    sources = _sources()
    plain = dataclasses.replace(sources[SHOP], order_amounts=(), non_merchandise={})
    sources = dataclasses.replace(sources, sources={**sources.sources, SHOP: plain})
    result = _clean(sources, _export())
    assert sorted(_published(result)) == [f"{SHOP}:#1003", f"{SHOP}:#1004"]
    held = result.quarantine.select("source_row", "reasons").unique().sort("source_row")
    assert held.rows() == [
        (
            1,
            "record: order_total: the order's lines do not add up to its total_price, so none "
            "of its lines is kept: a line or an order amount is not read (a tax, shipping, a "
            "tip? see order_amounts) (total_price 58.90, lines 60.00, row 1)",
        ),
        (
            2,
            "record: order_total: the order's lines do not add up to its total_price, so none "
            "of its lines is kept: a line or an order amount is not read (a tax, shipping, a "
            "tip? see order_amounts) (total_price 29.90, lines 25.00, row 2)",
        ),
    ]


def test_a_json_number_reads_as_the_text_would() -> None:
    """An export writing the money as JSON numbers (4.9, 58.9) instead of strings."""
    order = _orders_as_written()[0]
    order["total_price"], order["total_discounts"] = 58.9, 6
    order["total_shipping_price_set"]["shop_money"]["amount"] = 4.9
    result = _clean(_sources(), (json.dumps(order) + "\n").encode())
    assert result.quarantine.is_empty()
    assert _published(result) == {f"{SHOP}:#1001": 58.9}


def test_a_return_document_is_returned_with_its_shipping_and_discount() -> None:
    """A record whose own status marks it a return (`returns.status`: a marketplace's return
    documents, not Shopify's financial_status, which says what later happened to a sale):
    its made lines take the record's status, so it returns its Total, not its items with
    the shipping still sold."""
    sources = _sources()
    spec = dataclasses.replace(sources[SHOP], returns=ReturnsSpec(status_values=("returned",)))
    sources = dataclasses.replace(sources, sources={**sources.sources, SHOP: spec})
    order = _orders_as_written()[0]
    order["financial_status"] = "returned"
    result = _clean(sources, (json.dumps(order) + "\n").encode())
    assert result.quarantine.is_empty()
    assert result.tables["order_lines"]["is_return"].all()
    assert result.tables["orders"]["is_return"].to_list() == [True]
    assert _published(result) == {f"{SHOP}:#1001": -58.9}


SOURCE = """
version: 1
sources:
  shop:
    contract: order_lines
    channel: shop
    format: jsonl
    landing: shop/{date}.jsonl
    order_amounts: {shipping: {code: SHIPPING, kind: postage}}
    columns:
      order_id:   {from: name, type: string}
      ordered_at: {from: created_at, type: timestamp, timestamp_format: iso8601}
      currency:   {constant: EUR, type: string}
      %(line_number)s
    explode:
      from: line_items
      %(index)s
      columns:
        sku:        {from: sku, type: string}
        quantity:   {from: quantity, type: int}
        unit_price: {from: price, type: float}
"""


def test_an_exploded_source_must_number_its_items() -> None:
    packaged = (str(DEFAULT_SOURCES_PATH), DEFAULT_SOURCES_PATH.read_text())
    good = SOURCE % {"line_number": "", "index": "index: line_number"}
    assert parse_documents([packaged, ("shop.yaml", good)])["shop"].order_amounts
    bad = SOURCE % {"line_number": "line_number: {from: pos, type: int}", "index": ""}
    with pytest.raises(SourceSpecError, match="order_amounts") as error:
        parse_documents([packaged, ("shop.yaml", bad)])
    assert "numbered after the order's items" in str(error.value)


def test_the_marts_hold_what_the_shop_charged(tmp_path: Path) -> None:
    landing = tmp_path / "landing" / SHOP
    landing.mkdir(parents=True)
    (landing / f"{DAY}.jsonl").write_bytes(_export())
    run_to_marts(tmp_path, DECLARED, str(DAY), str(DAY))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select count(*) from cleaned.quarantine").fetchall() == [(0,)]
        served = dict(con.sql("select order_id, order_total from marts.fct_orders").fetchall())
        units = dict(con.sql("select order_id, n_units from marts.fct_orders").fetchall())
    assert {o: round(t, 2) for o, t in served.items()} == _stated(_sources().currency_rates_to_eur)
    assert units == {
        f"{SHOP}:{o['name']}": sum(i["quantity"] for i in o["line_items"])
        for o in _orders_as_written()
    }
