"""Live model performance once outcomes are known, against the value measured at training.

- churn: each archived scoring snapshot (as_of_date) whose label window
  (as_of, as_of + horizon] has closed in the marts gets a live ROC AUC.
- demand: each archived forecast whose days have all been observed gets a
  live WAPE (days without sales count as 0 units).

`verdict` compares the newest matured value with the champion card's
holdout metric: an AUC drop or a WAPE rise beyond the tolerance fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from aiwf_assets.ml.churn import churn_labels
from aiwf_assets.ml.common import wape

PERFORMANCE_SCHEMA = {
    "family": pl.String,
    "snapshot": pl.Date,
    "model_version": pl.String,
    "metric": pl.String,
    "live": pl.Float64,
    "rows": pl.Int64,
}


def churn_performance(
    snapshots: dict[date, pl.DataFrame], purchase_days: pl.DataFrame, last_day: date
) -> pl.DataFrame:
    """Live ROC AUC of every archived churn snapshot whose labels have matured.

    snapshots: as_of -> churn_scores rows (customer_key, as_of_date, churn_risk,
    churn_horizon_days, model_version). purchase_days: customer_key, activity_date.
    """
    rows = []
    for as_of, scores in sorted(snapshots.items()):
        horizon = int(scores["churn_horizon_days"][0])
        if as_of + timedelta(days=horizon) > last_day:
            continue
        labelled = churn_labels(scores, purchase_days, horizon)
        labels = labelled["churned"].to_numpy().astype(int)
        if len(np.unique(labels)) < 2:
            continue  # AUC is undefined when everyone (or no one) churned
        rows.append({
            "family": "churn",
            "snapshot": as_of,
            "model_version": scores["model_version"][0],
            "metric": "roc_auc",
            "live": float(roc_auc_score(labels, labelled["churn_risk"].to_numpy())),
            "rows": labelled.height,
        })
    return pl.DataFrame(rows, schema=PERFORMANCE_SCHEMA)


def demand_performance(
    forecasts: dict[date, pl.DataFrame], sales: pl.DataFrame, last_day: date
) -> pl.DataFrame:
    """Live WAPE of every archived forecast whose days have all been observed.

    forecasts: first forecast day -> demand_forecast rows (sku, date, forecast_units,
    model_version). sales: sku, sales_date, units (days with sales only).
    """
    rows = []
    actuals = sales.select("sku", pl.col("sales_date").alias("date"), "units")
    for first_day, forecast in sorted(forecasts.items()):
        if forecast["date"].max() > last_day:  # type: ignore[operator]
            continue
        joined = forecast.join(actuals, on=["sku", "date"], how="left").with_columns(
            pl.col("units").fill_null(0).cast(pl.Float64)
        )
        actual = joined["units"].to_numpy()
        if actual.sum() == 0:
            continue  # WAPE is undefined without any sale
        rows.append({
            "family": "demand",
            "snapshot": first_day,
            "model_version": forecast["model_version"][0],
            "metric": "wape",
            "live": wape(actual, joined["forecast_units"].to_numpy().astype(np.float64)),
            "rows": joined.height,
        })
    return pl.DataFrame(rows, schema=PERFORMANCE_SCHEMA)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str
    live: float | None = None
    at_training: float | None = None


def verdict(
    performance: pl.DataFrame, metric: str, at_training: dict[str, float],
    tolerance: float, higher_is_better: bool,
) -> Verdict:
    """Newest matured snapshot vs the value its model version had on its training holdout.

    at_training: model_version -> the card's holdout value of `metric`.
    """
    if performance.is_empty():
        return Verdict(True, "no matured snapshot yet: outcomes are not known")
    newest = performance.sort("snapshot").row(-1, named=True)
    reference = at_training.get(newest["model_version"])
    if reference is None:
        return Verdict(True, f"no training {metric} for model {newest['model_version']}")
    live = newest["live"]
    loss = reference - live if higher_is_better else live - reference
    text = (
        f"{metric} live {live:.4f} on the {newest['snapshot']} snapshot vs {reference:.4f} at "
        f"training (worse by {loss:+.4f}, tolerance {tolerance})"
    )
    return Verdict(loss <= tolerance, text, live, reference)
