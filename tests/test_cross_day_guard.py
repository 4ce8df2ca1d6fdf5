"""The same file delivered under two days' names is held back, not published with the
other day's records (found by the 2026-12-07 probe: the copies published, every check
green, and the marts, which keep the first delivery of a key, lost the day's own orders,
tickets and sessions).

Generated days are published first; then a day arrives with the day before's files."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import psycopg
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


# the lookup on a long history -------------------------------------------------------------
HISTORY_DAYS, KEYS_PER_DAY = 60, 2000


def _long_history(wh: object, day: date) -> dict[str, str]:
    """cleaned.orders with HISTORY_DAYS days of keys before `day`, and `day` staged: every
    20th key of the staged day was delivered before (one under another channel: not the
    same order), interactions staged only (no published table yet)."""
    from aiwf_assets.io.warehouse import staging_table

    first = day - timedelta(days=HISTORY_DAYS)
    channels = ["web", "app", "store"]
    n = HISTORY_DAYS * KEYS_PER_DAY
    history = pl.DataFrame(
        {
            "channel": [channels[i % 3] for i in range(n)],
            "order_id": [f"ord:{i}" for i in range(n)],
            "partition_date": [first + timedelta(days=i // KEYS_PER_DAY) for i in range(n)],
        }
    )
    wh.replace_partitions(  # type: ignore[attr-defined]
        "cleaned.orders", history, sorted(set(history["partition_date"]))
    )
    again = [i * 1000 for i in range(KEYS_PER_DAY // 20)]
    staged_orders = pl.DataFrame(
        {
            "channel": [channels[i % 3] for i in again] + ["store"],
            "order_id": [f"ord:{i}" for i in again] + ["ord:1"],  # ord:1 is an app order
            "partition_date": [day] * (len(again) + 1),
        }
    ).vstack(
        pl.DataFrame(
            {
                "channel": ["web"] * KEYS_PER_DAY,
                "order_id": [f"new:{i}" for i in range(KEYS_PER_DAY)],
                "partition_date": [day] * KEYS_PER_DAY,
            }
        )
    )
    staging = {t: staging_table(f"cleaned.{t}", "lookup") for t in ("orders", "interactions")}
    wh.stage(staging["orders"], staged_orders)  # type: ignore[attr-defined]
    wh.stage(  # type: ignore[attr-defined]
        staging["interactions"],
        pl.DataFrame({"kind": ["ticket"], "interaction_id": ["t:1"], "partition_date": [day]}),
    )
    return staging


class _Recording:
    """A warehouse that keeps the queries sent through it."""

    def __init__(self, wh: object) -> None:
        self.wh, self.queries = wh, []

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        self.queries.append((sql, params))
        return self.wh.query(sql, params)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.wh, name)


def _lookup_answer(wh: object, day: date) -> tuple[pl.DataFrame, list]:
    from aiwf_assets.cleaning.assets import _earlier_keys

    staging = _long_history(wh, day)
    recording = _Recording(wh)
    found = _earlier_keys(recording, staging, day).sort("group", "key")  # type: ignore[arg-type]
    return found, recording.queries


def test_the_lookup_finds_each_earlier_delivery_of_a_days_keys(tmp_path: Path) -> None:
    from aiwf_assets.io.warehouse import DuckDBWarehouse

    day = date(2026, 3, 1)
    found, _ = _lookup_answer(DuckDBWarehouse(tmp_path / "w.duckdb"), day)
    expected = sorted(
        (["web", "app", "store"][i % 3], f"ord:{i}") for i in range(0, 100_000, 1000)
    )
    assert found.select("group", "key").rows() == expected  # ord:1 under store: not found
    first = day - timedelta(days=HISTORY_DAYS)
    assert found["partition_date"].to_list() == [
        first + timedelta(days=int(k.split(":")[1]) // KEYS_PER_DAY) for k in found["key"]
    ]


@pytest.mark.postgres
def test_on_postgres_the_lookup_reads_the_key_index_and_answers_as_duckdb(
    tmp_path: Path,
) -> None:
    """A day's keys are looked up in every earlier day's (the marts keep a key's earliest
    delivery, so the guard cannot stop at a window). Postgres planned the join as a hash of
    the whole history (1.5 s a day at a year of scale 10: `python -m benchmarks.guard_lookup`);
    the day's keys as an array and an index on the key read only those keys."""
    from aiwf_assets.io.postgres import PostgresWarehouse
    from aiwf_assets.io.warehouse import DuckDBWarehouse
    from tests.conftest import POSTGRES_DSN, postgres_or_skip
    from tests.dbt_fixtures import postgres_schema_suffix

    postgres_or_skip()
    day = date(2026, 3, 1)
    local, _ = _lookup_answer(DuckDBWarehouse(tmp_path / "w.duckdb"), day)
    with postgres_schema_suffix() as suffix:
        wh = PostgresWarehouse(POSTGRES_DSN, schema_suffix=suffix)
        with wh.session() as session:
            found, queries = _lookup_answer(session, day)
            wh.ensure_index("cleaned.orders", ("order_id", "channel"))  # again: no error
            wh.ensure_index("cleaned.absent", ("order_id",))  # no table: nothing
        assert found.rows() == local.rows()
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            indexes = conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s", [f"cleaned{suffix}"]
            ).fetchall()
            conn.execute(f'ANALYZE "cleaned{suffix}".orders')
        assert {name for (name,) in indexes} == {
            "orders__partition_date", "orders__order_id_channel",
        }
        # the plan of the lookup the guard sent for orders (the published history exists)
        [(sql, params)] = [q for q in queries if "cleaned.orders" in q[0]]
        plan = "\n".join(wh.query("EXPLAIN " + sql, params)["QUERY PLAN"])
    assert "Index" in plan and "orders__order_id_channel" in plan, plan
