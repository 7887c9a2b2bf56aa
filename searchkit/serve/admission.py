"""Back-pressure: a bounded queue per kind of work and a deadline per request.

Each kind of work (``search``: retrieval only, ``rerank``: with the CrossEncoder) has a
:class:`Lane`: at most ``limit`` requests admitted (waiting or running), and its own threads.
A request over the limit, or one that waited longer than the deadline before its work
started, gets :class:`~searchkit.errors.Overloaded` (HTTP 503) with a ``Retry-After`` guessed
from the work ahead of it. Work that has started always finishes: a request's latency is
bounded by the deadline plus its own work.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any, TypeVar

from searchkit.errors import Overloaded

T = TypeVar("T")
KINDS = ("search", "rerank")


class Lane:
    """One kind of work: its threads, its bound, and how long its work takes (for Retry-After).

    Args:
        kind: ``search`` or ``rerank`` (named in the 503's message).
        workers: threads that run this kind of work at the same time.
        limit: requests admitted at once (running and waiting); more get 503.
        on_depth: called with the number admitted whenever it changes (a metrics gauge).
    """

    def __init__(
        self, kind: str, workers: int, limit: int, on_depth: Callable[[int], None] | None = None
    ) -> None:
        self.kind = kind
        self.workers = workers
        self.limit = limit
        self.depth = 0
        self.seconds = 0.1  # a running mean of one piece of work's time
        self._on_depth = on_depth or (lambda depth: None)
        self._lock = threading.Lock()
        # the models run on a few fixed threads: torch's own threads, started per calling thread,
        # would otherwise multiply with the request threads and wait on each other
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix=f"searchkit-{kind}")

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold a place in the queue for the block; ``Overloaded`` when it is full."""
        with self._lock:
            if self.depth >= self.limit:
                raise Overloaded(
                    f"the server is busy: {self.depth} {self.kind} requests are queued (the "
                    f"limit); retry after {self.retry_after} s",
                    retry_after=self.retry_after,
                )
            self.depth += 1
            self._on_depth(self.depth)
        try:
            yield
        finally:
            with self._lock:
                self.depth -= 1
                self._on_depth(self.depth)

    @property
    def retry_after(self) -> int:
        """Seconds until the work queued now is likely done (at least 1)."""
        return max(1, math.ceil(self.depth * self.seconds / self.workers))

    def run(self, deadline: float, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on this lane's threads, once admitted; ``Overloaded`` if it
        has not started within ``deadline`` seconds."""
        with self.admitted():
            future = self.pool.submit(self._timed, fn, *args, **kwargs)
            return self.wait(future, deadline)

    def wait(
        self, future: Future[T], deadline: float, cancel: Callable[[], bool] | None = None
    ) -> T:
        """The future's result; past ``deadline`` it is cancelled (``Overloaded``) unless its
        work has started (``cancel``: how to take it back; default ``future.cancel``)."""
        try:
            return future.result(timeout=deadline)
        except FutureTimeout:
            if (cancel or future.cancel)():
                raise Overloaded(
                    f"the server is busy: this {self.kind} request waited {deadline:g} s (the "
                    f"deadline) without starting; retry after {self.retry_after} s",
                    retry_after=self.retry_after,
                ) from None
            return future.result()

    def record(self, seconds: float) -> None:
        """Fold one piece of work's time into the running mean."""
        with self._lock:
            self.seconds += 0.2 * (seconds - self.seconds)

    def close(self) -> None:
        self.pool.shutdown()

    def _timed(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.record(time.perf_counter() - start)
