"""The AI layer: features, models with champion/challenger promotion, serving, evaluation.

Definitions live in `aiwf_assets.ml.definitions`; this package init stays import-free so
`aiwf_assets.resources` can use the model store without an import cycle.
"""
