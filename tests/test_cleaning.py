"""Raw -> cleaned: quarantine reasons, duplicates, accounting, identity, PII, versions, contracts.

Landing files are small literals in the DATA_CONTRACTS formats, parsed with
parse_landing (the generator is not involved).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
import unicodedata

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aiwf_assets.cleaning import (
    AccountingError,
    CleanResult,
    clean_interactions_day,
    clean_orders_day,
    clean_reference_customers,
    clean_reference_products,
    clean_reference_stores,
    content_version,
)
from aiwf_assets.cleaning.contracts import validate_table
from aiwf_assets.cleaning.pii import hmac_hex, hmac_series
from aiwf_assets.cleaning.transforms import ACCOUNTING_SCHEMA, QUARANTINE_SCHEMA
from aiwf_assets.ingest.parse import parse_landing
from aiwf_assets.ingest.spec import SourcesConfig, SourceSpec, load_sources, parse_sources

KEY = b"test-pii-key"
DAY = dt.date(2026, 1, 5)
SOURCES = load_sources()

CUSTOMERS_CSV = """crm_id,first_name,last_name,email,phone,loyalty_id,signup_date,country,birth_year
C1,Jane,Doe,Jane.Doe@example.com,+49 170 1234567,L0012345,2024-01-01,de,1980
C2,John,Roe,john.roe@example.com,0151 2223334,,2024-02-01,DE,1975
C1,Jane,Doe,Jane.Doe@example.com,+49 170 1234567,L0012345,2024-01-01,de,1980
C4,Max,Mustermann,max@example.com,,,2024-02-30,DE,1990
"""
# every clear identifier above, in the forms the channels deliver them
CLEAR_PII = [
    "jane.doe@example.com",
    "john.roe@example.com",
    "max@example.com",
    "stranger@example.org",
    "1701234567",
    "491701234567",
    "1512223334",
    "L0012345",
    "l0012345",
    "Jane",
    "Doe",
    "John",
    "Roe",
    "Mustermann",
]


def jsonl(*records: dict | str) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def web(order_id: str | None = "W1", **fields) -> dict:
    return {
        "order_id": order_id,
        "created_at": "2026-01-05T14:03:22Z",
        "email": " Jane.Doe@EXAMPLE.com",
        "currency": "GBP",
        "promo_code": None,
        "shipping": 4.99,
        "items": [
            {"sku": "SKU-00012", "qty": 2, "unit_price": 10.0},
            {"sku": "SKU-00013", "qty": 1, "unit_price": 5.0},
        ],
    } | fields


def app(line: int = 1, **fields) -> dict:
    return {
        "orderRef": "A1",
        "lineNo": line,
        "ts": 1767625402,
        "loyaltyId": "l0012345 ",
        "productCode": "sku-12",
        "quantity": 1,
        "price": 19.99,
        "currencyCode": "EUR",
        "promo": True,
    } | fields


POS_HEADER = "txn_id,store_code,local_time,loyalty_card,sku,qty,unit_price,payment\n"
POS_ROWS = [
    "T1,s01,05/01/2026 10:00:00,L0012345,SKU-00012,1,19.99,card",
    "T1,s01,05/01/2026 10:00:00,L0012345,SKU-00013,2,5.00,card",
    "T2,s02,05/01/2026 11:30:00,,SKU-00012,1,19.99,cash",
]
TICKETS_HEADER = (
    "ticket_id,opened_at,customer_email,customer_phone,category,contact_channel,status,"
    "satisfaction\n"
)
TICKET_ROWS = [
    "K1,2026-01-05 09:00:00,,0170 1234567,delivery,phone,closed,4",
    "K2,2026-01-05 10:00:00,stranger@example.org,,billing,email,open,",
]


def csv_bytes(header: str, rows: list[str]) -> bytes:
    return (header + "".join(r + "\n" for r in rows)).encode()


def sessions_parquet(rows: list[dict]) -> bytes:
    schema = pa.schema(
        [
            ("session_id", pa.string()),
            ("started_at", pa.timestamp("us", "UTC")),
            ("email", pa.string()),
            ("device", pa.string()),
        ]
        + [
            (c, pa.int32())
            for c in ("pages_viewed", "product_views", "added_to_cart", "duration_s")
        ]
    )
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer)
    return buffer.getvalue()


def session(session_id: str = "S1", **fields) -> dict:
    return {
        "session_id": session_id,
        "started_at": dt.datetime(2026, 1, 5, 8, tzinfo=dt.UTC),
        "email": "JANE.DOE@example.com ",
        "device": "mobile",
        "pages_viewed": 3,
        "product_views": 2,
        "added_to_cart": 1,
        "duration_s": 120,
    } | fields


def raw(name: str, data: bytes, sources: SourcesConfig = SOURCES) -> pl.DataFrame:
    return parse_landing(data, sources[name], f"{name}/{DAY}.x").frame


@pytest.fixture(scope="module")
def customers() -> CleanResult:
    return clean_reference_customers(raw("customers", CUSTOMERS_CSV.encode()), KEY)


@pytest.fixture(scope="module")
def identity(customers: CleanResult) -> pl.DataFrame:
    return customers.tables["customer_identity"]


def orders_day(identity: pl.DataFrame, **landing: bytes) -> CleanResult:
    defaults = {
        "web_orders": jsonl(web()),
        "app_orders": jsonl(app()),
        "pos_transactions": csv_bytes(POS_HEADER, POS_ROWS),
    }
    frames = {name: raw(name, data) for name, data in (defaults | landing).items()}
    return clean_orders_day(frames, identity, KEY, DAY, SOURCES)


def interactions_day(identity: pl.DataFrame, **landing: bytes) -> CleanResult:
    defaults = {
        "crm_tickets": csv_bytes(TICKETS_HEADER, TICKET_ROWS),
        "web_sessions": sessions_parquet([session(), session("S2", email=None)]),
    }
    frames = {name: raw(name, data) for name, data in (defaults | landing).items()}
    return clean_interactions_day(frames, identity, KEY, DAY, SOURCES)


def accounting(result: CleanResult, channel: str) -> dict:
    return result.accounting.filter(pl.col("channel") == channel).row(0, named=True)


def reasons(result: CleanResult, channel: str) -> list[str]:
    return result.quarantine.filter(pl.col("channel") == channel).get_column("reasons").to_list()


def crm_key(crm_id: str) -> str:
    return hmac_hex(KEY, f"crm:{crm_id}")[:16]


# --------------------------------------------------------------------------- reference


@pytest.mark.parametrize("key", [KEY, b"", bytes(range(64)), b"k" * 65 + "ü".encode()])
def test_vectorised_hmac_equals_the_hmac_module(key: bytes) -> None:
    # keys shorter than, equal to and longer than SHA-256's 64-byte block (RFC 2104)
    values = pl.Series(
        "email", ["jane@example.com", None, "", "zoë@beispiel.de", "jane@example.com"]
    )
    hashed = hmac_series(values, "email:", key)
    assert hashed.name == "email" and hashed.dtype == pl.String
    assert hashed.to_list() == [
        None if v is None else hmac_hex(key, f"email:{v}") for v in values.to_list()
    ]
    assert hmac_series(values.clear(), "email:", key).to_list() == []


def test_customers_are_pseudonymised_and_deduplicated(customers: CleanResult) -> None:
    table = customers.tables["customers"]
    assert sorted(table.get_column("customer_key")) == sorted([crm_key("C1"), crm_key("C2")])
    jane = table.filter(pl.col("customer_key") == crm_key("C1")).row(0, named=True)
    assert jane["email_hash"] == hmac_hex(KEY, "email:jane.doe@example.com")
    assert jane["phone_hash"] == hmac_hex(KEY, "phone:491701234567")
    assert jane["loyalty_hash"] == hmac_hex(KEY, "loyalty:L0012345")
    assert jane["country"] == "DE" and jane["signup_date"] == dt.date(2024, 1, 1)
    assert accounting(customers, "customers") | {"partition_date": None} == {
        "channel": "customers",
        "partition_date": None,
        "rows_in": 4,
        "rows_cleaned": 2,
        "rows_quarantined": 1,
        "duplicates_removed": 1,
        "lines_in_file": 4,
        "lines_parsed": 4,
    }
    assert reasons(customers, "customers") == [
        "signup_date: not a date in format '%Y-%m-%d' ('2024-02-30')"
    ]
    identity = customers.tables["customer_identity"]
    assert identity.filter(pl.col("customer_key") == crm_key("C1")).height == 3
    assert set(identity.get_column("identifier_kind")) == {"email", "phone", "loyalty"}


def test_a_customer_listed_with_two_emails_is_one_customer() -> None:
    # A CRM export lists Jane twice (a second e-mail, then a new mobile with no loyalty
    # id), Max twice with two birth years (two records: which one is right is unknown)
    listed_twice = CUSTOMERS_CSV + (
        "C1,Jane,Doe,jane@work.example.com,+49 170 1234567,L0012345,2024-01-01,DE,1980\n"
        "C1,Jane,Doe,,0160 5556667,,2024-01-01,DE,1980\n"
        "C5,Max,Muster,max2@example.com,,,2024-03-01,DE,1990\n"
        "C5,Max,Muster,max2@example.com,,,2024-03-01,DE,1991\n"
    )
    result = clean_reference_customers(raw("customers", listed_twice.encode()), KEY)
    jane = crm_key("C1")
    table = result.tables["customers"]
    assert sorted(table.get_column("customer_key")) == sorted([jane, crm_key("C2")])
    assert table.filter(pl.col("customer_key") == jane).height == 1
    identity = result.tables["customer_identity"]
    janes = identity.filter(pl.col("customer_key") == jane)
    assert sorted(janes.get_column("identifier_hash")) == sorted(
        [
            hmac_hex(KEY, "email:jane.doe@example.com"),
            hmac_hex(KEY, "email:jane@work.example.com"),
            hmac_hex(KEY, "phone:491701234567"),
            hmac_hex(KEY, "phone:491605556667"),
            hmac_hex(KEY, "loyalty:L0012345"),
        ]
    )
    # customers shows one identifier of each kind, decided by the data, not the row order
    row = table.filter(pl.col("customer_key") == jane).row(0, named=True)
    assert row["email_hash"] == min(
        hmac_hex(KEY, "email:jane.doe@example.com"), hmac_hex(KEY, "email:jane@work.example.com")
    )
    reordered = "\n".join(
        [listed_twice.splitlines()[0], *reversed(listed_twice.splitlines()[1:])]
    )
    again = clean_reference_customers(raw("customers", reordered.encode()), KEY)
    assert again.tables["customers"].equals(table)
    assert again.tables["customer_identity"].equals(identity)
    # counts add up against the file: 8 rows = 4 cleaned (Jane x3, John) + 3 quarantined
    # (Max's bad date, C5 twice) + 1 exact duplicate
    assert accounting(result, "customers") | {"partition_date": None} == {
        "channel": "customers",
        "partition_date": None,
        "rows_in": 8,
        "rows_cleaned": 4,
        "rows_quarantined": 3,
        "duplicates_removed": 1,
        "lines_in_file": 8,
        "lines_parsed": 8,
    }
    assert reasons(result, "customers") == [
        "signup_date: not a date in format '%Y-%m-%d' ('2024-02-30')",
        *[CLASH.format("crm_id")] * 2,
    ]
    # an order under either e-mail or the new phone is Jane's
    lines = orders_day(
        identity,
        web_orders=jsonl(web("W1"), web("W2", email="JANE@work.example.com")),
    ).tables["order_lines"]
    keys = dict(lines.select("order_id", "customer_key").unique().iter_rows())
    assert keys["web:W1"] == keys["web:W2"] == jane
    tickets = interactions_day(
        identity,
        crm_tickets=csv_bytes(
            TICKETS_HEADER, [TICKET_ROWS[0].replace("0170 1234567", "0160 5556667")]
        ),
    ).tables["interactions"]
    by_id = dict(tickets.select("interaction_id", "customer_key").iter_rows())
    assert by_id["ticket:K1"] == jane


def test_an_identifier_written_another_way_is_the_same_customer() -> None:
    # The CRM has Zoë's address composed (NFC); a web export writes it decomposed (NFD, as
    # macOS does), tills print her card with a space or dashes (found by the 2026-12-07 probe:
    # each became an unknown customer of its own)
    crm = CUSTOMERS_CSV + "C9,Zoë,Müller,zoë.müller@example.com,,L0055555,2024-03-01,DE,1985\n"
    identity = clean_reference_customers(raw("customers", crm.encode()), KEY).tables[
        "customer_identity"
    ]
    decomposed = unicodedata.normalize("NFD", "Zoë.Müller@example.com")
    assert decomposed != unicodedata.normalize("NFC", decomposed)
    tills = [
        "T7,s01,05/01/2026 10:00:00,L005 5555,SKU-00012,1,19.99,card",
        "T8,s01,05/01/2026 10:05:00,l-0055-555,SKU-00012,1,19.99,card",
    ]
    lines = orders_day(
        identity,
        web_orders=jsonl(web("W7", email=decomposed)),
        pos_transactions=csv_bytes(POS_HEADER, [*POS_ROWS, *tills]),
    ).tables["order_lines"]
    keys = dict(lines.select("order_id", "customer_key").unique().iter_rows())
    assert keys["web:W7"] == keys["store:T7"] == keys["store:T8"] == crm_key("C9")


def test_products_and_stores() -> None:
    products = clean_reference_products(
        raw(
            "products",
            (
                b"sku,name,category,subcategory,list_price,launch_date\n"
                b"sku-12, Mug ,Home,Kitchen,9.90,2024-01-01\n"
                b"SKU-00012,Mug,home,kitchen,9.90,2024-01-01\n"  # the same after cleaning
                b"SKU-00013,Free thing,home,kitchen,0,2024-01-01\n"
                b"SKU-00014,Bowl,home,kitchen,4.50,2024-01-01\n"
                b"sku-14,Bowl XL,home,kitchen,6.50,2024-01-01\n"  # same SKU, other product
            ),
        )
    )
    assert products.tables["products"].rows() == [("SKU-00012", "Mug", "home", "kitchen", 9.9)]
    assert reasons(products, "products") == [
        "list_price: must be > 0 (0.0)",
        *["sku: 2 different records share this key (re-delivered with changes?); none is kept"]
        * 2,
    ]
    assert accounting(products, "products")["duplicates_removed"] == 1
    stores = clean_reference_stores(
        raw(
            "stores",
            (
                b"store_code,name,city,region,opened_date\ns01,Mitte,Berlin,BE,2020-05-01\n"
                b",Nowhere,Berlin,BE,2020-05-01\n"
            ),
        )
    )
    assert stores.tables["stores"].rows() == [("S01", "Mitte", "Berlin", "BE", dt.date(2020, 5, 1))]
    assert reasons(stores, "stores") == ["store_code: missing"]


# --------------------------------------------------------------------------- orders


def test_orders_day_standardises_every_channel(identity: pl.DataFrame) -> None:
    result = orders_day(identity)
    lines = result.tables["order_lines"]
    assert lines.select("order_id", "line_number", "channel", "sku", "unit_price").rows() == [
        ("app:A1", 1, "app", "SKU-00012", 19.99),
        ("store:T1", 1, "store", "SKU-00012", 19.99),
        ("store:T1", 2, "store", "SKU-00013", 5.0),
        ("store:T2", 1, "store", "SKU-00012", 19.99),
        ("web:W1", 1, "web", "SKU-00012", 11.7),  # GBP 10.00 * 1.17
        ("web:W1", 2, "web", "SKU-00013", 5.85),
    ]
    web_line = lines.filter(pl.col("order_id") == "web:W1").row(0, named=True)
    assert web_line["line_amount"] == 23.4
    assert web_line["ordered_at"] == dt.datetime(2026, 1, 5, 14, 3, 22, tzinfo=dt.UTC)
    assert lines.filter(pl.col("channel") == "app").get_column("is_promo").to_list() == [True]
    store = lines.filter(pl.col("order_id") == "store:T1").row(0, named=True)
    assert store["ordered_at"] == dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)  # Berlin 10:00
    orders = result.tables["orders"]
    assert orders.filter(pl.col("order_id") == "store:T1").select(
        "store_code", "n_lines", "order_total", "has_promo"
    ).row(0) == ("S01", 2, 29.99, False)
    assert result.quarantine.is_empty()
    assert validate_table("order_lines", lines) == []
    assert validate_table("orders", orders) == []


def test_identity_links_email_loyalty_and_phone_to_one_customer(identity: pl.DataFrame) -> None:
    lines = orders_day(identity).tables["order_lines"]
    keys = dict(lines.select("order_id", "customer_key").unique().iter_rows())
    jane = crm_key("C1")
    assert keys["web:W1"] == jane  # email, other case and whitespace
    assert keys["app:A1"] == jane  # loyalty id, lower case with a space
    assert keys["store:T1"] == jane  # loyalty card
    assert keys["store:T2"] is None  # cash sale without a card: anonymous
    interactions = interactions_day(identity).tables["interactions"]
    by_id = dict(interactions.select("interaction_id", "customer_key").iter_rows())
    assert by_id["ticket:K1"] == jane  # phone in national format
    assert by_id["session:S1"] == jane
    assert by_id["session:S2"] is None
    # an identifier the CRM does not know still gets a stable key of its own
    assert by_id["ticket:K2"] == hmac_hex(KEY, "email:stranger@example.org")[:16]


def test_an_email_written_with_a_name_or_mailto_is_the_same_customer(
    identity: pl.DataFrame,
) -> None:
    written = ["Jane Doe <jane.doe@example.com>", "mailto:Jane.Doe@example.com?subject=Hi",
               "jane.doe@example.com.", '"Doe, Jane" < JANE.DOE@example.com >']  # fmt: skip
    lines = orders_day(
        identity, web_orders=jsonl(*(web(f"W{i}", email=e) for i, e in enumerate(written)))
    ).tables["order_lines"].filter(pl.col("order_id").str.starts_with("web:"))
    assert lines.height == 2 * len(written)  # every order kept
    assert lines.get_column("customer_key").unique().to_list() == [crm_key("C1")]


def test_a_list_or_object_where_one_value_belongs_is_quarantined(
    identity: pl.DataFrame,
) -> None:
    # before, ["A", "B"] became a product and {"code": ...} an order with a promotion
    result = orders_day(
        identity,
        web_orders=jsonl(
            web("W1", items=[{"sku": ["SKU-00012", "SKU-00013"], "qty": 1, "unit_price": 5}]),
            web("W2", promo_code={"code": "SPRING"}),
            web("W3", promo_code="[SPRING] 10%"),  # a value that only starts with a bracket
            web("W4", promo_code=[]),  # how some shops write "none": no value
        ),
    )
    sku, promo, promo_again = reasons(result, "web_orders")  # W2: one row per item
    assert "sku: a list or object where one value is expected ('[\"SKU-00012\", " in sku
    assert promo == promo_again
    assert promo.startswith("promo_code: a list or object where one value is expected ('{")
    kept = result.tables["order_lines"].filter(pl.col("order_id").str.starts_with("web:"))
    assert sorted(set(kept.get_column("order_id"))) == ["web:W3", "web:W4"]
    orders = result.tables["orders"].filter(pl.col("order_id") == "web:W4")
    assert orders.get_column("has_promo").to_list() == [False]


def test_quarantine_names_the_column_and_problem(identity: pl.DataFrame) -> None:
    result = orders_day(
        identity,
        web_orders=jsonl(
            web("W1", items=[{"sku": "SKU-00012", "qty": "two", "unit_price": 1}]),
            web("W2", items=[{"sku": "SKU-00012", "qty": -3, "unit_price": 1}]),
            web("W3", created_at="2031-01-05T10:00:00Z"),
            web(None),
            web("W5", currency="JPY"),
            web("W6", items=[{"sku": "mug", "qty": 1, "unit_price": "1,5"}]),
            '{"order_id": "W7", "created_at": "2026-01-05T1',
        ),
        pos_transactions=csv_bytes(
            POS_HEADER, ["T9,S01,29/03/2026 02:30:00,,SKU-00012,1,1.00,card"]
        ),
    )
    found = reasons(result, "web_orders")
    assert found[0] == "quantity: not an integer ('two')"
    assert found[1] == "quantity: must be > 0 (-3)"
    assert found[2].startswith("ordered_at: in the future for a 2026-01-05 delivery (2031-01-05")
    assert found[4] == "order_id: missing"
    assert found[6] == "currency: not one of EUR, GBP, USD (JPY)"
    assert found[8] == (
        "sku: not one number to build 'SKU-%05d' ('mug'); unit_price: not a number ('1,5')"
    )
    assert found[9].startswith("record: malformed JSON at column")
    assert reasons(result, "pos_transactions") == [
        "ordered_at: does not exist in Europe/Berlin, skipped by the clock change "
        "('29/03/2026 02:30:00')"
    ]
    rows = result.quarantine.filter(pl.col("channel") == "web_orders")
    assert rows.get_column("source_row").to_list() == [1, 2, 3, 3, 4, 4, 5, 5, 6, 7]
    assert rows.get_column("source_file").unique().to_list() == [f"web_orders/{DAY}.x"]
    assert validate_table("quarantine", result.quarantine) == []


def test_null_written_as_text_is_no_identifier(identity: pl.DataFrame) -> None:
    # exports write NULL, N/A, None... into empty cells: read as a loyalty card or an
    # e-mail, every such sale became one made-up customer
    result = orders_day(
        identity,
        pos_transactions=csv_bytes(
            POS_HEADER,
            [
                "T7,s01,05/01/2026 10:00:00,NULL,SKU-00012,1,19.99,cash",
                "T8,s01,05/01/2026 10:05:00,N/A,SKU-00012,1,19.99,cash",
                "T9,s01,05/01/2026 10:10:00,#N/A,SKU-00013,1,5.00,cash",
            ],
        ),
        app_orders=jsonl(app(loyaltyId="None")),
    )
    lines = result.tables["order_lines"].filter(
        pl.col("order_id").is_in(["store:T7", "store:T8", "store:T9", "app:A1"])
    )
    assert lines.height == 4 and result.quarantine.height == 0
    assert lines.get_column("customer_key").null_count() == 4
    tickets = interactions_day(
        identity,
        crm_tickets=csv_bytes(
            TICKETS_HEADER, ["K3,2026-01-05 09:00:00,NULL,null,delivery,phone,closed,4"]
        ),
    ).tables["interactions"]
    assert tickets.filter(pl.col("interaction_id") == "ticket:K3")["customer_key"].to_list() == [
        None
    ]
    # a required value written as NULL is missing, not the id "NULL"
    missing = orders_day(
        identity,
        pos_transactions=csv_bytes(
            POS_HEADER, ["NULL,s01,05/01/2026 10:00:00,,SKU-00012,1,1.00,cash"]
        ),
    )
    assert reasons(missing, "pos_transactions") == ["order_id: missing"]


def test_a_product_code_is_rebuilt_only_from_its_one_number(identity: pl.DataFrame) -> None:
    # rebuilding from the first run of digits made SKU2-00012 product 2 and SKU-00012A
    # (a variant) product 12, silently: only a prefix and the number are a code
    codes = ["SKU-00012", "sku-12", "12", "Art. 12", "SKU-00012A", "12-B", "SKU2-00012",
             "1.2E1", "SKU-00012.5"]  # fmt: skip
    result = orders_day(
        identity,
        web_orders=jsonl(*[
            web(f"W{i}", items=[{"sku": code, "qty": 1, "unit_price": 9.99}])
            for i, code in enumerate(codes)
        ]),  # fmt: skip
    )
    kept = result.tables["order_lines"].filter(pl.col("channel") == "web").sort("order_id")
    assert kept.select("order_id", "sku").rows() == [
        (f"web:W{i}", "SKU-00012") for i in range(4)
    ]
    assert reasons(result, "web_orders") == [
        f"sku: not one number to build 'SKU-%05d' ('{code}')" for code in codes[4:]
    ]


def test_a_price_whose_amount_overflows_is_quarantined_not_published(
    identity: pl.DataFrame,
) -> None:
    # 1e308 is a float; times 10 it is infinite: the row would pass and then fail the
    # day's contract audit, holding back every source of the day for one row
    result = orders_day(
        identity,
        pos_transactions=csv_bytes(
            POS_HEADER, [*POS_ROWS, "T9,s01,05/01/2026 12:00:00,,SKU-00012,10,1e308,cash"]
        ),
    )
    assert reasons(result, "pos_transactions") == [
        "unit_price: times the quantity is not a finite amount (1e+308)"
    ]
    lines = result.tables["order_lines"]
    assert lines.filter(pl.col("order_id") == "store:T9").is_empty()
    assert lines.get_column("line_amount").is_finite().all()


CLASH = "{}: 2 different records share this key (re-delivered with changes?); none is kept"


def test_exact_duplicates_are_removed_and_key_clashes_quarantined(
    identity: pl.DataFrame,
) -> None:
    result = orders_day(
        identity,
        web_orders=jsonl(
            web("W1"),
            web("W1"),  # the same line delivered twice: 2 exact duplicate lines
            web("W1", email="jane.doe@example.com  "),  # differs only in case/space: exact
            web("W1", created_at="2026-01-05T15:00:00Z"),  # re-delivered, changed: a clash
            web("W2"),
        ),
        app_orders=jsonl(app(1), app(1, productCode="sku-13")),  # same order_id+line_number
        # T1 re-sent after T2 (exact), then T2 re-sent with another payment (a clash)
        pos_transactions=csv_bytes(
            POS_HEADER, [*POS_ROWS, POS_ROWS[0], POS_ROWS[1], POS_ROWS[2].replace("cash", "card")]
        ),
    )
    assert accounting(result, "web_orders")["duplicates_removed"] == 4
    assert reasons(result, "web_orders") == [CLASH.format("order_id, line_number")] * 4
    assert accounting(result, "app_orders")["duplicates_removed"] == 0
    assert reasons(result, "app_orders") == [CLASH.format("order_id, line_number")] * 2
    assert accounting(result, "pos_transactions")["duplicates_removed"] == 2
    assert reasons(result, "pos_transactions") == [CLASH.format("order_id, line_number")] * 2
    lines = result.tables["order_lines"]
    assert lines.get_column("order_id").to_list() == ["store:T1", "store:T1", "web:W2", "web:W2"]
    assert lines.filter(pl.col("order_id") == "store:T1").get_column("line_number").to_list() == [
        1,
        2,
    ]


def test_lines_of_one_id_that_disagree_on_the_order_are_quarantined(
    identity: pl.DataFrame,
) -> None:
    # Tills that number receipts per store: R1 at s01 (Jane's card, 10:00) and R1 at s02
    # (cash, 11:30) are two sales under one id; the 2026-12-07 probe saw them merged into one
    # order of Jane's at s01, every check green. R2's lines carry their own scan times a few
    # minutes apart and the card on the first line only (as some exports write the order's
    # fields once): one order.
    rows = [
        "R1,s01,05/01/2026 10:00:00,L0012345,SKU-00012,1,19.99,card",
        "R1,s02,05/01/2026 11:30:00,,SKU-00013,2,5.00,cash",
        "R2,s01,05/01/2026 12:00:10,L0012345,SKU-00012,1,19.99,card",
        "R2,s01,05/01/2026 12:03:40,,SKU-00013,1,5.00,card",
        "R2,s01,05/01/2026 12:04:05,l001 2345,SKU-00014,1,7.50,card",
    ]
    result = orders_day(identity, pos_transactions=csv_bytes(POS_HEADER, rows))
    assert reasons(result, "pos_transactions") == [
        "order_id: its lines disagree on store_code, ordered_at (two orders under one id?); "
        "none is kept"
    ] * 2
    counts = accounting(result, "pos_transactions")
    assert (counts["rows_in"], counts["rows_cleaned"], counts["rows_quarantined"]) == (5, 3, 2)
    orders = result.tables["orders"].filter(pl.col("channel") == "store")
    assert orders.select("order_id", "customer_key", "n_lines").rows() == [
        ("store:R2", crm_key("C1"), 3)
    ]
    # app lines under one order reference with two customers: quarantined the same way
    app_result = orders_day(identity, app_orders=jsonl(app(1), app(2, loyaltyId="L0099999")))
    assert reasons(app_result, "app_orders") == [
        "order_id: its lines disagree on loyalty_id (two orders under one id?); none is kept"
    ] * 2
    assert app_result.tables["orders"].filter(pl.col("channel") == "app").is_empty()


def test_ids_a_spreadsheet_wrote_in_scientific_notation_are_quarantined(
    identity: pl.DataFrame,
) -> None:
    # Excel shows 123456789012 as 1.23457E+11 and saves it so: 123456789012 and 123457000001
    # become one id. The 2026-12-07 probe saw two orders merged into one, and a line of one
    # removed as a duplicate of the other's (a sale gone), every check green.
    rewritten = (
        "looks like a number a spreadsheet rewrote in scientific notation (digits lost); "
        "export the column as text"
    )
    rows = [
        "1.23457E+11,s01,05/01/2026 10:00:00,,SKU-00012,1,19.99,card",
        "1.23457E+11,s01,05/01/2026 10:00:00,,SKU-00013,2,5.00,card",
        "1.23457E+11,s01,05/01/2026 10:00:00,,SKU-00012,1,19.99,card",
        "T3,s01,05/01/2026 10:05:00,1.2E+06,SKU-00012,1,19.99,card",
        "T4,s01,05/01/2026 10:06:00,L0012345,SKU-00012,1,19.99,card",
    ]
    result = orders_day(identity, pos_transactions=csv_bytes(POS_HEADER, rows))
    found = reasons(result, "pos_transactions")
    assert found[:3] == [f"order_id: {rewritten} ('1.23457E+11')"] * 3
    assert f"loyalty_id: {rewritten}" in found[3] and "1.2E+06" not in found[3]  # PII
    counts = accounting(result, "pos_transactions")
    assert (counts["rows_in"], counts["rows_cleaned"], counts["rows_quarantined"]) == (5, 1, 4)
    # a European Excel writes the mantissa with a decimal comma (found by the 2026-12-07 probe)
    comma = rows[0].replace("1.23457E+11", '"1,23457E+11"')
    european = orders_day(identity, pos_transactions=csv_bytes(POS_HEADER, [comma]))
    assert reasons(european, "pos_transactions") == [
        f"order_id: {rewritten} ('1,23457E+11')"
    ]
    tickets = [TICKET_ROWS[0].replace("K1,", "1.23457e+11,"), TICKET_ROWS[1]]
    sessions = [session("1E+12"), session("12e45"), session("4e1f0c2a")]  # hex ids are ids
    day = interactions_day(
        identity,
        crm_tickets=csv_bytes(TICKETS_HEADER, tickets),
        web_sessions=sessions_parquet(sessions),
    )
    assert reasons(day, "crm_tickets") == [f"ticket_id: {rewritten} ('1.23457e+11')"]
    assert reasons(day, "web_sessions") == [f"session_id: {rewritten} ('1E+12')"]
    assert accounting(day, "web_sessions")["rows_cleaned"] == 2
    crm = clean_reference_customers(
        raw("customers", CUSTOMERS_CSV.replace("C2,", "1.23457E+11,").encode()), KEY
    )
    assert f"crm_id: {rewritten} ('1.23457E+11')" in crm.quarantine.get_column("reasons")


def test_receipt_numbers_per_store_are_read_within_their_store(identity: pl.DataFrame) -> None:
    # the same till export as above, declared with `within: [store_code]`: two orders
    per_store = SOURCES.sources["pos_transactions"]
    order_id = dataclasses.replace(per_store.column("order_id"), within=("store_code",))
    spec = dataclasses.replace(
        per_store,
        columns=tuple(order_id if c.name == "order_id" else c for c in per_store.columns),
    )
    sources = dataclasses.replace(SOURCES, sources={**SOURCES.sources, spec.name: spec})
    rows = [
        "R1,s01,05/01/2026 10:00:00,L0012345,SKU-00012,1,19.99,card",
        "R1,s01,05/01/2026 10:00:00,L0012345,SKU-00013,2,5.00,card",
        "R1,s02,05/01/2026 11:30:00,,SKU-00013,2,5.00,cash",
    ]
    frame = parse_landing(csv_bytes(POS_HEADER, rows), spec, f"pos_transactions/{DAY}.csv").frame
    assert frame.get_column("order_id").to_list() == ["s01/R1", "s01/R1", "s02/R1"]
    result = clean_orders_day({"pos_transactions": frame}, identity, KEY, DAY, sources)
    assert reasons(result, "pos_transactions") == []
    orders = result.tables["orders"].sort("order_id")
    assert orders.select("order_id", "store_code", "customer_key", "n_lines").rows() == [
        ("store:S01/R1", "S01", crm_key("C1"), 2),
        ("store:S02/R1", "S02", None, 1),
    ]


def test_receipt_numbers_that_restart_every_day_are_read_within_their_day(
    identity: pl.DataFrame,
) -> None:
    """A till that numbers receipts per store and per day: R1 at s01 on the 5th and on the
    6th are two sales. Without the day in the id both days' orders are store:S01/R1, and
    the marts keep the first delivery of a key (their ids_not_reused tests hold the facts
    back, test_dbt_duckdb); `order_day` keeps both, in a file per day or in one file that
    spans both days (a backfill dump), and a receipt rung up at 00:20 local time (23:20
    UTC the day before) belongs to the local day it was written on."""
    pos = SOURCES.sources["pos_transactions"]

    def declared(*within: str) -> tuple[SourcesConfig, SourceSpec]:
        order_id = dataclasses.replace(pos.column("order_id"), within=within)
        spec = dataclasses.replace(
            pos, columns=tuple(order_id if c.name == "order_id" else c for c in pos.columns)
        )
        return dataclasses.replace(SOURCES, sources={**SOURCES.sources, spec.name: spec}), spec

    days = {
        DAY: ["R1,s01,05/01/2026 10:00:00,L0012345,SKU-00012,1,19.99,card"],
        DAY + dt.timedelta(days=1): ["R1,s01,06/01/2026 09:30:00,,SKU-00013,2,5.00,cash"],
    }

    def order_ids(*within: str) -> list[str]:
        sources, spec = declared(*within)
        ids = []
        for day, rows in days.items():
            frame = parse_landing(
                csv_bytes(POS_HEADER, rows), spec, f"pos_transactions/{day}.csv"
            ).frame
            result = clean_orders_day({"pos_transactions": frame}, identity, KEY, day, sources)
            assert reasons(result, "pos_transactions") == []
            ids += result.tables["orders"]["order_id"].to_list()
        return ids

    assert order_ids("store_code") == ["store:S01/R1", "store:S01/R1"]  # one key, two sales
    assert order_ids("store_code", "order_day") == [
        "store:S01/2026-01-05/R1",
        "store:S01/2026-01-06/R1",
    ]
    # one file holding both days (named by its last), and a receipt just after local midnight
    sources, spec = declared("store_code", "order_day")
    last = DAY + dt.timedelta(days=1)
    rows = [*days[DAY], *days[last], "R2,s01,06/01/2026 00:20:00,,SKU-00014,1,7.50,cash"]
    frame = parse_landing(csv_bytes(POS_HEADER, rows), spec, f"pos_transactions/{last}.csv").frame
    result = clean_orders_day({"pos_transactions": frame}, identity, KEY, last, sources)
    assert reasons(result, "pos_transactions") == []  # no two orders under one id
    assert sorted(result.tables["orders"]["order_id"].to_list()) == [
        "store:S01/2026-01-05/R1",
        "store:S01/2026-01-06/R1",
        "store:S01/2026-01-06/R2",
    ]
    # a time that cannot be read keeps the id as written; cleaning names the time
    bad = parse_landing(
        csv_bytes(POS_HEADER, ["R3,s01,31/02/2026 10:00:00,,SKU-00012,1,19.99,card"]),
        spec, f"pos_transactions/{DAY}.csv",
    ).frame  # fmt: skip
    assert bad["order_id"].to_list() == ["R3"]


def test_equal_lines_of_one_transaction_are_two_lines(identity: pl.DataFrame) -> None:
    # a till that scans an item twice writes two identical rows: both are sales
    rows = [POS_ROWS[0], POS_ROWS[1], POS_ROWS[0], POS_ROWS[2]]
    result = orders_day(identity, pos_transactions=csv_bytes(POS_HEADER, rows))
    assert accounting(result, "pos_transactions")["duplicates_removed"] == 0
    orders = result.tables["orders"].filter(pl.col("order_id") == "store:T1")
    assert orders.select("n_lines", "order_total").row(0) == (3, 49.98)
    # ...unless every line of the transaction repeats: then, whatever the row order, it
    # reads as the transaction delivered twice (docs/DATA_CONTRACTS.md says so)
    twice = orders_day(
        identity, pos_transactions=csv_bytes(POS_HEADER, [POS_ROWS[0], POS_ROWS[2], POS_ROWS[0]])
    )
    assert accounting(twice, "pos_transactions")["duplicates_removed"] == 1
    orders = twice.tables["orders"].filter(pl.col("order_id") == "store:T1")
    assert orders.select("n_lines", "order_total").row(0) == (1, 19.99)


def test_late_rows_keep_their_event_date(identity: pl.DataFrame) -> None:
    result = orders_day(identity, web_orders=jsonl(web(created_at="2026-01-03T23:59:00Z")))
    assert result.tables["orders"].filter(pl.col("channel") == "web").get_column(
        "order_date"
    ).to_list() == [dt.date(2026, 1, 3)]


def test_missing_required_column_quarantines_every_row(identity: pl.DataFrame) -> None:
    renamed = POS_HEADER.replace("qty", "quantity_sold")
    result = orders_day(identity, pos_transactions=csv_bytes(renamed, POS_ROWS))
    assert (
        reasons(result, "pos_transactions")
        == ["quantity: missing in every row of the file (column absent or renamed?)"] * 3
    )
    assert accounting(result, "pos_transactions")["rows_quarantined"] == 3


def test_any_order_lines_source_is_accepted_from_yaml_only(identity: pl.DataFrame) -> None:
    marketplace = parse_sources("""
