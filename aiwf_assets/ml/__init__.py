"""The AI layer: features, models with champion/challenger promotion, serving, evaluation.

Pure logic here; the Dagster shells are in `aiwf_assets.ml.assets` (by layer) and the
layer's definitions in `aiwf_assets.ml.definitions`. The model store is storage and lives
in `aiwf_assets.io.model_store`.
"""
