"""The AI layer's Dagster assets materialise end to end on a small DuckDB warehouse."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from aiwf_assets.io.model_store import ModelStore
from aiwf_assets.io.warehouse import DuckDBWarehouse
from aiwf_assets.ml import churn
from aiwf_assets.ml.assets import ASSETS
from aiwf_assets.ml.definitions import build_ml_definitions
from aiwf_assets.ml.serving import EXPORT_COLUMNS
from aiwf_assets.resources import (
    ExportsResource,
    ModelStoreResource,
    StorageResource,
    WarehouseResource,
    model_resources,
    storage_resources,
)
from tests.test_ml_marts_factory import make_marts

MODEL_ASSETS = ["churn_model", "segmentation_model", "demand_model", "recommender"]

KEY = b"test-key"  # the secret the resources below sign model cards with
# dim_customers also holds CRM customers who have not bought yet (an export row each, no
# score) and a guest without a purchase (known from interactions only: no score, no row)
NEVER_BOUGHT_CRM = ["n00001", "n00002"]
SESSIONS_ONLY_GUEST = "g00001"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    root = tmp_path_factory.mktemp("ml")
    warehouse = DuckDBWarehouse(root / "warehouse.duckdb")
    marts = make_marts()
    not_buying = pl.DataFrame(
        {
            "customer_key": [*NEVER_BOUGHT_CRM, SESSIONS_ONLY_GUEST],
            "is_known_to_crm": [True, True, False],
        }
    )
    marts["dim_customers"] = pl.concat([marts["dim_customers"], not_buying], how="diagonal_relaxed")
    for name, frame in marts.items():
        warehouse.replace_table(f"marts.{name}", frame)
    resources = {
        "warehouse": WarehouseResource(kind="duckdb", path=str(warehouse.path)),
        **storage_resources(StorageResource(root=str(root / "storage"))),
        **model_resources(ModelStoreResource(root=str(root / "models"), secret="test-key")),
        "exports": ExportsResource(root=str(root / "exports")),
    }
    return root, resources


def test_specs_groups_and_blocking_promotion_checks(
    setup: tuple[Path, dict[str, object]],
) -> None:
    _, resources = setup
    assets = build_ml_definitions().assets
    graph = dg.Definitions(assets=assets, resources=resources).resolve_asset_graph()
    groups = {
        key.to_user_string(): graph.get(key).group_name for key in graph.materializable_asset_keys
    }
    assert groups == {
        "customer_features": "features",
        "demand_features": "features",
        "interaction_matrix": "features",
        **{name: "ml" for name in MODEL_ASSETS},
        "churn_scores": "serving",
        "customer_segments": "serving",
        "demand_forecast": "serving",
        "recommendations": "serving",
        "crm_export": "serving",
    }
    checks = {
        key.asset_key.to_user_string(): graph.get_check_spec(key) for key in graph.asset_check_keys
    }
    assert sorted(checks) == sorted(MODEL_ASSETS)
    assert all(spec.blocking and spec.name == "promotion" for spec in checks.values())
    assert graph.get(dg.AssetKey("customer_features")).parent_keys == {
        dg.AssetKey("fct_customer_daily_activity"),
        dg.AssetKey("fct_orders"),
        dg.AssetKey("dim_customers"),
    }
    # the export reads dim_customers for the CRM customers who have no score
    assert dg.AssetKey("dim_customers") in graph.get(dg.AssetKey("crm_export")).parent_keys


def test_pipeline_materialises_and_exports_to_the_crm(
    setup: tuple[Path, dict[str, object]],
) -> None:
    root, resources = setup
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(ASSETS, resources=resources, instance=instance)
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 4 and all(e.passed for e in evaluations)

    # frames pass through the Parquet IO manager: values from the run and from storage agree
    scores = result.asset_value("churn_scores")
    defs = dg.Definitions(assets=ASSETS, resources=resources)
    assert defs.load_asset_value("churn_scores", instance=instance).equals(scores)
    scores_meta = result.asset_materializations_for_node("churn_scores")[0].metadata
    assert scores_meta["dagster/row_count"].value == scores.height
    assert scores_meta["dagster/uri"].value == str(root / "storage" / "churn_scores.parquet")

    churn_meta = result.asset_materializations_for_node("churn_model")[0].metadata
    assert "data:image/svg+xml;base64," in churn_meta["plot_roc"].value
    assert churn_meta["promoted"].value is True
    assert churn_meta["training_data_versions"].value["customer_features"] != "never materialised"

    # the model assets' values go through the model IO manager: the champion, card and
    # artifact, verified; its artifact's location is the output's dagster/uri
    champion = defs.load_asset_value("churn_model", instance=instance)
    assert champion.version == scores["model_version"][0] == churn_meta["champion_version"].value
    assert champion.card.family == "churn"
    assert champion.card == ModelStore.local(str(root / "models"), KEY).champion("churn")
    features = defs.load_asset_value("customer_features", instance=instance)
    assert churn.score_customers(champion.artifact, features).equals(
        scores.drop("model_version")
    )
    assert churn_meta["dagster/uri"].value == str(
        root / "models" / "artifacts" / "churn" / f"{champion.version}.skops"
    )

    warehouse = DuckDBWarehouse(root / "warehouse.duckdb")
    export = warehouse.query("SELECT * FROM serving.crm_export")
    assert export.columns == EXPORT_COLUMNS
    assert export["customer_key"].is_unique().all()
    # one row per scored customer, and one per CRM customer who has not bought yet
    scored = export.join(scores, on="customer_key", how="semi")
    assert scored.height == scores.height
    assert scored["risk_band"].is_in(["low", "medium", "high"]).all()
    never_bought = warehouse.query(
        "SELECT customer_key FROM marts.dim_customers "
        "WHERE is_known_to_crm AND first_order_date IS NULL ORDER BY customer_key"
    )["customer_key"].to_list()
    assert set(NEVER_BOUGHT_CRM) < set(never_bought)  # the synthetic marts have some too
    not_scored = export.join(scores, on="customer_key", how="anti").sort("customer_key")
    assert not_scored["customer_key"].to_list() == never_bought
    assert not_scored["risk_band"].null_count() == len(never_bought)
    assert (not_scored["next_best_action"] == "no action").all()
    assert not_scored["action_reason"].str.starts_with("no purchase yet").all()
    export_meta = result.asset_materializations_for_node("crm_export")[0].metadata
    assert export_meta["not_scored_no_purchase_yet"].value == len(never_bought)
    assert pl.read_csv(root / "exports" / "crm_export.csv").height == export.height
    # every buyer of the synthetic marts is a CRM customer: guests have no holdout rows,
    # so nothing is released for them, and every row says why it got its action
    gate = export_meta["action_gate"].value
    assert not gate["churn"]["guest"]["released"]
    assert gate["churn"]["identified"]["count"] > 0
    assert set(export["population"].unique()) == {"identified"}
    assert export["action_reason"].null_count() == 0
    assert "roc_auc[identified]" in churn_meta["metrics"].value

    # retraining on unchanged data does not replace the champion without a real gain
    store = ModelStore.local(str(root / "models"), KEY)
    champion = store.champion("churn")
    again = dg.materialize(
        ASSETS, selection=["churn_model"], resources=resources, instance=instance
    )
    assert again.success
    assert store.champion("churn") == champion
    (evaluation,) = again.get_asset_check_evaluations()
    assert not evaluation.metadata["decision"].value.startswith("promoted")


def test_a_retailer_whose_sources_identify_nobody_gets_its_forecasts_and_no_customer_models(
    tmp_path: Path,
) -> None:
    # A till without loyalty cards and no customer file: the marts hold orders, none with a
    # customer. The customer models used to fail every run ("the marts hold no activity
    # yet", and the recommender on an empty matrix); now the customer chain is skipped with
    # the reason and the demand chain is served.
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    for name, frame in make_marts().items():
        if name in ("dim_customers", "fct_customer_daily_activity"):
            frame = frame.clear()
        elif "customer_key" in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias("customer_key"))
        warehouse.replace_table(f"marts.{name}", frame)
    resources = {
        "warehouse": WarehouseResource(kind="duckdb", path=str(warehouse.path)),
        **storage_resources(StorageResource(root=str(tmp_path / "storage"))),
        **model_resources(ModelStoreResource(root=str(tmp_path / "models"), secret="test-key")),
        "exports": ExportsResource(root=str(tmp_path / "exports")),
    }
    result = dg.materialize(ASSETS, resources=resources)
    assert result.success
    done = {e.step_key for e in result.get_step_success_events()}
    skipped = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"}
    assert {"demand_model", "demand_forecast"} <= done
    assert skipped == {
        "churn_model", "segmentation_model", "recommender",
        "churn_scores", "customer_segments", "recommendations", "crm_export",
    }  # fmt: skip
    assert not result.asset_materializations_for_node("customer_features")
    observed = {
        e.asset_key.path[-1]: e.asset_observation_data.asset_observation.metadata["skipped"].value
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    }
    assert set(observed) == {"customer_features", "interaction_matrix"}
    assert all(w.startswith("no customer population: the marts hold") for w in observed.values())
    assert not warehouse.table_exists("serving.crm_export")


def test_marts_not_built_yet_are_still_an_error_and_not_an_empty_population(
    tmp_path: Path,
) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    for name, frame in make_marts().items():
        warehouse.replace_table(f"marts.{name}", frame.clear())
    resources = {"warehouse": WarehouseResource(kind="duckdb", path=str(warehouse.path))}
    from aiwf_assets.ml.assets.features import customer_features

    with pytest.raises(ValueError, match="the marts hold no activity yet"):
        dg.materialize([customer_features], resources=resources)
