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
from scipy import sparse, stats

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


# Direct multi-horizon demand: the forecast of a day `h` days after the cutoff uses
# features lagged by lag_for(h), the shortest of these no shorter than h, so next-day
# forecasts read yesterday's sales while four weeks out reads what is known by then.
DEMAND_LAGS = (1, 2, 3, 5, 7, 14, 21, 28)
# The business fixes its promotion plan this many days ahead (generator: 28-42 days);
# a forecast day further out than this from the cutoff has no plan.
PLAN_HORIZON_DAYS = 28
DEMAND_FEATURE_COLUMNS = [
    "lag_days",
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
    "unknown_share_28",
    "promo_share_7",
    "promo_share_28",
    "trend_7_28",
    "trend_28_91",
    "last_price",
    "price_ratio",
    "list_price",
    "product_age_days",
    "regular_mean_14",
    "regular_mean_28",
    "regular_mean_91",
    "category_ratio_14",
    "level",
    "level_reanchored",
    "campaign_share_28",
    "price_change_28",
    "price_change_91",
    "planned_discount",
    "planned_campaign",
    "planned_category_share",
]
# Known in advance from the published promotion plan (cleaned.promotion_plan), so read on
# the target day: the product's category discount, whether any campaign runs, and the
# share of categories on promotion. 0 where the plan has nothing (or no plan covers the day).
PLANNED_COLUMNS = ["planned_discount", "planned_campaign", "planned_category_share"]
# A category whose regular-day sales of the last 14 days moved this far from its 28-day
# level (and beyond Poisson noise, BREAK_Z) has had a break: the level re-anchors on them.
BREAK_RATIO = 0.1
BREAK_Z = 4.0
# A day on which an order channel that sells every day has fewer than this share of its
# trailing median orders is unknown (a file missing, empty, held back or mostly quarantined).
UNKNOWN_DAY_RATIO = 0.5
UNKNOWN_DAY_CHANCE = 0.001


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
    read, never its all-time first/last order dates.
    """
    past = activity.filter(
        pl.col("activity_date") <= as_of, pl.col("customer_key").is_not_null()
    ).with_columns(days_ago=(pl.lit(as_of) - pl.col("activity_date")).dt.total_days())
    recent = pl.col("days_ago")
    channels = activity_channels(activity)
    buying = (
        past.filter(pl.col("n_orders") > 0)
        .group_by("customer_key")
        .agg(
            first_order_date=pl.col("activity_date").min(),
            last_order_date=pl.col("activity_date").max(),
            active_days=pl.len(),
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
    promo = (
        orders.filter(pl.col("order_date") <= as_of, pl.col("customer_key").is_not_null())
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
        )
        .select(
            "customer_key", "as_of_date", *customer_feature_columns(channels), "identified"
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


def lag_for(horizon: int) -> int:
    """The lag of the features that forecast `horizon` days ahead: never shorter than it."""
    if horizon < 1:
        raise ValueError(f"a forecast horizon is at least 1 day, got {horizon}")
    return next((lag for lag in DEMAND_LAGS if lag >= horizon), seasonal_lag_days(horizon))


def lags_for(horizon_days: int) -> list[int]:
    """Every lag the forecast of the next `horizon_days` days uses (the training stacks)."""
    return sorted({lag_for(h) for h in range(1, horizon_days + 1)})


def unknown_sales_days(
    orders: pl.DataFrame, window_days: int = 28, min_ratio: float = UNKNOWN_DAY_RATIO
) -> list[date]:
    """Days whose sales are not (fully) known, from fct_orders (order_date, channel).

    An order channel with fewer than `min_ratio` x its median orders of the previous
    `window_days` days (at least 7 of them), and so few that a Poisson count around
    that median would fall that low with a chance under UNKNOWN_DAY_CHANCE, had its
    file missing, empty, held back by the volume guard or mostly quarantined: that
    day's sales are unknown, not zero.
    """
    if orders.is_empty():
        return []
    counts = orders.group_by("order_date", "channel").agg(n=pl.len())
    days = pl.date_range(
        orders["order_date"].min(), orders["order_date"].max(), interval="1d", eager=True
    ).alias("order_date")
    grid = (
        days.to_frame()
        .join(counts.select("channel").unique(), how="cross")
        .join(counts, on=["order_date", "channel"], how="left")
        .with_columns(pl.col("n").fill_null(0))
        .sort("channel", "order_date")
    )
    typical = pl.col("n").shift(1).rolling_median(window_days, min_samples=7).over("channel")
    short = grid.with_columns(typical=typical).filter(pl.col("n") < min_ratio * pl.col("typical"))
    # and beyond chance: a small channel does have quiet days (as the volume guard says)
    chance = stats.poisson.cdf(short["n"].to_numpy(), short["typical"].to_numpy())
    return sorted(short.filter(pl.Series(chance < UNKNOWN_DAY_CHANCE))["order_date"].unique())


def planned_promotions(
    plan: pl.DataFrame | None, cutoff: date, categories: list[str]
) -> pl.DataFrame:
    """date, category, planned_discount (fraction), planned_campaign, planned_category_share
    from the campaigns published by the cutoff (`published_on <= cutoff`: a plan published
    later was not known then). Days without a planned campaign are absent."""
    schema = {
        "date": pl.Date, "category": pl.String, "planned_discount": pl.Float64,
        "planned_campaign": pl.Float64, "planned_category_share": pl.Float64,
    }  # fmt: skip
    if plan is None or plan.is_empty() or not categories:
        return pl.DataFrame(schema=schema)
    days = (
        plan.filter(pl.col("published_on") <= cutoff)
        .select(
            date=pl.date_ranges("start_date", "end_date", interval="1d"),
            category=pl.col("categories").str.split(";"),
            discount=pl.col("discount_pct") / 100,
        )
        .explode("date")
        .explode("category")
    )
    by_category = days.group_by("date", "category").agg(planned_discount=pl.col("discount").max())
    share = by_category.filter(pl.col("category").is_in(categories)).group_by("date").agg(
        planned_category_share=pl.len() / len(categories)
    )
    campaign_days = days.select("date").unique()
    return (
        campaign_days.join(pl.DataFrame({"category": categories}), how="cross")
        .join(by_category, on=["date", "category"], how="left")
        .join(share, on="date", how="left")
        .select(
            "date",
            "category",
            pl.col("planned_discount").fill_null(0.0),
            planned_campaign=pl.lit(1.0),
            planned_category_share=pl.col("planned_category_share").fill_null(0.0),
        )
        .cast(schema)  # type: ignore[arg-type]
    )


def plan_coverage(
    plan: pl.DataFrame | None, cutoff: date, plan_horizon_days: int = PLAN_HORIZON_DAYS
) -> date | None:
    """The last day the published plan covers (cutoff + plan_horizon_days), or None
    without a plan (no table, or not one campaign published by the cutoff)."""
    if plan is None or plan.filter(pl.col("published_on") <= cutoff).is_empty():
        return None
    return cutoff + timedelta(days=plan_horizon_days)


def demand_features(
    sales: pl.DataFrame,
    products: pl.DataFrame,
    cutoff: date,
    horizon_days: int,
    plan: pl.DataFrame | None = None,
    unknown_days: list[date] | tuple[date, ...] = (),
    plan_horizon_days: int = PLAN_HORIZON_DAYS,
) -> pl.DataFrame:
    """Product x day grid, stacked once per lag of `lags_for(horizon_days)` (`lag_days`).

    `sales` is fct_product_daily_sales (days with sales only); days without sales
    become zero, except `unknown_days` (see `unknown_sales_days`), whose units are
    null: excluded from training targets and from every lag and window (windows
    average over the known days). The grid runs from each product's first sale to
    cutoff + horizon_days; the future days have `units` null and are what the
    forecast fills in, each once, in the stack of lag_for(its horizon) (column
    `horizon_day`). Every lag and window of a stack ends `lag_days` before the
    target day (a direct strategy, no recursion); the observed days appear in every
    stack, so one model learns how the information ages.

    The level the model scales is the product's mean on regular (campaign-free)
    known days of the last 28 days, re-anchored on the last 14 days' when its
    category had a break (`BREAK_RATIO`, `BREAK_Z`). The target day's planned
    promotions come from `plan` (cleaned.promotion_plan, campaigns published by the
    cutoff); `planned` says whether the plan covers the day (through cutoff +
    plan_horizon_days): where it does not, the planned columns are 0 (no campaign
    assumed; the forecast's metadata says so).
    """
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
    unknown = sorted({d for d in unknown_days if d <= cutoff})
    observed = sales.filter(pl.col("sales_date") <= cutoff)
    starts = observed.group_by("sku").agg(first_day=pl.col("sales_date").min())
    is_unknown = pl.col("date").is_in(pl.Series(unknown, dtype=pl.Date).implode())
    known_day = (pl.col("date") <= cutoff) & ~is_unknown
    grid = (
        starts.with_columns(
            date=pl.date_ranges(
                "first_day", pl.lit(cutoff + timedelta(days=horizon_days)), interval="1d"
            )
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
            units=pl.when(known_day).then(pl.col("units").fill_null(0)),
            promo_share=pl.when(known_day).then(pl.col("promo_share").fill_null(0)),
            avg_unit_price=pl.when(known_day).then(pl.col("avg_unit_price")),
        )
        .sort("sku", "date")
    )
    grid = grid.join(_regular_days(grid), on="date", how="left").with_columns(
        known=pl.col("units").is_not_null().cast(pl.Float64),
        regular_day=pl.col("regular_day").fill_null(0.0) * pl.col("units").is_not_null(),
    )
    base = _windows(grid)
    categories = sorted(products["category"].drop_nulls().unique().to_list())
    covered_through = plan_coverage(plan, cutoff, plan_horizon_days)
    promotions = planned_promotions(plan, cutoff, categories)
    stacks = [
        _lag_stack(base, lag, cutoff, horizon_days) for lag in lags_for(horizon_days)
    ]
    planned = (
        pl.lit(False) if covered_through is None else pl.col("date") <= pl.lit(covered_through)
    )
    return (
        pl.concat(stacks)
        .join(promotions, on=["date", "category"], how="left")
        .with_columns(
            planned=planned,
            horizon_days=pl.lit(horizon_days),
            horizon_day=pl.when(pl.col("is_future"))
            .then((pl.col("date") - pl.lit(cutoff)).dt.total_days())
            .cast(pl.Int64),
        )
        .with_columns(
            pl.when(pl.col("planned")).then(pl.col(c).fill_null(0.0)).otherwise(0.0).alias(c)
            for c in PLANNED_COLUMNS
        )
        .select(
            "sku", "date", "is_future", "units", "horizon_days", "horizon_day", "planned",
            *DEMAND_FEATURE_COLUMNS,
        )
        .sort("sku", "date", "lag_days")
    )


def _windows(grid: pl.DataFrame) -> pl.DataFrame:
    """Per product and day, statistics of the windows ending on that day (inclusive),
    over known days only; shifted by each lag in `_lag_stack`."""
    units = pl.col("units").cast(pl.Float64)
    known, regular = pl.col("known"), pl.col("regular_day")

    def total(expr: pl.Expr, window: int) -> pl.Expr:
        return expr.fill_null(0.0).rolling_sum(window, min_samples=1).over("sku")

    def mean(expr: pl.Expr, window: int) -> pl.Expr:
        return _ratio(total(expr, window), total(known, window))

    def regular_mean(window: int) -> pl.Expr:
        return _ratio(total(units * regular, window), total(regular, window))

    regular_price = pl.when(regular > 0).then(pl.col("avg_unit_price"))

    def price_change(window: int) -> pl.Expr:
        """The last regular-day price over the window's mean regular-day price (units
        weighted): how far a price step since then moves demand off the level."""
        sold = units * regular * pl.col("avg_unit_price").is_not_null()
        paid = units * regular_price
        mean_price = _ratio(total(paid, window), total(sold, window))
        return regular_price.forward_fill().over("sku") / mean_price

    windows = grid.with_columns(
        rolling_mean_7=mean(units, 7),
        rolling_mean_28=mean(units, 28),
        rolling_mean_91=mean(units, 91),
        zero_share_28=mean((units == 0).cast(pl.Float64), 28),
        unknown_share_28=1 - known.rolling_mean(28, min_samples=1).over("sku"),
        promo_share_7=mean(pl.col("promo_share"), 7),
        promo_share_28=mean(pl.col("promo_share"), 28),
        regular_mean_14=regular_mean(14),
        regular_mean_28=regular_mean(28),
        regular_mean_91=regular_mean(91),
        regular_days_14=total(regular, 14),
        campaign_share_28=1 - _ratio(total(regular, 28), total(known, 28)),
        price_change_28=price_change(28),
        price_change_91=price_change(91),
        last_price=pl.col("avg_unit_price").forward_fill().over("sku"),
    )
    return windows.join(_category_breaks(windows), on=["date", "category"], how="left")


def _category_breaks(windows: pl.DataFrame) -> pl.DataFrame:
    """date, category, category_ratio_14 (regular-day units of the last 14 days over the
    28-day level, summed over the category's products) and level_reanchored: the ratio is
    off by more than BREAK_RATIO and by more than BREAK_Z standard errors of a Poisson
    mean over the 14 days' regular days."""
    per_day = windows.group_by("date", "category").agg(
        short=exact_sum(pl.col("regular_mean_14")),
        long=exact_sum(pl.col("regular_mean_28")),
        days=pl.col("regular_days_14").median(),
    )
    ratio = _ratio(pl.col("short"), pl.col("long"))
    z = (pl.col("short") - pl.col("long")) / (pl.col("long") / pl.col("days")).sqrt()
    return per_day.select(
        "date",
        "category",
        category_ratio_14=ratio,
        level_reanchored=(
            ((ratio - 1).abs() > BREAK_RATIO) & (z.abs() > BREAK_Z) & (pl.col("days") > 0)
        )
        .fill_null(False)
        .cast(pl.Float64),
    )


def _lag_stack(base: pl.DataFrame, lag: int, cutoff: date, horizon_days: int) -> pl.DataFrame:
    """The rows whose features are `lag` days old: every observed day, and the future days
    whose horizon this lag serves."""
    season = seasonal_lag_days(lag)
    units = pl.col("units").cast(pl.Float64)

    def lagged(expr: pl.Expr, days: int = lag) -> pl.Expr:
        return expr.shift(days).over("sku")

    shifted = [
        "rolling_mean_7", "rolling_mean_28", "rolling_mean_91", "zero_share_28",
        "unknown_share_28", "promo_share_7", "promo_share_28", "regular_mean_14",
        "regular_mean_28", "regular_mean_91", "category_ratio_14", "level_reanchored",
        "campaign_share_28", "price_change_28", "price_change_91", "last_price",
    ]  # fmt: skip
    horizon = (pl.col("date") - pl.lit(cutoff)).dt.total_days()
    served = [h for h in range(1, horizon_days + 1) if lag_for(h) == lag]
    day_of_year = pl.col("date").dt.ordinal_day().cast(pl.Float64) * (2 * math.pi / 365.25)
    frame = base.with_columns(
        lag_days=pl.lit(lag),
        day_of_week=pl.col("date").dt.weekday(),
        day_of_year_sin=day_of_year.sin(),
        day_of_year_cos=day_of_year.cos(),
        month=pl.col("date").dt.month(),
        lag_horizon=lagged(units),
        seasonal_naive=lagged(units, season),
        same_weekday_mean_4=pl.mean_horizontal([lagged(units, season + 7 * k) for k in range(4)]),
        product_age_days=(pl.col("date") - pl.col("first_day")).dt.total_days(),
        **{c: lagged(pl.col(c)) for c in shifted},
    ).with_columns(
        trend_7_28=_ratio(pl.col("rolling_mean_7"), pl.col("rolling_mean_28")),
        trend_28_91=_ratio(pl.col("rolling_mean_28"), pl.col("rolling_mean_91")),
        price_ratio=pl.col("last_price") / pl.col("list_price"),
        level=pl.when(pl.col("level_reanchored") > 0)
        .then(pl.col("regular_mean_28") * pl.col("category_ratio_14"))
        .otherwise(pl.col("regular_mean_28")),
    )
    return frame.filter(~pl.col("is_future") | horizon.is_in(served))


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
