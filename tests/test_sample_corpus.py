from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from searchkit import CorpusReader

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_sample_corpus.py"


def test_sample_corpus_is_valid_beir(tmp_path):
    out = tmp_path / "stdlib"
    subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "--limit", "300", "--queries", "20"], check=True
    )
    docs = {d.id: d for d in CorpusReader(out / "corpus.jsonl")}
    assert len(docs) == 300
    assert all(
        d.title == d.id and d.metadata["kind"] in {"function", "class", "method"}
        for d in docs.values()
    )
    qrels = (out / "qrels" / "test.tsv").read_text().splitlines()
    assert qrels[0] == "query-id\tcorpus-id\tscore" and len(qrels) == 21
    queries = {q.id: q.text for q in CorpusReader(out / "queries.jsonl")}
    for line in qrels[1:]:
        qid, doc_id, score = line.split("\t")
        assert score == "1" and docs[doc_id].text.startswith(queries[qid][:20])
