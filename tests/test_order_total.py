"""An order's lines checked against the total its export states: a source's `order_total`.

Shopify's order export writes each order's `Total` on its first row. Without the check a
mapping that misses part of the order's money (the Shipping and Discount Amount before
`order_amounts`, a US shop's Taxes, a tip) published every such order at its line prices,
every check green: #1001 at 60.00 where the shop charged 58.90. With `order_total: Total`
an order whose lines (its made `order_amounts` lines included) do not add up to the Total
is quarantined whole, with a reason naming both sums, and the rest of the file is published.
The expected totals here are read from the file with `csv` alone.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import duckdb
import polars as pl
import pytest

from aiwf_assets.cleaning import CleanResult
from aiwf_assets.cleaning.quarantine import reasons_by_row
from aiwf_assets.ingest.assets import _ingest_one
from aiwf_assets.ingest.landing import LandingResource, raw_code_version, spec_fingerprint
from aiwf_assets.ingest.landing import declared as declaration
from aiwf_assets.ingest.parse import ORDER_TOTAL_READING
from aiwf_assets.ingest.spec import (
    DEFAULT_SOURCES_PATH,
    ReturnsSpec,
    SourcesConfig,
    SourceSpec,
    SourceSpecError,
    declared_sources,
    parse_documents,
)
from tests.test_order_amounts import (  # the Shopify fixture's export, parsed and cleaned
    DAY,
    EVE,
    FIXTURE,
    HEADER,
    SHOPS,
    _clean,
    _export,
    _parse,
)
from tests.test_third_party_export import run_to_marts

HELD = "so none of its lines is kept"
# the reason of an order whose lines do not add up, before its values
SHORT = (
    f"record: order_total: the order's lines do not add up to its Total, {HELD}: a line or an "
    "order amount is not read (a tax, shipping, a tip? see order_amounts)"
)


def _checked(text: str) -> str:
    """A Shopify declaration of tests/fixtures/shopify with the order's Total checked."""
    ignored = "    ignore: [Total, Lineitem name]\n"
    assert ignored in text
    return text.replace(ignored, "    ignore: [Lineitem name]\n    order_total: Total\n")


@pytest.fixture(scope="module")
def declared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """amounts.yaml (Shipping and Discount Amount read as lines) with `order_total: Total`."""
    path = tmp_path_factory.mktemp("checked") / "sources.yaml"
    path.write_text(_checked((FIXTURE / "amounts.yaml").read_text()))
    return path


@pytest.fixture(scope="module")
def sources(declared: Path) -> SourcesConfig:
    return declared_sources(declared)


def _with(sources: SourcesConfig, spec: SourceSpec) -> SourcesConfig:
    """`sources` with `spec` in place of the source of its name."""
    return dataclasses.replace(sources, sources={**sources.sources, spec.name: spec})


def _without_amounts(sources: SourcesConfig, shop: str) -> SourcesConfig:
    """The declaration as it was before `order_amounts`: line items only, Total checked."""
    return _with(sources, dataclasses.replace(sources[shop], order_amounts=(), non_merchandise={}))


def _priced(sources: SourcesConfig, **changes: str | bool) -> SourcesConfig:
    """shop_b with its unit_price column declared with `changes` (`line_total`, `symbol`)."""
    spec = sources["shop_b"]
    columns = tuple(
        dataclasses.replace(c, **changes) if c.name == "unit_price" else c for c in spec.columns
    )
    return _with(sources, dataclasses.replace(spec, columns=columns))


def _with_amount(sources: SourcesConfig, **amount: str | bool) -> SourcesConfig:
    """shop_b reading one more order amount (`field`, `code`, `kind`, ...), its code
    non-merchandise of its kind, as the declaration's loader makes it."""
    spec = sources["shop_b"]
    added = dataclasses.replace(spec.order_amounts[0], **amount)
    return _with(
        sources,
        dataclasses.replace(
            spec,
            order_amounts=(*spec.order_amounts, added),
            non_merchandise={**spec.non_merchandise, added.code: added.kind},
        ),
    )


