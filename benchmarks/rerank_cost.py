"""Rerank cost control: what the candidate depth, the reranker's token cap and early exit each
cost in nDCG@10 and save in rerank time, on one dataset in one run.

Every setting is a full ``searchkit.eval.evaluate`` run (one query at a time, timed end to end, with
the first stage ``--mode``): its retrieval stage (no rerank, the top 100) is the baseline
measured in the same run, and its rerank stage reranks the top ``candidates``. Settings:
depths (``--candidates``) at the model's own token limit; caps (``--caps``) at ``--depth``;
early exit at ``--depth``, with margins chosen from this run's own first-stage score gaps so
that about each ``--exit-shares`` of the queries exit (the margin is what a user would set).
"""

from __future__ import annotations

import sys
from typing import Any

import benchdata
import common
import numpy as np

NAME = "rerank_cost"


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser)
    common.add_reranker(parser)
    common.add_index(parser)
    parser.add_argument("--mode", default=None, help="first stage (default: the index's)")
    parser.add_argument(
        "--candidates", type=common.int_list, default=[10, 20, 50], help="rerank depths"
    )
    parser.add_argument("--depth", type=int, default=20, help="depth of the cap and exit runs")
    parser.add_argument(
        "--caps", type=common.int_list, default=[64, 128], help="reranker token caps"
    )
    parser.add_argument(
        "--exit-shares",
        type=lambda t: [float(x) for x in t.split(",") if x.strip()],
        default=[0.25, 0.5],
        help="shares of queries that early exit",
    )
    parser.add_argument("--reranker-runtime", default=None, help="reranker runtime [auto]")
    args, header = common.start(parser, NAME)
    data = benchdata.load_dataset(args.dataset, args.split, args.limit)
    index = benchdata.bench_index(data, args.index)
    run = _runner(index, data, args)
    gaps = _first_stage_gaps(index, data, args)
    settings: list[tuple[str, dict[str, Any]]] = [
        (f"depth {c}", {"candidates": c}) for c in args.candidates
    ]
    settings += [(f"cap {t} tokens", {"rerank_max_tokens": t}) for t in args.caps]
    for share in args.exit_shares:
        margin = float(np.quantile(gaps, 1 - share))
        settings.append((f"exit ~{share:.0%} (margin {margin:.4g})", {"rerank_margin": margin}))
    results = {"rows": {}, "gaps": common.percentiles(list(gaps))}
    for label, options in settings:
        results["rows"][label] = run(**{"candidates": args.depth, **options})
        common.note(f"{label}: done")
    results["mode"] = args.mode
    common.report(NAME, args, header, [_table(results, args, data)], results)


def _runner(index: Any, data: Any, args: Any) -> Any:
    from searchkit.eval.evaluate import evaluate

    def run(**options: Any) -> dict[str, Any]:
        r = evaluate(
            index,
            data,
            reranker=str(args.reranker),
            reranker_runtime=args.reranker_runtime,
            mode=args.mode,
            progress=sys.stderr.isatty(),
            **options,
        )
        retrieval, rerank = r.latency_ms["retrieval"], r.latency_ms.get("rerank", {})
        return {
            "options": options,
            "mode": r.search["mode"],
            "ndcg10_retrieval": r.metrics["retrieval"]["nDCG@10"],
            "ndcg10_rerank": r.metrics.get("rerank", {}).get("nDCG@10"),
            "retrieval_ms": retrieval,
            "rerank_ms": rerank,
            # the rerank stage's own cost: its query time over the first stage's alone
            "rerank_over_retrieval": common.ratio(rerank.get("mean"), retrieval.get("mean")),
            **r.truncation,
        }

    return run


def _first_stage_gaps(index: Any, data: Any, args: Any) -> np.ndarray:
    """Per query, how far the first stage's top hit leads the second (its own score units)."""
    from searchkit.query.searcher import Searcher

    searcher = Searcher.open(index, query_cache=0)
    gaps = []
    for hits in searcher.search_batch(
        list(data.queries.values()), k=2, rerank=False, mode=args.mode
    ):
        gaps.append(hits[0].retrieval_score - hits[1].retrieval_score if len(hits) > 1 else 0.0)
    return np.asarray(gaps)


def _table(results: dict[str, Any], args: Any, data: Any) -> common.Table:
    rows = results["rows"]
    first = next(iter(rows.values()))
    table = common.Table(
        f"rerank cost control on {data.name} ({len(data.queries)} queries, {first['mode']} first "
        f"stage, reranker {args.reranker})",
        [
            "setting",
            "candidates",
            "max tokens",
            "nDCG@10",
            "vs depth-20 rerank",
            "first stage alone",
            "rerank mean ms",
            "p95 ms",
            "x first stage",
            "truncated",
            "early exit",
        ],  # fmt: skip
        note="Each row is one searchkit.eval.evaluate run: 'first stage alone' is its retrieval "
        "nDCG@10, 'x first stage' its rerank stage's mean query time over its retrieval "
        "stage's (same run); truncated = pairs longer than the reranker read / pairs scored.",
    )
    reference = rows.get(f"depth {args.depth}", first)["ndcg10_rerank"]
    for label, r in rows.items():
        table.add(
            label, r["options"].get("candidates"), r.get("max_tokens"), r["ndcg10_rerank"],
            common.ratio(r["ndcg10_rerank"], reference), r["ndcg10_retrieval"],
            r["rerank_ms"].get("mean"), r["rerank_ms"].get("p95"), r["rerank_over_retrieval"],
            f"{r.get('truncated', 0)} / {r.get('pairs', 0)}", r.get("early_exit", 0),
        )  # fmt: skip
    return table


if __name__ == "__main__":
    sys.exit(main())
