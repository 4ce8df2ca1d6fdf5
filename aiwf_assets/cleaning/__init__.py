"""Raw -> cleaned: pure functions the Dagster assets call (see DATA_CONTRACTS.md)."""

from aiwf_assets.cleaning.clean import (
    clean_interactions_day,
    clean_orders_day,
    clean_reference_customers,
    clean_reference_exchange_rates,
    clean_reference_products,
    clean_reference_promotion_plan,
    clean_reference_stores,
)
from aiwf_assets.cleaning.transforms import AccountingError, CleanResult, content_version

__all__ = [
    "AccountingError",
    "CleanResult",
    "clean_interactions_day",
    "clean_orders_day",
    "clean_reference_customers",
    "clean_reference_exchange_rates",
    "clean_reference_products",
    "clean_reference_promotion_plan",
    "clean_reference_stores",
    "content_version",
]
