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
`aiwf_assets/dagster.yaml` selects it; its base directory defaults to
where Dagster's default storage keeps event logs (`$DAGSTER_HOME/history/runs`),
so an existing home keeps its history.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import dagster._check as check
from dagster import Field, StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS, create_db_conn_string
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

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
            pool = (dict(poolclass=QueuePool, pool_size=1, max_overflow=-1)
                    if shard == INDEX_SHARD_NAME else dict(poolclass=NullPool))
            engine = create_engine(
                create_db_conn_string(self._base_dir, shard),
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, **pool,
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
