"""Faults in the middle of a run: the run process killed with SIGKILL inside the publishing
transaction, the Postgres warehouse going away between staging and publishing, and two
runs publishing the same partition at once. The published data is always one whole
version of each day, and a retry gives the uninterrupted result with no duplicate rows."""

from __future__ import annotations

import contextlib
import glob
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

import aiwf_assets.io.postgres as postgres_module
from aiwf_assets.demo import plan_runs
from aiwf_assets.generator import generate
from aiwf_assets.io.postgres import PostgresWarehouse
from aiwf_assets.io.warehouse import DuckDBWarehouse, StagedWrite, Warehouse, staging_table
from aiwf_assets.resources import WarehouseResource, build_resources
from aiwf_assets.settings import Settings
from tests.conftest import postgres_or_skip
from tests.domains import data_definitions

REPO = Path(__file__).resolve().parent.parent
CLEANED = ["orders", "order_lines", "interactions", "quarantine"]
PUBLISHED = [*CLEANED, "file_accounting"]

# Runs one day of POS raw + cleaning, and stalls inside the publishing transaction after its
# first statement, telling the test (marker file) it is there.
KILLED_RUN = """
import sys, time
from pathlib import Path
import dagster as dg
import aiwf_assets.io.warehouse as warehouse
marker, day = Path(sys.argv[1]), sys.argv[2]
publish = warehouse._publish_duckdb
def publish_then_stall(con, write):
    publish(con, write)
    marker.touch()
    time.sleep(600)
warehouse._publish_duckdb = publish_then_stall
from aiwf_assets.resources import build_resources
from aiwf_assets.settings import get_settings
from tests.domains import data_definitions
settings = get_settings()
defs = dg.Definitions.merge(
    data_definitions(settings), dg.Definitions(resources=build_resources(settings)))
keys = [dg.AssetKey(k) for k in ("raw_pos_transactions", "orders", "order_lines",
                                   "interactions", "quarantine")]
with dg.DagsterInstance.get() as instance:
    defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=keys, partition_key=day)
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Three generated days (no faults) in a fresh AIWF_HOME with a fixed PII key."""
    monkeypatch.setenv("AIWF_ENV", "local")
    monkeypatch.setenv("AIWF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("AIWF_PII_KEY", "fault-test-key")
    (tmp_path / "dagster_home").mkdir()
    from aiwf_assets.settings import get_settings, reset_settings_cache

    reset_settings_cache()
    settings = get_settings()
    generate(settings.home, seed=3, days=3, scale=0.05, faults=())
    yield settings
    reset_settings_cache()


def definitions(settings: Settings, warehouse: WarehouseResource | None = None) -> dg.Definitions:
    resources = build_resources(settings)
    if warehouse is not None:
        resources = {**resources, "warehouse": warehouse}
    return dg.Definitions.merge(data_definitions(settings), dg.Definitions(resources=resources))


def run(
    defs: dg.Definitions, instance: dg.DagsterInstance, keys: list[dg.AssetKey],
    day: str | None = None, tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=keys, partition_key=day, tags=tags or {},
        raise_on_error=False,
    )


def build_days(defs: dg.Definitions, instance: dg.DagsterInstance, days: list[str]) -> None:
    plan = plan_runs(defs)
    assert run(defs, instance, plan.before).success
    for day in days:
        assert run(defs, instance, plan.daily, day).success, day


def published(wh: Warehouse) -> dict[str, pl.DataFrame]:
    frames = {t: wh.query(f"SELECT * FROM cleaned.{t}") for t in PUBLISHED}
    return {t: f.sort(f.columns) for t, f in frames.items()}


def assert_same(now: dict[str, pl.DataFrame], before: dict[str, pl.DataFrame]) -> None:
    for table in PUBLISHED:
        assert now[table].equals(before[table]), table


def assert_no_duplicate_lines(wh: Warehouse) -> None:
    counts = wh.query(
        "SELECT count(*) AS n, count(DISTINCT order_id || '#' || line_number) AS d"
        " FROM cleaned.order_lines"
    )
    assert counts["n"][0] == counts["d"][0]


def drop_last_transaction(path: Path) -> int:
    """Remove the POS file's last transaction; returns the lines left (header excluded)."""
    header, *lines = path.read_text().splitlines(keepends=True)
    last = lines[-1].split(",", 1)[0]
    kept = [line for line in lines if line.split(",", 1)[0] != last]
    path.write_text(header + "".join(kept))
    return len(kept)


def test_a_run_killed_inside_the_publish_leaves_the_old_day_and_the_retry_is_whole(
    home: Settings,
) -> None:
    defs = definitions(home)
    days = ["2026-01-01", "2026-01-02", "2026-01-03"]
    wh = DuckDBWarehouse(home.warehouse_path)
    with dg.DagsterInstance.get() as instance:
        build_days(defs, instance, days)
    before = published(wh)
    day = days[2]
    lines_left = drop_last_transaction(home.landing_dir / "pos_transactions" / f"{day}.csv")

    marker = home.home / "publishing"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(marker), day], env=env, cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
            assert time.monotonic() < deadline, "the run never reached the publish"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # the half-done transaction is gone: readers see the day as it was
    assert_same(published(wh), before)
    with dg.DagsterInstance.get() as instance:
        keys = [dg.AssetKey(k) for k in ("raw_pos_transactions", *CLEANED)]
        assert run(defs, instance, keys, day).success
        after_retry = published(wh)
        assert run(defs, instance, keys, day).success  # an uninterrupted run of the same input
    again = published(wh)
    assert_same(again, after_retry)
    for table in PUBLISHED:
        other_days = pl.col("partition_date") != date.fromisoformat(day)
        assert after_retry[table].filter(other_days).equals(before[table].filter(other_days))
    assert_no_duplicate_lines(wh)
    pos = wh.query(
        "SELECT rows_in FROM cleaned.file_accounting"
        " WHERE channel = 'pos_transactions' AND partition_date = ?", [date.fromisoformat(day)],
    )
    assert pos["rows_in"].to_list() == [lines_left]


