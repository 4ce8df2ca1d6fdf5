"""The local instance's event log: Dagster's SQLite event log storage, one engine per shard.

Dagster's `SqliteEventLogStorage` (1.13) builds a new SQLAlchemy engine for every
connection, and it connects once per event written (twice for an asset event: the
run's shard and the cross-run index shard). Building the engine, and SQLAlchemy's
first-connect dialect set-up that comes with each new engine, cost more CPU than
the insert itself; a data build writes hundreds of events.

`EngineCachingSqliteEventLogStorage` keeps the engine of each shard (a few recent
shards, least recently used dropped) and changes nothing else: the same files, the
same schema, the same commit per write, the same lock, the same pragmas. A run's
shard keeps Dagster's `NullPool` (a fresh SQLite connection per write, closed after
it): closing the last connection checkpoints the WAL into `<run id>.db`, and that file
changing is what the webserver's watcher waits for to show a running run live. The
index shard, which nothing watches (readers query it), keeps one idle connection open
in the writing process: its writes are committed (and fsynced to the WAL) as before
and visible to every other process at once, but not checkpointed on every close
(SQLite checkpoints every 1000 pages and when the process's connection closes).
Batches: with DAGSTER_EVENT_BATCH_SIZE > 0 Dagster hands the storage a run's
materialisation-planned events (one per asset and day of a range run) and a range
step's materialisations as one batch; Dagster's storage then writes them one by one,
this one writes a batch of one run's events in one transaction on the run's shard
and one on the index (the same rows). The storage sets DAGSTER_EVENT_BATCH_SIZE
(unless set) in every process whose instance uses it; 0 turns batching off.
`aiwf_assets/dagster.yaml` selects it; its base directory defaults to
where Dagster's default storage keeps event logs (`$DAGSTER_HOME/history/runs`),
so an existing home keeps its history.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import dagster._check as check
from dagster import Field, StringSource
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.events import (
    ASSET_CHECK_EVENTS,
    ASSET_EVENTS,
    EVENT_TYPE_TO_PIPELINE_RUN_STATUS,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS, create_db_conn_string
from dagster._serdes import ConfigurableClassData, serialize_value
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

# events Dagster may hand over as one batch (read by DagsterInstance.handle_new_event)
EVENT_BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"
EVENT_BATCH_SIZE = "1000"
MAX_CACHED_ENGINES = 16  # the index shard and the runs being written, with room to spare


def default_event_log_dir() -> str:
    """Where Dagster's default instance storage keeps the event log shards."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise check.CheckError("DAGSTER_HOME is not set: cannot place the event log")
    return os.path.join(os.path.abspath(home), "history", "runs")


class EngineCachingSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` that reuses one SQLAlchemy engine per shard (see module doc)."""

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        # batches are only written by processes whose instance uses this storage
        os.environ.setdefault(EVENT_BATCH_SIZE_ENV, EVENT_BATCH_SIZE)
        super().__init__(base_dir or default_event_log_dir(), inst_data=inst_data)

    @classmethod
    def config_type(cls):
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # ty: ignore[invalid-method-override]
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        """The shard's engine, made on first use (caller holds `_db_lock`)."""
        engine = self._engines.get(shard)
        if engine is None:
            # the index shard keeps one connection open (see module doc); run shards do not
            pool = (
                dict(poolclass=QueuePool, pool_size=1, max_overflow=-1)
                if shard == INDEX_SHARD_NAME
                else dict(poolclass=NullPool)
            )
            engine = create_engine(
                create_db_conn_string(self._base_dir, shard),
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                **pool,
            )
            self._engines[shard] = engine
            while len(self._engines) > MAX_CACHED_ENGINES:
                self._engines.popitem(last=False)[1].dispose()
        else:
            self._engines.move_to_end(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # SqliteEventLogStorage._connect with the engine kept instead of made and disposed
        with self._db_lock:
            check.str_param(shard, "shard")
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def dispose(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()
        super().dispose()

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """A batch of one run's events in one transaction per shard (see module doc).

        Dagster hands a batch here only with DAGSTER_EVENT_BATCH_SIZE > 0: a run's
        planned materialisations and check evaluations, or a range step's
        materialisations. The rows are those `SqliteEventLogStorage.store_event` writes
        for each event: the run's shard first, then the index. If the index transaction
        fails it is rolled back and the events are mirrored one by one, so that failure
        never stores an event twice; a failure beyond it (raised) is handled as Dagster
        handles its own batches (stored again event by event).
        """
        run_ids = {event.run_id for event in events}
        if len(run_ids) != 1:
            super().store_event_batch(events)
            return
        statements = [self.prepare_insert_event(event) for event in events]
        with self.run_connection(run_ids.pop()) as conn:
            for statement in statements:
                conn.execute(statement)
        try:
            checks = self._mirror(events, statements)
        except Exception:  # noqa: BLE001 (rolled back: mirror each event on its own)
            checks = [
                c
                for pair in zip(events, statements, strict=True)
                for c in self._mirror([pair[0]], [pair[1]])
            ]
        for event, event_id in checks:  # their own connections, as in store_event
            self.store_asset_check_event(event, event_id)

    def _store_asset_check_evaluation_planned(
        self, event: EventLogEntry, event_id: int | None
    ) -> None:
        """Dagster's rows for a planned check, with the event serialised once.

        A check planned in a partition-range run gets a row per partition of the range (Dagster
        1.13 gives even an unpartitioned check the run's partitions), each holding the same
        serialised event: Dagster serialises it once per row, i.e. 365 times per dbt test in a
        one-year run of the daily dbt models (docs/MARTS.md). The rows are unchanged.
        """
        planned = check.not_none(event.dagster_event).event_specific_data
        subset = planned.partitions_subset
        partition_keys = subset.get_partition_keys() if subset else [None]
        serialized = serialize_value(event)
        timestamp = self._event_insert_timestamp(event)
        rows = [
            dict(
                asset_key=planned.asset_key.to_string(),
                check_name=planned.check_name,
                partition=partition_key,
                run_id=event.run_id,
                execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
                evaluation_event=serialized,
                evaluation_event_timestamp=timestamp,
                evaluation_event_storage_id=event_id,
            )
            for partition_key in partition_keys
        ]
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), rows)

    def _mirror(self, events: Sequence[EventLogEntry], statements) -> list:
        """The events' index rows in one transaction, as `SqliteEventLogStorage.store_event`
        writes them; returns the check evaluations' (event, index id) for their own tables."""
        kinds = [event.dagster_event_type if event.is_dagster_event else None for event in events]
        assets = [
            (e, s) for e, s, k in zip(events, statements, kinds, strict=True) if k in ASSET_EVENTS
        ]
        checks = [
            (e, s)
            for e, s, k in zip(events, statements, kinds, strict=True)
            if k in ASSET_CHECK_EVENTS
        ]
        with self.index_transaction() as conn:
            ids = [_insert(conn, statement) for _, statement in assets]
            if assets:
                self._store_asset_event_tags(conn, [event for event, _ in assets], ids)
            for (event, _), event_id in zip(assets, ids, strict=True):
                self._store_asset_event(conn, event, event_id)
            check_ids = [_insert(conn, statement) for _, statement in checks]
            for statement, kind in zip(statements, kinds, strict=True):
                if kind in EVENT_TYPE_TO_PIPELINE_RUN_STATUS:
                    conn.execute(statement)
        return [(event, event_id) for (event, _), event_id in zip(checks, check_ids, strict=True)]


def _insert(conn: Connection, statement) -> int:
    with db_result(conn, statement) as result:
        event_id = result.inserted_primary_key[0]
    if event_id is None:
        raise DagsterInvariantViolationError("Cannot store asset event tags for null event id.")
    return event_id
