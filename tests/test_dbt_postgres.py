"""The dbt marts on the real Postgres, in schemas of their own (a suffix per test run), built
through Dagster; the same input gives the same marts as on DuckDB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal
from psycopg.rows import dict_row

from aiwf_assets.ingest.spec import load_sources
from aiwf_assets.io.postgres import PostgresWarehouse
from aiwf_assets.marts.assets import dbt_window_vars
from aiwf_assets.marts.definitions import build_marts_definitions
from aiwf_assets.marts.project import marts_project
from aiwf_assets.marts.resources import WarehouseDbtCliResource, local_dbt_executable
from aiwf_assets.ml.marts import last_mart_day
from aiwf_assets.partitions import daily_partitions_def
from aiwf_assets.resources import WarehouseResource
from tests.conftest import POSTGRES_DSN, postgres_or_skip
from tests.dbt_fixtures import (
    CHANGED_LINE_REPORT,
    DELIVERY_DAYS,
    DORA,
    LATE_LINE_ORDERS,
    MART_KEYS,
    STORE_DAYS,
    STORE_RETURN_CUSTOMERS,
    deliver_excess_returns,
    deliver_reused_receipt,
    order_customers,
    postgres_schema_suffix,
    read_mart,
    redeliver_changed,
    redeliver_without,
    seed_cleaned,
    seed_store_returns,
)

pytestmark = pytest.mark.postgres

D5, D6, D7 = DELIVERY_DAYS


@dataclass
class Built:
    defs: dg.Definitions
    result: dg.ExecuteInProcessResult
    warehouse: PostgresWarehouse
    target: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    postgres_or_skip()
    target = tmp_path_factory.mktemp("dbt_target")
    with postgres_schema_suffix() as suffix, pytest.MonkeyPatch.context() as patch:
        patch.setenv("DBT_TARGET_PATH", str(target))
        resource = WarehouseResource(kind="postgres", dsn=POSTGRES_DSN, schema_suffix=suffix)
        seed_cleaned(resource.get())
        defs = build_marts_definitions(
            resource,
            target_path=target,
            sources=load_sources(),
            partitions=daily_partitions_def("2026-01-01", None),
        )
        result = dg.materialize(
            list(defs.assets),
            resources=defs.resources,
            tags={
                "dagster/asset_partition_range_start": D5.isoformat(),
                "dagster/asset_partition_range_end": D7.isoformat(),
            },
            raise_on_error=False,
        )
        yield Built(defs, result, resource.get(), target)


def test_the_build_passes_every_check(built: Built) -> None:
    assert built.result.success
    evaluations = built.result.get_asset_check_evaluations()
    checks = built.defs.resolve_asset_graph().asset_check_keys
    assert {e.check_name for e in evaluations} == {key.name for key in checks}
    assert all(e.passed for e in evaluations)


def test_assets_are_kinds_postgres(built: Built) -> None:
    graph = built.defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        assert graph.get(key).kinds == {"dbt", "postgres"}, key


def test_every_schema_carries_the_run_suffix(built: Built) -> None:
    suffix = built.warehouse.schema_suffix
    with psycopg.connect(POSTGRES_DSN) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE right(table_schema, %s) = %s",
            [len(suffix), suffix],
        ).fetchall()
    schemas = {schema.removesuffix(suffix) for schema, _ in tables}
    # dbt_test__audit: the failing rows of the tests that store them (ids_not_reused)
    assert schemas == {"cleaned", "staging", "intermediate", "marts", "dbt_test__audit"}
    assert ("marts" + suffix, "customer_rfm") in tables


def test_tables_report_row_counts(built: Built) -> None:
    counts = {
        event.asset_key.to_user_string(): event.materialization.metadata["dagster/row_count"].value
        for event in built.result.get_asset_materialization_events()
        if "dagster/row_count" in event.materialization.metadata
    }
    assert counts["fct_orders"] == 8 and counts["dim_customers"] == 4


def postgres_dbt(built: Built) -> WarehouseDbtCliResource:
    """dbt on the module's Postgres warehouse (its schema suffix), with the built project."""
    return WarehouseDbtCliResource(
        project_dir=marts_project("postgres", built.target),
        warehouse=WarehouseResource(
            kind="postgres", dsn=POSTGRES_DSN, schema_suffix=built.warehouse.schema_suffix
        ),
        dbt_executable=local_dbt_executable(),
    )


def test_postgres_and_duckdb_build_the_same_marts(built: Built, tmp_path: Path) -> None:
    resource = WarehouseResource(kind="duckdb", path=str(tmp_path / "warehouse.duckdb"))
    seed_cleaned(resource.get())
    dbt = WarehouseDbtCliResource(
        project_dir=marts_project("duckdb", built.target),
        warehouse=resource,
        dbt_executable=local_dbt_executable(),
    )
    dbt.cli(["build"], target_path=tmp_path / "dbt").wait()
    for name in MART_KEYS:
        assert_frame_equal(read_mart(built.warehouse, name), read_mart(resource.get(), name))
    newest = last_mart_day(built.warehouse, "fct_customer_daily_activity", "activity_date")
    assert (
        newest == read_mart(built.warehouse, "fct_customer_daily_activity")["activity_date"].max()
    )
    assert newest == last_mart_day(resource.get(), "fct_customer_daily_activity", "activity_date")


