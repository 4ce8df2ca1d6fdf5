"""The CRM export: one row per customer with risk, segment, recommendations, next action."""

from __future__ import annotations

import polars as pl

EXPORT_COLUMNS = [
    "customer_key",
    "as_of_date",
    "churn_risk",
    "risk_band",
    "segment",
    "top_5_recommendations",
    "next_best_action",
    "churn_model_version",
    "segmentation_model_version",
    "recommender_version",
]


def next_best_action(risk_band: pl.Expr, segment: pl.Expr, has_recommendations: pl.Expr) -> pl.Expr:
    """A plain rule the CRM team can read: protect value at risk first, then cross-sell."""
    high_value = segment.str.contains("high value")
    return (
        pl.when((risk_band == "high") & high_value)
        .then(pl.lit("personal retention call"))
        .when(risk_band == "high")
        .then(pl.lit("win-back voucher"))
        .when((risk_band == "medium") & has_recommendations)
        .then(pl.lit("re-engagement email with recommendations"))
        .when(risk_band == "medium")
        .then(pl.lit("re-engagement email"))
        .when(has_recommendations)
        .then(pl.lit("cross-sell recommendations"))
        .otherwise(pl.lit("no action"))
    )


def crm_export(
    churn_scores: pl.DataFrame,
    segments: pl.DataFrame,
    recommendations: pl.DataFrame,
    model_versions: dict[str, str],
) -> pl.DataFrame:
    """Join the serving outputs on customer_key (pseudonymous: no clear PII leaves)."""
    top_5 = (
        recommendations.filter(pl.col("rank") <= 5)
        .sort("customer_key", "rank")
        .group_by("customer_key", maintain_order=True)
        .agg(top_5_recommendations=pl.col("sku").str.join(";"))
    )
    return (
        churn_scores.select("customer_key", "as_of_date", "churn_risk", "risk_band")
        .join(segments.select("customer_key", "segment"), on="customer_key", how="left")
        .join(top_5, on="customer_key", how="left")
        .with_columns(
            segment=pl.col("segment").fill_null("unsegmented"),
            top_5_recommendations=pl.col("top_5_recommendations").fill_null(""),
        )
        .with_columns(
            next_best_action=next_best_action(
                pl.col("risk_band"), pl.col("segment"), pl.col("top_5_recommendations") != ""
            ),
            churn_model_version=pl.lit(model_versions["churn"]),
            segmentation_model_version=pl.lit(model_versions["segmentation"]),
            recommender_version=pl.lit(model_versions["recommender"]),
        )
        .select(EXPORT_COLUMNS)
        .sort("customer_key")
    )
