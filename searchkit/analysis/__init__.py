"""Text analyzers of the lexical stage (``en``, ``zh``, ``cjk``), one protocol, by name.

An analyzer turns documents and queries into terms the same way; the index manifest records
its ``config()`` so the query side rebuilds the same one (``analyzer_from_config``).
``detect_language`` picks one for a corpus. Imports only ``searchkit.errors``; the analyzers'
libraries (bm25s, rjieba, opencc) load when one is made.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from searchkit.analysis.base import Analyzer
from searchkit.analysis.detect import LANGUAGES, detect_language
from searchkit.errors import IncompatibleIndex, InvalidParameter

_ANALYZERS = {
    "en": "searchkit.analysis.english:EnglishAnalyzer",
    "zh": "searchkit.analysis.chinese:ChineseAnalyzer",
    "cjk": "searchkit.analysis.cjk:BigramAnalyzer",
}
ANALYZERS = tuple(_ANALYZERS)
# the analyzer of each detected language (other scripts: bm25s's \w\w+ words, as English)
FOR_LANGUAGE = {"en": "en", "zh": "zh", "cjk": "cjk", "other": "en"}


def analyzer_class(name: str) -> type[Analyzer]:
    """The analyzer class registered under ``name``."""
    if name not in _ANALYZERS:
        raise InvalidParameter(
            f"unknown analyzer (language) {name!r}; choose one of: {', '.join(_ANALYZERS)}"
        )
    module, _, attr = _ANALYZERS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def get_analyzer(name: str, **options: Any) -> Analyzer:
    """A new analyzer ``name`` with ``options`` (``zh``: t2s, user_dict, bigrams).

    Example::

        >>> get_analyzer("zh", t2s=True).tokens(["臺灣"])
        [['台湾']]
    """
    cls = analyzer_class(name)
    try:
        return cls(**options)
    except TypeError:
        raise InvalidParameter(
            f"analyzer {name!r} does not take the options {sorted(options)}"
        ) from None


def analyzer_from_config(
    config: Mapping[str, Any] | None, user_dict: Path | None = None
) -> Analyzer:
    """The analyzer a manifest recorded (``config()`` of the analyzer; None: ``en``, as
    indexes written before analyzers were recorded), cached; ``user_dict`` is the index's copy
    of the user dictionary when the config has one.

    Raises:
        IncompatibleIndex: another analyzer version, or the user dictionary is missing or changed.
    """
    if not config:
        config = {"name": "en", "version": 1}
    return _cached(json.dumps(dict(config), sort_keys=True), user_dict)


@lru_cache(maxsize=16)
def _cached(key: str, user_dict: Path | None) -> Analyzer:
    config = json.loads(key)
    options = {k: v for k, v in config.items() if k not in ("name", "version", "user_dict_sha256")}
    cls = analyzer_class(config["name"])
    if config.get("version") != cls.version:
        raise IncompatibleIndex(
            f"the index was built with analyzer {config['name']!r} version "
            f"{config.get('version')!r}, but this searchkit has version {cls.version}; "
            "rebuild the index"
        )
    sha = config.get("user_dict_sha256")
    if sha:
        if user_dict is None or not user_dict.is_file():
            raise IncompatibleIndex(
                f"the index's analyzer uses a user dictionary, but {user_dict} is missing; "
                "rebuild the index with its user dictionary"
            )
        options["user_dict"] = user_dict
    analyzer = cls(**options)
    if sha and analyzer.config().get("user_dict_sha256") != sha:
        raise IncompatibleIndex(
            f"{user_dict}: the user dictionary differs from the one the index was built with; "
            "rebuild the index with this one"
        )
    return analyzer


__all__ = [
    "ANALYZERS",
    "FOR_LANGUAGE",
    "LANGUAGES",
    "Analyzer",
    "analyzer_class",
    "analyzer_from_config",
    "detect_language",
    "get_analyzer",
]
