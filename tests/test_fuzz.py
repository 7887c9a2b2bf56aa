"""Bad-input fuzzing of ``index`` and ``add`` with hypothesis.

Generated corpora mix valid records with malformed JSON, binary garbage, BOMs, non-objects,
wrong field types, empty and huge texts, odd Unicode, duplicate ids, nested and non-finite
metadata, blank lines, CRLF endings and gzip. An oracle written from the rules documented in
``searchkit.ingest.corpus`` predicts for each file whether it is valid (else the first bad line) and
which documents it holds. Every case must end in a correct index or a ``CorpusError`` naming
the file and the line, and a failed ``build_index``/``add_corpus``/``upsert`` must leave the
index (or the missing output folder) exactly as it was.

Bugs the fuzzing found keep a minimal regression test each, below the properties.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, example, given, note, settings
from hypothesis import strategies as st

from searchkit import Document, Searcher, build_index
from searchkit.errors import CorpusError, InvalidParameter
from searchkit.index.manifest import Manifest
from searchkit.index.segment import Segment, live_blocks, read_deletions
from searchkit.ingest.writer import IndexWriter
from searchkit.query.searcher import verify_index

pytestmark = pytest.mark.slow


FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is deterministic
    database=None,
    # Each example embeds and writes an index (0.05-2 s): shrinking a failure would take many
    # minutes. Failing examples are a few lines, printed as generated with the oracle's verdict.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)

# these tests are about reading and committing, not languages: random text full of CJK would
# otherwise be detected as Chinese and embedded by the 12-layer multilingual model
LANGUAGE = "en"
BOM = b"\xef\xbb\xbf"
ASCII_SPACE = b" \t\r\x0b\x0c"  # what a blank line may hold (bytes.strip's whitespace)


# --------------------------------------------------------------------------- model, folders


@pytest.fixture(scope="module", autouse=True)
def model_loaded_once() -> Iterator[None]:
    """Every Encoder loads the bi-encoder from disk on its runtime (~1 s); share one copy in
    this module."""
    import searchkit.inference.runtimes.load as load

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(load, "load_on_runtime", functools.cache(load.load_on_runtime))
        yield


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@contextmanager
def scratch(workdir: Path) -> Iterator[Path]:
    """A fresh folder per hypothesis example (tmp_path is shared by all examples)."""
    folder = Path(tempfile.mkdtemp(dir=workdir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- the base index

BASE_RECORDS = [
    {
        "_id": "a",
        "title": "Vaccines",
        "text": "A vaccine trains the immune system to recognise a pathogen.",
        "year": 2001,
        "tags": ["bio", "health"],
    },
    {
        "id": "b",
        "text": "Plants turn sunlight, water and carbon dioxide into glucose.",
        "metadata": {"source": "pubmed", "score": 0.5},
    },
    {"_id": "c", "title": "", "text": "Black holes bend light.", "nested": {"k": [1, 2.5, None]}},
    {"_id": "d", "title": "Tides", "text": "The Moon pulls the oceans.", "year": 2004},
]


@pytest.fixture(scope="module")
def base_index(workdir: Path) -> Path:
    """A small exact index built once; examples change copies of it."""
    corpus = workdir / "base.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in BASE_RECORDS), encoding="utf-8")
    return build_index(
        corpus, workdir / "base", backend="exact", language=LANGUAGE, progress=False
    ).path


def copy_of(index: Path, folder: Path) -> Path:
    target = folder / "index"
    shutil.copytree(index, target)
    return target


# --------------------------------------------------------------------------- the oracle

DocKey = tuple[str, str, str]  # title, text, metadata as sorted JSON


def doc_key(title: str, text: str, metadata: dict[str, Any]) -> DocKey:
    return (title, text, json.dumps(metadata, sort_keys=True))


@dataclass(frozen=True)
class Bad:
    line: int | None  # None: the whole file (an empty corpus)
    why: str  # json, object, id, duplicate, text, title, or "any" (any message will do)
    first: int | None = None  # the first line of a duplicate id


@dataclass
class Expected:
    """What the documented rules say a corpus file holds."""

    docs: dict[str, DocKey] = field(default_factory=dict)  # valid documents, in file order
    bad: list[Bad] = field(default_factory=list)  # every invalid line (skip_invalid)

    def error(self, skip_invalid: bool) -> Bad | None:
        """The error reading the file must raise (line None: empty corpus), or None."""
        if self.bad and not skip_invalid:
            return self.bad[0]
        if not self.docs:
            return Bad(None, "empty")
        return None


def has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(map(has_lone_surrogate, value))
    return False


def oracle(lines: list[bytes]) -> Expected:
    """Read ``lines`` (without line endings) by corpus.py's documented rules.

    Blank lines (ASCII whitespace only) are skipped. A line is UTF-8 (a BOM at its start is
    ignored) holding one JSON object with an id (``_id``, else ``id``: a non-empty string, not
    seen on an earlier valid line), a non-empty string ``text`` and an optional string
    ``title`` (null: none); every other field is metadata, a ``metadata`` object is merged into
    it. Strings must be valid Unicode (no lone surrogates: they cannot be stored as UTF-8).
    """
    out = Expected()
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip(ASCII_SPACE):
            continue
        verdict = judge(raw, seen)
        if isinstance(verdict, Bad):
            out.bad.append(Bad(number, verdict.why, verdict.first))
        else:
            doc_id, key = verdict
            seen[doc_id] = number
            out.docs[doc_id] = key
    return out


def judge(raw: bytes, seen: dict[str, int]) -> Bad | tuple[str, DocKey]:
    """Why the line is bad (a Bad without its line number), or (id, document key)."""
    try:
        record = json.loads(raw.removeprefix(BOM).decode("utf-8"))
    except UnicodeDecodeError:
        return Bad(None, "any")  # not UTF-8 ("not UTF-8" or "invalid JSON": either will do)
    except ValueError:  # json.loads(bytes) reads lines with NULs as UTF-16/32: any message
        return Bad(None, "any" if b"\x00" in raw else "json")
    if has_lone_surrogate(record):
        return Bad(None, "any")
    if not isinstance(record, dict):
        return Bad(None, "object")
    id_field = "_id" if "_id" in record else "id" if "id" in record else None
    if id_field is None:
        return Bad(None, "id")
    doc_id, text, title = record[id_field], record.get("text"), record.get("title")
    if not isinstance(doc_id, str) or not doc_id.strip():
        return Bad(None, "id")
    if doc_id in seen:
        return Bad(None, "duplicate", seen[doc_id])
    if not isinstance(text, str) or not text.strip():
        return Bad(None, "text")
    if title is not None and not isinstance(title, str):
        return Bad(None, "title")
    metadata = {k: v for k, v in record.items() if k not in ("_id", "id", "text", "title")}
    nested = metadata.pop("metadata", None)
    if isinstance(nested, dict):
        metadata.update(nested)
    elif nested is not None:
        metadata["metadata"] = nested
    return doc_id, doc_key(title or "", text, metadata)


PROBLEM_WORDS = {
    "json": "invalid JSON",
    "object": "expected a JSON object",
    "id": "id field",
    "duplicate": "duplicate id",
    "text": "field 'text'",
    "title": "field 'title'",
    "empty": "empty corpus",
}


def check_corpus_error(err: CorpusError, path: Path, bad: Bad) -> None:
    """The error names the file, the line and (for plain JSON lines) the problem."""
    assert err.path == str(path)
    assert err.line == bad.line, f"line {err.line} reported, line {bad.line} expected: {err}"
    where = f"{path}:{bad.line}" if bad.line is not None else str(path)
    assert str(err).startswith(f"{where}: ") and err.problem.strip(), str(err)
    if bad.why in PROBLEM_WORDS:
        assert PROBLEM_WORDS[bad.why] in err.problem, (bad, str(err))
    if bad.why == "duplicate":
        assert f"first on line {bad.first}" in err.problem, str(err)


# --------------------------------------------------------------------------- the index's view


def live_docs(path: Path) -> dict[str, DocKey]:
    """Every live document read back from the segments: id -> (title, text, metadata)."""
    manifest = Manifest.read(path)
    deleted = read_deletions(path, manifest)
    segments = [Segment(path, manifest, e, deleted[e.name]) for e in manifest.segments]
    out: dict[str, DocKey] = {}
    for docs, *_ in live_blocks(segments, 1024):  # (documents, vectors[, passage spans])
        for d in docs:
            assert d.id not in out, f"id {d.id!r} live twice"
            out[d.id] = doc_key(d.title, d.text, d.metadata)
    return out


def check_index(path: Path, expected: dict[str, DocKey]) -> None:
    """The index verifies, opens, holds exactly ``expected`` and finds every document."""
    manifest = verify_index(path)
    assert manifest.documents == len(expected)
    assert live_docs(path) == expected
    searcher = Searcher.open(path)
    assert sorted(searcher.ids()) == sorted(expected) and len(searcher) == len(expected)
    first = next(iter(expected.values()))
    hits = searcher.search(first[1], k=len(expected), rerank=False)
    assert sorted(h.id for h in hits) == sorted(expected)
    assert all(math.isfinite(h.score) for h in hits)


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (hidden ones included), by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def hidden(folder: Path) -> list[str]:
    """Hidden names (staging leftovers) anywhere under ``folder``."""
    return [str(p.relative_to(folder)) for p in folder.rglob(".*")]


def upserted(base: dict[str, DocKey], new: dict[str, DocKey]) -> tuple[dict, dict[str, int]]:
    """``base`` after upserting ``new``, and the added/replaced/unchanged counts."""
    out, counts = dict(base), {"added": 0, "replaced": 0, "unchanged": 0}
    for doc_id, key in new.items():
        kind = "added" if doc_id not in out else "unchanged" if out[doc_id] == key else "replaced"
        counts[kind] += 1
        out[doc_id] = key
    return out, counts


# --------------------------------------------------------------------------- strategies


def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


ODD = [
    "e\u0301\u0301\u0327",  # stacked combining marks
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",  # Hebrew, Arabic (RTL)
    "\u202eevil\u202c",  # right-to-left override
    "\U0001f469\u200d\U0001f469\u200d\U0001f467",  # emoji joined by zero-width joiners
    "\U0001f3f3\ufe0f\u200d\U0001f308",
    "a\u200db\u200cc",  # zero-width joiner and non-joiner
    "\u200b",  # zero-width space (not whitespace for str.strip)
    "\x00",
    "nul\x00inside",
    "\ufeffbom inside",
    "\u2028line\u2029separators",
    "\uff21\uff22\uff23",  # full width
    "\U0001d54f\U0001d552",  # astral plane letters
    "\x7f\x1b[31m",  # DEL and an ANSI escape
    "\u0130\u00df\ufb03",  # case-mapping oddities
    "\u4e2d\u6587\u65e5\u672c\u8a9e",
    "tab\there\rcr",
]
LONE_SURROGATES = ["\ud800", "\udfff", "x\udc00y"]  # escaped as \ud800 in the JSON
LONG_WORD = "Pneumonoultramicroscopicsilicovolcanoconiosis" * 200  # one 9 KB "word"
HUGE = [
    "lorem ipsum dolor " * 6000,  # 108 KB of words: the model reads the first 256 tokens
    "x" * 100_000,  # one 100 KB word
    "\u6587\u5b57" * 17_000,  # 100 KB of CJK
]
WHITESPACE_ONLY = ["", " ", "  \t\n ", "\u3000", "\u00a0\u2003", "\r\n"]

words = st.sampled_from(["alpha", "beta", "gamma", "tides", "vaccine", "black hole", "42"])
odd = st.sampled_from(ODD + LONE_SURROGATES)
small_text = st.lists(
    weighted((3, words), (2, odd), (1, st.text(max_size=6)), (1, st.just(LONG_WORD))),
    min_size=1,
    max_size=4,
).map(" ".join)
good_text = weighted((12, small_text), (1, st.sampled_from(HUGE))).filter(str.strip)
titles = weighted((3, st.just(None)), (1, st.just("")), (4, small_text))
ID_POOL = [*"abcdef", "x y", "\u00fcn\u00efc\u00f6d\u00e9", "\U0001f44d", "a\x00b"]
good_ids = weighted((6, st.sampled_from(ID_POOL)), (1, st.text(min_size=1, max_size=4)))

finite = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | small_text
json_leaf = weighted(
    (6, finite),
    (1, st.sampled_from([math.nan, math.inf, -math.inf, 10**30, -(2**63), 2**64, -0.0])),
)
META_KEYS = ["year", "topic", "source", "a", "a.b", "", "id.x", "metadata.x", "\u00e9t\u00e9", "k"]
meta_keys = weighted((4, st.sampled_from(META_KEYS)), (1, st.text(max_size=4)))
json_values = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(meta_keys, inner, max_size=3),
    max_leaves=6,
)
# keys of the metadata object may be anything, even "text" or "_id": they are metadata there
nested_keys = meta_keys | st.sampled_from(["text", "title", "_id", "id", "metadata"])

NOT_STRINGS = [0, 1, -7, 0.0, 1.5, 1e300, None, True, False, [], ["a"], {}, {"a": 1}]


@st.composite
def records(draw: st.DrawFn, ids: st.SearchStrategy[str] = good_ids) -> dict[str, Any]:
    """A JSON object meant to be a valid corpus record (the oracle has the last word)."""
    record: dict[str, Any] = {}
    doc_id = draw(ids)
    id_style = draw(st.sampled_from(["_id", "_id", "id", "both"]))
    if id_style == "both":  # _id wins; id is an id field, not metadata
        record["id"] = draw(st.sampled_from(["other", "", 7]))
    record["_id" if id_style != "id" else "id"] = doc_id
    title = draw(titles)
    if title is not None or draw(st.booleans()):
        record["title"] = title
    record["text"] = draw(good_text)
    for key in draw(st.lists(st.sampled_from(META_KEYS + ["tags", "n"]), max_size=3)):
        record[key] = draw(json_values)
    nested = draw(
        weighted(
            (4, st.just(None)),
            (3, st.dictionaries(nested_keys, json_values, max_size=3)),
            (1, json_values),  # not an object: kept as the field "metadata"
        )
    )
    if nested is not None or draw(st.booleans()):
        record["metadata"] = nested
    keys = list(record)
    order = draw(st.permutations(keys))
    return {k: record[k] for k in order}


@st.composite
def defective_records(draw: st.DrawFn) -> dict[str, Any]:
    """A record with one wrong field: id, text or title missing, empty or of the wrong type."""
    record = draw(records())
    id_field = "_id" if "_id" in record else "id"
    defect = draw(st.sampled_from(["no id", "id", "no text", "text", "title"]))
    if defect == "no id":
        record.pop("_id", None)
        record.pop("id", None)
    elif defect == "id":
        record[id_field] = draw(st.sampled_from([*NOT_STRINGS, "", "   ", "\u3000"]))
    elif defect == "no text":
        del record["text"]
    elif defect == "text":
        record["text"] = draw(st.sampled_from(NOT_STRINGS + WHITESPACE_ONLY))
    else:
        wrong = [v for v in NOT_STRINGS if v is not None]
        record["title"] = draw(st.sampled_from(wrong))
    return record


def encode_record(record: dict[str, Any], ascii_only: bool, spaced: bool) -> bytes:
    separators = (", ", ": ") if spaced else (",", ":")
    try:
        return json.dumps(record, ensure_ascii=ascii_only, separators=separators).encode()
    except UnicodeEncodeError:  # a lone surrogate: only its escaped form is writable
        return json.dumps(record, separators=separators).encode()


@st.composite
def record_lines(draw: st.DrawFn, strategy: st.SearchStrategy[dict[str, Any]]) -> bytes:
    line = encode_record(draw(strategy), draw(st.booleans()), draw(st.booleans()))
    pad = draw(st.sampled_from([b"", b"", b"", b" ", b"\t "]))
    prefix = draw(st.sampled_from([b"", b"", b"", b"", BOM]))  # a BOM at a line start is ignored
    return prefix + pad + line + pad


INVALID_JSON = [
    b'{"_id": "t1", "text": "truncated',
    b'{"_id": "t2", "text": "trailing comma",}',
    b'{"_id": "t3" "text": "missing comma"}',
    b'{"_id": "t4", "text": "one brace too many"}}',
    b'{"_id": "t5", "text": "two"} {"_id": "t6", "text": "objects"}',
    b"{'_id': 't7', 'text': 'single quotes'}",
    b'{"_id": "t8", "text": "raw\ttab"}',
    b'{"_id": "t9", "text": "bad \\escape"}',
    b'{"_id": "t10", "text": NaNa}',
    b'{_id: "t11", text: "bare keys"}',
    b"hello world",
    b"tru",
    b"{",
    b"}",
    b"[1, 2",
    b'"unterminated',
    BOM + BOM + b'{"_id": "t12", "text": "two BOMs"}',
    b'\xc2\xa0{"_id": "t13", "text": "a no-break space before"}',
]
NOT_UTF8 = [
    b'{"_id": "u1", "text": "caf\xe9 in latin-1"}',
    b"\x80\x81\x82",
    b"\xc3\x28",
    b'{"_id": "u2", "text": "cut \xe2\x82"}',
    b"\xff\xfe\xfd",
    b"\xfe\xff\x00{",
    b"\x00\x00\x00",
    b'{"_id": "u3", "text": "overlong \xc0\xaf"}',
]
NOT_UTF8_UTF16 = [
    b'{"_id": "u4", "text": "encoded surrogate \xed\xa0\x80"}',  # accepted (surrogatepass)
    '{"_id": "u5", "text": "a UTF-16 line"}'.encode("utf-16-le"),  # accepted as UTF-16
    b"\xff\xfe" + '{"_id": "u6", "text": "UTF-16 with BOM"}'.encode("utf-16-le"),
]
NOT_OBJECTS = [
    b"[]",
    b'[{"_id": "n1", "text": "an object in a list"}]',
    b"42",
    b"-1.5e3",
    b'"a string"',
    b"null",
    b"true",
    b"NaN",
    b"-Infinity",
]
TRICKY_VALID = [
    b'{"_id": "k1", "_id": "k2", "text": "the last duplicate key wins"}',
    b'{"id": "k3", "text": "big numbers", "n": 1e400, "m": -1e400, "i": 123456789012345678901}',
    b'{"_id": "k4", "text": "escaped \\u00e9 \\ud83d\\ude00 pair \\u0000 nul", "title": null}',
    b'  {"_id": "k5", "text": "spaces around"}   ',
    b'{"_id":"k6","text":"surrogate pair in a key","\\ud83d\\ude00":1}',
]
BLANK = [b"", b" ", b"\t", b"   \t ", b"\r", b"\x0c"]

garbage = st.binary(min_size=1, max_size=16).filter(
    lambda b: b"\n" not in b and not b.startswith(b"\x1f\x8b")  # gzip magic: a gzip file
)
bad_lines = weighted(
    (4, record_lines(defective_records())),
    (3, st.sampled_from(INVALID_JSON)),
    (2, st.sampled_from(NOT_UTF8 + NOT_UTF8_UTF16)),
    (1, garbage),
    (2, st.sampled_from(NOT_OBJECTS)),
)


def _short(text: str, keep: int = 300) -> str:
    return text if len(text) <= keep else f"{text[:keep]}...<{len(text)} characters>"


class ShortRepr:
    """Hypothesis prints a failing example with this repr (texts of 100 KB made it unreadable)."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


