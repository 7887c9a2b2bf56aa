"""Approximate search: recall@k and speed of faiss HNSW / IVF and hnswlib against exact search.

Every index is one of searchkit's own backends (``get_backend(name).create/train/add/search``),
built the way ``build_index`` builds it (IVF trained on a sample of at most 100,000 vectors).
Ground truth and speed baseline: the ``exact`` backend (numpy brute force) on the same queries
with the same batch size. Default data: 200,000 synthetic 384-d unit vectors clustered like
text embeddings (topics, clusters of Zipf-distributed sizes, low-dimensional spread inside each
cluster); ``--real DATASET`` uses a dataset's embedded corpus and queries instead.
"""

from __future__ import annotations

import gc
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import benchdata
import common
import numpy as np

NAME = "ann"
# (label, backend, kind, swept search parameter, option holding the values)
CONFIGS = [
    ("faiss flat", "faiss", "flat", None, None),
    ("faiss hnsw", "faiss", "hnsw", "ef_search", "ef"),
    ("faiss ivf", "faiss", "ivf", "nprobe", "nprobe"),
    ("hnswlib hnsw", "hnswlib", "hnsw", "ef_search", "ef"),
]


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    parser.add_argument("--n", type=int, default=200_000, help="synthetic vectors")
    parser.add_argument("--queries", type=int, default=1000, help="queries (synthetic or real)")
    parser.add_argument("--dim", type=int, default=384, help="synthetic dimension")
    parser.add_argument("--clusters", type=int, default=2000, help="synthetic clusters")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument("--real", type=Path, default=None, help="BEIR folder: embed it instead")
    parser.add_argument(
        "--index",
        type=Path,
        default=None,
        help="with --real: its index (default: indexes/DATASET, built if needed)",
    )
    parser.add_argument("--split", default="test", help="with --real: query split")
    parser.add_argument("--k", type=int, default=10, help="neighbours per query")
    parser.add_argument("--batch", type=int, default=1, help="queries per search call")
    parser.add_argument(
        "--ef", type=common.int_list, default=[16, 32, 64, 128, 256], help="HNSW ef_search sweep"
    )
    parser.add_argument(
        "--nprobe", type=common.int_list, default=[1, 4, 16, 64], help="IVF nprobe sweep"
    )
    parser.add_argument("--m", type=int, default=32, help="HNSW links per node")
    parser.add_argument("--ef-construction", type=int, default=200, help="HNSW build breadth")
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default automatic)")
    parser.add_argument("--skip", default="", help="comma-separated labels to leave out")
    args, header = common.start(parser, NAME)
    vectors, queries, source = _data(args)
    common.note(f"data: {source}, {len(vectors):,} x {vectors.shape[1]}, {len(queries)} queries")
    exact, truth = _exact(vectors, queries, args)
    results = {"data": source, "vectors": len(vectors), "dim": int(vectors.shape[1])}
    results["builds"], results["sweeps"] = [exact["build"]], [exact["sweep"]]
    for label, backend, kind, param, option in _configs(args):
        build, sweep = _run(label, backend, kind, param, option, vectors, queries, truth, args)
        results["builds"].append(build)
        results["sweeps"].extend(sweep)
    for row in results["sweeps"]:
        row["speedup"] = common.ratio(row["qps"], exact["sweep"]["qps"])
    common.report(NAME, args, header, _tables(results, args), results)


def _configs(args: Any) -> Iterator[tuple[Any, ...]]:
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    return (c for c in CONFIGS if c[0] not in skip)


# --- runs ---------------------------------------------------------------------------------


def _exact(vectors: np.ndarray, queries: np.ndarray, args: Any) -> tuple[dict, np.ndarray]:
    """The exact backend: build record, its timed sweep point, and the true top k."""
    common.note("building exact ...")
    index, build = _build("exact", "exact", "flat", {}, vectors)
    point, truth = _point(build, index, None, None, queries, None, args)
    del index
    gc.collect()
    return {"build": build, "sweep": point}, truth


