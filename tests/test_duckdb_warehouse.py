"""The local DuckDB warehouse: partition replaces, atomicity and sessions."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from aiwf_assets.io.warehouse import DuckDBWarehouse

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


def day(d: dt.date, values: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"partition_date": [d] * len(values), "v": values})


def test_replace_partitions_replaces_only_the_given_day(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.replace_partitions("s.t", day(D1, [1, 2]), [D1])
    wh.replace_partitions("s.t", day(D2, [3]), [D2])
    wh.replace_partitions("s.t", day(D1, [9]), [D1])
    assert wh.query("SELECT v FROM s.t ORDER BY v")["v"].to_list() == [3, 9]


def test_a_session_holds_one_connection_and_each_write_is_its_own_transaction(
    tmp_path: Path,
) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout_s=0.2)
    with wh.session() as session:
        session.replace_partitions("s.t", day(D1, [1]), [D1])
        session.replace_partitions("s.t", day(D2, [2]), [D2])
        # a failing write rolls back alone: the day keeps its rows, the session goes on
        with pytest.raises(Exception, match="w"):
            session.replace_partitions("s.t", pl.DataFrame({"partition_date": [D1], "w": [0]}),
                                       [D1])
        assert session.query("SELECT v FROM s.t ORDER BY v")["v"].to_list() == [1, 2]
        session.replace_table("s.r", pl.DataFrame({"x": [1]}))
        # the held connection is the writer: another process waits for the file, then gives up
        other = subprocess.run(
            [sys.executable, "-c", "import sys; from pathlib import Path; "
             "from aiwf_assets.io.warehouse import DuckDBWarehouse; "
             "DuckDBWarehouse(Path(sys.argv[1]), lock_timeout_s=0.2).query('SELECT 1')",
             str(tmp_path / "w.duckdb")],
            capture_output=True, text=True,
        )
        assert other.returncode != 0 and "lock" in other.stderr.lower()
    # closed at the end of the block: everything written is there for a new connection
    assert wh.query("SELECT v FROM s.t ORDER BY v")["v"].to_list() == [1, 2]
    assert wh.query("SELECT x FROM s.r")["x"].to_list() == [1]
