"""The analyzer protocol and the Latin-script path every analyzer shares."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

# bm25s's English stopwords (its "en" list), applied to Latin words inside Chinese/CJK text too
LATIN_WORD = re.compile(r"[^\W_]+")
# Han ideographs: CJK unified (with extension A), compatibility, and the supplementary planes
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
HAN_RUN = re.compile(f"[{HAN}]+")


class Analyzer(Protocol):
    """Turns texts into the terms of the lexical stage, documents and queries alike.

    ``name`` and ``version`` are recorded in the index manifest with ``config()`` (the options
    that change the terms), so a query is analyzed as the documents were. Bump ``version``
    whenever the terms an analyzer makes for some text change.
    """

    name: str
    version: int

    def config(self) -> dict[str, Any]:
        """What the manifest records: name, version and every option that changes terms."""
        ...

    def tokens(self, texts: Sequence[str]) -> list[list[str]]:
        """Each text's terms, in order, repeated as often as they occur."""
        ...

    def query_terms(self, query: str) -> dict[str, float]:
        """A query's distinct terms and their weights (``term_counts`` of its tokens, unless
        the analyzer weighs kinds of terms differently)."""
        ...


def term_counts(tokens: Iterable[str]) -> dict[str, float]:
    """Each distinct term and how often it occurs: a query's weights, as bm25s scores them."""
    return {t: float(n) for t, n in Counter(tokens).items()}


def normalize(text: str) -> str:
    """NFKC (full-width ＡＢＣ１２３ to ABC123, compatibility ideographs folded), lower case."""
    return unicodedata.normalize("NFKC", text).lower()


class LatinWords:
    """Latin-script words and numbers: split on what is not a letter or digit, English
    stopwords out, Snowball-stemmed (numbers and non-ASCII words kept as they are).

    One per ``tokens`` call: a PyStemmer object is not thread-safe.
    """

    def __init__(self) -> None:
        import Stemmer
        from bm25s.stopwords import STOPWORDS_EN

        self._stem = Stemmer.Stemmer("english").stemWord
        self._stopwords = frozenset(STOPWORDS_EN)
        self._cache: dict[str, str] = {}

    def __call__(self, text: str) -> list[str]:
        out = []
        for word in LATIN_WORD.findall(text):
            if word in self._stopwords:
                continue
            stem = self._cache.get(word)
            if stem is None:
                stem = self._stem(word) if word.isascii() and word.isalpha() else word
                self._cache[word] = stem
            out.append(stem)
        return out
