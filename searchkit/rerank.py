"""The second stage: a sentence-transformers CrossEncoder that scores (query, passage) pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from searchkit.resolve import DEFAULT_RERANKER, canonical_name, lazy_model
from searchkit.runtimes import Runtime

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder


class Reranker:
    """Scores query/passage pairs with a CrossEncoder; higher is more relevant.

    Passages longer than the model's ``max_length`` are truncated by its tokenizer, which keeps
    the query and the start of the passage.

    Args:
        name: a local folder or a hub name (default ``cross-encoder/ms-marco-MiniLM-L6-v2``).
        batch_size: pairs per forward pass.
        runtime: ``torch``, ``onnx`` or ``openvino``, optionally with a precision
            (``openvino-int8``); None or ``auto``: the fastest installed one that meets
            searchkit's quality bounds (see ``searchkit.runtimes``).
        precision: ``fp32``, ``bf16`` or ``int8``, when ``runtime`` does not name one.
    """

    def __init__(
        self,
        name: str = DEFAULT_RERANKER,
        batch_size: int = 32,
        *,
        runtime: str | Runtime | None = None,
        precision: str | None = None,
    ) -> None:
        self.name = canonical_name(name)
        self.batch_size = batch_size
        self.runtime = Runtime.parse(runtime, precision, role="reranker")

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_RERANKER

    @lazy_model
    def model(self) -> CrossEncoder:
        from sentence_transformers import CrossEncoder

        from searchkit.runtimes.load import load_on_runtime

        return load_on_runtime(CrossEncoder, self.name, self.runtime, "reranker")

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """One float score per (query, passage) pair, all pairs batched together."""
        if not pairs:
            return np.empty(0, dtype=np.float32)
        scores = self.model.predict(
            list(pairs), batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        return np.asarray(scores, dtype=np.float32).reshape(len(pairs))
