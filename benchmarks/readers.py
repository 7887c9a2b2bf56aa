"""Corpus readers: documents per second and memory of each format against JSONL's reader.

The dataset's corpus is repeated ``--copies`` times (ids made unique) and written once in each
format (untimed): JSONL, a JSON array, Parquet (row groups of 10,000), CSV, TSV, a datasets
``save_to_disk`` folder, and a folder of Markdown files (one a document; ``--files`` of them).
Each format is then read whole by ``read_corpus`` in a fresh (spawned) child process, which
reports documents per second and the most its anonymous resident memory (not mapped files)
grew while reading (sampled every 1,000 documents, over the memory it had with every
reader's libraries imported): a streaming reader's growth stays far below the corpus' size
(what grows is the table of ids seen, for the duplicate check). Ratios are against JSONL, the
baseline measured in the same run.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import benchdata
import common

NAME = "readers"
TABLE_FORMATS = ("jsonl", "json", "parquet", "csv", "tsv", "hf")


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    common.add_dataset(parser)
    parser.add_argument("--copies", type=int, default=20, help="times the corpus is repeated")
    parser.add_argument("--files", type=int, default=5000, help="Markdown files in the folder")
    args, header = common.start(parser, NAME)
    data = benchdata.load_dataset(args.dataset, args.split, args.limit)
    root = benchdata.workdir()
    records = _records(data.corpus, args.copies)
    common.note(f"writing {len(records):,} documents in {len(TABLE_FORMATS)} formats ...")
    paths = {fmt: _write(root, fmt, records) for fmt in TABLE_FORMATS}
    paths["folder"] = _write_folder(root / "folder", records[: args.files])
    del records
    results = {}
    for fmt, path in paths.items():
        common.note(f"reading {fmt} ...")
        results[fmt] = common.in_child(_read, str(path), fmt)
    base = results["jsonl"]["docs_per_second"]
    for row in results.values():
        row["speed_vs_jsonl"] = common.ratio(row["docs_per_second"], base)
    common.report(NAME, args, header, [_table(results)], results)


def _records(corpus: Path, copies: int) -> list[dict[str, Any]]:
    from searchkit.ingest.corpus import CorpusReader

    docs = list(CorpusReader(corpus))
    return [
        {"_id": f"{d.id}-{n}", "title": d.title, "text": d.text, "copy": n}
        for n in range(copies)
        for d in docs
    ]


def _write(root: Path, fmt: str, records: list[dict[str, Any]]) -> Path:
    if fmt == "jsonl":
        path = root / "corpus.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    elif fmt == "json":
        path = root / "corpus.json"
        path.write_text(json.dumps(records), encoding="utf-8")
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = root / "corpus.parquet"
        pq.write_table(pa.Table.from_pylist(records), path, row_group_size=10_000)
    elif fmt in ("csv", "tsv"):
        path = root / f"corpus.{fmt}"
        with open(path, "w", newline="", encoding="utf-8") as f:
            out = csv.DictWriter(f, list(records[0]), delimiter="," if fmt == "csv" else "\t")
            out.writeheader()
            out.writerows(records)
    else:
        import datasets

        datasets.disable_progress_bars()
        path = root / "corpus-hf"
        datasets.Dataset.from_list(records).save_to_disk(str(path))
    return path


def _write_folder(folder: Path, records: list[dict[str, Any]]) -> Path:
    for n, r in enumerate(records):
        part = folder / f"part{n // 1000:03d}"
        part.mkdir(parents=True, exist_ok=True)
        (part / f"{r['_id']}.md").write_text(f"# {r['title']}\n\n{r['text']}\n", encoding="utf-8")
    return folder


def _read(path: str, fmt: str) -> dict[str, Any]:
    """Child process: read the corpus whole; speed and memory growth (the libraries of every
    format imported before, so that growth is the reading's own)."""
    import datasets  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from searchkit.ingest import readers
    from searchkit.ingest.readers import delimited, folder, hf, jsonarray, parquet  # noqa: F401

    before = highest = _rss_mb()
    started = time.perf_counter()
    source = readers.read_corpus(path, fmt)
    count = 0
    for _ in source:
        count += 1
        if count % 1000 == 0:
            highest = max(highest, _rss_mb())
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in Path(path).rglob("*")) if Path(path).is_dir() else None
    return {
        "documents": count,
        "seconds": seconds,
        "docs_per_second": count / seconds,
        "corpus_mb": (size if size is not None else Path(path).stat().st_size) / 2**20,
        "rss_growth_mb": max(highest, _rss_mb()) - before,
        "sha256": source.sha256,
    }


def _rss_mb() -> float:
    """Anonymous resident memory now, in MiB (Linux): not the pages of memory-mapped files
    (the datasets reader's Arrow files), which are the page cache's; and not the peak of
    ``common.peak_rss_mb``, which the imports set."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def _table(results: dict[str, dict[str, Any]]) -> common.Table:
    table = common.Table(
        "Reading a corpus whole (read_corpus, one process each)",
        ["format", "documents", "corpus MB", "docs/s", "vs JSONL", "RSS growth MB"],
    )
    for fmt, r in results.items():
        table.add(fmt, r["documents"], r["corpus_mb"], r["docs_per_second"],
                  r["speed_vs_jsonl"], r["rss_growth_mb"])  # fmt: skip
    return table


if __name__ == "__main__":
    main()
