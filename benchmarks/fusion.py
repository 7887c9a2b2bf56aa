"""Hybrid fusion settings swept on one split: RRF k and the weighted dense share.

Each judged query is retrieved once per first stage (dense and lexical, top 100:
``searchkit.eval.suite.first_stages``), then fused with RRF for every ``--rrf-k`` and weighted
fusion for every ``--weights`` value, exactly as a hybrid search fuses them, and every run is
scored by ``searchkit.eval.metrics.score_run``. ``benchmarks/suite.py`` does the same over
several datasets and every fusion. Meant for the
train split, so the defaults are chosen on queries the test figures do not use. Baselines in
the same run: dense alone and lexical alone.
"""

from __future__ import annotations

import sys
from typing import Any

import benchdata
import common

NAME = "fusion"


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser)
    common.add_index(parser)
    parser.add_argument(
        "--rrf-k", type=common.int_list, default=[1, 10, 20, 40, 60, 100, 200], help="RRF k"
    )
    parser.add_argument(
        "--weights", type=str, default="0.2,0.3,0.4,0.5,0.6,0.7,0.8", help="dense shares"
    )
    args, header = common.start(parser, NAME)
    from searchkit.eval.suite import first_stages
    from searchkit.query.searcher import Searcher

    data = benchdata.load_dataset(args.dataset, args.split, args.limit)
    stages = first_stages(Searcher.open(benchdata.bench_index(data, args.index)), data)
    settings = {"dense": {"mode": "dense"}, "lexical": {"mode": "lexical"}}
    for k in args.rrf_k:
        settings[f"rrf k={k}"] = {"mode": "hybrid", "fusion": "rrf", "rrf_k": k}
    for w in (float(x) for x in args.weights.split(",")):
        settings[f"weighted dense={w:g}"] = {"mode": "hybrid", "fusion": "weighted", "weight": w}
    results = {name: stages.score(options) for name, options in settings.items()}
    common.report(NAME, args, header, [_table(data, args, results)], results)


def _table(data: Any, args: Any, results: dict[str, Any]) -> common.Table:
    table = common.Table(
        f"{data.name} {args.split}: {len(data.queries)} queries, first stages top 100",
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
