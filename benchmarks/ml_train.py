"""One model family's training on a home's stored features, timed (docs/ML.md, Performance note).

    python -m benchmarks.ml_train train HOME churn|demand|segmentation|recommender
    python -m benchmarks.ml_train churn-eval HOME [full|boosting-0.1]

`train` calls the family's trainer as its model asset does (default config, one OpenMP
thread, selection fits in worker processes where the asset would use them) on HOME's
storage/<features>.parquet (and, for churn, the purchase days of HOME's warehouse), and
prints CPU (user+sys of this process and its reaped worker processes), wall, the sha256 of
the artifact's skops bytes, and hashes of the selection table and the holdout metrics.
`churn-eval` runs `evaluate.evaluate_churn` (the served path at the truth's cutoff, needs
HOME/truth and AIWF_HOME=HOME for the PII key) with the churn grid of this code (`full`) or
with the gradient-boosting learning rate 0.1 added back (`boosting-0.1`), and prints the
selection table and the ROC AUC per population. Run each in a fresh process, A/B alternated.
"""

import hashlib
import resource
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _digest(value: object) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:12]


def train(home: Path, family: str) -> None:
    from aiwf_assets.io.model_store import skops_bytes
    from aiwf_assets.io.warehouse import DuckDBWarehouse
    from aiwf_assets.ml import churn, demand, recommend, segmentation
    from aiwf_assets.ml.common import limited_threads
    from aiwf_assets.ml.marts import purchase_days

    storage = home / "storage"
    if family == "churn":
        snapshots = pl.read_parquet(storage / "customer_features.parquet")
        buying = purchase_days(DuckDBWarehouse(home / "warehouse.duckdb"))
        run: Any = lambda: churn.train_churn(snapshots, buying, 30, processes=None)  # noqa: E731
    elif family == "demand":
        grid = pl.read_parquet(storage / "demand_features.parquet")
        run = lambda: demand.train_demand(grid, 28, 2, processes=None)  # noqa: E731
    elif family == "segmentation":
        snapshots = pl.read_parquet(storage / "customer_features.parquet")
        run = lambda: segmentation.train_segmentation(snapshots, range(2, 9), 2000)  # noqa: E731
    else:
        pairs = pl.read_parquet(storage / "interaction_matrix.parquet")
        run = lambda: recommend.train_recommender(pairs, 14, 10)  # noqa: E731
    cpu, wall = cpu_seconds(), time.perf_counter()
    with limited_threads(1):
        outcome = run()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    artifact = hashlib.sha256(skops_bytes(outcome.artifact)).hexdigest()[:16]
    metrics = (sorted(outcome.metrics.items()), sorted(outcome.baseline_metrics.items()))
    print(
        f"{family} cpu={cpu:.1f} wall={wall:.1f} artifact={artifact} "
        f"selection={_digest(outcome.selection.rows())} metrics={_digest(metrics)} "
        f"model={outcome.model_name} params={outcome.params}"
    )


def churn_eval(home: Path, variant: str) -> None:
    from aiwf_assets.io.warehouse import DuckDBWarehouse
    from aiwf_assets.ml import churn, evaluate
    from aiwf_assets.ml.common import limited_threads
    from aiwf_assets.settings import get_settings

    if variant == "boosting-0.1":
        factory, grid = churn.CANDIDATES["hist_gradient_boosting"]
        extra = [{**params, "model__learning_rate": 0.1} for params in grid]
        churn.CANDIDATES = {**churn.CANDIDATES, "hist_gradient_boosting": (factory, grid + extra)}
    outcomes = []
    trainer = churn.train_churn

    def recording(*args: Any, **kwargs: Any) -> Any:
        outcomes.append(trainer(*args, **kwargs))
        return outcomes[-1]

    churn.train_churn = recording  # type: ignore[assignment]
    marts = evaluate.read_marts(DuckDBWarehouse(home / "warehouse.duckdb"))
    truth = {n: pl.read_parquet(home / "truth" / f"{n}.parquet") for n in ("churn", "customers")}
    cpu = cpu_seconds()
    with limited_threads(1):
        rows = evaluate.evaluate_churn(
            marts, truth["churn"], truth["customers"], get_settings().pii_key
        )
    cpu = cpu_seconds() - cpu
    with pl.Config(tbl_rows=30, fmt_str_lengths=80, float_precision=6):
        print(outcomes[0].selection.select("candidate", "params", "cv_roc_auc"))
    print(f"churn-eval {variant} cpu={cpu:.1f} chosen={outcomes[0].params}")
    for row in rows:
        if row.get("metric") == "roc_auc":
            print(f"  {row['population']}: model {row['model']} truth {row['truth']}")


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(Path(sys.argv[2]), sys.argv[3])
    else:
        churn_eval(Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "full")
