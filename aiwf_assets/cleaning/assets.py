"""Raw -> cleaned: validated, deduplicated, standardised, pseudonymised tables in the warehouse.

Thin shells around `aiwf_assets.cleaning` functions. Each output reports a
content-based data version (sorted business columns, lineage excluded), so a
re-delivered file whose rows only moved or changed whitespace re-runs this
step but nothing downstream of it.

Write-audit-publish: a day's tables (or a reference file's) are staged, every blocking
check (pandera contracts, row accounting, volume/shape and reference guards) runs on the
staged rows, and only a day without findings is published, in one transaction. A held-back
day keeps its published rows and fails the run with the findings (docs/DATA_CONTRACTS.md).
"""


import dataclasses
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

import dagster as dg
import polars as pl

from aiwf_assets.checks import in_step_check
from aiwf_assets.cleaning import CleanResult, content_version
from aiwf_assets.cleaning import clean_interactions_day as clean_interactions
from aiwf_assets.cleaning import clean_orders_day as clean_orders
from aiwf_assets.cleaning import clean_reference_customers as clean_customers
from aiwf_assets.cleaning import clean_reference_exchange_rates as clean_rates
from aiwf_assets.cleaning import clean_reference_products as clean_products
from aiwf_assets.cleaning import clean_reference_promotion_plan as clean_promotion_plan
from aiwf_assets.cleaning import clean_reference_stores as clean_stores
from aiwf_assets.cleaning.audit import (
    OVERRIDE_TAG,
    GuardThresholds,
    PlausibilityThresholds,
    contract_finding,
    cross_day_finding,
    early_end_finding,
    early_end_inputs,
    ends_mid_record,
    is_overridden,
    order_hours,
    overridden_sources,
    price_findings,
    quarantine_finding,
    redelivery_finding,
    reference_finding,
    relinked_finding,
    repeated_finding,
    volume_finding,
)
from aiwf_assets.cleaning.clean import interaction_kind, no_reference
from aiwf_assets.cleaning.contracts import table_schema, validate_table
from aiwf_assets.cleaning.quarantine import by_day as quarantine_by_day
from aiwf_assets.cleaning.quarantine import by_reason as quarantine_by_reason
from aiwf_assets.cleaning.transforms import ACCOUNTING_SCHEMA
from aiwf_assets.day_versions import RECORDS_DAY_VERSIONS, day_materialization, records_own_events
from aiwf_assets.ingest.landing import combine_versions
from aiwf_assets.ingest.parse import refusal
from aiwf_assets.ingest.spec import SourcesConfig, SourceSpec
from aiwf_assets.io.parquet_store import ParquetStore
from aiwf_assets.io.warehouse import PARTITION_COLUMN, StagedWrite, Warehouse, staging_table
from aiwf_assets.parallel import prefetched
from aiwf_assets.progress import log_progress
from aiwf_assets.resources import (
    GuardsResource,
    PiiKeyResource,
    StorageResource,
    WarehouseResource,
    guards_resource,
)
from aiwf_assets.settings import Settings

OWNER = "team:data-platform"
# clean-2: key clashes quarantined; clean-3: a CRM customer on rows that differ only in
# e-mail, phone or loyalty id is one customer, e-mails compared in Unicode NFC, loyalty ids
# without spaces and dashes, lines of one order id that disagree on the order quarantined;
# clean-4: ids in scientific notation and ambiguous ints (1.000) quarantined, e-mails
# unwrapped (Name <addr>, mailto:), date-only times at noon UTC, the delivery day ending in
# the source's zone, return status marks in any case, JSON lists/objects as values refused;
# clean-5: ISO 8601 times without seconds, in the basic format or with a space before the
# offset read (they were quarantined as not a timestamp); with decimal "." a comma groups
# thousands (1,299.00), undeclared such values are refused naming what to declare
CLEAN_CODE_VERSION = "clean-5"
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
    "promotion_plan": ["campaign_code", "start_date"],
    "exchange_rates": ["date", "currency"],
}
LINEAGE_COLUMNS = ["source_file", "source_row"]

DESCRIPTIONS = {
    "orders": "One row per order from every sales channel (web, app, store), in EUR and UTC.",
    "order_lines": "One row per order line: product code, signed quantity, EUR amounts, promo.",
    "interactions": "Service tickets and web sessions, linked to customer_key where known.",
    "quarantine": "Every rejected daily row with its source file, row and reason(s).",
    "customers": "CRM customers, pseudonymised (no clear PII), one row per customer_key.",
    "customer_identity": "Identifier hash (email/phone/loyalty) -> customer_key, across channels.",
    "products": "ERP product catalog with canonical SKUs and EUR list prices.",
    "stores": "Store list.",
    "promotion_plan": (
        "The campaign calendar published ahead of time: code, publication day, planned days, "
        "discount and categories (the demand forecast's planned promotions)."
    ),
    "exchange_rates": "Dated exchange rates (a rate per currency and day) for order cleaning.",
    "reference_quarantine": "Rejected rows of the reference files with their reasons.",
}


