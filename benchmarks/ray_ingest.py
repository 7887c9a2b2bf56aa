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
            runs[workers].append(common.in_child(job, dataset.corpus, scratch, workers, vars(args)))
    results = _summarize(runs, args)
    common.report(NAME, args, header, _tables(results), results)


def build(corpus: Path, scratch: Path, _workers: int, opts: dict[str, Any]) -> dict[str, Any]:
    """Child process: a plain build_index of vectors only (as the shards), timed."""
    import torch

    from searchkit import build_index

    common.apply_threads(opts["threads"])
    report = build_index(
        corpus,
        scratch / "baseline",
        backend=opts["backend"],
        lexical="none",
        batch_size=opts["batch_size"],
        force=True,
        progress=False,
    )
    return {
        "run": "baseline build_index",
        "workers": 1,
        "threads_per_worker": torch.get_num_threads(),
        "documents": report.manifest.documents,
        "embed_seconds": report.embed_seconds,
        "seconds": report.seconds,
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
        "blocks": report.blocks,
        "shards": len(report.manifest.shards),
        "embed_seconds": report.embed_seconds,
        "seconds": report.seconds,
    }


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
    return {"documents": docs, "backend": args.backend, "order": order, "runs": medians}


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
    return [table]


if __name__ == "__main__":
    main()