def test_a_changed_redelivery_warns_as_on_duckdb(built: Built, tmp_path: Path) -> None:
    """The redeliveries_unchanged tests report the same rows as on DuckDB
    (tests/test_dbt_duckdb.py); the shared warehouse gets its deliveries back afterwards."""
    redeliver_changed(built.warehouse)
    try:
        dbt = postgres_dbt(built)
        args = ["test", "--select", "test_name:redeliveries_unchanged"]
        dbt.cli(args, target_path=tmp_path).wait()
        results = json.loads((tmp_path / "run_results.json").read_text())["results"]
        outcome = {r["unique_id"].split(".")[2]: (r["status"], r["failures"]) for r in results}
        assert outcome == {
            "stg_cleaned__order_lines_redeliveries_unchanged": ("warn", 1),
            "stg_cleaned__orders_redeliveries_unchanged": ("warn", 1),
            "stg_cleaned__interactions_redeliveries_unchanged": ("pass", 0),
        }
        compiled = tmp_path / "compiled" / "aiwf" / "models" / "staging"
        test_sql = "_stg_cleaned__models.yml/stg_cleaned__order_lines_redeliveries_unchanged.sql"
        sql = (compiled / test_sql).read_text()
        with psycopg.connect(POSTGRES_DSN, row_factory=dict_row) as conn:
            assert conn.execute(sql).fetchall() == [CHANGED_LINE_REPORT]
    finally:
        seed_cleaned(built.warehouse, [D6, D7])


def _daily_outcomes(
    dbt: WarehouseDbtCliResource, target: Path, test: str, args: list[str]
) -> dict[date, tuple[str, int]]:
    """`test`'s (status, failures) in the daily runs of the 6th and the 7th."""
    outcomes = {}
    for day in (D6, D7):
        window = dbt_window_vars(day, day + timedelta(days=1))
        dbt.cli([*args, "--vars", window], target_path=target, raise_on_error=False).wait()
        results = json.loads((target / "run_results.json").read_text())["results"]
        by_name = {r["unique_id"].split(".")[2]: r for r in results}
        outcomes[day] = (by_name[test]["status"], by_name[test]["failures"])
    return outcomes


def _failing_rows(target: Path, models_yml: str, test: str) -> list[dict]:
    """The rows `test`'s compiled SQL (of the last run) returns on the Postgres warehouse."""
    sql = (target / "compiled" / "aiwf" / "models" / models_yml / f"{test}.sql").read_text()
    with psycopg.connect(POSTGRES_DSN, row_factory=dict_row) as conn:
        return conn.execute(sql).fetchall()


def test_returns_beyond_their_sale_warn_as_on_duckdb(built: Built, tmp_path: Path) -> None:
    """returns_within_their_sale reports the same pairs as on DuckDB, in the 7th's run and not in
    the 6th's; the shared warehouse gets its 7th delivery and fct_order_lines back afterwards."""
    dbt = postgres_dbt(built)
    test = "fct_order_lines_returns_within_their_sale"
    deliver_excess_returns(built.warehouse)
    try:
        outcomes = _daily_outcomes(dbt, tmp_path, test, ["build", "--select", "+fct_order_lines"])
        assert outcomes == {D6: ("pass", 0), D7: ("warn", 2)}
        rows = _failing_rows(tmp_path, "marts/_marts__models.yml", test)
        assert sorted(rows, key=lambda r: r["original_order_id"]) == [
            {"original_order_id": "web:W2", "sku": "SKU-00004", "units_returned": 3,
             "units_sold": 1, "first_return": "web:R1", "first_delivered": D7},
            {"original_order_id": "web:W9", "sku": "SKU-00001", "units_returned": 1,
             "units_sold": 0, "first_return": "web:R3", "first_delivered": D7},
        ]
    finally:
        seed_cleaned(built.warehouse, [D7])
        dbt.cli(["build", "--select", "+fct_order_lines"], target_path=tmp_path).wait()


def test_an_order_id_used_again_days_later_fails_as_on_duckdb(built: Built, tmp_path: Path) -> None:
    """ids_not_reused fails on store:T1 (the 5th's cash sale, the 7th's jacket) and web:W3
    (23 hours apart) in the 7th's run, on web:W3 in the 6th's (the days the reuse touches);
    the rows name the delivery days and the times. The
    shared warehouse gets its 7th delivery back afterwards."""
    dbt = postgres_dbt(built)
    test = "stg_cleaned__orders_ids_not_reused"
    seed_cleaned(built.warehouse, [D5, D6, D7])
    deliver_reused_receipt(built.warehouse)
    try:
        outcomes = _daily_outcomes(dbt, tmp_path, test, ["test", "--select", test])
        # the 6th's run reports web:W3, which it delivered a copy of
        assert outcomes == {D6: ("fail", 1), D7: ("fail", 2)}
        rows = _failing_rows(tmp_path, "staging/_stg_cleaned__models.yml", test)
        rows.sort(key=lambda r: r["order_id"])
        assert [(r["order_id"], r["delivery_days"]) for r in rows] == [
            ("store:T1", "2026-01-05, 2026-01-07"),
            ("web:W3", "2026-01-06, 2026-01-07"),
        ]
        gaps = [str(r["last_time"] - r["first_time"]) for r in rows]
        assert gaps == ["2 days, 0:00:00", "23:00:00"]
    finally:
        seed_cleaned(built.warehouse, [D7])


