"""The request and response models of ``searchkit serve`` (pydantic), with the server's limits.

The limits live in :class:`Limits`; :func:`request_models` builds request models that enforce
them, so the OpenAPI spec states every bound a request must keep.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from searchkit.defaults import DEFAULT_K
from searchkit.models import Hit  # a dataclass: pydantic validates and documents it as is
from searchkit.options import BACKEND_OPTIONS, HYBRID_OPTIONS, NAMES, SearchOptions


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; larger requests get a 4xx naming the limit."""

    max_k: int = 100
    max_candidates: int = 200
    max_batch_queries: int = 64
    max_query_chars: int = 2048
    max_where_chars: int = 4096
    max_documents: int = 1000  # per upsert
    max_ids: int = 10_000  # per delete
    max_body_bytes: int = 1 << 20


class SearchResult(BaseModel):
    """The hits of one query; ``reranker`` is None when they are in retrieval order."""

    index: str
    reranker: str | None
    query: str
    reranked: bool
    mode: str
    candidates: int
    truncated: int
    early_exit: bool = False
    degraded: bool = False  # asked to rerank, answered in retrieval order: the reranker was busy
    hits: list[Hit]


class BatchResult(BaseModel):
    results: list[SearchResult]


class CommitResult(BaseModel):
    """What a change did (``searchkit add/delete --json``) and the index after it."""

    path: str
    version: int
    added: int
    replaced: int
    unchanged: int
    deleted: int
    missing: list[str]
    passages: int = 0  # vectors of the added and replaced documents
    chunked: int = 0  # of those, documents split into several passages
    truncated: int = 0  # of those, documents cut to what the encoder reads (--no-chunk)
    rewritten: int
    purged: int
    documents: int
    tombstones: int
    seconds: float


class Info(BaseModel):
    """``GET /info``: the index version the server searches, its counts and the limits."""

    name: str
    index: str
    searchkit_version: str
    version: int
    documents: int
    deleted: int
    ready: bool
    reranker: str
    limits: dict[str, int]
    batching: dict[str, float | int]
    manifest: dict[str, Any]


class IndexSummary(BaseModel):
    """One index of ``GET /indexes``."""

    name: str
    documents: int
    deleted: int
    version: int
    ready: bool


class IndexList(BaseModel):
    indexes: list[IndexSummary]


class Status(BaseModel):
    status: str


class Error(BaseModel):
    """Every 4xx and 5xx answer: what went wrong and what to do."""

    detail: str


DEGRADE_HELP = (
    "when the reranker is saturated, answer in retrieval order (degraded: true) instead of 503"
)
# request fields that are not SearchOptions
SERVER_FIELDS = ("k", "where", "degrade")


class Strict(BaseModel):
    # a misspelt option is an error, not ignored; "rerank": 0 is not a boolean, as the spec says
    model_config = ConfigDict(extra="forbid", strict=True)


def option_fields(limits: Limits, offered: Collection[str]) -> dict[str, Any]:
    """Pydantic fields of the ``SearchOptions`` in ``offered``, from the dataclass: its
    defaults, bounds, choices and help texts (``candidates`` capped by ``limits``)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(SearchOptions):
        if f.name not in offered:
            continue
        meta = f.metadata
        bounds = {key: meta[key] for key in ("ge", "le") if key in meta}
        if f.name == "candidates":
            bounds["le"] = limits.max_candidates
        kind: Any = {"bool": bool, "int": int, "float": float, "str": str}[
            str(f.type).split(" |")[0]
        ]
        if "choices" in meta:
            kind = Literal[meta["choices"]]  # type: ignore[valid-type]
        if kind is float:
            bounds["allow_inf_nan"] = False
        if f.default is None:
            kind = kind | None
        out[f.name] = (kind, Field(f.default, description=meta["help"], **bounds))
    return out


def request_models(
    limits: Limits, search_params: Collection[str] = ()
) -> dict[str, type[BaseModel]]:
    """SearchRequest, BatchRequest, UpsertRequest and DeleteRequest bounded by ``limits``.

    The search options are ``SearchOptions``' fields: those every index takes, plus
    ``search_params``: the query-time options of the index's backend (``ef_search`` for HNSW,
    ``nprobe`` for IVF, ``rescore`` for compact vectors) and, for an index with lexical data,
    ``HYBRID_OPTIONS``; the others are left out, so the spec offers only what applies.
    """
    query = Annotated[str, Field(min_length=1, max_length=limits.max_query_chars)]
    where = Annotated[
        Annotated[str, Field(max_length=limits.max_where_chars)] | dict[str, Any] | None,
        Field(
            description="metadata filter: 'year >= 2020 and source = \"pubmed\"' or "
            '{"source": "pubmed", "year": {">=": 2020}} (see searchkit.query.filters)',
        ),
    ]
    tuning = set(BACKEND_OPTIONS) | set(HYBRID_OPTIONS)
    offered = {n for n in NAMES if n not in tuning or n in search_params}
    options: dict[str, Any] = {
        "k": (int, Field(DEFAULT_K, ge=1, le=limits.max_k, description="hits to return")),
        "where": (where, None),
        "degrade": (bool, Field(False, description=DEGRADE_HELP)),
        **option_fields(limits, offered),
    }
    document = create_model(
        "DocumentIn",
        __base__=Strict,
        id=(str, Field(min_length=1, max_length=1024)),
        text=(str, Field(min_length=1)),
        title=(str, ""),
        metadata=(dict[str, Any], Field(default_factory=dict)),
    )
    return {
        "SearchRequest": create_model(
            "SearchRequest", __base__=Strict, query=(query, ...), **options
        ),
        "BatchRequest": create_model(
            "BatchRequest",
            __base__=Strict,
            queries=(list[query], Field(min_length=1, max_length=limits.max_batch_queries)),
            **options,
        ),
        "UpsertRequest": create_model(
            "UpsertRequest",
            __base__=Strict,
            documents=(list[document], Field(min_length=1, max_length=limits.max_documents)),
        ),
        "DeleteRequest": create_model(
            "DeleteRequest",
            __base__=Strict,
            ids=(
                list[Annotated[str, Field(min_length=1, max_length=1024)]],
                Field(min_length=1, max_length=limits.max_ids),
            ),
        ),
    }
