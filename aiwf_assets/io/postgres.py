"""Postgres warehouse (prod): the `Warehouse` interface on psycopg 3 and ADBC.

Frames go in as Arrow, by one of two loaders: `adbc` (ADBC's Arrow-native ingest, a binary
COPY, on an ADBC connection that runs the whole write) or `copy` (psycopg's `COPY ... FROM
STDIN` of CSV written by Arrow). ADBC loads large frames faster (1.5x at 200k rows here) but
opening its connection costs ~0.3 s (it reads the type catalogue), so COPY wins below ~50k
rows; the default `auto` takes ADBC from ADBC_MIN_ROWS rows and COPY below (`python -m
benchmarks --prod` compares both on a cleaned table). Tables and schemas are created from
the frame's Arrow schema. A partition replace is one transaction (lock, delete, load), so
readers never see half a day. Queries go through psycopg; in a `session()` (the cleaning
step's daily loop) one psycopg connection serves every call and queries are read as Arrow
through one ADBC connection (a day's staged rows read back: ~10x faster than building
Python rows). Tables with a `partition_date` column get an index on it, so a day's
delete, read-back and publish do not scan every other day.

`schema_suffix` gives a test run its own schemas in a shared database: every schema this
warehouse writes or reads gets the suffix (`cleaned.orders` is stored as
`cleaned_t1234.orders`), including the schemas named in `query()` SQL. SQL placeholders are
`?` on both engines, as in DuckDB.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql as psycopg_sql
from psycopg.types.string import TextLoader

from aiwf_assets.io.warehouse import (
    PARTITION_COLUMN,
    StagedWrite,
    _as_arrow,
    split_table_name,
)

logger = logging.getLogger(__name__)

SCHEMA_SUFFIX_PATTERN = re.compile(r"[a-z0-9_]*")
COPY_BATCH_ROWS = 50_000
Loader = Literal["auto", "adbc", "copy"]
LOADERS: tuple[Loader, ...] = ("adbc", "copy")  # `auto` picks one of these per write
ADBC_MIN_ROWS = 100_000  # auto: ADBC from this many rows (its connection costs ~0.3 s)

_SQL_TOKEN = re.compile(
    r"""
      (?P<string>'(?:[^']|'')*')
    | (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<quoted>"(?:[^"]|"")*")
    | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<space>\s+)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def validate_schema_suffix(suffix: str) -> str:
    """The suffix, if it is safe in an unquoted schema name (lower-case letters, digits, _)."""
    if not SCHEMA_SUFFIX_PATTERN.fullmatch(suffix):
        raise ValueError(
            f"warehouse schema suffix {suffix!r} may hold only lower-case letters, digits and _"
            " (set AIWF_WAREHOUSE_SCHEMA_SUFFIX accordingly)"
        )
    return suffix


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_SIMPLE_TYPES: list[tuple[Any, str]] = [
    (pa.types.is_null, "text"),
    (pa.types.is_boolean, "boolean"),
    (lambda t: pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t), "smallint"),
    (lambda t: pa.types.is_int32(t) or pa.types.is_uint16(t), "integer"),
    (lambda t: pa.types.is_int64(t) or pa.types.is_uint32(t), "bigint"),
    (pa.types.is_uint64, "numeric(20,0)"),
    (lambda t: pa.types.is_float16(t) or pa.types.is_float32(t), "real"),
    (pa.types.is_float64, "double precision"),
    (
        lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
        or pa.types.is_string_view(t),
        "text",
    ),
    (pa.types.is_date, "date"),
    (pa.types.is_time, "time without time zone"),
]


