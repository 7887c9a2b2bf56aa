"""Querying: the real rerank path, fallbacks, batch search, and the checks made on open."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from searchkit import (
    CorruptIndex,
    IncompatibleIndex,
    IndexNotFound,
    InvalidParameter,
    ModelUnavailable,
    RerankerUnavailableWarning,
    Searcher,
)
from searchkit.inference.reranker import Reranker
from searchkit.inference.resolve import DEFAULT_RERANKER
from tests.conftest import QUERIES

pytestmark = pytest.mark.slow
QUERY = "how do vaccines protect against disease"


@pytest.fixture
def index_copy(built_index: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built_index, tmp_path / "copy"))


def test_rerank_orders_candidates_by_cross_encoder_score(built_index, reranker_path):
    searcher = Searcher.open(built_index)
    hits = searcher.search(QUERY, k=5, candidates=8)
    assert hits.reranked and len(hits) == 5
    retrieved = searcher.search(QUERY, k=8, rerank=False)
    assert not retrieved.reranked
    # the 5 hits are the 8 candidates ordered by the cross-encoder's own scores
    expected = Reranker(str(reranker_path)).score(
        [(QUERY, f"{h.title} {h.text}") for h in retrieved]
    )
    by_score = sorted(zip(expected.tolist(), [h.id for h in retrieved], strict=True), reverse=True)
    assert [h.id for h in hits] == [i for _, i in by_score[:5]]
    assert [h.score for h in hits] == pytest.approx([s for s, _ in by_score[:5]], abs=1e-5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    first_stage = {h.id: (h.retrieval_score, h.retrieval_rank) for h in retrieved}
    assert all(first_stage[h.id] == (h.retrieval_score, h.retrieval_rank) for h in hits)
    assert hits[0].id == "vaccine"


def test_search_batch_matches_single_searches(built_index):
    searcher = Searcher.open(built_index)
    queries = list(QUERIES)
    batch = searcher.search_batch(queries, k=3, candidates=6)
    singles = [searcher.search(q, k=3, candidates=6) for q in queries]
    for b, s in zip(batch, singles, strict=True):
        assert [h.id for h in b] == [h.id for h in s]
        assert [h.score for h in b] == pytest.approx([h.score for h in s], abs=1e-4)
    assert [hits[0].id for hits in batch] == list(QUERIES.values())
    assert searcher.search_batch([]) == []


def test_candidates_never_fewer_than_k(built_index):
    hits = Searcher.open(built_index).search(QUERY, k=12, candidates=2)
    assert hits.reranked and len(hits) == 12


def test_unavailable_default_reranker_falls_back_to_retrieval_order(built_index):
    searcher = Searcher.open(built_index, reranker=DEFAULT_RERANKER)
    with pytest.warns(
        RerankerUnavailableWarning, match="pass a local CrossEncoder folder as reranker="
    ):
        hits = searcher.search(QUERY, k=3)
    assert not hits.reranked
    assert [h.rank for h in hits] == [h.retrieval_rank for h in hits] == [1, 2, 3]
    assert hits[0].id == "vaccine"


def test_explicit_reranker_that_cannot_load_is_an_error(built_index, tmp_path):
    with pytest.raises(ModelUnavailable, match="does not exist"):
        Searcher.open(built_index, reranker=str(tmp_path / "nope")).search(QUERY)
    with pytest.raises(ModelUnavailable, match="not in the local Hugging Face cache"):
        Searcher.open(built_index, reranker="someone/unknown-reranker").search(QUERY)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"k": 0}, "k must be at least 1"), ({"candidates": 0}, "candidates must be at least 1")],
)
def test_bad_arguments(built_index, kwargs, message):
    with pytest.raises(InvalidParameter, match=message):
        Searcher.open(built_index).search(QUERY, **kwargs)
    with pytest.raises(InvalidParameter, match="non-empty text"):
        Searcher.open(built_index).search("  ")


def test_reopen_in_a_new_process_gives_the_same_hits(built_index):
    here = [h.to_dict() for h in Searcher.open(built_index).search(QUERY, k=4, candidates=6)]
    code = (
        "import json, sys; from searchkit import Searcher; "
        "hits = Searcher.open(sys.argv[1]).search(sys.argv[2], k=4, candidates=6); "
        "print(json.dumps([h.to_dict() for h in hits]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(built_index), QUERY],
        capture_output=True,
        text=True,
        check=True,
    )
    there = json.loads(out.stdout)
    assert [h["id"] for h in there] == [h["id"] for h in here]
    assert [h["score"] for h in there] == pytest.approx([h["score"] for h in here], abs=1e-4)


def test_missing_index(tmp_path):
    with pytest.raises(IndexNotFound, match=r"\(manifest.json not found\); build one first"):
        Searcher.open(tmp_path)


def test_missing_file(index_copy):
    manifest = json.loads((index_copy / "manifest.json").read_text())
    (index_copy / manifest["files"]["s000001/vectors"]["path"]).unlink()
    with pytest.raises(CorruptIndex, match="s000001/vectors file is missing"):
        Searcher.open(index_copy)


def test_checksum_mismatch(index_copy):
    manifest = json.loads((index_copy / "manifest.json").read_text())
    docs = index_copy / manifest["files"]["s000001/docs"]["path"]
    data = bytearray(docs.read_bytes())
    data[100] ^= 0xFF  # same size, one byte flipped
    docs.write_bytes(bytes(data))
    with pytest.raises(CorruptIndex, match="s000001/docs file checksum mismatch"):
        Searcher.open(index_copy)
    docs.write_bytes(bytes(data[:-10]))
    with pytest.raises(CorruptIndex, match="has .* bytes, manifest says"):
        Searcher.open(index_copy, verify=False)


def edit_manifest(folder: Path, **changes) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    path.write_text(json.dumps(data))


def test_unknown_format_version(index_copy):
    edit_manifest(index_copy, format_version=99)
    with pytest.raises(IncompatibleIndex, match="version 99.*reads versions 2 to 4.*rebuild"):
        Searcher.open(index_copy)


def test_document_count_mismatch(index_copy):
    edit_manifest(index_copy, documents=13)
    with pytest.raises(CorruptIndex, match="manifest counts 13 live documents"):
        Searcher.open(index_copy)


def test_model_dimension_mismatch(index_copy, tmp_path):
    """A real 128-d model (MiniLM plus a projection) cannot query a 384-d index."""
    from sentence_transformers import SentenceTransformer, models

    from searchkit.inference.resolve import resolve_model

    base = SentenceTransformer(resolve_model("all-MiniLM-L6-v2")[0])
    dense = models.Dense(in_features=384, out_features=128)
    SentenceTransformer(modules=[*base, dense]).save(str(tmp_path / "small-model"))
    edit_manifest(index_copy, encoder__name=str(tmp_path / "small-model"))
    searcher = Searcher.open(index_copy)
    with pytest.raises(IncompatibleIndex, match="384-d vectors but the bi-encoder .* makes 128-d"):
        searcher.search(QUERY, rerank=False)
