"""The first stage of a sharded index: fan the query out to the shards, merge by score.

Each shard is a ``PlainIndex`` (it loads no model) and returns its own top ``depth`` by the
query vectors and by the query terms, before fusion (``PlainIndex.ranked``); the merged lists
are exactly one index's over the whole corpus for an exact backend. BM25 scores with index-wide
statistics: the shards' ``TermStats`` for the query terms (live documents, total length,
document frequencies) are summed first and every shard scores with the sums, so a shard's BM25
score is the one a single index over all the documents gives, and stays so as documents are
added or deleted (the statistics come from the shards' current versions, at query time). The
merged lists are fused as a plain index fuses its own (``Ranked.fused``), and the documents of
the fused top ``depth`` only are fetched from their shards. The shards are searched in threads
of this process (``LocalShards``), or by Ray actors on the nodes that hold them
(``searchkit.distributed.cluster.RayShards``); either way the ``Searcher`` embeds the query and
reranks the merged candidates, once.
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from searchkit.errors import CorruptIndex
from searchkit.index.lexical import Terms, TermStats, score_bound
from searchkit.index.sharded import ShardedManifest, check_shard_manifests
from searchkit.models import Document, Passage
from searchkit.options import SearchOptions
from searchkit.query.filters import Filter, Where, compile_filter
from searchkit.query.plain import PlainIndex, fusion_depth
from searchkit.query.stage import Candidates, Fuse, QueryBatch, Ranked, pools_of
from searchkit.query.view import OPEN_ATTEMPTS, merged_fields

Found = tuple[dict[int, Document], list[dict[int, Passage]]]  # PlainIndex.documents
Wanted = tuple[np.ndarray, list[dict[int, int]]]  # a shard's refs to fetch, their best passages


class Shards(Protocol):
    """The open shards of an index, wherever they are searched; each call asks every shard
    (``documents``: the shards that have hits) and returns their answers in shard order."""

    def fields(self) -> list[dict[str, pa.DataType]]: ...
    def ids(self) -> list[list[str]]: ...
    def term_stats(self, terms: Sequence[Terms]) -> list[list[TermStats]]: ...
    def ranked(
        self,
        batch: QueryBatch,
        depth: int,
        flt: Filter | None,
        options: SearchOptions,
        stats: list[TermStats] | None,
    ) -> list[Ranked]: ...
    def documents(
        self, wanted: Sequence[Wanted | None], vectors: np.ndarray | None
    ) -> list[Found | None]: ...
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

    def term_stats(self, terms: Sequence[Terms]) -> list[list[TermStats]]:
        return list(self._pool.map(lambda s: s.term_stats(terms), self.shards))

    def ranked(
        self,
        batch: QueryBatch,
        depth: int,
        flt: Filter | None,
        options: SearchOptions,
        stats: list[TermStats] | None,
    ) -> list[Ranked]:
        return list(
            self._pool.map(lambda s: s.ranked(batch, depth, flt, options, stats), self.shards)
        )

    def documents(
        self, wanted: Sequence[Wanted | None], vectors: np.ndarray | None
    ) -> list[Found | None]:
        def fetch(shard: PlainIndex, want: Wanted | None) -> Found | None:
            return None if want is None else shard.documents(*want, vectors)

        return list(self._pool.map(fetch, self.shards, wanted))

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
        self._last_stats: tuple[Sequence[Terms], list[TermStats]] | None = None
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
        """The shard folders the parent manifest pins, opened; retried when a writer switched
        the parent and removed the old folders while we opened them."""
        for attempt in range(1, OPEN_ATTEMPTS + 1):
            manifest = ShardedManifest.read(self.path)
            try:
                return manifest, self._open_shards(manifest)
            except (CorruptIndex, OSError):
                latest = ShardedManifest.read(self.path).version
                if attempt == OPEN_ATTEMPTS or latest == manifest.version:
                    raise
        raise AssertionError("unreachable")

    def _open_shards(self, manifest: ShardedManifest) -> Shards:
        check_shard_manifests(self.path, manifest, self._verify)
        paths = [self.path / s.path for s in manifest.shards]
        if self._ray_address is None:
            return LocalShards(paths, self._verify)
        from searchkit.distributed.cluster import RayShards

        return RayShards(paths, self._verify, self._ray_address)

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
        self._last_stats = None
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
        """Every shard's lists for each query (BM25 with index-wide statistics), merged by
        score and fused as one index's; the documents of the fused top ``depth`` fetched."""
        if where is None or isinstance(where, Filter):
            flt = where
        else:
            flt = compile_filter(where, self._fields)
        stats = None
        lexical = self._manifest.lexical
        if batch.terms is not None and lexical is not None and lexical.kind == "bm25":
            stats = self._term_stats(batch.terms)
        ranked = self._shards.ranked(batch, fusion_depth(batch, depth), flt, options, stats)
        merged, owners = _merge(ranked)
        scores, refs = merged.fused(depth, fuse)
        wanted = _wanted(len(ranked), refs, merged.best_passages(), owners)
        found = self._shards.documents(wanted, batch.vectors)
        return _candidates(found, scores, refs, owners)

    def lexical_bounds(self, terms: Sequence[Terms]) -> list[float]:
        """Each query's BM25 ``score_bound`` under the whole index's statistics, for ``gated``
        fusion (as ``PlainIndex.lexical_bounds``)."""
        stats = self._term_stats(terms)
        k1 = self._manifest.lexical.k1 or 0.0
        return [score_bound(t, s, k1) for t, s in zip(terms, stats, strict=True)]

    def _term_stats(self, terms: Sequence[Terms]) -> list[TermStats]:
        """Each query's BM25 statistics summed over the shards. The last batch's are kept for
        its candidates: the ``Searcher`` asks for the bounds of the same ``terms`` first."""
        last = self._last_stats
        if last is not None and last[0] is terms:
            return last[1]
        per_shard = self._shards.term_stats(terms)
        stats = [functools.reduce(operator.add, q) for q in zip(*per_shard, strict=True)]
        self._last_stats = (terms, stats)
        return stats


