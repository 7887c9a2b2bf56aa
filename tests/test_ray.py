"""Scale-out on Ray: sharded ingest on a real local cluster with two workers, and sharded search.

The module starts its own cluster (``ray start --head`` on 127.0.0.1, which runs no tasks, and
two worker nodes of one CPU each, in a private temp dir) and stops exactly the processes it
started, whatever happens.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from searchkit import (
    CorpusError,
    CorpusReader,
    CorruptIndex,
    Document,
    IncompatibleIndex,
    IndexWriter,
    InvalidParameter,
    Manifest,
    Searcher,
    build_index,
    verify_index,
)
from searchkit.distributed.blocks import parse_block, plan_blocks
from searchkit.index.lexical import user_dict_path
from searchkit.index.sections import CorpusSection, EncoderSection
from searchkit.index.segment import VectorSpec
from searchkit.index.sharded import (
    Routing,
    ShardedManifest,
    ShardEntry,
    ShardHeader,
    commit_sharded,
    generation,
    is_sharded,
    read_manifest,
    write_shard,
)
from searchkit.ingest.corpus import corpus_sha256
from tests.conftest import QUERIES, REPO, assert_same_hits, tiny_records, write_jsonl
from tests.ray_faults import KILL_BLOCK, KILL_MARKER

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

RAY = Path(sys.executable).with_name("ray")
FILLER = [
    (topic, angle)
    for topic in ("glaciers", "violins", "bees", "satellites", "tea", "bridges")
    for angle in ("history", "physics", "economics", "art", "future", "safety")
]
EXTRA_QUERIES = ["the physics of violins", "how bees make honey", "a short note on tea"]
SHARDS, BLOCK_DOCS = 2, 4
AUTH_MODE = "RAY_AUTH_MODE"
# how long a Ray node may take to start; minutes on a 2-core machine loaded with other work
NODE_START_SECONDS = 300
STALL_SECONDS = 600  # Ray Data's no-progress timeout here


def corpus_records() -> list[dict]:
    """The 12 tiny documents and 36 fillers: 48 documents, 12 blocks of 4, 6 per shard."""
    fillers = [
        {
            "_id": f"{topic}-{angle}",
            "title": f"The {angle} of {topic}",
            "text": f"A short note on the {angle} of {topic}, for a general reader ({n}).",
            "year": 1990 + n % 30,
        }
        for n, (topic, angle) in enumerate(FILLER)
    ]
    return tiny_records() + fillers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    # --block keeps `ray start` in the foreground; its own session makes it and every process
    # it starts one process group, which teardown ends by id
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(RAY), "start", "--block", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def _stop(procs: list[subprocess.Popen], temp: Path) -> None:
    for proc in procs:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 3  # a throwaway cluster: a short grace, then SIGKILL
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
    # anything that left the groups but runs from our temp dir is ours too
    for pid in _pids_mentioning(str(temp)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _pids_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray cluster: a head node that runs no tasks and two worker nodes of one CPU
    each; this process is connected to it."""
    temp = Path(tempfile.mkdtemp(prefix="skray-", dir="/tmp"))  # short: Unix socket paths
    port = _free_port()
    address = f"127.0.0.1:{port}"
    # a loopback-only throwaway cluster: no token (one left in ~/.ray would switch it on)
    saved = os.environ.get(AUTH_MODE)
    os.environ[AUTH_MODE] = "disabled"  # for this process and the CLI subprocesses
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    common += ["--object-store-memory=150000000"]
    head_args = [
        "--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false",
        f"--dashboard-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
    ]  # fmt: skip
    procs = [_start([*head_args, "--num-cpus=0", *common], temp / "head.log", env)]
    try:
        _wait_for_port(port, procs[0], temp / "head.log")
        ray.init(address=address, log_to_driver=False)
        # a stalled pipeline (say, workers that cannot start) fails in minutes, not Ray's 30;
        # making Ray Data's context warns about its own deprecated fields
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ray.data.DataContext.get_current().execution_no_progress_timeout_s = STALL_SECONDS
        _wait_for_nodes(1, procs, temp)
        # one node at a time: two raylets registering at once can time out on a busy machine
        for worker in (1, 2):
            _start_worker(worker, address, common, procs, temp, env)
        yield address
    finally:
        try:
            ray.shutdown()
        finally:
            _stop(procs, temp)
            shutil.rmtree(temp, ignore_errors=True)
            if saved is None:
                os.environ.pop(AUTH_MODE, None)
            else:
                os.environ[AUTH_MODE] = saved


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + NODE_START_SECONDS
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"Ray head never listened:\n{log.read_text()}"
            time.sleep(0.2)


