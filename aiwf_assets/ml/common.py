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
