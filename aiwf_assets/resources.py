"""Resources, chosen per environment in one place.

The same assets run locally (files + DuckDB) and in prod (S3 + Postgres) by
swapping only what `build_resources()` returns.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pyarrow.fs as pafs
from dagster_aws.s3 import S3Resource
from pydantic import Field

from aiwf_assets.connections import env_value, s3_resource, s3_store, secret_key
from aiwf_assets.io.model_store import ModelCard, ModelStore
from aiwf_assets.io.parquet_store import ParquetStore
from aiwf_assets.io.warehouse import DuckDBWarehouse, Warehouse
from aiwf_assets.settings import (
    PII_KEY_VAR,
    WAREHOUSE_DSN_VAR,
    Settings,
    SettingsError,
    get_settings,
)


class StorageLocation(dg.ConfigurableResource):
    """A local directory or an S3 prefix (`s3://bucket/prefix`): the one place that decides
    which, for every resource that keeps files."""

    root: str
    s3: S3Resource | None = Field(
        default=None, description="S3 region, endpoint and retries, for an s3:// root"
    )

    def location(self) -> ParquetStore:
        """The filesystem and the root path on it."""
        if self.root.startswith("s3://"):
            return s3_store(self.root, self.s3)
        return ParquetStore.local(str(Path(self.root).resolve()))


class StorageResource(StorageLocation):
    """Parquet storage: a local directory, or `s3://bucket/prefix` in prod."""

    def store(self) -> ParquetStore:
        return self.location()


class ModelStoreResource(StorageLocation):
    """Content-addressed model store: a local directory, or `s3://bucket/prefix` in prod.

    Model cards are signed with a key derived from the deployment's secret: `secret`
    (dg.EnvVar('AIWF_PII_KEY') in prod), else locally the AIWF_HOME key file."""

    secret: str | None = Field(default=None, description="dg.EnvVar: the UI shows the name")
    key_file: str | None = Field(default=None, description="local only: the generated key")

    def store(self) -> ModelStore:
        location = self.location()
        return ModelStore(
            location.filesystem, location.root, secret_key(self.secret, self.key_file)
        )


MODEL_FAMILY = "aiwf/model_family"  # a model asset's metadata: its family in the model store


@dataclass(frozen=True)
class Champion:
    """What a model asset's value is: its family's champion, card and artifact (verified)."""

    card: ModelCard
    artifact: Any

    @property
    def version(self) -> str:
        return self.card.version


class ModelIOManager(dg.ConfigurableIOManager):
    """Model assets' values through their family's champion in the model store.

    A model asset registers its challenger in the store (skops file under its sha256,
    signed card) and decides promotion there; its output is the champion's card after
    that decision, which this manager checks against its own store (signature included)
    and records as `dagster/uri`. Loading gives the family's *current* champion, verified
    (hash, signed card, trusted types only): `aiwf model rollback` changes what the
    scoring assets load without re-materialising the model. The family is the asset's
    `aiwf/model_family` metadata. Swapping model storage (a test's directory, another
    bucket) is this manager's `model_store`, the same value as the `model_store`
    resource (`model_resources`).
    """

    model_store: ModelStoreResource

    def handle_output(self, context: dg.OutputContext, obj: ModelCard | None) -> None:
        if obj is None:  # no champion (an insane first challenger): nothing to point at
            return
        if not isinstance(obj, ModelCard):
            raise TypeError(
                f"{context.asset_key.to_user_string()}: a model asset returns its champion's "
                f"ModelCard, got {type(obj).__name__}"
            )
        store = self.model_store.store()
        store.card(obj.family, obj.version)  # in this store, signed by this deployment
        context.add_output_metadata(
            {"dagster/uri": dg.MetadataValue.path(store.artifact_uri(obj.family, obj.version))}
        )

    def load_input(self, context: dg.InputContext) -> Champion:
        metadata = context.upstream_output.definition_metadata if context.upstream_output else {}
        family = (metadata or {}).get(MODEL_FAMILY)
        if not family:
            raise ValueError(
                f"{context.asset_key.to_user_string()} has no {MODEL_FAMILY} metadata: the "
                "model IO manager loads model assets only"
            )
        card, artifact = self.model_store.store().champion_artifact(str(family))
        return Champion(card, artifact)


def model_resources(model_store: ModelStoreResource) -> dict[str, object]:
    """The model store and the model IO manager over it: swapping model storage is this one
    value."""
    return {"model_store": model_store, "model_io_manager": ModelIOManager(model_store=model_store)}


class ExportsResource(StorageLocation):
    """Where files for the business (the CRM export) are written: a local directory, or
    `s3://bucket/prefix` in prod."""

    def write(self, name: str, frame: pl.DataFrame) -> list[str]:
        """Write `<name>.csv` and `<name>.parquet`, each visible whole or not at all.

        Returns the paths (or `s3://` URIs) written.
        """
        location = self.location()
        written = []
        for suffix, writer in ((".csv", frame.write_csv), (".parquet", frame.write_parquet)):
            buffer = io.BytesIO()
            writer(buffer)
            written.append(location.write_bytes(f"{name}{suffix}", buffer.getvalue()))
        return written


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
    )


class DailyFrames(Mapping[str, pl.DataFrame]):
    """Days of a daily asset, each read from storage only when it is looked up.

    What a step gets for a daily input that spans several days: iterating holds
    one day in memory at a time, never the whole range.
    """

    def __init__(self, store: ParquetStore, asset: str, days: Sequence[str]) -> None:
        self._store, self._asset, self._days = store, asset, list(days)

    def __getitem__(self, day: str) -> pl.DataFrame:
        if day not in self._days:
            raise KeyError(f"{self._asset}: day {day} is not among this step's input days")
        return self._store.read(self._asset, day)

    def __iter__(self) -> Iterator[str]:
        return iter(self._days)

    def __len__(self) -> int:
        return len(self._days)


ALLOW_MISSING = "aiwf/allow_missing"  # AssetIn metadata: load None if never materialised


class ParquetIOManager(dg.ConfigurableIOManager):
    """Python assets' frames as Parquet in the storage location (local directory or S3).

    Paths follow the Parquet store: `<root>/<asset>.parquet`, or
    `<root>/<asset>/<day>.parquet` for daily assets, so the streaming daily
    assets (raw), which write day by day themselves, are read through this
    manager too. Writes are atomic (the store's temporary file + rename, or one
    S3 PUT). Assets that return `None` or a `MaterializeResult` keep their own
    storage; the data version stays the asset's own (`dg.Output(data_version=)`).
    An input declared with `AssetIn(metadata={ALLOW_MISSING: True})` loads as
    None when its asset was never written; any other missing input is an error
    saying what to materialise.
    """

    storage: StorageResource

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | None) -> None:
        if obj is None:
            return
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()}: the Parquet IO manager stores polars "
                f"DataFrames, got {type(obj).__name__}"
            )
        partition = None
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            if len(keys) != 1:
                raise ValueError(
                    f"{context.asset_key.to_user_string()}: one output for {len(keys)} days; "
                    "a daily asset run over a range writes each day itself and returns None"
                )
            partition = keys[0]
        uri = self.storage.store().write(context.asset_key.path[-1], obj, partition)
        context.add_output_metadata(
            {
                "dagster/uri": dg.MetadataValue.path(uri),
                "dagster/row_count": obj.height,
                "dagster/column_schema": column_schema(obj),
            }
        )

    def load_input(self, context: dg.InputContext) -> pl.DataFrame | DailyFrames | None:
        store, asset = self.storage.store(), context.asset_key.path[-1]
        if not context.has_asset_partitions:
            if (context.definition_metadata or {}).get(ALLOW_MISSING) and not store.exists(asset):
                return None
            return store.read(asset)
        days = context.asset_partition_keys
        if context.has_partition_key and len(days) == 1:
            return store.read(asset, days[0])  # a daily step reading its own day
        return DailyFrames(store, asset, days)


class LandingResource(StorageLocation):
    """The landing zone where channels drop files: a local directory or an S3 prefix."""

    cache_dir: str | None = Field(
        default=None,
        description="local folder caching landed files' hashes by stat (disposable); "
        "none: every observation re-hashes",
    )

    def cache_file(self, source: str) -> Path | None:
        """Where the hashes of one source's landed files are cached (None: not cached)."""
        return Path(self.cache_dir) / f"{source}.json" if self.cache_dir else None

    def fs_and_root(self) -> tuple[pafs.FileSystem, str]:
        location = self.location()
        return location.filesystem, location.root

    def list_files(self, channel: str) -> dict[str, str]:
        """file name -> path on the filesystem, for one channel folder."""
        fs, root = self.fs_and_root()
        selector = pafs.FileSelector(f"{root}/{channel}", allow_not_found=True)
        return {
            info.base_name: info.path
            for info in fs.get_file_info(selector)
            if info.type == pafs.FileType.File and not info.base_name.startswith(".")
        }

    def read_bytes(self, relative_path: str) -> bytes:
        fs, root = self.fs_and_root()
        path = f"{root}/{relative_path}"
        try:
            with fs.open_input_stream(path) as stream:
                return stream.read()
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"landing file {self.root}/{relative_path} is missing: was it delivered?"
            ) from exc

    def fingerprint(self, relative_path: str) -> str | None:
        """Content fingerprint of a landed file (sha256 of its bytes); None when absent."""
        fs, root = self.fs_and_root()
        path = f"{root}/{relative_path}"
        if fs.get_file_info(path).type != pafs.FileType.File:
            return None
        digest = hashlib.sha256()
        with fs.open_input_stream(path) as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()


