"""The webhook bridge on raw ASGI: `/collect/{event_type}/{source_id}`.

The hot path skips the web framework: read the body (with its limit), call the ingest service,
write a small JSON answer. Measured in docs/benchmarks.md against a no-op on the same stack.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from eventstitch import metrics
from eventstitch.context import AppContext
from eventstitch.errors import (
    EventstitchError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    clip,
    error_body,
)
from eventstitch.ingest import handshakes, service
from eventstitch.ingest.answers import collect_answer, track_answer
from eventstitch.ingest.encodings import decode, encoding_of, too_large
from eventstitch.ingest.handshakes import Reply
from eventstitch.ingest.parsing import COLLECT_PREFIX as COLLECT_PREFIX
from eventstitch.ingest.parsing import split_collect_path
from eventstitch.ingest.schemas import RawRequest, WebhookRequest
from eventstitch.ingest.wrong_routes import refusal
from eventstitch.rejections import capture
from eventstitch.rejections.capture import DECODED_FROM, REFUSED_BODY

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger(__name__)

_CONTENT_TYPE_JSON = (b"content-type", b"application/json")
# Every 500 closes its connection and says so: after an unexpected failure the connection's
# state is not trusted, and a keep-alive client told nothing would fail on its next request.
CLOSE_AFTER_500 = {"Connection": "close"}


class ClientGone(Exception):
    """The client disconnected before its body arrived; there is nobody to answer."""


async def read_body(receive: Receive, headers: list[tuple[bytes, bytes]], limit: int) -> bytes:
    """The whole request body, refusing with 413 as soon as it is known to exceed `limit`."""
    for name, value in headers:
        if name == b"content-length" and _declares_over(value, limit):
            raise too_large(limit)
    return await _receive_body(receive, limit)


def _declares_over(content_length: bytes, limit: int) -> bool:
    """Whether a `Content-Length` value announces more than `limit` bytes."""
    return content_length.isdigit() and int(content_length) > limit


async def _receive_body(receive: Receive, limit: int) -> bytes:
    """The body's messages joined, refusing with 413 once they exceed `limit`."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if len(body) > limit:
        raise too_large(limit)
    if not message.get("more_body", False):
        return body  # the common case: the whole body in one message
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_json(
    send: Send, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    response = [_CONTENT_TYPE_JSON, (b"content-length", b"%d" % len(body))]
    if headers:
        response += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": response})
    await send({"type": "http.response.body", "body": body})


async def send_reply(send: Send, reply: Reply) -> None:
    """A handshake's answer, in the content type its sender expects."""
    headers = [
        (b"content-type", reply.content_type.encode("latin-1")),
        (b"content-length", b"%d" % len(reply.body)),
        (b"x-content-type-options", b"nosniff"),  # an echoed challenge is never run as HTML
    ]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def send_error(
    send: Send, error: EventstitchError, render: Callable[[EventstitchError], bytes] | None = None
) -> None:
    """Answer a refusal, counted by reason: in the one error shape, or as `render` writes it
    (the SDK routes answer in the shape their SDKs read)."""
    metrics.EVENTS_REJECTED.labels(error.reason).inc()
    body = render(error) if render else error_body(error.status, error.message, error.errors)
    await send_json(send, error.status, body, error.headers)


def one_error_shape(error: EventstitchError) -> bytes:
    return error_body(error.status, error.message, error.errors)


async def read_decoded_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body with its `Content-Encoding` undone, the limit holding for the bytes
    sent and for the decoded ones (415 for a coding not supported, before reading). A body
    that does not decode is left in the scope as sent, for the rejection record."""
    declared: list[str] = []
    over = False
    for name, value in scope["headers"]:  # one pass for both headers
        if name == b"content-length":
            over = over or _declares_over(value, limit)
        elif name == b"content-encoding":
            declared.append(value.decode("latin-1"))
    encoding = encoding_of(", ".join(declared)) if declared else None  # 415 first
    if over:
        raise too_large(limit)
    body = await _receive_body(receive, limit)
    if encoding is None or not body:
        return body
    try:
        decoded = decode(body, encoding, limit)
    except EventstitchError:
        scope[REFUSED_BODY] = body
        raise
    scope[DECODED_FROM] = encoding
    return decoded


def posted_request(scope: Scope, body: bytes) -> RawRequest:
    """A POST to a route that reads a JSON body (`/track`, the SDK routes), as its service
    takes it: the body already read, nothing parsed."""
    client = scope.get("client")
    return RawRequest(
        method="POST",
        body=body,
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=scope["headers"],
        client=client[0] if client else None,
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    """`send`, adding `extra` headers to the response start."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


class IngestEndpoint:
    """What every ingest route does around its own work: time it, turn refusals into the
    error shape (counted by reason), answer 500 without leaking anything, count acceptances."""

    route = ""
    methods = "POST"

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._stats = metrics.INGEST.route(self.route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        if self.ctx.config.cors_origins:
            origin = _header(scope, b"origin")
            if origin is not None:
                if scope["method"] == "OPTIONS":
                    await self._preflight(scope, send, origin)
                    return
                if self._allows(origin):
                    send = _with_headers(send, _cors_headers(origin))
        try:
            answer, accepted = await self.handle(scope, receive)
        except EventstitchError as error:
            await send_error(send, error, self.render_error)
            capture.keep(ctx=self.ctx, route=self.route, scope=scope, error=error)
            return
        except ClientGone:
            return
        except Exception:
            log.exception("unexpected failure on %s", scope.get("path"))
            metrics.EVENTS_REJECTED.labels("internal_error").inc()
            body = error_body(500, "internal error; nothing was stored")
            await send_json(send, 500, body, CLOSE_AFTER_500)
            return
        self._stats.record(accepted, time.perf_counter() - started)
        if isinstance(answer, Reply):
            await send_reply(send, answer)
            return
        await send_json(send, 200, orjson.dumps(answer))

    def render_error(self, error: EventstitchError) -> bytes:
        """A refusal's body: the one error shape, unless a route's clients read another."""
        return one_error_shape(error)

    def _allows(self, origin: str) -> bool:
        origins = self.ctx.config.cors_origins
        return "*" in origins or origin in origins

    async def _preflight(self, scope: Scope, send: Send, origin: str) -> None:
        """Answer a browser's CORS preflight: allowed origins get the methods and headers."""
        if not self._allows(origin):
            await send_error(
                send,
                Forbidden(
                    f"origin {clip(origin, 80)!r} may not send events here",
                    errors=[{"field": "origin", "value": clip(origin, 80)}],
                    reason="cors_origin",
                ),
            )
            return
        asked = _header(scope, b"access-control-request-headers") or "content-type"
        headers = [
            *_cors_headers(origin),
            (b"access-control-allow-methods", self.methods.encode()),
            (b"access-control-allow-headers", asked.encode("latin-1")),
            (b"access-control-max-age", b"600"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def handle(self, scope: Scope, receive: Receive) -> tuple[dict[str, Any] | Reply, int]:
        """The answer to send and how many events were stored; raise to refuse."""
        raise NotImplementedError


class CollectEndpoint(IngestEndpoint):
    """The webhook bridge; POST reads the body, GET the query string."""

    route = "collect"
    methods = "POST, GET"

    async def handle(self, scope: Scope, receive: Receive) -> tuple[dict[str, Any] | Reply, int]:
        try:
            event_type, source_id = split_collect_path(scope["path"])
        except NotFound:
            raise await refuse_unknown_route(scope, receive, self.ctx, "collect") from None
        method = scope["method"]
        if method not in ("POST", "GET"):
            raise MethodNotAllowed(
                f"method {method} is not allowed here; use POST (body) or GET (query string)",
                headers={"Allow": "GET, POST"},
            )
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        body = (
            b""
            if method == "GET"
            else await read_decoded_body(scope, receive, self.ctx.config.max_body_bytes)
        )
        client = scope.get("client")
        request = WebhookRequest(
            method=method,
            event_type=event_type,
            source_id=source_id,
            body=body,
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            client=client[0] if client else None,
        )
        try:
            handshake = handshakes.recognise(request)
            if handshake is not None:
                return await service.answer_handshake(
                    ctx=self.ctx, request=request, handshake=handshake[0], values=handshake[1]
                ), 0
            collected = await service.collect(ctx=self.ctx, request=request)
        except EventstitchError as error:
            if error.kept_body is None:
                scope[REFUSED_BODY] = body
            else:  # the source's redactions applied: kept as JSON, and said so
                scope[REFUSED_BODY] = error.kept_body
                scope["headers"] = [
                    *((k, v) for k, v in headers if k != b"content-type"),
                    _CONTENT_TYPE_JSON,
                ]
            raise
        answer = collect_answer(collected.events, collected.duplicates, collected.split)
        return answer, collected.duplicates.count(None)


TRACK_PATH = "/track"


class TrackEndpoint(IngestEndpoint):
    """The tracking API: `POST /track` with a tracker payload."""

    route = "track"

    async def handle(self, scope: Scope, receive: Receive) -> tuple[dict[str, Any], int]:
        if scope["method"] != "POST":
            raise MethodNotAllowed(
                f"method {scope['method']} is not allowed here; use POST",
                headers={"Allow": "POST"},
            )
        body = await read_decoded_body(scope, receive, self.ctx.config.max_body_bytes)
        request = posted_request(scope, body)
        try:
            result, events = await service.track(ctx=self.ctx, request=request)
        except EventstitchError:
            scope[REFUSED_BODY] = body
            raise
        return track_answer(result, events), len(events)


async def refuse_unknown_route(
    scope: Scope, receive: Receive, ctx: AppContext, family: str
) -> EventstitchError:
    """The 404 of a path no ingest route answers, its body read first (within the body limit)
    so that the quarantine keeps what was sent."""
    if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
        with contextlib.suppress(EventstitchError):  # too large: kept as not read
            scope[REFUSED_BODY] = await read_body(
                receive, scope["headers"], ctx.config.max_body_bytes
            )
    return refusal(scope["path"], family)


class UnknownRouteEndpoint(IngestEndpoint):
    """Paths of the `track` and `sdk` families that no route answers: refused with 404, counted
    and kept (see ingest/wrong_routes.py)."""

    methods = "POST, GET"

    def __init__(self, ctx: AppContext, family: str) -> None:
        # Not the base's: nothing is ever accepted here, so no per-route acceptance series.
        self.ctx = ctx
        self.route = family

    async def handle(self, scope: Scope, receive: Receive) -> tuple[dict[str, Any], int]:
        raise await refuse_unknown_route(scope, receive, self.ctx, self.route)
