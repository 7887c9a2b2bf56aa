"""Smoke tests of benchmarks/*.py: each runs as a script on tiny data and writes sane JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DOCS, QUERIES, REPO, write_jsonl

pytestmark = pytest.mark.slow

FILLER_TOPICS = ["glaciers", "violins", "bees", "satellites", "tea", "bridges"]
FILLER_ANGLES = ["history", "physics", "economics"]


@pytest.fixture(scope="module")
def tiny_beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 documents, 5 judged queries and test qrels in BEIR layout."""
    root = tmp_path_factory.mktemp("beir") / "tiny"
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": i, "title": t, "text": x, "metadata": {}} for i, t, x in DOCS]
    docs += [
        {
            "_id": f"{topic}-{angle}",
            "title": f"The {angle} of {topic}",
            "text": f"A short note on the {angle} of {topic}, written for a general reader.",
        }
        for topic in FILLER_TOPICS
        for angle in FILLER_ANGLES
    ]
    assert len(docs) == 30
    write_jsonl(root / "corpus.jsonl", docs)
    queries = [{"_id": f"q{n}", "text": text} for n, text in enumerate(QUERIES)]
    write_jsonl(root / "queries.jsonl", queries)
    rows = [f"q{n}\t{doc}\t1\n" for n, doc in enumerate(QUERIES.values())]
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(rows))
    return root


def run_script(name: str, tmp_path: Path, *args: str) -> dict:
    """Run benchmarks/<name>.py with --json into tmp_path; return the JSON it wrote."""
    out = tmp_path / f"{name}.json"
    command = [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), *args, "--json", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert name in done.stdout  # the header and table went to stdout
    payload = json.loads(out.read_text())
    assert payload["benchmark"] == name
    assert payload["machine"]["cpu_count"] >= 1
    assert payload["machine"]["torch_threads"] >= 1
    assert f"{name}.py" in payload["command"]
    return payload["results"]


def test_ingest(tiny_beir: Path, tmp_path: Path) -> None:
    options = ["--dataset", str(tiny_beir), "--warmup", "4", "--threads", "1"]
    r = run_script("ingest", tmp_path, *options)
    assert r["documents"] == 30
    for phase in ("raw_encode", "build_embed_phase", "build_end_to_end"):
        assert r[phase]["seconds"] > 0
        assert r[phase]["docs_per_second"] > 0
    assert r["overhead_embed_phase"] > -1
    assert r["peak_rss_mb"]["build"] > 50
    assert r["index_bytes_per_document"] > 384 * 4  # at least the float32 vector
    assert r["order"].startswith("raw-first")


def test_query_latency(tiny_beir: Path, tmp_path: Path, reranker_path: Path) -> None:
    r = run_script(
        "query_latency", tmp_path,
        "--dataset", str(tiny_beir), "--index", str(tmp_path / "index"),
        "--reranker", str(reranker_path), "--queries", "5", "--rerank-queries", "2",
        "--candidates", "5", "--batch-size", "4", "--batches", "2", "--warmup", "1",
        "--threads", "1",
    )  # fmt: skip
    assert r["documents"] == 30
    assert set(r["modes"]) == {
        "retrieve", "retrieve (hybrid)", "retrieve+rerank@5", "batch of 4 (retrieve)"
    }  # fmt: skip
    assert r["modes"]["retrieve"]["searchkit"]["n"] == 5
    for mode in r["modes"].values():
        for side in ("searchkit", "baseline"):
            assert 0 < mode[side]["p50"] <= mode[side]["p95"] <= mode[side]["p99"]
        assert mode["ratio"]["p50"] > 0


