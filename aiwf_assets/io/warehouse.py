"""The SQL warehouse the cleaned layer writes and dbt builds on.

`DuckDBWarehouse` (local, a file under AIWF_HOME) and `PostgresWarehouse`
(prod) share one small interface. Frames go in as Arrow (no per-row
inserts); a partition is replaced atomically (delete + insert in one
transaction), so readers never see half a day.

Write-audit-publish: `stage` appends a frame to a staging table (a `<schema>_staging`
schema nothing downstream reads), checks read the staged rows back, and `publish` moves
the staged partitions of several tables into the published ones in one transaction.
A run killed between the two leaves only a staging table behind, never half a partition.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import duckdb
import polars as pl
import pyarrow as pa

PARTITION_COLUMN = "partition_date"
STAGING_SUFFIX = "_staging"


@dataclass(frozen=True)
class StagedWrite:
    """One table's part of a publication: staged rows that replace published ones."""

    table: str  # the published table, e.g. cleaned.orders
    staging: str  # the staging table holding the rows to publish
    # the partitions to replace (staged rows outside them are not published);
    # None: the staged table replaces the whole published table
    partition_values: tuple[Any, ...] | None = None
    partition_column: str = PARTITION_COLUMN


def staging_table(table: str, token: str) -> str:
    """A run's staging table: 'cleaned.orders' -> 'cleaned_staging.orders__<token>'.

    A token per run keeps two runs of the same partition from sharing staged rows.
    """
    schema, name = split_table_name(table)
    if not token.isalnum():
        raise ValueError(f"staging token must be letters and digits, got {token!r}")
    return f"{schema}{STAGING_SUFFIX}.{name}__{token.lower()}"


class Warehouse(Protocol):
    dialect: str

    def replace_partitions(
        self, table: str, frame: pl.DataFrame | pa.Table, partition_values: Sequence[Any],
        partition_column: str = PARTITION_COLUMN,
    ) -> int: ...

    def replace_table(self, table: str, frame: pl.DataFrame | pa.Table) -> int: ...

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame: ...

    def table_exists(self, table: str) -> bool: ...

    def stage(self, staging: str, frame: pl.DataFrame | pa.Table) -> int:
        """Append a frame to a staging table (created from the frame on first use)."""
        ...

    def publish(self, writes: Sequence[StagedWrite]) -> None:
        """Replace the published rows of every write by its staged rows, in one transaction."""
        ...

    def drop_tables(self, tables: Sequence[str]) -> None:
        """Drop tables if they exist (staging tables after publishing or failing)."""
        ...

    def ensure_index(self, table: str, columns: Sequence[str]) -> None:
        """An index on `columns` of `table` where the engine needs one to look keys up in a
        history that grows every day (nothing when the table does not exist)."""
        ...

    def session(self) -> AbstractContextManager[Warehouse]:
        """The warehouse for a batch of calls (e.g. a run's daily writes); may hold one
        connection across them. Each write is still its own transaction."""
        ...


def split_table_name(table: str) -> tuple[str, str]:
    """'cleaned.orders' -> ('cleaned', 'orders'); schema is required so nothing lands in public."""
    if table.count(".") != 1:
        raise ValueError(f"warehouse table names are 'schema.table', got {table!r}")
    schema, name = table.split(".")
    return schema, name


def _as_arrow(frame: pl.DataFrame | pa.Table) -> pa.Table:
    return frame.to_arrow() if isinstance(frame, pl.DataFrame) else frame