def _stated(data: bytes, rates: dict[str, float]) -> dict[str, float]:
    """Each order's Total in EUR, read with csv alone (a row without a Name continues the
    order above; Total and Currency are written on an order's first row)."""
    orders: dict[str, dict[str, str]] = {}
    name = None
    for row in csv.DictReader(io.StringIO(data.decode())):
        name = row["Name"] or name
        order = orders.setdefault(name, {})
        for field in ("Total", "Currency"):
            order[field] = order.get(field) or row[field]
    return {
        name: round(float(o["Total"]) * {"EUR": 1.0, **rates}[o["Currency"]], 2)
        for name, o in orders.items()
    }


def _published(result: CleanResult) -> dict[str, float]:
    orders = result.tables["orders"]
    return {o: round(t, 2) for o, t in zip(orders["order_id"], orders["order_total"], strict=True)}


def _reasons(result: CleanResult) -> dict[int, str]:
    rows = result.quarantine.select("source_row", "reasons").rows()
    return dict(sorted(rows))


@pytest.mark.parametrize("shop", SHOPS)
def test_a_complete_mapping_adds_up_and_publishes_every_order(
    sources: SourcesConfig, shop: str
) -> None:
    data = _export(shop)
    parsed = _parse(sources[shop], data)
    assert parsed.orders_not_adding_up == 0
    assert parsed.missing_columns == () and parsed.extra_columns == ()
    result = _clean(sources, shop, data)
    assert result.quarantine.is_empty()
    assert _published(result) == {
        f"{shop}:{name}": total
        for name, total in _stated(data, sources.currency_rates_to_eur).items()
    }


@pytest.mark.parametrize("shop", SHOPS)
def test_orders_missing_their_shipping_and_discount_are_held_back_naming_both_sums(
    sources: SourcesConfig, shop: str
) -> None:
    """The declaration before `order_amounts` published #1001 at 60.00 (charged 58.90)."""
    plain = _without_amounts(sources, shop)
    data = _export(shop)
    assert _parse(plain[shop], data).orders_not_adding_up == 3
    result = _clean(plain, shop, data)
    # the orders without shipping or a discount are published; the others are not guessed
    assert _published(result) == {f"{shop}:#1003": 77.5, f"{shop}:#1004": round(119 * 1.05, 2)}
    reasons = _reasons(result)
    first = f"{SHORT} (Total 58.90, lines 60.00, rows 1, 2, 3)"
    assert reasons[1] == reasons[2] == reasons[3] == first
    assert reasons[4] == f"{SHORT} (Total 29.90, lines 25.00, row 4)"
    # one kind of reason whatever the order's values: a file whose every order is short (an
    # unread tax) is one problem to the volume guard, which then holds the day
    assert reasons_by_row(result.quarantine)["reason"].unique().to_list() == [
        "record: order_total: the order's lines do not add up to its Total, so none of its "
        "lines is kept: a line or an order amount is not read"
    ]
    assert sorted(reasons) == [1, 2, 3, 4, 9, 10]
    # counts add up against the file: every record read once, each either published or held
    counts = result.accounting.row(0, named=True)
    assert counts["lines_in_file"] == counts["lines_parsed"] == counts["rows_in"] == 10
    assert counts["rows_cleaned"] + counts["rows_quarantined"] == 10


