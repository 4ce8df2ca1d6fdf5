"""Dagster shells for the AI layer: features -> models (with promotion) -> serving.

The logic lives in the sibling modules; these functions read inputs, call
it, write outputs and report metadata. Training assets (group `ml`) and
scoring assets (group `serving`) are separate so that models can retrain on
their own policy (drift, schedule, code change) while scores follow new data
with the current champions.
"""

from collections.abc import Sequence
from datetime import date
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from aiwf_assets.io.warehouse import Warehouse
from aiwf_assets.ml import churn, demand, features, recommend, segmentation, serving
from aiwf_assets.ml.common import frame_version, limited_threads, source_version
from aiwf_assets.ml.marts import purchase_days, read_mart
from aiwf_assets.ml.promotion import PromotionPolicy, TrainingOutcome, promote_challenger
from aiwf_assets.ml.resources import ExportsResource, ModelStoreResource
from aiwf_assets.resources import StorageResource, WarehouseResource

OWNERS = ["team:ml"]
CRM_EXPORT_TABLE = "serving.crm_export"


# helpers ---------------------------------------------------------------------
def resolve_cutoff(configured: str | None, dates: pl.Series) -> date:
    return date.fromisoformat(configured) if configured else features.last_complete_day(dates)


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
    )


def frame_markdown(frame: pl.DataFrame, digits: int = 4) -> str:
    rounded = frame.with_columns(pl.selectors.float().round(digits))
    header = "| " + " | ".join(rounded.columns) + " |"
    rule = "| " + " | ".join("---" for _ in rounded.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in rounded.iter_rows()]
    return "\n".join([header, rule, *rows])


def metrics_markdown(
    challenger: dict[str, float], champion: dict[str, float] | None, baseline: dict[str, float]
) -> str:
    names = list(challenger)
    table = pl.DataFrame(
        {
            "metric": names,
            "challenger": [challenger[n] for n in names],
            "champion (same holdout)": [(champion or {}).get(n) for n in names],
            "baseline (same holdout)": [baseline.get(n) for n in names],
        },
        schema_overrides={
            "champion (same holdout)": pl.Float64,
            "baseline (same holdout)": pl.Float64,
        },
    )
    return frame_markdown(table)


def upstream_data_versions(
    context: dg.AssetExecutionContext, keys: Sequence[str]
) -> dict[str, str]:
    """The data versions of the upstream materialisations this run read."""
    versions = {}
    for key in keys:
        record = context.instance.get_latest_data_version_record(dg.AssetKey(key))
        entry = record.event_log_entry if record else None
        event = entry and (entry.asset_materialization or entry.asset_observation)
        versions[key] = (
            (event.tags or {}).get("dagster/data_version", "unversioned")
            if event
            else ("never materialised")
        )
    return versions


def frame_result(
    frame: pl.DataFrame, uri: str, extra: dict[str, Any] | None = None
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "dagster/column_schema": column_schema(frame),
            "uri": dg.MetadataValue.path(uri),
            **(extra or {}),
        },
        data_version=dg.DataVersion(frame_version(frame)),
    )


def model_result(
    context: dg.AssetExecutionContext,
    store: ModelStoreResource,
    family: str,
    outcome: TrainingOutcome,
    policy: PromotionPolicy,
    deps: Sequence[str],
    code_version: str,
    max_threads: int | None,
    extra: dict[str, Any] | None = None,
) -> dg.MaterializeResult:
    """Register the challenger, run the promotion decision, report it as the blocking check."""
    data_versions = upstream_data_versions(context, deps)
    with limited_threads(max_threads):  # re-scoring the champion may refit it
        result = promote_challenger(
            store.store(), family, outcome, policy, data_versions, code_version
        )
    context.log.info(f"{family}: {result.decision.reason}")
    check = dg.AssetCheckResult(
        check_name="promotion",
        passed=result.decision.passed,
        # an insane challenger next to a working champion: warn; with no champion, block serving
        severity=dg.AssetCheckSeverity.WARN
        if result.champion_after
        else dg.AssetCheckSeverity.ERROR,
        metadata={
            "decision": result.decision.reason,
            "challenger_version": result.challenger.version,
            "champion_version": result.champion_after or "none",
        },
    )
    metadata: dict[str, Any] = {
        "model": outcome.model_name,
        "params": dg.MetadataValue.json(outcome.params),
        "challenger_version": result.challenger.version,
        "champion_version": result.champion_after or "none",
        "promoted": result.decision.promote,
        "decision": result.decision.reason,
        "metrics": dg.MetadataValue.md(
            metrics_markdown(outcome.metrics, result.champion_metrics, outcome.baseline_metrics)
        ),
        **{f"challenger_{k}": float(v) for k, v in outcome.metrics.items()},
        **{f"baseline_{k}": float(v) for k, v in outcome.baseline_metrics.items()},
        "selection": dg.MetadataValue.md(frame_markdown(outcome.selection)),
        "training_data_versions": dg.MetadataValue.json(data_versions),
        "row_counts": dg.MetadataValue.json(outcome.row_counts),
        "trained_through": outcome.trained_through.isoformat(),
        "holdout_start": outcome.holdout_start.isoformat(),
        "code_version": code_version,
        "retrain_policy": (
            "retrain on drift, schedule or code change; scoring assets follow new data "
            "with the current champion"
        ),
        **{f"plot_{name}": dg.MetadataValue.md(md) for name, md in outcome.plots.items()},
        **(extra or {}),
    }
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[check],
        data_version=dg.DataVersion(result.champion_after or "no-champion"),
    )


