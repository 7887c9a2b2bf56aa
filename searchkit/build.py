"""Build an index folder from a corpus: stream, embed in blocks, index, commit atomically."""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from searchkit._version import __version__
from searchkit.backends import DEFAULT_KIND, get_backend
from searchkit.backends.base import resolve_params
from searchkit.corpus import CorpusReader, SkippedLine
from searchkit.encode import Encoder
from searchkit.errors import IndexError_, IndexExists
from searchkit.fsio import fsync_dir, fsync_tree
from searchkit.manifest import MANIFEST, FileEntry, Manifest
from searchkit.models import Document
from searchkit.paths import default_index_dir
from searchkit.progress import BuildProgress
from searchkit.resolve import DEFAULT_ENCODER, DEFAULT_RERANKER, canonical_name
from searchkit.store import DocStoreWriter

BLOCK_DOCS = 1024  # documents read, embedded and written at a time: bounds memory
ADD_ROWS = 65536  # vectors handed to the index per call
TRAIN_MAX = 100_000  # vectors sampled to train an IVF quantizer
VECTORS_TMP = "vectors.f32"


@dataclass(frozen=True)
class BuildReport:
    """What a build did: where the index is, its manifest, timings and skipped lines."""

    path: Path
    manifest: Manifest
    seconds: float
    embed_seconds: float
    skipped_count: int
    skipped: list[SkippedLine]

    @property
    def docs_per_second(self) -> float:
        """Documents embedded per second (model loading excluded)."""
        return self.manifest.documents / max(self.embed_seconds, 1e-9)


