"""Pipeline health: per source and day metrics, and anomalies flagged with their expected range."""

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from aiwf_assets.ingest.spec import load_sources
from aiwf_assets.io.warehouse import DuckDBWarehouse
from aiwf_assets.monitoring import health
from aiwf_assets.monitoring.assets import FOREST_TABLE, HEALTH_TABLE, build_pipeline_health
from aiwf_assets.monitoring.stats import judge
from aiwf_assets.partitions import daily_partitions_def
from aiwf_assets.resources import MonitoringThresholds, WarehouseResource

FIRST = dt.date(2026, 2, 1)
DAYS = [FIRST + dt.timedelta(days=i) for i in range(20)]
LAST = DAYS[-1]
RANGE_TAGS = {
    "dagster/asset_partition_range_start": DAYS[0].isoformat(),
    "dagster/asset_partition_range_end": LAST.isoformat(),
}

SOURCES = load_sources()
pipeline_health = build_pipeline_health(SOURCES, daily_partitions_def("2026-01-01", None))


def order_lines(day: dt.date, source: str, channel: str, n: int, rng) -> pl.DataFrame:
    start = dt.datetime.combine(day, dt.time(6), tzinfo=dt.UTC)
    minutes = np.sort(rng.integers(0, 17 * 60, n))
    return pl.DataFrame(
        {
            "partition_date": [day] * n,
            "channel": [channel] * n,
            "customer_key": [None if i % 10 == 0 else f"c{i}" for i in range(n)],
            "ordered_at": [start + dt.timedelta(minutes=int(m)) for m in minutes],
            "source_file": [SOURCES[source].landing_path(day.isoformat())] * n,
        }
    )


def quarantine(day: dt.date, source: str, n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "partition_date": [day] * n,
            "channel": [source] * n,
            "source_file": [SOURCES[source].landing_path(day.isoformat())] * n,
            "source_row": list(range(1, n + 1)),
            "reasons": ["quantity: not a number"] * n,
        },
        schema_overrides={"source_row": pl.Int64},
    )


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    """Cleaned tables for 20 days; on the last day POS delivers half its rows and the web
    file has a quarantine spike."""
    wh = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    rng = np.random.default_rng(3)
    lines, rejected = [], []
    for day in DAYS:
        pos_rows = 100 + int(rng.integers(-5, 6)) if day != LAST else 50
        web_bad = 2 if day != LAST else 30  # same rows in, many more rejected
        web_rows = 80 + int(rng.integers(-4, 5)) - web_bad
        lines += [
            order_lines(day, "pos_transactions", "store", pos_rows, rng),
            order_lines(day, "web_orders", "web", web_rows, rng),
        ]
        rejected.append(quarantine(day, "web_orders", web_bad))
    wh.replace_partitions("cleaned.order_lines", pl.concat(lines), DAYS)
    wh.replace_partitions("cleaned.quarantine", pl.concat(rejected), DAYS)
    return wh


def test_a_range_run_flags_half_the_pos_rows_and_the_quarantine_spike(
    warehouse: DuckDBWarehouse,
) -> None:
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [pipeline_health],
            instance=instance,
            tags=RANGE_TAGS,
            resources={
                "warehouse": WarehouseResource(kind="duckdb", path=str(warehouse.path)),
                "thresholds": MonitoringThresholds(),
            },
        )
    assert result.success  # anomaly checks warn, they never fail the run
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    rows = checks["row_count_in_expected_range"]
    assert not rows.passed
    flagged = rows.metadata["anomalies"].value
    assert f"pos_transactions | {LAST}" in flagged and "web_orders" not in flagged
    assert flagged.count("\n") == 2  # header, rule, one anomaly
    spike = checks["quarantine_rate_in_expected_range"]
    assert not spike.passed
    assert f"web_orders | {LAST}" in spike.metadata["anomalies"].value
    assert checks["staleness_in_expected_range"].passed
    stored = warehouse.query(f"SELECT * FROM {HEALTH_TABLE}")
    assert stored.height == len(DAYS) * len(health_sources(stored))
    last_pos = stored.filter(
        pl.col("source") == "pos_transactions", pl.col("partition_date") == LAST
    ).row(0, named=True)
    assert last_pos["rows"] == 50 and last_pos["quarantine_rate"] == 0.0
    assert last_pos["null_customer_rate"] == pytest.approx(0.1)
    missing = stored.filter(pl.col("source") == "crm_tickets")
    assert missing["rows"].unique().to_list() == [0]  # a source that never delivered


