"""What ``searchkit serve`` serves of one index, without the HTTP: its Searcher, micro-batching
and writes.

The models load once per process, in the background (:meth:`Service.start`), shared with the
other indexes that use them (:class:`~searchkit.serve.shared.Shared`); requests wait for them.
Searches run on the shared lanes of work (bounded queues with a deadline:
:mod:`searchkit.serve.admission`). Single queries without rerank go through a
:class:`~searchkit.serve.batching.MicroBatcher` when the batch window is above 0. Writes open
an ``IndexWriter`` per request (so ``searchkit add`` from a shell still works between them),
reuse the loaded bi-encoder, and refresh the searcher afterwards, so what was written is
searchable at once; commits of other writers are picked up every few seconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from searchkit._version import __version__
from searchkit.backends.base import SEARCH_PARAMS
from searchkit.errors import IndexLocked, ModelUnavailable, Overloaded, SearchkitError
from searchkit.ingest.writer import CommitReport, IndexWriter
from searchkit.models import Hits
from searchkit.options import HYBRID_OPTIONS, SearchOptions
from searchkit.query import timing
from searchkit.query.filters import Where
from searchkit.query.searcher import Searcher
from searchkit.serve.batching import MicroBatcher
from searchkit.serve.schemas import Limits
from searchkit.serve.shared import Shared

log = logging.getLogger("searchkit.serve.app")

# Measured by benchmarks/serve_load.py (see benchmarks/README.md).
DEFAULT_BATCH_WINDOW_MS = 5.0
WARM_UP_QUERY = "warm up"


@dataclass(frozen=True)
class BatchKey:
    """What queries must share to be searched in one micro-batch."""

    k: int
    where: str | None  # the filter as JSON text (a dict filter is not hashable)
    options: SearchOptions


def _where_key(where: Where | None) -> str | None:
    return None if where is None else json.dumps(where, sort_keys=True)


@dataclass(frozen=True)
class ServerConfig:
    """How the server bounds requests, batches queries and picks up other writers' commits."""

    limits: Limits = field(default_factory=Limits)
    batch_window_ms: float = DEFAULT_BATCH_WINDOW_MS  # 0: no micro-batching
    max_batch: int = 32  # queries per micro-batch
    workers: int = 2  # threads per kind of work that run the models (a batch or one query each)
    refresh_seconds: float = 2.0  # how often to look for commits of other writers (0: never)
    ready_timeout: float = 120.0  # how long a request waits for the models to load
    max_queued: int = 64  # searches of one kind (rerank or not) admitted at once; more get 503
    deadline_seconds: float = 5.0  # a search not started by then gets 503 (or is degraded)

    @classmethod
    def from_options(cls, **options: Any) -> ServerConfig:
        """A config from settings and limits by name; None means the default.

        Example::

            ServerConfig.from_options(batch_window_ms=0, max_k=50, refresh_seconds=None)
        """
        given = {name: value for name, value in options.items() if value is not None}
        limit_names = {f.name for f in fields(Limits)}
        limits = Limits(**{n: v for n, v in given.items() if n in limit_names})
        return cls(limits, **{n: v for n, v in given.items() if n not in limit_names})


