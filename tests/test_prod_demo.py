"""`aiwf --env prod demo` end to end: S3 (moto's server on loopback), the Postgres warehouse
and the production Dagster instance on a Postgres database of its own.

The main run is tiny (5 days at scale 0.05): enough for every data layer and the dbt marts,
too short for the models (churn needs 30-day label windows, the recommender and demand
holdouts 28 days), so it materialises landing -> raw -> cleaned -> marts only. The whole
pipeline, models and CRM export included, is `test_the_whole_pipeline_trains_and_exports_to_s3`
on 60 days, opt-in (AIWF_TEST_PROD_DEMO_FULL=1) because it takes minutes; the S3 exports are
also checked directly. CI=true fails when Postgres is unreachable; elsewhere the Postgres
tests skip.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import boto3
import dagster as dg
import polars as pl
import psycopg
import pyarrow.parquet as pq
import pytest
import yaml
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage
from psycopg.conninfo import make_conninfo

from aiwf_assets.cli import main
from aiwf_assets.io.model_store import ARTIFACT_SUFFIX
from aiwf_assets.io.postgres import PostgresWarehouse
from aiwf_assets.marts.definitions import build_marts_definitions
from aiwf_assets.partitions import partitions_for
from aiwf_assets.prod_demo import (
    DEPLOY_INSTANCE,
    UPLOAD_MANIFEST,
    ProdDemoError,
    check_environment,
    check_services,
    prepare_instance,
    run_prod_demo,
    s3_store,
    upload_landing,
)
from aiwf_assets.resources import ExportsResource, build_resources
from aiwf_assets.settings import Settings, get_settings, reset_settings_cache
from tests.conftest import POSTGRES_DSN, dagster_database, postgres_or_skip
from tests.dbt_fixtures import postgres_schema_suffix
from tests.domains import data_definitions, sources_of
from tests.landing_corpus import lines_read_as_resent

pytest_plugins = ["tests.s3_server"]  # the s3_server and s3_endpoint fixtures

DAYS = 5
SCALE = 0.05
SEED = 11
PREFIX = "aiwf-demo"
PII_KEY = "5e" * 32
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
DAILY_RAW = ["raw_app_orders", "raw_crm_tickets", "raw_pos_transactions", "raw_web_orders",
             "raw_web_sessions"]  # fmt: skip
DAILY_CLEANED = ["order_lines", "orders", "interactions", "quarantine"]
ORDER_CHANNELS = ["web_orders", "app_orders", "pos_transactions"]
DATA_VERSION_TAG = "dagster/data_version"
REQUIRED = [
    "AIWF_S3_BUCKET", "AIWF_WAREHOUSE_DSN", "AIWF_PII_KEY", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB",
]  # fmt: skip
PROD_VARIABLES = [
    "AIWF_S3_BUCKET", "AIWF_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AIWF_WAREHOUSE_DSN",
    "AIWF_PII_KEY", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB", "DAGSTER_HOME", "DAGSTER_COMPUTE_LOG_PREFIX",
]  # fmt: skip


@dataclass(frozen=True)
class ProdDemo:
    settings: Settings
    s3_url: str
    bucket: str
    database: dict[str, str]  # the Dagster instance's database (conninfo parameters)
    warehouse: PostgresWarehouse
    instance_home: Path
    output: str

    def s3(self):
        return boto3.client("s3", endpoint_url=self.s3_url, region_name="us-east-1")

    def objects(self, *parts: str) -> list[str]:
        prefix = "/".join([PREFIX, *parts]) + "/"
        pages = self.s3().get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return sorted(
            item["Key"].removeprefix(prefix)
            for page in pages
            for item in page.get("Contents", [])
            if not item["Key"].endswith("/")  # pyarrow's directory markers
        )

    def get(self, *parts: str) -> bytes:
        key = "/".join([PREFIX, *parts])
        return self.s3().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def landed_days(self) -> list[str]:
        return sorted(
            {k.split("/")[1].split(".")[0] for k in self.objects("landing")
             if k.count("/") == 1 and not k.startswith("reference/")}
        )  # fmt: skip

    def count(self, table: str, where: str = "") -> int:
        return int(self.warehouse.query(f"SELECT count(*) AS n FROM {table} {where}")["n"][0])


# services ---------------------------------------------------------------------------------
def bucket_name() -> str:
    return f"aiwf-test-{uuid.uuid4().hex[:12]}"


def create_bucket(s3_url: str, bucket: str) -> None:
    """(with the test credentials in the environment)"""
    boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1").create_bucket(Bucket=bucket)


def prod_environment(
    s3_url: str, bucket: str, database: dict[str, str], suffix: str, home: Path
) -> dict[str, str]:
    """Everything `aiwf --env prod demo` reads, aimed at the test's services."""
    return {
        **AWS_TEST_ENV,
        "AIWF_ENV": "prod",
        "AIWF_HOME": str(home),
        "AIWF_S3_ENDPOINT": s3_url,
        "AIWF_S3_BUCKET": bucket,
        "AIWF_S3_PREFIX": PREFIX,
        "AIWF_WAREHOUSE_DSN": POSTGRES_DSN,
        "AIWF_WAREHOUSE_SCHEMA_SUFFIX": suffix,
        "AIWF_PII_KEY": PII_KEY,
        "DAGSTER_PG_HOST": database.get("host", "127.0.0.1"),
        "DAGSTER_PG_PORT": database.get("port", "5432"),
        "DAGSTER_PG_USER": database.get("user", "postgres"),
        "DAGSTER_PG_PASSWORD": database.get("password", ""),
        "DAGSTER_PG_DB": database["dbname"],
    }


