"""Feature engineering from the marts: pure polars functions, point-in-time correct.

Every function takes the marts' frames and an as-of date and uses nothing
dated after it, so the same code builds training snapshots in the past and
the scoring snapshot at the cutoff.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import polars as pl
from scipy import sparse

# The customer features, around one `<channel>_share` per order channel (the declared
# sources' channels, as the marts' `<channel>_orders` columns carry them).
_FEATURES_BEFORE_CHANNELS = [
    "recency_days",
    "frequency",
    "monetary",
    "avg_basket",
    "units_per_order",
    "orders_30d",
    "orders_90d",
    "revenue_30d",
    "revenue_90d",
    "spend_trend",
    "mean_gap_days",
    "recency_over_gap",
]
_FEATURES_AFTER_CHANNELS = [
    "promo_share",
    "tickets_90d",
    "tickets_total",
    "days_since_last_ticket",
    "sessions_30d",
    "sessions_90d",
    "pages_viewed_30d",
    "product_views_30d",
    "days_since_last_session",
    "tenure_days",
    "age",
]
# every customer feature that is not a channel share
CUSTOMER_BASE_FEATURES = [*_FEATURES_BEFORE_CHANNELS, *_FEATURES_AFTER_CHANNELS]
# Not model features: the customer's own order rate as counts, read by the churn model's
# quiet probability (`churn.quiet_probability`): days with an order on or before the as-of
# date, and days from the first of them to the as-of date.
ORDER_RATE_COLUMNS = ["order_days", "days_since_first_order"]


def customer_feature_columns(channels: Sequence[str]) -> list[str]:
    """The customer feature columns for these order channels, in model order
    (web, app, store: ... recency_over_gap, web_share, app_share, store_share, promo_share ...)."""
    return [
        *_FEATURES_BEFORE_CHANNELS,
        *(f"{c}_share" for c in channels),
        *_FEATURES_AFTER_CHANNELS,
    ]


def activity_channels(activity: pl.DataFrame) -> list[str]:
    """The order channels of fct_customer_daily_activity: its `<channel>_orders` columns."""
    return [
        c.removesuffix("_orders")
        for c in activity.columns
        if c.endswith("_orders") and c != "n_orders"
    ]


def feature_channels(features: pl.DataFrame) -> list[str]:
    """The channels whose share a customer feature frame holds."""
    return [
        c.removesuffix("_share")
        for c in features.columns
        if c.endswith("_share") and c not in CUSTOMER_BASE_FEATURES
    ]


def feature_columns_of(features: pl.DataFrame) -> list[str]:
    """The customer feature columns of this frame (its channels' shares included)."""
    return customer_feature_columns(feature_channels(features))


DEMAND_FEATURE_COLUMNS = [
    "day_of_week",
    "day_of_year_sin",
    "day_of_year_cos",
    "month",
    "lag_horizon",
    "seasonal_naive",
    "same_weekday_mean_4",
    "rolling_mean_7",
    "rolling_mean_28",
    "rolling_mean_91",
    "zero_share_28",
    "promo_share_7",
    "promo_share_28",
    "trend_7_28",
    "trend_28_91",
    "last_price",
    "price_ratio",
    "list_price",
    "product_age_days",
    "regular_mean_28",
    "regular_mean_91",
    "campaign_share_28",
    "price_change_28",
    "price_change_91",
    "category_price_ratio",
    "store_price_ratio",
    "category_promo_share",
    "store_promo_share",
]
# Known in advance (the retailer's price and promotion plan), so read on the target day
PLANNED_COLUMNS = [
    "category_price_ratio",
    "store_price_ratio",
    "category_promo_share",
    "store_promo_share",
]
# Not model features: the published promotion plan of the target day as known when its
# forecast was made (see `with_planned_campaigns`), read by the campaign-day uplift of
# `demand.forecast` (the model itself stays plan-free).
PLAN_COLUMNS = ["category", "planned", "planned_campaign", "planned_category"]
# The business fixes its promotion plan this many days ahead (the generator publishes
# each campaign 28-42 days before it starts): a day further out from when the forecast
# is made has no plan.
PLAN_HORIZON_DAYS = 28


# Float columns are summed as decimals with this many places. A float sum's last bits
# depend on the order of its terms: on the row order the warehouse returns (a query
# without ORDER BY, an incremental model that re-inserts days) and on how polars splits
# a group over its threads (one per core). Gradient boosting's bin edges move with those
# bits, so the same data trained different models. A decimal sum is exact in any order.
SUM_DECIMALS = 6


def exact_sum(expr: pl.Expr) -> pl.Expr:
    """Sum of a float expression that is the same for any row order and thread count
    (the terms rounded to SUM_DECIMALS places, then added exactly)."""
    return _as_decimal(expr).sum().cast(pl.Float64)


def _as_decimal(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Decimal(38, SUM_DECIMALS))


def last_complete_day(activity_dates: pl.Series) -> date:
    """The default cutoff: the latest day present in the data (delivered days are complete)."""
    if activity_dates.is_empty():
        raise ValueError("the marts hold no activity yet: build the marts before the features")
    return activity_dates.max()  # type: ignore[return-value]


def no_customer_population(orders: int, customer_rows: int) -> str | None:
    """Why there is nobody to build customer features for, or None when there is.

    The marts hold `orders` orders and `customer_rows` rows with a customer (activity or
    purchases). Orders without a single customer are a retailer whose sources identify
    nobody (a till without loyalty cards and no customer file): not an error, and not
    a reason to train on nothing. No orders at all: the marts are not built yet (None:
    the caller's own error says so)."""
    if customer_rows > 0 or orders == 0:
        return None
    return (
        f"no customer population: the marts hold {orders} orders and none names a customer "
        "(no source maps a loyalty id, e-mail or customer id for them, and no customer file "
        "is delivered); the customer models (churn, segments, recommendations) and the CRM "
        "export are skipped until a source identifies customers (docs/ML.md)"
    )


MIN_SNAPSHOT_HISTORY_DAYS = 14  # a training snapshot needs this much data before it


def snapshot_dates(
    cutoff: date,
    first_day: date,
    horizon_days: int,
    history_snapshots: int,
    step_days: int,
    min_history_days: int = MIN_SNAPSHOT_HISTORY_DAYS,
) -> list[date]:
    """The scoring date (cutoff) plus training snapshots cutoff - N - k*step, newest first.

    Snapshots with less than `min_history_days` of data before them are left out.
    """
    earliest = first_day + timedelta(days=min_history_days)
    history = [
        cutoff - timedelta(days=horizon_days + k * step_days) for k in range(history_snapshots)
    ]
    return [cutoff, *(d for d in history if d >= earliest)]


def customer_features_as_of(
    activity: pl.DataFrame, orders: pl.DataFrame, customers: pl.DataFrame, as_of: date
) -> pl.DataFrame:
    """One row per customer with at least one order on or before `as_of`.

    `activity` is fct_customer_daily_activity, `orders` fct_orders, `customers`
    dim_customers. Every `<channel>_orders` column of `activity` (one per declared order
    channel) gives a `<channel>_share` feature. Only rows dated on or before `as_of` are used; from
    dim_customers only static attributes (signup date, birth year) and whether
    `is_known_to_crm` (column `identified`: a CRM customer, not a guest) are
    read, never its all-time first/last order dates. Besides the features, the
    ORDER_RATE_COLUMNS (days with an order, days since the first) feed the churn
    model's quiet probability.
    """
    past = activity.filter(
        pl.col("activity_date") <= as_of, pl.col("customer_key").is_not_null()
    ).with_columns(days_ago=(pl.lit(as_of) - pl.col("activity_date")).dt.total_days())
    recent = pl.col("days_ago")
    channels = activity_channels(activity)
    # purchase dates and counts from the days with a purchase; units and money from every
    # day, so a return booked on a day without a purchase (a store return days later)
    # lowers the customer's net figures too
    purchased = pl.col("n_orders") > 0
    buying = (
        past.group_by("customer_key")
        .agg(
            first_order_date=pl.col("activity_date").filter(purchased).min(),
            last_order_date=pl.col("activity_date").filter(purchased).max(),
            active_days=purchased.sum(),
            frequency=pl.col("n_orders").sum(),
            units=pl.col("n_units").sum(),
            monetary=exact_sum(pl.col("revenue")),
            **{f"{c}_orders": pl.col(f"{c}_orders").sum() for c in channels},
            orders_30d=pl.col("n_orders").filter(recent < 30).sum(),
            orders_90d=pl.col("n_orders").filter(recent < 90).sum(),
            revenue_30d=exact_sum(pl.col("revenue").filter(recent < 30)),
            revenue_prev_30d=exact_sum(pl.col("revenue").filter((recent >= 30) & (recent < 60))),
            revenue_90d=exact_sum(pl.col("revenue").filter(recent < 90)),
        )
        .filter(pl.col("frequency") > 0)  # a customer with a purchase (not only returns)
    )
    engagement = past.group_by("customer_key").agg(
        tickets_total=pl.col("n_tickets").sum(),
        tickets_90d=pl.col("n_tickets").filter(recent < 90).sum(),
        last_ticket_date=pl.col("activity_date").filter(pl.col("n_tickets") > 0).max(),
        sessions_30d=pl.col("n_sessions").filter(recent < 30).sum(),
        sessions_90d=pl.col("n_sessions").filter(recent < 90).sum(),
        pages_viewed_30d=pl.col("pages_viewed").filter(recent < 30).sum(),
        product_views_30d=pl.col("product_views").filter(recent < 30).sum(),
        last_session_date=pl.col("activity_date").filter(pl.col("n_sessions") > 0).max(),
    )
    promo = (  # the share of purchases with a promotion: returns are not purchases
        orders.filter(
            pl.col("order_date") <= as_of, pl.col("customer_key").is_not_null(),
            ~pl.col("is_return"),
        )
        .group_by("customer_key")
        .agg(promo_share=pl.col("has_promo").cast(pl.Float64).mean())
    )
    # identified = a CRM customer (populations.IDENTIFIED), not a guest
    static = customers.select(
        "customer_key", "signup_date", "birth_year", identified=pl.col("is_known_to_crm")
    )
    as_of_lit = pl.lit(as_of)
    frequency = pl.col("frequency").cast(pl.Float64)
    mean_gap = pl.when(pl.col("active_days") > 1).then(
        (pl.col("last_order_date") - pl.col("first_order_date")).dt.total_days()
        / (pl.col("active_days") - 1)
    )
    signup = pl.when(pl.col("signup_date") <= as_of).then(pl.col("signup_date"))
    return (
        buying.join(engagement, on="customer_key", how="left")
        .join(promo, on="customer_key", how="left")
        .join(static, on="customer_key", how="left")
        .with_columns(mean_gap_days=mean_gap)
        .select(
            pl.col("customer_key"),
            as_of_lit.alias("as_of_date"),
            recency_days=(as_of_lit - pl.col("last_order_date")).dt.total_days().cast(pl.Float64),
            frequency=frequency,
            monetary=pl.col("monetary").cast(pl.Float64),
            avg_basket=pl.col("monetary") / frequency,
            units_per_order=pl.col("units") / frequency,
            orders_30d=pl.col("orders_30d").cast(pl.Float64),
            orders_90d=pl.col("orders_90d").cast(pl.Float64),
            revenue_30d=pl.col("revenue_30d").cast(pl.Float64),
            revenue_90d=pl.col("revenue_90d").cast(pl.Float64),
            spend_trend=(pl.col("revenue_30d") - pl.col("revenue_prev_30d"))
            / (pl.col("revenue_30d") + pl.col("revenue_prev_30d") + 1.0),
            mean_gap_days=pl.col("mean_gap_days"),
            recency_over_gap=(as_of_lit - pl.col("last_order_date")).dt.total_days()
            / pl.col("mean_gap_days"),
            **{f"{c}_share": pl.col(f"{c}_orders") / frequency for c in channels},
            promo_share=pl.col("promo_share"),
            tickets_90d=pl.col("tickets_90d").fill_null(0).cast(pl.Float64),
            tickets_total=pl.col("tickets_total").fill_null(0).cast(pl.Float64),
            days_since_last_ticket=(as_of_lit - pl.col("last_ticket_date"))
            .dt.total_days()
            .cast(pl.Float64),
            sessions_30d=pl.col("sessions_30d").fill_null(0).cast(pl.Float64),
            sessions_90d=pl.col("sessions_90d").fill_null(0).cast(pl.Float64),
            pages_viewed_30d=pl.col("pages_viewed_30d").fill_null(0).cast(pl.Float64),
            product_views_30d=pl.col("product_views_30d").fill_null(0).cast(pl.Float64),
            days_since_last_session=(as_of_lit - pl.col("last_session_date"))
            .dt.total_days()
            .cast(pl.Float64),
            tenure_days=(as_of_lit - pl.coalesce(signup, pl.col("first_order_date")))
            .dt.total_days()
            .cast(pl.Float64),
            age=(pl.lit(as_of.year) - pl.col("birth_year")).cast(pl.Float64),
            identified=pl.col("identified").fill_null(False),
            order_days=pl.col("active_days").cast(pl.Float64),
            days_since_first_order=(as_of_lit - pl.col("first_order_date"))
            .dt.total_days()
            .cast(pl.Float64),
        )
        .select(
            "customer_key",
            "as_of_date",
            *customer_feature_columns(channels),
            "identified",
            *ORDER_RATE_COLUMNS,
        )
        .sort("customer_key")
    )


def customer_feature_snapshots(
    activity: pl.DataFrame, orders: pl.DataFrame, customers: pl.DataFrame, as_of_dates: list[date]
) -> pl.DataFrame:
    """Features for several as-of dates stacked (column `as_of_date`), oldest first."""
    return pl.concat(
        [customer_features_as_of(activity, orders, customers, d) for d in sorted(as_of_dates)]
    )


def seasonal_lag_days(horizon_days: int) -> int:
    """Same weekday, at least `horizon_days` back (7 for horizons up to a week)."""
    return 7 * math.ceil(horizon_days / 7)


def order_line_sources() -> tuple[str, ...]:
    """The declared sources (packaged + AIWF_SOURCES) whose files feed order lines, hence
    fct_product_daily_sales: every source of the `order_lines` contract."""
    from aiwf_assets.ingest.spec import load_sources

    return tuple(load_sources().by_contract("order_lines"))


# A source-day whose quarantined order lines exceed this share of its records (duplicates
# removed do not count: no sale was lost) is unknown, not merely low: a lag or training
# target reading it would be low by that share of the source's sales. Below it, the
# undercount is smaller than the day-to-day noise of a day's sales and the day is kept.
MAX_LOST_SHARE = 0.1


def unknown_sales_days(
    file_accounting: pl.DataFrame,
    sources: Sequence[str] | None = None,
    *,
    through: date | None = None,
    max_lost_share: float = MAX_LOST_SHARE,
) -> list[date]:
    """Days whose sales are not known in full: from the first day the cleaned layer
    accounted a file for to the last one (or `through`, the cutoff, if later), the days on
    which a source of order lines has no accounted file (failed, empty or held back), one
    with no cleaned rows, or one whose quarantined rows exceed `max_lost_share` of its
    cleaned + quarantined rows (rows that were records, maybe sales, and are lost).

    `file_accounting` is cleaned.file_accounting (channel = source name, partition_date,
    rows_cleaned, rows_quarantined; without rows_quarantined nothing counts as lost);
    `sources` defaults to the declared order-line sources. A declared source that never
    had a file accounted (configured but not delivered yet) is left out: it would
    otherwise make every day unknown; one is expected only from the first day it had a
    file accounted (a channel added later leaves the days before it known). `through`
    makes a lost newest day (every order file of the cutoff day missing, so no accounting
    row) unknown, not a day of zero sales.
    """
    sources = order_line_sources() if sources is None else sources
    accounted = file_accounting.filter(pl.col("channel").is_in(list(sources)))
    if accounted.is_empty():
        return []
    first, last = accounted["partition_date"].min(), accounted["partition_date"].max()
    if through is not None and through > last:  # type: ignore[operator]
        last = through
    days = pl.date_range(first, last, interval="1d", eager=True).alias("partition_date")
    # a source is expected from its first accounted day on: one a retailer added later
    # (a new channel) does not make the days before it existed unknown
    starts = accounted.group_by("channel").agg(pl.col("partition_date").min().alias("start"))
    expected = (
        days.to_frame()
        .join(starts, how="cross")
        .filter(pl.col("start") <= pl.col("partition_date"))
        .group_by("partition_date")
        .agg(pl.len().alias("expected"))
    )
    lost = (
        pl.col("rows_quarantined") / (pl.col("rows_cleaned") + pl.col("rows_quarantined"))
        if "rows_quarantined" in accounted.columns
        else pl.lit(0.0)
    )
    complete = (
        accounted.filter(pl.col("rows_cleaned") > 0, lost <= max_lost_share)
        .group_by("partition_date")
        .agg(pl.col("channel").n_unique().alias("sources"))
    )
    unknown = expected.join(complete, on="partition_date", how="left").filter(
        pl.col("sources").fill_null(0) < pl.col("expected")
    )
    return sorted(unknown["partition_date"].to_list())


def demand_features(
    sales: pl.DataFrame,
    products: pl.DataFrame,
    cutoff: date,
    horizon_days: int,
    unknown_days: Sequence[date] = (),
    plan: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Product x day grid with features that are all at least `horizon_days` old.

    `sales` is fct_product_daily_sales (days with sales only); days without
    sales become zero. The grid runs from each product's first sale to
    cutoff + horizon_days; the future days have `units` null and are what
    the forecast fills in. Because every lag and rolling window ends
    `horizon_days` before the target day, one model forecasts each of the
    next `horizon_days` days from data available at the cutoff (a direct
    strategy, no recursion). The product's own price and promotion share are
    the last known ones, never the target day's (observed only through sales).

    The exception are the planned-price covariates (PLANNED_COLUMNS): the
    average paid / list price on the target day over the *other* products of
    the category and of the whole range, i.e. the promotion calendar, which a
    retailer knows in advance. History reads it from what the other products
    sold at; future days, with no plan given, get the median of the last 28
    days (no campaign assumed).

    `unknown_days` (see `unknown_sales_days`) are days whose sales are not known
    in full: their units and promotion share stay null, not zero, so the lags,
    rolling means and training targets skip them rather than read a false zero.
    `plan` (cleaned.promotion_plan, None when none was landed) gives the
    non-feature PLAN_COLUMNS (`with_planned_campaigns`): whether the target day
    is a planned campaign day as published when its forecast was made.
    """
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
    h = horizon_days
    season = seasonal_lag_days(h)
    observed = sales.filter(pl.col("sales_date") <= cutoff)
    starts = observed.group_by("sku").agg(first_day=pl.col("sales_date").min())
    grid = (
        starts.with_columns(
            date=pl.date_ranges("first_day", pl.lit(cutoff + timedelta(days=h)), interval="1d")
        )
        .explode("date")
        .join(
            observed.select(
                "sku", pl.col("sales_date").alias("date"), "units", "avg_unit_price", "promo_share"
            ),
            on=["sku", "date"],
            how="left",
        )
        .join(products.select("sku", "category", "list_price"), on="sku", how="left")
        .with_columns(
            is_future=pl.col("date") > cutoff,
            known=(pl.col("date") <= cutoff)
            & ~pl.col("date").is_in(pl.Series(list(unknown_days), dtype=pl.Date).implode()),
        )
        .with_columns(
            units=pl.when("known").then(pl.col("units").fill_null(0)),
            promo_share=pl.when("known").then(pl.col("promo_share").fill_null(0)),
            avg_unit_price=pl.when("known").then(pl.col("avg_unit_price")),
        )
        .sort("sku", "date")
    )
    units = pl.col("units").cast(pl.Float64)
    grid = grid.join(_regular_days(grid), on="date", how="left").with_columns(
        pl.col("regular_day").fill_null(1.0)  # future days: no campaign known
    )
    regular = pl.col("regular_day")

    def lagged(expr: pl.Expr, days: int) -> pl.Expr:
        return expr.shift(days).over("sku")

    def regular_mean(window: int) -> pl.Expr:
        """Mean units over the window's days without a campaign: the level that
        campaign peaks (in any category: they lift store traffic) do not inflate."""
        regular_units = (units * regular).rolling_sum(window, min_samples=1)
        regular_known = (regular * units.is_not_null()).rolling_sum(window, min_samples=1)
        return lagged(_ratio(regular_units, regular_known), h)

    regular_price = pl.when(regular > 0).then(pl.col("avg_unit_price"))

    def price_change(window: int) -> pl.Expr:
        """The last regular-day price over the window's mean regular-day price (units
        weighted): how far a price step since then moves demand off the level."""
        sold = units * regular * pl.col("avg_unit_price").is_not_null()
        paid = (units * regular_price).fill_null(0.0)
        mean_price = _ratio(
            paid.rolling_sum(window, min_samples=1), sold.rolling_sum(window, min_samples=1)
        )
        return lagged(regular_price.forward_fill() / mean_price, h)

    day_of_year = pl.col("date").dt.ordinal_day().cast(pl.Float64) * (2 * math.pi / 365.25)
    featured = grid.with_columns(
        day_of_week=pl.col("date").dt.weekday(),
        day_of_year_sin=day_of_year.sin(),
        day_of_year_cos=day_of_year.cos(),
        month=pl.col("date").dt.month(),
        lag_horizon=lagged(units, h),
        seasonal_naive=lagged(units, season),
        same_weekday_mean_4=pl.mean_horizontal([lagged(units, season + 7 * k) for k in range(4)]),
        rolling_mean_7=lagged(units.rolling_mean(7, min_samples=1), h),
        rolling_mean_28=lagged(units.rolling_mean(28, min_samples=1), h),
        rolling_mean_91=lagged(units.rolling_mean(91, min_samples=1), h),
        zero_share_28=lagged((units == 0).cast(pl.Float64).rolling_mean(28, min_samples=1), h),
        promo_share_7=lagged(pl.col("promo_share").rolling_mean(7, min_samples=1), h),
        promo_share_28=lagged(pl.col("promo_share").rolling_mean(28, min_samples=1), h),
        regular_mean_28=regular_mean(28),
        regular_mean_91=regular_mean(91),
        campaign_share_28=lagged(1 - regular.rolling_mean(28, min_samples=1), h),
        price_change_28=price_change(28),
        price_change_91=price_change(91),
        last_price=lagged(pl.col("avg_unit_price").forward_fill(), h),
        product_age_days=(pl.col("date") - pl.col("first_day")).dt.total_days(),
    ).with_columns(
        trend_7_28=_ratio(pl.col("rolling_mean_7"), pl.col("rolling_mean_28")),
        trend_28_91=_ratio(pl.col("rolling_mean_28"), pl.col("rolling_mean_91")),
        price_ratio=pl.col("last_price") / pl.col("list_price"),
        horizon_days=pl.lit(h),
    )
    priced = _with_planned_prices(featured, cutoff)
    return (
        with_planned_campaigns(priced, plan, cutoff, h)
        .select(
            "sku",
            "date",
            "is_future",
            "units",
            "horizon_days",
            *PLAN_COLUMNS,
            *DEMAND_FEATURE_COLUMNS,
        )  # fmt: skip
        .sort("sku", "date")
    )


def plan_days(plan: pl.DataFrame) -> pl.DataFrame:
    """One row per planned campaign day: date, published_on and categories (a list, lower
    case), from cleaned.promotion_plan's campaigns."""
    return (
        plan.select(
            "published_on",
            date=pl.date_ranges("start_date", "end_date", interval="1d"),
            categories=pl.col("categories").str.to_lowercase().str.split(";"),
        )
        .explode("date")
        .drop_nulls("date")
    )


def with_planned_campaigns(
    grid: pl.DataFrame,
    plan: pl.DataFrame | None,
    cutoff: date,
    horizon_days: int,
    plan_horizon_days: int = PLAN_HORIZON_DAYS,
) -> pl.DataFrame:
    """The grid with the promotion plan of each target day as published when its forecast
    was made (`known_at`: the cutoff for future days, `date - horizon_days` for history;
    a campaign published later is not used): `planned_campaign` (a campaign is planned
    that day), `planned_category` (on the row's category). `planned` says whether a plan
    covered the day at all: false before the first publication, for days further than
    `plan_horizon_days` from `known_at`, and without a plan (then nothing is planned)."""
    known_at = (
        pl.when(pl.col("is_future"))
        .then(pl.lit(cutoff))
        .otherwise(pl.col("date") - timedelta(days=horizon_days))
    )
    frame = grid.with_columns(known_at=known_at)
    if plan is None or plan.is_empty():
        return frame.with_columns(
            planned=pl.lit(False), planned_campaign=pl.lit(False), planned_category=pl.lit(False)
        ).drop("known_at")
    days = plan_days(plan)
    per_row = (
        frame.select("sku", "date", "known_at", lower=pl.col("category").str.to_lowercase())
        .join(days, on="date")
        .filter(pl.col("published_on") <= pl.col("known_at"))
        .group_by("sku", "date")
        .agg(
            planned_campaign=pl.lit(True),
            planned_category=pl.col("categories").list.contains(pl.col("lower")).any(),
        )
    )
    first_published: date = days["published_on"].min()  # type: ignore[assignment]
    planned = (pl.col("known_at") >= first_published) & (
        pl.col("date") <= pl.col("known_at") + timedelta(days=plan_horizon_days)
    )
    return (
        frame.join(per_row, on=["sku", "date"], how="left")
        .with_columns(planned=planned)
        .with_columns(
            (pl.col(c).fill_null(False) & pl.col("planned")).alias(c)
            for c in ("planned_campaign", "planned_category")
        )
        .drop("known_at")
    )


def plan_note(days: Sequence[date], planned: Sequence[bool]) -> str:
    """Where no promotion plan covered a forecast day: "no plan for <days>: no campaign
    uplift" (consecutive days as ranges), else that the plan covers every day."""
    missing = sorted({d for d, p in zip(days, planned, strict=True) if not p})
    if not missing:
        return "the promotion plan covers every forecast day"
    ranges: list[tuple[date, date]] = []
    for day in missing:
        if ranges and day == ranges[-1][1] + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    spans = ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in ranges)
    return f"no plan for {spans}: no campaign uplift"


