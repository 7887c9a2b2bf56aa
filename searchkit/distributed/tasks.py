"""The code Ray workers run for an ingest (``searchkit.distributed.ingest`` drives it).

* ``read_block``: a read task; parses one block of corpus lines.
* ``Embedder``: an embed actor; one bi-encoder, loaded once; splits a block's long documents
  into passages as a plain build does (``searchkit.ingest.chunking``), embeds them, writes the
  block's part.
* ``build_shard``: a shard task; writes one shard, an ordinary index, from its blocks' parts,
  with the documents' BM25 terms through the index's analyzer, as a plain build does.

Errors a worker finds in the input travel back as data (``describe``), not as exceptions: an
exception would reach the driver wrapped in Ray Data's traceback, and the driver must raise the
original error naming the file and the line.
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from searchkit import errors
from searchkit.distributed.blocks import parse_block, part_name, read_part, write_part
from searchkit.distributed.cluster import ray
from searchkit.errors import CorpusError, InvalidParameter, SearchkitError
from searchkit.index.lexical import PostingsBuilder, index_analyzer, user_dict_path
from searchkit.index.manifest import FileEntry, Manifest
from searchkit.index.passages import Spans, whole_documents
from searchkit.index.sharded import ShardHeader, write_shard
from searchkit.ingest.chunking import Chunker, chunk_config, text_window
from searchkit.ingest.language import copy_user_dict

PARTS = "parts"


def read_block(
    row: dict[str, Any], corpus: str, id_field: str | None, skip_invalid: bool, encoding: str
) -> dict:
    """Read task: one block's documents, or the error of its first bad line."""
    block = pickle.loads(row["block"])
    try:
        parsed = parse_block(
            corpus, block, id_field=id_field, skip_invalid=skip_invalid, encoding=encoding
        )
    except SearchkitError as err:
        return {"parsed": b"", "error": json.dumps(describe(err))}
    return {"parsed": pickle.dumps(parsed), "error": ""}


class Embedder:
    """Embed actor: one bi-encoder, loaded once; each block is split into passages (``chunk``:
    tokens per passage, overlap, on; None values take a plain build's defaults), embedded and
    written as a part."""

    def __init__(
        self,
        model: str,
        batch_size: int,
        parts: Path,
        runtime: str,
        chunk: tuple[int | None, int | None, bool],
    ) -> None:
        from searchkit.inference.encoder import Encoder

        self.encoder = Encoder(model, batch_size=batch_size, runtime=runtime)
        self.encoder.model  # noqa: B018 - load before the first block, not during it
        self.parts = Path(parts)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        import torch  # loaded with the model; Ray sets its threads to the actor's CPUs

        self.threads = torch.get_num_threads()
        self.window = text_window(self.encoder.model)
        self.error: dict[str, Any] | None = None  # bad chunk settings, reported per block
        try:
            config = chunk_config(self.window, *chunk)
            self.chunker = Chunker(self.encoder.model.tokenizer, config)
        except SearchkitError as err:
            self.error = describe(err)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        out = []
        for parsed, error in zip(batch["parsed"], batch["error"], strict=True):
            if error or self.error:
                out.append(json.dumps({"error": json.loads(error) if error else self.error}))
                continue
            try:
                out.append(json.dumps(self._embed(pickle.loads(parsed))))
            except SearchkitError as err:
                out.append(json.dumps({"error": describe(err)}))
        return {"summary": out}

    def _embed(self, parsed: Any) -> dict[str, Any]:
        started = time.time()
        e, config = self.encoder, self.chunker.config
        if config.enabled:
            texts, spans = self.chunker.split(parsed.docs)
            truncated = []
        else:  # one passage per document: count (by row) the documents the encoder cuts
            texts, spans = [d.passage() for d in parsed.docs], whole_documents(parsed.docs)
            tokens = e.model.tokenizer(texts, add_special_tokens=False, verbose=False)
            truncated = [i for i, ids in enumerate(tokens["input_ids"]) if len(ids) > self.window]
        vectors = e.encode_documents(texts) if texts else np.empty((0, e.dim), np.float32)
        write_part(
            self.parts / part_name(parsed.number),
            parsed.docs, parsed.lines, vectors, spans, self.worker,
        )  # fmt: skip
        return {
            "block": parsed.number,
            "ids": [d.id for d in parsed.docs],
            "lines": parsed.lines,
            "skipped_count": parsed.skipped_count,
            "skipped": [(s.line, s.problem) for s in parsed.skipped],
            "started": started,
            "finished": time.time(),
            "worker": self.worker,
            "name": e.name,
            "dim": e.dim,
            "max_seq_length": e.max_seq_length,
            **e.runtime.to_dict(),
            "chunking": [config.tokens, config.overlap, config.enabled],
            "truncated": truncated,
            "threads": self.threads,
        }


@ray.remote(num_cpus=1)
def build_shard(
    staging: str,
    path: str,
    rows: dict[int, list[int]],
    header: ShardHeader,
    truncated: dict[int, list[int]] | None = None,
) -> Manifest:
    """Shard task: write the ordinary index ``staging/path`` from the ``rows`` routed to it
    (block -> positions in its part), counting the documents of ``truncated`` (block -> rows
    the encoder cut), with BM25 terms when
    ``header.lexical`` says so (a user dictionary is copied from ``staging/parts``). A retry
    starts over in a fresh temporary folder, then replaces whatever an earlier attempt left."""
    final = Path(staging) / path
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()
    parts = Path(staging) / PARTS

    def embedded() -> Iterator[tuple[list, np.ndarray, Spans]]:
        for number, keep in sorted(rows.items()):
            part = read_part(parts / part_name(number))
            cut = len(set((truncated or {}).get(number, ())) & set(keep))
            if drop := set(range(len(part.docs))) - set(keep):
                part = part.without(drop)
            if part.docs:
                spans = replace(part.spans, chunked=part.chunked, truncated=cut)
                yield part.docs, part.vectors, spans

    try:
        files, builder = _lexical(tmp, parts, header)
        manifest = write_shard(tmp, embedded(), header, builder, files)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _lexical(
    shard: Path, parts: Path, header: ShardHeader
) -> tuple[dict[str, FileEntry], PostingsBuilder | None]:
    """The shard's copy of the analyzer's user dictionary (from the ingest's ``parts``) and
    its BM25 postings builder (None: the index has no lexical stage)."""
    config = header.lexical
    if config is None:
        return {}, None
    relative = user_dict_path(config)
    files = copy_user_dict(shard, config, parts / relative if relative else None)
    return files, PostingsBuilder(config, analyzer=index_analyzer(config, shard))


def describe(err: SearchkitError) -> dict[str, Any]:
    """A searchkit error as data, for the driver to raise again (``rebuild``)."""
    return {
        "type": type(err).__name__,
        "message": str(err),
        "param": getattr(err, "param", None),
        "path": getattr(err, "path", None),
        "line": getattr(err, "line", None),
        "problem": getattr(err, "problem", None),
    }


def rebuild(error: dict[str, Any]) -> SearchkitError:
    """The searchkit error ``describe`` turned into data."""
    cls = getattr(errors, error["type"], SearchkitError)
    if issubclass(cls, CorpusError):
        return cls(error["path"], error["line"], error["problem"])
    if issubclass(cls, InvalidParameter):
        return cls(error["message"], param=error.get("param"))
    return cls(error["message"])
