"""searchkit train-reranker / train-embedder: data errors, mining, short real trainings, reindex."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from searchkit import Searcher
from searchkit.errors import DatasetError, IndexExists, InvalidParameter
from searchkit.query.fusion import blend_rerank
from searchkit.training.data import (
    TrainQuery,
    load_pairs_jsonl,
    load_training_data,
    split_heldout,
)
from searchkit.training.mining import attach_positive_texts, candidate_pools, hard_negatives
from tests.conftest import QUERIES, write_jsonl

# short, real trainings: tiny batches, 64 tokens, one epoch
QUICK = ["--max-length", "64", "--epochs", "1", "--batch-size", "2", "--depth", "6"]
QUICK += ["--heldout", "0.4", "--no-progress", "--json"]


def pairs_file(path: Path) -> Path:
    return write_jsonl(path, [{"query": q, "positive_id": d} for q, d in QUERIES.items()])


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "searchkit", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=900,  # a few seconds of training, but model loading on a busy 2-core machine
    )


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"positive": "p"}', "missing field 'query'"),
        ('{"query": "q"}', "missing field 'positive'"),
    ],
)
def test_bad_pairs_name_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", ['{"query": "q", "positive": "p"}', line])
    with pytest.raises(DatasetError, match=rf"pairs\.jsonl:2: {problem}"):
        load_pairs_jsonl(path)


def test_pairs_group_by_query(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"query": "q1", "positive": "a passage"},
            {"query": "q1", "positive_id": 7},
            {"query": "q2", "positive_id": "x"},
        ],
    )
    got = load_pairs_jsonl(path)
    assert [(q.text, q.positive_ids, q.positive_texts) for q in got] == [
        ("q1", ["7"], ["a passage"]),
        ("q2", ["x"], []),
    ]


def test_one_source_of_data_is_required(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="one source"):
        load_training_data()
    with pytest.raises(InvalidParameter, match="one source"):
        load_training_data(pairs=tmp_path / "a", queries=tmp_path / "b", qrels=tmp_path / "c")
    with pytest.raises(InvalidParameter, match="eval_split= needs dataset=") as err:
        load_training_data(pairs=tmp_path / "a", eval_split="test")
    assert err.value.param == "eval_split"


def test_heldout_split_is_seeded_and_disjoint() -> None:
    queries = [TrainQuery(str(i), f"q{i}", [str(i)]) for i in range(20)]
    train, held = split_heldout(queries, 0.25, seed=3)
    assert len(held) == 5 and len(train) == 15
    assert {q.id for q in train}.isdisjoint(q.id for q in held)
    assert [q.id for q in held] == [q.id for q in split_heldout(queries, 0.25, seed=3)[1]]


def test_hard_negatives_exclude_positives(built_index: Path) -> None:
    searcher = Searcher.open(built_index)
    queries = [TrainQuery(f"q{i}", q, [d]) for i, (q, d) in enumerate(QUERIES.items())]
    attach_positive_texts(searcher, queries)
    pools = candidate_pools(searcher, queries, 8, progress=False)
    for q, pool in zip(queries, pools, strict=True):
        assert len(pool) == 8
        negatives = hard_negatives(q, pool, 3, random.Random(0))
        assert len(negatives) == 3 and q.positive_texts[0] not in negatives


def test_positive_missing_from_the_index_is_named(built_index: Path) -> None:
    searcher = Searcher.open(built_index)
    with pytest.raises(DatasetError, match="positive document 'nope' of query 'q0'"):
        attach_positive_texts(searcher, [TrainQuery("q0", "text", ["nope"])])


def test_blend_rerank_weights() -> None:
    rerank, retrieval = np.array([0.1, 0.9, 0.5]), np.array([3.0, 1.0, 1.5])
    assert np.argmax(blend_rerank(rerank, retrieval, 1.0)) == 1
    assert np.argmax(blend_rerank(rerank, retrieval, 0.0)) == 0
    assert blend_rerank(rerank, retrieval, 0.5).tolist() == pytest.approx([0.5, 0.5, 0.375])


def test_rerank_weight_zero_keeps_retrieval_order(built_index: Path) -> None:
    searcher = Searcher.open(built_index)
    query = next(iter(QUERIES))
    plain = searcher.search(query, 5, rerank=False)
    fused = searcher.search(query, 5, candidates=5, rerank_weight=0.0)
    assert [h.id for h in fused] == [h.id for h in plain]
    with pytest.raises(InvalidParameter, match=r"rerank_weight must be in \[0, 1\]"):
        searcher.search(query, rerank_weight=1.5)


@pytest.mark.slow
def test_train_reranker_cli(built_index: Path, reranker_path: Path, tmp_path: Path) -> None:
    before = fingerprint(built_index)
    out = tmp_path / "rr"
    done = run(
        "train-reranker", str(built_index), "-o", str(out), "--pairs",
        str(pairs_file(tmp_path / "pairs.jsonl")), "--base", str(reranker_path),
        "--negatives", "2", "--in-batch", "1", *QUICK, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["ndcg10"]) == {"first_stage", "before", "after"}
    assert report["train_queries"] == 3 and report["eval_queries"] == 2 and report["steps"] >= 1
    assert not (out / "checkpoints").exists() and not (out / "run.json").exists()
    assert not (tmp_path / ".rr.training").exists()  # the staging folder became the model
    assert json.loads((out / "training.json").read_text())["model"] == str(out)
    hits = Searcher.open(built_index, reranker=str(out)).search(next(iter(QUERIES)), 3)
    assert hits.reranked and len(hits) == 3
    assert fingerprint(built_index) == before


@pytest.mark.slow
def test_train_embedder_reindex(built_index: Path, tmp_path: Path) -> None:
    before = fingerprint(built_index)
    out, new_index = tmp_path / "emb", tmp_path / "index-emb"
    done = run(
        "train-embedder", str(built_index), "-o", str(out), "--pairs",
        str(pairs_file(tmp_path / "pairs.jsonl")), "--reindex", str(new_index), *QUICK,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["reindexed"] == str(new_index) and "after" in report["ndcg10"]
    searcher = Searcher.open(new_index)
    assert searcher.manifest.encoder.name == str(out.resolve())
    assert searcher.manifest.lexical == Searcher.open(built_index).manifest.lexical
    assert len(searcher) == len(Searcher.open(built_index))
    assert searcher.search("what makes sourdough rise", 1, rerank=False)[0].id == "sourdough"
    assert fingerprint(built_index) == before


@pytest.mark.slow
def test_failed_training_leaves_no_model_and_the_index_untouched(
    built_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from searchkit.training import embedder

    def boom(*args: object, **kwargs: object) -> int:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(embedder, "_fit", boom)
    before = fingerprint(built_index)
    queries = [TrainQuery(f"q{i}", q, [d]) for i, (q, d) in enumerate(QUERIES.items())]
    with pytest.raises(RuntimeError, match="out of memory"):
        embedder.train_embedder(
            built_index, queries, tmp_path / "emb", reindex=tmp_path / "new", max_length=64,
            depth=4, progress=False, heldout=0.4,
        )  # fmt: skip
    assert not (tmp_path / "emb").exists() and not (tmp_path / "new").exists()
    assert fingerprint(built_index) == before


def test_existing_output_is_refused_before_any_work(built_index: Path, tmp_path: Path) -> None:
    from searchkit.training.embedder import train_embedder

    (tmp_path / "emb").mkdir()
    with pytest.raises(IndexExists, match="pass force=True"):
        train_embedder(built_index, [TrainQuery("q", "t", ["x"])], tmp_path / "emb")
    with pytest.raises(InvalidParameter, match="is the index being read"):
        train_embedder(built_index, [], tmp_path / "e2", reindex=built_index)


# a run long enough to be stopped between checkpoints: 3 rows of 1 query, 4 epochs, 12 steps
RESUMABLE = ["--max-length", "32", "--epochs", "4", "--batch-size", "1", "--depth", "4"]
RESUMABLE += ["--negatives", "1", "--in-batch", "0", "--heldout", "0.4", "--save-steps", "3"]


def train_args(index: Path, out: Path, pairs: Path, base: Path, *extra: str) -> list[str]:
    return ["train-reranker", str(index), "-o", str(out), "--pairs", str(pairs), "--base",
            str(base), *RESUMABLE, "--no-progress", "--json", *extra]  # fmt: skip


def kill_after_first_checkpoint(args: list[str], staging: Path, cwd: Path) -> list[str]:
    """Start a training subprocess, SIGKILL it once a complete checkpoint is written; the
    checkpoint folder names seen until then."""
    from searchkit.training.staging import last_checkpoint

    proc = subprocess.Popen(
        [sys.executable, "-m", "searchkit", *args], cwd=cwd, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: set[str] = set()
    deadline = time.monotonic() + 600
    while last_checkpoint(staging) is None and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 600 s"
        seen.update(p.name for p in (staging / "checkpoints").glob("checkpoint-*"))
        time.sleep(0.02)
    proc.kill()
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed: {stderr}"
    return sorted(seen | {p.name for p in (staging / "checkpoints").glob("checkpoint-*")})


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_model(
    built_index: Path, reranker_path: Path, tmp_path: Path
) -> None:
    from sentence_transformers import CrossEncoder

    from searchkit.training.reranker import train_reranker
    from searchkit.training.staging import last_checkpoint

    pairs = pairs_file(tmp_path / "pairs.jsonl")
    out, staging = tmp_path / "rr", tmp_path / ".rr.training"
    args = train_args(built_index, out, pairs, reranker_path)
    seen = kill_after_first_checkpoint(args, staging, tmp_path)
    assert seen and all(int(name.split("-")[1]) % 3 == 0 for name in seen)  # --save-steps 3
    assert not out.exists()
    checkpoint = last_checkpoint(staging)
    assert checkpoint is not None
    step = int(checkpoint.name.split("-")[1])
    assert 3 <= step < 12
    # what a stopped run leaves is usable: the checkpoint is a reranker
    hits = Searcher.open(built_index, reranker=str(checkpoint)).search(next(iter(QUERIES)), 3)
    assert hits.reranked and len(hits) == 3
    # its checkpoints are not discarded silently, nor resumed with other options
    refused = run(*args, cwd=tmp_path)
    assert refused.returncode != 0 and "--resume to continue it" in refused.stderr
    other = run(*args, "--resume", "--lr", "1e-4", cwd=tmp_path)
    assert other.returncode != 0 and "started with --lr 5e-05, not 0.0001" in other.stderr
    resumed = run(*args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["resumed_from"] == step and report["steps"] == 12
    assert not staging.exists() and not (out / "checkpoints").exists()
    # the same run, never stopped, ends at the same step with the same weights
    whole = train_reranker(
        built_index, load_pairs_jsonl(pairs), tmp_path / "whole", base=str(reranker_path),
        max_length=32, epochs=4, batch_size=1, depth=4, negatives=1, in_batch=0, heldout=0.4,
        save_steps=3, progress=False,
    )  # fmt: skip
    assert whole.steps == 12 and whole.resumed_from is None
    assert whole.ndcg10 == pytest.approx(report["ndcg10"], abs=1e-6)
    scored = [(q, other) for q in QUERIES for other in QUERIES]
    a = CrossEncoder(str(out)).predict(scored)
    b = CrossEncoder(str(tmp_path / "whole")).predict(scored)
    assert np.allclose(a, b, atol=1e-4)
