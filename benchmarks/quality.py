"""Retrieval quality on BEIR datasets: BM25 baseline, searchkit retrieval, searchkit + rerank.

Baseline: bm25s (Lucene BM25, k1=1.5, b=0.75) over ``title + " " + text`` with the PyStemmer
English stemmer and English stopwords, top 100 per query. searchkit: ``searchkit.eval.evaluate``
on the dataset's index (built or reused, see ``--index-dir``; first stage ``--mode``, by default
the index's: hybrid for an index with BM25), retrieval alone (top 100) and
reranked (top ``--candidates`` reranked, the rest of the top 100 below them, as BEIR does).
Every run is scored by ``searchkit.eval.metrics.score_run`` (trec_eval); latency is per query,
one query at a time, for all three.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import benchdata
import common

from searchkit.defaults import DEFAULT_CANDIDATES
from searchkit.eval.metrics import METRICS

NAME = "quality"
BM25_DEPTH = 100
HEADLINE = METRICS


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser, many=True)
    common.add_reranker(parser)
    parser.add_argument(
        "--candidates", type=int, default=DEFAULT_CANDIDATES, help="documents reranked"
    )
    parser.add_argument("--no-rerank", action="store_true", help="skip the rerank stage")
    parser.add_argument("--index-dir", type=Path, default=None, help="default: indexes/")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the indexes")
    parser.add_argument("--backend", default="faiss", help="backend of built indexes")
    parser.add_argument("--kind", default=None, help="kind of built indexes")
    parser.add_argument(
        "--mode", default=None, help="first stage: dense, lexical or hybrid (default: the index's)"
    )
    args, header = common.start(parser, NAME)
    roots = args.dataset or _all_datasets(args.split)
    if not roots:
        sys.exit(f"error: no BEIR dataset with a {args.split} split under {common.BEIR_ROOT}")
    results = {}
    for root in roots:
        data = benchdata.load_dataset(root, args.split, args.limit)
        common.note(f"{data.name}: {len(data.queries)} queries")
        results[data.name] = _dataset(data, args)
    common.report(NAME, args, header, [_table(name, r) for name, r in results.items()], results)


def _all_datasets(split: str) -> list[Path]:
    root = common.BEIR_ROOT
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "qrels" / f"{split}.tsv").is_file())


def _dataset(data: Any, args: Any) -> dict[str, Any]:
    """BM25, retrieval and rerank metrics, latencies, and ratios to BM25."""
    from searchkit.eval.evaluate import evaluate

    systems = {"bm25s": bm25(data)}
    path = args.index_dir / data.name if args.index_dir else None
    index = benchdata.bench_index(
        data, path, rebuild=args.rebuild, backend=args.backend, kind=args.kind
    )
    result = evaluate(
        index,
        data,
        candidates=args.candidates,
        rerank=not args.no_rerank,
        reranker=str(args.reranker),
        progress=sys.stderr.isatty(),
        mode=args.mode,
    )
    for stage, metrics in result.metrics.items():
        label = "searchkit retrieve" if stage == "retrieval" else "searchkit rerank"
        systems[label] = {"metrics": metrics, "latency_ms": result.latency_ms.get(stage, {})}
    base = systems["bm25s"]["metrics"]
    for system in systems.values():
        system["vs_bm25"] = {m: common.ratio(v, base.get(m)) for m, v in system["metrics"].items()}
    return {
        "queries": len(data.queries),
        "index": str(index),
        "candidates": args.candidates,
        "search": result.search,
        "reranker": result.reranker,
        "notes": result.notes,
        "systems": systems,
    }


def bm25(data: Any) -> dict[str, Any]:
    """The bm25s baseline: index the corpus, then retrieve one query at a time (timed)."""
    import bm25s
    import Stemmer

    from searchkit.eval.metrics import score_run
    from searchkit.ingest.corpus import CorpusReader

    stemmer = Stemmer.Stemmer("english")
    ids, texts = [], []
    for doc in CorpusReader(data.corpus):
        ids.append(doc.id)
        texts.append(f"{doc.title} {doc.text}")
    retriever, index_seconds = common.timed(_bm25_index, texts, stemmer)
    depth = min(BM25_DEPTH, len(ids))
    run, seconds = {}, []
    for qid, text in data.queries.items():
        (rows, scores), elapsed = common.timed(_bm25_query, retriever, text, stemmer, depth)
        run[qid] = {ids[r]: float(s) for r, s in zip(rows, scores, strict=True)}
        seconds.append(elapsed)
    return {
        "metrics": score_run(data.qrels, run),
        "latency_ms": common.percentiles(seconds),
        "index_seconds": index_seconds,
        "params": {"method": retriever.method, "k1": retriever.k1, "b": retriever.b},
        "bm25s_version": bm25s.__version__,
    }


def _bm25_index(texts: list[str], stemmer: Any) -> Any:
    import bm25s

    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    return retriever


def _bm25_query(retriever: Any, text: str, stemmer: Any, depth: int) -> tuple[Any, Any]:
    import bm25s

    tokens = bm25s.tokenize([text], stopwords="en", stemmer=stemmer, show_progress=False)
    rows, scores = retriever.retrieve(tokens, k=depth, show_progress=False, n_threads=1)
    return rows[0], scores[0]


def _table(name: str, r: dict[str, Any]) -> common.Table:
    table = common.Table(
        f"{name}: {r['queries']} queries, first stage {r['search']['mode']}, rerank top "
        f"{r['candidates']} with {r['reranker']}",
        ["system", *HEADLINE, "nDCG@10 vs BM25", "p50 ms", "p95 ms"],
        note="vs BM25 = metric / bm25s metric; latency per query, one query at a time "
        "(bm25s: tokenize + retrieve; searchkit: the whole Searcher.search).",
    )
    for system, s in r["systems"].items():
        m, lat = s["metrics"], s["latency_ms"]
        ndcg_ratio = s["vs_bm25"].get("nDCG@10")
        table.add(system, *(m.get(k) for k in HEADLINE), ndcg_ratio, lat.get("p50"), lat.get("p95"))
    return table


if __name__ == "__main__":
    main()
