"""Chinese retrieval quality (dense, BM25 per analyzer, hybrid, reranked) and analyzer throughput.

Datasets: drcd-sent (Traditional script, under ../shared) and the Simplified-Chinese sets of
corpora/ (zh-shop, zh-tech), or --dataset. Each index is built with the defaults alone
(``build_index(corpus, out)``: the language detected, its analyzer and encoder) under
--index-dir, or reused when it is already there, and evaluated by ``searchkit.eval.evaluate``
with the default options (first stage hybrid), then with ``mode`` dense and lexical (the
index's BM25), and reranked (top ``candidates`` by --reranker; the shared reranker is
English-trained). Beside it, bm25s scores BM25 over the terms of each analyzer (``zh``, ``cjk``:
character bigrams, ``en``) with searchkit's settings (Lucene, k1=1.5, b=0.75), top 100 over
``title + " " + text``. Every run is scored by trec_eval (``score_run``).

Checks per dataset: the index's zh BM25 at least matches the bigram BM25, the default hybrid
at least the better of dense and lexical, and the index was built with the defaults.
Throughput: ``get_analyzer(name).tokens(texts)`` over the first --throughput-texts passages of
the first dataset, each analyzer on the same texts, best of three (texts/s, chars/s, vs en).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import benchdata
import common

NAME = "chinese"
BM25_DEPTH = 100
ANALYZERS = ("zh", "cjk", "en")
BIGRAMS = "bm25s cjk (character bigrams)"
# the BM25 baselines: label -> (analyzer, options); the zh variants show what each part adds
# (the default zh: words and characters, a query's words weighing 2; chosen on the dev splits,
# --dev)
BASELINES = {
    "bm25s zh": ("zh", {}),
    "bm25s zh, words only": ("zh", {"unigrams": False}),
    "bm25s zh, words + characters, query words x1": ("zh", {"word_weight": 1}),
    "bm25s zh, words + characters, query words x3": ("zh", {"word_weight": 3}),
    "bm25s zh, words + bigrams + characters, x1": ("zh", {"bigrams": True, "word_weight": 1}),
    "bm25s zh, words + bigrams + characters, x2": ("zh", {"bigrams": True}),
    BIGRAMS: ("cjk", {}),
    "bm25s en": ("en", {}),
}
METRICS = ("nDCG@10", "Recall@100", "MRR@10")
CORPORA = common.REPO / "corpora"


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser, many=True)
    common.add_reranker(parser)
    parser.add_argument("--dev", action="store_true", help="also the dev split (tune there)")
    parser.add_argument("--no-rerank", action="store_true", help="skip the rerank stage")
    parser.add_argument(
        "--rerank-queries", type=int, default=500, help="rerank on the first N queries of a split"
    )
    parser.add_argument("--index-dir", type=Path, default=common.REPO / "indexes")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the indexes")
    parser.add_argument("--throughput-texts", type=int, default=5000, help="texts analyzed")
    args, header = common.start(parser, NAME)
    roots = args.dataset or default_datasets()
    splits = [args.split, *(["dev"] if args.dev and args.split != "dev" else [])]
    runs: dict[str, Any] = {}
    for root in roots:
        data, built = None, {}
        for split in splits:
            data = benchdata.load_dataset(root, split, args.limit)
            common.note(f"{data.name} {split}: {len(data.queries)} queries")
            built = built or build(data, args)
            runs[f"{data.name} {split}"] = dataset(data, built, args)
    texts = benchdata.passages(benchdata.load_dataset(roots[0], args.split, args.limit).corpus)
    throughput = analyzer_throughput(texts[: args.throughput_texts])
    results = {"datasets": runs, "throughput": throughput}
    tables = [quality_table(name, r) for name, r in runs.items()]
    common.report(
        NAME, args, header, [*tables, checks_table(runs), speed_table(throughput)], results
    )


def default_datasets() -> list[Path]:
    shared = common.BEIR_ROOT / "drcd-sent"
    return [*([shared] if shared.is_dir() else []), CORPORA / "zh-shop", CORPORA / "zh-tech"]


def build(data: Any, args: Any) -> dict[str, Any]:
    """The dataset's index, built with defaults only (or reused), and its BM25 baselines'
    document terms; what the build chose (language, analyzer, encoder) and whether those are
    the defaults for the detected language."""
    from searchkit import Manifest
    from searchkit.eval.evaluate import ensure_index
    from searchkit.inference.catalog import default_encoder

    path = args.index_dir / data.name
    common.note(f"index: {path} (built unless it already indexes {data.corpus})")
    ensure_index(data, path, force=args.rebuild, progress=sys.stderr.isatty())
    manifest = Manifest.read(path)
    analyzer = (manifest.lexical.analyzer or {"name": "en"}) if manifest.lexical else None
    language = analyzer["name"] if analyzer else None
    encoder = manifest.encoder.name
    ids, texts = [], []
    for doc in _corpus(data.corpus):
        ids.append(doc.id)
        texts.append(doc.passage())
    baselines = {label: bm25_index(*spec, texts) for label, spec in BASELINES.items()}
    return {
        "index": path,
        "analyzer": analyzer,
        "encoder": encoder,
        "defaults": language is not None and encoder == default_encoder(language),
        "ids": ids,
        "baselines": baselines,
    }


def _corpus(path: Path) -> Any:
    from searchkit.ingest.corpus import CorpusReader

    return CorpusReader(path)


def bm25_index(analyzer: str, options: dict[str, Any], texts: list[str]) -> tuple[Any, Any]:
    """bm25s over the terms ``analyzer`` with ``options`` makes of ``texts``: (retriever,
    analyzer)."""
    import bm25s

    from searchkit.analysis import get_analyzer

    made = get_analyzer(analyzer, **options)
    retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    retriever.index(made.tokens(texts), show_progress=False)
    return retriever, made


def bm25_run(built: dict[str, Any], label: str, queries: dict[str, str]) -> dict[str, Any]:
    """Top ``BM25_DEPTH`` by bm25s for every query (documents scoring 0 left out)."""
    retriever, made = built["baselines"][label]
    ids = built["ids"]
    depth = min(BM25_DEPTH, len(ids))
    run: dict[str, dict[str, float]] = {}
    for qid, query in queries.items():
        # bm25s sums a repeated query token: the analyzer's (whole) term weights as repeats
        weights = made.query_terms(query)
        assert all(w == int(w) for w in weights.values()), weights
        tokens = [t for t, w in weights.items() for _ in range(int(w))]
        if not tokens:
            run[qid] = {}
            continue
        rows, scores = retriever.retrieve([tokens], k=depth, show_progress=False, n_threads=1)
        run[qid] = {ids[r]: float(s) for r, s in zip(rows[0], scores[0], strict=True) if s > 0}
    return run


def dataset(data: Any, built: dict[str, Any], args: Any) -> dict[str, Any]:
    """Every system's metrics on one split, and the checks."""
    from searchkit.eval.evaluate import evaluate
    from searchkit.eval.metrics import score_run

    index, progress = built["index"], sys.stderr.isatty()
    rerank = not args.no_rerank and args.reranker.exists()
    whole = rerank and len(data.queries) <= args.rerank_queries
    reranker = str(args.reranker) if rerank else None
    default = evaluate(index, data, rerank=whole, reranker=reranker, progress=progress)
    mode = default.search["mode"]
    systems: dict[str, dict[str, Any]] = {}
    for other in ("dense", "lexical"):
        result = evaluate(index, data, mode=other, rerank=False, progress=progress)
        label = f"lexical ({built['analyzer']['name']})" if other == "lexical" else other
        systems[f"searchkit {label}"] = _system(result, "retrieval")
    systems[f"searchkit {mode} (default)"] = _system(default, "retrieval")
    if whole:
        systems[f"searchkit {mode} + rerank"] = _system(default, "rerank")
    elif rerank:
        systems.update(rerank_systems(index, _first(data, args.rerank_queries), reranker, mode))
    for label in BASELINES:
        run = bm25_run(built, label, data.queries)
        systems[label] = {"metrics": score_run(data.qrels, run), "latency_ms": {}}
    return {
        "queries": len(data.queries),
        "index": built["index"],
        "encoder": built["encoder"],
        "analyzer": built["analyzer"],
        "search": default.search,
        "reranker": reranker,
        "candidates": default.candidates,
        "notes": default.notes,
        "systems": systems,
        "checks": checks(systems, built, mode),
    }