def test_ann(tmp_path: Path) -> None:
    r = run_script("ann", tmp_path, "--n", "2000", "--queries", "20", "--threads", "1")
    assert r["vectors"] == 2000
    points = {(p["label"], p["value"]): p for p in r["sweeps"]}
    assert points[("exact", None)]["recall@10"] == 1.0
    assert points[("exact", None)]["speedup"] == pytest.approx(1.0)
    assert points[("faiss flat", None)]["recall@10"] >= 0.99
    assert {label for label, _ in points} == {
        "exact", "faiss flat", "faiss hnsw", "faiss ivf", "hnswlib hnsw"
    }  # fmt: skip
    assert len(points) == 2 + 5 + 4 + 5  # the ef and nprobe sweeps
    for p in r["sweeps"]:
        assert 0 <= p["recall@10"] <= 1
        assert p["qps"] > 0
    assert points[("faiss hnsw", 256)]["recall@10"] >= 0.9
    assert all(b["bytes"] > 0 and b["build_seconds"] >= 0 for b in r["builds"])


def test_scale(tiny_beir: Path, tmp_path: Path) -> None:
    r = run_script(
        "scale", tmp_path,
        "--size", "2000", "--queries", "20", "--shards", "2", "--m", "8",
        "--ef-construction", "40", "--ef", "10,1000", "--batch", "10", "--exact-queries", "5",
        "--reference", str(tiny_beir), "--reference-index", str(tmp_path / "ref"),
        "--threads", "1",
    )  # fmt: skip
    assert [s["rows"] for s in r["build"]["shards"]] == [1000, 1000]
    points = {(p["mode"], p["system"], p["ef"]): p for p in r["sweeps"]}
    assert len(points) == 3 + 2 * 3 * 2  # exact; per system, mode and ef
    for mode in ("1 core", "all cores", "batch"):
        assert points[(mode, "exact (faiss flat)", None)]["speedup"] == pytest.approx(1.0)
        # ef as large as a shard: the search is all but exhaustive
        assert points[(mode, "searchkit", 1000)]["recall"] >= 0.99
        assert points[(mode, "raw hnswlib", 1000)]["recall"] >= 0.99
    assert all(0 <= p["recall"] <= 1 and p["qps"] > 0 for p in r["sweeps"])
    per_vector = r["disk"]["per_vector"]
    assert per_vector["vectors"] == pytest.approx(384 * 4, rel=0.01)
    assert per_vector["index: graph"] > 0
    assert r["calibration"]["rows"] == 30
    assert r["calibration"]["real"]["1st neighbour"]["p50"] > 0


def test_quality(tiny_beir: Path, tmp_path: Path, reranker_path: Path) -> None:
    r = run_script(
        "quality", tmp_path,
        "--dataset", str(tiny_beir), "--index-dir", str(tmp_path / "indexes"),
        "--reranker", str(reranker_path), "--candidates", "10", "--threads", "1",
    )  # fmt: skip
    systems = r["tiny"]["systems"]
    assert set(systems) == {"bm25s", "searchkit retrieve", "searchkit rerank"}
    for system in systems.values():
        assert set(system["metrics"]) >= {"nDCG@10", "MRR@10", "Recall@10", "Recall@100"}
        assert all(0 <= v <= 1 for v in system["metrics"].values())
        assert system["latency_ms"]["p50"] > 0
    assert systems["bm25s"]["vs_bm25"]["nDCG@10"] == pytest.approx(1.0)
    # each query names its one relevant document: the bi-encoder finds it
    assert systems["searchkit retrieve"]["metrics"]["Recall@10"] == 1.0


def test_rerank(tiny_beir: Path, tmp_path: Path, reranker_path: Path) -> None:
    r = run_script(
        "rerank", tmp_path,
        "--dataset", str(tiny_beir), "--index", str(tmp_path / "index"),
        "--reranker", str(reranker_path), "--queries", "3", "--candidates", "5,10",
        "--threads", "1",
    )  # fmt: skip
    assert r["mode"] == "hybrid" and r["max_tokens"] == 256
    for depth in ("5", "10"):
        row = r[depth]
        assert row["pairs"] == 3 * int(depth) and 0 <= row["truncated"] <= row["pairs"]
        assert row["searchkit_ms"]["p50"] > 0 and row["baseline_ms"]["p50"] > 0