def build_index(
    corpus: str | Path,
    out: str | Path | None = None,
    *,
    model: str = DEFAULT_ENCODER,
    reranker: str = DEFAULT_RERANKER,
    backend: str = "faiss",
    kind: str | None = None,
    params: dict[str, Any] | None = None,
    id_field: str | None = None,
    skip_invalid: bool = False,
    batch_size: int = 32,
    force: bool = False,
    progress: bool = True,
) -> BuildReport:
    """Index a JSONL corpus into ``out`` (default ``indexes/<corpus name>``).

    The index is written to a temporary sibling folder and committed atomically: a crash or a
    bad line leaves any index already at ``out`` exactly as it was.

    Args:
        corpus: JSONL file, plain or gzipped.
        out: index folder to create (or replace, with ``force``).
        model: bi-encoder (folder, hub name, or ``all-MiniLM-L6-v2``).
        reranker: CrossEncoder recorded as the index's default reranker.
        backend: ``faiss``, ``hnswlib`` or ``exact``.
        kind: ``flat``, ``hnsw`` or ``ivf`` (default: the backend's first).
        params: build/search parameters (``m``, ``ef_construction``, ``ef_search``, ``nlist``,
            ``nprobe``); None values take the defaults.
        id_field: the corpus' id field (default ``_id``, else ``id``).
        skip_invalid: skip bad lines (reported in the result) instead of failing.
        force: replace an existing index at ``out``.
        progress: draw a progress bar on stderr.

    Example::

        report = build_index("corpus.jsonl", backend="hnswlib")
        print(report.path, report.manifest.documents, report.docs_per_second)
    """
    started = time.monotonic()
    out = Path(out) if out is not None else default_index_dir(corpus)
    version = _check_target(out, force) + 1
    spec = VectorSpec(backend, kind or DEFAULT_KIND[backend], params or {})
    resolve_params(backend, get_backend(backend).KINDS, spec.kind, spec.params, 1)  # fail early
    reader = CorpusReader(corpus, id_field=id_field, skip_invalid=skip_invalid)
    encoder = Encoder(model, batch_size=batch_size)
    encoder.model  # noqa: B018 - load the model before the progress bar starts
    staging = _staging_dir(out)
    try:
        built = _build_files(staging, f"v{version}", reader, encoder, spec, progress)
        manifest = Manifest(
            version=version,
            encoder={
                "name": encoder.name,
                "dim": encoder.dim,
                "max_seq_length": encoder.max_seq_length,
            },
            reranker=canonical_name(reranker),
            backend={"name": backend, "kind": spec.kind, "params": built.params},
            documents=built.count,
            corpus={
                "path": str(Path(corpus).resolve()),
                "sha256": reader.sha256,
                "skipped_lines": reader.skipped_count,
            },
            files={role: FileEntry.of(staging, path) for role, path in built.files.items()},
            searchkit_version=__version__,
        )
        _commit(staging, out, f"v{version}", manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.monotonic() - started
    return BuildReport(
        out, manifest, seconds, built.embed_seconds, reader.skipped_count, reader.skipped
    )


@dataclass(frozen=True)
class VectorSpec:
    """Which vector index to build: backend, kind and (unresolved) parameters."""

    backend: str
    kind: str
    params: dict[str, Any]


@dataclass(frozen=True)
class _Built:
    count: int
    embed_seconds: float
    params: dict[str, Any]
    files: dict[str, str]  # role -> path relative to the staging folder


def _build_files(
    staging: Path,
    data: str,
    reader: CorpusReader,
    encoder: Encoder,
    spec: VectorSpec,
    progress: bool,
) -> _Built:
    """Embed the corpus and write ``data/docs.parquet`` and the vector index into ``staging``."""
    (staging / data).mkdir()
    vectors_file = f"{data}/index.{get_backend(spec.backend).SUFFIX}"
    with BuildProgress(reader.size, enabled=progress) as bar:
        embed_started = time.monotonic()
        count = _embed(reader, encoder, staging, data, bar)
        embed_seconds = time.monotonic() - embed_started
        bar.phase(f"indexing ({spec.backend} {spec.kind})")
        params = _index_vectors(
            staging / VECTORS_TMP, count, encoder.dim, spec, staging / vectors_file
        )
    (staging / VECTORS_TMP).unlink()
    files = {"docs": f"{data}/docs.parquet", "vectors": vectors_file}
    return _Built(count, embed_seconds, params, files)


def _check_target(out: Path, force: bool) -> int:
    """The version of the index at ``out`` (0 if none); refuse to replace it unless forced."""
    if out.exists() and not out.is_dir():
        raise IndexExists(f"{out} is a file, not an index folder; choose another output path")
    if not (out / MANIFEST).exists():
        if out.exists() and any(out.iterdir()):
            raise IndexExists(
                f"{out} exists and is not a searchkit index; choose another output path"
            )
        return 0
    if not force:
        raise IndexExists(f"{out} already holds an index; pass --force (force=True) to replace it")
    try:
        return Manifest.read(out).version
    except IndexError_:  # an unreadable or older index being replaced on purpose
        return 0


def _staging_dir(out: Path) -> Path:
    """A fresh hidden sibling of ``out``; leftovers of killed builds are removed first."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f".{out.name}.build-*"):
        pid = old.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    staging = out.parent / f".{out.name}.build-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    return staging


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _blocks(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    it = iter(docs)
    while block := list(islice(it, size)):
        yield block


def _embed(
    reader: CorpusReader, encoder: Encoder, staging: Path, data: str, bar: BuildProgress
) -> int:
    """Embed the corpus block by block into a raw float32 file and write the docstore."""
    store = DocStoreWriter(staging / data / "docs.parquet")
    try:
        with open(staging / VECTORS_TMP, "wb") as vectors:
            for block in _blocks(reader, BLOCK_DOCS):
                embedded = encoder.encode_documents([d.passage() for d in block], bar.advance)
                vectors.write(embedded.tobytes())
                store.write(block)
                bar.read_to(reader.position)
    finally:
        store.close()
    return store.rows


def _index_vectors(
    vectors_path: Path, count: int, dim: int, spec: VectorSpec, out: Path
) -> dict[str, Any]:
    """Build the vector index from the memory-mapped embeddings; returns resolved parameters."""
    vectors = np.memmap(vectors_path, dtype=np.float32, mode="r", shape=(count, dim))
    index = get_backend(spec.backend).create(dim, spec.kind, spec.params, count)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(count, size=min(count, TRAIN_MAX), replace=False))
    index.train(vectors[sample])
    for start in range(0, count, ADD_ROWS):
        index.add(vectors[start : start + ADD_ROWS])
    index.save(out)
    del vectors
    return index.params


def _commit(staging: Path, out: Path, data: str, manifest: Manifest) -> None:
    """Make the staged build the index at ``out`` in one atomic step.

    A new index: rename the whole staging folder into place. A replacement: move the new data
    folder in beside the old one, then atomically replace manifest.json (the switch), then
    remove the old data. Readers and crashes see the old or the new index, never a mix.
    """
    if not (out / MANIFEST).exists():
        manifest.write(staging)
        fsync_tree(staging)
        try:
            os.rename(staging, out)
        except OSError:
            raise IndexExists(f"{out} was created by someone else during the build") from None
        fsync_dir(out.parent)
        return
    fsync_tree(staging)
    shutil.rmtree(out / data, ignore_errors=True)  # a leftover of a killed replacement
    os.rename(staging / data, out / data)
    fsync_dir(out)
    manifest.write(out)
    for old in out.iterdir():
        if old.is_dir() and old.name.startswith("v") and old.name != data:
            shutil.rmtree(old, ignore_errors=True)
    fsync_dir(out)
