"""Exact inner-product search with numpy: the ground truth other backends are tested against,
and the search of every flat index, straight over a segment's memory-mapped vectors.f32."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from searchkit.backends.base import pad, resolve_params, search_params


class ExactIndex:
    """Brute-force search over a (memory-mapped when loaded) float32 matrix."""

    KINDS: dict[str, dict[str, Any]] = {"flat": {}}
    FLOAT_VIEWS = frozenset({"flat"})  # (indexes written before kept a copy in index.npy)
    SUFFIX = "npy"

    def __init__(self, dim: int, kind: str, params: dict[str, Any]) -> None:
        self.kind = kind
        self.params = params
        self._vectors = np.empty((0, dim), dtype=np.float32)

    @classmethod
    def create(cls, dim: int, kind: str, params: dict[str, Any], count: int) -> ExactIndex:
        return cls(dim, kind, resolve_params("exact", cls.KINDS, kind, params, count))

    @classmethod
    def over(cls, vectors: np.ndarray, kind: str, params: dict[str, Any]) -> ExactIndex:
        """An index searching ``vectors`` (a memory map: no copy) in place."""
        index = cls(vectors.shape[1], kind, params)
        index._vectors = np.asarray(vectors)  # a plain array over the same pages
        return index

    @classmethod
    def load(cls, path: Path, dim: int, kind: str, params: dict[str, Any]) -> ExactIndex:
        index = cls(dim, kind, params)
        index._vectors = np.load(path, mmap_mode="r")
        return index

    def train(self, sample: np.ndarray) -> None:
        """Nothing to train."""

    def add(self, vectors: np.ndarray) -> None:
        self._vectors = np.concatenate([self._vectors, np.asarray(vectors, dtype=np.float32)])

    def search(
        self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None, **overrides: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        search_params(self, k, overrides)
        return top_k(np.asarray(queries, dtype=np.float32) @ self._vectors.T, k, allow)

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.save(f, np.ascontiguousarray(self._vectors))

    def __len__(self) -> int:
        return len(self._vectors)


def top_k(
    sims: np.ndarray, k: int, allow: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of a (queries, rows) similarity matrix, rows outside ``allow`` out."""
    if allow is not None:
        sims = np.where(allow, sims, -np.inf)
    top = min(k, sims.shape[1] if allow is None else int(np.count_nonzero(allow)))
    part = (
        np.argpartition(-sims, top - 1, axis=1)[:, :top] if top else np.empty((len(sims), 0), int)
    )
    part_scores = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1)
    return pad(np.take_along_axis(part_scores, order, axis=1), ids, k)
