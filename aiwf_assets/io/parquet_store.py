"""Parquet files on a pyarrow filesystem: a local directory or an S3 prefix.

One class serves the raw layer (which streams partitions itself so that a
range run keeps memory flat) and the Parquet IO manager. Paths are
`<root>/<asset>/<partition>.parquet` for partitioned data and
`<root>/<asset>.parquet` otherwise. Writes are atomic: locally a temporary
file renamed into place, on S3 a single PUT (an object is visible whole or
not at all).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from aiwf_assets.io.s3 import S3Connection


def write_atomically(
    filesystem: pafs.FileSystem, target: str, write: Callable[[pa.NativeFile], object]
) -> None:
    """Write `target` so readers see the old object or the new one, never a part.

    Locally a temporary file beside it renamed into place; on S3 the bytes are
    built in memory first and sent in one upload, so a failure while writing
    never completes an upload of a part.
    """
    parent = target.rsplit("/", 1)[0]
    filesystem.create_dir(parent, recursive=True)
    if isinstance(filesystem, pafs.LocalFileSystem):
        tmp = f"{parent}/.{uuid.uuid4().hex}.tmp"
        with filesystem.open_output_stream(tmp) as out:
            write(out)
        filesystem.move(tmp, target)
    else:
        buffer = pa.BufferOutputStream()
        write(buffer)
        data = buffer.getvalue()
        with filesystem.open_output_stream(target) as out:
            out.write(data)


@dataclass(frozen=True)
class ParquetStore:
    filesystem: pafs.FileSystem
    root: str  # a path on `filesystem`: "/abs/dir" locally, "bucket/prefix" on S3

    @classmethod
    def local(cls, root: str) -> ParquetStore:
        return cls(pafs.LocalFileSystem(), root.rstrip("/"))

    @classmethod
    def s3(cls, bucket_and_prefix: str, connection: S3Connection) -> ParquetStore:
        return cls(connection.filesystem(), bucket_and_prefix.strip("/"))

    @property
    def is_local(self) -> bool:
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    def path(self, asset: str, partition: str | None = None) -> str:
        if partition is None:
            return f"{self.root}/{asset}.parquet"
        return f"{self.root}/{asset}/{partition}.parquet"

    def uri(self, asset: str, partition: str | None = None) -> str:
        p = self.path(asset, partition)
        return p if self.is_local else f"s3://{p}"

    def exists(self, asset: str, partition: str | None = None) -> bool:
        info = self.filesystem.get_file_info(self.path(asset, partition))
        return info.type == pafs.FileType.File

    def write(
        self, asset: str, frame: pl.DataFrame | pa.Table, partition: str | None = None
    ) -> str:
        table = frame.to_arrow() if isinstance(frame, pl.DataFrame) else frame
        write_atomically(
            self.filesystem,
            self.path(asset, partition),
            lambda out: pq.write_table(table, out, compression="zstd"),
        )
        return self.uri(asset, partition)

    def write_bytes(self, name: str, data: bytes) -> str:
        """Any file (`name` relative to the root), written atomically; returns its URI."""
        target = f"{self.root}/{name}"
        write_atomically(self.filesystem, target, lambda out: out.write(data))
        return target if self.is_local else f"s3://{target}"

    def read(self, asset: str, partition: str | None = None) -> pl.DataFrame:
        path = self.path(asset, partition)
        info = self.filesystem.get_file_info(path)
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(
                f"{self.uri(asset, partition)} does not exist: materialise {asset}"
                + (f" for partition {partition}" if partition else "")
                + " first"
            )
        if self.is_local:
            return pl.from_arrow(pq.read_table(path, filesystem=self.filesystem))  # type: ignore[return-value]
        return pl.from_arrow(self._read_s3_object(path, info))  # type: ignore[return-value]

    def _read_s3_object(self, path: str, info: pafs.FileInfo, attempts: int = 3) -> pa.Table:
        """The object at `path` as one version, even while another process replaces it.

        `pq.read_table` on S3 issues several ranged GETs (footer, then column
        chunks), which can straddle a replacement and mix two versions. One GET
        returns bytes of a single version; if the object changed size under the
        read (the GET's range came from an older HEAD), parsing fails and the
        changed size or mtime says to read again.
        """
        attempt = 1
        while True:
            try:
                with self.filesystem.open_input_stream(path) as stream:
                    return pq.read_table(pa.py_buffer(stream.read()))
            except (pa.ArrowException, OSError):
                current = self.filesystem.get_file_info(path)
                unchanged = (current.size, current.mtime) == (info.size, info.mtime)
                if unchanged or attempt == attempts:
                    raise
                info, attempt = current, attempt + 1

    def partitions(self, asset: str) -> list[str]:
        selector = pafs.FileSelector(f"{self.root}/{asset}", allow_not_found=True)
        return sorted(
            info.base_name.removesuffix(".parquet")
            for info in self.filesystem.get_file_info(selector)
            if info.base_name.endswith(".parquet")
        )