def _run(
    label: str,
    backend: str,
    kind: str,
    param: str | None,
    option: str | None,
    vectors: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    args: Any,
) -> tuple[dict, list[dict]]:
    """Build one index, then time it at every value of its search parameter."""
    params = {"m": args.m, "ef_construction": args.ef_construction} if kind == "hnsw" else {}
    if kind == "ivf":
        params["nlist"] = args.nlist
    common.note(f"building {label} ...")
    index, build = _build(label, backend, kind, params, vectors)
    common.note(f"  {build['build_seconds']:.1f} s; searching ...")
    values = getattr(args, option) if option else [None]
    sweep = [_point(build, index, param, v, queries, truth, args)[0] for v in values]
    del index
    gc.collect()
    return build, sweep


def _build(
    label: str, backend: str, kind: str, params: dict[str, Any], vectors: np.ndarray
) -> tuple[Any, dict[str, Any]]:
    """Create, train (on a sample, as build_index does) and fill a backend index; save it once
    to measure its size on disk."""
    from searchkit.backends import get_backend
    from searchkit.index.segment import ADD_ROWS, TRAIN_MAX

    n, dim = vectors.shape
    cls = get_backend(backend)
    index, seconds = common.timed(cls.create, dim, kind, params, n)
    sample = np.sort(np.random.default_rng(0).choice(n, size=min(n, TRAIN_MAX), replace=False))
    for step in (lambda: index.train(vectors[sample]), lambda: _add(index, vectors, ADD_ROWS)):
        seconds += common.timed(step)[1]
    folder = benchdata.workdir() / label.replace(" ", "-")
    folder.mkdir()
    index.save(folder / f"index.{cls.SUFFIX}")
    size = sum(f.stat().st_size for f in folder.iterdir())
    shutil.rmtree(folder)
    return index, {
        "label": label,
        "backend": backend,
        "kind": kind,
        "params": index.params,
        "build_seconds": seconds,
        "bytes": size,
        "bytes_per_vector": size / n,
    }


def _add(index: Any, vectors: np.ndarray, rows: int) -> None:
    for start in range(0, len(vectors), rows):
        index.add(vectors[start : start + rows])


def _point(
    build: dict[str, Any],
    index: Any,
    param: str | None,
    value: int | None,
    queries: np.ndarray,
    truth: np.ndarray | None,
    args: Any,
) -> tuple[dict[str, Any], np.ndarray]:
    """Search every query (``--batch`` per call, after one untimed call); recall and speed."""
    search = {param: value} if param else {}
    index.search(queries[: args.batch], args.k, **search)
    ids = np.empty((len(queries), args.k), dtype=np.int64)
    times = []
    for start in range(0, len(queries), args.batch):
        (_, found), seconds = common.timed(
            index.search, queries[start : start + args.batch], args.k, **search
        )
        ids[start : start + len(found)] = found
        times.append(seconds)
    point = {
        "label": build["label"],
        "param": param,
        "value": value,
        f"recall@{args.k}": 1.0 if truth is None else _recall(ids, truth),
        "qps": len(queries) / sum(times),
        "latency_ms_per_call": common.percentiles(times),
    }
    return point, ids


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth, strict=True)]
    return float(np.sum(hits) / truth.size)


