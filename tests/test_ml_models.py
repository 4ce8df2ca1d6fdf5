"""Model selection, and metrics vs baseline on one shared holdout, per family."""

from collections.abc import Iterator
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from aiwf_assets.ml import churn, demand, features, recommend, segmentation
from aiwf_assets.ml.common import limited_threads, regression_metrics
from tests.test_ml_marts_factory import make_marts


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with limited_threads(1):
        yield


@pytest.fixture(scope="module")
def marts() -> dict[str, pl.DataFrame]:
    return make_marts()


def _interaction_snapshots(n: int = 300) -> pl.DataFrame:
    """Churn = an interaction (XOR) of two features: trees can learn it, a linear model cannot."""
    rng = np.random.default_rng(0)
    frames = []
    for week in range(6):
        values = rng.normal(size=(n, len(features.CUSTOMER_FEATURE_COLUMNS)))
        churned = (values[:, 0] > 0) ^ (values[:, 1] > 0)
        frame = pl.DataFrame(values, schema=features.CUSTOMER_FEATURE_COLUMNS)
        frames.append(
            frame.with_columns(
                customer_key=pl.Series([f"c{i}" for i in range(n)]),
                as_of_date=pl.lit(date(2026, 1, 1) + timedelta(days=7 * week)),
                churned=pl.Series(churned),
            )
        )
    return pl.concat(frames)


def test_churn_selection_picks_the_clearly_better_candidate() -> None:
    name, params, table = churn.select_candidate(
        _interaction_snapshots(), horizon_days=7, max_folds=2
    )
    assert name == "hist_gradient_boosting"
    best = table.group_by("candidate").agg(pl.col("cv_roc_auc").max())
    scores = dict(best.iter_rows())
    assert scores["hist_gradient_boosting"] > 0.9 > 0.65 > scores["logistic_regression"]
    assert table["strict_time_gap"].all()


def test_time_folds_train_only_on_labels_known_at_validation() -> None:
    dates = [date(2026, 1, 1) + timedelta(days=7 * k) for k in range(8)]
    folds, strict = churn.time_folds(dates, horizon_days=30, max_folds=3)
    assert strict
    for train, validation in folds:
        assert all(d + timedelta(days=30) <= validation for d in train)


def test_segmentation_finds_clearly_separated_groups() -> None:
    rng = np.random.default_rng(1)
    centres = rng.uniform(0, 2000, size=(3, len(segmentation.SEGMENT_FEATURES)))
    rows = np.concatenate([c * rng.lognormal(0, 0.05, size=(60, len(c))) for c in centres])
    frame = pl.DataFrame(rows, schema=segmentation.SEGMENT_FEATURES).with_columns(
        customer_key=pl.Series([f"c{i}" for i in range(len(rows))]),
        as_of_date=pl.lit(date(2026, 3, 1)),
    )
    outcome = segmentation.train_segmentation(frame, range(2, 7), sample_size=500)
    assert outcome.params == {"n_clusters": 3}
    assert outcome.metrics["silhouette"] >= outcome.baseline_metrics["silhouette"]
    assert len(set(outcome.artifact["descriptions"].values())) == 3


def test_churn_model_and_baseline_are_scored_on_the_same_holdout(
    marts: dict[str, pl.DataFrame],
) -> None:
    activity = marts["fct_customer_daily_activity"]
    cutoff = activity["activity_date"].max()
    dates = features.snapshot_dates(cutoff, activity["activity_date"].min(), 30, 10, 7)
    snapshots = features.customer_feature_snapshots(
        activity, marts["fct_orders"], marts["dim_customers"], dates
    )
    buying = activity.filter(pl.col("n_orders") > 0).select("customer_key", "activity_date")
    outcome = churn.train_churn(snapshots, buying, horizon_days=30)
    holdout = outcome.holdout_predictions
    assert holdout["as_of_date"].unique().to_list() == [cutoff - timedelta(days=30)]
    assert holdout.height == outcome.row_counts["holdout_rows"]
    labels = holdout["churned"].cast(pl.Int8).to_numpy()
    assert outcome.metrics == churn.classification_metrics(labels, holdout["churn_risk"].to_numpy())
    assert outcome.baseline_metrics == churn.classification_metrics(
        labels, holdout["baseline_risk"].to_numpy()
    )
    assert outcome.metrics["roc_auc"] > outcome.baseline_metrics["roc_auc"]
    assert outcome.plots["roc"].startswith("**ROC on the holdout**\n\n![")


def test_demand_model_and_seasonal_naive_share_the_time_ordered_holdout(
    marts: dict[str, pl.DataFrame],
) -> None:
    sales = marts["fct_product_daily_sales"]
    grid = features.demand_features(sales, marts["dim_products"], sales["sales_date"].max(), 7)
    outcome = demand.train_demand(grid, holdout_days=28, cv_folds=1)
    holdout = outcome.holdout_predictions
    observed_days = grid.filter(~pl.col("is_future"))["date"].unique().sort()
    assert holdout["date"].unique().sort().to_list() == observed_days.tail(28).to_list()
    actual = holdout["units"].to_numpy().astype(float)
    assert outcome.metrics == regression_metrics(actual, holdout["forecast"].to_numpy())
    assert outcome.baseline_metrics == regression_metrics(
        actual, holdout["seasonal_naive"].to_numpy()
    )
    assert outcome.metrics["wape"] < outcome.baseline_metrics["wape"]
    assert outcome.holdout_start == observed_days.tail(28)[0]


def test_recommendations_never_repeat_a_purchase(marts: dict[str, pl.DataFrame]) -> None:
    lines = marts["fct_order_lines"]
    cutoff = lines["order_date"].max()
    pairs = features.interaction_pairs(lines, cutoff).with_columns(as_of_date=pl.lit(cutoff))
    outcome = recommend.train_recommender(pairs, holdout_days=14)
    assert outcome.metrics["evaluated_customers"] == outcome.baseline_metrics["evaluated_customers"]
    top = recommend.top_recommendations(outcome.artifact, pairs, k=5)
    assert top.join(pairs, on=["customer_key", "sku"], how="semi").is_empty()
    expected = pairs.group_by("customer_key").agg(
        expected=pl.min_horizontal(pl.lit(5), outcome.row_counts["items"] - pl.len())
    )
    got = top.group_by("customer_key").agg(got=pl.len())
    compared = expected.join(got, on="customer_key", how="left")
    assert (compared["got"].fill_null(0) == compared["expected"]).all()
