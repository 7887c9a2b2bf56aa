"""Sparse first stages stored in the index: BM25 (over an analyzer's terms) and SPLADE.

Chosen when the index is built (``lexical="bm25"|"splade"|"none"``) and recorded in the manifest
(``lexical``). Each segment stores its documents' terms in ``lexical.npz``: a CSC matrix with
one column per term and one row per segment row (``indptr``, ``rows``, ``values``), each row's
length, and for BM25 the segment's vocabulary (its terms joined by newlines, UTF-8). BM25 keeps
raw term counts; SPLADE the model's term weights over its fixed vocabulary.

BM25 text goes through the index's analyzer (``searchkit.analysis``: ``en``, ``zh``, ``cjk``),
recorded in the manifest (``lexical.analyzer``) and rebuilt for queries and upserts from it; a
user dictionary is copied into the index (``analysis/``) so the index stays self-contained.

BM25 statistics (document count, document frequencies, average length) are not baked into a
segment: they are computed at query time over the live documents of every segment. So a score
does not depend on how the index is split into segments (adds, compact) nor on deleted
documents, and with the ``en`` analyzer equals bm25s's (``method="lucene"``, k1=1.5, b=0.75,
English stopwords and Snowball stemmer) over the same live corpus. Lucene also uses index-wide
statistics, but counts deleted documents until a merge. A sharded index sums each shard's
``TermStats`` for a query's terms and scores every shard with the sums, so its scores equal
one index's over the same documents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from searchkit.analysis import Analyzer, analyzer_from_config, get_analyzer
from searchkit.defaults import DEFAULT_SPLADE
from searchkit.errors import InvalidParameter
from searchkit.index.sections import LexicalSection
from searchkit.models import Document

LEXICAL_KINDS = ("bm25", "splade", "none")
ANALYSIS = "analysis"  # the index's folder for analyzer files (a copied user dictionary)
BM25 = {"method": "lucene", "k1": 1.5, "b": 0.75, "stemmer": "english", "stopwords": "en"}

Terms = tuple[list[Any], np.ndarray]  # a query's terms (BM25 tokens or SPLADE columns), weights


def lexical_config(
    kind: str, splade_model: str = DEFAULT_SPLADE, analyzer: Analyzer | None = None
) -> LexicalSection | None:
    """The manifest's ``lexical`` entry for a first stage (None for ``none``); ``splade_model``
    is the model's canonical name (``searchkit.inference.resolve.canonical_name``), ``analyzer``
    BM25's text analyzer (default ``en``)."""
    if kind not in LEXICAL_KINDS:
        raise InvalidParameter(
            f"unknown lexical first stage {kind!r}; choose one of: {', '.join(LEXICAL_KINDS)}",
            param="lexical",
        )
    if kind == "none":
        return None
    if kind == "splade":
        return LexicalSection("splade", model=splade_model)
    config = (analyzer or get_analyzer("en")).config()
    settings = BM25 if config["name"] == "en" else {k: BM25[k] for k in ("method", "k1", "b")}
    return LexicalSection("bm25", **settings, analyzer=config)


def user_dict_path(config: LexicalSection) -> Path | None:
    """Where, relative to the index folder, its copy of the analyzer's user dictionary is
    (named by its sha256, so a rebuild in place never changes the file an older version
    names); None: the analyzer has none."""
    sha = (config.analyzer or {}).get("user_dict_sha256")
    return Path(ANALYSIS, f"user_dict-{sha[:16]}.txt") if sha else None


def index_analyzer(config: LexicalSection, root: Path) -> Analyzer:
    """The analyzer BM25 index ``root`` was built with (``en`` for indexes older than
    analyzers), its user dictionary read from the index's copy.

    Raises:
        IncompatibleIndex: another analyzer version, or the copied dictionary is missing.
    """
    relative = user_dict_path(config)
    return analyzer_from_config(config.analyzer, root / relative if relative else None)


def bm25_query_terms(query: str, analyzer: Analyzer) -> Terms:
    """A query's distinct terms and their weights (how often each occurs, as bm25s scores,
    unless the analyzer weighs its kinds of terms: ``Analyzer.query_terms``)."""
    terms = analyzer.query_terms(query)
    return list(terms), np.asarray(list(terms.values()), dtype=np.float64)