def _start_worker(
    number: int,
    address: str,
    common: list[str],
    procs: list[subprocess.Popen],
    temp: Path,
    env: dict[str, str],
) -> None:
    """Start worker node ``number`` and wait until it has joined; a node whose start-up timed
    out (Ray gives up after 30 s when its GCS is slow to answer) is started once more."""
    for attempt in (1, 2):
        args = [f"--address={address}", f"--dashboard-agent-listen-port={_free_port()}"]
        proc = _start([*args, "--num-cpus=1", *common], temp / f"worker-{number}.log", env)
        procs.append(proc)
        deadline = time.monotonic() + NODE_START_SECONDS
        while sum(n["Alive"] for n in ray.nodes()) < 1 + number:
            if proc.poll() is not None:
                break
            assert time.monotonic() < deadline, (temp / f"worker-{number}.log").read_text()
            time.sleep(0.2)
        else:
            return
        procs.remove(proc)
        assert attempt == 1, (temp / f"worker-{number}.log").read_text()


def _wait_for_nodes(count: int, procs: list[subprocess.Popen], temp: Path) -> None:
    deadline = time.monotonic() + NODE_START_SECONDS
    while sum(n["Alive"] for n in ray.nodes()) < count:
        logs = "\n".join(log.read_text() for log in sorted(temp.glob("*.log")))
        assert all(p.poll() is None for p in procs), logs
        assert time.monotonic() < deadline, f"only some Ray nodes joined:\n{logs}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("raycorpus") / "corpus.jsonl", corpus_records())


