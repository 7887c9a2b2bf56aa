"""Query an index: embed, retrieve top candidates by vector, rerank with a CrossEncoder."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from pathlib import Path

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
from searchkit.encode import Encoder
from searchkit.errors import (
    IncompatibleIndex,
    InvalidParameter,
    ModelUnavailable,
    RerankerUnavailableWarning,
)
from searchkit.filters import Where
from searchkit.fusion import Fuse, blend_rerank, check_fusion, check_rerank_weight, fuser
from searchkit.lexical import Terms, bm25_query_terms
from searchkit.manifest import Manifest
from searchkit.models import Document, Hit, Hits
from searchkit.rerank import Reranker
from searchkit.splade import splade_for
from searchkit.view import merged_fields, open_view, verify_index

__all__ = ["MODES", "Searcher", "verify_index"]

MODES = ("dense", "lexical", "hybrid")
# Hybrid fuses each first stage's top max(this, candidates): the two top-100 lists, as the
# standard RRF runs do; deeper lists cost little (the vector search and BM25 scoring are
# done for every row anyway), only the fused top candidates are fetched.
FUSION_DEPTH = 100


class Searcher:
    """A read-only handle on an index folder, fixed at the version it opened.

    Opening reads the manifest, checks every file (sizes always, sha256 when ``verify``) and
    loads the vector indexes; the models load on the first query. A writer committing later does
    not change what this handle sees until ``refresh()``.

    Args:
        path: the index folder.
        reranker: CrossEncoder to use instead of the one recorded in the manifest.
        verify: check file checksums on open (sizes are always checked).

    Example::

        s = Searcher.open("indexes/corpus")
        for hit in s.search("how do vaccines work", k=5, where="year >= 2020"):
            print(hit.rank, hit.score, hit.id, hit.title)
    """

    def __init__(
        self, path: str | Path, *, reranker: str | None = None, verify: bool = True
    ) -> None:
        self.path = Path(path)
        self._verify = verify
        self._view = open_view(self.path, verify)
        m = self.manifest
        self.encoder = Encoder(m.encoder["name"])
        self.reranker = Reranker(reranker or m.reranker)
        self.splade = splade_for(m.lexical)
        self._reranker_missing = False

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        reranker: str | None = None,
        verify: bool = True,
        ray_address: str | None = None,
    ) -> Searcher:
        """Open the index at ``path`` (same as the constructor); the parent folder of a
        sharded index opens as a ``searchkit.fanout.ShardedSearcher``, whose shards are
        searched by Ray actors on the cluster at ``ray_address`` when it is given."""
        from searchkit.shards import is_sharded

        if is_sharded(path):
            from searchkit.fanout import ShardedSearcher

            return ShardedSearcher(path, reranker=reranker, verify=verify, ray_address=ray_address)
        if ray_address is not None:
            raise InvalidParameter(
                f"{path} is not a sharded index: search it without a Ray address (--ray)"
            )
        return cls(path, reranker=reranker, verify=verify)

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
        rerank_weight: float = DEFAULT_RERANK_WEIGHT,
    ) -> Hits:
        """The top ``k`` hits for ``query``.

        Args:
            query: the query text.
            k: hits to return.
            rerank: rerank the top ``candidates`` with the CrossEncoder.
            candidates: how many retrieved documents the reranker scores (at least ``k``).
            where: keep only documents whose metadata matches, e.g. ``'year >= 2020'`` or
                ``{"source": "pubmed"}`` (see ``searchkit.filters``).
            mode: the first stage: ``dense`` (vectors), ``lexical`` (the index's BM25 or
                SPLADE terms) or ``hybrid`` (both, fused); default hybrid when the index has
                lexical data, else dense.
            fusion: how hybrid fuses the two top-``FUSION_DEPTH`` lists: ``rrf`` or
                ``weighted`` (see ``searchkit.fusion``).
            rrf_k: the k of reciprocal rank fusion.
            weight: the dense list's share in weighted fusion (the lexical one's is 1 - weight).
            ef_search: HNSW search breadth for this query (hnsw indexes).
            nprobe: IVF lists to visit for this query (ivf indexes).
            rescore: candidates of a compact index (sq8, binary) rescored with the float
                vectors for this query; 0 keeps the compact scores.
            rerank_weight: the reranker's share when its scores are fused with the first
                stage's (``searchkit.fusion.blend_rerank``); 1 (default) ranks by the
                reranker alone.

        Example::

            hits = s.search("statin side effects", mode="hybrid", fusion="rrf", rrf_k=60)
        """
        return self.search_batch(
            [query], k, rerank=rerank, candidates=candidates, where=where, mode=mode,
            fusion=fusion, rrf_k=rrf_k, weight=weight, ef_search=ef_search, nprobe=nprobe,
            rescore=rescore, rerank_weight=rerank_weight,
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
        pools, docs = self._candidates(queries, depth, where, overrides, mode, fuse)
        if reranker is None:
            return [
                Hits([_hit(docs[r], s, rank, s, rank) for r, s, rank in pool[:k]], q, False, mode)
                for q, pool in zip(queries, pools, strict=True)
            ]
        return _rerank(reranker, queries, pools, docs, k, mode, rerank_weight)

    def _candidates(
        self,
        queries: Sequence[str],
        depth: int,
        where: Where | None,
        overrides: dict[str, int | None],
        mode: str,
        fuse: Fuse,
    ) -> tuple[list[Pool], dict[int, Document]]:
        """Each query's top ``depth`` live documents matching ``where`` by the first stage
        ``mode`` (hybrid: the two lists joined by ``fuse``), as pools of (ref, score, rank) and
        the documents by ref (the filter is checked before embedding)."""
        view = self._view
        allowed = view.allowed(where)
        first = max(depth, FUSION_DEPTH) if mode == "hybrid" else depth
        lists = []
        if mode != "lexical":
            lists.append(view.retrieve(self._query_vectors(queries), first, allowed, overrides))
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
        return pools, docs

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
        return self._checked_encoder.encode_queries(queries)


Pool = list[tuple[int, float, int]]  # (row, retrieval score, retrieval rank) per candidate


def _rerank(
    reranker: Reranker,
    queries: Sequence[str],
    pools: list[Pool],
    docs: dict[int, Document],
    k: int,
    mode: str,
    weight: float = DEFAULT_RERANK_WEIGHT,
) -> list[Hits]:
    """Score every (query, candidate) pair in one batch (fused with the retrieval scores
    by ``weight``, see ``blend_rerank``); keep each query's top ``k``."""
    pairs = [
        (q, docs[r].passage()) for q, pool in zip(queries, pools, strict=True) for r, _, _ in pool
    ]
    all_scores, all_cut = reranker.score_counted(pairs)
    scores, cut = iter(all_scores.tolist()), iter(all_cut.tolist())
    results = []
    for q, pool in zip(queries, pools, strict=True):
        ce = np.asarray([next(scores) for _ in pool])
        fused = blend_rerank(ce, np.asarray([s for _, s, _ in pool]), weight).tolist()
        scored = sorted(((f, *c) for f, c in zip(fused, pool, strict=True)), key=lambda x: -x[0])
        truncated = sum(next(cut) for _ in pool)
        hits = [_hit(docs[r], ce, i, s, rank) for i, (ce, r, s, rank) in enumerate(scored[:k], 1)]
        results.append(Hits(hits, q, True, mode, len(pool), truncated))
    return results


def _hit(
    doc: Document, score: float, rank: int, retrieval_score: float, retrieval_rank: int
) -> Hit:
    return Hit(
        doc.id, score, rank, doc.title, doc.text, doc.metadata, retrieval_score, retrieval_rank
    )


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
