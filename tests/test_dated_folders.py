"""A folder per day, end to end: sources whose day is a folder (`pos/dt=2026-01-01/export.csv`,
`2026-01-01/tickets.csv`), declared in an AIWF_SOURCES overlay, are observed by the landing
sensor, built by automation from raw to pipeline health, and every row of their files is
counted (cleaned or quarantined) under its own source. Before, such a template was accepted
and its files were never matched: nothing loaded, and nothing said so."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from collections.abc import Iterator

import dagster as dg
import duckdb
import pytest
import yaml

from aiwf_assets.generator import generate
from aiwf_assets.ingest.spec import DEFAULT_SOURCES_PATH
from aiwf_assets.settings import Settings, get_settings, reset_settings_cache
from tests.test_automation_landing import Daemon

DAYS = ["2026-01-01", "2026-01-02"]
LAYOUT = {"pos_transactions": "pos/dt={date}/export.csv", "crm_tickets": "{date}/tickets.csv"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("dated_folders")
    packaged = yaml.safe_load(DEFAULT_SOURCES_PATH.read_text())["sources"]
    overlay = root / "sources.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "sources": {
                    name: {**packaged[name], "landing": landing} for name, landing in LAYOUT.items()
                },
            }
        )
    )
    patch = pytest.MonkeyPatch()
    patch.setenv("AIWF_ENV", "local")
    patch.setenv("AIWF_HOME", str(root / "home"))
    patch.setenv("AIWF_SOURCES", str(overlay))
    patch.delenv("AIWF_PII_KEY", raising=False)
    reset_settings_cache()
    settings = get_settings()
    generate(settings.home, seed=5, start=dt.date(2026, 1, 1), days=len(DAYS), scale=0.05)
    for name, template in LAYOUT.items():  # move the generated files into the day folders
        for day in DAYS:
            [path] = (settings.landing_dir / name).glob(f"{day}.*")
            target = settings.landing_dir / template.replace("{date}", day)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
        (settings.landing_dir / name).rmdir()
    yield settings
    reset_settings_cache()
    patch.undo()


def data_rows(path) -> int:
    with path.open(newline="") as f:
        return sum(1 for _ in csv.reader(f)) - 1  # the header aside


def test_day_folders_are_observed_built_and_every_row_is_counted(home: Settings) -> None:
    with dg.instance_for_test() as instance:
        daemon = Daemon(home, instance)
        assert daemon.tick() == {}
        observed = set(daemon.observe())
        for name in LAYOUT:
            assert {(f"landing_{name}", day) for day in DAYS} <= observed
        made = daemon.settle()
        assert made[-1] == {"pipeline_health": set(DAYS)}
    with duckdb.connect(str(home.home / "warehouse.duckdb"), read_only=True) as con:
        health = {
            (source, str(day)): (rows, quarantined)
            for source, day, rows, quarantined in con.sql(
                "SELECT source, partition_date, rows, rows_quarantined"
                " FROM monitoring.pipeline_health"
            ).fetchall()
        }
        accounted = {
            (source, str(day)): (rows_in, cleaned, quarantined, duplicates)
            for source, day, rows_in, cleaned, quarantined, duplicates in con.sql(
                "SELECT channel, partition_date, rows_in, rows_cleaned, rows_quarantined,"
                " duplicates_removed FROM cleaned.file_accounting"
            ).fetchall()
        }
        files = {
            r[0]
            for r in con.sql(
                "SELECT DISTINCT source_file FROM cleaned.order_lines UNION"
                " SELECT DISTINCT source_file FROM cleaned.interactions"
            ).fetchall()
        }
    for name, template in LAYOUT.items():
        for day in DAYS:
            path = template.replace("{date}", day)
            assert path in files
            rows_in, cleaned, quarantined, duplicates = accounted[(name, day)]
            assert rows_in == data_rows(home.landing_dir / path) > 0, (name, day)
            assert cleaned + quarantined + duplicates == rows_in
            # pipeline health counts them under their own source, not the first folder's
            assert health[(name, day)] == (cleaned, quarantined)
