"""Evaluation: metrics on a hand-checkable toy case, and searchkit eval end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from searchkit import DatasetError, IndexExists, InvalidParameter
from searchkit.errors import DatasetWarning
from searchkit.eval.beir import load_beir
from searchkit.eval.evaluate import ensure_index, evaluate
from searchkit.eval.metrics import score_run
from searchkit.options import SearchOptions
from tests.conftest import QUERIES, tiny_records, write_jsonl


def test_metrics_on_a_toy_case_checked_by_hand():
    qrels = {"q1": {"d1": 1, "d3": 1}, "q2": {"x": 1}, "q3": {"y": 1}}
    run = {
        "q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7},  # relevant at ranks 1 and 3
        "q2": {f"n{i}": 1 - i / 100 for i in range(10)} | {"x": 0.01},  # relevant at rank 11
    }  # q3 retrieved nothing: it counts as 0
    m = score_run(qrels, run)
    ndcg_q1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert m["nDCG@10"] == pytest.approx(ndcg_q1 / 3)
    assert m["MRR@10"] == pytest.approx(1 / 3)  # q2's hit is below the cut
    assert m["Recall@10"] == pytest.approx(1 / 3)
    assert m["Recall@100"] == pytest.approx(2 / 3)
    assert m["MAP@100"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 11) / 3)


def write_beir(root: Path, qrels_lines: list[str]) -> Path:
    (root / "qrels").mkdir(parents=True)
    write_jsonl(root / "corpus.jsonl", tiny_records())
    queries = [{"_id": f"q{i}", "text": q} for i, q in enumerate(QUERIES)]
    write_jsonl(root / "queries.jsonl", [*queries, {"_id": "unjudged", "text": "x"}])
    (root / "qrels" / "test.tsv").write_text(
        "\n".join(["query-id\tcorpus-id\tscore", *qrels_lines]) + "\n"
    )
    return root


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    lines = [f"q{i}\t{doc}\t1" for i, doc in enumerate(QUERIES.values())]
    return write_beir(tmp_path / "tiny", lines)


@pytest.mark.slow
def test_evaluate_builds_then_reuses_the_index_and_scores_both_stages(
    dataset, tmp_path, reranker_path
):
    data = load_beir(dataset)
    assert len(data.queries) == 5 and "unjudged" not in data.queries
    out = tmp_path / "idx"
    index = ensure_index(data, out, reranker=str(reranker_path), progress=False)
    built = (out / "manifest.json").read_text()
    assert ensure_index(data, out) == out and (out / "manifest.json").read_text() == built
    result = evaluate(index, data, candidates=5, progress=False)
    # each query's one relevant document is retrieved first (see test_build)
    assert result.metrics["retrieval"] == {
        "nDCG@10": 1.0, "MRR@10": 1.0, "Recall@10": 1.0, "Recall@100": 1.0, "MAP@100": 1.0
    }  # fmt: skip
    assert set(result.metrics["rerank"]) == set(result.metrics["retrieval"])
    assert 0 < result.metrics["rerank"]["nDCG@10"] <= 1
    assert result.reranker == str(reranker_path.resolve())
    lat = result.latency_ms["rerank"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
    assert result.search == {
        "rerank": True, "candidates": 5, "mode": "hybrid", "fusion": "gated", "rrf_k": 60,
        "weight": 0.4, "ef_search": None, "nprobe": None, "rescore": None,
        "rerank_margin": None, "rerank_weight": 1.0, "where": None,
    }  # fmt: skip
    assert result.truncation == {
        "pairs": 25, "truncated": 0, "max_tokens": 256, "early_exit": 0, "margin": None
    }  # fmt: skip
    lexical = evaluate(index, data, rerank=False, progress=False, mode="lexical")
    assert lexical.search["mode"] == "lexical" and lexical.truncation == {}
    assert 0 < lexical.metrics["retrieval"]["nDCG@10"] <= 1
    # every SearchOptions field reaches the search: a filter that keeps no document scores 0,
    # and a backend option the index does not take is refused, naming it
    nothing = evaluate(index, data, rerank=False, progress=False, where="year < 1990")
    assert nothing.metrics["retrieval"]["nDCG@10"] == 0 and nothing.search["where"]
    with pytest.raises(InvalidParameter, match="ef_search does not apply"):
        evaluate(index, data, options=SearchOptions(rerank=False, ef_search=64), progress=False)
    other = write_beir(tmp_path / "other", ["q0\tvaccine\t1"])
    write_jsonl(other / "corpus.jsonl", tiny_records()[:6])
    with pytest.raises(IndexExists, match="another corpus"):
        ensure_index(load_beir(other), out)
    # the same corpus asked for with another model or language is not reused silently
    with pytest.raises(IndexExists, match="language='en', not language='zh'"):
        ensure_index(data, out, language="zh")
    with pytest.raises(IndexExists, match="not model='intfloat/multilingual-e5-small'"):
        ensure_index(data, out, model="intfloat/multilingual-e5-small")
    assert ensure_index(data, out, language="auto", model="all-MiniLM-L6-v2") == out


@pytest.mark.slow
def test_suite_runs_every_setting_on_each_dataset(tmp_path):
    """The paraphrase set (32 documents) and a tiny set in one suite, real model and index."""
    from searchkit.eval.suite import default_settings, load_suite, run_suite

    repo = Path(__file__).resolve().parents[1]
    write_beir(tmp_path / "tiny", [f"q{i}\t{d}\t1" for i, d in enumerate(QUERIES.values())])
    suite_file = tmp_path / "suite.toml"
    suite_file.write_text(
        f'index_root = "idx"\n'
        f'[[dataset]]\npath = "{repo / "corpora" / "paraphrase-en"}"\ntune = "dev"\n'
        f'[[dataset]]\nname = "tiny"\npath = "tiny"\nlimit = 3\nbuild = {{ language = "en" }}\n'
    )
    suite = load_suite(suite_file)
    assert [s.name for s in suite.sets] == ["paraphrase-en", "tiny"]
    result = run_suite(suite, progress=False)
    labels = [s.label for s in default_settings()]
    assert list(result.datasets) == ["paraphrase-en test", "tiny test"]
    assert result.datasets["tiny test"]["queries"] == 3
    para = result.datasets["paraphrase-en test"]["metrics"]
    assert set(para) == set(labels) and para["dense"]["nDCG@10"] > para["lexical"]["nDCG@10"]
    summary = result.summary()
    for label in labels:
        values = [d["metrics"][label]["nDCG@10"] for d in result.datasets.values()]
        assert summary[label]["mean"] == pytest.approx(sum(values) / 2)
    assert summary["dense"]["margin_worst"] <= 0 and summary["lexical"]["margin_worst"] < 0
    # the headline: the default fusion keeps the paraphrase set at dense's 12/12 top-1
    from searchkit.eval.suite import first_stages, load_split
    from searchkit.query.searcher import Searcher

    data = load_split(suite.sets[0], "test")
    stages = first_stages(Searcher.open(tmp_path / "idx" / "paraphrase-en"), data)
    run = stages.run({"mode": "hybrid"})
    assert sum(run[q][0] in data.qrels[q] for q in run) == len(run) == 12
    assert (
        sum(
            stages.run({"mode": "hybrid", "fusion": "weighted", "weight": 0.5})[q][0]
            in data.qrels[q]
            for q in run
        )
        < 12
    )
    # only tiny's tune split: the paraphrase set's dev split and tiny's lack of one
    tuned = run_suite(suite, progress=False, role="tune")
    assert list(tuned.datasets) == ["paraphrase-en dev"]
    with pytest.raises(InvalidParameter, match="tune .* or test"):
        run_suite(suite, role="train")


@pytest.mark.slow
def test_qrels_naming_documents_not_in_the_index(dataset, tmp_path):
    data = load_beir(dataset)
    index = ensure_index(data, tmp_path / "idx", progress=False)
    bad = write_beir(tmp_path / "bad", ["q0\tvaccine\t1", "q1\tghost\t1"])
    with pytest.raises(
        DatasetError, match=r"1 of 2 judged documents are not in the index.*'ghost'"
    ):
        evaluate(index, load_beir(bad), rerank=False, progress=False)


def test_dataset_errors(tmp_path, dataset):
    with pytest.raises(DatasetError, match="not a BEIR dataset folder"):
        load_beir(tmp_path / "nothing")
    with pytest.raises(
        DatasetError, match=r"qrels/dev.tsv: no such qrels file \(splits found: test\)"
    ):
        load_beir(dataset, "dev")
    (dataset / "qrels" / "empty.tsv").write_text("query-id\tcorpus-id\tscore\n")
    with pytest.raises(DatasetError, match="empty split"):
        load_beir(dataset, "empty")
    (dataset / "qrels" / "bad.tsv").write_text("query-id\tcorpus-id\tscore\nq0\tvaccine\n")
    with pytest.raises(
        DatasetError, match=r"bad.tsv:2: expected query-id, corpus-id and an integer"
    ):
        load_beir(dataset, "bad")
    (dataset / "qrels" / "ghost.tsv").write_text("q99\tvaccine\t1\n")
    with pytest.raises(DatasetError, match=r"1 judged queries are not in .*queries.jsonl.*'q99'"):
        load_beir(dataset, "ghost")


@pytest.mark.slow
def test_cli_eval_prints_the_table_and_writes_json(dataset, tmp_path, reranker_path):
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "searchkit", "eval", "--dataset", str(dataset), "--no-progress",
         "--reranker", str(reranker_path), "--candidates", "5", "--json", str(out),
         "--fusion", "rrf", "--rrf-k", "30"],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "nDCG@10" in done.stdout and "rerank top 5" in done.stdout
    assert "first stage: hybrid, fusion rrf k=30" in done.stdout
    assert "reranker truncated 0 of 25 (query, passage) pairs to 256 tokens" in done.stdout
    result = json.loads(out.read_text())
    assert result["search"]["fusion"] == "rrf" and result["truncation"]["pairs"] == 25
    assert result["metrics"]["retrieval"]["nDCG@10"] == 1.0
    assert (tmp_path / "indexes" / "tiny" / "manifest.json").exists()


def add_queries(dataset: Path, lines: list[str]) -> Path:
    path = dataset / "queries.jsonl"
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)
    return path


def test_bad_queries_of_other_splits_are_warnings_naming_file_and_line(dataset):
    path = add_queries(
        dataset,
        [
            '{"_id": "dev1", "text": ""}',  # line 7: an empty query of another split
            '{"_id": "dev2", "text": "cut',  # line 8: its id cannot be read
            '{"_id": "unjudged", "text": "again"}',  # line 9: a duplicate, of an unjudged query
        ],
    )
    with pytest.warns(DatasetWarning) as caught:
        data = load_beir(dataset)
    assert sorted(data.queries) == [f"q{i}" for i in range(5)]
    qrels = dataset / "qrels" / "test.tsv"
    assert [str(w.message) for w in caught] == [
        f"{path}:7: field 'text' is empty; skipped: not a query judged in {qrels}",
        f"{path}:8: invalid JSON: Unterminated string starting at column 25; "
        f"skipped: not a query judged in {qrels}",
        f"{path}:9: duplicate id 'unjudged' (first on line 6); "
        f"skipped: not a query judged in {qrels}",
    ]


def test_many_bad_queries_of_other_splits_are_counted_after_the_first_five(dataset):
    add_queries(dataset, [f'{{"_id": "dev{i}", "text": " "}}' for i in range(8)])
    with pytest.warns(DatasetWarning) as caught:
        load_beir(dataset)
    assert len(caught) == 6
    assert str(caught[-1].message).startswith(f"{dataset / 'queries.jsonl'}: 3 more bad lines")


def test_a_bad_query_of_the_evaluated_split_stays_an_error(dataset):
    path = dataset / "queries.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = '{"_id": "q2", "text": ""}'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"queries.jsonl:3: field 'text' is empty$"):
        load_beir(dataset)
    lines[2] = '{"_id": "q2", "text": "cut'  # no readable id, and q2 is then missing
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(
        DatasetError, match=r"queries.jsonl:3: invalid JSON.*; 1 judged queries are not in .*'q2'"
    ):
        load_beir(dataset)


def test_a_dataset_in_gb18030(tmp_path):
    root = tmp_path / "zh"
    (root / "qrels").mkdir(parents=True)
    corpus = '{"_id": "饺子", "text": "北方人过年常吃饺子。"}\n'
    queries = '{"_id": "问1", "text": "过年吃什么"}\n'
    (root / "corpus.jsonl").write_bytes(corpus.encode("gb18030"))
    (root / "queries.jsonl").write_bytes(queries.encode("gb18030"))
    (root / "qrels" / "test.tsv").write_bytes("问1\t饺子\t1\n".encode("gb18030"))
    data = load_beir(root, encoding="gb18030")
    assert data.queries == {"问1": "过年吃什么"} and data.qrels == {"问1": {"饺子": 1}}
    assert data.encoding == "gb18030"
    with pytest.raises(DatasetError, match=r'test.tsv:1: not UTF-8 text .*"gb18030"\)$'):
        load_beir(root)  # the qrels are read first
