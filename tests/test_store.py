from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow.parquet as pq
import pytest

from searchkit.errors import CorruptIndex
from searchkit.index.docstore import ROW_GROUP_ROWS, DocStore, DocStoreWriter
from searchkit.models import Document


def test_take_returns_rows_in_asked_order_across_row_groups(tmp_path):
    path = tmp_path / "docs.parquet"
    writer = DocStoreWriter(path)
    n = ROW_GROUP_ROWS * 3 + 17
    docs = [
        Document(f"d{i}", f"text {i} ü", f"title {i}", {"i": i, "tag": ["x"]}) for i in range(n)
    ]
    writer.write(docs[:500])
    writer.write(docs[500:])
    writer.close()
    store = DocStore(path)
    assert len(store) == n
    rows = [n - 1, 0, 300, 300, ROW_GROUP_ROWS, 5]
    assert store.take(rows) == [docs[r] for r in rows]
    assert store.take([]) == []


def test_docstore_is_plain_parquet(tmp_path):
    path = tmp_path / "docs.parquet"
    writer = DocStoreWriter(path)
    writer.write([Document("a", "alpha", "A", {"year": 2020})])
    writer.close()
    table = pq.read_table(path)
    assert table.column_names == ["row", "id", "title", "text", "metadata"]
    assert table.to_pylist() == [
        {"row": 0, "id": "a", "title": "A", "text": "alpha", "metadata": '{"year": 2020}'}
    ]


def test_take_from_many_threads_and_after_the_file_is_removed(tmp_path):
    """One docstore serves every reader thread of a Searcher, and outlives a commit's cleanup."""
    path = tmp_path / "docs.parquet"
    writer = DocStoreWriter(path)
    docs = [Document(f"d{i}", f"text {i} " * 20, f"t{i}") for i in range(ROW_GROUP_ROWS * 20)]
    writer.write(docs)
    writer.close()
    store = DocStore(path)

    def hammer(seed: int) -> int:
        rng = np.random.default_rng(seed)
        for _ in range(300):
            rows = rng.choice(len(docs), size=10, replace=False)
            assert store.take(rows) == [docs[r] for r in rows]
        return seed

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(hammer, range(4))) == [0, 1, 2, 3]
    path.unlink()
    assert store.take([7, 5000]) == [docs[7], docs[5000]]


def _write_with_rows(tmp_path, docs):
    writer = DocStoreWriter(tmp_path / "docs.parquet", tmp_path / "docs.rows")
    writer.write(docs[:300])
    writer.write(docs[300:])
    writer.close()
    return DocStore(tmp_path / "docs.parquet", tmp_path / "docs.rows")


def test_row_file_answers_as_the_parquet_file(tmp_path):
    """docs.rows holds the same documents: take through it equals take through Parquet."""
    docs = [
        Document(f"d{i}", f'正文 {i} ü "q" \\ {"x" * (i % 50)}', f"标题 {i}", {"i": i, "t": [1]})
        for i in range(ROW_GROUP_ROWS * 2 + 9)
    ]
    store = _write_with_rows(tmp_path, docs)
    parquet_only = DocStore(tmp_path / "docs.parquet")
    rows = [len(docs) - 1, 0, 300, 300, ROW_GROUP_ROWS, 5]
    assert store.take(rows) == parquet_only.take(rows) == [docs[r] for r in rows]
    assert store.take([]) == []
    with pytest.raises(IndexError, match="out of range"):
        store.take([len(docs)])
    (tmp_path / "docs.rows").unlink()  # mapped once: outlives a commit's cleanup
    assert store.take([7]) == [docs[7]]


@pytest.mark.parametrize("damage", ["truncate", "magic", "rows"])
def test_damaged_row_file_is_refused(tmp_path, damage):
    docs = [Document(f"d{i}", f"text {i}") for i in range(20)]
    _write_with_rows(tmp_path, docs)
    path = tmp_path / "docs.rows"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[:-20])
    elif damage == "magic":
        path.write_bytes(b"X" + data[1:])
    else:  # a row file of another docstore (fewer rows)
        DocStoreWriter(tmp_path / "other.parquet", path).close()
    with pytest.raises(CorruptIndex, match="docs.rows"):
        DocStore(tmp_path / "docs.parquet", path)


def test_index_without_row_files_still_answers(built_index, tmp_path):
    """An index written before docs.rows existed (no <segment>/rows in its manifest) reads its
    hits from Parquet: the same answers."""
    from searchkit import Searcher

    old = tmp_path / "old"
    shutil.copytree(built_index, old)
    manifest = json.loads((old / "manifest.json").read_text())
    rows = [role for role in manifest["files"] if role.endswith("/rows")]
    assert rows, "a new index has a row file per segment"
    for role in rows:
        (old / manifest["files"].pop(role)["path"]).unlink()
    (old / "manifest.json").write_text(json.dumps(manifest))
    new_s, old_s = Searcher.open(built_index), Searcher.open(old)
    try:
        for query in ["photosynthesis in plants", "neural networks"]:
            want = new_s.search(query, 3, rerank=False)
            got = old_s.search(query, 3, rerank=False)
            assert [(h.id, h.text, h.metadata) for h in got] == [
                (h.id, h.text, h.metadata) for h in want
            ]
    finally:
        new_s.close()
        old_s.close()
