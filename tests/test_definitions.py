"""The code location itself: it loads, and every asset carries what users rely on."""

from __future__ import annotations

import dagster as dg
import pytest

from aiwf_assets.definitions import defs

GROUPS = {"landing", "raw", "cleaned", "marts", "features", "ml", "serving", "monitoring"}


@pytest.fixture(scope="module")
def graph():
    dg.Definitions.validate_loadable(defs)
    return defs.resolve_asset_graph()


def test_definitions_load(graph) -> None:
    assert graph.materializable_asset_keys


def test_every_materialisable_asset_is_documented_owned_and_versioned(graph) -> None:
    problems = []
    for key in graph.materializable_asset_keys:
        node = graph.get(key)
        spec = node.to_asset_spec() if hasattr(node, "to_asset_spec") else None
        if node.group_name not in GROUPS:
            problems.append(f"{key.to_user_string()}: group {node.group_name!r}")
        if not node.description:
            problems.append(f"{key.to_user_string()}: no description")
        if not node.owners:
            problems.append(f"{key.to_user_string()}: no owner")
        if not node.code_version:
            problems.append(f"{key.to_user_string()}: no code_version")
        if spec is not None and not spec.kinds:
            problems.append(f"{key.to_user_string()}: no kinds")
    assert not problems, "\n".join(problems)


def test_partitioned_assets_backfill_in_one_run(graph) -> None:
    for key in graph.materializable_asset_keys:
        node = graph.get(key)
        if node.partitions_def is not None:
            policy = node.backfill_policy
            assert policy is not None and policy.max_partitions_per_run is None, key


def test_landing_to_cleaned_lineage(graph) -> None:
    for channel in ("web_orders", "app_orders", "pos_transactions"):
        assert dg.AssetKey(f"landing_{channel}") in graph.get(
            dg.AssetKey(f"raw_{channel}")
        ).parent_keys
        assert dg.AssetKey(f"raw_{channel}") in graph.get(dg.AssetKey("order_lines")).parent_keys
    assert dg.AssetKey("customer_identity") in graph.get(dg.AssetKey("order_lines")).parent_keys


def test_contracts_are_blocking_checks(graph) -> None:
    checks = {
        (k.asset_key.to_user_string(), k.name): graph.get_check_spec(k)
        for k in graph.asset_check_keys
    }
    for table in ("orders", "order_lines", "interactions", "quarantine", "customers"):
        assert checks[(table, "pandera_contract")].blocking, table
    assert checks[("order_lines", "rows_add_up")].blocking


def test_definitions_are_built_from_the_settings_given(tmp_path) -> None:
    """One function builds the location from one Settings value: thresholds arrive as the
    `thresholds` resource (shown in the UI, overridable per run), not read by the assets."""
    from dataclasses import replace

    from aiwf_assets.definitions import build_definitions
    from aiwf_assets.resources import MonitoringThresholds
    from aiwf_assets.settings import get_settings

    settings = replace(get_settings(), home=tmp_path, anomaly_z=5.0, drift_psi_retrain=0.4)
    built = build_definitions(settings)
    thresholds = built.resources["thresholds"]
    assert isinstance(thresholds, MonitoringThresholds)
    assert (thresholds.anomaly_z, thresholds.drift_psi_retrain) == (5.0, 0.4)
    assert built.resources["storage"].root == str(tmp_path / "storage")
    for name in ("feature_drift", "prediction_drift", "model_performance", "pipeline_health"):
        assets_def = built.get_assets_def(name)
        assert "thresholds" in assets_def.required_resource_keys


FIXTURE_SOURCES = "tests/fixtures/uk_retailer/sources.yaml"


