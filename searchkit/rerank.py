"""The second stage: a sentence-transformers CrossEncoder that scores (query, passage) pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from searchkit.resolve import DEFAULT_RERANKER
from searchkit.runtimes.model import RuntimeModel

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder


class Reranker(RuntimeModel["CrossEncoder"]):
    """Scores query/passage pairs with a CrossEncoder; higher is more relevant.

    Passages longer than the model's ``max_length`` are truncated by its tokenizer, which keeps
    the query and the start of the passage.

    ``Reranker()`` is ``cross-encoder/ms-marco-MiniLM-L6-v2``; the options are those of
    :class:`searchkit.runtimes.model.RuntimeModel` (``batch_size``: pairs per forward pass).
    """

    role = "reranker"
    default_name = DEFAULT_RERANKER

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_RERANKER

    def _factory(self) -> type[CrossEncoder]:
        from sentence_transformers import CrossEncoder

        return CrossEncoder

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """One float score per (query, passage) pair, all pairs batched together."""
        if not pairs:
            return np.empty(0, dtype=np.float32)
        scores = self.model.predict(
            list(pairs), batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        return np.asarray(scores, dtype=np.float32).reshape(len(pairs))
