"""Readers and writers at the same time: readers in threads while a writer in another process
commits, one writer at a time (the lock), and a lock left behind by a killed writer.

Set SEARCHKIT_CONCURRENCY_REPORT=path.json to get the reader numbers as JSON.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import searchkit.ingest.build
import searchkit.query.searcher
import searchkit.query.view
from searchkit import Document, Searcher, build_index
from searchkit.backends import get_backend
from searchkit.errors import IndexLocked
from searchkit.index.lock import lock_path
from searchkit.inference.encoder import Encoder
from searchkit.inference.resolve import DEFAULT_ENCODER
from searchkit.ingest.writer import IndexWriter
from searchkit.query.searcher import verify_index
from tests.conftest import QUERIES, REPO, tiny_records, write_jsonl

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "COLUMNS": "200"}
FILTERS: list[tuple[str, Any, Callable[[dict], bool]]] = [
    ("all", None, lambda d: True),
    ("year", "year >= 2005", lambda d: d["year"] >= 2005),
    ("topic", {"topic": ["tides", "insulin", "new0", "new3"]}, lambda d: d["topic"] in {
        "tides", "insulin", "new0", "new3"
    }),
]  # fmt: skip

# A writer process: ROUNDS commits (upsert a new + a changed document, delete one, compact),
# logging after each the version it made and the documents it holds.
WRITER = textwrap.dedent(
    """
    import json, sys, time
    from searchkit import Document
    from searchkit.ingest.writer import IndexWriter

    path, log, rounds, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    docs = json.loads(open(sys.argv[5]).read())  # id -> {title, text, year, topic}
    originals = sorted(docs)

    def emit(**fields):
        with open(log, "a") as f:
            f.write(json.dumps(fields) + "\\n")

    with IndexWriter.open(path) as w:
        w.encoder.model  # load before the timed commits
        emit(event="ready", t=time.time())
        for i in range(rounds):
            alive = [d for d in originals if d in docs]
            t0 = time.time()
            if i % 3 == 0:
                new = {"title": f"New {i}", "text": f"Fresh note {i} on kiwi orchards.",
                       "year": 2100 + i, "topic": f"new{i}"}
                old = alive[i % len(alive)]
                changed = dict(docs[old], text=docs[old]["text"] + f" (revised {i})",
                               year=docs[old]["year"] + 100)
                report = w.upsert([
                    Document(f"new{i}", new["text"], new["title"],
                             {"year": new["year"], "topic": new["topic"]}),
                    Document(old, changed["text"], changed["title"],
                             {"year": changed["year"], "topic": changed["topic"]}),
                ])
                docs[f"new{i}"], docs[old] = new, changed
            elif i % 3 == 1:
                gone = alive[-1 - i % len(alive)]
                report = w.delete([gone])
                del docs[gone]
            else:
                report = w.compact()
            emit(event="commit", version=report.version, t0=t0, t1=time.time(), docs=docs)
            time.sleep(pause)
    """
)

HOLDER = textwrap.dedent(
    """
    import sys
    from searchkit.ingest.writer import IndexWriter

    writer = IndexWriter.open(sys.argv[1])
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until stdin closes (or SIGKILL)
    writer.close()
    """
)


def initial_docs() -> dict[str, dict]:
    return {
        r["_id"]: {"title": r["title"], "text": r["text"], "year": r["year"], "topic": r["topic"]}
        for r in tiny_records()
    }


@pytest.fixture(scope="module")
def base_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("concurrency")
    corpus = write_jsonl(root / "tiny.jsonl", tiny_records())
    return build_index(corpus, root / "base" / "idx", progress=False).path


@pytest.fixture
def index(base_index: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base_index, tmp_path / "idx"))


def cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "searchkit", *args],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_holder(index: Path) -> subprocess.Popen[str]:
    """Another process holding the index's writer lock (an open IndexWriter)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(index)],
        cwd=REPO,
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    line = holder.stdout.readline()
    assert line == "locked\n", holder.stderr.read() if holder.stderr else line
    return holder


