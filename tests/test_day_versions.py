"""A range run whose asset events the assets record (day_versions.py) gives each day its own
data version, the one a run of that day alone records: re-running one unchanged day then
changes no version and automation requests nothing. Without it Dagster records one version
for every day of the range (the control case below), and the same re-run looks like a change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pytest

from aiwf_assets.automation.policies import apply_automation_policies
from aiwf_assets.day_versions import DEFER_ASSET_EVENTS_TAG, RECORDS_DAY_VERSIONS
from aiwf_assets.demo import PARTITION_RANGE_END, PARTITION_RANGE_START, landed_days, plan_runs
from aiwf_assets.generator import generate
from aiwf_assets.resources import build_resources
from aiwf_assets.settings import Settings
from tests.domains import data_definitions

RAW = dg.AssetKey("raw_pos_transactions")
CLEANED = dg.AssetKey("order_lines")
CLEAN_DAILY = [dg.AssetKey(t) for t in ("orders", "order_lines", "interactions", "quarantine")]


def day_versions(instance: dg.DagsterInstance, key: dg.AssetKey, days: list[str]) -> list[str]:
    versions = []
    for day in days:
        record = instance.get_latest_data_version_record(key, partition_key=day)
        assert record is not None, (key, day)
        versions.append((record.asset_materialization.tags or {})["dagster/data_version"])
    return versions


@pytest.fixture
def world(aiwf_home: Settings) -> Iterator[tuple[dg.Definitions, dg.DagsterInstance, list[str]]]:
    generate(aiwf_home.home, seed=3, start=dt.date(2026, 1, 1), days=3, scale=0.05)
    defs = apply_automation_policies(
        dg.Definitions.merge(
            data_definitions(aiwf_home), dg.Definitions(resources=build_resources(aiwf_home))
        ),
        aiwf_home,
    )
    with dg.instance_for_test() as instance:
        plan = plan_runs(defs)
        job = defs.resolve_implicit_global_asset_job_def()
        assert job.execute_in_process(instance=instance, asset_selection=plan.before).success
        yield defs, instance, landed_days(aiwf_home.landing_dir)


def range_run(defs: dg.Definitions, instance: dg.DagsterInstance, days: list[str], tags: dict):
    plan = plan_runs(defs)
    graph = defs.resolve_asset_graph()
    assert all(graph.get(k).metadata.get(RECORDS_DAY_VERSIONS) for k in plan.daily)
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        asset_selection=plan.daily,
        tags={PARTITION_RANGE_START: days[0], PARTITION_RANGE_END: days[-1], **tags},
    )


def rematerialised(
    defs: dg.Definitions, instance: dg.DagsterInstance, day: str, keys: list[dg.AssetKey]
) -> dict[str, set]:
    """The UI's "Materialize" of one day of `keys`; what automation requests after it."""
    now = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now)
    job = defs.resolve_implicit_global_asset_job_def()
    done = job.execute_in_process(instance=instance, asset_selection=keys, partition_key=day)
    assert done.success
    second = dg.evaluate_automation_conditions(
        defs=defs,
        instance=instance,
        cursor=first.cursor,
        evaluation_time=now + dt.timedelta(minutes=1),
    )
    graph = defs.resolve_asset_graph()
    return {
        k.to_user_string(): set(parts)
        for k in graph.materializable_asset_keys
        if (parts := second.get_requested_partitions(k))
    }


def test_each_day_of_a_deferred_range_run_keeps_its_own_version(world) -> None:
    defs, instance, days = world
    result = range_run(defs, instance, days, {DEFER_ASSET_EVENTS_TAG: "true"})
    assert result.success
    materialised = [(e.asset_key, e.partition) for e in result.get_asset_materialization_events()]
    assert sorted(p for k, p in materialised if k == RAW) == days  # once per day, no more
    in_range = {k: day_versions(instance, k, days) for k in (RAW, CLEANED)}
    assert all(len(set(v)) == len(days) for v in in_range.values())  # a version per day
    assert rematerialised(defs, instance, days[1], [RAW]) == {}
    assert rematerialised(defs, instance, days[1], CLEAN_DAILY) == {}  # runs whole
    assert {k: day_versions(instance, k, days) for k in (RAW, CLEANED)} == in_range


def test_without_deferred_events_a_range_run_gives_every_day_one_version(world) -> None:
    defs, instance, days = world
    assert range_run(defs, instance, days, {}).success
    assert len(set(day_versions(instance, RAW, days))) == 1  # Dagster's one version per run
    requested = rematerialised(defs, instance, days[1], [RAW])
    assert requested.get("order_lines") == {days[1]}  # the same content looked like a change


def test_a_range_run_on_worker_threads_equals_one_worker(world, monkeypatch) -> None:
    """Raw and cleaned days read, parsed and cleaned ahead by worker threads
    (aiwf_assets/parallel.py) publish what one worker does: the same content version of
    every daily asset on every day, and the same rows in the warehouse."""
    defs, instance, days = world
    daily = plan_runs(defs).daily
    warehouse = defs.resources["warehouse"].get()

    def build(workers: int) -> tuple[dict, dict]:
        monkeypatch.setattr("aiwf_assets.parallel.DEFAULT_AHEAD", workers)
        assert range_run(defs, instance, days, {DEFER_ASSET_EVENTS_TAG: "true"}).success
        versions = {k.to_user_string(): day_versions(instance, k, days) for k in daily}
        rows = {
            t: warehouse.query(f"SELECT count(*) AS n FROM cleaned.{t}").item()
            for t in ("orders", "order_lines", "interactions", "quarantine")
        }
        return versions, rows

    serial = build(1)
    assert all(len(v) == len(days) for v in serial[0].values()) and serial[1]["order_lines"]
    assert build(4) == serial  # more workers than days: every day in flight at once
