"""Monitoring assets (group `monitoring`): drift, live performance and pipeline health.

Thin shells around `drift`, `performance`, `health` and `stats`. What they read
(the interface with aiwf_assets/ml, see docs/AUTOMATION.md):
- `customer_features`, `churn_scores`, `demand_forecast`: inputs loaded by the
  IO manager (`as_of_date` + feature columns; `churn_risk`,
  `churn_horizon_days`, `model_version`; `sku`, `date`, `forecast_units`,
  `model_version`); the pinned references and archived history they keep in
  the `storage` resource's Parquet store;
- champions' model cards through the `model_store` resource (`trained_through`,
  holdout `metrics`);
- the marts and cleaned tables through the `warehouse` resource.
Checks never block: they warn, and two of them request retraining (their
`aiwf/retrains_on_failure` metadata names the models; see automation.policies).
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import polars as pl

from aiwf_assets.automation.policies import RETRAIN_METADATA_KEY
from aiwf_assets.checks import in_step_check
from aiwf_assets.ingest.spec import SourcesConfig
from aiwf_assets.io.model_store import ModelStore
from aiwf_assets.io.parquet_store import ParquetStore
from aiwf_assets.io.warehouse import PARTITION_COLUMN, Warehouse
from aiwf_assets.ml.common import frame_version, source_version
from aiwf_assets.ml.features import feature_columns_of
from aiwf_assets.ml.marts import last_mart_day, purchase_days, read_mart
from aiwf_assets.monitoring import drift, health, iforest, performance, stats
from aiwf_assets.resources import (
    ALLOW_MISSING,
    ModelStoreResource,
    MonitoringThresholds,
    StorageResource,
    WarehouseResource,
)

OWNERS = ["team:data-platform"]
SCHEMA = "monitoring"
CODE_VERSION = source_version(drift, health, iforest, performance, stats)
DRIFT_MODELS = "churn_model,segmentation_model"  # the models trained on customer_features
FEATURE_REFERENCE = "monitoring_reference_customer_features"  # pinned per churn champion
SCORE_REFERENCE = "monitoring_reference_churn_scores"  # pinned per churn champion
CHURN_HISTORY = "monitoring_history_churn_scores"  # one file per as_of_date
DEMAND_HISTORY = "monitoring_history_demand_forecast"  # one file per first forecast day
HISTORY_LIMIT = 120  # archived snapshots considered


def markdown(frame: pl.DataFrame, digits: int = 4) -> str:
    if frame.is_empty():
        return "none"
    rounded = frame.with_columns(pl.selectors.float().round(digits))
    header = "| " + " | ".join(rounded.columns) + " |"
    rule = "| " + " | ".join("---" for _ in rounded.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in rounded.iter_rows()]
    return "\n".join([header, rule, *rows])


def pinned(store: ParquetStore, name: str, version: str, candidate: pl.DataFrame) -> pl.DataFrame:
    """The reference pinned for `version`, pinning `candidate` the first time (if not empty)."""
    if store.exists(name, version):
        return store.read(name, version)
    if not candidate.is_empty():
        store.write(name, candidate, version)
    return candidate


# drift --------------------------------------------------------------------------------
def _drift_check(name: str, level: str, table: pl.DataFrame, note: str) -> dg.AssetCheckResult:
    flagged = drift.features_at_level(table, level) if not table.is_empty() else []
    return dg.AssetCheckResult(
        check_name=name,
        passed=not flagged,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"features": ", ".join(flagged) or "none", "note": note},
    )


def _drift_result(
    table: pl.DataFrame, checks: list[tuple[str, str]], note: str, extra: dict
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            "drift": dg.MetadataValue.md(markdown(table)),
            "max_psi": float(table["psi"].max() or 0.0) if not table.is_empty() else 0.0,
            "note": note,
            **extra,
        },
        check_results=[_drift_check(name, level, table, note) for name, level in checks],
        data_version=dg.DataVersion(frame_version(table)),
    )


FEATURE_DRIFT_CHECKS = [
    ("drift_below_warning", "warn"),
    ("drift_below_retrain_threshold", "retrain"),
]


@dg.asset(
    group_name="monitoring",
    deps=["churn_model"],
    owners=OWNERS,
    kinds={"python", "polars"},
    code_version=CODE_VERSION,
    check_specs=[
        in_step_check(
            "drift_below_warning",
            asset="feature_drift",
            description="No feature's PSI or KS reaches the warning threshold (WARN).",
        ),
        in_step_check(
            "drift_below_retrain_threshold",
            asset="feature_drift",
            description="No feature's PSI or KS reaches the retrain threshold; when it "
            "fails, the models trained on customer_features are retrained.",
            metadata={RETRAIN_METADATA_KEY: DRIFT_MODELS},
        ),
    ],
    description=(
        "Per customer feature: PSI and KS between the churn champion's training reference "
        "(the snapshot at its training cutoff, pinned per champion) and the newest snapshot."
    ),
)
def feature_drift(
    storage: StorageResource,
    model_store: ModelStoreResource,
    warehouse: WarehouseResource,
    thresholds: MonitoringThresholds,
    customer_features: pl.DataFrame,
) -> dg.MaterializeResult:
    store, features = storage.store(), customer_features
    current = drift.latest_snapshot(features)
    champion = model_store.store().champion("churn")
    reference = features.head(0)
    if champion is not None:
        trained_through = dt.date.fromisoformat(champion.trained_through)
        reference = pinned(
            store,
            FEATURE_REFERENCE,
            champion.version,
            drift.snapshot_at(features, trained_through),
        )
    columns = feature_columns_of(features)
    if reference.is_empty() or current.is_empty():
        note = "no reference yet: no churn champion, or no snapshot at its training cutoff"
        table = drift.drift_table(
            features.head(0), features.head(0), [], drift_thresholds(thresholds)
        )
    else:
        note = (
            f"reference {reference['as_of_date'].max()} ({reference.height} customers) vs "
            f"current {current['as_of_date'].max()} ({current.height} customers)"
        )
        table = drift.drift_table(reference, current, columns, drift_thresholds(thresholds))
    warehouse.get().replace_table(f"{SCHEMA}.feature_drift", table)
    return _drift_result(
        table,
        FEATURE_DRIFT_CHECKS,
        note,
        {"champion_version": champion.version if champion else "none"},
    )


def drift_thresholds(thresholds: MonitoringThresholds) -> drift.DriftThresholds:
    return drift.DriftThresholds(
        thresholds.drift_psi_warn,
        thresholds.drift_psi_retrain,
        thresholds.drift_ks_warn,
        thresholds.drift_ks_retrain,
    )


@dg.asset(
    group_name="monitoring",
    owners=OWNERS,
    kinds={"python", "polars"},
    code_version=CODE_VERSION,
    check_specs=[
        in_step_check(
            "prediction_drift_below_warning",
            asset="prediction_drift",
            description="The churn risk distribution's PSI/KS against the champion's first "
            "scores stays below the warning threshold (WARN; retraining follows feature "
            "drift and performance, not this).",
        ),
    ],
    description=(
        "PSI and KS of churn_risk between the first scores of the current champion "
        "(pinned per model version) and the latest scores."
    ),
)
def prediction_drift(
    storage: StorageResource, thresholds: MonitoringThresholds, churn_scores: pl.DataFrame
) -> dg.MaterializeResult:
    store, scores = storage.store(), churn_scores
    version = str(scores["model_version"][0])
    reference = pinned(store, SCORE_REFERENCE, version, scores)
    table = drift.drift_table(reference, scores, ["churn_risk"], drift_thresholds(thresholds))
    note = (
        f"model {version[:12]}: reference as of {reference['as_of_date'].max()} vs scores as "
        f"of {scores['as_of_date'].max()}"
    )
    return _drift_result(
        table,
        [("prediction_drift_below_warning", "warn")],
        note,
        {"mean_risk": float(scores["churn_risk"].mean() or 0.0)},  # type: ignore[arg-type]
    )


# live performance ------------------------------------------------------------------------
def archive(store: ParquetStore, name: str, frame: pl.DataFrame | None, day_column: str) -> None:
    """Copy the current output `frame` (None: never materialised) into the history `name`,
    keyed by its first day."""
    if frame is not None and not frame.is_empty():
        store.write(name, frame, str(frame[day_column].min()))


def archived(store: ParquetStore, name: str) -> dict[dt.date, pl.DataFrame]:
    keys = store.partitions(name)[-HISTORY_LIMIT:]
    return {dt.date.fromisoformat(k): store.read(name, k) for k in keys}


def training_metric(
    models: ModelStore, family: str, versions: list[str], metric: str
) -> dict[str, float]:
    """model version -> `metric` on its training holdout (from its model card)."""
    cards = {}
    for version in set(versions):
        try:
            cards[version] = models.card(family, version).metrics[metric]
        except (FileNotFoundError, KeyError):
            continue
    return cards


def _performance_check(
    name: str, table: pl.DataFrame, result: performance.Verdict
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=result.passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "verdict": result.message,
            "live": result.live if result.live is not None else float("nan"),
            "at_training": result.at_training if result.at_training is not None else float("nan"),
            "snapshots_evaluated": table.height,
        },
    )


@dg.asset(
    group_name="monitoring",
    # a family without a champion yet (no scores) must not stop the other family's check
    ins={
        name: dg.AssetIn(metadata={ALLOW_MISSING: True})
        for name in ("churn_scores", "demand_forecast")
    },
    deps=["fct_customer_daily_activity", "fct_product_daily_sales"],
    owners=OWNERS,
    kinds={"python", "scikit-learn"},
    code_version=CODE_VERSION,
    check_specs=[
        in_step_check(
            "churn_performance",
            asset="model_performance",
            description="Live ROC AUC of the newest matured churn snapshot is within the "
            "tolerance of the champion's holdout AUC; a failure retrains churn_model.",
            metadata={RETRAIN_METADATA_KEY: "churn_model"},
        ),
        in_step_check(
            "demand_performance",
            asset="model_performance",
            description="Live WAPE of the newest fully observed forecast is within the "
            "tolerance of the champion's holdout WAPE; a failure retrains demand_model.",
            metadata={RETRAIN_METADATA_KEY: "demand_model"},
        ),
    ],
    description=(
        "Archives every scoring snapshot and forecast; once outcomes are known (churn label "
        "window closed, forecast days observed) measures live ROC AUC / WAPE and compares "
        "them with the value at training."
    ),
)
def model_performance(
    storage: StorageResource,
    model_store: ModelStoreResource,
    warehouse: WarehouseResource,
    thresholds: MonitoringThresholds,
    churn_scores: pl.DataFrame | None,
    demand_forecast: pl.DataFrame | None,
) -> dg.MaterializeResult:
    store, models, wh = storage.store(), model_store.store(), warehouse.get()
    archive(store, CHURN_HISTORY, churn_scores, "as_of_date")
    archive(store, DEMAND_HISTORY, demand_forecast, "date")
    sales = read_mart(wh, "fct_product_daily_sales")
    churn_table = performance.churn_performance(
        archived(store, CHURN_HISTORY),
        purchase_days(wh),
        last_mart_day(wh, "fct_customer_daily_activity", "activity_date"),
    )
    demand_table = performance.demand_performance(
        archived(store, DEMAND_HISTORY), sales, _last_day(sales["sales_date"])
    )
    churn_verdict = performance.verdict(
        churn_table,
        "roc_auc",
        training_metric(models, "churn", churn_table["model_version"].to_list(), "roc_auc"),
        thresholds.performance_auc_drop,
        higher_is_better=True,
    )
    demand_verdict = performance.verdict(
        demand_table,
        "wape",
        training_metric(models, "demand", demand_table["model_version"].to_list(), "wape"),
        thresholds.performance_wape_rise,
        higher_is_better=False,
    )
    table = pl.concat([churn_table, demand_table])
    wh.replace_table(f"{SCHEMA}.model_performance", table)
    return dg.MaterializeResult(
        metadata={
            "live_performance": dg.MetadataValue.md(markdown(table)),
            "churn": churn_verdict.message,
            "demand": demand_verdict.message,
        },
        check_results=[
            _performance_check("churn_performance", churn_table, churn_verdict),
            _performance_check("demand_performance", demand_table, demand_verdict),
        ],
        data_version=dg.DataVersion(frame_version(table)),
    )


def _last_day(dates: pl.Series) -> dt.date:
    return dates.max()  # type: ignore[return-value]


# pipeline health ---------------------------------------------------------------------------
HEALTH_TABLE = f"{SCHEMA}.pipeline_health"
FOREST_TABLE = f"{SCHEMA}.pipeline_health_forest"  # verdicts with their fingerprints
METRIC_CHECKS = {
    "rows": "row_count_in_expected_range",
    "quarantine_rate": "quarantine_rate_in_expected_range",
    "null_customer_rate": "null_rate_in_expected_range",
    "staleness_hours": "staleness_in_expected_range",
}
FOREST_CHECK = "isolation_forest_in_expected_range"


def daily_sources(sources: SourcesConfig) -> dict[str, str]:
    """Source name -> landing template of the daily sources (health rows name the source
    whose template a row's file follows)."""
    return {spec.name: spec.landing for spec in sources.sources.values() if spec.contract.daily}


def day_ends(sources: SourcesConfig) -> dict[str, health.DayEnd]:
    """Source name -> where its delivery day ends, for staleness: in the zone its event times
    are read in (UTC without one) and at its `day_ends_at` (midnight without one)."""
    ends = {}
    for spec in sources.sources.values():
        if not spec.contract.daily:
            continue
        event = spec.column(spec.contract.event_time or "")
        ends[spec.name] = health.DayEnd(
            zone=(event.timezone if event is not None else None) or "UTC",
            at=spec.business_day_end or dt.time(),
        )
    return ends


def _health_check_specs() -> list[dg.AssetCheckSpec]:
    specs = [
        in_step_check(
            name,
            asset="pipeline_health",
            description=f"Per source and day, {metric} is within the range expected from the "
            f"source's previous {health.HISTORY_DAYS} days (robust z and IQR; WARN).",
        )
        for metric, name in METRIC_CHECKS.items()
    ]
    specs.append(
        in_step_check(
            FOREST_CHECK,
            asset="pipeline_health",
            description="With at least 30 previous days, no source-day is more isolated (all "
            "metrics together, IsolationForest) than every day of its history (WARN).",
        )
    )
    return specs


EVENT_SCHEMA = {
    "partition_date": pl.Date,
    "source": pl.String,
    "rows_cleaned": pl.Int64,
    "null_customer_rows": pl.Int64,
    "latest_epoch": pl.Float64,
}
QUARANTINE_SCHEMA = {"partition_date": pl.Date, "source": pl.String, "rows_quarantined": pl.Int64}


def measure(
    wh: Warehouse,
    days: list[dt.date],
    templates: dict[str, str],
    ends: dict[str, health.DayEnd],
) -> pl.DataFrame:
    """Health rows for every source and day in `days` (three queries, whatever the range)."""
    events = pl.concat(
        [
            pl.DataFrame(schema=EVENT_SCHEMA),
            *(
                wh.query(health.events_sql(t, days, templates)).cast(EVENT_SCHEMA)  # type: ignore[arg-type]
                for t in health.EVENT_TABLES
                if wh.table_exists(t.table)
            ),
        ]
    )
    quarantined = pl.concat(
        [
            pl.DataFrame(schema=QUARANTINE_SCHEMA),
            *(
                [wh.query(health.quarantine_sql(days, templates)).cast(QUARANTINE_SCHEMA)]  # type: ignore[arg-type]
                if wh.table_exists(health.QUARANTINE_TABLE)
                else []
            ),
        ]
    )
    of_day = pl.col("partition_date")
    return pl.concat(
        [
            health.day_metrics(
                day,
                ends,
                events.filter(of_day == day).drop("partition_date"),
                quarantined.filter(of_day == day).drop("partition_date"),
            )
            for day in days
        ]
    )


def read_history(wh: Warehouse, first: dt.date, before: dt.date) -> pl.DataFrame:
    if not wh.table_exists(HEALTH_TABLE):
        return pl.DataFrame(schema=health.HEALTH_SCHEMA)
    return wh.query(
        f"SELECT * FROM {HEALTH_TABLE} WHERE {PARTITION_COLUMN} >= DATE '{first.isoformat()}' "
        f"AND {PARTITION_COLUMN} < DATE '{before.isoformat()}'"
    ).cast(health.HEALTH_SCHEMA)  # type: ignore[arg-type]


def read_forest(wh: Warehouse, days: list[dt.date]) -> pl.DataFrame:
    """The IsolationForest verdicts stored for `days` (kept while their fingerprint holds)."""
    if not wh.table_exists(FOREST_TABLE):
        return pl.DataFrame(schema=health.FOREST_SCHEMA)
    return wh.query(
        f"SELECT {', '.join(health.FOREST_SCHEMA)} FROM {FOREST_TABLE} WHERE {health.days_in(days)}"
    ).cast(health.FOREST_SCHEMA)  # type: ignore[arg-type]


def _anomaly_check(name: str, flagged: pl.DataFrame, judged: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=flagged.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "anomalies": dg.MetadataValue.md(markdown(flagged)),
            "values_judged": judged,
        },
    )