def _merge(ranked: list[Ranked]) -> tuple[Ranked, list[tuple[int, int]]]:
    """The shards' lists merged by score (ties: shard order), as one index's, with refs
    numbered over the shards: ref ``g`` is row ``owners[g]`` (shard, its ref). Best passage
    refs stay the shard's own."""
    owners: list[tuple[int, int]] = []
    numbers: dict[tuple[int, int], int] = {}

    def merged(lists: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        width = lists[0][0].shape[1]
        scores = np.concatenate([x[0] for x in lists], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :width]
        shard = np.concatenate([np.full(x[1].shape, s) for s, x in enumerate(lists)], axis=1)
        shard, *rest = (np.take_along_axis(a, order, 1) for a in (shard, *_columns(lists)))
        refs = np.full(rest[0].shape, -1, dtype=np.int64)
        for (q, j), ref in np.ndenumerate(rest[0]):
            if ref >= 0:
                key = (int(shard[q, j]), int(ref))
                if key not in numbers:
                    numbers[key] = len(owners)
                    owners.append(key)
                refs[q, j] = numbers[key]
        return (np.take_along_axis(scores, order, 1), refs, *rest[1:])

    dense = [r.dense for r in ranked]
    lexical = [r.lexical for r in ranked]
    out = Ranked(
        merged(dense) if dense[0] is not None else None,  # type: ignore[arg-type]
        merged(lexical) if lexical[0] is not None else None,  # type: ignore[arg-type]
    )
    return out, owners


def _columns(lists: list[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
    """Each list's columns after the scores (refs, and passage refs for the dense list),
    concatenated over the shards."""
    return [np.concatenate([x[i] for x in lists], axis=1) for i in range(1, len(lists[0]))]


def _wanted(
    count: int, refs: np.ndarray, best: list[dict[int, int]], owners: list[tuple[int, int]]
) -> list[Wanted | None]:
    """What each of ``count`` shards fetches for the fused list ``refs`` (None: nothing): its
    refs in their places (-1 elsewhere), and per query their best passages."""
    local = np.full((count, *refs.shape), -1, dtype=np.int64)
    for (q, j), ref in np.ndenumerate(refs):
        if ref >= 0:
            shard, row = owners[ref]
            local[shard, q, j] = row
    wanted: list[Wanted | None] = []
    for shard in range(count):
        mine = [
            {owners[g][1]: p for g, p in per_query.items() if owners[g][0] == shard}
            for per_query in best
        ]
        wanted.append((local[shard], mine) if (local[shard] >= 0).any() else None)
    return wanted


def _candidates(
    found: list[Found | None], scores: np.ndarray, refs: np.ndarray, owners: list[tuple[int, int]]
) -> Candidates:
    """The fused list's candidates from what each shard fetched, keyed by the merged refs."""
    docs: dict[int, Document] = {}
    passages: list[dict[int, Passage]] = [{} for _ in range(len(refs))]
    for q, row_refs in enumerate(refs.tolist()):
        for ref in row_refs:
            if ref < 0:
                continue
            shard, row = owners[ref]
            got = found[shard]
            assert got is not None
            docs[ref] = got[0][row]
            if row in got[1][q]:
                passages[q][ref] = got[1][q][row]
    return Candidates(pools_of(scores, refs), docs, passages)
