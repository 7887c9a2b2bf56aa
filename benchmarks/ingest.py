"""Ingest throughput: searchkit's build_index against a bare SentenceTransformer.encode.

Baseline: ``Encoder(model).model.encode(texts, batch_size, normalize_embeddings=True)`` on the
very texts searchkit embeds (``f"{title} {text}"``, read beforehand, untimed). searchkit: the
whole ``build_index(progress=False)``. Each run happens in a fresh (spawned) child process
that first warms a throwaway model instance on the first ``--warmup`` texts and frees it,
then loads the model again and does the timed work, so both sides start equally warm. The
order alternates over ``--repeats`` (ABBA) and medians are reported. The headline overhead
is build_index's embed phase (read + parse + embed + write vectors and docstore) over the
bare encode, minus 1 (target < 5%).
"""

from __future__ import annotations

import gc
import statistics
from pathlib import Path
from typing import Any

import benchdata
import common

NAME = "ingest"


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser)
    parser.add_argument("--backend", default="faiss", help="faiss, hnswlib or exact")
    parser.add_argument("--kind", default=None, help="flat, hnsw or ivf (backend default)")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="bi-encoder")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")
    parser.add_argument("--warmup", type=int, default=64, help="texts to warm each model on")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side")
    parser.add_argument("--order", choices=["raw-first", "build-first"], default="raw-first")
    args, header = common.start(parser, NAME)
    dataset = benchdata.load_dataset(args.dataset, args.split, args.limit)
    runs: dict[str, list[dict[str, Any]]] = {"raw": [], "build": []}
    for side in _schedule(args.order, args.repeats):
        common.note(f"{side} run {len(runs[side]) + 1}/{args.repeats} ...")
        job = raw_encode if side == "raw" else build
        runs[side].append(common.in_child(job, dataset.corpus, benchdata.workdir(), vars(args)))
    results = _summarize(runs, args)
    common.report(NAME, args, header, _tables(results), results)


def _schedule(order: str, repeats: int) -> list[str]:
    """raw/build runs in ABBA order, so drift during the run hits both sides alike."""
    first, second = ("raw", "build") if order == "raw-first" else ("build", "raw")
    return [side for i in range(repeats) for side in ((first, second)[:: 1 - 2 * (i % 2)])]


def raw_encode(corpus: Path, scratch: Path, opts: dict[str, Any]) -> dict[str, Any]:
    """Child process: warm a throwaway model, then time a fresh one's bare encode of all texts."""
    from searchkit.inference.encoder import Encoder

    warm_rss = _warm_up(corpus, opts)
    texts = benchdata.passages(corpus)
    encoder = Encoder(opts["model"], batch_size=opts["batch_size"])
    model, load_seconds = common.timed(lambda: encoder.model)
    _, seconds = common.timed(_encode, model, texts, opts["batch_size"])
    return {
        "documents": len(texts),
        "seconds": seconds,
        "model_load_seconds": load_seconds,
        "peak_rss_mb": common.peak_rss_mb(),
        "warmup_peak_rss_mb": warm_rss,
        **_threads(),
    }


def build(corpus: Path, scratch: Path, opts: dict[str, Any]) -> dict[str, Any]:
    """Child process: warm a throwaway model, then time a whole build_index."""
    from searchkit import build_index

    warm_rss = _warm_up(corpus, opts)
    report = build_index(
        corpus,
        scratch / "ingest-index",
        model=opts["model"],
        backend=opts["backend"],
        kind=opts["kind"],
        batch_size=opts["batch_size"],
        force=True,
        progress=False,
    )
    m = report.manifest
    return {
        "documents": m.documents,
        "seconds": report.seconds,
        "embed_seconds": report.embed_seconds,
        "backend": m.backend.to_dict(),  # a plain dict for the tables
        "file_bytes": {entry.path: entry.bytes for entry in m.files.values()},
        "peak_rss_mb": common.peak_rss_mb(),
        "warmup_peak_rss_mb": warm_rss,
        **_threads(),
    }


