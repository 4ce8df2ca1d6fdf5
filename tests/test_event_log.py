"""The local instance's event log storage (aiwf_assets/event_log.py): Dagster's SQLite event
log with one engine kept per shard. It must store and serve exactly what Dagster's own does,
in the same files, and a second process's view (webserver, daemon) must see every event."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dagster as dg
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from aiwf_assets import event_log
from aiwf_assets.demo import prepare_dagster_home
from aiwf_assets.event_log import EngineCachingSqliteEventLogStorage


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b", "c"]))
def parted(context) -> None:
    context.log.info(f"partition {context.partition_key}")


@dg.asset_check(asset=parted)
def parted_check() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def _materializations(storage, key="parted") -> list[str]:
    records = storage.fetch_materializations(dg.AssetKey(key), limit=100).records
    return sorted(r.asset_materialization.partition for r in records)


def test_the_packaged_instance_uses_it_and_keeps_dagster_files(aiwf_home) -> None:
    home = prepare_dagster_home()
    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage) is EngineCachingSqliteEventLogStorage
        for partition in ("a", "b", "c"):
            result = dg.materialize(
                [parted, parted_check], instance=instance, partition_key=partition
            )
            assert result.success
        run_ids = [r.run_id for r in instance.get_runs()]
        assert _materializations(instance.event_log_storage) == ["a", "b", "c"]
    # the same files Dagster's default storage uses: it reads everything back
    plain = SqliteEventLogStorage(str(home / "history" / "runs"))
    assert _materializations(plain) == ["a", "b", "c"]
    for run_id in run_ids:
        logs = [e.user_message for e in plain.get_logs_for_run(run_id) if not e.is_dagster_event]
        assert any(m.startswith("partition ") for m in logs)
    check = plain.get_latest_asset_check_execution_by_key([parted_check.check_key])
    assert check[parted_check.check_key].status.value == "SUCCEEDED"


def test_one_engine_per_shard_least_recently_used_dropped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(event_log, "MAX_CACHED_ENGINES", 3)
    storage = EngineCachingSqliteEventLogStorage(str(tmp_path))
    with storage._db_lock:  # noqa: SLF001
        index = storage._engine("index")  # noqa: SLF001
        assert storage._engine("index") is index  # noqa: SLF001
        run_1 = storage._engine("run-1")  # noqa: SLF001
        storage._engine("index")  # noqa: SLF001 (used again: now the most recent)
        for run in ("run-2", "run-3"):
            storage._engine(run)  # noqa: SLF001
        assert list(storage._engines) == ["index", "run-2", "run-3"]  # noqa: SLF001
        assert storage._engine("index") is index  # noqa: SLF001
        assert storage._engine("run-1") is not run_1  # noqa: SLF001 (it was dropped)


def test_a_second_process_sees_events_live_and_after_a_wipe(tmp_path: Path) -> None:
    """The webserver watches a run's shard file for changes (watchdog) while the run writes:
    every event must reach it while the run goes on (no connection held open deferring the
    WAL checkpoint), and a wiped storage starts again cleanly."""
    storage = EngineCachingSqliteEventLogStorage(str(tmp_path))
    reader = SqliteEventLogStorage(str(tmp_path))
    run_id = "0" * 8 + "-0000-0000-0000-" + "0" * 12
    seen: list[str] = []
    done = threading.Event()

    def callback(entry, _cursor):
        seen.append(entry.user_message)
        if len(seen) == 5:
            done.set()

    storage.store_event(_log(run_id, "first"))  # the shard exists before it is watched
    reader.watch(run_id, None, callback)
    try:
        for n in range(4):
            storage.store_event(_log(run_id, f"line {n}"))
        assert done.wait(20), f"the watcher saw {seen}"
    finally:
        reader.end_watch(run_id, callback)
        reader.dispose()
    assert seen == ["first", "line 0", "line 1", "line 2", "line 3"]

    storage.wipe()
    assert storage.get_logs_for_run(run_id) == []
    storage.store_event(_log(run_id, "after wipe"))
    assert [e.user_message for e in reader.get_logs_for_run(run_id)] == ["after wipe"]
    storage.dispose()


def _log(run_id: str, message: str):
    from dagster._core.events.log import EventLogEntry

    return EventLogEntry(
        error_info=None, level=20, user_message=message, run_id=run_id, timestamp=time.time()
    )


def test_index_writes_are_visible_to_another_process_at_once(tmp_path: Path) -> None:
    """The index shard's connection stays open in the writer; another process (here a second
    storage, its own connections) reads each asset event as soon as it is stored."""
    writer = EngineCachingSqliteEventLogStorage(str(tmp_path))
    reader = SqliteEventLogStorage(str(tmp_path))
    run_id = "1" * 8 + "-0000-0000-0000-" + "0" * 12
    for partition in ("a", "b"):
        writer.store_event(_materialization(run_id, partition))
        assert _materializations(reader)[-1] == partition
    assert writer._engine("index").pool.checkedin() == 1  # noqa: SLF001 (kept, idle)
    writer.dispose()
    assert _materializations(SqliteEventLogStorage(str(tmp_path))) == ["a", "b"]


def _entry(run_id: str, event, level: int):
    """An event-log entry of `event` in run `run_id`, stamped now."""
    from dagster._core.events.log import EventLogEntry

    return EventLogEntry(
        error_info=None,
        level=level,
        user_message="",
        run_id=run_id,
        timestamp=time.time(),
        dagster_event=event,
    )


def _materialization(run_id: str, partition: str):
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData

    event = DagsterEvent(
        DagsterEventType.ASSET_MATERIALIZATION.value,
        "job",
        event_specific_data=StepMaterializationData(
            dg.AssetMaterialization(asset_key="parted", partition=partition)
        ),
    )
    return _entry(run_id, event, level=20)


def _planned(run_id: str, partition: str):
    from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent

    event = DagsterEvent.build_asset_materialization_planned_event(
        "job", "step", AssetMaterializationPlannedData(dg.AssetKey("parted"), partition=partition)
    )
    return _entry(run_id, event, level=10)


def _rows(base: Path, run_id: str) -> dict:
    """What Dagster's own storage reads back: the run's log and the index's asset view."""
    storage = SqliteEventLogStorage(str(base))
    planned = storage.get_event_records(
        dg.EventRecordsFilter(
            dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, asset_key=dg.AssetKey("parted")
        ),
        limit=100,
    )
    return {
        "run": [
            (e.dagster_event_type, e.dagster_event.partition)
            for e in storage.get_logs_for_run(run_id)
        ],
        "planned": sorted(r.event_log_entry.dagster_event.partition for r in planned),
        "materialized": _materializations(storage),
        "partitions": sorted(storage.get_materialized_partitions(dg.AssetKey("parted"))),
    }


