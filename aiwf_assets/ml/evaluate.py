"""Model quality against the best achievable, using the generator's latent truth.

Evaluation only: the pipeline never imports this module and never reads
`truth/`. Each family is retrained here with the pipeline's own functions on
data up to the truth's cutoff, then compared on the same holdout with the
truth (the ceiling) and with the naive baseline:

- churn: ROC AUC of the model vs of the true churn probabilities vs the
  recency rule, on the customers in the truth file who had ordered by the cutoff;
- demand: WAPE of the model vs of the true expected demand vs seasonal naive,
  on the model's time-ordered holdout days;
- recommendations: hit rate@k of the model vs popularity on held-out next
  purchases (the truth has no per-customer ceiling for these).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
from sklearn.metrics import roc_auc_score

from aiwf_assets.io.warehouse import Warehouse
from aiwf_assets.ml import churn, demand, features, recommend
from aiwf_assets.ml.common import wape
from aiwf_assets.ml.marts import read_mart

CHURN_TARGET = 0.97  # model AUC >= 0.97 x ceiling AUC
DEMAND_TARGET = 1.1  # model WAPE <= 1.1 x WAPE of the true expected demand
RECS_TARGET = 1.5  # model hit rate >= 1.5 x popularity hit rate

RESULT_SCHEMA = {
    "family": pl.String,
    "metric": pl.String,
    "model": pl.Float64,
    "best_achievable": pl.Float64,
    "baseline": pl.Float64,
    "target": pl.String,
    "meets_target": pl.Boolean,
    "rows": pl.Int64,
    "note": pl.String,
}


class TruthMissingError(FileNotFoundError):
    """The home has no generated truth to evaluate against."""


@dataclass(frozen=True)
class TruthEvaluation:
    table: pl.DataFrame
    markdown: str


def customer_key(crm_id: str, pii_key: bytes) -> str:
    """The cleaned layer's pseudonymous key of a CRM customer (see DATA_CONTRACTS.md)."""
    return hmac.new(pii_key, f"crm:{crm_id}".encode(), hashlib.sha256).hexdigest()[:16]


def evaluate_churn(marts: dict[str, pl.DataFrame], truth: pl.DataFrame, pii_key: bytes) -> dict:
    """Retrain as of the truth's cutoff (data up to it only) and score the truth's customers."""
    if truth.is_empty():
        raise ValueError(
            "the generated period is too short to have a churn cutoff (the truth is empty); "
            "generate more days"
        )
    cutoff: date = truth["cutoff_date"].max()  # type: ignore[assignment]
    horizon = int(truth.filter(pl.col("cutoff_date") == cutoff)["horizon_days"][0])
    activity = marts["fct_customer_daily_activity"].filter(pl.col("activity_date") <= cutoff)
    dates = features.snapshot_dates(
        cutoff,
        activity["activity_date"].min(),
        horizon,
        10,
        7,  # type: ignore[arg-type]
    )
    snapshots = features.customer_feature_snapshots(
        activity, marts["fct_orders"], marts["dim_customers"], dates
    )
    buying_days = activity.filter(pl.col("n_orders") > 0).select("customer_key", "activity_date")
    outcome = churn.train_churn(snapshots, buying_days, horizon)
    scores = churn.score_customers(outcome.artifact, snapshots)
    current = snapshots.filter(pl.col("as_of_date") == cutoff).select(
        "customer_key", "recency_days"
    )
    keyed = truth.filter(pl.col("cutoff_date") == cutoff).with_columns(
        customer_key=pl.col("crm_id")
        .cast(pl.String)
        .map_elements(lambda crm_id: customer_key(crm_id, pii_key), return_dtype=pl.String)
    )
    joined = keyed.join(scores, on="customer_key").join(current, on="customer_key")
    labels = joined["churned"].cast(pl.Int8).to_numpy()
    model_auc = float(roc_auc_score(labels, joined["churn_risk"].to_numpy()))
    ceiling = float(roc_auc_score(labels, joined["churn_prob"].to_numpy()))
    return {
        "family": "churn",
        "metric": "roc_auc",
        "model": model_auc,
        "best_achievable": ceiling,
        "baseline": float(roc_auc_score(labels, joined["recency_days"].to_numpy())),
        "target": f">= {CHURN_TARGET} x best ({CHURN_TARGET * ceiling:.4f})",
        "meets_target": model_auc >= CHURN_TARGET * ceiling,
        "rows": joined.height,
        "note": (
            f"cutoff {cutoff}, horizon {horizon} d, {outcome.model_name}; "
            f"{joined.height} of {keyed.height} truth customers had ordered by the cutoff"
        ),
    }


