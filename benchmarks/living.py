"""Living indexes: readers while a writer commits, deletions and compact, filtered recall.

Readers: ``--readers`` threads, one ``Searcher`` each, query (no rerank, embedding included) for
``--seconds`` with no writer (the baseline), and while a writer process upserts small batches and
deletes them again (one commit each), with and without ``refresh()`` before each query.
Deletions: latency and recall@k after deleting 10% and 50% of the corpus and after ``compact``.
Filters: recall@k and hits returned at selectivities from 50% to 0.1% on synthetic metadata.
Baseline and ground truth: numpy brute force over the live (and matching) documents' stored
vectors, in the same run. Deletion and filter latencies exclude the query embedding (embedded
once up front). Each is measured with searchkit's ``EXACT_ROWS`` (segments with fewer allowed
rows are scanned exactly) and with 0, which forces the backends' own filtered search.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import benchdata
import common
import numpy as np

NAME = "living"
SOURCES = (("pubmed", 50), ("pmc", 75), ("arxiv", 88), ("biorxiv", 95), ("medrxiv", 99))
FILTERS: dict[str, Callable[[dict[str, Any]], bool] | None] = {
    "(none)": None,
    "bucket < 500": lambda m: m["bucket"] < 500,
    "bucket < 100": lambda m: m["bucket"] < 100,
    "bucket < 10": lambda m: m["bucket"] < 10,
    "bucket < 1": lambda m: m["bucket"] < 1,
    'source = "arxiv" and year >= 2015': lambda m: m["source"] == "arxiv" and m["year"] >= 2015,
}
STATES = (("0%", 0.0), ("10% deleted", 0.1), ("50% deleted", 0.5), ("50% + compact", None))
MODES = ("no writer", "writer, refresh", "writer, no refresh")
WARMUP = 5  # untimed queries before each measurement


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser)
    add = parser.add_argument
    add("--backends", type=backend_list, default="faiss:hnsw,hnswlib:hnsw,faiss:flat",
        help="backend:kind list (the readers use the first)")  # fmt: skip
    add("--index-dir", type=Path, default=common.REPO / "indexes", help="index cache")
    add("--queries", type=int, default=300, help="test queries per measurement")
    add("--seconds", type=float, default=20.0, help="length of each reader window")
    add("--readers", type=int, default=2, help="reader threads")
    add("--rounds", type=int, default=2, help="reader windows per mode")
    add("--writer-batch", type=int, default=8, help="documents per upsert commit")
    add("--exact-rows", type=common.int_list, help="EXACT_ROWS values (default: searchkit's,0)")
    add("--k", type=int, default=10, help="hits per query")
    args, header = common.start(parser, NAME)
    import searchkit.query.view

    args.exact_rows = args.exact_rows or [searchkit.query.view.EXACT_ROWS, 0]
    data, docs = living_corpus(benchdata.load_dataset(args.dataset, args.split, args.limit))
    texts = list(data.queries.values())[: args.queries]
    paths = {f"{b} {k}": cached_index(data, b, k, args.index_dir) for b, k in args.backends}
    results: dict[str, Any] = {"dataset": data.name, "documents": len(docs), "queries": len(texts)}
    results["readers"], encoder = readers(*next(iter(paths.items())), texts, docs, args)
    vectors = encoder.encode_queries(texts)
    results.update(deletions=[], filters=[], compact_vectors_identical={})
    for name, path in paths.items():
        common.note(f"{name}: deletions, compact and filters")
        rows, same = deletions(name, path, texts, vectors, args)
        results["deletions"] += rows
        results["compact_vectors_identical"][name] = same
        results["filters"] += filters(name, path, texts, vectors, docs, args)
    common.report(NAME, args, header, tables(results, args), results)


def metadata(doc_id: str) -> dict[str, Any]:
    """Deterministic synthetic metadata of a document, from a hash of its id."""
    h = int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big")
    source = next((name for name, upto in SOURCES if (h // 35_000) % 100 < upto), "other")
    return {"year": 1990 + h % 35, "source": source, "bucket": (h // 35) % 1000}


def living_corpus(data: Any) -> tuple[Any, list[dict[str, Any]]]:
    """``data`` with its corpus rewritten with synthetic metadata; the documents (as dicts)."""
    from searchkit.ingest.corpus import CorpusReader

    out = benchdata.workdir() / f"living-{data.name}.jsonl"
    docs = []
    with open(out, "w", encoding="utf-8") as f:
        for doc in CorpusReader(data.corpus):
            docs.append({"_id": doc.id, "title": doc.title, "text": doc.text, **metadata(doc.id)})
            f.write(json.dumps(docs[-1]) + "\n")
    return replace(data, name=f"living-{data.name}", corpus=out), docs


def cached_index(data: Any, backend: str, kind: str, root: Path) -> Path:
    """The index of the living corpus under ``root``: built once, reused while it matches."""
    return benchdata.bench_index(data, root / f"{data.name}-{backend}-{kind}", backend=backend,
                                 kind=kind)  # fmt: skip


def backend_list(text: str) -> list[tuple[str, str]]:
    """argparse type: ``"faiss:hnsw,hnswlib:hnsw"`` -> [(backend, kind), ...]."""
    from searchkit.backends import DEFAULT_KIND

    pairs = [part.strip().partition(":") for part in text.split(",") if part.strip()]
    return [(b, k or DEFAULT_KIND[b]) for b, _, k in pairs]


def copy_index(path: Path, label: str) -> Path:
    """A scratch copy of a cached index, to change (the cache stays as built)."""
    out = benchdata.workdir() / label.replace(" ", "-").replace(",", "")
    shutil.rmtree(out, ignore_errors=True)
    return Path(shutil.copytree(path, out))


# --- readers while a writer commits ---------------------------------------------------------


def readers(name: str, cached: Path, texts: list[str], docs: list, args: Any) -> tuple[dict, Any]:
    """Reader throughput and latency in each of MODES, in rounds ordered ABC, CBA, ... (each
    window on a fresh copy of the index); and an encoder. Each thread has its own Searcher and
    Encoder: sharing a Searcher between threads fails (see the README)."""
    from searchkit import Searcher

    encoders = [Searcher.open(cached, verify=False).encoder for _ in range(args.readers)]
    pool = [(d["text"], d["title"], metadata(d["_id"])) for d in docs[-128:]]
    raw: dict[str, dict[str, list]] = {mode: {} for mode in MODES}
    for r in range(args.rounds):
        for mode in MODES[:: 1 if r % 2 == 0 else -1]:
            common.note(f"readers: round {r + 1}, {mode} ({args.seconds:g} s)")
            path = copy_index(cached, mode)
            searchers = [Searcher.open(path) for _ in encoders]  # verify=True: sha256 on refresh
            for searcher, encoder in zip(searchers, encoders, strict=True):
                searcher.encoder = encoder  # loaded once, on the first window
            for key, value in window(path, searchers, texts, pool, mode, args).items():
                raw[mode].setdefault(key, []).append(value)
    modes = {mode: summary(w) for mode, w in raw.items()}
    for w in modes.values():
        w["qps_vs_no_writer"] = common.ratio(w["qps"], modes[MODES[0]]["qps"])
    return {"backend": name, "threads": args.readers, "modes": modes}, encoders[0]


def window(path: Path, searchers: list, texts: list[str], pool: list, mode: str, args: Any) -> dict:
    """One reader window of ``mode``, with a writer process on ``path`` unless "no writer"."""
    import multiprocessing

    if mode == MODES[0]:
        return reader_window(searchers, texts, args, False)
    ctx = multiprocessing.get_context("spawn")
    ready, stop, queue = ctx.Event(), ctx.Event(), ctx.Queue()
    task = (str(path), pool, args.writer_batch, args.threads, ready, stop, queue)
    writer = ctx.Process(target=write_loop, args=task, daemon=True)
    writer.start()
    try:
        if not ready.wait(300):
            raise SystemExit("the writer process did not start")
        got = reader_window(searchers, texts, args, mode == "writer, refresh")
        stop.set()
        done = queue.get(timeout=600)
    finally:  # never leave the writer running, whatever failed
        stop.set()
        writer.join(60)
        writer.terminate()
    got["commits"] = [s for t, s in done.pop("commits") if got["start"] <= t <= got["end"]]
    return {**got, **done}


def summary(w: dict[str, list]) -> dict[str, Any]:
    """The windows of one mode together: sums, pooled percentiles, means."""

    def flat(key: str) -> list[float]:
        return [x for part in w.get(key, []) for x in part]

    searches, refreshes, commits = flat("searches"), flat("refreshes"), flat("commits")
    seconds, writer = sum(w["seconds"]), "commits" in w
    return {
        "windows": len(w["seconds"]), "seconds": seconds, "queries": len(searches),
        "qps": len(searches) / seconds, "latency_ms": common.percentiles(searches),
        "refreshes": len(refreshes), "refresh_ms": common.percentiles(refreshes),
        "segments_seen": max(w["segments_seen"]),
        "commits": len(commits) if writer else None, "commit_ms": common.percentiles(commits),
        "commits_total": sum(w["commits_total"]) if writer else None,
        "writer_cpu_share": float(np.mean(w["writer_cpu_share"])) if writer else None,
    }  # fmt: skip


def reader_window(searchers: list, texts: list[str], args: Any, refresh: bool) -> dict[str, Any]:
    """A thread per searcher searching for ``args.seconds``, refresh() before each query."""
    for searcher in searchers:
        for text in texts[:WARMUP]:
            searcher.search(text, args.k, rerank=False, mode="dense")
    deadline = time.perf_counter() + args.seconds

    def run(n: int) -> tuple[list[float], list[float]]:
        searcher, searches, refreshes, i = searchers[n], [], [], n * 37
        while time.perf_counter() < deadline:
            if refresh and (switch := common.timed(searcher.refresh))[0]:
                refreshes.append(switch[1])
            searches.append(common.timed(searcher.search, texts[i % len(texts)], args.k,
                                         rerank=False, mode="dense")[1])  # fmt: skip
            i += 1
        return searches, refreshes

    start, started = time.time(), time.perf_counter()
    with ThreadPoolExecutor(len(searchers)) as threads:
        parts = [f.result() for f in [threads.submit(run, n) for n in range(len(searchers))]]
    seconds = time.perf_counter() - started
    searches, refreshes = ([s for part in parts for s in part[n]] for n in (0, 1))
    segments = len(searchers[0].manifest.segments)
    return {"start": start, "end": time.time(), "seconds": seconds, "searches": searches,
            "refreshes": refreshes, "segments_seen": segments}  # fmt: skip


def write_loop(path: str, pool: list, batch: int, threads: int | None, ready: Any, stop: Any,
               queue: Any) -> None:  # fmt: skip
    """The writer process: upsert ``batch`` new documents, delete the previous batch, repeat."""
    common.apply_threads(threads)
    from searchkit import Document
    from searchkit.ingest.writer import IndexWriter

    commits: list[tuple[float, float]] = []  # (finished at, seconds)
    previous: list[str] = []
    with IndexWriter.open(path) as w:
        w.encoder.encode_documents(["warm up"])  # load the model before the window
        ready.set()
        cpu, wall, n = time.process_time(), time.time(), 0
        while not stop.is_set():
            new = [Document(f"w{n}-{j}", *pool[(n * batch + j) % len(pool)]) for j in range(batch)]
            seconds = w.upsert(new).seconds
            commits.append((time.time(), seconds))  # when it ended, how long it took
            if previous:
                seconds = w.delete(previous).seconds
                commits.append((time.time(), seconds))
            previous, n = [d.id for d in new], n + 1
    share = (time.process_time() - cpu) / (time.time() - wall)  # 2.0: both cores, all along
    queue.put({"commits": commits, "commits_total": len(commits), "writer_cpu_share": share})


# --- deletions and filters ------------------------------------------------------------------


@contextmanager
def exact_rows(n: int) -> Iterator[None]:
    """Run with ``searchkit.query.view.EXACT_ROWS = n`` (0: every filter goes to the backend)."""
    import searchkit.query.view as s

    old, s.EXACT_ROWS = s.EXACT_ROWS, n
    try:
        yield
    finally:
        s.EXACT_ROWS = old


def opened(path: Path, queries: np.ndarray, texts: list[str]) -> Any:
    """A Searcher on ``path`` whose encoder hands out ``texts``' vectors, embedded up front."""
    from searchkit import Searcher

    vectors = dict(zip(texts, queries, strict=True))
    searcher = Searcher.open(path, verify=False)
    searcher.encoder = SimpleNamespace(  # type: ignore[assignment]
        dim=queries.shape[1], encode_queries=lambda batch: np.stack([vectors[q] for q in batch])
    )
    return searcher


