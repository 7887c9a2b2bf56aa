"""``GET /metrics``: the server's Prometheus metrics (``prometheus-client``), all ``searchkit_``.

Each app has its own registry, so two apps in one process (tests, an embedding app) do not mix
their counts. Requests are counted by an ASGI middleware that labels them with their route's
template (``/indexes/{name}/search``), never the raw path, so the label set stays small.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# request and stage latencies: 1 ms to 30 s
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


class Counted(Protocol):
    """What the metrics read of an index's service."""

    name: str

    def counts(self) -> tuple[int, int, int]: ...  # documents, deleted, version


class Metrics:
    """The metrics of one app; ``indexes`` lists the services whose counts are reported."""

    def __init__(self, indexes: Callable[[], Iterable[Counted]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "searchkit_requests", "HTTP requests by route template, method and status",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "searchkit_request_seconds", "HTTP request latency by route template", ["route"],
            buckets=SECONDS, registry=r,
        )  # fmt: skip
        self.stages = Histogram(
            "searchkit_stage_seconds", "time in each search stage (embed, retrieve, fetch, "
            "rerank), per index", ["index", "stage"], buckets=SECONDS, registry=r,
        )  # fmt: skip
        self.queue = Gauge(
            "searchkit_queue_depth", "requests admitted (waiting or running) by kind of work",
            ["kind"], registry=r,
        )  # fmt: skip
        self.overloaded = Counter(
            "searchkit_overloaded", "requests refused with 503 or degraded to retrieval order, "
            "by kind of work", ["kind", "outcome"], registry=r,
        )  # fmt: skip
        self.batches = Histogram(
            "searchkit_batch_size", "queries per micro-batch", buckets=BATCH_SIZES, registry=r
        )
        self.load = Gauge(
            "searchkit_model_load_seconds", "seconds from an index's start to its models "
            "loaded (its first query); near 0 when another index loaded them", ["index"],
            registry=r,
        )  # fmt: skip
        self.models = Gauge(
            "searchkit_models", "distinct models held: indexes that use the same one share it",
            registry=r,
        )  # fmt: skip
        r.register(IndexCounts(indexes))

    def render(self) -> bytes:
        """Every metric in Prometheus' text format."""
        return generate_latest(self.registry)


class IndexCounts(Collector):
    """Documents, deleted documents and the version of each index, read at scrape time."""

    def __init__(self, indexes: Callable[[], Iterable[Counted]]) -> None:
        self.indexes = indexes

    def collect(self) -> Iterator[Metric]:
        families = [
            GaugeMetricFamily("searchkit_documents", "live documents per index", labels=["index"]),
            GaugeMetricFamily(
                "searchkit_deleted_documents", "deleted documents not yet compacted, per index",
                labels=["index"],
            ),
            GaugeMetricFamily(
                "searchkit_index_version", "the committed version each index serves",
                labels=["index"],
            ),
        ]  # fmt: skip
        for service in self.indexes():
            for family, value in zip(families, service.counts(), strict=True):
                family.add_metric([service.name], value)
        yield from families


class RequestMetrics:
    """ASGI middleware: count every HTTP request and time it, by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500
        start = time.perf_counter()

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = _template(scope)
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


def _template(scope: dict[str, Any]) -> str:
    """The matched route's path template; ``unmatched`` for a 404 (any path would do)."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
