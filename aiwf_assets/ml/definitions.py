"""The AI layer's Dagster definitions: features, models, serving (they depend on no
setting: storage and models come through resources)."""

import dagster as dg

from aiwf_assets.ml.assets import ASSETS


def build_ml_definitions() -> dg.Definitions:
    return dg.Definitions(assets=ASSETS)
