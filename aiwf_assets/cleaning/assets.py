"""Raw -> cleaned: validated, deduplicated, standardised, pseudonymised tables in the warehouse.

Thin shells around `aiwf_assets.cleaning` functions. Each output reports a
content-based data version (sorted business columns, lineage excluded), so a
re-delivered file whose rows only moved or changed whitespace re-runs this
step but nothing downstream of it. Pandera contracts and row accounting are
blocking asset checks: downstream assets in the same run wait for them.
"""


import datetime as dt
from collections.abc import Iterator

import dagster as dg
import polars as pl

from aiwf_assets.cleaning import clean_interactions_day as clean_interactions
from aiwf_assets.cleaning import clean_orders_day as clean_orders
from aiwf_assets.cleaning import clean_reference_customers as clean_customers
from aiwf_assets.cleaning import clean_reference_products as clean_products
from aiwf_assets.cleaning import clean_reference_stores as clean_stores
from aiwf_assets.cleaning import content_version
from aiwf_assets.cleaning.contracts import table_schema, validate_table
from aiwf_assets.cleaning.quarantine import by_day as quarantine_by_day
from aiwf_assets.cleaning.quarantine import by_reason as quarantine_by_reason
from aiwf_assets.ingest.assets import SOURCES
from aiwf_assets.ingest.landing import combine_versions
from aiwf_assets.io.parquet_store import ParquetStore
from aiwf_assets.io.warehouse import PARTITION_COLUMN, Warehouse
from aiwf_assets.partitions import daily_partitions
from aiwf_assets.resources import PiiKeyResource, StorageResource, WarehouseResource

OWNER = "team:data-platform"
CLEAN_CODE_VERSION = "clean-2"  # clean-2: key clashes quarantined
SCHEMA = "cleaned"

# business key per table: content versions sort by it; lineage columns never count
TABLE_KEYS: dict[str, list[str]] = {
    "orders": ["order_id"],
    "order_lines": ["order_id", "line_number"],
    "interactions": ["interaction_id"],
    "quarantine": ["channel", "reasons", "record"],
    "customers": ["customer_key"],
    "customer_identity": ["identifier_kind", "identifier_hash"],
    "products": ["sku"],
    "stores": ["store_code"],
}
LINEAGE_COLUMNS = ["source_file", "source_row"]

DESCRIPTIONS = {
    "orders": "One row per order from every sales channel (web, app, store), in EUR and UTC.",
    "order_lines": "One row per order line: canonical SKU, quantity, EUR prices, promo flag.",
    "interactions": "Service tickets and web sessions, linked to customer_key where known.",
    "quarantine": "Every rejected daily row with its source file, row and reason(s).",
    "customers": "CRM customers, pseudonymised (no clear PII), one row per customer_key.",
    "customer_identity": "Identifier hash (email/phone/loyalty) -> customer_key, across channels.",
    "products": "ERP product catalog with canonical SKUs and EUR list prices.",
    "stores": "Store list.",
    "reference_quarantine": "Rejected rows of the reference files with their reasons.",
}


def channels_for(*contracts: str) -> list[str]:
    return [s.name for s in SOURCES.by_contract(*contracts).values() if s.contract.daily]


ORDER_CHANNELS = channels_for("order_lines")
INTERACTION_CHANNELS = channels_for("tickets", "sessions")


def _spec(name: str, deps: list[str]) -> dg.AssetSpec:
    return dg.AssetSpec(
        name,
        group_name="cleaned",
        description=DESCRIPTIONS[name],
        deps=deps,
        owners=[OWNER],
        kinds={"polars", "duckdb"},
        code_version=CLEAN_CODE_VERSION,
        metadata={
            "dagster/table_name": f"{SCHEMA}.{name}",
            "dagster/column_schema": table_schema(name),
        },
    )


def _contract_check(table: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "pandera_contract", asset=table, blocking=True,
        description=f"The pandera contract for cleaned.{table} holds on every written row.",
    )


def _accounting_check(table: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "rows_add_up", asset=table, blocking=True,
        description=(
            "Per channel and day: rows in = cleaned + quarantined + duplicates removed, and "
            "the raw records cover every line counted in the landing file's bytes."
        ),
    )


def contract_failures(table: str, frame: pl.DataFrame, partition: str | None = None) -> list[str]:
    """Readable contract failures of one frame (prefixed with its day when partitioned)."""
    prefix = f"{partition}: " if partition else ""
    return [f"{prefix}{failure}" for failure in validate_table(table, frame)]


