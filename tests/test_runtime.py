"""Inference runtimes: each installed one embeds and scores like torch fp32, its export is
cached (reused, rebuilt when damaged), the manifest records it, and bad choices fail clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from searchkit import build_index
from searchkit.errors import (
    InvalidParameter,
    PrecisionFallbackWarning,
    RuntimeMismatchWarning,
    RuntimeUnavailable,
)
from searchkit.index.manifest import Manifest
from searchkit.inference.encoder import Encoder
from searchkit.inference.reranker import Reranker
from searchkit.inference.runtimes import RUNTIMES, Runtime, cpu_has_bf16, from_manifest
from searchkit.inference.runtimes import cache as runtime_cache
from searchkit.query.searcher import QueryCache, Searcher
from tests.conftest import DOCS, QUERIES

TEXTS = [x for _, _, x in DOCS] + list(QUERIES)
ALL = [Runtime(name, p) for name, precisions in RUNTIMES.items() for p in precisions]
# bf16 on a CPU without native bf16 falls back to fp32 with a warning (test_bf16_falls_back...)
INSTALLED = [r for r in ALL if not r.missing and (r.precision != "bf16" or cpu_has_bf16())]
# int8 changes each number a little more: dynamic (onnx) and static (openvino) int8 stay above
# 0.98 here; torch's per-tensor dynamic int8 loses more (about 0.9), the reason it is no default
FLOOR = {"fp32": 0.999, "bf16": 0.99, "int8": 0.98}


@pytest.fixture(scope="module")
def baseline() -> np.ndarray:
    return Encoder(runtime="torch-fp32").encode_documents(TEXTS)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", INSTALLED, ids=str)
def test_runtime_embeds_like_torch_fp32(runtime: Runtime, baseline: np.ndarray) -> None:
    vectors = Encoder(runtime=runtime).encode_documents(TEXTS)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    cosine = np.einsum("ij,ij->i", vectors, baseline)
    floor = 0.9 if runtime == Runtime("torch", "int8") else FLOOR[runtime.precision]
    assert cosine.min() >= floor, f"{runtime}: min cosine {cosine.min():.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("runtime", [r for r in INSTALLED if r.name != "torch"], ids=str)
def test_runtime_reranks_like_torch_fp32(runtime: Runtime, reranker_path: Path) -> None:
    pairs = [(q, x) for q in QUERIES for _, _, x in DOCS[:6]]
    base = Reranker(str(reranker_path), runtime="torch-fp32").score(pairs).reshape(len(QUERIES), 6)
    got = Reranker(str(reranker_path), runtime=runtime).score(pairs).reshape(len(QUERIES), 6)
    assert (got.argmax(1) == base.argmax(1)).all()
    assert np.corrcoef(got.ravel(), base.ravel())[0, 1] > 0.95


def test_parse() -> None:
    assert Runtime.parse("openvino-int8") == Runtime.parse("openvino", "int8")
    assert Runtime.parse("torch") == Runtime("torch", "fp32")
    if cpu_has_bf16():
        assert str(Runtime.parse("torch", "bf16")) == "torch-bf16"
    else:
        with pytest.warns(PrecisionFallbackWarning, match="no native bf16"):
            assert str(Runtime.parse("torch", "bf16")) == "torch-fp32"
    assert Runtime.parse(None).name in RUNTIMES  # auto
    with pytest.raises(InvalidParameter, match="unknown runtime 'tensorrt'"):
        Runtime.parse("tensorrt")
    with pytest.raises(InvalidParameter, match="unknown precision 'int4'.*fp32, bf16, int8"):
        Runtime.parse("openvino-int4")
    with pytest.raises(InvalidParameter, match="disagree"):
        Runtime.parse("onnx-int8", "fp32")


def test_unavailable_runtime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "openvino" else real(name)
    )
    with pytest.raises(RuntimeUnavailable, match=r"pip install 'searchkit\[openvino\]'"):
        Encoder(runtime="openvino-int8")
    assert Runtime.parse(None).name != "openvino"  # auto skips what is not installed


def test_bf16_falls_back_without_cpu_support(monkeypatch: pytest.MonkeyPatch) -> None:
    import searchkit.inference.runtimes as runtimes
    from searchkit.errors import PrecisionFallbackWarning

    monkeypatch.setattr(runtimes, "cpu_has_bf16", lambda: False)
    with pytest.warns(PrecisionFallbackWarning, match="no native bf16"):
        assert Runtime.parse("torch-bf16") == Runtime("torch", "fp32")
    assert Runtime.parse(None).precision != "bf16"


@pytest.mark.slow
def test_cache_reused_and_rebuilt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runtime = next((r for r in INSTALLED if r.name == "onnx"), None)
    if runtime is None:
        pytest.skip("onnx runtime not installed")
    monkeypatch.setenv("SEARCHKIT_CACHE", str(tmp_path))
    builds: list[Path] = []
    real = runtime_cache._build

    def counted(folder: Path, build: Any) -> None:
        if not folder.name.startswith("spec-"):  # exports, not the torch-free path's specs
            builds.append(folder)
        real(folder, build)

    monkeypatch.setattr(runtime_cache, "_build", counted)
    first = Encoder(runtime="onnx-fp32").encode_queries(["tides"])
    assert len(builds) == 1
    again = Encoder(runtime="onnx-fp32").encode_queries(["tides"])
    np.testing.assert_allclose(again, first, rtol=1e-6, atol=1e-7)  # threads: float noise
    assert len(builds) == 1  # reused
    folder = builds[0]
    model = folder / "model.onnx"
    model.write_bytes(model.read_bytes()[:1000])  # damaged
    again = Encoder(runtime="onnx-fp32").encode_queries(["tides"])
    np.testing.assert_allclose(again, first, rtol=1e-6, atol=1e-7)  # threads: float noise
    assert len(builds) == 2
    (folder / runtime_cache.MARKER).unlink()  # a killed export leaves no marker
    Encoder(runtime="onnx-fp32").encode_queries(["tides"])
    assert len(builds) == 3 and runtime_cache.is_complete(folder)
    assert not list(tmp_path.rglob(".*tmp-*"))  # no leftovers


@pytest.mark.slow
def test_manifest_records_runtime(tiny_corpus: Path, tmp_path: Path) -> None:
    spec = INSTALLED[-1]
    built = build_index(tiny_corpus, tmp_path / "idx", runtime=str(spec), progress=False)
    assert from_manifest(built.manifest.encoder) == spec
    searcher = Searcher.open(built.path)
    assert searcher.encoder.runtime == spec  # queries embedded as the documents were
    with pytest.warns(RuntimeMismatchWarning, match=str(spec)):
        other = Searcher.open(built.path, query_runtime="torch-fp32")
    assert other.search("what makes sourdough rise", rerank=False)[0].id == "sourdough"


def test_old_manifest_defaults_to_torch_fp32(built_index: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(built_index, tmp_path / "old"))
    data = json.loads((copy / "manifest.json").read_text())
    for key in ("runtime", "precision"):
        data["encoder"].pop(key, None)
    (copy / "manifest.json").write_text(json.dumps(data))
    assert from_manifest(Manifest.read(copy).encoder) == Runtime("torch", "fp32")
    assert Searcher.open(copy).encoder.runtime == Runtime("torch", "fp32")


def test_query_cache_is_an_lru() -> None:
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[float(len(t))] for t in texts], dtype=np.float32)

    cache = QueryCache(2)
    assert cache.vectors(["a", "bb", "a"], embed).ravel().tolist() == [1, 2, 1]
    assert calls == [["a", "bb"]]
    cache.vectors(["bb", "ccc"], embed)  # evicts "a"
    cache.vectors(["a"], embed)
    assert calls[1:] == [["ccc"], ["a"]]
    QueryCache(0).vectors(["a"], embed)
    assert calls[-1] == ["a"]


def test_cli_passes_runtime_options(tiny_corpus: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from searchkit.cli import app

    out = tmp_path / "idx"
    runner = CliRunner()
    done = runner.invoke(
        app, ["index", str(tiny_corpus), "-o", str(out), "--runtime", "torch", "--precision",
              "fp32", "--no-progress", "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert from_manifest(Manifest.read(out).encoder) == Runtime("torch", "fp32")
    done = runner.invoke(
        app, ["query", "what makes sourdough rise", "-i", str(out), "--no-rerank", "--json",
              "--query-runtime", "torch-fp32"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    bad = runner.invoke(app, ["query", "x", "-i", str(out), "--reranker-runtime", "cuda"])
    assert bad.exit_code == 1 and "unknown runtime 'cuda'" in bad.output