version: 1
currency_rates_to_eur: {EUR: 1.0, GBP: 1.17}
sources:
  marketplace_orders:
    contract: order_lines
    channel: marketplace
    format: csv
    delimiter: ";"
    landing: marketplace/{date}.csv
    ignore: [Versandkosten]
    columns:
      order_id:       {from: Bestellnummer, type: string}
      line_number:    {from: Position, type: int}
      ordered_at:     {from: Rechnungsdatum, type: timestamp, timestamp_format: "%d.%m.%Y %H:%M",
                       timezone: Europe/Berlin}
      customer_email: {from: Kaeufer-Email, type: string}
      sku:            {from: Artikelnummer, type: string, canonical: "SKU-%05d"}
      quantity:       {from: Menge, type: int}
      unit_price:     {from: Einzelpreis, type: float, decimal: ","}
      currency:       {from: Waehrung, type: string, normalise: [upper]}
""")
    export = (
        b"Bestellnummer;Position;Rechnungsdatum;Kaeufer-Email;Artikelnummer;Menge;Einzelpreis;"
        b"Waehrung;Versandkosten\n"
        b"M-100;1;05.01.2026 14:30;jane.doe@example.com;12;2;1.234,50;eur;4,99\n"
        b"M-100;2;05.01.2026 14:30;jane.doe@example.com;Art. 13;1;19,99;gbp;0\n"
        b"M-101;1;05.01.2026 15:00;;Art. 14;1;19.99;EUR;0\n"
    )
    parsed = parse_landing(export, marketplace["marketplace_orders"], "marketplace/2026-01-05.csv")
    assert parsed.extra_columns == () and parsed.missing_columns == ()
    result = clean_orders_day({"marketplace_orders": parsed.frame}, identity, KEY, DAY, marketplace)
    lines = result.tables["order_lines"]
    assert lines.select("order_id", "line_number", "sku", "quantity", "currency").rows() == [
        ("marketplace:M-100", 1, "SKU-00012", 2, "EUR"),
        ("marketplace:M-100", 2, "SKU-00013", 1, "GBP"),
    ]
    # converted, not rounded per line: GBP 19.99 * 1.17 = EUR 23.3883
    assert lines.get_column("unit_price").to_list() == pytest.approx([1234.5, 23.3883])
    assert lines.get_column("line_amount_source").to_list() == [2469.0, 19.99]
    assert lines.get_column("ordered_at").to_list()[0] == dt.datetime(
        2026, 1, 5, 13, 30, tzinfo=dt.UTC
    )
    assert lines.get_column("customer_key").unique().to_list() == [crm_key("C1")]
    assert reasons(result, "marketplace_orders") == [
        "unit_price: not a number with decimal comma ('19.99')"
    ]
    # 0.999 is a decimal point, not a thousands group after a 0: rejected, not read as 999
    points = parse_landing(
        b"Bestellnummer;Position;Rechnungsdatum;Kaeufer-Email;Artikelnummer;Menge;Einzelpreis;"
        b"Waehrung;Versandkosten\n"
        b"M-102;1;05.01.2026 15:00;;12;1;0.999;EUR;0\n"
        b"M-102;2;05.01.2026 15:00;;12;1;0,999;EUR;0\n"
        b"M-102;3;05.01.2026 15:00;;12;1;12.345,6;EUR;0\n",
        marketplace["marketplace_orders"],
        "marketplace/2026-01-05.csv",
    )
    typed = clean_orders_day(
        {"marketplace_orders": points.frame}, identity, KEY, DAY, marketplace
    )
    assert typed.tables["order_lines"]["unit_price"].to_list() == pytest.approx([0.999, 12345.6])
    assert reasons(typed, "marketplace_orders") == [
        "unit_price: not a number with decimal comma ('0.999')"
    ]
    assert validate_table("order_lines", lines, channels=("marketplace",)) == []
    assert validate_table("orders", result.tables["orders"], channels=("marketplace",)) == []


SHOP_DE_US = """
version: 1
currency_rates_to_eur: {EUR: 1.0, USD: 0.92}
sources:
  de_shop:
    contract: order_lines
    channel: de_shop
    format: csv
    delimiter: ";"
    landing: de_shop/{date}.csv
    returns: {status: [returned, cancelled]}
    columns:
      order_id:    {from: Beleg, type: string}
      line_number: {sequence: order_id, type: int}
      ordered_at:  {from: Datum, type: timestamp, timestamp_format: "%d.%m.%Y",
                    timezone: Europe/Berlin}
      sku:         {from: Artikel, type: string}
      quantity:    {from: Menge, type: int<QUANTITY_DECIMAL>}
      unit_price:  {from: Preis, type: float, decimal: ","}
      currency:    {constant: EUR, type: string}
      line_status: {from: Status, type: string}
  us_shop:
    contract: order_lines
    channel: us_shop
    format: csv
    landing: us_shop/{date}.csv
    columns:
      order_id:    {from: id, type: string}
      line_number: {sequence: order_id, type: int}
      ordered_at:  {from: at, type: timestamp, timestamp_format: "%m/%d/%Y %H:%M",
                    timezone: America/Los_Angeles}
      sku:         {from: sku, type: string}
      quantity:    {from: qty, type: int}
      unit_price:  {from: price, type: float}
      currency:    {constant: USD, type: string}