def _regular_days(grid: pl.DataFrame, window_days: int = 91) -> pl.DataFrame:
    """1.0 on days without a campaign, 0.0 on campaign days: days whose share of units
    sold on promotion (over the whole range) is above its median over the last
    `window_days` (a campaign lifts it; promotions that run every day do not)."""
    daily = (
        grid.filter(pl.col("units").is_not_null())
        .group_by("date")
        .agg(
            share=_ratio(
                exact_sum(pl.col("units") * pl.col("promo_share")), pl.col("units").sum()
            ).fill_null(0.0)
        )
        .sort("date")
    )
    typical = pl.col("share").rolling_median_by("date", f"{window_days}d")
    return daily.select("date", regular_day=(pl.col("share") <= typical).cast(pl.Float64))


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(numerator / denominator)


def _others(column: str, scope: list[str]) -> pl.Expr:
    """The column summed over the *other* products of the scope on the same day (exactly:
    see SUM_DECIMALS)."""
    value = _as_decimal(pl.col(column))
    return (value.sum().over("date", *scope) - value).cast(pl.Float64)


def _typical(column: str, scope: list[str], recent: pl.Expr) -> pl.Expr:
    """The column's median over the recent days, per scope (the whole range if none)."""
    median = pl.col(column).filter(recent).median()
    return median.over(scope) if scope else median


