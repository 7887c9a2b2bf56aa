"""HTTP serving: ``searchkit serve`` under a locust load, against ``Searcher`` in-process.

searchkit: the real server (``python -m searchkit serve``) in its own process on 127.0.0.1,
loaded by locust (headless, ``FastHttpUser``, no wait between requests) with ``--concurrency``
users each sending ``POST /search`` one after another: queries/s, p50 and p99 latency, per
concurrency, with and without rerank, and once per ``--windows`` micro-batch window (0: batching
off). One server per window is up for the whole run and they take turns, in alternating order,
at each load, so a change in the machine's load hits them alike. Baseline, in the same run: the
same index and models in-process, ``Searcher.search`` one query at a time (and ``search_batch``
of 32 for the retrieval throughput ceiling), in a child process, before and after the loads
(the faster of the two is used). Every load is bounded in time (``--seconds``) and in count
(``--max-requests``).

``--backpressure QUEUED,DEADLINE``: instead of batch windows, two servers: ``unbounded`` (no
queue bound, no deadline: every request waits its turn, as before back-pressure) and
``bounded`` (``--max-queued QUEUED --deadline-seconds DEADLINE``), at each concurrency, rerank
on and off: the share of requests answered 503, p50 and p99 of the answered ones and of all,
and the p99 against the unbounded server's in the same run (written to
``serve_load_backpressure.json``). The users honour ``Retry-After``, as a client should.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import benchdata
import common

NAME = "serve_load"
READY_SECONDS = 600  # model loading on a busy 2-core machine

# Written to the scratch folder and run by locust (importing locust here would monkey-patch
# this process with gevent). Users cycle through the queries; the run stops after MAX requests.
LOCUSTFILE = """
import itertools, json, os
import gevent
from locust import FastHttpUser, constant, task

from locust import events

QUERIES = json.loads(open(os.environ["SK_QUERIES"]).read())
OPTIONS = json.loads(os.environ["SK_OPTIONS"])
MAX = int(os.environ["SK_MAX_REQUESTS"])
COUNT = itertools.count()
SEEN = {"ok_ms": [], "all_ms": [], "busy": 0, "failed": 0}


@events.request.add_listener
def seen(response_time, exception, response, **kwargs):
    SEEN["all_ms"].append(response_time)
    if response is not None and response.status_code == 503:
        SEEN["busy"] += 1
    elif exception is not None:
        SEEN["failed"] += 1
    else:
        SEEN["ok_ms"].append(response_time)


@events.quitting.add_listener
def write(environment, **kwargs):
    with open(os.environ["SK_OUT"], "w") as out:
        json.dump(SEEN, out)


