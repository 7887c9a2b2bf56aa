"""Shared by the benchmark scripts: datasets (cut for smoke runs), their indexes and vectors."""

from __future__ import annotations

import atexit
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, note

_WORKDIR: Path | None = None


def workdir() -> Path:
    """A scratch folder for this run, removed at exit."""
    global _WORKDIR
    if _WORKDIR is None:
        _WORKDIR = Path(tempfile.mkdtemp(prefix="searchkit-bench-"))
        atexit.register(shutil.rmtree, _WORKDIR, ignore_errors=True)
    return _WORKDIR


def load_dataset(root: Path, split: str = "test", limit: int | None = None) -> Any:
    """A :class:`searchkit.eval.beir.EvalSet` of a BEIR folder, cut to ``limit`` docs and queries.

    A cut keeps the first ``limit`` corpus lines (copied to a scratch file) and the first
    ``limit`` queries that still have a judged document among them (any queries if none has),
    so smoke runs give non-trivial metrics. Its name becomes ``<name>-limit<N>``.
    """
    from dataclasses import replace

    from searchkit.eval.beir import load_beir

    data = load_beir(root, split)
    if not limit:
        return data
    name = f"{data.name}-limit{limit}"
    corpus = workdir() / f"{name}.jsonl"
    kept = _head_corpus(data.corpus, corpus, limit)
    qrels = {q: {d: r for d, r in rel.items() if d in kept} for q, rel in data.qrels.items()}
    qrels = {q: rel for q, rel in qrels.items() if rel} or data.qrels
    qids = list(qrels)[:limit]
    queries = {q: data.queries[q] for q in qids}
    return replace(
        data, name=name, corpus=corpus, queries=queries, qrels={q: qrels[q] for q in qids}
    )


def _head_corpus(source: Path, out: Path, limit: int) -> set[str]:
    """Copy the first ``limit`` documents of a corpus; returns their ids."""
    from searchkit.ingest.corpus import CorpusReader

    ids = set()
    with open(out, "w", encoding="utf-8") as f:
        for doc in CorpusReader(source):
            if len(ids) == limit:
                break
            record = {"_id": doc.id, "title": doc.title, "text": doc.text, **doc.metadata}
            f.write(json.dumps(record) + "\n")
            ids.add(doc.id)
    return ids


def passages(corpus: Path, limit: int | None = None) -> list[str]:
    """The texts searchkit embeds for a corpus: ``f"{title} {text}"`` (Document.passage)."""
    from itertools import islice

    from searchkit.ingest.corpus import CorpusReader

    return [doc.passage() for doc in islice(CorpusReader(corpus), limit)]


def bench_index(
    data: Any,
    path: Path | None = None,
    *,
    rebuild: bool = False,
    backend: str = "faiss",
    kind: str | None = None,
) -> Path:
    """The index of ``data``'s corpus to benchmark, built unless ``path`` already holds it.

    Default ``path``: ``indexes/<name>`` (as ``searchkit eval`` builds it) for the default
    faiss flat backend, else ``indexes/<name>-<backend>-<kind>``. An index of another corpus
    there is an error unless ``rebuild``.
    """
    from searchkit import Manifest
    from searchkit.backends import DEFAULT_KIND
    from searchkit.eval.evaluate import ensure_index

    kind = kind or DEFAULT_KIND[backend]
    suffix = "" if (backend, kind) == ("faiss", "flat") else f"-{backend}-{kind}"
    path = path or REPO / "indexes" / f"{data.name}{suffix}"
    note(f"index: {path} (built unless it already indexes {data.corpus})")
    progress = sys.stderr.isatty()
    ensure_index(data, path, force=rebuild, backend=backend, kind=kind, progress=progress)
    built = Manifest.read(path).backend
    if (built.name, built.kind) != (backend, kind):
        note(f"warning: {path} is a {built.name} {built.kind} index; --rebuild to change")
    return path


def index_vectors(path: Path) -> np.ndarray:
    """The (documents, dim) float32 embeddings stored in an index folder, read back exactly.

    Read from the segments' raw vector files, the very vectors searchkit's indexes were built
    from, so a baseline searches them without embedding again. The index must have no deletions.
    """
    from searchkit import Manifest
    from searchkit.index.segment import read_vectors

    manifest = Manifest.read(path)
    if manifest.deleted:
        raise SystemExit(f"{path} has deleted documents; compact it first")
    parts = [
        read_vectors(path / manifest.files[s.role("vectors")].path, manifest.dim)
        for s in manifest.segments
    ]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
