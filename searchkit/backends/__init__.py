"""Vector-index backends behind one protocol, imported lazily by name."""

from __future__ import annotations

import importlib

from searchkit.backends.base import VectorIndex
from searchkit.errors import UnknownBackend

_BACKENDS = {
    "faiss": "searchkit.backends.faiss:FaissIndex",
    "hnswlib": "searchkit.backends.hnsw:HnswIndex",
    "exact": "searchkit.backends.exact:ExactIndex",
}
BACKENDS = tuple(_BACKENDS)
DEFAULT_KIND = {"faiss": "flat", "hnswlib": "hnsw", "exact": "flat"}


def is_float_view(name: str, kind: str) -> bool:
    """Whether a ``kind`` index of backend ``name`` is an exact scan of the segment's stored
    float vectors (``ExactIndex.over`` them): it writes no file of its own."""
    return kind in get_backend(name).FLOAT_VIEWS


def get_backend(name: str) -> type[VectorIndex]:
    """The backend class registered under ``name``."""
    if name not in _BACKENDS:
        raise UnknownBackend(f"unknown backend {name!r}; choose one of: {', '.join(_BACKENDS)}")
    module, _, attr = _BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["BACKENDS", "DEFAULT_KIND", "VectorIndex", "get_backend", "is_float_view"]
