"""Serving assets: each family's champion applied to the current features, and the CRM export.

One factory turns a `ServingSpec` into a scoring shell: it loads the family's
champion, applies it to the feature frame, stamps the model version and
reports a summary. The CRM export joins three of them.
"""

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from aiwf_assets.io.warehouse import Warehouse
from aiwf_assets.ml import churn, demand, features, recommend, segmentation, serving
from aiwf_assets.ml.assets.metadata import OWNERS, frame_output, frame_result
from aiwf_assets.ml.common import source_version
from aiwf_assets.ml.marts import read_mart
from aiwf_assets.ml.populations import identified_keys
from aiwf_assets.resources import (
    Champion,
    ExportsResource,
    ModelStoreResource,
    WarehouseResource,
)

CRM_EXPORT_TABLE = "serving.crm_export"
SERVING_KINDS = {"python", "parquet"}


class ServingConfig(dg.Config):
    """Scoring options; most families have none."""


class RecommendationsConfig(ServingConfig):
    k: int = Field(default=10, description="recommendations per customer")


@dataclass(frozen=True)
class ServingSpec:
    name: str  # the asset
    family: str  # the model store's family whose champion scores
    model: str  # the model asset
    logic: ModuleType  # the family's module: code version
    features: str  # the feature asset scored
    score: Callable[[Any, Any, pl.DataFrame], pl.DataFrame]  # (config, artifact, features)
    summary: Callable[[Any, pl.DataFrame], dict[str, Any]]  # (config, scores) -> metadata
    description: str
    config: type[ServingConfig] = ServingConfig


def serving_asset(spec: ServingSpec) -> dg.AssetsDefinition:
    """The scoring shell for one family, as its spec describes it."""
    config_type = spec.config

    @dg.asset(
        name=spec.name,
        group_name="serving",
        # the model IO manager loads the family's current champion from the model store: a
        # rollback (`aiwf model rollback`) changes what scores without re-materialising it
        ins={
            "features": dg.AssetIn(key=spec.features),
            "model": dg.AssetIn(key=spec.model, input_manager_key="model_io_manager"),
        },
        owners=OWNERS,
        kinds=SERVING_KINDS,
        code_version=source_version(spec.logic),
        description=spec.description,
    )
    def _score(
        config: config_type,  # type: ignore[valid-type]
        features: pl.DataFrame,
        model: Champion,
    ) -> dg.Output[pl.DataFrame]:
        frame = spec.score(config, model.artifact, features)
        frame = frame.with_columns(model_version=pl.lit(model.version))
        return frame_output(frame, {"model_version": model.version, **spec.summary(config, frame)})

    return _score


def _churn_summary(_: ServingConfig, scores: pl.DataFrame) -> dict[str, Any]:
    return {
        "risk_bands": dg.MetadataValue.json(dict(scores.group_by("risk_band").len().iter_rows())),
        "mean_risk": float(scores["churn_risk"].mean() or 0.0),  # type: ignore[arg-type]
    }


def _segments_summary(_: ServingConfig, segments: pl.DataFrame) -> dict[str, Any]:
    sizes = dict(segments.group_by("segment").len().iter_rows())
    return {"segment_sizes": dg.MetadataValue.json(sizes)}


def _forecast_summary(_: ServingConfig, forecast: pl.DataFrame) -> dict[str, Any]:
    days = forecast.group_by("date").agg(pl.col("planned").all()).sort("date")
    uplifted = forecast.filter(pl.col("campaign_uplift") != 1.0)
    return {
        "total_forecast_units": float(forecast["forecast_units"].sum()),
        # where the published promotion plan says nothing, no campaign uplift is applied
        "promotion_plan": features.plan_note(days["date"].to_list(), days["planned"].to_list()),
        "campaign_uplift_days": dg.MetadataValue.json(
            sorted({d.isoformat() for d in uplifted["date"].to_list()})
        ),
        # the model's weight in its blend with the product's level (`demand.blend_weight`)
        "blend_weight": float(forecast["blend_weight"][0]) if forecast.height else 1.0,
    }


