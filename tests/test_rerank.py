"""The reranker counts the pairs it truncates, and search reports them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_records, write_jsonl

from searchkit import Searcher, build_index
from searchkit.rerank import CHARS_PER_TOKEN, Reranker

pytestmark = pytest.mark.slow

LONG = "The immune system learns from vaccines. " * 80  # about 500 tokens


@pytest.fixture(scope="module")
def reranker(reranker_path: Path) -> Reranker:
    return Reranker(str(reranker_path))


def test_truncated_pairs_are_counted_and_scores_match_the_model(reranker):
    pairs = [("how do vaccines work", "A vaccine trains the immune system."), ("vaccines", LONG)]
    scores, truncated = reranker.score_counted(pairs)
    assert truncated.tolist() == [False, True]
    expected = reranker.model.predict(pairs, show_progress_bar=False)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    assert reranker.max_tokens == 256


def test_a_huge_passage_is_cut_before_tokenizing_and_counted(reranker):
    huge = "x" * (reranker.max_tokens * CHARS_PER_TOKEN * 50)
    scores, truncated = reranker.score_counted([("q", huge), ("q", "short")])
    assert truncated.tolist() == [True, False] and np.isfinite(scores).all()
    assert reranker.score_counted([])[1].shape == (0,)


def test_search_reports_truncated_candidates(tmp_path, reranker_path):
    records = [*tiny_records(), {"_id": "long", "title": "Immunity", "text": LONG}]
    corpus = write_jsonl(tmp_path / "c.jsonl", records)
    path = build_index(corpus, tmp_path / "i", reranker=str(reranker_path), progress=False).path
    hits = Searcher.open(path).search("how do vaccines train immunity", k=3, candidates=13)
    assert hits.reranked and hits.candidates == 13 and hits.truncated == 1
    assert hits.to_dict()["truncated"] == 1
    plain = Searcher.open(path).search("vaccines", k=3, rerank=False)
    assert plain.truncated == 0 and plain.candidates == 0
