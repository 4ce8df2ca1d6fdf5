"""The same file delivered under two days' names is held back, not published with the
other day's records (found by the 2026-12-07 probe: the copies published, every check
green, and the marts, which keep the first delivery of a key, lost the day's own orders,
tickets and sessions).

Generated days are published first; then a day arrives with the day before's files."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from aiwf_assets.cleaning.audit import OVERRIDE_TAG
from tests.test_write_audit_publish import (
    DAILY,
    Pipeline,
    assert_same,
    failure_text,
    generated_pipeline,
)

COPIED = {"web_orders": "jsonl", "web_sessions": "parquet"}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with generated_pipeline(tmp_path_factory.mktemp("cross_day"), 5, 6, 0.1) as p:
        assert p.deliver(p.days[0], p.days[2]).success
        yield p


def _copy_over(pipeline: Pipeline, source: str, day: str, onto: str) -> None:
    folder = pipeline.settings.landing_dir / source
    ext = COPIED[source]
    shutil.copyfile(folder / f"{day}.{ext}", folder / f"{onto}.{ext}")


def test_yesterdays_files_under_todays_name_are_held_back_until_overridden(
    pipeline: Pipeline,
) -> None:
    yesterday, day = pipeline.days[2], pipeline.days[3]
    for source in COPIED:
        _copy_over(pipeline, source, yesterday, day)
    before = pipeline.snapshot(DAILY)
    result = pipeline.deliver(day, day)
    assert not result.success
    assert_same(before, pipeline.snapshot(DAILY))  # nothing of the day is published
    text = failure_text(result)
    orders = pipeline.wh.query(
        "SELECT count(*) AS n FROM cleaned.orders WHERE channel = 'web' AND partition_date = ?",
        [yesterday],
    )["n"][0]
    assert (
        f"- {day}: web_orders: {orders} of {orders} order(s) were already delivered on"
        f" {yesterday}: the same file under another day's name?"
    ) in text
    assert (
        f"- {day}: web_sessions: " in text
        and f"session(s) were already delivered on {yesterday}" in text
    )
    assert f"{OVERRIDE_TAG}=web_orders" in text
    assert "a partial re-delivery?" not in text and "before the day ended?" not in text

    accepted = pipeline.deliver(day, day, tags={OVERRIDE_TAG: "web_orders,web_sessions"})
    assert accepted.success
    # the genuine earlier day delivered again (a re-clean, a correction) is the original: the
    # marts keep the earliest delivery, so a later day holding its keys does not hold it
    assert pipeline.deliver(yesterday, yesterday).success


def test_a_range_run_holds_the_copy_of_a_day_of_the_same_run(pipeline: Pipeline) -> None:
    """Neither day published before: the first of the run is the original, the second the
    copy (the first day of the run is published before the second is audited)."""
    first, copy = pipeline.days[4], pipeline.days[5]
    _copy_over(pipeline, "web_orders", first, copy)
    result = pipeline.deliver(first, copy)
    assert not result.success
    text = failure_text(result)
    assert f"- {copy}: web_orders: " in text and f"already delivered on {first}" in text
    assert f"- {first}:" not in text  # the original publishes
    published = (
        pipeline.wh.query(
            "SELECT DISTINCT partition_date FROM cleaned.orders WHERE partition_date >= ?", [first]
        )["partition_date"]
        .cast(str)
        .to_list()
    )
    assert published == [first]


def test_a_day_delivered_again_under_its_own_name_is_not_another_day(
    pipeline: Pipeline,
) -> None:
    day = pipeline.days[1]
    assert pipeline.deliver(day, day).success
