"""The bi-encoder: lazy loading, token-length-sorted batches, normalized float32 embeddings."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from searchkit.index.sections import EncoderSection
from searchkit.inference.catalog import lookup
from searchkit.inference.resolve import DEFAULT_ENCODER
from searchkit.inference.runtimes.model import RuntimeModel

# a batch of this many tokens keeps the matrix products efficient; past it, a batch ends rather
# than pad a text to less than PAD_RATIO of its length (benchmarks/multilingual.py)
FULL_BATCH_TOKENS = 4096
PAD_RATIO = 0.9


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
        """Embed passages, most tokens first, in batches that pad little (``batches``); calls
        ``progress(n)`` per batch."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for rows in self.batches(self.token_counts(texts)):
            batch = [texts[i] for i in rows]
            out[rows] = self._encode(batch, self.model.encode_document, "document")
            if progress is not None:
                progress(len(rows))
        return out

    def batches(self, counts: Sequence[int]) -> list[list[int]]:
        """Row numbers of each batch: most tokens first, at most ``batch_size`` texts, and a
        batch that already holds ``FULL_BATCH_TOKENS`` ends before a text shorter than
        ``PAD_RATIO`` of its longest (which it would pad), so even a few hundred texts of
        mixed lengths pad ~5%, not ~13%."""
        out: list[list[int]] = []
        for i in np.argsort([-n for n in counts], kind="stable").tolist():
            batch = out[-1] if out else []
            longest = counts[batch[0]] if batch else 0
            full = len(batch) == self.batch_size or (
                len(batch) * longest >= FULL_BATCH_TOKENS and counts[i] < PAD_RATIO * longest
            )
            if not batch or full:
                out.append([i])
            else:
                batch.append(i)
        return out

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens the model reads of each text (without prompt and special tokens).

        Batches are ordered by these, not by characters: 300 characters are ~230 XLM-R tokens
        of Chinese but ~70 of English, so a mixed corpus sorted by characters pads each batch
        to its Chinese texts' length (20% more tokens for multilingual-e5 on
        benchmarks/multilingual.py's texts, each costing more at long lengths).
        """
        if not texts:
            return []
        limit = self.max_seq_length
        made = self.model.tokenizer(
            list(texts), add_special_tokens=False, truncation=True, max_length=limit
        )
        return [len(ids) for ids in made["input_ids"]]

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