def postgres_type(name: str, arrow_type: pa.DataType) -> str:
    """The Postgres column type (as `format_type` spells it) for an Arrow type."""
    if pa.types.is_dictionary(arrow_type):
        return postgres_type(name, arrow_type.value_type)
    if pa.types.is_decimal(arrow_type):
        return f"numeric({arrow_type.precision},{arrow_type.scale})"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp with time zone" if arrow_type.tz else "timestamp without time zone"
    for is_type, pg_type in _SIMPLE_TYPES:
        if is_type(arrow_type):
            return pg_type
    raise TypeError(
        f"column {name!r} has Arrow type {arrow_type}, which the Postgres warehouse does not"
        " store: cast it to a string, number, boolean, date or timestamp column first"
        " (nested values as a JSON string)"
    )


def column_definitions(schema: pa.Schema) -> list[tuple[str, str]]:
    """(column, Postgres type) for each field of an Arrow schema."""
    return [(field.name, postgres_type(field.name, field.type)) for field in schema]


def postgres_sql(sql: str, schemas: set[str], suffix: str) -> str:
    """DuckDB-style SQL for psycopg: `?` placeholders become `%s`, every literal `%` becomes
    `%%` (psycopg reads `%` everywhere, even in strings), and a schema qualifier in `schemas`
    (e.g. `marts.` in `marts.fct_orders`) gets `suffix`. Placeholders and schema names inside
    string literals, quoted identifiers and comments are left alone.
    """
    tokens = [(match.lastgroup, match.group()) for match in _SQL_TOKEN.finditer(sql)]
    significant = [i for i, (kind, _) in enumerate(tokens) if kind not in ("space", "comment")]
    out = [text.replace("%", "%%") for _, text in tokens]
    for position, i in enumerate(significant):
        kind, text = tokens[i]
        if kind == "other" and text == "?":
            out[i] = "%s"
        elif kind in ("word", "quoted") and suffix:
            name = text[1:-1].replace('""', '"') if kind == "quoted" else text.lower()
            before = tokens[significant[position - 1]][1] if position > 0 else ""
            after = (
                tokens[significant[position + 1]][1]
                if position + 1 < len(significant) else ""
            )
            if name in schemas and after == "." and before != ".":
                out[i] = quote_identifier(name + suffix)
    return "".join(out)


# Postgres type OIDs -> polars dtypes, so empty and all-null results keep their types.
_POLARS_TYPES: dict[int, pl.DataType] = {
    16: pl.Boolean(),
    20: pl.Int64(),
    21: pl.Int16(),
    23: pl.Int32(),
    700: pl.Float32(),
    701: pl.Float64(),
    25: pl.String(),
    1043: pl.String(),
    1042: pl.String(),
    19: pl.String(),
    114: pl.String(),
    3802: pl.String(),
    2950: pl.String(),
    1082: pl.Date(),
    1083: pl.Time(),
    1114: pl.Datetime("us"),
    1184: pl.Datetime("us", "UTC"),
    17: pl.Binary(),
}
_NUMERIC_OID = 1700
_TEXT_LOADED_TYPES = ("json", "jsonb", "uuid")


def _result_column(column: psycopg.Column, values: Sequence[Any]) -> pl.Series:
    if column.type_code == _NUMERIC_OID:
        if column.precision is not None and column.scale is not None and column.precision <= 38:
            return pl.Series(column.name, values, dtype=pl.Decimal(column.precision, column.scale))
        # unconstrained numeric (e.g. from sum/avg): no fixed scale, so float
        return pl.Series(
            column.name, [None if v is None else float(v) for v in values], dtype=pl.Float64
        )
    return pl.Series(column.name, values, dtype=_POLARS_TYPES.get(column.type_code))


def _csv_chunks(table: pa.Table) -> Iterator[bytes]:
    """The table as headerless CSV in batches (nulls unquoted-empty, strings quoted)."""
    options = pa_csv.WriteOptions(include_header=False)
    for batch in table.to_batches(max_chunksize=COPY_BATCH_ROWS):
        buffer = io.BytesIO()
        pa_csv.write_csv(batch, buffer, options)
        yield buffer.getvalue()


