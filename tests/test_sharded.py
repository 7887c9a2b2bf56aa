"""Living sharded indexes without Ray: ids routed to their hash shard by ``IndexWriter.open``
on a parent folder (a ``ShardedWriter``), results equal to one plain index over the same
documents (exact backend), one atomic switch per change, leftovers of failed changes removed,
block-placed indexes refused for writes. The Ray-built ones are in test_ray.py, SIGKILL at
every step in test_crash.py."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from searchkit import Document, Searcher, build_index
from searchkit.cli import app
from searchkit.errors import CorruptIndex, IncompatibleIndex, IndexExists, IndexLocked
from searchkit.index.manifest import Manifest
from searchkit.index.sharded import Routing, ShardedManifest
from searchkit.inference.encoder import Encoder
from searchkit.inference.resolve import DEFAULT_ENCODER
from searchkit.ingest.sharded import ShardedWriter, create_sharded
from searchkit.ingest.writer import IndexWriter
from searchkit.query.searcher import verify_index
from tests.conftest import QUERIES, tiny_records, write_jsonl

KIWI = Document("kiwi", "Kiwi fruit is rich in vitamin C and grows on vines.", "Kiwi", {"y": 1})
BITCOIN = Document("bitcoin", "Bitcoin mining uses a lot of electricity.", "Bitcoin", {"y": 2})
QUERY_LIST = [*QUERIES, "kiwi vitamin fruit", "electricity used by bitcoin mining"]


def shard_ids(index: Path) -> list[set[str]]:
    """The live ids of each shard, read from the shard folders the parent pins."""
    m = ShardedManifest.read(index)
    return [set(Searcher.open(index / s.path).ids()) for s in m.shards]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    """One bi-encoder for every writer and searcher here (loading it is the slow part)."""
    e = Encoder(DEFAULT_ENCODER)
    e.model  # noqa: B018
    return e


def writer(index: Path, encoder: Encoder) -> IndexWriter | ShardedWriter:
    w = IndexWriter.open(index)
    w.encoder = encoder
    return w


def results(index: Path, encoder: Encoder) -> list[list[tuple[str, float]]]:
    s = Searcher.open(index)
    s.encoder = encoder
    hits = s.search_batch(QUERY_LIST, k=8, rerank=False, mode="dense")
    return [[(h.id, round(h.score, 5)) for h in q] for q in hits]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> tuple[Path, Path]:
    """A 3-shard index and a plain one, both of the tiny corpus (exact search, no BM25)."""
    root = tmp_path_factory.mktemp("built")
    corpus = write_jsonl(root / "tiny.jsonl", tiny_records())
    sharded = create_sharded(root / "sharded", 3, lexical="none")
    with writer(sharded, encoder) as w:
        assert isinstance(w, ShardedWriter)
        report = w.add_corpus(corpus)
    assert (report.added, report.version, report.documents) == (12, 2, 12)
    plain = build_index(corpus, root / "plain", lexical="none", progress=False).path
    return sharded, plain


@pytest.fixture
def pair(built: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """Copies of ``built`` for one test to change."""
    return tuple(Path(shutil.copytree(p, tmp_path / p.name)) for p in built)  # type: ignore[return-value]


def test_routing_is_a_stable_hash_of_the_utf8_id():
    r = Routing(5)
    for doc_id in ["a17", "文档-3", "x" * 300, "é"]:
        digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
        assert r.shard_of(doc_id) == int.from_bytes(digest, "big") % 5
    # the placement of existing indexes depends on these: they may never change
    assert [Routing(8).shard_of(i) for i in ["a", "b", "doc-1", "文档"]] == [7, 5, 1, 4]
    spread = np.bincount([r.shard_of(f"d{i}") for i in range(5000)], minlength=5)
    assert spread.min() > 900  # about 1000 each


def test_each_id_lives_in_its_hash_shard_and_results_equal_a_plain_index(pair, encoder):
    sharded, plain = pair
    m = ShardedManifest.read(sharded)
    assert m.routing == Routing(3) and m.documents == 12
    for number, ids in enumerate(shard_ids(sharded)):
        assert ids and all(m.routing.shard_of(i) == number for i in ids)
    assert set().union(*shard_ids(sharded)) == {r["_id"] for r in tiny_records()}
    assert results(sharded, encoder) == results(plain, encoder)
    verify_index(sharded)


def test_upserts_and_deletes_are_routed_and_match_a_plain_index(pair, encoder):
    sharded, plain = pair
    routing = ShardedManifest.read(sharded).routing
    gone = ["chess", "vaccine", "tides"]
    for index in (sharded, plain):
        with writer(index, encoder) as w:
            report = w.upsert([KIWI, BITCOIN])
            assert (report.added, report.replaced) == (1, 1)
            report = w.delete([*gone, "nope"])
            assert report.deleted == 3 and report.missing == ("nope",)
            assert report.documents == 10
    ids = shard_ids(sharded)
    assert "kiwi" in ids[routing.shard_of("kiwi")]
    assert not any(i in shard for shard in ids for i in gone)
    assert sum(len(s) for s in ids) == 10
    assert results(sharded, encoder) == results(plain, encoder)
    reader = Searcher.open(sharded)
    reader.encoder = encoder
    hit = reader.search("bitcoin electricity", k=1, rerank=False, mode="dense")[0]
    assert hit.text == BITCOIN.text
    with writer(sharded, encoder) as w:
        report = w.compact()
    assert report.tombstones == 0 and report.documents == 10
    m = verify_index(sharded)
    assert m.deleted == 0 and all(e.deleted == 0 for e in m.segments)
    assert results(sharded, encoder) == results(plain, encoder)


def test_a_change_pins_new_shard_folders_and_untouched_shards_stay(pair, encoder):
    sharded, _ = pair
    before = ShardedManifest.read(sharded)
    target = before.routing.shard_of("kiwi")
    with writer(sharded, encoder) as w:
        report = w.upsert([KIWI])
    after = ShardedManifest.read(sharded)
    assert report.version == after.version == before.version + 1
    for number, (old, new) in enumerate(zip(before.shards, after.shards, strict=True)):
        if number == target:
            assert new.path == f"shards/v{after.version:06d}/{new.name}" and new.path != old.path
            assert new.version == old.version + 1 == Manifest.read(sharded / new.path).version
            assert not (sharded / old.path).exists()  # collected after the switch
        else:
            assert new == old
    with writer(sharded, encoder) as w:  # nothing changes: no commit
        assert w.upsert([KIWI]).version == after.version
    assert ShardedManifest.read(sharded) == after


def test_a_reader_sees_the_version_it_opened_until_refresh(pair, encoder):
    sharded, _ = pair
    reader = Searcher.open(sharded)
    reader.encoder = encoder
    with writer(sharded, encoder) as w:
        w.upsert([KIWI])
        w.delete(["chess"])
    assert "kiwi" not in reader.ids() and "chess" in reader.ids()
    assert reader.search("kiwi vitamin fruit", k=1, rerank=False, mode="dense")[0].id != "kiwi"
    assert reader.refresh()
    assert "kiwi" in reader.ids() and "chess" not in reader.ids()


def test_a_failing_change_leaves_every_shard_as_it_was(pair, monkeypatch, encoder):
    """The second shard's commit fails after the first shard committed: the parent still
    pins the old folders, and the next writer removes the new ones."""
    sharded, _ = pair
    before = results(sharded, encoder), ShardedManifest.read(sharded)
    routing = before[1].routing
    docs = [Document(f"new{i}", f"Note {i} about the history of tea.", "", {}) for i in range(9)]
    assert len({routing.shard_of(d.id) for d in docs}) == 3
    real = IndexWriter.upsert
    calls = []

    def flaky(self: IndexWriter, batch: list[Document]):
        calls.append(self.path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(self, batch)

    monkeypatch.setattr(IndexWriter, "upsert", flaky)
    with writer(sharded, encoder) as w, pytest.raises(OSError, match="No space"):
        w.upsert(docs)
    assert (results(sharded, encoder), ShardedManifest.read(sharded)) == before
    monkeypatch.setattr(IndexWriter, "upsert", real)
    (sharded / "shards" / "v000009" / "shard-0001").mkdir(parents=True)  # a killed change's
    with writer(sharded, encoder) as w:
        assert w.upsert(docs).added == 9
    m = ShardedManifest.read(sharded)
    named = {s.path for s in m.shards}
    found = {p.relative_to(sharded).as_posix() for p in (sharded / "shards").glob("*/*")}
    assert found == named  # no folder, no lock file the parent does not name
    assert m.documents == 21


def test_one_writer_at_a_time(pair):
    sharded, _ = pair
    with IndexWriter.open(sharded), pytest.raises(IndexLocked):
        IndexWriter.open(sharded)


def test_a_block_placed_index_is_searched_but_not_changed(pair, encoder):
    """Indexes built before routing by id have ``routing`` null in the parent manifest."""
    sharded, _ = pair
    path = sharded / "manifest.json"
    data = json.loads(path.read_text())
    del data["routing"]
    path.write_text(json.dumps(data))
    assert ShardedManifest.read(sharded).routing is None
    reader = Searcher.open(sharded)
    reader.encoder = encoder
    assert reader.search("black hole", k=1, rerank=False, mode="dense")[0].id == "blackhole"
    with pytest.raises(IncompatibleIndex, match="placed by corpus blocks.*rebuild"):
        IndexWriter.open(sharded)


def test_a_shard_not_at_its_pinned_version_is_corrupt(pair, encoder):
    sharded, _ = pair
    m = ShardedManifest.read(sharded)
    copy = sharded.parent / "copy"
    shutil.copytree(sharded, copy)
    with writer(copy / m.shards[0].path, encoder) as w:  # behind the parent's back
        w.upsert([Document("rogue", "A document written into one shard directly.", "", {})])
    with pytest.raises(CorruptIndex, match="pins version 2"):
        Searcher.open(copy)


@pytest.mark.slow
def test_cli_add_delete_compact_verify_on_a_sharded_index(pair, tmp_path):
    sharded, plain = pair
    record = {"_id": "kiwi", "title": "Kiwi", "text": KIWI.text}
    more = write_jsonl(tmp_path / "more.jsonl", [record])
    runner = CliRunner()
    for args in (
        ["add", str(sharded), str(more), "--no-progress", "--json"],
        ["delete", str(sharded), "--ids", "chess,nope", "--json"],
        ["compact", str(sharded), "--json"],
        ["verify", str(sharded), "--json"],
    ):
        done = runner.invoke(app, args)
        assert done.exit_code == 0, (args, done.output)
    m = ShardedManifest.read(sharded)
    assert (m.version, m.documents, m.deleted) == (5, 12, 0)
    ids = shard_ids(sharded)
    assert "kiwi" in ids[m.routing.shard_of("kiwi")] and not any("chess" in s for s in ids)


def test_create_sharded_refuses_an_existing_index(pair):
    sharded, _ = pair
    with pytest.raises(IndexExists, match="already holds an index"):
        create_sharded(sharded, 2)