def test_a_us_shop_whose_total_includes_the_tax_is_held_until_the_tax_is_read(
    sources: SourcesConfig,
) -> None:
    """Prices before tax, Taxes on the order's first row: unread, the order's money is
    short by the tax; declared as an order amount, the order adds up and is published."""
    header = HEADER.replace("Shipping,", "Shipping,Taxes,")
    data = header + (
        "#3001,sam@example.com,paid,USD,2026-03-04 09:00:00 -0500,64.39,,0.00,5.00,4.39,"
        "2,Mug,12.50,MUG-01\n"
        ",,,,,,,,,,1,Plate,30.00,PLT-02\n"
    )
    usd = dataclasses.replace(sources, currency_rates_to_eur={"USD": 0.9})
    held = _clean(usd, "shop_b", data.encode())
    assert held.tables["orders"].is_empty()
    assert set(held.quarantine["reasons"]) == {f"{SHORT} (Total 64.39, lines 60.00, rows 1, 2)"}
    usd = _with_amount(usd, field="Taxes", code="TAX", kind="tax")
    result = _clean(usd, "shop_b", data.encode())
    assert result.quarantine.is_empty()
    assert _published(result) == {"shop_b:#3001": round(64.39 * 0.9, 2)}


def test_an_order_sent_twice_in_one_file_is_summed_once(sources: SourcesConfig) -> None:
    data = _export("shop_b")
    again = "".join(r for r in data.decode().splitlines(keepends=True) if r.startswith("#1001,"))
    result = _clean(sources, "shop_b", data + again.encode())
    assert result.quarantine.is_empty()
    assert _published(result)["shop_b:#1001"] == 58.9


def test_a_total_written_with_fewer_decimals_or_off_by_a_cent(sources: SourcesConfig) -> None:
    """Compared to half a unit of the total's last written digit: 49.9 is 49.90; 49.91 is
    not 49.90."""
    lines = "0.00,4.90,1,Mug,15.00,MUG-01\n" + ",,,,,,,,,1,Plate,30.00,PLT-02\n"
    for total, published in (("49.9", True), ("49.90", True), ("49.91", False)):
        result = _clean(sources, "shop_b", (HEADER + f"{EVE}{total},," + lines).encode())
        assert (not result.tables["orders"].is_empty()) is published, total


def test_an_unreadable_line_holds_its_order_naming_the_row(sources: SourcesConfig) -> None:
    """Publishing the order's other lines would publish an order that does not add up."""
    data = HEADER + (
        f"{EVE}49.90,,0.00,4.90,1,Mug,15.00,MUG-01\n"
        ",,,,,,,,,two,Plate,15.00,PLT-02\n"
        "#2002,,paid,EUR,2026-03-04 11:00:00 +0100,15.00,,0.00,0.00,1,Mug,15.00,MUG-01\n"
    )
    result = _clean(sources, "shop_b", data.encode())
    assert _published(result) == {"shop_b:#2002": 15.0}
    reasons = _reasons(result)
    assert sorted(reasons) == [1, 2]
    assert set(reasons.values()) == {
        "record: order_total: the order's lines cannot all be read to check them against its "
        f"Total, {HELD} (row 2: quantity: not an integer ('two'), Total 49.90)"
    }


def test_lines_that_state_their_total_are_summed_as_written(sources: SourcesConfig) -> None:
    """`unit_price: {..., line_total: true}`: the price field holds quantity x price (an item
    sales report's Net Sales), so the order's sum is its lines' fields; read as unit prices
    the same file does not add up and is held."""
    data = HEADER + f"{EVE}34.90,,0.00,4.90,2,Mug,30.00,MUG-01\n"
    result = _clean(_priced(sources, line_total=True), "shop_b", data.encode())
    assert result.quarantine.is_empty()
    assert _published(result) == {"shop_b:#2001": 34.9}
    mug = result.tables["order_lines"].filter(pl.col("sku") == "MUG-01")
    assert mug.select("quantity", "unit_price").rows() == [(2, 15.0)]
    held = _clean(sources, "shop_b", data.encode())
    assert held.tables["orders"].is_empty()
    assert set(held.quarantine["reasons"]) == {f"{SHORT} (Total 34.90, lines 64.90, row 1)"}


