"""Top-level cleaning functions: raw frames in, cleaned tables + quarantine + accounting out.

Pure: no I/O, no clock, no environment. The Dagster assets read raw
partitions, call these and write the results.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import polars as pl

from aiwf_assets.cleaning.pii import hmac_series, key_of
from aiwf_assets.cleaning.rules import return_mark
from aiwf_assets.cleaning.transforms import (
    ACCOUNTING_SCHEMA,
    IDENTITY_SCHEMA,
    QUARANTINE_SCHEMA,
    CleanResult,
    SourceOutcome,
    clean_source,
    identifier_hashes,
    known_identities,
    resolve_customer_keys,
)
from aiwf_assets.ingest.spec import PiiKind, SourcesConfig, SourceSpec, load_sources
from aiwf_assets.ingest.timestamps import UTC_DTYPE

ORDER_LINES_SCHEMA = pl.Schema(
    {
        "order_id": pl.String(),
        "line_number": pl.Int64(),
        "channel": pl.String(),
        "customer_key": pl.String(),
        "ordered_at": UTC_DTYPE,
        "order_date": pl.Date(),
        "sku": pl.String(),
        "line_kind": pl.String(),
        "is_return": pl.Boolean(),
        "original_order_id": pl.String(),
        "quantity": pl.Int64(),
        "unit_price": pl.Float64(),
        "line_amount": pl.Float64(),
        "currency": pl.String(),
        "line_amount_source": pl.Float64(),
        "is_promo": pl.Boolean(),
        "source_file": pl.String(),
        "source_row": pl.Int64(),
    }
)
ORDERS_SCHEMA = pl.Schema(
    {
        "order_id": pl.String(),
        "channel": pl.String(),
        "customer_key": pl.String(),
        "ordered_at": UTC_DTYPE,
        "order_date": pl.Date(),
        "store_code": pl.String(),
        "n_lines": pl.Int64(),
        "is_return": pl.Boolean(),
        "gross_amount": pl.Float64(),
        "returns_amount": pl.Float64(),
        "order_total": pl.Float64(),
        "has_promo": pl.Boolean(),
        "source_file": pl.String(),
    }
)
INTERACTIONS_SCHEMA = pl.Schema(
    {
        "interaction_id": pl.String(),
        "kind": pl.String(),
        "customer_key": pl.String(),
        "occurred_at": UTC_DTYPE,
        "interaction_date": pl.Date(),
        "subtype": pl.String(),
        "contact_channel": pl.String(),
        "satisfaction": pl.Int64(),
        "pages_viewed": pl.Int64(),
        "product_views": pl.Int64(),
        "added_to_cart": pl.Int64(),
        "duration_s": pl.Int64(),
        "source_file": pl.String(),
        "source_row": pl.Int64(),
    }
)
CUSTOMERS_SCHEMA = pl.Schema(
    {
        "customer_key": pl.String(),
        "crm_id_hash": pl.String(),
        "email_hash": pl.String(),
        "phone_hash": pl.String(),
        "loyalty_hash": pl.String(),
        "signup_date": pl.Date(),
        "country": pl.String(),
        "birth_year": pl.Int64(),
    }
)
PRODUCTS_SCHEMA = pl.Schema(
    {
        "sku": pl.String(),
        "name": pl.String(),
        "category": pl.String(),
        "subcategory": pl.String(),
        "list_price": pl.Float64(),
    }
)
EXCHANGE_RATES_SCHEMA = pl.Schema(
    {"date": pl.Date(), "currency": pl.String(), "rate_to_eur": pl.Float64()}
)
# Lines of a day converted at the constant rate although a dated rate file is declared
RATE_FALLBACK_SCHEMA = pl.Schema(
    {
        "order_date": pl.Date(),
        "currency": pl.String(),
        "lines": pl.Int64(),
        "rate_to_eur": pl.Float64(),
    }
)
STORES_SCHEMA = pl.Schema(
    {
        "store_code": pl.String(),
        "name": pl.String(),
        "city": pl.String(),
        "region": pl.String(),
        "opened_date": pl.Date(),
    }
)
PROMOTION_PLAN_SCHEMA = pl.Schema(
    {
        "campaign_code": pl.String(),
        "published_on": pl.Date(),
        "start_date": pl.Date(),
        "end_date": pl.Date(),
        "discount_pct": pl.Float64(),
        "categories": pl.String(),
    }
)
# order lines before the orders aggregation, which needs the store (and the fallback
# report, which needs to know which lines found a dated rate)
_LINES_WITH_STORE = pl.Schema(
    {**ORDER_LINES_SCHEMA, "store_code": pl.String(), "_dated_rate": pl.Boolean()}
)
# Identifier columns in the order they decide a customer_key (first known one wins).
_IDENTIFIERS: dict[str, PiiKind] = {
    "customer_email": "email",
    "loyalty_id": "loyalty",
    "customer_phone": "phone",
}
# (interaction kind, the contract's id column, its timestamp, its subtype column)
_INTERACTION_KINDS = {
    "tickets": ("ticket", "ticket_id", "opened_at", "category"),
    "sessions": ("session", "session_id", "started_at", "device"),
}


# --------------------------------------------------------------------------- daily


def clean_orders_day(
    raw_by_channel: Mapping[str, pl.DataFrame],
    identity: pl.DataFrame,
    key: bytes,
    partition_date: dt.date,
    specs: SourcesConfig,
    dated_rates: pl.DataFrame | None = None,
) -> CleanResult:
    """Clean one day of every order source (keys: source names, e.g. web_orders).

    Any source declared with `contract: order_lines` is accepted. Tables:
    `order_lines` and `orders` (aggregated from the cleaned lines, so an order
    whose lines were partly quarantined keeps its valid lines).

    `dated_rates` (EXCHANGE_RATES_SCHEMA: the cleaned exchange_rates file, when one is
    declared): a line is converted at its currency's rate for its order_date (the UTC day
    of ordered_at), else at the constant `currency_rates_to_eur` rate; `rate_fallbacks`
    then counts the non-EUR lines that fell back, per day and currency.
    """
    outcomes = {
        name: clean_source(
            raw,
            _spec_for(specs, name, "order_lines"),
            key,
            partition_date=partition_date,
            currency_rates=specs.currency_rates_to_eur,
        )
        for name, raw in raw_by_channel.items()
    }
    hashes, known = _identify(outcomes, identity, key, specs)
    lines = [
        _order_lines(
            o.valid, specs[name], known, key, specs.currency_rates_to_eur, hashes[name],
            dated_rates,
        )
        for name, o in outcomes.items()
    ]
    order_lines = _concat(lines, _LINES_WITH_STORE).sort("order_id", "line_number")
    return CleanResult(
        tables={
            "order_lines": order_lines.drop("store_code", "_dated_rate"),
            "orders": _orders(order_lines),
        },
        quarantine=_concat([o.quarantine for o in outcomes.values()], QUARANTINE_SCHEMA),
        accounting=_concat([o.accounting for o in outcomes.values()], ACCOUNTING_SCHEMA),
        rate_fallbacks=(
            None if dated_rates is None
            else rate_fallbacks(order_lines, specs.currency_rates_to_eur)
        ),
    )


def rate_fallbacks(lines: pl.DataFrame, rates: Mapping[str, float]) -> pl.DataFrame:
    """Non-EUR lines converted at the constant rate (no dated rate for their day and
    currency), per order_date and currency, with the rate used."""
    fell_back = lines.filter(~pl.col("_dated_rate"), pl.col("currency") != "EUR")
    return (
        fell_back.group_by("order_date", "currency")
        .agg(pl.len().cast(pl.Int64).alias("lines"))
        .with_columns(
            pl.col("currency").replace_strict(rates, return_dtype=pl.Float64).alias("rate_to_eur")
        )
        .select(list(RATE_FALLBACK_SCHEMA))
        .cast(dict(RATE_FALLBACK_SCHEMA))
        .sort("order_date", "currency")
    )


def clean_interactions_day(
    raw_by_channel: Mapping[str, pl.DataFrame],
    identity: pl.DataFrame,
    key: bytes,
    partition_date: dt.date,
    specs: SourcesConfig,
) -> CleanResult:
    """Clean one day of ticket and session sources into the `interactions` table."""
    outcomes: dict[str, SourceOutcome] = {}
    for name, raw in raw_by_channel.items():
        spec = _spec_for(specs, name, *_INTERACTION_KINDS)
        outcomes[name] = clean_source(raw, spec, key, partition_date=partition_date)
    hashes, known = _identify(outcomes, identity, key, specs)
    frames = [
        _interactions(o.valid, specs[name], known, key, hashes[name])
        for name, o in outcomes.items()
    ]
    interactions = _concat(frames, INTERACTIONS_SCHEMA).sort("interaction_id")
    return CleanResult(
        tables={"interactions": interactions},
        quarantine=_concat([o.quarantine for o in outcomes.values()], QUARANTINE_SCHEMA),
        accounting=_concat([o.accounting for o in outcomes.values()], ACCOUNTING_SCHEMA),
    )


def _identify(
    outcomes: Mapping[str, SourceOutcome], identity: pl.DataFrame, key: bytes,
    specs: SourcesConfig,
) -> tuple[dict[str, dict[str, pl.Series]], pl.DataFrame]:
    """Identifier hashes of each source's valid rows, and the identity rows they match
    (one pass over the identity table for the day, not one per source)."""
    hashes = {
        name: identifier_hashes(o.valid, _declared(specs[name], _IDENTIFIERS), key)
        for name, o in outcomes.items()
    }
    known = known_identities(
        identity, [h for by_column in hashes.values() for h in by_column.values()]
    )
    return hashes, known


def _order_lines(
    valid: pl.DataFrame,
    spec: SourceSpec,
    identity: pl.DataFrame,
    key: bytes,
    rates: Mapping[str, float],
    hashes: Mapping[str, pl.Series] | None = None,
    dated_rates: pl.DataFrame | None = None,
) -> pl.DataFrame:
    # store_code rides along for the orders table; clean_orders_day drops it from lines
    customer_key = resolve_customer_keys(
        valid, _declared(spec, _IDENTIFIERS), identity, key, hashes=hashes
    )
    declared = {c.name for c in spec.all_columns}
    no = pl.lit(False)
    promo_flag = pl.col("promo_flag").fill_null(False) if "promo_flag" in declared else no
    promo_code = pl.col("promo_code").is_not_null() if "promo_code" in declared else no
    is_return = return_mark(spec)
    # returns are signed lines: their quantity (and so their amount) is negative
    quantity = pl.when(is_return).then(-pl.col("quantity").abs()).otherwise(pl.col("quantity"))
    # Exact money: quantity x unit price in the source currency (rounded only to shed the
    # binary noise of the parsed price), converted once at the line's rate and not rounded
    # per line, so any total rounds to the same cent as the source file's total.
    amount_source = (quantity * pl.col("unit_price")).round(6)
    # the line's rate: its currency's dated rate for its order day, else the constant one
    constant = pl.col("currency").replace_strict(rates, return_dtype=pl.Float64)
    valid = _with_dated_rate(valid, dated_rates)
    rate = pl.coalesce(pl.col("_rate"), constant)
    original = (
        pl.lit(f"{spec.channel}:") + pl.col("original_order_id")
        if "original_order_id" in declared
        else pl.lit(None, pl.String)
    )
    kinds = spec.non_merchandise
    line_kind = (
        pl.col("sku").replace_strict(kinds, default="product", return_dtype=pl.String)
        if kinds
        else pl.lit("product")
    )
    return valid.with_columns(customer_key).select(
        (pl.lit(f"{spec.channel}:") + pl.col("order_id")).alias("order_id"),
        pl.col("line_number"),
        pl.lit(spec.channel).alias("channel"),
        pl.col("customer_key"),
        pl.col("ordered_at"),
        pl.col("ordered_at").dt.date().alias("order_date"),
        pl.col("sku"),
        line_kind.alias("line_kind"),
        is_return.alias("is_return"),
        original.alias("original_order_id"),
        quantity.alias("quantity"),
        (pl.col("unit_price") * rate).alias("unit_price"),
        (amount_source * rate).alias("line_amount"),
        pl.col("currency"),
        amount_source.alias("line_amount_source"),
        (promo_flag | promo_code).alias("is_promo"),
        pl.col("_source_file").alias("source_file"),
        pl.col("_source_row").alias("source_row"),
        (pl.col("store_code") if "store_code" in declared else pl.lit(None, pl.String)).alias(
            "store_code"
        ),
        pl.col("_rate").is_not_null().alias("_dated_rate"),
    )


def _with_dated_rate(valid: pl.DataFrame, dated_rates: pl.DataFrame | None) -> pl.DataFrame:
    """`valid` with `_rate`: the dated rate of the line's currency on its UTC order day
    (null without one). Row order is kept; the rates are unique by (date, currency)."""
    if dated_rates is None or dated_rates.is_empty():
        return valid.with_columns(pl.lit(None, pl.Float64).alias("_rate"))
    rates = dated_rates.select(
        pl.col("date").cast(pl.Date).alias("_rate_day"),
        pl.col("currency").cast(pl.String),
        pl.col("rate_to_eur").cast(pl.Float64).alias("_rate"),
    ).unique(["_rate_day", "currency"], keep="none")  # an ambiguous day has no dated rate
    return (
        valid.with_columns(pl.col("ordered_at").dt.date().alias("_rate_day"))
        .join(rates, on=["_rate_day", "currency"], how="left", maintain_order="left")
        .drop("_rate_day")
    )


def _orders(lines: pl.DataFrame) -> pl.DataFrame:
    return (
        lines.sort("order_id", "line_number")
        .group_by("order_id", maintain_order=True)
        .agg(
            pl.col("channel").first(),
            pl.col("customer_key").drop_nulls().first(),
            pl.col("ordered_at").min(),
            pl.col("store_code").drop_nulls().first(),
            pl.len().cast(pl.Int64).alias("n_lines"),
            pl.col("is_return").all(),
            pl.col("line_amount").filter(~pl.col("is_return")).sum().alias("gross_amount"),
            pl.col("line_amount").filter(pl.col("is_return")).sum().abs().alias("returns_amount"),
            pl.col("line_amount").sum().alias("order_total"),
            pl.col("is_promo").any().alias("has_promo"),
            pl.col("source_file").first(),
        )
        .with_columns(pl.col("ordered_at").dt.date().alias("order_date"))
        .select(list(ORDERS_SCHEMA))
        .cast(dict(ORDERS_SCHEMA))
    )


def _interactions(
    valid: pl.DataFrame,
    spec: SourceSpec,
    identity: pl.DataFrame,
    key: bytes,
    hashes: Mapping[str, pl.Series] | None = None,
) -> pl.DataFrame:
    kind, id_column, time_column, subtype = _INTERACTION_KINDS[spec.contract.name]
    customer_key = resolve_customer_keys(
        valid, _declared(spec, _IDENTIFIERS), identity, key, hashes=hashes
    )
    declared = {c.name for c in spec.all_columns}

    def optional(column: str) -> pl.Expr:
        dtype = INTERACTIONS_SCHEMA[column]
        return (pl.col(column) if column in declared else pl.lit(None)).cast(dtype).alias(column)

    return valid.with_columns(customer_key).select(
        (pl.lit(f"{kind}:") + pl.col(id_column)).alias("interaction_id"),
        pl.lit(kind).alias("kind"),
        pl.col("customer_key"),
        pl.col(time_column).alias("occurred_at"),
        pl.col(time_column).dt.date().alias("interaction_date"),
        pl.col(subtype).alias("subtype"),
        *(
            optional(c)
            for c in (
                "contact_channel",
                "satisfaction",
                "pages_viewed",
                "product_views",
                "added_to_cart",
                "duration_s",
            )
        ),
        pl.col("_source_file").alias("source_file"),
        pl.col("_source_row").alias("source_row"),
    )


# --------------------------------------------------------------------------- reference


def clean_reference_customers(
    raw: pl.DataFrame, key: bytes, spec: SourceSpec | None = None
) -> CleanResult:
    """CRM snapshot -> `customers` (pseudonymised) and `customer_identity`.

    customer_identity maps each identifier hash to one customer_key; when two
    CRM customers share an identifier, the one who signed up first keeps it (then the
    smaller crm_id): decided by the data, so the export's row order does not matter.
    A customer listed on several rows that differ only in e-mail, phone or loyalty id
    is one customer with all of those identifiers (`customers` shows the smallest hash
    of each kind); rows that differ in anything else are a key clash (quarantined).
    """
    spec = spec or load_sources()["customers"]
    outcome = clean_source(raw, spec, key, partition_date=None)
    seniority = [c for c in ("signup_date", "crm_id") if c in outcome.valid.columns]
    valid = outcome.valid.sort(seniority, nulls_last=True)
    crm_hash = hmac_series(valid.get_column("crm_id"), "crm:", key)
    ids = identifier_hashes(
        valid, {"email": "email", "phone": "phone", "loyalty_id": "loyalty"}, key
    )
    null = pl.Series([None] * valid.height, dtype=pl.String)
    listed = valid.select(
        key_of(pl.lit(crm_hash)).alias("customer_key"),
        pl.lit(crm_hash).alias("crm_id_hash"),
        pl.lit(ids.get("email", null)).alias("email_hash"),
        pl.lit(ids.get("phone", null)).alias("phone_hash"),
        pl.lit(ids.get("loyalty_id", null)).alias("loyalty_hash"),
        *(
            (pl.col(c) if c in valid.columns else pl.lit(None)).cast(CUSTOMERS_SCHEMA[c]).alias(c)
            for c in ("signup_date", "country", "birth_year")
        ),
    )
    customers = listed.group_by("customer_key", "crm_id_hash", maintain_order=True).agg(
        pl.col("email_hash", "phone_hash", "loyalty_hash").min(),
        pl.col("signup_date", "country", "birth_year").first(),
    )
    identity = pl.concat(
        [
            listed.select(
                pl.col(column).alias("identifier_hash"),
                pl.lit(kind).alias("identifier_kind"),
                pl.col("customer_key"),
            )
            for column, kind in (
                ("email_hash", "email"),
                ("phone_hash", "phone"),
                ("loyalty_hash", "loyalty"),
            )
        ]
    )
    identity = identity.filter(pl.col("identifier_hash").is_not_null()).unique(
        "identifier_hash", keep="first", maintain_order=True
    )
    return CleanResult(
        tables={
            "customers": customers.sort("customer_key"),
            "customer_identity": identity.cast(dict(IDENTITY_SCHEMA)).sort(
                "identifier_kind", "identifier_hash"
            ),
        },
        quarantine=outcome.quarantine,
        accounting=outcome.accounting,
    )


def clean_reference_products(raw: pl.DataFrame, spec: SourceSpec | None = None) -> CleanResult:
    """ERP catalog -> `products` (canonical SKUs, EUR list prices)."""
    return _reference(raw, spec or load_sources()["products"], "products", PRODUCTS_SCHEMA)


def clean_reference_stores(raw: pl.DataFrame, spec: SourceSpec | None = None) -> CleanResult:
    """Store list -> `stores`."""
    return _reference(raw, spec or load_sources()["stores"], "stores", STORES_SCHEMA)


def clean_reference_promotion_plan(
    raw: pl.DataFrame, spec: SourceSpec | None = None
) -> CleanResult:
    """Campaign calendar -> `promotion_plan`: one row per planned campaign, categories
    lower case, `;`-joined, sorted and without repeats (the file's spelling does not
    matter). Rows whose dates or discount cannot be a plan are quarantined with the reason."""
    result = _reference(
        raw, spec or load_sources()["promotion_plan"], "promotion_plan", PROMOTION_PLAN_SCHEMA
    )
    plan = result.tables["promotion_plan"].with_columns(
        categories=pl.col("categories")
        .str.split(";")
        .list.eval(pl.element().str.strip_chars().filter(pl.element() != ""))
        .list.unique()
        .list.sort()
        .list.join(";")
    )
    return CleanResult(
        tables={"promotion_plan": plan.sort("start_date", "campaign_code")},
        quarantine=result.quarantine,
        accounting=result.accounting,
    )


def clean_reference_exchange_rates(raw: pl.DataFrame, spec: SourceSpec) -> CleanResult:
    """Dated rates file -> `exchange_rates` (date, currency, rate_to_eur)."""
    result = _reference(raw, spec, "exchange_rates", EXCHANGE_RATES_SCHEMA)
    rates = result.tables["exchange_rates"].sort("date", "currency")
    return CleanResult({"exchange_rates": rates}, result.quarantine, result.accounting)


def no_reference(*tables: str) -> CleanResult:
    """Empty reference tables, for a reference source that is switched off (it never
    delivers): published as such, so what reads them finds them."""
    schemas = {
        "customers": CUSTOMERS_SCHEMA,
        "customer_identity": IDENTITY_SCHEMA,
        "products": PRODUCTS_SCHEMA,
        "stores": STORES_SCHEMA,
        "exchange_rates": EXCHANGE_RATES_SCHEMA,
        "promotion_plan": PROMOTION_PLAN_SCHEMA,
    }
    return CleanResult(
        tables={t: schemas[t].to_frame() for t in tables},
        quarantine=QUARANTINE_SCHEMA.to_frame(),
        accounting=ACCOUNTING_SCHEMA.to_frame(),
    )


def _reference(raw: pl.DataFrame, spec: SourceSpec, table: str, schema: pl.Schema) -> CleanResult:
    # products and stores carry no PII: there is nothing to hash, so no key
    outcome = clean_source(raw, spec, b"", partition_date=None)
    frame = outcome.valid.select(
        (pl.col(c) if c in outcome.valid.columns else pl.lit(None)).cast(t).alias(c)
        for c, t in schema.items()
    )
    return CleanResult(
        tables={table: frame.sort(next(iter(schema)))},
        quarantine=outcome.quarantine,
        accounting=outcome.accounting,
    )


# --------------------------------------------------------------------------- helpers


def _spec_for(specs: SourcesConfig, name: str, *contracts: str) -> SourceSpec:
    spec = specs[name]
    if spec.contract.name not in contracts:
        raise ValueError(
            f"source {name!r} maps onto contract {spec.contract.name}, "
            f"expected {' or '.join(contracts)}"
        )
    return spec


def _declared(spec: SourceSpec, identifiers: Mapping[str, PiiKind]) -> dict[str, PiiKind]:
    declared = {c.name for c in spec.all_columns}
    return {c: k for c, k in identifiers.items() if c in declared}


def _concat(frames: list[pl.DataFrame], schema: pl.Schema) -> pl.DataFrame:
    conformed = [f.select(list(schema)).cast(dict(schema)) for f in frames]
    return pl.concat([schema.to_frame(), *conformed])


def interaction_kind(contract: str) -> str:
    """The `kind` of interactions a tickets or sessions source's rows become."""
    return _INTERACTION_KINDS[contract][0]
