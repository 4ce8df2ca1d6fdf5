"""model_performance: live AUC / WAPE once outcomes are known, against the value at training."""

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from aiwf_assets.io.warehouse import DuckDBWarehouse
from aiwf_assets.ml.marts import mart_columns
from aiwf_assets.monitoring import performance
from aiwf_assets.monitoring.assets import model_performance
from aiwf_assets.resources import (
    ModelStoreResource,
    MonitoringThresholds,
    StorageResource,
    WarehouseResource,
    model_resources,
    storage_resources,
)
from aiwf_assets.settings import Settings

AS_OF = dt.date(2026, 1, 10)
HORIZON = 30
CUSTOMERS = [f"c{i:04d}" for i in range(400)]


def activity(buyers: list[str], last_day: dt.date) -> pl.DataFrame:
    """One order on day AS_OF + 5 for every buyer; the table reaches `last_day`."""
    rows = [(c, AS_OF + dt.timedelta(days=5)) for c in buyers] + [("c9999", last_day)]
    frame = pl.DataFrame(rows, schema=["customer_key", "activity_date"], orient="row")
    counts = [c for c in mart_columns("fct_customer_daily_activity") if c not in frame.columns]
    return frame.with_columns([pl.lit(1).alias(c) for c in counts])


def churn_scores(risk: np.ndarray, version: str) -> pl.DataFrame:
    return pl.DataFrame({
        "customer_key": CUSTOMERS,
        "as_of_date": [AS_OF] * len(CUSTOMERS),
        "churn_risk": risk,
        "churn_horizon_days": [HORIZON] * len(CUSTOMERS),
        "risk_band": ["low"] * len(CUSTOMERS),
        "model_version": [version] * len(CUSTOMERS),
    })


def test_churn_auc_is_measured_only_once_the_label_window_closed() -> None:
    churned = np.arange(len(CUSTOMERS)) % 4 == 0
    buyers = [c for c, gone in zip(CUSTOMERS, churned, strict=True) if not gone]
    scores = churn_scores(churned.astype(float) * 0.6 + 0.2, "m1")  # separates perfectly
    days = activity(buyers, AS_OF + dt.timedelta(days=HORIZON)).select(
        "customer_key", "activity_date"
    )
    early = performance.churn_performance({AS_OF: scores}, days, AS_OF + dt.timedelta(days=29))
    assert early.is_empty()
    table = performance.churn_performance({AS_OF: scores}, days, AS_OF + dt.timedelta(days=30))
    assert table["live"].to_list() == [1.0]
    verdict = performance.verdict(table, "roc_auc", {"m1": 0.8}, 0.05, higher_is_better=True)
    assert verdict.passed and verdict.live == 1.0


def test_demand_wape_counts_days_without_sales_as_zero() -> None:
    forecast = pl.DataFrame({
        "sku": ["A", "A", "B"],
        "date": [AS_OF, AS_OF + dt.timedelta(days=1), AS_OF],
        "forecast_units": [10.0, 10.0, 5.0],
        "model_version": ["d1"] * 3,
    })
    sales = pl.DataFrame({"sku": ["A", "B"], "sales_date": [AS_OF, AS_OF], "units": [10, 10]})
    table = performance.demand_performance({AS_OF: forecast}, sales, AS_OF + dt.timedelta(days=1))
    assert table["live"].to_list() == [0.75]  # |0| + |10 - 0| + |5 - 10| over 20 units sold
    verdict = performance.verdict(table, "wape", {"d1": 0.3}, 0.05, higher_is_better=False)
    assert not verdict.passed and "worse by +0.4500" in verdict.message


def test_a_model_that_lost_its_edge_fails_its_performance_check(
    aiwf_home: Settings, tmp_path: Path
) -> None:
    storage = StorageResource(root=str(tmp_path / "storage"))
    models = ModelStoreResource(root=str(tmp_path / "models"), secret="test-key")
    warehouse = DuckDBWarehouse(tmp_path / "wh.duckdb")
    card = models.store().save(
        {"pipeline": "stand-in"}, family="churn", model_name="lr", params={},
        metrics={"roc_auc": 0.85}, baseline_metrics={}, data_versions={}, row_counts={},
        trained_through=AS_OF.isoformat(), code_version="test",
    )
    rng = np.random.default_rng(5)
    storage.store().write("churn_scores", churn_scores(rng.uniform(size=len(CUSTOMERS)),
                                                       card.version))
    churned = rng.uniform(size=len(CUSTOMERS)) < 0.3
    buyers = [c for c, gone in zip(CUSTOMERS, churned, strict=True) if not gone]
    warehouse.replace_table("marts.fct_customer_daily_activity",
                            activity(buyers, AS_OF + dt.timedelta(days=HORIZON + 5)))
    warehouse.replace_table("marts.fct_product_daily_sales", pl.DataFrame({
        "sku": ["A"], "sales_date": [AS_OF], "units": [3], "avg_unit_price": [1.0],
        "promo_share": [0.0],
    }))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [dg.AssetSpec("churn_scores"), dg.AssetSpec("demand_forecast"), model_performance],
            instance=instance,
            resources={
                **storage_resources(storage), **model_resources(models),
                "warehouse": WarehouseResource(kind="duckdb", path=str(warehouse.path)),
                "thresholds": MonitoringThresholds(),
            },
        )
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    churn = checks["churn_performance"]
    assert not churn.passed  # random scores: live AUC near 0.5 against 0.85 at training
    assert churn.metadata["at_training"].value == 0.85
    assert checks["demand_performance"].passed  # no forecast yet: nothing to judge
    assert storage.store().partitions("monitoring_history_churn_scores") == [AS_OF.isoformat()]
