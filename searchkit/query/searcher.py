"""Query an index: embed, retrieve top candidates by vector, rerank with a CrossEncoder."""

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

from searchkit.defaults import (
    DEFAULT_CANDIDATES,
    DEFAULT_FUSION,
    DEFAULT_K,
    DEFAULT_RERANK_WEIGHT,
    DEFAULT_RRF_K,
    DEFAULT_WEIGHT,
)
from searchkit.errors import (
    IncompatibleIndex,
    InvalidParameter,
    ModelUnavailable,
    RerankerUnavailableWarning,
    RuntimeMismatchWarning,
)
from searchkit.index.lexical import Terms, bm25_query_terms
from searchkit.index.manifest import Manifest
from searchkit.inference.encoder import Encoder
from searchkit.inference.reranker import Reranker
from searchkit.inference.runtimes import Runtime, from_manifest
from searchkit.inference.sparse import splade_for
from searchkit.models import Document, Hit, Hits, Passage
from searchkit.query.filters import Where
from searchkit.query.fusion import Fuse, blend_rerank, check_fusion, check_rerank_weight, fuser
from searchkit.query.view import merged_fields, open_view, verify_index

__all__ = ["MODES", "Searcher", "verify_index"]

MODES = ("dense", "lexical", "hybrid")
# Hybrid fuses each first stage's top max(this, candidates): the two top-100 lists, as the
# standard RRF runs do; deeper lists cost little (the vector search and BM25 scoring are
# done for every row anyway), only the fused top candidates are fetched.
FUSION_DEPTH = 100
QUERY_CACHE = 1024  # query embeddings kept for repeated queries (benchmarks/README.md)


