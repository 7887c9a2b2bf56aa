"""Where indexes live: the default folder for a corpus, and which index a query means."""

from __future__ import annotations

import os
from pathlib import Path

from searchkit.errors import IndexNotFound
from searchkit.index.manifest import MANIFEST

INDEX_ROOT = Path("indexes")
INDEX_ENV = "SEARCHKIT_INDEX"
CORPUS_SUFFIXES = (".gz", ".jsonl", ".json", ".ndjson", ".parquet", ".pq", ".csv", ".tsv", ".tab")


def default_index_dir(corpus: str | Path, root: Path = INDEX_ROOT) -> Path:
    """``indexes/<corpus name>``: ``data/scifact.jsonl.gz`` -> ``indexes/scifact``."""
    name = Path(corpus).name
    for suffix in CORPUS_SUFFIXES:
        name = name.removesuffix(suffix)
    return root / (name or "index")


def locate_index(explicit: str | Path | None = None, root: Path = INDEX_ROOT) -> tuple[Path, str]:
    """The index a query should use, and why it was chosen.

    In order: ``explicit``; ``$SEARCHKIT_INDEX``; the only index under ``root``; the most
    recently built one there.

    Raises:
        IndexNotFound: nothing given and no index under ``root``.
    """
    if explicit is not None:
        return Path(explicit), "given"
    if env := os.environ.get(INDEX_ENV):
        return Path(env), f"from ${INDEX_ENV}"
    found = sorted(p.parent for p in root.glob(f"*/{MANIFEST}"))
    if not found:
        raise IndexNotFound(
            f"no index under ./{root}; build one with: searchkit index CORPUS.jsonl, "
            f"or pass --index PATH (or set ${INDEX_ENV})"
        )
    if len(found) == 1:
        return found[0], f"the only index under ./{root}"
    from searchkit.index.sharded import read_manifest  # a sharded index's parent too

    newest = max(found, key=lambda p: read_manifest(p).created)
    return newest, f"the most recently built of {len(found)} indexes under ./{root}"