class Reader(threading.Thread):
    """Query the index in a loop; record (version, filter, {(id, text)}) of every result.

    mode: "pinned" keeps the version it opened; "refresh" calls refresh() every few queries;
    "reopen" opens a new Searcher (alternately with and without checksums) for every query.
    """

    def __init__(
        self, index: Path, mode: str, go: threading.Event, stop: threading.Event, number: int
    ) -> None:
        super().__init__(name=f"reader-{mode}-{number}", daemon=True)
        self.index = index
        self.mode = mode
        self.go = go
        self.stop = stop
        self.number = number
        self.encoder = Encoder(DEFAULT_ENCODER)  # one per thread: tokenizers are not shared
        self.encoder.model  # noqa: B018 - load here, not in the threads
        self.searcher = self.open(verify=True)
        self.results: list[tuple[float, int, str, frozenset[tuple[str, str]]]] = []
        self.opens = self.refreshes = 0
        self.errors: list[str] = []

    def open(self, verify: bool) -> Searcher:
        searcher = Searcher.open(self.index, verify=verify)
        searcher.encoder = self.encoder
        return searcher

    def run(self) -> None:
        queries = list(QUERIES)
        n = 0
        self.go.wait(timeout=300)
        while not self.stop.is_set():
            try:
                if self.mode == "reopen":
                    self.searcher = self.open(verify=n % 2 == 0)
                    self.opens += 1
                elif self.mode == "refresh" and n % 4 == 3:
                    self.refreshes += self.searcher.refresh()
                label, where, _ = FILTERS[(n + self.number) % len(FILTERS)]
                version = self.searcher.manifest.version
                hits = self.searcher.search(
                    queries[n % len(queries)], k=50, rerank=False, where=where
                )
                got = frozenset((h.id, h.text) for h in hits)
                self.results.append((time.time(), version, label, got))
            except Exception:  # noqa: BLE001 - every error fails the test
                self.errors.append(traceback.format_exc())
                if len(self.errors) > 5:
                    return
            n += 1


def expected(docs: dict[str, dict], label: str) -> frozenset[tuple[str, str]]:
    keep = next(f for name, _, f in FILTERS if name == label)
    return frozenset((i, d["text"]) for i, d in docs.items() if keep(d))


@pytest.mark.slow
def test_readers_see_one_version_while_another_process_commits(index, tmp_path):
    start_docs = initial_docs()
    (tmp_path / "docs.json").write_text(json.dumps(start_docs))
    go, stop = threading.Event(), threading.Event()
    modes = ["pinned", "refresh", "reopen", "reopen"]
    readers = [Reader(index, mode, go, stop, n) for n, mode in enumerate(modes)]
    for r in readers:
        r.start()
    log, output = tmp_path / "writer.jsonl", tmp_path / "writer.txt"
    rounds = 9
    with open(output, "w") as out:
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(index), str(log), str(rounds), "0.2"]
            + [str(tmp_path / "docs.json")],
            cwd=REPO,
            env=ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300
        while writer.poll() is None and time.monotonic() < deadline:
            if log.exists() and log.read_text():
                break  # loaded its model: about to commit
            time.sleep(0.05)
        go.set()  # the readers start querying (not earlier: the writer loads faster alone)
        writer.wait(timeout=300)
    time.sleep(0.3)  # a few queries after the last commit
    stop.set()
    for r in readers:
        r.join(timeout=60)
    assert writer.returncode == 0, output.read_text()
    errors = [e for r in readers for e in r.errors]
    assert not errors, f"{len(errors)} reader errors, the first:\n{errors[0]}"

    commits = [json.loads(line) for line in log.read_text().splitlines()][1:]
    versions = {1: start_docs} | {c["version"]: c["docs"] for c in commits}
    assert sorted(versions) == list(range(1, rounds + 2))  # every round committed
    first, last = commits[0]["t0"], commits[-1]["t1"]
    seen: dict[str, set[int]] = {}
    during = 0
    for r in readers:
        for t, version, label, got in r.results:
            want = expected(versions[version], label)
            assert got == want, (
                f"{r.name} at version {version} ({label}): "
                f"unexpected {sorted(got - want)}, missing {sorted(want - got)}"
            )
            seen.setdefault(r.mode, set()).add(version)
            during += first <= t <= last
    # the pinned reader never moved, even when compact removed the files it had open
    assert seen["pinned"] == {1}
    assert len(seen["refresh"]) > 2 and len(seen["reopen"]) > 2
    pinned, refreshing = readers[0].searcher, readers[1].searcher
    final = versions[max(versions)]
    for s in (pinned, refreshing):
        s.refresh()
        assert s.manifest.version == max(versions)
        assert set(s.ids()) == set(final)
    assert verify_index(index).version == max(versions)

    queries = sum(len(r.results) for r in readers)
    summary = {
        "readers": len(readers),
        "modes": modes,
        "commits": len(commits),
        "queries": queries,
        "queries_during_commits": during,
        "commit_window_seconds": round(last - first, 2),
        "queries_per_second_during_commits": round(during / (last - first), 1),
        "reopens": sum(r.opens for r in readers),
        "refreshes": sum(r.refreshes for r in readers),
        "versions_seen": {mode: sorted(v) for mode, v in seen.items()},
        "errors": 0,
    }
    print(
        f"\nconcurrency: {len(readers)} reader threads ({', '.join(modes)}) ran {queries} "
        f"queries, {during} of them during {len(commits)} commits by another process over "
        f"{last - first:.1f}s = {summary['queries_per_second_during_commits']} queries/s; "
        f"{summary['reopens']} re-opens, {summary['refreshes']} refreshes, 0 errors, every "
        "result equal to its version's documents"
    )
    if path := os.environ.get("SEARCHKIT_CONCURRENCY_REPORT"):
        Path(path).write_text(json.dumps(summary, indent=2) + "\n")