def test_a_store_return_without_the_card_counts_for_the_buyer_on_postgres(
    built: Built, tmp_path: Path
) -> None:
    """As on DuckDB (test_a_store_return_without_the_card_counts_for_the_buyer), in schemas
    of its own: after day 1's and then day 4's incremental run, Dora's RFM is net of the
    return she made without her card; after days 3 and 5 (Gina's return before her receipt)
    every return has the customer it has on DuckDB, and every mart equals a DuckDB full build."""
    d1, _, d3, d4, d5 = STORE_DAYS
    duckdb = WarehouseResource(kind="duckdb", path=str(tmp_path / "full.duckdb"))
    seed_store_returns(duckdb.get())
    WarehouseDbtCliResource(
        project_dir=marts_project("duckdb", built.target),
        warehouse=duckdb,
        dbt_executable=local_dbt_executable(),
    ).cli(["build"], target_path=tmp_path / "dbt_duckdb").wait()
    with postgres_schema_suffix() as suffix:
        resource = WarehouseResource(kind="postgres", dsn=POSTGRES_DSN, schema_suffix=suffix)
        warehouse = resource.get()
        dbt = WarehouseDbtCliResource(
            project_dir=marts_project("postgres", built.target),
            warehouse=resource,
            dbt_executable=local_dbt_executable(),
        )
        target = tmp_path / "dbt"
        for day in (d1, d4, d3, d5):
            seed_store_returns(warehouse, [day])
            window = dbt_window_vars(day, day + timedelta(days=1))
            dbt.cli(["build", "--select", "tag:daily", "--vars", window], target_path=target).wait()
            if day == d4:
                dbt.cli(["build", "--exclude", "tag:daily"], target_path=target).wait()
                rfm = read_mart(warehouse, "customer_rfm").filter(pl.col("customer_key") == DORA)
                assert rfm.select("frequency", "monetary").rows() == [(1, 7.75)]
        dbt.cli(["build", "--exclude", "tag:daily"], target_path=target).wait()
        assert order_customers(warehouse) == STORE_RETURN_CUSTOMERS
        for name in MART_KEYS:
            assert_frame_equal(read_mart(warehouse, name), read_mart(duckdb.get(), name))


def test_an_incremental_window_on_postgres(built: Built, tmp_path: Path) -> None:
    """Runs late in this module: it changes the shared warehouse."""
    redeliver_without(built.warehouse, D5, "app:A1", "store:T1")
    dbt = postgres_dbt(built)
    window = dbt_window_vars(D5, D6)
    dbt.cli(["build", "--select", "tag:daily", "--vars", window], target_path=tmp_path).wait()
    orders = read_mart(built.warehouse, "fct_orders")
    assert orders.filter(pl.col("order_id") == "app:A1")["partition_date"].to_list() == [D6]
    assert "store:T1" not in orders["order_id"].to_list()
    sales = read_mart(built.warehouse, "fct_product_daily_sales")
    assert sales.filter(pl.col("sku") == "SKU-00003")["sales_date"].to_list() == [date(2026, 1, 6)]


def test_a_late_line_counts_in_its_order_on_postgres(built: Built, tmp_path: Path) -> None:
    """As on DuckDB (test_an_order_whose_last_line_arrives_a_day_later): the orders whose last
    line is delivered a day later count it after the incremental run of that day, and the
    blocking fct_orders_match_their_order_lines passes. Runs last: it changes the warehouse."""
    dbt = postgres_dbt(built)
    for day in (D6, D7):
        seed_cleaned(built.warehouse, [day], late_lines=True)
        window = dbt_window_vars(day, day + timedelta(days=1))
        dbt.cli(["build", "--select", "tag:daily", "--vars", window], target_path=tmp_path).wait()
    orders = read_mart(built.warehouse, "fct_orders")
    lines = read_mart(built.warehouse, "fct_order_lines")
    for order_id, expected in LATE_LINE_ORDERS.items():
        row = orders.filter(pl.col("order_id") == order_id).row(0, named=True)
        assert {k: row[k] for k in expected} == pytest.approx(expected), order_id
        assert row["partition_date"] == D6, order_id
        own = lines.filter(pl.col("order_id") == order_id)
        assert own["line_amount"].sum() == pytest.approx(row["order_total"]), order_id
