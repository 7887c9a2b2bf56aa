"""Ingest a corpus on a Ray cluster into a sharded index (``searchkit index --ray``).

1. the driver scans the corpus once: its sha256 and blocks of lines
   (``searchkit.distributed.blocks``);
2. Ray Data: *read* tasks parse the blocks in parallel with ``CorpusReader``'s rules (a bad
   line is an error naming file and line); an *embed* actor pool, one bi-encoder per actor,
   splits each block's long documents into passages as a plain build does, embeds them and
   writes the block as one part file, replaced atomically under its block's name (the workers'
   code is ``searchkit.distributed.tasks``);
3. the driver gathers every block's ids and line numbers and checks ids across blocks;
4. one Ray task per shard writes an ordinary searchkit index from the rows of the parts whose
   ids it owns (``searchkit.index.sharded.Routing``: a stable hash of the id, recorded in the
   parent manifest, so a rerun gives the same shards and a writer finds each id's shard later:
   ``searchkit.ingest.sharded.ShardedWriter``), with its documents' BM25
   terms through the analyzer of the corpus language (a user dictionary copied into each);
5. the parent manifest is written last and atomically (``searchkit.index.sharded.commit_sharded``).

A killed worker is restarted by Ray and its block is done again: the part is written under the
same name, so it is neither lost nor counted twice. A bad line fails the whole ingest and leaves
any index at the output path as it was. The corpus and the output folder must be at the same
path on every node (a shared filesystem); a gzipped corpus is decompressed by the driver and
its blocks travel through Ray's object store.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchkit.backends import DEFAULT_KIND, get_backend
from searchkit.backends.base import resolve_params
from searchkit.defaults import DEFAULT_LEXICAL
from searchkit.distributed.blocks import CorpusPlan, count_lines, plan_blocks
from searchkit.distributed.cluster import cluster_cpus, last_line, ray, ray_session
from searchkit.distributed.tasks import PARTS, Embedder, build_shard, read_block, rebuild
from searchkit.errors import CorpusError, InvalidParameter, SearchkitError
from searchkit.index.commit import check_target, staging_dir
from searchkit.index.lexical import lexical_config
from searchkit.index.lock import WriterLock
from searchkit.index.manifest import Manifest
from searchkit.index.paths import default_index_dir
from searchkit.index.sections import CorpusSection, EncoderSection, LexicalSection
from searchkit.index.segment import VectorSpec
from searchkit.index.sharded import (
    SHARDS,
    Routing,
    ShardedManifest,
    ShardEntry,
    ShardHeader,
    commit_sharded,
    generation,
)
from searchkit.inference.catalog import default_encoder, default_reranker
from searchkit.inference.resolve import canonical_name, resolve_model
from searchkit.inference.runtimes import Runtime
from searchkit.ingest.chunking import ChunkConfig
from searchkit.ingest.corpus import MAX_SKIPPED_KEPT, CorpusReader, SkippedLine
from searchkit.ingest.language import copy_user_dict, corpus_language, language_analyzer
from searchkit.ingest.readers import detect_format
from searchkit.ingest.writer import BLOCK_DOCS


@dataclass(frozen=True)
class IngestReport:
    """What a Ray ingest did; the fields ``print_build`` shows, plus the Ray figures."""

    path: Path
    manifest: ShardedManifest
    seconds: float
    embed_seconds: float
    workers: int
    blocks: int
    skipped_count: int
    skipped: list[SkippedLine] = field(default_factory=list)

    @property
    def docs_per_second(self) -> float:
        """Documents embedded per second, from the first block started to the last written
        (the actors' model loading excluded, as in ``BuildReport``)."""
        return self.manifest.documents / max(self.embed_seconds, 1e-9)


def ingest(
    corpus: str | Path,
    out: str | Path | None = None,
    *,
    shards: int = 1,
    address: str | None = "auto",
    workers: int | None = None,
    model: str | None = None,
    reranker: str | None = None,
    language: str = "auto",
    user_dict: str | Path | None = None,
    t2s: bool = True,
    backend: str = "faiss",
    kind: str | None = None,
    params: dict[str, Any] | None = None,
    lexical: str = DEFAULT_LEXICAL,
    chunk: bool = True,
    chunk_tokens: int | None = None,
    chunk_overlap: int | None = None,
    id_field: str | None = None,
    skip_invalid: bool = False,
    encoding: str = "utf-8",
    batch_size: int = 32,
    runtime: str | None = None,
    precision: str | None = None,
    block_docs: int = BLOCK_DOCS,
    force: bool = False,
    progress: bool = True,
) -> IngestReport:
    """Index a JSONL corpus on a Ray cluster into a sharded index at ``out``.

    Takes the arguments of ``build_index``, plus:

    Args:
        shards: how many shards (ordinary indexes) to write.
        address: the Ray cluster: ``auto`` (a running one), ``local`` (start one here for this
            call), ``ray://host:port``, or ``host:port``. Ignored when Ray is already initialized.
        workers: embedding actors, one model each (default: one per CPU of the cluster).
        block_docs: corpus lines per block, the unit of work and of retry.
        lexical: ``bm25`` (each shard stores its documents' terms, analyzed as a plain build
            does; queries score them with index-wide statistics) or ``none``; ``splade`` needs
            a build without Ray.

    Example::

        report = ingest("big.jsonl", "indexes/big", shards=8, address="auto")
        print(report.manifest.documents, report.docs_per_second)
    """
    started = time.monotonic()
    out = Path(out) if out is not None else default_index_dir(corpus)
    if shards < 1 or block_docs < 1 or (workers is not None and workers < 1):
        raise InvalidParameter("shards, workers and block_docs must be at least 1")
    if (found := detect_format(corpus)) != "jsonl":
        # the driver cuts the corpus into blocks of lines by byte offsets
        raise InvalidParameter(
            f"the Ray ingest reads JSONL corpora, not {found}: build without Ray (build_index "
            "reads every format), or convert it to JSONL first",
            param="corpus",
        )
    if lexical == "splade":
        raise InvalidParameter(
            'the Ray ingest stores BM25 terms, not SPLADE\'s: pass lexical="bm25" or "none", '
            'or build without Ray for lexical="splade"',
            param="lexical",
        )
    spec = VectorSpec(backend, kind or DEFAULT_KIND[backend], params or {})
    resolve_params(backend, get_backend(backend).KINDS, spec.kind, spec.params, 1)  # fail early
    language = corpus_language(CorpusReader(corpus, id_field=id_field, encoding=encoding), language)
    terms = lexical_config(
        lexical, analyzer=language_analyzer(language, user_dict=user_dict, t2s=t2s)
    )
    model = model or default_encoder(language)
    reranker = reranker or default_reranker(language)
    resolve_model(model)  # a model folder that does not exist fails here, not in every actor
    embedder = (model, batch_size, str(Runtime.parse(runtime, precision, role="encoder")))
    chunking = (chunk_tokens, chunk_overlap, chunk)
    with WriterLock(out):
        previous = check_target(out, force)
        version = (previous or 0) + 1
        # at least one block per shard, so that every shard task has parts to read in parallel
        block_lines = max(1, min(block_docs, math.ceil(count_lines(corpus) / shards)))
        plan = plan_blocks(corpus, block_lines, encoding=encoding)
        staging = staging_dir(out)
        try:
            run = _Run(plan, staging, id_field, skip_invalid)
            copy_user_dict(run.parts, terms, user_dict)  # each shard task copies it from there
            with ray_session(address):
                run.workers = min(workers or cluster_cpus(), len(plan.blocks))
                run.embed(*embedder, chunking, progress)
                built = run.write_shards(shards, version, reranker, spec, (terms, language))
            manifest = run.manifest(version, built, address)
            commit_sharded(staging, out, manifest, replace=previous is not None)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    count, skipped = run.skipped()
    seconds = time.monotonic() - started
    return IngestReport(
        out, manifest, seconds, run.embed_seconds, run.workers, len(plan.blocks), count, skipped
    )


class _Run:
    """The state of one ingest: the corpus plan, the staging folder, what the workers did."""

    def __init__(
        self, plan: CorpusPlan, staging: Path, id_field: str | None, skip_invalid: bool
    ) -> None:
        self.plan = plan
        self.staging = staging
        self.parts = staging / PARTS
        self.parts.mkdir()
        self.id_field = id_field
        self.skip_invalid = skip_invalid
        self.done: dict[int, dict[str, Any]] = {}
        self.dropped: dict[int, list[int]] = {}  # block -> rows skipped as duplicate ids
        self.duplicates: list[SkippedLine] = []
        self.embed_seconds = 0.0
        self.workers = 1

    def embed(
        self,
        model: str,
        batch_size: int,
        runtime: str,
        chunk: tuple[int | None, int | None, bool],
        progress: bool,
    ) -> None:
        """Read, embed and write every block as a part (Ray Data); check ids across blocks."""
        with warnings.catch_warnings():
            # Ray Data warns about its own deprecated settings on every DataContext access
            warnings.simplefilter("ignore", DeprecationWarning)
            ray.data.DataContext.get_current().enable_progress_bars = progress
            rows = iter(self._pipeline(model, batch_size, runtime, chunk).iter_rows())
            try:
                for row in rows:
                    summary = json.loads(row["summary"])
                    if "error" in summary:
                        raise rebuild(summary["error"])
                    self.done[summary["block"]] = summary
            except ray.exceptions.RayError as err:
                raise SearchkitError(f"the Ray ingest failed: {last_line(err)}") from None
            finally:
                getattr(rows, "close", lambda: None)()  # stop the pipeline on an error
        missing = set(range(len(self.plan.blocks))) - set(self.done)
        if missing:
            raise SearchkitError(f"the Ray ingest lost blocks {sorted(missing)}; run it again")
        self._check_ids()
        windows = [(s["started"], s["finished"]) for s in self.done.values()]
        self.embed_seconds = max(w[1] for w in windows) - min(w[0] for w in windows)

    def _pipeline(
        self, model: str, batch_size: int, runtime: str, chunk: tuple[int | None, int | None, bool]
    ) -> ray.data.Dataset:
        """Blocks -> read tasks (parse) -> embed actors (one model each, write the part)."""
        blocks = [{"block": pickle.dumps(b)} for b in self.plan.blocks]
        ds = ray.data.from_items(blocks, override_num_blocks=len(blocks))
        read = {
            "corpus": str(self.plan.path),
            "id_field": self.id_field,
            "encoding": self.plan.encoding,
        }
        # parsing is light: it takes no CPU from the embedding actors' reservation, and two
        # read tasks at a time keep the actors fed
        ds = ds.map(
            read_block,
            fn_kwargs={**read, "skip_invalid": self.skip_invalid},
            num_cpus=0,
            compute=ray.data.TaskPoolStrategy(size=2),
        )
        return ds.map_batches(
            Embedder,
            fn_constructor_kwargs={
                "model": model,
                "batch_size": batch_size,
                "parts": self.parts,
                "runtime": runtime,
                "chunk": chunk,
            },
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=self.workers),
            num_cpus=1,
        )

    def _check_ids(self) -> None:
        """Duplicate ids across blocks, in corpus order: an error naming both lines, or (with
        ``skip_invalid``) the later line is skipped as ``CorpusReader`` does."""
        first: dict[str, int] = {}
        for number in sorted(self.done):
            ids, lines = self.done[number]["ids"], self.done[number]["lines"]
            for row, (doc_id, line) in enumerate(zip(ids, lines, strict=True)):
                if doc_id not in first:
                    first[doc_id] = line
                    continue
                problem = f"duplicate id {doc_id!r} (first on line {first[doc_id]})"
                if not self.skip_invalid:
                    raise CorpusError(self.plan.path, line, problem)
                self.dropped.setdefault(number, []).append(row)
                self.duplicates.append(SkippedLine(line, problem))
        if not first:
            count, _ = self.skipped()
            why = f" ({count} invalid lines skipped)" if count else ""
            raise CorpusError(self.plan.path, None, f"empty corpus: no documents{why}")

    def skipped(self) -> tuple[int, list[SkippedLine]]:
        """Lines skipped as invalid: how many, and the first ones in corpus order."""
        lines = [SkippedLine(*s) for d in self.done.values() for s in d["skipped"]]
        count = sum(d["skipped_count"] for d in self.done.values()) + len(self.duplicates)
        return count, sorted(lines + self.duplicates, key=lambda s: s.line)[:MAX_SKIPPED_KEPT]

    def corpus_info(self) -> CorpusSection:
        return CorpusSection(str(self.plan.path.resolve()), self.plan.sha256, self.skipped()[0])

    def manifest(
        self, version: int, built: list[tuple[ShardEntry, Manifest]], address: str | None
    ) -> ShardedManifest:
        """The parent manifest over the written shards (the parts are no longer needed)."""
        shutil.rmtree(self.parts, ignore_errors=True)
        ingested = {
            "ray_address": address,
            "workers": self.workers,
            "worker_threads": max(s["threads"] for s in self.done.values()),
            "blocks": len(self.plan.blocks),
            "block_lines": self.plan.blocks[0].lines,
            "embed_seconds": round(self.embed_seconds, 3),
        }
        return ShardedManifest.create(
            self.staging,
            version,
            built,
            corpus=self.corpus_info(),
            ingest=ingested,
            routing=Routing(len(built)),
        )

    def write_shards(
        self,
        shards: int,
        version: int,
        reranker: str,
        spec: VectorSpec,
        lexical: tuple[LexicalSection | None, str],
    ) -> list[tuple[ShardEntry, Manifest]]:
        """One Ray task per shard writes its ordinary index from its blocks' parts (with BM25
        terms by ``lexical``: the section and the corpus language)."""
        some = next(iter(self.done.values()))
        fields = ("name", "dim", "max_seq_length", "runtime", "precision")
        encoder = EncoderSection(*(some[k] for k in fields))
        chunking = ChunkConfig(*some["chunking"]).section()
        header = ShardHeader(
            encoder, canonical_name(reranker), spec, self.corpus_info(), chunking, *lexical
        )
        truncated = {number: d["truncated"] for number, d in self.done.items()}
        gen = generation(version)
        names = [f"shard-{number:04d}" for number in range(shards)]
        entries = [ShardEntry(name, f"{SHARDS}/{gen}/{name}", 0) for name in names]
        task = build_shard.options(max_retries=3)
        refs = [
            task.remote(str(self.staging), e.path, rows, header, truncated)
            for e, rows in zip(entries, self._routed(Routing(shards)), strict=True)
        ]
        try:
            manifests = ray.get(refs)
        except ray.exceptions.RayError as err:
            raise SearchkitError(f"writing the shards failed: {last_line(err)}") from None
        return list(zip(entries, manifests, strict=True))

    def _routed(self, routing: Routing) -> list[dict[int, list[int]]]:
        """Per shard, the rows of each block whose id ``routing`` places there (block ->
        positions in its part; duplicate ids skipped)."""
        out: list[dict[int, list[int]]] = [{} for _ in range(routing.shards)]
        for number, done in sorted(self.done.items()):
            dropped = set(self.dropped.get(number, ()))
            for row, doc_id in enumerate(done["ids"]):
                if row not in dropped:
                    out[routing.shard_of(doc_id)].setdefault(number, []).append(row)
        return out
