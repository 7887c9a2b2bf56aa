"""Query an index: embed, retrieve candidates from its first stage, rerank with a CrossEncoder."""

from __future__ import annotations

import functools
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from searchkit.analysis import Analyzer
from searchkit.defaults import DEFAULT_K
from searchkit.errors import (
    IncompatibleIndex,
    InvalidParameter,
    ModelUnavailable,
    RerankerUnavailableWarning,
    RuntimeMismatchWarning,
)
from searchkit.index.lexical import Terms, bm25_query_terms, index_analyzer
from searchkit.index.manifest import Manifest
from searchkit.index.sections import EncoderSection
from searchkit.index.sharded import analysis_root
from searchkit.inference.encoder import Encoder
from searchkit.inference.reranker import Reranker
from searchkit.inference.runtimes import Runtime, from_manifest
from searchkit.inference.sparse import splade_for
from searchkit.models import Document, Hit, Hits, Passage
from searchkit.options import MODES, SearchOptions
from searchkit.query import timing
from searchkit.query.filters import Where
from searchkit.query.fusion import blend_rerank, fuser
from searchkit.query.stage import FirstStage, Pool, QueryBatch, open_stage, verify_index

__all__ = ["Searcher", "verify_index"]

QUERY_CACHE = 1024  # query embeddings kept for repeated queries (benchmarks/README.md)
# what Searcher.warm embeds: a few lengths of query (benchmarks/cold_start.py measures it)
WARM_QUERIES = (
    "warm up",
    "how do I warm up the model",
    "what does a longer query of a dozen or so words do to the first searches",
)


