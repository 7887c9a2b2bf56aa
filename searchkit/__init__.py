"""searchkit: two-stage semantic search (bi-encoder retrieval, CrossEncoder rerank).

Example::

    from searchkit import Document, IndexWriter, Searcher, build_index

    build_index("corpus.jsonl")                      # -> indexes/corpus
    with IndexWriter.open("indexes/corpus") as w:     # upsert, delete, compact
        w.upsert([Document("a17", "new text", "Title", {"year": 2024})])
    hits = Searcher.open("indexes/corpus").search("how do vaccines work", k=5, where="year >= 2020")
"""

from __future__ import annotations

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
from searchkit.index.manifest import Manifest
from searchkit.ingest.build import BuildReport, build_index
from searchkit.ingest.corpus import CorpusReader
from searchkit.ingest.readers import CorpusSource, read_corpus
from searchkit.ingest.writer import CommitReport, IndexWriter
from searchkit.models import Document, Hit, Hits, Passage
from searchkit.options import SearchOptions
from searchkit.query.searcher import Searcher, verify_index

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