class Documents(ShortRepr, list):
    """upsert's argument."""

    def __repr__(self) -> str:
        return "[\n  " + ",\n  ".join(_short(repr(d)) for d in self) + "]"


@dataclass(frozen=True)
class CorpusFile(ShortRepr):
    lines: list[bytes]
    crlf: bool
    gzipped: bool
    final_newline: bool

    def data(self) -> bytes:
        end = b"\r\n" if self.crlf else b"\n"
        return end.join(self.lines) + (end if self.final_newline else b"")

    def __repr__(self) -> str:
        lines = ",\n  ".join(_short(repr(line)) for line in self.lines)
        flags = f"crlf={self.crlf}, gzipped={self.gzipped}, final_newline={self.final_newline}"
        return f"CorpusFile(lines=[\n  {lines}], {flags})"

    def write(self, folder: Path, name: str = "corpus") -> Path:
        if self.gzipped:
            path = folder / f"{name}.jsonl.gz"
            path.write_bytes(gzip.compress(self.data(), mtime=0))
        else:
            path = folder / f"{name}.jsonl"
            path.write_bytes(self.data())
        return path


@st.composite
def corpora(draw: st.DrawFn, ids: st.SearchStrategy[str] = good_ids) -> CorpusFile:
    """A corpus file of a few lines: clean, clean but for one bad line, or any mix."""
    style = draw(st.sampled_from(["clean", "clean", "clean", "one bad line", "mixed"]))
    good = record_lines(records(ids))
    valid = weighted((5, good), (1, st.sampled_from(TRICKY_VALID)), (1, st.sampled_from(BLANK)))
    if style == "mixed":
        lines = draw(st.lists(weighted((3, valid), (2, bad_lines)), min_size=1, max_size=6))
    else:
        lines = draw(st.lists(valid, min_size=1, max_size=5))
        if style == "one bad line":
            at = draw(st.integers(0, len(lines)))
            lines.insert(at, draw(bad_lines))
    return CorpusFile(lines, draw(st.booleans()), draw(st.integers(0, 3)) == 0, draw(st.booleans()))


