"""What every index of one server process shares: the lanes of work, the models, the metrics.

Indexes that name the same bi-encoder or reranker (same name, runtime and token cap) get one
loaded copy; the CPU is shared too, so the bounds on queued work are per process, not per index.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from searchkit.serve.admission import KINDS, Lane
from searchkit.serve.metrics import Metrics

M = TypeVar("M")


class Shared:
    """The lanes (``search``, ``rerank``), loaded models and metrics of one server.

    Args:
        metrics: where the services report.
        workers: model threads per kind of work.
        max_queued: requests of one kind admitted at once (waiting or running).
    """

    def __init__(self, metrics: Metrics, *, workers: int, max_queued: int) -> None:
        self.metrics = metrics
        self.lanes = {
            kind: Lane(kind, workers, max_queued, metrics.queue.labels(kind).set) for kind in KINDS
        }
        self._models: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()
        metrics.models.set_function(lambda: len(self._models))

    def model(self, model: M) -> M:
        """The copy of ``model`` this process already holds, else ``model`` itself (kept)."""
        key = (
            type(model).__name__, getattr(model, "name", None),
            str(getattr(model, "runtime", None)), getattr(model, "token_cap", None),
        )  # fmt: skip
        with self._lock:
            return self._models.setdefault(key, model)  # type: ignore[no-any-return]

    def close(self) -> None:
        for lane in self.lanes.values():
            lane.close()
