"""The ML layer's own resources: the model store and the export directory."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import polars as pl

from aiwf_assets.ml.model_store import ModelStore


class ModelStoreResource(dg.ConfigurableResource):
    """Content-addressed model store: a local directory, or `s3://bucket/prefix` in prod."""

    root: str
    s3_endpoint: str | None = None

    def store(self) -> ModelStore:
        if self.root.startswith("s3://"):
            return ModelStore.s3(self.root.removeprefix("s3://"), endpoint=self.s3_endpoint)
        return ModelStore.local(str(Path(self.root).resolve()))


class ExportsResource(dg.ConfigurableResource):
    """Directory where files for the business (the CRM export) are written."""

    root: str

    def write(self, name: str, frame: pl.DataFrame) -> list[str]:
        """Write `<name>.csv` and `<name>.parquet` atomically (temp file, then rename)."""
        folder = Path(self.root)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for suffix, writer in ((".csv", frame.write_csv), (".parquet", frame.write_parquet)):
            target = folder / f"{name}{suffix}"
            tmp = folder / f".{uuid.uuid4().hex}{suffix}"
            writer(tmp)
            tmp.replace(target)
            written.append(str(target))
        return written
