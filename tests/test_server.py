"""searchkit serve as users meet it: the real server (uvicorn in a subprocess on 127.0.0.1, on a
copy of the tiny index) driven over HTTP with httpx, checked by schemathesis against its own
OpenAPI spec, and stopped by SIGTERM in the middle of a write."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from searchkit import Hit, Hits, Manifest, verify_index
from searchkit.index.lock import WriterLock, lock_path
from searchkit.ingest.writer import IndexWriter
from tests.conftest import QUERIES, REPO

pytestmark = pytest.mark.slow

READY_SECONDS = 300  # two model loads on a busy 2-core machine
SCHEMATHESIS_CONFIG = """
# 413 is how this API rejects a body over its size limit: a rejection, like 400 and 422.
[checks.negative_data_rejection]
expected-statuses = ["400", "413", "415", "422"]
"""


class Server:
    """``searchkit serve INDEX`` (or FOLDER) on a free port, with more ``args`` and ``env``;
    started again if a test stopped it."""

    def __init__(
        self, index: Path, log: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.index = index
        self.log = log
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_for: str = "/ready") -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        command = [
            sys.executable, "-m", "searchkit", "serve", str(self.index), "--port", str(self.port),
            "--refresh-seconds", "0.5", "--no-access-log", *self.args,
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=self.env
            )
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the server exited: {self.log.read_text()[-3000:]}"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{wait_for}").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"not ready after {READY_SECONDS} s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, built_index: Path) -> Any:
    """A server on its own copy of the tiny index (the tests write to it)."""
    root = tmp_path_factory.mktemp("serve")
    index = Path(shutil.copytree(built_index, root / "index"))
    running = Server(index, root / "server.log")
    yield running
    running.stop()


def post(server: Server, path: str, body: Any, timeout: float = 120) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=timeout)


def search(server: Server, query: str, **options: Any) -> dict[str, Any]:
    response = post(server, "/search", {"query": query, **options})
    assert response.status_code == 200, response.text
    return response.json()


def assert_same_hits(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Same documents in the same order; scores equal up to batch padding's float noise."""
    assert [h["id"] for h in got["hits"]] == [h["id"] for h in want["hits"]]
    for a, b in zip(got["hits"], want["hits"], strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)


def test_health_ready_info_and_spec(server):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/ready").json() == {"status": "ready"}
    info = httpx.get(f"{server.url}/info").json()
    manifest = Manifest.read(server.index)
    assert info["version"] == manifest.version and info["documents"] == manifest.documents
    assert info["deleted"] == manifest.deleted and info["ready"] is True
    assert info["manifest"]["backend"] == manifest.backend.to_dict()
    assert info["limits"]["max_k"] == 100 and info["batching"]["window_ms"] > 0
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert set(spec["paths"]) == {
        "/search", "/search/batch", "/info", "/health", "/ready", "/documents",
        "/documents/delete", "/metrics",
    }  # fmt: skip
    assert "securitySchemes" not in spec.get("components", {})  # no keys: no auth to send
    request = spec["components"]["schemas"]["SearchRequest"]["properties"]
    assert request["k"]["maximum"] == 100 and request["candidates"]["maximum"] == 200
    assert "ef_search" not in request and "nprobe" not in request  # a flat index has neither
    responses = spec["paths"]["/documents"]["post"]["responses"]
    assert {"409", "413", "415", "422"} <= set(responses)


def test_search_answers_like_searchkit_query_json(server, capsys):
    from searchkit.report import print_hits

    for query, expected in QUERIES.items():
        got = search(server, query, k=3)
        assert got["hits"][0]["id"] == expected and got["reranked"] is True
        # the same JSON that `searchkit query --json` prints for these hits
        hits = Hits(
            [Hit(**h) for h in got["hits"]], got["query"], got["reranked"], got["mode"],
            got["candidates"], got["truncated"],
        )  # fmt: skip
        print_hits(Path(got["index"]), hits, got["reranker"], as_json=True)
        assert {**json.loads(capsys.readouterr().out), "degraded": False} == got
    plain = search(server, "what makes sourdough rise", k=4, rerank=False)
    assert plain["reranked"] is False and plain["reranker"] is None
    assert [h["score"] for h in plain["hits"]] == [h["retrieval_score"] for h in plain["hits"]]
    assert len(plain["hits"]) == 4


def test_filters_and_batches(server):
    text = search(server, "anything at all", k=20, rerank=False, where="year >= 2008")
    assert text["hits"] and all(h["metadata"]["year"] >= 2008 for h in text["hits"])
    mapping = search(server, "anything", rerank=False, where={"topic": ["chess", "tides"]})
    assert {h["id"] for h in mapping["hits"]} == {"chess", "tides"}
    queries = list(QUERIES)
    response = post(server, "/search/batch", {"queries": queries, "k": 2, "rerank": False})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["query"] for r in results] == queries
    assert [r["hits"][0]["id"] for r in results] == list(QUERIES.values())
    assert_same_hits(results[0], search(server, queries[0], k=2, rerank=False))


