"""Long documents: passages at index time, best-passage scores, truncation counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from searchkit import Document, Searcher, build_index
from searchkit.cli import app
from searchkit.errors import InvalidParameter
from searchkit.inference.encoder import Encoder
from searchkit.ingest.chunking import ChunkConfig, Chunker, chunk_config, text_window
from searchkit.ingest.writer import IndexWriter
from searchkit.query.searcher import verify_index
from tests.conftest import write_jsonl

FILLER = (
    "The committee reviewed the quarterly budget and discussed routine administrative "
    "matters, staffing levels and the schedule of the next meeting in some detail."
)
TAILS = {
    "penguins": "Emperor penguins huddle together through the Antarctic winter to keep warm.",
    "volcano": "The volcano erupted at night and lava flowed down into the fishing village.",
    "violin": "She restored an old violin, carving a new bridge from seasoned maple wood.",
}
SHORT = {
    "cats": "Cats sleep for most of the day and hunt at dusk.",
    "bread": "Sourdough bread rises because wild yeast ferments the dough.",
    "tides": "The moon's gravity pulls the oceans and causes high and low tides.",
    "bees": "Honey bees dance to tell each other where the flowers are.",
    "rust": "Iron rusts when it reacts with oxygen and water.",
}
TOKENS, OVERLAP = 64, 16
QUERY = "penguins keeping warm in the antarctic winter"


def records() -> list[dict]:
    long = [
        {"_id": name, "title": f"Minutes {n}", "text": " ".join([FILLER] * 20) + " " + tail}
        for n, (name, tail) in enumerate(TAILS.items())
    ]
    short = [{"_id": name, "title": name.title(), "text": text} for name, text in SHORT.items()]
    return [{**r, "year": 2000 + n} for n, r in enumerate(long + short)]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder()


def build(tmp: Path, chunk: bool = True, **options) -> Path:
    corpus = write_jsonl(tmp / "long.jsonl", records())
    return build_index(
        corpus, tmp / "index", chunk=chunk, chunk_tokens=TOKENS, chunk_overlap=OVERLAP,
        lexical="bm25", progress=False, **options,
    ).path  # fmt: skip


@pytest.fixture(scope="module")
def chunked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("chunked"), backend="exact")


def test_passages_overlap_and_cover_the_document(encoder):
    tokenizer = encoder.model.tokenizer
    doc = Document("d", records()[0]["text"], "Minutes")
    texts, spans = Chunker(tokenizer, ChunkConfig(TOKENS, OVERLAP)).split([doc])
    full = doc.passage()
    assert spans.chunked == 1 and spans.truncated == 0 and len(texts) > 3
    assert spans.start[0] == 0 and spans.end[-1] == len(full)
    for n, text in enumerate(texts):
        assert text == full[spans.start[n] : spans.end[n]]
        assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= TOKENS
    for n in range(1, len(texts)):  # consecutive passages share about OVERLAP tokens
        shared = full[spans.start[n] : spans.end[n - 1]]
        count = len(tokenizer(shared, add_special_tokens=False)["input_ids"])
        assert OVERLAP <= count <= OVERLAP + 8
    short, _ = Chunker(tokenizer, ChunkConfig(TOKENS, OVERLAP)).split([Document("s", "Hi.")])
    assert short == ["Hi."]


def test_settings_are_checked(encoder):
    window = text_window(encoder.model)
    assert window == 254 and chunk_config(window).tokens == 254
    with pytest.raises(InvalidParameter, match="chunk_tokens=300 .* at most 254") as err:
        chunk_config(window, 300)
    assert err.value.param == "chunk_tokens"
    with pytest.raises(InvalidParameter, match=r"overlap=40 .* chunk_tokens=64 \(32\)") as err:
        chunk_config(window, 64, 40)
    assert err.value.param == "chunk_overlap"


def test_a_query_matching_the_tail_finds_the_passage(chunked):
    s = Searcher.open(chunked)
    m = s.manifest
    assert m.format_version == 4
    assert m.chunking.to_dict() == {"tokens": TOKENS, "overlap": OVERLAP, "enabled": True}
    counts = m.passage_counts()
    assert counts["chunked"] == 3 and counts["truncated"] == 0 and counts["passages"] > 3 * 6
    for mode in ("dense", "hybrid"):
        top = s.search(QUERY, k=3, rerank=False, mode=mode)[0]
        assert top.id == "penguins" and top.passage is not None and top.passage.index > 0
        assert TAILS["penguins"] in top.passage.text
        full = Document(top.id, top.text, top.title).passage()
        assert full[top.passage.start : top.passage.end] == top.passage.text
        assert full.endswith(top.passage.text)
    short = s.search("why do cats sleep so much", k=1, rerank=False, mode="dense")[0]
    assert short.id == "cats" and short.passage is None  # one passage: the whole document


def test_k_distinct_documents(chunked):
    s = Searcher.open(chunked)
    for k in (1, 4, 8, 20):
        ids = [h.id for h in s.search("committee budget meeting", k=k, rerank=False, mode="dense")]
        assert len(ids) == len(set(ids)) == min(k, 8)


def test_filters_apply_to_documents(chunked):
    s = Searcher.open(chunked)
    hits = s.search(QUERY, k=8, rerank=False, mode="dense", where="year != 2000")
    ids = [h.id for h in hits]
    assert "penguins" not in ids and len(ids) == len(set(ids)) == 7
    only = s.search(QUERY, k=5, rerank=False, mode="dense", where={"year": 2002})
    assert [h.id for h in only] == ["violin"] and only[0].passage is not None


def test_rerank_reads_the_best_passage(chunked, reranker_path, tmp_path):
    s = Searcher.open(chunked, reranker=str(reranker_path))
    hits = s.search(QUERY, k=3, candidates=8, mode="dense")
    assert hits.reranked and hits.truncated == 0  # passages fit the reranker
    assert hits[0].id == "penguins" and TAILS["penguins"] in hits[0].passage.text
    plain = Searcher.open(build(tmp_path, chunk=False), reranker=str(reranker_path))
    cut = plain.search(QUERY, k=3, candidates=8, mode="dense")
    assert cut.truncated == 3  # the three long documents, counted


def test_no_chunk_counts_truncated_documents(tmp_path):
    path = build(tmp_path, chunk=False, backend="faiss", kind="hnsw")
    m = Searcher.open(path).manifest
    assert m.chunking.to_dict() == {"tokens": TOKENS, "overlap": OVERLAP, "enabled": False}
    assert m.passage_counts() == {"passages": 8, "chunked": 0, "truncated": 3}
    hits = Searcher.open(path).search(QUERY, k=8, rerank=False, mode="dense")
    assert len(hits) == 8 and all(h.passage is None for h in hits)
    info = CliRunner().invoke(app, ["info", str(path)])
    assert info.exit_code == 0 and "3 documents truncated" in info.output
    with IndexWriter.open(path) as w:
        report = w.upsert([Document("long4", " ".join([FILLER] * 20), "More minutes")])
    assert (report.added, report.truncated, report.chunked) == (1, 1, 0)


@pytest.mark.parametrize(("backend", "kind"), [("hnswlib", "hnsw"), ("faiss", "sq8")])
def test_delete_upsert_compact_remove_every_passage(tmp_path, backend, kind):
    path = build(tmp_path, backend=backend, kind=kind)
    with IndexWriter.open(path) as w:
        w.delete(["penguins"])
    s = Searcher.open(path)
    ids = [h.id for h in s.search(QUERY, k=8, rerank=False, mode="dense")]
    assert "penguins" not in ids and len(ids) == len(set(ids)) == 7
    with IndexWriter.open(path) as w:
        report = w.upsert([Document("volcano", "Volcanoes are mountains.", "Volcano", {})])
        assert report.replaced == 1 and report.passages == 1
        added = w.upsert([Document("penguins", " ".join([FILLER] * 20) + " " + TAILS["penguins"])])
        assert added.added == 1 and added.chunked == 1 and added.passages > 6
    s.refresh()
    lava = s.search("lava flowed into the fishing village", k=8, rerank=False, mode="dense")
    volcano = next(h for h in lava if h.id == "volcano")
    assert volcano.passage is None and volcano.text == "Volcanoes are mountains."
    assert len(lava) == len({h.id for h in lava}) == 8
    with IndexWriter.open(path) as w:
        w.compact()
    verify_index(path)
    again = Searcher.open(path)  # reopened from disk
    top = again.search(QUERY, k=2, rerank=False, mode="dense")[0]
    assert top.id == "penguins" and TAILS["penguins"] in top.passage.text
    assert again.manifest.passage_counts()["chunked"] == 2  # penguins and violin


def test_cli_json_reports_the_passage(chunked):
    done = CliRunner().invoke(
        app, ["query", QUERY, "-i", str(chunked), "--no-rerank", "--mode", "dense", "--json"]
    )
    assert done.exit_code == 0, done.output
    hit = json.loads(done.output)["hits"][0]
    assert hit["id"] == "penguins" and TAILS["penguins"] in hit["passage"]["text"]
    assert set(hit["passage"]) == {"index", "start", "end", "text"}


def test_a_format_3_index_opens_and_takes_upserts(tmp_path):
    path = build(tmp_path, chunk=False)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / manifest["files"].pop("s000001/passages")["path"]).unlink()
    manifest["segments"] = [{"name": "s000001", "rows": 8, "deleted": 0}]
    manifest["format_version"] = 3
    del manifest["chunking"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    s = Searcher.open(path)
    assert s.manifest.chunking is None and s.manifest.passage_counts()["passages"] == 8
    assert len(s.search(QUERY, k=8, rerank=False, mode="dense")) == 8
    with IndexWriter.open(path) as w:  # no chunking recorded: none, but cuts are counted
        report = w.upsert([Document("long4", " ".join([FILLER] * 20), "More minutes")])
        assert (report.truncated, report.chunked) == (1, 0)
        w.compact()
    verify_index(path)
    assert Searcher.open(path).manifest.passage_counts()["passages"] == 9
