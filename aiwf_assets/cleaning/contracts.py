"""Pandera contracts of the cleaned tables, and a helper that reports failures readably.

The models check types, nullability, key uniqueness, ranges and domains, the
derived columns (dates, amounts, id prefixes) and that no string column holds
clear PII (an `@`, a phone number, a loyalty id). Extra columns are allowed
(the warehouse adds `partition_date`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import dagster as dg
import pandera.polars as pa
import polars as pl

from aiwf_assets.ingest.spec import (
    CONTACT_CHANNELS,
    DEVICES,
    TICKET_CATEGORIES,
    SourcesConfig,
    load_sources,
)

HEX16 = r"^[0-9a-f]{16}$"
HEX64 = r"^[0-9a-f]{64}$"
NAME = r"^[a-z][a-z0-9_]*$"
UTC = pl.Datetime("us", "UTC")
# Hash and key columns are hex and may look like digit runs: the phone pattern skips them.
_HASH_COLUMN = r"(^customer_key$|_hash$)"
_PHONE_VALUE = r"^\+?\d[\d \-/()]{7,}$"
_LOYALTY_VALUE = r"^[Ll]\d{5,}$"
_EXAMPLES = 5


def _clear_pii(frame: pl.LazyFrame) -> pl.Expr:
    """True for rows where some string column looks like an email, phone or loyalty id."""
    schema = frame.collect_schema()
    strings = [c for c, t in schema.items() if isinstance(t, pl.String)]
    found = [pl.col(c).str.contains("@", literal=True) for c in strings]
    found += [
        pl.col(c).str.contains(_PHONE_VALUE) | pl.col(c).str.contains(_LOYALTY_VALUE)
        for c in strings
        if not pl.Series([c]).str.contains(_HASH_COLUMN).item()
    ]
    return pl.any_horizontal(found).fill_null(False) if found else pl.lit(False)


class _Pseudonymised(pa.DataFrameModel):
    @pa.dataframe_check(name="no_clear_pii")
    def no_clear_pii(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_clear_pii(data.lazyframe).not_())

    class Config:
        strict = False


class OrderLines(_Pseudonymised):
    order_id: str = pa.Field(
        str_matches=r"^[a-z][a-z0-9_]*:\S+$",
        description="channel-prefixed order id (`web:…`, `app:…`, `pos:…`)",
    )
    line_number: int = pa.Field(
        ge=1, description="line within the order, derived from the line's content"
    )
    channel: str = pa.Field(
        str_matches=r"^[a-z][a-z0-9_]*$", description="sales channel the order came from"
    )
    customer_key: str = pa.Field(
        nullable=True,
        str_matches=HEX16,
        description="pseudonymous customer (HMAC); null when no identifier matched",
    )
    ordered_at: UTC = pa.Field(description="order time in UTC")
    order_date: pl.Date = pa.Field(description="UTC date of ordered_at")
    # the source's product-key pattern is checked per channel (validate_table)
    sku: str = pa.Field(description="product code by the source's rule (`SKU-00042`, `85123A`)")
    line_kind: str = pa.Field(
        str_matches=NAME, description="`product`, or a declared non-merchandise kind (postage, …)"
    )
    is_return: bool = pa.Field(description="a return or cancellation (then quantity < 0)")
    original_order_id: str = pa.Field(
        nullable=True,
        str_matches=r"^[a-z][a-z0-9_]*:\S+$",
        description="the order a return refers to, where the source says",
    )
    quantity: int = pa.Field(ne=0, description="units ordered; negative for returns")
    unit_price: float = pa.Field(
        description="price per unit in EUR (not rounded); > 0 on product lines, < 0 on a "
        "non-merchandise line taking money off (an order-level discount); 0 only on a line "
        "given away, where its source declares free_lines (validate_table checks per channel)",
    )
    line_amount: float = pa.Field(
        description="quantity × unit price in EUR, converted once, not rounded per line"
    )
    currency: str = pa.Field(str_matches=r"^[A-Z]{3}$", description="the source's currency")
    line_amount_source: float = pa.Field(description="quantity × unit price in that currency")
    is_promo: bool = pa.Field(description="a promotion applied to this line")
    source_file: str = pa.Field(description="landed file the row came from")
    source_row: int = pa.Field(ge=1, description="row (line) number in that file")

    class Config:
        unique = ["order_id", "line_number"]

    @pa.dataframe_check(name="order_date_is_ordered_at_date")
    def order_date_matches(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("order_date") == pl.col("ordered_at").dt.date())

    @pa.dataframe_check(name="line_amount_is_quantity_times_price")
    def amount_matches(cls, data: pa.PolarsData) -> pl.LazyFrame:
        # amounts are not rounded per line: they agree to far below a cent
        expected = pl.col("quantity") * pl.col("unit_price")
        return data.lazyframe.select((pl.col("line_amount") - expected).abs() < 1e-6)

    @pa.dataframe_check(name="product_prices_are_not_negative")
    def product_prices(cls, data: pa.PolarsData) -> pl.LazyFrame:
        # > 0 but on the lines given away of a source declaring free_lines (validate_table)
        product = pl.col("line_kind") == "product"
        return data.lazyframe.select(~product | (pl.col("unit_price") >= 0))

    @pa.dataframe_check(name="returns_are_negative_lines")
    def returns_signed(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("quantity") < 0) == pl.col("is_return"))

    @pa.dataframe_check(name="order_id_has_channel_prefix")
    def prefixed(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("order_id").str.starts_with(pl.col("channel") + ":"))


class Orders(_Pseudonymised):
    order_id: str = pa.Field(
        unique=True,
        str_matches=r"^[a-z][a-z0-9_]*:\S+$",
        description="channel-prefixed order id, one row per order",
    )
    channel: str = pa.Field(
        str_matches=r"^[a-z][a-z0-9_]*$", description="sales channel the order came from"
    )
    customer_key: str = pa.Field(
        nullable=True,
        str_matches=HEX16,
        description="pseudonymous customer (HMAC); null when no identifier matched",
    )
    ordered_at: UTC = pa.Field(description="order time in UTC")
    order_date: pl.Date = pa.Field(description="UTC date of ordered_at")
    store_code: str = pa.Field(nullable=True, description="store of a POS order; null online")
    n_lines: int = pa.Field(ge=1, description="order lines in the order")
    is_return: bool = pa.Field(description="every line is a return or cancellation")
    gross_amount: float = pa.Field(ge=0, description="the sale lines in EUR")
    returns_amount: float = pa.Field(ge=0, description="the return lines in EUR, positive")
    order_total: float = pa.Field(description="net: gross_amount - returns_amount, EUR")
    has_promo: bool = pa.Field(description="some line had a promotion")
    source_file: str = pa.Field(description="landed file the order came from")

    @pa.dataframe_check(name="order_total_is_gross_minus_returns")
    def net(cls, data: pa.PolarsData) -> pl.LazyFrame:
        net = pl.col("gross_amount") - pl.col("returns_amount")
        return data.lazyframe.select((pl.col("order_total") - net).abs() < 1e-6)

    @pa.dataframe_check(name="order_date_is_ordered_at_date")
    def order_date_matches(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("order_date") == pl.col("ordered_at").dt.date())

    @pa.dataframe_check(name="order_id_has_channel_prefix")
    def prefixed(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("order_id").str.starts_with(pl.col("channel") + ":"))


class Interactions(_Pseudonymised):
    interaction_id: str = pa.Field(
        unique=True,
        str_matches=r"^(ticket|session):\S+$",
        description="`ticket:…` or `session:…` id",
    )
    kind: str = pa.Field(
        isin=["ticket", "session"], description="ticket (service desk) or session (web/app)"
    )
    customer_key: str = pa.Field(
        nullable=True,
        str_matches=HEX16,
        description="pseudonymous customer (HMAC); null for anonymous sessions",
    )
    occurred_at: UTC = pa.Field(description="time in UTC")
    interaction_date: pl.Date = pa.Field(description="UTC date of occurred_at")
    subtype: str = pa.Field(
        isin=[*TICKET_CATEGORIES, *DEVICES], description="ticket category or session device"
    )
    contact_channel: str = pa.Field(
        nullable=True,
        isin=list(CONTACT_CHANNELS),
        description="how a ticket reached the service desk",
    )
    satisfaction: int = pa.Field(
        nullable=True,
        in_range={"min_value": 1, "max_value": 5},
        description="ticket satisfaction score 1-5",
    )
    pages_viewed: int = pa.Field(nullable=True, ge=0, description="pages viewed in a session")
    product_views: int = pa.Field(
        nullable=True, ge=0, description="product pages viewed in a session"
    )
    added_to_cart: int = pa.Field(
        nullable=True, ge=0, description="items added to the cart in a session"
    )
    duration_s: int = pa.Field(nullable=True, ge=0, description="session length in seconds")
    source_file: str = pa.Field(description="landed file the row came from")
    source_row: int = pa.Field(ge=1, description="row (line) number in that file")

    @pa.dataframe_check(name="interaction_date_is_occurred_at_date")
    def date_matches(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("interaction_date") == pl.col("occurred_at").dt.date())

    @pa.dataframe_check(name="subtype_fits_kind")
    def subtype_fits_kind(cls, data: pa.PolarsData) -> pl.LazyFrame:
        ticket = (pl.col("kind") == "ticket") & pl.col("subtype").is_in(TICKET_CATEGORIES)
        session = (pl.col("kind") == "session") & pl.col("subtype").is_in(DEVICES)
        prefix = pl.col("interaction_id").str.starts_with(pl.col("kind") + ":")
        return data.lazyframe.select((ticket | session) & prefix)


class Quarantine(_Pseudonymised):
    partition_date: pl.Date = pa.Field(description="delivery day of the file")
    channel: str = pa.Field(description="source the row came from")
    source_file: str = pa.Field(description="landed file the row came from")
    source_row: int = pa.Field(ge=1, description="row (line) number in that file")
    reasons: str = pa.Field(
        str_matches=r"^[^:;]+: ", description="why it was rejected: `column: problem; …`"
    )
    record: str = pa.Field(
        str_startswith="{", description="the rejected record as JSON, PII pseudonymised"
    )

    class Config:
        unique = ["channel", "source_file", "source_row", "record"]


class ReferenceQuarantine(Quarantine):
    partition_date: pl.Date = pa.Field(
        nullable=True, description="null: reference snapshots have no partition"
    )


class Customers(_Pseudonymised):
    customer_key: str = pa.Field(
        unique=True,
        str_matches=HEX16,
        description="pseudonymous customer key (prefix of crm_id_hash)",
    )
    crm_id_hash: str = pa.Field(unique=True, str_matches=HEX64, description="HMAC of the CRM id")
    email_hash: str = pa.Field(
        nullable=True, str_matches=HEX64, description="HMAC of the normalised email"
    )
    phone_hash: str = pa.Field(
        nullable=True, str_matches=HEX64, description="HMAC of the normalised phone number"
    )
    loyalty_hash: str = pa.Field(
        nullable=True, str_matches=HEX64, description="HMAC of the loyalty id"
    )
    signup_date: pl.Date = pa.Field(nullable=True, description="day the customer signed up")
    country: str = pa.Field(nullable=True, description="country code")
    birth_year: int = pa.Field(
        nullable=True, in_range={"min_value": 1900, "max_value": 2100}, description="year of birth"
    )

    @pa.dataframe_check(name="customer_key_is_crm_hash_prefix")
    def key_matches(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("crm_id_hash").str.starts_with(pl.col("customer_key")))


class CustomerIdentity(_Pseudonymised):
    identifier_hash: str = pa.Field(
        unique=True, str_matches=HEX64, description="HMAC of an email, phone or loyalty id"
    )
    identifier_kind: str = pa.Field(
        isin=["email", "phone", "loyalty"], description="email, phone or loyalty"
    )
    customer_key: str = pa.Field(str_matches=HEX16, description="the customer it resolves to")


class Products(_Pseudonymised):
    # the products source's key pattern is checked in validate_table
    sku: str = pa.Field(unique=True, description="product code by the source's rule")
    name: str = pa.Field(description="product name")
    category: str = pa.Field(description="category")
    subcategory: str = pa.Field(nullable=True, description="subcategory")
    list_price: float = pa.Field(gt=0, description="list price in EUR")


class Stores(_Pseudonymised):
    store_code: str = pa.Field(unique=True, description="store code as used by the POS")
    name: str = pa.Field(description="store name")
    city: str = pa.Field(nullable=True, description="city")
    region: str = pa.Field(nullable=True, description="region")
    opened_date: pl.Date = pa.Field(nullable=True, description="day the store opened")


class PromotionPlan(_Pseudonymised):
    campaign_code: str = pa.Field(description="campaign (promotion) code, upper case")
    published_on: pl.Date = pa.Field(description="day the campaign was published in the plan")
    start_date: pl.Date = pa.Field(description="first planned day of the campaign")
    end_date: pl.Date = pa.Field(description="last planned day of the campaign")
    discount_pct: float = pa.Field(
        gt=0, lt=100, description="planned discount off the list price, in percent"
    )
    categories: str = pa.Field(
        str_matches=r"^[^;]+(;[^;]+)*$",
        description="product categories on promotion, `;`-joined, sorted",
    )

    @pa.dataframe_check(name="end_not_before_start")
    def dates_ordered(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("end_date") >= pl.col("start_date"))

    @pa.dataframe_check(name="published_by_start")
    def published_ahead(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("published_on") <= pl.col("start_date"))

    class Config:
        unique = ["campaign_code", "start_date"]


class ExchangeRates(_Pseudonymised):
    date: pl.Date = pa.Field(description="the day the rate applies to (order_date, UTC)")
    currency: str = pa.Field(str_matches=r"^[A-Z]{3}$", description="ISO 4217 code")
    rate_to_eur: float = pa.Field(gt=0, description="an amount in the currency x rate = EUR")

    class Config:
        unique = ["date", "currency"]


MODELS: dict[str, type[pa.DataFrameModel]] = {
    "order_lines": OrderLines,
    "orders": Orders,
    "interactions": Interactions,
    "quarantine": Quarantine,
    "reference_quarantine": ReferenceQuarantine,
    "customers": Customers,
    "customer_identity": CustomerIdentity,
    "products": Products,
    "stores": Stores,
    "promotion_plan": PromotionPlan,
    "exchange_rates": ExchangeRates,
}


def table_schema(name: str) -> dg.TableSchema:
    """The contract of a cleaned table as Dagster's column schema: type, description and
    the contract's constraints per column (shown under "Columns" in the UI)."""
    columns = MODELS[name].to_schema().columns
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                column,
                str(spec.dtype),
                description=spec.description,
                constraints=dg.TableColumnConstraints(
                    nullable=spec.nullable,
                    unique=spec.unique,
                    other=[check.error for check in spec.checks if check.error],
                ),
            )
            for column, spec in columns.items()
        ]
    )


