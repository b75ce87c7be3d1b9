"""Accepting events: check the source, build the event, hand it to storage, answer after commit."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any, TypeVar

from eventstitch.context import AppContext
from eventstitch.errors import (
    BadRequest,
    EventstitchError,
)
from eventstitch.frozen import frozen_record
from eventstitch.identity.rules import Identification, identify
from eventstitch.ids import new_event_id
from eventstitch.ingest import shaping as shaping_rules
from eventstitch.ingest.handshakes import Handshake, Reply, reply
from eventstitch.ingest.parsing import (
    normalise_event_type,
    parse_body,
    parse_form,
    parse_json_body,
    safe_headers,
    scan_headers,
)
from eventstitch.ingest.schemas import RawRequest, RepeatedDelivery, WebhookRequest
from eventstitch.ingest.storing import committed, delivery_key, store
from eventstitch.ingest.tracking import check_stored_size, parse_track_payload
from eventstitch.metrics import HANDSHAKES_ANSWERED, IDENTITY_SKIPPED
from eventstitch.sources import service as sources_service
from eventstitch.sources import signatures
from eventstitch.storage.errors import (
    DuplicateDelivery,
)
from eventstitch.storage.records import (
    Claim,
    EventRecord,
    Shaping,
    SourceRecord,
    Visit,
    VisitResult,
)

WEBHOOK_KINDS = frozenset({"webhook"})
NOT_IDENTIFIED = Identification(None)
"""The identification of every event whose source has no rules."""
T = TypeVar("T")


@frozen_record
class Collected:
    """What one delivery to the webhook bridge stored: its events (the first stored ones for
    repeated deliveries), which were repeats, and whether the source split it."""

    events: list[EventRecord]
    duplicates: list[RepeatedDelivery | None]
    """Per event, None when it was stored now, else how the repeat compares with the first."""
    split: bool = False


async def collect(*, ctx: AppContext, request: WebhookRequest, replay: bool = False) -> Collected:
    """Store the events of one delivery to the webhook bridge (one, or one per element when
    the source splits) in one commit; return them once durable, with the profile each was
    linked to, and which were repeated deliveries (stored first earlier: nothing new). A
    `replay` of a quarantined request, vouched for by an operator, skips signature and rate
    limit."""
    path_type = normalise_event_type(request.event_type)
    headers, kept_headers = scan_headers(request.headers)
    source: SourceRecord | None = None
    try:
        source = await committed(
            ctx,
            sources_service.get_accepting(ctx=ctx, source_id=request.source_id, kind="webhook"),
        )
        return await _collect_from(ctx, source, request, headers, kept_headers, path_type, replay)
    except EventstitchError as error:
        # Refused, even for being disabled: a source's redactions still hold in the quarantine.
        known = source or ctx.sources.peek(request.source_id)
        if known is not None and known.shaping is not None and known.shaping.redact:
            error.kept_body = _redacted_body(ctx, known.shaping, request, headers)
        raise


async def _collect_from(
    ctx: AppContext,
    source: SourceRecord,
    request: WebhookRequest,
    headers: Mapping[str, str],
    kept_headers: dict[str, str],
    path_type: str,
    replay: bool,
) -> Collected:
    if not replay:  # a replay was vouched for by an operator; it never carries the signature
        _verify(source, request, headers)
        sources_service.admit(ctx=ctx, source=source)
    kept_headers, query_string = signatures.without_secret(
        source.signature, kept_headers, request.query_string
    )
    properties, body_kind = _properties(ctx, request, headers, query_string)
    shaping = source.shaping
    if shaping is not None and body_kind in ("form", "query"):
        properties = shaping_rules.read_form(
            properties, shaping, max_depth=ctx.config.max_nesting_depth
        )
    if source.signature is not None and source.signature.preset == "slack":
        properties.pop("token", None)  # Slack's legacy verification token: a secret, not data
    split = shaping is not None and shaping.split is not None
    items = (
        shaping_rules.split(properties, shaping.split, limit=ctx.config.max_split_events)
        if shaping is not None and shaping.split is not None
        else [properties]
    )
    delivery_from = _delivery_id_from(source)
    delivery_wide = delivery_key(ctx, headers, properties, None)
    context = {
        "method": request.method,
        # Only what the stored headers keep: a source may read its secret from any
        # header, User-Agent included.
        "content_type": headers.get("content-type") if "content-type" in kept_headers else None,
        "body_kind": body_kind,
        "user_agent": headers.get("user-agent") if "user-agent" in kept_headers else None,
        "client": request.client,
        "query": query_string,
        "headers": kept_headers,
    }
    events: list[EventRecord] = []
    claims: list[Claim | None] = []
    keys: list[str | None] = []
    for index, item in enumerate(items):
        if shaping is not None and shaping.redact:
            item = shaping_rules.redact(item, shaping.redact)
        event_type = _event_type(shaping, headers, item, path_type)
        # Without a source's own place, the key is the delivery-wide header's, found above.
        key = delivery_key(ctx, headers, item, delivery_from) if delivery_from else delivery_wide
        if split and key is not None and (delivery_from is None or _from_header(delivery_from)):
            key = f"{key}#{index}"  # one id for the delivery: each element its own
        elif split and key is None and delivery_wide is not None:
            key = f"{delivery_wide}#{index}"
        identification = _identify(ctx, source, item, event_type)
        event_id, received_ms = new_event_id()
        events.append(
            EventRecord(
                id=event_id,
                type=event_type,
                source_id=request.source_id,
                received_ms=received_ms,
                profile_less=True,
                profile_id=None,
                session_id=None,
                properties=item,
                # One event alone keeps the delivery's context; split ones each a copy.
                context=(
                    {**context, **_skipped_rules(identification)}
                    if split or identification.skipped
                    else context
                ),
            )
        )
        claims.append(identification.claim)
        keys.append(key)
    if not split:
        try:
            profile_id = await store(
                ctx=ctx,
                event=events[0],
                accepted_kinds=WEBHOOK_KINDS,
                claim=claims[0],
                delivery_key=keys[0],
            )
        except DuplicateDelivery as duplicate:
            original, repeat = await _original(ctx, events[0], duplicate)
            return Collected([original], [repeat])
        event = events[0]
        if profile_id is not None:  # else as built: replace() costs more than the rest here
            event = dataclasses.replace(event, profile_id=profile_id)
        return Collected([event], [None])
    outcomes = await committed(
        ctx,
        ctx.storage.events.append_group(
            list(zip(events, claims, keys, strict=True)), accepted_kinds=WEBHOOK_KINDS
        ),
    )
    stored: list[EventRecord] = []
    duplicates: list[RepeatedDelivery | None] = []
    for event, outcome in zip(events, outcomes, strict=True):
        if isinstance(outcome, DuplicateDelivery):
            original, repeat = await _original(ctx, event, outcome)
            stored.append(original)
            duplicates.append(repeat)
        else:
            stored.append(dataclasses.replace(event, profile_id=outcome))
            duplicates.append(None)
    return Collected(stored, duplicates, split=True)


async def _original(
    ctx: AppContext, event: EventRecord, duplicate: DuplicateDelivery
) -> tuple[EventRecord, RepeatedDelivery]:
    """The event stored first for a repeated delivery, and whether this one's properties
    differ from it (unknown when it was erased since)."""
    original = await ctx.storage.events.get(duplicate.original_event_id)
    if original is None:
        return dataclasses.replace(event, id=duplicate.original_event_id), RepeatedDelivery(None)
    return original, RepeatedDelivery(original.properties != event.properties)


def _properties(
    ctx: AppContext, request: WebhookRequest, headers: Mapping[str, str], query_string: str
) -> tuple[dict[str, Any], str]:
    if request.method == "GET":
        return parse_form(query_string), "query"
    return parse_body(
        request.body, headers.get("content-type"), max_depth=ctx.config.max_nesting_depth
    )


def _event_type(
    shaping: Shaping | None, headers: Mapping[str, str], item: dict[str, Any], path_type: str
) -> str:
    """The type the source's `event_type_from` finds, under the type rules; else the path's."""
    if shaping is None or shaping.event_type_from is None:
        return path_type
    found = shaping_rules.find(shaping.event_type_from, headers, item)
    if not isinstance(found, str) or not found.strip():
        return path_type
    try:
        return normalise_event_type(found)
    except BadRequest as error:
        raise BadRequest(
            f"{error.message} (found at {shaping.event_type_from})",
            errors=[{**error.errors[0], "from": shaping.event_type_from}],
            reason=error.reason,
        ) from None


def _delivery_id_from(source: SourceRecord) -> str | None:
    if source.shaping is not None and source.shaping.delivery_id_from is not None:
        return source.shaping.delivery_id_from
    return ".".join(source.delivery_id_path) or None


def _from_header(spec: str) -> bool:
    return spec.startswith(shaping_rules.HEADER_PREFIX)


def _redacted_body(
    ctx: AppContext, shaping: Shaping, request: WebhookRequest, headers: Mapping[str, str]
) -> bytes:
    """The body the quarantine may keep of a refused delivery to a source with redactions:
    the delivery without them, or nothing when it cannot be read."""
    depth = ctx.config.max_nesting_depth
    try:
        properties, kind = _properties(ctx, request, headers, request.query_string)
        if kind in ("form", "query"):
            properties = shaping_rules.read_form(properties, shaping, max_depth=depth)
    except EventstitchError:
        return b""
    return shaping_rules.kept_body(properties, shaping, max_depth=depth)


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
        return NOT_IDENTIFIED
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
    """Check the delivery's signature over the raw body, before anything parses it: 405 for
    a method the signature does not cover, 401 if bad."""
    if source.signature is not None:
        signatures.check_method(source.signature, source_id=source.id, method=request.method)
        signatures.verify(
            source.signature,
            source_id=source.id,
            body=request.body,
            headers=headers,
            query_string=request.query_string,
            now=time.time(),
        )


async def track(
    *, ctx: AppContext, request: RawRequest, replay: bool = False
) -> tuple[VisitResult, list[EventRecord]]:
    """Store a tracker call: its events, its profile and session (unless profile-less); a
    `replay` of a quarantined one skips the rate limit."""
    query = parse_form(request.query_string)
    payload = parse_track_payload(
        parse_json_body(
            request.body,
            request.header(b"content-type"),
            max_depth=ctx.config.max_nesting_depth,
        ),
        profile_less_query=str(query.get("profile_less", "")).lower() in ("true", "1", "yes"),
        max_events=ctx.config.track_max_events,
    )
    base_context: dict[str, Any] = {
        "user_agent": request.header(b"user-agent"),
        "client": request.client,
        "headers": safe_headers(request.headers),
        **({"visit": payload.context} if payload.context else {}),
        **({"session_properties": payload.properties} if payload.properties else {}),
    }
    check_stored_size(payload, base_context, limit=ctx.config.track_max_stored_bytes)
    source = await committed(
        ctx, sources_service.get_accepting(ctx=ctx, source_id=payload.source_id, kind="tracker")
    )
    if not replay:
        sources_service.admit(ctx=ctx, source=source)
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
    return await committed(ctx, ctx.storage.events.track(visit)), events
