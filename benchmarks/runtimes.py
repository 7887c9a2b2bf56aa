"""Every inference runtime and precision side by side, in one run, on the same texts.

Bi-encoder: docs/s on a fixed sample of passages (rounds alternate the order of the runtimes),
as a ratio to torch-fp32; the cosine of each document's embedding with torch-fp32's (mean and
min over the corpus); nDCG@10 of exact retrieval over the whole corpus with each runtime's
document and query embeddings. Reranker: pairs/s on the (query, candidate) pairs of
--speed-queries queries (alternating), as a ratio to torch-fp32; per-query Spearman correlation
of the scores with torch-fp32's and top-1 agreement; nDCG@10 of reranking the top --candidates of
one fixed first stage (torch-fp32 exact retrieval) for every query. The first load of a runtime
exports (and quantizes) the model into the cache ($SEARCHKIT_CACHE); its time is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import benchdata
import common
import numpy as np

NAME = "runtimes"
ALL = [
    "torch-fp32", "torch-bf16", "torch-int8", "onnx-fp32", "onnx-int8",
    "openvino-fp32", "openvino-bf16", "openvino-int8",
]  # fmt: skip
BASE = "torch-fp32"


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser)
    common.add_reranker(parser)
    lists = {"type": lambda text: [p for p in text.split(",") if p], "default": ALL}
    parser.add_argument("--encoders", **lists, help="bi-encoder runtimes (comma-separated)")
    parser.add_argument("--rerankers", **lists, help="reranker runtimes (comma-separated)")
    parser.add_argument("--speed-docs", type=int, default=256, help="passages timed per round")
    parser.add_argument("--speed-queries", type=int, default=10, help="queries timed per round")
    parser.add_argument("--rounds", type=int, default=2, help="timing rounds (order alternates)")
    parser.add_argument("--candidates", type=int, default=20, help="first-stage hits reranked")
    parser.add_argument(
        "--rerank-queries", type=int, default=None, help="queries reranked for nDCG (default: all)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="texts or pairs per batch")
    args, header = common.start(parser, NAME)
    from searchkit.ingest.corpus import CorpusReader

    data = benchdata.load_dataset(args.dataset, args.split, args.limit)
    docs = list(CorpusReader(data.corpus))
    corpus = {"ids": [d.id for d in docs], "texts": [d.passage() for d in docs]}
    encoders, stage = _encoders(args, data, corpus)
    rerankers = _rerankers(args, data, corpus, stage)
    results = {
        "documents": len(docs),
        "queries": len(data.queries),
        "encoders": encoders,
        "rerankers": rerankers,
    }
    common.report(NAME, args, header, _tables(results, args), results)


def _load(factory: Callable[..., Any], names: list[str], args: Any) -> dict[str, Any]:
    """Each runtime's model, loaded (and exported on first use); the baseline first."""
    models = {}
    for name in [BASE, *(n for n in names if n != BASE)]:
        model = factory(runtime=name, batch_size=args.batch_size)
        _, seconds = common.timed(lambda m=model: m.model)
        common.note(f"{factory.__name__} {name}: loaded in {seconds:.1f} s")
        models[name] = (model, seconds)
    return models


def _alternating(models: dict[str, Any], work: Callable[[Any], Any], rounds: int) -> dict:
    """Seconds per model of ``work(model)``, summed over rounds that alternate the order."""
    seconds = dict.fromkeys(models, 0.0)
    for r in range(rounds):
        for name in list(models)[:: 1 if r % 2 == 0 else -1]:
            seconds[name] += common.timed(work, models[name][0])[1]
    return seconds


def _encoders(args: Any, data: Any, corpus: dict) -> tuple[dict, dict[str, list[str]]]:
    from searchkit.inference.encoder import Encoder

    models = _load(Encoder, args.encoders, args)
    sample = corpus["texts"][: args.speed_docs]
    _alternating(models, lambda m: m.encode_documents(sample[: args.batch_size]), 1)  # warm
    seconds = _alternating(models, lambda m: m.encode_documents(sample), args.rounds)
    qids, qtexts = list(data.queries), list(data.queries.values())
    out, base, stage = {}, None, {}
    for name, (model, load_seconds) in models.items():
        common.note(f"encoder {name}: embedding {len(corpus['texts'])} passages")
        vectors, full_seconds = common.timed(model.encode_documents, corpus["texts"])
        scores = model.encode_queries(qtexts) @ vectors.T
        base = vectors if base is None else base
        cosine = np.einsum("ij,ij->i", vectors, base)
        top = np.argsort(-scores, axis=1)[:, : max(100, args.candidates)]
        run = {q: {corpus["ids"][j]: float(scores[i, j]) for j in row} for i, (q, row) in
               enumerate(zip(qids, top, strict=True))}  # fmt: skip
        if name == BASE:
            stage = {q: [corpus["ids"][j] for j in row[: args.candidates]] for q, row in
                     zip(qids, top, strict=True)}  # fmt: skip
        docs_per_s = len(sample) * args.rounds / seconds[name]
        out[name] = {
            "load_seconds": load_seconds,
            "docs_per_s": docs_per_s,
            "full_corpus_docs_per_s": len(vectors) / full_seconds,
            "cosine_mean": float(cosine.mean()),
            "cosine_min": float(cosine.min()),
            "ndcg10": _ndcg(data, run),
        }
    _ratios(out, "docs_per_s")
    return out, stage