class WarehouseResource(dg.ConfigurableResource):
    """The SQL warehouse: a DuckDB file locally, Postgres in prod."""

    kind: str = Field(default="duckdb", description="duckdb or postgres")
    path: str | None = None
    dsn: str | None = Field(
        default=None,
        description="Postgres DSN; in prod dg.EnvVar('AIWF_WAREHOUSE_DSN'), so resource config "
        "(sent to the webserver) holds the variable's name, never the password",
    )
    schema_suffix: str = ""

    def get(self) -> Warehouse:
        if self.kind == "duckdb":
            if not self.path:
                raise SettingsError("the DuckDB warehouse needs a path")
            return DuckDBWarehouse(Path(self.path))
        if self.kind == "postgres":
            from aiwf_assets.io.postgres import PostgresWarehouse

            dsn = env_value(self.dsn)
            if not dsn:
                raise SettingsError(f"the Postgres warehouse needs {WAREHOUSE_DSN_VAR}")
            return PostgresWarehouse(dsn, schema_suffix=self.schema_suffix)
        raise SettingsError(f"unknown warehouse kind {self.kind!r}: use duckdb or postgres")


class PiiKeyResource(dg.ConfigurableResource):
    """The pseudonymisation key: `secret` from the environment (dg.EnvVar('AIWF_PII_KEY'),
    required in prod), else locally a key generated once per AIWF_HOME in `key_file`."""

    secret: str | None = Field(
        default=None, description="dg.EnvVar('AIWF_PII_KEY'): the UI shows only the name"
    )
    key_file: str | None = Field(
        default=None, description="local only: where the generated key is kept"
    )

    def key(self) -> bytes:
        return secret_key(self.secret, self.key_file)

    def key_source(self) -> dict[str, str | None]:
        """Where the key comes from, for another resource keyed by the same secret."""
        return {"secret": self.secret, "key_file": self.key_file}


