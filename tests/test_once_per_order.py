"""Orders written once, lines on every row: a source's `once_per_order`.

Shopify's order export (tests/fixtures/shopify) has one row per line item and writes the
order's own columns on its first row only: in shop_a every order column is blank on the
order's other rows (the order number too), in shop_b (Shopify as it exports) Name, Email
and Created at repeat but Currency, Financial Status and Discount Code do not. Without the
key the other rows were quarantined (`order_id: missing; ...`, `currency: missing`) and
each order was published with its first line only, silently while fewer than half the rows
were such rows. With it every line reaches its order; the rows of an order are found by
their place in the file, so the export's row order is kept, not assumed away.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import random
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from aiwf_assets.cleaning import CleanResult, clean_orders_day
from aiwf_assets.cleaning.transforms import IDENTITY_SCHEMA
from aiwf_assets.ingest.parse import parse_landing, raw_schema
from aiwf_assets.ingest.spec import SourcesConfig, SourceSpec, declared_sources
from tests.test_third_party_export import run_to_marts

FIXTURE = Path(__file__).parent / "fixtures" / "shopify"
KEY = b"test-pii-key"
DAY = dt.date(2026, 3, 4)  # the export covers 2 to 4 March, named by its last day
SHOPS = ("shop_a", "shop_b")


def _sources(*, without_key: bool = False) -> SourcesConfig:
    """The packaged sources overlaid by the fixture's declaration, or with `once_per_order`
    taken out of both shops (`without_key`: what such a shop got before)."""
    sources = declared_sources(FIXTURE / "sources.yaml")
    if not without_key:
        return sources
    shops = {n: dataclasses.replace(sources[n], once_per_order=()) for n in SHOPS}
    return dataclasses.replace(sources, sources={**sources.sources, **shops})


def _export(shop: str) -> bytes:
    return (FIXTURE / shop / f"{DAY}.csv").read_bytes()


def _parse(spec: SourceSpec, data: bytes) -> pl.DataFrame:
    return parse_landing(data, spec, f"{spec.name}/{DAY}.{spec.format}").frame


def _clean(sources: SourcesConfig, shop: str, data: bytes) -> CleanResult:
    frame = _parse(sources[shop], data)
    return clean_orders_day({shop: frame}, IDENTITY_SCHEMA.to_frame(), KEY, DAY, sources)


def _reasons(result: CleanResult) -> list[str]:
    return result.quarantine.sort("source_row").get_column("reasons").to_list()


def _accounting(result: CleanResult) -> dict:
    return result.accounting.row(0, named=True)


def _shop_orders(data: bytes) -> dict[str, dict]:
    """The orders as the shop means them, read with csv alone: a row continues the order
    above unless it names another one; per order its lines and currency, its e-mail if
    any of its rows has one, and the sum of quantity x price of its lines."""
    orders: dict[str, dict] = {}
    name = None
    for row in csv.DictReader(io.StringIO(data.decode())):
        name = row["Name"] or name
        order = orders.setdefault(
            name, {"lines": 0, "total": Decimal(0), "currency": "", "email": ""}
        )
        order["lines"] += 1
        order["total"] += int(row["Lineitem quantity"]) * Decimal(row["Lineitem price"])
        order["currency"] = order["currency"] or row["Currency"]
        order["email"] = order["email"] or row["Email"]
    return orders


@pytest.mark.parametrize("shop", SHOPS)
def test_every_line_reaches_its_order(shop: str) -> None:
    sources = _sources()
    data = _export(shop)
    result = _clean(sources, shop, data)
    assert _reasons(result) == []
    rows = len(data.decode().splitlines()) - 1
    counts = _accounting(result)
    assert counts["rows_in"] == counts["rows_cleaned"] == rows
    assert counts["rows_in"] == (
        counts["rows_cleaned"] + counts["rows_quarantined"] + counts["duplicates_removed"]
    )

    expected = _shop_orders(data)
    # two orders of several lines, a single line, a guest's, and #1005: two engraved mugs of
    # one SKU and price, told apart by their (unmapped) `Lineitem name` only
    assert len(expected) == 5
    rates = sources.currency_rates_to_eur
    lines = result.tables["order_lines"]
    orders = result.tables["orders"]
    assert sorted(orders["order_id"]) == sorted(f"{shop}:{name}" for name in expected)
    for name, order in expected.items():
        mine = lines.filter(pl.col("order_id") == f"{shop}:{name}")
        assert mine.height == order["lines"], name
        assert sorted(mine["line_number"]) == list(range(1, order["lines"] + 1)), name
        assert mine["currency"].unique().to_list() == [order["currency"]], name
        total = Decimal(str(round(mine["line_amount_source"].sum(), 2)))
        assert total == order["total"], name
        published = orders.filter(pl.col("order_id") == f"{shop}:{name}").row(0, named=True)
        assert published["n_lines"] == order["lines"], name
        assert published["order_total"] == pytest.approx(
            float(order["total"]) * rates[order["currency"]]
        ), name
        # a guest stays a guest: no e-mail from the order above or below
        assert (published["customer_key"] is None) == (order["email"] == ""), name
    assert {o["currency"] for o in expected.values()} == {"EUR", "CHF"}
    # the discount code is the order's: every line of #1001 carries it
    promo = lines.filter(pl.col("order_id") == f"{shop}:#1001")["is_promo"]
    assert promo.to_list() == [True] * promo.len()


@pytest.mark.parametrize(
    ("shop", "reason"),
    [
        ("shop_a", "order_id: missing; ordered_at: missing; currency: missing"),
        ("shop_b", "currency: missing"),
    ],
)
def test_without_the_key_an_order_lost_its_other_lines(shop: str, reason: str) -> None:
    data = _export(shop)
    result = _clean(_sources(without_key=True), shop, data)
    expected = _shop_orders(data)
    others = sum(o["lines"] - 1 for o in expected.values())
    assert _reasons(result) == [reason] * others
    counts = _accounting(result)
    assert (counts["rows_cleaned"], counts["rows_quarantined"]) == (len(expected), others)
    assert result.tables["orders"]["n_lines"].to_list() == [1] * len(expected)


def test_the_raw_rows_differ_only_in_the_declared_columns() -> None:
    """Lineage, line columns and the values already written are as without the key; a
    column blank for a whole order keeps its text (the guest's '')."""
    spec = _sources()["shop_a"]
    data = _export("shop_a")
    filled = _parse(spec, data)
    plain = _parse(dataclasses.replace(spec, once_per_order=()), data)
    same = [c for c in filled.columns if c not in (*spec.once_per_order, "line_number")]
    assert filled.select(same).equals(plain.select(same), null_equal=True)
    assert filled.filter(pl.col("order_id") == "#1003")["customer_email"].to_list() == ["", ""]
    assert filled["order_id"].to_list() == [
        "#1001", "#1001", "#1001", "#1002", "#1003", "#1003", "#1004", "#1004", "#1005", "#1005",
    ]  # fmt: skip


def test_a_row_with_no_order_above_it_is_quarantined() -> None:
    """A file starting with a continuation row, and the rows after an unreadable one: the
    order they belong to cannot be told, so they keep their blanks and are quarantined.
    The order after them is whole again."""
    sources = _sources()
    header, *rows = _export("shop_a").decode().splitlines()
    lost = ",,,,,,,,,1,Butter Dish,18.00,BTR-05"
    unreadable = '#1000,dora@example.com,paid,EUR,"2026-03-01 09:00:00 +0100,18.00'
    data = "\n".join([header, lost, *rows[:3], unreadable, lost, *rows[3:]]) + "\n"
    result = _clean(sources, "shop_a", data.encode())
    missing = "order_id: missing; ordered_at: missing; currency: missing"
    assert _reasons(result) == [
        missing,
        "record: unbalanced quote in field 5 (Created at): it is not closed on this line, so "
        "the line is quarantined and the lines after it are read on their own",
        missing,
    ]
    counts = _accounting(result)
    assert (counts["rows_in"], counts["rows_cleaned"], counts["rows_quarantined"]) == (13, 10, 3)
    n_lines = dict(result.tables["orders"].select("order_id", "n_lines").iter_rows())
    assert n_lines == {
        "shop_a:#1001": 3, "shop_a:#1002": 1, "shop_a:#1003": 2, "shop_a:#1004": 2,
        "shop_a:#1005": 2,
    }  # fmt: skip


def test_rows_belong_to_the_order_above_them_in_the_file() -> None:
    """The export's row order is the only link between the rows of an order in shop_a's
    shape: a line moved below another order is that order's (docs/SOURCES.md says so).
    In shop_b's shape, where the number is on every row, an order's rows are the
    consecutive rows with its number: a row of #1001 moved below #1002 is a second run of
    #1001 whose currency is not taken from the first run."""
    sources = _sources()
    header, *rows = _export("shop_a").decode().splitlines()
    moved = [rows[0], rows[1], rows[3], rows[2], *rows[4:]]  # the tea towel under #1002
    frame = _parse(sources["shop_a"], "\n".join([header, *moved]).encode())
    towel = frame.filter(pl.col("sku") == "TWL-07").row(0, named=True)
    assert (towel["order_id"], towel["customer_email"]) == ("#1002", "carol@example.com")

    header, *rows = _export("shop_b").decode().splitlines()
    moved = [rows[0], rows[1], rows[3], rows[2], *rows[4:]]
    result = _clean(sources, "shop_b", "\n".join([header, *moved]).encode())
    assert _reasons(result) == ["currency: missing"]


def test_json_lines_are_filled_the_same_way() -> None:
    """A JSON Lines export of the same shape: the order fields null or absent on an
    order's other lines."""
    shop = dataclasses.replace(_sources()["shop_a"], format="jsonl")
    sources = dataclasses.replace(_sources(), sources={**_sources().sources, "shop_a": shop})
    records = []
    for record in csv.DictReader(io.StringIO(_export("shop_a").decode())):
        if not record["Name"]:
            record = {k: v for k, v in record.items() if k.startswith("Lineitem")}
            record["Name"] = None
        records.append(json.dumps(record))
    result = _clean(sources, "shop_a", ("\n".join(records) + "\n").encode())
    assert _reasons(result) == []
    # #1005's engraved mugs differ only in the unmapped `Lineitem name`: two lines in JSON too
    assert result.tables["orders"].sort("order_id")["n_lines"].to_list() == [3, 1, 2, 2, 2]


# --------------------------------------------------------------------------- line identity
# `line_number: {sequence: order_id}` numbers an order's lines by their content. A line is
# all of its own fields, those the source does not map (`Lineitem name`) too: two engraved
# mugs of one SKU, quantity and price read as one line delivered twice when only the
# mapped columns counted, and one was lost with every check green.

HEADER = _export("shop_b").decode().splitlines()[0]
# an export writing the order's fields on every row (no once_per_order): the mugs of
# #2001 differ in their name only
EVERY_ROW = "#{n},erin@example.com,paid,EUR,2026-03-04 11:00:00 +0100,30.00,,0.00,5.00,"
ANNA = "1,Mug - Engraved: Anna,12.50,MUG-01"
BEN = "1,Mug - Engraved: Ben,12.50,MUG-01"
PLATE = "1,Dinner Plate,20.00,PLT-02"


def _plain() -> SourceSpec:
    return dataclasses.replace(_sources()["shop_b"], once_per_order=())


def _numbers(spec: SourceSpec, rows: list[str]) -> dict[str, list[str]]:
    """Per row text, the line numbers its rows got (sorted)."""
    frame = _parse(spec, "\n".join([HEADER, *rows]).encode())
    assert frame.schema == raw_schema(spec)  # the unmapped fields are not written to raw
    found: dict[str, list[str]] = {}
    for row, number in frame.select("_source_row", "line_number").rows():
        found.setdefault(rows[row - 1], []).append(number)
    return {text: sorted(numbers) for text, numbers in found.items()}


def test_lines_alike_but_for_an_unmapped_field_are_two_lines() -> None:
    spec = _plain()
    anna, ben = EVERY_ROW.format(n=2001) + ANNA, EVERY_ROW.format(n=2001) + BEN
    assert _numbers(spec, [anna, ben]) == {anna: ["1"], ben: ["2"]}
    sources = dataclasses.replace(_sources(), sources={**_sources().sources, "shop_b": spec})
    result = _clean(sources, "shop_b", "\n".join([HEADER, anna, ben]).encode())
    assert _reasons(result) == []
    assert sorted(result.tables["order_lines"]["line_number"]) == [1, 2]
    assert result.tables["orders"]["n_lines"].to_list() == [2]
    # what still cannot be told apart: rows alike in every field are one line sent twice
    assert _numbers(spec, [anna, anna]) == {anna: ["1", "1"]}


@pytest.mark.parametrize("shop", SHOPS)
def test_an_order_delivered_twice_in_one_file_is_kept_once(shop: str) -> None:
    """The copies of a whole order are alike in every field, the order-level fields Shopify
    writes on its first row only (Total, Shipping) included: the copy repeats the
    numbers and cleaning removes it. #1005's engraved mugs stay two lines."""
    sources = _sources()
    data = _export(shop)
    header, *rows = data.decode().splitlines()
    again = [*rows, *rows[:3], *rows[-2:]]  # #1001 and #1005 once more, at the end
    twice = _clean(sources, shop, "\n".join([header, *again]).encode())
    once = _clean(sources, shop, data)
    assert _reasons(twice) == []
    assert _accounting(twice)["duplicates_removed"] == 5
    for table in ("order_lines", "orders"):
        assert twice.tables[table].equals(once.tables[table], null_equal=True), table
    mugs = twice.tables["order_lines"].filter(pl.col("order_id") == f"{shop}:#1005")
    assert sorted(mugs["line_number"]) == [1, 2]


def test_any_order_of_the_rows_numbers_alike() -> None:
    spec = _plain()
    rows = [
        EVERY_ROW.format(n=2001) + BEN,
        EVERY_ROW.format(n=2002) + PLATE,
        EVERY_ROW.format(n=2001) + PLATE,
        EVERY_ROW.format(n=2001) + ANNA,
        EVERY_ROW.format(n=2002) + ANNA,
        EVERY_ROW.format(n=2002) + ANNA,  # scanned twice, the plate once: two mugs
    ]
    expected = {
        rows[3]: ["1"], rows[0]: ["2"], rows[2]: ["3"],  # Anna, Ben, then the plate
        rows[4]: ["1", "2"], rows[1]: ["3"],
    }  # fmt: skip
    assert _numbers(spec, rows) == expected
    for seed in range(8):
        shuffled = random.Random(seed).sample(rows, len(rows))
        assert _numbers(spec, shuffled) == expected, seed


def test_a_json_export_tells_lines_apart_by_its_unmapped_fields() -> None:
    """In JSON Lines an unmapped field is any key no column maps, read as its text (an
    object as its JSON); inside an object the source maps part of, its other keys."""
    spec = dataclasses.replace(
        _plain(),
        format="jsonl",
        columns=tuple(
            dataclasses.replace(c, source=("item.sku",)) if c.name == "sku" else c
            for c in _plain().columns
        ),
    )
    header = HEADER.split(",")

    def record(row: str, **item: object) -> str:
        fields = dict(zip(header, next(csv.reader([row])), strict=True))
        return json.dumps({**fields, "item": {"sku": fields.pop("Lineitem sku"), **item}})

    anna, ben = EVERY_ROW.format(n=2001) + ANNA, EVERY_ROW.format(n=2001) + BEN
    lines = [
        record(anna),
        record(ben),
        record(EVERY_ROW.format(n=2002) + PLATE, engraving={"text": "Ben"}),
        record(EVERY_ROW.format(n=2002) + PLATE, engraving={"text": "Anna"}),
        record(EVERY_ROW.format(n=2003) + PLATE, engraving=" Anna "),
        record(EVERY_ROW.format(n=2003) + PLATE, engraving="Anna"),
    ]
    frame = _parse(spec, ("\n".join(lines) + "\n").encode())
    assert frame.schema == raw_schema(spec)
    assert frame.select("order_id", "line_number").rows() == [
        ("#2001", "1"), ("#2001", "2"),
        ("#2002", "2"), ("#2002", "1"),  # the engravings' JSON: "Anna" before "Ben"
        ("#2003", "1"), ("#2003", "1"),  # alike but for white space: one line sent twice
    ]  # fmt: skip


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both shapes landed and built from raw to the marts in a fresh process, the sources
    from the fixture's AIWF_SOURCES file."""
    home = tmp_path_factory.mktemp("shopify_home")
    for shop in SHOPS:
        landing = home / "landing" / shop
        landing.mkdir(parents=True)
        (landing / f"{DAY}.csv").write_bytes(_export(shop))
    run_to_marts(home, FIXTURE / "sources.yaml", str(DAY), str(DAY))
    return home


def test_the_marts_hold_every_order_whole(built: Path) -> None:
    rates = _sources().currency_rates_to_eur
    with duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select count(*) from cleaned.quarantine").fetchall() == [(0,)]
        served = con.sql(
            "select channel, order_id, n_lines, order_total from marts.fct_orders"
        ).pl()
    for shop in SHOPS:
        expected = {
            f"{shop}:{name}": (o["lines"], round(float(o["total"]) * rates[o["currency"]], 2))
            for name, o in _shop_orders(_export(shop)).items()
        }
        mine = served.filter(pl.col("channel") == shop)
        assert {
            order_id: (n, round(total, 2))
            for order_id, n, total in mine.select("order_id", "n_lines", "order_total").rows()
        } == expected
