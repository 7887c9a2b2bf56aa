"""The typed sections of manifest.json: encoder, backend, lexical, chunking, merge, corpus.

Each section is a frozen dataclass read with ``from_dict`` and written with ``to_dict``, so
manifest.json keeps the JSON it always had. Keys this searchkit does not know (written by a
newer one) are kept in ``extra`` and written back unchanged, so a read/write round trip
never drops them. Optional fields that are None were absent from the JSON (older indexes)
and stay absent when written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from searchkit.errors import InvalidParameter

S = TypeVar("S", bound="_Section")


class _Section:
    """JSON in and out for a section dataclass; its ``extra`` field holds the unknown keys."""

    KEY: ClassVar[str]  # the section's key in manifest.json
    # fields absent from older manifests: None is not written
    OMIT_NONE: ClassVar[tuple[str, ...]] = ()
    extra: dict[str, Any]

    @classmethod
    def from_dict(cls: type[S], data: Mapping[str, Any]) -> S:
        """The section of a manifest's JSON object (``TypeError``, ``KeyError`` if malformed)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.KEY} is {type(data).__name__}, not a JSON object")
        names = {f.name for f in fields(cls)} - {"extra"}  # type: ignore[arg-type]
        missing = [f.name for f in _required(cls) if f.name not in data]
        if missing:
            raise KeyError(f"{cls.KEY}.{missing[0]}")
        known = {k: v for k, v in data.items() if k in names}
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        """The section as written in manifest.json (unknown keys read earlier included)."""
        out = dict(self.extra)
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name != "extra" and not (value is None and f.name in self.OMIT_NONE):
                out[f.name] = dict(value) if isinstance(value, dict) else value
        return out


def _required(cls: type) -> list[Any]:
    return [
        f
        for f in fields(cls)
        if f.default is MISSING and f.default_factory is MISSING and f.name != "extra"
    ]


@dataclass(frozen=True)
class EncoderSection(_Section):
    """The bi-encoder the vectors were made with; ``runtime``/``precision`` None: an index
    older than runtimes (torch fp32)."""

    KEY: ClassVar[str] = "encoder"
    OMIT_NONE: ClassVar[tuple[str, ...]] = ("runtime", "precision")

    name: str
    dim: int
    max_seq_length: int | None
    runtime: str | None = None
    precision: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class BackendSection(_Section):
    """The vector index: backend ``name`` (faiss, hnswlib, exact), ``kind`` and its resolved
    ``params``."""

    KEY: ClassVar[str] = "backend"

    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class LexicalSection(_Section):
    """The sparse first stage (``searchkit.index.lexical``): ``kind`` bm25 with its settings
    (method, k1, b; ``analyzer``: the text analyzer's ``config()``, None in indexes older than
    analyzers, which are ``en``; stemmer and stopwords of ``en``), or splade with its ``model``."""

    KEY: ClassVar[str] = "lexical"
    OMIT_NONE: ClassVar[tuple[str, ...]] = (
        "method", "k1", "b", "stemmer", "stopwords", "model", "analyzer",
    )  # fmt: skip

    kind: str
    method: str | None = None
    k1: float | None = None
    b: float | None = None
    stemmer: str | None = None
    stopwords: str | None = None
    model: str | None = None
    analyzer: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def settings(self) -> dict[str, Any]:
        """Everything but ``kind``, sorted by key (as ``searchkit info`` shows it)."""
        return {k: v for k, v in sorted(self.to_dict().items()) if k != "kind"}


@dataclass(frozen=True)
class ChunkingSection(_Section):
    """How documents were split into passages (``searchkit.ingest.chunking``): ``tokens`` per
    passage, ``overlap``; ``enabled`` False: one vector per document, cut to ``tokens``."""

    KEY: ClassVar[str] = "chunking"

    tokens: int
    overlap: int
    enabled: bool
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


MERGE_KINDS = ("tiered", "none")


@dataclass(frozen=True, kw_only=True)
class MergePolicy(_Section):
    """How the writer merges small segments after each commit (``searchkit.index.merge``).

    ``tiered``: segments are grouped in tiers by live documents (below ``floor_docs`` they
    count as ``floor_docs``; each tier ``max_merge_at_once`` times the one below); a tier
    holding more than ``segments_per_tier`` segments has its smallest (up to
    ``max_merge_at_once``) merged into one, never past ``max_segment_docs``; a segment whose
    deleted share exceeds ``deletes_pct`` percent is rewritten. ``none``: only ``compact``
    merges. Indexes older than merging read as the default (tiered).
    """

    KEY: ClassVar[str] = "merge"

    kind: str = "tiered"
    segments_per_tier: int = 2
    max_merge_at_once: int = 4
    floor_docs: int = 4
    max_segment_docs: int = 2_000_000
    deletes_pct: int = 30
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in MERGE_KINDS:
            raise InvalidParameter(
                f"unknown merge policy {self.kind!r}; choose one of: {', '.join(MERGE_KINDS)}",
                param="merge_policy",
            )
        least = {"segments_per_tier": 1, "max_merge_at_once": 2, "floor_docs": 1,
                 "max_segment_docs": 2, "deletes_pct": 0}  # fmt: skip
        for name, low in least.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidParameter(
                    f"{name} must be a whole number >= {low}, got {value!r}", param=name
                )
        if self.deletes_pct > 100:
            raise InvalidParameter(
                f"deletes_pct must be at most 100, got {self.deletes_pct}", param="deletes_pct"
            )


@dataclass(frozen=True)
class CorpusSection(_Section):
    """The corpus file the index was built from, its sha256 and the lines skipped."""

    KEY: ClassVar[str] = "corpus"

    path: str
    sha256: str
    skipped_lines: int
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


# manifest.json key -> section type
SECTIONS: dict[str, type[_Section]] = {
    s.KEY: s
    for s in (
        EncoderSection,
        BackendSection,
        LexicalSection,
        ChunkingSection,
        MergePolicy,
        CorpusSection,
    )
}
