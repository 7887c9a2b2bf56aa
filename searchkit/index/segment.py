"""Segments: the immutable parts of an index, and the deletions (tombstones) laid over them.

A segment folder ``segments/<name>/`` holds ``docs.parquet`` (row i is document i) and
``docs.rows`` (the same rows at byte offsets, for fetching hits; see ``searchkit.index.docstore``),
``vectors.f32`` (the normalized embeddings, raw float32, memory-mapped: they let merges,
``compact`` and filtered search work without re-embedding, and flat indexes search them in
place), the vector index ``index.<suffix>`` (ids are rows of ``vectors.f32``; none for a flat
index: ``searchkit.backends.is_float_view``), ``fields.parquet`` (typed metadata columns for
filters) and, when the index has a lexical first stage, ``lexical.npz`` (the documents' terms, see
``searchkit.index.lexical``).
Without ``passages.parquet`` vector row i is document i; with it (format 4, see
``searchkit.ingest.chunking``) vector row j is passage j of document ``doc[j]``
(the column is sorted),
a span ``[start, end)`` of the document's ``passage()`` text.
Nothing in a segment changes after it is committed; deleting or replacing a document
tombstones its row in the version's ``deletions/v<version>.parquet``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from searchkit.backends import VectorIndex, get_backend, is_float_view
from searchkit.backends.exact import ExactIndex
from searchkit.errors import CorruptIndex
from searchkit.index.docstore import DocStore, DocStoreWriter
from searchkit.index.fields import fields_table
from searchkit.index.fsio import sha256_file
from searchkit.index.lexical import Postings, PostingsBuilder
from searchkit.index.manifest import FileEntry, Manifest, SegmentEntry
from searchkit.index.passages import Spans
from searchkit.models import Document

ADD_ROWS = 65536  # vectors handed to the index per call
TRAIN_MAX = 100_000  # vectors sampled to train an IVF quantizer
DELETIONS_SCHEMA = pa.schema([("segment", pa.string()), ("row", pa.int64())])

PASSAGES_SCHEMA = pa.schema([("doc", pa.int64()), ("start", pa.int64()), ("end", pa.int64())])

# documents and their embeddings (one per document), or with their passages' spans (one
# embedding per passage)
Block = tuple[list[Document], np.ndarray] | tuple[list[Document], np.ndarray, Spans]


@dataclass(frozen=True)
class VectorSpec:
    """Which vector index to build: backend, kind and (unresolved) parameters."""

    backend: str
    kind: str
    params: dict[str, Any]


@dataclass(frozen=True)
class WrittenSegment:
    """A segment written to a temporary folder, with its file entries (paths as committed)."""

    entry: SegmentEntry
    files: dict[str, FileEntry]
    params: dict[str, Any]


def segment_paths(
    name: str, spec: VectorSpec, lexical: bool = False, passages: bool = False
) -> dict[str, str]:
    """Part -> file path relative to the index folder, for segment ``name``."""
    names = {"docs": "docs.parquet", "rows": "docs.rows", "vectors": "vectors.f32"}
    names["fields"] = "fields.parquet"
    if not is_float_view(spec.backend, spec.kind):
        names["index"] = f"index.{get_backend(spec.backend).SUFFIX}"
    if lexical:
        names["lexical"] = "lexical.npz"
    if passages:
        names["passages"] = "passages.parquet"
    return {part: f"segments/{name}/{file}" for part, file in names.items()}


def segment_parts(manifest: Manifest) -> tuple[str, ...]:
    """The parts every segment of ``manifest`` has (a flat index's have no vector index)."""
    b = manifest.backend
    parts = SEGMENT_PARTS if is_float_view(b.name, b.kind) else (*SEGMENT_PARTS, "index")
    return (*parts, "lexical") if manifest.lexical else parts


def entry_parts(manifest: Manifest, entry: SegmentEntry) -> tuple[str, ...]:
    """The parts of one segment: those of every segment, its passages if it has them, and
    the flat copy of its vectors an older flat index kept (unread)."""
    parts = segment_parts(manifest)
    optional = ("index", "passages", "rows")  # rows: docs.rows, absent from older indexes
    extra = [p for p in optional if p not in parts and entry.role(p) in manifest.files]
    return (*parts, *extra)


def write_segment(
    folder: Path,
    name: str,
    blocks: Iterable[Block],
    dim: int,
    spec: VectorSpec,
    on_indexing: Callable[[], None] | None = None,
    lexical: PostingsBuilder | None = None,
) -> WrittenSegment | None:
    """Write blocks of (documents, vectors) as segment ``name`` into the empty ``folder``,
    with the documents' terms when given a ``lexical`` builder.

    The caller moves ``folder`` to ``segments/<name>`` and commits a manifest naming it.
    Returns None when the blocks hold no document (there is no segment to commit).
    """
    paths = segment_paths(name, spec, lexical is not None, passages=True)
    local = {part: folder / Path(path).name for part, path in paths.items()}
    store = DocStoreWriter(local["docs"], local["rows"])
    ids: list[str] = []
    metadata: list[dict[str, Any]] = []
    spans: list[Spans] = []
    try:
        with open(local["vectors"], "wb") as vectors:
            for docs, embedded, *chunks in blocks:
                vectors.write(np.ascontiguousarray(embedded, dtype=np.float32).tobytes())
                if chunks:
                    spans.append(replace(chunks[0], doc=chunks[0].doc + store.rows))
                store.write(docs)
                if lexical is not None:
                    lexical.add(docs)
                ids.extend(d.id for d in docs)
                metadata.extend(d.metadata for d in docs)
    finally:
        store.close()
    if store.rows == 0:
        return None
    pq.write_table(fields_table(metadata, ids), local["fields"], compression="zstd")
    if spans:
        _write_passages(local["passages"], spans)
    else:  # blocks of one vector per document (a Ray ingest's parts): no passages file
        del paths["passages"]
    if lexical is not None:
        lexical.build().save(local["lexical"])
    if on_indexing is not None:
        on_indexing()
    params = _index_vectors(read_vectors(local["vectors"], dim), spec, local.get("index"))
    files = {
        f"{name}/{part}": FileEntry(
            paths[part], local[part].stat().st_size, sha256_file(local[part])
        )
        for part in paths
    }
    counts = {
        "passages": sum(len(s) for s in spans),
        "chunked": sum(s.chunked for s in spans),
        "truncated": sum(s.truncated for s in spans),
    }
    entry = SegmentEntry(name, store.rows, **counts) if spans else SegmentEntry(name, store.rows)
    return WrittenSegment(entry, files, params)


def _write_passages(path: Path, spans: list[Spans]) -> None:
    columns = {
        col: np.concatenate([getattr(s, col) for s in spans]) for col in ("doc", "start", "end")
    }
    pq.write_table(pa.table(columns, schema=PASSAGES_SCHEMA), path, compression="zstd")


# what each part of a segment holds, as ``disk_usage`` counts it
PART_KINDS = {"vectors": "vectors", "index": "vector index", "lexical": "lexical",
              "docs": "docstore", "rows": "docstore", "fields": "docstore",
              "passages": "docstore"}  # fmt: skip
DISK_KINDS = ("vectors", "vector index", "docstore", "lexical", "other")


def disk_usage(manifest: Manifest) -> dict[str, int]:
    """Bytes on disk by kind of data (``DISK_KINDS``; ``other``: deletions, dictionaries),
    from the manifest's file sizes."""
    usage = dict.fromkeys(DISK_KINDS, 0)
    for role, entry in manifest.files.items():
        usage[PART_KINDS.get(role.partition("/")[2], "other")] += entry.bytes
    return usage


def read_vectors(path: Path, dim: int) -> np.ndarray:
    """The raw float32 vectors of a segment, memory-mapped read-only."""
    rows = path.stat().st_size // (4 * dim)
    if rows == 0:
        return np.empty((0, dim), dtype=np.float32)
    return np.memmap(path, dtype=np.float32, mode="r", shape=(rows, dim))


def _index_vectors(vectors: np.ndarray, spec: VectorSpec, out: Path | None) -> dict[str, Any]:
    """Build and save the vector index over ``vectors`` (none to ``out`` for a flat index,
    which searches them in place); returns resolved parameters."""
    count, dim = vectors.shape
    index = get_backend(spec.backend).create(dim, spec.kind, spec.params, count)
    if out is None:
        return index.params
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(count, size=min(count, TRAIN_MAX), replace=False))
    index.train(vectors[sample])
    for start in range(0, count, ADD_ROWS):
        index.add(vectors[start : start + ADD_ROWS])
    index.save(out)
    return index.params


