"""A sales export run before the day ended: complete records, too few, held back.

Three weeks of generated days are published first (none of them is held: the guard
compares a day with the same weekday's published days); then the next day arrives with
its web orders as an export taken at 14:00 UTC would have written them."""

from __future__ import annotations

import json
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
    with generated_pipeline(tmp_path_factory.mktemp("early_end"), 11, 22, 0.1) as p:
        assert p.deliver(p.days[0], p.days[-2]).success  # 21 generated days: none ends early
        yield p


def test_a_web_export_taken_at_two_pm_is_held_back_until_overridden(
    pipeline: Pipeline,
) -> None:
    day = pipeline.days[-1]
    path: Path = pipeline.settings.landing_dir / "web_orders" / f"{day}.jsonl"
    records = path.read_text().splitlines(keepends=True)
    early = [r for r in records if json.loads(r)["created_at"][11:16] < "14:00"]
    assert len(records) * 0.2 < len(early) < len(records)  # above the volume guard's floor
    path.write_text("".join(early))
    before = pipeline.snapshot(DAILY)
    result = pipeline.deliver(day, day)
    assert not result.success
    assert_same(before, pipeline.snapshot(DAILY))  # nothing of the day is published
    text = failure_text(result)
    assert f"- {day}: web_orders: the file's last order is at 13:" in text
    assert "before the earliest last order of the same weekday over 3 published week(s)" in text
    assert "an export run before the day ended?" in text
    assert "trailing median" not in text and "delivered again" not in text  # no other guard
    assert f"{OVERRIDE_TAG}=web_orders" in text

    accepted = pipeline.deliver(day, day, tags={OVERRIDE_TAG: "web_orders"})
    assert accepted.success
    published = pipeline.wh.query(
        "SELECT rows_in FROM cleaned.file_accounting"
        " WHERE channel = 'web_orders' AND partition_date = ?", [day],
    )  # fmt: skip
    # one row per item of the orders in the file
    assert published["rows_in"].to_list() == [sum(len(json.loads(r)["items"]) for r in early)]
