"""Building blocks of cleaning: one source's raw frame -> valid rows, quarantine, accounting.

The order of steps is the accounting: every raw row ends in exactly one of
quarantine (unreadable, invalid, or one of several different records under one
business key), duplicates (exact copies of a kept row) or the cleaned rows.
Nothing depends on the order of rows in the file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from aiwf_assets.cleaning.pii import (
    hmac_series,
    key_of,
    mask_json_fields,
    normaliser,
    redact_text,
)
from aiwf_assets.cleaning.rules import (
    REASONS,
    cast_columns,
    contract_rules,
    drop_helpers,
    find_failures,
    rule_checks,
)
from aiwf_assets.ingest.parse import LINEAGE_SCHEMA
from aiwf_assets.ingest.spec import PiiKind, SourceSpec

QUARANTINE_SCHEMA = pl.Schema(
    {
        "partition_date": pl.Date(),
        "channel": pl.String(),
        "source_file": pl.String(),
        "source_row": pl.Int64(),
        "reasons": pl.String(),
        "record": pl.String(),
    }
)
ACCOUNTING_SCHEMA = pl.Schema(
    {
        "channel": pl.String(),
        "partition_date": pl.Date(),
        "rows_in": pl.Int64(),
        "rows_cleaned": pl.Int64(),
        "rows_quarantined": pl.Int64(),
        "duplicates_removed": pl.Int64(),
        # records of the landing file counted from its bytes (lines; Parquet rows), and
        # the lines the parsed records cover: equal unless the parser swallowed lines
        "lines_in_file": pl.Int64(),
        "lines_parsed": pl.Int64(),
    }
)
IDENTITY_SCHEMA = pl.Schema(
    {"identifier_hash": pl.String(), "identifier_kind": pl.String(), "customer_key": pl.String()}
)
# Where a row came from, not what it says: never part of a content version.
LINEAGE_COLUMNS = ("_source_file", "_source_row", "source_file", "source_row")
_WITHHELD = "<withheld: this export carries names>"
_ROW_ID = "__row_id"  # a readable row's position, to find its raw text again


class AccountingError(AssertionError):
    """Rows were lost or double counted: a bug in cleaning, never a data problem."""


@dataclass(frozen=True)
class CleanResult:
    """Cleaned tables, the rows rejected on the way, and how every input row was used."""

    tables: dict[str, pl.DataFrame]
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA
    accounting: pl.DataFrame  # ACCOUNTING_SCHEMA, one row per source
    # order days only, when a dated rate file is declared: lines at the constant rate
    rate_fallbacks: pl.DataFrame | None = None  # clean.RATE_FALLBACK_SCHEMA

    def __post_init__(self) -> None:
        broken = self.accounting.filter(
            pl.col("rows_in")
            != pl.col("rows_cleaned") + pl.col("rows_quarantined") + pl.col("duplicates_removed")
        )
        if not broken.is_empty():
            raise AccountingError(f"row accounting does not add up: {broken.to_dicts()}")


@dataclass(frozen=True)
class SourceOutcome:
    """One source after validation and deduplication, before standardisation.

    `valid` has typed contract columns (PII normalised, still clear: callers hash
    or drop them) and the lineage columns.
    """

    valid: pl.DataFrame
    quarantine: pl.DataFrame
    accounting: pl.DataFrame


def clean_source(
    raw: pl.DataFrame,
    spec: SourceSpec,
    key: bytes,
    *,
    partition_date: dt.date | None,
    currency_rates: Mapping[str, float] | None = None,
) -> SourceOutcome:
    """Validate, quarantine and deduplicate one source's raw frame."""
    raw = conform_raw(raw, spec).sort("_source_row", maintain_order=True)
    unreadable_mask = pl.col("_parse_error").is_not_null()
    unreadable = raw.filter(unreadable_mask)
    readable = raw.filter(~unreadable_mask).with_row_index(_ROW_ID)

    pii = {c: k for c, k in spec.contract.pii.items() if c in spec.raw_columns}
    typed, checks = cast_columns(readable, spec)
    typed = typed.with_columns(
        normaliser(kind, spec.phone_region)(pl.col(col)).alias(col) for col, kind in pii.items()
    )
    rules = contract_rules(spec, partition_date=partition_date, currency_rates=currency_rates)
    failed, reasons = find_failures(typed, checks + rule_checks(typed, rules))
    valid = drop_helpers(typed.filter(~failed))

    # Exact duplicates: the same values after cleaning (so a re-delivery differing only
    # in whitespace or case counts too); lineage is not compared, line positions are
    # (two equal lines of one order are two lines). Which copy stays does not matter.
    before = valid.height
    valid = valid.unique(subset=list(spec.raw_columns), keep="first", maintain_order=True)
    duplicates = before - valid.height
    # Different records under one business key: which is right cannot be told (and
    # keeping the first would depend on the file's order), so none is kept. Rows that
    # differ only in multi-valued columns (a customer's second e-mail) are one record:
    # all of them stay, and the caller folds them into one.
    key_columns = list(spec.contract.key)
    versions = record_versions(valid, spec).over(key_columns).alias("versions")
    clashing = valid.select(versions > 1).to_series()
    clashes = valid.filter(clashing).select(_ROW_ID, versions)
    valid = valid.filter(~clashing)
    clash_reason = pl.format(
        f"{', '.join(key_columns)}: {{}} different records share this key "
        "(re-delivered with changes?); none is kept",
        pl.col("versions"),
    )
    # Lines of one order that disagree on the order (store, customer, time): two orders
    # under one id (tills numbering receipts per store, ids a spreadsheet rounded to
    # 1.23457E+11). Which line is whose cannot be told, so none of the order's lines is kept.
    split = split_orders(valid, spec)
    valid = valid.join(split, on=_ROW_ID, how="anti")
    # An order checked against its stated total is published whole or not at all.
    short = short_orders(typed, failed, [clashes, split], valid, spec)
    valid = valid.join(short, on=_ROW_ID, how="anti").drop(_ROW_ID)

    rejected = pl.concat(
        [
            # a parse error may quote what a field held (an address in the Total column)
            unreadable.with_columns(
                (pl.lit("record: ") + redact_text(pl.col("_parse_error"))).alias(REASONS)
            ),
            readable.filter(failed).with_columns(reasons).drop(_ROW_ID),
            readable.join(clashes, on=_ROW_ID)
            .with_columns(clash_reason.alias(REASONS))
            .drop(_ROW_ID, "versions"),
            readable.join(split, on=_ROW_ID).drop(_ROW_ID),
            readable.join(short, on=_ROW_ID).drop(_ROW_ID),
        ]
    ).sort("_source_row", maintain_order=True)
    quarantine = quarantine_rows(rejected, spec, key, partition_date)
    accounting = pl.DataFrame(
        [
            {
                "channel": spec.name,
                "partition_date": partition_date,
                "rows_in": raw.height,
                "rows_cleaned": valid.height,
                "rows_quarantined": quarantine.height,
                "duplicates_removed": duplicates,
                **physical_lines(raw),
            }
        ],
        schema=ACCOUNTING_SCHEMA,
    )
    return SourceOutcome(valid, quarantine, accounting)