def health_sources(stored: pl.DataFrame) -> list[str]:
    return stored["source"].unique().to_list()


def history_frame(source: str, values: dict[str, list[float]]) -> pl.DataFrame:
    n = len(next(iter(values.values())))
    frame = pl.DataFrame(
        {
            "partition_date": [FIRST + dt.timedelta(days=i) for i in range(n)],
            "source": [source] * n,
            "rows_quarantined": [0] * n,
            **values,
        }
    )
    return frame.select(list(health.HEALTH_SCHEMA)).cast(health.HEALTH_SCHEMA)  # type: ignore[arg-type]


def steady_history(n: int, rng) -> dict[str, list[float]]:
    return {
        "rows": rng.normal(400, 10, n).round().tolist(),
        "quarantine_rate": rng.uniform(0.01, 0.02, n).tolist(),
        "null_customer_rate": rng.uniform(0.2, 0.25, n).tolist(),
        "staleness_hours": rng.uniform(0.5, 1.5, n).tolist(),
    }


def test_too_little_history_gives_no_verdict() -> None:
    rng = np.random.default_rng(1)
    frame = history_frame("pos", steady_history(health.MIN_HISTORY_DAYS, rng))
    today = frame.tail(1)
    assert health.metric_anomalies(frame.head(frame.height - 1), today, 3.5).is_empty()


def judged_day_by_day(history: pl.DataFrame, today: pl.DataFrame, z: float) -> pl.DataFrame:
    """metric_anomalies by its definition: filter the whole history for every row of today."""
    rows = []
    for record in today.iter_rows(named=True):
        day = record["partition_date"]
        past = history.filter(
            pl.col("source") == record["source"],
            pl.col("partition_date") < day,
            pl.col("partition_date") >= day - dt.timedelta(days=health.HISTORY_DAYS),
        )
        for metric in health.METRICS:
            values = past[metric].drop_nulls().to_numpy().astype(np.float64)
            if record[metric] is None or values.size < health.MIN_HISTORY_DAYS:
                continue
            verdict = judge(
                values, float(record[metric]), z, min_scale=health.min_scale(metric, values)
            )
            rows.append(
                {
                    "source": record["source"],
                    "partition_date": day,
                    "metric": metric,
                    "value": verdict.value,
                    "low": verdict.low,
                    "high": verdict.high,
                    "robust_z": verdict.robust_z,
                    "anomalous": verdict.anomalous,
                }
            )
    return pl.DataFrame(
        rows, schema=health.metric_anomalies(history.head(0), today.head(0), z).schema
    )


def test_metric_anomalies_are_the_day_by_day_judgement() -> None:
    """Each source's history is sliced per day, not filtered: same verdicts on a history
    with nulls, missing days, a repeated day, rows out of order and a source without any."""
    rng = np.random.default_rng(8)
    frames = [history_frame(s, steady_history(80, rng)) for s in ("pos", "web")]
    rows = (
        pl.concat(frames)
        .with_columns(
            quarantine_rate=pl.when(pl.col("rows") < 395).then(None).otherwise("quarantine_rate"),
            rows=pl.when(pl.col("partition_date").dt.day() == 20).then(200).otherwise("rows"),
        )
        .filter(pl.col("partition_date").dt.day() != 13)
    )
    rows = pl.concat([rows, rows.filter(pl.col("partition_date") == FIRST + dt.timedelta(30))])
    rows = rows.sample(fraction=1.0, shuffle=True, seed=1)
    today = pl.concat([rows.tail(40), history_frame("crm", steady_history(3, rng))])
    judged = health.metric_anomalies(rows, today, 2.0)
    assert judged.height > 100 and judged["anomalous"].any()
    assert judged.equals(judged_day_by_day(rows, today, 2.0))