@dataclass(frozen=True)
class CheckFailure:
    """One failed check: which, on what column, how many rows, a few examples."""

    check: str
    column: str | None  # None for checks across columns
    count: int
    examples: tuple[str, ...]
    rows: tuple[int, ...] = ()  # positions in the validated frame of the first failing rows

    def __str__(self) -> str:
        where = f"column {self.column}" if self.column else "table"
        shown = ", ".join(self.examples)
        return f"{self.check} failed on {where}: {self.count} case(s), e.g. {shown}"


@lru_cache(maxsize=1)
def _declared() -> SourcesConfig:
    return load_sources()


def validate_table(
    name: str,
    df: pl.DataFrame,
    *,
    channels: tuple[str, ...] | None = None,
    sources: SourcesConfig | None = None,
) -> list[CheckFailure]:
    """Validate a cleaned table against its contract; an empty list means it holds.

    channels: allowed order channels (default: those of `sources`). sources: the
    declarations whose product-key patterns apply (default: the loaded sources.yaml
    and AIWF_SOURCES). Examples never show values of table-wide checks (they may be
    PII): those name row positions instead.
    """
    sources = sources if sources is not None else _declared()
    model = MODELS.get(name)
    if model is None:
        raise KeyError(f"no contract for table {name!r}; known: {', '.join(MODELS)}")
    failures: list[CheckFailure] = []
    try:
        model.validate(df, lazy=True)
    except pa.errors.SchemaErrors as e:
        failures += _failures(e.failure_cases, model.__name__)
    if name in ("orders", "order_lines") and "channel" in df.columns:
        allowed = channels if channels is not None else sources.order_channels
        outside = ~pl.col("channel").is_in(allowed)
        unknown = df.filter(outside).get_column("channel")
        if unknown.len():
            failures.append(
                CheckFailure(
                    check=f"isin({sorted(allowed)})",
                    column="channel",
                    count=unknown.len(),
                    examples=tuple(unknown.unique(maintain_order=True).head(_EXAMPLES)),
                    rows=tuple(
                        df.with_row_index().filter(outside).get_column("index").head(_EXAMPLES)
                    ),
                )
            )
    failures += _product_key_failures(name, df, sources)
    failures += _free_line_failures(name, df, sources)
    return failures