def apply_environment(patch: pytest.MonkeyPatch, values: dict[str, str]) -> Settings:
    for name in (*PROD_VARIABLES, "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        patch.delenv(name, raising=False)
    for name, value in values.items():
        patch.setenv(name, value)
    reset_settings_cache()
    return get_settings()


def data_and_marts(settings: Settings, dbt_target: Path) -> dg.Definitions:
    """Landing -> raw -> cleaned -> dbt marts on the prod resources (no models: see above)."""
    resources = build_resources(settings)
    marts = build_marts_definitions(
        resources["warehouse"], target_path=dbt_target,  # type: ignore[arg-type]
        sources=sources_of(settings), partitions=partitions_for(settings),
    )
    return dg.Definitions.merge(
        data_definitions(settings), marts, dg.Definitions(resources=resources)
    )


@contextlib.contextmanager
def prod_demo_run(
    s3_server: str, root: Path, patch: pytest.MonkeyPatch, days: int, defs_for
) -> Iterator[ProdDemo]:
    """`run_prod_demo` on a fresh Dagster database, warehouse schema and bucket; the
    definitions are `defs_for(settings, dbt_target)` (data + marts, or the whole pipeline)."""
    with dagster_database(POSTGRES_DSN) as database, postgres_schema_suffix() as suffix:
        bucket = bucket_name()
        settings = apply_environment(
            patch, prod_environment(s3_server, bucket, database, suffix, root / "home")
        )
        create_bucket(s3_server, bucket)
        patch.setenv("DBT_TARGET_PATH", str(root / "dbt-runs"))
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            code = run_prod_demo(
                seed=SEED, start=date(2026, 1, 1), days=days, scale=SCALE, faults=("all",),
                drift_from=None, defs=defs_for(settings, root / "dbt-target"),
            )
        assert code == 0
        yield ProdDemo(
            settings=settings, s3_url=s3_server, bucket=bucket, database=database,
            warehouse=PostgresWarehouse(POSTGRES_DSN, schema_suffix=suffix),
            instance_home=settings.home / "dagster_home_prod", output=output.getvalue(),
        )


@pytest.fixture(scope="module")
def demo(s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProdDemo]:
    """The prod demo, run once for the module on 5 generated days with every fault."""
    postgres_or_skip()
    root = tmp_path_factory.mktemp("prod_demo")
    with (
        pytest.MonkeyPatch.context() as patch,
        prod_demo_run(s3_server, root, patch, DAYS, data_and_marts) as run,
    ):
        yield run
    reset_settings_cache()


# the main run -----------------------------------------------------------------------------
pg = pytest.mark.postgres


@pg
def test_landing_goes_to_s3_and_truth_stays_local(demo: ProdDemo) -> None:
    landed = demo.objects("landing")
    assert demo.landed_days() == [f"2026-01-0{d}" for d in range(1, DAYS + 1)]
    assert {"reference/customers.csv", "reference/products.csv", "reference/stores.csv"} <= set(
        landed
    )
    manifest = json.loads(demo.get("landing", UPLOAD_MANIFEST))
    assert sorted(manifest["files"]) == [k for k in landed if k != UPLOAD_MANIFEST]
    assert not any(k.startswith("truth/") for k in demo.objects())
    assert (demo.settings.truth_dir / "faults.json").exists()
    assert not demo.settings.landing_dir.exists()  # nothing landed locally


@pg
def test_raw_parquet_on_s3_for_every_landed_day(demo: ProdDemo) -> None:
    days = demo.landed_days()
    storage = demo.objects("storage")
    for asset in DAILY_RAW:
        assert [k for k in storage if k.startswith(f"{asset}/")] == [
            f"{asset}/{day}.parquet" for day in days
        ], asset
    for asset in ("raw_customers", "raw_products", "raw_stores"):
        assert f"{asset}.parquet" in storage
    raw = pq.read_table(io.BytesIO(demo.get("storage", "raw_web_orders", f"{days[0]}.parquet")))
    assert {"_source_file", "_source_row", "_parse_error"} <= set(raw.column_names)
    assert raw.num_rows > 0


def held_back_days(demo: ProdDemo) -> frozenset[str]:
    """The days the volume guard holds back: an empty or (late, so) missing order file."""
    faults = json.loads((demo.settings.truth_dir / "faults.json").read_text())["records"]
    return frozenset(r["date"] for r in faults if r["fault"] in ("empty_file", "late_file"))


def raw_rows(demo: ProdDemo, asset: str, skip_days: frozenset[str] = frozenset()) -> int:
    return sum(
        pq.read_metadata(io.BytesIO(demo.get("storage", asset, name))).num_rows
        for name in demo.objects("storage", asset)
        if not any(day in name for day in skip_days)
    )


@pg
def test_cleaned_rows_account_for_every_raw_row(demo: ProdDemo) -> None:
    """raw (S3) = cleaned + quarantined (Postgres) + duplicates the generator injected."""
    cleaned = dict(
        demo.warehouse.query(
            "SELECT split_part(source_file, '/', 1) AS channel, count(*) AS n "
            "FROM cleaned.order_lines GROUP BY 1"
        ).iter_rows()
    )
    quarantined = dict(
        demo.warehouse.query(
            "SELECT channel, count(*) AS n FROM cleaned.quarantine GROUP BY 1"
        ).iter_rows()
    )
    faults = json.loads((demo.settings.truth_dir / "faults.json").read_text())["records"]
    held = held_back_days(demo)
    for channel in ORDER_CHANNELS:
        rows_in = raw_rows(demo, f"raw_{channel}", held)
        injected = sum(
            r["lines_affected"] for r in faults
            if r["channel"] == channel and r["kind"] in ("exact_copy", "order_resent")
            and r["date"] not in held
        )  # fmt: skip
        if channel == "pos_transactions":  # k identical copies read as re-sent (SOURCES.md)
            injected += lines_read_as_resent(
                pl.concat(
                    pl.read_parquet(io.BytesIO(demo.get("storage", f"raw_{channel}", name)))
                    for name in demo.objects("storage", f"raw_{channel}")
                )
            )
        duplicates = rows_in - cleaned.get(channel, 0) - quarantined.get(channel, 0)
        assert rows_in > 0 and 0 <= duplicates <= injected, (channel, rows_in, duplicates)
    assert sum(quarantined.values()) > 0


@pg
def test_cleaned_tables_hold_what_the_instance_recorded(demo: ProdDemo) -> None:
    with dg.DagsterInstance.from_config(str(demo.instance_home)) as instance:
        for asset in DAILY_CLEANED:
            recorded: dict[str, int] = {}
            for record in instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset)), limit=100
            ).records:
                metadata = record.asset_materialization.metadata  # type: ignore[union-attr]
                recorded[record.partition_key or ""] = metadata["dagster/row_count"].value  # type: ignore[assignment]
            stored = dict(
                demo.warehouse.query(
                    f"SELECT CAST(partition_date AS text) AS day, count(*) AS n "
                    f"FROM cleaned.{asset} GROUP BY 1"
                ).iter_rows()
            )
            assert {day: n for day, n in recorded.items() if n} == stored, asset