"""
DE_EXPORT = (
    b"Beleg;Datum;Artikel;Menge;Preis;Status\n"
    b"B1;05.01.2026;A;1.000;0,50;shipped\n"
    b"B2;05.01.2026;B;2;10,00;Returned\n"
    b"B3;05.01.2026;C;1;20,00; CANCELLED\n"
)


@pytest.mark.parametrize("quantity_decimal", ["", ', decimal: ","'])
def test_a_german_export_keeps_its_thousands_its_days_and_its_returns(
    identity: pl.DataFrame, quantity_decimal: str
) -> None:
    config = parse_sources(SHOP_DE_US.replace("<QUANTITY_DECIMAL>", quantity_decimal))
    parsed = parse_landing(DE_EXPORT, config["de_shop"], "de_shop/2026-01-05.csv")
    result = clean_orders_day({"de_shop": parsed.frame}, identity, KEY, DAY, config)
    lines = result.tables["order_lines"].sort("order_id")
    # a day without a time stays on its day: Berlin midnight was 23:00 UTC the day before
    assert lines.get_column("order_date").unique().to_list() == [DAY]
    # return marks are matched whatever their case and spaces (Returned was booked a sale)
    assert lines.filter(pl.col("order_id") != "de_shop:B1").get_column("is_return").all()
    if quantity_decimal:  # declared: 1.000 is a thousand (it was read as 1, silently)
        assert lines.get_column("quantity").to_list() == [1000, -2, -1]
        assert lines.get_column("line_amount").to_list() == [500.0, -20.0, -20.0]
        assert reasons(result, "de_shop") == []
    else:  # undeclared: refused as ambiguous, with what to declare
        assert reasons(result, "de_shop") == [
            "quantity: a thousands separator or three decimals? declare the column's decimal:"
            " ',' (1.000 = 1000) or '.' (1.000 = 1) ('1.000')"
        ]


US_EXPORT = (  # a web shop's export with thousands separators (found by the Shopify probe)
    b"id,at,sku,qty,price\n"
    b'U1,01/05/2026 10:00,TV,1,"1,299.00"\n'
    b'U2,01/05/2026 11:00,CABLE,"1,000",0.50\n'
    b'U3,01/05/2026 12:00,CABLE,1,"1,5"\n'
)


@pytest.mark.parametrize("declared", [False, True])
def test_thousands_separators_are_read_where_the_decimal_point_is_declared(
    identity: pl.DataFrame, declared: bool
) -> None:
    """`1,299.00` under `decimal: "."`: a comma there only groups thousands. Undeclared the
    value is refused naming what to declare (in a German export `1,299` is 1.299); a comma
    that cannot be a thousands separator (`1,5`) is refused either way, never read as 15."""
    yaml = SHOP_DE_US.replace("<QUANTITY_DECIMAL>", "")
    if declared:
        yaml = yaml.replace(
            "quantity:    {from: qty, type: int}",
            'quantity:    {from: qty, type: int, decimal: "."}',
        ).replace(
            "unit_price:  {from: price, type: float}",
            'unit_price:  {from: price, type: float, decimal: "."}',
        )
    config = parse_sources(yaml)
    parsed = parse_landing(US_EXPORT, config["us_shop"], "us_shop/2026-01-05.csv")
    result = clean_orders_day({"us_shop": parsed.frame}, identity, KEY, DAY, config)
    lines = result.tables["order_lines"].sort("order_id")
    hint = (
        "a thousands separator? declare the column's decimal: '.' (1,299.00 = 1299) or ','"
        " (1.299,00 = 1299)"
    )
    if declared:
        assert lines.select("order_id", "quantity", "line_amount_source").rows() == [
            ("us_shop:U1", 1, 1299.0), ("us_shop:U2", 1000, 500.0),
        ]
        assert reasons(result, "us_shop") == ["unit_price: not a number ('1,5')"]
    else:
        assert lines.is_empty()
        assert sorted(reasons(result, "us_shop")) == sorted([
            f"unit_price: {hint} ('1,299.00')",
            "quantity: not an integer ('1,000')",
            "unit_price: not a number ('1,5')",
        ])


def test_a_parquet_decimal_integer_is_not_ambiguous() -> None:
    # Parquet writes a decimal(10,3) count as 12.000: never a thousands separator
    from aiwf_assets.cleaning.rules import cast_columns

    spec = SOURCES["web_sessions"]
    raw_frame = pl.DataFrame({c.name: [None] for c in spec.all_columns}, schema={
        c.name: pl.String for c in spec.all_columns
    }).with_columns(pl.lit("12.000").alias("pages_viewed"))
    typed, _ = cast_columns(raw_frame, spec)
    assert typed.get_column("pages_viewed").to_list() == [12]


def test_a_west_coast_evening_is_not_in_the_future(identity: pl.DataFrame) -> None:
    config = parse_sources(SHOP_DE_US.replace("<QUANTITY_DECIMAL>", ""))
    export = (
        b"id,at,sku,qty,price\n"
        b"U1,01/05/2026 09:00,A,1,5.00\n"
        b"U2,01/05/2026 21:30,A,1,5.00\n"  # 05:30 UTC on the 6th: still the 5th there
        b"U3,01/06/2026 00:30,A,1,5.00\n"  # the 6th in Los Angeles too: in the future
        b"U4,01/05/26 10:00,A,1,5.00\n"  # the year 26 by %Y
    )
    parsed = parse_landing(export, config["us_shop"], "us_shop/2026-01-05.csv")
    result = clean_orders_day({"us_shop": parsed.frame}, identity, KEY, DAY, config)
    assert sorted(result.tables["order_lines"].get_column("order_id")) == [
        "us_shop:U1", "us_shop:U2"
    ]
    future, year = reasons(result, "us_shop")
    assert future.startswith("ordered_at: in the future for a 2026-01-05 delivery")
    assert year.startswith(
        "ordered_at: a year below 100: a two-digit year read by %Y? (the format needs %y)"
    )


# --------------------------------------------------------------------------- interactions


def test_interactions_from_tickets_and_sessions(identity: pl.DataFrame) -> None:
    result = interactions_day(
        identity,
        crm_tickets=csv_bytes(
            TICKETS_HEADER,
            [
                *TICKET_ROWS,
                "K3,2026-01-05 11:00:00,,,complaint,fax,open,9",
                TICKET_ROWS[0].replace("closed", "reopened"),  # same ticket_id re-delivered
            ],
        ),
        web_sessions=sessions_parquet([session(), session("S2", email=None, pages_viewed=-1)]),
    )
    table = result.tables["interactions"]
    assert table.select(
        "interaction_id", "kind", "subtype", "contact_channel", "satisfaction"
    ).rows() == [
        ("session:S1", "session", "mobile", None, None),
        ("ticket:K2", "ticket", "billing", "email", None),
    ]
    assert reasons(result, "crm_tickets") == [
        CLASH.format("ticket_id"),
        "category: not one of account, billing, delivery, product, return (complaint); "
        "contact_channel: not one of chat, email, phone (fax); satisfaction: must be 1..5 (9)",
        CLASH.format("ticket_id"),
    ]
    assert reasons(result, "web_sessions") == ["pages_viewed: must be >= 0 (-1)"]
    assert accounting(result, "crm_tickets") | {"partition_date": None} == {
        "channel": "crm_tickets",
        "partition_date": None,
        "rows_in": 4,
        "rows_cleaned": 1,
        "rows_quarantined": 3,
        "duplicates_removed": 0,
        "lines_in_file": 4,
        "lines_parsed": 4,
    }
    assert validate_table("interactions", table) == []


# --------------------------------------------------------------------------- accounting


FAULTS = {
    "malformed": {"web_orders": jsonl(web(), "{not json")},
    "wrong_type": {"app_orders": jsonl(app(quantity="two"), app(2))},
    "missing_value": {"pos_transactions": csv_bytes(POS_HEADER, [",S01" + POS_ROWS[0][2:]])},
    "negative": {"web_orders": jsonl(web(items=[{"sku": "SKU-1", "qty": -1, "unit_price": 1}]))},
    "future": {"app_orders": jsonl(app(ts=1956528000))},
    "exact_duplicate": {"pos_transactions": csv_bytes(POS_HEADER, POS_ROWS + POS_ROWS)},
    "key_duplicate": {"web_orders": jsonl(web(), web(currency="EUR"))},
    "no_items": {"web_orders": jsonl(web(items=[]))},
    "missing_column": {"app_orders": jsonl({k: v for k, v in app().items() if k != "ts"})},
    "empty_file": {"web_orders": b""},
    "wrong_field_count": {"pos_transactions": csv_bytes(POS_HEADER, [POS_ROWS[0] + ",x"])},
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_accounting_adds_up_for_every_fault(identity: pl.DataFrame, fault: str) -> None:
    result = orders_day(identity, **FAULTS[fault])
    assert result.accounting.schema == ACCOUNTING_SCHEMA
    assert result.quarantine.schema == QUARANTINE_SCHEMA
    for row in result.accounting.iter_rows(named=True):
        assert row["rows_in"] == (
            row["rows_cleaned"] + row["rows_quarantined"] + row["duplicates_removed"]
        )
        assert row["partition_date"] == DAY
    total = result.accounting.select(pl.sum("rows_cleaned")).item()
    assert total == result.tables["order_lines"].height
    assert result.accounting.select(pl.sum("rows_quarantined")).item() == result.quarantine.height


def test_accounting_violation_is_a_bug() -> None:
    broken = pl.DataFrame(
        [
            {
                "channel": "web_orders",
                "partition_date": DAY,
                "rows_in": 3,
                "rows_cleaned": 1,
                "rows_quarantined": 1,
                "duplicates_removed": 0,
            }
        ],
        schema=ACCOUNTING_SCHEMA,
    )
    with pytest.raises(AccountingError, match="does not add up"):
        CleanResult(tables={}, quarantine=QUARANTINE_SCHEMA.to_frame(), accounting=broken)


def test_empty_day_gives_empty_tables(identity: pl.DataFrame) -> None:
    result = orders_day(identity, web_orders=b"", app_orders=b"", pos_transactions=b"")
    assert result.tables["order_lines"].height == 0
    assert result.tables["orders"].height == 0
    assert result.accounting.get_column("rows_in").to_list() == [0, 0, 0]
    assert validate_table("order_lines", result.tables["order_lines"]) == []


# --------------------------------------------------------------------------- PII


def test_no_clear_pii_in_any_table_or_quarantine(customers: CleanResult) -> None:
    identity = customers.tables["customer_identity"]
    orders = orders_day(
        identity,
        web_orders=jsonl(
            web(),
            web("W2", currency="XXX"),
            '{"order_id": "W3", "email": "Jane.Doe@example.com", "phone": "+49 170 1234567"',
        ),
        app_orders=jsonl(app(quantity="x"), '{"loyaltyId": "l0012345", "orderRef": "A9",'),
        pos_transactions=csv_bytes(POS_HEADER, [*POS_ROWS, "T3,S01,bad,L0012345,x,1,1,card"]),
    )
    interactions = interactions_day(
        identity,
        crm_tickets=csv_bytes(
            TICKETS_HEADER,
            [
                *TICKET_ROWS,
                "K3,never,john.roe@example.com,0151 2223334,delivery,phone,open,",
                "K4,2026-01-05 09:00:00,0151 2223334,john.roe@example.com,delivery,phone,open,1,x",
            ],
        ),
    )
    bad_customers = clean_reference_customers(
        raw(
            "customers",
            (
                CUSTOMERS_CSV
                + "C9,Jane,Doe,Jane.Doe@example.com,+49 170 1234567,L0012345,2024-01-01\n"
            ).encode(),
        ),
        KEY,
    )
    frames = [
        *customers.tables.values(),
        *orders.tables.values(),
        *interactions.tables.values(),
        orders.quarantine,
        interactions.quarantine,
        bad_customers.quarantine,
    ]
    assert orders.quarantine.height >= 4 and interactions.quarantine.height == 2
    assert bad_customers.quarantine.height == 2
    pattern = "|".join(re.escape(p) for p in CLEAR_PII)
    for frame in frames:
        text = frame.select(pl.col(pl.String)).write_csv()
        assert not re.search(pattern, text, flags=re.IGNORECASE), text
        assert "@" not in text


# --------------------------------------------------------------------------- versions


def test_content_version_ignores_order_whitespace_and_lineage(identity: pl.DataFrame) -> None:
    a = jsonl(web("W1"), web("W2"), web("W3"))
    b = jsonl(web("W3"), web(" W1 ", email="jane.doe@example.com"), web("W2"))
    changed = jsonl(web("W1"), web("W2"), web("W3", currency="EUR"))

    def version(data: bytes) -> str:
        lines = orders_day(identity, web_orders=data).tables["order_lines"]
        return content_version(lines, ["order_id", "line_number"], ["source_file", "source_row"])

    assert version(a) == version(b)
    assert version(a) != version(changed)


def test_content_version_is_deterministic_and_sorted() -> None:
    frame = pl.DataFrame({"k": [2, 1], "v": ["b ", "a"], "source_row": [1, 2]})
    same = pl.DataFrame({"k": [1, 2], "v": ["a", "b"], "source_row": [7, 9]})
    assert content_version(frame, ["k"]) == content_version(same, ["k"])
    assert content_version(frame, ["k"]) != content_version(
        frame.with_columns(pl.col("v").str.to_uppercase()), ["k"]
    )
    with pytest.raises(ValueError, match="key column"):
        content_version(frame, ["missing"])


# --------------------------------------------------------------------------- contracts


def test_pandera_contracts_reject_bad_frames(
    identity: pl.DataFrame, customers: CleanResult
) -> None:
    result = orders_day(identity)
    lines, orders = result.tables["order_lines"], result.tables["orders"]

    def failed(table: str, frame: pl.DataFrame, **kw) -> set[tuple[str, str | None]]:
        return {(f.check, f.column) for f in validate_table(table, frame, **kw)}

    # a negative line that is not marked as a return
    assert ("returns_are_negative_lines", None) in failed(
        "order_lines",
        lines.with_columns(
            pl.lit(-1, pl.Int64).alias("quantity"), pl.lit(-1.0).alias("line_amount")
        ),
    )
    assert ("not_equal_to(0)", "quantity") in failed(
        "order_lines", lines.with_columns(pl.lit(0, pl.Int64).alias("quantity"))
    )
    # a line given away, on a channel whose source does not declare free_lines
    free = lines.with_columns(pl.lit(0.0).alias("unit_price"), pl.lit(0.0).alias("line_amount"))
    assert ("not_equal_to(0) (but where the source declares free_lines)", "unit_price") in failed(
        "order_lines", free
    )
    assert ("str_matches('SKU\\-[0-9]{5,}')", "sku") in failed(
        "order_lines", lines.with_columns(pl.lit("85123A").alias("sku"))
    )
    assert ("order_total_is_gross_minus_returns", None) in failed(
        "orders", orders.with_columns(pl.col("order_total") + 1)
    )
    assert ("multiple_fields_uniqueness", None) in failed("order_lines", pl.concat([lines, lines]))
    assert ("no_clear_pii", None) in failed(
        "order_lines", lines.with_columns(pl.lit("jane@example.com").alias("source_file"))
    )
    assert ("line_amount_is_quantity_times_price", None) in failed(
        "order_lines", lines.with_columns(pl.col("line_amount") + 1)
    )
    assert ("column_in_dataframe", None) in failed("orders", orders.drop("has_promo"))
    assert any(
        c.startswith("dtype")
        for c, _ in failed("orders", orders.with_columns(pl.col("n_lines").cast(pl.String)))
    )
    assert ("isin(['app', 'web'])", "channel") in failed(
        "order_lines", lines, channels=("app", "web")
    )
    assert ("not_nullable", "order_id") in failed(
        "orders", orders.with_columns(pl.lit(None, pl.String).alias("order_id"))
    )
    interactions = interactions_day(identity).tables["interactions"]
    assert ("subtype_fits_kind", None) in failed(
        "interactions", interactions.with_columns(pl.lit("ticket").alias("kind"))
    )
    identity_bad = customers.tables["customer_identity"].with_columns(
        pl.lit("0170 1234567").alias("identifier_kind")
    )
    assert ("no_clear_pii", None) in failed("customer_identity", identity_bad)
    with pytest.raises(KeyError, match="no contract for table 'nope'"):
        validate_table("nope", lines)


def test_failure_examples_never_show_table_rows(identity: pl.DataFrame) -> None:
    lines = orders_day(identity).tables["order_lines"]
    bad = lines.with_columns(pl.lit("jane@example.com").alias("source_file"))
    failures = validate_table("order_lines", bad)
    assert failures and all("@" not in str(f) for f in failures)
    assert str(failures[0]).startswith("no_clear_pii failed on table: 6 case(s), e.g. row 0")


def test_scratch_connection_is_one_per_thread_and_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from aiwf_assets.io import scratch

    first = scratch.scratch_connection()
    assert scratch.scratch_connection() is first  # reused: opening one costs milliseconds
    other: list = []
    thread = threading.Thread(target=lambda: other.append(scratch.scratch_connection()))
    thread.start()
    thread.join()
    assert other[0] is not first
    monkeypatch.setattr(scratch.os, "getpid", lambda: -1)  # as in a forked child
    assert scratch.scratch_connection() is not first


def test_a_shared_identifier_goes_to_the_earliest_signup_in_any_row_order() -> None:
    header, *_ = CUSTOMERS_CSV.splitlines()
    early = "C7,Ann,Lee,shared@example.com,,,2023-01-01,DE,1980"
    late = "C3,Bob,Lee,shared@example.com,,,2024-06-01,DE,1981"
    for rows in ([early, late], [late, early]):
        data = "\n".join([header, *rows, ""]).encode()
        identity = clean_reference_customers(raw("customers", data), KEY).tables[
            "customer_identity"
        ]
        assert identity.get_column("customer_key").to_list() == [crm_key("C7")]


# --------------------------------------------------------------------------- third-party shapes


def test_phones_are_normalised_for_the_sources_region() -> None:
    from aiwf_assets.cleaning.pii import international_phone

    assert international_phone("0170 1234567", "DE") == "491701234567"
    assert international_phone("020 7946 0958", "GB") == "442079460958"
    assert international_phone("(020) 7946-0958", "GB") == "442079460958"
    assert international_phone("0044 20 7946 0958", "DE") == "442079460958"
    assert international_phone("+1 415 555 2671", "GB") == "14155552671"
    # without a region a national number cannot be placed: its digits stay as written
    assert international_phone("020 7946 0958", None) == "02079460958"
    assert international_phone("n/a", "GB") is None


def test_a_ticket_source_declares_its_phone_region(identity: pl.DataFrame) -> None:
    uk = parse_sources(
        """