# Lines of one order further apart in time than this are not one order (a receipt's lines
# may carry their own scan times, seconds or minutes apart).
ORDER_TIME_SPAN = dt.timedelta(hours=1)


def split_orders(valid: pl.DataFrame, spec: SourceSpec) -> pl.DataFrame:
    """(row id, reason) of every line of each order whose lines disagree on an order-level
    column (`Contract.order_level`): more than one value besides empty ones (an export may
    fill them on the first line only), or, for timestamps, lines more than ORDER_TIME_SPAN
    apart."""
    order_key = spec.contract.order_key
    columns = [c for c in spec.contract.order_level if c in valid.columns]
    if order_key is None or order_key not in valid.columns or not columns or valid.is_empty():
        return pl.DataFrame(schema={_ROW_ID: valid.schema[_ROW_ID], REASONS: pl.String})

    def disagrees(column: str) -> pl.Expr:
        values = pl.col(column)
        if valid.schema[column].is_temporal():
            return (values.max() - values.min()) > ORDER_TIME_SPAN
        return values.drop_nulls().n_unique() > 1

    per_order = valid.group_by(order_key).agg(disagrees(c).alias(c) for c in columns)
    named = pl.concat_str(
        [pl.when(pl.col(c)).then(pl.lit(c)) for c in columns], separator=", ", ignore_nulls=True
    )
    split = per_order.filter(pl.any_horizontal(columns)).select(
        order_key,
        pl.format(
            f"{order_key}: its lines disagree on {{}} (two orders under one id?); none is kept",
            named,
        ).alias(REASONS),
    )
    return valid.join(split, on=order_key).select(_ROW_ID, REASONS)


