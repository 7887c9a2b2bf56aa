"""Write a redistributable sample corpus: the docstrings of Python's standard library.

Each documented public function, class and method becomes a document (id and title: its
qualified name; text: its docstring; metadata: module and kind). A docstring's first line is a
natural query for it, so the script also writes queries and qrels in BEIR layout:

    OUT/corpus.jsonl  OUT/queries.jsonl  OUT/qrels/test.tsv

The queries are summary lines that belong to one object only; that object's document is the
one relevant answer. The summary also opens the document's text, so this is an easy sanity set
for the whole pipeline, not a benchmark of retrieval quality.

    python scripts/make_sample_corpus.py data/sample/stdlib --limit 2000
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import io
import json
import pkgutil
import random
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

# Modules that open windows, print, start servers or take long to import.
SKIP_MODULES = {
    "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "lib2to3", "pydoc_data",
    "ensurepip", "venv", "encodings", "__hello__", "__phello__", "xxsubtype", "_pydecimal", "test",
}  # fmt: skip
MIN_TEXT_CHARS = 80


def public_modules() -> list[str]:
    """Top-level public stdlib modules and the public submodules of its packages."""
    names = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in SKIP_MODULES:
            continue
        names.append(name)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            for sub in pkgutil.iter_modules(spec.submodule_search_locations):
                if not sub.name.startswith("_") and sub.name not in SKIP_MODULES:
                    names.append(f"{name}.{sub.name}")
    return names


def documented(module_name: str) -> Iterator[tuple[str, str, str]]:
    """(qualified name, kind, docstring) of the module's own public functions, classes, methods."""
    try:
        with (
            warnings.catch_warnings(),
            redirect_stdout(io.StringIO()),
            redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            module = importlib.import_module(module_name)
    except BaseException:  # noqa: BLE001 - platform-specific or broken modules are skipped
        return
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
            continue
        if inspect.isclass(obj):
            yield from _entry(f"{module_name}.{name}", "class", obj)
            for attr, member in sorted(vars(obj).items()):
                if not attr.startswith("_") and inspect.isroutine(member):
                    yield from _entry(f"{module_name}.{name}.{attr}", "method", member)
        elif inspect.isroutine(obj):
            yield from _entry(f"{module_name}.{name}", "function", obj)


def _entry(qualname: str, kind: str, obj: object) -> Iterator[tuple[str, str, str]]:
    doc = inspect.getdoc(obj)
    if doc and len(doc) >= MIN_TEXT_CHARS:
        yield qualname, kind, doc


def split_summary(doc: str) -> tuple[str, str]:
    """(first paragraph on one line, the rest)."""
    head, _, rest = doc.partition("\n\n")
    return " ".join(head.split()), rest.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder (BEIR layout)")
    parser.add_argument("--limit", type=int, default=2000, help="at most this many documents")
    parser.add_argument("--queries", type=int, default=200, help="at most this many test queries")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    entries, seen = [], set()
    for module in public_modules():
        for qualname, kind, doc in documented(module):
            if doc not in seen:  # inherited or copied docstrings would be duplicate documents
                seen.add(doc)
                entries.append((qualname, kind, doc))
    rng = random.Random(args.seed)
    if len(entries) > args.limit:
        entries = sorted(rng.sample(entries, args.limit))
    summaries = Counter(split_summary(doc)[0].lower() for _, _, doc in entries)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "qrels").mkdir(exist_ok=True)
    candidates = []
    with open(args.out / "corpus.jsonl", "w", encoding="utf-8") as corpus:
        for qualname, kind, doc in entries:
            record = {
                "_id": qualname,
                "title": qualname,
                "text": doc,
                "module": qualname.split(".")[0],
                "kind": kind,
            }
            corpus.write(json.dumps(record, ensure_ascii=False) + "\n")
            summary, rest = split_summary(doc)
            # a query must point at one document and must not be answerable by copying the text
            if (
                summaries[summary.lower()] == 1
                and len(summary.split()) >= 4
                and len(rest) >= MIN_TEXT_CHARS
            ):
                candidates.append((qualname, summary))
    chosen = sorted(rng.sample(candidates, min(args.queries, len(candidates))))
    with (
        open(args.out / "queries.jsonl", "w", encoding="utf-8") as queries,
        open(args.out / "qrels" / "test.tsv", "w", encoding="utf-8") as qrels,
    ):
        qrels.write("query-id\tcorpus-id\tscore\n")
        for n, (qualname, summary) in enumerate(chosen, 1):
            queries.write(json.dumps({"_id": f"q{n}", "text": summary}, ensure_ascii=False) + "\n")
            qrels.write(f"q{n}\t{qualname}\t1\n")
    print(f"wrote {len(entries)} documents and {len(chosen)} queries to {args.out}")


if __name__ == "__main__":
    main()
