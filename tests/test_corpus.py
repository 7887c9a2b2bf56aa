from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import re
from pathlib import Path

import pytest

from searchkit import CorpusError, CorpusReader, Document, InvalidParameter
from searchkit.distributed.blocks import parse_block, plan_blocks
from tests.conftest import write_jsonl

GOOD = {"_id": "a", "title": "T", "text": "some text"}


def read(path: Path, **kw) -> list[Document]:
    return list(CorpusReader(path, **kw))


def test_reads_fields_and_metadata(tmp_path):
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"_id": "a", "title": "T", "text": "alpha", "year": 2020, "metadata": {"src": "x"}},
            "",
            {"id": "b", "text": "beta", "title": None},
        ],
    )
    docs = read(path)
    assert docs == [
        Document("a", "alpha", "T", {"year": 2020, "src": "x"}),
        Document("b", "beta", "", {}),
    ]


def test_gzip_reads_the_same_with_the_same_checksum(tmp_path):
    plain = write_jsonl(tmp_path / "c.jsonl", [GOOD, {"_id": "b", "text": "b"}])
    packed = tmp_path / "c.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = CorpusReader(plain), CorpusReader(packed)
    assert list(a) == list(b)
    assert a.sha256 == b.sha256 == hashlib.sha256(plain.read_bytes()).hexdigest()


def test_custom_id_field(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"doc": "x1", "_id": 5, "text": "t"}])
    assert read(path, id_field="doc") == [Document("x1", "t", "", {"_id": 5})]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"_id": "b", "text": "unterminated', "invalid JSON"),
        ('["a", "list"]', "expected a JSON object, got list"),
        ('{"_id": "b"}', "missing field 'text'"),
        ('{"_id": "b", "text": "   "}', "field 'text' is empty"),
        ('{"_id": "b", "text": 42}', "field 'text' must be a string, got int"),
        ('{"_id": 7, "text": "x"}', "id field '_id' must be a string, got int"),
        ('{"text": "x"}', "missing id field '_id' or 'id'"),
        ('{"_id": "", "text": "x"}', "id field '_id' is empty"),
        ('{"_id": "a", "text": "again"}', "duplicate id 'a' (first on line 1)"),
        ('{"_id": "b", "text": "x", "title": 3}', "field 'title' must be a string"),
    ],
)
def test_bad_line_names_file_line_and_problem(tmp_path, line, problem):
    path = write_jsonl(tmp_path / "c.jsonl", [GOOD, "", line])
    with pytest.raises(CorpusError) as info:
        read(path)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: ")
    assert problem in str(info.value)


def test_invalid_utf8_is_reported_with_its_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "\xff\xfe"}\n')
    with pytest.raises(CorpusError, match=r"c.jsonl:2: not UTF-8"):
        read(path)


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_corpus(tmp_path, content):
    path = tmp_path / "c.jsonl"
    path.write_text(content)
    with pytest.raises(CorpusError, match="empty corpus"):
        read(path)


def test_missing_file():
    with pytest.raises(CorpusError, match="no such file"):
        CorpusReader("/nonexistent/corpus.jsonl")


def test_truncated_gzip_is_an_error(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    lines = b"".join(b'{"_id": "%d", "text": "x"}\n' % i for i in range(1000))
    path.write_bytes(gzip.compress(lines)[:100])
    with pytest.raises(CorpusError, match="cannot read file"):
        read(path)


def test_skip_invalid_reports_count_and_lines(tmp_path):
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [GOOD, "{bad", {"_id": "a", "text": "dup"}, {"_id": "c", "text": "fine"}, {"_id": "d"}],
    )
    reader = CorpusReader(path, skip_invalid=True)
    assert [d.id for d in reader] == ["a", "c"]
    assert reader.skipped_count == 3
    assert [s.line for s in reader.skipped] == [2, 3, 5]
    assert "duplicate id" in reader.skipped[1].problem


