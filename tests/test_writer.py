"""Living indexes: upsert, delete and compact on every backend; readers' views; the lock."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from searchkit import Document, Searcher, build_index
from searchkit.errors import FilterError, IndexLocked, InvalidParameter
from searchkit.ingest.writer import IndexWriter
from searchkit.query.searcher import verify_index
from tests.conftest import QUERIES, tiny_records, write_jsonl

BACKENDS = [
    ("faiss", "flat"),
    ("faiss", "hnsw"),
    ("faiss", "ivf"),
    ("hnswlib", "hnsw"),
    ("exact", "flat"),
    ("faiss", "sq8"),
    ("faiss", "binary"),
    ("faiss", "binary-hnsw"),
]


def live_docs(path: Path) -> dict[str, tuple[str, str, dict]]:
    """Every live document, read through a fresh Searcher: id -> (title, text, metadata)."""
    s = Searcher.open(path)
    out = {}
    for seg in s.stage.view.segments:
        rows = np.arange(seg.entry.rows) if seg.live is None else np.flatnonzero(seg.live)
        out.update({d.id: (d.title, d.text, d.metadata) for d in seg.docs.take(rows)})
    assert sorted(out) == sorted(s.ids()) and len(out) == len(s)
    return out


@pytest.fixture
def index(tiny_corpus: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    backend, kind = getattr(request, "param", ("faiss", "flat"))
    params = {"nlist": 2} if kind == "ivf" else None
    return build_index(
        tiny_corpus, tmp_path / "idx", backend=backend, kind=kind, params=params, progress=False
    ).path


@pytest.mark.parametrize("index", BACKENDS, indirect=True, ids=[f"{b}-{k}" for b, k in BACKENDS])
def test_upsert_delete_compact_on_every_backend(index):
    before = live_docs(index)
    new = Document(
        "kiwi", "Kiwi fruit is rich in vitamin C and grows on vines.", "Kiwi", {"year": 2024}
    )
    changed = Document(
        "bitcoin", "Bitcoin mining uses a lot of electricity.", "Bitcoin", {"year": 2030}
    )
    same = Document("tides", *reversed(before["tides"][:2]), before["tides"][2])
    with IndexWriter.open(index) as w:
        report = w.upsert([new, changed, same])
        assert (report.added, report.replaced, report.unchanged) == (1, 1, 1)
        assert report.version == 2 and report.documents == 13 and report.tombstones == 1
        report = w.delete(["chess", "vaccine", "nope"])
        assert report.deleted == 2 and report.missing == ("nope",) and report.documents == 11
    expected = {k: v for k, v in before.items() if k not in {"chess", "vaccine"}}
    expected["kiwi"] = ("Kiwi", new.text, {"year": 2024})
    expected["bitcoin"] = ("Bitcoin", changed.text, {"year": 2030})
    assert live_docs(index) == expected
    s = Searcher.open(index)
    assert s.search("kiwi vitamin fruit", k=1, rerank=False)[0].id == "kiwi"
    hits = s.search("electricity used by bitcoin mining", k=11, rerank=False)
    assert hits[0].id == "bitcoin" and hits[0].text == changed.text
    assert {h.id for h in hits} == set(expected)  # every live doc, no deleted one, no duplicate
    with IndexWriter.open(index) as w:
        report = w.compact()
    assert report.tombstones == 0 and report.documents == 11
    m = verify_index(index)
    assert [(e.rows, e.deleted) for e in m.segments] == [(11, 0)]
    assert not (index / "deletions").exists() or not list((index / "deletions").iterdir())
    assert live_docs(index) == expected
    hits = Searcher.open(index).search("kiwi vitamin fruit", k=11, rerank=False)
    assert hits[0].id == "kiwi" and {h.id for h in hits} == set(expected)


def test_unchanged_documents_are_not_re_embedded_or_committed(index, tiny_corpus):
    with IndexWriter.open(index) as w:
        report = w.add_corpus(tiny_corpus)
    assert (report.added, report.replaced, report.unchanged) == (0, 0, 12)
    assert report.version == 1  # nothing changed: no commit
    assert len(list((index / "segments").iterdir())) == 1


def test_deleting_most_documents_still_fills_k(tmp_path):
    records = [
        {"_id": f"d{i}", "text": f"Note {i} about gardening, soil and tomato plants {i}."}
        for i in range(300)
    ]
    path = build_index(
        write_jsonl(tmp_path / "c.jsonl", records),
        tmp_path / "idx",
        backend="hnswlib",
        progress=False,
    ).path
    with IndexWriter.open(path) as w:
        w.delete([f"d{i}" for i in range(300) if i % 20])  # 95% gone
    hits = Searcher.open(path).search("tomato plants in the garden", k=10, rerank=False)
    assert len(hits) == 10 and all(int(h.id[1:]) % 20 == 0 for h in hits)


def test_where_filters_with_string_and_dict(index):
    s = Searcher.open(index)
    hits = s.search("anything about nature", k=12, rerank=False, where="year >= 2008")
    assert sorted(h.id for h in hits) == sorted(
        r["_id"] for r in tiny_records() if r["year"] >= 2008
    )
    hits = s.search("anything", k=3, rerank=False, where={"topic": ["chess", "tides"]})
    assert sorted(h.id for h in hits) == ["chess", "tides"]
    hits = s.search("anything", k=5, rerank=False, where='topic = "volcano" or year < 2001')
    assert sorted(h.id for h in hits) == ["vaccine", "volcano"]
    with pytest.raises(FilterError, match="unknown field 'yeer'"):
        s.search("x", where="yeer > 3", rerank=False)
    with pytest.raises(FilterError, match="character"):
        s.search("x", where="year >= and", rerank=False)


def test_filter_sees_fields_of_every_segment_and_skips_deleted(index):
    with IndexWriter.open(index) as w:
        w.upsert(
            [
                Document(
                    "kiwi", "Kiwi fruit grows on vines.", "Kiwi", {"colour": "green", "year": 2024}
                )
            ]
        )
        w.delete(["insulin"])  # year 2011
    s = Searcher.open(index)
    assert [h.id for h in s.search("fruit", k=5, rerank=False, where='colour = "green"')] == [
        "kiwi"
    ]
    hits = s.search("anything", k=12, rerank=False, where="year > 2010")
    assert sorted(h.id for h in hits) == ["kiwi"]


def test_a_reader_keeps_its_version_until_refresh(index):
    reader = Searcher.open(index)
    with IndexWriter.open(index) as w:
        w.upsert([Document("kiwi", "Kiwi fruit is rich in vitamin C.", "Kiwi", {})])
        w.delete(["vaccine"])
        w.compact()  # removes the files the reader opened
    query = "how do vaccines protect against disease"
    assert reader.search(query, k=1, rerank=False)[0].id == "vaccine"
    assert "kiwi" not in reader.ids() and reader.manifest.version == 1
    assert reader.refresh() is True and reader.manifest.version == 4
    assert reader.search(query, k=1, rerank=False)[0].id != "vaccine"
    assert "kiwi" in reader.ids() and reader.refresh() is False


def test_second_writer_is_refused_and_the_lock_is_released(index):
    with IndexWriter.open(index):
        with pytest.raises(IndexLocked, match=r"is being changed by pid \d+"):
            IndexWriter.open(index)
    with IndexWriter.open(index) as w:
        assert w.delete(["chess"]).deleted == 1


def test_upsert_rejects_bad_documents_and_leaves_the_index(index):
    before = json.loads((index / "manifest.json").read_text())
    with IndexWriter.open(index) as w:
        with pytest.raises(
            InvalidParameter, match=r"document 1: duplicate id 'a' \(also document 0\)"
        ):
            w.upsert([Document("a", "x"), Document("a", "y")])
        with pytest.raises(InvalidParameter, match=r"document 0 \(id 'b'\): text must be"):
            w.upsert([Document("b", "  ")])
        with pytest.raises(InvalidParameter, match="metadata is not JSON data"):
            w.upsert([Document("c", "text", "", {"x": {1, 2}})])
    assert json.loads((index / "manifest.json").read_text()) == before


def test_search_after_deleting_everything_returns_nothing(index):
    with IndexWriter.open(index) as w:
        w.delete([r["_id"] for r in tiny_records()])
        assert w.compact().documents == 0
    s = Searcher.open(index)
    assert len(s) == 0 and list(s.search(next(iter(QUERIES)), rerank=False)) == []
    with IndexWriter.open(index) as w:
        w.upsert([Document("kiwi", "Kiwi fruit is rich in vitamin C.")])
    assert [h.id for h in Searcher.open(index).search("kiwi", rerank=False)] == ["kiwi"]


def test_small_adds_to_an_ivf_index_size_their_own_lists(tmp_path):
    records = [
        {"_id": f"d{i}", "text": f"Short note number {i} on bees and honey."} for i in range(200)
    ]
    corpus = write_jsonl(tmp_path / "c.jsonl", records)
    path = build_index(corpus, tmp_path / "idx", kind="ivf", progress=False).path
    assert Searcher.open(path).manifest.backend.params["nlist"] == 5  # 200 // 39
    with IndexWriter.open(path) as w:
        w.upsert([Document("kiwi", "Kiwi fruit is rich in vitamin C.")])
    assert Searcher.open(path).search("kiwi vitamin", k=1, rerank=False)[0].id == "kiwi"


def test_refresh_reopens_only_what_changed(index):
    reader = Searcher.open(index)
    base = reader.stage.view.segments[0]
    with IndexWriter.open(index) as w:
        w.upsert([Document("kiwi", "Kiwi fruit is rich in vitamin C.", "Kiwi", {})])
        w.delete(["vaccine"])
    assert reader.refresh()
    first, second = reader.stage.view.segments
    assert first.docs is base.docs and first.index is base.index  # reused, not reloaded
    assert base.live is None and first.live is not None and not first.live.all()
    assert reader.search("kiwi vitamin", k=1, rerank=False)[0].id == "kiwi"
    assert "vaccine" not in reader.ids() and len(second.docs) == 1
