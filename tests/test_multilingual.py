"""The offline multilingual-e5-small: served under its real name with no hub, e5's prompts,
Chinese similarity, HF_ENDPOINT in the errors, and Chinese reranking with a cross-encoder
trained from its weights by the train-reranker code path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_jsonl

from searchkit import Searcher, build_index
from searchkit.inference import catalog
from searchkit.inference.encoder import Encoder
from searchkit.inference.reranker import Reranker
from searchkit.inference.resolve import canonical_name, resolve_model
from searchkit.training.data import TrainQuery
from searchkit.training.reranker import train_reranker

pytestmark = pytest.mark.slow

E5 = "intfloat/multilingual-e5-small"
# a long CJK passage: ~200 XLM-R tokens, under e5's 512 (not chunked) and over the cap below
LONG = "扫地机器人能自动规划路线，扫拖一体，电量不足时自己回充，还可以用手机应用设定禁区。" * 6
DOCS = {
    "p1": ("苹果手机", "iPhone 15 Pro 采用钛金属边框，电池续航比上一代更长，接口是 USB-C。"),
    "p2": ("华为手机", "华为 Mate 60 支持卫星通话，拍照效果出色。"),
    "p3": ("北京大学", "北京大学是中国著名的综合性大学，校园位于北京市海淀区。"),
    "p4": ("充电器", "65W 氮化镓充电器可以同时给笔记本电脑和手机快速充电。"),
    "p5": ("扫地机器人", LONG),
    "p6": ("降噪耳机", "头戴式降噪耳机在地铁和飞机上也能保持安静，续航三十小时。"),
    "p7": ("咖啡机", "全自动咖啡机一键制作意式浓缩和拿铁，自带奶泡功能。"),
    "p8": ("天气", "今天天气很好，适合去公园散步。"),
}
TRAIN = [
    ("iPhone 电池能用多久", "p1"),
    ("哪款手机支持卫星通话", "p2"),
    ("海淀区的大学", "p3"),
    ("笔记本电脑快充", "p4"),
    ("扫地机器人会自己充电吗", "p5"),
    ("坐飞机用的耳机", "p6"),
    ("在家做拿铁", "p7"),
    ("适合散步的天气", "p8"),
]
CAP = 48  # rerank_max_tokens: the long passage's pair is over it, the others are not


@pytest.fixture(scope="module")
def e5() -> Encoder:
    return Encoder(E5, runtime="torch")


def test_the_offline_copy_loads_under_its_real_name(e5: Encoder) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    folder, local = resolve_model(E5)
    assert local and "4-bit-derived" in (Path(folder) / "README.md").read_text()
    assert canonical_name("multilingual-e5-small") == E5
    assert (e5.name, e5.dim, e5.max_seq_length) == (E5, 384, 512)


def test_catalog_entries_and_defaults_per_language() -> None:
    info = catalog.lookup(E5)
    assert info is not None and info.prompts == {"query": "query: ", "document": "passage: "}
    assert "zh" in info.languages and info.max_seq_length == 512
    assert catalog.default_encoder("zh") == E5 == catalog.default_encoder("zh-TW")
    assert catalog.default_encoder("en") == catalog.ENGLISH_ENCODER
    assert catalog.default_reranker("zh") == catalog.MULTILINGUAL_RERANKER


def test_queries_and_passages_get_e5_prefixes_once(e5: Encoder) -> None:
    text = "苹果手机质量怎么样"
    query, passage = e5.encode_queries([text])[0], e5.encode_documents([text])[0]
    assert float(query @ passage) < 0.99  # the prefixes change the embedding
    # the same vectors as the prefixed texts with no prompt: each prefix applied exactly once
    plain = e5.model.encode(["query: " + text, "passage: " + text], prompt="")
    np.testing.assert_allclose(np.stack([query, passage]), plain, atol=1e-5)


def test_chinese_similarity_orders_by_meaning(e5: Encoder) -> None:
    query = e5.encode_queries(["苹果手机质量怎么样"])[0]
    related, unrelated = e5.encode_documents(["iPhone 好不好用", "今天天气很好"])
    assert float(query @ related) > float(query @ unrelated) + 0.02


def test_batches_follow_token_counts_not_characters(e5: Encoder) -> None:
    english = "Espresso is brewed by forcing hot water through finely ground coffee."
    chinese = "意式浓缩咖啡是用热水在高压下快速穿过细粉制成的。"
    counts = e5.token_counts([english, chinese])
    assert len(english) > len(chinese) and counts[0] < counts[1] * 1.5
    vectors = e5.encode_documents([english, chinese, "短"])
    alone = np.stack([e5.encode_documents([t])[0] for t in (english, chinese, "短")])
    np.testing.assert_allclose(vectors, alone, atol=1e-5)  # reordering never mixes rows


def test_a_full_batch_ends_before_a_much_shorter_text() -> None:
    encoder = Encoder(E5, batch_size=4)  # batches need no model
    # 8 x 512 tokens fill FULL_BATCH_TOKENS: the 300-token texts get their own batch
    counts = [300, 512, 512, 300, 512, 10, 512, 512, 512, 512, 512, 300]
    assert encoder.batches(counts) == [[1, 2, 4, 6], [7, 8, 9, 10], [0, 3, 11, 5]]
    assert Encoder(E5, batch_size=32).batches(counts) == [
        [1, 2, 4, 6, 7, 8, 9, 10],
        [0, 3, 11, 5],
    ]


def test_an_unreachable_hf_endpoint_is_named(tmp_path: Path) -> None:
    script = """