def stored(path: Path) -> tuple[list[str], np.ndarray]:
    """Ids and stored vectors of an index without tombstones, in row order."""
    from searchkit import Searcher

    return Searcher.open(path, verify=False).ids(), benchdata.index_vectors(path)


def deletions(name: str, cached: Path, texts: list[str], queries: np.ndarray,
              args: Any) -> tuple[list, bool]:  # fmt: skip
    """Each of STATES, made one after the other on a copy of the index and read by a Searcher
    pinned to it; whether compact kept every stored vector."""
    from searchkit.ingest.writer import IndexWriter

    ids, vectors = stored(cached)
    order = np.random.default_rng(0).permutation(len(ids))
    path = copy_index(cached, f"deletions-{name}")
    cases, gone = [], 0
    for state, fraction in STATES:
        with IndexWriter.open(path) as w:
            if fraction is None:
                w.compact()
            elif int(fraction * len(ids)) > gone:
                w.delete([ids[i] for i in order[gone : int(fraction * len(ids))]])
                gone = int(fraction * len(ids))
        searcher, live = opened(path, queries, texts), np.ones(len(ids), dtype=bool)
        live[order[:gone]] = False
        m = searcher.manifest
        label = {"backend": name, "state": state, "documents": m.documents,
                 "segments": len(m.segments), "tombstones": m.deleted}  # fmt: skip
        cases += [({**label, "exact_rows": n}, searcher, live, None) for n in args.exact_rows]
    rows = measure(cases, texts, queries, ids, vectors, args.k)
    new_ids, new_vectors = stored(path)
    position = {doc_id: row for row, doc_id in enumerate(ids)}
    same = bool(np.array_equal(new_vectors, vectors[[position[i] for i in new_ids]]))
    return relative(rows, "state", "0%", "p50_vs_undeleted"), same


