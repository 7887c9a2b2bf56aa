"""Read a folder of files: a document per text, Markdown, HTML or PDF file, a document per row
of each table (CSV, TSV, JSONL, JSON, Parquet).

A file's document has its path relative to the folder as id (``guide/install.md``; a table's
rows ``faq.csv#q1``), its first heading, HTML ``<title>``, PDF title or file name as title,
and ``path`` and ``mtime`` (UTC, ISO 8601) as metadata (PDFs also ``pages``). Re-adding the
folder to an index re-embeds only the files that changed (their text, title or mtime).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from searchkit.errors import CorpusError
from searchkit.ingest.corpus import MAX_SKIPPED_KEPT, SkippedLine
from searchkit.ingest.readers.files import SUFFIXES, FileProblem, extract
from searchkit.ingest.readers.records import RecordReader
from searchkit.models import Document

# the files read when no include= is given
INCLUDE = ("*.txt", "*.md", "*.markdown", "*.html", "*.htm", "*.pdf", "*.csv", "*.tsv")
# always left out: hidden files and folders (.git, .DS_Store, ...)
HIDDEN = (".*", "*/.*")
TABLES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}


class FolderReader(RecordReader):
    """The files under a folder, in path order, as documents; progress counts bytes.

    Args:
        path: the folder.
        include: globs of the files to read, matched on the path relative to the folder,
            where ``*`` also crosses folders (``*.md`` finds ``a/b/c.md``); default ``INCLUDE``.
        exclude: globs of files to leave out, e.g. ``drafts/*``.
        **options: the column mapping of the tables, ``skip_invalid`` and ``encoding`` (of
            text files and tables; PDFs carry their own).
    """

    KIND = "folder"

    def __init__(
        self,
        path: Any,
        *,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(path, **options)
        self.include = tuple(include or INCLUDE)
        self.exclude = (*HIDDEN, *(exclude or ()))
        self._options.update(include=include, exclude=exclude)
        self.files = sorted(self._walk())
        self.size = sum(size for _, size in self.files)
        self._digest = hashlib.sha256()

    def _walk(self) -> Iterator[tuple[str, int]]:
        for root, dirs, names in os.walk(self.path):
            here = Path(root).relative_to(self.path)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                rel = (here / name).as_posix()
                if _matches(rel, self.include) and not _matches(rel, self.exclude):
                    yield rel, (Path(root) / name).stat().st_size

    @property
    def sha256(self) -> str:  # type: ignore[override]
        """Checksum of the paths and bytes of the files read so far (all, after iterating)."""
        return self._digest.hexdigest()

    def __iter__(self) -> Iterator[Document]:
        for number, (rel, size) in enumerate(self.files, start=1):
            try:
                yield from self._file(rel)
            except CorpusError as err:
                if not self.skip_invalid:
                    raise
                where = f"{rel}:{err.line}" if err.line is not None else rel
                self.skip(number, f"{where}: {err.problem}")
            self.position += size
        if self.count == 0 and not self.files:
            patterns = ", ".join(self.include)
            raise CorpusError(self.path, None, f"empty corpus: no file matches {patterns}")
        self.check_empty("invalid files")

    def _file(self, rel: str) -> Iterator[Document]:
        path = self.path / rel
        data = path.read_bytes()
        self._digest.update(rel.encode("utf-8") + b"\0" + hashlib.sha256(data).digest())
        stat = path.stat()
        mtime = dt.datetime.fromtimestamp(int(stat.st_mtime), dt.timezone.utc)
        meta: dict[str, Any] = {"path": rel, "mtime": mtime.isoformat().replace("+00:00", "Z")}
        suffix = path.suffix.lower()
        if suffix in TABLES:
            yield from self._rows(rel, TABLES[suffix], meta)
            return
        if suffix not in SUFFIXES:
            known = ", ".join(sorted({*SUFFIXES, *TABLES}))
            raise CorpusError(path, None, f"cannot read {suffix or 'such'} files ({known}); "
                              "leave it out with exclude=")  # fmt: skip
        try:
            text, title, extra = extract(path, data, self.encoding)
        except FileProblem as err:
            raise CorpusError(path, None, str(err)) from None
        if not text.strip():
            raise CorpusError(path, None, "empty text")
        self.count += 1
        yield Document(rel, text, title, {**meta, **extra})

    def _rows(self, rel: str, format: str, meta: dict[str, Any]) -> Iterator[Document]:
        from searchkit.ingest.readers import read_corpus

        options = {k: v for k, v in self._options.items() if k not in ("include", "exclude")}
        table = read_corpus(self.path / rel, format, **options, skip_invalid=self.skip_invalid)
        for doc in table:
            self.count += 1
            yield Document(f"{rel}#{doc.id}", doc.text, doc.title, {**doc.metadata, **meta})
        self.skipped_count += table.skipped_count
        room = MAX_SKIPPED_KEPT - len(self.skipped)
        self.skipped += [SkippedLine(s.line, f"{rel}: {s.problem}") for s in table.skipped][:room]


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(rel, p) for p in patterns)
