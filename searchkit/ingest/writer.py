"""Change an index in place: upsert and delete documents, compact; one atomic commit per call,
which also merges the segments its merge policy asks for (``searchkit.index.merge``)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from searchkit.index.commit import (
    collect_garbage,
    install_segment,
    segment_name,
    stage_deletions,
    staging_segment,
    switch,
)
from searchkit.index.lexical import PostingsBuilder, index_analyzer
from searchkit.index.lock import WriterLock
from searchkit.index.manifest import Manifest
from searchkit.index.merge import MergePolicy, PostingsMerger, SegmentSize, plan_merges
from searchkit.index.sections import ChunkingSection
from searchkit.index.segment import (
    Block,
    Segment,
    VectorSpec,
    live_blocks,
    read_deletions,
    write_segment,
)
from searchkit.index.sharded import is_sharded
from searchkit.inference.encoder import Encoder
from searchkit.inference.runtimes import from_manifest
from searchkit.inference.sparse import splade_for
from searchkit.ingest.changes import BLOCK_DOCS, CommitReport, check_documents
from searchkit.ingest.chunking import ChunkConfig, Chunker, text_window
from searchkit.ingest.readers import CorpusSource, as_source
from searchkit.models import Document
from searchkit.progress import BuildProgress

if TYPE_CHECKING:
    from searchkit.ingest.sharded import ShardedWriter


def embedded(
    blocks: Iterable[list[Document]],
    encoder: Encoder,
    advance: Callable[[int], None] | None = None,
    chunker: Chunker | None = None,
) -> Iterator[Block]:
    """Embed blocks of documents: (documents, normalized vectors) per block, or with a
    ``chunker`` (documents, one vector per passage, the passages' spans)."""
    for docs in blocks:
        if not docs:
            continue
        if chunker is None:
            yield docs, encoder.encode_documents([d.passage() for d in docs], advance)
            continue
        texts, spans = chunker.split(docs)
        step = _scaled(advance, len(texts), len(docs)) if advance is not None else None
        yield docs, encoder.encode_documents(texts, step), spans


def _scaled(advance: Callable[[int], None], passages: int, docs: int) -> Callable[[int], None]:
    """Progress in documents from progress in passages."""
    done = [0]

    def step(n: int) -> None:
        before = docs * done[0] // passages
        done[0] += n
        advance(docs * done[0] // passages - before)

    return step


def chunker_for(encoder: Encoder, config: ChunkingSection | None) -> Chunker:
    """The chunker of an index's recorded settings; none recorded (an index older than
    chunking): no chunking, but long documents are counted as truncated."""
    settings = (
        ChunkConfig(config.tokens, config.overlap, config.enabled)
        if config
        else ChunkConfig(text_window(encoder), enabled=False)
    )
    return Chunker(encoder.tokenizer, settings)


def in_blocks(docs: Iterable[Document], size: int = BLOCK_DOCS) -> Iterator[list[Document]]:
    it = iter(docs)
    while block := list(islice(it, size)):
        yield block


class IndexWriter:
    """The one writer of an index folder (an exclusive lock), changing it by atomic commits.

    Each ``upsert``, ``add_corpus``, ``delete`` and ``compact`` call is one commit: new files
    are written, then ``manifest.json`` is switched atomically; a crash or an error leaves the
    index as it was. Readers that opened an earlier version keep their view. A commit also
    merges the segments ``merge_policy`` asks for (default: the index's, recorded in its
    manifest), from their stored vectors and terms, in the same switch.

    Example::

        with IndexWriter.open("indexes/docs") as w:
            w.upsert([Document("a17", "new text", "Title", {"year": 2024})])
            w.delete(["b42"])
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch_size: int = 32,
        progress: bool = False,
        merge_policy: MergePolicy | None = None,
    ) -> None:
        self.path = Path(path)
        self.progress = progress
        self._lock = WriterLock(self.path).acquire()
        try:
            self.manifest = Manifest.read(self.path)
            self.manifest.verify(self.path, checksums=False)
            collect_garbage(self.path, self.manifest)  # leftovers of killed writers
        except BaseException:
            self._lock.release()
            raise
        self.encoder = Encoder(
            self.manifest.encoder.name,
            batch_size=batch_size,
            runtime=from_manifest(self.manifest.encoder),
        )
        self.splade = splade_for(self.manifest.lexical)
        self.merge_policy = merge_policy or self.manifest.merge or MergePolicy()
        self._state: _State | None = None

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        batch_size: int = 32,
        progress: bool = False,
        merge_policy: MergePolicy | None = None,
    ) -> IndexWriter | ShardedWriter:
        """Open the index at ``path`` for writing (a ``ShardedWriter``, with the same methods,
        for a sharded index's parent folder); ``IndexLocked`` if another writer has it.
        ``merge_policy`` overrides the index's for this writer's commits (not recorded)."""
        if is_sharded(path):
            from searchkit.ingest.sharded import ShardedWriter

            return ShardedWriter(
                path, cls, batch_size=batch_size, progress=progress, merge_policy=merge_policy
            )
        return cls(path, batch_size=batch_size, progress=progress, merge_policy=merge_policy)

    def close(self) -> None:
        """Release the lock; the writer cannot be used afterwards."""
        self._lock.release()

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def upsert(self, docs: Iterable[Document]) -> CommitReport:
        """Add documents with new ids, replace changed ones with known ids, skip unchanged ones."""
        docs = list(docs)
        check_documents(docs)
        return self._upsert(in_blocks(docs), None)

    def add_corpus(
        self,
        corpus: str | Path | CorpusSource,
        *,
        format: str | None = None,
        id_field: str | None = None,
        skip_invalid: bool = False,
        encoding: str = "utf-8",
    ) -> CommitReport:
        """Upsert a corpus of any format (``searchkit.ingest.readers``; a path, or a source
        from ``read_corpus``); a bad record fails the whole add and leaves the index unchanged.
        Unchanged documents (a folder's unchanged files) are not re-embedded."""
        reader = as_source(
            corpus, format, id_field=id_field, skip_invalid=skip_invalid, encoding=encoding
        )
        return self._upsert(in_blocks(reader), reader)

    def delete(self, ids: Iterable[str]) -> CommitReport:
        """Delete documents by id; ids the index does not have are reported, not an error."""
        started = time.monotonic()
        state = self._current()
        wanted = list(dict.fromkeys(ids))
        found = [state.where[i] for i in wanted if i in state.where]
        missing = tuple(i for i in wanted if i not in state.where)
        if not found:
            return self._report(started, missing=missing)
        merges = self._commit(state.deletions_with(found), added=None)
        return self._report(started, deleted=len(found), missing=missing, **merges)

    def compact(self) -> CommitReport:
        """Rewrite the live documents into one segment without tombstones (no re-embedding)."""
        started = time.monotonic()
        m = self.manifest
        if m.deleted == 0 and len(m.segments) <= 1:
            return self._report(started)
        merges = self._commit(self._current().deleted, added=None, everything=True)
        return self._report(started, purged=m.deleted, **merges)

    def _upsert(
        self, blocks: Iterable[list[Document]], reader: CorpusSource | None
    ) -> CommitReport:
        started = time.monotonic()
        state = self._current()
        m = self.manifest
        counts: dict[str, Any] = {"added": 0, "replaced": 0, "unchanged": 0}
        replaced: list[tuple[int, int]] = []

        def changed(block: list[Document], bar: BuildProgress) -> list[Document]:
            keep = state.changed(block)
            keep_ids = {d.id for d in keep}
            for doc in block:
                where = state.where.get(doc.id)
                if doc.id not in keep_ids:
                    counts["unchanged"] += 1
                elif where is None:
                    counts["added"] += 1
                else:
                    counts["replaced"] += 1
                    replaced.append(where)
            if reader is not None:
                bar.read_to(reader.position)
            return keep

        name = segment_name(m.next_segment)
        staged = staging_segment(self.path, name)
        try:
            with BuildProgress(reader.size if reader else 0, enabled=self.progress) as bar:
                new_docs = (changed(block, bar) for block in blocks)
                written = write_segment(
                    staged,
                    name,
                    embedded(new_docs, self.encoder, bar.advance, self._chunker()),
                    m.dim,
                    self._spec(),
                    lambda: bar.phase("indexing"),
                    self._lexical(),
                )
            if written is not None:
                install_segment(self.path, staged, name)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        if written is not None:
            e = written.entry
            counts.update(passages=e.passages or e.rows, chunked=e.chunked, truncated=e.truncated)
        if reader is not None:
            counts["skipped_count"] = reader.skipped_count
            counts["skipped"] = tuple(reader.skipped)
        if written is not None or replaced:
            counts.update(self._commit(state.deletions_with(replaced), added=written))
        return self._report(started, **counts)

    def _chunker(self) -> Chunker:
        return chunker_for(self.encoder, self.manifest.chunking)

    def _spec(self) -> VectorSpec:
        b = self.manifest.backend
        params = dict(b.params)
        if "nlist" in params:  # IVF lists are sized for each segment's own row count
            params["nlist"] = None
        return VectorSpec(b.name, b.kind, params)

    def _lexical(self) -> PostingsBuilder | None:
        config = self.manifest.lexical
        if not config:
            return None
        analyzer = index_analyzer(config, self.path) if config.kind == "bm25" else None
        return PostingsBuilder(config, self.splade, analyzer)  # upserts keep the index's analyzer

    def _current(self) -> _State:
        if self._state is None:
            self._state = _State.load(self.path, self.manifest)
        return self._state

    def _commit(
        self, deleted: dict[str, np.ndarray], added: Any, everything: bool = False
    ) -> dict[str, int]:
        """Switch to the next version: the current segments with ``deleted`` rows tombstoned,
        plus the ``added`` segment (installed, not yet named), then merged as the policy asks
        (``everything``: all into one, as ``compact``). Returns the merge counts."""
        m = self.manifest
        version = m.version + 1
        draft = replace(
            m,
            segments=[replace(s, deleted=len(deleted.get(s.name, ()))) for s in m.segments],
            files={role: f for role, f in m.files.items() if role != "deletions"},
        )
        if added is not None:
            draft = replace(
                draft,
                segments=[*draft.segments, added.entry],
                files={**draft.files, **added.files},
                next_segment=m.next_segment + 1,
            )
        if everything:
            groups = [tuple(s.name for s in draft.segments)]
        else:
            sizes = [SegmentSize(s.name, s.rows, s.deleted) for s in draft.segments]
            groups = plan_merges(sizes, self.merge_policy)
        counts = {"rewritten": 0, "merged": 0}
        for group in groups:
            draft, deleted = self._merge(draft, deleted, group, counts)
        files = dict(draft.files)
        if (entry := stage_deletions(self.path, version, deleted)) is not None:
            files["deletions"] = entry
        self.manifest = replace(
            draft,
            version=version,
            documents=sum(s.rows - s.deleted for s in draft.segments),
            deleted=sum(s.deleted for s in draft.segments),
            files=files,
        )
        switch(self.path, self.manifest)
        self._state = None
        return counts

    def _merge(
        self,
        draft: Manifest,
        deleted: dict[str, np.ndarray],
        group: tuple[str, ...],
        counts: dict[str, int],
    ) -> tuple[Manifest, dict[str, np.ndarray]]:
        """Write the live documents of the ``group`` of segments as one new segment (stored
        vectors and terms: nothing re-embedded) and put it in their place in ``draft``."""
        none = np.empty(0, dtype=np.int64)
        sources = [
            Segment(self.path, draft, e, deleted.get(e.name, none))
            for e in draft.segments
            if e.name in group
        ]
        name = segment_name(draft.next_segment)
        staged = staging_segment(self.path, name)
        lexical = None
        if draft.lexical:
            lexical = PostingsMerger([(seg.postings, seg.live_rows()) for seg in sources])
        try:
            blocks = live_blocks(sources, BLOCK_DOCS)
            written = write_segment(staged, name, blocks, draft.dim, self._spec(), lexical=lexical)
            if written is not None:
                install_segment(self.path, staged, name)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        at = next(i for i, e in enumerate(draft.segments) if e.name in group)
        segments = [e for e in draft.segments if e.name not in group]
        files = {r: f for r, f in draft.files.items() if r.partition("/")[0] not in group}
        if written is not None:
            segments.insert(at, written.entry)
            files.update(written.files)
            counts["rewritten"] += written.entry.rows
        counts["merged"] += len(group)
        kept = {n: rows for n, rows in deleted.items() if n not in group}
        merged = replace(draft, segments=segments, files=files, next_segment=draft.next_segment + 1)
        return merged, kept

    def _report(self, started: float, **counts: object) -> CommitReport:
        m = self.manifest
        return CommitReport(
            self.path,
            m.version,
            documents=m.documents,
            tombstones=m.deleted,
            seconds=time.monotonic() - started,
            **counts,
        )


@dataclass
class _State:
    """The writer's view of the current version: open segments and where each live id is."""

    segments: list[Segment]
    deleted: dict[str, np.ndarray]
    where: dict[str, tuple[int, int]]  # id -> (segment position, row)

    @classmethod
    def load(cls, root: Path, manifest: Manifest) -> _State:
        deleted = read_deletions(root, manifest)
        segments = [Segment(root, manifest, s, deleted[s.name]) for s in manifest.segments]
        where: dict[str, tuple[int, int]] = {}
        for position, seg in enumerate(segments):
            ids = seg.docs.ids()
            rows = range(len(ids)) if seg.live is None else np.flatnonzero(seg.live).tolist()
            for row in rows:
                where[ids[row]] = (position, row)
        return cls(segments, deleted, where)

    def changed(self, docs: Sequence[Document]) -> list[Document]:
        """The documents that are new or differ from the live document with their id."""
        known = [(d, self.where[d.id]) for d in docs if d.id in self.where]
        same: set[str] = set()
        for position, seg in enumerate(self.segments):
            mine = [(d, row) for d, (p, row) in known if p == position]
            if mine:
                stored = seg.docs.take([row for _, row in mine])
                same.update(d.id for (d, _), old in zip(mine, stored, strict=True) if _same(d, old))
        return [d for d in docs if d.id not in same]

    def deletions_with(self, rows: Iterable[tuple[int, int]]) -> dict[str, np.ndarray]:
        """This version's tombstones plus ``rows`` ((segment position, row) pairs)."""
        extra: dict[str, list[int]] = {}
        for position, row in rows:
            extra.setdefault(self.segments[position].name, []).append(row)
        return {
            seg.name: np.union1d(
                self.deleted[seg.name], np.asarray(extra.get(seg.name, []), dtype=np.int64)
            )
            for seg in self.segments
        }


def _same(a: Document, b: Document) -> bool:
    return (a.text, a.title, json.dumps(a.metadata, sort_keys=True)) == (
        b.text,
        b.title,
        json.dumps(b.metadata, sort_keys=True),
    )