def _with_planned_prices(grid: pl.DataFrame, cutoff: date) -> pl.DataFrame:
    """The promotion calendar on the target day, read from the other products of the
    category and of the range: paid / list price and the share of units sold on promotion."""
    frame = grid.with_columns(
        paid=(pl.col("units") * pl.col("avg_unit_price")).fill_null(0.0),
        listed=(pl.col("units") * pl.col("list_price")).fill_null(0.0),
        promoted=(pl.col("units") * pl.col("promo_share")).fill_null(0.0),
        sold=pl.col("units").cast(pl.Float64).fill_null(0.0),
    )
    observed = pl.col("date") <= cutoff
    recent = observed & (pl.col("date") > cutoff - timedelta(days=28))
    for level, scope in (("category", ["category"]), ("store", [])):
        planned = {
            f"{level}_price_ratio": _ratio(_others("paid", scope), _others("listed", scope)),
            f"{level}_promo_share": _ratio(_others("promoted", scope), _others("sold", scope)),
        }
        frame = (
            frame.with_columns(**planned)
            # a day when no other product of the scope sold: the previous day's
            .with_columns(pl.col(*planned).forward_fill().over("sku"))
            # future days: no plan known, the recent typical level (no campaign)
            .with_columns(
                pl.when(observed).then(pl.col(c)).otherwise(_typical(c, scope, recent)).alias(c)
                for c in planned
            )
        )
    return frame


