"""Conformance of every vector backend against exact search, on seeded vectors (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from searchkit import InvalidParameter, UnknownBackend
from searchkit.backends import get_backend

ALL = [
    ("exact", "flat"),
    ("faiss", "flat"),
    ("faiss", "hnsw"),
    ("faiss", "ivf"),
    ("hnswlib", "hnsw"),
]
DIM = 32


def unit(rng: np.random.Generator, n: int, centers: np.ndarray | None = None) -> np.ndarray:
    """Unit vectors; around ``centers`` (as text embeddings cluster by topic) when given."""
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    if centers is not None:
        x = centers[rng.integers(len(centers), size=n)] + 0.5 * x / np.sqrt(DIM)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    centers = unit(rng, 40)
    return unit(rng, 3000, centers), unit(rng, 50, centers)


def build(name: str, kind: str, vectors: np.ndarray, **params):
    index = get_backend(name).create(DIM, kind, params, len(vectors))
    index.train(vectors)
    index.add(vectors[:1000])  # in two calls, as the builder does
    index.add(vectors[1000:])
    return index


def exact_top(vectors, queries, k):
    sims = queries @ vectors.T
    return np.argsort(-sims, axis=1)[:, :k], np.sort(sims, axis=1)[:, ::-1][:, :k]


@pytest.mark.parametrize(("name", "kind"), ALL)
def test_recall_at_10_against_exact(data, name, kind):
    vectors, queries = data
    index = build(name, kind, vectors)
    assert len(index) == len(vectors)
    scores, ids = index.search(queries, 10)
    truth, truth_scores = exact_top(vectors, queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)])
    if kind == "flat":
        assert recall == 1.0
        np.testing.assert_allclose(scores, truth_scores, rtol=1e-4, atol=1e-5)
    else:
        assert recall >= 0.9, f"{name} {kind} recall@10 {recall:.3f}"
    # scores are similarities, best first, and match the vectors they point at
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, vectors[ids]), atol=1e-4)


@pytest.mark.parametrize(("name", "kind"), ALL)
def test_save_load_gives_the_same_results(data, tmp_path, name, kind):
    vectors, queries = data
    index = build(name, kind, vectors)
    path = tmp_path / "index.bin"
    index.save(path)
    loaded = get_backend(name).load(path, DIM, kind, index.params)
    assert len(loaded) == len(index)
    a, b = index.search(queries, 5), loaded.search(queries, 5)
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize(("name", "kind"), ALL)
def test_k_larger_than_index_is_padded(name, kind):
    vectors = unit(np.random.default_rng(1), 5)
    index = build(name, kind, vectors)
    scores, ids = index.search(vectors[:2], 8)
    assert ids.shape == scores.shape == (2, 8)
    assert sorted(ids[0][:5]) == [0, 1, 2, 3, 4]
    assert (ids[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()


def test_query_time_overrides_apply_where_the_library_allows(data):
    vectors, queries = data
    hnsw = build("faiss", "hnsw", vectors, ef_search=16)
    ivf = build("faiss", "ivf", vectors, nlist=50, nprobe=1)
    truth, _ = exact_top(vectors, queries, 10)

    def recall(ids):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)])

    assert recall(ivf.search(queries, 10, nprobe=50)[1]) == 1.0  # every list visited: exact
    assert recall(ivf.search(queries, 10)[1]) < 0.9
    assert recall(hnsw.search(queries, 10, ef_search=256)[1]) >= recall(hnsw.search(queries, 10)[1])
    with pytest.raises(InvalidParameter, match="ef_search does not apply"):
        build("faiss", "flat", vectors).search(queries, 10, ef_search=10)
    with pytest.raises(InvalidParameter, match="nprobe must be a positive"):
        ivf.search(queries, 10, nprobe=0)


def test_parameters_are_resolved_and_checked():
    faiss_index = get_backend("faiss")
    assert faiss_index.create(DIM, "ivf", {}, 10_000).params == {"nlist": 256, "nprobe": 16}
    assert faiss_index.create(DIM, "ivf", {"nlist": None}, 100).params["nlist"] == 2
    assert get_backend("hnswlib").create(DIM, "hnsw", {"m": 8}, 10).params == {
        "m": 8,
        "ef_construction": 200,
        "ef_search": 64,
    }
    with pytest.raises(UnknownBackend, match="no kind 'ivf'; choose one of: hnsw"):
        get_backend("hnswlib").create(DIM, "ivf", {}, 10)
    with pytest.raises(InvalidParameter, match="faiss flat does not take m"):
        faiss_index.create(DIM, "flat", {"m": 16}, 10)
    with pytest.raises(InvalidParameter, match="nlist=50 is more than the 10 vectors"):
        faiss_index.create(DIM, "ivf", {"nlist": 50}, 10)
    with pytest.raises(UnknownBackend, match="choose one of: faiss, hnswlib, exact"):
        get_backend("annoy")
