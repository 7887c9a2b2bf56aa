"""A Chinese corpus end to end with defaults only: detected as zh, BM25 over the zh analyzer,
the offline multilingual bi-encoder, a user dictionary copied into the index, upserts and
compact that keep the analyzer, and eval from the CLI."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import write_jsonl
from typer.testing import CliRunner

from searchkit import (
    Document,
    IncompatibleIndex,
    IndexWriter,
    InvalidParameter,
    Searcher,
    build_index,
)
from searchkit.analysis import get_analyzer
from searchkit.cli import app
from searchkit.index.manifest import Manifest
from searchkit.ingest.corpus import CorpusReader
from searchkit.ingest.language import corpus_language

DOCS = [
    (
        "p1",
        "iPhone 15 Pro",
        "iPhone 15 Pro 采用钛金属边框，电池续航比上一代更长，接口是 USB-C。",
    ),
    ("p2", "华为 Mate 60", "华为 Mate 60 支持卫星通话，搭载麒麟9000S 芯片，拍照效果出色。"),
    ("p3", "北京大学", "北京大学是中国著名的综合性大学，校园位于北京市海淀区。"),
    ("p4", "氮化镓充电器", "65W 氮化镓充电器可以同时给笔记本电脑和手机快速充电，体积小巧。"),
    ("p5", "臺灣夜市", "臺灣的夜市以小吃聞名，臺北士林夜市每晚都很熱鬧。"),
    ("p6", "空气净化器", "这款空气净化器适合二十平方米的卧室，能过滤 PM2.5 和花粉。"),
    ("p7", "机械键盘", "机械键盘采用青轴，敲击手感清脆，支持蓝牙和有线两种连接。"),
    ("p8", "咖啡机", "全自动咖啡机一键制作意式浓缩和拿铁，自带奶泡功能。"),
    ("p9", "扫地机器人", "扫地机器人能自动规划路线，扫拖一体，电量不足时自己回充。"),
    ("p10", "降噪耳机", "头戴式降噪耳机在地铁和飞机上也能保持安静，续航三十小时。"),
]
QUERIES = {
    "q1": ("iPhone 15 电池续航怎么样", "p1"),
    "q2": ("麒麟9000S 是哪款手机的芯片", "p2"),
    "q3": ("台湾夜市小吃", "p5"),  # Simplified query, Traditional document: t2s
    "q4": ("65W 充电器能给笔记本充电吗", "p4"),
    "q5": ("北京", "p3"),  # search mode: 北京大学 also yields 北京
}


def records() -> list[dict]:
    return [{"_id": i, "title": t, "text": x} for i, t, x in DOCS]


@pytest.fixture(scope="module")
def zh_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("zh")
    corpus = write_jsonl(root / "corpus.jsonl", records())
    user_dict = root / "dict.txt"
    user_dict.write_text("麒麟9000S 10 nz\n", encoding="utf-8")
    return build_index(corpus, root / "index", user_dict=user_dict, progress=False).path


def test_defaults_detect_chinese_and_record_the_analyzer(zh_index: Path) -> None:
    m = Manifest.read(zh_index)
    assert m.language == "zh"
    assert m.encoder.name == "intfloat/multilingual-e5-small"  # the offline copy
    analyzer = m.lexical.analyzer
    assert analyzer["name"] == "zh" and analyzer["t2s"] is True
    assert analyzer["user_dict_sha256"]
    copied = zh_index / m.files["user_dict"].path
    assert copied.read_text(encoding="utf-8") == "麒麟9000S 10 nz\n"


def test_info_shows_language_and_analyzer(zh_index: Path) -> None:
    result = CliRunner().invoke(app, ["info", str(zh_index)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert re.search(r"^ ?language +zh\b", result.output, re.M), result.output
    assert "analyzer zh v2 (t2s, unigrams, user dictionary" in result.output


@pytest.mark.parametrize("qid", sorted(QUERIES))
def test_chinese_queries_find_their_passage_in_every_mode(zh_index: Path, qid: str) -> None:
    searcher = Searcher.open(zh_index)
    query, want = QUERIES[qid]
    for mode in ("lexical", "dense", "hybrid"):
        hits = searcher.search(query, 3, rerank=False, mode=mode)
        assert hits[0].id == want, (mode, query, [h.id for h in hits])


def test_the_user_dictionary_keeps_a_product_name_whole(zh_index: Path) -> None:
    searcher = Searcher.open(zh_index)
    assert "麒麟9000s" in searcher.analyzer.tokens(["麒麟9000S 芯片"])[0]
    assert "麒麟9000s" not in get_analyzer("zh").tokens(["麒麟9000S 芯片"])[0]


def test_upsert_and_compact_keep_the_analyzer(zh_index: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(zh_index, index)
    with IndexWriter(index) as writer:
        writer.upsert([Document("p11", "電熱水壺五分鐘燒開一升水。", title="电热水壶")])
        writer.delete(["p8"])
        writer.compact()
    m = Manifest.read(index)
    assert m.lexical.analyzer == Manifest.read(zh_index).lexical.analyzer
    assert "user_dict" in m.files and (index / m.files["user_dict"].path).is_file()
    searcher = Searcher.open(index)  # verifies every file, the copied dictionary too
    hits = searcher.search("电热水壶烧水", 1, rerank=False, mode="lexical")
    assert [h.id for h in hits] == ["p11"]  # the new document's terms went through t2s too
    assert "麒麟9000s" in searcher.analyzer.tokens(["麒麟9000S"])[0]


def test_a_missing_dictionary_copy_is_a_clear_error(zh_index: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(zh_index, index)
    m = Manifest.read(index)
    (index / m.files["user_dict"].path).unlink()
    with pytest.raises(Exception, match="user_dict file is missing"):
        Searcher.open(index)
    from searchkit.index.lexical import index_analyzer

    with pytest.raises(IncompatibleIndex, match="user dictionary"):
        index_analyzer(m.lexical, index)


def test_language_can_be_forced_and_detection_reads_the_corpus(tmp_path: Path) -> None:
    zh = write_jsonl(tmp_path / "zh.jsonl", records())
    en = write_jsonl(tmp_path / "en.jsonl", [{"_id": "a", "text": "Prune the roses early."}])
    assert corpus_language(CorpusReader(zh)) == "zh"
    assert corpus_language(CorpusReader(en)) == "en"
    assert corpus_language(CorpusReader(zh), "cjk") == "cjk"
    with pytest.raises(InvalidParameter, match="unknown language 'fr'") as err:
        corpus_language(CorpusReader(zh), "fr")
    assert err.value.param == "language"
    with pytest.raises(InvalidParameter, match="user dictionary is read by the zh analyzer"):
        build_index(en, tmp_path / "out", user_dict=tmp_path / "x.txt", progress=False)
    assert not (tmp_path / "out").exists()


def test_english_index_keeps_the_english_engine(tmp_path: Path) -> None:
    en = write_jsonl(tmp_path / "en.jsonl", [{"_id": "a", "text": "Prune the roses early."}])
    m = build_index(en, tmp_path / "index", progress=False).manifest
    assert (m.language, m.encoder.name) == ("en", "sentence-transformers/all-MiniLM-L6-v2")
    assert m.lexical.analyzer == {"name": "en", "version": 1}


def test_chinese_eval_from_the_cli(zh_index: Path, tmp_path: Path) -> None:
    queries = write_jsonl(
        tmp_path / "queries.jsonl", [{"_id": q, "text": t} for q, (t, _) in QUERIES.items()]
    )
    qrels = tmp_path / "qrels.tsv"
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, (_, d) in QUERIES.items()]
    qrels.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "eval.json"
    args = ["eval", str(zh_index), "--queries", str(queries), "--qrels", str(qrels)]
    result = CliRunner().invoke(app, [*args, "--no-rerank", "--no-progress", "--json", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["retrieval"]["nDCG@10"] == pytest.approx(1.0)