@pytest.mark.parametrize(
    ("total", "published"), [('"34,90 €"', True), ('"34,95 €"', False), ('"34,9 €"', True)]
)
def test_a_total_written_with_its_currency_sign_is_read_as_the_prices_are(
    sources: SourcesConfig, total: str, published: bool
) -> None:
    """A shop writing every amount as `15,00 €` declares `symbol: €` and `decimal: ","` on
    its price; its Total and its order amounts are read alike, to the Total's own cents."""
    data = HEADER + f'{EVE}{total},,"0,00 €","4,90 €",2,Mug,"15,00 €",MUG-01\n'
    result = _clean(_priced(sources, symbol="€", decimal=","), "shop_b", data.encode())
    if published:
        assert result.quarantine.is_empty()
        assert _published(result) == {"shop_b:#2001": 34.9}
    else:
        assert set(result.quarantine["reasons"]) == {
            f"{SHORT} (Total 34,95 €, lines 34,90, row 1)"  # written with the price's mark
        }


def test_a_reason_never_quotes_an_address_or_a_phone_number_in_clear(
    sources: SourcesConfig,
) -> None:
    """Fields shifted into the Total or a price (found by a probe: the held order's reason
    quoted them as written, so the quarantine held an e-mail address and a phone number in
    clear). Identifiers are masked and long text is cut, as cleaning's own reasons are."""
    note = "Call Frank Moser on 0170 1234567 about this order please"
    data = HEADER + (
        f"{EVE}frank.moser@example.org,,0.00,4.90,1,Mug,15.00,MUG-01\n"
        "#2002,,paid,EUR,2026-03-04 11:00:00 +0100,15.00,,0.00,0.00,1,Mug,+49 170 1234567,"
        "MUG-01\n"
        f"#2003,,paid,EUR,2026-03-04 11:00:00 +0100,15.00,,0.00,0.00,1,Mug,{note},MUG-01\n"
    )
    result = _clean(sources, "shop_b", data.encode())
    assert result.tables["orders"].is_empty()
    reasons = _reasons(result)
    assert sorted(reasons) == [1, 2, 3]
    assert reasons[1] == (
        f"record: order_total: the order's Total is not a number, {HELD} ('<email>', row 1)"
    )
    unread = (
        "record: order_total: the order's lines cannot all be read to check them against its "
        f"Total, {HELD} (row {{}}: unit_price: not a number ('{{}}'), Total 15.00)"
    )
    assert reasons[2] == unread.format(2, "<phone>")
    assert reasons[3] == unread.format(3, "Call Frank Moser on <phone> about t…")
    text = " ".join(result.quarantine.select(pl.concat_str(pl.all(), ignore_nulls=True))[:, 0])
    assert "@" not in text and "1234567" not in text


@pytest.mark.parametrize(
    ("first", "second", "why"),
    [
        (
            "49.90", "48.90",
            f"the order's rows give different Totals, {HELD} (49.90, 48.90 on rows 1, 2)",
        ),
        ("", "", f"no Total is written for the order, {HELD} (rows 1, 2)"),
        ('"49,90 EUR"', "", f"the order's Total is not a number, {HELD} ('49,90 EUR', rows 1, 2)"),
    ],
)
def test_an_order_whose_total_cannot_be_told_is_held(
    sources: SourcesConfig, first: str, second: str, why: str
) -> None:
    data = HEADER + (
        f"{EVE}{first},,0.00,4.90,1,Mug,15.00,MUG-01\n"
        f"{EVE}{second},,,,1,Plate,30.00,PLT-02\n"
    )
    result = _clean(sources, "shop_b", data.encode())
    assert result.tables["orders"].is_empty()
    assert set(result.quarantine["reasons"]) == {f"record: order_total: {why}"}


