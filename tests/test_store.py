from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow.parquet as pq

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