def _without_dictionaries(table: pa.Table) -> pa.Table:
    return table.cast(
        pa.schema(
            field.with_type(field.type.value_type)
            if pa.types.is_dictionary(field.type) else field
            for field in table.schema
        )
    )


def _adbc_loadable(table: pa.Table) -> pa.Table:
    """The table with types ADBC's binary COPY writes as `column_definitions` declares them
    (null -> text, uint64 -> numeric(20,0), uint32 -> bigint, uint16 -> integer, uint8 ->
    smallint, float16 -> real, string views -> strings)."""
    table = _without_dictionaries(table)
    casts = []
    for field in table.schema:
        kind = field.type
        if pa.types.is_null(kind) or pa.types.is_string_view(kind):
            kind = pa.large_string()
        elif pa.types.is_uint64(kind):
            kind = pa.decimal128(20, 0)
        elif pa.types.is_uint32(kind):
            kind = pa.int64()
        elif pa.types.is_uint16(kind):
            kind = pa.int32()
        elif pa.types.is_uint8(kind):
            kind = pa.int16()
        elif pa.types.is_float16(kind):
            kind = pa.float32()
        casts.append(field.with_type(kind))
    return table.cast(pa.schema(casts))


class _AdbcConnection:
    """An ADBC connection speaking the little of psycopg's API the write path uses:
    `execute` (`%s` parameters rendered client-side as SQL literals) returning a cursor,
    and `transaction()`. Everything runs in one transaction, committed when the
    connection's `with` block ends without an error (rolled back otherwise)."""

    def __init__(self, dsn: str):
        import adbc_driver_postgresql.dbapi as adbc

        self.connection = adbc.connect(dsn)
        self.cursor = self.connection.cursor()
        self.cursor.execute("SET TIME ZONE 'UTC'")

    def execute(self, query: str, params: Sequence[Any] | None = None) -> Any:
        if params:
            query = query % tuple(psycopg_sql.Literal(p).as_string(None) for p in params)
        self.cursor.execute(query)
        return self.cursor

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield

    def ingest(self, schema: str, name: str, table: pa.Table) -> None:
        self.cursor.adbc_ingest(name, _adbc_loadable(table), mode="append",
                                db_schema_name=schema)

    def __enter__(self) -> _AdbcConnection:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        try:
            if kind is None:
                self.connection.commit()
            else:
                self.connection.rollback()
        finally:
            self.cursor.close()
            self.connection.close()