@pytest.mark.parametrize(("backend", "kind"), [("faiss", "hnsw"), ("hnswlib", "hnsw")])
def test_open_retries_when_a_commit_removes_the_vector_index_it_is_loading(
    tmp_path, monkeypatch, backend, kind
):
    """A reader opening version v while a writer's commit removes v's files must retry and open
    the new version, whichever file goes missing under it (here: the vector index, between the
    size/checksum check and its load; the interleaving is forced, the writer is real)."""
    corpus = write_jsonl(tmp_path / "tiny.jsonl", tiny_records())
    index = build_index(corpus, tmp_path / "idx", backend=backend, kind=kind, progress=False).path
    with IndexWriter.open(index) as w:
        w.delete(["chess"])  # version 2: something to compact
    cls = get_backend(backend)  # (a flat index has no file of its own to load)
    real_load = cls.load.__func__
    commits = []

    def load(klass, path, dim, kind, params):  # noqa: ANN001, ANN202
        if not commits:  # the first load: another writer commits right now
            with IndexWriter.open(index) as w:
                commits.append(w.compact().version)  # removes segments/s000001
        return real_load(klass, path, dim, kind, params)

    monkeypatch.setattr(cls, "load", classmethod(load))
    s = Searcher.open(index)  # RuntimeError today: the backend's load is not retried
    assert commits == [3] and s.manifest.version == 3
    assert "chess" not in s.ids() and len(s) == 11


def test_open_retries_when_a_commit_removes_the_deletions_it_is_reading(tmp_path, monkeypatch):
    corpus = write_jsonl(tmp_path / "tiny.jsonl", tiny_records())
    index = build_index(corpus, tmp_path / "idx", progress=False).path
    with IndexWriter.open(index) as w:
        w.delete(["chess"])  # version 2 has deletions/v000002.parquet
    real = searchkit.query.view.read_deletions
    commits = []

    def read_deletions(root, manifest):  # noqa: ANN001, ANN202
        if not commits:
            with IndexWriter.open(index) as w:
                commits.append(w.delete(["tides"]).version)  # removes v000002.parquet
        return real(root, manifest)

    monkeypatch.setattr(searchkit.query.view, "read_deletions", read_deletions)
    s = Searcher.open(index)
    assert commits == [3] and s.manifest.version == 3
    assert {"chess", "tides"}.isdisjoint(s.ids()) and len(s) == 10