SCORERS = [
    ServingSpec(
        name="churn_scores",
        family="churn",
        model="churn_model",
        logic=churn,
        features="customer_features",
        score=lambda _, artifact, frame: churn.score_customers(artifact, frame),
        summary=_churn_summary,
        description=(
            "Churn risk (probability and band) per customer as of the cutoff, by the champion."
        ),
    ),
    ServingSpec(
        name="customer_segments",
        family="segmentation",
        model="segmentation_model",
        logic=segmentation,
        features="customer_features",
        score=lambda _, artifact, frame: segmentation.assign_segments(artifact, frame),
        summary=_segments_summary,
        description="Segment per customer (id and plain-words description), by the champion.",
    ),
    ServingSpec(
        name="demand_forecast",
        family="demand",
        model="demand_model",
        logic=demand,
        features="demand_features",
        score=lambda _, artifact, frame: demand.forecast(artifact, frame),
        summary=_forecast_summary,
        description="Units per product for each of the next horizon_days, by the champion.",
    ),
    ServingSpec(
        name="recommendations",
        family="recommender",
        model="recommender",
        logic=recommend,
        features="interaction_matrix",
        config=RecommendationsConfig,
        score=lambda config, artifact, frame: recommend.top_recommendations(
            artifact, frame, config.k
        ),
        summary=lambda config, _: {"k": config.k},
        description="Top-k products per customer (not already bought), by the champion.",
    ),
]


@dg.asset(
    group_name="serving",
    deps=["dim_customers"],
    owners=OWNERS,
    kinds={"python", "duckdb", "csv"},
    code_version=source_version(serving),
    description=(
        "Per scored customer and per CRM customer who has not bought yet (no score, no churn "
        "action): customer_key, churn risk and band, segment, top-5 recommendations and "
        "the next best action with its reason; written to serving.crm_export and the exports "
        "directory. Actions are released per population (identified, guest) only where the "
        "champion measurably beat its baseline on its holdout (metadata `action_gate`). "
        "Pseudonymous keys "
        "only: no clear PII."
    ),
)
def crm_export(
    warehouse: WarehouseResource,
    exports: ExportsResource,
    model_store: ModelStoreResource,
    churn_scores: pl.DataFrame,
    customer_segments: pl.DataFrame,
    recommendations: pl.DataFrame,
) -> dg.MaterializeResult:
    versions = {
        "churn": churn_scores["model_version"][0],
        "segmentation": customer_segments["model_version"][0],
        "recommender": recommendations["model_version"][0],
    }
    models = model_store.store()
    # the gate reads the cards of the very versions that scored (their own holdouts)
    cards = {family: models.card(family, versions[family]) for family in serving.GATE_RULES}
    gates = {
        family: serving.action_gate(rule, cards[family].metrics, cards[family].baseline_metrics)
        for family, rule in serving.GATE_RULES.items()
    }
    wh: Warehouse = warehouse.get()
    crm_customers = identified_keys(read_mart(wh, "dim_customers"))
    frame = serving.crm_export(
        churn_scores, customer_segments, recommendations, versions, gates, crm_customers
    )
    wh.replace_table(CRM_EXPORT_TABLE, frame)
    files = exports.write("crm_export", frame)
    actions = dict(frame.group_by("next_best_action").len().iter_rows())
    return frame_result(
        frame,
        files[0],
        {
            "warehouse_table": CRM_EXPORT_TABLE,
            "files": dg.MetadataValue.json(files),
            "next_best_actions": dg.MetadataValue.json(actions),
            "action_gate": dg.MetadataValue.json(
                {
                    family: {population: gate.as_dict() for population, gate in by.items()}
                    for family, by in gates.items()
                }
            ),
            "populations": dg.MetadataValue.json(
                dict(frame.group_by("population").len().sort("population").iter_rows())
            ),
            "not_scored_no_purchase_yet": frame["churn_risk"].null_count(),
        },
    )


ASSETS = [*(serving_asset(spec) for spec in SCORERS), crm_export]
