"""FAISS backend: exact flat inner product, HNSW and IVF, all over inner product."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from searchkit.backends.base import AUTO, pad, resolve_params, search_params
from searchkit.errors import InvalidParameter


class FaissIndex:
    """A FAISS index whose ids are docstore rows (FAISS numbers vectors in insertion order)."""

    KINDS: dict[str, dict[str, Any]] = {
        "flat": {},
        "hnsw": {"m": 32, "ef_construction": 200, "ef_search": 64},
        "ivf": {"nlist": AUTO, "nprobe": 16},
    }
    SUFFIX = "faiss"

    def __init__(self, index: faiss.Index, kind: str, params: dict[str, Any]) -> None:
        self._index = index
        self.kind = kind
        self.params = params

    @classmethod
    def create(cls, dim: int, kind: str, params: dict[str, Any], count: int) -> FaissIndex:
        params = resolve_params("faiss", cls.KINDS, kind, params, count)
        ip = faiss.METRIC_INNER_PRODUCT
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, params["m"], ip)
            index.hnsw.efConstruction = params["ef_construction"]
        elif params["nlist"] > count:
            raise InvalidParameter(
                f"nlist={params['nlist']} is more than the {count} vectors to index; "
                "choose a smaller nlist or leave it out (automatic)"
            )
        else:
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, params["nlist"], ip)
        return cls(index, kind, params)

    @classmethod
    def load(cls, path: Path, dim: int, kind: str, params: dict[str, Any]) -> FaissIndex:
        return cls(faiss.read_index(str(path)), kind, params)

    def train(self, sample: np.ndarray) -> None:
        if not self._index.is_trained:
            self._index.train(np.ascontiguousarray(sample, dtype=np.float32))

    def add(self, vectors: np.ndarray) -> None:
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(
        self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None, **overrides: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        params = search_params(self, k, overrides)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        selector = {}
        if allow is not None:
            # FAISS reads bit i of the bitmap as (byte i >> 3) >> (i & 7): little bit order
            bits = np.packbits(np.asarray(allow, dtype=bool), bitorder="little")
            selector["sel"] = faiss.IDSelectorBitmap(len(allow), faiss.swig_ptr(bits))
        # per-call parameters, so concurrent searches with different settings do not interfere
        if self.kind == "hnsw":
            options = faiss.SearchParametersHNSW(efSearch=max(params["ef_search"], k), **selector)
        elif self.kind == "ivf":
            nprobe = min(params["nprobe"], params["nlist"])
            options = faiss.SearchParametersIVF(nprobe=nprobe, **selector)
        else:
            options = faiss.SearchParameters(**selector) if selector else None
        scores, ids = self._index.search(queries, k, params=options)
        return pad(scores, ids, k)

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    def __len__(self) -> int:
        return int(self._index.ntotal)
