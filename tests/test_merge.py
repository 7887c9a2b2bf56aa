"""Segment merging: the tiered policy as a pure function, merged postings, and the writer's
merges (any sequence of upserts, deletes and merges leaves the live documents of a fresh build)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from searchkit import Document, Searcher, build_index
from searchkit.analysis import get_analyzer
from searchkit.errors import InvalidParameter
from searchkit.index.lexical import PostingsBuilder, lexical_config
from searchkit.index.manifest import Manifest
from searchkit.index.merge import MergePolicy, PostingsMerger, SegmentSize, plan_merges
from searchkit.ingest.writer import IndexWriter
from searchkit.query.searcher import verify_index
from tests.conftest import write_jsonl

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda sigma omega".split()


def simulate(policy: MergePolicy, commits: int) -> tuple[list[int], int]:
    """Segment counts after each of ``commits`` one-document commits, and documents rewritten."""
    segments: list[SegmentSize] = []
    counts, rewritten, number = [], 0, 0
    for _ in range(commits):
        number += 1
        segments.append(SegmentSize(f"s{number}", 1))
        for group in plan_merges(segments, policy):
            live = sum(s.live for s in segments if s.name in group)
            at = next(i for i, s in enumerate(segments) if s.name in group)
            segments = [s for s in segments if s.name not in group]
            number += 1
            segments.insert(at, SegmentSize(f"s{number}", live))
            rewritten += live
        counts.append(len(segments))
    return counts, rewritten


def test_policy_merges_a_crowded_tier_and_leaves_others():
    p = MergePolicy(segments_per_tier=2, max_merge_at_once=4, floor_docs=4)
    small = [SegmentSize(f"s{i}", 1) for i in range(3)]
    assert plan_merges(small[:2], p) == []  # two in the floor tier: allowed
    assert plan_merges(small, p) == [("s0", "s1", "s2")]
    # a big segment in its own tier is never merged with the small ones
    big = [SegmentSize("big", 1000), *small]
    assert plan_merges(big, p) == [("s0", "s1", "s2")]
    assert plan_merges(small, MergePolicy(kind="none")) == []


def test_policy_counts_deletes_drops_dead_and_respects_the_size_cap():
    p = MergePolicy(segments_per_tier=10, deletes_pct=30)
    segs = [SegmentSize("a", 100, 40), SegmentSize("b", 100, 10), SegmentSize("c", 5, 5)]
    # a: 40% deleted, rewritten alone; b: 10%, kept; c: nothing live, dropped
    assert plan_merges(segs, p) == [("a",), ("c",)]
    capped = MergePolicy(segments_per_tier=1, max_merge_at_once=10, max_segment_docs=150)
    assert plan_merges([SegmentSize("x", 100), SegmentSize("y", 100)], capped) == []
    # live size counts: a tier of half-deleted segments merges like one of their live size
    live = MergePolicy(segments_per_tier=2, max_merge_at_once=4, floor_docs=4, deletes_pct=100)
    halves = [SegmentSize(f"h{i}", 2, 1) for i in range(3)]
    assert plan_merges(halves, live) == [("h0", "h1", "h2")]


@given(
    sizes=st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 100)), max_size=40),
    per_tier=st.integers(1, 6),
    at_once=st.integers(2, 10),
    floor=st.integers(1, 50),
)
def test_plans_are_disjoint_groups_of_known_segments(sizes, per_tier, at_once, floor):
    segs = [SegmentSize(f"s{i}", r, min(d, r)) for i, (r, d) in enumerate(sizes)]
    p = MergePolicy(segments_per_tier=per_tier, max_merge_at_once=at_once, floor_docs=floor)
    groups = plan_merges(segs, p)
    names = [n for g in groups for n in g]
    assert len(names) == len(set(names)) and set(names) <= {s.name for s in segs}
    assert all(s.name in names for s in segs if s.live == 0)


@pytest.mark.parametrize(
    "knobs", [{}, {"segments_per_tier": 4, "max_merge_at_once": 8, "floor_docs": 10}]
)
def test_segment_count_stays_logarithmic(knobs):
    p = MergePolicy(**knobs)
    counts, rewritten = simulate(p, 3000)
    tiers = 1 + math.log(3000 / p.floor_docs, p.max_merge_at_once)
    bound = (p.segments_per_tier + 1) * math.ceil(tiers)
    assert max(counts) <= bound, (max(counts), bound)
    assert rewritten / 3000 <= 3 * tiers * p.floor_docs  # each document: a few times per tier
    assert simulate(MergePolicy(kind="none"), 50)[0][-1] == 50


def test_policy_checks_its_knobs_and_round_trips_through_the_manifest(tmp_path, tiny_corpus):
    with pytest.raises(InvalidParameter) as err:
        MergePolicy(kind="lucene")
    assert err.value.param == "merge_policy"
    with pytest.raises(InvalidParameter, match="max_merge_at_once"):
        MergePolicy(max_merge_at_once=1)
    policy = MergePolicy(segments_per_tier=3, floor_docs=7)
    path = build_index(tiny_corpus, tmp_path / "i", merge_policy=policy, progress=False).path
    assert Manifest.read(path).merge == policy
    data = json.loads((path / "manifest.json").read_text())
    del data["merge"]  # an index written before merge policies: the default, not rewritten
    (path / "manifest.json").write_text(json.dumps(data))
    assert Manifest.read(path).merge is None
    with IndexWriter.open(path) as w:
        assert w.merge_policy == MergePolicy()


def test_merged_postings_equal_those_built_from_the_kept_documents():
    config, en = lexical_config("bm25"), get_analyzer("en")
    rng = np.random.default_rng(3)
    texts = [[" ".join(rng.choice(WORDS, 6)) for _ in range(n)] for n in (5, 4, 6)]
    sources = []
    for part in texts:
        b = PostingsBuilder(config, analyzer=en)
        b.add([Document(str(i), t) for i, t in enumerate(part)])
        sources.append(b.build())
    kept = [np.array([0, 2, 4]), np.array([], dtype=np.int64), np.array([1, 5])]
    merger = PostingsMerger(list(zip(sources, kept, strict=True)))
    merger.add([None] * 5)
    merged = merger.build()
    fresh = PostingsBuilder(config, analyzer=en)
    picked = [texts[0][0], texts[0][2], texts[0][4], texts[2][1], texts[2][5]]
    fresh.add([Document(str(i), t) for i, t in enumerate(picked)])
    built = fresh.build()
    assert rows_terms(merged) == rows_terms(built)
    np.testing.assert_array_equal(merged.lengths, built.lengths)
    with pytest.raises(RuntimeError, match="merged 4 documents but 5"):
        short = PostingsMerger(list(zip(sources, kept, strict=True)))
        short.add([None] * 4)
        short.build()


def rows_terms(p) -> list[dict[str, int]]:
    """Each row's terms and counts."""
    terms = sorted(p.vocab, key=p.vocab.__getitem__)
    out = [{} for _ in range(len(p))]
    for col, term in enumerate(terms):
        rows, values = p.column(col)
        assert len(rows), f"unused term {term!r} kept"
        for r, v in zip(rows.tolist(), values.tolist(), strict=True):
            out[r][term] = v
    return out