def promotion_check(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name="promotion",
        asset=asset,
        blocking=True,
        description=(
            "Promotes the challenger only if it passes sanity checks and beats the champion on "
            "the same fresh holdout by the configured margin; otherwise the champion stays and "
            "the check's `decision` says why. Fails (WARN) when the challenger fails its sanity "
            "checks; fails with ERROR, blocking serving, when there is no champion at all."
        ),
    )


# features ----------------------------------------------------------------------
class CustomerFeaturesConfig(dg.Config):
    cutoff_date: str | None = Field(
        default=None, description="as-of date (YYYY-MM-DD); default: last complete day in the data"
    )
    horizon_days: int = Field(default=30, description="churn label window N (training snapshots)")
    history_snapshots: int = Field(default=10, description="training snapshots before the cutoff")
    snapshot_step_days: int = Field(default=7, description="days between training snapshots")


CUSTOMER_FEATURE_DEPS = ["fct_customer_daily_activity", "fct_orders", "dim_customers"]


@dg.asset(
    group_name="features",
    deps=CUSTOMER_FEATURE_DEPS,
    owners=OWNERS,
    kinds={"python", "polars", "parquet"},
    code_version=source_version(features),
    description=(
        "Customer features (RFM, channel mix, basket, spend trend, tickets, sessions, tenure) "
        "as of the cutoff, plus training snapshots at cutoff - N - k*step; point-in-time "
        "correct (nothing after an as-of date is used)."
    ),
)
def customer_features(
    context: dg.AssetExecutionContext,
    config: CustomerFeaturesConfig,
    warehouse: WarehouseResource,
    storage: StorageResource,
) -> dg.MaterializeResult:
    wh = warehouse.get()
    activity = read_mart(wh, "fct_customer_daily_activity")
    cutoff = resolve_cutoff(config.cutoff_date, activity["activity_date"])
    dates = features.snapshot_dates(
        cutoff,
        activity["activity_date"].min(),
        config.horizon_days,  # type: ignore[arg-type]
        config.history_snapshots,
        config.snapshot_step_days,
    )
    frame = features.customer_feature_snapshots(
        activity, read_mart(wh, "fct_orders"), read_mart(wh, "dim_customers"), dates
    )
    uri = storage.store().write("customer_features", frame)
    return frame_result(
        frame,
        uri,
        {
            "cutoff_date": cutoff.isoformat(),
            "as_of_dates": dg.MetadataValue.json([d.isoformat() for d in sorted(dates)]),
            "customers_at_cutoff": frame.filter(pl.col("as_of_date") == cutoff).height,
            "upstream_data_versions": dg.MetadataValue.json(
                upstream_data_versions(context, CUSTOMER_FEATURE_DEPS)
            ),
        },
    )


class DemandFeaturesConfig(dg.Config):
    cutoff_date: str | None = Field(default=None, description="last observed day; default: latest")
    horizon_days: int = Field(default=7, description="forecast horizon; every feature is this old")


