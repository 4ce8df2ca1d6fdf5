"""Landing -> raw: one observable landing source and one raw asset per declared channel.

Thin shells: parsing lives in `aiwf_assets.ingest.parse`, declarations in
`sources.yaml`. Raw assets stream `context.partition_keys` one day at a time
(memory flat in the number of days, so a single-run range backfill works) and
write Parquet through the storage resource.
"""


import hashlib

import dagster as dg
import polars as pl

from aiwf_assets.automation.fingerprints import content_fingerprints, list_folder, stat_file
from aiwf_assets.ingest.parse import parse_landing, raw_schema
from aiwf_assets.ingest.spec import SourceSpec, load_sources
from aiwf_assets.partitions import daily_partitions
from aiwf_assets.resources import LandingResource, StorageResource
from aiwf_assets.settings import get_settings

OWNER = "team:data-platform"
RAW_CODE_VERSION = "raw-2"  # raw-2: content line numbers, position-free errors


def combine_versions(versions: list[str]) -> str:
    """One data version for a run over several partitions (Dagster stores one per run)."""
    if len(versions) == 1:
        return versions[0]
    return hashlib.sha256("|".join(versions).encode()).hexdigest()


def raw_data_version(content_sha256: str | None, spec: SourceSpec) -> str:
    """Version of a raw partition: what landed + how it is mapped + parser code, not when."""
    basis = f"{content_sha256 or 'absent'}|{spec_fingerprint(spec)}|{RAW_CODE_VERSION}"
    return hashlib.sha256(basis.encode()).hexdigest()


def landing_path(spec: SourceSpec, partition: str | None) -> str:
    return spec.landing_path(partition)


def spec_fingerprint(spec: SourceSpec) -> str:
    """Hash of the declaration (frozen dataclasses have a stable repr): a mapping change is
    a code change for this asset."""
    return hashlib.sha256(repr(spec).encode()).hexdigest()


def landing_folder(spec: SourceSpec) -> str:
    return spec.landing.rsplit("/", 1)[0]


def _raw_table_schema(spec: SourceSpec) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, str(dtype)) for name, dtype in raw_schema(spec).items()]
    )


def partition_of_file(spec: SourceSpec, file_name: str) -> str | None:
    """The partition a landed file name belongs to (`2026-01-05.jsonl` -> `2026-01-05`),
    or None when the name does not follow the source's landing template or the day is
    not a partition (yet)."""
    prefix, _, suffix = spec.landing.rsplit("/", 1)[-1].partition("{date}")
    if not (file_name.startswith(prefix) and file_name.endswith(suffix)):
        return None
    day = file_name[len(prefix) : len(file_name) - len(suffix)]
    return day if daily_partitions.has_partition_key(day) else None


def landing_versions(spec: SourceSpec, landing: LandingResource) -> dict[str | None, str]:
    """sha256 of every landed file of a source, by partition (None for a reference file).

    Content, not modification time: a touched but identical file keeps its version.
    Hashes are cached by (path, size, mtime_ns) under AIWF_HOME/cache, so observing
    an unchanged landing zone lists folders and reads no file.
    """
    fs, root = landing._fs_and_root()
    cache_file = get_settings().cache_dir / "landing" / f"{spec.name}.json"
    if not spec.contract.daily:
        info = stat_file(fs, f"{root}/{landing_path(spec, None)}")
        digests = content_fingerprints(fs, [info] if info else [], cache_file)
        return {None: digests[info.path]} if info else {}
    by_day = {
        day: info
        for info in list_folder(fs, f"{root}/{landing_folder(spec)}")
        if (day := partition_of_file(spec, info.base_name))
    }
    digests = content_fingerprints(fs, by_day.values(), cache_file)
    return {day: digests[info.path] for day, info in by_day.items()}


def build_landing_asset(spec: SourceSpec) -> dg.SourceAsset:
    partitioned = spec.contract.daily

    @dg.observable_source_asset(
        name=f"landing_{spec.name}",
        group_name="landing",
        description=(
            f"Files delivered by the {spec.name} channel ({spec.format}) at "
            f"landing/{spec.landing}. Data version = sha256 of the file's bytes. Observed "
            "by landing_observation_sensor, which records only versions that changed."
        ),
        partitions_def=daily_partitions if partitioned else None,
        metadata={"format": spec.format, "owner": OWNER},
    )
    def landing(landing: LandingResource):
        versions = landing_versions(spec, landing)
        if not partitioned:
            return dg.DataVersion(versions.get(None, "absent"))
        return dg.DataVersionsByPartition(
            {day: dg.DataVersion(v) for day, v in versions.items() if day is not None}
        )

    return landing


def build_raw_asset(spec: SourceSpec) -> dg.AssetsDefinition:
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
        partitions_def=daily_partitions if partitioned else None,
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        owners=[OWNER],
        kinds={"polars", "parquet"},
        code_version=f"{RAW_CODE_VERSION}-{spec_fingerprint(spec)[:12]}",
        metadata={"dagster/column_schema": _raw_table_schema(spec), "format": spec.format},
    )
    def raw(
        context: dg.AssetExecutionContext, landing: LandingResource, storage: StorageResource
    ) -> dg.MaterializeResult:
        store = storage.store()
        keys = context.partition_keys if partitioned else [None]
        versions = []
        total_rows = 0
        for key in keys:
            frame, meta, content_sha = _ingest_one(spec, key, landing)
            uri = store.write(asset_name, frame, key)
            version = raw_data_version(content_sha, spec)
            versions.append(version)
            total_rows += frame.height
            meta |= {"path": dg.MetadataValue.path(uri), "content_version": version}
            if partitioned:
                context.add_asset_metadata(meta, partition_key=key)
            else:
                context.add_asset_metadata(meta)
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
    content_sha = landing.fingerprint(relative)
    if content_sha is None:
        empty = pl.DataFrame(schema=raw_schema(spec))
        return empty, {"dagster/row_count": 0, "file_present": False, "source_file": relative}, None
    result = parse_landing(landing.read_bytes(relative), spec, relative)
    frame = result.frame
    parse_errors = frame.filter(pl.col("_parse_error").is_not_null()).height
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
    return frame, meta, content_sha


SOURCES = load_sources()
landing_assets = [build_landing_asset(spec) for spec in SOURCES.sources.values()]
raw_assets = [build_raw_asset(spec) for spec in SOURCES.sources.values()]

defs = dg.Definitions(assets=[*landing_assets, *raw_assets])
