"""Thread and batch tuning of the bi-encoder, and the query embedding cache, in one run.

On the same --speed-docs passages, in rounds that alternate the order of the settings:
docs/s of the --runtime bi-encoder (default: what ``auto`` picks) per batch size; with
searchkit's longest-first sort against batches in corpus order; the share of encode time spent
in tokenization; docs/s of each --thread-runtimes runtime on 1 and 2 threads (ONNX Runtime and
OpenVINO take torch's thread count when loaded). Then the first-stage latency of a Searcher
(no rerank) on an index of the first --index-docs passages, for fresh queries and for the same
queries repeated (answered from the query embedding LRU).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import benchdata
import common

NAME = "tuning"
THREAD_RUNTIMES = ["torch-fp32", "torch-bf16", "onnx-int8", "openvino-bf16", "openvino-int8"]


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser)
    ints = {"type": lambda text: [int(p) for p in text.split(",") if p]}
    parser.add_argument("--runtime", default="auto", help="bi-encoder runtime tuned")
    parser.add_argument("--batch-sizes", **ints, default=[8, 16, 32, 64, 128], help="to time")
    parser.add_argument("--threads-list", **ints, default=[1, 2], help="thread counts to time")
    parser.add_argument(
        "--thread-runtimes", type=lambda text: [p for p in text.split(",") if p],
        default=THREAD_RUNTIMES, help="runtimes timed per thread count (comma-separated)",
    )  # fmt: skip
    parser.add_argument("--speed-docs", type=int, default=256, help="passages timed per round")
    parser.add_argument("--rounds", type=int, default=2, help="timing rounds (order alternates)")
    parser.add_argument("--index-docs", type=int, default=300, help="passages in the LRU index")
    parser.add_argument("--lru-queries", type=int, default=50, help="queries timed for the LRU")
    args, header = common.start(parser, NAME)
    from searchkit.inference.encoder import Encoder

    data = benchdata.load_dataset(args.dataset, args.split, args.limit)
    texts = benchdata.passages(data.corpus)
    sample = texts[: args.speed_docs]
    encoder = Encoder(runtime=args.runtime)
    common.note(f"tuning {encoder.runtime}; threads of {', '.join(args.thread_runtimes)}")
    results = {
        "runtime": str(encoder.runtime),
        "batch_sizes": _batch_sizes(encoder, sample, args),
        "sorting": _sorting(encoder, sample, args.rounds),
        "tokenization": _tokenization(encoder, sample),
        "threads": _threads(sample, args),
        "query_cache": _query_cache(data, texts[: args.index_docs], encoder, args),
    }
    common.report(NAME, args, header, _tables(results), results)


def _alternating(settings: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Seconds per setting of calling it, summed over rounds that alternate the order."""
    seconds = dict.fromkeys(settings, 0.0)
    for r in range(rounds):
        for name in list(settings)[:: 1 if r % 2 == 0 else -1]:
            seconds[name] += common.timed(settings[name])[1]
    return seconds


def _per_second(settings: dict[str, Callable[[], Any]], n: int, rounds: int) -> dict[str, float]:
    for run in settings.values():
        run()  # warm: first calls allocate and compile
    return {k: n * rounds / s for k, s in _alternating(settings, rounds).items()}


def _batch_sizes(encoder: Any, sample: list[str], args: Any) -> dict[str, float]:
    default = encoder.batch_size

    def at(size: int) -> Callable[[], Any]:
        def run() -> Any:
            encoder.batch_size = size
            return encoder.encode_documents(sample)

        return run

    speeds = _per_second({str(b): at(b) for b in args.batch_sizes}, len(sample), args.rounds)
    encoder.batch_size = default
    return speeds


def _sorting(encoder: Any, sample: list[str], rounds: int) -> dict[str, float]:
    """searchkit's global longest-first order against batches of texts in corpus order."""
    size = encoder.batch_size

    def unsorted() -> None:
        for start in range(0, len(sample), size):
            encoder.model.encode_document(sample[start : start + size], batch_size=size)

    settings = {"longest first": lambda: encoder.encode_documents(sample), "corpus order": unsorted}
    return _per_second(settings, len(sample), rounds)


