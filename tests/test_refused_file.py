"""A daily file that cannot be read at all holds its day back; the other days go on.

Before, a refused file (`LandingFormatError`: binary bytes, a header that is not text, a
Parquet file cut short) failed the whole raw step: in a range run (a backfill, the demo)
no day of that source reached cleaning, the good ones included, and cleaning did not run.
Now the file's raw partition is one row standing for the file (its refusal, naming the file
and the line), cleaning quarantines it and holds the day back with that message, and the
other days of the run are published."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from aiwf_assets.cleaning.audit import OVERRIDE_TAG
from tests.test_write_audit_publish import (
    Pipeline,
    assert_same,
    failure_text,
    generated_pipeline,
)

BINARY = b"\x00\x01PK\x03\x04 not a till export \xff\xfe\n\x00\x02\x03\n"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with generated_pipeline(tmp_path_factory.mktemp("refused"), 5, 5, 0.1) as p:
        yield p


def _pos_file(pipeline: Pipeline, day: str) -> Path:
    return pipeline.settings.landing_dir / "pos_transactions" / f"{day}.csv"


def _published_days(pipeline: Pipeline, table: str) -> list[str]:
    days = pipeline.wh.query(f"SELECT DISTINCT partition_date FROM cleaned.{table}")
    return sorted(str(d) for d in days["partition_date"])


def _store_orders(pipeline: Pipeline, day: str) -> int:
    return pipeline.wh.query(
        "SELECT count(*) AS n FROM cleaned.orders WHERE partition_date = ? AND channel = 'store'",
        [day],
    )["n"].item()


def test_a_refused_file_holds_its_day_and_publishes_the_others(pipeline: Pipeline) -> None:
    days = pipeline.days
    bad = days[2]
    good_bytes = _pos_file(pipeline, bad).read_bytes()
    backup = _pos_file(pipeline, bad).with_suffix(".good")
    shutil.move(_pos_file(pipeline, bad), backup)
    _pos_file(pipeline, bad).write_bytes(BINARY)

    result = pipeline.deliver(days[0], days[-1])
    assert not result.success
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    assert all(not key.startswith("raw_") for key in failed), failed  # raw read every day
    message = failure_text(result)
    assert message.startswith("1 day(s) held back, their published data unchanged"), message
    assert f"- {bad}: pos_transactions: pos_transactions/{bad}.csv: " in message, message
    assert "line 1" in message and f"{OVERRIDE_TAG}=pos_transactions" in message, message
    published = [d for d in days if d != bad]
    for table in ("orders", "order_lines", "interactions", "file_accounting"):
        assert _published_days(pipeline, table) == published, table
    assert all(_store_orders(pipeline, d) > 0 for d in published)

    # published without the file when the drop is accepted: its one row is quarantined
    # with the refusal as its reason, the other sources' rows of the day are published
    before = pipeline.snapshot(["orders"])
    accepted = pipeline.day(bad, tags={OVERRIDE_TAG: "pos_transactions"})
    assert accepted.success, failure_text(accepted)
    assert _store_orders(pipeline, bad) == 0
    assert pipeline.wh.query(
        "SELECT count(*) AS n FROM cleaned.orders WHERE partition_date = ?", [bad]
    )["n"].item() > 0
    quarantined = pipeline.wh.query(
        "SELECT reasons FROM cleaned.quarantine WHERE partition_date = ?"
        " AND channel = 'pos_transactions'",
        [bad],
    )["reasons"].to_list()
    assert quarantined == [
        f"record: the file was refused: pos_transactions/{bad}.csv: the CSV header (line 1)"
        " is not valid UTF-8"
    ]
    accounting = pipeline.wh.query(
        "SELECT * FROM cleaned.file_accounting WHERE partition_date = ?"
        " AND channel = 'pos_transactions'",
        [bad],
    ).row(0, named=True)
    assert (accounting["rows_in"], accounting["rows_quarantined"]) == (1, 1)
    others = pl.col("partition_date") != pl.lit(bad).str.to_date()
    assert_same(
        {"orders": before["orders"].filter(others)},
        {"orders": pipeline.snapshot(["orders"])["orders"].filter(others)},
    )

    # the corrected file replaces it: its store orders are published
    backup.unlink()
    _pos_file(pipeline, bad).write_bytes(good_bytes)
    corrected = pipeline.day(bad, "pos_transactions")
    assert corrected.success, failure_text(corrected)
    assert _store_orders(pipeline, bad) > 0
