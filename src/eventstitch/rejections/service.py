"""Refused ingest requests: listing them, one of them, and replaying one once it can succeed.

A replay is an operator's action under the API token: it goes through the same ingest service
as the original request (source exists, is enabled and of the right kind; the body is parsed
again; the delivery id still deduplicates), but not through the ingest routes, so nothing a
route adds around the service (rate limits, signature checks) applies, and a replay that is
refused again records no new rejection.
"""

from __future__ import annotations

import logging
from typing import Any

from eventstitch.context import AppContext
from eventstitch.errors import (
    BadRequest,
    Conflict,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    clip,
    clip_id,
)
from eventstitch.ids import ms_to_iso, now_ms
from eventstitch.ingest import handshakes, wrong_routes
from eventstitch.ingest import service as ingest
from eventstitch.ingest.answers import collect_answer, track_answer
from eventstitch.ingest.encodings import decode, encoding_of
from eventstitch.ingest.parsing import split_collect_path
from eventstitch.ingest.schemas import RawRequest, WebhookRequest
from eventstitch.query import service as query_service
from eventstitch.query.schemas import encode_cursor
from eventstitch.rejections.schemas import RejectionPage
from eventstitch.storage.errors import StorageError
from eventstitch.storage.records import RejectionFilter, RejectionRecord

log = logging.getLogger(__name__)


async def list_page(
    *,
    ctx: AppContext,
    rejection_filter: RejectionFilter,
    limit: int | None,
    before_id: str | None,
) -> RejectionPage:
    """One page of rejections, newest first, the next page's cursor, and the drop totals."""
    size = query_service.page_size(ctx=ctx, limit=limit)
    # So this process's own latest refusals are listed too (when events do not queue).
    await ctx.rejections.flush(unless_busy=True)
    found = await ctx.storage.rejections.list_page(
        rejection_filter, limit=size + 1, before_id=before_id
    )
    dropped = await ctx.storage.rejections.dropped()
    if len(found) > size:
        return RejectionPage(found[:size], encode_cursor(found[size - 1].id), dropped)
    return RejectionPage(found, None, dropped)


async def get(*, ctx: AppContext, rejection_id: str) -> RejectionRecord:
    """One rejection with its body, or NotFound."""
    await ctx.rejections.flush(unless_busy=True)
    record = await ctx.storage.rejections.get(rejection_id)
    if record is None:
        raise NotFound(f"rejection {clip_id(rejection_id)!r} not found", reason="unknown_rejection")
    return record


async def replay(*, ctx: AppContext, rejection_id: str) -> dict[str, Any]:
    """Ingest a refused request again and answer as ingest would; mark it replayed with the
    events stored. Refused again: that refusal, and the rejection stays as it was."""
    record = await get(ctx=ctx, rejection_id=rejection_id)
    if record.replayed_ms is not None:
        raise _already_replayed(record)
    if record.reason == wrong_routes.REASON:
        raise Conflict(
            f"rejection {record.id!r} cannot be replayed: it was sent to {clip(record.path)!r},"
            " which no route answers; point the sender at /collect/{event_type}/{source_id}"
            " or /track",
            errors=[{"field": "path", "value": clip(record.path, 120)}],
            reason="unknown_route",
        )
    if record.body_truncated:
        kept = len(record.body or b"")
        sent = "an unknown number of" if record.body_size is None else str(record.body_size)
        raise Conflict(
            f"rejection {record.id!r} cannot be replayed: its body was truncated"
            f" ({kept} of {sent} bytes kept)",
            errors=[{"field": "body", "kept": kept, "size": record.body_size}],
            reason="body_truncated",
        )
    if not await ctx.storage.rejections.claim_replay(record.id, at_ms=now_ms()):
        raise _already_replayed(await get(ctx=ctx, rejection_id=rejection_id))
    try:
        answer, event_ids = await _ingest_again(ctx, record)
    except Exception:
        # Not on cancellation: the event may be committed all the same, so the claim stays.
        await _release(ctx, record.id)
        raise
    await ctx.storage.rejections.finish_replay(record.id, event_ids=event_ids)
    return answer


async def _ingest_again(
    ctx: AppContext, record: RejectionRecord
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The request rebuilt from the record and handed to the ingest service it first met, as
    a replay: the signature (never stored) and the rate limit are passed by."""
    body = record.body or b""
    if len(body) > ctx.config.max_body_bytes:
        raise PayloadTooLarge(
            f"body is larger than the limit of {ctx.config.max_body_bytes} bytes",
            errors=[{"field": "body", "limit": ctx.config.max_body_bytes}],
        )
    # Kept with its Content-Encoding only when it was refused for not decoding: as sent.
    encoding = encoding_of(record.headers.get("content-encoding"))
    if encoding is not None and body:
        body = decode(body, encoding, ctx.config.max_body_bytes)
    headers = [
        (k.encode("latin-1", "replace"), v.encode("latin-1", "replace"))
        for k, v in record.headers.items()
    ]
    if record.route == "collect":
        event_type, source_id = split_collect_path(record.path)
        _require_method(record, ("GET", "POST"))
        request = WebhookRequest(
            method=record.method,
            body=body,
            query_string=record.query,
            headers=headers,
            client=record.client,
            event_type=event_type,
            source_id=source_id,
        )
        if handshakes.was_handshake(request):
            raise Conflict(
                f"rejection {record.id!r} cannot be replayed: it is a sender's URL check, which"
                " is answered to the sender when it comes; ask the sender to check again",
                errors=[{"field": "body"}],
                reason="handshake_not_replayable",
            )
        collected = await ingest.collect(ctx=ctx, replay=True, request=request)
        answer = collect_answer(collected.events, collected.duplicates, collected.split)
        return answer, tuple(e.id for e in collected.events)
    if record.route == "track":
        _require_method(record, ("POST",))
        tracked = RawRequest("POST", body, record.query, headers, record.client)
        result, events = await ingest.track(ctx=ctx, request=tracked, replay=True)
        return track_answer(result, events), tuple(e.id for e in events)
    raise BadRequest(f"rejection of unknown route {clip(record.route)!r}", reason="bad_route")


def _require_method(record: RejectionRecord, allowed: tuple[str, ...]) -> None:
    if record.method not in allowed:
        raise MethodNotAllowed(
            f"method {record.method} is not allowed here; use {' or '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )


async def _release(ctx: AppContext, rejection_id: str) -> None:
    """Give the replay claim back after a refused replay; a failure leaves it claimed with no
    events, which the operator can see (replayed_at set, replayed_event_ids empty)."""
    try:
        await ctx.storage.rejections.finish_replay(rejection_id, event_ids=None)
    except StorageError as exc:
        log.warning("could not release the replay of rejection %s: %s", rejection_id, exc)


def _already_replayed(record: RejectionRecord) -> Conflict:
    at = ms_to_iso(record.replayed_ms) if record.replayed_ms is not None else "just now"
    return Conflict(
        f"rejection {record.id!r} was already replayed ({at})",
        errors=[
            {
                "field": "id",
                "replayed_at": at,
                "replayed_event_ids": list(record.replayed_event_ids),
            }
        ],
        reason="already_replayed",
    )
