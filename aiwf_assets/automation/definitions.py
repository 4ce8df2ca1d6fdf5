"""The automation domain: sensors that observe, automate and alert.

Jobs, schedules and per-asset policies depend on the assembled graph and are
added by `policies.apply_automation_policies(defs)` in aiwf_assets/definitions.py.
"""

import dagster as dg

from aiwf_assets.automation.alerts import (
    alert_channels,
    build_asset_alert_sensor,
    build_run_failure_sensor,
)
from aiwf_assets.automation.sensors import automation_sensor, landing_observation_sensor
from aiwf_assets.ingest.spec import SourcesConfig
from aiwf_assets.settings import Settings


def build_automation_definitions(
    settings: Settings, sources: SourcesConfig, partitions: dg.DailyPartitionsDefinition
) -> dg.Definitions:
    """The sensors, their intervals from `settings`; the landing sensor observes `sources`;
    the `alerts` resource the alert sensors deliver through (the automation domain's own, so
    `resources.py` does not import automation: no import cycle between the domains)."""
    return dg.Definitions(
        sensors=[
            landing_observation_sensor(settings, sources, partitions),
            automation_sensor(settings),
            build_run_failure_sensor(),
            build_asset_alert_sensor(settings),
        ],
        resources={"alerts": alert_channels(settings)},
    )
