"""Write-audit-publish in the warehouse: staged rows reach the published table only through
`publish`, which replaces partitions (or a whole table) of several tables in one transaction.
Run on DuckDB and on Postgres."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from aiwf_assets.io.postgres import PostgresWarehouse
from aiwf_assets.io.warehouse import DuckDBWarehouse, StagedWrite, Warehouse, staging_table
from tests.conftest import postgres_or_skip

D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


def rows(day: date, values: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"partition_date": [day] * len(values), "value": values})


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        yield DuckDBWarehouse(tmp_path / "wh.duckdb")
        return
    dsn = postgres_or_skip()
    suffix = f"_t{uuid.uuid4().hex[:8]}_{os.getpid()}"
    wh = PostgresWarehouse(dsn, schema_suffix=suffix)
    yield wh
    with wh.connect() as conn:
        for schema in ("cleaned", "cleaned_staging"):
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}{suffix}" CASCADE')


def values(wh: Warehouse, table: str) -> list[tuple]:
    return sorted(wh.query(f"SELECT partition_date, value FROM {table}").iter_rows())


def test_staging_names_are_per_run_and_outside_the_published_schema() -> None:
    assert staging_table("cleaned.orders", "ab12") == "cleaned_staging.orders__ab12"
    with pytest.raises(ValueError, match="letters and digits"):
        staging_table("cleaned.orders", "x; DROP")


def test_staged_rows_are_invisible_until_published_and_only_their_partitions_move(
    warehouse: Warehouse,
) -> None:
    warehouse.replace_partitions("cleaned.t", pl.concat([rows(D1, [1]), rows(D2, [2])]), [D1, D2])
    staged = staging_table("cleaned.t", "run1")
    warehouse.stage(staged, rows(D2, [20, 21]))
    warehouse.stage(staged, rows(D3, [30]))  # staged, but not in the partitions published
    assert values(warehouse, "cleaned.t") == [(D1, 1), (D2, 2)]
    warehouse.publish([StagedWrite("cleaned.t", staged, (D2,))])
    assert values(warehouse, "cleaned.t") == [(D1, 1), (D2, 20), (D2, 21)]
    warehouse.drop_tables([staged])
    assert not warehouse.table_exists(staged)


def test_one_publication_is_one_transaction(warehouse: Warehouse) -> None:
    warehouse.replace_partitions("cleaned.a", rows(D1, [1]), [D1])
    warehouse.replace_table("cleaned.b", rows(D1, [1]))
    staged_a = staging_table("cleaned.a", "run2")
    warehouse.stage(staged_a, rows(D1, [10]))
    missing = staging_table("cleaned.b", "never")  # fails after a's partition was replaced
    with pytest.raises(Exception, match="does not exist|never"):
        warehouse.publish(
            [StagedWrite("cleaned.a", staged_a, (D1,)), StagedWrite("cleaned.b", missing)]
        )
    assert values(warehouse, "cleaned.a") == [(D1, 1)]
    assert values(warehouse, "cleaned.b") == [(D1, 1)]


def test_a_whole_table_publication_replaces_every_row(warehouse: Warehouse) -> None:
    warehouse.replace_table("cleaned.ref", rows(D1, [1, 2, 3]))
    staged = staging_table("cleaned.ref", "run3")
    warehouse.stage(staged, rows(D2, [7]))
    warehouse.publish([StagedWrite("cleaned.ref", staged)])
    assert values(warehouse, "cleaned.ref") == [(D2, 7)]


def test_the_first_publication_creates_the_table_even_from_an_empty_stage(
    warehouse: Warehouse,
) -> None:
    staged = staging_table("cleaned.fresh", "run4")
    warehouse.stage(staged, rows(D1, []).cast({"value": pl.Int64}))
    warehouse.publish([StagedWrite("cleaned.fresh", staged, (D1,))])
    assert warehouse.table_exists("cleaned.fresh")
    assert values(warehouse, "cleaned.fresh") == []