@dg.asset(
    group_name="features",
    deps=["fct_product_daily_sales", "dim_products"],
    owners=OWNERS,
    kinds={"python", "polars", "parquet"},
    code_version=source_version(features),
    description=(
        "Product x day grid (zero-sales days filled) with lags, rolling means, day of week, "
        "seasonality, last price and promotion share, all at least horizon_days old; includes "
        "the next horizon_days as future rows to forecast."
    ),
)
def demand_features(
    context: dg.AssetExecutionContext,
    config: DemandFeaturesConfig,
    warehouse: WarehouseResource,
    storage: StorageResource,
) -> dg.MaterializeResult:
    wh = warehouse.get()
    sales = read_mart(wh, "fct_product_daily_sales")
    cutoff = resolve_cutoff(config.cutoff_date, sales["sales_date"])
    frame = features.demand_features(
        sales, read_mart(wh, "dim_products"), cutoff, config.horizon_days
    )
    uri = storage.store().write("demand_features", frame)
    return frame_result(
        frame,
        uri,
        {
            "cutoff_date": cutoff.isoformat(),
            "horizon_days": config.horizon_days,
            "products": frame["sku"].n_unique(),
            "upstream_data_versions": dg.MetadataValue.json(
                upstream_data_versions(context, ["fct_product_daily_sales", "dim_products"])
            ),
        },
    )


class InteractionMatrixConfig(dg.Config):
    cutoff_date: str | None = Field(default=None, description="last day used; default: latest")


@dg.asset(
    group_name="features",
    deps=["fct_order_lines"],
    owners=OWNERS,
    kinds={"python", "scipy", "parquet"},
    code_version=source_version(features),
    description=(
        "Customer x product purchases (sparse; stored as coordinate rows with first/last "
        "purchase dates) for recommendations."
    ),
)
def interaction_matrix(
    context: dg.AssetExecutionContext,
    config: InteractionMatrixConfig,
    warehouse: WarehouseResource,
    storage: StorageResource,
) -> dg.MaterializeResult:
    lines = read_mart(warehouse.get(), "fct_order_lines")
    cutoff = resolve_cutoff(config.cutoff_date, lines["order_date"])
    pairs = features.interaction_pairs(lines, cutoff).with_columns(as_of_date=pl.lit(cutoff))
    customers, items = pairs["customer_key"].n_unique(), pairs["sku"].n_unique()
    uri = storage.store().write("interaction_matrix", pairs)
    return frame_result(
        pairs,
        uri,
        {
            "cutoff_date": cutoff.isoformat(),
            "shape": f"{customers} customers x {items} products",
            "density": pairs.height / max(customers * items, 1),
            "upstream_data_versions": dg.MetadataValue.json(
                upstream_data_versions(context, ["fct_order_lines"])
            ),
        },
    )


# models --------------------------------------------------------------------------
class TrainingConfig(dg.Config):
    max_threads: int | None = Field(
        default=1,
        description="OpenMP/BLAS threads while fitting (None: all); one avoids oversubscription",
    )


class ChurnModelConfig(TrainingConfig):
    horizon_days: int = Field(default=30, description="churn = no order in this many days")
    cv_folds: int = Field(default=3, description="time-aware validation snapshots")
    promotion_margin: float = Field(default=0.005, description="ROC AUC gain needed to promote")
    max_calibration_error: float = Field(default=0.1, description="sanity bound on the holdout")


@dg.asset(
    group_name="ml",
    deps=["customer_features", "fct_customer_daily_activity"],
    owners=OWNERS,
    kinds={"python", "scikit-learn"},
    code_version=source_version(churn),
    check_specs=[promotion_check("churn_model")],
    description=(
        "Churn challenger (logistic regression vs gradient boosting, time-aware CV), evaluated "
        "against a recency rule and the champion on the holdout snapshot cutoff - N."
    ),
)
def churn_model(
    context: dg.AssetExecutionContext,
    config: ChurnModelConfig,
    warehouse: WarehouseResource,
    storage: StorageResource,
    model_store: ModelStoreResource,
) -> dg.MaterializeResult:
    with limited_threads(config.max_threads):
        outcome = churn.train_churn(
            storage.store().read("customer_features"),
            purchase_days(warehouse.get()),
            config.horizon_days,
            config.cv_folds,
            config.max_calibration_error,
        )
    return model_result(
        context,
        model_store,
        "churn",
        outcome,
        churn.policy(config.promotion_margin),
        ["customer_features", "fct_customer_daily_activity"],
        source_version(churn),
        config.max_threads,
    )


class SegmentationConfig(TrainingConfig):
    k_min: int = 2
    k_max: int = 8
    sample_size: int = Field(default=2000, description="customers sampled for the silhouette")
    promotion_margin: float = Field(default=0.01, description="silhouette gain needed to promote")


