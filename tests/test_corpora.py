"""The Chinese evaluation sets committed under corpora/ are well-formed BEIR folders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from searchkit import CorpusReader
from searchkit.eval.beir import load_beir

CORPORA = Path(__file__).resolve().parents[1] / "corpora"
SETS = sorted(p.name for p in CORPORA.glob("zh-*") if (p / "corpus.jsonl").is_file())  # Chinese
HAN = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")


def test_the_chinese_sets_are_there():
    assert {"zh-shop", "zh-tech"} <= set(SETS)


@pytest.fixture(scope="module", params=SETS)
def root(request) -> Path:
    return CORPORA / request.param


def _ids(path: Path) -> list[str]:
    return [row.id for row in CorpusReader(path)]


def test_ids_are_unique_and_every_qrel_names_a_passage_and_a_query(root):
    docs, queries = _ids(root / "corpus.jsonl"), _ids(root / "queries.jsonl")
    assert len(docs) == len(set(docs)) >= 100
    assert len(queries) == len(set(queries)) >= 100
    judged = {}
    for split in ("dev", "test"):
        data = load_beir(root, split)
        assert data.corpus == root / "corpus.jsonl"
        pairs = [(q, d) for q, rel in data.qrels.items() for d in rel]
        assert all(score == 1 for rel in data.qrels.values() for score in rel.values())
        assert {d for _, d in pairs} <= set(docs)
        judged[split] = set(data.qrels)
    # the splits are disjoint and together judge every query
    assert not judged["dev"] & judged["test"]
    assert judged["dev"] | judged["test"] == set(queries)
    assert (root / "qrels" / "test.tsv").read_text().startswith("query-id\tcorpus-id\tscore\n")


def test_text_is_simplified_chinese(root):
    import opencc

    t2s = opencc.OpenCC("t2s")
    texts = [f"{d.title} {d.text}" for d in CorpusReader(root / "corpus.jsonl")]
    texts += [q.text for q in CorpusReader(root / "queries.jsonl")]
    han = sum(len(HAN.findall(t)) for t in texts)
    changed = sum(a != b for t in texts for a, b in zip(t, t2s.convert(t), strict=True))
    assert han > 5000 and changed <= 0.001 * han


def test_queries_mix_chinese_and_english(root):
    queries = [q.text for q in CorpusReader(root / "queries.jsonl")]
    mixed = [q for q in queries if HAN.search(q) and LATIN.search(q)]
    pure = [q for q in queries if HAN.search(q) and not LATIN.search(q)]
    assert len(mixed) >= 0.4 * len(queries)
    assert len(pure) >= 0.2 * len(queries)


def test_each_set_says_where_it_comes_from(root):
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "licen" in readme.lower() and "qrels/test.tsv" in readme
