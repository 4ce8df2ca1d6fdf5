"""Automation policies decide exactly what runs: tested tick by tick on a real instance.

A small asset world with the project's policies (`apply_automation_policies`): toys
shaped like the real layers (landing -> raw -> cleaned -> features -> model -> scores,
plus a drift monitor) whose data versions the test sets, to show what the real data
cannot make happen on demand (bursts, failing checks, drift, code changes). Landing ->
raw -> cleaned on the real assets is in test_automation_landing.py. `World` plays the
automation daemon: each `tick()` evaluates the conditions at a chosen time against a
real DagsterInstance, and `run()` materialises what was requested, one run per partition.
"""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from aiwf_assets.automation.policies import (
    MIN_HISTORY_METADATA_KEY,
    RETRAIN_METADATA_KEY,
    apply_automation_policies,
    assign_policies,
)
from aiwf_assets.partitions import daily_partitions_def
from aiwf_assets.settings import Settings

DATA_VERSION_TAG = "dagster/data_version"
daily_partitions = daily_partitions_def("2026-01-01", None)
START = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


@dataclass
class Knobs:
    """What the toy assets report; tests change these between runs."""

    versions: dict[tuple[str, str | None], str] = field(default_factory=dict)
    contract_passes: bool = True
    drift_level: str = "ok"  # ok | warn | retrain

    def version(self, asset: str, partition: str | None) -> dg.DataVersion:
        return dg.DataVersion(self.versions.get((asset, partition), f"{asset}-v0"))


def build_assets(
    knobs: Knobs, model_code_version: str = "model-1", model_history_days: int | None = None
) -> list:
    @dg.observable_source_asset(group_name="landing", partitions_def=daily_partitions)
    def landing_x() -> dg.DataVersionsByPartition:
        return dg.DataVersionsByPartition({})

    @dg.asset(group_name="raw", deps=[landing_x], partitions_def=daily_partitions)
    def raw_x(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=knobs.version("raw_x", context.partition_key))

    @dg.asset(group_name="cleaned")
    def reference_x() -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=knobs.version("reference_x", None))

    @dg.asset(
        group_name="cleaned", deps=[raw_x, reference_x], partitions_def=daily_partitions,
        check_specs=[dg.AssetCheckSpec("contract", asset="cleaned_x", blocking=True)],
    )
    def cleaned_x(context: dg.AssetExecutionContext):
        yield dg.MaterializeResult(data_version=knobs.version("cleaned_x", context.partition_key))
        yield dg.AssetCheckResult(check_name="contract", passed=knobs.contract_passes)

    @dg.asset(group_name="features", deps=[cleaned_x])
    def features_x() -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=knobs.version("features_x", None))

    @dg.asset(
        group_name="ml", deps=[features_x], code_version=model_code_version,
        metadata={MIN_HISTORY_METADATA_KEY: model_history_days} if model_history_days else None,
    )
    def model_x() -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=knobs.version("model_x", None))

    @dg.asset(group_name="serving", deps=[features_x, model_x])
    def scores_x() -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=knobs.version("scores_x", None))

    @dg.asset(
        group_name="monitoring", deps=[features_x, model_x],
        check_specs=[
            dg.AssetCheckSpec("drift_below_warning", asset="drift_x"),
            dg.AssetCheckSpec(
                "drift_below_retrain_threshold", asset="drift_x",
                metadata={RETRAIN_METADATA_KEY: "model_x"},
            ),
        ],
    )
    def drift_x():
        level = knobs.drift_level
        yield dg.MaterializeResult(data_version=dg.DataVersion(f"drift-{level}"))
        yield dg.AssetCheckResult(
            check_name="drift_below_warning", passed=level == "ok",
            severity=dg.AssetCheckSeverity.WARN,
        )
        yield dg.AssetCheckResult(
            check_name="drift_below_retrain_threshold", passed=level != "retrain",
            severity=dg.AssetCheckSeverity.WARN,
        )

    return [landing_x, raw_x, reference_x, cleaned_x, features_x, model_x, scores_x, drift_x]


def world_settings(home) -> Settings:
    return Settings(env="local", home=home, debounce_cron="0 * * * *")


