"""Small helpers shared by the ML families: versions, seeds, error metrics."""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable, Collection, Iterable
from contextlib import AbstractContextManager, nullcontext
from types import ModuleType
from typing import Any

import joblib
import numpy as np
import polars as pl
from joblib.externals.loky import get_reusable_executor
from scipy.stats import rankdata
from threadpoolctl import threadpool_limits

RANDOM_STATE = 42
# below this many training rows `parallel_map` stays in this process: starting workers (each
# imports scikit-learn, skops, matplotlib: ~5 CPU s under load) costs more than small fits
PARALLEL_MIN_ROWS = 200_000


def frame_version(frame: pl.DataFrame) -> str:
    """Content hash of a frame (schema + rows), used as the Dagster data version."""
    digest = hashlib.sha256(str(frame.schema).encode())
    if frame.height:
        digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def source_version(*modules: ModuleType) -> str:
    """Code version from the source of the modules that hold a family's logic."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:12]


def limited_threads(limit: int | None) -> AbstractContextManager[object]:
    """Cap OpenMP/BLAS threads while fitting (None: no cap).

    On a shared or CPU-quota'd host, OpenMP threads that spin-wait for a busy
    core make gradient boosting many times slower than one thread.
    """
    return threadpool_limits(limits=limit) if limit else nullcontext()


def available_cpus() -> int:
    """CPUs this process may use: its CPU affinity and any cgroup CPU quota (joblib/loky)."""
    return max(1, joblib.cpu_count())


def parallel_map(
    fn: Callable[..., Any],
    tasks: Iterable[tuple[Any, ...]],
    processes: int | None = 1,
    rows: int | None = None,
) -> list[Any]:
    """`fn(*task)` for each task, in the tasks' order.

    With `processes` > 1 (None: `available_cpus()`), more than one task and `rows` (the
    size of the fits, None: unknown) at least `PARALLEL_MIN_ROWS`, the calls run in up to
    that many worker processes (joblib's loky backend, stopped when done), each limited
    to one OpenMP/BLAS thread: independent one-thread fits give the same results as in this
    process, bit for bit. Otherwise they run here, one after another."""
    tasks = list(tasks)
    workers = min(available_cpus() if processes is None else processes, len(tasks))
    if workers <= 1 or (rows is not None and rows < PARALLEL_MIN_ROWS):
        return [fn(*task) for task in tasks]
    try:
        with joblib.parallel_config(backend="loky", inner_max_num_threads=1):
            return list(
                joblib.Parallel(n_jobs=workers)(joblib.delayed(fn)(*task) for task in tasks)
            )
    finally:
        # stop the workers now: left alive (loky keeps them 300 s) they outlive the step,
        # and a parent's CPU accounting (rusage of reaped children) never sees their time
        get_reusable_executor().shutdown(wait=True)


def same_recipe(a: Any, b: Any, ignore: Collection[str] = ()) -> bool:
    """Whether two scikit-learn estimators (or pipelines) are configured alike: same types,
    same hyperparameters (nested estimators compared the same way; `ignore` names top-level
    parameters left out). Every estimator here has a fixed random_state, so two estimators
    with the same recipe fitted on the same rows are the same model."""
    if type(a) is not type(b):
        return False
    params_a, params_b = a.get_params(deep=False), b.get_params(deep=False)
    if params_a.keys() != params_b.keys():
        return False
    return all(_same_value(params_a[k], params_b[k]) for k in params_a if k not in ignore)


def _same_value(a: Any, b: Any) -> bool:
    if hasattr(a, "get_params"):
        return same_recipe(a, b)
    if isinstance(a, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True  # e.g. SimpleImputer(missing_values=nan) after a pickle round trip
    try:
        return bool(a is b or a == b)
    except (TypeError, ValueError):  # arrays and the like: not a recipe this compares
        return False


def wape(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Weighted absolute percentage error: sum |error| / sum actual."""
    total = float(np.abs(actual).sum())
    if total == 0:
        raise ValueError("WAPE is undefined when every actual value is zero")
    return float(np.abs(actual - predicted).sum() / total)


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {
        "wape": wape(actual, predicted),
        "mae": float(np.abs(actual - predicted).mean()),
        "bias": float((predicted.sum() - actual.sum()) / max(float(actual.sum()), 1e-9)),
    }


# one-sided 95 %: the gate releases an action only when the gain's lower bound is above 0
GAIN_Z = 1.645


def delong_auc(labels: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC AUC of each score on the same rows, and the covariance of those AUCs (DeLong,
    DeLong & Clarke-Pearson 1988, by midranks; ties count one half, as in ROC AUC).

    The covariance makes a *paired* comparison: two scores of the same customers move
    together from sample to sample, so their difference is far less noisy than either."""
    positive = np.asarray(labels).astype(bool)
    m, n = int(positive.sum()), int((~positive).sum())
    if m == 0 or n == 0:
        raise ValueError("ROC AUC needs both outcomes among the rows")
    v10, v01 = [], []
    for score in scores:
        values = np.asarray(score, dtype=np.float64)
        pos, neg = values[positive], values[~positive]
        ranks = rankdata(np.concatenate([pos, neg]))
        v10.append((ranks[:m] - rankdata(pos)) / n)  # share of negatives each positive beats
        v01.append(1.0 - (ranks[m:] - rankdata(neg)) / m)
    aucs = np.array([v.mean() for v in v10])
    covariance = (
        np.atleast_2d(np.cov(np.array(v10), ddof=1)) / m
        + np.atleast_2d(np.cov(np.array(v01), ddof=1)) / n
    )
    return aucs, covariance


def auc_gain_lower_bound(
    labels: np.ndarray, model: np.ndarray, baseline: np.ndarray, chance: float = 0.5
) -> float:
    """How much better than both the baseline and chance the model ranks, at least (the
    smaller of the two one-sided 95 % lower bounds, in ROC AUC): above 0 means the model
    measurably beats both on these rows. A model that beats a baseline worse than chance
    (recency on guests) by a hair is not measurably better than guessing."""
    (auc_model, auc_baseline), cov = delong_auc(labels, model, baseline)
    se_gain = math.sqrt(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0))
    over_baseline = auc_model - auc_baseline - GAIN_Z * se_gain
    over_chance = auc_model - chance - GAIN_Z * math.sqrt(max(cov[0, 0], 0.0))
    return float(min(over_baseline, over_chance))