@dataclass(frozen=True)
class Channels:
    """The declared sources and their daily channels, by the cleaned table they feed."""

    sources: SourcesConfig
    orders: list[str]
    interactions: list[str]

    @classmethod
    def of(cls, sources: SourcesConfig) -> "Channels":
        def daily(*contracts: str) -> list[str]:
            return [s.name for s in sources.by_contract(*contracts).values() if s.contract.daily]

        return cls(sources, daily("order_lines"), daily("tickets", "sessions"))

    def table_of(self, channel: str) -> str:
        return "order_lines" if channel in self.orders else "interactions"

    def key_group(self, channel: str) -> tuple[str, str]:
        """Which business keys a source's records have, as `delivered_keys` groups them
        (the orders' channel or the interactions' kind), and what one is called."""
        spec = self.sources[channel]
        if channel in self.orders:
            return spec.channel, "order"
        kind = interaction_kind(spec.contract.name)
        return kind, kind

    @property
    def rates(self) -> SourceSpec | None:
        """The dated rate file, when one is declared: order lines convert at their day's
        rate."""
        return self.sources.exchange_rates

    @property
    def order_references(self) -> list[str]:
        return ["customer_identity"] + (["exchange_rates"] if self.rates is not None else [])


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
    return in_step_check(
        "pandera_contract", asset=table, blocking=True,
        description=f"The pandera contract for cleaned.{table} holds on every written row.",
    )


def _accounting_check(table: str) -> dg.AssetCheckSpec:
    return in_step_check(
        "rows_add_up", asset=table, blocking=True,
        description=(
            "Per channel and day: rows in = cleaned + quarantined + duplicates removed, and "
            "the raw records cover every line counted in the landing file's bytes."
        ),
    )


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


def _broken_accounting(accounting: pl.DataFrame) -> pl.DataFrame:
    # rows: every raw row is cleaned, quarantined or a duplicate; lines: the raw records
    # cover every line counted in the landing file (null: raw predates line counts)
    return accounting.filter(
        (
            pl.col("rows_in")
            != pl.col("rows_cleaned") + pl.col("rows_quarantined") + pl.col("duplicates_removed")
        )
        | pl.col("lines_in_file").ne_missing(pl.col("lines_parsed"))
        | pl.col("lines_in_file").is_null()
    )


def accounting_findings(accounting: pl.DataFrame) -> list[str]:
    """rows_add_up as blocking findings of a staged day (empty when the counts add up)."""
    broken = _broken_accounting(accounting)
    return [f"rows_add_up: {_accounting_message(broken)}"] if broken.height else []


def accounting_result(table: str, accounting: pl.DataFrame) -> dg.AssetCheckResult:
    broken = _broken_accounting(accounting)
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
# Per source and day: records read, cleaned, quarantined, duplicates (ACCOUNTING_SCHEMA);
# published with the day, it is the history the volume guard compares a new file with.
FILE_ACCOUNTING = "file_accounting"


def _volume_guard(table: str, guards: GuardThresholds) -> dg.AssetCheckSpec:
    return in_step_check(
        "volume_guard", asset=table, blocking=True,
        description=(
            "Per source and day: records not far below the trailing median of the published"
            f" days (< {guards.min_volume_ratio:g} x by default, the `guards` resource's"
            " min_volume_ratio, and not Poisson noise), not"
            " empty or header-only, the file does not end mid-record, and a sales file's last"
            " order is not hours earlier than on the same weekday's published days"
            f" (> {guards.early_end_hours:g} h, early_end_hours, with orders missing beyond"
            " chance: an export run before the day ended), and the day does not quarantine"
            f" more than {guards.max_quarantine_share:.0%} of a source's rows for one reason"
            " (max_quarantine_share, beyond the source's usual share and chance: a changed"
            " export format), and not more than"
            f" {guards.max_cross_day_share:.0%} of a source's order, ticket or session ids"
            " were delivered on earlier days already (max_cross_day_share: another day's file"
            " under this day's name). Override"
            f" deliberately with the run tag {OVERRIDE_TAG}=<source,...>."
        ),
    )


def _plausibility_check(table: str, name: str, description: str) -> dg.AssetCheckSpec:
    return in_step_check(name, asset=table, blocking=False, description=description)


