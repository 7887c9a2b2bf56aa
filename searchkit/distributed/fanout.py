"""Search a sharded index: embed once, fan out to the shards, merge by score, rerank once.

Each shard returns its own top ``depth`` hits for the query vectors (``depth`` is ``k``, or
``max(k, candidates)`` when reranking), so the merged top ``depth`` is exactly what one index
over the whole corpus returns with an exact backend. The shards are searched in threads of
this process (``LocalShards``), or by Ray actors on the nodes that hold them
(``searchkit.distributed.cluster.RayShards``); either way the query is embedded and the merged
candidates are reranked here, once.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa

from searchkit.errors import InvalidParameter
from searchkit.index.sharded import ShardedManifest, check_shard_manifests
from searchkit.inference.reranker import Reranker
from searchkit.models import Document
from searchkit.query.filters import Filter, Where, compile_filter, matching
from searchkit.query.fusion import Fuse
from searchkit.query.searcher import MODES, QUERY_CACHE, Pool, QueryCache, Searcher, query_encoder
from searchkit.query.view import merged_fields

ShardHits = list[list[tuple[float, Document]]]  # per query: (score, document), best first


class Shard(Searcher):
    """One shard: an ordinary index searched by query vectors. It loads no model."""

    def retrieve(
        self,
        vectors: np.ndarray,
        depth: int,
        flt: Filter | None,
        overrides: dict[str, int | None],
    ) -> ShardHits:
        """The top ``depth`` live documents matching ``flt`` for each query vector."""
        view = self._view
        allowed = [
            seg.live if flt is None else _both(matching(flt, seg.fields), seg.live)
            for seg in view.segments
        ]
        scores, refs = view.retrieve(vectors, depth, allowed, overrides)
        docs = view.fetch(refs)
        return [
            [(float(s), docs[int(r)]) for s, r in zip(ss, rr, strict=True) if r >= 0]
            for ss, rr in zip(scores, refs, strict=True)
        ]


def _both(mask: np.ndarray, live: np.ndarray | None) -> np.ndarray:
    return mask if live is None else mask & live


class Shards(Protocol):
    """The open shards of an index, wherever they are searched."""

    def fields(self) -> list[dict[str, pa.DataType]]: ...
    def ids(self) -> list[list[str]]: ...
    def retrieve(
        self, vectors: np.ndarray, depth: int, flt: Filter | None, overrides: dict[str, int | None]
    ) -> list[ShardHits]: ...
    def close(self) -> None: ...


class LocalShards:
    """Shards opened in this process and searched in parallel threads (FAISS, hnswlib and
    numpy release the GIL while they search)."""

    def __init__(self, paths: Sequence[Path], verify: bool) -> None:
        self.shards = [Shard(p, verify=verify) for p in paths]
        self._pool = ThreadPoolExecutor(max(1, min(len(paths), 4 * (os.cpu_count() or 1))))

    def fields(self) -> list[dict[str, pa.DataType]]:
        return [s.fields() for s in self.shards]

    def ids(self) -> list[list[str]]:
        return [s.ids() for s in self.shards]

    def retrieve(
        self, vectors: np.ndarray, depth: int, flt: Filter | None, overrides: dict[str, int | None]
    ) -> list[ShardHits]:
        return list(
            self._pool.map(lambda s: s.retrieve(vectors, depth, flt, overrides), self.shards)
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False)


class ShardedSearcher(Searcher):
    """A read-only handle on a sharded index; ``Searcher.open`` returns one for a parent folder.

    Args:
        path: the parent folder.
        reranker: CrossEncoder to use instead of the one recorded in the manifest.
        query_runtime, reranker_runtime, rerank_max_tokens, query_cache: as for ``Searcher``.
        verify: check the shards' file checksums on open (sizes are always checked).
        ray_address: search the shards with Ray actors on this cluster (``auto``, ``local``,
            ``ray://host:port``) instead of threads here. Every node must see the index path.

    Example::

        s = Searcher.open("indexes/big")            # a ShardedSearcher
        hits = s.search("how do vaccines work", k=10)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        reranker: str | None = None,
        verify: bool = True,
        ray_address: str | None = None,
        query_runtime: str | None = None,
        reranker_runtime: str | None = None,
        rerank_max_tokens: int | None = None,
        query_cache: int = QUERY_CACHE,
    ) -> None:
        self.path = Path(path)
        self._verify = verify
        self._ray_address = ray_address
        self._manifest, self._shards = self._open()
        self.encoder = query_encoder(self._manifest.encoder, query_runtime)
        self.reranker = Reranker(
            reranker or self._manifest.reranker,
            runtime=reranker_runtime,
            max_tokens=rerank_max_tokens,
        )
        self._reranker_missing = False
        self._queries = QueryCache(query_cache)

    def _open(self) -> tuple[ShardedManifest, Shards]:
        manifest = ShardedManifest.read(self.path)
        check_shard_manifests(self.path, manifest, self._verify)
        paths = [self.path / s.path for s in manifest.shards]
        if self._ray_address is None:
            return manifest, LocalShards(paths, self._verify)
        from searchkit.distributed.cluster import RayShards

        return manifest, RayShards(paths, self._verify, self._ray_address)

    @property
    def manifest(self) -> ShardedManifest:
        """The parent manifest of the version this handle reads."""
        return self._manifest

    def refresh(self) -> bool:
        """Switch to the index's newest version (a rebuild); True if it changed."""
        if ShardedManifest.read(self.path).version == self._manifest.version:
            return False
        old = self._shards
        self._manifest, self._shards = self._open()
        self.__dict__.pop("_fields", None)
        old.close()
        return True

    def close(self) -> None:
        """Stop the threads or Ray actors that search the shards."""
        self._shards.close()

    def ids(self) -> list[str]:
        return [i for ids in self._shards.ids() for i in ids]

    def fields(self) -> dict[str, pa.DataType]:
        return dict(self._fields)

    @functools.cached_property
    def _fields(self) -> dict[str, pa.DataType]:
        return merged_fields(pa.schema(list(f.items())) for f in self._shards.fields())

    def resolve_mode(self, mode: str | None) -> str:
        """Always ``dense``: shards hold vectors only (``searchkit.distributed.ingest`` writes no
        lexical data), so lexical and hybrid search are refused."""
        if mode in (None, "dense") or mode not in MODES:
            return super().resolve_mode(mode)
        raise InvalidParameter(
            f"{self.path} is a sharded index, which holds vectors only, so mode {mode!r} cannot "
            "run; search it with --mode dense, or build the index without --ray for lexical or "
            "hybrid search"
        )

    def _candidates(
        self,
        queries: Sequence[str],
        depth: int,
        where: Where | None,
        overrides: dict[str, int | None],
        mode: str,
        fuse: Fuse,
    ) -> tuple[list[Pool], dict[int, Document]]:
        """Every shard's top ``depth`` for each query, merged by score (``mode`` is dense:
        see ``resolve_mode``; there is nothing to ``fuse``)."""
        flt = None if where is None else compile_filter(where, self._fields)
        found = self._shards.retrieve(self._query_vectors(queries), depth, flt, overrides)
        return _merge(found, len(queries), depth)


def _merge(
    found: list[ShardHits], queries: int, depth: int
) -> tuple[list[Pool], dict[int, Document]]:
    """Each query's top ``depth`` over all shards by score (ties: shard order), as the pools
    and documents ``searcher._rerank`` takes: (ref, score, rank) and ref -> document."""
    docs: dict[int, Document] = {}
    pools = []
    for q in range(queries):
        merged = sorted((hit for shard in found for hit in shard[q]), key=lambda hit: -hit[0])[
            :depth
        ]
        pool = []
        for rank, (score, doc) in enumerate(merged, 1):
            ref = len(docs)
            docs[ref] = doc
            pool.append((ref, score, rank))
        pools.append(pool)
    return pools, docs
