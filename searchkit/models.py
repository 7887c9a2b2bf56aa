"""Value objects: a corpus Document, a search Hit and the Hits of one query."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """One corpus record: id, text, optional title and any other fields as metadata."""

    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def passage(self) -> str:
        """Title and text joined the way BEIR feeds sentence-transformers models."""
        return f"{self.title} {self.text}" if self.title else self.text


@dataclass(frozen=True)
class Passage:
    """The passage of a long document that matched (``searchkit.ingest.chunking``).

    ``index`` counts the document's passages from 0; ``start`` and ``end`` are character
    offsets into ``Document.passage()`` (title, a space, then text; the text alone when there
    is no title), and ``text`` is that span.
    """

    index: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Hit:
    """One search result.

    ``score`` is the rerank score when the hits were reranked, else the retrieval score;
    ``retrieval_score`` and ``retrieval_rank`` (1-based) always come from the first stage: the
    vector search, the lexical search, or their fusion (hybrid). ``passage`` is the best
    passage of a document indexed as several passages (its dense score is that passage's, and
    the reranker read that passage); None when the document is one passage, or in lexical mode.
    """

    id: str
    score: float
    rank: int
    title: str
    text: str
    metadata: dict[str, Any]
    retrieval_score: float
    retrieval_rank: int
    passage: Passage | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Hits(list[Hit]):
    """The hits of one query, best first, plus how they were produced.

    Attributes:
        query: the query text.
        reranked: True when a CrossEncoder ordered the hits; False when they are in retrieval
            order (rerank was off, or the default reranker could not be loaded).
        mode: the first stage: ``dense``, ``lexical`` or ``hybrid`` (fused).
        candidates: how many candidates the reranker scored (0 when not reranked).
        truncated: how many of them were longer than the reranker reads, so it scored only
            their start (see ``searchkit.inference.reranker``).
        early_exit: True when reranking was skipped because the first stage was confident
            (``rerank_margin``); the hits are then in retrieval order.
    """

    def __init__(
        self,
        hits: list[Hit],
        query: str,
        reranked: bool,
        mode: str = "dense",
        candidates: int = 0,
        truncated: int = 0,
        early_exit: bool = False,
    ) -> None:
        super().__init__(hits)
        self.query = query
        self.reranked = reranked
        self.mode = mode
        self.candidates = candidates
        self.truncated = truncated
        self.early_exit = early_exit

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "reranked": self.reranked,
            "mode": self.mode,
            "candidates": self.candidates,
            "truncated": self.truncated,
            "early_exit": self.early_exit,
            "hits": [hit.to_dict() for hit in self],
        }