version: 1
currency_rates_to_eur: {EUR: 1}
sources:
  uk_tickets:
    contract: tickets
    format: csv
    landing: uk_tickets/{date}.csv
    phone_region: GB
    columns:
      ticket_id:      {from: id, type: string}
      opened_at:      {from: at, type: timestamp, timestamp_format: iso8601}
      customer_phone: {from: phone, type: string}
      category:       {from: category, type: string}
"""
    )
    raw = parse_landing(
        b"id,at,phone,category\nU1,2026-01-05T09:00:00,020 7946 0958,billing\n",
        uk["uk_tickets"], "uk_tickets/2026-01-05.csv",
    ).frame
    result = clean_interactions_day({"uk_tickets": raw}, identity, KEY, DAY, uk)
    key = result.tables["interactions"].get_column("customer_key")[0]
    assert key == hmac_hex(KEY, "phone:442079460958")[:16]


ISO_TICKETS = """
version: 1
currency_rates_to_eur: {EUR: 1}
sources:
  iso_tickets:
    contract: tickets
    format: csv
    landing: iso_tickets/{date}.csv
    columns:
      ticket_id: {from: id, type: string}
      opened_at: {from: at, type: timestamp, timestamp_format: iso8601,
                  timezone: Europe/Berlin}
      category:  {from: category, type: string}