def describe(corpus: CorpusFile, expected: Expected) -> None:
    note(f"oracle: {len(expected.docs)} documents, bad lines {expected.bad}")
    event("valid corpus" if not expected.bad else f"first bad line: {expected.bad[0].why}")


# --------------------------------------------------------------------------- 1, 3: build_index


def check_build(
    workdir: Path, corpus: CorpusFile, skip_invalid: bool, replace: Path | None = None
) -> None:
    """build_index into a new folder, or over a copy of the index ``replace`` (force=True)."""
    expected = oracle(corpus.lines)
    describe(corpus, expected)
    with scratch(workdir) as folder:
        path = corpus.write(folder)
        out = folder / "out"
        old = None
        if replace is not None:
            shutil.copytree(replace, out)
            old = (snapshot(out), live_docs(out))
        error = expected.error(skip_invalid)
        event(f"outcome: {'no index, ' + error.why if error else 'an index'}")
        if skip_invalid:
            event(f"skipped lines: {min(len(expected.bad), 2)}{'+' * (len(expected.bad) > 2)}")

        def build() -> Any:
            return build_index(
                path, out, backend="exact", language=LANGUAGE, progress=False,
                skip_invalid=skip_invalid, force=True,
            )  # fmt: skip

        if error is not None:
            with pytest.raises(CorpusError) as caught:
                build()
            check_corpus_error(caught.value, path, error)
            leftovers = {p.name for p in folder.iterdir()} - {path.name, ".out.lock"}
            if old is None:
                assert not out.exists()
            else:  # the index that was there is untouched
                leftovers -= {"out"}
                assert not hidden(out) and snapshot(out) == old[0]
                check_index(out, old[1])
            assert not leftovers, f"a failed build left {leftovers}"
            return
        report = build()
        assert report.skipped_count == len(expected.bad)
        assert [s.line for s in report.skipped] == [b.line for b in expected.bad][:20]
        assert report.manifest.corpus.skipped_lines == len(expected.bad)
        assert report.manifest.version == (1 if old is None else 2)
        check_index(out, expected.docs)
        assert not hidden(out)