def pii_resource(settings: Settings) -> PiiKeyResource:
    """The key as an EnvVar wherever it is set; locally without it, the AIWF_HOME key file."""
    if settings.pii_key_value or settings.env == "prod":
        return PiiKeyResource(secret=dg.EnvVar(PII_KEY_VAR))
    return PiiKeyResource(key_file=str(settings.pii_key_file))


class MonitoringThresholds(dg.ConfigurableResource):
    """When monitoring warns or asks for retraining. Defaults come from the AIWF_DRIFT_*,
    AIWF_PERFORMANCE_* and AIWF_ANOMALY_Z settings; the UI shows the values in force and a
    launchpad run can override them."""

    drift_psi_warn: float = Field(default=0.1, description="PSI that warns")
    drift_psi_retrain: float = Field(default=0.25, description="PSI that retrains the models")
    drift_ks_warn: float = Field(default=0.1, description="KS statistic that warns")
    drift_ks_retrain: float = Field(default=0.2, description="KS statistic that retrains")
    performance_auc_drop: float = Field(
        default=0.05, description="live ROC AUC below the training value by more: churn fails"
    )
    performance_wape_rise: float = Field(
        default=0.05, description="live WAPE above the training value by more: demand fails"
    )
    anomaly_z: float = Field(default=3.5, description="robust z-score flagging an anomalous day")


