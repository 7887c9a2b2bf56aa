"""The lexical stage's analyzers: en (bm25s, unchanged), zh (rjieba), cjk bigrams, detection."""

from __future__ import annotations

from pathlib import Path

import bm25s
import pytest
import Stemmer

from searchkit.analysis import (
    analyzer_from_config,
    detect_language,
    get_analyzer,
)
from searchkit.errors import IncompatibleIndex, InvalidParameter

ENGLISH = [
    "Running the tests: twice, or thrice!",
    "Glucocorticoids' effects on T-cells (in vitro) were 3.5x larger.",
    "",
    "a an the",
    "Ünïcode wörds and numbers 42 1984",
]


def words(text: str, **options: object) -> list[str]:
    return get_analyzer("zh", **options).tokens([text])[0]


def test_en_is_bm25s_tokenizer():
    stemmer = Stemmer.Stemmer("english")
    expected = bm25s.tokenize(ENGLISH, stopwords="en", stemmer=stemmer, return_ids=False,
                              show_progress=False)  # fmt: skip
    assert get_analyzer("en").tokens(ENGLISH) == [list(t) for t in expected]


def test_zh_search_mode_finds_the_words_inside_a_word():
    terms = words("北京大学", bigrams=False, unigrams=False)
    assert terms == ["北京", "大学", "北京大学"]


def test_zh_drops_stopwords_and_punctuation():
    terms = words("我们的学生，在北京。", bigrams=False, unigrams=False)
    assert terms == ["学生", "北京"]
    assert "的" not in words("我们的学生，在北京。") and "，" not in words("学生，北京")


def test_zh_characters_and_bigrams_are_added():
    assert words("电池续航", bigrams=False, unigrams=False) == ["电池", "续航"]
    assert words("电池续航", bigrams=True, unigrams=False) == [
        "电池",
        "续航",
        "电池",
        "池续",
        "续航",
    ]
    assert words("电池续航")[-4:] == ["电", "池", "续", "航"]


def test_zh_query_words_weigh_twice_its_characters():
    zh = get_analyzer("zh")
    assert zh.tokens(["电池续航"]) == [["电池", "续航", "电", "池", "续", "航"]]  # the defaults
    assert zh.query_terms("iPhone 电池") == {"iphon": 2.0, "电池": 2.0, "电": 1.0, "池": 1.0}
    plain = get_analyzer("zh", word_weight=1)
    assert plain.query_terms("电池电池") == {"电池": 2.0, "电": 2.0, "池": 2.0}
    assert get_analyzer("cjk").query_terms("東京東京") == {"東京": 2.0, "京東": 1.0}
    assert get_analyzer("en").query_terms("tests test") == {"test": 2.0}


def test_zh_nfkc_full_width_to_half_width():
    assert words("ＡＢＣ１２３") == ["abc123"]
    assert words("ｉＰｈｏｎｅ　１５") == words("iPhone 15") == ["iphon", "15"]


def test_zh_mixed_text_latin_stemmed_numbers_kept():
    terms = words("iPhone 15 好不好用", bigrams=False, unigrams=False)
    assert terms[:2] == ["iphon", "15"] and "好不好" in terms
    assert words("Running tests on 北京") == ["run", "test", "北京", "北", "京"]
    # Latin words split on punctuation, English stopwords out, single digits kept
    assert words("USB-C接口 and the 5 G") == ["usb", "c", "接口", "5", "g", "接", "口"]


def test_zh_user_dictionary_keeps_a_domain_term_whole(tmp_path: Path):
    plain = words("云鲸J4扫拖机器人很好用", bigrams=False, unigrams=False)
    assert "云鲸j4" not in plain
    path = tmp_path / "dict.txt"
    path.write_text("# product names\n云鲸J4 10 nz\n扫拖机器人\n", encoding="utf-8")
    mine = words("云鲸J4扫拖机器人很好用", user_dict=path, bigrams=False, unigrams=False)
    assert "云鲸j4" in mine and "扫拖机器人" in mine
    # the user's words do not leak into analyzers without the dictionary
    assert words("云鲸J4扫拖机器人很好用", bigrams=False, unigrams=False) == plain