def filters(name: str, path: Path, texts: list[str], queries: np.ndarray, docs: list,
            args: Any) -> list:  # fmt: skip
    """Recall, hits and latency with each of FILTERS on the cached (undeleted) index."""
    ids, vectors = stored(path)
    meta = {d["_id"]: d for d in docs}
    searcher, cases = opened(path, queries, texts), []
    for where, keep in FILTERS.items():
        mask = np.array([keep is None or keep(meta[i]) for i in ids], dtype=bool)
        label = {"backend": name, "filter": where, "selectivity": float(mask.mean())}
        cases += [({**label, "exact_rows": n}, searcher, mask, where if keep else None)
                  for n in args.exact_rows]  # fmt: skip
    rows = measure(cases, texts, queries, ids, vectors, args.k)
    return relative(rows, "filter", "(none)", "p50_vs_unfiltered")


def relative(rows: list[dict[str, Any]], key: str, base: str, name: str) -> list[dict[str, Any]]:
    """Set ``row[name]`` to its p50 latency over the p50 of the row whose ``key`` is ``base``."""
    p50 = {r["exact_rows"]: r["latency_ms"]["p50"] for r in rows if r[key] == base}
    for row in rows:
        row[name] = common.ratio(row["latency_ms"]["p50"], p50[row["exact_rows"]])
    return rows


