"""Rescoring: a compact index's top candidates re-ranked by exact inner products with the
float32 vectors kept on disk (memory-mapped, so only the candidates' rows are read)."""

from __future__ import annotations

from typing import Any

import numpy as np

from searchkit.backends.base import VectorIndex, pad, search_params

QUERY_CHUNK = 64  # queries rescored at a time: bounds the (queries, candidates, dim) gather


def search_rescored(
    index: VectorIndex,
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    allow: np.ndarray | None = None,
    **overrides: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """``index.search``; for an index with a ``rescore`` depth (compact vectors), its top
    ``max(k, rescore)`` re-ranked by exact scores against ``vectors`` (rows of the index)."""
    depth = search_params(index, k, overrides).get("rescore", 0)
    if not depth:
        return index.search(queries, k, allow=allow, **overrides)
    _, rows = index.search(queries, max(k, depth), allow=allow, **overrides)
    return rescore(vectors, queries, rows, k)


def rescore(
    vectors: np.ndarray, queries: np.ndarray, rows: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` of each query's candidate ``rows`` (-1: none) by exact inner product."""
    queries = np.asarray(queries, dtype=np.float32)
    scores = np.full(rows.shape, -np.inf, dtype=np.float32)
    for start in range(0, len(rows), QUERY_CHUNK):
        part = rows[start : start + QUERY_CHUNK]
        found = part >= 0
        wanted = np.unique(part[found])  # sorted: the memory map reads forward
        gathered = np.asarray(vectors[wanted])[np.searchsorted(wanted, part[found])]
        q = np.repeat(queries[start : start + QUERY_CHUNK], found.sum(axis=1), axis=0)
        scores[start : start + QUERY_CHUNK][found] = np.einsum("nd,nd->n", q, gathered)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return pad(np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1), k)
