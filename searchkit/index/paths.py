"""Where indexes live: the default folder for a corpus."""

from __future__ import annotations

from pathlib import Path

INDEX_ROOT = Path("indexes")
CORPUS_SUFFIXES = (".gz", ".jsonl", ".json", ".ndjson", ".parquet", ".pq", ".csv", ".tsv", ".tab")


def default_index_dir(corpus: str | Path, root: Path = INDEX_ROOT) -> Path:
    """``indexes/<corpus name>``: ``data/scifact.jsonl.gz`` -> ``indexes/scifact``."""
    name = Path(corpus).name
    for suffix in CORPUS_SUFFIXES:
        name = name.removesuffix(suffix)
    return root / (name or "index")
