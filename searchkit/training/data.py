"""Relevance data to train on: BEIR qrels or a JSONL of query/positive pairs, and a held-out split.

A JSONL training file has one object per line: ``query`` (text), and ``positive`` (the relevant
passage's text) or ``positive_id`` (the id of a document in the index), e.g.
``{"query": "statins and muscle pain", "positive_id": "4983"}``. Lines with the same query text
are one query with several positives.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from searchkit.errors import DatasetError, InvalidParameter
from searchkit.eval.beir import load_beir, load_eval_set


@dataclass
class TrainQuery:
    """A query and its relevant documents: ids in the index, and passages given as text."""

    id: str
    text: str
    positive_ids: list[str] = field(default_factory=list)
    positive_texts: list[str] = field(default_factory=list)


def from_qrels(
    queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]]
) -> list[TrainQuery]:
    """One ``TrainQuery`` per judged query with at least one positive (relevance > 0)."""
    out = []
    for qid, judged in qrels.items():
        positives = [doc for doc, rel in judged.items() if rel > 0]
        if positives and qid in queries:
            out.append(TrainQuery(qid, queries[qid], positive_ids=positives))
    return out


def load_beir_queries(root: str | Path, split: str = "train") -> list[TrainQuery]:
    """The judged queries of a BEIR dataset's ``split`` (queries.jsonl + qrels/<split>.tsv)."""
    data = load_beir(root, split)
    return from_qrels(data.queries, data.qrels)


def load_qrels_queries(queries: str | Path, qrels: str | Path) -> list[TrainQuery]:
    """The judged queries of a BEIR queries.jsonl and a qrels TSV."""
    data = load_eval_set(queries, qrels)
    return from_qrels(data.queries, data.qrels)


def load_pairs_jsonl(path: str | Path) -> list[TrainQuery]:
    """Queries and positives from a JSONL of ``query`` + ``positive`` / ``positive_id`` lines.

    Raises:
        DatasetError: naming the file and line of a bad line, or an empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, None, "no such file; give a JSONL of query/positive pairs")
    by_text: dict[str, TrainQuery] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if line.strip():
                _add_pair(by_text, _parse_pair(path, line_no, line))
    if not by_text:
        raise DatasetError(path, None, "no query/positive pairs in the file")
    return list(by_text.values())


def _parse_pair(path: Path, line_no: int, line: str) -> dict[str, str]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise DatasetError(path, line_no, f"not valid JSON: {err.msg}") from None
    if not isinstance(record, dict):
        raise DatasetError(path, line_no, "expected a JSON object with 'query' and 'positive'")
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise DatasetError(path, line_no, "missing field 'query' (non-empty text)")
    pos, pos_id = record.get("positive"), record.get("positive_id")
    if not (isinstance(pos, str) and pos.strip()) and not (isinstance(pos_id, str | int)):
        problem = "missing field 'positive' (text) or 'positive_id' (a document id in the index)"
        raise DatasetError(path, line_no, problem)
    return {
        "query": query,
        "positive": pos or "",
        "positive_id": "" if pos_id is None else str(pos_id),
    }


def _add_pair(by_text: dict[str, TrainQuery], pair: dict[str, str]) -> None:
    q = by_text.setdefault(pair["query"], TrainQuery(f"q{len(by_text)}", pair["query"]))
    if pair["positive_id"]:
        q.positive_ids.append(pair["positive_id"])
    if pair["positive"]:
        q.positive_texts.append(pair["positive"])


def split_heldout(
    queries: list[TrainQuery], fraction: float, seed: int = 0
) -> tuple[list[TrainQuery], list[TrainQuery]]:
    """(train, held out): a seeded random ``fraction`` of the queries held out for evaluation."""
    if not 0 <= fraction < 1:
        raise InvalidParameter(f"the held-out share must be in [0, 1), got {fraction}")
    shuffled = list(queries)
    random.Random(seed).shuffle(shuffled)
    cut = round(len(shuffled) * fraction)
    return shuffled[cut:], shuffled[:cut]


def qrels_of(queries: Iterable[TrainQuery]) -> dict[str, dict[str, int]]:
    """Binary qrels over the positives' ids (text-only positives cannot be judged by id)."""
    return {q.id: dict.fromkeys(q.positive_ids, 1) for q in queries if q.positive_ids}


def load_training_data(
    *,
    dataset: str | Path | None = None,
    split: str = "train",
    eval_split: str | None = None,
    queries: str | Path | None = None,
    qrels: str | Path | None = None,
    pairs: str | Path | None = None,
) -> tuple[list[TrainQuery], list[TrainQuery] | None]:
    """(training queries, evaluation queries or None) from one of the three input forms:
    a BEIR ``dataset`` (``split``, and ``eval_split`` for evaluation), ``queries`` + ``qrels``,
    or a JSONL of ``pairs``."""
    given = [dataset is not None, queries is not None or qrels is not None, pairs is not None]
    if sum(given) != 1 or (given[1] and (queries is None or qrels is None)):
        raise InvalidParameter(
            "give one source of relevance data: dataset=, queries= with qrels=, or pairs="
        )
    if eval_split is not None and dataset is None:
        raise InvalidParameter(
            "eval_split= needs dataset= (use heldout= otherwise)", param="eval_split"
        )
    if dataset is not None:
        held = load_beir_queries(dataset, eval_split) if eval_split else None
        return load_beir_queries(dataset, split), held
    if pairs is not None:
        return load_pairs_jsonl(pairs), None
    assert queries is not None and qrels is not None
    return load_qrels_queries(queries, qrels), None