@dataclass(frozen=True)
class Postings:
    """One segment's terms as a CSC matrix: column c holds ``rows[indptr[c]:indptr[c + 1]]``
    with their ``values``; ``lengths`` has one entry per segment row."""

    indptr: np.ndarray
    rows: np.ndarray
    values: np.ndarray
    lengths: np.ndarray
    vocab: dict[str, int] | None  # BM25: term -> column; SPLADE: None (columns are model ids)

    def __len__(self) -> int:
        return len(self.lengths)

    @classmethod
    def load(cls, path: Path, kind: str) -> Postings:
        """Read ``path`` of a ``kind`` (bm25, splade) index; a BM25 segment whose documents
        hold no token has an empty vocabulary, not SPLADE's None."""
        with np.load(path, allow_pickle=False) as f:
            blob = f["vocab"].tobytes().decode("utf-8")
            vocab = {t: i for i, t in enumerate(blob.split("\n"))} if blob else {}
            return cls(
                f["indptr"], f["rows"], f["values"], f["lengths"], vocab if kind == "bm25" else None
            )

    def save(self, path: Path) -> None:
        terms = sorted(self.vocab, key=self.vocab.__getitem__) if self.vocab else []
        if any("\n" in t for t in terms):  # analyzers split on white space: never happens
            raise ValueError("a BM25 term holds a newline")
        blob = np.frombuffer("\n".join(terms).encode("utf-8"), dtype=np.uint8)
        with open(path, "wb") as f:
            np.savez(f, indptr=self.indptr, rows=self.rows, values=self.values,
                     lengths=self.lengths, vocab=blob)  # fmt: skip

    def columns(self, terms: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """The columns of ``terms`` this segment has, and the positions of those terms."""
        if self.vocab is None:
            cols = np.asarray(terms, dtype=np.int64)
            found = (cols >= 0) & (cols < len(self.indptr) - 1)
            return cols[found], np.flatnonzero(found)
        pairs = [(self.vocab[t], i) for i, t in enumerate(terms) if t in self.vocab]
        return np.asarray([c for c, _ in pairs], np.int64), np.asarray([i for _, i in pairs], int)

    def column(self, col: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.indptr[col], self.indptr[col + 1]
        return self.rows[lo:hi], self.values[lo:hi]


class PostingsBuilder:
    """Collects the terms of one segment's documents, block by block, into ``Postings``.

    Args:
        config: the manifest's ``lexical`` entry.
        splade: the SPLADE encoder (for ``kind: splade``).
        analyzer: BM25's analyzer (for ``kind: bm25``; ``index_analyzer`` of an index, so a
            user dictionary is read from the index's copy).
    """

    def __init__(
        self, config: LexicalSection, splade: Any = None, analyzer: Analyzer | None = None
    ) -> None:
        self.kind = config.kind
        self._splade = splade
        self._analyzer = analyzer
        self._vocab: dict[str, int] = {}
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._lengths: list[np.ndarray] = []
        self._rows = 0

    def add(self, docs: Sequence[Document]) -> None:
        texts = [d.passage() for d in docs]
        if self.kind == "bm25":
            rows, cols, values, lengths = self._bm25(texts)
        else:
            rows, cols, values = self._splade.encode_documents(texts)
            lengths = np.bincount(rows, minlength=len(texts))
        self._parts.append((rows + self._rows, cols, values))
        self._lengths.append(np.asarray(lengths, dtype=np.int32))
        self._rows += len(texts)

    def _bm25(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        vocab = self._vocab
        rows, cols, counts, lengths = [], [], [], []
        for row, doc in enumerate(self._analyzer.tokens(texts)):
            ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in doc), np.int64, len(doc))
            terms, n = np.unique(ids, return_counts=True)
            rows.append(np.full(len(terms), row, dtype=np.int64))
            cols.append(terms)
            counts.append(n)
            lengths.append(len(doc))
        return _joined(rows), _joined(cols), _joined(counts), lengths

    def build(self) -> Postings:
        rows, cols, values = (_joined([part[i] for part in self._parts]) for i in range(3))
        width = len(self._vocab) if self.kind == "bm25" else self._splade.vocab_size
        width = max(width, int(cols.max(initial=-1)) + 1)
        order = np.lexsort((rows, cols))
        indptr = np.zeros(width + 1, dtype=np.int64)
        np.cumsum(np.bincount(cols, minlength=width), out=indptr[1:])
        dtype = np.int32 if self.kind == "bm25" else np.float32
        lengths = np.concatenate(self._lengths or [np.empty(0, np.int32)])
        vocab = self._vocab if self.kind == "bm25" else None
        return Postings(indptr, rows[order].astype(np.int32), values[order].astype(dtype),
                        lengths, vocab)  # fmt: skip


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class TermStats:
    """BM25's statistics for one query's terms: live documents, their total length (in terms),
    and each term's document frequency. Added over the shards of an index, they are the whole
    index's."""

    documents: int
    length: int
    df: np.ndarray  # int64, one per query term

    def __add__(self, other: TermStats) -> TermStats:
        return TermStats(
            self.documents + other.documents, self.length + other.length, self.df + other.df
        )


class SparseRetriever:
    """The sparse first stage over the segments of one version.

    Args:
        config: the manifest's ``lexical`` entry.
        postings: each segment's postings.
        live: each segment's mask of live rows (None: all live).
    """

    def __init__(
        self,
        config: LexicalSection,
        postings: Sequence[Postings],
        live: Sequence[np.ndarray | None],
    ) -> None:
        self.config = config
        self.postings = list(postings)
        self.live = list(live)
        self.documents = sum(
            len(p) if m is None else int(m.sum()) for p, m in zip(postings, live, strict=True)
        )
        self.length = sum(
            int(p.lengths.sum() if m is None else p.lengths[m].sum())
            for p, m in zip(postings, live, strict=True)
        )

    def scores(self, terms: Terms, stats: TermStats | None = None) -> list[np.ndarray]:
        """Per segment, every row's score for one query's terms (0: no term matched); BM25
        weighs them by ``stats`` (default: this index's own, ``term_stats``)."""
        keys, weights = terms
        if self.config.kind != "bm25":
            return [self._segment(p, keys, weights, 0.0) for p in self.postings]
        stats = stats if stats is not None else self.term_stats(keys)
        weights = weights * _idf(stats)
        avg_length = stats.length / max(stats.documents, 1)
        return [self._segment(p, keys, weights, avg_length) for p in self.postings]

    def _segment(
        self, p: Postings, keys: Sequence[Any], weights: np.ndarray, avg_length: float
    ) -> np.ndarray:
        out = np.zeros(len(p), dtype=np.float32)
        cols, found = p.columns(keys)
        bm25 = self.config.kind == "bm25"
        k1, b = self.config.k1 or 0.0, self.config.b or 0.0
        for col, weight in zip(cols.tolist(), weights[found].tolist(), strict=True):
            rows, values = p.column(col)
            if bm25:  # Lucene's term frequency part, as bm25s method="lucene"
                norm = k1 * (1 - b + b * p.lengths[rows] / max(avg_length, 1e-9))
                values = values / (values + norm)
            out[rows] += weight * values
        return out

    def term_stats(self, tokens: Sequence[str]) -> TermStats:
        """The live documents, their total length and each token's document frequency."""
        df = np.zeros(len(tokens), dtype=np.int64)
        for p, live in zip(self.postings, self.live, strict=True):
            cols, found = p.columns(tokens)
            for col, i in zip(cols.tolist(), found.tolist(), strict=True):
                rows, _ = p.column(col)
                df[i] += len(rows) if live is None else int(np.count_nonzero(live[rows]))
        return TermStats(self.documents, self.length, df)


def score_bound(terms: Terms, stats: TermStats, k1: float) -> float:
    """The BM25 score of a document holding each of ``terms`` once at the average length, under
    ``stats``: the sum of each term's weight x idf x 1 / (1 + k1). A match of the whole query;
    longer documents score a little below it, repeated terms above. ``gated`` fusion's bound."""
    idf = np.asarray(terms[1], dtype=np.float64) * _idf(stats)
    return float(np.sum(idf) / (1 + k1))


def _idf(stats: TermStats) -> np.ndarray:
    """Lucene's idf of each token over the live documents: log(1 + (N - df + .5)/(df + .5))."""
    n = stats.documents
    return np.asarray([math.log(1 + (n - d + 0.5) / (d + 0.5)) for d in stats.df.tolist()])
