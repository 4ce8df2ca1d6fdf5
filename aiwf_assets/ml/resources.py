"""The ML layer's own resources: the model store and the exports location."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import dagster as dg
import polars as pl

from aiwf_assets.io.parquet_store import ParquetStore
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
    """Where files for the business (the CRM export) are written: a local directory, or
    `s3://bucket/prefix` in prod."""

    root: str
    s3_endpoint: str | None = None

    def write(self, name: str, frame: pl.DataFrame) -> list[str]:
        """Write `<name>.csv` and `<name>.parquet`, each visible whole or not at all.

        Locally a temporary file renamed into place; on S3 one PUT per object.
        Returns the paths (or `s3://` URIs) written.
        """
        if self.root.startswith("s3://"):
            return self._write_s3(name, frame)
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

    def _write_s3(self, name: str, frame: pl.DataFrame) -> list[str]:
        store = ParquetStore.s3(self.root.removeprefix("s3://"), endpoint=self.s3_endpoint)
        written = []
        for suffix, writer in ((".csv", frame.write_csv), (".parquet", frame.write_parquet)):
            buffer = io.BytesIO()
            writer(buffer)
            key = f"{store.root}/{name}{suffix}"
            with store.filesystem.open_output_stream(key) as out:
                out.write(buffer.getvalue())
            written.append(f"s3://{key}")
        return written
