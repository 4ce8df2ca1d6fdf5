"""What the AI layer's shells report to Dagster: schemas, tables, versions, results."""

from collections.abc import Sequence
from typing import Any

import dagster as dg
import polars as pl

from aiwf_assets.ml.common import frame_version
from aiwf_assets.resources import column_schema

OWNERS = ["team:ml"]


def frame_markdown(frame: pl.DataFrame, digits: int = 4) -> str:
    rounded = frame.with_columns(pl.selectors.float().round(digits))
    header = "| " + " | ".join(rounded.columns) + " |"
    rule = "| " + " | ".join("---" for _ in rounded.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in rounded.iter_rows()]
    return "\n".join([header, rule, *rows])


def upstream_data_versions(
    context: dg.AssetExecutionContext, keys: Sequence[str]
) -> dict[str, str]:
    """The data versions of the upstream materialisations this run read."""
    versions = {}
    for key in keys:
        record = context.instance.get_latest_data_version_record(dg.AssetKey(key))
        entry = record.event_log_entry if record else None
        event = entry and (entry.asset_materialization or entry.asset_observation)
        versions[key] = (
            (event.tags or {}).get("dagster/data_version", "unversioned")
            if event
            else ("never materialised")
        )
    return versions


def frame_output(
    frame: pl.DataFrame, extra: dict[str, Any] | None = None
) -> dg.Output[pl.DataFrame]:
    """A frame for the IO manager (which adds path, row count and schema), versioned by content."""
    return dg.Output(frame, metadata=extra or {}, data_version=dg.DataVersion(frame_version(frame)))


def frame_result(
    frame: pl.DataFrame, uri: str, extra: dict[str, Any] | None = None
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "dagster/column_schema": column_schema(frame),
            "dagster/uri": dg.MetadataValue.path(uri),
            **(extra or {}),
        },
        data_version=dg.DataVersion(frame_version(frame)),
    )
