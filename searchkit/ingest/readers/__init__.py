"""Corpus readers: one ``CorpusSource`` protocol, a reader per format, ``read_corpus`` to pick.

Formats: ``jsonl`` (``CorpusReader``), ``json`` (an array of objects), ``parquet`` (streamed by
row group), ``csv`` and ``tsv``, ``hf`` (a ``datasets`` folder made by ``save_to_disk``) and
``folder`` (a tree of ``.txt``, ``.md``, ``.html`` and ``.pdf`` files, one document each, and
of tables, one document a row). Every reader streams, keeps the progress and checksum the
builders show and record, and names the file and line or row of a bad record.

May import: ``searchkit.ingest.corpus`` and below.
"""

from __future__ import annotations

import codecs
import importlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from searchkit.errors import InvalidParameter
from searchkit.ingest.corpus import SkippedLine, open_corpus
from searchkit.models import Document

__all__ = ["FORMATS", "CorpusSource", "detect_format", "read_corpus", "as_source"]

_READERS = {
    "jsonl": "searchkit.ingest.corpus:CorpusReader",
    "json": "searchkit.ingest.readers.jsonarray:JsonArrayReader",
    "parquet": "searchkit.ingest.readers.parquet:ParquetReader",
    "csv": "searchkit.ingest.readers.delimited:CsvReader",
    "tsv": "searchkit.ingest.readers.delimited:TsvReader",
    "hf": "searchkit.ingest.readers.hf:DatasetReader",
    "folder": "searchkit.ingest.readers.folder:FolderReader",
}
FORMATS = tuple(_READERS)
_SUFFIXES = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet",
    ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
}  # fmt: skip
# the files that mark a folder written by datasets' save_to_disk (a Dataset, a DatasetDict)
HF_MARKERS = ("state.json", "dataset_dict.json")


@runtime_checkable
class CorpusSource(Protocol):
    """Documents read from a corpus, in order, with what the builders report.

    ``size`` and ``position`` measure progress in the reader's own unit (bytes, rows);
    ``sha256`` is the corpus' checksum once it has been read; ``count``, ``skipped_count`` and
    ``skipped`` (the first few bad records, with ``skip_invalid``) follow the iteration.
    Iterating an empty corpus raises ``CorpusError``.
    """

    path: Path
    size: int
    position: int
    count: int
    skipped_count: int
    skipped: list[SkippedLine]

    @property
    def sha256(self) -> str: ...

    def __iter__(self) -> Iterator[Document]: ...

    def reopen(self, *, skip_invalid: bool) -> CorpusSource:
        """A new reader of the same corpus with the same settings, from the start."""
        ...


def detect_format(path: str | Path) -> str:
    """The format of ``path`` from its name (``.gz`` looked through) or, for a folder, its
    files: ``hf`` for a ``save_to_disk`` folder, else ``folder``. Other names read as JSONL,
    and so does a ``.json`` file that starts with an object rather than an array (JSON
    lines, as pandas and many exporters name them)."""
    path = Path(path)
    if path.is_dir():
        return "hf" if any((path / m).is_file() for m in HF_MARKERS) else "folder"
    name = path.name.lower().removesuffix(".gz")
    found = _SUFFIXES.get(Path(name).suffix, "jsonl")
    if found == "json" and path.is_file():
        with open_corpus(path) as (_, stream):
            start = stream.read(1 << 12).lstrip(b" \t\r\n").removeprefix(codecs.BOM_UTF8)
        return "jsonl" if start.lstrip().startswith(b"{") else "json"
    return found


def read_corpus(
    path: str | Path,
    format: str | None = None,
    *,
    id_field: str | None = None,
    text_field: str | None = None,
    title_field: str | None = None,
    fields: Sequence[str] | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    skip_invalid: bool = False,
    encoding: str = "utf-8",
) -> CorpusSource:
    """Open the corpus at ``path`` with the reader of its format.

    Args:
        path: a file or folder.
        format: one of ``FORMATS`` (default: ``detect_format``).
        id_field: the column of the document id (default ``_id``, else ``id``).
        text_field: the column of the text (default ``text``).
        title_field: the column of the title (default ``title``; optional).
        fields: the columns kept as metadata (default: all the others).
        include: a folder's files to read, as globs on their relative paths where ``*``
            also crosses folders (default: ``searchkit.ingest.readers.folder.INCLUDE``).
        exclude: globs of files to leave out (hidden files and folders always are).
        skip_invalid: skip bad records (reported in ``skipped``) instead of raising.
        encoding: the text encoding of JSONL, JSON, CSV and text files.

    Example::

        docs = read_corpus("export.csv", text_field="body", fields=["year"])
        for doc in docs:
            ...
    """
    if format is None:
        format = detect_format(path)
    if format not in _READERS:
        raise InvalidParameter(
            f"unknown corpus format {format!r}; choose one of: {', '.join(FORMATS)}",
            param="format",
        )
    if format != "folder" and (include or exclude):
        raise InvalidParameter(
            f"include and exclude patterns select the files of a folder, not of a {format} "
            "corpus; give the folder's path",
            param="include" if include else "exclude",
        )
    module, _, name = _READERS[format].partition(":")
    reader = getattr(importlib.import_module(module), name)
    mapping: dict[str, Any] = {"id_field": id_field, "fields": fields}
    mapping.update(text_field=text_field or "text", title_field=title_field or "title")
    if format == "folder":
        mapping.update(include=include, exclude=exclude)
    return reader(path, **mapping, skip_invalid=skip_invalid, encoding=encoding)


def as_source(
    corpus: str | Path | CorpusSource,
    format: str | None = None,
    *,
    id_field: str | None = None,
    skip_invalid: bool = False,
    encoding: str = "utf-8",
) -> CorpusSource:
    """``corpus`` itself when it is an open source, else ``read_corpus`` of the path; the
    reading options go to ``read_corpus`` then, and are refused with a source."""
    if isinstance(corpus, str | Path):
        return read_corpus(
            corpus, format, id_field=id_field, skip_invalid=skip_invalid, encoding=encoding
        )
    given = {"format": format, "id_field": id_field, "skip_invalid": skip_invalid or None}
    given["encoding"] = None if encoding == "utf-8" else encoding
    extra = [name for name, value in given.items() if value is not None]
    if extra:
        raise InvalidParameter(
            f"{', '.join(extra)}: give these to read_corpus(), not with an open corpus source",
            param=extra[0],
        )
    return corpus