"""


def test_iso_8601_as_exports_write_it_is_read_not_quarantined(identity: pl.DataFrame) -> None:
    """ISO 8601 without seconds, in the basic format, and with a space before the offset
    (how ERP, till and spreadsheet exports write it) are times, not `not a timestamp`; a
    time without an offset is Berlin's wall clock (the declared zone)."""
    sources = parse_sources(ISO_TICKETS)
    written = {
        "T1": "2026-01-05T10:30:00+01:00",  # the reading every release had
        "T2": "2026-01-05T10:30+01:00",  # no seconds
        "T3": "2026-01-05 10:30",  # no seconds, no offset: Berlin time
        "T4": "2026-01-05T10:30:00 +01:00",  # a space before the offset
        "T5": "2026-01-05 10:30:00 +0100",
        "T6": "20260105T103000+0100",  # basic format
        "T7": "20260105T093000Z",
        "T8": "20260105T1030",  # basic, no seconds, Berlin time
        "T9": "2026-01-05T10:30Z ",  # a trailing blank is stripped
    }
    garbage = {"G1": "2026-01-05T10:30 later", "G2": "05.01.2026 10:30", "G3": "2026-01-05T25:30"}
    csv_text = "id,at,category\n" + "".join(
        f"{k},{v},billing\n" for k, v in {**written, **garbage}.items()
    )
    raw = parse_landing(
        csv_text.encode(), sources["iso_tickets"], "iso_tickets/2026-01-05.csv"
    ).frame
    result = clean_interactions_day({"iso_tickets": raw}, identity, KEY, DAY, sources)
    published = dict(
        result.tables["interactions"].select("interaction_id", "occurred_at").iter_rows()
    )
    instant = dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)
    assert len(published) == len(written)
    expected = {k: instant for k in written} | {"T9": instant + dt.timedelta(hours=1)}
    assert {k.rsplit(":", 1)[-1]: v for k, v in published.items()} == expected
    reasons = result.quarantine.get_column("reasons").to_list()
    assert len(reasons) == len(garbage)
    assert all("opened_at: not a timestamp in ISO 8601" in r for r in reasons), reasons


