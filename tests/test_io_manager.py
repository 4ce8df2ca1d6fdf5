"""The Parquet IO manager: Python assets pass frames through storage (local or S3), versioned by
content; daily assets written day by day are read through it one day at a time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl
import pytest

from aiwf_assets.io.model_store import ModelIntegrityError
from aiwf_assets.io.parquet_store import ParquetStore
from aiwf_assets.io.warehouse import DuckDBWarehouse
from aiwf_assets.ml.assets import ASSETS as ML_ASSETS
from aiwf_assets.ml.common import frame_version
from aiwf_assets.resources import (
    ALLOW_MISSING,
    MODEL_FAMILY,
    Champion,
    DailyFrames,
    ExportsResource,
    ModelStoreResource,
    StorageResource,
    WarehouseResource,
    model_resources,
    storage_resources,
)
from tests.test_ml_marts_factory import make_marts

if TYPE_CHECKING:
    from tests.s3_server import S3Endpoint

pytest_plugins = ["tests.s3_server"]  # the s3_server and s3_endpoint fixtures

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]
daily = dg.DailyPartitionsDefinition(start_date=DAYS[0], end_date="2026-01-04")


@dg.asset
def prices() -> dg.Output[pl.DataFrame]:
    frame = pl.DataFrame({"sku": ["A", "B"], "price": [1.5, 2.0]})
    return dg.Output(frame, data_version=dg.DataVersion(frame_version(frame)))


@dg.asset
def doubled(prices: pl.DataFrame) -> pl.DataFrame:
    return prices.with_columns(pl.col("price") * 2)


def test_frames_pass_through_storage_with_uri_rows_schema_and_content_version(
    tmp_path: Path,
) -> None:
    resources = storage_resources(StorageResource(root=str(tmp_path)))
    with dg.instance_for_test() as instance:
        result = dg.materialize([prices, doubled], resources=resources, instance=instance)
        assert result.asset_value("doubled")["price"].to_list() == [3.0, 4.0]
        meta = result.asset_materializations_for_node("prices")[0].metadata
        assert meta["dagster/uri"].value == str(tmp_path / "prices.parquet")
        assert meta["dagster/row_count"].value == 2
        assert [c.name for c in meta["dagster/column_schema"].schema.columns] == ["sku", "price"]
        record = instance.get_latest_data_version_record(dg.AssetKey("prices"))
        assert record is not None
        version = record.event_log_entry.asset_materialization.tags["dagster/data_version"]
        assert version == frame_version(pl.read_parquet(tmp_path / "prices.parquet"))
        defs = dg.Definitions(assets=[prices, doubled], resources=resources)
        assert defs.load_asset_value("doubled", instance=instance).equals(
            pl.read_parquet(tmp_path / "doubled.parquet")
        )
    assert [p.name for p in tmp_path.iterdir()] == sorted(["prices.parquet", "doubled.parquet"])


def test_a_missing_input_names_the_asset_to_materialise_unless_declared_optional(
    tmp_path: Path,
) -> None:
    @dg.asset(ins={"prices": dg.AssetIn(metadata={ALLOW_MISSING: True})})
    def tolerant(prices: pl.DataFrame | None) -> None:
        assert prices is None

    resources = storage_resources(StorageResource(root=str(tmp_path)))
    spec = dg.AssetSpec("prices")
    assert dg.materialize([spec, tolerant], resources=resources).success
    with pytest.raises(FileNotFoundError, match="prices.parquet does not exist: materialise"):
        dg.materialize([spec, doubled], resources=resources)


def test_daily_assets_written_day_by_day_are_read_one_day_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streaming daily assets (raw) write their own days; the manager reads them back: a
    daily step gets its day, an unpartitioned step a mapping that reads a day on lookup."""
    store = ParquetStore.local(str(tmp_path))
    for i, day in enumerate(DAYS):
        store.write("raw_days", pl.DataFrame({"day": [day], "rows": [i]}), day)
    reads: list[str | None] = []
    original = ParquetStore.read

    def counting_read(self: ParquetStore, asset: str, partition: str | None = None):
        reads.append(partition)
        return original(self, asset, partition)

    monkeypatch.setattr(ParquetStore, "read", counting_read)
    raw_days = dg.AssetSpec("raw_days", partitions_def=daily)

    @dg.asset(partitions_def=daily)
    def one_day(raw_days: pl.DataFrame) -> None:
        assert raw_days["day"].to_list() == ["2026-01-02"]

    @dg.asset
    def all_days(raw_days: DailyFrames) -> None:
        assert isinstance(raw_days, DailyFrames) and reads == []  # nothing read yet
        assert list(raw_days) == DAYS
        assert [raw_days[day]["rows"][0] for day in raw_days] == [0, 1, 2]
        assert reads == DAYS  # one day per lookup

    resources = storage_resources(StorageResource(root=str(tmp_path)))
    assert dg.materialize(
        [raw_days, one_day], partition_key="2026-01-02", resources=resources
    ).success
    reads.clear()
    assert dg.materialize([raw_days, all_days], resources=resources).success


def test_a_range_output_is_refused_daily_assets_write_their_own_days(tmp_path: Path) -> None:
    @dg.asset(partitions_def=daily, backfill_policy=dg.BackfillPolicy.single_run())
    def ranged() -> pl.DataFrame:
        return pl.DataFrame({"x": [1]})

    with pytest.raises(ValueError, match="writes each day itself and returns None"):
        dg.materialize(
            [ranged],
            tags={
                "dagster/asset_partition_range_start": DAYS[0],
                "dagster/asset_partition_range_end": DAYS[-1],
            },
            resources=storage_resources(StorageResource(root=str(tmp_path))),
        )


