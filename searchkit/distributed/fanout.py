"""The first stage of a sharded index: fan the query out to the shards, merge by score.

Each shard is a ``PlainIndex`` (it loads no model) and returns its own top ``depth`` candidates
for the query vectors (``depth`` is ``k``, or ``max(k, candidates)`` when reranking), so the
merged top ``depth`` is exactly what one index over the whole corpus returns with an exact
backend. The shards are searched in threads of this process (``LocalShards``), or by Ray actors
on the nodes that hold them (``searchkit.distributed.cluster.RayShards``); either way the
``Searcher`` embeds the query and reranks the merged candidates, once.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from searchkit.errors import CorruptIndex, InvalidParameter
from searchkit.index.sharded import ShardedManifest, check_shard_manifests
from searchkit.models import Document
from searchkit.options import SearchOptions
from searchkit.query.filters import Filter, Where, compile_filter
from searchkit.query.plain import PlainIndex
from searchkit.query.stage import Candidates, Fuse, Pool, QueryBatch
from searchkit.query.view import merged_fields


class Shards(Protocol):
    """The open shards of an index, wherever they are searched."""

    def fields(self) -> list[dict[str, pa.DataType]]: ...
    def ids(self) -> list[list[str]]: ...
    def candidates(
        self, vectors: np.ndarray, depth: int, flt: Filter | None, options: SearchOptions
    ) -> list[Candidates]: ...
    def close(self) -> None: ...


class LocalShards:
    """Shards opened in this process and searched in parallel threads (FAISS, hnswlib and
    numpy release the GIL while they search)."""

    def __init__(self, paths: Sequence[Path], verify: bool) -> None:
        self.shards = [PlainIndex(p, verify=verify) for p in paths]
        self._pool = ThreadPoolExecutor(max(1, min(len(paths), 4 * (os.cpu_count() or 1))))

    def fields(self) -> list[dict[str, pa.DataType]]:
        return [s.fields() for s in self.shards]

    def ids(self) -> list[list[str]]:
        return [s.ids() for s in self.shards]

    def candidates(
        self, vectors: np.ndarray, depth: int, flt: Filter | None, options: SearchOptions
    ) -> list[Candidates]:
        return list(
            self._pool.map(lambda s: s.dense_candidates(vectors, depth, flt, options), self.shards)
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False)


class ShardedIndex:
    """A sharded index's parent folder, as a first stage; ``Searcher.open`` picks it by kind.

    Args:
        path: the parent folder.
        verify: check the shards' file checksums on open (sizes are always checked).
        ray_address: search the shards with Ray actors on this cluster (``auto``, ``local``,
            ``ray://host:port``) instead of threads here. Every node must see the index path.
    """

    def __init__(
        self, path: str | Path, *, verify: bool = True, ray_address: str | None = None
    ) -> None:
        self.path = Path(path)
        self._verify = verify
        self._ray_address = ray_address
        self._manifest, self._shards = self._open()

    @classmethod
    def open(cls, path: Path, *, verify: bool = True, ray_address: str | None = None) -> Any:
        return cls(path, verify=verify, ray_address=ray_address)

    @classmethod
    def verify(cls, path: Path) -> ShardedManifest:
        """Re-check every shard (sha256, sizes, row counts) against the parent manifest."""
        manifest = ShardedManifest.read(path)
        check_shard_manifests(path, manifest, checksums=True)
        for shard in manifest.shards:
            found = PlainIndex.verify(path / shard.path).documents
            if found != shard.documents:
                raise CorruptIndex(
                    f"{path}: shard {shard.name} has {found} documents, the parent manifest "
                    f"says {shard.documents}; rebuild the index"
                )
        if sum(s.documents for s in manifest.shards) != manifest.documents:
            raise CorruptIndex(f"{path}: the shards' documents do not add up; rebuild the index")
        return manifest

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

    def candidates(
        self,
        batch: QueryBatch,
        depth: int,
        where: Where | Filter | None,
        options: SearchOptions,
        fuse: Fuse,
    ) -> Candidates:
        """Every shard's top ``depth`` for each query vector, merged by score (shards hold
        vectors only, so the batch has no terms and there is nothing to ``fuse``)."""
        if batch.terms is not None or batch.vectors is None:
            raise InvalidParameter(
                f"{self.path}: shards hold vectors only; search with mode='dense'", param="mode"
            )
        if where is None or isinstance(where, Filter):
            flt = where
        else:
            flt = compile_filter(where, self._fields)
        found = self._shards.candidates(batch.vectors, depth, flt, options)
        return _merge(found, len(batch), depth)


def _merge(found: list[Candidates], queries: int, depth: int) -> Candidates:
    """Each query's top ``depth`` over all shards by score (ties: shard order), re-numbered so
    that refs are unique over the shards."""
    docs: dict[int, Document] = {}
    pools: list[Pool] = []
    passages: list[dict[int, Any]] = []
    for q in range(queries):
        hits = [
            (score, s, ref) for s, shard in enumerate(found) for ref, score, _ in shard.pools[q]
        ]
        hits.sort(key=lambda hit: -hit[0])  # stable: ties keep shard order
        pool, best = [], {}
        for rank, (score, s, ref) in enumerate(hits[:depth], 1):
            new = len(docs)
            docs[new] = found[s].docs[ref]
            if found[s].passages and ref in found[s].passages[q]:
                best[new] = found[s].passages[q][ref]
            pool.append((new, score, rank))
        pools.append(pool)
        passages.append(best)
    return Candidates(pools, docs, passages)
