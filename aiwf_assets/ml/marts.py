"""Reading the dbt marts (warehouse schema `marts`) that the ML layer is built on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache

import polars as pl

from aiwf_assets.ingest.spec import load_sources
from aiwf_assets.io.warehouse import Warehouse

CHANNEL = "{channel}"  # in a column name: one column per declared order channel

MART_COLUMNS: dict[str, list[str]] = {
    "fct_customer_daily_activity": [
        "customer_key",
        "activity_date",
        "n_orders",
        "n_units",
        "revenue",
        f"{CHANNEL}_orders",  # web_orders, app_orders, ... (dbt var channels)
        "n_tickets",
        "n_sessions",
        "pages_viewed",
        "product_views",
    ],
    "fct_orders": ["customer_key", "order_date", "has_promo", "is_return"],
    "dim_customers": ["customer_key", "signup_date", "birth_year", "is_known_to_crm"],
    "fct_product_daily_sales": ["sku", "sales_date", "units", "avg_unit_price", "promo_share"],
    "dim_products": ["sku", "category", "list_price"],
    "fct_order_lines": ["order_id", "customer_key", "order_date", "sku", "quantity"],
}


@lru_cache(maxsize=1)
def declared_channels() -> tuple[str, ...]:
    """The order channels of the declared sources (packaged + AIWF_SOURCES), as dbt gets them."""
    return load_sources().order_channels


def mart_columns(name: str, channels: Sequence[str] | None = None) -> list[str]:
    """The contract columns of a mart, a per-channel column once per channel (default: the
    declared sources' channels)."""
    channels = declared_channels() if channels is None else channels
    out: list[str] = []
    for column in MART_COLUMNS[name]:
        if CHANNEL in column:
            out += [column.replace(CHANNEL, c) for c in channels]
        else:
            out.append(column)
    return out


def read_mart(
    warehouse: Warehouse,
    name: str,
    where: str | None = None,
    channels: Sequence[str] | None = None,
) -> pl.DataFrame:
    """The contract columns of one mart, optionally filtered by a SQL condition."""
    table = f"marts.{name}"
    if not warehouse.table_exists(table):
        raise LookupError(f"warehouse table {table} does not exist: build the dbt marts first")
    columns = ", ".join(mart_columns(name, channels))
    return warehouse.query(f"SELECT {columns} FROM {table}" + (f" WHERE {where}" if where else ""))


def mart_rows(warehouse: Warehouse, name: str) -> int:
    """How many rows one mart holds (0 when it is not built)."""
    table = f"marts.{name}"
    if not warehouse.table_exists(table):
        return 0
    return int(warehouse.query(f"SELECT COUNT(*) AS n FROM {table}")["n"][0])


def last_mart_day(warehouse: Warehouse, name: str, column: str) -> dt.date | None:
    """The newest `column` date of one mart (None when it is empty), without reading its rows."""
    table = f"marts.{name}"
    if not warehouse.table_exists(table):
        raise LookupError(f"warehouse table {table} does not exist: build the dbt marts first")
    return warehouse.query(f"SELECT max({column}) AS last_day FROM {table}")["last_day"][0]


PROMOTION_PLAN_TABLE = "cleaned.promotion_plan"


def read_promotion_plan(warehouse: Warehouse) -> pl.DataFrame | None:
    """The published promotion plan (cleaned, validated), or None when none was ever landed."""
    if not warehouse.table_exists(PROMOTION_PLAN_TABLE):
        return None
    return warehouse.query(
        "SELECT campaign_code, published_on, start_date, end_date, discount_pct, categories "
        f"FROM {PROMOTION_PLAN_TABLE}"
    )


def purchase_days(warehouse: Warehouse) -> pl.DataFrame:
    """customer_key, activity_date for every day a customer ordered (churn labels)."""
    return read_mart(warehouse, "fct_customer_daily_activity", "n_orders > 0").select(
        "customer_key", "activity_date"
    )


ACCOUNTING_TABLE = "cleaned.file_accounting"


def read_file_accounting(warehouse: Warehouse) -> pl.DataFrame:
    """Per landing source and day, the rows the cleaned layer kept and quarantined (empty if
    not built)."""
    schema = {
        "channel": pl.String,
        "partition_date": pl.Date,
        "rows_cleaned": pl.Int64,
        "rows_quarantined": pl.Int64,
    }
    if not warehouse.table_exists(ACCOUNTING_TABLE):
        return pl.DataFrame(schema=schema)
    frame = warehouse.query(f"SELECT {', '.join(schema)} FROM {ACCOUNTING_TABLE}")
    return frame.cast(schema)  # type: ignore[arg-type]
