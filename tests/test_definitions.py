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