def sharded_ingest(corpus: Path, out: Path, **options) -> object:
    from searchkit.distributed.ingest import ingest

    return ingest(
        corpus, out, shards=SHARDS, backend="exact", block_docs=BLOCK_DOCS, progress=False,
        **options,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sharded(cluster: str, corpus: Path) -> Path:
    """The corpus ingested on the cluster: 2 exact shards."""
    report = sharded_ingest(corpus, corpus.parent / "sharded")
    assert report.workers == 2 and report.blocks == 12
    return report.path


@pytest.fixture(scope="module")
def single(corpus: Path) -> Path:
    """The same corpus as one ordinary exact index (with BM25, as the shards)."""
    out = corpus.parent / "single"
    return build_index(corpus, out, backend="exact", progress=False).path


def results(searcher: Searcher, queries: list[str], **options) -> list[list[tuple[str, float]]]:
    return [[(h.id, h.score) for h in hits] for hits in searcher.search_batch(queries, **options)]


def assert_same(
    a: Searcher, b: Searcher, queries: list[str], atol: float = 1e-5, **options
) -> None:
    """Both searchers return the same ids in the same order, with the same scores; documents
    of equal scores (within ``atol``: the fillers tie in BM25) may come in any order, and a
    tie cut by ``k`` at the end may hold different ones."""
    assert_same_hits(results(a, queries, **options), results(b, queries, **options), atol)


def test_blocks_parse_exactly_as_corpus_reader(tmp_path: Path) -> None:
    lines = [json.dumps(r) for r in corpus_records()[:10]]
    lines[3:3] = ["", "  "]  # blank lines count in line numbers and are skipped
    plain = write_jsonl(tmp_path / "c.jsonl", lines)
    packed = tmp_path / "c.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    expected = list(CorpusReader(plain))
    for path in (plain, packed):
        plan = plan_blocks(path, 3)
        assert plan.lines == 12 and [b.first_line for b in plan.blocks] == [1, 4, 7, 10]
        assert plan.sha256 == corpus_sha256(plain)
        docs = [d for b in plan.blocks for d in parse_block(path, b).docs]
        assert docs == expected
    bad = write_jsonl(tmp_path / "bad.jsonl", lines[:7] + ['{"_id": "x"}'])
    block = plan_blocks(bad, 3).blocks[2]
    with pytest.raises(CorpusError, match=rf"^{bad}:8: missing field 'text'$"):
        parse_block(bad, block)


def fake_shards(staging: Path, version: int, sizes: list[int]) -> ShardedManifest:
    """Shards of random unit vectors written under ``staging`` (no model, no Ray)."""
    rng = np.random.default_rng(version)
    header = ShardHeader(
        EncoderSection.from_dict({"name": "fake", "dim": 8, "max_seq_length": 16}),
        "fake-reranker",
        VectorSpec("exact", "flat", {}),
        CorpusSection.from_dict({"path": "c.jsonl", "sha256": "0", "skipped_lines": 0}),
    )
    built = []
    for n, size in enumerate(sizes):
        entry = ShardEntry(f"shard-{n:04d}", f"shards/{generation(version)}/shard-{n:04d}", size)
        vectors = rng.normal(size=(size, 8)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        docs = [Document(f"v{version}-{n}-{i}", f"text {i}") for i in range(size)]
        (staging / entry.path).mkdir(parents=True)
        built.append((entry, write_shard(staging / entry.path, [(docs, vectors)], header)))
    return ShardedManifest.create(staging, version, built, corpus=header.corpus)


def test_a_replacement_switches_shard_generations_atomically(tmp_path: Path) -> None:
    out = tmp_path / "idx"
    for version, sizes in ((1, [3, 2]), (2, [4, 1, 2])):
        staging = tmp_path / f".idx.build-{version}"
        manifest = fake_shards(staging, version, sizes)
        commit_sharded(staging, out, manifest, replace=version > 1)
        assert verify_index(out).version == version
        assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shards"]
        assert [p.name for p in (out / "shards").iterdir()] == [generation(version)]
        assert read_manifest(out).documents == sum(sizes)
    assert not staging.exists() or not any((staging / "shards").iterdir())
    (
        out / "shards" / generation(2) / "shard-0001" / "segments" / "s000001" / "docs.parquet"
    ).write_bytes(b"x")
    with pytest.raises(CorruptIndex):
        verify_index(out)
    # shards placed by blocks, as before routing by id: searched, not changed
    with pytest.raises(IncompatibleIndex, match="placed by corpus blocks.*rebuild"):
        IndexWriter.open(out)


@pytest.mark.slow
def test_sharded_index_is_a_parent_manifest_over_ordinary_indexes(sharded: Path) -> None:
    assert is_sharded(sharded)
    m = ShardedManifest.read(sharded)
    assert m.kind == "sharded" and m.version == 1 and m.documents == 48
    assert [s.name for s in m.shards] == ["shard-0000", "shard-0001"]
    assert m.routing == Routing(2)  # each id in shard hash(id) % 2
    assert sorted(p.name for p in sharded.iterdir()) == ["manifest.json", "shards"]
    assert not list(sharded.parent.glob(".sharded.build-*"))  # parts and staging are gone
    ids = []
    for shard in m.shards:
        assert shard.path == f"shards/v000001/{shard.name}"
        plain = Manifest.read(sharded / shard.path)  # an ordinary index
        assert plain.documents == shard.documents > 10
        mine = Searcher.open(sharded / shard.path).ids()
        assert {m.routing.shard_of(i) for i in mine} == {m.shards.index(shard)}
        ids += mine
    assert sorted(ids) == sorted(r["_id"] for r in corpus_records())  # no loss, no duplicate
    # the parent manifest names every shard file, and was written after all of them
    newest = max(f.stat().st_mtime_ns for f in (sharded / "shards").rglob("*") if f.is_file())
    assert (sharded / "manifest.json").stat().st_mtime_ns >= newest
    # per shard its manifest and docs, vectors, index, fields, passages and BM25 terms
    assert len(m.files) == 2 * (1 + 6) and len(m.segments) == 2
    assert verify_index(sharded).documents == 48
    assert m.chunking is not None and m.chunking.enabled  # the tiny documents need no split
    assert m.passage_counts() == {"passages": 48, "chunked": 0, "truncated": 0}


@pytest.mark.slow
def test_exact_shards_return_what_one_exact_index_returns(sharded: Path, single: Path) -> None:
    many, one = Searcher.open(sharded), Searcher.open(single)
    assert type(many) is type(one) is Searcher and len(many) == len(one) == 48
    assert type(many.stage).__name__ == "ShardedIndex" and type(one.stage).__name__ == "PlainIndex"
    queries = [*QUERIES, *EXTRA_QUERIES]
    for k in (1, 3, 10, 48):
        assert_same(many, one, queries, k=k, rerank=False)
    for where in ("year >= 2005 and year < 2015", {"topic": "tides"}):
        assert_same(many, one, queries, k=5, rerank=False, where=where)
    assert many.fields() == one.fields()


@pytest.mark.slow
def test_ray_shards_carry_bm25_and_search_hybrid_like_one_index(
    sharded: Path, single: Path, corpus: Path, tmp_path: Path
) -> None:
    from searchkit.distributed.ingest import ingest

    many, one = Searcher.open(sharded), Searcher.open(single)
    assert many.manifest.lexical == one.manifest.lexical and many.manifest.language == "en"
    assert all(Manifest.read(sharded / s.path).lexical for s in many.manifest.shards)
    assert many.search("tides", 1, rerank=False).mode == "hybrid"  # the default, as on one index
    queries = [*QUERIES, *EXTRA_QUERIES]
    # BM25 with index-wide statistics: one index's scores (to 1e-6), over every matching document
    assert_same(many, one, queries, atol=1e-6, k=48, rerank=False, mode="lexical")
    # the shards embedded other batches than the single build: the vectors differ by rounding,
    # which the weighted fusion's min-max normalization magnifies
    for mode in ("hybrid", "dense"):
        assert_same(many, one, queries, atol=1e-4, k=10, rerank=False, mode=mode)
    assert_same(many, one, queries, atol=1e-4, k=5, rerank=False, where="year >= 2005")
    with pytest.raises(InvalidParameter, match="unknown mode"):
        many.search("tides", mode="sparse")
    with pytest.raises(InvalidParameter, match="stores BM25 terms, not SPLADE's"):
        ingest(corpus, tmp_path / "out", lexical="splade")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_chinese_corpus_ingests_chunked_with_its_analyzer(cluster: str, tmp_path: Path):
    lines = (REPO / "corpora/zh-shop/corpus.jsonl").read_text(encoding="utf-8").splitlines()
    corpus = write_jsonl(tmp_path / "zh.jsonl", lines[:40])
    words = tmp_path / "words.txt"
    words.write_text("超视网膜\n仿生芯片\n", encoding="utf-8")
    options = {"model": "all-MiniLM-L6-v2", "user_dict": words}
    options |= {"chunk_tokens": 24, "chunk_overlap": 8}
    many = Searcher.open(sharded_ingest(corpus, tmp_path / "many", **options).path)
    built = build_index(corpus, tmp_path / "one", backend="exact", progress=False, **options)
    one = Searcher.open(built.path)
    m = many.manifest
    assert m.language == one.manifest.language == "zh"  # detected, as by the plain build
    assert m.lexical == one.manifest.lexical and m.lexical.analyzer["name"] == "zh"
    assert m.chunking == one.manifest.chunking and m.chunking.enabled
    # the same passages as the plain build's, in every shard's segments
    assert m.passage_counts() == one.manifest.passage_counts()
    assert m.passage_counts()["chunked"] > 10
    for shard in m.shards:  # each shard has its copy of the user dictionary
        copy = tmp_path / "many" / shard.path / user_dict_path(m.lexical)
        assert copy.read_bytes() == words.read_bytes()
    assert "超视网膜" in many.analyzer.tokens(["超视网膜屏幕"])[0]
    queries = ["iPhone 15 电池续航", "无线充电", "超视网膜", "售价多少元"]
    assert_same(many, one, queries, atol=1e-6, k=40, rerank=False, mode="lexical")
    assert_same(many, one, queries, atol=1e-4, k=5, rerank=False)
    for hits in many.search_batch(queries, k=10, rerank=False, mode="dense"):
        assert len({h.id for h in hits}) == len(hits)  # passages collapse to documents
        assert any(h.passage is not None for h in hits)  # ... with their best passage


@pytest.mark.slow
def test_merged_candidates_are_reranked_once(
    sharded: Path, single: Path, reranker_path: Path
) -> None:
    many = Searcher.open(sharded, reranker=str(reranker_path))
    one = Searcher.open(single, reranker=str(reranker_path))
    queries = list(QUERIES)
    a = many.search_batch(queries, k=5, candidates=12)
    assert all(hits.reranked for hits in a)
    assert_same(many, one, queries, k=5, candidates=12)


@pytest.mark.slow
def test_ray_actors_search_like_threads(sharded: Path, cluster: str) -> None:
    local = Searcher.open(sharded)
    remote = Searcher.open(sharded, ray_address=cluster)
    try:
        queries = [*QUERIES, *EXTRA_QUERIES]
        assert_same(remote, local, queries, k=7, rerank=False)
        assert sorted(remote.ids()) == sorted(local.ids())
    finally:
        remote.close()


@pytest.mark.slow
def test_a_killed_workers_block_is_retried_not_lost_or_doubled(
    cluster: str, corpus: Path, sharded: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "killed"
    env = {KILL_BLOCK: "5", KILL_MARKER: str(marker), "PYTHONPATH": str(REPO)}
    ray.shutdown()  # join again as a job whose workers run the fault hook
    ray.init(
        address=cluster,
        log_to_driver=False,
        runtime_env={"worker_process_setup_hook": "tests.ray_faults.kill_once", "env_vars": env},
    )
    try:
        report = sharded_ingest(corpus, tmp_path / "again")
    finally:
        ray.shutdown()
        ray.init(address=cluster, log_to_driver=False)
    killed = int(marker.read_text())  # the worker writing block 5 did die
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)
    got, want = ShardedManifest.read(report.path), ShardedManifest.read(sharded)
    assert got.documents == want.documents == 48
    assert [s.documents for s in got.shards] == [s.documents for s in want.shards]
    for a, b in zip(got.shards, want.shards, strict=True):
        sa, sb = Searcher.open(report.path / a.path), Searcher.open(sharded / b.path)
        assert sa.ids() == sb.ids()  # same documents in the same rows: nothing lost or doubled
        va, vb = (np.asarray(s.stage.view.segments[0].vectors) for s in (sa, sb))
        np.testing.assert_allclose(va, vb, atol=1e-6)
    queries = [*QUERIES, *EXTRA_QUERIES]
    a, b = Searcher.open(report.path), Searcher.open(sharded)
    assert_same(a, b, queries, k=10, rerank=False)


@pytest.mark.slow
def test_a_bad_line_fails_the_whole_ingest_and_leaves_no_index(cluster: str, tmp_path: Path):
    lines = [json.dumps(r) for r in corpus_records()]
    lines[29] = '{"_id": "broken", "title": "no text"}'
    bad = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(CorpusError, match=rf"^{bad}:30: missing field 'text'$"):
        sharded_ingest(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.build-*"))


@pytest.mark.slow
def test_a_duplicate_id_across_blocks_names_both_lines(cluster: str, tmp_path: Path) -> None:
    records = corpus_records()
    records[40] = {**records[40], "_id": records[2]["_id"]}
    dup = write_jsonl(tmp_path / "dup.jsonl", records)
    first = f"duplicate id {records[2]['_id']!r} \\(first on line 3\\)"
    with pytest.raises(CorpusError, match=rf"^{dup}:41: {first}$"):
        sharded_ingest(dup, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_gb18030_corpus_ingests_as_it_reads(cluster: str, tmp_path: Path) -> None:
    # blocks are cut at byte offsets: in a multi-byte encoding they must still end at lines
    zh = [
        {
            "_id": "zh-1",
            "title": "饺子",
            "text": "北方人过年常吃饺子，𠀀 在 GB18030 里占四个字节。",
        },
        {"_id": "zh-2", "title": "北京地铁", "text": "北京地铁一号线从苹果园开到环球度假区。"},
    ]
    records = [*corpus_records()[:5], zh[0], *corpus_records()[5:10], zh[1]]
    path = tmp_path / "zh.jsonl"
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    path.write_bytes(text.encode("gb18030"))
    report = sharded_ingest(path, tmp_path / "out", encoding="gb18030")
    assert report.blocks == 3 and report.manifest.documents == 12
    searcher = Searcher.open(report.path)
    for doc in zh:
        hit = searcher.search(doc["text"], k=1, rerank=False)[0]
        assert (hit.id, hit.title, hit.text) == (doc["_id"], doc["title"], doc["text"])


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "searchkit", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_cli_index_on_ray_then_query_info_verify(cluster: str, corpus: Path, tmp_path: Path):
    out = tmp_path / "big"
    done = cli(
        "index", str(corpus), "-o", str(out), "--ray", cluster, "--shards", "2",
        "--backend", "exact", "--no-progress", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    built = json.loads(done.stdout)
    assert built["documents"] == 48 and built["manifest"]["kind"] == "sharded"
    done = cli("query", "what makes sourdough rise", "-i", str(out), "--no-rerank", "--json",
               "-k", "3", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    local = json.loads(done.stdout)
    assert local["hits"][0]["id"] == "sourdough"
    done = cli("query", "what makes sourdough rise", "-i", str(out), "--no-rerank", "--json",
               "-k", "3", "--ray", cluster, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["hits"] == local["hits"]  # Ray actors answer like threads
    info = json.loads(cli("info", str(out), "--json", cwd=tmp_path).stdout)
    assert info["kind"] == "sharded" and len(info["shards"]) == 2 and info["documents"] == 48
    assert cli("info", str(out), cwd=tmp_path).returncode == 0
    done = cli("verify", str(out), cwd=tmp_path)
    assert done.returncode == 0 and "OK" in done.stdout
    # add, delete, compact and verify work as on a plain index, each id in its hash shard
    routing = ShardedManifest.read(out).routing
    assert routing is not None
    more = [
        {"_id": "kiwi", "title": "Kiwi", "text": "Kiwi fruit is rich in vitamin C."},
        {"_id": "papaya", "title": "Papaya", "text": "Papayas ripen in the tropical summer heat."},
    ]
    assert {routing.shard_of(r["_id"]) for r in more} == {0, 1}  # the change spans both shards
    gone = [r["_id"] for r in corpus_records()[:6]]
    for args in (
        ("add", str(out), str(write_jsonl(tmp_path / "more.jsonl", more)), "--no-progress"),
        ("delete", str(out), "--ids", ",".join(gone)),
        ("compact", str(out)),
        ("verify", str(out)),
    ):
        done = cli(*args, "--json", cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr[-3000:])
    m = verify_index(out)
    assert (m.version, m.documents, m.deleted) == (4, 44, 0)
    for number, shard in enumerate(m.shards):
        ids = Searcher.open(out / shard.path).ids()
        assert all(routing.shard_of(i) == number for i in ids)
        assert not set(gone) & set(ids)
    done = cli("query", "vitamin C fruit", "-i", str(out), "--no-rerank", "--json", "-k", "1",
               cwd=tmp_path)  # fmt: skip
    assert json.loads(done.stdout)["hits"][0]["id"] == "kiwi"
    done = cli("index", str(corpus), "-o", str(tmp_path / "x"), "--shards", "2", cwd=tmp_path)
    assert done.returncode == 1 and "need --ray" in done.stderr
    # a plain build replaces the sharded index, and its version goes on from the parent's
    done = cli("index", str(corpus), "-o", str(out), "--backend", "exact", "--force",
               "--no-progress", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    replaced = Manifest.read(out)
    assert replaced.version == m.version + 1 and replaced.documents == 48
    assert not (out / "shards").exists()
    verify_index(out)