@pg
def test_marts_in_postgres_deduplicate_the_cleaned_layer(demo: ProdDemo) -> None:
    lines = demo.count("(SELECT DISTINCT order_id, line_number FROM cleaned.order_lines) AS d")
    orders = demo.count("(SELECT DISTINCT order_id FROM cleaned.orders) AS d")
    assert lines > 0 and demo.count("marts.fct_order_lines") == lines
    assert demo.count("marts.fct_orders") == orders
    assert demo.count("marts.dim_products") == demo.count("cleaned.products")
    assert demo.count("marts.dim_customers") >= demo.count("cleaned.customers")
    daily = demo.warehouse.query(
        "SELECT sum(units) AS units FROM marts.fct_product_daily_sales"
    )["units"][0]
    assert daily == demo.warehouse.query(
        "SELECT sum(quantity) AS units FROM marts.fct_order_lines"
    )["units"][0]
    # every schema of the run carries its suffix: nothing was written unsuffixed
    suffix = demo.warehouse.schema_suffix
    with psycopg.connect(POSTGRES_DSN) as con:
        schemas = {
            name for (name,) in con.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE right(schema_name, %s)"
                " = %s", [len(suffix), suffix],
            ).fetchall()
        }  # fmt: skip
    assert {"cleaned", "staging", "intermediate", "marts"} <= {
        s.removesuffix(suffix) for s in schemas
    }


