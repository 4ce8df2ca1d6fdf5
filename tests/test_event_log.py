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
            result = dg.materialize([parted, parted_check], instance=instance,
                                    partition_key=partition)
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

    return EventLogEntry(error_info=None, level=20, user_message=message, run_id=run_id,
                         timestamp=time.time())



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


def _materialization(run_id: str, partition: str):
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry

    event = DagsterEvent(
        DagsterEventType.ASSET_MATERIALIZATION.value, "job",
        event_specific_data=StepMaterializationData(
            dg.AssetMaterialization(asset_key="parted", partition=partition)),
    )
    return EventLogEntry(error_info=None, level=20, user_message="", run_id=run_id,
                         timestamp=time.time(), dagster_event=event)
