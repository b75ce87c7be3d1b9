"""The ASGI application: the raw-ASGI webhook bridge in front, FastAPI for everything else.

`/collect/...` goes straight to `CollectEndpoint`; every other path goes to the FastAPI app
(management API, `/health`, `/metrics`, OpenAPI). Lifespan opens and closes storage.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from eventstitch import __version__
from eventstitch.auth import ensure_api_token, require_token
from eventstitch.columnar.behind import BEHIND
from eventstitch.columnar.refresher import Refresher
from eventstitch.config import PREFIX, Config, load_config
from eventstitch.console.routes import install as install_console
from eventstitch.context import AppContext
from eventstitch.errors import (
    EventstitchError,
    Overloaded,
    PayloadTooLarge,
    error_body,
    query_too_slow,
)
from eventstitch.heap import PAUSES, freeze_startup_objects
from eventstitch.identity.routes import router as profiles_router
from eventstitch.ingest.openapi import with_links
from eventstitch.ingest.routes import (
    CLOSE_AFTER_500,
    COLLECT_PREFIX,
    TRACK_PATH,
    CollectEndpoint,
    Receive,
    Scope,
    Send,
    TrackEndpoint,
    UnknownRouteEndpoint,
    send_json,
)
from eventstitch.ingest.sdk_routes import SdkEndpoint, sdk_family
from eventstitch.ingest.wrong_routes import route_family
from eventstitch.metrics import UNKNOWN_ROUTES
from eventstitch.operations.routes import router as operations_router
from eventstitch.query.routes import router as query_router
from eventstitch.rejections.routes import router as rejections_router
from eventstitch.sources.routes import router as sources_router
from eventstitch.storage import open_storage
from eventstitch.storage.errors import QueryTimeout, QueueFull, StorageError, StorageUnavailable

log = logging.getLogger(__name__)


def _error(
    status: int,
    message: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(error_body(status, message, errors), status, headers, "application/json")


async def _domain_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, EventstitchError)
    return _error(exc.status, exc.message, exc.errors, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "request", "message": "invalid"}
    return _error(422, f"{first['field']}: {first['message']}", errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:  # no route: ingest-like paths never get here, see EventstitchApp
        UNKNOWN_ROUTES.labels("other").inc()
    if exc.status_code == 413:  # FastAPI's body limit, met while the body streamed in
        error = api_body_too_large(request.app.state.ctx.config.api_max_body_bytes)
        return _error(error.status, error.message, error.errors)
    message = "no such route" if exc.status_code == 404 else str(exc.detail)
    return _error(exc.status_code, message, None, dict(exc.headers or {}))


async def _storage_error(request: Request, exc: Exception) -> Response:
    """Storage errors that reach a route, mapped in this one place: unavailable storage or a
    full queue is a 503 with Retry-After, a stopped read the `query_timeout` answer."""
    config: Config = request.app.state.ctx.config
    retry = {"Retry-After": str(config.retry_after_seconds)}
    if isinstance(exc, QueryTimeout):
        return await _domain_error(request, query_too_slow(config.query_timeout_ms))
    if isinstance(exc, QueueFull):
        answer = Overloaded("the collector is at capacity; retry later", headers=retry)
        return await _domain_error(request, answer)
    if isinstance(exc, StorageUnavailable):
        answer = Overloaded(
            "storage is unavailable; retry later", reason="storage_unavailable", headers=retry
        )
        return await _domain_error(request, answer)
    return await _unexpected_error(request, exc)


async def _unexpected_error(_: Request, exc: Exception) -> Response:
    log.error("unexpected error", exc_info=exc)
    # The server closes the connection after a 500 from here (the exception goes on up to it),
    # so the answer says so: a keep-alive client then opens a new one instead of failing.
    return _error(500, "internal error", headers=dict(CLOSE_AFTER_500))


def api_body_too_large(limit: int) -> PayloadTooLarge:
    """The 413 of a management API or console request over its body limit."""
    return PayloadTooLarge(
        f"request body is larger than the limit of {limit} bytes ({PREFIX}API_MAX_BODY_BYTES)",
        errors=[{"field": "body", "limit": limit, "setting": f"{PREFIX}API_MAX_BODY_BYTES"}],
    )


def build_api(ctx: AppContext, api_token: str) -> FastAPI:
    """The FastAPI app for the management API, health and metrics."""
    api = FastAPI(
        title="Eventstitch",
        version=__version__,
        description="Self-hosted event collector. `/api` routes need `Authorization: Bearer`.",
        docs_url=None,  # served by the console from local files, so it works offline
        redoc_url=None,  # ReDoc loads its script from a CDN
        max_body_size=ctx.config.api_max_body_bytes,
    )
    api.state.ctx = ctx
    api.state.api_token = api_token
    guarded = [Depends(require_token)]
    api.include_router(sources_router, dependencies=guarded)
    api.include_router(query_router, dependencies=guarded)
    api.include_router(profiles_router, dependencies=guarded)
    api.include_router(rejections_router, dependencies=guarded)
    api.include_router(operations_router)
    install_console(api)
    api.add_exception_handler(EventstitchError, _domain_error)
    api.add_exception_handler(StorageError, _storage_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(StarletteHTTPException, _http_error)
    api.add_exception_handler(Exception, _unexpected_error)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title, version=api.version, description=api.description, routes=api.routes
            )
            api.openapi_schema = with_links(schema)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api


class EventstitchApp:
    """The ASGI callable that uvicorn serves."""

    def __init__(self, config: Config, *, server_process: bool = False) -> None:
        self.config = config
        self.server_process = server_process
        self.ctx = AppContext.build(config, open_storage(config))
        token, _ = ensure_api_token(config)
        self.api = build_api(self.ctx, token)
        self.collect = CollectEndpoint(self.ctx)
        self.track = TrackEndpoint(self.ctx)
        self.unknown = {
            family: UnknownRouteEndpoint(self.ctx, family) for family in ("collect", "track", "sdk")
        }
        # The SDK routes by exact path, ahead of the management API and its 404s.
        self.sdk = {family: SdkEndpoint(self.ctx, family) for family in ("segment", "posthog")}
        self.refresher = Refresher(self.ctx)

    async def startup(self) -> None:
        await self.ctx.storage.start()
        self.ctx.rejections.start()
        self.refresher.start()
        BEHIND.open()  # insights may leave segments to be read behind their answers
        if self.server_process:  # not in a test or a tool that hosts the app in its own heap
            frozen = freeze_startup_objects()
            PAUSES.install()  # the pauses of serving, not the start-up's own full collection
            log.debug("froze %d start-up objects out of the collector's full collections", frozen)

    async def shutdown(self) -> None:
        try:
            BEHIND.close()
            await self.refresher.close()
            await self.ctx.rejections.close()  # writes what waits, so storage must still be open
        finally:
            await self.ctx.storage.close()  # whatever failed before, connections are closed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(COLLECT_PREFIX):
            await self.collect(scope, receive, send)
        elif scope["type"] == "http" and scope["path"] == TRACK_PATH:
            await self.track(scope, receive, send)
        elif scope["type"] == "http" and (sdk := sdk_family(scope["path"])) is not None:
            await self.sdk[sdk](scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and (family := route_family(scope["path"])) != "other":
            await self.unknown[family](scope, receive, send)  # /collect, /track/..., SDK paths
        elif scope["type"] == "http" and self._declares_too_much(scope):
            error = api_body_too_large(self.config.api_max_body_bytes)
            await send_json(
                send, error.status, error_body(error.status, error.message, error.errors)
            )
        else:
            await self.api(scope, receive, send)

    def _declares_too_much(self, scope: Scope) -> bool:
        """A management or console request whose Content-Length is over its limit: answered
        at once, before any of it is read (FastAPI's own limit counts a streamed body)."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                return value.isdigit() and int(value) > self.config.api_max_body_bytes
        return False

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("storage failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(config: Config | None = None) -> EventstitchApp:
    """ASGI factory (`uvicorn --factory eventstitch.app:create_app`); settings from the env."""
    return EventstitchApp(config or load_config())


def create_server_app() -> EventstitchApp:
    """The factory `eventstitch serve` runs in each worker: the app of a process that serves
    it and nothing else, so its start-up objects are frozen out of the collector's sight
    (heap.py)."""
    return EventstitchApp(load_config(), server_process=True)
