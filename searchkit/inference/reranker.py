"""The second stage: a sentence-transformers CrossEncoder that scores (query, passage) pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from searchkit.errors import InvalidParameter
from searchkit.inference.catalog import ENGLISH_RERANKER, MULTILINGUAL_RERANKER
from searchkit.inference.resolve import DEFAULT_RERANKER
from searchkit.inference.runtimes.exported import ExportedReranker
from searchkit.inference.runtimes.model import RuntimeModel

# Far above the 4-5 characters of an average English word piece, and the 1-2 of a Chinese or
# Japanese one: the cut never shortens what the model can read, it only spares tokenizing text
# the model would drop.
CHARS_PER_TOKEN = 16
MIN_TOKENS = 32  # a cap below this leaves little of the passage beside the query


class Reranker(RuntimeModel["CrossEncoder", ExportedReranker]):
    """Scores query/passage pairs with a CrossEncoder; higher is more relevant.

    Pairs are scored in batches of similar length (sentence-transformers sorts them). A pair
    longer than the model's ``max_seq_length`` tokens is truncated to it (the query and the start
    of the passage), and counted: ``score_counted`` says which pairs were. Passages are first cut
    to ``CHARS_PER_TOKEN`` characters per token of that limit, so a huge passage is never
    tokenized whole (a cut passage counts as truncated).

    ``Reranker()`` is ``cross-encoder/ms-marco-MiniLM-L6-v2``; the options are those of
    :class:`searchkit.inference.runtimes.model.RuntimeModel` (``batch_size``: pairs per forward
    pass), and ``max_tokens``: a cap below the model's own limit, to trade some quality for speed
    (cost grows with pair length; measured in benchmarks/README.md, "Rerank cost control").
    With a cached export (ONNX Runtime, OpenVINO), it runs without torch (``exported``).
    """

    role = "reranker"
    default_name = DEFAULT_RERANKER
    model_class = "CrossEncoder"
    exported_class = ExportedReranker

    def __init__(
        self,
        name: str | None = None,
        batch_size: int = 32,
        *,
        max_tokens: int | None = None,
        **runtime: Any,
    ) -> None:
        super().__init__(name, batch_size, **runtime)  # runtime=, precision=
        if max_tokens is not None and max_tokens < MIN_TOKENS:
            raise InvalidParameter(
                f"the reranker's max_tokens must be at least {MIN_TOKENS}, got {max_tokens}"
            )
        self.token_cap = max_tokens
        self._own_limit: int | None = None

    @property
    def is_default(self) -> bool:
        """Whether this is a default reranker (English or multilingual): one that search skips,
        with a warning, when it cannot be loaded (e.g. the multilingual one without hub access)."""
        return self.name in (ENGLISH_RERANKER, MULTILINGUAL_RERANKER)

    @property
    def max_tokens(self) -> int:
        """The longest (query, passage) pair the model reads, in tokens: its own limit, or the
        ``max_tokens`` cap when lower (loads the model)."""
        exported = self.exported
        if self._own_limit is None:
            own = exported.spec.max_seq_length if exported else self.model.max_seq_length
            self._own_limit = int(own)
            limit = min(self._own_limit, self.token_cap or self._own_limit)
            if exported is not None:
                exported.truncate_to(limit)
            else:
                self.model.max_seq_length = limit
        return min(self._own_limit, self.token_cap or self._own_limit)

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """One float score per (query, passage) pair, all pairs batched together."""
        return self.score_counted(pairs)[0]

    def score_counted(self, pairs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        """Scores of the pairs, and for each pair whether the model read only part of it."""
        if not pairs:
            return np.empty(0, dtype=np.float32), np.empty(0, dtype=bool)
        cap = self.max_tokens * CHARS_PER_TOKEN
        cut = [(q, p[:cap]) for q, p in pairs]
        exported = self.exported
        tokenizer = exported.tokenizer if exported is not None else self.model.tokenizer
        tokens = tokenizer([q for q, _ in cut], [p for _, p in cut], verbose=False)["input_ids"]
        lengths = np.asarray([len(ids) for ids in tokens])
        truncated = (np.asarray([len(p) for _, p in pairs]) > cap) | (lengths > self.max_tokens)
        if exported is not None:
            scores = exported.predict(cut, self.batch_size)
        else:
            scores = self.model.predict(
                cut, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
            )
        return np.asarray(scores, dtype=np.float32).reshape(len(pairs)), truncated
