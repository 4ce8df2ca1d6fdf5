"""Landed files: their content fingerprints, the versions derived from them, their days.

The one home for landing code, used by the landing and raw assets and by the
landing observation sensor.

Fingerprints are re-hashed only when a file's stat changes.

A landing partition's data version is the sha256 of its bytes, never its
modification time. Hashing every file on every observation would read the
whole landing zone each tick, so hashes are cached by (path, size, mtime_ns, and on
a local disk the inode and ctime, which no copy can set):
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
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import dagster as dg
import pyarrow.fs as pafs

from aiwf_assets.ingest.parse import (
    ALIAS_READING,
    FOOTER_READING,
    LINE_IDENTITY,
    ORDER_AMOUNT_READING,
    ORDER_TOTAL_READING,
    reads_line_fields,
)
from aiwf_assets.ingest.spec import ORDER_DAY, SourceSpec
from aiwf_assets.ingest.timestamps import TIMESTAMP_READING
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


def stat_key(fs: pafs.FileSystem, info: pafs.FileInfo) -> str:
    """What tells a file's versions apart without reading it: path, size and mtime, and on a
    local disk the inode and the status-change time too. A copy that keeps the mtime
    (`cp -p`, `rsync -t`, SFTP `put -p`) of a corrected file of the same size was not
    re-read: its correction was never observed. No copy can set the ctime, and a file moved
    into place has another inode. (S3 objects get a new LastModified on every upload.)"""
    key = f"{info.path}|{info.size}|{info.mtime_ns}"
    if not isinstance(fs, pafs.LocalFileSystem):
        return key
    try:
        stat = os.stat(info.path)
    except FileNotFoundError:
        return key  # gone since the listing: reading it will say so
    return f"{key}|{stat.st_ino}|{stat.st_ctime_ns}"


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
    """path -> sha256 for `files`; only files whose `stat_key` is new are read.

    The cache keeps exactly the entries of this listing, so it stays as small
    as the folder and forgets replaced versions of a file.
    """
    cached = load_cache(cache_file)
    entries: dict[str, str] = {}
    result: dict[str, str] = {}
    for info in files:
        key = stat_key(fs, info)
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
    basis = f"{content_sha256 or 'absent'}|{spec_fingerprint(spec)}|{raw_code_version(spec)}"
    return hashlib.sha256(basis.encode()).hexdigest()


def raw_code_version(spec: SourceSpec) -> str:
    """RAW_CODE_VERSION, plus the version of each reading only some sources use: of order
    times for a source whose parsing reads them (`order_day` in a `within`), of `aliases`
    for one that declares them, of what a line is for one that numbers its lines by
    content (`sequence`), of the `footer`, of `order_amounts` and of the `order_total`
    check for one that declares them. A release that changes such a reading re-parses
    those sources' days, and only those."""
    parts = [RAW_CODE_VERSION]
    if spec.column(ORDER_DAY) is None and any(ORDER_DAY in c.within for c in spec.columns):
        parts.append(TIMESTAMP_READING)
    if any(len(col.source) > 1 for col in spec.columns):
        parts.append(ALIAS_READING)
    if reads_line_fields(spec):
        parts.append(LINE_IDENTITY)
    if spec.order_amounts:
        parts.append(ORDER_AMOUNT_READING)
    if spec.footer is not None:
        parts.append(FOOTER_READING)
    if spec.order_total is not None:
        parts.append(ORDER_TOTAL_READING)
    return "+".join(parts)


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
    """The folder a source's files are listed from, relative to the landing dir: for a daily
    source the folders before the one part of its template that holds `{date}` (`pos` for
    `pos/{date}.csv` and for `pos/dt={date}/export.csv`; '' for `{date}/pos.csv`), for a
    reference file its folder."""
    segments = spec.landing.split("/")
    dated = next((i for i, s in enumerate(segments) if "{date}" in s), len(segments) - 1)
    return "/".join(segments[:dated])


def dated_template(spec: SourceSpec) -> str:
    """The landing template below `landing_folder` (`{date}.csv`, `dt={date}/export.csv`)."""
    folder = landing_folder(spec)
    return spec.landing[len(folder) + 1 :] if folder else spec.landing


