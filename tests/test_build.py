"""Building indexes with the real bi-encoder: every backend, manifest, atomic replacement."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from searchkit import CorpusError, IndexExists, Manifest, Searcher, build_index
from searchkit.index.fsio import sha256_file
from searchkit.inference.runtimes import Runtime
from tests.conftest import QUERIES, tiny_records, write_jsonl

pytestmark = pytest.mark.slow

BACKENDS = [
    ("faiss", "flat", {}),
    ("faiss", "hnsw", {"m": 8}),
    ("faiss", "ivf", {"nlist": 2, "nprobe": 2}),
    ("hnswlib", "hnsw", {"ef_search": 16}),
    ("exact", "flat", {}),
]


@pytest.mark.parametrize(("backend", "kind", "params"), BACKENDS)
def test_round_trip_puts_the_relevant_document_first(tiny_corpus, tmp_path, backend, kind, params):
    report = build_index(
        tiny_corpus, tmp_path / "idx", backend=backend, kind=kind, params=params, progress=False
    )
    m = report.manifest
    assert m.documents == 12 and m.backend.name == backend and m.backend.kind == kind
    assert params.items() <= m.backend.params.items()
    searcher = Searcher.open(report.path)
    results = searcher.search_batch(list(QUERIES), k=3, rerank=False)
    assert [hits[0].id for hits in results] == list(QUERIES.values())
    top = results[0][0]
    assert top.title == "Vaccines" and top.metadata == {"topic": "vaccine", "year": 2000}
    assert top.text.startswith("A vaccine trains") and top.score == top.retrieval_score


def test_manifest_records_what_the_issue_asks(tiny_corpus, tmp_path):
    report = build_index(tiny_corpus, tmp_path / "idx", backend="hnswlib", progress=False)
    data = json.loads((report.path / "manifest.json").read_text())
    assert data["format_version"] == 4 and data["version"] == 1
    auto = Runtime.parse(None, role="encoder")  # the fastest installed that keeps quality
    assert data["encoder"] == {
        "name": "sentence-transformers/all-MiniLM-L6-v2",
        "dim": 384,
        "max_seq_length": 256,
        "runtime": auto.name,
        "precision": auto.precision,
    }
    assert data["reranker"] == "cross-encoder/ms-marco-MiniLM-L6-v2"
    assert data["similarity"] == "cosine"
    assert data["backend"] == {
        "name": "hnswlib",
        "kind": "hnsw",
        "params": {"m": 32, "ef_construction": 200, "ef_search": 64},
    }
    assert data["documents"] == 12 and data["deleted"] == 0
    assert data["segments"] == [
        {"name": "s000001", "rows": 12, "deleted": 0, "passages": 12, "chunked": 0, "truncated": 0}
    ]
    assert data["chunking"] == {"tokens": 254, "overlap": 32, "enabled": True}
    assert data["corpus"]["sha256"] == sha256_file(tiny_corpus)
    assert data["searchkit_version"] and data["created"]
    for entry in data["files"].values():
        path = report.path / entry["path"]
        assert entry["bytes"] == path.stat().st_size and entry["sha256"] == sha256_file(path)
    parts = ("docs", "fields", "index", "lexical", "passages", "rows", "vectors")
    assert sorted(data["files"]) == [f"s000001/{p}" for p in parts]
    assert data["lexical"]["kind"] == "bm25"  # the default first stage beside the vectors
    assert pq.read_table(report.path / data["files"]["s000001/docs"]["path"]).num_rows == 12
    assert report.docs_per_second > 0


def test_default_folder_is_indexes_slash_corpus_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus = write_jsonl(tmp_path / "news.jsonl", tiny_records()[:3])
    assert build_index(corpus, progress=False).path == Path("indexes/news")
    assert Manifest.read("indexes/news").documents == 3


def test_existing_index_needs_force_and_is_replaced_atomically(tiny_corpus, tmp_path):
    out = tmp_path / "idx"
    build_index(tiny_corpus, out, progress=False)
    with pytest.raises(IndexExists, match="pass force=True"):
        build_index(tiny_corpus, out, progress=False)
    smaller = write_jsonl(tmp_path / "small.jsonl", tiny_records()[:4])
    report = build_index(smaller, out, force=True, backend="exact", progress=False)
    assert report.manifest.version == 2 and report.manifest.documents == 4
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "segments"]
    assert [p.name for p in (out / "segments").iterdir()] == [
        "s000002"
    ]  # a fresh name: s000001 stays intact until the switch
    assert len(Searcher.open(out)) == 4
    assert not list(tmp_path.glob(".idx.build-*"))


def test_a_folder_that_is_not_an_index_is_never_overwritten(tiny_corpus, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    with pytest.raises(IndexExists, match="not a searchkit index"):
        build_index(tiny_corpus, out, force=True, progress=False)
    assert (out / "notes.txt").read_text() == "precious"


def snapshot(folder: Path) -> dict[str, str]:
    """Checksums of the index's files; hidden ones (a dead writer's staging) are not the index."""
    files = (p.relative_to(folder) for p in sorted(folder.rglob("*")) if p.is_file())
    return {
        str(p): sha256_file(folder / p)
        for p in files
        if not any(part.startswith(".") for part in p.parts)
    }


def test_bad_input_during_a_forced_rebuild_leaves_the_old_index_intact(tiny_corpus, tmp_path):
    out = tmp_path / "idx"
    build_index(tiny_corpus, out, progress=False)
    before = snapshot(out)
    bad = write_jsonl(tmp_path / "bad.jsonl", [*tiny_records(), {"_id": "z", "text": ""}])
    with pytest.raises(CorpusError, match=r"bad.jsonl:13: field 'text' is empty"):
        build_index(bad, out, force=True, progress=False)
    assert snapshot(out) == before
    assert not list(tmp_path.glob(".idx.build-*"))
    Searcher.open(out)  # still verifies


def test_killed_build_leaves_the_old_index_intact(tiny_corpus, tmp_path):
    out = tmp_path / "idx"
    build_index(tiny_corpus, out, progress=False)
    before = snapshot(out)
    big = write_jsonl(
        tmp_path / "big.jsonl",
        [{"_id": f"d{i}", "text": f"document number {i} " * 60} for i in range(1500)],
    )
    log = tmp_path / "build.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "searchkit",
                "index",
                str(big),
                "-o",
                str(out),
                "--force",
                "--no-progress",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + 120
    # kill once embedding has started writing the new version into the staging folder
    while not list((out / "segments").glob(".s000002.tmp-*/vectors.f32")):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the build never started writing"
        time.sleep(0.1)
    time.sleep(1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert snapshot(out) == before
    assert len(Searcher.open(out)) == 12
    # the next writer clears the dead build's staging folder
    build_index(tiny_corpus, out, force=True, progress=False)
    assert [p.name for p in (out / "segments").iterdir()] == ["s000002"]