def test_a_file_without_the_total_field_holds_its_orders_and_says_so(
    sources: SourcesConfig,
) -> None:
    """A renamed column (Total -> Total Price) does not switch the check off."""
    data = _export("shop_b").decode().replace(",Total,", ",Total Price,", 1)
    parsed = _parse(sources["shop_b"], data.encode())
    assert parsed.missing_columns == ("order_total.Total",)
    assert parsed.extra_columns == ("Total Price",)
    assert parsed.orders_not_adding_up == 5
    result = _clean(sources, "shop_b", data.encode())
    assert result.tables["orders"].is_empty()
    assert result.quarantine["reasons"][0] == (
        "record: order_total: the file has no field 'Total' to check the order against, "
        f"{HELD} (renamed? rows 1, 2, 3)"
    )


def test_decimal_commas_are_read_as_the_prices_are() -> None:
    spec = _declare(price="{from: price, type: float, decimal: ','}")["shop"]
    data = 'Name,Created at,sku,qty,price,Total\nA1,2026-03-04T10:00:00Z,X1,2,"1.250,50",'
    data += '"2.501,00"\n'
    parsed = _parse(spec, data.encode())
    assert parsed.orders_not_adding_up == 0
    short = data.replace('"2.501,00"', '"2.501,10"')
    assert _parse(spec, short.encode()).orders_not_adding_up == 1


def test_a_return_document_adds_up_as_written_and_is_returned_whole(
    sources: SourcesConfig,
) -> None:
    """A document whose own status marks it a return (`returns.status`), its shipping
    refunded and its discount given back: its lines add up to its Total as written; cleaning
    books them all as returns, the shipping and discount lines with the goods (they take the
    order's status), so the return is the Total: -(30.00 + 4.90 - 6.00)."""
    spec = dataclasses.replace(sources["shop_b"], returns=ReturnsSpec(status_values=("returned",)))
    refunds = _with(sources, spec)
    data = HEADER + (
        "#R2003,eve@example.com,returned,EUR,2026-03-04 10:00:00 +0100,28.90,,6.00,4.90,2,Mug,"
        "15.00,MUG-01\n"
    )
    result = _clean(refunds, "shop_b", data.encode())
    assert result.quarantine.is_empty()
    lines = result.tables["order_lines"].sort("sku")
    assert lines.select("sku", "is_return", "quantity", "line_amount").rows() == [
        ("DISCOUNT", True, -1, 6.0),
        ("MUG-01", True, -2, -30.0),
        ("SHIPPING", True, -1, -4.9),
    ]
    assert result.tables["orders"]["is_return"].to_list() == [True]
    assert _published(result) == {"shop_b:#R2003": -28.9}


def test_refunds_are_returns_of_money_outside_the_total(sources: SourcesConfig) -> None:
    """Shopify writes what it later gave back as `Refunded Amount` (the Total stays what was
    charged): read as a refund (`refund: true`), each refunded order gets a return line of
    that money; the order stays a sale at its Total less the refund, and the total check
    leaves the refund out. Without it, a refunded order counted at its whole Total."""
    header = HEADER.replace("Shipping,", "Shipping,Refunded Amount,")
    data = header + (
        f"{EVE}49.90,,0.00,4.90,0.00,1,Mug,15.00,MUG-01\n"
        ",,,,,,,,,,1,Plate,30.00,PLT-02\n"
        "#2002,eve@example.com,partially_refunded,EUR,2026-03-04 11:00:00 +0100,49.90,,0.00,"
        "4.90,15.00,1,Mug,15.00,MUG-01\n"
        ",,,,,,,,,,1,Plate,30.00,PLT-02\n"
        "#2003,eve@example.com,refunded,EUR,2026-03-04 12:00:00 +0100,29.90,,0.00,4.90,29.90,"
        "1,Vase,25.00,VAS-03\n"
    )
    refund = {"field": "Refunded Amount", "code": "REFUND", "kind": "refund"}
    result = _clean(_with_amount(sources, **refund, refund=True), "shop_b", data.encode())
    assert result.quarantine.is_empty()
    assert _published(result) == {"shop_b:#2001": 49.9, "shop_b:#2002": 34.9, "shop_b:#2003": 0.0}
    orders = result.tables["orders"].sort("order_id")
    assert orders["is_return"].to_list() == [False, False, False]
    assert [round(a, 2) for a in orders["returns_amount"]] == [0.0, 15.0, 29.9]
    refunds = result.tables["order_lines"].filter(pl.col("sku") == "REFUND").sort("order_id")
    refunds = refunds.select("order_id", "line_kind", "is_return", "quantity", "line_amount")
    assert refunds.rows() == [
        ("shop_b:#2002", "refund", True, -1, -15.0),
        ("shop_b:#2003", "refund", True, -1, -29.9),
    ]
    # declared without `refund`, the amount would be taken for money charged: held
    charged = _with_amount(sources, **refund)
    assert sorted(_published(_clean(charged, "shop_b", data.encode()))) == ["shop_b:#2001"]