def test_concurrent_queries_are_batched_and_answer_as_alone(server):
    jobs = [(q, rerank) for q in QUERIES for rerank in (False, True)] * 3
    alone = {job: search(server, job[0], k=3, rerank=job[1], candidates=4) for job in set(jobs)}
    before = httpx.get(f"{server.url}/info").json()["batching"]
    with ThreadPoolExecutor(len(jobs)) as pool:
        together = pool.map(lambda j: search(server, j[0], k=3, rerank=j[1], candidates=4), jobs)
        for job, got in zip(jobs, together, strict=True):
            assert_same_hits(got, alone[job])
    after = httpx.get(f"{server.url}/info").json()["batching"]
    retrieval_only = sum(not rerank for _, rerank in jobs)  # reranked queries are not batched
    assert after["queries"] - before["queries"] == retrieval_only
    assert after["batches"] - before["batches"] < retrieval_only  # some shared a batch
    assert after["largest"] > 1


BAD_REQUESTS = [
    ({"query": "x", "k": 101}, "k: Input should be less than or equal to 100"),
    ({"query": "x", "k": 0}, "k: Input should be greater than or equal to 1"),
    ({"query": "x", "candidates": 201}, "candidates: Input should be less than or equal to 200"),
    ({"query": "x" * 2049}, "query: String should have at most 2048 characters"),
    ({"query": ""}, "query: String should have at least 1 character"),
    ({"query": "   "}, "a query must be non-empty text"),
    ({"query": "x", "candiates": 5}, "candiates: Extra inputs are not permitted"),
    ({"query": "x", "ef_search": 64}, "ef_search: Extra inputs are not permitted"),
    ({"query": "x", "rerank": 0}, "rerank: Input should be a valid boolean"),
    ({"query": "x", "where": "yeer > 3"}, "unknown field 'yeer' in filter"),
    ({"query": "x", "where": "year >"}, "filter"),
    ({"query": "x", "where": {"year": {"~": 1}}}, "bad condition '~': 1 for field 'year'"),
    ({"k": 3}, "query: Field required"),
]


@pytest.mark.parametrize(("body", "detail"), BAD_REQUESTS)
def test_bad_searches_are_422_with_the_reason(server, body, detail):
    response = post(server, "/search", body)
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]