def interaction_pairs(
    order_lines: pl.DataFrame, cutoff: date, customers: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Customer x product purchases up to the cutoff, with first/last purchase dates.

    With `customers` (dim_customers), column `identified` says whether the buyer
    is a CRM customer (populations.IDENTIFIED) or a guest.
    """
    pairs = (
        order_lines.filter(pl.col("order_date") <= cutoff, pl.col("customer_key").is_not_null())
        .group_by("customer_key", "sku")
        .agg(
            first_purchase_date=pl.col("order_date").min(),
            last_purchase_date=pl.col("order_date").max(),
            n_orders=pl.col("order_id").n_unique(),
            units=pl.col("quantity").sum(),
        )
        .sort("customer_key", "sku")
    )
    if customers is None:
        return pairs
    return pairs.with_columns(
        identified=pl.col("customer_key").is_in(
            customers.filter(pl.col("is_known_to_crm"))["customer_key"].implode()
        )
    )


def sparse_matrix(pairs: pl.DataFrame, customers: list[str], items: list[str]) -> sparse.csr_matrix:
    """Binary customer x item matrix (rows/columns in the given orders; unknown keys dropped)."""
    row_of = pl.DataFrame({"customer_key": customers, "row": np.arange(len(customers))})
    col_of = pl.DataFrame({"sku": items, "col": np.arange(len(items))})
    cells = pairs.join(row_of, on="customer_key").join(col_of, on="sku")
    return sparse.csr_matrix(
        (
            np.ones(cells.height, dtype=np.float32),
            (cells["row"].to_numpy(), cells["col"].to_numpy()),
        ),
        shape=(len(customers), len(items)),
    )
