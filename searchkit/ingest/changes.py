"""What a change of an index accepts (documents checked field by field) and what it reports.

Shared by the plain writer (``searchkit.ingest.writer``) and the sharded one
(``searchkit.ingest.sharded``), which must not import each other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from searchkit.errors import InvalidParameter
from searchkit.ingest.corpus import SkippedLine
from searchkit.models import Document

BLOCK_DOCS = 1024  # documents read, embedded and written at a time: bounds memory


@dataclass(frozen=True)
class CommitReport:
    """What one change did, and the index after it."""

    path: Path
    version: int
    added: int = 0  # new ids
    replaced: int = 0  # existing ids whose document changed
    unchanged: int = 0  # existing ids sent again with the same document: not re-embedded
    deleted: int = 0
    missing: tuple[str, ...] = ()  # ids asked to be deleted that the index does not have
    skipped_count: int = 0  # invalid corpus lines skipped (skip_invalid)
    skipped: tuple[SkippedLine, ...] = ()  # the first of them, with their problems
    passages: int = 0  # vectors written for the added and replaced documents
    chunked: int = 0  # of those documents, how many were split into several passages
    truncated: int = 0  # ... and how many were embedded cut (an index built with --no-chunk)
    rewritten: int = 0  # live documents rewritten by compact or merges (no re-embedding)
    merged: int = 0  # segments merged into others (or dropped, when wholly deleted)
    purged: int = 0  # tombstoned rows compact removed
    documents: int = 0  # live documents after the change
    tombstones: int = 0  # deleted rows still taking space (until compact)
    seconds: float = 0.0


def _check_keys(value: object) -> None:
    """Metadata keys must be text at every depth (JSON would silently turn 1 into "1")."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"key {key!r} is not a string")
            _check_keys(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_keys(item)


def check_documents(docs: Sequence[Document]) -> None:
    """Refuse a batch of documents that cannot be indexed, naming the document and field."""
    seen: dict[str, int] = {}
    for n, doc in enumerate(docs):
        where = f"document {n}"
        if not isinstance(doc, Document):
            raise InvalidParameter(
                f"{where}: expected a searchkit.Document, got {type(doc).__name__}"
            )
        if not isinstance(doc.id, str) or not doc.id.strip():
            raise InvalidParameter(f"{where}: id must be non-empty text, got {doc.id!r}")
        if not isinstance(doc.text, str) or not doc.text.strip():
            raise InvalidParameter(f"{where} (id {doc.id!r}): text must be non-empty text")
        if not isinstance(doc.title, str):
            raise InvalidParameter(
                f"{where} (id {doc.id!r}): title must be text, got {type(doc.title).__name__}"
            )
        if not isinstance(doc.metadata, dict):
            raise InvalidParameter(f"{where} (id {doc.id!r}): metadata must be a dict")
        try:
            (doc.id + doc.title + doc.text).encode("utf-8")
        except UnicodeEncodeError as err:  # a lone surrogate such as "\ud800"
            raise InvalidParameter(f"{where} (id {doc.id!r}): invalid Unicode ({err})") from None
        try:
            _check_keys(doc.metadata)
            json.dumps(doc.metadata, allow_nan=False, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as err:
            raise InvalidParameter(
                f"{where} (id {doc.id!r}): metadata is not JSON data ({err})"
            ) from None
        if doc.id in seen:
            raise InvalidParameter(
                f"{where}: duplicate id {doc.id!r} (also document {seen[doc.id]})"
            )
        seen[doc.id] = n
