"""Segments: the immutable parts of an index, and the deletions (tombstones) laid over them.

A segment folder ``segments/<name>/`` holds ``docs.parquet`` (row i is document i),
``vectors.f32`` (row i's normalized embedding, raw float32, memory-mapped: it lets ``compact``
and filtered search work without re-embedding), the vector index ``index.<suffix>`` (ids are
rows), ``fields.parquet`` (typed metadata columns for filters) and, when the index has a
lexical first stage, ``lexical.npz`` (the documents' terms, see ``searchkit.lexical``).
Nothing in a segment changes after it is committed; deleting or replacing a document
tombstones its row in the version's ``deletions/v<version>.parquet``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from searchkit.backends import VectorIndex, get_backend
from searchkit.errors import CorruptIndex
from searchkit.filters import fields_table
from searchkit.fsio import sha256_file
from searchkit.lexical import Postings, PostingsBuilder
from searchkit.manifest import FileEntry, Manifest, SegmentEntry
from searchkit.models import Document
from searchkit.store import DocStore, DocStoreWriter

ADD_ROWS = 65536  # vectors handed to the index per call
TRAIN_MAX = 100_000  # vectors sampled to train an IVF quantizer
DELETIONS_SCHEMA = pa.schema([("segment", pa.string()), ("row", pa.int64())])

Block = tuple[list[Document], np.ndarray]  # documents and their embeddings


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


def segment_paths(name: str, backend: str, lexical: bool = False) -> dict[str, str]:
    """Part -> file path relative to the index folder, for segment ``name``."""
    suffix = get_backend(backend).SUFFIX
    names = {
        "docs": "docs.parquet",
        "vectors": "vectors.f32",
        "index": f"index.{suffix}",
        "fields": "fields.parquet",
    }
    if lexical:
        names["lexical"] = "lexical.npz"
    return {part: f"segments/{name}/{file}" for part, file in names.items()}


def segment_parts(manifest: Manifest) -> tuple[str, ...]:
    """The parts every segment of ``manifest`` has."""
    return (*SEGMENT_PARTS, "lexical") if manifest.lexical else SEGMENT_PARTS


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
    paths = segment_paths(name, spec.backend, lexical is not None)
    local = {part: folder / Path(path).name for part, path in paths.items()}
    store = DocStoreWriter(local["docs"])
    ids: list[str] = []
    metadata: list[dict[str, Any]] = []
    try:
        with open(local["vectors"], "wb") as vectors:
            for docs, embedded in blocks:
                vectors.write(np.ascontiguousarray(embedded, dtype=np.float32).tobytes())
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
    if lexical is not None:
        lexical.build().save(local["lexical"])
    if on_indexing is not None:
        on_indexing()
    params = _index_vectors(read_vectors(local["vectors"], dim), spec, local["index"])
    files = {
        f"{name}/{part}": FileEntry(
            paths[part], local[part].stat().st_size, sha256_file(local[part])
        )
        for part in paths
    }
    return WrittenSegment(SegmentEntry(name, store.rows), files, params)


def read_vectors(path: Path, dim: int) -> np.ndarray:
    """The raw float32 vectors of a segment, memory-mapped read-only."""
    rows = path.stat().st_size // (4 * dim)
    if rows == 0:
        return np.empty((0, dim), dtype=np.float32)
    return np.memmap(path, dtype=np.float32, mode="r", shape=(rows, dim))


def _index_vectors(vectors: np.ndarray, spec: VectorSpec, out: Path) -> dict[str, Any]:
    """Build and save the vector index over ``vectors``; returns resolved parameters."""
    count, dim = vectors.shape
    index = get_backend(spec.backend).create(dim, spec.kind, spec.params, count)
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
            part: root / manifest.files[entry.role(part)].path for part in segment_parts(manifest)
        }
        self._backend = manifest.backend
        self._dim = manifest.dim
        self.docs = DocStore(self._files["docs"])
        self.vectors = read_vectors(self._files["vectors"], manifest.dim)
        self.fields = pq.read_table(self._files["fields"])
        lexical = manifest.lexical
        self.postings = Postings.load(self._files["lexical"], lexical["kind"]) if lexical else None
        self.live = _live(entry.rows, deleted)

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
        path = self._files["index"]
        try:
            return get_backend(b["name"]).load(path, self._dim, b["kind"], b["params"])
        except (RuntimeError, OSError) as err:  # FAISS and hnswlib raise RuntimeError
            raise CorruptIndex(f"{path}: cannot read the vector index ({err})") from None

    @property
    def name(self) -> str:
        return self.entry.name

    def counts(self) -> dict[str, int]:
        """Rows in each of the segment's parts (all must equal ``entry.rows``)."""
        return {
            "docstore": len(self.docs),
            "vectors": len(self.vectors),
            "vector index": len(self.index),
            "fields": self.fields.num_rows,
            **({"lexical terms": len(self.postings)} if self.postings is not None else {}),
        }


SEGMENT_PARTS = ("docs", "vectors", "index", "fields")


def _live(rows: int, deleted: np.ndarray) -> np.ndarray | None:
    """Boolean mask of the rows not deleted; None when none are."""
    if not len(deleted):
        return None
    live = np.ones(rows, dtype=bool)
    live[deleted] = False
    return live


def read_deletions(root: Path, manifest: Manifest) -> dict[str, np.ndarray]:
    """Segment name -> sorted deleted rows, from the version's deletions file (if any)."""
    entry = manifest.files.get("deletions")
    deleted = {s.name: np.empty(0, dtype=np.int64) for s in manifest.segments}
    if entry is None:
        return deleted
    table = pq.read_table(root / entry.path)
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
    """The live documents of ``segments`` with their stored vectors, in blocks (no re-embedding)."""
    for seg in segments:
        rows = np.arange(seg.entry.rows) if seg.live is None else np.flatnonzero(seg.live)
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            yield seg.docs.take(chunk), np.asarray(seg.vectors[chunk])