def test_iso_8601_readings_of_earlier_releases_are_unchanged() -> None:
    """The forms read before keep their reading exactly (the new forms are tried after)."""
    from aiwf_assets.ingest.spec import ColumnSpec
    from aiwf_assets.ingest.timestamps import read_timestamp

    col = ColumnSpec("ordered_at", "timestamp", timestamp_format="iso8601", timezone="UTC")
    texts = [
        "2026-01-05T10:30:00Z", "2026-01-05T10:30:00.123456+01:00", "2026-01-05 10:30:00",
        "2026-01-05T10:30:00+01", "2026-01-05T23:59:59.5-08:00", "2026-01-05T10:30:00",
    ]
    old_format = pl.col("t").str.replace(" ", "T", literal=True)
    old = pl.coalesce(
        old_format.str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.f%#z", time_zone="UTC", time_unit="us", strict=False
        ),
        old_format.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
        .dt.replace_time_zone("UTC"),
    )
    frame = pl.DataFrame({"t": texts}).select(
        new=read_timestamp(col, pl.col("t")).value, old=old
    )
    assert frame.null_count().sum_horizontal().item() == 0
    assert frame["new"].to_list() == frame["old"].to_list()


def test_cleaning_without_reference_tables_says_what_to_materialise(tmp_path) -> None:
    import dagster as dg

    from aiwf_assets.cleaning.assets import required_table
    from aiwf_assets.io.warehouse import DuckDBWarehouse

    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    with pytest.raises(dg.Failure) as err:
        required_table(wh, "customer_identity")
    assert "cleaned.customer_identity does not exist" in str(err.value.description)
    assert "Materialise the reference asset customer_identity" in str(err.value.description)
    wh.replace_table("cleaned.customer_identity", pl.DataFrame({"identifier_hash": ["x"]}))
    assert required_table(wh, "customer_identity") == "cleaned.customer_identity"
    # a declared rate file that was never cleaned: the same, naming the declaring source
    with pytest.raises(dg.Failure) as err:
        required_table(wh, "exchange_rates", "ecb_rates is declared")
    assert str(err.value.description) == (
        "cleaned.exchange_rates does not exist: daily cleaning converts order lines at their"
        " day's rate from it (ecb_rates is declared). Materialise the reference asset"
        " exchange_rates first (it builds from the declared rate file)."
    )