class Segment:
    """An open segment: documents, vectors, filter fields, tombstones; the vector index on use.

    Every file but the vector index is opened here (memory-mapped), so the segment stays
    readable after a later commit removes its names.
    """

    def __init__(
        self, root: Path, manifest: Manifest, entry: SegmentEntry, deleted: np.ndarray
    ) -> None:
        self.entry = entry
        self._files = {
            part: root / manifest.files[entry.role(part)].path
            for part in entry_parts(manifest, entry)
        }
        self._backend = manifest.backend
        self._dim = manifest.dim
        self.docs = DocStore(self._files["docs"], self._files.get("rows"))
        self.vectors = read_vectors(self._files["vectors"], manifest.dim)
        self.fields = read_table(self._files["fields"])
        lexical = manifest.lexical
        self.postings = Postings.load(self._files["lexical"], lexical.kind) if lexical else None
        self.live = _live(entry.rows, deleted)
        self.passage_doc, self.passage_start, self.passage_end = self._passages()
        # the first passage of each document (and the end of the last)
        self.first_passage = np.searchsorted(self.passage_doc, np.arange(entry.rows + 1))

    def _passages(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per vector row: its document row and its span (-1, -1: the whole document)."""
        path = self._files.get("passages")
        if path is None:  # one vector per document
            rows = np.arange(len(self.vectors), dtype=np.int64)
            return rows, np.full(len(rows), -1), np.full(len(rows), -1)
        table = read_table(path)
        return tuple(table.column(c).to_numpy() for c in ("doc", "start", "end"))  # type: ignore[return-value]

    @property
    def chunked(self) -> bool:
        """Whether some document has more than one vector."""
        return len(self.passage_doc) != self.entry.rows

    def passage_allow(self, allow: np.ndarray | None) -> np.ndarray | None:
        """A mask of document rows as a mask of vector rows."""
        return allow if allow is None or not self.chunked else allow[self.passage_doc]

    def with_deleted(self, entry: SegmentEntry, deleted: np.ndarray) -> Segment:
        """This open segment under another version's tombstones (the files are immutable)."""
        other = copy.copy(self)
        other.entry = entry
        other.live = _live(entry.rows, deleted)
        return other

    @functools.cached_property
    def index(self) -> VectorIndex:
        """The vector index, loaded on first use."""
        b = self._backend
        if is_float_view(b.name, b.kind):
            return ExactIndex.over(self.vectors, b.kind, dict(b.params))
        path = self._files["index"]
        try:
            return get_backend(b.name).load(path, self._dim, b.kind, dict(b.params))
        except (RuntimeError, OSError) as err:  # FAISS and hnswlib raise RuntimeError
            raise CorruptIndex(f"{path}: cannot read the vector index ({err})") from None

    @property
    def name(self) -> str:
        return self.entry.name

    def live_rows(self) -> np.ndarray:
        """The rows of the documents not deleted, in order."""
        return np.arange(self.entry.rows) if self.live is None else np.flatnonzero(self.live)

    def counts(self) -> dict[str, int]:
        """Rows in each of the segment's parts: those of one row per document must equal
        ``entry.rows``, those of one row per passage (when it has passages) ``entry.passages``."""
        per_vector = {"vectors": len(self.vectors), "vector index": len(self.index)}
        out = {
            "docstore": len(self.docs),
            "fields": self.fields.num_rows,
            **({"lexical terms": len(self.postings)} if self.postings is not None else {}),
        }
        if self.entry.passages is None:
            return {**out, **per_vector}
        documents = len(np.unique(self.passage_doc))  # every document has a passage
        return {**out, "documents with passages": documents}

    def passage_counts(self) -> dict[str, int]:
        """Rows of the parts holding one row per passage (all must equal ``entry.passages``)."""
        if self.entry.passages is None:
            return {}
        return {
            "vectors": len(self.vectors),
            "vector index": len(self.index),
            "passages": len(self.passage_doc),
        }


SEGMENT_PARTS = ("docs", "vectors", "fields")


def _live(rows: int, deleted: np.ndarray) -> np.ndarray | None:
    """Boolean mask of the rows not deleted; None when none are."""
    if not len(deleted):
        return None
    live = np.ones(rows, dtype=bool)
    live[deleted] = False
    return live


def read_table(path: Path) -> pa.Table:
    """A whole Parquet file (through ``ParquetFile``: ``pq.read_table`` imports pyarrow.dataset
    and with it pandas, ~1 s of a cold query)."""
    with pq.ParquetFile(path) as file:
        return file.read()


def read_deletions(root: Path, manifest: Manifest) -> dict[str, np.ndarray]:
    """Segment name -> sorted deleted rows, from the version's deletions file (if any)."""
    entry = manifest.files.get("deletions")
    deleted = {s.name: np.empty(0, dtype=np.int64) for s in manifest.segments}
    if entry is None:
        return deleted
    table = read_table(root / entry.path)
    segments = table.column("segment").to_numpy(zero_copy_only=False)
    rows = table.column("row").to_numpy()
    for name in deleted:
        deleted[name] = np.sort(rows[segments == name])
    return deleted


def write_deletions(path: Path, deleted: dict[str, np.ndarray]) -> None:
    """Write the tombstones of every segment to one small Parquet file."""
    names = [name for name, rows in deleted.items() for _ in range(len(rows))]
    rows = np.concatenate([np.asarray(r, dtype=np.int64) for r in deleted.values()] or [[]])
    table = pa.table({"segment": names, "row": rows.astype(np.int64)}, schema=DELETIONS_SCHEMA)
    pq.write_table(table, path)


def live_blocks(segments: Iterable[Segment], size: int) -> Iterator[Block]:
    """The live documents of ``segments`` with their stored vectors and passages, in blocks
    (no re-embedding)."""
    for seg in segments:
        rows = seg.live_rows()
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            first, last = seg.first_passage[chunk], seg.first_passage[chunk + 1]
            counts = last - first
            vec_rows = np.concatenate([np.arange(a, b) for a, b in zip(first, last, strict=True)])
            block_doc = np.repeat(np.arange(len(chunk)), counts)
            docs = seg.docs.take(chunk)
            span_start, span_end = seg.passage_start[vec_rows], seg.passage_end[vec_rows]
            if seg.entry.passages is None:  # an older segment: spans of whole documents
                span_start = np.zeros(len(chunk), dtype=np.int64)
                span_end = np.asarray([len(d.passage()) for d in docs], dtype=np.int64)
            spans = Spans(block_doc, span_start, span_end, int(np.count_nonzero(counts > 1)))
            yield docs, np.asarray(seg.vectors[vec_rows]), spans
