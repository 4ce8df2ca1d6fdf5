"""Landing observation by content, and change-aware automation over the real raw/cleaned assets.

`Daemon` plays the Dagster daemon on a real instance: it evaluates
landing_observation_sensor and records its observations, evaluates the
automation conditions (one tick), and runs what was requested, one run per
partition as the automation sensor launches them.
"""

import datetime as dt
import hashlib
import json
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from unittest import mock

import dagster as dg
import pyarrow.fs as pafs
import pytest

from aiwf_assets.automation.policies import apply_automation_policies
from aiwf_assets.automation.sensors import (
    landing_observation_sensor,
    record_landing_observations,
)
from aiwf_assets.generator import generate
from aiwf_assets.ingest.landing import content_fingerprints, landing_versions, sha256_file
from aiwf_assets.ingest.spec import load_sources
from aiwf_assets.partitions import partitions_for
from aiwf_assets.resources import LandingResource, build_resources
from aiwf_assets.settings import Settings, get_settings, reset_settings_cache
from tests.domains import data_definitions, pipeline_health_for, sources_of

if TYPE_CHECKING:
    from tests.s3_server import S3Endpoint

pytest_plugins = ["tests.s3_server"]  # a real S3 endpoint (moto) on 127.0.0.1

Requested = dict[str, set[str | None]]
DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]
SOURCES = load_sources()
DAILY_SOURCES = sorted(s.name for s in SOURCES.sources.values() if s.contract.daily)
REFERENCE_SOURCES = sorted(s.name for s in SOURCES.sources.values() if not s.contract.daily)


# fingerprints ---------------------------------------------------------------------------
class CountingHasher:
    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, fs: pafs.FileSystem, path: str) -> str:
        self.paths.append(path)
        return sha256_file(fs, path)


def fingerprint(folder: Path, cache: Path, hasher: CountingHasher) -> dict[str, str]:
    fs = pafs.LocalFileSystem()
    infos = fs.get_file_info(pafs.FileSelector(str(folder)))
    return {Path(p).name: d for p, d in content_fingerprints(fs, infos, cache, hasher).items()}


