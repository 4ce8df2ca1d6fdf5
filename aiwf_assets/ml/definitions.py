"""The AI layer's Dagster definitions: features, models, serving."""

import dagster as dg

from aiwf_assets.ml.assets import ASSETS

defs = dg.Definitions(assets=ASSETS)