@FUZZ
@given(corpus=corpora(), replace=st.booleans())
def test_build_index_makes_the_oracles_index_or_names_the_first_bad_line(
    workdir, base_index, corpus, replace
):
    check_build(workdir, corpus, skip_invalid=False, replace=base_index if replace else None)


@FUZZ
@given(corpus=corpora())
def test_build_index_skip_invalid_indexes_the_valid_lines_and_counts_the_rest(workdir, corpus):
    check_build(workdir, corpus, skip_invalid=True)


# --------------------------------------------------------------------------- 2, 3: add_corpus

# new ids and the base index's ids (an upsert), some records exactly as they are in the index
add_ids = weighted((3, st.sampled_from(["a", "b", "c", "d"])), (4, good_ids))
BASE_LINES = [json.dumps(r).encode() for r in BASE_RECORDS]


@st.composite
def add_corpora(draw: st.DrawFn) -> CorpusFile:
    corpus = draw(corpora(add_ids))
    lines = list(corpus.lines)
    for _ in range(draw(st.integers(0, 2))):  # base records sent again, unchanged
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(BASE_LINES)))
    return CorpusFile(lines, corpus.crlf, corpus.gzipped, corpus.final_newline)


def check_add(workdir: Path, base_index: Path, corpus: CorpusFile, skip_invalid: bool) -> None:
    expected = oracle(corpus.lines)
    describe(corpus, expected)
    with scratch(workdir) as folder:
        index = copy_of(base_index, folder)
        path = corpus.write(folder)
        before, base = snapshot(index), live_docs(index)
        version = Manifest.read(index).version
        error = expected.error(skip_invalid)
        with IndexWriter.open(index) as writer:
            if error is not None:
                with pytest.raises(CorpusError) as caught:
                    writer.add_corpus(path, skip_invalid=skip_invalid)
                check_corpus_error(caught.value, path, error)
            else:
                report = writer.add_corpus(path, skip_invalid=skip_invalid)
        if skip_invalid:
            event(f"skipped lines: {min(len(expected.bad), 2)}{'+' * (len(expected.bad) > 2)}")
        if error is not None:
            event(f"outcome: add failed, {error.why}")
            assert not hidden(index), f"a failed add left {hidden(index)}"
            assert snapshot(index) == before, "a failed add changed the index"
            check_index(index, base)
            return
        after, counts = upserted(base, expected.docs)
        changed = counts["added"] + counts["replaced"] > 0
        event(f"outcome: {'a new version' if changed else 'no change'}")
        assert (report.added, report.replaced, report.unchanged) == tuple(counts.values())
        assert report.version == Manifest.read(index).version == version + changed
        assert report.documents == len(after)
        if not changed:
            assert snapshot(index) == before
        check_index(index, after)
        assert not hidden(index)


