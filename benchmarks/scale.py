"""Scale: a million vectors in shards of HNSW, searched through searchkit's sharded index.

Data: ``--size`` synthetic 384-d unit vectors from ``ann.synthetic`` (clusters around topics,
Zipf sizes, low-dimensional spread), queries held out from the same distribution. The
``Calibration`` table compares them with real MiniLM embeddings of ``--reference`` (SciFact):
nearest-neighbour similarities of a same-size sample, the figures that make a search easy or
hard. The index is built the way a Ray ingest builds one: each shard an ordinary index written
by ``searchkit.index.sharded.write_shard`` (hnswlib backend, in its own process, so its peak
memory is its own), then the parent manifest. It is searched by ``ShardedIndex`` (threads fan
the query out over the shards, merge by score, fetch the documents): the product, not a bare
graph. Baselines in the same run: faiss ``IndexFlatIP`` brute force over the same vectors (the
ground truth and the exact QPS) and raw hnswlib over the same shard files.

Modes: ``1 core`` (the process pinned to one CPU, one query per call), ``all cores`` (one query
per call, the shards searched in parallel threads) and ``batch`` (``--batch`` queries per call).
"""

from __future__ import annotations

import gc
import os
import subprocess
from pathlib import Path
from typing import Any

import ann
import benchdata
import common
import numpy as np

NAME = "scale"
MODES = ("1 core", "all cores", "batch")


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    parser.add_argument("--size", type=int, default=1_000_000, help="vectors in the index")
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries")
    parser.add_argument("--dim", type=int, default=384, help="dimension")
    parser.add_argument("--clusters", type=int, default=2000, help="synthetic clusters")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument("--shards", type=int, default=4, help="HNSW shards")
    parser.add_argument("--m", type=int, default=32, help="HNSW links per node")
    parser.add_argument("--ef-construction", type=int, default=200, help="HNSW build breadth")
    parser.add_argument(
        "--ef", type=common.int_list, default=[16, 32, 64, 128, 256, 512], help="ef_search sweep"
    )
    parser.add_argument("--k", type=int, default=10, help="neighbours per query")
    parser.add_argument("--batch", type=int, default=100, help="queries per call, batch mode")
    parser.add_argument(
        "--exact-queries", type=int, default=100, help="queries timed one per call on exact"
    )
    parser.add_argument("--target", type=float, default=0.95, help="recall@k aimed at")
    parser.add_argument(
        "--reference", type=Path, default=common.DEFAULT_DATASET, help="BEIR folder to compare"
    )
    parser.add_argument(
        "--reference-index", type=Path, default=None, help="its index (default indexes/NAME)"
    )
    args, header = common.start(parser, NAME)
    results: dict[str, Any] = {"uptime_start": _uptime(), "size": args.size, "dim": args.dim}
    data = _write_data(args)
    exact = common.in_child(_exact, data, args.k, args.batch, args.exact_queries)
    results["exact"] = {k: v for k, v in exact.items() if k not in ("ids", "scores")}
    results["query_similarity"] = _quantiles(exact["scores"][:, [0, args.k - 1]].T)
    np.save(data["truth"], exact["ids"])
    results["build"], index = _build(args, data)
    results["disk"] = _disk(index, args.size, args.dim)
    results["search"] = [
        common.in_child(_search, index, data, args.ef, args.k, args.batch, mode)
        for mode in ("1 core", "all cores")
    ]
    results["sweeps"] = _sweeps(results, args)
    results["chosen"] = _chosen(results["sweeps"], args)
    # last: the reference index may still be being built by someone else when the run starts
    results["calibration"] = _calibrate(args, data)
    results["uptime_end"] = _uptime()
    common.report(NAME, args, header, _tables(results, args), results)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# --- data ---------------------------------------------------------------------------------


def _write_data(args: Any) -> dict[str, Any]:
    """Generate vectors and queries into scratch files the child processes memory-map."""
    common.note(f"generating {args.size:,} x {args.dim} vectors ...")
    vectors, queries = ann.synthetic(args.size, args.queries, args.dim, args.clusters, args.seed)
    folder = benchdata.workdir()
    data = {
        "vectors": str(folder / "vectors.f32"),
        "queries": str(folder / "queries.npy"),
        "truth": str(folder / "truth.npy"),
        "size": args.size,
        "dim": args.dim,
    }
    vectors.tofile(data["vectors"])
    np.save(data["queries"], queries)
    del vectors
    gc.collect()
    return data