def test_limits_and_protocol_errors(server):
    url = server.url
    too_many = {"queries": ["q"] * 65}
    assert post(server, "/search/batch", too_many).status_code == 422
    big = json.dumps({"query": "x" * (1 << 20)}).encode()
    headers = {"content-type": "application/json"}
    for content in (big, iter([big[:1000], big[1000:]])):  # with Content-Length, then chunked
        response = httpx.post(f"{url}/search", content=content, headers=headers, timeout=60)
        assert response.status_code == 413, response.text
        assert "larger than the limit of 1,048,576 bytes" in response.json()["detail"]
    form = httpx.post(f"{url}/search", content=b'{"query": "x"}', timeout=60,
                      headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert form.status_code == 415 and "Content-Type: application/json" in form.json()["detail"]
    broken = httpx.post(f"{url}/search", content=b'{"query": ', headers=headers, timeout=60)
    assert broken.status_code == 422 and "not valid JSON" in broken.json()["detail"]
    assert httpx.get(f"{url}/nowhere").status_code == 404
    assert httpx.get(f"{url}/search").status_code == 405


def test_upsert_and_delete_are_searchable_at_once(server):
    doc = {"id": "qc", "title": "Quantum computers", "text": "Qubits hold superpositions.",
           "metadata": {"year": 2024}}  # fmt: skip
    added = post(server, "/documents", {"documents": [doc]}).json()
    assert (added["added"], added["replaced"], added["documents"]) == (1, 0, 13)
    assert search(server, "qubit superposition", k=1, rerank=False)["hits"][0]["id"] == "qc"
    again = post(server, "/documents", {"documents": [doc]}).json()
    assert again["unchanged"] == 1 and again["version"] == added["version"]
    changed = {**doc, "text": "Qubits hold superpositions and entangle."}
    assert post(server, "/documents", {"documents": [changed]}).json()["replaced"] == 1
    deleted = post(server, "/documents/delete", {"ids": ["qc", "nope"]}).json()
    assert (deleted["deleted"], deleted["missing"], deleted["documents"]) == (1, ["nope"], 12)
    hits = search(server, "qubit superposition", k=12, rerank=False)["hits"]
    assert "qc" not in {h["id"] for h in hits}
    assert httpx.get(f"{server.url}/info").json()["version"] == deleted["version"]
    for body, detail in (
        ({"documents": [{"id": "a", "text": ""}]}, "documents.0.text"),
        ({"documents": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}, "duplicate id"),
        ({"documents": []}, "documents: List should have at least 1 item"),
        ({"ids": []}, "ids: List should have at least 1 item"),
    ):
        path = "/documents/delete" if "ids" in body else "/documents"
        response = post(server, path, body)
        assert response.status_code == 422 and detail in response.json()["detail"], response.text


def test_another_writer_means_409_and_its_commits_show_up(server):
    url = server.url
    with WriterLock(server.index):
        response = post(server, "/documents/delete", {"ids": ["chess"]})
        assert response.status_code == 409
        assert "only one writer at a time" in response.json()["detail"]
    version = httpx.get(f"{url}/info").json()["version"]
    with IndexWriter.open(server.index) as writer:  # a delete needs no model
        writer.delete(["coffee"])
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/info").json()["version"] == version:  # picked up by the refresher
        assert time.monotonic() < deadline, "the server never saw the other writer's commit"
        time.sleep(0.1)
    hits = search(server, "espresso coffee beans", k=12, rerank=False)["hits"]
    assert "coffee" not in {h["id"] for h in hits}


def test_serve_missing_index_is_an_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "searchkit", "serve", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and "error: no searchkit index" in done.stderr


def test_schemathesis_finds_no_failures(server, tmp_path):
    """Every check, positive and negative examples, except positive_data_acceptance: valid JSON
    may still break rules a schema cannot state (a filter's grammar and the index's fields,
    unique document ids, a query of blanks) and gets 422. Responses may take as long as a
    rerank of 64 queries on 2 cores, so the time limit is generous."""
    run_schemathesis(f"{server.url}/openapi.json", tmp_path, examples=15)


def run_schemathesis(spec: str, tmp_path: Path, *args: str, examples: int) -> None:
    """schemathesis (every check but positive_data_acceptance) against ``spec``: no issues."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config),
        "run", spec, "--checks", "all", "--exclude-checks", "positive_data_acceptance",
        "--max-examples", str(examples), "--seed", "7", "--request-timeout", "120",
        "--max-response-time", "120", "--workers", "1", "--output-truncate", "true", *args,
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=tmp_path,  # its cache goes here
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:]
    assert "No issues found" in done.stdout


def test_sigterm_lets_the_write_in_flight_commit(server):
    """SIGTERM during a large upsert: the server stops taking connections, the upsert commits,
    the client gets its answer, the process exits and the index verifies."""
    url = server.url
    before = Manifest.read(server.index)
    words = "graceful shutdown keeps every committed write intact while readers go on".split()
    docs = [
        {"id": f"bulk{n}", "text": " ".join(words[(n + i) % len(words)] for i in range(60))}
        for n in range(300)
    ]
    answer: dict[str, Any] = {}

    def send() -> None:
        try:
            answer["response"] = post(server, "/documents", {"documents": docs}, timeout=300)
        except httpx.HTTPError as err:
            answer["error"] = err

    client = threading.Thread(target=send)
    client.start()
    lock = lock_path(server.index)
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.read_text().strip()):  # the writer holds the lock
        assert time.monotonic() < deadline and client.is_alive(), answer
        time.sleep(0.005)
    server.proc.send_signal(signal.SIGTERM)
    assert client.is_alive()  # the signal came while the upsert was in flight
    time.sleep(0.2)
    with pytest.raises(httpx.TransportError):  # no new connections once shutting down
        httpx.get(f"{url}/health", timeout=5)
    client.join(300)
    # uvicorn re-raises the signal once it has shut down gracefully
    assert server.proc.wait(120) in (0, -signal.SIGTERM)
    after = verify_index(server.index)  # every checksum and count
    response = answer.get("response")
    assert response is not None and response.status_code == 200, answer
    report = response.json()
    assert report["added"] == len(docs) and report["version"] == before.version + 1
    assert (after.version, after.documents) == (report["version"], before.documents + len(docs))


def test_micro_batcher_groups_equal_options_and_isolates_a_bad_query():
    from searchkit.errors import InvalidParameter
    from searchkit.serve.batching import MicroBatcher

    calls: list[tuple[int, list[str]]] = []

    def run(key: int, queries: list[str]) -> list[str]:
        calls.append((key, list(queries)))
        if "bad" in queries:
            raise InvalidParameter("a bad query")
        return [f"{key}:{q}" for q in queries]

    batcher: MicroBatcher[str] = MicroBatcher(run, window_ms=300, max_batch=8, workers=1)
    jobs = [("a", 1), ("b", 1), ("c", 2), ("bad", 1), ("d", 1), ("e", 2)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(batcher.submit, q, key) for q, key in jobs]
        for (q, key), future in zip(jobs, futures, strict=True):
            if q == "bad":
                with pytest.raises(InvalidParameter):
                    future.result()
            else:
                assert future.result() == f"{key}:{q}"  # its neighbours' answers are unharmed
    options = dict(jobs)
    assert all(options[q] == key for key, qs in calls for q in qs)  # no mixed options
    assert max(len(qs) for _, qs in calls) > 1
    assert batcher.stats.queries == len(jobs) and batcher.stats.largest > 1
    batcher.close()
    with pytest.raises(RuntimeError):
        batcher.submit("late", 1)
