"""Chinese in and out: a GB18030 corpus indexed with --encoding, `searchkit query --json` writing
UTF-8 Chinese whatever the locale, the query table lining up wide characters, and the HTTP
server answering Chinese JSON; `searchkit add` and `eval` reading other encodings too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import httpx
import pytest

from searchkit import Searcher
from searchkit.inference.catalog import default_encoder
from tests.conftest import REPO
from tests.test_server import Server

pytestmark = pytest.mark.slow

# (id, title, text): Simplified Chinese mixed with English, and two all-ASCII documents
ZH_DOCS = [
    ("phone", "iPhone 15 Pro 电池", "iPhone 15 Pro 的电池续航大约一整天，支持 USB-C 快充。"),
    ("charger", "USB-C 充电器 65W", "这款 65W 氮化镓充电器可以同时给笔记本和手机充电。"),
    ("tea", "龙井绿茶", "龙井是杭州出产的绿茶，用八十度左右的水冲泡最好。"),
    ("panda", "大熊猫", "大熊猫主要生活在四川的山区，每天要吃很多竹子。"),
    ("pip", "pip install 报错 SSL", "如果 pip install 出现 SSL 错误，先检查系统时间和代理设置。"),
    ("git", "Git branches", "git switch -c creates a new branch and switches to it."),
    ("dumpling", "饺子", "北方人过年常吃饺子，馅料有猪肉白菜和韭菜鸡蛋。"),
    ("subway", "北京地铁", "北京地铁一号线从苹果园开到环球度假区，全程大约一个小时。"),
    ("rice", "煮米饭", "煮米饭时水和米的比例大约是一点二比一。"),
    ("python", "Python lists", "A Python list is a mutable sequence; append adds an item."),
    ("moon", "中秋节", "中秋节人们赏月，吃月饼，和家人团圆。"),
    ("marathon", "马拉松训练", "准备马拉松要循序渐进地增加每周跑量，并注意休息。"),
]
BY_ID = {i: (t, x) for i, t, x in ZH_DOCS}
MODEL = default_encoder("en")  # all-MiniLM-L6-v2: small and offline; enough for output


def jsonl_bytes(records: list[dict], encoding: str) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode(encoding)


def searchkit(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess:
    """The CLI in a subprocess; stdout as bytes, to check their encoding."""
    return subprocess.run(
        [sys.executable, "-m", "searchkit", *args], cwd=cwd, capture_output=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )  # fmt: skip


@pytest.fixture(scope="module")
def zh_index(tmp_path_factory: pytest.TempPathFactory, reranker_path: Path) -> Path:
    """An index of ZH_DOCS, built by `searchkit index --encoding gb18030` from a GB18030 file."""
    root = tmp_path_factory.mktemp("zh")
    corpus = root / "zh.jsonl"
    records = [{"_id": i, "title": t, "text": x} for i, t, x in ZH_DOCS]
    corpus.write_bytes(jsonl_bytes(records, "gb18030"))
    done = searchkit(
        "index", str(corpus), "-o", str(root / "index"), "--encoding", "gb18030",
        "--model", MODEL, "--reranker", str(reranker_path), "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    return root / "index"


# a GBK console, and one that cannot show Chinese at all (print would write GBK, or fail)
@pytest.mark.parametrize("io_encoding", ["gb18030", "ascii"])
def test_query_json_is_utf8_chinese_whatever_the_locale(zh_index, io_encoding):
    env = {"PYTHONIOENCODING": io_encoding}
    done = searchkit("query", "pip install 报错 SSL", "-i", str(zh_index), "--json", env=env)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    out = done.stdout.decode("utf-8")  # strict: the bytes are UTF-8
    assert "\\u" not in out and "报错" in out  # Chinese as text, not \u escapes
    got = json.loads(out)
    assert got["query"] == "pip install 报错 SSL" and got["hits"][0]["id"] == "pip"
    for hit in got["hits"]:
        assert (hit["title"], hit["text"]) == BY_ID[hit["id"]]


def display_columns(line: str, char: str) -> list[int]:
    """The terminal columns where ``char`` appears in ``line`` (wide characters take two)."""
    columns, at = [], 0
    for c in line:
        if c == char:
            columns.append(at)
        at += 2 if unicodedata.east_asian_width(c) in "WF" else 1
    return columns


def test_query_table_lines_up_wide_characters(zh_index):
    done = searchkit("query", "手机 充电", "-i", str(zh_index), "-k", "12", "--no-rerank")
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode("utf-8").splitlines()
    rows = [line for line in lines if line.startswith("│")]
    header = next(line for line in lines if line.startswith("┃"))
    wide = [r for r in rows if any(unicodedata.east_asian_width(c) in "WF" for c in r)]
    narrow = [r for r in rows if r.replace("│", "").isascii()]
    assert wide and narrow, "the table should have rows with and without Chinese"
    borders = display_columns(header, "┃")
    assert len(borders) == 5
    for row in rows:
        assert display_columns(row, "│") == borders, row
    shown = "\n".join(rows)
    assert "北京地铁" in shown and "Git branches" in shown


@pytest.fixture(scope="module")
def zh_server(tmp_path_factory: pytest.TempPathFactory, zh_index: Path):
    root = tmp_path_factory.mktemp("zh-serve")
    running = Server(Path(shutil.copytree(zh_index, root / "index")), root / "server.log")
    yield running
    running.stop()


def test_server_answers_chinese_json(zh_server):
    url = zh_server.url
    response = httpx.post(
        f"{url}/search", json={"query": "北京地铁一号线", "k": 3, "rerank": False}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    got = json.loads(response.content.decode("utf-8"))
    assert got["query"] == "北京地铁一号线" and got["hits"][0]["id"] == "subway"
    assert "北京地铁一号线从苹果园".encode() in response.content  # UTF-8, not \u escapes
    for hit in got["hits"]:
        assert (hit["title"], hit["text"]) == BY_ID[hit["id"]]
    doc = {
        "id": "quantum",
        "title": "量子计算",
        "text": "超导量子比特要在接近绝对零度的环境里工作。",
    }
    written = httpx.post(f"{url}/documents", json={"documents": [doc]}, timeout=120)
    assert written.status_code == 200, written.text
    found = httpx.post(f"{url}/search", json={"query": "超导量子比特", "k": 1, "rerank": False})
    hit = found.json()["hits"][0]
    assert (hit["id"], hit["title"], hit["text"]) == (doc["id"], doc["title"], doc["text"])


def test_add_reads_another_encoding(zh_index, tmp_path):
    index = Path(shutil.copytree(zh_index, tmp_path / "index"))
    big5 = tmp_path / "big5.jsonl"
    doc = {"_id": "taipei", "title": "夜市", "text": "臺北的夜市小吃很多。"}
    big5.write_bytes(jsonl_bytes([doc], "big5"))
    wrong = searchkit("add", str(index), str(big5), "--no-progress")
    assert wrong.returncode == 1
    assert b"big5.jsonl:1: not UTF-8 text (invalid start byte) (try --encoding big5)" in (
        wrong.stderr
    )
    done = searchkit("add", str(index), str(big5), "--encoding", "big5", "--no-progress")
    assert done.returncode == 0, done.stderr.decode()
    hit = Searcher.open(index).search(doc["text"], k=1, rerank=False)[0]
    assert (hit.id, hit.title, hit.text) == (doc["_id"], doc["title"], doc["text"])


def test_eval_reads_a_dataset_in_gb18030(tmp_path, reranker_path):
    dataset = tmp_path / "zhset"
    (dataset / "qrels").mkdir(parents=True)
    corpus = [{"_id": i, "title": t, "text": x} for i, t, x in ZH_DOCS]
    (dataset / "corpus.jsonl").write_bytes(jsonl_bytes(corpus, "gb18030"))
    queries = [
        {"_id": "q1", "text": "北京地铁一号线"},
        {"_id": "q2", "text": "过年吃饺子"},
        {"_id": "dev1", "text": ""},  # a query of another split, empty
    ]
    (dataset / "queries.jsonl").write_bytes(jsonl_bytes(queries, "gb18030"))
    (dataset / "qrels" / "test.tsv").write_text("q1\tsubway\t1\nq2\tdumpling\t1\n")
    args = ["eval", "--dataset", "zhset", "--no-rerank", "--no-progress"]
    wrong = searchkit(*args, cwd=tmp_path)
    assert wrong.returncode == 1
    assert b"queries.jsonl:1: not UTF-8 text (invalid start byte) (try --encoding gb18030)" in (
        wrong.stderr
    )
    build = ["--model", MODEL, "--reranker", str(reranker_path)]
    done = searchkit(*args, *build, "--encoding", "gb18030", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert "nDCG@10" in done.stdout.decode()
    # the empty query of another split is a warning naming its line, not a stop
    assert b"warning: zhset/queries.jsonl:3: field 'text' is empty; skipped" in done.stderr
    manifest = json.loads((tmp_path / "indexes" / "zhset" / "manifest.json").read_text())
    assert manifest["documents"] == len(ZH_DOCS)
