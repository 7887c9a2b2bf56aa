"""Read evaluation data in BEIR layout: corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv."""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path

from searchkit.errors import CorpusError, DatasetError, DatasetWarning
from searchkit.ingest.corpus import DEFAULT_ENCODING, CorpusReader, check_encoding, not_text

Qrels = dict[str, dict[str, int]]
CORPUS_NAMES = ("corpus.jsonl", "corpus.jsonl.gz")
MAX_WARNINGS = 5  # bad lines of unused queries named one by one; the rest are counted


@dataclass(frozen=True)
class EvalSet:
    """Queries with relevance judgements, and the corpus they judge when known."""

    name: str
    queries: dict[str, str]
    qrels: Qrels
    corpus: Path | None = None
    encoding: str = DEFAULT_ENCODING  # of the files, the corpus too


def load_beir(
    root: str | Path, split: str = "test", *, encoding: str = DEFAULT_ENCODING
) -> EvalSet:
    """Load ``root/{corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv}``, all in ``encoding``.

    Only the queries judged in the split are kept (``queries.jsonl`` holds every split's); a bad
    line of a query not judged in it is a ``DatasetWarning``, not an error.

    Raises:
        DatasetError: a missing file, an empty split, a bad line of a judged query, or qrels
            naming unknown queries.
    """
    root = Path(root)
    corpus = next((root / n for n in CORPUS_NAMES if (root / n).is_file()), None)
    if corpus is None:
        raise DatasetError(root, None, "no corpus.jsonl[.gz]: not a BEIR dataset folder")
    qrels = root / "qrels" / f"{split}.tsv"
    return load_eval_set(root / "queries.jsonl", qrels, corpus, root.name, encoding=encoding)


def load_eval_set(
    queries: str | Path,
    qrels: str | Path,
    corpus: Path | None = None,
    name: str | None = None,
    *,
    encoding: str = DEFAULT_ENCODING,
) -> EvalSet:
    """Queries (BEIR queries.jsonl) judged in a qrels TSV; unjudged queries are dropped."""
    judged = read_qrels(qrels, encoding=encoding)
    texts = read_queries(Path(queries), Path(qrels), set(judged), encoding=encoding)
    return EvalSet(name or Path(qrels).stem, texts, judged, corpus, encoding)


def read_qrels(path: str | Path, *, encoding: str = DEFAULT_ENCODING) -> Qrels:
    """``{query id: {doc id: relevance}}`` from a TSV of query-id, corpus-id, score."""
    path = Path(path)
    if not path.is_file():
        splits = ", ".join(sorted(p.stem for p in path.parent.glob("*.tsv"))) or "none"
        raise DatasetError(path, None, f"no such qrels file (splits found: {splits})")
    encoding = check_encoding(encoding)
    qrels: Qrels = {}
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, start=1):
            try:
                text = line.decode(encoding).removeprefix("\ufeff").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DatasetError(path, line_no, not_text(line, encoding, err)) from None
            row = next(csv.reader([text], delimiter="\t"), [])
            if not row or (line_no == 1 and not row[-1].lstrip("-").isdigit()):
                continue  # blank line or header
            if len(row) != 3 or not row[2].lstrip("-").isdigit():
                problem = f"expected query-id, corpus-id and an integer score, got {row}"
                raise DatasetError(path, line_no, problem)
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    if not qrels:
        raise DatasetError(path, None, "empty split: no judged queries")
    return qrels


def read_queries(
    path: Path, qrels_path: Path, wanted: set[str], *, encoding: str = DEFAULT_ENCODING
) -> dict[str, str]:
    """The text of every query in ``wanted``, read from a BEIR queries.jsonl.

    A bad line (as ``CorpusReader`` judges it) of a query in ``wanted`` raises
    ``DatasetError``; of another query, or one whose id cannot be read while every wanted query
    is found, it is a ``DatasetWarning`` naming the file and line.
    """
    reader = CorpusReader(path, encoding=encoding)
    queries: dict[str, str] = {}
    unused: list[CorpusError] = []  # bad lines of other queries
    unknown: list[CorpusError] = []  # bad lines whose id cannot be read
    try:
        for line_no, line in reader.lines():
            try:
                for _, q in reader.documents([(line_no, line)]):
                    if q.id in wanted:
                        queries[q.id] = q.text
            except CorpusError as err:
                qid = reader.line_id(line)
                if qid in wanted:
                    raise
                (unknown if qid is None else unused).append(err)
    except CorpusError as err:
        raise DatasetError(err.path, err.line, err.problem) from None
    if missing := sorted(wanted - set(queries)):
        problem = f"{len(missing)} judged queries are not in {path}, e.g. {missing[:3]}"
        if unknown:  # one of them may be a missing query
            err = unknown[0]
            raise DatasetError(err.path, err.line, f"{err.problem}; {problem}")
        raise DatasetError(qrels_path, None, problem)
    _warn_unused(sorted(unused + unknown, key=lambda e: e.line or 0), qrels_path)
    return queries


def _warn_unused(errors: list[CorpusError], qrels_path: Path) -> None:
    for err in errors[:MAX_WARNINGS]:
        warnings.warn(
            f"{err}; skipped: not a query judged in {qrels_path}", DatasetWarning, stacklevel=4
        )
    if len(errors) > MAX_WARNINGS:
        more = len(errors) - MAX_WARNINGS
        warnings.warn(
            f"{errors[0].path}: {more} more bad lines skipped: not queries judged in {qrels_path}",
            DatasetWarning,
            stacklevel=4,
        )
