"""Model selection, and metrics vs baseline on one shared holdout, per family."""

import json
import os
import time
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
import psutil
import pytest
import skops.io as sio
from polars.testing import assert_frame_equal
from scipy import sparse
from sklearn.metrics import average_precision_score, roc_auc_score

from aiwf_assets.io.model_store import TRUSTED_TYPES, ModelCard, skops_bytes
from aiwf_assets.ml import churn, common, demand, features, recommend, segmentation
from aiwf_assets.ml.common import limited_threads, regression_metrics, same_recipe
from aiwf_assets.ml.promotion import TrainingOutcome
from tests.test_ml_marts_factory import make_marts, plan_frame

PACKAGED_CHANNELS = ("web", "app", "store")
PACKAGED_FEATURES = features.customer_feature_columns(PACKAGED_CHANNELS)


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
        values = rng.normal(size=(n, len(PACKAGED_FEATURES)))
        churned = (values[:, 0] > 0) ^ (values[:, 1] > 0)
        frame = pl.DataFrame(values, schema=PACKAGED_FEATURES)
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


def test_churn_selection_fits_a_shared_preprocessing_once_with_the_same_scores() -> None:
    """The logistic pipelines' imputer, log and scaler do not depend on the grid (only the
    model's C varies): fitted once per fold, each C scores exactly as its whole pipeline."""
    frame = _interaction_snapshots()
    x = frame.select(PACKAGED_FEATURES).to_numpy()
    x[::7, 2] = np.nan  # the imputer has something to do
    y = frame["churned"].to_numpy().astype(int)
    train, val = slice(0, 1200), slice(1200, None)
    grid = churn.CANDIDATES["logistic_regression"][1]
    assert len(grid) > 1
    assert churn.grid_parts("logistic_regression", grid) == [grid]
    boosting = churn.CANDIDATES["hist_gradient_boosting"][1]
    assert churn.grid_parts("hist_gradient_boosting", boosting) == [[p] for p in boosting]
    whole = [
        roc_auc(churn.build_candidate("logistic_regression", params), x, y, train, val)
        for params in grid
    ]
    shared = churn._fold_roc_aucs("logistic_regression", grid, x[train], y[train], x[val], y[val])
    assert shared == whole
    assert len(set(shared)) > 1  # the C values do differ


def roc_auc(pipeline: Any, x: np.ndarray, y: np.ndarray, train: slice, val: slice) -> float:
    pipeline.fit(x[train], y[train])
    return float(churn.roc_auc_score(y[val], pipeline.predict_proba(x[val])[:, 1]))


def test_time_folds_train_only_on_labels_known_at_validation() -> None:
    dates = [date(2026, 1, 1) + timedelta(days=7 * k) for k in range(8)]
    folds, strict = churn.time_folds(dates, horizon_days=30, max_folds=3)
    assert strict
    for train, validation in folds:
        assert all(d + timedelta(days=30) <= validation for d in train)


def separated_groups(groups: int, spread: float) -> pl.DataFrame:
    """One snapshot of 60 customers per group around random centres (lognormal `spread`)."""
    rng = np.random.default_rng(1)
    columns = segmentation.profile_columns(PACKAGED_CHANNELS)
    centres = rng.uniform(0, 2000, size=(groups, len(columns)))
    rows = np.concatenate([c * rng.lognormal(0, spread, size=(60, len(c))) for c in centres])
    return pl.DataFrame(rows, schema=columns).with_columns(
        customer_key=pl.Series([f"c{i}" for i in range(len(rows))]),
        as_of_date=pl.lit(date(2026, 3, 1)),
    )


def test_segmentation_finds_clearly_separated_groups() -> None:
    frame = separated_groups(groups=3, spread=0.05)
    outcome = segmentation.train_segmentation(frame, range(2, 7), sample_size=500)
    assert outcome.params == {"n_clusters": 3}
    assert outcome.metrics["silhouette"] >= outcome.baseline_metrics["silhouette"]
    assert len(set(outcome.artifact["descriptions"].values())) == 3


def test_channel_shares_of_few_orders_are_shrunk_towards_an_even_split() -> None:
    # frequency, then three channel shares, then another column that stays as it is
    x = np.array([[1.0, 1.0, 0.0, 0.0, 7.0], [45.0, 1.0, 0.0, 0.0, 7.0], [0.0, 0.2, 0.3, 0.5, 7.0]])
    shrunk = segmentation.shrink_shares(x, count=0, shares=[1, 2, 3], strength=5.0)
    # one order all on web: (1 + 5/3) / 6; 45 orders: (45 + 5/3) / 50
    assert shrunk[0, 1:4] == pytest.approx([(1 + 5 / 3) / 6, (5 / 3) / 6, (5 / 3) / 6])
    assert shrunk[1, 1] == pytest.approx((45 + 5 / 3) / 50)
    assert shrunk[1, 1] > shrunk[0, 1]  # many orders: closer to what they did
    assert shrunk[2, 1:4] == pytest.approx([1 / 3] * 3)  # no orders: the even split
    assert np.allclose(shrunk[:, 1:4].sum(axis=1), 1.0)
    assert (shrunk[:, [0, 4]] == x[:, [0, 4]]).all()
    assert (x[0, 1:4] == [1.0, 0.0, 0.0]).all()  # the input is left alone


