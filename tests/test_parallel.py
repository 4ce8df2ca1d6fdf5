"""aiwf_assets.parallel: results in order, as a serial loop's, a bounded number ahead."""

from __future__ import annotations

import threading
import time

import pytest

from aiwf_assets.parallel import prefetched


class Recorder:
    """An identity function that records which items started, and on which threads."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, n: int) -> int:
        with self.lock:
            self.started.append(n)
            self.threads.add(threading.current_thread().name)
        return n


def test_results_are_in_order_and_equal_a_serial_loop() -> None:
    def slow_square(n: int) -> int:
        time.sleep(0.001 * (7 - n % 7))  # later items often finish first
        return n * n

    items = list(range(40))
    assert list(prefetched(slow_square, items, ahead=3)) == [slow_square(n) for n in items]
    assert list(prefetched(slow_square, [], ahead=2)) == []


def test_work_runs_in_worker_threads_at_most_ahead_of_the_consumer() -> None:
    record = Recorder()
    started, threads, lock = record.started, record.threads, record.lock

    consumed = []
    for n in prefetched(record, range(10), ahead=2, name="probe"):
        time.sleep(0.01)  # every submitted item has started by now
        with lock:
            # while item n is consumed, at most items n+1 and n+2 were submitted
            assert max(started) <= n + 2
        consumed.append(n)
    assert consumed == list(range(10))
    assert threads and all(name.startswith("probe") for name in threads)


def test_by_default_one_worker_reads_one_item_ahead() -> None:
    """One worker, not one per core: the work (Polars) already uses every core, and more
    workers measured slower and held more days in memory (docs/DATA_CONTRACTS.md)."""
    record = Recorder()
    started, threads, lock = record.started, record.threads, record.lock

    for n in prefetched(record, range(8), name="one"):
        time.sleep(0.01)  # every submitted item has started by now
        with lock:
            assert max(started) <= n + 1
    assert started == list(range(8))
    assert len(threads) == 1 and threads.pop().startswith("one")


def test_an_error_is_raised_where_its_item_is_consumed_and_the_rest_cancelled() -> None:
    calls: list[int] = []

    def fail_at_three(n: int) -> int:
        calls.append(n)
        if n == 3:
            raise ValueError("bad day 3")
        return n

    consumed = []
    with pytest.raises(ValueError, match="bad day 3"):
        for n in prefetched(fail_at_three, range(100), ahead=2):
            consumed.append(n)
    assert consumed == [0, 1, 2]
    assert max(calls) <= 5  # nothing past the window was started


def test_stopping_early_cancels_unconsumed_work() -> None:
    calls: list[int] = []
    results = prefetched(lambda n: calls.append(n) or n, range(100), ahead=2)
    assert next(results) == 0
    results.close()
    assert max(calls) <= 2
