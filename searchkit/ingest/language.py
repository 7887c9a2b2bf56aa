"""The language of a corpus at build time: detected from a sample, and the analyzer it gets."""

from __future__ import annotations

import itertools
from pathlib import Path

from searchkit.analysis import ANALYZERS, FOR_LANGUAGE, Analyzer, detect_language, get_analyzer
from searchkit.errors import CorpusError, InvalidParameter
from searchkit.index.fsio import fsync_dir, write_atomic
from searchkit.index.lexical import user_dict_path
from searchkit.index.manifest import FileEntry
from searchkit.index.sections import LexicalSection
from searchkit.ingest.readers import CorpusSource

LANGUAGE_CHOICES = ("auto", *ANALYZERS)
SAMPLE_DOCUMENTS = 500  # documents read from the start of the corpus to detect its language
USER_DICT_ROLE = "user_dict"  # its ``files`` role in the manifest


def corpus_language(reader: CorpusSource, language: str = "auto") -> str:
    """``language``, or for ``auto`` the one ``detect_language`` finds in the titles and texts
    of the corpus' first documents (``en`` when none is readable: the build then reports the
    corpus' own error)."""
    if language not in LANGUAGE_CHOICES:
        raise InvalidParameter(
            f"unknown language {language!r}; choose one of: {', '.join(LANGUAGE_CHOICES)}",
            param="language",
        )
    if language != "auto":
        return language
    sample = reader.reopen(skip_invalid=True)
    try:
        docs = list(itertools.islice(sample, SAMPLE_DOCUMENTS))
    except CorpusError:
        return "en"
    return FOR_LANGUAGE[detect_language(f"{d.title}\n{d.text}" for d in docs)]


def language_analyzer(
    language: str, *, user_dict: str | Path | None = None, t2s: bool = True
) -> Analyzer:
    """BM25's analyzer for a corpus of ``language`` (``en``, ``zh``, ``cjk``)."""
    if language == "zh":
        return get_analyzer("zh", t2s=t2s, user_dict=user_dict)
    if user_dict is not None:
        raise InvalidParameter(
            f"a user dictionary is read by the zh analyzer, but the corpus is {language!r}; "
            'pass language="zh" to index it as Chinese',
            param="user_dict",
        )
    return get_analyzer(language)


def copy_user_dict(
    root: Path, lexical: LexicalSection | None, user_dict: str | Path | None
) -> dict[str, FileEntry]:
    """Copy the analyzer's user dictionary into the index folder ``root``; its ``files`` entry
    (none when the analyzer has no dictionary)."""
    relative = user_dict_path(lexical) if lexical else None
    if relative is None or user_dict is None:
        return {}
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, Path(user_dict).read_bytes())
    fsync_dir(target.parent)
    return {USER_DICT_ROLE: FileEntry.of(root, str(relative))}
