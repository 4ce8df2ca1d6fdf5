"""Domain definitions for tests, built from one Settings value as `build_definitions` does
(without the dbt layer, the ML layer or automation unless asked)."""

from __future__ import annotations

import dagster as dg

from aiwf_assets.cleaning.assets import build_cleaning_definitions, guard_thresholds
from aiwf_assets.ingest.assets import build_ingest_definitions
from aiwf_assets.ingest.spec import SourcesConfig, declared_sources
from aiwf_assets.monitoring.assets import build_pipeline_health
from aiwf_assets.partitions import partitions_for
from aiwf_assets.settings import Settings


def sources_of(settings: Settings) -> SourcesConfig:
    return declared_sources(settings.sources_path)


def ingest_definitions(settings: Settings) -> dg.Definitions:
    return build_ingest_definitions(sources_of(settings), partitions_for(settings))


def cleaning_definitions(settings: Settings) -> dg.Definitions:
    return build_cleaning_definitions(
        sources_of(settings), partitions_for(settings), guard_thresholds(settings)
    )


def data_definitions(settings: Settings) -> dg.Definitions:
    """landing, raw and cleaned for `settings`."""
    return dg.Definitions.merge(ingest_definitions(settings), cleaning_definitions(settings))


def pipeline_health_for(settings: Settings) -> dg.AssetsDefinition:
    return build_pipeline_health(sources_of(settings), partitions_for(settings))
