"""The torch-free path: exported models run with tokenizers + their runtime, no torch import,
giving the torch path's embeddings and scores; quiet third-party output."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from searchkit.inference.encoder import Encoder
from searchkit.inference.reranker import Reranker
from searchkit.inference.resolve import model_files
from searchkit.inference.runtimes import Runtime
from searchkit.inference.runtimes.spec import NoSpec, find_spec
from searchkit.query.searcher import Searcher
from tests.conftest import DOCS, QUERIES, REPO, tiny_records, write_jsonl

HEAVY = ("torch", "transformers", "sentence_transformers")
# float32 rounding of pooling and normalization done by numpy instead of torch
TOLERANCE = 1e-5
TEXTS = [
    *QUERIES,
    *(x for _, _, x in DOCS),
    "iPhone 15 电池续航怎么样, and in English too",
    "a",
    "Iterate over the files in this directory. " * 80,  # past max_seq_length: truncated
]
EXPORTED = [r for r in (Runtime("openvino", "int8"), Runtime("onnx", "fp32")) if not r.missing]


def torch_path(model: Encoder | Reranker) -> Encoder | Reranker:
    """``model`` forced through sentence-transformers (its export and spec made if missing)."""
    model.__dict__["exported"] = None
    model.load()
    return model


@pytest.mark.slow
@pytest.mark.parametrize("runtime", EXPORTED, ids=str)
def test_exported_encoder_embeds_as_the_torch_path(runtime: Runtime) -> None:
    reference = torch_path(Encoder(runtime=runtime, batch_size=4))
    encoder = Encoder(runtime=runtime, batch_size=4)
    assert encoder.exported is not None
    for role in ("query", "document"):
        want = reference._encode(TEXTS, role)
        got = encoder._encode(TEXTS, role)
        assert got.dtype == np.float32 and got.shape == want.shape
        assert np.abs(got - want).max() <= TOLERANCE
    assert encoder.token_counts(TEXTS) == reference.token_counts(TEXTS)
    assert (encoder.dim, encoder.max_seq_length) == (reference.dim, reference.max_seq_length)
    assert encoder.section() == reference.section()


@pytest.mark.slow
def test_exported_encoder_uses_the_folder_prompts(tmp_path: Path) -> None:
    """A model folder's own query prompt (not in the catalog) goes in front of queries only."""
    source = model_files("all-MiniLM-L6-v2")
    assert source is not None
    folder = tmp_path / "prompted"
    folder.mkdir()
    for item in source.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "config_sentence_transformers.json").unlink()
    prompts = {"prompts": {"query": "query: "}, "default_prompt_name": None}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(prompts))
    reference = torch_path(Encoder(str(folder), runtime="openvino-int8"))
    encoder = Encoder(str(folder), runtime="openvino-int8")
    assert encoder.exported is not None
    prompts = encoder.exported.spec.prompts
    assert prompts["query"] == "query: " and not prompts["document"]
    got, want = encoder.encode_queries(QUERIES), reference.encode_queries(QUERIES)
    assert np.abs(got - want).max() <= TOLERANCE
    plain = Encoder(runtime="openvino-int8").encode_queries(QUERIES)
    assert np.abs(got - plain).max() > 0.01  # the prompt was applied
    docs = encoder.encode_documents(list(QUERIES))
    assert np.abs(docs - plain).max() <= TOLERANCE  # documents get none


@pytest.mark.slow
def test_exported_reranker_scores_as_the_torch_path(reranker_path: Path) -> None:
    pairs = [(q, x * (6 if n % 3 == 0 else 1)) for q in QUERIES for n, (_, _, x) in enumerate(DOCS)]
    for cap in (None, 48):
        reference = torch_path(Reranker(str(reranker_path), runtime="onnx-fp32", max_tokens=cap))
        reranker = Reranker(str(reranker_path), runtime="onnx-fp32", max_tokens=cap, batch_size=8)
        assert reranker.exported is not None
        want, want_cut = reference.score_counted(pairs)
        got, got_cut = reranker.score_counted(pairs)
        assert np.abs(got - want).max() <= TOLERANCE
        assert (got_cut == want_cut).all() and reranker.max_tokens == reference.max_tokens
        assert got_cut.any() == (cap is not None)  # the cap truncates some pairs


