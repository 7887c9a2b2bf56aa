"""The docstore: row i holds the document whose vector has id i.

``docs.parquet`` is the docstore proper (plain Parquet, row groups of ``ROW_GROUP_ROWS``), read
whole by merges, compaction and tools. Beside it, ``docs.rows`` (format 1; a segment has one when
the manifest lists its ``<segment>/rows`` file) holds each row again as one JSON record
at a known byte offset, so a query fetches its few hits from a memory map without decoding
whole Parquet row groups (about 0.2 ms for 10 hits against several ms; benchmarks/README.md).
Layout: ``ROWS_MAGIC``, the records back to back, then ``rows + 1`` little-endian int64 offsets
(from the file start) and the int64 row count. Segments without it (older indexes) are read
from the Parquet file.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from searchkit.errors import CorruptIndex
from searchkit.models import Document

SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        # JSON object text: the corpus' extra fields vary per record, so no fixed columns
        pa.field("metadata", pa.string(), nullable=False),
    ]
)
# Row groups of the Parquet file (fetching hits goes through docs.rows when a segment has it).
ROW_GROUP_ROWS = 256
ROWS_MAGIC = b"SKROWS1\n"
_INT64 = np.dtype("<i8")


class DocStoreWriter:
    """Append documents to a new Parquet docstore in row order (and to its row-offset file
    ``rows_path`` when given)."""

    def __init__(self, path: Path, rows_path: Path | None = None) -> None:
        self.path = path
        self.rows = 0
        self._writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
        self._records = None if rows_path is None else open(rows_path, "wb")
        self._offsets = [len(ROWS_MAGIC)]
        if self._records is not None:
            self._records.write(ROWS_MAGIC)

    def write(self, docs: Sequence[Document]) -> None:
        table = pa.table(
            {
                "row": np.arange(self.rows, self.rows + len(docs), dtype=np.int64),
                "id": [d.id for d in docs],
                "title": [d.title for d in docs],
                "text": [d.text for d in docs],
                "metadata": [json.dumps(d.metadata, ensure_ascii=False) for d in docs],
            },
            schema=SCHEMA,
        )
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows += len(docs)
        if self._records is not None:
            for doc, meta in zip(docs, table.column("metadata").to_pylist(), strict=True):
                record = json.dumps([doc.id, doc.title, doc.text], ensure_ascii=False)
                # the metadata's JSON text as stored in Parquet, spliced in as the 4th item
                data = f"{record[:-1]}, {meta}]".encode()
                self._records.write(data)
                self._offsets.append(self._offsets[-1] + len(data))

    def close(self) -> None:
        self._writer.close()
        if self._records is not None:
            self._records.write(np.asarray(self._offsets, dtype=_INT64).tobytes())
            self._records.write(np.asarray([self.rows], dtype=_INT64).tobytes())
            self._records.close()


class DocStore:
    """Read documents by row without loading the file: from the row-offset file ``rows_path``
    when there is one, else only the Parquet row groups holding them."""

    def __init__(self, path: Path, rows_path: Path | None = None) -> None:
        self.path = path
        self._rows = None if rows_path is None else RowRecords(rows_path)
        # the whole file mapped once: it stays readable after a commit removes its name
        self._buffer = pa.memory_map(str(path)).read_buffer()
        # a ParquetFile must not be read from two threads at once, so each thread has its own
        self._local = threading.local()
        counts = [
            self._file.metadata.row_group(i).num_rows for i in range(self._file.num_row_groups)
        ]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if self._rows is not None and len(self._rows) != len(self):
            raise CorruptIndex(
                f"{rows_path}: {len(self._rows)} rows but {path} has {len(self)}; "
                "run `searchkit verify` and rebuild the index"
            )

    @property
    def _file(self) -> pq.ParquetFile:
        file = getattr(self._local, "file", None)
        if file is None:
            file = self._local.file = pq.ParquetFile(pa.BufferReader(self._buffer))
        return file

    def __len__(self) -> int:
        return int(self._starts[-1])

    def ids(self) -> list[str]:
        """Every document id in row order (reads only the id column)."""
        return self._file.read(columns=["id"]).column("id").to_pylist()

    def take(self, rows: Sequence[int]) -> list[Document]:
        """The documents at ``rows``, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return []
        if rows.min() < 0 or rows.max() >= len(self):
            raise IndexError(f"row out of range 0..{len(self) - 1}")
        if self._rows is not None:
            return self._rows.take(rows)
        groups = np.searchsorted(self._starts, rows, side="right") - 1
        wanted = np.unique(groups)
        table = self._file.read_row_groups(wanted.tolist())
        # position of each row inside the concatenation of the wanted groups
        sizes = self._starts[wanted + 1] - self._starts[wanted]
        base = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        local = base[np.searchsorted(wanted, groups)] + rows - self._starts[groups]
        picked = table.take(pa.array(local)).to_pylist()
        return [Document(r["id"], r["text"], r["title"], json.loads(r["metadata"])) for r in picked]


class RowRecords:
    """A ``docs.rows`` file, memory-mapped: each row's JSON record at its offset."""

    def __init__(self, path: Path) -> None:
        # the whole file mapped once: it stays readable after a commit removes its name
        self._buffer = pa.memory_map(str(path)).read_buffer()
        size = self._buffer.size
        head = len(ROWS_MAGIC)
        if size < head + 16 or self._buffer[:head].to_pybytes() != ROWS_MAGIC:
            raise CorruptIndex(f"{path}: not a searchkit row file; rebuild the index")
        rows = int(np.frombuffer(self._buffer, _INT64, 1, size - 8)[0])
        start = size - 8 - 8 * (rows + 1)
        if rows < 0 or start < head:
            raise CorruptIndex(f"{path}: truncated row file; rebuild the index")
        self._offsets = np.frombuffer(self._buffer, _INT64, rows + 1, start)
        if self._offsets[0] != head or self._offsets[-1] != start:
            raise CorruptIndex(f"{path}: row offsets do not match the file; rebuild the index")

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def take(self, rows: np.ndarray) -> list[Document]:
        """The documents at ``rows`` (already checked to be in range), in that order."""
        view, offsets, out = memoryview(self._buffer), self._offsets, []
        for row in rows.tolist():
            id_, title, text, metadata = json.loads(view[offsets[row] : offsets[row + 1]].tobytes())
            out.append(Document(id_, text, title, metadata))
        return out