import json, logging
from searchkit import ModelUnavailable
from searchkit.inference.encoder import Encoder
from searchkit.inference.resolve import resolve_model
logging.basicConfig(filename="log.txt")
folder, local = resolve_model("intfloat/multilingual-e5-small")
try:
    Encoder("BAAI/bge-small-zh-v1.5", runtime="torch").model
    error = None
except ModelUnavailable as err:
    error = str(err)
print(json.dumps({"local": local, "folder": folder, "error": error}))
"""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env |= {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "not reachable at HF_ENDPOINT=http://127.0.0.1:9; check that mirror" in out["error"]
    # the multilingual default falls back to the offline copy, and says why
    assert out["local"] and out["folder"] == resolve_model(E5)[0]
    logged = (tmp_path / "log.txt").read_text()
    assert "not reachable at HF_ENDPOINT=http://127.0.0.1:9: using the offline copy" in logged


@pytest.fixture(scope="module")
def zh_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("zh-rerank")
    records = [{"_id": i, "title": t, "text": x} for i, (t, x) in DOCS.items()]
    corpus = write_jsonl(root / "corpus.jsonl", records)
    return build_index(corpus, root / "index", model=E5, runtime="torch", progress=False).path


@pytest.fixture(scope="module")
def zh_reranker(zh_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cross-encoder fine-tuned from the offline e5 weights (a new scoring head)."""
    queries = [TrainQuery(f"q{n}", q, positive_ids=[d]) for n, (q, d) in enumerate(TRAIN)]
    out = tmp_path_factory.mktemp("zh-model") / "reranker"
    report = train_reranker(
        zh_index, queries, out, base=E5, eval_queries=queries[:2], negatives=1, depth=4,
        in_batch=1, candidates=4, batch_size=4, max_length=64, progress=False,
    )  # fmt: skip
    assert report.steps == 2 and report.base == E5
    return out


def test_chinese_rerank_truncates_by_tokens(zh_index: Path, zh_reranker: Path) -> None:
    from sentence_transformers import CrossEncoder

    query = "扫地机器人怎么回充"
    searcher = Searcher.open(
        zh_index, reranker=str(zh_reranker), reranker_runtime="torch", rerank_max_tokens=CAP
    )
    hits = searcher.search(query, k=3, candidates=len(DOCS))
    assert hits.reranked and hits.candidates == len(DOCS)
    model = CrossEncoder(str(zh_reranker), max_length=CAP)
    passages = [f"{t} {x}" for t, x in DOCS.values()]
    lengths = [len(ids) for ids in model.tokenizer([query] * len(DOCS), passages)["input_ids"]]
    # only the long passage is over the cap, though it is far under its character cut
    assert [n > CAP for n in lengths] == [i == "p5" for i in DOCS]
    assert len(LONG) < CAP * 16 and hits.truncated == 1

    pairs = [(query, p) for p in passages]
    scores, cut = Reranker(str(zh_reranker), runtime="torch", max_tokens=CAP).score_counted(pairs)
    assert cut.tolist() == [i == "p5" for i in DOCS]
    np.testing.assert_allclose(scores, model.predict(pairs), rtol=1e-4, atol=1e-5)
    full = Reranker(str(zh_reranker), runtime="torch").score_counted(pairs)
    assert not full[1].any() and abs(float(full[0][4]) - float(scores[4])) > 1e-6
