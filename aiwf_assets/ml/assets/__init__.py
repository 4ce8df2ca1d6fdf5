"""Dagster shells for the AI layer, one module per layer: features -> models -> serving.

The logic lives in the sibling modules of `aiwf_assets.ml`; these shells read
inputs, call it, write outputs and report metadata. Training assets (group
`ml`) and scoring assets (group `serving`) are separate so that models can
retrain on their own policy (drift, schedule, code change) while scores follow
new data with the current champions.
"""

from aiwf_assets.ml.assets import features, models, serving

ASSETS = [*features.ASSETS, *models.ASSETS, *serving.ASSETS]