@FUZZ
@given(corpus=add_corpora())
@example(corpus=CorpusFile([BASE_LINES[2], b"", BASE_LINES[0]], True, False, True))  # no change
def test_add_corpus_upserts_the_oracles_documents_or_changes_nothing(workdir, base_index, corpus):
    check_add(workdir, base_index, corpus, skip_invalid=False)


@FUZZ
@given(corpus=add_corpora())
def test_add_corpus_skip_invalid_upserts_the_valid_lines(workdir, base_index, corpus):
    check_add(workdir, base_index, corpus, skip_invalid=True)


# --------------------------------------------------------------------------- 4: upsert

BAD_METADATA = [
    None,
    ["not", "a", "dict"],
    "a string",
    {"tags": {"a", "set"}},
    {"x": math.nan},
    {"x": [1, math.inf]},
    {"x": {"deep": -math.inf}},
    {"raw": b"bytes"},
    {"obj": object()},
    {("tuple", "key"): 1},
]
BAD_METADATA_KEYS = [{1: "an int key"}, {None: "a null key"}]  # silently made strings


@st.composite
def document_lists(draw: st.DrawFn) -> list[Any]:
    """A few Documents for upsert; in some, one thing that is not allowed."""
    docs: list[Any] = []
    for _ in range(draw(st.integers(1, 4))):
        metadata = draw(st.dictionaries(meta_keys, json_values, max_size=3)).copy()
        metadata = {k: v for k, v in metadata.items() if not _non_finite(v)}
        text = draw(good_text)
        docs.append(Document(draw(add_ids), text, draw(titles) or "", metadata))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(docs) - 1))
        doc = docs[at]
        defect = draw(st.sampled_from(["id", "text", "title", "metadata", "type", "dup"]))
        bad_meta = BAD_METADATA + BAD_METADATA_KEYS
        surrogates = LONE_SURROGATES
        if defect == "id":
            doc = Document(draw(st.sampled_from([*NOT_STRINGS, "", " ", *surrogates])), doc.text)
        elif defect == "text":
            doc = Document(doc.id, draw(st.sampled_from(NOT_STRINGS + WHITESPACE_ONLY)))
        elif defect == "title":
            doc = Document(doc.id, doc.text, draw(st.sampled_from([None, 0, ["t"], {}])))
        elif defect == "metadata":
            doc = Document(doc.id, doc.text, doc.title, draw(st.sampled_from(bad_meta)))
        elif defect == "type":
            doc = draw(st.sampled_from([{"id": doc.id, "text": doc.text}, (doc.id, doc.text)]))
        elif at > 0:
            doc = Document(docs[draw(st.integers(0, at - 1))].id, doc.text)
        docs[at] = doc
    return Documents(docs)


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(map(_non_finite, value.values()))
    if isinstance(value, list):
        return any(map(_non_finite, value))
    return False


