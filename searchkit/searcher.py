"""Query an index: embed, retrieve top candidates by vector, rerank with a CrossEncoder."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from searchkit.backends.base import pad, search_params
from searchkit.backends.exact import top_k
from searchkit.backends.rescore import search_rescored
from searchkit.defaults import DEFAULT_CANDIDATES, DEFAULT_K
from searchkit.encode import Encoder
from searchkit.errors import (
    CorruptIndex,
    IncompatibleIndex,
    InvalidParameter,
    ModelUnavailable,
    RerankerUnavailableWarning,
)
from searchkit.filters import Where, compile_filter, matching
from searchkit.manifest import Manifest
from searchkit.models import Document, Hit, Hits
from searchkit.rerank import Reranker
from searchkit.segment import SEGMENT_PARTS, Segment, read_deletions

OPEN_ATTEMPTS = 5  # a writer may remove an old version's files while we open it: re-read
EXACT_ROWS = 20_000  # filters leaving at most this many rows in a segment are searched exactly
MAX_EF_SEARCH = 1024  # the widest HNSW search a selective filter or many deletions may ask
STRIDE = 1 << 40  # a hit's reference: segment position * STRIDE + row


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
        self._view = _open_view(self.path, verify)
        m = self.manifest
        self.encoder = Encoder(m.encoder["name"])
        self.reranker = Reranker(reranker or m.reranker)
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
        view = _open_view(self.path, self._verify, self._view)
        if view.manifest.dim != self.manifest.dim:
            raise IncompatibleIndex(f"{self.path}: the index was rebuilt with another model")
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
        return _merged_fields(seg.fields.schema for seg in self._view.segments)

    def search(
        self,
        query: str,
        k: int = DEFAULT_K,
        *,
        rerank: bool = True,
        candidates: int = DEFAULT_CANDIDATES,
        where: Where | None = None,
        ef_search: int | None = None,
        nprobe: int | None = None,
        rescore: int | None = None,
    ) -> Hits:
        """The top ``k`` hits for ``query``.

        Args:
            query: the query text.
            k: hits to return.
            rerank: rerank the top ``candidates`` with the CrossEncoder.
            candidates: how many retrieved documents the reranker scores (at least ``k``).
            where: keep only documents whose metadata matches, e.g. ``'year >= 2020'`` or
                ``{"source": "pubmed"}`` (see ``searchkit.filters``).
            ef_search: HNSW search breadth for this query (hnsw indexes).
            nprobe: IVF lists to visit for this query (ivf indexes).
            rescore: candidates of a compact index (sq8, binary) rescored with the float
                vectors for this query; 0 keeps the compact scores.
        """
        return self.search_batch(
            [query],
            k,
            rerank=rerank,
            candidates=candidates,
            where=where,
            ef_search=ef_search,
            nprobe=nprobe,
            rescore=rescore,
        )[0]

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = DEFAULT_K,
        *,
        rerank: bool = True,
        candidates: int = DEFAULT_CANDIDATES,
        where: Where | None = None,
        ef_search: int | None = None,
        nprobe: int | None = None,
        rescore: int | None = None,
    ) -> list[Hits]:
        """``search`` for many queries, embedded, retrieved and reranked in shared batches."""
        _check_args(queries, k, candidates)
        if not queries:
            return []
        reranker = self._usable_reranker() if rerank else None
        depth = max(k, candidates) if reranker else k
        overrides = {"ef_search": ef_search, "nprobe": nprobe, "rescore": rescore}
        pools, docs = self._candidates(queries, depth, where, overrides)
        if reranker is None:
            return [
                Hits([_hit(docs[r], s, rank, s, rank) for r, s, rank in pool[:k]], q, False)
                for q, pool in zip(queries, pools, strict=True)
            ]
        return _rerank(reranker, queries, pools, docs, k)

    def _candidates(
        self,
        queries: Sequence[str],
        depth: int,
        where: Where | None,
        overrides: dict[str, int | None],
    ) -> tuple[list[Pool], dict[int, Document]]:
        """Each query's top ``depth`` live documents matching ``where``, as pools of
        (ref, score, rank) and the documents by ref (the filter is checked before embedding)."""
        view = self._view
        allowed = view.allowed(where)
        scores, refs = view.retrieve(self._query_vectors(queries), depth, allowed, overrides)
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


@dataclass(frozen=True)
class _View:
    """One committed version: its manifest and open segments."""

    manifest: Manifest
    segments: list[Segment]

    def allowed(self, where: Where | None) -> list[np.ndarray | None]:
        """Per segment, the mask of rows a query may return (None: every row)."""
        if where is None:
            return [seg.live for seg in self.segments]
        flt = compile_filter(where, _merged_fields(seg.fields.schema for seg in self.segments))
        masks = []
        for seg in self.segments:
            mask = matching(flt, seg.fields)
            masks.append(mask if seg.live is None else mask & seg.live)
        return masks

    def retrieve(
        self,
        queries: np.ndarray,
        depth: int,
        allowed: list[np.ndarray | None],
        overrides: dict[str, int | None],
    ) -> tuple[np.ndarray, np.ndarray]:
        """The top ``depth`` (scores, refs) over every segment, merged by score."""
        parts = [(np.full((len(queries), 0), -np.inf), np.full((len(queries), 0), -1))]
        for position, (seg, allow) in enumerate(zip(self.segments, allowed, strict=True)):
            scores, rows = _segment_top(seg, queries, depth, allow, overrides)
            parts.append((scores, np.where(rows >= 0, position * STRIDE + rows, -1)))
        scores = np.concatenate([p[0] for p in parts], axis=1)
        refs = np.concatenate([p[1] for p in parts], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
        return pad(np.take_along_axis(scores, order, 1), np.take_along_axis(refs, order, 1), depth)

    def fetch(self, refs: np.ndarray) -> dict[int, Document]:
        """The documents of the hits ``refs``, read from each segment's docstore."""
        wanted = np.unique(refs[refs >= 0])
        docs: dict[int, Document] = {}
        for position in np.unique(wanted // STRIDE).tolist():
            mine = wanted[wanted // STRIDE == position]
            found = self.segments[position].docs.take(mine % STRIDE)
            docs.update(zip(mine.tolist(), found, strict=True))
        return docs


def _segment_top(
    seg: Segment,
    queries: np.ndarray,
    depth: int,
    allow: np.ndarray | None,
    overrides: dict[str, int | None],
) -> tuple[np.ndarray, np.ndarray]:
    """One segment's top ``depth`` rows among ``allow``: the backend's own filter (compact
    vectors rescored with the stored ones), or an exact scan of the stored vectors when few
    rows qualify or the backend came back short."""
    search_params(seg.index, depth, overrides)  # bad options fail even on an exact scan
    if allow is None:
        return search_rescored(seg.index, seg.vectors, queries, depth, **overrides)
    count = int(np.count_nonzero(allow))
    if count <= EXACT_ROWS:
        return _exact(seg, queries, depth, allow)
    widened = _widened(seg.index.params, overrides, count / len(allow))
    scores, rows = search_rescored(seg.index, seg.vectors, queries, depth, allow=allow, **widened)
    short = np.count_nonzero(rows >= 0, axis=1) < min(depth, count)
    if short.any():  # a selective filter starved the approximate search
        scores[short], rows[short] = _exact(seg, queries[short], depth, allow)
    return scores, rows


def _widened(
    params: dict[str, Any], overrides: dict[str, int | None], fraction: float
) -> dict[str, int | None]:
    """Search breadth scaled by 1/fraction, so that a search that may only return a fraction
    of the rows still meets about as many of them as an unfiltered one (capped)."""
    out = dict(overrides)
    for key, cap in (("ef_search", MAX_EF_SEARCH), ("nprobe", params.get("nlist"))):
        if key in params:
            base = overrides.get(key) or params[key]
            out[key] = max(base, min(math.ceil(base / fraction), cap or base))
    return out


def _exact(
    seg: Segment, queries: np.ndarray, depth: int, allow: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    rows = np.append(np.flatnonzero(allow), -1)  # the -1 maps top_k's padding back to -1
    scores, picked = top_k(queries @ np.asarray(seg.vectors[rows[:-1]]).T, depth)
    return scores, rows[picked]


def verify_index(path: str | Path) -> Manifest:
    """Re-check every file's sha256 and size and every segment's row counts; the manifest.

    Raises:
        CorruptIndex: naming the first file or count that does not match.
    """
    from searchkit.shards import is_sharded, verify_sharded

    if is_sharded(path):
        return verify_sharded(path)  # every shard, against the parent manifest
    return _open_view(Path(path), True).manifest


def _merged_fields(schemas: Iterable[pa.Schema]) -> dict[str, pa.DataType]:
    """Field -> type over every segment (segments written at different times may differ)."""
    out: dict[str, pa.DataType] = {}
    for schema in schemas:
        for field in schema:
            old = out.get(field.name)
            if old is None or pa.types.is_null(old):
                out[field.name] = field.type
            elif pa.types.is_null(field.type) or old == field.type:
                continue
            elif {old, field.type} <= {pa.int64(), pa.float64()}:
                out[field.name] = pa.float64()
            else:
                out[field.name] = pa.string()
    return out


def _open_view(path: Path, verify: bool, previous: _View | None = None) -> _View:
    """Open the current version; retry when a commit removed its files while we opened them.

    Segments ``previous`` already has open are reused (they are immutable): a refresh after a
    small commit checks and opens only the new files.
    """
    for attempt in range(1, OPEN_ATTEMPTS + 1):
        manifest = Manifest.read(path)
        try:
            return _load_view(path, manifest, verify, previous)
        except (CorruptIndex, OSError):
            if attempt == OPEN_ATTEMPTS or Manifest.read(path).version == manifest.version:
                raise
    raise AssertionError("unreachable")


def _load_view(path: Path, manifest: Manifest, verify: bool, previous: _View | None) -> _View:
    known = previous.manifest.files if previous is not None else {}
    opened = {seg.name: seg for seg in previous.segments} if previous is not None else {}
    fresh = [role for role, entry in manifest.files.items() if known.get(role) != entry]
    manifest.verify(path, checksums=verify, roles=fresh)
    deleted = read_deletions(path, manifest)
    segments = []
    for e in manifest.segments:
        if e.name in opened and all(e.role(part) not in fresh for part in SEGMENT_PARTS):
            segments.append(opened[e.name].with_deleted(e, deleted[e.name]))
            continue
        segments.append(Segment(path, manifest, e, deleted[e.name]))
        _check_counts(path, segments[-1])
    live = sum(s.entry.rows - len(deleted[s.name]) for s in segments)
    if live != manifest.documents:
        raise CorruptIndex(
            f"{path}: manifest counts {manifest.documents} live documents, the segments and "
            f"deletions {live}; rebuild the index"
        )
    return _View(manifest, segments)


def _check_counts(path: Path, seg: Segment) -> None:
    for part, rows in seg.counts().items():
        if rows != seg.entry.rows:
            raise CorruptIndex(
                f"{path}: segment {seg.name} has {seg.entry.rows} documents in the manifest "
                f"but {rows} in its {part}; rebuild the index"
            )


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