class Searcher:
    """Search one index: a first stage (plain or sharded) plus the models and default options.

    The first stage is fixed at the version it opened: a writer committing later does not change
    what this handle sees until ``refresh()``. The models load on the first query; the first
    stage loads none (a shard holds only its files).

    Args:
        stage: the first stage (``Searcher.open`` picks it by the index's kind).
        reranker: CrossEncoder to use instead of the one recorded in the manifest.
        query_runtime: runtime of the query encoder (default: the one that embedded the index,
            recorded in its manifest; another one warns, as its vectors differ slightly).
        reranker_runtime: runtime of the reranker, e.g. ``openvino-int8`` (default ``auto``).
        rerank_max_tokens: cap on the tokens of a (query, passage) pair the reranker reads
            (default: the model's own limit); lower is faster and may rank worse.
        query_cache: how many query embeddings to keep for repeated queries (0: none).
        options: the default ``SearchOptions`` of every search (each call may override them).

    Example::

        s = Searcher.open("indexes/corpus")
        for hit in s.search("how do vaccines work", k=5, where="year >= 2020"):
            print(hit.rank, hit.score, hit.id, hit.title)
    """

    def __init__(
        self,
        stage: FirstStage,
        *,
        reranker: str | None = None,
        query_runtime: str | None = None,
        reranker_runtime: str | None = None,
        rerank_max_tokens: int | None = None,
        query_cache: int = QUERY_CACHE,
        options: SearchOptions | None = None,
    ) -> None:
        self.stage = stage
        self.path = stage.path
        self.options = options or SearchOptions()
        m = stage.manifest
        self.encoder = query_encoder(m.encoder, query_runtime)
        self.reranker = Reranker(
            reranker or m.reranker, runtime=reranker_runtime, max_tokens=rerank_max_tokens
        )
        self.splade = splade_for(m.lexical)
        self.analyzer = _bm25_analyzer(m, self.path)
        self._reranker_missing = False
        self._queries = QueryCache(query_cache)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        verify: bool = True,
        ray_address: str | None = None,
        **models: Any,
    ) -> Searcher:
        """Open the index at ``path``, plain or sharded (by its manifest's kind); ``models``
        are the constructor's keyword arguments (reranker, runtimes, cache, options).

        Args:
            path: the index folder (a sharded index's parent folder too).
            verify: check file checksums on open (sizes are always checked).
            ray_address: search a sharded index's shards with Ray actors on this cluster
                (``auto``, ``local``, ``ray://host:port``) instead of threads here.
        """
        kwargs = {} if ray_address is None else {"ray_address": ray_address}
        return cls(open_stage(path, verify=verify, **kwargs), **models)

    @property
    def manifest(self) -> Manifest:
        """The manifest of the version this handle reads."""
        return self.stage.manifest

    def refresh(self) -> bool:
        """Switch to the index's newest committed version; True if it changed."""
        lexical = self.manifest.lexical
        if not self.stage.refresh():
            return False
        if self.manifest.lexical != lexical:
            self.splade = splade_for(self.manifest.lexical)
            self.analyzer = _bm25_analyzer(self.manifest, self.path)
        return True

    def close(self) -> None:
        """Stop what the first stage runs on (threads, Ray actors)."""
        self.stage.close()

    def __len__(self) -> int:
        return self.manifest.documents

    def ids(self) -> list[str]:
        """The ids of every live document."""
        return self.stage.ids()

    def fields(self) -> dict[str, pa.DataType]:
        """The metadata fields a filter may use, with their types."""
        return self.stage.fields()

    def search(
        self,
        query: str,
        k: int = DEFAULT_K,
        *,
        where: Where | None = None,
        options: SearchOptions | None = None,
        **overrides: Any,
    ) -> Hits:
        """The top ``k`` hits for ``query``.

        Args:
            query: the query text.
            k: hits to return.
            where: keep only documents whose metadata matches, e.g. ``'year >= 2020'`` or
                ``{"source": "pubmed"}`` (see ``searchkit.query.filters``).
            options: how to search (default: this searcher's ``options``).
            **overrides: single ``SearchOptions`` fields, e.g. ``rerank=False, mode="dense"``.

        Example::

            hits = s.search("statin side effects", mode="hybrid", fusion="rrf", rrf_k=60)
        """
        return self.search_batch([query], k, where=where, options=options, **overrides)[0]

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = DEFAULT_K,
        *,
        where: Where | None = None,
        options: SearchOptions | None = None,
        **overrides: Any,
    ) -> list[Hits]:
        """``search`` for many queries, embedded, retrieved and reranked in shared batches."""
        opts = (options or self.options).replace(**overrides)
        _check_args(queries, k)
        mode = self.resolve_mode(opts.mode)
        if not queries:
            return []
        reranker = self._usable_reranker() if opts.rerank else None
        depth = max(k, opts.candidates) if reranker else k
        with timing.stage("embed"):
            vectors = self._query_vectors(queries) if mode != "lexical" else None
        batch = QueryBatch(
            vectors,
            self._query_terms(queries) if mode != "dense" else None,
        )
        fuse = fuser(opts.fusion, opts.rrf_k, opts.weight, self._lexical_bounds(batch, opts))
        with timing.stage("retrieve"):
            found = self.stage.candidates(batch, depth, where, opts, fuse)
        passages = found.passages or [{} for _ in queries]
        if reranker is None:
            return [
                _unranked(q, pool, found.docs, k, mode, best)
                for q, pool, best in zip(queries, found.pools, passages, strict=True)
            ]
        return _rerank(reranker, queries, found.pools, found.docs, k, mode, passages, opts)

    def resolve_mode(self, mode: str | None) -> str:
        """The first stage ``search`` runs for ``mode``: checked against the index, or the
        default (hybrid when the index has lexical data, else dense)."""
        lexical = self.manifest.lexical
        if mode is None:
            return "hybrid" if lexical else "dense"
        if mode not in MODES:
            raise InvalidParameter(
                f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}", param="mode"
            )
        if mode != "dense" and not lexical:
            raise InvalidParameter(
                f"{self.path} has no lexical data, so mode {mode!r} cannot run; search it with "
                'mode="dense", or rebuild the index with lexical="bm25"',
                param="mode",
            )
        return mode

    def warm(self, rerank: bool = False) -> None:
        """Load the bi-encoder (and with ``rerank`` the reranker) now and run a few dummy
        queries of different lengths through it, so the first real queries are not slow (a
        fresh model runs its first inputs of each shape slowly). For long-lived processes."""
        self._checked_encoder.encode_queries(list(WARM_QUERIES))
        if rerank and (reranker := self._usable_reranker()) is not None:
            reranker.score([(q, WARM_QUERIES[-1]) for q in WARM_QUERIES])

    def _lexical_bounds(self, batch: QueryBatch, opts: SearchOptions) -> list[float] | None:
        """Each query's BM25 bound when ``gated`` fusion needs it (hybrid over BM25 on a plain
        index); None otherwise, where ``gated`` fuses as ``weighted``."""
        bounds = getattr(self.stage, "lexical_bounds", None)
        hybrid = batch.vectors is not None and batch.terms is not None
        if opts.fusion != "gated" or not hybrid or self.splade is not None or bounds is None:
            return None
        return bounds(batch.terms)

    def _query_terms(self, queries: Sequence[str]) -> list[Terms]:
        if self.splade is not None:
            return [self.splade.query_terms(q) for q in queries]
        assert self.analyzer is not None  # resolve_mode ran: the index has BM25 terms
        return [bm25_query_terms(q, self.analyzer) for q in queries]

    def _usable_reranker(self) -> Reranker | None:
        """The reranker, loaded; None (with one warning) if the default one cannot load."""
        if self._reranker_missing:
            return None
        try:
            self.reranker.load()  # now, to fall back before any work
        except ModelUnavailable as err:
            if not self.reranker.is_default:
                raise
            self._reranker_missing = True
            warnings.warn(
                f"{err}. Hits are returned in retrieval order, not reranked. Fix: pass a local "
                "CrossEncoder folder as reranker=, or rerank=False",
                RerankerUnavailableWarning,
                stacklevel=4,
            )
            return None
        return self.reranker

    @functools.cached_property
    def _checked_encoder(self) -> Encoder:
        if self.encoder.dim != self.manifest.dim:
            raise IncompatibleIndex(
                f"{self.path}: the index holds {self.manifest.dim}-d vectors but the bi-encoder "
                f"{self.encoder.name!r} makes {self.encoder.dim}-d ones; rebuild the index"
            )
        return self.encoder

    def _query_vectors(self, queries: Sequence[str]) -> np.ndarray:
        return self._queries.vectors(queries, self._checked_encoder.encode_queries)


