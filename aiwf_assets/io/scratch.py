"""An in-memory DuckDB connection for vectorised functions over in-memory frames.

Opening a DuckDB connection costs 10-20 ms here, more than the small queries
it serves (HMAC of a column, JSON validation of a file's lines), and a
daily run makes dozens of them. One connection per thread and process:
DuckDB connections must not be shared by concurrent threads, nor survive a fork.
"""

from __future__ import annotations

import os
import threading

import duckdb

_LOCAL = threading.local()


def scratch_connection() -> duckdb.DuckDBPyConnection:
    """This thread's in-memory connection (created on first use, per process)."""
    owner = getattr(_LOCAL, "pid", None)
    if owner != os.getpid():
        _LOCAL.con = duckdb.connect()
        _LOCAL.pid = os.getpid()
    return _LOCAL.con
