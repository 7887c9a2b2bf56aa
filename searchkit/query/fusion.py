"""Fuse the ranked lists of several first stages (dense, lexical) into one candidate list.

* ``rrf``, reciprocal rank fusion (Cormack, Clarke and Buettcher, 2009): a document scores
  ``sum(1 / (k + rank))`` over the lists that hold it (ranks from 1). Scale-free; a larger
  ``k`` flattens the weight of the top ranks. ``k = 60`` is the paper's.
* ``weighted``: each list's scores are min-max normalized over that list's own candidates for
  the query (best 1, worst 0; all equal: 1), then combined as ``w * dense + (1 - w) * lexical``;
  a document a list does not hold gets 0 from it. Min-max rather than z-scores: the lists are
  short top-k heads, whose mean and spread say little, and min-max keeps every score in [0, 1].
  Its weakness: a list holding one weak candidate normalizes it to 1, so a document matching a
  single common query word takes the full lexical share.
* ``gated`` (the default): ``weighted`` with the lexical share of each query scaled by how
  strong its lexical head is: ``min(1, top BM25 score / (FULL_SHARE_AT x bound)) ** 2``, where
  ``bound`` is the score of a document matching the whole query (each term once, at the
  average length: the sum of its terms' weight x idf / (1 + k1)). A lexical list whose best
  match covers a small part of the query (one common word of a long question) then weighs
  little, a list that matches most of the query's weight keeps the full share. The square and
  ``FULL_SHARE_AT`` were chosen on the evaluation suite's train/dev splits. Without bounds
  (SPLADE) it is ``weighted``.
* ``dbsf``, distribution-based score fusion (as Qdrant's): each list normalized by its own
  mean +/- 3 standard deviations (clipped to [0, 1]; one candidate or all equal: 0.5), then
  weighted as ``weighted``.

Lists are (scores, refs) arrays of shape (queries, n), padded with -inf / -1 as the backends
return them; the fused list has the same form.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from searchkit.defaults import DEFAULT_RRF_K

FULL_SHARE_AT = 0.8  # gated: the lexical head's strength (of its bound) that keeps the full share

Ranked = tuple[np.ndarray, np.ndarray]  # (scores, refs), each (queries, n)
Fuse = Callable[[Sequence[Ranked], int], Ranked]  # (lists, depth) -> the fused top depth


def fuser(fusion: str, rrf_k: float, weight: float, bounds: Sequence[float] | None = None) -> Fuse:
    """The fusion ``fusion`` with its parameter (``SearchOptions`` checked both); ``bounds``
    are ``gated``'s per-query lexical bounds (None: not known, ``gated`` is ``weighted``)."""
    weights = [weight, 1 - weight]
    if fusion == "rrf":
        return functools.partial(rrf, k=rrf_k)
    if fusion == "dbsf":
        return functools.partial(dbsf, weights=weights)
    if fusion == "gated" and bounds is not None:
        return functools.partial(gated, weights=weights, bounds=bounds)
    return functools.partial(weighted, weights=weights)


def rrf(lists: Sequence[Ranked], depth: int, k: float = DEFAULT_RRF_K) -> Ranked:
    """Reciprocal rank fusion of ``lists``, the top ``depth`` per query."""
    return _fuse(lists, depth, lambda _, __, scores: 1.0 / (k + np.arange(1, len(scores) + 1)))


def weighted(lists: Sequence[Ranked], depth: int, weights: Sequence[float]) -> Ranked:
    """Weighted sum of min-max normalized scores, the top ``depth`` per query."""
    return _fuse(lists, depth, lambda i, _, scores: weights[i] * _minmax(scores))


def gated(
    lists: Sequence[Ranked], depth: int, weights: Sequence[float], bounds: Sequence[float]
) -> Ranked:
    """``weighted`` of a (dense, lexical) pair with query ``q``'s lexical share times
    ``lexical_gate`` of its lexical list against ``bounds[q]``, the top ``depth`` per query."""

    def gain(i: int, q: int, scores: np.ndarray) -> np.ndarray:
        share = weights[i] * (lexical_gate(scores, bounds[q]) if i == 1 else 1.0)
        return share * _minmax(scores)

    return _fuse(lists, depth, gain)


def lexical_gate(scores: np.ndarray, bound: float) -> float:
    """``min(1, best score / (FULL_SHARE_AT x bound)) ** 2``: the share of its weight a lexical
    list keeps (0 for an empty list or a bound of 0)."""
    if len(scores) == 0 or not bound > 0:
        return 0.0
    return float(min(1.0, max(0.0, float(scores.max()) / (FULL_SHARE_AT * bound))) ** 2)


def dbsf(lists: Sequence[Ranked], depth: int, weights: Sequence[float]) -> Ranked:
    """Weighted sum of scores normalized by each list's mean +/- 3 sd, the top ``depth``."""
    return _fuse(lists, depth, lambda i, _, scores: weights[i] * _three_sigma(scores))


def blend_rerank(rerank: np.ndarray, retrieval: np.ndarray, weight: float) -> np.ndarray:
    """One query's candidates scored ``weight * rerank + (1 - weight) * retrieval``, each
    min-max normalized over the candidates (as ``weighted`` does); ``weight`` 1 keeps the
    reranker's own scores, so its order alone decides."""
    if weight >= 1:
        return np.asarray(rerank, dtype=np.float64)
    return weight * _minmax(np.asarray(rerank, np.float64)) + (1 - weight) * _minmax(
        np.asarray(retrieval, np.float64)
    )


def _minmax(scores: np.ndarray) -> np.ndarray:
    low, high = scores.min(initial=np.inf), scores.max(initial=-np.inf)
    if not high > low:
        return np.ones_like(scores, dtype=np.float64)
    return (scores - low) / (high - low)


def _three_sigma(scores: np.ndarray) -> np.ndarray:
    mean, sd = scores.mean() if len(scores) else 0.0, scores.std() if len(scores) else 0.0
    if not sd > 0:
        return np.full_like(scores, 0.5, dtype=np.float64)
    return np.clip((scores - (mean - 3 * sd)) / (6 * sd), 0.0, 1.0)


def _fuse(
    lists: Sequence[Ranked], depth: int, gain: Callable[[int, int, np.ndarray], np.ndarray]
) -> Ranked:
    """Per query ``q``, sum over the lists of ``gain(list number, q, its scores best first)``
    per ref."""
    queries = len(lists[0][0])
    out_scores = np.full((queries, depth), -np.inf)
    out_refs = np.full((queries, depth), -1, dtype=np.int64)
    for q in range(queries):
        total: dict[int, float] = {}
        for i, (scores, refs) in enumerate(lists):
            valid = refs[q] >= 0
            gains = gain(i, q, np.asarray(scores[q][valid], dtype=np.float64))
            for ref, g in zip(refs[q][valid].tolist(), gains.tolist(), strict=True):
                total[ref] = total.get(ref, 0.0) + g
        # ties keep the order of first appearance (dense first): sorted() is stable
        best = sorted(total.items(), key=lambda item: -item[1])[:depth]
        out_scores[q, : len(best)] = [s for _, s in best]
        out_refs[q, : len(best)] = [r for r, _ in best]
    return out_scores, out_refs
