# ruff: noqa: I002 - FastAPI reads the endpoints' annotations at run time, and they name
# request models built per app (the limits are the app's), which postponed annotations hide.
"""The routes of ``searchkit serve`` (see ``searchkit.serve.app``): those of one index (at the
root, or under ``/indexes/{name}`` for a folder), the index list, and the process's own
(health, readiness, metrics, the search page), each with its key check."""

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles

from searchkit.errors import InvalidParameter
from searchkit.ingest.writer import CommitReport
from searchkit.models import Document
from searchkit.options import BACKEND_OPTIONS, HYBRID_OPTIONS, SearchOptions
from searchkit.serve.auth import Keys, Role
from searchkit.serve.folder import NAME_PATTERN, Indexes
from searchkit.serve.metrics import Metrics
from searchkit.serve.schemas import (
    SERVER_FIELDS,
    BatchResult,
    CommitResult,
    Error,
    IndexList,
    Info,
    Limits,
    SearchResult,
    Status,
    request_models,
)
from searchkit.serve.service import Service

STATIC = Path(__file__).with_name("static")
TUNING = frozenset(BACKEND_OPTIONS) | frozenset(HYBRID_OPTIONS)
Finder = Callable[..., Callable[[], Service]]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Error} for code in codes}


Auth = Callable[[Role], dict[str, Any]]


def auth_for(keys: Keys) -> Auth:
    """Route options for a role: the key check, and its 401/403 in the spec (with keys)."""
    if not keys.enabled:
        return lambda role: {}
    bearer = HTTPBearer(auto_error=False, description="the search key or the admin key")

    def needs(role: Role) -> dict[str, Any]:
        def check(request: Request, _: Annotated[Any, Depends(bearer)]) -> None:
            keys.check(request.headers.get("authorization"), role)

        codes = (401, 403) if role == "admin" else (401,)
        return {"dependencies": [Depends(check)], "responses": errors(*codes)}

    return needs


def _guarded(auth: Auth, role: Role, responses: dict[int | str, Any]) -> dict[str, Any]:
    """A route's options: ``responses`` in the spec, and the key check for ``role``."""
    options = auth(role)
    return {**options, "responses": {**responses, **options.get("responses", {})}}


def named(indexes: Indexes) -> Finder:
    """The dependency of a folder's routes: the index named in the path (looked up when the
    route calls it, so an invalid body is a 422 whether or not the index exists)."""

    def finder(name: Annotated[str, PathParam(pattern=NAME_PATTERN)]) -> Callable[[], Service]:
        return lambda: indexes.get(name)

    return finder