@dataclass(frozen=True)
class PostgresWarehouse:
    dsn: str
    schema_suffix: str = ""
    dialect: str = "postgres"
    loader: Loader = "auto"

    def __post_init__(self) -> None:
        validate_schema_suffix(self.schema_suffix)
        if self.loader not in ("auto", *LOADERS):
            raise ValueError(
                f"Postgres loader must be auto, adbc or copy, got {self.loader!r}"
            )

    def loader_for(self, rows: int) -> Loader:
        """The loader a write of `rows` rows uses."""
        if self.loader != "auto":
            return self.loader
        return "adbc" if rows >= ADBC_MIN_ROWS else "copy"

    def physical_schema(self, schema: str) -> str:
        return schema + self.schema_suffix

    def physical_name(self, table: str) -> str:
        """'cleaned.orders' -> '"cleaned<suffix>"."orders"'."""
        schema, name = split_table_name(table)
        return f"{quote_identifier(self.physical_schema(schema))}.{quote_identifier(name)}"

    def connect(self) -> psycopg.Connection:
        """An autocommit connection in UTC; group statements with `conn.transaction()`."""
        conn = psycopg.connect(self.dsn, autocommit=True)
        conn.execute("SET TIME ZONE 'UTC'")
        for type_name in _TEXT_LOADED_TYPES:
            conn.adapters.register_loader(type_name, TextLoader)
        return conn

    def replace_partitions(
        self, table: str, frame: pl.DataFrame | pa.Table, partition_values: Sequence[Any],
        partition_column: str = PARTITION_COLUMN,
    ) -> int:
        incoming = _as_arrow(frame)
        columns = dict(column_definitions(incoming.schema))
        if partition_column not in columns:
            raise ValueError(
                f"cannot replace partitions of {table}: the frame has no column"
                f" {partition_column!r} (columns: {', '.join(columns)})"
            )
        target = self.physical_name(table)
        with self._writer(table, incoming.num_rows) as conn, conn.transaction():
            self._lock(conn, target)
            self._create_table(conn, target, columns, if_not_exists=True)
            conn.execute(
                f"DELETE FROM {target} WHERE {quote_identifier(partition_column)}"
                f" = ANY(CAST(%s AS {columns[partition_column]}[]))",
                [list(partition_values)],
            )
            self._load(conn, table, incoming)
        return incoming.num_rows

    def replace_table(self, table: str, frame: pl.DataFrame | pa.Table) -> int:
        incoming = _as_arrow(frame)
        columns = dict(column_definitions(incoming.schema))
        target = self.physical_name(table)
        with self._writer(table, incoming.num_rows) as conn, conn.transaction():
            self._lock(conn, target)
            self._empty_table(conn, target, list(columns.items()))
            self._load(conn, table, incoming)
        return incoming.num_rows

    @contextmanager
    def _writer(self, table: str, rows: int) -> Iterator[Any]:
        """A connection to write `rows` rows to `table` with, its schema created: psycopg's
        (loader `copy`) or ADBC's (loader `adbc`, one transaction for the whole write)."""
        with self.connect() as conn:
            self._create_schema(conn, table)
            if self.loader_for(rows) == "copy":
                yield conn
                return
        with _AdbcConnection(self.dsn) as adbc_conn:
            yield adbc_conn

    def _load(self, conn: Any, table: str, incoming: pa.Table) -> None:
        if isinstance(conn, _AdbcConnection):
            schema, name = split_table_name(table)
            conn.ingest(self.physical_schema(schema), name, incoming)
        else:
            self._copy(conn, self.physical_name(table), incoming)

    def read_arrow(self, sql: str) -> pa.Table:
        """A query's result as Arrow, through ADBC (schemas get this warehouse's suffix)."""
        import adbc_driver_postgresql.dbapi as adbc

        with self.connect() as conn:
            schemas = self._suffixed_schemas(conn) if self.schema_suffix else set()
        with adbc.connect(self.dsn) as conn, conn.cursor() as cursor:
            cursor.execute(postgres_sql(sql, schemas, self.schema_suffix).replace("%%", "%"))
            return cursor.fetch_arrow_table()

    def _empty_table(
        self, conn: Any, target: str, columns: list[tuple[str, str]]
    ) -> None:
        """Make `target` an empty table of `columns` for a whole-table replacement."""
        existing = self._existing_columns(conn, target)
        if existing == columns:
            # same shape: keep the table, so views on it (dbt staging) stay valid
            conn.execute(f"TRUNCATE {target}")
            return
        if existing:
            logger.warning(
                "%s changes its columns: dropping it with the views on it"
                " (dbt re-creates its views on the next build)",
                target,
            )
        conn.execute(f"DROP TABLE IF EXISTS {target} CASCADE")
        self._create_table(conn, target, dict(columns), if_not_exists=False)

    def stage(self, staging: str, frame: pl.DataFrame | pa.Table) -> int:
        incoming = _as_arrow(frame)
        columns = dict(column_definitions(incoming.schema))
        target = self.physical_name(staging)
        with self._writer(staging, incoming.num_rows) as conn, conn.transaction():
            self._create_table(conn, target, columns, if_not_exists=True)
            self._load(conn, staging, incoming)
        return incoming.num_rows

    def publish(self, writes: Sequence[StagedWrite]) -> None:
        with self.connect() as conn:
            for table in sorted({w.table for w in writes}):
                self._create_schema(conn, table)
            with conn.transaction():
                # one lock per published table, taken in one order: concurrent publishers
                # of overlapping tables queue instead of deadlocking
                for target in sorted({self.physical_name(w.table) for w in writes}):
                    self._lock(conn, target)
                for write in writes:
                    self._publish_one(conn, write)

    def drop_tables(self, tables: Sequence[str]) -> None:
        with self.connect() as conn:
            for table in tables:
                conn.execute(f"DROP TABLE IF EXISTS {self.physical_name(table)}")

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        with self.connect() as conn:
            schemas = self._suffixed_schemas(conn) if self.schema_suffix else set()
            cursor = conn.execute(
                postgres_sql(sql, schemas, self.schema_suffix), list(params or [])
            )
            if cursor.description is None:
                return pl.DataFrame()
            rows = cursor.fetchall()
            values = list(zip(*rows, strict=True)) if rows else [()] * len(cursor.description)
            return pl.DataFrame(
                [
                    _result_column(column, column_values)
                    for column, column_values in zip(cursor.description, values, strict=True)
                ]
            )

    @contextmanager
    def session(self) -> Iterator[PostgresWarehouse]:
        """This warehouse with one psycopg connection for every call of the block (each write
        still one transaction) and queries read as Arrow through one ADBC connection:
        connecting per call and building Python rows for a day's staged rows cost more than
        the queries at scale."""
        import adbc_driver_postgresql.dbapi as adbc

        with self.connect() as held, adbc.connect(self.dsn, autocommit=True) as reader:
            with reader.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'UTC'")
            yield _PostgresSession(
                self.dsn, self.schema_suffix, self.dialect, self.loader, held=held, reader=reader
            )

    def table_exists(self, table: str) -> bool:
        with self.connect() as conn:
            found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [self.physical_name(table)])
            return bool(found.fetchone()[0])

    def ensure_index(self, table: str, columns: Sequence[str]) -> None:
        """`CREATE INDEX IF NOT EXISTS` on `columns` of an existing table: a lookup of a day's
        keys in every earlier day's (the cross-day guard) then reads those keys, not the whole
        history (measured: `python -m benchmarks.guard_lookup`)."""
        target = self.physical_name(table)
        _, name = split_table_name(table)
        index = quote_identifier(f"{name}__{'_'.join(columns)}"[:63])
        column_list = ", ".join(quote_identifier(c) for c in columns)
        if self.table_exists(table):
            with self.connect() as conn:
                conn.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {target} ({column_list})")

    # internals ----------------------------------------------------------
    def _publish_one(self, conn: psycopg.Connection, write: StagedWrite) -> None:
        target = self.physical_name(write.table)
        staging = self.physical_name(write.staging)
        columns = self._existing_columns(conn, staging)
        if not columns:
            raise ValueError(f"nothing staged for {write.table}: {write.staging} does not exist")
        column_list = ", ".join(quote_identifier(name) for name, _ in columns)
        copy_rows = f"INSERT INTO {target} ({column_list}) SELECT {column_list} FROM {staging}"
        if write.partition_values is None:
            self._empty_table(conn, target, columns)
            conn.execute(copy_rows)
            return
        types = dict(columns)
        if write.partition_column not in types:
            raise ValueError(
                f"cannot publish partitions of {write.table}: {write.staging} has no column"
                f" {write.partition_column!r}"
            )
        in_partitions = (
            f" WHERE {quote_identifier(write.partition_column)}"
            f" = ANY(CAST(%s AS {types[write.partition_column]}[]))"
        )
        values = [list(write.partition_values)]
        self._create_table(conn, target, types, if_not_exists=True)
        conn.execute(f"DELETE FROM {target}{in_partitions}", values)
        conn.execute(copy_rows + in_partitions, values)

    def _create_schema(self, conn: Any, table: str) -> None:
        """Create the table's schema; concurrent writers serialise on a lock per schema."""
        schema = self.physical_schema(split_table_name(table)[0])
        with conn.transaction():
            self._lock(conn, quote_identifier(schema))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")

    @staticmethod
    def _lock(conn: Any, name: str) -> None:
        """Hold a transaction-level advisory lock on `name` (one writer per table or schema)."""
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"aiwf.warehouse:{name}"])

    @staticmethod
    def _create_table(
        conn: Any, target: str, columns: dict[str, str], if_not_exists: bool
    ) -> None:
        """The table, and with a partition column an index on it: a day's delete, read-back
        and publish then read that day's rows, not every day's."""
        definitions = ", ".join(f"{quote_identifier(c)} {t}" for c, t in columns.items())
        clause = "IF NOT EXISTS " if if_not_exists else ""
        conn.execute(f"CREATE TABLE {clause}{target} ({definitions})")
        if PARTITION_COLUMN in columns:
            conn.execute(_partition_index_sql(target))

    @staticmethod
    def _existing_columns(conn: Any, target: str) -> list[tuple[str, str]]:
        return conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped"
            " ORDER BY attnum",
            [target],
        ).fetchall()

    @staticmethod
    def _copy(conn: psycopg.Connection, target: str, table: pa.Table) -> None:
        table = _without_dictionaries(table)
        column_list = ", ".join(quote_identifier(name) for name in table.column_names)
        with conn.cursor().copy(
            f"COPY {target} ({column_list}) FROM STDIN WITH (FORMAT csv)"
        ) as copy:
            for chunk in _csv_chunks(table):
                copy.write(chunk)

    def _suffixed_schemas(self, conn: psycopg.Connection) -> set[str]:
        """Logical names of the schemas that exist with this warehouse's suffix."""
        rows = conn.execute(
            "SELECT schema_name FROM information_schema.schemata"
            " WHERE right(schema_name, %s) = %s",
            [len(self.schema_suffix), self.schema_suffix],
        ).fetchall()
        return {name[: -len(self.schema_suffix)] for (name,) in rows}