def contract_result(table: str, failures: list[str], rows_checked: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=table,
        check_name="pandera_contract",
        passed=not failures,
        metadata={
            "rows_checked": rows_checked,
            "failures": dg.MetadataValue.md(
                "\n".join(f"- {f}" for f in failures) if failures else "none"
            ),
        },
    )


def accounting_result(table: str, accounting: pl.DataFrame) -> dg.AssetCheckResult:
    # rows: every raw row is cleaned, quarantined or a duplicate; lines: the raw records
    # cover every line counted in the landing file (null: raw predates line counts)
    broken = accounting.filter(
        (
            pl.col("rows_in")
            != pl.col("rows_cleaned") + pl.col("rows_quarantined") + pl.col("duplicates_removed")
        )
        | pl.col("lines_in_file").ne_missing(pl.col("lines_parsed"))
        | pl.col("lines_in_file").is_null()
    )
    return dg.AssetCheckResult(
        asset_key=table,
        check_name="rows_add_up",
        passed=broken.is_empty(),
        description=None if broken.is_empty() else _accounting_message(broken),
        metadata={
            "accounting": dg.MetadataValue.md(_markdown_table(accounting)),
            "violations": broken.height,
        },
    )


def _accounting_message(broken: pl.DataFrame) -> str:
    return "; ".join(
        f"{r['channel']} {r['partition_date']}: {r['lines_in_file']} lines in the file, "
        f"{r['lines_parsed']} read; rows in {r['rows_in']} = cleaned {r['rows_cleaned']} "
        f"+ quarantined {r['rows_quarantined']} + duplicates {r['duplicates_removed']}?"
        + (" (raw predates line counts: re-materialise raw)" if r["lines_in_file"] is None else "")
        for r in broken.iter_rows(named=True)
    )


def _markdown_table(frame: pl.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows])


def _with_partition(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    return frame.with_columns(pl.lit(day).alias(PARTITION_COLUMN)).select(
        PARTITION_COLUMN, pl.exclude(PARTITION_COLUMN)
    )


def _version(table: str, frame: pl.DataFrame) -> str:
    return content_version(frame, TABLE_KEYS[table], ignore=LINEAGE_COLUMNS)


DAILY_TABLES = ["orders", "order_lines", "interactions", "quarantine"]


@dg.multi_asset(
    specs=[
        _spec("orders", [f"raw_{c}" for c in ORDER_CHANNELS] + ["customer_identity"]),
        _spec("order_lines", [f"raw_{c}" for c in ORDER_CHANNELS] + ["customer_identity"]),
        _spec("interactions", [f"raw_{c}" for c in INTERACTION_CHANNELS] + ["customer_identity"]),
        _spec("quarantine", [f"raw_{c}" for c in ORDER_CHANNELS + INTERACTION_CHANNELS]),
    ],
    check_specs=[
        *(_contract_check(t) for t in DAILY_TABLES),
        _accounting_check("order_lines"),
        _accounting_check("interactions"),
    ],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    name="clean_daily",
)
def clean_daily(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    warehouse: WarehouseResource,
    pii: PiiKeyResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Clean every channel of each day in the run, one day at a time."""
    with warehouse.get().session() as wh:  # one connection for the run's daily writes
        yield from _clean_days(context, storage.store(), wh, pii.key())


def _clean_days(
    context: dg.AssetExecutionContext, store: ParquetStore, wh: Warehouse, key: bytes
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    identity = wh.query(f"SELECT * FROM {SCHEMA}.customer_identity")
    versions: dict[str, list[str]] = {t: [] for t in DAILY_TABLES}
    rows: dict[str, int] = dict.fromkeys(DAILY_TABLES, 0)
    # validated day by day so a range run keeps one day in memory, not the whole range
    failures: dict[str, list[str]] = {t: [] for t in DAILY_TABLES}
    accounting: dict[str, list[pl.DataFrame]] = {"order_lines": [], "interactions": []}
    for partition in context.partition_keys:
        day = dt.date.fromisoformat(partition)
        orders_result = clean_orders(
            {c: store.read(f"raw_{c}", partition) for c in ORDER_CHANNELS},
            identity, key, day, SOURCES,
        )
        interactions_result = clean_interactions(
            {c: store.read(f"raw_{c}", partition) for c in INTERACTION_CHANNELS},
            identity, key, day, SOURCES,
        )
        tables = {
            **orders_result.tables,
            **interactions_result.tables,
            "quarantine": pl.concat(
                [orders_result.quarantine, interactions_result.quarantine], how="diagonal_relaxed"
            ),
        }
        for table in DAILY_TABLES:
            frame = _with_partition(tables[table], day)
            wh.replace_partitions(f"{SCHEMA}.{table}", frame, [day])
            version = _version(table, tables[table])
            versions[table].append(version)
            rows[table] += frame.height
            failures[table] += contract_failures(table, frame, partition)
            context.add_asset_metadata(
                {"dagster/row_count": frame.height, "content_version": version},
                asset_key=table, partition_key=partition,
            )
        accounting["order_lines"].append(orders_result.accounting)
        accounting["interactions"].append(interactions_result.accounting)
        context.add_asset_metadata(
            {"quarantined_by_reason": dg.MetadataValue.md(_reason_counts(tables["quarantine"]))},
            asset_key="quarantine", partition_key=partition,
        )
    everything_quarantined = wh.query(
        f"SELECT partition_date, channel, reasons FROM {SCHEMA}.quarantine"
    )
    for table in DAILY_TABLES:
        yield dg.MaterializeResult(
            asset_key=table,
            data_version=dg.DataVersion(combine_versions(versions[table])),
            metadata={
                "rows_in_run": rows[table],
                **(quarantine_overview(everything_quarantined) if table == "quarantine" else {}),
            },
        )
        yield contract_result(table, failures[table], rows[table])
    for table, frames in accounting.items():
        yield accounting_result(table, pl.concat(frames))


def quarantine_overview(quarantine: pl.DataFrame) -> dict[str, dg.MetadataValue]:
    """Every day's quarantine by reason and by day, as tables the UI shows inline."""
    return {
        "quarantined_by_reason (all days)": metadata_table(quarantine_by_reason(quarantine)),
        "quarantined_by_day (all days)": metadata_table(quarantine_by_day(quarantine)),
    }


def metadata_table(frame: pl.DataFrame) -> dg.MetadataValue:
    text = frame.with_columns(pl.col(pl.Date).dt.to_string())
    return dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in text.iter_rows(named=True)],
        schema=dg.TableSchema(
            columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
        ),
    )


