"""Compact vectors: memory per document, recall@10 and nDCG@10 kept, and speed of FAISS 8-bit
scalar-quantized and binary (sign-bit) indexes, with their top candidates rescored by the
float32 vectors kept on disk, against exact float32 search.

Every index is one of searchkit's own (``get_backend(name).create/train/add``), searched the
way the searcher searches a segment (``search_rescored`` with the memory-mapped vectors.f32).
Vectors are an index's stored ones (no re-embedding); queries are embedded once (or, with
``--synthetic N``, ann.py's synthetic vectors: recall and speed at scale, no nDCG). Memory is the
saved index file per vector, which is what FAISS holds in RAM; the float vectors stay on disk.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import benchdata
import common
import numpy as np

NAME = "compact"
K = 10
# (label, backend, kind); the first, float32 exact search, is the truth and the speed baseline
FORMATS = [
    ("float32 flat", "faiss", "flat"),
    ("float32 numpy", "exact", "flat"),
    ("float32 hnsw", "faiss", "hnsw"),
    ("sq8", "faiss", "sq8"),
    ("binary", "faiss", "binary"),
    ("binary hnsw", "faiss", "binary-hnsw"),
]


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser)
    parser.add_argument("--index", type=Path, help="index whose vectors to use (built if missing)")
    parser.add_argument(
        "--synthetic", type=int, default=None,
        help="N synthetic vectors (as ann.py's) and 300 queries instead: speed at scale, no nDCG",
    )  # fmt: skip
    parser.add_argument(
        "--rescore", type=common.int_list, default=[0, 50, 100, 200], help="depths to sweep"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed passes (best is kept)")
    parser.add_argument("--skip", default="", help="comma-separated formats to leave out")
    args, header = common.start(parser, NAME)
    vectors, queries, judged, source = _inputs(args)
    results: dict[str, Any] = {"source": source, "documents": len(vectors), "queries": len(queries)}
    base: dict[str, Any] = {}  # float32 flat, the first format: truth, nDCG and seconds
    for label, backend, kind in FORMATS:
        if label in args.skip.split(",") and label != FORMATS[0][0]:
            continue
        index = _build(backend, kind, vectors)
        entry = {
            "backend": backend,
            "kind": kind,
            **_memory(index, len(vectors), vectors.shape[1]),
            "points": [],
        }
        for depth in args.rescore if "rescore" in index.params else [0]:
            found, seconds = _search(index, vectors, queries, depth, args.repeat)
            ndcg = _ndcg(found, judged) if judged else None
            base = base or {"truth": found[1], "ndcg": ndcg, "seconds": seconds}
            entry["points"].append(
                {
                    "rescore": depth,
                    "recall_at_10": _recall(found[1], base["truth"]),
                    "ndcg_at_10": ndcg,
                    "ndcg_vs_float": common.ratio(ndcg, base["ndcg"]),
                    "ms_per_query": 1000 * seconds / len(queries),
                    "latency_vs_exact": common.ratio(seconds, base["seconds"]),
                }
            )
        results[label] = entry
    common.report(NAME, args, header, [_table(results)], results)


def _inputs(args: Any) -> tuple[np.ndarray, np.ndarray, tuple | None, str]:
    """Memory-mapped vectors (a scratch copy), query vectors, (ids, qids, qrels) when judged."""
    from searchkit.index.segment import read_vectors

    if args.synthetic:
        import ann

        vectors, queries = ann.synthetic(args.synthetic, 300, 384, 2000, 0)
        judged, source = None, f"synthetic ({args.synthetic:,} vectors as ann.py's)"
    else:
        vectors, queries, judged, source = _dataset(args)
    copy = benchdata.workdir() / "vectors.f32"
    copy.write_bytes(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    mapped = read_vectors(copy, vectors.shape[1])
    return mapped, np.asarray(queries, dtype=np.float32), judged, source


def _dataset(args: Any) -> tuple[np.ndarray, np.ndarray, tuple, str]:
    """A dataset index's stored vectors, the embedded queries, (ids, qids, qrels)."""
    from searchkit import Manifest, Searcher
    from searchkit.inference.encoder import Encoder

    data = benchdata.load_dataset(args.dataset, args.split, args.limit)
    given = args.index is not None and (args.index / "manifest.json").is_file()
    path = args.index if given else benchdata.bench_index(data, args.index)
    ids = list(Searcher.open(path, verify=False).ids())
    common.note(f"embedding {len(data.queries)} queries")
    encoder = Encoder(Manifest.read(path).encoder.name)
    queries = encoder.encode_queries(list(data.queries.values()))
    judged = (ids, list(data.queries), data.qrels)
    return benchdata.index_vectors(path), queries, judged, f"{data.name} vectors from {path}"


def _build(backend: str, kind: str, vectors: np.ndarray) -> Any:
    from searchkit.backends import get_backend

    index = get_backend(backend).create(vectors.shape[1], kind, {}, len(vectors))
    index.train(np.asarray(vectors))
    index.add(np.asarray(vectors))
    return index


def _memory(index: Any, count: int, dim: int) -> dict[str, float]:
    saved = benchdata.workdir() / "index.saved"
    index.save(saved)
    per_vector = saved.stat().st_size / count
    saved.unlink()
    return {"bytes_per_vector": per_vector, "float32_over_this": 4 * dim / per_vector}


def _search(
    index: Any, vectors: np.ndarray, queries: np.ndarray, depth: int, repeat: int
) -> tuple[tuple[np.ndarray, np.ndarray], float]:
    """Each query searched alone (as a searcher does); the results and the best pass's time."""
    from searchkit.backends.rescore import search_rescored

    options = {"rescore": depth} if "rescore" in index.params else {}
    best = float("inf")
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        found = [search_rescored(index, vectors, q[None], K, **options) for q in queries]
        best = min(best, time.perf_counter() - started)
    scores = np.concatenate([f[0] for f in found])
    return (scores, np.concatenate([f[1] for f in found])), best


def _ndcg(found: tuple[np.ndarray, np.ndarray], judged: tuple) -> float:
    from searchkit.eval.metrics import score_run

    scores, rows = found
    ids, qids, qrels = judged
    run = {
        q: {ids[r]: float(s) for r, s in zip(rr, ss, strict=True) if r >= 0}
        for q, rr, ss in zip(qids, rows, scores, strict=True)
    }
    return score_run(qrels, run)["nDCG@10"]


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth, strict=True)]))


def _table(results: dict[str, Any]) -> common.Table:
    table = common.Table(
        f"compact vectors: {results['source']}, {results['documents']:,} documents, "
        f"{results['queries']} queries, k={K}, one query per call",
        ["format", "bytes/vector", "float32 / this", "rescore", "recall@10", "nDCG@10",
         "% of float nDCG", "ms/query", "latency vs exact"],
        note="memory: the index as FAISS holds it in RAM; rescoring reads the candidates' rows "
        "of the memory-mapped float32 vectors (on disk, page cache). recall@10 against exact "
        "float32 search.",
    )  # fmt: skip
    for label, _, _ in FORMATS:
        entry = results.get(label, {"points": []})
        for p in entry["points"]:
            pct = None if p["ndcg_vs_float"] is None else 100 * p["ndcg_vs_float"]
            table.add(
                label, entry["bytes_per_vector"], entry["float32_over_this"], p["rescore"],
                p["recall_at_10"], p["ndcg_at_10"], pct, p["ms_per_query"],
                p["latency_vs_exact"],
            )  # fmt: skip
    return table


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(benchdata.workdir(), ignore_errors=True)
        sys.stdout.flush()
