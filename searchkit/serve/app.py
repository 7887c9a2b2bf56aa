# ruff: noqa: I002 - FastAPI reads the endpoints' annotations at run time, and they name
# request models built per app (the limits are the app's), which postponed annotations hide.
"""``searchkit serve``: an HTTP API over one index (FastAPI on uvicorn).

Endpoints: ``POST /search``, ``POST /search/batch``, ``GET /info``, ``GET /health`` (liveness),
``GET /ready`` (models loaded), ``POST /documents`` (upsert) and ``POST /documents/delete``; the
spec is at ``/openapi.json``. Every error is ``{"detail": "..."}``: 422 for a request that breaks
a limit or a rule (validation, ``InvalidParameter``, ``FilterError``), 413 for a body over the
limit, 415 for a body that is not JSON, 409 when another writer holds the index, 503 when the
models cannot load (requests wait while they load), 500 for a broken index. The work is done
by ``searchkit.serve.service``.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from searchkit.errors import IndexLocked, InvalidParameter, ModelUnavailable, SearchkitError

try:
    import uvicorn
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ImportError as err:  # the optional extra
    raise SearchkitError(
        f"searchkit serve needs {err.name}: pip install 'searchkit[serve]'"
    ) from None

from searchkit._version import __version__
from searchkit.ingest.writer import CommitReport
from searchkit.models import Document
from searchkit.options import SearchOptions
from searchkit.serve.schemas import (
    BatchResult,
    CommitResult,
    Error,
    Info,
    Limits,
    SearchResult,
    Status,
    request_models,
)
from searchkit.serve.service import ServerConfig, Service

STATUS = ((IndexLocked, 409), (InvalidParameter, 422), (ModelUnavailable, 503))


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Error} for code in codes}


READ_ERRORS = _errors(400, 413, 415, 422, 500, 503)  # 400: a body FastAPI cannot decode
WRITE_ERRORS = _errors(400, 409, 413, 415, 422, 500, 503)


def create_app(
    index_path: str | Path,
    *,
    config: ServerConfig | None = None,
    reranker: str | None = None,
    verify: bool = True,
    query_runtime: str | None = None,
    reranker_runtime: str | None = None,
) -> FastAPI:
    """The FastAPI app serving the index at ``index_path``.

    The index is opened and checked here, so a missing or broken one fails before serving; the
    models load in the background once the app starts (``GET /ready`` says when).

    Example::

        app = create_app("indexes/docs", config=ServerConfig(batch_window_ms=0))
        uvicorn.run(app, host="127.0.0.1", port=8000)
    """
    config = config or ServerConfig()
    service = Service(
        index_path,
        config,
        reranker=reranker,
        verify=verify,
        query_runtime=query_runtime,
        reranker_runtime=reranker_runtime,
    )
    models = request_models(config.limits, service.search_params)
    SearchRequest, BatchRequest = models["SearchRequest"], models["BatchRequest"]
    UpsertRequest, DeleteRequest = models["UpsertRequest"], models["DeleteRequest"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        await run_in_threadpool(service.stop)

    app = FastAPI(title="searchkit", version=__version__, lifespan=lifespan)
    app.state.service = service
    app.add_middleware(BodyLimit, limit=config.limits.max_body_bytes)
    _handle_errors(app, config.limits)

    @app.post("/search", response_model=SearchResult, responses=READ_ERRORS)
    def search(body: SearchRequest) -> dict[str, Any]:
        """The top ``k`` hits of one query (micro-batched with concurrent ones)."""
        k, where, options = _search_args(body, "query")
        return service.result(service.search(body.query, k, where, options))

    @app.post("/search/batch", response_model=BatchResult, responses=READ_ERRORS)
    def search_batch(body: BatchRequest) -> dict[str, Any]:
        """The hits of many queries with the same options, searched as one batch."""
        found = service.search_batch(body.queries, *_search_args(body, "queries"))
        return {"results": [service.result(hits) for hits in found]}

    @app.get("/info", response_model=Info)
    def info() -> dict[str, Any]:
        """The index version searched, live and deleted counts, manifest, limits, batching."""
        return service.info()

    @app.get("/health", response_model=Status)
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", response_model=Status, responses=_errors(503))
    def ready() -> dict[str, str]:
        """Readiness: the index is open and the models are loaded (503 until then)."""
        if not service.ready.is_set():
            raise HTTPException(503, "the models are still loading")
        service.wait_ready()  # raises if they failed to load
        return {"status": "ready"}

    @app.post("/documents", response_model=CommitResult, responses=WRITE_ERRORS)
    def upsert(body: UpsertRequest) -> dict[str, Any]:
        """Add new ids, replace changed documents, skip unchanged ones: one atomic commit."""
        docs = [Document(d.id, d.text, d.title, d.metadata) for d in body.documents]
        return _commit(service.write(lambda writer: writer.upsert(docs)))

    @app.post("/documents/delete", response_model=CommitResult, responses=WRITE_ERRORS)
    def delete(body: DeleteRequest) -> dict[str, Any]:
        """Delete documents by id (ids the index lacks are listed in ``missing``): one commit."""
        return _commit(service.write(lambda writer: writer.delete(body.ids)))

    return app


def _commit(report: CommitReport) -> dict[str, Any]:
    return {**asdict(report), "path": str(report.path), "missing": list(report.missing)}


def _search_args(body: Any, queries: str) -> tuple[int, Any, SearchOptions]:
    """A search request's k, filter and ``SearchOptions``."""
    options = body.model_dump(exclude={queries, "k", "where"})
    return body.k, body.where, SearchOptions(**options)


def _handle_errors(app: FastAPI, limits: Limits) -> None:
    """Every error as ``{"detail": message}``, with a status that says whose fault it is."""

    @app.exception_handler(SearchkitError)
    async def searchkit_error(request: Request, err: SearchkitError) -> JSONResponse:
        status = next((code for kind, code in STATUS if isinstance(err, kind)), 500)
        return JSONResponse({"detail": str(err)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        kind = request.headers.get("content-type", "")
        if "json" not in kind.split(";")[0]:
            detail = f"send the body as JSON with Content-Type: application/json, not {kind!r}"
            return JSONResponse({"detail": detail}, status_code=415)
        return JSONResponse({"detail": _describe(err.errors())}, status_code=422)


def _describe(errors: Any, shown: int = 5) -> str:
    """Pydantic's errors as one line: ``k: Input should be less than or equal to 100``."""
    problems = []
    for e in list(errors)[:shown]:
        if e["type"] == "json_invalid":
            problems.append(f"the body is not valid JSON: {e.get('ctx', {}).get('error', '')}")
            continue
        where = ".".join(str(part) for part in e["loc"][1:]) or "body"
        problems.append(f"{where}: {e['msg']}")
    return "; ".join(problems)


class BodyLimit:
    """413 for a request body over ``limit`` bytes, as JSON, whether or not it says its length.

    (FastAPI's own ``max_body_size`` answers a too-long Content-Length in plain text.)
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            return await self._too_large()(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # FastAPI passes an HTTPException from here on to its handler
                raise HTTPException(413, self.detail)
            return message

        return await self.app(scope, counted, send)

    @property
    def detail(self) -> str:
        return f"the request body is larger than the limit of {self.limit:,} bytes"

    def _too_large(self) -> JSONResponse:
        return JSONResponse({"detail": self.detail}, status_code=413)


def run(
    app: FastAPI,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Serve ``app`` with uvicorn until SIGINT or SIGTERM.

    On a signal uvicorn stops accepting connections and lets the requests in flight finish,
    writes included; then the app stops its batcher (see ``Service.stop``).
    """
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log)
