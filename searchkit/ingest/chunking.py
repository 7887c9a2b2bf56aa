"""Long documents: split a document the encoder cannot read whole into overlapping passages.

A document's text (``Document.passage()``: title and text) is tokenized with the encoder's own
tokenizer. When it holds more than ``tokens`` tokens, it is cut into windows of at most
``tokens`` tokens that start ``tokens - overlap`` tokens apart; cuts are moved back to word
boundaries, so a passage re-tokenizes to the same tokens. Each passage is one vector of the
index; a document scores as its best passage (``searchkit.query.view``). With chunking off, a long
document is one vector of its first ``tokens`` tokens, and is counted as truncated.

A passage is a span of characters ``[start, end)`` of ``Document.passage()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from searchkit.errors import InvalidParameter
from searchkit.index.passages import Spans
from searchkit.index.sections import ChunkingSection
from searchkit.models import Document

DEFAULT_OVERLAP = 32  # tokens shared by consecutive passages


@dataclass(frozen=True)
class ChunkConfig:
    """How documents are split: ``tokens`` per passage, ``overlap`` between passages.

    ``enabled=False`` keeps one vector per document; documents longer than ``tokens`` are
    then truncated by the encoder and counted.
    """

    tokens: int
    overlap: int = DEFAULT_OVERLAP
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.tokens < 8:
            raise InvalidParameter(
                f"chunk_tokens={self.tokens} is too few: at least 8", param="chunk_tokens"
            )
        if not 0 <= self.overlap <= self.tokens // 2:
            raise InvalidParameter(
                f"chunk_overlap={self.overlap} is out of range: from 0 to half of chunk_tokens="
                f"{self.tokens} ({self.tokens // 2})",
                param="chunk_overlap",
            )

    def section(self) -> ChunkingSection:
        """What an index's manifest records about these settings."""
        return ChunkingSection(self.tokens, self.overlap, self.enabled)


def chunk_config(
    window: int, tokens: int | None = None, overlap: int | None = None, enabled: bool = True
) -> ChunkConfig:
    """The settings for an encoder reading ``window`` tokens of text (its max_seq_length minus
    its special tokens): ``tokens`` defaults to the whole window and may not exceed it."""
    tokens = window if tokens is None else tokens
    if tokens > window:
        raise InvalidParameter(
            f"chunk_tokens={tokens} is more than the encoder reads ({window} tokens of text); "
            f"pass at most {window}",
            param="chunk_tokens",
        )
    return ChunkConfig(tokens, DEFAULT_OVERLAP if overlap is None else overlap, enabled)


def text_window(model: Any) -> int:
    """Tokens of text a model reads (a sentence-transformers one or an ``Encoder``, which have
    ``max_seq_length`` and ``tokenizer``): max_seq_length minus special tokens."""
    return int(model.max_seq_length) - int(model.tokenizer.num_special_tokens_to_add(pair=False))


class Chunker:
    """Splits documents into passages with a (fast) Hugging Face tokenizer."""

    def __init__(self, tokenizer: Any, config: ChunkConfig) -> None:
        if config.enabled and not getattr(tokenizer, "is_fast", False):
            raise InvalidParameter(
                "chunking needs a fast (Rust) tokenizer with character offsets; "
                "index with chunk=False for this model",
                param="chunk",
            )
        self.tokenizer = tokenizer
        self.config = config

    def split(self, docs: Sequence[Document]) -> tuple[list[str], Spans]:
        """The passage texts of ``docs`` and their spans."""
        texts = [d.passage() for d in docs]
        enabled = self.config.enabled
        encoded = self.tokenizer(
            texts, add_special_tokens=False, return_offsets_mapping=enabled, verbose=False
        )
        out_doc, out_start, out_end, passages = [], [], [], []
        chunked = truncated = 0
        for i, text in enumerate(texts):
            if len(encoded["input_ids"][i]) <= self.config.tokens:
                spans = [(0, len(text))]
            elif not enabled:
                spans, truncated = [(0, len(text))], truncated + 1
            else:
                offsets = encoded["offset_mapping"][i]
                spans = _windows(offsets, encoded.word_ids(i), self.config)
                chunked += 1
            for start, end in spans:
                out_doc.append(i)
                out_start.append(start)
                out_end.append(end)
                passages.append(text[start:end])
        spans_ = Spans(
            np.asarray(out_doc, dtype=np.int64),
            np.asarray(out_start, dtype=np.int64),
            np.asarray(out_end, dtype=np.int64),
            chunked,
            truncated,
        )
        return passages, spans_


def _windows(
    offsets: Sequence[tuple[int, int]], words: Sequence[int | None], config: ChunkConfig
) -> list[tuple[int, int]]:
    """Character spans of overlapping windows of at most ``config.tokens`` tokens, cut between
    words (a word longer than a window is cut inside)."""
    n, size = len(offsets), config.tokens

    def inside(t: int) -> bool:  # token t continues the word of token t - 1
        return 0 < t < n and words[t] is not None and words[t] == words[t - 1]

    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + size, n)
        cut = end
        while cut > start + 1 and inside(cut):
            cut -= 1
        end = cut if cut > start + size // 2 else end
        spans.append((offsets[start][0], offsets[end - 1][1]))
        if end >= n:
            return spans
        nxt = max(end - config.overlap, start + 1)
        back = nxt
        while back > start + 1 and inside(back):
            back -= 1
        start = back if back > start else nxt
