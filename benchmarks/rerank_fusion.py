"""nDCG@10 of reranking with the reranker's scores fused into the first stage's, per weight.

Each judged query's top ``--candidates`` first-stage hits (``--mode``, default the index's) are
scored by the reranker once, in batches; then for every ``--weights`` value ``w`` they are
ranked by ``searchkit.query.fusion.blend_rerank`` (``w * reranker + (1 - w) * first stage``, each
min-max normalized over the candidates; ``w = 1`` is plain reranking, ``w = 0`` the first
stage), the rest of the top 100 kept below them in first-stage order, and scored with
trec_eval, exactly as ``searchkit eval --rerank-weight w`` ranks and scores them (without its
per-query timing). Use it to compare weights; pick one on a training split, not on test.
"""

from __future__ import annotations

from typing import Any

import benchdata
import common

NAME = "rerank_fusion"
DEPTH = 100


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser)
    common.add_reranker(parser)
    common.add_index(parser)
    parser.add_argument("--candidates", type=int, default=20, help="hits the reranker scores")
    parser.add_argument(
        "--weights", type=_floats, default=[0.0, 0.3, 0.5, 0.7, 1.0], help="reranker shares"
    )
    parser.add_argument("--mode", default=None, help="first stage (default: the index's)")
    args, header = common.start(parser, NAME)
    from searchkit.inference.reranker import Reranker
    from searchkit.query.searcher import Searcher

    data = benchdata.load_dataset(args.dataset, args.split, args.limit)
    # an existing index is used as is (a re-embedded one was built from an exported corpus)
    given = args.index is not None and (args.index / "manifest.json").is_file()
    searcher = Searcher.open(args.index if given else benchdata.bench_index(data, args.index))
    ids = list(data.queries)
    hits = searcher.search_batch(
        [data.queries[q] for q in ids], DEPTH, rerank=False, mode=args.mode
    )
    pairs = [
        (data.queries[q], _passage(h))
        for q, hs in zip(ids, hits, strict=True)
        for h in hs[: args.candidates]
    ]
    (scores, seconds) = common.timed(Reranker(str(args.reranker)).score, pairs)
    common.note(f"scored {len(pairs)} pairs in {seconds:.0f} s")
    results: dict[str, Any] = {
        "mode": searcher.resolve_mode(args.mode),
        "pairs": len(pairs),
        "score_seconds": seconds,
        "ndcg10": {
            str(w): _ndcg(data, ids, hits, scores, args.candidates, w) for w in args.weights
        },
    }
    table = common.Table(
        f"nDCG@10 by reranker weight ({data.name} {args.split}, {len(ids)} queries, "
        f"{results['mode']} top {args.candidates}, reranker {args.reranker})",
        ["weight", "nDCG@10"],
    )
    for w, value in results["ndcg10"].items():
        table.add(w, value)
    common.report(NAME, args, header, [table], results)


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def _passage(hit: Any) -> str:
    from searchkit.models import Document

    return Document(hit.id, hit.text, hit.title).passage()  # as the searcher reranks it


def _ndcg(data: Any, ids: list[str], hits: list[Any], scores: Any, n: int, w: float) -> float:
    import numpy as np

    from searchkit.eval.metrics import score_run
    from searchkit.query.fusion import blend_rerank

    run, start = {}, 0
    for q, hs in zip(ids, hits, strict=True):
        head = hs[:n]
        ce = scores[start : start + len(head)]
        start += len(head)
        fused = blend_rerank(ce, np.asarray([h.retrieval_score for h in head]), w)
        order = [head[i] for i in np.argsort(-fused, kind="stable")] + list(hs[n:])
        run[q] = {h.id: float(len(order) - r) for r, h in enumerate(order)}
    return score_run(data.qrels, run)["nDCG@10"]


if __name__ == "__main__":
    main()
