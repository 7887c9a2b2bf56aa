"""Ray ingest throughput: docs/s with 1 and 2 embedding workers against a plain build_index.

Baseline: ``build_index(corpus)`` (what ``searchkit index`` runs), one process with torch's
default threads. searchkit on Ray: ``searchkit.distributed.ingest.ingest(corpus, shards=N,
address="local", workers=W)`` for each ``--workers`` value: a fresh local Ray instance with the
machine's CPUs, W embedding actors of one CPU each (so one torch thread each), read tasks,
``--shards`` shard tasks, commit. Every run is a fresh spawned process, one after another; with
``--repeats`` the order reverses every round (ABC CBA ...), so a machine that gets busier or
quieter during the run weighs on every side alike, and medians are reported. Reported: the embed
phase (first block started to last block written, model loads
excluded, as build_index's ``docs_per_second``) and end to end (Ray start-up, actor start-up and
model loads, shards, commit), each as seconds, docs/s and the ratio to the baseline.

Both sides build what ``searchkit index`` builds by default, BM25 and chunking included
(``--lexical``, ``--chunk-tokens``: the same on both sides). Quality: each built index answers
the dataset's queries in dense, lexical and hybrid mode (no rerank), scored by nDCG@10; a
sharded index's BM25 uses index-wide statistics, so its figures equal the plain build's (up to
the vectors' rounding, which differs with the batches each side embeds).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import benchdata
import common

NAME = "ray_ingest"


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser)
    parser.add_argument("--workers", type=common.int_list, default=[1, 2], help="e.g. 1,2")
    parser.add_argument("--shards", type=int, default=2, help="shards of each Ray ingest")
    parser.add_argument("--backend", default="faiss", help="faiss, hnswlib or exact")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")
    parser.add_argument("--block-docs", type=int, default=256, help="corpus lines per block")
    parser.add_argument("--repeats", type=int, default=1, help="rounds, order reversed each")
    parser.add_argument("--lexical", default="bm25", help="bm25 or none, on both sides")
    parser.add_argument("--chunk-tokens", type=int, default=None, help="tokens per passage")
    args, header = common.start(parser, NAME)
    dataset = benchdata.load_dataset(args.dataset, args.split, args.limit)
    sides = [0, *args.workers]  # 0: the baseline
    runs: dict[int, list[dict[str, Any]]] = {side: [] for side in sides}
    for i in range(args.repeats):
        for workers in sides if i % 2 == 0 else sides[::-1]:
            label = "baseline build_index" if not workers else f"Ray, {workers} worker(s)"
            common.note(f"{label}, round {i + 1}/{args.repeats} ...")
            job = build if not workers else ray_ingest
            scratch = benchdata.workdir()
            opts = {**vars(args), "queries": dataset.queries, "qrels": dataset.qrels}
            runs[workers].append(common.in_child(job, dataset.corpus, scratch, workers, opts))
    results = _summarize(runs, args)
    common.report(NAME, args, header, _tables(results), results)


def build(corpus: Path, scratch: Path, _workers: int, opts: dict[str, Any]) -> dict[str, Any]:
    """Child process: a plain build_index (the shards' settings), timed, then its quality."""
    import torch

    from searchkit import build_index

    common.apply_threads(opts["threads"])
    report = build_index(
        corpus,
        scratch / "baseline",
        backend=opts["backend"],
        lexical=opts["lexical"],
        chunk_tokens=opts["chunk_tokens"],
        batch_size=opts["batch_size"],
        force=True,
        progress=False,
    )
    return {
        "run": "baseline build_index",
        "workers": 1,
        "threads_per_worker": torch.get_num_threads(),
        "documents": report.manifest.documents,
        "passages": report.manifest.passage_counts(),
        "embed_seconds": report.embed_seconds,
        "seconds": report.seconds,
        "ndcg@10": _quality(report.path, opts),
    }


def ray_ingest(corpus: Path, scratch: Path, workers: int, opts: dict[str, Any]) -> dict[str, Any]:
    """Child process: a sharded ingest on a fresh local Ray instance, timed."""
    from searchkit.distributed.ingest import ingest

    report = ingest(
        corpus,
        scratch / f"ray-{workers}",
        shards=opts["shards"],
        address="local",
        workers=workers,
        backend=opts["backend"],
        lexical=opts["lexical"],
        chunk_tokens=opts["chunk_tokens"],
        batch_size=opts["batch_size"],
        block_docs=opts["block_docs"],
        force=True,
        progress=False,
    )
    return {
        "run": f"Ray, {workers} worker(s)",
        "workers": report.workers,
        "threads_per_worker": report.manifest.ingest.get("worker_threads"),
        "documents": report.manifest.documents,
        "passages": report.manifest.passage_counts(),
        "blocks": report.blocks,
        "shards": len(report.manifest.shards),
        "embed_seconds": report.embed_seconds,
        "seconds": report.seconds,
        "ndcg@10": _quality(report.path, opts),
    }


def _quality(path: Path, opts: dict[str, Any]) -> dict[str, float]:
    """nDCG@10 of the index at ``path`` per mode (dense, and lexical and hybrid with BM25)."""
    from searchkit import Searcher
    from searchkit.eval.metrics import score_run

    searcher = Searcher.open(path)
    qids = list(opts["queries"])
    texts = [opts["queries"][q] for q in qids]
    modes = ("dense", "lexical", "hybrid") if opts["lexical"] != "none" else ("dense",)
    out = {}
    for mode in modes:
        found = searcher.search_batch(texts, k=10, rerank=False, mode=mode)
        run = {q: {h.id: h.score for h in hits} for q, hits in zip(qids, found, strict=True)}
        out[mode] = score_run(opts["qrels"], run)["nDCG@10"]
    searcher.close()
    return out


def _summarize(runs: dict[int, list[dict[str, Any]]], args: Any) -> dict[str, Any]:
    """Per side: the median seconds over the rounds, docs/s and the ratios to the baseline."""
    medians = []
    for side in runs.values():
        run = dict(side[0])
        for key in ("embed_seconds", "seconds"):
            run[key] = statistics.median(r[key] for r in side)
            run[f"{key}_each"] = [r[key] for r in side]
        medians.append(run)
    base = medians[0]
    for run in medians:
        docs = run["documents"]
        run["embed_docs_per_second"] = docs / run["embed_seconds"]
        run["end_to_end_docs_per_second"] = docs / run["seconds"]
        run["embed_vs_baseline"] = common.ratio(
            run["embed_docs_per_second"], base["embed_docs_per_second"]
        )
        run["end_to_end_vs_baseline"] = common.ratio(
            run["end_to_end_docs_per_second"], base["end_to_end_docs_per_second"]
        )
    order = f"{args.repeats} round(s), order reversed every round (ABC CBA ...)"
    docs = base["documents"]
    # quality is the same every round (the same index): the first round's, and the largest
    # difference from the plain build's over the sharded runs and modes
    gap = max(
        abs(run["ndcg@10"][mode] - base["ndcg@10"][mode])
        for run in medians[1:]
        for mode in base["ndcg@10"]
    )
    return {
        "documents": docs,
        "passages": base["passages"],
        "backend": args.backend,
        "lexical": args.lexical,
        "chunk_tokens": args.chunk_tokens,
        "order": order,
        "runs": medians,
        "max_ndcg_difference": gap,
    }


def _tables(r: dict[str, Any]) -> list[common.Table]:
    table = common.Table(
        f"Ingest of {r['documents']:,} documents ({r['backend']})",
        [
            "run",
            "workers",
            "threads/worker",
            "embed s",
            "embed docs/s",
            "vs baseline",
            "end-to-end s",
            "end-to-end docs/s",
            "vs baseline",
        ],
        note="embed: first block started to last block written (model loads excluded); "
        "end to end: the whole call, Ray and actor start-up, model loads, shards and commit. "
        f"Medians over {r['order']}.",
    )
    modes = list(r["runs"][0]["ndcg@10"])
    quality = common.Table(
        f"nDCG@10, plain against sharded ({r['lexical']}, no rerank)",
        ["run", "shards", *modes],
        note="a sharded index scores BM25 with index-wide statistics; largest difference "
        f"from the plain build: {r['max_ndcg_difference']:.4f}",
    )
    for run in r["runs"]:
        table.add(
            run["run"],
            run["workers"],
            run["threads_per_worker"],
            run["embed_seconds"],
            run["embed_docs_per_second"],
            run["embed_vs_baseline"],
            run["seconds"],
            run["end_to_end_docs_per_second"],
            run["end_to_end_vs_baseline"],
        )
        quality.add(run["run"], run.get("shards", 1), *(run["ndcg@10"][m] for m in modes))
    return [table, quality]


if __name__ == "__main__":
    main()
