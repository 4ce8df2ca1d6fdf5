"""Each day its own data version, also in a run over a range of days.

Dagster 1.13 gives every partition of a range run the one data version the step
returns (dagster-io/dagster#18649, #34013): after a 60-day range run, re-running one
unchanged day changes that day's recorded version, and change-driven automation
re-runs what depends on it. A run tagged `dagster/defer_asset_events=true` makes
Dagster leave the materialisation events to the assets: the daily assets that
know each day's content version (raw, cleaned) then record one materialisation per
day with that day's version, exactly what a run of that day alone records.
`aiwf demo` tags its range run of those assets so (demo.py); runs without the tag
(the UI, automation, one day each) are recorded by Dagster as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
)
from dagster._core.storage.tags import EXTERNALLY_MANAGED_ASSETS_TAG

DEFER_ASSET_EVENTS_TAG = EXTERNALLY_MANAGED_ASSETS_TAG  # "dagster/defer_asset_events"
# on an asset: it records its own per-day materialisations in a deferred run
RECORDS_DAY_VERSIONS = "aiwf/records_day_versions"


def records_own_events(context: dg.AssetExecutionContext) -> bool:
    """True in a run whose asset events the assets record themselves (the tag above)."""
    return str(context.run.tags.get(DEFER_ASSET_EVENTS_TAG, "")).lower() == "true"


def day_materialization(
    context: dg.AssetExecutionContext, asset_key: dg.AssetKey | str, partition: str,
    version: str, metadata: Mapping[str, Any],
) -> dg.AssetMaterialization:
    """The materialisation of one day with that day's own content version, tagged as
    Dagster tags the one it records for a run of that day alone."""
    key = dg.AssetKey.from_coercible(asset_key)
    tags = {DATA_VERSION_TAG: version, DATA_VERSION_IS_USER_PROVIDED_TAG: "true"}
    code_version = context.assets_def.specs_by_key[key].code_version
    if code_version:
        tags[CODE_VERSION_TAG] = code_version
    return dg.AssetMaterialization(
        asset_key=key, partition=partition, tags=tags, metadata=dict(metadata)
    )
