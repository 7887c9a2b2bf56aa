"""Which analyzer a corpus wants, from the scripts its characters are written in."""

from __future__ import annotations

import re
from collections.abc import Iterable

from searchkit.analysis.base import HAN

LANGUAGES = ("en", "zh", "cjk", "other")
_HAN = re.compile(f"[{HAN}]")
_KANA_HANGUL = re.compile("[\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_LATIN = re.compile("[A-Za-z\u00c0-\u024f]")
_LETTER = re.compile(r"[^\W\d_]")
# CJK characters among CJK and Latin letters above which text is CJK: a Chinese character is
# about a word, a Latin word five letters or so, so a tenth is a third of the words. The zh
# analyzer treats English words as en does, and en makes one term of a run of Chinese
# characters, so mixed text leans Chinese
CJK_SHARE = 0.1
# at most this many characters are read from each of the sampled texts
SAMPLE_CHARS = 2000


def detect_language(texts: Iterable[str]) -> str:
    """``zh``, ``cjk`` (Japanese, Korean), ``en`` (Latin script) or ``other``, by script
    ratios over ``texts`` (a sample of the corpus: a few hundred documents is plenty).

    Chinese wins when Han characters are a tenth of the Han and Latin letters (so Chinese
    text with English product names is ``zh``); kana or Hangul make it ``cjk``. Other
    scripts (Cyrillic, Arabic, ...) give ``other``; no letters at all give ``en``.

    Example::

        >>> detect_language(["iPhone 15 好不好用", "电池续航怎么样"])
        'zh'
    """
    han = kana = latin = letters = 0
    for text in texts:
        text = text[:SAMPLE_CHARS]
        han += len(_HAN.findall(text))
        kana += len(_KANA_HANGUL.findall(text))
        latin += len(_LATIN.findall(text))
        letters += len(_LETTER.findall(text))
    cjk = han + kana
    if cjk > 0 and cjk >= CJK_SHARE * (cjk + latin):
        # Japanese mixes kana into Han text; Korean is mostly Hangul
        return "cjk" if kana > 0.1 * cjk else "zh"
    other = letters - latin - cjk
    if other > latin:
        return "other"
    return "en"
