"""Query an index: embed, retrieve top candidates by vector, rerank with a CrossEncoder."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from searchkit.backends import VectorIndex, get_backend
from searchkit.defaults import DEFAULT_CANDIDATES, DEFAULT_K
from searchkit.encode import Encoder
from searchkit.errors import (
    CorruptIndex,
    IncompatibleIndex,
    InvalidParameter,
    ModelUnavailable,
    RerankerUnavailableWarning,
)
from searchkit.manifest import Manifest
from searchkit.models import Document, Hit, Hits
from searchkit.rerank import Reranker
from searchkit.store import DocStore


class Searcher:
    """A read-only handle on an index folder.

    Opening reads the manifest, checks every file (sizes always, sha256 when ``verify``) and
    loads the vector index; the models load on the first query.

    Args:
        path: the index folder.
        reranker: CrossEncoder to use instead of the one recorded in the manifest.
        verify: check file checksums on open (sizes are always checked).

    Example::

        s = Searcher.open("indexes/corpus")
        for hit in s.search("how do vaccines work", k=5):
            print(hit.rank, hit.score, hit.id, hit.title)
    """

    def __init__(
        self, path: str | Path, *, reranker: str | None = None, verify: bool = True
    ) -> None:
        self.path = Path(path)
        self.manifest = Manifest.read(self.path)
        self.manifest.verify(self.path, checksums=verify)
        m = self.manifest
        self.encoder = Encoder(m.encoder["name"])
        self.reranker = Reranker(reranker or m.reranker)
        self._reranker_missing = False
        self.index: VectorIndex = get_backend(m.backend["name"]).load(
            self.path / m.files["vectors"].path, m.dim, m.backend["kind"], m.backend["params"]
        )
        self.docs = DocStore(self.path / m.files["docs"].path)
        if not len(self.index) == len(self.docs) == m.documents:
            raise CorruptIndex(
                f"{self.path}: manifest counts {m.documents} documents, the vector index "
                f"{len(self.index)} and the docstore {len(self.docs)}; rebuild the index"
            )

    @classmethod
    def open(
        cls, path: str | Path, *, reranker: str | None = None, verify: bool = True
    ) -> Searcher:
        """Open the index at ``path`` (same as the constructor)."""
        return cls(path, reranker=reranker, verify=verify)

    def __len__(self) -> int:
        return self.manifest.documents

    def search(
        self,
        query: str,
        k: int = DEFAULT_K,
        *,
        rerank: bool = True,
        candidates: int = DEFAULT_CANDIDATES,
        ef_search: int | None = None,
        nprobe: int | None = None,
    ) -> Hits:
        """The top ``k`` hits for ``query``.

        Args:
            query: the query text.
            k: hits to return.
            rerank: rerank the top ``candidates`` with the CrossEncoder.
            candidates: how many retrieved documents the reranker scores (at least ``k``).
            ef_search: HNSW search breadth for this query (hnsw indexes).
            nprobe: IVF lists to visit for this query (ivf indexes).
        """
        return self.search_batch(
            [query], k, rerank=rerank, candidates=candidates, ef_search=ef_search, nprobe=nprobe
        )[0]

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = DEFAULT_K,
        *,
        rerank: bool = True,
        candidates: int = DEFAULT_CANDIDATES,
        ef_search: int | None = None,
        nprobe: int | None = None,
    ) -> list[Hits]:
        """``search`` for many queries, embedded, retrieved and reranked in shared batches."""
        _check_args(queries, k, candidates)
        if not queries:
            return []
        reranker = self._usable_reranker() if rerank else None
        depth = max(k, candidates) if reranker else k
        scores, rows = self.index.search(
            self._query_vectors(queries), depth, ef_search=ef_search, nprobe=nprobe
        )
        docs = self._fetch(rows)
        pools = [
            [
                (int(r), float(s), rank)
                for rank, (r, s) in enumerate(zip(rr, ss, strict=True), 1)
                if r >= 0
            ]
            for rr, ss in zip(rows, scores, strict=True)
        ]
        if reranker is None:
            return [
                Hits([_hit(docs[r], s, rank, s, rank) for r, s, rank in pool[:k]], q, False)
                for q, pool in zip(queries, pools, strict=True)
            ]
        return _rerank(reranker, queries, pools, docs, k)

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

    def _fetch(self, rows: np.ndarray) -> dict[int, Document]:
        wanted = np.unique(rows[rows >= 0])
        return dict(zip(wanted.tolist(), self.docs.take(wanted), strict=True))


Pool = list[tuple[int, float, int]]  # (row, retrieval score, retrieval rank) per candidate


def _rerank(
    reranker: Reranker, queries: Sequence[str], pools: list[Pool], docs: dict[int, Document], k: int
) -> list[Hits]:
    """Score every (query, candidate) pair in one batch; keep each query's top ``k``."""
    pairs = [
        (q, docs[r].passage()) for q, pool in zip(queries, pools, strict=True) for r, _, _ in pool
    ]
    scores = iter(reranker.score(pairs).tolist())
    results = []
    for q, pool in zip(queries, pools, strict=True):
        scored = sorted(((next(scores), *c) for c in pool), key=lambda x: -x[0])
        hits = [_hit(docs[r], ce, i, s, rank) for i, (ce, r, s, rank) in enumerate(scored[:k], 1)]
        results.append(Hits(hits, q, True))
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