def test_the_ml_layer_runs_with_storage_swapped_to_s3(
    s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    """Only the storage resource changes: features -> churn model -> scores on S3, and the
    scores load back from the bucket by asset key."""
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    for name, frame in make_marts().items():
        warehouse.replace_table(f"marts.{name}", frame)
    storage = StorageResource(root=s3_endpoint.uri("storage"), s3=s3_endpoint.resource())
    resources = {
        **storage_resources(storage),
        "warehouse": WarehouseResource(kind="duckdb", path=str(warehouse.path)),
        **model_resources(ModelStoreResource(root=str(tmp_path / "models"), secret="test-key")),
        "exports": ExportsResource(root=str(tmp_path / "exports")),
    }
    selection = ["customer_features", "churn_model", "churn_scores"]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            ML_ASSETS, selection=selection, resources=resources, instance=instance
        )
        assert result.success
        defs = dg.Definitions(assets=ML_ASSETS, resources=resources)
        scores = defs.load_asset_value("churn_scores", instance=instance)
    assert scores.equals(result.asset_value("churn_scores"))
    assert scores["risk_band"].is_in(["low", "medium", "high"]).all()
    meta = result.asset_materializations_for_node("customer_features")[0].metadata
    assert meta["dagster/uri"].value == s3_endpoint.uri("storage", "customer_features.parquet")
    listed = s3_endpoint.client().list_objects_v2(Bucket=s3_endpoint.bucket)["Contents"]
    assert {o["Key"] for o in listed if not o["Key"].endswith("/")} == {
        "storage/customer_features.parquet",
        "storage/churn_scores.parquet",
    }
    assert not (tmp_path / "storage").exists()


def toy_model_with(slope: float) -> dg.AssetsDefinition:
    """Stands for a model asset: registers and promotes in the store, returns the card."""

    @dg.asset(
        name="toy_model", io_manager_key="model_io_manager", metadata={MODEL_FAMILY: "toy"},
        required_resource_keys={"model_store"},
    )
    # unannotated: this module's string annotations (__future__) hide types from Dagster
    def toy_model(context) -> dg.Output:
        store = context.resources.model_store.store()
        card = store.save(
            {"slope": slope}, family="toy", model_name="line", params={}, metrics={},
            baseline_metrics={}, data_versions={}, row_counts={}, trained_through="2026-01-01",
            code_version="1",
        )
        store.record("toy", card.version, "promote", "test")
        return dg.Output(card, data_version=dg.DataVersion(card.version))

    return toy_model


@dg.asset(ins={"model": dg.AssetIn("toy_model", input_manager_key="model_io_manager")})
def toy_scores(model) -> pl.DataFrame:  # a Champion (unannotated, as toy_model's context)
    assert isinstance(model, Champion)
    return pl.DataFrame({"x": [1.0, 2.0]}).with_columns(
        y=pl.col("x") * model.artifact["slope"], model_version=pl.lit(model.version)
    )


def test_model_assets_load_their_current_champion_through_the_model_io_manager(
    s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    """Models on S3 by swapping the model store alone: a model asset's value is its family's
    current champion (card and artifact, verified), so a rollback changes what scoring loads
    without re-materialising the model, and a tampered artifact is refused."""
    models = ModelStoreResource(
        root=s3_endpoint.uri("models"), s3=s3_endpoint.resource(), secret="test-key"
    )
    resources = {
        **storage_resources(StorageResource(root=str(tmp_path / "storage"))),
        **model_resources(models),
    }
    defs = dg.Definitions(assets=[toy_model_with(0.0), toy_scores], resources=resources)
    with dg.instance_for_test() as instance:

        def train(slope: float) -> str:
            result = dg.materialize(
                [toy_model_with(slope), toy_scores], resources=resources, instance=instance
            )
            assert result.success
            version = result.asset_value("toy_model").version  # loaded: the new champion
            uri = result.asset_materializations_for_node("toy_model")[0].metadata["dagster/uri"]
            assert uri.value == s3_endpoint.uri("models", "artifacts", "toy", f"{version}.skops")
            return version

        first, second = train(2.0), train(3.0)
        champion = defs.load_asset_value("toy_model", instance=instance)
        assert isinstance(champion, Champion)
        assert (champion.version, champion.artifact) == (second, {"slope": 3.0})
        assert defs.load_asset_value("toy_scores", instance=instance)["y"].to_list() == [3.0, 6.0]

        models.store().rollback("toy")  # `aiwf model rollback toy`
        assert defs.load_asset_value("toy_model", instance=instance).version == first
        rescored = dg.materialize(
            [toy_model_with(9.0), toy_scores], selection=["toy_scores"], resources=resources,
            instance=instance,
        )
        assert rescored.asset_value("toy_scores")["y"].to_list() == [2.0, 4.0]
        assert rescored.asset_value("toy_scores")["model_version"][0] == first

        s3_endpoint.client().put_object(  # someone replaces the champion's bytes
            Bucket=s3_endpoint.bucket, Key=f"models/artifacts/toy/{first}.skops", Body=b"x"
        )
        with pytest.raises(ModelIntegrityError, match="corrupt or was replaced"):
            defs.load_asset_value("toy_model", instance=instance)
