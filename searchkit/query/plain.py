"""The first stage of a plain index folder: one committed version, searched in this process."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from searchkit.errors import IncompatibleIndex, InvalidParameter
from searchkit.index.lexical import Terms, TermStats, score_bound
from searchkit.index.manifest import Manifest
from searchkit.models import Document, Passage
from searchkit.options import SearchOptions
from searchkit.query import timing
from searchkit.query.filters import Filter, Where
from searchkit.query.stage import Candidates, Fuse, QueryBatch, Ranked, pools_of
from searchkit.query.view import View, merged_fields, open_view

# Hybrid fuses each first stage's top max(this, depth): the two top-100 lists, as the standard
# RRF runs do; deeper lists cost little (the vector search and BM25 scoring are done for every
# row anyway), only the fused top candidates are fetched.
FUSION_DEPTH = 100


class PlainIndex:
    """An index folder's current version (a ``View``), searched by vectors and terms.

    Args:
        path: the index folder.
        verify: check file checksums on open and refresh (sizes are always checked).
    """

    def __init__(self, path: str | Path, *, verify: bool = True) -> None:
        self.path = Path(path)
        self._verify = verify
        self.view: View = open_view(self.path, verify)

    @classmethod
    def open(cls, path: Path, *, verify: bool = True, ray_address: str | None = None) -> PlainIndex:
        if ray_address is not None:
            raise InvalidParameter(
                f"{path} is not a sharded index: search it without a Ray address",
                param="ray_address",
            )
        return cls(path, verify=verify)

    @classmethod
    def verify(cls, path: Path) -> Manifest:
        """Every file's sha256 and size and every segment's row counts, checked."""
        return open_view(path, True).manifest

    @property
    def manifest(self) -> Manifest:
        return self.view.manifest

    def refresh(self) -> bool:
        if Manifest.read(self.path).version == self.manifest.version:
            return False
        view = open_view(self.path, self._verify, self.view)
        if view.manifest.dim != self.manifest.dim:
            raise IncompatibleIndex(f"{self.path}: the index was rebuilt with another model")
        self.view = view
        return True

    def close(self) -> None:
        """Nothing to release: the segments' files close with the view."""

    def ids(self) -> list[str]:
        out: list[str] = []
        for seg in self.view.segments:
            ids = seg.docs.ids()
            out.extend(ids if seg.live is None else np.asarray(ids, dtype=object)[seg.live])
        return out

    def fields(self) -> dict[str, pa.DataType]:
        return merged_fields(seg.fields.schema for seg in self.view.segments)

    def candidates(
        self,
        batch: QueryBatch,
        depth: int,
        where: Where | Filter | None,
        options: SearchOptions,
        fuse: Fuse,
    ) -> Candidates:
        """The dense list (a document scores as its best passage), the lexical one, or both
        fused; the documents are fetched once, for the fused top ``depth`` only."""
        ranked = self.ranked(batch, fusion_depth(batch, depth), where, options)
        scores, refs = ranked.fused(depth, fuse)
        docs, passages = self.documents(refs, ranked.best_passages(), batch.vectors)
        return Candidates(pools_of(scores, refs), docs, passages)

    def ranked(
        self,
        batch: QueryBatch,
        depth: int,
        where: Where | Filter | None,
        options: SearchOptions,
        stats: Sequence[TermStats] | None = None,
    ) -> Ranked:
        """Each query's top ``depth`` by the vectors and by the terms (with a sharded index's
        BM25 ``stats``, default this index's own), before fusion; no document is read."""
        view = self.view
        allowed = view.allowed(where)
        ranked = Ranked()
        if batch.vectors is not None:
            ranked.dense = view.retrieve_passages(
                batch.vectors, depth, allowed, options.backend_options
            )
        if batch.terms is not None:
            ranked.lexical = view.retrieve_lexical(batch.terms, depth, allowed, stats)
        return ranked

    def documents(
        self, refs: np.ndarray, best: Sequence[dict[int, int]], vectors: np.ndarray | None
    ) -> tuple[dict[int, Document], list[dict[int, Passage]]]:
        """The documents of the hits ``refs`` (queries, n) and each query's best passages of
        them (``View.passages``)."""
        with timing.stage("fetch"):
            docs = self.view.fetch(refs)
        wanted = [[r for r in row.tolist() if r >= 0] for row in refs]
        return docs, self.view.passages(wanted, best, vectors, docs)

    def term_stats(self, terms: Sequence[Terms]) -> list[TermStats]:
        """Each query's BM25 statistics over this index (``SparseRetriever.term_stats``)."""
        sparse = self.view.sparse
        assert sparse is not None and sparse.config.kind == "bm25"
        return [sparse.term_stats(keys) for keys, _ in terms]

    def lexical_bounds(self, terms: Sequence[Terms]) -> list[float]:
        """Each query's BM25 ``score_bound`` over this index, for ``gated`` fusion."""
        k1 = self.view.sparse.config.k1 or 0.0
        return [score_bound(t, s, k1) for t, s in zip(terms, self.term_stats(terms), strict=True)]


def fusion_depth(batch: QueryBatch, depth: int) -> int:
    """How deep each list goes: ``FUSION_DEPTH`` at least when two lists are fused."""
    hybrid = batch.vectors is not None and batch.terms is not None
    return max(depth, FUSION_DEPTH) if hybrid else depth
