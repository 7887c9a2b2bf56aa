"""Segment merging and flat search without a second copy of the vectors.

Merging (``--commits``, default 1,000): one index per merge policy receives that many
one-document upserts (synthetic English text, embedded by the real bi-encoder), one commit
each. Printed: the segment count after every 100 commits, the documents the merges rewrote per
document added and the bytes written per byte of the final index (write amplification), and
the query p50 (hybrid first stage, the query embedding included, no rerank) of the final index
against the same documents compacted into one segment, the two searchers interleaved query by
query in the same run (ratio > 1: slower than compacted).

Flat (``--flat-corpus``, default the stdlib sample): disk bytes per vector by kind of data of a
flat index, and single-query exact search speed (k=100, the searcher's depth) of the stored
float32 vectors searched in place (``ExactIndex.over`` the memory map, what flat indexes do
now) against a FAISS ``IndexFlatIP`` holding a copy (what they did before), over the index's
vectors and over ``--synthetic`` random unit vectors. "Before" bytes add the IndexFlatIP file a
flat index used to write per segment (FAISS's own ``write_index`` of the same vectors).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import numpy as np

NAME = "merge"
WORDS = (
    "river stone light market winter engine garden signal paper orbit copper violin harbor "
    "meadow silver ladder candle forest bridge planet velvet thunder glacier lantern compass "
    "falcon marble tunnel ember canyon quartz willow beacon cobalt saddle prism ivory tide"
).split()
QUERIES = 200


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    parser.add_argument("--commits", type=int, default=1000, help="one-document commits")
    parser.add_argument(
        "--none-commits", type=int, default=200,
        help="commits for policy none (each commit opens every segment: quadratic time)",
    )  # fmt: skip
    parser.add_argument(
        "--policies",
        default="tiered,none",
        help="merge policies: tiered (defaults), none, tiered/PER_TIER/AT_ONCE/FLOOR",
    )
    parser.add_argument("--flat-corpus", type=Path, default=common.REPO / "data/sample/stdlib")
    parser.add_argument("--synthetic", type=int, default=100_000, help="vectors for the speed")
    parser.add_argument("--skip-merge", action="store_true", help="only the flat part")
    args, header = common.start(parser, NAME)
    results: dict[str, Any] = {}
    tables: list[common.Table] = []
    if not args.skip_merge:
        results["merge"] = merging(args)
        tables += merge_tables(results["merge"])
    results["flat"] = flat(args)
    tables += flat_tables(results["flat"])
    common.report(NAME, args, header, tables, results)


def documents(n: int) -> list[Any]:
    from searchkit import Document

    rng = np.random.default_rng(0)
    return [
        Document(f"d{i:05d}", " ".join(rng.choice(WORDS, size=24)), f"note {i}") for i in range(n)
    ]


def merging(args: Any) -> dict[str, Any]:
    from searchkit import build_index
    from searchkit.ingest.writer import IndexWriter

    docs = documents(args.commits)
    root = Path(tempfile.mkdtemp(prefix="merge-bench-"))
    first = root / "first.jsonl"
    first.write_text(json.dumps({"_id": docs[0].id, "title": docs[0].title,
                                 "text": docs[0].text}) + "\n")  # fmt: skip
    out: dict[str, Any] = {"policies": {}}
    try:
        for label in args.policies.split(","):
            policy = parse_policy(label)
            path = root / label.replace("/", "-")
            build_index(first, path, language="en", merge_policy=policy, progress=False)
            counts, written, rewritten = [], 0, 0
            mine = docs[: args.none_commits] if policy.kind == "none" else docs
            started = time.perf_counter()
            with IndexWriter.open(path) as w:
                for n, doc in enumerate(mine[1:], start=2):
                    before = {f.path for f in w.manifest.files.values()}
                    report = w.upsert([doc])
                    rewritten += report.rewritten
                    written += sum(
                        f.bytes for f in w.manifest.files.values() if f.path not in before
                    )
                    if n % 100 == 0:
                        counts.append(len(w.manifest.segments))
                seconds = time.perf_counter() - started
                final = sum(f.bytes for f in w.manifest.files.values())
                segments = len(w.manifest.segments)
            common.note(f"{label}: segments every 100 commits {counts}, {seconds:.0f} s")
            out["policies"][label] = {
                "policy": policy.to_dict(),
                "segments_every_100": counts,
                "segments": segments,
                "seconds": seconds,
                "commits": len(mine),
                "commits_per_second": (len(mine) - 1) / seconds,
                "docs_rewritten_per_doc": rewritten / len(mine),
                "bytes_written_per_final_byte": written / final,
                "final_bytes": final,
                **latency(path, root / f"{path.name}-compacted"),
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def parse_policy(text: str) -> Any:
    """``tiered``, ``none`` or ``tiered/SEGMENTS_PER_TIER/MAX_MERGE_AT_ONCE/FLOOR_DOCS``."""
    from searchkit.index.merge import MergePolicy

    kind, *knobs = text.split("/")
    names = ("segments_per_tier", "max_merge_at_once", "floor_docs")
    return MergePolicy(kind=kind, **{n: int(v) for n, v in zip(names, knobs, strict=False)})


def latency(path: Path, compacted: Path) -> dict[str, Any]:
    """p50 of the index as merged and compacted, interleaved query by query."""
    from searchkit import Searcher
    from searchkit.ingest.writer import IndexWriter

    shutil.copytree(path, compacted)
    with IndexWriter.open(compacted) as w:
        w.compact()
    rng = np.random.default_rng(1)
    queries = [" ".join(rng.choice(WORDS, size=3)) + f" {i}" for i in range(QUERIES)]
    searchers = {"merged": Searcher.open(path), "compacted": Searcher.open(compacted)}
    times: dict[str, list[float]] = {k: [] for k in searchers}
    for s in searchers.values():  # warm: models loaded, files paged in
        s.search("warm up", rerank=False)
    for q in queries:  # unique queries: the query cache never answers
        for label, s in searchers.items():
            started = time.perf_counter()
            s.search(q, rerank=False)
            times[label].append(time.perf_counter() - started)
    p = {k: common.percentiles(v) for k, v in times.items()}
    return {
        "p50_ms": p["merged"]["p50"],
        "p50_compacted_ms": p["compacted"]["p50"],
        "p50_ratio": p["merged"]["p50"] / p["compacted"]["p50"],
        "latency": p,
    }


def merge_tables(r: dict[str, Any]) -> list[common.Table]:
    t = common.Table(
        "Merging: 1-document commits",
        ["policy", "commits", "segments every 100 commits", "final", "docs rewritten/doc",
         "bytes written/final byte", "commits/s", "p50 ms", "compacted p50 ms", "ratio"],
        note="ratio: p50 of the index as merged / of the same documents compacted (same run, "
        "interleaved); hybrid first stage with the query embedding, no rerank.",
    )  # fmt: skip
    for label, p in r["policies"].items():
        counts = " ".join(map(str, p["segments_every_100"]))
        t.add(label, p["commits"], counts, p["segments"], p["docs_rewritten_per_doc"],
              p["bytes_written_per_final_byte"], p["commits_per_second"], p["p50_ms"],
              p["p50_compacted_ms"], p["p50_ratio"])  # fmt: skip
    return [t]


def flat(args: Any) -> dict[str, Any]:
    from searchkit import build_index
    from searchkit.index.manifest import Manifest
    from searchkit.index.segment import disk_usage, read_vectors

    root = Path(tempfile.mkdtemp(prefix="flat-bench-"))
    try:
        path = root / "flat"
        build_index(args.flat_corpus / "corpus.jsonl", path, language="en", progress=False)
        m = Manifest.read(path)
        vectors = np.concatenate(
            [read_vectors(path / m.files[s.role("vectors")].path, m.dim) for s in m.segments]
        )
        after = disk_usage(m)
        copy = root / "copy.faiss"
        flat_index(vectors, copy)
        before = {**after, "vector index": after["vector index"] + copy.stat().st_size}
        rows = m.passage_counts()["passages"]
        rng = np.random.default_rng(0)
        synthetic = rng.standard_normal((args.synthetic, m.dim)).astype(np.float32)
        synthetic /= np.linalg.norm(synthetic, axis=1, keepdims=True)
        return {
            "corpus": str(args.flat_corpus),
            "vectors": rows,
            "bytes_per_vector_before": {k: v / rows for k, v in before.items()},
            "bytes_per_vector_after": {k: v / rows for k, v in after.items()},
            "total_before": sum(before.values()) / rows,
            "total_after": sum(after.values()) / rows,
            "speed": {
                f"{len(vectors)} (index)": speed(vectors, root),
                f"{args.synthetic} (synthetic)": speed(synthetic, root),
            },
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def flat_index(vectors: np.ndarray, out: Path) -> Any:
    from searchkit.backends import get_backend

    index = get_backend("faiss").create(vectors.shape[1], "flat", {}, len(vectors))
    index.add(vectors)
    index.save(out)
    return index


def speed(vectors: np.ndarray, root: Path, k: int = 100, n: int = 200) -> dict[str, float]:
    """ms per single query: in-place scan of a memory map vs a FAISS flat copy (interleaved)."""
    from searchkit.backends.exact import ExactIndex
    from searchkit.index.segment import read_vectors

    raw = root / "vectors.f32"
    raw.write_bytes(np.ascontiguousarray(vectors).tobytes())
    mapped = ExactIndex.over(read_vectors(raw, vectors.shape[1]), "flat", {})
    copy = flat_index(vectors, root / "speed.faiss")
    queries = vectors[np.random.default_rng(2).choice(len(vectors), n)] + 0.01
    times: dict[str, list[float]] = {"memmap": [], "faiss flat": []}
    agree = 0
    for q in queries:
        for label, index in (("memmap", mapped), ("faiss flat", copy)):
            started = time.perf_counter()
            _, ids = index.search(q[None], k)
            times[label].append(time.perf_counter() - started)
        agree += int(np.array_equal(np.sort(mapped.search(q[None], k)[1]),
                                    np.sort(copy.search(q[None], k)[1])))  # fmt: skip
    p50 = {label: common.percentiles(t)["p50"] for label, t in times.items()}
    return {**{f"{k}_p50_ms": v for k, v in p50.items()},
            "ratio": p50["memmap"] / p50["faiss flat"], "same_hits": agree / n}  # fmt: skip


def flat_tables(r: dict[str, Any]) -> list[common.Table]:
    kinds = list(r["bytes_per_vector_after"])
    t = common.Table(
        f"Disk bytes per vector, flat index of {r['corpus']} ({r['vectors']:,} vectors)",
        ["layout", *kinds, "total"],
        note="before: with the IndexFlatIP copy of vectors.f32 a flat segment used to write.",
    )
    for label in ("before", "after"):
        per = r[f"bytes_per_vector_{label}"]
        t.add(label, *(per[k] for k in kinds), r[f"total_{label}"])
    s = common.Table(
        "Exact search, one query, k=100 (ms, p50)",
        ["vectors", "memmap (now)", "faiss flat copy (before)", "ratio", "same hits"],
        note="ratio: memmap / faiss flat, interleaved in the same run.",
    )
    for label, v in r["speed"].items():
        s.add(label, v["memmap_p50_ms"], v["faiss flat_p50_ms"], v["ratio"], v["same_hits"])
    return [t, s]


if __name__ == "__main__":
    main()
