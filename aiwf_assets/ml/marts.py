"""Reading the dbt marts (warehouse schema `marts`) that the ML layer is built on."""

from __future__ import annotations

import polars as pl

from aiwf_assets.io.warehouse import Warehouse

MART_COLUMNS: dict[str, list[str]] = {
    "fct_customer_daily_activity": [
        "customer_key",
        "activity_date",
        "n_orders",
        "n_units",
        "revenue",
        "web_orders",
        "app_orders",
        "store_orders",
        "n_tickets",
        "n_sessions",
        "pages_viewed",
        "product_views",
    ],
    "fct_orders": ["customer_key", "order_date", "has_promo"],
    "dim_customers": ["customer_key", "signup_date", "birth_year", "is_known_to_crm"],
    "fct_product_daily_sales": ["sku", "sales_date", "units", "avg_unit_price", "promo_share"],
    "dim_products": ["sku", "category", "list_price"],
    "fct_order_lines": ["order_id", "customer_key", "order_date", "sku", "quantity"],
}


def read_mart(warehouse: Warehouse, name: str, where: str | None = None) -> pl.DataFrame:
    """The contract columns of one mart, optionally filtered by a SQL condition."""
    table = f"marts.{name}"
    if not warehouse.table_exists(table):
        raise LookupError(f"warehouse table {table} does not exist: build the dbt marts first")
    columns = ", ".join(MART_COLUMNS[name])
    return warehouse.query(f"SELECT {columns} FROM {table}" + (f" WHERE {where}" if where else ""))


def purchase_days(warehouse: Warehouse) -> pl.DataFrame:
    """customer_key, activity_date for every day a customer ordered (churn labels)."""
    return read_mart(warehouse, "fct_customer_daily_activity", "n_orders > 0").select(
        "customer_key", "activity_date"
    )