def _partition_index_sql(target: str) -> str:
    """`CREATE INDEX IF NOT EXISTS` on the partition column of `target` ('"schema"."name"'),
    named after the table (Postgres keeps index names per schema, 63 bytes at most)."""
    name = _QUALIFIED.fullmatch(target).group(2).replace('""', '"')  # type: ignore[union-attr]
    index = quote_identifier(f"{name[:46]}__{PARTITION_COLUMN}")
    return f"CREATE INDEX IF NOT EXISTS {index} ON {target} ({quote_identifier(PARTITION_COLUMN)})"


_QUALIFIED = re.compile(r'"((?:[^"]|"")*)"\."((?:[^"]|"")*)"')


class _Borrowed:
    """A held connection for `with self.connect() as conn:` blocks that must not close it."""

    def __init__(self, connection: psycopg.Connection):
        self.connection = connection

    def __enter__(self) -> psycopg.Connection:
        return self.connection

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        return None


@dataclass(frozen=True)
class _PostgresSession(PostgresWarehouse):
    """A PostgresWarehouse whose calls share one psycopg connection and read queries as
    Arrow through one ADBC connection (see `session`)."""

    held: Any = None
    reader: Any = None

    def connect(self) -> Any:
        return _Borrowed(self.held)

    @contextmanager
    def session(self) -> Iterator[PostgresWarehouse]:
        yield self

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        schemas = self._suffixed_schemas(self.held) if self.schema_suffix else set()
        text = postgres_sql(sql, schemas, self.schema_suffix)
        literals = tuple(psycopg_sql.Literal(p).as_string(self.held) for p in params or [])
        with self.reader.cursor() as cursor:
            cursor.execute(text % literals)
            table = cursor.fetch_arrow_table()
        if any(isinstance(field.type, pa.BaseExtensionType) for field in table.schema):
            # numeric, json, uuid: psycopg's reading types them (see _result_column)
            return super().query(sql, params)
        return pl.from_arrow(table)
