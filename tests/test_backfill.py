"""Range backfills: the daily job runs a range as one run, and both documented CLI paths work.

The code location is a small module (written to a temp dir) shaped like the daily layers:
two single-run daily assets that handle `context.partition_keys` themselves, and one
unpartitioned asset downstream, with the project's `apply_automation_policies`.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from aiwf_assets.automation.jobs import DAILY_INGEST_JOB
from aiwf_assets.settings import Settings

CODE_LOCATION = '''
import dagster as dg

from aiwf_assets.automation.policies import apply_automation_policies
from aiwf_assets.partitions import daily_partitions_def

daily_partitions = daily_partitions_def("2026-01-01", None)


@dg.asset(group_name="raw", partitions_def=daily_partitions,
          backfill_policy=dg.BackfillPolicy.single_run())
def raw_days(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"days_in_run": len(context.partition_keys)})


@dg.asset(group_name="cleaned", deps=[raw_days], partitions_def=daily_partitions,
          backfill_policy=dg.BackfillPolicy.single_run())
def cleaned_days(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"days_in_run": len(context.partition_keys)})


@dg.asset(group_name="features", deps=[cleaned_days])
def features_all() -> None:
    return None


defs = apply_automation_policies(dg.Definitions(assets=[raw_days, cleaned_days, features_all]))
'''
DAILY = [dg.AssetKey("raw_days"), dg.AssetKey("cleaned_days")]
RANGE = ["2026-02-02", "2026-02-03", "2026-02-04"]
RANGE_TAGS = {
    "dagster/asset_partition_range_start": RANGE[0],
    "dagster/asset_partition_range_end": RANGE[-1],
}


@pytest.fixture
def location(tmp_path: Path, aiwf_home: Settings) -> Path:
    module = tmp_path / "daily_location.py"
    module.write_text(CODE_LOCATION)
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_file:\n      relative_path: daily_location.py\n"
        "      location_name: daily\n"
    )
    (aiwf_home.dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return module


def load_defs(module: Path) -> dg.Definitions:
    spec = importlib.util.spec_from_file_location("daily_location", module)
    assert spec and spec.loader
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded.defs


def materialised(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """asset -> partitions of every materialisation event, repeats included."""
    found: dict[str, list[str]] = {}
    for key in DAILY:
        records = instance.fetch_materializations(key, limit=1000).records
        found[key.to_user_string()] = sorted(r.partition_key or "" for r in records)
    return found


def dagster_cli(*args: str, cwd: Path) -> None:
    executable = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run(
        [str(executable), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_daily_job_runs_a_range_once_per_partition_and_nothing_else(location: Path) -> None:
    job = load_defs(location).resolve_job_def(DAILY_INGEST_JOB)
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, tags=RANGE_TAGS)
        assert result.success
        assert materialised(instance) == {"raw_days": RANGE, "cleaned_days": RANGE}
        assert instance.get_latest_materialization_event(dg.AssetKey("features_all")) is None
        assert len(instance.get_runs()) == 1


def test_cli_asset_materialize_runs_the_range_in_one_process(
    location: Path, aiwf_home: Settings
) -> None:
    dagster_cli(
        "asset", "materialize", "-f", location.name, "--select", "raw_days,cleaned_days",
        "--partition-range", f"{RANGE[0]}...{RANGE[-1]}", cwd=location.parent,
    )
    with dg.DagsterInstance.from_config(str(aiwf_home.dagster_home)) as instance:
        assert materialised(instance) == {"raw_days": RANGE, "cleaned_days": RANGE}
        assert len(instance.get_runs()) == 1


def test_cli_job_backfill_queues_one_run_per_partition_for_the_daemon(
    location: Path, aiwf_home: Settings
) -> None:
    dagster_cli(
        "job", "backfill", "-w", "workspace.yaml", "-j", DAILY_INGEST_JOB,
        "--from", RANGE[0], "--to", RANGE[-1], "--noprompt", cwd=location.parent,
    )
    with dg.DagsterInstance.from_config(str(aiwf_home.dagster_home)) as instance:
        [backfill] = instance.get_backfills()
        assert backfill.partition_names == RANGE
        runs = instance.get_runs()
        assert sorted(r.tags["dagster/partition"] for r in runs) == RANGE
        assert {r.status for r in runs} == {dg.DagsterRunStatus.QUEUED}  # the daemon runs them
        assert all(r.job_name == DAILY_INGEST_JOB for r in runs)
        assert materialised(instance) == {"raw_days": [], "cleaned_days": []}