def _json_data(value: Any) -> bool:
    """JSON data as json.dumps writes it back unchanged: string keys, finite numbers."""
    if value is None or isinstance(value, (bool, int, str)):
        return not has_lone_surrogate(value)
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(map(_json_data, value))
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_data(k) and _json_data(v) for k, v in value.items())
    return False


def first_bad_document(docs: list[Any]) -> int | None:
    seen: set[str] = set()
    for n, doc in enumerate(docs):
        if not isinstance(doc, Document):
            return n
        good = (
            isinstance(doc.id, str)
            and doc.id.strip()
            and not has_lone_surrogate(doc.id)
            and isinstance(doc.text, str)
            and doc.text.strip()
            and not has_lone_surrogate(doc.text)
            and isinstance(doc.title, str)
            and not has_lone_surrogate(doc.title)
            and isinstance(doc.metadata, dict)
            and _json_data(doc.metadata)
            and doc.id not in seen
        )
        if not good:
            return n
        seen.add(doc.id)
    return None


@FUZZ
@given(docs=document_lists())
def test_upsert_refuses_bad_documents_by_position_and_id(workdir, base_index, docs):
    bad = first_bad_document(docs)
    event("outcome: " + ("upserted" if bad is None else "InvalidParameter"))
    with scratch(workdir) as folder:
        index = copy_of(base_index, folder)
        before, base = snapshot(index), live_docs(index)
        version = Manifest.read(index).version
        with IndexWriter.open(index) as writer:
            if bad is not None:
                with pytest.raises(InvalidParameter) as caught:
                    writer.upsert(docs)
            else:
                report = writer.upsert(docs)
        if bad is not None:
            message = str(caught.value)
            assert message.startswith(f"document {bad}"), message
            if isinstance(docs[bad], Document):
                assert repr(docs[bad].id) in message, message
            assert not hidden(index) and snapshot(index) == before
            check_index(index, base)
            return
        new = {d.id: doc_key(d.title, d.text, d.metadata) for d in docs}
        after, counts = upserted(base, new)
        assert (report.added, report.replaced, report.unchanged) == tuple(counts.values())
        assert report.version == version + (counts["added"] + counts["replaced"] > 0)
        check_index(index, after)