def test_skip_invalid_with_nothing_valid_is_still_an_empty_corpus(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", ["{bad", "[]"])
    with pytest.raises(
        CorpusError, match=r"empty corpus: no documents \(2 invalid lines skipped\)"
    ):
        read(path, skip_invalid=True)


def test_corpus_errors_survive_pickling() -> None:
    # Ray and multiprocessing carry errors between processes by pickle
    err = pickle.loads(pickle.dumps(CorpusError("c.jsonl", 7, "missing field 'text'")))
    assert (err.path, err.line, err.problem) == ("c.jsonl", 7, "missing field 'text'")
    assert str(err) == "c.jsonl:7: missing field 'text'"


ZH = [
    {
        "_id": "d1",
        "title": "苹果手机",
        "text": "iPhone 15 Pro 的电池续航大约一整天，支持 USB-C 快充。",
    },
    {"_id": "d2", "text": "𠀀 and 😀 are four bytes in GB18030; 臺灣 is Traditional."},
    {"_id": "d3", "title": "饺子", "text": "北方人过年常吃饺子。"},
]


def zh_bytes(encoding: str, records: list[dict] = ZH) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode(encoding)


@pytest.mark.parametrize(
    ("encoding", "records"),
    [("gb18030", ZH), ("GBK", ZH[:1] + ZH[2:]), ("big5", [{"_id": "t", "text": "臺灣的夜市"}])],
)
def test_reads_the_corpus_in_its_encoding(tmp_path, encoding, records):
    path = tmp_path / "c.jsonl"
    path.write_bytes(zh_bytes(encoding, records))
    reader = CorpusReader(path, encoding=encoding)
    assert [(d.id, d.text, d.title) for d in reader] == [
        (r["_id"], r["text"], r.get("title", "")) for r in records
    ]
    assert reader.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()  # of the bytes as stored


def test_a_gb18030_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes("\ufeff".encode("gb18030") + zh_bytes("gb18030"))
    assert read(path, encoding="gb18030")[0].id == "d1"


def test_a_gbk_file_read_as_utf8_says_which_encoding_to_try(tmp_path):
    path = tmp_path / "gbk.jsonl"
    path.write_bytes(zh_bytes("gbk", ZH[:1]))
    with pytest.raises(CorpusError) as info:
        read(path)
    assert str(info.value) == (
        f'{path}:1: not UTF-8 text (invalid start byte) (try encoding="gb18030")'
    )


TRADITIONAL = {"_id": "t", "text": "臺北的夜市小吃很多，國立臺灣大學位於臺北市大安區。"}
GERMAN = {"_id": "g", "text": "Müller aus Zürich schaut über die Brücke, schön."}


@pytest.mark.parametrize(
    ("data", "read_as", "advice"),
    [
        (zh_bytes("gbk", [TRADITIONAL]), "utf-8", "gb18030"),  # GBK has Traditional ones too
        (zh_bytes("big5", [TRADITIONAL]), "utf-8", "big5"),  # Big5 bytes are GBK's, rare ones
        (zh_bytes("utf-8", ZH[:1]), "big5", "utf-8"),
        (zh_bytes("utf-8", ZH[:1]), "gb18030", "utf-8"),
        (zh_bytes("latin-1", [GERMAN]), "utf-8", None),  # "ü" then "l" is a rare GBK character
        (b'{"_id": "b", "text": "\xff\xfe\x80"}\n', "utf-8", None),  # in none of them
    ],
    ids=["gbk-traditional", "big5", "utf8-as-big5", "utf8-as-gb18030", "latin-1", "garbage"],
)
def test_a_line_that_does_not_decode_says_which_likely_encoding_it_is_in(
    tmp_path, data, read_as, advice
):
    path = tmp_path / "c.jsonl"
    path.write_bytes(data)
    with pytest.raises(CorpusError) as info:
        read(path, encoding=read_as)
    problem = info.value.problem
    assert problem.startswith(f"not {'UTF-8' if read_as == 'utf-8' else read_as} text (")
    assert problem.endswith(f'(try encoding="{advice}")') if advice else "try" not in problem


@pytest.mark.parametrize(
    ("encoding", "problem"),
    [
        ("utf-16", "a corpus in utf-16 cannot be read line by line"),
        ("utf-32-le", "a corpus in utf-32-le cannot be read line by line"),
        ("cp037", "a corpus in cp037 cannot be read line by line"),  # EBCDIC
        ("gb-2312-typo", "unknown encoding 'gb-2312-typo'"),
        ("base64", "unknown encoding 'base64'"),  # a codec, but not of text
    ],
)
def test_encodings_that_cannot_be_read_line_by_line_are_refused(tmp_path, encoding, problem):
    path = write_jsonl(tmp_path / "c.jsonl", [GOOD])
    with pytest.raises(InvalidParameter, match=re.escape(problem)) as info:
        CorpusReader(path, encoding=encoding)
    assert info.value.param == "encoding"
    with pytest.raises(InvalidParameter, match=re.escape(problem)):
        plan_blocks(path, 2, encoding=encoding)


def test_blocks_of_a_gb18030_corpus_end_on_its_lines(tmp_path):
    # GB18030 never uses the byte \n inside a character, so byte offsets cut whole lines
    records = [{"_id": f"z{i}", "text": f"第{i}条 {ZH[i % 3]['text']}"} for i in range(10)]
    path = tmp_path / "c.jsonl"
    path.write_bytes(zh_bytes("gb18030", records))
    plan = plan_blocks(path, 3, encoding="gb18030")
    assert plan.encoding == "gb18030" and len(plan.blocks) == 4
    parsed = [parse_block(path, b, encoding=plan.encoding) for b in plan.blocks]
    assert [ln for p in parsed for ln in p.lines] == list(range(1, 11))
    assert [d for p in parsed for d in p.docs] == read(path, encoding="gb18030")
