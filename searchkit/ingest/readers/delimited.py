"""Read CSV and TSV files (the csv module, streamed): a header line, then a document a row.

Problems name the line where the row starts (the header is line 1). Metadata cells that read
as numbers (``2021``, ``-0.5``; not ``007``) become numbers, so filters compare them as such;
empty cells are None.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

from searchkit.ingest.corpus import not_text, open_corpus
from searchkit.ingest.readers.records import RecordReader

_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(0|[1-9][0-9]*)\.[0-9]+([eE][-+]?[0-9]+)?")
# one cell may hold a whole document: far past csv's default of 128 KiB
FIELD_LIMIT = 1 << 30


class CsvReader(RecordReader):
    """The rows of a CSV file (plain or gzipped) as documents; progress counts bytes.
    Takes ``RecordReader``'s column mapping."""

    UNIT = "line"
    DELIMITER = ","

    def __init__(self, path: Any, **options: Any) -> None:
        super().__init__(path, **options)
        self.size = self.path.stat().st_size
        csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
        for _ in self._rows(check_only=True):
            pass

    def records(self) -> Iterator[tuple[int, Any]]:
        return self._rows(check_only=False)

    def _rows(self, check_only: bool) -> Iterator[tuple[int, Any]]:
        with open_corpus(self.path) as (raw, stream):
            lines = _Lines(stream, self.encoding, self.fail)
            rows = csv.reader(lines, delimiter=self.DELIMITER)
            try:
                header = next(rows, None)
                if header is None:
                    raise self.fail(None, "empty file: no header line")
                self.check_columns(header)
                if check_only:
                    return
                while True:
                    start = lines.number + 1  # csv.reader reads no line ahead of its row
                    values = next(rows, None)
                    if values is None:
                        return
                    self.position = raw.tell()
                    if values:
                        yield start, self._record(start, header, values)
            except csv.Error as err:
                raise self.fail(lines.number, f"bad CSV ({err})") from None

    def _record(self, line: int, header: list[str], values: list[str]) -> dict[str, Any]:
        if len(values) != len(header):
            raise self.fail(
                line, f"{len(values)} values for the header's {len(header)} columns"
                f" (an unquoted {'tab' if self.DELIMITER == chr(9) else 'comma'}?)",
            )  # fmt: skip
        return dict(zip(header, values, strict=True))

    def value(self, where: int, column: str, value: Any) -> Any:
        if value == "":
            return None
        if _INT.fullmatch(value):
            return int(value)
        if _FLOAT.fullmatch(value):
            return float(value)
        return value


class _Lines:
    """The decoded lines of a byte stream for csv.reader; ``number``: the last one read."""

    def __init__(self, stream: IO[bytes], encoding: str, fail: Callable[..., Exception]) -> None:
        self.stream, self.encoding, self.fail = stream, encoding, fail
        self.number = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.stream.readline()
        if not line:
            raise StopIteration
        self.number += 1
        try:
            text = line.decode(self.encoding)
        except UnicodeDecodeError as err:
            raise self.fail(self.number, not_text(line, self.encoding, err)) from None
        return text.removeprefix("\ufeff") if self.number == 1 else text


class TsvReader(CsvReader):
    """A tab-separated ``CsvReader`` (quoted cells allowed, as pandas and spreadsheets write)."""

    DELIMITER = "\t"
