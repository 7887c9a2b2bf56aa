"""Change a sharded index in place: each id routed to its shard, one atomic switch per call.

A ``ShardedWriter`` holds the parent folder's lock and, for each shard a call touches, an
ordinary ``IndexWriter`` on a *new* folder of that shard (``shards/v<next>/shard-NNNN``, the
current folder's files hard-linked, which is cheap: segments are immutable and every file is
replaced by rename, never rewritten). The shard writers commit there, invisibly: readers open
the folders the parent manifest pins. When every touched shard is done, the parent manifest
is replaced atomically (the switch), pinning the new folders and versions, and the folders it
no longer names are removed. A crash before the switch leaves the old index (the next writer
removes the unnamed folders), after it the new one: never some shards changed and others not.

Ids are placed by the index's ``Routing`` (a stable hash of the id), so an upsert replaces a
document in the shard that has it and a delete finds it there. ``create_sharded`` makes an
empty sharded index here, without Ray; ``searchkit index --ray`` builds one from a corpus.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import fields, replace
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any

from searchkit.backends import DEFAULT_KIND, get_backend
from searchkit.backends.base import resolve_params
from searchkit.errors import IncompatibleIndex, InvalidParameter
from searchkit.index.commit import check_target, staging_dir
from searchkit.index.fsio import fsync_dir, fsync_tree
from searchkit.index.lexical import lexical_config
from searchkit.index.lock import WriterLock
from searchkit.index.manifest import Manifest
from searchkit.index.sections import CorpusSection, MergePolicy
from searchkit.index.segment import VectorSpec
from searchkit.index.sharded import (
    SHARDS,
    Routing,
    ShardedManifest,
    ShardEntry,
    ShardHeader,
    check_shard_manifests,
    collect_garbage,
    commit_sharded,
    generation,
    write_shard,
)
from searchkit.inference.catalog import default_encoder, default_reranker
from searchkit.inference.encoder import Encoder
from searchkit.inference.resolve import canonical_name
from searchkit.inference.runtimes import from_manifest
from searchkit.ingest.changes import BLOCK_DOCS, CommitReport, check_documents
from searchkit.ingest.chunking import chunk_config, text_window
from searchkit.ingest.language import language_analyzer
from searchkit.ingest.readers import as_source
from searchkit.models import Document

# documents of a corpus routed at a time by add_corpus: each shard commits what it got of them
ROUTE_DOCS = 16 * BLOCK_DOCS
# the CommitReport counts summed over the shards (the others describe the whole index)
COUNTS = tuple(
    f.name
    for f in fields(CommitReport)
    if f.type == "int" and f.name not in ("version", "documents", "tombstones", "skipped_count")
)


class ShardedWriter:
    """The one writer of a sharded index (``IndexWriter.open`` returns it for a parent folder),
    with ``IndexWriter``'s methods; each call is one atomic change of the whole index.

    Raises ``IncompatibleIndex`` for an index whose documents were placed by corpus blocks
    (built before routing by id): rebuild it to change it.
    """

    def __init__(
        self,
        path: str | Path,
        plain: Callable[..., Any],
        *,
        batch_size: int = 32,
        progress: bool = False,
        merge_policy: MergePolicy | None = None,
    ) -> None:
        self.path = Path(path)
        self.progress = progress
        # the writer class of one shard (IndexWriter, handed over by IndexWriter.open: this
        # module cannot import it, as it imports this one) and its merge policy override
        self.plain = plain
        self.merge_policy = merge_policy
        self._lock = WriterLock(self.path).acquire()
        try:
            self.manifest = ShardedManifest.read(self.path)
            self.routing = _routing(self.path, self.manifest)
            check_shard_manifests(self.path, self.manifest, checksums=False)
            collect_garbage(self.path, self.manifest)  # shard folders of killed writers
        except BaseException:
            self._lock.release()
            raise
        e = self.manifest.encoder
        self.encoder = Encoder(e.name, batch_size=batch_size, runtime=from_manifest(e))

    def close(self) -> None:
        """Release the lock; the writer cannot be used afterwards."""
        self._lock.release()

    def __enter__(self) -> ShardedWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def upsert(self, docs: Iterable[Document]) -> CommitReport:
        """Add or replace documents, each in the shard of its id; unchanged ones are skipped."""
        docs = list(docs)
        check_documents(docs)
        with _Change(self) as change:
            for shard, group in self._routed(docs, lambda d: d.id).items():
                change.apply(shard, lambda w, g=group: w.upsert(g))
        return change.report

    def add_corpus(
        self,
        corpus: Any,
        *,
        format: str | None = None,
        id_field: str | None = None,
        skip_invalid: bool = False,
        encoding: str = "utf-8",
    ) -> CommitReport:
        """Upsert a corpus of any format (as ``IndexWriter.add_corpus``), read once and routed
        in blocks; a bad record fails the whole add and leaves the index unchanged."""
        reader = as_source(
            corpus, format, id_field=id_field, skip_invalid=skip_invalid, encoding=encoding
        )
        docs = iter(reader)
        with _Change(self) as change:
            while block := list(islice(docs, ROUTE_DOCS)):
                for shard, group in self._routed(block, lambda d: d.id).items():
                    change.apply(shard, lambda w, g=group: w.upsert(g))
        return replace(
            change.report, skipped_count=reader.skipped_count, skipped=tuple(reader.skipped)
        )

    def delete(self, ids: Iterable[str]) -> CommitReport:
        """Delete documents by id, each from its shard; unknown ids are reported."""
        wanted = list(dict.fromkeys(ids))
        with _Change(self) as change:
            for shard, group in self._routed(wanted, lambda i: i).items():
                change.apply(shard, lambda w, g=group: w.delete(g))
        missing = set(change.missing)
        return replace(change.report, missing=tuple(i for i in wanted if i in missing))

    def compact(self) -> CommitReport:
        """Compact every shard that has tombstones or several segments (no re-embedding)."""
        with _Change(self) as change:
            for shard, entry in enumerate(self.manifest.shards):
                m = Manifest.read(self.path / entry.path)
                if m.deleted or len(m.segments) > 1:
                    change.apply(shard, lambda w: w.compact())
        return change.report

    def _routed(self, items: list, key: Callable[[Any], str]) -> dict[int, list]:
        groups: dict[int, list] = {}
        for item in items:
            groups.setdefault(self.routing.shard_of(key(item)), []).append(item)
        return dict(sorted(groups.items()))


class _Change:
    """One change of a sharded index: the shard writers it opened, then the switch."""

    def __init__(self, owner: ShardedWriter) -> None:
        self.owner = owner
        self.version = owner.manifest.version + 1
        self.writers: dict[int, Any] = {}  # IndexWriter per shard
        self.reports: list[CommitReport] = []
        self.missing: list[str] = []
        self.started = time.monotonic()
        self.report = CommitReport(owner.path, owner.manifest.version)

    def __enter__(self) -> _Change:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        for writer in self.writers.values():
            writer.close()
        if kind is None:
            self._switch()
        else:  # nothing is named by the parent yet: the folders go now (or on the next open)
            for writer in self.writers.values():
                shutil.rmtree(writer.path, ignore_errors=True)

    def apply(self, shard: int, call: Callable[[Any], CommitReport]) -> None:
        """Run ``call`` with the writer of ``shard``'s new folder (opened on first use)."""
        if shard not in self.writers:
            self.writers[shard] = self._open(shard)
        report = call(self.writers[shard])
        self.reports.append(report)
        self.missing += report.missing

    def _open(self, shard: int) -> Any:
        owner = self.owner
        entry = owner.manifest.shards[shard]
        folder = owner.path / SHARDS / generation(self.version) / entry.name
        shutil.rmtree(folder, ignore_errors=True)  # a leftover of a killed change
        _link_tree(owner.path / entry.path, folder)
        writer = owner.plain(  # a bar per shard touched
            folder, progress=owner.progress, merge_policy=owner.merge_policy
        )
        writer.encoder = owner.encoder  # one model for every shard
        return writer

    def _switch(self) -> None:
        """Pin the shards that changed in a new parent manifest (the switch), then tidy up."""
        owner = self.owner
        old = owner.manifest
        changed = {}
        for shard, writer in self.writers.items():
            if writer.manifest.version != old.shards[shard].version:
                changed[shard] = writer
            else:  # nothing was committed: the old folder stays
                shutil.rmtree(writer.path, ignore_errors=True)
        counts = {k: sum(getattr(r, k) for r in self.reports) for k in COUNTS}
        if changed:
            shards: list[tuple[ShardEntry, Manifest]] = []
            for number, entry in enumerate(old.shards):
                if (writer := changed.get(number)) is None:
                    shards.append((entry, Manifest.read(owner.path / entry.path)))
                    continue
                path = writer.path.relative_to(owner.path).as_posix()
                shards.append((replace(entry, path=path), writer.manifest))
                fsync_tree(writer.path)
            fsync_dir(owner.path / SHARDS / generation(self.version))
            fsync_dir(owner.path / SHARDS)
            fresh = ShardedManifest.create(owner.path, self.version, shards, corpus=old.corpus)
            derived = {key: getattr(fresh, key) for key in DERIVED}
            owner.manifest = replace(old, **derived, searchkit_version=fresh.searchkit_version)
            owner.manifest.write(owner.path)  # the switch
            collect_garbage(owner.path, owner.manifest)
        m = owner.manifest
        self.report = CommitReport(
            owner.path,
            m.version,
            documents=m.documents,
            tombstones=m.deleted,
            seconds=time.monotonic() - self.started,
            **counts,
        )


