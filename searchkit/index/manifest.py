"""The manifest.json of an index folder: what is in it, and checks that it is whole."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from searchkit.errors import CorruptIndex, IncompatibleIndex, IndexNotFound
from searchkit.index.fsio import sha256_file, write_atomic
from searchkit.index.sections import (
    SECTIONS,
    BackendSection,
    ChunkingSection,
    CorpusSection,
    EncoderSection,
    LexicalSection,
    MergePolicy,
)

# 2: segments and deletions (living indexes); 3: lexical first stage; 4: passages (chunking)
FORMAT_VERSION = 4
# a version 2 index is a version 3 one without lexical data, a version 3 one a version 4 one
# whose segments have one vector per document
READABLE_VERSIONS = (2, 3, 4)
MANIFEST = "manifest.json"
# the "kind" of a sharded index's parent manifest (searchkit.index.sharded)
SHARDED = "sharded"
# sections an index may lack (null or absent): no lexical first stage, built before chunking,
# before merging (the default policy)
OPTIONAL_SECTIONS = ("lexical", "chunking", "merge")


@dataclass(frozen=True)
class FileEntry:
    """A data file of the index, relative to the index folder."""

    path: str
    bytes: int
    sha256: str

    @classmethod
    def of(cls, root: Path, relative: str) -> FileEntry:
        full = root / relative
        return cls(relative, full.stat().st_size, sha256_file(full))


@dataclass(frozen=True)
class SegmentEntry:
    """An immutable part of the index: ``rows`` documents, ``deleted`` of them tombstoned.

    ``passages`` counts its vectors when it has a passages file (None: one per document);
    ``chunked`` the documents split into several passages, ``truncated`` those longer than the
    encoder reads that were embedded whole, so only their start (indexed with chunking off).
    """

    name: str
    rows: int
    deleted: int = 0
    passages: int | None = None
    chunked: int = 0
    truncated: int = 0

    def role(self, part: str) -> str:
        """The ``files`` key of one of this segment's files (docs, vectors, index, fields)."""
        return f"{self.name}/{part}"


@dataclass(frozen=True)
class Manifest:
    """Everything needed to open, check and explain an index.

    ``version`` counts commits to this folder. The documents live in immutable ``segments``;
    deleted or replaced ones are tombstoned in the ``deletions`` file until ``compact``.
    ``files`` maps a role (``s000001/docs``, ``deletions``) to its file. ``documents`` counts
    live documents. Scores are cosine similarities of normalized embeddings (inner product).
    """

    version: int
    encoder: EncoderSection
    reranker: str
    backend: BackendSection
    documents: int
    corpus: CorpusSection
    files: dict[str, FileEntry]
    searchkit_version: str
    segments: list[SegmentEntry] = field(default_factory=list)
    deleted: int = 0
    next_segment: int = 1
    # the sparse first stage (searchkit.index.lexical), if any
    lexical: LexicalSection | None = None
    # how documents are split into passages (searchkit.ingest.chunking); None: never, not counted
    chunking: ChunkingSection | None = None
    # how the writer merges segments after a commit (searchkit.index.merge); None: an index
    # older than merge policies, which merges by the default one (and rewrites unchanged)
    merge: MergePolicy | None = None
    # the corpus' language (searchkit.analysis.detect_language, or as given); None: an index
    # older than language detection, English
    language: str | None = None
    similarity: str = "cosine"
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    format_version: int = FORMAT_VERSION

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    def passage_counts(self) -> dict[str, int]:
        """Vectors (passages), documents chunked and truncated, over every segment (the rows of
        deleted documents included)."""
        return {
            "passages": sum(s.rows if s.passages is None else s.passages for s in self.segments),
            "chunked": sum(s.chunked for s in self.segments),
            "truncated": sum(s.truncated for s in self.segments),
        }

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON data (what manifest.json holds)."""
        data = asdict(self)
        for key in ("language", "merge"):  # older indexes stay as they were written
            if data[key] is None:
                del data[key]
        for key in SECTIONS:
            if (section := getattr(self, key)) is not None:
                data[key] = section.to_dict()
        return data

    def write(self, folder: Path) -> None:
        """Atomically write (or replace) ``folder/manifest.json``."""
        data = {**self.to_dict(), "format_version": FORMAT_VERSION}  # what this code writes
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        write_atomic(folder / MANIFEST, text.encode())

    @classmethod
    def read(cls, folder: str | Path) -> Manifest:
        """Read and check the manifest of an index folder.

        Raises:
            IndexNotFound: no manifest there.
            IncompatibleIndex: written in another format version.
            CorruptIndex: not a readable manifest.
        """
        path = Path(folder) / MANIFEST
        if not path.is_file():
            raise IndexNotFound(
                f"no searchkit index at {folder} ({MANIFEST} not found); build one first"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CorruptIndex(f"{path}: not valid JSON ({err}); rebuild the index") from None
        found = data.get("format_version") if isinstance(data, dict) else None
        if found not in READABLE_VERSIONS:
            raise IncompatibleIndex(
                f"{path}: index format version {found!r}, but this searchkit reads versions "
                f"{READABLE_VERSIONS[0]} to {FORMAT_VERSION}; rebuild the index"
            )
        if isinstance(data, dict) and data.get("kind") == SHARDED and cls is Manifest:
            raise IncompatibleIndex(
                f"{folder} is a sharded index (its shards are listed in {MANIFEST}), not an "
                "ordinary one: read its manifest with ShardedManifest.read, change it with "
                "IndexWriter.open (which returns a ShardedWriter)"
            )
        try:
            data["files"] = {role: FileEntry(**entry) for role, entry in data["files"].items()}
            data["segments"] = [SegmentEntry(**entry) for entry in data["segments"]]
            for key, section in SECTIONS.items():
                if data.get(key) is not None or key not in OPTIONAL_SECTIONS:
                    data[key] = section.from_dict(data[key])
            return cls(**data)
        except (KeyError, TypeError, AttributeError) as err:
            raise CorruptIndex(f"{path}: malformed manifest ({err}); rebuild the index") from None

    def verify(
        self, folder: Path, *, checksums: bool = True, roles: Iterable[str] | None = None
    ) -> None:
        """Check that every file (or those of ``roles``) exists with its recorded size, and
        sha256 when ``checksums``.

        Raises:
            CorruptIndex: naming the first file that is missing or differs.
        """
        for role in self.files if roles is None else roles:
            entry = self.files[role]
            path = folder / entry.path
            if not path.is_file():
                raise CorruptIndex(f"{path}: {role} file is missing; rebuild the index")
            size = path.stat().st_size
            if size != entry.bytes:
                raise CorruptIndex(
                    f"{path}: {role} file has {size} bytes, manifest says {entry.bytes}; "
                    "the file was changed or truncated: rebuild the index"
                )
            if checksums and sha256_file(path) != entry.sha256:
                raise CorruptIndex(
                    f"{path}: {role} file checksum mismatch; the file was changed or damaged: "
                    "rebuild the index"
                )
