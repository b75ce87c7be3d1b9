"""Accepting events: check the source, build the event, hand it to storage, answer after commit."""

from __future__ import annotations

from typing import Any

from eventstitch.context import AppContext
from eventstitch.errors import Forbidden, NotFound, Overloaded
from eventstitch.ids import new_event_id
from eventstitch.ingest.parsing import (
    normalise_event_type,
    parse_body,
    parse_form,
    safe_headers,
)
from eventstitch.ingest.schemas import WebhookRequest
from eventstitch.sources import service as sources_service
from eventstitch.storage.interfaces import (
    EventRecord,
    QueueFull,
    SourceRefused,
    StorageUnavailable,
)

WEBHOOK_KINDS = frozenset({"webhook"})


async def collect(*, ctx: AppContext, request: WebhookRequest) -> EventRecord:
    """Store one profile-less event from the webhook bridge; return it once it is durable."""
    event_type = normalise_event_type(request.event_type)
    await sources_service.get_accepting(ctx=ctx, source_id=request.source_id, kind="webhook")
    content_type = request.header(b"content-type")
    if request.method == "GET":
        properties: dict[str, Any] = parse_form(request.query_string)
        body_kind = "query"
    else:
        properties, body_kind = parse_body(
            request.body, content_type, max_depth=ctx.config.max_nesting_depth
        )
    event_id, received_ms = new_event_id()
    event = EventRecord(
        id=event_id,
        type=event_type,
        source_id=request.source_id,
        received_ms=received_ms,
        profile_less=True,
        profile_id=None,
        session_id=None,
        properties=properties,
        context={
            "method": request.method,
            "content_type": content_type,
            "body_kind": body_kind,
            "user_agent": request.header(b"user-agent"),
            "client": request.client,
            "query": request.query_string,
            "headers": safe_headers(request.headers),
        },
    )
    await store(ctx=ctx, event=event, accepted_kinds=WEBHOOK_KINDS)
    return event


async def store(*, ctx: AppContext, event: EventRecord, accepted_kinds: frozenset[str]) -> None:
    """Append one event durably, turning storage refusals into answers a client understands."""
    retry = {"Retry-After": str(ctx.config.retry_after_seconds)}
    try:
        await ctx.storage.events.append(event, accepted_kinds=accepted_kinds)
    except QueueFull:
        raise Overloaded(
            "the collector is at capacity; nothing was stored, retry later",
            reason="overloaded",
            headers=retry,
        ) from None
    except StorageUnavailable:
        raise Overloaded(
            "storage is unavailable; nothing was stored, retry later",
            reason="storage_unavailable",
            headers=retry,
        ) from None
    except SourceRefused as refused:
        ctx.sources.forget(refused.source_id)
        if refused.reason == "unknown_source":
            raise NotFound(
                f"source {refused.source_id!r} not found", reason=refused.reason
            ) from None
        raise Forbidden(
            f"source {refused.source_id!r} does not accept these events ({refused.reason})",
            reason=refused.reason,
        ) from None