def rerank_systems(index: Path, data: Any, reranker: str, mode: str) -> dict[str, Any]:
    """The default first stage and the reranked one on ``data`` (a large split's first
    queries: the rerank stage is slow on 2 cores)."""
    from searchkit.eval.evaluate import evaluate

    result = evaluate(index, data, reranker=reranker, rerank=True, progress=sys.stderr.isatty())
    first = f", first {len(data.queries)} queries"
    return {
        f"searchkit {mode}{first}": _system(result, "retrieval"),
        f"searchkit {mode} + rerank{first}": _system(result, "rerank"),
    }


def _first(data: Any, n: int) -> Any:
    """``data`` cut to its first ``n`` judged queries."""
    from dataclasses import replace

    qids = list(data.queries)[:n]
    return replace(
        data, queries={q: data.queries[q] for q in qids}, qrels={q: data.qrels[q] for q in qids}
    )


def _system(result: Any, stage: str) -> dict[str, Any]:
    return {"metrics": result.metrics[stage], "latency_ms": result.latency_ms.get(stage, {})}


def checks(systems: dict[str, Any], built: dict[str, Any], mode: str) -> dict[str, Any]:
    """The issue's bar on nDCG@10: zh BM25 >= bigram BM25, hybrid >= max(dense, lexical)."""

    def ndcg(label: str) -> float:
        return systems[label]["metrics"]["nDCG@10"]

    lexical = next(label for label in systems if label.startswith("searchkit lexical"))
    best_single = max(ndcg("searchkit dense"), ndcg(lexical))
    return {
        "zh_bm25_vs_bigrams": ndcg(lexical) - ndcg(BIGRAMS),
        "default_vs_best_single": ndcg(f"searchkit {mode} (default)") - best_single,
        "built_with_defaults": built["defaults"] and built["analyzer"]["name"] == "zh",
        "default_mode": mode,
    }


