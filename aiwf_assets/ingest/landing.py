"""Landed files: their content fingerprints, the versions derived from them, their days.

The one home for landing code, used by the landing and raw assets and by the
landing observation sensor.

Fingerprints are re-hashed only when a file's stat changes.

A landing partition's data version is the sha256 of its bytes, never its
modification time. Hashing every file on every observation would read the
whole landing zone each tick, so hashes are cached by (path, size, mtime_ns):
an untouched file costs one directory listing entry, a touched file is
re-hashed (and yields the same version when its bytes are the same). The
cache is a small JSON file per landing folder; deleting it only costs one
re-hash of each file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import dagster as dg
import pyarrow.fs as pafs

from aiwf_assets.ingest.spec import SourceSpec
from aiwf_assets.partitions import outside_window_message
from aiwf_assets.resources import LandingResource

RAW_CODE_VERSION = "raw-2"  # raw-2: content line numbers, position-free errors

Hasher = Callable[[pafs.FileSystem, str], str]


def sha256_file(fs: pafs.FileSystem, path: str) -> str:
    """sha256 of a file's bytes, streamed in 1 MiB chunks."""
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """sha256 of bytes already read: the same fingerprint as `sha256_file` and
    `LandingResource.fingerprint` give for a file with these bytes."""
    return hashlib.sha256(data).hexdigest()


def read_landed(landing: LandingResource, relative: str) -> tuple[bytes, str] | None:
    """A landed file's bytes and their fingerprint from one read; None when absent."""
    try:
        data = landing.read_bytes(relative)
    except FileNotFoundError:
        return None
    return data, sha256_bytes(data)


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


def list_subfolders(fs: pafs.FileSystem, folder: str) -> list[str]:
    """Names of the visible folders directly in `folder` (none when it does not exist)."""
    selector = pafs.FileSelector(folder, allow_not_found=True)
    return sorted(
        info.base_name
        for info in fs.get_file_info(selector)
        if info.type == pafs.FileType.Directory and not info.base_name.startswith(".")
    )


def stat_file(fs: pafs.FileSystem, path: str) -> pafs.FileInfo | None:
    info = fs.get_file_info(path)
    return info if info.type == pafs.FileType.File else None


# versions and days of landed files ----------------------------------------------------
def combine_versions(versions: list[str]) -> str:
    """One data version for a run over several partitions (Dagster stores one per run)."""
    if len(versions) == 1:
        return versions[0]
    return hashlib.sha256("|".join(versions).encode()).hexdigest()


def raw_data_version(content_sha256: str | None, spec: SourceSpec) -> str:
    """Version of a raw partition: what landed + how it is mapped + parser code, not when."""
    basis = f"{content_sha256 or 'absent'}|{spec_fingerprint(spec)}|{RAW_CODE_VERSION}"
    return hashlib.sha256(basis.encode()).hexdigest()


def landing_path(spec: SourceSpec, partition: str | None) -> str:
    return spec.landing_path(partition)


