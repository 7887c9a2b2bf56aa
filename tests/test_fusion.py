"""Fusion of ranked lists (RRF, weighted min-max, gated, DBSF) on hand-made lists, and its
invariants on random ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchkit.errors import InvalidParameter
from searchkit.options import FUSIONS, SearchOptions
from searchkit.query.fusion import dbsf, fuser, gated, lexical_gate, rrf, weighted


def ranked(*rows: list[tuple[int, float]], width: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(scores, refs) of one list, a row per query, padded as the backends pad."""
    scores = np.full((len(rows), width), -np.inf)
    refs = np.full((len(rows), width), -1, dtype=np.int64)
    for q, row in enumerate(rows):
        for i, (ref, score) in enumerate(row):
            refs[q, i], scores[q, i] = ref, score
    return scores, refs


def test_rrf_sums_reciprocal_ranks():
    dense = ranked([(1, 0.9), (2, 0.8), (3, 0.7)])
    lexical = ranked([(3, 12.0), (1, 11.0), (4, 1.0)])
    scores, refs = rrf([dense, lexical], depth=5, k=60)
    expected = {1: 1 / 61 + 1 / 62, 3: 1 / 63 + 1 / 61, 2: 1 / 62, 4: 1 / 63}
    assert refs[0].tolist() == [1, 3, 2, 4, -1]
    assert scores[0, :4] == pytest.approx([expected[r] for r in (1, 3, 2, 4)])
    assert scores[0, 4] == -np.inf


def test_rrf_k_changes_the_balance_between_top_ranks_and_agreement():
    dense = ranked([(1, 0.9), (2, 0.8), (3, 0.7)])
    lexical = ranked([(4, 9.0), (5, 8.0), (2, 1.0)])
    # with a tiny k the two first places win; with a large k agreement (doc 2) wins
    assert rrf([dense, lexical], depth=1, k=0)[1][0, 0] in (1, 4)
    assert rrf([dense, lexical], depth=1, k=1000)[1][0, 0] == 2


def test_weighted_normalizes_each_list_then_mixes():
    dense = ranked([(1, 0.9), (2, 0.5), (3, 0.1)])
    lexical = ranked([(3, 10.0), (4, 5.0)])
    scores, refs = weighted([dense, lexical], depth=4, weights=[0.5, 0.5])
    # dense -> 1, .5, 0; lexical -> 1, 0; ties keep first appearance (dense first)
    assert refs[0].tolist() == [1, 3, 2, 4]
    assert scores[0].tolist() == pytest.approx([0.5, 0.5, 0.25, 0.0])
    only_dense = weighted([dense, lexical], depth=4, weights=[1.0, 0.0])[1]
    assert only_dense[0, :3].tolist() == [1, 2, 3]


def test_weighted_single_candidate_and_empty_lists():
    dense = ranked([(7, 0.3)], [])
    lexical = ranked([], [])
    scores, refs = weighted([dense, lexical], depth=2, weights=[0.6, 0.4])
    assert refs.tolist() == [[7, -1], [-1, -1]]
    assert scores[0, 0] == pytest.approx(0.6)  # a lone candidate normalizes to 1


def test_gated_scales_the_lexical_share_by_its_lexical_gate():
    dense = ranked([(1, 0.9), (2, 0.5), (3, 0.3), (4, 0.1)])
    lexical = ranked([(3, 4.0)])  # one weak match: 4 of a whole-query 20, gate (4/16)^2
    scores, refs = gated([dense, lexical], depth=4, weights=[0.5, 0.5], bounds=[20.0])
    assert refs[0].tolist() == [1, 2, 3, 4]
    assert scores[0].tolist() == pytest.approx([0.5, 0.25, 0.125 + 0.5 / 16, 0.0])
    # weighted gives the lone match the full lexical share: 0.125 + 0.5 beats 0.5
    assert weighted([dense, lexical], depth=4, weights=[0.5, 0.5])[1][0, 0] == 3
    strong = gated([dense, lexical], depth=4, weights=[0.5, 0.5], bounds=[5.0])
    assert strong[1][0].tolist() == [3, 1, 2, 4]  # 0.8 of its bound: the full share


def test_lexical_gate():
    assert lexical_gate(np.array([4.8, 1.0]), 12.0) == pytest.approx(0.25)  # (4.8/9.6)^2
    assert lexical_gate(np.array([8.0]), 10.0) == 1.0  # 0.8 of the bound
    assert lexical_gate(np.array([30.0]), 12.0) == 1.0
    assert lexical_gate(np.array([]), 12.0) == 0.0
    assert lexical_gate(np.array([1.0]), 0.0) == 0.0


