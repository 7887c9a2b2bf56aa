"""The bi-encoder: lazy loading, length-sorted batches, normalized float32 embeddings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from searchkit.index.sections import EncoderSection
from searchkit.inference.catalog import lookup
from searchkit.inference.resolve import DEFAULT_ENCODER
from searchkit.inference.runtimes.model import RuntimeModel

if TYPE_CHECKING:
    pass


class Encoder(RuntimeModel["SentenceTransformer"]):
    """A sentence-transformers bi-encoder that embeds documents and queries.

    Documents go through ``encode_document`` and queries through ``encode_query``, so models
    with prompts (e5, bge, ...) get the prefixes they were trained with: those of
    ``searchkit.inference.catalog`` for a model it knows (``query: `` / ``passage: `` for
    multilingual-e5), else the model folder's own. Vectors are unit length, so inner product is
    cosine similarity.

    ``Encoder()`` is ``all-MiniLM-L6-v2`` (the installed offline copy); the options are those
    of :class:`searchkit.inference.runtimes.model.RuntimeModel`.
    """

    role = "encoder"
    default_name = DEFAULT_ENCODER
    model_class = "SentenceTransformer"

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

    def section(self) -> EncoderSection:
        """What an index's manifest records about this encoder (loads the model)."""
        r = self.runtime
        return EncoderSection(self.name, self.dim, self.max_seq_length, r.name, r.precision)

    @property
    def prompts(self) -> dict[str, str] | None:
        """The catalog's prefixes for this model by role (``query``, ``document``; a missing
        role gets none), or None for a model the catalog does not know."""
        info = lookup(self.name)
        return None if info is None else {r: info.prompt(r) for r in ("query", "document")}

    def encode_documents(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed passages, longest first so batches pad little; calls ``progress(n)`` per chunk."""
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        chunk = self.batch_size * 4
        for start in range(0, len(texts), chunk):
            rows = order[start : start + chunk]
            batch = [texts[i] for i in rows]
            out[rows] = self._encode(batch, self.model.encode_document, "document")
            if progress is not None:
                progress(len(rows))
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed queries (with the model's query prompt, if it has one)."""
        return self._encode(list(texts), self.model.encode_query, "query")

    def _encode(self, texts: list[str], method: Callable[..., np.ndarray], role: str) -> np.ndarray:
        prompts = self.prompts
        # an explicit prompt (even "") replaces the folder's own, so it is never applied twice
        vectors = method(
            texts,
            prompt=None if prompts is None else prompts[role],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.runtime.precision != "fp32":
            # normalized in bf16/int8 arithmetic: make them unit length in float32
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors
