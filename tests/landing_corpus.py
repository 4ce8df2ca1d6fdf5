"""The generator's own landing files, split into records, rewritten and cleaned (tests only).

Used by the row-order property tests and the hostile-input corpus: a small
dataset with faults is generated under tmp_path, each file is split into its
records (CSV/JSONL lines, Parquet rows) so a test can reorder, repeat or break
them, and `clean_file` runs a rewritten file through parse_landing and the
cleaning functions exactly as the raw and cleaned assets do.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from aiwf_assets.cleaning import (
    CleanResult,
    clean_interactions_day,
    clean_orders_day,
    clean_reference_customers,
    clean_reference_products,
    clean_reference_promotion_plan,
    clean_reference_stores,
    content_version,
)
from aiwf_assets.cleaning.assets import LINEAGE_COLUMNS, TABLE_KEYS
from aiwf_assets.generator.core import generate
from aiwf_assets.ingest.parse import parse_landing
from aiwf_assets.ingest.spec import SourceSpec, load_sources

KEY = b"corpus-pii-key"
SOURCES = load_sources()
DAILY = tuple(name for name, spec in SOURCES.sources.items() if spec.contract.daily)
REFERENCE = tuple(name for name, spec in SOURCES.sources.items() if not spec.contract.daily)
# With seed 11 over 8 days, 2026-01-02 holds re-sent orders and malformed rows, 2026-01-08
# exact row copies and future dates (truth/faults.json of the generated home says so).
FIRST_DAY = "2026-01-01"
FAULTY_DAYS = ("2026-01-02", "2026-01-08")


def generate_home(root: Path) -> Path:
    generate(root, seed=11, scale=0.2, days=8, faults=("all",))
    return root / "landing"


@dataclass(frozen=True)
class LandingFile:
    """One landing file as a header and records that can be reordered and rendered back."""

    spec: SourceSpec
    header: bytes  # CSV header line with its newline; b"" for JSONL and Parquet
    records: tuple[bytes, ...]  # CSV/JSONL lines with their newline
    table: pa.Table | None = None  # Parquet: the rows

    @classmethod
    def read(cls, landing: Path, name: str, day: str | None = None) -> LandingFile:
        spec = SOURCES[name]
        data = (landing / spec.landing_path(day)).read_bytes()
        if spec.format == "parquet":
            return cls(spec, b"", (), pq.read_table(pa.BufferReader(data)))
        lines = data.splitlines(keepends=True)
        if spec.format == "csv":
            return cls(spec, lines[0], tuple(lines[1:]))
        return cls(spec, b"", tuple(lines))

    def __len__(self) -> int:
        return self.table.num_rows if self.table is not None else len(self.records)

    def render(self, order: Sequence[int] | None = None) -> bytes:
        """The file with its records in `order` (indices may repeat or be left out)."""
        order = range(len(self)) if order is None else order
        if self.table is not None:
            buffer = io.BytesIO()
            pq.write_table(self.table.take(pa.array(order, pa.int64())), buffer)
            return buffer.getvalue()
        return self.header + b"".join(self.records[i] for i in order)

    def key_of(self, index: int) -> str | None:
        """The value of the record's first business-key column (order id, ticket id, ...)."""
        field = self.spec.column(self.spec.contract.key[0]).source[0]
        if self.table is not None:
            return self.table.column(field)[index].as_py()
        text = self.records[index].decode()
        try:
            if self.spec.format == "csv":
                header = next(csv.reader([self.header.decode()]))
                return dict(zip(header, next(csv.reader([text])), strict=False)).get(field)
            return json.loads(text).get(field)
        except (json.JSONDecodeError, AttributeError):
            return None


def clean_file(
    name: str, data: bytes, day: str | None, identity: pl.DataFrame
) -> CleanResult:
    """Parse one landing file and clean it as the daily or reference asset would."""
    spec = SOURCES[name]
    raw = parse_landing(data, spec, spec.landing_path(day)).frame
    if name == "customers":
        return clean_reference_customers(raw, KEY, spec)
    if name == "products":
        return clean_reference_products(raw, spec)
    if name == "stores":
        return clean_reference_stores(raw, spec)
    if spec.contract.name == "promotion_plan":
        return clean_reference_promotion_plan(raw, spec)
    assert day is not None
    clean = clean_orders_day if spec.contract.name == "order_lines" else clean_interactions_day
    return clean({name: raw}, identity, KEY, dt.date.fromisoformat(day), SOURCES)


def identity_of(landing: Path) -> pl.DataFrame:
    data = (landing / SOURCES["customers"].landing_path()).read_bytes()
    return clean_file("customers", data, None, pl.DataFrame()).tables["customer_identity"]


def published(result: CleanResult) -> dict[str, pl.DataFrame]:
    """Every table the cleaned layer would write, lineage dropped, rows in a fixed order."""
    tables = {**result.tables, "quarantine": result.quarantine}
    return {
        name: frame.drop(c for c in LINEAGE_COLUMNS if c in frame.columns).sort(
            pl.all(), nulls_last=True
        )
        for name, frame in tables.items()
    }


def versions(result: CleanResult) -> dict[str, str]:
    """The data version each cleaned table would report (as the cleaned assets compute it)."""
    tables = {**result.tables, "quarantine": result.quarantine}
    return {
        name: content_version(frame, TABLE_KEYS[name], ignore=LINEAGE_COLUMNS)
        for name, frame in tables.items()
    }


def counts(result: CleanResult) -> dict[str, int]:
    row = result.accounting.row(0, named=True)
    return {k: v for k, v in row.items() if isinstance(v, int)}


def lines_read_as_resent(raw: pl.DataFrame) -> int:
    """Till lines whose transaction repeats every line k > 1 times (k-1 copies each):
    the documented case where `sequence` numbering reads a transaction as re-sent, so
    cleaning counts them as duplicates even when the generator did not inject them."""
    lines = raw.filter(pl.col("_parse_error").is_null() & pl.col("order_id").is_not_null())
    if lines.is_empty():
        return 0
    per_line = lines.group_by("_source_file", "order_id", "sku", "quantity", "unit_price").len()
    per_txn = per_line.group_by("_source_file", "order_id").agg(pl.col("len")).to_dicts()
    return sum(sum(c) - sum(c) // math.gcd(*c) for c in (t["len"] for t in per_txn))