@pg
def test_the_instance_is_the_deploy_one_on_postgres(demo: ProdDemo) -> None:
    config = yaml.safe_load((demo.instance_home / "dagster.yaml").read_text())
    deployed = yaml.safe_load(DEPLOY_INSTANCE.read_text())
    assert config["storage"] == deployed["storage"]
    assert config["run_launcher"]["class"] == "DefaultRunLauncher"
    assert not list(demo.instance_home.glob("**/*.db"))  # no SQLite storage beside it
    days = set(demo.landed_days())
    with dg.DagsterInstance.from_config(str(demo.instance_home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        held = held_back_days(demo)
        assert held and max(days) not in held
        for asset in (*DAILY_RAW, *DAILY_CLEANED):
            key = dg.AssetKey(asset)
            published = days - held if asset in DAILY_CLEANED else days
            assert instance.get_materialized_partitions(key) == published, asset
            latest = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[max(days)]), limit=1
            ).records
            assert latest[0].asset_materialization.tags.get(DATA_VERSION_TAG), asset  # type: ignore[union-attr]
        runs = instance.get_run_records()
        statuses = [r.dagster_run.status for r in runs]
        # the daily run fails for the held-back day; every other run succeeds
        assert statuses.count(dg.DagsterRunStatus.FAILURE) == 1
        assert statuses.count(dg.DagsterRunStatus.SUCCESS) == len(runs) - 1
        # the landing was observed first, as by `aiwf demo` (the sensor then has nothing new)
        observed = instance.fetch_observations(dg.AssetKey("landing_web_orders"), limit=100)
        assert {r.partition_key for r in observed.records} == days
    with psycopg.connect(make_conninfo(**demo.database)) as con:
        versions = con.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
            " AND asset_key LIKE %s AND event LIKE %s",
            ['%"fct_orders"%', f"%{DATA_VERSION_TAG}%"],
        ).fetchone()
    assert versions is not None and versions[0] >= 1