def test_quiet_probability_is_the_chance_of_no_order_at_the_customers_own_rate() -> None:
    a0, b0 = churn.QUIET_PRIOR_ORDER_DAYS, churn.QUIET_PRIOR_DAYS
    order_days = np.array([3.0, 30.0, 3.0, np.nan])
    since_first = np.array([59.0, 59.0, 9.0, np.nan])
    quiet = churn.quiet_probability(order_days, since_first, 30)
    assert quiet[0] == pytest.approx(((b0 + 60) / (b0 + 90)) ** (a0 + 3))
    # more order days in the same time, or the same days in less time: less likely quiet
    assert quiet[1] < quiet[0] and quiet[2] < quiet[0]
    assert quiet[3] == 1.0  # no order yet
    assert churn.quiet_probability(order_days[:1], since_first[:1], 60)[0] < quiet[0]
    assert churn.with_quiet(np.array([0.2, 0.0]), np.array([0.5, 0.3])) == pytest.approx([0.6, 0.3])


def test_served_churn_risk_adds_the_quiet_probability_only_for_models_trained_with_it(
    marts: dict[str, pl.DataFrame],
) -> None:
    snapshots, buying = _churn_inputs(marts)
    artifact = churn.train_churn(snapshots, buying, horizon_days=30).artifact
    current = snapshots.filter(pl.col("as_of_date") == snapshots["as_of_date"].max())
    model = artifact["pipeline"].predict_proba(
        current.select(artifact["feature_columns"]).to_numpy().astype(np.float64)
    )[:, 1]
    quiet = churn.quiet_probability(
        current["order_days"].to_numpy(), current["days_since_first_order"].to_numpy(), 30
    )
    served = churn.churn_risk(artifact, current)
    assert served == pytest.approx(churn.with_quiet(model, quiet))
    assert (served >= model).all() and (served > model).any()
    scores = churn.score_customers(artifact, snapshots)
    assert scores["churn_risk"].to_numpy() == pytest.approx(served)
    # a champion stored before the quiet probability scores with its model alone
    older = {k: v for k, v in artifact.items() if k != "quiet_prior"}
    assert churn.churn_risk(older, current) == pytest.approx(model)
    with pytest.raises(ValueError, match="order_days"):
        churn.churn_risk(artifact, current.drop("order_days"))


def test_delong_auc_matches_roc_auc_and_the_bootstrap_spread() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(1500) < 0.3
    signal = labels + rng.normal(0, 1.2, 1500)
    model = signal + rng.normal(0, 0.3, 1500)
    baseline = np.round(signal + rng.normal(0, 0.6, 1500))  # ties, as recency in days has
    aucs, cov = common.delong_auc(labels, model, baseline)
    assert aucs == pytest.approx([roc_auc_score(labels, model), roc_auc_score(labels, baseline)])
    boot = []
    for _ in range(400):
        rows = rng.integers(0, 1500, 1500)
        boot.append(
            [roc_auc_score(labels[rows], model[rows]), roc_auc_score(labels[rows], baseline[rows])]
        )
    boot_cov = np.cov(np.array(boot).T)
    assert np.sqrt(np.diag(cov)) == pytest.approx(np.sqrt(np.diag(boot_cov)), rel=0.15)
    # the paired difference: much less noisy than either AUC, as the bootstrap says
    diff_se = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    boot_diff_se = np.std(np.array(boot)[:, 0] - np.array(boot)[:, 1], ddof=1)
    assert diff_se == pytest.approx(boot_diff_se, rel=0.15)
    assert diff_se < np.sqrt(cov[0, 0])
    with pytest.raises(ValueError, match="both outcomes"):
        common.delong_auc(np.zeros(5, dtype=bool), model[:5])


def test_gain_bound_is_positive_only_for_a_model_better_than_baseline_and_chance() -> None:
    rng = np.random.default_rng(4)
    labels = rng.random(1500) < 0.35
    informative = labels + rng.normal(0, 1.0, 1500)
    good = informative + rng.normal(0, 0.2, 1500)
    weaker = informative + rng.normal(0, 1.5, 1500)
    assert common.auc_gain_lower_bound(labels, good, weaker) > 0
    assert common.auc_gain_lower_bound(labels, weaker, good) < 0
    # noise against a baseline that is worse than chance (recency on guests): the gain
    # over the baseline is not enough, the model must beat guessing too
    noise = rng.normal(0, 1, 1500)
    anti = -informative
    assert roc_auc_score(labels, noise) > roc_auc_score(labels, anti) + 0.2
    assert common.auc_gain_lower_bound(labels, noise, anti) < 0