class Client(FastHttpUser):
    wait_time = constant(0)
    network_timeout = 600.0

    @task
    def search(self):
        n = next(COUNT)
        if n >= MAX:
            if n == MAX:
                gevent.spawn(self.environment.runner.quit)
            gevent.sleep(60)
            return
        body = {"query": QUERIES[n % len(QUERIES)], **OPTIONS}
        with self.client.post("/search", json=body, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
        if response.status_code == 503:  # a client that honours Retry-After waits, then retries
            gevent.sleep(float(response.headers.get("retry-after") or 1))
"""


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser)
    common.add_reranker(parser)
    add = parser.add_argument
    add("--index", type=Path, default=None,
        help="index folder, used as it is if it exists, else built from the dataset's corpus "
        "(default: indexes/DATASET, built when it does not hold it)")  # fmt: skip
    add("--concurrency", type=common.int_list, default=[1, 8, 32], help="locust users")
    add("--windows", type=float_list, default=[5.0, 0.0], help="batch windows ms (0: off)")
    add("--seconds", type=float, default=20.0, help="length of each retrieval load")
    add("--rerank-seconds", type=float, default=30.0, help="length of each rerank load")
    add("--max-requests", type=int, default=5000, help="most requests per load")
    add("--candidates", type=int, default=10, help="candidates reranked (rerank rows)")
    add("--k", type=int, default=10, help="hits per query")
    add("--queries", type=int, default=300, help="distinct queries the users cycle through")
    add("--baseline-queries", type=int, default=100, help="in-process queries (retrieval)")
    add("--rerank-baseline-queries", type=int, default=10, help="in-process queries (rerank)")
    add("--no-rerank-rows", action="store_true", help="skip the rerank loads")
    add("--backpressure", type=float_list, default=None, metavar="QUEUED,DEADLINE",
        help="compare a bounded server (--max-queued, --deadline-seconds) with an unbounded "
        "one instead of batch windows, e.g. 8,1")  # fmt: skip
    args, header = common.start(parser, NAME)
    name = NAME if args.backpressure is None else f"{NAME}_backpressure"

    data = benchdata.load_dataset(args.dataset, args.split, args.limit)
    index = args.index
    if index is None or not (index / "manifest.json").is_file():
        index = benchdata.bench_index(data, index)
    texts = list(data.queries.values())[: args.queries]
    common.note(f"baseline: Searcher in-process on {index}")
    before = common.in_child(_baseline, str(index), str(args.reranker), texts, vars(args))
    loads = []
    reranks = (False,) if args.no_rerank_rows else (False, True)
    rows = [(rerank, users) for rerank in reranks for users in args.concurrency]
    profiles = _profiles(args)
    with _servers(index, args, profiles) as urls:  # all up, loaded in turn (ABBA)
        for n, (rerank, users) in enumerate(rows):
            for label in list(profiles) if n % 2 == 0 else list(profiles)[::-1]:
                loads.append(_load(urls[label], texts, users, rerank, label, args))
    loads.sort(key=lambda r: (list(profiles).index(r["server"]), r["rerank"], r["users"]))
    common.note("baseline again, after the loads")
    after = common.in_child(_baseline, str(index), str(args.reranker), texts, vars(args))
    baseline = _best(before, after)
    results = {
        "index": str(index),
        "documents": baseline["documents"],
        "baseline": baseline,
        "baseline_runs": [before, after],
        "loads": [_with_ratios(row, baseline) for row in loads],
        # the header has the load at the start: a busy machine skews every figure
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    if args.backpressure is None:
        results["batching"] = _verdict(loads, args)
        first = _load_table(results, args)
    else:
        results["loads"] = _against_unbounded(results["loads"])
        first = _backpressure_table(results, args)
    common.report(name, args, header, [first, _baseline_table(baseline, args)], results)


def float_list(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _baseline(index: str, reranker: str, texts: list[str], opts: dict[str, Any]) -> dict:
    """In-process figures: one query at a time (and batches of 32 for retrieval)."""
    from searchkit import Searcher

    common.apply_threads(opts["threads"])
    s = Searcher.open(index, reranker=reranker)
    k, c = opts["k"], opts["candidates"]
    s.search(texts[0], k, candidates=c)  # load both models
    out: dict[str, Any] = {"documents": len(s)}
    single = common.cycle(texts, opts["baseline_queries"])
    out["search"] = _timed_queries(lambda q: s.search(q, k, rerank=False), single)
    batches = [single[i : i + 32] for i in range(0, len(single), 32)]
    started = time.perf_counter()
    for batch in batches:
        s.search_batch(batch, k, rerank=False)
    out["search_batch_32"] = {"qps": len(single) / (time.perf_counter() - started)}
    if not opts["no_rerank_rows"]:
        rerank = common.cycle(texts, opts["rerank_baseline_queries"])
        out["search_rerank"] = _timed_queries(lambda q: s.search(q, k, candidates=c), rerank)
    return out


def _best(*runs: dict[str, Any]) -> dict[str, Any]:
    """Per mode, the run with the lower p50 (the most qps for search_batch): on a shared
    machine the faster run is the one other work disturbed less (as timeit takes the min)."""
    best: dict[str, Any] = {"documents": runs[0]["documents"]}
    for mode in runs[0]:
        if mode == "documents":
            continue
        cost = "p50" if "p50" in runs[0][mode] else "qps"
        sign = 1 if cost == "p50" else -1
        best[mode] = min((r[mode] for r in runs), key=lambda m, c=cost, s=sign: s * m[c])
    return best


def _timed_queries(fn: Any, queries: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    seconds = [common.timed(fn, q)[1] for q in queries]
    return {"qps": len(queries) / (time.perf_counter() - started), **common.percentiles(seconds)}


def _profiles(args: Any) -> dict[str, list[str]]:
    """The servers compared, by label: one per batch window, or unbounded against bounded."""
    if args.backpressure is None:
        return {f"{w:g}": ["--batch-window-ms", str(w)] for w in args.windows}
    queued, deadline = args.backpressure
    return {
        "unbounded": ["--max-queued", "1000000", "--deadline-seconds", "3600"],
        "bounded": ["--max-queued", f"{queued:g}", "--deadline-seconds", f"{deadline:g}"],
    }


@contextmanager
def _servers(index: Path, args: Any, profiles: dict[str, list[str]]) -> Iterator[dict[str, str]]:
    """``searchkit serve`` per profile, started together; their URLs once all are ready;
    SIGTERM at the end."""
    procs: list[subprocess.Popen] = []
    urls: dict[str, str] = {}
    try:
        for label, flags in profiles.items():
            url, proc, log = _start(index, args, label, flags)
            procs.append(proc)
            urls[label] = url
        for (label, url), proc in zip(urls.items(), procs, strict=True):
            _wait_ready(url, proc, benchdata.workdir() / f"server-{label}.log")
        yield urls
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _start(
    index: Path, args: Any, label: str, flags: list[str]
) -> tuple[str, subprocess.Popen, Path]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable, "-m", "searchkit", "serve", str(index), "--port", str(port),
        "--reranker", str(args.reranker), *flags,
        "--no-access-log", "--log-level", "warning", "--refresh-seconds", "0",
    ]  # fmt: skip
    log = benchdata.workdir() / f"server-{label}.log"
    env = dict(os.environ)
    if args.threads:  # torch, faiss and BLAS read these when they start
        env.update({v: str(args.threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    common.note(f"server: {' '.join(command)} (log {log})")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=common.REPO, env=env
        )
    return f"http://127.0.0.1:{port}", proc, log


def _wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server was not ready after {READY_SECONDS} s")


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def _load(
    url: str, texts: list[str], users: int, rerank: bool, label: str, args: Any
) -> dict[str, Any]:
    """One locust run: ``users`` clients for at most the time and count bounds."""
    work = benchdata.workdir()
    locustfile = work / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    queries = work / "queries.json"
    queries.write_text(json.dumps(texts))
    tag = f"{label}-{'rerank' if rerank else 'retrieve'}-c{users}"
    options = {"k": args.k, "rerank": rerank, "candidates": args.candidates}
    seconds = args.rerank_seconds if rerank else args.seconds
    env = {**os.environ, "SK_QUERIES": str(queries), "SK_OPTIONS": json.dumps(options),
           "SK_MAX_REQUESTS": str(args.max_requests),
           "SK_OUT": str(work / f"{tag}.seen")}  # fmt: skip
    command = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", url,
        "-u", str(users), "-r", str(users), "-t", f"{seconds:g}s", "--reset-stats",
        "--stop-timeout", f"{seconds:g}", "--only-summary", "--loglevel", "WARNING",
        "--json-file", str(work / tag),
    ]  # fmt: skip
    common.note(f"load {tag}: {users} users, {seconds:g} s")
    before = _get(f"{url}/info")["batching"]
    limit = seconds * 3 + 120
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=limit)
    if done.returncode not in (0, 1):  # 1: some requests failed, reported below
        raise SystemExit(f"locust failed ({done.returncode}): {done.stderr[-2000:]}")
    after = _get(f"{url}/info")["batching"]
    batches = after.get("batches", 0) - before.get("batches", 0)
    batched = after.get("queries", 0) - before.get("queries", 0)
    stats = _summary(json.loads((work / f"{tag}.json").read_text()))
    # Little's law for a closed loop without think time: throughput = users / mean latency.
    # Locust's own rate (qps_window) is unreliable when a load completes only a wave or two.
    qps = users / (stats["mean_ms"] / 1000) if stats["mean_ms"] else 0.0
    window = float(label) if args.backpressure is None else None
    return {
        "server": label, "window_ms": window, "rerank": rerank, "users": users, "qps": qps,
        **stats, **_outcomes(json.loads((work / f"{tag}.seen").read_text())),
        "mean_batch": batched / batches if batches else None,
    }  # fmt: skip


def _outcomes(seen: dict[str, Any]) -> dict[str, Any]:
    """The share answered 503, and latency percentiles of the answered requests and of all
    (from every request's own time, not locust's rounded histogram)."""
    ok, every = seen["ok_ms"], seen["all_ms"]
    return {
        "busy_503": seen["busy"],
        "busy_share": seen["busy"] / len(every) if every else 0.0,
        "answered": len(ok),
        **{f"ok_{k}_ms": v for k, v in _quantiles(ok).items()},
        **{f"all_{k}_ms": v for k, v in _quantiles(every).items()},
    }


def _quantiles(ms: list[float]) -> dict[str, float | None]:
    ordered = sorted(ms)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None  # noqa: E731
    return {"p50": pick(0.50), "p99": pick(0.99)}


def _against_unbounded(loads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with its p99s against the unbounded server's at the same load."""
    unbounded = {(r["rerank"], r["users"]): r for r in loads if r["server"] == "unbounded"}
    out = []
    for row in loads:
        base = unbounded[(row["rerank"], row["users"])]
        out.append({
            **row,
            "ok_p99_vs_unbounded": common.ratio(row["ok_p99_ms"], base["ok_p99_ms"]),
            "all_p99_vs_unbounded": common.ratio(row["all_p99_ms"], base["all_p99_ms"]),
        })  # fmt: skip
    return out


def _backpressure_table(results: dict[str, Any], args: Any) -> common.Table:
    queued, deadline = args.backpressure
    table = common.Table(
        f"Back-pressure: searchkit serve under locust on {results['documents']:,} documents, "
        f"k={args.k}; bounded = --max-queued {queued:g} --deadline-seconds {deadline:g}",
        ["server", "rerank", "users", "requests", "503 share", "answered qps", "p50 ms (ok)",
         "p99 ms (ok)", "p99 ms (all)", "p99 ok / unbounded"],
        note="Closed loop: each user sends its next request when the last one is answered, "
        "and waits Retry-After seconds after a 503. answered qps: answered requests / load "
        "seconds. p50/p99 (ok): of the requests answered 200; (all): 503s included (they "
        "answer at once). Ratios against the unbounded server at the same load, same run. "
        "The load generator shares the machine's 2 cores with the server (and, here, with "
        "other work: see the load average in the header).",
    )  # fmt: skip
    for r in results["loads"]:
        answered_qps = r["answered"] / r["seconds"] if r["seconds"] else None
        table.add(
            r["server"], f"top {args.candidates}" if r["rerank"] else "no", r["users"],
            r["requests"], r["busy_share"], answered_qps, r["ok_p50_ms"], r["ok_p99_ms"],
            r["all_p99_ms"], r["ok_p99_vs_unbounded"],
        )  # fmt: skip
    return table


def _summary(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """qps and latency percentiles from locust's histogram (ms rounded as locust stores them)."""
    entry = next(e for e in stats if e["name"] == "/search")
    n = entry["num_requests"]
    window = max(entry["last_request_timestamp"] - entry["start_time"], 1e-9)
    histogram = sorted((float(ms), count) for ms, count in entry["response_times"].items())
    return {
        "requests": n,
        "failures": entry["num_failures"],
        "seconds": round(window, 2),
        "qps_window": n / window if n else 0.0,
        "mean_ms": entry["total_response_time"] / n if n else None,
        "p50_ms": _percentile(histogram, n, 0.50),
        "p99_ms": _percentile(histogram, n, 0.99),
    }


def _percentile(histogram: list[tuple[float, int]], n: int, q: float) -> float | None:
    seen = 0
    for ms, count in histogram:
        seen += count
        if seen >= q * n:
            return ms
    return None


def _with_ratios(row: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """qps against in-process throughput (``search_batch`` of 32 for retrieval: its ceiling;
    one at a time for rerank, whose cost is the pairs either way); p50 against one query."""
    single = baseline["search_rerank" if row["rerank"] else "search"]
    most = single["qps"] if row["rerank"] else baseline["search_batch_32"]["qps"]
    return {
        **row,
        "qps_vs_in_process": common.ratio(row["qps"], most),
        "p50_vs_in_process": common.ratio(row["p50_ms"], single["p50"]),
    }


def _verdict(loads: list[dict[str, Any]], args: Any) -> dict[str, Any]:
    """Retrieval qps with each batch window at each concurrency, and the fastest window."""
    out: dict[str, Any] = {}
    for users in args.concurrency:
        rows = [r for r in loads if r["users"] == users and not r["rerank"]]
        if rows:
            best = max(rows, key=lambda r: r["qps"])
            out[str(users)] = {
                "qps_by_window_ms": {f"{r['window_ms']:g}": r["qps"] for r in rows},
                "fastest_window_ms": best["window_ms"],
            }
    return out


def _load_table(results: dict[str, Any], args: Any) -> common.Table:
    table = common.Table(
        f"searchkit serve under locust on {results['documents']:,} documents, k={args.k}",
        [
            "batch window ms",
            "rerank",
            "users",
            "requests",
            "failed",
            "qps",
            "p50 ms",
            "p99 ms",
            "mean batch",
            "qps / in-process",
            "p50 / in-process",
        ],  # fmt: skip
        note="qps / in-process: against Searcher.search_batch of 32 in one process (same "
        "index, models and threads) for retrieval, against Searcher.search one query at a time "
        "for rerank; p50 / in-process: against Searcher.search one query at a time. Rerank rows "
        f"rerank the top {args.candidates}. "
        "Latency percentiles from locust's histogram (ms rounded to 2 significant digits "
        "above 100 ms). qps: users / mean latency (Little's law for a closed loop). The load "
        "generator shares the machine's cores with the server. "
        "mean batch: queries per micro-batch during that load.",
    )
    for r in results["loads"]:
        table.add(
            f"{r['window_ms']:g}" if r["window_ms"] else "0 (off)",
            "top " + str(args.candidates) if r["rerank"] else "no",
            r["users"], r["requests"], r["failures"], r["qps"], r["p50_ms"], r["p99_ms"],
            r["mean_batch"], r["qps_vs_in_process"], r["p50_vs_in_process"],
        )  # fmt: skip
    return table


def _baseline_table(baseline: dict[str, Any], args: Any) -> common.Table:
    table = common.Table(
        "Baseline: Searcher in-process, same run", ["mode", "n", "qps", "p50 ms", "p99 ms"]
    )
    rows = [("search, one at a time (retrieve)", baseline["search"])]
    if "search_rerank" in baseline:
        rows.append((f"search, one at a time (rerank top {args.candidates})",
                     baseline["search_rerank"]))  # fmt: skip
    for label, s in rows:
        table.add(label, s["n"], s["qps"], s["p50"], s["p99"])
    table.add("search_batch of 32 (retrieve)", None, baseline["search_batch_32"]["qps"], None, None)
    return table


if __name__ == "__main__":
    main()
