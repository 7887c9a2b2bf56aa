"""A corpus cut into blocks of lines for parallel workers, and the embedded blocks ("parts").

A distributed ingest scans the corpus once on the driver (its sha256 and where each block of
lines starts), hands blocks to workers that parse them with the rules of ``CorpusReader``
(errors name the file and the line), and each embedded block is written as one *part* file:
the block's documents, corpus line numbers and passages (each document's vectors and character
spans, ``searchkit.ingest.chunking``) in one Parquet file, a row per document. A part's name is
its block's number and it is replaced atomically, so a block done twice (a retried worker)
leaves one whole part, never two and never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from searchkit.errors import CorpusError
from searchkit.index.fsio import fsync_dir
from searchkit.index.passages import Spans
from searchkit.ingest.corpus import (
    DEFAULT_ENCODING,
    CorpusReader,
    SkippedLine,
    check_encoding,
    open_corpus,
)
from searchkit.models import Document

CHUNK = 1 << 20


@dataclass(frozen=True)
class Block:
    """Lines ``first_line`` .. ``first_line + lines - 1`` (1-based) of a corpus.

    ``offset`` and ``length`` locate them in the uncompressed bytes; a gzipped corpus cannot
    be read from an offset, so its blocks carry their bytes in ``data``.
    """

    number: int
    first_line: int
    lines: int
    offset: int
    length: int
    data: bytes | None = None


@dataclass(frozen=True)
class CorpusPlan:
    """A corpus cut into blocks, with the sha256 of its uncompressed bytes and its encoding."""

    path: Path
    sha256: str
    lines: int
    blocks: list[Block]
    encoding: str = DEFAULT_ENCODING


@dataclass
class ParsedBlock:
    """The documents of one block, their line numbers, and the lines skipped as invalid."""

    number: int
    docs: list[Document]
    lines: list[int]
    skipped_count: int = 0
    skipped: list[SkippedLine] = field(default_factory=list)


def count_lines(path: str | Path) -> int:
    """Lines in a corpus (a last line without a newline counts)."""
    lines, last = 0, b"\n"
    with open_corpus(Path(path)) as (_, stream):
        while chunk := _read(stream, path):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def plan_blocks(
    path: str | Path, block_lines: int, *, encoding: str = DEFAULT_ENCODING
) -> CorpusPlan:
    """Cut the corpus into blocks of ``block_lines`` lines (the last may be shorter).

    Blocks are cut at ``\\n`` bytes, which ``check_encoding`` makes sure are line ends in
    ``encoding`` (never part of a character, as they would be in UTF-16).

    Raises:
        CorpusError: the file is missing or cannot be read (a truncated gzip).
        InvalidParameter: an encoding ``CorpusReader`` cannot read.
    """
    path = Path(path)
    encoding = check_encoding(encoding)
    if not path.is_file():
        raise CorpusError(path, None, "no such file; give the path of a .jsonl corpus")
    digest = hashlib.sha256()
    blocks: list[Block] = []
    line_no = count = start = offset = 0
    pending = bytearray()
    with open_corpus(path) as (raw, stream):
        inline = stream is not raw  # gzip: no seeking, so blocks carry their bytes

        def close() -> None:
            data = bytes(pending) if inline else None
            blocks.append(
                Block(len(blocks), line_no - count + 1, count, start, offset - start, data)
            )

        for line in _lines(stream, path):
            digest.update(line)
            line_no, count, offset = line_no + 1, count + 1, offset + len(line)
            if inline:
                pending += line
            if count == block_lines:
                close()
                start, count, pending = offset, 0, bytearray()
        if count:
            close()
    return CorpusPlan(path, digest.hexdigest(), line_no, blocks, encoding)


def _lines(stream, path: Path) -> Iterator[bytes]:
    try:
        yield from stream
    except (OSError, EOFError) as err:  # truncated or corrupt gzip
        raise CorpusError(path, None, f"cannot read file: {err}") from None


def _read(stream, path: str | Path) -> bytes:
    try:
        return stream.read(CHUNK)
    except (OSError, EOFError) as err:
        raise CorpusError(path, None, f"cannot read file: {err}") from None


def block_lines(path: str | Path, block: Block) -> Iterator[bytes]:
    """The raw lines of ``block``."""
    if block.data is not None:
        data = block.data
    else:
        with open(path, "rb") as f:
            f.seek(block.offset)
            data = f.read(block.length)
    # split on "\n" only, as reading the file line by line does (not on a bare "\r")
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    yield from lines


def parse_block(
    path: str | Path,
    block: Block,
    *,
    id_field: str | None = None,
    skip_invalid: bool = False,
    encoding: str = DEFAULT_ENCODING,
) -> ParsedBlock:
    """Parse one block with the rules of ``CorpusReader``; a bad line raises ``CorpusError``
    naming the file and its line in the whole corpus (or is skipped with ``skip_invalid``).

    Duplicate ids are caught within the block here; across blocks, by whoever gathers them.
    """
    reader = CorpusReader(path, id_field=id_field, skip_invalid=skip_invalid, encoding=encoding)
    out = ParsedBlock(block.number, [], [])
    numbered = enumerate(block_lines(path, block), start=block.first_line)
    for line_no, doc in reader.documents(numbered):
        out.docs.append(doc)
        out.lines.append(line_no)
    out.skipped_count, out.skipped = reader.skipped_count, reader.skipped
    return out


def part_name(number: int) -> str:
    return f"block-{number:06d}.parquet"


def write_part(
    path: Path, docs: list[Document], lines: list[int], vectors: np.ndarray, spans: Spans,
    worker: str,
) -> None:  # fmt: skip
    """Write an embedded block to ``path`` atomically (temporary file, fsync, rename): one row
    per document, with its passages' vectors and spans (``spans.doc`` non-decreasing).

    ``worker`` (host:pid) is recorded in the file's metadata: who wrote the part.
    """
    dim = vectors.shape[1]
    offsets = pa.array(np.searchsorted(spans.doc, np.arange(len(docs) + 1)), pa.int32())

    def listed(values: pa.Array) -> pa.ListArray:
        return pa.ListArray.from_arrays(offsets, values)

    flat = pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1))
    table = pa.table(
        {
            "id": [d.id for d in docs],
            "title": [d.title for d in docs],
            "text": [d.text for d in docs],
            "metadata": [json.dumps(d.metadata, ensure_ascii=False) for d in docs],
            "line": pa.array(lines, pa.int64()),
            "vectors": listed(pa.FixedSizeListArray.from_arrays(flat, dim)),
            "starts": listed(pa.array(spans.start, pa.int64())),
            "ends": listed(pa.array(spans.end, pa.int64())),
        }
    ).replace_schema_metadata({"searchkit.worker": worker})
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        pq.write_table(table, f, compression="zstd")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


@dataclass
class Part:
    """An embedded block as its part file holds it: documents, line numbers, one vector per
    passage and the passages' spans (``Spans.doc``: the document's position in ``docs``)."""

    docs: list[Document]
    lines: list[int]
    vectors: np.ndarray
    spans: Spans

    def without(self, rows: set[int]) -> Part:
        """The part without the documents at positions ``rows`` (and their passages)."""
        keep = [i for i in range(len(self.docs)) if i not in rows]
        passages = np.flatnonzero(np.isin(self.spans.doc, keep))
        renumber = np.full(len(self.docs), -1, dtype=np.int64)
        renumber[keep] = np.arange(len(keep))
        spans = Spans(
            renumber[self.spans.doc[passages]],
            self.spans.start[passages],
            self.spans.end[passages],
        )
        return Part(
            [self.docs[i] for i in keep], [self.lines[i] for i in keep],
            self.vectors[passages], spans,
        )  # fmt: skip

    @property
    def chunked(self) -> int:
        """Documents split into several passages."""
        return int(np.count_nonzero(np.bincount(self.spans.doc, minlength=len(self.docs)) > 1))


def read_part(path: Path) -> Part:
    """The documents, line numbers, vectors and passage spans of a part file."""
    table = pq.read_table(path)
    cols = table.to_pydict()
    docs = [
        Document(i, x, t, json.loads(m))
        for i, t, x, m in zip(
            cols["id"], cols["title"], cols["text"], cols["metadata"], strict=True
        )
    ]
    vectors = table.column("vectors").combine_chunks()
    counts = vectors.value_lengths().to_numpy(zero_copy_only=False)
    passages = vectors.flatten()
    flat = passages.flatten().to_numpy(zero_copy_only=False)
    matrix = flat.reshape(-1, passages.type.list_size).astype(np.float32, copy=False)
    spans = Spans(
        np.repeat(np.arange(len(docs), dtype=np.int64), counts),
        _flat(table, "starts"),
        _flat(table, "ends"),
    )
    return Part(docs, cols["line"], matrix, spans)


def _flat(table: pa.Table, column: str) -> np.ndarray:
    values = table.column(column).combine_chunks().flatten()
    return values.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def part_worker(path: Path) -> str:
    """Who wrote a part (host:pid), from its metadata."""
    meta = pq.read_schema(path).metadata or {}
    return meta.get(b"searchkit.worker", b"").decode()
