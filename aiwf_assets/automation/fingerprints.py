"""Content fingerprints of landed files, re-hashed only when a file's stat changes.

A landing partition's data version is the sha256 of its bytes, never its
modification time. Hashing every file on every observation would read the
whole landing zone each tick, so hashes are cached by (path, size, mtime_ns):
an untouched file costs one directory listing entry, a touched file is
re-hashed (and yields the same version when its bytes are the same). The
cache is a small JSON file per landing folder; deleting it only costs one
re-hash of each file.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow.fs as pafs

Hasher = Callable[[pafs.FileSystem, str], str]


def sha256_file(fs: pafs.FileSystem, path: str) -> str:
    """sha256 of a file's bytes, streamed in 1 MiB chunks."""
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def stat_key(info: pafs.FileInfo) -> str:
    return f"{info.path}|{info.size}|{info.mtime_ns}"


def load_cache(cache_file: Path | None) -> dict[str, str]:
    if cache_file is None or not cache_file.exists():
        return {}
    try:
        loaded = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}  # a damaged cache is only a cache: start again
    return loaded if isinstance(loaded, dict) else {}


def save_cache(cache_file: Path, entries: dict[str, str]) -> None:
    """Write atomically (temporary file, then rename): concurrent writers never corrupt it."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(f".{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(entries, sort_keys=True))
    tmp.replace(cache_file)


def content_fingerprints(
    fs: pafs.FileSystem,
    files: Iterable[pafs.FileInfo],
    cache_file: Path | None,
    hasher: Hasher = sha256_file,
) -> dict[str, str]:
    """path -> sha256 for `files`; only files whose (path, size, mtime_ns) is new are read.

    The cache keeps exactly the entries of this listing, so it stays as small
    as the folder and forgets replaced versions of a file.
    """
    cached = load_cache(cache_file)
    entries: dict[str, str] = {}
    result: dict[str, str] = {}
    for info in files:
        key = stat_key(info)
        digest = cached.get(key) or hasher(fs, info.path)
        entries[key] = digest
        result[info.path] = digest
    if cache_file is not None and entries != cached:
        save_cache(cache_file, entries)
    return result


def list_folder(fs: pafs.FileSystem, folder: str) -> list[pafs.FileInfo]:
    """Visible files directly in `folder` (none when it does not exist)."""
    selector = pafs.FileSelector(folder, allow_not_found=True)
    return [
        info
        for info in fs.get_file_info(selector)
        if info.type == pafs.FileType.File and not info.base_name.startswith(".")
    ]


def stat_file(fs: pafs.FileSystem, path: str) -> pafs.FileInfo | None:
    info = fs.get_file_info(path)
    return info if info.type == pafs.FileType.File else None