def spec_fingerprint(spec: SourceSpec) -> str:
    """Hash of the declaration: a mapping change is a code change for this asset.

    Only what is declared counts: a field left at its default is left out, so a release
    that adds an option (at a default that keeps today's reading) does not re-version
    every raw day; changing any value, or setting an option, does."""
    text = json.dumps(declared(spec), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def declared(value: object) -> object:
    """A dataclass tree as plain JSON values, without the fields left at their defaults.
    A dataclass's fields are sorted by name (their order in the code means nothing); a
    mapping keeps its order (a contract's columns are in the order they are written)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: declared(getattr(value, f.name))
            for f in sorted(dataclasses.fields(value), key=lambda f: f.name)
            if not _at_default(f, getattr(value, f.name))
        }
    if isinstance(value, Mapping):
        return {str(k): declared(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [declared(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot fingerprint a {type(value).__name__} in a source declaration")


def _at_default(f: dataclasses.Field, value: object) -> bool:
    if f.default is not dataclasses.MISSING:
        return bool(value == f.default)
    if f.default_factory is not dataclasses.MISSING:
        return bool(value == f.default_factory())
    return False


def landing_folder(spec: SourceSpec) -> str:
    return spec.landing.rsplit("/", 1)[0]


def day_of_file(spec: SourceSpec, file_name: str) -> str | None:
    """The YYYY-MM-DD day a file name follows the source's landing template with, or None
    (`2026-01-05.csv` -> `2026-01-05`; `2026-01-05.csv.partial`, `20260105.csv`, `2026-01-05
    (1).csv` -> None)."""
    prefix, _, suffix = spec.landing.rsplit("/", 1)[-1].partition("{date}")
    if not (file_name.startswith(prefix) and file_name.endswith(suffix)):
        return None
    day = file_name[len(prefix) : len(file_name) - len(suffix)]
    return day if _iso_day(day) else None


def partition_of_file(
    spec: SourceSpec, file_name: str, partitions: dg.DailyPartitionsDefinition
) -> str | None:
    """The partition a landed file name belongs to (`2026-01-05.jsonl` -> `2026-01-05`),
    or None when the name does not follow the source's landing template or the day is
    not a partition (yet)."""
    day = day_of_file(spec, file_name)
    return day if day is not None and partitions.has_partition_key(day) else None


def days_outside_window(
    spec: SourceSpec, file_names: list[str], partitions: dg.DailyPartitionsDefinition
) -> list[str]:
    """Days of landed files that follow the source's template but have no partition
    (before AIWF_PARTITION_START, or after today): they are never observed."""
    days = [day for name in file_names if (day := day_of_file(spec, name))]
    return sorted(d for d in days if not partitions.has_partition_key(d))


# What a transfer leaves while a file is still on its way (renamed when complete): not a
# delivery yet, so not reported either.
IN_PROGRESS_SUFFIXES = (".tmp", ".partial", ".part", ".crdownload", ".filepart", ".download")


def unrecognised_names(spec: SourceSpec, names: list[str]) -> list[str]:
    """Names in a source's folder that do not follow its landing template with a
    YYYY-MM-DD day (`2026-01-05 (1).csv`, `2026-01-05.CSV`, `20260105.csv`, `x.csv.gz`,
    a split export's `2026-01-05_part2.csv`): never read, so a user must hear of them.
    Uploads in progress (IN_PROGRESS_SUFFIXES) are left out."""
    return sorted(
        n for n in names
        if day_of_file(spec, n) is None and not n.lower().endswith(IN_PROGRESS_SUFFIXES)
    )


def _iso_day(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def files_outside_window(
    sources: Iterable[SourceSpec], landing: LandingResource,
    partitions: dg.DailyPartitionsDefinition,
) -> list[str]:
    """Landed daily files that are never observed, as `<source> (<folder>/): <why>`: days
    without a partition, and names that do not follow the source's template."""
    fs, root = landing.fs_and_root()
    daily = [spec for spec in sources if spec.contract.daily]
    out = []
    for spec in daily:
        folder = f"{root}/{landing_folder(spec)}"
        names = [i.base_name for i in list_folder(fs, folder)]
        days = days_outside_window(spec, names, partitions)
        if days:
            out.append(
                f"{spec.name} ({landing_folder(spec)}/): "
                f"{outside_window_message(days, partitions)}"
            )
        # a folder two sources share: a name is foreign when it is neither's
        sharing = [s for s in daily if landing_folder(s) == landing_folder(spec)]
        if sharing[0] is not spec:
            continue  # said once per folder
        foreign = sorted(set.intersection(*(set(unrecognised_names(s, names)) for s in sharing)))
        foreign += [f"{d}/" for d in list_subfolders(fs, folder)]
        if foreign:
            shown = ", ".join(repr(n) for n in foreign[:5])
            more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            out.append(
                f"{spec.name} ({landing_folder(spec)}/): {len(foreign)} file(s) or folder(s)"
                " not named"
                f" like {spec.landing.rsplit('/', 1)[-1].replace('{date}', 'YYYY-MM-DD')}"
                f" are never read: {shown}{more} (a second part of a day's export, a"
                " renamed or compressed file? rename it to the day's name, or merge the parts)"
            )
    return out


def settled(info: pafs.FileInfo, settled_before: dt.datetime | None) -> bool:
    """Whether a file was last written before `settled_before` (None: every file is): a
    file still being written in place (an SFTP upload) changes its mtime as it grows."""
    if settled_before is None or info.mtime is None:
        return True
    mtime = info.mtime if info.mtime.tzinfo else info.mtime.replace(tzinfo=dt.UTC)
    return mtime <= settled_before


def landing_versions(
    spec: SourceSpec, landing: LandingResource, partitions: dg.DailyPartitionsDefinition,
    settled_before: dt.datetime | None = None,
) -> dict[str | None, str]:
    """sha256 of every landed file of a source, by partition (None for a reference file).

    Content, not modification time: a touched but identical file keeps its version.
    Hashes are cached by (path, size, mtime_ns) in the landing resource's `cache_dir`
    (AIWF_HOME/cache/landing; none: no cache), so observing
    an unchanged landing zone lists folders and reads no file.
    """
    fs, root = landing.fs_and_root()
    cache_file = landing.cache_file(spec.name)
    if not spec.contract.daily:
        info = stat_file(fs, f"{root}/{landing_path(spec, None)}")
        if info is not None and not settled(info, settled_before):
            info = None
        digests = content_fingerprints(fs, [info] if info else [], cache_file)
        return {None: digests[info.path]} if info else {}
    by_day = {
        day: info
        for info in list_folder(fs, f"{root}/{landing_folder(spec)}")
        if (day := partition_of_file(spec, info.base_name, partitions))
        and settled(info, settled_before)
    }
    digests = content_fingerprints(fs, by_day.values(), cache_file)
    return {day: digests[info.path] for day, info in by_day.items()}
