"""The end-of-demo summary: rows per layer, quarantine by reason, where to look."""

from __future__ import annotations

import polars as pl
import pyarrow.parquet as pq

from aiwf_assets.io.warehouse import DuckDBWarehouse
from aiwf_assets.settings import Settings


def raw_row_counts(settings: Settings) -> dict[str, int]:
    """Rows per raw asset, from Parquet footers (no data read)."""
    counts: dict[str, int] = {}
    root = settings.storage_dir
    for path in sorted(root.glob("raw_*")):
        files = [path] if path.is_file() else sorted(path.glob("*.parquet"))
        counts[path.name.removesuffix(".parquet")] = sum(
            pq.ParquetFile(f).metadata.num_rows for f in files
        )
    return counts


def warehouse_row_counts(warehouse: DuckDBWarehouse) -> pl.DataFrame:
    tables = warehouse.query(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('information_schema', 'pg_catalog') "
        "ORDER BY table_schema, table_name"
    )
    counts = [
        warehouse.query(f'SELECT count(*) AS n FROM "{schema}"."{name}"')["n"][0]
        for schema, name in tables.iter_rows()
    ]
    return tables.with_columns(pl.Series("rows", counts))


def quarantine_by_reason(warehouse: DuckDBWarehouse) -> pl.DataFrame:
    """Rows per channel and kind of reason (the offending value and day left out)."""
    return warehouse.query(
        "SELECT channel, reason, count(*) AS rows FROM ("
        "  SELECT channel, regexp_replace(regexp_replace(trim(r), ' \\(.*\\)$', ''),"
        "    ' (for a [0-9-]+ delivery|at line [0-9]+, column [0-9]+)', '') AS reason"
        "  FROM (SELECT channel, unnest(string_split(reasons, ';')) AS r FROM cleaned.quarantine)"
        ") GROUP BY ALL ORDER BY rows DESC, channel, reason"
    )


HEADLINE_METRICS = {
    "churn": ("roc_auc", "pr_auc", "brier"),
    "segmentation": ("silhouette", "segments"),
    "demand": ("wape", "mae"),
    "recommender": ("hit_rate_at_10", "precision_at_10"),
}


def champions(settings: Settings) -> list[str]:
    """One line per model family: the champion and its holdout metrics vs the baseline."""
    from aiwf_assets.ml.model_store import ModelStore

    store = ModelStore.local(str(settings.models_dir))
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


def summarise(settings: Settings) -> str:
    lines = [f"\naiwf demo done. AIWF_HOME = {settings.home}", "", "raw (Parquet):"]
    lines += [f"  {name:<28} {rows:>10,} rows" for name, rows in raw_row_counts(settings).items()]
    warehouse = DuckDBWarehouse(settings.warehouse_path)
    if settings.warehouse_path.exists():
        lines += ["", f"warehouse ({settings.warehouse_path}):"]
        for schema, name, rows in warehouse_row_counts(warehouse).iter_rows():
            lines.append(f"  {schema + '.' + name:<40} {rows:>10,} rows")
        if warehouse.table_exists("cleaned.quarantine"):
            lines += ["", "quarantined rows by reason:"]
            for channel, reason, rows in quarantine_by_reason(warehouse).head(25).iter_rows():
                lines.append(f"  {rows:>6}  {channel:<18} {reason}")
    if settings.models_dir.exists():
        lines += ["", "champion models (holdout metrics):", *champions(settings)]
    lines += [
        "",
        "where to look:",
        f"  landing files     {settings.landing_dir}",
        f"  Parquet storage   {settings.storage_dir}",
        f"  warehouse         {settings.warehouse_path}   (duckdb {settings.warehouse_path})",
        f"  models            {settings.models_dir}",
        f"  exports           {settings.exports_dir}",
        f"  Dagster instance  {settings.dagster_home}",
        "",
        "open the UI:  aiwf ui   (then http://127.0.0.1:3000)",
    ]
    return "\n".join(lines)