class World:
    def __init__(self, instance: dg.DagsterInstance, settings: Settings, knobs: Knobs) -> None:
        self.instance = instance
        self.settings = settings
        self.knobs = knobs
        self.now = START
        self.cursor = None
        self.rebuild()

    def rebuild(
        self, model_code_version: str = "model-1", model_history_days: int | None = None
    ) -> None:
        self.assets = build_assets(self.knobs, model_code_version, model_history_days)
        self.defs = apply_automation_policies(
            dg.Definitions(assets=self.assets), self.settings
        )
        self.job = dg.Definitions(assets=self.assets).resolve_implicit_global_asset_job_def()

    def observe(self, day: str, version: str) -> None:
        """What landing_observation_sensor records for a landed file."""
        self.instance.report_runless_asset_event(
            dg.AssetObservation("landing_x", partition=day, tags={DATA_VERSION_TAG: version})
        )

    def tick(self, minutes: int = 1) -> dict[str, set[str | None]]:
        """One automation evaluation `minutes` after the previous one: what it requests."""
        self.now += dt.timedelta(minutes=minutes)
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.cursor, evaluation_time=self.now
        )
        self.cursor = result.cursor
        self.last_result = result
        requested = {}
        for key in self.defs.resolve_asset_graph().materializable_asset_keys:
            partitions = result.get_requested_partitions(key)
            if partitions:
                requested[key.to_user_string()] = set(partitions)
        return requested

    def next_hour(self) -> dict[str, set[str | None]]:
        """Tick just after the next debounce (hourly) cron tick."""
        following = (self.now + dt.timedelta(hours=1)).replace(minute=0, second=0)
        return self.tick(int((following - self.now).total_seconds() // 60) + 1)

    def run(self, requested: dict[str, set[str | None]]) -> None:
        """Materialise requested assets partition by partition (what the daemon launches)."""
        by_partition: dict[str | None, list[str]] = {}
        for name, partitions in requested.items():
            for partition in partitions:
                by_partition.setdefault(partition, []).append(name)
        for partition, names in sorted(by_partition.items(), key=lambda kv: kv[0] or ""):
            self.job.execute_in_process(
                instance=self.instance, partition_key=partition, raise_on_error=False,
                asset_selection=[dg.AssetKey(n) for n in names],
            )

    def settle(self, request: dict[str, set[str | None]]) -> list[dict[str, set[str | None]]]:
        """Run a request and everything it triggers until a tick past the hour is quiet;
        returns every request made on the way."""
        made = []
        while request:
            assert len(made) < 12, f"automation does not settle: {made}"
            made.append(request)
            self.run(request)
            request = self.tick() or self.next_hour()
        return made

    def settle_within_the_hour(self) -> list[dict[str, set[str | None]]]:
        """Run what each minute's tick requests until a tick requests nothing."""
        made = []
        while request := self.tick(minutes=3):
            assert len(made) < 12, f"automation does not settle: {made}"
            made.append(request)
            self.run(request)
        return made


DAYS = ["2026-02-01", "2026-02-02", "2026-02-03", "2026-02-04", "2026-02-05", "2026-02-06"]


@pytest.fixture
def empty_world(tmp_path: Path) -> Iterator[World]:
    with dg.instance_for_test() as instance:
        yield World(instance, world_settings(tmp_path / "home"), Knobs())


@pytest.fixture
def world(empty_world: World) -> World:
    """Three landed days materialised end to end, automation state recorded, all quiet."""
    w = empty_world
    for day in DAYS[:3]:
        w.observe(day, f"sha-{day}")
    w.run({"reference_x": {None}})
    w.run({"raw_x": set(DAYS[:3]), "cleaned_x": set(DAYS[:3])})
    w.run({name: {None} for name in ("features_x", "model_x", "scores_x", "drift_x")})
    assert w.tick() == {}  # the first evaluation only records state
    return w


def test_from_an_empty_instance_everything_runs_once_in_order(empty_world: World) -> None:
    w = empty_world
    assert w.tick() == {}  # the first evaluation only records state
    w.run({"reference_x": {None}})
    for day in DAYS[:3]:
        w.observe(day, f"sha-{day}")
    made = w.settle(w.tick())
    assert made == [
        {"raw_x": set(DAYS[:3])},
        {"cleaned_x": set(DAYS[:3])},
        {"features_x": {None}},  # after the debounce tick, once for the three days
        {"model_x": {None}, "scores_x": {None}, "drift_x": {None}},  # first training
    ]


def test_a_new_day_runs_exactly_that_day_and_what_depends_on_it(world: World) -> None:
    world.observe(DAYS[3], "sha-new")
    assert world.tick() == {"raw_x": {DAYS[3]}}
    world.run({"raw_x": {DAYS[3]}})
    assert world.tick() == {"cleaned_x": {DAYS[3]}}
    world.run({"cleaned_x": {DAYS[3]}})
    assert world.tick() == {}  # features wait for the debounce tick
    world.knobs.versions[("features_x", None)] = "features-v1"
    assert world.next_hour() == {"features_x": {None}}
    world.run({"features_x": {None}})
    # scores and drift follow the new features; the model does not retrain on new data
    assert world.tick() == {"scores_x": {None}, "drift_x": {None}}


def test_a_burst_of_partitions_refreshes_unpartitioned_downstream_once(world: World) -> None:
    world.knobs.versions[("features_x", None)] = "features-v1"
    requests = []
    for day in DAYS[3:5]:  # one day lands every few minutes
        world.observe(day, f"sha-{day}")
        requests += world.settle_within_the_hour()
    assert not any("features_x" in r for r in requests)
    assert [r["raw_x"] for r in requests if "raw_x" in r] == [{d} for d in DAYS[3:5]]
    after = world.settle(world.next_hour())
    assert [r for r in after if "features_x" in r] == [{"features_x": {None}}]


def test_a_failing_blocking_check_holds_downstream_until_it_passes(world: World) -> None:
    world.knobs.contract_passes = False
    world.observe(DAYS[3], "sha-new")
    world.run(world.tick())
    world.run(world.tick())  # cleaned_x for the day: materialised, contract check fails
    assert world.next_hour() == {}
    world.knobs.contract_passes = True
    world.run({"cleaned_x": {DAYS[3]}})  # fixed and re-run by hand: same content
    assert world.next_hour() == {"features_x": {None}}


def test_only_drift_above_the_retrain_threshold_requests_retraining(world: World) -> None:
    for level, expected in (("ok", {}), ("warn", {}), ("retrain", {"model_x": {None}})):
        world.knobs.drift_level = level
        world.run({"drift_x": {None}})  # the monitor ran after new features
        assert world.tick() == expected, level
    assert world.next_hour() == {}  # requested once, not on every tick


def test_a_model_code_change_requests_retraining(world: World) -> None:
    world.rebuild(model_code_version="model-2")
    assert world.tick() == {"model_x": {None}}


def history_status(result) -> list[str]:
    """What the model's history condition told the automation explanation on a tick."""
    found = []

    def walk(evaluation) -> None:
        if evaluation.condition_snapshot.label == "at least 4 days of history":
            found.append(evaluation.metadata["status"].value)
        for child in evaluation.child_evaluations:
            walk(child)

    for evaluation in result.results:
        if evaluation.key == dg.AssetKey("model_x"):
            walk(evaluation.serializable_evaluation)
    return found


def test_a_model_waits_for_the_history_its_training_needs(empty_world: World) -> None:
    w = empty_world
    w.rebuild(model_history_days=4)
    assert w.tick() == {}  # the first evaluation only records state
    w.run({"reference_x": {None}})
    for day in DAYS[:3]:
        w.observe(day, f"sha-{day}")
    made = w.settle(w.tick())
    # three days: features follow the data, the model (and the scores it feeds) do not run
    assert made == [{"raw_x": set(DAYS[:3])}, {"cleaned_x": set(DAYS[:3])}, {"features_x": {None}}]
    assert history_status(w.last_result) == ["waiting for 1 more day of history"]
    assert w.next_hour() == {}  # still waiting, no failing run
    w.observe(DAYS[3], "sha-4")
    w.knobs.versions[("features_x", None)] = "features-v1"
    made = w.settle(w.tick())
    # the fourth day lands: the model trains once, on the features built from four days
    assert made == [
        {"raw_x": {DAYS[3]}},
        {"cleaned_x": {DAYS[3]}},
        {"features_x": {None}},
        {"model_x": {None}, "scores_x": {None}, "drift_x": {None}},
    ]


def test_every_asset_gets_its_policy_and_the_jobs_exist(tmp_path: Path) -> None:
    settings = world_settings(tmp_path)
    assets = build_assets(Knobs())
    policies = assign_policies(dg.Definitions(assets=assets), settings)
    by_name = {k.to_user_string(): p for k, p in policies.items()}
    assert by_name["landing_x"].name == "observed"
    assert by_name["raw_x"].name == by_name["cleaned_x"].name == "on_partition_change"
    assert "reference_x" in by_name["cleaned_x"].when  # its changes do not re-run history
    assert by_name["features_x"].name == "debounced_refresh"
    assert by_name["model_x"].name == "retrain_when_worth_it"
    assert "drift_x:drift_below_retrain_threshold" in by_name["model_x"].when
    assert by_name["scores_x"].name == by_name["drift_x"].name == "on_upstream_change"
    defs = apply_automation_policies(dg.Definitions(assets=assets), settings)
    graph = defs.resolve_asset_graph()
    assert isinstance(graph.get(dg.AssetKey("scores_x")).freshness_policy, dg.FreshnessPolicy)
    assert graph.get(dg.AssetKey("features_x")).freshness_policy is None
    # the daily cleaned table too (files land every day), not its unpartitioned reference
    assert isinstance(graph.get(dg.AssetKey("cleaned_x")).freshness_policy, dg.FreshnessPolicy)
    assert graph.get(dg.AssetKey("reference_x")).freshness_policy is None

    def job_assets(name: str) -> set[str]:
        job = defs.resolve_job_def(name)
        return {k.to_user_string() for k in job.asset_layer.executable_asset_keys}

    # together every asset, in the order `aiwf demo` builds them
    assert job_assets("reference_job") == {"reference_x"}
    assert job_assets("daily_ingest_job") == {"raw_x", "cleaned_x"}
    assert job_assets("refresh_job") == {"features_x", "model_x", "scores_x", "drift_x"}
    assert defs.resolve_schedule_def("weekly_retrain_schedule").cron_schedule == (
        settings.retrain_cron
    )
    assert defs.resolve_schedule_def("daily_scoring_schedule").default_status == (
        dg.DefaultScheduleStatus.RUNNING
    )


def test_dbt_models_downstream_of_a_change_run_together_in_one_run(tmp_path: Path) -> None:
    @dg.asset(group_name="cleaned", partitions_def=daily_partitions)
    def cleaned_y() -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=dg.DataVersion("rows-v1"))

    # blocking tests on each model, as dbt's become: a child must not wait a tick for its
    # parent's tests when the parent runs first in the same run
    @dg.asset(
        group_name="marts", deps=[cleaned_y], partitions_def=daily_partitions,
        check_specs=[dg.AssetCheckSpec("not_null", asset="stg_y", blocking=True)],
    )
    def stg_y() -> dg.MaterializeResult:
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=True)])

    @dg.asset(
        group_name="marts", deps=[stg_y], partitions_def=daily_partitions,
        check_specs=[dg.AssetCheckSpec("unique", asset="fct_y", blocking=True)],
    )
    def fct_y() -> dg.MaterializeResult:
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=True)])

    @dg.asset(group_name="marts", deps=[fct_y], partitions_def=daily_partitions)
    def agg_y() -> None:
        return None

    defs = apply_automation_policies(
        dg.Definitions(assets=[cleaned_y, stg_y, fct_y, agg_y]), world_settings(tmp_path)
    )
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        dg.materialize([cleaned_y], instance=instance, partition_key=DAYS[0])
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=first.cursor
        )
    for model in ("stg_y", "fct_y", "agg_y"):
        assert result.get_requested_partitions(dg.AssetKey(model)) == {DAYS[0]}, model
