"""searchkit: two-stage semantic search (bi-encoder retrieval, CrossEncoder rerank).

Example::

    from searchkit import Document, IndexWriter, Searcher, build_index

    build_index("corpus.jsonl")                      # -> indexes/corpus
    with IndexWriter.open("indexes/corpus") as w:     # upsert, delete, compact
        w.upsert([Document("a17", "new text", "Title", {"year": 2024})])
    hits = Searcher.open("indexes/corpus").search("how do vaccines work", k=5, where="year >= 2020")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from searchkit._version import __version__
from searchkit.errors import (
    CorpusError,
    CorruptIndex,
    DatasetError,
    FilterError,
    IncompatibleIndex,
    IndexExists,
    IndexLocked,
    IndexNotFound,
    InvalidParameter,
    ModelUnavailable,
    RerankerUnavailableWarning,
    SearchkitError,
    UnknownBackend,
)
from searchkit.models import Document, Hit, Hits, Passage
from searchkit.options import SearchOptions

if TYPE_CHECKING:
    from searchkit.index.manifest import Manifest
    from searchkit.ingest.build import BuildReport, build_index
    from searchkit.ingest.corpus import CorpusReader
    from searchkit.ingest.readers import CorpusSource, read_corpus
    from searchkit.ingest.writer import CommitReport, IndexWriter
    from searchkit.query.searcher import Searcher, verify_index

# imported on first use, so that ``import searchkit`` (and the CLI) stays light
_LAZY = {
    "Manifest": "searchkit.index.manifest",
    "BuildReport": "searchkit.ingest.build",
    "build_index": "searchkit.ingest.build",
    "CorpusReader": "searchkit.ingest.corpus",
    "CorpusSource": "searchkit.ingest.readers",
    "read_corpus": "searchkit.ingest.readers",
    "CommitReport": "searchkit.ingest.writer",
    "IndexWriter": "searchkit.ingest.writer",
    "Searcher": "searchkit.query.searcher",
    "verify_index": "searchkit.query.searcher",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'searchkit' has no attribute {name!r}")


__all__ = [
    "BuildReport",
    "CommitReport",
    "CorpusError",
    "CorpusReader",
    "CorpusSource",
    "CorruptIndex",
    "DatasetError",
    "FilterError",
    "Document",
    "Hit",
    "Hits",
    "IncompatibleIndex",
    "IndexExists",
    "IndexLocked",
    "IndexNotFound",
    "IndexWriter",
    "InvalidParameter",
    "Manifest",
    "ModelUnavailable",
    "Passage",
    "RerankerUnavailableWarning",
    "SearchkitError",
    "SearchOptions",
    "Searcher",
    "UnknownBackend",
    "__version__",
    "build_index",
    "read_corpus",
    "verify_index",
]