# --------------------------------------------------------------------------- declaration

SOURCE = """
version: 1
sources:
  shop:
    contract: %(contract)s
    channel: shop
    format: %(format)s
    landing: shop/{date}.csv
    order_total: %(total)s
    %(extra)s
    columns:
      order_id:   %(order_id)s
      line_number: {sequence: order_id, type: int}
      ordered_at: {from: Created at, type: timestamp, timestamp_format: iso8601}
      currency:   {constant: EUR, type: string}
      sku:        {from: sku, type: string}
      quantity:   {from: qty, type: int}
      unit_price: %(price)s
"""
GOOD = {
    "contract": "order_lines",
    "format": "csv",
    "total": "Total",
    "extra": "",
    "order_id": "{from: Name, type: string}",
    "price": "{from: price, type: float}",
}


def _declare(**changes: str) -> SourcesConfig:
    packaged = (str(DEFAULT_SOURCES_PATH), DEFAULT_SOURCES_PATH.read_text())
    return parse_documents([packaged, ("shop.yaml", SOURCE % {**GOOD, **changes})])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"total": "''"}, "the export's field stating each order's total"),
        ({"total": "[Total]"}, "the export's field stating each order's total"),
        ({"total": "qty"}, "'qty' is mapped to a column"),
        ({"order_id": "{constant: A1, type: string}"}, "must be read from the file"),
    ],
)
def test_a_declaration_that_cannot_work_is_refused_naming_why(
    changes: dict[str, str], message: str
) -> None:
    with pytest.raises(SourceSpecError, match="order_total") as error:
        _declare(**changes)
    assert message in str(error.value)


def test_only_the_sources_declaring_it_are_read_anew(sources: SourcesConfig) -> None:
    """The option at its default is not part of any declaration: no other source's raw days
    re-version; the sources declaring it re-parse once (their reading's version)."""
    before = declared_sources(FIXTURE / "amounts.yaml")
    assert raw_code_version(sources["shop_a"]) == (
        f"{raw_code_version(before['shop_a'])}+{ORDER_TOTAL_READING}"
    )
    assert spec_fingerprint(sources["shop_a"]) != spec_fingerprint(before["shop_a"])
    packaged = declared_sources(DEFAULT_SOURCES_PATH).sources.values()
    assert not any("order_total" in str(declaration(s)) for s in packaged)
    assert not any(ORDER_TOTAL_READING in raw_code_version(s) for s in packaged)


def test_the_raw_step_counts_the_held_orders_apart_from_unreadable_records(
    sources: SourcesConfig, tmp_path: Path
) -> None:
    plain = _without_amounts(sources, "shop_b")["shop_b"]
    path = tmp_path / "shop_b" / f"{DAY}.csv"
    path.parent.mkdir()
    path.write_bytes(_export("shop_b"))
    frame, meta, _ = _ingest_one(plain, str(DAY), LandingResource(root=str(tmp_path)))
    assert frame.height == 10
    assert (meta["orders_not_adding_up"], meta["unreadable_records"]) == (3, 0)
    assert "orders_not_adding_up" not in _ingest_one(
        dataclasses.replace(plain, order_total=None), str(DAY), LandingResource(root=str(tmp_path))
    )[1]


