"""Order-level money as lines of the order: a source's `order_amounts`.

Shopify's order export (tests/fixtures/shopify) writes an order's Shipping and Discount
Amount once, on its first row, next to the order's Total. Without the key the marts had
each order at its line items' prices: order #1001 at 60.00 where the shop charged 58.90
(6.00 off, 4.90 shipping), revenue and customers' spend off by every discount and every
shipping fee, every check green. With `order_amounts` each non-zero amount becomes a line
of the order (code SHIPPING of kind postage, DISCOUNT of kind discount at a negative
price), left out of the product marts like any non-merchandise line, and every order adds
up to the Total the export states, which these tests read from the file with csv alone.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from aiwf_assets.cleaning import CleanResult, clean_orders_day
from aiwf_assets.cleaning.transforms import IDENTITY_SCHEMA
from aiwf_assets.ingest.parse import ParseResult, parse_landing
from aiwf_assets.ingest.spec import (
    DEFAULT_SOURCES_PATH,
    SourcesConfig,
    SourceSpec,
    SourceSpecError,
    declared_sources,
    parse_documents,
)
from tests.test_third_party_export import run_to_marts

FIXTURE = Path(__file__).parent / "fixtures" / "shopify"
DECLARED = FIXTURE / "amounts.yaml"
KEY = b"test-pii-key"
DAY = dt.date(2026, 3, 4)
SHOPS = ("shop_a", "shop_b")
EVE = "#2001,eve@example.com,paid,EUR,2026-03-04 10:00:00 +0100,"  # an order's own fields
HEADER = (
    "Name,Email,Financial Status,Currency,Created at,Total,Discount Code,Discount Amount,"
    "Shipping,Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku\n"
)


def _sources() -> SourcesConfig:
    return declared_sources(DECLARED)


def _export(shop: str) -> bytes:
    return (FIXTURE / shop / f"{DAY}.csv").read_bytes()


def _parse(spec: SourceSpec, data: bytes) -> ParseResult:
    return parse_landing(data, spec, f"{spec.name}/{DAY}.csv")


def _clean(sources: SourcesConfig, shop: str, data: bytes) -> CleanResult:
    frame = _parse(sources[shop], data).frame
    return clean_orders_day({shop: frame}, IDENTITY_SCHEMA.to_frame(), KEY, DAY, sources)


def _stated(data: bytes) -> dict[str, dict]:
    """Per order as the shop states it, read with csv alone (a row continues the order above
    unless it names another): its Total, currency, rows, and non-zero Shipping/Discount."""
    orders: dict[str, dict] = {}
    name = None
    for row in csv.DictReader(io.StringIO(data.decode())):
        name = row["Name"] or name
        order = orders.setdefault(name, {"rows": 0, "amounts": 0})
        order["rows"] += 1
        for field in ("Total", "Currency"):
            order[field] = order.get(field) or row[field]
        order["amounts"] += sum(
            1 for f in ("Shipping", "Discount Amount") if row[f] and Decimal(row[f]) != 0
        )
    return orders


def _orders(result: CleanResult) -> dict[str, float]:
    orders = result.tables["orders"]
    return dict(zip(orders["order_id"], orders["order_total"], strict=True))


@pytest.mark.parametrize("shop", SHOPS)
def test_every_order_adds_up_to_the_total_the_export_states(shop: str) -> None:
    sources = _sources()
    data = _export(shop)
    result = _clean(sources, shop, data)
    assert result.quarantine.is_empty()
    stated = _stated(data)
    rates = {"EUR": 1.0, **sources.currency_rates_to_eur}
    published = _orders(result)
    assert {o: round(t, 2) for o, t in published.items()} == {
        f"{shop}:{name}": round(float(o["Total"]) * rates[o["Currency"]], 2)
        for name, o in stated.items()
    }
    # each amount is one line of its order; written zeros (0.00) give none
    lines = result.tables["order_lines"]
    made = lines.filter(pl.col("line_kind") != "product")
    amounts = sum(o["amounts"] for o in stated.values())
    assert made.height == amounts >= 3
    first = made.filter(pl.col("order_id") == f"{shop}:#1001").sort("sku")
    assert first.select("sku", "line_kind", "quantity", "unit_price").rows() == [
        ("DISCOUNT", "discount", 1, -6.0),
        ("SHIPPING", "postage", 1, 4.9),
    ]
    assert first["is_promo"].to_list() == [True, True]  # the order's, as its other lines
    # line numbers run 1..n per order, the amounts' included
    for order_id, numbers in lines.group_by("order_id").agg("line_number").rows():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), order_id
    # counts add up against the file: every record read once, the amounts on top
    counts = result.accounting.row(0, named=True)
    records = sum(o["rows"] for o in stated.values())
    assert counts["lines_in_file"] == counts["lines_parsed"] == records
    assert counts["rows_in"] == counts["rows_cleaned"] == records + amounts


def test_without_the_key_the_orders_lacked_their_shipping_and_discount() -> None:
    sources = _sources()
    plain = dataclasses.replace(sources["shop_b"], order_amounts=(), non_merchandise={})
    sources = dataclasses.replace(sources, sources={**sources.sources, "shop_b": plain})
    published = _orders(_clean(sources, "shop_b", _export("shop_b")))
    assert round(published["shop_b:#1001"], 2) == 60.0  # the shop charged 58.90
    assert round(published["shop_b:#1002"], 2) == 25.0  # 29.90 with shipping


def test_the_amount_line_stands_on_the_row_it_was_written_on() -> None:
    parsed = _parse(_sources()["shop_b"], _export("shop_b"))
    assert parsed.missing_columns == () and parsed.extra_columns == ()
    stated = _stated(_export("shop_b"))
    assert parsed.order_amount_lines == sum(o["amounts"] for o in stated.values())
    made = parsed.frame.filter(pl.col("sku").is_in(["SHIPPING", "DISCOUNT"]))
    made = made.sort("sku", "order_id")
    first_two = made.filter(pl.col("order_id").is_in(["#1001", "#1002"]))
    assert first_two.select("order_id", "quantity", "unit_price", "_source_row").rows() == [
        ("#1001", "1", "-6.00", 1),
        ("#1001", "1", "4.90", 1),
        ("#1002", "1", "4.90", 4),
    ]
    assert set(made["currency"]) == {"EUR"}


def test_an_order_sent_twice_in_one_file_keeps_one_of_each_amount() -> None:
    data = _export("shop_b")
    rows = data.decode().splitlines(keepends=True)
    again = "".join(r for r in rows[1:] if r.startswith("#1001,"))
    assert again.count("\n") == 3
    result = _clean(_sources(), "shop_b", data + again.encode())
    assert result.quarantine.is_empty()
    assert result.accounting["duplicates_removed"].item() == 3
    assert round(_orders(result)["shop_b:#1001"], 2) == 58.9
    lines = result.tables["order_lines"].filter(pl.col("order_id") == "shop_b:#1001")
    assert sorted(lines["sku"]) == ["DISCOUNT", "MUG-01", "PLT-02", "SHIPPING", "TWL-07"]


def test_an_export_writing_the_amount_on_every_row_gets_one_line_per_order() -> None:
    data = HEADER + (
        f"{EVE}49.90,,0.00,4.90,1,Mug,15.00,MUG-01\n"
        f"{EVE}49.90,,0.00,4.90,1,Plate,30.00,PLT-02\n"
    )
    result = _clean(_sources(), "shop_b", data.encode())
    assert result.quarantine.is_empty()
    lines = result.tables["order_lines"]
    assert lines.filter(pl.col("sku") == "SHIPPING").height == 1
    assert round(_orders(result)["shop_b:#2001"], 2) == 49.9


def test_two_values_for_one_amount_in_one_order_are_quarantined_naming_both() -> None:
    data = HEADER + (
        f"{EVE}49.90,,0.00,4.90,1,Mug,15.00,MUG-01\n"
        f"{EVE}49.90,,0.00,5.90,1,Plate,30.00,PLT-02\n"
    )
    result = _clean(_sources(), "shop_b", data.encode())
    assert result.quarantine["reasons"].to_list() == [
        "record: Shipping: the order's rows give different values (4.90, 5.90) on rows 1, 2"
    ]
    # the order's goods are published; the doubtful shipping is not guessed
    assert round(_orders(result)["shop_b:#2001"], 2) == 45.0


def test_a_discount_written_negative_is_not_read_as_a_surcharge() -> None:
    data = HEADER + f"{EVE}39.00,,-6.00,0.00,1,Mug,45.00,MUG-01\n"
    result = _clean(_sources(), "shop_b", data.encode())
    assert result.quarantine["reasons"].to_list() == [
        "unit_price: must be < 0 once negated (an order amount taken off the order, written "
        "below 0: drop its negate?) (6.0)"
    ]


def test_a_file_without_a_declared_amount_says_so() -> None:
    data = (
        "Name,Email,Currency,Created at,Discount Amount,Lineitem quantity,Lineitem price,"
        "Lineitem sku\n#3001,,EUR,2026-03-04 10:00:00 +0100,0.00,1,15.00,MUG-01\n"
    )
    parsed = _parse(_sources()["shop_b"], data.encode())
    assert parsed.missing_columns == (
        "line_status",
        "promo_code",
        "order_amounts.Shipping",
    )


SOURCE = """
version: 1
sources:
  shop:
    contract: order_lines
    channel: shop
    format: %(format)s
    landing: shop/{date}.csv
    order_amounts: %(amounts)s
    %(extra)s
    columns:
      order_id:   {from: Name, type: string}
      line_number: %(line_number)s
      ordered_at: {from: Created at, type: timestamp, timestamp_format: iso8601}
      currency:   {constant: EUR, type: string}
      sku:        {from: sku, type: string, normalise: [%(normalise)s]}
      quantity:   {from: qty, type: int}
      unit_price: {from: price, type: float}
