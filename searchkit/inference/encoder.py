"""The bi-encoder: lazy loading, token-length-sorted batches, normalized float32 embeddings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from searchkit.index.sections import EncoderSection
from searchkit.inference.catalog import lookup
from searchkit.inference.resolve import DEFAULT_ENCODER
from searchkit.inference.runtimes.exported import ExportedEncoder
from searchkit.inference.runtimes.model import RuntimeModel

# a batch of this many tokens keeps the matrix products efficient; past it, a batch ends rather
# than pad a text to less than PAD_RATIO of its length (benchmarks/multilingual.py)
FULL_BATCH_TOKENS = 4096
PAD_RATIO = 0.9


class Encoder(RuntimeModel["SentenceTransformer", ExportedEncoder]):
    """A sentence-transformers bi-encoder that embeds documents and queries.

    Documents go through ``encode_document`` and queries through ``encode_query``, so models
    with prompts (e5, bge, ...) get the prefixes they were trained with: those of
    ``searchkit.inference.catalog`` for a model it knows (``query: `` / ``passage: `` for
    multilingual-e5), else the model folder's own. Vectors are unit length, so inner product is
    cosine similarity.

    ``Encoder()`` is ``all-MiniLM-L6-v2`` (the installed offline copy); the options are those
    of :class:`searchkit.inference.runtimes.model.RuntimeModel`. With a cached export (ONNX
    Runtime, OpenVINO), it runs without torch (``exported``).
    """

    role = "encoder"
    default_name = DEFAULT_ENCODER
    model_class = "SentenceTransformer"
    exported_class = ExportedEncoder

    @property
    def dim(self) -> int:
        """Embedding dimension (loads the model)."""
        if (exported := self.exported) is not None:
            return exported.spec.dim
        # sentence-transformers 6 renamed get_sentence_embedding_dimension
        model = self.model
        get = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(get())

    @property
    def max_seq_length(self) -> int:
        """The most tokens the model reads of a text, special tokens included."""
        if (exported := self.exported) is not None:
            return exported.spec.max_seq_length
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        """The model's fast tokenizer (a transformers one, or the torch-free path's)."""
        exported = self.exported
        return exported.tokenizer if exported is not None else self.model.tokenizer

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
            out[rows] = self._encode(batch, "document")
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
        made = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)
        return [min(len(ids), limit) for ids in made["input_ids"]]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed queries (with the model's query prompt, if it has one)."""
        return self._encode(list(texts), "query")

    def _encode(self, texts: list[str], role: str) -> np.ndarray:
        if (exported := self.exported) is not None:
            vectors = exported.encode(texts, role, self.batch_size)
        else:
            prompts = self.prompts
            method = self.model.encode_query if role == "query" else self.model.encode_document
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
