"""The production Dagster instance (deploy/dagster.yaml) on a real Postgres.

The instance is built from the deploy file itself, with one swap: without a
cluster, the run launcher is the default (in-process) one. Storage, the run
queue and the S3 compute logs are the production configuration, pointed by its
environment variables at a fresh database on the local server and at moto's S3
server on loopback. CI=true fails when Postgres is unreachable; elsewhere the
tests skip.
"""

import copy
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import psycopg
import pytest
import yaml
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from psycopg.conninfo import make_conninfo

from aiwf_assets.k8s import HEAVY_RUN_TAG
from tests.conftest import POSTGRES_DSN, dagster_database, postgres_or_skip

if TYPE_CHECKING:
    from tests.s3_server import S3Endpoint

pytestmark = pytest.mark.postgres
pytest_plugins = ["tests.s3_server"]  # the s3_endpoint fixture

DEPLOY_INSTANCE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"
DATA_VERSION_TAG = "dagster/data_version"
DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01")
COMPUTE_LOG_PREFIX = "aiwf/dagster-compute-logs"


def without_cluster(config: dict) -> dict:
    """The deploy instance config with the K8s run launcher swapped for the default one."""
    local = copy.deepcopy(config)
    local["run_launcher"] = {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}
    return local


def content_version(rows: list[tuple[str, int]]) -> str:
    return hashlib.sha256(repr(sorted(rows)).encode()).hexdigest()[:16]


