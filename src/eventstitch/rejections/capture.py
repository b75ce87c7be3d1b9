"""Turning a refused ingest request into a rejection record and handing it to the buffer.

Called by the ingest routes after the refusal was answered; it cannot change the answer, and
nothing it does may raise: a failure is logged and counted.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import orjson

from eventstitch.context import AppContext
from eventstitch.errors import EventstitchError, clip
from eventstitch.ids import new_event_id
from eventstitch.ingest import wrong_routes
from eventstitch.ingest.parsing import COLLECT_PREFIX, safe_headers
from eventstitch.storage.records import RejectionRecord

log = logging.getLogger(__name__)

REFUSED_BODY = "eventstitch.refused_body"
"""Where an ingest route leaves the body it read (in the ASGI scope) when the request is
refused after reading it: only then, so an accepted request pays nothing for it."""
DECODED_FROM = "eventstitch.decoded_from"
"""The content coding an ingest route undid (in the ASGI scope): the body it leaves is then
decoded, so the record leaves out the `Content-Encoding` header that no longer applies."""


def keep(
    *, ctx: AppContext, route: str, scope: MutableMapping[str, Any], error: EventstitchError
) -> None:
    """Record a refused request (4xx only: overload refusals are not written, see
    docs/reliability.md); never raises."""
    if error.status >= 500:
        return
    try:
        record = refused(
            route=route,
            scope=scope,
            error=error,
            max_body=ctx.config.rejections_max_body_bytes,
            max_path=ctx.config.rejections_max_path_chars,
        )
    except Exception:
        log.exception("could not capture a refused request for the rejections table")
        ctx.rejections.lose("error")
        return
    ctx.rejections.offer(record)


def refused(
    *,
    route: str,
    scope: MutableMapping[str, Any],
    error: EventstitchError,
    max_body: int,
    max_path: int = 1024,
) -> RejectionRecord:
    """The record of one refused request, its body cut to `max_body` bytes, its path and query
    to `max_path` characters (a scanner's 60 KB path must not be kept whole)."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    body: bytes | None = scope.get(REFUSED_BODY)
    path: str = scope.get("path", "")
    if body is None:
        kept, size = b"", None
        truncated = error.status == 413  # refused for its size: what was sent is not here
        if truncated:
            size = _content_length(headers)
    else:
        kept, size, truncated = body[:max_body], len(body), len(body) > max_body
    query = scope.get("query_string", b"").decode("latin-1")
    if len(path) > max_path or len(query) > max_path:
        truncated = True  # what is kept is not what was sent: it cannot be replayed
    client = scope.get("client")
    rejection_id, received_ms = new_event_id()
    return RejectionRecord(
        id=rejection_id,
        received_ms=received_ms,
        route=route,
        reason=error.reason,
        status=error.status,
        message=error.message,
        errors=error.errors,
        source_id=_source_id(route, path, kept if not truncated else b""),
        method=str(scope.get("method", "")),
        path=clip(path, max_path),
        query=clip(_kept_query(scope, error), max_path),
        headers=_kept_headers(scope, headers, error),
        client=client[0] if client else None,
        body=kept,
        body_size=size,
        body_truncated=truncated,
    )


def _kept_headers(
    scope: MutableMapping[str, Any], headers: list[tuple[bytes, bytes]], error: EventstitchError
) -> dict[str, str]:
    kept = safe_headers(headers)
    if error.reason == wrong_routes.REASON:  # no source to scrub by: harmless headers only
        kept = wrong_routes.kept_headers(kept)
    if scope.get(DECODED_FROM) is not None:
        kept.pop("content-encoding", None)
    return kept


def _kept_query(scope: MutableMapping[str, Any], error: EventstitchError) -> str:
    query: str = scope.get("query_string", b"").decode("latin-1")
    return wrong_routes.kept_query(query) if error.reason == wrong_routes.REASON else query


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length" and value.isdigit():
            return int(value)
    return None


def _source_id(route: str, path: str, body: bytes) -> str | None:
    """The source the request named, if it named one: in the path of the webhook bridge, in
    the payload of /track (read only when the whole body was kept)."""
    if route == "collect":
        event_type, _, source_id = path[len(COLLECT_PREFIX) :].rpartition("/")
        return clip(source_id, 200) if event_type and source_id else None
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    source = payload.get("source") if isinstance(payload, dict) else None
    found = source.get("id") if isinstance(source, dict) else None
    return clip(found, 200) if isinstance(found, str) and found else None
