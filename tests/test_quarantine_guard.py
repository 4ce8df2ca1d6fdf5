"""A day whose file quarantines most of its rows for one reason is held back, not published
with a handful of sales and every check green (found by the 2026-12-07 probe: a trailing
delimiter the header lacks, Latin-1 bytes; the file's record count looked normal).

Three generated days are published first; then a day's till export arrives broken."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiwf_assets.cleaning.audit import OVERRIDE_TAG
from tests.test_write_audit_publish import (
    DAILY,
    Pipeline,
    assert_same,
    failure_text,
    generated_pipeline,
)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with generated_pipeline(tmp_path_factory.mktemp("quarantine_guard"), 5, 5, 0.05) as p:
        assert p.deliver(p.days[0], p.days[2]).success
        yield p


def _break(path: Path, tail: bytes, keep_every: int | None = None) -> int:
    """`tail` appended to each data line of `path` (but every `keep_every`-th); how many."""
    header, *rows = path.read_bytes().splitlines()
    broken = [
        r + tail if keep_every is None or i % keep_every else r for i, r in enumerate(rows, 1)
    ]
    path.write_bytes(b"\n".join([header, *broken]) + b"\n")
    return sum(1 for old, new in zip(rows, broken, strict=True) if old != new)


def test_rows_with_a_trailing_delimiter_hold_the_day_back_until_overridden(
    pipeline: Pipeline,
) -> None:
    day = pipeline.days[3]
    path = pipeline.settings.landing_dir / "pos_transactions" / f"{day}.csv"
    rows = _break(path, b",")  # every row
    before = pipeline.snapshot(DAILY)
    result = pipeline.deliver(day, day)
    assert not result.success
    assert_same(before, pipeline.snapshot(DAILY))  # nothing of the day is published
    text = failure_text(result)
    assert (
        f"- {day}: pos_transactions: {rows} of {rows} row(s) quarantined, {rows} (100%) for"
        " 'record: CSV row has 9 fields, header has 8' (more than 50% of the rows for one"
        " reason; usually 5.0% quarantined over 3 published day(s)"
    ) in text
    assert f"run tag {OVERRIDE_TAG}=pos_transactions" in text
    assert "trailing median" not in text  # the record count is normal: no other guard

    accepted = pipeline.deliver(day, day, tags={OVERRIDE_TAG: "pos_transactions"})
    assert accepted.success
    published = pipeline.wh.query(
        "SELECT rows_in, rows_quarantined FROM cleaned.file_accounting"
        " WHERE channel = 'pos_transactions' AND partition_date = ?", [day],
    )  # fmt: skip
    assert published.rows() == [(rows, rows)]


def test_latin1_bytes_in_most_rows_hold_the_day_back(pipeline: Pipeline) -> None:
    day = pipeline.days[4]
    path = pipeline.settings.landing_dir / "pos_transactions" / f"{day}.csv"
    rows = _break(path, b"\xe9", keep_every=4)  # payment `card\xe9`: 3 rows of 4
    result = pipeline.deliver(day, day)
    assert not result.success
    text = failure_text(result)
    assert f"- {day}: pos_transactions: " in text
    assert f", {rows} (" in text  # the rows quarantined for that reason
    assert "for 'record: not valid UTF-8' (more than 50% of the rows for one reason" in text
