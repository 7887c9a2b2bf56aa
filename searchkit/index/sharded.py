"""Sharded indexes: a parent folder whose manifest lists shards, each an ordinary index.

Layout::

    indexes/big/
      manifest.json                       kind "sharded": the shards, every file, the counts
      shards/v000001/shard-0000/          an ordinary searchkit index (manifest, segments/)
      shards/v000001/shard-0001/ ...
      shards/v000003/shard-0001/          shard-0001 as changed by parent version 3

The parent manifest is written last, atomically, once every shard is complete; it records the
sha256 of each shard's files, so checking it checks everything. ``v000001`` is the parent
version that wrote a shard folder; once the parent names a folder, the folder never changes.
A change (``searchkit.ingest.sharded.ShardedWriter``) writes each shard it touches as a new
folder of the next parent version (the old folder's files hard-linked, then changed by an
ordinary ``IndexWriter``), switches the parent manifest, which pins each shard's folder and
version, then removes the folders it no longer names; replacing the index (``--force``) writes
every shard anew the same way. A reader opens the folders the parent pins, so it sees the
whole of a change or none of it. ``Searcher.open`` on a parent returns a ``ShardedSearcher``
(see ``searchkit.distributed.fanout``).

Documents are placed by ``Routing``: a stable hash of the id picks its shard, so a writer
knows where an id lives. Indexes written before it (block placement, ``routing`` null) can be
searched but not changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from searchkit._version import __version__
from searchkit.backends import get_backend
from searchkit.backends.base import resolve_params
from searchkit.errors import CorruptIndex, IncompatibleIndex
from searchkit.index.commit import install_segment, publish, remove, segment_name, staging_segment
from searchkit.index.fsio import fsync_dir, fsync_tree, sha256_file
from searchkit.index.lexical import PostingsBuilder
from searchkit.index.manifest import MANIFEST, SHARDED, FileEntry, Manifest, SegmentEntry
from searchkit.index.sections import (
    BackendSection,
    ChunkingSection,
    CorpusSection,
    EncoderSection,
    LexicalSection,
)
from searchkit.index.segment import Block as Embedded
from searchkit.index.segment import VectorSpec, write_segment

SHARDS = "shards"
# the routing scheme: the first 8 bytes of the blake2b digest of the UTF-8 id, big-endian, modulo
# the shard count; a new scheme gets a new name, so an index never changes its placement silently
HASH_SCHEME = "blake2b-8"
HASH_VERSION = 1


@dataclass(frozen=True)
class Routing:
    """Where each id lives: shard ``hash(id) % shards`` by ``scheme`` (version ``version``)."""

    shards: int
    scheme: str = HASH_SCHEME
    version: int = HASH_VERSION

    def shard_of(self, doc_id: str) -> int:
        """The position of the shard that holds (or will hold) ``doc_id``."""
        digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.shards


@dataclass(frozen=True)
class ShardEntry:
    """One shard: an ordinary index at ``path`` (relative to the parent), at its manifest
    ``version`` (pinned: a reader checks it), and for block placement its corpus blocks."""

    name: str
    path: str
    documents: int
    blocks: list[int] = field(default_factory=list)
    version: int = 1


@dataclass(frozen=True)
class ShardedManifest(Manifest):
    """The manifest of a sharded index's parent folder.

    It has every field of ``Manifest``, about the whole index: ``documents`` over all shards,
    ``segments`` named ``shard-0000/s000001``, and ``files`` holding every file of every shard
    (and each shard's manifest.json), with paths relative to the parent. ``shards`` lists the
    shard folders; ``ingest`` says how the index was built (workers, blocks, seconds);
    ``routing`` where each id lives (None: placed by corpus blocks, an index that cannot change).
    """

    kind: str = SHARDED
    shards: list[ShardEntry] = field(default_factory=list)
    ingest: dict[str, Any] = field(default_factory=dict)
    routing: Routing | None = None

    def to_dict(self) -> dict[str, Any]:
        """As ``Manifest.to_dict``; a block-placed index (no routing) stays as it was written."""
        data = super().to_dict()
        if data.get("routing") is None:
            data.pop("routing", None)
        return data

    @classmethod
    def read(cls, folder: str | Path) -> ShardedManifest:
        """Read and check a sharded parent manifest (``IncompatibleIndex`` if it is not one)."""
        if not is_sharded(folder):
            raise IncompatibleIndex(f"{folder} is not a sharded index")
        manifest = super().read(folder)
        try:
            routing = manifest.routing and Routing(**manifest.routing)  # type: ignore[arg-type]
            shards = [ShardEntry(**s) for s in manifest.shards]  # type: ignore[arg-type]
            return replace(manifest, shards=shards, routing=routing)
        except TypeError as err:
            raise CorruptIndex(
                f"{folder}: malformed shard list ({err}); rebuild the index"
            ) from None

    @classmethod
    def create(
        cls, root: Path, version: int, shards: list[tuple[ShardEntry, Manifest]], **fields: Any
    ) -> ShardedManifest:
        """The parent manifest over ``shards`` (entry and manifest), written under ``root``."""
        files: dict[str, FileEntry] = {}
        segments: list[SegmentEntry] = []
        for entry, m in shards:
            files[f"{entry.name}/manifest"] = FileEntry.of(root, f"{entry.path}/{MANIFEST}")
            for role, f in m.files.items():
                files[f"{entry.name}/{role}"] = replace(f, path=f"{entry.path}/{f.path}")
            segments += [replace(s, name=f"{entry.name}/{s.name}") for s in m.segments]
        first = shards[0][1]
        params = [m.backend.params for _, m in shards]
        # IVF sizes its lists per shard: keep the parameters every shard shares
        common = {k: v for k, v in params[0].items() if all(p.get(k) == v for p in params)}
        return cls(
            version=version,
            encoder=first.encoder,
            reranker=first.reranker,
            backend=replace(first.backend, params=common),
            documents=sum(m.documents for _, m in shards),
            deleted=sum(m.deleted for _, m in shards),
            chunking=first.chunking,
            lexical=first.lexical,
            language=first.language,
            files=files,
            searchkit_version=__version__,
            segments=segments,
            shards=[replace(e, documents=m.documents, version=m.version) for e, m in shards],
            **fields,
        )


def is_sharded(path: str | Path) -> bool:
    """Whether ``path`` holds the parent folder of a sharded index."""
    try:
        data = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("kind") == SHARDED


def read_manifest(path: str | Path) -> Manifest:
    """The manifest of an index folder: a ``ShardedManifest`` for a sharded parent."""
    return ShardedManifest.read(path) if is_sharded(path) else Manifest.read(path)


def analysis_root(path: str | Path, manifest: Manifest) -> Path:
    """The folder whose ``analysis/`` holds an index's analyzer files (its user dictionary):
    the index folder, or for a sharded parent its first shard's (each shard has a copy)."""
    if isinstance(manifest, ShardedManifest) and manifest.shards:
        return Path(path) / manifest.shards[0].path
    return Path(path)


def generation(version: int) -> str:
    """The folder under ``shards/`` holding the shards of parent version ``version``."""
    return f"v{version:06d}"


@dataclass(frozen=True)
class ShardHeader:
    """What every shard of an index records: models, vector index, corpus."""

    encoder: EncoderSection
    reranker: str
    spec: VectorSpec
    corpus: CorpusSection
    # searchkit.ingest.chunking settings
    chunking: ChunkingSection | None = None
    # BM25 (searchkit.index.lexical) and the corpus language, as a plain build records them
    lexical: LexicalSection | None = None
    language: str | None = None


def write_shard(
    folder: Path,
    blocks: Iterable[Embedded],
    header: ShardHeader,
    lexical: PostingsBuilder | None = None,
    files: dict[str, FileEntry] | None = None,
) -> Manifest:
    """Write an ordinary one-segment index into the new, empty ``folder`` from embedded blocks,
    with the documents' terms when given a ``lexical`` builder (``header.lexical``'s) and
    ``files`` already in ``folder`` (its copy of the analyzer's user dictionary).

    Returns its manifest (written last). A shard with no documents is an index with no segment.
    """
    name = segment_name(1)
    staged = staging_segment(folder, name)
    spec = header.spec
    try:
        written = write_segment(staged, name, blocks, header.encoder.dim, spec, lexical=lexical)
        if written is not None:
            install_segment(folder, staged, name)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    if written is not None:
        params = written.params
    else:
        kinds = get_backend(spec.backend).KINDS
        params = resolve_params(spec.backend, kinds, spec.kind, spec.params, 1)
    manifest = Manifest(
        version=1,
        encoder=header.encoder,
        reranker=header.reranker,
        backend=BackendSection(spec.backend, spec.kind, params),
        documents=written.entry.rows if written else 0,
        corpus=header.corpus,
        files={**(files or {}), **(written.files if written else {})},
        searchkit_version=__version__,
        segments=[written.entry] if written else [],
        next_segment=2,
        chunking=header.chunking,
        lexical=header.lexical,
        language=header.language,
    )
    manifest.write(folder)
    fsync_tree(folder)
    return manifest


def commit_sharded(staging: Path, out: Path, manifest: ShardedManifest, replace: bool) -> None:
    """Make the sharded index built in ``staging`` the index at ``out``, atomically.

    ``staging`` holds ``shards/<generation>/`` of ``manifest.version``. A new index: write the
    parent manifest into ``staging`` and rename the folder into place (``out`` is absent or an
    empty folder). A replacement of the index at ``out``: move the
    new generation into ``out/shards``, atomically replace ``out/manifest.json`` (the switch),
    then remove what it no longer names. A crash leaves the old index or the new one.
    """
    gen = generation(manifest.version)
    if not replace:
        publish(staging, out, manifest)
        return
    shards = out / SHARDS
    shards.mkdir(exist_ok=True)
    shutil.rmtree(shards / gen, ignore_errors=True)  # a leftover of a killed replacement
    fsync_tree(staging / SHARDS / gen)
    os.rename(staging / SHARDS / gen, shards / gen)
    fsync_dir(shards)
    manifest.write(out)
    collect_garbage(out, manifest)


def collect_garbage(out: Path, manifest: ShardedManifest) -> None:
    """Remove what the parent manifest does not name: shard folders of older versions or of a
    change killed before its switch, the segments of a plain index it replaced, temporary
    files. Only the lock holder may call this."""
    for path in out.iterdir():
        if path.name not in (MANIFEST, SHARDS):
            remove(path)
    named = {Path(s.path) for s in manifest.shards}
    generations = {p.parent for p in named}
    shards = out / SHARDS
    if not shards.is_dir():
        return
    for gen in shards.iterdir():
        if gen.relative_to(out) not in generations:
            remove(gen)
            continue
        for path in gen.iterdir():  # other shards' folders of that version, lock files
            if path.relative_to(out) not in named:
                remove(path)
    fsync_dir(shards)
    fsync_dir(out)


def check_shard_manifests(path: Path, manifest: ShardedManifest, checksums: bool) -> None:
    """Every file the parent names exists with its size, each shard is at the version the
    parent pins, and each shard's manifest.json has its recorded sha256 too when ``checksums``
    (each shard checks its own files' sha256)."""
    for shard in manifest.shards:  # a shard changed behind the parent's back says so first
        if (path / shard.path / MANIFEST).is_file():
            found = Manifest.read(path / shard.path).version
            if found != shard.version:
                raise CorruptIndex(
                    f"{path / shard.path}: shard {shard.name} is at version {found}, the parent "
                    f"manifest pins version {shard.version}; rebuild the index"
                )
    manifest.verify(path, checksums=False)
    for shard in manifest.shards:
        entry = manifest.files[f"{shard.name}/manifest"]
        if checksums and sha256_file(path / entry.path) != entry.sha256:
            raise CorruptIndex(
                f"{path / entry.path}: shard manifest checksum mismatch; rebuild the index"
            )