def analyzer_throughput(texts: list[str]) -> dict[str, Any]:
    """texts/s and chars/s of each analyzer's ``tokens`` on the same texts (best of 3)."""
    from searchkit.analysis import get_analyzer

    chars = sum(len(t) for t in texts)
    out: dict[str, Any] = {"texts": len(texts), "chars": chars}
    for name in ANALYZERS:
        analyzer = get_analyzer(name)
        analyzer.tokens(texts[:50])  # load the dictionary and converters first
        runs = [common.timed(analyzer.tokens, texts) for _ in range(3)]
        seconds = min(s for _, s in runs)
        terms = sum(len(t) for t in runs[0][0])
        out[name] = {
            "seconds": seconds,
            "texts_per_second": len(texts) / seconds,
            "chars_per_second": chars / seconds,
            "terms_per_text": terms / max(len(texts), 1),
        }
    for name in ANALYZERS:
        out[name]["vs_en"] = common.ratio(
            out[name]["texts_per_second"], out["en"]["texts_per_second"]
        )
    return out


def quality_table(name: str, r: dict[str, Any]) -> common.Table:
    rerank = (
        f", rerank top {r['search'].get('candidates')} with {r['reranker']}"
        if r["reranker"]
        else ""
    )
    table = common.Table(
        f"{name}: {r['queries']} queries, encoder {r['encoder']}, analyzer "
        f"{r['analyzer']['name']}{rerank}",
        ["system", *METRICS, "nDCG@10 vs bigrams", "p50 ms"],
        note="vs bigrams = nDCG@10 / bm25s over character bigrams (analyzer cjk); latency per "
        "query, one at a time, the whole Searcher.search (bm25s baselines are not timed).",
    )
    base = r["systems"][BIGRAMS]["metrics"]["nDCG@10"]
    for system, s in r["systems"].items():
        m = s["metrics"]
        ratio = common.ratio(m["nDCG@10"], base)
        table.add(system, *(m.get(k) for k in METRICS), ratio, s["latency_ms"].get("p50"))
    return table


def checks_table(runs: dict[str, Any]) -> common.Table:
    table = common.Table(
        "checks (nDCG@10 differences; the bar: both >= 0, built with defaults)",
        ["dataset", "zh BM25 - bigram BM25", "default - max(dense, lexical)", "defaults", "mode"],
    )
    for name, r in runs.items():
        c = r["checks"]
        row = (c["zh_bm25_vs_bigrams"], c["default_vs_best_single"], c["built_with_defaults"])
        table.add(name, *row, c["default_mode"])
    return table


def speed_table(t: dict[str, Any]) -> common.Table:
    table = common.Table(
        f"analyzer throughput: {t['texts']:,} texts, {t['chars']:,} characters, one thread",
        ["analyzer", "texts/s", "chars/s", "terms per text", "vs en"],
    )
    for name in ANALYZERS:
        s = t[name]
        table.add(
            name, s["texts_per_second"], s["chars_per_second"], s["terms_per_text"], s["vs_en"]
        )
    return table


if __name__ == "__main__":
    main()
