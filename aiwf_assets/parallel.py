"""Both cores for the steps that loop over days, with one writer.

`prefetched` maps a function over items in worker threads, a bounded number ahead, and
yields the results in the items' order: the calling thread (the step, the only one that
writes the warehouse, the store and the run's events) consumes day N while the workers
read and parse the next days. Polars, PyArrow and DuckDB release the GIL in their native
code, so the threads use the other core; results are the same as a serial loop's because
each item's work is independent and everything is consumed in order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity, e.g. a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def prefetched(
    fn: Callable[[T], R], items: Iterable[T], *, ahead: int | None = None,
    name: str = "aiwf-prefetch",
) -> Iterator[R]:
    """`fn(item)` for each item, in order, computed by `ahead` worker threads (default: one
    per usable core) at most `ahead` items before the consumer; at most `ahead + 1` results
    are held at once. An error in `fn` is raised where its item is consumed; unconsumed work
    is cancelled when the consumer stops early."""
    workers = max(1, ahead if ahead is not None else usable_cores())
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