def test_a_batch_stores_what_single_writes_store(tmp_path: Path) -> None:
    run_id = "2" * 8 + "-0000-0000-0000-" + "0" * 12
    events = [_planned(run_id, p) for p in "abc"] + [_materialization(run_id, p) for p in "abc"]
    for name, write in (("single", "each"), ("batch", "batch")):
        storage = EngineCachingSqliteEventLogStorage(str(tmp_path / name))
        if write == "batch":
            storage.store_event_batch(events[:3])
            storage.store_event_batch(events[3:])
        else:
            for event in events:
                storage.store_event(event)
        storage.dispose()
    assert _rows(tmp_path / "batch", run_id) == _rows(tmp_path / "single", run_id)
    assert _rows(tmp_path / "batch", run_id)["partitions"] == ["a", "b", "c"]


def test_a_failed_index_transaction_is_mirrored_event_by_event(tmp_path: Path, monkeypatch) -> None:
    run_id = "3" * 8 + "-0000-0000-0000-" + "0" * 12
    storage = EngineCachingSqliteEventLogStorage(str(tmp_path))
    store, calls = storage._store_asset_event, []  # noqa: SLF001

    def failing_once(conn, event, event_id):
        calls.append(event.dagster_event.partition)
        if len(calls) == 1:  # the batch's rows are inserted, then its transaction fails
            raise RuntimeError("index write failed")
        store(conn, event, event_id)

    monkeypatch.setattr(storage, "_store_asset_event", failing_once)
    storage.store_event_batch([_materialization(run_id, p) for p in "ab"])
    assert calls == ["a", "a", "b"]
    rows = _rows(tmp_path, run_id)
    assert rows["materialized"] == ["a", "b"]  # once each: the failed transaction rolled back
    assert len(rows["run"]) == 2


