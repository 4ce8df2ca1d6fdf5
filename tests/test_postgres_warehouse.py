"""PostgresWarehouse: the Warehouse interface on Postgres, with the same results as DuckDB."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from aiwf_assets.io.postgres import (
    ADBC_MIN_ROWS,
    LOADERS,
    PostgresWarehouse,
    column_definitions,
    postgres_sql,
    postgres_type,
    validate_schema_suffix,
)
from aiwf_assets.io.warehouse import DuckDBWarehouse, StagedWrite
from tests.conftest import POSTGRES_DSN, postgres_or_skip
from tests.dbt_fixtures import postgres_schema_suffix


# pure helpers -------------------------------------------------------------
def test_placeholders_and_percent_signs_become_psycopg_style() -> None:
    assert postgres_sql("SELECT * FROM t WHERE a = ? AND b LIKE 'x%'", set(), "") == (
        "SELECT * FROM t WHERE a = %s AND b LIKE 'x%%'"
    )
    assert postgres_sql("SELECT '?' AS q, a % 2 FROM t -- why? 100%\n", set(), "") == (
        "SELECT '?' AS q, a %% 2 FROM t -- why? 100%%\n"
    )


def test_known_schemas_get_the_suffix_and_nothing_else_does() -> None:
    sql = (
        'SELECT o.order_id, "marts".x.y FROM marts.fct_orders AS o '
        "JOIN cleaned . orders c ON c.order_id = o.order_id "
        "WHERE o.note = 'marts.fct_orders' AND db.marts.t = 1 /* marts.a */"
    )
    assert postgres_sql(sql, {"marts", "cleaned"}, "_t1") == (
        'SELECT o.order_id, "marts_t1".x.y FROM "marts_t1".fct_orders AS o '
        'JOIN "cleaned_t1" . orders c ON c.order_id = o.order_id '
        "WHERE o.note = 'marts.fct_orders' AND db.marts.t = 1 /* marts.a */"
    )
    assert postgres_sql("SELECT * FROM Marts.t", {"marts"}, "_s") == 'SELECT * FROM "marts_s".t'


@pytest.mark.parametrize(
    ("arrow_type", "expected"),
    [
        (pa.bool_(), "boolean"),
        (pa.int8(), "smallint"),
        (pa.int32(), "integer"),
        (pa.uint32(), "bigint"),
        (pa.int64(), "bigint"),
        (pa.uint64(), "numeric(20,0)"),
        (pa.float32(), "real"),
        (pa.float64(), "double precision"),
        (pa.decimal128(12, 2), "numeric(12,2)"),
        (pa.large_string(), "text"),
        (pa.string_view(), "text"),
        (pa.dictionary(pa.uint32(), pa.large_string()), "text"),
        (pa.null(), "text"),
        (pa.date32(), "date"),
        (pa.timestamp("us"), "timestamp without time zone"),
        (pa.timestamp("us", "UTC"), "timestamp with time zone"),
        (pa.time64("us"), "time without time zone"),
    ],
)
def test_arrow_types_map_to_postgres_types(arrow_type: pa.DataType, expected: str) -> None:
    assert postgres_type("c", arrow_type) == expected


def test_unstorable_types_are_refused_with_the_column_named() -> None:
    with pytest.raises(TypeError, match="column 'tags' has Arrow type list<item: string>"):
        column_definitions(pa.schema([("id", pa.int64()), ("tags", pa.list_(pa.string()))]))


def test_schema_suffixes_must_be_plain_identifiers() -> None:
    assert validate_schema_suffix("_t1a") == "_t1a"
    with pytest.raises(ValueError, match="AIWF_WAREHOUSE_SCHEMA_SUFFIX"):
        PostgresWarehouse(POSTGRES_DSN, schema_suffix='"; DROP SCHEMA x; --')


# against the test Postgres ---------------------------------------------------
def sample_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "partition_date": [date(2026, 1, 5), date(2026, 1, 5), date(2026, 1, 6)],
            "text": ["plain", "", 'comma, "quote"\nnewline ünï'],
            "maybe": [None, "x", None],
            "count": [1, None, 3],
            "small": [1, 2, 3],
            "amount": [1.5, None, 1e-7],
            "exact": [Decimal("1.25"), None, Decimal("-3.10")],
            "flag": [True, False, None],
            "at": [datetime(2026, 1, 5, 10, 0, 0, 123456, tzinfo=UTC), None, None],
            "local": [datetime(2026, 1, 5, 10, 0), None, None],
            "clock": [time(10, 30), None, None],
            "kind": ["a", "b", "a"],
        },
        schema_overrides={
            "small": pl.Int16,
            "exact": pl.Decimal(10, 2),
            "kind": pl.Categorical,
        },
    )


@pytest.fixture(params=LOADERS)
def warehouse(request: pytest.FixtureRequest) -> Iterator[PostgresWarehouse]:
    """The warehouse with each loader (ADBC's Arrow ingest, COPY of CSV)."""
    postgres_or_skip()
    with postgres_schema_suffix() as suffix:
        yield PostgresWarehouse(POSTGRES_DSN, schema_suffix=suffix, loader=request.param)


@pytest.mark.postgres
def test_frames_round_trip_with_their_types(warehouse: PostgresWarehouse) -> None:
    frame = sample_frame()
    assert warehouse.replace_table("cleaned.sample", frame) == 3
    back = warehouse.query("SELECT * FROM cleaned.sample ORDER BY small")
    assert_frame_equal(back, frame.with_columns(pl.col("kind").cast(pl.String)))


@pytest.mark.postgres
def test_unsigned_half_float_and_null_columns_load_as_declared(
    warehouse: PostgresWarehouse,
) -> None:
    table = pa.table({
        "u8": pa.array([1, 255], pa.uint8()), "u16": pa.array([2, 65535], pa.uint16()),
        "u32": pa.array([3, 2**32 - 1], pa.uint32()), "u64": pa.array([4, 2**64 - 1], pa.uint64()),
        "f16": pa.array([np.float16(0.5), None], pa.float16()), "nothing": pa.nulls(2),
    })
    assert warehouse.replace_table("cleaned.wide", table) == 2
    back = warehouse.query("SELECT * FROM cleaned.wide ORDER BY u8")
    assert back.rows() == [
        (1, 2, 3, 4, 0.5, None),
        (255, 65535, 2**32 - 1, Decimal(2**64 - 1), None, None),
    ]


def test_auto_loads_large_frames_with_adbc_and_small_ones_by_copy() -> None:
    auto = PostgresWarehouse(POSTGRES_DSN)
    assert auto.loader == "auto"
    assert auto.loader_for(ADBC_MIN_ROWS) == "adbc"
    assert auto.loader_for(ADBC_MIN_ROWS - 1) == "copy"
    assert PostgresWarehouse(POSTGRES_DSN, loader="adbc").loader_for(1) == "adbc"
    with pytest.raises(ValueError, match="loader"):
        PostgresWarehouse(POSTGRES_DSN, loader="odbc")  # type: ignore[arg-type]


@pytest.mark.postgres
def test_tables_live_in_the_suffixed_schema(warehouse: PostgresWarehouse) -> None:
    warehouse.replace_table("cleaned.sample", sample_frame())
    assert warehouse.table_exists("cleaned.sample")
    assert not warehouse.table_exists("cleaned.other")
    with psycopg.connect(POSTGRES_DSN) as conn:
        found = conn.execute(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema = %s AND table_name = 'sample'",
            [f"cleaned{warehouse.schema_suffix}"],
        ).fetchone()
    assert found == (1,)


@pytest.mark.postgres
def test_replace_partitions_replaces_only_the_given_days(warehouse: PostgresWarehouse) -> None:
    frame = sample_frame()
    warehouse.replace_partitions("cleaned.sample", frame, [date(2026, 1, 5), date(2026, 1, 6)])
    update = frame.filter(pl.col("partition_date") == date(2026, 1, 6)).with_columns(
        pl.lit("new").alias("text")
    )
    assert warehouse.replace_partitions("cleaned.sample", update, [date(2026, 1, 6)]) == 1
    back = warehouse.query(
        "SELECT partition_date, text FROM cleaned.sample ORDER BY partition_date, small"
    )
    assert back.rows() == [
        (date(2026, 1, 5), "plain"), (date(2026, 1, 5), ""), (date(2026, 1, 6), "new"),
    ]


@pytest.mark.postgres
def test_a_failed_partition_replace_leaves_the_old_rows(warehouse: PostgresWarehouse) -> None:
    frame = sample_frame()
    warehouse.replace_partitions("cleaned.sample", frame, [date(2026, 1, 5), date(2026, 1, 6)])
    drifted = frame.with_columns(pl.lit(1).alias("unexpected_column"))
    with pytest.raises(Exception, match="unexpected_column"):
        warehouse.replace_partitions("cleaned.sample", drifted, [date(2026, 1, 5)])
    assert warehouse.query("SELECT count(*) AS n FROM cleaned.sample")["n"][0] == 3


@pytest.mark.postgres
def test_partition_replaces_of_one_table_serialise(warehouse: PostgresWarehouse) -> None:
    days = [date(2026, 1, d) for d in range(1, 9)]
    frames = [
        pl.DataFrame({"partition_date": [day] * 50, "n": list(range(50))}) for day in days
    ]
    errors: list[BaseException] = []

    def write(frame: pl.DataFrame, day: date) -> None:
        try:
            for _ in range(2):  # twice: a rerun must not duplicate the day
                warehouse.replace_partitions("cleaned.parallel", frame, [day])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=pair) for pair in zip(frames, days, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    counts = warehouse.query(
        "SELECT partition_date, count(*) AS n FROM cleaned.parallel GROUP BY 1 ORDER BY 1"
    )
    assert counts["n"].to_list() == [50] * len(days)


@pytest.mark.postgres
def test_replace_table_keeps_views_on_an_unchanged_table(warehouse: PostgresWarehouse) -> None:
    warehouse.replace_table("cleaned.sample", sample_frame())
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {warehouse.physical_schema('staging')}")
        conn.execute(
            f"CREATE VIEW {warehouse.physical_name('staging.v')}"
            f" AS SELECT small FROM {warehouse.physical_name('cleaned.sample')}"
        )
    warehouse.replace_table("cleaned.sample", sample_frame().head(1))
    assert warehouse.query("SELECT count(*) AS n FROM staging.v")["n"][0] == 1
    # new columns: the table is re-created and the view on it dropped (dbt re-creates it)
    warehouse.replace_table("cleaned.sample", pl.DataFrame({"other": [1, 2]}))
    assert warehouse.query("SELECT other FROM cleaned.sample")["other"].to_list() == [1, 2]
    assert not warehouse.table_exists("staging.v")


@pytest.mark.postgres
def test_empty_results_keep_their_types(warehouse: PostgresWarehouse) -> None:
    warehouse.replace_table("cleaned.sample", sample_frame())
    empty = warehouse.query("SELECT * FROM cleaned.sample WHERE small > ?", [100])
    assert empty.height == 0
    assert empty.schema == sample_frame().with_columns(pl.col("kind").cast(pl.String)).schema


@pytest.mark.postgres
def test_postgres_and_duckdb_answer_alike(warehouse: PostgresWarehouse, tmp_path: Path) -> None:
    duckdb = DuckDBWarehouse(tmp_path / "w.duckdb")
    frame = sample_frame().drop("clock", "kind")
    query = (
        "SELECT partition_date, count(*) AS n, sum(small) AS total, max(text) AS last_text "
        "FROM cleaned.sample WHERE small >= ? GROUP BY partition_date ORDER BY partition_date"
    )
    results = []
    for engine in (warehouse, duckdb):
        engine.replace_partitions("cleaned.sample", frame, [date(2026, 1, 5), date(2026, 1, 6)])
        results.append(engine.query(query, [2]).with_columns(pl.col("total").cast(pl.Int64)))
    assert_frame_equal(*results)


@pytest.mark.postgres
def test_a_session_reads_and_writes_as_the_warehouse_does(warehouse: PostgresWarehouse) -> None:
    """The cleaning step's session (one connection, queries read as Arrow through ADBC)
    answers every query exactly as calls outside a session do: types, empty results,
    parameters (a date, a quote, a percent sign), numeric columns (read by psycopg)."""
    frame = sample_frame()
    warehouse.replace_table("cleaned.sample", frame)
    queries = [
        ("SELECT * FROM cleaned.sample ORDER BY small", []),
        ("SELECT * FROM cleaned.sample WHERE small > ?", [100]),
        (
            "SELECT partition_date, text, count FROM cleaned.sample"
            " WHERE partition_date = ? OR text = ? OR text LIKE '%quote%' ORDER BY small",
            [date(2026, 1, 5), "it's 100%"],
        ),
        ("SELECT sum(small) AS total, avg(amount) AS mean FROM cleaned.sample", []),
    ]
    outside = [warehouse.query(sql, params) for sql, params in queries]
    with warehouse.session() as session:
        inside = [session.query(sql, params) for sql, params in queries]
        session.stage("cleaned_staging.sample__s", frame.filter(pl.col("small") == 3))
        staged = StagedWrite("cleaned.sample", "cleaned_staging.sample__s", (date(2026, 1, 6),))
        session.publish([staged])
        assert session.table_exists("cleaned.sample")
    for a, b in zip(outside, inside, strict=True):
        assert_frame_equal(a, b)
    assert inside[1].height == 0 and inside[1].schema == outside[0].schema
    assert warehouse.query("SELECT count(*) AS n FROM cleaned.sample")["n"].item() == 3


@pytest.mark.postgres
def test_tables_with_a_partition_column_are_indexed_on_it(warehouse: PostgresWarehouse) -> None:
    """A day's delete, read-back and publish use the index, not a scan of every day."""
    frame = sample_frame()
    warehouse.replace_partitions("cleaned.sample", frame, [date(2026, 1, 5)])
    warehouse.stage("cleaned_staging.sample__run", frame)
    warehouse.replace_table("cleaned.plain", pl.DataFrame({"a": [1]}))
    with psycopg.connect(POSTGRES_DSN) as conn:
        indexed = conn.execute(
            "SELECT schemaname, tablename, indexdef FROM pg_indexes WHERE schemaname IN (%s, %s)",
            [f"cleaned{warehouse.schema_suffix}", f"cleaned_staging{warehouse.schema_suffix}"],
        ).fetchall()
    by_table = {table: definition for _, table, definition in indexed}
    assert set(by_table) == {"sample", "sample__run"}  # not `plain`: no partition column
    assert all("(partition_date)" in d for d in by_table.values())
