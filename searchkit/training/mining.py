"""Candidates and hard negatives from the user's own index, and positives' passages by id.

Hard negatives are documents the index's first stage (dense, lexical or hybrid, as searched)
ranks high for a query but that are not among its positives: the mistakes a model trained on
them learns to avoid. They are sampled from the top ``depth`` rather than taken from the very
top, which in sparsely judged data holds unjudged relevant documents (false negatives).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from searchkit.errors import DatasetError
from searchkit.models import Document, Hit
from searchkit.progress import TaskProgress
from searchkit.query.searcher import Searcher
from searchkit.training.data import TrainQuery

QUERY_BATCH = 32  # queries per search_batch call while mining


@dataclass(frozen=True)
class Candidate:
    """A retrieved document: id and the passage the models read."""

    id: str
    passage: str


def candidate_pools(
    searcher: Searcher,
    queries: Sequence[TrainQuery],
    depth: int,
    mode: str | None = None,
    progress: bool = True,
) -> list[list[Candidate]]:
    """Each query's top ``depth`` first-stage hits (no rerank), best first."""
    pools: list[list[Candidate]] = []
    with TaskProgress("retrieving candidates", len(queries), enabled=progress) as bar:
        for start in range(0, len(queries), QUERY_BATCH):
            chunk = [q.text for q in queries[start : start + QUERY_BATCH]]
            for hits in searcher.search_batch(chunk, depth, rerank=False, mode=mode):
                pools.append([Candidate(h.id, _passage(h)) for h in hits])
            bar.advance(len(chunk))
    return pools


def _passage(hit: Hit) -> str:
    return Document(hit.id, hit.text, hit.title).passage()


def hard_negatives(
    query: TrainQuery, pool: Sequence[Candidate], count: int, rng: random.Random
) -> list[str]:
    """``count`` passages sampled from ``pool`` that are not positives of ``query`` (fewer
    when the pool runs short), in pool order."""
    positives = set(query.positive_ids)
    texts = set(query.positive_texts)
    allowed = [c for c in pool if c.id not in positives and c.passage not in texts]
    picked = sorted(rng.sample(range(len(allowed)), min(count, len(allowed))))
    return [allowed[i].passage for i in picked]


def attach_positive_texts(searcher: Searcher, queries: Sequence[TrainQuery]) -> None:
    """Fill in the passages of positives given by id, read from the index.

    Raises:
        DatasetError: a positive id that is not a live document of the index.
    """
    wanted = {d for q in queries for d in q.positive_ids}
    found = documents_by_id(searcher, wanted)
    for q in queries:
        missing = [d for d in q.positive_ids if d not in found]
        if missing:
            raise DatasetError(
                searcher.path,
                None,
                f"positive document {missing[0]!r} of query {q.id!r} is not in the index; "
                "was the index built from the corpus the relevance data judges?",
            )
        known = set(q.positive_texts)
        q.positive_texts.extend(p for d in q.positive_ids if (p := found[d]) not in known)


def documents_by_id(searcher: Searcher, ids: set[str]) -> dict[str, str]:
    """The passages of the live documents among ``ids``, by id."""
    out: dict[str, str] = {}
    for seg in searcher.stage.view.segments:
        all_ids = np.asarray(seg.docs.ids(), dtype=object)
        live = np.ones(len(all_ids), bool) if seg.live is None else seg.live
        rows = [r for r in np.flatnonzero(live).tolist() if all_ids[r] in ids]
        out.update((d.id, d.passage()) for d in seg.docs.take(rows))
    return out


def iter_documents(searcher: Searcher, chunk: int = 1024) -> list[Document]:
    """Every live document of the index, in segment and row order."""
    docs: list[Document] = []
    for seg in searcher.stage.view.segments:
        rows = np.arange(len(seg.docs)) if seg.live is None else np.flatnonzero(seg.live)
        for start in range(0, len(rows), chunk):
            docs.extend(seg.docs.take(rows[start : start + chunk]))
    return docs
