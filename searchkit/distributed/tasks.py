"""The code Ray workers run for an ingest (``searchkit.distributed.ingest`` drives it).

* ``read_block``: a read task; parses one block of corpus lines.
* ``Embedder``: an embed actor; one bi-encoder, loaded once; embeds a block, writes its part.
* ``build_shard``: a shard task; writes one shard, an ordinary index, from its blocks' parts.

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
from pathlib import Path
from typing import Any

import numpy as np

from searchkit import errors
from searchkit.distributed.blocks import parse_block, part_name, read_part, write_part
from searchkit.distributed.cluster import ray
from searchkit.errors import CorpusError, SearchkitError
from searchkit.index.manifest import Manifest
from searchkit.index.passages import Spans, whole_documents
from searchkit.index.sharded import ShardHeader, write_shard
from searchkit.ingest.chunking import text_window

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
    """Embed actor: one bi-encoder, loaded once; each block is embedded and written as a part."""

    def __init__(self, model: str, batch_size: int, parts: Path, runtime: str) -> None:
        from searchkit.inference.encoder import Encoder

        self.encoder = Encoder(model, batch_size=batch_size, runtime=runtime)
        self.encoder.model  # noqa: B018 - load before the first block, not during it
        self.parts = Path(parts)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        import torch  # loaded with the model; Ray sets its threads to the actor's CPUs

        self.threads = torch.get_num_threads()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        out = []
        for parsed, error in zip(batch["parsed"], batch["error"], strict=True):
            if error:
                out.append(json.dumps({"error": json.loads(error)}))
                continue
            try:
                out.append(json.dumps(self._embed(pickle.loads(parsed))))
            except SearchkitError as err:
                out.append(json.dumps({"error": describe(err)}))
        return {"summary": out}

    def _embed(self, parsed: Any) -> dict[str, Any]:
        started = time.time()
        e = self.encoder
        texts = [d.passage() for d in parsed.docs]
        vectors = e.encode_documents(texts) if texts else np.empty((0, e.dim), np.float32)
        window = text_window(e.model)  # no chunking on Ray: count what the encoder cuts
        tokens = e.model.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        write_part(
            self.parts / part_name(parsed.number), parsed.docs, parsed.lines, vectors, self.worker
        )
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
            "window": window,
            "truncated": [row for row, ids in enumerate(tokens) if len(ids) > window],
            "threads": self.threads,
        }


@ray.remote(num_cpus=1)
def build_shard(
    staging: str,
    path: str,
    blocks: list[int],
    dropped: dict[int, list[int]],
    header: ShardHeader,
    truncated: dict[int, list[int]] | None = None,
) -> Manifest:
    """Shard task: write the ordinary index ``staging/path`` from its blocks' parts, counting
    the documents of ``truncated`` (block -> rows the encoder cut). A retry starts over in a
    fresh temporary folder, then replaces whatever an earlier attempt left."""
    final = Path(staging) / path
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()
    parts = Path(staging) / PARTS

    def embedded() -> Iterator[tuple[list, np.ndarray, Spans]]:
        for number in blocks:
            docs, _, vectors = read_part(parts / part_name(number))
            drop = set(dropped.get(number, ()))
            cut = len(set((truncated or {}).get(number, ())) - drop)
            if drop:
                keep = [i for i in range(len(docs)) if i not in drop]
                docs, vectors = [docs[i] for i in keep], vectors[keep]
            if docs:
                yield docs, vectors, whole_documents(docs, cut)

    try:
        manifest = write_shard(tmp, embedded(), header)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def describe(err: SearchkitError) -> dict[str, Any]:
    """A searchkit error as data, for the driver to raise again (``rebuild``)."""
    return {
        "type": type(err).__name__,
        "message": str(err),
        "path": getattr(err, "path", None),
        "line": getattr(err, "line", None),
        "problem": getattr(err, "problem", None),
    }


def rebuild(error: dict[str, Any]) -> SearchkitError:
    """The searchkit error ``describe`` turned into data."""
    cls = getattr(errors, error["type"], SearchkitError)
    if issubclass(cls, CorpusError):
        return cls(error["path"], error["line"], error["problem"])
    return cls(error["message"])