def _tokenization(encoder: Any, sample: list[str]) -> dict[str, float]:
    """Seconds to tokenize the sample in encode's batches, against encoding it."""
    model, size = encoder.model, encoder.batch_size
    ordered = sorted(sample, key=len, reverse=True)
    encoder.encode_documents(sample)  # warm
    _, encode_s = common.timed(encoder.encode_documents, sample)

    def tokenize() -> None:
        for start in range(0, len(ordered), size):
            model.preprocess(ordered[start : start + size])

    _, tokenize_s = common.timed(tokenize)
    return {"encode_s": encode_s, "tokenize_s": tokenize_s, "share": tokenize_s / encode_s}


def _threads(sample: list[str], args: Any) -> dict[str, dict[str, float]]:
    import torch

    from searchkit.inference.encoder import Encoder

    default = torch.get_num_threads()
    settings = {}
    for name in args.thread_runtimes:
        for n in args.threads_list:
            # ONNX Runtime and OpenVINO read torch's thread count when the model loads
            torch.set_num_threads(n)
            model = Encoder(runtime=name)
            model.model  # noqa: B018 - load now, on n threads

            def run(model: Any = model, n: int = n) -> Any:
                torch.set_num_threads(n)
                return model.encode_documents(sample)

            settings[f"{name}/{n}"] = run
    speeds = _per_second(settings, len(sample), args.rounds)
    torch.set_num_threads(default)
    out: dict[str, dict[str, float]] = {}
    for key, value in speeds.items():
        name, n = key.split("/")
        out.setdefault(name, {})[n] = value
    return out


def _query_cache(data: Any, texts: list[str], encoder: Any, args: Any) -> dict[str, Any]:
    """First-stage latency (ms) of fresh queries, then of the same queries again."""
    from searchkit import Searcher, build_index

    corpus = benchdata.workdir() / "lru.jsonl"
    lines = (json.dumps({"_id": str(i), "text": text}) + "\n" for i, text in enumerate(texts))
    corpus.write_text("".join(lines), encoding="utf-8")
    path = benchdata.workdir() / "lru-index"
    build_index(corpus, path, runtime=str(encoder.runtime), progress=False)
    searcher = Searcher.open(path, query_runtime=str(encoder.runtime))
    queries = list(data.queries.values())[: args.lru_queries]
    searcher.search("warm up the model", rerank=False)
    fresh = [common.timed(searcher.search, q, rerank=False)[1] for q in queries]
    repeated = [common.timed(searcher.search, q, rerank=False)[1] for q in queries]
    return {"fresh": common.percentiles(fresh), "repeated": common.percentiles(repeated)}


def _tables(r: dict) -> list[common.Table]:
    speed = common.Table(
        f"bi-encoder {r['runtime']}: batch size and order", ["setting", "docs/s", "x batch 32"]
    )
    base = r["batch_sizes"].get("32")
    for size, value in r["batch_sizes"].items():
        speed.add(f"batch {size}", value, common.ratio(value, base))
    for order, value in r["sorting"].items():
        speed.add(order, value, common.ratio(value, base))
    tok = r["tokenization"]
    speed.note = f"tokenization: {100 * tok['share']:.1f}% of encode time"
    threads = common.Table("threads", ["runtime", *(f"{n} thread docs/s" for n in r["threads"]
                           [next(iter(r["threads"]))]), "2 / 1"])  # fmt: skip
    for name, by_n in r["threads"].items():
        threads.add(name, *by_n.values(), common.ratio(by_n.get("2"), by_n.get("1")))
    lru = common.Table("query embedding LRU: first-stage latency ms", ["queries", "p50", "p95"])
    for kind in ("fresh", "repeated"):
        lru.add(kind, r["query_cache"][kind]["p50"], r["query_cache"][kind]["p95"])
    return [speed, threads, lru]


if __name__ == "__main__":
    main()
