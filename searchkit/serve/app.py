# ruff: noqa: I002 - FastAPI reads the endpoints' annotations at run time, and they name
# request models built per app (the limits are the app's), which postponed annotations hide.
"""``searchkit serve``: an HTTP API over one index or a folder of them (FastAPI on uvicorn).

One index (``searchkit serve INDEX``): ``POST /search``, ``POST /search/batch``, ``GET /info``,
``POST /documents`` (upsert) and ``POST /documents/delete``. A folder of indexes
(``searchkit serve FOLDER``): ``GET /indexes`` and the same routes under ``/indexes/{name}``.
Both: ``GET /health`` (liveness), ``GET /ready`` (models loaded), ``GET /metrics``
(Prometheus), ``GET /`` (the search page); the spec is at ``/openapi.json``.

With keys (:mod:`searchkit.serve.auth`) the search key reads (searches, info, the list) and the
admin key does everything (writes, metrics); the page, ``/health`` and ``/ready`` stay open.
Every error is ``{"detail": "..."}``: 401 without a right key, 403 for the search key on an
admin route, 404 for an unknown index, 422 for a request that breaks a limit or a rule
(validation, ``InvalidParameter``, ``FilterError``), 413 for a body over the limit, 415 for a
body that is not JSON, 409 when another writer holds the index, 503 when the models cannot load
(requests wait while they load) or the server is overloaded (with ``Retry-After``), 500 for a
broken index. The work is done by ``searchkit.serve.service``.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from searchkit.errors import (
    IndexLocked,
    IndexNotFound,
    InvalidParameter,
    ModelUnavailable,
    Overloaded,
    SearchkitError,
)

try:
    import uvicorn
    from fastapi import APIRouter, FastAPI, HTTPException, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from searchkit.serve.metrics import Metrics, RequestMetrics
    from searchkit.serve.routes import (
        TUNING,
        auth_for,
        index_routes,
        list_route,
        named,
        process_routes,
    )
except ImportError as err:  # the optional extra
    raise SearchkitError(
        f"searchkit serve needs {err.name}: pip install 'searchkit[serve]'"
    ) from None

from searchkit._version import __version__
from searchkit.serve.auth import Denied, Keys
from searchkit.serve.folder import Indexes
from searchkit.serve.service import ServerConfig
from searchkit.serve.shared import Shared

STATUS = (
    (IndexNotFound, 404), (IndexLocked, 409), (InvalidParameter, 422), (ModelUnavailable, 503),
    (Overloaded, 503),
)  # fmt: skip


def create_app(
    path: str | Path,
    *,
    config: ServerConfig | None = None,
    keys: Keys | None = None,
    folder: bool | None = None,
    reranker: str | None = None,
    verify: bool = True,
    query_runtime: str | None = None,
    reranker_runtime: str | None = None,
) -> FastAPI:
    """The FastAPI app serving the index at ``path``, or every index in the folder ``path``.

    ``folder`` defaults to whether ``path`` is a folder without a ``manifest.json``. A single
    index is opened and checked here, so a missing or broken one fails before serving; the
    models load in the background once the app starts (``GET /ready`` says when).

    Example::

        app = create_app("indexes/docs", config=ServerConfig(batch_window_ms=0))
        uvicorn.run(app, host="127.0.0.1", port=8000)
    """
    path, config, keys = Path(path), config or ServerConfig(), keys or Keys()
    if folder is None:
        folder = path.is_dir() and not (path / "manifest.json").is_file()
    metrics = Metrics(lambda: indexes.all())
    shared = Shared(metrics, workers=config.workers, max_queued=config.max_queued)
    indexes = Indexes(
        path, config, shared, folder=folder, reranker=reranker, verify=verify,
        query_runtime=query_runtime, reranker_runtime=reranker_runtime,
    )  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        indexes.start()
        yield
        await run_in_threadpool(indexes.stop)
        shared.close()

    app = FastAPI(title="searchkit", version=__version__, lifespan=lifespan)
    app.state.indexes = indexes
    app.add_middleware(BodyLimit, limit=config.limits.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)
    _handle_errors(app)
    auth = auth_for(keys)
    if folder:
        router = APIRouter(prefix="/indexes/{name}")
        index_routes(router, named(indexes), config.limits, TUNING, auth)
        app.include_router(router)
        list_route(app, indexes, auth)
    else:
        service = indexes.only()
        index_routes(app, lambda: lambda: service, config.limits, service.search_params, auth)
    process_routes(app, indexes, metrics, auth)
    return app


def _handle_errors(app: FastAPI) -> None:
    """Every error as ``{"detail": message}``, with a status that says whose fault it is."""

    @app.exception_handler(SearchkitError)
    async def searchkit_error(request: Request, err: SearchkitError) -> JSONResponse:
        status = next((code for kind, code in STATUS if isinstance(err, kind)), 500)
        headers = {"Retry-After": str(err.retry_after)} if isinstance(err, Overloaded) else None
        return JSONResponse({"detail": str(err)}, status_code=status, headers=headers)

    @app.exception_handler(Denied)
    async def denied(request: Request, err: Denied) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse({"detail": str(err)}, status_code=err.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        kind = request.headers.get("content-type", "")
        of_body = any(e["loc"][:1] == ("body",) for e in err.errors())
        if of_body and "json" not in kind.split(";")[0]:
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