def test_a_range_run_batches_and_records_every_day(aiwf_home, monkeypatch) -> None:
    """A range run on the packaged instance: Dagster hands over the planned events and the
    step's materialisations as batches, and every day is recorded once."""
    batches: list[int] = []
    original = EngineCachingSqliteEventLogStorage.store_event_batch

    def counting(self, events):
        batches.append(len(events))
        original(self, events)

    monkeypatch.setattr(EngineCachingSqliteEventLogStorage, "store_event_batch", counting)
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    prepare_dagster_home()

    @dg.asset(partitions_def=dg.DailyPartitionsDefinition("2026-01-01", end_date="2026-01-06"))
    def daily(context) -> None:
        context.log.info(f"{len(context.partition_keys)} days")

    with dg.DagsterInstance.get() as instance:
        import os

        assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == event_log.EVENT_BATCH_SIZE
        result = dg.materialize(
            [daily],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": "2026-01-01",
                "dagster/asset_partition_range_end": "2026-01-05",
            },
        )
        assert result.success
        assert batches == [5, 5]  # 5 planned, 5 materialised
        days = sorted(instance.get_materialized_partitions(dg.AssetKey("daily")))
        assert days == [f"2026-01-0{d}" for d in range(1, 6)]
        records = instance.fetch_materializations(dg.AssetKey("daily"), limit=100).records
        assert len(records) == 5


def _check_planned(run_id: str, check_name: str, partitions_def, days: list[str]):
    from dagster._core.events import AssetCheckEvaluationPlanned, DagsterEvent, DagsterEventType

    subset = partitions_def.subset_with_partition_keys(days).to_serializable_subset()
    event = DagsterEvent(
        DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value,
        "job",
        event_specific_data=AssetCheckEvaluationPlanned(
            asset_key=dg.AssetKey("parted"), check_name=check_name, partitions_subset=subset
        ),
    )
    return _entry(run_id, event, level=10)


def _check_rows(base: Path) -> list[tuple]:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{base / 'index.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select asset_key, check_name, partition, run_id, execution_status,"
                " evaluation_event, evaluation_event_timestamp, evaluation_event_storage_id"
                " from asset_check_executions order by check_name, partition"
            )
        ).fetchall()
    engine.dispose()
    return [tuple(row) for row in rows]


def test_a_planned_check_of_a_range_run_stores_dagsters_rows(tmp_path: Path) -> None:
    """A check planned in a range run: one row per day, as Dagster's storage writes them
    (the event is serialised once for all of them), for a range and a single partition."""
    run_id = "4" * 8 + "-0000-0000-0000-" + "0" * 12
    days_def = dg.DailyPartitionsDefinition("2026-01-01", end_date="2026-01-08")
    events = [
        _check_planned(run_id, "range", days_def, days_def.get_partition_keys()[1:6]),
        _check_planned(run_id, "one_day", days_def, ["2026-01-03"]),
    ]
    for storage in (
        EngineCachingSqliteEventLogStorage(str(tmp_path / "aiwf")),
        SqliteEventLogStorage(str(tmp_path / "dagster")),
    ):
        for event in events:
            storage.store_event(event)
        storage.dispose()
    rows = _check_rows(tmp_path / "aiwf")
    assert rows == _check_rows(tmp_path / "dagster")
    assert [(r[1], r[2], r[4]) for r in rows] == [
        ("one_day", "2026-01-03", "PLANNED"),
        *[("range", f"2026-01-0{d}", "PLANNED") for d in range(2, 7)],
    ]