# the fields of a parent manifest that its shards determine (a change keeps the others)
DERIVED = ("version", "backend", "documents", "deleted", "files", "segments", "shards")


def _link_tree(source: Path, target: Path) -> None:
    """``target``: a new folder with ``source``'s files hard-linked (copied where the file
    system has no hard links). Safe because no index file is ever changed in place."""
    for folder, _dirs, files in os.walk(source):
        here = target / Path(folder).relative_to(source)
        here.mkdir(parents=True)
        for name in files:
            try:
                os.link(Path(folder) / name, here / name)
            except OSError:
                shutil.copy2(Path(folder) / name, here / name)


def _routing(path: Path, manifest: ShardedManifest) -> Routing:
    routing = manifest.routing
    if routing is None:
        raise IncompatibleIndex(
            f"{path} is a sharded index whose documents were placed by corpus blocks (built by "
            "an older searchkit), so a writer cannot tell which shard holds an id: it can be "
            "searched, but to add, delete or compact rebuild it (index --ray --force)"
        )
    if (routing.scheme, routing.version) != (Routing(1).scheme, Routing(1).version):
        raise IncompatibleIndex(
            f"{path}: routing {routing.scheme} version {routing.version} is unknown to this "
            "searchkit; upgrade searchkit to change this index"
        )
    if routing.shards != len(manifest.shards):
        raise IncompatibleIndex(
            f"{path}: routing over {routing.shards} shards, the manifest lists "
            f"{len(manifest.shards)}; rebuild the index"
        )
    return routing


