"""The code location `test_secrets.py` serves from a webserver: the data layers on the
resources `build_resources` gives for the environment (prod in that test) and the alert
channels (the automation domain's resource), built from the
settings as `aiwf_assets.definitions` does. This file holds exactly one `Definitions`."""

import dagster as dg

from aiwf_assets.automation.alerts import alert_channels
from aiwf_assets.resources import build_resources
from aiwf_assets.settings import get_settings
from tests import domains

defs = dg.Definitions.merge(
    domains.data_definitions(get_settings()),
    dg.Definitions(
        resources={**build_resources(get_settings()), "alerts": alert_channels(get_settings())}
    ),
)
