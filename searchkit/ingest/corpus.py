"""Stream a JSONL corpus (plain or .gz) as Documents, with errors that name file and line."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from searchkit.errors import CorpusError, InvalidParameter
from searchkit.models import Document

ID_FIELDS = ("_id", "id")
MAX_SKIPPED_KEPT = 20
DEFAULT_ENCODING = "utf-8"
# what a line that does not decode is tried in, to say which encoding it is likely in
LIKELY_ENCODINGS = ("utf-8", "gb18030", "big5")
_PROBE = b'{"_id": "a", "text": "x"}\n'


@dataclass(frozen=True)
class SkippedLine:
    """A corpus line left out by ``skip_invalid``, and why."""

    line: int
    problem: str


class CorpusReader:
    """Iterate the documents of a JSONL corpus without loading the file.

    Each line is a JSON object with an id (``_id`` or ``id``, or ``id_field``), a non-empty
    ``text``, an optional ``title``; every other field is kept as metadata (a ``metadata``
    object is merged into it, as in BEIR files). Other formats: ``searchkit.ingest.readers``.

    Args:
        path: a ``.jsonl`` or ``.jsonl.gz`` file.
        id_field: the field holding the document id; default: ``_id``, else ``id``.
        text_field: the field holding the text.
        title_field: the field holding the title (optional in each line).
        fields: the fields kept as metadata (default: all the others).
        skip_invalid: skip bad lines and record them in ``skipped`` instead of raising.
        encoding: the text encoding of the file, e.g. ``gb18030`` (GBK's superset) or
            ``big5``; any that keeps ASCII as ASCII (one line ends at each ``\\n`` byte).
            A byte order mark at the start is dropped.

    Example::

        reader = CorpusReader("corpus.jsonl")
        for doc in reader:
            ...
        print(reader.count, reader.sha256)
    """

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
        self.path = Path(path)
        self.encoding = check_encoding(encoding)
        if not self.path.is_file():
            raise CorpusError(self.path, None, "no such file; give the path of a .jsonl corpus")
        self.id_fields = (id_field,) if id_field else ID_FIELDS
        self.text_field, self.title_field = text_field, title_field
        self.fields = tuple(fields) if fields is not None else None
        self.skip_invalid = skip_invalid
        self.size = self.path.stat().st_size
        self.position = 0
        self.count = 0
        self.skipped_count = 0
        self.skipped: list[SkippedLine] = []
        self._hash = hashlib.sha256()
        self._seen: dict[str, int] = {}

    @property
    def sha256(self) -> str:
        """Checksum of the uncompressed bytes read so far (the whole corpus after iterating)."""
        return self._hash.hexdigest()

    def reopen(self, *, skip_invalid: bool) -> CorpusReader:
        """A new reader of the same file with the same settings, from the start."""
        return CorpusReader(
            self.path, id_field=self.id_fields[0] if len(self.id_fields) == 1 else None,
            text_field=self.text_field, title_field=self.title_field, fields=self.fields,
            skip_invalid=skip_invalid, encoding=self.encoding,
        )  # fmt: skip

    def __iter__(self) -> Iterator[Document]:
        for _, doc in self.documents(self.lines()):
            yield doc
        if self.count == 0:
            why = f" ({self.skipped_count} invalid lines skipped)" if self.skipped_count else ""
            raise CorpusError(self.path, None, f"empty corpus: no documents{why}")

    def documents(self, lines: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, Document]]:
        """Parse numbered lines of this corpus with the reader's rules: (line number, document)
        for each valid line; a bad one raises ``CorpusError`` (or is skipped with
        ``skip_invalid``). Workers that read one block of the corpus use it directly."""
        for line_no, line in lines:
            if not line.strip():
                continue
            try:
                doc = self._parse(line, line_no)
            except CorpusError as err:
                if not self.skip_invalid:
                    raise
                self._skip(line_no, err.problem)
                continue
            self.count += 1
            yield line_no, doc

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """The file's raw lines, numbered from 1, for ``documents`` (``sha256`` and
        ``position`` follow them)."""
        with open_corpus(self.path) as (raw, stream):
            try:
                for line_no, line in enumerate(stream, start=1):
                    self._hash.update(line)
                    self.position = raw.tell()
                    yield line_no, line
            except (OSError, EOFError) as err:  # truncated or corrupt gzip
                raise CorpusError(self.path, None, f"cannot read file: {err}") from None

    def line_id(self, line: bytes) -> str | None:
        """The id of a line that may be invalid, when it has one (to tell whose line it is)."""
        try:
            record = json.loads(line.decode(self.encoding).removeprefix("\ufeff"))
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            return None
        if not isinstance(record, dict):
            return None
        doc_id = next((record[f] for f in self.id_fields if f in record), None)
        return doc_id if isinstance(doc_id, str) else None

    def _skip(self, line_no: int, problem: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < MAX_SKIPPED_KEPT:
            self.skipped.append(SkippedLine(line_no, problem))

    def _fail(self, line_no: int, problem: str) -> CorpusError:
        return CorpusError(self.path, line_no, problem)

    def _parse(self, line: bytes, line_no: int) -> Document:
        try:
            # decode strictly ourselves: json.loads(bytes) would guess UTF-16/32
            text = line.rstrip(b"\r\n").decode(self.encoding).removeprefix("\ufeff")
        except UnicodeDecodeError as err:
            raise self._fail(line_no, not_text(line, self.encoding, err)) from None
        if "\x00" in text:  # never valid in JSON text; the mark of UTF-16
            raise self._fail(line_no, "not UTF-8 text (NUL bytes: UTF-16?); save it as UTF-8")
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            # json's own messages may end in "at": "Unterminated string starting at"
            problem = f"invalid JSON: {err.msg.removesuffix(' at')} at column {err.colno}"
            raise self._fail(line_no, problem) from None
        if "\\u" in text.lower():  # only an escape can make a lone surrogate
            _check_unicode(record, line_no, self._fail)
        if not isinstance(record, dict):
            kind = type(record).__name__
            raise self._fail(line_no, f"expected a JSON object, got {kind}")
        doc_id = self._id(record, line_no)
        name = self.text_field
        text = record.get(name)
        if text is None:
            raise self._fail(line_no, f"missing field {name!r}")
        if not isinstance(text, str):
            raise self._fail(line_no, f"field {name!r} must be a string, got {_kind(text)}")
        if not text.strip():
            raise self._fail(line_no, f"field {name!r} is empty")
        title = record.get(self.title_field)
        title = "" if title is None else title
        if not isinstance(title, str):
            raise self._fail(
                line_no, f"field {self.title_field!r} must be a string, got {_kind(title)}"
            )
        self._seen[doc_id] = line_no
        return Document(doc_id, text, title, self._metadata(record))

    def _id(self, record: dict[str, Any], line_no: int) -> str:
        field = next((f for f in self.id_fields if f in record), None)
        if field is None:
            names = " or ".join(repr(f) for f in self.id_fields)
            raise self._fail(
                line_no, f"missing id field {names} (set id_field= if it is named otherwise)"
            )
        doc_id = record[field]
        if not isinstance(doc_id, str):
            numeric = isinstance(doc_id, int | float) and not isinstance(doc_id, bool)
            advice = f': write it as "{doc_id}"' if numeric else ""
            raise self._fail(
                line_no, f"id field {field!r} must be a string, got {_kind(doc_id)}{advice}"
            )
        if not doc_id.strip():
            raise self._fail(line_no, f"id field {field!r} is empty")
        if doc_id in self._seen:
            raise self._fail(
                line_no, f"duplicate id {doc_id!r} (first on line {self._seen[doc_id]})"
            )
        return doc_id

    def _metadata(self, record: dict[str, Any]) -> dict[str, Any]:
        skip = {self.text_field, self.title_field, *self.id_fields}
        meta = {k: v for k, v in record.items() if k not in skip and k != "metadata"}
        nested = record.get("metadata")
        if isinstance(nested, dict):
            meta.update(nested)
        elif nested is not None:
            meta["metadata"] = nested
        if self.fields is not None:
            meta = {k: meta[k] for k in self.fields if k in meta}
        return meta


@contextmanager
def open_corpus(path: Path) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """(raw file, byte stream): the stream decompresses when the file is gzipped."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        yield raw, gzip.GzipFile(fileobj=raw) if gzipped else raw