def test_isolation_forest_flags_a_day_unlike_its_history() -> None:
    rng = np.random.default_rng(2)
    frame = history_frame("pos", steady_history(health.FOREST_MIN_HISTORY_DAYS + 10, rng))
    past, normal_day = frame.head(frame.height - 1), frame.tail(1)
    odd_day = normal_day.with_columns(rows=pl.lit(150), staleness_hours=pl.lit(9.0))
    assert not health.forest_anomalies(past, normal_day).verdicts["anomalous"].any()
    assert health.forest_anomalies(past, odd_day).verdicts["anomalous"].to_list() == [True]
    too_short = health.forest_anomalies(past.tail(10), odd_day)  # not enough history
    assert too_short.verdicts.is_empty() and too_short.fitted == 0


def year_of_health(rng) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Health rows of two sources over 120 days: (history before the range, the range)."""
    frames = [history_frame(source, steady_history(120, rng)) for source in ("pos", "web")]
    rows = pl.concat(frames).sort("partition_date", "source")
    split = FIRST + dt.timedelta(days=40)
    return rows.filter(pl.col("partition_date") < split), rows


def test_the_forest_is_fitted_once_per_source_and_week() -> None:
    _, rows = year_of_health(np.random.default_rng(4))
    run = health.forest_anomalies(rows, rows)
    judged = run.verdicts
    weeks = judged.select(
        "source",
        health_week=pl.col("partition_date").map_elements(
            lambda d: health.forest_window(d)[1], return_dtype=pl.Date
        ),
    ).unique()
    assert run.fitted == weeks.height and run.scored == judged.height
    assert judged.height > 100 and run.fitted < judged.height / 5
    for row in judged.iter_rows(named=True):  # every window ends before the day's week
        first, end = health.forest_window(row["partition_date"])
        assert end <= row["partition_date"] < end + dt.timedelta(days=7)
        assert (end - first).days == health.FOREST_HISTORY_DAYS


def test_one_changed_day_is_the_only_day_scored_again_with_the_same_results() -> None:
    _, rows = year_of_health(np.random.default_rng(5))
    before = health.forest_anomalies(rows, rows).verdicts
    last = rows["partition_date"].max()
    odd = (pl.col("partition_date") == last) & (pl.col("source") == "pos")
    changed = rows.with_columns(
        rows=pl.when(odd).then(pl.lit(150.0)).otherwise(pl.col("rows")),
        staleness_hours=pl.when(odd).then(pl.lit(9.0)).otherwise(pl.col("staleness_hours")),
    )
    again = health.forest_anomalies(changed, changed, previous=before)
    assert (again.fitted, again.scored) == (1, 1)
    from_scratch = health.forest_anomalies(changed, changed).verdicts
    assert again.verdicts.equals(from_scratch)  # same verdicts as fitting every week anew
    differs = again.verdicts.join(before, on=["source", "partition_date"]).filter(
        pl.col("fingerprint") != pl.col("fingerprint_right")
    )
    assert differs.select("source", "partition_date").rows() == [("pos", last)]
    assert again.verdicts.filter(pl.col("partition_date") == last, pl.col("source") == "pos")[
        "anomalous"
    ].to_list() == [True]

    # a day inside other weeks' training windows: those weeks (of that source) are fitted
    # again, every other verdict is kept, and the result is what a fresh run gives
    middle = FIRST + dt.timedelta(days=60)
    moved = changed.with_columns(
        staleness_hours=pl.when((pl.col("partition_date") == middle) & (pl.col("source") == "web"))
        .then(pl.lit(7.0))
        .otherwise(pl.col("staleness_hours"))
    )
    third = health.forest_anomalies(moved, moved, previous=again.verdicts)
    assert third.verdicts.equals(health.forest_anomalies(moved, moved).verdicts)
    refitted = third.verdicts.filter(
        ~pl.col("fingerprint").is_in(again.verdicts["fingerprint"].implode())
    )
    assert refitted["source"].unique().to_list() == ["web"]
    assert refitted["partition_date"].min() == middle
    assert 0 < third.fitted <= health.FOREST_HISTORY_DAYS // 7 + 2


def test_a_range_run_again_keeps_every_verdict_until_a_day_changes(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    rng = np.random.default_rng(6)
    days = [FIRST + dt.timedelta(days=i) for i in range(50)]
    wh.replace_partitions(
        "cleaned.order_lines",
        pl.concat(
            [
                order_lines(day, "pos_transactions", "store", 100 + int(rng.integers(-5, 6)), rng)
                for day in days
            ]
        ),
        days,
    )
    resources = {
        "warehouse": WarehouseResource(kind="duckdb", path=str(wh.path)),
        "thresholds": MonitoringThresholds(),
    }
    tags = {
        "dagster/asset_partition_range_start": days[0].isoformat(),
        "dagster/asset_partition_range_end": days[-1].isoformat(),
    }

    def run() -> dict:
        with dg.instance_for_test() as instance:
            result = dg.materialize(
                [pipeline_health], instance=instance, tags=tags, resources=resources
            )
        assert result.success
        [materialization] = result.asset_materializations_for_node("pipeline_health")[:1]
        stored = wh.query(f"SELECT * FROM {FOREST_TABLE} ORDER BY partition_date, source")
        return {k: v.value for k, v in materialization.metadata.items()} | {"stored": stored}

    first = run()
    assert first["forests_fitted"] > 0 and first["forest_verdicts_kept"] == 0
    assert first["stored"].height > 0
    second = run()
    assert second["forests_fitted"] == 0
    assert second["forest_verdicts_kept"] == first["stored"].height
    assert second["stored"].equals(first["stored"])
    wh.replace_partitions(
        "cleaned.order_lines",
        order_lines(days[-1], "pos_transactions", "store", 30, rng),
        [days[-1]],
    )
    third = run()
    assert third["forests_fitted"] == 1
    assert third["forest_verdicts_kept"] == first["stored"].height - 1
    kept = third["stored"].filter(pl.col("partition_date") < days[-1])
    assert kept.equals(first["stored"].filter(pl.col("partition_date") < days[-1]))
    is_changed = (pl.col("partition_date") == days[-1]) & (pl.col("source") == "pos_transactions")
    new, old = (run_["stored"].filter(is_changed).row(0, named=True) for run_ in (third, first))
    assert new["fingerprint"] != old["fingerprint"] and new["score"] != old["score"]
    assert third["stored"].filter(~is_changed).equals(first["stored"].filter(~is_changed))


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_rows_count_for_the_source_whose_whole_landing_template_their_file_follows(
    engine: str, tmp_path: Path
) -> None:
    # two sources in one folder, a folder per day, a folder name with LIKE's wildcards in
    # it: the first folder of the path (what health used to go by) names none of them right
    templates = {
        "pos": "exports/{date}_pos.csv",
        "web": "exports/{date}_web.jsonl",
        "app": "{date}/app_orders.jsonl",
        "tickets": "crm_%/dt={date}/export.csv",
    }
    files = {
        "exports/2026-02-01_pos.csv": 3,
        "exports/2026-02-01_web.jsonl": 2,
        "2026-02-01/app_orders.jsonl": 4,
        "crm_%/dt=2026-02-01/export.csv": 5,
        "crm_x/dt=2026-02-01/export.csv": 6,  # `_` and `%` are not wildcards here
        "2026-02-01/appXorders.jsonl": 7,
        "web_orders/2026-02-01.jsonl": 8,  # no declared source's file
    }
    frame = pl.DataFrame(
        {
            "partition_date": [FIRST] * sum(files.values()),
            "source_file": [f for f, n in files.items() for _ in range(n)],
        }
    )
    if engine == "postgres":
        from aiwf_assets.io.postgres import PostgresWarehouse
        from tests.conftest import POSTGRES_DSN, postgres_or_skip
        from tests.dbt_fixtures import postgres_schema_suffix

        postgres_or_skip()
        with postgres_schema_suffix() as suffix:
            wh = PostgresWarehouse(POSTGRES_DSN, schema_suffix=suffix)
            wh.replace_partitions(health.QUARANTINE_TABLE, frame, [FIRST])
            counted = wh.query(health.quarantine_sql([FIRST], templates))
    else:
        wh = DuckDBWarehouse(tmp_path / "w.duckdb")
        wh.replace_partitions(health.QUARANTINE_TABLE, frame, [FIRST])
        counted = wh.query(health.quarantine_sql([FIRST], templates))
    by_source = dict(zip(counted["source"], counted["rows_quarantined"], strict=True))
    assert by_source == {"pos": 3, "web": 2, "app": 4, "tickets": 5, None: 6 + 7 + 8}


LATE_SOURCES = """
version: 1
sources:
  la_till:
    contract: order_lines
    channel: la
    online: false
    format: csv
    landing: la/{date}.csv
    columns:
      order_id:   {from: txn, type: string}
      store_code: {from: store, type: string}
      ordered_at: {from: at, type: timestamp, timestamp_format: iso8601,
                   timezone: America/Los_Angeles}
      sku:        {from: sku, type: string}
      quantity:   {from: qty, type: int}
      unit_price: {from: price, type: float}
      line_number: {sequence: order_id, type: int}
      currency:   {constant: EUR, type: string}
  berlin_bar:
    contract: order_lines
    channel: bar
    online: false
    format: csv
    landing: bar/{date}.csv
    day_ends_at: "04:00"
    columns:
      order_id:   {from: txn, type: string}
      store_code: {from: store, type: string}
      ordered_at: {from: at, type: timestamp, timestamp_format: iso8601, timezone: Europe/Berlin}
      sku:        {from: sku, type: string}
      quantity:   {from: qty, type: int}
      unit_price: {from: price, type: float}
      line_number: {sequence: order_id, type: int}
      currency:   {constant: EUR, type: string}
  utc_web:
    contract: order_lines
    channel: shop
    format: csv
    landing: web/{date}.csv
    columns:
      order_id:   {from: id, type: string}
      ordered_at: {from: at, type: timestamp, timestamp_format: iso8601}
      sku:        {from: sku, type: string}
      quantity:   {from: qty, type: int}
      unit_price: {from: price, type: float}
      line_number: {sequence: order_id, type: int}
      currency:   {constant: EUR, type: string}
  la_desk:
    contract: tickets
    format: csv
    landing: desk/{date}.csv
    columns:
      ticket_id: {from: id, type: string}
      opened_at: {from: at, type: timestamp, timestamp_format: iso8601,
                  timezone: America/Los_Angeles}
      category:  {from: cat, type: string}
