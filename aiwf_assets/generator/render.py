"""Turn simulated events into the channels' landing shapes (docs/DATA_CONTRACTS.md).

Each source system spells things its own way: the web shop keys orders by the CRM
e-mail (typed by hand, so case and whitespace vary), app and tills by the loyalty
id, the service desk by e-mail and/or phone in several formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
import pyarrow as pa

from aiwf_assets.generator import params as P
from aiwf_assets.generator.calendar import Calendar
from aiwf_assets.generator.simulate import Orders, Sessions, Tickets
from aiwf_assets.generator.world import World

EMAIL_VARIANTS = (0.7, 0.14, 0.04, 0.06, 0.06)  # as stored, Title.Case, UPPER, "x ", " x"
APP_LOYALTY_VARIANTS = (0.6, 0.2, 0.15, 0.05)  # as stored, lower, "x ", " x"
POS_LOYALTY_VARIANTS = (0.9, 0.04, 0.04, 0.02)
GERMAN_PHONE_VARIANTS = (0.4, 0.35, 0.25)  # "+49 151 …", "0151-…", "+49151…"

SESSION_SCHEMA = pa.schema(
    [
        ("session_id", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("email", pa.string()),
        ("device", pa.string()),
        ("pages_viewed", pa.int32()),
        ("product_views", pa.int32()),
        ("added_to_cart", pa.int32()),
        ("duration_s", pa.int32()),
    ]
)


@dataclass(frozen=True)
class Rendered:
    """One channel-day in landing shape, plus what fault accounting needs per record."""

    channel: str
    frame: pl.DataFrame
    lines_per_record: np.ndarray  # order lines in each record (web: items), else 1
    order_key: np.ndarray  # which order (or record) each record belongs to


@dataclass
class IdCounters:
    """Running id numbers: ids grow across days in event-time order, like real systems."""

    web: int = 0
    app: int = 0
    txn: int = 0
    ticket: int = 0
    session: int = 0


def day_epoch(day: date) -> int:
    return (day - date(1970, 1, 1)).days * 86400


def _ids(prefix: str, first: int, n: int, width: int) -> pl.Series:
    numbers = pl.Series(np.arange(first + 1, first + n + 1, dtype=np.int64))
    return pl.select(
        pl.concat_str([pl.lit(prefix), pl.lit(numbers).cast(pl.String).str.zfill(width)])
    ).to_series()


def _where(mask: np.ndarray, values: pl.Series) -> pl.Series:
    """values where mask holds, null elsewhere."""
    return pl.select(pl.when(pl.lit(pl.Series(mask))).then(pl.lit(values))).to_series()


def _strftime(epoch_seconds: np.ndarray, fmt: str) -> pl.Series:
    return pl.from_epoch(pl.Series(epoch_seconds.astype(np.int64)), time_unit="s").dt.strftime(fmt)


def _gather(series: pl.Series, idx: np.ndarray) -> pl.Series:
    """Entity strings for idx; idx < 0 (anonymous) maps to the trailing null entry."""
    return series.gather(np.where(idx >= 0, idx, len(series) - 1))


def _typed_by_hand(lower: pl.Series, title: pl.Series, variant: np.ndarray) -> pl.Series:
    frame = pl.DataFrame({"lower": lower, "title": title, "v": variant})
    v, low = pl.col("v"), pl.col("lower")
    return frame.select(
        pl.when((v == 1) & pl.col("title").is_not_null())
        .then(pl.col("title"))
        .when(v == 2)
        .then(low.str.to_uppercase())
        .when(v == 3)
        .then(low + " ")
        .when(v == 4)
        .then(" " + low)
        .otherwise(low)
    ).to_series()


def _loyalty_spelling(ids: pl.Series, variant: np.ndarray) -> pl.Series:
    frame = pl.DataFrame({"id": ids, "v": variant})
    v, col = pl.col("v"), pl.col("id")
    return frame.select(
        pl.when(v == 1)
        .then(col.str.to_lowercase())
        .when(v == 2)
        .then(col + " ")
        .when(v == 3)
        .then(" " + col)
        .otherwise(col)
    ).to_series()


def _variant(rng: np.random.Generator, n: int, probs: tuple[float, ...]) -> np.ndarray:
    p = np.array(probs)
    return rng.choice(len(p), size=n, p=p / p.sum())


def _rates_to_eur(currency: np.ndarray) -> np.ndarray:
    return np.array([P.RATE_TO_EUR[c] for c in P.CURRENCIES])[currency]


def _line_prices(o: Orders, order_of_line: np.ndarray) -> np.ndarray:
    return np.round(o.unit_price_eur / _rates_to_eur(o.currency[order_of_line]), 2)


def render_web_orders(
    o: Orders, world: World, cal: Calendar, day: int, first_id: int, rng: np.random.Generator
) -> Rendered:
    n = len(o.customer)
    n_lines = o.n_lines_per_order
    order_of_line = np.repeat(np.arange(n), n_lines)
    price = _line_prices(o, order_of_line)
    total = np.bincount(order_of_line, weights=price * o.qty, minlength=n)
    has_promo = np.bincount(order_of_line, weights=o.promo, minlength=n) > 0
    campaign = cal.campaign_on(day)
    rate = _rates_to_eur(o.currency)
    shipping = np.where(
        total * rate >= P.FREE_SHIPPING_FROM, 0.0, np.round(P.SHIPPING_FEE / rate, 2)
    )
    c = world.customers
    lower = pl.select(
        pl.coalesce(
            pl.lit(_gather(c.email, o.customer)), pl.lit(_gather(world.guests.email, o.guest))
        )
    ).to_series()
    email = _typed_by_hand(
        lower, _gather(c.email_title, o.customer), _variant(rng, n, EMAIL_VARIANTS)
    )
    items = pa.ListArray.from_arrays(
        pa.array(o.line_offsets.astype(np.int32)),
        pa.StructArray.from_arrays(
            [
                world.products.sku.gather(o.product).to_arrow(),
                pa.array(o.qty.astype(np.int64)),
                pa.array(price),
            ],
            names=["sku", "qty", "unit_price"],
        ),
    )
    # campaigns never overlap, so an order with a discounted line used today's code
    code = campaign.code if campaign else None
    promo_code = _where(has_promo, pl.Series([code] * n, dtype=pl.String))
    frame = pl.DataFrame(
        {
            "order_id": _ids("W", first_id, n, 8),
            "created_at": _strftime(day_epoch(cal.date(day)) + o.seconds, "%Y-%m-%dT%H:%M:%SZ"),
            "email": email,
            "currency": pl.Series(P.CURRENCIES).gather(o.currency),
            "promo_code": promo_code,
            "shipping": shipping,
            "items": pl.Series("items", items),
        }
    )
    return Rendered(P.WEB_ORDERS, frame, n_lines, np.arange(n))


def render_app_orders(
    o: Orders, world: World, cal: Calendar, day: int, first_id: int, rng: np.random.Generator,
    drifted: bool,
) -> Rendered:  # fmt: skip
    n = len(o.customer)
    n_lines = o.n_lines_per_order
    order_of_line = np.repeat(np.arange(n), n_lines)
    line_no = np.arange(len(order_of_line)) - o.line_offsets[order_of_line] + 1
    loyalty = _loyalty_spelling(
        _gather(world.customers.loyalty_id, o.customer),
        _variant(rng, n, APP_LOYALTY_VARIANTS),
    )
    currency = pl.Series(P.CURRENCIES).gather(o.currency)
    frame = pl.DataFrame(
        {
            "orderRef": _ids("A", first_id, n, 8).gather(order_of_line),
            "lineNo": line_no.astype(np.int64),
            "ts": (day_epoch(cal.date(day)) + o.seconds)[order_of_line].astype(np.int64),
            "loyaltyId": loyalty.gather(order_of_line),
            "productCode": world.products.app_code.gather(o.product),
            "quantity": o.qty.astype(np.int64),
            "price": _line_prices(o, order_of_line),
            "currencyCode": currency.gather(order_of_line),
            "promo": o.promo,
        }
    )
    if drifted:
        # a new app release renamed a field and added its version to every line
        versions = pl.Series(P.APP_VERSIONS).gather(rng.integers(len(P.APP_VERSIONS), size=n))
        frame = frame.rename(P.SCHEMA_DRIFT_RENAMES).with_columns(
            versions.gather(order_of_line).alias(P.SCHEMA_DRIFT_EXTRA)
        )
    return Rendered(P.APP_ORDERS, frame, np.ones(len(order_of_line), dtype=np.int64), order_of_line)


def render_pos(
    o: Orders, world: World, cal: Calendar, day: int, first_id: int, rng: np.random.Generator
) -> Rendered:
    n = len(o.customer)
    order_of_line = np.repeat(np.arange(n), o.n_lines_per_order)
    c = world.customers
    # customers without a card are as anonymous at the till as cash buyers
    card = np.where((o.customer >= 0) & c.has_loyalty[np.maximum(o.customer, 0)], o.customer, -1)
    loyalty = _loyalty_spelling(_gather(c.loyalty_id, card), _variant(rng, n, POS_LOYALTY_VARIANTS))
    frame = pl.DataFrame(
        {
            "txn_id": _ids("T", first_id, n, 8).gather(order_of_line),
            "store_code": world.stores.code.gather(o.store).gather(order_of_line),
            "local_time": _strftime(
                day_epoch(cal.date(day)) + o.seconds, "%d/%m/%Y %H:%M:%S"
            ).gather(order_of_line),
            "loyalty_card": loyalty.gather(order_of_line),
            "sku": world.products.sku.gather(o.product),
            "qty": o.qty.astype(np.int64),
            "unit_price": o.unit_price_eur,
            "payment": pl.Series(P.PAYMENTS).gather(o.payment).gather(order_of_line),
        }
    )
    return Rendered(
        P.POS_TRANSACTIONS, frame, np.ones(len(order_of_line), dtype=np.int64), order_of_line
    )


def _ticket_phone(world: World, customer: np.ndarray, rng: np.random.Generator) -> pl.Series:
    c = world.customers
    variant = _variant(rng, len(customer), GERMAN_PHONE_VARIANTS)
    # only German numbers get the national "0151-…" spelling, so they stay resolvable
    variant = np.where(~c.german_phone[customer] & (variant == 1), 0, variant)
    frame = pl.DataFrame(
        {
            "intl": _gather(c.phone_intl, customer),
            "national": _gather(c.phone_national, customer),
            "compact": _gather(c.phone_compact, customer),
            "v": variant,
        }
    )
    v = pl.col("v")
    return frame.select(
        pl.when(v == 1)
        .then(pl.col("national"))
        .when(v == 2)
        .then(pl.col("compact"))
        .otherwise(pl.col("intl"))
    ).to_series()


def render_tickets(
    t: Tickets, world: World, cal: Calendar, day: int, first_id: int, rng: np.random.Generator
) -> Rendered:
    n = len(t.customer)
    c = world.customers
    email = _typed_by_hand(
        _gather(c.email, t.customer),
        _gather(c.email_title, t.customer),
        _variant(rng, n, EMAIL_VARIANTS),
    )
    phone = _ticket_phone(world, t.customer, rng)
    frame = pl.DataFrame(
        {
            "ticket_id": _ids("K", first_id, n, 8),
            "opened_at": _strftime(day_epoch(cal.date(day)) + t.seconds, "%Y-%m-%d %H:%M:%S"),
            "customer_email": _where(t.id_mode != 1, email),
            "customer_phone": _where(t.id_mode != 0, phone),
            "category": pl.Series(P.TICKET_CATEGORIES).gather(t.category),
            "contact_channel": pl.Series(P.CONTACT_CHANNELS).gather(t.contact),
            "status": pl.Series(P.TICKET_STATUSES).gather(t.status),
            "satisfaction": _where(t.satisfaction > 0, pl.Series(t.satisfaction.astype(np.int64))),
        }
    )
    return Rendered(P.CRM_TICKETS, frame, np.ones(n, dtype=np.int64), np.arange(n))


def render_sessions(s: Sessions, world: World, cal: Calendar, day: int, first_id: int) -> Rendered:
    n = len(s.customer)
    logged = np.where(s.logged_in, s.customer, -1)
    started = (day_epoch(cal.date(day)) + s.seconds).astype(np.int64) * 1_000_000
    frame = pl.DataFrame(
        {
            "session_id": _ids("WS", first_id, n, 9),
            "started_at": pl.Series(started).cast(pl.Datetime("us", "UTC")),
            "email": _gather(world.customers.email, logged),
            "device": pl.Series(P.DEVICES).gather(s.device),
            "pages_viewed": s.pages.astype(np.int32),
            "product_views": s.product_views.astype(np.int32),
            "added_to_cart": s.added_to_cart.astype(np.int32),
            "duration_s": s.duration.astype(np.int32),
        }
    )
    return Rendered(P.WEB_SESSIONS, frame, np.ones(n, dtype=np.int64), np.arange(n))
