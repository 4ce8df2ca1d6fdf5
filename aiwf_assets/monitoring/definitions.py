"""The monitoring domain (group `monitoring`): `build_monitoring_definitions(sources,
partitions)`, built by `aiwf_assets.definitions.build_definitions` from its Settings."""

from aiwf_assets.monitoring.assets import build_monitoring_definitions

__all__ = ["build_monitoring_definitions"]
