"""What the adapters share: opening a Searcher for them, and a hit's text and metadata."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from searchkit.models import Hit
from searchkit.options import SearchOptions
from searchkit.query.searcher import Searcher


def require(module: str, package: str, extra: str) -> ModuleType:
    """Import ``module``, or raise ``ImportError`` saying which searchkit extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{package} is not installed ({err}); install it with: pip install 'searchkit[{extra}]'"
        ) from None


def open_searcher(path: str | Path, **options: Any) -> tuple[Searcher, SearchOptions]:
    """A Searcher of the index at ``path`` and the ``SearchOptions`` of the other keyword
    arguments; ``reranker``, ``verify`` and the runtimes go to ``Searcher.open``."""
    opening = {k: options.pop(k) for k in OPEN_ARGS if k in options}
    return Searcher.open(path, **opening), SearchOptions(**options)


OPEN_ARGS = ("verify", "reranker", "query_runtime", "reranker_runtime", "rerank_max_tokens")


def hit_content(hit: Hit) -> str:
    """What a RAG prompt should read: the passage that matched, or the whole text."""
    return hit.passage.text if hit.passage is not None else hit.text


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """The document's fields plus its id, title, rank and scores (and passage offsets)."""
    meta: dict[str, Any] = {
        **hit.metadata, "id": hit.id, "title": hit.title, "rank": hit.rank,
        "score": hit.score, "retrieval_score": hit.retrieval_score,
    }  # fmt: skip
    if hit.passage is not None:
        meta["passage"] = {"index": hit.passage.index, "start": hit.passage.start,
                           "end": hit.passage.end}  # fmt: skip
    return meta