def toy_assets(orders_by_day: dict[str, list[tuple[str, int]]]) -> list[dg.AssetsDefinition]:
    """A daily asset reporting a content data version, and a summary downstream of it."""

    @dg.asset(partitions_def=DAYS)
    def toy_orders(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        rows = orders_by_day[context.partition_key]
        print(f"toy_orders {context.partition_key}: {len(rows)} rows")  # a compute log line
        return dg.MaterializeResult(
            metadata={"dagster/row_count": len(rows)},
            data_version=dg.DataVersion(content_version(rows)),
        )

    @dg.asset(deps=[toy_orders])
    def toy_summary() -> dg.MaterializeResult:
        rows = [row for day in sorted(orders_by_day) for row in orders_by_day[day]]
        return dg.MaterializeResult(data_version=dg.DataVersion(content_version(rows)))

    return [toy_orders, toy_summary]


@pytest.fixture
def fresh_database() -> Iterator[dict[str, str]]:
    """A database of its own on the local server (dagster-postgres has no schema option)."""
    with dagster_database(postgres_or_skip(POSTGRES_DSN)) as database:
        yield database


@pytest.fixture
def instance_home(
    fresh_database: dict[str, str],
    s3_endpoint: "S3Endpoint",
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """DAGSTER_HOME with deploy/dagster.yaml (swapped as above), its env aimed at the services."""
    monkeypatch.setenv("AIWF_S3_BUCKET", s3_endpoint.bucket)
    monkeypatch.setenv("AIWF_S3_ENDPOINT", s3_endpoint.url)
    monkeypatch.setenv("DAGSTER_COMPUTE_LOG_PREFIX", COMPUTE_LOG_PREFIX)
    monkeypatch.setenv("DAGSTER_PG_HOST", fresh_database.get("host", "127.0.0.1"))
    monkeypatch.setenv("DAGSTER_PG_PORT", fresh_database.get("port", "5432"))
    monkeypatch.setenv("DAGSTER_PG_USER", fresh_database.get("user", "postgres"))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", fresh_database.get("password", ""))
    monkeypatch.setenv("DAGSTER_PG_DB", fresh_database["dbname"])
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = without_cluster(yaml.safe_load(DEPLOY_INSTANCE.read_text()))
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def prod_instance(instance_home: Path) -> Iterator[dg.DagsterInstance]:
    instance = dg.DagsterInstance.from_config(str(instance_home))
    try:
        yield instance
    finally:
        instance.dispose()


def data_versions(instance: dg.DagsterInstance, key: str, partition: str) -> list[str]:
    """Data versions of one partition's materialisations, oldest first."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition]),
        limit=100,
        ascending=True,
    ).records
    return [r.asset_materialization.tags[DATA_VERSION_TAG] for r in records]  # type: ignore[union-attr]


def test_the_deploy_instance_stores_in_postgres_and_limits_the_run_queue(
    prod_instance: dg.DagsterInstance,
) -> None:
    assert isinstance(prod_instance.run_storage, PostgresRunStorage)
    assert isinstance(prod_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(prod_instance.schedule_storage, PostgresScheduleStorage)
    queue = prod_instance.run_coordinator.get_run_queue_config()  # type: ignore[attr-defined]
    assert queue.max_concurrent_runs == 8
    limits = {limit["key"]: limit["limit"] for limit in queue.tag_concurrency_limits}
    assert limits[HEAVY_RUN_TAG] == 1


def test_materialisations_and_data_versions_round_trip_through_postgres(
    prod_instance: dg.DagsterInstance, instance_home: Path, fresh_database: dict[str, str]
) -> None:
    orders = {
        "2026-01-01": [("o-1", 2), ("o-2", 1)],
        "2026-01-02": [("o-3", 5)],
    }
    assets = toy_assets(orders)
    for day in ("2026-01-01", "2026-01-02"):
        assert dg.materialize(assets[:1], partition_key=day, instance=prod_instance).success
    assert dg.materialize(assets, selection=["toy_summary"], instance=prod_instance).success
    # day 1 again with the same content, then with a changed order
    assert dg.materialize(assets[:1], partition_key="2026-01-01", instance=prod_instance).success
    orders["2026-01-01"] = [("o-1", 2), ("o-2", 4)]
    assert dg.materialize(assets[:1], partition_key="2026-01-01", instance=prod_instance).success

    day1 = data_versions(prod_instance, "toy_orders", "2026-01-01")
    assert len(day1) == 3
    assert day1[0] == day1[1] == content_version([("o-1", 2), ("o-2", 1)])
    assert day1[2] == content_version([("o-1", 2), ("o-2", 4)])
    assert data_versions(prod_instance, "toy_orders", "2026-01-02") == [
        content_version(orders["2026-01-02"])
    ]
    assert prod_instance.get_materialized_partitions(dg.AssetKey("toy_orders")) == {
        "2026-01-01",
        "2026-01-02",
    }

    (summary_record,) = prod_instance.get_asset_records([dg.AssetKey("toy_summary")])
    last = summary_record.asset_entry.last_materialization_record
    assert last is not None
    summary_run = prod_instance.get_run_by_id(last.run_id)
    assert summary_run is not None and summary_run.status == dg.DagsterRunStatus.SUCCESS
    run_events = {
        record.event_log_entry.dagster_event_type
        for record in prod_instance.get_records_for_run(last.run_id).records
    }
    assert {
        dg.DagsterEventType.RUN_SUCCESS,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.ASSET_MATERIALIZATION,
    } <= run_events

    # a second process reading the same configuration sees it all
    with dg.DagsterInstance.from_config(str(instance_home)) as reader:
        assert len(reader.get_run_records()) == 5
        assert data_versions(reader, "toy_orders", "2026-01-01") == day1

    # and it is in that Postgres database, not anywhere else
    with psycopg.connect(make_conninfo(**fresh_database)) as con:
        stored = con.execute(
            "SELECT count(*) FROM event_logs"
            " WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key LIKE %s",
            ['%"toy_orders"%'],
        ).fetchone()
        runs = con.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'").fetchone()
    assert stored == (4,)
    assert runs == (5,)


def test_step_output_is_uploaded_to_s3(
    prod_instance: dg.DagsterInstance, s3_endpoint: "S3Endpoint"
) -> None:
    assets = toy_assets({"2026-01-03": [("o-9", 1)]})
    result = dg.materialize(assets[:1], partition_key="2026-01-03", instance=prod_instance)
    assert result.success

    client = s3_endpoint.client()
    listing = client.list_objects_v2(Bucket=s3_endpoint.bucket, Prefix=COMPUTE_LOG_PREFIX)
    keys = [item["Key"] for item in listing.get("Contents", [])]
    stdout_keys = [k for k in keys if result.run_id in k and k.endswith(".out")]
    assert stdout_keys, keys
    bodies = [
        client.get_object(Bucket=s3_endpoint.bucket, Key=k)["Body"].read() for k in stdout_keys
    ]
    assert any(b"toy_orders 2026-01-03: 1 rows" in body for body in bodies)
