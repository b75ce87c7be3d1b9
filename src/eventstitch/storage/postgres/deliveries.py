"""Delivery ids in a PostgreSQL batch: each key is claimed for its event, so concurrent copies
in any process store one event; keys of refused events are given back, expired ones forgotten."""

from __future__ import annotations

from typing import Any

from eventstitch.ids import now_ms
from eventstitch.storage.errors import DuplicateDelivery, SourceRefused
from eventstitch.storage.postgres.queries import pg_text
from eventstitch.storage.postgres.rows import Conn, columns
from eventstitch.storage.shared.jobs import EventJob


async def claim_deliveries(
    conn: Conn,
    events: list[tuple[int, EventJob]],
    keyed: list[tuple[int, EventJob]],
    results: list[Any],
    *,
    window_ms: int,
) -> list[tuple[int, EventJob]]:
    """Take each delivery key for its event, unless it is held within the window (by an
    earlier event, or by an earlier copy in this batch): those are answered with the event
    first stored, and left out of the insert. A key another process is claiming right now
    makes this statement wait for that transaction's outcome."""
    now = now_ms()
    first: dict[tuple[str, str], str] = {}
    claims: list[tuple[str, str, str, int]] = []
    for index, job in keyed:
        pair = (pg_text(job.event.source_id), pg_text(job.delivery_key or ""))
        if pair in first:
            results[index] = DuplicateDelivery(first[pair])
            continue
        first[pair] = job.event.id
        claims.append((*pair, pg_text(job.event.id), now))
    cursor = await conn.execute(
        "INSERT INTO delivery_keys AS d (source_id, key, event_id, seen_ms)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int8[])"
        " AS u(source_id, key, event_id, seen_ms) ORDER BY source_id, key"
        " ON CONFLICT (source_id, key) DO UPDATE"
        " SET event_id = excluded.event_id, seen_ms = excluded.seen_ms"
        " WHERE d.seen_ms < %s RETURNING source_id, key",
        [*columns(claims, 4), now - window_ms],
    )
    taken = {(row[0], row[1]) for row in await cursor.fetchall()}
    held = [pair for pair in first if pair not in taken]
    if held:
        cursor = await conn.execute(
            "SELECT source_id, key, event_id FROM delivery_keys"
            " WHERE (source_id, key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
            columns(held, 2),
        )
        holders = {(row[0], row[1]): row[2] for row in await cursor.fetchall()}
        for index, job in keyed:
            pair = (pg_text(job.event.source_id), pg_text(job.delivery_key or ""))
            if pair in holders:
                results[index] = DuplicateDelivery(holders[pair])
    return [(i, job) for i, job in events if not isinstance(results[i], BaseException)]


async def release_refused(
    conn: Conn,
    keyed: list[tuple[int, EventJob]],
    results: list[Any],
    *,
    window_ms: int,
) -> None:
    """Give back the keys of events the source check refused; forget expired keys."""
    refused = [
        pg_text(job.event.id) for index, job in keyed if isinstance(results[index], SourceRefused)
    ]
    if refused:
        await conn.execute("DELETE FROM delivery_keys WHERE event_id = ANY(%s::text[])", (refused,))
    # Another writer pruning the same rows is skipped, not waited for.
    await conn.execute(
        "DELETE FROM delivery_keys WHERE (source_id, key) IN (SELECT source_id, key"
        " FROM delivery_keys WHERE seen_ms < %s LIMIT 500 FOR UPDATE SKIP LOCKED)",
        (now_ms() - window_ms,),
    )
