"""Re-embed an index with another bi-encoder into a new index folder (the original is only read).

The live documents are exported to a temporary JSONL and built with ``build_index`` and the
original's backend, kind, parameters, lexical first stage and reranker, so the new folder is an
ordinary index whose manifest names the new encoder.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from searchkit.defaults import DEFAULT_SPLADE
from searchkit.errors import IndexExists, InvalidParameter
from searchkit.index.lexical import user_dict_path
from searchkit.index.sections import LexicalSection
from searchkit.ingest.build import BuildReport, build_index
from searchkit.query.searcher import Searcher
from searchkit.training.mining import iter_documents


def reindex(
    index: str | Path,
    model: str | Path,
    out: str | Path,
    *,
    force: bool = False,
    progress: bool = True,
) -> BuildReport:
    """Build ``out`` from the live documents of ``index``, embedded with ``model``.

    Raises:
        IndexExists: ``out`` holds an index and ``force`` is not set.
        InvalidParameter: ``out`` is ``index`` itself.

    Example::

        reindex("indexes/scifact", "models/scifact-embedder", "indexes/scifact-tuned")
    """
    check_reindex_target(index, out, force)
    searcher = Searcher.open(index)
    m = searcher.manifest
    lexical = m.lexical or LexicalSection("none")
    analysis = (lexical.analyzer or {}) if lexical.kind == "bm25" else {}
    user_dict = user_dict_path(lexical) if lexical.kind == "bm25" else None
    with tempfile.TemporaryDirectory(prefix="searchkit-reindex-") as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        with open(corpus, "w", encoding="utf-8") as f:
            for d in iter_documents(searcher):
                record = {"_id": d.id, "title": d.title, "text": d.text, "metadata": d.metadata}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        return build_index(
            corpus, out, model=str(model), reranker=m.reranker, backend=m.backend.name,
            kind=m.backend.kind, params=dict(m.backend.params),
            lexical=lexical.kind, splade_model=lexical.model or DEFAULT_SPLADE,
            language=m.language or analysis.get("name", "en"), t2s=analysis.get("t2s", True),
            user_dict=Path(index, user_dict) if user_dict else None, force=force,
            progress=progress,
        )  # fmt: skip


def check_reindex_target(index: str | Path, out: str | Path, force: bool) -> None:
    """Refuse, before any work, to write over ``index`` or (without ``force``) another folder."""
    if Path(out).resolve() == Path(index).resolve():
        raise InvalidParameter(
            f"reindex={str(out)!r} is the index being read; give a new folder for the "
            "re-embedded index",
            param="reindex",
        )
    if Path(out).exists() and not force:
        raise IndexExists(
            f"{out} exists; pass force=True to replace it, or choose another reindex="
        )
