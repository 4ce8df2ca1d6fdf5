"""The code location: `build_definitions(settings)` assembles each domain's definitions, the
resources and the executor from one Settings value. No logic here.

`defs` is the one place settings are read for the code location; tests and tools build
their own from other settings. Domains are imported as modules (not their `defs` objects)
so this module holds exactly one `Definitions` and `dagster dev -m aiwf_assets.definitions`
finds it without `-a`.
"""

import dagster as dg

from aiwf_assets.automation.definitions import build_automation_definitions
from aiwf_assets.automation.policies import apply_automation_policies
from aiwf_assets.cleaning import assets as cleaning
from aiwf_assets.ingest import assets as ingest
from aiwf_assets.k8s import executor_for
from aiwf_assets.marts.definitions import build_marts_definitions
from aiwf_assets.ml import definitions as ml
from aiwf_assets.monitoring import definitions as monitoring
from aiwf_assets.progress import terminal_progress
from aiwf_assets.resources import build_resources, warehouse_resource
from aiwf_assets.settings import Settings, get_settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Every domain on the resources and executor `settings` choose, with automation applied."""
    return apply_automation_policies(
        dg.Definitions.merge(
            ingest.defs,
            cleaning.defs,
            build_marts_definitions(warehouse_resource(settings)),
            ml.defs,
            monitoring.defs,
            build_automation_definitions(settings),
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
