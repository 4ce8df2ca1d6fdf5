"""Landing -> raw: one observable landing source and one raw asset per declared channel.

Thin shells: parsing lives in `aiwf_assets.ingest.parse`, declarations in
`sources.yaml`. Raw assets stream `context.partition_keys` one day at a time
(memory flat in the number of days, so a single-run range backfill works) and
write Parquet through the storage resource.
"""


from contextlib import closing

import dagster as dg
import polars as pl
from dagster._core.definitions.external_asset import create_external_asset_from_source_asset

from aiwf_assets.day_versions import RECORDS_DAY_VERSIONS, day_materialization, records_own_events
from aiwf_assets.ingest.landing import (
    combine_versions,
    landing_path,
    landing_versions,
    raw_code_version,
    raw_data_version,
    read_landed,
    spec_fingerprint,
)
from aiwf_assets.ingest.parse import (
    TOTAL_DOUBT,
    LandingFormatError,
    parse_landing,
    raw_schema,
    refused_frame,
)
from aiwf_assets.ingest.spec import SourcesConfig, SourceSpec
from aiwf_assets.parallel import prefetched
from aiwf_assets.progress import log_progress
from aiwf_assets.resources import LandingResource, StorageResource

OWNER = "team:data-platform"


def _raw_table_schema(spec: SourceSpec) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, str(dtype)) for name, dtype in raw_schema(spec).items()]
    )


def build_landing_asset(
    spec: SourceSpec, partitions: dg.DailyPartitionsDefinition
) -> dg.AssetsDefinition:
    partitioned = spec.contract.daily

    @dg.observable_source_asset(
        name=f"landing_{spec.name}",
        group_name="landing",
        description=(
            f"Files delivered by the {spec.name} channel ({spec.format}) at "
            f"landing/{spec.landing}. Data version = sha256 of the file's bytes. Observed "
            "by landing_observation_sensor, which records only versions that changed."
        ),
        partitions_def=partitions if partitioned else None,
        metadata={"format": spec.format},
    )
    def landing(landing: LandingResource):
        versions = landing_versions(spec, landing, partitions)
        if not partitioned:
            return dg.DataVersion(versions.get(None, "absent"))
        return dg.DataVersionsByPartition(
            {day: dg.DataVersion(v) for day, v in versions.items() if day is not None}
        )

    # observable_source_asset takes no owners or kinds; the external asset it stands for does
    return create_external_asset_from_source_asset(landing).map_asset_specs(
        lambda asset_spec: asset_spec.replace_attributes(owners=[OWNER], kinds={spec.format})
    )


def build_raw_asset(
    spec: SourceSpec, partitions: dg.DailyPartitionsDefinition
) -> dg.AssetsDefinition:
    asset_name = f"raw_{spec.name}"
    partitioned = spec.contract.daily

    @dg.asset(
        name=asset_name,
        group_name="raw",
        description=(
            f"The {spec.name} landing file parsed to its channel contract, every value kept as "
            "text (lossless), with lineage columns _source_file, _source_row, _parse_error."
        ),
        deps=[f"landing_{spec.name}"],
        partitions_def=partitions if partitioned else None,
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        owners=[OWNER],
        kinds={"polars", "parquet"},
        code_version=f"{raw_code_version(spec)}-{spec_fingerprint(spec)[:12]}",
        metadata={
            "dagster/column_schema": _raw_table_schema(spec), "format": spec.format,
            **({RECORDS_DAY_VERSIONS: True} if partitioned else {}),
        },
    )
    def raw(
        context: dg.AssetExecutionContext, landing: LandingResource, storage: StorageResource
    ) -> dg.MaterializeResult:
        store = storage.store()
        keys = context.partition_keys if partitioned else [None]
        versions = []
        total_rows = 0
        own_events = partitioned and records_own_events(context)  # see day_versions.py
        # the next day is read and parsed in a worker thread while this thread writes and
        # records the current one, in order (see aiwf_assets/parallel.py)
        parsed = prefetched(lambda key: _ingest_one(spec, key, landing), keys, name="aiwf-raw")
        with closing(parsed):  # on an error the days not consumed are cancelled
            for done, (key, (frame, meta, content_sha)) in enumerate(
                zip(keys, parsed, strict=True), 1
            ):
                uri = store.write(asset_name, frame, key)
                version = raw_data_version(content_sha, spec)
                versions.append(version)
                total_rows += frame.height
                log_progress(context, asset_name, done, len(keys), total_rows)
                if "refused" in meta:
                    context.log.error(
                        f"{key}: {meta['refused']}; cleaning holds the day back until the"
                        " file is corrected (the other days go on)"
                    )
                meta |= {"path": dg.MetadataValue.path(uri), "content_version": version}
                if own_events:
                    context.log_event(
                        day_materialization(context, asset_name, key, version, meta)
                    )
                elif partitioned:
                    context.add_asset_metadata(meta, partition_key=key)
                else:
                    context.add_asset_metadata(meta)
        # one version for the run: what Dagster records for every day of a range run (one
        # day's run: that day's version), unless the run defers asset events (day_versions)
        return dg.MaterializeResult(
            data_version=dg.DataVersion(combine_versions(versions)),
            metadata={"partitions_in_run": len(keys), "rows_in_run": total_rows},
        )

    return raw