@dg.asset(
    group_name="ml",
    deps=["customer_features"],
    owners=OWNERS,
    kinds={"python", "scikit-learn"},
    code_version=source_version(segmentation),
    check_specs=[promotion_check("segmentation_model")],
    description=(
        "Segmentation challenger: KMeans vs GaussianMixture, k by silhouette; segments "
        "described in plain words."
    ),
)
def segmentation_model(
    context: dg.AssetExecutionContext,
    config: SegmentationConfig,
    storage: StorageResource,
    model_store: ModelStoreResource,
) -> dg.MaterializeResult:
    with limited_threads(config.max_threads):
        outcome = segmentation.train_segmentation(
            storage.store().read("customer_features"),
            range(config.k_min, config.k_max + 1),
            config.sample_size,
        )
    descriptions = outcome.artifact["descriptions"]
    return model_result(
        context,
        model_store,
        "segmentation",
        outcome,
        segmentation.policy(config.promotion_margin),
        ["customer_features"],
        source_version(segmentation),
        config.max_threads,
        {"segments": dg.MetadataValue.json({str(k): v for k, v in descriptions.items()})},
    )


class DemandModelConfig(TrainingConfig):
    holdout_days: int = Field(default=28, description="last observed days held out")
    cv_folds: int = Field(default=2, description="validation windows before the holdout")
    promotion_margin: float = Field(default=0.005, description="WAPE reduction needed to promote")
    max_bias: float = Field(default=0.25, description="sanity bound on total forecast bias")


@dg.asset(
    group_name="ml",
    deps=["demand_features"],
    owners=OWNERS,
    kinds={"python", "scikit-learn"},
    code_version=source_version(demand),
    check_specs=[promotion_check("demand_model")],
    description=(
        "Demand challenger: gradient boosting (direct strategy) vs seasonal naive, WAPE and "
        "MAE on a time-ordered holdout."
    ),
)
def demand_model(
    context: dg.AssetExecutionContext,
    config: DemandModelConfig,
    storage: StorageResource,
    model_store: ModelStoreResource,
) -> dg.MaterializeResult:
    with limited_threads(config.max_threads):
        outcome = demand.train_demand(
            storage.store().read("demand_features"),
            config.holdout_days,
            config.cv_folds,
            config.max_bias,
        )
    return model_result(
        context,
        model_store,
        "demand",
        outcome,
        demand.policy(config.promotion_margin),
        ["demand_features"],
        source_version(demand),
        config.max_threads,
    )


class RecommenderConfig(TrainingConfig):
    holdout_days: int = Field(default=14, description="window of held-out next purchases")
    k: int = Field(default=10, description="list length evaluated (hit rate@k, precision@k)")
    promotion_margin: float = Field(default=0.005, description="hit-rate gain needed to promote")


@dg.asset(
    group_name="ml",
    deps=["interaction_matrix"],
    owners=OWNERS,
    kinds={"python", "scikit-learn", "scipy"},
    code_version=source_version(recommend),
    check_specs=[promotion_check("recommender")],
    description=(
        "Recommender challenger: item cosine, TruncatedSVD or EASE (chosen on a validation "
        "window), against popularity on held-out next purchases."
    ),
)
def recommender(
    context: dg.AssetExecutionContext,
    config: RecommenderConfig,
    storage: StorageResource,
    model_store: ModelStoreResource,
) -> dg.MaterializeResult:
    with limited_threads(config.max_threads):
        outcome = recommend.train_recommender(
            storage.store().read("interaction_matrix"), config.holdout_days, config.k
        )
    return model_result(
        context,
        model_store,
        "recommender",
        outcome,
        recommend.policy(config.promotion_margin),
        ["interaction_matrix"],
        source_version(recommend),
        config.max_threads,
    )


# serving ---------------------------------------------------------------------------
SERVING_KINDS = {"python", "parquet"}


@dg.asset(
    group_name="serving",
    deps=["customer_features", "churn_model"],
    owners=OWNERS,
    kinds=SERVING_KINDS,
    code_version=source_version(churn),
    description="Churn risk (probability and band) per customer as of the cutoff, by the champion.",
)
def churn_scores(storage: StorageResource, model_store: ModelStoreResource) -> dg.MaterializeResult:
    card, artifact = model_store.store().champion_artifact("churn")
    scores = churn.score_customers(artifact, storage.store().read("customer_features"))
    scores = scores.with_columns(model_version=pl.lit(card.version))
    uri = storage.store().write("churn_scores", scores)
    bands = dict(scores.group_by("risk_band").len().iter_rows())
    return frame_result(
        scores,
        uri,
        {
            "model_version": card.version,
            "risk_bands": dg.MetadataValue.json(bands),
            "mean_risk": float(scores["churn_risk"].mean() or 0.0),  # type: ignore[arg-type]
        },
    )


