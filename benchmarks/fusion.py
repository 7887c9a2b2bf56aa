"""Hybrid fusion settings swept on one split: RRF k and the weighted dense share.

Each judged query is retrieved once per first stage (``Searcher.search`` with ``mode="dense"``
and ``mode="lexical"``, top ``--depth``), then fused with ``searchkit.query.fusion.rrf`` for every
``--rrf-k`` and ``searchkit.query.fusion.weighted`` for every ``--weights`` value, exactly as a
hybrid
search fuses them, and every run is scored by ``searchkit.eval.metrics.score_run``. Meant for the
train split, so the defaults are chosen on queries the test figures do not use. Baselines in
the same run: dense alone and lexical alone.
"""

from __future__ import annotations

import sys
from typing import Any

import benchdata
import common
import numpy as np

NAME = "fusion"


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser)
    common.add_index(parser)
    parser.add_argument("--depth", type=int, default=100, help="hits per first stage and run")
    parser.add_argument(
        "--rrf-k", type=common.int_list, default=[1, 10, 20, 40, 60, 100, 200], help="RRF k"
    )
    parser.add_argument(
        "--weights", type=str, default="0.2,0.3,0.4,0.5,0.6,0.7,0.8", help="dense shares"
    )
    args, header = common.start(parser, NAME)
    from searchkit.query.searcher import Searcher

    data = benchdata.load_dataset(args.dataset, args.split, args.limit)
    searcher = Searcher.open(benchdata.bench_index(data, args.index))
    lists = {
        mode: {
            q: searcher.search(t, k=args.depth, rerank=False, mode=mode)
            for q, t in data.queries.items()
        }  # fmt: skip
        for mode in ("dense", "lexical")
    }
    runs = {"dense": _fused(lists, "dense"), "lexical": _fused(lists, "lexical")}
    for k in args.rrf_k:
        runs[f"rrf k={k}"] = _fused(lists, "rrf", k=k)
    for w in (float(x) for x in args.weights.split(",")):
        runs[f"weighted dense={w:g}"] = _fused(lists, "weighted", weights=[w, 1 - w])
    results = _score(data, runs)
    common.report(NAME, args, header, [_table(data, args, results)], results)


def _fused(lists: dict[str, dict[str, Any]], how: str, **params: Any) -> dict[str, list[str]]:
    """Query -> ranked doc ids: one first stage alone, or both fused as search fuses them."""
    from searchkit.query.fusion import rrf, weighted

    if how in lists:
        return {q: [h.id for h in hits] for q, hits in lists[how].items()}
    out = {}
    for q in lists["dense"]:
        hits = [lists["dense"][q], lists["lexical"][q]]
        ids = sorted({h.id for h in hits[0]} | {h.id for h in hits[1]})
        number = {doc: n for n, doc in enumerate(ids)}
        ranked = [
            (np.array([[h.retrieval_score for h in hs]], dtype=np.float64).reshape(1, -1),
             np.array([[number[h.id] for h in hs]], dtype=np.int64).reshape(1, -1))
            for hs in hits
        ]  # fmt: skip
        depth = max(len(hits[0]), len(hits[1]))
        fn = rrf if how == "rrf" else weighted
        _, refs = fn(ranked, depth, **params)
        out[q] = [ids[r] for r in refs[0] if r >= 0][:depth]
    return out


def _score(data: Any, runs: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    from searchkit.eval.metrics import score_run

    def ranked(ids: list[str]) -> dict[str, float]:
        return {doc: float(len(ids) - i) for i, doc in enumerate(ids)}

    return {
        name: score_run(data.qrels, {q: ranked(ids) for q, ids in run.items()})
        for name, run in runs.items()
    }


def _table(data: Any, args: Any, results: dict[str, Any]) -> common.Table:
    table = common.Table(
        f"{data.name} {args.split}: {len(data.queries)} queries, first stages top {args.depth}",
        ["run", "nDCG@10", "MRR@10", "Recall@10", "Recall@100", "nDCG@10 vs dense"],
        note="vs dense = nDCG@10 / dense nDCG@10; weighted: min-max per list, dense share given.",
    )
    base = results["dense"]["nDCG@10"]
    for name, m in results.items():
        table.add(name, m["nDCG@10"], m["MRR@10"], m["Recall@10"], m["Recall@100"],
                  common.ratio(m["nDCG@10"], base))  # fmt: skip
    return table


if __name__ == "__main__":
    sys.exit(main())
