"""Small synthetic marts in the dbt contract's shape, for the ML tests (no tests here).

Customers order at a personal daily rate until they lapse for good, so churn
is learnable from recency vs habit; products have Zipf popularity and each
customer prefers two of four categories, so co-purchases carry signal;
demand has a weekly pattern.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

START = date(2026, 1, 1)
CATEGORIES = ["fashion", "home", "beauty", "grocery"]


def make_marts(
    n_customers: int = 240,
    n_products: int = 24,
    days: int = 150,
    seed: int = 7,
    channels: tuple[str, ...] = ("web", "app", "store"),
) -> dict[str, pl.DataFrame]:
    """`channels`: the declared order channels (one `<channel>_orders` activity column each)."""
    rng = np.random.default_rng(seed)
    keys = [f"c{i:05d}" for i in range(n_customers)]
    skus = [f"SKU-{i:05d}" for i in range(1, n_products + 1)]
    category = np.arange(n_products) % len(CATEGORIES)
    popularity = 1.0 / (rng.permutation(n_products) + 1) ** 0.8
    rate = rng.lognormal(np.log(0.12), 0.5, n_customers)
    lapse_day = rng.exponential(200, n_customers).astype(int) + rng.integers(0, 40, n_customers)
    channel_mix = rng.dirichlet([1] * len(channels), n_customers)
    liked = np.stack([rng.choice(len(CATEGORIES), 2, replace=False) for _ in range(n_customers)])
    weekday_factor = np.array([0.8, 0.9, 0.9, 1.0, 1.1, 1.4, 0.9])

    lines = []
    order_number = 0
    for day in range(days):
        today = START + timedelta(days=day)
        active = lapse_day > day
        p = rate * weekday_factor[today.weekday()] * active
        for c in np.flatnonzero(rng.random(n_customers) < p):
            order_number += 1
            channel = channels[rng.choice(len(channels), p=channel_mix[c])]
            weights = popularity * np.where(np.isin(category, liked[c]), 4.0, 0.5)
            n_lines = 1 + rng.poisson(0.8)
            chosen = rng.choice(
                n_products, size=min(n_lines, n_products), replace=False, p=weights / weights.sum()
            )
            promo = bool(rng.random() < 0.2)
            for line_number, product in enumerate(chosen, start=1):
                quantity = 1 + int(rng.poisson(0.3))
                price = 10.0 + 2.0 * product
                lines.append(
                    {
                        "order_id": f"{channel}:{order_number}",
                        "line_number": line_number,
                        "channel": channel,
                        "customer_key": keys[c],
                        "order_date": today,
                        "sku": skus[product],
                        "quantity": quantity,
                        "unit_price": price,
                        "line_amount": quantity * price,
                        "is_promo": promo,
                    }
                )
    order_lines = pl.DataFrame(lines).with_columns(
        ordered_at=pl.col("order_date").cast(pl.Datetime("us", "UTC")),
        line_kind=pl.lit("product"),
        is_return=pl.lit(False),
    )
    orders = order_lines.group_by("order_id").agg(
        pl.col("channel").first(),
        pl.col("customer_key").first(),
        pl.col("ordered_at").first(),
        pl.col("order_date").first(),
        store_code=pl.lit(None, pl.String),
        n_lines=pl.len(),
        n_units=pl.col("quantity").sum(),
        order_total=pl.col("line_amount").sum(),
        has_promo=pl.col("is_promo").any(),
        is_return=pl.col("is_return").all(),
    )
    purchases = (
        orders.group_by("customer_key", "order_date")
        .agg(
            n_orders=pl.len(),
            n_units=pl.col("n_units").sum(),
            revenue=pl.col("order_total").sum(),
            **{f"{c}_orders": (pl.col("channel") == c).sum() for c in channels},
        )
        .rename({"order_date": "activity_date"})
    )
    engagement = (
        pl.DataFrame(
            {
                "customer_key": np.repeat(keys, days),
                "day": np.tile(np.arange(days), n_customers),
                "n_tickets": rng.binomial(1, 0.01, n_customers * days),
                "n_sessions": rng.binomial(1, 0.05, n_customers * days)
                * (np.repeat(lapse_day, days) > np.tile(np.arange(days), n_customers)),
            }
        )
        .filter((pl.col("n_tickets") + pl.col("n_sessions")) > 0)
        .select(
            "customer_key",
            pl.lit(START).alias("activity_date") + pl.duration(days="day"),
            "n_tickets",
            "n_sessions",
        )
    )
    activity = (
        purchases.join(engagement, on=["customer_key", "activity_date"], how="full", coalesce=True)
        .with_columns(
            pl.col(
                "n_orders",
                "n_units",
                *(f"{c}_orders" for c in channels),
                "n_tickets",
                "n_sessions",
            )
            .fill_null(0)
            .cast(pl.Int64),
            pl.col("revenue").fill_null(0.0),
        )
        .with_columns(pages_viewed=pl.col("n_sessions") * 5, product_views=pl.col("n_sessions") * 2)
    )
    first_last = orders.group_by("customer_key").agg(
        first_order_date=pl.col("order_date").min(), last_order_date=pl.col("order_date").max()
    )
    customers = pl.DataFrame(
        {
            "customer_key": keys,
            "signup_date": [
                START - timedelta(days=int(d)) for d in rng.integers(0, 400, n_customers)
            ],
            "country": "DE",
            "birth_year": rng.integers(1950, 2005, n_customers),
            "is_known_to_crm": True,
        }
    ).join(first_last, on="customer_key", how="left")
    products = pl.DataFrame(
        {
            "sku": skus,
            "name": skus,
            "category": [CATEGORIES[c] for c in category],
            "subcategory": "any",
            "list_price": [10.0 + 2.0 * i for i in range(n_products)],
        }
    )
    daily_sales = (
        order_lines.group_by("sku", "order_date")
        .agg(
            units=pl.col("quantity").sum(),
            revenue=pl.col("line_amount").sum(),
            n_orders=pl.col("order_id").n_unique(),
            avg_unit_price=pl.col("line_amount").sum() / pl.col("quantity").sum(),
            promo_share=pl.col("is_promo").cast(pl.Float64).mean(),
        )
        .rename({"order_date": "sales_date"})
    )
    return {
        "fct_order_lines": order_lines,
        "fct_orders": orders,
        "fct_customer_daily_activity": activity,
        "dim_customers": customers,
        "dim_products": products,
        "fct_product_daily_sales": daily_sales,
    }


def plan_frame(
    published_on: date, start: date, end: date, categories: str = "home"
) -> pl.DataFrame:
    """One campaign of cleaned.promotion_plan: 20 % off `categories` from `start` to `end`,
    published on `published_on`."""
    return pl.DataFrame(
        {
            "campaign_code": ["C1"],
            "published_on": [published_on],
            "start_date": [start],
            "end_date": [end],
            "discount_pct": [20],
            "categories": [categories],
        }
    )
