"""Segment merging: which segments a policy merges (a pure function of their sizes), and the
merged lexical postings, taken from the stored ones (no re-tokenizing, no SPLADE re-encoding).

``plan_merges`` follows Lucene's TieredMergePolicy in spirit: segments are sized by their live
documents and grouped in tiers (tier t holds sizes in ``[floor * w**t, floor * w**(t+1))``,
``w = max_merge_at_once``; below ``floor_docs`` every segment counts as the floor). A tier with
more than ``segments_per_tier`` segments has its smallest ones merged, up to
``max_merge_at_once`` of them and never past ``max_segment_docs``; the result is sized and
placed again, so merges cascade within one plan, and a document is rewritten about once per
tier: the segment count stays ``O(segments_per_tier * log_w(documents / floor))``. A segment
whose deleted share exceeds ``deletes_pct`` is rewritten (alone, if no tier merge takes it); a
segment with no live document is dropped.

The writer (``searchkit.ingest.writer``) applies a plan inside the commit that called for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from searchkit.index.lexical import Postings
from searchkit.index.sections import MergePolicy

__all__ = ["MergePolicy", "PostingsMerger", "SegmentSize", "plan_merges"]


@dataclass(frozen=True)
class SegmentSize:
    """What the policy knows of a segment: its name, rows and tombstoned rows."""

    name: str
    rows: int
    deleted: int = 0

    @property
    def live(self) -> int:
        return self.rows - self.deleted


def plan_merges(segments: Sequence[SegmentSize], policy: MergePolicy) -> list[tuple[str, ...]]:
    """The merges ``policy`` asks for: groups of segment names (in ``segments``' order), each
    to be rewritten as one segment of their live documents (none: the group is dropped)."""
    if policy.kind == "none":
        return []
    dead = tuple(s.name for s in segments if s.live == 0)
    # pool: (live documents, names merged into it); segments too big for a tier merge stay out
    pool = [(s.live, (s.name,)) for s in segments if 0 < s.live < policy.max_segment_docs]
    full: set[int] = set()  # tiers whose smallest segments cannot be merged (size cap)
    while (tier := _crowded(pool, policy, full)) is not None:
        members = sorted(p for p in pool if _tier(p[0], policy) == tier)  # smallest first
        chosen, total = [], 0
        for size, names in members[: policy.max_merge_at_once]:
            if total + size > policy.max_segment_docs:
                break
            chosen.append((size, names))
            total += size
        if len(chosen) < 2:
            full.add(tier)
            continue
        pool = [p for p in pool if p not in chosen]
        pool.append((total, tuple(n for _, names in chosen for n in names)))
    order = {s.name: i for i, s in enumerate(segments)}
    groups = [tuple(sorted(names, key=order.__getitem__)) for _, names in pool if len(names) > 1]
    merged = {n for g in groups for n in g}
    limit = policy.deletes_pct / 100
    groups += [
        (s.name,)
        for s in segments
        if s.live and s.name not in merged and s.deleted / s.rows > limit
    ]
    if dead:
        groups.append(dead)
    return sorted(groups, key=lambda g: order[g[0]])


def _tier(live: int, policy: MergePolicy) -> int:
    ratio = max(live, policy.floor_docs) / policy.floor_docs
    # the epsilon keeps exact powers (floor * w**t) in tier t despite rounding
    return int(math.log(ratio, policy.max_merge_at_once) + 1e-9)


def _crowded(
    pool: list[tuple[int, tuple[str, ...]]], policy: MergePolicy, full: set[int]
) -> int | None:
    """The lowest tier holding more than ``segments_per_tier`` segments (not ``full``)."""
    counts: dict[int, int] = {}
    for size, _ in pool:
        tier = _tier(size, policy)
        counts[tier] = counts.get(tier, 0) + 1
    crowded = [t for t, n in counts.items() if n > policy.segments_per_tier and t not in full]
    return min(crowded, default=None)


class PostingsMerger:
    """The postings of a merged segment from its sources' stored postings and kept rows.

    Stands in for a ``PostingsBuilder`` in ``write_segment``: ``add`` receives the merged
    documents block by block (only counted: the terms come from the sources), ``build`` joins
    the sources' kept rows in order, renumbered, over one vocabulary without unused terms.
    """

    def __init__(self, sources: Sequence[tuple[Postings, np.ndarray]]) -> None:
        self._sources = list(sources)
        self._added = 0

    def add(self, docs: Sequence[object]) -> None:
        self._added += len(docs)

    def build(self) -> Postings:
        expected = sum(len(kept) for _, kept in self._sources)
        if self._added != expected:  # the blocks and the sources disagree: a bug, not bad input
            raise RuntimeError(f"merged {self._added} documents but {expected} postings rows")
        bm25 = self._sources[0][0].vocab is not None
        vocab: dict[str, int] = {}
        rows, cols, values, lengths = [], [], [], []
        offset, width = 0, 0
        for postings, kept in self._sources:
            width = max(width, len(postings.indptr) - 1)
            new_row = np.full(len(postings), -1, dtype=np.int64)
            new_row[kept] = offset + np.arange(len(kept))
            col_of = np.repeat(np.arange(len(postings.indptr) - 1), np.diff(postings.indptr))
            if bm25:
                terms = sorted(postings.vocab, key=postings.vocab.__getitem__)
                remap = np.asarray([vocab.setdefault(t, len(vocab)) for t in terms], np.int64)
                col_of = remap[col_of] if len(remap) else col_of
            keep = new_row[postings.rows] >= 0
            rows.append(new_row[postings.rows][keep])
            cols.append(col_of[keep])
            values.append(postings.values[keep])
            lengths.append(postings.lengths[kept])
            offset += len(kept)
        return _postings(rows, cols, values, lengths, vocab if bm25 else width)


def _postings(
    rows: list[np.ndarray],
    cols: list[np.ndarray],
    values: list[np.ndarray],
    lengths: list[np.ndarray],
    vocab: dict[str, int] | int,
) -> Postings:
    """CSC postings of COO parts over a BM25 ``vocab`` (terms no kept row has are left out) or
    SPLADE's columns (``vocab``: their count)."""
    row, col, value = np.concatenate(rows), np.concatenate(cols), np.concatenate(values)
    if isinstance(vocab, int):
        width, vocab = vocab, None
    else:  # renumber the used terms 0..n-1, in first-seen order
        width = len(vocab)
        used = np.zeros(width, dtype=bool)
        used[col] = True
        renumber = np.cumsum(used) - 1
        terms = sorted(vocab, key=vocab.__getitem__)
        vocab = {t: int(renumber[i]) for i, t in enumerate(terms) if used[i]}
        col, width = renumber[col], len(vocab)
    order = np.lexsort((row, col))
    indptr = np.zeros(width + 1, dtype=np.int64)
    np.cumsum(np.bincount(col, minlength=width), out=indptr[1:])
    return Postings(indptr, row[order].astype(np.int32), value[order], np.concatenate(lengths),
                    vocab)  # fmt: skip