UK_SOURCES = """
version: 1
currency_rates_to_eur: {EUR: 1, GBP: 1.17}
sources:
  uk_invoices:
    contract: order_lines
    channel: online_uk
    format: csv
    landing: uk_invoices/{date}.csv
    returns: {order_prefix: C}
    non_merchandise: {POST: postage, BANK CHARGES: fee}
    columns:
      order_id:    {from: Invoice, type: string, normalise: [upper]}
      line_number: {sequence: order_id, type: int}
      ordered_at:  {from: InvoiceDate, type: timestamp, timestamp_format: "%d/%m/%Y %H:%M",
                    timezone: Europe/London}
      loyalty_id:  {from: Customer ID, type: string, normalise: [integer]}
      sku:         {from: StockCode, type: string, normalise: [upper], pattern: "[0-9]{5}[A-Z]*"}
      quantity:    {from: Quantity, type: int}
      unit_price:  {from: Price, type: float}
      currency:    {constant: GBP, type: string}
"""


def test_returns_non_merchandise_and_source_product_codes(identity: pl.DataFrame) -> None:
    uk = parse_sources(UK_SOURCES)
    export = (
        b"Invoice,StockCode,Quantity,InvoiceDate,Price,Customer ID\n"
        b"536365,85123A,6,05/01/2026 08:26,2.55,17850.0\n"
        b"536365,85123,1,05/01/2026 08:26,2.95,17850.0\n"
        b"536365,POST,1,05/01/2026 08:26,18.00,17850.0\n"
        b"C536366,85123a,-2,05/01/2026 09:00,2.55,17850\n"
        b"536367,BANK CHARGES,1,05/01/2026 09:30,15.00,\n"
        b"536368,22086,-10,05/01/2026 10:00,2.55,13047.0\n"
        b"536369,SKU12,1,05/01/2026 10:00,2.55,13047.0\n"
        b"C536370,22086,0,05/01/2026 10:00,2.55,13047.0\n"
        b"536371,22086,0,05/01/2026 10:30,2.55,13047.0\n"  # a sale of 0: said once
    )
    raw = parse_landing(export, uk["uk_invoices"], "uk_invoices/2026-01-05.csv").frame
    result = clean_orders_day({"uk_invoices": raw}, identity, KEY, DAY, uk)
    lines = result.tables["order_lines"].sort("order_id", "sku")
    assert lines.select("order_id", "sku", "line_kind", "is_return", "quantity").rows() == [
        ("online_uk:536365", "85123", "product", False, 1),
        ("online_uk:536365", "85123A", "product", False, 6),
        ("online_uk:536365", "POST", "postage", False, 1),
        ("online_uk:536367", "BANK CHARGES", "fee", False, 1),
        ("online_uk:C536366", "85123A", "product", True, -2),
    ]
    assert reasons(result, "uk_invoices") == [
        "quantity: must be > 0 (-10)",
        "sku: does not match the declared pattern '[0-9]{5}[A-Z]*' (SKU12)",
        "quantity: must not be 0 (0)",
        "quantity: must be > 0 (0)",
    ]
    # 17850.0 and 17850 are one customer
    jane = lines.filter(pl.col("order_id").str.contains("53636[56]"))
    assert jane["customer_key"].n_unique() == 1
    orders = {r["order_id"]: r for r in result.tables["orders"].iter_rows(named=True)}
    sale, cancel = orders["online_uk:536365"], orders["online_uk:C536366"]
    assert sale["gross_amount"] == pytest.approx((6 * 2.55 + 2.95 + 18.0) * 1.17)
    assert cancel["is_return"] and cancel["returns_amount"] == pytest.approx(2 * 2.55 * 1.17)
    assert cancel["order_total"] == -cancel["returns_amount"]
    assert lines.get_column("line_amount_source").to_list() == [2.95, 15.3, 18.0, 15.0, -5.1]
    assert validate_table("order_lines", lines, sources=uk) == []
    assert validate_table("orders", result.tables["orders"], sources=uk) == []


