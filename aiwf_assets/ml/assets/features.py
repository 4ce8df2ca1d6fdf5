"""Feature assets: point-in-time frames built from the dbt marts."""

from collections.abc import Iterator
from datetime import date

import dagster as dg
import polars as pl
from pydantic import Field

from aiwf_assets.ml import features
from aiwf_assets.ml.assets.metadata import OWNERS, frame_output, upstream_data_versions
from aiwf_assets.ml.common import source_version
from aiwf_assets.ml.marts import (
    mart_rows,
    read_file_accounting,
    read_mart,
    read_promotion_plan,
)
from aiwf_assets.resources import WarehouseResource


def resolve_cutoff(configured: str | None, dates: pl.Series) -> date:
    return date.fromisoformat(configured) if configured else features.last_complete_day(dates)


class CustomerFeaturesConfig(dg.Config):
    cutoff_date: str | None = Field(
        default=None, description="as-of date (YYYY-MM-DD); default: last complete day in the data"
    )
    horizon_days: int = Field(default=30, description="churn label window N (training snapshots)")
    history_snapshots: int = Field(default=10, description="training snapshots before the cutoff")
    snapshot_step_days: int = Field(default=7, description="days between training snapshots")


CUSTOMER_FEATURE_DEPS = ["fct_customer_daily_activity", "fct_orders", "dim_customers"]


@dg.asset(
    group_name="features",
    deps=CUSTOMER_FEATURE_DEPS,
    output_required=False,  # nobody to build them for: skipped (features.no_customer_population)
    owners=OWNERS,
    kinds={"python", "polars", "parquet"},
    code_version=source_version(features),
    description=(
        "Customer features (RFM, channel mix, basket, spend trend, tickets, sessions, tenure) "
        "as of the cutoff, plus training snapshots at cutoff - N - k*step; point-in-time "
        "correct (nothing after an as-of date is used)."
    ),
)
def customer_features(
    context: dg.AssetExecutionContext,
    config: CustomerFeaturesConfig,
    warehouse: WarehouseResource,
) -> Iterator[dg.Output[pl.DataFrame]]:
    wh = warehouse.get()
    activity = read_mart(wh, "fct_customer_daily_activity")
    if activity.is_empty() and (
        why := features.no_customer_population(mart_rows(wh, "fct_orders"), activity.height)
    ):
        skip(context, why)
        return
    cutoff = resolve_cutoff(config.cutoff_date, activity["activity_date"])
    dates = features.snapshot_dates(
        cutoff,
        activity["activity_date"].min(),
        config.horizon_days,  # type: ignore[arg-type]
        config.history_snapshots,
        config.snapshot_step_days,
    )
    frame = features.customer_feature_snapshots(
        activity, read_mart(wh, "fct_orders"), read_mart(wh, "dim_customers"), dates
    )
    yield frame_output(
        frame,
        {
            "cutoff_date": cutoff.isoformat(),
            "as_of_dates": dg.MetadataValue.json([d.isoformat() for d in sorted(dates)]),
            "customers_at_cutoff": frame.filter(pl.col("as_of_date") == cutoff).height,
            "upstream_data_versions": dg.MetadataValue.json(
                upstream_data_versions(context, CUSTOMER_FEATURE_DEPS)
            ),
        },
    )


def skip(context: dg.AssetExecutionContext, why: str) -> None:
    """Produce no output (its downstream steps are skipped, the run stays green) and say why:
    in the run's log and as an observation on the asset's page."""
    context.log.warning(why)
    context.log_event(dg.AssetObservation(asset_key=context.asset_key, metadata={"skipped": why}))


class DemandFeaturesConfig(dg.Config):
    cutoff_date: str | None = Field(default=None, description="last observed day; default: latest")
    horizon_days: int = Field(default=7, description="forecast horizon; every feature is this old")


DEMAND_FEATURE_DEPS = ["fct_product_daily_sales", "dim_products", "promotion_plan"]


@dg.asset(
    group_name="features",
    deps=DEMAND_FEATURE_DEPS,
    owners=OWNERS,
    kinds={"python", "polars", "parquet"},
    code_version=source_version(features),
    description=(
        "Product x day grid (zero-sales days filled; days whose order files failed, were "
        "empty, held back or more than a tenth quarantined left unknown) with lags, rolling "
        "means, day of week, seasonality, last price and promotion share, all at least "
        "horizon_days old; includes "
        "the next horizon_days as future rows to forecast, and (not a model feature) whether "
        "the published promotion plan, as it stood when the forecast was made, marks the day "
        "as a campaign day."
    ),
)
def demand_features(
    context: dg.AssetExecutionContext,
    config: DemandFeaturesConfig,
    warehouse: WarehouseResource,
) -> dg.Output[pl.DataFrame]:
    wh = warehouse.get()
    sales = read_mart(wh, "fct_product_daily_sales")
    cutoff = resolve_cutoff(config.cutoff_date, sales["sales_date"])
    unknown = features.unknown_sales_days(read_file_accounting(wh), through=cutoff)
    frame = features.demand_features(
        sales,
        read_mart(wh, "dim_products"),
        cutoff,
        config.horizon_days,
        unknown,
        read_promotion_plan(wh),
    )
    return frame_output(
        frame,
        {
            "cutoff_date": cutoff.isoformat(),
            "horizon_days": config.horizon_days,
            "products": frame["sku"].n_unique(),
            "unknown_sales_days": dg.MetadataValue.json(
                [d.isoformat() for d in unknown if d <= cutoff]
            ),
            "upstream_data_versions": dg.MetadataValue.json(
                upstream_data_versions(context, DEMAND_FEATURE_DEPS)
            ),
        },
    )


class InteractionMatrixConfig(dg.Config):
    cutoff_date: str | None = Field(default=None, description="last day used; default: latest")


@dg.asset(
    group_name="features",
    deps=["fct_order_lines", "dim_customers"],
    output_required=False,  # nobody to build them for: skipped (features.no_customer_population)
    owners=OWNERS,
    kinds={"python", "scipy", "parquet"},
    code_version=source_version(features),
    description=(
        "Customer x product purchases (sparse; stored as coordinate rows with first/last "
        "purchase dates, and whether the buyer is identified or a guest) for recommendations."
    ),
)
def interaction_matrix(
    context: dg.AssetExecutionContext,
    config: InteractionMatrixConfig,
    warehouse: WarehouseResource,
) -> Iterator[dg.Output[pl.DataFrame]]:
    wh = warehouse.get()
    # purchases of products: postage, fees and returns are no preference for an item
    lines = read_mart(wh, "fct_order_lines", "line_kind = 'product' and not is_return")
    if why := features.no_customer_population(
        lines["order_id"].n_unique(), lines["customer_key"].count()
    ):
        skip(context, why)
        return
    cutoff = resolve_cutoff(config.cutoff_date, lines["order_date"])
    pairs = features.interaction_pairs(lines, cutoff, read_mart(wh, "dim_customers")).with_columns(
        as_of_date=pl.lit(cutoff)
    )
    customers, items = pairs["customer_key"].n_unique(), pairs["sku"].n_unique()
    yield frame_output(
        pairs,
        {
            "cutoff_date": cutoff.isoformat(),
            "shape": f"{customers} customers x {items} products",
            "density": pairs.height / max(customers * items, 1),
            "upstream_data_versions": dg.MetadataValue.json(
                upstream_data_versions(context, ["fct_order_lines", "dim_customers"])
            ),
        },
    )


ASSETS = [customer_features, demand_features, interaction_matrix]