def doc(i: int, version: int = 0) -> Document:
    rng = np.random.default_rng(i * 7 + version)
    return Document(f"d{i}", " ".join(rng.choice(WORDS, 8)) + f" v{version}", f"t{i}")


def stored(path: Path) -> dict[str, tuple[str, str, np.ndarray]]:
    """Every live document with its stored vector(s): id -> (title, text, vectors)."""
    s = Searcher.open(path)
    out = {}
    for seg in s.stage.view.segments:
        rows = seg.live_rows()
        for d, row in zip(seg.docs.take(rows), rows.tolist(), strict=True):
            first, last = seg.first_passage[row], seg.first_passage[row + 1]
            out[d.id] = (d.title, d.text, np.asarray(seg.vectors[first:last]))
    return out


def lexical_scores(path: Path, queries: list[str]) -> list[dict[str, float]]:
    s = Searcher.open(path)
    return [
        {h.id: h.score for h in s.search(q, k=50, mode="lexical", rerank=False)} for q in queries
    ]


EAGER = MergePolicy(segments_per_tier=1, max_merge_at_once=2, floor_docs=1)


@pytest.fixture
def seed_corpus(tmp_path: Path) -> Path:
    d = doc(0)
    return write_jsonl(tmp_path / "seed.jsonl", [{"_id": d.id, "title": d.title, "text": d.text}])


