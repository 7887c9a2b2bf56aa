"""searchkit.integrations against the real langchain-core and llama-index-core: retrievers over
the tiny index (real models), async through a thread, the LangChain vector store's writes."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from conftest import QUERIES

from searchkit import InvalidParameter, Searcher
from searchkit.integrations.common import require

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def searcher(built_index: Path) -> Searcher:
    return Searcher.open(built_index)


def test_langchain_retriever_from_path(built_index):
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    from searchkit.integrations.langchain import SearchkitRetriever

    retriever = SearchkitRetriever.from_path(built_index, k=3, mode="hybrid", rerank=True)
    assert isinstance(retriever, BaseRetriever)
    for query, expected in QUERIES.items():
        docs = retriever.invoke(query)
        assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
        assert docs[0].id == expected == docs[0].metadata["id"], query
    top = retriever.invoke("what makes sourdough rise")[0]
    assert top.page_content.startswith("Sourdough bread rises")
    meta = top.metadata
    assert meta["title"] == "Sourdough bread" and meta["topic"] == "sourdough"
    assert meta["year"] == 2003 and meta["rank"] == 1
    assert isinstance(meta["score"], float) and isinstance(meta["retrieval_score"], float)


def test_langchain_retriever_filters_and_options(searcher):
    from searchkit.integrations.langchain import SearchkitRetriever

    plain = SearchkitRetriever(searcher=searcher, k=12, where="year >= 2008", options=None)
    assert {d.metadata["year"] for d in plain.invoke("anything")} == set(range(2008, 2012))
    dense = SearchkitRetriever.from_path(searcher.path, k=2, mode="dense", rerank=False)
    for doc in dense.invoke("hormone that controls blood sugar"):
        assert doc.metadata["score"] == doc.metadata["retrieval_score"]
    with pytest.raises(InvalidParameter, match="mode"):
        SearchkitRetriever.from_path(searcher.path, mode="fuzzy")


def test_langchain_async_matches_sync(searcher):
    from searchkit.integrations.langchain import SearchkitRetriever

    retriever = SearchkitRetriever(searcher=searcher, k=4)

    async def both() -> list:
        return await asyncio.gather(*(retriever.ainvoke(q) for q in QUERIES))

    for query, docs in zip(QUERIES, asyncio.run(both()), strict=True):
        assert [d.id for d in docs] == [d.id for d in retriever.invoke(query)]
        assert docs[0].id == QUERIES[query]


def test_langchain_vector_store_writes_the_index(built_index, tmp_path, reranker_path):
    from searchkit.integrations.langchain import SearchkitVectorStore

    path = shutil.copytree(built_index, tmp_path / "index")
    store = SearchkitVectorStore(path, rerank=False)
    ids = store.add_texts(
        ["A comet is an icy body that grows a tail near the Sun.", "Espresso is strong."],
        metadatas=[{"title": "Comets", "year": 2030}, {"year": 2031}],
        ids=["comet", "espresso"],
    )
    assert ids == ["comet", "espresso"] and len(store.searcher) == 14
    top = store.similarity_search("icy body with a tail", k=1)[0]
    assert (top.id, top.metadata["title"], top.metadata["year"]) == ("comet", "Comets", 2030)
    scored = store.similarity_search_with_score("coffee", k=2, filter="year >= 2031")
    assert [(d.id, s == d.metadata["score"]) for d, s in scored] == [("espresso", True)]
    assert store.as_retriever(search_kwargs={"k": 1}).invoke("a tail near the Sun")[0].id == "comet"
    assert store.delete(["comet"]) is True and "comet" not in store.searcher.ids()
    assert Searcher.open(path).manifest.documents == 13  # committed for every reader

    built = SearchkitVectorStore.from_texts(
        ["Tides follow the Moon.", "Bitcoin is a digital currency."],
        metadatas=[{"id": "m1"}, {}],  # an "id" field stays metadata
        ids=["t", "b"], path=tmp_path / "fresh", reranker=str(reranker_path), lexical="none",
    )  # fmt: skip
    assert sorted(built.searcher.ids()) == ["b", "t"]
    assert built.similarity_search("sea level and the moon", k=1)[0].metadata["id"] == "t"
    with pytest.raises(InvalidParameter, match="own model"):
        SearchkitVectorStore.from_texts(["x"], embedding=object(), path=tmp_path / "x")


def test_llamaindex_retriever(built_index, searcher):
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle

    from searchkit.integrations.llamaindex import SearchkitRetriever

    retriever = SearchkitRetriever.from_path(built_index, k=3)
    assert isinstance(retriever, BaseRetriever)
    for query, expected in QUERIES.items():
        nodes = retriever.retrieve(query)
        assert len(nodes) == 3 and all(isinstance(n, NodeWithScore) for n in nodes)
        assert nodes[0].node.node_id == expected == nodes[0].node.metadata["id"]
        assert nodes[0].score == nodes[0].node.metadata["score"]
    node = retriever.retrieve(QueryBundle("why can't light escape from a black hole"))[0].node
    assert node.get_content().startswith("A black hole is") and node.metadata["year"] == 2002
    filtered = SearchkitRetriever(searcher, k=12, where={"topic": "chess"})
    assert [n.node.node_id for n in filtered.retrieve("anything")] == ["chess"]
    sync = [n.node.node_id for n in retriever.retrieve("what causes high and low tide")]
    nodes = asyncio.run(retriever.aretrieve("what causes high and low tide"))
    assert [n.node.node_id for n in nodes] == sync


def test_a_missing_framework_names_the_extra():
    with pytest.raises(ImportError, match=r"pip install 'searchkit\[langchain\]'"):
        require("langchain_core_not_installed", "langchain-core", "langchain")