def _vectors(data: dict[str, Any]) -> np.ndarray:
    return np.memmap(data["vectors"], np.float32, "r", shape=(data["size"], data["dim"]))


def _calibrate(args: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Nearest-neighbour similarities of the reference embeddings and of as many synthetic ones
    (the vectors are drawn independently, so the first rows are a random sample)."""
    dataset = benchdata.load_dataset(args.reference, "test", args.limit)
    real = benchdata.index_vectors(benchdata.bench_index(dataset, args.reference_index))
    n = min(len(real), data["size"])
    return {
        "reference": dataset.name,
        "rows": n,
        "real": _neighbour_stats(real[:n], args.k),
        "synthetic": _neighbour_stats(np.array(_vectors(data)[:n]), args.k),
    }


def _neighbour_stats(x: np.ndarray, k: int) -> dict[str, dict[str, float]]:
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    k = min(k, len(x) - 1)
    top = -np.sort(-np.partition(sims, -k, axis=1)[:, -k:], axis=1)
    rng = np.random.default_rng(0)
    a, b = rng.integers(len(x), size=(2, 100_000))
    keep = a != b
    return {
        "1st neighbour": _quantile_row(top[:, 0]),
        f"{k}th neighbour": _quantile_row(top[:, k - 1]),
        f"1st - {k}th": _quantile_row(top[:, 0] - top[:, k - 1]),
        "random pair": _quantile_row(sims[a[keep], b[keep]]),
    }


def _quantile_row(values: np.ndarray) -> dict[str, float]:
    p10, p50, p90 = np.quantile(values, [0.1, 0.5, 0.9])
    return {"mean": float(values.mean()), "p10": float(p10), "p50": float(p50), "p90": float(p90)}


def _quantiles(rows: np.ndarray) -> dict[str, dict[str, float]]:
    """Query to 1st and k-th true neighbour similarity at full size."""
    return {"1st neighbour": _quantile_row(rows[0]), "kth neighbour": _quantile_row(rows[1])}


# --- exact baseline (child process) -------------------------------------------------------


def _exact(data: dict[str, Any], k: int, batch: int, timed_queries: int) -> dict[str, Any]:
    """faiss IndexFlatIP over the same vectors: the true top k, and exact QPS in each mode
    (``timed_queries`` one per call; every query in batch mode)."""
    import faiss

    vectors, queries = _vectors(data), np.load(data["queries"])
    index = faiss.IndexFlatIP(data["dim"])
    _, seconds = common.timed(_add_all, index, vectors)
    scores, ids = index.search(queries, k)
    modes = {}
    cores = os.sched_getaffinity(0)
    for mode in MODES:
        pinned = mode == "1 core"
        os.sched_setaffinity(0, {min(cores)} if pinned else cores)
        faiss.omp_set_num_threads(1 if pinned else len(cores))
        per_call, asked = (batch, queries) if mode == "batch" else (1, queries[:timed_queries])
        modes[mode] = _time_calls(lambda q: index.search(q, k)[1], asked, per_call)[0]
    return {
        "ids": ids,
        "scores": scores,
        "add_seconds": seconds,
        "modes": modes,
        "peak_rss_mb": common.peak_rss_mb(),
    }


def _add_all(index: Any, vectors: np.ndarray) -> None:
    for start in range(0, len(vectors), 65_536):
        index.add(np.ascontiguousarray(vectors[start : start + 65_536]))


def _time_calls(search: Any, queries: np.ndarray, per_call: int) -> tuple[dict, list]:
    """QPS and latency of ``per_call`` queries per call (after one untimed call), and the ids
    each call found."""
    search(queries[:per_call])
    times, found = [], []
    for start in range(0, len(queries), per_call):
        ids, seconds = common.timed(search, queries[start : start + per_call])
        times.append(seconds)
        found.extend(ids)
    stats = {"queries": len(queries), "per_call": per_call, "qps": len(queries) / sum(times)}
    return {**stats, "latency_ms": common.percentiles(times)}, found


# --- build --------------------------------------------------------------------------------


def _build(args: Any, data: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """Write each shard in its own process, then the parent manifest, as a Ray ingest does;
    shard ``i`` holds the ``i``-th contiguous range of rows (the rows are i.i.d.)."""
    from searchkit.index.sections import CorpusSection
    from searchkit.index.sharded import (
        SHARDS,
        ShardedManifest,
        ShardEntry,
        commit_sharded,
        generation,
    )

    staging, out = benchdata.workdir() / "staging", benchdata.workdir() / "index"
    bounds = np.linspace(0, args.size, args.shards + 1).astype(int).tolist()
    built, records = [], []
    for number in range(args.shards):
        name = f"shard-{number:04d}"
        path = f"{SHARDS}/{generation(1)}/{name}"
        common.note(f"building {name}: rows {bounds[number]:,} to {bounds[number + 1]:,} ...")
        shard = (data, bounds[number], bounds[number + 1], str(staging / path))
        manifest, record = common.in_child(_build_shard, *shard, args.m, args.ef_construction)
        common.note(f"  {record['seconds']:.0f} s, peak RSS {record['peak_rss_mb']:,.0f} MiB")
        built.append((ShardEntry(name, path, manifest.documents, [number]), manifest))
        records.append(record)
    corpus = CorpusSection(data["vectors"], "", 0)
    parent = ShardedManifest.create(staging, 1, built, corpus=corpus, ingest={"synthetic": True})
    commit_sharded(staging, out, parent, replace=False)
    summary = {
        "shards": records,
        "seconds": sum(r["seconds"] for r in records),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in records),
        "params": parent.backend.params,
        "threads": len(os.sched_getaffinity(0)),
    }
    return summary, out


def _build_shard(
    data: dict[str, Any], start: int, stop: int, folder: str, m: int, ef_construction: int
) -> tuple[Any, dict[str, Any]]:
    """One shard: documents named by their global row, embedded as the synthetic vectors."""
    from searchkit.index.passages import whole_documents
    from searchkit.index.sections import CorpusSection, EncoderSection
    from searchkit.index.segment import ADD_ROWS, VectorSpec
    from searchkit.index.sharded import ShardHeader, write_shard
    from searchkit.models import Document

    vectors = _vectors(data)

    def blocks() -> Any:
        for first in range(start, stop, ADD_ROWS):
            last = min(first + ADD_ROWS, stop)
            docs = [Document(str(i), f"synthetic vector {i}") for i in range(first, last)]
            yield docs, vectors[first:last], whole_documents(docs)

    spec = VectorSpec("hnswlib", "hnsw", {"m": m, "ef_construction": ef_construction})
    encoder = EncoderSection("synthetic", data["dim"], None)
    header = ShardHeader(encoder, "none", spec, CorpusSection(data["vectors"], "", 0))
    Path(folder).mkdir(parents=True)
    manifest, seconds = common.timed(write_shard, Path(folder), blocks(), header)
    return manifest, {"rows": stop - start, "seconds": seconds, "peak_rss_mb": common.peak_rss_mb()}


def _disk(index: Path, n: int, dim: int) -> dict[str, Any]:
    """Bytes on disk per kind of file over every shard (the hnswlib file split into its copy
    of the vectors and the rest: links, labels, header)."""
    from searchkit.index.sharded import ShardedManifest

    kinds: dict[str, int] = {}
    for role, entry in ShardedManifest.read(index).files.items():
        part = role.rsplit("/", 1)[-1]
        kinds[part] = kinds.get(part, 0) + entry.bytes
    kinds["manifest"] = kinds.get("manifest", 0) + (index / "manifest.json").stat().st_size
    copy = n * dim * 4
    kinds["index: vectors"], kinds["index: graph"] = copy, kinds.pop("index") - copy
    total = sum(kinds.values())
    return {"bytes": kinds, "total": total, "per_vector": {k: v / n for k, v in kinds.items()}}


# --- search (child process) ---------------------------------------------------------------


def _search(
    index: Path, data: dict[str, Any], efs: list[int], k: int, batch: int, mode: str
) -> dict[str, Any]:
    """Open the sharded index, sweep ef_search with one query per call (and ``batch`` per call
    on all cores); then the same over the raw hnswlib graphs of the same files."""
    cores = os.sched_getaffinity(0)
    if mode == "1 core":  # before any thread starts: they inherit it
        os.sched_setaffinity(0, {min(cores)})
    from searchkit.distributed.fanout import ShardedIndex
    from searchkit.options import SearchOptions
    from searchkit.query.stage import QueryBatch

    queries, truth = np.load(data["queries"]), np.load(data["truth"])
    rss = {"before open": _rss_mb()}
    sharded, open_seconds = common.timed(ShardedIndex, index, verify=False)
    rss["after open"] = _rss_mb()

    def product(ef: int) -> Any:
        options = SearchOptions(rerank=False, mode="dense", ef_search=ef)

        def search(q: np.ndarray) -> list[list[int]]:
            found = sharded.candidates(QueryBatch(q, None), k, None, options, None)
            return [[int(found.docs[r].id) for r, _, _ in pool] for pool in found.pools]

        return search

    per_calls = [1] if mode == "1 core" else [1, batch]
    points = _sweep("searchkit", product, efs, per_calls, queries, truth, mode)
    rss["after search"] = _rss_mb()
    sharded.close()
    raw = _raw_graphs(index, data["dim"], k)
    points += _sweep("raw hnswlib", raw, efs, per_calls, queries, truth, mode)
    return {"mode": mode, "open_seconds": open_seconds, "rss_mb": rss, "points": points}


def _sweep(
    system: str,
    searcher: Any,
    efs: list[int],
    per_calls: list[int],
    queries: np.ndarray,
    truth: np.ndarray,
    mode: str,
) -> list[dict[str, Any]]:
    points = []
    for ef in efs:
        for per_call in per_calls:
            stats, found = _time_calls(searcher(ef), queries, per_call)
            hits = [len(set(f) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
            point = {"system": system, "mode": "batch" if per_call > 1 else mode, "ef": ef}
            points.append({**point, "recall": sum(hits) / truth.size, **stats})
    return points


def _raw_graphs(index: Path, dim: int, k: int) -> Any:
    """Search the shards' hnswlib files with hnswlib alone: each shard in turn, merged by
    score (a baseline for the fan-out, merge and document fetch around it)."""
    import hnswlib

    from searchkit.index.manifest import Manifest
    from searchkit.index.sharded import ShardedManifest

    graphs, offsets, offset = [], [], 0
    for shard in ShardedManifest.read(index).shards:
        manifest = Manifest.read(index / shard.path)
        graph = hnswlib.Index(space="ip", dim=dim)
        path = manifest.files[manifest.segments[0].role("index")].path
        graph.load_index(str(index / shard.path / path))
        graphs.append(graph)
        offsets.append(offset)
        offset += shard.documents

    def searcher(ef: int) -> Any:
        for graph in graphs:
            graph.set_ef(ef)

        def search(q: np.ndarray) -> np.ndarray:
            found = [g.knn_query(q, k=k) for g in graphs]
            scores = np.hstack([-d for _, d in found])
            ids = np.hstack(
                [labels.astype(np.int64) + o for (labels, _), o in zip(found, offsets, strict=True)]
            )
            top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            return np.take_along_axis(ids, top, axis=1).tolist()

        return search

    return searcher


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- results ------------------------------------------------------------------------------


def _sweeps(results: dict[str, Any], args: Any) -> list[dict[str, Any]]:
    """Every point, exact ones first, with its speedup over exact in the same mode."""
    exact = results["exact"]["modes"]
    rows = [
        {"system": "exact (faiss flat)", "mode": m, "ef": None, "recall": 1.0, **exact[m]}
        for m in MODES
    ]
    rows += [p for run in results["search"] for p in run["points"]]
    for row in rows:
        row["speedup"] = common.ratio(row["qps"], exact[row["mode"]]["qps"])
    return rows


def _chosen(sweeps: list[dict[str, Any]], args: Any) -> dict[str, Any]:
    """Per mode, searchkit's fastest point at recall >= target (None when none reaches it)."""
    out = {}
    for mode in MODES:
        good = [p for p in sweeps if p["system"] == "searchkit" and p["mode"] == mode]
        good = [p for p in good if p["recall"] >= args.target]
        out[mode] = max(good, key=lambda p: p["qps"]) if good else None
    return out


def _tables(results: dict[str, Any], args: Any) -> list[common.Table]:
    return [
        _calibration_table(results),
        _build_table(results),
        _memory_table(results, args),
        _sweep_table(results, args),
        _summary_table(results, args),
    ]


def _calibration_table(results: dict[str, Any]) -> common.Table:
    cal = results["calibration"]
    table = common.Table(
        f"Calibration: cosine similarities among {cal['rows']:,} vectors, "
        f"real ({cal['reference']}) vs synthetic",
        ["statistic", "real p10", "real p50", "real p90", "synth p10", "synth p50", "synth p90"],
        note="a same-size random sample of the synthetic vectors; nearest-neighbour "
        "similarities grow with the corpus size, so compare at equal size.",
    )
    for stat, real in cal["real"].items():
        synth = cal["synthetic"][stat]
        table.add(
            stat,
            *(real[q] for q in ("p10", "p50", "p90")),
            *(synth[q] for q in ("p10", "p50", "p90")),
        )
    return table


def _build_table(results: dict[str, Any]) -> common.Table:
    build = results["build"]
    params = ", ".join(f"{k}={v}" for k, v in build["params"].items())
    table = common.Table(
        f"Build: {results['size']:,} x {results['dim']} in {len(build['shards'])} hnswlib "
        f"shards ({params}), {build['threads']} threads",
        ["shard", "vectors", "build s", "peak RSS MiB"],
        note="each shard by write_shard in its own process: documents, vectors, fields, "
        "graph, checksums. Exact: faiss flat add "
        f"{results['exact']['add_seconds']:.1f} s, peak RSS "
        f"{results['exact']['peak_rss_mb']:,.0f} MiB.",
    )
    for number, shard in enumerate(build["shards"]):
        table.add(number, shard["rows"], shard["seconds"], shard["peak_rss_mb"])
    table.add("all", results["size"], build["seconds"], build["peak_rss_mb"])
    return table


def _memory_table(results: dict[str, Any], args: Any) -> common.Table:
    disk, n = results["disk"], results["size"]
    table = common.Table(
        "Memory: bytes per vector",
        ["kind", "MiB", "bytes/vector"],
        note="disk: every file of every shard (index: the hnswlib file, which holds its own "
        "copy of the vectors). RAM: the searching process' RSS growth from before opening "
        "the index to after the sweep (one query per call, 1 core).",
    )
    for kind, size in disk["bytes"].items():
        table.add(f"disk: {kind}", size / 2**20, size / n)
    table.add("disk: total", disk["total"] / 2**20, disk["total"] / n)
    rss = results["search"][0]["rss_mb"]
    grown = rss["after search"] - rss["before open"]
    table.add("RAM: RSS of an open, searched index", grown, grown * 2**20 / n)
    return table


def _sweep_table(results: dict[str, Any], args: Any) -> common.Table:
    table = common.Table(
        f"Recall@{args.k} vs QPS (ef_search per shard; exact = faiss IndexFlatIP)",
        ["mode", "system", "ef", f"recall@{args.k}", "QPS", "speedup", "p50 ms", "p99 ms"],
        note=f"1 core: the process pinned to one CPU, one query per call; all cores: one query "
        f"per call, shards in parallel threads; batch: {args.batch} queries per call. "
        "speedup = QPS / exact QPS in the same mode. searchkit = ShardedIndex (fan-out, merge, "
        "document fetch); raw hnswlib = the same graph files, shards in turn.",
    )
    for p in results["sweeps"]:
        lat = p["latency_ms"]
        table.add(
            p["mode"],
            p["system"],
            p["ef"],
            p["recall"],
            p["qps"],
            p["speedup"],
            lat["p50"],
            lat["p99"],
        )
    return table


def _summary_table(results: dict[str, Any], args: Any) -> common.Table:
    table = common.Table(
        f"Summary: searchkit's fastest setting at recall@{args.k} >= {args.target}",
        ["mode", "ef", f"recall@{args.k}", "QPS", "exact QPS", "speedup"],
    )
    for mode, p in results["chosen"].items():
        exact = results["exact"]["modes"][mode]["qps"]
        if p is None:
            table.add(mode, "-", "not reached", None, exact, None)
        else:
            table.add(mode, p["ef"], p["recall"], p["qps"], exact, p["speedup"])
    return table


if __name__ == "__main__":
    main()