class Searcher:
    """A read-only handle on an index folder, fixed at the version it opened.

    Opening reads the manifest, checks every file (sizes always, sha256 when ``verify``) and
    loads the vector indexes; the models load on the first query. A writer committing later does
    not change what this handle sees until ``refresh()``.

    Args:
        path: the index folder.
        reranker: CrossEncoder to use instead of the one recorded in the manifest.
        verify: check file checksums on open (sizes are always checked).
        query_runtime: runtime of the query encoder (default: the one that embedded the index,
            recorded in its manifest; another one warns, as its vectors differ slightly).
        reranker_runtime: runtime of the reranker, e.g. ``openvino-int8`` (default ``auto``).
        rerank_max_tokens: cap on the tokens of a (query, passage) pair the reranker reads
            (default: the model's own limit); lower is faster and may rank worse.
        query_cache: how many query embeddings to keep for repeated queries (0: none).

    Example::

        s = Searcher.open("indexes/corpus")
        for hit in s.search("how do vaccines work", k=5, where="year >= 2020"):
            print(hit.rank, hit.score, hit.id, hit.title)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        reranker: str | None = None,
        verify: bool = True,
        query_runtime: str | None = None,
        reranker_runtime: str | None = None,
        rerank_max_tokens: int | None = None,
        query_cache: int = QUERY_CACHE,
    ) -> None:
        self.path = Path(path)
        self._verify = verify
        self._view = open_view(self.path, verify)
        m = self.manifest
        self.encoder = query_encoder(m.encoder, query_runtime)
        self.reranker = Reranker(
            reranker or m.reranker, runtime=reranker_runtime, max_tokens=rerank_max_tokens
        )
        self.splade = splade_for(m.lexical)
        self._reranker_missing = False
        self._queries = QueryCache(query_cache)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        reranker: str | None = None,
        verify: bool = True,
        ray_address: str | None = None,
        **options: Any,
    ) -> Searcher:
        """Open the index at ``path`` (same as the constructor, whose options it takes); the
        parent folder of a sharded index opens as a ``searchkit.distributed.fanout.ShardedSearcher``, whose
        shards are searched by Ray actors on the cluster at ``ray_address`` when it is given."""
        from searchkit.index.sharded import is_sharded

        if is_sharded(path):
            from searchkit.distributed.fanout import ShardedSearcher

            return ShardedSearcher(
                path, reranker=reranker, verify=verify, ray_address=ray_address, **options
            )
        if ray_address is not None:
            raise InvalidParameter(
                f"{path} is not a sharded index: search it without a Ray address (--ray)"
            )
        return cls(path, reranker=reranker, verify=verify, **options)

    @property
    def manifest(self) -> Manifest:
        """The manifest of the version this handle reads."""
        return self._view.manifest

    def refresh(self) -> bool:
        """Switch to the index's newest committed version; True if it changed."""
        if Manifest.read(self.path).version == self.manifest.version:
            return False
        view = open_view(self.path, self._verify, self._view)
        if view.manifest.dim != self.manifest.dim:
            raise IncompatibleIndex(f"{self.path}: the index was rebuilt with another model")
        if view.manifest.lexical != self.manifest.lexical:
            self.splade = splade_for(view.manifest.lexical)
        self._view = view
        return True

    def __len__(self) -> int:
        return self.manifest.documents

    def ids(self) -> list[str]:
        """The ids of every live document."""
        out: list[str] = []
        for seg in self._view.segments:
            ids = seg.docs.ids()
            out.extend(ids if seg.live is None else np.asarray(ids, dtype=object)[seg.live])
        return out

    def fields(self) -> dict[str, pa.DataType]:
        """The metadata fields a filter may use, with their types."""
        return merged_fields(seg.fields.schema for seg in self._view.segments)

    def search(
        self,
        query: str,
        k: int = DEFAULT_K,
        *,
        rerank: bool = True,
        candidates: int = DEFAULT_CANDIDATES,
        where: Where | None = None,
        mode: str | None = None,
        fusion: str = DEFAULT_FUSION,
        rrf_k: float = DEFAULT_RRF_K,
        weight: float = DEFAULT_WEIGHT,
        ef_search: int | None = None,
        nprobe: int | None = None,
        rescore: int | None = None,
        rerank_margin: float | None = None,
        rerank_weight: float = DEFAULT_RERANK_WEIGHT,
    ) -> Hits:
        """The top ``k`` hits for ``query``.

        Args:
            query: the query text.
            k: hits to return.
            rerank: rerank the top ``candidates`` with the CrossEncoder.
            candidates: how many retrieved documents the reranker scores (at least ``k``).
            where: keep only documents whose metadata matches, e.g. ``'year >= 2020'`` or
                ``{"source": "pubmed"}`` (see ``searchkit.query.filters``).
            mode: the first stage: ``dense`` (vectors), ``lexical`` (the index's BM25 or
                SPLADE terms) or ``hybrid`` (both, fused); default hybrid when the index has
                lexical data, else dense.
            fusion: how hybrid fuses the two top-``FUSION_DEPTH`` lists: ``rrf`` or
                ``weighted`` (see ``searchkit.query.fusion``).
            rrf_k: the k of reciprocal rank fusion.
            weight: the dense list's share in weighted fusion (the lexical one's is 1 - weight).
            ef_search: HNSW search breadth for this query (hnsw indexes).
            nprobe: IVF lists to visit for this query (ivf indexes).
            rescore: candidates of a compact index (sq8, binary) rescored with the float
                vectors for this query; 0 keeps the compact scores.
            rerank_margin: early exit: skip the reranker when the first stage's best candidate
                leads the second by at least this much (in the first stage's score units:
                cosine for dense, fused score for hybrid); the hits then keep retrieval order
                and say ``early_exit``. None: always rerank.
            rerank_weight: the reranker's share when its scores are fused with the first
                stage's (``searchkit.query.fusion.blend_rerank``); 1 (default) ranks by the
                reranker alone.

        Example::

            hits = s.search("statin side effects", mode="hybrid", fusion="rrf", rrf_k=60)
        """
        return self.search_batch(
            [query], k, rerank=rerank, candidates=candidates, where=where, mode=mode,
            fusion=fusion, rrf_k=rrf_k, weight=weight, ef_search=ef_search, nprobe=nprobe,
            rescore=rescore, rerank_margin=rerank_margin, rerank_weight=rerank_weight,
        )[0]  # fmt: skip

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = DEFAULT_K,
        *,
        rerank: bool = True,
        candidates: int = DEFAULT_CANDIDATES,
        where: Where | None = None,
        mode: str | None = None,
        fusion: str = DEFAULT_FUSION,
        rrf_k: float = DEFAULT_RRF_K,
        weight: float = DEFAULT_WEIGHT,
        ef_search: int | None = None,
        nprobe: int | None = None,
        rescore: int | None = None,
        rerank_margin: float | None = None,
        rerank_weight: float = DEFAULT_RERANK_WEIGHT,
    ) -> list[Hits]:
        """``search`` for many queries, embedded, retrieved and reranked in shared batches."""
        _check_args(queries, k, candidates)
        check_fusion(fusion, rrf_k, weight)
        check_rerank_weight(rerank_weight)
        mode = self.resolve_mode(mode)
        if not queries:
            return []
        reranker = self._usable_reranker() if rerank else None
        depth = max(k, candidates) if reranker else k
        overrides = {"ef_search": ef_search, "nprobe": nprobe, "rescore": rescore}
        fuse = fuser(fusion, rrf_k, weight)
        pools, docs, *found = self._candidates(queries, depth, where, overrides, mode, fuse)
        passages = found[0] if found else [{} for _ in queries]
        if reranker is None:
            return [
                _unranked(q, pool, docs, k, mode, best)
                for q, pool, best in zip(queries, pools, passages, strict=True)
            ]
        return _rerank(
            reranker, queries, pools, docs, k, mode, passages, rerank_margin, rerank_weight
        )

    def _candidates(
        self,
        queries: Sequence[str],
        depth: int,
        where: Where | None,
        overrides: dict[str, int | None],
        mode: str,
        fuse: Fuse,
    ) -> tuple[list[Pool], dict[int, Document], list[dict[int, Passage]]]:
        """Each query's top ``depth`` live documents matching ``where`` by the first stage
        ``mode`` (hybrid: the two lists joined by ``fuse``), as pools of (ref, score, rank),
        the documents by ref (the filter is checked before embedding), and the best passages
        of the documents indexed as several."""
        view = self._view
        allowed = view.allowed(where)
        first = max(depth, FUSION_DEPTH) if mode == "hybrid" else depth
        lists = []
        vectors, best = None, []
        if mode != "lexical":
            vectors = self._query_vectors(queries)
            *dense, prefs = view.retrieve_passages(vectors, first, allowed, overrides)
            lists.append(tuple(dense))
            best = [
                dict(zip(r.tolist(), p.tolist(), strict=True))
                for r, p in zip(dense[1], prefs, strict=True)
            ]
        if mode != "dense":
            lists.append(view.retrieve_lexical(self._query_terms(queries), first, allowed))
        scores, refs = lists[0] if len(lists) == 1 else fuse(lists, depth)
        docs = view.fetch(refs)
        pools = [
            [
                (int(r), float(s), rank)
                for rank, (r, s) in enumerate(zip(rr, ss, strict=True), 1)
                if r >= 0
            ]
            for rr, ss in zip(refs, scores, strict=True)
        ]
        refs_of = [[r for r, _, _ in pool] for pool in pools]
        return pools, docs, view.passages(refs_of, best, vectors, docs)

    def resolve_mode(self, mode: str | None) -> str:
        """The first stage ``search`` runs for ``mode``: checked against the index, or the
        default (hybrid when the index has lexical data, else dense)."""
        lexical = self.manifest.lexical
        if mode is None:
            return "hybrid" if lexical else "dense"
        if mode not in MODES:
            raise InvalidParameter(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
        if mode != "dense" and not lexical:
            raise InvalidParameter(
                f"{self.path} has no lexical data (built with --lexical none), so mode {mode!r} "
                "cannot run; search with --mode dense, or rebuild the index with: "
                "searchkit index CORPUS --lexical bm25 --force"
            )
        return mode

    def _query_terms(self, queries: Sequence[str]) -> list[Terms]:
        if self.splade is not None:
            return [self.splade.query_terms(q) for q in queries]
        return [bm25_query_terms(q) for q in queries]

    def _usable_reranker(self) -> Reranker | None:
        """The reranker, loaded; None (with one warning) if the default one cannot load."""
        if self._reranker_missing:
            return None
        try:
            self.reranker.model  # noqa: B018 - load now to fall back before any work
        except ModelUnavailable as err:
            if not self.reranker.is_default:
                raise
            self._reranker_missing = True
            warnings.warn(
                f"{err}. Hits are returned in retrieval order, not reranked. Fix: pass "
                "--reranker PATH (a local CrossEncoder folder) or --no-rerank",
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


def query_encoder(encoder: dict[str, Any], runtime: str | None) -> Encoder:
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
    return Encoder(encoder["name"], runtime=chosen)


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


Pool = list[tuple[int, float, int]]  # (row, retrieval score, retrieval rank) per candidate


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
    margin: float | None,
    weight: float,
) -> list[Hits]:
    """Score every (query, candidate) pair in one batch, a long document by its best passage,
    except for the queries the first stage is ``confident`` of (early exit); fuse the scores
    with the retrieval scores by ``weight`` (see ``blend_rerank``); keep each query's top
    ``k``."""
    skip = [confident(pool, margin) for pool in pools]
    pairs = [
        (q, best[r].text if r in best else docs[r].passage())
        for q, pool, best, s in zip(queries, pools, passages, skip, strict=True)
        if not s
        for r, _, _ in pool
    ]
    all_scores, all_cut = reranker.score_counted(pairs)
    scores, cut = iter(all_scores.tolist()), iter(all_cut.tolist())
    results = []
    for q, pool, best, s in zip(queries, pools, passages, skip, strict=True):
        if s:
            results.append(_unranked(q, pool, docs, k, mode, best, early_exit=True))
            continue
        ce = np.asarray([next(scores) for _ in pool])
        fused = blend_rerank(ce, np.asarray([s for _, s, _ in pool]), weight).tolist()
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


def _check_args(queries: Sequence[str], k: int, candidates: int) -> None:
    if isinstance(queries, str):
        raise InvalidParameter("search_batch takes a list of queries; use search() for one")
    for q in queries:
        if not isinstance(q, str) or not q.strip():
            raise InvalidParameter(f"a query must be non-empty text, got {q!r}")
    if k < 1:
        raise InvalidParameter(f"k must be at least 1, got {k}")
    if candidates < 1:
        raise InvalidParameter(f"candidates must be at least 1, got {candidates}")
