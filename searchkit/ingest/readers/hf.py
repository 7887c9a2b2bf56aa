"""Read a Hugging Face ``datasets`` folder written by ``save_to_disk``: a document a row.

The dataset is memory-mapped Arrow, read in batches; a ``DatasetDict`` folder is refused with
the folders of its splits (give one). Needs the ``datasets`` package (``pip install datasets``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import cached_property
from typing import Any

from searchkit.errors import CorpusError
from searchkit.ingest.readers.records import RecordReader

BATCH_ROWS = 1024


class DatasetReader(RecordReader):
    """The rows of a saved ``datasets.Dataset`` as documents; progress counts rows. Takes
    ``RecordReader``'s column mapping."""

    KIND = "folder"

    def __init__(self, path: Any, **options: Any) -> None:
        super().__init__(path, **options)
        try:
            import datasets
        except ImportError:
            raise CorpusError(
                self.path, None, "reading a datasets folder needs: pip install datasets"
            ) from None
        try:
            data = datasets.load_from_disk(str(self.path))
        except (FileNotFoundError, ValueError, OSError) as err:
            raise self.fail(None, f"not a datasets folder made by save_to_disk ({err})") from None
        if isinstance(data, datasets.DatasetDict):
            splits = ", ".join(str(self.path / name) for name in data)
            raise self.fail(None, f"a DatasetDict: give the folder of one split ({splits})")
        names = data.column_names
        self.check_columns(names)
        wanted = {self.text_field, self.title_field, *self.id_fields, *(self.fields or names)}
        self._data = data.select_columns([n for n in names if n in wanted])
        self.size = len(data)

    def records(self) -> Iterator[tuple[int, Any]]:
        row = 0
        for batch in self._data.iter(batch_size=BATCH_ROWS):
            columns = list(batch)
            for values in zip(*(batch[c] for c in columns), strict=True):
                row += 1
                yield row, dict(zip(columns, values, strict=True))
            self.position = row

    @cached_property
    def sha256(self) -> str:
        """Checksum of the dataset's Arrow files, in order."""
        digest = hashlib.sha256()
        for entry in self._data.cache_files:
            with open(entry["filename"], "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()
