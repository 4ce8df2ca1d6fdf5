"""The monitoring domain (group `monitoring`)."""

import dagster as dg

from aiwf_assets.monitoring.assets import ASSETS

defs = dg.Definitions(assets=ASSETS)