def check_encoding(encoding: str) -> str:
    """The codec name of ``encoding``, if a corpus in it can be read line by line.

    Raises:
        InvalidParameter: not a text encoding Python knows, or one in which a ``\\n`` byte
            may be part of a character (UTF-16, UTF-32, EBCDIC): convert such files to UTF-8.
    """
    try:
        name = codecs.lookup(encoding).name
        ascii_safe = _PROBE.decode(name) == _PROBE.decode("ascii")
    except LookupError:
        raise InvalidParameter(
            f'unknown encoding {encoding!r}; give a text encoding such as "utf-8", "gb18030" '
            'or "big5"',
            param="encoding",
        ) from None
    except UnicodeDecodeError:
        ascii_safe = False
    if not ascii_safe:
        raise InvalidParameter(
            f"a corpus in {name} cannot be read line by line (its characters may hold the "
            f"newline byte); convert it to UTF-8, e.g. iconv -f {name} -t utf-8",
            param="encoding",
        )
    return name


def not_text(line: bytes, encoding: str, err: UnicodeDecodeError) -> str:
    """Why ``line`` is not text in ``encoding`` (a codec name), and which encoding it decodes
    in, if one of the likely ones."""
    name = "UTF-8" if encoding.startswith("utf-8") else encoding
    problem = f"not {name} text ({err.reason})"
    for other in LIKELY_ENCODINGS:
        if other != encoding and _likely(line, other):
            return f'{problem} (try encoding="{other}")'
    return problem


def _likely(line: bytes, encoding: str) -> bool:
    """``line`` decodes in ``encoding``, and for the Chinese ones mostly into common characters:
    bytes of another encoding decode into rare ones (Latin-1 "ü" then "l" is a GBK pair, and
    Big5 bytes are GBK's too)."""
    try:
        text = line.decode(encoding)
    except UnicodeDecodeError:
        return False
    wide = [c for c in text if not c.isascii()]
    if encoding == "utf-8" or not wide:
        return True
    return sum(_common(c, encoding) for c in wide) >= len(wide) / 2


def _common(char: str, encoding: str) -> bool:
    """A character of GB2312 (gb18030), or of Big5's symbols and common characters (big5)."""
    try:
        data = char.encode("gb2312" if encoding == "gb18030" else encoding)
    except UnicodeEncodeError:
        return False
    return encoding != "big5" or data[0] <= 0xC6


def corpus_sha256(path: str | Path) -> str:
    """sha256 of a corpus' uncompressed bytes, as recorded in an index manifest."""
    digest = hashlib.sha256()
    with open_corpus(Path(path)) as (_, stream):
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_unicode(record: Any, line_no: int, fail: Any) -> None:
    """Refuse lone surrogates (``"\\ud800"`` escapes): they are not text and cannot be stored."""
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        bad = err.object[err.start : err.end].encode("unicode_escape").decode()
        raise fail(line_no, f"invalid Unicode: lone surrogate {bad}; fix the escape") from None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
