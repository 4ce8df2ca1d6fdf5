"""The cross-day guard's key lookup on a long history, Postgres and DuckDB side by side.

    python -m benchmarks.guard_lookup [--days 365] [--keys 16000] [--repeat 3] [--dsn DSN]

Builds `cleaned.orders` with DAYS days of KEYS order keys each (16,000 a day is about the
orders of scale 10) in a scratch Postgres schema (dropped after) and a scratch DuckDB file,
stages one more day whose every 20th key was delivered before, and times, per engine:
the lookup as the guard runs it (`cleaning.assets._earlier_keys`: the day's keys as an
array, Postgres's key index created by `ensure_index`), and the join it replaced (the whole
history joined to the staged day: with statistics on the staged day Postgres plans a hash of
every earlier day, at any size, index or not).
Both must find the same keys. Prints a markdown table; docs/DEPLOY.md quotes a run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from aiwf_assets.cleaning.assets import _earlier_keys
from aiwf_assets.io.postgres import PostgresWarehouse
from aiwf_assets.io.warehouse import DuckDBWarehouse, Warehouse, staging_table

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
FIRST = date(2026, 1, 1)


def history_sql(days: int, keys: int, suffix: str = "") -> list[str]:
    """Statements (DuckDB and Postgres alike) that build the history and the staged day, in
    the schemas `cleaned<suffix>` and `cleaned_staging<suffix>`."""
    cleaned, staging = f'"cleaned{suffix}"', f'"cleaned_staging{suffix}"'
    day = f"DATE '{FIRST.isoformat()}' + {days}"
    return [
        f"CREATE SCHEMA IF NOT EXISTS {cleaned}",
        f"CREATE SCHEMA IF NOT EXISTS {staging}",
        f"CREATE TABLE {cleaned}.orders AS SELECT"
        " (ARRAY['web', 'app', 'store'])[1 + (g % 3)] AS channel,"
        " 'ord:' || md5(CAST(g AS TEXT)) AS order_id,"
        f" DATE '{FIRST.isoformat()}' + CAST((g - g % {keys}) / {keys} AS INTEGER)"
        f" AS partition_date FROM generate_series(0, {days * keys - 1}) AS t(g)",
        # every 20th id is one of the history's (h: spread over all its days), with its channel
        f"CREATE TABLE {staging}.orders__bench AS SELECT"
        " (ARRAY['web', 'app', 'store'])[1 + (h % 3)] AS channel,"
        " CASE WHEN g % 20 = 0 THEN 'ord:' || md5(CAST(h AS TEXT))"
        " ELSE 'new:' || CAST(g AS TEXT) END AS order_id,"
        f" {day} AS partition_date FROM (SELECT g, (g * 7919) % {days * keys} AS h"
        f" FROM generate_series(0, {keys - 1}) AS t(g)) AS ids",
        f"CREATE TABLE {staging}.interactions__bench AS SELECT 'ticket' AS kind,"
        f" 't:1' AS interaction_id, {day} AS partition_date",
    ]


# the lookup before 2026-12-07: every earlier day's keys joined to the staged day's
JOINED = (
    "SELECT p.channel, p.order_id, p.partition_date FROM (SELECT channel, order_id,"
    " partition_date FROM cleaned.orders WHERE partition_date < ?) p"
    " JOIN cleaned_staging.orders__bench s ON p.order_id = s.order_id AND p.channel = s.channel"
    " WHERE s.partition_date = ?"
)


def timed(fn, repeat: int) -> tuple[float, object]:  # noqa: ANN001 - any callable
    seconds, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def measure(wh: Warehouse, day: date, repeat: int) -> tuple[float, float, int]:
    """(the guard's lookup, the join it replaced, keys found), in seconds."""
    staging = {t: staging_table(f"cleaned.{t}", "bench") for t in ("orders", "interactions")}
    guard, found = timed(lambda: _earlier_keys(wh, staging, day), repeat)
    joined, old = timed(lambda: wh.query(JOINED, [day, day]), repeat)
    if sorted(found["key"].to_list()) != sorted(old["order_id"].to_list()):  # type: ignore[index]
        raise AssertionError("the lookup and the join found different keys")
    return guard, joined, found.height  # type: ignore[union-attr]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.guard_lookup")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--keys", type=int, default=16_000, help="order keys per day")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    args = parser.parse_args(argv)
    day = FIRST.fromordinal(FIRST.toordinal() + args.days)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        duck = DuckDBWarehouse(Path(tmp) / "w.duckdb")
        with duck.connect() as con:
            for statement in history_sql(args.days, args.keys):
                con.execute(statement)
        rows.append(("DuckDB", *measure(duck, day, args.repeat)))
    suffix = f"_bench_{uuid.uuid4().hex[:8]}"
    postgres = PostgresWarehouse(args.dsn, schema_suffix=suffix)
    try:
        with postgres.connect() as conn:
            for statement in history_sql(args.days, args.keys, suffix):
                conn.execute(statement)
            # statistics on both, as autovacuum gathers them once a range run's staging table
            # has grown: without them Postgres guesses the staged day at a few rows and picks
            # the index for the join too, with them it hashes the whole history
            conn.execute(f'ANALYZE "cleaned{suffix}".orders')
            conn.execute(f'ANALYZE "cleaned_staging{suffix}".orders__bench')
        with postgres.session() as session:
            rows.append(("Postgres", *measure(session, day, args.repeat)))
    finally:
        with postgres.connect() as conn:
            for schema in ("cleaned", "cleaned_staging"):
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}{suffix}" CASCADE')
    print(
        f"History: {args.days} days x {args.keys:,} order keys ({args.days * args.keys:,} rows);"
        f" one staged day, every 20th key delivered before; median of {args.repeat}.\n"
    )
    print("| engine | the guard's lookup | the join it replaced | join / lookup | keys found |")
    print("| --- | --- | --- | --- | --- |")
    for engine, guard, joined, found in rows:
        print(f"| {engine} | {guard:.3f} s | {joined:.3f} s | {joined / guard:.1f}x | {found:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
