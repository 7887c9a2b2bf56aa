"""IR metrics with trec_eval (pytrec_eval), the way BEIR and MTEB report them."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

Run = Mapping[str, Mapping[str, float]]
METRICS = ("nDCG@10", "MRR@10", "Recall@10", "Recall@100", "MAP@100")
_TREC = {
    "nDCG@10": "ndcg_cut_10",
    "Recall@10": "recall_10",
    "Recall@100": "recall_100",
    "MAP@100": "map_cut_100",
}


def score_run(qrels: Mapping[str, Mapping[str, int]], run: Run) -> dict[str, float]:
    """Mean of each metric over every judged query (a query missing from ``run`` scores 0).

    MRR@10 is trec_eval's reciprocal rank over each query's top 10.
    """
    import pytrec_eval

    run = {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items() if q in qrels}
    evaluator = pytrec_eval.RelevanceEvaluator(
        dict(qrels), {"ndcg_cut.10", "recall.10,100", "map_cut.100"}
    )
    per_query = evaluator.evaluate(run)
    top10 = {q: dict(sorted(docs.items(), key=lambda x: -x[1])[:10]) for q, docs in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(dict(qrels), {"recip_rank"}).evaluate(top10)
    scores = {}
    for name in METRICS:
        key, source = ("recip_rank", rr) if name == "MRR@10" else (_TREC[name], per_query)
        scores[name] = float(np.sum([source[q][key] for q in source]) / len(qrels))
    return scores


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99 and mean of durations, in milliseconds."""
    ms = np.asarray(seconds) * 1000
    return {
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "mean": float(ms.mean()),
    }
