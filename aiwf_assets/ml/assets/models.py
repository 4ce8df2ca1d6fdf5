"""Model assets: one factory turns a family's spec into a training shell with promotion.

Each shell trains a challenger on its feature asset, registers it in the model
store, runs the promotion decision against the champion and reports that as the
blocking `promotion` check. The families differ only in what their `ModelSpec`
says.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from aiwf_assets.automation.policies import MIN_HISTORY_METADATA_KEY
from aiwf_assets.checks import in_step_check
from aiwf_assets.io.warehouse import Warehouse
from aiwf_assets.k8s import HEAVY_TRAINING_TAGS
from aiwf_assets.ml import churn, demand, recommend, segmentation
from aiwf_assets.ml.assets.features import CustomerFeaturesConfig
from aiwf_assets.ml.assets.metadata import OWNERS, frame_markdown, upstream_data_versions
from aiwf_assets.ml.common import limited_threads, source_version
from aiwf_assets.ml.features import MIN_SNAPSHOT_HISTORY_DAYS
from aiwf_assets.ml.marts import purchase_days
from aiwf_assets.ml.promotion import PromotionPolicy, TrainingOutcome, promote_challenger
from aiwf_assets.resources import MODEL_FAMILY, ModelStoreResource


# configs -----------------------------------------------------------------------------
class TrainingConfig(dg.Config):
    max_threads: int | None = Field(
        default=1,
        description="OpenMP/BLAS threads while fitting (None: all); one avoids oversubscription",
    )
    fit_processes: int | None = Field(
        default=None,
        description=(
            "worker processes for the independent model-selection fits (churn, demand), one "
            "thread each, same results as 1 (in this process); None: the CPUs this process may use"
        ),
    )


class ChurnModelConfig(TrainingConfig):
    horizon_days: int = Field(default=30, description="churn = no order in this many days")
    cv_folds: int = Field(default=3, description="time-aware validation snapshots")
    promotion_margin: float = Field(default=0.005, description="ROC AUC gain needed to promote")
    max_calibration_error: float = Field(default=0.1, description="sanity bound on the holdout")


class SegmentationConfig(TrainingConfig):
    k_min: int = 2
    k_max: int = 8
    sample_size: int = Field(default=2000, description="customers sampled for the silhouette")
    promotion_margin: float = Field(default=0.01, description="silhouette gain needed to promote")


class DemandModelConfig(TrainingConfig):
    holdout_days: int = Field(default=28, description="last observed days held out")
    cv_folds: int = Field(default=2, description="validation windows before the holdout")
    promotion_margin: float = Field(default=0.005, description="WAPE reduction needed to promote")
    max_bias: float = Field(default=0.25, description="sanity bound on total forecast bias")


class RecommenderConfig(TrainingConfig):
    holdout_days: int = Field(default=14, description="window of held-out next purchases")
    k: int = Field(default=10, description="list length evaluated (hit rate@k, precision@k)")
    promotion_margin: float = Field(default=0.005, description="hit-rate gain needed to promote")


# the factory -------------------------------------------------------------------------
# train(config, feature frame, warehouse getter) -> the challenger's outcome
Trainer = Callable[[Any, pl.DataFrame, Callable[[], Warehouse]], TrainingOutcome]


def _no_extra_metadata(outcome: TrainingOutcome) -> dict[str, Any]:
    return {}


def _one_day(config: Any) -> int:
    return 1


@dataclass(frozen=True)
class HistoryNeed:
    """Days of daily data a family's training needs with its default config: with fewer it
    fails, so automation does not request it before (policies.HistoryAtLeast)."""

    days: Callable[[Any], int] = _one_day


def churn_history_days(config: "ChurnModelConfig") -> int:
    """Three labelled snapshots (k = 0, 1, 2 steps back from cutoff - N), the oldest with
    MIN_SNAPSHOT_HISTORY_DAYS of data before it; the cutoff is the last day."""
    snapshots = CustomerFeaturesConfig()
    return MIN_SNAPSHOT_HISTORY_DAYS + config.horizon_days + 2 * snapshots.snapshot_step_days + 1


def demand_history_days(config: "DemandModelConfig") -> int:
    """The holdout, one validation window before it, and a week to train on before that."""
    return config.holdout_days + demand.validation_window_days(config.holdout_days) + 7


def recommender_history_days(config: "RecommenderConfig") -> int:
    """The holdout window, the validation window before it, and a day of history."""
    return 2 * config.holdout_days + 1


@dataclass(frozen=True)
class ModelSpec:
    name: str  # the asset
    family: str  # the model store's family
    logic: ModuleType  # the family's module: code version and promotion policy
    config: type[TrainingConfig]
    features: str  # the feature asset it trains on
    train: Trainer
    description: str
    marts: tuple[str, ...] = ()  # dbt marts the trainer reads through the warehouse
    kinds: frozenset[str] = frozenset({"python", "scikit-learn"})
    extra_metadata: Callable[[TrainingOutcome], dict[str, Any]] = field(default=_no_extra_metadata)
    history: HistoryNeed = HistoryNeed()

    def min_history_days(self) -> int:
        return self.history.days(self.config())


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
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Register the challenger, run the promotion decision, report it as the blocking check.

    The output is the champion's card after the decision (None without a champion): the
    model IO manager records where its artifact is and loads it for the scoring assets."""
    data_versions = upstream_data_versions(context, deps)
    models = store.store()
    with limited_threads(max_threads):  # re-scoring the champion may refit it
        result = promote_challenger(models, family, outcome, policy, data_versions, code_version)
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
    # the UI lists metadata in this order: the decision, the metrics and the plots first
    metadata: dict[str, Any] = {
        "decision": result.decision.reason,
        "promoted": result.decision.promote,
        "metrics": dg.MetadataValue.md(
            metrics_markdown(outcome.metrics, result.champion_metrics, outcome.baseline_metrics)
        ),
        **{f"plot_{name}": dg.MetadataValue.md(md) for name, md in outcome.plots.items()},
        "model": outcome.model_name,
        "selection": dg.MetadataValue.md(frame_markdown(outcome.selection)),
        "params": dg.MetadataValue.json(outcome.params),
        "challenger_version": result.challenger.version,
        "champion_version": result.champion_after or "none",
        "trained_through": outcome.trained_through.isoformat(),
        "holdout_start": outcome.holdout_start.isoformat(),
        "row_counts": dg.MetadataValue.json(outcome.row_counts),
        "training_data_versions": dg.MetadataValue.json(data_versions),
        "code_version": code_version,
        "retrain_policy": (
            "retrain on drift, schedule or code change; scoring assets follow new data "
            "with the current champion"
        ),
        # numbers (not the table) feed the metadata "Plots" tab across materialisations
        **{f"challenger_{k}": round(float(v), 4) for k, v in outcome.metrics.items()},
        **(extra or {}),
    }
    champion = models.card(family, result.champion_after) if result.champion_after else None
    yield dg.Output(
        champion,
        metadata=metadata,
        data_version=dg.DataVersion(result.champion_after or "no-champion"),
    )
    yield check