@dataclass(frozen=True)
class DuckDBWarehouse:
    path: Path
    lock_timeout_s: float = 120.0
    dialect: str = "duckdb"

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """Open the file; DuckDB allows one writing process at a time, so wait for the lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only and self.path.exists())
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    @contextmanager
    def _connection(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self.connect(read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def session(self) -> Iterator[DuckDBWarehouse]:
        """This warehouse with one read-write connection held for the block: opening the
        file and checkpointing at close cost ~35 ms per write, which dominated a daily
        run at small scale. Other processes wait for the file while the block runs."""
        con = self.connect()
        try:
            yield _DuckDBSession(self.path, self.lock_timeout_s, self.dialect, held=con)
        finally:
            con.close()

    @contextmanager
    def _writing(
        self, table: str, frame: pl.DataFrame | pa.Table
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction with the schema created and the frame registered as `incoming`."""
        schema, _ = split_table_name(table)
        with self._connection() as con:
            try:
                con.execute("BEGIN TRANSACTION")
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                con.register("incoming", _as_arrow(frame))
                yield con
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("incoming")

    def replace_partitions(
        self, table: str, frame: pl.DataFrame | pa.Table, partition_values: Sequence[Any],
        partition_column: str = PARTITION_COLUMN,
    ) -> int:
        with self._writing(table, frame) as con:
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM incoming LIMIT 0")
            placeholders = ", ".join("?" for _ in partition_values)
            con.execute(
                f"DELETE FROM {table} WHERE {partition_column} IN ({placeholders})",
                list(partition_values),
            )
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
        return len(frame)  # rows of a polars frame or an Arrow table

    def replace_table(self, table: str, frame: pl.DataFrame | pa.Table) -> int:
        with self._writing(table, frame) as con:
            con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM incoming")
        return len(frame)  # rows of a polars frame or an Arrow table

    def stage(self, staging: str, frame: pl.DataFrame | pa.Table) -> int:
        with self._writing(staging, frame) as con:
            con.execute(f"CREATE TABLE IF NOT EXISTS {staging} AS SELECT * FROM incoming LIMIT 0")
            con.execute(f"INSERT INTO {staging} BY NAME SELECT * FROM incoming")
        return len(frame)

    def publish(self, writes: Sequence[StagedWrite]) -> None:
        with self._connection() as con:
            try:
                con.execute("BEGIN TRANSACTION")
                for write in writes:
                    _publish_duckdb(con, write)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def drop_tables(self, tables: Sequence[str]) -> None:
        with self._connection() as con:
            for table in tables:
                split_table_name(table)
                con.execute(f"DROP TABLE IF EXISTS {table}")

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        with self._connection(read_only=True) as con:
            return con.sql(sql, params=list(params or [])).pl()

    def ensure_index(self, table: str, columns: Sequence[str]) -> None:
        """Nothing: DuckDB scans a column of millions of keys in a hash join faster than an
        index would pay for itself, and an (ART) index would slow every publish."""

    def table_exists(self, table: str) -> bool:
        schema, name = split_table_name(table)
        if not self.path.exists():
            return False
        found = self.query(
            "SELECT count(*) AS n FROM information_schema.tables "
            "WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        )
        return bool(found["n"][0])


def _publish_duckdb(con: duckdb.DuckDBPyConnection, write: StagedWrite) -> None:
    schema, _ = split_table_name(write.table)
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    if write.partition_values is None:
        con.execute(f"CREATE OR REPLACE TABLE {write.table} AS SELECT * FROM {write.staging}")
        return
    column = write.partition_column
    placeholders = ", ".join("?" for _ in write.partition_values)
    values = list(write.partition_values)
    con.execute(f"CREATE TABLE IF NOT EXISTS {write.table} AS FROM {write.staging} LIMIT 0")
    con.execute(f"DELETE FROM {write.table} WHERE {column} IN ({placeholders})", values)
    con.execute(
        f"INSERT INTO {write.table} BY NAME SELECT * FROM {write.staging}"
        f" WHERE {column} IN ({placeholders})",
        values,
    )


@dataclass(frozen=True)
class _DuckDBSession(DuckDBWarehouse):
    """A DuckDBWarehouse whose calls share one open connection (see `session`)."""

    held: duckdb.DuckDBPyConnection | None = None

    @contextmanager
    def _connection(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        assert self.held is not None
        yield self.held

    @contextmanager
    def session(self) -> Iterator[DuckDBWarehouse]:
        yield self
