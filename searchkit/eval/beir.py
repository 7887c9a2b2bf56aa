"""Read evaluation data in BEIR layout: corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from searchkit.errors import CorpusError, DatasetError
from searchkit.ingest.corpus import CorpusReader

Qrels = dict[str, dict[str, int]]
CORPUS_NAMES = ("corpus.jsonl", "corpus.jsonl.gz")


@dataclass(frozen=True)
class EvalSet:
    """Queries with relevance judgements, and the corpus they judge when known."""

    name: str
    queries: dict[str, str]
    qrels: Qrels
    corpus: Path | None = None


def load_beir(root: str | Path, split: str = "test") -> EvalSet:
    """Load ``root/{corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv}``.

    Only the queries judged in the split are kept (``queries.jsonl`` holds every split's).

    Raises:
        DatasetError: a missing file, an empty split, or qrels naming unknown queries.
    """
    root = Path(root)
    corpus = next((root / n for n in CORPUS_NAMES if (root / n).is_file()), None)
    if corpus is None:
        raise DatasetError(root, None, "no corpus.jsonl[.gz]: not a BEIR dataset folder")
    return load_eval_set(root / "queries.jsonl", root / "qrels" / f"{split}.tsv", corpus, root.name)


def load_eval_set(
    queries: str | Path, qrels: str | Path, corpus: Path | None = None, name: str | None = None
) -> EvalSet:
    """Queries (BEIR queries.jsonl) judged in a qrels TSV; unjudged queries are dropped."""
    judged = read_qrels(qrels)
    texts = read_queries(Path(queries), Path(qrels), set(judged))
    return EvalSet(name or Path(qrels).stem, texts, judged, corpus)


def read_qrels(path: str | Path) -> Qrels:
    """``{query id: {doc id: relevance}}`` from a TSV of query-id, corpus-id, score."""
    path = Path(path)
    if not path.is_file():
        splits = ", ".join(sorted(p.stem for p in path.parent.glob("*.tsv"))) or "none"
        raise DatasetError(path, None, f"no such qrels file (splits found: {splits})")
    qrels: Qrels = {}
    with open(path, encoding="utf-8", newline="") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter="\t"), start=1):
            if not row or (line_no == 1 and not row[-1].lstrip("-").isdigit()):
                continue  # blank line or header
            if len(row) != 3 or not row[2].lstrip("-").isdigit():
                problem = f"expected query-id, corpus-id and an integer score, got {row}"
                raise DatasetError(path, line_no, problem)
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    if not qrels:
        raise DatasetError(path, None, "empty split: no judged queries")
    return qrels


def read_queries(path: Path, qrels_path: Path, wanted: set[str]) -> dict[str, str]:
    """The text of every query in ``wanted``, read from a BEIR queries.jsonl."""
    try:
        queries = {q.id: q.text for q in CorpusReader(path) if q.id in wanted}
    except CorpusError as err:
        raise DatasetError(err.path, err.line, err.problem) from None
    if missing := sorted(wanted - set(queries)):
        problem = f"{len(missing)} judged queries are not in {path}, e.g. {missing[:3]}"
        raise DatasetError(qrels_path, None, problem)
    return queries