def _warm_up(corpus: Path, opts: dict[str, Any]) -> float:
    """Imports, thread pools and kernels warmed on a model instance that is then freed.

    Returns the peak RSS so far: if the run's peak equals it, the warm-up set the peak.
    """
    from searchkit.inference.encoder import Encoder

    common.apply_threads(opts["threads"])
    warm = Encoder(opts["model"], batch_size=opts["batch_size"])
    _encode(warm.model, benchdata.passages(corpus, opts["warmup"]), opts["batch_size"])
    del warm
    gc.collect()
    return common.peak_rss_mb()


def _encode(model: Any, texts: list[str], batch_size: int) -> Any:
    return model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )


def _threads() -> dict[str, int]:
    import torch

    return {"torch_threads": torch.get_num_threads()}


def _summarize(runs: dict[str, list[dict[str, Any]]], args: Any) -> dict[str, Any]:
    """Medians over repeats, docs/s, overhead ratios and index bytes per document."""
    raw, built = runs["raw"], runs["build"]
    docs = built[0]["documents"]
    raw_s = statistics.median(r["seconds"] for r in raw)
    load_s = statistics.median(r["model_load_seconds"] for r in raw)
    embed_s = statistics.median(r["embed_seconds"] for r in built)
    total_s = statistics.median(r["seconds"] for r in built)
    files = built[0]["file_bytes"]
    return {
        "documents": docs,
        "order": f"{args.order}, alternating (ABBA) over {args.repeats} repeat(s), each run in "
        f"a fresh spawned process warmed on {args.warmup} texts",
        "backend": built[0]["backend"],
        "raw_encode": {"seconds": raw_s, "docs_per_second": docs / raw_s},
        "raw_model_load_seconds": load_s,
        "build_embed_phase": {"seconds": embed_s, "docs_per_second": docs / embed_s},
        "build_end_to_end": {"seconds": total_s, "docs_per_second": docs / total_s},
        "overhead_embed_phase": embed_s / raw_s - 1,
        "overhead_end_to_end": total_s / (raw_s + load_s) - 1,
        "peak_rss_mb": {
            "build": max(r["peak_rss_mb"] for r in built),
            "raw_encode": max(r["peak_rss_mb"] for r in raw),
            # the same figure as "build" means the warm-up, not the build, set the peak
            "build_after_warmup": max(r["warmup_peak_rss_mb"] for r in built),
        },
        "index_bytes": {**files, "total": sum(files.values())},
        "index_bytes_per_document": sum(files.values()) / docs,
        "runs": runs,
    }


def _tables(r: dict[str, Any]) -> list[common.Table]:
    speed = common.Table(
        f"Ingest of {r['documents']:,} documents ({r['backend']['name']} {r['backend']['kind']})",
        ["run", "seconds", "docs/s", "overhead", "peak RSS MiB"],
        note=f"overhead = time / baseline time - 1; baseline: the raw encode (embed phase, "
        f"target < 5%), the raw encode + its model load (end to end). Order: {r['order']}.",
    )
    rss = r["peak_rss_mb"]
    speed.add("raw SentenceTransformer.encode", *_speed(r["raw_encode"]), None, rss["raw_encode"])
    embed, overall = r["build_embed_phase"], r["build_end_to_end"]
    speed.add("build_index embed phase", *_speed(embed), _pct(r["overhead_embed_phase"]), None)
    speed.add(
        "build_index end to end (model load, index, commit)",
        *_speed(overall),
        _pct(r["overhead_end_to_end"]),
        rss["build"],
    )
    size = common.Table("Index size", ["file", "bytes", "bytes/doc"])
    for path, size_bytes in r["index_bytes"].items():
        size.add(path, size_bytes, size_bytes / r["documents"])
    return [speed, size]


def _speed(phase: dict[str, float]) -> tuple[float, float]:
    return phase["seconds"], phase["docs_per_second"]


def _pct(x: float) -> str:
    return f"{x:+.1%}"


if __name__ == "__main__":
    main()
