"""The end-of-demo summary: rows per layer, quarantine by reason, where to look.

It reads through the same interfaces the pipeline writes with (the Parquet store, the
`Warehouse`, the model store), so it works on local files + DuckDB and on S3 + Postgres.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from aiwf_assets.cleaning.quarantine import by_reason
from aiwf_assets.io.model_store import ModelStore
from aiwf_assets.io.parquet_store import ParquetStore
from aiwf_assets.io.warehouse import DuckDBWarehouse, Warehouse
from aiwf_assets.settings import Settings


def raw_row_counts(storage: ParquetStore) -> dict[str, int]:
    """Rows per raw asset, from Parquet footers (no data read)."""
    fs = storage.filesystem
    counts: dict[str, int] = {}
    for entry in _listing(fs, storage.root):
        if not entry.base_name.startswith("raw_"):
            continue
        if entry.type == pafs.FileType.File:
            files = [entry.path]
        else:
            files = [f.path for f in _listing(fs, entry.path) if f.base_name.endswith(".parquet")]
        counts[entry.base_name.removesuffix(".parquet")] = sum(
            _parquet_rows(fs, path) for path in files
        )
    return counts


def _listing(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    """Entries directly below `path`, sorted by name, without hidden ones (temp files)."""
    selector = pafs.FileSelector(path, allow_not_found=True)
    entries = [e for e in fs.get_file_info(selector) if not e.base_name.startswith(".")]
    return sorted(entries, key=lambda e: e.base_name)


def _parquet_rows(fs: pafs.FileSystem, path: str) -> int:
    with fs.open_input_file(path) as source:
        return pq.ParquetFile(source).metadata.num_rows


def _table_listing(warehouse: Warehouse) -> pl.DataFrame:
    """(table_schema, table_name) of the warehouse's tables and views, as the pipeline names
    them (a Postgres schema suffix left out)."""
    if warehouse.dialect != "postgres":
        return warehouse.query(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('information_schema', 'pg_catalog') "
            "ORDER BY table_schema, table_name"
        )
    suffix: str = getattr(warehouse, "schema_suffix", "")
    tables = warehouse.query(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema <> 'information_schema' AND table_schema NOT LIKE 'pg\\_%' "
        "AND right(table_schema, ?) = ? ORDER BY table_schema, table_name",
        [len(suffix), suffix],
    )
    if not suffix:
        return tables
    return tables.with_columns(pl.col("table_schema").str.head(-len(suffix)))


def warehouse_row_counts(warehouse: Warehouse) -> pl.DataFrame:
    tables = _table_listing(warehouse)
    counts = [
        warehouse.query(f'SELECT count(*) AS n FROM "{schema}"."{name}"')["n"][0]
        for schema, name in tables.iter_rows()
    ]
    return tables.with_columns(pl.Series("rows", counts, dtype=pl.Int64))


def quarantine_by_reason(warehouse: Warehouse) -> pl.DataFrame:
    """Rows per channel and kind of reason (the offending value and day left out)."""
    quarantine = warehouse.query("SELECT partition_date, channel, reasons FROM cleaned.quarantine")
    return by_reason(quarantine).select("channel", "reason", "rows")


HEADLINE_METRICS = {
    "churn": ("roc_auc", "pr_auc", "brier"),
    "segmentation": ("silhouette", "segments"),
    "demand": ("wape", "mae"),
    "recommender": ("hit_rate_at_10", "precision_at_10"),
}


def champions(store: ModelStore) -> list[str]:
    """One line per model family: the champion and its holdout metrics vs the baseline."""
    lines = []
    for family, headline in HEADLINE_METRICS.items():
        card = store.champion(family)
        if card is None:
            lines.append(f"  {family:<13} no champion")
            continue
        metrics = ", ".join(f"{k} {card.metrics[k]:.3f}" for k in headline if k in card.metrics)
        baseline = ", ".join(
            f"{k} {card.baseline_metrics[k]:.3f}" for k in headline if k in card.baseline_metrics
        )
        lines.append(
            f"  {family:<13} {card.model_name} v{card.version[:10]}: {metrics}"
            + (f"  (baseline: {baseline})" if baseline else "")
        )
    return lines


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _warehouse_exists(warehouse: Warehouse) -> bool:
    """A DuckDB warehouse is a file that may not be there yet; a server always is."""
    return warehouse.path.exists() if isinstance(warehouse, DuckDBWarehouse) else True


def _warehouse_label(warehouse: Warehouse) -> str:
    if isinstance(warehouse, DuckDBWarehouse):
        return str(warehouse.path)
    suffix: str = getattr(warehouse, "schema_suffix", "")
    label = postgres_label(getattr(warehouse, "dsn", ""))
    return label + (f", schemas suffixed {suffix}" if suffix else "")


def postgres_label(dsn: str) -> str:
    """`postgres user@host:port/dbname` for a libpq DSN or URL, the password left out."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    user = f"{params['user']}@" if params.get("user") else ""
    host = params.get("host") or "localhost"
    return f"postgres {user}{host}:{params.get('port') or 5432}/{params.get('dbname', '')}"


def local_locations(settings: Settings) -> list[tuple[str, str]]:
    """Where the local demo keeps everything."""
    return [
        ("landing files", str(settings.landing_dir)),
        ("Parquet storage", str(settings.storage_dir)),
        ("warehouse", f"{settings.warehouse_path}   (duckdb {settings.warehouse_path})"),
        ("models", str(settings.models_dir)),
        ("exports", str(settings.exports_dir)),
        ("Dagster instance", str(settings.dagster_home)),
    ]


LOCAL_NEXT_STEP = "open the UI:  aiwf ui   (then http://127.0.0.1:3000)"


def summarise(
    settings: Settings,
    warehouse: Warehouse,
    storage: ParquetStore,
    models: ModelStore,
    locations: Sequence[tuple[str, str]] | None = None,
    next_step: str = LOCAL_NEXT_STEP,
) -> str:
    """The summary text; `locations` default to the local layout under AIWF_HOME."""
    lines = [f"\naiwf demo done. AIWF_HOME = {settings.home}", "", "raw (Parquet):"]
    lines += [f"  {name:<28} {rows:>10,} rows" for name, rows in raw_row_counts(storage).items()]
    if _warehouse_exists(warehouse):
        lines += ["", f"warehouse ({_warehouse_label(warehouse)}):"]
        for schema, name, rows in warehouse_row_counts(warehouse).iter_rows():
            lines.append(f"  {schema + '.' + name:<40} {rows:>10,} rows")
        if warehouse.table_exists("cleaned.quarantine"):
            lines += ["", "quarantined rows by reason:"]
            for channel, reason, rows in quarantine_by_reason(warehouse).head(25).iter_rows():
                lines.append(f"  {rows:>6}  {channel:<18} {reason}")
    if _exists(models.filesystem, models.root):
        lines += ["", "champion models (holdout metrics):", *champions(models)]
    lines += ["", "where to look:"]
    lines += [f"  {what:<17} {where}" for what, where in (locations or local_locations(settings))]
    lines += ["", next_step]
    return "\n".join(lines)
