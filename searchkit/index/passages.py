"""Passage spans: how the vector rows of a segment map to character spans of its documents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from searchkit.models import Document


@dataclass(frozen=True)
class Spans:
    """The passages of a block of documents, in order: the document (position in the block)
    and the character span of each; plus how many documents were chunked or truncated."""

    doc: np.ndarray  # int64, non-decreasing
    start: np.ndarray  # int64
    end: np.ndarray  # int64
    chunked: int = 0
    truncated: int = 0

    def __len__(self) -> int:
        return len(self.doc)


def whole_documents(docs: Sequence[Document], truncated: int = 0) -> Spans:
    """One passage per document, the whole of it (``truncated`` of them were cut)."""
    ends = np.asarray([len(d.passage()) for d in docs], dtype=np.int64)
    rows = np.arange(len(docs), dtype=np.int64)
    return Spans(rows, np.zeros(len(docs), dtype=np.int64), ends, 0, truncated)