def create_sharded(
    out: str | Path,
    shards: int,
    *,
    model: str | None = None,
    reranker: str | None = None,
    language: str = "en",
    backend: str = "faiss",
    kind: str | None = None,
    params: dict[str, Any] | None = None,
    lexical: str = "bm25",
    chunk: bool = True,
    batch_size: int = 32,
) -> Path:
    """Make an empty sharded index of ``shards`` shards at ``out`` (absent or an empty folder),
    here, without Ray; fill it with ``IndexWriter.open(out)``. The options are ``build_index``'s
    (BM25 with the analyzer of ``language``, no user dictionary).

    Example::

        create_sharded("indexes/big", 4)
        with IndexWriter.open("indexes/big") as w:
            w.add_corpus("docs.jsonl")
    """
    out = Path(out)
    if shards < 1:
        raise InvalidParameter(f"shards must be at least 1, got {shards}", param="shards")
    spec = VectorSpec(backend, kind or DEFAULT_KIND[backend], params or {})
    resolve_params(backend, get_backend(backend).KINDS, spec.kind, spec.params, 1)  # fail early
    terms = lexical_config(lexical, analyzer=language_analyzer(language))
    encoder = Encoder(model or default_encoder(language), batch_size=batch_size)
    window = text_window(encoder.model)
    header = ShardHeader(
        encoder.section(),
        canonical_name(reranker or default_reranker(language)),
        spec,
        CorpusSection("", "", 0),
        chunk_config(window, enabled=chunk).section(),
        terms,
        language,
    )
    with WriterLock(out):
        check_target(out, force=False)
        staging = staging_dir(out)
        try:
            built = []
            for number in range(shards):
                name = f"shard-{number:04d}"
                entry = ShardEntry(name, f"{SHARDS}/{generation(1)}/{name}", 0)
                (staging / entry.path).mkdir(parents=True)
                built.append((entry, write_shard(staging / entry.path, [], header)))
            manifest = ShardedManifest.create(
                staging, 1, built, corpus=header.corpus, routing=Routing(shards)
            )
            commit_sharded(staging, out, manifest, replace=False)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return out