class GuardsResource(dg.ConfigurableResource):
    """When the publish guards hold a day or a reference file back (docs/DATA_CONTRACTS.md).
    Defaults come from the AIWF_GUARD_* settings; the UI shows the values in force and a
    launchpad run can override them (for a deliberate drop, prefer the run tag
    aiwf/accept_drop, which names the source)."""

    min_volume_ratio: float = Field(
        default=0.2, description="a day's records below this share of the trailing median hold "
        "the day back (unless Poisson noise explains it)",
    )
    window_days: int = Field(default=28, description="published days the median looks back on")
    max_reference_shrink: float = Field(
        default=0.2, description="a reference snapshot with this share fewer rows is held back"
    )
    early_end_hours: float = Field(
        default=2.0, description="a sales file whose last order is this many hours earlier "
        "than on the same weekday's recent days is held back (unless chance explains it)",
    )
    max_quarantine_share: float = Field(
        default=0.5, description="a day quarantining more than this share of a source's rows "
        "is held back (unless the source's usual share and chance explain it)",
    )
    max_cross_day_share: float = Field(
        default=0.5, description="a day whose order, ticket or session ids were mostly "
        "delivered on earlier days already (another day's file under its name) is held back",
    )


def guards_resource(settings: Settings) -> GuardsResource:
    return GuardsResource(
        min_volume_ratio=settings.guard_min_volume_ratio,
        window_days=settings.guard_window_days,
        max_reference_shrink=settings.guard_max_reference_shrink,
        early_end_hours=settings.guard_early_end_hours,
        max_quarantine_share=settings.guard_max_quarantine_share,
        max_cross_day_share=settings.guard_max_cross_day_share,
    )


def monitoring_thresholds(settings: Settings) -> MonitoringThresholds:
    return MonitoringThresholds(
        drift_psi_warn=settings.drift_psi_warn,
        drift_psi_retrain=settings.drift_psi_retrain,
        drift_ks_warn=settings.drift_ks_warn,
        drift_ks_retrain=settings.drift_ks_retrain,
        performance_auc_drop=settings.performance_auc_drop,
        performance_wape_rise=settings.performance_wape_rise,
        anomaly_z=settings.anomaly_z,
    )


def warehouse_resource(settings: Settings) -> WarehouseResource:
    """The warehouse alone: dbt's manifest build needs it without the bucket or other secrets."""
    if settings.env == "local":
        return WarehouseResource(kind="duckdb", path=str(settings.warehouse_path))
    return WarehouseResource(
        kind="postgres",
        dsn=dg.EnvVar(WAREHOUSE_DSN_VAR),
        schema_suffix=settings.warehouse_schema_suffix,
    )


def storage_resources(storage: StorageResource) -> dict[str, object]:
    """The storage location and the IO manager over it: swapping storage is this one value."""
    return {"storage": storage, "io_manager": ParquetIOManager(storage=storage)}


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    settings = settings or get_settings()
    shared = {
        "warehouse": warehouse_resource(settings),
        "pii": pii_resource(settings),
        "thresholds": monitoring_thresholds(settings),
        "guards": guards_resource(settings),
    }
    if settings.env == "local":
        return {
            "landing": LandingResource(
                root=str(settings.landing_dir), cache_dir=str(settings.cache_dir / "landing")
            ),
            **storage_resources(StorageResource(root=str(settings.storage_dir))),
            **model_resources(
                ModelStoreResource(
                    root=str(settings.models_dir), **pii_resource(settings).key_source()
                )
            ),
            "exports": ExportsResource(root=str(settings.exports_dir)),
            **shared,
        }
    s3 = s3_resource(settings)
    return {
        "landing": LandingResource(
            root=settings.s3_uri("landing"), s3=s3, cache_dir=str(settings.cache_dir / "landing")
        ),
        **storage_resources(StorageResource(root=settings.s3_uri("storage"), s3=s3)),
        **model_resources(
            ModelStoreResource(
                root=settings.s3_uri("models"), s3=s3, **pii_resource(settings).key_source()
            )
        ),
        "exports": ExportsResource(root=settings.s3_uri("exports"), s3=s3),
        **shared,
    }