Case = tuple[dict[str, Any], Any, np.ndarray, str | None]  # label, searcher, allowed rows, where


def measure(cases: list[Case], texts: list[str], queries: np.ndarray, ids: list[str],
            vectors: np.ndarray, k: int) -> list[dict]:  # fmt: skip
    """Each (label, searcher, allowed rows, where) case on every query, the cases of a query in
    turn (rotating which goes first): latency, recall@k against brute force over the allowed
    rows, hits returned, and violations (hits outside the allowed rows)."""
    stats = []
    for _, searcher, allowed, where in cases:
        rows = np.flatnonzero(allowed)
        top = np.argsort(-(queries @ vectors[rows].T), axis=1, kind="stable")[:, :k]
        truth = [{ids[r] for r in rows[t]} for t in top]
        stats.append({"truth": truth, "ok": {ids[r] for r in rows}, "times": [], "hits": []})
        for text in texts[:WARMUP]:
            searcher.search(text, k, rerank=False, where=where, mode="dense")
    for q, text in enumerate(texts):
        for c in np.roll(np.arange(len(cases)), -q).tolist():
            (label, searcher, _, where), s = cases[c], stats[c]
            with exact_rows(label["exact_rows"]):
                found, seconds = common.timed(
                    searcher.search, text, k, rerank=False, where=where, mode="dense"
                )
            s["times"].append(seconds)
            s["hits"].append({h.id for h in found})
    return [{**case[0], **scores(s, k)} for case, s in zip(cases, stats, strict=True)]


