"""feature_drift against the champion's pinned training reference; drift retrains the models."""

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from aiwf_assets.automation.policies import apply_automation_policies
from aiwf_assets.ml.assets import ASSETS as ML_ASSETS
from aiwf_assets.ml.features import customer_feature_columns
from aiwf_assets.monitoring.assets import ASSETS as MONITORING_ASSETS
from aiwf_assets.monitoring.assets import FEATURE_REFERENCE, feature_drift, prediction_drift
from aiwf_assets.resources import (
    ExportsResource,
    ModelStoreResource,
    MonitoringThresholds,
    StorageResource,
    WarehouseResource,
    model_resources,
    storage_resources,
)
from aiwf_assets.settings import Settings

TRAINED_THROUGH = dt.date(2026, 2, 1)
LATER = dt.date(2026, 2, 15)


def snapshot(as_of: dt.date, rng: np.random.Generator, shift: float = 0.0) -> pl.DataFrame:
    n = 800
    values = {
        c: rng.gamma(2.0, 10.0, n) for c in customer_feature_columns(("web", "app", "store"))
    }
    values["monetary"] = values["monetary"] * (1 + shift)  # spend moves when shift > 0
    return pl.DataFrame({
        "customer_key": [f"c{i:05d}" for i in range(n)],
        "as_of_date": [as_of] * n,
        **values,
    })


@pytest.fixture
def resources(aiwf_home: Settings, tmp_path: Path) -> dict:
    models = ModelStoreResource(root=str(tmp_path / "models"), secret="test-key")
    card = models.store().save(
        {"pipeline": "stand-in"}, family="churn", model_name="logistic_regression", params={},
        metrics={"roc_auc": 0.8}, baseline_metrics={}, data_versions={}, row_counts={},
        trained_through=TRAINED_THROUGH.isoformat(), code_version="test",
    )
    models.store().record("churn", card.version, "promote", "first champion")
    return {
        **storage_resources(StorageResource(root=str(tmp_path / "storage"))),
        **model_resources(models),
        "warehouse": WarehouseResource(kind="duckdb", path=str(tmp_path / "wh.duckdb")),
        "thresholds": MonitoringThresholds(),
    }


def write_features(resources: dict, shift: float) -> None:
    rng = np.random.default_rng(11)
    frame = pl.concat([snapshot(TRAINED_THROUGH, rng), snapshot(LATER, rng, shift)])
    resources["storage"].store().write("customer_features", frame)


def run_drift(instance: dg.DagsterInstance, resources: dict) -> dict[str, dg.AssetCheckEvaluation]:
    result = dg.materialize(  # customer_features as written by the test, loaded by the IO manager
        [dg.AssetSpec("customer_features"), feature_drift], instance=instance, resources=resources
    )
    assert result.success
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def requested(defs: dg.Definitions, instance: dg.DagsterInstance, cursor, now: dt.datetime):
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=cursor, evaluation_time=now
    )
    keys = defs.resolve_asset_graph().materializable_asset_keys
    return {k.to_user_string() for k in keys if result.get_num_requested(k)}, result.cursor


def test_drift_above_the_retrain_threshold_retrains_the_models_fed_by_the_features(
    aiwf_home: Settings, resources: dict
) -> None:
    exports = ExportsResource(root=str(aiwf_home.exports_dir))
    defs = apply_automation_policies(
        dg.Definitions(
            assets=[*ML_ASSETS, *MONITORING_ASSETS], resources={**resources, "exports": exports}
        ),
        aiwf_home,
    )
    now = dt.datetime(2026, 2, 16, 8, tzinfo=dt.UTC)
    with dg.instance_for_test() as instance:
        for name in ("customer_features", "fct_customer_daily_activity", "churn_model",
                     "segmentation_model", "demand_features", "demand_model"):
            instance.report_runless_asset_event(dg.AssetMaterialization(name))
        asked, cursor = requested(defs, instance, None, now)
        assert asked == set()

        write_features(resources, shift=0.0)
        checks = run_drift(instance, resources)
        assert checks["drift_below_warning"].passed
        assert checks["drift_below_retrain_threshold"].passed
        assert resources["storage"].store().partitions(FEATURE_REFERENCE)  # pinned
        asked, cursor = requested(defs, instance, cursor, now + dt.timedelta(minutes=1))
        assert asked == set()  # no drift: no retraining

        write_features(resources, shift=1.5)
        checks = run_drift(instance, resources)
        retrain = checks["drift_below_retrain_threshold"]
        assert not retrain.passed and retrain.severity == dg.AssetCheckSeverity.WARN
        assert retrain.metadata["features"].value == "monetary"
        asked, cursor = requested(defs, instance, cursor, now + dt.timedelta(minutes=2))
        assert asked == {"churn_model", "segmentation_model"}  # not demand_model
        asked, _ = requested(defs, instance, cursor, now + dt.timedelta(minutes=3))
        assert asked == set()  # once


def test_prediction_drift_compares_with_the_champions_first_scores(resources: dict) -> None:
    rng = np.random.default_rng(4)
    store = resources["storage"].store()

    def scores(as_of: dt.date, risk: np.ndarray) -> None:
        store.write("churn_scores", pl.DataFrame({
            "customer_key": [f"c{i}" for i in range(risk.size)],
            "as_of_date": [as_of] * risk.size,
            "churn_risk": risk,
            "model_version": ["m1"] * risk.size,
        }))

    def check(instance: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
        result = dg.materialize(
            [dg.AssetSpec("churn_scores"), prediction_drift], instance=instance,
            resources=resources,
        )
        [evaluation] = result.get_asset_check_evaluations()
        return evaluation

    with dg.instance_for_test() as instance:
        scores(TRAINED_THROUGH, rng.beta(2, 8, 1000))
        assert check(instance).passed  # the first scores of m1 become its reference
        scores(LATER, rng.beta(2, 8, 1000))
        assert check(instance).passed
        scores(LATER, rng.beta(5, 5, 1000))  # everyone looks riskier
        assert not check(instance).passed
