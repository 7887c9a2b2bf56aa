"""What ``searchkit serve`` serves, without the HTTP: one Searcher, micro-batching and writes.

The models load once per process, in the background (:meth:`Service.start`); requests wait for
them. Single queries without rerank go through a :class:`~searchkit.serve.batching.MicroBatcher`
when the batch window is above 0. Writes open an ``IndexWriter`` per request (so ``searchkit add``
from a shell still works between them), reuse the loaded bi-encoder, and refresh the searcher
afterwards, so what was written is searchable at once; commits of other writers are picked up
every few seconds.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from searchkit._version import __version__
from searchkit.backends.base import SEARCH_PARAMS
from searchkit.errors import IndexLocked, ModelUnavailable, SearchkitError
from searchkit.ingest.writer import CommitReport, IndexWriter
from searchkit.models import Hits
from searchkit.options import HYBRID_OPTIONS, SearchOptions
from searchkit.query.filters import Where
from searchkit.query.searcher import Searcher
from searchkit.serve.batching import MicroBatcher
from searchkit.serve.schemas import Limits

log = logging.getLogger("searchkit.serve.app")
T = TypeVar("T")

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
    workers: int = 2  # threads that run the models (a batch or one query each) at the same time
    refresh_seconds: float = 2.0  # how often to look for commits of other writers (0: never)
    ready_timeout: float = 120.0  # how long a request waits for the models to load

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
        config: limits, batching and refresh settings.
        reranker: CrossEncoder to use instead of the index's.
        verify: check file checksums when opening (and refreshing) the index.
        query_runtime, reranker_runtime: as for ``Searcher``.
    """

    def __init__(
        self,
        path: str | Path,
        config: ServerConfig | None = None,
        *,
        reranker: str | None = None,
        verify: bool = True,
        query_runtime: str | None = None,
        reranker_runtime: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.config = config or ServerConfig()
        self.searcher = Searcher.open(
            self.path,
            reranker=reranker,
            verify=verify,
            query_runtime=query_runtime,
            reranker_runtime=reranker_runtime,
        )
        self.batcher: MicroBatcher[Hits] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self.ready = threading.Event()
        self.load_error: str | None = None
        self._write_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._stopping = threading.Event()
        self._closed = False

    def start(self) -> None:
        """Load the models in the background; start the model threads and the refresher."""
        threading.Thread(target=self._load, name="searchkit-load", daemon=True).start()
        c = self.config
        # the models run on a few fixed threads: torch's own threads, started per calling thread,
        # would otherwise multiply with the request threads and wait on each other
        self._pool = ThreadPoolExecutor(c.workers, thread_name_prefix="searchkit-model")
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
        if self._pool is not None:
            self._pool.shutdown()

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

    def search(self, query: str, k: int, where: Where | None, options: SearchOptions) -> Hits:
        """One query; without rerank, micro-batched with concurrent ones of equal ``k``,
        ``where`` and ``options`` (the batch key: ``SearchOptions`` is hashable).

        Reranked queries are not batched: the CrossEncoder's cost is per pair, so a shared batch
        gains no throughput and makes every query in it wait for all of them (measured by
        benchmarks/serve_load.py). They, and every query when batching is off, run one at a
        time on each of the ``workers`` model threads.
        """
        self.wait_ready()
        if self.batcher is None or options.rerank:
            return self._on_pool(self.searcher.search, query, k, where=where, options=options)
        return self.batcher.submit(query, BatchKey(k, _where_key(where), options))

    def search_batch(
        self, queries: list[str], k: int, where: Where | None, options: SearchOptions
    ) -> list[Hits]:
        self.wait_ready()
        return self._on_pool(self.searcher.search_batch, queries, k, where=where, options=options)

    def _on_pool(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._pool is None:
            raise RuntimeError("the service is not started")
        return self._pool.submit(fn, *args, **kwargs).result()

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
            "index": str(self.path), "searchkit_version": __version__, "version": m.version,
            "documents": m.documents, "deleted": m.deleted, "ready": self.is_ready,
            "reranker": self.searcher.reranker.name, "limits": asdict(c.limits),
            "batching": batching, "manifest": m.to_dict(),
        }  # fmt: skip

    def _load(self) -> None:
        try:  # one real query loads the bi-encoder and the reranker and reads the index
            self.searcher.search(WARM_UP_QUERY, 1, candidates=1)
        except Exception as err:  # reported by /ready and by every request
            self.load_error = f"{type(err).__name__}: {err}"
            log.error("searchkit serve: the models failed to load: %s", self.load_error)
        self.ready.set()

    def _run_batch(self, key: BatchKey, queries: list[str]) -> list[Hits]:
        where = None if key.where is None else json.loads(key.where)
        return self.searcher.search_batch(queries, key.k, where=where, options=key.options)

    def _poll(self) -> None:
        while not self._stopping.wait(self.config.refresh_seconds):
            try:
                self.refresh()
            except (SearchkitError, OSError) as err:
                log.warning("searchkit serve: refresh failed (will retry): %s", err)
