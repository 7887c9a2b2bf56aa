"""searchkit: two-stage semantic search (bi-encoder retrieval, CrossEncoder rerank).

Example::

    from searchkit import Searcher, build_index

    build_index("corpus.jsonl")                      # -> indexes/corpus
    hits = Searcher.open("indexes/corpus").search("how do vaccines work", k=5)
"""

from __future__ import annotations

from searchkit._version import __version__
from searchkit.build import BuildReport, build_index
from searchkit.corpus import CorpusReader
from searchkit.errors import (
    CorpusError,
    CorruptIndex,
    DatasetError,
    IncompatibleIndex,
    IndexExists,
    IndexNotFound,
    InvalidParameter,
    ModelUnavailable,
    RerankerUnavailableWarning,
    SearchkitError,
    UnknownBackend,
)
from searchkit.manifest import Manifest
from searchkit.models import Document, Hit, Hits
from searchkit.searcher import Searcher

__all__ = [
    "BuildReport",
    "CorpusError",
    "CorpusReader",
    "CorruptIndex",
    "DatasetError",
    "Document",
    "Hit",
    "Hits",
    "IncompatibleIndex",
    "IndexExists",
    "IndexNotFound",
    "InvalidParameter",
    "Manifest",
    "ModelUnavailable",
    "RerankerUnavailableWarning",
    "SearchkitError",
    "Searcher",
    "UnknownBackend",
    "__version__",
    "build_index",
]
