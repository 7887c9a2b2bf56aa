"""The reranker counts the pairs it truncates, and search reports them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import QUERIES, tiny_records, write_jsonl

from searchkit import InvalidParameter, Searcher, build_index
from searchkit.inference.reranker import CHARS_PER_TOKEN, Reranker

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
    whole = build_index(
        corpus, tmp_path / "i", reranker=str(reranker_path), progress=False, chunk=False
    ).path
    hits = Searcher.open(whole).search("how do vaccines train immunity", k=3, candidates=13)
    assert hits.reranked and hits.candidates == 13 and hits.truncated == 1
    assert hits.to_dict()["truncated"] == 1
    # chunked (the default), the reranker reads the long document's best passage: nothing cut
    chunked = build_index(corpus, tmp_path / "c", reranker=str(reranker_path), progress=False)
    again = Searcher.open(chunked.path).search("how do vaccines train immunity", k=3, candidates=13)
    assert again.reranked and again.truncated == 0
    plain = Searcher.open(whole).search("vaccines", k=3, rerank=False)
    assert plain.truncated == 0 and plain.candidates == 0


MEDIUM = "Vaccines train the immune system to recognise a pathogen before an infection. " * 6


def test_a_token_cap_truncates_more_and_leaves_short_pairs_alone(reranker, reranker_path):
    capped = Reranker(str(reranker_path), max_tokens=48)
    pairs = [("how do vaccines work", "A vaccine trains the immune system."), ("vaccines", MEDIUM)]
    scores, truncated = capped.score_counted(pairs)
    assert capped.max_tokens == 48 and truncated.tolist() == [False, True]
    full, full_cut = reranker.score_counted(pairs)
    assert full_cut.tolist() == [False, False]
    np.testing.assert_allclose(scores[0], full[0], rtol=1e-4, atol=1e-4)  # under the cap
    assert abs(scores[1] - full[1]) > 1e-4  # the capped pair read less of its passage
    assert Reranker(str(reranker_path), max_tokens=10_000).max_tokens == 256  # the model's own


def test_a_cap_below_the_minimum_is_refused(reranker_path):
    with pytest.raises(InvalidParameter, match="max_tokens must be at least 32"):
        Reranker(str(reranker_path), max_tokens=8)


def test_early_exit_keeps_retrieval_order_only_for_confident_queries(built_index):
    searcher = Searcher.open(built_index)
    queries = list(QUERIES)
    plain = searcher.search_batch(queries, k=3, rerank=False, mode="dense")
    gaps = [h[0].retrieval_score - h[1].retrieval_score for h in plain]
    margin = float(np.median(gaps))  # about half the queries lead by at least this much
    always = searcher.search_batch(queries, k=3, candidates=6, mode="dense")
    mixed = searcher.search_batch(queries, k=3, candidates=6, mode="dense", rerank_margin=margin)
    assert 0 < sum(h.early_exit for h in mixed) < len(queries)
    for gap, p, a, m in zip(gaps, plain, always, mixed, strict=True):
        assert m.early_exit == (gap >= margin) and m.reranked == (gap < margin)
        expected = p if m.early_exit else a  # the reranked ones scored as without early exit
        assert [(h.id, round(h.score, 4)) for h in m] == [
            (h.id, round(h.score, 4)) for h in expected
        ]
        assert m.candidates == (0 if m.early_exit else 6)
    never = searcher.search_batch(queries, k=3, candidates=6, mode="dense", rerank_margin=1e9)
    assert not any(h.early_exit for h in never) and all(h.reranked for h in never)
