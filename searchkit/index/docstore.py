"""The Parquet docstore: row i holds the document whose vector has id i."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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
# Small row groups so that fetching a hit reads a few hundred rows, not the file.
ROW_GROUP_ROWS = 256


class DocStoreWriter:
    """Append documents to a new Parquet docstore in row order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")

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

    def close(self) -> None:
        self._writer.close()


class DocStore:
    """Read documents by row without loading the file: only the row groups holding them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # the whole file mapped once: it stays readable after a commit removes its name
        self._buffer = pa.memory_map(str(path)).read_buffer()
        # a ParquetFile must not be read from two threads at once, so each thread has its own
        self._local = threading.local()
        counts = [
            self._file.metadata.row_group(i).num_rows for i in range(self._file.num_row_groups)
        ]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

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
        groups = np.searchsorted(self._starts, rows, side="right") - 1
        wanted = np.unique(groups)
        table = self._file.read_row_groups(wanted.tolist())
        # position of each row inside the concatenation of the wanted groups
        sizes = self._starts[wanted + 1] - self._starts[wanted]
        base = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        local = base[np.searchsorted(wanted, groups)] + rows - self._starts[groups]
        picked = table.take(pa.array(local)).to_pylist()
        return [Document(r["id"], r["text"], r["title"], json.loads(r["metadata"])) for r in picked]
