"""The first stage of a plain index folder: one committed version, searched in this process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from searchkit.errors import IncompatibleIndex, InvalidParameter
from searchkit.index.manifest import Manifest
from searchkit.options import SearchOptions
from searchkit.query import timing
from searchkit.query.filters import Filter, Where
from searchkit.query.stage import Candidates, Fuse, QueryBatch
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
        view = self.view
        allowed = view.allowed(where)
        hybrid = batch.vectors is not None and batch.terms is not None
        first = max(depth, FUSION_DEPTH) if hybrid else depth
        lists, best = [], []
        if batch.vectors is not None:
            *dense, prefs = view.retrieve_passages(
                batch.vectors, first, allowed, options.backend_options
            )
            lists.append(tuple(dense))
            best = [
                dict(zip(r.tolist(), p.tolist(), strict=True))
                for r, p in zip(dense[1], prefs, strict=True)
            ]
        if batch.terms is not None:
            lists.append(view.retrieve_lexical(batch.terms, first, allowed))
        scores, refs = lists[0] if len(lists) == 1 else fuse(lists, depth)
        with timing.stage("fetch"):
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
        return Candidates(pools, docs, view.passages(refs_of, best, batch.vectors, docs))

    def dense_candidates(
        self, vectors: np.ndarray, depth: int, flt: Filter | None, options: SearchOptions
    ) -> Candidates:
        """The dense candidates alone: what a shard of a sharded index answers."""
        return self.candidates(QueryBatch(vectors, None), depth, flt, options, _one_list)


def _one_list(lists: object, depth: int) -> tuple[np.ndarray, np.ndarray]:
    raise AssertionError("a dense search has one list: nothing to fuse")
