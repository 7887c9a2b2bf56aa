"""Compact vectors (faiss sq8, binary, binary-hnsw): rescoring with the stored float vectors,
allow-lists, parameters, and end to end through build, search, writer and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from searchkit import InvalidParameter, Searcher, build_index
from searchkit.backends import get_backend
from searchkit.backends.rescore import rescore, search_rescored
from searchkit.ingest.writer import IndexWriter
from searchkit.query.searcher import verify_index
from tests.conftest import QUERIES
from tests.test_backends import build, exact_top, unit

COMPACT = ["sq8", "binary", "binary-hnsw"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    centers = unit(rng, 40)
    return unit(rng, 3000, centers), unit(rng, 50, centers)


def recall(ids, truth):
    return np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(ids, truth, strict=True)])


@pytest.mark.parametrize("kind", COMPACT)
def test_rescoring_finds_exact_hits_with_exact_float_scores(data, kind):
    vectors, queries = data
    index = build("faiss", kind, vectors)
    scores, ids = search_rescored(index, vectors, queries, 10)
    truth, truth_scores = exact_top(vectors, queries, 10)
    assert recall(ids, truth) >= 0.95
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, vectors[ids]), atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)
    # a deeper rescore never finds less; rescore=0 keeps the compact index's own scores
    deep = search_rescored(index, vectors, queries, 10, rescore=1000)[1]
    assert recall(deep, truth) >= recall(ids, truth)
    raw_scores, raw_ids = search_rescored(index, vectors, queries, 10, rescore=0)
    np.testing.assert_array_equal((raw_scores, raw_ids), index.search(queries, 10))


@pytest.mark.parametrize("kind", COMPACT)
def test_allow_list_is_respected_and_save_load_keeps_results(data, tmp_path, kind):
    vectors, queries = data
    index = build("faiss", kind, vectors)
    allow = np.zeros(len(vectors), dtype=bool)
    allow[::3] = True
    scores, ids = search_rescored(index, vectors, queries, 10, allow=allow)
    assert (ids >= 0).all() and allow[ids].all()
    path = tmp_path / "index.faiss"
    index.save(path)
    loaded = get_backend("faiss").load(path, vectors.shape[1], kind, index.params)
    assert len(loaded) == len(vectors)
    a = search_rescored(index, vectors, queries, 10)
    np.testing.assert_array_equal(search_rescored(loaded, vectors, queries, 10)[1], a[1])


@pytest.mark.parametrize("kind", COMPACT)
def test_tiny_segments_and_padding(kind):
    vectors = unit(np.random.default_rng(1), 3)
    index = build("faiss", kind, vectors[:1])
    scores, ids = search_rescored(index, vectors[:1], vectors[:2], 4)
    assert ids.shape == (2, 4) and (ids[:, 0] == 0).all() and (ids[:, 1:] == -1).all()
    assert np.isneginf(scores[:, 1:]).all()
    np.testing.assert_allclose(scores[:, 0], vectors[:2] @ vectors[0], atol=1e-6)


def test_rescore_handles_missing_candidates():
    vectors = np.eye(4, dtype=np.float32)
    rows = np.array([[2, -1, 0], [-1, -1, -1]])
    scores, ids = rescore(vectors, vectors[[0, 1]], rows, 2)
    np.testing.assert_array_equal(ids, [[0, 2], [-1, -1]])
    assert scores[0, 0] == 1.0 and scores[0, 1] == 0.0 and np.isneginf(scores[1]).all()


def test_parameters_and_errors():
    faiss_index = get_backend("faiss")
    assert faiss_index.create(32, "binary", {}, 10).params == {"rescore": 200}
    assert faiss_index.create(32, "sq8", {"rescore": 0}, 10).params == {"rescore": 0}
    assert faiss_index.create(32, "binary-hnsw", {"m": 8}, 10).params["m"] == 8
    with pytest.raises(InvalidParameter, match='multiple of 8, got 30; choose kind="sq8"'):
        faiss_index.create(30, "binary", {}, 10)
    with pytest.raises(InvalidParameter, match="rescore must be a whole number >= 0"):
        faiss_index.create(32, "binary", {"rescore": -1}, 10)
    with pytest.raises(InvalidParameter, match="faiss sq8 does not take m"):
        faiss_index.create(32, "sq8", {"m": 8}, 10)
    vectors = unit(np.random.default_rng(2), 20)
    flat = build("faiss", "flat", vectors)
    with pytest.raises(InvalidParameter, match="rescore does not apply to a FaissIndex flat"):
        search_rescored(flat, vectors, vectors[:1], 5, rescore=10)


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    """The tiny corpus as a faiss flat index and as a binary one (no reranker needed), with
    vectors only, so that searches compare the vector first stages."""
    from tests.conftest import tiny_records, write_jsonl

    root = tmp_path_factory.mktemp("compact")
    corpus = write_jsonl(root / "tiny.jsonl", tiny_records())
    flat = build_index(corpus, root / "flat", lexical="none", progress=False).path
    binary = build_index(corpus, root / "binary", kind="binary", lexical="none", progress=False)
    return flat, binary.path


def test_binary_index_searches_like_flat_with_float_scores(indexes):
    flat, binary = indexes
    m = verify_index(binary)
    assert (m.backend.kind, m.backend.params) == ("binary", {"rescore": 200})
    # no new files: the compact index is the segment's index.faiss, beside its float vectors
    assert sorted(Path(f.path).name for f in m.files.values()) == [
        "docs.parquet", "docs.rows", "fields.parquet", "index.faiss", "passages.parquet",
        "vectors.f32",
    ]  # fmt: skip
    a, b = Searcher.open(flat), Searcher.open(binary)
    queries = list(QUERIES)
    for got, want in zip(
        b.search_batch(queries, 5, rerank=False), a.search_batch(queries, 5, rerank=False),
        strict=True,
    ):  # fmt: skip
        assert [h.id for h in got] == [h.id for h in want]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-5)
    top = b.search(queries[0], 3, rerank=False, rescore=0)[0]  # sign-bit scores, not rescored
    assert top.id == QUERIES[queries[0]]
    assert top.score != a.search(queries[0], 1, rerank=False)[0].score


def test_binary_index_respects_filters_and_tombstones(indexes, tmp_path):
    import shutil

    path = shutil.copytree(indexes[1], tmp_path / "idx")
    with IndexWriter.open(path) as w:
        w.delete(["vaccine"])
    s = Searcher.open(path)
    hits = s.search("how do vaccines protect against disease", 11, rerank=False)
    assert "vaccine" not in {h.id for h in hits} and len(hits) == 11
    hits = s.search("sugar", 5, rerank=False, where="year >= 2005")
    assert hits and all(h.metadata["year"] >= 2005 for h in hits)
    with pytest.raises(InvalidParameter, match=r"rescore must be in \[0, 10000\], got -2"):
        s.search("sugar", 5, rerank=False, rescore=-2)


@pytest.mark.slow
def test_cli_kind_and_rescore_pass_through(indexes, tmp_path):
    from tests.conftest import tiny_records, write_jsonl

    corpus = write_jsonl(tmp_path / "tiny.jsonl", tiny_records())

    def run(*args):
        command = [sys.executable, "-m", "searchkit", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    out = tmp_path / "idx"
    done = run("index", str(corpus), "-o", str(out), "--kind", "sq8", "--rescore", "5")
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "manifest.json").read_text())["backend"]["params"] == {"rescore": 5}
    done = run("query", "what makes sourdough rise", "-i", str(out), "--no-rerank", "--json",
               "--rescore", "0")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hits"][0]["id"] == "sourdough"
    done = run("query", "tides", "-i", str(indexes[0]), "--no-rerank", "--rescore", "3")
    assert done.returncode == 1 and "rescore does not apply" in done.stderr


def test_server_requests_offer_rescore_only_for_compact_indexes():
    from pydantic import ValidationError

    from searchkit.serve.schemas import Limits, request_models

    compact = request_models(Limits(), {"rescore"})["SearchRequest"]
    assert compact(query="tides", rescore=0).rescore == 0
    with pytest.raises(ValidationError):
        compact(query="tides", rescore=-1)
    flat = request_models(Limits(), set())["SearchRequest"]
    with pytest.raises(ValidationError):
        flat(query="tides", rescore=10)