def _free_line_failures(
    name: str, df: pl.DataFrame, sources: SourcesConfig
) -> list[CheckFailure]:
    """Lines at a price of 0 on channels whose sources do not declare `free_lines` (cleaning
    refuses them there; a cleaning bug would publish goods for nothing)."""
    if name != "order_lines" or not {"channel", "unit_price"} <= set(df.columns):
        return []
    indexed = df.with_row_index()
    free = pl.col("channel").is_in(list(sources.free_line_channels))
    bad = indexed.filter((pl.col("unit_price") == 0) & ~free)
    if not bad.height:
        return []
    first = bad.head(_EXAMPLES)
    return [
        CheckFailure(
            check="not_equal_to(0) (but where the source declares free_lines)",
            column="unit_price",
            count=bad.height,
            examples=tuple(str(v) for v in first.get_column("unit_price")),
            rows=tuple(int(i) for i in first.get_column("index")),
        )
    ]


def _product_key_failures(
    name: str, df: pl.DataFrame, sources: SourcesConfig
) -> list[CheckFailure]:
    """Product codes that do not match the pattern their source declares (merchandise only),
    with the positions of the first failing rows in `df` (as pandera's failures carry)."""
    indexed = df.with_row_index()
    if name == "order_lines" and {"channel", "sku", "line_kind"} <= set(df.columns):
        merchandise = indexed.filter(pl.col("line_kind") == "product")
        channels_by_pattern: dict[str, list[str]] = {}
        for channel, pattern in sources.product_key_patterns.items():
            channels_by_pattern.setdefault(pattern, []).append(channel)
        # one failure per rule, however many channels share it
        groups = [
            (pattern, merchandise.filter(pl.col("channel").is_in(channels)))
            for pattern, channels in channels_by_pattern.items()
        ]
    elif name == "products" and "sku" in df.columns:
        spec = next(iter(sources.by_contract("products").values()), None)
        pattern = spec.product_key_pattern if spec is not None else None
        groups = [(pattern, indexed)] if pattern else []
    else:
        return []
    out = []
    for pattern, rows in groups:
        bad = rows.filter(~pl.col("sku").str.contains(f"^(?:{pattern})$").fill_null(False))
        if bad.height:
            first = bad.head(_EXAMPLES)
            out.append(
                CheckFailure(
                    check=f"str_matches('{pattern}')",
                    column="sku",
                    count=bad.height,
                    # the failing values in the order of `rows`, as for pandera's checks
                    examples=tuple(str(v) for v in first.get_column("sku")),
                    rows=tuple(int(i) for i in first.get_column("index")),
                )
            )
    return out


def _failures(cases: pl.DataFrame, model_name: str) -> list[CheckFailure]:
    out = []
    for (check, column), group in cases.group_by(["check", "column"], maintain_order=True):
        table_wide = column == model_name
        rows = group.get_column("index").drop_nulls()
        # a table-wide failure case is the whole row as JSON: show where, not what
        examples = (
            [f"row {i}" for i in rows.head(_EXAMPLES)]
            if table_wide and rows.len()
            else [str(v) for v in group.get_column("failure_case").head(_EXAMPLES)]
        )
        out.append(
            CheckFailure(
                check=str(check),
                column=None if table_wide else str(column),
                count=group.height,
                examples=tuple(examples),
                rows=tuple(int(i) for i in rows.head(_EXAMPLES)),
            )
        )
    return out