def build_clean_daily(
    channels: Channels, partitions: dg.DailyPartitionsDefinition, guards: GuardThresholds
) -> dg.AssetsDefinition:
    """The daily tables of every declared daily channel, on `partitions` (`guards`: the
    thresholds the descriptions quote; the `guards` resource holds the ones in force)."""
    orders, interactions = channels.orders, channels.interactions

    @dg.multi_asset(
        specs=[
            spec.merge_attributes(metadata={RECORDS_DAY_VERSIONS: True})
            for spec in (
                _spec("orders", [f"raw_{c}" for c in orders] + channels.order_references),
                _spec("order_lines", [f"raw_{c}" for c in orders] + channels.order_references),
                _spec("interactions", [f"raw_{c}" for c in interactions] + ["customer_identity"]),
                _spec("quarantine", [f"raw_{c}" for c in orders + interactions]),
            )
        ],
        check_specs=[
            *(_contract_check(t) for t in DAILY_TABLES),
            _accounting_check("order_lines"),
            _accounting_check("interactions"),
            _volume_guard("order_lines", guards),
            _volume_guard("interactions", guards),
            _plausibility_check("order_lines", "plausible_prices", "Unit prices within"
                                f" {PlausibilityThresholds().price_factor:g}x of the product's"
                                " list price (WARN: e.g. prices sent in cents)."),
            *(
                _plausibility_check(t, "repeated_records", "At most"
                                    f" {PlausibilityThresholds().max_repeated_share:.0%} of a"
                                    " file's records repeat an earlier identical record (WARN:"
                                    " e.g. every line sent twice).")
                for t in ("order_lines", "interactions")
            ),
        ],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        name="clean_daily",
    )
    def clean_daily(
        context: dg.AssetExecutionContext,
        storage: StorageResource,
        warehouse: WarehouseResource,
        pii: PiiKeyResource,
        guards: GuardsResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Clean every channel of each day in the run, one day at a time: stage, audit,
        publish."""
        with warehouse.get().session() as wh:  # one connection for the run's daily writes
            yield from _clean_days(
                context, storage.store(), wh, pii.key(), channels, thresholds_of(guards)
            )

    return clean_daily


@dataclass
class _DailyAudit:
    """What the run found, per check, across its days."""

    contract: dict[str, list[str]] = field(
        default_factory=lambda: {t: [] for t in DAILY_TABLES}
    )
    volume: dict[str, list[str]] = field(
        default_factory=lambda: {"order_lines": [], "interactions": []}
    )
    overridden: dict[str, list[str]] = field(
        default_factory=lambda: {"order_lines": [], "interactions": []}
    )
    accounting: dict[str, list[pl.DataFrame]] = field(
        default_factory=lambda: {"order_lines": [], "interactions": []}
    )
    prices: list[str] = field(default_factory=list)
    repeated: dict[str, list[str]] = field(
        default_factory=lambda: {"order_lines": [], "interactions": []}
    )
    rows_checked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DAILY_TABLES, 0))
    # sources of the current day whose file ends mid-record
    cut_short: set[str] = field(default_factory=set)
    # sources of the current day whose file was refused -> why (ingest.parse.refused_frame)
    refused: dict[str, str] = field(default_factory=dict)
    # lines converted at the constant rate although a dated rate file is declared
    rate_fallbacks: list[pl.DataFrame] = field(default_factory=list)


def run_token(run_id: str) -> str:
    """A short letters-and-digits token of a run id, for its staging tables."""
    return "".join(ch for ch in run_id if ch.isalnum())[:12] or "adhoc"


def reference_token(run_id: str, source: str) -> str:
    """The staging token of one reference source's step: every reference step stages a
    `reference_quarantine`, and steps of one run may run at once (multiprocess or k8s
    executor), so the source is part of the name."""
    return run_token(run_id) + "".join(ch for ch in source if ch.isalnum())


def _clean_days(
    context: dg.AssetExecutionContext, store: ParquetStore, wh: Warehouse, key: bytes,
    channels: Channels, thresholds: GuardThresholds,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    rates = channels.rates
    identity = wh.query(f"SELECT * FROM {required_table(wh, 'customer_identity')}")
    dated_rates = (
        wh.query(
            "SELECT date, currency, rate_to_eur FROM "
            + required_table(wh, "exchange_rates", f"{rates.name} is declared")
        )
        if rates is not None else None
    )
    overrides = overridden_sources(context.run.tags)
    token = run_token(context.run_id)
    staging = {t: staging_table(f"{SCHEMA}.{t}", token) for t in [*DAILY_TABLES, FILE_ACCOUNTING]}
    audit = _DailyAudit()
    products = (
        wh.query(f"SELECT sku, list_price FROM {SCHEMA}.products")
        if wh.table_exists(f"{SCHEMA}.products") else pl.DataFrame()
    )
    published: dict[str, dict[str, tuple[str, int]]] = {}  # day -> table -> (version, rows)
    reasons: dict[str, dict] = {}  # day -> the day's quarantined rows by reason
    held: dict[str, list[Finding]] = {}  # day -> blocking findings
    own_events = records_own_events(context)  # see day_versions.py
    days = [dt.date.fromisoformat(p) for p in context.partition_keys]
    # one day at a time, so a range run keeps a few days in memory, not the whole range: the
    # next day is read and cleaned (Polars, in one worker thread) while this one is
    # staged, audited and published (the warehouse, this thread: the one writer), in order
    cleaned = prefetched(
        lambda day: _clean_one_day(store, identity, key, day, channels, dated_rates), days,
        name="aiwf-clean",
    )
    try:
        cleaned_rows = 0
        for done, (partition, day, (tables, accounting, findings)) in enumerate(
            zip(context.partition_keys, days, cleaned, strict=True), 1
        ):
            audit.cut_short = findings.cut_short
            audit.refused = findings.refused
            if findings.rate_fallbacks is not None:
                audit.rate_fallbacks.append(findings.rate_fallbacks)
            for table, finding in findings.repeated:
                audit.repeated[table].append(finding)
            cleaned_rows += sum(tables[t].height for t in DAILY_TABLES)
            log_progress(context, "cleaned tables", done, len(context.partition_keys), cleaned_rows)
            for table in DAILY_TABLES:
                wh.stage(staging[table], _with_partition(tables[table], day))
            wh.stage(staging[FILE_ACCOUNTING], accounting)
            findings = _audit_day(
                wh, staging, day, accounting, audit, thresholds, overrides, products, channels
            )
            if findings:
                held[partition] = findings
                continue
            wh.publish(
                [
                    StagedWrite(f"{SCHEMA}.{t}", staging[t], (day,))
                    for t in [*DAILY_TABLES, FILE_ACCOUNTING]
                ]
            )
            published[partition] = {
                t: (_version(t, tables[t]), tables[t].height) for t in DAILY_TABLES
            }
            reasons[partition] = {"quarantined_by_reason": _reason_counts(tables["quarantine"])}
            if own_events or held:
                continue  # recorded day by day below
            for table, (version, rows) in published[partition].items():
                context.add_asset_metadata(
                    {"dagster/row_count": rows, "content_version": version},
                    asset_key=table, partition_key=partition,
                )
            context.add_asset_metadata(
                reasons[partition], asset_key="quarantine", partition_key=partition
            )
            if rates is not None:
                context.add_asset_metadata(
                    {"rate_fallbacks": _fallback_summary(audit.rate_fallbacks[-1:])},
                    asset_key="order_lines", partition_key=partition,
                )
    finally:
        cleaned.close()  # the days not consumed are cancelled, running ones awaited
        _drop_staging(context, wh, list(staging.values()))
    if held or own_events:
        # each published day with its own version: the days that passed when others were
        # held back (the run then fails), or every day when the run defers asset events
        for partition, tables_published in published.items():
            for table, (version, rows) in tables_published.items():
                metadata = {"dagster/row_count": rows, "content_version": version}
                if table == "quarantine":
                    metadata |= reasons[partition]
                context.log_event(
                    day_materialization(context, table, partition, version, metadata)
                )
    if not held:
        # in a deferred run Dagster records nothing for these (the days are recorded above)
        everything_quarantined = wh.query(
            f"SELECT partition_date, channel, reasons FROM {SCHEMA}.quarantine"
        )
        for table in DAILY_TABLES:
            yield dg.MaterializeResult(
                asset_key=table,
                data_version=dg.DataVersion(
                    combine_versions([published[p][table][0] for p in context.partition_keys])
                ),
                metadata={
                    "rows_in_run": sum(published[p][table][1] for p in published),
                    **(
                        quarantine_overview(everything_quarantined)
                        if table == "quarantine" else {}
                    ),
                    **(
                        {"rate_fallbacks": _fallback_summary(audit.rate_fallbacks)}
                        if table == "order_lines" and rates is not None else {}
                    ),
                },
            )
    yield from _daily_check_results(audit)
    if held:
        raise dg.Failure(
            description=held_back_message(held),
            metadata={"held_back_days": sorted(held), "published_days": sorted(published)},
        )


def _drop_staging(context: dg.AssetExecutionContext, wh: Warehouse, tables: list[str]) -> None:
    """Drop a run's staging tables. If that fails (e.g. the warehouse went away mid-run, which
    is then the run's error), the tables stay behind unread: nothing publishes from them."""
    try:
        wh.drop_tables(tables)
    except Exception as exc:  # noqa: BLE001 - never hide the run's own error behind this one
        context.log.warning(f"staging tables {', '.join(tables)} not dropped: {exc}")


@dataclass(frozen=True)
class Finding:
    """Why a day is held back. `source`: the landing source whose drop a run tag may accept
    (the volume guard, a file cut short); None for what no tag may publish (a failed
    contract, counts that do not add up)."""

    text: str
    source: str | None = None


def held_back_message(held: dict[str, list[Finding]]) -> str:
    """The run's failure: which days were held back, why, and what a user can do (the
    published days are kept)."""
    found = [f for day in held.values() for f in day]
    drops = sorted({f.source for f in found if f.source is not None})
    remedies = []
    if drops:
        remedies.append(
            f"a real drop is accepted with the run tag {OVERRIDE_TAG}={','.join(drops)}"
        )
    if any(f.source is None for f in found):
        remedies.append(
            "a failed contract or count cannot be overridden: correct the landing file"
            " and re-materialise the day"
        )
    lines = [
        f"{len(held)} day(s) held back, their published data unchanged ({'; '.join(remedies)}):"
    ]
    for day in sorted(held):
        lines += [f"- {day}: {finding.text}" for finding in held[day]]
    return "\n".join(lines)


def _fallback_summary(frames: list[pl.DataFrame]) -> dg.MetadataValue:
    """Which lines were converted at the constant rate for want of a dated one."""
    fallbacks = pl.concat(frames) if frames else pl.DataFrame()
    if fallbacks.is_empty():
        return dg.MetadataValue.md("none: every non-EUR line had a dated rate")
    return dg.MetadataValue.md(
        "Lines converted at the constant `currency_rates_to_eur` rate (no dated rate for"
        " their day and currency):\n\n"
        + _markdown_table(fallbacks.with_columns(pl.col("order_date").cast(pl.String)))
    )


@dataclass(frozen=True)
class _RawFindings:
    """What reading one day's raw files found: sources whose file ends mid-record, and
    (table, finding) for files whose records repeat; with a dated rate file, the lines
    converted at the constant rate (clean.RATE_FALLBACK_SCHEMA)."""

    cut_short: set[str]
    repeated: list[tuple[str, str]]
    rate_fallbacks: pl.DataFrame | None = None
    refused: dict[str, str] = field(default_factory=dict)  # source -> why its file was


def _clean_one_day(
    store: ParquetStore, identity: pl.DataFrame, key: bytes, day: dt.date,
    channels: Channels, dated_rates: pl.DataFrame | None = None,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame, _RawFindings]:
    """One day's raw files read and cleaned (pure: safe in a thread beside the writer)."""
    partition = day.isoformat()
    sources = channels.sources
    raw = {
        c: store.read(f"raw_{c}", partition) for c in channels.orders + channels.interactions
    }
    findings = _RawFindings(
        {c for c, frame in raw.items() if ends_mid_record(frame)}, [],
        refused={c: why for c, frame in raw.items() if (why := refusal(frame))},
    )
    for channel, frame in raw.items():
        repeated = repeated_finding(
            channel, frame, sources[channel].raw_columns, PlausibilityThresholds()
        )
        if repeated:
            findings.repeated.append((channels.table_of(channel), f"{partition}: {repeated}"))
    orders_result = clean_orders(
        {c: raw[c] for c in channels.orders}, identity, key, day, sources, dated_rates
    )
    interactions_result = clean_interactions(
        {c: raw[c] for c in channels.interactions}, identity, key, day, sources
    )
    tables = {
        **orders_result.tables,
        **interactions_result.tables,
        "quarantine": pl.concat(
            [orders_result.quarantine, interactions_result.quarantine], how="diagonal_relaxed"
        ),
    }
    accounting = pl.concat([orders_result.accounting, interactions_result.accounting])
    findings = dataclasses.replace(findings, rate_fallbacks=orders_result.rate_fallbacks)
    return tables, accounting, findings


def _audit_day(
    wh: Warehouse, staging: dict[str, str], day: dt.date, accounting: pl.DataFrame,
    audit: _DailyAudit, thresholds: GuardThresholds, overrides: frozenset[str],
    products: pl.DataFrame, channels: Channels,
) -> list[Finding]:
    """Every blocking check of one staged day; returns its blocking findings."""
    partition = day.isoformat()
    findings: list[Finding] = []
    today_keys: list[pl.DataFrame] = []
    for table in DAILY_TABLES:
        staged = _read_staged(
            wh, f"SELECT * FROM {staging[table]} WHERE {PARTITION_COLUMN} = ?", [day]
        )
        located = [
            contract_finding(table, staged, f)
            for f in validate_table(table, staged, sources=channels.sources)
        ]
        audit.contract[table] += [f"{partition}: {m}" for m in located]
        audit.rows_checked[table] += staged.height
        findings += [Finding(m) for m in located]
        if table == "quarantine":
            today_reasons = quarantine_by_reason(staged)
        if table in ("orders", "interactions"):
            today_keys.append(delivered_keys(table, staged))
        if table == "order_lines":
            today_hours = order_hours(staged)
            audit.prices += [
                f"{partition}: {f}"
                for f in price_findings(staged, products, PlausibilityThresholds())
            ]
    history, published, quarantined = _published_counts(wh, day, thresholds.window_days)
    weekday_hours = _same_weekday_order_hours(wh, day, thresholds.window_days)
    keys = pl.concat(today_keys).unique()
    elsewhere = first_deliveries(keys, _earlier_keys(wh, staging, day))
    for source in accounting.iter_rows(named=True):
        table = channels.table_of(source["channel"])
        counts = accounting.filter(pl.col("channel") == source["channel"])
        audit.accounting[table].append(counts)
        # a cleaning bug: never overridden
        findings += [Finding(m) for m in accounting_findings(counts)]
        group, noun = channels.key_group(source["channel"])
        cross_day = cross_day_finding(
            source["channel"], noun, keys.filter(pl.col("group") == group).height,
            elsewhere.filter(pl.col("group") == group).select("first", "keys").rows(),
            thresholds,
        )
        refused = audit.refused.get(source["channel"])
        guarded = [
            # a file that could not be read at all: the day waits for a corrected file; the
            # other guards would only describe its one quarantined row
            f"{source['channel']}: {refused}",
        ] if refused else [
            # first: another day's file under this name also reads as a re-delivery that
            # shrank or an export taken early, whose findings would mislead
            cross_day,
            volume_finding(
                source["channel"], source["rows_in"], history.get(source["channel"], []),
                thresholds, floor=1 if source["channel"] in channels.orders else 0,
                file=channels.sources[source["channel"]].landing_path(partition),
            ),
            (
                f"{source['channel']}: the file ends mid-record (its last line is cut off"
                " and unreadable): a truncated delivery?"
            ) if source["channel"] in audit.cut_short else None,
            None if cross_day else redelivery_finding(
                source["channel"], source["rows_in"], published.get(source["channel"]),
                thresholds,
            ),
            early_end_finding(
                source["channel"],
                *early_end_inputs(
                    today_hours, weekday_hours, channels.sources[source["channel"]].channel
                ),
                thresholds,
            ) if source["channel"] in channels.orders and not cross_day else None,
            quarantine_finding(
                source["channel"], source["rows_in"], source["rows_quarantined"],
                today_reasons.filter(pl.col("channel") == source["channel"])
                .select("reason", "rows").rows(),
                quarantined.get(source["channel"], (0, 0, 0)), thresholds,
            ),
        ]
        for finding in filter(None, guarded):
            if is_overridden(source["channel"], overrides):
                audit.overridden[table].append(f"{partition}: {finding}")
            else:
                audit.volume[table].append(f"{partition}: {finding}")
                findings.append(Finding(finding, source["channel"]))
    return findings


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




def _read_staged(wh: Warehouse, sql: str, params: list | None = None) -> pl.DataFrame:
    """Staged rows as the checks expect them: a DuckDB reader labels UTC instants with the
    session's zone name (e.g. Etc/UTC); the contracts want them labelled UTC."""
    frame = wh.query(sql, params)
    return frame.with_columns(
        pl.col(c).dt.convert_time_zone("UTC")
        for c, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    )


def _published_counts(
    wh: Warehouse, day: dt.date, window_days: int
) -> tuple[dict[str, list[int]], dict[str, int], dict[str, tuple[int, int, int]]]:
    """Records read per source, from one read of the file accounting: on its published days
    in the window before `day` (the volume guard's history), and on `day` itself if it was
    published already (the delivery a re-delivery replaces; none yet: absent); and per
    source its published days, rows in and rows quarantined in the window before `day`
    (the quarantine guard's history)."""
    table = f"{SCHEMA}.{FILE_ACCOUNTING}"
    if not wh.table_exists(table):
        return {}, {}, {}
    rows = wh.query(
        f"SELECT {PARTITION_COLUMN}, channel, rows_in, rows_quarantined FROM {table}"
        f" WHERE {PARTITION_COLUMN} <= ? AND {PARTITION_COLUMN} >= ?",
        [day, day - dt.timedelta(days=window_days)],
    )
    history: dict[str, list[int]] = {}
    published: dict[str, int] = {}
    quarantined: dict[str, tuple[int, int, int]] = {}
    for delivered, channel, records, rejected in rows.iter_rows():
        if delivered == day:
            published[channel] = int(records)
        else:
            history.setdefault(channel, []).append(int(records))
            days, rows_in, rows_quarantined = quarantined.get(channel, (0, 0, 0))
            quarantined[channel] = (
                days + 1, rows_in + int(records), rows_quarantined + int(rejected)
            )
    return history, published, quarantined


_KEY_COLUMNS = {"orders": ("channel", "order_id"), "interactions": ("kind", "interaction_id")}
_KEYS = pl.Schema({"group": pl.String(), "key": pl.String(), PARTITION_COLUMN: pl.Date()})


def delivered_keys(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """The business keys of a day's cleaned `orders` or `interactions` rows, by group (the
    orders' channel, the interactions' kind): what the cross-day guard compares."""
    group, key = _KEY_COLUMNS[table]
    return frame.select(
        pl.col(group).cast(pl.String).alias("group"), pl.col(key).cast(pl.String).alias("key")
    )


def first_deliveries(keys: pl.DataFrame, delivered: pl.DataFrame) -> pl.DataFrame:
    """Per group and day, how many of `keys` (group, key) were first delivered on that day
    among `delivered` (group, key, partition_date: earlier days' keys), as ISO days."""
    return (
        keys.join(delivered, on=["group", "key"], how="inner")
        .group_by("group", "key")
        .agg(first=pl.col(PARTITION_COLUMN).min())
        .group_by("group", "first")
        .agg(keys=pl.len())
        .with_columns(pl.col("first").dt.to_string())
        .sort("group", "first")
    )


def _earlier_keys(wh: Warehouse, staging: dict[str, str], day: dt.date) -> pl.DataFrame:
    """The keys of earlier days that the staged `day` delivers again (group, key,
    partition_date): published on an earlier day, or staged on an earlier day of this run (a
    range run's held days are not published, yet their files were delivered). Found in the
    warehouse, day by day: neither the history nor the run's days are held in memory."""
    frames = [pl.DataFrame(schema=_KEYS)]
    for table in ("orders", "interactions"):
        group, key = _KEY_COLUMNS[table]
        relation = f"{SCHEMA}.{table}"
        columns = f"{group}, {key}, {PARTITION_COLUMN}"
        others = f"SELECT {columns} FROM {staging[table]} WHERE {PARTITION_COLUMN} < ?"
        params: list[object] = [day]
        if wh.table_exists(relation):
            # earlier days only: the marts keep a key's earliest delivery, so a day whose keys
            # a later day holds (a catch-up dump, a copy published by override) is the original.
            # The day's keys as an array: Postgres then looks them up in the key index instead
            # of hashing every earlier day's rows (a join plans that scan at any history size)
            wh.ensure_index(relation, (key, group))
            others += (
                f" UNION ALL SELECT {columns} FROM {relation} WHERE {key} = ANY(ARRAY("
                f"SELECT {key} FROM {staging[table]} WHERE {PARTITION_COLUMN} = ?))"
                f" AND {PARTITION_COLUMN} < ?"
            )
            params += [day, day]
        found = wh.query(
            f"SELECT p.{group} AS \"group\", p.{key} AS key, p.{PARTITION_COLUMN}"
            f" FROM ({others}) p JOIN {staging[table]} s"
            f" ON p.{key} = s.{key} AND p.{group} = s.{group}"
            f" WHERE s.{PARTITION_COLUMN} = ?",
            [*params, day],
        )
        frames.append(found.select(pl.col(c).cast(t) for c, t in _KEYS.items()))
    return pl.concat(frames)


_ORDER_TIMES = {
    "channel": pl.String,
    PARTITION_COLUMN: pl.Date,
    "order_id": pl.String,
    "ordered_at": pl.Datetime("us", "UTC"),
}


def _same_weekday_order_hours(wh: Warehouse, day: dt.date, window_days: int) -> pl.DataFrame:
    """`audit.order_hours` of the published order lines delivered on the same weekday as
    `day` in the window before it (the early-end guard's history)."""
    table = f"{SCHEMA}.order_lines"
    days = [day - dt.timedelta(days=7 * k) for k in range(1, window_days // 7 + 1)]
    if not days or not wh.table_exists(table):
        return order_hours(pl.DataFrame(schema=_ORDER_TIMES))
    marks = ", ".join("?" for _ in days)
    # one row per order, its latest line: the guard takes each day's latest order and counts
    # orders after a time (an order counts if any of its lines does), so this is exact and
    # reads a fraction of the lines
    orders = _read_staged(
        wh,
        f"SELECT channel, {PARTITION_COLUMN}, order_id, max(ordered_at) AS ordered_at"
        f" FROM {table} WHERE {PARTITION_COLUMN} IN ({marks})"
        f" GROUP BY channel, {PARTITION_COLUMN}, order_id",
        days,
    )
    return order_hours(orders)


def _daily_check_results(audit: _DailyAudit) -> Iterator[dg.AssetCheckResult]:
    for table in DAILY_TABLES:
        yield contract_result(table, audit.contract[table], audit.rows_checked[table])
    for table, frames in audit.accounting.items():
        yield accounting_result(table, pl.concat([ACCOUNTING_SCHEMA.to_frame(), *frames]))
    for table, findings in audit.volume.items():
        yield dg.AssetCheckResult(
            asset_key=table,
            check_name="volume_guard",
            passed=not findings,
            metadata={
                "findings": _bullets(findings),
                "overridden": _bullets(audit.overridden[table]),
            },
        )
    yield _warnings("order_lines", "plausible_prices", audit.prices)
    for table, findings in audit.repeated.items():
        yield _warnings(table, "repeated_records", findings)


def _warnings(table: str, check: str, findings: list[str]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=table,
        check_name=check,
        passed=not findings,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"findings": _bullets(findings)},
    )


def _bullets(lines: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n".join(f"- {line}" for line in lines) if lines else "none")


def thresholds_of(guards: GuardsResource) -> GuardThresholds:
    """The guards in force for a run: the resource's values (settings or launchpad)."""
    return GuardThresholds(
        min_volume_ratio=guards.min_volume_ratio,
        window_days=guards.window_days,
        max_reference_shrink=guards.max_reference_shrink,
        early_end_hours=guards.early_end_hours,
        max_quarantine_share=guards.max_quarantine_share,
        max_cross_day_share=guards.max_cross_day_share,
    )


def guard_thresholds(settings: Settings) -> GuardThresholds:
    """The guards `settings` configure (the `guards` resource's defaults for a deployment)."""
    return thresholds_of(guards_resource(settings))


_REQUIRED_HINTS = {
    "customer_identity": (
        "daily cleaning links customers through it",
        "it builds from raw_customers; an empty or absent CRM file gives an empty table,"
        " which is enough",
    ),
    "exchange_rates": (
        "daily cleaning converts order lines at their day's rate from it",
        "it builds from the declared rate file",
    ),
}


def required_table(wh: Warehouse, table: str, why: str | None = None) -> str:
    """`cleaned.<table>`, or a failure that says which asset to materialise first."""
    relation = f"{SCHEMA}.{table}"
    if not wh.table_exists(relation):
        need, hint = _REQUIRED_HINTS.get(table, ("daily cleaning reads it", ""))
        raise dg.Failure(
            f"{relation} does not exist: {need}{f' ({why})' if why else ''}. "
            f"Materialise the reference asset {table} first"
            + (f" ({hint})." if hint else ".")
        )
    return relation


def _reason_counts(quarantine: pl.DataFrame) -> dg.MetadataValue:
    if quarantine.is_empty():
        return dg.MetadataValue.md("no rows quarantined")
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


def _reference_guard(table: str, guards: GuardThresholds) -> dg.AssetCheckSpec:
    return in_step_check(
        "reference_guard", asset=table, blocking=True,
        description=(
            "The new snapshot is not empty and has at most"
            f" {guards.max_reference_shrink:.0%} fewer rows than the published table (by"
            " default; the `guards` resource's max_reference_shrink)."
            " Override deliberately with the run tag"
            f" {OVERRIDE_TAG}=<source>."
        ),
    )


def _publish_reference(
    context: dg.AssetExecutionContext, wh: Warehouse, source: str, result: CleanResult,
    thresholds: GuardThresholds, sources: SourcesConfig,
    *, switched_off: bool = False, strict: bool = False,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Stage a reference file's tables (and its quarantine rows), audit them, publish them
    together in one transaction; a blocking finding leaves every published table as it was.

    switched_off: the source is switched off in the sources (it never delivers), so its
    empty tables are what is meant, not a drop. strict: a rejected row holds the whole
    file back (a rate file with a bad row must not quietly lose that day's rate)."""
    overridden = is_overridden(source, overridden_sources(context.run.tags))
    tables = result.tables
    token = reference_token(context.run_id, source)
    staging = {
        t: staging_table(f"{SCHEMA}.{t}", token) for t in [*tables, "reference_quarantine"]
    }
    contract: dict[str, list[str]] = {}
    guard: dict[str, str | None] = {}
    try:
        for table, frame in tables.items():
            wh.stage(staging[table], frame)
        wh.stage(staging["reference_quarantine"], result.quarantine)
        for table in tables:
            staged = _read_staged(wh, f"SELECT * FROM {staging[table]}")
            contract[table] = [
                contract_finding(table, staged, f)
                for f in validate_table(table, staged, sources=sources)
            ]
            guard[table] = None if switched_off else reference_finding(
                f"{source} -> {SCHEMA}.{table}", staged.height,
                _published_rows(wh, f"{SCHEMA}.{table}"), thresholds,
            )
        findings = [f for fs in contract.values() for f in fs]
        if strict:
            findings += rejected_rows(result.quarantine)
        if not overridden:
            findings += [f for f in guard.values() if f]
        if not findings:
            wh.publish(
                [StagedWrite(f"{SCHEMA}.{t}", staging[t]) for t in tables]
                + [
                    StagedWrite(
                        f"{SCHEMA}.reference_quarantine", staging["reference_quarantine"],
                        (source,), "channel",
                    )
                ]
            )
    finally:
        _drop_staging(context, wh, list(staging.values()))
    if not findings:
        for table, frame in tables.items():
            yield dg.MaterializeResult(
                asset_key=table,
                data_version=dg.DataVersion(_version(table, frame)),
                metadata={"dagster/row_count": frame.height},
            )
    for table, frame in tables.items():
        yield contract_result(table, contract[table], frame.height)
        yield dg.AssetCheckResult(
            asset_key=table,
            check_name="reference_guard",
            passed=guard[table] is None or overridden,
            metadata={
                "finding": guard[table] or "none",
                "overridden": overridden and guard[table] is not None,
            },
        )
    if findings:
        raise dg.Failure(
            description=(
                f"reference file {source} held back, the published {', '.join(tables)}"
                f" unchanged (override a real drop with the run tag {OVERRIDE_TAG}={source}):\n"
                + "\n".join(f"- {f}" for f in findings)
            )
        )


def rejected_rows(quarantine: pl.DataFrame, limit: int = 20) -> list[str]:
    """A strict reference file's rejected rows as findings: file, row (and line of a CSV
    with a header) and the column's reason, e.g.
    `reference/rates.csv row 3 (line 4): rate_to_eur: must be > 0 (-1.1)`."""
    out = []
    for r in quarantine.sort("source_row").head(limit).iter_rows(named=True):
        row = r["source_row"]
        line = f" (line {row + 1})" if str(r["source_file"]).endswith(".csv") else ""
        out.append(f"{r['source_file']} row {row}{line}: {r['reasons']}")
    if quarantine.height > limit:
        out.append(f"... and {quarantine.height - limit} more rejected row(s)")
    return out


def _published_rows(wh: Warehouse, table: str) -> int | None:
    if not wh.table_exists(table):
        return None
    return int(wh.query(f"SELECT count(*) AS n FROM {table}")["n"][0])


def _raw_dep(source: str, sources: SourcesConfig) -> list[str]:
    """The raw asset a reference table builds from; none when the source is switched off."""
    return [f"raw_{source}"] if source in sources.sources else []


def build_clean_customers(
    sources: SourcesConfig, guards: GuardThresholds
) -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=[
            _spec("customers", _raw_dep("customers", sources)),
            _spec("customer_identity", _raw_dep("customers", sources)),
        ],
        check_specs=[
            _contract_check("customers"),
            _contract_check("customer_identity"),
            _reference_guard("customers", guards),
            _reference_guard("customer_identity", guards),
            in_step_check(
                HISTORY_LINKED, asset="customer_identity", blocking=False,
                description=(
                    "Warns when published orders or interactions carry the key of an"
                    " identifier (a guest's e-mail, an unknown card) that this CRM snapshot"
                    " links to a customer: her history stays split between two keys until"
                    " those days are cleaned again (the finding names the backfill)."
                ),
            ),
        ],
        name="clean_customers",
    )
    def clean_customers_asset(
        context: dg.AssetExecutionContext,
        storage: StorageResource,
        warehouse: WarehouseResource,
        pii: PiiKeyResource,
        guards: GuardsResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """CRM customers pseudonymised, and the identity map that links channels to one customer."""
        if "customers" not in sources.sources:  # switched off: no CRM, nobody is known
            result = no_reference("customers", "customer_identity")
        else:
            result = clean_customers(
                storage.store().read("raw_customers"), pii.key(), sources["customers"]
            )
        wh = warehouse.get()
        yield from _publish_reference(
            context, wh, "customers", result, thresholds_of(guards), sources,
            switched_off="customers" not in sources.sources,
        )
        days = _relinked_days(wh)  # after publishing: the snapshot now in force
        finding = relinked_finding(days)
        yield dg.AssetCheckResult(
            asset_key="customer_identity", check_name=HISTORY_LINKED, passed=finding is None,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "finding": finding or "none",
                "records": sum(n for _, n in days),
                "days": len(days),
            },
        )

    return clean_customers_asset


HISTORY_LINKED = "history_linked"


def _relinked_days(wh: Warehouse) -> list[tuple[str, int]]:
    """(delivery day, records) of published orders and interactions keyed by an identifier's
    own key (its hash's first 16 characters) that `customer_identity` now links to a CRM
    customer: see `audit.relinked_finding`."""
    identity = f"{SCHEMA}.customer_identity"
    tables = [t for t in ("orders", "interactions") if wh.table_exists(f"{SCHEMA}.{t}")]
    if not tables or not wh.table_exists(identity):
        return []
    keyed = " UNION ALL ".join(
        f"SELECT {PARTITION_COLUMN}, customer_key FROM {SCHEMA}.{t}" for t in tables
    )
    found = wh.query(
        f"SELECT r.{PARTITION_COLUMN} AS day, count(*) AS n FROM ({keyed}) r"
        f" JOIN (SELECT DISTINCT substr(identifier_hash, 1, 16) AS own_key FROM {identity}"
        "  WHERE customer_key <> substr(identifier_hash, 1, 16)) i"
        f" ON r.customer_key = i.own_key GROUP BY r.{PARTITION_COLUMN} ORDER BY 1"
    )
    return [(day.isoformat(), int(n)) for day, n in found.iter_rows()]


def build_single_reference(
    name: str, cleaner, sources: SourcesConfig, guards: GuardThresholds,
    *, source: str | None = None, strict: bool = False,
) -> dg.AssetsDefinition:
    source = source or name

    @dg.multi_asset(
        specs=[_spec(name, _raw_dep(source, sources))],
        check_specs=[_contract_check(name), _reference_guard(name, guards)],
        name=f"clean_{name}",
    )
    def _asset(
        context: dg.AssetExecutionContext,
        storage: StorageResource,
        warehouse: WarehouseResource,
        guards: GuardsResource,
    ):
        off = source not in sources.sources
        result = (
            no_reference(name) if off
            else cleaner(storage.store().read(f"raw_{source}"), sources[source])
        )
        yield from _publish_reference(
            context, warehouse.get(), source, result, thresholds_of(guards), sources,
            switched_off=off, strict=strict,
        )

    return _asset


def build_cleaning_definitions(
    sources: SourcesConfig,
    partitions: dg.DailyPartitionsDefinition,
    guards: GuardThresholds | None = None,
) -> dg.Definitions:
    """The reference tables and the daily tables of the declared sources, daily ones on
    `partitions`. `guards` are quoted in the checks' descriptions; at run time the checks
    use the `guards` resource (the same values unless a launchpad run overrides them)."""
    guards = guards or GuardThresholds()
    rates = sources.exchange_rates
    return dg.Definitions(
        assets=[
            build_clean_customers(sources, guards),
            build_single_reference("products", clean_products, sources, guards),
            build_single_reference("stores", clean_stores, sources, guards),
            build_single_reference("promotion_plan", clean_promotion_plan, sources, guards),
            build_clean_daily(Channels.of(sources), partitions, guards),
            # only when a rate file is declared; a bad row holds the whole file back
            *(
                [
                    build_single_reference(
                        "exchange_rates", clean_rates, sources, guards,
                        source=rates.name, strict=True,
                    )
                ]
                if rates is not None else []
            ),
        ]
    )