# --------------------------------------------------------------------------- the CLI


@settings(FUZZ, max_examples=12)
@given(corpus=corpora(), add=st.booleans())
def test_cli_index_and_add_exit_0_or_1_with_one_error_line(workdir, base_index, corpus, add):
    from typer.testing import CliRunner

    from searchkit.cli import app

    expected = oracle(corpus.lines)
    describe(corpus, expected)
    error = expected.error(False)
    with scratch(workdir) as folder:
        path = corpus.write(folder)
        if add:
            args = ["add", str(copy_of(base_index, folder)), str(path), "--no-progress"]
        else:
            args = ["index", str(path), "-o", str(folder / "out"), "--backend", "exact"]
            args += ["--language", LANGUAGE]
            args.append("--no-progress")
        result = CliRunner().invoke(app, args)
        if not isinstance(result.exception, (SystemExit, type(None))):
            raise result.exception  # a crash, not an error message
        if error is None:
            assert result.exit_code == 0, result.stderr
            return
        where = f"{path}:{error.line}" if error.line is not None else str(path)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"error: {where}: "), result.stderr
        assert result.stderr.count("\n") == 1, result.stderr


# ------------------------------------------------------- regressions found by the fuzzing
# Minimal reproductions of what the properties found; they fail until searchkit is fixed.


