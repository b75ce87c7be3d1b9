"""The routes the analytics SDKs post to, as raw ASGI endpoints like /collect: Segment's (and
RudderStack's) HTTP tracking API and PostHog's capture routes. Each answers in its SDK's
shapes: `{"success": true}` / `{"code", "message"}`, or `{"status": 1}` /
`{"type", "code", "detail"}`."""

from __future__ import annotations

from typing import Any

import orjson

from eventstitch.context import AppContext
from eventstitch.errors import EventstitchError, MethodNotAllowed
from eventstitch.ingest import sdk_service
from eventstitch.ingest.routes import IngestEndpoint, Receive, Scope, posted_request, read_body
from eventstitch.ingest.sdk_messages import KEY_FIELDS, Family
from eventstitch.rejections.capture import REFUSED_BODY

SEGMENT_PATHS: dict[str, str | None] = {
    "/v1/batch": None,
    "/v1/track": "track",
    "/v1/identify": "identify",
    "/v1/page": "page",
    "/v1/screen": "screen",
    "/v1/group": "group",
    "/v1/alias": "alias",
}
"""Segment's routes and the message type of the single-message ones."""
POSTHOG_PATHS = frozenset(
    {
        "/batch/",
        "/capture/",
        "/e/",
        "/i/v0/e/",
        "/i/v1/analytics/events",
        "/batch",
        "/capture",
        "/e",
        "/i/v0/e",
    }
)
V1_CAPTURE_PATH = "/i/v1/analytics/events"
_POSTHOG_TYPES = {401: "authentication_error", 403: "authentication_error"}


def sdk_family(path: str) -> Family | None:
    """Which SDK family a path belongs to, or None when it is not an SDK route."""
    if path in SEGMENT_PATHS:
        return "segment"
    if path in POSTHOG_PATHS:
        return "posthog"
    return None


class SdkEndpoint(IngestEndpoint):
    """One SDK family's routes: read the body, hand it to the SDK service, answer 200 once
    every valid message is committed."""

    methods = "POST"

    def __init__(self, ctx: AppContext, family: Family) -> None:
        self.route = f"sdk_{family}"
        self.family: Family = family
        super().__init__(ctx)

    def render_error(self, error: EventstitchError) -> bytes:
        if self.family == "segment":
            return orjson.dumps({"code": error.reason, "message": error.message})
        kind = _POSTHOG_TYPES.get(error.status, "validation_error")
        return orjson.dumps({"type": kind, "code": error.reason, "detail": error.message})

    async def handle(self, scope: Scope, receive: Receive) -> tuple[dict[str, Any], int]:
        if scope["method"] != "POST":
            raise MethodNotAllowed(
                f"method {scope['method']} is not allowed here; use POST",
                headers={"Allow": "POST"},
            )
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        body = await read_body(receive, headers, self.ctx.config.sdk_max_batch_bytes)
        path: str = scope["path"]
        request = posted_request(scope, body)
        try:
            result = await sdk_service.receive(
                ctx=self.ctx,
                request=request,
                path=path,
                family=self.family,
                single_type=SEGMENT_PATHS.get(path),
            )
        except EventstitchError:
            scope[REFUSED_BODY] = kept_body(body)
            raise
        if self.family == "segment":
            return {"success": True}, result.stored
        if path == V1_CAPTURE_PATH:
            # Capture v1 reads a result per event uuid; an absent one counts as accepted.
            results = {
                str(uid): {"result": "drop", "details": reason}
                for uid, reason in result.quarantined
                if isinstance(uid, str)
            }
            return {"status": 1, "results": results}, result.stored
        return {"status": 1}, result.stored


def kept_body(body: bytes) -> bytes:
    """What the quarantine may keep of a refused SDK request: the JSON without the fields
    that carry the key; nothing of a body it cannot read (compressed, malformed), which may
    hold the key where it cannot be taken out."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return b""
    if isinstance(parsed, dict):
        parsed = {k: v for k, v in parsed.items() if k not in KEY_FIELDS}
    if isinstance(parsed, list | dict):
        items = parsed if isinstance(parsed, list) else parsed.get("batch")
        if isinstance(items, list):
            cleaned = [
                {k: v for k, v in m.items() if k not in KEY_FIELDS} if isinstance(m, dict) else m
                for m in items
            ]
            parsed = cleaned if isinstance(parsed, list) else {**parsed, "batch": cleaned}
    return orjson.dumps(parsed)