def test_rerank_cost(tiny_beir: Path, tmp_path: Path, reranker_path: Path) -> None:
    r = run_script(
        "rerank_cost", tmp_path,
        "--dataset", str(tiny_beir), "--index", str(tmp_path / "index"),
        "--reranker", str(reranker_path), "--candidates", "5,10", "--depth", "10",
        "--caps", "48", "--exit-shares", "0.6", "--threads", "1",
    )  # fmt: skip
    rows = r["rows"]
    assert list(rows)[:3] == ["depth 5", "depth 10", "cap 48 tokens"]
    exit_row = rows[list(rows)[3]]
    queries = 5  # tiny_beir's test queries
    assert 0 < exit_row["early_exit"] < queries  # about 60% exit, not none nor all
    assert exit_row["pairs"] == 10 * (queries - exit_row["early_exit"])
    assert rows["depth 5"]["pairs"] == 5 * queries and rows["depth 10"]["max_tokens"] == 256
    assert rows["cap 48 tokens"]["max_tokens"] == 48
    assert rows["cap 48 tokens"]["truncated"] >= rows["depth 10"]["truncated"]
    for row in rows.values():
        assert 0 < row["ndcg10_rerank"] <= 1 and row["rerank_over_retrieval"] > 0


def test_rerank_fusion(tiny_beir: Path, tmp_path: Path, reranker_path: Path) -> None:
    r = run_script(
        "rerank_fusion", tmp_path,
        "--dataset", str(tiny_beir), "--index", str(tmp_path / "index"),
        "--reranker", str(reranker_path), "--candidates", "5", "--weights", "0,1",
        "--threads", "1",
    )  # fmt: skip
    assert r["mode"] == "hybrid" and r["pairs"] == 5 * 5
    assert set(r["ndcg10"]) == {"0.0", "1.0"}
    assert all(0 <= v <= 1 for v in r["ndcg10"].values())


def test_fusion(tiny_beir: Path, tmp_path: Path) -> None:
    r = run_script(
        "fusion", tmp_path,
        "--dataset", str(tiny_beir), "--index", str(tmp_path / "index"),
        "--rrf-k", "1,60", "--weights", "0,1", "--threads", "1",
    )  # fmt: skip
    assert set(r) == {"dense", "lexical", "rrf k=1", "rrf k=60", "weighted dense=0",
                      "weighted dense=1"}  # fmt: skip
    assert all(0 <= m["nDCG@10"] <= 1 for m in r.values())
    # a dense share of 1 ranks as dense alone, 0 as lexical alone (then dense-only hits)
    assert r["weighted dense=1"]["nDCG@10"] == pytest.approx(r["dense"]["nDCG@10"])
    assert r["dense"]["Recall@10"] == 1.0


def test_living(tiny_beir: Path, tmp_path: Path) -> None:
    r = run_script(
        "living", tmp_path,
        "--dataset", str(tiny_beir), "--index-dir", str(tmp_path / "indexes"),
        "--backends", "faiss:hnsw,hnswlib:hnsw,faiss:flat", "--queries", "5", "--seconds", "1",
        "--rounds", "1", "--writer-batch", "2", "--threads", "1",
    )  # fmt: skip
    assert r["documents"] == 30 and r["queries"] == 5
    modes = r["readers"]["modes"]
    assert list(modes) == ["no writer", "writer, refresh", "writer, no refresh"]
    for name, mode in modes.items():
        assert mode["queries"] > 0 and mode["qps"] > 0
        assert mode["latency_ms"]["p50"] <= mode["latency_ms"]["p99"]
        if name != "no writer":
            assert mode["commits_total"] >= 1  # the writer upserted at least once
    assert modes["writer, no refresh"]["refreshes"] == 0
    states = [(row["state"], row["documents"]) for row in r["deletions"]]
    assert states[::2] == [("0%", 30), ("10% deleted", 27), ("50% deleted", 15),
                           ("50% + compact", 15)] * 3  # fmt: skip
    assert all(r["compact_vectors_identical"].values())
    for row in r["deletions"] + r["filters"]:
        assert row["violations"] == 0  # no deleted or non-matching document returned
        assert row["mean_hits"] == row["expected_hits"]  # min(k, allowed documents)
        assert row["recall"] is None or 0 <= row["recall"] <= 1
        if row["backend"] == "faiss flat":
            assert row["recall"] in (None, 1.0)
    assert {row["filter"] for row in r["filters"]} >= {"(none)", "bucket < 500", "bucket < 1"}