def scores(s: dict[str, Any], k: int) -> dict[str, Any]:
    """A case's figures from its samples."""
    expected = min(k, len(s["ok"]))
    pairs = zip(s["truth"], s["hits"], strict=True)
    recalls = [len(want & got) / len(want) for want, got in pairs if want]
    return {"allowed": len(s["ok"]), "latency_ms": common.percentiles(s["times"]),
            "recall": float(np.mean(recalls)) if recalls else None,
            "mean_hits": float(np.mean([len(got) for got in s["hits"]])), "expected_hits": expected,
            "short_queries": sum(len(got) < expected for got in s["hits"]),
            "violations": sum(len(got - s["ok"]) for got in s["hits"])}  # fmt: skip


# --- output ---------------------------------------------------------------------------------

# the columns of each table: dotted keys of its result rows
READERS = ("mode queries qps qps_vs_no_writer latency_ms.p50 latency_ms.p99 commits commit_ms.p50 "
           "writer_cpu_share refreshes refresh_ms.p50 segments_seen")  # fmt: skip
DELETIONS = ("backend exact_rows state documents segments latency_ms.p50 latency_ms.p99 "
             "p50_vs_undeleted recall short_queries violations")  # fmt: skip
FILTERED = ("backend exact_rows filter selectivity allowed recall mean_hits expected_hits "
            "latency_ms.p50 latency_ms.p99 p50_vs_unfiltered violations")  # fmt: skip
HEADERS = {"latency_ms.p50": "p50 ms", "latency_ms.p99": "p99 ms", "allowed": "matching",
           "commit_ms.p50": "commit p50 ms", "refresh_ms.p50": "refresh p50 ms",
           "recall": "recall@k"}  # fmt: skip


def table(title: str, columns: str, rows: list[dict], note: str) -> common.Table:
    """A table of ``rows`` with the dotted keys ``columns``."""

    def get(row: dict[str, Any], key: str) -> Any:
        for part in key.split("."):
            row = row.get(part) if isinstance(row, dict) else None  # type: ignore[assignment]
        return row

    keys = columns.split()
    headers = [HEADERS.get(key, key.replace("_", " ")) for key in keys]
    return common.Table(title, headers, [[get(row, key) for key in keys] for row in rows], note)


def tables(results: dict[str, Any], args: Any) -> list[common.Table]:
    r, size = results["readers"], f"{results['documents']:,} documents, k={args.k}, no rerank"
    modes = [{"mode": mode, **window} for mode, window in r["modes"].items()]
    return [
        table(f"Readers ({r['threads']} threads, {r['backend']}, no rerank) while a writer upserts "
              f"{args.writer_batch} documents and deletes them, one commit each", READERS, modes,
              "Latency includes the query embedding; qps includes the refresh() calls. writer cpu "
              "share: the writer's CPU seconds per second (2 = both cores)."),
        table(f"Deletions and compact ({size})", DELETIONS, results["deletions"],
              "Latency excludes the query embedding. recall@k: against numpy brute force over "
              "the live documents' stored vectors. short queries: fewer than k hits. violations: "
              "deleted documents returned. exact rows: searchkit.query.view.EXACT_ROWS (0 forces "
              "the backend's own filtered search)."),
        table(f"Filters ({size})", FILTERED, results["filters"],
              "recall@k: against numpy brute force over the matching documents' stored vectors; "
              "expected = min(k, matching); violations: hits that do not match the filter."),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
