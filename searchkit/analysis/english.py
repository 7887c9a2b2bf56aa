"""``en``: the lexical stage's original analysis (bm25s's tokenizer), kept bit for bit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from searchkit.analysis.base import term_counts

# what bm25s.tokenize is given; the manifest of a BM25 index records these too
STEMMER = "english"
STOPWORDS = "en"


class EnglishAnalyzer:
    """bm25s tokens: lower case, ``\\w\\w+`` words, English stopwords out, Snowball-stemmed.

    Example::

        >>> EnglishAnalyzer().tokens(["Running the tests"])
        [['run', 'test']]
    """

    name = "en"
    version = 1

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}

    def query_terms(self, query: str) -> dict[str, float]:
        return term_counts(self.tokens([query])[0])

    def tokens(self, texts: Sequence[str]) -> list[list[str]]:
        ids, vocab = self.token_ids(texts)
        words = [""] * len(vocab)
        for word, i in vocab.items():
            words[i] = word
        return [[words[i] for i in doc] for doc in ids]

    @staticmethod
    def token_ids(texts: Sequence[str]) -> tuple[list[list[int]], dict[str, int]]:
        """bm25s's own output: each text's token ids and the vocabulary of this call."""
        import bm25s
        import Stemmer

        # a PyStemmer object is not thread-safe, and costs microseconds to make
        stemmer = Stemmer.Stemmer(STEMMER)
        ids, vocab = bm25s.tokenize(
            list(texts), stopwords=STOPWORDS, stemmer=stemmer, show_progress=False
        )
        return ids, vocab
