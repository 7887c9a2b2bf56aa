"""Query latency of a searchkit index against sentence-transformers alone, in one process.

searchkit: ``Searcher.search`` (embed the query, vector search, fetch the hits' documents from
Parquet, optionally rerank) per single query, and ``search_batch`` for batches. Baseline: the
same model instances with ``util.semantic_search`` (exact, dot product) over the very vectors
stored in the index, passages held in memory, and ``CrossEncoder.predict`` for reranking. The
two are timed query by query, interleaved, alternating which goes first. Per mode: p50/p95/p99
of both and of searchkit's docstore fetch (the ``fetch`` stage of ``searchkit.query.timing``).
For the issue's figure (300 queries, k=10, no rerank): ``--queries 300 --candidates ''``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import benchdata
import common
import numpy as np

NAME = "query_latency"


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser)
    common.add_reranker(parser)
    common.add_index(parser)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the index at --index")
    parser.add_argument("--backend", default="faiss", help="backend of a built index")
    parser.add_argument("--kind", default=None, help="kind of a built index")
    parser.add_argument("--k", type=int, default=10, help="hits per query")
    parser.add_argument("--queries", type=int, default=100, help="single queries timed")
    parser.add_argument("--rerank-queries", type=int, default=20, help="queries per rerank depth")
    parser.add_argument(
        "--candidates", type=common.int_list, default=[20, 50, 100], help="rerank depths"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="queries per batch")
    parser.add_argument("--batches", type=int, default=10, help="batches timed")
    parser.add_argument("--warmup", type=int, default=3, help="untimed queries per mode")
    args, header = common.start(parser, NAME)
    from searchkit import Searcher

    data = benchdata.load_dataset(args.dataset, args.split, args.limit)
    index = benchdata.bench_index(
        data, args.index, rebuild=args.rebuild, backend=args.backend, kind=args.kind
    )
    # no query-embedding cache: every mode times the same texts, each must embed them
    searcher = Searcher.open(index, reranker=str(args.reranker), query_cache=0)
    baseline = Baseline(searcher, index)
    texts = list(data.queries.values())
    results = {
        "index": str(index),
        "documents": len(searcher),
        "modes": _measure(searcher, baseline, texts, args),
    }
    common.report(NAME, args, header, [_table(results, args)], results)


class Baseline:
    """sentence-transformers alone, on the searcher's own model instances and vectors."""

    def __init__(self, searcher: Any, index: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        import torch

        from searchkit.models import Document

        self.encoder, self.reranker = searcher.encoder, searcher.reranker
        self.vectors = torch.from_numpy(benchdata.index_vectors(index))
        m = searcher.manifest
        docs = pa.concat_tables(
            pq.read_table(index / m.files[s.role("docs")].path, columns=["title", "text"])
            for s in m.segments
        )
        self.passages = [
            Document("", text, title).passage()
            for title, text in zip(docs["title"].to_pylist(), docs["text"].to_pylist(), strict=True)
        ]

    def retrieve(self, queries: Sequence[str], k: int) -> list[list[dict[str, Any]]]:
        import torch
        from sentence_transformers import util

        embedded = torch.from_numpy(self.encoder.encode_queries(queries))
        return util.semantic_search(embedded, self.vectors, top_k=k, score_function=util.dot_score)

    def rerank(self, queries: Sequence[str], k: int, candidates: int) -> list[list[int]]:
        pools = [
            [hit["corpus_id"] for hit in hits]
            for hits in self.retrieve(queries, max(k, candidates))
        ]
        pairs = [
            (q, self.passages[row]) for q, rows in zip(queries, pools, strict=True) for row in rows
        ]
        model = self.reranker.model
        scores = model.predict(pairs, batch_size=self.reranker.batch_size, show_progress_bar=False)
        ranked, start = [], 0
        for rows in pools:
            order = np.argsort(-scores[start : start + len(rows)], kind="stable")[:k]
            ranked.append([rows[i] for i in order])
            start += len(rows)
        return ranked


def _measure(searcher: Any, base: Baseline, texts: list[str], args: Any) -> dict[str, Any]:
    """Every mode: latency percentiles of searchkit and the baseline, and their ratios."""
    k, modes = args.k, {}
    single = common.cycle(texts, args.queries)
    modes["retrieve"] = _paired(
        lambda q: searcher.search(q, k, rerank=False, mode="dense"),
        lambda q: base.retrieve([q], k),
        single,
        args,
    )
    if searcher.manifest.lexical:  # the default mode (the baseline stays dense)
        modes["retrieve (hybrid)"] = _paired(
            lambda q: searcher.search(q, k, rerank=False, mode="hybrid"),
            lambda q: base.retrieve([q], k),
            single,
            args,
        )
    for c in args.candidates:
        modes[f"retrieve+rerank@{c}"] = _paired(
            lambda q, c=c: searcher.search(q, k, candidates=c, mode="dense"),
            lambda q, c=c: base.rerank([q], k, c),
            common.cycle(texts, args.rerank_queries),
            args,
        )
    size = args.batch_size
    groups = common.cycle(texts, size * args.batches)
    batches = [groups[i : i + size] for i in range(0, len(groups), size)]
    modes[f"batch of {size} (retrieve)"] = _paired(
        lambda b: searcher.search_batch(b, k, rerank=False, mode="dense"),
        lambda b: base.retrieve(b, k),
        batches,
        args,
        per_item=size,
    )
    return modes


def _paired(
    ours: Callable[[Any], Any],
    theirs: Callable[[Any], Any],
    inputs: Sequence[Any],
    args: Any,
    per_item: int = 1,
) -> dict[str, Any]:
    """Time ``ours`` and ``theirs`` on each input, alternating which runs first, and the
    docstore fetch inside ``ours``."""
    from searchkit.query import timing

    for item in inputs[: args.warmup]:
        ours(item)
        theirs(item)
    times: dict[str, list[float]] = {"searchkit": [], "baseline": [], "fetch": []}
    fetched: list[float] = []

    def sink(name: str, seconds: float) -> None:
        if name == "fetch":
            fetched.append(seconds)

    def recorded(item: Any) -> Any:
        with timing.recording(sink):
            return ours(item)

    for i, item in enumerate(inputs):
        order = [("searchkit", recorded), ("baseline", theirs)][:: 1 if i % 2 == 0 else -1]
        for name, fn in order:
            times[name].append(common.timed(fn, item)[1] / per_item)
        times["fetch"].append(sum(fetched) / per_item)
        fetched.clear()
    stats = {name: common.percentiles(samples) for name, samples in times.items()}
    stats["ratio"] = {
        p: common.ratio(stats["searchkit"].get(p), stats["baseline"].get(p))
        for p in ("p50", "p95", "p99", "mean")
    }
    return stats


def _table(results: dict[str, Any], args: Any) -> common.Table:
    table = common.Table(
        f"Query latency (ms) on {results['documents']:,} documents, k={args.k}",
        [
            "mode",
            "n",
            "p50",
            "p95",
            "p99",
            "p95/p50",
            "fetch p50",
            "fetch p95",
            "baseline p50",
            "baseline p95",
            "baseline p99",
            "p50 ratio",
            "p95 ratio",
        ],
        note="baseline: sentence-transformers util.semantic_search over the index's vectors "
        "(+ CrossEncoder.predict for rerank), same model instances; ratio = searchkit / "
        "baseline; fetch: the docstore read of the hits inside searchkit's time. Batch rows are "
        "per query (batch time / batch size).",
    )
    for mode, s in results["modes"].items():
        ours, base = s["searchkit"], s["baseline"]
        table.add(
            mode,
            ours["n"],
            ours["p50"],
            ours["p95"],
            ours["p99"],
            common.ratio(ours.get("p95"), ours.get("p50")),
            s["fetch"].get("p50"),
            s["fetch"].get("p95"),
            base["p50"],
            base["p95"],
            base["p99"],
            s["ratio"]["p50"],
            s["ratio"]["p95"],
        )
    return table


if __name__ == "__main__":
    main()
