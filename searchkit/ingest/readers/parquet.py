"""Read a Parquet file by row groups (pyarrow): one document a row, rows numbered from 1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from searchkit.ingest.readers.records import RecordReader

BATCH_ROWS = 1024  # rows turned into Python objects at a time
READ_BUFFER = 1 << 20  # bytes read from the file at a time


class ParquetReader(RecordReader):
    """The rows of a Parquet file as documents; with ``fields``, only the mapped columns are
    read. Progress counts rows. Takes ``RecordReader``'s column mapping."""

    def __init__(self, path: Any, **options: Any) -> None:
        super().__init__(path, **options)
        try:
            # pre-buffering keeps every row group read so far: memory would grow with the file
            self._file = pq.ParquetFile(self.path, pre_buffer=False, buffer_size=READ_BUFFER)
        except (pa.ArrowInvalid, OSError) as err:
            raise self.fail(None, f"not a Parquet file ({err})") from None
        names = self._file.schema_arrow.names
        self.check_columns(names)
        self.size = self._file.metadata.num_rows
        wanted = {self.text_field, self.title_field, *self.id_fields, *(self.fields or names)}
        self._columns = [n for n in names if n in wanted]

    def records(self) -> Iterator[tuple[int, Any]]:
        row = 0
        try:
            batches = self._file.iter_batches(BATCH_ROWS, columns=self._columns, use_threads=False)
            for batch in batches:
                for record in batch.to_pylist():
                    row += 1
                    yield row, record
                self.position = row
        except (pa.ArrowException, OSError) as err:
            raise self.fail(row + 1, f"cannot read the file ({err})") from None