def test_population_metrics_bound_only_with_enough_of_each_outcome() -> None:
    rng = np.random.default_rng(5)
    identified = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    labels = np.r_[rng.random(300) < 0.3, np.zeros(300, bool)]
    labels[300:305] = True  # five guests churned: too few to measure a gain on
    holdout = pl.DataFrame({"identified": identified})
    scores, recency = labels + rng.normal(0, 1, 600), rng.normal(0, 1, 600)
    model, baseline = churn.population_metrics(holdout, labels.astype(int), scores, recency)
    assert model["churned[guest]"] == 5 and "roc_auc[guest]" in model
    assert "roc_auc_gain_low[guest]" not in model
    assert model["churned[identified]"] == labels[:300].sum()
    assert "roc_auc_gain_low[identified]" in model


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
    overall = churn.classification_metrics(labels, holdout["churn_risk"].to_numpy())
    baseline = churn.classification_metrics(labels, holdout["baseline_risk"].to_numpy())
    days = holdout["recency_days"].to_numpy()
    recency = {
        "roc_auc": roc_auc_score(labels, days),
        "pr_auc": average_precision_score(labels, days),
    }
    assert {k: outcome.metrics[k] for k in overall} == overall
    # the baseline ranks by recency itself (as `aiwf evaluate` does; the rule's deciles tie
    # customers whom the days tell apart) and its probabilities are the recency rule's
    assert {k: outcome.baseline_metrics[k] for k in ("roc_auc", "pr_auc")} == {
        k: recency[k] for k in ("roc_auc", "pr_auc")
    }
    assert {k: outcome.baseline_metrics[k] for k in ("brier", "calibration_error")} == {
        k: baseline[k] for k in ("brier", "calibration_error")
    }
    assert outcome.baseline_metrics["roc_auc[identified]"] == recency["roc_auc"]
    # per population: every customer of these marts is in the CRM, so no guest rows
    assert outcome.metrics["rows[identified]"] == holdout.height
    assert outcome.metrics["roc_auc[identified]"] == overall["roc_auc"]
    assert outcome.metrics["rows[guest]"] == 0 and "roc_auc[guest]" not in outcome.metrics
    assert outcome.metrics["roc_auc_gain_low[identified]"] == pytest.approx(
        common.auc_gain_lower_bound(labels, holdout["churn_risk"].to_numpy(), days)
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


def _taste_pairs(n_customers: int = 600, n_items: int = 60, seed: int = 3) -> pl.DataFrame:
    """Customers of four tastes buy from their own quarter of the range, with a global
    popularity on top; one purchase per customer and week over eight weeks."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / (rng.permutation(n_items) + 1)
    taste = rng.integers(0, 4, n_customers)
    rows = []
    for c in range(n_customers):
        weights = popularity * np.where(np.arange(n_items) % 4 == taste[c], 1.0, 0.03)
        bought = rng.choice(n_items, size=8, p=weights / weights.sum())
        for week, item in enumerate(bought):
            rows.append((f"c{c:04d}", f"SKU-{item:05d}", date(2026, 1, 1) + timedelta(weeks=week)))
    frame = pl.DataFrame(rows, schema=["customer_key", "sku", "day"], orient="row")
    return (
        frame.group_by("customer_key", "sku")
        .agg(first_purchase_date=pl.col("day").min(), last_purchase_date=pl.col("day").max())
        .with_columns(as_of_date=pl.lit(frame["day"].max()))
    )


def test_recommender_learns_personal_taste_beyond_popularity() -> None:
    outcome = recommend.train_recommender(_taste_pairs(), holdout_days=14)
    assert {kind for kind, _ in recommend.CANDIDATES} == set(outcome.selection["candidate"])
    assert outcome.metrics["hit_rate_at_10"] > 1.5 * outcome.baseline_metrics["hit_rate_at_10"]
    assert outcome.model_name == outcome.selection["candidate"][0]


def test_recommender_candidates_share_their_matrices_with_the_same_scores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The candidates are fitted on one `Interactions` and scored on one `Window` (built once):
    each scores exactly as when fitted and scored on its own; a champion with the challenger's
    recipe that saw the holdout gets the challenger's metrics without a refit."""
    pairs = _taste_pairs()
    outcome = recommend.train_recommender(pairs, holdout_days=14)
    cutoff = pairs["as_of_date"].max()
    holdout_start = cutoff - timedelta(days=13)
    history, targets = recommend.split_at(
        pairs, holdout_start - timedelta(days=14), holdout_start - timedelta(days=1)
    )
    alone = {
        (kind, json.dumps(params, sort_keys=True)): recommend.ranking_metrics(
            recommend.fit(kind, params, history), history, targets, 10
        )["hit_rate_at_10"]
        for kind, params in recommend.CANDIDATES
    }
    shared = {
        (row["candidate"], row["params"]): row["validation_hit_rate_at_10"]
        for row in outcome.selection.iter_rows(named=True)
    }
    assert shared == alone
    assert len(set(alone.values())) > 2
    champion = _stored(outcome.artifact)
    with monkeypatch.context() as patched:
        patched.setattr(recommend, "fit", _no_refit)
        assert outcome.evaluate_champion(_card(outcome), champion) == outcome.metrics
    other = {**champion, "params": {"l2_per_mean_count": 123.0}, "kind": "ease"}
    with monkeypatch.context() as patched:
        patched.setattr(recommend, "fit", _no_refit)
        with pytest.raises(AssertionError, match="refit"):
            outcome.evaluate_champion(_card(outcome), other)


def test_ease_links_items_bought_together() -> None:
    # items 0 and 1 always go together, 2 and 3 too; nobody mixes the pairs
    rows = np.array([[1, 1, 0, 0]] * 20 + [[0, 0, 1, 1]] * 20, dtype=np.float32)
    scores = recommend.ease_scores(recommend.co_purchases(sparse.csr_matrix(rows)), 0.5)
    assert scores[0, 1] > 0.5 and scores[2, 3] > 0.5
    assert scores[0, 2] <= 0 and scores[1, 3] <= 0


def test_demand_selection_trains_on_the_recent_days_only(
    marts: dict[str, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Candidate fits see the SELECTION_TRAIN_DAYS before their validation window: units
    scrambled before that leave the candidate table as it is, scrambled inside it do not."""
    sales = marts["fct_product_daily_sales"]
    grid = features.demand_features(sales, marts["dim_products"], sales["sales_date"].max(), 7)
    train, _ = demand.split_holdout(grid.sort("sku", "date"), holdout_days=28)
    monkeypatch.setattr(demand, "GRID", demand.GRID[:2])
    monkeypatch.setattr(demand, "SELECTION_TRAIN_DAYS", 30)
    last_day = train["date"].max()

    def scrambled(before: date) -> pl.DataFrame:
        scrambled = pl.when(pl.col("date") < before).then(pl.col("units") * 5 + 3)
        return train.with_columns(units=scrambled.otherwise("units"))

    # validation windows of 14 days: the older one starts 27 days before the last day
    oldest_used = last_day - timedelta(days=27 + 30)
    _, table, _ = demand.select_params(train, window_days=14, folds=2)
    _, old_scrambled, _ = demand.select_params(scrambled(oldest_used), window_days=14, folds=2)
    _, recent_scrambled, _ = demand.select_params(
        scrambled(oldest_used + timedelta(days=1)), window_days=14, folds=2
    )
    assert_frame_equal(old_scrambled, table)
    assert recent_scrambled["cv_wape"].to_list() != table["cv_wape"].to_list()


def test_demand_level_leaves_campaign_days_out() -> None:
    """Units double on campaign days (promotion anywhere in the range): the level the model
    scales stays at the regular-day mean, and the campaign shows on the target day only."""
    days = [date(2026, 1, 1) + timedelta(days=d) for d in range(120)]
    campaign = [d.day <= 3 for d in days]  # the first three days of every month
    sales = pl.DataFrame(
        {
            "sku": ["SKU-00001"] * len(days) + ["SKU-00002"] * len(days),
            "sales_date": days + days,
            "units": [10 if c else 5 for c in campaign] * 2,
            "avg_unit_price": [9.0 if c else 10.0 for c in campaign] * 2,
            "promo_share": [1.0 if c else 0.0 for c in campaign] * 2,
        }
    )
    products = pl.DataFrame(
        {"sku": ["SKU-00001", "SKU-00002"], "category": ["home"] * 2, "list_price": [10.0] * 2}
    )
    grid = features.demand_features(sales, products, days[-1], horizon_days=7)
    late = grid.filter(pl.col("date") > days[100])
    assert late["regular_mean_28"].to_list() == [5.0] * late.height
    assert late["regular_mean_91"].to_list() == [5.0] * late.height
    assert (late["rolling_mean_28"] > 5.0).all()  # the plain mean is inflated
    on_campaign = late.filter(~pl.col("is_future"), pl.col("date").dt.day() <= 3)
    assert (on_campaign["store_promo_share"] == 1.0).all()
    assert (late["price_change_28"] == 1.0).all()  # regular-day prices only


def test_demand_forecast_covers_the_horizon(marts: dict[str, pl.DataFrame]) -> None:
    sales = marts["fct_product_daily_sales"]
    grid = features.demand_features(sales, marts["dim_products"], sales["sales_date"].max(), 7)
    outcome = demand.train_demand(grid, holdout_days=28, cv_folds=1)
    assert outcome.sanity_problems == []
    future = demand.forecast(outcome.artifact, grid)
    assert future.height == grid.filter(pl.col("is_future")).height
    assert future["horizon_day"].unique().sort().to_list() == list(range(1, 8))
    assert (future["forecast_units"] >= 0).all() and future["forecast_units"].sum() > 0


def _shuffled(frame: pl.DataFrame, seed: int = 5) -> pl.DataFrame:
    return frame.sample(fraction=1.0, shuffle=True, seed=seed)


def _same_outcome(a: TrainingOutcome, b: TrainingOutcome) -> None:
    assert (a.model_name, a.params, a.row_counts) == (b.model_name, b.params, b.row_counts)
    assert a.metrics == b.metrics and a.baseline_metrics == b.baseline_metrics
    assert_frame_equal(a.selection, b.selection)


def _churn_inputs(marts: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Six weekly customer snapshots up to the marts' last day, and the purchase days."""
    activity = marts["fct_customer_daily_activity"]
    cutoff = activity["activity_date"].max()
    snapshots = features.customer_feature_snapshots(
        activity,
        marts["fct_orders"],
        marts["dim_customers"],
        features.snapshot_dates(cutoff, activity["activity_date"].min(), 30, 6, 7),
    )
    buying = activity.filter(pl.col("n_orders") > 0).select("customer_key", "activity_date")
    return snapshots, buying


def test_training_does_not_depend_on_the_row_order_of_the_features(
    marts: dict[str, pl.DataFrame],
) -> None:
    """Row order feeds gradient boosting's early-stopping split and binning sample, the
    silhouette sample and KMeans' init: each family trains on one canonical order."""
    sales = marts["fct_product_daily_sales"]
    snapshots, buying = _churn_inputs(marts)
    cutoff = marts["fct_customer_daily_activity"]["activity_date"].max()
    _same_outcome(
        churn.train_churn(snapshots, buying, horizon_days=30),
        churn.train_churn(_shuffled(snapshots), _shuffled(buying), horizon_days=30),
    )
    _same_outcome(
        segmentation.train_segmentation(snapshots, range(2, 5), sample_size=100),
        segmentation.train_segmentation(_shuffled(snapshots), range(2, 5), sample_size=100),
    )
    grid = features.demand_features(sales, marts["dim_products"], sales["sales_date"].max(), 7)
    _same_outcome(
        demand.train_demand(grid, holdout_days=28, cv_folds=1),
        demand.train_demand(_shuffled(grid), holdout_days=28, cv_folds=1),
    )
    pairs = features.interaction_pairs(marts["fct_order_lines"], cutoff).with_columns(
        as_of_date=pl.lit(cutoff)
    )
    _same_outcome(
        recommend.train_recommender(pairs, holdout_days=14),
        recommend.train_recommender(_shuffled(pairs), holdout_days=14),
    )


def test_selection_fits_in_worker_processes_give_the_same_models(
    marts: dict[str, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The independent selection fits of churn and demand in two worker processes: the same
    selection table, the same chosen model, the same artifact bytes as one after another."""
    sales = marts["fct_product_daily_sales"]
    snapshots, buying = _churn_inputs(marts)
    grid = features.demand_features(sales, marts["dim_products"], sales["sales_date"].max(), 7)
    calls = []
    pool = common.parallel_map

    def spy(*args: Any, **kwargs: Any) -> list[Any]:
        calls.append(args[0].__name__)
        return pool(*args, **kwargs)

    monkeypatch.setattr(common, "PARALLEL_MIN_ROWS", 0)  # the pool even for these small fits
    for module in (churn, demand):
        monkeypatch.setattr(module, "parallel_map", spy)
    for train in (
        lambda p: churn.train_churn(snapshots, buying, horizon_days=30, processes=p),
        lambda p: demand.train_demand(grid, holdout_days=28, cv_folds=2, processes=p),
    ):
        one, two = train(1), train(2)
        _same_outcome(one, two)
        assert one.selection["folds"].max() >= 2
        assert skops_bytes(one.artifact) == skops_bytes(two.artifact)
    assert calls == ["_fold_roc_aucs"] * 2 + ["_validate"] * 2


def test_parallel_map_keeps_the_order_and_stays_here_below_the_row_threshold() -> None:
    tasks = [(i,) for i in range(5)]
    assert common.parallel_map(os.getpid, [()] * 3, 2, rows=10) == [os.getpid()] * 3
    assert common.parallel_map(abs, [(-i,) for i in range(5)], 2) == [i for (i,) in tasks]
    pids = common.parallel_map(_pid_after, [(0.2,)] * 4, 2, rows=common.PARALLEL_MIN_ROWS)
    assert os.getpid() not in pids
    # the workers are stopped when the map returns: none outlives the step that used it
    alive = {p.pid for p in psutil.Process().children(recursive=True)}
    assert not alive & set(pids)


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_selection_ties_go_to_the_first_candidate() -> None:
    """Equal scores (e.g. KMeans and a mixture finding the same clusters) keep the grid's
    order, so the chosen model does not depend on how the sort breaks ties."""
    frame = separated_groups(groups=2, spread=0.01)
    outcome = segmentation.train_segmentation(frame, range(2, 3), sample_size=500)
    scores = outcome.selection["silhouette"].to_list()
    assert scores[0] == scores[1]
    assert outcome.selection["candidate"].to_list() == ["kmeans", "gaussian_mixture"]


def test_churn_history_need_is_the_fewest_days_giving_three_labelled_snapshots() -> None:
    """The automation waits for `churn_history_days` (policies.HistoryAtLeast): one day
    less and churn.train_churn refuses (it needs three labelled snapshots)."""
    from aiwf_assets.ml.assets.features import CustomerFeaturesConfig
    from aiwf_assets.ml.assets.models import ChurnModelConfig, churn_history_days

    config, snapshots = ChurnModelConfig(), CustomerFeaturesConfig()
    first = date(2026, 1, 1)

    def labelled(days: int) -> list[date]:
        cutoff = first + timedelta(days=days - 1)  # the last day is the cutoff
        dates = features.snapshot_dates(
            cutoff,
            first,
            config.horizon_days,
            snapshots.history_snapshots,
            snapshots.snapshot_step_days,
        )
        return [d for d in dates if d + timedelta(days=config.horizon_days) <= cutoff]

    need = churn_history_days(config)
    assert len(labelled(need)) == 3
    assert len(labelled(need - 1)) == 2


def _card(outcome: TrainingOutcome) -> ModelCard:
    """A champion card for the outcome's own artifact: it has seen the outcome's holdout."""
    return ModelCard(
        family="any",
        version="v",
        model_name=outcome.model_name,
        params=outcome.params,
        metrics=outcome.metrics,
        baseline_metrics={},
        data_versions={},
        row_counts={},
        trained_through=outcome.trained_through.isoformat(),
        code_version="",
        created_at="",
    )


def _stored(artifact: object) -> Any:
    """The artifact after the model store's round trip (skops bytes and back)."""
    return sio.loads(skops_bytes(artifact), trusted=TRUSTED_TYPES)


def test_same_recipe_compares_types_and_hyperparameters_through_a_pickle() -> None:
    a = churn.build_candidate("logistic_regression", {"model__C": 1.0})
    stored = _stored(a.fit(np.eye(4), [0, 1, 0, 1]))  # a nan parameter, fitted
    assert same_recipe(stored, churn.build_candidate("logistic_regression", {"model__C": 1.0}))
    assert not same_recipe(a, churn.build_candidate("logistic_regression", {"model__C": 10.0}))
    assert not same_recipe(a, churn.build_candidate("hist_gradient_boosting", {}))
    leaf = demand.build_model(demand.GRID[0]).set_params(min_samples_leaf=5)
    assert not same_recipe(leaf, demand.build_model(demand.GRID[0]))
    assert same_recipe(leaf, demand.build_model(demand.GRID[0]), ignore={"min_samples_leaf"})


def test_a_champion_with_the_challengers_recipe_is_not_refit(
    marts: dict[str, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-scoring a champion that saw the holdout refits its recipe on the challenger's
    training rows; when that recipe is the challenger's, the refit would be the challenger's
    own holdout model, so its metrics are reused: the same numbers as the refit, one fit less."""
    sales = marts["fct_product_daily_sales"]
    snapshots, buying = _churn_inputs(marts)
    grid = features.demand_features(sales, marts["dim_products"], sales["sales_date"].max(), 7)
    outcomes = {
        churn: churn.train_churn(snapshots, buying, horizon_days=30),
        demand: demand.train_demand(grid, holdout_days=28, cv_folds=1),
    }
    for module, outcome in outcomes.items():
        champion = _stored(outcome.artifact)
        with monkeypatch.context() as patched:
            patched.setattr(module, "same_recipe", lambda *args, **kwargs: False)
            refit = outcome.evaluate_champion(_card(outcome), champion)
        with monkeypatch.context() as patched:
            patched.setattr(module, "clone", _no_refit)
            assert outcome.evaluate_champion(_card(outcome), champion) == refit
        assert (
            refit["wape" if module is demand else "roc_auc"]
            == (outcome.metrics["wape" if module is demand else "roc_auc"])
        )
    # another recipe is still refit on the challenger's training rows
    other = demand.build_model({**demand.GRID[0], "learning_rate": 0.5})
    other = demand.fit_model(other, grid.filter(~pl.col("is_future")))
    with monkeypatch.context() as patched:
        patched.setattr(demand, "clone", _no_refit)
        with pytest.raises(AssertionError, match="refit"):
            outcomes[demand].evaluate_champion(
                _card(outcomes[demand]),
                {
                    "model": other,
                    "feature_columns": features.DEMAND_FEATURE_COLUMNS,
                },
            )


def _no_refit(*args: object) -> None:
    raise AssertionError("refit")


def _planned_rows() -> pl.DataFrame:
    """Out-of-sample rows of planned campaign days: 40 sold 2x the forecast, 360 (called
    off, say) sold what was forecast; none of a promoted category."""
    return pl.DataFrame(
        {
            "sku": ["SKU-00001"] * 400,
            "date": [date(2026, 1, 1)] * 400,
            "planned_category": [False] * 400,
            "units": [20] * 40 + [10] * 360,
            "base_forecast": [10.0] * 400,
        }
    )


def test_campaign_uplift_is_one_ratio_per_group_shrunk_towards_one_and_capped() -> None:
    rows = _planned_rows()
    raw = (40 * 20 + 360 * 10) / (400 * 10)  # 1.1: the called-off days count
    assert demand.campaign_uplift(rows, prior_rows=0) == {demand.OTHER_CATEGORIES: raw}
    # a prior of 400 product-days at ratio 1: halfway between the ratio and 1
    shrunk = demand.campaign_uplift(rows, prior_rows=400)[demand.OTHER_CATEGORIES]
    assert shrunk == pytest.approx((raw + 1) / 2)
    # the campaign days alone (2x) are capped
    lifted = demand.campaign_uplift(rows.head(40), prior_rows=0, cap=1.5)
    assert lifted == {demand.OTHER_CATEGORIES: 1.5}
    assert demand.campaign_uplift(rows.head(0)) == {}
    # the promoted categories' rows get their own ratio: 1.4 there, 1.1 on the others
    promoted = rows.head(100).with_columns(
        planned_category=pl.lit(True), units=pl.Series([14] * 100)
    )
    both = demand.campaign_uplift(pl.concat([rows, promoted]), prior_rows=0)
    assert both == {demand.IN_CATEGORY: pytest.approx(1.4), demand.OTHER_CATEGORIES: raw}


def test_uplift_applies_only_on_planned_campaign_days_by_category() -> None:
    uplift = {demand.IN_CATEGORY: 1.5, demand.OTHER_CATEGORIES: 1.2}
    frame = pl.DataFrame(
        {
            "planned_campaign": [True, False, False, True, True],
            "planned_category": [False, False, True, True, True],
        }
    )
    assert demand.uplift_factor(frame, uplift).to_list() == [1.2, 1.0, 1.0, 1.5, 1.5]
    assert demand.uplift_factor(frame, {}).to_list() == [1.0] * 5
    assert demand.uplift_factor(frame.drop("planned_campaign"), uplift).to_list() == [1.0] * 5
    # no category column: the other categories' factor; a missing group: the other's
    assert demand.uplift_factor(frame.drop("planned_category"), uplift).to_list() == [
        1.2, 1.0, 1.0, 1.2, 1.2
    ]  # fmt: skip
    only = {demand.IN_CATEGORY: 1.5}
    assert demand.uplift_factor(frame, only).to_list() == [1.5, 1.0, 1.0, 1.5, 1.5]
    # an artifact from before the groups: its one factor on every planned day
    single = {demand.ALL_CAMPAIGN_ROWS: 1.3}
    assert demand.uplift_factor(frame, single).to_list() == [1.3, 1.0, 1.0, 1.3, 1.3]


def test_the_served_forecast_uplifts_only_campaigns_published_by_the_cutoff() -> None:
    """Units double on the campaigns of the plan: a forecast made on the cutoff lifts
    the planned future days by the ratio learnt on the holdout's planned days, and not a
    campaign published after the cutoff (the model's own forecast is unchanged)."""
    days = [date(2026, 1, 1) + timedelta(days=d) for d in range(120)]
    starts = [days[0] + timedelta(days=d) for d in range(5, 130, 9)]
    campaign = {s + timedelta(days=k) for s in starts for k in range(2)}
    skus = [f"SKU-{i:05d}" for i in range(6)]
    rng = np.random.default_rng(3)
    sales = pl.DataFrame(
        {
            "sku": [s for s in skus for _ in days],
            "sales_date": days * len(skus),
            "units": [int(rng.poisson(16 if d in campaign else 8)) for _ in skus for d in days],
            "avg_unit_price": [10.0] * (len(days) * len(skus)),
            "promo_share": [0.0] * (len(days) * len(skus)),
        }
    )
    products = pl.DataFrame({"sku": skus, "category": ["home"] * 6, "list_price": [10.0] * 6})
    cutoff = days[-1]
    plans = pl.concat(
        [plan_frame(s - timedelta(days=30), s, s + timedelta(days=1)) for s in starts]
    )
    future_campaign = sorted(d for d in campaign if d > cutoff and d <= cutoff + timedelta(days=7))
    assert future_campaign  # the set-up has a campaign within the horizon
    grid = features.demand_features(sales, products, cutoff, 7, plan=plans)
    outcome = demand.train_demand(grid, holdout_days=28, cv_folds=1)
    uplift = outcome.artifact["campaign_uplift"]
    # they sell ~2x; 54 planned product-days, all of the promoted category ("home"),
    # shrunk towards 1 by UPLIFT_PRIOR_ROWS
    assert list(uplift) == [demand.IN_CATEGORY]
    assert 1.05 < uplift[demand.IN_CATEGORY] <= demand.UPLIFT_CAP
    served = demand.forecast(outcome.artifact, grid)
    lifted = served.filter(pl.col("date").is_in(future_campaign))
    assert (lifted["campaign_uplift"] == uplift[demand.IN_CATEGORY]).all()
    assert (served.filter(~pl.col("date").is_in(future_campaign))["campaign_uplift"] == 1.0).all()
    # the same campaigns, but the future ones published one day after the cutoff
    late = plans.with_columns(
        published_on=pl.when(pl.col("start_date") > cutoff)
        .then(pl.lit(cutoff + timedelta(days=1)))
        .otherwise(pl.col("published_on"))
    )
    unplanned = demand.forecast(
        outcome.artifact, features.demand_features(sales, products, cutoff, 7, plan=late)
    )
    assert (unplanned["campaign_uplift"] == 1.0).all()
    assert_frame_equal(  # the model's own forecast is unchanged
        unplanned.select("sku", "date", "model_units"), served.select("sku", "date", "model_units")
    )
    weight = outcome.artifact["blend_weight"]
    for frame in (served, unplanned):
        level = grid.filter(pl.col("is_future")).select("sku", "date", demand.LEVEL)
        expected = frame.join(level, on=["sku", "date"]).select(
            "sku",
            "date",
            forecast_units=pl.col("campaign_uplift")
            * (weight * pl.col("model_units") + (1 - weight) * pl.col(demand.LEVEL)),
        )
        assert_frame_equal(frame.select("sku", "date", "forecast_units"), expected)


def test_the_campaign_uplift_is_measured_against_the_blend_it_lifts() -> None:
    """On planned days the model forecasts 10 and the level is 6; they sell 16. With the
    weight 0.5 the served no-campaign forecast is 8, so the uplift is 2 (16 / 8), not 1.6
    (16 / 10, the model alone), and the served campaign day is 16, not 0.5 x 16 + 3 = 11."""
    planned = pl.DataFrame(
        {
            "sku": ["A", "B"],
            "date": [date(2026, 3, 1)] * 2,
            "planned_campaign": [True, True],
            "planned_category": [False, False],
            "units": [16, 16],
            "base_forecast": [10.0, 10.0],
            demand.LEVEL: [6.0, None],
        }
    )
    rows = demand.blended_base(demand.planned_day_forecasts(planned), 0.5)
    assert rows["base_forecast"].to_list() == [8.0, 5.0]  # a null level counts as 0
    one = rows.head(1)
    uplift = demand.campaign_uplift(one, prior_rows=0, cap=3.0)
    assert uplift == {demand.OTHER_CATEGORIES: pytest.approx(2.0)}
    served = one.select(
        demand.blended(pl.lit(10.0), pl.lit(uplift[demand.OTHER_CATEGORIES]), 0.5)
    ).item()
    assert served == pytest.approx(16.0)
    # weight 1 (the model alone) is the ratio to the model's forecast, as before the blend
    alone = demand.blended_base(demand.planned_day_forecasts(planned), 1.0).head(1)
    assert demand.campaign_uplift(alone, prior_rows=0, cap=3.0)[
        demand.OTHER_CATEGORIES
    ] == pytest.approx(1.6)


def test_only_planned_days_that_ran_measure_the_uplift() -> None:
    """A planned day counts when the share of units sold on promotion was above the usual
    (the median day's); with no day above it (no promotion flag in the data) every
    planned day counts."""
    days = [date(2026, 3, 1) + timedelta(days=d) for d in range(4)]
    observed = pl.DataFrame(
        {
            "sku": ["A"] * 4 + ["B"] * 4,
            "date": days * 2,
            demand.PROMOTION_SEEN: [0.0, 0.0, 0.4, 0.0] * 2,
        }
    )
    assert demand.usual_promotion_share(observed) == 0.0
    planned = pl.DataFrame({"sku": ["A", "A"], "date": days[2:], demand.PROMOTION_SEEN: [0.4, 0.0]})
    assert demand.ran_as_planned(planned, 0.0)["date"].to_list() == [days[2]]
    # promotions on every day: only a day above the usual share ran a campaign
    always = observed.with_columns(pl.col(demand.PROMOTION_SEEN) + 0.1)
    assert demand.usual_promotion_share(always) == pytest.approx(0.1)
    # no day stands out, no column, no rows: campaigns cannot be seen, all planned days count
    flat = observed.with_columns(pl.lit(0.0).alias(demand.PROMOTION_SEEN))
    assert demand.usual_promotion_share(flat) is None
    assert demand.usual_promotion_share(observed.drop(demand.PROMOTION_SEEN)) is None
    assert demand.usual_promotion_share(observed.head(0)) is None
    assert_frame_equal(demand.ran_as_planned(planned, None), planned)
    assert_frame_equal(demand.ran_as_planned(planned.drop(demand.PROMOTION_SEEN), 0.0),
                       planned.drop(demand.PROMOTION_SEEN))  # fmt: skip


def test_a_called_off_campaign_does_not_dilute_the_uplift() -> None:
    """Half the plan's campaigns are called off: the units do not move then. When the
    sales show which campaigns ran (units sold on promotion), the uplift is the lift of a
    campaign that runs, above the one measured on every planned day (sales without a
    promotion flag, which cannot tell)."""
    days = [date(2026, 1, 1) + timedelta(days=d) for d in range(120)]
    starts = [days[0] + timedelta(days=d) for d in range(5, 130, 9)]
    ran = {s + timedelta(days=k) for i, s in enumerate(starts) if i % 2 == 0 for k in range(2)}
    skus = [f"SKU-{i:05d}" for i in range(30)]
    rng = np.random.default_rng(5)
    units = [int(rng.poisson(12 if d in ran else 8)) for _ in skus for d in days]
    sales = pl.DataFrame(
        {
            "sku": [s for s in skus for _ in days],
            "sales_date": days * len(skus),
            "units": units,
            "avg_unit_price": [10.0] * (len(days) * len(skus)),
            "promo_share": [0.5 if d in ran else 0.0 for _ in skus for d in days],
        }
    )
    products = pl.DataFrame(
        {"sku": skus, "category": ["home"] * len(skus), "list_price": [10.0] * len(skus)}
    )
    plans = pl.concat(
        [plan_frame(s - timedelta(days=30), s, s + timedelta(days=1)) for s in starts]
    )
    uplifts = {}
    for flagged, frame in (("flag", sales), ("no flag", sales.with_columns(promo_share=0.0))):
        grid = features.demand_features(frame, products, days[-1], 7, plan=plans)
        outcome = demand.train_demand(grid, holdout_days=28, cv_folds=1)
        uplifts[flagged] = outcome.artifact["campaign_uplift"][demand.IN_CATEGORY]
    assert 1.0 < uplifts["no flag"] < uplifts["flag"] - 0.05


def test_blend_weight_is_the_least_wape_weight_of_model_and_level() -> None:
    units = [10, 20, 30, 40]
    rows = pl.DataFrame({"units": units, "forecast": [20.0, 20, 20, 20], "level": units})
    assert demand.blend_weight(rows) == 0.0  # the level is exact
    assert demand.blend_weight(rows.with_columns(forecast=pl.col("units"))) == 1.0
    # the truth halfway between them: 0.5 (the grid holds it), not a neighbour
    between = rows.with_columns(units=(pl.col("forecast") + pl.col("level")) / 2)
    assert demand.blend_weight(between) == pytest.approx(0.5)
    # both forecasts exact (every weight ties): the model, the larger weight
    assert demand.blend_weight(rows.with_columns(forecast=pl.col("level"))) == 1.0
    # nothing to measure on: the model alone; a null level counts as 0
    assert demand.blend_weight(rows.head(0)) == 1.0
    assert demand.blend_weight(rows.with_columns(units=pl.lit(0))) == 1.0
    nulls = rows.with_columns(level=pl.lit(None, dtype=pl.Float64), forecast=pl.col("units"))
    assert demand.blend_weight(nulls) == 1.0


def test_the_blend_weight_reads_no_day_after_the_cutoff(marts: dict[str, pl.DataFrame]) -> None:
    """The weight is chosen on the holdout (observed days, forecast by a model that had not
    seen them): units written into the future rows, pulling the weight to the other end of
    the grid were they read, change neither the weight nor the forecast."""
    sales = marts["fct_product_daily_sales"]
    grid = features.demand_features(sales, marts["dim_products"], sales["sales_date"].max(), 7)
    outcome = demand.train_demand(grid, holdout_days=28, cv_folds=1)
    weight = outcome.artifact["blend_weight"]
    served = demand.forecast(outcome.artifact, grid)
    assert 0.0 < weight < 1.0  # the fixture blends: both ends below are a change
    # future units equal to the level (weight 0 would be exact) or to the model (weight 1)
    pull = pl.col(demand.LEVEL) if weight >= 0.5 else pl.col("model_units")
    target = served.join(grid.select("sku", "date", demand.LEVEL), on=["sku", "date"]).select(
        "sku", "date", leaked=pull.fill_null(0.0).round(0).cast(grid["units"].dtype)
    )
    leaked = (
        grid.join(target, on=["sku", "date"], how="left")
        .with_columns(units=pl.when("is_future").then("leaked").otherwise("units"))
        .drop("leaked")
    )
    assert leaked.filter(pl.col("is_future"))["units"].sum() > 0
    again = demand.train_demand(leaked, holdout_days=28, cv_folds=1)
    assert again.artifact["blend_weight"] == weight
    assert_frame_equal(demand.forecast(again.artifact, grid), served)
