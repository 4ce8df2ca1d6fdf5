"""Jobs and schedules derived from the asset graph: CLI backfills, daily scoring, weekly retrain.

Built from the assembled graph (not hand-listed keys), so a new daily asset joins
the backfill job and a new model joins the retrain job without edits here.
"""

from __future__ import annotations

import dagster as dg

from aiwf_assets.k8s import HEAVY_RUN_TAGS
from aiwf_assets.settings import Settings

DAILY_INGEST_JOB = "daily_ingest_job"
REFERENCE_JOB = "reference_job"
REFRESH_JOB = "refresh_job"
SCORING_JOB = "scoring_job"
RETRAIN_JOB = "retrain_job"
MODEL_GROUP = "ml"
SERVING_GROUP = "serving"


def daily_keys(graph: dg.AssetGraph) -> list[dg.AssetKey]:
    """The daily-partitioned assets (one window for all: `build_definitions` gives every daily
    asset the partitions of its Settings)."""
    return sorted(
        (k for k in graph.materializable_asset_keys
         if isinstance(graph.get(k).partitions_def, dg.DailyPartitionsDefinition)),
        key=lambda k: k.to_user_string(),
    )


def reference_keys(graph: dg.AssetGraph) -> list[dg.AssetKey]:
    """Unpartitioned assets the daily layer reads (with their multi-asset siblings)."""
    daily = set(daily_keys(graph))
    upstream: set[dg.AssetKey] = set()
    for key in daily:
        for ancestor in graph.get_ancestor_asset_keys(key):
            # a multi-asset runs whole: take its siblings along
            upstream |= {
                k for k in graph.get_execution_set_asset_and_check_keys(ancestor)
                if isinstance(k, dg.AssetKey)
            }
    return sorted(
        (k for k in graph.materializable_asset_keys if k in upstream and k not in daily),
        key=lambda k: k.to_user_string(),
    )


def refresh_keys(graph: dg.AssetGraph) -> list[dg.AssetKey]:
    """Every other unpartitioned asset: reference marts, features, models, serving, monitoring."""
    taken = set(daily_keys(graph)) | set(reference_keys(graph))
    return sorted(
        (k for k in graph.materializable_asset_keys if k not in taken),
        key=lambda k: k.to_user_string(),
    )


def group_keys(graph: dg.AssetGraph, group: str) -> list[dg.AssetKey]:
    return sorted(
        (k for k in graph.materializable_asset_keys if graph.get(k).group_name == group),
        key=lambda k: k.to_user_string(),
    )


def build_jobs_and_schedules(graph: dg.AssetGraph, settings: Settings) -> dg.Definitions:
    """reference_job, daily_ingest_job and refresh_job (together every asset, in the order
    `aiwf demo` builds them), plus scoring_job and retrain_job with their schedules when the
    serving and ml groups exist."""
    jobs: list[dg.UnresolvedAssetJobDefinition] = []
    schedules: list[dg.ScheduleDefinition] = []
    reference = reference_keys(graph)
    if reference:
        jobs.append(dg.define_asset_job(
            REFERENCE_JOB,
            selection=dg.AssetSelection.assets(*reference),
            description=(
                "The unpartitioned assets the daily layer reads (reference data, customer "
                "identity): what `aiwf demo` builds first."
            ),
        ))
    daily = daily_keys(graph)
    if daily:
        jobs.append(dg.define_asset_job(
            DAILY_INGEST_JOB,
            selection=dg.AssetSelection.assets(*daily),
            partitions_def=graph.get(daily[0]).partitions_def,
            description=(
                "Every daily-partitioned asset (raw, cleaned, incremental marts, pipeline "
                f"health). Backfill a range: `dagster job backfill -w workspace.yaml -j "
                f"{DAILY_INGEST_JOB} --from A --to B --noprompt`."
            ),
        ))
    refresh = refresh_keys(graph)
    if refresh:
        jobs.append(dg.define_asset_job(
            REFRESH_JOB,
            selection=dg.AssetSelection.assets(*refresh),
            description=(
                "Every unpartitioned asset built from the daily layer (reference marts, "
                "features, models, serving, monitoring): what `aiwf demo` builds last."
            ),
        ))
    serving = group_keys(graph, SERVING_GROUP)
    if serving:
        scoring = dg.define_asset_job(
            SCORING_JOB,
            selection=dg.AssetSelection.assets(*serving),
            description="Re-score every customer with the current champions and export to the CRM.",
        )
        jobs.append(scoring)
        schedules.append(dg.ScheduleDefinition(
            name="daily_scoring_schedule",
            job=scoring,
            cron_schedule=settings.scoring_cron,
            execution_timezone="UTC",
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Daily scores and CRM export, even on days without new data (freshness).",
        ))
    models = group_keys(graph, MODEL_GROUP)
    if models:
        retrain = dg.define_asset_job(
            RETRAIN_JOB,
            selection=dg.AssetSelection.assets(*models),
            tags=HEAVY_RUN_TAGS,  # one heavy run at a time; its pod sized for training
            description="Train a challenger per model family; promotion keeps the better one.",
        )
        jobs.append(retrain)
        schedules.append(dg.ScheduleDefinition(
            name="weekly_retrain_schedule",
            job=retrain,
            cron_schedule=settings.retrain_cron,
            execution_timezone="UTC",
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Scheduled retraining; drift, performance and code changes retrain sooner.",
        ))
    return dg.Definitions(jobs=jobs, schedules=schedules)
