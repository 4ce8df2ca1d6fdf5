"""Shared helpers for the dbt tests: a small hand-made cleaned layer and the test Postgres.

The cleaned tables follow docs/DATA_CONTRACTS.md. Three deliveries (2026-01-05..07) hold
web, app and store orders; the app order `app:A1` (with its line) and the ticket `ticket:K1`
are re-delivered on 2026-01-06 (the earliest delivery must win), and the store order
`store:T2` arrives late (delivered 2026-01-06 for 2026-01-05). `late_line_frames` adds two
orders whose last line arrives a day after the others (seed_cleaned(late_lines=True)).
`seed_store_returns` writes another retailer instead: a store's till export whose return
receipts name the receipt they return, some without the customer's card (STORE_DAYS).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import polars as pl
import psycopg

from aiwf_assets.io.warehouse import Warehouse
from tests.conftest import POSTGRES_DSN

DELIVERY_DAYS = [date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 7)]

ALICE = "a11ce0000000000a"  # CRM customer, web
BOB = "b0b000000000000b"  # CRM customer, app and store
CAROL = "ca201000000000cc"  # CRM customer without orders
STRANGER = "e0000000000000ee"  # an email the CRM does not know

ORDER_COLUMNS = {
    "partition_date": pl.Date,
    "order_id": pl.String,
    "channel": pl.String,
    "customer_key": pl.String,
    "ordered_at": pl.Datetime("us", "UTC"),
    "order_date": pl.Date,
    "store_code": pl.String,
    "n_lines": pl.Int32,
    "is_return": pl.Boolean,
    "gross_amount": pl.Float64,
    "returns_amount": pl.Float64,
    "order_total": pl.Float64,
    "has_promo": pl.Boolean,
    "source_file": pl.String,
}
LINE_COLUMNS = {
    "partition_date": pl.Date,
    "order_id": pl.String,
    "line_number": pl.Int32,
    "channel": pl.String,
    "customer_key": pl.String,
    "ordered_at": pl.Datetime("us", "UTC"),
    "order_date": pl.Date,
    "sku": pl.String,
    "line_kind": pl.String,
    "is_return": pl.Boolean,
    "original_order_id": pl.String,
    "quantity": pl.Int32,
    "unit_price": pl.Float64,
    "line_amount": pl.Float64,
    "currency": pl.String,
    "line_amount_source": pl.Float64,
    "is_promo": pl.Boolean,
    "source_file": pl.String,
    "source_row": pl.Int64,
}
INTERACTION_COLUMNS = {
    "partition_date": pl.Date,
    "interaction_id": pl.String,
    "kind": pl.String,
    "customer_key": pl.String,
    "occurred_at": pl.Datetime("us", "UTC"),
    "interaction_date": pl.Date,
    "subtype": pl.String,
    "contact_channel": pl.String,
    "satisfaction": pl.Int32,
    "pages_viewed": pl.Int32,
    "product_views": pl.Int32,
    "added_to_cart": pl.Int32,
    "duration_s": pl.Int32,
    "source_file": pl.String,
    "source_row": pl.Int64,
}


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _line(
    delivered: date, order_id: str, line_number: int, customer: str | None, day: date,
    sku: str, quantity: int, unit_price: float, is_promo: bool = False, source_row: int = 1,
    line_kind: str = "product", original_order_id: str | None = None,
) -> dict:
    channel = order_id.split(":")[0]
    return {
        "partition_date": delivered, "order_id": order_id, "line_number": line_number,
        "channel": channel, "customer_key": customer, "ordered_at": _at(day, 10),
        "order_date": day, "sku": sku, "line_kind": line_kind, "is_return": quantity < 0,
        "original_order_id": original_order_id, "quantity": quantity, "unit_price": unit_price,
        "line_amount": round(quantity * unit_price, 6), "currency": "EUR",
        "line_amount_source": round(quantity * unit_price, 6), "is_promo": is_promo,
        "source_file": f"{channel}/{delivered.isoformat()}", "source_row": source_row,
    }


def order_lines_frame() -> pl.DataFrame:
    d5, d6, d7 = DELIVERY_DAYS
    rows = [
        _line(d5, "web:W1", 1, ALICE, d5, "SKU-00001", 2, 19.99),
        _line(d5, "web:W1", 2, ALICE, d5, "SKU-00002", 1, 5.5, source_row=2),
        _line(d5, "store:T1", 1, None, d5, "SKU-00003", 3, 2.25),
        _line(d5, "app:A1", 1, BOB, d5, "SKU-00001", 1, 18.99, is_promo=True),
        # re-delivered on the 6th: the copy delivered on the 5th must win
        _line(d6, "app:A1", 1, BOB, d5, "SKU-00001", 1, 18.99, is_promo=True, source_row=7),
        _line(d6, "web:W2", 1, ALICE, d6, "SKU-00004", 1, 99.0),
        _line(d6, "web:W2", 2, ALICE, d6, "POST", 1, 4.95, source_row=5, line_kind="postage"),
        # late: ordered on the 5th, delivered on the 6th
        _line(d6, "store:T2", 1, BOB, d5, "SKU-00002", 2, 5.5, source_row=3),
        _line(d6, "web:W3", 1, STRANGER, d6, "SKU-00003", 1, 2.25, source_row=4),
        _line(d7, "app:A2", 1, BOB, d7, "SKU-00004", 2, 95.0, is_promo=True),
        # Alice sends the jacket of W2 back
        _line(d7, "web:R1", 1, ALICE, d7, "SKU-00004", -1, 99.0, original_order_id="web:W2"),
    ]
    return pl.DataFrame(rows, schema=LINE_COLUMNS)


def orders_frame(lines: pl.DataFrame) -> pl.DataFrame:
    """One order per (delivery, order), as the cleaned layer derives it from its lines."""
    return (
        lines.group_by("partition_date", "order_id", maintain_order=True)
        .agg(
            pl.col("channel").first(),
            pl.col("customer_key").first(),
            pl.col("ordered_at").first(),
            pl.col("order_date").first(),
            pl.len().cast(pl.Int32).alias("n_lines"),
            pl.col("is_return").all(),
            pl.col("line_amount").filter(~pl.col("is_return")).sum().alias("gross_amount"),
            pl.col("line_amount").filter(pl.col("is_return")).sum().abs().alias("returns_amount"),
            pl.col("line_amount").sum().alias("order_total"),
            pl.col("is_promo").any().alias("has_promo"),
            pl.col("source_file").first(),
        )
        .with_columns(
            store_code=pl.col("order_id").replace_strict(
                {"store:T1": "S001", "store:T2": "S002"}, default=None, return_dtype=pl.String
            )
        )
        .select(list(ORDER_COLUMNS))
        .cast(ORDER_COLUMNS)
    )


def _interaction(
    delivered: date, interaction_id: str, customer: str | None, day: date, subtype: str,
    **values: int | str | None,
) -> dict:
    kind = interaction_id.split(":")[0]
    return {
        "partition_date": delivered, "interaction_id": interaction_id, "kind": kind,
        "customer_key": customer, "occurred_at": _at(day, 9), "interaction_date": day,
        "subtype": subtype, "contact_channel": values.get("contact_channel"),
        "satisfaction": values.get("satisfaction"), "pages_viewed": values.get("pages_viewed"),
        "product_views": values.get("product_views"),
        "added_to_cart": values.get("added_to_cart"), "duration_s": values.get("duration_s"),
        "source_file": f"{kind}/{delivered.isoformat()}", "source_row": values.get("row", 1),
    }


def interactions_frame() -> pl.DataFrame:
    d5, d6, d7 = DELIVERY_DAYS
    session = {"pages_viewed": 5, "product_views": 3, "added_to_cart": 1, "duration_s": 300}
    rows = [
        _interaction(d5, "ticket:K1", ALICE, d5, "delivery", contact_channel="email",
                     satisfaction=4),
        _interaction(d5, "session:S1", ALICE, d5, "desktop", row=2, **session),
        _interaction(d5, "session:S2", None, d5, "mobile", row=3, **session),
        _interaction(d6, "ticket:K1", ALICE, d5, "delivery", contact_channel="email",
                     satisfaction=4, row=5),
        _interaction(d6, "session:S3", CAROL, d6, "mobile", pages_viewed=2, product_views=1,
                     added_to_cart=0, duration_s=60),
        _interaction(d7, "session:S4", BOB, d7, "tablet", **session),
    ]
    return pl.DataFrame(rows, schema=INTERACTION_COLUMNS)


def quarantine_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "partition_date": [DELIVERY_DAYS[1]],
            "channel": ["web_orders"],
            "source_file": ["web_orders/2026-01-06.jsonl"],
            "source_row": [9],
            "reasons": ["quantity: not a positive integer"],
            "record": ['{"order_id": "W00000009", "qty": "-1"}'],
        },
        schema_overrides={"partition_date": pl.Date, "source_row": pl.Int64},
    )


def reference_frames() -> dict[str, pl.DataFrame]:
    return {
        "customers": pl.DataFrame(
            {
                "customer_key": [ALICE, BOB, CAROL],
                "crm_id_hash": ["h-crm-1", "h-crm-2", "h-crm-3"],
                "email_hash": ["h-email-1", "h-email-2", None],
                "phone_hash": [None, "h-phone-2", "h-phone-3"],
                "loyalty_hash": [None, "h-loyalty-2", None],
                "signup_date": [date(2024, 3, 1), date(2025, 12, 1), date(2026, 1, 2)],
                "country": ["DE", "GB", "FR"],
                "birth_year": [1985, 1990, 2001],
            },
            schema_overrides={"birth_year": pl.Int32},
        ),
        "customer_identity": pl.DataFrame(
            {
                "identifier_hash": ["h-email-1", "h-email-2", "h-loyalty-2", "h-email-9"],
                "identifier_kind": ["email", "email", "loyalty", "email"],
                "customer_key": [ALICE, BOB, BOB, STRANGER],
            }
        ),
        "products": pl.DataFrame(
            {
                "sku": ["SKU-00001", "SKU-00002", "SKU-00003", "SKU-00004"],
                "name": ["Rain jacket", "Socks", "Soap", "Boots"],
                "category": ["apparel", "apparel", "home", "footwear"],
                "subcategory": ["outerwear", "basics", "bath", "outdoor"],
                "list_price": [19.99, 5.5, 2.25, 99.0],
            }
        ),
        "stores": pl.DataFrame(
            {
                "store_code": ["S001", "S002"],
                "name": ["Berlin Mitte", "Hamburg"],
                "city": ["Berlin", "Hamburg"],
                "region": ["BE", "HH"],
                "opened_date": [date(2019, 5, 1), date(2021, 9, 15)],
            }
        ),
    }


# Orders placed on the 6th whose last line comes in the file of the 7th (exports do this).
# app:A3: lines 1-2 on the 6th, line 3 (on promotion) on the 7th, each day with its order row
# of that day's lines, as cleaning makes them. web:W4: line 1 on the 6th, its postage line on
# the 7th without an order row that day (an incremental run must still recompute the order).
LATE_LINE_ORDERS = {
    "app:A3": {"n_lines": 3, "n_units": 6, "order_total": 36.74, "has_promo": True},
    # its late line is postage: a line of the order, not a unit of goods
    "web:W4": {"n_lines": 2, "n_units": 1, "order_total": 103.95, "has_promo": False},
}


def late_line_frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    """The order lines and order rows of LATE_LINE_ORDERS, delivered on the 6th and 7th."""
    _, d6, d7 = DELIVERY_DAYS
    lines = pl.DataFrame(
        [
            _line(d6, "app:A3", 1, BOB, d6, "SKU-00001", 1, 18.99, source_row=11),
            _line(d6, "app:A3", 2, BOB, d6, "SKU-00002", 2, 5.5, source_row=12),
            _line(d7, "app:A3", 3, BOB, d6, "SKU-00003", 3, 2.25, is_promo=True, source_row=11),
            _line(d6, "web:W4", 1, ALICE, d6, "SKU-00004", 1, 99.0, source_row=13),
            _line(d7, "web:W4", 2, ALICE, d6, "POST", 1, 4.95, source_row=12, line_kind="postage"),
        ],
        schema=LINE_COLUMNS,
    )
    orders = orders_frame(lines).filter(
        ~((pl.col("order_id") == "web:W4") & (pl.col("partition_date") == d7))
    )
    return lines, orders


def daily_frames(late_lines: bool = False) -> dict[str, pl.DataFrame]:
    lines = order_lines_frame()
    orders = orders_frame(lines)
    if late_lines:
        late, late_orders = late_line_frames()
        lines, orders = pl.concat([lines, late]), pl.concat([orders, late_orders])
    return {
        "orders": orders,
        "order_lines": lines,
        "interactions": interactions_frame(),
        "quarantine": quarantine_frame(),
    }


def seed_cleaned(
    warehouse: Warehouse, days: list[date] | None = None, late_lines: bool = False
) -> None:
    """Write the cleaned tables through `warehouse`: reference tables, and the given deliveries
    (with LATE_LINE_ORDERS if `late_lines`)."""
    days = DELIVERY_DAYS if days is None else days
    for name, frame in reference_frames().items():
        warehouse.replace_table(f"cleaned.{name}", frame)
    for name, frame in daily_frames(late_lines).items():
        warehouse.replace_partitions(
            f"cleaned.{name}", frame.filter(pl.col("partition_date").is_in(days)), days
        )


def redeliver_without(
    warehouse: Warehouse, day: date, *order_ids: str, late_lines: bool = False
) -> None:
    """A corrected re-delivery of `day`: the same files without these orders and their lines
    (of the deliveries seed_cleaned wrote with `late_lines`)."""
    frames = daily_frames(late_lines)
    for name in ("orders", "order_lines"):
        frame = frames[name].filter(
            (pl.col("partition_date") == day) & ~pl.col("order_id").is_in(order_ids)
        )
        warehouse.replace_partitions(f"cleaned.{name}", frame, [day])


def redeliver_changed(warehouse: Warehouse) -> None:
    """Re-deliveries on top of `seed_cleaned`: the 6th re-sends app:A1 with 2 units instead of
    1 (its line and its order change), the 7th re-sends the cash sale store:T1 unchanged (a
    null customer_key on both copies)."""
    d5, d6, d7 = DELIVERY_DAYS
    lines = order_lines_frame()
    changed = (pl.col("partition_date") == d6) & (pl.col("order_id") == "app:A1")
    lines = lines.with_columns(
        pl.when(changed).then(pl.col(c) * 2).otherwise(pl.col(c)).alias(c)
        for c in ("quantity", "line_amount", "line_amount_source")
    )
    again = lines.filter((pl.col("partition_date") == d5) & (pl.col("order_id") == "store:T1"))
    lines = pl.concat(
        [lines, again.with_columns(partition_date=d7, source_file=pl.lit(f"store/{d7}"))]
    )
    days = [d6, d7]
    for name, frame in (("order_lines", lines), ("orders", orders_frame(lines))):
        warehouse.replace_partitions(
            f"cleaned.{name}", frame.filter(pl.col("partition_date").is_in(days)), days
        )


def deliver_excess_returns(warehouse: Warehouse) -> None:
    """The 7th's delivery of `seed_cleaned` with two more returns: web:R2 sends 2 more jackets
    of web:W2 back (it sold 1, and web:R1 returned it already), web:R3 names an order never
    seen (web:W9). The test returns_within_their_sale reports both pairs."""
    d7 = DELIVERY_DAYS[2]
    extra = pl.DataFrame(
        [
            _line(d7, "web:R2", 1, ALICE, d7, "SKU-00004", -2, 99.0, source_row=8,
                  original_order_id="web:W2"),
            _line(d7, "web:R3", 1, ALICE, d7, "SKU-00001", -1, 19.99, source_row=9,
                  original_order_id="web:W9"),
        ],
        schema=LINE_COLUMNS,
    )
    lines = pl.concat([order_lines_frame(), extra]).filter(pl.col("partition_date") == d7)
    warehouse.replace_partitions("cleaned.order_lines", lines, [d7])
    warehouse.replace_partitions("cleaned.orders", orders_frame(lines), [d7])


def deliver_reused_receipt(warehouse: Warehouse) -> None:
    """The 7th's delivery of `seed_cleaned` with another sale under store:T1, the id of the
    5th's cash sale (a till that restarts its receipt numbers every day): Bob buys a jacket
    on the 7th. web:W3 (the 6th, 10:00) comes back at 09:00 on the 7th for someone else:
    23 hours apart, also another order. It also brings a return filed under its sale's id
    with the return's time (web:W1's socks, sold on the 5th), which is no reused id. The
    test ids_not_reused fails on store:T1 and web:W3."""
    d5, _, d7 = DELIVERY_DAYS
    again = pl.DataFrame(
        [
            _line(d7, "store:T1", 1, BOB, d7, "SKU-00004", 1, 99.0, source_row=8),
            _line(d7, "web:W1", 3, ALICE, d7, "SKU-00002", -1, 5.5, source_row=9,
                  original_order_id="web:W1"),
            _line(d7, "web:W3", 1, BOB, d7, "SKU-00001", 1, 19.99, source_row=10),
        ],
        schema=LINE_COLUMNS,
    ).with_columns(
        ordered_at=pl.when(pl.col("order_id") == "web:W3")
        .then(pl.lit(_at(d7, 9)))
        .otherwise(pl.col("ordered_at"))
    )
    lines = pl.concat([order_lines_frame(), again]).filter(pl.col("partition_date") == d7)
    warehouse.replace_partitions("cleaned.order_lines", lines, [d7])
    warehouse.replace_partitions("cleaned.orders", orders_frame(lines), [d7])


# A store's till export with returns, deliveries 2026-01-05..09 (day 1..5), for
# seed_store_returns. A return is a receipt of its own with negative lines naming the receipt
# it returns (`original_order_id`); the till knows the customer only when the card is shown.
STORE_DAYS = [date(2026, 1, 5) + timedelta(days=n) for n in range(5)]
DORA = "d02a000000000d0a"  # buys 3 items by card on day 1, returns one on day 4 without it
ERIN = "e21e000000000e1e"  # returns a gift from Dora's receipt with her own card
FRANK = "f2a0000000000f2a"  # buys on day 1 too
GINA = "61aa0000000006aa"  # buys on day 2; that day's file comes on day 5, after her return


def store_return_lines() -> pl.DataFrame:
    """The till's receipts as cleaned lines: store:T10 (Dora, 3 items) and store:T11 (Frank)
    on day 1; store:T20 (Gina) rung up on day 2 and delivered on day 5; day 3 brings T30,
    Gina's return without a card (before her receipt arrives); day 4 brings T40 (Dora's jacket
    back, no card), T41 (no card, a receipt never seen: store:T99), T42 (Erin's card, socks
    from Dora's receipt) and T43 (no card, soap from Dora's and from Frank's receipts)."""
    d1, d2, d3, d4, d5 = STORE_DAYS
    rows = [
        _line(d1, "store:T10", 1, DORA, d1, "SKU-00001", 1, 19.99),
        _line(d1, "store:T10", 2, DORA, d1, "SKU-00002", 1, 5.5, source_row=2),
        _line(d1, "store:T10", 3, DORA, d1, "SKU-00003", 1, 2.25, source_row=3),
        _line(d1, "store:T11", 1, FRANK, d1, "SKU-00003", 1, 2.25, source_row=4),
        _line(d3, "store:T30", 1, None, d3, "SKU-00004", -1, 99.0,
              original_order_id="store:T20"),
        _line(d4, "store:T40", 1, None, d4, "SKU-00001", -1, 19.99,
              original_order_id="store:T10"),
        _line(d4, "store:T41", 1, None, d4, "SKU-00002", -1, 5.5, source_row=2,
              original_order_id="store:T99"),
        _line(d4, "store:T42", 1, ERIN, d4, "SKU-00002", -1, 5.5, source_row=3,
              original_order_id="store:T10"),
        _line(d4, "store:T43", 1, None, d4, "SKU-00003", -1, 2.25, source_row=4,
              original_order_id="store:T10"),
        _line(d4, "store:T43", 2, None, d4, "SKU-00003", -1, 2.25, source_row=5,
              original_order_id="store:T11"),
        _line(d5, "store:T20", 1, GINA, d2, "SKU-00004", 2, 99.0),
    ]
    return pl.DataFrame(rows, schema=LINE_COLUMNS)


def seed_store_returns(warehouse: Warehouse, days: list[date] | None = None) -> None:
    """Write the reference tables and the given deliveries of the store's till export (no
    interactions, nothing quarantined)."""
    days = STORE_DAYS if days is None else days
    for name, frame in reference_frames().items():
        warehouse.replace_table(f"cleaned.{name}", frame)
    lines = store_return_lines()
    frames = {
        "order_lines": lines,
        "orders": orders_frame(lines).with_columns(store_code=pl.lit("S001")),
        "interactions": pl.DataFrame(schema=INTERACTION_COLUMNS),
        "quarantine": quarantine_frame().clear(),
    }
    for name, frame in frames.items():
        warehouse.replace_partitions(
            f"cleaned.{name}", frame.filter(pl.col("partition_date").is_in(days)), days
        )


# fct_orders' (customer_key, customer_key_source) of the till's receipts once every day is in.
STORE_RETURN_CUSTOMERS = {
    "store:T10": (DORA, "own"),
    "store:T11": (FRANK, "own"),
    "store:T20": (GINA, "own"),
    "store:T30": (GINA, "original_order"),  # attributed when Gina's receipt arrives (day 5)
    "store:T40": (DORA, "original_order"),
    "store:T41": (None, None),  # names a receipt never seen
    "store:T42": (ERIN, "own"),  # her card, though the receipt is Dora's
    "store:T43": (None, None),  # names Dora's and Frank's receipts
}


def order_customers(warehouse: Warehouse) -> dict[str, tuple[str | None, str | None]]:
    """fct_orders' customer_key and customer_key_source of every order."""
    orders = read_mart(warehouse, "fct_orders")
    return {
        row["order_id"]: (row["customer_key"], row["customer_key_source"])
        for row in orders.iter_rows(named=True)
    }


# What the redeliveries_unchanged test of stg_cleaned__order_lines returns after
# `redeliver_changed`: the changed key only.
CHANGED_LINE_REPORT = {
    "order_id": "app:A1",
    "line_number": 1,
    "delivery_days": "2026-01-05, 2026-01-06",
    "kept_delivery": date(2026, 1, 5),
    "n_versions": 2,
    "changed_columns": "quantity, line_amount, line_amount_source",
}


MART_KEYS = {
    "fct_order_lines": ["order_id", "line_number"],
    "fct_orders": ["order_id"],
    "fct_product_daily_sales": ["sku", "sales_date"],
    "fct_customer_daily_activity": ["customer_key", "activity_date"],
    "dim_customers": ["customer_key"],
    "dim_products": ["sku"],
    "customer_rfm": ["customer_key"],
}
DAILY_FACTS = [name for name in MART_KEYS if name.startswith("fct_")]


def read_mart(warehouse: Warehouse, name: str) -> pl.DataFrame:
    """A mart sorted by its key, timestamps in UTC (engines name the zone differently)."""
    frame = warehouse.query(f"SELECT * FROM marts.{name}").sort(MART_KEYS[name])
    return frame.with_columns(
        pl.col(column).dt.convert_time_zone("UTC")
        for column, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone
    )


@contextmanager
def postgres_schema_suffix(dsn: str = POSTGRES_DSN) -> Iterator[str]:
    """A fresh schema suffix for one test run; every schema ending in it is dropped afterwards."""
    suffix = f"_t{uuid.uuid4().hex[:10]}"
    try:
        yield suffix
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            schemas = conn.execute(
                "SELECT schema_name FROM information_schema.schemata "
                "WHERE right(schema_name, %s) = %s",
                [len(suffix), suffix],
            ).fetchall()
            for (schema,) in schemas:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