def test_serve_load(tiny_beir: Path, tmp_path: Path, reranker_path: Path) -> None:
    r = run_script(
        "serve_load", tmp_path,
        "--dataset", str(tiny_beir), "--index", str(tmp_path / "index"),
        "--reranker", str(reranker_path), "--concurrency", "1,4", "--windows", "5,0",
        "--seconds", "2", "--rerank-seconds", "2", "--max-requests", "20", "--candidates", "3",
        "--baseline-queries", "5", "--rerank-baseline-queries", "2",
    )  # fmt: skip
    assert r["documents"] == 30
    assert {(x["window_ms"], x["rerank"], x["users"]) for x in r["loads"]} == {
        (w, rerank, users) for w in (5, 0) for rerank in (False, True) for users in (1, 4)
    }
    for row in r["loads"]:
        assert row["requests"] > 0 and row["failures"] == 0 and row["qps"] > 0
        assert row["p50_ms"] <= row["p99_ms"]
        assert row["qps_vs_in_process"] > 0
        assert (row["mean_batch"] is None) == (row["window_ms"] == 0 or row["rerank"])
    assert set(r["batching"]) == {"1", "4"}
    assert r["baseline"]["search"]["n"] == 5 and r["baseline"]["search_rerank"]["n"] == 2


@pytest.mark.slow
def test_ray_ingest(tiny_beir: Path, tmp_path: Path) -> None:
    r = run_script(
        "ray_ingest", tmp_path,
        "--dataset", str(tiny_beir), "--workers", "1", "--shards", "2", "--block-docs", "8",
    )  # fmt: skip
    assert r["documents"] == 30
    base, ray_run = r["runs"]
    assert base["run"] == "baseline build_index" and ray_run["workers"] == 1
    assert ray_run["shards"] == 2
    assert ray_run["documents"] == base["documents"] == 30 and ray_run["blocks"] == 4
    assert base["embed_vs_baseline"] == 1.0 and ray_run["end_to_end_vs_baseline"] > 0
    # the sharded index scores BM25 with index-wide statistics: the plain build's quality
    assert set(ray_run["ndcg@10"]) == {"dense", "lexical", "hybrid"}
    assert ray_run["ndcg@10"]["lexical"] == pytest.approx(base["ndcg@10"]["lexical"], abs=1e-9)
    assert r["max_ndcg_difference"] < 0.02


def test_runtimes(tiny_beir: Path, tmp_path: Path, reranker_path: Path) -> None:
    both = "torch-fp32,torch-bf16"
    r = run_script(
        "runtimes", tmp_path,
        "--dataset", str(tiny_beir), "--reranker", str(reranker_path), "--encoders", both,
        "--rerankers", both, "--speed-docs", "8", "--speed-queries", "1", "--rounds", "2",
        "--candidates", "5", "--threads", "1",
    )  # fmt: skip
    assert r["documents"] == 30
    assert set(r["encoders"]) == {"torch-fp32", "torch-bf16"}
    base = r["encoders"]["torch-fp32"]
    assert base["speed_ratio"] == 1 and base["cosine_min"] > 0.999
    assert r["encoders"]["torch-bf16"]["cosine_min"] > 0.98
    assert 0 < base["ndcg10"] <= 1
    assert r["rerankers"]["torch-bf16"]["top1_agreement"] >= 0.6
    assert r["rerankers"]["torch-fp32"]["spearman_mean"] == pytest.approx(1)


