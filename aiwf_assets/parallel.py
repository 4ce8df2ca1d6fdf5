"""Both cores for the steps that loop over days, with one writer.

`prefetched` maps a function over items in worker threads, a bounded number ahead, and
yields the results in the items' order: the calling thread (the step, the only one that
writes the warehouse, the store and the run's events) consumes day N while a worker reads
and parses the next day. Polars, PyArrow and DuckDB release the GIL in their native code,
so the worker uses the other core; results are the same as a serial loop's because each
item's work is independent and everything is consumed in order.

One worker by default, not one per core: the work in it (Polars) already runs on every
core in Polars' own thread pool, so more workers only oversubscribe the cores and hold
more days in memory (measured in docs/DATA_CONTRACTS.md).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_AHEAD = 1  # one day read ahead: see the module's docstring


def prefetched(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    ahead: int | None = None,
    name: str = "aiwf-prefetch",
) -> Iterator[R]:
    """`fn(item)` for each item, in order, computed by `ahead` worker threads (default
    DEFAULT_AHEAD) at most `ahead` items before the consumer; at most `ahead + 1` results
    are held at once. An error in `fn` is raised where its item is consumed; unconsumed
    work is cancelled when the consumer stops early."""
    workers = max(1, ahead if ahead is not None else DEFAULT_AHEAD)
    pending: deque[Future[R]] = deque()
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        try:
            for item in source:
                pending.append(pool.submit(fn, item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