def _tables(results: dict[str, Any], args: Any) -> list[common.Table]:
    builds = common.Table(
        f"Index builds: {results['vectors']:,} x {results['dim']} ({results['data']})",
        ["index", "parameters", "build s", "MiB on disk", "bytes/vector"],
    )
    for b in results["builds"]:
        params = ", ".join(f"{k}={v}" for k, v in b["params"].items()) or "-"
        builds.add(
            b["label"], params, b["build_seconds"], b["bytes"] / 2**20, b["bytes_per_vector"]
        )
    sweep = common.Table(
        f"Recall@{args.k} vs speed ({args.batch} quer{'y' if args.batch == 1 else 'ies'} per call)",
        ["index", "search parameter", f"recall@{args.k}", "QPS", "speedup", "p50 ms", "p99 ms"],
        note="ground truth and speed baseline: the exact backend (numpy) on the same queries; "
        "speedup = QPS / exact QPS; latency is per search call.",
    )
    for p in results["sweeps"]:
        lat = p["latency_ms_per_call"]
        setting = f"{p['param']}={p['value']}" if p["param"] else "-"
        sweep.add(
            p["label"],
            setting,
            p[f"recall@{args.k}"],
            p["qps"],
            p["speedup"],
            lat["p50"],
            lat["p99"],
        )
    return [builds, sweep]


# --- data ---------------------------------------------------------------------------------


def _data(args: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """(vectors, queries, description): synthetic, or a dataset's index and embedded queries."""
    if args.real is None:
        vectors, queries = synthetic(args.n, args.queries, args.dim, args.clusters, args.seed)
        return vectors, queries, f"synthetic, {args.clusters} clusters, seed {args.seed}"
    from searchkit import Manifest
    from searchkit.inference.encoder import Encoder

    data = benchdata.load_dataset(args.real, args.split, args.limit)
    index = benchdata.bench_index(data, args.index)
    texts = list(data.queries.values())[: args.queries]
    queries = Encoder(Manifest.read(index).encoder.name).encode_queries(texts)
    return benchdata.index_vectors(index), queries, f"{data.name} embeddings from {index}"


RANK = 24  # dimensions a cluster mostly spreads in


def synthetic(n: int, nq: int, dim: int, clusters: int, seed: int) -> tuple[np.ndarray, ...]:
    """Unit vectors shaped like sentence embeddings, and queries from the same distribution.

    Clusters sit around a few topics (so unrelated texts still share some direction), their
    sizes follow a Zipf law, and points spread mostly inside a low-dimensional subspace of
    their topic (text embeddings have a low intrinsic dimension) plus a little isotropic
    noise. Uniform random vectors would be far harder than any real corpus.
    """
    rng = np.random.default_rng(seed)
    mixture = _mixture(rng, dim, clusters)
    return _sample(rng, mixture, n), _sample(rng, mixture, nq)


def _mixture(rng: np.random.Generator, dim: int, clusters: int) -> dict[str, np.ndarray]:
    topics = _unit(rng.standard_normal((max(1, clusters // 20), dim), dtype=np.float32))
    topic_of = rng.integers(len(topics), size=clusters)
    offsets = _unit(rng.standard_normal((clusters, dim), dtype=np.float32))
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.7
    return {
        "centers": _unit(topics[topic_of] + 0.8 * offsets),
        "topic_of": topic_of,
        # rows of norm about 1: z @ basis for z ~ N(0, I) has norm about 1
        "bases": rng.standard_normal((len(topics), RANK, dim), dtype=np.float32)
        / np.float32(np.sqrt(RANK * dim)),
        "weights": rng.permutation(weights / weights.sum()),
        "spread": rng.uniform(0.8, 1.4, size=clusters).astype(np.float32),
    }


def _sample(rng: np.random.Generator, mix: dict[str, np.ndarray], m: int) -> np.ndarray:
    cluster = rng.choice(len(mix["centers"]), size=m, p=mix["weights"])
    out = mix["centers"][cluster]
    topic = mix["topic_of"][cluster]
    for t in np.unique(topic):
        rows = np.flatnonzero(topic == t)
        local = rng.standard_normal((len(rows), RANK), dtype=np.float32) @ mix["bases"][t]
        out[rows] += mix["spread"][cluster[rows], None] * local
    dim = out.shape[1]
    for start in range(0, m, 65_536):
        chunk = out[start : start + 65_536]
        chunk += rng.standard_normal(chunk.shape, dtype=np.float32) * np.float32(
            0.35 / np.sqrt(dim)
        )
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


if __name__ == "__main__":
    main()
