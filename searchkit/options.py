"""``SearchOptions``: every knob of one search, validated in one place.

One frozen, hashable dataclass carries the options of ``Searcher.search``; the CLI's flags, the
HTTP request models, ``evaluate`` and the server's micro-batch key are all derived from it, so a
new knob is added here once. Each field's metadata holds its help text and bounds (``ge``,
``le``, ``choices``), which the CLI and the HTTP schemas read.

Example::

    from searchkit import SearchOptions

    fast = SearchOptions(rerank=False, mode="dense", ef_search=32)
    hits = searcher.search("how do vaccines work", k=5, options=fast)
    hits = searcher.search("how do vaccines work", options=fast, mode="hybrid")  # one override
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from searchkit.defaults import (
    DEFAULT_CANDIDATES,
    DEFAULT_FUSION,
    DEFAULT_RERANK_WEIGHT,
    DEFAULT_RRF_K,
    DEFAULT_WEIGHT,
)
from searchkit.errors import InvalidParameter

__all__ = ["FUSIONS", "MODES", "SearchOptions"]

MODES = ("dense", "lexical", "hybrid")
FUSIONS = ("gated", "weighted", "dbsf", "rrf")
# the options the vector backends read at query time (searchkit.backends.base.SEARCH_PARAMS)
BACKEND_OPTIONS = ("ef_search", "nprobe", "rescore")
# the options that only apply to an index with lexical data
HYBRID_OPTIONS = ("mode", "fusion", "rrf_k", "weight")


def _knob(default: Any, help: str, **bounds: Any) -> Any:
    return field(default=default, metadata={"help": help, **bounds})


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """How one search runs: first stage, fusion, backend breadth and rerank.

    Every field has a default; ``None`` means "the index's own" (``mode``: hybrid when the index
    has lexical data, else dense; ``ef_search``/``nprobe``/``rescore``: the values it was built
    with). Invalid values raise ``InvalidParameter`` naming the field.
    """

    rerank: bool = _knob(True, "Rerank the top candidates with the CrossEncoder.")
    candidates: int = _knob(DEFAULT_CANDIDATES, "Retrieved hits the reranker scores.", ge=1)
    mode: str | None = _knob(
        None,
        "First stage: dense, lexical or hybrid (default: hybrid when the index has lexical data).",
        choices=MODES,
    )
    fusion: str = _knob(
        DEFAULT_FUSION, "How hybrid fuses: gated, weighted, dbsf or rrf.", choices=FUSIONS
    )
    rrf_k: float = _knob(DEFAULT_RRF_K, "k of reciprocal rank fusion.", ge=0, le=10_000)
    weight: float = _knob(
        DEFAULT_WEIGHT, "Dense share of gated, weighted and dbsf fusion, 0 to 1.", ge=0, le=1
    )
    ef_search: int | None = _knob(None, "HNSW search breadth (hnsw indexes).", ge=1, le=10_000)
    nprobe: int | None = _knob(
        None, "IVF lists to visit per query (ivf indexes).", ge=1, le=100_000
    )
    rescore: int | None = _knob(
        None, "Candidates rescored with float vectors (sq8, binary kinds; 0: off).", ge=0, le=10_000
    )
    rerank_margin: float | None = _knob(
        None,
        "Early exit: skip the rerank when the first stage's top hit leads the next by this "
        "much (its own score units; default: always rerank).",
        ge=0,
    )
    rerank_weight: float = _knob(
        DEFAULT_RERANK_WEIGHT,
        "Reranker's share when fusing its scores with the first stage's (min-max normalized); "
        "1: rerank order alone.",
        ge=0,
        le=1,
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check(f, getattr(self, f.name))

    def replace(self, **overrides: Any) -> SearchOptions:
        """A copy with ``overrides`` applied (checked: an unknown name is an error)."""
        if unknown := sorted(set(overrides) - set(NAMES)):
            raise InvalidParameter(
                f"unknown search option {unknown[0]!r}; the options are: {', '.join(NAMES)}",
                param=unknown[0],
            )
        return dataclasses.replace(self, **overrides) if overrides else self

    @property
    def backend_options(self) -> dict[str, int]:
        """The vector backend's per-query overrides that are set (``ef_search``, ...)."""
        return {n: getattr(self, n) for n in BACKEND_OPTIONS if getattr(self, n) is not None}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


NAMES = tuple(f.name for f in dataclasses.fields(SearchOptions))


def _check(f: dataclasses.Field[Any], value: Any) -> None:
    """Raise ``InvalidParameter`` unless ``value`` fits field ``f``'s type and bounds."""
    name, meta = f.name, f.metadata
    if value is None and f.default is None:
        return
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    if "bool" in kind:
        ok = isinstance(value, bool)
    elif "int" in kind:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif "float" in kind:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise InvalidParameter(f"{name} must be {kind.split(' |')[0]}, got {value!r}", param=name)
    if "choices" in meta and value not in meta["choices"]:
        raise InvalidParameter(
            f"unknown {name} {value!r}; choose one of: {', '.join(meta['choices'])}", param=name
        )
    low, high = meta.get("ge"), meta.get("le")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"in [{low}, {high}]" if high is not None else f"at least {low}"
        raise InvalidParameter(f"{name} must be {span}, got {value}", param=name)
