"""Selection fits in worker processes, A/B (docs/ML.md "Selection fits in worker processes").

    python -m benchmarks.fit_processes prep WAREHOUSE.duckdb OUT   # features at the last day
    python -m benchmarks.fit_processes run OUT demand|churn PROCESSES  # one timed training

Run each `run` in a fresh process, alternating PROCESSES (1 2 1 2). CPU is user+sys of this
process and its (loky worker) children, taken while the workers are still alive.
"""

import contextlib
import hashlib
import pickle
import sys
import time
from pathlib import Path

import polars as pl
import psutil


def cpu_seconds() -> float:
    process = psutil.Process()
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return total


def prep(warehouse_path: str, out: Path) -> None:
    from aiwf_assets.io.warehouse import DuckDBWarehouse
    from aiwf_assets.ml import evaluate, features
    from aiwf_assets.ml.marts import read_promotion_plan

    warehouse = DuckDBWarehouse(Path(warehouse_path))
    marts = evaluate.read_marts(warehouse)
    origin = marts["fct_product_daily_sales"]["sales_date"].max()
    past = evaluate.marts_as_of(marts, origin)
    unknown = features.unknown_sales_days(past[evaluate.ACCOUNTING], through=origin)
    grid = features.demand_features(
        past["fct_product_daily_sales"],
        past["dim_products"],
        origin,
        7,
        unknown,
        read_promotion_plan(warehouse),
    )
    activity = past["fct_customer_daily_activity"]
    dates = features.snapshot_dates(
        origin,
        activity["activity_date"].min(),
        30,
        evaluate.CHURN_SNAPSHOTS,
        evaluate.CHURN_STEP_DAYS,
    )
    snapshots = features.customer_feature_snapshots(
        activity, past["fct_orders"], past["dim_customers"], dates
    )
    buying = activity.filter(pl.col("n_orders") > 0).select("customer_key", "activity_date")
    out.mkdir(exist_ok=True)
    grid.write_parquet(out / "grid.parquet")
    snapshots.write_parquet(out / "snapshots.parquet")
    buying.write_parquet(out / "buying.parquet")
    print(origin, grid.height, snapshots.height)


def run(out: Path, family: str, processes: int) -> None:
    from aiwf_assets.ml import churn, demand
    from aiwf_assets.ml.common import limited_threads

    if family == "demand":
        grid = pl.read_parquet(out / "grid.parquet")
        train = lambda: demand.train_demand(grid, 28, processes=processes)  # noqa: E731
    else:
        snapshots = pl.read_parquet(out / "snapshots.parquet")
        buying = pl.read_parquet(out / "buying.parquet")
        train = lambda: churn.train_churn(snapshots, buying, 30, processes=processes)  # noqa: E731
    cpu, wall = cpu_seconds(), time.perf_counter()
    with limited_threads(1):
        outcome = train()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    artifact = hashlib.sha256(pickle.dumps(outcome.artifact)).hexdigest()[:16]
    selection = hashlib.sha256(str(outcome.selection.rows()).encode()).hexdigest()[:12]
    print(
        f"{family} processes={processes} wall={wall:.1f} cpu={cpu:.1f} artifact={artifact} "
        f"selection={selection} params={outcome.params}"
    )


if __name__ == "__main__":
    if sys.argv[1] == "prep":
        prep(sys.argv[2], Path(sys.argv[3]))
    else:
        run(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
