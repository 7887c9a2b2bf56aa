"""Read a JSON array of objects (plain or gzipped) one object at a time, in bounded memory.

The objects take the fields of JSONL lines (``CorpusReader``): an id, a text, a title, the rest
as metadata; problems name the line where the object starts.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

from searchkit.ingest.corpus import open_corpus
from searchkit.ingest.readers.records import RecordReader

CHUNK = 1 << 16  # bytes read at a time
MAX_OBJECT = 1 << 28  # characters one object may span: beyond, the file is refused
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\r\n]*")


class JsonArrayReader(RecordReader):
    """The objects of a top-level JSON array as documents; progress counts bytes. Takes
    ``RecordReader``'s field mapping (integer ids are written as text)."""

    UNIT = "line"
    NOUN = "field"

    def __init__(self, path: Any, **options: Any) -> None:
        super().__init__(path, **options)
        self.size = self.path.stat().st_size

    def records(self) -> Iterator[tuple[int, Any]]:
        with open_corpus(self.path) as (raw, stream):
            text = _Text(stream, self.encoding, lambda: setattr(self, "position", raw.tell()))
            try:
                yield from self._objects(text)
            except UnicodeDecodeError as err:
                problem = f"not {self.encoding} text ({err.reason}); pass encoding="
                raise self.fail(text.line, problem) from None

    def _objects(self, text: _Text) -> Iterator[tuple[int, Any]]:
        first = text.peek()
        if first != "[":
            hint = ' (one object per line is JSONL: pass format="jsonl")' if first == "{" else ""
            raise self.fail(text.line, f"expected a JSON array of objects{hint}")
        text.at += 1
        if text.peek() == "]":
            text.at += 1
        else:
            while True:
                text.peek()
                start = text.line
                try:
                    yield start, text.value()
                except json.JSONDecodeError as err:
                    raise self.fail(text.line, f"invalid JSON ({err.msg})") from None
                except ValueError as err:
                    raise self.fail(start, str(err)) from None
                after = text.peek()
                text.at += 1
                if after == "]":
                    break
                if after != ",":
                    raise self.fail(text.line, "expected ',' or ']' after an object")
        if text.peek():
            raise self.fail(text.line, "unexpected data after the array")


class _Text:
    """The text of a byte stream, decoded as it is read, with the line of the read position."""

    def __init__(self, stream: IO[bytes], encoding: str, on_read: Callable[[], None]) -> None:
        self.stream, self.on_read = stream, on_read
        self.decoder = codecs.getincrementaldecoder(encoding)()
        self.buffer, self.at, self.line, self.eof = "", 0, 1, False
        self._first = True

    def more(self, size: int = CHUNK) -> bool:
        """Read about ``size`` more bytes, dropping what was consumed; False at the end."""
        if self.eof:
            return False
        data = self.stream.read(size)
        self.eof = not data
        text = self.decoder.decode(data, final=self.eof)
        if self._first:
            text, self._first = text.removeprefix("\ufeff"), False  # a byte order mark
        self.buffer, self.at = self.buffer[self.at :] + text, 0
        self.on_read()
        return True

    def peek(self) -> str:
        """The next character that is not JSON whitespace ("" at the end), not consumed."""
        while True:
            end = _SPACE.match(self.buffer, self.at).end()  # type: ignore[union-attr]
            self.line += self.buffer.count("\n", self.at, end)
            self.at = end
            if self.at < len(self.buffer):
                return self.buffer[self.at]
            if not self.more():
                return ""

    def value(self) -> Any:
        """The JSON value at the read position, reading more while it is incomplete."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buffer, self.at)
            except json.JSONDecodeError as err:
                pending = len(self.buffer) - self.at
                if pending > MAX_OBJECT:
                    raise ValueError(
                        f"an object longer than {MAX_OBJECT:,} characters, or invalid JSON"
                    ) from None
                if self.more(max(CHUNK, pending)):  # it may only be cut: read on
                    continue
                self.line += self.buffer.count("\n", self.at, err.pos)
                raise
            self.line += self.buffer.count("\n", self.at, end)
            self.at = end
            return value