def test_tuning(tiny_beir: Path, tmp_path: Path) -> None:
    r = run_script(
        "tuning", tmp_path,
        "--dataset", str(tiny_beir), "--runtime", "torch-fp32", "--batch-sizes", "4,8",
        "--thread-runtimes", "torch-fp32", "--speed-docs", "8", "--rounds", "2",
        "--index-docs", "10", "--lru-queries", "3", "--threads", "1",
    )  # fmt: skip
    assert r["runtime"] == "torch-fp32"
    assert set(r["batch_sizes"]) == {"4", "8"} and min(r["batch_sizes"].values()) > 0
    assert set(r["sorting"]) == {"longest first", "corpus order"}
    assert 0 < r["tokenization"]["share"] < 1
    assert set(r["threads"]["torch-fp32"]) == {"1", "2"}
    lru = r["query_cache"]
    assert lru["fresh"]["n"] == lru["repeated"]["n"] == 3
    assert lru["repeated"]["p50"] < lru["fresh"]["p50"]


def test_compact(tiny_beir: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    r = run_script(
        "compact", tmp_path,
        "--dataset", str(tiny_beir), "--index", str(index), "--rescore", "0,20",
        "--repeat", "1", "--threads", "1",
    )  # fmt: skip
    assert r["documents"] == 30 and r["queries"] == 5
    assert set(r) >= {"float32 flat", "float32 hnsw", "sq8", "binary", "binary hnsw"}
    flat = r["float32 flat"]["points"][0]
    assert flat["recall_at_10"] == 1.0 and flat["latency_vs_exact"] == pytest.approx(1.0)
    assert r["binary"]["bytes_per_vector"] < 50 and r["binary"]["float32_over_this"] > 30
    for label in ("sq8", "binary", "binary hnsw"):
        points = {p["rescore"]: p for p in r[label]["points"]}
        assert set(points) == {0, 20}
        # 20 rescored of 30 documents: the float top 10 is found again
        assert points[20]["recall_at_10"] >= 0.9
        assert points[20]["ndcg_vs_float"] == pytest.approx(1.0, abs=0.05)


def test_chinese(tmp_path: Path, reranker_path: Path) -> None:
    r = run_script(
        "chinese", tmp_path,
        "--dataset", str(REPO / "corpora" / "zh-shop"), "--limit", "40",
        "--index-dir", str(tmp_path / "indexes"), "--reranker", str(reranker_path),
        "--rerank-queries", "5", "--throughput-texts", "40", "--threads", "1",
    )  # fmt: skip
    run = r["datasets"]["zh-shop-limit40 test"]
    assert run["analyzer"]["name"] == "zh" and run["checks"]["built_with_defaults"]
    systems = run["systems"]
    first_stages = {"searchkit dense", "searchkit lexical (zh)", "searchkit hybrid (default)"}
    assert first_stages <= set(systems)
    assert "searchkit hybrid + rerank, first 5 queries" in systems
    # the index's BM25 is bm25s's over the same analyzer's terms
    lexical = systems["searchkit lexical (zh)"]["metrics"]["nDCG@10"]
    assert abs(lexical - systems["bm25s zh"]["metrics"]["nDCG@10"]) < 0.02
    assert all(0 < s["metrics"]["nDCG@10"] <= 1 for s in systems.values())
    for name in ("en", "zh", "cjk"):
        assert r["throughput"][name]["texts_per_second"] > 0


def test_readers(tiny_beir: Path, tmp_path: Path) -> None:
    results = run_script("readers", tmp_path, "--dataset", str(tiny_beir), "--copies", "2",
                         "--files", "10")  # fmt: skip
    assert set(results) == {"jsonl", "json", "parquet", "csv", "tsv", "hf", "folder"}
    assert {results[f]["documents"] for f in results if f != "folder"} == {60}
    assert results["folder"]["documents"] == 10 and results["jsonl"]["speed_vs_jsonl"] == 1
    assert all(r["docs_per_second"] > 0 and len(r["sha256"]) == 64 for r in results.values())