@pg
def test_the_summary_reads_postgres_and_points_at_s3(demo: ProdDemo) -> None:
    out = demo.output
    base = f"s3://{demo.bucket}/{PREFIX}"
    for where in ("landing", "storage", "models", "exports", "dagster-compute-logs"):
        assert f"{base}/{where}" in out
    assert f"uploaded {len(demo.objects('landing')) - 1} landing files to {base}/landing" in out
    for table in ("cleaned.order_lines", "cleaned.quarantine", "marts.fct_order_lines"):
        assert f"  {table:<40} {demo.count(table):>10,} rows" in out  # the summary's format
    assert "quarantined rows by reason:" in out
    assert f"/{demo.database['dbname']}  (DAGSTER_HOME {demo.instance_home})" in out
    assert PII_KEY not in out


# checks before anything runs ---------------------------------------------------------------
def test_missing_settings_are_named_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # main() sets AIWF_ENV itself; monkeypatch restores it afterwards
    apply_environment(monkeypatch, {"AIWF_ENV": "local", "AIWF_HOME": str(tmp_path / "home")})
    code = main(["--env", "prod", "demo", "--days", "2", "--scale", "0.01"])
    reset_settings_cache()
    assert code == 2
    err = capsys.readouterr().err
    for name in REQUIRED:
        assert f"  {name}: " in err
    assert not (tmp_path / "home").exists()  # nothing generated, no instance written


def test_an_empty_password_is_a_setting_but_an_empty_host_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = prod_environment("http://127.0.0.1:9", "b", {"dbname": "d"}, "", tmp_path)
    settings = apply_environment(monkeypatch, values)
    assert check_environment(settings, os.environ).password == ""
    monkeypatch.setenv("DAGSTER_PG_HOST", "")
    with pytest.raises(ProdDemoError, match="DAGSTER_PG_HOST") as raised:
        check_environment(settings, os.environ)
    assert "DAGSTER_PG_PASSWORD" not in str(raised.value)
    reset_settings_cache()


