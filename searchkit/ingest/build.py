"""Build an index folder from a corpus: stream, embed in blocks, index, commit atomically."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from searchkit._version import __version__
from searchkit.backends import DEFAULT_KIND, get_backend
from searchkit.backends.base import resolve_params
from searchkit.defaults import DEFAULT_LEXICAL, DEFAULT_SPLADE
from searchkit.errors import IndexError_
from searchkit.index.commit import (
    SEGMENTS,
    check_target,
    install_segment,
    publish,
    segment_name,
    staging_dir,
    staging_segment,
    switch,
)
from searchkit.index.lexical import PostingsBuilder, lexical_config
from searchkit.index.lock import WriterLock
from searchkit.index.manifest import Manifest
from searchkit.index.paths import default_index_dir
from searchkit.index.sections import BackendSection, CorpusSection, MergePolicy
from searchkit.index.segment import VectorSpec, WrittenSegment, write_segment
from searchkit.inference.catalog import default_encoder, default_reranker
from searchkit.inference.encoder import Encoder
from searchkit.inference.resolve import canonical_name
from searchkit.inference.sparse import splade_for
from searchkit.ingest.chunking import Chunker, chunk_config, text_window
from searchkit.ingest.corpus import SkippedLine
from searchkit.ingest.language import copy_user_dict, corpus_language, language_analyzer
from searchkit.ingest.readers import CorpusSource, as_source
from searchkit.ingest.writer import embedded, in_blocks
from searchkit.models import Document
from searchkit.progress import BuildProgress


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
    corpus: str | Path | CorpusSource,
    out: str | Path | None = None,
    *,
    model: str | None = None,
    reranker: str | None = None,
    language: str = "auto",
    user_dict: str | Path | None = None,
    t2s: bool = True,
    backend: str = "faiss",
    kind: str | None = None,
    params: dict[str, Any] | None = None,
    lexical: str = DEFAULT_LEXICAL,
    splade_model: str = DEFAULT_SPLADE,
    format: str | None = None,
    id_field: str | None = None,
    skip_invalid: bool = False,
    encoding: str = "utf-8",
    batch_size: int = 32,
    runtime: str | None = None,
    precision: str | None = None,
    chunk: bool = True,
    chunk_tokens: int | None = None,
    chunk_overlap: int | None = None,
    merge_policy: MergePolicy | None = None,
    force: bool = False,
    progress: bool = True,
) -> BuildReport:
    """Index a corpus into ``out`` (default ``indexes/<corpus name>``).

    The index is written to a temporary sibling folder and committed atomically: a crash or a
    bad line leaves any index already at ``out`` exactly as it was.

    Args:
        corpus: a corpus file or folder in any format of ``searchkit.ingest.readers``
            (JSONL, JSON, Parquet, CSV/TSV, a datasets folder, a folder of files), or a
            ``CorpusSource`` opened by ``read_corpus`` (to map columns, pick files).
        out: index folder to create (or replace, with ``force``).
        model: bi-encoder (folder, hub name, or ``all-MiniLM-L6-v2``); default: the
            language's (``searchkit.inference.catalog.default_encoder``: all-MiniLM-L6-v2 for
            English, multilingual-e5-small otherwise).
        reranker: CrossEncoder recorded as the index's default reranker; default: the
            language's.
        language: ``auto`` (detected from a sample of the corpus, ``detect_language``),
            ``en``, ``zh`` or ``cjk``: picks BM25's analyzer and the default models.
        user_dict: a jieba-format dictionary of domain words for the ``zh`` analyzer (copied
            into the index).
        t2s: the ``zh`` analyzer folds Traditional characters to Simplified (臺灣 finds 台湾).
        backend: ``faiss``, ``hnswlib`` or ``exact``.
        kind: ``flat``, ``hnsw`` or ``ivf``; with faiss also the compact vector kinds ``sq8``
            (8-bit scalar quantized), ``binary`` and ``binary-hnsw`` (sign bits), whose top
            ``rescore`` candidates are rescored with the float vectors (default: the
            backend's first).
        params: build/search parameters (``m``, ``ef_construction``, ``ef_search``, ``nlist``,
            ``nprobe``, ``rescore``); None values take the defaults.
        lexical: the sparse first stage stored beside the vectors: ``bm25``, ``splade``
            or ``none`` (see ``searchkit.index.lexical``).
        splade_model: the SparseEncoder of ``lexical="splade"``.
        format: the corpus format (default: from its name, ``detect_format``).
        id_field: the corpus' id field (default ``_id``, else ``id``).
        skip_invalid: skip bad lines (reported in the result) instead of failing.
        encoding: the corpus' text encoding, e.g. ``gb18030`` (see ``CorpusReader``).
        runtime: the bi-encoder's inference runtime (``torch``, ``onnx``, ``openvino``, or
            ``openvino-int8``; default ``auto``), recorded in the manifest for the queries.
        precision: ``fp32``, ``bf16`` or ``int8`` when ``runtime`` does not name one.
        chunk: split documents longer than the encoder reads into overlapping passages
            (``searchkit.ingest.chunking``); False embeds their start only, and counts them.
        chunk_tokens: tokens per passage (default: all the encoder reads).
        chunk_overlap: tokens shared by consecutive passages (default 32).
        merge_policy: how later commits merge segments (``searchkit.index.merge``; default
            tiered), recorded in the manifest.
        force: replace an existing index at ``out``.
        progress: draw a progress bar on stderr.

    Example::

        report = build_index("corpus.jsonl", backend="hnswlib")
        print(report.path, report.manifest.documents, report.docs_per_second)
    """
    started = time.monotonic()
    reader = as_source(
        corpus, format, id_field=id_field, skip_invalid=skip_invalid, encoding=encoding
    )
    out = Path(out) if out is not None else default_index_dir(reader.path)
    spec = VectorSpec(backend, kind or DEFAULT_KIND[backend], params or {})
    resolve_params(backend, get_backend(backend).KINDS, spec.kind, spec.params, 1)  # fail early
    language = corpus_language(reader, language)
    analyzer = language_analyzer(language, user_dict=user_dict, t2s=t2s)
    model = model or default_encoder(language)
    reranker = reranker or default_reranker(language)
    terms = lexical_config(lexical, canonical_name(splade_model), analyzer)
    splade = splade_for(terms)
    with WriterLock(out):
        previous = check_target(out, force)
        encoder = Encoder(model, batch_size=batch_size, runtime=runtime, precision=precision)
        encoder.load()  # the models load before the progress bar starts
        window = text_window(encoder)
        chunking = chunk_config(window, chunk_tokens, chunk_overlap, chunk)
        chunker = Chunker(encoder.tokenizer, chunking)
        if splade is not None:
            splade.model  # noqa: B018
        root = out if previous is not None else staging_dir(out)
        number = _next_segment(out) if previous is not None else 1
        name = segment_name(number)
        staged = staging_segment(root, name)
        try:
            files = copy_user_dict(root, terms, user_dict)
            builder = PostingsBuilder(terms, splade, analyzer) if terms else None
            written, embed_seconds = _write(
                staged, name, reader, (encoder, chunker), spec, builder, progress
            )
            install_segment(root, staged, name)
            manifest = Manifest(
                version=(previous or 0) + 1,
                encoder=encoder.section(),
                reranker=canonical_name(reranker),
                backend=BackendSection(backend, spec.kind, written.params),
                documents=written.entry.rows,
                corpus=CorpusSection(
                    str(reader.path.resolve()), reader.sha256, reader.skipped_count
                ),
                files={**files, **written.files},
                searchkit_version=__version__,
                segments=[written.entry],
                next_segment=number + 1,
                lexical=terms,
                chunking=chunking.section(),
                language=language,
                merge=merge_policy or MergePolicy(),
            )
            _commit(root, out, manifest)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
            if root != out:
                shutil.rmtree(root, ignore_errors=True)
    seconds = time.monotonic() - started
    return BuildReport(out, manifest, seconds, embed_seconds, reader.skipped_count, reader.skipped)


def _write(
    staged: Path,
    name: str,
    reader: CorpusSource,
    embedding: tuple[Encoder, Chunker],
    spec: VectorSpec,
    lexical: PostingsBuilder | None,
    progress: bool,
) -> tuple[WrittenSegment, float]:
    """Embed the corpus into segment ``name``; returns it and the seconds spent embedding."""
    encoder, chunker = embedding
    marks = [time.monotonic()]
    with BuildProgress(reader.size, enabled=progress) as bar:

        def blocks() -> Iterator[list[Document]]:
            for block in in_blocks(reader):
                yield block
                bar.read_to(reader.position)

        def indexing() -> None:
            marks.append(time.monotonic())
            bar.phase(f"indexing ({spec.backend} {spec.kind})")

        vectors = embedded(blocks(), encoder, bar.advance, chunker)
        written = write_segment(staged, name, vectors, encoder.dim, spec, indexing, lexical)
    assert written is not None  # the reader raises on an empty corpus
    return written, marks[-1] - marks[0]


def _next_segment(out: Path) -> int:
    """A segment number the index at ``out`` has never used, so a rebuild in place never
    touches the segments of the version it replaces until the switch."""
    try:
        return Manifest.read(out).next_segment
    except IndexError_:  # an unreadable or older index: go past whatever is there
        used = [int(p.name[1:]) for p in (out / SEGMENTS).glob("s*") if p.name[1:].isdigit()]
        return max(used, default=0) + 1


def _commit(root: Path, out: Path, manifest: Manifest) -> None:
    """Make the build the index at ``out`` in one atomic step.

    A new index: rename the whole staging folder into place. A replacement: the new segment is
    already in ``out/segments``; atomically replace manifest.json (the switch), then remove the
    old segments. Readers and crashes see the old or the new index, never a mix.
    """
    if root == out:
        switch(out, manifest)
    else:
        publish(root, out, manifest)
