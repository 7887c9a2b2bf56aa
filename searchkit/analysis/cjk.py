"""``cjk``: overlapping character bigrams for Japanese and Korean (and any CJK) text.

No segmenter installs offline for Japanese or Korean with a dictionary, so, as Lucene's
CJKAnalyzer does, each run of Han, kana or Hangul characters becomes its overlapping bigrams
(a run of one character stays a unigram). Latin words go as in the ``zh`` analyzer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from searchkit.analysis.base import HAN, LatinWords, normalize, term_counts

# Han, Hiragana, Katakana (with the prolonged sound mark), Hangul syllables and jamo
CJK_RUN = re.compile(f"[{HAN}\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]+")


class BigramAnalyzer:
    """Character bigrams of CJK runs plus Latin words and numbers.

    Example::

        >>> BigramAnalyzer().tokens(["東京タワー"])
        [['東京', '京タ', 'タワ', 'ワー']]
    """

    name = "cjk"
    version = 1

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}

    def query_terms(self, query: str) -> dict[str, float]:
        return term_counts(self.tokens([query])[0])

    def tokens(self, texts: Sequence[str]) -> list[list[str]]:
        latin = LatinWords()
        return [self._tokens(normalize(text), latin) for text in texts]

    @staticmethod
    def _tokens(text: str, latin: LatinWords) -> list[str]:
        out: list[str] = []
        start = 0
        for run in CJK_RUN.finditer(text):
            out.extend(latin(text[start : run.start()]))
            chars = run.group()
            out.extend(chars[i : i + 2] for i in range(len(chars) - 1) or [0])
            start = run.end()
        out.extend(latin(text[start:]))
        return out