def query_encoder(encoder: EncoderSection, runtime: str | None) -> Encoder:
    """The bi-encoder for queries to an index whose manifest records ``encoder``: on the
    index's runtime unless ``runtime`` says otherwise (which warns: vectors differ slightly)."""
    built = from_manifest(encoder)
    chosen = built if runtime is None else Runtime.parse(runtime, role="encoder")
    if chosen != built:
        warnings.warn(
            f"the index was embedded with the {built} runtime; queries embedded with {chosen} "
            "match its vectors slightly less well",
            RuntimeMismatchWarning,
            stacklevel=3,
        )
    return Encoder(encoder.name, runtime=chosen)


class QueryCache:
    """An LRU of query embeddings (text -> vector), shared by threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def vectors(self, queries: Sequence[str], embed: Any) -> np.ndarray:
        """The embeddings of ``queries``, from the cache or ``embed(missing)``."""
        if self.size <= 0:
            return embed(queries)
        with self._lock:
            found = {q: self._vectors[q] for q in queries if q in self._vectors}
            for q in found:
                self._vectors.move_to_end(q)
        missing = list(dict.fromkeys(q for q in queries if q not in found))
        if missing:
            found.update(zip(missing, embed(missing), strict=True))
            with self._lock:
                for q in missing:
                    self._vectors[q] = found[q]
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return np.stack([found[q] for q in queries])


def _unranked(
    q: str,
    pool: Pool,
    docs: dict[int, Document],
    k: int,
    mode: str,
    best: dict[int, Passage],
    early_exit: bool = False,
) -> Hits:
    hits = [_hit(docs[r], s, rank, s, rank, best.get(r)) for r, s, rank in pool[:k]]
    return Hits(hits, q, False, mode, early_exit=early_exit)


def confident(pool: Pool, margin: float | None) -> bool:
    """Whether the first stage's top candidate leads the next by at least ``margin``."""
    return margin is not None and len(pool) > 1 and pool[0][1] - pool[1][1] >= margin


def _rerank(
    reranker: Reranker,
    queries: Sequence[str],
    pools: list[Pool],
    docs: dict[int, Document],
    k: int,
    mode: str,
    passages: Sequence[dict[int, Passage]],
    options: SearchOptions,
) -> list[Hits]:
    """Score every (query, candidate) pair in one batch, a long document by its best passage,
    except for the queries the first stage is ``confident`` of (early exit); fuse the scores
    with the retrieval scores by ``rerank_weight`` (see ``blend_rerank``); keep each query's
    top ``k``."""
    skip = [confident(pool, options.rerank_margin) for pool in pools]
    pairs = [
        (q, best[r].text if r in best else docs[r].passage())
        for q, pool, best, s in zip(queries, pools, passages, skip, strict=True)
        if not s
        for r, _, _ in pool
    ]
    with timing.stage("rerank"):
        all_scores, all_cut = reranker.score_counted(pairs)
    scores, cut = iter(all_scores.tolist()), iter(all_cut.tolist())
    results = []
    for q, pool, best, s in zip(queries, pools, passages, skip, strict=True):
        if s:
            results.append(_unranked(q, pool, docs, k, mode, best, early_exit=True))
            continue
        ce = np.asarray([next(scores) for _ in pool])
        retrieval = np.asarray([s for _, s, _ in pool])
        fused = blend_rerank(ce, retrieval, options.rerank_weight).tolist()
        scored = sorted(((f, *c) for f, c in zip(fused, pool, strict=True)), key=lambda x: -x[0])
        truncated = sum(next(cut) for _ in pool)
        hits = [
            _hit(docs[r], ce, i, s, rank, best.get(r))
            for i, (ce, r, s, rank) in enumerate(scored[:k], 1)
        ]
        results.append(Hits(hits, q, True, mode, len(pool), truncated))
    return results


def _hit(
    doc: Document,
    score: float,
    rank: int,
    retrieval_score: float,
    retrieval_rank: int,
    passage: Passage | None = None,
) -> Hit:
    return Hit(
        doc.id, score, rank, doc.title, doc.text, doc.metadata, retrieval_score, retrieval_rank,
        passage,
    )  # fmt: skip


def _check_args(queries: Sequence[str], k: int) -> None:
    if isinstance(queries, str):
        raise InvalidParameter("search_batch takes a list of queries; use search() for one")
    for q in queries:
        if not isinstance(q, str) or not q.strip():
            raise InvalidParameter(f"a query must be non-empty text, got {q!r}", param="query")
    if k < 1:
        raise InvalidParameter(f"k must be at least 1, got {k}", param="k")


def _bm25_analyzer(manifest: Manifest, path: Path) -> Analyzer | None:
    """The analyzer of a BM25 index's queries (None: no BM25 terms)."""
    lexical = manifest.lexical
    if not lexical or lexical.kind != "bm25":
        return None
    return index_analyzer(lexical, analysis_root(path, manifest))
