"""LangChain: ``SearchkitRetriever`` (a ``BaseRetriever``) and ``SearchkitVectorStore``.

Both search a searchkit index with its own models: the bi-encoder, the lexical stage and the
reranker the index records. A hit becomes a ``Document`` whose ``page_content`` is the passage
that matched (the whole text of a one-passage document) and whose metadata holds the
document's fields plus ``id``, ``title``, ``rank``, ``score`` and ``retrieval_score``.
Needs ``pip install 'searchkit[langchain]'`` (langchain-core).

Example::

    from searchkit.integrations.langchain import SearchkitRetriever

    retriever = SearchkitRetriever.from_path("indexes/docs", k=4, mode="hybrid")
    docs = retriever.invoke("how do vaccines work")
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from searchkit.integrations.common import hit_content, hit_metadata, open_searcher, require

require("langchain_core", "langchain-core", "langchain")

from langchain_core.callbacks import (  # noqa: E402 - after the check that names the extra
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document as LCDocument  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.vectorstores import VectorStore  # noqa: E402
from pydantic import ConfigDict  # noqa: E402

from searchkit.errors import InvalidParameter  # noqa: E402
from searchkit.ingest.build import build_index  # noqa: E402
from searchkit.ingest.writer import IndexWriter  # noqa: E402
from searchkit.models import Document, Hit  # noqa: E402
from searchkit.options import SearchOptions  # noqa: E402
from searchkit.query.filters import Where  # noqa: E402
from searchkit.query.searcher import Searcher  # noqa: E402

__all__ = ["SearchkitRetriever", "SearchkitVectorStore", "to_document"]


def to_document(hit: Hit) -> LCDocument:
    """A searchkit hit as a LangChain ``Document``."""
    return LCDocument(id=hit.id, page_content=hit_content(hit), metadata=hit_metadata(hit))


class SearchkitRetriever(BaseRetriever):
    """A LangChain retriever over a searchkit ``Searcher``.

    Args:
        searcher: an open ``Searcher`` (or use ``from_path``).
        k: documents per query.
        where: a metadata filter, e.g. ``'year >= 2020'`` (see ``searchkit.query.filters``).
        options: the ``SearchOptions`` of each search (mode, rerank, candidates, ...;
            default: the searcher's).

    Example::

        retriever = SearchkitRetriever(searcher=Searcher.open("indexes/docs"), k=3)
        docs = await retriever.ainvoke("statin side effects")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: Searcher
    k: int = 4
    where: Where | None = None
    options: SearchOptions | None = None

    @classmethod
    def from_path(
        cls, path: str | Path, *, k: int = 4, where: Where | None = None, **options: Any
    ) -> SearchkitRetriever:
        """Open the index at ``path``; ``options`` are ``SearchOptions`` fields (``mode``,
        ``rerank``, ``candidates``, ...) and ``Searcher.open`` arguments (``reranker``,
        ``verify``, the runtimes)."""
        searcher, opts = open_searcher(path, **options)
        return cls(searcher=searcher, k=k, where=where, options=opts)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        hits = self.searcher.search(query, self.k, where=self.where, options=self.options)
        return [to_document(hit) for hit in hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        # the search is CPU work in torch and numpy: run it on a thread, off the event loop
        hits = await asyncio.to_thread(
            self.searcher.search, query, self.k, where=self.where, options=self.options
        )
        return [to_document(hit) for hit in hits]


class SearchkitVectorStore(VectorStore):
    """A LangChain vector store over a searchkit index folder: ``add_texts`` upserts through
    an ``IndexWriter`` (one commit per call; unchanged texts are not re-embedded),
    ``similarity_search`` searches, ``delete`` deletes by id. The index embeds with its own
    model, so no ``Embeddings`` object is taken.

    Args:
        path: an index folder (``from_texts`` builds one).
        **options: ``SearchOptions`` fields and ``Searcher.open`` arguments, as in
            ``SearchkitRetriever.from_path``.

    Example::

        store = SearchkitVectorStore.from_texts(["Comets have tails."], path="indexes/notes")
        store.add_texts(["Espresso is strong coffee."], metadatas=[{"year": 2024}])
        docs = store.similarity_search("coffee", k=1, where="year >= 2024")
    """

    def __init__(self, path: str | Path, **options: Any) -> None:
        self.path = Path(path)
        self.searcher, self.options = open_searcher(self.path, **options)

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Upsert ``texts`` (a ``title`` in a metadata dict becomes the title); new ids are
        random when none are given. Returns the ids."""
        docs = _documents(list(texts), metadatas, ids)
        with IndexWriter.open(self.path) as writer:
            writer.upsert(docs)
        self.searcher.refresh()
        return [d.id for d in docs]

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete documents by id (ids the index lacks are ignored)."""
        if not ids:
            raise InvalidParameter("give the ids to delete", param="ids")
        with IndexWriter.open(self.path) as writer:
            writer.delete(ids)
        self.searcher.refresh()
        return True

    def similarity_search_with_score(
        self, query: str, k: int = 4, *, where: Where | None = None, **kwargs: Any
    ) -> list[tuple[LCDocument, float]]:
        """Documents and scores (rerank scores when reranked); ``kwargs`` are
        ``SearchOptions`` fields, and ``filter`` is taken for ``where``."""
        where = kwargs.pop("filter", None) if where is None else where
        hits = self.searcher.search(query, k, where=where, options=self.options, **kwargs)
        return [(to_document(hit), hit.score) for hit in hits]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[LCDocument]:
        """The ``k`` best documents for ``query`` (see ``similarity_search_with_score``)."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[LCDocument]:
        return await asyncio.to_thread(self.similarity_search, query, k, **kwargs)

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        path: str | Path | None = None,
        **kwargs: Any,
    ) -> SearchkitVectorStore:
        """Build a new index at ``path`` from ``texts``; ``kwargs`` go to ``build_index``
        (``model``, ``reranker``, ``backend``, ...) or, when they are search options, to the
        store."""
        if embedding is not None:
            raise InvalidParameter(
                "searchkit embeds with the index's own model: pass embedding=None and choose "
                'the model with model="..."',
                param="embedding",
            )
        if path is None:
            raise InvalidParameter("give the index folder to create: path=", param="path")
        build = {k: kwargs.pop(k) for k in list(kwargs) if k in _BUILD_ARGS}
        docs = _documents(texts, metadatas, ids)
        with tempfile.TemporaryDirectory() as tmp:
            corpus = Path(tmp) / "texts.jsonl"
            lines = (json.dumps({"_id": d.id, "title": d.title, "text": d.text, **d.metadata})
                     for d in docs)  # fmt: skip
            corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
            build_index(corpus, path, id_field="_id", progress=False, **build)
        return cls(path, **kwargs)


_BUILD_ARGS = ("model", "reranker", "language", "backend", "kind", "params", "lexical", "force")


def _documents(
    texts: Sequence[str], metadatas: Sequence[dict[str, Any]] | None, ids: Sequence[str] | None
) -> list[Document]:
    metadatas = metadatas or [{} for _ in texts]
    ids = ids or [uuid.uuid4().hex for _ in texts]
    if not len(texts) == len(metadatas) == len(ids):
        raise InvalidParameter("texts, metadatas and ids must be as many", param="metadatas")
    docs = []
    for text, meta, doc_id in zip(texts, metadatas, ids, strict=True):
        meta = dict(meta)
        title = meta.pop("title", "") or ""
        docs.append(Document(doc_id, text, str(title), meta))
    return docs
