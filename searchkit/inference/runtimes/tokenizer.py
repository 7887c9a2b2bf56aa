"""A ``tokenizers.Tokenizer`` with the small part of the Hugging Face fast-tokenizer API that
searchkit calls (``searchkit.ingest.chunking`` and token counts), so they need no transformers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class Encoded(dict[str, list[Any]]):
    """``input_ids`` (and ``offset_mapping``) per text, with ``word_ids(i)`` as in transformers."""

    def __init__(self, encodings: list[Any], offsets: bool) -> None:
        super().__init__(input_ids=[e.ids for e in encodings])
        if offsets:
            self["offset_mapping"] = [e.offsets for e in encodings]
        self._encodings = encodings

    def word_ids(self, i: int) -> list[int | None]:
        return list(self._encodings[i].word_ids)


class FastTokenizer:
    """The model's ``tokenizer.json``, called like a transformers fast tokenizer (no padding)."""

    is_fast = True

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        self.backend = Tokenizer.from_file(str(path))
        self.backend.no_padding()
        self.backend.no_truncation()
        self._special = len(self.backend.encode("", add_special_tokens=True).ids)

    def __call__(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        *,
        add_special_tokens: bool = True,
        return_offsets_mapping: bool = False,
        verbose: bool = False,
    ) -> Encoded:
        """Tokens of each text (or (text, pair)), untruncated; ``verbose`` is ignored (this
        never warns about length)."""
        inputs: list[Any] = list(texts) if pairs is None else list(zip(texts, pairs, strict=True))
        made = self.backend.encode_batch(inputs, add_special_tokens=add_special_tokens)
        return Encoded(made, return_offsets_mapping)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """Special tokens added around one text (``pair`` is not supported)."""
        if pair:
            raise ValueError("FastTokenizer counts the special tokens of single texts only")
        return self._special
