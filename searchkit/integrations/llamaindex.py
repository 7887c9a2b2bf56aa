"""LlamaIndex: ``SearchkitRetriever``, a ``BaseRetriever`` returning ``NodeWithScore``.

Each hit becomes a ``TextNode`` (id: the document id; text: the passage that matched, or the
whole text of a one-passage document; metadata: the document's fields plus ``id``, ``title``,
``rank``, ``score`` and ``retrieval_score``) scored with the hit's score.
Needs ``pip install 'searchkit[llamaindex]'`` (llama-index-core).

Example::

    from searchkit.integrations.llamaindex import SearchkitRetriever

    retriever = SearchkitRetriever.from_path("indexes/docs", k=4)
    nodes = retriever.retrieve("how do vaccines work")
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from searchkit.integrations.common import hit_content, hit_metadata, open_searcher, require

require("llama_index.core", "llama-index-core", "llamaindex")

from llama_index.core.retrievers import BaseRetriever  # noqa: E402 - after the check
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode  # noqa: E402

from searchkit.models import Hit  # noqa: E402
from searchkit.options import SearchOptions  # noqa: E402
from searchkit.query.filters import Where  # noqa: E402
from searchkit.query.searcher import Searcher  # noqa: E402

__all__ = ["SearchkitRetriever", "to_node"]


def to_node(hit: Hit) -> NodeWithScore:
    """A searchkit hit as a LlamaIndex ``NodeWithScore``."""
    node = TextNode(id_=hit.id, text=hit_content(hit), metadata=hit_metadata(hit))
    return NodeWithScore(node=node, score=hit.score)


class SearchkitRetriever(BaseRetriever):
    """A LlamaIndex retriever over a searchkit ``Searcher``.

    Args:
        searcher: an open ``Searcher`` (or use ``from_path``).
        k: nodes per query.
        where: a metadata filter, e.g. ``'year >= 2020'`` (see ``searchkit.query.filters``).
        options: the ``SearchOptions`` of each search (mode, rerank, candidates, ...;
            default: the searcher's).
        **kwargs: ``BaseRetriever``'s own (``callback_manager``, ``verbose``, ...).

    Example::

        retriever = SearchkitRetriever(Searcher.open("indexes/docs"), k=3, where="year >= 2020")
        nodes = await retriever.aretrieve("statin side effects")
    """

    def __init__(
        self,
        searcher: Searcher,
        *,
        k: int = 4,
        where: Where | None = None,
        options: SearchOptions | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.searcher, self.k, self.where = searcher, k, where
        self.options = options

    @classmethod
    def from_path(
        cls, path: str | Path, *, k: int = 4, where: Where | None = None, **options: Any
    ) -> SearchkitRetriever:
        """Open the index at ``path``; ``options`` are ``SearchOptions`` fields (``mode``,
        ``rerank``, ``candidates``, ...) and ``Searcher.open`` arguments (``reranker``,
        ``verify``, the runtimes)."""
        searcher, opts = open_searcher(path, **options)
        return cls(searcher, k=k, where=where, options=opts)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.searcher.search(
            query_bundle.query_str, self.k, where=self.where, options=self.options
        )
        return [to_node(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # the search is CPU work in torch and numpy: run it on a thread, off the event loop
        return await asyncio.to_thread(self._retrieve, query_bundle)
