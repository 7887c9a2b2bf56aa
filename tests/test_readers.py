"""Corpus readers (searchkit.ingest.readers): every format read with its real library from tiny
files, the column mapping, errors that name file and line or row, streaming, and a folder of
Markdown, PDF and CSV files indexed, queried and re-added with the CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import tiny_records, write_jsonl
from typer.testing import CliRunner

from searchkit import CorpusError, InvalidParameter
from searchkit.ingest.readers import FORMATS, CorpusSource, detect_format, jsonarray, read_corpus

RECORDS = tiny_records()[:4]  # _id, title, text, topic (text), year (int)


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF whose text layer holds ``text`` (Helvetica), written by hand."""
    content = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def blank_pdf(path: Path) -> Path:
    """A PDF with one page and no text layer (what a scan without OCR is)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.write(path)
    return path


def write_csv(path: Path, rows: list[dict], sep: str = ",") -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=sep)
        out.writeheader()
        out.writerows(rows)
    return path


def write_format(root: Path, fmt: str, rows: list[dict]) -> Path:
    if fmt == "jsonl":
        return write_jsonl(root / "docs.jsonl", rows)
    if fmt == "json":
        path = root / "docs.json"
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
        return path
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), root / "docs.parquet", row_group_size=2)
        return root / "docs.parquet"
    if fmt in ("csv", "tsv"):
        return write_csv(root / f"docs.{fmt}", rows, "," if fmt == "csv" else "\t")
    import datasets

    datasets.disable_progress_bars()
    datasets.Dataset.from_list(rows).save_to_disk(str(root / "docs"))
    return root / "docs"


def as_tuples(source: CorpusSource) -> list[tuple]:
    return [(d.id, d.title, d.text, d.metadata) for d in source]


# -- every table format reads the same documents -----------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet", "csv", "tsv", "hf"])
def test_every_format_reads_the_same_documents(tmp_path, fmt):
    path = write_format(tmp_path, fmt, RECORDS)
    assert detect_format(path) == fmt
    source = read_corpus(path)
    assert isinstance(source, CorpusSource)
    docs = as_tuples(source)
    expected = [(r["_id"], r["title"], r["text"], {"topic": r["_id"], "year": r["year"]})
                for r in RECORDS]  # fmt: skip
    assert docs == expected  # numbers in CSV cells come back as numbers
    assert source.count == 4 and source.skipped_count == 0
    assert source.position == source.size > 0
    assert len(source.sha256) == 64
    again = source.reopen(skip_invalid=True)
    assert as_tuples(again) == expected and again.sha256 == source.sha256


def test_the_format_comes_from_the_name_or_the_folder(tmp_path):
    assert detect_format(tmp_path / "a.jsonl.gz") == "jsonl"
    assert detect_format(tmp_path / "a.csv.gz") == "csv"
    assert detect_format(tmp_path / "a.tab") == "tsv"
    assert detect_format(tmp_path / "a.pq") == "parquet"
    assert detect_format(tmp_path / "corpus.txt") == "jsonl"  # any other name: JSONL, as before
    lines = write_jsonl(tmp_path / "lines.json", RECORDS)  # JSON lines under a .json name
    assert detect_format(lines) == "jsonl" and len(list(read_corpus(lines))) == 4
    (tmp_path / "notes").mkdir()
    assert detect_format(tmp_path / "notes") == "folder"
    assert set(FORMATS) == {"jsonl", "json", "parquet", "csv", "tsv", "hf", "folder"}


def test_gzipped_csv_and_json(tmp_path):
    for fmt in ("csv", "json"):
        plain = write_format(tmp_path, fmt, RECORDS)
        packed = plain.with_name(plain.name + ".gz")
        packed.write_bytes(gzip.compress(plain.read_bytes()))
        assert as_tuples(read_corpus(packed)) == as_tuples(read_corpus(plain))
        assert read_corpus(packed).size < read_corpus(plain).size or fmt == "csv"


# -- the column mapping ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet", "csv", "hf"])
def test_columns_are_mapped(tmp_path, fmt):
    rows = [{"key": f"k{n}", "head": f"H{n}", "body": f"body {n}", "year": 2000 + n, "x": "drop"}
            for n in range(3)]  # fmt: skip
    path = write_format(tmp_path, fmt, rows)
    source = read_corpus(
        path, id_field="key", text_field="body", title_field="head", fields=["year"]
    )
    assert as_tuples(source) == [(f"k{n}", f"H{n}", f"body {n}", {"year": 2000 + n})
                                 for n in range(3)]  # fmt: skip


@pytest.mark.parametrize("fmt", ["parquet", "csv", "hf"])
def test_a_missing_column_is_named_before_reading(tmp_path, fmt):
    path = write_format(tmp_path, fmt, RECORDS)
    with pytest.raises(CorpusError, match=r"no column 'body' \(columns: _id, title, text, topic, "
                       r"year\); set text_field="):  # fmt: skip
        read_corpus(path, text_field="body")
    with pytest.raises(CorpusError, match="no column 'url'.*set fields="):
        read_corpus(path, fields=["url"])


def test_integer_ids_are_text_and_dates_are_iso(tmp_path):
    import datetime as dt

    rows = [{"id": n, "text": f"t{n}", "when": dt.date(2024, 1, n + 1)} for n in range(2)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    docs = list(read_corpus(tmp_path / "d.parquet"))
    assert [(d.id, d.metadata) for d in docs] == [("0", {"when": "2024-01-01"}),
                                                  ("1", {"when": "2024-01-02"})]  # fmt: skip


# -- errors name the file and the line or row --------------------------------------------------


def test_csv_errors_name_the_line_where_the_row_starts(tmp_path):
    path = tmp_path / "docs.csv"
    path.write_text('_id,text\na,"two\nlines"\nb,\nc,three\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"docs\.csv:4: empty text \(column 'text' is empty\)"):
        list(read_corpus(path))
    source = read_corpus(path, skip_invalid=True)
    assert [d.id for d in source] == ["a", "c"] and source.skipped_count == 1
    assert source.skipped[0].line == 4
    path.write_text("_id,text\na,x,extra\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"docs\.csv:2: 3 values for the header's 2 columns"):
        list(read_corpus(path))


def test_csv_encodings_and_byte_order_mark(tmp_path):
    path = tmp_path / "zh.csv"
    path.write_bytes("_id,text\nz1,中文的句子\n".encode("gb18030"))
    with pytest.raises(CorpusError, match=r"zh\.csv:2: not UTF-8 text .*encoding="):
        list(read_corpus(path))
    assert [d.text for d in read_corpus(path, encoding="gb18030")] == ["中文的句子"]
    path.write_bytes("\ufeff_id,text\nb1,with a BOM\n".encode())  # as spreadsheets export
    assert [d.id for d in read_corpus(path)] == ["b1"]


def test_json_array_errors_name_the_line(tmp_path):
    path = tmp_path / "docs.json"
    path.write_text('[\n {"_id": "a", "text": "x"},\n {"_id": "a", "text": "y"}\n]')
    with pytest.raises(CorpusError, match=r"docs\.json:3: duplicate id 'a' \(first on line 2\)"):
        list(read_corpus(path))
    path.write_text('[\n {"_id": "a", "text": "x"},\n\n {"_id": "b", "text": }\n]')
    with pytest.raises(CorpusError, match=r"docs\.json:4: invalid JSON"):
        list(read_corpus(path))
    path.write_text('[{"_id": "a", "text": "x"} {"_id": "b"}]')
    with pytest.raises(CorpusError, match=r"docs\.json:1: expected ',' or '\]' after an object"):
        list(read_corpus(path))
    path.write_text('{"data": []}')
    with pytest.raises(CorpusError, match='expected a JSON array of objects.*format="jsonl"'):
        list(read_corpus(path, "json"))


def test_parquet_errors_name_the_row(tmp_path):
    rows = [{"_id": "a", "text": "x"}, {"_id": "b", "text": "  "}, {"_id": "c", "text": "z"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "docs.parquet")
    with pytest.raises(CorpusError, match=r"docs\.parquet: row 2: empty text"):
        list(read_corpus(tmp_path / "docs.parquet"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(CorpusError, match=r"bad\.parquet: not a Parquet file"):
        read_corpus(tmp_path / "bad.parquet")


def test_a_datasets_dict_names_its_split_folders(tmp_path):
    import datasets

    datasets.disable_progress_bars()
    split = datasets.Dataset.from_list(RECORDS)
    datasets.DatasetDict({"train": split, "test": split}).save_to_disk(str(tmp_path / "dd"))
    assert detect_format(tmp_path / "dd") == "hf"
    with pytest.raises(CorpusError, match=r"a DatasetDict: give the folder of one split .*train"):
        read_corpus(tmp_path / "dd")
    assert len(list(read_corpus(tmp_path / "dd" / "train"))) == 4


def test_bad_arguments(tmp_path):
    path = write_format(tmp_path, "csv", RECORDS)
    with pytest.raises(InvalidParameter, match="unknown corpus format 'xml'") as err:
        read_corpus(path, "xml")
    assert err.value.param == "format"
    with pytest.raises(InvalidParameter, match="select the files of a folder"):
        read_corpus(path, include=["*.md"])
    with pytest.raises(CorpusError, match="no such file"):
        read_corpus(tmp_path / "missing.parquet")


# -- streaming ---------------------------------------------------------------------------------


def test_parquet_and_json_stream(tmp_path, monkeypatch):
    rows = [{"_id": f"d{n}", "text": f"document {n} " + "x" * 50} for n in range(3000)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "big.parquet", row_group_size=500)
    (tmp_path / "big.json").write_text(json.dumps(rows))
    for name in ("big.parquet", "big.json"):
        source = read_corpus(tmp_path / name)
        seen = [source.position for _ in source]
        assert seen[0] < source.size // 2, name  # read a part at a time, not the whole file
        assert source.position == source.size and source.count == 3000
    # an object cut across reads is put back together
    monkeypatch.setattr(jsonarray, "CHUNK", 7)
    long = [{"_id": "l", "text": "long " * 5000, "tags": ["a", "b"]}, {"_id": "m", "text": "é"}]
    (tmp_path / "long.json").write_text(json.dumps(long, ensure_ascii=False))
    assert [(d.id, d.text, d.metadata) for d in read_corpus(tmp_path / "long.json")] == [
        ("l", long[0]["text"], {"tags": ["a", "b"]}), ("m", "é", {})
    ]  # fmt: skip


# -- a folder of files -------------------------------------------------------------------------


def make_folder(root: Path) -> Path:
    docs = root / "docs"
    (docs / "guide").mkdir(parents=True)
    (docs / ".git").mkdir()
    (docs / ".git" / "HEAD.txt").write_text("hidden: never read")
    (docs / "guide" / "vaccines.md").write_text(
        "---\nlayout: page\n---\n```\n# not a heading\n```\n# How vaccines work\n\n"
        "A vaccine trains the immune system to recognise a pathogen.\n"
    )
    (docs / "sourdough.html").write_text(
        "<html><head><title>Sourdough bread</title><style>p {color: red}</style></head>"
        "<body><h1>Bread</h1><p>Sourdough rises thanks to wild yeast &amp; bacteria.</p>"
        "<script>var hidden = 1;</script></body></html>"
    )
    (docs / "black-holes.pdf").write_bytes(minimal_pdf("Nothing escapes a black hole, not light"))
    (docs / "tides.txt").write_text("Tides rise and fall with the pull of the Moon.")
    write_csv(docs / "faq.csv", [
        {"id": "q1", "title": "Insulin", "text": "Insulin lets cells absorb blood glucose."},
        {"id": "q2", "title": "Chess", "text": "Chess openings control the centre."},
    ])  # fmt: skip
    (docs / "logo.png").write_bytes(b"\x89PNG")
    return docs


def test_a_folder_reads_one_document_per_file_and_per_row(tmp_path):
    folder = make_folder(tmp_path)
    source = read_corpus(folder)
    docs = {d.id: d for d in source}
    assert list(docs) == ["black-holes.pdf", "faq.csv#q1", "faq.csv#q2", "guide/vaccines.md",
                          "sourdough.html", "tides.txt"]  # fmt: skip
    assert docs["guide/vaccines.md"].title == "How vaccines work"
    assert docs["sourdough.html"].title == "Sourdough bread"
    assert docs["sourdough.html"].text == "Bread\nSourdough rises thanks to wild yeast & bacteria."
    assert docs["black-holes.pdf"].text == "Nothing escapes a black hole, not light"
    assert docs["black-holes.pdf"].title == "black-holes"
    assert docs["black-holes.pdf"].metadata["pages"] == 1
    assert docs["tides.txt"].title == "tides"
    assert docs["faq.csv#q1"].title == "Insulin"
    meta = docs["tides.txt"].metadata
    assert meta["path"] == "tides.txt" and meta["mtime"].endswith("Z") and len(meta) == 2
    assert source.position == source.size and len(source.sha256) == 64


def test_folder_globs_and_checksum(tmp_path):
    folder = make_folder(tmp_path)
    only = read_corpus(folder, include=["*.md", "*.txt"], exclude=["guide/*"])
    assert [d.id for d in only] == ["tides.txt"]
    first = read_corpus(folder)
    list(first)
    (folder / "tides.txt").write_text("Tides follow the Moon.")
    second = read_corpus(folder)
    list(second)
    assert first.sha256 != second.sha256
    with pytest.raises(CorpusError, match=r"logo\.png: cannot read \.png files .*exclude="):
        list(read_corpus(folder, include=["*"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"empty corpus: no file matches \*\.txt"):
        list(read_corpus(tmp_path / "empty"))


def test_a_pdf_without_a_text_layer_is_named(tmp_path):
    folder = make_folder(tmp_path)
    blank_pdf(folder / "report.pdf")
    with pytest.raises(CorpusError, match=r"report\.pdf: no text layer .*OCR"):
        list(read_corpus(folder))
    source = read_corpus(folder, skip_invalid=True)
    assert "report.pdf" not in {d.id for d in source} and source.count == 6
    assert source.skipped_count == 1 and source.skipped[0].problem.startswith("report.pdf: no text")
    (folder / "bad.md").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"bad\.md: not UTF-8 text"):
        list(read_corpus(folder, exclude=["report.pdf"]))


# -- a folder indexed, queried and re-added with the CLI ---------------------------------------


@pytest.mark.slow
def test_a_mixed_folder_indexes_and_answers_with_one_command(tmp_path, reranker_path, monkeypatch):
    from searchkit.cli import app

    folder = make_folder(tmp_path)
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    built = runner.invoke(app, ["index", "docs", "--reranker", str(reranker_path),
                                "--no-progress", "--json"])  # fmt: skip
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["manifest"]["documents"] == 6  # the .png is not read
    asked = runner.invoke(app, ["query", "why can't light escape a black hole", "-i",
                                "indexes/docs", "--json", "-k", "2"])  # fmt: skip
    assert asked.exit_code == 0, asked.output
    top = json.loads(asked.stdout)["hits"][0]
    assert top["id"] == "black-holes.pdf" and top["metadata"]["pages"] == 1
    # one file changes: re-adding the folder embeds that file only
    (folder / "tides.txt").write_text("Tides rise and fall twice a day with the Moon.")
    added = runner.invoke(app, ["add", "indexes/docs", "docs", "--no-progress", "--json"])
    assert added.exit_code == 0, added.output
    report = json.loads(added.stdout)
    assert (report["replaced"], report["unchanged"], report["added"]) == (1, 5, 0)
    assert report["passages"] == 1
    blank_pdf(folder / "scan.pdf")
    failed = runner.invoke(app, ["add", "indexes/docs", "docs", "--no-progress"])
    assert failed.exit_code == 1 and "scan.pdf: no text layer" in failed.output


def test_the_ray_ingest_refuses_other_formats_with_what_to_do(tmp_path):
    from searchkit.distributed.ingest import ingest

    path = write_format(tmp_path, "parquet", RECORDS)
    with pytest.raises(InvalidParameter, match="reads JSONL corpora, not parquet: build without"):
        ingest(path, tmp_path / "out")
