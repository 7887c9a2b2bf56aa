"""hnswlib backend: HNSW graphs over inner product."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from searchkit.backends.base import pad, resolve_params, search_params


class HnswIndex:
    """An hnswlib index whose labels are docstore rows."""

    KINDS: dict[str, dict[str, Any]] = {
        "hnsw": {"m": 32, "ef_construction": 200, "ef_search": 64},
    }
    # hnswlib keeps each vector inside its level-0 graph block (links and floats interleaved),
    # so the graph file holds a second copy of vectors.f32 that its API cannot share
    FLOAT_VIEWS: frozenset[str] = frozenset()
    SUFFIX = "hnswlib"
    SEED = 100

    def __init__(self, index: hnswlib.Index, kind: str, params: dict[str, Any]) -> None:
        self._index = index
        self.kind = kind
        self.params = params
        self._lock = threading.Lock()

    @classmethod
    def create(cls, dim: int, kind: str, params: dict[str, Any], count: int) -> HnswIndex:
        params = resolve_params("hnswlib", cls.KINDS, kind, params, count)
        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(
            max_elements=max(count, 1),
            ef_construction=params["ef_construction"],
            M=params["m"],
            random_seed=cls.SEED,
        )
        return cls(index, kind, params)

    @classmethod
    def load(cls, path: Path, dim: int, kind: str, params: dict[str, Any]) -> HnswIndex:
        index = hnswlib.Index(space="ip", dim=dim)
        index.load_index(str(path))
        return cls(index, kind, params)

    def train(self, sample: np.ndarray) -> None:
        """Nothing to train."""

    def add(self, vectors: np.ndarray) -> None:
        start = self._index.get_current_count()
        needed = start + len(vectors)
        if needed > self._index.get_max_elements():
            self._index.resize_index(needed)
        self._index.add_items(np.asarray(vectors, dtype=np.float32), np.arange(start, needed))

    def search(
        self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None, **overrides: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        params = search_params(self, k, overrides)
        queries = np.asarray(queries, dtype=np.float32)
        # hnswlib raises if k exceeds the element count, so clamp and pad afterwards
        top = min(k, len(self) if allow is None else int(np.count_nonzero(allow)))
        empty = pad(np.empty((len(queries), 0)), np.empty((len(queries), 0)), k)
        if top == 0:
            return empty
        options: dict[str, Any] = {}
        if allow is not None:
            # hnswlib calls the filter from its search threads; one thread keeps it simple
            options = {"filter": lambda label: bool(allow[label]), "num_threads": 1}
        # set_ef is index-wide state, so hold it with the query; hnswlib also needs ef >= k
        with self._lock:
            self._index.set_ef(max(params["ef_search"], top))
            try:
                labels, distances = self._index.knn_query(queries, k=top, **options)
            except RuntimeError:  # a selective filter left fewer than k reachable rows
                return empty
        # hnswlib's "ip" space returns 1 - inner product
        return pad(1.0 - distances, labels.astype(np.int64), k)

    def save(self, path: Path) -> None:
        self._index.save_index(str(path))

    def __len__(self) -> int:
        return int(self._index.get_current_count())