class Service:
    """The state of a server process: its Searcher, micro-batcher and writes.

    Args:
        path: the index folder (opened and checked here: a bad index fails at once).
        config: limits, batching, back-pressure and refresh settings.
        shared: the lanes, models and metrics of the server process.
        name: the index's name in metrics and ``/indexes`` (default: the folder's name).
        reranker: CrossEncoder to use instead of the index's.
        verify: check file checksums when opening (and refreshing) the index.
        query_runtime, reranker_runtime: as for ``Searcher``.
    """

    def __init__(
        self,
        path: str | Path,
        config: ServerConfig,
        shared: Shared,
        *,
        name: str | None = None,
        reranker: str | None = None,
        verify: bool = True,
        query_runtime: str | None = None,
        reranker_runtime: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        self.config = config
        self.shared = shared
        self.searcher = Searcher.open(
            self.path,
            reranker=reranker,
            verify=verify,
            query_runtime=query_runtime,
            reranker_runtime=reranker_runtime,
        )
        self.searcher.encoder = shared.model(self.searcher.encoder)
        self.searcher.reranker = shared.model(self.searcher.reranker)
        self.batcher: MicroBatcher[Hits] | None = None
        self.ready = threading.Event()
        self.load_error: str | None = None
        self._write_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._stopping = threading.Event()
        self._closed = False

    def start(self) -> None:
        """Load the models in the background; start the micro-batcher and the refresher."""
        threading.Thread(target=self._load, name="searchkit-load", daemon=True).start()
        c = self.config
        if c.batch_window_ms > 0:
            self.batcher = MicroBatcher(
                self._run_batch, c.batch_window_ms, max_batch=c.max_batch, workers=c.workers
            )
        if c.refresh_seconds > 0:
            threading.Thread(target=self._poll, name="searchkit-refresh", daemon=True).start()

    def stop(self) -> None:
        """Let a write in progress commit, refuse new ones, finish the queued queries."""
        self._stopping.set()
        with self._write_lock:
            self._closed = True
        if self.batcher is not None:
            self.batcher.close()

    @property
    def search_params(self) -> set[str]:
        """The index's query-time options (``ef_search``, ``nprobe``, ``rescore``), and the
        hybrid ones (``mode``, ``fusion``, ...) when it has lexical data."""
        m = self.searcher.manifest
        hybrid = set(HYBRID_OPTIONS) if m.lexical else set()
        return (SEARCH_PARAMS & set(m.backend.params)) | hybrid

    @property
    def is_ready(self) -> bool:
        return self.ready.is_set() and self.load_error is None

    def wait_ready(self) -> None:
        """Return once the models are loaded; ``ModelUnavailable`` if they are not."""
        if not self.ready.wait(self.config.ready_timeout):
            raise ModelUnavailable("the models are still loading; retry when GET /ready is 200")
        if self.load_error is not None:
            raise ModelUnavailable(f"the models failed to load: {self.load_error}")

    def search(
        self,
        query: str,
        k: int,
        where: Where | None,
        options: SearchOptions,
        *,
        degrade: bool = False,
    ) -> tuple[Hits, bool]:
        """One query, and whether it was degraded to retrieval order (see ``search_batch``).

        Without rerank it is micro-batched with concurrent ones of equal ``k``, ``where`` and
        ``options`` (the batch key: ``SearchOptions`` is hashable). Reranked queries are not
        batched: the CrossEncoder's cost is per pair, so a shared batch gains no throughput and
        makes every query in it wait for all of them (measured by benchmarks/serve_load.py).
        """
        found, degraded = self.search_batch(
            [query], k, where, options, degrade=degrade, single=True
        )
        return found[0], degraded

    def search_batch(
        self,
        queries: list[str],
        k: int,
        where: Where | None,
        options: SearchOptions,
        *,
        degrade: bool = False,
        single: bool = False,
    ) -> tuple[list[Hits], bool]:
        """The hits of ``queries``, and whether they were degraded: a reranked search whose
        lane is full or whose deadline passed is ``Overloaded`` (503), or, with ``degrade``,
        searched without rerank (retrieval order) instead."""
        self.wait_ready()
        degraded = False
        if options.rerank:
            try:
                return self._run("rerank", queries, k, where, options), False
            except Overloaded:
                self._overloaded("rerank", "degraded" if degrade else "refused")
                if not degrade:
                    raise
            options, degraded = options.replace(rerank=False), True
        try:
            if single and self.batcher is not None:
                return [self._batched(queries[0], k, where, options)], degraded
            return self._run("search", queries, k, where, options), degraded
        except Overloaded:
            self._overloaded("search", "refused")
            raise

    def _overloaded(self, kind: str, outcome: str) -> None:
        self.shared.metrics.overloaded.labels(kind, outcome).inc()

    def _run(
        self, kind: str, queries: list[str], k: int, where: Where | None, options: SearchOptions
    ) -> list[Hits]:
        deadline = self.config.deadline_seconds
        return self.shared.lanes[kind].run(deadline, self._searched, queries, k, where, options)

    def _batched(self, query: str, k: int, where: Where | None, options: SearchOptions) -> Hits:
        assert self.batcher is not None
        lane = self.shared.lanes["search"]
        with lane.admitted():
            future, cancel = self.batcher.enqueue(query, BatchKey(k, _where_key(where), options))
            return lane.wait(future, self.config.deadline_seconds, cancel)

    def _searched(
        self, queries: list[str], k: int, where: Where | None, options: SearchOptions
    ) -> list[Hits]:
        """``search_batch``, its stages timed into the metrics."""
        stages = self.shared.metrics.stages
        with timing.recording(lambda stage, took: stages.labels(self.name, stage).observe(took)):
            return self.searcher.search_batch(queries, k, where=where, options=options)

    def write(self, change: Callable[[IndexWriter], CommitReport]) -> CommitReport:
        """One commit through a writer opened for it, then a refresh so it is searchable."""
        self.wait_ready()
        with self._write_lock:
            if self._closed:
                raise IndexLocked("the server is shutting down; send the change again later")
            with IndexWriter.open(self.path) as writer:
                mine = self.searcher.encoder
                if (writer.encoder.name, writer.encoder.runtime) == (mine.name, mine.runtime):
                    writer.encoder = self.searcher.encoder  # the model this process loaded
                report = change(writer)
            self.refresh()
        return report

    def refresh(self) -> bool:
        """Switch the searcher to the newest commit; True if it changed."""
        with self._refresh_lock:  # two racing refreshes could install the older version last
            return self.searcher.refresh()

    def counts(self) -> tuple[int, int, int]:
        """Live documents, deleted ones and the version searched (for the metrics)."""
        m = self.searcher.manifest
        return m.documents, m.deleted, m.version

    def result(self, hits: Hits) -> dict[str, Any]:
        """A query's hits as ``searchkit query --json`` prints them."""
        reranker = self.searcher.reranker.name if hits.reranked else None
        return {"index": str(self.path), "reranker": reranker, **hits.to_dict()}

    def info(self) -> dict[str, Any]:
        """The version searched, its counts, the manifest, limits and batching counters."""
        m = self.searcher.manifest
        c = self.config
        batching: dict[str, float | int] = {
            "window_ms": c.batch_window_ms, "max_batch": c.max_batch, "workers": c.workers,
        }  # fmt: skip
        if self.batcher is not None:
            batching.update(asdict(self.batcher.stats))
        return {
            "name": self.name, "index": str(self.path), "searchkit_version": __version__,
            "version": m.version,
            "documents": m.documents, "deleted": m.deleted, "ready": self.is_ready,
            "reranker": self.searcher.reranker.name, "limits": asdict(c.limits),
            "batching": batching, "manifest": m.to_dict(),
        }  # fmt: skip

    def _load(self) -> None:
        start = time.perf_counter()
        try:  # one real query loads the bi-encoder and the reranker and reads the index
            self.searcher.search(WARM_UP_QUERY, 1, candidates=1)
        except Exception as err:  # reported by /ready and by every request
            self.load_error = f"{type(err).__name__}: {err}"
            log.error("searchkit serve: the models failed to load: %s", self.load_error)
        self.shared.metrics.load.labels(self.name).set(time.perf_counter() - start)
        self.ready.set()

    def _run_batch(self, key: BatchKey, queries: list[str]) -> list[Hits]:
        where = None if key.where is None else json.loads(key.where)
        self.shared.metrics.batches.observe(len(queries))
        start = time.perf_counter()
        try:
            return self._searched(list(queries), key.k, where, key.options)
        finally:
            self.shared.lanes["search"].record(time.perf_counter() - start)

    def _poll(self) -> None:
        while not self._stopping.wait(self.config.refresh_seconds):
            try:
                self.refresh()
            except (SearchkitError, OSError) as err:
                log.warning("searchkit serve: refresh failed (will retry): %s", err)