def short_orders(
    typed: pl.DataFrame, failed: pl.Series, rejected: list[pl.DataFrame], valid: pl.DataFrame,
    spec: SourceSpec,
) -> pl.DataFrame:
    """(row id, reason) of the valid lines of each order that lost a line with money to the
    quarantine (the `typed` rows that `failed` their rules, or whose row ids `rejected`
    lists: key clashes, split orders), for a source whose orders are checked against the
    total its export states (`order_total`): published without that line, the order would
    not add up to it. A rejected line whose quantity and price read and make 0 (a free gift
    refused for its 0.00 price where the source does not declare `free_lines`) takes no
    money away and holds nothing back. Other sources:
    nothing is looked at."""
    empty = pl.DataFrame(schema={_ROW_ID: valid.schema[_ROW_ID], REASONS: pl.String})
    if spec.order_total is None or valid.is_empty():
        return empty
    ids = pl.concat([typed.filter(failed).select(_ROW_ID), *(r.select(_ROW_ID) for r in rejected)])
    rejected_rows = typed.join(ids, on=_ROW_ID)
    if rejected_rows.is_empty():
        return empty
    money = pl.col("quantity") * pl.col("unit_price")
    lost = (
        rejected_rows.filter(money.is_null() | (money != 0))
        .group_by("order_id")
        .agg(pl.col("_source_row").unique().sort().cast(pl.String).str.join(", ").alias("rows"))
    )
    return valid.join(lost, on="order_id").select(
        _ROW_ID,
        pl.format(
            "order_total: a line of the order is quarantined, so the rest would not add up to its "
            f"{spec.order_total}; none of its lines is kept (quarantined: row{{}})",
            pl.when(pl.col("rows").str.contains(",")).then(pl.lit("s ")).otherwise(pl.lit(" "))
            + pl.col("rows"),
        ).alias(REASONS),
    )


def record_versions(valid: pl.DataFrame, spec: SourceSpec) -> pl.Expr:
    """How many different records a group of rows holds (use with `.over(key)`), after
    exact duplicates are gone: every row, unless the contract has multi-valued columns,
    which do not make a row another record."""
    several = set(spec.contract.multi_valued)
    if not several & set(valid.columns):
        return pl.len()
    rest = [c for c in spec.raw_columns if c not in several and c in valid.columns]
    return pl.struct(rest).n_unique()


def physical_lines(raw: pl.DataFrame) -> dict[str, int | None]:
    """lines_in_file (counted from the bytes at ingestion) and lines_parsed (the lines
    the raw records span, each record once: exploded order lines share theirs).

    A raw partition written before line counts existed has neither (None).
    """
    if raw.is_empty():
        return {"lines_in_file": 0, "lines_parsed": 0}
    spans = raw.group_by("_source_row").agg(pl.col("_source_lines").first())
    return {
        "lines_in_file": raw.get_column("_file_records").first(),
        "lines_parsed": spans.get_column("_source_lines").sum()
        if spans.get_column("_source_lines").null_count() == 0
        else None,
    }


def conform_raw(raw: pl.DataFrame, spec: SourceSpec) -> pl.DataFrame:
    """The raw columns of `spec` as text plus lineage; columns absent from `raw` are null.

    Raw partitions written before a mapping change lack its new columns; for
    cleaning that is the same as a file without them.
    """
    if "_source_row" not in raw.columns:
        raise ValueError(
            f"raw frame for {spec.name} has no lineage columns: pass the output of parse_landing"
        )
    wanted = {**{c: pl.String() for c in spec.raw_columns}, **LINEAGE_SCHEMA}
    return raw.select(
        (pl.col(c) if c in raw.columns else pl.lit(None)).cast(dtype).alias(c)
        for c, dtype in wanted.items()
    )


# --------------------------------------------------------------------------- quarantine


def quarantine_rows(
    rejected: pl.DataFrame, spec: SourceSpec, key: bytes, partition_date: dt.date | None
) -> pl.DataFrame:
    """Quarantine rows with `record`: the raw row as JSON, PII hashed, free text redacted.

    For an unreadable record, `record` holds its text instead (`{"_raw_record": ...}`).
    """
    if rejected.is_empty():
        return QUARANTINE_SCHEMA.to_frame()
    pii = {c: k for c, k in spec.contract.pii.items() if c in spec.raw_columns}
    fields = pl.struct(
        _pii_hash(rejected, col, pii[col], key, spec.phone_region).alias(f"{col}_hmac")
        if col in pii
        else redact_text(pl.col(col)).alias(col)
        for col in spec.raw_columns
    )
    # names have no pattern to mask, so text from a name-bearing export is not kept at all
    has_names = "name" in spec.contract.pii.values()
    # in an unreadable JSON record the PII fields are found by their source keys
    pii_keys = [
        path.rsplit(".", 1)[-1]
        for column in spec.all_columns if column.name in spec.contract.pii
        for path in column.source
    ]
    text = (
        pl.lit(_WITHHELD) if has_names
        else redact_text(mask_json_fields(pl.col("_raw_record"), pii_keys))
    )
    record = (
        pl.when(pl.col("_raw_record").is_not_null())
        .then(pl.struct(text.alias("_raw_record")).struct.json_encode())
        .otherwise(fields.struct.json_encode())
    )
    return rejected.select(
        pl.lit(partition_date, pl.Date).alias("partition_date"),
        pl.lit(spec.name).alias("channel"),
        pl.col("_source_file").alias("source_file"),
        pl.col("_source_row").alias("source_row"),
        pl.col(REASONS).alias("reasons"),
        record.alias("record"),
    )