def build_pipeline_health(
    sources: SourcesConfig, partitions: dg.DailyPartitionsDefinition
) -> dg.AssetsDefinition:
    """Pipeline health of the declared daily sources, on `partitions`."""
    templates, ends = daily_sources(sources), day_ends(sources)

    @dg.asset(
        group_name="monitoring",
        deps=["order_lines", "interactions", "quarantine"],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        owners=OWNERS,
        kinds={"python", "duckdb"},
        code_version=CODE_VERSION,
        check_specs=_health_check_specs(),
        description=(
            "Per landing source and delivery day: rows, quarantine rate, null customer rate and "
            "staleness, in monitoring.pipeline_health; checks flag values outside the range the "
            "source's own history predicts, with that range."
        ),
    )
    def pipeline_health(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        thresholds: MonitoringThresholds,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        wh, z = warehouse.get(), thresholds.anomaly_z
        days = [dt.date.fromisoformat(k) for k in context.partition_keys]
        measured = measure(wh, days, templates, ends)
        first = min(
            days[0] - dt.timedelta(days=health.HISTORY_DAYS), health.forest_window(days[0])[0]
        )
        history = pl.concat([read_history(wh, first, days[0]), measured])
        # each day is judged against the days before it (stored or in this run)
        all_judged = health.metric_anomalies(history, measured, z)
        forest = health.forest_anomalies(history, measured, read_forest(wh, days))
        all_forest = forest.verdicts
        for day in days:
            today = measured.filter(pl.col(PARTITION_COLUMN) == day)
            context.add_asset_metadata(
                {"health": dg.MetadataValue.md(markdown(today)), "dagster/row_count": today.height},
                partition_key=day.isoformat(),
            )
        wh.replace_partitions(HEALTH_TABLE, measured, days)
        wh.replace_partitions(FOREST_TABLE, all_forest, days)
        yield dg.MaterializeResult(
            data_version=dg.DataVersion(frame_version(measured)),
            metadata={
                "days_in_run": len(days),
                "forests_fitted": forest.fitted,
                "forest_verdicts_kept": all_forest.height - forest.scored,
            },
        )
        for metric, name in METRIC_CHECKS.items():
            of_metric = all_judged.filter(pl.col("metric") == metric)
            yield _anomaly_check(
                name, of_metric.filter(pl.col("anomalous")).drop("anomalous"), of_metric.height
            )
        yield _anomaly_check(
            FOREST_CHECK,
            all_forest.filter(pl.col("anomalous")).drop("anomalous", "fingerprint"),
            all_forest.height,
        )

    return pipeline_health


# the assets that depend on no settings; pipeline_health is built per sources and window
ASSETS = [feature_drift, prediction_drift, model_performance]


def build_monitoring_definitions(
    sources: SourcesConfig, partitions: dg.DailyPartitionsDefinition
) -> dg.Definitions:
    return dg.Definitions(assets=[*ASSETS, build_pipeline_health(sources, partitions)])