@pytest.mark.slow
def test_one_document_commits_merge_and_keep_every_document(tmp_path, seed_corpus):
    path = build_index(seed_corpus, tmp_path / "i", merge_policy=EAGER, progress=False).path
    counts, merged = [], 0
    with IndexWriter.open(path) as w:
        for i in range(1, 24):
            report = w.upsert([doc(i)])
            merged += report.merged
            counts.append(len(w.manifest.segments))
        w.delete(["d3", "d4", "d5"])
    assert merged > 0 and max(counts) <= 2 * (1 + math.ceil(math.log2(24)))
    assert sorted(stored(path)) == sorted(f"d{i}" for i in range(24) if i not in (3, 4, 5))
    verify_index(path)
    leftovers = {p.name for p in (path / "segments").iterdir()}
    assert leftovers == {s.name for s in Manifest.read(path).segments}
    # the writer's override: no merges, not recorded
    with IndexWriter.open(path, merge_policy=MergePolicy(kind="none")) as w:
        before = len(w.manifest.segments)
        for i in range(30, 34):
            assert w.upsert([doc(i)]).merged == 0
        assert len(w.manifest.segments) == before + 4
        assert w.manifest.merge == EAGER


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), st.lists(st.integers(0, 9), min_size=1, max_size=3),
                  st.integers(0, 2)),
        st.tuples(st.just("delete"), st.lists(st.integers(0, 9), min_size=1, max_size=3),
                  st.just(0)),
        st.tuples(st.just("compact"), st.just([]), st.just(0)),
    ),
    min_size=1,
    max_size=8,
)  # fmt: skip


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=OPS)
def test_any_sequence_leaves_the_documents_of_a_fresh_build(tmp_path_factory, ops):
    root = tmp_path_factory.mktemp("seq")
    seed = write_jsonl(root / "seed.jsonl", [{"_id": "d0", "title": "t0", "text": doc(0).text}])
    path = build_index(seed, root / "i", merge_policy=EAGER, language="en", progress=False).path
    live = {"d0": doc(0)}
    with IndexWriter.open(path) as w:
        for op, ids, version in ops:
            if op == "upsert":
                docs = {i: doc(i, version) for i in ids}
                w.upsert(list(docs.values()))
                live.update({d.id: d for d in docs.values()})
            elif op == "delete":
                w.delete([f"d{i}" for i in ids])
                for i in ids:
                    live.pop(f"d{i}", None)
            else:
                w.compact()
    got = stored(path)
    assert sorted(got) == sorted(live)
    if not live:
        return
    fresh_corpus = write_jsonl(root / "fresh.jsonl", [
        {"_id": d.id, "title": d.title, "text": d.text} for d in live.values()])  # fmt: skip
    fresh = build_index(fresh_corpus, root / "fresh", language="en", progress=False).path
    want = stored(fresh)
    for i, (title, text, vectors) in want.items():
        assert got[i][:2] == (title, text)
        np.testing.assert_allclose(got[i][2], vectors, atol=1e-5)
    queries = ["alpha beta", "omega v1", "sigma kappa v2"]
    for a, b in zip(lexical_scores(path, queries), lexical_scores(fresh, queries), strict=True):
        assert a == pytest.approx(b, rel=1e-5)