def promotion_check(asset: str) -> dg.AssetCheckSpec:
    return in_step_check(
        "promotion",
        asset=asset,
        blocking=True,
        description=(
            "Promotes the challenger only if it passes sanity checks and beats the champion on "
            "the same fresh holdout by the configured margin; otherwise the champion stays and "
            "the check's `decision` says why. Fails (WARN) when the challenger fails its sanity "
            "checks; fails with ERROR, blocking serving, when there is no champion at all."
        ),
    )


def model_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    """The training shell for one family, as its spec describes it."""
    config_type = spec.config
    upstream = [spec.features, *spec.marts]  # whose data versions the card records
    code_version = source_version(spec.logic)

    @dg.asset(
        name=spec.name,
        group_name="ml",
        ins={"features": dg.AssetIn(key=spec.features)},
        deps=list(spec.marts),
        owners=OWNERS,
        kinds=set(spec.kinds),
        code_version=code_version,
        check_specs=[promotion_check(spec.name)],
        op_tags=HEAVY_TRAINING_TAGS,  # under AIWF_EXECUTOR=k8s: a training-sized pod
        description=spec.description,
        metadata={MIN_HISTORY_METADATA_KEY: spec.min_history_days(), MODEL_FAMILY: spec.family},
        required_resource_keys={"model_store", *(["warehouse"] if spec.marts else [])},
        io_manager_key="model_io_manager",
    )
    def _train(
        context: dg.AssetExecutionContext,
        config: config_type,  # type: ignore[valid-type]
        features: pl.DataFrame,
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        with limited_threads(config.max_threads):
            outcome = spec.train(config, features, lambda: context.resources.warehouse.get())
        yield from model_result(
            context,
            context.resources.model_store,
            spec.family,
            outcome,
            spec.logic.policy(config.promotion_margin),
            upstream,
            code_version,
            config.max_threads,
            spec.extra_metadata(outcome),
        )

    return _train


# the families ------------------------------------------------------------------------
def _train_churn(
    config: ChurnModelConfig, frame: pl.DataFrame, warehouse: Callable[[], Warehouse]
) -> TrainingOutcome:
    return churn.train_churn(
        frame,
        purchase_days(warehouse()),
        config.horizon_days,
        config.cv_folds,
        config.max_calibration_error,
        config.fit_processes,
    )


def _train_segmentation(
    config: SegmentationConfig, frame: pl.DataFrame, _: Callable[[], Warehouse]
) -> TrainingOutcome:
    return segmentation.train_segmentation(
        frame, range(config.k_min, config.k_max + 1), config.sample_size
    )


def _segments_metadata(outcome: TrainingOutcome) -> dict[str, Any]:
    descriptions = outcome.artifact["descriptions"]
    return {"segments": dg.MetadataValue.json({str(k): v for k, v in descriptions.items()})}


def _train_demand(
    config: DemandModelConfig, frame: pl.DataFrame, _: Callable[[], Warehouse]
) -> TrainingOutcome:
    return demand.train_demand(
        frame, config.holdout_days, config.cv_folds, config.max_bias, config.fit_processes
    )


def _train_recommender(
    config: RecommenderConfig, frame: pl.DataFrame, _: Callable[[], Warehouse]
) -> TrainingOutcome:
    return recommend.train_recommender(frame, config.holdout_days, config.k)


MODELS = [
    ModelSpec(
        name="churn_model",
        family="churn",
        logic=churn,
        config=ChurnModelConfig,
        features="customer_features",
        marts=("fct_customer_daily_activity",),
        train=_train_churn,
        history=HistoryNeed(churn_history_days),
        description=(
            "Churn challenger (logistic regression vs gradient boosting, time-aware CV), "
            "evaluated against recency and the champion on the holdout snapshot "
            "cutoff - N."
        ),
    ),
    ModelSpec(
        name="segmentation_model",
        family="segmentation",
        logic=segmentation,
        config=SegmentationConfig,
        features="customer_features",
        train=_train_segmentation,
        extra_metadata=_segments_metadata,
        description=(
            "Segmentation challenger: KMeans vs GaussianMixture, k by silhouette; segments "
            "described in plain words."
        ),
    ),
    ModelSpec(
        name="demand_model",
        family="demand",
        logic=demand,
        config=DemandModelConfig,
        features="demand_features",
        train=_train_demand,
        history=HistoryNeed(demand_history_days),
        description=(
            "Demand challenger: gradient boosting (direct strategy) vs seasonal naive, WAPE and "
            "MAE on a time-ordered holdout."
        ),
    ),
    ModelSpec(
        name="recommender",
        family="recommender",
        logic=recommend,
        config=RecommenderConfig,
        features="interaction_matrix",
        train=_train_recommender,
        history=HistoryNeed(recommender_history_days),
        kinds=frozenset({"python", "scikit-learn", "scipy"}),
        description=(
            "Recommender challenger: item cosine, TruncatedSVD or EASE (chosen on a validation "
            "window), against popularity on held-out next purchases."
        ),
    ),
]

ASSETS = [model_asset(spec) for spec in MODELS]
