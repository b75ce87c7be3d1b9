"""Accepting what the analytics SDKs send: one batch, each message checked on its own, the
valid ones stored in one commit (the same group commit as /collect), the others quarantined."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from eventstitch.context import AppContext
from eventstitch.errors import EventstitchError, PayloadTooLarge, Unprocessable
from eventstitch.ids import new_event_id
from eventstitch.ingest.encodings import decode, encoding_of
from eventstitch.ingest.parsing import parse_json_body, scan_headers
from eventstitch.ingest.schemas import RawRequest
from eventstitch.ingest.sdk_messages import (
    Family,
    SdkMessage,
    body_key,
    header_key,
    messages_of,
    missing_key,
    read_message,
    sent_at_of,
)
from eventstitch.ingest.storing import committed
from eventstitch.rejections.capture import refused
from eventstitch.sources import service as sources_service
from eventstitch.storage.errors import DuplicateDelivery
from eventstitch.storage.records import Claim, EventRecord, SourceRecord

TRACKER_KINDS = frozenset({"tracker"})


@dataclasses.dataclass(frozen=True, slots=True)
class SdkBatchResult:
    """What one SDK request did: events stored now, repeats of stored ones, quarantined."""

    stored: int
    duplicates: int
    quarantined: list[tuple[Any, str]]
    """Per message quarantined: its id as sent (`messageId`, `uuid`), if any, and why."""


async def receive(
    *, ctx: AppContext, request: RawRequest, path: str, family: Family, single_type: str | None
) -> SdkBatchResult:
    """Store one SDK request's valid messages durably; refuse it whole (raise) only when it
    is not a batch, names no usable key, or is over a limit."""
    headers, kept_headers = scan_headers(request.headers)
    limit = ctx.config.sdk_max_batch_bytes
    encoding = encoding_of(headers.get("content-encoding"))
    if (
        encoding is None
        and "compression=gzip" in request.query_string
        and request.body[:2] == b"\x1f\x8b"
    ):
        encoding = "gzip"  # posthog-js says so in the query instead
    body = decode(request.body, encoding, limit) if encoding and request.body else request.body
    parsed = parse_json_body(
        body, headers.get("content-type"), max_depth=ctx.config.max_nesting_depth
    )
    messages = messages_of(parsed, family=family, single_type=single_type)
    most = ctx.config.sdk_max_batch_messages
    if len(messages) > most:
        raise PayloadTooLarge(
            f"batch holds {len(messages)} messages; at most {most}",
            errors=[{"field": "batch", "count": len(messages), "limit": most}],
            reason="too_many_messages",
        )
    key = header_key(headers) or body_key(parsed, messages)
    if key is None:
        raise missing_key(family)
    source = await committed(ctx, sources_service.get_accepting_by_key(ctx=ctx, write_key=key))
    sources_service.admit(ctx=ctx, source=source)
    shared = {
        "user_agent": headers.get("user-agent") if "user-agent" in kept_headers else None,
        "client": request.client,
        "headers": kept_headers,
        "route": path,
    }
    items, bad = _read(ctx, source, family, messages, sent_at_of(parsed), shared)
    for index, message, error in bad:
        _quarantine(ctx, request, f"sdk_{family}", path, source, (index, message, error))
    quarantined = [(_message_id(message), error.reason) for _, message, error in bad]
    if not items:
        return SdkBatchResult(0, 0, quarantined)
    outcomes = await committed(
        ctx, ctx.storage.events.append_group(items, accepted_kinds=TRACKER_KINDS)
    )
    seen_before = sum(isinstance(o, DuplicateDelivery) for o in outcomes)
    repeated_here = len(messages) - len(bad) - len(items)
    return SdkBatchResult(len(items) - seen_before, seen_before + repeated_here, quarantined)


def _message_id(message: Any) -> Any:
    return message.get("messageId", message.get("uuid")) if isinstance(message, dict) else None


def _read(
    ctx: AppContext,
    source: SourceRecord,
    family: Family,
    messages: list[Any],
    sent_at: str | None,
    shared: dict[str, Any],
) -> tuple[
    list[tuple[EventRecord, Claim | None, str | None]],
    list[tuple[int, Any, EventstitchError]],
]:
    """Each message as an event to store, or the refusal that quarantines it; a message id
    seen earlier in the batch is stored once."""
    items: list[tuple[EventRecord, Claim | None, str | None]] = []
    bad: list[tuple[int, Any, EventstitchError]] = []
    seen: set[str] = set()
    most = ctx.config.sdk_max_message_bytes
    window = ctx.config.idempotency_window_seconds
    for index, message in enumerate(messages):
        event_id, received_ms = new_event_id()
        try:
            size = len(orjson.dumps(message))
            if size > most:
                raise Unprocessable(
                    f"message is {size} bytes as JSON; at most {most}",
                    errors=[{"field": f"batch[{index}]", "bytes": size, "limit": most}],
                    reason="message_too_large",
                )
            read: SdkMessage = read_message(
                family, message, sent_at=sent_at, received_ms=received_ms, policy=ctx.policy
            )
        except EventstitchError as error:
            bad.append((index, message, error))
            continue
        key = read.delivery_key if window else None
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        event = EventRecord(
            id=event_id,
            type=read.type,
            source_id=source.id,
            received_ms=received_ms,
            profile_less=True,
            profile_id=None,
            session_id=None,
            properties=read.properties,
            context={**shared, **read.context},
        )
        items.append((event, read.claim, key))
    return items, bad


def _quarantine(
    ctx: AppContext,
    request: RawRequest,
    route: str,
    path: str,
    source: SourceRecord,
    refusal: tuple[int, Any, EventstitchError],
) -> None:
    """Keep one refused message, with its reason, in the rejections (never the key)."""
    index, message, error = refusal
    error.errors = [{**e, "message_index": index} for e in error.errors] or [
        {"message_index": index}
    ]
    scope = {
        "method": request.method,
        "path": path,
        "query_string": b"",
        "headers": [(k, v) for k, v in request.headers if k.lower() == b"user-agent"],
        "client": (request.client, 0) if request.client else None,
        "eventstitch.refused_body": orjson.dumps(_scrubbed(message)),
    }
    record = refused(
        route=route,
        scope=scope,
        error=error,
        max_body=ctx.config.rejections_max_body_bytes,
        max_path=ctx.config.rejections_max_path_chars,
    )
    ctx.rejections.offer(dataclasses.replace(record, source_id=source.id))


def _scrubbed(message: Any) -> Any:
    if isinstance(message, dict):
        return {k: v for k, v in message.items() if k not in ("writeKey", "api_key", "token")}
    return message