def test_unchanged_files_are_not_reread_and_a_touch_keeps_the_version(tmp_path: Path) -> None:
    folder, cache = tmp_path / "landing", tmp_path / "cache.json"
    folder.mkdir()
    (folder / "a.csv").write_text("id\n1\n")
    (folder / "b.csv").write_text("id\n2\n")
    hasher = CountingHasher()
    first = fingerprint(folder, cache, hasher)
    assert sorted(Path(p).name for p in hasher.paths) == ["a.csv", "b.csv"]

    hasher.paths.clear()
    assert fingerprint(folder, cache, hasher) == first and hasher.paths == []

    stat = (folder / "a.csv").stat()
    os.utime(folder / "a.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched
    assert fingerprint(folder, cache, hasher) == first  # re-read, same content version
    assert [Path(p).name for p in hasher.paths] == ["a.csv"]

    (folder / "a.csv").write_text("id\n3\n")
    (folder / "b.csv").unlink()
    changed = fingerprint(folder, cache, hasher)
    assert list(changed) == ["a.csv"] and changed["a.csv"] != first["a.csv"]
    assert len(json.loads(cache.read_text())) == 1  # one entry left: the cache forgets b.csv


def test_a_same_size_replacement_that_keeps_the_mtime_is_read_again(tmp_path: Path) -> None:
    # a corrected file of the same size copied over the first with its mtime kept
    # (`cp -p`, `rsync -t`, SFTP `put -p`): (path, size, mtime) alone are unchanged
    folder, cache = tmp_path / "landing", tmp_path / "cache.json"
    folder.mkdir()
    landed = folder / "2026-01-05.csv"
    landed.write_text("id,qty\n1,5\n")
    hasher = CountingHasher()
    first = fingerprint(folder, cache, hasher)
    stat = landed.stat()

    corrected = tmp_path / "corrected.csv"
    corrected.write_text("id,qty\n1,6\n")
    os.utime(corrected, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    shutil.copy2(corrected, landed)  # in place: same inode, same size, same mtime
    assert (landed.stat().st_size, landed.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    hasher.paths.clear()
    in_place = fingerprint(folder, cache, hasher)
    assert [Path(p).name for p in hasher.paths] == ["2026-01-05.csv"]
    assert in_place["2026-01-05.csv"] != first["2026-01-05.csv"]

    again = tmp_path / "again.csv"
    again.write_text("id,qty\n1,7\n")
    os.utime(again, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again.replace(landed)  # moved into place: another inode, same size and mtime
    hasher.paths.clear()
    moved = fingerprint(folder, cache, hasher)
    assert [Path(p).name for p in hasher.paths] == ["2026-01-05.csv"]
    assert moved["2026-01-05.csv"] not in (first["2026-01-05.csv"], in_place["2026-01-05.csv"])
    hasher.paths.clear()
    assert fingerprint(folder, cache, hasher) == moved and hasher.paths == []  # still cached


def test_landing_versions_follow_the_landing_template(aiwf_home: Settings) -> None:
    folder = aiwf_home.landing_dir / "web_orders"
    folder.mkdir(parents=True)
    for name in ("2026-01-02.jsonl", "notes.txt", ".2026-01-03.jsonl", "2999-01-01.jsonl"):
        (folder / name).write_text('{"order_id": "W1"}\n')
    landing = LandingResource(
        root=str(aiwf_home.landing_dir), cache_dir=str(aiwf_home.cache_dir / "landing")
    )
    versions = landing_versions(SOURCES["web_orders"], landing, partitions_for(aiwf_home))
    assert list(versions) == ["2026-01-02"]  # hidden, foreign and future files are ignored
    assert versions["2026-01-02"] == sha256_file(
        pafs.LocalFileSystem(), str(folder / "2026-01-02.jsonl")
    )
    assert (aiwf_home.cache_dir / "landing" / "web_orders.json").exists()


def test_files_outside_the_partition_window_are_reported(aiwf_home: Settings) -> None:
    from aiwf_assets.ingest.landing import files_outside_window
    from aiwf_assets.partitions import require_partitions
    from aiwf_assets.settings import SettingsError

    folder = aiwf_home.landing_dir / "web_orders"
    folder.mkdir(parents=True)
    for name in ("2026-01-02.jsonl", "2025-12-31.jsonl", "2999-01-01.jsonl", "notes.txt"):
        (folder / name).write_text('{"order_id": "W1"}\n')
    landing = LandingResource(root=str(aiwf_home.landing_dir))
    partitions = partitions_for(aiwf_home)
    problems = files_outside_window(SOURCES.sources.values(), landing, partitions)
    assert len(problems) == 2 and problems[0].startswith(
        "web_orders (web_orders/): day(s) 2025-12-31, 2999-01-01 outside the daily partition "
        "window (from AIWF_PARTITION_START=2026-01-01 to today, UTC)"
    )
    assert problems[1].startswith(
        "web_orders (web_orders/): 1 file(s) or folder(s) not named like YYYY-MM-DD.jsonl are"
        " never read: 'notes.txt'"
    )

    with pytest.raises(SettingsError, match="2025-12-31 outside .* set AIWF_PARTITION_START"):
        require_partitions(["2025-12-31", "2026-01-02"], partitions)
    assert require_partitions(["2026-01-02"], partitions) == ["2026-01-02"]
    # the window is the settings' own, not the process's
    narrow = partitions_for(replace(aiwf_home, partition_start="2026-01-03"))
    with pytest.raises(SettingsError, match="2026-01-02 outside .*START=2026-01-03"):
        require_partitions(["2026-01-02"], narrow)


def test_files_named_unlike_the_template_are_reported_not_silently_skipped(
    aiwf_home: Settings,
) -> None:
    # what real transfers leave: a second download, an upper-case extension, a date without
    # dashes, a compressed copy, a split export's second part, a folder per day; an upload
    # still in progress is not a delivery yet and is not reported
    from aiwf_assets.ingest.landing import files_outside_window

    folder = aiwf_home.landing_dir / "crm_tickets"
    (folder / "2026-01-04").mkdir(parents=True)
    names = ["2026-01-02.csv", "2026-01-02 (1).csv", "2026-01-02.CSV", "20260102.csv",
             "2026-01-02.csv.gz", "2026-01-02_part2.csv", "2026-01-03.csv.tmp",
             "2026-01-03.csv.partial", ".DS_Store"]  # fmt: skip
    for name in names:
        (folder / name).write_text("ticket_id\n")
    landing = LandingResource(root=str(aiwf_home.landing_dir))
    problems = files_outside_window(SOURCES.sources.values(), landing, partitions_for(aiwf_home))
    assert problems == [
        "crm_tickets (crm_tickets/): 6 file(s) or folder(s) not named like YYYY-MM-DD.csv are"
        " never read: '2026-01-02 (1).csv', '2026-01-02.CSV', '2026-01-02.csv.gz',"
        " '2026-01-02_part2.csv', '2026-01-04/' and 1 more (a second part of a day's export,"
        " a renamed or compressed file? rename it to the day's name, or merge the parts)"
    ]


# a folder per day, as many exports land (`dt=2026-01-02/export.csv`, `2026-01-02/pos.csv`)
POS_IN_DAY_FOLDERS = replace(SOURCES["pos_transactions"], landing="pos/dt={date}/export.csv")
TICKETS_IN_DAY_FOLDERS = replace(SOURCES["crm_tickets"], landing="{date}/tickets.csv")


def test_a_day_may_be_a_folder_and_its_file_is_found_there(aiwf_home: Settings) -> None:
    root = aiwf_home.landing_dir
    for path in ("pos/dt=2026-01-02/export.csv", "pos/dt=2026-01-03/export.csv",
                 "2026-01-02/tickets.csv", "2026-01-03/tickets.csv.partial"):  # fmt: skip
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(f"{path}\n")
    landing = LandingResource(root=str(root))
    partitions = partitions_for(aiwf_home)

    def sha(path: str) -> str:
        return hashlib.sha256(f"{path}\n".encode()).hexdigest()

    assert landing_versions(POS_IN_DAY_FOLDERS, landing, partitions) == {
        "2026-01-02": sha("pos/dt=2026-01-02/export.csv"),
        "2026-01-03": sha("pos/dt=2026-01-03/export.csv"),
    }
    assert landing_versions(TICKETS_IN_DAY_FOLDERS, landing, partitions) == {
        "2026-01-02": sha("2026-01-02/tickets.csv")
    }
    assert POS_IN_DAY_FOLDERS.landing_path("2026-01-02") == "pos/dt=2026-01-02/export.csv"
    from aiwf_assets.demo import days_of_landed_files

    sources = replace(SOURCES, sources={**SOURCES.sources, "pos_transactions": POS_IN_DAY_FOLDERS})
    assert days_of_landed_files(
        ["pos/dt=2026-01-02/export.csv", "pos/dt=2026-01-04/other.csv", "pos/2026-01-05.csv"],
        sources,
    ) == ["2026-01-02"]


def test_what_a_folder_per_day_layout_leaves_unread_is_reported(aiwf_home: Settings) -> None:
    from aiwf_assets.ingest.landing import files_outside_window

    root = aiwf_home.landing_dir
    for path in (
        "pos/dt=2026-01-02/export.csv",
        "pos/dt=2026-01-02/export_part2.csv",  # a second part: never read
        "pos/dt=2026-01-02/export.csv.tmp",  # still uploading: not reported
        "pos/dt=2026-01-02/_SUCCESS",  # Spark's marker of a complete folder: not reported
        "pos/dt=2025-12-31/export.csv",  # before the window
        "pos/dt=20260103/export.csv",  # a day without dashes: its folder is never listed
        "pos/export.csv",  # not in a day's folder
        "2026-01-02/tickets.csv",
        "2026-01-02/tickets (1).csv",
        "notes.txt",  # in the landing dir itself, where the tickets' day folders are
        "web_orders/2026-01-02.jsonl",  # other sources' folders are theirs
        "reference/customers.csv",
    ):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("x\n")
    declared = [POS_IN_DAY_FOLDERS, TICKETS_IN_DAY_FOLDERS] + [
        s for s in SOURCES.sources.values() if s.name not in ("pos_transactions", "crm_tickets")
    ]
    landing = LandingResource(root=str(root))
    problems = files_outside_window(declared, landing, partitions_for(aiwf_home))
    assert problems[0].startswith(
        "pos_transactions (pos/): day(s) 2025-12-31 outside the daily partition window"
    )
    assert problems[1:] == [
        "pos_transactions (pos/): 3 file(s) or folder(s) not named like"
        " dt=YYYY-MM-DD/export.csv are never read: 'dt=2026-01-02/export_part2.csv',"
        " 'dt=20260103/', 'export.csv' (a second part of a day's export,"
        " a renamed or compressed file? rename it to the day's name, or merge the parts)",
        "crm_tickets (the landing dir): 2 file(s) or folder(s) not named like"
        " YYYY-MM-DD/tickets.csv are never read: '2026-01-02/tickets (1).csv', 'notes.txt'"
        " (a second part of a day's export, a renamed or compressed file? rename it to the"
        " day's name, or merge the parts)",
    ]


def test_on_s3_a_folder_per_day_is_listed_too(
    aiwf_home: Settings, s3_endpoint: "S3Endpoint"
) -> None:
    body = b"order_id\n"
    for key in ("pos/dt=2026-01-02/export.csv", "pos/dt=2026-01-02/extra.csv"):
        s3_endpoint.client().put_object(
            Bucket=s3_endpoint.bucket, Key=f"aiwf/landing/{key}", Body=body
        )
    landing = LandingResource(root=s3_endpoint.uri("aiwf/landing"), s3=s3_endpoint.resource())
    from aiwf_assets.ingest.landing import files_outside_window

    partitions = partitions_for(aiwf_home)
    assert landing_versions(POS_IN_DAY_FOLDERS, landing, partitions) == {
        "2026-01-02": hashlib.sha256(body).hexdigest()
    }
    [problem] = files_outside_window([POS_IN_DAY_FOLDERS], landing, partitions)
    assert "never read: 'dt=2026-01-02/extra.csv'" in problem


def test_on_s3_unchanged_objects_are_listed_not_downloaded(
    aiwf_home: Settings, s3_endpoint: "S3Endpoint"
) -> None:
    body = b'{"order_id": "W1", "items": []}\n'
    s3_endpoint.client().put_object(
        Bucket=s3_endpoint.bucket, Key="aiwf/landing/web_orders/2026-01-02.jsonl", Body=body
    )
    landing = LandingResource(
        root=s3_endpoint.uri("aiwf/landing"), s3=s3_endpoint.resource(),
        cache_dir=str(aiwf_home.cache_dir / "landing"),
    )
    spec, partitions = SOURCES["web_orders"], partitions_for(aiwf_home)
    expected = {"2026-01-02": hashlib.sha256(body).hexdigest()}
    assert landing_versions(spec, landing, partitions) == expected
    # the second observation takes the hash from the cache (keyed by path, size, mtime):
    # plant a marker there and it comes back, so the object was not read again
    cache = aiwf_home.cache_dir / "landing" / "web_orders.json"
    [key] = json.loads(cache.read_text())
    cache.write_text(json.dumps({key: "from-the-cache"}))
    assert landing_versions(spec, landing, partitions) == {"2026-01-02": "from-the-cache"}


def test_recording_the_landing_state_leaves_the_sensor_nothing_to_do(
    aiwf_home: Settings,
) -> None:
    folder = aiwf_home.landing_dir / "crm_tickets"
    folder.mkdir(parents=True)
    for day in DAYS:
        (folder / f"{day}.csv").write_text(f"ticket_id,opened_at\nT-{day},{day} 10:00:00\n")
    landing = LandingResource(root=str(aiwf_home.landing_dir))
    with dg.instance_for_test() as instance:
        partitions = partitions_for(aiwf_home)
        assert record_landing_observations(instance, landing, SOURCES, partitions) == len(DAYS)
        sensor = landing_observation_sensor(aiwf_home, SOURCES, partitions)
        # the landing resource nests the S3 resource: its context must be entered
        with dg.build_sensor_context(instance=instance, resources={"landing": landing}) as context:
            assert sensor(context).asset_events == []


def test_with_a_settle_time_a_file_still_being_written_waits(aiwf_home: Settings) -> None:
    # an SFTP upload grows in place: cut at a line end it parses, and would publish part of
    # the day; AIWF_LANDING_SETTLE_S observes a file only once it has not changed for that long
    folder = aiwf_home.landing_dir / "crm_tickets"
    folder.mkdir(parents=True)
    path = folder / f"{DAYS[0]}.csv"
    path.write_text(f"ticket_id,opened_at\nT-1,{DAYS[0]} 10:00:00\n")  # still uploading
    landing = LandingResource(root=str(aiwf_home.landing_dir))
    partitions = partitions_for(aiwf_home)
    settling = replace(aiwf_home, landing_settle_s=60)
    sensor = landing_observation_sensor(settling, SOURCES, partitions)
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources={"landing": landing}) as context:
            assert sensor(context).asset_events == []
        written = dt.datetime.now(dt.UTC).timestamp() - 120  # the upload ended 2 minutes ago
        os.utime(path, (written, written))
        with dg.build_sensor_context(instance=instance, resources={"landing": landing}) as context:
            events = sensor(context).asset_events
        assert [(e.asset_key.to_user_string(), e.partition) for e in events] == [
            ("landing_crm_tickets", DAYS[0])
        ]
    # without a settle time (the default) the file counts at once
    assert landing_versions(SOURCES["crm_tickets"], landing, partitions).keys() == {DAYS[0]}


# the daemon, played by the test -------------------------------------------------------------
class Daemon:
    def __init__(self, settings: Settings, instance: dg.DagsterInstance) -> None:
        resources = build_resources(settings)
        self.defs = apply_automation_policies(
            dg.Definitions.merge(
                data_definitions(settings),
                dg.Definitions(assets=[pipeline_health_for(settings)], resources=resources),
            ),
            settings,
        )
        self.job = self.defs.resolve_implicit_global_asset_job_def()
        self.sensor = landing_observation_sensor(
            settings, sources_of(settings), partitions_for(settings)
        )
        self.landing = resources["landing"]
        self.instance = instance
        self.sensor_cursor: str | None = None
        self.warnings: list[str] = []  # the last sensor tick's
        self.automation_cursor = None
        self.now = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)

    def observe(self) -> list[tuple[str, str | None]]:
        """One sensor tick; its observations are recorded as the daemon does."""
        with dg.build_sensor_context(
            instance=self.instance, cursor=self.sensor_cursor, resources={"landing": self.landing}
        ) as context, mock.patch.object(context.log, "warning") as warning:
            result = self.sensor(context)
        self.warnings = [call.args[0] for call in warning.call_args_list]
        for event in result.asset_events:
            self.instance.report_runless_asset_event(event)
        self.sensor_cursor = result.cursor
        return [(e.asset_key.to_user_string(), e.partition) for e in result.asset_events]

    def tick(self) -> Requested:
        self.now += dt.timedelta(minutes=1)
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.automation_cursor,
            evaluation_time=self.now,
        )
        self.automation_cursor = result.cursor
        return {
            k.to_user_string(): set(parts)
            for k in self.defs.resolve_asset_graph().materializable_asset_keys
            if (parts := result.get_requested_partitions(k))
        }

    def run(self, requested: Requested) -> None:
        by_partition: dict[str | None, list[dg.AssetKey]] = {}
        for name, partitions in requested.items():
            for partition in partitions:
                by_partition.setdefault(partition, []).append(dg.AssetKey(name))
        for partition, keys in sorted(by_partition.items(), key=lambda kv: kv[0] or ""):
            result = self.job.execute_in_process(
                instance=self.instance, partition_key=partition, asset_selection=keys
            )
            assert result.success

    def settle(self) -> list[Requested]:
        made = []
        while requested := self.tick():
            assert len(made) < 8, made
            made.append(requested)
            self.run(requested)
        return made


def raw(days: list[str]) -> Requested:
    return {f"raw_{source}": set(days) for source in DAILY_SOURCES}


def cleaned(days: list[str]) -> Requested:
    return {t: set(days) for t in ("orders", "order_lines", "interactions", "quarantine")}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """One AIWF_HOME for the module: every test below leaves the automation settled."""
    root = tmp_path_factory.mktemp("landing_automation")
    patch = pytest.MonkeyPatch()
    patch.setenv("AIWF_ENV", "local")
    patch.setenv("AIWF_HOME", str(root / "home"))
    patch.delenv("AIWF_PII_KEY", raising=False)
    reset_settings_cache()
    yield get_settings()
    reset_settings_cache()
    patch.undo()


@pytest.fixture(scope="module")
def daemon(home: Settings) -> Iterator[Daemon]:
    """Two generated days delivered and automated from an empty instance; day 3 held back."""
    generate(home.home, seed=5, start=dt.date(2026, 1, 1), days=3, scale=0.05)
    held = home.home / "held"
    for source in DAILY_SOURCES:
        [late] = (home.landing_dir / source).glob(f"{DAYS[2]}.*")
        (held / source).mkdir(parents=True)
        shutil.move(late, held / source / late.name)
    with dg.instance_for_test() as instance:
        d = Daemon(home, instance)
        assert d.tick() == {}  # the first evaluation only records state
        observed = d.observe()
        assert sorted(observed) == sorted(
            [(f"landing_{s}", day) for s in DAILY_SOURCES for day in DAYS[:2]]
            + [(f"landing_{s}", None) for s in REFERENCE_SOURCES]
        )
        made = d.settle()
        assert made[0] == {**raw(DAYS[:2]), **{f"raw_{s}": {None} for s in REFERENCE_SOURCES}}
        assert made[-1] == {"pipeline_health": set(DAYS[:2])}
        assert cleaned(DAYS[:2]).items() <= made[-2].items()  # after the reference tables
        yield d


def test_a_new_day_runs_that_day_only_then_its_downstream(daemon: Daemon, home: Settings) -> None:
    # the ticket file comes last: the day is not cleaned (a step that reads every source of
    # the day, so it would fail) until it lands
    first = [s for s in DAILY_SOURCES if s != "crm_tickets"]
    for source in first:
        [late] = (home.home / "held" / source).glob("*")
        shutil.copy(late, home.landing_dir / source / late.name)
    assert sorted(daemon.observe()) == [(f"landing_{s}", DAYS[2]) for s in first]
    assert daemon.settle() == [{f"raw_{s}": {DAYS[2]} for s in first}]
    [late] = (home.home / "held" / "crm_tickets").glob("*")
    shutil.copy(late, home.landing_dir / "crm_tickets" / late.name)
    assert daemon.observe() == [("landing_crm_tickets", DAYS[2])]
    # the raw ticket file and the day's cleaning in one run (the raw step first)
    assert daemon.settle() == [
        {"raw_crm_tickets": {DAYS[2]}, **cleaned([DAYS[2]])}, {"pipeline_health": {DAYS[2]}}
    ]


def test_a_byte_identical_redelivery_is_not_even_observed(daemon: Daemon, home: Settings) -> None:
    path = home.landing_dir / "web_orders" / f"{DAYS[0]}.jsonl"
    path.write_bytes(path.read_bytes())  # delivered again: new mtime, same bytes
    assert daemon.observe() == []
    assert daemon.settle() == []


def test_reordered_rows_rerun_raw_and_cleaned_then_stop(daemon: Daemon, home: Settings) -> None:
    path = home.landing_dir / "app_orders" / f"{DAYS[1]}.jsonl"
    lines = path.read_text().splitlines()
    random.Random(3).shuffle(lines)
    path.write_text("\n".join(lines) + "\n")
    assert daemon.observe() == [("landing_app_orders", DAYS[1])]
    # the cleaned tables come out with the same content versions: nothing after them runs
    assert daemon.settle() == [{"raw_app_orders": {DAYS[1]}}, cleaned([DAYS[1]])]


def test_the_sensor_cursor_can_be_lost_without_re_running_anything(daemon: Daemon) -> None:
    daemon.sensor_cursor = None
    assert daemon.observe() == []  # versions compared with what the instance recorded
    assert daemon.settle() == []


def test_a_deleted_published_file_is_warned_about_on_every_tick_and_retracts_nothing(
    daemon: Daemon, home: Settings
) -> None:
    path = home.landing_dir / "web_orders" / f"{DAYS[1]}.jsonl"
    kept = path.read_bytes()
    path.unlink()
    gone = [w for w in daemon.warnings if "gone" in w]
    assert gone == []
    for _ in range(2):  # the listing changed, then it did not: warned on both ticks
        assert daemon.observe() == []
        assert [w for w in daemon.warnings if "gone" in w] == [
            f"landed files gone: web_orders: the landing file(s) of {DAYS[1]} were observed"
            " before and are gone now; the published data of those days stays as it was (a"
            " deleted file retracts nothing). Put the file back if it was removed by mistake;"
            " to retract a day, see docs/AUTOMATION.md (Retracting a day)"
        ]
        assert daemon.settle() == []  # nothing runs, nothing is deleted
    daemon.sensor_cursor = None  # a lost cursor finds it again
    daemon.observe()
    assert any(f"web_orders: the landing file(s) of {DAYS[1]}" in w for w in daemon.warnings)
    path.write_bytes(kept)
    assert daemon.observe() == []  # back as it was: nothing to observe, nothing to say
    assert not [w for w in daemon.warnings if "gone" in w]
    assert daemon.settle() == []
