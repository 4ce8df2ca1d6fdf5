"""Point-in-time correctness of the ML features."""

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from aiwf_assets.ml import demand, features
from tests.test_ml_marts_factory import START, make_marts, plan_frame

CUTOFF = START + timedelta(days=70)


def _after_cutoff_activity(marts: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The marts plus big purchases, tickets and a brand-new customer after the cutoff."""
    activity = marts["fct_customer_daily_activity"]
    later = activity.filter(pl.col("activity_date") <= START + timedelta(days=20)).with_columns(
        activity_date=pl.col("activity_date") + pl.duration(days=80),
        revenue=pl.col("revenue") * 100,
        n_tickets=pl.lit(3, pl.Int64),
    )
    newcomer = activity.head(1).with_columns(
        customer_key=pl.lit("newcomer"), activity_date=pl.lit(CUTOFF + timedelta(days=1))
    )
    orders = marts["fct_orders"]
    later_orders = orders.head(50).with_columns(
        order_date=pl.lit(CUTOFF + timedelta(days=2)), has_promo=pl.lit(True)
    )
    customers = marts["dim_customers"].with_columns(  # all-time dates now reach past the cutoff
        last_order_date=pl.lit(CUTOFF + timedelta(days=90))
    )
    return {
        **marts,
        "fct_customer_daily_activity": pl.concat([activity, later, newcomer]),
        "fct_orders": pl.concat([orders, later_orders]),
        "dim_customers": customers,
    }


def _customer_features(marts: dict[str, pl.DataFrame], as_of: date) -> pl.DataFrame:
    return features.customer_features_as_of(
        marts["fct_customer_daily_activity"], marts["fct_orders"], marts["dim_customers"], as_of
    )


def test_activity_after_the_cutoff_does_not_change_customer_features() -> None:
    marts = make_marts(n_customers=80, days=100)
    before = _customer_features(marts, CUTOFF)
    after = _customer_features(_after_cutoff_activity(marts), CUTOFF)
    assert before.height > 0
    assert_frame_equal(before, after)
    assert set(features.customer_feature_columns(("web", "app", "store"))) <= set(before.columns)


def test_order_rate_columns_count_only_order_days_up_to_the_as_of_date() -> None:
    """The churn model's quiet probability reads days with an order and days since the first
    one as of the snapshot: a later order, a ticket-only day and a second order on one day
    do not count."""
    day = date(2026, 1, 1)

    def activity_row(offset: int, orders: int, tickets: int = 0) -> dict[str, object]:
        return {
            "customer_key": "c1",
            "activity_date": day + timedelta(days=offset),
            "n_orders": orders,
            "n_units": orders,
            "revenue": 10.0 * orders,
            "web_orders": orders,
            "app_orders": 0,
            "store_orders": 0,
            "n_tickets": tickets,
            "n_sessions": 0,
            "pages_viewed": 0,
            "product_views": 0,
        }

    activity = pl.DataFrame(
        [activity_row(2, 1), activity_row(5, 2), activity_row(8, 0, tickets=1), activity_row(10, 1)]
        + [activity_row(20, 1), activity_row(25, 3)]  # after the as-of date
    )
    orders = pl.DataFrame(
        {
            "customer_key": ["c1"], "order_date": [day + timedelta(days=2)],
            "has_promo": [False], "is_return": [False],
        }
    )
    customers = pl.DataFrame(
        {
            "customer_key": ["c1"],
            "signup_date": [day],
            "birth_year": [1990],
            "is_known_to_crm": [True],
        }
    )
    as_of = day + timedelta(days=12)
    row = features.customer_features_as_of(activity, orders, customers, as_of).row(0, named=True)
    assert (row["order_days"], row["days_since_first_order"]) == (3.0, 10.0)
    assert set(features.ORDER_RATE_COLUMNS).isdisjoint(
        features.feature_columns_of(
            features.customer_features_as_of(activity, orders, customers, as_of)
        )
    )


def test_a_return_on_a_day_without_a_purchase_nets_the_customers_money() -> None:
    """A store return booked days after the sale, with no purchase that day (its activity row:
    n_orders 0, negative revenue and units), lowers monetary, the revenue windows and units,
    and is neither a purchase day nor a purchase in the promotion share (found when returns
    without a card were attributed to their buyer: the features skipped such days)."""
    day = date(2026, 1, 1)

    def activity_row(offset: int, orders: int, units: int, revenue: float) -> dict[str, object]:
        return {
            "customer_key": "c1", "activity_date": day + timedelta(days=offset),
            "n_orders": orders, "n_units": units, "revenue": revenue,
            "web_orders": 0, "app_orders": 0, "store_orders": orders,
            "n_tickets": 0, "n_sessions": 0, "pages_viewed": 0, "product_views": 0,
        }

    activity = pl.DataFrame(
        [activity_row(2, 1, 3, 60.0), activity_row(6, 0, -1, -20.0)]  # the return: day 6
        + [activity_row(1, 0, -1, -5.0) | {"customer_key": "only_returns"}]
    )
    orders = pl.DataFrame(
        {
            "customer_key": ["c1", "c1"],
            "order_date": [day + timedelta(days=2), day + timedelta(days=6)],
            "has_promo": [False, True],  # the return line was on promotion
            "is_return": [False, True],
        }
    )
    customers = pl.DataFrame(
        {
            "customer_key": ["c1", "only_returns"], "signup_date": [day, day],
            "birth_year": [1990, 1990], "is_known_to_crm": [True, True],
        }
    )
    rows = features.customer_features_as_of(activity, orders, customers, day + timedelta(days=9))
    assert rows["customer_key"].to_list() == ["c1"]  # a customer with purchases only
    row = rows.row(0, named=True)
    assert (row["monetary"], row["revenue_30d"], row["avg_basket"]) == (40.0, 40.0, 40.0)
    assert (row["frequency"], row["units_per_order"], row["recency_days"]) == (1.0, 2.0, 7.0)
    assert (row["order_days"], row["promo_share"]) == (1.0, 0.0)


def test_snapshots_hold_the_cutoff_and_dated_training_points() -> None:
    dates = features.snapshot_dates(date(2026, 6, 30), date(2026, 1, 1), 30, 4, 7)
    assert dates == [
        date(2026, 6, 30),
        date(2026, 5, 31),
        date(2026, 5, 24),
        date(2026, 5, 17),
        date(2026, 5, 10),
    ]
    # training snapshots need two weeks of history before them
    assert features.snapshot_dates(date(2026, 2, 20), date(2026, 1, 1), 30, 4, 7) == [
        date(2026, 2, 20),
        date(2026, 1, 21),
    ]


def test_demand_features_at_an_origin_use_only_data_up_to_it() -> None:
    marts = make_marts(n_customers=80, days=100)
    sales, products = marts["fct_product_daily_sales"], marts["dim_products"]
    last_day = sales["sales_date"].max()
    full = features.demand_features(sales, products, last_day, horizon_days=7)
    origin = CUTOFF
    at_origin = features.demand_features(
        sales.filter(pl.col("sales_date") <= origin), products, origin, horizon_days=7
    )
    future = at_origin.filter(pl.col("is_future"))
    assert future["date"].unique().sort().to_list() == [
        origin + timedelta(days=d) for d in range(1, 8)
    ]
    assert future["units"].null_count() == future.height
    same_rows = full.join(future.select("sku", "date"), on=["sku", "date"], how="semi")
    # the planned price/promotion covariates are the one thing known ahead (from a plan)
    assert future.select(features.PLANNED_COLUMNS).null_count().sum_horizontal().item() == 0
    learned = [c for c in features.DEMAND_FEATURE_COLUMNS if c not in features.PLANNED_COLUMNS]
    columns = ["sku", "date", *learned]
    assert_frame_equal(
        same_rows.select(columns).sort("sku", "date"), future.select(columns).sort("sku", "date")
    )


def test_demand_grid_fills_days_without_sales_with_zero() -> None:
    sales = pl.DataFrame(
        {
            "sku": ["SKU-00001", "SKU-00001"],
            "sales_date": [date(2026, 1, 1), date(2026, 1, 4)],
            "units": [2, 5],
            "avg_unit_price": [10.0, 9.0],
            "promo_share": [0.0, 1.0],
        }
    )
    products = pl.DataFrame({"sku": ["SKU-00001"], "category": ["home"], "list_price": [10.0]})
    grid = features.demand_features(sales, products, date(2026, 1, 4), horizon_days=1)
    assert grid["units"].to_list() == [2, 0, 0, 5, None]
    assert grid["lag_horizon"].to_list() == [None, 2, 0, 0, 5]


def test_days_with_failed_or_empty_order_files_are_unknown_not_zero() -> None:
    sales = pl.DataFrame(
        {
            "sku": ["SKU-00001"] * 3,
            "sales_date": [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 5)],
            "units": [4, 2, 6],
            "avg_unit_price": [10.0, 10.0, 10.0],
            "promo_share": [0.0, 0.0, 0.0],
        }
    )
    products = pl.DataFrame({"sku": ["SKU-00001"], "category": ["home"], "list_price": [10.0]})
    sources = ["web_orders", "app_orders", "pos_transactions"]
    accounting = (
        pl.DataFrame(
            {
                "channel": sources * 5,
                "partition_date": [date(2026, 1, d) for d in range(1, 6) for _ in sources],
                "rows_cleaned": [9] * 15,
            }
        )
        .filter(  # 1-03: no pos file (failed / held back); 1-04: an empty app file
            ~(
                (pl.col("partition_date") == date(2026, 1, 3))
                & (pl.col("channel") == "pos_transactions")
            )
        )
        .with_columns(
            rows_cleaned=pl.when(
                (pl.col("partition_date") == date(2026, 1, 4)) & (pl.col("channel") == "app_orders")
            )
            .then(0)
            .otherwise(pl.col("rows_cleaned"))
        )
    )
    unknown = features.unknown_sales_days(accounting)
    assert unknown == [date(2026, 1, 3), date(2026, 1, 4)]
    # another source's missing day is not a sales day lost
    assert features.unknown_sales_days(accounting, ["web_orders"]) == []

    grid = features.demand_features(sales, products, date(2026, 1, 5), 1, unknown)
    assert grid["units"].to_list() == [4, 2, None, None, 6, None]
    # the means skip the unknown days (zeros would give 2.0 and 1.5 on 1-04 / 1-05)
    assert grid["rolling_mean_7"].to_list()[3:] == [3.0, 3.0, 4.0]
    assert grid["zero_share_28"].to_list()[3:] == [0.0, 0.0, 0.0]
    assert grid["lag_horizon"].to_list() == [None, 4, 2, None, None, 6]
    # the same grid without the accounting reads the lost days as zero sales
    plain = features.demand_features(sales, products, date(2026, 1, 5), 1)
    assert plain["units"].to_list() == [4, 2, 0, 0, 6, None]


def test_training_skips_days_whose_sales_are_unknown() -> None:
    marts = make_marts(n_customers=80, days=100)
    sales, products = marts["fct_product_daily_sales"], marts["dim_products"]
    last_day = sales["sales_date"].max()
    unknown = [last_day - timedelta(days=3), last_day - timedelta(days=40)]
    grid = features.demand_features(sales, products, last_day, 7, unknown)
    train, holdout = demand.split_holdout(grid, 14)
    assert not set(unknown) & set(train["date"].to_list() + holdout["date"].to_list())
    assert train["units"].null_count() == holdout["units"].null_count() == 0


def test_interactions_stop_at_the_cutoff() -> None:
    lines = make_marts(n_customers=40, days=60)["fct_order_lines"]
    pairs = features.interaction_pairs(lines, CUTOFF - timedelta(days=30))
    assert pairs["last_purchase_date"].max() <= CUTOFF - timedelta(days=30)
    matrix = features.sparse_matrix(
        pairs,
        pairs["customer_key"].unique().sort().to_list(),
        pairs["sku"].unique().sort().to_list(),
    )
    assert matrix.nnz == pairs.height


def _shuffled(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    return frame.sample(fraction=1.0, shuffle=True, seed=seed)


def _with_cents(marts: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The marts with prices in cents, as real ones have (the factory's are whole numbers,
    whose float sums are exact in any order)."""
    gross = {"revenue": "fct_customer_daily_activity", "avg_unit_price": "fct_product_daily_sales"}
    gross["list_price"] = "dim_products"
    changed = {
        name: marts[name].with_columns((pl.col(column) * 1.19).round(2))
        for column, name in gross.items()
    }
    return {**marts, **changed}


def _all_features(marts: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    activity, sales = marts["fct_customer_daily_activity"], marts["fct_product_daily_sales"]
    cutoff = activity["activity_date"].max()
    return {
        "customer": features.customer_feature_snapshots(
            activity,
            marts["fct_orders"],
            marts["dim_customers"],
            features.snapshot_dates(cutoff, activity["activity_date"].min(), 30, 4, 7),
        ),
        "demand": features.demand_features(
            sales, marts["dim_products"], sales["sales_date"].max(), 7
        ),
        "interactions": features.interaction_pairs(marts["fct_order_lines"], cutoff),
    }


def test_features_do_not_depend_on_the_row_order_of_the_marts() -> None:
    """The warehouse returns rows in no particular order (no ORDER BY; incremental dbt
    models append replaced days), so the same data must give bit-identical features:
    a float sum in another order differs in the last bits, which moves bin edges of
    gradient boosting and so the model."""
    marts = _with_cents(make_marts(n_customers=120, days=100))
    expected = _all_features(marts)
    for seed in (1, 2):
        got = _all_features({name: _shuffled(frame, seed) for name, frame in marts.items()})
        for name, frame in expected.items():
            assert_frame_equal(got[name], frame, check_exact=True)


_FEATURE_VERSIONS = """
import json
from aiwf_assets.ml.common import frame_version
from tests.test_ml_features import _all_features, _with_cents
from tests.test_ml_marts_factory import make_marts
frames = _all_features(_with_cents(make_marts(n_customers=400, days=120)))
print(json.dumps({name: frame_version(frame) for name, frame in frames.items()}))
"""


def test_features_do_not_depend_on_the_thread_count() -> None:
    """Polars splits a float sum over its threads, so the last bits of a group sum
    depend on the size of its thread pool (one per core): pods on nodes with another
    core count would build other features from the same data."""
    versions = []
    for threads in (1, 8):
        done = subprocess.run(
            [sys.executable, "-c", _FEATURE_VERSIONS],
            env={**os.environ, "POLARS_MAX_THREADS": str(threads)},
            cwd=Path(__file__).parent.parent,
            capture_output=True,
            text=True,
            check=True,
        )
        versions.append(json.loads(done.stdout))
    assert versions[0] == versions[1]


def test_an_extra_declared_channel_gets_its_share_downstream() -> None:
    """Channels come from the declared sources (the marts' `<channel>_orders` columns), not a
    fixed web/app/store list: a fourth channel's customers have non-zero shares of it, the
    churn model and the segmentation read it, and a segment can be "<channel>-first"."""
    from aiwf_assets.ml import churn, segmentation
    from aiwf_assets.ml.marts import mart_columns

    channels = ("web", "app", "store", "marketplace")
    marts = make_marts(n_customers=120, days=100, channels=channels)
    assert "marketplace_orders" in mart_columns("fct_customer_daily_activity", channels)
    frame = _customer_features(marts, CUTOFF)
    assert features.feature_channels(frame) == list(channels)
    assert features.feature_columns_of(frame) == features.customer_feature_columns(channels)
    buyers = (
        marts["fct_orders"]
        .filter(pl.col("channel") == "marketplace", pl.col("order_date") <= CUTOFF)["customer_key"]
        .unique()
    )
    theirs = frame.filter(pl.col("customer_key").is_in(buyers.implode()))
    assert theirs.height > 10 and (theirs["marketplace_share"] > 0).all()
    others = frame.filter(~pl.col("customer_key").is_in(buyers.implode()))
    assert (others["marketplace_share"] == 0).all()
    shares = frame.select(pl.sum_horizontal(f"{c}_share" for c in channels)).to_series()
    assert shares.to_list() == pytest.approx([1.0] * frame.height)

    snapshots = features.customer_feature_snapshots(
        marts["fct_customer_daily_activity"],
        marts["fct_orders"],
        marts["dim_customers"],
        features.snapshot_dates(CUTOFF, START, 30, 4, 7),
    )
    trained = churn.train_churn(snapshots, purchase_days(marts), horizon_days=30)
    assert "marketplace_share" in trained.artifact["feature_columns"]
    # one customer group buying only on the marketplace is described by it
    only = frame.with_columns(
        pl.when(pl.col("customer_key").is_in(buyers.head(30).implode()))
        .then(pl.lit(1.0))
        .otherwise(0.0)
        .alias("marketplace_share")
    )
    labels = only["customer_key"].is_in(buyers.head(30).implode()).cast(pl.Int64).to_numpy()
    described = segmentation.describe_segments(only, labels)
    assert "marketplace-first" in described.filter(pl.col("segment") == 1)["description"][0]


def purchase_days(marts: dict[str, pl.DataFrame]) -> pl.DataFrame:
    activity = marts["fct_customer_daily_activity"]
    return activity.filter(pl.col("n_orders") > 0).select("customer_key", "activity_date")


def test_unknown_sales_days_follow_the_declared_order_sources(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retailer's own order source (AIWF_SOURCES) counts; a declared source that never
    delivered a file does not make every day unknown."""
    from aiwf_assets.settings import reset_settings_cache
    from tests.test_sources_yaml import UK_OVERLAY

    (tmp_path / "uk.yaml").write_text(UK_OVERLAY)
    monkeypatch.setenv("AIWF_SOURCES", str(tmp_path / "uk.yaml"))
    reset_settings_cache()
    try:
        declared = features.order_line_sources()
        days = [date(2026, 1, d) for d in range(1, 5)]
        accounting = pl.DataFrame(
            {
                "channel": ["web_orders", "shop"] * 4,
                "partition_date": [d for d in days for _ in range(2)],
                "rows_cleaned": [3, 3, 3, 0, 3, 3, 3, 3],  # 1-02: the shop's file was empty
            }
        )
        unknown = features.unknown_sales_days(accounting)
    finally:
        monkeypatch.delenv("AIWF_SOURCES")
        reset_settings_cache()
    assert set(declared) == {"web_orders", "app_orders", "pos_transactions", "shop"}
    # app_orders and pos_transactions are declared but sent nothing: not every day unknown
    assert unknown == [date(2026, 1, 2)]
    assert "shop" not in features.order_line_sources()


def _accounting(rows: list[tuple[str, date, int, int, int]]) -> pl.DataFrame:
    """cleaned.file_accounting rows: (source, day, rows_cleaned, rows_quarantined, duplicates)."""
    frame = pl.DataFrame(
        rows,
        schema={
            "channel": pl.String,
            "partition_date": pl.Date,
            "rows_cleaned": pl.Int64,
            "rows_quarantined": pl.Int64,
            "duplicates_removed": pl.Int64,
        },
        orient="row",
    )
    return frame.with_columns(
        rows_in=pl.col("rows_cleaned") + pl.col("rows_quarantined") + pl.col("duplicates_removed")
    )


def test_a_day_with_many_order_lines_quarantined_is_unknown() -> None:
    """Quarantined lines beyond MAX_LOST_SHARE of a source's records make the day unknown;
    a few quarantined lines, or many duplicates removed (no sale lost), do not."""
    sources = ["web_orders", "pos_transactions"]
    day = [date(2026, 1, d) for d in range(1, 6)]
    accounting = _accounting(
        [
            (s, d, 100, 0, 0)
            for d in day
            for s in sources
            if (s, d)
            not in {
                ("web_orders", day[1]),
                ("pos_transactions", day[2]),
                ("web_orders", day[3]),
            }
        ]
        + [
            ("web_orders", day[1], 60, 40, 0),  # 40 % of the file's lines lost
            ("pos_transactions", day[2], 97, 3, 0),  # 3 %: a low day, not an unknown one
            ("web_orders", day[3], 100, 0, 150),  # every line sent 2.5 times: nothing lost
        ]
    )
    assert features.MAX_LOST_SHARE == 0.1
    assert features.unknown_sales_days(accounting, sources) == [day[1]]
    # the share is of the source's own records: just above and just below the limit
    edge = _accounting([(s, d, 100, 0, 0) for d in day[:2] for s in sources]).vstack(
        _accounting([("web_orders", day[2], 89, 11, 0), ("pos_transactions", day[2], 90, 10, 0)])
    )
    assert features.unknown_sales_days(edge, sources) == [day[2]]
    assert features.unknown_sales_days(edge, sources, max_lost_share=0.2) == []
    # an accounting without the quarantine counts reads as nothing lost
    assert (
        features.unknown_sales_days(
            accounting.select("channel", "partition_date", "rows_cleaned"), sources
        )
        == []
    )


def test_a_lost_newest_day_is_unknown_through_the_cutoff() -> None:
    """Every order file of the newest days missing leaves no accounting row for them: up to
    the cutoff they are unknown, not days without sales."""
    sources = ["web_orders", "app_orders"]
    day = [date(2026, 1, d) for d in range(1, 7)]
    accounting = _accounting([(s, d, 5, 0, 0) for d in day[:4] for s in sources])
    assert features.unknown_sales_days(accounting, sources) == []
    assert features.unknown_sales_days(accounting, sources, through=day[5]) == day[4:]
    # a cutoff inside the accounted days changes nothing
    assert features.unknown_sales_days(accounting, sources, through=day[2]) == []
    # one source's newest file lost: the newest day is accounted (the other source) already
    partial = accounting.filter(
        ~((pl.col("channel") == "app_orders") & (pl.col("partition_date") == day[3]))
    )
    assert features.unknown_sales_days(partial, sources) == [day[3]]


def test_read_file_accounting_brings_the_quarantine_counts(tmp_path: Path) -> None:
    from aiwf_assets.cleaning.transforms import ACCOUNTING_SCHEMA
    from aiwf_assets.io.warehouse import DuckDBWarehouse
    from aiwf_assets.ml.marts import ACCOUNTING_TABLE, read_file_accounting

    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    assert read_file_accounting(wh).columns == [
        "channel",
        "partition_date",
        "rows_cleaned",
        "rows_quarantined",
    ]
    stored = pl.DataFrame(
        [("web_orders", date(2026, 1, 1), 10, 6, 4, 0, 10, 10)],
        schema=ACCOUNTING_SCHEMA,
        orient="row",
    )
    wh.replace_table(ACCOUNTING_TABLE, stored)
    read = read_file_accounting(wh)
    assert read.row(0) == ("web_orders", date(2026, 1, 1), 6, 4)
    assert features.unknown_sales_days(read, ["web_orders"]) == [date(2026, 1, 1)]


def test_last_mart_day_is_the_newest_date_without_reading_the_rows(tmp_path: Path) -> None:
    from aiwf_assets.io.warehouse import DuckDBWarehouse
    from aiwf_assets.ml.marts import last_mart_day

    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    with pytest.raises(LookupError, match="marts.fct_customer_daily_activity"):
        last_mart_day(wh, "fct_customer_daily_activity", "activity_date")
    days = [date(2026, 1, 3), date(2026, 2, 1), date(2026, 1, 20)]
    wh.replace_table("marts.fct_customer_daily_activity", pl.DataFrame({"activity_date": days}))
    assert last_mart_day(wh, "fct_customer_daily_activity", "activity_date") == date(2026, 2, 1)
    wh.replace_table(
        "marts.fct_customer_daily_activity",
        pl.DataFrame({"activity_date": []}, {"activity_date": pl.Date}),
    )
    assert last_mart_day(wh, "fct_customer_daily_activity", "activity_date") is None


def test_a_source_added_later_leaves_the_days_before_it_known() -> None:
    """A retailer that opens a new order channel partway through the history: the days
    before its first file are known (the channel did not exist, no sale was lost); from
    its first file on, a day without it is unknown like for any other source."""
    day = [date(2026, 3, d) for d in range(1, 8)]
    accounting = _accounting(
        [("web_orders", d, 100, 0, 0) for d in day]
        + [("app_orders", d, 50, 0, 0) for d in day[3:] if d != day[5]]
    )
    sources = ["web_orders", "app_orders"]
    assert features.unknown_sales_days(accounting, sources) == [day[5]]
    # a day lost on the older source before the new one started is still unknown
    older_lost = accounting.filter(
        ~((pl.col("channel") == "web_orders") & (pl.col("partition_date") == day[1]))
    )
    assert features.unknown_sales_days(older_lost, sources) == [day[1], day[5]]
    # through the cutoff: both sources expected on a lost newest day
    assert features.unknown_sales_days(accounting, sources, through=date(2026, 3, 8)) == [
        day[5],
        date(2026, 3, 8),
    ]


def test_planned_campaigns_read_the_plan_as_published_when_the_forecast_was_made() -> None:
    """Future days see campaigns published by the cutoff, history days those published by
    `date - horizon_days`: a campaign published after the cutoff is never used."""
    days = [date(2026, 1, 1) + timedelta(days=d) for d in range(40)]
    sales = pl.DataFrame(
        {
            "sku": ["SKU-00001"] * 40 + ["SKU-00002"] * 40,
            "sales_date": days + days,
            "units": [3] * 80,
            "avg_unit_price": [10.0] * 80,
            "promo_share": [0.0] * 80,
        }
    )
    products = pl.DataFrame(
        {"sku": ["SKU-00001", "SKU-00002"], "category": ["Home", "Toys"], "list_price": [10.0] * 2}
    )
    cutoff = days[-1]  # 2026-02-09; future days 02-10..02-16
    future = (cutoff + timedelta(days=2), cutoff + timedelta(days=3))
    past = (date(2026, 1, 20), date(2026, 1, 21))

    def grid(plan: pl.DataFrame) -> pl.DataFrame:
        return features.demand_features(sales, products, cutoff, 7, plan=plan)

    # published on the cutoff: the two future days are campaign days, for home only
    known = grid(
        pl.concat(
            [
                plan_frame(cutoff, *future, "home"),
                plan_frame(date(2026, 1, 10), *past, "home;garden"),
            ]
        )
    )
    flagged = known.filter(pl.col("planned_campaign"))
    assert sorted(set(flagged["date"].to_list())) == [*past, *future]
    assert flagged.filter(pl.col("sku") == "SKU-00001")["planned_category"].all()
    assert not flagged.filter(pl.col("sku") == "SKU-00002")["planned_category"].any()
    # one day after the cutoff: not known to the forecast
    late = grid(plan_frame(cutoff + timedelta(days=1), *future, "home"))
    assert not late["planned_campaign"].any()
    # history: published 5 days before a campaign day is too late for a 7-day-ahead forecast
    short = grid(plan_frame(past[0] - timedelta(days=5), *past, "home"))
    assert not short["planned_campaign"].any()
    # without a plan nothing is planned, and the model's features are the same
    none = grid(None)
    assert not none["planned"].any() and not none["planned_campaign"].any()
    assert_frame_equal(
        none.select(features.DEMAND_FEATURE_COLUMNS), known.select(features.DEMAND_FEATURE_COLUMNS)
    )
    # days before the first publication, or further ahead than the plan reaches: no plan
    assert not known.filter(pl.col("date") < date(2026, 1, 17))["planned"].any()
    assert known.filter(pl.col("is_future"))["planned"].all()


def test_plan_note_names_the_days_without_a_plan() -> None:
    d = [date(2026, 3, 1) + timedelta(days=i) for i in range(4)]
    assert features.plan_note(d, [True] * 4) == "the promotion plan covers every forecast day"
    assert features.plan_note(d + d, [True, False, False, True] * 2) == (
        "no plan for 2026-03-02..2026-03-03: no campaign uplift"
    )
