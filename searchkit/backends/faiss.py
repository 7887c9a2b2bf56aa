"""FAISS backend: flat, HNSW and IVF over inner product, and compact vectors (8-bit scalar
quantized, or sign bits searched by Hamming distance) whose top candidates the searcher rescores
with the segment's float32 vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from searchkit.backends.base import AUTO, pad, resolve_params, search_params
from searchkit.errors import InvalidParameter

HNSW = {"m": 32, "ef_construction": 200, "ef_search": 64}
# candidates fetched from a compact index and rescored with float vectors (measured on SciFact
# by benchmarks/compact.py: see benchmarks/README.md)
RESCORE = {"sq8": 50, "binary": 200}
BINARY_KINDS = frozenset({"binary", "binary-hnsw"})


class FaissIndex:
    """A FAISS index whose ids are docstore rows (FAISS numbers vectors in insertion order).

    The binary kinds index the sign bit of each dimension (``dim / 8`` bytes a vector); their
    scores are ``1 - 2 * hamming / dim``, the cosine of the sign vectors.
    """

    KINDS: dict[str, dict[str, Any]] = {
        "flat": {},
        "hnsw": HNSW,
        "ivf": {"nlist": AUTO, "nprobe": 16},
        "sq8": {"rescore": RESCORE["sq8"]},
        "binary": {"rescore": RESCORE["binary"]},
        "binary-hnsw": {**HNSW, "rescore": RESCORE["binary"]},
    }
    # flat: the segment's vectors.f32 scanned in place (indexes written before kept a faiss
    # IndexFlatIP copy of the same floats, index.faiss, now ignored)
    FLOAT_VIEWS = frozenset({"flat"})
    SUFFIX = "faiss"

    def __init__(self, index: Any, kind: str, params: dict[str, Any]) -> None:
        self._index = index
        self.kind = kind
        self.params = params
        self._binary = kind in BINARY_KINDS

    @classmethod
    def create(cls, dim: int, kind: str, params: dict[str, Any], count: int) -> FaissIndex:
        params = resolve_params("faiss", cls.KINDS, kind, params, count)
        ip = faiss.METRIC_INNER_PRODUCT
        if kind in BINARY_KINDS:
            index = _binary_index(dim, kind, params)
        elif kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, params["m"], ip)
            index.hnsw.efConstruction = params["ef_construction"]
        elif kind == "sq8":
            index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, ip)
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
        read = faiss.read_index_binary if kind in BINARY_KINDS else faiss.read_index
        return cls(read(str(path)), kind, params)

    def train(self, sample: np.ndarray) -> None:
        if not self._index.is_trained:
            self._index.train(np.ascontiguousarray(sample, dtype=np.float32))

    def add(self, vectors: np.ndarray) -> None:
        self._index.add(self._encode(vectors))

    def search(
        self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None, **overrides: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        params = search_params(self, k, overrides)
        selector = {}
        if allow is not None:
            # FAISS reads bit i of the bitmap as (byte i >> 3) >> (i & 7): little bit order
            bits = np.packbits(np.asarray(allow, dtype=bool), bitorder="little")
            selector["sel"] = faiss.IDSelectorBitmap(len(allow), faiss.swig_ptr(bits))
        # per-call parameters, so concurrent searches with different settings do not interfere
        if "ef_search" in params:
            options = faiss.SearchParametersHNSW(efSearch=max(params["ef_search"], k), **selector)
        elif self.kind == "ivf":
            nprobe = min(params["nprobe"], params["nlist"])
            options = faiss.SearchParametersIVF(nprobe=nprobe, **selector)
        else:
            options = faiss.SearchParameters(**selector) if selector else None
        scores, ids = self._index.search(self._encode(queries), k, params=options)
        if self._binary:  # Hamming distances to similarities in [-1, 1]
            scores = 1.0 - 2.0 * scores.astype(np.float32) / self._index.d
        return pad(scores, ids, k)

    def save(self, path: Path) -> None:
        write = faiss.write_index_binary if self._binary else faiss.write_index
        write(self._index, str(path))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def _encode(self, vectors: np.ndarray) -> np.ndarray:
        """Float32 rows as the index takes them: as they are, or packed sign bits."""
        if self._binary:
            return np.packbits(np.asarray(vectors) > 0, axis=1)
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _binary_index(dim: int, kind: str, params: dict[str, Any]) -> Any:
    if dim % 8:
        raise InvalidParameter(
            f"binary vectors pack 8 dimensions a byte, so the dimension must be a multiple of "
            f'8, got {dim}; choose kind="sq8" or kind="flat"',
            param="kind",
        )
    if kind == "binary":
        return faiss.IndexBinaryFlat(dim)
    index = faiss.IndexBinaryHNSW(dim, params["m"])
    index.hnsw.efConstruction = params["ef_construction"]
    return index