def test_a_reader_opening_during_a_rebuild_gets_the_old_or_the_new_version(
    index, tmp_path, monkeypatch
):
    """``searchkit index --force`` over a living index: a reader opening just before the
    rebuild's switch must get the old version (a query must not fail while an index is
    rebuilt). The reader runs at a forced point of a real rebuild."""
    with IndexWriter.open(index) as w:
        w.delete(["chess"])  # version 2
    rebuild = [r for r in tiny_records() if r["_id"] != "tides"]
    corpus = write_jsonl(tmp_path / "rebuild.jsonl", rebuild)
    real_commit = searchkit.ingest.build._commit
    opened: list[object] = []

    def commit(root, out, manifest):  # noqa: ANN001, ANN202
        try:  # a reader opens the index right now, just before the switch
            opened.append(Searcher.open(out).manifest.version)
        except Exception as err:  # noqa: BLE001
            opened.append(err)
        return real_commit(root, out, manifest)

    monkeypatch.setattr(searchkit.ingest.build, "_commit", commit)
    build_index(corpus, index, force=True, progress=False)
    assert opened == [2]  # CorruptIndex today: the rebuild replaced segments/s000001 early
    s = Searcher.open(index)
    assert s.manifest.version == 3 and sorted(s.ids()) == sorted(r["_id"] for r in rebuild)


def test_a_second_writer_in_the_same_process_is_refused(index, tmp_path):
    message = rf"{re.escape(str(index))} is being changed by pid {os.getpid()} "
    with IndexWriter.open(index) as w:
        with pytest.raises(IndexLocked, match=message):
            IndexWriter.open(index)
        corpus = write_jsonl(tmp_path / "tiny.jsonl", tiny_records())
        with pytest.raises(IndexLocked, match=message):
            build_index(corpus, index, force=True, progress=False)
        assert w.delete(["chess"]).version == 2  # the holder still works
    with IndexWriter.open(index) as w:  # released
        assert w.delete(["tides"]).version == 3


@pytest.mark.slow
def test_a_writer_in_another_process_makes_the_cli_refuse_to_write(index, tmp_path):
    corpus = write_jsonl(tmp_path / "tiny.jsonl", tiny_records()[:3])
    manifest = (index / "manifest.json").read_text()
    holder = start_holder(index)
    try:
        assert lock_path(index).read_text().startswith(f"pid {holder.pid} (")
        runs = {
            "add": cli("add", str(index), str(corpus), "--no-progress"),
            "index --force": cli(
                "index", str(corpus), "-o", str(index), "--force", "--no-progress"
            ),
        }
        for command, run in runs.items():
            out, err = run.communicate(timeout=300)
            assert run.returncode == 1, (command, out, err)
            assert f"error: {index} is being changed by pid {holder.pid} (" in err, (command, err)
            assert "only one writer at a time" in err and "Traceback" not in err
    finally:
        holder.communicate(input="", timeout=60)  # release
    assert holder.returncode == 0
    assert (index / "manifest.json").read_text() == manifest  # nothing changed
    assert lock_path(index).read_text() == ""  # released locks are emptied


@pytest.mark.slow
def test_a_lock_left_by_a_killed_writer_does_not_block_the_next(index):
    holder = start_holder(index)
    holder.kill()  # SIGKILL while holding the lock
    holder.communicate(timeout=60)  # also closes its pipes
    assert holder.returncode == -9
    lock = lock_path(index)
    assert lock.read_text().startswith(f"pid {holder.pid} (")  # stale: names a dead process
    run = cli("delete", str(index), "--ids", "chess,nope")
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert "version 2" in out
    assert verify_index(index).version == 2
    with IndexWriter.open(index) as w:
        w.upsert([Document("kiwi", "Kiwi fruit is rich in vitamin C.", "Kiwi", {})])
    s = Searcher.open(index)
    assert s.manifest.version == 3 and "chess" not in s.ids()
    assert s.search("kiwi vitamin fruit", k=1, rerank=False)[0].id == "kiwi"