def day_of_file(spec: SourceSpec, relative: str) -> str | None:
    """The YYYY-MM-DD day a path below the source's landing folder follows its landing
    template with, or None (`2026-01-05.csv` -> `2026-01-05`; `2026-01-05.csv.partial`,
    `20260105.csv`, `2026-01-05 (1).csv` -> None; with `dt={date}/export.csv`,
    `dt=2026-01-05/export.csv` -> `2026-01-05`)."""
    return _day_in(dated_template(spec), relative)


def _day_in(pattern: str, text: str) -> str | None:
    """The YYYY-MM-DD day `text` has where `pattern` has `{date}`, or None."""
    prefix, _, suffix = pattern.partition("{date}")
    if len(text) < len(prefix) + len(suffix) or not (
        text.startswith(prefix) and text.endswith(suffix)
    ):
        return None
    day = text[len(prefix) : len(text) - len(suffix)]
    return day if _iso_day(day) else None


def _iso_day(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def segment_matches(pattern: str, name: str) -> bool:
    """Whether one folder or file name matches one part of a landing template (`{date}`
    stands for a YYYY-MM-DD day)."""
    return _day_in(pattern, name) is not None if "{date}" in pattern else name == pattern


def _under(root: str, relative: str) -> str:
    return f"{root}/{relative}" if relative else root


def landed_files(
    fs: pafs.FileSystem, folder: str, template: str
) -> list[tuple[str, pafs.FileInfo]]:
    """(path below `folder`, info) of the visible files where `template` puts files: in
    `folder` itself for `{date}.csv`, in its subfolders that match `dt={date}` for
    `dt={date}/export.csv` (only matching folders are listed)."""
    level = [("", folder)]
    for pattern in template.split("/")[:-1]:
        level = [
            (_join(rel, name), f"{path}/{name}")
            for rel, path in level
            for name in list_subfolders(fs, path)
            if segment_matches(pattern, name)
        ]
    return [
        (_join(rel, info.base_name), info) for rel, path in level for info in list_folder(fs, path)
    ]


def partition_of_file(
    spec: SourceSpec, relative: str, partitions: dg.DailyPartitionsDefinition
) -> str | None:
    """The partition a landed file belongs to (`2026-01-05.jsonl` -> `2026-01-05`), from
    its path below the source's landing folder, or None when the path does not follow the
    source's landing template or the day is not a partition (yet)."""
    day = day_of_file(spec, relative)
    return day if day is not None and partitions.has_partition_key(day) else None


def days_outside_window(
    spec: SourceSpec, relatives: list[str], partitions: dg.DailyPartitionsDefinition
) -> list[str]:
    """Days of landed files that follow the source's template but have no partition
    (before AIWF_PARTITION_START, or after today): they are never observed."""
    days = [day for rel in relatives if (day := day_of_file(spec, rel))]
    return sorted(d for d in days if not partitions.has_partition_key(d))


# What a transfer leaves while a file is still on its way (renamed when complete): not a
# delivery yet, so not reported either.
IN_PROGRESS_SUFFIXES = (".tmp", ".partial", ".part", ".crdownload", ".filepart", ".download")


def unread_entries(
    fs: pafs.FileSystem,
    path: str,
    templates: list[list[str]],
    relative: str = "",
    claimed: frozenset[str] = frozenset(),
) -> list[str]:
    """What in a landing folder no template of the sources listed from it reads, as paths
    below it (folders end in `/`): `2026-01-05 (1).csv`, `2026-01-05.CSV`, `20260105.csv`,
    `x.csv.gz`, a split export's `2026-01-05_part2.csv`, a folder per day when the template
    has none, `dt=2026-01-05/part-0002.csv` next to the `export.csv` the template names.
    `templates`: the sources' templates below `path`, split at `/`. Uploads in progress
    (IN_PROGRESS_SUFFIXES) are left out, and so are the `claimed` names directly in `path`
    (another source's folders and files)."""
    out: list[str] = []
    names = [t[0] for t in templates if len(t) == 1]
    for info in list_folder(fs, path):
        name = info.base_name
        if not (
            any(segment_matches(p, name) for p in names)
            or name.lower().endswith(IN_PROGRESS_SUFFIXES)
            or name.startswith("_")  # Spark/Hadoop markers: _SUCCESS, _committed_...
            or name in claimed
        ):
            out.append(_join(relative, name))
    for name in list_subfolders(fs, path):
        deeper = [t[1:] for t in templates if len(t) > 1 and segment_matches(t[0], name)]
        if deeper:
            out += unread_entries(fs, f"{path}/{name}", deeper, _join(relative, name))
        elif name not in claimed:
            out.append(_join(relative, name) + "/")
    return out


def _join(relative: str, name: str) -> str:
    return f"{relative}/{name}" if relative else name


def _claimed_names(folder: str, others: Iterable[SourceSpec]) -> frozenset[str]:
    """Names directly in `folder` (from the landing dir) that other sources' landing paths
    go through: theirs, not files left unread here (`web_orders` and `reference` when a
    source's files are `{date}/pos.csv`)."""
    start = f"{folder}/" if folder else ""
    return frozenset(
        first
        for spec in others
        if spec.landing.startswith(start)
        and "{date}" not in (first := spec.landing[len(start) :].split("/", 1)[0])
    )


def files_outside_window(
    sources: Iterable[SourceSpec], landing: LandingResource,
    partitions: dg.DailyPartitionsDefinition,
) -> list[str]:
    """Landed daily files that are never observed, as `<source> (<folder>/): <why>`: days
    without a partition, and names that do not follow the source's template."""
    fs, root = landing.fs_and_root()
    sources = list(sources)
    daily = [spec for spec in sources if spec.contract.daily]
    out = []
    for spec in daily:
        folder = landing_folder(spec)
        shown_folder = f"{folder}/" if folder else "the landing dir"
        found = [rel for rel, _ in landed_files(fs, _under(root, folder), dated_template(spec))]
        days = days_outside_window(spec, found, partitions)
        if days:
            out.append(f"{spec.name} ({shown_folder}): {outside_window_message(days, partitions)}")
        # a folder several sources are listed from: an entry is unread when it is no one's
        sharing = [s for s in daily if landing_folder(s) == folder]
        if sharing[0] is not spec:
            continue  # said once per folder
        claimed = _claimed_names(folder, (s for s in sources if s not in sharing))
        templates = [dated_template(s).split("/") for s in sharing]
        foreign = sorted(unread_entries(fs, _under(root, folder), templates, claimed=claimed))
        if foreign:
            shown = ", ".join(repr(n) for n in foreign[:5])
            more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            like = " or ".join(dated_template(s).replace("{date}", "YYYY-MM-DD") for s in sharing)
            out.append(
                f"{spec.name} ({shown_folder}): {len(foreign)} file(s) or folder(s) not named"
                f" like {like} are never read: {shown}{more} (a second part of a day's export,"
                " a renamed or compressed file? rename it to the day's name, or merge the parts)"
            )
    return out


def settled(info: pafs.FileInfo, settled_before: dt.datetime | None) -> bool:
    """Whether a file was last written before `settled_before` (None: every file is): a
    file still being written in place (an SFTP upload) changes its mtime as it grows."""
    if settled_before is None or info.mtime is None:
        return True
    mtime = info.mtime if info.mtime.tzinfo else info.mtime.replace(tzinfo=dt.UTC)
    return mtime <= settled_before


def days_with_files(
    spec: SourceSpec, landing: LandingResource, partitions: dg.DailyPartitionsDefinition
) -> set[str]:
    """The partitions a daily source has a landed file for, settled or still being written
    (a listing: no file is read)."""
    fs, root = landing.fs_and_root()
    files = landed_files(fs, _under(root, landing_folder(spec)), dated_template(spec))
    return {day for rel, _ in files if (day := partition_of_file(spec, rel, partitions))}


def landing_versions(
    spec: SourceSpec, landing: LandingResource, partitions: dg.DailyPartitionsDefinition,
    settled_before: dt.datetime | None = None,
) -> dict[str | None, str]:
    """sha256 of every landed file of a source, by partition (None for a reference file).

    Content, not modification time: a touched but identical file keeps its version.
    Hashes are cached by `stat_key` (path, size, mtime_ns; inode, ctime locally) in the
    landing resource's `cache_dir`
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
        for rel, info in landed_files(fs, _under(root, landing_folder(spec)), dated_template(spec))
        if (day := partition_of_file(spec, rel, partitions)) and settled(info, settled_before)
    }
    digests = content_fingerprints(fs, by_day.values(), cache_file)
    return {day: digests[info.path] for day, info in by_day.items()}