def _ingest_one(
    spec: SourceSpec, partition: str | None, landing: LandingResource
) -> tuple[pl.DataFrame, dict, str | None]:
    """Parse one landed file; a missing file gives an empty partition flagged as absent."""
    relative = landing_path(spec, partition)
    landed = read_landed(landing, relative)  # one read: the bytes and their fingerprint
    if landed is None:
        empty = pl.DataFrame(schema=raw_schema(spec))
        return empty, {"dagster/row_count": 0, "file_present": False, "source_file": relative}, None
    data, content_sha = landed
    try:
        result = parse_landing(data, spec, relative)
    except LandingFormatError as error:
        if partition is None:
            raise  # a reference file has no day to hold back: its run fails, naming it
        # a daily file: the day is held back by cleaning, the other days of a range go on
        frame = refused_frame(spec, relative, error)
        return frame, {
            "dagster/row_count": frame.height, "file_present": True, "source_file": relative,
            "content_sha256": content_sha, "refused": str(error),
        }, content_sha
    frame = result.frame
    # the rows of orders held back by their total (`order_total`) are read, not unreadable
    parse_errors = frame.filter(
        pl.col("_parse_error").is_not_null() & ~pl.col("_parse_error").str.starts_with(TOTAL_DOUBT)
    ).height
    meta = {
        "dagster/row_count": frame.height,
        "file_present": True,
        # counted from the bytes; cleaning reconciles the parsed records against it
        "records_in_file": frame.get_column("_file_records").first() or 0,
        "ends_mid_record": bool(frame.get_column("_file_ends_mid_record").any()),
        "source_file": relative,
        "content_sha256": content_sha,
        "unreadable_records": parse_errors,
        "extra_columns": ", ".join(result.extra_columns) or "none",
        "missing_columns": ", ".join(result.missing_columns) or "none",
    }
    if spec.order_amounts:  # rows beyond the file's records: its orders' shipping, discounts
        meta["order_amount_lines"] = result.order_amount_lines
    if spec.footer is not None:
        # the summary lines ending the file: records + header + these are its lines
        meta["footer_lines"] = result.footer_lines
    if spec.order_total is not None:
        # orders held back whole: their lines do not add up to the Total the file states
        meta["orders_not_adding_up"] = result.orders_not_adding_up
    return frame, meta, content_sha


def build_ingest_definitions(
    sources: SourcesConfig, partitions: dg.DailyPartitionsDefinition
) -> dg.Definitions:
    """A landing and a raw asset per declared source, daily ones on `partitions`."""
    specs = sources.sources.values()
    return dg.Definitions(
        assets=[
            *(build_landing_asset(spec, partitions) for spec in specs),
            *(build_raw_asset(spec, partitions) for spec in specs),
        ]
    )