def test_a_missing_bucket_is_named(
    s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = prod_environment(s3_server, "no-such-bucket", {"dbname": "d"}, "", tmp_path)
    settings = apply_environment(monkeypatch, values)
    with pytest.raises(ProdDemoError, match="'no-such-bucket' .AIWF_S3_BUCKET. does not exist"):
        check_services(settings, check_environment(settings, os.environ))
    reset_settings_cache()


def test_the_instance_file_never_replaces_one_aiwf_did_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = prod_environment("http://127.0.0.1:9", "b", {"dbname": "d"}, "", tmp_path)
    settings = apply_environment(monkeypatch, values)
    home = prepare_instance(settings, os.environ)
    assert home == settings.home / "dagster_home_prod"
    assert prepare_instance(settings, os.environ) == home  # its own file: rewritten
    local = tmp_path / "local_dagster_home"
    local.mkdir()
    (local / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(local))
    with pytest.raises(ProdDemoError, match="unset DAGSTER_HOME"):
        prepare_instance(settings, os.environ)
    assert (local / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
    reset_settings_cache()


# S3 pieces ----------------------------------------------------------------------------------
def test_a_second_upload_removes_what_only_the_first_uploaded(
    s3_endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = prod_environment(s3_endpoint.url, s3_endpoint.bucket, {"dbname": "d"}, "", tmp_path)
    landing = s3_store(apply_environment(monkeypatch, values), "landing")
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, days in ((first, 3), (second, 2)):
        for day in range(1, days + 1):
            (folder / "web_orders").mkdir(parents=True, exist_ok=True)
            (folder / "web_orders" / f"2026-01-0{day}.jsonl").write_text(f"{folder.name}\n")
    upload_landing(first, landing)
    upload_landing(second, landing)
    objects = s3_endpoint.client().list_objects_v2(Bucket=s3_endpoint.bucket)["Contents"]
    keys = sorted(o["Key"] for o in objects if not o["Key"].endswith("/"))  # not dir markers
    assert keys == [
        f"{PREFIX}/landing/{UPLOAD_MANIFEST}",
        f"{PREFIX}/landing/web_orders/2026-01-01.jsonl",
        f"{PREFIX}/landing/web_orders/2026-01-02.jsonl",
    ]
    body = s3_endpoint.client().get_object(Bucket=s3_endpoint.bucket, Key=keys[1])["Body"]
    assert body.read() == b"second\n"
    reset_settings_cache()


def test_exports_go_to_s3_in_prod(
    s3_endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = prod_environment(s3_endpoint.url, s3_endpoint.bucket, {"dbname": "d"}, "", tmp_path)
    exports = build_resources(apply_environment(monkeypatch, values))["exports"]
    assert isinstance(exports, ExportsResource)
    assert exports.root == f"s3://{s3_endpoint.bucket}/{PREFIX}/exports"
    frame = pl.DataFrame({"customer_key": ["a1", "b2"], "risk_band": ["low", "high"]})
    written = exports.write("crm_export", frame)
    assert written == [
        f"s3://{s3_endpoint.bucket}/{PREFIX}/exports/crm_export.csv",
        f"s3://{s3_endpoint.bucket}/{PREFIX}/exports/crm_export.parquet",
    ]
    client = s3_endpoint.client()
    csv = client.get_object(Bucket=s3_endpoint.bucket, Key=f"{PREFIX}/exports/crm_export.csv")
    assert pl.read_csv(csv["Body"].read()).equals(frame)
    parquet = client.get_object(
        Bucket=s3_endpoint.bucket, Key=f"{PREFIX}/exports/crm_export.parquet"
    )
    assert pl.read_parquet(io.BytesIO(parquet["Body"].read())).equals(frame)
    assert not (tmp_path / "exports").exists()
    reset_settings_cache()


# the whole pipeline, models included ----------------------------------------------------------
FULL_DAYS = 60


def whole_pipeline(settings: Settings, dbt_target: Path) -> dg.Definitions:
    """Every domain's assets on the prod resources, as the code location assembles them, with
    the dbt manifest in `dbt_target` (the code location keeps it in dbt_project/target)."""
    from aiwf_assets.ml.definitions import build_ml_definitions
    from aiwf_assets.monitoring.definitions import build_monitoring_definitions

    return dg.Definitions.merge(
        data_and_marts(settings, dbt_target), build_ml_definitions(),
        build_monitoring_definitions(sources_of(settings), partitions_for(settings)),
    )


@pg
@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("AIWF_TEST_PROD_DEMO_FULL") != "1",
    reason="the 60-day prod demo with models takes minutes: set AIWF_TEST_PROD_DEMO_FULL=1",
)
def test_the_whole_pipeline_trains_and_exports_to_s3(
    s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_or_skip()
    with prod_demo_run(s3_server, tmp_path, monkeypatch, FULL_DAYS, whole_pipeline) as demo:
        models = demo.objects("models")
        for family in ("churn", "segmentation", "demand", "recommender"):
            registry = json.loads(demo.get("models", "registry", f"{family}.json"))
            champion = registry["champions"][-1]
            assert f"artifacts/{family}/{champion}{ARTIFACT_SUFFIX}" in models, family
            assert f"cards/{family}/{champion}.json" in models, family
            assert f"{family:<13} no champion" not in demo.output
        export = pl.read_parquet(io.BytesIO(demo.get("exports", "crm_export.parquet")))
        assert export.height == demo.count("serving.crm_export") > 0
        assert pl.read_csv(demo.get("exports", "crm_export.csv")).height == export.height
        # a row for every CRM customer, those who have not bought yet too (no score)
        identified = export.filter(pl.col("population") == "identified")
        assert identified.height == demo.count("marts.dim_customers", "WHERE is_known_to_crm")
        with dg.DagsterInstance.from_config(str(demo.instance_home)) as instance:
            for asset in ("churn_model", "crm_export", "fct_orders", "order_lines"):
                assert instance.get_latest_materialization_event(dg.AssetKey(asset)), asset
            runs = instance.get_run_records()
            assert runs
            # the one failure the demo data asks for: cleaning holds back the days whose files
            # the generator emptied (its faults), their published data unchanged
            success = dg.DagsterRunStatus.SUCCESS
            for run in [r.dagster_run for r in runs if r.dagster_run.status != success]:
                assert run.status == dg.DagsterRunStatus.FAILURE, run.run_id
                failures = [
                    e.dagster_event.step_failure_data.error.message
                    for e in instance.all_logs(
                        run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
                    )
                ]
                assert failures and all("held back" in m for m in failures), failures
    reset_settings_cache()
