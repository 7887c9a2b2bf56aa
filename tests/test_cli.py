"""The CLI through real subprocesses: index, query (table and --json), info, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tiny_records, write_jsonl

pytestmark = pytest.mark.slow


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "searchkit", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, reranker_path: Path) -> Path:
    """A working folder with one index under ./indexes, built by the CLI."""
    root = tmp_path_factory.mktemp("cli")
    write_jsonl(root / "tiny.jsonl", tiny_records())
    done = run(
        "index", "tiny.jsonl", "--reranker", str(reranker_path), "--backend", "hnswlib", cwd=root
    )
    assert done.returncode == 0, done.stderr
    assert "Indexed 12 documents into indexes/tiny" in done.stdout
    assert "docs/s" in done.stdout
    return root


def test_query_json_uses_the_only_index_and_says_so(project):
    done = run("query", "what makes sourdough rise", "--json", "-k", "5", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "using index indexes/tiny (the only index under ./indexes)" in done.stderr
    out = json.loads(done.stdout)
    assert out["reranked"] is True and out["reranker"].endswith("reranker")
    assert len(out["hits"]) == 5 and out["hits"][0]["id"] == "sourdough"
    assert set(out["hits"][0]) == {
        "id", "score", "rank", "title", "text", "metadata", "retrieval_score", "retrieval_rank",
        "passage",
    }  # fmt: skip
    assert out["hits"][0]["passage"] is None  # a short document: one passage


def test_query_table_and_no_rerank(project):
    done = run("query", "what causes high and low tide", "--no-rerank", "-k", "2", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "retrieval order (not reranked)" in done.stdout
    assert "Ocean tides" in done.stdout


def test_env_var_and_most_recent_index_are_used(project, tmp_path):
    second = write_jsonl(project / "other.jsonl", tiny_records()[:2])
    assert run("index", str(second), "--no-progress", cwd=project).returncode == 0
    done = run("info", "--json", cwd=project)
    assert json.loads(done.stdout)["index"] == "indexes/other"  # the newest
    done = run(
        "query",
        "vaccines",
        "--no-rerank",
        "--json",
        cwd=tmp_path,
        env={"SEARCHKIT_INDEX": str(project / "indexes/tiny")},
    )
    assert "from $SEARCHKIT_INDEX" in done.stderr
    assert json.loads(done.stdout)["hits"][0]["id"] == "vaccine"


def test_info(project):
    done = run("info", "indexes/tiny", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "hnswlib hnsw (ef_construction=200, ef_search=64, m=32)" in done.stdout
    assert "documents" in done.stdout and "12" in done.stdout


def test_errors_exit_1_with_file_and_line(project):
    write_jsonl(project / "bad.jsonl", [{"_id": "a", "text": "ok"}, '{"_id": "b", "text": '])
    done = run("index", "bad.jsonl", cwd=project)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("bad.jsonl:2: invalid JSON: Expecting value at column 22")
    assert not (project / "indexes" / "bad").exists()
    done = run("index", "bad.jsonl", "--skip-invalid", "--no-progress", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "Skipped 1 invalid lines: line 2 (invalid JSON" in done.stdout
    done = run("query", "x", "--index", "nowhere", cwd=project)
    assert done.returncode == 1 and "no searchkit index at nowhere" in done.stderr
    done = run("index", "tiny.jsonl", cwd=project)
    assert done.returncode == 1 and "already holds an index; pass --force" in done.stderr


def test_add_delete_compact_verify_and_where(project):
    new = [
        {"_id": "kiwi", "title": "Kiwi", "text": "Kiwi fruit is rich in vitamin C.", "year": 2024},
        {**tiny_records()[0], "text": "Vaccines were first made against smallpox."},
    ]
    write_jsonl(project / "new.jsonl", new)
    done = run("add", "indexes/tiny", "new.jsonl", "--no-progress", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "version 2, 13 live documents, 1 deleted awaiting compact; 1 added, 1 replaced" in (
        done.stdout
    )
    (project / "ids.txt").write_text("chess\nnope\n")
    done = run("delete", "indexes/tiny", "--ids", "bitcoin", "--ids-file", "ids.txt", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "11 live documents, 3 deleted" in done.stdout and "Not in the index" in done.stdout
    done = run("info", "indexes/tiny", cwd=project)
    assert "11 live, 3 deleted" in done.stdout and "s000002 (2 rows, 0 deleted)" in done.stdout
    where = ["--no-rerank", "--json", "-k", "12", "--where", "year >= 2020 or topic = 'tides'"]
    done = run("query", "fruit", "-i", "indexes/tiny", *where, cwd=project)
    assert done.returncode == 0, done.stderr
    assert sorted(h["id"] for h in json.loads(done.stdout)["hits"]) == ["kiwi", "tides"]
    done = run("query", "fruit", "-i", "indexes/tiny", "--where", "year >>= 3", cwd=project)
    assert done.returncode == 1 and "error: invalid filter" in done.stderr
    done = run("compact", "indexes/tiny", "--json", cwd=project)
    assert json.loads(done.stdout)["tombstones"] == 0, done.stderr
    done = run("verify", "indexes/tiny", cwd=project)
    assert done.returncode == 0 and "OK, version 4" in done.stdout
    segment = next((project / "indexes/tiny/segments").iterdir())
    docs = segment / "docs.parquet"
    data = bytearray(docs.read_bytes())
    data[200] ^= 0xFF
    docs.write_bytes(bytes(data))
    done = run("verify", "indexes/tiny", cwd=project)
    assert done.returncode == 1 and "docs file checksum mismatch" in done.stderr
    data[200] ^= 0xFF
    docs.write_bytes(bytes(data))


def test_library_errors_show_the_commands_flags(project, tmp_path):
    """The library names Python parameters (chunk_tokens=4, eval_split=); the CLI shows the
    flags of the command that ran."""
    done = run("index", "tiny.jsonl", "-o", str(tmp_path / "few"), "--chunk-tokens", "4",
               "--no-progress", cwd=project)  # fmt: skip
    assert done.returncode == 1 and not (tmp_path / "few").exists()
    assert done.stderr.strip().endswith("error: --chunk-tokens 4 is too few: at least 8")
    done = run("eval", "--no-progress", cwd=project)
    assert done.returncode == 1
    assert "error: give --dataset, or INDEX with --queries and --qrels" in done.stderr
    write_jsonl(tmp_path / "pairs.jsonl", [{"query": "q", "positive": "p"}])
    done = run("train-embedder", "indexes/tiny", "-o", str(tmp_path / "m"), "--pairs",
               str(tmp_path / "pairs.jsonl"), "--eval-split", "test", cwd=project)  # fmt: skip
    assert done.returncode == 1
    assert "error: --eval-split needs --dataset (use --heldout otherwise)" in done.stderr
    done = run("query", "x", "-i", "indexes/tiny", "-c", "0", cwd=project)
    assert done.returncode == 1
    assert "error: candidates must be at least 1, got 0 (option --candidates)" in done.stderr


def test_parameters_are_spelled_as_flags():
    from typer.main import get_command

    from searchkit.cli import app
    from searchkit.cli.errors import as_flags

    commands = get_command(app).commands
    index, query, evaluate = (commands[n].params for n in ("index", "query", "eval"))
    assert as_flags("pass force=True to replace it.", None, index) == "pass --force to replace it."
    assert as_flags("pass chunk=False, or build without address=", "chunk", index) == (
        "pass --no-chunk, or build without --ray"
    )
    message = 'search it with mode="dense", or rebuild it with lexical="bm25"'
    assert as_flags(message, "mode", query) == (  # query has no --lexical
        'search it with --mode dense, or rebuild it with lexical="bm25"'
    )
    assert as_flags(message, "mode", evaluate).endswith("rebuild it with --lexical bm25")
    assert as_flags("give the index= to evaluate on", "index", evaluate) == (
        "give the INDEX to evaluate on"
    )
    assert as_flags("k must be at least 1, got 0", "k", query) == (
        "k must be at least 1, got 0 (option --k)"
    )
    assert as_flags("where='a b' and 'k=5' are quoted", None, query) == (
        "--where 'a b' and 'k=5' are quoted"  # a quoted value with spaces keeps its quotes
    )
    assert as_flags("nothing to spell: chunk_tokens", "chunk_tokens", query) == (
        "nothing to spell: chunk_tokens"  # not a parameter of this command
    )


def test_read_ids(tmp_path):
    from searchkit.cli.io import read_ids
    from searchkit.errors import InvalidParameter

    f = tmp_path / "ids.txt"
    f.write_text("x\n\n y \n")
    assert read_ids("a, b,,", f) == ["a", "b", "x", "y"]
    with pytest.raises(InvalidParameter, match="no ids given"):
        read_ids(" , ", None)


def test_help_does_not_import_torch():
    code = "import sys, searchkit.cli; print('torch' in sys.modules, 'faiss' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_query_rerank_cost_options(project):
    tiny = ("--index", "indexes/tiny")  # other tests build more indexes in the project
    done = run("query", "vaccines", *tiny, "--rerank-margin", "0", "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["early_exit"] and not out["reranked"] and out["candidates"] == 0
    capped = run("query", "vaccines", *tiny, "--rerank-max-tokens", "48", "--json", cwd=project)
    assert capped.returncode == 0 and json.loads(capped.stdout)["reranked"], capped.stderr
    bad = run("query", "vaccines", *tiny, "--rerank-max-tokens", "8", cwd=project)
    assert bad.returncode == 1 and "max_tokens must be at least 32" in bad.stderr
