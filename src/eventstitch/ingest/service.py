"""Accepting events: check the source, build the event, hand it to storage, answer after commit."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from eventstitch.context import AppContext
from eventstitch.errors import BadRequest, Forbidden, NotFound, Overloaded
from eventstitch.identity.rules import Identification, identify, lookup
from eventstitch.ids import new_event_id
from eventstitch.ingest.handshakes import Handshake, Reply, reply
from eventstitch.ingest.parsing import (
    normalise_event_type,
    parse_body,
    parse_form,
    parse_json,
    safe_headers,
    scan_headers,
    split_content_type,
)
from eventstitch.ingest.schemas import RawRequest, WebhookRequest
from eventstitch.ingest.tracking import parse_track_payload
from eventstitch.metrics import HANDSHAKES_ANSWERED, IDENTITY_SKIPPED
from eventstitch.sources import service as sources_service
from eventstitch.sources import signatures
from eventstitch.storage.errors import (
    DuplicateDelivery,
    QueueFull,
    SourceRefused,
    StorageUnavailable,
)
from eventstitch.storage.records import Claim, EventRecord, SourceRecord, Visit, VisitResult

WEBHOOK_KINDS = frozenset({"webhook"})
T = TypeVar("T")


DELIVERY_ID_HEADERS = (
    "idempotency-key",
    "x-event-id",
    "x-github-delivery",
    "webhook-id",
    "x-shopify-webhook-id",
)
"""Headers that carry a sender's delivery id, first found wins (after the source's path)."""
MAX_DELIVERY_ID = 256


async def collect(
    *, ctx: AppContext, request: WebhookRequest, replay: bool = False
) -> tuple[EventRecord, bool]:
    """Store one profile-less event from the webhook bridge; return it once it is durable,
    with the profile its identifiers linked it to, if any, and whether it was a repeated
    delivery (then nothing new was stored and the event is the one stored first). A `replay`
    of a quarantined request, vouched for by an operator, skips signature and rate limit."""
    event_type = normalise_event_type(request.event_type)
    source = await sources_service.get_accepting(
        ctx=ctx, source_id=request.source_id, kind="webhook"
    )
    headers, kept_headers = scan_headers(request.headers)
    if not replay:  # a replay was vouched for by an operator; it never carries the signature
        _verify(source, request, headers)
        sources_service.admit(ctx=ctx, source=source)
    kept_headers, query_string = signatures.without_secret(
        source.signature, kept_headers, request.query_string
    )
    content_type = headers.get("content-type")
    if request.method == "GET":
        properties: dict[str, Any] = parse_form(query_string)
        body_kind = "query"
    else:
        properties, body_kind = parse_body(
            request.body, content_type, max_depth=ctx.config.max_nesting_depth
        )
    if source.signature is not None and source.signature.preset == "slack":
        properties.pop("token", None)  # Slack's legacy verification token: a secret, not data
    identification = _identify(ctx, source, properties, event_type)
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
            "user_agent": headers.get("user-agent"),
            "client": request.client,
            "query": query_string,
            "headers": kept_headers,
            **_skipped_rules(identification),
        },
    )
    claim = identification.claim
    key = delivery_key(ctx, headers, properties, source.delivery_id_path)
    try:
        profile_id = await store(
            ctx=ctx, event=event, accepted_kinds=WEBHOOK_KINDS, claim=claim, delivery_key=key
        )
    except DuplicateDelivery as duplicate:
        original = await ctx.storage.events.get(duplicate.original_event_id)
        return original or dataclasses.replace(event, id=duplicate.original_event_id), True
    return (dataclasses.replace(event, profile_id=profile_id) if profile_id else event), False


async def answer_handshake(
    *, ctx: AppContext, request: WebhookRequest, handshake: Handshake, values: dict[str, str]
) -> Reply:
    """Answer a sender's URL check (see ingest/handshakes.py) once the source may take the
    sender's events and the check holds; nothing is stored, the answer is counted."""
    normalise_event_type(request.event_type)  # a URL whose events would be refused fails now
    source = await sources_service.get_accepting(
        ctx=ctx, source_id=request.source_id, kind="webhook"
    )
    if handshake.check != "verify_token":  # Meta signs no GET: its verify token is the check
        _verify(source, request, scan_headers(request.headers)[0])
    sources_service.admit(ctx=ctx, source=source)
    answer = reply(handshake, values, source)
    HANDSHAKES_ANSWERED.labels(handshake.sender).inc()
    return answer


def _identify(
    ctx: AppContext, source: SourceRecord, properties: Mapping[str, Any], event_type: str
) -> Identification:
    """The source's identification rules applied to one event (nothing when it has none)."""
    if not source.identification:
        return Identification(None)
    identification = identify(
        properties, event_type, source.identification, source.traits, ctx.policy
    )
    if identification.skipped:
        IDENTITY_SKIPPED.labels("several_values").inc(len(identification.skipped))
    return identification