def test_spec_is_keyed_by_the_model_files(tmp_path: Path) -> None:
    source = model_files("all-MiniLM-L6-v2")
    assert source is not None
    Encoder(runtime="openvino-int8").load()  # exported (and its spec written) if not yet
    find_spec("sentence-transformers/all-MiniLM-L6-v2", "encoder", "openvino-int8")
    copy = tmp_path / "copy"
    copy.mkdir()
    for item in source.iterdir():
        (copy / item.name).symlink_to(item)
    with pytest.raises(NoSpec, match="has not been exported"):
        find_spec(str(copy), "encoder", "openvino-int8")  # another folder: another key


def test_fallback_says_why_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    monkeypatch.setenv("SEARCHKIT_TORCH_FREE", "0")
    encoder = Encoder(runtime="openvino-int8")
    with caplog.at_level(logging.INFO, logger="searchkit"):
        encoder.encode_queries(["tides"])
        encoder.encode_queries(["chess"])
    said = [r.getMessage() for r in caplog.records if "sentence-transformers (torch)" in r.message]
    assert said == [
        "encoder sentence-transformers/all-MiniLM-L6-v2 runs through sentence-transformers "
        "(torch): SEARCHKIT_TORCH_FREE is off"
    ]
    torch_encoder = Encoder(runtime="torch")
    assert torch_encoder.exported is None  # the torch runtime has no export


def test_warm_embeds_dummy_queries(built_index: Path) -> None:
    searcher = Searcher.open(built_index)
    searcher.warm()
    assert searcher.encoder.exported is not None
    assert len(searcher._queries._vectors) == 0  # the dummy queries are not cached


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO, check=True
    )


@pytest.mark.slow
def test_cli_is_quiet_and_queries_without_torch(tmp_path: Path) -> None:
    """A fresh cache: the first build exports and calibrates, printing only searchkit's own
    lines; a query then imports none of torch, transformers, sentence-transformers."""
    env = {**os.environ, "SEARCHKIT_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    corpus = write_jsonl(tmp_path / "tiny.jsonl", tiny_records())
    index = tmp_path / "index"
    cli = ("-m", "searchkit")
    built = run(*cli, "index", str(corpus), "--out", str(index), "--runtime", "openvino-int8",
                "--no-progress", env=env)  # fmt: skip
    noise = ("Statistics collection", "Smooth Quant", "Bias correction", "loss_type", "Warning")
    assert not [line for line in built.stderr.splitlines() if any(n in line for n in noise)]
    assert "Indexed 12 documents" in built.stdout
    script = (
        "import sys, json\n"
        "from searchkit.query.searcher import Searcher\n"
        f"s = Searcher.open({str(index)!r})\n"
        "hits = s.search('how do vaccines work', k=3, rerank=False)\n"
        f"print(json.dumps([hits[0].id, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    top, heavy = json.loads(run("-c", script, env=env).stdout)
    assert [top, heavy] == ["vaccine", []]
    query = ("query", "how do vaccines work", "--index", str(index), "--no-rerank", "--json")
    timed = run("-X", "importtime", *cli, *query, env=env)
    imported = {line.rsplit("|", 1)[-1].strip() for line in timed.stderr.splitlines()}
    assert not imported & set(HEAVY) and "openvino" in imported
    assert json.loads(timed.stdout)["hits"][0]["id"] == "vaccine"
    verbose = run(*cli, "--verbose", *query, env=env)
    assert "runs torch-free on openvino-int8" in verbose.stderr
    forced = run(*cli, "--verbose", *query, env={**env, "SEARCHKIT_TORCH_FREE": "0"})
    assert "SEARCHKIT_TORCH_FREE is off" in forced.stderr
    same = [[(h["id"], round(h["score"], 4)) for h in json.loads(out.stdout)["hits"]]
            for out in (forced, timed)]  # fmt: skip
    assert same[0] == same[1]
