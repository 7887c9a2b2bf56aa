"""Time the stages of a search (embed, retrieve, fetch, rerank) for whoever listens.

``Searcher`` and the first stages mark their stages with :func:`stage`; a caller that wants the
times (the server's metrics) runs the search inside :func:`recording`. Times are exclusive: a
stage nested in another (the docstore fetch inside retrieval) is not counted twice. Without a
recorder on the thread, :func:`stage` costs one attribute lookup.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Sink = Callable[[str, float], None]

_local = threading.local()


@contextmanager
def recording(sink: Sink) -> Iterator[None]:
    """Call ``sink(stage, seconds)`` for every stage this thread runs inside the block."""
    _local.sink, _local.nested = sink, [0.0]
    try:
        yield
    finally:
        _local.sink = None


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Mark a stage of a search (a no-op unless the thread is ``recording``)."""
    sink: Sink | None = getattr(_local, "sink", None)
    if sink is None:
        yield
        return
    _local.nested.append(0.0)
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        inner = _local.nested.pop()
        _local.nested[-1] += elapsed
        sink(name, elapsed - inner)