# --------------------------------------------------------------------------- end to end


def test_a_run_publishes_what_adds_up_and_quarantines_the_rest(
    declared: Path, tmp_path: Path
) -> None:
    """shop_a's export as it is; shop_b's with a US order whose tax is not read: the run is
    green, the marts hold shop_a's orders and shop_b's other orders at the Totals the files
    state, and the quarantine names the order that does not add up."""
    for shop in SHOPS:
        (tmp_path / "landing" / shop).mkdir(parents=True)
    (tmp_path / "landing" / "shop_a" / f"{DAY}.csv").write_bytes(_export("shop_a"))
    taxed = (
        "#1006,sam@example.com,paid,EUR,2026-03-04 09:00:00 +0100,64.39,,0.00,5.00,2,Mug,"
        "12.50,MUG-01\n,,,,,,,,,1,Plate,30.00,PLT-02\n"
    )
    (tmp_path / "landing" / "shop_b" / f"{DAY}.csv").write_bytes(
        _export("shop_b") + taxed.encode()
    )
    run_to_marts(tmp_path, declared, str(DAY), str(DAY))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        served = dict(con.sql("select order_id, order_total from marts.fct_orders").fetchall())
        held = con.sql(
            "select source_row, reasons from cleaned.quarantine order by 1"
        ).pl()
    rates = declared_sources(declared).currency_rates_to_eur
    expected = {
        f"{shop}:{name}": total
        for shop in SHOPS
        for name, total in _stated(_export(shop), rates).items()
    }
    assert {o: round(t, 2) for o, t in served.items()} == expected
    # its two records and the shipping line made from row 11
    assert held.get_column("source_row").to_list() == [11, 11, 12]
    assert set(held.get_column("reasons")) == {
        f"{SHORT} (Total 64.39, lines 60.00, rows 11, 12)"
    }


def test_a_line_quarantined_in_cleaning_holds_its_order(sources: SourcesConfig) -> None:
    """The order adds up as written, but cleaning refuses one of its lines (a time that
    cannot be read): published without it, #1001 would be short of its Total; the rest of
    the file is published. A free gift refused for its 0.00 price takes no money away and
    holds nothing back."""
    rows = _export("shop_b").decode().splitlines(keepends=True)
    assert rows[2].startswith("#1001,alice@example.com,,,2026-03-02 10:15:37 +0100,")
    rows[2] = rows[2].replace("2026-03-02 10:15:37 +0100", "yesterday")
    assert rows[4].startswith("#1002,")
    rows.insert(5, "#1002,carol@example.com,,,2026-03-02 18:40:00 +0100,,,,,1,Gift,0.00,GFT-00\n")
    data = "".join(rows)
    assert _parse(sources["shop_b"], data.encode()).orders_not_adding_up == 0
    result = _clean(sources, "shop_b", data.encode())
    reasons = _reasons(result)
    assert reasons[2] == "ordered_at: not a timestamp in ISO 8601 ('yesterday')"
    assert reasons[1] == reasons[3] == (
        "order_total: a line of the order is quarantined, so the rest would not add up to its "
        "Total; none of its lines is kept (quarantined: row 2)"
    )
    assert reasons[5] == (
        "unit_price: must be > 0, or declare free_lines: true for lines given away (0.0)"
    )
    assert sorted(reasons) == [1, 2, 3, 5]
    published = _published(result)
    assert "shop_b:#1001" not in published and published["shop_b:#1002"] == 29.9
    counts = result.accounting.row(0, named=True)
    assert counts["rows_in"] == counts["rows_cleaned"] + counts["rows_quarantined"]
    # the amounts' lines of #1001 (row 1's) are held with it
    assert result.quarantine.height == 6
