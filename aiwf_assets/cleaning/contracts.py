"""Pandera contracts of the cleaned tables, and a helper that reports failures readably.

The models check types, nullability, key uniqueness, ranges and domains, the
derived columns (dates, amounts, id prefixes) and that no string column holds
clear PII (an `@`, a phone number, a loyalty id). Extra columns are allowed
(the warehouse adds `partition_date`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pandera.polars as pa
import polars as pl

from aiwf_assets.cleaning.rules import CONTACT_CHANNELS, DEVICES, TICKET_CATEGORIES
from aiwf_assets.ingest.spec import load_sources

HEX16 = r"^[0-9a-f]{16}$"
HEX64 = r"^[0-9a-f]{64}$"
SKU = r"^SKU-\d{5,}$"
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
    order_id: str = pa.Field(str_matches=r"^[a-z][a-z0-9_]*:\S+$")
    line_number: int = pa.Field(ge=1)
    channel: str = pa.Field(str_matches=r"^[a-z][a-z0-9_]*$")
    customer_key: str = pa.Field(nullable=True, str_matches=HEX16)
    ordered_at: UTC
    order_date: pl.Date
    sku: str = pa.Field(str_matches=SKU)
    quantity: int = pa.Field(gt=0)
    unit_price: float = pa.Field(gt=0)
    line_amount: float = pa.Field(gt=0)
    is_promo: bool
    source_file: str
    source_row: int = pa.Field(ge=1)

    class Config:
        unique = ["order_id", "line_number"]

    @pa.dataframe_check(name="order_date_is_ordered_at_date")
    def order_date_matches(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("order_date") == pl.col("ordered_at").dt.date())

    @pa.dataframe_check(name="line_amount_is_quantity_times_price")
    def amount_matches(cls, data: pa.PolarsData) -> pl.LazyFrame:
        expected = pl.col("quantity") * pl.col("unit_price")
        return data.lazyframe.select((pl.col("line_amount") - expected).abs() < 0.011)

    @pa.dataframe_check(name="order_id_has_channel_prefix")
    def prefixed(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("order_id").str.starts_with(pl.col("channel") + ":"))


class Orders(_Pseudonymised):
    order_id: str = pa.Field(unique=True, str_matches=r"^[a-z][a-z0-9_]*:\S+$")
    channel: str = pa.Field(str_matches=r"^[a-z][a-z0-9_]*$")
    customer_key: str = pa.Field(nullable=True, str_matches=HEX16)
    ordered_at: UTC
    order_date: pl.Date
    store_code: str = pa.Field(nullable=True)
    n_lines: int = pa.Field(ge=1)
    order_total: float = pa.Field(gt=0)
    has_promo: bool
    source_file: str

    @pa.dataframe_check(name="order_date_is_ordered_at_date")
    def order_date_matches(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("order_date") == pl.col("ordered_at").dt.date())

    @pa.dataframe_check(name="order_id_has_channel_prefix")
    def prefixed(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("order_id").str.starts_with(pl.col("channel") + ":"))


class Interactions(_Pseudonymised):
    interaction_id: str = pa.Field(unique=True, str_matches=r"^(ticket|session):\S+$")
    kind: str = pa.Field(isin=["ticket", "session"])
    customer_key: str = pa.Field(nullable=True, str_matches=HEX16)
    occurred_at: UTC
    interaction_date: pl.Date
    subtype: str = pa.Field(isin=[*TICKET_CATEGORIES, *DEVICES])
    contact_channel: str = pa.Field(nullable=True, isin=list(CONTACT_CHANNELS))
    satisfaction: int = pa.Field(nullable=True, in_range={"min_value": 1, "max_value": 5})
    pages_viewed: int = pa.Field(nullable=True, ge=0)
    product_views: int = pa.Field(nullable=True, ge=0)
    added_to_cart: int = pa.Field(nullable=True, ge=0)
    duration_s: int = pa.Field(nullable=True, ge=0)
    source_file: str
    source_row: int = pa.Field(ge=1)

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
    partition_date: pl.Date
    channel: str
    source_file: str
    source_row: int = pa.Field(ge=1)
    reasons: str = pa.Field(str_matches=r"^[^:;]+: ")  # `column: problem; ...`
    record: str = pa.Field(str_startswith="{")

    class Config:
        unique = ["channel", "source_file", "source_row", "record"]


class ReferenceQuarantine(Quarantine):
    partition_date: pl.Date = pa.Field(nullable=True)  # snapshots have no partition


class Customers(_Pseudonymised):
    customer_key: str = pa.Field(unique=True, str_matches=HEX16)
    crm_id_hash: str = pa.Field(unique=True, str_matches=HEX64)
    email_hash: str = pa.Field(nullable=True, str_matches=HEX64)
    phone_hash: str = pa.Field(nullable=True, str_matches=HEX64)
    loyalty_hash: str = pa.Field(nullable=True, str_matches=HEX64)
    signup_date: pl.Date = pa.Field(nullable=True)
    country: str = pa.Field(nullable=True)
    birth_year: int = pa.Field(nullable=True, in_range={"min_value": 1900, "max_value": 2100})

    @pa.dataframe_check(name="customer_key_is_crm_hash_prefix")
    def key_matches(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("crm_id_hash").str.starts_with(pl.col("customer_key")))


class CustomerIdentity(_Pseudonymised):
    identifier_hash: str = pa.Field(unique=True, str_matches=HEX64)
    identifier_kind: str = pa.Field(isin=["email", "phone", "loyalty"])
    customer_key: str = pa.Field(str_matches=HEX16)


class Products(_Pseudonymised):
    sku: str = pa.Field(unique=True, str_matches=SKU)
    name: str
    category: str
    subcategory: str = pa.Field(nullable=True)
    list_price: float = pa.Field(gt=0)


class Stores(_Pseudonymised):
    store_code: str = pa.Field(unique=True)
    name: str
    city: str = pa.Field(nullable=True)
    region: str = pa.Field(nullable=True)
    opened_date: pl.Date = pa.Field(nullable=True)


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
}


@dataclass(frozen=True)
class CheckFailure:
    """One failed check: which, on what column, how many rows, a few examples."""

    check: str
    column: str | None  # None for checks across columns
    count: int
    examples: tuple[str, ...]

    def __str__(self) -> str:
        where = f"column {self.column}" if self.column else "table"
        shown = ", ".join(self.examples)
        return f"{self.check} failed on {where}: {self.count} case(s), e.g. {shown}"


@lru_cache(maxsize=1)
def _declared_channels() -> tuple[str, ...]:
    return load_sources().order_channels


def validate_table(
    name: str, df: pl.DataFrame, *, channels: tuple[str, ...] | None = None
) -> list[CheckFailure]:
    """Validate a cleaned table against its contract; an empty list means it holds.

    channels: allowed order channels (default: those declared in sources.yaml).
    Examples never show values of table-wide checks (they may be PII): those
    name row positions instead.
    """
    model = MODELS.get(name)
    if model is None:
        raise KeyError(f"no contract for table {name!r}; known: {', '.join(MODELS)}")
    failures: list[CheckFailure] = []
    try:
        model.validate(df, lazy=True)
    except pa.errors.SchemaErrors as e:
        failures += _failures(e.failure_cases, model.__name__)
    if name in ("orders", "order_lines") and "channel" in df.columns:
        allowed = channels if channels is not None else _declared_channels()
        unknown = df.filter(~pl.col("channel").is_in(allowed)).get_column("channel")
        if unknown.len():
            failures.append(
                CheckFailure(
                    check=f"isin({sorted(allowed)})",
                    column="channel",
                    count=unknown.len(),
                    examples=tuple(unknown.unique(maintain_order=True).head(_EXAMPLES)),
                )
            )
    return failures


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
            )
        )
    return out