# --------------------------------------------------------------------------- Postgres


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TemporaryCluster:
    """A throw-away Postgres cluster on a loopback port (never the shared server)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="aiwf-pg-"))
        os.chmod(self.base, 0o777)  # initdb refuses root: the cluster runs as postgres
        self.data = self.base / "data"
        self.port = _free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1"
            f" -c unix_socket_directories={self.base} -c fsync=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "log"),
            "-w", "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[TemporaryCluster]:
    bindir = _postgres_bin()
    if bindir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no initdb under /usr/lib/postgresql/*/bin (CI=true: required)")
        pytest.skip("no initdb under /usr/lib/postgresql/*/bin")
    server = TemporaryCluster(bindir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


def test_postgres_going_away_mid_run_fails_cleanly_and_the_retry_has_no_duplicates(
    home: Settings, cluster: TemporaryCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = WarehouseResource(kind="postgres", dsn=cluster.dsn)
    defs = definitions(home, warehouse)
    wh = warehouse.get()
    days = ["2026-01-01", "2026-01-02", "2026-01-03"]
    plan = plan_runs(defs)
    with dg.DagsterInstance.get() as instance:
        build_days(defs, instance, days[:2])
        before = published(wh)

        publish = postgres_module.PostgresWarehouse.publish

        def server_gone(self: PostgresWarehouse, writes: list[StagedWrite]) -> None:
            cluster.stop()  # the day is staged; the warehouse goes away before publishing
            publish(self, writes)

        monkeypatch.setattr(postgres_module.PostgresWarehouse, "publish", server_gone)
        failed = run(defs, instance, plan.daily, days[2])
        assert not failed.success
        error = next(e for e in failed.all_events if e.is_step_failure).step_failure_data
        assert error is not None and error.error is not None
        assert "connection" in (error.error.cause or error.error).message.lower()

        monkeypatch.setattr(postgres_module.PostgresWarehouse, "publish", publish)
        cluster.start()
        assert_same(published(wh), before)
        assert run(defs, instance, plan.daily, days[2]).success
        retried = published(wh)
        assert run(defs, instance, plan.daily, days[2]).success
    assert_same(published(wh), retried)
    assert_no_duplicate_lines(wh)
    assert {d.isoformat() for d in retried["order_lines"]["partition_date"]} == set(days)


# --------------------------------------------------------------------------- concurrency


def publish_one_run(warehouse: Warehouse, run_number: int) -> None:
    """One run's write and publish of 2026-01-02 (200 rows tagged with the run)."""
    day = date(2026, 1, 2)
    staged = staging_table("cleaned.t", f"run{run_number}")
    frame = pl.DataFrame(
        {"partition_date": [day] * 200, "run": [run_number] * 200, "n": list(range(200))}
    )
    try:
        warehouse.stage(staged, frame)
        warehouse.publish([StagedWrite("cleaned.t", staged, (day,))])
    finally:
        warehouse.drop_tables([staged])


def assert_one_whole_run(warehouse: Warehouse) -> None:
    result = warehouse.query("SELECT run, n FROM cleaned.t")
    assert result["run"].n_unique() == 1 and result["run"][0] != 0  # one run, never a mix
    assert sorted(result["n"]) == list(range(200))


def _seed(warehouse: Warehouse) -> None:
    day = date(2026, 1, 2)
    warehouse.replace_partitions(
        "cleaned.t", pl.DataFrame({"partition_date": [day], "run": [0], "n": [0]}), [day]
    )


def test_two_processes_publishing_one_day_in_duckdb_take_turns(tmp_path: Path) -> None:
    """Run processes: DuckDB lets one process write the file; the other waits its turn."""
    warehouse = DuckDBWarehouse(tmp_path / "wh.duckdb")
    _seed(warehouse)
    context = multiprocessing.get_context("spawn")
    runs = [context.Process(target=publish_one_run, args=(warehouse, n)) for n in (1, 2, 3)]
    for process in runs:
        process.start()
    for process in runs:
        process.join(timeout=300)
    assert [p.exitcode for p in runs] == [0, 0, 0]
    assert_one_whole_run(warehouse)


def test_concurrent_runs_publishing_one_day_in_postgres_leave_one_whole_version() -> None:
    suffix = f"_c{os.getpid()}_{int(time.time() * 1000) % 100000}"
    warehouse = PostgresWarehouse(postgres_or_skip(), schema_suffix=suffix)
    try:
        _seed(warehouse)
        errors: list[BaseException] = []

        def one_run(run_number: int) -> None:
            try:
                publish_one_run(warehouse, run_number)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=one_run, args=(n,)) for n in (1, 2, 3, 4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []  # every run published (they queued on the table's lock)
        assert_one_whole_run(warehouse)
    finally:
        with warehouse.connect() as conn:
            for schema in ("cleaned", "cleaned_staging"):
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}{suffix}" CASCADE')