def test_a_loyalty_card_that_lost_its_leading_zeros_is_the_same_customer(
    identity: pl.DataFrame,
) -> None:
    """A till that prints card numbers without their letter, opened in a spreadsheet that
    read them as numbers: `canonical` declares the width and prefix, and every spelling
    is Jane's card L0012345; a number that cannot be one card is quarantined, not guessed."""
    tills = parse_sources("""
version: 1
currency_rates_to_eur: {EUR: 1.0}
sources:
  tills:
    contract: order_lines
    channel: store
    online: false
    format: csv
    landing: tills/{date}.csv
    columns:
      order_id:    {from: txn_id, type: string}
      store_code:  {from: store_code, type: string, required: true}
      ordered_at:  {from: local_time, type: timestamp, timestamp_format: "%d/%m/%Y %H:%M:%S",
                    timezone: Europe/Berlin}
      loyalty_id:  {from: card, type: string, normalise: [integer], canonical: "L%07d"}
      sku:         {from: sku, type: string, canonical: "SKU-%05d"}
      quantity:    {from: qty, type: int}
      unit_price:  {from: unit_price, type: float}
      line_number: {sequence: order_id, type: int}
      currency:    {constant: EUR, type: string}
""")
    export = (
        b"txn_id,store_code,local_time,card,sku,qty,unit_price\n"
        b"T1,s01,05/01/2026 10:00:00,12345,SKU-00012,1,19.99\n"
        b"T2,s01,05/01/2026 10:05:00,0012345,SKU-00012,1,19.99\n"
        b"T3,s01,05/01/2026 10:10:00,12345.0,SKU-00012,1,19.99\n"
        b"T4,s01,05/01/2026 10:15:00,L0012345,SKU-00012,1,19.99\n"
        b"T5,s01,05/01/2026 10:20:00,12345-7,SKU-00012,1,19.99\n"
        b"T6,s01,05/01/2026 10:25:00,,SKU-00012,1,19.99\n"
    )
    raw = parse_landing(export, tills["tills"], "tills/2026-01-05.csv").frame
    result = clean_orders_day({"tills": raw}, identity, KEY, DAY, tills)
    keys = dict(result.tables["orders"].select("order_id", "customer_key").iter_rows())
    jane = crm_key("C1")
    assert [keys[f"store:T{i}"] for i in (1, 2, 3, 4)] == [jane] * 4
    assert keys["store:T6"] is None  # no card: a guest sale, kept
    # a PII column's reason does not repeat the value
    assert reasons(result, "tills") == ["loyalty_id: not one number to build 'L%07d'"]
    assert accounting(result, "tills")["rows_quarantined"] == 1