def test_dbsf_normalizes_by_mean_and_three_sd():
    dense = ranked([(1, 3.0), (2, 1.0)])  # mean 2, sd 1: (s - (2 - 3)) / 6
    lexical = ranked([(2, 5.0)])  # one candidate: 0.5
    scores, refs = dbsf([dense, lexical], depth=2, weights=[0.5, 0.5])
    assert refs[0].tolist() == [2, 1]
    assert scores[0].tolist() == pytest.approx([0.5 * 2 / 6 + 0.25, 0.5 * 4 / 6])


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_single_candidate_and_empty_lists(fusion):
    fuse = fuser(fusion, 60, 0.5, bounds=[10.0, 10.0, 10.0])
    dense = ranked([(7, 0.3)], [], [(1, 0.4)])
    lexical = ranked([], [], [(2, 4.0)])
    scores, refs = fuse([dense, lexical], 2)
    assert refs[0].tolist() == [7, -1] and scores[0, 0] > 0 and scores[0, 1] == -np.inf
    assert refs[1].tolist() == [-1, -1] and np.isneginf(scores[1]).all()
    assert sorted(refs[2].tolist()) == [1, 2]


def test_gated_without_bounds_is_weighted():
    dense, lexical = ranked([(1, 0.9), (2, 0.1)]), ranked([(2, 1.0)])
    assert fuser("gated", 60, 0.5)([dense, lexical], 2)[1].tolist() == [[1, 2]]  # a tie: dense
    assert fuser("gated", 60, 0.4)([dense, lexical], 2)[1].tolist() == [[2, 1]]


# a list: distinct refs with scores, best first (as the backends return them)
_lists = st.lists(
    st.tuples(st.integers(0, 30), st.floats(0.0, 50.0, allow_nan=False)),
    max_size=12,
    unique_by=lambda x: x[0],
).map(lambda row: sorted(row, key=lambda x: -x[1]))


@settings(max_examples=200, deadline=None)
@given(fusion=st.sampled_from(FUSIONS), a=_lists, b=_lists, top=st.floats(60.0, 100.0))
def test_a_document_first_in_both_lists_stays_first(fusion, a, b, top):
    a = [(99, top)] + a
    b = [(99, top)] + b
    fuse = fuser(fusion, 60, 0.5, bounds=[max(top, 1.0)])
    scores, refs = fuse([ranked(a, width=13), ranked(b, width=13)], 5)
    assert refs[0, 0] == 99
    assert scores[0, 0] >= scores[0, 1] or refs[0, 1] == -1


@settings(max_examples=200, deadline=None)
@given(fusion=st.sampled_from(FUSIONS), a=_lists, doc=st.integers(0, 30))
def test_adding_a_list_that_agrees_never_lowers_a_document(fusion, a, doc):
    """A second list ranking the same documents the same way never moves a document down."""
    fuse = fuser(fusion, 60, 0.5, bounds=[50.0])
    depth = 13
    alone = fuse([ranked(a, width=12), ranked([], width=12)], depth)[1][0].tolist()
    both = fuse([ranked(a, width=12), ranked(a, width=12)], depth)[1][0].tolist()
    for ref in alone:
        if ref >= 0:
            assert both.index(ref) <= alone.index(ref)


def test_each_query_is_fused_on_its_own():
    dense = ranked([(1, 0.9), (2, 0.1)], [(5, 0.9), (6, 0.1)])
    lexical = ranked([(2, 3.0)], [(6, 3.0), (5, 1.0)])
    refs = rrf([dense, lexical], depth=2)[1]
    assert refs.tolist() == [[2, 1], [5, 6]]


@pytest.mark.parametrize(
    "options, match",
    [
        ({"fusion": "borda"}, "unknown fusion 'borda'; choose one of: gated, weighted, dbsf, rrf"),
        ({"rrf_k": -1}, r"rrf_k must be in \[0, 10000\], got -1"),
        ({"weight": 1.5}, r"weight must be in \[0, 1\], got 1.5"),
        ({"rerank_weight": -0.1}, r"rerank_weight must be in \[0, 1\]"),
        ({"candidates": 0}, "candidates must be at least 1, got 0"),
        ({"mode": "sparse"}, "unknown mode 'sparse'; choose one of: dense, lexical, hybrid"),
        ({"rerank": "yes"}, "rerank must be bool, got 'yes'"),
        ({"ef_search": 2.5}, "ef_search must be int, got 2.5"),
        ({"rerank_margin": float("nan")}, "rerank_margin must be float, got nan"),
    ],
)
def test_bad_search_options_are_named(options, match):
    with pytest.raises(InvalidParameter, match=match) as caught:
        SearchOptions(**options)
    assert caught.value.param == next(iter(options))


def test_search_options_are_hashable_and_replace_checks_names():
    base = SearchOptions()
    assert hash(base) == hash(SearchOptions()) and base == SearchOptions()
    assert {base: 1}[SearchOptions(candidates=20)] == 1
    dense = base.replace(mode="dense", ef_search=32)
    assert (dense.mode, dense.backend_options) == ("dense", {"ef_search": 32})
    assert base.replace() is base and base.mode is None
    with pytest.raises(InvalidParameter, match="unknown search option 'nprobes'"):
        base.replace(nprobes=4)