"""


def test_staleness_counts_to_the_end_of_the_day_where_the_source_keeps_its_days() -> None:
    # The newest sale of 2026-02-01 in Los Angeles at 18:00 local is 02:00 UTC on the 2nd:
    # measured to UTC midnight it was -2 hours. A bar whose business day ends at 04:00
    # Berlin time sold last at 01:30 on the 2nd: 2.5 hours before its day ended (it was
    # -0.5 to UTC midnight). A UTC source stays as it was.
    from aiwf_assets.ingest.spec import DEFAULT_SOURCES_PATH, parse_documents
    from aiwf_assets.monitoring.assets import day_ends

    ends = day_ends(
        parse_documents(
            [(str(DEFAULT_SOURCES_PATH), DEFAULT_SOURCES_PATH.read_text()), ("late", LATE_SOURCES)]
        )
    )
    assert ends["pos_transactions"] == health.DayEnd("Europe/Berlin")  # packaged tills
    assert ends["la_till"] == health.DayEnd("America/Los_Angeles")
    assert ends["berlin_bar"] == health.DayEnd("Europe/Berlin", dt.time(4))
    assert ends["la_desk"] == health.DayEnd("America/Los_Angeles")  # a ticket's opened_at
    newest = {
        "la_till": dt.datetime(2026, 2, 2, 2, 0, tzinfo=dt.UTC),  # 18:00 PST on the 1st
        "berlin_bar": dt.datetime(2026, 2, 2, 0, 30, tzinfo=dt.UTC),  # 01:30 CET on the 2nd
        "utc_web": dt.datetime(2026, 2, 1, 21, 0, tzinfo=dt.UTC),
    }
    events = pl.DataFrame(
        {
            "source": list(newest),
            "rows_cleaned": [10, 10, 10],
            "null_customer_rows": [0, 0, 0],
            "latest_epoch": [t.timestamp() for t in newest.values()],
        }
    )
    quarantined = pl.DataFrame(schema={"source": pl.String, "rows_quarantined": pl.Int64})
    metrics = health.day_metrics(FIRST, ends, events, quarantined)
    staleness = dict(zip(metrics["source"], metrics["staleness_hours"], strict=True))
    measured = {s: h for s, h in staleness.items() if h is not None}
    assert measured == {"la_till": 6.0, "berlin_bar": 2.5, "utc_web": 3.0}
    # summer time moves the day's end with the wall clock
    summer = health.DayEnd("Europe/Berlin", dt.time(4)).epoch(dt.date(2026, 7, 1))
    assert summer == dt.datetime(2026, 7, 2, 2, 0, tzinfo=dt.UTC).timestamp()
