"""``zh``: Chinese and mixed Chinese-English text, segmented into words by rjieba.

Text is NFKC-normalized and lower-cased, Traditional script optionally folded to Simplified
(OpenCC ``t2s``), then cut into words; a word of three or more characters also yields the
dictionary words inside it (jieba's search mode: 北京大学 gives 北京, 大学, 北京大学), so a query
word matches a longer document word. Chinese stopwords and punctuation are dropped. Latin-script
words inside the text are lower-cased, English stopwords dropped and stemmed as the ``en``
analyzer does; numbers are kept ("iPhone 15 好不好用" gives iphon, 15, 不好, 好不好, 用). The
characters of each Chinese run are added to the words, and a query's words weigh twice its
characters (chosen on the dev splits of drcd-sent, zh-shop and zh-tech: see ``ChineseAnalyzer``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from searchkit.analysis.base import HAN_RUN, LatinWords, normalize, term_counts
from searchkit.errors import InvalidParameter

UserWord = tuple[str, int | None, str | None]  # a user dictionary line: word, frequency, tag


class ChineseAnalyzer:
    """Chinese words (rjieba, search mode) plus Latin words and numbers.

    Args:
        t2s: fold Traditional characters to Simplified (臺灣 finds 台湾) before segmenting.
        user_dict: a jieba-format user dictionary (``word [frequency] [tag]`` a line, UTF-8):
            domain terms such as product names, kept whole by the segmenter.
        bigrams: add the character bigrams of every run of Chinese characters.
        unigrams: add its characters (stopwords out).
        word_weight: the weight of a query's words (its Latin words too) against its added
            characters and bigrams, which weigh 1.

    The defaults were chosen on the dev splits (nDCG@10 of BM25, ``benchmarks/chinese.py``):
    drcd-sent / zh-shop / zh-tech, against 0.829 / 0.811 / 0.852 for character bigrams
    (the ``cjk`` analyzer): words alone 0.824 / 0.807 / 0.891; words, bigrams and
    characters 0.861 / 0.825 / 0.835; words and characters 0.855 / 0.836 / 0.867, and with
    query words weighing 2 (the default) 0.849 / 0.831 / 0.889: the best mean and the best
    worst case against bigrams. Bigrams and characters dilute a query's few discriminating
    words (product names, code identifiers) among many one-character terms.

    Example::

        >>> ChineseAnalyzer(bigrams=False, unigrams=False).tokens(["北京大学的学生"])
        [['北京', '大学', '北京大学', '学生']]
    """

    name = "zh"
    version = 2

    def __init__(
        self,
        *,
        t2s: bool = True,
        user_dict: str | Path | None = None,
        bigrams: bool = False,
        unigrams: bool = True,
        word_weight: float = 2.0,
    ) -> None:
        self.t2s = t2s
        self.bigrams = bigrams
        self.unigrams = unigrams
        self.word_weight = float(word_weight)
        self.user_dict = Path(user_dict) if user_dict is not None else None
        words, self.user_dict_sha256 = read_user_dict(self.user_dict) if user_dict else ((), None)
        self._jieba = _segmenter(tuple(words), t2s)
        self._convert = _t2s() if t2s else None
        self._stopwords = stopwords()

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "t2s": self.t2s,
            "bigrams": self.bigrams,
            "unigrams": self.unigrams,
            "word_weight": self.word_weight,
            "user_dict_sha256": self.user_dict_sha256,
        }

    def prepare(self, text: str) -> str:
        """The text as it is segmented: normalized, and folded to Simplified with ``t2s``."""
        text = normalize(text)
        return self._convert(text) if self._convert else text

    def tokens(self, texts: Sequence[str]) -> list[list[str]]:
        latin = LatinWords()
        out = []
        for text in texts:
            text = self.prepare(text)
            out.append(self._words(text, latin) + self._grams(text))
        return out

    def query_terms(self, query: str) -> dict[str, float]:
        text = self.prepare(query)
        terms = term_counts(self._grams(text))
        for word, n in term_counts(self._words(text, LatinWords())).items():
            terms[word] = terms.get(word, 0.0) + n * self.word_weight
        return terms

    def _words(self, text: str, latin: LatinWords) -> list[str]:
        """The segmenter's words (search mode) and the Latin words between them."""
        out: list[str] = []
        stop = self._stopwords
        for word in self._jieba.cut(text):
            if HAN_RUN.search(word):
                parts = self._jieba.cut_for_search(word) if len(word) > 2 else (word,)
                out.extend(p for p in parts if p not in stop and not p.isspace())
            else:
                out.extend(latin(word))
        return out

    def _grams(self, text: str) -> list[str]:
        """The bigrams and characters of the Chinese runs, as the options ask."""
        out: list[str] = []
        for run in HAN_RUN.findall(text) if self.bigrams or self.unigrams else ():
            if self.bigrams:
                out.extend(run[i : i + 2] for i in range(len(run) - 1))
            if self.unigrams:
                out.extend(c for c in run if c not in self._stopwords)
        return out


def read_user_dict(path: Path) -> tuple[list[UserWord], str]:
    """The words of a jieba-format user dictionary and the sha256 of the file.

    Raises:
        InvalidParameter: the file is missing, not UTF-8, or has a malformed line.
    """
    try:
        data = path.read_bytes()
        text = data.decode("utf-8-sig")
    except OSError as err:
        raise InvalidParameter(
            f"cannot read the user dictionary {path} ({err.strerror}); give an existing file "
            "with one 'word [frequency] [tag]' a line"
        ) from None
    except UnicodeDecodeError as err:
        raise InvalidParameter(
            f"{path}: the user dictionary is not UTF-8 text ({err.reason}); save it as UTF-8"
        ) from None
    words: list[UserWord] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        freq = fields[1] if len(fields) > 1 else None
        if len(fields) > 3 or (freq is not None and not freq.isdigit()):
            raise InvalidParameter(
                f"{path}:{number}: expected 'word [frequency] [tag]' (frequency a whole "
                f"number), got {line.strip()!r}"
            )
        words.append(
            (fields[0], int(freq) if freq else None, fields[2] if len(fields) > 2 else None)
        )
    return words, hashlib.sha256(data).hexdigest()


@functools.cache
def stopwords() -> frozenset[str]:
    """The shipped Chinese stopwords (``data/zh_stopwords.txt``, Simplified and Traditional)."""
    text = (
        resources.files("searchkit.analysis").joinpath("data/zh_stopwords.txt").read_text("utf-8")
    )
    return frozenset(w for w in (line.strip() for line in text.splitlines()) if w and w[0] != "#")


@functools.cache
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s").convert


@functools.lru_cache(maxsize=8)
def _segmenter(words: tuple[UserWord, ...], t2s: bool) -> Any:
    """A jieba segmenter with the user's words added (normalized as the text is); loading the
    dictionary takes ~0.1 s, so one per set of words."""
    import rjieba

    jieba = rjieba.Jieba()
    for word, freq, tag in words:
        word = normalize(word)
        jieba.add_word(_t2s()(word) if t2s else word, freq, tag)
    return jieba