def index_routes(
    routes: APIRouter | FastAPI,
    finder: Finder,
    limits: Limits,
    offered: frozenset[str] | set[str],
    auth: Auth,
) -> None:
    """The search, info and write routes of one index; ``finder`` finds it (a FastAPI
    dependency), ``offered`` are the tuning options the spec offers (all, for a folder)."""
    models = request_models(limits, offered)
    SearchRequest, BatchRequest = models["SearchRequest"], models["BatchRequest"]
    UpsertRequest, DeleteRequest = models["UpsertRequest"], models["DeleteRequest"]
    Served = Annotated[Callable[[], Service], Depends(finder)]
    missing = errors(404) if isinstance(routes, APIRouter) else {}  # an unknown index
    read_errors = {**errors(400, 413, 415, 422, 500, 503), **missing}  # 400: undecodable body
    write_errors = {**read_errors, **errors(409)}

    def route(role: Role, errors: dict[int | str, Any]) -> dict[str, Any]:
        return _guarded(auth, role, errors)

    @routes.post("/search", response_model=SearchResult, **route("search", read_errors))
    def search(body: SearchRequest, find: Served) -> dict[str, Any]:
        """The top ``k`` hits of one query (micro-batched with concurrent ones)."""
        service = find()
        k, where, options = _search_args(body, "query", service)
        hits, degraded = service.search(body.query, k, where, options, degrade=body.degrade)
        return {**service.result(hits), "degraded": degraded}

    @routes.post("/search/batch", response_model=BatchResult, **route("search", read_errors))
    def search_batch(body: BatchRequest, find: Served) -> dict[str, Any]:
        """The hits of many queries with the same options, searched as one batch."""
        service = find()
        args = _search_args(body, "queries", service)
        found, degraded = service.search_batch(body.queries, *args, degrade=body.degrade)
        return {"results": [{**service.result(hits), "degraded": degraded} for hits in found]}

    @routes.get("/info", response_model=Info, **route("search", errors(422, 500) | missing))
    def info(find: Served) -> dict[str, Any]:
        """The index version searched, live and deleted counts, manifest, limits, batching."""
        return find().info()

    @routes.post("/documents", response_model=CommitResult, **route("admin", write_errors))
    def upsert(body: UpsertRequest, find: Served) -> dict[str, Any]:
        """Add new ids, replace changed documents, skip unchanged ones: one atomic commit."""
        docs = [Document(d.id, d.text, d.title, d.metadata) for d in body.documents]
        return _commit(find().write(lambda writer: writer.upsert(docs)))

    @routes.post("/documents/delete", response_model=CommitResult, **route("admin", write_errors))
    def delete(body: DeleteRequest, find: Served) -> dict[str, Any]:
        """Delete documents by id (ids the index lacks are listed in ``missing``): one commit."""
        return _commit(find().write(lambda writer: writer.delete(body.ids)))


def list_route(app: FastAPI, indexes: Indexes, auth: Auth) -> None:
    @app.get("/indexes", response_model=IndexList, **_guarded(auth, "search", {}))
    def list_indexes() -> dict[str, Any]:
        """Every index in the folder (scanned now): name, counts, version, readiness."""
        indexes.scan()
        summaries = []
        for service in indexes.all():
            documents, deleted, version = service.counts()
            summaries.append({
                "name": service.name, "documents": documents, "deleted": deleted,
                "version": version, "ready": service.is_ready,
            })  # fmt: skip
        return {"indexes": sorted(summaries, key=lambda s: s["name"])}


def process_routes(app: FastAPI, indexes: Indexes, metrics: Metrics, auth: Auth) -> None:
    """Health, readiness, metrics and the search page: the routes of the process."""

    @app.get("/health", response_model=Status)
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", response_model=Status, responses=errors(503))
    def ready() -> dict[str, str]:
        """Readiness: the indexes are open and their models loaded (503 until then)."""
        for service in indexes.all():
            if not service.ready.is_set():
                raise HTTPException(503, f"the models of {service.name!r} are still loading")
            service.wait_ready()  # raises if they failed to load
        return {"status": "ready"}

    text = {200: {"content": {"text/plain": {}}, "description": "Prometheus' text format"}}

    @app.get("/metrics", response_class=Response, **_guarded(auth, "admin", text))
    def metrics_text() -> Response:
        """Prometheus metrics (``searchkit_*``): requests, latencies per stage, queue depth,
        batch sizes, documents per index, model load time."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _commit(report: CommitReport) -> dict[str, Any]:
    return {**asdict(report), "path": str(report.path), "missing": list(report.missing)}


def _search_args(body: Any, queries: str, service: Service) -> tuple[int, Any, SearchOptions]:
    """A search request's k, filter and ``SearchOptions``; tuning options the index does not
    take (a folder's spec offers all of them) are a 422 naming them."""
    unused = sorted((body.model_fields_set & TUNING) - service.search_params)
    if unused:
        raise InvalidParameter(
            f"{', '.join(unused)}: index {service.name!r} does not take "
            f"{'it' if len(unused) == 1 else 'them'} (it takes: "
            f"{', '.join(sorted(service.search_params)) or 'none'})"
        )
    options = body.model_dump(exclude={queries, *SERVER_FIELDS, *(TUNING - service.search_params)})
    return body.k, body.where, SearchOptions(**options)
