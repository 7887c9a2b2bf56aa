"""The first stage of a search: the protocol a ``Searcher`` holds, and its registry.

A first stage turns a batch of embedded queries (vectors, lexical terms or both) into each
query's candidates: (ref, score, rank) pools, the candidate documents and their best passages.
It loads no model: the ``Searcher`` embeds the queries and reranks the candidates. A plain
index folder is one implementation (``searchkit.query.plain.PlainIndex``), a sharded one another
(``searchkit.distributed.fanout.ShardedIndex``: shards searched in threads or by Ray actors).
``open_stage`` and ``verify_index`` pick the implementation by the manifest's kind, through a
registry with lazy imports like the vector backends'.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from searchkit.errors import IncompatibleIndex
from searchkit.index.lexical import Terms
from searchkit.index.manifest import Manifest
from searchkit.index.sharded import is_sharded
from searchkit.models import Document, Passage
from searchkit.options import SearchOptions
from searchkit.query.filters import Filter, Where

__all__ = [
    "Candidates",
    "FirstStage",
    "Pool",
    "QueryBatch",
    "Ranked",
    "open_stage",
    "verify_index",
]

Pool = list[tuple[int, float, int]]  # (ref, retrieval score, retrieval rank) per candidate
Fuse = Callable[..., tuple[np.ndarray, np.ndarray]]  # searchkit.query.fusion.Fuse


@dataclass(frozen=True)
class QueryBatch:
    """Queries as the first stage reads them: dense vectors, lexical terms, or both."""

    vectors: np.ndarray | None  # (queries, dim) normalized, None when the mode is lexical
    terms: Sequence[Terms] | None  # per query, None when the mode is dense

    def __len__(self) -> int:
        return len(self.vectors) if self.vectors is not None else len(self.terms or ())


@dataclass
class Candidates:
    """Per query, the candidates (best first), the documents they name and their best passages
    (for documents indexed as several passages)."""

    pools: list[Pool]
    docs: dict[int, Document]
    passages: list[dict[int, Passage]] = field(default_factory=list)


@dataclass
class Ranked:
    """A first stage's ranked lists before fusion, each query's best first, padded with -inf
    and -1: the dense list (scores, refs, refs of the documents' best passages) and the lexical
    one (scores, refs); None for a list the mode does not run."""

    dense: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    lexical: tuple[np.ndarray, np.ndarray] | None = None

    def fused(self, depth: int, fuse: Fuse) -> tuple[np.ndarray, np.ndarray]:
        """The one list (scores, refs) of the mode: dense, lexical, or both joined by ``fuse``."""
        lists = [x for x in (self.dense and self.dense[:2], self.lexical) if x is not None]
        return lists[0] if len(lists) == 1 else fuse(lists, depth)

    def best_passages(self) -> list[dict[int, int]]:
        """Per query, each dense hit's best passage (ref -> passage ref)."""
        if self.dense is None:
            return []
        _, refs, prefs = self.dense
        return [
            dict(zip(r.tolist(), p.tolist(), strict=True)) for r, p in zip(refs, prefs, strict=True)
        ]


def pools_of(scores: np.ndarray, refs: np.ndarray) -> list[Pool]:
    """Per query, the (ref, score, rank) of a list's hits (the -1 padding left out)."""
    return [
        [
            (int(r), float(s), rank)
            for rank, (r, s) in enumerate(zip(rr, ss, strict=True), 1)
            if r >= 0
        ]
        for rr, ss in zip(refs, scores, strict=True)
    ]


class FirstStage(Protocol):
    """Candidates for a batch of queries from one kind of index; loads no model."""

    path: Path

    @property
    def manifest(self) -> Manifest: ...

    def fields(self) -> dict[str, pa.DataType]:
        """The metadata fields a filter may use, with their types."""
        ...

    def ids(self) -> list[str]:
        """The ids of every live document."""
        ...

    def candidates(
        self,
        batch: QueryBatch,
        depth: int,
        where: Where | Filter | None,
        options: SearchOptions,
        fuse: Fuse,
    ) -> Candidates:
        """Each query's top ``depth`` live documents matching ``where`` by ``options.mode``
        (hybrid: the dense and lexical lists joined by ``fuse``)."""
        ...

    def refresh(self) -> bool:
        """Switch to the newest committed version; True if it changed."""
        ...

    def close(self) -> None:
        """Release threads, actors or files."""
        ...


_STAGES = {
    "plain": "searchkit.query.plain:PlainIndex",
    "sharded": "searchkit.distributed.fanout:ShardedIndex",
}


def stage_class(kind: str) -> Any:
    """The first-stage class for an index of ``kind`` (imported on first use)."""
    if kind not in _STAGES:
        raise IncompatibleIndex(f"unknown index kind {kind!r}; known: {', '.join(_STAGES)}")
    module, _, attr = _STAGES[kind].partition(":")
    return getattr(importlib.import_module(module), attr)


def index_kind(path: str | Path) -> str:
    """``sharded`` for the parent folder of a sharded index, else ``plain``."""
    return "sharded" if is_sharded(path) else "plain"


def open_stage(path: str | Path, *, verify: bool = True, **options: Any) -> FirstStage:
    """The first stage of the index at ``path``, by its manifest's kind (``options`` go to the
    implementation, e.g. ``ray_address`` for a sharded index)."""
    return stage_class(index_kind(path)).open(Path(path), verify=verify, **options)


def verify_index(path: str | Path) -> Manifest:
    """Re-check every file's sha256 and size and every segment's row counts; the manifest
    (a ``ShardedManifest`` for a sharded index, whose shards are all checked).

    Raises:
        CorruptIndex: naming the first file or count that does not match.
    """
    return stage_class(index_kind(path)).verify(Path(path))