def test_zh_user_dictionary_errors_name_the_file_and_line(tmp_path: Path):
    with pytest.raises(InvalidParameter, match="cannot read the user dictionary"):
        get_analyzer("zh", user_dict=tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("好词\n坏词 often\n", encoding="utf-8")
    with pytest.raises(InvalidParameter, match=r"bad.txt:2: expected 'word \[frequency\]"):
        get_analyzer("zh", user_dict=bad)
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("好词\n".encode("gbk"))
    with pytest.raises(InvalidParameter, match="not UTF-8"):
        get_analyzer("zh", user_dict=gbk)


def test_zh_t2s_folds_traditional_to_simplified():
    assert words("臺灣的軟體開發") == words("台湾的软体开发")
    assert "台湾" in words("臺灣")
    assert words("臺灣", t2s=False) != words("台湾", t2s=False)


def test_cjk_bigrams_for_japanese_and_korean():
    (ja, ko, one) = get_analyzer("cjk").tokens(["東京タワーへ", "한국어 텍스트", "猫 and Dogs"])
    assert ja == ["東京", "京タ", "タワ", "ワー", "ーへ"]
    assert ko == ["한국", "국어", "텍스", "스트"]
    assert one == ["猫", "dog"]


@pytest.mark.parametrize(
    ("texts", "language"),
    [
        (["iPhone 15 好不好用", "电池续航怎么样？充电一次能用两天"], "zh"),
        (["臺灣的軟體開發人員"], "zh"),
        # a Chinese catalogue full of English product names is still Chinese
        (["Apple iPhone 15 Pro Max 256GB 手机", "Sony WH-1000XM5 降噪耳机 Bluetooth"], "zh"),
        (["How do I reset my password?", "The café serves crème brûlée"], "en"),
        (["A paper that cites 北京 once among many English words in the abstract"], "en"),
        (["東京タワーに行きました", "ラーメンを食べる"], "cjk"),
        (["안녕하세요 세계", "한국어 문서"], "cjk"),
        (["Привет, как дела?", "Это русский текст"], "other"),
        (["", "12345"], "en"),
    ],
)
def test_detect_language_by_script(texts: list[str], language: str):
    assert detect_language(texts) == language


def test_config_round_trip_and_old_manifests_read_as_en(tmp_path: Path):
    zh = get_analyzer("zh", t2s=False)
    again = analyzer_from_config(zh.config())
    assert again.config() == zh.config() and again.tokens(["臺灣"]) == zh.tokens(["臺灣"])
    assert analyzer_from_config(None).name == "en"
    with pytest.raises(IncompatibleIndex, match="version 99.*rebuild"):
        analyzer_from_config({**zh.config(), "version": 99})


def test_config_checks_the_user_dictionary(tmp_path: Path):
    path = tmp_path / "dict.txt"
    path.write_text("云鲸J4\n", encoding="utf-8")
    config = get_analyzer("zh", user_dict=path).config()
    assert len(config["user_dict_sha256"]) == 64
    assert "云鲸j4" in analyzer_from_config(config, path).tokens(["云鲸J4"])[0]
    with pytest.raises(IncompatibleIndex, match="is missing"):
        analyzer_from_config(config, tmp_path / "gone.txt")
    other = tmp_path / "other.txt"
    other.write_text("别的词\n", encoding="utf-8")
    with pytest.raises(IncompatibleIndex, match="differs"):
        analyzer_from_config(config, other)


def test_unknown_analyzer_and_option():
    with pytest.raises(InvalidParameter, match="choose one of: en, zh, cjk"):
        get_analyzer("fr")
    with pytest.raises(InvalidParameter, match="does not take"):
        get_analyzer("en", t2s=True)