def _reason_counts(quarantine: pl.DataFrame) -> str:
    if quarantine.is_empty():
        return "no rows quarantined"
    counts = (
        quarantine.select(pl.col("reasons").str.split(";"))
        .explode("reasons")
        .with_columns(pl.col("reasons").str.strip_chars())
        .group_by("reasons")
        .len()
        .sort("len", descending=True)
        .rename({"reasons": "reason", "len": "rows"})
    )
    return _markdown_table(counts)


def _write_reference(
    wh, results: dict[str, pl.DataFrame]
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    for table, frame in results.items():
        wh.replace_table(f"{SCHEMA}.{table}", frame)
        yield dg.MaterializeResult(
            asset_key=table,
            data_version=dg.DataVersion(_version(table, frame)),
            metadata={"dagster/row_count": frame.height},
        )
        if table != "reference_quarantine":
            yield contract_result(table, contract_failures(table, frame), frame.height)


@dg.multi_asset(
    specs=[
        _spec("customers", ["raw_customers"]),
        _spec("customer_identity", ["raw_customers"]),
    ],
    check_specs=[_contract_check("customers"), _contract_check("customer_identity")],
    name="clean_customers",
)
def clean_customers_asset(
    storage: StorageResource, warehouse: WarehouseResource, pii: PiiKeyResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """CRM customers pseudonymised, and the identity map that links channels to one customer."""
    result = clean_customers(storage.store().read("raw_customers"), pii.key())
    wh = warehouse.get()
    tables = result.tables
    # the reference quarantine is shared by products/stores too; append this file's rows
    wh.replace_partitions(
        f"{SCHEMA}.reference_quarantine", result.quarantine, ["customers"], "channel"
    )
    yield from _write_reference(wh, tables)


def _single_reference(name: str, cleaner) -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=[_spec(name, [f"raw_{name}"])],
        check_specs=[_contract_check(name)],
        name=f"clean_{name}",
    )
    def _asset(storage: StorageResource, warehouse: WarehouseResource):
        result = cleaner(storage.store().read(f"raw_{name}"))
        wh = warehouse.get()
        wh.replace_partitions(
            f"{SCHEMA}.reference_quarantine", result.quarantine, [name], "channel"
        )
        yield from _write_reference(wh, result.tables)

    return _asset


clean_products_asset = _single_reference("products", clean_products)
clean_stores_asset = _single_reference("stores", clean_stores)

defs = dg.Definitions(
    assets=[clean_customers_asset, clean_products_asset, clean_stores_asset, clean_daily]
)
