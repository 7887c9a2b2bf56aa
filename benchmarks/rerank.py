"""Rerank cost per query at 20/50/100 candidates, and how many candidates were truncated.

searchkit: ``Reranker.score_counted`` on each query's top candidates (first stage ``--mode``,
default hybrid): passages cut to 16 characters per model token, every pair tokenized once to
count those longer than the model reads, then ``CrossEncoder.predict`` (length-sorted batches
of ``--batch-size``, truncation to ``max_seq_length``). Baseline: ``CrossEncoder.predict`` alone
on the same pairs and model instance. The two are timed query by query, interleaved,
alternating which goes first.
"""

from __future__ import annotations

import sys
from typing import Any

import benchdata
import common

NAME = "rerank"


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser)
    common.add_reranker(parser)
    common.add_index(parser)
    parser.add_argument("--queries", type=int, default=10, help="test queries timed per depth")
    parser.add_argument(
        "--candidates", type=common.int_list, default=[20, 50, 100], help="rerank depths"
    )
    parser.add_argument("--mode", default=None, help="first stage (default: the index's)")
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per forward pass")
    args, header = common.start(parser, NAME)
    from searchkit.inference.reranker import Reranker
    from searchkit.query.searcher import Searcher

    data = benchdata.load_dataset(args.dataset, args.split, args.limit)
    searcher = Searcher.open(benchdata.bench_index(data, args.index))
    reranker = Reranker(str(args.reranker), batch_size=args.batch_size)
    texts = list(data.queries.values())[: args.queries]
    depth = max(args.candidates)
    pools = [
        [(q, _passage(h)) for h in searcher.search(q, k=depth, rerank=False, mode=args.mode)]
        for q in texts
    ]
    reranker.score_counted(pools[0][:8])  # load and warm the model before timing
    results = {str(c): _depth(reranker, pools, c) for c in args.candidates}
    results["max_tokens"] = reranker.max_tokens
    results["mode"] = searcher.resolve_mode(args.mode)
    common.report(NAME, args, header, [_table(results, args)], results)


def _passage(hit: Any) -> str:
    from searchkit.models import Document

    return Document(hit.id, hit.text, hit.title).passage()  # as the searcher reranks it


def _depth(reranker: Any, pools: list[list[tuple[str, str]]], count: int) -> dict[str, Any]:
    model = reranker.model
    ours, base, truncated, pairs = [], [], 0, 0
    for n, pool in enumerate(pools):
        batch = pool[:count]

        def searchkit(batch=batch) -> Any:
            return reranker.score_counted(batch)

        def baseline(batch=batch) -> Any:
            return model.predict(batch, batch_size=reranker.batch_size, show_progress_bar=False)

        order = (searchkit, baseline) if n % 2 == 0 else (baseline, searchkit)
        for fn in order:
            result, seconds = common.timed(fn)
            (ours if fn is searchkit else base).append(seconds)
            if fn is searchkit:
                truncated += int(result[1].sum())
        pairs += len(batch)
    common.note(f"rerank top {count}: {len(pools)} queries done")
    return {
        "searchkit_ms": common.percentiles(ours),
        "baseline_ms": common.percentiles(base),
        "pairs": pairs,
        "truncated": truncated,
        "pairs_per_second": pairs / max(sum(ours), 1e-9),
    }


def _table(results: dict[str, Any], args: Any) -> common.Table:
    table = common.Table(
        f"rerank cost per query ({args.queries} queries, {results['mode']} candidates, "
        f"reranker {args.reranker}, max {results['max_tokens']} tokens)",
        [
            "candidates",
            "mean ms",
            "p50 ms",
            "p95 ms",
            "baseline mean ms",
            "ratio",
            "pairs/s",
            "truncated",
        ],  # fmt: skip
        note="baseline = CrossEncoder.predict alone on the same pairs; ratio = searchkit / "
        "baseline (mean); truncated = pairs longer than the reranker reads / pairs scored.",
    )
    for count in args.candidates:
        r = results[str(count)]
        ours, base = r["searchkit_ms"], r["baseline_ms"]
        table.add(
            count, ours.get("mean"), ours.get("p50"), ours.get("p95"), base.get("mean"),
            common.ratio(ours.get("mean"), base.get("mean")), r["pairs_per_second"],
            f"{r['truncated']} / {r['pairs']}",
        )  # fmt: skip
    return table


if __name__ == "__main__":
    sys.exit(main())
