"""Deterministic file output: fixed serialisation settings, atomic writes.

Same inputs give the same bytes: no timestamps, fixed Parquet settings, fixed column
and key order (polars writes JSON keys in column order).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from aiwf_assets.generator import params as P
from aiwf_assets.generator.render import SESSION_SCHEMA

PARQUET_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "compression_level": 3,
    "version": "2.6",
    "use_dictionary": True,
    "write_statistics": True,
}
CSV_FLOAT_PRECISION = 2  # prices are exported with two decimals, like the tills do


def parquet_bytes(table: pa.Table, **overrides: object) -> bytes:
    """`overrides` of PARQUET_OPTIONS, e.g. for wide tables of random floats, which
    neither dictionaries nor compression shrink, only slow down."""
    sink = io.BytesIO()
    pq.write_table(table, sink, **{**PARQUET_OPTIONS, **overrides})
    return sink.getvalue()


def frame_bytes(channel: str, frame: pl.DataFrame) -> bytes:
    """A channel-day frame in its landing format."""
    ext = P.EXTENSIONS[channel]
    if ext == "jsonl":
        return frame.write_ndjson().encode()
    if ext == "csv":
        return frame.write_csv(float_precision=CSV_FLOAT_PRECISION).encode()
    return parquet_bytes(frame.to_arrow().cast(SESSION_SCHEMA))


def csv_bytes(frame: pl.DataFrame) -> bytes:
    return frame.write_csv(float_precision=CSV_FLOAT_PRECISION).encode()


class FileSink:
    """Writes files under home and remembers them (relative paths, in write order)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.written: list[str] = []

    def write(self, rel: str, data: bytes) -> Path:
        path = self.home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        # write-then-rename: a pipeline polling the landing zone never sees half a file
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        if rel not in self.written:
            self.written.append(rel)
        return path


class ParquetStream:
    """A Parquet file written one row group at a time (one per day): flat memory."""

    def __init__(self, sink: FileSink, rel: str, schema: pa.Schema) -> None:
        self._sink = sink
        self._rel = rel
        self._path = sink.home / rel
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self._path.with_name(f".{self._path.name}.tmp")
        self._schema = schema
        self._writer = pq.ParquetWriter(self._tmp, schema, **PARQUET_OPTIONS)

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table.cast(self._schema))

    def close(self) -> None:
        self._writer.close()
        os.replace(self._tmp, self._path)
        if self._rel not in self._sink.written:
            self._sink.written.append(self._rel)