def _skipped_rules(identification: Identification) -> dict[str, Any]:
    """What the event's context says about rules that could not identify anyone on it."""
    if not identification.skipped:
        return {}
    return {
        "identity_skipped": [
            {"path": path, "reason": "several_values"} for path in identification.skipped
        ]
    }


def _verify(source: SourceRecord, request: WebhookRequest, headers: Mapping[str, str]) -> None:
    """Check the delivery's signature over the raw body, before anything parses it (401 if
    bad)."""
    if source.signature is not None:
        signatures.verify(
            source.signature,
            source_id=source.id,
            body=request.body,
            headers=headers,
            query_string=request.query_string,
            now=time.time(),
        )


def delivery_key(
    ctx: AppContext,
    headers: Mapping[str, str],
    properties: dict[str, Any],
    path: tuple[str, ...],
) -> str | None:
    """The sender's delivery id: at the source's payload path, else in a known header
    (`headers`: the first value of each request header, by lower-case name)."""
    if not ctx.config.idempotency_window_seconds:
        return None
    found: Any = lookup(properties, path) if path else None
    if found is None or isinstance(found, dict | list | bool):
        found = None
        for name in DELIVERY_ID_HEADERS:
            found = headers.get(name)
            if found is not None:
                break
    if found is None:
        return None
    key = str(found).strip()
    if len(key) > MAX_DELIVERY_ID:
        raise BadRequest(
            f"delivery id is longer than {MAX_DELIVERY_ID} characters",
            errors=[{"field": "delivery_id", "limit": MAX_DELIVERY_ID}],
            reason="bad_delivery_id",
        )
    return key or None


def store(
    *,
    ctx: AppContext,
    event: EventRecord,
    accepted_kinds: frozenset[str],
    claim: Claim | None = None,
    delivery_key: str | None = None,
) -> Awaitable[str | None]:
    """Append one event durably, turning storage refusals into answers a client understands.
    Resolves to the profile the event was linked to, if any; raises DuplicateDelivery."""
    # Not a coroutine itself: one coroutine less to create and resume on the hot path.
    return _committed(
        ctx,
        ctx.storage.events.append(
            event, accepted_kinds=accepted_kinds, claim=claim, delivery_key=delivery_key
        ),
    )


async def _committed(ctx: AppContext, write: Awaitable[T]) -> T:
    """Await a storage write; its refusals become answers a client understands: 503 to retry
    (nothing stored), 403 or 404."""
    try:
        return await write
    except QueueFull:
        raise Overloaded(
            "the collector is at capacity; nothing was stored, retry later",
            reason="overloaded",
            headers={"Retry-After": str(ctx.config.retry_after_seconds)},
        ) from None
    except StorageUnavailable:
        raise Overloaded(
            "storage is unavailable; nothing was stored, retry later",
            reason="storage_unavailable",
            headers={"Retry-After": str(ctx.config.retry_after_seconds)},
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


async def track(
    *, ctx: AppContext, request: RawRequest, replay: bool = False
) -> tuple[VisitResult, list[EventRecord]]:
    """Store a tracker call: its events, its profile and session (unless profile-less); a
    `replay` of a quarantined one skips the rate limit."""
    query = parse_form(request.query_string)
    payload = parse_track_payload(
        parse_json(
            request.body,
            split_content_type(request.header(b"content-type"))[1],
            max_depth=ctx.config.max_nesting_depth,
        ),
        profile_less_query=str(query.get("profile_less", "")).lower() in ("true", "1", "yes"),
    )
    source = await sources_service.get_accepting(
        ctx=ctx, source_id=payload.source_id, kind="tracker"
    )
    if not replay:
        sources_service.admit(ctx=ctx, source=source)
    base_context: dict[str, Any] = {
        "user_agent": request.header(b"user-agent"),
        "client": request.client,
        "headers": safe_headers(request.headers),
        **({"visit": payload.context} if payload.context else {}),
        **({"session_properties": payload.properties} if payload.properties else {}),
    }
    events: list[EventRecord] = []
    claims: list[Claim | None] = []
    for item in payload.events:
        event_type = normalise_event_type(item.type)
        event_id, received_ms = new_event_id()
        context: dict[str, Any] = dict(base_context)
        if item.context:
            context["event"] = item.context
        if item.client_id is not None:
            context["client_event_id"] = item.client_id
        if item.tags:
            context["tags"] = item.tags
        identification = _identify(ctx, source, item.properties, event_type)
        context.update(_skipped_rules(identification))
        events.append(
            EventRecord(
                id=event_id,
                type=event_type,
                source_id=source.id,
                received_ms=received_ms,
                profile_less=payload.profile_less,
                profile_id=None,
                session_id=None,
                properties=item.properties,
                context=context,
            )
        )
        claims.append(identification.claim)
    visit = Visit(
        source_id=source.id,
        profile_less=payload.profile_less,
        profile_hint=payload.profile_id,
        session_hint=payload.session_id,
        events=tuple(events),
        claims=tuple(claims),
    )
    return await _committed(ctx, ctx.storage.events.track(visit)), events
