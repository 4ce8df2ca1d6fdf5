"""Demand forecast: HistGradientBoostingRegressor on lagged features vs seasonal naive.

The model learns the multiplier of a product's level on regular (campaign-free)
days: campaigns lift the whole store's traffic, so a plain mean over a window
with campaigns overstates the next regular days and understates the next
campaign, which the model reads from the planned promotion covariates instead.

Strategy: direct. Every feature of a target day is at least `horizon_days`
old (see `features.demand_features`), so one model forecasts each of the
next `horizon_days` days from the data available at the cutoff. The holdout
is the last `holdout_days` observed days (time-ordered, never shuffled;
hyperparameters are chosen on windows before it); each
holdout day is forecast from data `horizon_days` older, exactly as in use.
The baseline on the same rows is the seasonal naive forecast (same weekday,
`horizon_days` or more back: last week for horizons up to 7).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.inspection import permutation_importance

from aiwf_assets.io.model_store import ModelCard
from aiwf_assets.ml import plots, weighted_binning
from aiwf_assets.ml.common import RANDOM_STATE, parallel_map, regression_metrics, same_recipe
from aiwf_assets.ml.features import DEMAND_FEATURE_COLUMNS, PLANNED_COLUMNS
from aiwf_assets.ml.promotion import PromotionPolicy, TrainingOutcome

weighted_binning.install()  # the same models, binned in a fraction of the CPU

PRIMARY_METRIC = "wape"
# The product's mean units on regular (campaign-free) days of the last 28 days: the
# level the model scales. (Over 91 days it is less noisy but lags a trend or a shift.)
LEVEL = "regular_mean_28"
GRID: list[dict[str, Any]] = [
    {"loss": loss, "learning_rate": lr, "max_leaf_nodes": 15}
    for loss in ("poisson", "squared_error")
    for lr in (0.05, 0.1)
]
# Candidate selection trains on at most this many days before each validation window:
# its fits are most of a retrain's CPU at long histories, while the holdout model and the
# served refit still train on everything (docs/ML.md, Performance note).
SELECTION_TRAIN_DAYS = 91
# Small trees with large leaves: a day's units are mostly Poisson noise around the
# multiplier, so a leaf holds at least this share of the training rows.
LEAF_SHARE = 0.015
MIN_LEAF = 20
# The campaign-day uplift (see `campaign_uplift`): one factor for the products of the
# categories a planned campaign promotes and one for the others, each over the planned
# campaign days a campaign was seen to run on (`ran_as_planned`), measured out of sample on
# the validation windows and the holdout against the served blend, shrunk towards 1 (no
# uplift) by this many product-days and never above UPLIFT_CAP.
UPLIFT_PRIOR_ROWS = 200
UPLIFT_CAP = 1.5
IN_CATEGORY = "planned campaign days, promoted categories"
OTHER_CATEGORIES = "planned campaign days, other categories"
ALL_CAMPAIGN_ROWS = "all planned campaign days"  # one factor for all (artifacts before)
# The served forecast blends the model's forecast with the product's level, both without a
# campaign, then lifts planned campaign days: `uplift * (w * model + (1 - w) * LEVEL)`, w on
# this grid, chosen by WAPE on the holdout's days without a planned campaign, forecast out
# of sample as served (see `blend_weight`); the uplift is measured against that blend.
BLEND_STEP = 0.05
# Observed on past days (not a model input as served): the share of the other products'
# units sold on promotion that day, which tells the planned days a campaign ran on.
PROMOTION_SEEN = "store_promo_share"


def policy(margin: float) -> PromotionPolicy:
    return PromotionPolicy(metric=PRIMARY_METRIC, higher_is_better=False, margin=margin)


def build_model(params: dict[str, Any]) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(max_iter=200, random_state=RANDOM_STATE, **params)


def _features(frame: pl.DataFrame) -> np.ndarray:
    return frame.select(DEMAND_FEATURE_COLUMNS).to_numpy().astype(np.float64)


def fit_model(model: HistGradientBoostingRegressor, frame: pl.DataFrame) -> Any:
    """Fit the multiplier of each product's level (units / LEVEL, weighted by LEVEL).

    Learning a relative factor pools weekday, season, price and promotion
    effects across products of very different volume; rows of products with
    no regular-day sales in the level window carry no weight and are left out.
    """
    rows = frame.filter(pl.col(LEVEL) > 0)
    level = rows[LEVEL].to_numpy()
    model.set_params(min_samples_leaf=max(MIN_LEAF, round(LEAF_SHARE * rows.height)))
    return model.fit(_features(rows), rows["units"].to_numpy() / level, sample_weight=level)


def predict_units(model: Any, frame: pl.DataFrame) -> np.ndarray:
    """Units = factor x level, never negative (a squared-error factor can dip below zero)."""
    level = frame[LEVEL].fill_null(0).to_numpy()
    return np.clip(model.predict(_features(frame)), 0.0, None) * level


def served_covariates(features: pl.DataFrame) -> pl.DataFrame:
    """sku and the planned-price covariates a forecast gets (PLANNED_COLUMNS of the
    product's first future row: the recent typical level, no campaign)."""
    return (
        features.filter(pl.col("is_future"))
        .unique("sku", keep="first", maintain_order=True)
        .select("sku", *PLANNED_COLUMNS)
    )


def as_served(rows: pl.DataFrame, typical: pl.DataFrame) -> pl.DataFrame:
    """`rows` with the planned-price covariates of `typical` (`served_covariates`), not the
    ones read from what the other products sold at on the day. Unchanged when empty."""
    if typical.is_empty():
        return rows
    renamed = typical.select("sku", *[pl.col(c).alias(f"_{c}") for c in PLANNED_COLUMNS])
    return (
        rows.join(renamed, on="sku", how="left", maintain_order="left")
        .with_columns(pl.coalesce(f"_{c}", c).alias(c) for c in PLANNED_COLUMNS)
        .drop(f"_{c}" for c in PLANNED_COLUMNS)
    )


def served_forecasts(model: Any, rows: pl.DataFrame, typical: pl.DataFrame) -> pl.DataFrame:
    """`rows` (observed, not seen by `model`) with known units and the model's forecast as
    served (`base_forecast`: no campaign known to the model, the planned-price covariates
    of `typical`): the out-of-sample rows the campaign uplift and the blend weight read."""
    for column in ("planned_campaign", "planned_category"):
        if column not in rows.columns:
            rows = rows.with_columns(pl.lit(False).alias(column))
    known = rows.filter(pl.col("units").is_not_null())
    return known.with_columns(
        base_forecast=pl.Series(
            predict_units(model, as_served(known, typical)) if known.height else [],
            dtype=pl.Float64,
        )
    )


def planned_day_forecasts(forecasts: pl.DataFrame) -> pl.DataFrame:
    """The planned campaign days of `served_forecasts`, with the level: the rows
    `campaign_uplift` reads (through `blended_base`)."""
    seen = [PROMOTION_SEEN] if PROMOTION_SEEN in forecasts.columns else []
    return forecasts.filter(pl.col("planned_campaign")).select(
        "sku", "date", "planned_category", "units", "base_forecast", LEVEL, *seen
    )


def usual_promotion_share(observed: pl.DataFrame) -> float | None:
    """The median over observed days of PROMOTION_SEEN (the share of the other products'
    units sold on promotion that day): a day above it had a campaign running (the
    generator's shops promote only in campaigns: the median is 0). None when no day is
    above it (sales that carry no promotion flag, or no rows): campaigns cannot be seen."""
    if PROMOTION_SEEN not in observed.columns or observed.is_empty():
        return None
    daily = observed.group_by("date").agg(pl.col(PROMOTION_SEEN).first())
    shares = daily[PROMOTION_SEEN].drop_nulls()
    median = shares.median()
    if median is None or not (shares > median).any():
        return None
    return float(median)  # type: ignore[arg-type]


def ran_as_planned(rows: pl.DataFrame, usual_share: float | None) -> pl.DataFrame:
    """The planned campaign days (`planned_day_forecasts`) on which a campaign was seen to
    run: the share of units sold on promotion (PROMOTION_SEEN) above `usual_share`. A
    planned campaign that was called off or ran on other days sells like any day, and
    would dilute the lift a campaign brings when it runs. All of `rows` when campaigns
    cannot be seen (`usual_share` None, or no PROMOTION_SEEN column)."""
    if usual_share is None or PROMOTION_SEEN not in rows.columns:
        return rows
    return rows.filter(pl.col(PROMOTION_SEEN).fill_null(0.0) > usual_share)


def blended_base(rows: pl.DataFrame, weight: float) -> pl.DataFrame:
    """`rows` (`planned_day_forecasts`) with `base_forecast` replaced by the blend the
    served forecast lifts, `weight * base_forecast + (1 - weight) * LEVEL` (null level: 0):
    the uplift is then actual over the no-campaign forecast as served, so campaign days
    are not pulled low by the part of the blend that is the level."""
    return rows.with_columns(base_forecast=blended(pl.col("base_forecast"), pl.lit(1.0), weight))


def _shrunk_ratio(rows: pl.DataFrame, prior_rows: int, cap: float) -> float | None:
    """Actual over forecast units, shrunk towards 1 by `prior_rows` rows of the mean
    forecast and kept within [1 / cap, cap]; None without rows or forecast units."""
    forecast = float(rows["base_forecast"].sum())
    if rows.is_empty() or forecast <= 0:
        return None
    prior = prior_rows * forecast / rows.height
    ratio = (float(rows["units"].cast(pl.Float64).sum()) + prior) / (forecast + prior)
    return float(np.clip(ratio, 1.0 / cap, cap))


def campaign_uplift(
    rows: pl.DataFrame, prior_rows: int = UPLIFT_PRIOR_ROWS, cap: float = UPLIFT_CAP
) -> dict[str, float]:
    """Factors for planned campaign days: actual over forecast units on past planned
    campaign days (`planned_day_forecasts`), one for the products of a category the
    campaign promotes (`planned_category`, IN_CATEGORY) and one for the others
    (OTHER_CATEGORIES): a campaign lifts the whole store's traffic, its own categories
    most. Each is shrunk towards 1 by `prior_rows` product-days of its mean forecast,
    `(units + prior) / (forecast + prior)` with `prior = prior_rows * forecast / rows`,
    then kept within [1 / cap, cap]. A group without such days has no factor (empty: no
    uplift at all).

    `train_demand` passes the planned days on which the campaign was seen to run
    (`ran_as_planned`), forecast as the blend it lifts (`blended_base`): the factor is the
    lift of a campaign that runs as planned. A planned campaign that is then called off is
    forecast high by it; one left out of the plan gets no lift."""
    if "planned_category" not in rows.columns:
        rows = rows.with_columns(planned_category=pl.lit(False))
    factors = {}
    for key, member in (
        (IN_CATEGORY, pl.col("planned_category")),
        (OTHER_CATEGORIES, ~pl.col("planned_category")),
    ):
        ratio = _shrunk_ratio(rows.filter(member), prior_rows, cap)
        if ratio is not None:
            factors[key] = ratio
    return factors


def uplift_factor(frame: pl.DataFrame, uplift: dict[str, float] | None) -> pl.Series:
    """Per row of `frame`: on planned campaign days the uplift of its group (IN_CATEGORY
    when the campaign promotes the row's category, else OTHER_CATEGORIES; a group without
    a factor takes the other's; an artifact's single ALL_CAMPAIGN_ROWS factor applies to
    both), 1 elsewhere, without a plan (`planned_campaign` missing) or without an uplift."""
    if not uplift or "planned_campaign" not in frame.columns:
        return pl.Series("campaign_uplift", [1.0] * frame.height, dtype=pl.Float64)
    single = uplift.get(ALL_CAMPAIGN_ROWS)
    promoted = uplift.get(IN_CATEGORY, uplift.get(OTHER_CATEGORIES, single))
    others = uplift.get(OTHER_CATEGORIES, uplift.get(IN_CATEGORY, single))
    in_category = (
        pl.col("planned_category") if "planned_category" in frame.columns else pl.lit(False)
    )
    return frame.select(
        campaign_uplift=pl.when(pl.col("planned_campaign") & in_category)
        .then(pl.lit(promoted, dtype=pl.Float64))
        .when(pl.col("planned_campaign"))
        .then(pl.lit(others, dtype=pl.Float64))
        .otherwise(1.0)
    )["campaign_uplift"]


def blend_weight(rows: pl.DataFrame, step: float = BLEND_STEP) -> float:
    """The model's weight w in the served forecast `w * forecast + (1 - w) * level`: the w
    on a grid of `step` (0..1) with the least WAPE of the blend on `rows` (units, forecast,
    level: observed days the forecasting model had not seen, its forecast as served), the
    larger w on ties. 1 (the model alone) without units to measure on.

    The level (the product's regular-day mean, `horizon_days` old) is a robust forecast on
    its own; the model's factor on it is noisier: a blend hedges both. `train_demand`
    measures it on days without a planned campaign (the campaign uplift multiplies the
    blend afterwards)."""
    actual = rows["units"].cast(pl.Float64).to_numpy()
    if rows.is_empty() or actual.sum() <= 0:
        return 1.0
    forecast = rows["forecast"].cast(pl.Float64).to_numpy()
    level = rows["level"].cast(pl.Float64).fill_null(0.0).to_numpy()
    weights = np.linspace(0.0, 1.0, round(1.0 / step) + 1)
    errors = [np.abs(actual - (w * forecast + (1.0 - w) * level)).sum() for w in weights]
    best = min(errors)
    chosen = max(w for w, e in zip(weights, errors, strict=True) if e <= best * (1 + 1e-12))
    return round(float(chosen), 6)  # 0.7, not 0.7000000000000001, on the card


def blended(model_units: pl.Expr, factor: pl.Expr, weight: float) -> pl.Expr:
    """The served forecast: the campaign factor x (`weight` x the model's units plus
    (1 - `weight`) x the level (LEVEL; null: 0, as in the model's own forecast))."""
    return factor * (weight * model_units + (1.0 - weight) * pl.col(LEVEL).fill_null(0.0))


def time_windows(last_day: date, window_days: int, count: int) -> list[tuple[date, date]]:
    """Consecutive [start, end] windows ending at `last_day`, newest first."""
    return [
        (
            last_day - timedelta(days=(i + 1) * window_days - 1),
            last_day - timedelta(days=i * window_days),
        )
        for i in range(count)
    ]


def select_params(
    observed: pl.DataFrame,
    window_days: int,
    folds: int,
    typical: pl.DataFrame | None = None,
    processes: int | None = 1,
) -> tuple[dict, pl.DataFrame, list[pl.DataFrame]]:
    """Grid search scored by WAPE on `folds` time-ordered validation windows. Also returns
    the chosen parameters' out-of-sample forecasts on each window's planned campaign days
    (`planned_day_forecasts`, with the served covariates `typical`; none without). The
    fits are independent: up to `processes` run at once (`parallel_map`)."""
    last_day: date = observed["date"].max()  # type: ignore[assignment]
    windows = []
    for start, end in time_windows(last_day, window_days, folds):
        train = observed.filter(
            pl.col("date") < start,
            pl.col("date") >= start - timedelta(days=SELECTION_TRAIN_DAYS),
        )
        valid = observed.filter(pl.col("date") >= start, pl.col("date") <= end)
        if train.filter(pl.col(LEVEL) > 0).is_empty() or valid["units"].sum() == 0:
            continue
        windows.append((train, valid))
    tasks = [(params, train, valid, typical) for params in GRID for train, valid in windows]
    fit_rows = max((train.height for train, _ in windows), default=0)
    results = iter(parallel_map(_validate, tasks, processes, fit_rows))
    rows = []
    planned: dict[str, list[pl.DataFrame]] = {}
    for params in GRID:
        key = json.dumps(params, sort_keys=True)
        scores = []
        planned[key] = []
        for _ in windows:
            score, forecasts = next(results)
            scores.append(score)
            if forecasts is not None:
                planned[key].append(forecasts)
        rows.append(
            {
                "params": key,
                "cv_wape": float(np.mean(scores)) if scores else float("nan"),
                "folds": len(scores),
            }
        )
    table = pl.DataFrame(rows).sort("cv_wape", nulls_last=True, maintain_order=True)
    if table["folds"].max() == 0:
        raise ValueError("demand model selection: not enough history before the holdout")
    chosen = table["params"][0]
    return json.loads(chosen), table, planned[chosen]


def _validate(
    params: dict, train: pl.DataFrame, valid: pl.DataFrame, typical: pl.DataFrame | None
) -> tuple[float, pl.DataFrame | None]:
    """One selection fit: its WAPE on the validation window and its planned-day forecasts."""
    model = fit_model(build_model(params), train)
    score = regression_metrics(valid["units"].to_numpy(), predict_units(model, valid))["wape"]
    return score, None if typical is None else served_forecasts(model, valid, typical)


def validation_window_days(holdout_days: int) -> int:
    """Each time-ordered validation window of the parameter search: half the holdout, >= 7."""
    return max(7, holdout_days // 2)


def observed_rows(features: pl.DataFrame) -> pl.DataFrame:
    """The grid's past rows with known units (days whose sales are unknown have them null)."""
    return features.filter(~pl.col("is_future"), pl.col("units").is_not_null())


def split_holdout(features: pl.DataFrame, holdout_days: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    observed = observed_rows(features)
    last_day: date = observed["date"].max()  # type: ignore[assignment]
    start = last_day - timedelta(days=holdout_days - 1)
    return observed.filter(pl.col("date") < start), observed.filter(pl.col("date") >= start)


def train_demand(
    features: pl.DataFrame,
    holdout_days: int,
    cv_folds: int = 2,
    max_bias: float = 0.25,
    processes: int | None = 1,
) -> TrainingOutcome:
    # one canonical row order: gradient boosting's early-stopping split depends on it
    features = features.sort("sku", "date")
    train, holdout = split_holdout(features, holdout_days)
    if train.filter(pl.col(LEVEL) > 0).is_empty() or holdout["units"].sum() == 0:
        raise ValueError(
            f"demand training needs sales before and inside the {holdout_days}-day holdout"
        )
    # validation windows half the holdout's length, so short histories still get folds
    typical = served_covariates(features)
    params, selection, validated = select_params(
        train, validation_window_days(holdout_days), cv_folds, typical, processes
    )
    model = fit_model(build_model(params), train)
    actual = holdout["units"].to_numpy().astype(np.float64)
    forecast = predict_units(model, holdout)
    # the blend with the level: its weight chosen on the holdout's days without a planned
    # campaign, forecast as served (no campaign known to the model) by the model that had
    # not seen them
    held_out = served_forecasts(model, holdout, typical)
    weight = blend_weight(
        held_out.filter(~pl.col("planned_campaign")).select(
            "units", forecast=pl.col("base_forecast"), level=pl.col(LEVEL)
        )
    )
    # the campaign-day uplift: actual over that blend on the planned campaign days of the
    # validation windows and the holdout on which the campaign was seen to run, each
    # forecast by a model that had not seen it
    planned = planned_day_forecasts(pl.concat([*validated, held_out], how="vertical_relaxed"))
    observed = observed_rows(features)
    usual_share = usual_promotion_share(observed)
    uplift = campaign_uplift(blended_base(ran_as_planned(planned, usual_share), weight))
    naive = holdout["seasonal_naive"].fill_null(0).to_numpy().astype(np.float64)
    metrics = regression_metrics(actual, forecast)
    problems = []
    if np.isnan(forecast).any():
        problems.append("NaN forecasts on the holdout")
    if abs(metrics["bias"]) > max_bias:
        problems.append(f"forecast bias {metrics['bias']:+.1%} beyond ±{max_bias:.0%}")
    holdout_start: date = holdout["date"].min()  # type: ignore[assignment]

    def evaluate_champion(card: ModelCard, artifact: dict[str, Any]) -> dict[str, float]:
        if artifact["feature_columns"] != DEMAND_FEATURE_COLUMNS:
            return {}
        champion = artifact["model"]
        if date.fromisoformat(card.trained_through) >= holdout_start:
            # it saw the holdout: refit its recipe (fit_model sets min_samples_leaf from the
            # rows), unless that recipe is the challenger's: the refit would be `model`
            if same_recipe(champion, model, ignore={"min_samples_leaf"}):
                return dict(metrics)
            champion = fit_model(clone(champion), train)
        return regression_metrics(actual, predict_units(champion, holdout))

    predictions = holdout.select("sku", "date", "units").with_columns(
        forecast=pl.Series(forecast), seasonal_naive=pl.Series(naive)
    )
    daily = (
        predictions.group_by("date")
        .agg(
            actual=pl.col("units").sum(),
            forecast=pl.col("forecast").sum(),
            seasonal_naive=pl.col("seasonal_naive").sum(),
        )
        .sort("date")
    )
    scaled = holdout.filter(pl.col(LEVEL) > 0)
    sample = np.random.default_rng(RANDOM_STATE).permutation(scaled.height)[:3000]
    importance = permutation_importance(  # on the factor the model predicts
        model,
        _features(scaled)[sample],
        (scaled["units"] / scaled[LEVEL]).to_numpy()[sample],
        scoring="neg_mean_absolute_error",
        n_repeats=3,
        random_state=RANDOM_STATE,
    ).importances_mean
    return TrainingOutcome(
        model_name="hist_gradient_boosting_regressor",
        params={**params, "strategy": "direct", "horizon_days": int(features["horizon_days"][0])},
        artifact={
            "model": fit_model(build_model(params), observed),
            "feature_columns": DEMAND_FEATURE_COLUMNS,
            "horizon_days": int(features["horizon_days"][0]),
            "campaign_uplift": uplift,
            "blend_weight": weight,
        },
        metrics=metrics,
        baseline_metrics=regression_metrics(actual, naive),
        selection=selection,
        row_counts={
            "train_rows": train.height,
            "holdout_rows": holdout.height,
            "refit_rows": observed.height,
            "products": features["sku"].n_unique(),
        },
        trained_through=observed["date"].max(),  # type: ignore[arg-type]
        holdout_start=holdout_start,
        evaluate_champion=evaluate_champion,
        sanity_problems=problems,
        holdout_predictions=predictions,
        plots={
            "forecast_vs_actual": plots.forecast_plot(daily),
            "importance": plots.importance_plot(
                DEMAND_FEATURE_COLUMNS, importance, "Permutation importance (holdout MAE)"
            ),
        },
    )


def forecast(artifact: dict[str, Any], features: pl.DataFrame) -> pl.DataFrame:
    """Units per product for the future days in `features` (the next horizon_days): the
    model's forecast (`model_units`, no campaign assumed) blended with the product's level
    (weight `blend_weight`; 1, the model alone, for artifacts without one), times the
    artifact's campaign uplift on days the published plan marks as campaign days
    (`campaign_uplift`, 1 on other days; see `blended`). `planned`: a published plan
    covered the day; `planned_campaign`: it marks a campaign then."""
    future = features.filter(pl.col("is_future"))
    import os
    if os.environ.get("FRESH_LEVEL") and "level_at_cutoff" in future.columns:
        multiplier = np.clip(artifact["model"].predict(_features(future)), 0.0, None)
        future = future.with_columns(pl.coalesce("level_at_cutoff", LEVEL).alias(LEVEL))
        model_units = multiplier * future[LEVEL].fill_null(0).to_numpy()
    else:
        model_units = predict_units(artifact["model"], future)
    factor = uplift_factor(future, artifact.get("campaign_uplift"))
    weight = float(artifact.get("blend_weight", 1.0))
    no_plan = pl.repeat(False, future.height, eager=True)
    served = future.select("sku", "date", LEVEL).with_columns(
        model_units=pl.Series(model_units),
        campaign_uplift=factor,
        blend_weight=pl.lit(weight),
    )
    return served.with_columns(
        forecast_units=blended(pl.col("model_units"), pl.col("campaign_uplift"), weight)
    ).select(
        "sku",
        "date",
        "forecast_units",
        "model_units",
        "campaign_uplift",
        "blend_weight",
        planned=future["planned"] if "planned" in future.columns else no_plan,
        planned_campaign=(
            future["planned_campaign"] if "planned_campaign" in future.columns else no_plan
        ),
        horizon_day=(pl.col("date") - pl.col("date").min()).dt.total_days() + 1,
    )
