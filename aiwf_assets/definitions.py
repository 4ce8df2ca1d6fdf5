"""The code location: `build_definitions(settings)` assembles each domain's definitions, the
resources and the executor from one Settings value. No logic here.

`defs` is the one place settings are read for the code location (no other module reads
them at import); tests and tools build their own from other settings: the declared sources,
the daily partition window and the thresholds all come from the Settings value given, so
two Definitions in one process do not share any of them. Domains are imported as modules
(not `defs` objects) so this module holds exactly one `Definitions` and `dagster dev -m
aiwf_assets.definitions` finds it without `-a`.
"""

import dagster as dg

from aiwf_assets.automation.definitions import build_automation_definitions
from aiwf_assets.automation.policies import apply_automation_policies
from aiwf_assets.cleaning.assets import build_cleaning_definitions, guard_thresholds
from aiwf_assets.ingest.assets import build_ingest_definitions
from aiwf_assets.ingest.spec import SourcesConfig, declared_sources
from aiwf_assets.k8s import executor_for
from aiwf_assets.marts.definitions import build_marts_definitions
from aiwf_assets.ml.definitions import build_ml_definitions
from aiwf_assets.monitoring.definitions import build_monitoring_definitions
from aiwf_assets.partitions import partitions_for
from aiwf_assets.progress import terminal_progress
from aiwf_assets.resources import build_resources, warehouse_resource
from aiwf_assets.settings import Settings, get_settings


def sources_for(settings: Settings) -> SourcesConfig:
    """The packaged sources overlaid by the settings' AIWF_SOURCES."""
    return declared_sources(settings.sources_path)


def build_definitions(settings: Settings) -> dg.Definitions:
    """Every domain on the resources and executor `settings` choose, with automation applied."""
    sources, partitions = sources_for(settings), partitions_for(settings)
    return apply_automation_policies(
        dg.Definitions.merge(
            build_ingest_definitions(sources, partitions),
            build_cleaning_definitions(sources, partitions, guard_thresholds(settings)),
            build_marts_definitions(
                warehouse_resource(settings), sources=sources, partitions=partitions
            ),
            build_ml_definitions(),
            build_monitoring_definitions(sources, partitions),
            build_automation_definitions(settings, sources, partitions),
            dg.Definitions(
                resources=build_resources(settings),
                executor=executor_for(settings),
                # a run configures a logger or gets Dagster's default (console) one; `aiwf
                # demo` configures both to print its runs' progress on the terminal
                loggers={"console": dg.colored_console_logger, "aiwf_progress": terminal_progress},
            ),
        ),
        settings,
    )


defs = build_definitions(get_settings())
