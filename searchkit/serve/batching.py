"""Micro-batching: gather concurrent single queries into one ``search_batch`` call.

Request threads call :meth:`MicroBatcher.submit` and block. A few worker threads take turns
collecting: the collecting worker waits up to ``window_ms`` after the first queued query (or until
``max_batch`` with the same options are queued), takes them, and runs them as one batch while the
next idle worker starts collecting. Only queries with equal options (``key``) share a batch.
While every worker is busy, queries pile up, so batches grow with the load.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from searchkit.errors import SearchkitError

T = TypeVar("T")

RunBatch = Callable[[Hashable, Sequence[str]], Sequence[T]]


@dataclass(eq=False)  # an item is itself: `in` and `remove` go by identity
class _Item(Generic[T]):
    key: Hashable
    query: str
    future: Future[T] = field(default_factory=Future)


@dataclass
class BatchStats:
    """Counters for ``/info``: how many batches ran and how many queries they held."""

    batches: int = 0
    queries: int = 0
    largest: int = 0


class MicroBatcher(Generic[T]):
    """Run concurrent single queries in shared batches.

    Args:
        run: ``run(key, queries)`` returns one result per query, in order.
        window_ms: how long the first query of a batch waits for company.
        max_batch: most queries in one batch.
        workers: batches that may run at the same time.

    Example::

        batcher = MicroBatcher(lambda key, qs: searcher.search_batch(qs, **dict(key)), 5.0)
        hits = batcher.submit("how do vaccines work", (("k", 10),))
        batcher.close()
    """

    def __init__(
        self, run: RunBatch[T], window_ms: float, *, max_batch: int = 32, workers: int = 2
    ) -> None:
        self._run = run
        self._window = window_ms / 1000
        self._max = max_batch
        self._queue: deque[_Item[T]] = deque()
        self._cond = threading.Condition()
        self._collecting = False
        self._closed = False
        self.stats = BatchStats()
        self._threads = [
            threading.Thread(target=self._work, name=f"searchkit-batch-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, query: str, key: Hashable) -> T:
        """The result of ``query`` run with options ``key``; blocks until its batch ran."""
        return self.enqueue(query, key)[0].result()

    def enqueue(self, query: str, key: Hashable) -> tuple[Future[T], Callable[[], bool]]:
        """Queue ``query``: its future, and a function that takes it back out of the queue
        (True) unless its batch has started (False)."""
        item: _Item[T] = _Item(key, query)
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._queue.append(item)
            self._cond.notify_all()

        def cancel() -> bool:
            with self._cond:
                if item not in self._queue:
                    return False
                self._queue.remove(item)
                return True

        return item.future, cancel

    def close(self) -> None:
        """Finish every queued query, then stop the workers."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while (batch := self._collect()) is not None:
            self._execute(batch)

    def _collect(self) -> list[_Item[T]] | None:
        """The next batch (waiting for one), or None once closed and drained."""
        with self._cond:
            while self._collecting or not self._queue:
                if self._closed and not self._queue:
                    return None
                self._cond.wait()
            self._collecting = True
            key = self._queue[0].key
            deadline = time.monotonic() + self._window
            while not self._closed and self._count(key) < self._max:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = [item for item in self._queue if item.key == key][: self._max]
            taken = {id(item) for item in batch}
            self._queue = deque(item for item in self._queue if id(item) not in taken)
            self._collecting = False
            self._cond.notify_all()
        return batch

    def _count(self, key: Hashable) -> int:
        return sum(item.key == key for item in self._queue)

    def _execute(self, batch: list[_Item[T]]) -> None:
        key = batch[0].key
        self._record(len(batch))
        try:
            results = self._run(key, [item.query for item in batch])
        except BaseException as err:  # handed to the waiting request threads
            if isinstance(err, SearchkitError) and len(batch) > 1:
                # one bad query must not fail its neighbours: give each its own answer
                for item in batch:
                    _alone(item, key, self._run)
            else:
                for item in batch:
                    item.future.set_exception(err)
            return
        for item, result in zip(batch, results, strict=True):
            item.future.set_result(result)

    def _record(self, size: int) -> None:
        with self._cond:
            self.stats.batches += 1
            self.stats.queries += size
            self.stats.largest = max(self.stats.largest, size)


def _alone(item: _Item[T], key: Hashable, run: RunBatch[T]) -> None:
    """Run one query alone, delivering its result or its own error."""
    try:
        item.future.set_result(run(key, [item.query])[0])
    except BaseException as err:  # handed to the waiting request thread
        item.future.set_exception(err)