def _rerankers(args: Any, data: Any, corpus: dict, stage: dict[str, list[str]]) -> dict:
    from scipy.stats import spearmanr

    from searchkit.inference.reranker import Reranker

    models = _load(lambda **kw: Reranker(str(args.reranker), **kw), args.rerankers, args)
    passages = dict(zip(corpus["ids"], corpus["texts"], strict=True))
    stage = dict(list(stage.items())[: args.rerank_queries])
    pairs = {q: [(data.queries[q], passages[d]) for d in ds] for q, ds in stage.items()}
    timed = [p for q in list(pairs)[: args.speed_queries] for p in pairs[q]]
    _alternating(models, lambda m: m.score(timed[: args.batch_size]), 1)  # warm
    seconds = _alternating(models, lambda m: m.score(timed), args.rounds)
    out, base = {}, {}
    for name, (model, load_seconds) in models.items():
        common.note(f"reranker {name}: scoring {sum(map(len, pairs.values()))} pairs")
        scored = {q: model.score(p) for q, p in pairs.items()}
        base = base or scored
        rho = [spearmanr(scored[q], base[q]).statistic for q in pairs if len(pairs[q]) > 1]
        top1 = [int(np.argmax(scored[q]) == np.argmax(base[q])) for q in pairs]
        run = {q: dict(zip(stage[q], map(float, s), strict=True)) for q, s in scored.items()}
        out[name] = {
            "load_seconds": load_seconds,
            "pairs_per_s": len(timed) * args.rounds / seconds[name],
            "spearman_mean": float(np.nanmean(rho)) if rho else None,
            "spearman_min": float(np.nanmin(rho)) if rho else None,
            "top1_agreement": float(np.mean(top1)),
            "ndcg10": _ndcg(data, run),
        }
    _ratios(out, "pairs_per_s")
    out["first_stage_ndcg10"] = _ndcg(data, {q: {d: -r for r, d in enumerate(ds)}
                                             for q, ds in stage.items()})  # fmt: skip
    return out


def _ndcg(data: Any, run: dict) -> float:
    from searchkit.eval.metrics import score_run

    return score_run({q: data.qrels[q] for q in run}, run)["nDCG@10"]


def _ratios(out: dict, key: str) -> None:
    """Speed ratio and nDCG@10 change against torch-fp32, in place."""
    base = out[BASE]
    for r in out.values():
        r["speed_ratio"] = common.ratio(r[key], base[key])
        r["ndcg10_change_pct"] = 100 * (r["ndcg10"] / base["ndcg10"] - 1) if base["ndcg10"] else 0


def _tables(r: dict, args: Any) -> list[common.Table]:
    encoders = common.Table(
        f"bi-encoder: {r['documents']} documents, {r['queries']} queries",
        ["runtime", "docs/s", "x torch-fp32", "full docs/s", "cos mean", "cos min", "nDCG@10",
         "nDCG change %", "load s"],
        note=f"docs/s on {args.speed_docs} passages x {args.rounds} alternating rounds; full: one "
        "pass over the corpus; load s includes the first export/quantization (cached after).",
    )  # fmt: skip
    for name, e in r["encoders"].items():
        encoders.add(name, e["docs_per_s"], e["speed_ratio"], e["full_corpus_docs_per_s"],
                     e["cosine_mean"], e["cosine_min"], e["ndcg10"], e["ndcg10_change_pct"],
                     e["load_seconds"])  # fmt: skip
    rr = r["rerankers"]
    rerankers = common.Table(
        f"reranker: top {args.candidates} of torch-fp32 retrieval (nDCG@10 "
        f"{rr['first_stage_ndcg10']:.4f}), {r['queries']} queries",
        ["runtime", "pairs/s", "x torch-fp32", "Spearman mean", "Spearman min", "top-1 agree",
         "nDCG@10", "nDCG change %", "load s"],
        note=f"pairs/s on {args.speed_queries} queries' pairs x {args.rounds} alternating rounds.",
    )  # fmt: skip
    for name, e in rr.items():
        if name != "first_stage_ndcg10":
            rerankers.add(name, e["pairs_per_s"], e["speed_ratio"], e["spearman_mean"],
                          e["spearman_min"], e["top1_agreement"], e["ndcg10"],
                          e["ndcg10_change_pct"], e["load_seconds"])  # fmt: skip
    return [encoders, rerankers]


if __name__ == "__main__":
    main()
