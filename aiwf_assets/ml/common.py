"""Small helpers shared by the ML families: versions, seeds, error metrics."""

from __future__ import annotations

import hashlib
import inspect
from contextlib import AbstractContextManager, nullcontext
from types import ModuleType

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

RANDOM_STATE = 42


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
