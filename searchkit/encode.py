"""The bi-encoder: lazy loading, length-sorted batches, normalized float32 embeddings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from searchkit.resolve import DEFAULT_ENCODER, canonical_name, lazy_model, load_st_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class Encoder:
    """A sentence-transformers bi-encoder that embeds documents and queries.

    Documents go through ``encode_document`` and queries through ``encode_query``, so models
    with prompts (e5, bge, ...) get the prefixes they were trained with. Vectors are unit length,
    so inner product is cosine similarity.

    Args:
        name: a local folder, a hub name, or ``all-MiniLM-L6-v2`` (installed offline copy).
        batch_size: texts per forward pass.
    """

    def __init__(self, name: str = DEFAULT_ENCODER, batch_size: int = 32) -> None:
        self.name = canonical_name(name)
        self.batch_size = batch_size

    @lazy_model
    def model(self) -> SentenceTransformer:
        return load_st_model("SentenceTransformer", self.name, "bi-encoder")

    @property
    def dim(self) -> int:
        """Embedding dimension (loads the model)."""
        # sentence-transformers 6 renamed get_sentence_embedding_dimension
        model = self.model
        get = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(get())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def encode_documents(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed passages, longest first so batches pad little; calls ``progress(n)`` per chunk."""
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        chunk = self.batch_size * 4
        for start in range(0, len(texts), chunk):
            rows = order[start : start + chunk]
            out[rows] = self._encode([texts[i] for i in rows], self.model.encode_document)
            if progress is not None:
                progress(len(rows))
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed queries (with the model's query prompt, if it has one)."""
        return self._encode(list(texts), self.model.encode_query)

    def _encode(self, texts: list[str], method: Callable[..., np.ndarray]) -> np.ndarray:
        vectors = method(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
