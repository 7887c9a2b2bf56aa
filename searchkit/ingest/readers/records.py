"""What the table readers share: the column mapping, records to Documents, bad records, counts."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from searchkit.errors import CorpusError
from searchkit.ingest.corpus import (
    DEFAULT_ENCODING,
    ID_FIELDS,
    MAX_SKIPPED_KEPT,
    SkippedLine,
    check_encoding,
    corpus_sha256,
)
from searchkit.models import Document


class Counts:
    """Documents read, bad records skipped, and the empty-corpus check, for any reader."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.skipped_count = 0
        self.skipped: list[SkippedLine] = []

    def skip(self, where: int, problem: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < MAX_SKIPPED_KEPT:
            self.skipped.append(SkippedLine(where, problem))

    def check_empty(self, what: str = "invalid records") -> None:
        if self.count == 0:
            why = f" ({self.skipped_count} {what} skipped)" if self.skipped_count else ""
            raise CorpusError(self.path, None, f"empty corpus: no documents{why}")


class RecordReader(Counts):
    """A corpus of records (mappings of column to value), each one document.

    Subclasses yield ``(line or row number, record)`` from ``records``; ``UNIT`` says which
    the numbers are: a line is shown as ``file:17``, a row as ``file: row 17``.
    """

    UNIT = "row"
    NOUN = "column"
    KIND = "file"  # what ``path`` must be

    def __init__(
        self,
        path: str | Path,
        *,
        id_field: str | None = None,
        text_field: str = "text",
        title_field: str = "title",
        fields: Sequence[str] | None = None,
        skip_invalid: bool = False,
        encoding: str = DEFAULT_ENCODING,
    ) -> None:
        super().__init__(Path(path))
        self.encoding = check_encoding(encoding)
        exists = self.path.is_dir() if self.KIND == "folder" else self.path.is_file()
        if not exists:
            raise CorpusError(self.path, None, f"no such {self.KIND}")
        self.id_fields = (id_field,) if id_field else ID_FIELDS
        self.text_field, self.title_field = text_field, title_field
        self.fields = tuple(fields) if fields is not None else None
        self.skip_invalid = skip_invalid
        self.size = 0
        self.position = 0
        self._options = {
            "id_field": id_field, "text_field": text_field, "title_field": title_field,
            "fields": fields, "encoding": encoding,
        }  # fmt: skip
        self._seen: dict[str, int] = {}

    def records(self) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    @cached_property
    def sha256(self) -> str:
        """Checksum of the file's (uncompressed) bytes."""
        return corpus_sha256(self.path)

    def reopen(self, *, skip_invalid: bool) -> RecordReader:
        """A new reader of the same corpus with the same settings, from the start."""
        return type(self)(self.path, **self._options, skip_invalid=skip_invalid)

    def __iter__(self) -> Iterator[Document]:
        for where, record in self.records():
            try:
                doc = self.document(where, record)
            except CorpusError as err:
                if not self.skip_invalid:
                    raise
                self.skip(where, err.problem.removeprefix(f"{self.UNIT} {where}: "))
                continue
            self.count += 1
            yield doc
        self.check_empty()

    def fail(self, where: int | None, problem: str) -> CorpusError:
        if self.UNIT == "line" or where is None:
            return CorpusError(self.path, where, problem)
        return CorpusError(self.path, None, f"{self.UNIT} {where}: {problem}")

    def check_columns(self, columns: Iterable[str]) -> None:
        """Refuse, before reading, a header or schema that lacks a mapped column."""
        names = list(columns)
        shown = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
        wanted = [(self.text_field, "text_field")]
        if not any(f in names for f in self.id_fields):
            wanted.append((" or ".join(self.id_fields), "id_field"))
        wanted += [(f, "fields") for f in self.fields or ()]
        for name, param in wanted:
            if name not in names:
                raise self.fail(None, f"no column {name!r} (columns: {shown}); set {param}=")

    def document(self, where: int, record: Any) -> Document:
        """The document of one record, or ``CorpusError`` naming the record and column."""
        if not isinstance(record, Mapping):
            raise self.fail(where, f"expected an object, got {type(record).__name__}")
        doc_id = self._id(where, record)
        text = record.get(self.text_field)
        if text is None and self.text_field not in record:
            raise self.fail(where, f"missing {self.NOUN} {self.text_field!r} (set text_field=)")
        if not isinstance(text, str) or not text.strip():
            kind = "empty" if text is None or isinstance(text, str) else type(text).__name__
            raise self.fail(where, f"empty text ({self.NOUN} {self.text_field!r} is {kind})")
        title = record.get(self.title_field)
        if title is not None and not isinstance(title, str):
            raise self.fail(where, f"{self.NOUN} {self.title_field!r} must be text")
        keep = self.fields or [k for k in record if k not in self._mapped]
        meta = {k: self.value(where, k, record[k]) for k in keep if k in record}
        self._seen[doc_id] = where
        return Document(doc_id, text, title or "", meta)

    @cached_property
    def _mapped(self) -> set[str]:
        return {self.text_field, self.title_field, *self.id_fields}

    def _id(self, where: int, record: Mapping[str, Any]) -> str:
        field = next((f for f in self.id_fields if f in record), None)
        if field is None:
            names = " or ".join(repr(f) for f in self.id_fields)
            raise self.fail(where, f"missing id {self.NOUN} {names} (set id_field=)")
        value = record[field]
        # integer ids (row numbers, keys of a table) are written as decimal text
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            got = "empty" if value is None or isinstance(value, str) else type(value).__name__
            raise self.fail(where, f"id {self.NOUN} {field!r} must be non-empty text, got {got}")
        if value in self._seen:
            first = self._seen[value]
            raise self.fail(where, f"duplicate id {value!r} (first on {self.UNIT} {first})")
        return value

    def value(self, where: int, column: str, value: Any) -> Any:
        """A metadata value as JSON data: dates as ISO text, decimals as floats, NaN as None."""
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dt.date | dt.time):
            return value.isoformat()
        if isinstance(value, decimal.Decimal):
            return float(value)
        if isinstance(value, bytes | bytearray):
            raise self.fail(
                where, f"{self.NOUN} {column!r} holds bytes, which metadata cannot keep; leave "
                "it out with fields=",
            )  # fmt: skip
        if isinstance(value, Mapping):
            return {str(k): self.value(where, column, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(where, column, v) for v in value]
        return value
