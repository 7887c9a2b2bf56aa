"""Read CSV and TSV files (the csv module, streamed): a header line, then a document a row.

Problems name the line where the row starts (the header is line 1). Metadata cells that read
as numbers (``2021``, ``-0.5``; not ``007``) become numbers, so filters compare them as such;
empty cells are None.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

from searchkit.ingest.corpus import open_corpus
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

    def records(self) -> Iterator[tuple[int, Any]]:
        # utf-8-sig: spreadsheets start their CSV exports with a byte order mark
        encoding = "utf-8-sig" if self.encoding == "utf-8" else self.encoding
        with open_corpus(self.path) as (raw, stream):
            text = io.TextIOWrapper(stream, encoding=encoding, newline="")
            rows = csv.reader(text, delimiter=self.DELIMITER)
            line = 1
            try:
                header = next(rows, None)
                if header is None:
                    raise self.fail(None, "empty file: no header line")
                self.check_columns(header)
                for values in rows:
                    start, line = line + 1, rows.line_num
                    self.position = raw.tell()
                    if values:
                        yield start, self._record(start, header, values)
            except UnicodeDecodeError as err:
                name = "UTF-8" if self.encoding == "utf-8" else self.encoding
                problem = f"not {name} text ({err.reason}); pass encoding=, e.g. gb18030"
                raise self.fail(line + 1, problem) from None
            except csv.Error as err:
                raise self.fail(line + 1, f"bad CSV ({err})") from None

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


class TsvReader(CsvReader):
    """A tab-separated ``CsvReader`` (quoted cells allowed, as pandas and spreadsheets write)."""

    DELIMITER = "\t"