def test_two_definitions_from_two_settings_in_one_process_share_nothing(tmp_path) -> None:
    """Sources, the partition window and thresholds come from the Settings value given: two
    code locations built in one process (another window, another sources file, other
    thresholds) each keep their own, in the asset graph, the jobs, the checks, the
    resources and what their landing sensor observes."""
    from dataclasses import replace
    from pathlib import Path

    from aiwf_assets.definitions import build_definitions
    from aiwf_assets.settings import get_settings

    repo = Path(__file__).resolve().parents[1]
    base = replace(get_settings(), env="local", sources_path=None, pii_key_value="k")
    january = replace(
        base, home=tmp_path / "a", partition_start="2026-01-01", partition_end="2026-01-10",
        guard_min_volume_ratio=0.2, anomaly_z=3.5,
    )
    february = replace(
        base, home=tmp_path / "b", partition_start="2026-02-01", partition_end="2026-02-05",
        sources_path=repo / FIXTURE_SOURCES, guard_min_volume_ratio=0.45,
        guard_window_days=14, anomaly_z=5.0,
    )
    built = {"a": build_definitions(january), "b": build_definitions(february)}
    windows = {"a": ("2026-01-01", "2026-01-10", 10), "b": ("2026-02-01", "2026-02-05", 5)}
    for name, location in built.items():
        graph = location.resolve_asset_graph()
        daily = [k for k in graph.materializable_asset_keys if graph.get(k).partitions_def]
        assert len(daily) > 10
        for key in daily:
            keys = graph.get(key).partitions_def.get_partition_keys()
            assert (keys[0], keys[-1], len(keys)) == windows[name], key
        job = location.resolve_job_def("daily_ingest_job")
        job_keys = job.partitions_def.get_partition_keys()
        assert (job_keys[0], job_keys[-1]) == windows[name][:2]

    def keys(location: dg.Definitions) -> set[str]:
        return {k.to_user_string() for k in location.resolve_asset_graph().get_all_asset_keys()}

    # b's file switches the packaged sources off and declares its own, with a rate file
    only_b = {"landing_uk_invoices", "raw_uk_invoices", "exchange_rates"}
    assert only_b <= keys(built["b"]) and not only_b & keys(built["a"])
    assert "raw_web_orders" in keys(built["a"]) and "raw_web_orders" not in keys(built["b"])
    graph_b = built["b"].resolve_asset_graph()
    assert dg.AssetKey("raw_uk_invoices") in graph_b.get(dg.AssetKey("order_lines")).parent_keys

    guards = {n: d.resources["guards"] for n, d in built.items()}
    assert (guards["a"].min_volume_ratio, guards["a"].window_days) == (0.2, 28)
    assert (guards["b"].min_volume_ratio, guards["b"].window_days) == (0.45, 14)
    for name, ratio in (("a", "0.2"), ("b", "0.45")):
        check = built[name].resolve_asset_graph().get_check_spec(
            dg.AssetCheckKey(dg.AssetKey("order_lines"), "volume_guard")
        )
        assert f"< {ratio} x" in check.description
    assert built["a"].resources["thresholds"].anomaly_z == 3.5
    assert built["b"].resources["thresholds"].anomaly_z == 5.0

    # the same landed files: a day of b's window, outside a's, of a source only a declares;
    # a file of a source only b declares
    for settings in (january, february):
        for relative in ("web_orders/2026-02-02.jsonl", "uk_invoices/2026-02-03.csv"):
            path = settings.landing_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x\n")
    observed = {}
    for name, location in built.items():
        sensor = location.resolve_sensor_def("landing_observation_sensor")
        with dg.instance_for_test() as instance, dg.build_sensor_context(
            instance=instance, resources={"landing": location.resources["landing"]}
        ) as context:
            result = sensor(context)
        observed[name] = sorted(
            (e.asset_key.to_user_string(), e.partition) for e in result.asset_events
        )
    assert observed["a"] == []
    assert observed["b"] == [("landing_uk_invoices", "2026-02-03")]


def test_guard_thresholds_are_a_resource_the_launchpad_shows() -> None:
    """The publish guards' thresholds are the `guards` resource: its fields (with their
    descriptions) are what the UI's resource page and the launchpad show, and the cleaning
    assets require it instead of reading settings."""
    from aiwf_assets.resources import GuardsResource

    fields = GuardsResource.model_fields
    assert set(fields) == {
        "min_volume_ratio", "window_days", "max_reference_shrink", "early_end_hours",
        "max_quarantine_share", "max_cross_day_share",
    }
    assert all(f.description for f in fields.values())
    for name in ("clean_daily", "clean_customers", "clean_products", "clean_stores"):
        assets_def = next(a for a in defs.assets if getattr(a, "node_def", None)
                          and a.node_def.name == name)
        assert "guards" in assets_def.required_resource_keys, name
    assert isinstance(defs.resources["guards"], GuardsResource)
