"""One committed version of an index, opened: its segments, filters and first-stage retrieval.

A ``View`` is what a ``Searcher`` reads: the manifest of one version and its open segments
(immutable files, held open so a later commit cannot pull them away), with the tombstones of
that version. ``retrieve`` is the dense first stage (per-segment vector search merged by
score); ``lexical`` the sparse one (BM25 or SPLADE, see ``searchkit.index.lexical``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from searchkit.backends.base import pad, search_params
from searchkit.backends.exact import top_k
from searchkit.backends.rescore import search_rescored
from searchkit.errors import CorruptIndex
from searchkit.index.lexical import SparseRetriever, Terms, TermStats
from searchkit.index.manifest import Manifest
from searchkit.index.segment import Segment, entry_parts, read_deletions
from searchkit.models import Document, Passage
from searchkit.query.filters import Filter, Where, compile_filter, matching

OPEN_ATTEMPTS = 5  # a writer may remove an old version's files while we open it: re-read
EXACT_ROWS = 20_000  # filters leaving at most this many rows in a segment are searched exactly
MAX_EF_SEARCH = 1024  # the widest HNSW search a selective filter or many deletions may ask
STRIDE = 1 << 40  # a hit's reference: segment position * STRIDE + row


@dataclass(frozen=True)
class View:
    """One committed version: its manifest and open segments."""

    manifest: Manifest
    segments: list[Segment]

    def allowed(self, where: Where | Filter | None) -> list[np.ndarray | None]:
        """Per segment, the mask of rows a query may return (None: every row); ``where`` may
        be compiled already (a sharded index compiles it once, against every shard's fields)."""
        if where is None:
            return [seg.live for seg in self.segments]
        flt = (
            where
            if isinstance(where, Filter)
            else compile_filter(where, merged_fields(seg.fields.schema for seg in self.segments))
        )
        masks = []
        for seg in self.segments:
            mask = matching(flt, seg.fields)
            masks.append(mask if seg.live is None else mask & seg.live)
        return masks

    def retrieve_passages(
        self,
        queries: np.ndarray,
        depth: int,
        allowed: list[np.ndarray | None],
        overrides: dict[str, int | None],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The top ``depth`` documents (scores, refs, refs of their best passages) over every
        segment, merged by score; a document scores as its best passage."""
        empty = np.full((len(queries), 0), -1)
        parts = [(np.full((len(queries), 0), -np.inf), empty, empty)]
        for position, (seg, allow) in enumerate(zip(self.segments, allowed, strict=True)):
            scores, rows, passages = _segment_docs(seg, queries, depth, allow, overrides)
            base = position * STRIDE
            parts.append(
                (
                    scores,
                    np.where(rows >= 0, base + rows, -1),
                    np.where(rows >= 0, base + passages, -1),
                )
            )
        scores, refs, prefs = (np.concatenate([p[i] for p in parts], axis=1) for i in range(3))
        order = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
        scores = np.take_along_axis(scores, order, 1)
        top = pad(scores, np.take_along_axis(refs, order, 1), depth)
        return (*top, pad(scores, np.take_along_axis(prefs, order, 1), depth)[1])

    def passages(
        self,
        pools: Sequence[Sequence[int]],
        best: Sequence[dict[int, int]],
        queries: np.ndarray | None,
        docs: dict[int, Document],
    ) -> list[dict[int, Passage]]:
        """Per query, the best passage of each document ``pools[q]`` indexed as several: the
        one of ``best[q]`` (the dense search's), else the best by the query vector and the
        stored vectors (a document only the lexical search found), else none."""
        out: list[dict[int, Passage]] = []
        for q, refs in enumerate(pools):
            found: dict[int, Passage] = {}
            for ref in refs:
                seg, row = self.segments[ref // STRIDE], ref % STRIDE
                first, last = int(seg.first_passage[row]), int(seg.first_passage[row + 1])
                if last - first < 2:
                    continue
                passage = best[q].get(ref) if q < len(best) else None
                if passage is not None:
                    passage %= STRIDE
                elif queries is not None:
                    passage = first + int(np.argmax(seg.vectors[first:last] @ queries[q]))
                else:
                    continue
                start, end = int(seg.passage_start[passage]), int(seg.passage_end[passage])
                text = docs[ref].passage()[start:end]
                found[ref] = Passage(passage - first, start, end, text)
            out.append(found)
        return out

    @functools.cached_property
    def sparse(self) -> SparseRetriever | None:
        """The lexical first stage of this version (None: the index has none)."""
        if not self.manifest.lexical:
            return None
        postings = [seg.postings for seg in self.segments]
        return SparseRetriever(self.manifest.lexical, postings, [s.live for s in self.segments])

    def retrieve_lexical(
        self,
        terms: Sequence[Terms],
        depth: int,
        allowed: list[np.ndarray | None],
        stats: Sequence[TermStats] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The top ``depth`` (scores, refs) by lexical score; rows no term matched are left out.
        ``stats``: each query's BM25 statistics over a whole sharded index (default: this
        version's own)."""
        assert self.sparse is not None
        scores = np.full((len(terms), depth), -np.inf)
        refs = np.full((len(terms), depth), -1, dtype=np.int64)
        for q, query in enumerate(terms):
            weighed = self.sparse.scores(query, stats[q] if stats is not None else None)
            top_scores, top_refs = _lexical_top(weighed, allowed, depth)
            scores[q, : len(top_refs)], refs[q, : len(top_refs)] = top_scores, top_refs
        return scores, refs

    def fetch(self, refs: np.ndarray) -> dict[int, Document]:
        """The documents of the hits ``refs``, read from each segment's docstore."""
        wanted = np.unique(refs[refs >= 0])
        docs: dict[int, Document] = {}
        for position in np.unique(wanted // STRIDE).tolist():
            mine = wanted[wanted // STRIDE == position]
            found = self.segments[position].docs.take(mine % STRIDE)
            docs.update(zip(mine.tolist(), found, strict=True))
        return docs


def _segment_docs(
    seg: Segment,
    queries: np.ndarray,
    depth: int,
    allow: np.ndarray | None,
    overrides: dict[str, int | None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One segment's top ``depth`` documents among ``allow`` (scores, rows, best passages):
    its passages are searched ever deeper until ``depth`` distinct documents come back."""
    allow_vectors = seg.passage_allow(allow)
    if not seg.chunked:
        scores, rows = _segment_top(seg, queries, depth, allow_vectors, overrides)
        return scores, rows, rows
    total = len(seg.passage_doc) if allow is None else int(np.count_nonzero(allow_vectors))
    if total == 0:
        return _collapse(
            seg.passage_doc,
            np.empty((len(queries), 0)),
            np.empty((len(queries), 0), dtype=np.int64),
            depth,
        )
    wanted = depth * 2
    while True:
        scores, rows = _segment_top(seg, queries, min(wanted, total), allow_vectors, overrides)
        out = _collapse(seg.passage_doc, scores, rows, depth)
        short = np.count_nonzero(out[1] >= 0, axis=1) < depth
        if wanted >= total or not short.any():
            return out
        wanted *= 4


def _collapse(
    passage_doc: np.ndarray, scores: np.ndarray, rows: np.ndarray, depth: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Passage hits (best first) to the top ``depth`` documents, each with its best passage."""
    out_scores = np.full((len(rows), depth), -np.inf)
    out_docs = np.full((len(rows), depth), -1, dtype=np.int64)
    out_rows = np.full((len(rows), depth), -1, dtype=np.int64)
    for q in range(len(rows)):
        order = np.argsort(-scores[q], kind="stable")
        found = rows[q][order]
        keep = found >= 0
        found, best = found[keep], scores[q][order][keep]
        docs = passage_doc[found]
        _, first = np.unique(docs, return_index=True)
        first = np.sort(first)[:depth]
        n = len(first)
        out_scores[q, :n], out_docs[q, :n], out_rows[q, :n] = best[first], docs[first], found[first]
    return out_scores, out_docs, out_rows


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


def _lexical_top(
    per_segment: list[np.ndarray], allowed: list[np.ndarray | None], depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """One query's best ``depth`` matching, allowed rows over every segment, as refs."""
    all_scores, all_refs = [np.empty(0)], [np.empty(0, dtype=np.int64)]
    for position, (scores, allow) in enumerate(zip(per_segment, allowed, strict=True)):
        keep = scores > 0 if allow is None else (scores > 0) & allow
        rows = np.flatnonzero(keep)
        if len(rows) > depth:
            rows = rows[np.argpartition(-scores[rows], depth - 1)[:depth]]
        all_scores.append(scores[rows])
        all_refs.append(position * STRIDE + rows)
    scores, refs = np.concatenate(all_scores), np.concatenate(all_refs)
    order = np.lexsort((refs, -scores))[:depth]  # best first; ties by segment and row
    return scores[order], refs[order]


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


def merged_fields(schemas: Iterable[pa.Schema]) -> dict[str, pa.DataType]:
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


def open_view(path: Path, verify: bool, previous: View | None = None) -> View:
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


def _load_view(path: Path, manifest: Manifest, verify: bool, previous: View | None) -> View:
    known = previous.manifest.files if previous is not None else {}
    opened = {seg.name: seg for seg in previous.segments} if previous is not None else {}
    fresh = [role for role, entry in manifest.files.items() if known.get(role) != entry]
    manifest.verify(path, checksums=verify, roles=fresh)
    deleted = read_deletions(path, manifest)
    segments = []
    for e in manifest.segments:
        if e.name in opened and all(e.role(part) not in fresh for part in entry_parts(manifest, e)):
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
    return View(manifest, segments)


def _check_counts(path: Path, seg: Segment) -> None:
    for part, rows in seg.counts().items():
        if rows != seg.entry.rows:
            raise CorruptIndex(
                f"{path}: segment {seg.name} has {seg.entry.rows} documents in the manifest "
                f"but {rows} in its {part}; rebuild the index"
            )
    for part, rows in seg.passage_counts().items():
        if rows != seg.entry.passages:
            raise CorruptIndex(
                f"{path}: segment {seg.name} has {seg.entry.passages} passages in the manifest "
                f"but {rows} in its {part}; rebuild the index"
            )
