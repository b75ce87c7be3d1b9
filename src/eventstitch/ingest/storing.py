"""Handing accepted events to storage: the sender's delivery id, and storage's refusals
turned into answers a client understands. Shared by every ingest route."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from eventstitch.context import AppContext
from eventstitch.errors import BadRequest, Forbidden, NotFound, Overloaded, clip_id
from eventstitch.ingest import shaping as shaping_rules
from eventstitch.storage.errors import QueueFull, SourceRefused, StorageUnavailable
from eventstitch.storage.records import Claim, EventRecord

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


def delivery_key(
    ctx: AppContext,
    headers: Mapping[str, str],
    properties: dict[str, Any],
    spec: str | None,
) -> str | None:
    """The sender's delivery id: where the source says (a header or a payload path), else in
    a known header (`headers`: the first value of each request header, by lower-case name)."""
    if not ctx.config.idempotency_window_seconds:
        return None
    found: Any = shaping_rules.find(spec, headers, properties) if spec else None
    if found is None or isinstance(found, dict | list | bool):
        found = None
        if headers.keys().isdisjoint(DELIVERY_ID_HEADERS):  # most senders send none
            return None
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
    return committed(
        ctx,
        ctx.storage.events.append(
            event, accepted_kinds=accepted_kinds, claim=claim, delivery_key=delivery_key
        ),
    )


async def committed(ctx: AppContext, write: Awaitable[T]) -> T:
    """Await a storage write (or the source read before it); its refusals become answers a
    client understands: 503 to retry (nothing stored), 403 or 404."""
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
                f"source {clip_id(refused.source_id)!r} not found", reason=refused.reason
            ) from None
        raise Forbidden(
            f"source {clip_id(refused.source_id)!r} does not accept these events"
            f" ({refused.reason})",
            reason=refused.reason,
        ) from None
