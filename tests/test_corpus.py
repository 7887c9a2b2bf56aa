from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path

import pytest

from searchkit import CorpusError, CorpusReader, Document
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