"""
GOOD = {
    "format": "csv",
    "amounts": "{Shipping: {code: SHIPPING, kind: postage}}",
    "extra": "",
    "line_number": "{sequence: order_id, type: int}",
    "normalise": "upper",
}


def _declare(**changes: str) -> SourcesConfig:
    packaged = (str(DEFAULT_SOURCES_PATH), DEFAULT_SOURCES_PATH.read_text())
    return parse_documents([packaged, ("shop.yaml", SOURCE % {**GOOD, **changes})])


def test_a_declaration_reads_its_amounts_and_their_codes_are_non_merchandise() -> None:
    spec = _declare()["shop"]
    assert [(a.field, a.code, a.kind, a.negate) for a in spec.order_amounts] == [
        ("Shipping", "SHIPPING", "postage", False)
    ]
    assert spec.non_merchandise == {"SHIPPING": "postage"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"line_number": "{from: line, type: int}"},
            "declare columns.line_number: {sequence: order_id, type: int}",
        ),
        ({"amounts": "{Shipping: {code: SHIPPING, kind: product}}"}, "other than 'product'"),
        ({"amounts": "{Shipping: {code: shipping, kind: postage}}"}, "reads as 'SHIPPING'"),
        ({"amounts": "{Shipping: {code: S, kind: postage, negate: 1}}"}, "negate: true or"),
        ({"amounts": "{Shipping: {kind: postage}}"}, "code"),
        ({"amounts": "{Shipping: {code: S, kind: postage, sign: -1}}"}, "sign"),
        ({"amounts": "{Refunded: {code: R, kind: refund, refund: yes please}}"}, "refund: true"),
        (
            {"amounts": "{Refunded: {code: R, kind: refund, refund: true, negate: true}}"},
            "a refund is the money given back as a positive amount",
        ),
        (
            {"amounts": "{Shipping: {code: S, kind: postage}, Fee: {code: S, kind: postage}}"},
            "each amount needs a code of its own",
        ),
        (
            {"extra": "non_merchandise: {SHIPPING: fee}"},
            "'SHIPPING' is non_merchandise of kind 'fee', not 'postage'",
        ),
    ],
)
def test_a_declaration_that_cannot_work_is_refused_naming_why(
    changes: dict[str, str], message: str
) -> None:
    with pytest.raises(SourceSpecError, match="order_amounts") as error:
        _declare(**changes)
    assert message in str(error.value)


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("order_amounts_home")
    for shop in SHOPS:
        landing = home / "landing" / shop
        landing.mkdir(parents=True)
        (landing / f"{DAY}.csv").write_bytes(_export(shop))
    report = run_to_marts(home, DECLARED, str(DAY), str(DAY))
    # the marts' price test holds a discount line's negative price as what it is
    assert ["fct_order_lines_unit_price_is_positive", True] in report["checked"]
    return home


def test_the_marts_hold_what_the_shop_charged(built: Path) -> None:
    rates = {"EUR": 1.0, **_sources().currency_rates_to_eur}
    with duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select count(*) from cleaned.quarantine").fetchall() == [(0,)]
        served = dict(con.sql("select order_id, order_total from marts.fct_orders").fetchall())
        sold = con.sql("select distinct sku from marts.fct_product_daily_sales").fetchall()
        kinds = dict(
            con.sql(
                "select line_kind, round(sum(line_amount), 2) from marts.fct_order_lines "
                "where line_kind <> 'product' group by 1"
            ).fetchall()
        )
    expected = {
        f"{shop}:{name}": round(float(o["Total"]) * rates[o["Currency"]], 2)
        for shop in SHOPS
        for name, o in _stated(_export(shop)).items()
    }
    assert {o: round(t, 2) for o, t in served.items()} == expected
    # demand and recommendations see goods only
    assert not {sku for (sku,) in sold} & {"SHIPPING", "DISCOUNT"}
    shipped = sum(
        Decimal(row["Shipping"] or 0)
        for shop in SHOPS
        for row in csv.DictReader(io.StringIO(_export(shop).decode()))
    )
    assert kinds == {"postage": float(shipped), "discount": -12.0}


def test_an_orders_units_are_its_goods(built: Path) -> None:
    """The shipping and discount lines are money of the order, not units of its basket:
    #1001 (2 mugs, a plate, a towel, shipping, a discount) is 4 units in 5 lines, not 6; the
    customers' daily units (RFM, basket size) follow. They used to count as a unit each."""
    units: dict[str, int] = {}
    for shop in SHOPS:
        name = None
        for row in csv.DictReader(io.StringIO(_export(shop).decode())):
            name = row["Name"] or name
            key = f"{shop}:{name}"
            units[key] = units.get(key, 0) + int(row["Lineitem quantity"])
    with duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as con:
        served = dict(con.sql("select order_id, n_units from marts.fct_orders").fetchall())
        lines = con.sql(
            "select n_lines from marts.fct_orders where order_id = 'shop_a:#1001'"
        ).fetchall()
        per_customer = con.sql(
            "select sum(n_units) from marts.fct_customer_daily_activity"
        ).fetchall()
        of_customers = con.sql(
            "select sum(n_units) from marts.fct_orders where customer_key is not null"
        ).fetchall()
    assert served == units
    assert lines == [(5,)]
    assert per_customer == of_customers