def evaluate_demand(
    marts: dict[str, pl.DataFrame], truth: pl.DataFrame, horizon_days: int, holdout_days: int
) -> dict:
    """The pipeline's demand holdout, with the truth's expected units as the ceiling."""
    sales = marts["fct_product_daily_sales"]
    cutoff = min(sales["sales_date"].max(), truth["date"].max())  # type: ignore[type-var]
    grid = features.demand_features(
        sales.filter(pl.col("sales_date") <= cutoff), marts["dim_products"], cutoff, horizon_days
    )
    outcome = demand.train_demand(grid, holdout_days)
    assert outcome.holdout_predictions is not None
    joined = outcome.holdout_predictions.join(
        truth.select("sku", "date", "expected_units", "actual_units"), on=["sku", "date"]
    )
    actual = joined["actual_units"].cast(pl.Float64).to_numpy()
    model_wape = wape(actual, joined["forecast"].to_numpy())
    ceiling = wape(actual, joined["expected_units"].cast(pl.Float64).to_numpy())
    naive = wape(actual, joined["seasonal_naive"].to_numpy())
    return {
        "family": "demand",
        "metric": "wape",
        "model": model_wape,
        "best_achievable": ceiling,
        "baseline": naive,
        "target": f"<= {DEMAND_TARGET} x best ({DEMAND_TARGET * ceiling:.4f}) and < baseline",
        "meets_target": model_wape <= DEMAND_TARGET * ceiling and model_wape < naive,
        "rows": joined.height,
        "note": (
            f"last {holdout_days} days to {cutoff}, {horizon_days}-day-ahead direct forecast; "
            f"{joined.height} of {outcome.holdout_predictions.height} holdout rows in the truth"
        ),
    }


def evaluate_recommendations(marts: dict[str, pl.DataFrame], holdout_days: int, k: int) -> dict:
    lines = marts["fct_order_lines"]
    cutoff: date = lines["order_date"].max()  # type: ignore[assignment]
    pairs = features.interaction_pairs(lines, cutoff).with_columns(as_of_date=pl.lit(cutoff))
    outcome = recommend.train_recommender(pairs, holdout_days, k)
    metric = f"hit_rate_at_{k}"
    model, popularity = outcome.metrics[metric], outcome.baseline_metrics[metric]
    return {
        "family": "recommendations",
        "metric": metric,
        "model": model,
        "best_achievable": None,
        "baseline": popularity,
        "target": f">= {RECS_TARGET} x baseline ({RECS_TARGET * popularity:.4f})",
        "meets_target": model >= RECS_TARGET * popularity,
        "rows": int(outcome.metrics["evaluated_customers"]),
        "note": (
            f"{outcome.model_name}; new purchases in the last {holdout_days} days to {cutoff}; "
            f"precision@{k} {outcome.metrics[f'precision_at_{k}']:.4f} vs "
            f"{outcome.baseline_metrics[f'precision_at_{k}']:.4f}"
        ),
    }


def to_markdown(table: pl.DataFrame) -> str:
    lines = [
        "| family | metric | model | best achievable | baseline | target | met | rows | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in table.iter_rows(named=True):
        numbers = [
            "" if row[c] is None else f"{row[c]:.4f}"
            for c in ("model", "best_achievable", "baseline")
        ]
        cells = [
            row["family"],
            row["metric"] or "",
            *numbers,
            row["target"] or "",
            "yes" if row["meets_target"] else "NO",
            "" if row["rows"] is None else str(row["rows"]),
            row["note"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate_against_truth(
    home: Path,
    warehouse: Warehouse,
    pii_key: bytes | None = None,
    demand_horizon_days: int = 7,
    demand_holdout_days: int = 28,
    recs_holdout_days: int = 14,
    k: int = 10,
) -> TruthEvaluation:
    """Evaluate every family on the marts in `warehouse` against `home/truth/`.

    `pii_key` defaults to the settings' key (the one the cleaned layer used).
    """
    truth_dir = home / "truth"
    missing = [n for n in ("churn.parquet", "demand.parquet") if not (truth_dir / n).exists()]
    if missing:
        raise TruthMissingError(
            f"{truth_dir} lacks {', '.join(missing)}: evaluation needs a generated dataset "
            "(`aiwf generate`), whose truth/ folder holds the latent churn and demand"
        )
    if pii_key is None:
        from aiwf_assets.settings import get_settings

        pii_key = get_settings().pii_key
    marts = {
        name: read_mart(warehouse, name)
        for name in (
            "fct_customer_daily_activity",
            "fct_orders",
            "dim_customers",
            "fct_product_daily_sales",
            "dim_products",
            "fct_order_lines",
        )
    }
    churn_truth = pl.read_parquet(truth_dir / "churn.parquet")
    demand_truth = pl.read_parquet(truth_dir / "demand.parquet")
    evaluations: list[tuple[str, Callable[[], dict]]] = [
        ("churn", lambda: evaluate_churn(marts, churn_truth, pii_key)),
        (
            "demand",
            lambda: evaluate_demand(marts, demand_truth, demand_horizon_days, demand_holdout_days),
        ),
        ("recommendations", lambda: evaluate_recommendations(marts, recs_holdout_days, k)),
    ]
    rows = []
    for family, evaluation in evaluations:
        try:
            rows.append(evaluation())
        except ValueError as exc:  # e.g. too little history before the truth's cutoff
            rows.append({"family": family, "meets_target": False, "note": f"not evaluated: {exc}"})
    table = pl.DataFrame(
        [{name: row.get(name) for name in RESULT_SCHEMA} for row in rows], schema=RESULT_SCHEMA
    )
    return TruthEvaluation(table=table, markdown=to_markdown(table))