def _pii_hash(
    frame: pl.DataFrame, col: str, kind: PiiKind, key: bytes, phone_region: str | None
) -> pl.Expr:
    normalised = frame.select(
        normaliser(kind, phone_region)(pl.col(col).str.strip_chars())
    ).to_series()
    return pl.lit(hmac_series(normalised, f"{kind}:", key))


# --------------------------------------------------------------------------- identity


def identifier_hashes(
    frame: pl.DataFrame, identifiers: Mapping[str, PiiKind], key: bytes
) -> dict[str, pl.Series]:
    """HMAC of each (already normalised) identifier column, by column name."""
    return {
        col: hmac_series(frame.get_column(col), f"{kind}:", key)
        for col, kind in identifiers.items()
        if col in frame.columns
    }


def known_identities(identity: pl.DataFrame, hashes: Iterable[pl.Series]) -> pl.DataFrame:
    """The rows of `identity` for these identifier hashes, typed, one per hash (the first).

    One pass over the (large) identity table; lookups then run against the small result.
    """
    seen = [h.drop_nulls() for h in hashes]
    wanted = pl.concat(seen).unique() if seen else pl.Series([], dtype=pl.String)
    # identity comes from the warehouse: an empty table may arrive untyped
    return (
        identity.lazy()
        .select(pl.col("identifier_hash").cast(pl.String), pl.col("customer_key").cast(pl.String))
        .filter(pl.col("identifier_hash").is_in(wanted.implode()))
        .filter(pl.col("identifier_hash").is_first_distinct())
        .collect()
    )


def resolve_customer_keys(
    frame: pl.DataFrame,
    identifiers: Mapping[str, PiiKind],
    identity: pl.DataFrame,
    key: bytes,
    *,
    hashes: Mapping[str, pl.Series] | None = None,
) -> pl.Series:
    """customer_key per row: the CRM customer of the first identifier the CRM knows, else
    the key of the first identifier present, else null (anonymous).

    `identifiers` is in priority order, e.g. email before phone. `hashes`: the
    `identifier_hashes` of `frame` if the caller has them already.
    """
    if hashes is None:
        hashes = identifier_hashes(frame, identifiers, key)
    if not hashes:
        return pl.Series("customer_key", [None] * frame.height, dtype=pl.String)
    known = known_identities(identity, hashes.values()).lazy()
    n = len(hashes)
    lookups = pl.DataFrame({f"h{i}": h for i, h in enumerate(hashes.values())}).lazy()
    for i in range(n):
        lookups = lookups.join(
            known.rename({"identifier_hash": f"h{i}", "customer_key": f"k{i}"}),
            on=f"h{i}",
            how="left",
            maintain_order="left",
        )
    return (
        lookups.select(
            pl.coalesce(
                *(pl.col(f"k{i}") for i in range(n)), *(key_of(pl.col(f"h{i}")) for i in range(n))
            ).alias("customer_key")
        )
        .collect()
        .to_series()
    )


# --------------------------------------------------------------------------- versions


def content_version(
    df: pl.DataFrame, key_columns: Sequence[str], ignore: Sequence[str] = ()
) -> str:
    """sha256 of a frame's content, independent of row order, whitespace and lineage.

    String values are stripped and lineage columns (LINEAGE_COLUMNS and `ignore`)
    dropped; each row is then reduced to a 128-bit digest (two fixed-seed
    `hash_rows`, deterministic across processes) and the sorted digests are hashed
    together with the schema. Sorting digests instead of whole rows makes the
    version a function of the multiset of rows without ordering wide frames.
    Polars guarantees `hash_rows` only within one Polars version: an upgrade may
    change versions once (a re-materialisation, never a missed change).
    `key_columns` must be present (a guard against versioning the wrong frame).
    """
    dropped = set(ignore) | set(LINEAGE_COLUMNS)
    columns = sorted(c for c in df.columns if c not in dropped)
    missing = [k for k in key_columns if k not in columns]
    if missing:
        raise ValueError(f"content_version: key column(s) {missing} not in the frame")
    frame = df.select(columns).with_columns(pl.col(pl.String).str.strip_chars())
    header = repr([(c, str(t)) for c, t in frame.schema.items()]).encode()
    digest = hashlib.sha256(header + b"\n" + str(frame.height).encode() + b"\n")
    if columns and frame.height:
        rows = pl.DataFrame({"a": frame.hash_rows(seed=0), "b": frame.hash_rows(seed=1)})
        digest.update(rows.sort("a", "b").to_numpy().tobytes())
    return digest.hexdigest()