def one_line_corpus(folder: Path, line: bytes) -> Path:
    path = folder / "one.jsonl"
    path.write_bytes(line + b"\n")
    return path


@pytest.mark.parametrize(
    "line",
    [
        rb'{"_id": "a", "text": "x\ud800y"}',
        rb'{"_id": "a\udfff", "text": "x"}',
        rb'{"_id": "a", "title": "\udc00", "text": "x"}',
        rb'{"_id": "a", "text": "x", "source": "\ud800"}',
        rb'{"_id": "a", "text": "x", "\ud800": 1}',
        b'{"_id": "a", "text": "x\xed\xa0\x80y"}',  # a surrogate encoded as (invalid) UTF-8
    ],
    ids=["text", "id", "title", "metadata value", "metadata key", "utf8-encoded surrogate"],
)
def test_regression_a_lone_surrogate_is_a_corpus_error_on_its_line(workdir, line):
    with scratch(workdir) as folder:
        path = one_line_corpus(folder, line)
        with pytest.raises(CorpusError) as caught:
            build_index(path, folder / "out", backend="exact", language=LANGUAGE, progress=False)
        assert caught.value.line == 1


@pytest.mark.parametrize(
    "line",
    [
        '{"_id": "a", "text": "x"}'.encode("utf-16-le"),
        b"\xff\xfe" + '{"_id": "a", "text": "x"}'.encode("utf-16-le"),
    ],
    ids=["utf-16-le", "utf-16 with BOM"],
)
def test_regression_a_utf16_line_is_not_utf8(workdir, line):
    with scratch(workdir) as folder:
        path = one_line_corpus(folder, line)
        with pytest.raises(CorpusError, match="not UTF-8") as caught:
            build_index(path, folder / "out", backend="exact", language=LANGUAGE, progress=False)
        assert caught.value.line == 1


@pytest.mark.parametrize("title", ["0", "false", "[]", "{}", "0.0"])
def test_regression_a_falsy_non_string_title_is_refused_like_any_other(workdir, title):
    with scratch(workdir) as folder:
        path = one_line_corpus(folder, b'{"_id": "a", "text": "x", "title": %s}' % title.encode())
        with pytest.raises(CorpusError, match="field 'title' must be a string"):
            build_index(path, folder / "out", backend="exact", language=LANGUAGE, progress=False)


@pytest.mark.parametrize("value", ["null", "true", "[1]", '{"a": 1}'])
def test_regression_the_id_type_error_suggests_quotes_only_for_numbers(workdir, value):
    with scratch(workdir) as folder:
        path = one_line_corpus(folder, b'{"_id": %s, "text": "x"}' % value.encode())
        with pytest.raises(CorpusError, match="id field '_id' must be a string") as caught:
            build_index(path, folder / "out", backend="exact", language=LANGUAGE, progress=False)
        # 'write it as "None"' (or "True", "[1]", "{'a': 1}") is no advice for these
        assert "write it as" not in caught.value.problem, caught.value.problem


def test_regression_upsert_refuses_lone_surrogates(workdir, base_index):
    with scratch(workdir) as folder:
        index = copy_of(base_index, folder)
        before = snapshot(index)
        with IndexWriter.open(index) as writer, pytest.raises(InvalidParameter, match="document 0"):
            writer.upsert([Document("new", "x\ud800y")])
        assert snapshot(index) == before


def test_regression_upsert_refuses_metadata_keys_that_are_not_strings(workdir, base_index):
    with scratch(workdir) as folder:
        index = copy_of(base_index, folder)
        with IndexWriter.open(index) as writer, pytest.raises(InvalidParameter, match="document 0"):
            # stored as {"1": "a"} today: the key comes back as another type, or collides
            writer.upsert([Document("new", "text", "", {1: "a", "1": "b"})])


def test_regression_add_skip_invalid_reports_the_skipped_lines(workdir, base_index):
    with scratch(workdir) as folder:
        index = copy_of(base_index, folder)
        path = folder / "new.jsonl"
        path.write_text('{"_id": "n1", "text": "fine"}\nnot json\n{"_id": "n2"}\n')
        with IndexWriter.open(index) as writer:
            report = writer.add_corpus(path, skip_invalid=True)
        assert report.added == 1
        # build_index reports skipped lines; add_corpus(skip_invalid=True) drops them silently
        assert getattr(report, "skipped_count", None) == 2
        assert [s.line for s in getattr(report, "skipped", [])] == [2, 3]