@dg.asset(
    group_name="serving",
    deps=["customer_features", "segmentation_model"],
    owners=OWNERS,
    kinds=SERVING_KINDS,
    code_version=source_version(segmentation),
    description="Segment per customer (id and plain-words description), by the champion.",
)
def customer_segments(
    storage: StorageResource, model_store: ModelStoreResource
) -> dg.MaterializeResult:
    card, artifact = model_store.store().champion_artifact("segmentation")
    segments = segmentation.assign_segments(artifact, storage.store().read("customer_features"))
    segments = segments.with_columns(model_version=pl.lit(card.version))
    uri = storage.store().write("customer_segments", segments)
    sizes = dict(segments.group_by("segment").len().iter_rows())
    return frame_result(
        segments,
        uri,
        {
            "model_version": card.version,
            "segment_sizes": dg.MetadataValue.json(sizes),
        },
    )


@dg.asset(
    group_name="serving",
    deps=["demand_features", "demand_model"],
    owners=OWNERS,
    kinds=SERVING_KINDS,
    code_version=source_version(demand),
    description="Units per product for each of the next horizon_days, by the champion.",
)
def demand_forecast(
    storage: StorageResource, model_store: ModelStoreResource
) -> dg.MaterializeResult:
    card, artifact = model_store.store().champion_artifact("demand")
    forecast = demand.forecast(artifact, storage.store().read("demand_features"))
    forecast = forecast.with_columns(model_version=pl.lit(card.version))
    uri = storage.store().write("demand_forecast", forecast)
    return frame_result(
        forecast,
        uri,
        {
            "model_version": card.version,
            "total_forecast_units": float(forecast["forecast_units"].sum()),
        },
    )


class RecommendationsConfig(dg.Config):
    k: int = Field(default=10, description="recommendations per customer")


@dg.asset(
    group_name="serving",
    deps=["interaction_matrix", "recommender"],
    owners=OWNERS,
    kinds=SERVING_KINDS,
    code_version=source_version(recommend),
    description="Top-k products per customer (not already bought), by the champion.",
)
def recommendations(
    config: RecommendationsConfig, storage: StorageResource, model_store: ModelStoreResource
) -> dg.MaterializeResult:
    card, artifact = model_store.store().champion_artifact("recommender")
    top = recommend.top_recommendations(
        artifact, storage.store().read("interaction_matrix"), config.k
    ).with_columns(model_version=pl.lit(card.version))
    uri = storage.store().write("recommendations", top)
    return frame_result(top, uri, {"model_version": card.version, "k": config.k})


@dg.asset(
    group_name="serving",
    deps=["churn_scores", "customer_segments", "recommendations"],
    owners=OWNERS,
    kinds={"python", "duckdb", "csv"},
    code_version=source_version(serving),
    description=(
        "Per customer: customer_key, churn risk and band, segment, top-5 recommendations and "
        "the next best action; written to serving.crm_export and the exports directory. "
        "Pseudonymous keys only: no clear PII."
    ),
)
def crm_export(
    warehouse: WarehouseResource, storage: StorageResource, exports: ExportsResource
) -> dg.MaterializeResult:
    store = storage.store()
    scores, segments = store.read("churn_scores"), store.read("customer_segments")
    top = store.read("recommendations")
    frame = serving.crm_export(
        scores,
        segments,
        top,
        {
            "churn": scores["model_version"][0],
            "segmentation": segments["model_version"][0],
            "recommender": top["model_version"][0],
        },
    )
    wh: Warehouse = warehouse.get()
    wh.replace_table(CRM_EXPORT_TABLE, frame)
    files = exports.write("crm_export", frame)
    actions = dict(frame.group_by("next_best_action").len().iter_rows())
    result = frame_result(
        frame,
        files[0],
        {
            "warehouse_table": CRM_EXPORT_TABLE,
            "files": dg.MetadataValue.json(files),
            "next_best_actions": dg.MetadataValue.json(actions),
        },
    )
    return result


ASSETS = [
    customer_features,
    demand_features,
    interaction_matrix,
    churn_model,
    segmentation_model,
    demand_model,
    recommender,
    churn_scores,
    customer_segments,
    demand_forecast,
    recommendations,
    crm_export,
]
